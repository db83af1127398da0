//! GET /: what a household member wants at a glance — the internet rate right now (polled from
//! /live), today / this week / this billing cycle, the top devices today with their share, who
//! is online, the data plan's state and the fullest quotas, new devices waiting for a name, open alerts and whether capture is healthy.

use super::AppState;
use super::charts;
use super::error::AppError;
use super::live::LiveView;
use super::plan;
use super::session::{Auth, Layout};
use super::view::{self, DeviceRow, fmt_bytes};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;

/// Devices listed under "top devices today".
const TOP: usize = 6;
/// New devices listed (the devices page has the rest).
const NEW_SHOWN: usize = 5;

/// The plan card of the overview: the same state sentence as /plan, the allowance bar and
/// the quotas closest to (or past) their limit.
pub struct PlanCard {
    pub limited: bool,
    pub used: String,
    pub allowance: String,
    pub used_pct: String,
    pub used_bar: u32,
    pub level: &'static str,
    pub state: &'static str,
    pub state_line: String,
    pub quotas: Vec<plan::QuotaRow>,
}

/// Quotas shown on the overview (the plan page lists them all).
const TOP_QUOTAS: usize = 3;

async fn plan_card(state: &AppState) -> Result<PlanCard, AppError> {
    // Past cycles are not shown here, so the summary leaves them out.
    let r = plan::summary(state).await?;
    let s = &r.status;
    // Running settings: a price changed in Settings shows at once.
    let (kind, line) = plan::state_line(&r, &super::settings::running(state));
    let mut quotas = plan::quota_rows(&r);
    // The fullest first: what needs attention.
    let mut order: Vec<(f64, plan::QuotaRow)> = r
        .quotas
        .iter()
        .map(|q| q.used_pct)
        .zip(quotas.drain(..))
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(PlanCard {
        limited: s.allowance_bytes.is_some(),
        used: fmt_bytes(s.used_bytes),
        allowance: s.allowance_bytes.map_or_else(String::new, fmt_bytes),
        used_pct: s.used_pct.map_or_else(String::new, plan::pct),
        used_bar: s.used_pct.map_or(0, plan::bar),
        level: s
            .used_pct
            .map_or("", |u| crate::plan::bar_level(u, &s.thresholds)),
        state: kind,
        state_line: line,
        quotas: order.into_iter().take(TOP_QUOTAS).map(|(_, q)| q).collect(),
    })
}

pub struct Top {
    pub row: DeviceRow,
    pub share: String,
    pub share_bar: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/overview.html")]
pub struct OverviewPage {
    pub layout: Layout,
    pub live: LiveView,
    pub today: String,
    pub today_down: String,
    pub today_up: String,
    pub week: String,
    pub cycle: String,
    pub cycle_range: String,
    pub plan: PlanCard,
    pub top: Vec<Top>,
    pub online: Vec<DeviceRow>,
    /// Every device (see `DeviceRow::is_device`).
    pub device_total: usize,
    pub new_devices: Vec<DeviceRow>,
    pub health: String,
    pub health_bad: bool,
    /// "lanmeter saw 97 % of the internet traffic your router counted today." (issue 24).
    pub coverage: Option<String>,
    /// "What used the most today" (issue 29): only with `per_device_services` on.
    pub services: Option<Vec<super::services::TopService>>,
    pub demo: Option<String>,
}

/// The capture-health line: frames per second on average, drops, or why there is no capture.
pub fn capture_health(state: &AppState) -> (String, bool) {
    let t = state.telemetry();
    match t.capture().zip(t.capture_interface()) {
        Some((s, interface)) => {
            let secs = state.running_secs().max(1);
            let dropped = s.pcap_dropped + s.pcap_if_dropped;
            let line = format!(
                "Capturing on {}: {} frames ({:.0}/s on average), {} dropped{}",
                interface,
                s.frames_seen,
                s.frames_seen as f64 / secs as f64,
                dropped,
                if s.read_errors > 0 {
                    format!(", {} read errors", s.read_errors)
                } else {
                    String::new()
                }
            );
            (line, dropped > 0 || s.read_errors > 0)
        }
        None if state.demo().is_some() => (
            "Demo household: the traffic is synthetic, no interface is captured.".into(),
            false,
        ),
        None if state.has_meter() => ("Capture is starting…".into(), false),
        None => (
            "Not capturing: this server only shows stored history.".into(),
            true,
        ),
    }
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<OverviewPage, AppError> {
    let h = view::household(&state).await?;
    let tz = state.config().time_zone();
    let mut devices: Vec<DeviceRow> = h.rows.into_iter().filter(|r| r.is_device()).collect();
    let device_total = devices.len();
    let today_total: u64 = h.totals[0];
    devices.sort_by(|a, b| b.today.cmp(&a.today).then(a.label.cmp(&b.label)));
    let top = devices
        .iter()
        .filter(|r| r.today > 0 && !r.ignored)
        .take(TOP)
        .map(|r| {
            let pct = if today_total == 0 {
                0.0
            } else {
                r.today as f64 * 100.0 / today_total as f64
            };
            Top {
                row: r.clone(),
                share: format!("{pct:.0} %"),
                share_bar: charts::share(pct),
            }
        })
        .collect();
    let mut online: Vec<DeviceRow> = devices
        .iter()
        .filter(|r| r.counts_online())
        .cloned()
        .collect();
    online.sort_by_key(|r| r.label.to_lowercase());
    let mut new_devices: Vec<DeviceRow> = devices
        .iter()
        .filter(|r| !r.known && !r.named && !r.ignored)
        .cloned()
        .collect();
    new_devices.sort_by_key(|r| std::cmp::Reverse(r.first_seen_s));
    new_devices.truncate(NEW_SHOWN);
    let (health, health_bad) = capture_health(&state);
    // Reused for a second like the household reading: it reads the router's minutes of today.
    let generation = state.generation();
    let coverage = if let Some(line) = state.caches().coverage(generation) {
        line
    } else {
        let now = state.now();
        let lag = 2 * state.config().flush_interval_secs;
        let tz = tz.clone();
        let line = state
            .db(move |s| {
                let report = crate::router::coverage::coverage_today(s, &tz, now, lag)
                    .ok()
                    .flatten();
                let status = crate::router::coverage::status(s)?;
                Ok(crate::router::coverage::overview_line(
                    report.as_ref(),
                    status.as_ref(),
                ))
            })
            .await?;
        state.caches().set_coverage(generation, line.clone());
        line
    };
    // Read only with the setting on: with it off the card is absent and nothing is queried.
    let services = if state.config().per_device_services {
        // Today as the device page's "Today" cuts it: hours starting from local midnight.
        let (from, to) = (h.periods.today, state.now() + 1);
        let all = state.db(move |s| s.household_services(from, to)).await?;
        Some(super::services::top_services(&all, |id| {
            devices
                .iter()
                .find(|r| r.id == id)
                .map_or_else(|| format!("device {id}"), |r| r.label.clone())
        }))
    } else {
        None
    };
    let (c0, c1) = h.periods.cycle;
    Ok(OverviewPage {
        layout: Layout::new("Overview", "overview", Some(&auth)),
        live: LiveView::now(&state),
        today: fmt_bytes(today_total),
        today_down: fmt_bytes(h.today_down_up.0),
        today_up: fmt_bytes(h.today_down_up.1),
        week: fmt_bytes(h.totals[1]),
        cycle: fmt_bytes(h.totals[2]),
        cycle_range: format!(
            "{} – {}",
            view::fmt_local(c0, &tz).split(' ').next().unwrap_or(""),
            view::fmt_local(c1 - 1, &tz).split(' ').next().unwrap_or("")
        ),
        plan: plan_card(&state).await?,
        top,
        online,
        device_total,
        new_devices,
        health,
        health_bad,
        coverage,
        services,
        demo: state.demo().map(str::to_string),
    })
}
