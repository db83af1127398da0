//! The alerts pages: GET /alerts (open and recent alerts, the outbox with every message's
//! state and error, channels with "send test", devices that should always be online, the rules'
//! settings); acknowledging from the dashboard (admins) or through a signed email link (no
//! login: the link is the permission, for that one alert, until it expires).
//!
//! Sending a test message calls `alerts::mail` / `alerts::webhook` directly, so the person sees
//! the exact result; every other message goes through the outbox. Handlers never send alerts.

use super::AppState;
use super::error::AppError;
use super::session::{self, Auth, Client, Layout};
use crate::alerts::{links, push, webhook};
use crate::store::alerts::{AlertRow, OutboxRow};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

const ALERTS_SHOWN: u32 = 100;
const OUTBOX_SHOWN: u32 = 50;

pub struct AlertView {
    pub id: i64,
    pub severity: String,
    pub stage: &'static str,
    pub title: String,
    pub body: String,
    pub facts: Vec<(String, String)>,
    pub links: Vec<(String, String)>,
    pub triggered: String,
    pub occurrences: i64,
    pub notify: String,
    pub open: bool,
    pub ackable: bool,
}

pub struct MessageView {
    pub id: i64,
    pub status: &'static str,
    pub channel: String,
    pub kind: String,
    pub subject: String,
    pub created: String,
    pub attempts: i64,
    pub next: String,
    pub error: String,
}

pub struct WatchView {
    pub id: i64,
    pub name: String,
    pub on: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/alerts.html")]
pub struct AlertsPage {
    pub layout: Layout,
    pub open: Vec<AlertView>,
    pub recent: Vec<AlertView>,
    pub outbox: Vec<MessageView>,
    pub watch: Vec<WatchView>,
    pub email: String,
    pub webhook: String,
    /// The phone push channels set up now (they take effect without a restart).
    pub push: String,
    pub rules: Vec<(String, String)>,
    pub result: Option<(bool, String)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/alerts_ack.html")]
pub struct AckPage {
    pub layout: Layout,
    pub token: String,
    pub pre: String,
    pub title: Option<String>,
    pub done: bool,
    pub error: Option<String>,
}

fn local(state: &AppState, secs: i64) -> String {
    let tz = state.config().time_zone();
    jiff::Timestamp::from_second(secs).map_or_else(
        |_| secs.to_string(),
        |t| t.to_zoned(tz).strftime("%Y-%m-%d %H:%M").to_string(),
    )
}

fn alert_view(state: &AppState, a: AlertRow) -> AlertView {
    AlertView {
        id: a.id,
        stage: a.stage(),
        open: a.resolved_at.is_none(),
        ackable: a.acked_at.is_none() && a.resolved_at.is_none(),
        severity: a.severity,
        title: a.title,
        body: a.body,
        facts: a.facts,
        links: a.links,
        triggered: local(state, a.triggered_at),
        occurrences: a.occurrences,
        notify: a.notify,
    }
}

fn message_view(state: &AppState, m: OutboxRow) -> MessageView {
    let status = m.status();
    // The webhook channel's subject is the URL it posts to: any error an older version stored
    // with that URL in it is scrubbed here too (a webhook id is a credential).
    let error = match (&m.last_error, m.channel.as_str()) {
        (Some(e), "webhook") => webhook::scrub(e, &m.subject),
        (e, _) => e.clone().unwrap_or_default(),
    };
    MessageView {
        id: m.id,
        status,
        subject: if m.channel == "webhook" {
            m.text_body.lines().next().unwrap_or("").to_string()
        } else {
            m.subject
        },
        channel: m.channel,
        kind: m.kind,
        created: local(state, m.created_at),
        attempts: m.attempts,
        next: match status {
            "waiting" | "retrying" => local(state, m.next_attempt_at),
            "delivered" => m.delivered_at.map(|t| local(state, t)).unwrap_or_default(),
            _ => m.failed_at.map(|t| local(state, t)).unwrap_or_default(),
        },
        error,
    }
}

async fn build(
    state: &AppState,
    auth: &Auth,
    result: Option<(bool, String)>,
) -> Result<AlertsPage, AppError> {
    let (alerts, outbox, devices, watched) = state
        .db(|s| {
            Ok((
                s.recent_alerts(ALERTS_SHOWN)?,
                s.outbox_recent(OUTBOX_SHOWN)?,
                s.list_devices()?,
                s.always_online_devices()?,
            ))
        })
        .await?;
    let (open, recent): (Vec<AlertRow>, Vec<AlertRow>) =
        alerts.into_iter().partition(|a| a.resolved_at.is_none());
    let cfg = state.config();
    let email = match &cfg.smtp_host {
        Some(h) => format!(
            "{h}:{} ({:?}), to {}",
            cfg.smtp_port
                .unwrap_or_else(|| cfg.smtp_security.default_port()),
            cfg.smtp_security,
            if cfg.mail_to.is_empty() {
                "nobody (set mail_to)".to_string()
            } else {
                cfg.mail_to.join(", ")
            }
        )
        .to_lowercase(),
        None => "off (set smtp_host and mail_to in the config file)".into(),
    };
    let webhook = cfg.webhook_url.as_deref().map_or_else(
        || "off (set webhook_url in the config file)".to_string(),
        |u| format!("{} ({:?})", webhook::redact(u), cfg.webhook_format).to_lowercase(),
    );
    let running = state.settings().map(|ed| ed.live().get());
    let live = running.as_deref().unwrap_or(cfg);
    let on: Vec<&str> = push::CHANNELS
        .into_iter()
        .filter(|c| push::missing(c, live).is_none())
        .map(push::label)
        .collect();
    let push = if on.is_empty() {
        "none set up (ntfy, Gotify, Telegram, Pushover, Discord, Home Assistant: see Settings)"
            .to_string()
    } else {
        on.join(", ")
    };
    let onoff = |b: bool| if b { "on" } else { "off" }.to_string();
    let rules = vec![
        ("New device".into(), onoff(cfg.alert_new_device)),
        (
            "Back after absence".into(),
            if cfg.alert_absence_days == 0 {
                "off".into()
            } else {
                format!("after {} days away", cfg.alert_absence_days)
            },
        ),
        (
            "Offline (watched devices)".into(),
            format!("after {} minutes", cfg.alert_offline_minutes),
        ),
        (
            "Unusual usage".into(),
            if cfg.alert_unusual_usage {
                format!(
                    "median + {}·MAD over {} weeks, at least {} MB/hour",
                    cfg.alert_unusual_k, cfg.alert_unusual_weeks, cfg.alert_unusual_min_mb
                )
            } else {
                "off".into()
            },
        ),
        ("Monitor health".into(), onoff(cfg.alert_health)),
        (
            "Cooldown".into(),
            format!("{} minutes", cfg.alert_cooldown_minutes),
        ),
        (
            "Delivery".into(),
            match (
                cfg.alert_digest,
                cfg.quiet_hours_from.zip(cfg.quiet_hours_to),
            ) {
                (true, _) => format!("daily digest at {}:00", cfg.alert_digest_hour),
                (false, Some((f, t))) => format!("instant, quiet {f}:00–{t}:00"),
                (false, None) => "instant".into(),
            },
        ),
    ];
    let watch = devices
        .iter()
        .filter(|d| !d.is_gateway && !d.mac.is_group())
        .map(|d| WatchView {
            id: d.id,
            name: d
                .display_name()
                .map_or_else(|| d.mac.to_string(), |n| format!("{n} ({})", d.mac)),
            on: watched.contains(&d.id),
        })
        .collect();
    Ok(AlertsPage {
        layout: Layout::new("Alerts", "alerts", Some(auth)),
        open: open.into_iter().map(|a| alert_view(state, a)).collect(),
        recent: recent.into_iter().map(|a| alert_view(state, a)).collect(),
        outbox: outbox.into_iter().map(|m| message_view(state, m)).collect(),
        watch,
        email,
        webhook,
        push,
        rules,
        result,
    })
}

/// GET /alerts
pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<AlertsPage, AppError> {
    build(&state, &auth, None).await
}

/// POST /alerts/{id}/ack (admins)
pub async fn ack(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let now = state.now();
    let actor = auth.actor();
    let done = state.db(move |s| s.ack_alert(id, now, actor)).await?;
    if done {
        session::audit(
            &state,
            actor,
            &auth.client,
            "alert acknowledged",
            format!("alert {id}"),
        )
        .await;
    }
    Ok(Redirect::to("/alerts").into_response())
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    t: String,
}

fn ack_page(token: String, pre: String) -> AckPage {
    AckPage {
        layout: Layout::new("Acknowledge alert", "alerts", None),
        token,
        pre,
        title: None,
        done: false,
        error: None,
    }
}

/// GET /alerts/ack?t=TOKEN (no login): shows the alert and a button; a GET never changes
/// anything, so mail scanners that open links cannot acknowledge by accident.
pub async fn ack_link_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Result<Response, AppError> {
    let (pre, set) = session::pre_token(&state, &headers)?;
    let mut p = ack_page(q.t.clone(), pre);
    let now = state.now();
    let secret = state.db(|s| s.link_secret()).await?;
    match links::verify(&secret, &q.t, now) {
        Ok(id) => {
            let a = state.db(move |s| s.alert(id)).await?;
            match a {
                Some(a) if a.acked_at.is_some() => {
                    p.title = Some(a.title);
                    p.done = true;
                }
                Some(a) => p.title = Some(a.title),
                None => p.error = Some("This alert no longer exists.".into()),
            }
        }
        Err(e) => p.error = Some(capitalise(&e.to_string())),
    }
    let mut r = p.into_response();
    if let Some(c) = set {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    t: String,
}

/// POST /alerts/ack (no login; the guard checks the pre-login CSRF cookie, the token is the
/// permission).
pub async fn ack_link_submit(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Result<Response, AppError> {
    let (pre, _) = session::pre_token(&state, &headers)?;
    let mut p = ack_page(f.t.clone(), pre);
    let now = state.now();
    let secret = state.db(|s| s.link_secret()).await?;
    match links::verify(&secret, &f.t, now) {
        Ok(id) => {
            let (first, a) = state
                .db(move |s| Ok((s.ack_alert(id, now, "email link")?, s.alert(id)?)))
                .await?;
            if first {
                session::audit(
                    &state,
                    "email link",
                    &client,
                    "alert acknowledged",
                    format!("alert {id}"),
                )
                .await;
            }
            p.title = a.map(|a| a.title);
            p.done = true;
        }
        Err(e) => p.error = Some(capitalise(&e.to_string())),
    }
    Ok(p.into_response())
}

/// POST /alerts/test-email (admins): sends one message now and shows exactly what happened.
pub async fn test_email(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<AlertsPage, AppError> {
    // The file's settings, so mail set up in Settings can be tried before a restart.
    let cfg = super::settings::file_config(&state).await;
    let result = super::notify::send_test_email(&cfg, state.now()).await;
    session::audit(
        &state,
        auth.actor(),
        &auth.client,
        "test email",
        result.1.clone(),
    )
    .await;
    build(&state, &auth, Some(result)).await
}

/// POST /alerts/test-webhook (admins)
pub async fn test_webhook(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<AlertsPage, AppError> {
    let cfg = super::settings::file_config(&state).await;
    let result = super::notify::send_test_webhook(&cfg).await?;
    session::audit(
        &state,
        auth.actor(),
        &auth.client,
        "test webhook",
        result.1.clone(),
    )
    .await;
    build(&state, &auth, Some(result)).await
}

#[derive(Deserialize)]
pub struct WatchForm {
    device: i64,
    #[serde(default)]
    on: Option<String>,
}

/// POST /alerts/watch (admins): marks a device as one that should always be online.
pub async fn watch(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<WatchForm>,
) -> Result<Response, AppError> {
    let on = f.on.is_some_and(|v| v == "1" || v == "on");
    let id = f.device;
    let found = state.db(move |s| s.set_always_online(id, on)).await?;
    if !found {
        return Err(AppError::BadRequest("There is no such device.".into()));
    }
    session::audit(
        &state,
        auth.actor(),
        &auth.client,
        "device watch",
        format!("device {id} always online: {on}"),
    )
    .await;
    Ok(Redirect::to("/alerts").into_response())
}

/// POST /alerts/outbox/{id}/retry (admins): gives a failed message another round.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let now = state.now();
    let expires = now + state.config().outbox_expire_hours as i64 * 3600;
    state.db(move |s| s.retry_message(id, now, expires)).await?;
    Ok(Redirect::to("/alerts").into_response())
}
