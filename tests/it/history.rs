//! History on disk under stress: backups taken by the real binary while a writer flushes, the
//! restore command's refusals, and a database whose filesystem really fills up (a 2 MB tmpfs
//! mounted for the test), where flushes must fail, keep their counts and write them all once
//! space is back.

use lanmeter::flush::Flusher;
use lanmeter::model::{Counts, MacAddr, MinuteUsage, Sighting};
use lanmeter::store::backup::{self, DbLock};
use lanmeter::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn lanmeter(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(crate::LANMETER);
    crate::hermetic(&mut cmd);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("lanmeter runs")
}

fn mac(n: u64) -> MacAddr {
    MacAddr::from_u64(0x0200_0000_0000 | n)
}

/// One flush interval of `devices` devices in `minute`, `bytes` each.
fn interval(devices: u64, minute: i64, bytes: u64) -> (Vec<MinuteUsage>, Vec<Sighting>) {
    let usage = (0..devices)
        .map(|d| MinuteUsage {
            mac: mac(d),
            minute,
            counts: Counts {
                frames_sent: 1,
                bytes_sent: bytes,
                ..Counts::default()
            },
        })
        .collect();
    let seen = (0..devices)
        .map(|d| Sighting {
            mac: mac(d),
            first_seen: minute * 1_000_000_000,
            last_seen: minute * 1_000_000_000,
            is_gateway: false,
        })
        .collect();
    (usage, seen)
}

fn bytes_stored(db: &Path) -> u64 {
    Store::open_existing(db)
        .unwrap()
        .device_totals()
        .unwrap()
        .iter()
        .map(|t| t.counts.bytes_sent)
        .sum()
}

#[test]
fn backups_taken_while_a_writer_flushes_are_intact_and_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let mut flusher = Flusher::new(Store::open(&db).unwrap());
    let (u, s) = interval(300, 0, 1);
    flusher.flush(u, s).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut flushes = 0u64;
            let mut minute = 60;
            while !stop.load(Ordering::Relaxed) {
                let (u, s) = interval(300, minute, 1);
                flusher.flush(u, s).unwrap();
                minute += 60;
                flushes += 1;
            }
            (flushes, flusher)
        })
    };
    let mut copies = Vec::new();
    for i in 0..3 {
        let copy = dir.path().join(format!("copy-{i}.db"));
        let out = lanmeter(&[
            "backup",
            "--db",
            db.to_str().unwrap(),
            copy.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        copies.push(copy);
    }
    stop.store(true, Ordering::Relaxed);
    let (flushes, flusher) = writer.join().unwrap();
    drop(flusher);
    assert!(
        flushes > 3,
        "the writer really ran during the backups ({flushes})"
    );
    let mut last = 0;
    for copy in &copies {
        backup::verify(copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display()));
        // A snapshot: whole flushes only (300 bytes each), never more than the final total.
        let total = bytes_stored(copy);
        assert_eq!(total % 300, 0, "{}: a half-written flush", copy.display());
        assert!(total >= last && total <= 300 * (flushes + 1));
        last = total;
    }
    assert_eq!(bytes_stored(&db), 300 * (flushes + 1));
}

#[test]
fn restore_refuses_a_running_daemon_then_brings_the_backup_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("home.db");
    let backup_file = dir.path().join("b.db");
    let mut store = Store::open(&db).unwrap();
    let (u, s) = interval(10, 600, 5);
    store.write_flush(&u, &s).unwrap();
    drop(store);
    let out = lanmeter(&[
        "backup",
        "--db",
        db.to_str().unwrap(),
        backup_file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let (u, s) = interval(10, 660, 1000);
    Store::open(&db).unwrap().write_flush(&u, &s).unwrap();

    // A running daemon holds this lock.
    let lock = DbLock::acquire(&db).unwrap();
    let out = lanmeter(&[
        "restore",
        "--db",
        db.to_str().unwrap(),
        backup_file.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("in use") && err.contains("stop it first"),
        "{err}"
    );
    drop(lock);

    let out = lanmeter(&["restore", "--db", db.to_str().unwrap(), "/nonexistent/b.db"]);
    assert!(!out.status.success());
    assert_eq!(
        bytes_stored(&db),
        10 * 5 + 10 * 1000,
        "untouched after refusals"
    );

    let out = lanmeter(&[
        "restore",
        "--db",
        db.to_str().unwrap(),
        backup_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bytes_stored(&db), 10 * 5);
    assert!(String::from_utf8_lossy(&out.stdout).contains("before-restore-"));
}

/// A tmpfs mounted for one test, unmounted when dropped (also when the test panics).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs (the tests run as root)");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes zeros into `path` until the filesystem is full.
fn fill_up(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    let _ = f.sync_all();
}

#[test]
fn a_full_filesystem_fails_flushes_keeps_counts_and_writes_them_all_when_space_returns() {
    crate::init_tracing();
    let fs = Tmpfs::mount("2m");
    let db = fs.path().join("lanmeter.db");
    let mut flusher = Flusher::new(Store::open(&db).unwrap());
    let (u, s) = interval(50, 0, 7);
    flusher.flush(u, s).unwrap();
    let mut want = 50 * 7;

    let filler = fs.path().join("filler");
    fill_up(&filler);
    let mut failures = 0;
    for i in 1..=30i64 {
        // New devices and minutes, so every flush needs new pages.
        let (u, s) = interval(200, i * 60, 11);
        want += 200 * 11;
        match flusher.flush(u, s) {
            Err(StoreError::DiskFull { .. }) => failures += 1,
            Err(e) => panic!("expected disk full, got: {e}"),
            Ok(_) => {}
        }
    }
    assert!(failures > 0, "the full filesystem made flushes fail");
    assert!(flusher.pending_len() > 0, "their counts wait in memory");

    std::fs::remove_file(&filler).unwrap();
    flusher.flush(Vec::new(), Vec::new()).unwrap();
    assert_eq!(flusher.pending_len(), 0);
    drop(flusher);
    assert_eq!(bytes_stored(&db), want, "every byte stored exactly once");
    backup::verify(&db).unwrap();
}

/// Found by the fault-injection campaign (reliability/faults.py, disk_full_backup): a backup that
/// ran out of space blamed the live database and promised a retry that never came.
#[test]
fn a_backup_onto_a_full_filesystem_names_the_backup_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lanmeter.db");
    let mut flusher = Flusher::new(Store::open(&db).unwrap());
    let (u, s) = interval(400, 0, 7);
    flusher.flush(u, s).unwrap();
    drop(flusher);

    let fs = Tmpfs::mount("256k");
    fill_up(&fs.path().join("filler"));
    let dest = fs.path().join("copy.db");
    let err = Store::open_existing(&db)
        .unwrap()
        .backup_to(&dest)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, backup::BackupError::NoSpace { .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("no space left writing the backup") && msg.contains(&*dest.to_string_lossy()),
        "{msg}"
    );
    let left: Vec<_> = std::fs::read_dir(fs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("filler")],
        "a partial copy was left behind"
    );
    backup::verify(&db).unwrap();
}
