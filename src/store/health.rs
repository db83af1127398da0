//! The storage health state: whether flushes are being written, why not, what is waiting in
//! memory, and what happened to the database file (moved aside, backed up). The daemon records
//! it; the health page and the alert engine read snapshots of it.
//!
//! A plain shared struct behind a std `Mutex`: updates are a few field writes once per flush
//! interval, never held across I/O or `.await`, and never taken on the packet path.
use jiff::Timestamp;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// What the storage side last reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageHealth {
    /// When a flush last reached the database.
    pub last_flush_ok: Option<Timestamp>,
    /// The first failed flush of the current run of failures (None while flushes succeed).
    pub failing_since: Option<Timestamp>,
    pub consecutive_failures: u32,
    /// The last flush error, as shown to a person.
    pub last_error: Option<String>,
    /// The last failure was "no space left on the filesystem of the database".
    pub disk_full: bool,
    /// (device, minute) rows waiting in memory to be written.
    pub pending_rows: usize,
    /// Minute rows merged into coarser rows to keep the pending buffer bounded (bytes kept,
    /// minute detail lost).
    pub folded_rows: u64,
    /// A damaged database found at start, moved aside to this path.
    pub moved_aside: Option<PathBuf>,
    /// Damage found at start and not yet resolved by an admin (`NAME.damage`, re-read at each
    /// maintenance round, so a dismissal from the shell reaches the alert).
    pub damage: Vec<super::damage::DamageEvent>,
    pub last_maintenance: Option<Timestamp>,
    pub last_backup: Option<(Timestamp, PathBuf)>,
    pub last_backup_error: Option<String>,
}

/// A cheap, cloneable handle on the shared [`StorageHealth`].
#[derive(Clone, Debug, Default)]
pub struct SharedHealth(Arc<Mutex<StorageHealth>>);

impl SharedHealth {
    pub fn new() -> SharedHealth {
        SharedHealth::default()
    }

    pub fn snapshot(&self) -> StorageHealth {
        // A panic while holding the lock leaves plain data behind, still worth reading.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut StorageHealth)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Re-reads the unresolved damage events of `db`.
    pub fn read_damage(&self, db: &std::path::Path) {
        let events = super::damage::unresolved(db);
        self.update(|h| {
            h.moved_aside = events
                .last()
                .and_then(|e| e.kept_database().map(PathBuf::from));
            h.damage = events;
        });
    }

    /// Records the outcome of one flush.
    pub fn record_flush(
        &self,
        result: Result<(), (String, bool)>,
        pending_rows: usize,
        folded_rows: u64,
    ) {
        let now = Timestamp::now();
        self.update(|h| {
            h.pending_rows = pending_rows;
            h.folded_rows = folded_rows;
            match result {
                Ok(()) => {
                    h.last_flush_ok = Some(now);
                    h.failing_since = None;
                    h.consecutive_failures = 0;
                    h.disk_full = false;
                }
                Err((message, disk_full)) => {
                    h.failing_since.get_or_insert(now);
                    h.consecutive_failures += 1;
                    h.last_error = Some(message);
                    h.disk_full = disk_full;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_accumulate_and_a_success_clears_them() {
        let h = SharedHealth::new();
        h.record_flush(Err(("no space".into(), true)), 10, 0);
        h.record_flush(Err(("no space".into(), true)), 20, 5);
        let s = h.snapshot();
        assert_eq!(s.consecutive_failures, 2);
        assert!(s.disk_full && s.failing_since.is_some() && s.last_flush_ok.is_none());
        assert_eq!((s.pending_rows, s.folded_rows), (20, 5));
        h.clone().record_flush(Ok(()), 0, 5);
        let s = h.snapshot();
        assert_eq!(s.consecutive_failures, 0);
        assert!(!s.disk_full && s.failing_since.is_none() && s.last_flush_ok.is_some());
        assert_eq!(
            s.last_error.as_deref(),
            Some("no space"),
            "kept for the record"
        );
    }
}
