//! Webhooks: one JSON POST per message, in the shape the receiver expects (ntfy, Gotify, Home
//! Assistant, or a generic one), with an optional bearer token. The only HTTP client user.
//!
//! It builds bodies (pure) and sends one request; it never retries (the outbox does) and never
//! logs the token.

use super::Severity;
use crate::config::WebhookFormat;
use serde_json::{Value, json};
use std::time::Duration;

/// What a webhook message says, whatever its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook<'a> {
    pub kind: &'a str,
    pub title: &'a str,
    pub message: &'a str,
    pub severity: Severity,
    pub alert_ids: &'a [i64],
    pub rule: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub facts: &'a [(String, String)],
    /// Where to look in the dashboard.
    pub url: &'a str,
    pub ack_url: Option<&'a str>,
}

/// The URL to POST to and the body, in `format`'s shape for `url` as configured.
pub fn body(format: WebhookFormat, url: &str, h: &Hook<'_>) -> (String, Value) {
    let facts: serde_json::Map<String, Value> = h
        .facts
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    match format {
        WebhookFormat::Generic | WebhookFormat::Homeassistant => (
            url.to_string(),
            json!({
                "source": "lanmeter",
                "kind": h.kind,
                "title": h.title,
                "message": h.message,
                "severity": h.severity.as_str(),
                "alert_ids": h.alert_ids,
                "rule": h.rule,
                "subject": h.subject,
                "facts": facts,
                "url": h.url,
                "ack_url": h.ack_url,
            }),
        ),
        WebhookFormat::Ntfy => {
            // ntfy's JSON publishing posts to the server root with the topic in the body.
            let trimmed = url.trim_end_matches('/');
            let (root, topic) = trimmed.rsplit_once('/').unwrap_or((trimmed, "lanmeter"));
            let priority = match h.severity {
                Severity::Info => 3,
                Severity::Warning => 4,
                Severity::Critical => 5,
            };
            let mut actions = vec![json!({"action": "view", "label": "Open", "url": h.url})];
            if let Some(a) = h.ack_url {
                actions.push(json!({"action": "view", "label": "Acknowledge", "url": a}));
            }
            (
                format!("{root}/"),
                json!({
                    "topic": topic,
                    "title": h.title,
                    "message": h.message,
                    "priority": priority,
                    "tags": [h.severity.as_str(), "lanmeter"],
                    "click": h.url,
                    "actions": actions,
                }),
            )
        }
        WebhookFormat::Gotify => {
            let priority = match h.severity {
                Severity::Info => 4,
                Severity::Warning => 6,
                Severity::Critical => 9,
            };
            (
                format!("{}/message", url.trim_end_matches('/')),
                json!({
                    "title": h.title,
                    "message": h.message,
                    "priority": priority,
                    "extras": {"client::notification": {"click": {"url": h.url}}},
                }),
            )
        }
    }
}

/// Why a webhook POST failed, in words for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    /// The receiver refused the request itself (a 4xx other than 408 and 429: a wrong token,
    /// URL or body): sending the same request again would be refused again, so the outbox
    /// stops retrying and shows the error until someone fixes the setting and presses Retry.
    pub permanent: bool,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Whether an HTTP status from the receiver means "never with this request" rather than "not now".
fn refused_for_good(code: u16) -> bool {
    (400..500).contains(&code) && code != 408 && code != 429
}

/// POSTs `body` to `url`; the error says what went wrong in words for the dashboard. A receiver
/// that has not answered within `timeout` fails the attempt (the outbox retries it later).
/// `idempotency_key` is the same on every attempt of one message, so a receiver can drop the
/// copy the outbox sends again when it was stopped between the receiver's answer and recording
/// it (delivery is at least once).
pub fn send(
    url: &str,
    token: Option<&str>,
    body: &str,
    timeout: Duration,
    idempotency_key: Option<&str>,
) -> Result<(), SendError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(true)
        .build()
        .into();
    let mut req = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("lanmeter/", env!("LANMETER_VERSION")));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let (message, code) = match req.send(body) {
        Ok(_) => return Ok(()),
        Err(ureq::Error::StatusCode(code @ (401 | 403))) => (
            format!(
                "the webhook answered HTTP {code}: check webhook_token (sent as a bearer token)"
            ),
            Some(code),
        ),
        Err(ureq::Error::StatusCode(404)) => (
            "the webhook answered HTTP 404: check webhook_url (the topic, webhook id or path)"
                .into(),
            Some(404),
        ),
        Err(ureq::Error::StatusCode(code)) => {
            (format!("the webhook answered HTTP {code}"), Some(code))
        }
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => (
            format!(
                "nothing accepts connections at {url}: check webhook_url and that the receiver runs"
            ),
            None,
        ),
        Err(ureq::Error::Timeout(_)) => (
            format!(
                "the webhook at {url} did not answer within {} s: check that the receiver runs and is not overloaded",
                timeout.as_secs()
            ),
            None,
        ),
        Err(e) => (format!("the webhook request failed: {e}"), None),
    };
    Err(SendError {
        message,
        permanent: code.is_some_and(refused_for_good),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Hook<'static> {
        Hook {
            kind: "alert",
            title: "New device",
            message: "joined",
            severity: Severity::Warning,
            alert_ids: &[7],
            rule: Some("new_device"),
            subject: Some("device:3"),
            facts: &[],
            url: "http://lm:8080/alerts",
            ack_url: None,
        }
    }

    #[test]
    fn shapes_follow_each_receiver() {
        let (u, b) = body(WebhookFormat::Ntfy, "https://ntfy.sh/home-alerts", &hook());
        assert_eq!(u, "https://ntfy.sh/");
        assert_eq!(
            (b["topic"].as_str(), b["priority"].as_i64()),
            (Some("home-alerts"), Some(4))
        );
        let (u, b) = body(WebhookFormat::Gotify, "https://gotify.example/", &hook());
        assert_eq!(u, "https://gotify.example/message");
        assert_eq!(b["priority"], 6);
        let (u, b) = body(WebhookFormat::Generic, "http://x/hook", &hook());
        assert_eq!(u, "http://x/hook");
        assert_eq!(b["alert_ids"][0], 7);
        assert_eq!(b["rule"], "new_device");
    }

    #[test]
    fn only_a_refusal_of_the_request_itself_stops_retries() {
        for code in [400, 401, 403, 404, 410, 413, 422] {
            assert!(refused_for_good(code), "{code}");
        }
        // Timeouts, rate limits and server trouble pass: the same request can succeed later.
        for code in [408, 429, 500, 502, 503, 504, 302] {
            assert!(!refused_for_good(code), "{code}");
        }
    }
}
