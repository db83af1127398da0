//! Services on the device page, the overview and the API, through `router(state).oneshot(..)`
//! on a real SQLite file filled through the store API as the flusher and the names writer do.
use crate::auth::Role;
use crate::config::Config;
use crate::endpoints::{Remote, RemoteUsage};
use crate::model::{MacAddr, Sighting};
use crate::names::table::Entry;
use crate::store::Store;
use crate::store::auth::SessionRow;
use crate::web::{AppState, Clock, router};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const HOST: &str = "lanmeter.test:8080";
/// 2026-04-11T20:00:00Z: 22:00 in Berlin (UTC+2), whose midnight was 2026-04-10T22:00:00Z.
const NOW: i64 = 1_775_937_600;
const MIDNIGHT: i64 = NOW - 22 * 3600;
const NS: i64 = 1_000_000_000;

struct Env {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    state: AppState,
}

fn env(on: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let cfg = Config {
        timezone: Some("Europe/Berlin".into()),
        web_host_names: vec!["lanmeter.test".into()],
        per_device_services: on,
        ..Config::default()
    };
    let state = AppState::new(cfg, &path, None)
        .unwrap()
        .with_clock(Clock::manual(NOW));
    let st = Store::open(&path).unwrap();
    st.set_password(Role::Admin, "not-a-real-hash", NOW)
        .unwrap();
    st.insert_session(&SessionRow {
        id_digest: crate::auth::token_digest(&token()),
        role: Role::Viewer,
        csrf: "csrf-viewer".into(),
        created_at: NOW,
        last_seen: NOW,
        client: "192.168.1.9".into(),
    })
    .unwrap();
    Env {
        _dir: dir,
        path,
        state,
    }
}

fn token() -> String {
    format!("{:0>64}", "viewer")
}

impl Env {
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let mut b = Request::builder()
            .method("GET")
            .uri(path)
            .header(header::HOST, HOST)
            .header(header::COOKIE, format!("lm_session={}", token()));
        let addr: std::net::SocketAddr = "192.168.1.9:5000".parse().unwrap();
        b.extensions_mut()
            .unwrap()
            .insert(axum::extract::ConnectInfo(addr));
        let r = router(self.state.clone())
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn mac(n: u8) -> MacAddr {
    format!("dc:a6:32:00:00:{n:02x}").parse().unwrap()
}

/// Two devices: the TV (YouTube over two addresses, one unnamed address) and the phone
/// (YouTube too, and an unnamed /24), with an hour before local midnight that today must
/// leave out. Returns the devices' ids (TV, phone).
fn fill(path: &std::path::Path) -> (i64, i64) {
    let mut st = Store::open(path).unwrap();
    let seen = |m| Sighting {
        mac: m,
        first_seen: (NOW - 86_400) * NS,
        last_seen: (NOW - 60) * NS,
        is_gateway: false,
    };
    st.write_flush(&[], &[seen(mac(1)), seen(mac(2))]).unwrap();
    let row = |m: u8, hour: i64, remote: Option<Remote>, up, down| RemoteUsage {
        mac: mac(m),
        minute: hour + 120,
        remote,
        up,
        down,
    };
    let v4 = |a: u32| Some(Remote::V4(a));
    let net = Some(Remote::V4Net(0xcb00_7100));
    st.write_remotes(&[
        // 23:00 local yesterday: not today.
        row(1, MIDNIGHT - 3600, v4(0x0a00_0001), 1, 50_000_000),
        // 00:00 local: today's first hour.
        row(1, MIDNIGHT, v4(0x0a00_0001), 2_000, 3_000_000_000),
        row(1, MIDNIGHT, v4(0x0a00_0002), 1_000, 1_000_000_000),
        row(1, MIDNIGHT, v4(0x0a00_0003), 500, 400_000_000),
        row(1, MIDNIGHT, None, 10, 7_000),
        // The current hour.
        row(1, NOW, v4(0x0a00_0001), 300, 200_000_000),
        row(2, NOW, v4(0x0a00_0001), 700, 900_000_000),
        row(2, NOW, net, 40, 60_000_000),
    ])
    .unwrap();
    let named = |m: u8, ip: &str, name: &str| {
        (
            (mac(m), ip.parse().unwrap()),
            Entry {
                name: name.into(),
                source: crate::names::Source::Dns,
                first_seen: MIDNIGHT * NS,
                last_seen: NOW * NS,
                ttl: Some(300),
            },
        )
    };
    st.write_names(
        &[
            named(1, "10.0.0.1", "r1.googlevideo.com"),
            named(1, "10.0.0.2", "r2.googlevideo.com"),
            named(2, "10.0.0.1", "r1.googlevideo.com"),
        ],
        0,
    )
    .unwrap();
    let ids: Vec<(MacAddr, i64)> = st
        .list_devices()
        .unwrap()
        .iter()
        .map(|d| (d.mac, d.id))
        .collect();
    let id = |m| ids.iter().find(|(x, _)| *x == m).unwrap().1;
    (id(mac(1)), id(mac(2)))
}

/// The `data-bytes` of the first element after `anchor` and then `label` in `body`.
fn bytes_after(body: &str, anchor: &str, label: &str) -> u64 {
    let a = body
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor}: {body}"));
    let l = a + body[a..]
        .find(label)
        .unwrap_or_else(|| panic!("{label} after {anchor}: {body}"));
    let d = l + body[l..].find("data-bytes=\"").unwrap() + "data-bytes=\"".len();
    body[d..d + body[d..].find('"').unwrap()].parse().unwrap()
}

fn rfc(s: i64) -> String {
    jiff::Timestamp::from_second(s).unwrap().to_string()
}

/// One day, three views: a device's YouTube line on its page today, its part of the
/// overview's YouTube line (it used it most), and both APIs agree to the byte; the hour
/// before local midnight is in none of them, and a tapped hour shows only that hour.
#[tokio::test]
async fn device_page_overview_and_api_agree_on_today() {
    let e = env(true);
    let (tv, phone) = fill(&e.path);
    let tv_youtube = 2_000 + 3_000_000_000 + 1_000 + 1_000_000_000 + 300 + 200_000_000;
    let phone_youtube = 700 + 900_000_000;

    let (status, page) = e.get(&format!("/devices/{tv}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("What it used: Today"), "{page}");
    let on_page = bytes_after(&page, "id=\"range-services\"", "YouTube");
    assert_eq!(on_page, tv_youtube);
    assert_eq!(
        bytes_after(&page, "id=\"range-services\"", "no name seen for 10.0.0.3"),
        400_000_500
    );
    // The chart's hour bars open their hour; the form lists today's hours for keyboards.
    assert!(
        page.contains(&format!("hour={MIDNIGHT}#hour-services")),
        "{page}"
    );
    assert!(page.contains(&format!("<option value=\"{MIDNIGHT}\">Sat 00:00")));
    assert!(!page.contains("id=\"hour-h\""), "{page}");

    let (_, overview) = e.get("/").await;
    assert!(overview.contains("What used the most today"), "{overview}");
    let anchor = "id=\"top-services-list\"";
    assert_eq!(
        bytes_after(&overview, anchor, "YouTube"),
        tv_youtube + phone_youtube
    );
    let by = bytes_after(&overview, anchor, &format!("href=\"/devices/{tv}\""));
    assert_eq!(by, on_page);
    assert!(overview.contains("unknown (203.0.113.0/24)"), "{overview}");
    // 'other' is no service: not a line of the card.
    assert!(!overview.contains("everything else"), "{overview}");

    let today = format!("from={}&to={}", rfc(MIDNIGHT), rfc(NOW + 1));
    let d = e
        .json(&format!("/api/v1/devices/{tv}/services?{today}"))
        .await;
    assert_eq!(d["recording"], true);
    assert_eq!(d["services"][0]["service"], "YouTube");
    assert_eq!(d["services"][0]["bytes"], on_page);
    assert_eq!(
        d["services"][0]["names"],
        serde_json::json!(["r1.googlevideo.com", "r2.googlevideo.com"])
    );
    assert_eq!(d["services"][1]["kind"], "unknown");
    assert_eq!(d["services"][1]["remote"], "10.0.0.3");
    assert_eq!(d["services"][2]["kind"], "other");
    let h = e.json(&format!("/api/v1/services?{today}")).await;
    let yt = &h["services"][0];
    assert_eq!(yt["service"], "YouTube");
    assert_eq!(yt["bytes"], tv_youtube + phone_youtube);
    assert_eq!(yt["devices"][0]["device_id"], tv);
    assert_eq!(yt["devices"][0]["bytes"], on_page);
    assert_eq!(yt["devices"][1]["device_id"], phone);
    assert_eq!(yt["devices"][1]["bytes"], phone_youtube);
    // Every line's parts add up to the line.
    for s in h["services"].as_array().unwrap() {
        let parts: u64 = s["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(parts, s["bytes"].as_u64().unwrap(), "{s}");
    }

    // A tapped hour: only the current hour's YouTube.
    let (_, tapped) = e
        .get(&format!("/devices/{tv}?range=today&hour={NOW}"))
        .await;
    assert!(tapped.contains("id=\"hour-h\""), "{tapped}");
    assert_eq!(
        bytes_after(&tapped, "id=\"hour-services\"", "YouTube"),
        200_000_300
    );
    assert!(
        tapped.contains(&format!("<option value=\"{NOW}\" selected>")),
        "{tapped}"
    );

    // Yesterday on the page holds the hour before midnight, and says nothing of retention.
    let (_, y) = e.get(&format!("/devices/{tv}?range=yesterday")).await;
    assert_eq!(
        bytes_after(&y, "id=\"range-services\"", "YouTube"),
        50_000_001
    );
    assert!(!y.contains("id=\"services-kept\""), "{y}");
    // A month reaches beyond the 7 kept days: said, and the kept hours still shown.
    let (_, m) = e.get(&format!("/devices/{tv}?range=month")).await;
    assert!(m.contains("Services are kept 7 days"), "{m}");
    assert_eq!(
        bytes_after(&m, "id=\"range-services\"", "YouTube"),
        tv_youtube + 50_000_001
    );
    // Charted by day: a day's bar opens that day.
    assert!(
        m.contains(&format!(
            "/devices/{tv}?range=custom&amp;from=2026-04-11&amp;to=2026-04-11#top-services"
        )) || m.contains(&format!(
            "/devices/{tv}?range=custom&from=2026-04-11&to=2026-04-11#top-services"
        )),
        "{m}"
    );
}

/// With the setting off: no card on the overview, an empty list with `recording: false`,
/// and the device page's hint; nothing is read (the table is gone, and no page fails).
#[tokio::test]
async fn with_the_setting_off_nothing_is_shown_or_read() {
    let e = env(false);
    let (tv, _) = fill(&e.path);
    let conn = rusqlite::Connection::open(&e.path).unwrap();
    conn.execute_batch("ALTER TABLE device_remote_hour RENAME TO gone")
        .unwrap();
    drop(conn);
    let (status, overview) = e.get("/").await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert!(!overview.contains("What used the most today"), "{overview}");
    let (status, page) = e.get(&format!("/devices/{tv}?hour={NOW}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Learn which services each device uses"),
        "{page}"
    );
    assert!(!page.contains("#hour-services"), "{page}");
    for path in [
        format!("/api/v1/devices/{tv}/services"),
        "/api/v1/services".to_string(),
    ] {
        let v = e.json(&path).await;
        assert_eq!(v["recording"], false, "{v}");
        assert_eq!(v["services"], serde_json::json!([]), "{v}");
    }
    let (status, _) = e.get("/api/v1/devices/999/services").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// With the setting on and services stored, what leaves the box carries none of them: the
/// `/metrics` scrape, a remote-write batch as the remote-write worker builds it from the
/// store, and the weekly summary e-mail (the webhook and push texts are alert texts, built
/// from the same alert rows as the e-mail). No setting sends services anywhere, so the names,
/// services and remote addresses of `fill` must appear in none of them.
#[tokio::test]
async fn services_never_leave_the_box() {
    let e = env(true);
    fill(&e.path);
    let mut st = Store::open(&e.path).unwrap();
    // Usage in the same minutes, so every output has the devices' numbers to carry.
    let counts = crate::model::Counts {
        frames_sent: 10,
        frames_received: 10,
        bytes_sent: 5_000,
        bytes_received: 900_000,
        internet_upload_bytes: 5_000,
        internet_download_bytes: 900_000,
    };
    st.write_flush(
        &[1u8, 2].map(|m| crate::model::MinuteUsage {
            mac: mac(m),
            minute: NOW - NOW.rem_euclid(60) - 120,
            counts,
        }),
        &[],
    )
    .unwrap();
    let secret = [
        "googlevideo",
        "YouTube",
        "10.0.0.",
        "203.0.113",
        "r1.google",
    ];
    let leaks = |what: &str, text: &str| {
        for s in secret {
            assert!(!text.contains(s), "{what} carries {s:?}: {text}");
        }
    };
    // The same strings do show where services are meant to be read: on this box's API.
    let (_, api) = e
        .get(&format!(
            "/api/v1/services?from={}&to={}",
            rfc(MIDNIGHT - 3600),
            rfc(NOW + 3600)
        ))
        .await;
    assert!(secret.iter().all(|s| api.contains(s)), "{api}");
    // The scrape (an admin-less viewer session reads it on this box).
    let (status, metrics) = e.get("/metrics").await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    assert!(metrics.contains("lanmeter_"), "{metrics}");
    leaks("/metrics", &metrics);
    // Remote write: the batch the worker would send, from the same store reads.
    let rows = st.usage_rows_between(i64::MIN, NOW).unwrap();
    assert!(!rows.is_empty());
    let devices: Vec<crate::remote::DeviceLabels> = st
        .list_devices()
        .unwrap()
        .into_iter()
        .map(|d| crate::remote::DeviceLabels {
            id: d.id,
            mac: d.mac.to_string(),
            name: d.display_name().unwrap_or("").to_string(),
            person: d.user.owner.clone().unwrap_or_default(),
            group: d.user.group.clone().unwrap_or_default(),
            is_gateway: d.is_gateway,
        })
        .collect();
    let batch = crate::remote::build("home", &devices, &[], &rows, Some(NOW - NOW.rem_euclid(60)));
    assert!(batch.samples > 0);
    let body = crate::remote::proto::write_request(&batch.series);
    leaks("remote write", &String::from_utf8_lossy(&body));
    // The weekly summary over the week that ends at the next local midnight.
    let cfg = e.state.config();
    let links = crate::alerts::render::LinkCtx::new(cfg, "secret".into());
    let end = jiff::Timestamp::from_second(MIDNIGHT + 86_400)
        .unwrap()
        .to_zoned(links.tz.clone());
    let week = crate::alerts::summary::build(&st, &links, &end).unwrap();
    let mail = crate::alerts::render::weekly_mail(&week).unwrap();
    assert!(
        mail.text.contains("dc:a6:32") || mail.text.contains("GB") || mail.text.contains("MB"),
        "{}",
        mail.text
    );
    leaks(
        "weekly mail",
        &format!("{}\n{}\n{}", mail.subject, mail.text, mail.html),
    );
}
