//! The database file as a whole: consistent backups while the daemon writes, restore with the
//! daemon stopped, the nightly backup folder, the daemon's lock on the file, and the integrity
//! check at start that moves a damaged database aside instead of overwriting it.
//!
//! It never deletes a database: a replaced or damaged file is renamed next to the original with
//! a timestamp, and only backups this module wrote (`lanmeter-YYYY-MM-DD.db` in the backup
//! folder) are ever pruned.
use super::{Store, StoreError, sql_err};
use jiff::Timestamp;
use jiff::civil::Date;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, OpenFlags};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{op} {path}: {source}: check the path, free space and permissions")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{op} {path}: the filesystem is mounted read-only: remount it read-write (`mount -o remount,rw` on its mount point, after an fsck if the kernel made it read-only), or set `database` / `backup_dir` in the config file to a writable place"
    )]
    ReadOnlyFs { op: &'static str, path: PathBuf },
    #[error(
        "no space left writing the backup {path}: free space on the filesystem that holds the backup folder, or lower backup_keep; the daemon tries the nightly backup again every hour, and the database itself is unaffected"
    )]
    NoSpace { path: PathBuf },
    #[error("{path} already exists: choose a new file name (a backup never overwrites a file)")]
    Exists { path: PathBuf },
    #[error("{path} is not a path lanmeter can hand to SQLite (it must be valid UTF-8): rename it")]
    NotUtf8 { path: PathBuf },
    #[error(
        "database {path} is in use by a running lanmeter{}: stop it first (systemctl stop lanmeter), then restore",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse { path: PathBuf, pid: Option<u32> },
    #[error("{path} failed the integrity check ({detail}): it is damaged; use an older backup")]
    NotIntact { path: PathBuf, detail: String },
    #[error("{path} is not a lanmeter database ({detail}): check that you picked a backup file")]
    NotLanmeter { path: PathBuf, detail: String },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    // "Check free space and permissions" would send someone looking in the wrong place when the
    // whole filesystem is read-only (an SD card the kernel remounted after an error).
    move |source| match source.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => BackupError::ReadOnlyFs {
            op,
            path: path.to_path_buf(),
        },
        _ => BackupError::Io {
            op,
            path: path.to_path_buf(),
            source,
        },
    }
}

fn utf8(path: &Path) -> Result<&str, BackupError> {
    path.to_str().ok_or_else(|| BackupError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// `path` with `suffix` appended to its file name (`lanmeter.db` → `lanmeter.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A compact UTC stamp for file names (`20260301T120000Z`).
fn stamp() -> String {
    Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn sync_dir(path: &Path) {
    // Makes a rename durable; a failure here only weakens durability, never correctness.
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Runs `PRAGMA {pragma}` (quick_check or integrity_check) and returns the problems it lists.
fn check(conn: &Connection, path: &Path, pragma: &'static str) -> Result<Vec<String>, StoreError> {
    let mut st = conn
        .prepare(&format!("PRAGMA {pragma}"))
        .map_err(sql_err(path, "checking integrity"))?;
    let rows: Vec<String> = st
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(sql_err(path, "checking integrity"))?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

impl Store {
    /// `PRAGMA quick_check`: the problems SQLite finds (empty when the file is healthy). It reads
    /// every page, so it is a doctor check, not a per-flush one; it never repairs anything.
    pub fn quick_check(&self) -> Result<Vec<String>, StoreError> {
        check(&self.conn, &self.path, "quick_check")
    }
}

/// Opens `path` read-only and runs the full integrity check; also checks it is a lanmeter
/// database this build can read.
pub fn verify(path: &Path) -> Result<(), BackupError> {
    if !path.is_file() {
        return Err(BackupError::Store(StoreError::Missing {
            path: path.to_path_buf(),
        }));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql_err(path, "opening the file"))?;
    let problems = match check(&conn, path, "integrity_check") {
        Ok(p) => p,
        Err(StoreError::Corrupt { detail, .. }) => vec![detail],
        Err(e) => return Err(e.into()),
    };
    if !problems.is_empty() {
        return Err(BackupError::NotIntact {
            path: path.to_path_buf(),
            detail: problems.into_iter().take(3).collect::<Vec<_>>().join("; "),
        });
    }
    let version = super::migrations::user_version(&conn)
        .map_err(sql_err(path, "reading the schema version"))?;
    let known = super::migrations::MIGRATIONS.len();
    let has_usage: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'usage_minute'",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err(path, "reading the schema"))?;
    if !has_usage || version < 1 {
        return Err(BackupError::NotLanmeter {
            path: path.to_path_buf(),
            detail: "it has no usage history table".into(),
        });
    }
    if version as usize > known {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            known,
        }
        .into());
    }
    Ok(())
}

impl Store {
    /// Writes a consistent copy of the database to `dest` (which must not exist) while other
    /// connections keep writing: `VACUUM INTO` reads one snapshot inside a read transaction,
    /// which WAL lets run beside the writer. The copy is written under a temporary name,
    /// checked, synced, then renamed, so `dest` is either absent or a complete, intact copy.
    pub fn backup_to(&self, dest: &Path) -> Result<(), BackupError> {
        if dest.exists() {
            return Err(BackupError::Exists {
                path: dest.to_path_buf(),
            });
        }
        let tmp = with_suffix(dest, &format!(".partial-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let result = (|| {
            // SQLite reports a full disk against the database it reads; the space that ran
            // out is the backup folder's, and the live database is untouched.
            self.conn
                .execute("VACUUM INTO ?1", [utf8(&tmp)?])
                .map_err(sql_err(&self.path, "writing a backup copy"))
                .map_err(|e| match e {
                    StoreError::DiskFull { .. } => BackupError::NoSpace {
                        path: dest.to_path_buf(),
                    },
                    other => BackupError::Store(other),
                })?;
            verify(&tmp)?;
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", &tmp))?;
            fs::rename(&tmp, dest).map_err(io("renaming the backup to", dest))?;
            sync_dir(dest);
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Opens the daemon's database: runs `quick_check`, and if the file is damaged moves it
    /// (with its -wal) aside to `NAME.corrupt-STAMP` and starts a fresh one. Returns where the
    /// damaged file went, so the caller can report it.
    pub fn open_checked(path: &Path) -> Result<(Store, Option<PathBuf>), BackupError> {
        let problem = match Store::open(path) {
            Ok(store) => match check(&store.conn, path, "quick_check") {
                Ok(p) if p.is_empty() => return Ok((store, None)),
                Ok(p) => p.into_iter().take(3).collect::<Vec<_>>().join("; "),
                Err(StoreError::Corrupt { detail, .. }) => detail,
                Err(e) => return Err(e.into()),
            },
            Err(StoreError::Corrupt { detail, .. }) => detail,
            Err(e) => return Err(e.into()),
        };
        let aside = with_suffix(path, &format!(".corrupt-{}", stamp()));
        move_aside(path, &aside)?;
        tracing::error!(
            database = %path.display(),
            moved_to = %aside.display(),
            problem = %problem,
            "the database is damaged: it was moved aside and a fresh, empty history started; restore a backup with `lanmeter restore` (daemon stopped) to get the history back"
        );
        let store = Store::open(path)?;
        Ok((store, Some(aside)))
    }
}

/// Renames `path` and its -wal to `aside` (+ -wal) and drops its -shm, which SQLite rebuilds.
fn move_aside(path: &Path, aside: &Path) -> Result<(), BackupError> {
    fs::rename(path, aside).map_err(io("moving aside", path))?;
    let wal = with_suffix(path, "-wal");
    if wal.exists() {
        fs::rename(&wal, with_suffix(aside, "-wal")).map_err(io("moving aside", &wal))?;
    }
    let _ = fs::remove_file(with_suffix(path, "-shm"));
    sync_dir(path);
    Ok(())
}

/// The daemon's exclusive hold on a database (an advisory `flock` on `NAME.lock`, which the
/// kernel releases when the process ends, even on SIGKILL). `restore` refuses to run while it
/// is held, and a second daemon on the same file refuses to start.
#[derive(Debug)]
pub struct DbLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl DbLock {
    pub fn acquire(db: &Path) -> Result<DbLock, BackupError> {
        let path = with_suffix(db, ".lock");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening the lock file", &path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let _ = lock.set_len(0);
                let _ = write!(lock, "{}", std::process::id());
                Ok(DbLock { _lock: lock, path })
            }
            Err((mut file, _)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Err(BackupError::InUse {
                    path: db.to_path_buf(),
                    pid: text.trim().parse().ok(),
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Replaces the database at `db` with the backup `from`, which must pass the integrity check.
/// Refuses while a daemon holds the database. The current database (if any) is checkpointed
/// and kept as `NAME.before-restore-STAMP`. Returns that path.
pub fn restore(db: &Path, from: &Path) -> Result<Option<PathBuf>, BackupError> {
    let _lock = DbLock::acquire(db)?;
    verify(from)?;
    let tmp = with_suffix(db, ".restoring");
    let _ = fs::remove_file(&tmp);
    fs::copy(from, &tmp).map_err(io("copying the backup to", &tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing", &tmp))?;
    let mut kept = None;
    if db.exists() {
        // Fold the WAL into the file so the kept copy is complete on its own.
        if let Ok(conn) = Connection::open(db) {
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        }
        let aside = with_suffix(db, &format!(".before-restore-{}", stamp()));
        move_aside(db, &aside)?;
        kept = Some(aside);
    }
    fs::rename(&tmp, db).map_err(io("moving the restored copy to", db))?;
    sync_dir(db);
    // Upgrades an older backup's schema now, with the daemon stopped.
    drop(Store::open(db)?);
    Ok(kept)
}

/// File name of the nightly backup for `date`.
fn nightly_name(date: Date) -> String {
    format!("lanmeter-{}.db", date.strftime("%Y-%m-%d"))
}

fn is_nightly_name(name: &str) -> bool {
    name.strip_prefix("lanmeter-")
        .and_then(|r| r.strip_suffix(".db"))
        .is_some_and(|d| d.parse::<Date>().is_ok())
}

/// The nightly backup: if `dir` has no backup for `date` yet, writes one and deletes the oldest
/// nightly backups beyond `keep`. Returns the new file, or `None` if today's already exists.
pub fn nightly(
    db: &Path,
    dir: &Path,
    keep: usize,
    date: Date,
) -> Result<Option<PathBuf>, BackupError> {
    fs::create_dir_all(dir).map_err(io("creating the backup folder", dir))?;
    let dest = dir.join(nightly_name(date));
    if dest.exists() {
        return Ok(None);
    }
    let store = Store::open_existing(db)?;
    store.backup_to(&dest)?;
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(io("listing the backup folder", dir))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_nightly_name(n))
        .collect();
    // Dates in the names sort as text.
    names.sort_unstable();
    let excess = names.len().saturating_sub(keep.max(1));
    for old in &names[..excess] {
        let p = dir.join(old);
        if let Err(e) = fs::remove_file(&p) {
            tracing::warn!(file = %p.display(), error = %e, "cannot delete an old backup");
        }
    }
    Ok(Some(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fault-injection campaign (reliability/faults.py, read_only_fs): starting on a
    /// read-only filesystem told the user to check free space and permissions.
    #[test]
    fn read_only_filesystem_says_to_remount() {
        let path = Path::new("/var/lib/lanmeter/lanmeter.db.lock");
        let erofs = std::io::Error::from_raw_os_error(nix::errno::Errno::EROFS as i32);
        let err = io("opening the lock file", path)(erofs);
        assert!(matches!(err, BackupError::ReadOnlyFs { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("read-only")
                && msg.contains("remount it read-write")
                && msg.contains("lanmeter.db.lock"),
            "{msg}"
        );
        let other = io("opening the lock file", path)(std::io::Error::from_raw_os_error(
            nix::errno::Errno::EACCES as i32,
        ));
        assert!(matches!(other, BackupError::Io { .. }), "{other:?}");
    }
    use crate::model::MinuteUsage;
    use crate::store::usage::tests::{counts, mac};

    fn filled(dir: &Path) -> (PathBuf, Store) {
        let path = dir.join("l.db");
        let mut store = Store::open(&path).unwrap();
        let usage: Vec<MinuteUsage> = (0..50)
            .map(|i| MinuteUsage {
                mac: mac(i % 5),
                minute: 60 * i as i64,
                counts: counts(i + 1),
            })
            .collect();
        store.write_flush(&usage, &[]).unwrap();
        (path, store)
    }

    fn total(store: &Store) -> u64 {
        store
            .device_totals()
            .unwrap()
            .iter()
            .map(|t| t.counts.bytes_sent)
            .sum()
    }

    #[test]
    fn backup_is_complete_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (_, store) = filled(dir.path());
        let dest = dir.path().join("copy.db");
        store.backup_to(&dest).unwrap();
        verify(&dest).unwrap();
        assert_eq!(total(&Store::open_existing(&dest).unwrap()), total(&store));
        let err = store.backup_to(&dest).unwrap_err();
        assert!(matches!(err, BackupError::Exists { .. }), "{err}");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn restore_refuses_a_locked_database_and_a_damaged_backup_then_works() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = filled(dir.path());
        let backup = dir.path().join("b.db");
        store.backup_to(&backup).unwrap();
        let want = total(&store);
        drop(store);

        let lock = DbLock::acquire(&db).unwrap();
        let err = restore(&db, &backup).unwrap_err();
        assert!(matches!(err, BackupError::InUse { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(lock);

        let junk = dir.path().join("junk.db");
        fs::write(&junk, vec![7u8; 4096]).unwrap();
        let err = restore(&db, &junk).unwrap_err();
        assert!(err.to_string().contains("junk.db"), "{err}");

        // Something new after the backup: the restore must bring the old state back.
        Store::open(&db)
            .unwrap()
            .write_flush(
                &[MinuteUsage {
                    mac: mac(1),
                    minute: 99_960,
                    counts: counts(1000),
                }],
                &[],
            )
            .unwrap();
        let kept = restore(&db, &backup).unwrap().unwrap();
        assert!(kept.to_string_lossy().contains("before-restore-"));
        assert_eq!(total(&Store::open_existing(&db).unwrap()), want);
        assert_eq!(
            total(&Store::open_existing(&kept).unwrap()),
            want + 100_000,
            "the replaced database is kept whole"
        );
    }

    #[test]
    fn damaged_database_is_moved_aside_and_a_fresh_one_started() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = filled(dir.path());
        store
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        drop(store);
        // Overwrite every page after the header page: the schema survives, the B-trees do not.
        let mut bytes = fs::read(&db).unwrap();
        for b in bytes.iter_mut().skip(4096 * 2) {
            *b = 0xa5;
        }
        fs::write(&db, &bytes).unwrap();
        let (fresh, aside) = Store::open_checked(&db).unwrap();
        let aside = aside.expect("moved aside");
        assert!(aside.exists() && aside.to_string_lossy().contains(".corrupt-"));
        assert_eq!(total(&fresh), 0, "a fresh history");
        // A healthy database is left alone.
        drop(fresh);
        let (_, none) = Store::open_checked(&db).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn garbage_file_is_moved_aside_too() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        fs::write(&db, vec![0x5a; 8192]).unwrap();
        let (_, aside) = Store::open_checked(&db).unwrap();
        assert_eq!(fs::read(aside.unwrap()).unwrap(), vec![0x5a; 8192]);
    }

    #[test]
    fn nightly_writes_once_per_day_and_keeps_the_last_n() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _store) = filled(dir.path());
        let bdir = dir.path().join("backups");
        fs::create_dir_all(&bdir).unwrap();
        fs::write(bdir.join("notes.txt"), b"mine").unwrap();
        let day = |d: i8| Date::new(2026, 3, d).unwrap();
        for d in 1..=5 {
            assert!(nightly(&db, &bdir, 3, day(d)).unwrap().is_some());
        }
        assert!(
            nightly(&db, &bdir, 3, day(5)).unwrap().is_none(),
            "once a day"
        );
        let mut names: Vec<String> = fs::read_dir(&bdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "lanmeter-2026-03-03.db",
                "lanmeter-2026-03-04.db",
                "lanmeter-2026-03-05.db",
                "notes.txt"
            ]
        );
    }
}
#[cfg(test)]
mod quick_check_tests {
    use super::*;

    #[test]
    fn a_fresh_database_passes_and_a_damaged_one_does_not_open_or_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lanmeter.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.quick_check().unwrap(), Vec::<String>::new());
        drop(store);
        // Overwrite the middle of the file: the header survives, pages do not.
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for b in &mut bytes[len / 2..] {
            *b = 0x5a;
        }
        std::fs::write(&path, bytes).unwrap();
        let damaged = Store::open_existing(&path).and_then(|s| s.quick_check());
        assert!(
            !matches!(damaged, Ok(ref p) if p.is_empty()),
            "a damaged file must be reported: {damaged:?}"
        );
    }
}
