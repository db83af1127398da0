#!/usr/bin/env bash
# Live capture without loss (budget: 0 kernel drops at 1 Gbit/s of full-size frames) and start-up
# time. Two network namespaces joined by a veth pair: tcpreplay sends a generated household capture
# from one end at rising rates while `lanmeter run` (then darkstat) captures on the other end.
# Per step it reports what tcpreplay and the kernel counters of both veth ends say was sent and
# received, what the capturing program counted, and the kernel's capture drops.
# Writes $OUT/live.json (bench/report.py turns it into BENCHMARKS.md).
#   LIVE_SECS=10 LIVE_RATES="100000 300000 1000000 top" LIVE_BUFFERS="16 2" ./bench/live.sh
# Needs root (network namespaces), tcpreplay, tcpdump, darkstat, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
LM=${LM:-${CARGO_TARGET_DIR:-target}/release/lanmeter}
LM=$(realpath "$LM")
OUT=${OUT:-bench-out}
LIVE_FRAMES=${LIVE_FRAMES:-1000000}
LIVE_SECS=${LIVE_SECS:-10}
LIVE_RATES=${LIVE_RATES:-"100000 300000 1000000 top"}
LIVE_BUFFERS=${LIVE_BUFFERS:-"16 2"}
LIVE_DARKSTAT=${LIVE_DARKSTAT:-1}
STARTUP_RUNS=${STARTUP_RUNS:-5}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

# Inputs: the household capture with whole frames, cut to what a 1500-byte-MTU link carries
# (tcpreplay sends the stored bytes; the generator also writes GRO-sized frames up to 64 KB, which
# a snaplen of 1514 cuts to a full-size frame); and from it the full-size frames alone (1514 bytes
# on the wire), for the budget in BENCHMARKS.md.
MIX="$OUT/live-household-$LIVE_FRAMES-1514.pcap"
BIG="$OUT/live-fullsize-$LIVE_FRAMES.pcap"
[ -f "$MIX" ] || "$LM" generate "$MIX" --frames "$LIVE_FRAMES" --seed 5 --snaplen 1514 >/dev/null
[ -f "$BIG" ] || tcpdump -r "$MIX" -w "$BIG" 'greater 1514' 2>/dev/null

TAG="bn$$"
NS_TX="${TAG}tx"
NS_RX="${TAG}rx"
IF_TX="${TAG}t"
IF_RX="${TAG}r"
TMP=$(mktemp -d /tmp/lanmeter-live.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$NS_TX" 2>/dev/null || true
    ip netns del "$NS_RX" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_TX"
ip netns add "$NS_RX"
ip link add "$IF_TX" type veth peer name "$IF_RX"
ip link set "$IF_TX" netns "$NS_TX"
ip link set "$IF_RX" netns "$NS_RX"
for ns in "$NS_TX" "$NS_RX"; do
    # Quiet link: no IPv6 chatter, no addresses, so only replayed frames cross it.
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip -n "$NS_TX" link set "$IF_TX" up
ip -n "$NS_RX" link set "$IF_RX" up
RX=(ip netns exec "$NS_RX")
TX=(ip netns exec "$NS_TX")

# counters NS IF: "rx_packets rx_bytes rx_dropped tx_packets tx_bytes tx_dropped"
counters() {
    ip -n "$1" -s -j link show "$2" | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["stats64"]
print(s["rx"]["packets"], s["rx"]["bytes"], s["rx"]["dropped"], s["tx"]["packets"], s["tx"]["bytes"], s["tx"]["dropped"])'
}

write_config() { # buffer_mib
    cat >"$TMP/lanmeter.toml" <<EOF
interface = "$IF_RX"
state_dir = "$TMP/state"
database = "$TMP/state/lanmeter.db"
backup_dir = "$TMP/backup"
listen = "127.0.0.1:18080"
discovery = false
arp_sweep_interval_secs = 0
buffer_mib = $1
EOF
    mkdir -p "$TMP/state" "$TMP/backup"
}

wait_http() { # URL: up to 10 s
    for _ in $(seq 200); do
        "${RX[@]}" curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "no answer from $1" >&2
    return 1
}

# replay STEPNAME RATE FILE: tcpreplay for LIVE_SECS seconds, kernel counters before and after.
replay() {
    local name=$1 rate=$2 file=$3 speed
    case $rate in
        top) speed=(--topspeed) ;;
        *M) speed=(--mbps="${rate%M}") ;;
        *) speed=(--pps="$rate") ;;
    esac
    counters "$NS_TX" "$IF_TX" >"$OUT/live/$name.tx0"
    counters "$NS_RX" "$IF_RX" >"$OUT/live/$name.rx0"
    "${TX[@]}" tcpreplay --intf1="$IF_TX" "${speed[@]}" --loop=0 --duration="$LIVE_SECS" \
        --preload-pcap --no-flow-stats "$file" >"$OUT/live/$name.tcpreplay" 2>&1 || true
    sleep 2 # let the capture drain its ring before the counters are read
    counters "$NS_TX" "$IF_TX" >"$OUT/live/$name.tx1"
    counters "$NS_RX" "$IF_RX" >"$OUT/live/$name.rx1"
}

rm -rf "$OUT/live" && mkdir -p "$OUT/live"
STEPS=()
for buf in $LIVE_BUFFERS; do
    write_config "$buf"
    for input in mix big; do
        file=$MIX
        rates=$LIVE_RATES
        if [ $input = big ]; then
            file=$BIG
            rates="1000M top" # 1 Gbit/s of 1514-byte frames is ~81 k frames/s
        fi
        for rate in $rates; do
            name="lanmeter-b$buf-$input-$rate"
            rm -rf "$TMP/state" && mkdir -p "$TMP/state"
            LANMETER_FLUSH_INTERVAL_SECS=2 "${RX[@]}" "$LM" --config "$TMP/lanmeter.toml" run \
                --interface "$IF_RX" --db "$TMP/state/lanmeter.db" 2>"$OUT/live/$name.log" &
            pid=$!
            PIDS+=("$pid")
            wait_http http://127.0.0.1:18080/healthz
            replay "$name" "$rate" "$file"
            # Peak RSS of the daemon (VmHWM; includes the capture ring pages it touched).
            sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" >"$OUT/live/$name.hwm" || true
            kill -TERM "$pid"
            wait "$pid" || echo "lanmeter exited with $? in $name" >&2
            "$LM" export --db "$TMP/state/lanmeter.db" --period minute --format json >"$OUT/live/$name.export"
            STEPS+=("$name")
        done
    done
done

if [ "$LIVE_DARKSTAT" = 1 ]; then
    for input in mix big; do
        file=$MIX
        rates=$LIVE_RATES
        [ $input = big ] && { file=$BIG; rates="1000M top"; }
        for rate in $rates; do
            name="darkstat-$input-$rate"
            rm -rf "$TMP/darkstat" && mkdir -p "$TMP/darkstat"
            "${RX[@]}" darkstat -i "$IF_RX" --no-daemon --no-dns --chroot "$TMP/darkstat" --user root \
                -b 127.0.0.1 -p 18081 2>"$OUT/live/$name.log" &
            pid=$!
            PIDS+=("$pid")
            wait_http http://127.0.0.1:18081/
            replay "$name" "$rate" "$file"
            # Its front page states packets received and dropped (pcap_stats) and bytes seen.
            "${RX[@]}" curl -fsS http://127.0.0.1:18081/ >"$OUT/live/$name.html" || true
            kill -TERM "$pid"
            wait "$pid" || true
            STEPS+=("$name")
        done
    done
fi

# Start-up: process start to the first successful GET /healthz, on a new database and on an existing one.
write_config 16
rm -rf "$TMP/state" && mkdir -p "$TMP/state"
"${RX[@]}" python3 - "$LM" "$TMP/lanmeter.toml" "$IF_RX" "$TMP/state/lanmeter.db" "$STARTUP_RUNS" \
    >"$OUT/live/startup.txt" <<'PY'
import os, signal, subprocess, sys, time, urllib.request
lm, cfg, iface, db, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def once():
    t0 = time.monotonic()
    p = subprocess.Popen([lm, "--config", cfg, "run", "--interface", iface, "--db", db],
                         stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen("http://127.0.0.1:18080/healthz", timeout=1).read()
            t = time.monotonic() - t0
            break
        except OSError:
            if p.poll() is not None:
                sys.exit("lanmeter exited during start-up")
            time.sleep(0.002)
    p.send_signal(signal.SIGTERM)
    p.wait()
    return t
for kind in ("new", "existing"):
    for _ in range(runs):
        if kind == "new":
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(db + suffix)
                except FileNotFoundError:
                    pass
        print(kind, f"{once():.4f}")
PY

python3 bench/live_report.py "$OUT" "$LIVE_SECS" "$LIVE_FRAMES" "${STEPS[@]}" >"$OUT/live.json"
