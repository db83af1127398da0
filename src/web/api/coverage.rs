//! `/api/v1/coverage`: the share of the router's internet bytes lanmeter saw itself over a
//! range (`router::coverage`), with the router poller's status.

use super::error::ApiError;
use super::extract::ApiQuery;
use crate::router::RouterStatus;
use crate::router::coverage::{self, CoverageReport};
use crate::store::query::QueryError;
use crate::web::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CoverageQuery {
    /// Start (inclusive); default local midnight today.
    pub from: Option<String>,
    /// End (exclusive); default now.
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CoverageAnswer {
    #[serde(flatten)]
    pub coverage: CoverageReport,
    /// The router poller's last status (absent before its first poll or with router_source = "off").
    pub router: Option<RouterStatus>,
    /// Devices heard on the LAN in the range (ARP, DHCP, mDNS) to which no unicast frame was
    /// seen: not visible from where the Pi is.
    pub not_visible: Vec<coverage::UnseenDevice>,
}

/// GET /api/v1/coverage
#[utoipa::path(
    get,
    path = "/api/v1/coverage",
    tag = "system",
    params(CoverageQuery),
    responses(
        (status = 200, description = "lanmeter's internet bytes ÷ the router's WAN bytes over the range", body = CoverageAnswer),
        (status = 400, description = "A bad `from`/`to`", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn coverage(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CoverageQuery>,
) -> Result<Json<CoverageAnswer>, ApiError> {
    let tz = state.config().time_zone();
    let now = state.now();
    let span = coverage::today(&tz, now)
        .map_or(86_400, |(f, t)| t.as_second() - f.as_second())
        .max(1);
    let (from, to) = super::range(&state, q.from.as_deref(), q.to.as_deref(), span)?;
    let (report, router, unseen) = state
        .db(move |s| {
            Ok((
                coverage::coverage(s, &tz, from, to),
                coverage::status(s)?,
                coverage::not_visible(s, &tz, from, to),
            ))
        })
        .await?;
    let bad = |e| match e {
        QueryError::Store(s) => ApiError::internal(s.to_string()),
        other => ApiError::bad_request("invalid_range", other.to_string()),
    };
    Ok(Json(CoverageAnswer {
        coverage: report.map_err(bad)?,
        router,
        not_visible: unseen.map_err(bad)?,
    }))
}
