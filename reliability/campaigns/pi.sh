#!/usr/bin/env bash
# "Pi realities" campaign (issue 25): what a Raspberry Pi does to lanmeter beyond the other
# campaigns. The release binary's memory under 20 web clients with a Pi's thread counts (and its
# survival in a 256 MiB memory cgroup), then the integration tests of tests/it/pi_realities.rs
# (SIGHUP, a capture interface created 60 s after the start, a time zone set after the first
# run, a capture stamped 2000-01-01) and the damaged-database tests (`cargo test --test it
# damage`). Writes $OUT/pi.json and $OUT/pi.md (contract: reliability/run.sh).
# Knobs: PI_LOAD_SECS=90 PI_IDLE_SECS=30 PI_CLIENTS=20 PI_LATE_SECS=60.
# Needs root (cgroup v1 memory controller, network namespaces), curl, sqlite3, python3.
set -euo pipefail
: "${LM:?set LM to the release lanmeter binary}" "${OUT:?set OUT to the results folder}"
[ "$(id -u)" = 0 ] || { echo "pi: needs root (memory cgroup, network namespaces)" >&2; exit 2; }
mkdir -p "$OUT"
exec python3 "$(dirname "$0")/../pi_realities.py"
