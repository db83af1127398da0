//! `/api/v1/devices/{id}/services` and `/api/v1/services` (issue 29): internet bytes by service
//! for one device or the household, the numbers of the device page and the overview card.
//!
//! Rows are per UTC hour: a range holds the hours whose start is in `[from, to)`. With the
//! setting `per_device_services` off nothing is read: an empty list with `"recording": false`.

use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::internet::RangeQuery;
use crate::store::remotes::ServiceBytes;
use crate::web::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One line: a named service, a remote nobody named, or what the per-device bound kept
/// together.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceJson {
    /// `service` (named from DNS answers or TLS/QUIC server names), `unknown` (no name seen
    /// for `remote`) or `other` (smaller remotes the per-device bound kept together).
    pub kind: String,
    /// The service ("YouTube", or a registrable domain); null unless `kind` is `service`.
    pub service: Option<String>,
    /// For `unknown`: the remote address or network (`203.0.113.0/24`) as stored.
    pub remote: Option<String>,
    /// The names seen for the service's remotes, sorted.
    pub names: Vec<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Up and down together.
    pub bytes: u64,
}

fn line_json(l: &ServiceBytes) -> ServiceJson {
    let other = l.service.is_none() && l.names == [crate::endpoints::OTHER];
    let (kind, remote, names) = match (&l.service, other) {
        (Some(_), _) => ("service", None, l.names.clone()),
        (None, true) => ("other", None, Vec::new()),
        (None, false) => ("unknown", l.names.first().cloned(), Vec::new()),
    };
    ServiceJson {
        kind: kind.into(),
        service: l.service.clone(),
        remote,
        names,
        bytes_up: l.bytes_up,
        bytes_down: l.bytes_down,
        bytes: l.bytes_up + l.bytes_down,
    }
}

/// One device's internet bytes by service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceServices {
    pub device_id: i64,
    pub from: String,
    pub to: String,
    /// Whether per-device services are recorded (`per_device_services`); when false the list
    /// is empty.
    pub recording: bool,
    /// How many days of services are kept (`keep_services_days`): a range reaching further
    /// back has only the kept hours.
    pub keep_days: u32,
    /// Most bytes first, `other` last; the lines sum to the device's recorded internet bytes.
    pub services: Vec<ServiceJson>,
}

/// One device's part of a household line.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DevicePartJson {
    pub device_id: i64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub bytes: u64,
}

/// One household line and the devices that used it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HouseholdServiceJson {
    #[serde(flatten)]
    pub line: ServiceJson,
    /// Most bytes first: the first is the device that used it most. Each device's part
    /// equals that device's own line in `/devices/{id}/services` for the same range.
    pub devices: Vec<DevicePartJson>,
}

/// The household's internet bytes by service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HouseholdServices {
    pub from: String,
    pub to: String,
    pub recording: bool,
    pub keep_days: u32,
    /// Most bytes first, `other` last.
    pub services: Vec<HouseholdServiceJson>,
}

/// GET /api/v1/devices/{id}/services
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/services",
    tag = "devices",
    params(("id" = i64, Path, description = "The device id"), RangeQuery),
    responses(
        (status = 200, description = "The device's internet bytes by service over the hours starting in the range", body = DeviceServices),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 404, description = "No such device", body = super::ErrorBody),
    )
)]
pub async fn device_services(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<DeviceServices>, ApiError> {
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), 86_400)?;
    let (f, t) = (from.as_second(), to.as_second());
    let cfg = state.config();
    let on = cfg.per_device_services;
    let lines = state
        .db(move |s| {
            Ok(match s.device(id)? {
                Some(_) if on => Some(s.device_services(id, f, t)?),
                Some(_) => Some(Vec::new()),
                None => None,
            })
        })
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("device with id {id}")))?;
    Ok(Json(DeviceServices {
        device_id: id,
        from: from.to_string(),
        to: to.to_string(),
        recording: on,
        keep_days: cfg.keep_services_days,
        services: lines.iter().map(line_json).collect(),
    }))
}

/// GET /api/v1/services
#[utoipa::path(
    get,
    path = "/api/v1/services",
    tag = "devices",
    params(RangeQuery),
    responses(
        (status = 200, description = "The household's internet bytes by service over the hours starting in the range, with each device's part", body = HouseholdServices),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn household_services(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<HouseholdServices>, ApiError> {
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), 86_400)?;
    let (f, t) = (from.as_second(), to.as_second());
    let cfg = state.config();
    let on = cfg.per_device_services;
    let all = if on {
        state.db(move |s| s.household_services(f, t)).await?
    } else {
        Vec::new()
    };
    Ok(Json(HouseholdServices {
        from: from.to_string(),
        to: to.to_string(),
        recording: on,
        keep_days: cfg.keep_services_days,
        services: all
            .iter()
            .map(|s| HouseholdServiceJson {
                line: line_json(&s.line),
                devices: s
                    .devices
                    .iter()
                    .map(|&(device_id, up, down)| DevicePartJson {
                        device_id,
                        bytes_up: up,
                        bytes_down: down,
                        bytes: up + down,
                    })
                    .collect(),
            })
            .collect(),
    }))
}
