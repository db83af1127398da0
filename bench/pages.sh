#!/usr/bin/env bash
# make bench, pages part: every dashboard page's first (uncached) view, in-process
# (examples/bench_pages.rs: the server's router and handlers, a fresh state per view, no socket),
# on the demo database of 200 devices × 365 days:
#   - timed here (x86, PAGES_RUNS views of each page, pages alternating);
#   - counted: executed instructions of a first view on arm64 (the Pi's build) and on x86-64,
#     under QEMU user mode with bench/insn_count.c: one QEMU run per ISA counts every page, each
#     view between two markers (see `bench_pages count`), so nothing needs subtracting between
#     runs; PAGES_VIEWS first views per page, median (PAGES_ISAS="arm64" counts the Pi build only).
#     bench/report.py turns arm64 instructions into Pi 4 milliseconds at 1.5 GHz and the IPC it
#     assumes (no x86 time enters that projection).
# The database is bench/web.sh's (OUT/web/web.db, its demo having run with live traffic) when it
# exists, else a fresh `lanmeter demo --build-only`. Writes OUT/pages.json.
#   OUT=bench-out PAGES_RUNS=5 PAGES_COUNT=1 PAGES_VIEWS=2 PAGES_ISAS="arm64 x86_64" ./bench/pages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-bench-out}
RUNS=${PAGES_RUNS:-5}
COUNT=${PAGES_COUNT:-1}
VIEWS=${PAGES_VIEWS:-2}
DEVICES=${WEB_DEVICES:-200}
DAYS=${WEB_DAYS:-365}
ARM64=aarch64-unknown-linux-gnu
mkdir -p "$OUT/pages"
OUT=$(realpath "$OUT")
W=$OUT/pages
cargo build --release --quiet --bin lanmeter --example bench_pages
LM=$TARGET/release/lanmeter
BP=$TARGET/release/examples/bench_pages
if [ -f "$OUT/web/web.db" ]; then
    # A consistent copy of the live demo's database (its WAL folded in), seen at its last write.
    NOW=$(for f in "$OUT/web/web.db" "$OUT/web/web.db-wal"; do [ ! -f "$f" ] || stat -c %Y "$f"; done | sort -n | tail -1)
    python3 -c 'import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d)' \
        "$OUT/web/web.db" "$W/pages.db"
    SRC="bench/web.sh's demo database"
else
    rm -f "$W/pages.db" "$W/pages.db-wal" "$W/pages.db-shm"
    echo "bench-only admin password $RANDOM$RANDOM" >"$W/pw"
    "$LM" demo --db "$W/pages.db" --devices "$DEVICES" --days "$DAYS" --listen 127.0.0.1:0 --build-only \
        --admin-password-file "$W/pw" >"$W/demo.log"
    SRC="lanmeter demo --build-only --devices $DEVICES --days $DAYS"
    NOW=$(date +%s)
fi
# Every view is rendered at that moment (bench_pages' clock), so a page shows the same devices
# online, the same "today", in the timed views and in both ISAs' counted ones, however long
# the runs take.
export BENCH_PAGES_NOW=$NOW
# fresh: a private copy of the database for one run (sessions are written; runs stay independent).
fresh() {
    rm -f "$W/run.db" "$W/run.db-wal" "$W/run.db-shm"
    cp "$W/pages.db" "$W/run.db"
}
# The pages: web.sh's list when its database is used (the same paths, so report.py joins its p99
# by name: the device of the most traffic and "today" could otherwise differ), else a new list.
if [ "$SRC" != "${SRC#bench/web.sh}" ] && [ -s "$OUT/web/pages.txt" ]; then
    cp "$OUT/web/pages.txt" "$W/pages.txt"
else
    fresh
    "$BP" "$W/run.db" list >"$W/pages.txt"
fi
fresh
"$BP" "$W/run.db" time "$W/pages.txt" "$RUNS" >"$W/time.json"

# Instruction counts (skipped with PAGES_COUNT=0 or without qemu; report.py says so).
ERR=""
ISAS=${PAGES_ISAS:-arm64 x86_64}
rm -f "$W"/marks-*.txt "$W"/plugin-*.log
if [ "$COUNT" = 1 ]; then
    if ! command -v qemu-aarch64 >/dev/null; then
        ERR="qemu-aarch64 (Debian qemu-user) is not installed"
        ISAS=""
    elif ! gcc -shared -fPIC -O2 -o "$W/insn_count.so" bench/insn_count.c; then
        ERR="gcc could not build bench/insn_count.c"
        ISAS=""
    elif [[ " $ISAS " == *" arm64 "* ]]; then
        if ! make -s deps-arm64 >/dev/null; then
            ERR="make deps-arm64 could not set up the aarch64 cross build"
            ISAS=${ISAS//arm64/}
        elif ! PKG_CONFIG_aarch64_unknown_linux_gnu=aarch64-linux-gnu-pkg-config PKG_CONFIG_ALLOW_CROSS=1 \
            cargo build --release --quiet --target $ARM64 --example bench_pages; then
            ERR="cargo build --target $ARM64 --example bench_pages failed"
            ISAS=${ISAS//arm64/}
        fi
    fi
    # One QEMU run per ISA counts every page: bench_pages warms a state per page with one view,
    # then makes PAGES_VIEWS first views, each between two markers the plugin logs with its count
    # ("mark I N"); bench_pages prints "NAME I J" per view. An ISA that fails is left out (the
    # report then estimates arm64 from x86-64 and says so).
    for isa in $ISAS; do
        qemu=(qemu-x86_64) prog=$BP
        if [ "$isa" = arm64 ]; then
            prog=$TARGET/$ARM64/release/examples/bench_pages
            # Debian 12's own arm64 glibc (libc6:arm64, which libpcap-dev:arm64 of make deps-arm64
            # brings; the Pi's glibc) when it is there: under QEMU 7.2 the first pthread_create
            # (tokio's blocking pool, where the store reads run) never returns with the cross
            # toolchain's glibc (libc6-arm64-cross 2.36-8cross1 in /usr/aarch64-linux-gnu).
            if [ -e /lib/ld-linux-aarch64.so.1 ]; then
                qemu=(qemu-aarch64)
            else
                qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
            fi
        fi
        fresh
        if ! timeout "${PAGES_QEMU_SECS:-900}" "${qemu[@]}" -plugin "$W/insn_count.so" -d plugin -D "$W/plugin-$isa.log" \
            "$prog" "$W/run.db" count "$W/pages.txt" "$VIEWS" >"$W/marks-$isa.txt" 2>"$W/err-$isa.txt"; then
            tail -5 "$W/err-$isa.txt" >&2
            ERR="${ERR:+$ERR; }the qemu run of bench_pages count failed on $isa (exit or timeout after ${PAGES_QEMU_SECS:-900} s; $W/err-$isa.txt)"
            rm -f "$W/marks-$isa.txt"
        fi
    done
else
    ERR="PAGES_COUNT=0"
fi
python3 - "$W" "$OUT/pages.json" "$RUNS" "$SRC" "$ERR" "$(stat -c %s "$W/pages.db")" "$(qemu-aarch64 --version 2>/dev/null | head -1)" "$VIEWS" "$NOW" <<'PY'
import glob, json, os, statistics, sys
w, out, runs, src, err, db_bytes, qemu, views, now = sys.argv[1:10]
pages = json.load(open(f"{w}/time.json"))
for marks in sorted(glob.glob(f"{w}/marks-*.txt")):
    isa = os.path.basename(marks)[len("marks-"):-len(".txt")]
    at = {}
    for line in open(f"{w}/plugin-{isa}.log"):
        f = line.split()
        if f[0] == "mark":
            at[int(f[1])] = int(f[2])
    per, size = {}, {}
    for line in open(marks):
        name, i, j, n = line.split()
        per.setdefault(name, []).append(at[int(j)] - at[int(i)])
        size[name] = int(n)
    for name, v in per.items():
        # Views of one page differ by a few instructions (allocator and cache state): the median.
        pages[name][f"insns_{isa}"] = int(statistics.median(v))
        pages[name][f"insns_{isa}_views"] = v
        pages[name][f"bytes_{isa}"] = size[name]
json.dump({"source": src, "db_bytes": int(db_bytes), "runs": int(runs), "qemu": qemu, "now": int(now),
           "count_views": int(views), "count_error": err, "pages": pages}, open(out, "w"), indent=1)
PY
