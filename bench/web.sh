#!/usr/bin/env bash
# make bench, dashboard part: overview and device page latency (p50/p99) with 200 devices and a
# year of history under 20 concurrent clients (wrk, keep-alive), against `lanmeter demo` with its
# live synthetic traffic flushing into the same database meanwhile. Budget (SPEC §5): p99 ≤ 50 ms.
# Prints a Markdown section; bench/run.sh appends it to bench-out/results.md.
#   WEB_DEVICES=200 WEB_DAYS=365 WEB_SECS=15 ./bench/web.sh LANMETER OUTDIR
set -euo pipefail
LM=$1
OUT=$2
DEVICES=${WEB_DEVICES:-200}
DAYS=${WEB_DAYS:-365}
SECS=${WEB_SECS:-15}
mkdir -p "$OUT"
rm -f "$OUT"/web.db "$OUT"/web.db-wal "$OUT"/web.db-shm "$OUT"/web.log
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Viewers on the LAN need no login, so wrk measures the pages, not the login form (an admin
# password must still exist, or every page leads to the first-run setup).
echo "bench-only admin password $RANDOM$RANDOM" >"$OUT/pw"
"$LM" demo --db "$OUT/web.db" --devices "$DEVICES" --days "$DAYS" --listen "127.0.0.1:$PORT" \
    --anyone-on-lan-may-view --admin-password-file "$OUT/pw" >"$OUT/web.log" 2>"$OUT/web.err" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do
    grep -q '^dashboard:' "$OUT/web.log" 2>/dev/null && break
    kill -0 $PID 2>/dev/null || { cat "$OUT/web.err" >&2; exit 1; }
    sleep 0.5
done
BUILD=$(python3 -c 'import re,sys; print(re.search(r"\(([\d.]+) s\)", open(sys.argv[1]).read()).group(1))' "$OUT/web.log")
BASE="http://127.0.0.1:$PORT"
# The device with the most traffic this cycle has the fullest charts.
DEV=$(curl -s "$BASE/devices?sort=cycle" | python3 -c 'import re,sys; print(re.findall(r"href=\"/devices/(\d+)\"", sys.stdin.read())[0])')
run() { # NAME PATH
    wrk -t2 -c20 -d"${SECS}s" --latency "$BASE$2" >"$OUT/wrk-$1.txt"
    python3 - "$OUT/wrk-$1.txt" "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"| {sys.argv[2]} `{sys.argv[3]}` | {ms(pct['50']):.1f} | {ms(pct['99']):.1f} | {float(rps):.0f} | {errs.group(1) if errs else 0} |")
PY
}
echo "## Dashboard latency"
echo
echo "\`lanmeter demo --devices $DEVICES --days $DAYS\` (database built in $BUILD s, $(du -h "$OUT/web.db" | cut -f1)), live synthetic"
echo "traffic flushing every 10 s meanwhile; wrk, 20 connections on 2 threads, ${SECS} s per page. Budget: p99 ≤ 50 ms."
echo
echo "| page | p50 ms | p99 ms | requests/s | non-2xx |"
echo "|---|---|---|---|---|"
run overview /
run device "/devices/$DEV"
run devices /devices
# Cold device pages: each device's page read for the first time (no cached reading), one client.
python3 - "$BASE" <<'PY'
import re, statistics, sys, time, urllib.request
base = sys.argv[1]
ids = sorted(set(int(i) for i in re.findall(r'href="/devices/(\d+)"', urllib.request.urlopen(base + "/devices").read().decode())))
ts = []
for i in ids[:100]:
    t = time.perf_counter()
    urllib.request.urlopen(f"{base}/devices/{i}").read()
    ts.append((time.perf_counter() - t) * 1e3)
ts.sort()
p99 = ts[min(len(ts) - 1, int(len(ts) * 0.99))]
print(f"| device, first view of each of {len(ts)} devices (one client, uncached) | {statistics.median(ts):.1f} | {p99:.1f} | – | 0 |")
PY
