//! The words of every message: alert and digest emails (text + HTML from the askama templates in
//! `templates/emails/`), the weekly summary, and webhook bodies, all built from stored alerts.
//!
//! Rendering happens when a message is queued, so the outbox holds exactly what will be sent
//! and a restart resends the same bytes. Every value a template prints goes through the
//! escapers of `askama.toml` ([`crate::visible`]: HTML escaping in HTML, and in both bidi,
//! invisible and control characters of device-supplied names spelled out); subjects and
//! webhook texts get the same rule here. It never sends or stores anything.

use super::{AlertError, Severity, links};
use crate::config::Config;
use crate::store::alerts::AlertRow;
use askama::Template;
use jiff::tz::TimeZone;

/// One alert as a message shows it, links made absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub id: i64,
    pub rule: String,
    pub subject: String,
    pub title: String,
    pub severity: String,
    pub stage: String,
    pub when: String,
    pub body: String,
    pub facts: Vec<(String, String)>,
    pub links: Vec<(String, String)>,
    pub ack_url: Option<String>,
}

/// What links in messages need: where the dashboard is, and how to sign acknowledge links.
#[derive(Clone, Debug)]
pub struct LinkCtx {
    pub dashboard: String,
    pub secret: String,
    pub ack_secs: i64,
    pub tz: TimeZone,
}

impl LinkCtx {
    pub fn new(cfg: &Config, secret: String) -> LinkCtx {
        LinkCtx {
            dashboard: dashboard_url(cfg),
            secret,
            ack_secs: i64::from(cfg.ack_link_days) * 86_400,
            tz: cfg.time_zone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.dashboard.trim_end_matches('/'))
    }

    pub fn ack_url(&self, id: i64, now: i64) -> String {
        self.url(&format!(
            "/alerts/ack?t={}",
            links::sign(&self.secret, id, now + self.ack_secs)
        ))
    }

    pub fn local_time(&self, secs: i64) -> String {
        jiff::Timestamp::from_second(secs).map_or_else(
            |_| secs.to_string(),
            |t| {
                t.to_zoned(self.tz.clone())
                    .strftime("%a %Y-%m-%d %H:%M")
                    .to_string()
            },
        )
    }

    pub fn item(&self, a: &AlertRow, now: i64) -> Item {
        let open = a.resolved_at.is_none() && a.acked_at.is_none();
        Item {
            id: a.id,
            rule: a.rule.clone(),
            subject: a.subject.clone(),
            title: a.title.clone(),
            severity: a.severity.clone(),
            stage: a.stage().to_string(),
            when: self.local_time(a.triggered_at),
            body: a.body.clone(),
            facts: a.facts.clone(),
            links: a
                .links
                .iter()
                .map(|(l, p)| (l.clone(), self.url(p)))
                .collect(),
            ack_url: open.then(|| self.ack_url(a.id, now)),
        }
    }
}

/// `dashboard_url`, else `SCHEME://HOSTNAME:PORT` from the host name and `listen`, where the
/// scheme is the one lanmeter serves: `https` when `tls_cert`/`tls_key` are set. With TLS on,
/// an `http://` in `dashboard_url` is served as `https://` too: the port answers only TLS, so
/// the link would fail, and an acknowledge link's token would cross the LAN in clear.
pub fn dashboard_url(cfg: &Config) -> String {
    let tls = cfg.tls_cert.is_some() && cfg.tls_key.is_some();
    match &cfg.dashboard_url {
        Some(u) if tls && u.len() >= 7 && u[..7].eq_ignore_ascii_case("http://") => {
            format!("https://{}", &u[7..])
        }
        Some(u) => u.clone(),
        None => format!(
            "{}://{}:{}",
            if tls { "https" } else { "http" },
            super::mail::host_name(),
            cfg.listen.port()
        ),
    }
}

#[cfg(test)]
mod scheme_tests {
    use super::*;

    #[test]
    fn links_use_https_when_the_dashboard_is_served_over_tls() {
        let mut cfg = Config::default();
        assert!(dashboard_url(&cfg).starts_with("http://"));
        cfg.tls_cert = Some("/etc/lanmeter/cert.pem".into());
        cfg.tls_key = Some("/etc/lanmeter/key.pem".into());
        let u = dashboard_url(&cfg);
        assert!(u.starts_with("https://") && u.ends_with(":8080"), "{u}");
        cfg.dashboard_url = Some("http://lanmeter.home:8443".into());
        assert_eq!(dashboard_url(&cfg), "https://lanmeter.home:8443");
        cfg.tls_cert = None;
        assert_eq!(dashboard_url(&cfg), "http://lanmeter.home:8443");
    }
}

pub fn severity_of(s: &str) -> Severity {
    match s {
        "critical" => Severity::Critical,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    }
}

#[derive(Template)]
#[template(path = "emails/alerts.txt")]
struct AlertsText<'a> {
    intro: &'a str,
    items: &'a [Item],
    dashboard: &'a str,
}

#[derive(Template)]
#[template(path = "emails/alerts.html")]
struct AlertsHtml<'a> {
    intro: &'a str,
    items: &'a [Item],
    dashboard: &'a str,
}

/// A rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn render_err(what: &'static str) -> impl FnOnce(askama::Error) -> AlertError {
    move |e| AlertError::Render {
        what,
        detail: e.to_string(),
    }
}

/// An email about `items`: one alert (its title is the subject) or several (a digest).
pub fn alerts_mail(
    intro: &str,
    subject: &str,
    items: &[Item],
    dashboard: &str,
) -> Result<Mail, AlertError> {
    Ok(Mail {
        // The templates' escapers make device-supplied text visible; the subject is built here.
        subject: crate::visible::visible(subject),
        text: AlertsText {
            intro,
            items,
            dashboard,
        }
        .render()
        .map_err(render_err("alert text"))?,
        html: AlertsHtml {
            intro,
            items,
            dashboard,
        }
        .render()
        .map_err(render_err("alert HTML"))?,
    })
}

/// The weekly summary's content, already formatted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeeklyData {
    pub week: String,
    pub total: String,
    pub previous: String,
    pub trend: String,
    pub download: String,
    pub upload: String,
    pub top: Vec<(String, String)>,
    pub people: Vec<(String, String)>,
    pub new_devices: Vec<String>,
    pub alerts: Vec<String>,
    pub dashboard: String,
}

#[derive(Template)]
#[template(path = "emails/weekly.txt")]
struct WeeklyText<'a> {
    s: &'a WeeklyData,
}

#[derive(Template)]
#[template(path = "emails/weekly.html")]
struct WeeklyHtml<'a> {
    s: &'a WeeklyData,
}

pub fn weekly_mail(s: &WeeklyData) -> Result<Mail, AlertError> {
    Ok(Mail {
        subject: format!("Weekly summary: {} ({})", s.total, s.trend),
        text: WeeklyText { s }
            .render()
            .map_err(render_err("weekly text"))?,
        html: WeeklyHtml { s }
            .render()
            .map_err(render_err("weekly HTML"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings_are_escaped_in_html_only() {
        let item = Item {
            id: 1,
            rule: "new_device".into(),
            subject: "device:1".into(),
            title: "New device: <script>x</script>".into(),
            severity: "info".into(),
            stage: "triggered".into(),
            when: "Mon".into(),
            body: "b & c".into(),
            facts: vec![("Host name".into(), "<b>evil</b>".into())],
            links: vec![("Open".into(), "http://lm/devices/1".into())],
            ack_url: Some("http://lm/alerts/ack?t=1.2.ab".into()),
        };
        let m = alerts_mail("Hello", "s", std::slice::from_ref(&item), "http://lm").unwrap();
        assert!(
            m.text.contains("<script>x</script>")
                && m.text
                    .contains("Acknowledge: http://lm/alerts/ack?t=1.2.ab")
        );
        assert!(
            !m.html.contains("<script>") && !m.html.contains("<b>evil"),
            "{}",
            m.html
        );
        assert!(
            m.html.contains("&#60;script&#62;") || m.html.contains("&lt;script&gt;"),
            "{}",
            m.html
        );
        assert!(m.html.contains("href=\"http://lm/alerts/ack?t=1.2.ab\""));
    }
}
