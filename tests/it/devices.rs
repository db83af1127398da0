//! Device discovery through the real binary: real corpus captures and generated frames for each
//! protocol (hostile announcements included) replayed into a database and listed with
//! `lanmeter devices --json`; private MACs linked by DHCP client id; presence across a silence.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn lanmeter(args: &[&str]) -> String {
    let out = crate::hermetic(&mut Command::new(crate::LANMETER))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the lanmeter binary runs");
    assert!(
        out.status.success(),
        "lanmeter {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Replays `file` into a fresh database and returns `devices --json` and `replay --json`.
fn replay_devices(dir: &Path, file: &Path) -> (Vec<Value>, Vec<Value>) {
    let db = dir.join(format!(
        "{}.db",
        file.file_name().unwrap().to_string_lossy()
    ));
    let replay: Value =
        serde_json::from_str(&lanmeter(&["replay", "--json", p(file), "--db", p(&db)])).unwrap();
    let devices: Value =
        serde_json::from_str(&lanmeter(&["devices", "--json", "--db", p(&db)])).unwrap();
    (
        devices.as_array().unwrap().clone(),
        replay.as_array().unwrap().clone(),
    )
}

fn by_mac<'a>(rows: &'a [Value], mac: &str) -> &'a Value {
    rows.iter()
        .find(|d| {
            d["mac"] == mac
                || d["macs"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["mac"] == mac))
        })
        .unwrap_or_else(|| panic!("{mac} not in {rows:#?}"))
}

fn names(d: &Value) -> Vec<String> {
    d["hostnames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn real_captures_give_names_addresses_vendors_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = crate::pcap_corpus().join("tcpdump");
    // DHCPv4 option 12 from a real MacBook.
    let (devs, replay) = replay_devices(dir.path(), &corpus.join("dhcp-option-108.pcapng"));
    let mac = by_mac(&devs, "42:b4:44:b4:f0:ee");
    assert_eq!(mac["name"], "MacBookPro");
    assert_eq!(mac["type"], "laptop");
    assert_eq!(
        by_mac(&replay, "42:b4:44:b4:f0:ee")["hostname"],
        "MacBookPro"
    );
    // A DHCPv6 Reply leasing an address (IA_NA) to the client.
    let (devs, _) = replay_devices(dir.path(), &corpus.join("dhcpv6-ia-na.pcap"));
    let client = by_mac(&devs, "00:01:02:03:04:05");
    assert!(
        client["ipv6"]
            .as_array()
            .unwrap()
            .contains(&Value::from("2a00:1:1:200:38e6:b22e:c440:acdf")),
        "{client:#}"
    );
    // A router advertisement makes its sender a router.
    let (devs, _) = replay_devices(dir.path(), &corpus.join("icmpv6-ra-pref64.pcap"));
    assert_eq!(by_mac(&devs, "e2:15:81:b4:b9:45")["type"], "router");
    // A DHCP ACK gives the client its lease; the vendor comes from the OUI registry.
    let (devs, replay) = replay_devices(dir.path(), &corpus.join("dhcp-rfc3004.pcap"));
    let vm = by_mac(&devs, "00:0c:29:1f:74:06");
    assert_eq!(vm["ipv4"], serde_json::json!(["192.168.1.4"]));
    assert_eq!(vm["vendor"], "VMware, Inc.");
    assert_eq!(
        by_mac(&replay, "00:0c:29:1f:74:06")["vendor"],
        "VMware, Inc."
    );
    // Fuzzer-found malformed ARP and DHCP captures: parsed without failing.
    for f in [
        "arp-oobr.pcap",
        "arp-too-long-tha.pcap",
        "bootp_asan.pcap",
        "bootp_asan-2.pcap",
        "dhcp6_reconf_asan.pcap",
    ] {
        let _ = replay_devices(dir.path(), &corpus.join(f));
    }
}

/// A classic pcap file (microsecond timestamps, Ethernet) of (seconds, frame) records.
pub fn write_pcap(path: &Path, records: &[(u32, Vec<u8>)]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&[2, 0, 4, 0]);
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (sec, f) in records {
        b.extend_from_slice(&sec.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).unwrap();
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let v: Vec<u8> = mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// Ethernet + IPv4 + UDP (checksum 0, allowed for IPv4) around `payload`.
fn udp_frame(
    src: &str,
    dst: [u8; 6],
    sip: [u8; 4],
    dip: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&mac_bytes(src));
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&sip);
    ip.extend_from_slice(&dip);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A DHCPDISCOVER from `mac` with the given options (code, value).
pub(crate) fn dhcp_discover(mac: &str, options: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[0] = 1;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    m[28..34].copy_from_slice(&mac_bytes(mac));
    m[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    m.extend_from_slice(&[53, 1, 1]);
    for (code, val) in options {
        m.push(*code);
        m.push(val.len() as u8);
        m.extend_from_slice(val);
    }
    m.push(255);
    m.resize(m.len().max(300), 0);
    udp_frame(mac, [0xff; 6], [0; 4], [255; 4], 68, 67, &m)
}

/// An mDNS response announcing `host`.local at `ip` (A record).
fn mdns_announce(mac: &str, ip: [u8; 4], host: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    m.push(host.len() as u8);
    m.extend_from_slice(host);
    m.extend_from_slice(&[5, b'l', b'o', b'c', b'a', b'l', 0]);
    m.extend_from_slice(&[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4]);
    m.extend_from_slice(&ip);
    udp_frame(
        mac,
        [1, 0, 0x5e, 0, 0, 0xfb],
        ip,
        [224, 0, 0, 251],
        5353,
        5353,
        &m,
    )
}

#[test]
fn hostile_announcements_are_stored_escaped_capped_and_never_interpreted() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("hostile.pcap");
    let long = vec![b'L'; 255];
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "dc:a6:32:00:00:01",
            b"<script>alert(1)</script>".to_vec(),
            "<script>alert(1)</script>".into(),
        ),
        ("dc:a6:32:00:00:02", long.clone(), "L".repeat(255)),
        (
            "dc:a6:32:00:00:03",
            b"bad\xff\xfeutf8".to_vec(),
            "bad\\xff\\xfeutf8".into(),
        ),
        (
            "dc:a6:32:00:00:04",
            b"nul\0inside\"quote'".to_vec(),
            "nul\\x00inside\"quote'".into(),
        ),
        (
            "dc:a6:32:00:00:05",
            b"\x1b[2J\\".to_vec(),
            "\\x1b[2J\\\\".into(),
        ),
    ];
    let mut records = Vec::new();
    for (i, (mac, raw, _)) in cases.iter().enumerate() {
        records.push((1_700_000_000 + i as u32, dhcp_discover(mac, &[(12, raw)])));
    }
    // The same hostile name over mDNS (a DNS label holds at most 63 bytes).
    records.push((
        1_700_000_010,
        mdns_announce(
            "dc:a6:32:00:00:06",
            [192, 168, 1, 66],
            b"<img src=x onerror=alert(1)>",
        ),
    ));
    // A name option running past the end of a truncated frame is ignored, not read past.
    let mut cut = dhcp_discover("dc:a6:32:00:00:07", &[(12, &long)]);
    cut.truncate(cut.len() - 100);
    records.push((1_700_000_011, cut));
    write_pcap(&pcap, &records);
    let (devs, replay) = replay_devices(dir.path(), &pcap);
    for (mac, _, want) in &cases {
        assert_eq!(
            names(by_mac(&devs, mac)),
            std::slice::from_ref(want),
            "{mac}"
        );
        assert_eq!(by_mac(&replay, mac)["hostname"], want.as_str(), "{mac}");
    }
    assert_eq!(
        names(by_mac(&devs, "dc:a6:32:00:00:06")),
        ["<img src=x onerror=alert(1)>"]
    );
    assert_eq!(
        by_mac(&devs, "dc:a6:32:00:00:06")["ipv4"],
        serde_json::json!(["192.168.1.66"])
    );
    assert!(names(by_mac(&devs, "dc:a6:32:00:00:07")).is_empty());
    // The table output carries no control character either.
    let db = dir.path().join("hostile.pcap.db");
    let table = lanmeter(&["devices", "--db", p(&db)]);
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "{table}"
    );
}

#[test]
fn two_private_macs_with_the_same_client_id_are_one_device_with_one_history() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("rotate.pcap");
    let router = [0x3c, 0xa6, 0x2f, 0, 0, 1];
    let cid: &[u8] = b"\xff\x00\x00\x00\x01\x00\x04\x8a\x1c\x22\x7e\x9e\x11\x44\x90\xa1\xb2";
    let (a, b) = ("da:11:22:33:44:55", "66:77:88:99:aa:bb");
    let t0 = 1_700_000_000u32;
    let mut records = vec![(t0, dhcp_discover(a, &[(12, b"annas-phone"), (61, cid)]))];
    for i in 1..30 {
        records.push((
            t0 + i,
            udp_frame(
                a,
                router,
                [192, 168, 1, 20],
                [192, 168, 1, 1],
                5000,
                53,
                &[0; 100],
            ),
        ));
    }
    // A day later the phone rotates its private address; same client id, no host name.
    let t1 = t0 + 86_400;
    records.push((t1, dhcp_discover(b, &[(61, cid)])));
    for i in 1..20 {
        records.push((
            t1 + i,
            udp_frame(
                b,
                router,
                [192, 168, 1, 21],
                [192, 168, 1, 1],
                5000,
                53,
                &[0; 100],
            ),
        ));
    }
    write_pcap(&pcap, &records);
    let (devs, _) = replay_devices(dir.path(), &pcap);
    let phone: Vec<&Value> = devs.iter().filter(|d| d["randomized"] == true).collect();
    assert_eq!(phone.len(), 1, "{devs:#?}");
    let phone = phone[0];
    let macs: Vec<&str> = phone["macs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mac"].as_str().unwrap())
        .collect();
    assert_eq!(macs, [a, b]);
    assert_eq!(phone["name"], "annas-phone");
    // Both days' traffic is on the one device: export sums to every frame the two MACs sent.
    let db = dir.path().join("rotate.pcap.db");
    let rows: Value = serde_json::from_str(&lanmeter(&[
        "export",
        "--db",
        p(&db),
        "--period",
        "month",
        "--format",
        "json",
    ]))
    .unwrap();
    let frames: u64 = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mac"] == a)
        .map(|r| r["frames_sent"].as_u64().unwrap())
        .sum();
    assert_eq!(frames, 30 + 20);
    // Two online intervals a day apart.
    assert_eq!(phone["presence"].as_array().unwrap().len(), 2, "{phone:#}");
}

#[test]
fn presence_intervals_follow_a_device_going_quiet_and_coming_back() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("quiet.pcap");
    let router = [0x3c, 0xa6, 0x2f, 0, 0, 1];
    let dev = "dc:a6:32:00:00:42";
    let t0 = 1_700_000_040u32;
    let mut records = Vec::new();
    // Active every 30 s for 10 minutes, quiet 1 hour, active again 5 minutes, quiet 7 minutes
    // (longer than the 5-minute window), one last frame.
    for i in 0..20 {
        records.push((
            t0 + i * 30,
            udp_frame(
                dev,
                router,
                [192, 168, 1, 9],
                [192, 168, 1, 1],
                1,
                2,
                &[0; 10],
            ),
        ));
    }
    let t1 = t0 + 600 + 3600;
    for i in 0..10 {
        records.push((
            t1 + i * 30,
            udp_frame(
                dev,
                router,
                [192, 168, 1, 9],
                [192, 168, 1, 1],
                1,
                2,
                &[0; 10],
            ),
        ));
    }
    let t2 = t1 + 270 + 420;
    records.push((t2, dhcp_discover(dev, &[(12, b"printer-1")])));
    write_pcap(&pcap, &records);
    let (devs, _) = replay_devices(dir.path(), &pcap);
    let d = by_mac(&devs, dev);
    let iv: Vec<(String, String)> = d["presence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["from"].as_str().unwrap().to_string(),
                i["last_seen"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let t = |s: u32| lanmeter::model::rfc3339(i64::from(s) * 1_000_000_000);
    assert_eq!(
        iv,
        [(t(t0), t(t0 + 570)), (t(t1), t(t1 + 270)), (t(t2), t(t2))]
    );
}

/// Live, in network namespaces: lanmeter runs in A; in B a silent device (B's own interface,
/// known MAC and IP, it only answers ARP) and, on a macvlan beside it, a device that sends a
/// DHCP request with a host name (busybox udhcpc). The sweep must find the first, the passive
/// learner must name the second, and the ARP requests on the wire must stay within the rate.
#[test]
fn live_sweep_finds_a_silent_device_dhcp_names_another_and_the_rate_holds() {
    use crate::netns::{KillOnDrop, NetnsPair, run};
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    const RATE: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let pair = NetnsPair::new();
    let tablet =
        lanmeter::model::MacAddr([0x02, 0x00, 0x5e, pair.b_mac.0[3], pair.b_mac.0[4], 0x03]);
    run(&[
        "ip", "-n", &pair.b, "link", "add", "lmd0", "link", &pair.b_if, "type", "macvlan", "mode",
        "bridge",
    ]);
    run(&[
        "ip",
        "-n",
        &pair.b,
        "link",
        "set",
        "lmd0",
        "address",
        &tablet.to_string(),
    ]);
    run(&["ip", "-n", &pair.b, "link", "set", "lmd0", "up"]);

    // ARP requests from A, as B's link sees them, with capture timestamps.
    let mut tcpdump = KillOnDrop(pair.spawn(
        &pair.b,
        &[
            "tcpdump",
            "-i",
            &pair.b_if,
            "-n",
            "-l",
            "-tt",
            "arp",
            "and",
            "arp[6:2] == 1",
            "and",
            "ether",
            "src",
            &pair.a_mac.to_string(),
        ],
    ));
    let mut err = BufReader::new(tcpdump.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "tcpdump did not start"
        );
    }
    let out = tcpdump.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .collect::<Vec<f64>>()
    });

    let config = dir.path().join("lanmeter.toml");
    let db = dir.path().join("live.db");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nflush_interval_secs = 1\narp_sweep_interval_secs = 600\narp_sweep_rate = {RATE}\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut daemon = KillOnDrop(
        crate::hermetic(&mut Command::new("ip"))
            .args([
                "netns",
                "exec",
                &pair.a,
                crate::LANMETER,
                "--config",
                p(&config),
                "run",
                "-i",
                &pair.a_if,
                "--db",
                p(&db),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The DHCP client: two DISCOVERs a second apart with host name and vendor class; no server
    // answers, so it gives up (-n) without configuring anything (-s /bin/true).
    std::thread::sleep(Duration::from_millis(500));
    let dhcp = pair.exec(
        &pair.b,
        &[
            "udhcpc",
            "-i",
            "lmd0",
            "-n",
            "-q",
            "-t",
            "2",
            "-T",
            "1",
            "-s",
            "/bin/true",
            "-x",
            "hostname:kids-tablet",
            "-V",
            "udhcp-test",
        ],
    );
    assert!(
        !dhcp.status.success(),
        "no DHCP server exists, udhcpc cannot succeed"
    );

    let silent = pair.b_mac.to_string();
    let named = tablet.to_string();
    let mut found = None;
    while started.elapsed() < Duration::from_secs(20) {
        if db.exists()
            && let Ok(list) =
                serde_json::from_str::<Value>(&lanmeter(&["devices", "--json", "--db", p(&db)]))
        {
            let list = list.as_array().unwrap().clone();
            let s = list.iter().find(|d| d["mac"] == silent.as_str()).cloned();
            let n = list.iter().find(|d| d["mac"] == named.as_str()).cloned();
            if let (Some(s), Some(n)) = (s, n)
                && s["ipv4"].as_array().is_some_and(|a| !a.is_empty())
                && n["name"].is_string()
            {
                found = Some((s, n));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the sweep run long enough to measure its rate over several seconds.
    while started.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        daemon.0.wait().unwrap().success(),
        "lanmeter did not stop cleanly"
    );
    drop(tcpdump);
    let times = reader.join().unwrap();

    let (s, n) = found.expect("both devices found within 20 s");
    assert_eq!(
        s["ipv4"],
        serde_json::json!([pair.b_ip.to_string()]),
        "{s:#}"
    );
    assert_eq!(s["vendor"], Value::Null, "a private MAC has no vendor");
    assert_eq!(n["name"], "kids-tablet", "{n:#}");
    assert_eq!(n["vendor_class"], "udhcp-test");
    assert_eq!(n["randomized"], true);

    assert!(
        times.len() >= 2 * RATE,
        "the sweep sent only {} requests in 4 s",
        times.len()
    );
    let most_in_a_second = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|&&t| t < times[i] + 1.0)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most_in_a_second <= RATE,
        "{most_in_a_second} ARP requests within one second (limit {RATE})"
    );
    eprintln!(
        "sweep: {} requests in {:.2} s, at most {most_in_a_second} in any second",
        times.len(),
        times.last().unwrap() - times[0]
    );
}

/// Commits in a running daemon's WAL file, read from SQLite's own format: frames whose header
/// carries the database size (a commit frame) and the WAL header's salts.
fn wal_commits(db: &Path) -> usize {
    let wal = std::fs::read(db.with_extension("db-wal")).unwrap_or_default();
    if wal.len() < 32 {
        return 0;
    }
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let page = be32(&wal[8..]) as usize;
    let mut commits = 0;
    let mut at = 32;
    while at + 24 + page <= wal.len() {
        let h = &wal[at..at + 24];
        if h[8..16] != wal[16..24] {
            break;
        }
        commits += usize::from(be32(&h[4..]) != 0);
        at += 24 + page;
    }
    commits
}

/// One commit per flush interval (issue 26, docs/DURABILITY.md): with the default 5-minute
/// interval, what discovery learns waits for the flush and is committed in the flusher's own
/// transaction (a SIGHUP flushes here: exactly one commit holds the device's traffic and its
/// name), and a clean stop (SIGTERM) writes what was learned after it.
#[test]
fn discovery_waits_for_the_flush_shares_its_commit_and_a_clean_stop_writes_it() {
    use crate::daemon::{Daemon, setup};
    use nix::sys::signal::Signal;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let (pair, config, db) = setup(dir.path(), 60);
    let tablet =
        lanmeter::model::MacAddr([0x02, 0x00, 0x5e, pair.b_mac.0[3], pair.b_mac.0[4], 0x07]);
    crate::netns::run(&[
        "ip", "-n", &pair.b, "link", "add", "lmq0", "link", &pair.b_if, "type", "macvlan", "mode",
        "bridge",
    ]);
    crate::netns::run(&[
        "ip",
        "-n",
        &pair.b,
        "link",
        "set",
        "lmq0",
        "address",
        &tablet.to_string(),
    ]);
    crate::netns::run(&["ip", "-n", &pair.b, "link", "set", "lmq0", "up"]);
    // One DHCP DISCOVER with a host name; no server answers, udhcpc gives up at once.
    let dhcp = |name: &str| {
        pair.exec(
            &pair.b,
            &[
                "udhcpc",
                "-i",
                "lmq0",
                "-n",
                "-q",
                "-t",
                "1",
                "-T",
                "1",
                "-s",
                "/bin/true",
                "-x",
                &format!("hostname:{name}"),
            ],
        );
    };
    let names_now = || -> Vec<String> {
        let list: Value =
            serde_json::from_str(&lanmeter(&["devices", "--json", "--db", p(&db)])).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["mac"] == tablet.to_string().as_str())
            .map(names)
            .unwrap_or_default()
    };

    let mut d = Daemon::start_default_flush(&pair, &config, &db);
    dhcp("first-name");
    // Discovery's capture hands frames over in batches: give it a moment. The writer's own
    // newcomer write comes 10 s after the start at the earliest; this is well before.
    std::thread::sleep(Duration::from_millis(800));
    assert!(names_now().is_empty(), "written before any flush");
    let commits = wal_commits(&db);
    d.signal(Signal::SIGHUP);
    d.wait_for_log("flushed on SIGHUP", Duration::from_secs(10));
    assert_eq!(names_now(), ["first-name"], "{}", d.log_text());
    assert_eq!(
        wal_commits(&db) - commits,
        1,
        "the flush and discovery's batch in one commit"
    );

    dhcp("second-name");
    std::thread::sleep(Duration::from_millis(800));
    d.stop();
    let mut got = names_now();
    got.sort();
    assert_eq!(got, ["first-name", "second-name"], "{}", d.log_text());
}
