//! `/api/v1/devices`: the device list (filter, sort, pages of at most [`LIMIT_MAX`]), one
//! device, and changing the fields only the user sets (name, owner, group, type, notes, known,
//! ignored). Device-supplied strings are returned as stored (escaped by discovery).

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::tokens::actor;
use super::{clean_text, time_ns};
use crate::store::discovery::{DeviceRecord, UserFields};
use crate::web::AppState;
use crate::web::session::Auth;
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The largest page of devices one request returns.
pub const LIMIT_MAX: u32 = 100;
pub const LIMIT_DEFAULT: u32 = 50;
/// Longest name, owner, group or type; longest notes.
const FIELD_MAX: usize = 64;
const NOTES_MAX: usize = 1000;

/// The fields only the user sets.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceUser {
    pub name: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// The user's type, overriding the guess.
    #[serde(rename = "type")]
    pub type_override: Option<String>,
    pub notes: Option<String>,
    /// The household knows this device (no new-device alert).
    pub known: bool,
    /// Left out of lists and totals the user looks at.
    pub ignored: bool,
}

/// One device.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub id: i64,
    /// The MAC the device was first seen with.
    #[schema(example = "dc:a6:32:11:22:33")]
    pub mac: String,
    /// Every MAC linked to this device (private addresses rotate).
    pub macs: Vec<String>,
    /// The user's name, else the most telling host name. Device-supplied text is raw (only
    /// JSON-escaped): bidi and invisible characters arrive as the device sent them.
    pub name: Option<String>,
    /// The user's type, else the guess.
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    pub vendor: Option<String>,
    /// Host names from DHCP, mDNS and DNS, raw as announced (JSON-escaped only; control
    /// characters stored as `\xNN`, bidi and invisible characters kept): display them escaped.
    pub hostnames: Vec<String>,
    pub addresses: Vec<String>,
    /// mDNS service types and DHCP vendor classes, raw like `hostnames`.
    pub services: Vec<String>,
    pub is_gateway: bool,
    pub randomized: bool,
    /// Heard within the presence window.
    pub online: bool,
    pub first_seen: String,
    pub last_seen: String,
    pub user: DeviceUser,
}

impl Device {
    pub fn from_record(d: &DeviceRecord, now_s: i64, window_s: u64) -> Device {
        let window_ns = i64::try_from(window_s)
            .unwrap_or(i64::MAX / 1_000_000_000)
            .saturating_mul(1_000_000_000);
        Device {
            id: d.id,
            mac: d.mac.to_string(),
            macs: d.macs.iter().map(|m| m.mac.to_string()).collect(),
            name: d.display_name().map(str::to_string),
            device_type: d.device_type().map(str::to_string),
            vendor: d.vendor.clone(),
            hostnames: d.hostnames.iter().map(|h| h.name.clone()).collect(),
            addresses: d.addresses.iter().map(|a| a.addr.to_string()).collect(),
            services: d.services.clone(),
            is_gateway: d.is_gateway,
            randomized: d.randomized,
            online: d.last_seen_ns.saturating_add(window_ns) >= now_s.saturating_mul(1_000_000_000),
            first_seen: time_ns(d.first_seen_ns),
            last_seen: time_ns(d.last_seen_ns),
            user: DeviceUser {
                name: d.user.name.clone(),
                owner: d.user.owner.clone(),
                group: d.user.group.clone(),
                type_override: d.user.type_override.clone(),
                notes: d.user.notes.clone(),
                known: d.user.known,
                ignored: d.user.ignored,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeviceSort {
    #[default]
    Id,
    Name,
    Mac,
    Vendor,
    FirstSeen,
    LastSeen,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Devices per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Devices to skip (default 0).
    pub offset: Option<u32>,
    pub sort: Option<DeviceSort>,
    pub order: Option<Order>,
    /// Case-insensitive text found in the name, a host name, a MAC, an address or the vendor.
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// Only devices of this owner (case-insensitive).
    pub owner: Option<String>,
    /// Only devices of this group (case-insensitive).
    pub group: Option<String>,
    pub online: Option<bool>,
    pub known: Option<bool>,
    /// Include the gateway (router); default false.
    pub include_gateway: Option<bool>,
    /// Include devices the user marked ignored; default true.
    pub include_ignored: Option<bool>,
}

/// A page of devices.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    pub items: Vec<Device>,
    /// Devices matching the filter, over all pages.
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

fn eq_ci(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(b))
}

/// Every device as the API shows it.
pub(crate) async fn all(state: &AppState) -> Result<Vec<Device>, ApiError> {
    let records = state.db(|s| s.list_devices()).await?;
    let (now, window) = (state.now(), state.config().presence_window_secs);
    Ok(records
        .iter()
        .map(|d| Device::from_record(d, now, window))
        .collect())
}

/// GET /api/v1/devices
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "devices",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of devices", body = DeviceList),
        (status = 400, description = "A parameter is invalid (limit over 100, unknown parameter...)", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DeviceList>, ApiError> {
    let limit = q.limit.unwrap_or(LIMIT_DEFAULT);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` must be between 1 and {LIMIT_MAX} (got {limit}); page with `offset`"),
        ));
    }
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.chars().count() > 100) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`q` is longer than 100 characters",
        ));
    }
    let text = text.map(str::to_lowercase);
    let offset = q.offset.unwrap_or(0);
    let mut devices: Vec<Device> = all(&state)
        .await?
        .into_iter()
        .filter(|d| q.include_gateway.unwrap_or(false) || !d.is_gateway)
        .filter(|d| q.include_ignored.unwrap_or(true) || !d.user.ignored)
        .filter(|d| {
            q.owner
                .as_deref()
                .is_none_or(|o| eq_ci(d.user.owner.as_deref(), o))
        })
        .filter(|d| {
            q.group
                .as_deref()
                .is_none_or(|g| eq_ci(d.user.group.as_deref(), g))
        })
        .filter(|d| q.online.is_none_or(|o| d.online == o))
        .filter(|d| q.known.is_none_or(|k| d.user.known == k))
        .filter(|d| {
            text.as_deref().is_none_or(|t| {
                d.name
                    .iter()
                    .chain(&d.hostnames)
                    .chain(&d.macs)
                    .chain(&d.addresses)
                    .chain(&d.vendor)
                    .any(|s| s.to_lowercase().contains(t))
            })
        })
        .collect();
    let key = q.sort.unwrap_or_default();
    devices.sort_by(|a, b| {
        let by = match key {
            DeviceSort::Id => a.id.cmp(&b.id),
            DeviceSort::Name => a
                .name
                .as_deref()
                .map(str::to_lowercase)
                .cmp(&b.name.as_deref().map(str::to_lowercase)),
            DeviceSort::Mac => a.mac.cmp(&b.mac),
            DeviceSort::Vendor => a.vendor.cmp(&b.vendor),
            DeviceSort::FirstSeen => a.first_seen.cmp(&b.first_seen),
            DeviceSort::LastSeen => a.last_seen.cmp(&b.last_seen),
        };
        by.then(a.id.cmp(&b.id))
    });
    if q.order == Some(Order::Desc) {
        devices.reverse();
    }
    let total = devices.len() as u64;
    let items = devices
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    Ok(Json(DeviceList {
        items,
        total,
        limit,
        offset,
    }))
}

pub(crate) async fn find(state: &AppState, id: i64) -> Result<Device, ApiError> {
    all(state)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| ApiError::not_found(&format!("device with id {id}")))
}

/// GET /api/v1/devices/{id}
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}",
    tag = "devices",
    params(("id" = i64, Path, description = "The device id")),
    responses(
        (status = 200, description = "The device", body = Device),
        (status = 400, description = "The id is not a number", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 404, description = "No such device", body = super::ErrorBody),
    )
)]
pub async fn one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Device>, ApiError> {
    Ok(Json(find(&state, id).await?))
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn some_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The user fields to change: a field left out stays as it is; `null` or `""` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    /// At most 64 characters.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>, nullable, max_length = 64)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>, nullable, max_length = 64)]
    pub owner: Option<Option<String>>,
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>, nullable, max_length = 64)]
    pub group: Option<Option<String>>,
    #[serde(default, rename = "type", deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>, nullable, max_length = 64)]
    pub type_override: Option<Option<String>>,
    /// At most 1000 characters; may hold newlines.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>, nullable, max_length = 1000)]
    pub notes: Option<Option<String>>,
    pub known: Option<bool>,
    pub ignored: Option<bool>,
}

impl DevicePatch {
    /// The user fields after the patch, or the first invalid field.
    fn apply(&self, mut u: UserFields) -> Result<UserFields, ApiError> {
        let set =
            |field: &str, v: &Option<Option<String>>, max, multi, slot: &mut Option<String>| {
                if let Some(v) = v {
                    *slot = match v {
                        Some(s) => clean_text(field, s, max, multi)?,
                        None => None,
                    };
                }
                Ok::<(), ApiError>(())
            };
        set("name", &self.name, FIELD_MAX, false, &mut u.name)?;
        set("owner", &self.owner, FIELD_MAX, false, &mut u.owner)?;
        set("group", &self.group, FIELD_MAX, false, &mut u.group)?;
        set(
            "type",
            &self.type_override,
            FIELD_MAX,
            false,
            &mut u.type_override,
        )?;
        set("notes", &self.notes, NOTES_MAX, true, &mut u.notes)?;
        if let Some(k) = self.known {
            u.known = k;
        }
        if let Some(i) = self.ignored {
            u.ignored = i;
        }
        Ok(u)
    }
}

/// PATCH /api/v1/devices/{id} (admin)
#[utoipa::path(
    patch,
    path = "/api/v1/devices/{id}",
    tag = "devices",
    params(("id" = i64, Path, description = "The device id")),
    request_body(content = DevicePatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The device after the change", body = Device),
        (status = 400, description = "A field is invalid or unknown", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin, or a session without the CSRF header", body = super::ErrorBody),
        (status = 404, description = "No such device", body = super::ErrorBody),
        (status = 413, description = "The body is too large", body = super::ErrorBody),
        (status = 415, description = "The body is not JSON", body = super::ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    auth: Option<Extension<Auth>>,
    token: Option<Extension<super::tokens::TokenUse>>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<DevicePatch>,
) -> Result<Json<Device>, ApiError> {
    let records = state.db(|s| s.list_devices()).await?;
    let record = records
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| ApiError::not_found(&format!("device with id {id}")))?;
    let fields = patch.apply(record.user.clone())?;
    let actor = actor(auth.as_deref(), token.as_deref());
    let client = auth
        .as_ref()
        .map_or("unknown".to_string(), |a| a.client.clone());
    let now = state.now();
    let detail = format!("device {id} ({})", record.mac);
    state
        .db_mut(move |s| {
            s.set_user_fields(id, &fields)?;
            s.audit(&crate::store::auth::AuditEntry {
                at: now,
                actor: &actor,
                client: &client,
                action: "device edited",
                detail: &detail,
            })
        })
        .await?;
    Ok(Json(find(&state, id).await?))
}
