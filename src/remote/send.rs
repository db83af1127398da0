//! The one remote-write POST: the snappy-compressed protobuf with the protocol's headers,
//! through ureq (the HTTP client the alert webhooks use). It never retries; the caller keeps its
//! cursor and tries again next round.
use crate::alerts::webhook::{redact, scrub};
use std::io::Read;
use std::time::Duration;

/// Where to send and how.
#[derive(Clone, Debug)]
pub struct Receiver {
    pub url: String,
    pub token: Option<String>,
    pub timeout: Duration,
}

/// Why a request was not taken. Messages name the receiver only [`redact`]ed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver read the request and refused its samples for good (HTTP 400: too old, out
    /// of order, malformed): sending them again cannot help.
    #[error(
        "the receiver at {receiver} refused the samples (HTTP {code}): {message}; Prometheus needs out_of_order_time_window for minutes older than about an hour, VictoriaMetrics drops samples older than its -retentionPeriod"
    )]
    Refused {
        receiver: String,
        code: u16,
        message: String,
    },
    /// Not now: unreachable, overloaded, or a setting to fix (401/403/404); tried again later.
    #[error("{0}")]
    NotNow(String),
}

/// POSTs `body` (from [`super::proto::body`]) to the receiver.
pub fn send(r: &Receiver, body: &[u8]) -> Result<(), SendError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(r.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent
        .post(&r.url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("User-Agent", concat!("lanmeter/", env!("LANMETER_VERSION")));
    if let Some(t) = &r.token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let shown = redact(&r.url);
    let mut resp = match req.send(body) {
        Ok(resp) => resp,
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(SendError::NotNow(format!(
                "nothing accepts connections at {shown}: check remote_write_url and that the receiver runs"
            )));
        }
        Err(ureq::Error::Timeout(_)) => {
            return Err(SendError::NotNow(format!(
                "the receiver at {shown} did not answer within {} s",
                r.timeout.as_secs()
            )));
        }
        Err(e) => {
            return Err(SendError::NotNow(format!(
                "the request to {shown} failed: {}",
                scrub(&e.to_string(), &r.url)
            )));
        }
    };
    let code = resp.status().as_u16();
    if (200..300).contains(&code) {
        return Ok(());
    }
    // The receiver's own words say which samples and why; a few hundred bytes are enough.
    let mut text = String::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(400)
        .read_to_string(&mut text);
    let text = scrub(text.trim(), &r.url);
    Err(match code {
        400 | 409 | 422 => SendError::Refused {
            receiver: shown,
            code,
            message: text,
        },
        401 | 403 => SendError::NotNow(format!(
            "the receiver at {shown} answered HTTP {code}: check remote_write_token"
        )),
        404 => SendError::NotNow(format!(
            "the receiver at {shown} answered HTTP 404: check the path of remote_write_url (VictoriaMetrics and Prometheus: /api/v1/write; Prometheus also needs --web.enable-remote-write-receiver)"
        )),
        _ => SendError::NotNow(format!(
            "the receiver at {shown} answered HTTP {code}: {text}"
        )),
    })
}
