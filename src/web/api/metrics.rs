//! `/metrics`: the Prometheus text exposition format (version 0.0.4), written by hand: a few
//! dozen lines of format rules do not need a metrics crate and its global registry.
//!
//! Names follow Prometheus conventions: `lanmeter_` prefix, base units in the name (`_bytes`,
//! `_seconds`), `_total` on counters. Per-device series carry `mac`, `name` and `direction`
//! labels and are bounded by `max_devices` (the most active devices first; the number left out
//! is itself a metric), so a MAC flood cannot blow up a Prometheus server. Device counters are
//! the stored history (updated every flush), summed over every level, so they only grow until
//! retention deletes whole months.

use super::error::ApiError;
use crate::model::Counts;
use crate::store::query::OTHER;
use crate::web::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (backslash, double quote, newline).
pub fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A metric family being written: HELP and TYPE once, then samples. Every sample carries the
/// `site` label (the second field) last, so one Prometheus can scrape several homes.
struct Out(String, String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        self.0.push('{');
        for (k, v) in labels {
            let _ = write!(self.0, "{k}=\"{}\",", label(v));
        }
        let _ = writeln!(self.0, "site=\"{}\"}} {value}", label(&self.1));
    }
}

/// Prometheus float formatting: integers plain, `+Inf` for infinity.
fn float(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

/// What the database contributes to one scrape.
struct Stored {
    schema_version: i64,
    /// (mac, name, counts), most bytes first, at most `max_devices`.
    devices: Vec<(String, String, Counts)>,
    omitted: usize,
    household: Counts,
    device_count: usize,
    online: usize,
    alerts: crate::store::alerts::AlertCounts,
}

fn read_stored(
    s: &crate::store::Store,
    tz: &jiff::tz::TimeZone,
    max: usize,
    now_ns: i64,
    window_ns: i64,
) -> Result<Stored, crate::store::StoreError> {
    let schema_version = s.schema_version()?;
    let alerts = s.alert_counts()?;
    let records = s.list_devices()?;
    let names: HashMap<_, _> = records
        .iter()
        .map(|d| (d.mac, d.display_name().unwrap_or("").to_string()))
        .collect();
    let mut by_device = Vec::new();
    if let Some((first, last)) = s.data_extent()? {
        let from = jiff::Timestamp::from_second(first);
        let to = jiff::Timestamp::from_second(last);
        if let (Ok(from), Ok(to)) = (from, to)
            && from < to
        {
            by_device = match s.usage_by_device(tz, from, to) {
                Ok((v, _)) => v,
                Err(crate::store::query::QueryError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot sum the stored history");
                    Vec::new()
                }
            };
        }
    }
    let mut household = Counts::default();
    for d in by_device.iter().filter(|d| !d.is_gateway) {
        household.add(&d.counts);
    }
    let mut devices: Vec<_> = by_device.into_iter().filter(|d| d.mac != OTHER).collect();
    devices.sort_by(|a, b| {
        b.total_bytes()
            .cmp(&a.total_bytes())
            .then(a.mac.cmp(&b.mac))
    });
    let omitted = devices.len().saturating_sub(max);
    devices.truncate(max);
    Ok(Stored {
        schema_version,
        devices: devices
            .into_iter()
            .map(|d| {
                let name = names.get(&d.mac).cloned().unwrap_or_default();
                (d.mac.to_string(), name, d.counts)
            })
            .collect(),
        omitted,
        household,
        alerts,
        device_count: records.len(),
        online: records
            .iter()
            .filter(|d| d.last_seen_ns.saturating_add(window_ns) >= now_ns)
            .count(),
    })
}

/// GET /metrics
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let tz = state.config().time_zone();
    let max = state.config().max_devices;
    let now_ns = state.now().saturating_mul(1_000_000_000);
    let window_ns = i64::try_from(state.config().presence_window_secs)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000);
    let stored = state
        .db(move |s| read_stored(s, &tz, max, now_ns, window_ns))
        .await?;
    let mut o = Out(
        String::with_capacity(4096 + stored.devices.len() * 400),
        state.config().site_name(),
    );

    o.family(
        "lanmeter_build_info",
        "gauge",
        "The running lanmeter's version and database schema (always 1).",
    );
    let schema = stored.schema_version.to_string();
    o.sample(
        "lanmeter_build_info",
        &[("version", crate::VERSION), ("schema_version", &schema)],
        1,
    );
    o.family(
        "lanmeter_web_pages_reused_total",
        "counter",
        "Page views answered with the same session's rendering of that page from the last second instead of rendering it again (see web::respond).",
    );
    o.sample(
        "lanmeter_web_pages_reused_total",
        &[],
        state.caches().responses.hits(),
    );

    o.family(
        "lanmeter_device_bytes_total",
        "counter",
        "Bytes (wire length) a device sent or received, from the stored history (updated every flush).",
    );
    for (mac, name, c) in &stored.devices {
        for (dir, v) in [("sent", c.bytes_sent), ("received", c.bytes_received)] {
            o.sample(
                "lanmeter_device_bytes_total",
                &[("mac", mac), ("name", name), ("direction", dir)],
                v,
            );
        }
    }
    o.family(
        "lanmeter_device_frames_total",
        "counter",
        "Frames a device sent or received, from the stored history (updated every flush).",
    );
    for (mac, name, c) in &stored.devices {
        for (dir, v) in [("sent", c.frames_sent), ("received", c.frames_received)] {
            o.sample(
                "lanmeter_device_frames_total",
                &[("mac", mac), ("name", name), ("direction", dir)],
                v,
            );
        }
    }
    o.family(
        "lanmeter_device_internet_bytes_total",
        "counter",
        "Bytes a device exchanged with the internet (through the gateway), by direction.",
    );
    for (mac, name, c) in &stored.devices {
        for (dir, v) in [
            ("upload", c.internet_upload_bytes),
            ("download", c.internet_download_bytes),
        ] {
            o.sample(
                "lanmeter_device_internet_bytes_total",
                &[("mac", mac), ("name", name), ("direction", dir)],
                v,
            );
        }
    }
    o.family(
        "lanmeter_device_series_omitted",
        "gauge",
        "Devices left out of the per-device series (more than max_devices have history).",
    );
    o.sample("lanmeter_device_series_omitted", &[], stored.omitted);

    let h = &stored.household;
    o.family(
        "lanmeter_household_bytes_total",
        "counter",
        "Bytes sent or received by the household (every device but the gateway, unattributed traffic included).",
    );
    o.sample(
        "lanmeter_household_bytes_total",
        &[("direction", "sent")],
        h.bytes_sent,
    );
    o.sample(
        "lanmeter_household_bytes_total",
        &[("direction", "received")],
        h.bytes_received,
    );
    o.family(
        "lanmeter_household_internet_bytes_total",
        "counter",
        "Bytes the household exchanged with the internet, by direction.",
    );
    o.sample(
        "lanmeter_household_internet_bytes_total",
        &[("direction", "upload")],
        h.internet_upload_bytes,
    );
    o.sample(
        "lanmeter_household_internet_bytes_total",
        &[("direction", "download")],
        h.internet_download_bytes,
    );
    o.family("lanmeter_devices", "gauge", "Devices in the database.");
    o.sample("lanmeter_devices", &[], stored.device_count);
    o.family(
        "lanmeter_devices_online",
        "gauge",
        "Devices heard within the presence window.",
    );
    o.sample("lanmeter_devices_online", &[], stored.online);

    let cap = super::system::capture_report(&state);
    o.family(
        "lanmeter_capture_up",
        "gauge",
        "1 while this process captures packets (0 while it waits for its interface).",
    );
    o.sample(
        "lanmeter_capture_up",
        &[],
        u8::from(cap.running && !cap.waiting),
    );
    o.family(
        "lanmeter_capture_packets_total",
        "counter",
        "Packets the capture thread read since start.",
    );
    o.sample("lanmeter_capture_packets_total", &[], cap.frames_seen);
    o.family(
        "lanmeter_capture_bytes_total",
        "counter",
        "Wire bytes of the packets the capture thread read since start.",
    );
    o.sample("lanmeter_capture_bytes_total", &[], cap.wire_bytes_seen);
    o.family(
        "lanmeter_capture_undecodable_packets_total",
        "counter",
        "Packets without a readable Ethernet header (counted, attributed to nobody).",
    );
    o.sample(
        "lanmeter_capture_undecodable_packets_total",
        &[],
        cap.frames_undecodable,
    );
    o.family(
        "lanmeter_capture_kernel_received_packets_total",
        "counter",
        "Packets the kernel passed to the capture socket (pcap_stats ps_recv).",
    );
    o.sample(
        "lanmeter_capture_kernel_received_packets_total",
        &[],
        cap.kernel_received,
    );
    o.family(
        "lanmeter_capture_dropped_packets_total",
        "counter",
        "Packets lost before lanmeter saw them: where=kernel (capture buffer full), where=interface (driver).",
    );
    o.sample(
        "lanmeter_capture_dropped_packets_total",
        &[("where", "kernel")],
        cap.kernel_dropped,
    );
    o.sample(
        "lanmeter_capture_dropped_packets_total",
        &[("where", "interface")],
        cap.interface_dropped,
    );
    o.family(
        "lanmeter_capture_read_errors_total",
        "counter",
        "Errors libpcap returned while reading.",
    );
    o.sample("lanmeter_capture_read_errors_total", &[], cap.read_errors);
    o.family(
        "lanmeter_capture_link_gaps_total",
        "counter",
        "Times the capture interface went down, lost its carrier or vanished (traffic meanwhile is not counted).",
    );
    o.sample("lanmeter_capture_link_gaps_total", &[], cap.link_gaps);
    o.family(
        "lanmeter_capture_link_gap_seconds_total",
        "counter",
        "Total length of the capture gaps that have ended.",
    );
    o.sample(
        "lanmeter_capture_link_gap_seconds_total",
        &[],
        cap.link_gap_seconds,
    );
    o.family(
        "lanmeter_capture_link_up",
        "gauge",
        "1 while the capture interface is up with a carrier.",
    );
    o.sample(
        "lanmeter_capture_link_up",
        &[],
        u8::from(cap.running && cap.link_down_since.is_none()),
    );

    let t = state.telemetry();
    let hist = t.flush_duration();
    o.family(
        "lanmeter_flush_duration_seconds",
        "histogram",
        "Time one flush of the counters into SQLite took.",
    );
    for (le, n) in &hist.cumulative {
        o.sample(
            "lanmeter_flush_duration_seconds_bucket",
            &[("le", &float(*le))],
            n,
        );
    }
    o.sample(
        "lanmeter_flush_duration_seconds_bucket",
        &[("le", "+Inf")],
        hist.count,
    );
    o.sample(
        "lanmeter_flush_duration_seconds_sum",
        &[],
        float(hist.sum_seconds),
    );
    o.sample("lanmeter_flush_duration_seconds_count", &[], hist.count);
    let health = t.health().snapshot();
    o.family(
        "lanmeter_flush_consecutive_failures",
        "gauge",
        "Flushes that failed in a row (0 while the database takes writes).",
    );
    o.sample(
        "lanmeter_flush_consecutive_failures",
        &[],
        health.consecutive_failures,
    );
    o.family(
        "lanmeter_flush_pending_rows",
        "gauge",
        "(device, minute) rows waiting in memory to be written.",
    );
    o.sample("lanmeter_flush_pending_rows", &[], health.pending_rows);
    o.family(
        "lanmeter_database_size_bytes",
        "gauge",
        "Size of the SQLite database file plus its write-ahead log.",
    );
    o.sample(
        "lanmeter_database_size_bytes",
        &[],
        super::system::database_bytes(&state),
    );
    let a = &stored.alerts;
    o.family(
        "lanmeter_outbox_messages",
        "gauge",
        "Alert messages in the outbox not delivered: state=pending (waiting or retrying), state=failed (expired undelivered).",
    );
    o.sample(
        "lanmeter_outbox_messages",
        &[("state", "pending")],
        a.outbox_pending,
    );
    o.sample(
        "lanmeter_outbox_messages",
        &[("state", "failed")],
        a.outbox_failed,
    );
    o.family(
        "lanmeter_alerts",
        "gauge",
        "Alerts in the database by state (open, acknowledged, resolved) and severity.",
    );
    // Every state and known severity, zeros included, so a series does not vanish when its
    // last alert changes state; severities the store holds beyond these are added.
    let mut series: Vec<(&str, &str, u64)> = Vec::new();
    for st in ["open", "acknowledged", "resolved"] {
        for sev in ["info", "warning", "critical"] {
            series.push((st, sev, 0));
        }
    }
    for (st, sev, n) in &a.alerts {
        match series
            .iter_mut()
            .find(|(s2, v2, _)| *s2 == *st && *v2 == sev.as_str())
        {
            Some(slot) => slot.2 = *n,
            None => series.push((st, sev.as_str(), *n)),
        }
    }
    for (st, sev, n) in series {
        o.sample("lanmeter_alerts", &[("state", st), ("severity", sev)], n);
    }

    internet(&mut o, &state, now_ns).await?;
    passive(&mut o, &state).await?;
    router_metrics(&mut o, &state).await?;

    let mut r = o.0.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(r)
}

/// The internet probes (issue 27): the state and the last full minute from the probe thread
/// (absent without one), outages from the database.
async fn internet(o: &mut Out, state: &AppState, now_ns: i64) -> Result<(), ApiError> {
    use crate::internet::State as S;
    let live = state.internet_now();
    let last = match live.as_ref().and_then(|n| n.last_minute.clone()) {
        Some(m) => Some(m),
        None => state.db(|s| s.internet_last_minute()).await?,
    };
    let outages = state.db(|s| s.internet_outages(0, i64::MAX)).await?;
    if let Some(n) = live.as_ref().filter(|n| n.state.is_some()) {
        o.family(
            "lanmeter_internet_state",
            "gauge",
            "1 for the connection's state in the last probe round (up, internet_down, lan_down, dns_down, unknown).",
        );
        let current = n.outage.map(|o| o.kind).or(n.state);
        for st in [S::Up, S::InternetDown, S::LanDown, S::DnsDown, S::Unknown] {
            let v = u8::from(current == Some(st));
            o.sample("lanmeter_internet_state", &[("state", st.as_str())], v);
        }
        o.family(
            "lanmeter_internet_echo_requests_total",
            "counter",
            "ICMP echo requests the probes sent, and the replies they got, since start.",
        );
        o.sample(
            "lanmeter_internet_echo_requests_total",
            &[("result", "sent")],
            n.sent,
        );
        o.sample(
            "lanmeter_internet_echo_requests_total",
            &[("result", "answered")],
            n.received,
        );
    }
    if let Some(m) = last {
        o.family(
            "lanmeter_internet_latency_seconds",
            "gauge",
            "Round-trip time in the last full minute by target group (internet, gateway) and quantile.",
        );
        for (group, g) in [("internet", m.internet), ("gateway", m.gateway)] {
            for (q, v) in [("0.5", g.median_us), ("0.95", g.p95_us)] {
                if let Some(us) = v {
                    o.sample(
                        "lanmeter_internet_latency_seconds",
                        &[("target", group), ("quantile", q)],
                        float(f64::from(us) / 1e6),
                    );
                }
            }
        }
        o.family(
            "lanmeter_internet_loss_ratio",
            "gauge",
            "Share of echo requests lost in the last full minute by target group.",
        );
        for (group, g) in [("internet", m.internet), ("gateway", m.gateway)] {
            if let Some(l) = g.loss_percent() {
                o.sample(
                    "lanmeter_internet_loss_ratio",
                    &[("target", group)],
                    float(l / 100.0),
                );
            }
        }
    }
    let per_kind: Vec<(&str, usize, f64)> = [S::InternetDown, S::LanDown, S::DnsDown]
        .into_iter()
        .map(|kind| {
            let of_kind: Vec<_> = outages.iter().filter(|x| x.outage.kind == kind).collect();
            let ns: i64 = of_kind
                .iter()
                .map(|x| (x.outage.end_ns.unwrap_or(now_ns) - x.outage.start_ns).max(0))
                .sum();
            (kind.as_str(), of_kind.len(), ns as f64 / 1e9)
        })
        .collect();
    o.family(
        "lanmeter_internet_outages_total",
        "counter",
        "Outages in the stored log by kind (internet_down, lan_down, dns_down).",
    );
    for (kind, n, _) in &per_kind {
        o.sample("lanmeter_internet_outages_total", &[("kind", kind)], n);
    }
    o.family(
        "lanmeter_internet_outage_seconds_total",
        "counter",
        "Seconds of outage in the stored log by kind (an ongoing one up to now).",
    );
    for (kind, _, secs) in &per_kind {
        o.sample(
            "lanmeter_internet_outage_seconds_total",
            &[("kind", kind)],
            float(*secs),
        );
    }
    Ok(())
}

/// Passive latency (issue 27): the household's TCP handshakes in the newest closed minute the
/// database has in full, i.e. one that ended before the last flush (the flusher rewrites the
/// minute in progress at each flush). Absent when no such minute is under an hour old.
async fn passive(o: &mut Out, state: &AppState) -> Result<(), ApiError> {
    let now = state.now();
    let complete = state
        .telemetry()
        .health()
        .snapshot()
        .last_flush_ok
        .map_or(now, |t| t.as_second().min(now));
    let rows = state
        .db(move |s| s.passive_minutes(complete - 3600, complete - 59))
        .await?;
    let Some(m) = rows.last() else {
        return Ok(());
    };
    o.family(
        "lanmeter_passive_latency_seconds",
        "gauge",
        "Devices' TCP handshakes to the internet (SYN to SYN-ACK) in the newest complete minute, by quantile.",
    );
    for (q, v) in [("0.5", m.median_us), ("0.95", m.p95_us)] {
        if let Some(us) = v {
            o.sample(
                "lanmeter_passive_latency_seconds",
                &[("quantile", q)],
                float(us as f64 / 1e6),
            );
        }
    }
    o.family(
        "lanmeter_passive_handshakes",
        "gauge",
        "TCP handshakes to the internet timed in that minute.",
    );
    o.sample("lanmeter_passive_handshakes", &[], m.handshakes);
    o.family(
        "lanmeter_passive_minute_timestamp_seconds",
        "gauge",
        "Start of that minute, Unix seconds.",
    );
    o.sample("lanmeter_passive_minute_timestamp_seconds", &[], m.minute);
    Ok(())
}

/// The router's counters (issue 24) and today's coverage.
async fn router_metrics(o: &mut Out, state: &AppState) -> Result<(), ApiError> {
    let tz = state.config().time_zone();
    let now = state.now();
    let lag = 2 * state.config().flush_interval_secs;
    let (status, today) = state
        .db(move |s| {
            let today =
                crate::router::coverage::coverage_today(s, &tz, now, lag).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "metrics: cannot compute today's coverage");
                    None
                });
            Ok((crate::router::coverage::status(s)?, today))
        })
        .await?;
    let Some(st) = status else {
        return Ok(());
    };
    let source = st.source.as_deref().unwrap_or("");
    o.family(
        "lanmeter_router_up",
        "gauge",
        "1 while the router's WAN counters are read and usable (0: searching, unreachable or stuck).",
    );
    o.sample(
        "lanmeter_router_up",
        &[("source", source)],
        u8::from(st.state == "ok"),
    );
    o.family(
        "lanmeter_router_wan_bytes_total",
        "counter",
        "Bytes the router counted on its WAN interface since lanmeter started reading it (direction=up: sent to the internet).",
    );
    o.sample(
        "lanmeter_router_wan_bytes_total",
        &[("direction", "up")],
        st.counted_bytes_up,
    );
    o.sample(
        "lanmeter_router_wan_bytes_total",
        &[("direction", "down")],
        st.counted_bytes_down,
    );
    o.family(
        "lanmeter_router_counter_events_total",
        "counter",
        "Oddities of the router's counters: event=wrap (32-bit wrap), reset (restart), stuck (a poll with a frozen byte counter).",
    );
    for (ev, n) in [
        ("wrap", st.wraps),
        ("reset", st.resets),
        ("stuck", st.stuck_polls),
    ] {
        o.sample("lanmeter_router_counter_events_total", &[("event", ev)], n);
    }
    if let Some(c) = today {
        o.family(
            "lanmeter_coverage_ratio",
            "gauge",
            "Today's internet bytes lanmeter counted for the devices ÷ the router's WAN bytes (absent when it cannot be said).",
        );
        for (dir, p) in [
            ("up", c.percent_up),
            ("down", c.percent_down),
            ("both", c.percent),
        ] {
            if let Some(p) = p {
                o.sample(
                    "lanmeter_coverage_ratio",
                    &[("direction", dir)],
                    float(p / 100.0),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(float(0.005), "0.005");
        assert_eq!(float(f64::INFINITY), "+Inf");
    }
}
