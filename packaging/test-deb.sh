#!/usr/bin/env bash
# Package test (make deb-test): lints the amd64 .deb, then installs it on THIS machine (root, no
# systemd running), runs the installed binary as the lanmeter user with only CAP_NET_RAW and
# CAP_NET_ADMIN on a veth pair, removes (data kept) and purges (everything gone). Upgrades, and
# everything the service does under systemd, are tested in a booted container by
# packaging/test-nspawn.sh. Leaves the machine as it found it, even on failure.
# Usage: packaging/test-deb.sh TARGET_DIR
set -euo pipefail
target_dir=${1:-target}
cd "$(dirname "$0")/.."
built=$(ls -t "$target_dir"/debian/lanmeter_*_amd64.deb | head -n 1)
work=$(mktemp -d)
cp "$built" "$work/"
deb="$work/$(basename "$built")"
ns="lmdeb$$"
passed=0
failed=0

ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }

cleanup() {
    ip netns del "${ns}a" 2>/dev/null || true
    ip netns del "${ns}b" 2>/dev/null || true
    if dpkg-query -W lanmeter >/dev/null 2>&1; then dpkg -P lanmeter >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if dpkg-query -W -f='${Status}' lanmeter 2>/dev/null | grep -q "installed"; then
    echo "lanmeter is already installed on this machine; the package test would purge it. Remove it first." >&2
    exit 1
fi

echo "== $deb"
# Lintian: no errors; each remaining warning is overridden with its reason in packaging/lintian-overrides.
if lintian --fail-on error "$deb" >"$work/lintian" 2>&1; then
    ok "lintian reports no errors"
else
    bad "lintian: $(grep -c '^E:' "$work/lintian") errors"
fi
grep -E '^[EW]:' "$work/lintian" || true

unit=systemd/lanmeter.service
exposure=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
check "systemd-analyze security: exposure $exposure <= 2.0" systemd-analyze security --offline=true --threshold=20 "$unit"

echo "== install"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log"; bad "apt install"; exit 1; }
ok "apt install $(basename "$deb")"
grep -E '^(lanmeter:|  http)' "$work/install.log" || true
if [ -d /run/systemd/system ]; then
    check "the service is active" systemctl is-active --quiet lanmeter.service
else
    check "postinst says systemd is not running here (so nothing started) instead of failing" grep -q 'systemd is not running here' "$work/install.log"
fi
check "postinst prints a dashboard URL with the configured port" grep -Eq '^  http://[^ ]+:8080/' "$work/install.log"
check "/usr/bin/lanmeter runs" /usr/bin/lanmeter --version
check "the lanmeter system user exists" getent passwd lanmeter
check "its shell is nologin" sh -c 'getent passwd lanmeter | grep -q nologin'
check "/var/lib/lanmeter belongs to lanmeter" sh -c '[ "$(stat -c %U:%G:%a /var/lib/lanmeter)" = lanmeter:lanmeter:750 ]'
check "the config is root:lanmeter 0640" sh -c '[ "$(stat -c %U:%G:%a /etc/lanmeter/lanmeter.toml)" = root:lanmeter:640 ]'
check "the config is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' lanmeter | grep -q /etc/lanmeter/lanmeter.toml"
check "the man page is installed" sh -c 'man -w lanmeter | grep -q lanmeter.1.gz'
check "the unit is enabled" test -L /etc/systemd/system/multi-user.target.wants/lanmeter.service
check "systemd-analyze verify accepts the installed unit" systemd-analyze verify /usr/lib/systemd/system/lanmeter.service
check "the installed config loads" /usr/bin/lanmeter check-config --config /etc/lanmeter/lanmeter.toml

echo "== run as lanmeter with only CAP_NET_RAW and CAP_NET_ADMIN, capturing on a veth pair"
ip netns add "${ns}a"
ip netns add "${ns}b"
ip link add "${ns}x" type veth peer name "${ns}y"
ip link set "${ns}x" netns "${ns}a"
ip link set "${ns}y" netns "${ns}b"
ip -n "${ns}a" addr add 10.97.0.1/24 dev "${ns}x"
ip -n "${ns}b" addr add 10.97.0.2/24 dev "${ns}y"
ip -n "${ns}a" link set lo up
ip -n "${ns}a" link set "${ns}x" up
ip -n "${ns}b" link set "${ns}y" up
caps="-all,+net_raw,+net_admin"
ip netns exec "${ns}a" setpriv --reuid lanmeter --regid lanmeter --init-groups \
    --inh-caps "$caps" --ambient-caps "$caps" --bounding-set "$caps" \
    /usr/bin/lanmeter run --config /etc/lanmeter/lanmeter.toml --interface "${ns}x" \
    >"$work/run.log" 2>&1 &
pid=$!
sleep 1
capeff=$(sed -n 's/^CapEff:\t//p' "/proc/$pid/status" 2>/dev/null || echo gone)
capbnd=$(sed -n 's/^CapBnd:\t//p' "/proc/$pid/status" 2>/dev/null || echo gone)
check "the daemon runs as lanmeter" sh -c "[ \"\$(stat -c %U /proc/$pid)\" = lanmeter ]"
check "its effective and bounding capabilities are exactly net_admin+net_raw (0x3000: $capeff/$capbnd)" \
    sh -c "[ $capeff = 0000000000003000 ] && [ $capbnd = 0000000000003000 ]"
ip netns exec "${ns}b" ping -c 20 -i 0.05 -q 10.97.0.1 >/dev/null 2>&1 || true
check "it serves the dashboard: /healthz answers ok" \
    sh -c "ip netns exec ${ns}a curl -fsS --max-time 5 http://127.0.0.1:8080/healthz | grep -qx ok"
check "a first visit is sent to the first-run setup page" \
    sh -c "ip netns exec ${ns}a curl -s --max-time 5 -o /dev/null -w '%{redirect_url}' http://127.0.0.1:8080/ | grep -q /setup"
sleep 1
kill -TERM "$pid"
wait "$pid" || true
check "it captured the pings (log says frames_seen > 0)" grep -Eq 'frames_seen=[1-9]' "$work/run.log"
check "it wrote minute rows into /var/lib/lanmeter/lanmeter.db" \
    sh -c 'lanmeter export --config /etc/lanmeter/lanmeter.toml --period minute --format csv | grep -q ,'

echo "== doctor sees only its own traffic in a namespace"
ip netns exec "${ns}a" /usr/bin/lanmeter doctor --config /etc/lanmeter/lanmeter.toml -i "${ns}x" --listen-secs 2 >"$work/doctor.txt" 2>/dev/null &
dpid=$!
ip netns exec "${ns}b" ping -c 10 -i 0.1 -q 10.97.0.1 >/dev/null 2>&1 || true
wait "$dpid" || true
check "doctor says only own traffic is visible and suggests a topology" \
    sh -c "grep -q \"only this machine's own traffic\" $work/doctor.txt && grep -q 'mirror' $work/doctor.txt"

echo "== remove keeps data and config; purge removes everything"
dpkg -r lanmeter >/dev/null
check "after remove: binary gone" test ! -e /usr/bin/lanmeter
check "after remove: database kept" test -f /var/lib/lanmeter/lanmeter.db
check "after remove: config kept" test -f /etc/lanmeter/lanmeter.toml
dpkg -P lanmeter >/dev/null
check "after purge: /var/lib/lanmeter gone" test ! -e /var/lib/lanmeter
check "after purge: /etc/lanmeter gone" test ! -e /etc/lanmeter
check "after purge: user gone" sh -c '! getent passwd lanmeter'
check "after purge: group gone" sh -c '! getent group lanmeter'
check "after purge: unit enablement gone" test ! -e /etc/systemd/system/multi-user.target.wants/lanmeter.service

echo "package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
