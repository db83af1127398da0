//! GET/POST /setup: the first-run page that sets the admin password. Once an admin password
//! exists it only redirects to /login; changing the password later is `lanmeter passwd` (shell).

use super::AppState;
use super::error::AppError;
use super::session::{self, Client, Layout};
use crate::auth::{self, AuthError, PASSWORD_MIN_CHARS, Role};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template, WebTemplate)]
#[template(path = "pages/setup.html")]
pub struct SetupPage {
    pub layout: Layout,
    pub pre: String,
    pub error: Option<String>,
    pub strength: Option<&'static str>,
    pub min: usize,
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

fn page(pre: String, error: Option<String>, strength: Option<&'static str>) -> SetupPage {
    SetupPage {
        layout: Layout::new("Set up", "", None),
        pre,
        error,
        strength,
        min: PASSWORD_MIN_CHARS,
    }
}

pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    if state.admin_exists().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let (pre, set) = session::pre_token(&state, &headers)?;
    let mut r = page(pre, None, None).into_response();
    if let Some(c) = set {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

pub async fn submit(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(f): Form<SetupForm>,
) -> Result<Response, AppError> {
    if state.admin_exists().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let checked = auth::check_new_password(&f.password).and_then(|()| {
        if f.password == f.confirm {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    });
    if let Err(e) = checked {
        let (pre, _) = session::pre_token(&state, &headers)?;
        let strength = Some(auth::strength_hint(&f.password));
        let mut r = page(pre, Some(e.to_string()), strength).into_response();
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    let password = f.password;
    let phc = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| AppError::internal(format!("hashing task failed: {e}")))??;
    let now = state.now();
    let created = state
        .db(move |s| s.set_initial_admin_password(&phc, now))
        .await?;
    if !created {
        // Another browser finished setup first: this one must log in with that password.
        return Ok(Redirect::to("/login").into_response());
    }
    session::audit(
        &state,
        "anonymous",
        &client,
        "setup",
        "admin password set".into(),
    )
    .await;
    tracing::info!(client = %client, "admin password set through the setup page");
    let old = session::cookie(&headers, session::SESSION_COOKIE).map(auth::token_digest);
    let cookie = session::start(&state, Role::Admin, &client, old).await?;
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}
