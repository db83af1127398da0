#!/usr/bin/env bash
# Builds the cargo fuzz targets and runs each for a fixed number of executions, then prints one
# line per target (executions, seconds, crashes) and a total.
#   fuzz/run.sh smoke   short runs (make fuzz-smoke, part of make test)
#   fuzz/run.sh long    the campaign (make fuzz): >= 10 million executions of frame decode
#
# Sanitizer: none. Every lanmeter crate forbids unsafe code, so AddressSanitizer would add little
# on these targets, and it needs nightly's -Zsanitizer (RUSTC_BOOTSTRAP=1 on this stable-only
# toolchain). Debug assertions are on (-a), so arithmetic overflow is a crash too.
# A crash stops that target, leaves its input in fuzz/artifacts/<target>/ and makes the script
# fail; turn each one into a unit test next to the parser.
set -euo pipefail
mode=${1:-smoke}
cd "$(dirname "$0")"
CARGO=${CARGO:-cargo}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
FUZZ_TARGET_DIR=$CARGO_TARGET_DIR/fuzz

case $mode in
smoke) declare -A runs=([frame_decode]=200000 [pcap_reader]=20000 [discovery_frame]=200000 [dhcp]=100000 [mdns]=100000 [ndp]=100000 [arp]=50000 [wifi]=100000 [config]=2000) ;;
long) declare -A runs=([frame_decode]=10000000 [pcap_reader]=500000 [discovery_frame]=5000000 [dhcp]=2000000 [mdns]=2000000 [ndp]=2000000 [arp]=1000000 [wifi]=3000000 [config]=20000) ;;
*) echo "usage: $0 smoke|long" >&2; exit 2 ;;
esac
targets=(frame_decode pcap_reader discovery_frame dhcp mdns ndp arp wifi config)

command -v cargo-fuzz >/dev/null || $CARGO install --locked cargo-fuzz
# The main lockfile pins the versions lanmeter is tested with; cargo adds libfuzzer-sys to it.
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock
python3 seeds.py seeds >/dev/null
$CARGO fuzz build -s none -a --target-dir "$FUZZ_TARGET_DIR"

total_runs=0; total_ms=0; crashed=0; report=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    log=$FUZZ_TARGET_DIR/$t.log
    start=$(date +%s%N)
    status=0
    # -max_len: a frame, DHCP or DNS message fits in 4 KiB; files and configs get more room.
    case $t in pcap_reader | config) max_len=65536 ;; *) max_len=4096 ;; esac
    $CARGO fuzz run -s none -a --target-dir "$FUZZ_TARGET_DIR" "$t" "corpus/$t" "seeds/$t" -- \
        -runs="${runs[$t]}" -max_len=$max_len -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || status=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    done_runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1 || true)
    done_runs=${done_runs:-0}
    if [ "$status" != 0 ]; then
        crashed=$((crashed + 1))
        echo "fuzz: $t FAILED (exit $status); log $log, input in fuzz/artifacts/$t/:" >&2
        grep -m5 -E 'panicked|ERROR|SUMMARY' "$log" >&2 || tail -5 "$log" >&2
    fi
    report+=("$(printf 'fuzz: %-16s %10d runs %6d.%d s  %s' "$t" "$done_runs" $((ms / 1000)) $((ms % 1000 / 100)) "$([ "$status" = 0 ] && echo ok || echo CRASH)")")
    total_runs=$((total_runs + done_runs))
    total_ms=$((total_ms + ms))
done
printf '%s\n' "${report[@]}"
printf 'fuzz %s: %d targets, %d executions in %d.%d s, %d crashed\n' "$mode" "${#targets[@]}" "$total_runs" $((total_ms / 1000)) $((total_ms % 1000 / 100)) "$crashed"
[ "$crashed" = 0 ]
