//! `/api/v1/internet/...`: the connection's health from the active probes (issue 27): the
//! state now, per-minute loss and latency over a range, and the outage log.

use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use crate::internet::MinuteRow;
use crate::web::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const NS: i64 = 1_000_000_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start (inclusive); default 24 hours before `to`.
    pub from: Option<String>,
    /// End (exclusive); default now.
    pub to: Option<String>,
}

/// One outage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutageJson {
    /// `internet_down`, `lan_down` (router or LAN) or `dns_down`.
    pub kind: String,
    pub start: String,
    /// Absent while it lasts.
    pub end: Option<String>,
    /// Seconds, up to now while it lasts.
    pub duration_seconds: f64,
}

/// The connection now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InternetNow {
    /// `up`, `internet_down`, `lan_down`, `dns_down`, `unknown` (nothing could be probed), or
    /// absent when the probes are not running in this process.
    pub state: Option<String>,
    /// When the last probe round started.
    pub measured_at: Option<String>,
    pub outage: Option<OutageJson>,
    /// The last full minute.
    pub last_minute: Option<MinuteJson>,
}

/// One minute of probing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MinuteJson {
    pub minute: String,
    pub rounds: u32,
    /// Rounds per state.
    pub up: u32,
    pub internet_down: u32,
    pub lan_down: u32,
    pub dns_down: u32,
    pub internet_sent: u32,
    pub internet_received: u32,
    pub internet_loss_percent: Option<f64>,
    pub internet_median_ms: Option<f64>,
    pub internet_p95_ms: Option<f64>,
    pub gateway_loss_percent: Option<f64>,
    pub gateway_median_ms: Option<f64>,
    pub dns_queries: u32,
    pub dns_failures: u32,
    pub dns_median_ms: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Minutes {
    pub from: String,
    pub to: String,
    pub minutes: Vec<MinuteJson>,
    /// Passive latency: the household's TCP handshakes to the internet (SYN to SYN-ACK) per
    /// minute with at least one, oldest first.
    pub passive: Vec<PassiveJson>,
}

/// One device's passive latency (issue 27): its TCP handshakes to the internet, per hour.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceLatency {
    pub device_id: i64,
    pub from: String,
    pub to: String,
    /// Handshakes timed in the hours overlapping the range, over every MAC of the device.
    pub handshakes: i64,
    /// Median and 95th percentile over all those handshakes (not a median of hourly medians).
    pub median_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Hours with at least one handshake, oldest first.
    pub hours: Vec<PassiveHourJson>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PassiveHourJson {
    /// Start of the hour, Unix seconds.
    pub hour: i64,
    pub handshakes: i64,
    pub median_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PassiveJson {
    /// Start of the minute, Unix seconds.
    pub minute: i64,
    pub handshakes: i64,
    pub median_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Outages {
    pub from: String,
    pub to: String,
    /// Newest first.
    pub outages: Vec<OutageJson>,
}

fn ms(v: Option<u32>) -> Option<f64> {
    v.map(|u| f64::from(u) / 1e3)
}

pub(crate) fn minute_json(m: &MinuteRow) -> MinuteJson {
    MinuteJson {
        minute: super::time_s(m.minute),
        rounds: m.rounds,
        up: m.up,
        internet_down: m.internet_down,
        lan_down: m.lan_down,
        dns_down: m.dns_down,
        internet_sent: m.internet.sent,
        internet_received: m.internet.received,
        internet_loss_percent: m.internet.loss_percent(),
        internet_median_ms: ms(m.internet.median_us),
        internet_p95_ms: ms(m.internet.p95_us),
        gateway_loss_percent: m.gateway.loss_percent(),
        gateway_median_ms: ms(m.gateway.median_us),
        dns_queries: m.dns_queries,
        dns_failures: m.dns_failures,
        dns_median_ms: ms(m.dns_median_us),
    }
}

fn outage_json(o: &crate::internet::Outage, now_ns: i64) -> OutageJson {
    OutageJson {
        kind: o.kind.as_str().to_string(),
        start: super::time_ns(o.start_ns),
        end: o.end_ns.map(super::time_ns),
        duration_seconds: (o.end_ns.unwrap_or(now_ns) - o.start_ns).max(0) as f64 / 1e9,
    }
}

/// GET /api/v1/internet/now
#[utoipa::path(
    get,
    path = "/api/v1/internet/now",
    tag = "internet",
    responses(
        (status = 200, description = "The connection's state now", body = InternetNow),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn now(State(state): State<AppState>) -> Result<Json<InternetNow>, ApiError> {
    let now_ns = state.now() * NS;
    let live = state.internet_now();
    let last = match live.as_ref().and_then(|n| n.last_minute.clone()) {
        Some(m) => Some(m),
        None => state.db(|s| s.internet_last_minute()).await?,
    };
    Ok(Json(InternetNow {
        state: live
            .as_ref()
            .and_then(|n| n.state)
            .map(|s| s.as_str().to_string()),
        measured_at: live.as_ref().and_then(|n| n.at_ns).map(super::time_ns),
        outage: live
            .as_ref()
            .and_then(|n| n.outage)
            .map(|o| outage_json(&o, now_ns)),
        last_minute: last.as_ref().map(minute_json),
    }))
}

/// GET /api/v1/devices/{id}/latency
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/latency",
    tag = "internet",
    params(("id" = i64, Path, description = "The device id"), RangeQuery),
    responses(
        (status = 200, description = "The device's TCP handshake latency to the internet per hour, and over the range", body = DeviceLatency),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 404, description = "No such device", body = super::ErrorBody),
    )
)]
pub async fn device_latency(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<DeviceLatency>, ApiError> {
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), 86_400)?;
    // Stored per hour: every hour that overlaps the range.
    let (f, t) = (from.as_second(), to.as_second());
    let p = state
        .db(move |s| {
            Ok(match s.device(id)? {
                Some(_) => Some(s.passive_device(id, f - f.rem_euclid(3600), t)?),
                None => None,
            })
        })
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("device with id {id}")))?;
    let ms = |v: Option<i64>| v.map(|v| v as f64 / 1e3);
    Ok(Json(DeviceLatency {
        device_id: id,
        from: from.to_string(),
        to: to.to_string(),
        handshakes: p.total.handshakes,
        median_ms: ms(p.total.median_us),
        p95_ms: ms(p.total.p95_us),
        hours: p
            .hours
            .iter()
            .map(|h| PassiveHourJson {
                hour: h.minute,
                handshakes: h.handshakes,
                median_ms: ms(h.median_us),
                p95_ms: ms(h.p95_us),
            })
            .collect(),
    }))
}

/// GET /api/v1/internet/minutes
#[utoipa::path(
    get,
    path = "/api/v1/internet/minutes",
    tag = "internet",
    params(RangeQuery),
    responses(
        (status = 200, description = "Loss and latency per minute, oldest first", body = Minutes),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn minutes(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<Minutes>, ApiError> {
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), 86_400)?;
    let (f, t) = (from.as_second(), to.as_second());
    let (rows, passive) = state
        .db(move |s| Ok((s.internet_minutes(f, t)?, s.passive_minutes(f, t)?)))
        .await?;
    Ok(Json(Minutes {
        from: from.to_string(),
        to: to.to_string(),
        minutes: rows.iter().map(minute_json).collect(),
        passive: passive
            .iter()
            .map(|p| PassiveJson {
                minute: p.minute,
                handshakes: p.handshakes,
                median_ms: p.median_us.map(|v| v as f64 / 1e3),
                p95_ms: p.p95_us.map(|v| v as f64 / 1e3),
            })
            .collect(),
    }))
}

/// GET /api/v1/internet/outages
#[utoipa::path(
    get,
    path = "/api/v1/internet/outages",
    tag = "internet",
    params(RangeQuery),
    responses(
        (status = 200, description = "Outages overlapping the range, newest first", body = Outages),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn outages(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<Outages>, ApiError> {
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), 30 * 86_400)?;
    let (f, t) = (from.as_second() * NS, to.as_second() * NS);
    let rows = state.db(move |s| s.internet_outages(f, t)).await?;
    let now_ns = state.now() * NS;
    Ok(Json(Outages {
        from: from.to_string(),
        to: to.to_string(),
        outages: rows
            .iter()
            .map(|o| outage_json(&o.outage, now_ns))
            .collect(),
    }))
}
