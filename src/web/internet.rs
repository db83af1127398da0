//! GET /internet: the connection's health from the active probes (issue 27): now (up or which
//! outage, latency, loss), the last 24 hours and 30 days as charts with outages marked, the
//! outage list, busy-hour latency, and the monthly report card, also as a printable page
//! (/internet/report) and CSV (/internet/report.csv) to send to the ISP. Reads only.
//!
//! The SVG carries only numbers and fixed labels, so it may be marked safe.

use super::AppState;
use super::error::AppError;
use super::session::{Auth, Layout};
use super::view::{fmt_duration, fmt_local};
use crate::internet::passive::PassiveMinute;
use crate::internet::report::{Quality, ReportCard, in_hours};
use crate::internet::{MinuteRow, Outage, State as NetState};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use std::fmt::Write;

const DAY: i64 = 86_400;
/// The evening busy hours (local time, end exclusive).
const BUSY_FROM: u8 = 19;
const BUSY_TO: u8 = 23;
const NS: i64 = 1_000_000_000;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct MonthParam {
    /// "YYYY-MM"; the current month when absent.
    #[serde(default)]
    pub month: Option<String>,
}

pub struct OutageRow {
    pub kind: &'static str,
    pub start: String,
    pub end: String,
    pub duration: String,
    pub open: bool,
}

pub struct CardView {
    pub month: String,
    pub uptime: String,
    pub outages: usize,
    pub internet_down: String,
    pub lan_down: String,
    pub dns_down: String,
    pub median: String,
    pub p95: String,
    pub loss: String,
    pub worst: Vec<(String, String, String)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/internet.html")]
pub struct InternetPage {
    pub layout: Layout,
    pub enabled: bool,
    pub state: &'static str,
    pub state_class: &'static str,
    pub since: Option<String>,
    pub latency: String,
    pub loss: String,
    pub gateway: String,
    pub dns: String,
    /// Passive latency of the newest minute with TCP handshakes (last 10 minutes).
    pub passive: String,
    pub day_chart: String,
    pub month_chart: String,
    pub outages: Vec<OutageRow>,
    pub busy: String,
    pub card: CardView,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/internet_report.html")]
pub struct ReportPage {
    pub layout: Layout,
    pub card: CardView,
    pub outages: Vec<OutageRow>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1} ms"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1} %"))
}

fn us_ms(v: Option<u32>) -> Option<f64> {
    v.map(|u| f64::from(u) / 1e3)
}

fn outage_rows(outages: &[Outage], now_ns: i64, tz: &jiff::tz::TimeZone) -> Vec<OutageRow> {
    outages
        .iter()
        .map(|o| {
            let end = o.end_ns.unwrap_or(now_ns);
            OutageRow {
                kind: o.kind.label(),
                start: fmt_local(o.start_ns.div_euclid(NS), tz),
                end: o
                    .end_ns
                    .map_or_else(|| "ongoing".into(), |e| fmt_local(e.div_euclid(NS), tz)),
                duration: fmt_duration(((end - o.start_ns).max(0) / NS) as u64),
                open: o.end_ns.is_none(),
            }
        })
        .collect()
}

/// The month `param` names ("2026-12") or the current one: its bounds in ns and its label.
fn month_bounds(
    param: Option<&str>,
    now: i64,
    tz: &jiff::tz::TimeZone,
) -> Result<(i64, i64, String), AppError> {
    let today = jiff::Timestamp::from_second(now)
        .map_err(|e| AppError::internal(e.to_string()))?
        .to_zoned(tz.clone())
        .date();
    let first = match param {
        Some(p) => {
            let (y, m) = p
                .split_once('-')
                .and_then(|(y, m)| Some((y.parse::<i16>().ok()?, m.parse::<i8>().ok()?)))
                .ok_or_else(|| AppError::BadRequest("month must look like 2026-12".into()))?;
            jiff::civil::Date::new(y, m, 1)
                .map_err(|_| AppError::BadRequest("month must look like 2026-12".into()))?
        }
        None => today.first_of_month(),
    };
    let next = first
        .checked_add(jiff::Span::new().months(1))
        .map_err(|e| AppError::internal(e.to_string()))?;
    let ns = |d: jiff::civil::Date| -> Result<i64, AppError> {
        Ok(d.to_zoned(tz.clone())
            .map_err(|e| AppError::internal(e.to_string()))?
            .timestamp()
            .as_nanosecond() as i64)
    };
    Ok((
        ns(first)?,
        ns(next)?,
        format!("{:04}-{:02}", first.year(), first.month()),
    ))
}

fn card_view(c: &ReportCard, month: String) -> CardView {
    CardView {
        month,
        uptime: c
            .uptime_percent()
            .map_or_else(|| "—".into(), |u| format!("{u:.3} %")),
        outages: c.outages,
        internet_down: fmt_duration(c.internet_down_secs as u64),
        lan_down: fmt_duration(c.lan_down_secs as u64),
        dns_down: fmt_duration(c.dns_down_secs as u64),
        median: ms(c.quality.median_ms),
        p95: ms(c.quality.p95_ms),
        loss: pct(c.quality.loss_percent()),
        worst: c
            .worst
            .iter()
            .map(|h| {
                (
                    format!("{:02}–{:02} h", h.hour, (h.hour + 1) % 24),
                    ms(h.quality.median_ms),
                    pct(h.quality.loss_percent()),
                )
            })
            .collect(),
    }
}

/// Minutes and outages of a month, and its card.
async fn month_card(
    state: &AppState,
    month: Option<&str>,
) -> Result<(ReportCard, Vec<Outage>, String), AppError> {
    let now = state.now();
    let tz = state.config().time_zone();
    let (from, to, label) = month_bounds(month, now, &tz)?;
    let (rows, outages) = state
        .db(move |s| {
            Ok((
                s.internet_minutes(from / NS, to / NS)?,
                s.internet_outages(from, to)?,
            ))
        })
        .await?;
    let outages: Vec<Outage> = outages.into_iter().map(|o| o.outage).collect();
    let card = ReportCard::build(&rows, &outages, from, to, now * NS, &tz);
    Ok((card, outages, label))
}

/// A latency line chart (median, p95) over `[from, to)` with outages shaded and loss marked.
pub fn latency_chart(
    label: &str,
    from: i64,
    to: i64,
    points: &[(i64, Quality)],
    passive: &[(i64, f64)],
    outages: &[Outage],
    ticks: &[(i64, String)],
) -> String {
    // The bar charts' width: labels stay readable when a phone scales the chart down.
    let (w, h, left, right, top, bottom) = (480.0, 220.0, 44.0, 8.0, 10.0, 30.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let top_ms = points
        .iter()
        .filter_map(|(_, q)| q.p95_ms)
        .chain(passive.iter().map(|(_, v)| *v))
        .fold(10.0, f64::max);
    let ymax = [
        10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
    ]
    .into_iter()
    .find(|m| *m >= top_ms)
    .unwrap_or(top_ms.ceil());
    let span = (to - from).max(1) as f64;
    let x = |t: i64| left + pw * ((t.clamp(from, to) - from) as f64 / span);
    let y = |v: f64| top + ph * (1.0 - v.clamp(0.0, ymax) / ymax);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart net" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">"#
    );
    for o in outages {
        let (a, b) = (
            x(o.start_ns.div_euclid(NS)),
            x(o.end_ns.unwrap_or(to * NS).div_euclid(NS)),
        );
        let _ = write!(
            s,
            r#"<rect class="outage" x="{a:.1}" y="{top}" width="{:.1}" height="{ph}"><title>{}</title></rect>"#,
            (b - a).max(1.5),
            o.kind.label()
        );
    }
    for frac in [0.0, 0.5, 1.0] {
        let yy = y(ymax * frac);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{:.0}</text>"#,
            w - right,
            left - 4.0,
            yy + 4.0,
            ymax * frac
        );
    }
    for (t, l) in ticks {
        let tx = x(*t);
        let _ = write!(
            s,
            r#"<text class="axis" x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            top + ph + 18.0,
            l.replace('&', "&amp;").replace('<', "&lt;")
        );
    }
    // Loss as ticks along the bottom, taller for more.
    for (t, q) in points {
        if let Some(l) = q.loss_percent().filter(|l| *l > 0.0) {
            let _ = write!(
                s,
                r#"<rect class="loss" x="{:.1}" y="{:.1}" width="2" height="{:.1}"/>"#,
                x(*t),
                top + ph - (l / 100.0 * ph * 0.5).max(2.0),
                (l / 100.0 * ph * 0.5).max(2.0)
            );
        }
    }
    let series = |pick: usize| -> Vec<(i64, Option<f64>)> {
        match pick {
            0 => points.iter().map(|(t, q)| (*t, q.median_ms)).collect(),
            1 => points.iter().map(|(t, q)| (*t, q.p95_ms)).collect(),
            _ => passive.iter().map(|(t, v)| (*t, Some(*v))).collect(),
        }
    };
    for (class, pick) in [("p95", 1usize), ("median", 0), ("passive", 2)] {
        let mut d = String::new();
        let mut last: Option<i64> = None;
        let gap = (to - from) / 100;
        for (t, v) in series(pick) {
            let Some(v) = v else {
                last = None;
                continue;
            };
            let cmd = if last.is_some_and(|l| t - l <= gap.max(120)) {
                'L'
            } else {
                'M'
            };
            let _ = write!(d, "{cmd}{:.1},{:.1} ", x(t), y(v));
            last = Some(t);
        }
        if !d.is_empty() {
            let _ = write!(s, r#"<path class="{class}" fill="none" d="{d}"/>"#);
        }
    }
    let _ = write!(
        s,
        r#"<text class="axis unit" x="{left}" y="{}">ms</text></svg>"#,
        h - 2.0
    );
    s
}

fn ticks(from: i64, to: i64, step: i64, tz: &jiff::tz::TimeZone, date: bool) -> Vec<(i64, String)> {
    let mut t = (from / step + 1) * step;
    let mut out = Vec::new();
    while t < to {
        let label = fmt_local(t, tz);
        // "2026-03-04 18:00" → "18:00" or "03-04".
        let l = if date {
            label
                .split(' ')
                .next()
                .unwrap_or(&label)
                .get(5..)
                .unwrap_or("")
                .to_string()
        } else {
            label.rsplit(' ').next().unwrap_or(&label).to_string()
        };
        out.push((t, l));
        t += step;
    }
    out
}

/// The household's passive latency per bucket of `secs` (at the bucket's middle, in ms): the
/// median of the minutes' medians, each weighted by its handshakes (minutes keep no more).
fn passive_points(rows: &[PassiveMinute], secs: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for group in rows.chunk_by(|a, b| a.minute.div_euclid(secs) == b.minute.div_euclid(secs)) {
        let mut v: Vec<(i64, i64)> = group
            .iter()
            .filter_map(|r| r.median_us.map(|m| (m, r.handshakes)))
            .collect();
        let n: i64 = v.iter().map(|(_, w)| w).sum();
        if n == 0 {
            continue;
        }
        v.sort_unstable();
        let mut seen = 0;
        let Some(&(m, _)) = v.iter().find(|(_, w)| {
            seen += w;
            2 * seen >= n
        }) else {
            continue;
        };
        let b = group[0].minute.div_euclid(secs) * secs;
        out.push((b + secs / 2, m as f64 / 1e3));
    }
    out
}

/// Minutes grouped into buckets of `secs`.
fn buckets(rows: &[MinuteRow], secs: i64) -> Vec<(i64, Quality)> {
    let mut out: Vec<(i64, Quality)> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let b = rows[i].minute.div_euclid(secs) * secs;
        let j = rows[i..]
            .iter()
            .position(|r| r.minute.div_euclid(secs) * secs != b)
            .map_or(rows.len(), |p| i + p);
        out.push((b + secs / 2, Quality::of(&rows[i..j])));
        i = j;
    }
    out
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<InternetPage, AppError> {
    let now = state.now();
    let tz = state.config().time_zone();
    let from30 = now - 30 * DAY;
    let (rows, outages, passive) = state
        .db(move |s| {
            Ok((
                s.internet_minutes(from30, now + 60)?,
                s.internet_outages(from30 * NS, (now + 60) * NS)?,
                s.passive_minutes(from30, now + 60)?,
            ))
        })
        .await?;
    let outages: Vec<Outage> = outages.into_iter().map(|o| o.outage).collect();
    let (day_passive, month_passive) = {
        let day_from = now - DAY;
        let start = passive.partition_point(|p| p.minute < day_from);
        (
            passive_points(&passive[start..], 60),
            passive_points(&passive, 3600),
        )
    };
    let passive = match passive.last().filter(|p| p.minute >= now - 600) {
        Some(p) => format!(
            "median {}, p95 {} over {} handshakes (minute of {})",
            ms(p.median_us.map(|v| v as f64 / 1e3)),
            ms(p.p95_us.map(|v| v as f64 / 1e3)),
            p.handshakes,
            fmt_local(p.minute, &tz)
        ),
        None if !state.config().passive_latency => "off (passive_latency = false)".into(),
        None => "no TCP handshake to the internet in the last 10 minutes".into(),
    };
    let live = state.internet_now();
    let last = live
        .as_ref()
        .and_then(|n| n.last_minute.clone())
        .or_else(|| rows.last().cloned());
    let open = live.as_ref().map_or_else(
        || outages.iter().find(|o| o.end_ns.is_none()).copied(),
        |n| n.outage,
    );
    let (state_word, class) = match (open, live.as_ref().and_then(|n| n.state)) {
        (Some(o), _) => (o.kind.label(), "bad"),
        (None, Some(NetState::Unknown)) => ("not measured", "muted"),
        (None, Some(_)) => ("up", "ok"),
        (None, None) if last.is_some() => ("up", "ok"),
        (None, None) => ("not measured", "muted"),
    };
    let day_from = now - DAY;
    let day_rows: Vec<MinuteRow> = rows
        .iter()
        .filter(|r| r.minute >= day_from)
        .cloned()
        .collect();
    let day_points: Vec<(i64, Quality)> = buckets(&day_rows, 60);
    let month_points = buckets(&rows, 3600);
    let busy = Quality::of(in_hours(&rows, BUSY_FROM, BUSY_TO, &tz));
    let busy = if busy.minutes == 0 {
        format!("Evenings {BUSY_FROM}–{BUSY_TO} h: no measurements yet.")
    } else {
        format!(
            "Evenings {BUSY_FROM}–{BUSY_TO} h (last 30 days): median {}, p95 {}, loss {}.",
            ms(busy.median_ms),
            ms(busy.p95_ms),
            pct(busy.loss_percent())
        )
    };
    let day_outages: Vec<Outage> = outages
        .iter()
        .filter(|o| o.end_ns.is_none_or(|e| e >= day_from * NS))
        .copied()
        .collect();
    let (card, _, month) = month_card(&state, None).await?;
    Ok(InternetPage {
        layout: Layout::new("Internet", "internet", Some(&auth)),
        enabled: state.config().internet_probe_interval_secs > 0,
        state: state_word,
        state_class: class,
        since: open.map(|o| fmt_local(o.start_ns.div_euclid(NS), &tz)),
        latency: last.as_ref().map_or_else(
            || "—".into(),
            |m| {
                format!(
                    "{} (p95 {})",
                    ms(us_ms(m.internet.median_us)),
                    ms(us_ms(m.internet.p95_us))
                )
            },
        ),
        loss: pct(last.as_ref().and_then(|m| m.internet.loss_percent())),
        gateway: last
            .as_ref()
            .map_or_else(|| "—".into(), |m| ms(us_ms(m.gateway.median_us))),
        dns: last.as_ref().map_or_else(
            || "—".into(),
            |m| {
                if m.dns_queries == 0 {
                    "not checked".into()
                } else {
                    format!(
                        "{} of {} lookups failed, median {}",
                        m.dns_failures,
                        m.dns_queries,
                        ms(us_ms(m.dns_median_us))
                    )
                }
            },
        ),
        passive,
        day_chart: latency_chart(
            "Internet latency, last 24 hours",
            day_from,
            now,
            &day_points,
            &day_passive,
            &day_outages,
            &ticks(day_from, now, 6 * 3600, &tz, false),
        ),
        month_chart: latency_chart(
            "Internet latency, last 30 days, per hour",
            from30,
            now,
            &month_points,
            &month_passive,
            &outages,
            &ticks(from30, now, 7 * DAY, &tz, true),
        ),
        outages: outage_rows(&outages, now * NS, &tz),
        busy,
        card: card_view(&card, month),
    })
}

/// GET /internet/report?month=YYYY-MM: the report card alone, laid out for printing.
pub async fn report(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Query(p): Query<MonthParam>,
) -> Result<ReportPage, AppError> {
    let tz = state.config().time_zone();
    let (card, outages, month) = month_card(&state, p.month.as_deref()).await?;
    Ok(ReportPage {
        layout: Layout::new("Internet report", "internet", Some(&auth)),
        card: card_view(&card, month),
        outages: outage_rows(&outages, state.now() * NS, &tz),
    })
}

/// GET /internet/report.csv?month=YYYY-MM: the card's figures, then one line per outage.
pub async fn report_csv(
    State(state): State<AppState>,
    Query(p): Query<MonthParam>,
) -> Result<impl IntoResponse, AppError> {
    let tz = state.config().time_zone();
    let now = state.now();
    let (card, outages, month) = month_card(&state, p.month.as_deref()).await?;
    let mut s = String::from("field,value\n");
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
    let _ = writeln!(s, "month,{month}");
    let _ = writeln!(s, "monitored_seconds,{:.0}", card.monitored_secs);
    let _ = writeln!(s, "uptime_percent,{}", opt(card.uptime_percent()));
    let _ = writeln!(s, "outages,{}", card.outages);
    let _ = writeln!(s, "internet_down_seconds,{:.0}", card.internet_down_secs);
    let _ = writeln!(s, "lan_down_seconds,{:.0}", card.lan_down_secs);
    let _ = writeln!(s, "dns_down_seconds,{:.0}", card.dns_down_secs);
    let _ = writeln!(s, "median_latency_ms,{}", opt(card.quality.median_ms));
    let _ = writeln!(s, "p95_latency_ms,{}", opt(card.quality.p95_ms));
    let _ = writeln!(s, "loss_percent,{}", opt(card.quality.loss_percent()));
    for h in &card.worst {
        let _ = writeln!(
            s,
            "worst_hour_{:02},median {} ms / loss {} %",
            h.hour,
            opt(h.quality.median_ms),
            opt(h.quality.loss_percent())
        );
    }
    s.push_str("\nkind,start,end,duration_seconds\n");
    for o in &outages {
        let end = o.end_ns.unwrap_or(now * NS);
        let _ = writeln!(
            s,
            "{},{},{},{}",
            o.kind.as_str(),
            fmt_local(o.start_ns.div_euclid(NS), &tz),
            o.end_ns
                .map_or_else(|| "ongoing".into(), |e| fmt_local(e.div_euclid(NS), &tz)),
            (end - o.start_ns).max(0) / NS
        );
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"lanmeter-internet-{month}.csv\""),
            ),
        ],
        s,
    ))
}

#[cfg(test)]
mod tests;
