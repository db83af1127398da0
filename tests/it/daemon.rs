//! `lanmeter run` as a process: started in a test namespace, fed known traffic, stopped with
//! SIGTERM or killed with SIGKILL; what it stored (read back with `lanmeter export`) must equal
//! the kernel's own interface counters exactly.
//!
//! The link is made silent apart from what a test sends: IPv6 is off (NetnsPair) and both ends
//! have permanent neighbour entries, so no ARP probe can slip in between a counter reading and
//! the capture starting or stopping.

use crate::netns::{KernelCounters, KillOnDrop, NetnsPair};
use crate::{LANMETER, hermetic};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the daemon may take to start capturing or to exit (a debug build on a busy machine).
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// One MAC's totals over every stored minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) frames_sent: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) frames_received: u64,
    pub(crate) bytes_received: u64,
}

/// A `lanmeter run` process inside a namespace, with its stderr collected line by line.
pub(crate) struct Daemon {
    child: KillOnDrop,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts `lanmeter run` on A's interface and waits until it logs that it is capturing.
    pub(crate) fn start(p: &NetnsPair, config: &Path, db: &Path) -> Daemon {
        Daemon::start_on(p, config, db, Some(&p.a_if))
    }

    /// [`Daemon::start`] with `--interface iface`, or none (the default route's interface).
    pub(crate) fn start_on(p: &NetnsPair, config: &Path, db: &Path, iface: Option<&str>) -> Daemon {
        Daemon::start_flushing(p, config, db, iface, Some("1"))
    }

    /// [`Daemon::start`] keeping the product's own flush interval (5 minutes), as installed.
    pub(crate) fn start_default_flush(p: &NetnsPair, config: &Path, db: &Path) -> Daemon {
        Daemon::start_flushing(p, config, db, Some(&p.a_if), None)
    }

    fn start_flushing(
        p: &NetnsPair,
        config: &Path,
        db: &Path,
        iface: Option<&str>,
        flush_secs: Option<&str>,
    ) -> Daemon {
        let mut cmd = Command::new("ip");
        // `ip netns exec` execs the command, so the child's pid is lanmeter's own: signals sent
        // to it reach lanmeter, not a wrapper.
        cmd.args(["netns", "exec", &p.a, LANMETER, "--config"])
            .arg(config)
            .arg("run");
        if let Some(i) = iface {
            cmd.args(["--interface", i]);
        }
        cmd.arg("--db").arg(db);
        let cmd = hermetic(&mut cmd);
        if std::fs::read_to_string(config).is_ok_and(|c| c.contains("router_source")) {
            // The test asks for the router's counters: hermetic() turned them off.
            cmd.env_remove("LANMETER_ROUTER_SOURCE");
        }
        if let Some(secs) = flush_secs {
            // An override through the environment, as a systemd drop-in would set it.
            cmd.env("LANMETER_FLUSH_INTERVAL_SECS", secs);
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start lanmeter run: {e}"));
        let stderr = child.stderr.take().expect("stderr was piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[lanmeter] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon {
            child: KillOnDrop(child),
            log,
            reader: Some(reader),
        };
        d.wait_for_log("lanmeter::daemon: capturing ", PATIENCE);
        d
    }

    /// Whether the process still runs.
    pub(crate) fn pid_alive(&mut self) -> bool {
        self.child.0.try_wait().unwrap().is_none()
    }

    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.0.id() as i32)
    }

    /// Waits until a log line contains `needle`; fails the test if the process exits first or
    /// `limit` passes.
    pub(crate) fn wait_for_log(&mut self, needle: &str, limit: Duration) -> String {
        self.wait_for_line(needle, limit, |l| l.contains(needle))
    }

    /// Waits until a log line satisfies `pred` (described by `what` in a failure).
    pub(crate) fn wait_for_line(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            if let Some(status) = self.child.0.try_wait().unwrap() {
                panic!(
                    "lanmeter exited ({status}) before logging {what:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "lanmeter did not log {what:?} within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap_or_else(|e| panic!("cannot send {sig} to lanmeter: {e}"));
    }

    /// Waits for the process to exit and for its stderr to be fully read.
    pub(crate) fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "lanmeter did not exit within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        status
    }

    /// SIGTERM, then the exit status must be 0; returns the "stopped" log line.
    pub(crate) fn stop(&mut self) -> String {
        self.signal(Signal::SIGTERM);
        let status = self.wait(PATIENCE);
        assert!(
            status.success(),
            "lanmeter exited with {status} after SIGTERM:\n{}",
            self.log_text()
        );
        self.wait_for_log("lanmeter::daemon: stopped ", Duration::ZERO)
    }

    pub(crate) fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// The value of `key=N` in a log line.
pub(crate) fn field(line: &str, key: &str) -> u64 {
    let pat = format!(" {key}=");
    let start = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        + pat.len();
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|e| panic!("{key}= in {line:?}: {e}"))
}

/// Sums `lanmeter export --period minute --format json` per MAC.
pub(crate) fn export_totals(config: &Path, db: &Path) -> HashMap<String, Totals> {
    let out = hermetic(Command::new(LANMETER).arg("--config").arg(config))
        .args(["export", "--period", "minute", "--format", "json", "--db"])
        .arg(db)
        .env("RUST_LOG", "off")
        .output()
        .unwrap_or_else(|e| panic!("cannot run lanmeter export: {e}"));
    assert!(
        out.status.success(),
        "lanmeter export failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "export printed bad JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let mut sums: HashMap<String, Totals> = HashMap::new();
    for row in &rows {
        let get = |k: &str| {
            row[k]
                .as_u64()
                .unwrap_or_else(|| panic!("no integer {k} in {row}"))
        };
        let mac = row["mac"]
            .as_str()
            .unwrap_or_else(|| panic!("no mac in {row}"));
        let t = sums.entry(mac.to_string()).or_default();
        t.frames_sent += get("frames_sent");
        t.bytes_sent += get("bytes_sent");
        t.frames_received += get("frames_received");
        t.bytes_received += get("bytes_received");
    }
    sums
}

/// What the kernel says A sent (tx) and B sent (A's rx), in the shape of the stored totals.
pub(crate) fn kernel_view(k: KernelCounters) -> [(u64, u64); 2] {
    [(k.tx_packets, k.tx_bytes), (k.rx_packets, k.rx_bytes)]
}

/// The stored totals of A and B as (frames_sent, bytes_sent), matching [`kernel_view`].
pub(crate) fn stored_view(p: &NetnsPair, t: &HashMap<String, Totals>) -> [(u64, u64); 2] {
    let sent = |mac: &str| {
        let t = t.get(mac).copied().unwrap_or_default();
        (t.frames_sent, t.bytes_sent)
    };
    [sent(&p.a_mac.to_string()), sent(&p.b_mac.to_string())]
}

/// A quiet pair with permanent neighbour entries (no ARP ever, no sweep), a config file that keeps
/// everything under `dir` and logs capture statistics every `stats_secs`, and the database path.
pub(crate) fn setup(dir: &Path, stats_secs: u64) -> (NetnsPair, PathBuf, PathBuf) {
    let p = NetnsPair::new();
    p.quiet_neighbours(&p.a_if);
    let config = dir.join("lanmeter.toml");
    std::fs::write(
        &config,
        format!(
            "# written by the daemon integration test\nstate_dir = {:?}\nstats_log_interval_secs = {stats_secs}\n\
             # The link must carry only the test's traffic: no ARP sweep, no internet probes, no router search.\narp_sweep_interval_secs = 0\ninternet_probe_interval_secs = 0\nrouter_source = \"off\"\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    (p, config, dir.join("x.db"))
}

pub(crate) fn ping(p: &NetnsPair, extra: &[&str], target: &str) -> std::process::Output {
    let mut args = vec!["ping", "-q", "-W", "2"];
    args.extend_from_slice(extra);
    args.push(target);
    p.exec(&p.b, &args)
}

#[test]
fn clean_stop_stores_exactly_what_the_kernel_counted() {
    const PINGS: &str = "20";
    const BROADCASTS: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 1);
    let mut d = Daemon::start(&p, &config, &db);
    // Taken after the capture is open, so nothing in the delta predates it.
    let before = p.kernel_counters(&p.a, &p.a_if);

    let a_ip = p.a_ip.to_string();
    for size in ["56", "1400", "8000"] {
        let out = ping(&p, &["-c", PINGS, "-s", size, "-i", "0.01"], &a_ip);
        assert!(out.status.success(), "ping -s {size} failed: {out:?}");
    }
    // Broadcast echo requests: A's kernel counts them as received, lanmeter as sent by B only.
    // A ignores broadcast echoes, so ping gets no reply and exits non-zero; the counts below
    // prove the frames were sent.
    let bcast = std::net::Ipv4Addr::from(u32::from(p.a_ip) | 0xff).to_string();
    ping(
        &p,
        &["-b", "-c", &BROADCASTS.to_string(), "-i", "0.05", "-W", "1"],
        &bcast,
    );
    // A TCP bulk transfer: veth offloads make super-frames of up to 64 KB.
    let _server = KillOnDrop(p.spawn(&p.a, &["iperf3", "-s", "-1", "-B", &a_ip]));
    let mut sent = false;
    for _ in 0..50 {
        let out = p.exec(&p.b, &["iperf3", "-c", &a_ip, "-n", "32M", "-b", "400M"]);
        if out.status.success() {
            sent = true;
            break;
        }
        // The server may not be listening yet.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sent, "iperf3 client never completed");

    // The capture thread stops reading when asked to, so first let it catch up with what the
    // kernel queued: its statistics line (every second) must show every frame.
    let k = p.kernel_counters(&p.a, &p.a_if).since(before);
    let all = k.rx_packets + k.tx_packets;
    d.wait_for_line(
        &format!("capture statistics with frames_seen={all}"),
        PATIENCE,
        |l| l.contains("capture statistics") && field(l, "frames_seen") == all,
    );
    let stopped = d.stop();
    assert_eq!(
        p.kernel_counters(&p.a, &p.a_if).since(before),
        k,
        "traffic after the transfer: the link was not quiet"
    );
    eprintln!("kernel delta {k:?}\n{stopped}");

    let t = export_totals(&config, &db);
    eprintln!("stored {t:?}");
    let a = t.get(&p.a_mac.to_string()).copied().unwrap_or_default();
    let b = t.get(&p.b_mac.to_string()).copied().unwrap_or_default();
    assert_eq!(t.len(), 2, "only A and B talk on this link: {t:?}");
    assert_eq!(stored_view(&p, &t), kernel_view(k), "[A sent, B sent]");
    // Every frame A sent was unicast to B; B's broadcasts were received by no one.
    assert_eq!(
        (b.frames_received, b.bytes_received),
        (a.frames_sent, a.bytes_sent)
    );
    assert_eq!(
        (a.frames_received, a.bytes_received),
        (
            b.frames_sent - BROADCASTS,
            // 14 Ethernet + 20 IPv4 + 8 ICMP + 56 data bytes each.
            b.bytes_sent - BROADCASTS * 98
        ),
        "B's broadcasts must count as sent only"
    );
    assert!(k.rx_bytes > 32 << 20, "the bulk transfer is missing: {k:?}");

    assert_eq!(field(&stopped, "pcap_dropped"), 0, "{stopped}");
    assert_eq!(field(&stopped, "pcap_if_dropped"), 0, "{stopped}");
    assert_eq!(
        field(&stopped, "frames"),
        k.rx_packets + k.tx_packets,
        "{stopped}"
    );
}

#[test]
fn sigkill_loses_at_most_the_unflushed_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 3600);
    let mut d = Daemon::start(&p, &config, &db);
    let before = p.kernel_counters(&p.a, &p.a_if);

    // Continuous traffic until two flushes with traffic in them have been seen growing.
    let a_ip = p.a_ip.to_string();
    let mut pinger = KillOnDrop(p.spawn(&p.b, &["ping", "-q", "-i", "0.01", "-s", "1400", &a_ip]));
    let mut seen: Vec<[(u64, u64); 2]> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the database did not grow twice within 30 s: {seen:?}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
        let stored = stored_view(&p, &export_totals(&config, &db));
        // Read after the export: whatever was flushed had already passed the interface.
        let k = kernel_view(p.kernel_counters(&p.a, &p.a_if).since(before));
        for (s, k) in stored.iter().zip(&k) {
            assert!(
                s.0 <= k.0 && s.1 <= k.1,
                "stored {stored:?} exceeds kernel {k:?}"
            );
        }
        if stored[1].0 > 0 && seen.last() != Some(&stored) {
            seen.push(stored);
        }
    }
    assert!(seen[0][1].0 < seen[1][1].0, "totals did not grow: {seen:?}");
    pinger.0.kill().unwrap();
    pinger.0.wait().unwrap();

    // No traffic from here on: once a flush has caught up with the kernel, the stored totals are
    // final, and SIGKILL must not lose or damage any of them.
    let deadline = Instant::now() + PATIENCE;
    let (k, stored) = loop {
        let k = kernel_view(p.kernel_counters(&p.a, &p.a_if).since(before));
        let stored = stored_view(&p, &export_totals(&config, &db));
        if stored == k {
            break (k, stored);
        }
        assert!(
            Instant::now() < deadline,
            "the stored totals {stored:?} never caught up with the kernel's {k:?}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    d.signal(Signal::SIGKILL);
    let status = d.wait(PATIENCE);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    assert_eq!(
        kernel_view(p.kernel_counters(&p.a, &p.a_if).since(before)),
        k,
        "traffic after the pinger stopped: the link was not quiet"
    );
    // Killed without closing the database: its write-ahead log is still there to be recovered.
    let wal = db.with_file_name("x.db-wal");
    assert!(wal.exists(), "no {} after SIGKILL", wal.display());
    // The database opens after the kill and holds every completed flush.
    assert_eq!(stored_view(&p, &export_totals(&config, &db)), stored);

    // A new daemon on the same database starts and stops cleanly and adds nothing on its own.
    let mut again = Daemon::start(&p, &config, &db);
    let stopped = again.stop();
    assert_eq!(field(&stopped, "frames"), 0, "{stopped}");
    assert_eq!(stored_view(&p, &export_totals(&config, &db)), stored);
}
