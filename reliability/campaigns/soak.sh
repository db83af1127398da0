#!/usr/bin/env bash
# SOAK campaign (the README's Durability section, issue 13): the release daemon on a veth pair for days of simulated time
# under web load, the capture interface flapping, and floods of random MACs and malformed frames.
# reliability/soak.py does the work from inside the receiving namespace (so it reaches the daemon's
# web listener on 127.0.0.1); this script owns the namespaces and removes them whatever happens.
# Writes $OUT/soak.json, $OUT/soak.md and $OUT/soak-*.svg. The plots are also copied into
# docs/reliability/ and soak.md links them there: RELIABILITY.md is written at the repository root,
# so the committed report shows the plots of the run that wrote it.
# Knobs (defaults fit ~12 minutes on 2 cores): SOAK_SECS=360 SOAK_SPEEDUP=480 SOAK_FRAMES=400000
#   FLAP_CYCLES=20 FLAP_DOWN_SECS=1.5 FLAP_UP_SECS=2 FLAP_PPS=3000 FLOOD_MACS=1000000
#   MALFORMED_FRAMES=300000 SOAK_PORT=20480 SOAK_PHASES="soak flaps floods"
# Needs root, tcpreplay, libfaketime (faketime), sqlite3, iproute2, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${LM:?run from reliability/run.sh (LM, OUT)}" "${OUT:?}"
TAG="sk$$"
NS_TX="${TAG}tx"
NS_RX="${TAG}rx"
IF_TX="${TAG}t"
IF_RX="${TAG}r"
cleanup() {
    ip netns del "$NS_TX" 2>/dev/null || true
    ip netns del "$NS_RX" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$NS_TX"
ip netns add "$NS_RX"
ip link add "$IF_TX" type veth peer name "$IF_RX"
ip link set "$IF_TX" netns "$NS_TX"
ip link set "$IF_RX" netns "$NS_RX"
for ns in "$NS_TX" "$NS_RX"; do
    # A quiet link: no IPv6 chatter and no addresses, so only replayed frames cross it.
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip -n "$NS_TX" link set "$IF_TX" up
ip -n "$NS_RX" link set "$IF_RX" up
rm -f "$OUT"/soak-*.svg "$OUT/soak.json" "$OUT/soak.md"
ip netns exec "$NS_RX" python3 reliability/soak.py "$NS_TX" "$IF_TX" "$NS_RX" "$IF_RX"
mkdir -p docs/reliability
rm -f docs/reliability/soak-*.svg
cp "$OUT"/soak-*.svg docs/reliability/ 2>/dev/null || true
