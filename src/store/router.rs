//! The router's WAN bytes per minute (issue 24), rolled up beside the devices' history on the
//! same watermarks and deleted by the same retention (`rollup` calls [`roll_level`] and deletes
//! with [`table`]), so a range reads them through the same plan as the devices' usage and the
//! coverage of any range compares like with like.

use super::period::{Period, bucket_secs};
use super::query::QueryError;
use super::rollup::{read_state, time_err, zone_of};
use super::{Store, StoreError, sql_err};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::path::Path;

/// Table and key column of each level.
pub(crate) fn table(level: Period) -> (&'static str, &'static str) {
    match level {
        Period::Minute => ("router_minute", "minute"),
        Period::Hour => ("router_hour", "start"),
        Period::Day => ("router_day", "start"),
        Period::Month => ("router_month", "start"),
    }
}

const ADD: &str = "ON CONFLICT DO UPDATE SET bytes_up = bytes_up + excluded.bytes_up,
    bytes_down = bytes_down + excluded.bytes_down, polls = polls + excluded.polls,
    stuck_polls = stuck_polls + excluded.stuck_polls";

/// What one poll adds to its minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterPoll {
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// A byte counter was stuck: nothing could be counted for this poll.
    pub stuck: bool,
}

/// The polls of one minute, gathered before they are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterMinute {
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub polls: u32,
    /// Polls in which a byte counter was stuck (nothing counted for them).
    pub stuck_polls: u32,
}

impl RouterMinute {
    pub fn add(&mut self, p: RouterPoll) {
        self.bytes_up = self.bytes_up.saturating_add(p.bytes_up);
        self.bytes_down = self.bytes_down.saturating_add(p.bytes_down);
        self.polls += 1;
        self.stuck_polls += u32::from(p.stuck);
    }
}

/// The router's bytes over a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RouterUsage {
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Readings that went into the range, and those with a stuck counter.
    pub polls: u64,
    pub stuck_polls: u64,
    /// False when retention had deleted rows the range needed.
    pub exact: bool,
}

/// Sums the router rows of `from` in `[from_w, upto)` into buckets of `to`, skipping empty
/// stretches like the devices' rollup (called by it, in its transaction).
pub(super) fn roll_level(
    tx: &rusqlite::Connection,
    path: &Path,
    zone: &str,
    tz: &TimeZone,
    (from, to): (Period, Period),
    (from_w, upto): (i64, i64),
) -> Result<(), StoreError> {
    let op = "rolling up the router's counters";
    let (src, key) = table(from);
    let (dst, _) = table(to);
    let next_sql = format!("SELECT min({key}) FROM {src} WHERE {key} >= ?1 AND {key} < ?2");
    let roll = format!(
        "INSERT INTO {dst} (start, bytes_up, bytes_down, polls, stuck_polls)
         SELECT ?3, sum(bytes_up), sum(bytes_down), sum(polls), sum(stuck_polls)
         FROM {src} WHERE {key} >= ?1 AND {key} < ?2 HAVING count(*) > 0 {ADD}"
    );
    let mut t = from_w;
    while t < upto {
        let next: Option<i64> = tx
            .prepare_cached(&next_sql)
            .and_then(|mut st| st.query_row(params![t, upto], |r| r.get(0)))
            .map_err(sql_err(path, op))?;
        let Some(next) = next else { break };
        let (start, end) = bucket_secs(to, next, tz).map_err(|e| time_err(path, zone, next, e))?;
        // As the devices' rollup: an open bucket is added to in steps (rollup::roll_level).
        let (lo, hi) = (start.max(t), end.min(upto));
        tx.prepare_cached(&roll)
            .and_then(|mut st| st.execute(params![lo, hi, start]))
            .map_err(sql_err(path, op))?;
        t = hi;
    }
    Ok(())
}

fn int(v: u64) -> i64 {
    // Byte counts of one poll fit easily; saturate rather than fail on nonsense.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn get_u64(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(r.get::<_, Option<i64>>(i)?.unwrap_or(0)).unwrap_or(0))
}

/// [`Store::add_router_minutes`] inside a transaction already open: the flusher's, when the
/// router thread queues its polls for it ([`super::batch`]).
pub fn add_router_minutes_in(
    tx: &rusqlite::Connection,
    path: &Path,
    minutes: &[(i64, RouterMinute)],
    status_json: &str,
    now: i64,
) -> Result<(), StoreError> {
    let op = "writing the router's counters";
    let state = read_state(tx).map_err(sql_err(path, op))?;
    for &(minute, m) in minutes {
        let values = |start: i64| {
            (
                start,
                int(m.bytes_up),
                int(m.bytes_down),
                i64::from(m.polls),
                i64::from(m.stuck_polls),
            )
        };
        tx.prepare_cached(&format!(
            "INSERT INTO router_minute (minute, bytes_up, bytes_down, polls, stuck_polls)
             VALUES (?1, ?2, ?3, ?4, ?5) {ADD}"
        ))
        .and_then(|mut st| st.execute(values(minute)))
        .map_err(sql_err(path, op))?;
        if let Some(state) = &state
            && minute < state.hour_rolled
        {
            let tz = zone_of(path, &state.zone)?;
            for level in [Period::Hour, Period::Day, Period::Month] {
                if minute >= state.rolled(level) {
                    break;
                }
                let (start, _) = bucket_secs(level, minute, &tz)
                    .map_err(|e| time_err(path, &state.zone, minute, e))?;
                let (t, _) = table(level);
                tx.execute(
                    &format!(
                        "INSERT INTO {t} (start, bytes_up, bytes_down, polls, stuck_polls)
                         VALUES (?1, ?2, ?3, ?4, ?5) {ADD}"
                    ),
                    values(start),
                )
                .map_err(sql_err(path, op))?;
            }
        }
    }
    tx.execute(
        "INSERT INTO router_state (id, updated_at, status) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, status = excluded.status",
        params![now, status_json],
    )
    .map_err(sql_err(path, op))?;
    Ok(())
}

impl Store {
    /// Adds one poll's bytes to `minute`: [`Store::add_router_minutes`] with one poll.
    pub fn add_router_poll(
        &mut self,
        minute: i64,
        poll: RouterPoll,
        status_json: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let m = RouterMinute {
            bytes_up: poll.bytes_up,
            bytes_down: poll.bytes_down,
            polls: 1,
            stuck_polls: u32::from(poll.stuck),
        };
        self.add_router_minutes(&[(minute, m)], status_json, now)
    }

    /// Adds the polls gathered per minute (to every level already rolled past a minute too, as
    /// a late device minute is) and records the poller's status, in one transaction.
    pub fn add_router_minutes(
        &mut self,
        minutes: &[(i64, RouterMinute)],
        status_json: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let path = path.as_path();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(path, "writing the router's counters"))?;
        add_router_minutes_in(&tx, path, minutes, status_json, now)?;
        tx.commit()
            .map_err(sql_err(path, "writing the router's counters"))
    }

    /// Records the poller's status alone (no reading: searching, unreachable).
    pub fn set_router_status(&mut self, status_json: &str, now: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO router_state (id, updated_at, status) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, status = excluded.status",
                params![now, status_json],
            )
            .map(|_| ())
            .map_err(sql_err(&self.path, "writing the router status"))
    }

    /// The poller's last status (JSON) and when it was written; `None` before the first poll.
    pub fn router_status(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT updated_at, status FROM router_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql_err(&self.path, "reading the router status"))
    }

    /// The router's bytes over the minutes starting in `[from, to)`, read through the same plan
    /// as the devices' usage.
    pub fn router_usage(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<RouterUsage, QueryError> {
        let plan = self.plan_range(tz, from, to, Period::Month)?;
        let mut u = RouterUsage {
            exact: plan.exact,
            ..RouterUsage::default()
        };
        let path = self.path.as_path();
        let op = "reading the router's counters";
        for seg in plan.segments {
            let (t, key) = table(seg.level);
            let (up, down, polls, stuck) = self
                .conn
                .prepare_cached(&format!(
                    "SELECT sum(bytes_up), sum(bytes_down), sum(polls), sum(stuck_polls)
                     FROM {t} WHERE {key} >= ?1 AND {key} < ?2"
                ))
                .and_then(|mut st| {
                    st.query_row(params![seg.from, seg.to], |r| {
                        Ok((
                            get_u64(r, 0)?,
                            get_u64(r, 1)?,
                            get_u64(r, 2)?,
                            get_u64(r, 3)?,
                        ))
                    })
                })
                .map_err(sql_err(path, op))?;
            u.bytes_up += up;
            u.bytes_down += down;
            u.polls += polls;
            u.stuck_polls += stuck;
        }
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rollup::Retention;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn router_minutes_roll_up_and_last_as_long_as_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.db")).unwrap();
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let t0 = 1_711_000_000 / 86_400 * 86_400;
        // Three days of polls, every 60 s (one transaction each, kept few for a debug build).
        let mut want = (0u64, 0u64);
        for i in 0..(3 * 1440) {
            let t = t0 + i * 60;
            let poll = RouterPoll {
                bytes_up: 100,
                bytes_down: 1000,
                stuck: i % 200 == 0,
            };
            want.0 += 100;
            want.1 += 1000;
            if i % 60 == 0 {
                store.roll_up(&tz, t).unwrap();
            }
            store.add_router_poll(t / 60 * 60, poll, "{}", t).unwrap();
        }
        let end = t0 + 3 * 86_400;
        store.roll_up(&tz, end + 86_400 * 40).unwrap();
        let all = store.router_usage(&tz, ts(t0 - 86_400), ts(end)).unwrap();
        assert_eq!((all.bytes_up, all.bytes_down), want);
        assert_eq!(all.polls, 3 * 1440);
        assert_eq!(all.stuck_polls, 22);
        // A late poll into a rolled hour is written through.
        store
            .add_router_poll(
                t0 + 120,
                RouterPoll {
                    bytes_up: 7,
                    bytes_down: 9,
                    stuck: false,
                },
                "{}",
                end,
            )
            .unwrap();
        let hour: (i64, i64) = store
            .conn
            .query_row(
                "SELECT bytes_up, bytes_down FROM router_hour WHERE start = ?1",
                [t0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(hour, (6_000 + 7, 60_000 + 9));
        // Retention deletes the router's minutes with the devices' (the rollups keep the sums).
        let minutes_before: i64 = store
            .conn
            .query_row("SELECT count(*) FROM router_minute", [], |r| r.get(0))
            .unwrap();
        store
            .apply_retention(
                &Retention {
                    minutes: Some(86_400),
                    ..Retention::FOREVER
                },
                end + 86_400 * 40,
            )
            .unwrap();
        let minutes_after: i64 = store
            .conn
            .query_row("SELECT count(*) FROM router_minute", [], |r| r.get(0))
            .unwrap();
        assert!(
            minutes_before == 4320 && minutes_after == 0,
            "{minutes_before} {minutes_after}"
        );
        let all = store.router_usage(&tz, ts(t0 - 86_400), ts(end)).unwrap();
        assert_eq!((all.bytes_up, all.bytes_down), (want.0 + 7, want.1 + 9));
        store.set_router_status("{\"state\":\"ok\"}", 5).unwrap();
        assert_eq!(
            store.router_status().unwrap(),
            Some((5, "{\"state\":\"ok\"}".to_string()))
        );
    }
}
