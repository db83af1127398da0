//! GET and PATCH /api/v1/settings: the settings of [`crate::config::settings::SETTINGS`] for
//! scripts and Home Assistant, from and to the config file (see `web::settings` for the page).

use super::ApiError;
use super::extract::ApiJson;
use super::tokens::TokenUse;
use crate::config::settings::{self as cs, EditError, Kind};
use crate::web::AppState;
use crate::web::session::Auth;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One setting.
#[derive(Serialize, ToSchema)]
pub struct SettingView {
    pub key: &'static str,
    pub group: &'static str,
    pub label: &'static str,
    /// What it does, in one line.
    pub help: &'static str,
    /// `bool`, `integer`, `string`, `list` or `secret`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The allowed words, for a setting that is one of a few.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<&'static str>>,
    /// The value in the config file (null when unset; always null for a secret).
    pub value: Option<serde_json::Value>,
    /// Whether a value is set (for a secret, the only thing said about it).
    pub is_set: bool,
    /// The built-in default (null when unset by default).
    pub default: Option<serde_json::Value>,
    /// A change takes effect only after lanmeter restarts.
    pub needs_restart: bool,
    /// The file's value differs from the one running now (a restart is pending).
    pub restart_pending: bool,
    /// The environment variable that overrides the file for this key, if one is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SettingsView {
    /// The config file, or null when lanmeter runs on built-in defaults (nothing to change).
    pub file: Option<String>,
    pub settings: Vec<SettingView>,
}

/// One accepted change (secrets shown as "(set)" or "(not set)").
#[derive(Serialize, ToSchema)]
pub struct ChangeView {
    pub key: String,
    pub old: String,
    pub new: String,
    pub needs_restart: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SettingsChanged {
    /// The keys whose value changed (a value sent unchanged is not listed).
    pub changed: Vec<ChangeView>,
    /// Whether any change waits for a restart.
    pub restart_needed: bool,
}

/// A config file that cannot be read, parsed or written: said in words (the path and what to
/// do; no value from the file), since only the household can fix it.
fn file_error(e: EditError) -> ApiError {
    let code = match e {
        EditError::Unreadable { .. } => "config_invalid",
        EditError::Write { .. } => "config_not_writable",
        _ => "config_unreadable",
    };
    ApiError::new(StatusCode::CONFLICT, code, e.to_string())
}

fn json(v: toml::Value) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// GET /api/v1/settings (admin)
#[utoipa::path(
    get,
    path = "/api/v1/settings",
    tag = "settings",
    responses(
        (status = 200, description = "Every setting with its value, default and whether it needs a restart", body = SettingsView),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody),
        (status = 409, description = "The config file cannot be read or has an error (fix it by hand)", body = super::ErrorBody),
    )
)]
pub async fn get_settings(State(state): State<AppState>) -> Result<Json<SettingsView>, ApiError> {
    let running = match state.settings() {
        Some(ed) => (*ed.live().get()).clone(),
        None => state.config().clone(),
    };
    let (file, cfg) = match state.settings().cloned() {
        Some(ed) => {
            let path = ed.path().display().to_string();
            let read = tokio::task::spawn_blocking(move || ed.read())
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(file_error)?;
            (Some(path), read.1)
        }
        None => (None, running.clone()),
    };
    // Each configuration serialized once for all its keys.
    let (cfg, running) = (cs::Values::of(&cfg), cs::Values::of(&running));
    let defaults = cs::Values::of(&crate::config::Config::default());
    let settings = cs::SETTINGS
        .iter()
        .map(|s| {
            let v = cfg.get(s.key).cloned();
            SettingView {
                key: s.key,
                group: s.group,
                label: s.label,
                help: s.help,
                kind: s.kind.name(),
                choices: match s.kind {
                    Kind::Choice(c) => Some(c.to_vec()),
                    _ => None,
                },
                is_set: v.is_some(),
                value: if s.secret() { None } else { v.and_then(json) },
                default: if s.secret() {
                    None
                } else {
                    defaults.get(s.key).cloned().and_then(json)
                },
                needs_restart: !s.live,
                restart_pending: cfg.shown(s) != running.shown(s),
                overridden_by: cs::env_override(s.key),
            }
        })
        .collect();
    Ok(Json(SettingsView { file, settings }))
}

/// PATCH /api/v1/settings (admin)
#[utoipa::path(
    patch,
    path = "/api/v1/settings",
    tag = "settings",
    request_body(content = Object, content_type = "application/json",
        description = "The keys to change and their new values; null removes a key (back to its default). A secret is replaced by a string or cleared by null."),
    responses(
        (status = 200, description = "All changes were written to the config file", body = SettingsChanged),
        (status = 400, description = "The body is not a JSON object", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin, or a session without the CSRF header", body = super::ErrorBody),
        (status = 409, description = "The config file cannot be read, has an error, or cannot be written: nothing was changed", body = super::ErrorBody),
        (status = 413, description = "The body is too large", body = super::ErrorBody),
        (status = 415, description = "The body is not JSON", body = super::ErrorBody),
        (status = 422, description = "Nothing was changed: `errors` says per key what is wrong", body = super::ErrorBody),
    )
)]
pub async fn patch_settings(
    State(state): State<AppState>,
    auth: Option<Extension<Auth>>,
    token: Option<Extension<TokenUse>>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<SettingsChanged>, ApiError> {
    let mut changes = Vec::new();
    let mut errors = BTreeMap::new();
    for (k, v) in &body {
        match cs::from_json(v) {
            Ok(v) => changes.push((k.clone(), v)),
            Err(m) => {
                errors.insert(k.clone(), m);
            }
        }
    }
    let refused = |errors: BTreeMap<String, String>| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_settings",
            "Nothing was changed: see `errors` for what to fix per key.",
        )
        .with_errors(errors)
    };
    if !errors.is_empty() {
        return Err(refused(errors));
    }
    let actor = super::tokens::actor(auth.as_deref(), token.as_deref());
    let client = auth
        .as_ref()
        .map_or("unknown".to_string(), |a| a.client.clone());
    match crate::web::settings::apply(&state, &actor, &client, changes).await {
        Ok(done) => Ok(Json(SettingsChanged {
            restart_needed: done.iter().any(|c| c.restart),
            changed: done
                .into_iter()
                .map(|c| ChangeView {
                    key: c.key,
                    old: c.old,
                    new: c.new,
                    needs_restart: c.restart,
                })
                .collect(),
        })),
        Err(EditError::Refused(errors)) => Err(refused(errors)),
        Err(e) => Err(file_error(e)),
    }
}

/// Which channel to try.
#[derive(Clone, Copy, Debug, serde::Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestChannel {
    Email,
    Webhook,
    Ntfy,
    Gotify,
    Telegram,
    Pushover,
    Discord,
    Homeassistant,
}

impl TestChannel {
    pub fn name(self) -> &'static str {
        match self {
            TestChannel::Email => "email",
            TestChannel::Webhook => "webhook",
            TestChannel::Ntfy => "ntfy",
            TestChannel::Gotify => "gotify",
            TestChannel::Telegram => "telegram",
            TestChannel::Pushover => "pushover",
            TestChannel::Discord => "discord",
            TestChannel::Homeassistant => "homeassistant",
        }
    }
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    pub channel: TestChannel,
}

/// What happened, in words for a person.
#[derive(Serialize, ToSchema)]
pub struct TestOutcome {
    pub channel: TestChannel,
    /// The server (mail server, webhook receiver) accepted the message.
    pub sent: bool,
    /// What happened, or what to change: the mail server's answer in plain words.
    pub message: String,
}

/// POST /api/v1/settings/test-notification (admin)
#[utoipa::path(
    post,
    path = "/api/v1/settings/test-notification",
    tag = "settings",
    request_body(content = TestRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The test was tried with the config file's settings; `sent` says whether it was accepted", body = TestOutcome),
        (status = 400, description = "The body is not a known channel", body = super::ErrorBody),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin, or a session without the CSRF header", body = super::ErrorBody),
        (status = 413, description = "The body is too large", body = super::ErrorBody),
        (status = 415, description = "The body is not JSON", body = super::ErrorBody),
    )
)]
pub async fn test_notification(
    State(state): State<AppState>,
    auth: Option<Extension<Auth>>,
    token: Option<Extension<TokenUse>>,
    ApiJson(req): ApiJson<TestRequest>,
) -> Result<Json<TestOutcome>, ApiError> {
    // The file's settings, so a channel set up a moment ago can be tried before a restart.
    let cfg = crate::web::settings::file_config(&state).await;
    let (sent, message) = match req.channel {
        TestChannel::Email => crate::web::notify::send_test_email(&cfg, state.now()).await,
        TestChannel::Webhook => crate::web::notify::send_test_webhook(&cfg).await?,
        push => crate::web::notify::send_test_push(&cfg, push.name()).await?,
    };
    let actor = super::tokens::actor(auth.as_deref(), token.as_deref());
    let client = auth
        .as_ref()
        .map_or("unknown".to_string(), |a| a.client.clone());
    let action = format!("test {}", req.channel.name());
    crate::web::session::audit(&state, &actor, &client, &action, message.clone()).await;
    Ok(Json(TestOutcome {
        channel: req.channel,
        sent,
        message,
    }))
}
