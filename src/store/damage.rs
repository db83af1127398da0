//! Damage found at start, treated as an emergency: what is damaged is kept byte for byte (the
//! database with its `-wal` and `-shm`), an unresolved damage event is written next to the
//! database (`NAME.damage`, one JSON object per line) and stays until an admin restores a
//! backup or dismisses it. While it exists, the nightly backup prunes nothing (a backup of the
//! fresh history must never push out the good ones), and the alert, the dashboard and `doctor`
//! say what happened.
//!
//! Two kinds of damage. Damaged pages (a bad header or `quick_check` problems): the files are
//! renamed aside and a fresh history starts. A damaged or missing write-ahead log (garbage
//! `-wal`, a `-wal` that ends before the frames the `-shm` says were committed, or a deleted
//! `-wal` whose `-shm` is kept): SQLite would silently drop those transactions, so the three
//! files are copied aside before SQLite touches them and the database goes on without them.
//!
//! The log is inspected here without SQLite (the format is documented in SQLite's "Database
//! File Format", sections 4.1–4.3), because opening the database would already rewrite the
//! `-shm` and, at the last close, checkpoint into the file and delete the `-wal`.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One damage found at start and not yet resolved by an admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageEvent {
    /// When it was found (seconds since 1970, UTC).
    pub at: i64,
    /// "pages" (the database file itself) or "wal" (its write-ahead log).
    pub kind: String,
    /// What was wrong, for a person.
    pub detail: String,
    /// The byte-identical copies kept (database, and its -wal and -shm when they existed).
    pub kept: Vec<PathBuf>,
}

impl DamageEvent {
    /// The kept copy of the database file itself.
    pub fn kept_database(&self) -> Option<&Path> {
        self.kept.first().map(PathBuf::as_path)
    }

    pub fn when(&self) -> String {
        Timestamp::from_second(self.at)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|_| self.at.to_string())
    }

    /// One sentence: what happened and where the evidence is.
    pub fn summary(&self) -> String {
        let what = match self.kind.as_str() {
            "pages" => "the database was found damaged; a fresh, empty history was started",
            "missing" => {
                "the database file was missing although backups of it exist; a fresh, empty history was started"
            }
            _ => {
                "the database's write-ahead log was found damaged or missing; the last transactions in it could not be read"
            }
        };
        let kept = if self.kept.is_empty() {
            String::new()
        } else {
            format!(
                "; the damaged files were kept unchanged as {}",
                self.kept
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!("{}: {what} ({}){kept}", self.when(), self.detail)
    }
}

/// `db` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The file a database path really names: symlinks (of the file or of its folders) resolved,
/// so a lock, a restore or a damage record on `/srv/link.db` acts on the file it points to.
/// A database that does not exist yet resolves through its folder.
pub fn real_path(db: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(db) {
        return p;
    }
    let parent = db.parent().filter(|p| !p.as_os_str().is_empty());
    match (parent.map(fs::canonicalize), db.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => db.to_path_buf(),
    }
}

/// Where a database's unresolved damage events are kept: beside the real file, so the daemon
/// and a command given the path through a symlink agree.
pub fn marker(db: &Path) -> PathBuf {
    with_suffix(&real_path(db), ".damage")
}

/// The unresolved damage events of `db` (none when the marker is absent). A line that does
/// not parse still counts: it is shown as an event with its raw text, never dropped.
pub fn unresolved(db: &Path) -> Vec<DamageEvent> {
    let Ok(text) = fs::read_to_string(marker(db)) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|_| DamageEvent {
                at: 0,
                kind: "unknown".into(),
                detail: l.to_string(),
                kept: Vec::new(),
            })
        })
        .collect()
}

/// Appends `event` to the marker, synced: it must survive the power cut that may follow.
pub fn record(db: &Path, event: &DamageEvent) -> std::io::Result<()> {
    let path = marker(db);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
    writeln!(f, "{line}")?;
    f.sync_all()?;
    sync_dir(&path);
    Ok(())
}

/// Marks every damage event of `db` resolved: the marker is renamed (kept as a record) to
/// `NAME.damage.resolved-STAMP` with `how` appended. Returns that path, or None when there was
/// nothing to resolve.
pub fn resolve(db: &Path, how: &str) -> std::io::Result<Option<PathBuf>> {
    let path = marker(db);
    if !path.exists() {
        return Ok(None);
    }
    let done = with_suffix(
        &path,
        &format!(".resolved-{}", Timestamp::now().strftime("%Y%m%dT%H%M%SZ")),
    );
    {
        let mut f = fs::OpenOptions::new().append(true).open(&path)?;
        writeln!(
            f,
            "# resolved {}: {how}",
            Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC")
        )?;
        f.sync_all()?;
    }
    fs::rename(&path, &done)?;
    sync_dir(&done);
    Ok(Some(done))
}

pub(crate) fn sync_dir(path: &Path) {
    // Makes a rename or a new file durable; a failure only weakens durability.
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// What the files say before SQLite opens them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The database file does not start with SQLite's header (page 1 overwritten).
    pub header: Option<String>,
    /// Committed transactions in the write-ahead log that SQLite would not replay.
    pub wal: Option<String>,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
const WAL_HEADER: usize = 32;
const WAL_FRAME_HEADER: usize = 24;
const WAL_VERSION: u32 = 3_007_000;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ne32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`; the words
/// are big-endian when the header's magic says so, little-endian otherwise.
fn wal_checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s1, mut s2) = s;
    for pair in data.chunks_exact(8) {
        let word = |i: usize| {
            let b = [pair[i], pair[i + 1], pair[i + 2], pair[i + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        s1 = s1.wrapping_add(word(0)).wrapping_add(s2);
        s2 = s2.wrapping_add(word(4)).wrapping_add(s1);
    }
    (s1, s2)
}

/// The log as SQLite would read it.
#[derive(Debug, PartialEq, Eq)]
enum Wal {
    /// No log, or an empty one.
    Absent,
    /// The header is not a valid WAL header (garbage or overwritten).
    BadHeader,
    Valid {
        salts: [u8; 8],
        /// Frames up to and including the last valid commit frame: what SQLite replays.
        replayed: u32,
        /// Commit frames of this log's generation found after the first invalid frame.
        commits_after_damage: u32,
    },
}

fn read_wal(bytes: &[u8]) -> Wal {
    if bytes.is_empty() {
        return Wal::Absent;
    }
    if bytes.len() < WAL_HEADER {
        return Wal::BadHeader;
    }
    let magic = be32(bytes, 0);
    let page = be32(bytes, 8);
    let page = if page == 1 { 65_536 } else { page as usize };
    if magic & !1 != 0x377f_0682
        || be32(bytes, 4) != WAL_VERSION
        || !page.is_power_of_two()
        || !(512..=65_536).contains(&page)
    {
        return Wal::BadHeader;
    }
    let big = magic & 1 == 1;
    let header_sum = wal_checksum(big, &bytes[..24], (0, 0));
    if header_sum != (be32(bytes, 24), be32(bytes, 28)) {
        return Wal::BadHeader;
    }
    let mut salts = [0u8; 8];
    salts.copy_from_slice(&bytes[16..24]);
    let frame = WAL_FRAME_HEADER + page;
    let mut sum = header_sum;
    let (mut n, mut replayed, mut damaged, mut commits_after_damage) = (0u32, 0u32, false, 0u32);
    for f in bytes[WAL_HEADER..].chunks_exact(frame) {
        n += 1;
        let ours = f[8..16] == salts;
        let commit = be32(f, 4) != 0;
        if damaged {
            commits_after_damage += u32::from(ours && commit);
            continue;
        }
        let next = wal_checksum(big, &f[WAL_FRAME_HEADER..], wal_checksum(big, &f[..8], sum));
        if !ours || next != (be32(f, 16), be32(f, 20)) {
            // Frames of an older generation (a log reused after a checkpoint) end the valid
            // part normally; a frame of this generation that fails its checksum is damage
            // only if a later commit of this generation shows it had been committed.
            damaged = ours;
            if !ours {
                break;
            }
            continue;
        }
        sum = next;
        if commit {
            replayed = n;
        }
    }
    Wal::Valid {
        salts,
        replayed,
        commits_after_damage,
    }
}

/// What the `-shm` (the WAL index, left behind when a process did not close cleanly) says was
/// committed: the log's salts and the frame count, and how many were already copied into the
/// database. None when there is no usable index (absent, being rebuilt, or torn).
fn read_shm(bytes: &[u8]) -> Option<([u8; 8], u32, u32)> {
    // Two copies of the 48-byte index header, then the checkpoint info (nBackfill first).
    if bytes.len() < 100 || bytes[..48] != bytes[48..96] {
        return None;
    }
    let h = &bytes[..48];
    if ne32(h, 0) != WAL_VERSION || h[12] != 1 {
        return None;
    }
    let mut salts = [0u8; 8];
    salts.copy_from_slice(&h[32..40]);
    Some((salts, ne32(h, 16), ne32(bytes, 96)))
}

/// Inspects `db`, its `-wal` and its `-shm` without SQLite. Never writes anything.
pub fn inspect(db: &Path) -> Inspection {
    let mut out = Inspection::default();
    if let Ok(mut f) = fs::File::open(db) {
        let mut head = [0u8; 16];
        let n = std::io::Read::read(&mut f, &mut head).unwrap_or(0);
        if n > 0 && (n < 16 || &head != SQLITE_MAGIC) {
            out.header = Some("the file does not start with an SQLite header (page 1 is overwritten or it is not a database)".into());
        }
    }
    let wal_path = with_suffix(db, "-wal");
    let wal = fs::read(&wal_path).map(|b| read_wal(&b));
    let shm = fs::read(with_suffix(db, "-shm"))
        .ok()
        .and_then(|b| read_shm(&b));
    let wal = match wal {
        Ok(w) => w,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Wal::Absent,
        Err(e) => {
            out.wal = Some(format!("the -wal cannot be read ({e})"));
            return out;
        }
    };
    // Frames the index says were committed and not yet copied into the database.
    let pending = shm.map(|(salts, mx, backfilled)| (salts, mx, mx.saturating_sub(backfilled)));
    out.wal = match (wal, pending) {
        (Wal::BadHeader, _) => Some(
            "the -wal is not a valid write-ahead log (garbage or overwritten): the transactions it held cannot be read".into(),
        ),
        (Wal::Absent, Some((_, mx, pending))) if pending > 0 => Some(format!(
            "the -wal is missing or empty but the -shm says it held {mx} committed frames, {pending} of them not yet in the database"
        )),
        (
            Wal::Valid {
                commits_after_damage,
                replayed,
                ..
            },
            _,
        ) if commits_after_damage >= 2 => Some(format!(
            "the -wal is damaged after frame {replayed}: {commits_after_damage} committed transactions after it cannot be read"
        )),
        (
            Wal::Valid {
                salts, replayed, ..
            },
            Some((s, mx, _)),
        ) if s == salts && replayed < mx => Some(format!(
            "the -wal holds {replayed} readable frames but the -shm says {mx} were committed"
        )),
        _ => None,
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// A database killed with its log full of committed transactions (not checkpointed, the
    /// connection leaked), as after a SIGKILL or power cut.
    fn hot_wal(dir: &Path) -> PathBuf {
        let db = dir.join("w.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);")
            .unwrap();
        for i in 0..20 {
            c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        std::mem::forget(c);
        db
    }

    #[test]
    fn a_healthy_log_and_a_clean_close_are_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let db = hot_wal(dir.path());
        assert_eq!(inspect(&db), Inspection::default());
        let wal = fs::read(with_suffix(&db, "-wal")).unwrap();
        let Wal::Valid { replayed, .. } = read_wal(&wal) else {
            panic!("not read as valid")
        };
        assert!(replayed > 20, "the create and 20 inserts: {replayed}");
        let clean = dir.path().join("c.db");
        drop(
            Connection::open(&clean)
                .unwrap()
                .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x);"),
        );
        assert_eq!(inspect(&clean), Inspection::default());
        assert_eq!(inspect(&dir.path().join("none.db")), Inspection::default());
    }

    /// Read-only commands leave an empty -wal and its -shm behind: not damage.
    #[test]
    fn what_a_read_only_command_leaves_is_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        drop(crate::store::Store::open(&db).unwrap());
        drop(
            crate::store::Store::open_read_only(&db)
                .unwrap()
                .schema_version(),
        );
        assert!(
            with_suffix(&db, "-shm").exists(),
            "the case this test is about"
        );
        assert_eq!(inspect(&db), Inspection::default());
    }

    #[test]
    fn garbage_missing_and_truncated_logs_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let db = hot_wal(dir.path());
        let wal_path = with_suffix(&db, "-wal");
        let good = fs::read(&wal_path).unwrap();

        fs::write(&wal_path, vec![0x5a; good.len()]).unwrap();
        assert!(inspect(&db).wal.unwrap().contains("not a valid"));

        // Cut to half: the -shm still counts every committed frame.
        fs::write(&wal_path, &good[..good.len() / 2]).unwrap();
        let msg = inspect(&db).wal.unwrap();
        assert!(
            msg.contains("-shm says") && msg.contains("were committed"),
            "{msg}"
        );

        // One flipped byte in an early frame: later commits show it was committed.
        let mut flipped = good.clone();
        flipped[WAL_HEADER + WAL_FRAME_HEADER + 100] ^= 0xff;
        fs::write(&wal_path, &flipped).unwrap();
        assert!(inspect(&db).wal.unwrap().contains("damaged after frame"));

        fs::remove_file(&wal_path).unwrap();
        assert!(inspect(&db).wal.unwrap().contains("missing"));
        assert_eq!(inspect(&db).header, None);
    }

    #[test]
    fn an_overwritten_first_page_is_seen_without_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        fs::write(&db, vec![0x17; 8192]).unwrap();
        assert!(inspect(&db).header.is_some());
    }

    #[test]
    fn events_are_recorded_listed_and_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        assert!(unresolved(&db).is_empty());
        let e = DamageEvent {
            at: 1_767_225_600,
            kind: "pages".into(),
            detail: "page 1".into(),
            kept: vec![dir.path().join("x.db.corrupt-1")],
        };
        record(&db, &e).unwrap();
        record(&db, &e).unwrap();
        assert_eq!(unresolved(&db), vec![e.clone(), e.clone()]);
        assert!(e.summary().contains("2026-01-01 00:00 UTC") && e.summary().contains("corrupt-1"));
        let done = resolve(&db, "dismissed").unwrap().unwrap();
        assert!(unresolved(&db).is_empty());
        assert!(fs::read_to_string(done).unwrap().contains("dismissed"));
        assert_eq!(resolve(&db, "again").unwrap(), None);
    }
}
