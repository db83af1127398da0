//! Form and API bodies (SECURITY.md: bad input gets a clear error), through the real router: every route that takes a body gets the
//! fuzzed bytes as one, sent by a logged-in admin with a valid CSRF token, so the request gets
//! past the guard and into the extractors and handlers. Input: one byte choosing the route and
//! how the request is dressed, one byte for the `{id}` in its path, then the body.
//! The property: no panic, and never a 5xx — bad input is the sender's fault, a 4xx that says
//! what is wrong. The database is one SQLite file in a temporary directory (on /dev/shm when
//! there is one, so a write costs no disk sync), shared by all runs: state the fuzzer builds up
//! (renamed devices, quotas, tokens) stays, as it would on a real installation.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use lanmeter::auth::Role;
use lanmeter::config::Config;
use lanmeter::model::{Counts, MacAddr, MinuteUsage, Sighting};
use lanmeter::store::auth::SessionRow;
use lanmeter::web::{AppState, Clock, router};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const HOST: &str = "lanmeter.test";
const SESSION: &str = "fuzz-session-token";
const CSRF: &str = "fuzz-csrf-token";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// (method, path with `{id}` where the id goes, the content type its handler reads).
const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/setup", FORM),
    ("POST", "/alerts/ack", FORM),
    ("POST", "/alerts/{id}/ack", FORM),
    ("POST", "/alerts/test-email", FORM),
    ("POST", "/alerts/test-webhook", FORM),
    ("POST", "/alerts/watch", FORM),
    ("POST", "/alerts/outbox/{id}/retry", FORM),
    ("POST", "/plan/settings", FORM),
    ("POST", "/plan/calibrate", FORM),
    ("POST", "/plan/quotas", FORM),
    ("POST", "/plan/quotas/delete", FORM),
    ("POST", "/welcome/plan", FORM),
    ("POST", "/welcome/notify", FORM),
    ("POST", "/devices/bulk", FORM),
    ("POST", "/devices/{id}", FORM),
    ("POST", "/devices/{id}/rename", FORM),
    ("POST", "/devices/{id}/known", FORM),
    ("POST", "/devices/{id}/merge", FORM),
    ("POST", "/sessions/end-others", FORM),
    ("PATCH", "/api/v1/devices/{id}", JSON),
    ("POST", "/api/v1/alerts/{id}/acknowledge", JSON),
    ("POST", "/api/v1/tokens", JSON),
    ("DELETE", "/api/v1/tokens/{id}", JSON),
];

struct World {
    rt: tokio::runtime::Runtime,
    state: AppState,
    _dir: tempfile::TempDir,
}

fn mac(n: u64) -> MacAddr {
    MacAddr::from_u64(0x02_00_00_00_00_00 | n)
}

/// The database, an admin password, three devices with a minute of usage, and the admin session
/// every request uses. Built once per process: argon2 alone costs more than a thousand runs.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary directory for the database");
        let cfg = Config {
            timezone: Some("UTC".into()),
            ..Config::default()
        };
        let state = AppState::new(cfg, &dir.path().join("fuzz.db"), None)
            .expect("a fresh database")
            .with_clock(Clock::manual(T0 + 3600));
        let phc = lanmeter::auth::hash_password("correct horse battery").expect("argon2");
        rt.block_on(state.db_mut(move |s| {
            s.set_password(Role::Admin, &phc, T0)?;
            let usage: Vec<MinuteUsage> = (1..=3)
                .map(|n| MinuteUsage {
                    mac: mac(n),
                    minute: T0,
                    counts: Counts {
                        frames_sent: n,
                        frames_received: 1,
                        bytes_sent: 100 * n,
                        bytes_received: 10,
                        internet_upload_bytes: n,
                        internet_download_bytes: 0,
                    },
                })
                .collect();
            let seen: Vec<Sighting> = (1..=3)
                .map(|n| Sighting {
                    mac: mac(n),
                    first_seen: T0 * 1_000_000_000,
                    last_seen: (T0 + 59) * 1_000_000_000,
                    is_gateway: false,
                })
                .collect();
            s.write_flush(&usage, &seen)?;
            s.insert_session(&SessionRow {
                id_digest: lanmeter::auth::token_digest(SESSION),
                role: Role::Admin,
                csrf: CSRF.to_string(),
                created_at: T0 + 3600,
                last_seen: T0 + 3600,
                client: "192.168.1.50".to_string(),
            })
        }))
        .expect("seeding the database");
        World {
            rt,
            state,
            _dir: dir,
        }
    })
}

fuzz_target!(|input: &[u8]| {
    let [sel, id, body @ ..] = input else {
        return;
    };
    let (method, path, content_type) = ROUTES[usize::from(*sel) % ROUTES.len()];
    // Ids 0..=4 hit the seeded devices (and their neighbours); the rest are any u8.
    let id = if id & 0x80 == 0 { id % 5 } else { *id };
    let path = path.replace("{id}", &id.to_string());
    // The top bits dress the request: the wrong content type, none at all, or the CSRF token in
    // the form body (the guard then reads the body before the handler does).
    let dress = sel / 64;
    let mut b = Request::builder()
        .method(method)
        .uri(&path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, format!("http://{HOST}"))
        .header(
            header::COOKIE,
            format!("lm_session={SESSION}; lm_pre={CSRF}"),
        );
    match dress {
        0 | 1 => b = b.header(header::CONTENT_TYPE, content_type),
        2 => {
            b = b.header(
                header::CONTENT_TYPE,
                if content_type == FORM { JSON } else { FORM },
            )
        }
        _ => {}
    }
    if dress != 1 || content_type != FORM {
        b = b.header("x-csrf-token", CSRF);
    }
    let body = if dress == 1 && content_type == FORM {
        let mut with_token = format!("csrf={CSRF}&").into_bytes();
        with_token.extend_from_slice(body);
        with_token
    } else {
        body.to_vec()
    };
    let mut req = b.body(Body::from(body)).expect("a valid request line");
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [192, 168, 1, 50],
            40000,
        ))));
    let w = world();
    let resp =
        w.rt.block_on(router(w.state.clone()).oneshot(req))
            .expect("the router is infallible");
    let status = resp.status();
    // WEB_BODY_TRACE=1 with a corpus and -runs=0 shows what each input got, to check the inputs
    // reach the handlers rather than stopping at the guard.
    if std::env::var_os("WEB_BODY_TRACE").is_some() {
        eprintln!("web_body: {method} {path} -> {status}");
    }
    if status.is_server_error() {
        let text =
            w.rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
                .unwrap_or_default();
        panic!(
            "{method} {path} answered {status} to a bad body: {}",
            String::from_utf8_lossy(&text)
        );
    }
});
