//! Charts as server-rendered SVG: bar charts of download/upload over time, the hour-of-day ×
//! weekday heatmap and the presence timeline. No chart JavaScript; colours come from CSS classes
//! (so dark mode applies), sizes from the viewBox (so a 360 px phone scales them down).
//!
//! Only numbers and fixed labels go into the markup, never a device-supplied string, so the
//! output may be marked safe in templates. Bytes are decimal (GB = 10^9 bytes, as ISPs bill).

use std::fmt::Write;

const W: f64 = 480.0;
const H: f64 = 220.0;
/// Room for the y-axis labels on the left and the x-axis labels below.
const LEFT: f64 = 68.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

/// One bar: its x-axis label (shown only where `label` is set) and bytes down/up. `when` names
/// its bucket ("Thu 4 Dec", "14:05") for the tooltip that gives its value on hover or tap.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bar {
    pub label: Option<String>,
    pub down: u64,
    pub up: u64,
    pub when: Option<String>,
}

/// "Thu 4 Dec: 1.20 GB (1.10 GB down, 100 MB up)": a bar's value in words.
fn tip(when: &str, b: &Bar) -> String {
    use super::view::fmt_bytes;
    format!(
        "{when}: {} ({} down, {} up)",
        fmt_bytes(b.down + b.up),
        fmt_bytes(b.down),
        fmt_bytes(b.up)
    )
}

/// A "nice" axis maximum ≥ `v` (1, 2, 2.5 or 5 × 10^n) and the unit to label it in.
fn nice_max(v: u64) -> (f64, f64, &'static str) {
    let v = (v as f64).max(1.0);
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    let m = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|k| k * base)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * base);
    let (div, unit) = if m >= 1e9 {
        (1e9, "GB")
    } else if m >= 1e6 {
        (1e6, "MB")
    } else if m >= 1e3 {
        (1e3, "kB")
    } else {
        (1.0, "B")
    };
    (m, div, unit)
}

fn num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A coordinate with one decimal, as `{:.1}` writes it but through integer formatting: a bar
/// chart writes some 2,000 of them, and float formatting was most of its cost (issue 26).
struct D1(f64);

impl std::fmt::Display for D1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = (self.0 * 10.0).round() as i64;
        let sign = if t < 0 { "-" } else { "" };
        let t = t.unsigned_abs();
        write!(f, "{sign}{}.{}", t / 10, t % 10)
    }
}

/// Stacked bars (download below, upload above) with a labelled y axis in decimal bytes per
/// bucket; `per` names the bucket ("per 5 min", "per day"). `title` is the accessible name.
pub fn bars(title: &str, per: &str, bars: &[Bar]) -> String {
    linked_bars(title, per, bars, &[], false)
}

/// [`bars`] where bar `i` is also a link to `links[i]` (when given), for a pointer: each bar's
/// full-height target opens it. With `hx`, htmx fetches the link in place (the attributes
/// the template puts around the chart say where it goes); without JavaScript it is a plain
/// link. The links are out of the tab order and hidden from assistive technology (the chart
/// is one image to them): a page that links its bars offers the same choice in a form.
pub fn linked_bars(title: &str, per: &str, bars: &[Bar], links: &[String], hx: bool) -> String {
    let max = bars.iter().map(|b| b.down + b.up).max().unwrap_or(0);
    let (top, div, unit) = nice_max(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    let bw = (slot * 0.8).max(0.6);
    let mut s = String::with_capacity(200 + bars.len() * 120);
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{title}" preserveAspectRatio="xMidYMid meet">"#
    );
    // Grid lines and y labels at 0, ½ and the top.
    for frac in [0.0, 0.5, 1.0] {
        let y = TOP + plot_h * (1.0 - frac);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{}" y2="{}"/><text class="axis" x="{}" y="{}" text-anchor="end">{} {unit}</text>"#,
            W - RIGHT,
            D1(y),
            D1(y),
            LEFT - 6.0,
            D1(y + 5.0),
            num(top * frac / div)
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bw) / 2.0;
        let hd = plot_h * b.down as f64 / top;
        let hu = plot_h * b.up as f64 / top;
        let base = TOP + plot_h;
        // A full-height transparent target per bar carries the tooltip, so a short bar (or an
        // empty bucket) still tells its value on hover or tap.
        let link = links.get(i).filter(|l| !l.is_empty());
        if let Some(l) = link {
            let l = escape_label(l).replace('"', "&quot;");
            let _ = write!(s, r#"<a class="bar-link" href="{l}" tabindex="-1""#);
            if hx {
                // The fetched page without its fragment; the fragment is for a plain load.
                let get = l.split('#').next().unwrap_or(&l);
                let _ = write!(s, r#" hx-get="{get}""#);
            }
            s.push('>');
        }
        if let Some(w) = &b.when {
            let _ = write!(
                s,
                r#"<g class="bar"><title>{}</title><rect class="hit" x="{}" y="{TOP}" width="{}" height="{}"/>"#,
                escape_label(&tip(w, b)),
                D1(LEFT + slot * i as f64),
                D1(slot),
                D1(plot_h)
            );
        }
        if hd > 0.0 {
            let _ = write!(
                s,
                r#"<rect class="down" x="{}" y="{}" width="{}" height="{}"/>"#,
                D1(x),
                D1(base - hd),
                D1(bw),
                D1(hd)
            );
        }
        if hu > 0.0 {
            let _ = write!(
                s,
                r#"<rect class="up" x="{}" y="{}" width="{}" height="{}"/>"#,
                D1(x),
                D1(base - hd - hu),
                D1(bw),
                D1(hu)
            );
        }
        if b.when.is_some() {
            s.push_str("</g>");
        }
        if link.is_some() {
            s.push_str("</a>");
        }
        if let Some(l) = &b.label {
            let cx = LEFT + slot * (i as f64 + 0.5);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/><text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>"#,
                D1(cx),
                D1(cx),
                D1(base),
                D1(base + 5.0),
                D1(cx),
                D1(base + 24.0),
                escape_label(l)
            );
        }
    }
    let _ = write!(
        s,
        r#"<text class="axis unit" x="{LEFT}" y="{}">{unit} {per} · <tspan class="down-t">■ download</tspan> <tspan class="up-t">■ upload</tspan></text></svg>"#,
        H - 2.0
    );
    s
}

/// Labels are ours ("18:00", "Mon 3"), but escape anyway so the function stays safe to reuse.
fn escape_label(l: &str) -> String {
    l.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Hour-of-day × weekday heatmap of bytes: darker is busier; the busiest cell is named in the
/// accessible label.
pub fn heatmap(title: &str, cells: &[[u64; 24]; 7]) -> String {
    let (cw, ch, left, top) = (24.0, 26.0, 48.0, 8.0);
    let w = left + cw * 24.0 + 4.0;
    let h = top + ch * 7.0 + 28.0;
    let max = cells.iter().flatten().copied().max().unwrap_or(0).max(1);
    let mut s = String::with_capacity(12_000);
    let _ = write!(
        s,
        r#"<svg class="chart heat" viewBox="0 0 {w} {h}" role="img" aria-label="{title}">"#
    );
    for (d, row) in cells.iter().enumerate() {
        let y = top + ch * d as f64;
        let _ = write!(
            s,
            r#"<text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + ch * 0.7,
            WEEKDAYS[d]
        );
        for (hr, &v) in row.iter().enumerate() {
            // A square root scale: a few busy evening hours should not wash out the rest.
            let level = ((v as f64 / max as f64).sqrt() * 10.0).round() as u32;
            let _ = write!(
                s,
                r#"<rect class="h{level}" x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" rx="2"><title>{} {hr:02}:00 · {}</title></rect>"#,
                left + cw * hr as f64,
                cw - 2.0,
                ch - 2.0,
                WEEKDAYS[d],
                super::view::fmt_bytes(v)
            );
        }
    }
    for hr in [0usize, 6, 12, 18, 23] {
        let _ = write!(
            s,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{hr:02}h</text>"#,
            left + cw * hr as f64 + cw / 2.0,
            top + ch * 7.0 + 20.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Online intervals over `[from, to)` (Unix seconds) as a strip, with `ticks` as (time, label).
pub fn timeline(
    title: &str,
    from: i64,
    to: i64,
    spans: &[(i64, i64)],
    ticks: &[(i64, String)],
) -> String {
    let (left, right, y, bh) = (8.0, 8.0, 8.0, 28.0);
    let h = y + bh + 30.0;
    let span = (to - from).max(1) as f64;
    let pw = W - left - right;
    let x = |t: i64| left + pw * ((t.clamp(from, to) - from) as f64 / span);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" aria-label="{title}"><rect class="off" x="{left}" y="{y}" width="{pw}" height="{bh}" rx="3"/>"#
    );
    for &(a, b) in spans {
        if b < from || a >= to {
            continue;
        }
        let (x0, x1) = (x(a), x(b.max(a + 60)));
        let _ = write!(
            s,
            r#"<rect class="on" x="{x0:.1}" y="{y}" width="{:.1}" height="{bh}"/>"#,
            (x1 - x0).max(1.5)
        );
    }
    for (t, l) in ticks {
        let tx = x(*t);
        // A label that would run off the right edge is left out (its grid line stays).
        if tx + 36.0 > W {
            let _ = write!(
                s,
                r#"<line class="grid" x1="{tx:.1}" x2="{tx:.1}" y1="{y}" y2="{:.1}"/>"#,
                y + bh + 4.0
            );
            continue;
        }
        let _ = write!(
            s,
            r#"<line class="grid" x1="{tx:.1}" x2="{tx:.1}" y1="{y}" y2="{:.1}"/><text class="axis" x="{:.1}" y="{:.1}">{}</text>"#,
            y + bh + 4.0,
            tx + 3.0,
            y + bh + 22.0,
            escape_label(l)
        );
    }
    s.push_str("</svg>");
    s
}

/// A thin horizontal share bar (0..=100 %), SVG because the CSP forbids inline styles.
pub fn share(pct: f64) -> String {
    let p = pct.clamp(0.0, 100.0);
    format!(
        r#"<svg class="share" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true"><rect class="track" width="100" height="6" rx="3"/><rect class="fill" width="{p:.1}" height="6" rx="3"/></svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_have_one_decimal_as_float_formatting_gives_them() {
        for v in [0.0, 0.04, 12.34, 62.0, 199.96, 468.1, -0.26] {
            assert_eq!(D1(v).to_string(), format!("{v:.1}"), "{v}");
        }
        // Within a tenth of the value everywhere (ties may round the other way).
        for i in 0..5000 {
            let v = f64::from(i) * 0.0937;
            let got: f64 = D1(v).to_string().parse().unwrap();
            assert!((got - v).abs() <= 0.05 + 1e-9, "{v} {got}");
        }
    }

    #[test]
    fn axis_maximum_is_round_and_in_decimal_units() {
        assert_eq!(nice_max(3_400_000_000), (5e9, 1e9, "GB"));
        assert_eq!(nice_max(180_000_000), (2e8, 1e6, "MB"));
        assert_eq!(nice_max(0).2, "B");
    }

    #[test]
    fn bars_have_axes_units_and_no_foreign_markup() {
        let svg = bars(
            "Last 24 hours",
            "per 5 min",
            &[
                Bar {
                    label: Some("<b>".into()),
                    down: 900_000_000,
                    up: 100_000_000,
                    when: None,
                },
                Bar::default(),
            ],
        );
        assert!(svg.contains(">1 GB<"), "{svg}");
        assert!(svg.contains("GB per 5 min"));
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        // With `when`, each bar tells its value in a tooltip.
        let svg = bars(
            "x",
            "per day",
            &[Bar {
                down: 1_100_000_000,
                up: 100_000_000,
                when: Some("Thu 4 Dec".into()),
                ..Bar::default()
            }],
        );
        assert!(
            svg.contains("<title>Thu 4 Dec: 1.20 GB (1.10 GB down, 100 MB up)</title>"),
            "{svg}"
        );
        let heat = heatmap("Busy hours", &[[1; 24]; 7]);
        assert_eq!(heat.matches("class=\"h10\"").count(), 168);
        let tl = timeline("Online", 0, 100, &[(10, 20)], &[(50, "x".into())]);
        assert!(tl.contains("class=\"on\""));
    }
}
