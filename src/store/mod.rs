//! The SQLite store: the only user of `rusqlite` in the crate.
//!
//! It owns the database file (opening, pragmas, versioned migrations), the devices table, the
//! per-minute usage buckets and reading them back (totals, history export). It must never be
//! called from the packet path: every call may wait on disk or on another process's lock.
//!
//! Durability (docs/DURABILITY.md): the database runs in WAL mode with `synchronous=FULL`, and the flusher
//! writes each flush interval as one transaction, so a power cut loses at most the interval in
//! progress and never leaves the file corrupt.
pub mod alerts;
pub mod auth;
pub mod backup;
pub mod batch;
pub mod damage;
pub mod devices;
pub mod discovery;
pub mod export;
pub mod health;
mod identity;
pub mod internet;
mod migrations;
pub mod names;
pub mod period;
pub mod plan;
mod presence;
pub mod query;
pub mod remote;
pub mod remotes;
pub mod rollup;
pub mod router;
pub mod survey;
pub mod today;
pub mod tokens;
pub mod undo;
pub mod usage;

#[cfg(test)]
mod history_tests;

pub use devices::DeviceTotals;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for another connection's lock before giving up with
/// [`StoreError::Busy`]. Five seconds rides out a web request or a backup tool holding the lock,
/// and is still well inside the flush interval (5 minutes by default, 1 s at least in tests), so a
/// failed flush is retried on time.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Knobs for [`Store::open_with`]. [`Store::open`] uses the defaults.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

/// Everything that can go wrong with the database, each message saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the folder {path} for the database: {source}; create it or choose a writable location for the database"
    )]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "there is no database at {path}: check the path (lanmeter creates it when it first runs, or with `lanmeter replay --db`)"
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot open database {path} ({detail}): check that its folder exists and that the user lanmeter runs as may read and write it"
    )]
    CannotOpen { path: PathBuf, detail: String },
    #[error(
        "database {path} is locked by another program (a second lanmeter, or a tool holding a write transaction) while {op}: stop that program; lanmeter retries at the next flush"
    )]
    Busy { path: PathBuf, op: &'static str },
    #[error(
        "no space left while {op} in database {path}: free space on the filesystem that holds it; lanmeter keeps unsaved counts in memory and retries"
    )]
    DiskFull { path: PathBuf, op: &'static str },
    #[error(
        "database {path} is read-only ({detail}): give the user lanmeter runs as write permission on the file, its -wal/-shm files and its folder"
    )]
    ReadOnly { path: PathBuf, detail: String },
    #[error(
        "database {path} is damaged or not a lanmeter database ({detail}): restore it from a backup, or move it aside to start a fresh history"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "database {path} was written by a newer lanmeter (schema {found}, this build knows {known}): upgrade lanmeter or restore a backup"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error(
        "database {path} has schema {found}, older than this build's {known}, and this command only reads, so it does not upgrade it: start the service (`systemctl start lanmeter`, it upgrades the schema at start) or run `lanmeter backup` first to keep a copy, then try again"
    )]
    OlderSchema {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error(
        "database {path} cannot use write-ahead logging (journal mode stayed '{mode}'): keep the database on a local filesystem (not NFS or a FUSE mount)"
    )]
    NoWal { path: PathBuf, mode: String },
    #[error(
        "database {path}: cannot compute local bucket boundaries in time zone {zone} near {at} s since 1970 ({detail}): check `timezone` in the config file; a time that far off means damaged data, restore a backup"
    )]
    Time {
        path: PathBuf,
        zone: String,
        at: i64,
        detail: String,
    },
    #[error(
        "database {path}: {op} failed: {source} (if this persists, report it as a lanmeter bug with this message)"
    )]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Maps a SQLite failure to the variant whose message tells the user what to do. `op` says
    /// what the store was doing, in words that fit "... while {op}".
    fn from_sqlite(path: &Path, op: &'static str, err: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        let detail = err.to_string();
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Busy { path, op }
            }
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path, op },
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { path, detail },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt { path, detail }
            }
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                StoreError::CannotOpen { path, detail }
            }
            _ => StoreError::Sqlite {
                path,
                op,
                source: err,
            },
        }
    }
}

/// Shorthand for `map_err` at every rusqlite call site.
fn sql_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |e| StoreError::from_sqlite(path, op, e)
}

/// One open database. Not `Sync`: one owner (the flusher thread, or a CLI command) at a time;
/// readers on other threads open their own `Store` on the same file, which WAL allows.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Where writes that may wait for the next flush go instead of committing on their own
    /// (see [`Store::defer_to`]); `None`: every write commits at once.
    defer: Option<batch::WriteQueue>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Test helper: takes the database's write lock on this connection and keeps it until the
    /// store is dropped, as another program holding a write transaction would.
    #[cfg(test)]
    pub(crate) fn hold_write_lock(&self) {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .expect("BEGIN IMMEDIATE on a fresh connection");
    }

    /// Opens (creating if needed, with its parent folders) and upgrades the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default())
    }

    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        Store::open_inner(path, options, true)
    }

    /// Like [`Store::open`], but refuses to create a database: for commands that only read
    /// history (export), where a mistyped `--db` must not silently produce an empty file.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Store::open_inner(path, StoreOptions::default(), false)
    }

    /// Opens an existing database read-only, for commands that only read (export, devices,
    /// plan, doctor, the backup list): they never upgrade the schema or write anything. A schema
    /// older or newer than this build's is refused with a message saying what to do.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        Store::read_only(path, false)
    }

    /// [`Store::open_read_only`] that accepts an older schema as it is: for `lanmeter backup`,
    /// whose copy of an old database must be that old database, not an upgraded one.
    pub fn open_read_only_as_is(path: &Path) -> Result<Store, StoreError> {
        Store::read_only(path, true)
    }

    fn read_only(path: &Path, older_ok: bool) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err(path, "opening the file"))?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)
            .map_err(sql_err(path, "setting the busy timeout"))?;
        let found =
            migrations::user_version(&conn).map_err(sql_err(path, "reading the schema version"))?;
        let known = migrations::MIGRATIONS.len();
        if found > known as i64 {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        if found < known as i64 && !older_ok {
            return Err(StoreError::OlderSchema {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            defer: None,
        })
    }

    fn open_inner(path: &Path, options: StoreOptions, create: bool) -> Result<Store, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(sql_err(path, "opening the file"))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(sql_err(path, "setting the busy timeout"))?;
        // The first statement that reads the file: a damaged or foreign file fails here.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sql_err(path, "switching to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        // docs/DURABILITY.md allows losing only the flush interval in progress on a power cut. In WAL mode
        // `synchronous=NORMAL` may lose transactions that were already reported committed (the
        // WAL is fsynced only at checkpoints); FULL fsyncs the WAL at every commit. SD-card
        // writes are kept down by committing rarely (once per flush interval, 5 minutes by
        // default), not by skipping the fsync: NORMAL would write the same WAL pages a few
        // seconds later anyway (kernel writeback), and the ext4 journal with them.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql_err(path, "setting synchronous=FULL"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql_err(path, "enabling foreign keys"))?;
        migrations::migrate(&mut conn, path, migrations::MIGRATIONS)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            defer: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// From now on, the writes of this connection that only refresh what is shown (an active
    /// alert's last-active time and wording) are queued for the flusher's transaction instead
    /// of committing on their own: a commit each per evaluation would cost the SD card more
    /// than the devices' history (docs/DURABILITY.md). Decisions (an alert raised, resolved,
    /// queued for delivery) still commit at once.
    pub fn defer_to(&mut self, queue: batch::WriteQueue) {
        self.defer = Some(queue);
    }

    /// The schema version the file is at (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        migrations::user_version(&self.conn)
            .map_err(sql_err(&self.path, "reading the schema version"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_parent_dirs_and_sets_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/lanmeter.db");
        let store = Store::open(&path).unwrap();
        assert!(path.exists());
        assert_eq!(
            store.schema_version().unwrap(),
            migrations::MIGRATIONS.len() as i64
        );
        let q = |name: &str| -> i64 {
            store
                .conn
                .pragma_query_value(None, name, |r| r.get(0))
                .unwrap()
        };
        assert_eq!(q("synchronous"), 2, "FULL is 2");
        assert_eq!(q("foreign_keys"), 1);
        assert_eq!(q("busy_timeout"), 5000);
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn reopening_keeps_data_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            migrations::MIGRATIONS.len() as i64
        );
    }

    #[test]
    fn open_existing_refuses_a_missing_file_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/typo.db");
        let err = Store::open_existing(&path).unwrap_err();
        assert!(matches!(err, StoreError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("typo.db"), "{err}");
        assert!(!dir.path().join("sub").exists());
        drop(Store::open(&path).unwrap());
        assert!(Store::open_existing(&path).is_ok());
    }

    #[test]
    fn read_only_open_never_upgrades_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let store = Store::open(&path).unwrap();
        // One step back, as an older lanmeter left it.
        let older = migrations::MIGRATIONS.len() as i64 - 1;
        store
            .conn
            .pragma_update(None, "user_version", older)
            .unwrap();
        drop(store);
        let before = std::fs::read(&path).unwrap();
        let err = Store::open_read_only(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::OlderSchema { found, .. } if found == older),
            "{err:?}"
        );
        assert!(err.to_string().contains("does not upgrade"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "not one byte written"
        );
        let current = dir.path().join("current.db");
        drop(Store::open(&current).unwrap());
        let ro = Store::open_read_only(&current).unwrap();
        assert!(
            ro.conn.execute_batch("CREATE TABLE x(y)").is_err(),
            "read-only"
        );
    }

    #[test]
    fn garbage_file_is_reported_as_damaged_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("junk.db") && msg.contains("backup"), "{msg}");
    }

    #[test]
    fn parent_that_is_a_file_gives_create_dir_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = Store::open(&blocker.join("sub/lanmeter.db")).unwrap_err();
        assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("file/sub"), "{err}");
    }
}
