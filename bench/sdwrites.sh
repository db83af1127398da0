#!/usr/bin/env bash
# SD-card writes of the live daemon (issue 26): bytes written per day to the filesystem that holds
# the database, for a household of 25 and of 200 devices, split by cause.
#
# The real `lanmeter run` keeps its state (database, WAL, backups) on a loop-mounted ext4 (mounted
# noatime, as Raspberry Pi OS mounts its root). Its database starts as a year of history
# (`lanmeter demo --build-only`), so checkpoints and the nightly backup copy a realistic file. A
# generated household capture is replayed with tcpreplay onto a veth pair between two network
# namespaces at SD_PPS frames per second; the daemon captures the other end with discovery on and
# otherwise default settings. Over a window of SD_SECS seconds the script reads:
#   - the block device's sectors written (/sys/block/loopN/stat, field 7): everything the card
#     would see, the ext4 journal and the -shm page writeback included;
#   - /proc/PID/io write_bytes of the daemon;
#   - every write and fsync the daemon makes (strace -f -y, seccomp filtered to those calls), by
#     file and thread: that is the split by cause.
# Causes: flush commits (the main thread's WAL appends and fsyncs), history maintenance (the main
# thread's WAL writes logged as "history maintenance": rollups and retention), other writers
# (discovery, Wi-Fi survey, web sessions: WAL writes of other threads), checkpoints (writes into
# the database file itself), backups (files in the backup folder), and the filesystem's own share
# (block-device bytes minus all of the above: ext4 journal, metadata, the -shm file's page
# writeback). Per-day figures scale the window. The nightly backup is turned off in the window and
# measured on its own after it (`lanmeter backup`, the nightly's code path, on the same card),
# counted SD_BACKUPS_PER_DAY times. The window starts after SD_WARMUP seconds.
# The WAL file: SQLite reuses it from its start after each checkpoint and never shrinks it (no
# journal_size_limit), so a daemon that has run for a few hours overwrites blocks the file already
# has, while the first WAL cycle after a start (hours at the default 5-minute flush) appends and
# allocates with every commit. SD_WAL=steady (the default) measures the usual state: before the
# start the card's WAL is grown to its steady size (a 2 MB scratch table written and dropped by the
# sqlite3 shell with persist_wal, so the file stays), and the daemon writes its log from the
# start of that file. SD_WAL=first measures the first cycle after a start instead.
#
# Writes $OUT/sdwrites-$SD_LABEL.json; bench/report.py puts every sdwrites-*.json in BENCHMARKS.md.
#   LM=target/release/lanmeter SD_LABEL=after SD_SECS=900 SD_DEVICES="25 200" SD_PPS=1000 \
#   SD_CONFIG='flush_interval_secs = 10' ./bench/sdwrites.sh
# Needs root (loop devices, network namespaces), tcpreplay, strace, mkfs.ext4, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
LM=$(realpath "${LM:-${CARGO_TARGET_DIR:-target}/release/lanmeter}")
OUT=${OUT:-bench-out}
SD_LABEL=${SD_LABEL:-current}
SD_SECS=${SD_SECS:-900}
SD_DEVICES=${SD_DEVICES:-"25 200"}
SD_PPS=${SD_PPS:-1000}
SD_CONFIG=${SD_CONFIG:-}
SD_FRAMES=${SD_FRAMES:-600000}
# Backups per day the policy under test takes (the nightly backup: 1).
SD_BACKUPS_PER_DAY=${SD_BACKUPS_PER_DAY:-1}
SD_WAL=${SD_WAL:-steady}
case "$SD_WAL" in steady | first) ;; *) echo "SD_WAL must be steady or first" >&2; exit 2 ;; esac
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

TAG="sd$$"
NS_TX="${TAG}tx"
NS_RX="${TAG}rx"
IF_TX="${TAG}t"
IF_RX="${TAG}r"
TMP=$(mktemp -d /tmp/lanmeter-sd.XXXXXX)
MNT="$TMP/sd"
LOOP=
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    if mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT" || true; fi
    [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
    ip netns del "$NS_TX" 2>/dev/null || true
    ip netns del "$NS_RX" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_TX"
ip netns add "$NS_RX"
ip link add "$IF_TX" type veth peer name "$IF_RX"
ip link set "$IF_TX" netns "$NS_TX"
ip link set "$IF_RX" netns "$NS_RX"
for ns in "$NS_TX" "$NS_RX"; do
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip -n "$NS_TX" link set "$IF_TX" up
ip -n "$NS_RX" link set "$IF_RX" up

# sectors_written: field 7 of the block device's stat (512-byte sectors).
sectors_written() { awk '{print $7}' "/sys/block/$(basename "$LOOP")/stat"; }
write_bytes() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }

RESULTS=()
for D in $SD_DEVICES; do
    HIST="$OUT/sd-history-$D.db"
    PCAP="$OUT/sd-household-$D-$SD_FRAMES.pcap"
    [ -f "$HIST" ] || "$LM" demo --db "$HIST" --devices "$D" --days 365 --seed 7 --build-only >/dev/null 2>&1
    [ -f "$PCAP" ] || "$LM" generate "$PCAP" --frames "$SD_FRAMES" --devices "$D" --seed 9 --snaplen 1514 \
        --duration-secs 3600 >/dev/null

    # A fresh card image per household size: 512 MB ext4 with 4 KB blocks, as on a Pi.
    truncate -s 512M "$TMP/card.img"
    mkfs.ext4 -q -F "$TMP/card.img"
    LOOP=$(losetup -f --show "$TMP/card.img")
    mkdir -p "$MNT"
    mount -o noatime "$LOOP" "$MNT"
    mkdir -p "$MNT/state/backups"
    cp "$HIST" "$MNT/state/lanmeter.db"
    if [ "$SD_WAL" = steady ]; then
        sqlite3 "$MNT/state/lanmeter.db" >/dev/null <<'SQL'
.filectrl persist_wal 1
PRAGMA journal_mode=WAL;
PRAGMA wal_autocheckpoint=0;
CREATE TABLE sd_wal_warmup(b BLOB);
INSERT INTO sd_wal_warmup VALUES (zeroblob(2000000));
DROP TABLE sd_wal_warmup;
SQL
        [ -s "$MNT/state/lanmeter.db-wal" ] || { echo "sdwrites: the WAL was not kept" >&2; exit 1; }
    fi
    cat >"$TMP/lanmeter.toml" <<EOF
interface = "$IF_RX"
state_dir = "$MNT/state"
database = "$MNT/state/lanmeter.db"
backup_dir = "$MNT/state/backups"
listen = "127.0.0.1:18090"
# The nightly backup is measured on its own below (same code: \`lanmeter backup\` = backup_to).
backup_keep = 0
$SD_CONFIG
EOF
    sync -f "$MNT"

    ip netns exec "$NS_RX" strace -f --seccomp-bpf -qq -y -ttt \
        -e trace=write,pwrite64,pwritev,pwritev2,fsync,fdatasync,rename,unlink \
        -o "$TMP/strace.log" "$LM" run --config "$TMP/lanmeter.toml" 2>"$TMP/daemon.log" &
    STRACE=$!
    PIDS+=("$STRACE")
    PID=
    for _ in $(seq 100); do
        PID=$(cat "/proc/$STRACE/task/$STRACE/children" 2>/dev/null | awk '{print $1}')
        [ -n "$PID" ] && grep -q '"capturing"\|capturing' "$TMP/daemon.log" && break
        sleep 0.2
    done
    [ -n "$PID" ] || { cat "$TMP/daemon.log" >&2; exit 1; }
    PIDS+=("$PID")
    ip netns exec "$NS_TX" tcpreplay -q -i "$IF_TX" --pps "$SD_PPS" --loop 0 "$PCAP" >/dev/null 2>&1 &
    PIDS+=("$!")
    REPLAY=$!
    # Start-up is not part of the steady day: the first flush, discovery learning every device
    # at once, and the alerts announcing the replayed household's devices (new to the history
    # database) once, at the first alert round after that flush. So the warm-up outlasts the
    # flush interval (5 minutes by default) by two alert rounds.
    sleep "${SD_WARMUP:-420}"
    sync -f "$MNT"
    T0=$(date +%s.%N)
    S0=$(sectors_written)
    W0=$(write_bytes "$PID")
    sleep "$SD_SECS"
    # What the window dirtied but the kernel has not written yet belongs to it.
    sync -f "$MNT"
    T1=$(date +%s.%N)
    S1=$(sectors_written)
    W1=$(write_bytes "$PID")
    ls /proc/"$PID"/task | while read -r t; do echo "$t $(cat /proc/"$PID"/task/"$t"/comm)"; done >"$TMP/threads.txt"
    kill "$REPLAY" 2>/dev/null || true
    kill -TERM "$PID"
    wait "$STRACE" || true
    DBSIZE=$(stat -c %s "$MNT/state/lanmeter.db")
    # One nightly backup of this database (VACUUM INTO, check, fsync, rename), on the card.
    sync -f "$MNT"
    B0=$(sectors_written)
    "$LM" backup --db "$MNT/state/lanmeter.db" "$MNT/state/backups/nightly-test.db" >/dev/null 2>&1
    sync -f "$MNT"
    B1=$(sectors_written)
    python3 bench/sdwrites.py "$TMP/strace.log" "$TMP/daemon.log" "$TMP/threads.txt" "$MNT/state" "$PID" \
        "$T0" "$T1" "$S0" "$S1" "$W0" "$W1" "$D" "$SD_PPS" "$(( (B1 - B0) * 512 ))" "$SD_BACKUPS_PER_DAY" "$DBSIZE" "$SD_CONFIG" "$SD_WAL" >"$TMP/result-$D.json"
    RESULTS+=("$TMP/result-$D.json")
    mkdir -p "$OUT/raw"
    gzip -c "$TMP/strace.log" >"$OUT/raw/sdwrites-$SD_LABEL-$D.strace.gz"
    cp "$TMP/daemon.log" "$OUT/raw/sdwrites-$SD_LABEL-$D.daemon.log"
    cp "$TMP/threads.txt" "$OUT/raw/sdwrites-$SD_LABEL-$D.threads.txt"
    umount "$MNT"
    losetup -d "$LOOP"
    LOOP=
    rm -f "$TMP/card.img"
done
python3 - "$SD_LABEL" "${SD_NOTE:-}" "${RESULTS[@]}" >"$OUT/sdwrites-$SD_LABEL.json" <<'EOF'
import json, sys
label, note, files = sys.argv[1], sys.argv[2], sys.argv[3:]
print(json.dumps({"label": label, "policy": note, "households": [json.load(open(f)) for f in files]}, indent=1))
EOF
echo "sdwrites: $OUT/sdwrites-$SD_LABEL.json" >&2
