//! The plan pages through `router(state).oneshot(..)` on a real SQLite file with history, and
//! the chart layout.
use super::*;
use crate::auth::Role;
use crate::config::Config;
use crate::model::{Counts, MinuteUsage, Sighting};
use crate::store::Store;
use crate::store::auth::SessionRow;
use crate::web::{Clock, router};
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use jiff::civil::date;
use tower::ServiceExt;

const HOST: &str = "lanmeter.test:8080";
const ORIGIN: &str = "http://lanmeter.test:8080";
const GB: u64 = 1_000_000_000;

struct Env {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    state: AppState,
}

fn mac(n: u64) -> crate::model::MacAddr {
    crate::model::MacAddr::from_u64(0x02_00_00_00_00_00 | n)
}

/// A household with 1 GB of downloads a day on one device from 2026-03-20 to 2026-04-10, the
/// clock at 2026-04-11 12:00 UTC (mid-cycle of a calendar-month plan).
fn env() -> Env {
    env_with(Config::default())
}

/// [`env`] with other settings in `cfg`.
fn env_with(cfg: Config) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let now = "2026-04-11T12:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    let cfg = Config {
        timezone: Some("UTC".into()),
        // The name the requests here use (see web::hosts).
        web_host_names: vec!["lanmeter.test".into()],
        ..cfg
    };
    let state = AppState::new(cfg, &path, None)
        .unwrap()
        .with_clock(Clock::manual(now));
    let mut store = Store::open(&path).unwrap();
    let mut usage = Vec::new();
    let mut d = date(2026, 3, 20);
    while d <= date(2026, 4, 11) {
        let minute = d
            .at(10, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second();
        usage.push(MinuteUsage {
            mac: mac(1),
            minute,
            counts: Counts {
                frames_sent: 1,
                frames_received: 1,
                bytes_sent: 1000,
                bytes_received: GB,
                internet_upload_bytes: 0,
                internet_download_bytes: GB,
            },
        });
        d = d.tomorrow().unwrap();
    }
    let seen = [Sighting {
        mac: mac(1),
        first_seen: 1_773_964_800_000_000_000,
        last_seen: 1_773_964_800_000_000_000,
        is_gateway: false,
    }];
    store.write_flush(&usage, &seen).unwrap();
    store
        .set_password(Role::Admin, "not-a-real-hash", now)
        .unwrap();
    Env {
        _dir: dir,
        path,
        state,
    }
}

impl Env {
    /// A session of `role` written straight into the store: (cookie, csrf).
    fn session(&self, role: Role) -> (String, String) {
        let token = format!("{:0>64}", role.as_str());
        let csrf = format!("csrf-{}", role.as_str());
        let store = Store::open(&self.path).unwrap();
        let now = self.state.now();
        store
            .insert_session(&SessionRow {
                id_digest: crate::auth::token_digest(&token),
                role,
                csrf: csrf.clone(),
                created_at: now,
                last_seen: now,
                client: "192.168.1.9".into(),
            })
            .unwrap();
        (format!("lm_session={token}"), csrf)
    }

    fn store(&self) -> Store {
        Store::open(&self.path).unwrap()
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String, String) {
        let r = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = r.status();
        let loc = r
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap(), loc)
    }

    async fn get(&self, path: &str, cookie: &str) -> (StatusCode, String, String) {
        self.send(
            base("GET", path)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn post(
        &self,
        path: &str,
        cookie: &str,
        csrf: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let mut all = vec![("csrf", csrf)];
        all.extend_from_slice(fields);
        self.send(
            base("POST", path)
                .header(header::COOKIE, cookie)
                .header(header::ORIGIN, ORIGIN)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(serde_urlencoded::to_string(&all).unwrap()))
                .unwrap(),
        )
        .await
    }

    fn audit_actions(&self) -> Vec<String> {
        self.store()
            .audit_recent(100)
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect()
    }
}

fn base(method: &str, path: &str) -> axum::http::request::Builder {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST);
    let addr: std::net::SocketAddr = "192.168.1.9:5000".parse().unwrap();
    b.extensions_mut()
        .unwrap()
        .insert(axum::extract::ConnectInfo(addr));
    b
}

fn settings_fields<'a>(allowance: &'a str, day: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("allowance_gb", allowance),
        ("cycle_kind", "monthly"),
        ("start_day", day),
        ("every_days", "30"),
        ("anchor", "2026-04-01"),
        ("counted", "download"),
        ("thresholds", "50, 75, 90, 100"),
    ]
}

#[tokio::test]
async fn viewers_read_the_plan_pages_and_cannot_change_them() {
    let e = env();
    let (cookie, csrf) = e.session(Role::Viewer);
    for path in ["/plan", "/plan/settings", "/plan/quotas"] {
        let (status, body, _) = e.get(path, &cookie).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, body, _) = e.get("/plan", &cookie).await;
    assert!(body.contains("Unlimited, calendar month"), "{body}");
    assert!(
        !body.contains("href=\"/plan/settings\">change"),
        "viewers get no change link"
    );
    for (path, fields) in [
        ("/plan/settings", settings_fields("10", "1")),
        (
            "/plan/calibrate",
            vec![("reported_gb", "5"), ("action", "apply")],
        ),
        (
            "/plan/quotas",
            vec![
                ("kind", "person"),
                ("name", "Sam"),
                ("period", "day"),
                ("limit_gb", "1"),
            ],
        ),
        ("/plan/quotas/delete", vec![("id", "1")]),
    ] {
        let (status, _, _) = e.post(path, &cookie, &csrf, &fields).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(e.store().plan().unwrap(), Plan::default());
    assert!(e.store().quotas().unwrap().is_empty());
}

#[tokio::test]
async fn admin_saves_the_plan_and_the_page_shows_budget_projection_and_chart() {
    let e = env();
    let (cookie, csrf) = e.session(Role::Admin);
    // Without the CSRF token nothing changes.
    let (status, _, _) = e
        .post(
            "/plan/settings",
            &cookie,
            "wrong",
            &settings_fields("15", "1"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body, _) = e
        .post(
            "/plan/settings",
            &cookie,
            &csrf,
            &settings_fields("15", "32"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("1 to 31"), "{body}");
    assert!(
        body.contains("value=\"32\""),
        "the form keeps what was typed"
    );
    let (status, body, _) = e
        .post(
            "/plan/settings",
            &cookie,
            &csrf,
            &settings_fields("1e", "1"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("not a number of GB"), "{body}");
    assert_eq!(e.store().plan().unwrap(), Plan::default());

    let (status, body, _) = e
        .post(
            "/plan/settings",
            &cookie,
            &csrf,
            &settings_fields("15", "1"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("id=\"saved\""));
    let p = e.store().plan().unwrap();
    assert_eq!(p.allowance_bytes, Some(15 * GB));
    assert_eq!(p.counted, Counted::Download);
    assert!(e.audit_actions().contains(&"plan changed".to_string()));

    // April 1-10 at 1 GB a day plus today's 1 GB: 11 GB of 15 used; 4 GB over 20 days left
    // from the 10 GB used before today gives a safe 0.25 GB today; at 1 GB a day the
    // allowance runs out on April 15 (half of today, 0.5 GB, still to come).
    let (status, body, _) = e.get("/plan", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<strong id=\"used\">11.0 GB</strong> of 15.0 GB"),
        "{body}"
    );
    assert!(body.contains("id=\"remaining\">4.00 GB"), "{body}");
    assert!(body.contains("id=\"safe-today\">250 MB"), "{body}");
    assert!(body.contains("id=\"over-budget\""), "{body}");
    assert!(body.contains("runs out on 2026-04-15"), "{body}");
    assert!(body.contains("id=\"budget-line\""));
    // One "used" or "over" bar per day up to today, expected bars after it.
    let used_bars =
        body.matches("<rect class=\"over\"").count() + body.matches("<rect class=\"used\"").count();
    assert_eq!(used_bars, 11);
    assert!(body.matches("<rect class=\"proj\"").count() >= 19);
    // Past cycle: March from the 20th, with 12 GB (March 20-31).
    assert!(
        body.contains("2026-03-01 to 2026-03-31</td><td>12.0 GB"),
        "{body}"
    );
    // Changing the start day re-reads the past cycles from history.
    e.post(
        "/plan/settings",
        &cookie,
        &csrf,
        &settings_fields("15", "25"),
    )
    .await;
    let (_, body, _) = e.get("/plan", &cookie).await;
    assert!(body.contains("2026-03-25 to 2026-04-24"), "{body}");
    assert!(
        body.contains("2026-02-25 to 2026-03-24</td><td>5.00 GB"),
        "{body}"
    );
}

#[tokio::test]
async fn calibration_compares_then_applies_an_offset_to_this_cycle() {
    let e = env();
    let (cookie, csrf) = e.session(Role::Admin);
    e.post(
        "/plan/settings",
        &cookie,
        &csrf,
        &settings_fields("100", "1"),
    )
    .await;
    let fields = |action: &'static str| {
        vec![
            ("reported_gb", "13.5"),
            ("reported_at", "2026-04-11T11:00"),
            ("action", action),
        ]
    };
    let (status, body, _) = e
        .post("/plan/calibrate", &cookie, &csrf, &fields("compare"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("id=\"difference\">+2.50 GB"), "{body}");
    assert!(
        e.store().calibrations(0, i64::MAX).unwrap().is_empty(),
        "compare stores nothing"
    );
    let (status, _, loc) = e
        .post("/plan/calibrate", &cookie, &csrf, &fields("apply"))
        .await;
    assert_eq!(
        (status, loc.as_str()),
        (StatusCode::SEE_OTHER, "/plan/settings")
    );
    let (_, body, _) = e.get("/plan", &cookie).await;
    assert!(
        body.contains("<strong id=\"used\">13.5 GB</strong>"),
        "{body}"
    );
    assert!(body.contains("offset of +2.50 GB"), "{body}");
    assert!(e.audit_actions().contains(&"plan calibrated".to_string()));
    // A reading from another cycle or the future is refused.
    for at in ["2026-03-30T10:00", "2026-04-12T10:00", "yesterday"] {
        let (status, body, _) = e
            .post(
                "/plan/calibrate",
                &cookie,
                &csrf,
                &[
                    ("reported_gb", "1"),
                    ("reported_at", at),
                    ("action", "apply"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{at}");
        assert!(body.contains("id=\"cal-error\""), "{body}");
    }
    let (status, _, _) = e
        .post("/plan/calibrate", &cookie, &csrf, &[("action", "clear")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, body, _) = e.get("/plan", &cookie).await;
    assert!(
        body.contains("<strong id=\"used\">11.0 GB</strong>"),
        "{body}"
    );
}

#[tokio::test]
async fn quotas_are_added_shown_reached_and_removed() {
    let e = env();
    let (cookie, csrf) = e.session(Role::Admin);
    let (status, body, _) = e
        .post(
            "/plan/quotas",
            &cookie,
            &csrf,
            &[
                ("kind", "device"),
                ("device", "not a mac"),
                ("period", "day"),
                ("limit_gb", "1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("choose a device"), "{body}");
    let m = mac(1).to_string();
    let (status, _, loc) = e
        .post(
            "/plan/quotas",
            &cookie,
            &csrf,
            &[
                ("kind", "device"),
                ("device", &m),
                ("period", "week"),
                ("limit_gb", "4"),
            ],
        )
        .await;
    assert_eq!(
        (status, loc.as_str()),
        (StatusCode::SEE_OTHER, "/plan/quotas")
    );
    // 2026-04-11 is a Saturday: Monday the 6th to today is 6 GB, over the 4 GB weekly quota.
    let (_, body, _) = e.get("/plan/quotas", &cookie).await;
    assert!(body.contains("6.00 GB of 4.00 GB (150 %)"), "{body}");
    assert!(body.contains("reached"), "{body}");
    let (_, body, _) = e.get("/plan", &cookie).await;
    assert!(body.contains("id=\"quotas\""), "{body}");
    let id = e.store().quotas().unwrap()[0].id.to_string();
    let (status, _, _) = e
        .post("/plan/quotas/delete", &cookie, &csrf, &[("id", &id)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = e
        .post("/plan/quotas/delete", &cookie, &csrf, &[("id", &id)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body, _) = e.get("/plan/quotas", &cookie).await;
    assert!(body.contains("id=\"no-quotas\""), "{body}");
    let actions = e.audit_actions();
    assert!(
        actions.contains(&"quota set".to_string())
            && actions.contains(&"quota removed".to_string())
    );
}

#[test]
fn chart_bars_scale_to_the_largest_day_and_mark_days_over_the_line() {
    let d = |n: i8| date(2026, 4, n);
    let days = vec![
        DayBar {
            date: d(1),
            used_bytes: Some(2 * GB),
            projected_bytes: None,
        },
        DayBar {
            date: d(2),
            used_bytes: Some(5 * GB),
            projected_bytes: None,
        },
        DayBar {
            date: d(3),
            used_bytes: Some(GB),
            projected_bytes: Some(GB),
        },
        DayBar {
            date: d(4),
            used_bytes: None,
            projected_bytes: Some(3 * GB),
        },
    ];
    let c = chart(&days, Some(3 * GB), d(3));
    let classes: Vec<&str> = c.rects.iter().map(|r| r.class).collect();
    assert_eq!(classes, ["used", "over", "used", "proj", "proj"]);
    // The tallest bar (5 GB) is 1/1.1 of the plot height; the line sits at 3/5.5 of it.
    let h: f64 = c.rects[1].h.parse().unwrap();
    assert!((h - (PLOT_BOTTOM - PLOT_TOP) / 1.1).abs() < 0.1, "{h}");
    let y: f64 = c.line_y.unwrap().parse().unwrap();
    assert!((y - (PLOT_BOTTOM - (3.0 / 5.5) * (PLOT_BOTTOM - PLOT_TOP))).abs() < 0.1);
    // Today's expected part sits on top of its used part.
    let used_top: f64 = c.rects[2].y.parse().unwrap();
    let proj = &c.rects[3];
    let proj_bottom = proj.y.parse::<f64>().unwrap() + proj.h.parse::<f64>().unwrap();
    assert!((proj_bottom - used_top).abs() < 0.2);
    assert_eq!(
        (c.first.as_str(), c.last.as_str()),
        ("2026-04-01", "2026-04-04")
    );
    assert!(chart(&[], None, d(1)).rects.is_empty());
}

#[test]
fn gb_fields() {
    assert_eq!(parse_gb("500"), Some(500 * GB));
    assert_eq!(parse_gb(" 1,5 GB"), Some(1_500_000_000));
    assert_eq!(parse_gb("-1"), None);
    assert_eq!(parse_gb("NaN"), None);
    assert_eq!(gb_field(1_500_000_000), "1.5");
    assert_eq!(gb_field(500 * GB), "500");
}

#[test]
fn a_negative_allowance_and_a_far_off_anchor_are_refused_in_words() {
    let form = |allowance: &str, anchor: &str| PlanForm {
        allowance_gb: allowance.into(),
        cycle_kind: "every".into(),
        every_days: "30".into(),
        anchor: anchor.into(),
        counted: Counted::default().as_str().into(),
        thresholds: "80, 100".into(),
        ..PlanForm::default()
    };
    let e = form("-500", "2026-03-05").parse().unwrap_err();
    assert!(e.contains("must be positive"), "{e}");
    let e = form("abc", "2026-03-05").parse().unwrap_err();
    assert!(e.contains("not a number"), "{e}");
    let e = form("500", "9999-12-31").parse().unwrap_err();
    assert!(e.contains("too far off"), "{e}");
    assert!(form("500", "2026-03-05").parse().is_ok());
}

#[test]
fn the_overage_costs_so_far_and_by_the_end_of_the_cycle() {
    assert_eq!(
        overage_line(12_400_000_000, 37_200_000_000, 0.5, "€"),
        "12.4 GB over: about 6.20 € so far, about 18.60 € by the end of the cycle."
    );
    // A projection below what is already over (an offset applied today) never lowers the end.
    assert_eq!(
        overage_line(2 * GB, GB, 1.25, "USD"),
        "2.0 GB over: about 2.50 USD so far, about 2.50 USD by the end of the cycle."
    );
}

#[tokio::test]
async fn an_exceeded_plan_with_a_price_says_what_the_overage_costs_on_plan_and_overview() {
    let e = env_with(Config {
        overage_price_per_gb: Some("0.50".into()),
        currency: "CHF".into(),
        ..Config::default()
    });
    let (cookie, csrf) = e.session(Role::Admin);
    // 5 GB a month; April 1-11 used 11 GB at 1 GB a day: 6 GB over, and at that pace about
    // 25 GB over by April 30.
    let (status, body, _) = e
        .post("/plan/settings", &cookie, &csrf, &settings_fields("5", "1"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, plan, _) = e.get("/plan", &cookie).await;
    let (_, overview, _) = e.get("/", &cookie).await;
    for body in [plan, overview] {
        let start = body.find("id=\"plan-state\"").expect("the plan's state");
        let line = &body[start..start + body[start..].find("</p>").unwrap()];
        assert!(
            line.contains("6.0 GB over: about 3.00 CHF so far, about 1"),
            "{line}"
        );
        assert!(line.contains("CHF by the end of the cycle."), "{line}");
    }
    // Without a price the state says nothing of money.
    let e = env();
    let (cookie, csrf) = e.session(Role::Admin);
    e.post("/plan/settings", &cookie, &csrf, &settings_fields("5", "1"))
        .await;
    let (_, body, _) = e.get("/plan", &cookie).await;
    assert!(body.contains("over it so far."), "{body}");
    assert!(!body.contains("GB over: about"), "{body}");
}

#[tokio::test]
async fn the_plan_form_sets_the_overage_price_in_the_config_file() {
    let e = env();
    let file = e._dir.path().join("lanmeter.toml");
    std::fs::write(&file, "# the household's settings\n").unwrap();
    let live = crate::config::settings::Live::new(e.state.config().clone());
    e.state
        .set_settings(std::sync::Arc::new(crate::config::settings::Editor::new(
            file.clone(),
            live,
        )));
    let (cookie, csrf) = e.session(Role::Admin);
    let mut fields = settings_fields("5", "1");
    fields.push(("overage_price", "-1"));
    let (status, body, _) = e.post("/plan/settings", &cookie, &csrf, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("not a number of 0 or more"), "{body}");
    assert!(
        body.contains(r#"value="-1""#),
        "the form keeps what was typed"
    );
    assert_eq!(e.store().plan().unwrap(), Plan::default(), "nothing saved");

    fields.pop();
    fields.push(("overage_price", "0.50"));
    let (status, body, _) = e.post("/plan/settings", &cookie, &csrf, &fields).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#"id="overage_price" name="overage_price" value="0.50""#));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("overage_price_per_gb = \"0.50\""), "{text}");
    assert!(text.contains("# the household's settings"), "{text}");
    // At once on the plan page (11 GB of 5 used: 6 GB over at 0.50 €).
    let (_, body, _) = e.get("/plan", &cookie).await;
    assert!(body.contains("6.0 GB over: about 3.00 € so far"), "{body}");

    // Emptied, the key goes.
    fields.pop();
    fields.push(("overage_price", ""));
    let (status, _, _) = e.post("/plan/settings", &cookie, &csrf, &fields).await;
    assert_eq!(status, StatusCode::OK);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("overage_price_per_gb"), "{text}");
}

#[tokio::test]
async fn the_plan_can_count_what_the_router_counts() {
    let e = env();
    let (cookie, csrf) = e.session(Role::Admin);
    let (_, page, _) = e.get("/plan/settings", &cookie).await;
    assert!(
        page.contains("name=\"source\" value=\"devices\" checked"),
        "the devices by default: {page}"
    );
    let mut fields = settings_fields("100", "1");
    fields.push(("source", "router"));
    let (status, body, _) = e.post("/plan/settings", &cookie, &csrf, &fields).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(e.store().plan().unwrap().source, PlanSource::Router);
    let (_, page, _) = e.get("/plan/settings", &cookie).await;
    assert!(
        page.contains("name=\"source\" value=\"router\" checked"),
        "{page}"
    );
    let (_, plan, _) = e.get("/plan", &cookie).await;
    assert!(
        plan.contains("counting downloads only as the router counted on its WAN interface"),
        "{plan}"
    );
    let mut fields = settings_fields("100", "1");
    fields.push(("source", "modem"));
    let (status, body, _) = e.post("/plan/settings", &cookie, &csrf, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("Choose whose bytes to count"), "{body}");
    assert_eq!(e.store().plan().unwrap().source, PlanSource::Router);
}
