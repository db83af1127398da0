//! GET/POST /setup: the first-run page that sets the admin password, then leads to the
//! first-run wizard (/welcome). Once an admin password exists it only redirects to /login;
//! changing the password later is `lanmeter passwd` (shell).
//!
//! It needs the one-time setup code (see `crate::setup_code`), typed or carried in the link
//! (`/setup?code=…`); a wrong code counts as a failed login for the throttle, and the code is
//! deleted once the password is set.

use super::AppState;
use super::error::AppError;
use super::session::{self, Client, Layout};
use crate::auth::{self, AuthError, PASSWORD_MIN_CHARS, Role};
use crate::setup_code;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Form, Query, State};
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
    /// The setup code as the link or the last form carried it (shown again in the form).
    pub code: String,
}

#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    code: String,
}

fn page(
    pre: String,
    error: Option<String>,
    strength: Option<&'static str>,
    code: String,
) -> SetupPage {
    SetupPage {
        layout: Layout::new("Set up", "", None),
        pre,
        error,
        strength,
        min: PASSWORD_MIN_CHARS,
        code,
    }
}

/// While no admin password exists: the setup link (with a code, made now if there is none).
/// Blocking (file and database); for start-up, before the server runs.
pub fn pending_link(state: &AppState) -> Result<Option<String>, AppError> {
    let store = crate::store::Store::open(state.db_path())?;
    if store.password_hash(Role::Admin)?.is_some() {
        return Ok(None);
    }
    let code =
        setup_code::ensure(state.db_path()).map_err(|e| AppError::internal(e.to_string()))?;
    let cfg = state.config();
    let host = setup_code::lan_host(cfg);
    Ok(Some(setup_code::link(
        cfg,
        &host,
        state.hosts().port(),
        &code,
    )))
}

/// The stored setup code, made now if the daemon has not made one (so `lanmeter setup-link`
/// and the journal have one to show).
async fn stored_code(state: &AppState) -> Result<String, AppError> {
    let db = state.db_path().to_path_buf();
    tokio::task::spawn_blocking(move || setup_code::ensure(&db))
        .await
        .map_err(|e| AppError::internal(format!("setup code task failed: {e}")))?
        .map_err(|e| AppError::internal(e.to_string()))
}

pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CodeQuery>,
) -> Result<Response, AppError> {
    if state.admin_exists().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let (pre, set) = session::pre_token(&state, &headers)?;
    let code: String = q.code.chars().take(64).collect();
    let mut r = page(pre, None, None, code).into_response();
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
    let code: String = f.code.chars().take(64).collect();
    let again = |status: StatusCode, msg: String, strength, code: String| {
        let (pre, _) = session::pre_token(&state, &headers)?;
        let mut r = page(pre, Some(msg), strength, code).into_response();
        *r.status_mut() = status;
        Ok::<_, AppError>(r)
    };
    if let Err(e) = checked {
        let strength = Some(auth::strength_hint(&f.password));
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
            strength,
            code,
        );
    }
    // The code is a secret like a password: throttled the same way, checked only when admitted.
    if let Err(why) = super::login::admit(&state, &client).await? {
        let mut r = again(
            StatusCode::TOO_MANY_REQUESTS,
            why.message(&client),
            None,
            code,
        )?;
        if let Some(v) = why
            .retry_after()
            .and_then(|s| axum::http::HeaderValue::from_str(&s.to_string()).ok())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    if !setup_code::matches(&code, &stored_code(&state).await?) {
        session::audit(
            &state,
            "anonymous",
            &client,
            "setup code wrong",
            String::new(),
        )
        .await;
        tracing::info!(client = %client, "refused first-run setup with a wrong setup code");
        return again(
            StatusCode::FORBIDDEN,
            "That is not the setup code. Open the setup link printed at installation, or run `sudo -u lanmeter lanmeter setup-link` on the lanmeter machine.".into(),
            None,
            String::new(),
        );
    }
    super::login::admitted_ok(&state, &client).await?;
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
    let db = state.db_path().to_path_buf();
    let _ = tokio::task::spawn_blocking(move || setup_code::remove(&db)).await;
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
    // On to the first-run wizard: where the Pi is, the plan, notifications (each skippable).
    let mut r = Redirect::to("/welcome").into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}
