//! The one flush path: a meter delta becomes minute rows (gateway resolved, "other" traffic under
//! [`crate::store::query::OTHER`], filed by the clock rule of [`Stamping`]), and each flush
//! interval's rows go to the store as one transaction; whatever could not be written stays
//! pending, merged with later deltas, until it is. The daemon, the demo and replay all flush
//! through [`Flusher::flush_gated`] (or [`Flusher::flush_delta`]).
//!
//! It owns the writing [`Store`] and the pending buffer. It never drops counts: a failed write
//! leaves everything pending and returns the error for the caller to log; the next call retries.
//! It never touches the meter itself or the packet path (the caller drains the meter and hands
//! the delta over), and it never sleeps or schedules: the interval timer belongs to the run.
use crate::clock::ClockGate;
use crate::meter::Delta;
use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};
use crate::store::batch::WriteQueue;
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What one successful flush wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushStats {
    /// (device, minute) usage rows written, including rows carried over from failed flushes.
    pub rows: usize,
    /// Devices whose sightings were written.
    pub devices: usize,
    /// The background writers' queued writes committed with it ([`crate::store::batch`]).
    pub queued: usize,
    /// Time spent merging and writing (the budget in BENCHMARKS.md is 20 ms for 1,000 devices).
    pub duration: Duration,
}

/// Default bound on pending (device, minute) rows: about 100 bytes each in the map, so at most
/// ~5 MB while the database refuses writes (the memory budget in BENCHMARKS.md allows 40 MB in all). A household of 200
/// devices reaches it after about 4 hours of outage; folding then stretches that to days.
pub const DEFAULT_MAX_PENDING_ROWS: usize = 50_000;

/// Folding granularity: every UTC offset in use is a whole multiple of 15 minutes, so a
/// 15-minute block never straddles a local hour, day or month boundary.
const FOLD_SECS: i64 = 15 * 60;

/// Owns the store and the counts not yet stored.
///
/// Pending data grows only while the database refuses writes, by one row per active device
/// and minute. It is bounded by `max_pending` rows: past it, pending minutes are folded into
/// their 15-minute block, and if that is not enough each device's rows into one row at its
/// earliest pending block. Bytes are never dropped; only minute detail is lost (counted in
/// [`Flusher::folded_rows`]).
#[derive(Debug)]
pub struct Flusher {
    store: Store,
    usage: HashMap<(MacAddr, i64), Counts>,
    seen: HashMap<MacAddr, Sighting>,
    max_pending: usize,
    folded: u64,
    committed: Counts,
    /// The background writers' rows, written in each flush's transaction.
    queue: WriteQueue,
}

impl Flusher {
    pub fn new(store: Store) -> Flusher {
        Flusher::with_max_pending(store, DEFAULT_MAX_PENDING_ROWS)
    }

    pub fn with_max_pending(store: Store, max_pending: usize) -> Flusher {
        Flusher {
            store,
            usage: HashMap::new(),
            seen: HashMap::new(),
            max_pending: max_pending.max(1),
            folded: 0,
            committed: Counts::default(),
            queue: WriteQueue::new(),
        }
    }

    /// Keeps the pending buffer within `max_pending` rows without losing a byte.
    fn fold_pending(&mut self) {
        if self.usage.len() <= self.max_pending {
            return;
        }
        let before = self.usage.len();
        let blocks: HashMap<(MacAddr, i64), Counts> =
            self.usage
                .drain()
                .fold(HashMap::new(), |mut acc, ((mac, m), c)| {
                    acc.entry((mac, m - m.rem_euclid(FOLD_SECS)))
                        .or_default()
                        .add(&c);
                    acc
                });
        self.usage = blocks;
        if self.usage.len() > self.max_pending {
            let mut per_device: HashMap<MacAddr, (i64, Counts)> = HashMap::new();
            for ((mac, m), c) in self.usage.drain() {
                let e = per_device.entry(mac).or_insert((m, Counts::default()));
                e.0 = e.0.min(m);
                e.1.add(&c);
            }
            self.usage = per_device
                .into_iter()
                .map(|(mac, (m, c))| ((mac, m), c))
                .collect();
        }
        self.folded += (before - self.usage.len()) as u64;
        tracing::warn!(
            before,
            after = self.usage.len(),
            max_pending = self.max_pending,
            "the database has refused writes for long: unsaved minutes were merged into coarser rows to bound memory (no bytes lost, minute detail is)"
        );
    }

    /// Everything this flusher has committed since it was created (each frame once, as sent).
    pub fn committed(&self) -> Counts {
        self.committed
    }

    /// Pending minute rows merged away by folding since start.
    pub fn folded_rows(&self) -> u64 {
        self.folded
    }

    /// Where the background writers put their rows for the next flush's transaction (one
    /// commit per flush interval for all of them: see [`crate::store::batch`]).
    pub fn queue(&self) -> WriteQueue {
        self.queue.clone()
    }

    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Merges this interval's deltas into the pending buffer, then writes all of it in one
    /// transaction. On success the buffer is empty; on failure it holds everything, the error
    /// is returned, and the next call writes it together with the next deltas.
    pub fn flush(
        &mut self,
        usage: Vec<MinuteUsage>,
        seen: Vec<Sighting>,
    ) -> Result<FlushStats, StoreError> {
        let started = Instant::now();
        for u in usage {
            self.usage
                .entry((u.mac, u.minute))
                .or_default()
                .add(&u.counts);
        }
        for s in seen {
            self.seen
                .entry(s.mac)
                .and_modify(|p| {
                    p.first_seen = p.first_seen.min(s.first_seen);
                    p.last_seen = p.last_seen.max(s.last_seen);
                    // Sticky, as in the store (see `store::devices`).
                    p.is_gateway |= s.is_gateway;
                })
                .or_insert(s);
        }
        if self.usage.is_empty() && self.seen.is_empty() && self.queue.is_empty() {
            return Ok(FlushStats {
                rows: 0,
                devices: 0,
                queued: 0,
                duration: started.elapsed(),
            });
        }
        let mut rows: Vec<MinuteUsage> = self
            .usage
            .iter()
            .map(|(&(mac, minute), &counts)| MinuteUsage {
                mac,
                minute,
                counts,
            })
            .collect();
        // Stable order keeps writes reproducible and lets SQLite walk its indexes forward.
        rows.sort_unstable_by_key(|u| (u.mac, u.minute));
        let mut sightings: Vec<Sighting> = self.seen.values().copied().collect();
        sightings.sort_unstable_by_key(|s| s.mac);
        let queued = match self
            .store
            .write_flush_queued(&rows, &sightings, Some(&self.queue))
        {
            Ok(q) => q,
            Err(e) => {
                self.fold_pending();
                return Err(e);
            }
        };
        self.usage.clear();
        self.seen.clear();
        for u in &rows {
            self.committed.add(&u.counts);
        }
        let stats = FlushStats {
            rows: rows.len(),
            devices: sightings.len(),
            queued: queued.written,
            duration: started.elapsed(),
        };
        // The running totals let a fault-injection run (reliability/faults.py) check that a
        // database killed at any moment holds exactly what the last logged commit says.
        tracing::debug!(
            rows = stats.rows,
            devices = stats.devices,
            queued = stats.queued,
            ms = stats.duration.as_secs_f64() * 1e3,
            committed_frames = self.committed.frames_sent,
            committed_bytes = self.committed.bytes_sent,
            "flush written"
        );
        Ok(stats)
    }

    /// (device, minute) usage rows waiting to be written.
    pub fn pending_len(&self) -> usize {
        self.usage.len()
    }

    /// Device sightings waiting to be written.
    pub fn pending_devices(&self) -> usize {
        self.seen.len()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Which clock decides the minute a delta is filed under (see [`crate::clock`]).
#[derive(Clone, Copy, Debug)]
pub enum Stamping {
    /// The frames' stamps, as they are (synthetic traffic, tests).
    AsStamped,
    /// Live: the current minute when the wall clock is trusted, `None` while it is not.
    Live(Option<i64>),
    /// A capture file: its own stamps decide which are trusted.
    File,
}

/// Delta → rows: what the daemon, the demo and replay all flush through.
impl Flusher {
    /// Resolves a delta against its gateway (inferring one from the delta if none is known yet) and
    /// hands it to the flusher, "other" traffic included under [`crate::store::query::OTHER`].
    pub fn flush_delta(
        &mut self,
        delta: &Delta,
        interval: Duration,
    ) -> Result<FlushStats, StoreError> {
        self.flush_gated(
            delta,
            interval,
            &mut ClockGate::default(),
            Stamping::AsStamped,
        )
    }

    /// [`Flusher::flush_delta`], with the rows stamped before the clock was trusted held in `gate` and filed
    /// by `stamping`'s rule.
    pub fn flush_gated(
        &mut self,
        delta: &Delta,
        interval: Duration,
        gate: &mut ClockGate,
        stamping: Stamping,
    ) -> Result<FlushStats, StoreError> {
        let gateway = delta.gateway.or_else(|| delta.infer_gateway());
        let (mut usage, other) = delta.minute_usage(gateway);
        usage.extend(other.into_iter().map(|(minute, o)| MinuteUsage {
            mac: crate::store::query::OTHER,
            minute,
            counts: o.counts,
        }));
        let seen = delta.sightings(gateway);
        let (usage, seen) = match stamping {
            Stamping::AsStamped => (usage, seen),
            Stamping::Live(trusted) => gate.admit_live(usage, seen, trusted),
            Stamping::File => gate.admit_stamped(usage, seen),
        };
        // Passive latency rows carry the frames' own minutes; while the clock is not trusted
        // those minutes are wrong, and a latency sample is not worth holding back for later.
        // They ride in the flush's own commit (one commit per interval, docs/DURABILITY.md).
        let passive = !delta.passive.is_empty() || !delta.passive_devices.is_empty();
        if passive && !matches!(stamping, Stamping::Live(None)) {
            let (rows, devices) = (delta.passive.clone(), delta.passive_devices.clone());
            self.queue.push("passive latency", move |sp, path| {
                crate::store::internet::write_passive_in(sp, path, &rows, &devices)
            });
        }
        // Remote endpoints (issue 29) likewise carry the frames' minutes.
        if delta.remote_endpoints && !matches!(stamping, Stamping::Live(None)) {
            let rows = delta.remote_usage(gateway);
            if !rows.is_empty() {
                self.queue.push("remote endpoints", move |sp, path| {
                    crate::store::remotes::write_remotes_in(sp, path, &rows)
                });
            }
        }
        let stats = self.flush(usage, seen)?;
        if stats.duration > interval {
            tracing::warn!(
                took_ms = stats.duration.as_millis() as u64,
                interval_secs = interval.as_secs(),
                "a flush took longer than the flush interval: the database is slow (SD card?)"
            );
        }
        tracing::debug!(
            rows = stats.rows,
            devices = stats.devices,
            took_us = stats.duration.as_micros() as u64,
            "flushed"
        );
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use rusqlite::Connection;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    fn bytes(n: u64) -> Counts {
        Counts {
            frames_sent: 1,
            bytes_sent: n,
            ..Default::default()
        }
    }

    fn usage(m: u8, minute: i64, n: u64) -> MinuteUsage {
        MinuteUsage {
            mac: mac(m),
            minute,
            counts: bytes(n),
        }
    }

    fn seen(m: u8, first: i64, last: i64) -> Sighting {
        Sighting {
            mac: mac(m),
            first_seen: first,
            last_seen: last,
            is_gateway: false,
        }
    }

    fn flusher(dir: &tempfile::TempDir, busy: Duration) -> Flusher {
        let store = Store::open_with(
            &dir.path().join("f.db"),
            StoreOptions { busy_timeout: busy },
        )
        .unwrap();
        Flusher::new(store)
    }

    #[test]
    fn merges_within_a_flush_and_clears_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = flusher(&dir, Duration::from_secs(5));
        let stats = f
            .flush(
                vec![
                    usage(1, 60, 10),
                    usage(1, 60, 5),
                    usage(2, 60, 7),
                    usage(1, 120, 1),
                ],
                vec![seen(1, 70, 80), seen(1, 65, 75), seen(2, 61, 62)],
            )
            .unwrap();
        assert_eq!((stats.rows, stats.devices), (3, 2));
        assert_eq!((f.pending_len(), f.pending_devices()), (0, 0));
        let totals = f.store().device_totals().unwrap();
        assert_eq!(totals[0].counts.bytes_sent, 16);
        assert_eq!(totals[0].counts.frames_sent, 3);
        assert_eq!((totals[0].first_seen_ns, totals[0].last_seen_ns), (65, 80));
        let nothing = f.flush(Vec::new(), Vec::new()).unwrap();
        assert_eq!((nothing.rows, nothing.devices), (0, 0));
    }

    /// A discovery batch queued by another thread and the flush's own rows land in ONE commit
    /// (counted from the WAL's commit frames); a flush with no counts still commits the queue.
    #[test]
    fn queued_discovery_rows_and_the_flush_share_one_commit() {
        use crate::store::discovery::{MacFacts, write_discovery_in};
        let dir = tempfile::tempdir().unwrap();
        let mut f = flusher(&dir, Duration::from_secs(5));
        f.flush(vec![usage(9, 0, 1)], vec![seen(9, 1, 2)]).unwrap();
        let db = dir.path().join("f.db");
        let commits = crate::store::batch::tests::wal_commits(&db);
        let facts = |m: u8, host: &str| MacFacts {
            mac: mac(m),
            spans: vec![(60_000_000_000, 61_000_000_000)],
            hostnames: vec![("dhcp", host.to_string(), 60_000_000_000, 61_000_000_000)],
            ..MacFacts::default()
        };
        let queue = f.queue();
        let batch = vec![facts(1, "kitchen-tv"), facts(3, "printer")];
        std::thread::spawn(move || {
            queue.push("discovery", move |sp, path| {
                write_discovery_in(sp, path, &batch, 60_000_000_000, |_| None).map(|_| ())
            })
        })
        .join()
        .unwrap();
        let stats = f
            .flush(
                vec![usage(1, 60, 10), usage(2, 60, 5)],
                vec![seen(1, 60, 61)],
            )
            .unwrap();
        assert_eq!((stats.rows, stats.queued), (2, 1));
        assert_eq!(crate::store::batch::tests::wal_commits(&db) - commits, 1);
        let devices = f.store().list_devices().unwrap();
        let host = |m: u8| {
            devices.iter().find(|d| d.mac == mac(m)).map(|d| {
                d.hostnames
                    .iter()
                    .map(|h| h.name.clone())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(host(1), Some(vec!["kitchen-tv".to_string()]));
        assert_eq!(host(3), Some(vec!["printer".to_string()]));
        // Nothing counted, something queued: still written, in one commit.
        let later = vec![facts(4, "phone")];
        f.queue().push("discovery", move |sp, path| {
            write_discovery_in(sp, path, &later, 60_000_000_000, |_| None).map(|_| ())
        });
        assert_eq!(f.flush(Vec::new(), Vec::new()).unwrap().queued, 1);
        assert_eq!(crate::store::batch::tests::wal_commits(&db) - commits, 2);
        // Nothing at all: no commit.
        f.flush(Vec::new(), Vec::new()).unwrap();
        assert_eq!(crate::store::batch::tests::wal_commits(&db) - commits, 2);
    }

    /// A real lock held by a second connection makes the flush fail; everything stays pending,
    /// and once the lock is gone the next flush writes it all exactly once.
    #[test]
    fn locked_database_keeps_everything_pending_then_writes_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = flusher(&dir, Duration::from_millis(50));
        f.flush(vec![usage(1, 0, 100)], vec![seen(1, 5, 6)])
            .unwrap();

        let blocker = Connection::open(dir.path().join("f.db")).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

        let err = f
            .flush(vec![usage(1, 0, 1), usage(2, 60, 2)], vec![seen(2, 61, 62)])
            .unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
        assert!(
            err.to_string().contains("f.db") && err.to_string().contains("locked"),
            "{err}"
        );
        assert_eq!((f.pending_len(), f.pending_devices()), (2, 1));

        let err = f
            .flush(
                vec![usage(2, 60, 3), usage(3, 120, 4)],
                vec![seen(3, 121, 122)],
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
        assert_eq!(
            (f.pending_len(), f.pending_devices()),
            (3, 2),
            "(2,60) merged, (3,120) added"
        );
        assert_eq!(
            f.store().device_totals().unwrap().len(),
            1,
            "nothing half-written"
        );

        blocker.execute_batch("ROLLBACK").unwrap();
        let stats = f.flush(Vec::new(), Vec::new()).unwrap();
        assert_eq!((stats.rows, stats.devices), (3, 2));
        assert_eq!((f.pending_len(), f.pending_devices()), (0, 0));

        let got: Vec<(MacAddr, u64, u64)> = f
            .store()
            .device_totals()
            .unwrap()
            .into_iter()
            .map(|t| (t.mac, t.counts.bytes_sent, t.counts.frames_sent))
            .collect();
        assert_eq!(got, [(mac(1), 101, 2), (mac(2), 5, 2), (mac(3), 4, 1)]);

        assert_eq!(
            (f.committed().bytes_sent, f.committed().frames_sent),
            (110, 5),
            "a failed flush commits nothing; the retry counts each byte once"
        );

        // And nothing is written twice by a later flush.
        f.flush(Vec::new(), Vec::new()).unwrap();
        assert_eq!(f.store().device_totals().unwrap()[1].counts.bytes_sent, 5);
    }

    /// A write lock held across many minutes: the buffer stays within its bound by folding,
    /// and every byte is written once the lock goes.
    #[test]
    fn pending_rows_are_bounded_by_folding_without_losing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            &dir.path().join("f.db"),
            StoreOptions {
                busy_timeout: Duration::from_millis(10),
            },
        )
        .unwrap();
        let mut f = Flusher::with_max_pending(store, 100);
        let blocker = Connection::open(dir.path().join("f.db")).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let mut want = 0;
        for minute in 0..120 {
            let usage: Vec<MinuteUsage> = (1..=5)
                .map(|m| {
                    want += u64::from(m) * 7;
                    usage(m, minute * 60, u64::from(m) * 7)
                })
                .collect();
            assert!(f.flush(usage, Vec::new()).is_err());
            assert!(f.pending_len() <= 100, "{}", f.pending_len());
        }
        assert!(f.folded_rows() > 0);
        blocker.execute_batch("ROLLBACK").unwrap();
        f.flush(Vec::new(), Vec::new()).unwrap();
        let got: u64 = f
            .store()
            .device_totals()
            .unwrap()
            .iter()
            .map(|t| t.counts.bytes_sent)
            .sum();
        assert_eq!(got, want);
    }

    /// The flush budget (BENCHMARKS.md) through the flusher (merge, sort, one transaction). Prints, never
    /// asserts on time: `cargo test --release --lib flush_timing -- --nocapture`.
    #[test]
    fn flusher_flush_timing_1000_devices() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = flusher(&dir, Duration::from_secs(5));
        let mut ms = Vec::new();
        for round in 0..12i64 {
            let minute = 28_333_320 * 60 + (round / 6) * 60;
            let usage: Vec<MinuteUsage> = (0..1000u64)
                .map(|i| MinuteUsage {
                    mac: MacAddr::from_u64(0x0200_0000_0000 | i),
                    minute,
                    counts: bytes(i + 1),
                })
                .collect();
            let seen: Vec<Sighting> = usage
                .iter()
                .map(|u| Sighting {
                    mac: u.mac,
                    first_seen: minute * 1_000_000_000,
                    last_seen: minute * 1_000_000_000 + 1,
                    is_gateway: false,
                })
                .collect();
            let stats = f.flush(usage, seen).unwrap();
            assert_eq!((stats.rows, stats.devices), (1000, 1000));
            ms.push(format!("{:.2}", stats.duration.as_secs_f64() * 1e3));
        }
        assert_eq!(
            f.store().device_totals().unwrap()[9].counts.bytes_sent,
            10 * 12
        );
        println!(
            "Flusher::flush 1000 devices x 1 minute, 12 flushes (ms): {}",
            ms.join(" ")
        );
    }
}
