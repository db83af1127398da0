//! The dashboard in real headless Chromium (over WebDriver, with the harness of `browser.rs`)
//! against the real binary: `lanmeter demo` on a fresh demo database, logged in as admin.
//!
//! One test looks (no console errors, no request leaves the box, the live rate moves, no page
//! scrolls sideways on a 360 px phone, screenshots of every page at desktop and phone sizes into
//! target/screenshots/); the other acts (filters, inline rename showing up on the overview, and a
//! device named `<img src=x onerror=alert(1)>` staying text with no script run).

use crate::browser::{Browser, KillOnDrop, free_port, wait_until};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const PASSWORD: &str = "correct horse battery";

/// `lanmeter demo` on a free loopback port; killed when dropped.
struct Demo {
    base: String,
    _proc: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        let port = free_port();
        let mut cmd = Command::new(crate::LANMETER);
        crate::hermetic(&mut cmd);
        let mut child = cmd
            .args(["demo", "--days", "21", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db")
            .arg(dir.path().join("demo.db"))
            .arg("--admin-password-file")
            .arg(&pw)
            .env("TZ", "UTC")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let proc = KillOnDrop(child);
        let mut lines = BufReader::new(out).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("lanmeter demo ended before serving")
                .unwrap();
            if let Some(rest) = line.strip_prefix("dashboard: ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep reading stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Demo {
            base: url.trim_end_matches('/').to_string(),
            _proc: proc,
            _dir: dir,
        }
    }
}

fn login(b: &Browser, base: &str) {
    b.go(&format!("{base}/"));
    wait_until("the login page", || {
        b.path().starts_with("/login").then_some(())
    });
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/");
}

pub(crate) fn resize(b: &Browser, w: u32, h: u32) {
    b.cmd(
        "POST",
        "/window/rect",
        Some(json!({"width": w, "height": h})),
    )
    .unwrap();
}

pub(crate) fn screenshots_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| u32::from(val(c))).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, x)| a | x << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

pub(crate) fn screenshot(b: &Browser, name: &str) {
    let v = b.cmd("GET", "/screenshot", None).unwrap();
    let png = base64_decode(v.as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Console messages at level SEVERE since the last call (chromedriver's log endpoint).
fn console_errors(b: &Browser) -> Vec<String> {
    let logs = b
        .cmd("POST", "/se/log", Some(json!({"type": "browser"})))
        .unwrap_or(Value::Null);
    logs.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].to_string())
        .collect()
}

fn no_sideways_scroll(b: &Browser, page: &str) {
    let v =
        b.js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]");
    let (sw, cw) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    assert!(
        sw <= cw,
        "{page} scrolls sideways at phone width: {sw} > {cw}"
    );
}

#[test]
fn overview_is_live_local_and_every_page_fits_a_phone() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);
    b.element("#today-total");
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // Every resource came from this server.
    let foreign = b.js(&format!(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('{base}/'))"
    ));
    assert_eq!(foreign, json!([]), "requests that left the box");
    let resources = b.js("return performance.getEntriesByType('resource').length");
    assert!(resources.as_i64().unwrap() >= 2, "css and htmx load");

    // The live rate: a figure in Mbit/s, then a different one as htmx polls.
    let first = wait_until("a measured live rate", || {
        let t = b.js("return document.getElementById('rate-down').textContent");
        let t = t.as_str().unwrap_or("").to_string();
        t.ends_with("Mbit/s").then_some(t)
    });
    wait_until("the live rate to change", || {
        let t = b.js("return document.getElementById('rate-down').textContent");
        (t.as_str()
            .is_some_and(|t| t.ends_with("Mbit/s") && t != first))
        .then_some(())
    });
    let device = b
        .js("return document.querySelector('#top-devices a').getAttribute('href')")
        .as_str()
        .unwrap()
        .to_string();

    let pages = [
        ("overview", "/".to_string()),
        ("devices", "/devices".to_string()),
        ("device", device),
        ("people", "/people".to_string()),
        ("system", "/system".to_string()),
        ("settings", "/settings".to_string()),
        ("alerts", "/alerts".to_string()),
    ];
    for (size, w, h) in [("desktop", 1280, 1500), ("phone", 360, 1400)] {
        resize(&b, w, h);
        for (name, path) in &pages {
            b.go(&format!("{base}{path}"));
            b.wait_for_path(path);
            b.element("main h1");
            // Let the first poll of the live rate land before the picture.
            if name == &"overview" {
                wait_until("the live rate", || {
                    let t = b.js("return document.getElementById('rate-down').textContent");
                    t.as_str()
                        .is_some_and(|t| t.ends_with("Mbit/s"))
                        .then_some(())
                });
            }
            if size == "phone" {
                no_sideways_scroll(&b, path);
            }
            screenshot(&b, &format!("{name}-{size}"));
        }
    }
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// The id of the devices-table row whose text contains `text`.
fn row_with(b: &Browser, text: &str) -> String {
    wait_until(&format!("a row with {text}"), || {
        b.js(&format!(
            "const r = [...document.querySelectorAll('#device-rows tr')].find(r => r.textContent.includes({}));
             return r ? r.id : null",
            json!(text)
        ))
        .as_str()
        .map(str::to_string)
    })
}

fn rename(b: &Browser, row: &str, name: &str) {
    b.click(&format!("#{row} details.rename summary"));
    b.type_into(&format!("#{row} input[name=name]"), name);
    b.click(&format!("#{row} details.rename button"));
}

#[test]
fn filters_rename_and_hostile_names_in_headless_chromium() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    let count = || {
        b.js("return document.getElementById('device-count').textContent")
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let all = count();
    assert_eq!(all, "27", "25 devices, the router and today's newcomer");

    // Filter: unknown devices only (htmx swaps the table on change).
    b.js("const s = document.getElementById('filter'); s.value = 'unknown'; s.dispatchEvent(new Event('change', {bubbles: true})); return 0");
    wait_until("the unknown filter", || (count() == "1").then_some(()));
    row_with(&b, "ESP_9F21C4");
    // Search by person, typed.
    b.js("const s = document.getElementById('filter'); s.value = ''; s.dispatchEvent(new Event('change', {bubbles: true})); return 0");
    wait_until("all devices again", || (count() == all).then_some(()));
    b.type_into("#search", "Leo");
    wait_until("the search", || (count() == "3").then_some(()));
    let rows = b.js("return document.getElementById('device-rows').textContent");
    for name in ["Leo's iPhone", "PlayStation 5", "Nintendo Switch"] {
        assert!(
            rows.as_str().unwrap().contains(name),
            "{name} missing: {rows}"
        );
    }
    b.type_into("#search", "");
    wait_until("all devices again", || (count() == all).then_some(()));

    // Inline rename of the newcomer; the row is swapped in place and it is now known.
    let row = row_with(&b, "ESP_9F21C4");
    rename(&b, &row, "Porch sensor");
    wait_until("the renamed row", || {
        let done = b.js(&format!(
            "const r = document.getElementById('{row}');
             return r.textContent.includes('Porch sensor') && !r.querySelector('.tag.new')"
        ));
        (done == true).then_some(())
    });
    b.go(&format!("{base}/"));
    b.wait_for_path("/");
    let text = b.text();
    assert!(text.contains("Porch sensor"), "{text}");
    assert!(
        b.js("return document.getElementById('new-devices').textContent.includes('None')") == true
    );

    // A hostile name stays text everywhere and nothing runs (an alert would break every
    // following WebDriver command with "unexpected alert open").
    let hostile = "<img src=x onerror=alert(1)>";
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    let row = row_with(&b, "Leo's iPhone");
    rename(&b, &row, hostile);
    wait_until("the hostile name as text", || {
        let t = b.js(&format!(
            "return document.getElementById('{row}').textContent"
        ));
        t.as_str()
            .is_some_and(|t| t.contains(hostile))
            .then_some(())
    });
    for path in ["/", "/devices", "/people", "/audit"] {
        b.go(&format!("{base}{path}"));
        b.wait_for_path(path);
        assert!(
            b.text().contains(hostile),
            "{path} does not show the name as text"
        );
        assert_eq!(
            b.js("return document.querySelectorAll('img').length"),
            0,
            "{path}"
        );
    }
    let id = row.trim_start_matches("device-");
    b.go(&format!("{base}/devices/{id}"));
    b.element("#device-name");
    assert_eq!(
        b.js("return document.getElementById('device-name').textContent"),
        hostile
    );
    assert_eq!(b.js("return document.querySelectorAll('img').length"), 0);
}
