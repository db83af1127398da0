//! The Wi-Fi survey page through `router(state).oneshot(..)` on a real SQLite file, the survey
//! written through the store API exactly as the monitor capture writes it.
use super::*;
use crate::auth::Role;
use crate::capture::ieee80211::{Channel, Security};
use crate::config::Config;
use crate::store::Store;
use crate::store::auth::SessionRow;
use crate::survey::{Collector, SignalStats};
use crate::web::{Clock, router};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use tower::ServiceExt;

const HOST: &str = "lanmeter.test:8080";
const NOW: i64 = 1_775_908_800; // 2026-04-11T12:00:00Z
const NS: i64 = 1_000_000_000;

struct Env {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    state: AppState,
}

fn env(interface: Option<&str>, ssid: Option<&str>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let cfg = Config {
        timezone: Some("UTC".into()),
        // The name the requests here use (see web::hosts).
        web_host_names: vec!["lanmeter.test".into()],
        wifi_interface: interface.map(Into::into),
        wifi_ssid: ssid.map(Into::into),
        ..Config::default()
    };
    let state = AppState::new(cfg, &path, None)
        .unwrap()
        .with_clock(Clock::manual(NOW));
    Store::open(&path)
        .unwrap()
        .set_password(Role::Admin, "not-a-real-hash", NOW)
        .unwrap();
    Env {
        _dir: dir,
        path,
        state,
    }
}

fn mac(n: u64) -> MacAddr {
    MacAddr::from_u64(0x00_1a_2b_00_00_00 | n)
}

/// An AP heard over `minutes` minutes ending `ago_s` seconds before NOW, at `dbm`.
fn ap(n: u64, ssid: &[u8], ch: Channel, dbm: i8, ago_s: i64) -> Ap {
    let last = NOW - ago_s;
    let mut minutes = BTreeMap::new();
    for k in 0..3 {
        let m = (last - k * 60).div_euclid(60) * 60;
        minutes.insert(
            m,
            SignalStats {
                frames: 10,
                samples: 10,
                sum_dbm: 10 * i64::from(dbm),
                min_dbm: dbm,
                max_dbm: dbm,
            },
        );
    }
    Ap {
        bssid: mac(n),
        ssid: Ssid::new(ssid),
        hidden: false,
        channel: Some(ch),
        security: Security::Wpa2Psk,
        first_seen: (last - 180) * NS,
        last_seen: last * NS,
        beacons: 30,
        probe_responses: 0,
        minutes,
    }
}

fn ch24(n: u8) -> Channel {
    Channel::new20(Band::G2_4, n).unwrap()
}

impl Env {
    fn write(&self, aps: Vec<Ap>) {
        let mut c = Collector::new();
        for a in aps {
            c.aps.insert(a.bssid, a);
        }
        Store::open(&self.path).unwrap().write_survey(&c).unwrap();
    }

    /// GET `path` as a viewer: (status, body).
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let token = format!("{:0>64}", "viewer");
        Store::open(&self.path)
            .unwrap()
            .insert_session(&SessionRow {
                id_digest: crate::auth::token_digest(&token),
                role: Role::Viewer,
                csrf: "csrf-viewer".into(),
                created_at: NOW,
                last_seen: NOW,
                client: "192.168.1.9".into(),
            })
            .ok();
        let mut b = Request::builder()
            .method("GET")
            .uri(path)
            .header(header::HOST, HOST)
            .header(header::COOKIE, format!("lm_session={token}"));
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
}

#[tokio::test]
async fn hostile_ssids_are_shown_inert() {
    let e = env(Some("wlan1"), Some("home"));
    let markup = b"<img src=x onerror=alert(1)>\x07\x1b\x00";
    assert!(markup.len() <= 32);
    let arbitrary: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let bidi = "a\u{202e}gnp.exe".as_bytes();
    e.write(vec![
        ap(1, markup, ch24(6), -50, 60),
        ap(2, &arbitrary, ch24(1), -60, 60),
        ap(3, bidi, ch24(11), -70, 60),
        ap(4, b"home", ch24(6), -40, 60),
    ]);
    let (status, body) = e.get("/wifi").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The markup is text: escaped, never an element; control bytes spelled out, never raw.
    assert!(!body.contains("<img"), "{body}");
    assert!(!body.contains("onerror=alert(1)>"), "{body}");
    assert!(
        body.contains("&#60;img src=x onerror=alert(1)&#62;\\u{0007}\\u{001b}\\u{0000}"),
        "{body}"
    );
    assert!(
        !body
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    );
    assert!(!body.contains('\u{202e}') && body.contains("a\\u{202e}gnp.exe"));
    // Not valid UTF-8: each invalid byte as \xNN.
    assert!(body.contains("\\xa5\\x80\\xef\\xca1\\u{001c}"), "{body}");
    // Our network is marked, once.
    assert_eq!(body.matches("our network</span>").count(), 1);
    // The charts carry no SSID at all.
    for svg in body.split("<svg").skip(1) {
        let svg = svg.split("</svg>").next().unwrap();
        assert!(!svg.contains("onerror") && !svg.contains("home"), "{svg}");
    }
}

#[tokio::test]
async fn table_sorts_by_signal_channel_and_last_seen() {
    let e = env(Some("wlan1"), Some("home"));
    e.write(vec![
        ap(1, b"alpha", ch24(11), -80, 30),
        ap(2, b"bravo", ch24(1), -45, 3000),
        ap(3, b"home", ch24(6), -60, 600),
        ap(4, b"delta", ch24(6), -50, 6000),
        ap(5, b"echo", Channel::new20(Band::G5, 36).unwrap(), -70, 60),
    ]);
    let order = |body: &str| -> Vec<u64> {
        let table = &body[body.find("id=\"aps\"").unwrap()..];
        let mut pos: Vec<(usize, u64)> = (1..=5)
            .map(|n| (table.find(&mac(n).to_string()).unwrap(), n))
            .collect();
        pos.sort();
        pos.into_iter().map(|(_, n)| n).collect()
    };
    let (_, by_signal) = e.get("/wifi").await;
    assert_eq!(order(&by_signal), [2, 4, 3, 5, 1]);
    let (_, explicit) = e.get("/wifi?sort=signal").await;
    assert_eq!(order(&explicit), [2, 4, 3, 5, 1]);
    let (_, by_channel) = e.get("/wifi?sort=channel").await;
    assert_eq!(order(&by_channel), [2, 3, 4, 1, 5]);
    let (_, by_seen) = e.get("/wifi?sort=seen").await;
    assert_eq!(order(&by_seen), [1, 5, 3, 2, 4]);
    // An unknown order falls back to signal rather than failing.
    let (status, junk) = e.get("/wifi?sort=%3Cscript%3E").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order(&junk), [2, 4, 3, 5, 1]);
    assert!(!junk.contains("<script>") && !junk.contains("%3Cscript"));
    // The header links to the other orders; the current one is not a link.
    assert!(
        by_seen.contains("href=\"/wifi?sort=signal\"")
            && !by_seen.contains("href=\"/wifi?sort=seen\"")
    );
    // Charts for both bands, our signal history, the recommendation with its reasoning.
    assert!(by_signal.contains("Channels 2.4 GHz") && by_signal.contains("Channels 5 GHz"));
    assert!(by_signal.contains("class=\"span ours\""));
    assert!(
        by_signal.contains("<polyline class=\"sig s0\""),
        "{by_signal}"
    );
    assert!(
        by_signal.contains("Keep the 2.4 GHz radio on channel 6")
            || by_signal.contains("Move the 2.4 GHz radio from channel 6"),
        "{by_signal}"
    );
    assert!(by_signal.contains("class=\"candidates\""));
}

#[tokio::test]
async fn empty_states_say_what_is_missing() {
    let none = env(None, None);
    let (status, body) = none.get("/wifi").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"wifi-empty\"") && body.contains("No Wi-Fi survey"));
    assert!(body.contains("wifi_interface"));
    assert!(!body.contains("id=\"aps\""));

    let quiet = env(Some("wlan1"), Some("home"));
    let (_, body) = quiet.get("/wifi").await;
    assert!(body.contains("Nothing heard yet") && body.contains("<code>wlan1</code>"));

    // Data older than the window counts as nothing heard.
    quiet.write(vec![ap(1, b"old", ch24(1), -50, 3 * 86_400)]);
    let (_, body) = quiet.get("/wifi").await;
    assert!(body.contains("Nothing heard yet"), "{body}");

    // Heard, but no SSID configured: the page says how to mark our network.
    let unnamed = env(Some("wlan1"), None);
    unnamed.write(vec![ap(1, b"next door", ch24(1), -50, 60)]);
    let (_, body) = unnamed.get("/wifi").await;
    assert!(!body.contains("wifi-empty") && body.contains("next door"));
    assert!(body.contains("Set <code>wifi_ssid</code>"));
    assert!(body.contains("For a 2.4 GHz radio, channel"), "{body}");
}

#[test]
fn channel_chart_spans_follow_the_width() {
    let wide = Channel {
        band: Band::G2_4,
        number: 1,
        width_mhz: 40,
        center_mhz: 2422,
    };
    let svg = channel_chart(
        Band::G2_4,
        &[
            ap(1, b"a", wide, -40, 0),
            ap(2, b"b", ch24(1), -90, 0),
            ap(3, b"home", ch24(11), -50, 0),
        ],
        Some(b"home"),
    );
    assert_eq!(svg.matches("class=\"span\"").count(), 2);
    assert_eq!(svg.matches("class=\"span ours\"").count(), 1);
    // Channel 1 carries both networks' weight: 60 + 10.
    assert!(svg.contains("channel 1: 2 networks · weight 70"), "{svg}");
    assert!(svg.contains("channel 1 · 40 MHz"));
}
