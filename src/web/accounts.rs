//! POST /settings/password: an admin sets or changes the admin or the viewer password from the
//! settings page. The current admin password is asked for every change (a browser left logged
//! in must not be enough to take the household's dashboard over), the new one is checked like
//! the first one at setup, and every other session ends: whoever knew the old password, or
//! was logged in elsewhere, logs in again. The browser that made the change stays logged in.

use super::AppState;
use super::error::AppError;
use super::session::{self, Auth, Client};
use crate::auth::{self, Role};
use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct PasswordForm {
    /// `admin` or `viewer`.
    role: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

/// What a change did, for the page.
async fn change(
    state: &AppState,
    auth: &Auth,
    f: PasswordForm,
) -> Result<Result<(Role, usize, Option<axum::http::HeaderValue>), String>, AppError> {
    let Some(role) = Role::parse(&f.role) else {
        return Err(AppError::BadRequest("unknown role".into()));
    };
    let (admin, viewer) = state
        .db(|s| {
            Ok((
                s.password_hash(Role::Admin)?,
                s.password_hash(Role::Viewer)?,
            ))
        })
        .await?;
    let (current, new, confirm) = (f.current, f.new, f.confirm);
    let other = match role {
        Role::Admin => viewer.clone(),
        Role::Viewer => admin.clone(),
    };
    // Argon2 is slow on purpose: off the async threads.
    let checked = tokio::task::spawn_blocking(move || {
        if !auth::verify_or_dummy(&current, admin.as_deref()) {
            return Err("The current admin password is wrong: nothing was changed.".to_string());
        }
        if new != confirm {
            return Err(format!(
                "Nothing was changed: {}.",
                auth::AuthError::Mismatch
            ));
        }
        auth::check_new_password(&new).map_err(|e| format!("Nothing was changed: {e}."))?;
        // One password per role: login tells the roles apart by the password alone.
        if other
            .as_deref()
            .is_some_and(|o| auth::verify_password(&new, o))
        {
            return Err(
                "Nothing was changed: the admin and the viewer password must differ.".to_string(),
            );
        }
        auth::hash_password(&new).map_err(|e| format!("Nothing was changed: {e}."))
    })
    .await
    .map_err(|e| AppError::internal(format!("password check failed: {e}")))?;
    let phc = match checked {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    let now = state.now();
    let ended_of_role = state.db(move |s| s.set_password(role, &phc, now)).await?;
    // This browser's own session was among them when it was of the changed role.
    let own = usize::from(auth.session.as_ref().is_some_and(|s| s.role == role));
    // Changing the admin password ended this browser's session with the others: it gets a new
    // one. Then every other session of either role ends.
    let (keep, cookie) = match (role, auth.session.clone()) {
        (Role::Admin, _) => {
            let cookie = session::start(state, Role::Admin, &auth.client, None).await?;
            let digest = token_of(&cookie)
                .map(|t| auth::token_digest(&t))
                .unwrap_or_default();
            (digest, Some(cookie))
        }
        (Role::Viewer, Some(s)) => (s.id_digest, None),
        (Role::Viewer, None) => (String::new(), None),
    };
    let ended = state.db(move |s| s.delete_other_sessions(&keep)).await?
        + ended_of_role.saturating_sub(own);
    Ok(Ok((role, ended, cookie)))
}

/// POST /settings/password (admin).
pub async fn set_password(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(f): Form<PasswordForm>,
) -> Result<Response, AppError> {
    let role_word = f.role.clone();
    let outcome = change(&state, &auth, f).await?;
    let (status, message, cookie) = match outcome {
        Ok((role, ended, cookie)) => {
            let what = match role {
                Role::Admin => "admin password changed",
                Role::Viewer => "viewer password set",
            };
            session::audit(
                &state,
                auth.actor(),
                &client,
                what,
                format!("{ended} other session(s) ended"),
            )
            .await;
            tracing::info!(
                role = role.as_str(),
                ended,
                "password changed from the settings page"
            );
            (
                StatusCode::OK,
                (
                    true,
                    format!(
                        "Saved: the {} password is changed. {ended} other login(s) ended; everyone logs in again with the new password.",
                        role.as_str()
                    ),
                ),
                cookie,
            )
        }
        Err(why) => {
            session::audit(
                &state,
                auth.actor(),
                &client,
                "password change refused",
                format!("{role_word}: {why}"),
            )
            .await;
            (StatusCode::UNPROCESSABLE_ENTITY, (false, why), None)
        }
    };
    // The page is rendered for the new session when there is one (its CSRF token).
    let auth = match &cookie {
        Some(c) => fresh_auth(&state, c, &auth).await?.unwrap_or(auth),
        None => auth,
    };
    let mut page = super::settings::page(State(state.clone()), Extension(auth)).await?;
    page.account = Some(message);
    let mut r = (status, page).into_response();
    if let Some(c) = cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// The session behind a freshly set cookie, as the guard would find it on the next request.
async fn fresh_auth(
    state: &AppState,
    cookie: &axum::http::HeaderValue,
    old: &Auth,
) -> Result<Option<Auth>, AppError> {
    let Some(token) = token_of(cookie) else {
        return Ok(None);
    };
    let digest = auth::token_digest(&token);
    let row = state.db(move |s| s.session(&digest)).await?;
    Ok(row.map(|s| Auth {
        role: s.role,
        session: Some(s),
        client: old.client.clone(),
    }))
}

/// The session token a `Set-Cookie` value carries (`NAME=TOKEN; Path=/; …`).
fn token_of(cookie: &axum::http::HeaderValue) -> Option<String> {
    cookie
        .to_str()
        .ok()
        .and_then(|c| c.split(';').next())
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
}
