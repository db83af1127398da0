//! Issue 19 (secrets and device-supplied text), against the real `lanmeter run` in a namespace pair, a real SMTP server
//! (aiosmtpd) and a real failing webhook receiver on A's loopback:
//!
//! - the webhook URL's secret path never reaches the outbox errors on /alerts (as a viewer),
//!   the test-webhook result, the audit log or the daemon's log lines;
//! - a DHCP host name and vendor class carrying U+202E, U+200B and an ANSI escape are shown
//!   visibly escaped on the device page, on /alerts and in the new-device e-mail;
//! - a pre-login cookie the client made up is not accepted as a CSRF token.

use crate::alerts::{mails, start_smtp, wait_for, wait_port};
use crate::daemon::{Daemon, setup};
use crate::netns::{KillOnDrop, NetnsPair};
use crate::{LANMETER, hermetic};
use lanmeter::store::Store;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);
/// The part of the webhook URL that is a credential (a Home Assistant webhook id).
const SECRET: &str = "s3cr3t-webhook-id-4f1c";
const ADMIN_PW: &str = "correct horse battery";
const VIEWER_PW: &str = "kitchen table lamp";
/// What the device calls itself: "evil" + RIGHT-TO-LEFT OVERRIDE + "gpj.exe" + ZERO WIDTH
/// SPACE + an ANSI colour escape.
const HOSTNAME: &[u8] = b"evil\xe2\x80\xaegpj.exe\xe2\x80\x8b\x1b[31mred";
const VENDOR_CLASS: &[u8] = b"android-dhcp\xe2\x80\xae-13";

/// A webhook receiver that accepts each connection and closes it without answering (a
/// receiver that crashes mid-request), bound inside namespace `ns`.
fn failing_receiver(p: &NetnsPair) -> (u16, std::thread::JoinHandle<()>) {
    let listener = p.in_ns(&p.a, || std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 256];
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = s.read(&mut buf);
            // Dropped unanswered.
        }
    });
    (port, t)
}

fn passwd(db: &std::path::Path, viewer: bool, pw: &str) {
    let mut cmd = Command::new(LANMETER);
    hermetic(&mut cmd).arg("passwd");
    if viewer {
        cmd.arg("--viewer");
    }
    let mut child = cmd
        .arg("--db")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One HTTP/1.1 exchange over a plain socket (created inside A's namespace by the caller):
/// returns (status line + headers, body).
fn http(port: u16, method: &str, path: &str, cookie: &str, form: Option<&str>) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = form.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Origin: http://127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_string(), body.to_string())
}

fn set_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

fn hidden(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field in {page}"))
        .to_string()
}

/// Logs in with `pw`; returns the session cookie ("lm_session=…") and the page CSRF token.
fn login(port: u16, pw: &str) -> (String, String) {
    let (head, page) = http(port, "GET", "/login", "", None);
    let pre = set_cookie(&head, "lm_pre").expect("the login form plants lm_pre");
    let csrf = hidden(&page, "csrf");
    let form =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("password", pw), ("next", "/")])
            .unwrap();
    let (head, _) = http(port, "POST", "/login", &pre, Some(&form));
    assert!(
        head.starts_with("HTTP/1.1 303"),
        "login with {pw:?}: {head}"
    );
    let session = set_cookie(&head, "lm_session").expect("a session cookie");
    let (_, home) = http(port, "GET", "/alerts", &session, None);
    let csrf = home
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .or_else(|| home.split("name=\"csrf\" value=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
        .to_string();
    (session, csrf)
}

/// The raw characters that must never reach a page or an e-mail.
fn assert_escaped(what: &str, text: &str) {
    for (c, name) in [
        ('\u{202e}', "U+202E"),
        ('\u{200b}', "U+200B"),
        ('\u{1b}', "ESC"),
    ] {
        assert!(!text.contains(c), "{what} shows a raw {name}");
    }
    assert!(
        text.contains("evil\\u{202e}gpj.exe\\u{200b}\\x1b[31mred"),
        "{what} does not show the host name escaped"
    );
}

#[test]
fn webhook_secrets_stay_out_of_pages_audit_and_logs_and_device_names_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 60);
    let maildir = dir.path().join("maildir");
    let (hook_port, _receiver) = failing_receiver(&p);
    let webhook = format!("http://127.0.0.1:{hook_port}/api/webhook/{SECRET}");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "alert_interval_secs = 1\nalert_new_device_learning_minutes = 0\nalert_health = false\n\
         alert_unusual_usage = false\noutbox_retry_secs = 1\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = 2525\nsmtp_security = \"none\"\nmail_from = \"lanmeter@home.test\"\n\
         mail_to = [\"family@home.test\"]\nlisten = \"127.0.0.1:8080\"\n\
         dashboard_url = \"http://127.0.0.1:8080\"\nwebhook_url = \"{webhook}\"\n\
         delivery_timeout_secs = 2\n"
    ));
    std::fs::write(&config, text).unwrap();
    passwd(&db, false, ADMIN_PW);
    passwd(&db, true, VIEWER_PW);
    let _smtp: KillOnDrop = start_smtp(Some(&p.a), "127.0.0.1:2525", &maildir, None);
    p.in_ns(&p.a, || wait_port("127.0.0.1:2525"));

    let mut d = Daemon::start(&p, &config, &db);
    // B announces itself by DHCP with the hostile host name and vendor class.
    let frame =
        crate::devices::dhcp_discover(&p.b_mac.to_string(), &[(12, HOSTNAME), (60, VENDOR_CLASS)]);
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let sent = p.exec(
        &p.b,
        &[
            "/usr/bin/python3",
            "-c",
            "import socket,sys; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); \
             s.bind((sys.argv[1], 0)); s.send(bytes.fromhex(sys.argv[2]))",
            &p.b_if,
            &hex,
        ],
    );
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );

    // The new-device alert about B, its e-mail, and a failed webhook attempt.
    let b_mac = p.b_mac.to_string();
    let mail = wait_for("the new-device e-mail about B", PATIENCE, || {
        mails(&maildir)
            .into_iter()
            .find(|m| m["text"].as_str().is_some_and(|t| t.contains(&b_mac)))
    });
    let device_id: i64 = wait_for("B's alert and a failed webhook attempt", PATIENCE, || {
        let s = Store::open(&db).ok()?;
        let hook_failed = s
            .outbox_recent(100)
            .ok()?
            .iter()
            .any(|m| m.channel == "webhook" && m.attempts >= 1 && m.last_error.is_some());
        let alert = s
            .recent_alerts(100)
            .ok()?
            .into_iter()
            .find(|a| a.rule == "new_device" && a.facts.iter().any(|(_, v)| v == &b_mac))?;
        hook_failed.then(|| alert.subject.strip_prefix("device:")?.parse().ok())?
    });

    // The e-mail: subject, text and HTML all escaped.
    for part in ["subject", "text", "html"] {
        let t = mail[part].as_str().unwrap();
        assert!(
            !t.contains('\u{202e}') && !t.contains('\u{200b}') && !t.contains('\u{1b}'),
            "raw character in the e-mail's {part}: {t}"
        );
    }
    assert_escaped("the e-mail's text", mail["text"].as_str().unwrap());
    assert_escaped("the e-mail's HTML", mail["html"].as_str().unwrap());

    let (pages, audit, test_result, forged) = p.in_ns(&p.a, || {
        let (viewer, _) = login(8080, VIEWER_PW);
        let (_, alerts) = http(8080, "GET", "/alerts", &viewer, None);
        let (_, device) = http(8080, "GET", &format!("/devices/{device_id}"), &viewer, None);
        let (admin, csrf) = login(8080, ADMIN_PW);
        assert!(!csrf.is_empty(), "no CSRF token on the admin's page");
        let form = serde_urlencoded::to_string([("csrf", csrf.as_str())]).unwrap();
        let (_, test_result) = http(8080, "POST", "/alerts/test-webhook", &admin, Some(&form));
        let (_, audit) = http(8080, "GET", "/audit", &admin, None);
        // A pre-login cookie the client chose, submitted with the same value in the form
        // (double submit), is refused: only tokens the server signed count.
        let made_up = "ab".repeat(32);
        let form = serde_urlencoded::to_string([
            ("csrf", made_up.as_str()),
            ("password", ADMIN_PW),
            ("next", "/"),
        ])
        .unwrap();
        let (forged, _) = http(
            8080,
            "POST",
            "/login",
            &format!("lm_pre={made_up}"),
            Some(&form),
        );
        // CR/LF in a one-line field of the device form is refused, as the API refuses it.
        let form = serde_urlencoded::to_string([
            ("csrf", csrf.as_str()),
            ("name", "Emma\r\nSet-Cookie: x=1"),
        ])
        .unwrap();
        let (crlf, crlf_page) = http(
            8080,
            "POST",
            &format!("/devices/{device_id}"),
            &admin,
            Some(&form),
        );
        // The device page answers again (422) with the reason next to the field and the form
        // kept; the CR LF stays in the escaped form value and never reaches a header.
        assert!(crlf.starts_with("HTTP/1.1 422"), "{crlf}");
        assert!(
            !crlf.to_ascii_lowercase().contains("set-cookie: x=1"),
            "{crlf}"
        );
        assert!(
            crlf_page.contains(
                "The name contains control characters (line breaks included): use one line."
            ),
            "{crlf_page}"
        );
        // Unknown API tokens: 401 up to the per-minute allowance, then 429 with Retry-After.
        let statuses: Vec<String> = (0..14)
            .map(|i| {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", 8080)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                write!(
                    s,
                    "GET /api/v1/devices HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
                     Authorization: Bearer lm_{i:064}\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out.lines().next().unwrap_or("").to_string()
            })
            .collect();
        ((alerts, device), audit, test_result, (forged, statuses))
    });
    let (alerts, device) = pages;
    let (forged, statuses) = forged;
    let n401 = statuses.iter().filter(|s| s.contains(" 401 ")).count();
    let n429 = statuses.iter().filter(|s| s.contains(" 429 ")).count();
    assert_eq!((n401, n429), (10, 4), "{statuses:#?}");

    assert_escaped("/alerts", &alerts);
    assert_escaped("the device page", &device);
    assert!(
        device.contains("android-dhcp\\u{202e}-13"),
        "the vendor class is not shown escaped"
    );
    let shown = format!("127.0.0.1:{hook_port}/…");
    assert!(
        alerts.contains(&shown) || alerts.contains(&format!("127.0.0.1:{hook_port}/&#8230;")),
        "the outbox error names the receiver redacted"
    );
    assert!(
        !alerts.contains(SECRET),
        "/alerts (viewer) shows the webhook's secret path"
    );
    assert!(!device.contains(SECRET));
    assert!(
        !test_result.contains(SECRET),
        "the test-webhook result shows the secret path"
    );
    assert!(test_result.contains("webhook"), "{test_result}");
    assert!(audit.contains("test webhook"), "{audit}");
    assert!(
        !audit.contains(SECRET),
        "the audit log shows the webhook's secret path"
    );
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");

    let log = d.stop();
    let log = format!("{}\n{log}", d.log_text());
    assert!(
        log.lines().any(|l| l.contains("channel=webhook")),
        "no webhook delivery line in the log"
    );
    // Fourteen unknown tokens from one address: one INFO line and one WARN, not fourteen.
    let token_lines = log
        .lines()
        .filter(|l| l.contains("unknown API token") || l.contains("unknown or revoked API token"))
        .count();
    assert_eq!(token_lines, 2, "{log}");
    let leaked: Vec<&str> = log.lines().filter(|l| l.contains(SECRET)).collect();
    assert!(
        leaked.is_empty(),
        "log lines with the secret path: {leaked:#?}"
    );
    // Stored outbox errors are redacted too, not only their display.
    let s = Store::open(&db).unwrap();
    for m in s.outbox_recent(100).unwrap() {
        if let Some(e) = &m.last_error {
            eprintln!("stored outbox error ({}): {e}", m.channel);
            assert!(!e.contains(SECRET), "stored error: {e}");
        }
    }
}
