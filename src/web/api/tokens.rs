//! API tokens on the web side: bearer authentication (called by the guard) and the admin's
//! `/api/v1/tokens` endpoints to list, create and revoke them.
//!
//! A token's secret is shown once, when it is created, and stored only as a SHA-256 digest.
//! A request with an `Authorization` header is judged by that header alone: a wrong or revoked
//! token is refused even when a session cookie is present, so a script never silently runs
//! with someone else's session. Token requests need no CSRF token (a browser never attaches a
//! bearer token on its own).

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use crate::auth::Role;
use crate::store::tokens::{NewToken, TokenRow};
use crate::web::AppState;
use crate::web::session::Auth;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `last_used_at` is written at most this often per token, so a scrape every few seconds is not
/// a database write every few seconds.
const TOUCH_EVERY_SECS: i64 = 60;
const NAME_MAX: usize = crate::auth::TOKEN_NAME_MAX;

/// The token a request authenticated with (a request extension).
#[derive(Clone, Debug)]
pub struct TokenUse {
    pub id: i64,
    pub name: String,
}

/// Who made a change, for the audit log.
pub(crate) fn actor(auth: Option<&Auth>, token: Option<&TokenUse>) -> String {
    match (token, auth) {
        (Some(t), _) => format!("token {}", t.name),
        (None, Some(a)) => a.actor().to_string(),
        (None, None) => "anonymous".to_string(),
    }
}

/// Unknown or revoked tokens counted per client address in windows of this many seconds.
pub const UNKNOWN_WINDOW_SECS: i64 = 60;
/// Unknown tokens one address may present per window; beyond it, token requests from that
/// address are answered 429 without being looked up until the window ends.
pub const UNKNOWN_PER_WINDOW: u32 = 10;
/// Addresses tracked at once; a flood from more is forgotten wholesale (it only loosens the
/// throttle, never the check of the token itself).
const UNKNOWN_TRACKED: usize = 4096;

/// Unknown-token refusals per client address: (window start, refusals in it). One per server
/// (in the shared state). A std Mutex, held only for a map lookup, never across an await.
#[derive(Default)]
pub struct UnknownTokens(std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>);

impl UnknownTokens {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (i64, u32)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `client` presented [`UNKNOWN_PER_WINDOW`] unknown tokens in the current window:
    /// its token requests then get 429 until the window ends.
    pub fn throttled(&self, client: &str, now: i64) -> bool {
        self.map()
            .get(client)
            .is_some_and(|&(start, n)| now - start < UNKNOWN_WINDOW_SECS && n >= UNKNOWN_PER_WINDOW)
    }

    /// Seconds until `client`'s current window ends (for Retry-After).
    pub fn retry_after(&self, client: &str, now: i64) -> i64 {
        self.map()
            .get(client)
            .map_or(1, |&(start, _)| (start + UNKNOWN_WINDOW_SECS - now).max(1))
    }

    /// Counts an unknown or revoked token from `client` and logs it once per address and
    /// window (with how many the previous window had), not once per request: a script retrying
    /// a revoked token, or a guesser, cannot fill the journal.
    pub fn note(&self, client: &str, path: &str, now: i64) {
        let mut map = self.map();
        if map.len() >= UNKNOWN_TRACKED {
            map.retain(|_, (start, _)| now - *start < UNKNOWN_WINDOW_SECS);
            if map.len() >= UNKNOWN_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(client.to_string()).or_insert((now, 0));
        if now - entry.0 >= UNKNOWN_WINDOW_SECS {
            let previous = entry.1;
            *entry = (now, 0);
            if previous > 1 {
                tracing::info!(
                    client,
                    previous_window = previous,
                    "unknown API tokens in the previous minute from this address"
                );
            }
        }
        entry.1 += 1;
        if entry.1 == 1 {
            tracing::info!(
                path,
                client,
                "refused an unknown or revoked API token (more from this address within a minute are counted, not logged)"
            );
        } else if entry.1 == UNKNOWN_PER_WINDOW {
            tracing::warn!(
                client,
                limit = UNKNOWN_PER_WINDOW,
                "too many unknown API tokens from this address: its token requests get 429 for the rest of the minute"
            );
        }
    }
}

/// What the `Authorization` header says.
pub enum Bearer<'a> {
    None,
    Token(&'a str),
    /// A header that is not `Bearer <token>`.
    Malformed,
}

pub fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Bearer::None;
    };
    match v.to_str().ok().and_then(|v| v.split_once(' ')) {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Bearer::Token(t.trim())
        }
        _ => Bearer::Malformed,
    }
}

/// The live token with this secret, touched if it was not used for a while.
pub async fn authenticate(state: &AppState, secret: &str) -> Result<Option<TokenRow>, ApiError> {
    let digest = crate::auth::token_digest(secret);
    let now = state.now();
    Ok(state
        .db(move |s| {
            let row = s.token_by_digest(&digest)?;
            if let Some(t) = &row
                && t.last_used_at.is_none_or(|u| now - u >= TOUCH_EVERY_SECS)
            {
                // Bookkeeping only: a database busy with a long flush or backup (a slow SD card)
                // must not fail a read that does not need it; a later use records it.
                if let Err(e) = s.touch_token(t.id, now) {
                    tracing::warn!(token = t.id, error = %e, "could not record the API token's use; answering the request anyway");
                }
            }
            Ok(row)
        })
        .await?)
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// Read-only.
    #[default]
    Viewer,
    /// Read and change (device fields, tokens).
    Admin,
}

impl From<TokenRole> for Role {
    fn from(r: TokenRole) -> Role {
        match r {
            TokenRole::Viewer => Role::Viewer,
            TokenRole::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub role: TokenRole,
    /// The first characters of the secret.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&TokenRow> for Token {
    fn from(t: &TokenRow) -> Token {
        Token {
            id: t.id,
            name: t.name.clone(),
            role: match t.role {
                Role::Admin => TokenRole::Admin,
                Role::Viewer => TokenRole::Viewer,
            },
            prefix: t.prefix.clone(),
            created_at: super::time_s(t.created_at),
            last_used_at: t.last_used_at.map(super::time_s),
            revoked_at: t.revoked_at.map(super::time_s),
        }
    }
}

/// GET /api/v1/tokens (admin)
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "Every token, newest first (secrets are never shown again)", body = Vec<Token>),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Token>>, ApiError> {
    let rows = state.db(|s| s.list_tokens()).await?;
    Ok(Json(rows.iter().map(Token::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// What the token is for ("grafana", "home assistant"); 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// viewer (default) or admin.
    pub role: Option<TokenRole>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The secret: shown only now. Send it as `Authorization: Bearer <secret>`.
    pub secret: String,
    pub token: Token,
}

/// POST /api/v1/tokens (admin)
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body(content = NewTokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new token with its secret", body = CreatedToken),
        (status = 400, description = "The name is missing or invalid, or a field unknown", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin, or a session without the CSRF header", body = super::ErrorBody),
        (status = 409, description = "Too many tokens exist", body = super::ErrorBody),
        (status = 413, description = "The body is too large", body = super::ErrorBody),
        (status = 415, description = "The body is not JSON", body = super::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Option<Extension<Auth>>,
    token: Option<Extension<TokenUse>>,
    ApiJson(req): ApiJson<NewTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    use crate::auth::TokenNameError;
    let name = crate::auth::token_name(&req.name)
        .map_err(|e| {
            let message = match e {
                TokenNameError::Empty => "`name` must not be empty".to_string(),
                TokenNameError::TooLong => format!("`name` is longer than {NAME_MAX} characters"),
                TokenNameError::Control => "`name` contains control characters".to_string(),
            };
            ApiError::bad_request("invalid_body", message)
        })?
        .to_string();
    let role: Role = req.role.unwrap_or_default().into();
    let (secret, digest, prefix) =
        crate::auth::new_api_token().map_err(|e| ApiError::internal(e.to_string()))?;
    let actor = actor(auth.as_deref(), token.as_deref());
    let client = auth
        .as_ref()
        .map_or("unknown".to_string(), |a| a.client.clone());
    let now = state.now();
    let row = state
        .db(move |s| {
            let row = s.create_token(&NewToken {
                name: &name,
                role,
                digest: &digest,
                prefix: &prefix,
                now,
            })?;
            if let Some(r) = &row {
                s.audit(&crate::store::auth::AuditEntry {
                    at: now,
                    actor: &actor,
                    client: &client,
                    action: "token created",
                    detail: &format!("{} ({}, {})", r.name, r.role.as_str(), r.prefix),
                })?;
            }
            Ok(row)
        })
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "too_many_tokens",
                format!(
                    "{} tokens exist already; revoked tokens count too",
                    crate::store::tokens::TOKENS_MAX
                ),
            )
        })?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            secret,
            token: Token::from(&row),
        }),
    ))
}

/// DELETE /api/v1/tokens/{id} (admin): revokes the token; its row stays listed as revoked.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = i64, Path, description = "The token id")),
    responses(
        (status = 200, description = "The revoked token", body = Token),
        (status = 400, description = "The id is not a number", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin, or a session without the CSRF header", body = super::ErrorBody),
        (status = 404, description = "No such token", body = super::ErrorBody),
        (status = 409, description = "The request's own token (a token cannot revoke itself)", body = super::ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Option<Extension<Auth>>,
    token: Option<Extension<TokenUse>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Token>, ApiError> {
    if token.as_ref().is_some_and(|t| t.id == id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "revoking_own_token",
            "A token cannot revoke itself (that would lock this client out): use another admin \
             token, the web session or `lanmeter token revoke`.",
        ));
    }
    let actor = actor(auth.as_deref(), token.as_deref());
    let client = auth
        .as_ref()
        .map_or("unknown".to_string(), |a| a.client.clone());
    let now = state.now();
    let row = state
        .db(move |s| {
            let row = s.revoke_token(id, now)?;
            if let Some(r) = &row {
                s.audit(&crate::store::auth::AuditEntry {
                    at: now,
                    actor: &actor,
                    client: &client,
                    action: "token revoked",
                    detail: &format!("{} ({})", r.name, r.prefix),
                })?;
            }
            Ok(row)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("token with id {id}")))?;
    Ok(Json(Token::from(&row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tokens_are_throttled_per_address_and_window() {
        let u = UnknownTokens::default();
        let (a, b) = ("192.0.2.77", "192.0.2.78");
        for i in 0..UNKNOWN_PER_WINDOW {
            assert!(!u.throttled(a, 1000), "after {i}");
            u.note(a, "/api/v1/devices", 1000);
        }
        assert!(u.throttled(a, 1030));
        assert_eq!(u.retry_after(a, 1030), 30);
        assert!(!u.throttled(b, 1030), "another address is not affected");
        assert!(!u.throttled(a, 1000 + UNKNOWN_WINDOW_SECS));
    }
}
