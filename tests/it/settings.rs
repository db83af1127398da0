//! Settings from the browser and the API against the real `lanmeter run` in a network
//! namespace: a change through `PATCH /api/v1/settings` lands in the TOML file with its
//! comments intact, a refused change leaves the file byte-identical, a hand edit shows in
//! `GET /api/v1/settings`, and switching the new-device rule off and on changes what the
//! running alert engine does, without a restart.

use crate::alerts::wait_for;
use crate::daemon::{Daemon, setup};
use crate::{LANMETER, hermetic};
use lanmeter::store::Store;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

/// One request to the daemon's API from inside its namespace; returns (status, JSON body).
fn api(ns: &str, token: &str, method: &str, body: Option<&Value>) -> (u16, Value) {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ])
    .args(["-X", method, "-H"])
    .arg(format!("Authorization: Bearer {token}"));
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data"])
            .arg(b.to_string());
    }
    cmd.arg("http://127.0.0.1:8080/api/v1/settings");
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

/// An admin password (as after first-run setup, so tokens are accepted) and an admin API token
/// for `db`, made with the real CLI.
pub(crate) fn admin_token(db: &std::path::Path) -> String {
    let mut passwd = hermetic(&mut Command::new(LANMETER))
        .args(["passwd", "--db"])
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut passwd.stdin.take().unwrap(),
        b"correct horse battery\n",
    )
    .unwrap();
    assert!(passwd.wait().unwrap().success());
    let out = hermetic(&mut Command::new(LANMETER))
        .args([
            "token",
            "create",
            "settings test",
            "--role",
            "admin",
            "--db",
        ])
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn setting<'a>(all: &'a Value, key: &str) -> &'a Value {
    all["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {all}"))
}

fn new_device_alerts(db: &std::path::Path) -> usize {
    Store::open(db)
        .unwrap()
        .recent_alerts(100)
        .unwrap()
        .iter()
        .filter(|a| a.rule == "new_device")
        .count()
}

/// Waits until the alert thread has looked at every device event so far (the cursor moves
/// past an event once it is old enough to announce).
fn events_seen(db: &std::path::Path) {
    wait_for(
        "the alert thread to pass every device event",
        PATIENCE,
        || {
            let s = Store::open(db).ok()?;
            let max = s.max_device_event_id().ok()?;
            let cursor: i64 = s.alert_state("device_events_cursor").ok()??.parse().ok()?;
            (max > 0 && cursor >= max).then_some(())
        },
    );
}

#[test]
fn settings_api_edits_the_file_and_the_running_alert_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 60);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "alert_interval_secs = 1\nalert_new_device_learning_minutes = 0\nalert_health = false\n\
         alert_unusual_usage = false\nlisten = \"127.0.0.1:8080\"\n\n\
         # The household wants to hear about new devices.\nalert_new_device = true # on\n",
    );
    std::fs::write(&config, &text).unwrap();
    let token = admin_token(&db);
    let mut d = Daemon::start(&p, &config, &db);

    // Read: value, default, restart flag, secret as set/unset only.
    let (status, all) = api(&p.a, &token, "GET", None);
    assert_eq!(status, 200, "{all}");
    assert_eq!(setting(&all, "alert_new_device")["value"], true);
    assert_eq!(setting(&all, "alert_new_device")["needs_restart"], false);
    assert_eq!(setting(&all, "smtp_host")["needs_restart"], true);
    assert_eq!(setting(&all, "alert_cpu_temp_c")["default"], 80);
    assert_eq!(setting(&all, "smtp_password")["is_set"], false);

    // Refused: per-key errors, nothing written.
    let (status, refused) = api(
        &p.a,
        &token,
        "PATCH",
        Some(&json!({"alert_new_device": false, "alert_cpu_temp_c": 500, "quiet_hours_from": 22})),
    );
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "invalid_settings");
    let errors = refused["errors"].as_object().unwrap();
    assert!(
        errors["alert_cpu_temp_c"]
            .as_str()
            .unwrap()
            .contains("40 to 120"),
        "{refused}"
    );
    assert!(
        errors["quiet_hours_from"]
            .as_str()
            .unwrap()
            .contains("set both"),
        "{refused}"
    );
    assert_eq!(errors.len(), 2, "{refused}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        text,
        "the file changed"
    );

    // Accepted: the rule goes off in the file, comments and layout kept, no restart needed.
    let (status, done) = api(
        &p.a,
        &token,
        "PATCH",
        Some(&json!({"alert_new_device": false})),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["restart_needed"], false);
    assert_eq!(done["changed"][0]["old"], "true");
    assert_eq!(done["changed"][0]["new"], "false");
    let after = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        after,
        text.replace(
            "alert_new_device = true # on",
            "alert_new_device = false # on"
        )
    );

    // Two devices join (B pings A): the running engine, told the rule is off, raises nothing.
    let ping = p.exec(&p.b, &["ping", "-c", "3", "-i", "0.2", &p.a_ip.to_string()]);
    assert!(ping.status.success(), "{ping:?}");
    events_seen(&db);
    assert_eq!(
        new_device_alerts(&db),
        0,
        "a new-device alert with the rule off"
    );

    // On again through the API: a third device (B with a new MAC) is announced.
    let (status, done) = api(
        &p.a,
        &token,
        "PATCH",
        Some(&json!({"alert_new_device": true})),
    );
    assert_eq!(status, 200, "{done}");
    crate::netns::run(&[
        "ip",
        "-n",
        &p.b,
        "link",
        "set",
        &p.b_if,
        "address",
        "02:5e:77:00:00:21",
    ]);
    // A's neighbour entry still names the old MAC, so the replies go astray: only B's
    // frames (from the new MAC) matter here.
    let _ = p.exec(&p.b, &["ping", "-c", "3", "-i", "0.2", &p.a_ip.to_string()]);
    let n = wait_for("a new-device alert for the third device", PATIENCE, || {
        let n = new_device_alerts(&db);
        (n > 0).then_some(n)
    });
    assert_eq!(n, 1, "only the device that joined while the rule was on");

    // A hand edit shows in the API at once; a restart-only key says it waits for a restart.
    let hand = std::fs::read_to_string(&config).unwrap().replace(
        "alert_new_device = true # on",
        "alert_new_device = true # on\nalert_cpu_temp_c = 70\nsmtp_host = \"mail.home.test\"",
    );
    std::fs::write(&config, hand).unwrap();
    let (_, all) = api(&p.a, &token, "GET", None);
    assert_eq!(setting(&all, "alert_cpu_temp_c")["value"], 70);
    assert_eq!(setting(&all, "smtp_host")["value"], "mail.home.test");
    assert_eq!(setting(&all, "smtp_host")["restart_pending"], true);

    // The audit log has old → new.
    let audit = Store::open(&db).unwrap().audit_recent(50).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "settings changed" && a.detail == "alert_new_device: true → false"),
        "{audit:?}"
    );
    d.stop();
}

const PASSWORD: &str = "correct horse battery";
const CONFIG: &str = "# Our household's lanmeter.\n\n# Alerts: tell us about new devices.\nalert_new_device = true\n\n# Mail goes through the router.\nsmtp_host = \"fritz.box\" # the router's relay\nsmtp_security = \"none\"\n";

/// `lanmeter demo --config FILE` on a free loopback port, logged in as admin in Chromium.
fn demo_with_config(dir: &std::path::Path) -> (String, crate::browser::DemoServer) {
    demo_with_config_env(dir, &[])
}

/// [`demo_with_config`] with extra environment variables for the process.
fn demo_with_config_env(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (String, crate::browser::DemoServer) {
    std::fs::write(dir.join("lanmeter.toml"), CONFIG).unwrap();
    let demo = crate::browser::DemoServer::start(
        dir,
        crate::browser::DemoOptions {
            days: 2,
            config: Some(&dir.join("lanmeter.toml")),
            admin_password: Some(PASSWORD),
            env,
        },
    );
    (demo.base.clone(), demo)
}

fn dark(b: &crate::browser::Browser, on: bool) {
    b.cmd(
        "POST",
        "/goog/cdp/execute",
        Some(
            json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": [
            {"name": "prefers-color-scheme", "value": if on { "dark" } else { "light" }}]}}),
        ),
    )
    .unwrap();
}

#[test]
fn settings_page_saves_to_the_file_shows_field_errors_and_hand_edits() {
    use crate::browser::{Browser, wait_until};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lanmeter.toml");
    let (base, _demo) = demo_with_config(dir.path());
    let b = Browser::start();
    crate::dashboard::resize(&b, 1280, 1000);
    b.go(&format!("{base}/login?next=/settings"));
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/settings");
    assert_eq!(
        b.js("return document.getElementById('alert_new_device').checked"),
        true
    );
    assert_eq!(
        b.js("return document.getElementById('smtp_host').value"),
        "fritz.box"
    );
    assert!(b.text().contains("Default: 80."), "the default is shown");
    assert_eq!(
        b.js("return document.getElementById('smtp_password-state').textContent"),
        "not set"
    );

    // A refused value: the error beside the field, the typed value kept, the file untouched.
    b.type_into("#alert_cpu_temp_c", "500");
    b.click("#alert_new_device");
    b.click("#save-settings");
    wait_until("the field's error", || {
        b.js("return document.getElementById('alert_cpu_temp_c-error')?.textContent ?? null")
            .as_str()
            .map(str::to_string)
    });
    let err = b.js("return document.getElementById('alert_cpu_temp_c-error').textContent");
    assert!(err.as_str().unwrap().contains("40 to 120"), "{err}");
    assert_eq!(
        b.js("return document.getElementById('alert_cpu_temp_c').value"),
        "500"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), CONFIG);
    assert!(
        b.text().contains("Please fix: CPU temperature (°C)"),
        "{}",
        b.text()
    );
    b.js("document.getElementById('field-alert_cpu_temp_c').scrollIntoView({block: 'center'}); return 0");
    for (theme, on) in [("light", false), ("dark", true)] {
        dark(&b, on);
        crate::dashboard::screenshot(&b, &format!("settings-error-desktop-{theme}"));
    }
    dark(&b, false);

    // Fixed and saved: the file has the new values with its comments and layout.
    b.type_into("#alert_cpu_temp_c", "75");
    b.js("document.getElementById('alert_new_device').checked = false; return 0");
    b.type_into("#smtp_password", "app password 1");
    b.click("#save-settings");
    wait_until("the saved note", || {
        b.js("return document.getElementById('saved')?.textContent ?? null")
            .as_str()
            .map(str::to_string)
    });
    assert!(b.text().contains("Saved 3 changes"), "{}", b.text());
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        text,
        CONFIG.replace("alert_new_device = true", "alert_new_device = false")
            + "alert_cpu_temp_c = 75\nsmtp_password = \"app password 1\"\n"
    );
    assert_eq!(
        b.js("return document.getElementById('smtp_password-state').textContent"),
        "set"
    );
    assert!(
        !b.text().contains("app password 1"),
        "the secret is never shown"
    );

    // A hand edit shows at the next load.
    let closed = crate::browser::free_port();
    std::fs::write(
        &config,
        text.replace(
            "fritz.box\"",
            &format!("127.0.0.1\"\nsmtp_port = {closed}\nmail_to = [\"family@home.test\"]"),
        ),
    )
    .unwrap();
    b.go(&format!("{base}/settings"));
    b.wait_for_path("/settings");
    assert_eq!(
        b.js("return document.getElementById('smtp_host').value"),
        "127.0.0.1"
    );
    assert_eq!(
        b.js("return document.getElementById('smtp_port').value"),
        closed.to_string()
    );

    // The test button tries the saved settings at once and says what happened.
    b.click("#test-email");
    let tested = wait_until("the test outcome", || {
        b.js("return document.getElementById('tested')?.textContent ?? null")
            .as_str()
            .map(str::to_string)
    });
    assert!(tested.contains("Nothing accepts connections"), "{tested}");
    for (size, w) in [("phone", 390), ("desktop", 1280)] {
        crate::dashboard::resize(&b, w, 1400);
        for (theme, on) in [("light", false), ("dark", true)] {
            dark(&b, on);
            let v = b.js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]");
            assert!(
                v[0].as_i64() <= v[1].as_i64(),
                "{size} scrolls sideways: {v} {}",
                b.js("return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className).join(' ')")
            );
            crate::dashboard::screenshot(&b, &format!("settings-{size}-{theme}"));
        }
    }
}

/// One API request with an admin token from the host; returns (status, JSON body).
fn api_at(base: &str, token: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .args(["-H", "Content-Type: application/json", "--data"])
        .arg(body.to_string())
        .arg(format!("{base}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[test]
fn mail_set_up_through_the_api_sends_a_test_message_to_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _demo) = demo_with_config(dir.path());
    let out = hermetic(&mut Command::new(LANMETER))
        .args(["token", "create", "mail test", "--role", "admin", "--db"])
        .arg(dir.path().join("demo.db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = crate::browser::free_port();
    let maildir = dir.path().join("maildir");
    let _smtp = crate::alerts::start_smtp(None, &format!("127.0.0.1:{port}"), &maildir, None);
    crate::alerts::wait_port(&format!("127.0.0.1:{port}"));

    // Set up from scratch (no restart): server, port, sender, recipient.
    let (status, done) = api_at(
        &base,
        &token,
        "PATCH",
        "/api/v1/settings",
        &json!({"smtp_host": "127.0.0.1", "smtp_port": port, "mail_from": "lanmeter@home.test",
                "mail_to": ["family@home.test"]}),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["restart_needed"], true);
    let (status, outcome) = api_at(
        &base,
        &token,
        "POST",
        "/api/v1/settings/test-notification",
        &json!({"channel": "email"}),
    );
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["sent"], true, "{outcome}");
    assert!(
        outcome["message"]
            .as_str()
            .unwrap()
            .contains("family@home.test"),
        "{outcome}"
    );
    let mails = crate::alerts::wait_for("the test message", PATIENCE, || {
        let m = crate::alerts::mails(&maildir);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["to"], "family@home.test");
    assert!(
        mails[0]["text"]
            .as_str()
            .unwrap()
            .contains("email alerts work"),
        "{}",
        mails[0]
    );

    // A server that is not there: not sent, and the answer says so in words.
    let closed = crate::browser::free_port();
    api_at(
        &base,
        &token,
        "PATCH",
        "/api/v1/settings",
        &json!({"smtp_port": closed}),
    );
    let (status, outcome) = api_at(
        &base,
        &token,
        "POST",
        "/api/v1/settings/test-notification",
        &json!({"channel": "email"}),
    );
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["sent"], false, "{outcome}");
    eprintln!("closed port: {}", outcome["message"]);
    assert!(!outcome["message"].as_str().unwrap().is_empty());
}

/// ntfy set up from the settings page against a real HTTP receiver on loopback: "Save and send
/// a test" writes the settings (the token write-only) and the receiver gets the request ntfy
/// documents: a POST to the topic's path, the message as the body, Title, Priority and the
/// access token as a bearer Authorization header.
#[test]
fn ntfy_set_up_in_the_browser_sends_the_documented_request() {
    use crate::browser::{Browser, wait_until};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lanmeter.toml");
    let (base, _demo) = demo_with_config(dir.path());
    let (hook, requests) = crate::alerts::http_server(vec![200]);
    let topic_url = hook.replace("/hook", "/family-alerts-x7");
    let b = Browser::start();
    crate::dashboard::resize(&b, 1280, 1000);
    b.go(&format!("{base}/login?next=/settings"));
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/settings");
    b.type_into("#ntfy_url", &topic_url);
    b.type_into("#ntfy_token", "tk_secret_family");
    b.js("document.getElementById('ntfy_priority').value = 'high'; return 0");
    b.js("document.getElementById('save-test-ntfy').scrollIntoView(); return 0");
    b.click("#save-test-ntfy");
    let tested = wait_until("the test outcome", || {
        b.js("return document.getElementById('tested')?.textContent ?? null")
            .as_str()
            .map(str::to_string)
    });
    assert!(tested.contains("Sent: ntfy accepted"), "{tested}");
    let (head, body) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    let h = head.to_ascii_lowercase();
    assert!(
        head.starts_with("POST /family-alerts-x7 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(h.contains("\r\ntitle: lanmeter test message\r\n"), "{head}");
    assert!(h.contains("\r\npriority: 4\r\n"), "{head}");
    assert!(
        h.contains("\r\nauthorization: bearer tk_secret_family\r\n"),
        "{head}"
    );
    assert_eq!(body, "If you can read this, ntfy alerts work.");
    // Saved in the file; on the page the token is only "set".
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with(CONFIG), "{text}");
    assert!(
        text.contains(&format!("ntfy_url = \"{topic_url}\"")),
        "{text}"
    );
    assert!(text.contains("ntfy_priority = \"high\""), "{text}");
    assert_eq!(
        b.js("return document.getElementById('ntfy_token-state').textContent"),
        "set"
    );
    assert!(!b.text().contains("tk_secret_family"));
    assert!(
        !b.js("return document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .contains("tk_secret_family")
    );
    // The alerts page lists it among the channels in use, without a restart.
    b.go(&format!("{base}/alerts"));
    b.wait_for_path("/alerts");
    assert_eq!(
        b.js("return document.getElementById('push-channels').textContent"),
        "ntfy"
    );
}

/// E-mail from the settings page: a provider preset fills server, port and security and says
/// where to make the app password (nothing saved yet); then a local server is typed in and
/// "Save and send a test" delivers the test message to the real aiosmtpd, the outcome in words.
#[test]
fn mail_preset_fills_the_form_and_the_test_reaches_a_real_smtp_server() {
    use crate::browser::{Browser, wait_until};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lanmeter.toml");
    let (base, _demo) = demo_with_config(dir.path());
    let port = crate::browser::free_port();
    let maildir = dir.path().join("maildir");
    let _smtp = crate::alerts::start_smtp(None, &format!("127.0.0.1:{port}"), &maildir, None);
    crate::alerts::wait_port(&format!("127.0.0.1:{port}"));
    let b = Browser::start();
    crate::dashboard::resize(&b, 1280, 1000);
    b.go(&format!("{base}/login?next=/settings"));
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/settings");

    b.js("document.getElementById('mail_preset').value = 'gmail'; document.getElementById('apply-preset').scrollIntoView(); return 0");
    b.click("#apply-preset");
    let note = wait_until("the provider's note", || {
        b.js("return document.getElementById('preset-note')?.textContent ?? null")
            .as_str()
            .map(str::to_string)
    });
    assert!(note.contains("myaccount.google.com/apppasswords"), "{note}");
    let value = |id: &str| b.js(&format!("return document.getElementById('{id}').value"));
    assert_eq!(value("smtp_host"), "smtp.gmail.com");
    assert_eq!(value("smtp_port"), "587");
    assert_eq!(value("smtp_security"), "starttls");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        CONFIG,
        "nothing saved yet"
    );

    // The household's own server instead (here: aiosmtpd on loopback).
    b.type_into("#smtp_host", "127.0.0.1");
    b.type_into("#smtp_port", &port.to_string());
    b.js("document.getElementById('smtp_security').value = 'none'; return 0");
    b.type_into("#mail_from", "lanmeter@home.test");
    b.type_into("#mail_to", "parents@home.test");
    b.js("document.getElementById('save-test-email').scrollIntoView(); return 0");
    b.click("#save-test-email");
    let tested = wait_until("the test outcome", || {
        b.js("return document.getElementById('tested')?.textContent ?? null")
            .as_str()
            .map(str::to_string)
    });
    assert!(
        tested.contains("Sent: the mail server accepted it")
            && tested.contains("parents@home.test"),
        "{tested}"
    );
    let mails = crate::alerts::wait_for("the test message", PATIENCE, || {
        let m = crate::alerts::mails(&maildir);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(mails[0]["to"], "parents@home.test");
    assert!(
        mails[0]["text"]
            .as_str()
            .unwrap()
            .contains("email alerts work")
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("smtp_port = {port}")), "{text}");
    assert!(
        text.contains("# Mail goes through the router."),
        "comments kept: {text}"
    );
}

/// Accounts from the settings page: the login page names both roles; an admin sets a viewer
/// password (a wrong current admin password changes nothing); the viewer logs in, sees the
/// settings without any form, and the server refuses the viewer's changes (page form and API
/// PATCH, even with the session's CSRF token), leaving the file byte-identical. Changing the
/// admin password ends every other session and keeps this browser logged in.
#[test]
fn viewer_password_from_the_page_and_the_viewer_cannot_change_anything() {
    use crate::browser::{Browser, wait_until};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lanmeter.toml");
    let (base, _demo) = demo_with_config(dir.path());
    let b = Browser::start();
    crate::dashboard::resize(&b, 1280, 1000);
    b.go(&format!("{base}/login?next=/settings"));
    let roles = b.js("return document.getElementById('roles').textContent");
    let roles = roles.as_str().unwrap();
    assert!(
        roles.contains("admin") && roles.contains("viewer") && roles.contains("none is set yet"),
        "{roles}"
    );
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/settings");
    // The outcome of this submit, not the one still on the page from the last.
    let outcome = |b: &Browser| {
        wait_until("the account outcome", || {
            b.js("return document.getElementById('account-outcome')?.textContent ?? null")
                .as_str()
                .map(str::to_string)
        })
    };
    let viewer_pw = "kitchen table sunflower";
    b.type_into("#viewer-current", "not the admin password");
    b.type_into("#viewer-new", viewer_pw);
    b.type_into("#viewer-confirm", viewer_pw);
    b.js("document.getElementById('viewer-save').scrollIntoView({block: 'center'}); return 0");
    b.js("document.getElementById('account-outcome')?.remove(); return 0");
    b.click("#viewer-save");
    let said = outcome(&b);
    assert!(said.contains("current admin password is wrong"), "{said}");
    b.type_into("#viewer-current", PASSWORD);
    b.type_into("#viewer-new", viewer_pw);
    b.type_into("#viewer-confirm", viewer_pw);
    b.js("document.getElementById('viewer-save').scrollIntoView({block: 'center'}); return 0");
    b.js("document.getElementById('account-outcome')?.remove(); return 0");
    b.click("#viewer-save");
    let said = outcome(&b);
    assert!(
        said.contains("Saved: the viewer password is changed"),
        "{said}"
    );
    b.js("document.getElementById('accounts').scrollIntoView(); return 0");
    crate::dashboard::screenshot(&b, "settings-accounts-desktop");

    // The viewer: reads the settings, no form to change anything.
    b.js("document.getElementById('logout').scrollIntoView({block: 'center'}); return 0");
    b.click("#logout");
    b.wait_for_path("/login");
    b.type_into("#password", viewer_pw);
    b.click("#login button[type=submit]");
    b.wait_for_path("/");
    b.go(&format!("{base}/settings"));
    b.wait_for_path("/settings");
    assert_eq!(
        b.js("return document.getElementById('smtp_host').value"),
        "fritz.box"
    );
    let absent = b.js("return ['save-settings', 'accounts', 'try', 'save-test-email', 'apply-preset', 'viewer-save']\
        .filter(id => document.getElementById(id) !== null)");
    assert_eq!(absent, json!([]), "a viewer sees controls to change things");
    assert_eq!(
        b.js("return document.querySelectorAll('#settings-form input:not([disabled]):not([type=hidden]), #settings-form select:not([disabled]), #settings-form textarea:not([disabled])').length"),
        0
    );
    // Even sent by hand with the session's CSRF token, the server refuses the viewer's changes.
    let statuses = b.js(
        "const csrf = document.querySelector('form.logout input[name=csrf]').value;
         return Promise.all([
           fetch('/settings', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'csrf=' + encodeURIComponent(csrf) + '&alert_cpu_temp_c=60'}).then(r => r.status),
           fetch('/api/v1/settings', {method: 'PATCH', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                 body: JSON.stringify({alert_cpu_temp_c: 60})}).then(r => r.status),
           fetch('/settings/password', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'csrf=' + encodeURIComponent(csrf) + '&role=viewer&current=x&new=y&confirm=y'}).then(r => r.status),
         ]);",
    );
    assert_eq!(statuses, json!([403, 403, 403]));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), CONFIG);

    // A second browser logged in as admin; the first logs in as admin and changes the admin
    // password: the second browser's session ends, the first stays logged in.
    let other = Browser::start();
    other.go(&format!("{base}/login?next=/settings"));
    other.type_into("#password", PASSWORD);
    other.click("#login button[type=submit]");
    other.wait_for_path("/settings");
    b.js("document.getElementById('logout').scrollIntoView({block: 'center'}); return 0");
    b.click("#logout");
    b.wait_for_path("/login");
    b.go(&format!("{base}/login?next=/settings"));
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/settings");
    let new_admin = "lighthouse orbit marmalade";
    b.type_into("#admin-current", PASSWORD);
    b.type_into("#admin-new", new_admin);
    b.type_into("#admin-confirm", new_admin);
    b.js("document.getElementById('admin-save').scrollIntoView({block: 'center'}); return 0");
    b.js("document.getElementById('account-outcome')?.remove(); return 0");
    b.click("#admin-save");
    let said = outcome(&b);
    assert!(
        said.contains("admin password is changed") && said.contains("1 other login(s) ended"),
        "{said}"
    );
    b.go(&format!("{base}/settings"));
    b.wait_for_path("/settings");
    assert!(
        b.js("return document.getElementById('save-settings') !== null")
            .as_bool()
            .unwrap()
    );
    other.go(&format!("{base}/settings"));
    wait_until("the other browser to be logged out", || {
        other.path().starts_with("/login").then_some(())
    });
}

/// A setting that needs a restart: the page says so and offers one; "Restart lanmeter now"
/// stops the process cleanly (as SIGTERM does), for systemd's `Restart=always` to start it again
/// (here systemd's `INVOCATION_ID` is set by the test, and the exit is checked).
#[test]
fn a_setting_that_needs_a_restart_is_offered_one_and_the_service_exits_cleanly() {
    use crate::browser::{Browser, wait_until};
    let dir = tempfile::tempdir().unwrap();
    let (base, mut demo) =
        demo_with_config_env(dir.path(), &[("INVOCATION_ID", "0123456789abcdef")]);
    let b = Browser::start();
    crate::dashboard::resize(&b, 1280, 1000);
    b.go(&format!("{base}/login?next=/settings"));
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/settings");
    assert!(
        b.js("return document.getElementById('restart') === null")
            .as_bool()
            .unwrap()
    );
    b.type_into("#smtp_host", "mail.home.test");
    b.click("#save-settings");
    wait_until("the saved note", || {
        b.js("return document.getElementById('saved')?.textContent ?? null")
            .as_str()
            .map(str::to_string)
    });
    assert!(b.text().contains("waits for a restart"));
    crate::dashboard::screenshot(&b, "settings-restart-desktop");
    b.click("#restart-now");
    let said = wait_until("the restarting note", || {
        b.js("return document.getElementById('restarting')?.textContent ?? null")
            .as_str()
            .map(str::to_string)
    });
    assert!(said.contains("systemd starts it again"), "{said}");
    let status = crate::alerts::wait_for("lanmeter to exit", PATIENCE, || {
        demo.proc.0.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
}
