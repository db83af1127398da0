//! Email over SMTP: the only user of lettre in the crate.
//!
//! It builds the transport from the config (STARTTLS, implicit TLS or plain; with or without
//! login; an extra CA for a relay with its own certificate), sends multipart text + HTML
//! messages, and turns SMTP failures into advice a household admin can act on. It never queues
//! or retries (the outbox does) and never logs a password.

use crate::config::{Config, SmtpSecurity};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// A failure with what to do about it. `advice` is for people; `detail` is lettre's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{advice} ({detail})")]
pub struct MailError {
    pub kind: MailErrorKind,
    pub advice: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailErrorKind {
    Config,
    Auth,
    Tls,
    Refused,
    Dns,
    Timeout,
    Rejected,
    Other,
}

/// A ready SMTP sender.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    pub prefix: String,
    host: String,
    port: u16,
    security: SmtpSecurity,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

fn config_error(advice: String, detail: impl Into<String>) -> MailError {
    MailError {
        kind: MailErrorKind::Config,
        advice,
        detail: detail.into(),
    }
}

/// This machine's host name, for the default sender and the dashboard URL (gethostname(2), which
/// the service's sandbox allows; "lanmeter" only if the name is empty).
pub fn host_name() -> String {
    crate::system::host::host_name().unwrap_or_else(|| "lanmeter".into())
}

impl Mailer {
    /// The mailer the config describes, `Ok(None)` when email is off (no `smtp_host`).
    pub fn from_config(cfg: &Config) -> Result<Option<Mailer>, MailError> {
        let Some(host) = cfg.smtp_host.clone() else {
            return Ok(None);
        };
        if cfg.mail_to.is_empty() {
            return Err(config_error(
                "smtp_host is set but mail_to lists nobody: add recipients to the config".into(),
                "no recipients",
            ));
        }
        let port = cfg
            .smtp_port
            .unwrap_or_else(|| cfg.smtp_security.default_port());
        let from_text = cfg
            .mail_from
            .clone()
            .unwrap_or_else(|| format!("lanmeter@{}", host_name()));
        let from: Mailbox = format!("lanmeter <{from_text}>").parse().map_err(|e| {
            config_error(
                format!("mail_from {from_text:?} is not an address"),
                format!("{e}"),
            )
        })?;
        let to = cfg
            .mail_to
            .iter()
            .map(|a| {
                a.parse::<Mailbox>().map_err(|e| {
                    config_error(format!("mail_to {a:?} is not an address"), format!("{e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls_params = || -> Result<TlsParameters, MailError> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(ca) = &cfg.smtp_ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    config_error(
                        format!(
                            "cannot read smtp_ca_file {}: check the path and permissions",
                            ca.display()
                        ),
                        e.to_string(),
                    )
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    config_error(
                        format!("smtp_ca_file {} is not a PEM certificate", ca.display()),
                        e.to_string(),
                    )
                })?;
                b = b.add_root_certificate(cert);
            }
            b.build().map_err(|e| {
                config_error(
                    "cannot set up TLS for the mail server".into(),
                    e.to_string(),
                )
            })
        };
        let tls = match cfg.smtp_security {
            SmtpSecurity::Starttls => Tls::Required(tls_params()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_params()?),
            SmtpSecurity::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            // A connection that hangs (a stalled server, or STARTTLS spoken to an implicit-TLS
            // port waiting for a greeting that never comes) fails after this long, so the
            // outbox retries it instead of waiting forever.
            .timeout(Some(Duration::from_secs(cfg.delivery_timeout_secs)));
        if let Some(user) = &cfg.smtp_user {
            let password = smtp_password(cfg)?;
            b = b.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Some(Mailer {
            transport: b.build(),
            from,
            to,
            prefix: cfg.mail_subject_prefix.clone(),
            host,
            port,
            security: cfg.smtp_security,
        }))
    }

    /// Sends one multipart message. `message_id` is stable per outbox message, so a receiver
    /// that sees a retry of a message it already has can tell.
    pub async fn send(
        &self,
        subject: &str,
        text: &str,
        html: Option<&str>,
        message_id: &str,
    ) -> Result<(), MailError> {
        let subject = if self.prefix.is_empty() {
            subject.to_string()
        } else {
            format!("{} {subject}", self.prefix)
        };
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(message_id.to_string()));
        for t in &self.to {
            b = b.to(t.clone());
        }
        // Marks the mail as automatic, so vacation responders stay quiet.
        b = b.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ));
        let text_part = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_string());
        let msg = match html {
            Some(h) => b.multipart(
                MultiPart::alternative().singlepart(text_part).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(h.to_string()),
                ),
            ),
            None => b.singlepart(text_part),
        }
        .map_err(|e| config_error("cannot build the message".into(), e.to_string()))?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| self.explain(&e))
    }

    /// Turns lettre's error into advice naming the setting to change.
    fn explain(&self, e: &lettre::transport::smtp::Error) -> MailError {
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(e);
        let mut io_kind = None;
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                io_kind = Some(io.kind());
            }
            let t = s.to_string();
            if !chain.contains(&t) {
                chain.push_str(": ");
                chain.push_str(&t);
            }
            src = s.source();
        }
        let lower = chain.to_ascii_lowercase();
        let (host, port) = (&self.host, self.port);
        let code = e.status().map(|c| c.to_string());
        let (kind, advice) = if matches!(code.as_deref(), Some("535" | "534" | "530"))
            && (lower.contains("auth")
                || lower.contains("credentials")
                || lower.contains("password")
                || code.as_deref() != Some("530"))
        {
            (
                MailErrorKind::Auth,
                "The mail server refused the user name or password. Check smtp_user; with Gmail, \
                 Outlook, iCloud and most providers you need an app password (created in the \
                 account's security settings), not the account password."
                    .to_string(),
            )
        } else if code.as_deref() == Some("530") {
            (
                MailErrorKind::Auth,
                "The mail server wants a login or an encrypted connection first: set smtp_user \
                 and a password, and use smtp_security = \"starttls\" or \"tls\"."
                    .to_string(),
            )
        } else if e.is_tls()
            || [
                "starttls",
                "certificate",
                "corrupt message",
                "invalidcontenttype",
                "handshake",
                "wrong version",
            ]
            .iter()
            .any(|w| lower.contains(w))
        {
            // A TLS client talking to a plain port reads an SMTP greeting as a corrupt record
            // ("InvalidContentType"): lettre reports that as a connection error, not a TLS one.
            let hint = match self.security {
                SmtpSecurity::Tls => {
                    "smtp_security = \"tls\" needs a port that speaks TLS from the start (usually 465); for port 587 use smtp_security = \"starttls\""
                }
                SmtpSecurity::Starttls => {
                    "smtp_security = \"starttls\" needs a port that offers STARTTLS (usually 587); for port 465 use smtp_security = \"tls\""
                }
                SmtpSecurity::None => {
                    "the server wants encryption: use smtp_security = \"starttls\" (port 587) or \"tls\" (port 465)"
                }
            };
            let cert = if lower.contains("certificate") || lower.contains("unknownissuer") {
                " If the server uses its own certificate authority, point smtp_ca_file at its CA certificate."
            } else {
                ""
            };
            (
                MailErrorKind::Tls,
                format!("TLS with {host}:{port} failed: {hint}.{cert}"),
            )
        } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused)
            || lower.contains("connection refused")
        {
            (
                MailErrorKind::Refused,
                format!(
                    "Nothing accepts connections at {host}:{port}: check smtp_host and smtp_port \
                     (587 for starttls, 465 for tls), and that the mail server is running and \
                     not blocked by a firewall."
                ),
            )
        } else if lower.contains("lookup")
            || lower.contains("resolve")
            || lower.contains("name or service")
        {
            (
                MailErrorKind::Dns,
                format!(
                    "The name {host} cannot be resolved: check smtp_host for typos and that this machine's DNS works."
                ),
            )
        } else if e.is_timeout()
            || io_kind == Some(std::io::ErrorKind::TimedOut)
            || lower.contains("timed out")
        {
            (
                MailErrorKind::Timeout,
                format!(
                    "{host}:{port} did not answer in time. If this is port 465, use \
                     smtp_security = \"tls\"; otherwise check the firewall."
                ),
            )
        } else if e.is_permanent() {
            (
                MailErrorKind::Rejected,
                "The mail server rejected the message: check mail_from (many providers only \
                 accept their own account as sender) and mail_to."
                    .to_string(),
            )
        } else {
            (
                MailErrorKind::Other,
                format!("Sending through {host}:{port} failed; it is retried."),
            )
        };
        MailError {
            kind,
            advice,
            detail: chain,
        }
    }
}

/// The SMTP password: the first line of `smtp_password_file` when set, else `smtp_password`.
fn smtp_password(cfg: &Config) -> Result<String, MailError> {
    if let Some(path) = &cfg.smtp_password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(
                format!(
                    "cannot read smtp_password_file {}: check the path, and that the lanmeter user may read it",
                    path.display()
                ),
                e.to_string(),
            )
        })?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    Ok(cfg
        .smtp_password
        .as_ref()
        .map(|s| s.expose().to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_host_means_no_mailer_and_no_recipients_is_explained() {
        assert!(Mailer::from_config(&Config::default()).unwrap().is_none());
        let cfg = Config {
            smtp_host: Some("localhost".into()),
            ..Config::default()
        };
        let e = Mailer::from_config(&cfg).unwrap_err();
        assert!(e.advice.contains("mail_to"), "{e}");
    }

    #[test]
    fn password_file_wins_and_takes_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\nignored\n").unwrap();
        let cfg = Config {
            smtp_password: Some(crate::config::Secret::new("inline")),
            smtp_password_file: Some(f),
            ..Config::default()
        };
        assert_eq!(smtp_password(&cfg).unwrap(), "from-file");
        let cfg = Config {
            smtp_password_file: Some(dir.path().join("missing")),
            ..Config::default()
        };
        assert!(
            smtp_password(&cfg)
                .unwrap_err()
                .advice
                .contains("smtp_password_file")
        );
    }

    #[test]
    fn refused_connection_is_explained() {
        // A port on loopback that nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = Config {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: Some(port),
            smtp_security: SmtpSecurity::None,
            mail_to: vec!["a@example.org".into()],
            ..Config::default()
        };
        let m = Mailer::from_config(&cfg).unwrap().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(m.send("s", "t", None, "<x@lanmeter>"))
            .unwrap_err();
        assert_eq!(e.kind, MailErrorKind::Refused, "{e}");
        assert!(e.advice.contains(&port.to_string()), "{e}");
    }
}
