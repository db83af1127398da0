//! `GET /api/v1/plan`: the data plan's current cycle, usage so far, budget, projection, quotas,
//! per-day bars and past cycles, from `Store::plan_report` (the numbers the plan pages show).
//!
//! The report's types live outside web/ and carry no OpenAPI schema, so this file mirrors them
//! field for field (the names of `lanmeter plan --json`; a calibration leaves out the allowance
//! in force when it was made); the conversions are checked by the compiler, so the document
//! cannot drift from what is served. It reads only.

use super::error::ApiError;
use crate::plan::{self, CycleRule, QuotaSubject};
use crate::store::plan::PlanReport;
use crate::web::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the ISP counts against the allowance.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Counted {
    Download,
    UploadAndDownload,
}

/// Whose bytes the plan counts: the devices' internet bytes as lanmeter saw them, or the
/// router's WAN counters (right even when the Pi sees only part of the household).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    Devices,
    Router,
}

/// How the billing cycle repeats.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanCycleRule {
    /// Starts on this day of every month (the month's last day when it is shorter).
    Monthly { start_day: u8 },
    /// Starts every `days` local days, counted from `anchor` (a local date).
    EveryNDays { days: u16, anchor: String },
}

/// The household's plan as entered (unlimited calendar month until someone enters one).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanSettings {
    /// Bytes per cycle; null for an unlimited plan.
    pub allowance_bytes: Option<u64>,
    pub cycle: PlanCycleRule,
    pub counted: Counted,
    /// Whose bytes are counted (quotas always count the devices').
    pub source: PlanSource,
    /// % of the allowance at which an alert is sent, ascending.
    pub thresholds: Vec<u16>,
}

/// One billing cycle: local days `first_day..=last_day`, instants `[start, end)`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanCycle {
    pub start: String,
    pub end: String,
    pub first_day: String,
    pub last_day: String,
}

/// The expected usage to the cycle's end.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanProjection {
    /// Expected usage of a whole day today, before the weekday factor.
    pub level_bytes_per_day: f64,
    /// Growth of the level per day (never negative).
    pub trend_bytes_per_day: f64,
    /// Monday first; all 1 without three weeks of history.
    pub weekday_factors: Vec<f64>,
    /// Complete days of history the level was computed from (0: today's pace stood in).
    pub basis_days: u32,
    /// Counted usage expected by the end of the cycle, calibration offset included.
    pub end_bytes: u64,
    /// The local day the allowance is expected to run out, if within this cycle.
    pub runs_out_on: Option<String>,
}

/// The current cycle: usage so far, what is left, today's safe budget, the projection.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanStatus {
    pub cycle: PlanCycle,
    pub allowance_bytes: Option<u64>,
    pub counted: Counted,
    pub thresholds: Vec<u16>,
    /// What was counted in the cycle so far (by the devices or the router: `plan.source`).
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
    pub today: String,
    pub today_start: String,
    pub today_end: String,
    pub today_bytes: u64,
    /// What can be used today and every later day and still end within the allowance.
    pub safe_today_bytes: Option<u64>,
    /// The same in hours of HD video.
    pub safe_today_hd_hours: Option<f64>,
    pub over_budget_today: bool,
    pub projection: PlanProjection,
    /// False when retention had deleted rows the cycle needed.
    pub exact: bool,
}

/// Whose usage a quota limits: a device (by MAC), a person or a group.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct QuotaSubjectView {
    /// `device`, `person` or `group`.
    pub kind: String,
    /// The device's MAC, or the person's or group's name.
    pub name: String,
}

/// The window a quota counts over.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Week,
    Cycle,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub id: i64,
    pub subject: QuotaSubjectView,
    pub period: QuotaPeriod,
    pub limit_bytes: u64,
}

/// A quota with its usage in the current window `[window_start, window_end)`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct QuotaStatus {
    pub quota: Quota,
    /// The device's name (or MAC), the person's or the group's name.
    pub label: String,
    /// Devices the subject covers now.
    pub devices: u64,
    pub window_start: String,
    pub window_end: String,
    pub used_bytes: u64,
    pub used_pct: f64,
    pub reached: bool,
}

/// One local day of the current cycle.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanDay {
    pub date: String,
    /// Counted usage (today: so far); null for a future day or one before history began.
    pub used_bytes: Option<u64>,
    /// Expected further usage (today: the rest of it); null for past days.
    pub projected_bytes: Option<u64>,
}

/// A past cycle's usage, read with the current cycle settings.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PastCycle {
    pub cycle: PlanCycle,
    pub measured_bytes: u64,
    pub offset_bytes: i64,
    pub used_bytes: u64,
    pub used_pct: Option<f64>,
    pub exact: bool,
}

/// A reading of the ISP's meter, applied as an offset to the current cycle.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanCalibration {
    pub cycle_start: String,
    pub cycle_end: String,
    pub reported_at: String,
    pub reported_bytes: u64,
    /// What lanmeter had counted from the cycle's start to `reported_at`.
    pub measured_bytes: u64,
    /// reported − measured.
    pub offset_bytes: i64,
}

/// The plan report: settings, the current cycle's status, quotas, days and history.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanReportView {
    pub plan: PlanSettings,
    /// The household time zone the cycles are computed in.
    pub zone: String,
    pub status: PlanStatus,
    pub quotas: Vec<QuotaStatus>,
    /// Every day of the current cycle.
    pub days: Vec<PlanDay>,
    /// The allowance shared evenly over the cycle's days (the chart's budget line).
    pub even_daily_share: Option<u64>,
    /// Oldest first.
    pub past: Vec<PastCycle>,
    /// The current cycle's calibrations, newest first.
    pub calibrations: Vec<PlanCalibration>,
}

fn counted(c: plan::Counted) -> Counted {
    match c {
        plan::Counted::Download => Counted::Download,
        plan::Counted::UploadAndDownload => Counted::UploadAndDownload,
    }
}

fn cycle(c: &plan::Cycle) -> PlanCycle {
    PlanCycle {
        start: c.start.to_string(),
        end: c.end.to_string(),
        first_day: c.first_day.to_string(),
        last_day: c.last_day.to_string(),
    }
}

impl From<PlanReport> for PlanReportView {
    fn from(r: PlanReport) -> PlanReportView {
        let s = r.status;
        let p = s.projection;
        PlanReportView {
            plan: PlanSettings {
                allowance_bytes: r.plan.allowance_bytes,
                cycle: match r.plan.cycle {
                    CycleRule::Monthly { start_day } => PlanCycleRule::Monthly { start_day },
                    CycleRule::EveryNDays { days, anchor } => PlanCycleRule::EveryNDays {
                        days,
                        anchor: anchor.to_string(),
                    },
                },
                counted: counted(r.plan.counted),
                source: match r.plan.source {
                    plan::PlanSource::Devices => PlanSource::Devices,
                    plan::PlanSource::Router => PlanSource::Router,
                },
                thresholds: r.plan.thresholds,
            },
            zone: r.zone,
            status: PlanStatus {
                cycle: cycle(&s.cycle),
                allowance_bytes: s.allowance_bytes,
                counted: counted(s.counted),
                thresholds: s.thresholds,
                measured_bytes: s.measured_bytes,
                offset_bytes: s.offset_bytes,
                used_bytes: s.used_bytes,
                remaining_bytes: s.remaining_bytes,
                used_pct: s.used_pct,
                elapsed_pct: s.elapsed_pct,
                days_left: s.days_left,
                today: s.today.to_string(),
                today_start: s.today_start.to_string(),
                today_end: s.today_end.to_string(),
                today_bytes: s.today_bytes,
                safe_today_bytes: s.safe_today_bytes,
                safe_today_hd_hours: s.safe_today_hd_hours,
                over_budget_today: s.over_budget_today,
                projection: PlanProjection {
                    level_bytes_per_day: p.level_bytes_per_day,
                    trend_bytes_per_day: p.trend_bytes_per_day,
                    weekday_factors: p.weekday_factors.to_vec(),
                    basis_days: p.basis_days,
                    end_bytes: p.end_bytes,
                    runs_out_on: p.runs_out_on.map(|d| d.to_string()),
                },
                exact: s.exact,
            },
            quotas: r
                .quotas
                .into_iter()
                .map(|q| QuotaStatus {
                    quota: Quota {
                        id: q.quota.id,
                        subject: QuotaSubjectView {
                            kind: q.quota.subject.kind().to_string(),
                            name: match &q.quota.subject {
                                QuotaSubject::Device(m) => m.to_string(),
                                QuotaSubject::Person(n) | QuotaSubject::Group(n) => n.clone(),
                            },
                        },
                        period: match q.quota.period {
                            plan::QuotaPeriod::Day => QuotaPeriod::Day,
                            plan::QuotaPeriod::Week => QuotaPeriod::Week,
                            plan::QuotaPeriod::Cycle => QuotaPeriod::Cycle,
                        },
                        limit_bytes: q.quota.limit_bytes,
                    },
                    label: q.label,
                    devices: q.devices as u64,
                    window_start: q.window_start.to_string(),
                    window_end: q.window_end.to_string(),
                    used_bytes: q.used_bytes,
                    used_pct: q.used_pct,
                    reached: q.reached,
                })
                .collect(),
            days: r
                .days
                .into_iter()
                .map(|d| PlanDay {
                    date: d.date.to_string(),
                    used_bytes: d.used_bytes,
                    projected_bytes: d.projected_bytes,
                })
                .collect(),
            even_daily_share: r.even_daily_share,
            past: r
                .past
                .into_iter()
                .map(|c| PastCycle {
                    cycle: cycle(&c.cycle),
                    measured_bytes: c.measured_bytes,
                    offset_bytes: c.offset_bytes,
                    used_bytes: c.used_bytes,
                    used_pct: c.used_pct,
                    exact: c.exact,
                })
                .collect(),
            calibrations: r
                .calibrations
                .into_iter()
                .map(|c| PlanCalibration {
                    cycle_start: c.cycle_start.to_string(),
                    cycle_end: c.cycle_end.to_string(),
                    reported_at: c.reported_at.to_string(),
                    reported_bytes: c.reported_bytes,
                    measured_bytes: c.measured_bytes,
                    offset_bytes: c.offset_bytes,
                })
                .collect(),
        }
    }
}

/// GET /api/v1/plan
#[utoipa::path(
    get,
    path = "/api/v1/plan",
    tag = "plan",
    responses(
        (status = 200, description = "The plan report for the current billing cycle", body = PlanReportView),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn report(State(state): State<AppState>) -> Result<Json<PlanReportView>, ApiError> {
    let tz = state.config().time_zone();
    let now = jiff::Timestamp::from_second(state.now())
        .map_err(|e| ApiError::internal(format!("clock out of range: {e}")))?;
    let report = state
        .db(move |s| Ok(s.plan_report(&tz, now)))
        .await?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(report.into()))
}
