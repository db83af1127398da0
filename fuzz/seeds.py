#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into fuzz/seeds/<target>/ from real captures.

Seeds are generated at run time (never committed): frames, DHCP/mDNS/NDP/ARP payloads and
radiotap records are cut out of the classic pcap files under PCAP_DIR (default:
tests/data/pcaps in the repository), in the input layout each target in
fuzz_targets/ expects. pcapng files are whole (or cut) seeds for the reader target only.
Usage: seeds.py [OUT_DIR]
"""

import hashlib
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PCAP_DIR = Path(os.environ.get("PCAP_DIR", ROOT / "tests" / "data" / "pcaps"))
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "seeds"
# Enough variety for coverage, few enough that loading a corpus stays a second's work.
PER_TARGET = 1500
PER_FILE = 40
LINK_SEL = {1: 0, 113: 1, 276: 2}  # DLT -> the selector byte frame_decode/discovery_frame read

seeds = {}


def add(target, data):
    bucket = seeds.setdefault(target, {})
    if len(bucket) < PER_TARGET:
        bucket.setdefault(hashlib.sha1(data).hexdigest(), data)


def records(blob):
    """(linktype, [frame bytes]) of a classic pcap, or None."""
    if len(blob) < 24:
        return None
    magic = blob[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None
    link = struct.unpack(e + "I", blob[20:24])[0] & 0x03FFFFFF
    out, pos = [], 24
    while pos + 16 <= len(blob) and len(out) < PER_FILE:
        caplen = struct.unpack(e + "I", blob[pos + 8 : pos + 12])[0]
        data = blob[pos + 16 : pos + 16 + caplen]
        if len(data) < caplen:
            break
        out.append(data)
        pos += 16 + caplen
    return link, out


def l3(link, f):
    """(ethertype, layer-3 bytes, source MAC) after the link header and VLAN tags."""
    if link == 1:
        if len(f) < 14:
            return None
        src, et, at = f[6:12], struct.unpack(">H", f[12:14])[0], 14
    elif link == 113:
        if len(f) < 16:
            return None
        src, et, at = f[6:12], struct.unpack(">H", f[14:16])[0], 16
    elif link == 276:
        if len(f) < 20:
            return None
        src, et, at = f[12:18], struct.unpack(">H", f[0:2])[0], 20
    else:
        return None
    while et in (0x8100, 0x88A8, 0x9100) and len(f) >= at + 4:
        et, at = struct.unpack(">H", f[at + 2 : at + 4])[0], at + 4
    return et, f[at:], src


def payloads(link, f):
    got = l3(link, f)
    if not got:
        return
    et, p, _ = got
    if et == 0x0806:
        add("arp", p)
    elif et == 0x0800 and len(p) >= 20 and p[0] >> 4 == 4:
        ihl = (p[0] & 15) * 4
        if p[9] == 17 and len(p) >= ihl + 8:
            udp(p[ihl : ihl + 4], p[ihl + 8 :])
    elif et == 0x86DD and len(p) >= 40:
        nxt, body = p[6], p[40:]
        if nxt == 17 and len(body) >= 8:
            udp(body[:4], body[8:])
        elif nxt == 58 and body and body[0] in (129, 133, 134, 135, 136):
            add("ndp", p[8:24] + body)


def udp(ports, body):
    sport, dport = struct.unpack(">HH", ports)
    if {sport, dport} & {67, 68}:
        add("dhcp", b"\x00" + body)
    elif {sport, dport} & {546, 547}:
        add("dhcp", b"\x01" + body)
    elif {sport, dport} & {53, 5353}:
        # Unicast DNS shares mDNS's wire format (names, compression, records).
        add("mdns", body)


# web_body's routes, in the order of ROUTES in fuzz_targets/web_body.rs: True = a JSON body.
WEB_ROUTES = [False] * 17 + [True] * 4


def web_fields():
    """Field names of the structs the web side deserializes bodies into (src/web/**.rs)."""
    names = set()
    for path in sorted((ROOT / "src" / "web").rglob("*.rs")):
        lines = path.read_text(errors="replace").splitlines()
        derive, inside = False, False
        for line in lines:
            t = line.strip()
            if t.startswith("#[derive(") and "Deserialize" in t:
                derive = True
            elif derive and t.startswith(("pub struct", "struct")) and t.endswith("{"):
                inside, derive = True, False
            elif inside and t == "}":
                inside = False
            elif inside and ":" in t and not t.startswith(("//", "#")):
                name = t.removeprefix("pub ").split(":")[0].strip()
                if name.isidentifier():
                    names.add(name)
    return sorted(names)


def web_body():
    """Seeds (selector, id, body) per route and a dictionary of the field names for web_body."""
    fields = web_fields()
    values = ["1", "0", "yes", "on", "Laptop", "2026-01-01", "100", "-1", "GB", ""]
    for sel, is_json in enumerate(WEB_ROUTES):
        add("web_body", bytes([sel, 1]))
        for i in range(0, len(fields), 4):
            chunk = fields[i : i + 4]
            if is_json:
                body = "{" + ",".join(f'"{f}":"{values[(i + j) % len(values)]}"' for j, f in enumerate(chunk)) + "}"
            else:
                body = "&".join(f"{f}={values[(i + j) % len(values)]}" for j, f in enumerate(chunk))
            add("web_body", bytes([sel, 1 + i % 3]) + body.encode())
    words = fields + ["csrf", "true", "false", "null", "%00", "%ff", "&", "=", "{", "}", "[", "]"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "web_body.dict").write_text("".join(f'"{w}"\n' for w in words))


def main():
    files = sorted(PCAP_DIR.rglob("*.pcap")) if PCAP_DIR.is_dir() else []
    if not files:
        print(f"seeds.py: no captures under {PCAP_DIR}; the targets start from empty corpora")
    for path in sorted(PCAP_DIR.rglob("*.pcapng")) if PCAP_DIR.is_dir() else []:
        blob = path.read_bytes()
        add("pcap_reader", blob if len(blob) <= 16384 else blob[:16384])
    for path in files:
        blob = path.read_bytes()
        got = records(blob)
        if not got:
            continue
        link, frames = got
        # The reader sees whole small files and the head (cut mid-record) of larger ones.
        add("pcap_reader", blob if len(blob) <= 16384 else blob[:16384])
        for f in frames:
            if link in LINK_SEL:
                add("frame_decode", bytes([LINK_SEL[link]]) + f)
                add("discovery_frame", bytes([LINK_SEL[link]]) + f)
                payloads(link, f)
            elif link == 127:
                add("wifi", b"\x00" + f)
                if len(f) >= 4:
                    rt_len = struct.unpack("<H", f[2:4])[0]
                    add("wifi", b"\x01" + f[rt_len:])
            elif link == 105:
                add("wifi", b"\x01" + f)
    config = ROOT / "packaging" / "lanmeter.toml"
    if config.is_file():
        text = config.read_bytes()
        add("config", text)
        # The documented file has every key commented out; uncommented, it sets them all.
        add("config", b"\n".join(l[2:] if l.startswith(b"# ") and b" = " in l else l for l in text.split(b"\n")))
    web_body()
    for target, bucket in sorted(seeds.items()):
        d = OUT / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in bucket.items():
            (d / name).write_bytes(data)
        print(f"seeds: {target}: {len(bucket)}")


main()
