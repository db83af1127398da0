//! The "send a test" of every notification channel, shared by the alerts page, the settings page
//! and the settings API: one real message through the same code path as an alert, and what
//! happened in words for the person who pressed the button. Pages call in here; this file
//! imports no page.

use super::error::AppError;
use crate::alerts::{mail::Mailer, push, render, webhook};

/// Sends one test e-mail through the real SMTP path with `cfg` and says what happened, in
/// words for the person who pressed the button: (sent, what happened).
pub async fn send_test_email(cfg: &crate::config::Config, now: i64) -> (bool, String) {
    match Mailer::from_config(cfg) {
        Ok(None) => (
            false,
            "Email is off: set the mail server (smtp_host) and at least one recipient (mail_to) in Settings."
                .to_string(),
        ),
        Err(e) => (false, e.to_string()),
        Ok(Some(m)) => {
            let dashboard = render::dashboard_url(cfg);
            let text = format!(
                "This is a test message from lanmeter.\n\nIf you can read this, email alerts work.\nDashboard: {dashboard}\n"
            );
            let id = format!("<test-{now}@lanmeter>");
            match m.send("Test message", &text, None, &id).await {
                Ok(()) => (
                    true,
                    format!(
                        "Sent: the mail server accepted it. Check the inbox of {}.",
                        cfg.mail_to.join(", ")
                    ),
                ),
                Err(e) => (false, e.to_string()),
            }
        }
    }
}

/// Sends one test webhook request with `cfg` and says what happened: (sent, what happened).
pub async fn send_test_webhook(cfg: &crate::config::Config) -> Result<(bool, String), AppError> {
    Ok(match &cfg.webhook_url {
        None => (
            false,
            "Webhooks are off: set the webhook URL (webhook_url) in Settings.".to_string(),
        ),
        Some(url) => {
            let dashboard = render::dashboard_url(cfg);
            let alerts_url = format!("{}/alerts", dashboard.trim_end_matches('/'));
            let (post_url, body) = webhook::body(
                cfg.webhook_format,
                url,
                &webhook::Hook {
                    kind: "test",
                    title: "lanmeter test message",
                    message: "If you can read this, webhook alerts work.",
                    severity: crate::alerts::Severity::Info,
                    alert_ids: &[],
                    rule: None,
                    subject: None,
                    facts: &[],
                    url: &alerts_url,
                    ack_url: None,
                },
            );
            let token = cfg.webhook_token.as_ref().map(|t| t.expose().to_string());
            let timeout = std::time::Duration::from_secs(cfg.delivery_timeout_secs);
            let sent = tokio::task::spawn_blocking(move || {
                webhook::send(
                    &post_url,
                    token.as_deref(),
                    &body.to_string(),
                    timeout,
                    None,
                )
            })
            .await
            .map_err(|e| AppError::internal(format!("webhook task failed: {e}")))?;
            match sent {
                Ok(()) => (true, "Sent: the receiver accepted it.".to_string()),
                Err(e) => (false, e.message),
            }
        }
    })
}

/// Sends one test push on `channel` (one of [`push::CHANNELS`]) with `cfg` and says what
/// happened: (sent, what happened).
pub async fn send_test_push(
    cfg: &crate::config::Config,
    channel: &'static str,
) -> Result<(bool, String), AppError> {
    let name = push::label(channel);
    let dashboard = render::dashboard_url(cfg);
    let note = push::Note {
        kind: "test".into(),
        title: "lanmeter test message".into(),
        message: format!("If you can read this, {name} alerts work."),
        severity: crate::alerts::Severity::Info,
        url: format!("{}/alerts", dashboard.trim_end_matches('/')),
    };
    let req = match push::request(channel, cfg, &note) {
        Ok(r) => r,
        Err(e) => return Ok((false, format!("Not sent: {e}."))),
    };
    let timeout = std::time::Duration::from_secs(cfg.delivery_timeout_secs);
    let sent = tokio::task::spawn_blocking(move || push::send(channel, &req, timeout))
        .await
        .map_err(|e| AppError::internal(format!("push task failed: {e}")))?;
    Ok(match sent {
        Ok(()) => (true, format!("Sent: {name} accepted the test message.")),
        Err(e) => (false, format!("Not sent: {}.", e.message)),
    })
}
