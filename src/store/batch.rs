//! The background writers' rows, handed to the flusher's transaction (docs/DURABILITY.md).
//!
//! On an SD card a write costs its commit, not its bytes: each commit's fsync also commits the
//! ext4 journal and writes back the WAL index, about 38 KB whatever the commit holds
//! (BENCHMARKS.md, "SD-card writes"). So the writers that run beside the flusher (discovery's
//! steady batches, the router's counters, the internet probes' minutes) do not commit on clocks
//! of their own: they push a write into the [`WriteQueue`] the flusher owns, and the flusher runs
//! every queued write inside its own transaction, each in a savepoint: one commit per flush
//! interval for all of them.
//!
//! What a queued write may lose in a crash is therefore what the flush may lose: at most one
//! flush interval. A write is kept until a commit has it: when the flush transaction fails, every
//! write stays queued, in order, and runs again at the next flush. A write is therefore run with
//! `FnMut` and must be repeatable (it reads its rows, it does not consume them): each failed run
//! leaves the database as if it had not run. A write that fails on its own (a constraint, not the
//! database) has its savepoint rolled back while the rest of the flush commits, and is tried again
//! at the next flushes, up to [`MAX_ATTEMPTS`] times.

use super::{Store, StoreError, sql_err};
use rusqlite::{Savepoint, Transaction};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A queued write: runs inside a savepoint of the flusher's transaction.
pub type Write = Box<dyn FnMut(&mut Savepoint<'_>, &Path) -> Result<(), StoreError> + Send>;

/// Called once the transaction that ran a write has committed.
pub type Committed = Box<dyn FnOnce() + Send>;

/// Writes held while the database refuses them (a day of 10-second router polls is 8,640; a
/// discovery batch per interval is 288): past this the oldest is dropped, with a warning.
pub const MAX_QUEUED: usize = 4096;

/// A write failing on its own this many flushes in a row is dropped (logged): it would fail
/// forever, and nothing else waits for it.
pub const MAX_ATTEMPTS: u32 = 3;

struct Queued {
    /// Which writer pushed it, for the logs.
    from: &'static str,
    write: Write,
    committed: Option<Committed>,
    attempts: u32,
}

#[derive(Default)]
struct Inner {
    writes: VecDeque<Queued>,
    dropped: u64,
}

/// Writes waiting for the next flush. Cloned to every writer; the flusher drains it.
#[derive(Clone, Default)]
pub struct WriteQueue {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for WriteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteQueue")
            .field("len", &self.len())
            .finish()
    }
}

/// What the queued part of one commit did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueuedStats {
    /// Writes committed.
    pub written: usize,
    /// Writes that failed on their own and wait for the next flush (or were dropped).
    pub failed: usize,
}

impl WriteQueue {
    pub fn new() -> WriteQueue {
        WriteQueue::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A writer that panicked while pushing leaves a whole queue behind: keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `write` for the next flush's transaction.
    pub fn push(
        &self,
        from: &'static str,
        write: impl FnMut(&mut Savepoint<'_>, &Path) -> Result<(), StoreError> + Send + 'static,
    ) {
        self.push_inner(from, Box::new(write), None);
    }

    /// [`WriteQueue::push`], with `committed` called (on the flusher's thread) once a commit has
    /// the write: for a writer that must know what is stored (discovery's newcomers).
    pub fn push_then(
        &self,
        from: &'static str,
        write: impl FnMut(&mut Savepoint<'_>, &Path) -> Result<(), StoreError> + Send + 'static,
        committed: impl FnOnce() + Send + 'static,
    ) {
        self.push_inner(from, Box::new(write), Some(Box::new(committed)));
    }

    fn push_inner(&self, from: &'static str, write: Write, committed: Option<Committed>) {
        let mut q = self.lock();
        if q.writes.len() >= MAX_QUEUED
            && let Some(old) = q.writes.pop_front()
        {
            q.dropped += 1;
            tracing::warn!(
                from = old.from,
                max = MAX_QUEUED,
                "the database has refused writes for long: the oldest queued write was dropped"
            );
        }
        q.writes.push_back(Queued {
            from,
            write,
            committed,
            attempts: 0,
        });
    }

    /// Writes waiting for the next flush.
    pub fn len(&self) -> usize {
        self.lock().writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn take(&self) -> Vec<Queued> {
        self.lock().writes.drain(..).collect()
    }

    /// Puts writes back ahead of those pushed since they were taken, so order is kept.
    fn requeue(&self, writes: Vec<Queued>) {
        let mut q = self.lock();
        for w in writes.into_iter().rev() {
            q.writes.push_front(w);
        }
        while q.writes.len() > MAX_QUEUED {
            q.writes.pop_front();
            q.dropped += 1;
        }
    }
}

/// Runs the queued `writes` in `tx`, each in its own savepoint; returns which succeeded. An error
/// that ended the whole transaction (SQLite rolls it back itself on a full disk or an I/O error)
/// is returned: nothing of this transaction can commit then.
fn run_in(
    tx: &mut Transaction<'_>,
    path: &Path,
    writes: &mut [Queued],
) -> Result<Vec<bool>, StoreError> {
    let mut ok = Vec::with_capacity(writes.len());
    for w in writes.iter_mut() {
        let mut sp = tx
            .savepoint()
            .map_err(sql_err(path, "running a queued write"))?;
        match (w.write)(&mut sp, path) {
            Ok(()) => {
                sp.commit()
                    .map_err(sql_err(path, "running a queued write"))?;
                ok.push(true);
            }
            Err(e) => {
                // Dropping the savepoint rolls the write back; the rest goes on.
                drop(sp);
                if tx.is_autocommit() {
                    return Err(e);
                }
                tracing::warn!(from = w.from, error = %e, attempts = w.attempts + 1, "a queued write failed; the rest of the flush is written");
                ok.push(false);
            }
        }
    }
    Ok(ok)
}

impl Store {
    /// Runs the queue's writes inside `tx` (the flusher's open transaction), commits it with
    /// `commit`, and only then tells the writers. If anything fails before the commit is done,
    /// every write is back in the queue, in order, and the error is returned.
    pub(super) fn with_queued<'c>(
        path: &Path,
        mut tx: Transaction<'c>,
        queue: Option<&WriteQueue>,
    ) -> Result<QueuedStats, StoreError> {
        let Some(queue) = queue else {
            tx.commit().map_err(sql_err(path, "committing the flush"))?;
            return Ok(QueuedStats::default());
        };
        let mut writes = queue.take();
        let ok = match run_in(&mut tx, path, &mut writes).and_then(|ok| {
            tx.commit()
                .map_err(sql_err(path, "committing the flush"))
                .map(|()| ok)
        }) {
            Ok(ok) => ok,
            Err(e) => {
                queue.requeue(writes);
                return Err(e);
            }
        };
        let mut stats = QueuedStats::default();
        let mut again = Vec::new();
        for (mut w, ok) in writes.into_iter().zip(ok) {
            if ok {
                stats.written += 1;
                if let Some(done) = w.committed.take() {
                    done();
                }
                continue;
            }
            stats.failed += 1;
            w.attempts += 1;
            if w.attempts < MAX_ATTEMPTS {
                again.push(w);
            } else {
                tracing::error!(
                    from = w.from,
                    attempts = w.attempts,
                    "a queued write kept failing and was dropped (report it as a lanmeter bug)"
                );
            }
        }
        queue.requeue(again);
        Ok(stats)
    }

    /// Commits whatever is queued, on its own (a clean stop with no counts left to flush, and
    /// tests): one transaction, or nothing at all when the queue is empty.
    pub fn commit_queued(&mut self, queue: &WriteQueue) -> Result<QueuedStats, StoreError> {
        if queue.is_empty() {
            return Ok(QueuedStats::default());
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(&path, "starting the flush transaction"))?;
        Store::with_queued(&path, tx, Some(queue))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Commits in a WAL file: frames whose header carries the database size (a commit frame)
    /// and the salts of the WAL header (frames of an earlier cycle do not count). SQLite's own
    /// format, read from the file, so the count cannot come from lanmeter's bookkeeping.
    pub(crate) fn wal_commits(db: &Path) -> usize {
        let wal = std::fs::read(db.with_extension("db-wal")).unwrap_or_default();
        if wal.len() < 32 {
            return 0;
        }
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let page = be32(&wal[8..]) as usize;
        let salts = &wal[16..24];
        let mut commits = 0;
        let mut at = 32;
        while at + 24 + page <= wal.len() {
            let h = &wal[at..at + 24];
            if &h[8..16] != salts {
                break;
            }
            if be32(&h[4..]) != 0 {
                commits += 1;
            }
            at += 24 + page;
        }
        commits
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("q.db")).unwrap();
        store
            .conn
            .execute_batch("CREATE TABLE t(k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        (dir, store)
    }

    fn put(
        k: &'static str,
        v: i64,
    ) -> impl FnMut(&mut Savepoint<'_>, &Path) -> Result<(), StoreError> {
        move |sp, path| {
            sp.execute(
                "INSERT INTO t(k, v) VALUES (?1, ?2)",
                rusqlite::params![k, v],
            )
            .map(|_| ())
            .map_err(sql_err(path, "test write"))
        }
    }

    fn rows(s: &Store) -> Vec<(String, i64)> {
        s.conn
            .prepare("SELECT k, v FROM t ORDER BY k")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_queued_write_lands_in_one_commit_and_is_told_after_it() {
        let (dir, mut s) = open();
        let q = WriteQueue::new();
        let told = Arc::new(AtomicUsize::new(0));
        q.push("a", put("a", 1));
        let t = told.clone();
        q.push_then("b", put("b", 2), move || {
            t.fetch_add(1, Ordering::SeqCst);
        });
        q.push("c", put("c", 3));
        assert_eq!(q.len(), 3);
        let before = wal_commits(&dir.path().join("q.db"));
        let stats = s.commit_queued(&q).unwrap();
        assert_eq!(
            stats,
            QueuedStats {
                written: 3,
                failed: 0
            }
        );
        assert_eq!(
            wal_commits(&dir.path().join("q.db")) - before,
            1,
            "one commit for all"
        );
        assert_eq!(rows(&s).len(), 3);
        assert_eq!(told.load(Ordering::SeqCst), 1);
        assert!(q.is_empty());
        // Nothing queued: no transaction, no commit.
        s.commit_queued(&q).unwrap();
        assert_eq!(wal_commits(&dir.path().join("q.db")) - before, 1);
    }

    /// A database that refuses the commit (another connection holds the write lock) keeps every
    /// write queued, in order, with nobody told; the next flush writes each exactly once.
    #[test]
    fn a_refused_commit_keeps_every_write_queued_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let mut s = Store::open_with(
            &path,
            super::super::StoreOptions {
                busy_timeout: std::time::Duration::from_millis(20),
            },
        )
        .unwrap();
        s.conn
            .execute_batch("CREATE TABLE t(k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        let q = WriteQueue::new();
        let told = Arc::new(AtomicUsize::new(0));
        let t = told.clone();
        q.push_then("a", put("a", 1), move || {
            t.fetch_add(1, Ordering::SeqCst);
        });
        q.push("b", put("b", 2));
        let blocker = Store::open(&path).unwrap();
        blocker.hold_write_lock();
        let err = s.commit_queued(&q).unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
        assert_eq!((q.len(), told.load(Ordering::SeqCst)), (2, 0));
        // Pushed while the lock was held: it comes after the two kept.
        q.push("c", put("c", 3));
        drop(blocker);
        assert_eq!(s.commit_queued(&q).unwrap().written, 3);
        assert_eq!(
            rows(&s),
            [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]
        );
        assert_eq!(told.load(Ordering::SeqCst), 1);
    }

    /// A write that fails on its own (here a duplicate key) is rolled back alone: the others
    /// commit; it is tried again at the next flushes and dropped after MAX_ATTEMPTS.
    #[test]
    fn a_failing_write_is_rolled_back_alone_and_dropped_after_its_attempts() {
        let (_dir, mut s) = open();
        let q = WriteQueue::new();
        q.push("a", put("a", 1));
        q.push("dup", |sp: &mut Savepoint<'_>, path: &Path| {
            sp.execute("INSERT INTO t(k, v) VALUES ('x', 1)", [])
                .and_then(|_| sp.execute("INSERT INTO t(k, v) VALUES ('x', 2)", []))
                .map(|_| ())
                .map_err(sql_err(path, "test write"))
        });
        q.push("b", put("b", 2));
        let stats = s.commit_queued(&q).unwrap();
        assert_eq!(
            stats,
            QueuedStats {
                written: 2,
                failed: 1
            }
        );
        assert_eq!(
            rows(&s),
            [("a".into(), 1), ("b".into(), 2)],
            "no half of 'dup'"
        );
        for attempt in 2..=MAX_ATTEMPTS {
            assert_eq!(q.len(), 1, "kept for attempt {attempt}");
            assert_eq!(s.commit_queued(&q).unwrap().failed, 1);
        }
        assert!(q.is_empty(), "dropped after {MAX_ATTEMPTS} attempts");
    }

    #[test]
    fn a_full_queue_drops_its_oldest_write() {
        let q = WriteQueue::new();
        for _ in 0..MAX_QUEUED + 2 {
            q.push("a", put("a", 1));
        }
        assert_eq!((q.len(), q.dropped()), (MAX_QUEUED, 2));
    }
}
