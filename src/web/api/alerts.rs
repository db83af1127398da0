//! `/api/v1/alerts`: the alert list (filter by state and severity, pages of at most
//! [`LIMIT_MAX`], newest first) and acknowledging one alert (admins), with the same store
//! call and audit entry as the /alerts page. It never creates, resolves or sends alerts.

use super::devices::{LIMIT_DEFAULT, LIMIT_MAX};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::time_s;
use super::tokens::actor;
use crate::store::alerts::{AlertFilter, AlertRow};
use crate::web::AppState;
use crate::web::session::{self, Auth};
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An alert's state: open (needs attention), acknowledged (someone saw it, the condition
/// lasts), resolved (over).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertState {
    fn of(a: &AlertRow) -> AlertState {
        if a.resolved_at.is_some() {
            AlertState::Resolved
        } else if a.acked_at.is_some() {
            AlertState::Acknowledged
        } else {
            AlertState::Open
        }
    }

    fn filter(self) -> AlertFilter {
        match self {
            AlertState::Open => AlertFilter::Open,
            AlertState::Acknowledged => AlertFilter::Acknowledged,
            AlertState::Resolved => AlertFilter::Resolved,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    Info,
    Warning,
    Critical,
}

impl AlertSeverity {
    fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Info => "info",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Critical => "critical",
        }
    }
}

/// A `[label, value]` pair.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

/// A dashboard link: a path on this server.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertLink {
    pub label: String,
    #[schema(example = "/devices/3")]
    pub path: String,
}

/// One alert episode.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    pub id: i64,
    /// The rule that fired (e.g. `device.new`, `plan.threshold`).
    pub rule: String,
    /// What it is about, within the rule (a device, a quota, `plan`).
    pub subject: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub state: AlertState,
    /// The lifecycle stage: triggered, notified, acknowledged or resolved.
    pub stage: String,
    pub title: String,
    pub body: String,
    pub facts: Vec<Fact>,
    pub links: Vec<AlertLink>,
    /// The alert resolves by itself when its condition ends (else acknowledging resolves it).
    pub auto_resolve: bool,
    /// How often the condition came back during this episode.
    pub occurrences: i64,
    pub triggered_at: String,
    pub last_active_at: String,
    pub notified_at: Option<String>,
    pub acknowledged_at: Option<String>,
    /// Who acknowledged it: a user, `token <name>`, or a signed email link.
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<String>,
}

impl From<AlertRow> for Alert {
    fn from(a: AlertRow) -> Alert {
        Alert {
            state: AlertState::of(&a),
            stage: a.stage().to_string(),
            id: a.id,
            rule: a.rule,
            subject: a.subject,
            severity: a.severity,
            title: a.title,
            body: a.body,
            facts: a
                .facts
                .into_iter()
                .map(|(label, value)| Fact { label, value })
                .collect(),
            links: a
                .links
                .into_iter()
                .map(|(label, path)| AlertLink { label, path })
                .collect(),
            auto_resolve: a.auto_resolve,
            occurrences: a.occurrences,
            triggered_at: time_s(a.triggered_at),
            last_active_at: time_s(a.last_active_at),
            notified_at: a.notified_at.map(time_s),
            acknowledged_at: a.acked_at.map(time_s),
            acknowledged_by: a.acked_by,
            resolved_at: a.resolved_at.map(time_s),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Alerts per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Alerts to skip (default 0).
    pub offset: Option<u32>,
    /// Only alerts in this state (default: every state).
    pub state: Option<AlertState>,
    /// Only alerts of this severity.
    pub severity: Option<AlertSeverity>,
}

/// A page of alerts, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    pub items: Vec<Alert>,
    /// Alerts matching the filter, over all pages.
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

/// GET /api/v1/alerts
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(AlertQuery),
    responses(
        (status = 200, description = "A page of alerts, newest first", body = AlertList),
        (status = 400, description = "A parameter is invalid (limit over 100, unknown state...)", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let limit = q.limit.unwrap_or(LIMIT_DEFAULT);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` must be between 1 and {LIMIT_MAX} (got {limit}); page with `offset`"),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let filter = q.state.map(AlertState::filter);
    let severity = q.severity.map(AlertSeverity::as_str);
    let (rows, total) = state
        .db(move |s| s.list_alerts(filter, severity, limit, offset))
        .await?;
    Ok(Json(AlertList {
        items: rows.into_iter().map(Alert::from).collect(),
        total,
        limit,
        offset,
    }))
}

/// POST /api/v1/alerts/{id}/acknowledge (admin)
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/acknowledge",
    tag = "alerts",
    params(("id" = i64, Path, description = "The alert id")),
    responses(
        (status = 200, description = "The alert after acknowledging it (an alert acknowledged before is returned unchanged)", body = Alert),
        (status = 400, description = "The id is not a number", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin, or a session without the CSRF header", body = super::ErrorBody),
        (status = 404, description = "No such alert", body = super::ErrorBody),
    )
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    auth: Option<Extension<Auth>>,
    token: Option<Extension<super::tokens::TokenUse>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Alert>, ApiError> {
    let by = actor(auth.as_deref(), token.as_deref());
    let client = auth
        .as_ref()
        .map_or("unknown".to_string(), |a| a.client.clone());
    let now = state.now();
    let who = by.clone();
    let (done, row) = state
        .db(move |s| {
            if s.alert(id)?.is_none() {
                return Ok((false, None));
            }
            let done = s.ack_alert(id, now, &who)?;
            Ok((done, s.alert(id)?))
        })
        .await?;
    let row = row.ok_or_else(|| ApiError::not_found(&format!("alert with id {id}")))?;
    if done {
        session::audit(
            &state,
            &by,
            &client,
            "alert acknowledged",
            format!("alert {id}"),
        )
        .await;
    }
    Ok(Json(row.into()))
}
