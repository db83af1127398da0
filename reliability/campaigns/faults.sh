#!/usr/bin/env bash
# Fault-injection campaign (the README's Durability section): SIGKILL x200, disk full during flush and backup, a locked
# database, a read-only filesystem and wall-clock jumps, against the release binary $LM.
# Writes $OUT/faults.json and $OUT/faults.md (contract: reliability/run.sh). Needs root,
# iproute2, ping and libfaketime (Debian faketime; RELIABILITY_DEBS in the Makefile).
# FAULTS_KILLS, FAULTS_REPS, FAULTS_SEED and FAULTS_ONLY="sigkill db_locked" shorten a run.
set -euo pipefail
: "${LM:?set LM to the release lanmeter binary}" "${OUT:?set OUT to the results folder}"
[ "$(id -u)" = 0 ] || { echo "faults: needs root (network namespaces, tmpfs mounts)" >&2; exit 2; }
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null ||
    { echo "faults: libfaketime missing: apt-get install faketime (make deps-reliability)" >&2; exit 2; }
mkdir -p "$OUT"
exec python3 "$(dirname "$0")/../faults.py"
