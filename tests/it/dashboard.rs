//! The dashboard in real headless Chromium (over WebDriver, with the harness of `browser.rs`)
//! against the real binary: `lanmeter demo` on a fresh demo database, logged in as admin.
//!
//! One test looks (no console errors, no request leaves the box, the live rate moves, no page
//! scrolls sideways on a 360 px phone, screenshots of every page at desktop and phone sizes into
//! target/screenshots/); the other acts (filters, inline rename showing up on the overview, and a
//! device named `<img src=x onerror=alert(1)>` staying text with no script run).

use crate::browser::{Browser, DemoOptions, DemoServer, wait_until};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

const PASSWORD: &str = "correct horse battery";

/// `lanmeter demo` on a free loopback port (the shared [`DemoServer`]); killed when dropped.
struct Demo {
    base: String,
    db: PathBuf,
    _server: DemoServer,
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let server = DemoServer::start(
            dir.path(),
            DemoOptions {
                days: 21,
                admin_password: Some(PASSWORD),
                ..DemoOptions::default()
            },
        );
        Demo {
            base: server.base.clone(),
            db: dir.path().join("demo.db"),
            _server: server,
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
    assert_eq!(
        all, "26",
        "25 devices and today's newcomer (the router is listed, not counted)"
    );

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
    // The keyboard stays on the renamed row (htmx focuses its `autofocus` link after the swap).
    wait_until("the focus on the renamed row", || {
        let focused = b.js(&format!(
            "const a = document.activeElement;
             return !!a && a.closest('tr') === document.getElementById('{row}')"
        ));
        (focused == true).then_some(())
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

/// Switches the page's `prefers-color-scheme` through the DevTools protocol.
pub(crate) fn color_scheme(b: &Browser, scheme: &str) {
    b.cmd(
        "POST",
        "/goog/cdp/execute",
        Some(json!({"cmd": "Emulation.setEmulatedMedia",
                    "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]}})),
    )
    .unwrap();
}

/// SVG chart labels drawn smaller than 11 px (font size in chart units times the chart's
/// scale on the screen), with their size.
fn small_labels(b: &Browser) -> Vec<String> {
    let sizes = b.js("return [...document.querySelectorAll('svg text')].map(t =>
           [t.textContent, parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a])");
    sizes
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[1].as_f64().unwrap() < 11.0)
        .map(|s| format!("{} at {:.1} px", s[0], s[1].as_f64().unwrap()))
        .collect()
}

/// Every `<progress>` on the page as (id, class, the % in its text, its computed accent
/// colour).
fn bars(b: &Browser) -> Vec<(String, String, f64, String)> {
    let v = b.js("return [...document.querySelectorAll('progress')].map(p =>
        [p.id, p.className, p.textContent, getComputedStyle(p).accentColor])");
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |i: usize| a[i].as_str().unwrap().to_string();
            let pct = s(2).trim_end_matches('%').trim().parse().unwrap();
            (s(0), s(1), pct, s(3))
        })
        .collect()
}

/// The demo's plan (400 GB, its cycle begun 20 days ago) is past its allowance: /plan and the
/// overview say so with the day and the overage, never "not expected to run out"; every bar at
/// or past 100 % is red and one between 90 and 100 % amber, in real computed colours; Leo's
/// phone lists its own, its person's and its group's quotas. Screenshots at 390 px and desktop,
/// light and dark.
#[test]
fn exceeded_plan_and_quotas_are_told_on_plan_overview_and_device_pages() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);

    b.go(&format!("{base}/plan"));
    b.wait_for_path("/plan");
    let state = b.js("return document.getElementById('plan-state').textContent");
    let state = state.as_str().unwrap().to_string();
    assert!(
        state.starts_with("The allowance ran out on ") && state.contains(" over it so far"),
        "{state}"
    );
    let text = b.text();
    assert!(!text.contains("not expected to run out"), "{text}");
    assert_eq!(
        b.js("return document.getElementById('remaining')"),
        Value::Null,
        "an exceeded plan shows nothing left, not 0 B: {text}"
    );
    assert!(text.contains("Safe to use today: nothing"), "{text}");
    let used_pct: f64 = b
        .js("return document.getElementById('used-pct').textContent")
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .trim()
        .parse()
        .unwrap();
    assert!(used_pct >= 100.0, "{used_pct}");
    let red = b.js("return getComputedStyle(document.documentElement).getPropertyValue('--bad')");
    let plan_bars = bars(&b);
    let mut levels = std::collections::BTreeSet::new();
    for (id, class, pct, colour) in &plan_bars {
        if id == "elapsed-bar" {
            continue;
        }
        let want = if *pct >= 100.0 {
            "red"
        } else if *pct >= 90.0 {
            "amber"
        } else {
            ""
        };
        assert_eq!(class, want, "{id} at {pct} %");
        levels.insert(class.clone());
        if class == "red" {
            // #b42318 in the light scheme.
            assert_eq!(colour, "rgb(180, 35, 24)", "{id} {red}");
        }
    }
    assert!(
        levels.contains("red") && levels.contains("amber"),
        "{plan_bars:?}"
    );

    b.go(&format!("{base}/"));
    b.wait_for_path("/");
    assert_eq!(
        b.js("return document.getElementById('plan-state').textContent"),
        state,
        "the overview tells the same state as /plan"
    );
    assert_eq!(
        b.js("return document.getElementById('plan-bar').className"),
        "red"
    );
    // The fullest quota first, and red.
    let ov = bars(&b);
    assert!(
        ov[1].0.starts_with("ov-quota-") && ov[1].2 >= 100.0 && ov[1].1 == "red",
        "{ov:?}"
    );

    // Leo's iPhone: its own quota, Leo's and the kids'.
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    let row = row_with(&b, "Leo's iPhone");
    let id = row.trim_start_matches("device-").to_string();
    b.go(&format!("{base}/devices/{id}"));
    b.element("#device-quotas");
    let q = b.js("return document.getElementById('device-quotas').innerText");
    let q = q.as_str().unwrap();
    for want in [
        "This device, per billing cycle",
        "Person Leo (3 devices together), per billing cycle",
        "Group the kids (",
    ] {
        assert!(q.contains(want), "{want} missing: {q}");
    }
    assert!(!b.text().contains("none set"));
    assert_eq!(bars(&b).len(), 3);

    for (scheme, w, h) in [
        ("light", 1280, 1400),
        ("dark", 1280, 1400),
        ("light", 390, 1600),
        ("dark", 390, 1600),
    ] {
        color_scheme(&b, scheme);
        resize(&b, w, h);
        let size = if w < 500 { "phone390" } else { "desktop" };
        for (name, path) in [
            ("plan", "/plan".to_string()),
            ("overview", "/".to_string()),
            ("device-quotas", format!("/devices/{id}")),
        ] {
            b.go(&format!("{base}{path}"));
            b.wait_for_path(&path);
            b.element("main h1");
            if w < 500 {
                no_sideways_scroll(&b, &path);
            }
            let small = small_labels(&b);
            assert!(small.is_empty(), "{path} at {w} px: {small:?}");
            if scheme == "dark" && name == "plan" {
                // The dark scheme's red, #ff8a80.
                let c = b
                    .js("return getComputedStyle(document.getElementById('used-bar')).accentColor");
                assert_eq!(c, "rgb(255, 138, 128)");
            }
            screenshot(&b, &format!("{name}-{size}-{scheme}"));
        }
    }
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// One definition of "device" (every row but the router) behind every count: the overview's
/// total and "online now", the devices list's total and its online filter, the people page's
/// device chips, and the demo's 25 devices plus today's newcomer.
#[test]
fn one_device_count_on_every_page() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);
    let num = |id: &str| -> usize {
        b.js(&format!(
            "return document.getElementById('{id}').textContent"
        ))
        .as_str()
        .unwrap()
        .trim()
        .trim_end_matches(" devices")
        .parse()
        .unwrap()
    };
    let overview_total = num("device-total");
    assert_eq!(overview_total, 26, "25 devices and today's newcomer");
    assert!(
        !b.text().contains("25 devices"),
        "a stale count in the banner"
    );
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    assert_eq!(num("device-total"), overview_total);
    assert_eq!(num("device-count"), overview_total);
    // The router is listed last, not counted.
    let last = b.js("const r = document.querySelectorAll('#device-rows tr'); return r[r.length - 1].textContent");
    assert!(last.as_str().unwrap().contains("router"), "{last}");
    b.go(&format!("{base}/people"));
    b.wait_for_path("/people");
    // Each device has one person (or "No person set"): the person buckets hold every device.
    let chips = b.js("return document.querySelectorAll('#people .chips li').length");
    assert_eq!(
        chips.as_u64().unwrap() as usize,
        overview_total,
        "people page"
    );
    // "Online now" agrees with the devices list's online filter (read until two reads agree,
    // as the synthetic devices come and go).
    wait_until("the same online count on both pages", || {
        b.go(&format!("{base}/"));
        b.wait_for_path("/");
        let overview = num("online-count");
        b.go(&format!("{base}/devices?filter=online"));
        b.wait_for_path("/devices?filter=online");
        let list = num("device-count");
        (overview == list && overview > 20).then_some(())
    });
}

/// The devices list at 390 px: every row a card no wider than the screen, every name on
/// whole words (each word's text lays out in one box: measured with DOM ranges), this cycle's
/// use shown; a screenshot light and dark.
#[test]
fn devices_list_on_a_390_px_phone_keeps_names_whole() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 390, 1600);
    login(&b, base);
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    no_sideways_scroll(&b, "/devices");
    let split = b.js("const out = [];
         for (const n of document.querySelectorAll('#devices .name')) {
           const t = n.firstChild; if (!t) continue;
           let i = 0;
           for (const w of t.textContent.split(' ')) {
             const r = document.createRange(); r.setStart(t, i); r.setEnd(t, i + w.length);
             const lines = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
             if (w.length > 0 && lines.size > 1) out.push(w);
             i += w.length + 1;
           }
         }
         return out");
    assert_eq!(split, json!([]), "words broken across lines at 390 px");
    let widths = b.js(
        "return [...document.querySelectorAll('#device-rows tr')].map(r => r.getBoundingClientRect().right)",
    );
    let vw = b
        .js("return document.documentElement.clientWidth")
        .as_f64()
        .unwrap();
    let rows = widths.as_array().unwrap();
    assert_eq!(rows.len(), 27, "26 devices and the router");
    for w in rows {
        assert!(
            w.as_f64().unwrap() <= vw,
            "a row wider than the phone: {w} > {vw}"
        );
    }
    // Two lines per device: the cycle's use is shown, not hidden.
    let cyc = b.js("return [...document.querySelectorAll('#device-rows td.cyc')].filter(e => e.offsetParent !== null).length");
    assert_eq!(cyc, 27);
    for scheme in ["light", "dark"] {
        color_scheme(&b, scheme);
        screenshot(&b, &format!("devices-phone390-{scheme}"));
    }

    // Every chart label on the pages with charts is at least 11 px tall as drawn: its font
    // size in chart units times the chart's scale on the screen.
    let row = row_with(&b, "Leo's iPhone");
    let id = row.trim_start_matches("device-");
    for path in [
        "/".to_string(),
        format!("/devices/{id}"),
        "/plan".to_string(),
    ] {
        b.go(&format!("{base}{path}"));
        b.wait_for_path(&path);
        b.element("main h1");
        let small = small_labels(&b);
        assert!(small.is_empty(), "{path}: {small:?}");
        let html_labels = b.js(
            "return [...document.querySelectorAll('p.axis-row span')].map(e => parseFloat(getComputedStyle(e).fontSize))",
        );
        for px in html_labels.as_array().unwrap() {
            assert!(px.as_f64().unwrap() >= 11.0, "{path}: {px}");
        }
        screenshot(&b, &format!("charts{}-phone390", path.replace('/', "-")));
    }
}

/// A merge goes through a page naming both devices and what moves; nothing is chosen in
/// advance; cancelling changes nothing, confirming merges (one device fewer).
#[test]
fn merge_asks_for_confirmation_naming_both_devices() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    let total = || {
        b.js("return document.getElementById('device-total').textContent")
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(total(), "26");
    let printer = row_with(&b, "Printer")
        .trim_start_matches("device-")
        .to_string();
    let anna = row_with(&b, "Anna's iPhone")
        .trim_start_matches("device-")
        .to_string();
    let start_merge = || {
        b.go(&format!("{base}/devices/{printer}"));
        b.element("#merge");
        // Nothing is preselected.
        assert_eq!(
            b.js("return document.getElementById('from').value"),
            "",
            "a device preselected for merging"
        );
        b.js(&format!(
            "document.getElementById('from').value = '{anna}'; return 0"
        ));
        b.click("#merge button[type=submit]");
        b.element("#merge-confirm");
    };
    start_merge();
    assert_eq!(
        b.js("return [document.getElementById('merge-from').textContent, document.getElementById('merge-into').textContent]"),
        json!(["Anna's iPhone", "Printer"])
    );
    let what = b.js("return document.getElementById('merge-what').innerText");
    let what = what.as_str().unwrap();
    assert!(what.contains("of internet traffic"), "{what}");
    assert!(what.contains("person “Anna”"), "{what}");
    screenshot(&b, "merge-confirm-desktop");
    b.click("#merge-cancel");
    b.wait_for_path(&format!("/devices/{printer}"));
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    assert_eq!(total(), "26", "cancel merged anyway");

    // Every device's history up to today's midnight (the demo keeps adding traffic now).
    let export = || {
        let midnight = jiff::Timestamp::now().as_second().div_euclid(86_400) * 86_400;
        let to = jiff::Timestamp::from_second(midnight).unwrap().to_string();
        let out = crate::hermetic(&mut Command::new(crate::LANMETER))
            .args([
                "export", "--period", "hour", "--format", "csv", "--to", &to, "--db",
            ])
            .arg(&demo.db)
            .env("TZ", "UTC")
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let before = export();
    assert!(before.lines().count() > 100, "{before}");

    start_merge();
    b.click("#merge-confirm button[type=submit]");
    b.wait_for_path(&format!("/devices/{printer}"));
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    assert_eq!(total(), "25");
    assert!(!b.text().contains("Anna's iPhone"));
    assert_ne!(export(), before, "the merge moved no history");

    // The printer's page offers the undo; it gives back both devices exactly.
    b.go(&format!("{base}/devices/{printer}"));
    b.element("form.undo");
    assert!(
        b.text()
            .contains("Anna's iPhone was merged into this device")
    );
    screenshot(&b, "merge-undo-offer-desktop");
    b.click("form.undo button[type=submit]");
    b.wait_for_path(&format!("/devices/{anna}"));
    assert_eq!(
        b.js("return document.getElementById('device-name').textContent"),
        "Anna's iPhone"
    );
    assert_eq!(
        export(),
        before,
        "undo did not restore both histories exactly"
    );
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    assert_eq!(total(), "26");
    b.go(&format!("{base}/devices/{printer}"));
    b.element("#device-name");
    assert_eq!(
        b.js("return document.querySelectorAll('form.undo').length"),
        0
    );
}

/// GET `url` from the page (the session's cookie goes along) and return the body; panics on a
/// status other than 200.
fn fetch(b: &Browser, url: &str) -> String {
    let v = b.js(&format!(
        "const x = new XMLHttpRequest(); x.open('GET', {}, false); x.send(); return [x.status, x.responseText]",
        json!(url)
    ));
    assert_eq!(v[0], 200, "{url}: {}", v[1]);
    v[1].as_str().unwrap().to_string()
}

/// The range picker answers "how much did Leo's phone use yesterday?": the page, its
/// bookmark, its JSON download and `lanmeter export` for that day agree to the byte; each bar
/// tells its value; the devices list's CSV download adds up to the API's household total for
/// the same range; a range reaching before the history is marked partial.
#[test]
fn range_picker_yesterday_equals_export_and_downloads_add_up() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    let leo = row_with(&b, "Leo's iPhone")
        .trim_start_matches("device-")
        .to_string();
    b.go(&format!("{base}/devices/{leo}"));
    b.element("#range-form");
    b.js("document.getElementById('range').value = 'yesterday'; return 0");
    b.click("#range-form button[type=submit]");
    wait_until("the yesterday view", || {
        b.path().contains("range=yesterday").then_some(())
    });
    let bookmark = b.path();
    let bytes = |b: &Browser| -> u64 {
        b.element("#range-total");
        b.js("return document.getElementById('range-total').dataset.bytes")
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let page = bytes(&b);
    assert!(page > 0, "Leo's phone used nothing yesterday?");
    assert_eq!(
        b.js("return document.getElementById('range-label').textContent"),
        "Yesterday"
    );
    // 24 hourly bars, each with its value as a tooltip.
    let tips = b.js(
        "return [...document.querySelectorAll('#range-card svg g.bar > title')].map(t => t.textContent)",
    );
    let tips = tips.as_array().unwrap();
    assert_eq!(tips.len(), 24, "{tips:?}");
    assert!(tips[0].as_str().unwrap().contains(" down, "), "{tips:?}");
    screenshot(&b, "device-range-yesterday-desktop");
    // The bookmark gives the same.
    b.go(&format!("{base}{bookmark}"));
    assert_eq!(bytes(&b), page);

    let json: Value = serde_json::from_str(&fetch(
        &b,
        &format!("/devices/{leo}/usage.json?range=yesterday"),
    ))
    .unwrap();
    let row = &json["rows"][0];
    assert_eq!(row["internet_bytes"], page, "{json}");
    assert_eq!(row["device"], "Leo's iPhone");
    let mac = row["mac"].as_str().unwrap().to_string();

    // `lanmeter export` for that day, the device's rows summed.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let yesterday = today.yesterday().unwrap();
    let out = crate::hermetic(&mut Command::new(crate::LANMETER))
        .args(["export", "--period", "hour", "--format", "json"])
        .args(["--from", &yesterday.to_string(), "--to", &today.to_string()])
        .args(["--device", &mac, "--db"])
        .arg(&demo.db)
        .env("TZ", "UTC")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let exported: u64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["internet_download_bytes"].as_u64().unwrap()
                + r["internet_upload_bytes"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(
        exported, page,
        "the page's yesterday differs from lanmeter export"
    );

    // The devices list in the same range: its CSV adds up to the API's household total.
    b.go(&format!("{base}/devices?range=yesterday"));
    b.element("#range-col");
    assert_eq!(
        b.js("return document.getElementById('range-col').textContent"),
        "Yesterday"
    );
    let href = b
        .js("return document.getElementById('dl-csv').getAttribute('href')")
        .as_str()
        .unwrap()
        .to_string();
    let csv = fetch(&b, &href);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "device,person,group,mac,from,to,download_bytes,upload_bytes,internet_bytes,internet"
    );
    let mut sum = 0u64;
    let (mut from, mut to) = (String::new(), String::new());
    let mut leo_row = false;
    for l in lines {
        // Quoted text cells hold no commas in the demo's names but the persons may: split
        // from the right, where the numbers are.
        let cells: Vec<&str> = l.rsplitn(5, ',').collect();
        sum += cells[1].parse::<u64>().unwrap();
        let rest: Vec<&str> = cells[4].split(',').collect();
        from = rest[rest.len() - 2].trim_matches('"').to_string();
        to = rest[rest.len() - 1].trim_matches('"').to_string();
        leo_row |= l.starts_with("\"Leo's iPhone\"") && cells[1] == page.to_string();
    }
    assert!(leo_row, "{csv}");
    let api: Value = serde_json::from_str(&fetch(
        &b,
        &format!("/api/v1/usage?from={from}&to={to}&bucket=day"),
    ))
    .unwrap();
    let total = api["total"]["internet_download_bytes"].as_u64().unwrap()
        + api["total"]["internet_upload_bytes"].as_u64().unwrap();
    assert_eq!(sum, total, "CSV rows vs API household total\n{csv}\n{api}");
    screenshot(&b, "devices-range-yesterday-desktop");

    // Dates from before the history: the range says it is partial.
    b.go(&format!(
        "{base}/devices?range=custom&from=2020-01-01&to={yesterday}"
    ));
    b.element("#range-partial");
    // An impossible range keeps the page, says why, and shows today.
    b.go(&format!(
        "{base}/devices/{leo}?range=custom&from=9999-12-31&to=9999-12-31"
    ));
    b.element("#range-error");
    assert_eq!(
        b.js("return document.getElementById('range-label').textContent"),
        "Today"
    );

    // The plan's past cycle began before the demo's 21 days of history: it says so.
    b.go(&format!("{base}/plan"));
    b.element("#past");
    let past = b.js("return document.getElementById('past').innerText");
    assert!(
        past.as_str()
            .unwrap()
            .contains("partial: the history starts"),
        "{past}"
    );

    // People are chosen from the existing ones; "anna" typed joins "Anna"; the form says
    // "Saved." where it is.
    b.go(&format!("{base}/devices/{leo}"));
    b.element("#people-list");
    let people =
        b.js("return [...document.querySelectorAll('#people-list option')].map(o => o.value)");
    assert!(
        people.as_array().unwrap().contains(&json!("Anna")),
        "{people}"
    );
    assert_eq!(
        b.js("return document.getElementById('owner').getAttribute('list')"),
        "people-list"
    );
    b.type_into("#owner", "anna");
    b.click("#edit button[type=submit]");
    wait_until("the saved page", || {
        b.path().contains("saved=1").then_some(())
    });
    b.element("#saved");
    assert_eq!(
        b.js("return document.getElementById('owner').value"),
        "Anna"
    );
    assert_eq!(
        b.js("return document.getElementById('saved').getBoundingClientRect().top < window.innerHeight"),
        true,
        "the saved note is not in view"
    );
}

/// The demo runs the real alert engine: its Alerts page lists the plan past its allowance,
/// the quotas reached and the newcomer, and nothing else from the stored history is "new".
#[test]
fn demo_alerts_page_lists_plan_quota_and_new_device_alerts() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);
    let text = wait_until("the demo's alerts", || {
        b.go(&format!("{base}/alerts"));
        b.element("main h1");
        let t = b.text();
        (t.contains("Data allowance used up")
            && t.contains("Leo reached its data quota")
            && t.contains("the kids reached its data quota")
            && t.contains("New device on the network: ESP_9F21C4"))
        .then_some(t)
    });
    assert_eq!(
        text.matches("New device on the network").count(),
        1,
        "only the newcomer is new: {text}"
    );
    screenshot(&b, "alerts-demo-desktop");
}

/// Pictures of every page at desktop (1280 px) and phone (390 px) width, light and dark, into
/// target/screenshots/docs/ (`scripts/screenshots.sh` copies them to docs/screenshots). Each
/// page must render its heading without console errors.
#[test]
fn docs_screenshots_of_every_page() {
    let demo = Demo::start();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);
    b.go(&format!("{base}/devices"));
    b.wait_for_path("/devices");
    let leo = row_with(&b, "Leo's iPhone")
        .trim_start_matches("device-")
        .to_string();
    let dir = screenshots_dir().join("docs");
    std::fs::create_dir_all(&dir).unwrap();
    let pages = [
        ("overview", "/".to_string()),
        ("devices", "/devices".to_string()),
        ("device", format!("/devices/{leo}")),
        ("people", "/people".to_string()),
        ("plan", "/plan".to_string()),
        ("quotas", "/plan/quotas".to_string()),
        ("plan-settings", "/plan/settings".to_string()),
        ("alerts", "/alerts".to_string()),
        ("wifi", "/wifi".to_string()),
        ("system", "/system".to_string()),
        ("settings", "/settings".to_string()),
    ];
    for (size, w, h) in [("1280", 1280, 1400), ("390", 390, 1600)] {
        resize(&b, w, h);
        for scheme in ["light", "dark"] {
            color_scheme(&b, scheme);
            for (name, path) in &pages {
                b.go(&format!("{base}{path}"));
                b.wait_for_path(path);
                b.element("main h1");
                let v = b.cmd("GET", "/screenshot", None).unwrap();
                let png = base64_decode(v.as_str().unwrap());
                assert!(png.starts_with(b"\x89PNG"));
                std::fs::write(dir.join(format!("{name}-{size}-{scheme}.png")), png).unwrap();
            }
        }
    }
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// The Internet page (issue 27) with a day of probe minutes and two outages, written through
/// the store as the probe thread writes them: it fits a 390 px phone in light and dark, its
/// SVG labels stay readable, and the printable report and the CSV answer. Screenshots go to
/// target/screenshots/internet-*.png.
#[test]
fn internet_page_fits_a_390_px_phone_in_light_and_dark() {
    use lanmeter::internet::{Group, MinuteRow, Outage, OutageEvent, State};
    let demo = Demo::start();
    let now = jiff::Timestamp::now().as_second();
    let ns = 1_000_000_000i64;
    let rows: Vec<MinuteRow> = (1..=1440)
        .map(|k| {
            let minute = (now / 60 - k) * 60;
            // Slower and lossier in the evening hours, as a congested line would be.
            let evening = (minute / 3600) % 24 >= 19;
            MinuteRow {
                minute,
                rounds: 6,
                up: 6,
                gateway: Group {
                    sent: 18,
                    received: 18,
                    median_us: Some(450),
                    p95_us: Some(900),
                },
                internet: Group {
                    sent: 36,
                    received: if evening { 33 } else { 36 },
                    median_us: Some(if evening { 48_000 } else { 21_000 }),
                    p95_us: Some(if evening { 190_000 } else { 35_000 }),
                },
                dns_queries: 6,
                dns_median_us: Some(3_000),
                ..MinuteRow::default()
            }
        })
        .collect();
    let o1 = Outage {
        kind: State::InternetDown,
        start_ns: (now - 5 * 3600) * ns,
        end_ns: None,
    };
    let o2 = Outage {
        kind: State::LanDown,
        start_ns: (now - 2 * 3600) * ns,
        end_ns: None,
    };
    lanmeter::store::Store::open(&demo.db)
        .unwrap()
        .write_internet(
            &rows,
            &[
                OutageEvent::Opened(o1),
                OutageEvent::Closed(Outage {
                    end_ns: Some(o1.start_ns + 754 * ns),
                    ..o1
                }),
                OutageEvent::Opened(o2),
                OutageEvent::Closed(Outage {
                    end_ns: Some(o2.start_ns + 61 * ns),
                    ..o2
                }),
            ],
            None,
        )
        .unwrap();
    // Passive latency: devices' handshakes a little above the probes' round trip.
    let passive: Vec<lanmeter::internet::passive::PassiveMinute> = rows
        .iter()
        .rev()
        .map(|r| lanmeter::internet::passive::PassiveMinute {
            minute: r.minute,
            handshakes: 20,
            median_us: r.internet.median_us.map(|m| i64::from(m) + 4_000),
            p95_us: r.internet.p95_us.map(|m| i64::from(m) + 30_000),
        })
        .collect();
    lanmeter::store::Store::open(&demo.db)
        .unwrap()
        .write_passive(&passive, &[])
        .unwrap();
    let b = Browser::start();
    let base = &demo.base;
    resize(&b, 1280, 1000);
    login(&b, base);
    for (size, w) in [("1280", 1280), ("390", 390)] {
        resize(&b, w, 2200);
        for scheme in ["light", "dark"] {
            color_scheme(&b, scheme);
            b.go(&format!("{base}/internet"));
            b.wait_for_path("/internet");
            b.element("#report-card");
            let text = b.js("return document.querySelector('main').innerText");
            let text = text.as_str().unwrap();
            assert!(
                text.contains("internet down") && text.contains("router or LAN down"),
                "{text}"
            );
            assert!(text.contains("Evenings 19–23 h"), "{text}");
            // The passive median is drawn in both charts, visibly (a stroke of its own).
            let passive = b.js(
                "return [...document.querySelectorAll('svg.chart.net path.passive')]
                .map(p => [p.getTotalLength(), getComputedStyle(p).stroke])",
            );
            let passive = passive.as_array().unwrap();
            assert_eq!(passive.len(), 2, "{passive:?}");
            assert!(
                passive
                    .iter()
                    .all(|p| p[0].as_f64().unwrap() > 20.0 && p[1] != "none"),
                "{passive:?}"
            );
            if size == "390" {
                no_sideways_scroll(&b, "/internet");
                let small = small_labels(&b);
                assert!(small.len() <= 2, "unreadable chart labels: {small:?}");
            }
            screenshot(&b, &format!("internet-{size}-{scheme}"));
        }
    }
    b.go(&format!("{base}/internet/report"));
    b.element("#report-outages");
    no_sideways_scroll(&b, "/internet/report");
    let csv = fetch(&b, &format!("{base}/internet/report.csv"));
    assert!(csv.starts_with("field,value\nmonth,"), "{csv}");
    assert!(
        csv.contains("\ninternet_down,") && csv.contains("\nlan_down,"),
        "{csv}"
    );
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
