//! Phone push channels: ntfy, Gotify, Telegram, Pushover, Discord and a Home Assistant webhook,
//! each in the request shape its public documentation describes.
//!
//! The outbox keeps a channel-neutral [`Note`] (title, message, severity, link); the request is
//! built from the configuration at send time by [`request`] (pure, unit-tested per channel), so
//! no token or secret URL is ever written to the database, and a fixed setting applies to the
//! messages still waiting. [`send`] makes the one HTTP request; the outbox retries.

use super::Severity;
use super::webhook::{SendError, redact, scrub};
use crate::config::Config;
use crate::visible::visible;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// The push channels, in the order the settings page shows them.
pub const CHANNELS: [&str; 6] = [
    "ntfy",
    "gotify",
    "telegram",
    "pushover",
    "discord",
    "homeassistant",
];

/// What a push message says, whatever the channel: stored in the outbox as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// `alert`, `digest` or `test`.
    pub kind: String,
    pub title: String,
    pub message: String,
    pub severity: Severity,
    /// Where to look in the dashboard.
    pub url: String,
}

/// One HTTP POST, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The settings a channel still lacks, in words, or `None` when it can send.
pub fn missing(channel: &str, cfg: &Config) -> Option<&'static str> {
    match channel {
        "ntfy" if cfg.ntfy_url.is_none() => Some("set the topic URL (ntfy_url)"),
        "gotify" if cfg.gotify_url.is_none() || cfg.gotify_token.is_none() => {
            Some("set the server address and the application token (gotify_url, gotify_token)")
        }
        "telegram" if cfg.telegram_bot_token.is_none() || cfg.telegram_chat_id.is_none() => {
            Some("set the bot token and the chat id (telegram_bot_token, telegram_chat_id)")
        }
        "pushover" if cfg.pushover_token.is_none() || cfg.pushover_user.is_none() => {
            Some("set the application token and your user key (pushover_token, pushover_user)")
        }
        "discord" if cfg.discord_webhook_url.is_none() => {
            Some("set the channel's webhook URL (discord_webhook_url)")
        }
        "homeassistant" if cfg.homeassistant_webhook_url.is_none() => {
            Some("set the webhook trigger's URL (homeassistant_webhook_url)")
        }
        "ntfy" | "gotify" | "telegram" | "pushover" | "discord" | "homeassistant" => None,
        _ => Some("unknown channel"),
    }
}

/// The alert kinds `channel` is limited to (empty: every kind), including e-mail and webhook.
pub fn kinds<'a>(channel: &str, cfg: &'a Config) -> &'a [String] {
    match channel {
        "email" => &cfg.mail_alerts,
        "webhook" => &cfg.webhook_alerts,
        "ntfy" => &cfg.ntfy_alerts,
        "gotify" => &cfg.gotify_alerts,
        "telegram" => &cfg.telegram_alerts,
        "pushover" => &cfg.pushover_alerts,
        "discord" => &cfg.discord_alerts,
        "homeassistant" => &cfg.homeassistant_alerts,
        _ => &[],
    }
}

/// Whether a channel limited to `kinds` gets an alert of `rule` (`plan` covers `plan.threshold`).
pub fn wants(kinds: &[String], rule: &str) -> bool {
    kinds.is_empty()
        || kinds.iter().any(|k| {
            rule == k
                || rule
                    .strip_prefix(k.as_str())
                    .is_some_and(|r| r.starts_with('.'))
        })
}

/// A header value as ntfy reads it: ASCII as is, anything else as an RFC 2047 encoded word
/// (HTTP headers carry no UTF-8; ntfy decodes `=?UTF-8?B?…?=`).
fn header_text(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.is_ascii() {
        one_line
    } else {
        format!("=?UTF-8?B?{}?=", base64(one_line.as_bytes()))
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut (receivers refuse longer texts).
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// ntfy's priority for `note`: the configured word, or by severity for `auto`.
fn ntfy_priority(cfg: &Config, sev: Severity) -> u8 {
    match cfg.ntfy_priority.as_str() {
        "min" => 1,
        "low" => 2,
        "default" => 3,
        "high" => 4,
        "urgent" => 5,
        _ => match sev {
            Severity::Info => 3,
            Severity::Warning => 4,
            Severity::Critical => 5,
        },
    }
}

/// The request `channel` expects for `note` with `cfg`'s settings; the error names what to set.
/// Texts a person reads follow the display rule of [`crate::visible`], as on the pages.
pub fn request(channel: &str, cfg: &Config, note: &Note) -> Result<Request, String> {
    if let Some(m) = missing(channel, cfg) {
        return Err(format!("{channel} is not set up: {m}"));
    }
    let (title, message) = (visible(&note.title), visible(&note.message));
    let json = |url: String, headers: Vec<(&'static str, String)>, body: serde_json::Value| {
        Ok(Request {
            url,
            headers,
            content_type: "application/json",
            body: body.to_string(),
        })
    };
    let s = |o: &Option<crate::config::Secret>| {
        o.as_ref()
            .map(|x| x.expose().to_string())
            .unwrap_or_default()
    };
    match channel {
        // https://docs.ntfy.sh/publish/: POST to the topic URL, the message as the body, the
        // rest in headers.
        "ntfy" => {
            let mut headers = vec![
                ("Title", header_text(&title)),
                ("Priority", ntfy_priority(cfg, note.severity).to_string()),
                ("Tags", format!("{},lanmeter", note.severity.as_str())),
                ("Click", note.url.clone()),
            ];
            if let Some(t) = &cfg.ntfy_token {
                headers.push(("Authorization", format!("Bearer {}", t.expose())));
            }
            Ok(Request {
                url: cfg.ntfy_url.clone().unwrap_or_default(),
                headers,
                content_type: "text/plain; charset=utf-8",
                body: message,
            })
        }
        // Gotify's REST API: POST /message with the application token in X-Gotify-Key.
        "gotify" => {
            let priority = match note.severity {
                Severity::Info => 4,
                Severity::Warning => 6,
                Severity::Critical => 9,
            };
            json(
                format!(
                    "{}/message",
                    cfg.gotify_url
                        .as_deref()
                        .unwrap_or("")
                        .trim_end_matches('/')
                ),
                vec![("X-Gotify-Key", s(&cfg.gotify_token))],
                json!({
                    "title": title,
                    "message": message,
                    "priority": priority,
                    "extras": {"client::notification": {"click": {"url": note.url}}},
                }),
            )
        }
        // Bot API sendMessage: the token in the path, plain text (no parse mode, so nothing in a
        // device name is read as markup); at most 4096 characters.
        "telegram" => json(
            format!(
                "https://api.telegram.org/bot{}/sendMessage",
                s(&cfg.telegram_bot_token)
            ),
            Vec::new(),
            json!({
                "chat_id": cfg.telegram_chat_id,
                "text": cut(&format!("{title}\n\n{message}\n\n{}", note.url), 4096),
                "disable_web_page_preview": true,
            }),
        ),
        // Pushover's messages API: token, user, message (≤ 1024), title (≤ 250), priority
        // -2..=2 (2 needs retry/expire, so critical is 1: high priority, past quiet hours).
        "pushover" => json(
            "https://api.pushover.net/1/messages.json".into(),
            Vec::new(),
            json!({
                "token": s(&cfg.pushover_token),
                "user": s(&cfg.pushover_user),
                "title": cut(&title, 250),
                "message": cut(&message, 1024),
                "priority": match note.severity {
                    Severity::Info => 0,
                    Severity::Warning => 0,
                    Severity::Critical => 1,
                },
                "url": note.url,
                "url_title": "Open lanmeter",
            }),
        ),
        // Discord's Execute Webhook: content ≤ 2000 characters, or an embed (title ≤ 256,
        // description ≤ 4096); no mentions are parsed, so a device named @everyone pings no one.
        "discord" => json(
            s(&cfg.discord_webhook_url),
            Vec::new(),
            json!({
                "username": "lanmeter",
                "allowed_mentions": {"parse": []},
                "embeds": [{
                    "title": cut(&title, 256),
                    "description": cut(&message, 4096),
                    "url": note.url,
                    "color": match note.severity {
                        Severity::Info => 0x2e7d32,
                        Severity::Warning => 0xf9a825,
                        Severity::Critical => 0xc62828,
                    },
                }],
            }),
        ),
        // A Home Assistant webhook trigger takes any JSON; the automation reads trigger.json.
        "homeassistant" => json(
            s(&cfg.homeassistant_webhook_url),
            Vec::new(),
            json!({
                "source": "lanmeter",
                "kind": note.kind,
                "title": title,
                "message": message,
                "severity": note.severity.as_str(),
                "url": note.url,
            }),
        ),
        other => Err(format!("unknown channel {other}")),
    }
}

/// The channel's name for people.
pub fn label(channel: &str) -> &'static str {
    match channel {
        "ntfy" => "ntfy",
        "gotify" => "Gotify",
        "telegram" => "Telegram",
        "pushover" => "Pushover",
        "discord" => "Discord",
        "homeassistant" => "Home Assistant",
        "email" => "e-mail",
        "webhook" => "webhook",
        _ => "this channel",
    }
}

/// Sends `req` for `channel`; the error says what went wrong in words, naming the receiver only
/// [`redact`]ed (a Telegram URL holds the bot token, a Discord one the webhook's).
pub fn send(channel: &str, req: &Request, timeout: Duration) -> Result<(), SendError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(true)
        .build()
        .into();
    let mut r = agent
        .post(&req.url)
        .header("Content-Type", req.content_type)
        .header("User-Agent", concat!("lanmeter/", env!("LANMETER_VERSION")));
    for (n, v) in &req.headers {
        r = r.header(*n, v);
    }
    let name = label(channel);
    let shown = redact(&req.url);
    let (message, permanent) = match r.send(req.body.as_str()) {
        Ok(_) => return Ok(()),
        Err(ureq::Error::StatusCode(code @ (401 | 403))) => (
            format!(
                "{name} answered HTTP {code}: the token or key was refused; check it in Settings"
            ),
            true,
        ),
        Err(ureq::Error::StatusCode(404)) => (
            format!(
                "{name} answered HTTP 404: check the address (topic, webhook or chat) in Settings"
            ),
            true,
        ),
        Err(ureq::Error::StatusCode(code)) => (
            format!("{name} answered HTTP {code}"),
            (400..500).contains(&code) && code != 408 && code != 429,
        ),
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => (
            format!(
                "nothing accepts connections at {shown}: check the {name} address and that the server runs"
            ),
            false,
        ),
        Err(ureq::Error::Timeout(_)) => (
            format!(
                "{name} at {shown} did not answer within {} s",
                timeout.as_secs()
            ),
            false,
        ),
        Err(e) => (
            format!(
                "the {name} request to {shown} failed: {}",
                scrub(&e.to_string(), &req.url)
            ),
            false,
        ),
    };
    Err(SendError { message, permanent })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn note() -> Note {
        Note {
            kind: "alert".into(),
            title: "New device: Lisa's phone".into(),
            message: "It joined at 14:02.".into(),
            severity: Severity::Warning,
            url: "http://lm:8080/alerts".into(),
        }
    }

    fn body(r: &Request) -> serde_json::Value {
        serde_json::from_str(&r.body).unwrap()
    }

    #[test]
    fn ntfy_posts_the_message_to_the_topic_with_headers() {
        let mut cfg = Config {
            ntfy_url: Some("https://ntfy.example/home-alerts".into()),
            ..Config::default()
        };
        let r = request("ntfy", &cfg, &note()).unwrap();
        assert_eq!(r.url, "https://ntfy.example/home-alerts");
        assert_eq!(r.body, "It joined at 14:02.");
        assert_eq!(r.header("Title"), Some("New device: Lisa's phone"));
        assert_eq!(r.header("Priority"), Some("4"));
        assert_eq!(r.header("Click"), Some("http://lm:8080/alerts"));
        assert_eq!(r.header("Authorization"), None);
        cfg.ntfy_token = Some(Secret::new("tk_abc"));
        cfg.ntfy_priority = "min".into();
        let r = request("ntfy", &cfg, &note()).unwrap();
        assert_eq!(r.header("Authorization"), Some("Bearer tk_abc"));
        assert_eq!(r.header("Priority"), Some("1"));
        // Non-ASCII titles travel as RFC 2047 encoded words.
        let n = Note {
            title: "Gerät: Müller".into(),
            ..note()
        };
        let r = request("ntfy", &cfg, &n).unwrap();
        assert_eq!(r.header("Title"), Some("=?UTF-8?B?R2Vyw6R0OiBNw7xsbGVy?="));
    }

    #[test]
    fn gotify_telegram_pushover_discord_and_home_assistant_shapes() {
        let cfg = Config {
            gotify_url: Some("https://gotify.example/".into()),
            gotify_token: Some(Secret::new("AppTok")),
            telegram_bot_token: Some(Secret::new("123:ABC")),
            telegram_chat_id: Some("-100200".into()),
            pushover_token: Some(Secret::new("ptok")),
            pushover_user: Some(Secret::new("ukey")),
            discord_webhook_url: Some(Secret::new("https://discord.com/api/webhooks/1/x")),
            homeassistant_webhook_url: Some(Secret::new("http://ha:8123/api/webhook/id1")),
            ..Config::default()
        };
        let r = request("gotify", &cfg, &note()).unwrap();
        assert_eq!(r.url, "https://gotify.example/message");
        assert_eq!(r.header("X-Gotify-Key"), Some("AppTok"));
        let b = body(&r);
        assert_eq!(
            (b["title"].as_str(), b["priority"].as_i64()),
            (Some("New device: Lisa's phone"), Some(6))
        );

        let r = request("telegram", &cfg, &note()).unwrap();
        assert_eq!(r.url, "https://api.telegram.org/bot123:ABC/sendMessage");
        let b = body(&r);
        assert_eq!(b["chat_id"], "-100200");
        assert!(
            b["text"]
                .as_str()
                .unwrap()
                .starts_with("New device: Lisa's phone\n\nIt joined")
        );
        assert!(b.get("parse_mode").is_none());

        let r = request("pushover", &cfg, &note()).unwrap();
        assert_eq!(r.url, "https://api.pushover.net/1/messages.json");
        let b = body(&r);
        assert_eq!(
            (b["token"].as_str(), b["user"].as_str()),
            (Some("ptok"), Some("ukey"))
        );
        assert_eq!(b["message"], "It joined at 14:02.");
        assert_eq!(b["url"], "http://lm:8080/alerts");

        let r = request("discord", &cfg, &note()).unwrap();
        assert_eq!(r.url, "https://discord.com/api/webhooks/1/x");
        let b = body(&r);
        assert_eq!(b["embeds"][0]["title"], "New device: Lisa's phone");
        assert_eq!(b["allowed_mentions"]["parse"], json!([]));

        let r = request("homeassistant", &cfg, &note()).unwrap();
        assert_eq!(r.url, "http://ha:8123/api/webhook/id1");
        let b = body(&r);
        assert_eq!(
            (b["kind"].as_str(), b["severity"].as_str()),
            (Some("alert"), Some("warning"))
        );
    }

    #[test]
    fn limits_are_kept_and_missing_settings_named() {
        let cfg = Config {
            pushover_token: Some(Secret::new("t")),
            pushover_user: Some(Secret::new("u")),
            ..Config::default()
        };
        let long = Note {
            message: "x".repeat(5000),
            ..note()
        };
        let b = body(&request("pushover", &cfg, &long).unwrap());
        assert_eq!(b["message"].as_str().unwrap().chars().count(), 1024);
        let e = request("telegram", &cfg, &note()).unwrap_err();
        assert!(e.contains("telegram_chat_id"), "{e}");
        assert!(
            request(
                "gotify",
                &Config {
                    gotify_url: Some("http://g".into()),
                    ..Config::default()
                },
                &note()
            )
            .is_err()
        );
    }

    #[test]
    fn kinds_select_rules_and_their_families() {
        let k = vec!["plan".to_string(), "new_device".to_string()];
        assert!(wants(&k, "plan.threshold"));
        assert!(wants(&k, "new_device"));
        assert!(!wants(&k, "offline"));
        assert!(!wants(&k, "planner"));
        assert!(wants(&[], "offline"));
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
