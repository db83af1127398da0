"""Turns the files bench/live.sh leaves in OUT/live/ into JSON (bench-out/live.json) for bench/report.py.

usage: live_report.py OUT SECS FRAMES STEP...
A step is lanmeter-b<buffer_mib>-<input>-<rate> or darkstat-<input>-<rate>.
"""

import json
import re
import sys

out, secs, frames, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
d = f"{out}/live"


def counters(name, side):
    before = [int(x) for x in open(f"{d}/{name}.{side}0").read().split()]
    after = [int(x) for x in open(f"{d}/{name}.{side}1").read().split()]
    keys = ["rx_packets", "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes", "tx_dropped"]
    return {k: a - b for k, a, b in zip(keys, after, before)}


def tcpreplay(name):
    text = open(f"{d}/{name}.tcpreplay").read()
    r = {}
    m = re.search(r"Actual: (\d+) packets \((\d+) bytes\) sent in ([\d.]+) seconds", text)
    if m:
        r["packets"], r["bytes"], r["secs"] = int(m[1]), int(m[2]), float(m[3])
    for key, label in [("failed", "Failed packets"), ("retried", r"Retried packets \(ENOBUFS\)")]:
        m = re.search(label + r":\s+(\d+)", text)
        r[key] = int(m[1]) if m else 0
    return r


def lanmeter(name):
    log = open(f"{d}/{name}.log").read()
    stopped = [l for l in log.splitlines() if re.search(r"\bstopped\b", l) and "pcap_dropped" in l]
    fields = dict(re.findall(r"(\w+)=(\d+)", stopped[-1])) if stopped else {}
    rows = json.load(open(f"{d}/{name}.export"))
    try:
        hwm = int(open(f"{d}/{name}.hwm").read().strip() or 0)
    except (OSError, ValueError):
        hwm = 0
    return {
        "vm_hwm_kb": hwm,
        "frames_seen": int(fields.get("frames", -1)),
        "pcap_dropped": int(fields.get("pcap_dropped", -1)),
        "pcap_if_dropped": int(fields.get("pcap_if_dropped", -1)),
        "frames_sent": sum(r["frames_sent"] for r in rows),
        "bytes_sent": sum(r["bytes_sent"] for r in rows),
    }


def darkstat(name):
    """Its front page: "Seen <tb> bytes, in <tp> packets. (<pc> captured, <pd> dropped)"."""
    try:
        page = open(f"{d}/{name}.html").read()
    except FileNotFoundError:
        return {}

    def span(i):
        m = re.search(r'id="' + i + r'">([\d,.\']+)<', page)
        return int(re.sub(r"\D", "", m[1])) if m else -1

    return {"ip_bytes": span("tb"), "packets": span("tp"), "received": span("pc"), "dropped": span("pd")}


steps_out = []
for name in steps:
    c_rx = counters(name, "rx")
    tr = tcpreplay(name)
    step = {"name": name, "tcpreplay": tr, "veth_rx": c_rx,
            "wire_mbps": c_rx["rx_bytes"] * 8 / tr["secs"] / 1e6 if tr.get("secs") else 0}
    if name.startswith("lanmeter-"):
        _, buf, inp, rate = name.split("-", 3)
        step.update(program="lanmeter", buffer_mib=int(buf[1:]), input=inp, rate=rate, lanmeter=lanmeter(name))
    else:
        _, inp, rate = name.split("-", 2)
        step.update(program="darkstat", input=inp, rate=rate, darkstat=darkstat(name))
    steps_out.append(step)

startup = {}
try:
    for line in open(f"{d}/startup.txt"):
        if line.strip():
            kind, t = line.split()
            startup.setdefault(kind, []).append(float(t))
except FileNotFoundError:
    pass
print(json.dumps({"secs": secs, "frames": frames, "steps": steps_out, "startup_secs": startup}, indent=1))
