//! Tests of the generator against the file it really wrote: pcap structure parsed by hand here,
//! the traffic mix, and a replay through the real capture decoder with an accounting of ACCOUNTING.md
//! written out again in the test (so that neither the generator's bookkeeping nor its locality
//! code is trusted by the check).

use super::*;
use crate::capture::decode::{Dest, IpPair, LinkType, decode};
use std::collections::{BTreeMap, BTreeSet};

struct Rec {
    ts_ns: i64,
    caplen: u32,
    len: u32,
    data: Vec<u8>,
}

struct Pcap {
    snaplen: u32,
    linktype: u32,
    recs: Vec<Rec>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_pcap(path: &Path) -> Pcap {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() >= 24, "no global header");
    assert_eq!(le32(&b, 0), 0xa1b2_c3d4, "microsecond little-endian magic");
    assert_eq!(u16::from_le_bytes([b[4], b[5]]), 2);
    assert_eq!(u16::from_le_bytes([b[6], b[7]]), 4);
    let mut recs = Vec::new();
    let mut at = 24;
    while at < b.len() {
        assert!(at + 16 <= b.len(), "record header cut at {at}");
        let (sec, usec, caplen, len) = (
            le32(&b, at),
            le32(&b, at + 4),
            le32(&b, at + 8),
            le32(&b, at + 12),
        );
        assert!(usec < 1_000_000);
        let start = at + 16;
        let end = start + caplen as usize;
        assert!(end <= b.len(), "record data cut at {at}");
        recs.push(Rec {
            ts_ns: i64::from(sec) * 1_000_000_000 + i64::from(usec) * 1000,
            caplen,
            len,
            data: b[start..end].to_vec(),
        });
        at = end;
    }
    Pcap {
        snaplen: le32(&b, 16),
        linktype: le32(&b, 20),
        recs,
    }
}

fn small_opts(frames: u64) -> GenOptions {
    GenOptions {
        seed: 42,
        frames,
        ..GenOptions::default()
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.pcap"),
        dir.path().join("b.pcap"),
        dir.path().join("c.pcap"),
    );
    let opts = small_opts(20_000);
    let ea = write_household_pcap(&a, &opts).unwrap();
    let eb = write_household_pcap(&b, &opts).unwrap();
    let ec = write_household_pcap(
        &c,
        &GenOptions {
            seed: 43,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ea, eb);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    assert_ne!(ea.gateway, ec.gateway);
}

#[test]
fn file_structure_is_a_headers_only_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.pcap");
    let opts = small_opts(30_000);
    write_household_pcap(&path, &opts).unwrap();
    let p = read_pcap(&path);
    assert_eq!(p.linktype, 1);
    assert_eq!(p.snaplen, 128);
    assert_eq!(p.recs.len() as u64, opts.frames);
    let start = opts.start_ns;
    let end = start + opts.duration_secs as i64 * 1_000_000_000;
    let mut last = i64::MIN;
    let mut super_frames = 0;
    for r in &p.recs {
        assert_eq!(r.caplen, r.len.min(128));
        assert!(r.caplen <= p.snaplen && r.len >= r.caplen && r.len <= 65_535);
        assert!(r.ts_ns >= last, "timestamps go backwards");
        assert!(r.ts_ns >= start && r.ts_ns < end);
        last = r.ts_ns;
        if r.len > 1522 {
            super_frames += 1;
        }
    }
    assert!(super_frames > 100, "only {super_frames} GRO/TSO frames");
    assert!(p.recs.iter().any(|r| r.len > 60_000));
}

#[test]
fn full_snaplen_captures_whole_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.pcap");
    let opts = GenOptions {
        snaplen: 65_535,
        ..small_opts(3_000)
    };
    write_household_pcap(&path, &opts).unwrap();
    let p = read_pcap(&path);
    assert_eq!(p.recs.len(), 3_000);
    assert!(p.recs.iter().all(|r| r.caplen == r.len));
}

#[test]
fn expected_totals_add_up_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pcap");
    let e = write_household_pcap(&path, &small_opts(50_000)).unwrap();
    let p = read_pcap(&path);
    let sum = |f: fn(&Counts) -> u64| e.devices.values().map(|d| f(&d.counts)).sum::<u64>();
    assert_eq!(e.frames, 50_000);
    assert_eq!(sum(|c| c.frames_sent), p.recs.len() as u64);
    assert_eq!(
        sum(|c| c.bytes_sent),
        p.recs.iter().map(|r| u64::from(r.len)).sum::<u64>()
    );
    // Group frames are sent but received by nobody.
    assert!(sum(|c| c.frames_received) < sum(|c| c.frames_sent));
    let gw = &e.devices[&e.gateway];
    assert_eq!(gw.counts.internet_upload_bytes, 0);
    assert_eq!(gw.counts.internet_download_bytes, 0);
    assert!(gw.counts.frames_sent > 0 && gw.counts.frames_received > 0);
    let (up, down) = (
        sum(|c| c.internet_upload_bytes),
        sum(|c| c.internet_download_bytes),
    );
    assert!(
        down > 3 * up && up > 0,
        "download {down} should dominate upload {up}"
    );
    // 25 devices, the router, and the departed phone that only receives.
    assert_eq!(e.devices.len(), 27);
    let silent: Vec<_> = e
        .devices
        .values()
        .filter(|d| d.counts.frames_sent == 0)
        .collect();
    assert_eq!(silent.len(), 1);
    assert!(silent[0].counts.frames_received > 0);
    let randomized = e
        .devices
        .keys()
        .filter(|m| m.is_locally_administered())
        .count();
    assert!(randomized >= 6, "{randomized} randomized MACs");
    for d in e.devices.values() {
        assert!(d.first_seen_ns <= d.last_seen_ns);
    }
}

/// Kinds of frame the household must contain, recognised from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Dot1q,
    QinQ,
    StpLlc,
    ArpRequestBroadcast,
    ArpReplyUnicast,
    Dhcp,
    MdnsV4,
    MdnsV6,
    RouterAdvertWithPrefix,
    QuicV6FromGateway,
    TcpV4PublicFromGateway,
    UploadSuperFrame,
    DownloadSuperFrame,
    LanV4,
    LanV6Gua,
    DnsToRouterV4,
    DnsToRouterV6Gua,
    PingRouter,
    Malformed,
    UnicastToSilentMac,
}

fn is_private_v4(ip: [u8; 4]) -> bool {
    matches!(
        ip,
        [10, ..] | [192, 168, ..] | [172, 16..=31, ..] | [100, 64..=127, ..] | [169, 254, ..]
    )
}

fn classify(r: &Rec, gw: MacAddr, out: &mut BTreeSet<Seen>) {
    let d = &r.data;
    let dst = MacAddr(d[0..6].try_into().unwrap());
    let src = MacAddr(d[6..12].try_into().unwrap());
    let mut et = u16::from_be_bytes([d[12], d[13]]);
    let mut at = 14;
    if et == 0x88a8 {
        out.insert(Seen::QinQ);
    } else if et == 0x8100 {
        out.insert(Seen::Dot1q);
    }
    while (et == 0x8100 || et == 0x88a8) && d.len() >= at + 4 {
        et = u16::from_be_bytes([d[at + 2], d[at + 3]]);
        at += 4;
    }
    if et < 0x0600
        && dst == MacAddr([0x01, 0x80, 0xc2, 0, 0, 0])
        && d.get(14..17) == Some(&[0x42, 0x42, 0x03])
    {
        out.insert(Seen::StpLlc);
    }
    if dst == MacAddr([0x01, 0x00, 0x5e, 0, 0, 0xfb]) {
        out.insert(Seen::MdnsV4);
    }
    if dst == MacAddr([0x33, 0x33, 0, 0, 0, 0xfb]) {
        out.insert(Seen::MdnsV6);
    }
    let l3 = &d[at.min(d.len())..];
    let ra_prefix: [u8; 8] = [0x20, 0x01, 0x0d, 0xb8, 0x4b, 0x40, 0x1e, 0x00];
    match et {
        0x0806 if l3.len() >= 28 => {
            let op = u16::from_be_bytes([l3[6], l3[7]]);
            if op == 1 && dst.is_broadcast() {
                out.insert(Seen::ArpRequestBroadcast);
            }
            if op == 2 && !dst.is_group() {
                out.insert(Seen::ArpReplyUnicast);
            }
        }
        0x0800 => {
            if l3.len() < 20 || l3[0] >> 4 != 4 || (l3[0] & 0x0f) < 5 {
                out.insert(Seen::Malformed);
                return;
            }
            let ihl = (l3[0] & 0x0f) as usize * 4;
            let (s, t): ([u8; 4], [u8; 4]) = (
                l3[12..16].try_into().unwrap(),
                l3[16..20].try_into().unwrap(),
            );
            let proto = l3[9];
            let l4 = &l3[ihl.min(l3.len())..];
            let ports = (l4.len() >= 4).then(|| {
                (
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]]),
                )
            });
            if proto == 17 && matches!(ports, Some((67 | 68, 67 | 68))) {
                out.insert(Seen::Dhcp);
            }
            if proto == 17 && dst == gw && t == [192, 168, 178, 1] && matches!(ports, Some((_, 53)))
            {
                out.insert(Seen::DnsToRouterV4);
            }
            if proto == 1 && dst == gw && t == [192, 168, 178, 1] && l4.first() == Some(&8) {
                out.insert(Seen::PingRouter);
            }
            if proto == 6 && src == gw && !is_private_v4(s) {
                out.insert(Seen::TcpV4PublicFromGateway);
                if r.len > 1522 {
                    out.insert(Seen::DownloadSuperFrame);
                }
            }
            if proto == 6 && dst == gw && !is_private_v4(t) && r.len > 1522 {
                out.insert(Seen::UploadSuperFrame);
            }
            if proto == 6
                && src != gw
                && dst != gw
                && s[..3] == [192, 168, 178]
                && t[..3] == [192, 168, 178]
            {
                out.insert(Seen::LanV4);
            }
        }
        0x86dd => {
            if l3.len() < 40 || l3[0] >> 4 != 6 {
                out.insert(Seen::Malformed);
                return;
            }
            let nh = l3[6];
            let (s, t) = (&l3[8..24], &l3[24..40]);
            let l4 = &l3[40..];
            if nh == 58
                && l4.first() == Some(&134)
                && l4.get(16) == Some(&3)
                && l4.get(32..40) == Some(&ra_prefix[..])
            {
                out.insert(Seen::RouterAdvertWithPrefix);
            }
            if nh == 17 && src == gw && l4.get(0..2) == Some(&[0x01, 0xbb]) {
                out.insert(Seen::QuicV6FromGateway);
            }
            if nh == 17 && dst == gw && t[..8] == ra_prefix && l4.get(2..4) == Some(&[0, 53]) {
                out.insert(Seen::DnsToRouterV6Gua);
            }
            if nh == 6 && src != gw && dst != gw && s[..8] == ra_prefix && t[..8] == ra_prefix {
                out.insert(Seen::LanV6Gua);
            }
        }
        0x8100 | 0x88a8 => {
            out.insert(Seen::Malformed);
        }
        _ => {}
    }
}

#[test]
fn traffic_mix_has_every_kind_even_in_a_short_capture() {
    let dir = tempfile::tempdir().unwrap();
    for (frames, seed) in [(400u64, 5u64), (60_000, 6)] {
        let path = dir.path().join(format!("m{frames}.pcap"));
        let opts = GenOptions {
            seed,
            ..small_opts(frames)
        };
        let e = write_household_pcap(&path, &opts).unwrap();
        let p = read_pcap(&path);
        let mut seen = BTreeSet::new();
        let senders: BTreeSet<MacAddr> = p
            .recs
            .iter()
            .map(|r| MacAddr(r.data[6..12].try_into().unwrap()))
            .collect();
        for r in &p.recs {
            classify(r, e.gateway, &mut seen);
            let dst = MacAddr(r.data[0..6].try_into().unwrap());
            if !dst.is_group() && !senders.contains(&dst) {
                seen.insert(Seen::UnicastToSilentMac);
            }
        }
        let all = [
            Seen::Dot1q,
            Seen::QinQ,
            Seen::StpLlc,
            Seen::ArpRequestBroadcast,
            Seen::ArpReplyUnicast,
            Seen::Dhcp,
            Seen::MdnsV4,
            Seen::MdnsV6,
            Seen::RouterAdvertWithPrefix,
            Seen::QuicV6FromGateway,
            Seen::TcpV4PublicFromGateway,
            Seen::UploadSuperFrame,
            Seen::DownloadSuperFrame,
            Seen::LanV4,
            Seen::LanV6Gua,
            Seen::DnsToRouterV4,
            Seen::DnsToRouterV6Gua,
            Seen::PingRouter,
            Seen::Malformed,
            Seen::UnicastToSilentMac,
        ];
        let missing: Vec<_> = all.iter().filter(|k| !seen.contains(k)).collect();
        assert!(missing.is_empty(), "{frames} frames: missing {missing:?}");
        // The very first frame is the router's RA, before any GUA traffic.
        let mut first = BTreeSet::new();
        classify(&p.recs[0], e.gateway, &mut first);
        assert!(first.contains(&Seen::RouterAdvertWithPrefix));
    }
}

/// ACCOUNTING.md again, independently of `locality.rs`: the fixed local ranges.
fn builtin_local(ip: IpPair, learned: &[(u128, u8)], lan: &[IpPrefix]) -> (bool, bool) {
    fn v4_local(a: u32, lan: &[IpPrefix]) -> bool {
        let o = a.to_be_bytes();
        o[0] == 10
            || (o[0] == 172 && (16..32).contains(&o[1]))
            || (o[0] == 192 && o[1] == 168)
            || (o[0] == 100 && (64..128).contains(&o[1]))
            || (o[0] == 169 && o[1] == 254)
            || (224..240).contains(&o[0])
            || a == u32::MAX
            || lan.iter().any(|p| p.contains_v4(a))
    }
    fn v6_local(a: u128, learned: &[(u128, u8)], lan: &[IpPrefix]) -> bool {
        let top = (a >> 112) as u16;
        (top & 0xffc0) == 0xfe80
            || (top & 0xfe00) == 0xfc00
            || (top & 0xff00) == 0xff00
            || learned
                .iter()
                .any(|&(p, l)| a & (u128::MAX << (128 - l as u32)) == p)
            || lan.iter().any(|p| p.contains_v6(a))
    }
    match ip {
        IpPair::None => (true, true),
        IpPair::V4 { src, dst } => (v4_local(src, lan), v4_local(dst, lan)),
        IpPair::V6 { src, dst } => (v6_local(src, learned, lan), v6_local(dst, learned, lan)),
    }
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Ref {
    c: Counts,
    sent: Option<(i64, i64)>,
    recv: Option<(i64, i64)>,
}

#[test]
fn replay_through_the_real_decoder_matches_expected_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pcap");
    let e = write_household_pcap(&path, &small_opts(80_000)).unwrap();
    let p = read_pcap(&path);
    let mut learned: Vec<(u128, u8)> = Vec::new();
    let mut map: BTreeMap<MacAddr, Ref> = BTreeMap::new();
    for r in &p.recs {
        let f =
            decode(LinkType::Ethernet, r.ts_ns, &r.data, r.len).expect("readable Ethernet header");
        for &(pfx, len) in f.ra_prefixes.iter().filter(|x| x.1 > 0) {
            if !learned.contains(&(pfx, len)) {
                learned.push((pfx, len));
            }
        }
        let bytes = u64::from(f.wire_len);
        let (src_local, dst_local) = builtin_local(f.ip, &learned, &e.lan_prefixes);
        let s = map.entry(f.src).or_default();
        s.c.frames_sent += 1;
        s.c.bytes_sent += bytes;
        s.sent = Some(s.sent.map_or((f.ts, f.ts), |(a, _)| (a, f.ts)));
        if let Dest::Unicast(d) = f.dst {
            if d == e.gateway && f.src != e.gateway && !dst_local {
                s.c.internet_upload_bytes += bytes;
            }
            let t = map.entry(d).or_default();
            t.c.frames_received += 1;
            t.c.bytes_received += bytes;
            t.recv = Some(t.recv.map_or((f.ts, f.ts), |(a, _)| (a, f.ts)));
            if f.src == e.gateway && d != e.gateway && !src_local {
                t.c.internet_download_bytes += bytes;
            }
        }
    }
    assert_eq!(learned.len(), 1, "the RA prefix is learned from the wire");
    let got: BTreeMap<MacAddr, ExpectedDevice> = map
        .into_iter()
        .map(|(mac, r)| {
            let (first, last) = r.sent.or(r.recv).unwrap();
            let name = e
                .devices
                .get(&mac)
                .map(|d| d.name.clone())
                .unwrap_or_default();
            (
                mac,
                ExpectedDevice {
                    counts: r.c,
                    first_seen_ns: first,
                    last_seen_ns: last,
                    name,
                },
            )
        })
        .collect();
    assert_eq!(got.len(), e.devices.len());
    for (mac, want) in &e.devices {
        assert_eq!(got.get(mac), Some(want), "MAC {mac} ({})", want.name);
    }
    // The rules under test really bite in this capture.
    let tv = e
        .devices
        .values()
        .find(|d| d.name == "Living room TV")
        .unwrap();
    assert!(tv.counts.internet_download_bytes > 0);
    assert!(tv.counts.local_bytes() > 0);
}

#[test]
fn json_has_the_replay_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.pcap");
    let e = write_household_pcap(&path, &small_opts(2_000)).unwrap();
    let v = e.to_json();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), e.devices.len());
    let gw = rows.iter().filter(|r| r["is_gateway"] == true).count();
    assert_eq!(gw, 1);
    for r in rows {
        for k in [
            "frames_sent",
            "frames_received",
            "bytes_sent",
            "bytes_received",
            "internet_upload_bytes",
            "internet_download_bytes",
            "local_bytes",
        ] {
            assert!(r[k].is_u64(), "{k} in {r}");
        }
        let mac: MacAddr = r["mac"].as_str().unwrap().parse().unwrap();
        let d = &e.devices[&mac];
        let first: jiff::Timestamp = r["first_seen"].as_str().unwrap().parse().unwrap();
        assert_eq!(first.as_nanosecond(), i128::from(d.first_seen_ns));
        assert!(r["last_seen"].as_str().unwrap().ends_with('Z'));
        assert_eq!(r["local_bytes"].as_u64().unwrap(), d.counts.local_bytes());
    }
}

#[test]
fn default_start_is_march_first_2026() {
    let t: jiff::Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
    assert_eq!(t.as_nanosecond(), i128::from(DEFAULT_START_NS));
    assert_eq!(
        rfc3339(DEFAULT_START_NS + 5),
        "2026-03-01T00:00:00.000000005Z"
    );
}

#[test]
fn bad_options_and_paths_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pcap");
    for bad in [
        GenOptions {
            devices: 0,
            ..small_opts(10)
        },
        GenOptions {
            snaplen: 64,
            ..small_opts(10)
        },
        GenOptions {
            duration_secs: 0,
            ..small_opts(10)
        },
        GenOptions {
            start_ns: -1,
            ..small_opts(10)
        },
    ] {
        let err = write_household_pcap(&path, &bad).unwrap_err();
        assert!(matches!(err, GenError::Options(_)), "{err}");
    }
    let missing = dir.path().join("no/such/dir/x.pcap");
    let err = write_household_pcap(&missing, &small_opts(10)).unwrap_err();
    assert!(err.to_string().contains("no/such/dir/x.pcap"), "{err}");
}

#[test]
fn big_household_has_room_for_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pcap");
    let opts = GenOptions {
        devices: 300,
        ..small_opts(40_000)
    };
    let e = write_household_pcap(&path, &opts).unwrap();
    assert_eq!(e.lan_prefixes[0].to_string(), "192.168.176.0/20");
    assert!(e.devices.len() > 250, "{} MACs active", e.devices.len());
}

#[test]
fn mac_flood_has_exactly_the_distinct_sources_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.pcap");
    write_mac_flood_pcap(&path, 9, 30_000, 20_000).unwrap();
    let p = read_pcap(&path);
    assert_eq!(p.recs.len(), 30_000);
    let srcs: BTreeSet<MacAddr> = p
        .recs
        .iter()
        .map(|r| MacAddr(r.data[6..12].try_into().unwrap()))
        .collect();
    assert_eq!(srcs.len(), 20_000);
    assert!(srcs.iter().all(|m| !m.is_group()));
    assert!(p.recs.windows(2).all(|w| w[0].ts_ns < w[1].ts_ns));
    assert!(write_mac_flood_pcap(&path, 9, 10, 0).is_err());
}

#[test]
fn zero_frames_is_an_empty_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.pcap");
    let e = write_household_pcap(&path, &small_opts(0)).unwrap();
    assert!(e.devices.is_empty());
    assert_eq!(read_pcap(&path).recs.len(), 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
}

/// `handshakes` adds SYN / SYN-ACK pairs that the passive latency tracker pairs up, every one
/// of them, and the expected totals still add up to the file.
#[test]
fn handshakes_option_writes_handshakes_passive_latency_pairs() {
    use crate::internet::passive::Handshakes;
    use crate::meter::Locality;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.pcap");
    let opts = GenOptions {
        handshake_percent: 50,
        ..small_opts(30_000)
    };
    let e = write_household_pcap(&path, &opts).unwrap();
    let p = read_pcap(&path);
    assert_eq!(
        e.devices.values().map(|d| d.counts.bytes_sent).sum::<u64>(),
        p.recs.iter().map(|r| u64::from(r.len)).sum::<u64>()
    );
    let loc = Locality::new(e.lan_prefixes.iter().copied());
    let mut h = Handshakes::new();
    for r in &p.recs {
        let f = decode(LinkType::Ethernet, r.ts_ns, &r.data, r.len).unwrap();
        h.observe_frame(&f, &loc);
    }
    let s = h.stats();
    assert!(s.syns > 100, "{s:?}");
    // The file may end between a SYN and its SYN-ACK.
    assert!(s.samples + 1 >= s.syns, "{s:?}");
    assert_eq!(s.evicted, 0);
    let bad = GenOptions {
        handshake_percent: 101,
        ..small_opts(10)
    };
    assert!(write_household_pcap(&dir.path().join("x.pcap"), &bad).is_err());
}
