//! `make bench`, pages part: every dashboard page rendered in-process, uncached, on a demo
//! database (`lanmeter demo --devices 200 --days 365`), through the same router, gate and
//! handlers the server runs (`web::router(state).oneshot(request)`), without sockets.
//!
//! A *first view* is a request whose page caches are stale (`AppState::changed`), so every
//! reading comes from the database, as the first visitor's after the 1-second caches expired,
//! on a server that has served the page before (the process, its connections and prepared
//! statements warm, as a server's are after its first minute).
//!
//! Usage:
//!   bench_pages DB list                 the pages to measure, one "NAME PATH [admin]" a line: every
//!                                       page, the devices list once per range it links to, and the
//!                                       page of the device with the most traffic this cycle
//!   bench_pages DB time PAGES N         N first views of every page in PAGES (a `list` output),
//!                                       pages alternating; prints JSON
//!   bench_pages DB count PAGES V [NAME…] for counting instructions under QEMU with
//!                                       bench/insn_count.c: per page (of PAGES, or only those
//!                                       NAMEd) a state warmed by one view as in `time`, then V
//!                                       first views, each between two markers (a seek to offset
//!                                       MARK + i, which the plugin logs with the count so far);
//!                                       prints "NAME I J BYTES" per view (its instructions are
//!                                       the count at mark J minus the count at mark I; BYTES the
//!                                       page's size), so one process counts every page
//!   bench_pages DB probe ID             the store calls of device ID's page, timed one by one
//!
//! The database is opened read-write (sessions are stored there): give it a copy.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use lanmeter::auth::Role;
use lanmeter::config::Config;
use lanmeter::store::Store;
use lanmeter::store::auth::SessionRow;
use lanmeter::web::{AppState, Clock, router};
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8080";
const ADMIN_TOKEN: &str = "bench-pages-admin-session-token-not-a-secret";
/// bench/insn_count.c's marker: a seek to this offset + i logs "mark i COUNT" (same constant).
const MARK: u64 = 0x4c4d_4d41_524b_0000;

/// The moment every page is rendered at (Unix seconds): BENCH_PAGES_NOW, which bench/pages.sh
/// sets to when its database was last written, else this process's start. A fixed moment makes
/// each page show the same thing in every run and on both ISAs, however long the runs take (the
/// overview lists the devices heard in the last minutes, "today" and "this cycle" move on).
fn now() -> i64 {
    static NOW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *NOW.get_or_init(|| match std::env::var("BENCH_PAGES_NOW") {
        Ok(v) => v.parse().expect("BENCH_PAGES_NOW: Unix seconds"),
        Err(_) => jiff::Timestamp::now().as_second(),
    })
}

fn state(db: &Path) -> AppState {
    let cfg = Config {
        // As `lanmeter demo --anyone-on-lan-may-view` serves them: viewers need no login.
        anyone_on_lan_may_view: true,
        ..Config::default()
    };
    AppState::new(cfg, db, None)
        .expect("opening the demo database")
        .with_clock(Clock::manual(now()))
}

/// An admin session for the admin-only pages (settings), stored as a login stores it.
fn admin_session(db: &Path) {
    let now = now();
    let s = Store::open(db).expect("opening the demo database");
    let digest = lanmeter::auth::token_digest(ADMIN_TOKEN);
    if s.session(&digest).expect("reading sessions").is_none() {
        s.insert_session(&SessionRow {
            id_digest: digest,
            role: Role::Admin,
            csrf: "bench".into(),
            created_at: now,
            last_seen: now,
            client: "127.0.0.1".into(),
        })
        .expect("storing the admin session");
    }
}

async fn get(state: &AppState, path: &str, admin: bool) -> (StatusCode, String) {
    let mut b = Request::builder().uri(path).header(header::HOST, HOST);
    if admin {
        b = b.header(
            header::COOKIE,
            format!("{}={ADMIN_TOKEN}", lanmeter::web::session::SESSION_COOKIE),
        );
    }
    let addr: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    b.extensions_mut()
        .unwrap()
        .insert(axum::extract::ConnectInfo(addr));
    let res = router(state.clone())
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x3D;", "=")
        .replace("&#61;", "=")
}

/// The pages a household opens, as web.sh lists them (routes in `web::routes`, GET, HTML).
async fn list(db: &Path) -> Vec<(String, String, bool)> {
    let st = state(db);
    let mut pages = vec![("overview".to_string(), "/".to_string(), false)];
    pages.push(("devices".into(), "/devices".into(), false));
    let (status, html) = get(&st, "/devices", false).await;
    assert!(status == StatusCode::OK, "GET /devices: {status}");
    // Every option of the range picker; "Dates…" as the longest span a household picks: a year.
    let picker = html
        .split("<select name=\"range\"")
        .nth(1)
        .and_then(|p| p.split("</select>").next())
        .expect("the range picker on /devices");
    let today = jiff::Timestamp::from_second(now())
        .expect("BENCH_PAGES_NOW in range")
        .to_zoned(Config::default().time_zone())
        .date();
    let year_ago = today
        .checked_sub(jiff::Span::new().days(364))
        .expect("a date a year ago");
    for opt in picker.split("<option value=\"").skip(1) {
        let r = unescape(opt.split('"').next().unwrap_or(""));
        let path = if r == "custom" {
            format!("/devices?range=custom&from={year_ago}&to={today}")
        } else {
            format!("/devices?range={r}")
        };
        pages.push((format!("devices-{r}"), path, false));
    }
    pages.push((
        "devices-by-cycle".into(),
        "/devices?sort=cycle".into(),
        false,
    ));
    let (status, html) = get(&st, "/devices?sort=cycle", false).await;
    assert!(
        status == StatusCode::OK,
        "GET /devices?sort=cycle: {status}"
    );
    let dev = html
        .split("href=\"/devices/")
        .skip(1)
        .filter_map(|p| p.split('"').next())
        .find(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .expect("a device link on /devices?sort=cycle")
        .to_string();
    pages.push(("device".into(), format!("/devices/{dev}"), false));
    pages.push((
        "device-year".into(),
        format!("/devices/{dev}?range=custom&from={year_ago}&to={today}"),
        false,
    ));
    for (name, path) in [
        ("people", "/people"),
        ("plan", "/plan"),
        ("plan-quotas", "/plan/quotas"),
        ("alerts", "/alerts"),
        ("system", "/system"),
        ("wifi", "/wifi"),
        ("internet", "/internet"),
        ("internet-report", "/internet/report"),
    ] {
        pages.push((name.into(), path.into(), false));
    }
    pages.push(("settings".into(), "/settings".into(), true));
    pages.push(("plan-settings".into(), "/plan/settings".into(), true));
    pages
}

/// A `list` output: "NAME PATH [admin]" a line.
fn read_pages(file: &Path) -> Vec<(String, String, bool)> {
    std::fs::read_to_string(file)
        .expect("reading PAGES")
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.into(),
                w.next()?.into(),
                w.next() == Some("admin"),
            ))
        })
        .collect()
}

// One thread: the multi-threaded runtime was seen to spin before its first task under
// qemu-aarch64 user mode (QEMU 7.2), and one thread is enough for one request at a time.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: bench_pages DB list | DB time PAGES N | DB count PAGES VIEWS [NAME…] | DB probe ID";
    let db = Path::new(args.first().expect(usage));
    match args.get(1).map(String::as_str) {
        Some("list") => {
            for (name, path, admin) in list(db).await {
                println!("{name} {path}{}", if admin { " admin" } else { "" });
            }
        }
        Some("time") => {
            admin_session(db);
            let pages = read_pages(Path::new(args.get(2).expect(usage)));
            let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
            let mut ms = vec![Vec::new(); pages.len()];
            let mut status = vec![0u16; pages.len()];
            // One state per page, as a running server has: its first request prepares what
            // every later one reuses (connections, statements, templates); then each view
            // after `changed()`, which makes every cached reading stale, as 1 s of age does.
            let states: Vec<AppState> = pages.iter().map(|_| state(db)).collect();
            for (st, (_, path, admin)) in states.iter().zip(&pages) {
                get(st, path, *admin).await;
            }
            for _ in 0..n {
                for (i, (_, path, admin)) in pages.iter().enumerate() {
                    states[i].changed();
                    let t = Instant::now();
                    let (s, _) = get(&states[i], path, *admin).await;
                    ms[i].push(t.elapsed().as_secs_f64() * 1e3);
                    status[i] = s.as_u16();
                }
            }
            let rows: Vec<String> = pages
                .iter()
                .zip(ms.iter().zip(status))
                .map(|((name, path, admin), (v, s))| {
                    format!(
                        "  \"{name}\": {{\"path\": \"{path}\", \"admin\": {admin}, \"status\": {s}, \"ms\": {v:?}}}"
                    )
                })
                .collect();
            println!("{{\n{}\n}}", rows.join(",\n"));
        }
        Some("count") => {
            admin_session(db);
            let pages = read_pages(Path::new(args.get(2).expect(usage)));
            let views: usize = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
            let only = &args[4.min(args.len())..];
            // Any file will do: the seek is only the plugin's signal (on /dev/null it succeeds).
            let mut marker = std::fs::File::open("/dev/null").expect("opening /dev/null");
            // BENCH_PAGES_BODIES=DIR keeps each page's last body there, to see what was counted.
            let bodies = std::env::var_os("BENCH_PAGES_BODIES");
            let mut next = 0u64;
            let mut mark = || {
                marker
                    .seek(SeekFrom::Start(MARK + next))
                    .expect("seeking /dev/null");
                next += 1;
                next - 1
            };
            for (name, path, admin) in &pages {
                if !only.is_empty() && !only.contains(name) {
                    continue;
                }
                // As in `time`: a state of its own, warmed by one view of its page.
                let st = state(db);
                let (s, body) = get(&st, path, *admin).await;
                // Any answer but the page itself would count the wrong work.
                assert!(s == StatusCode::OK, "GET {path}: {s}");
                eprintln!("GET {path}: {s}, {} bytes", body.len());
                for _ in 0..views {
                    st.changed();
                    let i = mark();
                    let (s, body) = get(&st, path, *admin).await;
                    let j = mark();
                    assert!(s == StatusCode::OK, "GET {path}: {s}");
                    // The page's size, so bench/pages.sh can check that both ISAs rendered the
                    // same page (an error banner or an empty list would count other work).
                    println!("{name} {i} {j} {}", body.len());
                    if let Some(dir) = &bodies {
                        std::fs::write(Path::new(dir).join(format!("{name}.html")), body)
                            .expect("writing BENCH_PAGES_BODIES/NAME.html");
                    }
                }
            }
        }
        Some("probe") => {
            // Where a device page's time goes: each store call it makes, timed alone.
            use lanmeter::store::period::Period;
            use lanmeter::store::query::Selection;
            let id: i64 = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
            let s = Store::open(db).unwrap();
            let tz = Config::default().time_zone();
            let d = s.device(id).unwrap().unwrap();
            let sel = Selection::device(d.mac);
            let now = jiff::Timestamp::now();
            let ago = |secs: i64| jiff::Timestamp::from_second(now.as_second() - secs).unwrap();
            let mut t = Instant::now();
            let mut lap = |what: &str| {
                eprintln!("{what}: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
                t = Instant::now();
            };
            s.usage_series(&sel, &tz, ago(86_400), now, Some(Period::Minute))
                .unwrap();
            lap("minutes 24 h");
            s.usage_series(&sel, &tz, ago(30 * 86_400), now, Some(Period::Day))
                .unwrap();
            lap("days 30");
            s.heatmap(&sel, &tz, ago(28 * 86_400), now).unwrap();
            lap("heatmap 28 d");
            // Today and the cycle come from the 30 days' points (issue 26): no reading of
            // their own unless the cycle began before the 30 days.
            s.presence(id).unwrap();
            lap("presence");
            // The merge choices and the quota check read the device list, not its use.
            s.list_devices().unwrap();
            lap("device list");
            s.quotas().unwrap();
            lap("quotas");
        }
        _ => panic!("{usage}"),
    }
}
