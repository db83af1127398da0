#!/usr/bin/env bash
# make bench, dashboard part: overview and device page latency (p50/p99) with 200 devices and a
# year of history under 20 concurrent clients (wrk, keep-alive), against `lanmeter demo` with its
# live synthetic traffic flushing into the same database meanwhile. Budget (BENCHMARKS.md): p99 ≤ 50 ms.
# Writes OUTDIR/web.json (bench/report.py turns it into BENCHMARKS.md): every wrk run of every page.
#   WEB_DEVICES=200 WEB_DAYS=365 WEB_SECS=5 WEB_RUNS=3 ./bench/web.sh LANMETER OUTDIR
set -euo pipefail
LM=$1
OUT=$2
DEVICES=${WEB_DEVICES:-200}
DAYS=${WEB_DAYS:-365}
SECS=${WEB_SECS:-5}
RUNS=${WEB_RUNS:-3}
mkdir -p "$OUT"
rm -f "$OUT"/web.db "$OUT"/web.db-wal "$OUT"/web.db-shm "$OUT"/web.log
# A free port in 18000-18999 (the range the bench keeps to on a machine shared with test runs).
PORT=$(python3 -c '
import random, socket
for p in random.sample(range(18000, 19000), 1000):
    try:
        socket.socket().bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass')
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
# RUNS rounds of one wrk run per page; the pages alternate so load from other jobs spreads over all.
for run in $(seq "$RUNS"); do
    for page in "overview /" "device /devices/$DEV" "devices /devices"; do
        set -- $page
        wrk -t2 -c20 -d"${SECS}s" --latency "$BASE$2" >"$OUT/wrk-$1-$run.txt"
    done
done
# Cold device pages: each device's page read for the first time (no cached reading), one client.
python3 - "$BASE" >"$OUT/cold.json" <<'PY'
import json, re, sys, time, urllib.request
base = sys.argv[1]
ids = sorted(set(int(i) for i in re.findall(r'href="/devices/(\d+)"', urllib.request.urlopen(base + "/devices").read().decode())))
ts = []
for i in ids[:100]:
    t = time.perf_counter()
    urllib.request.urlopen(f"{base}/devices/{i}").read()
    ts.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"devices": len(ts), "ms": ts}))
PY
python3 - "$OUT" "$RUNS" "$SECS" "$DEVICES" "$DAYS" "$BUILD" "$(stat -c %s "$OUT/web.db")" "$DEV" <<'PY'
import json, re, sys
out, runs, secs, devices, days, build, db_bytes, dev = sys.argv[1:9]
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
pages = {"overview": "/", "device": f"/devices/{dev}", "devices": "/devices"}
res = {"command": f"lanmeter demo --devices {devices} --days {days}; wrk -t2 -c20 -d{secs}s --latency URL, {runs} runs per page",
       "devices": int(devices), "days": int(days), "build_secs": float(build), "db_bytes": int(db_bytes),
       "clients": 20, "secs_per_run": int(secs), "pages": {}}
for name, path in pages.items():
    rows = []
    for r in range(1, int(runs) + 1):
        text = open(f"{out}/wrk-{name}-{r}.txt").read()
        pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
        errs = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        sock = re.search(r"Socket errors: (.*)", text)
        rows.append({"p50_ms": ms(pct["50"]), "p99_ms": ms(pct["99"]),
                     "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
                     "non_2xx": int(errs.group(1)) if errs else 0, "socket_errors": sock.group(1) if sock else ""})
    res["pages"][name] = {"path": path, "runs": rows}
res["cold_device"] = json.load(open(f"{out}/cold.json"))
json.dump(res, open(f"{out}/web.json", "w"), indent=1)
PY
