//! GET /wifi: the Wi-Fi survey of the last 24 hours — the access points heard (sortable by
//! signal, channel or last seen, "our network" marked by the configured `wifi_ssid`), a channel
//! chart per band (APs per channel weighted by signal, with the span each AP's channel width
//! covers), the signal history of our own access points, and the channel recommendation with
//! the candidates it weighed. Reads only.
//!
//! SSIDs are arbitrary bytes from the air: they reach the template only as [`Ssid::display`]
//! (control and invisible characters spelled out) and askama escapes that as HTML. The SVG here
//! carries only numbers and fixed labels, never an SSID, so it may be marked safe.

use super::AppState;
use super::error::AppError;
use super::session::{Auth, Layout};
use super::view::{fmt_ago, fmt_local};
use crate::capture::ieee80211::{Band, Ssid};
use crate::model::MacAddr;
use crate::survey::{Ap, Survey, is_ours, recommend};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Query, State};
use serde::Deserialize;
use std::fmt::Write;

/// The window the page surveys.
const WINDOW_SECS: i64 = 24 * 3600;
/// Our access points charted at most (one per band is usual; a mesh may have a few).
const MAX_OUR_LINES: usize = 4;
/// A gap longer than this between two minutes of signal breaks the line.
const GAP_SECS: i64 = 10 * 60;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Params {
    /// "signal" (default), "channel", "seen".
    #[serde(default)]
    pub sort: String,
}

pub struct ApRow {
    /// The SSID's safe display form ("" for a hidden network without a revealed name).
    pub name: String,
    pub hidden: bool,
    pub ours: bool,
    pub bssid: String,
    pub band: String,
    pub channel: String,
    pub width: String,
    pub security: &'static str,
    pub signal: String,
    pub last_seen: String,
    pub last_seen_at: String,
}

pub struct CandidateRow {
    pub channel: u8,
    pub width: u16,
    pub span: String,
    pub networks: u32,
    pub strong: u32,
    pub strongest: String,
    pub score: u32,
    pub current: bool,
    pub best: bool,
}

pub struct Advice {
    pub band: &'static str,
    pub sentence: String,
    pub candidates: Vec<CandidateRow>,
}

pub struct OurLine {
    pub class: String,
    pub label: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/wifi.html")]
pub struct WifiPage {
    pub layout: Layout,
    pub interface: Option<String>,
    pub our_ssid: Option<String>,
    /// Nothing at all heard in the window.
    pub empty: bool,
    pub sort: String,
    pub rows: Vec<ApRow>,
    pub charts: Vec<(&'static str, String)>,
    pub history: Option<String>,
    pub lines: Vec<OurLine>,
    pub advice: Vec<Advice>,
    pub clients: usize,
}

impl WifiPage {
    pub fn sort_link(&self, by: &str) -> String {
        format!("/wifi?sort={by}")
    }
}

fn mean(a: &Ap) -> Option<f64> {
    a.signal().mean_dbm()
}

/// Orders the table: strongest first, by band and channel, or most recently heard first; ties
/// by BSSID so the order is stable.
pub fn sort_aps(aps: &mut [Ap], by: &str) {
    match by {
        "channel" => aps.sort_by(|a, b| {
            let key = |x: &Ap| x.channel.map(|c| (c.band, c.number));
            // Channel-less APs (bare captures) go last.
            (key(a).is_none(), key(a))
                .cmp(&(key(b).is_none(), key(b)))
                .then(a.bssid.cmp(&b.bssid))
        }),
        "seen" => aps.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.bssid.cmp(&b.bssid))),
        _ => aps.sort_by(|a, b| {
            let s = |x: &Ap| mean(x).unwrap_or(f64::NEG_INFINITY);
            s(b).total_cmp(&s(a)).then(a.bssid.cmp(&b.bssid))
        }),
    }
}

fn ssid_name(s: Option<&Ssid>) -> String {
    match s {
        Some(s) if !s.is_hidden() => s.display(),
        _ => String::new(),
    }
}

/// The weight recommend() gives a network: `mean dBm + 100`, 1..=100 (10 when unknown).
fn weight(m: Option<f64>) -> f64 {
    m.map_or(10.0, |m| (m + 100.0).round().clamp(1.0, 100.0))
}

/// The frequency range drawn for a band and its labelled channels.
fn band_axis(band: Band) -> (f64, f64, &'static [u8]) {
    match band {
        Band::G2_4 => (2400.0, 2496.0, &[1, 6, 11, 14]),
        Band::G5 => (5160.0, 5900.0, &[36, 52, 100, 132, 149, 165]),
        Band::G6 => (5925.0, 7125.0, &[1, 93, 181]),
    }
}

/// APs per channel in one band: a bar per primary channel as high as the summed weight of the
/// APs on it, and each AP's occupied span (20/40/80/160 MHz) as an outlined band at its own
/// weight, ours drawn in their own class.
pub fn channel_chart(band: Band, aps: &[Ap], our_ssid: Option<&[u8]>) -> String {
    let (w, h, left, right, top, bottom) = (480.0, 200.0, 40.0, 8.0, 10.0, 34.0);
    let (f0, f1, labels) = band_axis(band);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let x = |mhz: f64| left + pw * ((mhz.clamp(f0, f1) - f0) / (f1 - f0));
    let in_band: Vec<&Ap> = aps
        .iter()
        .filter(|a| a.channel.is_some_and(|c| c.band == band))
        .collect();
    let mut sums: std::collections::BTreeMap<u8, (f64, u32)> = Default::default();
    for a in &in_band {
        if let Some(c) = a.channel {
            let e = sums.entry(c.number).or_default();
            e.0 += weight(mean(a));
            e.1 += 1;
        }
    }
    let top_w = sums.values().map(|s| s.0).fold(100.0, f64::max);
    let ymax = (top_w / 50.0).ceil() * 50.0;
    let y = |v: f64| top + ph * (1.0 - v / ymax);
    let mut s = String::with_capacity(2000 + in_band.len() * 200);
    let _ = write!(
        s,
        r#"<svg class="chart wifi" viewBox="0 0 {w} {h}" role="img" aria-label="Access points per channel, {}, weighted by signal">"#,
        band.as_str()
    );
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
    // Summed weight per primary channel, 5 MHz wide (one channel step).
    for (&number, &(sum, n)) in &sums {
        let Some(f) = band.freq_of(number) else {
            continue;
        };
        let (x0, x1) = (x(f64::from(f) - 2.5), x(f64::from(f) + 2.5));
        let _ = write!(
            s,
            r#"<rect class="load" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>channel {number}: {n} {} · weight {sum:.0}</title></rect>"#,
            y(sum),
            (x1 - x0).max(2.0),
            top + ph - y(sum),
            if n == 1 { "network" } else { "networks" }
        );
    }
    // Each AP's span at its own weight; ours last so they are on top.
    let mut spans: Vec<&&Ap> = in_band.iter().collect();
    spans.sort_by_key(|a| is_ours(a, our_ssid));
    for a in spans {
        let Some(c) = a.channel else { continue };
        let (lo, hi) = c.span();
        let wgt = weight(mean(a));
        let (x0, x1) = (x(f64::from(lo)), x(f64::from(hi)));
        let class = if is_ours(a, our_ssid) {
            "span ours"
        } else {
            "span"
        };
        let _ = write!(
            s,
            r#"<rect class="{class}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill-opacity="0.12" rx="3"><title>channel {} · {} MHz · {}</title></rect>"#,
            y(wgt),
            (x1 - x0).max(2.0),
            top + ph - y(wgt),
            c.number,
            c.width_mhz,
            mean(a).map_or_else(|| "signal unknown".to_string(), |m| format!("{m:.0} dBm"))
        );
    }
    for &ch in labels {
        let Some(f) = band.freq_of(ch) else { continue };
        let cx = x(f64::from(f));
        let _ = write!(
            s,
            r#"<line class="grid" x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}"/><text class="axis" x="{cx:.1}" y="{:.1}" text-anchor="middle">{ch}</text>"#,
            top + ph,
            top + ph + 4.0,
            top + ph + 18.0
        );
    }
    let _ = write!(
        s,
        r#"<text class="axis unit" x="{left}" y="{}">channel · height: signal weight (dBm + 100)</text></svg>"#,
        h - 2.0
    );
    s
}

/// Mean signal per minute of our access points over `[from, to)` (seconds) as lines on a
/// −100..−20 dBm axis; a gap of more than [`GAP_SECS`] breaks a line.
pub fn signal_chart(
    from: i64,
    to: i64,
    series: &[Vec<(i64, f64)>],
    ticks: &[(i64, String)],
) -> String {
    // Full page width: a wider viewBox keeps its labels the size of the half-width charts'.
    let (w, h, left, right, top, bottom) = (960.0, 220.0, 44.0, 8.0, 10.0, 30.0);
    let (lo, hi) = (-100.0, -20.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let span = (to - from).max(1) as f64;
    let x = |t: i64| left + pw * ((t.clamp(from, to) - from) as f64 / span);
    let y = |v: f64| top + ph * (1.0 - (v.clamp(lo, hi) - lo) / (hi - lo));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart wifi" viewBox="0 0 {w} {h}" role="img" aria-label="Signal of our access points">"#
    );
    for v in [-100.0, -80.0, -60.0, -40.0, -20.0] {
        let yy = y(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{v:.0}</text>"#,
            w - right,
            left - 4.0,
            yy + 4.0
        );
    }
    for (t, l) in ticks {
        let tx = x(*t);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{tx:.1}" x2="{tx:.1}" y1="{:.1}" y2="{:.1}"/><text class="axis" x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            top + ph,
            top + ph + 4.0,
            top + ph + 18.0,
            l.replace('&', "&amp;").replace('<', "&lt;")
        );
    }
    for (i, pts) in series.iter().enumerate() {
        let mut seg: Vec<(i64, f64)> = Vec::new();
        let flush = |seg: &mut Vec<(i64, f64)>, s: &mut String| {
            match seg.as_slice() {
                [] => {}
                [(t, v)] => {
                    let _ = write!(
                        s,
                        r#"<circle class="sig s{i}" cx="{:.1}" cy="{:.1}" r="2"/>"#,
                        x(*t),
                        y(*v)
                    );
                }
                _ => {
                    let _ = write!(s, r#"<polyline class="sig s{i}" fill="none" points=""#);
                    for (t, v) in seg.iter() {
                        let _ = write!(s, "{:.1},{:.1} ", x(*t), y(*v));
                    }
                    s.push_str(r#""/>"#);
                }
            }
            seg.clear();
        };
        for &(t, v) in pts {
            if seg.last().is_some_and(|&(lt, _)| t - lt > GAP_SECS) {
                flush(&mut seg, &mut s);
            }
            seg.push((t, v));
        }
        flush(&mut seg, &mut s);
    }
    let _ = write!(
        s,
        r#"<text class="axis unit" x="{left}" y="{}">dBm (higher is stronger)</text></svg>"#,
        h - 2.0
    );
    s
}

fn hour_ticks(from: i64, to: i64, tz: &jiff::tz::TimeZone) -> Vec<(i64, String)> {
    let step = 6 * 3600;
    let mut t = (from / step + 1) * step;
    let mut out = Vec::new();
    while t < to {
        let label = fmt_local(t, tz);
        // "2026-03-04 18:00" → "18:00".
        out.push((t, label.rsplit(' ').next().unwrap_or(&label).to_string()));
        t += step;
    }
    out
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Query(params): Query<Params>,
) -> Result<WifiPage, AppError> {
    let now = state.now();
    let from = now - WINDOW_SECS;
    let tz = state.config().time_zone();
    let our_ssid = state.config().wifi_ssid.clone();
    let ours_bytes = our_ssid.as_ref().map(|s| s.as_bytes().to_vec());
    let ours = ours_bytes.as_deref();
    let survey: Survey = state
        .db(move |s| {
            crate::store::survey::survey(
                s,
                Some(from * 1_000_000_000),
                Some((now + 1) * 1_000_000_000),
            )
        })
        .await?;
    let sort = match params.sort.as_str() {
        "channel" | "seen" => params.sort.clone(),
        _ => "signal".to_string(),
    };
    let rec = recommend(&survey, ours);

    // Our access points, strongest first, for the history chart.
    let mut our_aps: Vec<&Ap> = survey.aps.iter().filter(|a| is_ours(a, ours)).collect();
    our_aps.truncate(MAX_OUR_LINES);
    let bssids: Vec<MacAddr> = our_aps.iter().map(|a| a.bssid).collect();
    let histories = state
        .db(move |s| {
            bssids
                .iter()
                .map(|&b| {
                    crate::store::survey::ap_signal_history(
                        s,
                        b,
                        from * 1_000_000_000,
                        (now + 1) * 1_000_000_000,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let series: Vec<Vec<(i64, f64)>> = histories
        .iter()
        .map(|h| {
            h.iter()
                .filter_map(|(m, st)| Some((*m, st.mean_dbm()?)))
                .collect()
        })
        .collect();
    let lines: Vec<OurLine> = our_aps
        .iter()
        .enumerate()
        .map(|(i, a)| OurLine {
            class: format!("key s{i}"),
            label: format!(
                "{} · {}",
                a.channel.map_or_else(
                    || "channel unknown".to_string(),
                    |c| format!("{} channel {}", c.band.as_str(), c.number)
                ),
                a.bssid
            ),
        })
        .collect();
    let history = (!series.iter().all(Vec::is_empty))
        .then(|| signal_chart(from, now, &series, &hour_ticks(from, now, &tz)));

    let charts = [Band::G2_4, Band::G5]
        .into_iter()
        .filter(|b| {
            survey
                .aps
                .iter()
                .any(|a| a.channel.is_some_and(|c| c.band == *b))
        })
        .map(|b| (b.as_str(), channel_chart(b, &survey.aps, ours)))
        .collect();

    let advice = rec
        .bands
        .iter()
        .map(|b| Advice {
            band: b.band.as_str(),
            sentence: capitalize(&b.summary),
            candidates: b
                .candidates
                .iter()
                .map(|c| CandidateRow {
                    channel: c.channel,
                    width: c.width_mhz,
                    span: format!("{}–{} MHz", c.span_mhz.0, c.span_mhz.1),
                    networks: c.networks,
                    strong: c.strong_networks,
                    strongest: c
                        .strongest_dbm
                        .map_or_else(|| "—".to_string(), |d| format!("{d} dBm")),
                    score: c.score,
                    current: c.current,
                    best: c.channel == b.to_channel && c.width_mhz == b.width_mhz,
                })
                .collect(),
        })
        .collect();

    let mut aps = survey.aps.clone();
    sort_aps(&mut aps, &sort);
    let rows = aps
        .iter()
        .map(|a| {
            let last = a.last_seen.div_euclid(1_000_000_000);
            ApRow {
                name: ssid_name(a.ssid.as_ref()),
                hidden: a.hidden,
                ours: is_ours(a, ours),
                bssid: a.bssid.to_string(),
                band: a
                    .channel
                    .map_or_else(String::new, |c| c.band.as_str().to_string()),
                channel: a
                    .channel
                    .map_or_else(|| "?".into(), |c| c.number.to_string()),
                width: a
                    .channel
                    .map_or_else(String::new, |c| format!("{} MHz", c.width_mhz)),
                security: a.security.as_str(),
                signal: mean(a).map_or_else(|| "—".into(), |m| format!("{m:.0} dBm")),
                last_seen: fmt_ago(last, now),
                last_seen_at: fmt_local(last, &tz),
            }
        })
        .collect();

    Ok(WifiPage {
        layout: Layout::new("Wi-Fi", "wifi", Some(&auth)),
        interface: state.config().wifi_interface.clone(),
        our_ssid: our_ssid.map(|s| Ssid::new(s.as_bytes()).map_or(s, |x| x.display())),
        empty: survey.aps.is_empty() && survey.clients.is_empty() && survey.channels.is_empty(),
        sort,
        rows,
        charts,
        history,
        lines,
        advice,
        clients: survey.clients.len(),
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
