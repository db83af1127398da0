//! A damaged database on a real disk, with the real binary (issue 25, items 1, 7 and 8):
//! page 1 overwritten with 7 good nightly backups, then 7 nights of `lanmeter run` under
//! libfaketime (Debian `faketime`) so the nightly backup runs on 7 dates; a garbage `-wal` left
//! by a killed daemon; a second daemon through a symlink; read-only commands on an older schema;
//! the version string.
//!
//! Daemons run inside a test network namespace (their own port and a silent link), each run a
//! few seconds: the flush interval is 1 s and the first maintenance round (which starts the
//! nightly backup) comes one interval after the start.

use crate::netns::{KillOnDrop, NetnsPair};
use crate::{LANMETER, hermetic};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(20);

/// Debian's libfaketime (package faketime), in this machine's multiarch folder.
fn libfaketime() -> String {
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path().join("faketime/libfaketime.so.1")))
        .find(|p| p.exists())
        .map(|p| p.display().to_string())
        .expect("libfaketime.so.1 missing: install the Debian package faketime")
}

/// A `lanmeter run` in a namespace, its stderr collected.
struct Run {
    child: KillOnDrop,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Run {
    /// Starts `lanmeter run` on `iface` in `ns`, with `env` added (e.g. libfaketime's).
    fn start(ns: &str, iface: &str, config: &Path, db: &Path, env: &[(&str, String)]) -> Run {
        let mut cmd = Command::new("ip");
        // `ip netns exec` execs lanmeter: signals to the child's pid reach lanmeter itself.
        cmd.args(["netns", "exec", ns, LANMETER, "--config"])
            .arg(config)
            .args(["run", "--interface", iface, "--db"])
            .arg(db);
        hermetic(&mut cmd)
            .env("LANMETER_FLUSH_INTERVAL_SECS", "1")
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start lanmeter run: {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[lanmeter] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Run {
            child: KillOnDrop(child),
            log,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing `needle`; fails if the process exits first.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Some(status) = self.child.0.try_wait().unwrap() {
                panic!(
                    "lanmeter exited ({status}) before {needle:?}:\n{}",
                    self.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {PATIENCE:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `sig` (None: none, the process is expected to exit by itself) and waits for the
    /// exit; returns whether it succeeded and the whole log.
    fn end(mut self, sig: Option<Signal>) -> (bool, String) {
        if let Some(sig) = sig {
            kill(Pid::from_raw(self.child.0.id() as i32), sig).unwrap();
        }
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(50));
        };
        self.reader.take().unwrap().join().unwrap();
        (status.success(), self.text())
    }
}

/// `lanmeter --config CONFIG ARGS…`, its output.
fn lanmeter(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(LANMETER);
    cmd.arg("--config").arg(config).args(args);
    hermetic(&mut cmd).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "should have failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config keeping everything under `dir`: UTC, nightly backups at any hour, 7 kept, no ARP
/// sweep (the link carries nothing unasked).
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("lanmeter.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = {:?}\ntimezone = \"UTC\"\nbackup_hour = 0\nbackup_keep = 7\narp_sweep_interval_secs = 0\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// A history with known totals: a generated household capture replayed into `db`. Returns the
/// export (every day row) that any good copy must give back.
fn history(dir: &Path, cfg: &Path, db: &Path) -> String {
    let pcap = dir.join("h.pcap");
    let p = pcap.to_str().unwrap();
    ok(&lanmeter(
        cfg,
        &["generate", p, "--frames", "3000", "--devices", "6"],
    ));
    ok(&lanmeter(cfg, &["replay", p, "--db", db.to_str().unwrap()]));
    export(cfg, db)
}

fn export(cfg: &Path, db: &Path) -> String {
    let out = ok(&lanmeter(
        cfg,
        &["export", "--db", db.to_str().unwrap(), "--period", "day"],
    ));
    assert!(out.contains("bytes_sent"), "{out}");
    out
}

/// Files in `dir` whose name contains `part`, sorted.
fn named(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(part))
        .collect();
    v.sort();
    v
}

/// Issue 25 item 1: page 1 overwritten with random bytes, 7 good nightly backups, then 7
/// nights of the daemon (libfaketime moves its clock to 03:00 of each date). Before: after 7
/// nights every backup was a copy of the empty history. Now: the damaged file is kept byte for
/// byte, every good backup survives unchanged, `restore --list`, doctor and the refusal of a
/// folder say what to do, and `restore --latest-good` gives the old totals back.
#[test]
fn page_one_damage_keeps_the_good_backups_through_seven_nights() {
    let faketime = libfaketime();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let db = dir.path().join("lanmeter.db");
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let want = history(dir.path(), &cfg, &db);
    let mut good = Vec::new();
    for d in 1..=7 {
        let b = backups.join(format!("lanmeter-2026-03-0{d}.db"));
        ok(&lanmeter(
            &cfg,
            &["backup", b.to_str().unwrap(), "--db", db.to_str().unwrap()],
        ));
        good.push((b.clone(), std::fs::read(&b).unwrap()));
    }
    // Page 1 (the header and the schema root) overwritten with random bytes.
    let mut bytes = std::fs::read(&db).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in bytes.iter_mut().take(4096) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&db, &bytes).unwrap();
    // The -wal and -shm beside it (read-only commands leave an empty log and its index) must be
    // kept as they are too.
    let sidecars: Vec<(&str, Option<Vec<u8>>)> = ["-wal", "-shm"]
        .into_iter()
        .map(|s| {
            (
                s,
                std::fs::read(dir.path().join(format!("lanmeter.db{s}"))).ok(),
            )
        })
        .collect();

    let p = NetnsPair::new();
    let started = Instant::now();
    for night in 8..=14 {
        let env = [
            ("LD_PRELOAD", faketime.clone()),
            ("FAKETIME", format!("@2026-03-{night:02} 03:00:00")),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ];
        let mut run = Run::start(&p.a, &p.a_if, &cfg, &db, &env);
        run.wait_for("lanmeter::daemon: capturing ");
        run.wait_for("nightly backup written");
        let (clean, log) = run.end(Some(Signal::SIGTERM));
        assert!(clean, "{log}");
        if night == 8 {
            assert!(log.contains("DAMAGED DATABASE"), "{log}");
        }
    }
    eprintln!("7 nights in {:.1} s", started.elapsed().as_secs_f64());

    for (path, before) in &good {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            before,
            "{} changed or was pruned",
            path.display()
        );
    }
    let after = named(&backups, ".after-damage.db");
    assert_eq!(
        after.len(),
        7,
        "one fresh-history backup a night: {after:?}"
    );
    let mut aside = named(dir.path(), "lanmeter.db.corrupt-");
    for (suffix, before) in sidecars {
        let kept = aside
            .iter()
            .position(|p| p.to_string_lossy().ends_with(suffix));
        match (kept, before) {
            (Some(i), Some(b)) => {
                assert_eq!(std::fs::read(aside.remove(i)).unwrap(), b, "{suffix}")
            }
            (None, None) => {}
            (kept, before) => panic!(
                "{suffix}: kept {kept:?}, there before: {}",
                before.is_some()
            ),
        }
    }
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        bytes,
        "kept byte for byte"
    );
    assert!(
        aside[0].to_string_lossy().contains("20260308T03"),
        "{aside:?}"
    );

    let list = ok(&lanmeter(
        &cfg,
        &["restore", "--list", "--db", db.to_str().unwrap()],
    ));
    assert!(list.contains("UNRESOLVED DAMAGE"), "{list}");
    assert_eq!(list.matches("quick_check ok").count(), 14, "{list}");
    let newest = list
        .lines()
        .find(|l| l.contains("newest good"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(newest.contains("lanmeter-2026-03-07.db"), "{list}");

    let doctor = lanmeter(&cfg, &["doctor", "--listen-secs", "0"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.contains("damaged") && text.contains("lanmeter-2026-03-07.db"),
        "{text}"
    );

    let folder = failed(&lanmeter(
        &cfg,
        &[
            "restore",
            backups.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ],
    ));
    assert!(
        folder.contains("is a folder") && folder.contains("--latest-good"),
        "{folder}"
    );

    let restored = ok(&lanmeter(
        &cfg,
        &["restore", "--latest-good", "--db", db.to_str().unwrap()],
    ));
    assert!(restored.contains("lanmeter-2026-03-07.db"), "{restored}");
    assert_eq!(export(&cfg, &db), want, "the old totals are back");
    let list = ok(&lanmeter(
        &cfg,
        &["restore", "--list", "--db", db.to_str().unwrap()],
    ));
    assert!(
        !list.contains("UNRESOLVED"),
        "a restore resolves the damage: {list}"
    );
}

/// Issue 25 item 1: a killed daemon's `-wal` overwritten with garbage. Before: the next start
/// ran on with the last transactions silently gone. Now: reported, the database, -wal and -shm
/// kept byte for byte, and the history in the file goes on.
#[test]
fn a_garbage_wal_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let db = dir.path().join("lanmeter.db");
    let want = history(dir.path(), &cfg, &db);
    let p = NetnsPair::new();
    let mut run = Run::start(&p.a, &p.a_if, &cfg, &db, &[]);
    run.wait_for("lanmeter::daemon: capturing ");
    p.exec(
        &p.b,
        &["ping", "-q", "-c", "5", "-i", "0.2", &p.a_ip.to_string()],
    );
    std::thread::sleep(Duration::from_millis(2500));
    run.end(Some(Signal::SIGKILL));
    let wal = dir.path().join("lanmeter.db-wal");
    let len = std::fs::metadata(&wal).unwrap().len() as usize;
    assert!(
        len > 32,
        "the killed daemon left committed frames in its -wal"
    );
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&wal, &garbage).unwrap();
    let db_bytes = std::fs::read(&db).unwrap();

    let mut run = Run::start(&p.a, &p.a_if, &cfg, &db, &[]);
    run.wait_for("lanmeter::daemon: capturing ");
    let (clean, log) = run.end(Some(Signal::SIGTERM));
    assert!(clean, "{log}");
    assert!(
        log.contains("DAMAGED DATABASE") && log.contains("not a valid write-ahead log"),
        "{log}"
    );
    let kept = named(dir.path(), "lanmeter.db.wal-damaged-");
    assert_eq!(kept.len(), 3, "database, -wal and -shm: {kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), db_bytes);
    assert!(kept[2].to_string_lossy().ends_with("-wal"), "{kept:?}");
    assert_eq!(std::fs::read(&kept[2]).unwrap(), garbage);
    let list = ok(&lanmeter(
        &cfg,
        &["restore", "--list", "--db", db.to_str().unwrap()],
    ));
    assert!(
        list.contains("UNRESOLVED DAMAGE") && list.contains("write-ahead log"),
        "{list}"
    );
    // The replayed history (in the file, not the log) is still there.
    assert_eq!(export(&cfg, &db).lines().count(), want.lines().count());
    let dismissed = ok(&lanmeter(
        &cfg,
        &["restore", "--dismiss-damage", "--db", db.to_str().unwrap()],
    ));
    assert!(dismissed.contains("dismissed"), "{dismissed}");

    // The probe's other case: the -wal deleted, its -shm kept.
    let mut run = Run::start(&p.a, &p.a_if, &cfg, &db, &[]);
    run.wait_for("lanmeter::daemon: capturing ");
    p.exec(
        &p.b,
        &["ping", "-q", "-c", "5", "-i", "0.2", &p.a_ip.to_string()],
    );
    std::thread::sleep(Duration::from_millis(2500));
    run.end(Some(Signal::SIGKILL));
    std::fs::remove_file(&wal).unwrap();
    let mut run = Run::start(&p.a, &p.a_if, &cfg, &db, &[]);
    run.wait_for("lanmeter::daemon: capturing ");
    let (clean, log) = run.end(Some(Signal::SIGTERM));
    assert!(clean, "{log}");
    assert!(
        log.contains("DAMAGED DATABASE") && log.contains("the -wal is missing"),
        "{log}"
    );
}

/// Issue 25 item 7: a second daemon through a symlinked path counted every byte twice, and a
/// restore through the symlink replaced the symlink under a running daemon.
#[test]
fn a_second_daemon_through_a_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let real_dir = dir.path().join("real");
    std::fs::create_dir_all(&real_dir).unwrap();
    let db = real_dir.join("lanmeter.db");
    history(dir.path(), &cfg, &db);
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    let link_dir = dir.path().join("via");
    std::os::unix::fs::symlink(&real_dir, &link_dir).unwrap();
    let backup = dir.path().join("b.db");

    let p = NetnsPair::new();
    let mut first = Run::start(&p.a, &p.a_if, &cfg, &db, &[]);
    first.wait_for("lanmeter::daemon: capturing ");
    for other in [link.clone(), link_dir.join("lanmeter.db")] {
        let (clean, log) = Run::start(&p.a, &p.a_if, &cfg, &other, &[]).end(None);
        assert!(!clean, "a second daemon on {other:?} ran:\n{log}");
        assert!(log.contains("in use by a running lanmeter"), "{log}");
    }
    ok(&lanmeter(
        &cfg,
        &[
            "backup",
            backup.to_str().unwrap(),
            "--db",
            link.to_str().unwrap(),
        ],
    ));
    let refused = failed(&lanmeter(
        &cfg,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--db",
            link.to_str().unwrap(),
        ],
    ));
    assert!(refused.contains("in use"), "{refused}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let (clean, log) = first.end(Some(Signal::SIGTERM));
    assert!(clean, "{log}");
    // With the daemon stopped the restore works, on the file the symlink points to.
    ok(&lanmeter(
        &cfg,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--db",
            link.to_str().unwrap(),
        ],
    ));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(named(&real_dir, "before-restore-").len(), 1);
}

/// Issue 25 item 8: `export` upgraded the schema. Read-only commands now leave the file alone
/// and say what to do with an older schema.
#[test]
fn read_only_commands_never_upgrade_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let db = dir.path().join("lanmeter.db");
    history(dir.path(), &cfg, &db);
    let current: i64 = String::from_utf8(
        Command::new("sqlite3")
            .arg(&db)
            .arg("PRAGMA user_version;")
            .output()
            .expect("sqlite3 (Debian package sqlite3)")
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(format!("PRAGMA user_version = {};", current - 1))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let before = std::fs::read(&db).unwrap();
    let d = db.to_str().unwrap();
    for args in [
        vec!["export", "--db", d],
        vec!["devices", "--db", d],
        vec!["plan", "--db", d],
        vec!["token", "list", "--db", d],
    ] {
        let err = failed(&lanmeter(&cfg, &args));
        assert!(
            err.contains(&format!("schema {}", current - 1)) && err.contains("does not upgrade"),
            "{args:?}: {err}"
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            before,
            "{args:?} wrote to the file"
        );
    }
    // A backup copies the older schema as it is, and still leaves the file alone.
    let copy = dir.path().join("copy.db");
    ok(&lanmeter(
        &cfg,
        &["backup", copy.to_str().unwrap(), "--db", d],
    ));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "backup wrote to the file"
    );
    let version = Command::new("sqlite3")
        .arg(&copy)
        .arg("PRAGMA user_version;")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        (current - 1).to_string()
    );
}

/// Issue 25 item 8: every build reported `0.1.0`. A build from a git checkout names its commit.
#[test]
fn the_version_names_the_commit() {
    let out = ok(&Command::new(LANMETER).arg("--version").output().unwrap());
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=7",
            "HEAD",
        ])
        .output();
    let version = out.trim().strip_prefix("lanmeter ").unwrap_or(&out);
    assert!(version.starts_with(env!("CARGO_PKG_VERSION")), "{out}");
    let tagged = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--tags",
            "--exact-match",
        ])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).trim() == concat!("v", env!("CARGO_PKG_VERSION"))
        });
    match head {
        // A release: HEAD carries the version's tag.
        _ if tagged => assert_eq!(version, env!("CARGO_PKG_VERSION")),
        Ok(h) if h.status.success() => {
            let commit = String::from_utf8_lossy(&h.stdout).trim().to_string();
            assert!(
                version.ends_with(&format!("+g{commit}")),
                "{out} vs HEAD {commit}"
            );
        }
        // No git here (a source tarball): the plain version is right.
        _ => assert_eq!(version, env!("CARGO_PKG_VERSION")),
    }
}
