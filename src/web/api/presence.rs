//! `/api/v1/presence`: who is online now and when each device was online in a range, from
//! discovery's presence intervals (traffic and answers heard). A device counts as online until
//! its last sighting plus `presence_window_secs`.

use super::devices;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::web::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PresenceQuery {
    /// Start (inclusive); default 24 hours before `to`.
    pub from: Option<String>,
    /// End (exclusive); default now.
    pub to: Option<String>,
    /// Include the gateway (router); default false.
    pub include_gateway: Option<bool>,
}

/// A stretch during which a device was online.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Interval {
    pub from: String,
    /// Last heard plus the presence window (or the range's end, if earlier).
    pub to: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DevicePresence {
    pub device_id: i64,
    pub mac: String,
    pub name: Option<String>,
    pub online: bool,
    pub last_seen: String,
    /// Online intervals overlapping the range, clipped to it, oldest first.
    pub intervals: Vec<Interval>,
    /// Seconds online within the range.
    pub online_seconds: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PresenceReport {
    pub from: String,
    pub to: String,
    /// Devices online now.
    pub online_now: u64,
    pub devices: Vec<DevicePresence>,
}

/// GET /api/v1/presence
#[utoipa::path(
    get,
    path = "/api/v1/presence",
    tag = "devices",
    params(PresenceQuery),
    responses(
        (status = 200, description = "Presence of every device", body = PresenceReport),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PresenceQuery>,
) -> Result<Json<PresenceReport>, ApiError> {
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), 86_400)?;
    let all: Vec<devices::Device> = devices::all(&state)
        .await?
        .into_iter()
        .filter(|d| q.include_gateway.unwrap_or(false) || !d.is_gateway)
        .collect();
    let ids: Vec<i64> = all.iter().map(|d| d.id).collect();
    let intervals = state
        .db(move |s| {
            ids.iter()
                .map(|&id| s.presence(id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let window_ns = i64::try_from(state.config().presence_window_secs)
        .unwrap_or(i64::MAX / 1_000_000_000)
        .saturating_mul(1_000_000_000);
    let (lo, hi) = (
        i64::try_from(from.as_nanosecond()).unwrap_or(i64::MIN),
        i64::try_from(to.as_nanosecond()).unwrap_or(i64::MAX),
    );
    let devices: Vec<DevicePresence> = all
        .into_iter()
        .zip(intervals)
        .map(|(d, spans)| {
            let clipped: Vec<(i64, i64)> = spans
                .iter()
                .map(|&(f, l)| (f.max(lo), l.saturating_add(window_ns).min(hi)))
                .filter(|(f, t)| f < t)
                .collect();
            DevicePresence {
                device_id: d.id,
                mac: d.mac,
                name: d.name,
                online: d.online,
                last_seen: d.last_seen,
                online_seconds: clipped.iter().map(|(f, t)| (t - f) / 1_000_000_000).sum(),
                intervals: clipped
                    .iter()
                    .map(|&(f, t)| Interval {
                        from: super::time_ns(f),
                        to: super::time_ns(t),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(PresenceReport {
        from: from.to_string(),
        to: to.to_string(),
        online_now: devices.iter().filter(|d| d.online).count() as u64,
        devices,
    }))
}
