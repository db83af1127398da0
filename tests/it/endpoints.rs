//! Remote endpoints (issue 29) against an independent oracle: tshark's own dissection of each
//! frame (`eth.src`, `eth.dst`, the outermost IPv4/IPv6 `src`/`dst`, `frame.len`), summed here
//! with ACCOUNTING.md §3's internet rule, must give, per device, the bytes of every remote
//! `lanmeter replay --endpoints` kept; and per device the remotes plus "other" must equal its
//! internet bytes exactly. On a generated household, on real captures from tcpdump's corpus, and
//! on a capture written here with more remotes per minute than the per-device bound, where the
//! heavy remotes must be kept exactly and the rest must land in "other", not vanish.
//! With the setting off, no remote address reaches the database.

use crate::{LANMETER, hermetic, pcap_corpus};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

/// Real captures with internet traffic between MACs (several remotes, IPv4 and IPv6, VLANs).
const CORPUS: &[&str] = &[
    "afs.pcap",
    "kday4.pcap",
    "kday7.pcap",
    "bgp-4byte-asn.pcap",
    "pim-packet-assortment.pcap",
    "bigtcp-ipv6.pcap",
    "dns_fwdptr.pcap",
    "ipv6_jumbogram_1.pcap",
];

/// ACCOUNTING.md §3's local addresses: the fixed ranges and the prefixes router advertisements
/// announced so far in the capture (`ra`: IPv6 prefix, length).
fn is_local(ip: IpAddr, ra: &[(u128, u32)]) -> bool {
    let announced = |a: u128| {
        ra.iter()
            .any(|&(p, len)| len > 0 && len <= 128 && (a ^ p) >> (128 - len) == 0)
    };
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[0] == 10
                || (o[0] == 172 && o[1] & 0xf0 == 16)
                || (o[0] == 192 && o[1] == 168)
                || (o[0] == 100 && o[1] & 0xc0 == 64)
                || (o[0] == 169 && o[1] == 254)
                || o[0] == 127
                || o[0] == 0
                || o[0] >= 224
        }
        IpAddr::V6(a) => {
            let top = a.segments()[0];
            top & 0xffc0 == 0xfe80
                || top & 0xfe00 == 0xfc00
                || top & 0xff00 == 0xff00
                || u128::from(a) <= 1
                || announced(u128::from(a))
        }
    }
}

pub(crate) type PerRemote = HashMap<(String, String), (u64, u64)>;

/// tshark's view: (device MAC, remote) → (bytes up, bytes down), for the given gateway.
pub(crate) fn oracle(file: &Path, gateway: &str) -> PerRemote {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-E",
            "separator=\t",
            "-e",
            "eth.src",
            "-e",
            "eth.dst",
            "-e",
            "frame.protocols",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
            "-e",
            "frame.len",
            "-e",
            "icmpv6.type",
            "-e",
            "icmpv6.opt.prefix",
            "-e",
            "icmpv6.opt.prefix.length",
        ])
        .output()
        .expect("tshark runs (apt install tshark)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = PerRemote::new();
    let mut ra: Vec<(u128, u32)> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let all: Vec<&str> = line.split('\t').collect();
        // The first occurrence of each field: the outermost header's.
        let f: Vec<&str> = all
            .iter()
            .map(|v| v.split(',').next().unwrap_or(""))
            .collect();
        // A router advertisement makes its prefixes local from this frame on (ACCOUNTING.md §3).
        if f[8] == "134" {
            for (p, l) in all[9].split(',').zip(all[10].split(',')) {
                if let (Ok(p), Ok(l)) = (p.parse::<std::net::Ipv6Addr>(), l.parse::<u32>()) {
                    if !ra.contains(&(u128::from(p), l)) {
                        ra.push((u128::from(p), l));
                    }
                }
            }
        }
        let (src, dst, protos, len) = (f[0], f[1], all[2], f[7].parse::<u64>().unwrap());
        // The outermost IP header is the one on the wire between the two MACs.
        let layers: Vec<&str> = protos.split(':').collect();
        let (s, d) = match layers.iter().find(|l| **l == "ip" || **l == "ipv6") {
            Some(&"ip") => (f[3], f[4]),
            Some(_) => (f[5], f[6]),
            None => continue,
        };
        let (Ok(s), Ok(d)) = (s.parse::<IpAddr>(), d.parse::<IpAddr>()) else {
            continue;
        };
        if src == gateway && dst != gateway && !is_local(s, &ra) {
            // A unicast destination only (the group bit is clear).
            let first = u8::from_str_radix(&dst[..2], 16).unwrap();
            if first & 1 == 0 {
                m.entry((dst.to_string(), s.to_string())).or_default().1 += len;
            }
        }
        if dst == gateway && src != gateway && !is_local(d, &ra) {
            m.entry((src.to_string(), d.to_string())).or_default().0 += len;
        }
    }
    m
}

fn replay_endpoints(file: &Path) -> Vec<Value> {
    let out = hermetic(&mut Command::new(LANMETER))
        .args(["replay", "--json", "--endpoints"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Compares one file; returns (remotes compared, devices with evictions, per-remote table).
pub(crate) fn compare(file: &Path, exact_all: bool) -> (usize, PerRemote) {
    let rows = replay_endpoints(file);
    let gateway = rows
        .iter()
        .find(|r| r["is_gateway"] == true)
        .map(|r| r["mac"].as_str().unwrap().to_string());
    let Some(gateway) = gateway else {
        panic!("{}: no gateway", file.display());
    };
    let want = oracle(file, &gateway);
    let mut per_device: HashMap<String, (u64, u64)> = HashMap::new();
    for ((dev, _), v) in &want {
        let t = per_device.entry(dev.clone()).or_default();
        t.0 += v.0;
        t.1 += v.1;
    }
    let mut compared = 0;
    let mut got = PerRemote::new();
    for r in rows.iter().filter(|r| r["mac"] != "other") {
        let mac = r["mac"].as_str().unwrap();
        let internet = (
            r["internet_upload_bytes"].as_u64().unwrap(),
            r["internet_download_bytes"].as_u64().unwrap(),
        );
        assert_eq!(
            internet,
            per_device.get(mac).copied().unwrap_or_default(),
            "{}: {mac}'s internet bytes differ from tshark's",
            file.display()
        );
        let Some(remotes) = r["remotes"].as_array() else {
            assert_eq!(internet, (0, 0), "{}: {mac} has no remotes", file.display());
            continue;
        };
        let mut sum = (0, 0);
        for x in remotes {
            let remote = x["remote"].as_str().unwrap();
            let v = (
                x["bytes_up"].as_u64().unwrap(),
                x["bytes_down"].as_u64().unwrap(),
            );
            sum.0 += v.0;
            sum.1 += v.1;
            if remote == "other" {
                continue;
            }
            got.insert((mac.to_string(), remote.to_string()), v);
            let oracle = want
                .get(&(mac.to_string(), remote.to_string()))
                .copied()
                .unwrap_or_default();
            if exact_all {
                assert_eq!(v, oracle, "{}: {mac} ↔ {remote}", file.display());
            } else {
                // Exact from admission: never more than the wire, less only if evicted once.
                assert!(
                    v.0 <= oracle.0 && v.1 <= oracle.1,
                    "{}: {mac} ↔ {remote}: {v:?} > {oracle:?}",
                    file.display()
                );
            }
            compared += 1;
        }
        assert_eq!(
            sum,
            internet,
            "{}: {mac}'s remotes + other ≠ its internet bytes",
            file.display()
        );
    }
    (compared, got)
}

#[test]
fn remote_bytes_equal_tsharks_on_generated_and_real_captures() {
    let dir = tempfile::tempdir().unwrap();
    let gen_file = dir.path().join("g.pcap");
    let out = hermetic(&mut Command::new(LANMETER))
        .args(["generate"])
        .arg(&gen_file)
        .args([
            "--frames",
            "20000",
            "--devices",
            "6",
            "--duration-secs",
            "600",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (n, _) = compare(&gen_file, true);
    assert!(n >= 30, "generated: only {n} remotes compared");
    let mut total = 0;
    for f in CORPUS {
        let (n, _) = compare(&pcap_corpus().join("tcpdump").join(f), true);
        assert!(n > 0, "{f}: no remote compared");
        total += n;
    }
    assert!(total >= 15, "corpus: only {total} remotes compared");
}

/// A classic pcap (Ethernet, µs) written record by record.
struct Pcap(Vec<u8>);

impl Pcap {
    fn new() -> Pcap {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        Pcap(b)
    }

    /// An IPv4/UDP frame of `len` bytes on the wire (stored whole, so tshark sees it all).
    fn frame(&mut self, t_us: u64, src: [u8; 6], dst: [u8; 6], s: [u8; 4], d: [u8; 4], len: u16) {
        let mut f = Vec::with_capacity(len as usize);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        let ip_len = len - 14;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&ip_len.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&s);
        ip.extend_from_slice(&d);
        let sum = !ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .fold(0u32, |a, b| {
                let x = a + b;
                (x & 0xffff) + (x >> 16)
            }) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x30, 0x39, 0x30, 0x39]);
        f.extend_from_slice(&(ip_len - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.resize(len as usize, 0);
        self.0
            .extend_from_slice(&((t_us / 1_000_000) as u32).to_le_bytes());
        self.0
            .extend_from_slice(&((t_us % 1_000_000) as u32).to_le_bytes());
        self.0.extend_from_slice(&(f.len() as u32).to_le_bytes());
        self.0.extend_from_slice(&(f.len() as u32).to_le_bytes());
        self.0.extend_from_slice(&f);
    }
}

const GW: [u8; 6] = [0x00, 0x11, 0x32, 0, 0, 1];
const DEV: [u8; 6] = [0xdc, 0xa6, 0x32, 0, 0, 2];
const DEV2: [u8; 6] = [0x3c, 0x22, 0xfb, 0, 0, 3];

/// Two devices, each with three heavy remotes from the first frame on and 2,000 light ones
/// over two minutes (far past the 32 kept per minute).
fn many_remotes(path: &Path) {
    let mut p = Pcap::new();
    let t0 = 1_700_000_000_000_000u64;
    let mut x = 0x1234_5678u32;
    for i in 0..4000u64 {
        for (n, dev) in [DEV, DEV2].iter().enumerate() {
            let me = [192, 168, 1, 2 + n as u8];
            let t = t0 + i * 30_000;
            let heavy = [
                [93, 184, 216, 34],
                [151, 101, 1, 69],
                [142, 250, 1, 1 + n as u8],
            ];
            let h = heavy[(i % 3) as usize];
            p.frame(t, GW, *dev, h, me, 1400);
            p.frame(t + 1, *dev, GW, me, h, 80);
            // A light remote: 1.0.0.0..8.255.255.255, public, mostly once each.
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let r = ((x >> 5) & 0x07ff_ffff) | 0x0100_0000;
            p.frame(t + 2, *dev, GW, me, r.to_be_bytes(), 60);
        }
    }
    std::fs::write(path, &p.0).unwrap();
}

#[test]
fn past_the_bound_heavy_remotes_stay_exact_and_the_rest_is_other() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.pcap");
    many_remotes(&file);
    let (n, got) = compare(&file, false);
    assert!(n > 0);
    let rows = replay_endpoints(&file);
    let gw = "00:11:32:00:00:01";
    let want = oracle(&file, gw);
    for (dev, n) in [("dc:a6:32:00:00:02", 0u8), ("3c:22:fb:00:00:03", 1)] {
        for heavy in [
            "93.184.216.34".to_string(),
            "151.101.1.69".to_string(),
            format!("142.250.1.{}", 1 + n),
        ] {
            let key = (dev.to_string(), heavy.clone());
            assert_eq!(got.get(&key), want.get(&key), "{dev} ↔ {heavy}");
        }
        let row = rows.iter().find(|r| r["mac"] == dev).unwrap();
        let remotes = row["remotes"].as_array().unwrap();
        let other = remotes.last().unwrap();
        assert_eq!(other["remote"], "other");
        assert!(
            other["bytes_up"].as_u64().unwrap() > 0,
            "light remotes must reach 'other': {other}"
        );
    }
}

#[test]
fn with_the_setting_off_no_remote_address_reaches_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.pcap");
    many_remotes(&file);
    let count = |db: &Path| -> (i64, i64) {
        let c = rusqlite::Connection::open(db).unwrap();
        let rows: i64 = c
            .query_row("SELECT count(*) FROM device_remote_hour", [], |r| r.get(0))
            .unwrap();
        // No text anywhere in the database that looks like one of the remote addresses.
        let mut texts = 0i64;
        let tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for t in tables {
            let mut st = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = st.column_count();
            let mut q = st.query([]).unwrap();
            while let Some(r) = q.next().unwrap() {
                for i in 0..n {
                    if let Ok(rusqlite::types::ValueRef::Text(s)) = r.get_ref(i) {
                        let s = String::from_utf8_lossy(s);
                        if s.contains("93.184.216.34") || s.contains("151.101.1.69") {
                            texts += 1;
                        }
                    }
                }
            }
        }
        (rows, texts)
    };
    let run = |db: &Path, extra: &[&str]| {
        let out = hermetic(&mut Command::new(LANMETER))
            .args(["replay", "--gateway", "00:11:32:00:00:01", "--db"])
            .arg(db)
            .args(extra)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let off = dir.path().join("off.db");
    run(&off, &[]);
    assert_eq!(count(&off), (0, 0));
    // The same replay with the setting on does store them: the check above can fail.
    let on = dir.path().join("on.db");
    run(&on, &["--endpoints"]);
    let (rows, texts) = count(&on);
    assert!(rows > 0 && texts > 0, "{rows} rows, {texts} texts");
}

/// Peak RSS (MB) of `lanmeter replay --endpoints` reading `frames` frames from standard input
/// (never a file: 1 M frames would be 76 MB of disk), each to a new random public address, from
/// `devices` devices, over ten minutes. Measured by GNU time, as the benchmarks do.
fn flood_rss_mb(devices: u32, frames: u32, endpoints: bool) -> f64 {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let time_out = dir.path().join("time");
    let mut child = hermetic(&mut Command::new("/usr/bin/time"))
        .args(["-f", "%M", "-o"])
        .arg(&time_out)
        .arg(LANMETER)
        .args(["replay", "--json", "--gateway", "00:11:32:00:00:01", "-"])
        .args(endpoints.then_some("--endpoints"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("/usr/bin/time runs (apt install time)");
    {
        let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
        let mut p = Pcap::new();
        w.write_all(&p.0).unwrap();
        let t0 = 1_700_000_000_000_000u64;
        let mut x = 0x9e37_79b9u32;
        for i in 0..frames {
            p.0.clear();
            let d = i % devices;
            let dev = [0xdc, 0xa6, 0x32, 0, (d >> 8) as u8, d as u8];
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let r = ((x >> 5) & 0x07ff_ffff) | 0x0100_0000;
            let t = t0 + u64::from(i) * 600_000_000 / u64::from(frames);
            p.frame(t, dev, GW, [192, 168, 1, 2], r.to_be_bytes(), 60);
            w.write_all(&p.0).unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
    let kb: f64 = std::fs::read_to_string(&time_out)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// SPEC §5: ≤ 40 MB RSS for 200 devices, bounded under a flood; here 1 million distinct remote
/// addresses from one device and from 200, with remote endpoints on and off. The debug build
/// this test runs is larger than the release one (BENCHMARKS.md has the release figures): the
/// feature's own share is bounded here, the absolute budget for one device.
#[test]
fn a_million_random_remotes_stay_within_the_memory_budget() {
    let one = flood_rss_mb(1, 1_000_000, true);
    let many = flood_rss_mb(200, 1_000_000, true);
    let many_off = flood_rss_mb(200, 1_000_000, false);
    eprintln!(
        "peak RSS with 1 M random remotes: one device {one:.1} MB, 200 devices {many:.1} MB \
         (remote endpoints off: {many_off:.1} MB)"
    );
    assert!(one <= 40.0, "one device: {one:.1} MB");
    assert!(many <= 40.0, "200 devices: {many:.1} MB");
    // 200 devices × (≤ 17 pending minutes × 1.8 KB + 64 replay totals × ~56 B) ≈ 7 MB at most.
    assert!(
        many - many_off <= 10.0,
        "200 devices: {many:.1} MB on vs {many_off:.1} MB off"
    );
}
