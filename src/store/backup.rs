//! The database file as a whole: consistent backups while the daemon writes, restore with the
//! daemon stopped, the nightly backup folder (listed and checked for `restore --list`), the
//! daemon's lock on the file, and the check at start that keeps a damaged database (with its
//! -wal and -shm) exactly as found instead of letting SQLite write into it ([`super::damage`]).
//!
//! It never deletes a database: a replaced or damaged file is renamed (or copied) next to the
//! original with a timestamp, and only nightly backups this module wrote
//! (`lanmeter-YYYY-MM-DD.db` in the backup folder) are ever pruned: never while a damage is
//! unresolved, and an old one only once `backup_keep` newer ones pass `quick_check`.
use super::damage::{self, DamageEvent};
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
    #[error(
        "{path} is a folder, not a backup: pick one file in it (`lanmeter restore --list {path}` lists them with their dates and check results), or restore the newest good one with `lanmeter restore --latest-good {path}`"
    )]
    IsFolder { path: PathBuf },
    #[error(
        "no backup in {path} passes the check{}: restore a copy you keep elsewhere, or keep the current database with `lanmeter restore --dismiss-damage`",
        if *before_damage { " and was written before the damage was found" } else { "" }
    )]
    NoGoodBackup { path: PathBuf, before_damage: bool },
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

use super::damage::with_suffix;

pub use super::damage::real_path;

/// A compact UTC stamp for file names (`20260301T120000Z`).
fn stamp() -> String {
    Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string()
}

use super::damage::sync_dir;

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
    verify_with(path, "integrity_check")
}

/// [`verify`] with `PRAGMA quick_check` (every page read, no index cross-check): what the
/// backup list and the pruning of old backups use, once per backup.
pub fn quick_verify(path: &Path) -> Result<(), BackupError> {
    verify_with(path, "quick_check")
}

fn verify_with(path: &Path, pragma: &'static str) -> Result<(), BackupError> {
    if path.is_dir() {
        return Err(BackupError::IsFolder {
            path: path.to_path_buf(),
        });
    }
    if !path.is_file() {
        return Err(BackupError::Store(StoreError::Missing {
            path: path.to_path_buf(),
        }));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql_err(path, "opening the file"))?;
    // Never a checkpoint into a file being checked (a backup with a -wal next to it).
    let _ = conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    );
    let problems = match check(&conn, path, pragma) {
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

    /// Opens the daemon's database after checking it, without letting SQLite change a damaged
    /// file first. Damaged pages (a bad header, `quick_check` problems): the database, its -wal
    /// and its -shm are renamed aside unchanged to `NAME.corrupt-STAMP[-wal|-shm]` and a fresh
    /// history starts. A damaged or missing write-ahead log ([`damage::inspect`]): the three
    /// files are copied unchanged to `NAME.wal-damaged-STAMP…` before SQLite opens them, and the
    /// database goes on without the unreadable transactions. Either way an unresolved damage
    /// event is recorded next to the database ([`damage::record`]) and returned.
    pub fn open_checked(path: &Path) -> Result<(Store, Option<DamageEvent>), BackupError> {
        // Through a symlink, the file it names is checked and kept, not the link.
        let path = &real_path(path);
        if !path.exists() {
            return Ok((Store::open(path)?, None));
        }
        let seen = damage::inspect(path);
        // Opening (even read-only) may rebuild the -shm: what was on disk is kept from here.
        let shm_before = fs::read(with_suffix(path, "-shm")).ok();
        let pages = match seen.header.clone() {
            Some(h) => Some(h),
            None => match quick_check_untouched(path, seen.wal.is_some()) {
                Ok(p) if p.is_empty() => None,
                Ok(p) => Some(p.into_iter().take(3).collect::<Vec<_>>().join("; ")),
                Err(StoreError::Corrupt { detail, .. }) => Some(detail),
                // Not damage (permissions, a lock): Store::open below says what it is.
                Err(_) => None,
            },
        };
        let at = Timestamp::now();
        let stamp = at.strftime("%Y%m%dT%H%M%SZ").to_string();
        let event = match (pages, seen.wal) {
            (Some(detail), wal) => {
                let aside = with_suffix(path, &format!(".corrupt-{stamp}"));
                let kept = keep_exact(path, &aside, shm_before.as_deref(), true)?;
                let detail = match wal {
                    Some(w) => format!("{detail}; also {w}"),
                    None => detail,
                };
                Some(("pages", detail, kept))
            }
            (None, Some(detail)) => {
                let aside = with_suffix(path, &format!(".wal-damaged-{stamp}"));
                let kept = keep_exact(path, &aside, shm_before.as_deref(), false)?;
                // The index would send SQLite to frames that are not there: without it, SQLite
                // rebuilds it from what the log really holds (nothing, for a garbage log).
                let shm = with_suffix(path, "-shm");
                if shm.exists() {
                    fs::remove_file(&shm).map_err(io("removing the stale index", &shm))?;
                }
                Some(("wal", detail, kept))
            }
            (None, None) => None,
        };
        let event = event.map(|(kind, detail, kept)| DamageEvent {
            at: at.as_second(),
            kind: kind.into(),
            detail,
            kept,
        });
        if let Some(e) = &event {
            damage::record(path, e)
                .map_err(io("recording the damage in", &damage::marker(path)))?;
            tracing::error!(
                database = %path.display(),
                kept = ?e.kept,
                problem = %e.detail,
                "DAMAGED DATABASE: {}; backups are no longer pruned and the alert stays open until you act: `lanmeter restore --list` shows the backups, `lanmeter restore --latest-good` (service stopped) restores the newest good one, `lanmeter restore --dismiss-damage` keeps the current database",
                e.summary()
            );
        }
        let store = Store::open(path)?;
        Ok((store, event))
    }
}

/// A database file that is gone while nightly backups of it exist (an SD card's fsck may move
/// it to lost+found; a mistaken `rm`) is a damage too: recorded, so the fresh history's
/// backups do not prune the good ones. Call before the daemon opens (and so creates) it.
pub fn record_if_missing(db: &Path, backup_dir: &Path) -> Result<Option<DamageEvent>, BackupError> {
    let db = &real_path(db);
    if db.exists() || !damage::unresolved(db).is_empty() {
        return Ok(None);
    }
    let Ok(entries) = fs::read_dir(backup_dir) else {
        return Ok(None);
    };
    let backups = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_nightly_name(n))
        .count();
    if backups == 0 {
        return Ok(None);
    }
    let event = DamageEvent {
        at: Timestamp::now().as_second(),
        kind: "missing".into(),
        detail: format!(
            "{} not found, {backups} nightly backups in {}",
            db.display(),
            backup_dir.display()
        ),
        kept: Vec::new(),
    };
    damage::record(db, &event).map_err(io("recording the damage in", &damage::marker(db)))?;
    tracing::error!(
        database = %db.display(),
        "DAMAGED DATABASE: {}; backups are no longer pruned until you act: `lanmeter restore --latest-good` (service stopped) or `lanmeter restore --dismiss-damage`",
        event.summary()
    );
    Ok(Some(event))
}

/// `PRAGMA quick_check` on a read-only connection that never checkpoints: the database file
/// and its -wal are left exactly as they were, whatever the check finds. With `file_only`
/// (the log is known to be damaged) the file is checked alone, as SQLite's `immutable` mode
/// reads it: through a damaged log every page would look damaged.
fn quick_check_untouched(path: &Path, file_only: bool) -> Result<Vec<String>, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if file_only {
        let escaped = utf8(path)
            .map_err(|_| StoreError::CannotOpen {
                path: path.to_path_buf(),
                detail: "not UTF-8".into(),
            })?
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23");
        Connection::open_with_flags(
            format!("file:{escaped}?immutable=1"),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(sql_err(path, "opening the file"))?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(sql_err(path, "turning off the checkpoint at close"))?;
    check(&conn, path, "quick_check")
}

/// Keeps `path`, its -wal and its -shm (as `shm`, the bytes read before SQLite opened it) as
/// `aside`, `aside-wal`, `aside-shm`, byte for byte: renamed when `rename` (the originals then
/// disappear), copied and synced otherwise. Returns the kept files, the database first.
fn keep_exact(
    path: &Path,
    aside: &Path,
    shm: Option<&[u8]>,
    rename: bool,
) -> Result<Vec<PathBuf>, BackupError> {
    let mut kept = Vec::new();
    for suffix in ["", "-wal"] {
        let from = with_suffix(path, suffix);
        let to = with_suffix(aside, suffix);
        if !from.exists() {
            continue;
        }
        if rename {
            fs::rename(&from, &to).map_err(io("moving aside", &from))?;
        } else {
            fs::copy(&from, &to).map_err(io("copying aside", &from))?;
            File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", &to))?;
        }
        kept.push(to);
    }
    if let Some(bytes) = shm {
        let to = with_suffix(aside, "-shm");
        fs::write(&to, bytes)
            .and_then(|()| File::open(&to)?.sync_all())
            .map_err(io("copying aside", &to))?;
        kept.push(to);
    }
    if rename {
        let _ = fs::remove_file(with_suffix(path, "-shm"));
    }
    sync_dir(aside);
    Ok(kept)
}

/// Renames `path`, its -wal and its -shm to `aside` (+ -wal, -shm), unchanged: never a
/// checkpoint into a file that may be damaged.
fn move_aside(path: &Path, aside: &Path) -> Result<(), BackupError> {
    for suffix in ["", "-wal", "-shm"] {
        let from = with_suffix(path, suffix);
        if suffix.is_empty() || from.exists() {
            fs::rename(&from, with_suffix(aside, suffix)).map_err(io("moving aside", &from))?;
        }
    }
    sync_dir(path);
    Ok(())
}

/// The daemon's exclusive hold on a database: an advisory `flock` on `NAME.lock` next to the
/// real file (symlinks resolved, so a second path through a symlink finds the same lock), and
/// one on the database file itself (its device and inode, so a hard link or a bind mount finds
/// it too). The kernel releases both when the process ends, even on SIGKILL. `restore`
/// refuses to run while it is held, and a second daemon on the same file refuses to start.
#[derive(Debug)]
pub struct DbLock {
    _lock: Flock<File>,
    /// The database file's locks, with its (device, inode). Only ever added to, and closed
    /// only with the whole lock: closing any descriptor of a file drops every POSIX lock the
    /// process holds on it, SQLite's own included (its shared lock on a WAL database, without
    /// which another process's last close would checkpoint and delete the live -wal).
    files: Vec<((u64, u64), Flock<File>)>,
    db: PathBuf,
    path: PathBuf,
}

impl DbLock {
    pub fn acquire(db: &Path) -> Result<DbLock, BackupError> {
        let real = real_path(db);
        let path = with_suffix(&real, ".lock");
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
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => DbLock {
                _lock: lock,
                files: Vec::new(),
                db: real,
                path,
            },
            Err((mut file, _)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(BackupError::InUse {
                    path: db.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
        };
        let _ = lock._lock.set_len(0);
        let _ = write!(lock._lock, "{}", std::process::id());
        if !lock.cover_file() {
            return Err(BackupError::InUse {
                path: db.to_path_buf(),
                pid: None,
            });
        }
        Ok(lock)
    }

    /// Locks the database file now at the path (again after it was replaced, e.g. a damaged
    /// one moved aside). False when another process holds it under another name.
    pub fn cover_file(&mut self) -> bool {
        use std::os::unix::fs::MetadataExt;
        // stat, not open: opening and closing a descriptor of a file SQLite has open here
        // would drop SQLite's locks (see `files`).
        let Ok(meta) = fs::metadata(&self.db) else {
            return true;
        };
        let id = (meta.dev(), meta.ino());
        if self.files.iter().any(|(held, _)| *held == id) {
            return true;
        }
        let Ok(f) = File::open(&self.db) else {
            return true;
        };
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => {
                self.files.push((id, l));
                true
            }
            // Nothing of SQLite's is open on a file another process holds.
            Err(_) => false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Replaces the database at `db` with the backup `from`, which must pass the integrity check.
/// Refuses while a daemon holds the database. Through a symlink, the file it points to is
/// replaced, never the symlink. The current database (if any) is renamed unchanged, with its
/// -wal and -shm, to `NAME.before-restore-STAMP` (no checkpoint: it may be the damaged one).
/// An unresolved damage event is resolved by the restore. Returns the kept path.
pub fn restore(db: &Path, from: &Path) -> Result<Option<PathBuf>, BackupError> {
    if from.is_dir() {
        return Err(BackupError::IsFolder {
            path: from.to_path_buf(),
        });
    }
    let db = &real_path(db);
    let _lock = DbLock::acquire(db)?;
    verify(from)?;
    let tmp = with_suffix(db, ".restoring");
    let _ = fs::remove_file(&tmp);
    fs::copy(from, &tmp).map_err(io("copying the backup to", &tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing", &tmp))?;
    let mut kept = None;
    // The restored file belongs to whoever owned the one it replaces (run as root, a restore
    // must not leave the service's database owned by root).
    let owner = fs::metadata(db)
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .zip(
            fs::metadata(db)
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::gid(&m)),
        );
    if db.exists() {
        let aside = with_suffix(db, &format!(".before-restore-{}", stamp()));
        move_aside(db, &aside)?;
        kept = Some(aside);
    }
    fs::rename(&tmp, db).map_err(io("moving the restored copy to", db))?;
    sync_dir(db);
    if let Some((uid, gid)) = owner {
        let _ = nix::unistd::chown(
            db,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        );
    }
    // Upgrades an older backup's schema now, with the daemon stopped.
    drop(Store::open(db)?);
    damage::resolve(db, &format!("restored from {}", from.display()))
        .map_err(io("closing the damage record", &damage::marker(db)))?;
    Ok(kept)
}

/// One file in the backup folder, as `lanmeter restore --list` shows it.
#[derive(Debug)]
pub struct BackupInfo {
    pub path: PathBuf,
    pub date: Date,
    pub size: u64,
    /// Written while a damage event was unresolved: a copy of the history started after it.
    pub after_damage: bool,
    /// The quick_check verdict: Ok, or what is wrong.
    pub verdict: Result<(), String>,
}

/// The nightly backups in `dir` (and those written after a damage), newest first, each checked.
pub fn list(dir: &Path) -> Result<Vec<BackupInfo>, BackupError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("listing the backup folder", dir))? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let (date, after_damage) = match parse_backup_name(&name) {
            Some(d) => d,
            None => continue,
        };
        let path = entry.path();
        out.push(BackupInfo {
            size: entry.metadata().map(|m| m.len()).unwrap_or(0),
            verdict: quick_verify(&path).map_err(|e| e.to_string()),
            path,
            date,
            after_damage,
        });
    }
    out.sort_by_key(|b| std::cmp::Reverse((b.date, !b.after_damage)));
    Ok(out)
}

/// The newest backup in `dir` that passes the check, ignoring those written after a damage
/// (they hold the fresh history, not the one to get back).
pub fn newest_good(dir: &Path) -> Result<PathBuf, BackupError> {
    let all = list(dir)?;
    let before_damage = all.iter().any(|b| b.after_damage);
    all.into_iter()
        .find(|b| !b.after_damage && b.verdict.is_ok())
        .map(|b| b.path)
        .ok_or(BackupError::NoGoodBackup {
            path: dir.to_path_buf(),
            before_damage,
        })
}

/// File name of the nightly backup for `date`.
fn nightly_name(date: Date) -> String {
    format!("lanmeter-{}.db", date.strftime("%Y-%m-%d"))
}

/// File name of the nightly backup for `date` written while a damage event is unresolved: never
/// counted among the nightly backups, so it never pushes a good one out.
fn after_damage_name(date: Date) -> String {
    format!("lanmeter-{}.after-damage.db", date.strftime("%Y-%m-%d"))
}

/// The date of a backup file name, and whether it was written after a damage.
fn parse_backup_name(name: &str) -> Option<(Date, bool)> {
    let rest = name.strip_prefix("lanmeter-")?.strip_suffix(".db")?;
    let (date, after) = match rest.strip_suffix(".after-damage") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    Some((date.parse::<Date>().ok()?, after))
}

fn is_nightly_name(name: &str) -> bool {
    matches!(parse_backup_name(name), Some((_, false)))
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
    let damaged = damage::unresolved(db);
    let dest = dir.join(if damaged.is_empty() {
        nightly_name(date)
    } else {
        after_damage_name(date)
    });
    if dest.exists() {
        return Ok(None);
    }
    let store = Store::open_existing(db)?;
    store.backup_to(&dest)?;
    if !damaged.is_empty() {
        tracing::warn!(
            backup = %dest.display(),
            "an unresolved database damage: no backup is pruned until it is resolved (`lanmeter restore --latest-good` or `--dismiss-damage`)"
        );
        return Ok(Some(dest));
    }
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(io("listing the backup folder", dir))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_nightly_name(n))
        .collect();
    // Dates in the names sort as text. Newest first: a backup beyond the newest `keep` goes
    // only once `keep` newer ones pass the check, so damaged copies never push out good ones.
    names.sort_unstable();
    let keep = keep.max(1);
    let mut good = 0;
    for (i, name) in names.iter().rev().enumerate() {
        let p = dir.join(name);
        if i >= keep && good >= keep {
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "cannot delete an old backup");
            }
            continue;
        }
        match quick_verify(&p) {
            Ok(()) => good += 1,
            Err(e) => tracing::warn!(
                file = %p.display(),
                error = %e,
                "a backup fails its check: older backups are kept until enough newer ones pass"
            ),
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

    /// Found by the Pi realities probe: the lock was per path, so a second daemon ran through a
    /// symlinked path and counted every byte twice.
    #[test]
    fn the_lock_follows_symlinks_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = filled(dir.path());
        drop(store);
        let lock = DbLock::acquire(&db).unwrap();
        let sym_dir = dir.path().join("via");
        std::os::unix::fs::symlink(dir.path(), &sym_dir).unwrap();
        let sym_file = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &sym_file).unwrap();
        let hard = dir.path().join("hard.db");
        fs::hard_link(&db, &hard).unwrap();
        for other in [sym_dir.join("l.db"), sym_file.clone(), hard.clone()] {
            let err = DbLock::acquire(&other).unwrap_err();
            assert!(matches!(err, BackupError::InUse { .. }), "{other:?}: {err}");
        }
        // A restore through the symlink is refused too, and leaves the symlink a symlink.
        assert!(restore(&sym_file, &db).is_err());
        assert!(
            fs::symlink_metadata(&sym_file)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        drop(lock);
        assert!(DbLock::acquire(&sym_file).is_ok());
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
        let (fresh, event) = Store::open_checked(&db).unwrap();
        let event = event.expect("damage found");
        let aside = event.kept_database().unwrap();
        assert!(aside.to_string_lossy().contains(".corrupt-"));
        assert_eq!(fs::read(aside).unwrap(), bytes, "kept byte for byte");
        assert_eq!(total(&fresh), 0, "a fresh history");
        assert_eq!(damage::unresolved(&db), vec![event.clone()]);
        // A healthy database is left alone, and the damage stays unresolved across restarts.
        drop(fresh);
        let (_, none) = Store::open_checked(&db).unwrap();
        assert!(none.is_none());
        assert_eq!(damage::unresolved(&db).len(), 1);
    }

    /// A killed process's files: a database whose last committed flush is only in its -wal.
    /// Copied under another name: SQLite shares its locks and index per file within a
    /// process, so the connection that wrote them must not see them again.
    fn killed_with_a_hot_wal(dir: &Path) -> PathBuf {
        let db = dir.join("w.db");
        let mut store = Store::open(&db).unwrap();
        store
            .conn
            .execute_batch("PRAGMA wal_autocheckpoint=0")
            .unwrap();
        store
            .write_flush(
                &[MinuteUsage {
                    mac: mac(1),
                    minute: 60,
                    counts: counts(5),
                }],
                &[],
            )
            .unwrap();
        let killed = dir.join("k.db");
        for s in ["", "-wal", "-shm"] {
            fs::copy(with_suffix(&db, s), with_suffix(&killed, s)).unwrap();
        }
        killed
    }

    /// A killed daemon's files with a garbage -wal: the three files are kept exactly, the
    /// damage is recorded, and the database goes on with what its file holds.
    #[test]
    fn a_garbage_wal_is_kept_and_reported_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = killed_with_a_hot_wal(dir.path());
        let wal = with_suffix(&db, "-wal");
        let garbage = vec![0x33u8; fs::metadata(&wal).unwrap().len() as usize];
        fs::write(&wal, &garbage).unwrap();
        let db_bytes = fs::read(&db).unwrap();
        let shm_bytes = fs::read(with_suffix(&db, "-shm")).unwrap();
        let (_store, event) = Store::open_checked(&db).unwrap();
        let event = event.expect("a garbage -wal is damage");
        assert_eq!(event.kind, "wal");
        assert!(event.detail.contains("not a valid"), "{}", event.detail);
        let [k_db, k_wal, k_shm] = &event.kept[..] else {
            panic!("{:?}", event.kept)
        };
        assert_eq!(fs::read(k_db).unwrap(), db_bytes);
        assert_eq!(fs::read(k_wal).unwrap(), garbage);
        assert_eq!(fs::read(k_shm).unwrap(), shm_bytes);
        assert_eq!(damage::unresolved(&db).len(), 1);
    }

    /// The probe's other case: the -wal deleted, its -shm kept. The flush was silently gone.
    #[test]
    fn a_deleted_wal_with_its_shm_kept_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = killed_with_a_hot_wal(dir.path());
        fs::remove_file(with_suffix(&db, "-wal")).unwrap();
        let shm_bytes = fs::read(with_suffix(&db, "-shm")).unwrap();
        let (store, event) = Store::open_checked(&db).unwrap();
        let event = event.expect("a missing -wal with frames in its index is damage");
        assert!(event.detail.contains("missing"), "{}", event.detail);
        assert_eq!(
            event.kept.len(),
            2,
            "the database and the -shm: {:?}",
            event.kept
        );
        assert_eq!(fs::read(&event.kept[1]).unwrap(), shm_bytes);
        assert_eq!(store.quick_check().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_database_with_backups_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = filled(dir.path());
        drop(store);
        let bdir = dir.path().join("backups");
        assert!(record_if_missing(&db, &bdir).unwrap().is_none(), "there");
        nightly(&db, &bdir, 3, Date::new(2026, 3, 1).unwrap()).unwrap();
        fs::remove_file(&db).unwrap();
        let fresh = dir.path().join("new.db");
        assert!(
            record_if_missing(&fresh, &dir.path().join("none"))
                .unwrap()
                .is_none(),
            "no backups"
        );
        let e = record_if_missing(&db, &bdir)
            .unwrap()
            .expect("missing with a backup");
        assert!(
            e.summary().contains("missing although backups"),
            "{}",
            e.summary()
        );
        assert!(
            record_if_missing(&db, &bdir).unwrap().is_none(),
            "recorded once"
        );
        assert_eq!(damage::unresolved(&db).len(), 1);
        let p = nightly(
            &db_after_start(&db),
            &bdir,
            3,
            Date::new(2026, 3, 2).unwrap(),
        )
        .unwrap();
        assert!(p.unwrap().to_string_lossy().contains("after-damage"));
    }

    /// The fresh database the daemon creates after finding none.
    fn db_after_start(db: &Path) -> PathBuf {
        drop(Store::open(db).unwrap());
        db.to_path_buf()
    }

    #[test]
    fn pruning_stops_while_damage_is_unresolved_and_skips_failing_backups() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = filled(dir.path());
        drop(store);
        let bdir = dir.path().join("backups");
        let day = |d: i8| Date::new(2026, 3, d).unwrap();
        for d in 1..=3 {
            nightly(&db, &bdir, 3, day(d)).unwrap().unwrap();
        }
        // The newest is damaged: the oldest good one stays, as a third good one.
        fs::write(bdir.join("lanmeter-2026-03-03.db"), vec![1u8; 4096]).unwrap();
        nightly(&db, &bdir, 3, day(4)).unwrap().unwrap();
        assert!(bdir.join("lanmeter-2026-03-01.db").exists());
        nightly(&db, &bdir, 3, day(5)).unwrap().unwrap();
        assert!(!bdir.join("lanmeter-2026-03-01.db").exists());

        damage::record(
            &db,
            &DamageEvent {
                at: 0,
                kind: "pages".into(),
                detail: "test".into(),
                kept: vec![],
            },
        )
        .unwrap();
        for d in 6..=9 {
            let p = nightly(&db, &bdir, 3, day(d)).unwrap().unwrap();
            assert!(p.to_string_lossy().ends_with(".after-damage.db"), "{p:?}");
        }
        let listed = list(&bdir).unwrap();
        assert_eq!(listed.len(), 8, "{listed:?}");
        assert!(listed[0].after_damage && listed[0].date == day(9));
        assert_eq!(
            newest_good(&bdir).unwrap(),
            bdir.join("lanmeter-2026-03-05.db")
        );
        assert!(
            listed.iter().any(|b| b.verdict.is_err()),
            "the damaged one is listed as such"
        );
        // Pointed at the folder, restore explains itself.
        let err = restore(&db, &bdir).unwrap_err();
        assert!(err.to_string().contains("--list"), "{err}");
        restore(&db, &newest_good(&bdir).unwrap()).unwrap();
        assert!(
            damage::unresolved(&db).is_empty(),
            "a restore resolves the damage"
        );
    }

    #[test]
    fn garbage_file_is_moved_aside_too() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        fs::write(&db, vec![0x5a; 8192]).unwrap();
        let (_, event) = Store::open_checked(&db).unwrap();
        let event = event.unwrap();
        assert_eq!(
            fs::read(event.kept_database().unwrap()).unwrap(),
            vec![0x5a; 8192]
        );
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
