//! Alerts end to end against real servers: aiosmtpd (Debian's python3-aiosmtpd) as the SMTP
//! server, a plain HTTP server for webhooks, the real `lanmeter run` in a network namespace.
//!
//! - the outbox survives a restart while the SMTP server is down, and then delivers every alert
//!   exactly once, as multipart mail with the right headers and a working acknowledge link;
//! - STARTTLS against a self-signed certificate the test creates (trusted via smtp_ca_file,
//!   refused with advice without it);
//! - a webhook receiver that fails once gets the JSON body on the retry.

use crate::daemon::{Daemon, setup};
use crate::netns::KillOnDrop;
use lanmeter::alerts::deliver::{self, Channels};
use lanmeter::alerts::engine::{self, Policy};
use lanmeter::alerts::render::LinkCtx;
use lanmeter::alerts::{Condition, ConditionState, Severity};
use lanmeter::config::{Config, SmtpSecurity, WebhookFormat};
use lanmeter::store::Store;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's python, which has python3-aiosmtpd (a pyenv python on PATH may not).
const PYTHON: &str = "/usr/bin/python3";
const PATIENCE: Duration = Duration::from_secs(60);

/// Prints each message in a maildir as JSON: the headers a test checks and both decoded parts.
const PARSE_MAIL: &str = r#"
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
text = m.get_body(('plain',))
html = m.get_body(('html',))
print(json.dumps({
  'subject': str(m['Subject']), 'from': str(m['From']), 'to': str(m['To']),
  'message_id': str(m['Message-ID']), 'auto_submitted': str(m['Auto-Submitted']),
  'content_type': m.get_content_type(),
  'text': text.get_content() if text else None,
  'html': html.get_content() if html else None,
}))
"#;

/// aiosmtpd writing every message into a maildir, optionally inside a namespace.
pub(crate) fn start_smtp(
    ns: Option<&str>,
    listen: &str,
    maildir: &Path,
    tls: Option<(&Path, &Path)>,
) -> KillOnDrop {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, PYTHON]);
            c
        }
        None => Command::new(PYTHON),
    };
    cmd.args(["-m", "aiosmtpd", "-n", "-l", listen]);
    if let Some((cert, key)) = tls {
        cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
    }
    cmd.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(maildir);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start aiosmtpd (apt install python3-aiosmtpd): {e}"));
    KillOnDrop(child)
}

pub(crate) fn wait_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn mails(maildir: &Path) -> Vec<serde_json::Value> {
    let Ok(dir) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let out = Command::new(PYTHON)
                .args(["-c", PARSE_MAIL])
                .arg(f)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect()
}

pub(crate) fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The acknowledge link: GET shows a form (and plants the CSRF cookie), POST acknowledges.
fn follow_ack_link(url: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(url).call().unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("lm_pre="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .expect("the form plants the CSRF cookie");
    let page = r.body_mut().read_to_string().unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf field")
        .to_string();
    let token = url.split("t=").nth(1).unwrap();
    let post = url.split('?').next().unwrap();
    let body = format!("csrf={csrf}&t={token}");
    let mut r = agent
        .post(post)
        .header("Cookie", &cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body)
        .unwrap();
    assert_eq!(r.status(), 200);
    r.body_mut().read_to_string().unwrap()
}

#[test]
fn outbox_survives_a_restart_and_delivers_every_alert_once_with_a_working_ack_link() {
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 60);
    let maildir = dir.path().join("maildir");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "alert_interval_secs = 1\nalert_new_device_learning_minutes = 0\nalert_health = false\n\
         alert_unusual_usage = false\noutbox_retry_secs = 1\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = 2525\nsmtp_security = \"none\"\nmail_from = \"lanmeter@home.test\"\n\
         mail_to = [\"family@home.test\"]\nlisten = \"127.0.0.1:8080\"\n\
         dashboard_url = \"http://127.0.0.1:8080\"\n",
    );
    std::fs::write(&config, text).unwrap();

    // The flush interval is left at its default (5 minutes): discovery writes a newcomer within
    // seconds all the same, so the new-device alerts below come well inside PATIENCE.
    // SMTP is down (nothing listens on 2525 in the namespace): the new devices queue.
    let mut d = Daemon::start_default_flush(&p, &config, &db);
    // B asks for A's address (ARP), so discovery learns both devices' IPs for the message.
    crate::netns::run(&[
        "ip",
        "-n",
        &p.b,
        "neigh",
        "del",
        &p.a_ip.to_string(),
        "dev",
        &p.b_if,
    ]);
    let ping = p.exec(&p.b, &["ping", "-c", "3", "-i", "0.2", &p.a_ip.to_string()]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stderr)
    );
    let queued = wait_for(
        "two new-device emails to fail at least once",
        PATIENCE,
        || {
            let s = Store::open(&db).ok()?;
            let mut m = s.outbox_recent(100).ok()?;
            m.retain(|m| m.channel == "email");
            (m.len() >= 2
                && m.iter()
                    .all(|m| m.attempts >= 1 && m.delivered_at.is_none()))
            .then_some(m)
        },
    );
    d.stop();
    assert!(mails(&maildir).is_empty());

    // Restarted, still without a server: the messages are still there and still retried.
    let mut d = Daemon::start(&p, &config, &db);
    std::thread::sleep(Duration::from_secs(2));
    let _smtp = start_smtp(Some(&p.a), "127.0.0.1:2525", &maildir, None);
    let expected = queued.len();
    let got = wait_for("every queued email to arrive", PATIENCE, || {
        let m = mails(&maildir);
        (m.len() >= expected).then_some(m)
    });
    // Nothing more arrives: exactly once.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        mails(&maildir).len(),
        expected,
        "a message was delivered twice"
    );
    let s = Store::open(&db).unwrap();
    let outbox: Vec<_> = s
        .outbox_recent(100)
        .unwrap()
        .into_iter()
        .filter(|m| m.channel == "email")
        .collect();
    assert_eq!(
        outbox.len(),
        expected,
        "no new message appeared: {outbox:?}"
    );
    assert!(
        outbox.iter().all(|m| m.delivered_at.is_some()),
        "{outbox:?}"
    );
    let alerts = s.recent_alerts(100).unwrap();
    let new_devices: Vec<_> = alerts.iter().filter(|a| a.rule == "new_device").collect();
    assert_eq!(new_devices.len(), expected);
    let mut ids: Vec<String> = got
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected, "distinct Message-IDs");
    for a in &new_devices {
        assert_eq!(a.stage(), "notified", "{a:?}");
        let n = got
            .iter()
            .filter(|m| m["subject"].as_str().unwrap() == format!("[lanmeter] {}", a.title))
            .count();
        assert_eq!(n, 1, "alert {} mailed {n} times", a.title);
    }
    // Headers and both parts.
    let b_mac = p.b_mac.to_string();
    let m = got
        .iter()
        .find(|m| m["text"].as_str().unwrap().contains(&b_mac))
        .expect("a mail about B");
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(m["from"], "lanmeter <lanmeter@home.test>");
    assert_eq!(m["to"], "family@home.test");
    assert_eq!(m["auto_submitted"], "auto-generated");
    assert!(
        m["subject"]
            .as_str()
            .unwrap()
            .starts_with("[lanmeter] New device on the network")
    );
    let text = m["text"].as_str().unwrap();
    let html = m["html"].as_str().unwrap();
    assert!(
        text.contains(&p.b_ip.to_string()),
        "first address in the text: {text}"
    );
    assert!(
        html.contains(&b_mac) && html.contains("Acknowledge"),
        "{html}"
    );
    let ack = text
        .lines()
        .find_map(|l| l.strip_prefix("Acknowledge: "))
        .expect("an acknowledge link")
        .to_string();
    assert!(
        ack.starts_with("http://127.0.0.1:8080/alerts/ack?t="),
        "{ack}"
    );
    assert!(html.contains(&ack), "the same link in the HTML part");

    // The link works without a login (the web server runs inside A's namespace).
    let page = p.in_ns(&p.a, || follow_ack_link(&ack));
    assert!(page.contains("Acknowledged"), "{page}");
    let id: i64 = ack
        .split("t=")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let a = Store::open(&db).unwrap().alert(id).unwrap().unwrap();
    assert_eq!(a.acked_by.as_deref(), Some("email link"));
    assert_eq!(
        a.stage(),
        "resolved",
        "a new-device alert is done once acknowledged"
    );
    d.stop();
}

#[test]
fn starttls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = dir.path().join("maildir");
    let _smtp = start_smtp(
        None,
        &format!("127.0.0.1:{port}"),
        &maildir,
        Some((&cert, &key)),
    );
    wait_port(&format!("127.0.0.1:{port}"));
    let mut cfg = Config {
        smtp_host: Some("localhost".into()),
        smtp_port: Some(port),
        smtp_security: SmtpSecurity::Starttls,
        mail_to: vec!["family@home.test".into()],
        mail_from: Some("lanmeter@home.test".into()),
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Without trusting the certificate: refused, with advice about the CA.
    let m = lanmeter::alerts::mail::Mailer::from_config(&cfg)
        .unwrap()
        .unwrap();
    let e = rt
        .block_on(m.send("untrusted", "x", None, "<a@lanmeter>"))
        .unwrap_err();
    assert_eq!(e.kind, lanmeter::alerts::mail::MailErrorKind::Tls, "{e}");
    assert!(e.advice.contains("smtp_ca_file"), "{e}");
    // Trusted through smtp_ca_file: delivered over STARTTLS.
    cfg.smtp_ca_file = Some(cert.clone());
    let m = lanmeter::alerts::mail::Mailer::from_config(&cfg)
        .unwrap()
        .unwrap();
    rt.block_on(m.send(
        "over STARTTLS",
        "hello",
        Some("<p>hello</p>"),
        "<b@lanmeter>",
    ))
    .unwrap();
    let got = wait_for("the STARTTLS mail", Duration::from_secs(10), || {
        let m = mails(&maildir);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["subject"], "[lanmeter] over STARTTLS");
    // Implicit TLS against the STARTTLS port: explained as a port/security mismatch.
    cfg.smtp_security = SmtpSecurity::Tls;
    let m = lanmeter::alerts::mail::Mailer::from_config(&cfg)
        .unwrap()
        .unwrap();
    let e = rt
        .block_on(m.send("x", "x", None, "<c@lanmeter>"))
        .unwrap_err();
    assert!(e.advice.contains("465") || e.advice.contains("587"), "{e}");
}

/// Delivery channels for `deliver::work` in a test: an optional mailer, an optional webhook token.
fn channels(
    mailer: Option<lanmeter::alerts::mail::Mailer>,
    webhook_token: Option<&str>,
) -> Channels {
    Channels {
        mailer,
        mail_config_error: None,
        webhook_token: webhook_token.map(str::to_string),
        webhook_timeout: Duration::from_secs(10),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        push: None,
    }
}

/// The one message in `store` after an attempt at `now` and another long past any backoff: a
/// refusal for good (`want` "failed") was tried once and says so with `advice`; a temporary one
/// ("retrying") was tried again.
fn after_a_long_wait(
    store: &mut Store,
    ch: &Channels,
    want: &str,
    advice: &str,
    seen: impl FnOnce(),
) {
    let now = 1_767_225_600;
    deliver::work(store, ch, || now, 30).unwrap();
    seen();
    deliver::work(store, ch, || now + 7200, 30).unwrap();
    let m = &store.outbox_recent(10).unwrap()[0];
    let err = m.last_error.as_deref().unwrap_or("");
    assert_eq!(m.status(), want, "{err}");
    if want == "failed" {
        assert_eq!(m.attempts, 1, "{err}");
        assert!(
            err.contains("refused for good") && err.contains(advice),
            "{err}"
        );
    } else {
        assert_eq!(m.attempts, 2, "{err}");
    }
}

/// A one-thread HTTP server: answers each request with the next status, reports each request.
pub(crate) fn http_server(
    statuses: Vec<u16>,
) -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (conn, status) in listener.incoming().zip(statuses) {
            let mut conn = conn.unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = tx.send((head, String::from_utf8(body).unwrap()));
        }
    });
    (url, rx)
}

#[test]
fn webhook_delivers_the_json_body_after_a_failed_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("w.db")).unwrap();
    let (url, requests) = http_server(vec![503, 200]);
    let policy = Policy {
        cooldown_secs: 3600,
        quiet: None,
        digest: false,
        digest_hour: 8,
        tz: jiff::tz::TimeZone::UTC,
        email: false,
        webhook: Some((url.clone(), WebhookFormat::Generic)),
        push: Vec::new(),
        kinds: Vec::new(),
        expire_secs: 3600,
    };
    let links = LinkCtx {
        dashboard: "http://lanmeter.home:8080".into(),
        secret: store.link_secret().unwrap(),
        ack_secs: 86_400,
        tz: jiff::tz::TimeZone::UTC,
    };
    let now = 1_767_225_600;
    let cond = Condition {
        rule: "offline".into(),
        subject: "device:4".into(),
        severity: Severity::Warning,
        title: "Door camera has been offline for 31 minutes".into(),
        body: "Check its power.".into(),
        facts: vec![("Silent for".into(), "31 minutes".into())],
        links: vec![("Open this device".into(), "/devices/4".into())],
        state: ConditionState::Active,
    };
    let applied = engine::apply(&store, &[cond], now, &policy, false).unwrap();
    engine::schedule(&mut store, &policy, &links, now).unwrap();
    let ch = channels(None, Some("s3cret-token"));
    let first = deliver::work(&mut store, &ch, || now, 30).unwrap();
    assert_eq!(first.failed_attempts, 1);
    let (first_head, _) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        deliver::work(&mut store, &ch, || now + 29, 30).unwrap(),
        deliver::Pass::default(),
        "backoff"
    );
    let second = deliver::work(&mut store, &ch, || now + 30, 30).unwrap();
    assert_eq!(second.delivered, 1);
    let (head, body) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("post /hook http/1.1"), "{head}");
    assert!(
        head.contains("authorization: bearer s3cret-token"),
        "{head}"
    );
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["source"], "lanmeter");
    assert_eq!(v["kind"], "alert");
    assert_eq!(v["rule"], "offline");
    assert_eq!(v["subject"], "device:4");
    assert_eq!(v["severity"], "warning");
    assert_eq!(v["title"], "Door camera has been offline for 31 minutes");
    assert_eq!(v["message"], "Check its power.");
    assert_eq!(v["facts"]["Silent for"], "31 minutes");
    assert_eq!(v["alert_ids"], serde_json::json!(applied.triggered));
    assert_eq!(v["url"], "http://lanmeter.home:8080/alerts");
    let ack = v["ack_url"].as_str().unwrap();
    let token = ack
        .strip_prefix("http://lanmeter.home:8080/alerts/ack?t=")
        .unwrap();
    assert_eq!(
        lanmeter::alerts::links::verify(&links.secret, token, now),
        Ok(applied.triggered[0])
    );
    let a = store.alert(applied.triggered[0]).unwrap().unwrap();
    assert_eq!(a.stage(), "notified");
    let m = &store.outbox_recent(10).unwrap()[0];
    assert_eq!((m.status(), m.attempts), ("delivered", 2));
    // Both attempts carry the message's stable id, so a receiver can drop a copy.
    let key = |head: &str| {
        head.to_ascii_lowercase()
            .lines()
            .find_map(|l| l.strip_prefix("idempotency-key: ").map(str::to_string))
    };
    let want = deliver::message_id(m).to_ascii_lowercase();
    assert_eq!(
        key(&first_head).as_deref(),
        Some(want.as_str()),
        "{first_head}"
    );
    assert_eq!(key(&head).as_deref(), Some(want.as_str()), "{head}");
}

/// A receiver that refuses the request itself (here a wrong token) is not retried for
/// outbox_expire_hours: the message fails at once with advice; a 429 still retries.
#[test]
fn a_webhook_refusing_the_request_fails_at_once_and_a_rate_limit_retries() {
    for (status, want) in [(403u16, "failed"), (429, "retrying")] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.db")).unwrap();
        let (url, requests) = http_server(vec![status, status]);
        store
            .queue_messages(&[], &[webhook_message(url, i64::MAX / 2)], 0)
            .unwrap();
        let ch = Channels {
            mailer: None,
            mail_config_error: None,
            webhook_token: Some("wrong".into()),
            webhook_timeout: Duration::from_secs(10),
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            push: None,
        };
        let now = 1_767_225_600;
        deliver::work(&mut store, &ch, || now, 30).unwrap();
        requests.recv_timeout(Duration::from_secs(10)).unwrap();
        deliver::work(&mut store, &ch, || now + 7200, 30).unwrap();
        let m = &store.outbox_recent(10).unwrap()[0];
        let err = m.last_error.as_deref().unwrap_or("");
        assert_eq!(m.status(), want, "HTTP {status}: {err}");
        if want == "failed" {
            assert_eq!(m.attempts, 1, "{err}");
            assert!(
                err.contains("refused for good") && err.contains("webhook_token"),
                "{err}"
            );
        } else {
            assert_eq!(m.attempts, 2, "{err}");
        }
    }
}

/// aiosmtpd answering RCPT with `answer` (everything else normal), on a free loopback port.
const ANSWERING_SMTP: &str = r#"
import sys
from aiosmtpd.controller import Controller
class Answer:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return sys.argv[2]
c = Controller(Answer(), hostname='127.0.0.1', port=int(sys.argv[1]))
c.start()
print('ready', flush=True)
sys.stdin.read()
"#;

fn answering_smtp(answer: &str) -> (u16, KillOnDrop) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(PYTHON)
        .args(["-c", ANSWERING_SMTP, &port.to_string(), answer])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start aiosmtpd (apt install python3-aiosmtpd): {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    (port, KillOnDrop(child))
}

/// A webhook outbox message to `url` (kept in the subject, as the engine does), due at once.
fn webhook_message(url: String, expires_at: i64) -> lanmeter::store::alerts::NewMessage {
    lanmeter::store::alerts::NewMessage {
        channel: "webhook",
        kind: "test",
        subject: url,
        json_body: Some("{}".into()),
        not_before: 0,
        expires_at,
        ..Default::default()
    }
}

fn email_message(subject: &str) -> lanmeter::store::alerts::NewMessage {
    lanmeter::store::alerts::NewMessage {
        channel: "email",
        kind: "test",
        subject: subject.into(),
        text_body: "hello".into(),
        not_before: 0,
        expires_at: i64::MAX / 2,
        ..Default::default()
    }
}

fn smtp_config(port: u16) -> Config {
    Config {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(port),
        smtp_security: SmtpSecurity::None,
        mail_to: vec!["family@home.test".into()],
        mail_from: Some("lanmeter@home.test".into()),
        delivery_timeout_secs: 10,
        ..Config::default()
    }
}

/// Found by the delivery campaign: a permanent rejection was retried with backoff for
/// outbox_expire_hours. Now a 5xx fails the message at once, with the server's words; a 4xx
/// still retries.
#[test]
fn a_permanent_smtp_rejection_fails_at_once_and_a_temporary_one_retries() {
    for (answer, status) in [
        ("550 5.1.1 no such user here", "failed"),
        ("450 4.2.1 mailbox busy", "retrying"),
    ] {
        let (port, _smtp) = answering_smtp(answer);
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("p.db")).unwrap();
        store
            .queue_messages(&[], &[email_message("rejected?")], 0)
            .unwrap();
        let cfg = smtp_config(port);
        let ch = channels(
            lanmeter::alerts::mail::Mailer::from_config(&cfg).unwrap(),
            None,
        );
        after_a_long_wait(&mut store, &ch, status, "no such user", || {});
    }
}

/// Found by the delivery campaign: the alert thread sent every message in turn, so a webhook
/// receiver that accepts and never answers held up email (and rule evaluation) for the whole
/// timeout, message after message. With one worker per channel the email goes out while the
/// webhook request still hangs.
#[test]
fn a_hanging_webhook_does_not_hold_up_email() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let maildir = dir.path().join("maildir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _smtp = start_smtp(None, &format!("127.0.0.1:{port}"), &maildir, None);
    wait_port(&format!("127.0.0.1:{port}"));
    // Accepts connections and keeps them open without a word until told to let go.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/hook", hang.local_addr().unwrap());
    let (let_go, held) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (conn, _) = hang.accept().unwrap();
        let _ = held.recv();
        drop(conn);
    });
    let now = jiff::Timestamp::now().as_second();
    let mut store = Store::open(&db).unwrap();
    // The webhook message is older, so a single sender would try it first.
    store
        .queue_messages(&[], &[webhook_message(hook_url, now + 3600)], now - 10)
        .unwrap();
    store
        .queue_messages(&[], &[email_message("while the webhook hangs")], now - 5)
        .unwrap();
    let cfg = Config {
        delivery_timeout_secs: 120,
        alert_health: false,
        alert_unusual_usage: false,
        weekly_summary: false,
        ..smtp_config(port)
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread = lanmeter::run::alerts::spawn(
        cfg,
        db.clone(),
        lanmeter::alerts::run::Sources::default(),
        None,
        stop.clone(),
    )
    .unwrap();
    let got = wait_for("the email", PATIENCE, || {
        let m = mails(&maildir);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(got[0]["subject"], "[lanmeter] while the webhook hangs");
    let outbox = Store::open(&db).unwrap().outbox_recent(10).unwrap();
    let hook = outbox.iter().find(|m| m.channel == "webhook").unwrap();
    assert_eq!(
        (hook.status(), hook.attempts),
        ("waiting", 0),
        "the webhook attempt is still hanging while the email went out"
    );
    let _ = let_go.send(());
    holder.join().unwrap();
    let failed = wait_for("the webhook attempt to fail", PATIENCE, || {
        let s = Store::open(&db).ok()?;
        let m = s.outbox_recent(10).ok()?;
        m.into_iter()
            .find(|m| m.channel == "webhook" && m.attempts == 1)
    });
    assert_eq!(failed.status(), "retrying", "{failed:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
}

/// Alerts go to several channels at once through the durable outbox: an ntfy topic (documented
/// header shape, retried after a 503) and a Home Assistant webhook, each its own real HTTP
/// receiver; a Telegram channel limited to new devices gets nothing for an offline alert.
#[test]
fn push_channels_deliver_through_the_outbox_with_their_own_request_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("p.db")).unwrap();
    let (ntfy, ntfy_requests) = http_server(vec![503, 200]);
    let (ha, ha_requests) = http_server(vec![200]);
    let cfg = Config {
        ntfy_url: Some(ntfy.replace("/hook", "/family-alerts")),
        ntfy_token: Some(lanmeter::config::Secret::new("tk_family")),
        homeassistant_webhook_url: Some(lanmeter::config::Secret::new(
            ha.replace("/hook", "/api/webhook/lanmeter-id"),
        )),
        telegram_bot_token: Some(lanmeter::config::Secret::new("1:x")),
        telegram_chat_id: Some("42".into()),
        telegram_alerts: vec!["new_device".into()],
        ..Config::default()
    };
    let policy = Policy::from_config(&cfg, false);
    assert_eq!(policy.push, ["ntfy", "telegram", "homeassistant"]);
    let links = LinkCtx {
        dashboard: "http://lanmeter.home:8080".into(),
        secret: store.link_secret().unwrap(),
        ack_secs: 86_400,
        tz: jiff::tz::TimeZone::UTC,
    };
    let now = 1_767_225_600;
    let cond = Condition {
        rule: "offline".into(),
        subject: "device:4".into(),
        severity: Severity::Critical,
        title: "Camera is offline".into(),
        body: "Not heard for 20 minutes.".into(),
        facts: vec![],
        links: vec![],
        state: ConditionState::Active,
    };
    engine::apply(&store, &[cond], now, &policy, false).unwrap();
    engine::schedule(&mut store, &policy, &links, now).unwrap();
    let mut queued: Vec<String> = store
        .outbox_recent(10)
        .unwrap()
        .into_iter()
        .map(|m| m.channel)
        .collect();
    queued.sort();
    assert_eq!(queued, ["homeassistant", "ntfy"]);
    // Nothing secret is stored in the outbox: the token and the webhook id are read at send time.
    for m in store.outbox_recent(10).unwrap() {
        let all = format!("{} {} {:?}", m.subject, m.text_body, m.json_body);
        assert!(
            !all.contains("tk_family") && !all.contains("lanmeter-id"),
            "{all}"
        );
    }
    let ch = Channels {
        push: Some(lanmeter::config::settings::Live::new(cfg)),
        ..channels(None, None)
    };
    let first = deliver::work(&mut store, &ch, || now, 30).unwrap();
    assert_eq!((first.delivered, first.failed_attempts), (1, 1));
    let second = deliver::work(&mut store, &ch, || now + 30, 30).unwrap();
    assert_eq!(second.delivered, 1);
    for _ in 0..2 {
        let (head, body) = ntfy_requests.recv_timeout(Duration::from_secs(10)).unwrap();
        let h = head.to_ascii_lowercase();
        assert!(head.starts_with("POST /family-alerts HTTP/1.1"), "{head}");
        assert!(h.contains("title: camera is offline\r\n"), "{head}");
        assert!(h.contains("priority: 5\r\n"), "{head}");
        assert!(h.contains("authorization: bearer tk_family\r\n"), "{head}");
        assert_eq!(body, "Not heard for 20 minutes.");
    }
    let (head, body) = ha_requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        head.starts_with("POST /api/webhook/lanmeter-id HTTP/1.1"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["title"].as_str(), v["severity"].as_str()),
        (Some("Camera is offline"), Some("critical"))
    );
    assert!(
        store
            .outbox_recent(10)
            .unwrap()
            .iter()
            .all(|m| m.delivered_at.is_some())
    );
}
