//! Works the outbox: sends each due message on its channel, marks it delivered, or schedules
//! the next attempt with exponential backoff until it expires with its last error kept. A
//! message the receiver refuses for good (SMTP 5xx, a webhook's 4xx other than 408/429) fails at
//! once, its error shown.
//!
//! A message is marked delivered only after the channel accepted it. A crash between the two
//! sends it again after the restart (at least once); emails carry a stable Message-ID and
//! webhooks the same value as `Idempotency-Key`, so a mail client or receiver can tell the copy. It never decides what to send (the engine does).

use super::AlertError;
use super::mail::{MailErrorKind, Mailer};
use super::webhook;
use crate::store::Store;
use crate::store::alerts::OutboxRow;

/// Longest wait between two attempts.
pub const MAX_BACKOFF_SECS: i64 = 3600;
/// Messages attempted per pass; the rest wait for the next pass (one slow server cannot hold
/// the alert thread for long).
const BATCH: u32 = 20;

/// Seconds to wait after the `attempts`-th failure: `base`, doubling, at most an hour.
pub fn backoff(base: i64, attempts: i64) -> i64 {
    let shift = attempts.clamp(1, 20) - 1;
    base.max(1)
        .saturating_mul(1i64 << shift)
        .min(MAX_BACKOFF_SECS)
}

/// The channels a message can go out on, each worked by its own thread in `lanmeter run`.
pub const CHANNELS: [&str; 8] = [
    "email",
    "webhook",
    "ntfy",
    "gotify",
    "telegram",
    "pushover",
    "discord",
    "homeassistant",
];

/// The ways out: an SMTP mailer (with the runtime it runs on) and the webhook token.
pub struct Channels {
    pub mailer: Option<Mailer>,
    pub mail_config_error: Option<String>,
    pub webhook_token: Option<String>,
    /// How long one webhook request may take (`delivery_timeout_secs`; the mailer has its own).
    pub webhook_timeout: std::time::Duration,
    pub rt: tokio::runtime::Runtime,
    /// The push channels' settings, read at each send so a token or address fixed in Settings
    /// applies to the messages still waiting; `None`: push messages wait, unsent.
    pub push: Option<crate::config::settings::Live>,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub delivered: usize,
    pub failed_attempts: usize,
    pub expired: usize,
}

/// The Message-ID of outbox message `m`: the same for every attempt.
pub fn message_id(m: &OutboxRow) -> String {
    format!("<outbox-{}-{}@lanmeter>", m.id, m.created_at)
}

/// Why an attempt failed, in words for the dashboard, and whether trying again can help.
struct Failure {
    error: String,
    /// The receiver refused this message for good (an SMTP 5xx to the sender, a recipient or
    /// the content; a webhook's 4xx other than 408/429): retrying the same message would only
    /// be refused again.
    permanent: bool,
}

impl From<String> for Failure {
    fn from(error: String) -> Failure {
        Failure {
            error,
            permanent: false,
        }
    }
}

fn send(ch: &Channels, m: &OutboxRow) -> Result<(), Failure> {
    match m.channel.as_str() {
        "email" => match &ch.mailer {
            Some(mailer) => ch
                .rt
                .block_on(mailer.send(
                    &m.subject,
                    &m.text_body,
                    m.html_body.as_deref(),
                    &message_id(m),
                ))
                .map_err(|e| Failure {
                    permanent: e.kind == MailErrorKind::Rejected,
                    error: e.to_string(),
                }),
            None => Err(ch
                .mail_config_error
                .clone()
                .unwrap_or_else(|| {
                    "email is not configured (set smtp_host and mail_to); the message waits".into()
                })
                .into()),
        },
        "webhook" => webhook::send(
            &m.subject,
            ch.webhook_token.as_deref(),
            m.json_body.as_deref().unwrap_or("{}"),
            ch.webhook_timeout,
            Some(&message_id(m)),
        )
        .map_err(|e| Failure {
            permanent: e.permanent,
            error: e.message,
        }),
        other if super::push::CHANNELS.contains(&other) => {
            let Some(live) = &ch.push else {
                return Err(format!("{other} is not set up here; the message waits").into());
            };
            let note: super::push::Note = serde_json::from_str(
                m.json_body.as_deref().unwrap_or(""),
            )
            .map_err(|e| Failure {
                error: format!(
                    "the stored message cannot be read ({e}): a lanmeter bug, please report it"
                ),
                permanent: true,
            })?;
            let req = super::push::request(other, &live.get(), &note)?;
            super::push::send(other, &req, ch.webhook_timeout).map_err(|e| Failure {
                permanent: e.permanent,
                error: e.message,
            })
        }
        other => Err(format!("unknown channel {other}").into()),
    }
}

/// One pass over the due messages of every channel at `now()`.
pub fn work(
    store: &mut Store,
    ch: &Channels,
    now: impl Fn() -> i64,
    retry_secs: i64,
) -> Result<Pass, AlertError> {
    let due = store.due_messages(now(), BATCH)?;
    work_on(store, ch, due, now, retry_secs)
}

/// One pass over the due messages of `channel` only (the per-channel workers of `lanmeter run`).
pub fn work_channel(
    store: &mut Store,
    ch: &Channels,
    channel: &str,
    now: impl Fn() -> i64,
    retry_secs: i64,
) -> Result<Pass, AlertError> {
    let due = store.due_messages_on(channel, now(), BATCH)?;
    work_on(store, ch, due, now, retry_secs)
}

fn work_on(
    store: &mut Store,
    ch: &Channels,
    due: Vec<OutboxRow>,
    now: impl Fn() -> i64,
    retry_secs: i64,
) -> Result<Pass, AlertError> {
    let mut pass = Pass::default();
    for m in due {
        match send(ch, &m) {
            Ok(()) => {
                store.message_delivered(m.id, now())?;
                tracing::info!(id = m.id, channel = %m.channel, kind = %m.kind, attempts = m.attempts + 1, "message delivered");
                pass.delivered += 1;
            }
            Err(Failure { error, permanent }) => {
                let t = now();
                let attempts = m.attempts + 1;
                let next = t + backoff(retry_secs, attempts);
                let expired = permanent || t >= m.expires_at;
                let shown = if permanent {
                    format!(
                        "refused for good, not retried (fix the setting, then use Retry): {error}"
                    )
                } else if expired {
                    format!(
                        "gave up after {attempts} attempts over {} h: {error}",
                        (t - m.created_at) / 3600
                    )
                } else {
                    error.clone()
                };
                store.message_attempt_failed(
                    m.id,
                    t,
                    next.min(m.expires_at.max(t)),
                    expired,
                    &shown,
                )?;
                if expired {
                    tracing::error!(id = m.id, channel = %m.channel, attempts, permanent, error = %error, "message given up undelivered");
                    pass.expired += 1;
                } else {
                    tracing::warn!(id = m.id, channel = %m.channel, attempts, retry_in_secs = next - t, error = %error, "delivery failed; retrying");
                    pass.failed_attempts += 1;
                }
            }
        }
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::alerts::NewMessage;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let v: Vec<i64> = (1..=9).map(|a| backoff(30, a)).collect();
        assert_eq!(v, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(30, 500), 3600);
    }

    #[test]
    fn failures_back_off_then_expire_with_the_error_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        s.queue_messages(
            &[],
            &[NewMessage {
                channel: "webhook",
                kind: "test",
                subject: format!("http://127.0.0.1:{port}/hook"),
                json_body: Some("{}".into()),
                not_before: 0,
                expires_at: 1000,
                ..NewMessage::default()
            }],
            0,
        )
        .unwrap();
        let ch = Channels {
            mailer: None,
            mail_config_error: None,
            webhook_token: None,
            webhook_timeout: std::time::Duration::from_secs(5),
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            push: None,
        };
        let clock = std::cell::Cell::new(0i64);
        let mut attempts_at = Vec::new();
        while clock.get() <= 1200 {
            let p = work(&mut s, &ch, || clock.get(), 30).unwrap();
            if p.failed_attempts + p.expired > 0 {
                attempts_at.push(clock.get());
            }
            clock.set(clock.get() + 10);
        }
        // 0, +30, +60, +120, +240, +480 → 930; next would be 1890, capped at the expiry 1000.
        assert_eq!(attempts_at, [0, 30, 90, 210, 450, 930, 1000]);
        let m = &s.outbox_recent(10).unwrap()[0];
        assert_eq!(m.status(), "failed");
        let err = m.last_error.as_deref().unwrap();
        assert!(
            err.starts_with("gave up after 7 attempts")
                && err.contains("nothing accepts connections"),
            "{err}"
        );
    }
}
