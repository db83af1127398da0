//! The Internet page, its report and CSV, the API and `/metrics` through
//! `router(state).oneshot(..)` on a real SQLite file, filled through the store API exactly as
//! the probe thread writes it.
use super::*;
use crate::auth::Role;
use crate::config::Config;
use crate::internet::passive::{DeviceHour, Histogram, PassiveMinute};
use crate::internet::{Group, OutageEvent, SharedNow};
use crate::store::Store;
use crate::store::auth::SessionRow;
use crate::web::{Clock, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

const HOST: &str = "lanmeter.test:8080";
/// 2026-04-11T20:00:00Z, in the evening busy hours (UTC here).
const NOW: i64 = 1_775_937_600;

struct Env {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    state: AppState,
}

fn env(now: Option<SharedNow>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.db");
    let cfg = Config {
        timezone: Some("UTC".into()),
        web_host_names: vec!["lanmeter.test".into()],
        ..Config::default()
    };
    let mut state = AppState::new(cfg, &path, None)
        .unwrap()
        .with_clock(Clock::manual(NOW));
    if let Some(n) = now {
        state = state.with_internet(n);
    }
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

impl Env {
    async fn get(&self, path: &str) -> (StatusCode, String, String) {
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
        let ctype = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }
}

fn minute(m: i64, median_ms: u32, sent: u32, received: u32) -> MinuteRow {
    MinuteRow {
        minute: m,
        rounds: 6,
        up: 6,
        gateway: Group {
            sent: 18,
            received: 18,
            median_us: Some(400),
            p95_us: Some(600),
        },
        internet: Group {
            sent,
            received,
            median_us: Some(median_ms * 1000),
            p95_us: Some(median_ms * 4000),
        },
        dns_queries: 6,
        dns_median_us: Some(2_000),
        ..MinuteRow::default()
    }
}

/// Four hours of minutes before NOW (evening: 48 ms, afternoon: 20 ms) and an hour-long
/// internet outage within them (17:00–18:00).
fn fill(path: &std::path::Path) {
    let mut rows = Vec::new();
    for k in 1..=240 {
        let m = (NOW / 60 - k) * 60;
        let ms = if k <= 60 { 48 } else { 20 };
        rows.push(minute(m, ms, 36, 35));
    }
    let start = (NOW - 3 * 3600) * NS;
    let o = Outage {
        kind: NetState::InternetDown,
        start_ns: start,
        end_ns: None,
    };
    // Passive latency: 12 handshakes a minute at 45 ms (p95 90 ms) over the same minutes.
    let passive: Vec<PassiveMinute> = (1..=240)
        .map(|k| PassiveMinute {
            minute: (NOW / 60 - k) * 60,
            handshakes: 12,
            median_us: Some(45_000),
            p95_us: Some(90_000),
        })
        .rev()
        .collect();
    Store::open(path)
        .unwrap()
        .write_passive(&passive, &[])
        .unwrap();
    Store::open(path)
        .unwrap()
        .write_internet(
            &rows,
            &[
                OutageEvent::Opened(o),
                OutageEvent::Closed(Outage {
                    end_ns: Some(start + 3600 * NS),
                    ..o
                }),
            ],
            None,
        )
        .unwrap();
}

#[tokio::test]
async fn page_shows_now_charts_outages_busy_hours_and_the_card() {
    let live = SharedNow::default();
    live.update(|n| {
        n.state = Some(NetState::Up);
        n.at_ns = Some(NOW * NS);
    });
    let e = env(Some(live));
    fill(&e.path);
    let (status, _, body) = e.get("/internet").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains(r#"<span class="net-state ok">up</span>"#),
        "{body}"
    );
    assert!(body.contains("48.0 ms (p95 192.0 ms)"), "{body}");
    assert!(body.contains("href=\"/internet\" aria-current=\"page\""));
    assert_eq!(body.matches(r#"<svg class="chart net""#).count(), 2);
    // The passive median is a third line in both charts, and the "now" line names it.
    assert_eq!(
        body.matches(r#"<path class="passive""#).count(),
        2,
        "{body}"
    );
    assert!(
        body.contains("median 45.0 ms, p95 90.0 ms over 12 handshakes"),
        "{body}"
    );
    assert!(body.contains(r#"class="outage""#));
    assert!(body.contains("<td>internet down</td>"), "{body}");
    assert!(body.contains("1 h"), "{body}");
    assert!(
        body.contains("Evenings 19–23 h (last 30 days): median 48.0 ms, p95 192.0 ms, loss 2.8 %."),
        "{body}"
    );
    assert!(body.contains("Report card 2026-04"));
    assert!(body.contains("href=\"/internet/report.csv?month=2026-04\""));
}

#[tokio::test]
async fn report_csv_and_bad_months() {
    let e = env(None);
    fill(&e.path);
    let (status, _, body) = e.get("/internet/report?month=2026-04").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Internet connection report 2026-04"));
    // 240 monitored minutes, of which the outage takes 60: 75 %.
    assert!(body.contains("<dd>75.000 %</dd>"), "{body}");
    let (status, ctype, csv) = e.get("/internet/report.csv?month=2026-04").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    assert!(
        csv.starts_with("field,value\nmonth,2026-04\nmonitored_seconds,14400\n"),
        "{csv}"
    );
    assert!(csv.contains("internet_down_seconds,3600\n"), "{csv}");
    assert!(
        csv.contains("internet_down,2026-04-11 17:00,2026-04-11 18:00,3600\n"),
        "{csv}"
    );
    // Another month: nothing measured.
    let (_, _, csv) = e.get("/internet/report.csv?month=2026-03").await;
    assert!(
        csv.contains("monitored_seconds,0\nuptime_percent,\n"),
        "{csv}"
    );
    let (status, _, _) = e.get("/internet/report.csv?month=April").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn api_and_metrics() {
    let live = SharedNow::default();
    let open = Outage {
        kind: NetState::DnsDown,
        start_ns: (NOW - 30) * NS,
        end_ns: None,
    };
    live.update(|n| {
        n.state = Some(NetState::DnsDown);
        n.outage = Some(open);
        n.sent = 100;
        n.received = 90;
    });
    let e = env(Some(live));
    fill(&e.path);
    let (status, _, body) = e.get("/api/v1/internet/now").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["state"], "dns_down");
    assert_eq!(v["outage"]["duration_seconds"], 30.0);
    assert_eq!(v["last_minute"]["internet_median_ms"], 48.0);
    let (_, _, body) = e.get("/api/v1/internet/minutes").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["minutes"].as_array().unwrap().len(), 240);
    let (_, _, body) = e.get("/api/v1/internet/outages").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["outages"][0]["kind"], "internet_down");
    assert_eq!(v["outages"][0]["duration_seconds"], 3600.0);
    let (_, _, m) = e.get("/metrics").await;
    // Every series ends with the site label (the host name by default): compared without it.
    let site = format!(",site=\"{}\"", crate::config::Config::default().site_name());
    let m = m.replace(&site, "");
    for line in [
        "lanmeter_internet_state{state=\"dns_down\"} 1",
        "lanmeter_internet_state{state=\"up\"} 0",
        "lanmeter_internet_echo_requests_total{result=\"answered\"} 90",
        "lanmeter_internet_latency_seconds{target=\"internet\",quantile=\"0.5\"} 0.048",
        "lanmeter_internet_outages_total{kind=\"internet_down\"} 1",
        "lanmeter_internet_outage_seconds_total{kind=\"internet_down\"} 3600",
        "lanmeter_passive_latency_seconds{quantile=\"0.5\"} 0.045",
        "lanmeter_passive_latency_seconds{quantile=\"0.95\"} 0.09",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    // The newest complete minute (no flush in this test: any minute that has ended).
    for line in [
        format!("lanmeter_passive_handshakes{{{}}} 12", &site[1..]),
        format!(
            "lanmeter_passive_minute_timestamp_seconds{{{}}} {}",
            &site[1..],
            NOW - 60
        ),
    ] {
        assert!(m.contains(&line), "{line} missing:\n{m}");
    }
}

/// A device's passive latency on its page and from `/api/v1/devices/{id}/latency`, summed
/// exactly over its hours (and its two MACs).
#[tokio::test]
async fn device_latency_on_the_page_and_the_api() {
    use crate::model::{MacAddr, Sighting};
    let e = env(None);
    let (a, b): (MacAddr, MacAddr) = (
        "dc:a6:32:00:00:01".parse().unwrap(),
        "da:00:00:00:00:02".parse().unwrap(),
    );
    let mut st = Store::open(&e.path).unwrap();
    let seen = |mac| Sighting {
        mac,
        first_seen: (NOW - 7200) * NS,
        last_seen: (NOW - 60) * NS,
        is_gateway: false,
    };
    st.write_flush(&[], &[seen(a), seen(b)]).unwrap();
    let ids: Vec<i64> = st.list_devices().unwrap().iter().map(|d| d.id).collect();
    st.merge_devices(ids[1], ids[0], 0, "b", NOW * NS).unwrap();
    let hour = |mac, start: i64, ms: u64, n: u32| {
        let mut h = Histogram::new(start);
        for _ in 0..n {
            h.add(ms * 1000);
        }
        DeviceHour {
            mac,
            hour: start,
            handshakes: h.count(),
            buckets: h.to_sparse(),
        }
    };
    let h = NOW - NOW % 3600;
    // 1,100 at 40 ms and 134 at 100 ms (another MAC, another hour) in the last 24 h; an
    // older hour that the page leaves out.
    st.write_passive(
        &[],
        &[
            hour(a, h - 3600, 40, 1100),
            hour(b, h - 7200, 100, 134),
            hour(a, h - 30 * 3600, 500, 5),
        ],
    )
    .unwrap();
    drop(st);
    let (status, _, body) = e.get(&format!("/devices/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A bucket is 3 % wide: 100 ms reads 99 ms.
    assert!(
        body.contains(
            "Connection setup to the internet, last 24 h: median 40 ms, p95 99 ms, 1,234 handshakes."
        ),
        "{body}"
    );
    let (status, _, body) = e.get(&format!("/api/v1/devices/{}/latency", ids[0])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["handshakes"], 1234);
    assert_eq!(v["hours"].as_array().unwrap().len(), 2);
    assert_eq!(v["hours"][0]["hour"], h - 7200);
    assert_eq!(v["hours"][1]["handshakes"], 1100);
    let p95 = v["p95_ms"].as_f64().unwrap();
    assert!((97.0..=103.0).contains(&p95), "{p95}");
    let (status, _, _) = e.get("/api/v1/devices/999/latency").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The device page's "what it used" (issue 29): remotes named as one service add up, an
/// unnamed remote says so, shares of the last 24 hours; with no rows and the setting off, the
/// page says where to turn it on.
#[tokio::test]
async fn device_page_shows_what_it_used_by_service() {
    use crate::endpoints::{Remote, RemoteUsage};
    use crate::model::{MacAddr, Sighting};
    use crate::names::table::Entry;
    for with_rows in [false, true] {
        let mut e = env(None);
        if with_rows {
            // Services are read only with the setting on.
            let cfg = Config {
                timezone: Some("UTC".into()),
                web_host_names: vec!["lanmeter.test".into()],
                per_device_services: true,
                ..Config::default()
            };
            e.state = AppState::new(cfg, &e.path, None)
                .unwrap()
                .with_clock(Clock::manual(NOW));
        }
        let mac: MacAddr = "dc:a6:32:00:00:01".parse().unwrap();
        let mut st = Store::open(&e.path).unwrap();
        let seen = Sighting {
            mac,
            first_seen: (NOW - 7200) * NS,
            last_seen: (NOW - 60) * NS,
            is_gateway: false,
        };
        st.write_flush(&[], &[seen]).unwrap();
        let id = st.list_devices().unwrap()[0].id;
        let h = NOW - NOW % 3600;
        let usage = |minute, ip: u32, up, down| RemoteUsage {
            mac,
            minute,
            remote: Some(Remote::V4(ip)),
            up,
            down,
        };
        if with_rows {
            st.write_remotes(&[
                usage(h, 0x0a00_0001, 1_000, 2_999_000),
                usage(h - 3600, 0x0a00_0003, 0, 1_000_000),
                // Yesterday: not today's.
                usage(h - 30 * 3600, 0x0b00_0001, 0, 9_000_000),
            ])
            .unwrap();
            let entry = Entry {
                name: "r1.googlevideo.com".into(),
                source: crate::names::Source::Tls,
                first_seen: h * NS,
                last_seen: h * NS,
                ttl: None,
            };
            st.write_names(&[((mac, "10.0.0.1".parse().unwrap()), entry)], 0)
                .unwrap();
        }
        drop(st);
        let (status, _, body) = e.get(&format!("/devices/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("What it used: Today"), "{body}");
        if with_rows {
            assert!(body.contains("YouTube"), "{body}");
            assert!(body.contains("r1.googlevideo.com"), "{body}");
            assert!(body.contains("no name seen for 10.0.0.3"), "{body}");
            assert!(body.contains("75 %") && body.contains("25 %"), "{body}");
            assert!(!body.contains("11.0.0.1"), "{body}");
        } else {
            assert!(
                body.contains("Learn which services each device uses"),
                "{body}"
            );
        }
    }
}
