//! Router-level tests: every rule of the gate, driven through `router(state).oneshot(request)`
//! on a real SQLite file, with an injected clock for expiry and throttling.

use super::*;
use crate::auth::Role;
use crate::config::Config;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

const HOST: &str = "lanmeter.test:8080";
const ORIGIN: &str = "http://lanmeter.test:8080";
const ADMIN_PW: &str = "correct horse battery";
const VIEWER_PW: &str = "kitchen table lamp";
const LAN_CLIENT: &str = "192.168.1.50:40000";
const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

struct Env {
    _dir: tempfile::TempDir,
    state: AppState,
    clock: Clock,
}

fn env_with(mut cfg: Config) -> Env {
    // The name the requests here use (see web::hosts).
    cfg.web_host_names.push("lanmeter.test".into());
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let state = AppState::new(cfg, &dir.path().join("t.db"), None)
        .unwrap()
        .with_clock(clock.clone());
    Env {
        _dir: dir,
        state,
        clock,
    }
}

fn env() -> Env {
    env_with(Config {
        timezone: Some("UTC".into()),
        ..Config::default()
    })
}

impl Env {
    async fn send(&self, req: Request<Body>) -> Response<Body> {
        router(self.state.clone()).oneshot(req).await.unwrap()
    }

    async fn set_password(&self, role: Role, pw: &str) {
        let phc = crate::auth::hash_password(pw).unwrap();
        let now = self.clock.now();
        self.state
            .db(move |s| s.set_password(role, &phc, now))
            .await
            .unwrap();
    }

    async fn sessions(&self) -> i64 {
        self.state.db(|s| s.session_count()).await.unwrap()
    }

    async fn audit_actions(&self) -> Vec<String> {
        self.state
            .db(|s| s.audit_recent(10_000))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect()
    }

    /// GET the login page for a pre-login token, then POST the password: the response.
    async fn login_attempt(
        &self,
        pw: &str,
        client: &str,
        extra_cookie: Option<&str>,
    ) -> Response<Body> {
        let page = self
            .send(req("GET", "/login", client).body(Body::empty()).unwrap())
            .await;
        let pre =
            set_cookie(&page, session::PRE_COOKIE).expect("login page sets the pre-login token");
        let mut cookies = format!("{}={pre}", session::PRE_COOKIE);
        if let Some(c) = extra_cookie {
            cookies.push_str("; ");
            cookies.push_str(c);
        }
        let form =
            serde_urlencoded::to_string([("csrf", pre.as_str()), ("password", pw), ("next", "/")])
                .unwrap();
        self.send(
            req("POST", "/login", client)
                .header(header::COOKIE, cookies)
                .header(header::ORIGIN, ORIGIN)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await
    }

    /// Logs in and returns (cookie header value, CSRF token of the session).
    async fn login(&self, pw: &str) -> (String, String) {
        let r = self.login_attempt(pw, LAN_CLIENT, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login with {pw:?}");
        let token = set_cookie(&r, session::SESSION_COOKIE).unwrap();
        let cookie = format!("{}={token}", session::SESSION_COOKIE);
        let digest = crate::auth::token_digest(&token);
        let csrf = self
            .state
            .db(move |s| s.session(&digest))
            .await
            .unwrap()
            .unwrap()
            .csrf;
        (cookie, csrf)
    }

    async fn admin(&self) -> (String, String) {
        self.set_password(Role::Admin, ADMIN_PW).await;
        self.login(ADMIN_PW).await
    }
}

fn req(method: &str, path: &str, client: &str) -> axum::http::request::Builder {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST);
    let addr: std::net::SocketAddr = client.parse().unwrap();
    b.extensions_mut()
        .unwrap()
        .insert(axum::extract::ConnectInfo(addr));
    b
}

/// A POST with form fields, the session cookie and a same-origin Origin header.
fn post_form(path: &str, cookie: &str, fields: &[(&str, &str)]) -> Request<Body> {
    req("POST", path, LAN_CLIENT)
        .header(header::COOKIE, cookie)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(fields).unwrap()))
        .unwrap()
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = req("GET", path, LAN_CLIENT);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn set_cookie(r: &Response<Body>, name: &str) -> Option<String> {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()?
                .trim()
                .strip_prefix(&format!("{name}="))
                .map(str::to_string)
        })
}

fn location(r: &Response<Body>) -> &str {
    r.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn text(r: Response<Body>) -> String {
    String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// A concrete path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("{file}", &assets::sample_file())
        .replace("{id}", "1")
}

#[tokio::test]
async fn before_setup_every_page_leads_to_setup() {
    let e = env();
    for r in route_table() {
        let resp = e.send(get(&concrete(r.path), None)).await;
        if r.access == Access::Public {
            assert_ne!(location(&resp), "/login", "{}", r.path);
            continue;
        }
        if guard::is_api(r.path) {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{}", r.path);
            continue;
        }
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", r.path);
        assert_eq!(location(&resp), "/setup", "{}", r.path);
    }
    let resp = e.send(get("/login", None)).await;
    assert_eq!(location(&resp), "/setup");
    let resp = e.send(get("/setup", None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(text(resp).await.contains("At least 10 characters"));
}

#[tokio::test]
async fn setup_refuses_weak_passwords_then_sets_admin_once_and_signs_in() {
    let e = env();
    let page = e.send(get("/setup", None)).await;
    let pre = set_cookie(&page, session::PRE_COOKIE).unwrap();
    let cookie = format!("{}={pre}", session::PRE_COOKIE);
    let weak = e
        .send(post_form(
            "/setup",
            &cookie,
            &[("csrf", &pre), ("password", "short"), ("confirm", "short")],
        ))
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = text(weak).await;
    assert!(
        body.contains("at least 10 characters") && body.contains("too short"),
        "{body}"
    );
    assert!(!e.state.admin_exists().await.unwrap());
    let mismatch = e
        .send(post_form(
            "/setup",
            &cookie,
            &[
                ("csrf", &pre),
                ("password", ADMIN_PW),
                ("confirm", "something else"),
            ],
        ))
        .await;
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Without the setup code, or with a wrong one, nothing is set.
    let code = crate::setup_code::ensure(e.state.db_path()).unwrap();
    for wrong in ["", "aaaa-bbbb-cccc"] {
        let refused = e
            .send(post_form(
                "/setup",
                &cookie,
                &[
                    ("csrf", &pre),
                    ("password", ADMIN_PW),
                    ("confirm", ADMIN_PW),
                    ("code", wrong),
                ],
            ))
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{wrong:?}");
        assert!(text(refused).await.contains("not the setup code"));
    }
    assert!(!e.state.admin_exists().await.unwrap());
    // The link's code fills the form.
    let linked = e.send(get(&format!("/setup?code={code}"), None)).await;
    assert!(text(linked).await.contains(&format!("value=\"{code}\"")));
    let ok = e
        .send(post_form(
            "/setup",
            &cookie,
            &[
                ("csrf", &pre),
                ("password", ADMIN_PW),
                ("confirm", ADMIN_PW),
                ("code", &code.to_uppercase()),
            ],
        ))
        .await;
    assert_eq!(
        crate::setup_code::read(e.state.db_path()).unwrap(),
        None,
        "a used code is deleted"
    );
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/welcome", "on to the first-run wizard");
    let session = set_cookie(&ok, session::SESSION_COOKIE).unwrap();
    let overview = e
        .send(get(
            "/",
            Some(&format!("{}={session}", session::SESSION_COOKIE)),
        ))
        .await;
    assert_eq!(overview.status(), StatusCode::OK);
    // A second setup cannot replace the password.
    let again = e
        .send(post_form(
            "/setup",
            &cookie,
            &[
                ("csrf", &pre),
                ("password", "another password 1"),
                ("confirm", "another password 1"),
            ],
        ))
        .await;
    assert_eq!(location(&again), "/login");
    assert_eq!(location(&e.send(get("/setup", None)).await), "/login");
    e.login(ADMIN_PW).await;
    let actions = e.audit_actions().await;
    assert!(actions.contains(&"setup".to_string()));
    assert_eq!(
        actions.iter().filter(|a| *a == "setup code wrong").count(),
        2
    );
}

#[tokio::test]
async fn wrong_setup_codes_are_throttled_like_passwords() {
    let e = env();
    let code = crate::setup_code::ensure(e.state.db_path()).unwrap();
    let page = e.send(get("/setup", None)).await;
    let pre = set_cookie(&page, session::PRE_COOKIE).unwrap();
    let cookie = format!("{}={pre}", session::PRE_COOKIE);
    let try_code = |c: String| {
        post_form(
            "/setup",
            &cookie,
            &[
                ("csrf", &pre),
                ("password", ADMIN_PW),
                ("confirm", ADMIN_PW),
                ("code", &c),
            ],
        )
    };
    let throttle = crate::auth::Throttle::default();
    for _ in 0..throttle.free_failures {
        let r = e.send(try_code("zzzz-zzzz-zzzz".into())).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // Now even the right code waits: a guesser learns nothing from a refusal.
    let r = e.send(try_code(code.clone())).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
    assert!(!e.state.admin_exists().await.unwrap());
    e.clock
        .advance(throttle.delay_after(throttle.free_failures));
    let r = e.send(try_code(code)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(e.state.admin_exists().await.unwrap());
}

#[tokio::test]
async fn every_route_refuses_anonymous_requests() {
    let e = env();
    e.set_password(Role::Admin, ADMIN_PW).await;
    let mut paths: Vec<(String, Access)> = route_table()
        .iter()
        .map(|r| (concrete(r.path), r.access))
        .collect();
    // Not registered at all: the fallback is admin-only too.
    paths.push(("/no-such-page".into(), Access::Admin));
    for (path, access) in paths {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let resp = e
                .send(req(method, &path, LAN_CLIENT).body(Body::empty()).unwrap())
                .await;
            if access == Access::Public {
                assert!(
                    !location(&resp).starts_with("/login?next=")
                        && resp.status() != StatusCode::UNAUTHORIZED,
                    "{method} {path} is public"
                );
                continue;
            }
            let refused = resp.status() == StatusCode::UNAUTHORIZED
                || (resp.status() == StatusCode::SEE_OTHER
                    && location(&resp).starts_with("/login?next="));
            // A state-changing request without a session may also fail the CSRF check first.
            let refused = refused || (method != "GET" && resp.status() == StatusCode::FORBIDDEN);
            assert!(
                refused,
                "{method} {path}: {} {}",
                resp.status(),
                location(&resp)
            );
        }
    }
    // API paths (none are registered yet) answer 401, not a login redirect.
    for path in ["/api/v1/devices", "/metrics"] {
        let resp = e.send(get(path, None)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(
        location(&e.send(get("/audit?x=1", None)).await),
        "/login?next=%2Faudit%3Fx%3D1"
    );
}

#[tokio::test]
async fn viewer_is_refused_on_every_state_changing_route() {
    let e = env();
    e.set_password(Role::Admin, ADMIN_PW).await;
    e.set_password(Role::Viewer, VIEWER_PW).await;
    let (cookie, csrf) = e.login(VIEWER_PW).await;
    for r in route_table() {
        let path = concrete(r.path);
        if matches!(r.access, Access::Public | Access::OwnSession) {
            continue;
        }
        let before = e.sessions().await;
        let resp = e.send(post_form(&path, &cookie, &[("csrf", &csrf)])).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "viewer POST {path}");
        assert_eq!(e.sessions().await, before);
        let read = e.send(get(&path, Some(&cookie))).await;
        match r.access {
            Access::Admin => assert_eq!(read.status(), StatusCode::FORBIDDEN, "viewer GET {path}"),
            _ => assert_ne!(read.status(), StatusCode::FORBIDDEN, "viewer GET {path}"),
        }
    }
    // A viewer may still log themselves out.
    let out = e
        .send(post_form("/logout", &cookie, &[("csrf", &csrf)]))
        .await;
    assert_eq!(location(&out), "/login");
    assert_eq!(
        location(&e.send(get("/", Some(&cookie))).await),
        "/login?next=%2F"
    );
}

#[tokio::test]
async fn csrf_token_and_origin_are_required_and_refusals_change_nothing() {
    let e = env();
    let (cookie, csrf) = e.admin().await;
    let (other, _) = e.login(ADMIN_PW).await;
    let count = || async { e.state.db(|s| s.session_count()).await.unwrap() };
    assert_eq!(count().await, 2);

    let no_token = e
        .send(post_form("/sessions/end-others", &cookie, &[]))
        .await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let wrong = e
        .send(post_form(
            "/sessions/end-others",
            &cookie,
            &[("csrf", "0".repeat(64).as_str())],
        ))
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let foreign = e
        .send(
            req("POST", "/sessions/end-others", LAN_CLIENT)
                .header(header::COOKIE, &cookie)
                .header(header::ORIGIN, "http://evil.example")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}")))
                .unwrap(),
        )
        .await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let foreign_referer = e
        .send(
            req("POST", "/logout", LAN_CLIENT)
                .header(header::COOKIE, &cookie)
                .header(header::REFERER, "http://evil.example/page")
                .header("x-csrf-token", &csrf)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(foreign_referer.status(), StatusCode::FORBIDDEN);
    assert_eq!(count().await, 2, "refused requests changed nothing");
    assert!(
        !e.audit_actions()
            .await
            .iter()
            .any(|a| a.contains("other") || a == "logout")
    );

    // The htmx way: token in a header.
    let ok = e
        .send(
            req("POST", "/sessions/end-others", LAN_CLIENT)
                .header(header::COOKIE, &cookie)
                .header(header::ORIGIN, ORIGIN)
                .header("x-csrf-token", &csrf)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(count().await, 1);
    assert_eq!(
        e.send(get("/", Some(&other))).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        e.send(get("/", Some(&cookie))).await.status(),
        StatusCode::OK
    );

    // Login without the pre-login token is refused before the password is looked at.
    let anon = e
        .send(post_form("/login", "", &[("password", ADMIN_PW)]))
        .await;
    assert_eq!(anon.status(), StatusCode::FORBIDDEN);
    assert_eq!(count().await, 1);
}

#[tokio::test]
async fn get_and_head_never_change_state() {
    let e = env();
    let (cookie, _) = e.admin().await;
    let snapshot = || async {
        e.state
            .db(|s| {
                Ok((
                    s.session_count()?,
                    s.audit_recent(1000)?,
                    s.password_hash(Role::Admin)?,
                    s.locked_clients()?,
                ))
            })
            .await
            .unwrap()
    };
    let before = snapshot().await;
    for r in route_table() {
        for method in ["GET", "HEAD"] {
            for c in [Some(cookie.as_str()), None] {
                let mut b = req(method, &concrete(r.path), LAN_CLIENT);
                if let Some(c) = c {
                    b = b.header(header::COOKIE, c);
                }
                let resp = e.send(b.body(Body::empty()).unwrap()).await;
                assert!(
                    resp.status() != StatusCode::INTERNAL_SERVER_ERROR,
                    "{method} {}",
                    r.path
                );
            }
        }
    }
    assert_eq!(snapshot().await, before);
    assert_eq!(
        e.send(get("/", Some(&cookie))).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_the_absolute_limit() {
    let e = env();
    let (cookie, _) = e.admin().await;
    let idle = (e.state.config().session_idle_hours * 3600) as i64;
    let max = (e.state.config().session_max_days * 86_400) as i64;
    // Active use keeps it alive past the idle limit ...
    let mut used = 0;
    while used + idle - 60 < max {
        e.clock.advance(idle - 60);
        used += idle - 60;
        assert_eq!(
            e.send(get("/", Some(&cookie))).await.status(),
            StatusCode::OK,
            "after {used} s"
        );
    }
    // ... but not past the absolute limit.
    e.clock.advance(max - used);
    assert_eq!(
        location(&e.send(get("/", Some(&cookie))).await),
        "/login?next=%2F"
    );

    let (cookie, _) = e.login(ADMIN_PW).await;
    e.clock.advance(idle);
    assert_eq!(
        location(&e.send(get("/", Some(&cookie))).await),
        "/login?next=%2F"
    );
    // Expired sessions are gone from the database, not just ignored.
    assert_eq!(e.state.db(|s| s.session_count()).await.unwrap(), 0);
}

#[tokio::test]
async fn login_issues_a_fresh_session_id_so_a_planted_one_is_worthless() {
    let e = env();
    let (before, _) = e.admin().await;
    let r = e.login_attempt(ADMIN_PW, LAN_CLIENT, Some(&before)).await;
    let after = format!(
        "{}={}",
        session::SESSION_COOKIE,
        set_cookie(&r, session::SESSION_COOKIE).unwrap()
    );
    assert_ne!(before, after);
    assert_eq!(
        e.send(get("/", Some(&before))).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        e.send(get("/", Some(&after))).await.status(),
        StatusCode::OK
    );
    // An id the server never issued is never accepted, and login replaces it.
    let planted = format!("{}={}", session::SESSION_COOKIE, "ab".repeat(32));
    assert_eq!(
        e.send(get("/", Some(&planted))).await.status(),
        StatusCode::SEE_OTHER
    );
    let r = e.login_attempt(ADMIN_PW, LAN_CLIENT, Some(&planted)).await;
    assert_ne!(
        set_cookie(&r, session::SESSION_COOKIE).unwrap(),
        "ab".repeat(32)
    );
    // Cookie attributes.
    let raw = r
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Strict") && !raw.contains("Secure"),
        "{raw}"
    );
}

#[tokio::test]
async fn brute_force_is_delayed_and_audited_and_the_right_password_works_after() {
    let e = env();
    e.set_password(Role::Admin, ADMIN_PW).await;
    let attacker = "192.168.1.66:5000";
    let mut statuses = Vec::new();
    // 20 wrong passwords within one minute: one every 3 s.
    for _ in 0..20 {
        let r = e.login_attempt("wrong password!", attacker, None).await;
        statuses.push(r.status());
        e.clock.advance(3);
    }
    assert_eq!(statuses[19], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(refused >= 10, "{statuses:?}");
    // While delayed, even the right password is refused ...
    let r = e.login_attempt(ADMIN_PW, attacker, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
    // ... another address is not affected ...
    assert_eq!(
        e.login_attempt(ADMIN_PW, LAN_CLIENT, None).await.status(),
        StatusCode::SEE_OTHER
    );
    // ... and after the window the right password works.
    e.clock.advance(15 * 60);
    let r = e.login_attempt(ADMIN_PW, attacker, None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let failed = e
        .audit_actions()
        .await
        .iter()
        .filter(|a| *a == "login failed")
        .count();
    assert_eq!(failed, 20 - refused);
}

#[tokio::test]
async fn lockout_holds_until_unlocked_from_the_shell() {
    let e = env();
    e.set_password(Role::Admin, ADMIN_PW).await;
    let attacker = "10.1.2.3:5000";
    let throttle = crate::auth::Throttle::default();
    for n in 0..throttle.lockout_failures {
        let r = e.login_attempt("wrong password!", attacker, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
        e.clock.advance(throttle.delay_after(n + 1));
    }
    e.clock.advance(7 * 86_400);
    let r = e.login_attempt(ADMIN_PW, attacker, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(text(r).await.contains("lanmeter unlock 10.1.2.3"));
    let unlocked = e.state.db(|s| s.unlock(Some("10.1.2.3"))).await.unwrap();
    assert_eq!(unlocked, ["10.1.2.3"]);
    assert_eq!(
        e.login_attempt(ADMIN_PW, attacker, None).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let e = env();
    let (cookie, _) = e.admin().await;
    let mut paths: Vec<String> = route_table().iter().map(|r| concrete(r.path)).collect();
    paths.push("/no-such-page".into());
    for path in &paths {
        for c in [Some(cookie.as_str()), None] {
            let r = e.send(get(path, c)).await;
            let h = r.headers();
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(
                csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
                "{path}"
            );
            assert!(
                !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
                "{path}"
            );
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{path}");
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{path}");
            let cache = h[header::CACHE_CONTROL].to_str().unwrap();
            if path.starts_with("/static/") {
                assert!(
                    cache.contains("immutable") && cache.contains("max-age=31536000"),
                    "{path}"
                );
            } else {
                assert_eq!(cache, "no-store", "{path}");
            }
        }
    }
    let gz = e
        .send(
            req("GET", &concrete("/static/{file}"), LAN_CLIENT)
                .header(header::ACCEPT_ENCODING, "gzip, br")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    assert!(
        gz.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    // Pages carry no inline script and refer to nothing off the box.
    let page = text(e.send(get("/", Some(&cookie))).await).await;
    assert!(page.contains(assets::url("htmx.min.js")) && page.contains(assets::url("app.css")));
    for bad in [
        "<script>", "onclick=", "onload=", "http://", "https://", "style=",
    ] {
        assert!(!page.contains(bad), "page contains {bad}");
    }
}

#[tokio::test]
async fn anyone_on_lan_may_view_is_off_by_default_and_read_only_when_on() {
    let e = env();
    e.set_password(Role::Admin, ADMIN_PW).await;
    assert_eq!(e.send(get("/", None)).await.status(), StatusCode::SEE_OTHER);

    let e = env_with(Config {
        anyone_on_lan_may_view: true,
        timezone: Some("UTC".into()),
        ..Config::default()
    });
    e.set_password(Role::Admin, ADMIN_PW).await;
    assert_eq!(e.send(get("/", None)).await.status(), StatusCode::OK);
    assert_eq!(
        e.send(get("/audit", None)).await.status(),
        StatusCode::FORBIDDEN
    );
    let post = e.send(post_form("/sessions/end-others", "", &[])).await;
    assert_eq!(post.status(), StatusCode::FORBIDDEN);
    let outside = e
        .send(
            req("GET", "/", "203.0.113.9:4000")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(outside.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn overview_shows_stored_and_live_bytes_and_audit_page_lists_logins() {
    use crate::meter::{Meter, MeterConfig, SharedMeter};
    use crate::model::{MacAddr, MinuteUsage, Sighting};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let mac = MacAddr([0x02, 0, 0, 0, 0, 7]);
    {
        let mut store = crate::store::Store::open(&db).unwrap();
        let usage = MinuteUsage {
            mac,
            minute: T0 + 600,
            counts: crate::model::Counts {
                bytes_received: 2_500_000,
                bytes_sent: 1_000,
                internet_download_bytes: 2_499_000,
                internet_upload_bytes: 1_000,
                ..Default::default()
            },
        };
        let seen = Sighting {
            mac,
            first_seen: (T0 + 600) * 1_000_000_000,
            last_seen: (T0 + 600) * 1_000_000_000,
            is_gateway: false,
        };
        store.write_flush(&[usage], &[seen]).unwrap();
    }
    let meter = SharedMeter::new(Meter::new(MeterConfig::default()));
    let clock = Clock::manual(T0 + 3600);
    let cfg = Config {
        timezone: Some("UTC".into()),
        // The name the requests here use (see web::hosts).
        web_host_names: vec!["lanmeter.test".into()],
        ..Config::default()
    };
    let e = Env {
        state: AppState::new(cfg, &db, Some(meter))
            .unwrap()
            .with_clock(clock.clone()),
        clock,
        _dir: dir,
    };
    let (cookie, _) = e.admin().await;
    let page = text(e.send(get("/", Some(&cookie))).await).await;
    // A device with no name and no vendor is shown by its private address's last bytes.
    assert!(
        page.contains("Private address …00:07") && page.contains("2.50 MB"),
        "{page}"
    );
    let devices = text(e.send(get("/devices", Some(&cookie))).await).await;
    assert!(devices.contains("Private address …00:07"), "{devices}");
    let device = e.send(get("/devices/1", Some(&cookie))).await;
    assert_eq!(device.status(), StatusCode::OK);
    assert!(text(device).await.contains("Last 24 hours"));
    let audit = text(e.send(get("/audit", Some(&cookie))).await).await;
    assert!(audit.contains("<td>login</td>"), "{audit}");
}

#[tokio::test]
async fn alerts_page_lists_alerts_and_outbox_and_the_admin_acknowledges() {
    use crate::store::alerts::{NewAlert, NewMessage};
    let e = env();
    let (cookie, csrf) = e.admin().await;
    let id = e
        .state
        .db(|s| {
            let id = s.insert_alert(&NewAlert {
                rule: "offline",
                subject: "device:1",
                severity: "warning",
                title: "Door <camera> is offline",
                body: "Check its power.",
                facts: &[("Silent for".into(), "31 minutes".into())],
                links: &[],
                auto_resolve: true,
                now: T0,
                notify: "queued",
            })?;
            Ok(id)
        })
        .await
        .unwrap();
    {
        let db = e.state.clone();
        db.db(move |s| {
            let mut s2 = crate::store::Store::open(s.path())?;
            let ids = s2.queue_messages(
                &[id],
                &[NewMessage {
                    channel: "email",
                    kind: "alert",
                    alert_ids: vec![id],
                    subject: "Door camera is offline".into(),
                    text_body: "x".into(),
                    not_before: T0,
                    expires_at: T0 + 3600,
                    ..NewMessage::default()
                }],
                T0,
            )?;
            s2.message_attempt_failed(
                ids[0],
                T0,
                T0 + 30,
                false,
                "Nothing accepts connections at smtp:587",
            )
        })
        .await
        .unwrap();
    }
    let page = text(e.send(get("/alerts", Some(&cookie))).await).await;
    assert!(
        page.contains("Door &#60;camera&#62; is offline")
            || page.contains("Door &lt;camera&gt; is offline"),
        "{page}"
    );
    assert!(!page.contains("<camera>"), "device strings are escaped");
    assert!(
        page.contains("retrying") && page.contains("Nothing accepts connections at smtp:587"),
        "{page}"
    );
    assert!(
        page.contains(&format!("action=\"/alerts/{id}/ack\"")),
        "{page}"
    );
    let r = e
        .send(post_form(
            &format!("/alerts/{id}/ack"),
            &cookie,
            &[("csrf", &csrf)],
        ))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let a = e.state.db(move |s| s.alert(id)).await.unwrap().unwrap();
    assert_eq!(
        (a.stage(), a.acked_by.as_deref()),
        ("acknowledged", Some("admin"))
    );
    // Test email without SMTP configured: the exact reason, on the page.
    let r = e
        .send(post_form("/alerts/test-email", &cookie, &[("csrf", &csrf)]))
        .await;
    let page = text(r).await;
    assert!(
        page.contains("Email is off: set the mail server (smtp_host)"),
        "{page}"
    );
    // A forged or edited link is refused without changing anything.
    let r = e.send(get("/alerts/ack?t=1.99999999999.00", None)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(text(r).await.contains("incomplete or was changed"));
}

/// Issue 25: the dashboard says when the database was found damaged, and which backup to
/// restore; nothing is shown once the damage is resolved.
#[tokio::test]
async fn system_page_shows_unresolved_damage_and_the_newest_good_backup() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let cfg = Config {
        timezone: Some("UTC".into()),
        backup_dir: Some(backups.clone()),
        ..Config::default()
    };
    let e = env_with(cfg);
    let db = e.state.db_path().to_path_buf();
    let (cookie, _) = e.admin().await;
    let page = text(e.send(get("/system", Some(&cookie))).await).await;
    assert!(!page.contains("id=\"damage\""), "{page}");
    std::fs::create_dir_all(&backups).unwrap();
    let good = backups.join("lanmeter-2026-01-01.db");
    crate::store::Store::open(&db)
        .unwrap()
        .backup_to(&good)
        .unwrap();
    crate::store::damage::record(
        &db,
        &crate::store::damage::DamageEvent {
            at: T0,
            kind: "pages".into(),
            detail: "page 1 overwritten".into(),
            kept: vec![dir.path().join("t.db.corrupt-X")],
        },
    )
    .unwrap();
    // Recorded behind the web side (as the daemon does at start): a page rendered within the
    // last second may be reused, so say that something changed.
    e.state.changed();
    let page = text(e.send(get("/system", Some(&cookie))).await).await;
    assert!(
        page.contains("id=\"damage\"")
            && page.contains("page 1 overwritten")
            && page.contains("t.db.corrupt-X")
            && page.contains("lanmeter-2026-01-01.db")
            && page.contains("--latest-good"),
        "{page}"
    );
    crate::store::damage::resolve(&db, "test").unwrap();
    e.state.changed();
    let page = text(e.send(get("/system", Some(&cookie))).await).await;
    assert!(!page.contains("id=\"damage\""), "{page}");
}

/// The System page says how far back each level of the history reaches (read from each
/// table's first key, not by counting every row, which a first view on the Pi paid for).
#[tokio::test]
async fn system_page_says_how_far_back_each_level_of_the_history_reaches() {
    let cfg = Config {
        timezone: Some("UTC".into()),
        ..Config::default()
    };
    let e = env_with(cfg);
    let db = e.state.db_path().to_path_buf();
    let (cookie, _) = e.admin().await;
    let page = text(e.send(get("/system", Some(&cookie))).await).await;
    assert!(page.contains("nothing stored yet"), "{page}");
    let mut store = crate::store::Store::open(&db).unwrap();
    // 2024-03-09 23:59 UTC, then a rollup two days later: minute, hour, day and month rows.
    let minute = 1_710_028_740;
    store
        .write_flush(
            &[crate::model::MinuteUsage {
                mac: "02:00:00:00:00:01".parse().unwrap(),
                minute,
                counts: crate::model::Counts {
                    frames_sent: 1,
                    bytes_sent: 60,
                    ..Default::default()
                },
            }],
            &[],
        )
        .unwrap();
    store
        .roll_up(&jiff::tz::TimeZone::UTC, minute + 2 * 86_400)
        .unwrap();
    e.state.changed();
    let page = text(e.send(get("/system", Some(&cookie))).await).await;
    assert!(
        page.contains(
            "minutes since 2024-03-09, hours since 2024-03-09, days since 2024-03-09, months since 2024-03-01"
        ),
        "{page}"
    );
}

#[tokio::test]
async fn viewers_read_settings_without_inputs_and_cannot_change_the_file() {
    let e = env();
    let file = e._dir.path().join("lanmeter.toml");
    let original = "# ours\nalert_cpu_temp_c = 70 # warm attic\n";
    std::fs::write(&file, original).unwrap();
    e.state
        .set_settings(std::sync::Arc::new(crate::config::settings::Editor::new(
            file.clone(),
            crate::config::settings::Live::new(e.state.config().clone()),
        )));
    e.set_password(Role::Admin, ADMIN_PW).await;
    e.set_password(Role::Viewer, VIEWER_PW).await;
    let (cookie, csrf) = e.login(VIEWER_PW).await;
    let page = text(e.send(get("/settings", Some(&cookie))).await).await;
    assert!(
        page.contains(r#"id="alert_cpu_temp_c" name="alert_cpu_temp_c" value="70" disabled"#),
        "{page}"
    );
    assert!(!page.contains("Save settings"), "{page}");
    assert!(!page.contains("test-email"), "{page}");
    let r = e
        .send(post_form(
            "/settings",
            &cookie,
            &[("csrf", &csrf), ("alert_cpu_temp_c", "90")],
        ))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // The admin's change goes through; the audit log says old → new.
    let (cookie, csrf) = e.login(ADMIN_PW).await;
    let r = e
        .send(post_form(
            "/settings",
            &cookie,
            &[("csrf", &csrf), ("alert_cpu_temp_c", "90")],
        ))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# ours\nalert_cpu_temp_c = 90 # warm attic\n"
    );
    assert!(
        e.audit_actions()
            .await
            .contains(&"settings changed".to_string())
    );

    // A file broken by hand: the page says why and refuses to save, the file stays as it is.
    std::fs::write(&file, "alert_cpu_temp_c = \"hot\n").unwrap();
    let page = text(e.send(get("/settings", Some(&cookie))).await).await;
    assert!(page.contains("TOML syntax error"), "{page}");
    let r = e
        .send(post_form(
            "/settings",
            &cookie,
            &[("csrf", &csrf), ("alert_cpu_temp_c", "80")],
        ))
        .await;
    assert_ne!(r.status(), StatusCode::OK);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "alert_cpu_temp_c = \"hot\n"
    );
}

/// A device the discovery pipeline stored, as the edit form's tests need one: its id.
async fn one_device(e: &Env) -> i64 {
    let mac: crate::model::MacAddr = "3c:22:fb:00:00:01".parse().unwrap();
    let at = T0 * 1_000_000_000;
    e.state
        .db_mut(move |s| {
            let facts = crate::store::discovery::MacFacts {
                mac,
                spans: vec![(at, at)],
                ..Default::default()
            };
            s.write_discovery(&[facts], 300_000_000_000, |_| None)?;
            Ok(s.list_devices()?[0].id)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn an_edit_over_the_length_limit_keeps_the_form_and_says_why_next_to_the_field() {
    let e = env();
    let (cookie, csrf) = e.admin().await;
    let id = one_device(&e).await;
    let path = format!("/devices/{id}");
    let long_group = "g".repeat(121);
    // 120 letters with accents are 240 bytes but 120 characters: the form's maxlength lets
    // them through, so the server takes them too.
    let accented = "é".repeat(120);
    let r = e
        .send(post_form(
            &path,
            &cookie,
            &[
                ("csrf", &csrf),
                ("name", &accented),
                ("owner", "Emma"),
                ("group", &long_group),
                ("notes", "on the landing"),
                ("known", "1"),
            ],
        ))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(r).await;
    assert!(page.contains(r#"id="group-error""#), "{page}");
    assert!(page.contains("The group is too long: at most 120 characters."));
    assert!(
        !page.contains(r#"id="name-error""#),
        "the accented name is fine"
    );
    // What was typed is still there, the refused field included.
    assert!(page.contains(&format!(r#"value="{accented}""#)));
    assert!(page.contains(r#"value="Emma""#));
    assert!(page.contains(&format!(r#"value="{long_group}""#)));
    assert!(page.contains(">on the landing</textarea>"));
    // Nothing was saved.
    let d = e.state.db(move |s| s.device(id)).await.unwrap().unwrap();
    assert_eq!(d.user.owner, None);
    assert!(!d.user.known);

    // The same form within the limits saves and goes back to the form.
    let group = "g".repeat(120);
    let r = e
        .send(post_form(
            &path,
            &cookie,
            &[("csrf", &csrf), ("name", &accented), ("group", &group)],
        ))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/devices/{id}?saved=1#edit-card"));
    let d = e.state.db(move |s| s.device(id)).await.unwrap().unwrap();
    assert_eq!(d.user.name.as_deref(), Some(accented.as_str()));
}

#[tokio::test]
async fn an_inline_rename_answers_the_row_with_its_link_taking_the_focus() {
    let e = env();
    let (cookie, csrf) = e.admin().await;
    let id = one_device(&e).await;
    let r = e
        .send(post_form(
            &format!("/devices/{id}/rename"),
            &cookie,
            &[("csrf", &csrf), ("name", "Porch sensor")],
        ))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let row = text(r).await;
    assert!(
        row.contains(&format!(
            r#"<a class="dev" href="/devices/{id}" autofocus>"#
        )),
        "{row}"
    );
    assert!(row.contains("Porch sensor"));
    // The full list focuses nothing by itself.
    let list = text(e.send(get("/devices", Some(&cookie))).await).await;
    assert!(list.contains(&format!(r#"href="/devices/{id}""#)), "{list}");
    assert!(!list.contains("autofocus"), "{list}");
}

/// Pages under load (issue 26): a page rendered less than a second ago is sent again to the same
/// session, never to another one (forms carry the session's CSRF token), and an edit made through
/// the web side is on the very next view.
#[tokio::test]
async fn a_rendered_page_is_reused_for_its_session_and_an_edit_is_seen_at_once() {
    let e = env();
    let (cookie, csrf) = e.admin().await;
    let id = one_device(&e).await;
    let reused = || e.state.caches().responses.hits();
    let first = text(e.send(get("/devices", Some(&cookie))).await).await;
    assert!(first.contains(&csrf), "{first}");
    let before = reused();
    let again = text(e.send(get("/devices", Some(&cookie))).await).await;
    assert_eq!(first, again);
    assert_eq!(reused(), before + 1);
    let (other, other_csrf) = e.login(ADMIN_PW).await;
    let theirs = text(e.send(get("/devices", Some(&other))).await).await;
    assert_eq!(reused(), before + 1, "another session's page is its own");
    assert!(theirs.contains(&other_csrf) && !theirs.contains(&csrf));
    let r = e
        .send(post_form(
            &format!("/devices/{id}/rename"),
            &cookie,
            &[("csrf", &csrf), ("name", "Porch sensor")],
        ))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let after = text(e.send(get("/devices", Some(&cookie))).await).await;
    assert!(after.contains("Porch sensor"), "{after}");
    assert_eq!(reused(), before + 1);
}

/// A Pi that sees only its own traffic: the System page and the wizard's first step say so in
/// the verdict's words and list the three set-ups of INSTALL.md; without a capture they say
/// there is nothing to judge.
#[tokio::test]
async fn system_page_and_wizard_tell_a_pi_that_sees_only_itself_where_to_go() {
    use crate::capture::Frame;
    use crate::capture::decode::Dest;
    use crate::model::MacAddr;
    use crate::placement::{Placement, Watch};
    let e = env();
    let (cookie, _) = e.admin().await;
    let page = text(e.send(get("/system", Some(&cookie))).await).await;
    assert!(
        page.contains("This server does not capture, so it cannot tell where it sits."),
        "{page}"
    );
    let (own, router, laptop) = (
        MacAddr([2, 0, 0, 0, 0, 1]),
        MacAddr([2, 0, 0, 0, 0, 0x99]),
        MacAddr([2, 0, 0, 0, 0, 0x42]),
    );
    let watch = Watch::new(
        "eth0",
        Some(own),
        Some(Placement {
            promiscuous: true,
            ..Default::default()
        }),
    );
    let frame = |src, dst| Frame {
        src,
        dst: Dest::Unicast(dst),
        wire_len: 100,
        ..Frame::EMPTY
    };
    watch.observe(
        &[frame(own, router), frame(router, own), frame(laptop, own)],
        Some(router),
    );
    e.state.telemetry().set_visibility(watch);
    // Published behind the web side: a page rendered within the last second may be reused.
    e.state.changed();
    for path in ["/system", "/welcome"] {
        let page = text(e.send(get(path, Some(&cookie))).await).await;
        for want in [
            "The Pi only sees its own traffic: lanmeter would count the Pi and nothing else.",
            "1 other device talked to the Pi directly",
            "Make the Pi your Wi-Fi access point",
            "Make the Pi the router",
            "Use a switch with a mirror port",
            crate::placement::INSTALL_DOC,
        ] {
            assert!(page.contains(want), "{path}: no {want:?} in {page}");
        }
    }
}
