#!/usr/bin/env bash
# make bench: every budget (the table at the end of BENCHMARKS.md) measured beside the peers on this machine, then BENCHMARKS.md.
# Each part writes JSON into $OUT (default bench-out/); bench/report.py turns them into BENCHMARKS.md
# (one table per area, medians over repeated runs, ratios to the peers, one pass/fail budget table).
#   ingest + memory   here: lanmeter replay vs a bare libpcap loop, tcpdump and darkstat -r
#                     -> ingest.json, memory.json (+ darkstat's per-host totals beside ours)
#   store             examples/bench_store.rs -> store.json
#   dashboard         bench/web.sh -> web.json
#   pages             bench/pages.sh (every page's first view in-process, timed and its arm64
#                     instructions counted under qemu) -> pages.json
#   live + start-up   bench/live.sh (network namespaces, tcpreplay) -> live.json
#   Pi projection     bench/pi.sh (arm64 build, instruction counts under qemu) -> pi.json
#   SD-card writes    bench/sdwrites.sh, only with SD=1 -> sdwrites-current.json
# Knobs (defaults sized so a full run stays well under 30 minutes on 2 cores):
#   FRAMES=10000000 RUNS=5 STORE_DAYS=365 WEB_RUNS=3 WEB_SECS=5 LIVE_SECS=10 PI=1 \
#   OUT=bench-out REPORT=BENCHMARKS.md ./bench/run.sh
# BENCH_PARTS=web,store (comma-separated: ingest memory store web pages live pi) runs only those parts;
# the report then goes to $OUT/BENCHMARKS.partial.md (unless REPORT is given), leaves out the
# parts not run, and takes the Pi time scale from the BENCHMARKS.md of the last full run.
# SPLICE=1 with BENCH_PARTS then puts those parts' sections and budget rows into BENCHMARKS.md
# (bench/splice.py), the other sections as the last full run left them. After page changes:
#   OUT=bench-out BENCH_PARTS=web,pages SPLICE=1 WEB_FIRST=2 WEB_SECS=3 ./bench/run.sh
# (measured on 2 shared cores at load 4-8: build 8 min (lanmeter recompiles at each new commit),
# web 5.3 min, pages 4 min with the arm64 rebuild of lanmeter and both QEMU counts).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
FRAMES=${FRAMES:-10000000}
FLOOD_MACS=${FLOOD_MACS:-1000000}
RUNS=${RUNS:-5}
STORE_DAYS=${STORE_DAYS:-365}
PI=${PI:-1}
OUT=${OUT:-bench-out}
PARTS=${BENCH_PARTS:-}
if [ -n "$PARTS" ]; then
    REPORT=${REPORT:-$OUT/BENCHMARKS.partial.md}
else
    REPORT=${REPORT:-BENCHMARKS.md}
fi
mkdir -p "$OUT/raw"
OUT=$(realpath "$OUT")
: >"$OUT/parts.jsonl"
# want PART: whether this run includes PART (every part when BENCH_PARTS is unset). A part not
# run leaves no JSON, so stale results of an earlier run are removed first.
want() {
    [ -z "$PARTS" ] || [[ ",$PARTS," == *",$1,"* ]]
}
for p in ingest memory store web pages live pi; do
    want "$p" || { [ "$p" = ingest ] && want memory; } || { [ "$p" = memory ] && want ingest; } ||
        rm -f "$OUT/$p.json"
done

# part NAME: closes the previous part and opens NAME in parts.jsonl (wall time and load average at
# both ends; the machine is shared, so the report shows what else was running).
PART=
PART_T0=
PART_LOAD0=
part() {
    local now load
    now=$(date +%s.%N)
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ -n "$PART" ]; then
        printf '{"part":"%s","start":%s,"end":%s,"load_before":"%s","load_after":"%s"}\n' \
            "$PART" "$PART_T0" "$now" "$PART_LOAD0" "$load" >>"$OUT/parts.jsonl"
    fi
    PART=$1 PART_T0=$now PART_LOAD0=$load
    [ "$PART" = end ] || echo "bench: $PART ($(date -u +%H:%M:%S), load $load)" >&2
}

part build
if want ingest || want store; then
    cargo build --release --quiet --bin lanmeter --example read_floor --example bench_store --example bench_pages
else
    cargo build --release --quiet --bin lanmeter --example bench_pages
fi
LM=$TARGET/release/lanmeter
FLOOR=$TARGET/release/examples/read_floor

if want ingest || want memory; then
part inputs
PCAP="$OUT/household-$FRAMES.pcap"
FLOOD="$OUT/flood-$FLOOD_MACS.pcap"
FLOOD_QUARTER="$OUT/flood-$((FLOOD_MACS / 4)).pcap"
HOUSE200="$OUT/household200-2000000.pcap"
[ -f "$PCAP" ] || "$LM" generate "$PCAP" --frames "$FRAMES" --seed 1 >/dev/null
# The same frames as pcapng (Wireshark's editcap writes it): lanmeter's own pcapng reader against
# libpcap's (tcpdump -r), which replay used before.
PCAPNG="$OUT/household-$FRAMES.pcapng"
[ -f "$PCAPNG" ] || editcap -F pcapng "$PCAP" "$PCAPNG"
[ -f "$FLOOD" ] || "$LM" generate "$FLOOD" --flood-macs "$FLOOD_MACS" --frames "$FLOOD_MACS" --seed 2 >/dev/null
[ -f "$FLOOD_QUARTER" ] || "$LM" generate "$FLOOD_QUARTER" --flood-macs $((FLOOD_MACS / 4)) --frames $((FLOOD_MACS / 4)) --seed 3 >/dev/null
[ -f "$HOUSE200" ] || "$LM" generate "$HOUSE200" --frames 2000000 --devices 200 --seed 4 >/dev/null
# The household with a new TCP connection (SYN, SYN-ACK) before every web request: passive
# latency on vs off where it has handshakes to time (the household above has none).
HANDS="$OUT/handshakes-$FRAMES.pcap"
[ -f "$HANDS" ] || "$LM" generate "$HANDS" --frames "$FRAMES" --seed 1 --handshakes 100 >/dev/null
# Warm the page cache so every program reads from memory, not disk.
cat "$PCAP" "$PCAPNG" "$FLOOD" "$FLOOD_QUARTER" "$HOUSE200" "$HANDS" >/dev/null

# measure NAME CMD...: RUNS runs; raw/NAME.txt gets "wall_s user_s sys_s max_rss_kb" per run and
# raw/NAME.cmd the command as run.
measure() {
    local name=$1; shift
    : >"$OUT/raw/$name.txt"
    printf '%s\n' "$*" >"$OUT/raw/$name.cmd"
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%e %U %S %M" -o "$OUT/raw/$name.time" "$@" >/dev/null 2>"$OUT/raw/$name.err" \
            || { cat "$OUT/raw/$name.err" >&2; exit 1; }
        cat "$OUT/raw/$name.time" >>"$OUT/raw/$name.txt"
    done
}

fi

# ingest.py writes ingest.json and memory.json together, so the two parts run together.
if want ingest || want memory; then
part ingest
# The programs alternate run by run, so load from other jobs on the machine spreads over all of them.
"$LM" replay "$PCAP" --json >"$OUT/raw/replay.json"
GW=$(python3 -c 'import json,sys; print(next(d["mac"] for d in json.load(open(sys.argv[1])) if d["is_gateway"]))' "$OUT/raw/replay.json")
rm -rf "$OUT/darkstat" && mkdir -p "$OUT/darkstat"
ALL_RUNS=$RUNS
RUNS=1
for n in $(seq "$ALL_RUNS"); do
    for name in ${INGEST_ROWS:-floor tcpdump replay replay_gw replay_endpoints replay_nopassive replay_hs replay_hs_nopassive darkstat tcpdump_ng replay_ng}; do
        case $name in
            floor) cmd=("$FLOOR" "$PCAP") ;;
            tcpdump) cmd=(tcpdump -r "$PCAP" -w /dev/null) ;;
            tcpdump_ng) cmd=(tcpdump -r "$PCAPNG" -w /dev/null) ;;
            replay_ng) cmd=("$LM" replay "$PCAPNG" --json) ;;
            replay) cmd=("$LM" replay "$PCAP" --json) ;;
            replay_gw) cmd=("$LM" replay "$PCAP" --json --gateway "$GW") ;;
            replay_endpoints) cmd=("$LM" replay "$PCAP" --json --gateway "$GW" --endpoints) ;;
            replay_nopassive) cmd=("$LM" replay "$PCAP" --json --no-passive-latency) ;;
            replay_hs) cmd=("$LM" replay "$HANDS" --json) ;;
            replay_hs_nopassive) cmd=("$LM" replay "$HANDS" --json --no-passive-latency) ;;
            darkstat) cmd=(darkstat -r "$PCAP" --no-daemon --no-dns --chroot "$OUT/darkstat" --user root) ;;
        esac
        measure "$name.$n" "${cmd[@]}"
    done
done
RUNS=$ALL_RUNS
# How many handshakes the passive rows had to time (pure SYNs; each is answered).
tcpdump -r "$HANDS" -nn 'tcp[13] == 2' 2>/dev/null | wc -l >"$OUT/raw/handshakes.count"
# darkstat's per-host totals of the same file, for the byte-basis comparison (untimed run). With -r it
# neither chroots nor drops privileges, so the export path is taken as given.
darkstat -r "$PCAP" --no-daemon --no-dns --chroot "$OUT/darkstat" --user root --export "$OUT/darkstat/darkstat.export" \
    2>"$OUT/raw/darkstat-export.err" || true

fi

if want ingest || want memory; then
part memory
measure flood "$LM" replay "$FLOOD" --json
measure flood_quarter "$LM" replay "$FLOOD_QUARTER" --json
measure house200 "$LM" replay "$HOUSE200" --json
TARGET="$TARGET" python3 bench/ingest.py "$OUT" "$FRAMES" "$FLOOD_MACS" "$RUNS"
fi

# The history store: one simulated year of 200 devices with default retention, a flush of 1,000
# active devices on it, and the heaviest queries.
if want store; then
part store
"$TARGET/release/examples/bench_store" "$OUT/store" "$STORE_DAYS" >"$OUT/store.json"
fi

# The dashboard: overview and device page latency with 200 devices and a year of history.
if want web; then
part web
./bench/web.sh "$LM" "$OUT/web"
cp "$OUT/web/web.json" "$OUT/web.json"
fi

# Every page's first view, timed in-process and counted on arm64 (the Pi column), on web's database.
if want pages; then
part pages
OUT="$OUT" ./bench/pages.sh || echo "bench: the page counts failed; report.py says so" >&2
fi

# Live capture on a veth pair fed by tcpreplay, for lanmeter and darkstat, and start-up time.
if want live; then
part live
LM="$LM" OUT="$OUT" ./bench/live.sh
fi

# The Raspberry Pi 4 projection: instructions per frame on arm64 and x86 under qemu.
if want pi; then
part pi
if [ "$PI" = 1 ]; then
    OUT="$OUT" ./bench/pi.sh || echo "bench: the Pi instruction counts failed; report.py says so" >&2
else
    echo '{"skipped": "PI=0"}' >"$OUT/pi.json"
fi
fi

# SD-card writes per day by cause (bench/sdwrites.sh, about 40 minutes for both households, so
# only with SD=1). Without it the report shows the reference runs kept in bench/sdwrites-*.json.
if [ "${SD:-0}" = 1 ]; then
    part sdwrites
    LM="$LM" OUT="$OUT" SD_LABEL=current ./bench/sdwrites.sh
fi

part end
# Written to a temporary file first: a partial run reads the last full report's Pi time scale.
PI_SCALE_FROM=BENCHMARKS.md python3 bench/report.py "$OUT" >"$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"
if [ -n "$PARTS" ] && [ "${SPLICE:-0}" = 1 ]; then
    python3 bench/splice.py "$PARTS" "$REPORT" BENCHMARKS.md >"$OUT/BENCHMARKS.spliced.md"
    mv "$OUT/BENCHMARKS.spliced.md" BENCHMARKS.md
    echo "bench: the $PARTS sections and budget rows of $REPORT are now in BENCHMARKS.md" >&2
fi
cat "$REPORT"
