//! The household data plan, pure: billing cycles, what the ISP counts, used / remaining / safe
//! budget for today, the projection to the cycle's end, calibration offsets, quotas, and the
//! plan and quota alert situations. It owns the arithmetic and never touches the database, the
//! clock or the network: callers (the store's `plan_report`, the web pages, the CLI, the alert
//! engine) pass the instants and the usage in, so every rule here is testable with constructed
//! numbers.
//!
//! **Where the settings live.** The plan (allowance, cycle, what counts, alert thresholds) is a
//! runtime setting kept in the database and edited on the web page `/plan/settings`: it
//! changes with the household's contract and an admin should not need a shell for that. The
//! only plan-related key in the config file is the existing `timezone`: it already decides the
//! day and month rollups, and cycles must start on the same local midnights for whole days to be
//! read from those rollups.
//!
//! **Cycles.** A cycle is a range of whole local days `[first_day, last_day]`, i.e. the instants
//! `[start of first_day, start of the day after last_day)` in the household zone (a day that
//! begins in a DST gap begins at its first existing instant, as the store's day buckets do).
//! Monthly cycles start on day N of every month; when a month is shorter than N the cycle
//! starts on its last day (start day 31: Jan 31, Feb 28/29, Mar 31, Apr 30 ...). "Every N days"
//! cycles start on an anchor date and every N local days before and after it. Every instant
//! lies in exactly one cycle ([`cycle_containing`]).
//!
//! **Projection** ([`project`]): classical multiplicative decomposition of the daily usage.
//! - *Level*: the mean of the last 7 complete days (one of each weekday, so it carries no
//!   weekday rhythm). It is the level at the middle of that week, 4 days before today.
//! - *Trend*: (mean of the last 7 days − mean of the 7 before) ÷ 7, per day, only when all 14
//!   days are known and only when positive: a falling pace (a holiday week) is not
//!   extrapolated, which errs on the side of warning. Day `j` ahead (0 = today) is expected at
//!   `level + trend × (j + 4)`; for usage that grows linearly this is exact.
//! - *Weekday rhythm*: each known day's usage divided by the centred 7-day mean around it
//!   (which removes both level and trend), averaged per weekday over the last 28 days and
//!   normalised to a mean of 1. Used only when every weekday has at least two such ratios
//!   (about three weeks of history); otherwise every factor is 1.
//! - The rest of today is its expected usage times the share of today not yet elapsed. Each
//!   later day of the cycle adds its expectation; the allowance runs out on the first day the
//!   running total reaches it.
//! - With no complete day of history yet, today's pace so far stands for the level.
//!
//! **Alerts** ([`alert_situations`]): see its docs for the rule ids, subject keys and how an
//! alert engine consumes them.
use crate::model::{Counts, MacAddr};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;

/// Alert thresholds, % of the allowance, unless the household chooses others.
pub const DEFAULT_THRESHOLDS: [u16; 4] = [50, 75, 90, 100];

/// Bytes one hour of HD video streaming takes: 3 GB, the figure Netflix publishes for HD
/// ("up to 3 GB per hour"). Other services use less, so the hours shown are a safe floor.
pub const HD_VIDEO_BYTES_PER_HOUR: u64 = 3_000_000_000;

/// The longest "every N days" cycle accepted.
pub const MAX_CYCLE_DAYS: u16 = 366;

/// Days of history the projection looks at.
pub const PROJECTION_HISTORY_DAYS: usize = 28;

/// Steps tried when a cycle guessed from the local date must be moved to hold an instant (only
/// in a fold at midnight does it move at all).
const ADJUST_STEPS: usize = 4;

/// Most cycles [`cycles_between`] returns, so a typo'd range cannot allocate without bound.
pub const MAX_CYCLES_LISTED: usize = 1000;

fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_opt<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(
        "the cycle start day must be 1 to 31 (a day past the end of a short month means its last day), not {0}"
    )]
    StartDay(u8),
    #[error("a cycle of every N days needs N from 1 to {MAX_CYCLE_DAYS}, not {0}")]
    EveryDays(u32),
    #[error(
        "'{0}' is not a list of alert thresholds: give percentages from 1 to 1000 separated by commas, such as 50, 75, 90, 100"
    )]
    Thresholds(String),
    #[error("the allowance must be more than 0 bytes (leave it empty for an unlimited plan)")]
    ZeroAllowance,
    #[error(
        "cannot compute billing cycle boundaries in time zone {zone} near {at}: {detail}; check `timezone` in the config file"
    )]
    Time {
        zone: String,
        at: String,
        detail: String,
    },
}

fn time_err(tz: &TimeZone, at: impl fmt::Display, e: jiff::Error) -> PlanError {
    PlanError::Time {
        zone: tz.iana_name().unwrap_or("(unnamed)").to_string(),
        at: at.to_string(),
        detail: e.to_string(),
    }
}

/// What the ISP counts against the allowance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Counted {
    /// Internet downloads only.
    Download,
    /// Internet uploads and downloads (most plans).
    #[default]
    UploadAndDownload,
}

impl Counted {
    pub fn bytes(self, c: &Counts) -> u64 {
        match self {
            Counted::Download => c.internet_download_bytes,
            Counted::UploadAndDownload => c
                .internet_download_bytes
                .saturating_add(c.internet_upload_bytes),
        }
    }

    /// The counted part of the router's WAN bytes (sent, received).
    pub fn router_bytes(self, up: u64, down: u64) -> u64 {
        match self {
            Counted::Download => down,
            Counted::UploadAndDownload => down.saturating_add(up),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Counted::Download => "download",
            Counted::UploadAndDownload => "both",
        }
    }

    pub fn parse(s: &str) -> Option<Counted> {
        match s.trim() {
            "download" => Some(Counted::Download),
            "both" => Some(Counted::UploadAndDownload),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Counted::Download => "downloads only",
            Counted::UploadAndDownload => "uploads and downloads",
        }
    }
}

/// Whose bytes the plan counts: the sum over the devices lanmeter saw, or the router's own WAN
/// counters (right even where capture sees only part of the household; `crate::router`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    #[default]
    Devices,
    Router,
}

impl PlanSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanSource::Devices => "devices",
            PlanSource::Router => "router",
        }
    }

    pub fn parse(s: &str) -> Option<PlanSource> {
        match s.trim() {
            "devices" => Some(PlanSource::Devices),
            "router" => Some(PlanSource::Router),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            PlanSource::Devices => "as lanmeter saw the devices",
            PlanSource::Router => "as the router counted on its WAN interface",
        }
    }
}

/// How the billing cycle repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CycleRule {
    /// Starts on this day of every month (1..=31; the month's last day when it is shorter).
    Monthly { start_day: u8 },
    /// Starts every `days` local days, counted from `anchor` (any cycle's first day).
    EveryNDays {
        days: u16,
        #[serde(serialize_with = "display")]
        anchor: Date,
    },
}

impl Default for CycleRule {
    fn default() -> Self {
        CycleRule::Monthly { start_day: 1 }
    }
}

impl fmt::Display for CycleRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CycleRule::Monthly { start_day: 1 } => f.write_str("calendar month"),
            CycleRule::Monthly { start_day } => {
                write!(f, "monthly from day {start_day}")?;
                if *start_day > 28 {
                    f.write_str(" (the last day in shorter months)")?;
                }
                Ok(())
            }
            CycleRule::EveryNDays { days, anchor } => write!(f, "every {days} days from {anchor}"),
        }
    }
}

/// The household's data plan. The default is an unlimited calendar-month plan that counts
/// uploads and downloads: what lanmeter assumes until someone enters the contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Bytes per cycle; `None` is an unlimited plan.
    pub allowance_bytes: Option<u64>,
    pub cycle: CycleRule,
    pub counted: Counted,
    /// Whose bytes are counted (quotas always count the devices').
    pub source: PlanSource,
    /// % of the allowance at which an alert is sent, ascending.
    pub thresholds: Vec<u16>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            allowance_bytes: None,
            cycle: CycleRule::default(),
            counted: Counted::default(),
            source: PlanSource::default(),
            thresholds: DEFAULT_THRESHOLDS.to_vec(),
        }
    }
}

impl Plan {
    pub fn validate(&self) -> Result<(), PlanError> {
        match self.cycle {
            CycleRule::Monthly { start_day } if !(1..=31).contains(&start_day) => {
                return Err(PlanError::StartDay(start_day));
            }
            CycleRule::EveryNDays { days, .. } if !(1..=MAX_CYCLE_DAYS).contains(&days) => {
                return Err(PlanError::EveryDays(u32::from(days)));
            }
            _ => {}
        }
        if self.allowance_bytes == Some(0) {
            return Err(PlanError::ZeroAllowance);
        }
        if self.thresholds.iter().any(|t| !(1..=1000).contains(t)) {
            return Err(PlanError::Thresholds(format_thresholds(&self.thresholds)));
        }
        Ok(())
    }
}

/// "50, 75, 90, 100".
pub fn format_thresholds(t: &[u16]) -> String {
    t.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}

/// Parses "50, 75 90,100%" into a sorted list without duplicates; empty means no threshold
/// alerts.
pub fn parse_thresholds(s: &str) -> Result<Vec<u16>, PlanError> {
    let mut out = BTreeSet::new();
    for part in s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let n: u16 = part
            .trim_end_matches('%')
            .parse()
            .map_err(|_| PlanError::Thresholds(s.to_string()))?;
        if !(1..=1000).contains(&n) {
            return Err(PlanError::Thresholds(s.to_string()));
        }
        out.insert(n);
    }
    Ok(out.into_iter().collect())
}

/// One billing cycle: whole local days `first_day..=last_day`, instants `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cycle {
    #[serde(serialize_with = "display")]
    pub start: Timestamp,
    #[serde(serialize_with = "display")]
    pub end: Timestamp,
    #[serde(serialize_with = "display")]
    pub first_day: Date,
    #[serde(serialize_with = "display")]
    pub last_day: Date,
}

impl Cycle {
    /// Local days in the cycle.
    pub fn days(&self) -> i64 {
        days_between(self.first_day, self.last_day) + 1
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// The whole local days of the cycle, in order.
    pub fn dates(&self) -> impl Iterator<Item = Date> + '_ {
        self.first_day
            .series(Span::new().days(1))
            .take_while(|d| *d <= self.last_day)
    }

    /// Share of the cycle's duration elapsed at `now`, 0..=1.
    pub fn fraction_elapsed(&self, now: Timestamp) -> f64 {
        let total = (self.end.as_second() - self.start.as_second()) as f64;
        if total <= 0.0 {
            return 1.0;
        }
        ((now.as_second() - self.start.as_second()) as f64 / total).clamp(0.0, 1.0)
    }
}

/// Whole days from `a` to `b` (negative when `b` is earlier).
pub fn days_between(a: Date, b: Date) -> i64 {
    // Two valid dates are at most ~7.3 million days apart: `until` in days cannot fail.
    a.until(b).map_or(0, |s| i64::from(s.get_days()))
}

/// The first instant of local day `d`.
pub fn day_start(d: Date, tz: &TimeZone) -> Result<Timestamp, PlanError> {
    d.to_zoned(tz.clone())
        .and_then(|z| z.start_of_day())
        .map(|z| z.timestamp())
        .map_err(|e| time_err(tz, d, e))
}

fn monthly_start(year: i16, month: i8, day: u8) -> Result<Date, jiff::Error> {
    let first = Date::new(year, month, 1)?;
    let day = i8::try_from(day).unwrap_or(31).min(first.days_in_month());
    Date::new(year, month, day)
}

fn shift_month(year: i16, month: i8, delta: i8) -> (i16, i8) {
    let m = i32::from(month) - 1 + i32::from(delta);
    let y = i32::from(year) + m.div_euclid(12);
    // m.rem_euclid(12) + 1 is 1..=12; year stays within i16 for any valid date ± 1 month
    // (jiff rejects the out-of-range dates that would follow).
    (
        i16::try_from(y).unwrap_or(i16::MAX),
        (m.rem_euclid(12) + 1) as i8,
    )
}

/// The cycle's days `[first, next_first)` for the local date `d`.
fn cycle_dates(rule: CycleRule, d: Date) -> Result<(Date, Date), jiff::Error> {
    match rule {
        CycleRule::Monthly { start_day } => {
            let s = monthly_start(d.year(), d.month(), start_day)?;
            if d >= s {
                let (y, m) = shift_month(d.year(), d.month(), 1);
                Ok((s, monthly_start(y, m, start_day)?))
            } else {
                let (y, m) = shift_month(d.year(), d.month(), -1);
                Ok((monthly_start(y, m, start_day)?, s))
            }
        }
        CycleRule::EveryNDays { days, anchor } => {
            let n = i64::from(days.max(1));
            let k = days_between(anchor, d).div_euclid(n);
            let first = anchor.checked_add(Span::new().try_days(k * n)?)?;
            let next = first.checked_add(Span::new().try_days(n)?)?;
            Ok((first, next))
        }
    }
}

fn cycle_for_date(rule: CycleRule, d: Date, tz: &TimeZone) -> Result<Cycle, PlanError> {
    let (first, next) = cycle_dates(rule, d).map_err(|e| time_err(tz, d, e))?;
    Ok(Cycle {
        start: day_start(first, tz)?,
        end: day_start(next, tz)?,
        first_day: first,
        last_day: next.yesterday().map_err(|e| time_err(tz, next, e))?,
    })
}

/// The one cycle holding instant `t`.
pub fn cycle_containing(plan: &Plan, t: Timestamp, tz: &TimeZone) -> Result<Cycle, PlanError> {
    let mut c = cycle_for_date(plan.cycle, t.to_zoned(tz.clone()).date(), tz)?;
    // Only where a fold repeats the end of a day after midnight does the local date disagree
    // with the boundaries; then step to the neighbour that holds `t`.
    for _ in 0..ADJUST_STEPS {
        if t < c.start {
            let d = c.first_day.yesterday().map_err(|e| time_err(tz, t, e))?;
            c = cycle_for_date(plan.cycle, d, tz)?;
        } else if t >= c.end {
            c = next_cycle(plan, &c, tz)?;
        } else {
            break;
        }
    }
    Ok(c)
}

/// The cycle after `c`.
pub fn next_cycle(plan: &Plan, c: &Cycle, tz: &TimeZone) -> Result<Cycle, PlanError> {
    let d = c
        .last_day
        .tomorrow()
        .map_err(|e| time_err(tz, c.last_day, e))?;
    cycle_for_date(plan.cycle, d, tz)
}

/// The cycle before `c`.
pub fn previous_cycle(plan: &Plan, c: &Cycle, tz: &TimeZone) -> Result<Cycle, PlanError> {
    let d = c
        .first_day
        .yesterday()
        .map_err(|e| time_err(tz, c.first_day, e))?;
    cycle_for_date(plan.cycle, d, tz)
}

/// The cycle holding `now`: what the dashboard calls "this billing cycle".
///
/// Infallible for every instant a clock can read: boundaries fail only within a cycle of
/// jiff's range limits (years −9999 and 9999); there it answers the single instant `now`.
pub fn current_cycle(plan: &Plan, now: Timestamp, tz: &TimeZone) -> Cycle {
    cycle_containing(plan, now, tz).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "billing cycle out of range");
        let d = now.to_zoned(tz.clone()).date();
        Cycle {
            start: now,
            end: now,
            first_day: d,
            last_day: d,
        }
    })
}

/// Every cycle that overlaps `[from, to)`, oldest first (at most [`MAX_CYCLES_LISTED`]).
pub fn cycles_between(
    plan: &Plan,
    from: Timestamp,
    to: Timestamp,
    tz: &TimeZone,
) -> Result<Vec<Cycle>, PlanError> {
    let mut out = Vec::new();
    if from >= to {
        return Ok(out);
    }
    let mut c = cycle_containing(plan, from, tz)?;
    while c.start < to && out.len() < MAX_CYCLES_LISTED {
        let next = next_cycle(plan, &c, tz)?;
        out.push(c);
        c = next;
    }
    Ok(out)
}

/// The `n` cycles before the one holding `now`, oldest first.
pub fn past_cycles(
    plan: &Plan,
    now: Timestamp,
    n: usize,
    tz: &TimeZone,
) -> Result<Vec<Cycle>, PlanError> {
    let mut c = cycle_containing(plan, now, tz)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        c = previous_cycle(plan, &c, tz)?;
        out.push(c.clone());
    }
    out.reverse();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Calibration

/// The user's reading of the ISP's meter, applied as an offset to one cycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Calibration {
    /// The cycle the offset belongs to; it applies only while the cycle has exactly these
    /// bounds (a changed cycle setting leaves it unused rather than misapplied).
    #[serde(serialize_with = "display")]
    pub cycle_start: Timestamp,
    #[serde(serialize_with = "display")]
    pub cycle_end: Timestamp,
    /// When the ISP's figure was read.
    #[serde(serialize_with = "display")]
    pub reported_at: Timestamp,
    pub reported_bytes: u64,
    /// What lanmeter had counted from the cycle's start to `reported_at`.
    pub measured_bytes: u64,
    /// reported − measured.
    pub offset_bytes: i64,
    #[serde(serialize_with = "display")]
    pub created_at: Timestamp,
}

/// The offset that makes lanmeter's count equal the ISP's: reported − measured.
pub fn calibration_offset(reported: u64, measured: u64) -> i64 {
    if reported >= measured {
        i64::try_from(reported - measured).unwrap_or(i64::MAX)
    } else {
        i64::try_from(measured - reported).map_or(i64::MIN, |d| -d)
    }
}

/// The offset in force for `cycle`: the latest calibration made for exactly that cycle, else 0.
pub fn offset_for(cycle: &Cycle, calibrations: &[Calibration]) -> i64 {
    calibrations
        .iter()
        .filter(|c| c.cycle_start == cycle.start && c.cycle_end == cycle.end)
        .max_by_key(|c| (c.created_at, c.reported_at))
        .map_or(0, |c| c.offset_bytes)
}

/// Measured bytes with an offset applied, never below zero.
pub fn apply_offset(measured: u64, offset: i64) -> u64 {
    if offset >= 0 {
        measured.saturating_add(offset.unsigned_abs())
    } else {
        measured.saturating_sub(offset.unsigned_abs())
    }
}

// ---------------------------------------------------------------------------------------------
// Projection

/// One complete local day's counted usage; `None` for a day before history began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayUsage {
    pub date: Date,
    pub bytes: Option<u64>,
}

/// What [`project`] needs.
#[derive(Clone, Debug)]
pub struct ProjectionInput<'a> {
    pub cycle: &'a Cycle,
    pub today: Date,
    /// Share of today already elapsed, 0..=1.
    pub today_fraction: f64,
    /// Counted in the cycle so far, offset included.
    pub used_bytes: u64,
    pub today_bytes: u64,
    /// Complete days before today, oldest first (the last [`PROJECTION_HISTORY_DAYS`] count).
    pub recent: &'a [DayUsage],
    pub allowance_bytes: Option<u64>,
}

/// The expected usage to the cycle's end.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Projection {
    /// Expected usage of a whole day today, before the weekday factor.
    pub level_bytes_per_day: f64,
    /// Growth of the level per day (never negative, see the module docs).
    pub trend_bytes_per_day: f64,
    /// Monday first; all 1 without three weeks of history.
    pub weekday_factors: [f64; 7],
    /// Complete days of history the level was computed from (0: today's pace stood in).
    pub basis_days: u32,
    /// Counted usage expected by the end of the cycle, offset included.
    pub end_bytes: u64,
    /// The day the running total is expected to reach the allowance, if within this cycle.
    #[serde(serialize_with = "display_opt")]
    pub runs_out_on: Option<Date>,
    /// Expected usage per remaining day: today's is the rest of today.
    #[serde(skip)]
    pub per_day: Vec<(Date, u64)>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn weekday_index(d: Date) -> usize {
    usize::from(d.weekday().to_monday_zero_offset().unsigned_abs())
}

/// Weekday factors from the classical decomposition (module docs); all 1 when too little
/// history.
fn weekday_factors(recent: &[DayUsage]) -> [f64; 7] {
    let mut ratios: [Vec<f64>; 7] = Default::default();
    for i in 3..recent.len().saturating_sub(3) {
        let window = &recent[i - 3..=i + 3];
        let Some(vals) = window
            .iter()
            .map(|d| d.bytes.map(|b| b as f64))
            .collect::<Option<Vec<f64>>>()
        else {
            continue;
        };
        let ma = vals.iter().sum::<f64>() / 7.0;
        if ma > 0.0 {
            ratios[weekday_index(recent[i].date)].push(vals[3] / ma);
        }
    }
    if ratios.iter().any(|r| r.len() < 2) {
        return [1.0; 7];
    }
    let raw: Vec<f64> = ratios.iter().map(|r| mean(r).unwrap_or(1.0)).collect();
    let norm = raw.iter().sum::<f64>() / 7.0;
    if norm <= 0.0 {
        return [1.0; 7];
    }
    let mut out = [1.0; 7];
    for (o, r) in out.iter_mut().zip(raw) {
        *o = r / norm;
    }
    out
}

/// Projects the cycle's usage to its end (method in the module docs).
pub fn project(input: &ProjectionInput<'_>) -> Projection {
    let start = input.recent.len().saturating_sub(PROJECTION_HISTORY_DAYS);
    let recent = &input.recent[start..];
    let tail = |from_end: usize, n: usize| -> Vec<Option<f64>> {
        let hi = recent.len().saturating_sub(from_end);
        let lo = hi.saturating_sub(n);
        recent[lo..hi]
            .iter()
            .map(|d| d.bytes.map(|b| b as f64))
            .collect()
    };
    let last7: Vec<f64> = tail(0, 7).into_iter().flatten().collect();
    let prev7 = tail(7, 7);
    let (level, trend, basis) = match mean(&last7) {
        Some(l7) => {
            let trend = if last7.len() == 7 && prev7.len() == 7 && prev7.iter().all(Option::is_some)
            {
                let p7 = prev7.iter().flatten().sum::<f64>() / 7.0;
                ((l7 - p7) / 7.0).max(0.0)
            } else {
                0.0
            };
            (l7, trend, last7.len() as u32)
        }
        None => {
            let pace = if input.today_fraction >= 1.0 / 24.0 {
                input.today_bytes as f64 / input.today_fraction
            } else {
                0.0
            };
            (pace, 0.0, 0)
        }
    };
    // The level is the mean of the last 7 days: it sits at their middle, 4 days before today.
    let centre = if basis == 7 { 4.0 } else { 0.0 };
    let factors = weekday_factors(recent);
    let expect = |j: i64, d: Date| -> f64 {
        ((level + trend * (j as f64 + centre)) * factors[weekday_index(d)]).max(0.0)
    };
    let mut per_day = Vec::new();
    let mut total = input.used_bytes as f64;
    let mut runs_out_on = None;
    let allowance = input.allowance_bytes.map(|a| a as f64);
    if let Some(a) = allowance
        && total >= a
    {
        runs_out_on = Some(input.today);
    }
    let mut j = 0i64;
    let mut d = input.today;
    while d <= input.cycle.last_day {
        let mut e = expect(j, d);
        if j == 0 {
            e *= (1.0 - input.today_fraction).clamp(0.0, 1.0);
        }
        total += e;
        per_day.push((d, e.round() as u64));
        if runs_out_on.is_none()
            && let Some(a) = allowance
            && total >= a
        {
            runs_out_on = Some(d);
        }
        j += 1;
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    Projection {
        level_bytes_per_day: level,
        trend_bytes_per_day: trend,
        weekday_factors: factors,
        basis_days: basis,
        end_bytes: total.round() as u64,
        runs_out_on,
        per_day,
    }
}

// ---------------------------------------------------------------------------------------------
// Status

/// Everything the plan card and the plan page say about the current cycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanStatus {
    pub cycle: Cycle,
    pub allowance_bytes: Option<u64>,
    pub counted: Counted,
    /// The plan's alert thresholds, % of the allowance.
    pub thresholds: Vec<u16>,
    /// What lanmeter counted in the cycle so far.
    pub measured_bytes: u64,
    /// The calibration offset in force for this cycle.
    pub offset_bytes: i64,
    /// measured + offset: the number to compare with the ISP's.
    pub used_bytes: u64,
    pub remaining_bytes: Option<u64>,
    /// % of the allowance used (may exceed 100).
    pub used_pct: Option<f64>,
    /// % of the cycle's time elapsed.
    pub elapsed_pct: f64,
    /// Local days left, today included.
    pub days_left: i64,
    #[serde(serialize_with = "display")]
    pub today: Date,
    #[serde(serialize_with = "display")]
    pub today_start: Timestamp,
    #[serde(serialize_with = "display")]
    pub today_end: Timestamp,
    pub today_bytes: u64,
    /// (allowance − used before today) ÷ days left: what can be used today and every later day
    /// and still end the cycle within the allowance.
    pub safe_today_bytes: Option<u64>,
    /// The same in hours of HD video at [`HD_VIDEO_BYTES_PER_HOUR`].
    pub safe_today_hd_hours: Option<f64>,
    pub over_budget_today: bool,
    pub projection: Projection,
    /// False when retention had deleted rows the cycle needed.
    pub exact: bool,
}

/// What [`status`] needs, all measured by the caller.
#[derive(Clone, Debug)]
pub struct StatusInput<'a> {
    pub plan: &'a Plan,
    pub cycle: Cycle,
    pub now: Timestamp,
    pub tz: &'a TimeZone,
    /// Counted from the cycle's start to now.
    pub measured_bytes: u64,
    /// Counted from the start of today (or of the cycle, if later) to now.
    pub today_bytes: u64,
    pub offset_bytes: i64,
    /// Complete days before today, oldest first.
    pub recent: &'a [DayUsage],
    pub exact: bool,
}

pub fn status(input: StatusInput<'_>) -> Result<PlanStatus, PlanError> {
    let tz = input.tz;
    let today = input.now.to_zoned(tz.clone()).date();
    let today_start = day_start(today, tz)?;
    let today_end = day_start(today.tomorrow().map_err(|e| time_err(tz, today, e))?, tz)?;
    let day_len = (today_end.as_second() - today_start.as_second()).max(1) as f64;
    let today_fraction =
        ((input.now.as_second() - today_start.as_second()) as f64 / day_len).clamp(0.0, 1.0);
    let used = apply_offset(input.measured_bytes, input.offset_bytes);
    let allowance = input.plan.allowance_bytes;
    let days_left = (days_between(today, input.cycle.last_day) + 1).max(1);
    let used_before_today = used.saturating_sub(input.today_bytes);
    let safe = allowance.map(|a| a.saturating_sub(used_before_today) / days_left.unsigned_abs());
    let projection = project(&ProjectionInput {
        cycle: &input.cycle,
        today,
        today_fraction,
        used_bytes: used,
        today_bytes: input.today_bytes,
        recent: input.recent,
        allowance_bytes: allowance,
    });
    Ok(PlanStatus {
        allowance_bytes: allowance,
        counted: input.plan.counted,
        thresholds: input.plan.thresholds.clone(),
        measured_bytes: input.measured_bytes,
        offset_bytes: input.offset_bytes,
        used_bytes: used,
        remaining_bytes: allowance.map(|a| a.saturating_sub(used)),
        used_pct: allowance.map(|a| used as f64 * 100.0 / a as f64),
        elapsed_pct: input.cycle.fraction_elapsed(input.now) * 100.0,
        days_left,
        today,
        today_start,
        today_end,
        today_bytes: input.today_bytes,
        safe_today_bytes: safe,
        safe_today_hd_hours: safe.map(|s| s as f64 / HD_VIDEO_BYTES_PER_HOUR as f64),
        over_budget_today: safe.is_some_and(|s| input.today_bytes > s),
        projection,
        exact: input.exact,
        cycle: input.cycle,
    })
}

/// Where the cycle stands against the allowance: the one answer every page gives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PlanState {
    /// No allowance: nothing can run out.
    Unlimited,
    /// The projection stays within the allowance to the cycle's end.
    OnTrack,
    /// At this pace the allowance runs out on this day of the cycle.
    RunsOut {
        #[serde(serialize_with = "display")]
        on: Date,
    },
    /// The allowance is used up: on this day, and by this much so far.
    Exceeded {
        #[serde(serialize_with = "display")]
        on: Date,
        over_bytes: u64,
    },
}

/// The plan's state. `days` is the counted usage of each day of the cycle so far, oldest first
/// (today's so far last; days before history began as 0): the first day the running total,
/// calibration offset included, reached the allowance is the day it ran out. When the days do
/// not reach it (history cut short, or an offset that grew today), it ran out today.
pub fn plan_state(status: &PlanStatus, days: &[(Date, u64)]) -> PlanState {
    let Some(allowance) = status.allowance_bytes else {
        return PlanState::Unlimited;
    };
    if status.used_bytes >= allowance {
        let mut total = i128::from(status.offset_bytes);
        let on = days
            .iter()
            .find(|(_, b)| {
                total += i128::from(*b);
                total >= i128::from(allowance)
            })
            .map_or(status.today, |(d, _)| *d);
        return PlanState::Exceeded {
            on,
            over_bytes: status.used_bytes - allowance,
        };
    }
    match status.projection.runs_out_on {
        Some(on) => PlanState::RunsOut { on },
        None => PlanState::OnTrack,
    }
}

/// How a usage bar is coloured: `red` at or past 100 %, `amber` from the highest alert
/// threshold below 100 % (90 % with the default thresholds), else the ordinary colour.
pub fn bar_level(pct: f64, thresholds: &[u16]) -> &'static str {
    let amber = thresholds
        .iter()
        .copied()
        .filter(|t| *t < 100)
        .max()
        .map_or(90.0, f64::from);
    if pct >= 100.0 {
        "red"
    } else if pct >= amber {
        "amber"
    } else {
        ""
    }
}

/// The allowance shared evenly over the cycle's days: the budget line of the per-day chart.
pub fn even_daily_share(plan: &Plan, cycle: &Cycle) -> Option<u64> {
    plan.allowance_bytes
        .map(|a| a / cycle.days().max(1).unsigned_abs())
}

// ---------------------------------------------------------------------------------------------
// Quotas

/// Whose usage a quota limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum QuotaSubject {
    #[serde(serialize_with = "display")]
    Device(MacAddr),
    /// Every device whose owner is this person.
    Person(String),
    /// Every device in this group.
    Group(String),
}

impl QuotaSubject {
    pub fn kind(&self) -> &'static str {
        match self {
            QuotaSubject::Device(_) => "device",
            QuotaSubject::Person(_) => "person",
            QuotaSubject::Group(_) => "group",
        }
    }

    /// The stored / submitted name: a MAC for a device, else the person or group name.
    pub fn name(&self) -> String {
        match self {
            QuotaSubject::Device(m) => m.to_string(),
            QuotaSubject::Person(n) | QuotaSubject::Group(n) => n.clone(),
        }
    }
}

/// The window a quota counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    /// The local day.
    Day,
    /// The local week, Monday to Sunday (ISO 8601).
    Week,
    /// The billing cycle.
    Cycle,
}

impl QuotaPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Week => "week",
            QuotaPeriod::Cycle => "cycle",
        }
    }

    pub fn parse(s: &str) -> Option<QuotaPeriod> {
        match s.trim() {
            "day" => Some(QuotaPeriod::Day),
            "week" => Some(QuotaPeriod::Week),
            "cycle" => Some(QuotaPeriod::Cycle),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "per day",
            QuotaPeriod::Week => "per week",
            QuotaPeriod::Cycle => "per billing cycle",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quota {
    pub id: i64,
    pub subject: QuotaSubject,
    pub period: QuotaPeriod,
    pub limit_bytes: u64,
}

/// The window `[start, end)` of `period` holding `now`.
pub fn quota_window(
    plan: &Plan,
    period: QuotaPeriod,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<(Timestamp, Timestamp), PlanError> {
    let today = now.to_zoned(tz.clone()).date();
    let span_days = |first: Date, n: i64| -> Result<(Timestamp, Timestamp), PlanError> {
        let next = first
            .checked_add(Span::new().days(n))
            .map_err(|e| time_err(tz, first, e))?;
        Ok((day_start(first, tz)?, day_start(next, tz)?))
    };
    match period {
        QuotaPeriod::Day => span_days(today, 1),
        QuotaPeriod::Week => {
            let back = i64::from(today.weekday().to_monday_zero_offset());
            let first = today
                .checked_sub(Span::new().days(back))
                .map_err(|e| time_err(tz, today, e))?;
            span_days(first, 7)
        }
        QuotaPeriod::Cycle => {
            let c = cycle_containing(plan, now, tz)?;
            Ok((c.start, c.end))
        }
    }
}

/// A quota with its usage in the current window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuotaStatus {
    pub quota: Quota,
    /// The device's name (or MAC), the person's or the group's name.
    pub label: String,
    /// Devices the subject covers now (0: a person or group with no device yet).
    pub devices: usize,
    #[serde(serialize_with = "display")]
    pub window_start: Timestamp,
    #[serde(serialize_with = "display")]
    pub window_end: Timestamp,
    pub used_bytes: u64,
    pub used_pct: f64,
    pub reached: bool,
    /// The devices (by their first MAC) it covers now, so a device page can list every quota
    /// that applies to it; the caller fills it in.
    #[serde(skip)]
    pub covers: Vec<MacAddr>,
}

pub fn quota_status(
    quota: Quota,
    label: String,
    devices: usize,
    window: (Timestamp, Timestamp),
    used_bytes: u64,
) -> QuotaStatus {
    let limit = quota.limit_bytes.max(1);
    QuotaStatus {
        used_pct: used_bytes as f64 * 100.0 / limit as f64,
        reached: used_bytes >= limit,
        label,
        devices,
        window_start: window.0,
        window_end: window.1,
        used_bytes,
        quota,
        covers: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// Stable rule ids of the plan alerts.
pub mod rule {
    /// Usage crossed one of the plan's thresholds (% of the allowance).
    pub const THRESHOLD: &str = "plan.threshold";
    /// The projection reaches the allowance before the cycle ends.
    pub const PROJECTED_RUNOUT: &str = "plan.projected_runout";
    /// Today's usage went past today's safe budget.
    pub const DAILY_BUDGET: &str = "plan.daily_budget";
    /// A device's or person's quota is used up for its window.
    pub const QUOTA_REACHED: &str = "quota.reached";
}

/// Subject key of the plan alerts (quota alerts use `quota:<id>`).
pub const PLAN_SUBJECT: &str = "plan";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Keys of the alerts already sent whose window has not ended (see [`PlanAlert::marks`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertState {
    pub sent: BTreeSet<String>,
}

impl AlertState {
    /// Records an alert as sent (what the store's `mark_plan_alert` does durably).
    pub fn record(&mut self, alert: &PlanAlert) {
        self.sent.extend(alert.marks.iter().cloned());
    }
}

/// A plan or quota situation that deserves an alert now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanAlert {
    /// One of [`rule`].
    pub rule_id: &'static str,
    /// `plan`, or `quota:<id>`.
    pub subject_key: String,
    /// Unique per rule, subject and window, e.g. `plan.threshold:90@<cycle start seconds>`.
    pub dedup_key: String,
    /// Every key to record as sent once the alert is accepted: the dedup key, and for a
    /// threshold the lower thresholds it jumped over (one alert, not three, when usage leaps).
    pub marks: Vec<String>,
    /// The window after which the keys re-arm (the cycle, the day or the quota window).
    #[serde(serialize_with = "display")]
    pub window_start: Timestamp,
    #[serde(serialize_with = "display")]
    pub window_end: Timestamp,
    pub severity: Severity,
    pub title: String,
    pub message: String,
}

fn gb(b: u64) -> String {
    format!("{:.1} GB", b as f64 / 1e9)
}

/// The plan and quota situations that should be alerted now and were not yet this window.
///
/// **How an alert engine consumes them.** On each evaluation (a minute or so apart): read the
/// plan report (`Store::plan_report`) and the sent state (`Store::plan_alert_state(now)`), call
/// this, and for each returned alert raise the engine's condition with `rule_id` as the rule,
/// `subject_key` as the subject and `dedup_key` as the dedup key, then record it with
/// `Store::mark_plan_alert(&alert, now)` (which stores every key in `marks` until
/// `window_end`). The functions never repeat a recorded key, so each threshold fires at most
/// once per cycle and re-arms when the next cycle begins (its keys carry the new start);
/// the daily budget fires at most once per local day and a quota once per quota window.
/// Nothing here sends anything: cooldowns, delivery and acknowledgement belong to the engine.
pub fn alert_situations(
    status: &PlanStatus,
    quotas: &[QuotaStatus],
    state: &AlertState,
) -> Vec<PlanAlert> {
    let mut out = Vec::new();
    let cycle = &status.cycle;
    let cs = cycle.start.as_second();
    let plan_alert = |rule_id: &'static str,
                      key: String,
                      marks: Vec<String>,
                      window: (Timestamp, Timestamp),
                      severity: Severity,
                      title: String,
                      message: String| PlanAlert {
        rule_id,
        subject_key: PLAN_SUBJECT.to_string(),
        dedup_key: key,
        marks,
        window_start: window.0,
        window_end: window.1,
        severity,
        title,
        message,
    };
    if let (Some(allowance), Some(pct)) = (status.allowance_bytes, status.used_pct) {
        let key = |t: u16| format!("{}:{t}@{cs}", rule::THRESHOLD);
        // The highest threshold reached that was not sent yet fires; lower unsent ones are
        // marked with it.
        let reached: Vec<u16> = status
            .thresholds_reached(pct)
            .filter(|t| !state.sent.contains(&key(*t)))
            .collect();
        if let Some(&top) = reached.last() {
            let severity = if top >= 100 {
                Severity::Critical
            } else if top >= 90 {
                Severity::Warning
            } else {
                Severity::Info
            };
            let title = if top >= 100 {
                format!("Data allowance used up ({pct:.0} %)")
            } else {
                format!("{top} % of the data allowance used")
            };
            let message = format!(
                "{} of {} used in the cycle {} to {} ({:.0} % of the cycle elapsed); {} left.",
                gb(status.used_bytes),
                gb(allowance),
                cycle.first_day,
                cycle.last_day,
                status.elapsed_pct,
                gb(status.remaining_bytes.unwrap_or(0)),
            );
            out.push(plan_alert(
                rule::THRESHOLD,
                key(top),
                reached.iter().map(|t| key(*t)).collect(),
                (cycle.start, cycle.end),
                severity,
                title,
                message,
            ));
        }
        let runout_key = format!("{}@{cs}", rule::PROJECTED_RUNOUT);
        if status.used_bytes < allowance
            && let Some(date) = status.projection.runs_out_on
            && !state.sent.contains(&runout_key)
        {
            out.push(plan_alert(
                rule::PROJECTED_RUNOUT,
                runout_key.clone(),
                vec![runout_key],
                (cycle.start, cycle.end),
                Severity::Warning,
                format!("Data allowance projected to run out on {date}"),
                format!(
                    "At the recent pace the household will reach {} on {date}, {} day(s) before the cycle ends on {}. {} used so far; about {} expected by the end of the cycle.",
                    gb(allowance),
                    days_between(date, cycle.last_day),
                    cycle.last_day,
                    gb(status.used_bytes),
                    gb(status.projection.end_bytes),
                ),
            ));
        }
        let daily_key = format!("{}@{}", rule::DAILY_BUDGET, status.today_start.as_second());
        if status.over_budget_today
            && status.used_bytes < allowance
            && !state.sent.contains(&daily_key)
        {
            out.push(plan_alert(
                rule::DAILY_BUDGET,
                daily_key.clone(),
                vec![daily_key],
                (status.today_start, status.today_end),
                Severity::Info,
                "Today's data budget exceeded".to_string(),
                format!(
                    "{} used today; the safe budget for today was {} (what is left divided by the {} day(s) left in the cycle).",
                    gb(status.today_bytes),
                    gb(status.safe_today_bytes.unwrap_or(0)),
                    status.days_left,
                ),
            ));
        }
    }
    for q in quotas.iter().filter(|q| q.reached) {
        let key = format!(
            "{}:{}@{}",
            rule::QUOTA_REACHED,
            q.quota.id,
            q.window_start.as_second()
        );
        if state.sent.contains(&key) {
            continue;
        }
        out.push(PlanAlert {
            rule_id: rule::QUOTA_REACHED,
            subject_key: format!("quota:{}", q.quota.id),
            dedup_key: key.clone(),
            marks: vec![key],
            window_start: q.window_start,
            window_end: q.window_end,
            severity: Severity::Warning,
            title: format!("{} reached its data quota", q.label),
            message: format!(
                "{} ({}) used {} of its {} quota {}.",
                q.label,
                q.quota.subject.kind(),
                gb(q.used_bytes),
                gb(q.quota.limit_bytes),
                q.quota.period.describe(),
            ),
        });
    }
    out
}

impl PlanStatus {
    /// The thresholds reached at `pct`, ascending. The thresholds are the plan's; a status
    /// carries them so alert evaluation needs nothing else.
    fn thresholds_reached(&self, pct: f64) -> impl Iterator<Item = u16> + '_ {
        self.thresholds
            .iter()
            .copied()
            .filter(move |t| pct >= f64::from(*t))
    }
}

#[cfg(test)]
mod tests;
