"""Turns the files bench/live.sh leaves in OUT/live/ into the Markdown section of results.md.

usage: live_report.py OUT SECS FRAMES STEP...
A step is lanmeter-b<buffer_mib>-<input>-<rate> or darkstat-<input>-<rate>.
"""

import html
import json
import re
import statistics
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
    return {
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


def rate_label(rate):
    if rate == "top":
        return "top speed"
    if rate.endswith("M"):
        return f"{int(rate[:-1]):,} Mbit/s"
    return f"{int(rate):,} frames/s"


inputs = {
    "mix": f"household mix ({frames:,}-frame capture, frames cut to 1514 bytes)",
    "big": "full-size frames only (1514 bytes)",
}
lines = [
    "## Live capture on a veth pair (tcpreplay → lanmeter run / darkstat)",
    "",
    f"Each step: tcpreplay --preload-pcap --loop=0 --duration={secs} in one network namespace, the",
    "capturing program alone in the other; counters of the receiving veth read 2 s after tcpreplay",
    "ends. `seen` = frames the program read (lanmeter: `frames` of its `stopped` log line;",
    'darkstat: pcap "captured", which on Linux includes its drops); `counted` = lanmeter\'s exported',
    "minute rows (sum of frames_sent; darkstat: the packets it accounted, IP only). Kernel drops are",
    "pcap_stats ps_drop: frames lost because the capture ring was full.",
    "The machine is shared with other jobs: rates are what this run got, not a maximum.",
    "",
    "| program | input | asked | sent (tcpreplay) | Mbit/s on the wire | veth rx frames | seen | counted | kernel drops | if drops |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
for name in steps:
    c_rx = counters(name, "rx")
    tr = tcpreplay(name)
    mbps = c_rx["rx_bytes"] * 8 / tr.get("secs", secs) / 1e6 if tr.get("secs") else 0
    if name.startswith("lanmeter-"):
        _, buf, inp, rate = name.split("-", 3)
        lm = lanmeter(name)
        prog = f"lanmeter ({buf[1:]} MiB ring)"
        seen, counted = lm["frames_seen"], lm["frames_sent"]
        drops, ifdrops = lm["pcap_dropped"], lm["pcap_if_dropped"]
        byte_note = "" if lm["bytes_sent"] == c_rx["rx_bytes"] else f" (bytes {lm['bytes_sent']:,} vs {c_rx['rx_bytes']:,})"
    else:
        _, inp, rate = name.split("-", 2)
        ds = darkstat(name)
        prog = "darkstat"
        seen, counted = ds.get("received", -1), ds.get("packets", -1)
        drops, ifdrops = ds.get("dropped", -1), "—"
        byte_note = ""
    fmt = lambda v: f"{v:,}" if isinstance(v, int) else v
    lines.append(
        f"| {prog} | {inputs[inp]} | {rate_label(rate)} | {fmt(tr.get('packets', -1))} in {tr.get('secs', 0):.1f} s "
        f"| {mbps:,.0f} | {c_rx['rx_packets']:,} (dropped {c_rx['rx_dropped']:,}) | {fmt(seen)} | {fmt(counted)}{byte_note} "
        f"| {fmt(drops)} | {fmt(ifdrops)} |"
    )

try:
    rows = [l.split() for l in open(f"{d}/startup.txt") if l.strip()]
    lines += ["", "## Start-up", "",
              "Time from `lanmeter run` process start to its first successful GET /healthz (polled every 2 ms),",
              "capture on the veth, discovery off.", "",
              "| database | runs | median | min–max |", "|---|---|---|---|"]
    for kind in ("new", "existing"):
        t = [float(r[1]) for r in rows if r[0] == kind]
        if t:
            lines.append(f"| {kind} | {len(t)} | {statistics.median(t) * 1000:.0f} ms | {min(t) * 1000:.0f}–{max(t) * 1000:.0f} ms |")
except FileNotFoundError:
    pass
print("\n".join(lines))
