//! /login, /logout and "log out other sessions": password check with per-address throttling,
//! a fresh session id at every login, and an audit entry for each outcome.

use super::AppState;
use super::error::AppError;
use super::guard::refusal;
use super::session::{self, Auth, Client, Layout};
use crate::auth::{self, Failures, Role, Throttle, Verdict};
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

fn page(pre: String, next: String, error: Option<String>) -> LoginPage {
    LoginPage {
        layout: Layout::new("Log in", "", None),
        pre,
        next,
        error,
    }
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
    let mut r = page(pre, next, None).into_response();
    if let Some(c) = set {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
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
    let throttle = Throttle::default();
    let now = state.now();
    let who = client.clone();
    let failures = state.db(move |s| s.login_failures(&who)).await?;
    let refuse =
        |status: StatusCode, msg: String, retry: Option<i64>| -> Result<Response, AppError> {
            let (pre, _) = session::pre_token(&state, &headers)?;
            let mut r = page(pre, next.clone(), Some(msg)).into_response();
            *r.status_mut() = status;
            if let Some(secs) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, secs);
            }
            Ok(r)
        };
    match throttle.verdict(&failures, now) {
        Verdict::Allow => {}
        Verdict::Wait(secs) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many wrong passwords from this address: wait {secs} seconds before trying again."
                ),
                Some(secs),
            );
        }
        Verdict::Locked => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "This address ({client}) is locked after too many wrong passwords. On the lanmeter machine, run `lanmeter unlock {client}`."
                ),
                None,
            );
        }
    }

    let password = f.password;
    let role = state
        .db(move |s| {
            // Both checks always run, so the time taken does not reveal which role exists.
            let admin = s.password_hash(Role::Admin)?;
            let viewer = s.password_hash(Role::Viewer)?;
            let is_admin = admin.is_some_and(|h| auth::verify_password(&password, &h));
            let is_viewer = viewer.is_some_and(|h| auth::verify_password(&password, &h));
            Ok(if is_admin {
                Some(Role::Admin)
            } else if is_viewer {
                Some(Role::Viewer)
            } else {
                None
            })
        })
        .await?;

    let Some(role) = role else {
        let after: Failures = throttle.after_failure(&failures, now);
        let who = client.clone();
        state
            .db(move |s| s.set_login_failures(&who, &after))
            .await?;
        let detail = if after.locked {
            format!("wrong password ({} in a row); address locked", after.count)
        } else {
            format!("wrong password ({} in a row)", after.count)
        };
        session::audit(&state, "anonymous", &client, "login failed", detail).await;
        tracing::info!(client = %client, failures = after.count, locked = after.locked, "failed login");
        return refuse(StatusCode::UNAUTHORIZED, "Wrong password.".into(), None);
    };

    let who = client.clone();
    state.db(move |s| s.clear_login_failures(&who)).await?;
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
