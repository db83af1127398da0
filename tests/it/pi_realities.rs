//! What a Raspberry Pi really does to lanmeter (issue 25), with the real binary in test network
//! namespaces: SIGHUP (flush, reread the configuration, go on), a capture interface that appears
//! after the start, a time zone set after a short first run, and a capture stamped 2000-01-01
//! before the clock was set. The memory budget and the 256 MiB cgroup are measured by
//! reliability/pi_memory.py (a minute of load: too slow for this suite).
//!
//! `LANMETER_TEST_LATE_SECS` sets how long after the start the late interface appears (5 s
//! here; the Pi realities campaign uses 60 s, past systemd's start limit).

use crate::daemon::{
    Daemon, PATIENCE, export_totals, field, kernel_view, ping, setup, stored_view,
};
use crate::netns::NetnsPair;
use crate::{LANMETER, hermetic};
use nix::sys::signal::Signal;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Completes first-run setup (an admin password), so the anonymous LAN viewer may read the API.
fn admin_password(db: &Path) {
    let mut passwd = hermetic(&mut Command::new(LANMETER))
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

/// Appends `lines` to the config file `setup` wrote.
fn append(config: &Path, lines: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(lines);
    std::fs::write(config, text).unwrap();
}

/// GET `path` from the daemon's web server inside A's namespace, as JSON.
fn api(p: &NetnsPair, port: u16, path: &str) -> serde_json::Value {
    let out = p.exec(
        &p.a,
        &[
            "curl",
            "-sf",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{port}{path}"),
        ],
    );
    assert!(out.status.success(), "curl {path}: {out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{path}: bad JSON ({e}): {out:?}"))
}

/// Pings A from B `n` times and waits until the capture's statistics line has seen every frame
/// on the link since `before`.
fn traffic_seen(
    p: &NetnsPair,
    d: &mut Daemon,
    before: crate::netns::KernelCounters,
    n: &str,
) -> crate::netns::KernelCounters {
    traffic_seen_on(p, &p.a_if, d, before, n)
}

/// [`traffic_seen`] with A's interface named `a_if`.
fn traffic_seen_on(
    p: &NetnsPair,
    a_if: &str,
    d: &mut Daemon,
    before: crate::netns::KernelCounters,
    n: &str,
) -> crate::netns::KernelCounters {
    let out = ping(
        p,
        &["-c", n, "-s", "1000", "-i", "0.01"],
        &p.a_ip.to_string(),
    );
    assert!(out.status.success(), "ping failed: {out:?}");
    let k = p.kernel_counters(&p.a, a_if).since(before);
    let all = k.rx_packets + k.tx_packets;
    d.wait_for_line(&format!("frames_seen={all}"), PATIENCE, |l| {
        l.contains("capture statistics") && field(l, "frames_seen") == all
    });
    k
}

#[test]
fn sighup_flushes_rereads_the_config_and_keeps_running() {
    const PORT: u16 = 18_391;
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 1);
    append(
        &config,
        &format!("listen = \"127.0.0.1:{PORT}\"\nanyone_on_lan_may_view = true\n"),
    );
    admin_password(&db);
    let mut d = Daemon::start(&p, &config, &db);
    let before = p.kernel_counters(&p.a, &p.a_if);
    let k = traffic_seen(&p, &mut d, before, "20");

    // A valid change: retention is applied at once, snaplen waits for a restart.
    append(&config, "keep_minutes_days = 30\nsnaplen = 256\n");
    d.signal(Signal::SIGHUP);
    d.wait_for_log("flushed on SIGHUP", PATIENCE);
    let reloaded = d.wait_for_log("configuration reloaded", PATIENCE);
    assert!(reloaded.contains("snaplen"), "{reloaded}");
    assert!(!reloaded.contains("keep_minutes_days"), "{reloaded}");
    assert!(
        d.pid_alive(),
        "lanmeter exited on SIGHUP:\n{}",
        d.log_text()
    );
    // The flush on SIGHUP stored everything seen so far, while the daemon runs on.
    let t = export_totals(&config, &db);
    assert_eq!(stored_view(&p, &t), kernel_view(k), "[A sent, B sent]");
    let system = api(&p, PORT, "/api/v1/system");
    assert_eq!(system["config"]["needs_restart"][0], "snaplen", "{system}");
    assert!(system["config"]["reload_error"].is_null(), "{system}");

    // An invalid file: the running configuration stays, the error is logged and shown.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}keep_hours_days = \"forever\"\n")).unwrap();
    d.signal(Signal::SIGHUP);
    let refused = d.wait_for_log("the configuration was not reloaded", PATIENCE);
    assert!(refused.contains("keep_hours_days"), "{refused}");
    let system = api(&p, PORT, "/api/v1/system");
    let shown = system["config"]["reload_error"]
        .as_str()
        .unwrap_or_default();
    assert!(shown.contains("keep_hours_days"), "{system}");
    let page = p.exec(
        &p.a,
        &["curl", "-sf", &format!("http://127.0.0.1:{PORT}/system")],
    );
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(
        page.contains("previous configuration stays in force"),
        "{page}"
    );
    assert!(
        d.pid_alive(),
        "lanmeter exited on SIGHUP:\n{}",
        d.log_text()
    );

    // Counting goes on after both reloads, and a clean stop stores it all (read back with the
    // file fixed again: `export` refuses an invalid one too).
    std::fs::write(&config, good).unwrap();
    let k = traffic_seen(&p, &mut d, before, "10");
    d.stop();
    let t = export_totals(&config, &db);
    assert_eq!(stored_view(&p, &t), kernel_view(k), "[A sent, B sent]");
}

#[test]
fn an_interface_that_appears_after_the_start_is_waited_for_and_captured() {
    let late = std::env::var("LANMETER_TEST_LATE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5u64);
    let dir = tempfile::tempdir().unwrap();
    const PORT: u16 = 18_392;
    let (p, config, db) = setup(dir.path(), 1);
    append(
        &config,
        &format!("listen = \"127.0.0.1:{PORT}\"\nanyone_on_lan_may_view = true\n"),
    );
    admin_password(&db);
    // Deleting one end deletes the pair: the interface does not exist when lanmeter starts.
    crate::netns::run(&["ip", "-n", &p.a, "link", "del", &p.a_if]);
    let mut d = Daemon::start(&p, &config, &db);
    d.wait_for_log("the capture interface does not exist yet", PATIENCE);
    // The health says what it waits for, and /metrics does not claim capture is up.
    let capture = api(&p, PORT, "/api/v1/capture");
    assert_eq!(
        capture["state"],
        format!("waiting for interface {}", p.a_if)
    );
    assert_eq!(capture["waiting"], true, "{capture}");
    let metrics = p.exec(
        &p.a,
        &["curl", "-sf", &format!("http://127.0.0.1:{PORT}/metrics")],
    );
    assert!(
        String::from_utf8_lossy(&metrics.stdout)
            .lines()
            .any(|l| l.starts_with("lanmeter_capture_up{site=\"") && l.ends_with("\"} 0")),
        "{metrics:?}"
    );
    std::thread::sleep(Duration::from_secs(late));
    assert!(
        d.pid_alive(),
        "lanmeter exited while waiting:\n{}",
        d.log_text()
    );
    assert!(
        !d.log_text().contains("capture resumed"),
        "{}",
        d.log_text()
    );
    p.create_link();
    p.quiet_neighbours(&p.a_if);
    d.wait_for_log("capture resumed", PATIENCE);
    let capture = api(&p, PORT, "/api/v1/capture");
    assert_eq!(capture["state"], format!("capturing on {}", p.a_if));
    let before = p.kernel_counters(&p.a, &p.a_if);
    let k = traffic_seen(&p, &mut d, before, "20");
    d.stop();
    let t = export_totals(&config, &db);
    assert_eq!(stored_view(&p, &t), kernel_view(k), "[A sent, B sent]");
    assert!(k.rx_packets >= 20, "{k:?}");
}

/// A short first run in UTC, then `timezone` set: the second start rebuilds the rollups in the
/// new zone (the first run's retention pass deleted nothing, so every minute is still there).
#[test]
fn a_time_zone_set_after_a_short_first_run_rebuilds_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 60);
    append(&config, "timezone = \"UTC\"\n");
    let mut d = Daemon::start(&p, &config, &db);
    let out = ping(&p, &["-c", "3", "-i", "0.2"], &p.a_ip.to_string());
    assert!(out.status.success(), "{out:?}");
    // Maintenance (rollups, then retention) runs one flush interval after the start.
    std::thread::sleep(Duration::from_secs(3));
    d.stop();
    let zone = |db: &Path| {
        let s = lanmeter::store::Store::open_existing(db)
            .unwrap()
            .history_state()
            .unwrap()
            .expect("a history state after maintenance");
        format!("{}|{}", s.zone, s.minute_kept)
    };
    let first = zone(&db);
    assert!(first.starts_with("UTC|"), "first run state: {first:?}");

    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("timezone = \"UTC\"", "timezone = \"America/New_York\"");
    std::fs::write(&config, text).unwrap();
    let mut d = Daemon::start(&p, &config, &db);
    d.wait_for_log("rebuilding history rollups", PATIENCE);
    std::thread::sleep(Duration::from_secs(2));
    d.stop();
    assert!(
        !d.log_text().contains("cannot be rebuilt"),
        "{}",
        d.log_text()
    );
    assert!(zone(&db).starts_with("America/New_York|"), "{}", zone(&db));
}

/// A capture whose first frames are stamped 2000-01-01 (a Pi before NTP set its clock), then
/// frames at today's time: by the documented rule (src/clock.rs, README "Durability") the early
/// traffic is counted in the first trusted minute, and nothing is filed in 2000.
#[test]
fn frames_stamped_before_the_clock_was_set_land_in_the_first_trusted_minute() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("boot.pcap");
    let db = dir.path().join("boot.db");
    let y2000 = 946_684_800u32;
    let now = jiff::Timestamp::now().as_second() as u32;
    let today = now - now % 60 - 3600;
    let a = [0xdc, 0xa6, 0x32, 1, 2, 3];
    let b = [0x02, 0, 0x5e, 1, 2, 4];
    let frame = |src: [u8; 6], dst: [u8; 6], len: usize| {
        let mut f = Vec::with_capacity(len);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5]); // local experimental ethertype
        f.resize(len, 0);
        f
    };
    let mut records = Vec::new();
    for i in 0..10 {
        records.push((y2000 + i * 30, frame(a, b, 1000)));
    }
    records.push((today + 5, frame(a, b, 100)));
    records.push((today + 70, frame(b, a, 200)));
    crate::devices::write_pcap(&pcap, &records);

    let out = hermetic(&mut Command::new(LANMETER))
        .args(["replay", "--json", "--db"])
        .arg(&db)
        .arg(&pcap)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config = dir.path().join("none.toml");
    std::fs::write(&config, "").unwrap();
    let rows: Vec<serde_json::Value> = {
        let out = hermetic(Command::new(LANMETER).arg("--config").arg(&config))
            .args(["export", "--period", "minute", "--format", "json", "--db"])
            .arg(&db)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let minute = |r: &serde_json::Value| {
        r["minute"]
            .as_str()
            .or(r["start"].as_str())
            .map(|s| s.parse::<jiff::Timestamp>().unwrap().as_second())
            .unwrap_or_else(|| panic!("no minute in {r}"))
    };
    let a_mac = "dc:a6:32:01:02:03";
    let a_rows: Vec<_> = rows.iter().filter(|r| r["mac"] == a_mac).collect();
    assert!(
        rows.iter().all(|r| minute(r) >= i64::from(today)),
        "a row was filed before the clock was set: {rows:?}"
    );
    // All of A's sending: the ten early frames and the first real one, in the first real minute.
    assert_eq!(a_rows.len(), 2, "{a_rows:?}");
    let first = a_rows
        .iter()
        .find(|r| minute(r) == i64::from(today))
        .unwrap();
    assert_eq!(first["bytes_sent"], 10 * 1000 + 100, "{first}");
    assert_eq!(first["frames_sent"], 11, "{first}");
}

/// The configured adapter is unplugged and comes back under another name with the same MAC (a
/// USB adapter renamed by udev): capture follows it by its MAC and counts on the new name.
#[test]
fn a_replaced_interface_is_followed_by_its_mac() {
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 1);
    let mut d = Daemon::start(&p, &config, &db);
    crate::netns::run(&["ip", "-n", &p.a, "link", "del", &p.a_if]);
    d.wait_for_log("capture interface disappeared", PATIENCE);
    let renamed = "lmren0";
    crate::netns::run(&[
        "ip", "link", "add", renamed, "netns", &p.a, "type", "veth", "peer", "name", &p.b_if,
        "netns", &p.b,
    ]);
    for (ns, ifname, mac, ip) in [
        (&p.a, renamed, p.a_mac, p.a_ip),
        (&p.b, p.b_if.as_str(), p.b_mac, p.b_ip),
    ] {
        let ip = format!("{ip}/24");
        let mac = mac.to_string();
        crate::netns::run(&["ip", "-n", ns, "link", "set", ifname, "address", &mac]);
        crate::netns::run(&["ip", "-n", ns, "addr", "add", &ip, "dev", ifname]);
        crate::netns::run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
    }
    p.quiet_neighbours(renamed);
    let line = d.wait_for_log("capture interface replaced", PATIENCE);
    assert!(line.contains(renamed), "{line}");
    d.wait_for_log("capture resumed", PATIENCE);
    let before = p.kernel_counters(&p.a, renamed);
    let k = traffic_seen_on(&p, renamed, &mut d, before, "20");
    d.stop();
    let t = export_totals(&config, &db);
    assert_eq!(stored_view(&p, &t), kernel_view(k), "[A sent, B sent]");
}

/// No `interface` configured and no default route yet (the network comes up after lanmeter):
/// capture waits for the route, then captures on the interface that holds it.
#[test]
fn without_an_interface_capture_waits_for_the_default_route() {
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 1);
    let mut d = Daemon::start_on(&p, &config, &db, None);
    d.wait_for_log("no default route yet", PATIENCE);
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.pid_alive(), "lanmeter exited:\n{}", d.log_text());
    crate::netns::run(&[
        "ip",
        "-n",
        &p.a,
        "route",
        "add",
        "default",
        "via",
        &p.b_ip.to_string(),
        "dev",
        &p.a_if,
    ]);
    d.wait_for_log("capture resumed", PATIENCE);
    let before = p.kernel_counters(&p.a, &p.a_if);
    let k = traffic_seen(&p, &mut d, before, "20");
    d.stop();
    let t = export_totals(&config, &db);
    assert_eq!(stored_view(&p, &t), kernel_view(k), "[A sent, B sent]");
}
