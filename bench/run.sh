#!/usr/bin/env bash
# make bench: ingest speed against a bare libpcap read loop and darkstat, memory bounds, and the
# history store (database size after a simulated year, flush time, query latency).
# Writes bench-out/results.md and prints it; BENCHMARKS.md quotes a run of it.
#   FRAMES=10000000 RUNS=5 STORE_DAYS=365 ./bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-10000000}
FLOOD_MACS=${FLOOD_MACS:-1000000}
RUNS=${RUNS:-5}
STORE_DAYS=${STORE_DAYS:-365}
OUT=bench-out
mkdir -p "$OUT"

cargo build --release --quiet --bin lanmeter --example read_floor --example bench_store
LM=./target/release/lanmeter
FLOOR=./target/release/examples/read_floor

PCAP="$OUT/household-$FRAMES.pcap"
FLOOD="$OUT/flood-$FLOOD_MACS.pcap"
FLOOD_QUARTER="$OUT/flood-$((FLOOD_MACS / 4)).pcap"
HOUSE200="$OUT/household200-2000000.pcap"
[ -f "$PCAP" ] || "$LM" generate "$PCAP" --frames "$FRAMES" --seed 1 >/dev/null
[ -f "$FLOOD" ] || "$LM" generate "$FLOOD" --flood-macs "$FLOOD_MACS" --frames "$FLOOD_MACS" --seed 2 >/dev/null
[ -f "$FLOOD_QUARTER" ] || "$LM" generate "$FLOOD_QUARTER" --flood-macs $((FLOOD_MACS / 4)) --frames $((FLOOD_MACS / 4)) --seed 3 >/dev/null
[ -f "$HOUSE200" ] || "$LM" generate "$HOUSE200" --frames 2000000 --devices 200 --seed 4 >/dev/null

# Warm the page cache so every program reads from memory, not disk.
cat "$PCAP" "$FLOOD" >/dev/null

# measure NAME CMD...: RUNS runs, one "wall_seconds max_rss_kb" line each in $OUT/NAME.txt
measure() {
    local name=$1; shift
    : >"$OUT/$name.txt"
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%e %M" -o "$OUT/$name.time" "$@" >/dev/null 2>"$OUT/$name.err" \
            || { cat "$OUT/$name.err" >&2; exit 1; }
        cat "$OUT/$name.time" >>"$OUT/$name.txt"
    done
}

measure floor "$FLOOR" "$PCAP"
measure tcpdump tcpdump -r "$PCAP" -w /dev/null
measure replay "$LM" replay "$PCAP" --json
measure replay_gw "$LM" replay "$PCAP" --json --gateway "$("$LM" replay "$PCAP" --json | python3 -c 'import json,sys; print(next(d["mac"] for d in json.load(sys.stdin) if d["is_gateway"]))')"
rm -rf "$OUT/darkstat" && mkdir -p "$OUT/darkstat"
measure darkstat darkstat -r "$PCAP" --no-daemon --no-dns --chroot "$OUT/darkstat" --user root
measure flood "$LM" replay "$FLOOD" --json
measure flood_quarter "$LM" replay "$FLOOD_QUARTER" --json
measure house200 "$LM" replay "$HOUSE200" --json

python3 - "$OUT" "$FRAMES" "$FLOOD_MACS" "$RUNS" <<'PY'
import statistics, sys, platform, subprocess
out, frames, flood, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def load(n):
    rows = [l.split() for l in open(f"{out}/{n}.txt") if l.strip()]
    return statistics.median(float(r[0]) for r in rows), max(int(r[1]) for r in rows)
res = {n: load(n) for n in ["floor", "tcpdump", "replay", "replay_gw", "darkstat", "flood", "flood_quarter", "house200"]}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
fl = res["floor"][0]
lines = [
    f"Machine: {cpu}, {subprocess.getoutput('nproc')} cores; {runs} runs each, median wall time, max RSS.",
    f"Input: generated household capture, {frames:,} frames (snaplen 128).",
    "",
    "| program | median s | frames/s | vs bare read loop | peak RSS |",
    "|---|---|---|---|---|",
]
names = {
    "floor": "bare libpcap read loop (examples/read_floor)",
    "tcpdump": "tcpdump -r FILE -w /dev/null",
    "replay": "lanmeter replay --json (gateway inferred)",
    "replay_gw": "lanmeter replay --json --gateway MAC",
    "darkstat": "darkstat -r FILE",
}
for n, label in names.items():
    t, rss = res[n]
    lines.append(f"| {label} | {t:.2f} | {frames / t / 1e6:.2f} M | {fl / t * 100:.0f} % | {rss / 1024:.1f} MB |")
lines += [
    "",
    "Memory (peak RSS of `lanmeter replay --json`, max_devices 4096):",
    "",
    "| input | median s | peak RSS |",
    "|---|---|---|",
    f"| household of 200 devices, 2,000,000 frames | {res['house200'][0]:.2f} | {res['house200'][1] / 1024:.1f} MB |",
    f"| flood from {flood // 4:,} random source MACs | {res['flood_quarter'][0]:.2f} | {res['flood_quarter'][1] / 1024:.1f} MB |",
    f"| flood from {flood:,} random source MACs | {res['flood'][0]:.2f} | {res['flood'][1] / 1024:.1f} MB |",
]
text = "\n".join(lines) + "\n"
open(f"{out}/results.md", "w").write(text)
print(text)
PY

# The history store: one simulated year of 200 devices with default retention, a flush of 1,000
# active devices on it, and the heaviest queries (examples/bench_store.rs prints the section).
./target/release/examples/bench_store "$OUT/store" "$STORE_DAYS" >"$OUT/store.md"
printf '\n' >>"$OUT/results.md"
cat "$OUT/store.md" >>"$OUT/results.md"
cat "$OUT/store.md"

# The dashboard: overview and device page latency with 200 devices and a year of history.
./bench/web.sh ./target/release/lanmeter "$OUT/web" >"$OUT/web.md"
printf '\n' >>"$OUT/results.md"
cat "$OUT/web.md" >>"$OUT/results.md"
cat "$OUT/web.md"

# Live capture on a veth pair fed by tcpreplay, for lanmeter and darkstat, and start-up time
# (bench/live.sh writes the section).
LM="$LM" OUT="$OUT" ./bench/live.sh >/dev/null
printf '\n' >>"$OUT/results.md"
cat "$OUT/live.md" >>"$OUT/results.md"
cat "$OUT/live.md"
