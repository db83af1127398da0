#!/usr/bin/env bash
# Keeps "a clone with nothing beside it passes" true: clones the committed tree into an empty
# temporary folder (no shared/ anywhere above it, no LANMETER_* overrides) and runs there the
# tests that read the capture corpus through the one lookup every corpus test uses
# (tests/it/main.rs: pcap_corpus). The target directory is the caller's, so only lanmeter itself is
# compiled again (the clone's path gives it its own artifacts) and the dependencies are reused.
# Prints cargo's `test result:` line, which `make test` adds to its total.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
target=$(cd "$repo" && realpath -m "${CARGO_TARGET_DIR:-target}")
tmp=$(mktemp -d /tmp/lanmeter-clone.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --no-hardlinks "$repo" "$tmp/lanmeter"
for d in "$tmp" /tmp /; do
    if [ -e "$d/shared" ]; then echo "fresh-clone: $d/shared exists, the check would not be honest" >&2; exit 1; fi
done
cd "$tmp/lanmeter"
start=$(date +%s)
env $(env | sed -n 's/^\(LANMETER_[A-Z_]*\)=.*/-u \1/p') CARGO_TARGET_DIR="$target" \
    cargo test --quiet --test it -- \
    corpus::a_cut_capture_fails_in_one_line_and_still_matches_tshark \
    cli_errors::replay_of_a_radiotap_capture_says_ethernet_is_needed \
    devices::real_captures_give_names_addresses_vendors_and_types
echo "fresh-clone: corpus tests passed in a clone at $tmp/lanmeter in $(($(date +%s) - start)) s"
