#!/usr/bin/env bash
# make bench, Pi projection part: instructions per frame of `lanmeter replay` and of the bare
# libpcap loop on arm64 (the Raspberry Pi build) and on x86-64, counted by the same method: both
# binaries run under QEMU user mode (qemu-aarch64 / qemu-x86_64, Debian's qemu-user, which loads TCG
# plugins; qemu-user-static cannot) with bench/insn_count.c counting executed guest instructions.
# Two capture sizes, so the fixed start-up cost cancels: per frame = (I(big) - I(small)) / frames.
# The store (examples/bench_store on PI_STORE_DAYS days) is counted the same way for the
# arm64/x86 instruction ratio of SQLite-heavy work. bench/report.py turns $OUT/pi.json into the
# projection. QEMU counts instructions, not time: the report states the IPC assumption.
#   OUT=bench-out PI_SMALL=200000 PI_BIG=1000000 PI_STORE_DAYS=2 ./bench/pi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-bench-out}
SMALL=${PI_SMALL:-200000}
BIG=${PI_BIG:-1000000}
STORE_DAYS=${PI_STORE_DAYS:-2}
ARM64=aarch64-unknown-linux-gnu
mkdir -p "$OUT/pi"
OUT=$(realpath "$OUT")
fail() { # REASON: pi.json says why there are no arm64 counts, and the report projects from x86 alone.
    python3 -c 'import json,sys; json.dump({"error": sys.argv[1]}, open(sys.argv[2], "w"))' "$1" "$OUT/pi.json"
    echo "bench/pi.sh: $1" >&2
    exit 0
}

command -v qemu-aarch64 >/dev/null || fail "qemu-aarch64 (Debian qemu-user) is not installed"
gcc -shared -fPIC -O2 -o "$OUT/pi/insn_count.so" bench/insn_count.c || fail "gcc could not build bench/insn_count.c"
make -s deps-arm64 >/dev/null || fail "make deps-arm64 could not set up the aarch64 cross build"
PKG_CONFIG_aarch64_unknown_linux_gnu=aarch64-linux-gnu-pkg-config PKG_CONFIG_ALLOW_CROSS=1 \
    cargo build --release --quiet --target $ARM64 --bin lanmeter --example read_floor --example bench_store \
    || fail "cargo build --target $ARM64 failed"
cargo build --release --quiet --bin lanmeter --example read_floor --example bench_store

LM=$TARGET/release/lanmeter
for n in "$SMALL" "$BIG"; do
    [ -f "$OUT/pi/household-$n.pcap" ] || "$LM" generate "$OUT/pi/household-$n.pcap" --frames "$n" --seed 7 >/dev/null
done

# count ISA NAME ARGS...: guest instructions of one run, appended to pi/counts.txt.
count() {
    local isa=$1 name=$2; shift 2
    local qemu=(qemu-x86_64) dir=$TARGET/release
    if [ "$isa" = arm64 ]; then
        qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu) dir=$TARGET/$ARM64/release
    fi
    local prog=$dir/$1; shift
    local n
    n=$("${qemu[@]}" -plugin "$OUT/pi/insn_count.so" -d plugin -D "$OUT/pi/plugin.log" "$prog" "$@" >/dev/null 2>"$OUT/pi/err.txt" \
        && sed -n 's/^guest_insns //p' "$OUT/pi/plugin.log") || { cat "$OUT/pi/err.txt" >&2; return 1; }
    [ -n "$n" ] || { echo "no count from the plugin for $isa $name" >&2; return 1; }
    echo "$isa $name $n" >>"$OUT/pi/counts.txt"
}

: >"$OUT/pi/counts.txt"
for isa in arm64 x86_64; do
    for n in "$SMALL" "$BIG"; do
        count $isa "replay-$n" lanmeter replay "$OUT/pi/household-$n.pcap" --json || fail "qemu run of replay failed on $isa"
        count $isa "floor-$n" examples/read_floor "$OUT/pi/household-$n.pcap" || fail "qemu run of read_floor failed on $isa"
    done
    rm -rf "$OUT/pi/store-$isa"
    count $isa store examples/bench_store "$OUT/pi/store-$isa" "$STORE_DAYS" || fail "qemu run of bench_store failed on $isa"
done
# Cross-check of the x86 counts natively (valgrind's callgrind sees the host CPU's features, so
# glibc picks the same string and memory routines as in the timed runs, which QEMU's CPU model may not).
if command -v valgrind >/dev/null; then
    for n in "$SMALL" "$BIG"; do
        c=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$LM" replay "$OUT/pi/household-$n.pcap" --json 2>&1 >/dev/null \
            | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
        [ -n "$c" ] && echo "x86_64_callgrind replay-$n $c" >>"$OUT/pi/counts.txt"
    done
fi
python3 - "$OUT" "$SMALL" "$BIG" "$STORE_DAYS" "$(qemu-aarch64 --version | head -1)" <<'PY'
import json, sys
out, small, big, days, qemu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
counts = {}
for line in open(f"{out}/pi/counts.txt"):
    isa, name, n = line.split()
    counts.setdefault(isa, {})[name] = int(n)
per_frame = {isa: {p: (c[f"{p}-{big}"] - c[f"{p}-{small}"]) / (big - small)
                   for p in ("replay", "floor") if f"{p}-{big}" in c and f"{p}-{small}" in c}
             for isa, c in counts.items()}
json.dump({"qemu": qemu, "small": small, "big": big, "store_days": days, "counts": counts,
           "insns_per_frame": per_frame}, open(f"{out}/pi.json", "w"), indent=1)
PY
