//! /login, /logout and "log out other sessions": password check with per-address throttling,
//! a fresh session id at every login, and an audit entry for each outcome.

use super::AppState;
use super::error::AppError;
use super::guard::refusal;
use super::session::{self, Auth, Client, Layout};
use crate::auth::{self, Busy, Failures, Role, Throttle, Verdict};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template, WebTemplate)]
#[template(path = "pages/login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub pre: String,
    pub next: String,
    pub error: Option<String>,
    /// Whether a viewer password exists, so the page can say which logins there are.
    pub viewer_set: bool,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    password: String,
    next: Option<String>,
}

fn page(pre: String, next: String, error: Option<String>, viewer_set: bool) -> LoginPage {
    LoginPage {
        layout: Layout::new("Log in", "", None),
        pre,
        next,
        error,
        viewer_set,
    }
}

async fn viewer_set(state: &AppState) -> Result<bool, AppError> {
    Ok(state.db(|s| s.password_hash(Role::Viewer)).await?.is_some())
}

pub async fn form(
    State(state): State<AppState>,
    auth: Option<Extension<Auth>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Result<Response, AppError> {
    if !state.admin_exists().await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    let next = session::safe_next(q.next.as_deref());
    if auth.is_some_and(|a| a.session.is_some()) {
        return Ok(Redirect::to(&next).into_response());
    }
    let (pre, set) = session::pre_token(&state, &headers)?;
    let mut r = page(pre, next, None, viewer_set(&state).await?).into_response();
    if let Some(c) = set {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// Why an attempt was refused without checking anything, as the person reads it, with the
/// seconds to wait when known.
pub(super) enum Refused {
    Wait(i64),
    Locked,
    Busy,
    Account(i64),
}

impl Refused {
    pub(super) fn message(&self, client: &str) -> String {
        match self {
            Refused::Wait(secs) => format!(
                "Too many wrong passwords from this address: wait {secs} seconds before trying again."
            ),
            Refused::Locked => format!(
                "This address ({client}) is locked after too many wrong passwords. On the lanmeter machine, run `lanmeter unlock {client}`."
            ),
            Refused::Busy => {
                "The server is checking other logins: try again in a second.".to_string()
            }
            Refused::Account(secs) => format!(
                "Too many wrong passwords on this server recently: wait {secs} seconds before trying again."
            ),
        }
    }

    pub(super) fn retry_after(&self) -> Option<i64> {
        match self {
            Refused::Wait(s) | Refused::Account(s) => Some(*s),
            Refused::Busy => Some(1),
            Refused::Locked => None,
        }
    }

    /// The short reason kept in the audit log's summary row.
    fn audit_word(&self) -> &'static str {
        match self {
            Refused::Wait(_) => "address throttled",
            Refused::Locked => "address locked",
            Refused::Busy => "server busy",
            Refused::Account(_) => "account backoff",
        }
    }
}

/// Takes the right to check one secret (a password or the setup code) from `client`: the
/// per-address throttle first, then the accounts' backoff and the server-wide cap. The
/// attempt is recorded as a failure before this returns, atomically per address, so parallel
/// attempts cannot race past the count; a refusal is summed into the audit log.
pub(super) async fn admit(state: &AppState, client: &str) -> Result<Result<(), Refused>, AppError> {
    let throttle = Throttle::default();
    let now = state.now();
    let who = client.to_string();
    // A cheap look first, so an address that must wait does not use up the server's checks.
    let failures = state.db(move |s| s.login_failures(&who)).await?;
    let refused = match throttle.verdict(&failures, now) {
        Verdict::Allow => match state.login_gate().admit(client, now) {
            Ok(()) => {
                let who = client.to_string();
                let (verdict, _) = state
                    .db_mut(move |s| s.claim_login_attempt(&who, now, &throttle))
                    .await?;
                match verdict {
                    Verdict::Allow => return Ok(Ok(())),
                    Verdict::Wait(s) => Refused::Wait(s),
                    Verdict::Locked => Refused::Locked,
                }
            }
            Err(Busy::Server) => Refused::Busy,
            Err(Busy::Account(s)) => Refused::Account(s),
        },
        Verdict::Wait(s) => Refused::Wait(s),
        Verdict::Locked => Refused::Locked,
    };
    if let Some(n) = state
        .login_gate()
        .refused(client, std::time::Instant::now())
    {
        let (who, why) = (client.to_string(), refused.audit_word());
        if let Err(e) = state.db(move |s| s.audit_refused(&who, now, why, n)).await {
            tracing::error!(error = ?e, "could not write the audit log");
        }
    }
    Ok(Err(refused))
}

/// The secret was right: the attempt admitted for it is forgiven.
pub(super) async fn admitted_ok(state: &AppState, client: &str) -> Result<(), AppError> {
    state.login_gate().succeeded(client);
    let who = client.to_string();
    state.db(move |s| s.login_succeeded(&who)).await
}

/// The role whose password this is. Both roles are always checked, a missing one against a
/// dummy hash, so the time taken tells nothing about which passwords exist.
async fn check_password(state: &AppState, password: String) -> Result<Option<Role>, AppError> {
    let (admin, viewer) = state
        .db(|s| {
            Ok((
                s.password_hash(Role::Admin)?,
                s.password_hash(Role::Viewer)?,
            ))
        })
        .await?;
    tokio::task::spawn_blocking(move || {
        let is_admin = auth::verify_or_dummy(&password, admin.as_deref());
        let is_viewer = auth::verify_or_dummy(&password, viewer.as_deref());
        if is_admin {
            Some(Role::Admin)
        } else if is_viewer {
            Some(Role::Viewer)
        } else {
            None
        }
    })
    .await
    .map_err(|e| AppError::internal(format!("password check failed: {e}")))
}

pub async fn submit(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    if !state.admin_exists().await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    let next = session::safe_next(f.next.as_deref());
    let viewer = viewer_set(&state).await?;
    let refuse =
        |status: StatusCode, msg: String, retry: Option<i64>| -> Result<Response, AppError> {
            let (pre, _) = session::pre_token(&state, &headers)?;
            let mut r = page(pre, next.clone(), Some(msg), viewer).into_response();
            *r.status_mut() = status;
            if let Some(secs) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, secs);
            }
            Ok(r)
        };
    if let Err(why) = admit(&state, &client).await? {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            why.message(&client),
            why.retry_after(),
        );
    }

    let Some(role) = check_password(&state, f.password).await? else {
        let who = client.clone();
        let after: Failures = state.db(move |s| s.login_failures(&who)).await?;
        let detail = if after.locked {
            format!("wrong password ({} in a row); address locked", after.count)
        } else {
            format!("wrong password ({} in a row)", after.count)
        };
        session::audit(&state, "anonymous", &client, "login failed", detail).await;
        tracing::info!(client = %client, failures = after.count, locked = after.locked, "failed login");
        return refuse(StatusCode::UNAUTHORIZED, "Wrong password.".into(), None);
    };

    admitted_ok(&state, &client).await?;
    let old = session::cookie(&headers, session::SESSION_COOKIE).map(auth::token_digest);
    let cookie = session::start(&state, role, &client, old).await?;
    session::audit(&state, role.as_str(), &client, "login", String::new()).await;
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}

/// POST /logout: ends this session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<Response, AppError> {
    if let Some(s) = auth.session.clone() {
        state.db(move |st| st.delete_session(&s.id_digest)).await?;
        session::audit(&state, auth.actor(), &auth.client, "logout", String::new()).await;
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_session_cookie(&state));
    Ok(r)
}

/// POST /sessions/end-others: logs out every other browser (a lost phone, a shared laptop).
pub async fn end_others(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<Response, AppError> {
    let Some(s) = auth.session.clone() else {
        return Ok(refusal(
            StatusCode::FORBIDDEN,
            "There is no session to keep.",
        ));
    };
    let ended = state
        .db(move |st| st.delete_other_sessions(&s.id_digest))
        .await?;
    session::audit(
        &state,
        auth.actor(),
        &auth.client,
        "logged out other sessions",
        format!("{ended} ended"),
    )
    .await;
    Ok(Redirect::to("/audit").into_response())
}
