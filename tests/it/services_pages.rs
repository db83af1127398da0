//! Per-device services on the pages (issue 29) in real headless Chromium against the real
//! binary: `lanmeter demo` with `per_device_services = true`, remote rows and names added to its
//! database as the flusher and the names writer store them. Tapping an hour of the device's
//! range chart swaps that hour's services in place (htmx, no reload, the URL bookmarkable), the
//! keyboard form does the same, the overview's card and the API give the same bytes, and
//! neither page scrolls sideways on a 390 px phone.

use crate::browser::{Browser, DemoOptions, DemoServer, wait_until};
use crate::dashboard::{resize, screenshot};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// The `data-bytes` of the first element inside `scope` after the text `label`.
fn bytes_in(b: &Browser, scope: &str, label: &str) -> u64 {
    let v = b.js(&format!(
        "const s = document.querySelector({}); if (!s) return null;
         for (const tr of s.querySelectorAll('tr, li')) {{
           if (tr.textContent.includes({})) return tr.querySelector('[data-bytes]').dataset.bytes;
         }}
         return null",
        json!(scope),
        json!(label)
    ));
    v.as_str()
        .unwrap_or_else(|| panic!("{label} in {scope}: {v}"))
        .parse()
        .unwrap()
}

fn fits_the_phone(b: &Browser, page: &str) {
    let v =
        b.js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]");
    let (sw, cw) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    assert!(sw <= cw, "{page} scrolls sideways: {sw} > {cw}");
}

#[test]
fn a_tapped_hour_shows_its_services_in_place_and_the_overview_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lanmeter.toml");
    std::fs::write(&cfg, "timezone = \"UTC\"\nper_device_services = true\n").unwrap();
    let demo = DemoServer::start(
        dir.path(),
        DemoOptions {
            days: 2,
            config: Some(&cfg),
            admin_password: Some(PASSWORD),
            ..DemoOptions::default()
        },
    );
    let base = &demo.base;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let today = now - now % 86_400;
    let yesterday_10 = today - 86_400 + 10 * 3600;
    let hour_now = now - now % 3600;
    let db = rusqlite::Connection::open(dir.path().join("demo.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let id: i64 = db
        .query_row(
            "SELECT id FROM devices WHERE is_gateway = 0 ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let add = |hour: i64, remote: &str, up: i64, down: i64| {
        db.execute(
            "INSERT INTO device_remote_hour (hour, device_id, remote, bytes_up, bytes_down)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![hour, id, remote, up, down],
        )
        .unwrap();
    };
    add(yesterday_10, "203.0.113.5", 4_000_000, 81_000_000);
    add(
        yesterday_10 + 10 * 3600,
        "203.0.113.5",
        1_000_000,
        9_000_000,
    );
    add(yesterday_10, "198.51.100.0/24", 500_000, 2_500_000);
    add(hour_now, "203.0.113.5", 2_000_000, 40_000_000);
    db.execute(
        "INSERT INTO device_names (device_id, remote_ip, name, service, source, dns_ttl_secs,
             first_seen_ns, last_seen_ns)
         VALUES (?1, '203.0.113.5', 'rr1.googlevideo.com', 'YouTube', 'tls', NULL, ?2, ?2)",
        rusqlite::params![id, now * 1_000_000_000],
    )
    .unwrap();
    drop(db);

    let b = Browser::start();
    resize(&b, 390, 1400);
    b.go(&format!("{base}/"));
    wait_until("the login page", || {
        b.path().starts_with("/login").then_some(())
    });
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/");

    // The overview: today's YouTube, most by this device, linked to its page.
    b.element("#top-services-list");
    assert_eq!(bytes_in(&b, "#top-services-list", "YouTube"), 42_000_000);
    let by = b
        .js("return document.querySelector('#top-services-list a.by-device').getAttribute('href')");
    assert_eq!(by, format!("/devices/{id}"));
    fits_the_phone(&b, "/");
    screenshot(&b, "services-overview-phone390");

    // The device page, yesterday: 24 hour bars, each a link to its hour.
    b.go(&format!("{base}/devices/{id}?range=yesterday"));
    b.element("#range-services");
    assert_eq!(bytes_in(&b, "#range-services", "YouTube"), 95_000_000);
    assert_eq!(
        b.js("return document.querySelectorAll('#range-card a.bar-link').length"),
        24
    );
    fits_the_phone(&b, "the device page");
    b.js("window.__same_page = true; return 0");
    // 10:00 is the eleventh bar; a real click (WebDriver) on it.
    let href = b.js(
        "return document.querySelector('#range-card a.bar-link:nth-of-type(11)').getAttribute('href')",
    );
    assert!(
        href.as_str()
            .unwrap()
            .contains(&format!("hour={yesterday_10}")),
        "{href}"
    );
    b.click("#range-card a.bar-link:nth-of-type(11)");
    wait_until("the tapped hour's services", || {
        (b.js("return document.getElementById('hour-h') !== null") == true).then_some(())
    });
    assert_eq!(bytes_in(&b, "#hour-body", "YouTube"), 85_000_000);
    assert_eq!(
        bytes_in(&b, "#hour-body", "198.51.100.0/24"),
        3_000_000,
        "the unnamed network is shown as unknown with its network"
    );
    assert_eq!(
        b.js("return window.__same_page === true"),
        true,
        "htmx swapped the hour in place"
    );
    assert!(
        b.path().contains(&format!("hour={yesterday_10}")),
        "{}",
        b.path()
    );
    fits_the_phone(&b, "the device page with an hour");
    screenshot(&b, "services-device-hour-phone390");

    // The keyboard way: the form picks 20:00.
    b.js(&format!(
        "document.getElementById('hour').value = '{}'; return 0",
        yesterday_10 + 10 * 3600
    ));
    b.click("#hour-form button[type=submit]");
    wait_until("20:00's services", || {
        b.js("const h = document.getElementById('hour-h'); return h && h.dataset.hour")
            .as_str()
            .filter(|h| *h == (yesterday_10 + 10 * 3600).to_string())
            .map(|_| ())
    });
    assert_eq!(bytes_in(&b, "#hour-body", "YouTube"), 10_000_000);
    assert_eq!(b.js("return window.__same_page === true"), true);

    // The API says the same for today as the overview.
    let api = b.js(&format!(
        "const x = new XMLHttpRequest(); x.open('GET', '/api/v1/devices/{id}/services?from={}', false);
         x.send(); return JSON.parse(x.responseText)",
        jiff::Timestamp::from_second(today).unwrap()
    ));
    assert_eq!(api["recording"], true, "{api}");
    assert_eq!(api["services"][0]["service"], "YouTube", "{api}");
    assert_eq!(api["services"][0]["bytes"], 42_000_000, "{api}");
}
