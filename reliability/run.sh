#!/usr/bin/env bash
# make reliability: the fuzz, soak, fault-injection, delivery and "Pi realities" campaigns of
# the README's Durability section and issue 25, one after another,
# then RELIABILITY.md from their results.
#
# Contract with each campaign (reliability/campaigns/NAME.sh, run from the repository root with
# LM=<release lanmeter binary>, OUT=<this run's directory>, TARGET_DIR=<cargo target dir>):
#   - it writes OUT/NAME.json: {"campaign", "command", "runs", "failures", "crashes",
#     "corrupt_dbs", "lost_alerts", "bytes_lost", "seconds", "fixed": [..], "notes": [..]}
#     where "failures" counts runs whose outcome broke a promise (any of the other counters);
#   - it writes OUT/NAME.md: its own section (tables, plots as OUT/*.svg, what each row means);
#   - it exits non-zero only when it could not run at all; a broken promise is a counted failure.
# Campaigns run in the order listed; CAMPAIGNS="soak faults" runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
export TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export OUT=${OUT:-$TARGET_DIR/reliability}
CAMPAIGNS=${CAMPAIGNS:-fuzz soak faults delivery pi}
mkdir -p "$OUT"
export RELIABILITY_START=$(date +%s)

cargo build --release --quiet --bin lanmeter
export LM=$TARGET_DIR/release/lanmeter

status=0
for c in $CAMPAIGNS; do
    script=reliability/campaigns/$c.sh
    [ -x "$script" ] || { echo "reliability: no campaign $script" >&2; status=1; continue; }
    echo "reliability: campaign $c started $(date -u +%H:%M:%S)"
    start=$(date +%s)
    "$script" || { echo "reliability: campaign $c could not run (exit $?)" >&2; status=1; }
    echo "reliability: campaign $c finished in $(($(date +%s) - start)) s"
done

python3 reliability/report.py "$OUT" $CAMPAIGNS >RELIABILITY.md
echo "reliability: wrote RELIABILITY.md"
tail -n +1 RELIABILITY.md | sed -n '/^| campaign/,/^$/p'
# The run fails when a campaign could not run or a promise was broken.
python3 - "$OUT" $CAMPAIGNS <<'PY' || status=1
import json, sys
out = sys.argv[1]
bad = [c for c in sys.argv[2:] if json.load(open(f"{out}/{c}.json")).get("failures", 1) != 0]
sys.exit(1 if bad else 0)
PY
exit $status
