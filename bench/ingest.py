"""make bench, ingest and memory parts: turns bench/run.sh's raw timings into ingest.json and
memory.json, and puts darkstat's per-host totals (its --export file) beside lanmeter's per-device
totals for the same capture.

usage: ingest.py OUT FRAMES FLOOD_MACS RUNS
"""

import glob
import json
import os
import struct
import sys

out, frames, flood, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
raw = f"{out}/raw"


def runs_of(name):
    """All runs of NAME (raw/NAME.txt, or raw/NAME.1.txt ... when the programs alternated)."""
    files = sorted(glob.glob(f"{raw}/{name}.[0-9]*.txt")) or [f"{raw}/{name}.txt"]
    rows = []
    for f in files:
        rows += [line.split() for line in open(f) if line.strip()]
    cmd = open(files[0][: -len(".txt")] + ".cmd").read().strip()
    return {
        "command": cmd.replace(out, "bench-out").replace(os.environ.get("TARGET", "target") + "/", "target/"),
        "wall_s": [float(r[0]) for r in rows],
        "cpu_s": [float(r[1]) + float(r[2]) for r in rows],
        "max_rss_kb": [int(r[3]) for r in rows],
    }


def darkstat_export(path):
    """Parses darkstat's export file (its hosts_db section): per host IP, MAC, bytes in and out.

    Layout (darkstat's export-format.txt and hosts_db.c): file tag DA314159, section tag DA 'H'
    'S' 01, a u32 host count, then per host 'H' 'S' 'T' ver, the address (ver >= 3: a family byte 4
    or 6, then 4 or 16 bytes; ver 1/2: 4 bytes), last_seen u64 (ver >= 2), MAC, hostname length +
    bytes, in u64, out u64, then the host's IP protocol, TCP and UDP port tables (ver 4, which
    Debian's 3.0.719 writes, adds remote TCP and UDP port tables 't' and 'u'). Big-endian.
    """
    b = open(path, "rb").read()
    pos = 0

    def take(n):
        nonlocal pos
        v = b[pos:pos + n]
        if len(v) != n:
            raise ValueError("darkstat export ends early")
        pos += n
        return v

    def u(fmt):
        return struct.unpack(">" + fmt, take(struct.calcsize(fmt)))[0]

    if take(4) != b"\xda\x31\x41\x59" or take(4) != b"\xdaHS\x01":
        raise ValueError("not a darkstat export with a hosts section first")
    hosts = []
    for _ in range(u("I")):
        tag = take(4)
        if tag[:3] != b"HST":
            raise ValueError(f"bad host tag {tag!r}")
        ver = tag[3]
        if ver >= 3:
            fam = u("B")
            addr = take(4 if fam == 4 else 16)
        else:
            fam, addr = 4, take(4)
        if ver >= 2:
            u("Q")
        mac = take(6)
        take(u("B"))
        bytes_in, bytes_out = u("Q"), u("Q")
        take(1)  # 'P'
        take(u("B") * 17)
        take(1)  # 'T'
        take(u("H") * 26)
        take(1)  # 'U'
        take(u("H") * 18)
        if ver >= 4:  # remote-port tables: 't' as 'T', 'u' as 'U'
            take(1)
            take(u("H") * 26)
            take(1)
            take(u("H") * 18)
        ip = ".".join(str(x) for x in addr) if fam == 4 else ":".join(addr[i:i + 2].hex() for i in range(0, 16, 2))
        hosts.append({"ip": ip, "mac": ":".join(f"{x:02x}" for x in mac), "in": bytes_in, "out": bytes_out})
    return hosts


names = {
    "floor": "bare libpcap read loop (examples/read_floor)",
    "tcpdump": "tcpdump -r FILE -w /dev/null",
    "replay": "lanmeter replay --json (gateway inferred)",
    "replay_gw": "lanmeter replay --json --gateway MAC",
    "replay_nopassive": "lanmeter replay --json --no-passive-latency (passive latency off)",
    "replay_hs": "lanmeter replay --json, household with a handshake per web request (passive latency on)",
    "replay_hs_nopassive": "lanmeter replay --json --no-passive-latency, the same household with handshakes",
    "replay_endpoints": "lanmeter replay --json --gateway MAC --endpoints (remote endpoints on)",
    "darkstat": "darkstat -r FILE",
    "tcpdump_ng": "tcpdump -r FILE.pcapng -w /dev/null (libpcap's pcapng reader)",
    "replay_ng": "lanmeter replay --json on the same frames as pcapng",
}
ingest = {"frames": frames, "pcap_bytes": os.path.getsize(glob.glob(f"{out}/household-{frames}.pcap")[0]),
          "programs": {n: dict(label=label, **runs_of(n)) for n, label in names.items()
                       if glob.glob(f"{raw}/{n}.txt") or glob.glob(f"{raw}/{n}.[0-9]*.txt")}}

# Per-host totals side by side. lanmeter counts per MAC (frame length on the wire); darkstat per IP
# address (remembering the last MAC it saw for it). darkstat's hosts are summed per MAC to meet.
devices = json.load(open(f"{raw}/replay.json"))
cmp = {"lanmeter_devices": len(devices)}
try:
    hosts = darkstat_export(f"{out}/darkstat/darkstat.export")
    cmp["darkstat_hosts"] = len(hosts)
    by_mac = {}
    for h in hosts:
        e = by_mac.setdefault(h["mac"], {"in": 0, "out": 0, "ips": 0})
        e["in"] += h["in"]
        e["out"] += h["out"]
        e["ips"] += 1
    rows = []
    for d in devices:
        ds = by_mac.get(d["mac"].lower(), {"in": 0, "out": 0, "ips": 0})
        rows.append({"mac": d["mac"].lower(), "is_gateway": d.get("is_gateway", False),
                     "lanmeter": {k: d[k] for k in ("frames_sent", "frames_received", "bytes_sent", "bytes_received")},
                     "darkstat": ds})
    rows.sort(key=lambda r: -(r["lanmeter"]["bytes_sent"] + r["lanmeter"]["bytes_received"]))
    cmp["top"] = rows[:10]
    cmp["totals"] = {
        "lanmeter_bytes": sum(d["bytes_sent"] for d in devices),
        "lanmeter_frames": sum(d["frames_sent"] for d in devices),
        "darkstat_out_bytes": sum(h["out"] for h in hosts),
    }
except (OSError, ValueError) as e:
    cmp["error"] = f"darkstat --export with -r gave no usable file: {e}"
ingest["per_host"] = cmp
try:
    ingest["handshakes"] = {"frames": frames, "syns": int(open(f"{raw}/handshakes.count").read())}
except (OSError, ValueError):
    pass
json.dump(ingest, open(f"{out}/ingest.json", "w"), indent=1)

memory = {"runs": runs, "flood_macs": flood, "inputs": {
    "house200": dict(label="household of 200 devices, 2,000,000 frames", **runs_of("house200")),
    "flood_quarter": dict(label=f"flood from {flood // 4:,} random source MACs", **runs_of("flood_quarter")),
    "flood": dict(label=f"flood from {flood:,} random source MACs", **runs_of("flood")),
}}
json.dump(memory, open(f"{out}/memory.json", "w"), indent=1)
