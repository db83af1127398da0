//! The history query layer used by the web pages, the API, alerts and the export: usage of a
//! device, a set of devices or the household over any range, top devices, an hour-of-day ×
//! weekday heatmap, usage per billing cycle, and presence (minutes with traffic).
//!
//! Every query is answered from the coarsest rows that fit: [`plan`] cuts a range into whole
//! month, day and hour buckets that the rollups have completed, with minute rows only at the
//! edges. Because every level holds exactly the minutes it covers, the totals equal what the raw
//! minutes would give. Where retention has deleted the finer rows a range edge needs, the answer
//! counts each remaining bucket whose start lies in the range and says it is not exact.
//!
//! Household totals exclude the gateway (ACCOUNTING.md) but include the "other" bucket (MAC
//! ff:ff:ff:ff:ff:ff): that is real household traffic whose device could not be kept apart
//! (a full counter map), and an ISP counts it against the plan. Top-N lists exclude both: the
//! gateway is infrastructure and "other" is not a device. This module never writes.
use super::identity::{mac_from_key, mac_key};
use super::period::{Period, bucket_secs};
use super::rollup::{HistoryState, table, total_table};
use super::{Store, StoreError, sql_err};
use crate::model::{Counts, MacAddr};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::HashMap;

/// The key under which traffic folded out of a full counter map is stored (the "other" bucket).
/// A broadcast address can never be a real sender, so it cannot collide with a device; frames
/// that claim it as their source are malformed and belong in the same "not attributable" bucket.
pub const OTHER: MacAddr = MacAddr::BROADCAST;

/// Whose usage a query sums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every stored MAC, the gateway and "other" included (the export).
    All,
    /// Every MAC but the gateway: household devices and "other".
    Household,
    /// These devices (a person's or a group's).
    Devices(Vec<MacAddr>),
}

impl Selection {
    pub fn device(mac: MacAddr) -> Selection {
        Selection::Devices(vec![mac])
    }

    /// A condition on `u.device_id`. MAC keys are integers formatted here, never user text.
    fn sql(&self) -> String {
        match self {
            Selection::All => "1".to_string(),
            Selection::Household => {
                "u.device_id IN (SELECT id FROM devices WHERE is_gateway = 0)".to_string()
            }
            Selection::Devices(macs) => {
                let keys: Vec<String> = macs.iter().map(|m| mac_key(*m).to_string()).collect();
                format!(
                    "u.device_id IN (SELECT id FROM devices WHERE mac IN ({}))",
                    if keys.is_empty() {
                        "NULL".to_string()
                    } else {
                        keys.join(",")
                    }
                )
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the range {from} .. {to} is empty: the start must be before the end")]
    EmptyRange { from: Timestamp, to: Timestamp },
    #[error(
        "cannot compute {period} boundaries in time zone {zone} near {at}: {detail}; use a range within years 1..9999 or check `timezone`"
    )]
    Time {
        period: Period,
        zone: String,
        at: i64,
        detail: String,
    },
}

/// Counters summed over a range, with the minutes in which there was traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub counts: Counts,
    /// Device-minutes with traffic (for one device: minutes present).
    pub active_minutes: u64,
    /// False when retention had deleted rows the range needed (see the module docs).
    pub exact: bool,
}

/// One device's usage in a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceUsage {
    pub mac: MacAddr,
    pub is_gateway: bool,
    pub counts: Counts,
    pub active_minutes: u64,
}

impl DeviceUsage {
    pub fn total_bytes(&self) -> u64 {
        self.counts.bytes_sent + self.counts.bytes_received
    }
}

/// One bucket of a time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    pub start: Timestamp,
    pub counts: Counts,
    pub active_minutes: u64,
}

/// Usage over time: one point per bucket that has traffic (empty buckets are left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    pub period: Period,
    pub points: Vec<Point>,
    pub exact: bool,
}

/// Usage by local weekday (Monday = 0) and hour of day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heatmap {
    pub cells: [[Counts; 24]; 7],
    pub exact: bool,
}

/// A stretch `[from, to)` read from one level's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub level: Period,
    pub from: i64,
    pub to: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub segments: Vec<Segment>,
    pub exact: bool,
}

/// What each level can answer: buckets ending by `rolled` are complete, the bucket that
/// `rolled` falls inside holds exactly the minutes before `rolled` (the open hour, day and month
/// are summed as they go), rows starting before `kept` are gone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Coverage {
    rolled: [i64; 4],
    kept: [i64; 4],
}

fn idx(p: Period) -> usize {
    match p {
        Period::Minute => 0,
        Period::Hour => 1,
        Period::Day => 2,
        Period::Month => 3,
    }
}

impl Coverage {
    /// Rolled-up levels are usable only in the zone they were computed in; in any other zone
    /// the minutes alone answer (exactly, as far back as they are kept).
    pub(crate) fn new(state: Option<&HistoryState>, tz: &TimeZone) -> Coverage {
        match state {
            Some(s) if super::rollup::same_zone(&s.zone, tz) => Coverage {
                rolled: Period::ALL.map(|p| s.rolled(p)),
                kept: Period::ALL.map(|p| s.kept(p)),
            },
            Some(s) => Coverage {
                rolled: [i64::MAX, i64::MIN, i64::MIN, i64::MIN],
                kept: [s.minute_kept, i64::MAX, i64::MAX, i64::MAX],
            },
            None => Coverage {
                rolled: [i64::MAX, i64::MIN, i64::MIN, i64::MIN],
                kept: [i64::MIN, i64::MAX, i64::MAX, i64::MAX],
            },
        }
    }

    fn usable(&self, level: Period, start: i64, end: i64) -> bool {
        start >= self.kept[idx(level)] && end <= self.rolled[idx(level)]
    }

    /// Where the row of the bucket `[start, end)` of `level` stops when the bucket is rolled
    /// only in part, so that its row holds `[start, that)`; `None` when it is not, or when
    /// that part reaches past `hi` (a range ending inside it cannot use the row).
    fn partial(&self, level: Period, start: i64, end: i64, hi: i64) -> Option<i64> {
        let r = self.rolled[idx(level)];
        (start >= self.kept[idx(level)] && start < r && r < end && r <= hi).then_some(r)
    }

    /// The first instant from which minute rows are stored.
    pub(crate) fn minutes_from(&self) -> i64 {
        self.kept[0]
    }
}

/// Cuts the minutes `[lo, hi)` (minute-aligned) into segments read from levels no coarser than
/// `max_level`, in time order, coarsest whole buckets first.
pub(crate) fn plan(
    cov: &Coverage,
    tz: &TimeZone,
    lo: i64,
    hi: i64,
    max_level: Period,
) -> Result<Plan, (Period, i64, jiff::Error)> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut exact = true;
    let push = |segments: &mut Vec<Segment>, level: Period, from: i64, to: i64| match segments
        .last_mut()
    {
        Some(last) if last.level == level && last.to == from => last.to = to,
        _ => segments.push(Segment { level, from, to }),
    };
    let bucket = |level: Period, t: i64| bucket_secs(level, t, tz).map_err(|e| (level, t, e));
    let coarse: Vec<Period> = [Period::Month, Period::Day, Period::Hour]
        .into_iter()
        .filter(|&p| p <= max_level)
        .collect();
    let mut t = lo;
    'outer: while t < hi {
        for &level in &coarse {
            let (s, e) = bucket(level, t)?;
            if s == t && e <= hi && cov.usable(level, s, e) {
                push(&mut segments, level, t, e);
                t = e;
                continue 'outer;
            }
            // The open bucket's row, up to where it is rolled; finer levels do the rest.
            if s == t
                && let Some(r) = cov.partial(level, s, e, hi)
            {
                push(&mut segments, level, t, r);
                t = r;
                continue 'outer;
            }
        }
        if t >= cov.minutes_from() {
            // Minutes up to the next hour boundary, where a coarser bucket may start; past the
            // hour watermark nothing coarser is complete, so the minutes run to the end.
            let next = if max_level > Period::Minute && t < cov.rolled[1] {
                bucket(Period::Hour, t)?.1.min(hi)
            } else {
                hi
            };
            push(&mut segments, Period::Minute, t, next);
            t = next;
            continue;
        }
        // The minutes here were deleted: count the finest remaining bucket if it starts in the
        // range, skip it if it started before.
        exact = false;
        for &level in coarse.iter().rev() {
            let (s, e) = bucket(level, t)?;
            if cov.usable(level, s, e) {
                if s == t {
                    push(&mut segments, level, t, e);
                }
                t = e;
                continue 'outer;
            }
        }
        t = if max_level == Period::Minute {
            cov.minutes_from().min(hi)
        } else {
            bucket(max_level, t)?.1.min(hi)
        };
    }
    Ok(Plan { segments, exact })
}

/// A plan's segments as pieces to add or (`true`) subtract: the days of a day segment that
/// cover more than half of a month are read as that month's row minus the month's other days,
/// where both levels hold the whole month. Exact: a month row is the sum of its day rows (the
/// rollups make it from them, and a late minute is added to every rolled level), so for every
/// device and counter month − other days = the days in the segment. Fewer rows, never more.
pub(crate) fn month_complements(
    cov: &Coverage,
    tz: &TimeZone,
    segments: &[Segment],
) -> Result<Vec<(Segment, bool)>, (Period, i64, jiff::Error)> {
    let mut out = Vec::with_capacity(segments.len());
    for seg in segments {
        if seg.level != Period::Day {
            out.push((*seg, false));
            continue;
        }
        let mut t = seg.from;
        while t < seg.to {
            let (ms, me) = bucket_secs(Period::Month, t, tz).map_err(|e| (Period::Month, t, e))?;
            let end = me.min(seg.to);
            let inside = end - t;
            let whole = cov.usable(Period::Month, ms, me) && cov.usable(Period::Day, ms, me);
            if whole && (me - ms) - inside < inside {
                let piece = |level, from, to| Segment { level, from, to };
                out.push((piece(Period::Month, ms, me), false));
                if ms < t {
                    out.push((piece(Period::Day, ms, t), true));
                }
                if end < me {
                    out.push((piece(Period::Day, end, me), true));
                }
            } else {
                out.push((
                    Segment {
                        level: Period::Day,
                        from: t,
                        to: end,
                    },
                    false,
                ));
            }
            t = end;
        }
    }
    Ok(out)
}

/// Minute starts are whole minutes: `m >= t` iff `m >= ceil_minute(t)`, same for `m < t`.
pub(crate) fn ceil_minute(t: Timestamp) -> i64 {
    let s = t.as_second() + i64::from(t.subsec_nanosecond() > 0);
    s.div_euclid(60) * 60 + if s.rem_euclid(60) > 0 { 60 } else { 0 }
}

/// One row as read from a level table.
pub(crate) struct Row {
    pub start: i64,
    pub mac: MacAddr,
    /// Meaningful for per-device rows only (the tests pick rows by it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub is_gateway: bool,
    pub counts: Counts,
    pub active_minutes: u64,
}

/// How rows are grouped in SQL.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// One row per bucket and device, ordered by bucket.
    BucketDevice,
    /// One row per bucket, summed over the selection, ordered by bucket (mac is meaningless).
    Bucket,
    /// As `Bucket`, with only the internet upload and download bytes summed: every other
    /// counter and the active minutes are 0 (a sum costs about as much per row as the row).
    BucketInternet,
}

/// Which counters a per-device reading fetches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counters {
    /// Every counter and the active minutes.
    All,
    /// The internet upload and download bytes only.
    Internet,
}

/// The longest minute segment a device selection reads by point lookups (one per minute of
/// the segment): two weeks, past the minute retention. Longer ones (a history queried in a zone
/// other than its rollups', before any rollup) scan the range instead.
const MAX_MINUTE_LOOKUPS: i64 = 14 * 1440;

fn row_sql(seg: &Segment, sel: &Selection, group: Group) -> String {
    let level = seg.level;
    let (t, key) = table(level);
    let active = if level == Period::Minute {
        "1"
    } else {
        "u.active_minutes"
    };
    let cols = [
        "frames_sent",
        "frames_received",
        "bytes_sent",
        "bytes_received",
        "internet_upload_bytes",
        "internet_download_bytes",
    ];
    // With only the internet bytes asked for, the other counters are the constant 0.
    let internet_only = group == Group::BucketInternet;
    let col = |c: &str, expr: String| -> String {
        if internet_only && !c.starts_with("internet_") {
            "0".to_string()
        } else {
            expr
        }
    };
    let active = if internet_only { "0" } else { active };
    let sums: Vec<String> = cols.iter().map(|c| col(c, format!("sum(u.{c})"))).collect();
    let plain: Vec<String> = cols.iter().map(|c| col(c, format!("u.{c}"))).collect();
    let cond = sel.sql();
    let total = total_table(level);
    // Sums over every device, or over all but the gateway, come from the totals the rollups
    // keep: one row per bucket, whatever the number of devices.
    match (sel, group, total) {
        (Selection::All, Group::Bucket | Group::BucketInternet, Some(total)) => {
            let plain: Vec<String> = cols.iter().map(|c| col(c, c.to_string())).collect();
            return format!(
                "SELECT start, 0, 0, {}, {} FROM {total}
                 WHERE start >= ?1 AND start < ?2 ORDER BY start",
                plain.join(", "),
                col("active", "active_minutes".to_string())
            );
        }
        (Selection::Household, Group::Bucket | Group::BucketInternet, Some(total)) => {
            // Every stored row has at least one active minute, so the household has a row in
            // a bucket iff its active minutes there are above zero: empty buckets stay out.
            let diff: Vec<String> = cols
                .iter()
                .chain(&["active_minutes"])
                .map(|c| col(c, format!("c.{c} - coalesce(sum(g.{c}), 0)")))
                .collect();
            return format!(
                "SELECT c.start, 0, 0, {} FROM {total} c
                 LEFT JOIN {t} g ON g.start = c.start
                     AND g.device_id IN (SELECT id FROM devices WHERE is_gateway = 1)
                 WHERE c.start >= ?1 AND c.start < ?2 GROUP BY c.start
                 HAVING c.active_minutes - coalesce(sum(g.active_minutes), 0) > 0
                 ORDER BY c.start",
                diff.join(", ")
            );
        }
        _ => {}
    }
    // One device, per bucket (a device page's charts): at most one row per bucket, so no
    // grouping, and the device's id is found once instead of matched against a list per row.
    // This read is about half the cost per bucket of the general form below.
    if let (Selection::Devices(macs), Group::Bucket | Group::BucketInternet) = (sel, group)
        && let [mac] = macs.as_slice()
    {
        let id = format!("(SELECT id FROM devices WHERE mac = {})", mac_key(*mac));
        return match total {
            Some(total) => format!(
                "SELECT c.start, 0, 0, {}, {active} FROM {total} c CROSS JOIN {t} u
                 ON u.{key} = c.start AND u.device_id = {id}
                 WHERE c.start >= ?1 AND c.start < ?2 ORDER BY c.start",
                plain.join(", ")
            ),
            None if seg.to.saturating_sub(seg.from) <= MAX_MINUTE_LOOKUPS * 60 => format!(
                "WITH RECURSIVE c(start) AS (SELECT ?1 UNION ALL SELECT start + 60 FROM c WHERE start + 60 < ?2)
                 SELECT c.start, 0, 0, {}, {active} FROM c CROSS JOIN {t} u
                 ON u.{key} = c.start AND u.device_id = {id} ORDER BY c.start",
                plain.join(", ")
            ),
            None => format!(
                "SELECT u.{key}, 0, 0, {}, {active} FROM {t} u
                 WHERE u.{key} >= ?1 AND u.{key} < ?2 AND u.device_id = {id} ORDER BY u.{key}",
                plain.join(", ")
            ),
        };
    }
    // Chosen devices' rows are found by a point lookup (bucket, device) per bucket that has any
    // data, listed by the totals (minutes: every minute of the segment), so a device's history
    // costs what it shows, not what the whole household stored in the range.
    let (with, from) = match (sel, total) {
        (Selection::Devices(_), Some(total)) => (
            String::new(),
            format!(
                "{total} c CROSS JOIN {t} u ON u.{key} = c.start
                 JOIN devices d ON d.id = u.device_id WHERE c.start >= ?1 AND c.start < ?2"
            ),
        ),
        (Selection::Devices(_), None) if seg.to.saturating_sub(seg.from) <= MAX_MINUTE_LOOKUPS * 60 => (
            "WITH RECURSIVE c(start) AS (SELECT ?1 UNION ALL SELECT start + 60 FROM c WHERE start + 60 < ?2) "
                .to_string(),
            format!(
                "c CROSS JOIN {t} u ON u.{key} = c.start
                 JOIN devices d ON d.id = u.device_id WHERE 1"
            ),
        ),
        // Summed over the household or chosen devices, the condition already keeps only
        // listed devices' rows: no join to `devices` per row (about a sixth of its cost).
        (Selection::Household | Selection::Devices(_), _) if group != Group::BucketDevice => (
            String::new(),
            format!("{t} u WHERE u.{key} >= ?1 AND u.{key} < ?2"),
        ),
        _ => (
            String::new(),
            format!(
                "{t} u JOIN devices d ON d.id = u.device_id WHERE u.{key} >= ?1 AND u.{key} < ?2"
            ),
        ),
    };
    match group {
        Group::BucketDevice => format!(
            "{with}SELECT u.{key}, d.mac, d.is_gateway, {}, {active} FROM {from} AND {cond} ORDER BY u.{key}",
            plain.join(", ")
        ),
        Group::Bucket | Group::BucketInternet => format!(
            "{with}SELECT u.{key}, 0, 0, {}, {} FROM {from} AND {cond}
             GROUP BY u.{key} ORDER BY u.{key}",
            sums.join(", "),
            if internet_only {
                "0".to_string()
            } else {
                format!("sum({active})")
            }
        ),
    }
}

/// Cuts every plan's segments at every start (minute-aligned as the planner aligns them) and
/// lists the distinct pieces: `(pieces, for each plan the indices of its pieces)`. A segment
/// reads the rows whose start lies in it, so cutting it anywhere splits its rows exactly.
fn shared_pieces(plans: &[Plan], starts: &[Timestamp]) -> (Vec<Segment>, Vec<Vec<usize>>) {
    let mut cuts: Vec<i64> = starts.iter().map(|&s| ceil_minute(s)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces: Vec<Segment> = Vec::new();
    let mut index: HashMap<(usize, i64, i64), usize> = HashMap::new();
    let of_plan = plans
        .iter()
        .map(|plan| {
            let mut ids = Vec::new();
            for seg in &plan.segments {
                let mut from = seg.from;
                let inner = cuts.iter().filter(|&&c| c > seg.from && c < seg.to);
                for to in inner.copied().chain([seg.to]) {
                    let piece = Segment {
                        level: seg.level,
                        from,
                        to,
                    };
                    let i = *index.entry((idx(seg.level), from, to)).or_insert_with(|| {
                        pieces.push(piece);
                        pieces.len() - 1
                    });
                    ids.push(i);
                    from = to;
                }
            }
            ids
        })
        .collect();
    (pieces, of_plan)
}

/// Sums per device id, one map update per row read. Device ids are small integers SQLite
/// hands out, never input from outside, so a multiplicative hash spreads them well at a
/// fraction of SipHash's cost per row (a range's rows are summed here one by one).
type ById<V> = HashMap<i64, V, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_i64(&mut self, v: i64) {
        self.0 = u64::from_ne_bytes(v.to_ne_bytes()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn get_u64(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Integer, Box::new(e))
    })
}

impl Store {
    /// The coverage of the stored levels for queries in `tz`.
    pub(crate) fn coverage(&self, tz: &TimeZone) -> Result<Coverage, StoreError> {
        Ok(Coverage::new(self.history_state()?.as_ref(), tz))
    }

    /// Calls `f` for every row of `seg`, grouped as asked, in bucket order.
    pub(crate) fn for_each_row<E: From<StoreError>>(
        &self,
        seg: Segment,
        sel: &Selection,
        group: Group,
        mut f: impl FnMut(Row) -> Result<(), E>,
    ) -> Result<(), E> {
        let path = self.path.as_path();
        let op = "reading usage history";
        let mut st = self
            .conn
            .prepare_cached(&row_sql(&seg, sel, group))
            .map_err(sql_err(path, op))?;
        let mut rows = st
            .query(rusqlite::params![seg.from, seg.to])
            .map_err(sql_err(path, op))?;
        while let Some(r) = rows.next().map_err(sql_err(path, op))? {
            let read = || -> rusqlite::Result<Row> {
                Ok(Row {
                    start: r.get(0)?,
                    mac: mac_from_key(r.get(1)?),
                    is_gateway: r.get(2)?,
                    counts: Counts {
                        frames_sent: get_u64(r, 3)?,
                        frames_received: get_u64(r, 4)?,
                        bytes_sent: get_u64(r, 5)?,
                        bytes_received: get_u64(r, 6)?,
                        internet_upload_bytes: get_u64(r, 7)?,
                        internet_download_bytes: get_u64(r, 8)?,
                    },
                    active_minutes: get_u64(r, 9)?,
                })
            };
            f(read().map_err(sql_err(path, op))?)?;
        }
        Ok(())
    }

    pub(crate) fn plan_range(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
        max_level: Period,
    ) -> Result<Plan, QueryError> {
        if from >= to {
            return Err(QueryError::EmptyRange { from, to });
        }
        let cov = self.coverage(tz)?;
        self.plan_with(&cov, tz, from, to, max_level)
    }

    /// [`Store::plan_range`] with the coverage already read.
    fn plan_with(
        &self,
        cov: &Coverage,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
        max_level: Period,
    ) -> Result<Plan, QueryError> {
        if from >= to {
            return Err(QueryError::EmptyRange { from, to });
        }
        plan(cov, tz, ceil_minute(from), ceil_minute(to), max_level).map_err(|(period, at, e)| {
            QueryError::Time {
                period,
                zone: tz.iana_name().unwrap_or("(unnamed)").to_string(),
                at,
                detail: e.to_string(),
            }
        })
    }

    /// Total usage of `sel` over the minutes starting in `[from, to)`. Summed per bucket, not
    /// per device: household and all-device sums then come from the totals, one row per bucket.
    pub fn usage(
        &self,
        sel: &Selection,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Usage, QueryError> {
        let mut one = self.ranges_to(sel, tz, &[from], to, Group::Bucket)?;
        Ok(one.pop().unwrap_or_default())
    }

    /// [`Store::usage`] summing only the internet upload and download bytes: those equal the
    /// full reading's, every other counter and the active minutes are 0. What the coverage
    /// line and the plan compare with the router's counters is internet bytes only.
    pub fn internet_usage(
        &self,
        sel: &Selection,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Usage, QueryError> {
        let mut one = self.ranges_to(sel, tz, &[from], to, Group::BucketInternet)?;
        Ok(one.pop().unwrap_or_default())
    }

    /// Per-device usage over `[from, to)`, every stored MAC (gateway and "other" included),
    /// ordered by MAC; the flag says whether it is exact.
    pub fn usage_by_device(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Vec<DeviceUsage>, bool), QueryError> {
        let mut all = self.usage_by_device_since(tz, &[from], to)?;
        Ok(all.pop().unwrap_or_default())
    }

    /// [`Store::usage_by_device`] for several ranges `[start, end)` that share their end (today,
    /// this week and this cycle, up to now), one answer per start in the order given. Each
    /// range is planned as on its own; the plans' segments are cut at every start, and each
    /// distinct piece is read once, so the rows the ranges share (today's hours and minutes)
    /// are read once, not once per range. A row lies in exactly one piece, so every answer is
    /// the sum of the same rows as a reading of its range alone.
    pub fn usage_by_device_since(
        &self,
        tz: &TimeZone,
        starts: &[Timestamp],
        end: Timestamp,
    ) -> Result<Vec<(Vec<DeviceUsage>, bool)>, QueryError> {
        self.by_device_since(tz, starts, end, Counters::All)
    }

    /// [`Store::usage_by_device_since`] reading only the internet bytes: in each
    /// [`DeviceUsage`], `counts.internet_upload_bytes` and `counts.internet_download_bytes` are
    /// those of the full reading and every other counter (frames, LAN bytes, active minutes)
    /// is 0. The same devices are listed. What the household pages and the plan count is
    /// internet bytes only, and each column a row gives costs as much as the row itself, so a
    /// page's reading of a cycle's rows costs about half as much this way.
    pub fn internet_by_device_since(
        &self,
        tz: &TimeZone,
        starts: &[Timestamp],
        end: Timestamp,
    ) -> Result<Vec<(Vec<DeviceUsage>, bool)>, QueryError> {
        self.by_device_since(tz, starts, end, Counters::Internet)
    }

    fn by_device_since(
        &self,
        tz: &TimeZone,
        starts: &[Timestamp],
        end: Timestamp,
        counters: Counters,
    ) -> Result<Vec<(Vec<DeviceUsage>, bool)>, QueryError> {
        let cov = self.coverage(tz)?;
        let plans: Vec<Plan> = starts
            .iter()
            .map(|&s| self.plan_with(&cov, tz, s, end, Period::Month))
            .collect::<Result<_, _>>()?;
        let (pieces, of_plan) = shared_pieces(&plans, starts);
        let sums: Vec<Vec<(i64, Counts, u64)>> = pieces
            .iter()
            .map(|p| self.device_sums(p, counters))
            .collect::<Result<_, _>>()?;
        let devices = self.device_keys()?;
        Ok(plans
            .iter()
            .zip(of_plan)
            .map(|(plan, ids)| {
                let mut by: HashMap<MacAddr, DeviceUsage> = HashMap::new();
                for i in ids {
                    for (id, c, active) in &sums[i] {
                        // Rows of a device no longer listed are left out, as the join did.
                        let Some(&(mac, is_gateway)) = devices.get(id) else {
                            continue;
                        };
                        let e = by.entry(mac).or_insert(DeviceUsage {
                            mac,
                            is_gateway,
                            counts: Counts::default(),
                            active_minutes: 0,
                        });
                        e.counts.add(c);
                        e.active_minutes += active;
                    }
                }
                let mut v: Vec<DeviceUsage> = by.into_values().collect();
                v.sort_unstable_by_key(|d| d.mac);
                (v, plan.exact)
            })
            .collect())
    }

    /// Internet bytes (download + upload, what the ISP counts) per device over `[from, to)`,
    /// the devices [`Store::usage_by_device`] lists with their bytes (a device with none may be
    /// left out) and the same flag. Only the two counters a list of devices shows are read (a
    /// row costs SQLite and rusqlite about as much per column as per row), and a stretch of
    /// more than half a month's days is read as the month minus its other days (see
    /// [`month_complements`]): a year from the 7th reads 7 rows of its first month, not 25.
    pub fn internet_by_device(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(HashMap<MacAddr, u64>, bool), QueryError> {
        if from >= to {
            return Err(QueryError::EmptyRange { from, to });
        }
        let cov = self.coverage(tz)?;
        let plan = self.plan_with(&cov, tz, from, to, Period::Month)?;
        let pieces = month_complements(&cov, tz, &plan.segments).map_err(|(period, at, e)| {
            QueryError::Time {
                period,
                zone: tz.iana_name().unwrap_or("(unnamed)").to_string(),
                at,
                detail: e.to_string(),
            }
        })?;
        let mut by_id: ById<i128> = ById::default();
        for (seg, subtract) in &pieces {
            self.internet_sums(seg, *subtract, &mut by_id)?;
        }
        let devices = self.device_keys()?;
        let mut out: HashMap<MacAddr, u64> = HashMap::with_capacity(by_id.len());
        for (id, bytes) in by_id {
            // A month row is the sum of its day rows, so no device's sum is below zero unless
            // the rollups were damaged.
            let bytes = u64::try_from(bytes).map_err(|_| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("device {id}: a month's rollup holds less than its days"),
            })?;
            // Rows of a device no longer listed are left out, as usage_by_device leaves them.
            if let Some(&(mac, _)) = devices.get(&id)
                && bytes > 0
            {
                *out.entry(mac).or_default() += bytes;
            }
        }
        Ok((out, plan.exact))
    }

    /// Adds (or with `subtract`, takes away) every device's internet bytes over the rows of
    /// one segment to `out` (by device id).
    fn internet_sums(
        &self,
        seg: &Segment,
        subtract: bool,
        out: &mut ById<i128>,
    ) -> Result<(), StoreError> {
        let (t, key) = table(seg.level);
        // Two columns, not their sum in SQL: SQLite turns an integer overflow into a float.
        let sql = format!(
            "SELECT device_id, internet_upload_bytes, internet_download_bytes
             FROM {t} WHERE {key} >= ?1 AND {key} < ?2"
        );
        let path = self.path.as_path();
        let op = "reading usage history";
        let mut st = self.conn.prepare_cached(&sql).map_err(sql_err(path, op))?;
        let mut rows = st
            .query(rusqlite::params![seg.from, seg.to])
            .map_err(sql_err(path, op))?;
        while let Some(r) = rows.next().map_err(sql_err(path, op))? {
            let read = || -> rusqlite::Result<(i64, u64, u64)> {
                Ok((r.get(0)?, get_u64(r, 1)?, get_u64(r, 2)?))
            };
            let (id, up, down) = read().map_err(sql_err(path, op))?;
            let bytes = i128::from(up) + i128::from(down);
            *out.entry(id).or_default() += if subtract { -bytes } else { bytes };
        }
        Ok(())
    }

    /// [`Store::usage`] for several ranges sharing their end, reading shared pieces once (see
    /// [`Store::usage_by_device_since`]).
    pub fn usage_of_ranges_to(
        &self,
        sel: &Selection,
        tz: &TimeZone,
        starts: &[Timestamp],
        end: Timestamp,
    ) -> Result<Vec<Usage>, QueryError> {
        self.ranges_to(sel, tz, starts, end, Group::Bucket)
    }

    /// [`Store::usage_of_ranges_to`] summing only the internet upload and download bytes (the
    /// other counters and the active minutes are 0): what a data plan counts.
    pub fn internet_of_ranges_to(
        &self,
        sel: &Selection,
        tz: &TimeZone,
        starts: &[Timestamp],
        end: Timestamp,
    ) -> Result<Vec<Usage>, QueryError> {
        self.ranges_to(sel, tz, starts, end, Group::BucketInternet)
    }

    fn ranges_to(
        &self,
        sel: &Selection,
        tz: &TimeZone,
        starts: &[Timestamp],
        end: Timestamp,
        group: Group,
    ) -> Result<Vec<Usage>, QueryError> {
        let cov = self.coverage(tz)?;
        let plans: Vec<Plan> = starts
            .iter()
            .map(|&s| self.plan_with(&cov, tz, s, end, Period::Month))
            .collect::<Result<_, _>>()?;
        let (pieces, of_plan) = shared_pieces(&plans, starts);
        let sums: Vec<(Counts, u64)> = pieces
            .iter()
            .map(|&p| {
                let mut sum = (Counts::default(), 0u64);
                self.for_each_row(p, sel, group, |r| {
                    sum.0.add(&r.counts);
                    sum.1 += r.active_minutes;
                    Ok::<(), QueryError>(())
                })?;
                Ok::<_, QueryError>(sum)
            })
            .collect::<Result<_, _>>()?;
        Ok(plans
            .iter()
            .zip(of_plan)
            .map(|(plan, ids)| {
                let mut u = Usage {
                    exact: plan.exact,
                    ..Usage::default()
                };
                for i in ids {
                    u.counts.add(&sums[i].0);
                    u.active_minutes += sums[i].1;
                }
                u
            })
            .collect())
    }

    /// Every device's sums over the rows of one segment, ordered by device id. The rows are
    /// read in key order and summed here: a `GROUP BY device_id` over rows keyed (start,
    /// device_id) made SQLite sort them, and the join to `devices` is one read of that table
    /// instead. Rows come bucket by bucket, each bucket's in device order, so a device's sum is
    /// found by a binary search (the first bucket appends), not by hashing every row.
    fn device_sums(
        &self,
        seg: &Segment,
        counters: Counters,
    ) -> Result<Vec<(i64, Counts, u64)>, StoreError> {
        let (t, key) = table(seg.level);
        let active = if seg.level == Period::Minute {
            "1"
        } else {
            "active_minutes"
        };
        let sql = match counters {
            Counters::All => format!(
                "SELECT device_id, internet_upload_bytes, internet_download_bytes, frames_sent,
                        frames_received, bytes_sent, bytes_received, {active}
                 FROM {t} WHERE {key} >= ?1 AND {key} < ?2"
            ),
            Counters::Internet => format!(
                "SELECT device_id, internet_upload_bytes, internet_download_bytes
                 FROM {t} WHERE {key} >= ?1 AND {key} < ?2"
            ),
        };
        let path = self.path.as_path();
        let op = "reading usage history";
        let mut st = self.conn.prepare_cached(&sql).map_err(sql_err(path, op))?;
        let mut rows = st
            .query(rusqlite::params![seg.from, seg.to])
            .map_err(sql_err(path, op))?;
        let mut out: Vec<(i64, Counts, u64)> = Vec::new();
        while let Some(r) = rows.next().map_err(sql_err(path, op))? {
            let read = || -> rusqlite::Result<(i64, Counts, u64)> {
                let mut c = Counts {
                    internet_upload_bytes: get_u64(r, 1)?,
                    internet_download_bytes: get_u64(r, 2)?,
                    ..Counts::default()
                };
                let mut a = 0;
                if counters == Counters::All {
                    c.frames_sent = get_u64(r, 3)?;
                    c.frames_received = get_u64(r, 4)?;
                    c.bytes_sent = get_u64(r, 5)?;
                    c.bytes_received = get_u64(r, 6)?;
                    a = get_u64(r, 7)?;
                }
                Ok((r.get(0)?, c, a))
            };
            let (id, c, a) = read().map_err(sql_err(path, op))?;
            let i = match out.last() {
                Some(last) if last.0 < id => out.len(),
                _ => match out.binary_search_by_key(&id, |e| e.0) {
                    Ok(i) => {
                        out[i].1.add(&c);
                        out[i].2 += a;
                        continue;
                    }
                    Err(i) => i,
                },
            };
            out.insert(i, (id, c, a));
        }
        Ok(out)
    }

    /// Every device's MAC and gateway flag by id.
    fn device_keys(&self) -> Result<HashMap<i64, (MacAddr, bool)>, StoreError> {
        let path = self.path.as_path();
        let op = "reading devices";
        let mut st = self
            .conn
            .prepare_cached("SELECT id, mac, is_gateway FROM devices")
            .map_err(sql_err(path, op))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, (mac_from_key(r.get(1)?), r.get(2)?)))
            })
            .map_err(sql_err(path, op))?;
        rows.collect::<Result<_, _>>().map_err(sql_err(path, op))
    }

    /// The `n` household devices with the most bytes (sent + received) in `[from, to)`, most
    /// first; the gateway and "other" are not devices and are left out.
    pub fn top_devices(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
        n: usize,
    ) -> Result<Vec<DeviceUsage>, QueryError> {
        let (mut all, _) = self.usage_by_device(tz, from, to)?;
        all.retain(|d| !d.is_gateway && d.mac != OTHER);
        all.sort_by(|a, b| {
            b.total_bytes()
                .cmp(&a.total_bytes())
                .then(a.mac.cmp(&b.mac))
        });
        all.truncate(n);
        Ok(all)
    }

    /// Minutes with traffic per device in `[from, to)` (a stand-in for real presence, which
    /// discovery owns): exact at every level, since rollups count the minutes they fold in.
    pub fn active_minutes(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(MacAddr, u64)>, QueryError> {
        let (all, _) = self.usage_by_device(tz, from, to)?;
        Ok(all
            .into_iter()
            .filter(|d| d.mac != OTHER)
            .map(|d| (d.mac, d.active_minutes))
            .collect())
    }

    /// The bucket size a chart of `[from, to)` should use: about 100 to 200 points, never a
    /// size whose rows retention has already deleted at the range's start.
    pub fn auto_period(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Period, QueryError> {
        let span = to.as_second().saturating_sub(from.as_second());
        let by_span = if span <= 3 * 3600 {
            Period::Minute
        } else if span <= 8 * 86_400 {
            Period::Hour
        } else if span <= 200 * 86_400 {
            Period::Day
        } else {
            Period::Month
        };
        let cov = self.coverage(tz)?;
        let from_s = from.as_second();
        Ok(Period::ALL
            .into_iter()
            .filter(|&p| p >= by_span)
            .find(|&p| p == Period::Month || from_s >= cov.kept[idx(p)])
            .unwrap_or(Period::Month))
    }

    /// Usage of `sel` per `period` bucket (chosen with [`Store::auto_period`] when `None`).
    pub fn usage_series(
        &self,
        sel: &Selection,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
        period: Option<Period>,
    ) -> Result<Series, QueryError> {
        let period = match period {
            Some(p) => p,
            None => self.auto_period(tz, from, to)?,
        };
        let plan = self.plan_range(tz, from, to, period)?;
        let mut points: Vec<Point> = Vec::new();
        // Rows arrive in time order and nest in the output buckets, so each row either adds to
        // the last point or opens the next one.
        let mut end = i64::MIN;
        for seg in plan.segments {
            // A row of the series' own level is a whole bucket: its start is the point's, with
            // no calendar arithmetic (a year of days is 365 of them).
            let whole = seg.level == period;
            self.for_each_row(seg, sel, Group::Bucket, |r| {
                if whole {
                    let start = Timestamp::from_second(r.start).map_err(|e| QueryError::Time {
                        period,
                        zone: String::new(),
                        at: r.start,
                        detail: e.to_string(),
                    })?;
                    // Any later row, whichever level, starts a point of its own.
                    end = r.start.saturating_add(1);
                    points.push(Point {
                        start,
                        counts: r.counts,
                        active_minutes: r.active_minutes,
                    });
                    return Ok(());
                }
                if r.start >= end || points.is_empty() {
                    let (s, e) =
                        bucket_secs(period, r.start, tz).map_err(|e| QueryError::Time {
                            period,
                            zone: tz.iana_name().unwrap_or("(unnamed)").to_string(),
                            at: r.start,
                            detail: e.to_string(),
                        })?;
                    end = e;
                    // The open bucket's own row (rolled in part) came first: the finer rows
                    // after its watermark add to that point.
                    if let Some(p) = points.last_mut()
                        && p.start.as_second() == s
                    {
                        p.counts.add(&r.counts);
                        p.active_minutes += r.active_minutes;
                        return Ok(());
                    }
                    let start = Timestamp::from_second(s).map_err(|e| QueryError::Time {
                        period,
                        zone: String::new(),
                        at: s,
                        detail: e.to_string(),
                    })?;
                    points.push(Point {
                        start,
                        counts: Counts::default(),
                        active_minutes: 0,
                    });
                }
                if let Some(p) = points.last_mut() {
                    p.counts.add(&r.counts);
                    p.active_minutes += r.active_minutes;
                }
                Ok::<(), QueryError>(())
            })?;
        }
        Ok(Series {
            period,
            points,
            exact: plan.exact,
        })
    }

    /// Usage of `sel` by local weekday and hour of day over `[from, to)`. Needs hour rows:
    /// days older than the hour retention are left out (and `exact` is false).
    pub fn heatmap(
        &self,
        sel: &Selection,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Heatmap, QueryError> {
        let plan = self.plan_range(tz, from, to, Period::Hour)?;
        let mut cells = [[Counts::default(); 24]; 7];
        // Each row (an hour, or a minute of the hour not rolled up yet) goes straight to its
        // cell: the local wall clock is the UTC second plus the zone's offset then, so no
        // calendar arithmetic per row. 1970-01-01 was a Thursday (Monday = 0: 3).
        for seg in plan.segments {
            self.for_each_row(seg, sel, Group::Bucket, |r| {
                let at = Timestamp::from_second(r.start).map_err(|e| QueryError::Time {
                    period: Period::Hour,
                    zone: tz.iana_name().unwrap_or("(unnamed)").to_string(),
                    at: r.start,
                    detail: e.to_string(),
                })?;
                let local = r.start + i64::from(tz.to_offset(at).seconds());
                let wd = (local.div_euclid(86_400) + 3).rem_euclid(7) as usize;
                let h = (local.rem_euclid(86_400) / 3600) as usize;
                if let Some(cell) = cells.get_mut(wd).and_then(|row| row.get_mut(h)) {
                    cell.add(&r.counts);
                }
                Ok::<(), QueryError>(())
            })?;
        }
        Ok(Heatmap {
            cells,
            exact: plan.exact,
        })
    }

    /// Usage of `sel` in each billing cycle `[start, end)` (the plan module computes them).
    pub fn usage_per_cycle(
        &self,
        sel: &Selection,
        tz: &TimeZone,
        cycles: &[(Timestamp, Timestamp)],
    ) -> Result<Vec<Usage>, QueryError> {
        cycles
            .iter()
            .map(|&(s, e)| self.usage(sel, tz, s, e))
            .collect()
    }
}

impl Store {
    /// The first and past-the-end instants of the stored history over every level (`None` when
    /// nothing is stored): the default range of an export.
    pub(crate) fn data_extent(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let path = self.path.as_path();
        let op = "reading the extent of the history";
        let mut first: Option<i64> = None;
        let mut last: Option<i64> = None;
        for level in Period::ALL {
            let (t, key) = table(level);
            let (lo, hi): (Option<i64>, Option<i64>) = self
                .conn
                // Two subqueries, not `min(), max()` in one: SQLite answers a lone min or max
                // from the key's B-tree edge, but scans the whole table for the pair (this was
                // most of the plan report's time on a year of history).
                .query_row(
                    &format!("SELECT (SELECT min({key}) FROM {t}), (SELECT max({key}) FROM {t})"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql_err(path, op))?;
            if let (Some(lo), Some(hi)) = (lo, hi) {
                // Any later boundary will do as the end: the planner only reads stored rows.
                let end = hi.saturating_add(match level {
                    Period::Minute => 60,
                    Period::Hour => 2 * 3600,
                    Period::Day => 2 * 86_400,
                    Period::Month => 32 * 86_400,
                });
                first = Some(first.map_or(lo, |f| f.min(lo)));
                last = Some(last.map_or(end, |l| l.max(end)));
            }
        }
        Ok(first.zip(last))
    }
}

impl Store {
    /// The first stored bucket of each level (minute, hour, day, month), `None` for an empty
    /// level: how far back each level's history reaches, read from each table's key edge
    /// (O(log n), where counting the rows reads them all).
    pub fn level_starts(&self) -> Result<[Option<i64>; 4], StoreError> {
        let mut out = [None; 4];
        for (i, level) in Period::ALL.into_iter().enumerate() {
            let (t, key) = table(level);
            out[i] = self
                .conn
                .prepare_cached(&format!("SELECT min({key}) FROM {t}"))
                .and_then(|mut st| st.query_row([], |r| r.get(0)))
                .map_err(sql_err(&self.path, "reading how far the history reaches"))?;
        }
        Ok(out)
    }

    /// Rows stored per level (minute, hour, day, month): for benchmarks (reads every row).
    pub fn level_rows(&self) -> Result<[u64; 4], StoreError> {
        let mut out = [0; 4];
        for (i, level) in Period::ALL.into_iter().enumerate() {
            let (t, _) = table(level);
            let n: i64 = self
                .conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .map_err(sql_err(&self.path, "counting history rows"))?;
            out[i] = n.unsigned_abs();
        }
        Ok(out)
    }
}
