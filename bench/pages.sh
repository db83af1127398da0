#!/usr/bin/env bash
# make bench, pages part: every dashboard page's first (uncached) view, in-process
# (examples/bench_pages.rs: the server's router and handlers, a fresh state per view, no socket),
# on the demo database of 200 devices × 365 days:
#   - timed here (x86, PAGES_RUNS views of each page, pages alternating);
#   - counted: executed instructions of one first view on arm64 (the Pi's build) and on x86-64,
#     both under QEMU user mode with bench/insn_count.c as bench/pi.sh counts replay: a run with
#     one warm-up view of the page minus a run with the warm-up and one uncached view, so start-up
#     and one-time set-up cancel (PAGES_ISAS="arm64" counts the Pi build only). bench/report.py turns arm64 instructions into Pi 4 milliseconds at 1.5 GHz and the
#     IPC it assumes (no x86 time enters that projection).
# The database is bench/web.sh's (OUT/web/web.db, its demo having run with live traffic) when it
# exists, else a fresh `lanmeter demo --build-only`. Writes OUT/pages.json.
#   OUT=bench-out PAGES_RUNS=5 PAGES_COUNT=1 PAGES_ISAS="arm64 x86_64" ./bench/pages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-bench-out}
RUNS=${PAGES_RUNS:-5}
COUNT=${PAGES_COUNT:-1}
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
    # A consistent copy of the live demo's database (its WAL folded in).
    python3 -c 'import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d)' \
        "$OUT/web/web.db" "$W/pages.db"
    SRC="bench/web.sh's demo database"
else
    rm -f "$W/pages.db" "$W/pages.db-wal" "$W/pages.db-shm"
    echo "bench-only admin password $RANDOM$RANDOM" >"$W/pw"
    "$LM" demo --db "$W/pages.db" --devices "$DEVICES" --days "$DAYS" --listen 127.0.0.1:0 --build-only \
        --admin-password-file "$W/pw" >"$W/demo.log"
    SRC="lanmeter demo --build-only --devices $DEVICES --days $DAYS"
fi
# fresh: a private copy of the database for one run (sessions are written; runs stay independent).
fresh() {
    rm -f "$W/run.db" "$W/run.db-wal" "$W/run.db-shm"
    cp "$W/pages.db" "$W/run.db"
}
fresh
"$BP" "$W/run.db" list >"$W/pages.txt"
fresh
"$BP" "$W/run.db" time "$W/pages.txt" "$RUNS" >"$W/time.json"

# Instruction counts (skipped with PAGES_COUNT=0 or without qemu; report.py says so).
: >"$W/counts.txt"
ERR=""
ISAS=${PAGES_ISAS:-arm64 x86_64}
if [ "$COUNT" = 1 ]; then
    if ! command -v qemu-aarch64 >/dev/null; then
        ERR="qemu-aarch64 (Debian qemu-user) is not installed"
    elif ! gcc -shared -fPIC -O2 -o "$W/insn_count.so" bench/insn_count.c; then
        ERR="gcc could not build bench/insn_count.c"
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
    # count ISA PATH VIEWS [admin]: guest instructions of one `bench_pages count` run.
    count() {
        local isa=$1 qemu=(qemu-x86_64) prog=$BP
        shift
        if [ "$isa" = arm64 ]; then
            qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu) prog=$TARGET/$ARM64/release/examples/bench_pages
        fi
        fresh
        rm -f "$W/plugin.log"
        timeout "${PAGES_QEMU_SECS:-600}" "${qemu[@]}" -plugin "$W/insn_count.so" -d plugin -D "$W/plugin.log" \
            "$prog" "$W/run.db" count "$@" >/dev/null 2>"$W/err.txt" || { cat "$W/err.txt" >&2; return 1; }
        sed -n 's/^guest_insns //p' "$W/plugin.log"
    }
    # One view of each page warms the process (both runs); the run with one more, uncached view
    # minus the run without it is that view's instructions. An ISA that fails is left out (the
    # report then estimates arm64 from x86-64 and says so).
    if [ -f "$W/insn_count.so" ]; then
        for isa in $ISAS; do
            while read -r name path admin; do
                if ! { n0=$(count $isa "$path" 0 $admin) && n1=$(count $isa "$path" 1 $admin); }; then
                    ERR="${ERR:+$ERR; }the qemu run of bench_pages $path failed on $isa"
                    break
                fi
                echo "$isa $name $path $((n1 - n0))" >>"$W/counts.txt"
            done <"$W/pages.txt"
        done
    fi
else
    ERR="PAGES_COUNT=0"
fi
python3 - "$W" "$OUT/pages.json" "$RUNS" "$SRC" "$ERR" "$(stat -c %s "$W/pages.db")" "$(qemu-aarch64 --version 2>/dev/null | head -1)" <<'PY'
import json, sys
w, out, runs, src, err, db_bytes, qemu = sys.argv[1:8]
pages = json.load(open(f"{w}/time.json"))
counts = {}
for line in open(f"{w}/counts.txt"):
    isa, name, path, n = line.split()
    counts.setdefault(isa, {})[name] = int(n)
for name, p in pages.items():
    for isa, c in counts.items():
        if name in c:
            p[f"insns_{isa}"] = c[name]
json.dump({"source": src, "db_bytes": int(db_bytes), "runs": int(runs), "qemu": qemu,
           "count_error": err, "pages": pages}, open(out, "w"), indent=1)
PY
