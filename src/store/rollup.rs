//! History rollups and retention: minute rows summed into hour, day and month rows on the
//! household time zone's boundaries, and finer rows deleted once they are older than their
//! horizon.
//!
//! Rollups are incremental: [`Store::roll_up`] only sums the rows between the recorded
//! watermark and the next one, and a bucket still open is summed as it goes (the open hour in
//! steps of [`OPEN_HOUR_STEP`], the open day hour by hour, the open month day by day), so its
//! row holds exactly the minutes before its level's watermark. A minute that arrives late (a flush retried after
//! an outage, a replay of an old capture) is written through to every level already rolled past
//! it, in the same flush transaction. So every level always holds exactly the minutes it claims
//! to (see `history_state` in migrations), whatever order data arrives in. Retention deletes a
//! level's rows only when the next coarser level already holds them.
//!
//! When it runs: the daemon calls [`Store::maintain`] every 5 minutes on its flush thread
//! (after a flush, never on the capture path); it does work only when a step of the open hour
//! has settled (four times an hour), and retention deletes at most about an hour of minute rows
//! at a time, keeping each transaction (and the WAL) small. `replay --db` rolls up once at the end. Minute rows stay
//! keyed (minute, device_id) and the flush keeps writing only them, except for late minutes.
//!
//! This module never reads the wall clock: callers pass `now`, so tests and replays control time.
use super::period::{Period, bucket_secs};
use super::{Store, StoreError, sql_err};
use crate::model::MinuteUsage;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;

/// Table and key column of each level.
pub(crate) fn table(level: Period) -> (&'static str, &'static str) {
    match level {
        Period::Minute => ("usage_minute", "minute"),
        Period::Hour => ("usage_hour", "start"),
        Period::Day => ("usage_day", "start"),
        Period::Month => ("usage_month", "start"),
    }
}

/// The per-bucket sums over every device of a rollup level (`None` for minutes, which have
/// none: a flush would write a second table, costing SD-card writes on every commit).
///
/// Invariant, kept by everything that writes the level tables: a row of `total_*` at `start`
/// holds the sums (active minutes included) of every row of the level at `start`, and exists
/// iff at least one such row exists. The rollups and late minutes add to both in one
/// transaction, retention deletes both with the same cut-off, moving rows between devices (a
/// merge) changes no sum, and code that deletes a device's rows must call
/// [`remove_device_history`], which subtracts them. Tested against the level tables in
/// `history_tests`.
pub(crate) fn total_table(level: Period) -> Option<&'static str> {
    match level {
        Period::Minute => None,
        Period::Hour => Some("total_hour"),
        Period::Day => Some("total_day"),
        Period::Month => Some("total_month"),
    }
}

/// How far the rollups and retention have got (the `history_state` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryState {
    /// IANA name of the zone every rollup row was computed in.
    pub zone: String,
    /// Every minute before this instant is in `usage_hour`, and no later one (likewise for day
    /// and month): the bucket it falls inside holds the minutes before it.
    pub hour_rolled: i64,
    pub day_rolled: i64,
    pub month_rolled: i64,
    /// Rows of each level starting before this instant have been deleted by retention.
    pub minute_kept: i64,
    pub hour_kept: i64,
    pub day_kept: i64,
    pub month_kept: i64,
}

impl HistoryState {
    /// Buckets of `level` ending at or before this instant hold every minute they cover; the
    /// one it falls inside holds its minutes before it.
    pub(crate) fn rolled(&self, level: Period) -> i64 {
        match level {
            Period::Minute => i64::MAX,
            Period::Hour => self.hour_rolled,
            Period::Day => self.day_rolled,
            Period::Month => self.month_rolled,
        }
    }

    pub(crate) fn kept(&self, level: Period) -> i64 {
        match level {
            Period::Minute => self.minute_kept,
            Period::Hour => self.hour_kept,
            Period::Day => self.day_kept,
            Period::Month => self.month_kept,
        }
    }
}

/// How long each level's rows are kept, in seconds; `None` keeps them forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub minutes: Option<i64>,
    pub hours: Option<i64>,
    pub days: Option<i64>,
    pub months: Option<i64>,
}

impl Retention {
    /// Keeps everything (no level is ever deleted).
    pub const FOREVER: Retention = Retention {
        minutes: None,
        hours: None,
        days: None,
        months: None,
    };

    /// The horizons the `keep_*` settings ask for (0 months or years: kept forever).
    pub fn from_config(cfg: &crate::config::Config) -> Retention {
        const DAY: i64 = 86_400;
        let months = |n: u32| (n > 0).then_some(i64::from(n) * 31 * DAY);
        Retention {
            minutes: Some(i64::from(cfg.keep_minutes_days) * DAY),
            hours: Some(i64::from(cfg.keep_hours_days) * DAY),
            days: months(cfg.keep_days_months),
            months: (cfg.keep_months_years > 0)
                .then_some(i64::from(cfg.keep_months_years) * 366 * DAY),
        }
    }

    fn horizon(&self, level: Period) -> Option<i64> {
        match level {
            Period::Minute => self.minutes,
            Period::Hour => self.hours,
            Period::Day => self.days,
            Period::Month => self.months,
        }
    }
}

/// What one [`Store::maintain`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Buckets summed into hour, day and month rows.
    pub rolled: [u64; 3],
    /// Rows deleted from the minute, hour, day and month tables.
    pub deleted: [u64; 4],
}

/// The name under which `tz` is recorded. A zone without an IANA name (a bare /etc/localtime
/// copy, a fixed offset) cannot be found again by name, so rollups use UTC for it.
pub(crate) fn zone_name(tz: &TimeZone) -> String {
    match tz.iana_name() {
        Some(name) => name.to_string(),
        None => {
            tracing::warn!(
                "the household time zone has no IANA name: history rollups use UTC days; set `timezone` in the config file"
            );
            "UTC".to_string()
        }
    }
}

/// Names the tz database gives to plain UTC (no offset, no DST ever): `Etc/UTC` is what a
/// Debian system zone reads as, `UTC` what a config or an unnamed zone records.
const UTC_ALIASES: [&str; 18] = [
    "UTC",
    "Etc/UTC",
    "UCT",
    "Etc/UCT",
    "Universal",
    "Etc/Universal",
    "Zulu",
    "Etc/Zulu",
    "GMT",
    "Etc/GMT",
    "GMT0",
    "Etc/GMT0",
    "GMT+0",
    "Etc/GMT+0",
    "GMT-0",
    "Etc/GMT-0",
    "Greenwich",
    "Etc/Greenwich",
];

/// Whether rollups recorded in the zone named `recorded` have `tz`'s hour, day and month
/// boundaries. Names are compared after folding the UTC aliases together, so a history rolled
/// up as `UTC` is still read from its rollups when the system zone says `Etc/UTC` (it used to
/// fall back to the minutes, and history older than the minute retention went missing).
pub(crate) fn same_zone(recorded: &str, tz: &TimeZone) -> bool {
    let canonical = |n: &str| -> String {
        if UTC_ALIASES.iter().any(|a| a.eq_ignore_ascii_case(n)) {
            "UTC".to_string()
        } else {
            n.to_string()
        }
    };
    let name = match tz.iana_name() {
        Some(n) => n.to_string(),
        // zone_name records an unnamed zone as UTC; compare the same way without its warning.
        None => "UTC".to_string(),
    };
    canonical(recorded) == canonical(&name)
}

pub(super) fn time_err(path: &Path, zone: &str, at: i64, e: jiff::Error) -> StoreError {
    StoreError::Time {
        path: path.to_path_buf(),
        zone: zone.to_string(),
        at,
        detail: e.to_string(),
    }
}

pub(super) fn zone_of(path: &Path, name: &str) -> Result<TimeZone, StoreError> {
    TimeZone::get(name).map_err(|e| time_err(path, name, 0, e))
}

const READ_STATE: &str = "SELECT zone, hour_rolled, day_rolled, month_rolled, minute_kept,
    hour_kept, day_kept, month_kept FROM history_state WHERE id = 1";

pub(super) fn read_state(conn: &rusqlite::Connection) -> rusqlite::Result<Option<HistoryState>> {
    conn.prepare_cached(READ_STATE)?
        .query_row([], |r| {
            Ok(HistoryState {
                zone: r.get(0)?,
                hour_rolled: r.get(1)?,
                day_rolled: r.get(2)?,
                month_rolled: r.get(3)?,
                minute_kept: r.get(4)?,
                hour_kept: r.get(5)?,
                day_kept: r.get(6)?,
                month_kept: r.get(7)?,
            })
        })
        .optional()
}

fn write_state(tx: &Connection, s: &HistoryState) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO history_state (id, zone, hour_rolled, day_rolled, month_rolled,
            minute_kept, hour_kept, day_kept, month_kept) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            s.zone,
            s.hour_rolled,
            s.day_rolled,
            s.month_rolled,
            s.minute_kept,
            s.hour_kept,
            s.day_kept,
            s.month_kept
        ],
    )?;
    Ok(())
}

/// The counter columns of every usage table (minute, hour, day, month), in their order.
pub(crate) const COUNTERS: &str = "frames_sent, frames_received, bytes_sent, bytes_received,
    internet_upload_bytes, internet_download_bytes";

/// The one conflict clause of every usage write: a row that exists gets the new counts ADDED
/// (a minute arrives in several flushes, a late minute adds to a rolled-up bucket, a merge adds
/// one device's history to another's), never overwritten. `key` is the conflicting key;
/// `active` adds `active_minutes` too (the rollup levels have it, minutes do not).
pub(crate) fn add_on_conflict(key: &str, active: bool) -> String {
    let mut cols: Vec<&str> = COUNTERS.split(',').map(str::trim).collect();
    if active {
        cols.push("active_minutes");
    }
    let sets: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect();
    format!("ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", "))
}

/// Adds `counts` (and `active` minutes) to the row of `table` starting at `start`.
fn add_rollup_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (start, device_id, {COUNTERS}, active_minutes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) {}",
        add_on_conflict("start, device_id", true)
    )
}

/// Adds the finer level's rows in `[?1, ?2)` to one row per device of the coarser level, the
/// bucket starting at ?3 (which the range lies in: a bucket may be summed in several steps).
fn roll_sql(from: Period, to: Period) -> String {
    let (src, key) = table(from);
    let (dst, _) = table(to);
    let active = if from == Period::Minute {
        "count(*)"
    } else {
        "sum(active_minutes)"
    };
    format!(
        "INSERT INTO {dst} (start, device_id, {COUNTERS}, active_minutes)
         SELECT ?3, device_id, sum(frames_sent), sum(frames_received), sum(bytes_sent),
            sum(bytes_received), sum(internet_upload_bytes), sum(internet_download_bytes), {active}
         FROM {src} WHERE {key} >= ?1 AND {key} < ?2 GROUP BY device_id {}",
        add_on_conflict("start, device_id", true)
    )
}

/// Adds counts and active minutes to the total row of `table` at `start`.
fn add_total_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (start, {COUNTERS}, active_minutes)
         VALUES (?1, ?3, ?4, ?5, ?6, ?7, ?8, ?9) {}",
        add_on_conflict("start", true)
    )
}

/// Adds the finer level's rows in `[?1, ?2)` to the coarser level's total row at ?3.
fn roll_total_sql(from: Period, to: Period) -> Option<String> {
    let (src, key) = table(from);
    let dst = total_table(to)?;
    let active = if from == Period::Minute {
        "count(*)"
    } else {
        "sum(active_minutes)"
    };
    Some(format!(
        "INSERT INTO {dst} (start, {COUNTERS}, active_minutes)
         SELECT ?3, sum(frames_sent), sum(frames_received), sum(bytes_sent),
            sum(bytes_received), sum(internet_upload_bytes), sum(internet_download_bytes), {active}
         FROM {src} WHERE {key} >= ?1 AND {key} < ?2 HAVING count(*) > 0 {}",
        add_on_conflict("start", true)
    ))
}

fn to_sql_int(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Called by the flush for a minute row older than `state.hour_rolled`: adds it to every level
/// already rolled past it, so the rollups stay equal to the sum of their minutes. `new_minute`
/// says whether the minute row did not exist yet (it then counts as one more active minute).
pub(super) fn write_through(
    tx: &Transaction<'_>,
    path: &Path,
    state: &HistoryState,
    tz: &TimeZone,
    device_id: i64,
    u: &MinuteUsage,
    new_minute: bool,
) -> Result<(), StoreError> {
    let (minute, counts) = (u.minute, &u.counts);
    for level in [Period::Hour, Period::Day, Period::Month] {
        if minute >= state.rolled(level) {
            break;
        }
        let (start, _) =
            bucket_secs(level, minute, tz).map_err(|e| time_err(path, &state.zone, minute, e))?;
        let c = counts;
        let run = || -> rusqlite::Result<()> {
            let values = params![
                start,
                device_id,
                to_sql_int(c.frames_sent)?,
                to_sql_int(c.frames_received)?,
                to_sql_int(c.bytes_sent)?,
                to_sql_int(c.bytes_received)?,
                to_sql_int(c.internet_upload_bytes)?,
                to_sql_int(c.internet_download_bytes)?,
                i64::from(new_minute),
            ];
            tx.prepare_cached(&add_rollup_sql(table(level).0))?
                .execute(values)?;
            if let Some(total) = total_table(level) {
                tx.prepare_cached(&add_total_sql(total))?.execute(values)?;
            }
            Ok(())
        };
        run().map_err(sql_err(path, "writing a late minute into the rollups"))?;
    }
    Ok(())
}

/// Adds the rows of the level `from` starting in `[from_w, upto)` to the buckets of `to` they
/// lie in. The bounds need not be boundaries of `to`: a bucket that is still open is summed up
/// to `upto` now and from there on the next time (its row is added to, never overwritten), so
/// each source row is summed exactly once as long as the watermark only moves forward and
/// every source row before `upto` is complete. Empty stretches are skipped with one lookup, so
/// catching up after a long pause costs one statement per bucket that has data.
fn roll_level(
    tx: &Connection,
    path: &Path,
    zone: &str,
    tz: &TimeZone,
    (from, to): (Period, Period),
    (from_w, upto): (i64, i64),
) -> Result<u64, StoreError> {
    let op = "rolling up history";
    let (src, key) = table(from);
    let next_sql = format!("SELECT min({key}) FROM {src} WHERE {key} >= ?1 AND {key} < ?2");
    let roll = roll_sql(from, to);
    let roll_total = roll_total_sql(from, to);
    let mut t = from_w;
    let mut n = 0;
    while t < upto {
        let next: Option<i64> = tx
            .prepare_cached(&next_sql)
            .and_then(|mut st| st.query_row(params![t, upto], |r| r.get(0)))
            .map_err(sql_err(path, op))?;
        let Some(next) = next else { break };
        let (start, end) = bucket_secs(to, next, tz).map_err(|e| time_err(path, zone, next, e))?;
        // The part of the bucket not summed before (`t` is inside it when an earlier round
        // summed its beginning) and closed now.
        let (lo, hi) = (start.max(t), end.min(upto));
        tx.prepare_cached(&roll)
            .and_then(|mut st| st.execute(params![lo, hi, start]))
            .map_err(sql_err(path, op))?;
        if let Some(sql) = &roll_total {
            tx.prepare_cached(sql)
                .and_then(|mut st| st.execute(params![lo, hi, start]))
                .map_err(sql_err(path, op))?;
        }
        n += 1;
        t = hi;
    }
    Ok(n)
}

/// Deletes every usage row of device `device_id` at every level, subtracting the rollup rows
/// from the totals first (a total row left without any device row goes too). For code that
/// deletes a device with its history; a merge moves rows instead and needs no call. Runs in
/// the caller's transaction, so the totals never disagree with the levels on disk.
#[allow(
    dead_code,
    reason = "device deletion (issue 22) calls it; history_tests checks it keeps the totals"
)]
pub(crate) fn remove_device_history(
    tx: &rusqlite::Connection,
    device_id: i64,
) -> rusqlite::Result<()> {
    let cols: Vec<&str> = COUNTERS
        .split(',')
        .map(str::trim)
        .chain(["active_minutes"])
        .collect();
    let sets: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = t.{c} - u.{c}"))
        .collect();
    for level in [Period::Hour, Period::Day, Period::Month] {
        let (t, _) = table(level);
        if let Some(total) = total_table(level) {
            tx.execute(
                &format!(
                    "UPDATE {total} AS t SET {} FROM {t} AS u
                     WHERE u.device_id = ?1 AND u.start = t.start",
                    sets.join(", ")
                ),
                params![device_id],
            )?;
            tx.execute(
                &format!(
                    "DELETE FROM {total} WHERE start IN (SELECT start FROM {t} WHERE device_id = ?1)
                     AND NOT EXISTS (SELECT 1 FROM {t} o WHERE o.start = {total}.start AND o.device_id <> ?1)"
                ),
                params![device_id],
            )?;
        }
        tx.execute(
            &format!("DELETE FROM {t} WHERE device_id = ?1"),
            params![device_id],
        )?;
    }
    tx.execute(
        "DELETE FROM usage_minute WHERE device_id = ?1",
        params![device_id],
    )?;
    // Passive latency is kept by MAC (so a merge moves it with the MACs): the device's MACs'.
    tx.execute(
        "DELETE FROM passive_device_hour WHERE mac IN (SELECT mac FROM device_macs WHERE device_id = ?1)",
        params![device_id],
    )?;
    tx.execute(
        "DELETE FROM device_remote_hour WHERE device_id = ?1",
        params![device_id],
    )?;
    Ok(())
}

/// Every total row that differs from the sum of its level's rows at the same start, as
/// (level, start): empty when the invariant of [`total_table`] holds.
#[cfg(test)]
pub(crate) fn totals_mismatches(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<Vec<(Period, i64)>> {
    let mut out = Vec::new();
    for level in [Period::Hour, Period::Day, Period::Month] {
        let (t, _) = table(level);
        let Some(total) = total_table(level) else {
            continue;
        };
        let sums = "sum(frames_sent) AS frames_sent, sum(frames_received) AS frames_received,
            sum(bytes_sent) AS bytes_sent, sum(bytes_received) AS bytes_received,
            sum(internet_upload_bytes) AS internet_upload_bytes,
            sum(internet_download_bytes) AS internet_download_bytes,
            sum(active_minutes) AS active_minutes";
        let sql = format!(
            "WITH s AS (SELECT start, {sums} FROM {t} GROUP BY start)
             SELECT start FROM (SELECT start, {COUNTERS}, active_minutes FROM s
                 EXCEPT SELECT start, {COUNTERS}, active_minutes FROM {total})
             UNION
             SELECT start FROM (SELECT start, {COUNTERS}, active_minutes FROM {total}
                 EXCEPT SELECT start, {COUNTERS}, active_minutes FROM s)
             ORDER BY start"
        );
        let mut st = conn.prepare(&sql)?;
        let starts = st.query_map([], |r| r.get::<_, i64>(0))?;
        for start in starts {
            out.push((level, start?));
        }
    }
    Ok(out)
}

/// The open hour is summed in steps of this many seconds: a page then reads at most a step (and
/// the settling time) of minute rows, not up to an hour of them, for every device. Each step is
/// one small commit of the maintenance round (three more per hour than closed hours alone).
pub(crate) const OPEN_HOUR_STEP: i64 = 900;

/// Minutes this old are taken as settled: the daemon runs its rollup inside a flush's
/// transaction, after that flush's minutes (run::maintenance), and a frame reaches the counters
/// within a second or two of its timestamp (libpcap's buffer timeout). A minute that still
/// arrives later is written through to the rolled rows by the flush, exactly, at the cost of a
/// few more rows in that flush.
pub(crate) const SETTLED_AFTER: i64 = 120;

/// How far the hour level is rolled at `now`: every hour closed by `now`, and within the open
/// hour the steps that were over [`SETTLED_AFTER`] ago.
fn hour_target(now: i64, tz: &TimeZone, path: &Path, zone: &str) -> Result<i64, StoreError> {
    let closed = floor(Period::Hour, now, tz, path, zone)?;
    let settled = now - SETTLED_AFTER;
    let open = floor(Period::Hour, settled, tz, path, zone)?;
    Ok(closed.max(open + (settled - open) / OPEN_HOUR_STEP * OPEN_HOUR_STEP))
}

fn floor(level: Period, t: i64, tz: &TimeZone, path: &Path, zone: &str) -> Result<i64, StoreError> {
    bucket_secs(level, t, tz)
        .map(|(s, _)| s)
        .map_err(|e| time_err(path, zone, t, e))
}

impl Store {
    /// The rollup watermarks, or `None` before the first rollup.
    pub fn history_state(&self) -> Result<Option<HistoryState>, StoreError> {
        read_state(&self.conn).map_err(sql_err(&self.path, "reading the history state"))
    }

    /// Rolls every bucket that closed before `now` (UTC seconds) up one level, in `tz`.
    ///
    /// The first call records `tz` as the history's zone. If a later call passes another zone,
    /// the rollups are rebuilt in it when every minute is still stored; otherwise the recorded
    /// zone is kept (day totals keep their old midnights) and a warning says so.
    pub fn roll_up(&mut self, tz: &TimeZone, now: i64) -> Result<[u64; 3], StoreError> {
        let path = self.path.clone();
        let op = "rolling up history";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&path, op))?;
        let rolled = roll_up_in(&tx, &path, tz, now)?;
        tx.commit().map_err(sql_err(&path, op))?;
        Ok(rolled)
    }

    /// Deletes rows older than their level's horizon before `now`, but only rows the next
    /// coarser level already holds. Cut-offs are floored to the coarser level's boundaries, so
    /// a level is only ever cut between whole buckets of the level above.
    pub fn apply_retention(
        &mut self,
        retention: &Retention,
        now: i64,
    ) -> Result<[u64; 4], StoreError> {
        let path = self.path.clone();
        let op = "deleting history past its retention";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&path, op))?;
        let deleted = apply_retention_in(&tx, &path, retention, now)?;
        tx.commit().map_err(sql_err(&path, op))?;
        Ok(deleted)
    }

    /// The periodic maintenance step: roll up, then apply retention. Cheap when nothing closed.
    pub fn maintain(
        &mut self,
        tz: &TimeZone,
        retention: &Retention,
        now: i64,
    ) -> Result<MaintenanceReport, StoreError> {
        let rolled = self.roll_up(tz, now)?;
        let deleted = self.apply_retention(retention, now)?;
        Ok(MaintenanceReport { rolled, deleted })
    }
}

/// [`Store::roll_up`] inside a transaction the caller holds (the flush's: the daemon queues
/// its maintenance into it, so a round costs no commit of its own).
pub(crate) fn roll_up_in(
    tx: &Connection,
    path: &Path,
    tz: &TimeZone,
    now: i64,
) -> Result<[u64; 3], StoreError> {
    let op = "rolling up history";
    let wanted = zone_name(tz);
    let mut state = read_state(tx).map_err(sql_err(path, op))?;
    if let Some(s) = &state
        && !same_zone(&s.zone, tz)
    {
        if s.minute_kept == i64::MIN {
            tracing::info!(from = %s.zone, to = %wanted, "time zone changed: rebuilding history rollups from the stored minutes");
            tx.execute_batch(
                "DELETE FROM usage_hour; DELETE FROM usage_day; DELETE FROM usage_month;
                 DELETE FROM total_hour; DELETE FROM total_day; DELETE FROM total_month;
                 DELETE FROM router_hour; DELETE FROM router_day; DELETE FROM router_month;
                 DELETE FROM history_state;",
            )
            .map_err(sql_err(path, op))?;
            state = None;
        } else {
            let since = jiff::Timestamp::from_second(s.minute_kept)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| s.minute_kept.to_string());
            tracing::warn!(recorded = %s.zone, configured = %wanted, minutes_stored_since = %since, "time zone changed, but retention (keep_minutes_days) already deleted the minutes before {since}, so the hours, days and months cannot be rebuilt in the new zone: history keeps the recorded zone's day and month boundaries");
        }
    }
    // The row is rewritten only when it changes: a rewrite is a commit and an fsync, which
    // every maintenance round (5 minutes) would otherwise cost the SD card (docs/DURABILITY.md).
    let stored = state.clone();
    let mut state = match state {
        Some(s) => s,
        None => {
            let first: Option<i64> = tx
                .query_row(
                    // The router's minutes count too: they may start before any device's.
                    "SELECT min(m) FROM (SELECT min(minute) AS m FROM usage_minute
                     UNION ALL SELECT min(minute) FROM router_minute)",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err(path, op))?;
            let base = first.unwrap_or(now);
            let z = wanted.as_str();
            HistoryState {
                hour_rolled: floor(Period::Hour, base, tz, path, z)?,
                day_rolled: floor(Period::Day, base, tz, path, z)?,
                month_rolled: floor(Period::Month, base, tz, path, z)?,
                minute_kept: i64::MIN,
                hour_kept: i64::MIN,
                day_kept: i64::MIN,
                month_kept: i64::MIN,
                zone: wanted.clone(),
            }
        }
    };
    let ztz = zone_of(path, &state.zone)?;
    let z = state.zone.clone();
    let mut rolled = [0; 3];
    // Each level rolls up to where the finer level's rows are complete: hours to the last
    // settled step (below), days to the last whole rolled hour, months to the last whole
    // rolled day. So the open hour, day and month are summed as they go (a day's row holds
    // its hours up to `day_rolled`), and a page reads today as one row per device instead
    // of every hour and minute of it.
    for (i, (fine, coarse)) in [
        (Period::Minute, Period::Hour),
        (Period::Hour, Period::Day),
        (Period::Day, Period::Month),
    ]
    .into_iter()
    .enumerate()
    {
        let to = match fine {
            Period::Minute => hour_target(now, &ztz, path, &z)?,
            _ => floor(fine, state.rolled(fine), &ztz, path, &z)?,
        };
        let done = match coarse {
            Period::Hour => &mut state.hour_rolled,
            Period::Day => &mut state.day_rolled,
            _ => &mut state.month_rolled,
        };
        if to > *done {
            rolled[i] = roll_level(tx, path, &z, &ztz, (fine, coarse), (*done, to))?;
            super::router::roll_level(tx, path, &z, &ztz, (fine, coarse), (*done, to))?;
            *done = to;
        }
    }
    if stored.as_ref() != Some(&state) {
        write_state(tx, &state).map_err(sql_err(path, op))?;
    }
    Ok(rolled)
}

/// [`Store::apply_retention`] inside a transaction the caller holds.
pub(crate) fn apply_retention_in(
    tx: &Connection,
    path: &Path,
    retention: &Retention,
    now: i64,
) -> Result<[u64; 4], StoreError> {
    let op = "deleting history past its retention";
    let Some(mut state) = read_state(tx).map_err(sql_err(path, op))? else {
        // Nothing rolled up yet, so nothing may be deleted.
        return Ok([0; 4]);
    };
    let stored = state.clone();
    let tz = zone_of(path, &state.zone)?;
    let z = state.zone.clone();
    let mut deleted = [0; 4];
    let levels = [
        (Period::Minute, Some(Period::Hour)),
        (Period::Hour, Some(Period::Day)),
        (Period::Day, Some(Period::Month)),
        (Period::Month, None),
    ];
    for (i, (level, above)) in levels.into_iter().enumerate() {
        let Some(horizon) = retention.horizon(level) else {
            continue;
        };
        let mut cut = now.saturating_sub(horizon);
        if let Some(above) = above {
            cut = floor(above, cut.min(state.rolled(above)), &tz, path, &z)?;
        } else {
            cut = floor(Period::Month, cut, &tz, path, &z)?;
        }
        if cut <= state.kept(level) {
            continue;
        }
        let (t, key) = table(level);
        deleted[i] = tx
            .execute(&format!("DELETE FROM {t} WHERE {key} < ?1"), params![cut])
            .map_err(sql_err(path, op))? as u64;
        if let Some(total) = total_table(level) {
            tx.execute(
                &format!("DELETE FROM {total} WHERE start < ?1"),
                params![cut],
            )
            .map_err(sql_err(path, op))?;
        }
        // The router's rows of the level go with the same cut-off (lasting as long).
        let (router, router_key) = super::router::table(level);
        tx.execute(
            &format!("DELETE FROM {router} WHERE {router_key} < ?1"),
            params![cut],
        )
        .map_err(sql_err(path, op))?;
        // The watermark records that rows were removed: a pass that found nothing to delete
        // (a young history) leaves it, so a time zone set later can still rebuild the rollups
        // from every minute (issue 25: the first pass used to block that for good).
        if deleted[i] == 0 {
            continue;
        }
        match level {
            Period::Minute => state.minute_kept = cut,
            Period::Hour => state.hour_kept = cut,
            Period::Day => state.day_kept = cut,
            Period::Month => state.month_kept = cut,
        }
    }
    if state != stored {
        write_state(tx, &state).map_err(sql_err(path, op))?;
    }
    Ok(deleted)
}

/// [`Store::maintain`] inside a transaction the caller holds: what the daemon queues into the
/// flush's transaction ([`super::batch`]), so a round costs no commit and no fsync of its own.
pub fn maintain_in(
    tx: &Connection,
    path: &Path,
    tz: &TimeZone,
    retention: &Retention,
    now: i64,
) -> Result<MaintenanceReport, StoreError> {
    let rolled = roll_up_in(tx, path, tz, now)?;
    let deleted = apply_retention_in(tx, path, retention, now)?;
    Ok(MaintenanceReport { rolled, deleted })
}
