//! The mistakes a person makes with the real binary: each must end with a non-zero exit status
//! and exactly one `lanmeter: error:` line that says what went wrong and what to do.
//!
//! Logs are switched off (`RUST_LOG=off`), so anything else on stderr (a second line, a panic,
//! a stray log) fails the test.

use crate::{LANMETER, hermetic};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PREFIX: &str = "lanmeter: error: ";

/// Runs the binary with `args` (logs off, no inherited settings), requires failure and exactly
/// one error line; returns that line without its prefix, and stdout.
fn fails(args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(LANMETER);
    hermetic(&mut cmd).args(args);
    check_failure(args, cmd.env("RUST_LOG", "off").output().unwrap())
}

fn check_failure(args: &[&str], out: Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{args:?} -> {}\nstderr: {stderr}", out.status);
    assert!(!out.status.success(), "{args:?} succeeded:\n{stdout}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: expected exit status 1, not a crash or signal"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: stderr is not one line:\n{stderr}"
    );
    let msg = lines[0]
        .strip_prefix(PREFIX)
        .unwrap_or_else(|| panic!("{args:?}: stderr does not start with {PREFIX:?}: {stderr}"));
    (msg.to_string(), stdout)
}

/// Requires every needle in `msg`.
fn says(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(msg.contains(n), "message lacks {n:?}: {msg}");
    }
}

/// Requires that the operating system's error appears once: thiserror messages that include
/// `{source}` must not have it printed again by the error chain.
fn no_repeats(msg: &str) {
    assert!(
        msg.matches("(os error").count() <= 1,
        "the cause is repeated: {msg}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// An empty config file: built-in defaults, and nothing read from /etc.
fn empty_config(dir: &Path) -> PathBuf {
    let p = dir.join("empty.toml");
    std::fs::write(&p, "").unwrap();
    p
}

/// One Ethernet II + IPv4 + UDP frame of `len` bytes between two private addresses.
fn udp_frame(src: u8, dst: u8, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, dst, 0x02, 0, 0, 0, 0, src, 0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&[192, 168, 1, src, 192, 168, 1, dst]);
    let udp_len = ip_len - 20;
    f.extend_from_slice(&[
        0x30,
        0x39,
        0x30,
        0x39,
        (udp_len >> 8) as u8,
        udp_len as u8,
        0,
        0,
    ]);
    f.resize(len, 0xab);
    f
}

/// A classic little-endian pcap (Ethernet) holding `frames`, one second apart.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]); // time zone offset, accuracy
    b.extend_from_slice(&65_535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    b
}

#[test]
fn replay_of_a_text_file_says_it_is_not_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.txt");
    std::fs::write(&f, "this is a shopping list, not a capture\n").unwrap();
    let (msg, stdout) = fails(&["replay", s(&f)]);
    says(&msg, &[s(&f), "not a pcap or pcapng capture", "tcpdump"]);
    assert_eq!(
        stdout, "",
        "nothing to print for a file that is not a capture"
    );
}

#[test]
fn replay_of_a_truncated_capture_prints_complete_records_and_says_where_it_ended() {
    const LEN: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            if i % 2 == 0 {
                udp_frame(1, 2, LEN)
            } else {
                udp_frame(2, 1, LEN)
            }
        })
        .collect();
    let whole = pcap(&frames);
    // Cut inside the fourth record's data, as a capture killed while writing leaves it.
    let end_of_third = 24 + 3 * (16 + LEN);
    let f = dir.path().join("cut.pcap");
    std::fs::write(&f, &whole[..end_of_third + 16 + 50]).unwrap();

    let (msg, stdout) = fails(&["replay", "--json", s(&f)]);
    says(
        &msg,
        &[
            s(&f),
            "ends early",
            "3 complete records",
            &format!("at byte {end_of_third}"),
        ],
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not the JSON totals ({e}): {stdout}"));
    let sum = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("frames_sent"), 3, "{stdout}");
    assert_eq!(sum("bytes_sent"), 3 * LEN as u64, "{stdout}");
    let sent_by = |mac: &str| {
        rows.iter()
            .find(|r| r["mac"] == mac)
            .map(|r| r["frames_sent"].as_u64().unwrap())
    };
    assert_eq!(sent_by("02:00:00:00:00:01"), Some(2), "{stdout}");
    assert_eq!(sent_by("02:00:00:00:00:02"), Some(1), "{stdout}");
}

#[test]
fn replay_of_a_radiotap_capture_says_ethernet_is_needed() {
    let f = crate::pcap_corpus().join("tcpdump-80211/ieee802.11_exthdr.pcap");
    assert!(f.is_file(), "{} is missing from the corpus", f.display());
    let (msg, stdout) = fails(&["replay", s(&f)]);
    says(
        &msg,
        &["IEEE802_11_RADIO", "needs Ethernet", "wired interface"],
    );
    assert_eq!(stdout, "");
}

/// A capture interface that is not there yet (Wi-Fi or a USB adapter coming up late at boot) is
/// waited for, not an exit that systemd's start limit would make final (issue 25): the log names
/// it and says so, the process keeps running, and SIGTERM still stops it cleanly.
#[test]
fn run_on_a_missing_interface_names_it_and_waits_for_it() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lanmeter.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\narp_sweep_interval_secs = 0\n",
    )
    .unwrap();
    let db = dir.path().join("x.db");
    let mut cmd = Command::new(LANMETER);
    let mut child = hermetic(&mut cmd)
        .env("RUST_LOG", "warn")
        .args([
            "--config",
            s(&config),
            "run",
            "--interface",
            "nosuch0",
            "--db",
            s(&db),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let start = Instant::now();
    let said = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("nosuch0") && line.contains("waiting for it") => break line,
            Ok(_) => {}
            Err(_) if start.elapsed() > Duration::from_secs(30) => {
                let _ = child.kill();
                panic!("no 'waiting for it' line about nosuch0 within 30 s");
            }
            Err(_) => {}
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("lanmeter run exited ({status}) instead of waiting for nosuch0");
        }
    };
    eprintln!("{said}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(child.try_wait().unwrap().is_none(), "it stopped waiting");
    crate::netns::run(&["kill", "-TERM", &child.id().to_string()]);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("lanmeter run did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn run_without_capture_permission_reports_that_before_the_database() {
    // Everything nobody must read lives in a world-readable folder; the database path is in a
    // folder only root may enter, so a database error would show if it came first.
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let config = empty_config(dir.path());
    let db = private.join("x.db");
    let args = [
        "--config",
        s(&config),
        "run",
        "--interface",
        "lo",
        "--db",
        s(&db),
    ];
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        LANMETER,
    ]);
    hermetic(&mut cmd).args(args).env("RUST_LOG", "off");
    let (msg, _) = check_failure(&args, cmd.output().unwrap());
    says(&msg, &["lo", "CAP_NET_RAW", "run as root"]);
    assert!(!msg.contains("database"), "{msg}");
}

#[test]
fn run_with_an_unwritable_database_folder_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let config = empty_config(dir.path());
    // A folder that can never be created: /proc refuses new entries even to root.
    let db = "/proc/lanmeter-no-such-folder/x.db";
    let (msg, _) = fails(&[
        "--config",
        s(&config),
        "run",
        "--interface",
        "lo",
        "--db",
        db,
    ]);
    says(
        &msg,
        &[db, "/proc/lanmeter-no-such-folder", "writable location"],
    );
    no_repeats(&msg);
}

#[test]
fn invalid_config_value_is_named_by_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("zero.toml");
    std::fs::write(&f, "# flushing needs a pause\nflush_interval_secs = 0\n").unwrap();
    for cmd in [&["check-config"][..], &["run", "--interface", "lo"][..]] {
        let mut args = vec!["--config", s(&f)];
        args.extend_from_slice(cmd);
        let (msg, stdout) = fails(&args);
        says(
            &msg,
            &[
                &format!("{}:2", s(&f)),
                "flush_interval_secs = 0",
                "1..=300",
            ],
        );
        assert_eq!(stdout, "", "{args:?} printed settings it rejected");
    }
}

#[test]
fn unknown_config_key_is_named_by_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("typo.toml");
    std::fs::write(&f, "snaplen = 256\nflush_intervall_secs = 5\n").unwrap();
    for cmd in [&["check-config"][..], &["run", "--interface", "lo"][..]] {
        let mut args = vec!["--config", s(&f)];
        args.extend_from_slice(cmd);
        let (msg, _) = fails(&args);
        says(
            &msg,
            &[
                &format!("{}:2", s(&f)),
                "unknown key `flush_intervall_secs`",
                "did you mean `flush_interval_secs`",
            ],
        );
    }
}

#[test]
fn missing_config_file_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("absent.toml");
    let (msg, _) = fails(&["--config", s(&f), "check-config"]);
    says(&msg, &[s(&f), "check the path"]);
    no_repeats(&msg);
}

#[test]
fn export_from_a_missing_database_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = empty_config(dir.path());
    let db = dir.path().join("none.db");
    let (msg, stdout) = fails(&["--config", s(&config), "export", "--db", s(&db)]);
    says(&msg, &[s(&db), "lanmeter replay --db"]);
    assert_eq!(stdout, "");
    assert!(!db.exists(), "export created a database");
}

#[test]
fn export_from_a_file_that_is_not_a_database_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = empty_config(dir.path());
    let db = dir.path().join("notes.db");
    let text = "not a database, just notes\n";
    std::fs::write(&db, text).unwrap();
    let (msg, stdout) = fails(&["--config", s(&config), "export", "--db", s(&db)]);
    says(&msg, &[s(&db), "not a lanmeter database", "move it aside"]);
    assert_eq!(stdout, "");
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        text,
        "export wrote to the file"
    );
}
