"""bench/sdwrites.sh, one household: turns the window's strace log, daemon log and counters into
bytes written per cause and per day (JSON on stdout).

usage: sdwrites.py STRACE_LOG DAEMON_LOG THREADS STATE_DIR PID T0 T1 SECTORS0 SECTORS1
                   WRITE_BYTES0 WRITE_BYTES1 DEVICES PPS BACKUP_BYTES BACKUPS_PER_DAY DB_BYTES CONFIG
                   [WAL: steady | first]
"""

import json
import re
import sys
from datetime import datetime

(log, dlog, threads, state, pid, t0, t1, s0, s1, w0, w1, devices, pps, backup_bytes, backups_per_day, db_bytes,
 config, *rest) = sys.argv[1:]
wal = rest[0] if rest else "first"
pid, t0, t1 = int(pid), float(t0), float(t1)
mount = state.rsplit("/", 1)[0]
secs = t1 - t0
DAY = 86400

names = {}
for line in open(threads):
    tid, _, name = line.strip().partition(" ")
    names[int(tid)] = name

# Maintenance rounds that wrote something: the daemon logs "history maintenance" with its ms.
maint = []
rounds_shared = []
for line in open(dlog):
    if "history maintenance" not in line:
        continue
    # Since issue 26 the round runs in the flush's transaction: its pages are in the flush's
    # commit, which is counted as such (the line still counts the rolling rounds).
    shared = "in the flush's commit" in line
    m = re.match(r"(\S+)", line)
    ms = re.search(r"ms=(\d+)", line)
    hours = re.search(r"rolled_hours=(\d+)", line)
    try:
        end = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
    except ValueError:
        continue
    if shared:
        rounds_shared.append(end)
        continue
    maint.append((end - int(ms.group(1) if ms else 0) / 1000 - 0.5, end + 0.05, int(hours.group(1)) if hours else 0))

CALL = re.compile(r"^(\d+)\s+([\d.]+)\s+(\w+)\((\d+)<([^>]*)>")
RESUMED = re.compile(r"^(\d+)\s+([\d.]+)\s+<\.\.\. (\w+) resumed>.*=\s+(-?\d+)")
RET = re.compile(r"=\s+(-?\d+)")
pending = {}
causes = {}


def cause_of(tid, ts, path):
    if path.startswith(state + "/backups") or "/backups/" in path:
        return "backups"
    if path.endswith("-wal"):
        if tid == pid:
            if any(a <= ts <= b for a, b, _ in maint):
                return "history maintenance (rollups, retention)"
            return "flush commits"
        return "other writers (discovery, survey, web)"
    if path.endswith(".db"):
        return "checkpoints (WAL into the database file)"
    return "other files"


# Over the whole run: WAL bytes appended, and what the checkpoint at the clean stop (the last
# connection's close) wrote into the database file.
run = {"wal_bytes": 0, "stop_checkpoint_bytes": 0}


def add(tid, ts, call, path, ret):
    # Only the card counts (the daemon's log on standard error goes elsewhere).
    if not path.startswith(mount):
        return
    if call.startswith(("write", "pwrite")) and ret > 0:
        if path.endswith("-wal"):
            run["wal_bytes"] += ret
        elif path.endswith(".db") and ts > t1:
            run["stop_checkpoint_bytes"] += ret
    if not (t0 <= ts <= t1):
        return
    c = causes.setdefault(cause_of(tid, ts, path), {"bytes": 0, "writes": 0, "syncs": 0, "threads": set()})
    c["threads"].add(names.get(tid, str(tid)))
    # Which thread wrote and synced what: "other writers" are several (discovery, alerts, probes).
    t = c.setdefault("by_thread", {}).setdefault(names.get(tid, str(tid)), {"bytes": 0, "syncs": 0})
    if call in ("fsync", "fdatasync"):
        c["syncs"] += 1
        t["syncs"] += 1
    elif ret > 0:
        c["bytes"] += ret
        c["writes"] += 1
        t["bytes"] += ret


for line in open(log):
    m = CALL.match(line)
    if m:
        tid, ts, call, _fd, path = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4), m.group(5)
        if "<unfinished" in line:
            pending[tid] = (ts, call, path)
            continue
        r = RET.search(line[line.rfind(")"):])
        add(tid, ts, call, path, int(r.group(1)) if r else 0)
        continue
    m = RESUMED.match(line)
    if m and int(m.group(1)) in pending:
        ts, call, path = pending.pop(int(m.group(1)))
        add(int(m.group(1)), ts, call, path, int(m.group(4)))

device_bytes = (int(s1) - int(s0)) * 512
app_bytes = sum(c["bytes"] for c in causes.values())
# Rounds that rolled something: the open hour is rolled every quarter once settled
# (store::rollup::OPEN_HOUR_STEP), so 96 such rounds a day, each closed hour and day among them.
ROLLS_PER_DAY = 96
rolls = sum(1 for a, b, h in maint if t0 <= a <= t1 and h > 0)
per_day = {}
for name, c in causes.items():
    c["threads"] = sorted(c["threads"])
    if name.startswith("history maintenance") and rolls:
        scale = ROLLS_PER_DAY / rolls
    else:
        scale = DAY / secs
    c["per_day_bytes"] = round(c["bytes"] * scale)
    c["per_day_syncs"] = round(c["syncs"] * scale)
    for t in c.get("by_thread", {}).values():
        t["per_day_bytes"] = round(t["bytes"] * scale)
        t["per_day_syncs"] = round(t["syncs"] * scale)
# Checkpoints: the default wal_autocheckpoint copies the WAL into the database file every 1,000
# frames (4,120 bytes each). When none fell in the window, a day's are estimated from the stop's
# checkpoint, scaled by frames (an upper bound: a longer WAL repeats pages, which a checkpoint
# copies once).
CKPT = "checkpoints (WAL into the database file)"
FRAME = 4096 + 24
if CKPT not in causes and run["wal_bytes"] and run["stop_checkpoint_bytes"]:
    wal_per_day = sum(c["per_day_bytes"] for n, c in causes.items() if n in (
        "flush commits", "history maintenance (rollups, retention)", "other writers (discovery, survey, web)"))
    per_frame = run["stop_checkpoint_bytes"] / (run["wal_bytes"] / FRAME)
    causes[CKPT + ", estimated"] = {
        "bytes": 0, "writes": 0, "syncs": 0, "threads": [],
        "per_day_bytes": round(wal_per_day / FRAME * per_frame), "per_day_syncs": round(2 * wal_per_day / FRAME / 1000),
        "stop_checkpoint_bytes": run["stop_checkpoint_bytes"], "wal_frames_at_stop": round(run["wal_bytes"] / FRAME)}
# A checkpoint inside the window: its measured cost, times the checkpoints a day's WAL makes (one
# per 1,000 frames), rather than the window scaled (the warm-up's frames may have set it off).
if CKPT in causes:
    c = causes[CKPT]
    wal_per_day = sum(x["per_day_bytes"] for n, x in causes.items() if n in (
        "flush commits", "history maintenance (rollups, retention)", "other writers (discovery, survey, web)"))
    per_day_ckpts = wal_per_day / FRAME / 1000
    c["per_day_bytes"] = round(c["bytes"] / max(1, c["syncs"]) * per_day_ckpts)
    c["per_day_syncs"] = round(2 * per_day_ckpts)
fs = max(device_bytes - app_bytes, 0)
causes["filesystem (ext4 journal, metadata, -shm writeback)"] = {
    "bytes": fs, "writes": 0, "syncs": 0, "threads": [], "per_day_bytes": round(fs * DAY / secs), "per_day_syncs": 0}
causes["nightly backup (measured apart, block device)"] = {
    "bytes": int(backup_bytes), "writes": 0, "syncs": 0, "threads": ["backup"],
    "per_day_bytes": round(int(backup_bytes) * float(backups_per_day)), "per_day_syncs": 0}
print(json.dumps({
    "devices": int(devices), "pps": int(pps), "window_s": round(secs, 1), "backups_per_day": float(backups_per_day),
    "config": config, "wal": wal, "db_bytes": int(db_bytes), "device_bytes": device_bytes,
    "process_write_bytes": int(w1) - int(w0), "rolling_rounds": rolls,
    "rounds_in_flush_commits": sum(1 for t in rounds_shared if t0 <= t <= t1),
    "per_day_bytes": sum(c["per_day_bytes"] for c in causes.values()),
    "causes": causes,
}, indent=1))
