#!/bin/sh
# RUSTC_WRAPPER for the fuzz build (fuzz/run.sh): adds libFuzzer's coverage instrumentation, the
# flags `cargo fuzz build` passes (cargo-fuzz 0.13 src/project.rs), to lanmeter and the fuzz
# targets only. Every other crate is compiled exactly as `cargo test` compiles it, so the fuzz
# build reuses the dependencies `make test` has already built in the same target directory, and
# cargo never sees a RUSTFLAGS change that would rebuild them. Coverage of the code under test is
# what guides libFuzzer; instrumenting tokio or serde would only slow every execution.
# cargo does not see these flags: after changing them, `touch src/lib.rs` so lanmeter is rebuilt.
rustc=$1
shift
case ${CARGO_PKG_NAME:-} in
lanmeter | lanmeter-fuzz)
    case " $* " in
    *" --crate-name build_script_build "*) ;;
    *)
        exec "$rustc" "$@" \
            -Cpasses=sancov-module \
            -Cllvm-args=-sanitizer-coverage-level=4 \
            -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
            -Cllvm-args=-sanitizer-coverage-pc-table \
            -Cllvm-args=-sanitizer-coverage-trace-compares \
            -Cllvm-args=-sanitizer-coverage-stack-depth \
            -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
            --cfg fuzzing
        ;;
    esac
    ;;
esac
exec "$rustc" "$@"
