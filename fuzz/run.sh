#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for a fixed number of executions, then prints one
# line per target (executions, seconds, corpus size, crashes), a total, and the count line
# `fuzz: N passed, M failed` that `make test` adds to its summary (one per target).
#   fuzz/run.sh smoke   short runs (make fuzz-smoke, part of make test): a few minutes in all
#   fuzz/run.sh long    the campaign (make fuzz, make reliability): >= 10 million executions of
#                       frame decode
# FUZZ_REPORT=FILE also writes one tab-separated line per target there:
#   target  executions  milliseconds  crashed(0/1)  corpus files  CPU milliseconds
# (wall time depends on what else the machine runs; CPU time says what the target itself cost)
#
# Build: plain `cargo build` of this workspace with the dev profile, in the target directory
# `cargo test` uses, and rustc-sancov.sh as RUSTC_WRAPPER adding cargo-fuzz's instrumentation
# flags to lanmeter and the targets only. So neither cargo-fuzz nor a second, instrumented build
# of every dependency is needed: after `cargo test` the build compiles lanmeter, the targets,
# libFuzzer itself and the few crates whose features differ (see Cargo.toml here).
#
# Sanitizer: none. Every lanmeter crate forbids unsafe code, so AddressSanitizer would add little
# on these targets, and it needs nightly's -Zsanitizer (RUSTC_BOOTSTRAP=1 on this stable-only
# toolchain). Debug assertions and overflow checks are on, so arithmetic overflow is a crash too.
# A crash (or an input running longer than 10 s) stops that target, leaves its input in
# fuzz/artifacts/<target>/ and makes the script fail; turn each one into a unit test next to the
# parser. Replay one with: $CARGO_TARGET_DIR/debug/<target> fuzz/artifacts/<target>/<file>
set -euo pipefail
mode=${1:-smoke}
# The target directory `cargo test` uses (a relative one is the repository's, as for cargo).
root=$(cd "$(dirname "$0")/.." && pwd)
case ${CARGO_TARGET_DIR:-target} in
/*) ;;
*) CARGO_TARGET_DIR=$root/${CARGO_TARGET_DIR:-target} ;;
esac
export CARGO_TARGET_DIR
cd "$root/fuzz"
CARGO=${CARGO:-cargo}

case $mode in
smoke) declare -A runs=([frame_decode]=1000000 [pcap_reader]=50000 [discovery_frame]=500000 [dhcp]=300000 [mdns]=300000 [ndp]=300000 [arp]=200000 [wifi]=300000 [config]=2000 [web_body]=3000 [names]=300000) ;;
long) declare -A runs=([frame_decode]=12000000 [pcap_reader]=300000 [discovery_frame]=4000000 [dhcp]=1000000 [mdns]=1000000 [ndp]=1000000 [arp]=1000000 [wifi]=2000000 [config]=10000 [web_body]=50000 [names]=1000000) ;;
*) echo "usage: $0 smoke|long" >&2; exit 2 ;;
esac
targets=(frame_decode pcap_reader discovery_frame dhcp mdns ndp arp wifi config web_body names)

# The main lockfile pins the versions lanmeter is tested with; cargo adds the three crates
# Cargo.toml pins exactly (libfuzzer-sys and its own dependencies) and nothing else.
cp ../Cargo.lock Cargo.lock
python3 seeds.py seeds >/dev/null
build_start=$(date +%s)
RUSTC_WRAPPER=$PWD/rustc-sancov.sh $CARGO build --quiet --bins
echo "fuzz: targets built in $(($(date +%s) - build_start)) s"
bin=$CARGO_TARGET_DIR/debug

total_runs=0; total_ms=0; crashed=0; report=()
[ -z "${FUZZ_REPORT:-}" ] || : >"$FUZZ_REPORT"
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    log=$CARGO_TARGET_DIR/fuzz-$t.log
    start=$(date +%s%N)
    status=0
    # -max_len: a frame, DHCP or DNS message or a form fits in 4 KiB; files and configs get more.
    case $t in pcap_reader | config) max_len=65536 ;; *) max_len=4096 ;; esac
    extra=()
    [ ! -f "seeds/$t.dict" ] || extra+=("-dict=seeds/$t.dict")
    cpu_file=$CARGO_TARGET_DIR/fuzz-$t.cpu
    {
        TIMEFORMAT='%3U %3S'
        time "$bin/$t" "corpus/$t" "seeds/$t" -runs="${runs[$t]}" -max_len=$max_len -timeout=10 \
            -print_final_stats=1 -artifact_prefix="artifacts/$t/" "${extra[@]}" >"$log" 2>&1
    } 2>"$cpu_file" || status=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    cpu_ms=$(awk '{ printf "%d", ($1 + $2) * 1000 }' "$cpu_file")
    done_runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1 || true)
    done_runs=${done_runs:-0}
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [ "$status" != 0 ]; then
        crashed=$((crashed + 1))
        echo "fuzz: $t FAILED (exit $status); log $log, input in fuzz/artifacts/$t/:" >&2
        grep -m5 -E 'panicked|ERROR|SUMMARY|answered' "$log" >&2 || tail -5 "$log" >&2
    fi
    report+=("$(printf 'fuzz: %-16s %10d runs %6d.%d s (CPU %d.%d s) %6d corpus  %s' "$t" "$done_runs" $((ms / 1000)) $((ms % 1000 / 100)) $((cpu_ms / 1000)) $((cpu_ms % 1000 / 100)) "$corpus" "$([ "$status" = 0 ] && echo ok || echo CRASH)")")
    [ -z "${FUZZ_REPORT:-}" ] || printf '%s\t%d\t%d\t%d\t%d\t%d\n' "$t" "$done_runs" "$ms" "$([ "$status" = 0 ] && echo 0 || echo 1)" "$corpus" "$cpu_ms" >>"$FUZZ_REPORT"
    total_runs=$((total_runs + done_runs))
    total_ms=$((total_ms + ms))
done
printf '%s\n' "${report[@]}"
printf 'fuzz %s: %d targets, %d executions in %d.%d s, %d crashed\n' "$mode" "${#targets[@]}" "$total_runs" $((total_ms / 1000)) $((total_ms % 1000 / 100)) "$crashed"
printf 'fuzz: %d passed, %d failed\n' $((${#targets[@]} - crashed)) "$crashed"
[ "$crashed" = 0 ]
