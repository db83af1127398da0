//! Webhooks: one JSON POST per message, in the shape the receiver expects (ntfy, Gotify, Home
//! Assistant, or a generic one), with an optional bearer token. The only HTTP client user.
//!
//! It builds bodies (pure) and sends one request; it never retries (the outbox does) and never
//! logs the token. A webhook URL's path and query are a credential too (a Home Assistant webhook
//! id, an ntfy topic): every error it returns names the receiver only as [`redact`]ed
//! `scheme://host:port/…`, because errors reach the outbox table viewers see, the audit log and
//! the journal.

use super::Severity;
use crate::config::WebhookFormat;
use crate::visible::visible;
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
/// The texts a person reads (title, message, facts) follow the display rule of
/// [`crate::visible`]: receivers show them as notifications, where a device's bidi override
/// would spoof another device's name just as on a page.
pub fn body(format: WebhookFormat, url: &str, h: &Hook<'_>) -> (String, Value) {
    let facts: serde_json::Map<String, Value> = h
        .facts
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(visible(v))))
        .collect();
    let (title, message) = (visible(h.title), visible(h.message));
    let h = &Hook {
        title: &title,
        message: &message,
        ..h.clone()
    };
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

/// `url` reduced to `scheme://host:port/…`: enough to tell which receiver is meant, nothing of
/// the user info, path or query (where receivers put their secrets). The port is spelled out
/// even when it is the scheme's default, so two receivers on one host stay apart.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let scheme = scheme.to_ascii_lowercase();
    // A port is what follows the last ':' unless that ':' is inside an IPv6 literal.
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(h, p)| !p.is_empty() && !h.ends_with(':') && !p.contains(']'));
    let port = match (has_port, scheme.as_str()) {
        (true, _) => "",
        (false, "https") => ":443",
        (false, _) => ":80",
    };
    format!("{scheme}://{host_port}{port}/…")
}

/// `text` with the secret parts of `url` (the whole URL, its path and query, any user info)
/// replaced by the [`redact`]ed form: for messages a library wrote that may quote the URL.
pub fn scrub(text: &str, url: &str) -> String {
    let shown = redact(url);
    let mut out = text.replace(url, &shown);
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, secret) = rest.split_at(authority_len);
    // The path alone ("/api/webhook/ID") is as secret as the whole URL; a bare "/" is not.
    if secret.len() > 1 {
        out = out.replace(secret, "/…");
    }
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && !userinfo.is_empty()
    {
        out = out.replace(userinfo, "…");
    }
    out
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
    let shown = redact(url);
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
                "nothing accepts connections at {shown}: check webhook_url and that the receiver runs"
            ),
            None,
        ),
        Err(ureq::Error::Timeout(_)) => (
            format!(
                "the webhook at {shown} did not answer within {} s: check that the receiver runs and is not overloaded",
                timeout.as_secs()
            ),
            None,
        ),
        // ureq's own words may quote the URL (a bad URI, a redirect): scrubbed like ours.
        Err(e) => (
            format!(
                "the webhook request to {shown} failed: {}",
                scrub(&e.to_string(), url)
            ),
            None,
        ),
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
    fn texts_a_person_reads_follow_the_display_rule() {
        let facts = [("Host name".to_string(), "evil\u{202e}gpj.exe".to_string())];
        let h = Hook {
            title: "New device: evil\u{202e}gpj.exe",
            message: "evil\u{200b} joined",
            facts: &facts,
            ..hook()
        };
        for f in [
            WebhookFormat::Generic,
            WebhookFormat::Ntfy,
            WebhookFormat::Gotify,
        ] {
            let (_, b) = body(f, "http://x/hook", &h);
            let s = b.to_string();
            assert!(
                !s.contains('\u{202e}') && !s.contains('\u{200b}'),
                "{f:?}: {s}"
            );
            assert!(s.contains("evil\\\\u{202e}gpj.exe"), "{f:?}: {s}");
        }
    }

    #[test]
    fn redacted_urls_keep_scheme_host_and_port_only() {
        let ha = "http://homeassistant.local:8123/api/webhook/s3cr3t-id?x=1";
        assert_eq!(redact(ha), "http://homeassistant.local:8123/…");
        assert_eq!(redact("https://ntfy.sh/my-topic"), "https://ntfy.sh:443/…");
        assert_eq!(redact("http://user:pw@10.0.0.2/x"), "http://10.0.0.2:80/…");
        assert_eq!(redact("http://[fd00::1]:9000/h"), "http://[fd00::1]:9000/…");
        assert_eq!(redact("http://[fd00::1]/h"), "http://[fd00::1]:80/…");
        let said = format!("error: {ha} and again /api/webhook/s3cr3t-id?x=1 then user:pw");
        let s = scrub(&said, ha);
        assert!(!s.contains("s3cr3t"), "{s}");
        assert!(s.contains("http://homeassistant.local:8123/…"), "{s}");
        assert!(!scrub("at user:pw@h", "http://user:pw@h/p").contains("pw"));
    }

    #[test]
    fn errors_never_quote_the_path() {
        // Nothing listens on the port: connection refused names the receiver redacted.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/api/webhook/s3cr3t-id");
        let e = send(&url, None, "{}", Duration::from_secs(2), None).unwrap_err();
        assert!(!e.message.contains("s3cr3t"), "{}", e.message);
        assert!(
            e.message.contains(&format!("127.0.0.1:{port}/…")),
            "{}",
            e.message
        );
        let e = send(
            "http://127.0.0.1:1/a b/s3cr3t",
            None,
            "{}",
            Duration::from_secs(2),
            None,
        )
        .unwrap_err();
        assert!(!e.message.contains("s3cr3t"), "{}", e.message);
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
