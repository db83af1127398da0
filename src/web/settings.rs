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
    /// Per group: its title, fields, and the channel its "save and send a test" button tries.
    pub groups: Vec<(&'static str, Vec<Field>, Option<&'static str>)>,
    /// After a save: what changed, and whether any of it waits for a restart.
    pub saved: Option<(usize, bool)>,
    pub error: Option<String>,
    /// After a test message: whether it was accepted, and what happened in words.
    pub tested: Option<(bool, String)>,
    pub presets: &'static [MailPreset],
    /// Whether a viewer password exists (the accounts part of the page).
    pub viewer_set: bool,
    /// After a password change: whether it was done, and what happened in words.
    pub account: Option<(bool, String)>,
    /// A service manager brings lanmeter back after it exits (so the page may offer a restart).
    pub can_restart: bool,
    /// After "Restart now": what happens, in words.
    pub restarting: Option<String>,
    /// After "Fill in" with a provider: the preset chosen (its fields are filled, not saved).
    pub preset: Option<&'static MailPreset>,
}

/// A mail provider's SMTP settings and where its users make an app password (the account's
/// own password is refused by these providers, or should not be stored on a Pi).
pub struct MailPreset {
    pub id: &'static str,
    pub name: &'static str,
    pub host: &'static str,
    pub port: u16,
    pub security: &'static str,
    /// Where to make the app password, in words a household can follow.
    pub app_password: &'static str,
}

/// The providers offered on the settings page; "other" fills nothing.
pub const MAIL_PRESETS: &[MailPreset] = &[
    MailPreset {
        id: "gmail",
        name: "Gmail",
        host: "smtp.gmail.com",
        port: 587,
        security: "starttls",
        app_password: "Turn on 2-Step Verification, then make an app password at myaccount.google.com/apppasswords. Login: your full Gmail address.",
    },
    MailPreset {
        id: "outlook",
        name: "Outlook.com / Hotmail",
        host: "smtp-mail.outlook.com",
        port: 587,
        security: "starttls",
        app_password: "Turn on two-step verification at account.microsoft.com → Security, then Advanced security options → App passwords → Create a new app password. Login: your full address. (Work or school Microsoft 365 accounts no longer take passwords here.)",
    },
    MailPreset {
        id: "icloud",
        name: "iCloud Mail",
        host: "smtp.mail.me.com",
        port: 587,
        security: "starttls",
        app_password: "At account.apple.com → Sign-In and Security → App-Specific Passwords, make one for lanmeter. Login: your full iCloud address.",
    },
    MailPreset {
        id: "yahoo",
        name: "Yahoo Mail",
        host: "smtp.mail.yahoo.com",
        port: 465,
        security: "tls",
        app_password: "At login.yahoo.com → Account security → Generate app password (or Manage app passwords). Login: your full Yahoo address.",
    },
    MailPreset {
        id: "fastmail",
        name: "Fastmail",
        host: "smtp.fastmail.com",
        port: 465,
        security: "tls",
        app_password: "In Fastmail: Settings → Privacy & Security → Manage app passwords and access → New app password, with SMTP access. Login: your Fastmail address.",
    },
    MailPreset {
        id: "gmx",
        name: "GMX",
        host: "mail.gmx.net",
        port: 587,
        security: "starttls",
        app_password: "In GMX: E-Mail → Settings → POP3 & IMAP → allow access via POP3 and IMAP (sending uses the same switch). With two-factor authentication on, make an app password under Security. Login: your GMX address.",
    },
    MailPreset {
        id: "webde",
        name: "WEB.DE",
        host: "smtp.web.de",
        port: 587,
        security: "starttls",
        app_password: "In WEB.DE: E-Mail → Settings → POP3/IMAP retrieval → allow access via POP3 and IMAP. With two-factor authentication on, make an app password under Security. Login: your WEB.DE address.",
    },
    MailPreset {
        id: "other",
        name: "Other provider",
        host: "",
        port: 0,
        security: "",
        app_password: "Your provider's help pages name its SMTP server (often smtp.provider) and whether it needs an app password; port 587 with starttls works for most.",
    },
];

/// A TOML value as the form shows it: strings bare, lists one item per line.
fn form_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            // Commas, not newlines: the display rule spells a newline out as `\u{000a}`, which
            // would come back from the form as part of the value (the form splits on both).
            .join(", "),
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

fn default_text(s: &Setting, defaults: &cs::Values) -> String {
    match (s.kind, defaults.get(s.key)) {
        (Kind::Bool, Some(toml::Value::Boolean(b))) => if *b { "on" } else { "off" }.into(),
        (Kind::List, Some(toml::Value::Array(a))) if a.is_empty() => "none".into(),
        (_, Some(v)) => form_text(v),
        (_, None) => "not set".into(),
    }
}

/// The fields with the file's values (`file`), compared with the running ones (`running`).
fn fields(
    file: &Config,
    running: &Config,
    typed: Option<&BTreeMap<String, String>>,
    errors: &BTreeMap<String, String>,
) -> Vec<(&'static str, Vec<Field>, Option<&'static str>)> {
    // Each configuration serialized once for all its keys.
    let (file, running) = (cs::Values::of(file), cs::Values::of(running));
    let defaults = cs::Values::of(&Config::default());
    cs::GROUPS
        .iter()
        .map(|g| {
            let fs = cs::SETTINGS
                .iter()
                .filter(|s| s.group == *g)
                .map(|s| {
                    let now = file.get(s.key);
                    let value = match (typed.and_then(|t| t.get(s.key)), s.kind) {
                        (_, Kind::Secret) => {
                            if now.is_some() { "set" } else { "not set" }.to_string()
                        }
                        (Some(t), _) => t.clone(),
                        (None, _) => now.map(form_text).unwrap_or_default(),
                    };
                    let pending = file.shown(s) != running.shown(s);
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
                        default: default_text(s, &defaults),
                        error: errors.get(s.key).cloned(),
                        restart: !s.live,
                        pending,
                        env: cs::env_override(s.key),
                    }
                })
                .collect();
            (*g, fs, test_channel(g))
        })
        .collect()
}

/// The notification channel a settings group sets up, for its test button.
pub(super) fn test_channel(group: &str) -> Option<&'static str> {
    Some(match group {
        "E-mail" => "email",
        "Phone push: ntfy" => "ntfy",
        "Phone push: Gotify" => "gotify",
        "Telegram" => "telegram",
        "Pushover" => "pushover",
        "Discord" => "discord",
        "Home Assistant webhook" => "homeassistant",
        "Webhook (any receiver)" => "webhook",
        _ => return None,
    })
}

/// The running configuration: the live one where the daemon keeps it, else the start-up one.
pub(super) fn running(state: &AppState) -> Config {
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
        presets: MAIL_PRESETS,
        preset: None,
        viewer_set: state
            .db(|s| s.password_hash(crate::auth::Role::Viewer))
            .await?
            .is_some(),
        account: None,
        can_restart: under_systemd(),
        restarting: None,
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
    match save_form(&state, &auth, &client, form).await? {
        Ok((page, _)) => Ok(page.into_response()),
        Err(refused) => Ok(refused),
    }
}

/// Saves the settings in `form`: the page after saving and the form as typed, or the response
/// that shows why nothing was saved.
async fn save_form(
    state: &AppState,
    auth: &Auth,
    client: &str,
    form: Vec<(String, String)>,
) -> Result<Result<(SettingsPage, BTreeMap<String, String>), Response>, AppError> {
    // A checkbox sends a hidden "false" and, when ticked, "true" after it: the last one counts.
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form {
        typed.insert(k, v);
    }
    let result = save_typed(state, auth.actor(), client, &typed).await;
    match result {
        Ok(done) => {
            let mut page = render(state, auth, None, &BTreeMap::new()).await?;
            page.saved = Some((done.len(), done.iter().any(|c| c.restart)));
            Ok(Ok((page, typed)))
        }
        Err(EditError::Refused(errors)) => {
            let mut page = render(state, auth, Some(&typed), &errors).await?;
            let labels: Vec<&str> = errors
                .keys()
                .map(|k| cs::setting(k).map_or(k.as_str(), |s| s.label))
                .collect();
            page.error = Some(format!(
                "Nothing was saved. Please fix: {} (marked below).",
                labels.join(", ")
            ));
            Ok(Err((StatusCode::UNPROCESSABLE_ENTITY, page).into_response()))
        }
        Err(e) => {
            let mut page = render(state, auth, Some(&typed), &BTreeMap::new()).await?;
            page.error = Some(e.to_string());
            // The file cannot be read, parsed or written: the household fixes it, not the server.
            Ok(Err((StatusCode::CONFLICT, page).into_response()))
        }
    }
}

/// Saves the settings of a submitted form (`typed`, one value per key): only fields whose value
/// differs from the file's are written, all or nothing, audited. The Settings page and the
/// first-run wizard save through here.
pub(super) async fn save_typed(
    state: &AppState,
    actor: &str,
    client: &str,
    typed: &BTreeMap<String, String>,
) -> Result<Vec<Changed>, EditError> {
    let file_cfg = match read_file(state).await {
        Ok(Some((_, c))) => c,
        _ => running(state),
    };
    let file_cfg = cs::Values::of(&file_cfg);
    let mut changes: Vec<Change> = Vec::new();
    let mut errors = BTreeMap::new();
    for s in cs::SETTINGS {
        if s.kind == Kind::Secret {
            if typed
                .get(&format!("{}__clear", s.key))
                .is_some_and(|v| v == "true")
            {
                if file_cfg.get(s.key).is_some() {
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
                if as_toml.as_ref() != file_cfg.get(s.key) {
                    changes.push((s.key.to_string(), new));
                }
            }
            Err(msg) => {
                errors.insert(s.key.to_string(), msg);
            }
        }
    }
    if errors.is_empty() {
        apply(state, actor, client, changes).await
    } else {
        Err(EditError::Refused(errors))
    }
}

/// Settings groups as the first-run wizard shows them.
pub(super) struct Groups {
    /// The groups asked for: title, fields, test channel.
    pub shown: Vec<(&'static str, Vec<Field>, Option<&'static str>)>,
    /// The file can be edited (lanmeter runs with one).
    pub editable: bool,
    /// A saved setting (of any group) waits for a restart to take effect.
    pub restart_pending: bool,
    /// A service manager brings lanmeter back after it exits (so a restart may be offered).
    pub can_restart: bool,
}

/// The settings groups titled `titles` as fields with the file's values (or as typed, with
/// their errors): for the first-run wizard.
pub(super) async fn groups(
    state: &AppState,
    titles: &[&str],
    typed: Option<&BTreeMap<String, String>>,
    errors: &BTreeMap<String, String>,
) -> Groups {
    let run = running(state);
    let (cfg, editable) = match read_file(state).await {
        Ok(Some((_, c))) => (c, true),
        Ok(None) => (run.clone(), false),
        Err(_) => (run.clone(), false),
    };
    let all = fields(&cfg, &run, typed, errors);
    let restart_pending = all
        .iter()
        .any(|(_, fields, _)| fields.iter().any(|f| f.pending));
    Groups {
        shown: all
            .into_iter()
            .filter(|(t, _, _)| titles.contains(t))
            .collect(),
        editable,
        restart_pending,
        can_restart: under_systemd(),
    }
}

/// Sends a test on `channel` with `cfg`: (sent, what happened), and the audit log's action.
pub(super) async fn send_test(
    state: &AppState,
    cfg: &Config,
    channel: &str,
) -> Result<(String, (bool, String)), AppError> {
    Ok(match channel {
        "email" => (
            "test email".into(),
            super::notify::send_test_email(cfg, state.now()).await,
        ),
        "webhook" => (
            "test webhook".into(),
            super::notify::send_test_webhook(cfg).await?,
        ),
        other => match crate::alerts::push::CHANNELS.iter().find(|c| **c == other) {
            Some(c) => (
                format!("test {c}"),
                super::notify::send_test_push(cfg, c).await?,
            ),
            None => return Err(AppError::BadRequest("unknown channel".into())),
        },
    })
}

/// POST /settings/test (admin): sends a test message on one channel with the file's settings
/// (so a channel just saved can be tried before a restart) and shows what happened. Sent from
/// the settings form itself ("Save and send a test"), it saves the form first.
pub async fn test(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let Some(channel) = form
        .iter()
        .rev()
        .find(|(k, _)| k == "channel")
        .map(|(_, v)| v.clone())
    else {
        return Err(AppError::BadRequest("no channel".into()));
    };
    let with_settings = form
        .iter()
        .any(|(k, _)| cs::setting(k).is_some() || k.ends_with("__clear"));
    let saved = if with_settings {
        match save_form(&state, &auth, &client, form).await? {
            Ok((page, _)) => page.saved,
            Err(refused) => return Ok(refused),
        }
    } else {
        None
    };
    let cfg = file_config(&state).await;
    let (action, result) = send_test(&state, &cfg, &channel).await?;
    super::session::audit(&state, auth.actor(), &client, &action, result.1.clone()).await;
    let mut page = render(&state, &auth, None, &BTreeMap::new()).await?;
    page.saved = saved;
    page.tested = Some(result);
    Ok(page.into_response())
}

/// POST /settings/preset (admin): fills the mail server, port and security of the provider
/// chosen in the form and says where to make its app password. Nothing is saved: the page
/// comes back with the form as typed plus the provider's values, for "Save".
pub async fn preset(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let mut typed: BTreeMap<String, String> = form.into_iter().collect();
    let p = apply_mail_preset(&mut typed)?;
    let mut page = render(&state, &auth, Some(&typed), &BTreeMap::new()).await?;
    page.preset = Some(p);
    Ok(page.into_response())
}

/// Fills the mail server, port and security of the provider chosen in `typed` ("other" fills
/// nothing) and returns the provider: the Settings page and the wizard's notification step.
pub(super) fn apply_mail_preset(
    typed: &mut BTreeMap<String, String>,
) -> Result<&'static MailPreset, AppError> {
    let Some(p) = typed
        .get("mail_preset")
        .and_then(|id| MAIL_PRESETS.iter().find(|p| p.id == id))
    else {
        return Err(AppError::BadRequest("unknown mail provider".into()));
    };
    if !p.host.is_empty() {
        typed.insert("smtp_host".into(), p.host.into());
        typed.insert("smtp_port".into(), p.port.to_string());
        typed.insert("smtp_security".into(), p.security.into());
    }
    Ok(p)
}

/// Whether systemd runs this process as a service (it sets `INVOCATION_ID` for each start): only
/// then does an exit come back, through the unit's `Restart=always`.
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some_and(|v| !v.is_empty())
}

impl SettingsPage {
    /// Whether a saved setting waits for a restart to take effect.
    pub fn restart_pending(&self) -> bool {
        self.groups
            .iter()
            .any(|(_, fields, _)| fields.iter().any(|f| f.pending))
    }
}

/// POST /settings/restart (admin): lanmeter stops the way `systemctl restart` would stop it (it
/// sends itself SIGTERM, so the counts in memory are flushed first) and systemd starts it again
/// (`Restart=always` in the unit). Refused when no service manager would bring it back.
pub async fn restart(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
) -> Result<Response, AppError> {
    let mut page = render(&state, &auth, None, &BTreeMap::new()).await?;
    if !under_systemd() {
        page.error = Some(
            "lanmeter does not run as a systemd service here, so nothing would start it again: restart it the way you started it."
                .into(),
        );
        return Ok((StatusCode::CONFLICT, page).into_response());
    }
    super::session::audit(
        &state,
        auth.actor(),
        &client,
        "restart",
        "from the settings page".into(),
    )
    .await;
    tracing::warn!(client = %client, "restart asked for from the settings page: stopping for systemd to start again");
    // After the answer has left: the page tells the person what happens before the server goes.
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGTERM)
        {
            tracing::error!(error = %e, "cannot stop for the restart");
        }
    });
    page.restarting = Some(
        "Restarting: lanmeter saves its counts, stops, and systemd starts it again within about 10 seconds. Reload this page then."
            .into(),
    );
    Ok(page.into_response())
}
