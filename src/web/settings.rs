//! GET /settings and POST /settings: every setting of [`crate::config::settings::SETTINGS`]
//! with its value in the config file, its default and what it does. Admins change them here
//! (the file is rewritten in place, comments kept); viewers see the same page without inputs.
//! The page reads the file at every request, so a hand edit shows at the next load.

use super::AppState;
use super::error::AppError;
use super::session::{Auth, Client, Layout};
use crate::config::Config;
use crate::config::settings::{self as cs, Change, Changed, EditError, Kind, Setting};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

/// One field as the page shows it.
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    /// `bool`, `number`, `text`, `list`, `choice` or `secret`: the form control.
    pub control: &'static str,
    /// The value in the form (or as typed, after a refused save).
    pub value: String,
    pub choices: &'static [&'static str],
    /// The built-in default in words.
    pub default: String,
    pub error: Option<String>,
    /// A change takes effect at the next start only.
    pub restart: bool,
    /// The file's value is not yet the running one (a restart is pending).
    pub pending: bool,
    /// An environment variable overrides the file for this key.
    pub env: Option<String>,
}

impl Field {
    pub fn checked(&self) -> bool {
        self.value == "true"
    }

    pub fn selected(&self, choice: &str) -> bool {
        self.value == choice
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    /// The config file shown, or `None` when lanmeter runs on built-in defaults.
    pub file: Option<String>,
    pub groups: Vec<(&'static str, Vec<Field>)>,
    /// After a save: what changed, and whether any of it waits for a restart.
    pub saved: Option<(usize, bool)>,
    pub error: Option<String>,
    /// After a test message: whether it was accepted, and what happened in words.
    pub tested: Option<(bool, String)>,
}

/// A TOML value as the form shows it: strings bare, lists one item per line.
fn form_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

fn control(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "bool",
        Kind::Int | Kind::OptInt => "number",
        Kind::Text | Kind::OptText => "text",
        Kind::List => "list",
        Kind::Choice(_) => "choice",
        Kind::Secret => "secret",
    }
}

fn default_text(s: &Setting) -> String {
    match (s.kind, cs::default_value(s.key)) {
        (Kind::Bool, Some(toml::Value::Boolean(b))) => if b { "on" } else { "off" }.into(),
        (Kind::List, Some(toml::Value::Array(a))) if a.is_empty() => "none".into(),
        (_, Some(v)) => form_text(&v),
        (_, None) => "not set".into(),
    }
}

/// The fields with the file's values (`file`), compared with the running ones (`running`).
fn fields(
    file: &Config,
    running: &Config,
    typed: Option<&BTreeMap<String, String>>,
    errors: &BTreeMap<String, String>,
) -> Vec<(&'static str, Vec<Field>)> {
    cs::GROUPS
        .iter()
        .map(|g| {
            let fs = cs::SETTINGS
                .iter()
                .filter(|s| s.group == *g)
                .map(|s| {
                    let now = cs::value(file, s.key);
                    let value = match (typed.and_then(|t| t.get(s.key)), s.kind) {
                        (_, Kind::Secret) => {
                            if now.is_some() { "set" } else { "not set" }.to_string()
                        }
                        (Some(t), _) => t.clone(),
                        (None, _) => now.as_ref().map(form_text).unwrap_or_default(),
                    };
                    let pending = cs::shown(s, file) != cs::shown(s, running);
                    Field {
                        key: s.key,
                        label: s.label,
                        help: s.help,
                        control: control(s.kind),
                        value,
                        choices: match s.kind {
                            Kind::Choice(c) => c,
                            _ => &[],
                        },
                        default: default_text(s),
                        error: errors.get(s.key).cloned(),
                        restart: !s.live,
                        pending,
                        env: cs::env_override(s.key),
                    }
                })
                .collect();
            (*g, fs)
        })
        .collect()
}

/// The running configuration: the live one where the daemon keeps it, else the start-up one.
fn running(state: &AppState) -> Config {
    match state.settings() {
        Some(ed) => (*ed.live().get()).clone(),
        None => state.config().clone(),
    }
}

/// The configuration as the file says now (a test message tries settings just saved), or the
/// running one when there is no file or it cannot be read.
pub async fn file_config(state: &AppState) -> Config {
    match read_file(state).await {
        Ok(Some((_, c))) => c,
        _ => state.config().clone(),
    }
}

async fn read_file(state: &AppState) -> Result<Option<(String, Config)>, EditError> {
    let Some(ed) = state.settings().cloned() else {
        return Ok(None);
    };
    let path = ed.path().display().to_string();
    let read = tokio::task::spawn_blocking(move || ed.read().map(|(_, c)| c))
        .await
        .map_err(|e| EditError::Read {
            path: path.clone().into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    read.map(|c| Some((path, c)))
}

async fn render(
    state: &AppState,
    auth: &Auth,
    typed: Option<&BTreeMap<String, String>>,
    errors: &BTreeMap<String, String>,
) -> Result<SettingsPage, AppError> {
    let run = running(state);
    // A file broken by hand is shown with the running values and the reason, not an error page.
    let (file, cfg, error) = match read_file(state).await {
        Ok(Some((p, c))) => (Some(p), c, None),
        Ok(None) => (None, run.clone(), None),
        Err(e) => (
            state.settings().map(|ed| ed.path().display().to_string()),
            run.clone(),
            Some(e.to_string()),
        ),
    };
    Ok(SettingsPage {
        layout: Layout::new("Settings", "settings", Some(auth)),
        file,
        groups: fields(&cfg, &run, typed, errors),
        saved: None,
        error,
        tested: None,
    })
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<SettingsPage, AppError> {
    render(&state, &auth, None, &BTreeMap::new()).await
}

/// Applies `changes` to the config file and audits them (old → new, secrets masked).
pub async fn apply(
    state: &AppState,
    actor: &str,
    client: &str,
    changes: Vec<Change>,
) -> Result<Vec<Changed>, EditError> {
    let Some(ed) = state.settings().cloned() else {
        return Err(EditError::Refused(BTreeMap::from([(
            "file".to_string(),
            "lanmeter runs without a config file: start it with --config FILE to edit settings here"
                .to_string(),
        )])));
    };
    let done = tokio::task::spawn_blocking(move || ed.apply(&changes))
        .await
        .map_err(|e| EditError::Write {
            path: Default::default(),
            source: std::io::Error::other(e.to_string()),
        })??;
    if !done.is_empty() {
        let detail = done
            .iter()
            .map(|c| format!("{}: {} → {}", c.key, c.old, c.new))
            .collect::<Vec<_>>()
            .join("; ");
        super::session::audit(state, actor, client, "settings changed", detail).await;
    }
    Ok(done)
}

/// POST /settings (admin): the whole form; only fields whose value differs from the file's
/// are written, so an untouched field never turns a default into an explicit key.
pub async fn save(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    // A checkbox sends a hidden "false" and, when ticked, "true" after it: the last one counts.
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form {
        typed.insert(k, v);
    }
    let file_cfg = match read_file(&state).await {
        Ok(Some((_, c))) => c,
        _ => running(&state),
    };
    let mut changes: Vec<Change> = Vec::new();
    let mut errors = BTreeMap::new();
    for s in cs::SETTINGS {
        if s.kind == Kind::Secret {
            if typed
                .get(&format!("{}__clear", s.key))
                .is_some_and(|v| v == "true")
            {
                if cs::value(&file_cfg, s.key).is_some() {
                    changes.push((s.key.to_string(), None));
                }
            } else if let Some(v) = typed.get(s.key).filter(|v| !v.is_empty()) {
                changes.push((s.key.to_string(), Some(v.as_str().into())));
            }
            continue;
        }
        let Some(raw) = typed.get(s.key) else {
            continue;
        };
        match cs::from_form(s, raw) {
            Ok(new) => {
                let as_toml = new
                    .as_ref()
                    .and_then(|v| v.to_string().trim().parse::<toml::Value>().ok());
                if as_toml != cs::value(&file_cfg, s.key) {
                    changes.push((s.key.to_string(), new));
                }
            }
            Err(msg) => {
                errors.insert(s.key.to_string(), msg);
            }
        }
    }
    let result = if errors.is_empty() {
        apply(&state, auth.actor(), &client, changes).await
    } else {
        Err(EditError::Refused(errors))
    };
    match result {
        Ok(done) => {
            let mut page = render(&state, &auth, None, &BTreeMap::new()).await?;
            page.saved = Some((done.len(), done.iter().any(|c| c.restart)));
            Ok(page.into_response())
        }
        Err(EditError::Refused(errors)) => {
            let mut page = render(&state, &auth, Some(&typed), &errors).await?;
            let labels: Vec<&str> = errors
                .keys()
                .map(|k| cs::setting(k).map_or(k.as_str(), |s| s.label))
                .collect();
            page.error = Some(format!(
                "Nothing was saved. Please fix: {} (marked below).",
                labels.join(", ")
            ));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => {
            let mut page = render(&state, &auth, Some(&typed), &BTreeMap::new()).await?;
            page.error = Some(e.to_string());
            // The file cannot be read, parsed or written: the household fixes it, not the server.
            Ok((StatusCode::CONFLICT, page).into_response())
        }
    }
}

#[derive(serde::Deserialize)]
pub struct TestForm {
    channel: String,
}

/// POST /settings/test (admin): sends a test e-mail or webhook with the file's settings (so a
/// channel just saved can be tried before a restart) and shows what happened.
pub async fn test(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<TestForm>,
) -> Result<Response, AppError> {
    let cfg = file_config(&state).await;
    let (action, result) = match form.channel.as_str() {
        "email" => (
            "test email",
            super::alerts::send_test_email(&cfg, state.now()).await,
        ),
        "webhook" => (
            "test webhook",
            super::alerts::send_test_webhook(&cfg).await?,
        ),
        _ => return Err(AppError::BadRequest("unknown channel".into())),
    };
    super::session::audit(&state, auth.actor(), &client, action, result.1.clone()).await;
    let mut page = render(&state, &auth, None, &BTreeMap::new()).await?;
    page.tested = Some(result);
    Ok(page.into_response())
}
