//! Router counters and coverage (issue 24) against real routers' software: Debian's miniupnpd
//! (a UPnP IGD) and snmpd (IF-MIB), each running in a "router" namespace that really forwards
//! between a LAN (where the real `lanmeter run` listens and captures) and a WAN veth. What
//! lanmeter stores must equal the kernel's counters of that WAN veth exactly.
//!
//! Topology (names unique per test, namespaces deleted on drop):
//! LAN host `p.a` (lanmeter, 10.x.y.1) ── veth ── router `p.b` (10.x.y.2; forwards) ── veth
//! `wan` ── "internet" namespace (203.0.113.1). The coverage test adds a second client behind
//! another router port, which the capture cannot see. IPv6 is off and every neighbour entry is
//! permanent, so the WAN veth carries only what a test sends.

use crate::daemon::Daemon;
use crate::netns::{KillOnDrop, NetnsPair, run};
use lanmeter::router::RouterStatus;
use lanmeter::router::coverage;
use lanmeter::store::Store;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAN_PEER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// UDP payload per datagram: with MTU 65535 every datagram is one 65042-byte frame.
const PAYLOAD: usize = 65_000;
const FRAME: u64 = PAYLOAD as u64 + 8 + 20 + 14;
const MAC_WAN_PEER: &str = "02:00:5e:cb:00:01";
const MAC_WAN_ROUTER: &str = "02:00:5e:cb:00:02";
const MAC_HIDDEN: &str = "02:00:5e:0a:fa:01";
/// The LAN device heard only by its broadcasts in the coverage test.
const MAC_QUIET: &str = "02:00:5e:0a:fb:01";
const MAC_HIDDEN_ROUTER: &str = "02:00:5e:0a:fa:02";

/// Namespaces this module adds to a [`NetnsPair`], deleted on drop.
struct ExtraNs(Vec<String>);

impl Drop for ExtraNs {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

struct Net {
    p: NetnsPair,
    wan_ns: String,
    hidden_ns: String,
    _extra: ExtraNs,
}

fn ip(args: &[&str]) {
    let mut a = vec!["ip"];
    a.extend_from_slice(args);
    run(&a);
}

fn exec(ns: &str, args: &[&str]) {
    let mut a = vec!["ip", "netns", "exec", ns];
    a.extend_from_slice(args);
    run(&a);
}

/// The LAN pair, the router's forwarding, the WAN veth named `wan` and a hidden client.
fn topology() -> Net {
    let p = NetnsPair::new();
    p.quiet_neighbours(&p.a_if);
    let tag = p.a.trim_end_matches("-a").to_string();
    let wan_ns = format!("{tag}-w");
    let hidden_ns = format!("{tag}-h");
    let extra = ExtraNs(vec![wan_ns.clone(), hidden_ns.clone()]);
    for ns in [&wan_ns, &hidden_ns] {
        ip(&["netns", "add", ns]);
        exec(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    let r = p.b.as_str();
    ip(&[
        "link", "add", "wan", "netns", r, "type", "veth", "peer", "name", "eth0", "netns", &wan_ns,
    ]);
    ip(&[
        "link", "add", "lan2", "netns", r, "type", "veth", "peer", "name", "eth0", "netns",
        &hidden_ns,
    ]);
    for (ns, ifname, mac, addr) in [
        (r, "wan", MAC_WAN_ROUTER, "203.0.113.2/24"),
        (wan_ns.as_str(), "eth0", MAC_WAN_PEER, "203.0.113.1/24"),
        (r, "lan2", MAC_HIDDEN_ROUTER, "10.250.0.1/24"),
        (hidden_ns.as_str(), "eth0", MAC_HIDDEN, "10.250.0.2/24"),
    ] {
        ip(&[
            "-n", ns, "link", "set", ifname, "address", mac, "mtu", "65535",
        ]);
        ip(&["-n", ns, "addr", "add", addr, "dev", ifname]);
        ip(&["-n", ns, "link", "set", ifname, "up"]);
    }
    for (ns, ifname) in [(p.a.as_str(), p.a_if.as_str()), (r, p.b_if.as_str())] {
        ip(&["-n", ns, "link", "set", ifname, "mtu", "65535"]);
    }
    let b_ip = p.b_ip.to_string();
    ip(&["-n", &p.a, "route", "add", "default", "via", &b_ip]);
    ip(&[
        "-n",
        &hidden_ns,
        "route",
        "add",
        "default",
        "via",
        "10.250.0.1",
    ]);
    ip(&["-n", r, "route", "add", "default", "via", "203.0.113.1"]);
    let lan = format!("{}/24", Ipv4Addr::from(u32::from(p.a_ip) & !0xff));
    for net in [lan.as_str(), "10.250.0.0/24"] {
        ip(&["-n", &wan_ns, "route", "add", net, "via", "203.0.113.2"]);
    }
    exec(r, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // No ARP anywhere on the router's other links either.
    for (ns, dev, addr, mac) in [
        (r, "wan", "203.0.113.1", MAC_WAN_PEER),
        (wan_ns.as_str(), "eth0", "203.0.113.2", MAC_WAN_ROUTER),
        (r, "lan2", "10.250.0.2", MAC_HIDDEN),
        (hidden_ns.as_str(), "eth0", "10.250.0.1", MAC_HIDDEN_ROUTER),
    ] {
        ip(&[
            "-n",
            ns,
            "neigh",
            "replace",
            addr,
            "lladdr",
            mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ]);
    }
    Net {
        p,
        wan_ns,
        hidden_ns,
        _extra: extra,
    }
}

/// Sends `n` datagrams of [`PAYLOAD`] bytes from inside `ns` to `to` (port 9: nobody listens),
/// pausing briefly every 64 so no queue on the way overflows.
fn blast(p: &NetnsPair, ns: &str, to: Ipv4Addr, n: u32) {
    p.in_ns(ns, || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let buf = vec![0x5au8; PAYLOAD];
        for i in 0..n {
            s.send_to(&buf, (to, 9)).unwrap();
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    });
}

fn start_miniupnpd(dir: &Path, router_ns: &str, lan_if: &str) -> KillOnDrop {
    let conf = dir.join("miniupnpd.conf");
    std::fs::write(
        &conf,
        format!(
            "ext_ifname=wan\nlistening_ip={lan_if}\nhttp_port=5555\nenable_upnp=yes\nenable_natpmp=no\n\
             secure_mode=yes\nsystem_uptime=yes\nuuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n\
             allow 1024-65535 10.0.0.0/8 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n"
        ),
    )
    .unwrap();
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            router_ns,
            "/usr/sbin/miniupnpd",
            "-d",
            "-f",
        ])
        .arg(&conf)
        .arg("-P")
        .arg(dir.join("miniupnpd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("miniupnpd is installed (Debian package miniupnpd-nftables, Makefile TEST_DEBS)");
    KillOnDrop(child)
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let config = dir.join("lanmeter.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\narp_sweep_interval_secs = 0\nrouter_poll_secs = 1\n{extra}",
            dir.display().to_string()
        ),
    )
    .unwrap();
    config
}

fn status(db: &Path) -> Option<RouterStatus> {
    let store = Store::open(db).ok()?;
    coverage::status(&store).ok().flatten()
}

/// The router bytes stored over every minute (up, down).
fn stored(db: &Path) -> (u64, u64) {
    let store = Store::open(db).unwrap();
    let tz = jiff::tz::TimeZone::UTC;
    let to = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let from = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(86_400);
    let u = store.router_usage(&tz, from, to).unwrap();
    (u.bytes_up, u.bytes_down)
}

/// Waits until `pred` holds of the status, failing with the daemon's log after `limit`.
fn wait_status(
    d: &Daemon,
    db: &Path,
    limit: Duration,
    what: &str,
    pred: impl Fn(&RouterStatus) -> bool,
) -> RouterStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = status(db)
            && pred(&s)
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "router status never became {what} within {limit:?}: {:?}\n{}",
            status(db),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until what lanmeter stored equals the kernel's WAN counters (since `base`), and
/// returns how long after the traffic ended that took.
fn wait_stored_equals(
    d: &Daemon,
    db: &Path,
    net: &Net,
    base: (u64, u64),
) -> (Duration, (u64, u64)) {
    let t0 = Instant::now();
    loop {
        let k = net.p.kernel_counters(&net.p.b, "wan");
        let want = (k.tx_bytes - base.0, k.rx_bytes - base.1);
        let got = stored(db);
        if got == want {
            return (t0.elapsed(), want);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "stored {got:?} != kernel {want:?} after 20 s: {:?}\n{}",
            status(db),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn miniupnpd_counters_are_stored_exactly_across_2_pow_32_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let net = topology();
    let mut upnpd = Some(start_miniupnpd(dir.path(), &net.p.b, &net.p.b_if));
    let config = write_config(dir.path(), "router_source = \"upnp\"\n");
    let db = dir.path().join("x.db");
    let d = Daemon::start(&net.p, &config, &db);
    // Found by SSDP from the LAN namespace, and the first reading taken as the baseline.
    let s = wait_status(&d, &db, Duration::from_secs(20), "ok", |s| {
        s.state == "ok" && s.baseline_bytes_up.is_some()
    });
    assert_eq!(s.source.as_deref(), Some("upnp"));
    assert_eq!(
        s.router.as_deref(),
        Some(format!("http://{}:5555/rootDesc.xml", net.p.b_ip).as_str())
    );
    // The WAN veth is new and silent: the baseline is the kernel's zero.
    let k0 = net.p.kernel_counters(&net.p.b, "wan");
    assert_eq!(
        (s.baseline_bytes_up, s.baseline_bytes_down),
        (Some(k0.tx_bytes), Some(k0.rx_bytes))
    );

    // 70,000 frames of 65,042 bytes: 4.55 GB, past 2^32, forwarded LAN → router → WAN.
    let t = Instant::now();
    blast(&net.p, &net.p.a, WAN_PEER, 70_000);
    let sent_in = t.elapsed();
    let (lag, (up, down)) = wait_stored_equals(&d, &db, &net, (k0.tx_bytes, k0.rx_bytes));
    assert!(up >= 70_000 * FRAME, "{up}");
    assert!(up > 1 << 32, "past 2^32: {up}");
    let s = status(&db).unwrap();
    // Debian's miniupnpd is built without UPNP_STRICT: its ui4 field carries the kernel's
    // 64-bit value past 2^32, which the tracker takes as a 64-bit counter (no wrap, no reset).
    assert!(s.raw_bytes_up.unwrap() > u64::from(u32::MAX), "{s:?}");
    assert_eq!((s.wraps, s.resets, s.stuck_polls), (0, 0, 0), "{s:?}");
    eprintln!(
        "router test: {up} bytes up, {down} down in {sent_in:?}; stored equal to the kernel's {lag:?} after"
    );

    // miniupnpd restarts; traffic while it is down is counted once it is back.
    drop(upnpd.take());
    wait_status(&d, &db, Duration::from_secs(10), "unreachable", |s| {
        s.state == "unreachable"
    });
    blast(&net.p, &net.p.a, WAN_PEER, 500);
    upnpd = Some(start_miniupnpd(dir.path(), &net.p.b, &net.p.b_if));
    let (lag, (up2, _)) = wait_stored_equals(&d, &db, &net, (k0.tx_bytes, k0.rx_bytes));
    assert!(up2 >= up + 500 * FRAME, "{up2} {up}");
    let s = status(&db).unwrap();
    assert_eq!((s.state.as_str(), s.resets), ("ok", 0), "{s:?}");
    eprintln!(
        "router test: after the miniupnpd restart stored equal to the kernel's {lag:?} after"
    );
    drop(upnpd);
}

/// Starts snmpd in the router namespace on the LAN address, port 161, community "public";
/// `extra` lines are added to its configuration.
fn start_snmpd(dir: &Path, router_ns: &str, addr: Ipv4Addr, extra: &str) -> KillOnDrop {
    let conf = dir.join("snmpd.conf");
    std::fs::write(
        &conf,
        format!(
            "agentAddress udp:{addr}:161\nrocommunity public default\n[snmp] persistentDir {}\n{extra}",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            router_ns,
            "/usr/sbin/snmpd",
            "-f",
            "-C",
            "-c",
        ])
        .arg(&conf)
        .args(["-Lf", "/dev/null", "-p"])
        .arg(dir.join("snmpd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmpd is installed (Debian package snmpd, Makefile TEST_DEBS)");
    KillOnDrop(child)
}

#[test]
fn snmpd_if_mib_64_bit_counters_match_ip_s_link() {
    let dir = tempfile::tempdir().unwrap();
    let net = topology();
    let _snmpd = start_snmpd(dir.path(), &net.p.b, net.p.b_ip, "");
    let config = write_config(
        dir.path(),
        &format!(
            "router_source = \"snmp\"\nrouter_snmp_host = \"{}\"\nrouter_snmp_community = \"public\"\nrouter_snmp_interface = \"wan\"\n",
            net.p.b_ip
        ),
    );
    let db = dir.path().join("x.db");
    let d = Daemon::start(&net.p, &config, &db);
    let s = wait_status(&d, &db, Duration::from_secs(20), "ok", |s| {
        s.state == "ok" && s.baseline_bytes_up.is_some()
    });
    assert_eq!(s.source.as_deref(), Some("snmp"));
    let k0 = net.p.kernel_counters(&net.p.b, "wan");
    assert_eq!(s.baseline_bytes_up, Some(k0.tx_bytes));
    // Both directions: the LAN host sends, the "internet" answers.
    blast(&net.p, &net.p.a, WAN_PEER, 3_000);
    blast(&net.p, &net.wan_ns, net.p.a_ip, 2_000);
    let (lag, (up, down)) = wait_stored_equals(&d, &db, &net, (k0.tx_bytes, k0.rx_bytes));
    assert!(up >= 3_000 * FRAME && down >= 2_000 * FRAME, "{up} {down}");
    let s = status(&db).unwrap();
    // The agent's last ifHCOutOctets/ifHCInOctets equal `ip -s link` of the WAN veth.
    let k = net.p.kernel_counters(&net.p.b, "wan");
    assert_eq!(
        (s.raw_bytes_up, s.raw_bytes_down),
        (Some(k.tx_bytes), Some(k.rx_bytes))
    );
    eprintln!(
        "snmp test: {up} up, {down} down, stored equal to the kernel's {lag:?} after the traffic"
    );
}

#[test]
fn a_byte_counter_frozen_while_packets_flow_is_reported_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let net = topology();
    // A broken router: its agent reports ifHCOutOctets of the WAN frozen at 2^32 - 1 (as
    // several routers do with their UPnP counters) while the packet counters keep moving.
    // snmpd's `override` takes no counter64 type; a frozen Counter32 is just as broken.
    let index = String::from_utf8(
        net.p
            .exec(&net.p.b, &["cat", "/sys/class/net/wan/ifindex"])
            .stdout,
    )
    .unwrap();
    let _snmpd = start_snmpd(
        dir.path(),
        &net.p.b,
        net.p.b_ip,
        &format!(
            "override .1.3.6.1.2.1.31.1.1.1.10.{} counter 4294967295\n",
            index.trim()
        ),
    );
    let config = write_config(
        dir.path(),
        &format!(
            "router_source = \"snmp\"\nrouter_snmp_host = \"{}\"\n",
            net.p.b_ip
        ),
    );
    let db = dir.path().join("x.db");
    let d = Daemon::start(&net.p, &config, &db);
    wait_status(&d, &db, Duration::from_secs(20), "ok", |s| {
        s.baseline_bytes_up.is_some()
    });
    blast(&net.p, &net.p.a, WAN_PEER, 500);
    let s = wait_status(&d, &db, Duration::from_secs(15), "stuck", |s| {
        s.state == "stuck"
    });
    assert_eq!(s.raw_bytes_up, Some(4_294_967_295));
    assert!(s.stuck_polls >= 1);
    assert!(
        s.message
            .as_deref()
            .unwrap_or("")
            .contains("stuck at 4294967295"),
        "{s:?}"
    );
    // Nothing is counted from a stuck counter, and coverage says why it has no figure.
    let store = Store::open(&db).unwrap();
    let now = jiff::Timestamp::now();
    let r = coverage::coverage(
        &store,
        &jiff::tz::TimeZone::UTC,
        now - jiff::SignedDuration::from_secs(3600),
        now + jiff::SignedDuration::from_secs(60),
    )
    .unwrap();
    assert_eq!(r.router_bytes_up, 0);
    assert!(r.percent.is_none() && r.reason.unwrap().contains("stuck"));
}

#[test]
fn coverage_of_a_capture_that_sees_half_the_clients_matches_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let net = topology();
    let _snmpd = start_snmpd(dir.path(), &net.p.b, net.p.b_ip, "");
    let config = write_config(
        dir.path(),
        &format!(
            "router_source = \"snmp\"\nrouter_snmp_host = \"{}\"\nlisten = \"127.0.0.1:{WEB_PORT}\"\nanyone_on_lan_may_view = true\nalert_interval_secs = 1\n",
            net.p.b_ip
        ),
    );
    let db = dir.path().join("x.db");
    admin_password(&db);
    // The household's plan counts what the router counts (the capture misses a client).
    Store::open(&db)
        .unwrap()
        .set_plan(
            &lanmeter::plan::Plan {
                source: lanmeter::plan::PlanSource::Router,
                ..lanmeter::plan::Plan::default()
            },
            0,
        )
        .unwrap();
    let d = Daemon::start(&net.p, &config, &db);
    wait_status(&d, &db, Duration::from_secs(20), "ok", |s| {
        s.state == "ok" && s.baseline_bytes_up.is_some()
    });
    let k0 = net.p.kernel_counters(&net.p.b, "wan");
    let h0 = net.p.kernel_counters(&net.p.b, "lan2");
    // A device on the LAN whose conversations pass the capture by: it is heard only by its
    // broadcasts (a macvlan of the router's LAN port pinging a broadcast address nobody
    // answers), never a unicast frame to it.
    ip(&[
        "-n",
        &net.p.b,
        "link",
        "add",
        "link",
        &net.p.b_if,
        "name",
        "quiet0",
        "address",
        MAC_QUIET,
        "type",
        "macvlan",
        "mode",
        "bridge",
    ]);
    ip(&[
        "-n",
        &net.p.b,
        "addr",
        "add",
        "10.251.0.1/24",
        "dev",
        "quiet0",
    ]);
    ip(&["-n", &net.p.b, "link", "set", "quiet0", "up"]);
    // No answer: ping exits non-zero after its 1 s deadline, and that is the point.
    let _ = net.p.exec(
        &net.p.b,
        &[
            "ping",
            "-b",
            "-c",
            "3",
            "-i",
            "0.2",
            "-w",
            "1",
            "-I",
            "quiet0",
            "10.251.0.255",
        ],
    );
    // The captured client and the hidden one (behind the router's other port) both use the
    // internet, in different proportions each way.
    blast(&net.p, &net.p.a, WAN_PEER, 600);
    blast(&net.p, &net.hidden_ns, WAN_PEER, 200);
    blast(&net.p, &net.wan_ns, net.p.a_ip, 300);
    blast(&net.p, &net.wan_ns, "10.250.0.2".parse().unwrap(), 300);
    wait_stored_equals(&d, &db, &net, (k0.tx_bytes, k0.rx_bytes));
    // The kernel's truth: of what the WAN carried, the hidden client's share crossed lan2.
    let k = net.p.kernel_counters(&net.p.b, "wan").since(k0);
    let h = net.p.kernel_counters(&net.p.b, "lan2").since(h0);
    let truth_up = (k.tx_bytes - h.rx_bytes) as f64 * 100.0 / k.tx_bytes as f64;
    let truth_down = (k.rx_bytes - h.tx_bytes) as f64 * 100.0 / k.rx_bytes as f64;
    // lanmeter's own counts reach the database at its next flush (1 s here).
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let store = Store::open(&db).unwrap();
        let now = jiff::Timestamp::now();
        let r = coverage::coverage(
            &store,
            &jiff::tz::TimeZone::UTC,
            now - jiff::SignedDuration::from_secs(3600),
            now + jiff::SignedDuration::from_secs(60),
        )
        .unwrap();
        let close = |p: Option<f64>, t: f64| p.is_some_and(|p| (p - t).abs() <= 1.0);
        if close(r.percent_up, truth_up) && close(r.percent_down, truth_down) {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "coverage {r:?} is not within 1 % of the kernel's {truth_up:.2} % up, {truth_down:.2} % down\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "coverage test: up {:.2} % (kernel {truth_up:.2} %), down {:.2} % (kernel {truth_down:.2} %)",
        r.percent_up.unwrap(),
        r.percent_down.unwrap()
    );
    assert!((truth_up - 75.0).abs() < 2.0 && (truth_down - 50.0).abs() < 2.0);

    // The plan counts the router's WAN bytes, which are exactly the kernel's: the cycle so far,
    // today and today's bar (only this test's traffic crossed the new WAN veth).
    let wan = k.tx_bytes + k.rx_bytes;
    let plan: serde_json::Value = serde_json::from_str(&curl(&net.p, "/api/v1/plan")).unwrap();
    let today = plan["status"]["today"].as_str().unwrap();
    let bar = plan["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["date"] == today)
        .unwrap();
    assert_eq!(plan["plan"]["source"], "router", "{plan}");
    assert_eq!(
        (
            plan["status"]["used_bytes"].as_u64(),
            plan["status"]["today_bytes"].as_u64(),
            bar["used_bytes"].as_u64()
        ),
        (Some(wan), Some(wan), Some(wan)),
        "{plan}"
    );
    assert!(r.lanmeter_bytes_up + r.lanmeter_bytes_down < wan * 7 / 10);
    eprintln!(
        "plan test: /api/v1/plan used {wan} bytes = the kernel's WAN tx+rx; the devices' sum was {}",
        r.lanmeter_bytes_up + r.lanmeter_bytes_down
    );

    // The same figures through the API, /metrics and the overview of the running daemon.
    let api = curl(&net.p, "/api/v1/coverage");
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    let up = v["percent_up"].as_f64().unwrap();
    assert!((up - truth_up).abs() <= 1.0, "{api}");
    assert_eq!(v["router"]["source"], "snmp", "{api}");
    // Only the broadcasting device is not visible from where the Pi is (the client the capture
    // sees received its answers; the hidden one behind lan2 was never heard at all).
    curl_until(&net.p, "/api/v1/coverage", |b| {
        serde_json::from_str::<serde_json::Value>(b)
            .ok()
            .and_then(|v| v["not_visible"].as_array().cloned())
            .is_some_and(|l| l.len() == 1 && l[0]["mac"] == MAC_QUIET)
    });
    curl_until(&net.p, "/system", |p| {
        p.contains("Not visible from where the Pi is (today)") && p.contains(MAC_QUIET)
    });
    // "Today" on these pages ends two flush intervals back (2 s here) at minute granularity:
    // right after a minute boundary the traffic's minute is not in it yet.
    // Every series ends with the site label (the host name by default).
    curl_until(&net.p, "/metrics", |m| {
        m.lines().any(|l| {
            l.starts_with("lanmeter_coverage_ratio{direction=\"up\",site=")
                && l.rsplit(' ').next().is_some_and(|v| v.starts_with("0.7"))
        }) && m
            .lines()
            .any(|l| l.starts_with("lanmeter_router_up{source=\"snmp\",site=") && l.ends_with(" 1"))
    });
    // The placement verdict (System page, wizard, API) carries the same share, both ways.
    let both = v["percent"].as_f64().unwrap() / 100.0;
    curl_until(&net.p, "/api/v1/visibility", |b| {
        serde_json::from_str::<serde_json::Value>(b)
            .ok()
            .and_then(|v| v["coverage"].as_f64())
            .is_some_and(|c| (c - both).abs() <= 0.01)
    });
    // The last hour's coverage (62 % both ways) is under the default 80 %: the health alert.
    let deadline = Instant::now() + Duration::from_secs(15);
    let alert = loop {
        let list: serde_json::Value =
            serde_json::from_str(&curl(&net.p, "/api/v1/alerts?state=open")).unwrap();
        if let Some(a) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "health" && a["subject"] == "coverage")
        {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no coverage alert: {list}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        alert["title"]
            .as_str()
            .unwrap()
            .contains("% of the internet traffic your router counted in the last hour"),
        "{alert}"
    );
    curl_until(&net.p, "/system", |p| {
        p.contains("Router counters and coverage") && p.contains("id=\"coverage-days\"")
    });
    curl_until(&net.p, "/", |p| {
        p.contains("lanmeter saw ")
            && p.contains("% of the internet traffic your router counted today.")
    });
}

/// GETs `path` until `pred` holds of the body, for at most 10 s.
fn curl_until(p: &NetnsPair, path: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = curl(p, path);
        if pred(&body) {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never showed it:\n{body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Sets the admin password with `lanmeter passwd`, so the dashboard is past its first-run setup.
fn admin_password(db: &Path) {
    use std::io::Write;
    let mut passwd = crate::hermetic(&mut Command::new(crate::LANMETER))
        .args(["passwd", "--db"])
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    passwd
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    assert!(passwd.wait().unwrap().success());
}

/// The daemon's web port in the coverage test (inside its own namespace).
const WEB_PORT: u16 = 18_424;

/// GET `path` from the daemon in the LAN namespace (anyone on the LAN may view).
fn curl(p: &NetnsPair, path: &str) -> String {
    let out = p.exec(
        &p.a,
        &[
            "curl",
            "-sf",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{WEB_PORT}{path}"),
        ],
    );
    assert!(
        out.status.success(),
        "curl {path}: {out:?} {}",
        String::from_utf8_lossy(
            &p.exec(
                &p.a,
                &["curl", "-s", &format!("http://127.0.0.1:{WEB_PORT}{path}")]
            )
            .stdout
        )
    );
    String::from_utf8(out.stdout).unwrap()
}
