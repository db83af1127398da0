//! The whole daemon in this process, without root or a network namespace (issue 20):
//! `lanmeter::daemon::run` reads a capture file of the synthetic household through the
//! packet-source seam instead of a live interface, serves its web side on a port-0 listener the
//! test bound, and stops when the test sets its stop flag. What it stored must equal the
//! generator's own totals byte for byte, and the web must answer on the listener it was handed
//! with figures that reflect what it was fed.

use crate::daemon::{Totals, export_totals};
use crate::{LANMETER, hermetic, init_tracing};
use lanmeter::capture::source::FileFeed;
use lanmeter::config::Config;
use lanmeter::daemon::{self, Inputs};
use lanmeter::demo::{self, Expected, GenOptions};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A running in-process daemon: its thread, stop flag and web port.
struct InProcess {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    port: u16,
}

impl InProcess {
    /// Generates a household capture of `frames` frames in `dir`, writes a config that keeps
    /// everything in `dir`, and starts `daemon::run` on that file and a port-0 listener.
    fn start(dir: &Path, frames: u64) -> (InProcess, Expected, PathBuf, PathBuf) {
        init_tracing();
        let pcap = dir.join("household.pcap");
        // Stamped over the last hour, as live frames would be: older minutes would be rolled up
        // and their minute rows aged out by retention before the export reads them.
        let now_us = jiff::Timestamp::now().as_microsecond() - 3_600_000_000;
        let expected = demo::write_household_pcap(
            &pcap,
            &GenOptions {
                seed: 20,
                frames,
                duration_secs: 3_600,
                devices: 12,
                start_ns: now_us * 1_000,
                ..GenOptions::default()
            },
        )
        .unwrap();
        let config = dir.join("lanmeter.toml");
        std::fs::write(
            &config,
            format!(
                "# written by the in-process daemon test\nstate_dir = {:?}\nflush_interval_secs = 1\n\
                 # Nothing live: no discovery capture, no sweep, no internet probes, no router search (this runs in the host's\n\
                 # own namespace).\ndiscovery = false\narp_sweep_interval_secs = 0\ninternet_probe_interval_secs = 0\nrouter_source = \"off\"\n\
                 gateway = \"{}\"\n",
                dir.display().to_string(),
                expected.gateway
            ),
        )
        .unwrap();
        let cfg = Config::load(Some(&config)).unwrap();
        let db = cfg.database_path();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let source = FileFeed::open(&pcap).unwrap();
        let inputs = Inputs::new(&cfg, Box::new(source), listener).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("daemon-under-test".into())
            .spawn(move || daemon::run(cfg, inputs, None, flag, None))
            .unwrap();
        let d = InProcess {
            stop,
            thread: Some(thread),
            port,
        };
        (d, expected, config, db)
    }

    /// Sets the stop flag and waits for `run` to return; it must return `Ok`.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("stopped twice");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the daemon did not stop in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        thread
            .join()
            .expect("the daemon thread panicked")
            .expect("the daemon returned an error");
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // A failed assertion must not leave the daemon's threads running into the next test.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`: (status, body).
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The generator's totals in the shape `export_totals` reads back.
fn expected_totals(e: &Expected) -> HashMap<String, Totals> {
    e.devices
        .iter()
        .map(|(mac, d)| {
            let c = &d.counts;
            let t = Totals {
                frames_sent: c.frames_sent,
                bytes_sent: c.bytes_sent,
                frames_received: c.frames_received,
                bytes_received: c.bytes_received,
            };
            (mac.to_string(), t)
        })
        .collect()
}

/// The daemon fed fabricated frames (the household generator's capture, through the file
/// reader behind the packet-source seam), then stopped: every device's stored totals equal what
/// was fed, exactly. No root, no namespace.
#[test]
fn daemon_in_process_stores_exactly_what_its_packet_source_fed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, expected, config, db) = InProcess::start(dir.path(), 20_000);
    // Some flushes happen while it runs (1 s interval), the rest at the final flush.
    std::thread::sleep(Duration::from_millis(2_500));
    d.stop();
    let stored = export_totals(&config, &db);
    let want = expected_totals(&expected);
    assert_eq!(
        stored.len(),
        want.len(),
        "stored MACs {:?}\nfed MACs {:?}",
        stored.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (mac, w) in &want {
        assert_eq!(stored.get(mac), Some(w), "totals of {mac}");
    }
    let fed: u64 = want.values().map(|t| t.bytes_sent).sum();
    assert!(
        fed > 1_000_000,
        "the test fed too little to mean much: {fed} bytes"
    );
}

/// The web side answers on the listener the daemon was handed (bound to port 0 by the test, not
/// the configured `listen`), its pages and its API; the capture API reports every fed frame.
#[test]
fn daemon_in_process_web_answers_on_the_listener_it_was_handed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, expected, config, db) = InProcess::start(dir.path(), 5_000);
    let (status, page) = get(d.port, "/setup", None);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<form"), "{page}");
    let (status, _) = get(d.port, "/api/v1/capture", None);
    assert_eq!(status, 401, "the API must ask for credentials");
    // The admin password and a viewer token, set with the real CLI on the database the daemon
    // has open (the API refuses every token until the first-run setup is done).
    let mut passwd = hermetic(Command::new(LANMETER).arg("--config").arg(&config))
        .args(["passwd", "--db"])
        .arg(&db)
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
    let out = hermetic(Command::new(LANMETER).arg("--config").arg(&config))
        .args(["token", "create", "in-process test", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let capture = loop {
        let (status, body) = get(d.port, "/api/v1/capture", Some(&token));
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["frames_seen"].as_u64() == Some(expected.frames) || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        capture["frames_seen"].as_u64(),
        Some(expected.frames),
        "{capture}"
    );
    assert_eq!(capture["interface"], "household.pcap", "{capture}");
    assert_eq!(capture["running"], true, "{capture}");
    // The placement verdict from the same frames: the household's devices talk to the router,
    // none of them to this machine, as a mirror port sees them.
    let (status, body) = get(d.port, "/api/v1/visibility", Some(&token));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["available"], true, "{v}");
    assert_eq!(v["setup"], "mirror", "{v}");
    assert_eq!(v["sees_household"], true, "{v}");
    assert_eq!(v["frames"].as_u64(), Some(expected.frames), "{v}");
    assert_eq!(
        v["other_devices_seen"].as_u64(),
        Some(third_party_macs(
            &dir.path().join("household.pcap"),
            expected.gateway
        )),
        "the household's devices that tshark sees in unicast frames, the router aside: {v}"
    );
    assert!(v["remedies"].as_array().unwrap().is_empty(), "{v}");
    d.stop();
    // Stopped: nothing answers on that port any more.
    assert!(TcpStream::connect(("127.0.0.1", d.port)).is_err());
}

/// The oracle of the verdict's device count, from tshark: every MAC in a unicast frame (as sender,
/// or as receiver of a frame the router did not send), the router aside. A device that sent
/// nothing and heard only from the router is not evidence of a mirror port, so it is not counted.
fn third_party_macs(pcap: &Path, gateway: lanmeter::model::MacAddr) -> u64 {
    crate::corpus::require_tshark();
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args([
            "-Y",
            "eth.dst.ig == 0",
            "-T",
            "fields",
            "-e",
            "eth.src",
            "-e",
            "eth.dst",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gw = gateway.to_string();
    let mut macs = std::collections::BTreeSet::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let Some((src, dst)) = line.split_once('\t') else {
            continue;
        };
        if src != gw {
            macs.insert(src.to_string());
            if dst != gw {
                macs.insert(dst.to_string());
            }
        }
    }
    macs.len() as u64
}
