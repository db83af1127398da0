//! The data plan pages: `/plan` (used, remaining, safe budget for today, projection, per-day
//! bars against the budget line as server-rendered SVG, past cycles, quota bars),
//! `/plan/settings` (the plan form and the calibration form) and `/plan/quotas` (quota
//! management). Viewers read; every change needs an admin (the guard enforces it, and checks
//! CSRF) and is written to the audit log. All numbers come from `Store::plan_report`; this file
//! only formats them and never computes a budget itself.

use super::AppState;
use super::error::AppError;
use super::session::{Auth, Client, Layout, audit};
use super::view::fmt_bytes;
use crate::plan::{
    self, Calibration, Counted, CycleRule, HD_VIDEO_BYTES_PER_HOUR, Plan, PlanSource, QuotaPeriod,
    QuotaSubject,
};
use crate::store::plan::{DayBar, PlanReport};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;

/// Longest person or group name a quota accepts (the device fields are capped the same way).
const MAX_NAME: usize = 64;

fn now(state: &AppState) -> Result<Timestamp, AppError> {
    Timestamp::from_second(state.now())
        .map_err(|e| AppError::internal(format!("clock out of range: {e}")))
}

pub(super) async fn report(state: &AppState) -> Result<PlanReport, AppError> {
    let tz = state.config().time_zone();
    let now = now(state)?;
    state
        .db(move |s| Ok(s.plan_report(&tz, now)))
        .await?
        .map_err(|e| AppError::internal(e.to_string()))
}

/// The report without past cycles, uncached: what the plan settings page and the first-run
/// wizard show (the plan, this cycle's use and calibrations), without reading six past cycles.
async fn report_without_past(state: &AppState) -> Result<PlanReport, AppError> {
    let tz = state.config().time_zone();
    let now = now(state)?;
    state
        .db(move |s| Ok(s.plan_summary(&tz, now)))
        .await?
        .map_err(|e| AppError::internal(e.to_string()))
}

/// The plan summary of the overview's plan card, reused for [`super::view::CACHE_FOR`] like the
/// household reading (every overview request read it: the quotas' usage alone is a few
/// milliseconds); a change to the plan or its quotas on this server bumps the generation.
/// One request refreshes it at a time; the others meanwhile get the previous summary (up to
/// [`super::view::STALE_MAX`] old), so 20 clients arriving as it expires do not all read the
/// quotas' usage at once.
pub(super) async fn summary(state: &AppState) -> Result<std::sync::Arc<PlanReport>, AppError> {
    let generation = state.generation();
    let cached = state.caches().plan_summary(generation);
    if let Some((at, r)) = &cached
        && at.elapsed() < super::view::CACHE_FOR
    {
        return Ok(std::sync::Arc::clone(r));
    }
    let refresh = state.caches().refresh_plan();
    if refresh.is_none()
        && let Some((_, r)) = cached
    {
        return Ok(r);
    }
    let tz = state.config().time_zone();
    let now = now(state)?;
    let r = std::sync::Arc::new(
        state
            .db(move |s| Ok(s.plan_summary(&tz, now)))
            .await?
            .map_err(|e| AppError::internal(e.to_string()))?,
    );
    state
        .caches()
        .set_plan_summary(generation, std::sync::Arc::clone(&r));
    drop(refresh);
    Ok(r)
}

/// The rows of every quota that covers `mac` (a device page: its own, its owner's, its group's).
pub(super) async fn quotas_covering(
    state: &AppState,
    mac: crate::model::MacAddr,
) -> Result<Vec<QuotaRow>, AppError> {
    let tz = state.config().time_zone();
    let now = now(state)?;
    let (p, mut quotas) = state
        .db(move |s| Ok(s.quota_report(&tz, now)))
        .await?
        .map_err(|e| AppError::internal(e.to_string()))?;
    quotas.retain(|q| q.covers.contains(&mac));
    Ok(quota_rows_of(&p, &quotas))
}

pub(super) fn pct(p: f64) -> String {
    format!("{p:.0} %")
}

/// A bar's value for `<progress max="100">`.
pub(super) fn bar(p: f64) -> u32 {
    p.clamp(0.0, 100.0).round() as u32
}

fn signed_bytes(b: i64) -> String {
    if b < 0 {
        format!("−{}", fmt_bytes(b.unsigned_abs()))
    } else {
        format!("+{}", fmt_bytes(b.unsigned_abs()))
    }
}

/// GB as typed by a person ("500", "1.5", "1,5") to bytes; `None` for anything else.
pub fn parse_gb(s: &str) -> Option<u64> {
    let t = s.trim().trim_end_matches("GB").trim().replace(',', ".");
    let v: f64 = t.parse().ok()?;
    (v.is_finite() && (0.0..1e9).contains(&v)).then(|| (v * 1e9).round() as u64)
}

fn gb_field(b: u64) -> String {
    let v = b as f64 / 1e9;
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

// ---------------------------------------------------------------------------------------------
// The chart

/// One SVG rectangle of the per-day chart.
pub struct Rect {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    /// CSS class: `used`, `over` (above the budget line), `proj` (expected).
    pub class: &'static str,
    pub title: String,
}

/// The per-day chart, laid out in SVG user units.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub rects: Vec<Rect>,
    /// y of the budget line, when the plan has an allowance.
    pub line_y: Option<String>,
    pub line_label: String,
    pub first: String,
    pub last: String,
    pub top_label: String,
}

const CHART_W: f64 = 720.0;
const CHART_H: f64 = 220.0;
const PLOT_TOP: f64 = 18.0;
const PLOT_BOTTOM: f64 = 196.0;

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// Lays out one bar per day (used, and expected stacked on top) against the even daily share.
pub fn chart(days: &[DayBar], line: Option<u64>, today: Date) -> Chart {
    let max = days
        .iter()
        .map(|d| d.used_bytes.unwrap_or(0) + d.projected_bytes.unwrap_or(0))
        .chain(line)
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let n = days.len().max(1) as f64;
    let slot = CHART_W / n;
    let w = (slot * 0.8).max(1.0);
    let y_of = |b: f64| PLOT_BOTTOM - (b / max) * (PLOT_BOTTOM - PLOT_TOP);
    let mut rects = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let x = i as f64 * slot + (slot - w) / 2.0;
        let used = d.used_bytes.unwrap_or(0) as f64;
        if d.used_bytes.is_some() {
            let over = line.is_some_and(|l| d.used_bytes.unwrap_or(0) > l);
            rects.push(Rect {
                x: f(x),
                y: f(y_of(used)),
                w: f(w),
                h: f(PLOT_BOTTOM - y_of(used)),
                class: if over { "over" } else { "used" },
                title: format!(
                    "{}: {}{}",
                    d.date,
                    fmt_bytes(used as u64),
                    if d.date == today { " so far" } else { "" }
                ),
            });
        }
        if let Some(p) = d.projected_bytes.filter(|p| *p > 0) {
            let top = used + p as f64;
            rects.push(Rect {
                x: f(x),
                y: f(y_of(top)),
                w: f(w),
                h: f(y_of(used) - y_of(top)),
                class: "proj",
                title: format!("{}: about {} expected", d.date, fmt_bytes(p)),
            });
        }
    }
    Chart {
        width: CHART_W as u32,
        height: CHART_H as u32,
        rects,
        line_y: line.map(|l| f(y_of(l as f64))),
        line_label: line.map_or_else(String::new, |l| {
            format!("even share: {} a day", fmt_bytes(l))
        }),
        first: days
            .first()
            .map_or_else(String::new, |d| d.date.to_string()),
        last: days.last().map_or_else(String::new, |d| d.date.to_string()),
        top_label: fmt_bytes((max / 1.1) as u64),
    }
}

// ---------------------------------------------------------------------------------------------
// GET /plan

pub struct PastRow {
    pub range: String,
    pub used: String,
    pub pct: String,
    pub note: String,
}

pub struct QuotaRow {
    pub id: i64,
    pub label: String,
    pub kind: &'static str,
    pub period: &'static str,
    pub used: String,
    pub limit: String,
    pub pct: String,
    pub bar: u32,
    /// `amber`, `red` or empty: the bar's colour (see [`plan::bar_level`]).
    pub level: &'static str,
    pub reached: bool,
    pub devices: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/plan.html")]
pub struct PlanPage {
    pub layout: Layout,
    pub plan_line: String,
    pub cycle_range: String,
    pub cycle_last: String,
    pub days_left: i64,
    pub limited: bool,
    pub used: String,
    pub allowance: String,
    pub remaining: String,
    pub used_pct: String,
    pub used_bar: u32,
    pub used_level: &'static str,
    /// `exceeded`, `runs_out`, `on_track` or `unlimited`.
    pub state: &'static str,
    pub state_line: String,
    /// How far past the allowance the projection ends, when it does.
    pub projected_over: Option<String>,
    pub elapsed_pct: String,
    pub elapsed_bar: u32,
    pub today_used: String,
    pub safe_today: String,
    pub safe_hd: String,
    /// The HD video assumption, stated next to the hours.
    pub hd_rate: String,
    pub over_budget: bool,
    pub projection: String,
    pub basis: String,
    pub offset_note: Option<String>,
    pub inexact: bool,
    pub chart: Chart,
    pub past: Vec<PastRow>,
    pub quotas: Vec<QuotaRow>,
}

fn plan_line(p: &Plan, zone: &str) -> String {
    let allowance = p.allowance_bytes.map_or_else(
        || "Unlimited".to_string(),
        |a| format!("{} a cycle", fmt_bytes(a)),
    );
    format!(
        "{allowance}, {}, counting {} {}, time zone {zone}",
        p.cycle,
        p.counted.describe(),
        p.source.describe()
    )
}

/// What the use over the allowance costs at `price` per GB (10^9 bytes, as ISPs bill): so far,
/// and by the cycle's end at the projected pace (never less than so far).
pub fn overage_line(over_bytes: u64, end_over_bytes: u64, price: f64, currency: &str) -> String {
    let gb = |b: u64| b as f64 / 1e9;
    let end = end_over_bytes.max(over_bytes);
    format!(
        "{:.1} GB over: about {:.2} {currency} so far, about {:.2} {currency} by the end of the cycle.",
        gb(over_bytes),
        gb(over_bytes) * price,
        gb(end) * price
    )
}

/// The plan's state in one sentence (with what the overage costs, when the plan is exceeded and
/// `overage_price_per_gb` is set), and its kind (`exceeded`, `runs_out`, `on_track`,
/// `unlimited`) for the page's colour: the same words on /plan and on the overview.
pub fn state_line(r: &PlanReport, cfg: &crate::config::Config) -> (&'static str, String) {
    match &r.state {
        plan::PlanState::Exceeded { on, over_bytes } => {
            let mut line = format!(
                "The allowance ran out on {on}: {} over it so far.",
                fmt_bytes(*over_bytes)
            );
            if let (Some(price), Some(allowance)) = (cfg.overage_price(), r.status.allowance_bytes)
            {
                let end_over = r.status.projection.end_bytes.saturating_sub(allowance);
                line.push(' ');
                line.push_str(&overage_line(*over_bytes, end_over, price, &cfg.currency));
            }
            ("exceeded", line)
        }
        plan::PlanState::RunsOut { on } => (
            "runs_out",
            format!("At this pace the allowance runs out on {on}."),
        ),
        plan::PlanState::OnTrack => (
            "on_track",
            "On track: the allowance is not expected to run out before the cycle ends.".into(),
        ),
        plan::PlanState::Unlimited => ("unlimited", "Unlimited plan: nothing runs out.".into()),
    }
}

pub fn quota_rows(r: &PlanReport) -> Vec<QuotaRow> {
    quota_rows_of(&r.plan, &r.quotas)
}

fn quota_rows_of(p: &Plan, quotas: &[plan::QuotaStatus]) -> Vec<QuotaRow> {
    quotas
        .iter()
        .map(|q| QuotaRow {
            id: q.quota.id,
            label: q.label.clone(),
            kind: q.quota.subject.kind(),
            period: q.quota.period.describe(),
            used: fmt_bytes(q.used_bytes),
            limit: fmt_bytes(q.quota.limit_bytes),
            pct: pct(q.used_pct),
            bar: bar(q.used_pct),
            level: plan::bar_level(q.used_pct, &p.thresholds),
            reached: q.reached,
            devices: q.devices,
        })
        .collect()
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<PlanPage, AppError> {
    let r = report(&state).await?;
    let s = &r.status;
    let p = &s.projection;
    let basis = if p.basis_days == 0 {
        "There is no complete day of history yet: today's pace stands in.".to_string()
    } else {
        let rhythm = if p.weekday_factors.iter().any(|f| (f - 1.0).abs() > 1e-6) {
            "with the household's weekday rhythm"
        } else {
            "without a weekday rhythm (it needs three weeks of history)"
        };
        format!(
            "From the last {} day(s): about {} a day{}, {rhythm}.",
            p.basis_days,
            fmt_bytes(p.level_bytes_per_day.max(0.0) as u64),
            if p.trend_bytes_per_day > 0.0 {
                format!(
                    ", growing by {} a day",
                    fmt_bytes(p.trend_bytes_per_day as u64)
                )
            } else {
                String::new()
            }
        )
    };
    // A cycle that began before the kept history is only partly counted: say so.
    let history_from = state.query(|s| Ok(s.data_extent()?)).await?.map(|e| e.0);
    let tz = state.config().time_zone();
    // Running settings: a price changed in Settings shows at once.
    let line = state_line(&r, &super::settings::running(&state));
    let past = r
        .past
        .iter()
        .map(|c| PastRow {
            range: format!("{} to {}", c.cycle.first_day, c.cycle.last_day),
            used: fmt_bytes(c.used_bytes),
            pct: c.used_pct.map_or_else(String::new, pct),
            note: [
                (c.offset_bytes != 0)
                    .then(|| format!("calibrated {}", signed_bytes(c.offset_bytes))),
                (!c.exact).then(|| "partly outside the kept history".to_string()),
                history_from
                    .filter(|h| *h > c.cycle.start.as_second() && *h < c.cycle.end.as_second())
                    .map(|h| {
                        format!(
                            "partial: the history starts {}",
                            super::view::fmt_local(h, &tz)
                        )
                    }),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; "),
        })
        .collect();
    Ok(PlanPage {
        layout: Layout::new("Data plan", "plan", Some(&auth)),
        plan_line: plan_line(&r.plan, &r.zone),
        cycle_range: format!("{} to {}", s.cycle.first_day, s.cycle.last_day),
        cycle_last: s.cycle.last_day.to_string(),
        days_left: s.days_left,
        limited: s.allowance_bytes.is_some(),
        used: fmt_bytes(s.used_bytes),
        allowance: s.allowance_bytes.map_or_else(String::new, fmt_bytes),
        remaining: s.remaining_bytes.map_or_else(String::new, fmt_bytes),
        used_pct: s.used_pct.map_or_else(String::new, pct),
        used_bar: s.used_pct.map_or(0, bar),
        used_level: s.used_pct.map_or("", |u| plan::bar_level(u, &s.thresholds)),
        state: line.0,
        state_line: line.1,
        elapsed_pct: pct(s.elapsed_pct),
        elapsed_bar: bar(s.elapsed_pct),
        today_used: fmt_bytes(s.today_bytes),
        safe_today: s.safe_today_bytes.map_or_else(String::new, fmt_bytes),
        safe_hd: s
            .safe_today_hd_hours
            .map_or_else(String::new, |h| format!("{h:.1}")),
        hd_rate: fmt_bytes(HD_VIDEO_BYTES_PER_HOUR),
        over_budget: s.over_budget_today,
        projection: fmt_bytes(p.end_bytes),
        projected_over: s
            .allowance_bytes
            .filter(|a| p.end_bytes > *a)
            .map(|a| fmt_bytes(p.end_bytes - a)),
        basis,
        offset_note: (s.offset_bytes != 0).then(|| {
            format!(
                "Includes a calibration offset of {} (lanmeter counted {}).",
                signed_bytes(s.offset_bytes),
                fmt_bytes(s.measured_bytes)
            )
        }),
        inexact: !s.exact,
        chart: chart(&r.days, r.even_daily_share, s.today),
        past,
        quotas: quota_rows(&r),
    })
}

// ---------------------------------------------------------------------------------------------
// /plan/settings and /plan/calibrate

/// The plan form as submitted (and as shown again after an error).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    pub allowance_gb: String,
    #[serde(default)]
    pub cycle_kind: String,
    #[serde(default)]
    pub start_day: String,
    #[serde(default)]
    pub every_days: String,
    #[serde(default)]
    pub anchor: String,
    #[serde(default)]
    pub counted: String,
    /// "devices" or "router"; a form without the field (an older page) counts the devices.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub thresholds: String,
    /// `overage_price_per_gb` of the config file (empty: none), written through the settings
    /// editor like the Settings page writes it; a form without the field leaves it as it is.
    #[serde(default)]
    pub overage_price: Option<String>,
}

impl PlanForm {
    fn from_plan(p: &Plan, today: Date) -> PlanForm {
        let (kind, start_day, every_days, anchor) = match p.cycle {
            CycleRule::Monthly { start_day } => ("monthly", start_day, 30, today),
            CycleRule::EveryNDays { days, anchor } => ("every", 1, days, anchor),
        };
        PlanForm {
            allowance_gb: p.allowance_bytes.map_or_else(String::new, gb_field),
            cycle_kind: kind.to_string(),
            start_day: start_day.to_string(),
            every_days: every_days.to_string(),
            anchor: anchor.to_string(),
            counted: p.counted.as_str().to_string(),
            source: p.source.as_str().to_string(),
            thresholds: plan::format_thresholds(&p.thresholds),
            overage_price: None,
        }
    }

    /// The plan, or a message saying which field to fix.
    pub fn parse(&self) -> Result<Plan, String> {
        let allowance_bytes = match self.allowance_gb.trim() {
            "" => None,
            t if t.starts_with('-') && parse_gb(&t[1..]).is_some() => {
                return Err(format!(
                    "Allowance: '{t}' must be positive (a number of GB); leave it empty for unlimited."
                ));
            }
            t => Some(parse_gb(t).ok_or_else(|| {
                format!("Allowance: '{t}' is not a number of GB; leave it empty for unlimited.")
            })?),
        };
        let cycle = match self.cycle_kind.as_str() {
            "monthly" => CycleRule::Monthly {
                start_day: self
                    .start_day
                    .trim()
                    .parse()
                    .map_err(|_| "Cycle start day: give a day of the month from 1 to 31.")?,
            },
            "every" => CycleRule::EveryNDays {
                days: self
                    .every_days
                    .trim()
                    .parse()
                    .map_err(|_| "Cycle length: give a number of days from 1 to 366.")?,
                anchor: {
                    let d: jiff::civil::Date = self.anchor.trim().parse().map_err(|_| {
                        "First day of a cycle: give a date such as 2026-03-05.".to_string()
                    })?;
                    // A far-off anchor puts every cycle's arithmetic at the calendar's edge.
                    if d.year() < 2000 || d.year() > 2100 {
                        return Err(format!(
                            "First day of a cycle: {d} is too far off; give a date between 2000 and 2100."
                        ));
                    }
                    d
                },
            },
            _ => return Err("Choose how the billing cycle repeats.".into()),
        };
        let p = Plan {
            allowance_bytes,
            cycle,
            counted: Counted::parse(&self.counted).ok_or("Choose what your provider counts.")?,
            source: match self.source.trim() {
                "" => PlanSource::Devices,
                s => PlanSource::parse(s)
                    .ok_or("Choose whose bytes to count: the devices' or the router's.")?,
            },
            thresholds: plan::parse_thresholds(&self.thresholds).map_err(|e| e.to_string())?,
        };
        p.validate().map_err(|e| e.to_string())?;
        Ok(p)
    }
}

/// The result of comparing the ISP's figure with lanmeter's.
pub struct Comparison {
    pub reported: String,
    pub measured: String,
    pub difference: String,
    pub at: String,
}

pub struct CalibrationRow {
    pub at: String,
    pub reported: String,
    pub measured: String,
    pub offset: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/plan_settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub form: PlanForm,
    /// Written after the price field.
    pub currency: String,
    pub error: Option<String>,
    pub saved: bool,
    pub zone: String,
    pub cycle_range: String,
    pub used: String,
    pub measured: String,
    pub reported_gb: String,
    pub reported_at: String,
    pub cal_error: Option<String>,
    pub comparison: Option<Comparison>,
    pub calibrations: Vec<CalibrationRow>,
}

impl SettingsPage {
    fn checked(&self, field: &str, value: &str) -> bool {
        match field {
            "cycle_kind" => self.form.cycle_kind == value,
            "counted" => self.form.counted == value,
            "source" => self.form.source == value,
            _ => false,
        }
    }

    /// Askama calls this for `checked` attributes.
    pub fn is(&self, field: &str, value: &str) -> bool {
        self.checked(field, value)
    }
}

fn local_input(t: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

async fn settings_page(
    state: &AppState,
    auth: &Auth,
    form: Option<PlanForm>,
    error: Option<String>,
) -> Result<SettingsPage, AppError> {
    let r = report_without_past(state).await?;
    let tz = state.config().time_zone();
    let now = now(state)?;
    let running = super::settings::running(state);
    let calibrations = r
        .calibrations
        .iter()
        .map(|c| CalibrationRow {
            at: local_input(c.reported_at, &tz).replace('T', " "),
            reported: fmt_bytes(c.reported_bytes),
            measured: fmt_bytes(c.measured_bytes),
            offset: signed_bytes(c.offset_bytes),
        })
        .collect();
    Ok(SettingsPage {
        layout: Layout::new("Data plan settings", "plan", Some(auth)),
        form: form.unwrap_or_else(|| PlanForm {
            overage_price: Some(running.overage_price_per_gb.clone().unwrap_or_default()),
            ..PlanForm::from_plan(&r.plan, r.status.today)
        }),
        currency: running.currency,
        error,
        saved: false,
        zone: r.zone.clone(),
        cycle_range: format!(
            "{} to {}",
            r.status.cycle.first_day, r.status.cycle.last_day
        ),
        used: fmt_bytes(r.status.used_bytes),
        measured: fmt_bytes(r.status.measured_bytes),
        reported_gb: String::new(),
        reported_at: local_input(now, &tz),
        cal_error: None,
        comparison: None,
        calibrations,
    })
}

pub async fn settings(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<SettingsPage, AppError> {
    settings_page(&state, &auth, None, None).await
}

pub async fn save_settings(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<PlanForm>,
) -> Result<Response, AppError> {
    if let Err(msg) = save_plan(&state, &auth, &client, &form).await? {
        let page = settings_page(&state, &auth, Some(form), Some(msg)).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let mut page = settings_page(&state, &auth, None, None).await?;
    page.saved = true;
    Ok(page.into_response())
}

/// Saves the plan of `form` (and its price through the settings editor), audited: `Err` with
/// the message for the household when a field is refused (nothing is saved then). The plan
/// settings page and the first-run wizard both save through here.
pub(super) async fn save_plan(
    state: &AppState,
    auth: &Auth,
    client: &str,
    form: &PlanForm,
) -> Result<Result<(), String>, AppError> {
    let p = match form.parse() {
        Ok(p) => p,
        Err(msg) => return Ok(Err(msg)),
    };
    // The price first: a refused price leaves the plan unchanged too.
    let running = super::settings::running(state).overage_price_per_gb;
    let price = form.overage_price.as_deref().map_or_else(
        || running.clone().unwrap_or_default(),
        |p| p.trim().to_string(),
    );
    let priced = crate::config::Config {
        overage_price_per_gb: (!price.is_empty()).then(|| price.clone()),
        ..Default::default()
    };
    if !price.is_empty() && priced.overage_price().is_none() {
        return Ok(Err(
            "The price per GB is not a number of 0 or more (such as 0.50).".to_string(),
        ));
    }
    if priced.overage_price_per_gb != running {
        let change = (
            "overage_price_per_gb".to_string(),
            priced.overage_price_per_gb.map(|p| p.as_str().into()),
        );
        if let Err(e) = super::settings::apply(state, auth.actor(), client, vec![change]).await {
            return Ok(Err(match e {
                crate::config::settings::EditError::Refused(why) => {
                    why.into_values().collect::<Vec<_>>().join("; ")
                }
                e => e.to_string(),
            }));
        }
    }
    let at = state.now();
    let saved = p.clone();
    state.db(move |s| s.set_plan(&saved, at)).await?;
    state.changed();
    let detail = plan_line(&p, state.config().time_zone().iana_name().unwrap_or(""));
    audit(state, auth.actor(), client, "plan changed", detail).await;
    Ok(Ok(()))
}

/// The plan form filled from the stored plan and the running price, with the currency and
/// the zone the form names (for the first-run wizard).
pub(super) async fn plan_form(state: &AppState) -> Result<(PlanForm, String, String), AppError> {
    let r = report_without_past(state).await?;
    let running = super::settings::running(state);
    let form = PlanForm {
        overage_price: Some(running.overage_price_per_gb.clone().unwrap_or_default()),
        ..PlanForm::from_plan(&r.plan, r.status.today)
    };
    Ok((form, running.currency, r.zone.clone()))
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CalibrationForm {
    #[serde(default)]
    pub reported_gb: String,
    #[serde(default)]
    pub reported_at: String,
    #[serde(default)]
    pub action: String,
}

pub async fn calibrate(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<CalibrationForm>,
) -> Result<Response, AppError> {
    let tz = state.config().time_zone();
    let now = now(&state)?;
    let mut page = settings_page(&state, &auth, None, None).await?;
    page.reported_gb = form.reported_gb.clone();
    page.reported_at = form.reported_at.clone();
    let p = state.db(|s| s.plan()).await?;
    let cycle = plan::current_cycle(&p, now, &tz);
    if form.action == "clear" {
        let c = cycle.clone();
        let n = state.db(move |s| s.clear_calibrations(&c)).await?;
        audit(
            &state,
            auth.actor(),
            &client,
            "plan calibration removed",
            format!("{n} offset(s) of the cycle from {}", cycle.first_day),
        )
        .await;
        return Ok(Redirect::to("/plan/settings").into_response());
    }
    let fail = |mut page: SettingsPage, msg: String| {
        page.cal_error = Some(msg);
        Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
    };
    let Some(reported) = parse_gb(&form.reported_gb) else {
        return fail(
            page,
            "Usage your provider reports: give a number of GB, such as 123.4.".into(),
        );
    };
    let at = match form.reported_at.trim() {
        "" => now,
        t => match t
            .parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|dt| dt.to_zoned(tz.clone()).ok())
        {
            Some(z) => z.timestamp(),
            None => {
                return fail(
                    page,
                    "When: give a local date and time such as 2026-03-05T18:00.".into(),
                );
            }
        },
    };
    if !cycle.contains(at) || at > now {
        return fail(
            page,
            format!(
                "When: the reading must be from the current cycle ({} to {}) and not in the future.",
                cycle.first_day, cycle.last_day
            ),
        );
    }
    let from = cycle.start;
    let measured = state
        .db(move |s| Ok(s.plan_usage(&p, &tz, from, at).map(|(b, _)| b)))
        .await?
        .map_err(|e| AppError::internal(e.to_string()))?;
    let offset = plan::calibration_offset(reported, measured);
    if form.action == "apply" {
        let cal = Calibration {
            cycle_start: cycle.start,
            cycle_end: cycle.end,
            reported_at: at,
            reported_bytes: reported,
            measured_bytes: measured,
            offset_bytes: offset,
            created_at: now,
        };
        state.db(move |s| s.add_calibration(&cal)).await?;
        state.changed();
        audit(
            &state,
            auth.actor(),
            &client,
            "plan calibrated",
            format!(
                "provider {} vs lanmeter {}: offset {} for the cycle from {}",
                fmt_bytes(reported),
                fmt_bytes(measured),
                signed_bytes(offset),
                cycle.first_day
            ),
        )
        .await;
        return Ok(Redirect::to("/plan/settings").into_response());
    }
    page.comparison = Some(Comparison {
        reported: fmt_bytes(reported),
        measured: fmt_bytes(measured),
        difference: signed_bytes(offset),
        at: local_input(at, &state.config().time_zone()).replace('T', " "),
    });
    Ok(page.into_response())
}

// ---------------------------------------------------------------------------------------------
// /plan/quotas

pub struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/plan_quotas.html")]
pub struct QuotasPage {
    pub layout: Layout,
    pub quotas: Vec<QuotaRow>,
    pub error: Option<String>,
    pub devices: Vec<Choice>,
    pub people: Vec<String>,
    pub groups: Vec<String>,
}

async fn quotas_page(
    state: &AppState,
    auth: &Auth,
    error: Option<String>,
) -> Result<QuotasPage, AppError> {
    // The quotas and the plan's thresholds, not the plan's own use and history.
    let tz = state.config().time_zone();
    let now = now(state)?;
    let (p, quotas) = state
        .db(move |s| Ok(s.quota_report(&tz, now)))
        .await?
        .map_err(|e| AppError::internal(e.to_string()))?;
    let devices = state.db(|s| s.list_devices()).await?;
    let mut people: Vec<String> = devices
        .iter()
        .filter_map(|d| d.user.owner.clone())
        .collect();
    let mut groups: Vec<String> = devices
        .iter()
        .filter_map(|d| d.user.group.clone())
        .collect();
    people.sort_unstable();
    people.dedup();
    groups.sort_unstable();
    groups.dedup();
    Ok(QuotasPage {
        layout: Layout::new("Quotas", "plan", Some(auth)),
        quotas: quota_rows_of(&p, &quotas),
        error,
        devices: devices
            .iter()
            .filter(|d| !d.is_gateway)
            .map(|d| Choice {
                value: d.mac.to_string(),
                label: d
                    .display_name()
                    .map_or_else(|| d.mac.to_string(), |n| format!("{n} ({})", d.mac)),
            })
            .collect(),
        people,
        groups,
    })
}

pub async fn quotas(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<QuotasPage, AppError> {
    quotas_page(&state, &auth, None).await
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct QuotaForm {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub period: String,
    #[serde(default)]
    pub limit_gb: String,
}

impl QuotaForm {
    pub fn parse(&self) -> Result<(QuotaSubject, QuotaPeriod, u64), String> {
        let subject = match self.kind.as_str() {
            "device" => QuotaSubject::Device(
                self.device
                    .trim()
                    .parse()
                    .map_err(|_| "Device: choose a device from the list.")?,
            ),
            "person" | "group" => {
                let n = self.name.trim();
                if n.is_empty() || n.len() > MAX_NAME || n.chars().any(char::is_control) {
                    return Err(format!(
                        "Name: give the {}'s name as set on the devices (1 to {MAX_NAME} characters).",
                        self.kind
                    ));
                }
                if self.kind == "person" {
                    QuotaSubject::Person(n.to_string())
                } else {
                    QuotaSubject::Group(n.to_string())
                }
            }
            _ => {
                return Err(
                    "Choose whether the quota is for a device, a person or a group.".into(),
                );
            }
        };
        let period =
            QuotaPeriod::parse(&self.period).ok_or("Choose day, week or billing cycle.")?;
        let limit = parse_gb(&self.limit_gb)
            .filter(|b| *b > 0)
            .ok_or("Limit: give a number of GB greater than 0, such as 2.5.")?;
        Ok((subject, period, limit))
    }
}

pub async fn save_quota(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<QuotaForm>,
) -> Result<Response, AppError> {
    let (subject, period, limit) = match form.parse() {
        Ok(v) => v,
        Err(msg) => {
            let page = quotas_page(&state, &auth, Some(msg)).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let at = state.now();
    let detail = format!(
        "{} {}: {} {}",
        subject.kind(),
        subject.name(),
        fmt_bytes(limit),
        period.describe()
    );
    state
        .db(move |s| s.upsert_quota(&subject, period, limit, at))
        .await?;
    state.changed();
    audit(&state, auth.actor(), &client, "quota set", detail).await;
    Ok(Redirect::to("/plan/quotas").into_response())
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    pub id: String,
}

pub async fn delete_quota(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<DeleteForm>,
) -> Result<Response, AppError> {
    let id: i64 = form
        .id
        .trim()
        .parse()
        .map_err(|_| AppError::BadRequest("No such quota.".into()))?;
    if !state.db(move |s| s.delete_quota(id)).await? {
        return Err(AppError::BadRequest(
            "That quota no longer exists; reload the page.".into(),
        ));
    }
    state.changed();
    audit(
        &state,
        auth.actor(),
        &client,
        "quota removed",
        format!("quota {id}"),
    )
    .await;
    Ok(Redirect::to("/plan/quotas").into_response())
}

#[cfg(test)]
mod tests;
