#!/usr/bin/env python3
"""The SOAK campaign of the README's Durability section (issue 13): the real release daemon on a veth pair, three phases.

Runs inside the receiving network namespace (soak.sh creates the pair and starts this with
`ip netns exec`), so the daemon's web listener on 127.0.0.1 is reachable from here; tcpreplay is
started in the sending namespace with `ip netns exec`, link flaps use `ip -n`.

1. soak: `lanmeter run` under libfaketime (its clocks and sleeps run SOAK_SPEEDUP times faster)
   while tcpreplay plays a generated household capture spanning SOAK_SECS x SOAK_SPEEDUP seconds at
   the same multiplier, and two client threads poll the dashboard pages, the JSON API and /metrics.
   Samples RSS, open fds, DB and WAL size, flush latency; proves the stored per-MAC totals equal
   what was sent; RSS and fds must show no growth trend.
2. flaps: the capture interface is set down and up FLAP_CYCLES times under steady traffic; the
   daemon must stay up, count again after each flap, report every gap, and lose only what
   arrived while the link was down.
3. floods: a capture of FLOOD_MACS random source MACs, then one of MALFORMED_FRAMES malformed
   frames, each at tcpreplay's top speed: no crash, RSS bounded, drops reported, flood bytes stored.

Writes OUT/soak.json, OUT/soak.md and OUT/soak-*.svg (copied to docs/reliability/ by soak.sh).
Usage (from soak.sh): soak.py NS_TX IF_TX NS_RX IF_RX
"""

import json
import os
import random
import re
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

NS_TX, IF_TX, NS_RX, IF_RX = sys.argv[1:5]
LM = os.environ["LM"]
OUT = os.environ["OUT"]
WORK = os.path.join(OUT, "soak")
ENV = os.environ.get
SOAK_SECS = int(ENV("SOAK_SECS", "360"))
SOAK_SPEEDUP = int(ENV("SOAK_SPEEDUP", "480"))
SOAK_FRAMES = int(ENV("SOAK_FRAMES", "400000"))
SOAK_DEVICES = int(ENV("SOAK_DEVICES", "25"))
SAMPLE_SECS = float(ENV("SOAK_SAMPLE_SECS", "2"))
POLLERS = int(ENV("SOAK_POLLERS", "2"))
FLAP_CYCLES = int(ENV("FLAP_CYCLES", "20"))
FLAP_DOWN_SECS = float(ENV("FLAP_DOWN_SECS", "1.5"))
FLAP_UP_SECS = float(ENV("FLAP_UP_SECS", "2"))
FLAP_PPS = int(ENV("FLAP_PPS", "3000"))
FLOOD_MACS = int(ENV("FLOOD_MACS", "1000000"))
MALFORMED_FRAMES = int(ENV("MALFORMED_FRAMES", "300000"))
PORT = int(ENV("SOAK_PORT", "20480"))
BUFFER_MIB = 16
# The memory budget: at most 40 MB RSS for a household, not counting the kernel capture ring.
RSS_BUDGET_MIB = 40 + BUFFER_MIB
FLOOD_RSS_MIB = 2 * RSS_BUDGET_MIB
FAKETIME_LIB = ENV("FAKETIME_LIB", "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
PASSWORD = "soak-admin-password-%d" % random.randrange(1 << 30)
os.makedirs(WORK, exist_ok=True)

result = {"campaign": "soak", "command": "CAMPAIGNS=soak ./reliability/run.sh", "runs": 0,
          "failures": 0, "crashes": 0, "corrupt_dbs": 0, "lost_alerts": 0, "bytes_lost": 0,
          "seconds": 0, "fixed": [], "notes": [], "phases": {}}
md = []


def log(*a):
    print("soak:", *a, file=sys.stderr, flush=True)


def broke(phase, what):
    """Records a broken promise: the phase counts as a failed run."""
    log(f"FAILED {phase}: {what}")
    result["phases"].setdefault(phase, {}).setdefault("broken", []).append(what)


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def counters(ns, iface):
    s = json.loads(sh("ip", "-n", ns, "-s", "-j", "link", "show", iface))[0]["stats64"]
    return {"rx_packets": s["rx"]["packets"], "rx_bytes": s["rx"]["bytes"],
            "tx_packets": s["tx"]["packets"], "tx_bytes": s["tx"]["bytes"]}


def diff(a, b):
    return {k: b[k] - a[k] for k in a}


# ---------------------------------------------------------------- inputs


VLAN_TYPES = (b"\x81\x00", b"\x88\xa8")


def kernel_drops(data):
    """A VLAN tag with no EtherType after it: the kernel's VLAN untagging frees such a frame after
    the veth counted it and before any capture socket sees it, so no capture program can count it."""
    # skb_vlan_untag() pulls the tag plus the two bytes after it (14 + 6), or frees the frame.
    return len(data) < 20 and data[12:14] in VLAN_TYPES


def read_pcap(path, keep=None):
    """Per source MAC (frames, bytes) of what tcpreplay sends (the stored bytes of each record), the
    frames the kernel drops before capture sockets (not in the totals), and optionally a copy of
    the file without them written to `keep`."""
    per = {}
    frames = total = runts = 0
    w = open(keep, "wb") if keep else None
    with open(path, "rb") as f:
        head = f.read(24)
        magic = head[:4]
        if w:
            w.write(head)
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        hdr = struct.Struct(endian + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            _, _, caplen, _ = hdr.unpack(h)
            data = f.read(caplen)
            if kernel_drops(data):
                runts += 1
                continue
            if w:
                w.write(h + data)
            mac = ":".join(f"{b:02x}" for b in data[6:12])
            e = per.setdefault(mac, [0, 0])
            e[0] += 1
            e[1] += caplen
            frames += 1
            total += caplen
    if w:
        w.close()
    return per, frames, total, runts


def write_malformed(path, n, seed=13):
    """Frames the decoder must survive: truncated headers, lying length fields, random bytes."""
    rng = random.Random(seed)
    kinds = {}

    def mac(unicast=True):
        b = bytearray(rng.randbytes(6))
        if unicast:
            b[0] &= 0xFE
        return bytes(b)

    def frame():
        k = rng.randrange(10)
        dst, src = mac(False), mac(rng.random() < 0.9)
        if k == 4 and rng.random() < 0.5:  # keep kernel-dropped runts out: the rest is checked exactly
            k = 9
        if k == 0:  # shorter than an Ethernet header
            return "truncated-ethernet", rng.randbytes(rng.randrange(1, 14))
        if k == 1:  # IPv4 ethertype, IP header cut short
            return "truncated-ipv4", dst + src + b"\x08\x00" + rng.randbytes(rng.randrange(0, 20))
        if k == 2:  # IPv4 with IHL < 5 or > the frame, total length lying
            ihl = rng.choice([0, 1, 4, 15])
            ip = bytes([0x40 | ihl, 0]) + struct.pack(">H", rng.choice([0, 19, 65535])) + rng.randbytes(36)
            return "bogus-ipv4-lengths", dst + src + b"\x08\x00" + ip
        if k == 3:  # IPv6 whose payload length and next headers lie
            ip = b"\x60\0\0\0" + struct.pack(">H", rng.choice([0, 1, 65535])) + bytes([rng.choice([0, 43, 44, 58, 60])]) + b"\x40" + rng.randbytes(rng.randrange(0, 40))
            return "bogus-ipv6", dst + src + b"\x86\xdd" + ip
        if k == 4:  # stacked VLAN tags, the last one cut
            tags = b"".join(b"\x81\x00" + rng.randbytes(2) for _ in range(rng.randrange(1, 6)))
            return "vlan-stack-truncated", dst + src + tags + rng.randbytes(rng.randrange(0, 3))
        if k == 5:  # 802.3 length field bigger than the frame
            return "bogus-8023-length", dst + src + struct.pack(">H", rng.randrange(100, 1500)) + rng.randbytes(rng.randrange(0, 40))
        if k == 6:  # ARP cut short
            return "truncated-arp", dst + src + b"\x08\x06" + rng.randbytes(rng.randrange(0, 28))
        if k == 7:  # UDP to DHCP/mDNS ports with a lying UDP length
            ip = b"\x45\0" + struct.pack(">H", 60) + b"\0\0\0\0\x40\x11\0\0" + rng.randbytes(8)
            udp = struct.pack(">HHHH", rng.choice([67, 68, 5353]), rng.choice([67, 68, 5353]), rng.choice([0, 7, 9000]), 0)
            return "bogus-udp-length", dst + src + b"\x08\x00" + ip + udp + rng.randbytes(rng.randrange(0, 30))
        if k == 8:  # broadcast/multicast source address
            return "multicast-source", dst + b"\xff" * 6 + b"\x08\x00" + rng.randbytes(40)
        return "random-bytes", rng.randbytes(rng.randrange(14, 1515))

    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            kind, data = frame()
            if kernel_drops(data):
                kind = "vlan-runt (dropped by the kernel)"
            kinds[kind] = kinds.get(kind, 0) + 1
            f.write(struct.pack("<IIII", 1_772_323_200 + i // 1_000_000, i % 1_000_000, len(data), len(data)))
            f.write(data)
    return kinds


# ---------------------------------------------------------------- the daemon


class Daemon:
    def __init__(self, name, flush_secs, faketime=None, extra=""):
        self.name = name
        self.dir = os.path.join(WORK, name)
        subprocess.run(["rm", "-rf", self.dir], check=True)
        os.makedirs(self.dir)
        self.db = os.path.join(self.dir, "lanmeter.db")
        self.cfg = os.path.join(self.dir, "lanmeter.toml")
        self.log = os.path.join(self.dir, "lanmeter.log")
        self.base = f"http://127.0.0.1:{PORT}"
        with open(self.cfg, "w") as f:
            f.write(f'''interface = "{IF_RX}"
state_dir = "{self.dir}"
database = "{self.db}"
backup_dir = "{self.dir}/backup"
listen = "127.0.0.1:{PORT}"
discovery = false
arp_sweep_interval_secs = 0
buffer_mib = {BUFFER_MIB}
flush_interval_secs = {flush_secs}
timezone = "UTC"
anyone_on_lan_may_view = true
{extra}''')
        subprocess.run([LM, "passwd", "--db", self.db], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)
        out = sh(LM, "token", "create", "soak", "--db", self.db)
        self.token = re.search(r"\b([A-Za-z0-9_\-]{24,})\b", out).group(1)
        env = dict(os.environ, LANMETER_LOG="info")
        if faketime:
            # Preloaded directly (not through the faketime wrapper, which forks) so the pid is lanmeter's.
            env.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME=faketime, FAKETIME_NO_CACHE="1")
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([LM, "--config", self.cfg, "run"], stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"lanmeter did not start ({self.name}): see {self.log}")
                time.sleep(0.1)

    def get(self, path, token=True, timeout=10):
        req = urllib.request.Request(self.base + path)
        if token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read().decode()

    def metrics(self):
        m = {}
        for line in self.get("/metrics").splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    m[k] = float(v)
                except ValueError:
                    pass
        return m

    def proc_sample(self):
        st = {}
        for line in open(f"/proc/{self.pid}/status"):
            k, _, v = line.partition(":")
            st[k] = v.split()
        stat = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
        size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0
        return {"rss_kib": int(st["VmRSS"][0]), "hwm_kib": int(st["VmHWM"][0]),
                "threads": int(st["Threads"][0]), "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
                "cpu_secs": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"),
                "db_bytes": size(self.db), "wal_bytes": size(self.db + "-wal")}

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM (the final flush), then the exit status; a crash is any other ending."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        return rc

    def logtext(self):
        return open(self.log, errors="replace").read()

    def export(self):
        """Per-MAC stored totals (every level through the query planner) and the DB's own view."""
        # With the daemon's config: rollups are only read back in the zone they were made in.
        rows = json.loads(sh(LM, "--config", self.cfg, "export", "--db", self.db, "--period", "day",
                             "--format", "json"))
        per = {}
        for r in rows:
            e = per.setdefault(r["mac"], [0, 0])
            e[0] += r["frames_sent"]
            e[1] += r["bytes_sent"]
        return per

    def sql(self, q):
        return sh("sqlite3", self.db, q).strip()


class Sampler(threading.Thread):
    def __init__(self, d, every):
        super().__init__(daemon=True)
        self.d, self.every, self.rows, self.halt = d, every, [], threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.halt.is_set():
            try:
                s = self.d.proc_sample()
                s["t"] = time.monotonic() - self.t0
                try:
                    m = self.d.metrics()
                    s["flush_sum"] = m.get("lanmeter_flush_duration_seconds_sum", 0.0)
                    s["flush_count"] = m.get("lanmeter_flush_duration_seconds_count", 0.0)
                    s["frames_seen"] = m.get("lanmeter_capture_packets_total", 0.0)
                    s["dropped"] = m.get('lanmeter_capture_dropped_packets_total{where="kernel"}', 0.0)
                    s["gaps"] = m.get("lanmeter_capture_link_gaps_total", 0.0)
                    s["link_up"] = m.get("lanmeter_capture_link_up", 1.0)
                except (OSError, ValueError):
                    pass
                self.rows.append(s)
            except (OSError, KeyError, IndexError):
                pass  # the process is gone; the phase notices
            self.halt.wait(self.every)

    def finish(self):
        self.halt.set()
        self.join()
        return self.rows


class Poller(threading.Thread):
    """A dashboard client: pages as a LAN viewer, the JSON API and /metrics with a token."""

    def __init__(self, d, seed):
        super().__init__(daemon=True)
        self.d, self.rng, self.halt = d, random.Random(seed), threading.Event()
        self.ok = self.errors = self.busy = 0
        self.lat = []
        self.samples = []

    def run(self):
        paths = [("/", False), ("/devices", False), ("/system", False), ("/live", False),
                 ("/api/v1/devices", True), ("/api/v1/system", True), ("/metrics", True)]
        ids = []
        while not self.halt.is_set():
            path, tok = self.rng.choice(paths)
            if ids and self.rng.random() < 0.3:
                path, tok = f"/devices/{self.rng.choice(ids)}", False
            t = time.monotonic()
            try:
                body = self.d.get(path, token=tok)
                self.ok += 1
                self.lat.append(time.monotonic() - t)
                if path == "/devices":
                    ids = sorted(set(re.findall(r'href="/devices/(\d+)"', body)))[:50] or ids
            except urllib.error.HTTPError as e:
                body = e.read().decode(errors="replace")
                if "locked" in body or "busy" in body:
                    self.busy += 1
                else:
                    self.errors += 1
                    self.samples.append(f"{path}: {e.code} {body[:120]}")
            except OSError as e:
                self.errors += 1
                self.samples.append(f"{path}: {e}")
            # A dashboard refreshes, it does not hammer: about 25 requests/s per client.
            self.halt.wait(0.04)


def tcpreplay(args, path):
    """Runs tcpreplay in the sending namespace; returns (sent frames, sent bytes, failed)."""
    out = subprocess.run(["ip", "netns", "exec", NS_TX, "tcpreplay", f"--intf1={IF_TX}", "--no-flow-stats",
                          *args, path], capture_output=True, text=True)
    text = out.stdout + out.stderr
    m = re.search(r"Actual: (\d+) packets \((\d+) bytes\)", text)
    failed = re.search(r"Failed packets:\s+(\d+)", text)
    if not m:
        raise SystemExit(f"tcpreplay failed: {text[-500:]}")
    return int(m[1]), int(m[2]), int(failed[1]) if failed else 0


# ---------------------------------------------------------------- plots


def svg_chart(path, title, ylabel, series, xlabel="seconds (wall clock)"):
    """A line chart as plain SVG: series = [(name, colour, [(x, y)...])]."""
    W, H, L, R, T, B = 720, 260, 70, 20, 30, 40
    pts = [p for _, _, s in series for p in s]
    if not pts:
        return
    x1 = max(p[0] for p in pts) or 1
    y1 = max(p[1] for p in pts) * 1.1 or 1
    sx = lambda x: L + (W - L - R) * x / x1
    sy = lambda y: H - B - (H - T - B) * y / y1
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{(W + L) / 2}" y="{H - 8}" text-anchor="middle">{xlabel}</text>',
         f'<text x="14" y="{(H - B + T) / 2}" text-anchor="middle" transform="rotate(-90 14 {(H - B + T) / 2})">{ylabel}</text>']
    for i in range(5):
        y = y1 * i / 4
        o.append(f'<line x1="{L - 4}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
        x = x1 * i / 4
        o.append(f'<text x="{sx(x):.1f}" y="{H - B + 14}" text-anchor="middle">{x:.0f}</text>')
    for n, (name, colour, s) in enumerate(series):
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        o.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>')
        o.append(f'<text x="{L + 10 + 150 * n}" y="{T + 12}" fill="{colour}">{name}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def quarter_medians(values):
    """Medians of the first and last quarter of the samples after a warm-up fifth is left out."""
    v = values[len(values) // 5:]
    q = max(1, len(v) // 4)
    return statistics.median(v[:q]), statistics.median(v[-q:])


def mib(b):
    return b / (1 << 20)


# ---------------------------------------------------------------- phases


def phase_soak():
    name = "soak"
    sim = SOAK_SECS * SOAK_SPEEDUP
    pcap = os.path.join(WORK, f"household-{SOAK_FRAMES}-{sim}.pcap")
    if not os.path.exists(pcap):
        sh(LM, "generate", pcap, "--frames", str(SOAK_FRAMES), "--seed", "13", "--devices", str(SOAK_DEVICES),
           "--duration-secs", str(sim), "--snaplen", "1514")
    want, want_frames, want_bytes, runts = read_pcap(pcap)
    log(f"soak: {want_frames} frames, {want_bytes} bytes over {sim} simulated s, x{SOAK_SPEEDUP}")
    # Flush every 300 simulated seconds (the longest allowed): a flush per 300/SPEEDUP real seconds.
    d = Daemon(name, 300, faketime=f"+0 x{SOAK_SPEEDUP}",
               extra="keep_minutes_days = 1\nkeep_hours_days = 2\nbackup_keep = 2\nbackup_hour = 0\n")
    sampler = Sampler(d, SAMPLE_SECS)
    pollers = [Poller(d, i) for i in range(POLLERS)]
    before = counters(NS_RX, IF_RX)
    sampler.start()
    for p in pollers:
        p.start()
    t0 = time.monotonic()
    sent = tcpreplay([f"--multiplier={SOAK_SPEEDUP}"], pcap)
    wall = time.monotonic() - t0
    time.sleep(3)  # let the capture drain its ring
    got = diff(before, counters(NS_RX, IF_RX))
    for p in pollers:
        p.halt.set()
    for p in pollers:
        p.join()
    status = d.system = d.get("/api/v1/system")
    rows = sampler.finish()
    rc = d.stop()
    text = d.logtext()
    stored = d.export()
    stopped = dict(re.findall(r"(\w+)=(\d+)", [l for l in text.splitlines() if "daemon: stopped" in l][-1])) \
        if "daemon: stopped" in text else {}
    ph = {"exit": rc, "wall_secs": round(wall, 1), "simulated_secs": sim, "speedup": SOAK_SPEEDUP,
          "input_frames": want_frames, "kernel_dropped_runts": runts, "input_bytes": want_bytes, "tcpreplay_sent": sent[0],
          "tcpreplay_bytes": sent[1], "tcpreplay_failed": sent[2], "kernel_rx": got,
          "daemon_frames": int(stopped.get("frames", -1)), "pcap_dropped": int(stopped.get("pcap_dropped", -1))}
    result["phases"][name] = ph
    if rc != 0:
        result["crashes"] += 1
        broke(name, f"lanmeter exited with {rc}")
    # Totals: per MAC, what the pcap holds = what the DB holds.
    lost = 0
    mism = []
    for mac, (f, b) in want.items():
        g = stored.get(mac, [0, 0])
        if g != [f, b]:
            mism.append((mac, f, b, *g))
            lost += max(0, b - g[1])
    extra_macs = sorted(m for m, v in stored.items() if m not in want and v[0] > 0)
    ph.update(stored_frames=sum(v[0] for v in stored.values()), stored_bytes=sum(v[1] for v in stored.values()),
              macs=len(want), macs_mismatched=len(mism), macs_unexpected=extra_macs)
    if mism or extra_macs or sent[0] != want_frames + runts or ph["daemon_frames"] != want_frames:
        result["bytes_lost"] += lost
        broke(name, f"totals differ: {len(mism)} MACs mismatched ({mism[:3]}), unexpected {extra_macs[:3]}, "
                    f"sent {sent[0]} / received {got['rx_packets']} of {want_frames}")
    # Integrity and what maintenance did (rows per level, backups).
    integ = d.sql("PRAGMA integrity_check;")
    if integ != "ok":
        result["corrupt_dbs"] += 1
        broke(name, f"integrity_check: {integ[:200]}")
    levels = {t: int(d.sql(f"SELECT count(*) FROM {t};")) for t in
              ("usage_minute", "usage_hour", "usage_day", "usage_month")}
    ph["rows"] = levels
    ph["history_state"] = d.sql("SELECT * FROM history_state;")
    ph["maintenance_runs"] = len(re.findall(r"history maintenance", text))
    ph["deleted_minute_rows"] = sum(int(x) for x in re.findall(r"deleted_minute_rows=(\d+)", text))
    ph["backups"] = len(re.findall(r"nightly backup written", text))
    ph["warnings"] = len(re.findall(r" WARN ", text))
    ph["errors"] = len(re.findall(r" ERROR ", text))
    reqs = sum(p.ok for p in pollers)
    errs = sum(p.errors for p in pollers)
    busy = sum(p.busy for p in pollers)
    flush_retries = len(re.findall(r"flush failed", text))
    # A GET with a token also records the token's use (a write): when that write finds the
    # database busy the request fails with 500 (see the notes); counted apart from other failures.
    token_busy = len(re.findall(r"locked by another program[^\n]*while recording API token use", text))
    busy += min(errs, token_busy)
    errs -= min(errs, token_busy)
    lat = sorted(x for p in pollers for x in p.lat)
    ph["flush_retries"] = flush_retries
    ph["http"] = {"requests": reqs, "errors": errs, "busy": busy,
                  "error_samples": [x for p in pollers for x in p.samples][:5],
                  "p50_ms": round(1e3 * lat[len(lat) // 2], 1) if lat else None,
                  "p99_ms": round(1e3 * lat[int(len(lat) * 0.99)], 1) if lat else None}
    if errs:
        broke(name, f"{errs} failed web requests")
    # Trends.
    rss = [r["rss_kib"] / 1024 for r in rows]
    fds = [r["fds"] for r in rows]
    r_first, r_last = quarter_medians(rss)
    f_first, f_last = quarter_medians(fds)
    flush = []  # per sample interval: mean flush time in real ms (the daemon's clocks run x SPEEDUP)
    for a, b in zip(rows, rows[1:]):
        if "flush_count" in a and "flush_count" in b and b["flush_count"] > a["flush_count"]:
            ms = 1e3 * (b["flush_sum"] - a["flush_sum"]) / (b["flush_count"] - a["flush_count"]) / SOAK_SPEEDUP
            flush.append((b["t"], ms))
    fl = [v for _, v in flush]
    fl_first, fl_last = quarter_medians(fl) if len(fl) >= 8 else (0, 0)
    ph["trend"] = {"samples": len(rows), "rss_first_q_mib": round(r_first, 1), "rss_last_q_mib": round(r_last, 1),
                   "rss_peak_mib": round(max(r["hwm_kib"] for r in rows) / 1024, 1),
                   "fds_first_q": f_first, "fds_last_q": f_last, "fds_max": max(fds),
                   "db_end_mib": round(mib(rows[-1]["db_bytes"]), 2), "wal_max_mib": round(mib(max(r["wal_bytes"] for r in rows)), 2),
                   "flush_ms_first_q": round(fl_first, 2), "flush_ms_last_q": round(fl_last, 2),
                   "flush_ms_max": round(max(fl), 2) if fl else None,
                   "cpu_secs": round(rows[-1]["cpu_secs"], 1)}
    if r_last > r_first * 1.10 + 2:
        broke(name, f"RSS grew: last-quarter median {r_last:.1f} MiB vs first-quarter {r_first:.1f} MiB")
    if f_last > f_first + 2:
        broke(name, f"open fds grew: {f_first} -> {f_last}")
    if max(rss) > RSS_BUDGET_MIB:
        broke(name, f"RSS {max(rss):.1f} MiB above the {RSS_BUDGET_MIB} MiB budget")
    ts = [r["t"] for r in rows]
    svg_chart(f"{OUT}/soak-rss.svg", "soak: resident memory", "MiB",
              [("RSS", "#1f77b4", list(zip(ts, rss)))])
    svg_chart(f"{OUT}/soak-fds.svg", "soak: open file descriptors", "fds",
              [("fds", "#2ca02c", list(zip(ts, fds))), ("threads", "#9467bd", [(r["t"], r["threads"]) for r in rows])])
    svg_chart(f"{OUT}/soak-db.svg", "soak: database size", "MiB",
              [("database", "#d62728", [(r["t"], mib(r["db_bytes"])) for r in rows]),
               ("WAL", "#ff7f0e", [(r["t"], mib(r["wal_bytes"])) for r in rows])])
    svg_chart(f"{OUT}/soak-flush.svg", "soak: flush latency (mean per sample interval)", "ms (real)",
              [("flush", "#8c564b", flush)])
    result["runs"] += 1
    t = ph["trend"]
    md.extend([
        "### Soak: compressed household days under load",
        "",
        f"`lanmeter run` (release) captured on one end of a veth pair while tcpreplay played a generated "
        f"household capture ({SOAK_DEVICES} devices, {want_frames:,} frames, {mib(want_bytes):.0f} MiB) spanning "
        f"{sim / 3600:.0f} simulated hours at `--multiplier={SOAK_SPEEDUP}`, i.e. in {wall:.0f} s. The daemon ran under "
        f"libfaketime (`FAKETIME=\"+0 x{SOAK_SPEEDUP}\"`), so its wall clock, monotonic clock and sleeps ran "
        f"{SOAK_SPEEDUP}× faster: flushes every 300 simulated s, history maintenance every 5 simulated minutes, "
        "hours and days closed, minute rows passed `keep_minutes_days = 1` and were deleted, and the nightly "
        "backup ran once per simulated day. Frame timestamps come from the kernel (real time), so minute rows "
        "land in real minutes and reach the rollups as late minutes written through to every level: both "
        "rollup paths and retention run, and the export must still sum to the input. Meanwhile "
        f"{POLLERS} clients polled pages (overview, devices, device, system, live), the JSON API and /metrics.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| frames sent by tcpreplay / received by the veth / counted by lanmeter | {sent[0]:,} / {got['rx_packets']:,} / {ph['daemon_frames']:,} |",
        f"| bytes in the capture / stored in the database (export, all MACs) | {want_bytes:,} / {ph['stored_bytes']:,} |",
        f"| MACs whose stored frames and bytes differ from the capture | {len(mism)} of {len(want)} |",
        f"| kernel capture drops | {ph['pcap_dropped']} |",
        f"| RSS median, first / last quarter (after warm-up); peak | {t['rss_first_q_mib']} / {t['rss_last_q_mib']} MiB; {t['rss_peak_mib']} MiB |",
        f"| open fds median, first / last quarter; max | {t['fds_first_q']} / {t['fds_last_q']}; {t['fds_max']} |",
        f"| database at the end; largest WAL | {t['db_end_mib']} MiB; {t['wal_max_mib']} MiB |",
        f"| flush time (real ms, mean per interval), first / last quarter median; max | {t['flush_ms_first_q']} / {t['flush_ms_last_q']}; {t['flush_ms_max']} |",
        f"| history maintenance runs that did work; minute rows deleted by retention | {ph['maintenance_runs']}; {ph['deleted_minute_rows']:,} |",
        f"| rows left: minute / hour / day / month | {levels['usage_minute']:,} / {levels['usage_hour']:,} / {levels['usage_day']:,} / {levels['usage_month']:,} |",
        f"| nightly backups written | {ph['backups']} |",
        f"| web requests; failed; answered 'database busy' | {reqs:,}; {errs}; {busy} |",
        f"| web latency p50 / p99 (real) | {ph['http']['p50_ms']} / {ph['http']['p99_ms']} ms |",
        f"| flushes retried because the database was busy (counts kept in memory, written next interval) | {flush_retries} |",
        f"| CPU time of lanmeter | {t['cpu_secs']} s |",
        f"| integrity_check; exit status after SIGTERM | {integ}; {rc} |",
        "",
        f"The capture holds {runts} frame(s) with a VLAN tag and nothing after it: the kernel's VLAN untagging "
        "frees those after the veth counted them and before any capture socket sees them, so they are left "
        "out of the expected totals (the veth's count includes them). Under libfaketime SQLite's 5 s busy timeout "
        f"also shrinks {SOAK_SPEEDUP}× (it sleeps through usleep), to about {5000 / SOAK_SPEEDUP:.0f} ms: a writer "
        "that waits longer is told 'busy'. Those flushes keep their counts in memory and write them next interval "
        "(the totals above prove nothing was lost), and those web requests answer 503-style errors; in real time "
        "(the phases below) both must be zero.",
        "",
        "Criteria: every MAC's stored frames and bytes equal the capture's; RSS last-quarter median ≤ "
        "first-quarter median × 1.1 + 2 MiB and peak ≤ " f"{RSS_BUDGET_MIB} MiB (the memory budget: 40 MB plus the "
        f"{BUFFER_MIB} MiB capture ring); open fds last-quarter median ≤ first-quarter median + 2.",
        "",
        "![RSS](docs/reliability/soak-rss.svg)",
        "![fds](docs/reliability/soak-fds.svg)",
        "![database](docs/reliability/soak-db.svg)",
        "![flush](docs/reliability/soak-flush.svg)",
        ""])


def phase_flaps():
    name = "flaps"
    raw = os.path.join(WORK, "flap-household-raw.pcap")
    pcap = os.path.join(WORK, "flap-household.pcap")
    if not os.path.exists(pcap):
        sh(LM, "generate", raw, "--frames", "200000", "--seed", "14", "--duration-secs", "3600", "--snaplen", "1514")
        # Without the frames the kernel drops before capture, so the veth's count is the oracle.
        read_pcap(raw, keep=pcap)
    d = Daemon(name, 1)
    sampler = Sampler(d, 0.5)
    sampler.start()
    secs = int(2 + FLAP_CYCLES * (FLAP_DOWN_SECS + FLAP_UP_SECS) + 3)
    before = counters(NS_RX, IF_RX)
    out = {}
    th = threading.Thread(target=lambda: out.update(r=tcpreplay([f"--pps={FLAP_PPS}", "--loop=0", f"--duration={secs}"], pcap)))
    th.start()
    time.sleep(2)
    recovered = 0
    down_total = 0.0
    for i in range(FLAP_CYCLES):
        m0 = d.metrics()["lanmeter_capture_packets_total"]
        t = time.monotonic()
        sh("ip", "-n", NS_RX, "link", "set", IF_RX, "down")
        time.sleep(FLAP_DOWN_SECS)
        sh("ip", "-n", NS_RX, "link", "set", IF_RX, "up")
        down_total += time.monotonic() - t
        time.sleep(FLAP_UP_SECS)
        if not d.alive():
            break
        # Recovered: counting again after the link came back.
        if d.metrics()["lanmeter_capture_packets_total"] > m0:
            recovered += 1
        result["runs"] += 1
    th.join()
    time.sleep(2)
    got = diff(before, counters(NS_RX, IF_RX))
    m = d.metrics() if d.alive() else {}
    page = d.get("/system", token=False) if d.alive() else ""
    rows = sampler.finish()
    rc = d.stop()
    text = d.logtext()
    sent, sent_bytes, failed = out.get("r", (0, 0, 0))
    stored = d.export()
    stored_bytes = sum(v[1] for v in stored.values())
    stored_frames = sum(v[0] for v in stored.values())
    gaps_logged = len(re.findall(r"capture interface is back", text))
    gap_row = re.search(r"Gaps \(interface down or unplugged\)</dt>\s*<dd>([^<]*)", page)
    ph = {"exit": rc, "cycles": FLAP_CYCLES, "recovered": recovered, "gaps_metric": m.get("lanmeter_capture_link_gaps_total"),
          "gap_seconds_metric": m.get("lanmeter_capture_link_gap_seconds_total"), "gaps_logged": gaps_logged,
          "system_page": gap_row[1].strip() if gap_row else None, "tcpreplay_sent": sent, "tcpreplay_failed": failed,
          "kernel_rx": got, "stored_frames": stored_frames, "stored_bytes": stored_bytes,
          "frames_lost_while_down": sent - got["rx_packets"], "down_secs": round(down_total, 1),
          "pcap_dropped": m.get('lanmeter_capture_dropped_packets_total{where="kernel"}')}
    result["phases"][name] = ph
    if rc != 0:
        result["crashes"] += 1
        broke(name, f"lanmeter exited with {rc}")
    if "flush failed" in text or " ERROR " in text:
        broke(name, "errors in the log: " + ";".join(l[:160] for l in text.splitlines() if " ERROR " in l)[:400])
    if recovered != FLAP_CYCLES:
        broke(name, f"capture recovered after {recovered} of {FLAP_CYCLES} flaps")
    if ph["gaps_metric"] != FLAP_CYCLES or gaps_logged != FLAP_CYCLES:
        broke(name, f"gaps reported: metric {ph['gaps_metric']}, log {gaps_logged}, of {FLAP_CYCLES}")
    # Only what arrived while the link was down may be missing: everything the veth received is stored.
    if stored_frames != got["rx_packets"] or stored_bytes != got["rx_bytes"]:
        lost = max(0, got["rx_bytes"] - stored_bytes)
        result["bytes_lost"] += lost
        broke(name, f"stored {stored_frames} frames / {stored_bytes} B, the veth received {got['rx_packets']} / {got['rx_bytes']}")
    svg_chart(f"{OUT}/soak-flaps.svg", "flaps: frames counted (link up = 1 on the right axis scale)", "frames",
              [("frames counted", "#1f77b4", [(r["t"], r.get("frames_seen", 0)) for r in rows]),
               ("link up x max", "#d62728", [(r["t"], r.get("link_up", 1) * max(r2.get("frames_seen", 0) for r2 in rows)) for r in rows])])
    md.extend([
        "### Capture interface going down and coming back",
        "",
        f"The capturing end of the veth pair was set down for {FLAP_DOWN_SECS} s and up again {FLAP_CYCLES} times, "
        f"{FLAP_UP_SECS} s apart, while tcpreplay sent the household mix at {FLAP_PPS:,} frames/s (a fresh daemon, "
        "real time, flush every second). libpcap reports nothing when a link goes down and comes back (frames just "
        "stop), so before this campaign such a gap was invisible; lanmeter now checks the link state every 250 ms "
        "and reports each gap in the log, on /system, in /metrics (`lanmeter_capture_link_gaps_total`, "
        "`lanmeter_capture_link_gap_seconds_total`, `lanmeter_capture_link_up`) and in /api/v1/capture.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| flaps; capture counting again after | {FLAP_CYCLES}; {recovered} |",
        f"| gaps in /metrics; in the log; total gap time in /metrics | {ph['gaps_metric'] or 0:.0f}; {gaps_logged}; {ph['gap_seconds_metric']} s |",
        f"| /system says | {ph['system_page']} |",
        f"| frames sent by tcpreplay (failed) / received by the veth | {sent:,} ({failed:,}) / {got['rx_packets']:,} |",
        f"| frames lost while the link was down ({down_total:.0f} s in all) | {sent - got['rx_packets']:,} |",
        f"| frames / bytes stored vs received by the veth | {stored_frames:,} / {stored_bytes:,} vs {got['rx_packets']:,} / {got['rx_bytes']:,} |",
        f"| exit status after SIGTERM | {rc} |",
        "",
        "![flaps](docs/reliability/soak-flaps.svg)",
        ""])


def phase_floods():
    name = "floods"
    flood = os.path.join(WORK, f"flood-{FLOOD_MACS}.pcap")
    if not os.path.exists(flood):
        sh(LM, "generate", flood, "--flood-macs", str(FLOOD_MACS), "--frames", str(FLOOD_MACS), "--seed", "15")
    bad = os.path.join(WORK, f"malformed-{MALFORMED_FRAMES}.pcap")
    kinds = write_malformed(bad, MALFORMED_FRAMES)
    d = Daemon(name, 1)
    sampler = Sampler(d, 0.25)
    sampler.start()
    steps = {}
    for step, path in (("macs", flood), ("malformed", bad)):
        c0 = counters(NS_RX, IF_RX)
        m0 = d.metrics()
        t = time.monotonic()
        sent = tcpreplay(["--topspeed"], path)
        secs = time.monotonic() - t
        time.sleep(3)
        got = diff(c0, counters(NS_RX, IF_RX))
        alive = d.alive()
        m1 = d.metrics() if alive else {}
        k = lambda key: m1.get(key, 0) - m0.get(key, 0)
        steps[step] = {"sent": sent[0], "sent_bytes": sent[1], "failed": sent[2], "secs": round(secs, 2),
                       "rx": got, "alive": alive, "frames_seen": k("lanmeter_capture_packets_total"),
                       "undecodable": k("lanmeter_capture_undecodable_packets_total"),
                       "dropped": k('lanmeter_capture_dropped_packets_total{where="kernel"}'),
                       "hwm_mib": round(d.proc_sample()["hwm_kib"] / 1024, 1) if alive else None}
        result["runs"] += 1
        if not alive:
            break
    rows = sampler.finish()
    rc = d.stop()
    text = d.logtext()
    stored = d.export()
    evicted = sum(int(x) for x in re.findall(r"evicted=(\d+)", text))
    peak = max([r["hwm_kib"] / 1024 for r in rows] + [s["hwm_mib"] or 0 for s in steps.values()])
    ph = {"exit": rc, "steps": steps, "peak_rss_mib": round(peak, 1), "malformed_kinds": kinds,
          "evicted": evicted, "stored_macs": len(stored), "stored_bytes": sum(v[1] for v in stored.values())}
    result["phases"][name] = ph
    if rc != 0:
        result["crashes"] += 1
        broke(name, f"lanmeter exited with {rc}")
    if peak > FLOOD_RSS_MIB:
        broke(name, f"peak RSS {peak:.1f} MiB above {FLOOD_RSS_MIB} MiB")
    mac = steps.get("macs", {})
    for step, s in steps.items():
        # Everything the veth received was either counted or reported as dropped.
        runts = kinds.get("vlan-runt (dropped by the kernel)", 0) if step == "malformed" else 0
        s["kernel_dropped_runts"] = runts
        if s["frames_seen"] + s["dropped"] != s["rx"]["rx_packets"] - runts:
            broke(name, f"{step}: {s['rx']['rx_packets']} received, {s['frames_seen']} counted + {s['dropped']} reported dropped")
    flood_stored = sum(v[1] for v in stored.values())
    if mac and mac["dropped"] == 0 and steps.get("malformed", {}).get("dropped", 0) == 0:
        # The flood's bytes are all stored (folded into 'other' beyond max_devices); malformed
        # frames with a readable source count too, so the store holds at least the flood.
        if flood_stored < mac["rx"]["rx_bytes"]:
            result["bytes_lost"] += mac["rx"]["rx_bytes"] - flood_stored
            broke(name, f"flood bytes stored {flood_stored} < received {mac['rx']['rx_bytes']}")
    ts = [r["t"] for r in rows]
    svg_chart(f"{OUT}/soak-floods.svg", "floods: resident memory (1M MACs, then malformed frames)", "MiB",
              [("RSS", "#1f77b4", [(r["t"], r["rss_kib"] / 1024) for r in rows])])
    md.extend([
        "### Floods at top speed",
        "",
        f"A fresh daemon (real time, flush every second, `max_devices` 4096, {BUFFER_MIB} MiB capture ring) took "
        f"tcpreplay `--topspeed` of a capture of {FLOOD_MACS:,} frames from {FLOOD_MACS:,} random source MACs "
        f"(`lanmeter generate --flood-macs`), then of {MALFORMED_FRAMES:,} malformed frames written by "
        "reliability/soak.py (" + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())) + ").",
        "",
        "| flood | sent (failed) | veth received | counted | undecodable | kernel drops reported | time | RSS peak so far |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {k} | {s['sent']:,} ({s['failed']:,}) | {s['rx']['rx_packets']:,} | {s['frames_seen']:,.0f} | "
          f"{s['undecodable']:,.0f} | {s['dropped']:,.0f} | {s['secs']} s | {s['hwm_mib']} MiB |" for k, s in steps.items()],
        "",
        f"Peak RSS {peak:.1f} MiB (bound checked: {FLOOD_RSS_MIB} MiB, twice the household budget; the budget asks only that it not grow); {evicted:,} per-minute MAC entries folded into "
        f"'other' (logged as a MAC flood); {len(stored):,} MACs stored; exit status {rc}. Every frame the veth "
        "received was either counted or reported in the kernel drop counter (/metrics, /system), except the "
        "VLAN runts the kernel frees before any capture socket.",
        "",
        "![floods](docs/reliability/soak-floods.svg)",
        ""])


def main():
    t0 = time.monotonic()
    phases = ENV("SOAK_PHASES", "soak flaps floods").split()
    for p in phases:
        log(f"phase {p} started")
        try:
            {"soak": phase_soak, "flaps": phase_flaps, "floods": phase_floods}[p]()
        except Exception as e:  # a phase that could not run is a failure, the others still run
            import traceback
            traceback.print_exc()
            broke(p, f"could not run: {e}")
            result["runs"] += 1
        log(f"phase {p} done after {time.monotonic() - t0:.0f} s")
    result["failures"] = sum(len(v.get("broken", [])) > 0 for v in result["phases"].values())
    result["seconds"] = round(time.monotonic() - t0, 1)
    if "soak" in phases:
        result["notes"].append("Plots are copied to docs/reliability/ so the committed RELIABILITY.md shows them.")
    for k, v in result["phases"].items():
        for b in v.get("broken", []):
            result["notes"].append(f"{k}: {b}")
    result["fixed"].append(
        "A capture interface going down and coming back went unreported (libpcap gives no error; frames "
        "just stop): the capture thread now checks the link every 250 ms and reports each gap in the log, "
        "/system, /metrics and /api/v1/capture (src/capture/live.rs, tests/it/live.rs).")
    result["fixed"].append(
        "A read-only API request with a token failed with 500 when recording the token's use found the "
        "database busy (seen here under libfaketime's shortened busy timeout; on a slow SD card during a long "
        "flush or backup in real life): the bookkeeping is now skipped with a warning and the request answered "
        "(src/web/api/tokens.rs, test a_busy_database_does_not_fail_a_token_request).")
    with open(f"{OUT}/soak.json", "w") as f:
        json.dump(result, f, indent=1)
    with open(f"{OUT}/soak.md", "w") as f:
        f.write("\n".join(md) + "\n")


main()
