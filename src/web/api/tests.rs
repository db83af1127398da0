//! API tests through `router(state).oneshot(..)` on a real SQLite file: the route table and the
//! OpenAPI document agree, every failure class has the one error shape, tokens work and are
//! stored hashed, pagination is capped, user fields are validated.

use crate::auth::Role;
use crate::config::Config;
use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};
use crate::web::{AppState, Clock, router};
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tower::ServiceExt;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const DEVICES: u64 = 130;

struct Env {
    _dir: tempfile::TempDir,
    state: AppState,
    admin: String,
    viewer: String,
}

fn mac(n: u64) -> MacAddr {
    MacAddr::from_u64(0x02_00_00_00_00_00 | n)
}

/// A database with an admin password, `DEVICES` devices with an hour of usage each, and one
/// admin and one viewer token.
async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(
        Config {
            timezone: Some("UTC".into()),
            // The name the requests here use (see web::hosts).
            web_host_names: vec!["lanmeter.test".into()],
            ..Config::default()
        },
        &dir.path().join("api.db"),
        None,
    )
    .unwrap()
    .with_clock(Clock::manual(T0 + 3600));
    let phc = crate::auth::hash_password("correct horse battery").unwrap();
    let mut tokens = Vec::new();
    for role in [Role::Admin, Role::Viewer] {
        let (secret, digest, prefix) = crate::auth::new_api_token().unwrap();
        tokens.push((secret, digest, prefix, role));
    }
    let t = tokens.clone();
    state
        .db_mut(move |s| {
            s.set_password(Role::Admin, &phc, T0)?;
            let mut usage = Vec::new();
            let mut seen = Vec::new();
            for n in 1..=DEVICES {
                for m in 0..60 {
                    usage.push(MinuteUsage {
                        mac: mac(n),
                        minute: T0 + m * 60,
                        counts: Counts {
                            frames_sent: n,
                            frames_received: 1,
                            bytes_sent: 100 * n,
                            bytes_received: 10,
                            internet_upload_bytes: n,
                            internet_download_bytes: 0,
                        },
                    });
                }
                seen.push(Sighting {
                    mac: mac(n),
                    first_seen: T0 * 1_000_000_000,
                    last_seen: (T0 + 3599) * 1_000_000_000,
                    is_gateway: false,
                });
            }
            s.write_flush(&usage, &seen)?;
            for (_, digest, prefix, role) in &t {
                s.create_token(&crate::store::tokens::NewToken {
                    name: role.as_str(),
                    role: *role,
                    digest,
                    prefix,
                    now: T0,
                })?;
            }
            Ok(())
        })
        .await
        .unwrap();
    Env {
        _dir: dir,
        state,
        admin: tokens[0].0.clone(),
        viewer: tokens[1].0.clone(),
    }
}

impl Env {
    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let r: Response<Body> = router(self.state.clone()).oneshot(req).await.unwrap();
        let (parts, body) = r.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "lanmeter.test");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let (status, headers, bytes) = self.send(req).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            assert_error_shape(status, &headers, &v);
        }
        (status, v)
    }
}

/// The one error shape: status repeated, a code, a message and the request id of the header.
fn assert_error_shape(status: StatusCode, headers: &axum::http::HeaderMap, v: &Value) {
    let ctype = headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap();
    assert_eq!(ctype, "application/json", "{status}: {v}");
    let body: super::ErrorBody = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{status}: not the error shape ({e}): {v}"));
    assert_eq!(body.status, status.as_u16());
    assert!(!body.code.is_empty() && !body.message.is_empty(), "{v}");
    let id = headers.get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(body.request_id, id);
    assert!(!id.is_empty());
}

#[test]
fn every_api_route_is_in_the_openapi_document_and_back() {
    let doc = serde_json::to_value(super::openapi()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = super::table()
        .iter()
        .map(|o| (o.method.as_str().to_string(), o.path.to_string()))
        .collect();
    assert_eq!(routed, documented, "routes vs OpenAPI operations");
    // Every API path the router knows comes from the API table (nothing added around it).
    let api_paths: BTreeSet<&str> = super::table().iter().map(|o| o.path).collect();
    for r in crate::web::route_table() {
        if crate::web::guard::is_api(r.path) {
            assert!(
                api_paths.contains(r.path),
                "{} is routed outside api::table",
                r.path
            );
        }
    }
    assert_eq!(doc["openapi"].as_str().unwrap().chars().next(), Some('3'));
    // Every reference resolves (schemas used only by query parameters are easy to forget).
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "unresolved {r}"
        );
    }
}

#[tokio::test]
async fn every_failure_class_has_the_error_shape() {
    let e = env().await;
    // (method, path, token, body, expected status, expected code)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<Value>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/api/v1/devices",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "GET",
            "/metrics",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "GET",
            "/api/v1/devices",
            Some("lm_nope"),
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "GET",
            "/api/v1/devices?limit=101",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/devices?limit=0",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/devices?colour=red",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/devices?sort=size",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/devices/abc",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "GET",
            "/api/v1/devices/99999",
            Some(&e.viewer),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/nothing",
            Some(&e.admin),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "DELETE",
            "/api/v1/devices/1",
            Some(&e.admin),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "PATCH",
            "/api/v1/devices/1",
            Some(&e.viewer),
            Some(json!({"name": "x"})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "PATCH",
            "/api/v1/devices/1",
            Some(&e.admin),
            Some(json!({"nmae": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "PATCH",
            "/api/v1/devices/1",
            Some(&e.admin),
            Some(json!({"name": "a\u{7}b"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "PATCH",
            "/api/v1/devices/1",
            Some(&e.admin),
            Some(json!({"name": "x".repeat(65)})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "PATCH",
            "/api/v1/devices/1",
            Some(&e.admin),
            Some(json!({"known": "yes"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "GET",
            "/api/v1/usage?from=2026-01-02&to=2026-01-01",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_range",
        ),
        (
            "GET",
            "/api/v1/usage?from=yesterday",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/usage?from=2000-01-01&bucket=minute",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "range_too_large",
        ),
        (
            "GET",
            "/api/v1/usage?device=1&owner=x",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/top?limit=101",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/export?from=2026-01-01",
            Some(&e.viewer),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/tokens",
            Some(&e.viewer),
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            "/api/v1/tokens",
            Some(&e.admin),
            Some(json!({"name": ""})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "DELETE",
            "/api/v1/tokens/424242",
            Some(&e.admin),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, token, body, want, code) in cases {
        let (status, v) = e.call(method, path, token, body).await;
        assert_eq!(
            (status, v["code"].as_str().unwrap_or("")),
            (want, code),
            "{method} {path}: {v}"
        );
    }

    // A body that is not JSON, one too large, a malformed Authorization header.
    let base = || {
        Request::builder()
            .method("PATCH")
            .uri("/api/v1/devices/1")
            .header(header::AUTHORIZATION, format!("Bearer {}", e.admin))
    };
    let (s, h, b) = e
        .send(
            base()
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("name=x"))
                .unwrap(),
        )
        .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error_shape(s, &h, &v);
    assert_eq!(
        (s, v["code"].as_str().unwrap()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let big = json!({"notes": "x".repeat(20_000)}).to_string();
    let (s, h, b) = e
        .send(
            base()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(big))
                .unwrap(),
        )
        .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error_shape(s, &h, &v);
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, h, b) = e
        .send(
            Request::builder()
                .uri("/api/v1/devices")
                .header(header::AUTHORIZATION, "Basic YTpi")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error_shape(s, &h, &v);
    assert_eq!(v["code"], "invalid_token");

    // A session's change needs the CSRF header; refused in the API shape, not as a page.
    e.state
        .db(|s| {
            s.insert_session(&crate::store::auth::SessionRow {
                id_digest: crate::auth::token_digest("the-session"),
                role: Role::Admin,
                csrf: "the-csrf".into(),
                created_at: T0 + 3600,
                last_seen: T0 + 3600,
                client: "unknown".into(),
            })
        })
        .await
        .unwrap();
    let patch = |csrf: Option<&str>| {
        let mut b = Request::builder()
            .method("PATCH")
            .uri("/api/v1/devices/1")
            .header(header::COOKIE, "lm_session=the-session")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        b.body(Body::from(r#"{"known": true}"#)).unwrap()
    };
    let (s, h, b) = e.send(patch(None)).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error_shape(s, &h, &v);
    assert_eq!(
        (s, v["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "csrf")
    );
    let (s, _, _) = e.send(patch(Some("the-csrf"))).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a session with its CSRF header may change"
    );

    // A client's own request id is echoed; a hostile one is replaced.
    let (_, h, _) = e
        .send(
            Request::builder()
                .uri("/api/v1/devices")
                .header("x-request-id", "abc-123")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(h["x-request-id"], "abc-123");
    let (_, h, _) = e
        .send(
            Request::builder()
                .uri("/api/v1/devices")
                .header("x-request-id", "a b<c>")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_ne!(h["x-request-id"], "a b<c>");

    // A server fault: the database, its WAL and shared-memory index are overwritten with
    // garbage (same lengths) under the running server.
    let db = e.state.db_path().to_path_buf();
    for ext in ["db", "db-wal", "db-shm"] {
        let p = db.with_extension(ext);
        if let Ok(m) = std::fs::metadata(&p) {
            std::fs::write(&p, vec![0x55u8; m.len() as usize]).unwrap();
        }
    }
    let (status, v) = e
        .call("GET", "/api/v1/devices", Some(&e.viewer), None)
        .await;
    assert_eq!(
        (status, v["code"].as_str().unwrap()),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        "{v}"
    );
    assert!(
        !v["message"].as_str().unwrap().contains("api.db"),
        "no server paths leak: {v}"
    );
}

#[tokio::test]
async fn devices_are_paged_at_most_100_at_a_time_filtered_and_sorted() {
    let e = env().await;
    let (s, v) = e
        .call("GET", "/api/v1/devices?limit=100", Some(&e.viewer), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().unwrap().len(), 100);
    assert_eq!(v["total"], DEVICES);
    let (_, v) = e
        .call("GET", "/api/v1/devices", Some(&e.viewer), None)
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 50, "default page");
    let mut ids = BTreeSet::new();
    let mut offset = 0;
    loop {
        let (_, v) = e
            .call(
                "GET",
                &format!("/api/v1/devices?limit=40&offset={offset}&sort=mac&order=desc"),
                Some(&e.viewer),
                None,
            )
            .await;
        let items = v["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        for d in items {
            assert!(ids.insert(d["id"].as_i64().unwrap()), "no device twice");
        }
        offset += 40;
    }
    assert_eq!(ids.len() as u64, DEVICES);
    let (_, v) = e
        .call(
            "GET",
            "/api/v1/devices?sort=mac&order=desc&limit=1",
            Some(&e.viewer),
            None,
        )
        .await;
    assert_eq!(v["items"][0]["mac"], mac(DEVICES).to_string());
    let (_, v) = e
        .call(
            "GET",
            &format!("/api/v1/devices?q={}", mac(7)),
            Some(&e.viewer),
            None,
        )
        .await;
    assert_eq!(v["total"], 1);
}

#[tokio::test]
async fn patch_sets_and_clears_user_fields_and_usage_follows_owner() {
    let e = env().await;
    let (s, v) = e
        .call("PATCH", "/api/v1/devices/3", Some(&e.admin), Some(json!({"name": "  Anna's phone ", "owner": "Anna", "notes": "line1\nline2", "known": true})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "Anna's phone");
    assert_eq!(v["user"]["owner"], "Anna");
    assert_eq!(v["user"]["known"], true);
    let (_, v) = e
        .call(
            "PATCH",
            "/api/v1/devices/3",
            Some(&e.admin),
            Some(json!({"notes": null, "name": ""})),
        )
        .await;
    assert_eq!(
        (v["user"]["notes"].clone(), v["user"]["name"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(v["user"]["owner"], "Anna", "absent fields stay");
    e.call(
        "PATCH",
        "/api/v1/devices/4",
        Some(&e.admin),
        Some(json!({"owner": "anna"})),
    )
    .await;
    let (_, v) = e
        .call("GET", "/api/v1/devices?owner=ANNA", Some(&e.viewer), None)
        .await;
    assert_eq!(v["total"], 2);

    let range = "from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z";
    let (s, v) = e
        .call(
            "GET",
            &format!("/api/v1/usage?owner=Anna&{range}&bucket=minute"),
            Some(&e.viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"]["bytes_sent"], 60 * 100 * (3 + 4));
    assert_eq!(v["series"].as_array().unwrap().len(), 60);
    let (_, v) = e
        .call(
            "GET",
            &format!("/api/v1/usage?{range}&bucket=hour"),
            Some(&e.viewer),
            None,
        )
        .await;
    assert_eq!(
        v["total"]["bytes_sent"],
        60 * 100 * DEVICES * (DEVICES + 1) / 2
    );
    assert_eq!(v["series"].as_array().unwrap().len(), 1);
    let (_, v) = e
        .call(
            "GET",
            &format!("/api/v1/top?{range}&limit=3"),
            Some(&e.viewer),
            None,
        )
        .await;
    let top: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["mac"].as_str().unwrap())
        .collect();
    assert_eq!(top, [mac(130), mac(129), mac(128)].map(|m| m.to_string()));
    let audit = e.state.db(|s| s.audit_recent(10)).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "device edited" && a.actor == "token admin")
    );
}

#[tokio::test]
async fn tokens_are_created_used_revoked_and_stored_hashed() {
    let e = env().await;
    let (s, v) = e
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&e.admin),
            Some(json!({"name": "grafana"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    let id = v["token"]["id"].as_i64().unwrap();
    assert!(secret.starts_with("lm_") && secret.len() == 67);
    assert_eq!(v["token"]["role"], "viewer");
    let (s, _) = e.call("GET", "/api/v1/system", Some(&secret), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = e
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&secret),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a viewer token cannot make tokens"
    );

    // At rest: only the digest; the secret appears nowhere in the database file.
    let db = std::fs::read(e.state.db_path()).unwrap();
    let wal = std::fs::read(e.state.db_path().with_extension("db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    let digest = crate::auth::token_digest(&secret);
    let row = e
        .state
        .db(move |s| s.token_by_digest(&digest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.id, id);
    assert!(row.last_used_at.is_some());

    let (_, list) = e.call("GET", "/api/v1/tokens", Some(&e.admin), None).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("secret").is_none())
    );
    let (s, v) = e
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["revoked_at"].is_string());
    let (s, v) = e.call("GET", "/api/v1/system", Some(&secret), None).await;
    assert_eq!(
        (s, v["code"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
}

#[tokio::test]
async fn a_busy_database_does_not_fail_a_token_request() {
    // Found by the soak campaign: recording the token's use (a write) found the database locked
    // and the whole read-only request failed with 500.
    let e = env().await;
    let last_used = |secret: &str| {
        let digest = crate::auth::token_digest(secret);
        let state = e.state.clone();
        async move {
            state
                .db(move |s| s.token_by_digest(&digest))
                .await
                .unwrap()
                .unwrap()
                .last_used_at
        }
    };
    let other = crate::store::Store::open(e.state.db_path()).unwrap();
    other.hold_write_lock();
    let (status, v) = e
        .call("GET", "/api/v1/devices?limit=1", Some(&e.viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(last_used(&e.viewer).await, None);
    drop(other);
    // Once the lock is gone the use is recorded on the next request.
    let (status, _) = e
        .call("GET", "/api/v1/devices?limit=1", Some(&e.viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(last_used(&e.viewer).await.is_some());
}

/// docs/API.md: `to` defaults to now and `from` to a day before it, for the export too (it
/// answered "missing field 'to'").
#[tokio::test]
async fn export_range_defaults_to_the_day_before_now() {
    let e = env().await;
    let (status, v) = e
        .call(
            "GET",
            "/api/v1/export?period=hour&format=json",
            Some(&e.viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len() as u64, DEVICES, "one hour row per device: {v}");
    let sent: u64 = rows.iter().map(|r| r["bytes_sent"].as_u64().unwrap()).sum();
    assert_eq!(sent, (1..=DEVICES).map(|n| 100 * n * 60).sum::<u64>());
    // A `from` alone ends at now too; a `to` before the stored hour leaves nothing.
    let (status, v) = e
        .call(
            "GET",
            "/api/v1/export?period=hour&format=json&from=2026-01-01T00:00:00Z",
            Some(&e.viewer),
            None,
        )
        .await;
    assert_eq!(
        (status, v.as_array().unwrap().len() as u64),
        (StatusCode::OK, DEVICES)
    );
    let (status, v) = e
        .call(
            "GET",
            "/api/v1/export?period=hour&format=json&to=2026-01-01T00:00:00Z",
            Some(&e.viewer),
            None,
        )
        .await;
    assert_eq!((status, v.as_array().unwrap().len()), (StatusCode::OK, 0));
}
