//! The JSON API under `/api/v1`, Prometheus metrics at `/metrics`, and the OpenAPI 3 document
//! at `/api/v1/openapi.json`, generated from the handlers' annotations so it cannot drift.
//!
//! Map: [`error`] the one error shape (and the layer that enforces it); [`extract`] query, path
//! and body extractors that reject unknown fields; [`tokens`] API tokens (bearer auth, and
//! their management); one file per resource ([`devices`], [`usage`], [`presence`], [`system`],
//! [`plan`], [`alerts`]);
//! [`metrics`] the Prometheus exposition.
//!
//! Auth is the guard's (see `web::guard`): a session cookie (with the CSRF header for changes)
//! or `Authorization: Bearer <token>`. Every route is in [`table`] with its method and access
//! rule; a test checks that the table and the OpenAPI document list the same operations.
//!
//! Plan and alerts: [`plan`] (`GET /api/v1/plan`, the plan report) and [`alerts`] (the list,
//! and `POST /api/v1/alerts/{id}/acknowledge` for admins).
//!
//! This module reads the store and the telemetry; the only things it writes are device user
//! fields, tokens, alert acknowledgements and audit entries.

pub mod alerts;
pub mod coverage;
pub mod devices;
pub mod error;
pub mod extract;
pub mod internet;
pub mod metrics;
pub mod plan;
pub mod presence;
pub mod services;
pub mod settings;
pub mod system;
pub mod tokens;
pub mod usage;

#[cfg(test)]
mod tests;

use super::{Access, AppState};
use axum::Json;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

pub use error::{ApiError, ErrorBody, RequestId};

/// One API operation: its path, method and handler, with the path's access rule.
pub struct Operation {
    pub path: &'static str,
    pub method: Method,
    pub access: Access,
    pub handler: MethodRouter<AppState>,
}

fn op(
    path: &'static str,
    method: Method,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Operation {
    Operation {
        path,
        method,
        access,
        handler,
    }
}

/// Every API operation. Operations on one path share its access rule: with `Viewer`, reading
/// needs a viewer and changing needs an admin (the guard decides by method).
pub fn table() -> Vec<Operation> {
    use Access::{Admin, Public, Viewer};
    vec![
        op(
            "/api/v1/openapi.json",
            Method::GET,
            Public,
            get(openapi_json),
        ),
        op("/api/v1/devices", Method::GET, Viewer, get(devices::list)),
        op(
            "/api/v1/devices/{id}",
            Method::GET,
            Viewer,
            get(devices::one),
        ),
        op(
            "/api/v1/devices/{id}",
            Method::PATCH,
            Viewer,
            patch(devices::update),
        ),
        op(
            "/api/v1/devices/{id}/latency",
            Method::GET,
            Viewer,
            get(internet::device_latency),
        ),
        op(
            "/api/v1/devices/{id}/services",
            Method::GET,
            Viewer,
            get(services::device_services),
        ),
        op(
            "/api/v1/services",
            Method::GET,
            Viewer,
            get(services::household_services),
        ),
        op("/api/v1/usage", Method::GET, Viewer, get(usage::usage)),
        op("/api/v1/top", Method::GET, Viewer, get(usage::top)),
        op("/api/v1/export", Method::GET, Viewer, get(usage::export)),
        op("/api/v1/presence", Method::GET, Viewer, get(presence::list)),
        op("/api/v1/system", Method::GET, Viewer, get(system::health)),
        op("/api/v1/capture", Method::GET, Viewer, get(system::capture)),
        op(
            "/api/v1/visibility",
            Method::GET,
            Viewer,
            get(system::visibility),
        ),
        op("/api/v1/plan", Method::GET, Viewer, get(plan::report)),
        op(
            "/api/v1/internet/now",
            Method::GET,
            Viewer,
            get(internet::now),
        ),
        op(
            "/api/v1/internet/minutes",
            Method::GET,
            Viewer,
            get(internet::minutes),
        ),
        op(
            "/api/v1/internet/outages",
            Method::GET,
            Viewer,
            get(internet::outages),
        ),
        op("/api/v1/alerts", Method::GET, Viewer, get(alerts::list)),
        op(
            "/api/v1/alerts/{id}/acknowledge",
            Method::POST,
            Admin,
            post(alerts::acknowledge),
        ),
        op(
            "/api/v1/settings",
            Method::GET,
            Admin,
            get(settings::get_settings),
        ),
        op(
            "/api/v1/settings",
            Method::PATCH,
            Admin,
            patch(settings::patch_settings),
        ),
        op(
            "/api/v1/settings/test-notification",
            Method::POST,
            Admin,
            post(settings::test_notification),
        ),
        op("/api/v1/tokens", Method::GET, Admin, get(tokens::list)),
        op("/api/v1/tokens", Method::POST, Admin, post(tokens::create)),
        op(
            "/api/v1/tokens/{id}",
            Method::DELETE,
            Admin,
            delete(tokens::revoke),
        ),
        op(
            "/api/v1/coverage",
            Method::GET,
            Viewer,
            get(coverage::coverage),
        ),
        op("/metrics", Method::GET, Viewer, get(metrics::metrics)),
    ]
}

/// The operations grouped per path (as the router registers them), with the path's access.
pub fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    let mut out: Vec<(&'static str, Access, MethodRouter<AppState>)> = Vec::new();
    for o in table() {
        match out.iter_mut().find(|(p, _, _)| *p == o.path) {
            Some((_, access, mr)) => {
                debug_assert_eq!(*access, o.access, "one access rule per path: {}", o.path);
                *mr = std::mem::take(mr).merge(o.handler);
            }
            None => out.push((o.path, o.access, o.handler)),
        }
    }
    out
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token from `lanmeter token create` or POST /api/v1/tokens.",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::session::SESSION_COOKIE,
                "A signed-in browser session (named `__Host-lm_session` when served over HTTPS); changes also need the X-CSRF-Token header.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lanmeter API",
        description = "Household network usage: devices, usage history, presence, the data plan, \
            alerts, system health. \
            Every failure answers with the ErrorBody shape. \
            Text a device announced (host names, vendor classes, mDNS names and services, SSIDs, \
            and names and alert texts built from them) is returned as stored: JSON-escaped but not \
            otherwise changed, so bidi overrides (U+202E) or zero-width characters (U+200B) a \
            device sent arrive as sent (control characters were already stored as `\\xNN`). \
            The dashboard and e-mails show such characters as `\\u{202e}`; a client that displays \
            these strings must do the same. Times are RFC 3339; a query's `from`/`to` \
            may also be a local date (2024-03-31) or date-time (2024-03-31T10:00) in the household time zone.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        openapi_json,
        devices::list,
        devices::one,
        devices::update,
        usage::usage,
        usage::top,
        usage::export,
        presence::list,
        system::health,
        system::capture,
        system::visibility,
        coverage::coverage,
        plan::report,
        internet::now,
        internet::minutes,
        internet::outages,
        internet::device_latency,
        services::device_services,
        services::household_services,
        alerts::list,
        alerts::acknowledge,
        settings::get_settings,
        settings::patch_settings,
        settings::test_notification,
        tokens::list,
        tokens::create,
        tokens::revoke,
        metrics::metrics,
    ),
    // Enums used only as query parameters are not collected from `IntoParams`: listed here.
    components(schemas(
        devices::DeviceSort,
        devices::Order,
        usage::Bucket,
        usage::ExportPeriod,
        usage::ExportFormat,
        alerts::AlertState,
        alerts::AlertSeverity
    )),
    modifiers(&Security),
    security(("token" = []), ("session" = [])),
    tags(
        (name = "devices"), (name = "usage"), (name = "system"), (name = "plan"),
        (name = "internet"), (name = "alerts"), (name = "settings"), (name = "tokens"), (name = "meta")
    )
)]
pub struct ApiDoc;

/// The OpenAPI document (also what the drift test reads).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::VERSION.to_string();
    doc
}

/// GET /api/v1/openapi.json: this API's OpenAPI 3 document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json", body = Object),
    )
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// Parses a `from`/`to` bound with the export's rules (RFC 3339, or a local date or date-time).
pub(crate) fn parse_bound(
    name: &str,
    value: &str,
    tz: &jiff::tz::TimeZone,
) -> Result<jiff::Timestamp, ApiError> {
    crate::store::export::parse_time(value, tz)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("`{name}`: {e}")))
}

/// The range `[from, to)` of a query: `to` defaults to now, `from` to `default_span` before `to`.
pub(crate) fn range(
    state: &AppState,
    from: Option<&str>,
    to: Option<&str>,
    default_span_secs: i64,
) -> Result<(jiff::Timestamp, jiff::Timestamp), ApiError> {
    let tz = state.config().time_zone();
    let to = match to {
        Some(t) => parse_bound("to", t, &tz)?,
        None => jiff::Timestamp::from_second(state.now())
            .map_err(|e| ApiError::internal(format!("clock out of range: {e}")))?,
    };
    let from = match from {
        Some(f) => parse_bound("from", f, &tz)?,
        None => jiff::Timestamp::from_second(to.as_second().saturating_sub(default_span_secs))
            .map_err(|_| {
                ApiError::bad_request("invalid_range", "`to` is too early: give `from` as well")
            })?,
    };
    if from >= to {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("`from` ({from}) must be before `to` ({to})"),
        ));
    }
    Ok((from, to))
}

/// RFC 3339 (UTC) of a nanosecond timestamp, second precision.
pub(crate) fn time_ns(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_else(|_| ns.to_string())
}

/// RFC 3339 (UTC) of a Unix-seconds time.
pub(crate) fn time_s(s: i64) -> String {
    jiff::Timestamp::from_second(s)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// Validates a user text field: trimmed, at most `max` characters, no control characters
/// (newlines and tabs only where `multiline`). Empty means "none".
pub(crate) fn clean_text(
    field: &str,
    value: &str,
    max: usize,
    multiline: bool,
) -> Result<Option<String>, ApiError> {
    let v = value.trim();
    if v.chars().count() > max {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("`{field}` is longer than {max} characters"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("`{field}` contains control characters"),
        ));
    }
    Ok((!v.is_empty()).then(|| v.to_string()))
}
