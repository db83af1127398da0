//! `/api/v1/usage` (one device, an owner's or a group's devices, or the household, over any
//! range, in buckets of any size), `/api/v1/top` (the devices that used most) and
//! `/api/v1/export` (the stored history as CSV or JSON: the very code of `lanmeter export`, so
//! a page's "download" and the command give the same rows).
//!
//! Everything is read through the store's query layer; household totals follow its rules
//! (gateway excluded, unattributed traffic included).

use super::devices;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::model::{Counts, MacAddr};
use crate::store::export::{self, Format, Period};
use crate::store::query::{QueryError, Selection};
use crate::web::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Most points a series may have (choose a bigger bucket for a longer range).
pub const POINTS_MAX: i64 = 10_000;
/// Most buckets an export may span (per device): a month of minutes fits.
pub const EXPORT_BUCKETS_MAX: i64 = 50_000;
pub const TOP_MAX: u32 = 100;
const DAY: i64 = 86_400;

/// Counters summed over a range or a bucket (ACCOUNTING.md quantities).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct UsageCounts {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub internet_upload_bytes: u64,
    pub internet_download_bytes: u64,
    /// sent + received − internet.
    pub local_bytes: u64,
    /// sent + received.
    pub total_bytes: u64,
    /// Device-minutes with traffic.
    pub active_minutes: u64,
}

impl UsageCounts {
    pub fn new(c: &Counts, active_minutes: u64) -> UsageCounts {
        UsageCounts {
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            frames_sent: c.frames_sent,
            frames_received: c.frames_received,
            internet_upload_bytes: c.internet_upload_bytes,
            internet_download_bytes: c.internet_download_bytes,
            local_bytes: c.local_bytes(),
            total_bytes: c.bytes_sent.saturating_add(c.bytes_received),
            active_minutes,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// A size giving about 100 to 200 points.
    #[default]
    Auto,
    Minute,
    Hour,
    Day,
    Month,
}

impl Bucket {
    fn period(self) -> Option<Period> {
        match self {
            Bucket::Auto => None,
            Bucket::Minute => Some(Period::Minute),
            Bucket::Hour => Some(Period::Hour),
            Bucket::Day => Some(Period::Day),
            Bucket::Month => Some(Period::Month),
        }
    }
}

/// The shortest length of a bucket, for bounding how many a range has.
fn min_secs(p: Period) -> i64 {
    match p {
        Period::Minute => 60,
        Period::Hour => 3600,
        Period::Day => 23 * 3600,
        Period::Month => 28 * DAY,
    }
}

fn buckets_in(p: Period, from: jiff::Timestamp, to: jiff::Timestamp) -> i64 {
    (to.as_second().saturating_sub(from.as_second())) / min_secs(p) + 2
}

fn query_err(e: QueryError) -> ApiError {
    match e {
        QueryError::Store(s) => ApiError::internal(s.to_string()),
        other => ApiError::bad_request("invalid_range", other.to_string()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start (inclusive); default 24 hours before `to`.
    pub from: Option<String>,
    /// End (exclusive); default now.
    pub to: Option<String>,
    /// Bucket size of the series (default auto). At most 10,000 buckets per range.
    pub bucket: Option<Bucket>,
    /// One device (its id). At most one of device, owner and group; none means the household.
    pub device: Option<i64>,
    /// The devices whose owner is this (case-insensitive).
    pub owner: Option<String>,
    /// The devices in this group (case-insensitive).
    pub group: Option<String>,
}

/// One bucket of a series.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsagePoint {
    /// The bucket's start (its true start, also when the range cuts it).
    pub start: String,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    /// household, device, owner or group.
    pub scope: String,
    /// The device id, owner or group asked for.
    pub subject: Option<String>,
    /// The devices summed (empty for the household, which is every device but the gateway).
    pub device_ids: Vec<i64>,
    pub from: String,
    pub to: String,
    pub bucket: String,
    /// False when retention had already deleted rows the range needed.
    pub exact: bool,
    pub total: UsageCounts,
    /// Buckets with traffic, in time order (empty buckets are left out).
    pub series: Vec<UsagePoint>,
}

/// GET /api/v1/usage
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Usage total and series", body = UsageReport),
        (status = 400, description = "A parameter is invalid, the range empty or too long for the bucket", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 404, description = "No such device", body = super::ErrorBody),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), DAY)?;
    let chosen = [q.device.is_some(), q.owner.is_some(), q.group.is_some()]
        .iter()
        .filter(|&&x| x)
        .count();
    if chosen > 1 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "give at most one of `device`, `owner` and `group`",
        ));
    }
    let (scope, subject, ids, sel) = if let Some(id) = q.device {
        let d = devices::find(&state, id).await?;
        let mac: MacAddr = d
            .mac
            .parse()
            .map_err(|_| ApiError::internal(format!("stored MAC {} unreadable", d.mac)))?;
        (
            "device",
            Some(id.to_string()),
            vec![id],
            Selection::device(mac),
        )
    } else if let Some((scope, want)) = q
        .owner
        .as_deref()
        .map(|o| ("owner", o.trim().to_string()))
        .or_else(|| q.group.as_deref().map(|g| ("group", g.trim().to_string())))
    {
        let all = devices::all(&state).await?;
        let matched: Vec<&devices::Device> = all
            .iter()
            .filter(|d| {
                let v = if scope == "owner" {
                    &d.user.owner
                } else {
                    &d.user.group
                };
                v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(&want))
            })
            .collect();
        let macs = matched.iter().filter_map(|d| d.mac.parse().ok()).collect();
        let ids = matched.iter().map(|d| d.id).collect();
        (scope, Some(want), ids, Selection::Devices(macs))
    } else {
        ("household", None, Vec::new(), Selection::Household)
    };
    let tz = state.config().time_zone();
    let period = q.bucket.unwrap_or_default().period();
    if let Some(p) = period
        && buckets_in(p, from, to) > POINTS_MAX
    {
        return Err(ApiError::bad_request(
            "range_too_large",
            format!(
                "a range this long has more than {POINTS_MAX} {p} buckets: choose a bigger `bucket` or a shorter range"
            ),
        ));
    }
    let (total, series) = state
        .db(move |s| {
            Ok((
                s.usage(&sel, &tz, from, to),
                s.usage_series(&sel, &tz, from, to, period),
            ))
        })
        .await?;
    let total = total.map_err(query_err)?;
    let series = series.map_err(query_err)?;
    Ok(Json(UsageReport {
        scope: scope.to_string(),
        subject,
        device_ids: ids,
        from: from.to_string(),
        to: to.to_string(),
        bucket: series.period.as_str().to_string(),
        exact: total.exact && series.exact,
        total: UsageCounts::new(&total.counts, total.active_minutes),
        series: series
            .points
            .iter()
            .map(|p| UsagePoint {
                start: p.start.to_string(),
                counts: UsageCounts::new(&p.counts, p.active_minutes),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// Start (inclusive); default 24 hours before `to`.
    pub from: Option<String>,
    /// End (exclusive); default now.
    pub to: Option<String>,
    /// How many devices, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopDevice {
    /// The device id (absent for a MAC the devices table does not know).
    pub device_id: Option<i64>,
    pub mac: String,
    pub name: Option<String>,
    pub usage: UsageCounts,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopList {
    pub from: String,
    pub to: String,
    /// Most bytes first; the gateway and unattributed traffic are not devices.
    pub items: Vec<TopDevice>,
}

/// GET /api/v1/top
#[utoipa::path(
    get,
    path = "/api/v1/top",
    tag = "usage",
    params(TopQuery),
    responses(
        (status = 200, description = "The devices with the most bytes", body = TopList),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn top(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TopQuery>,
) -> Result<Json<TopList>, ApiError> {
    let limit = q.limit.unwrap_or(10);
    if !(1..=TOP_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` must be between 1 and {TOP_MAX} (got {limit})"),
        ));
    }
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), DAY)?;
    let tz = state.config().time_zone();
    let top = state
        .db(move |s| Ok(s.top_devices(&tz, from, to, limit as usize)))
        .await?
        .map_err(query_err)?;
    let all = devices::all(&state).await?;
    let items = top
        .iter()
        .map(|u| {
            let mac = u.mac.to_string();
            let d = all.iter().find(|d| d.mac == mac);
            TopDevice {
                device_id: d.map(|d| d.id),
                name: d.and_then(|d| d.name.clone()),
                mac,
                usage: UsageCounts::new(&u.counts, u.active_minutes),
            }
        })
        .collect();
    Ok(Json(TopList {
        from: from.to_string(),
        to: to.to_string(),
        items,
    }))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    #[default]
    Csv,
    Json,
}

#[derive(Clone, Copy, Debug, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExportPeriod {
    Minute,
    Hour,
    Day,
    Month,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Start (inclusive); default a day before `to`.
    pub from: Option<String>,
    /// End (exclusive); default now (docs/API.md).
    pub to: Option<String>,
    /// Bucket size of the rows; at most 50,000 buckets in the range.
    pub period: ExportPeriod,
    /// csv (default) or json.
    pub format: Option<ExportFormat>,
    /// Only this device (its id).
    pub device: Option<i64>,
}

/// One export row (ACCOUNTING.md §4), as in `lanmeter export --format json`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRow {
    pub mac: String,
    pub period: String,
    pub start: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub internet_upload_bytes: u64,
    pub internet_download_bytes: u64,
}

/// GET /api/v1/export
#[utoipa::path(
    get,
    path = "/api/v1/export",
    tag = "usage",
    params(ExportQuery),
    responses(
        (status = 200, description = "One row per device and bucket, ordered by bucket then MAC; the same rows as `lanmeter export`",
            content((Vec<ExportRow> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A parameter is invalid, the range empty or too long for the period", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 404, description = "No such device", body = super::ErrorBody),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), DAY)?;
    let period = match q.period {
        ExportPeriod::Minute => Period::Minute,
        ExportPeriod::Hour => Period::Hour,
        ExportPeriod::Day => Period::Day,
        ExportPeriod::Month => Period::Month,
    };
    if buckets_in(period, from, to) > EXPORT_BUCKETS_MAX {
        return Err(ApiError::bad_request(
            "range_too_large",
            format!(
                "a range this long has more than {EXPORT_BUCKETS_MAX} {period} buckets: choose a bigger `period` or a shorter range"
            ),
        ));
    }
    let device = match q.device {
        Some(id) => Some(
            devices::find(&state, id)
                .await?
                .mac
                .parse::<MacAddr>()
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ),
        None => None,
    };
    let format = match q.format.unwrap_or_default() {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Json => Format::Json,
    };
    let tz = state.config().time_zone();
    let body = state
        .db(move |s| {
            let mut out = Vec::new();
            Ok(export::export(
                s,
                period,
                Some(from),
                Some(to),
                device,
                &tz,
                format,
                &mut out,
            )
            .map(|()| out))
        })
        .await?
        .map_err(|e| match e {
            export::ExportError::Store(s) => ApiError::internal(s.to_string()),
            export::ExportError::Write(w) => ApiError::internal(w.to_string()),
            other => ApiError::bad_request("invalid_range", other.to_string()),
        })?;
    let (ctype, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let name = format!(
        "lanmeter-{}-{}-{}.{ext}",
        period,
        from.strftime("%Y%m%dT%H%M%SZ"),
        to.strftime("%Y%m%dT%H%M%SZ")
    );
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}
