//! Per-minute usage buckets: the flush write path and the reads that sum them.
//!
//! A minute's counts may arrive in several flushes (a minute spans six 10 s intervals), so
//! writes always ADD to an existing row; nothing here ever overwrites a counter.
use super::devices::{self, DeviceTotals};
use super::{Store, StoreError, rollup, sql_err};
use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};
use rusqlite::{TransactionBehavior, params};
use std::collections::HashMap;

static ADD_USAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO usage_minute (device_id, minute, {})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) {}",
        rollup::COUNTERS,
        rollup::add_on_conflict("minute, device_id", false)
    )
});

/// Sums per device first, in one pass over the usage table (its key leads with the minute,
/// so a per-device join would scan it once per device), then attaches the devices.
const DEVICE_TOTALS: &str = "
SELECT d.mac, d.first_seen_ns, d.last_seen_ns, d.is_gateway,
       coalesce(t.fs, 0), coalesce(t.fr, 0), coalesce(t.bs, 0), coalesce(t.br, 0),
       coalesce(t.iu, 0), coalesce(t.id, 0)
FROM devices d LEFT JOIN (
    SELECT device_id, sum(frames_sent) AS fs, sum(frames_received) AS fr,
           sum(bytes_sent) AS bs, sum(bytes_received) AS br,
           sum(internet_upload_bytes) AS iu, sum(internet_download_bytes) AS id
    FROM usage_minute GROUP BY device_id
) t ON t.device_id = d.id
ORDER BY d.mac";

const MINUTE_EXISTS: &str = "SELECT 1 FROM usage_minute WHERE minute = ?1 AND device_id = ?2";

/// Counters are u64 in memory and INTEGER (i64) in SQLite. 2^63 bytes is 9 EB, so a failed
/// conversion means a damaged value, reported as an error rather than wrapped.
fn to_sql_int(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn get_u64(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn add_usage(
    st: &mut rusqlite::Statement<'_>,
    id: i64,
    u: &MinuteUsage,
) -> rusqlite::Result<usize> {
    let c = &u.counts;
    st.execute(params![
        id,
        u.minute,
        to_sql_int(c.frames_sent)?,
        to_sql_int(c.frames_received)?,
        to_sql_int(c.bytes_sent)?,
        to_sql_int(c.bytes_received)?,
        to_sql_int(c.internet_upload_bytes)?,
        to_sql_int(c.internet_download_bytes)?,
    ])
}

/// Reads the six counters from columns `first..first + 6`, in `Counts` field order.
pub(super) fn counts_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    Ok(Counts {
        frames_sent: get_u64(row, first)?,
        frames_received: get_u64(row, first + 1)?,
        bytes_sent: get_u64(row, first + 2)?,
        bytes_received: get_u64(row, first + 3)?,
        internet_upload_bytes: get_u64(row, first + 4)?,
        internet_download_bytes: get_u64(row, first + 5)?,
    })
}

impl Store {
    /// Writes one flush interval as ONE transaction: sightings merged into devices, usage added
    /// to the minute rows (and, for a minute older than the rollup watermark, to the rollups). Either all of it is stored or none of it (the caller keeps the data
    /// and retries). Rows whose counts are all zero are skipped: they would add nothing.
    pub fn write_flush(
        &mut self,
        usage: &[MinuteUsage],
        seen: &[Sighting],
    ) -> Result<(), StoreError> {
        self.write_flush_queued(usage, seen, None).map(|_| ())
    }

    /// [`Store::write_flush`], with the background writers' queued rows (`queue`, see
    /// [`super::batch`]) in the same transaction: one commit for all of them.
    pub fn write_flush_queued(
        &mut self,
        usage: &[MinuteUsage],
        seen: &[Sighting],
        queue: Option<&super::batch::WriteQueue>,
    ) -> Result<super::batch::QueuedStats, StoreError> {
        let path = self.path.as_path();
        // IMMEDIATE takes the write lock up front, so a busy database fails here, before any
        // work, rather than at the first write or at commit.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(path, "starting the flush transaction"))?;
        // Read inside the transaction: a rollup by another connection cannot slip in between.
        let state = rollup::read_state(&tx).map_err(sql_err(path, "reading the history state"))?;
        let zone = match &state {
            Some(s) => Some(
                jiff::tz::TimeZone::get(&s.zone).map_err(|e| StoreError::Time {
                    path: path.to_path_buf(),
                    zone: s.zone.clone(),
                    at: 0,
                    detail: e.to_string(),
                })?,
            ),
            None => None,
        };
        let mut ids: HashMap<MacAddr, i64> = HashMap::with_capacity(seen.len());
        for s in seen {
            let id =
                devices::upsert_sighting(&tx, s).map_err(sql_err(path, "recording devices"))?;
            ids.insert(s.mac, id);
        }
        {
            let mut add = tx
                .prepare_cached(&ADD_USAGE)
                .map_err(sql_err(path, "preparing the usage write"))?;
            for u in usage.iter().filter(|u| !u.counts.is_zero()) {
                let id = match ids.get(&u.mac) {
                    Some(&id) => id,
                    None => {
                        let id = devices::ensure_device(
                            &tx,
                            u.mac,
                            u.minute.saturating_mul(1_000_000_000),
                        )
                        .map_err(sql_err(path, "recording devices"))?;
                        ids.insert(u.mac, id);
                        id
                    }
                };
                if let (Some(state), Some(tz)) = (&state, &zone)
                    && u.minute < state.hour_rolled
                {
                    let exists = tx
                        .prepare_cached(MINUTE_EXISTS)
                        .and_then(|mut st| st.exists(params![u.minute, id]))
                        .map_err(sql_err(path, "writing minute usage"))?;
                    rollup::write_through(&tx, path, state, tz, id, u, !exists)?;
                }
                add_usage(&mut add, id, u).map_err(sql_err(path, "writing minute usage"))?;
            }
        }
        Store::with_queued(path, tx, queue)
    }

    /// Every device with its counters summed over all stored minute rows, ordered by MAC. Once
    /// retention has deleted minutes this is only the recent history: use
    /// [`Store::usage_by_device`] for totals over every level.
    pub fn device_totals(&self) -> Result<Vec<DeviceTotals>, StoreError> {
        let path = self.path.as_path();
        let mut st = self
            .conn
            .prepare_cached(DEVICE_TOTALS)
            .map_err(sql_err(path, "reading device totals"))?;
        let rows = st
            .query_map([], |row| {
                Ok(DeviceTotals {
                    mac: super::identity::mac_from_key(row.get(0)?),
                    first_seen_ns: row.get(1)?,
                    last_seen_ns: row.get(2)?,
                    is_gateway: row.get(3)?,
                    counts: counts_at(row, 4)?,
                })
            })
            .map_err(sql_err(path, "reading device totals"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql_err(path, "reading device totals"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn mac(n: u64) -> MacAddr {
        MacAddr::from_u64(0x02_00_00_00_00_00 | n)
    }

    pub(crate) fn counts(k: u64) -> Counts {
        Counts {
            frames_sent: k,
            frames_received: 2 * k,
            bytes_sent: 100 * k,
            bytes_received: 200 * k,
            internet_upload_bytes: 10 * k,
            internet_download_bytes: 20 * k,
        }
    }

    fn seen(m: MacAddr, first: i64, last: i64, gw: bool) -> Sighting {
        Sighting {
            mac: m,
            first_seen: first,
            last_seen: last,
            is_gateway: gw,
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn same_minute_across_flushes_adds_up_and_devices_merge() {
        let (_d, mut store) = open();
        let a = mac(1);
        let gw = mac(2);
        store
            .write_flush(
                &[MinuteUsage {
                    mac: a,
                    minute: 600,
                    counts: counts(1),
                }],
                &[
                    seen(a, 600_500_000_000, 610_000_000_000, false),
                    seen(gw, 601e9 as i64, 602e9 as i64, true),
                ],
            )
            .unwrap();
        store
            .write_flush(
                &[
                    MinuteUsage {
                        mac: a,
                        minute: 600,
                        counts: counts(2),
                    },
                    MinuteUsage {
                        mac: a,
                        minute: 660,
                        counts: counts(4),
                    },
                ],
                &[
                    seen(a, 600_000_000_000, 665_000_000_000, false),
                    seen(gw, 603e9 as i64, 604e9 as i64, false),
                ],
            )
            .unwrap();
        let totals = store.device_totals().unwrap();
        assert_eq!(totals.len(), 2);
        assert_eq!(totals[0].mac, a);
        assert_eq!(totals[0].counts, counts(7));
        assert_eq!(totals[0].first_seen_ns, 600_000_000_000);
        assert_eq!(totals[0].last_seen_ns, 665_000_000_000);
        assert!(!totals[0].is_gateway);
        assert_eq!(totals[1].mac, gw);
        assert!(totals[1].is_gateway, "gateway flag is sticky");
        assert_eq!(totals[1].counts, Counts::default());
        assert_eq!(
            (totals[1].first_seen_ns, totals[1].last_seen_ns),
            (601e9 as i64, 604e9 as i64)
        );
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM usage_minute", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2, "minute 600 was merged into one row");
    }

    #[test]
    fn usage_without_sighting_is_kept_and_zero_rows_skipped() {
        let (_d, mut store) = open();
        store
            .write_flush(
                &[
                    MinuteUsage {
                        mac: mac(9),
                        minute: 120,
                        counts: counts(3),
                    },
                    MinuteUsage {
                        mac: mac(8),
                        minute: 120,
                        counts: Counts::default(),
                    },
                ],
                &[],
            )
            .unwrap();
        let totals = store.device_totals().unwrap();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].mac, mac(9));
        assert_eq!(totals[0].counts, counts(3));
        assert_eq!(totals[0].first_seen_ns, 120_000_000_000);
    }

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let (_d, mut store) = open();
        store
            .write_flush(
                &[MinuteUsage {
                    mac: mac(1),
                    minute: 0,
                    counts: counts(1),
                }],
                &[],
            )
            .unwrap();
        // A real SQLITE_FULL: cap the file at its current size so the next write cannot grow it.
        let pages: i64 = store
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        store
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let many: Vec<MinuteUsage> = (0..5000)
            .map(|i| MinuteUsage {
                mac: mac(i),
                minute: 60,
                counts: counts(1),
            })
            .collect();
        let err = store.write_flush(&many, &[]).unwrap_err();
        assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
        assert!(err.to_string().contains("free space on"), "{err}");
        assert!(err.to_string().contains("t.db"), "{err}");
        let totals = store.device_totals().unwrap();
        assert_eq!(totals.len(), 1, "the failed flush was rolled back entirely");
        assert_eq!(totals[0].counts, counts(1));
    }

    /// Measures the flush budget (BENCHMARKS.md) (1,000 devices ≤ 20 ms). Prints, never asserts on
    /// time: run `cargo test --release --lib flush_timing -- --nocapture` to read it.
    #[test]
    fn flush_timing_1000_devices() {
        let (_d, mut store) = open();
        let devices = 1000u64;
        let mut times = Vec::new();
        for round in 0..12i64 {
            // Six flushes per minute, as with the default 10 s interval: the first of each
            // minute inserts rows, the next five add to them.
            let minute = 1_700_000_000 / 60 * 60 + (round / 6) * 60;
            let usage: Vec<MinuteUsage> = (0..devices)
                .map(|i| MinuteUsage {
                    mac: mac(i),
                    minute,
                    counts: counts(i + 1),
                })
                .collect();
            let seen: Vec<Sighting> = (0..devices)
                .map(|i| {
                    seen(
                        mac(i),
                        minute * 1_000_000_000,
                        minute * 1_000_000_000 + 9,
                        false,
                    )
                })
                .collect();
            let t = std::time::Instant::now();
            store.write_flush(&usage, &seen).unwrap();
            times.push(t.elapsed());
        }
        let totals = store.device_totals().unwrap();
        assert_eq!(totals.len(), devices as usize);
        assert_eq!(totals[5].counts, counts(6 * 12));
        let ms: Vec<String> = times
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64() * 1e3))
            .collect();
        println!(
            "write_flush 1000 devices x 1 minute, 12 flushes (ms): {}",
            ms.join(" ")
        );
    }

    /// Like `flush_timing_1000_devices`, but against a day of history for 1,000 devices
    /// (1.44 M minute rows), so the B-trees are deep. Slow to fill: run on demand with
    /// `cargo test --release --lib flush_timing_day -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn flush_timing_day_of_history() {
        let (_d, mut store) = open();
        let base = 1_700_000_000 / 60 * 60;
        let sightings = |minute: i64| -> Vec<Sighting> {
            (0..1000)
                .map(|i| {
                    seen(
                        mac(i),
                        minute * 1_000_000_000,
                        minute * 1_000_000_000,
                        false,
                    )
                })
                .collect()
        };
        for hour in 0..24 {
            let usage: Vec<MinuteUsage> = (0..60)
                .flat_map(|m| {
                    (0..1000).map(move |i| MinuteUsage {
                        mac: mac(i),
                        minute: base + (hour * 60 + m) * 60,
                        counts: counts(1),
                    })
                })
                .collect();
            store.write_flush(&usage, &sightings(base)).unwrap();
        }
        let minute = base + 24 * 3600;
        let usage: Vec<MinuteUsage> = (0..1000)
            .map(|i| MinuteUsage {
                mac: mac(i),
                minute,
                counts: counts(1),
            })
            .collect();
        let mut ms = Vec::new();
        for _ in 0..6 {
            let t = std::time::Instant::now();
            store.write_flush(&usage, &sightings(minute)).unwrap();
            ms.push(format!("{:.2}", t.elapsed().as_secs_f64() * 1e3));
        }
        assert_eq!(
            store.device_totals().unwrap()[0].counts,
            counts(24 * 60 + 6)
        );
        println!(
            "write_flush 1000 devices after a day of history (ms): {}",
            ms.join(" ")
        );
    }
}
