//! The household data plan in the database: the plan settings, calibration offsets, quotas, the
//! keys of plan alerts already sent, and [`Store::plan_report`], which reads the history and
//! hands it to the pure `crate::plan` arithmetic (the one place the two meet, so the web pages,
//! the API, the CLI and the alert engine all show the same numbers).
//!
//! Cycles are never stored: each report computes them from the current settings and reads the
//! usage per cycle from the history (`usage_per_cycle`), so changing the cycle re-reads every
//! past cycle with its new bounds. A calibration keeps the bounds of the cycle it was made in
//! and applies only while a cycle has exactly those bounds. This module never decides anything
//! about budgets or alerts itself.
use super::discovery::DeviceRecord;
use super::query::{QueryError, Selection};
use super::{Store, StoreError, sql_err};
use crate::model::MacAddr;
use crate::plan::{
    self, AlertState, Calibration, Counted, Cycle, CycleRule, DayUsage, Plan, PlanAlert, PlanError,
    PlanSource, PlanStatus, Quota, QuotaPeriod, QuotaStatus, QuotaSubject,
};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use std::collections::HashMap;

/// Past cycles a report lists.
pub const PAST_CYCLES: usize = 6;
/// Calibrations kept per report listing (the table keeps every one; they are a few a month).
const CALIBRATIONS_LISTED: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum PlanReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// One day of the current cycle for the per-day chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayBar {
    #[serde(serialize_with = "ser_display")]
    pub date: Date,
    /// Counted usage (today: so far); `None` for a future day or a day before history began.
    pub used_bytes: Option<u64>,
    /// Expected further usage (today: the rest of it); `None` for past days.
    pub projected_bytes: Option<u64>,
}

/// A past cycle's usage, read with the current cycle settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CycleUsage {
    pub cycle: Cycle,
    pub measured_bytes: u64,
    pub offset_bytes: i64,
    pub used_bytes: u64,
    pub used_pct: Option<f64>,
    pub exact: bool,
}

/// Everything the plan pages, the API, `lanmeter plan` and the alert engine need.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanReport {
    pub plan: Plan,
    /// The household zone the cycles are computed in.
    pub zone: String,
    pub status: PlanStatus,
    /// Exceeded (when, by how much), runs out on a day, on track, or unlimited.
    pub state: plan::PlanState,
    pub quotas: Vec<QuotaStatus>,
    /// Every day of the current cycle.
    pub days: Vec<DayBar>,
    /// The allowance shared evenly over the cycle's days (the chart's budget line).
    pub even_daily_share: Option<u64>,
    /// Oldest first; cycles that ended before history began are left out.
    pub past: Vec<CycleUsage>,
    /// The calibrations made in the current cycle, newest first.
    pub calibrations: Vec<Calibration>,
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn ts(&self, s: i64) -> Result<Timestamp, StoreError> {
        Timestamp::from_second(s).map_err(|e| self.corrupt(format!("time {s} out of range: {e}")))
    }

    /// The saved plan, or the default (unlimited, calendar month) before anyone saved one.
    pub fn plan(&self) -> Result<Plan, StoreError> {
        let op = "reading the data plan";
        type Row = (
            Option<i64>,
            String,
            i64,
            i64,
            Option<String>,
            String,
            String,
            String,
        );
        let row: Option<Row> = self
            .conn
            .query_row(
                "SELECT allowance_bytes, cycle_kind, start_day, every_days, anchor_date, counted, thresholds, source
                 FROM plan_settings WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .optional()
            .map_err(sql_err(&self.path, op))?;
        let Some((allowance, kind, start_day, every_days, anchor, counted, thresholds, source)) =
            row
        else {
            return Ok(Plan::default());
        };
        let bad = |what: &str| self.corrupt(format!("plan_settings: {what}"));
        let cycle = match kind.as_str() {
            "monthly" => CycleRule::Monthly {
                start_day: u8::try_from(start_day).map_err(|_| bad("start_day"))?,
            },
            _ => CycleRule::EveryNDays {
                days: u16::try_from(every_days).map_err(|_| bad("every_days"))?,
                anchor: anchor
                    .as_deref()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| bad("anchor_date"))?,
            },
        };
        Ok(Plan {
            allowance_bytes: allowance.map(i64::unsigned_abs),
            cycle,
            counted: Counted::parse(&counted).ok_or_else(|| bad("counted"))?,
            source: PlanSource::parse(&source).ok_or_else(|| bad("source"))?,
            thresholds: plan::parse_thresholds(&thresholds).map_err(|_| bad("thresholds"))?,
        })
    }

    /// Saves the plan (validated by the caller with [`Plan::validate`]).
    pub fn set_plan(&self, p: &Plan, now: i64) -> Result<(), StoreError> {
        let (kind, start_day, every_days, anchor) = match p.cycle {
            CycleRule::Monthly { start_day } => ("monthly", i64::from(start_day), 30, None),
            CycleRule::EveryNDays { days, anchor } => {
                ("every_n_days", 1, i64::from(days), Some(anchor.to_string()))
            }
        };
        self.conn
            .execute(
                "INSERT OR REPLACE INTO plan_settings
                 (id, allowance_bytes, cycle_kind, start_day, every_days, anchor_date, counted, thresholds, updated_at, source)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    p.allowance_bytes.map(to_i64),
                    kind,
                    start_day,
                    every_days,
                    anchor,
                    p.counted.as_str(),
                    plan::format_thresholds(&p.thresholds),
                    now,
                    p.source.as_str()
                ],
            )
            .map_err(sql_err(&self.path, "saving the data plan"))?;
        Ok(())
    }

    pub fn add_calibration(&self, c: &Calibration) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO plan_calibrations
                 (cycle_start, cycle_end, reported_at, reported_bytes, measured_bytes, offset_bytes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    c.cycle_start.as_second(),
                    c.cycle_end.as_second(),
                    c.reported_at.as_second(),
                    to_i64(c.reported_bytes),
                    to_i64(c.measured_bytes),
                    c.offset_bytes,
                    c.created_at.as_second()
                ],
            )
            .map_err(sql_err(&self.path, "saving a calibration"))?;
        Ok(())
    }

    /// Removes the offsets of `cycle`; returns how many calibrations were removed.
    pub fn clear_calibrations(&self, cycle: &Cycle) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM plan_calibrations WHERE cycle_start = ?1 AND cycle_end = ?2",
                params![cycle.start.as_second(), cycle.end.as_second()],
            )
            .map_err(sql_err(&self.path, "removing calibrations"))
    }

    /// Calibrations, newest first; only those of cycles overlapping `[from, to)`.
    pub fn calibrations(&self, from: i64, to: i64) -> Result<Vec<Calibration>, StoreError> {
        let op = "reading calibrations";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT cycle_start, cycle_end, reported_at, reported_bytes, measured_bytes, offset_bytes, created_at
                 FROM plan_calibrations WHERE cycle_end > ?1 AND cycle_start < ?2
                 ORDER BY created_at DESC, id DESC LIMIT ?3",
            )
            .map_err(sql_err(&self.path, op))?;
        let rows: Vec<[i64; 7]> = st
            .query_map(params![from, to, CALIBRATIONS_LISTED], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ])
            })
            .map_err(sql_err(&self.path, op))?
            .collect::<Result<_, _>>()
            .map_err(sql_err(&self.path, op))?;
        rows.into_iter()
            .map(|r| {
                Ok(Calibration {
                    cycle_start: self.ts(r[0])?,
                    cycle_end: self.ts(r[1])?,
                    reported_at: self.ts(r[2])?,
                    reported_bytes: r[3].unsigned_abs(),
                    measured_bytes: r[4].unsigned_abs(),
                    offset_bytes: r[5],
                    created_at: self.ts(r[6])?,
                })
            })
            .collect()
    }

    pub fn quotas(&self) -> Result<Vec<Quota>, StoreError> {
        let op = "reading quotas";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, subject_kind, subject, period, limit_bytes FROM quotas
                 ORDER BY subject_kind, subject COLLATE NOCASE, period",
            )
            .map_err(sql_err(&self.path, op))?;
        let rows: Vec<(i64, String, String, String, i64)> = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(sql_err(&self.path, op))?
            .collect::<Result<_, _>>()
            .map_err(sql_err(&self.path, op))?;
        rows.into_iter()
            .map(|(id, kind, subject, period, limit)| {
                let subject = match kind.as_str() {
                    "device" => QuotaSubject::Device(
                        subject
                            .parse::<MacAddr>()
                            .map_err(|_| self.corrupt(format!("quota {id}: bad MAC")))?,
                    ),
                    "person" => QuotaSubject::Person(subject),
                    _ => QuotaSubject::Group(subject),
                };
                Ok(Quota {
                    id,
                    subject,
                    period: QuotaPeriod::parse(&period)
                        .ok_or_else(|| self.corrupt(format!("quota {id}: bad period")))?,
                    limit_bytes: limit.unsigned_abs(),
                })
            })
            .collect()
    }

    /// Adds a quota, or changes the limit of the one with the same subject and period; returns
    /// its id.
    pub fn upsert_quota(
        &self,
        subject: &QuotaSubject,
        period: QuotaPeriod,
        limit_bytes: u64,
        now: i64,
    ) -> Result<i64, StoreError> {
        let op = "saving a quota";
        self.conn
            .query_row(
                "INSERT INTO quotas (subject_kind, subject, period, limit_bytes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (subject_kind, subject, period) DO UPDATE SET limit_bytes = excluded.limit_bytes
                 RETURNING id",
                params![
                    subject.kind(),
                    subject.name(),
                    period.as_str(),
                    to_i64(limit_bytes.max(1)),
                    now
                ],
                |r| r.get(0),
            )
            .map_err(sql_err(&self.path, op))
    }

    /// Deletes a quota; false when there was none with that id.
    pub fn delete_quota(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM quotas WHERE id = ?1", [id])
            .map_err(sql_err(&self.path, "deleting a quota"))?;
        Ok(n > 0)
    }

    /// The plan alert keys already sent whose window has not ended at `now`.
    pub fn plan_alert_state(&self, now: i64) -> Result<AlertState, StoreError> {
        let op = "reading the plan alert state";
        let mut st = self
            .conn
            .prepare_cached("SELECT key FROM plan_alerts_sent WHERE window_end > ?1")
            .map_err(sql_err(&self.path, op))?;
        let sent = st
            .query_map([now], |r| r.get(0))
            .map_err(sql_err(&self.path, op))?
            .collect::<Result<_, _>>()
            .map_err(sql_err(&self.path, op))?;
        Ok(AlertState { sent })
    }

    /// Records `alert` as sent (every key in its `marks`, until its window ends) and forgets
    /// keys whose window has ended.
    pub fn mark_plan_alert(&self, alert: &PlanAlert, now: i64) -> Result<(), StoreError> {
        let op = "recording a plan alert";
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql_err(&self.path, op))?;
        for key in &alert.marks {
            tx.execute(
                "INSERT OR REPLACE INTO plan_alerts_sent (key, window_end, sent_at) VALUES (?1, ?2, ?3)",
                params![key, alert.window_end.as_second(), now],
            )
            .map_err(sql_err(&self.path, op))?;
        }
        tx.execute("DELETE FROM plan_alerts_sent WHERE window_end <= ?1", [now])
            .map_err(sql_err(&self.path, op))?;
        tx.commit().map_err(sql_err(&self.path, op))
    }

    /// Counted bytes of `sel` over `[from, to)` (0 for an empty range) and whether exact.
    pub fn counted_usage(
        &self,
        counted: Counted,
        sel: &Selection,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(u64, bool), QueryError> {
        if from >= to {
            return Ok((0, true));
        }
        let u = self.usage(sel, tz, from, to)?;
        Ok((counted.bytes(&u.counts), u.exact))
    }

    /// The household's usage over `[from, to)` as `p` counts it: the devices' internet bytes
    /// or, with [`PlanSource::Router`], the router's WAN bytes; and whether exact. The plan's
    /// used bytes, today's bytes, the day bars, past cycles and calibrations all read this.
    pub fn plan_usage(
        &self,
        p: &Plan,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(u64, bool), QueryError> {
        match p.source {
            PlanSource::Devices => {
                self.counted_usage(p.counted, &Selection::Household, tz, from, to)
            }
            PlanSource::Router if from >= to => Ok((0, true)),
            PlanSource::Router => {
                let r = self.router_usage(tz, from, to)?;
                Ok((p.counted.router_bytes(r.bytes_up, r.bytes_down), r.exact))
            }
        }
    }

    /// [`Store::plan_usage`] of `[start, end)` for each start, reading the rows the ranges
    /// share once.
    pub fn plan_usage_since<const N: usize>(
        &self,
        p: &Plan,
        tz: &TimeZone,
        starts: [Timestamp; N],
        end: Timestamp,
    ) -> Result<[(u64, bool); N], QueryError> {
        let mut out = [(0, true); N];
        if p.source != PlanSource::Devices {
            for (o, s) in out.iter_mut().zip(starts) {
                *o = self.plan_usage(p, tz, s, end)?;
            }
            return Ok(out);
        }
        let live: Vec<(usize, Timestamp)> = starts
            .iter()
            .enumerate()
            .filter(|(_, s)| **s < end)
            .map(|(i, s)| (i, *s))
            .collect();
        let froms: Vec<Timestamp> = live.iter().map(|x| x.1).collect();
        // A plan counts internet bytes only (`Counted::bytes`).
        let read = self.internet_of_ranges_to(&Selection::Household, tz, &froms, end)?;
        for ((i, _), u) in live.into_iter().zip(read) {
            out[i] = (p.counted.bytes(&u.counts), u.exact);
        }
        Ok(out)
    }

    /// The plan, its current cycle and quotas with everything measured, at `now` in `tz`.
    pub fn plan_report(
        &self,
        tz: &TimeZone,
        now: Timestamp,
    ) -> Result<PlanReport, PlanReportError> {
        self.plan_report_with(tz, now, true)
    }

    /// [`Store::plan_report`] without the past cycles (`past` is empty): what the overview's
    /// plan card shows, read on every uncached overview.
    pub fn plan_summary(
        &self,
        tz: &TimeZone,
        now: Timestamp,
    ) -> Result<PlanReport, PlanReportError> {
        self.plan_report_with(tz, now, false)
    }

    /// The plan and its quotas with their use: what a device page shows of the plan.
    pub fn quota_report(
        &self,
        tz: &TimeZone,
        now: Timestamp,
    ) -> Result<(Plan, Vec<QuotaStatus>), PlanReportError> {
        let p = self.plan()?;
        let quotas = self.quota_statuses(&p, tz, now)?;
        Ok((p, quotas))
    }

    fn plan_report_with(
        &self,
        tz: &TimeZone,
        now: Timestamp,
        with_past: bool,
    ) -> Result<PlanReport, PlanReportError> {
        let p = self.plan()?;
        let cycle = plan::cycle_containing(&p, now, tz)?;
        let today = now.to_zoned(tz.clone()).date();
        let today_start = plan::day_start(today, tz)?;
        let [(measured, exact), (today_bytes, _)] =
            self.plan_usage_since(&p, tz, [cycle.start, today_start.max(cycle.start)], now)?;
        // The history's extent, read once for the recent days, the day bars and past cycles.
        let extent = self.data_extent()?;
        let first = match extent {
            Some((f, _)) => Some(self.ts(f)?.to_zoned(tz.clone()).date()),
            None => None,
        };
        let recent = self.recent_days(&p, tz, today, first)?;
        let calibrations = self.calibrations(cycle.start.as_second(), cycle.end.as_second())?;
        let offset = plan::offset_for(&cycle, &calibrations);
        let status = plan::status(plan::StatusInput {
            plan: &p,
            cycle: cycle.clone(),
            now,
            tz,
            measured_bytes: measured,
            today_bytes,
            offset_bytes: offset,
            recent: &recent,
            exact,
        })?;
        let days = self.day_bars(&p, tz, &cycle, today, &status, first)?;
        let so_far: Vec<(Date, u64)> = days
            .iter()
            .take_while(|d| d.date <= today)
            .map(|d| (d.date, d.used_bytes.unwrap_or(0)))
            .collect();
        let state = plan::plan_state(&status, &so_far);
        let past = if with_past {
            self.past_usage(&p, tz, now, extent.map(|e| e.0))?
        } else {
            Vec::new()
        };
        let quotas = self.quota_statuses(&p, tz, now)?;
        Ok(PlanReport {
            even_daily_share: plan::even_daily_share(&p, &cycle),
            zone: tz.iana_name().unwrap_or("(unnamed)").to_string(),
            plan: p,
            status,
            state,
            quotas,
            days,
            past,
            calibrations: calibrations
                .into_iter()
                .filter(|c| c.cycle_start == cycle.start && c.cycle_end == cycle.end)
                .collect(),
        })
    }

    /// Counted usage per local day from `from` up to (not including) `to`, by date.
    fn daily(
        &self,
        p: &Plan,
        tz: &TimeZone,
        from: Date,
        to: Date,
    ) -> Result<HashMap<Date, u64>, PlanReportError> {
        let (a, b) = (plan::day_start(from, tz)?, plan::day_start(to, tz)?);
        if a >= b {
            return Ok(HashMap::new());
        }
        if p.source == PlanSource::Router {
            // A few dozen days at most (a cycle, the projection's history): one sum each.
            let mut out = HashMap::new();
            for d in from
                .series(jiff::Span::new().days(1))
                .take_while(|d| *d < to)
            {
                let next = d.tomorrow().map_err(|e| PlanError::Time {
                    zone: tz.iana_name().unwrap_or("(unnamed)").to_string(),
                    at: d.to_string(),
                    detail: e.to_string(),
                })?;
                let (start, end) = (plan::day_start(d, tz)?, plan::day_start(next, tz)?);
                out.insert(d, self.plan_usage(p, tz, start, end)?.0);
            }
            return Ok(out);
        }
        let counted = p.counted;
        let series = self.usage_series(
            &Selection::Household,
            tz,
            a,
            b,
            Some(super::period::Period::Day),
        )?;
        Ok(series
            .points
            .iter()
            .map(|p| {
                (
                    p.start.to_zoned(tz.clone()).date(),
                    counted.bytes(&p.counts),
                )
            })
            .collect())
    }

    /// The complete days before `today` the projection looks at.
    fn recent_days(
        &self,
        p: &Plan,
        tz: &TimeZone,
        today: Date,
        first: Option<Date>,
    ) -> Result<Vec<DayUsage>, PlanReportError> {
        let n = plan::PROJECTION_HISTORY_DAYS as i64;
        let from = today
            .checked_sub(jiff::Span::new().days(n))
            .map_err(|e| PlanError::Time {
                zone: String::new(),
                at: today.to_string(),
                detail: e.to_string(),
            })?;
        let by_day = self.daily(p, tz, from, today)?;
        Ok(from
            .series(jiff::Span::new().days(1))
            .take_while(|d| *d < today)
            .map(|d| DayUsage {
                date: d,
                bytes: match first {
                    Some(f) if d >= f => Some(by_day.get(&d).copied().unwrap_or(0)),
                    _ => None,
                },
            })
            .collect())
    }

    fn day_bars(
        &self,
        p: &Plan,
        tz: &TimeZone,
        cycle: &Cycle,
        today: Date,
        status: &PlanStatus,
        first: Option<Date>,
    ) -> Result<Vec<DayBar>, PlanReportError> {
        let today_bytes = status.today_bytes;
        let by_day = self.daily(p, tz, cycle.first_day, today.min(cycle.last_day))?;
        let projected: HashMap<Date, u64> = status.projection.per_day.iter().copied().collect();
        Ok(cycle
            .dates()
            .map(|d| {
                let used = if d < today {
                    match first {
                        Some(f) if d >= f => Some(by_day.get(&d).copied().unwrap_or(0)),
                        _ => None,
                    }
                } else if d == today {
                    Some(today_bytes)
                } else {
                    None
                };
                DayBar {
                    date: d,
                    used_bytes: used,
                    projected_bytes: (d >= today).then(|| projected.get(&d).copied().unwrap_or(0)),
                }
            })
            .collect())
    }

    fn past_usage(
        &self,
        p: &Plan,
        tz: &TimeZone,
        now: Timestamp,
        first: Option<i64>,
    ) -> Result<Vec<CycleUsage>, PlanReportError> {
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let cycles: Vec<Cycle> = plan::past_cycles(p, now, PAST_CYCLES, tz)?
            .into_iter()
            .filter(|c| c.end.as_second() > first)
            .collect();
        let (Some(oldest), Some(newest)) = (cycles.first(), cycles.last()) else {
            return Ok(Vec::new());
        };
        let cals = self.calibrations(oldest.start.as_second(), newest.end.as_second())?;
        let ranges: Vec<(Timestamp, Timestamp)> = cycles.iter().map(|c| (c.start, c.end)).collect();
        let usage: Vec<(u64, bool)> = match p.source {
            PlanSource::Devices => self
                .usage_per_cycle(&Selection::Household, tz, &ranges)?
                .into_iter()
                .map(|u| (p.counted.bytes(&u.counts), u.exact))
                .collect(),
            PlanSource::Router => ranges
                .iter()
                .map(|(from, to)| self.plan_usage(p, tz, *from, (*to).min(now)))
                .collect::<Result<_, _>>()?,
        };
        Ok(cycles
            .into_iter()
            .zip(usage)
            .map(|(c, (measured, exact))| {
                let offset = plan::offset_for(&c, &cals);
                let used = plan::apply_offset(measured, offset);
                CycleUsage {
                    used_pct: p.allowance_bytes.map(|a| used as f64 * 100.0 / a as f64),
                    cycle: c,
                    measured_bytes: measured,
                    offset_bytes: offset,
                    used_bytes: used,
                    exact,
                }
            })
            .collect())
    }

    /// Every quota with its use in its window. Reads O(rows of the covered devices): each
    /// quota's subject is resolved without the full device list, and each distinct window is
    /// read once for the devices the quotas cover, not for the whole household.
    fn quota_statuses(
        &self,
        p: &Plan,
        tz: &TimeZone,
        now: Timestamp,
    ) -> Result<Vec<QuotaStatus>, PlanReportError> {
        let quotas = self.quotas()?;
        if quotas.is_empty() {
            return Ok(Vec::new());
        }
        let subjects = self.quota_subjects(&quotas)?;
        // The windows, and per distinct window the union of the devices its quotas cover.
        let mut windows: Vec<((Timestamp, Timestamp), Timestamp)> =
            Vec::with_capacity(quotas.len());
        let mut reads: Vec<(Timestamp, Timestamp, Vec<i64>)> = Vec::new();
        for (q, (_, devices)) in quotas.iter().zip(&subjects) {
            let window = plan::quota_window(p, q.period, now, tz)?;
            let end = now.min(window.1);
            windows.push((window, end));
            if devices.is_empty() || window.0 >= end {
                continue;
            }
            let i = match reads.iter().position(|r| r.0 == window.0 && r.1 == end) {
                Some(i) => i,
                None => {
                    reads.push((window.0, end, Vec::new()));
                    reads.len() - 1
                }
            };
            reads[i].2.extend(devices.iter().filter_map(|d| d.0));
        }
        let mut used_by: Vec<HashMap<i64, crate::model::Counts>> = Vec::with_capacity(reads.len());
        for (from, to, ids) in &mut reads {
            ids.sort_unstable();
            ids.dedup();
            used_by.push(self.quota_device_usage(tz, ids, *from, *to)?);
        }
        let mut out = Vec::with_capacity(quotas.len());
        for ((q, (label, devices)), (window, end)) in quotas.into_iter().zip(subjects).zip(windows)
        {
            let read = reads
                .iter()
                .position(|r| r.0 == window.0 && r.1 == end)
                .map(|i| &used_by[i]);
            let used = match read {
                Some(by) if !devices.is_empty() => {
                    let mut sum = crate::model::Counts::default();
                    // A device is counted once however it was named.
                    let mut ids: Vec<i64> = devices.iter().filter_map(|d| d.0).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    for id in ids {
                        if let Some(c) = by.get(&id) {
                            sum.add(c);
                        }
                    }
                    p.counted.bytes(&sum)
                }
                _ => 0,
            };
            let macs: Vec<MacAddr> = devices.iter().map(|d| d.1).collect();
            let mut status = plan::quota_status(q, label, macs.len(), window, used);
            status.covers = macs;
            out.push(status);
        }
        Ok(out)
    }

    /// Each quota's label and devices (id, first MAC), as [`subject_devices`] gives them from
    /// the full device list, read with the few columns they need: a device subject by its
    /// MACs, people and groups from one narrow scan of the devices (no facts).
    fn quota_subjects(&self, quotas: &[Quota]) -> Result<Vec<QuotaSubjectDevices>, StoreError> {
        let op = "reading the devices of quotas";
        let e = || sql_err(&self.path, op);
        let people = quotas
            .iter()
            .any(|q| !matches!(q.subject, QuotaSubject::Device(_)));
        // (id, first MAC, owner, group), by id as the device list is ordered.
        let mut all: Vec<(i64, MacAddr, Option<String>, Option<String>)> = Vec::new();
        if people {
            let mut st = self
                .conn
                .prepare_cached("SELECT id, mac, owner, device_group FROM devices ORDER BY id")
                .map_err(e())?;
            all = st
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        super::identity::mac_from_key(r.get(1)?),
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })
                .map_err(e())?
                .collect::<Result<_, _>>()
                .map_err(e())?;
        }
        let matches = |field: &Option<String>, name: &str| {
            field
                .as_deref()
                .is_some_and(|f| f.trim().eq_ignore_ascii_case(name.trim()))
        };
        let mut out = Vec::with_capacity(quotas.len());
        for q in quotas {
            out.push(match &q.subject {
                QuotaSubject::Device(mac) => {
                    // The first device (by id) that has this MAC as its first or any MAC.
                    let key = super::identity::mac_key(*mac);
                    let id: Option<i64> = self
                        .conn
                        .prepare_cached(
                            "SELECT min(id) FROM devices
                             WHERE mac = ?1 OR id IN (SELECT device_id FROM device_macs WHERE mac = ?1)",
                        )
                        .map_err(e())?
                        .query_row([key], |r| r.get(0))
                        .map_err(e())?;
                    let d = match id {
                        Some(id) => self.device(id)?,
                        None => None,
                    };
                    let label = d
                        .as_ref()
                        .and_then(DeviceRecord::display_name)
                        .map_or_else(|| mac.to_string(), str::to_string);
                    // No device has this MAC: the quota covers the MAC alone, which has no rows.
                    let devices = vec![d.map_or((None, *mac), |d| (Some(d.id), d.mac))];
                    (label, devices)
                }
                QuotaSubject::Person(name) => (
                    name.clone(),
                    all.iter()
                        .filter(|d| matches(&d.2, name))
                        .map(|d| (Some(d.0), d.1))
                        .collect(),
                ),
                QuotaSubject::Group(name) => (
                    name.clone(),
                    all.iter()
                        .filter(|d| matches(&d.3, name))
                        .map(|d| (Some(d.0), d.1))
                        .collect(),
                ),
            });
        }
        Ok(out)
    }

    /// The counters of each device of `ids` (sorted) over the minutes starting in
    /// `[from, to)`: the rows the history query plans for the range (coarsest complete
    /// buckets, minutes at the edges), only those of these devices; devices without rows are
    /// absent.
    fn quota_device_usage(
        &self,
        tz: &TimeZone,
        ids: &[i64],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<HashMap<i64, crate::model::Counts>, QueryError> {
        let mut out: HashMap<i64, crate::model::Counts> = HashMap::new();
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        if ids.is_empty() || from >= to {
            return Ok(out);
        }
        let ids = ids.join(",");
        let plan = self.plan_range(tz, from, to, super::period::Period::Month)?;
        let op = "reading the usage of quotas";
        let e = || sql_err(&self.path, op);
        for seg in plan.segments {
            let (t, key) = super::rollup::table(seg.level);
            // Ids are integers from the database, formatted here: no user text in the SQL.
            // Ids are integers from the database, formatted here: no user text in the SQL.
            // Only the internet counters: a plan counts nothing else. Levels with per-bucket
            // totals list the buckets that have rows, and each device's row is a point lookup
            // there; minutes (no totals, an hour or so at the range's end) are scanned.
            let sql = match super::rollup::total_table(seg.level) {
                Some(total) => format!(
                    "SELECT u.device_id, u.internet_upload_bytes, u.internet_download_bytes
                     FROM {total} c CROSS JOIN {t} u ON u.{key} = c.start AND u.device_id IN ({ids})
                     WHERE c.start >= ?1 AND c.start < ?2"
                ),
                None => format!(
                    "SELECT device_id, internet_upload_bytes, internet_download_bytes
                     FROM {t} WHERE {key} >= ?1 AND {key} < ?2 AND device_id IN ({ids})"
                ),
            };
            let mut st = self.conn.prepare_cached(&sql).map_err(e())?;
            let mut rows = st.query(params![seg.from, seg.to]).map_err(e())?;
            while let Some(r) = rows.next().map_err(e())? {
                let v = |i: usize| -> Result<u64, StoreError> {
                    Ok(r.get::<_, i64>(i).map_err(e())?.unsigned_abs())
                };
                let c = out.entry(r.get(0).map_err(e())?).or_default();
                c.internet_upload_bytes += v(1)?;
                c.internet_download_bytes += v(2)?;
            }
        }
        Ok(out)
    }
}

/// A quota's label and its devices: (id, first MAC); no id for a MAC no device has.
type QuotaSubjectDevices = (String, Vec<(Option<i64>, MacAddr)>);

fn gb(b: u64) -> String {
    format!("{:.2} GB", b as f64 / 1e9)
}

/// The text `lanmeter plan` prints.
impl std::fmt::Display for PlanReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.status;
        let p = &self.plan;
        writeln!(
            f,
            "plan:      {}, {}, counting {} {}, time zone {}",
            p.allowance_bytes
                .map_or_else(|| "unlimited".to_string(), |a| format!("{} a cycle", gb(a))),
            p.cycle,
            p.counted.describe(),
            p.source.describe(),
            self.zone
        )?;
        writeln!(
            f,
            "cycle:     {} to {} ({:.0} % elapsed, {} day(s) left)",
            s.cycle.first_day, s.cycle.last_day, s.elapsed_pct, s.days_left
        )?;
        write!(f, "used:      {}", gb(s.used_bytes))?;
        if let (Some(a), Some(pct)) = (s.allowance_bytes, s.used_pct) {
            match s.remaining_bytes.filter(|r| *r > 0) {
                Some(r) => write!(f, " of {} ({pct:.0} %), {} left", gb(a), gb(r))?,
                None => write!(f, " of {} ({pct:.0} %), nothing left", gb(a))?,
            }
        }
        if s.offset_bytes != 0 {
            write!(
                f,
                " (measured {}, calibration offset {:+.2} GB)",
                gb(s.measured_bytes),
                s.offset_bytes as f64 / 1e9
            )?;
        }
        writeln!(f)?;
        write!(f, "today:     {}", gb(s.today_bytes))?;
        if let (Some(safe), Some(h)) = (s.safe_today_bytes, s.safe_today_hd_hours) {
            write!(
                f,
                "; safe budget {} (about {h:.1} h of HD video at {} per hour){}",
                gb(safe),
                gb(plan::HD_VIDEO_BYTES_PER_HOUR),
                if s.over_budget_today {
                    ", exceeded"
                } else {
                    ""
                }
            )?;
        }
        writeln!(f)?;
        write!(
            f,
            "projected: {} by the cycle's end",
            gb(s.projection.end_bytes)
        )?;
        match &self.state {
            plan::PlanState::Exceeded { on, over_bytes } => write!(
                f,
                "; the allowance ran out on {on}, {} over it so far",
                gb(*over_bytes)
            )?,
            plan::PlanState::RunsOut { on } => write!(f, "; runs out on {on}")?,
            plan::PlanState::OnTrack => write!(f, "; within the allowance")?,
            plan::PlanState::Unlimited => {}
        }
        writeln!(f)?;
        for q in &self.quotas {
            writeln!(
                f,
                "quota:     {} ({}, {}): {} of {} ({:.0} %){}",
                q.label,
                q.quota.subject.kind(),
                q.quota.period.describe(),
                gb(q.used_bytes),
                gb(q.quota.limit_bytes),
                q.used_pct,
                if q.reached { ", reached" } else { "" }
            )?;
        }
        for c in &self.past {
            write!(
                f,
                "past:      {} to {}: {}",
                c.cycle.first_day,
                c.cycle.last_day,
                gb(c.used_bytes)
            )?;
            if let Some(pct) = c.used_pct {
                write!(f, " ({pct:.0} %)")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The label and the devices (by their first MAC, which selects the whole device) a quota
/// covers. Person and group names match case-insensitively, as people type them.
pub fn subject_devices(subject: &QuotaSubject, devices: &[DeviceRecord]) -> (String, Vec<MacAddr>) {
    match subject {
        QuotaSubject::Device(mac) => {
            let d = devices
                .iter()
                .find(|d| d.mac == *mac || d.macs.iter().any(|m| m.mac == *mac));
            let label = d
                .and_then(DeviceRecord::display_name)
                .map_or_else(|| mac.to_string(), str::to_string);
            (label, vec![d.map_or(*mac, |d| d.mac)])
        }
        QuotaSubject::Person(name) | QuotaSubject::Group(name) => {
            let pick = |d: &&DeviceRecord| {
                let field = match subject {
                    QuotaSubject::Person(_) => d.user.owner.as_deref(),
                    _ => d.user.group.as_deref(),
                };
                field.is_some_and(|f| f.trim().eq_ignore_ascii_case(name.trim()))
            };
            (
                name.clone(),
                devices.iter().filter(pick).map(|d| d.mac).collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests;
