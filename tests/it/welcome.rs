//! The first-run wizard in real headless Chromium against the real `lanmeter demo` (a config
//! file to edit, no admin password yet): the setup link sets the admin password and leads into
//! the wizard; it tells where the Pi is (the demo listens like a mirror port, and the page says
//! what `GET /api/v1/visibility` says), saves the data plan (which then shows on the plan
//! page), sets up e-mail against a real aiosmtpd and receives the test message, and is done.
//! Skipping works at every step, and Settings leads back to it.

use crate::browser::{Browser, DemoOptions, DemoServer, wait_until};
use crate::dashboard::{color_scheme, resize, screenshot, screenshots_dir};
use serde_json::Value;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";
const CONFIG: &str = "# Our household's lanmeter.\n\n# Alerts: tell us about new devices.\nalert_new_device = true\n";

/// A demo with a config file and no admin password, and a browser that has just set the
/// password through the printed setup link (so it stands in the wizard's first step).
fn set_up(dir: &std::path::Path) -> (DemoServer, Browser) {
    std::fs::write(dir.join("lanmeter.toml"), CONFIG).unwrap();
    let demo = DemoServer::start(
        dir,
        DemoOptions {
            days: 2,
            config: Some(&dir.join("lanmeter.toml")),
            ..DemoOptions::default()
        },
    );
    let link = demo
        .setup_link
        .clone()
        .expect("a demo without a password prints its setup link");
    let b = Browser::start();
    resize(&b, 1280, 1000);
    b.go(&link);
    b.type_into("#password", PASSWORD);
    b.type_into("#confirm", PASSWORD);
    b.click("#setup button[type=submit]");
    b.wait_for_path("/welcome");
    (demo, b)
}

fn text_of(b: &Browser, id: &str) -> String {
    wait_until(&format!("#{id}"), || {
        b.js(&format!(
            "return document.getElementById('{id}')?.textContent ?? null"
        ))
        .as_str()
        .map(str::to_string)
    })
}

/// GET `path` with the browser's session; (status, JSON).
fn api(b: &Browser, path: &str) -> (u16, Value) {
    let v = b.js(&format!(
        "const x = new XMLHttpRequest(); x.open('GET', '{path}', false); x.send(); return [x.status, x.responseText]"
    ));
    (
        v[0].as_u64().unwrap() as u16,
        serde_json::from_str(v[1].as_str().unwrap()).unwrap_or(Value::Null),
    )
}

/// A picture for the README's "first hour" into target/screenshots/docs/ (where
/// `scripts/screenshots.sh` copies docs/screenshots from), named like the other pages'.
fn docs_shot(b: &Browser, name: &str) {
    std::fs::create_dir_all(screenshots_dir().join("docs")).unwrap();
    screenshot(b, &format!("docs/{name}"));
}

fn no_sideways_scroll(b: &Browser, page: &str) {
    let v =
        b.js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]");
    assert!(
        v[0].as_i64() <= v[1].as_i64(),
        "{page} scrolls sideways at phone width: {v}"
    );
}

#[test]
fn wizard_after_setup_tells_where_sets_the_plan_and_mails_a_test() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lanmeter.toml");
    let port = crate::browser::free_port();
    let maildir = dir.path().join("maildir");
    let _smtp = crate::alerts::start_smtp(None, &format!("127.0.0.1:{port}"), &maildir, None);
    let (_demo, b) = set_up(dir.path());

    // Step 1: where the Pi is. The demo's synthetic household talks to its router in front
    // of the "Pi", as on a mirror port; the page says what the API says.
    let verdict = text_of(&b, "verdict");
    assert!(
        verdict.contains("The Pi is on a mirror port (or a hub): it sees the household's traffic."),
        "{verdict}"
    );
    let (status, api_verdict) = api(&b, "/api/v1/visibility");
    assert_eq!(status, 200, "{api_verdict}");
    assert_eq!(api_verdict["setup"], "mirror", "{api_verdict}");
    assert_eq!(api_verdict["sees_household"], true);
    assert!(api_verdict["coverage"].is_null());
    let seen = api_verdict["other_devices_seen"].as_u64().unwrap();
    assert!(seen >= 20, "the demo household's devices: {api_verdict}");
    let detail = text_of(&b, "verdict-detail");
    let on_page: u64 = detail
        .split(" it saw ")
        .nth(1)
        .and_then(|r| {
            r.split(" other devices sending traffic that was not to or from the Pi")
                .next()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of other devices in {detail:?}"));
    // The page was made a moment before the API answered: the tally only grows.
    assert!((20..=seen).contains(&on_page), "{detail} / {seen}");
    assert_eq!(
        text_of(&b, "verdict").trim_start_matches(['✓', ' ']),
        api_verdict["headline"].as_str().unwrap(),
        "the page and the API give the one verdict"
    );
    docs_shot(&b, "welcome-where-1280-light");
    b.click("#next");
    b.wait_for_path("/welcome?step=2");

    // Step 2: the plan, with a refused value first (the form comes back with the reason).
    b.type_into("#allowance_gb", "lots");
    b.click("#save-plan");
    assert!(text_of(&b, "error").contains("Allowance"));
    b.type_into("#allowance_gb", "250");
    b.js(
        "document.querySelector('input[name=cycle_kind][value=monthly]').checked = true; return 0",
    );
    b.type_into("#start_day", "15");
    b.click("#save-plan");
    b.wait_for_path("/welcome?step=3&saved=2");
    assert!(text_of(&b, "plan-saved").contains("Plan saved"));

    // Step 3: e-mail to the real aiosmtpd, with a test.
    crate::alerts::wait_port(&format!("127.0.0.1:{port}"));
    b.type_into("#smtp_host", "127.0.0.1");
    b.type_into("#smtp_port", &port.to_string());
    b.js("document.getElementById('smtp_security').value = 'none'; return 0");
    b.type_into("#mail_from", "lanmeter@home.test");
    b.type_into("#mail_to", "parents@home.test");
    b.js("document.getElementById('test-email').scrollIntoView(); return 0");
    b.click("#test-email");
    let tested = text_of(&b, "tested");
    docs_shot(&b, "welcome-notify-1280-light");
    assert!(
        tested.contains("Sent: the mail server accepted it")
            && tested.contains("parents@home.test"),
        "{tested}"
    );
    let mails = crate::alerts::wait_for("the test message", Duration::from_secs(30), || {
        let m = crate::alerts::mails(&maildir);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(mails[0]["to"], "parents@home.test");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("smtp_port = {port}"))
            && text.contains("# Alerts: tell us about new devices."),
        "saved with the file's comments: {text}"
    );
    b.js("document.getElementById('save-notify').scrollIntoView(); return 0");
    b.click("#save-notify");
    b.wait_for_path("/welcome?step=4");
    assert!(b.text().contains("You're set"), "{}", b.text());
    assert!(
        text_of(&b, "restart-note").contains("takes effect when lanmeter restarts"),
        "mail settings wait for a restart"
    );
    b.click("#finish");
    b.wait_for_path("/");

    // The plan from step 2 is the plan.
    b.go(&format!("{}/plan", _demo.base));
    b.wait_for_path("/plan");
    let plan = b.text();
    assert!(plan.contains("250 GB"), "{plan}");
    let (_, report) = api(&b, "/api/v1/plan");
    assert_eq!(
        report["plan"]["allowance_bytes"].as_u64(),
        Some(250_000_000_000),
        "{report}"
    );

    // The System page gives the same verdict.
    b.go(&format!("{}/system", _demo.base));
    b.wait_for_path("/system");
    assert_eq!(
        text_of(&b, "verdict").trim_start_matches(['✓', ' ']),
        api_verdict["headline"].as_str().unwrap()
    );

    // Every step fits a phone, light and dark.
    resize(&b, 390, 1400);
    for scheme in ["light", "dark"] {
        color_scheme(&b, scheme);
        for (step, name) in [(1, "where"), (2, "plan"), (3, "notify"), (4, "done")] {
            let path = format!("/welcome?step={step}");
            b.go(&format!("{}{path}", _demo.base));
            b.wait_for_path(&path);
            no_sideways_scroll(&b, &path);
            docs_shot(&b, &format!("welcome-{name}-390-{scheme}"));
        }
    }
}

#[test]
fn every_step_can_be_skipped_and_settings_leads_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lanmeter.toml");
    let (demo, b) = set_up(dir.path());
    let (_, before) = api(&b, "/api/v1/plan");
    b.click("#skip-all");
    b.wait_for_path("/");
    assert!(b.text().contains("Top devices today"));

    // Later, from Settings: through every step without saving anything.
    b.go(&format!("{}/settings", demo.base));
    b.wait_for_path("/settings");
    b.click("#wizard-link a");
    b.wait_for_path("/welcome");
    assert!(!text_of(&b, "verdict").is_empty());
    b.click("#next");
    b.wait_for_path("/welcome?step=2");
    b.click("#skip");
    b.wait_for_path("/welcome?step=3");
    b.click("#skip");
    b.wait_for_path("/welcome?step=4");
    assert!(b.text().contains("You're set"));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        CONFIG,
        "nothing saved"
    );
    let (_, after) = api(&b, "/api/v1/plan");
    assert_eq!(before["plan"], after["plan"], "the plan is unchanged");
}
