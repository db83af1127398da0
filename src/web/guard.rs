//! The gate every request passes before a handler runs, and the headers every response gets.
//!
//! In order: a state-changing request from another origin is refused; before first-run setup
//! every page leads to /setup; the session is looked up (or the anonymous LAN viewer admitted
//! when the config allows it); the route's [`Access`] rule is applied; a state-changing request
//! must carry the CSRF token (form field `csrf` or header `X-CSRF-Token`). Routes the table does
//! not know are admin-only. GET/HEAD never reach a handler that changes anything.

use super::error::{AppError, error_page};
use super::hosts::Hosts;
use super::session::{self, Auth};
use super::{Access, AppState};
use crate::auth::{Role, constant_time_eq};
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest form body the guard buffers to find the CSRF field; lanmeter's forms are tiny.
const FORM_LIMIT: usize = 64 * 1024;
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Content-Security-Policy: scripts and styles only from this server (no inline script or
/// style, no eval), no frames, forms post only here, nothing from anywhere else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'";

#[derive(Clone)]
pub struct Gate {
    pub state: AppState,
    pub access: Arc<HashMap<&'static str, Access>>,
}

pub(crate) fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

fn forbidden(msg: &'static str) -> Response {
    AppError::Forbidden(msg).into_response()
}

/// A refusal in the API's error shape (for `/api/` and `/metrics`) or as a page.
fn refuse_api(status: StatusCode, code: &'static str, msg: &'static str) -> Response {
    super::api::ApiError::new(status, code, msg).into_response()
}

pub async fn guard(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    match check(&gate, req).await {
        Ok(Ok(req)) => next.run(req).await,
        Ok(Err(refusal)) => refusal,
        Err(e) => e.into_response(),
    }
}

/// The request to pass on, or the response that refuses it.
async fn check(gate: &Gate, req: Request) -> Result<Result<Request, Response>, AppError> {
    let state = &gate.state;
    let access = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| gate.access.get(m.as_str()))
        .copied()
        .unwrap_or(Access::Admin);
    let path = req.uri().path().to_string();
    let api = is_api(&path);
    let changing = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);

    if changing && !same_origin(req.headers(), state.hosts()) {
        tracing::info!(path = %path, client = %session::client_addr(&req), "refused a cross-origin request");
        let msg = "This request came from another site and was refused.";
        return Ok(Err(if api {
            refuse_api(StatusCode::FORBIDDEN, "cross_origin", msg)
        } else {
            forbidden(msg)
        }));
    }
    if access != Access::Public && !state.admin_exists().await? {
        return Ok(Err(if api {
            refuse_api(
                StatusCode::UNAUTHORIZED,
                "setup_required",
                "Set the admin password first (open the dashboard, or run `lanmeter passwd`).",
            )
        } else {
            Redirect::to("/setup").into_response()
        }));
    }

    let client = session::client_addr(&req);
    // An API request with an Authorization header is judged by the token alone (see api::tokens).
    let mut token_use = None;
    let bearer = if api {
        super::api::tokens::bearer(req.headers())
    } else {
        super::api::tokens::Bearer::None
    };
    let auth = match bearer {
        super::api::tokens::Bearer::Malformed => {
            return Ok(Err(refuse_api(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The Authorization header must be `Bearer <token>`.",
            )));
        }
        super::api::tokens::Bearer::Token(_)
            if state.unknown_tokens().throttled(&client, state.now()) =>
        {
            let mut r = refuse_api(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too many unknown API tokens from this address: wait a minute, then use a valid token.",
            );
            let wait = state.unknown_tokens().retry_after(&client, state.now());
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            return Ok(Err(r));
        }
        super::api::tokens::Bearer::Token(secret) => {
            match super::api::tokens::authenticate(state, secret).await {
                Ok(Some(t)) => {
                    token_use = Some(super::api::tokens::TokenUse {
                        id: t.id,
                        name: t.name.clone(),
                    });
                    Some(Auth {
                        role: t.role,
                        session: None,
                        client: client.clone(),
                    })
                }
                Ok(None) => {
                    state.unknown_tokens().note(&client, &path, state.now());
                    return Ok(Err(refuse_api(
                        StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "This API token is unknown or was revoked.",
                    )));
                }
                Err(e) => return Ok(Err(e.into_response())),
            }
        }
        super::api::tokens::Bearer::None => match session::lookup(state, req.headers()).await? {
            Some(row) => Some(Auth {
                role: row.role,
                session: Some(row),
                client: client.clone(),
            }),
            None if state.config().anyone_on_lan_may_view && session::is_lan_addr(&client) => {
                Some(Auth {
                    role: Role::Viewer,
                    session: None,
                    client: client.clone(),
                })
            }
            None => None,
        },
    };

    if access != Access::Public {
        let Some(a) = &auth else {
            return Ok(Err(if api {
                refuse_api(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Log in, or send an API token as `Authorization: Bearer <token>`.",
                )
            } else {
                let next = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                Redirect::to(&format!("/login?{q}")).into_response()
            }));
        };
        let allowed = match access {
            Access::Public | Access::OwnSession => true,
            Access::Viewer => !changing || a.role == Role::Admin,
            Access::Admin => a.role == Role::Admin,
        };
        if !allowed {
            let msg = "Only the admin may do this. Log in with the admin password, or use an admin token.";
            return Ok(Err(if api {
                refuse_api(StatusCode::FORBIDDEN, "forbidden", msg)
            } else {
                forbidden(msg)
            }));
        }
    }

    let mut req = req;
    if changing && token_use.is_none() {
        let expected = if access == Access::Public {
            session::pre_cookie(req.headers())
        } else {
            auth.as_ref()
                .and_then(|a| a.session.as_ref())
                .map(|s| s.csrf.clone())
        };
        let (checked, ok) = csrf_ok(req, expected.as_deref()).await;
        req = checked;
        if !ok {
            tracing::info!(path = %path, client = %client, "refused a request without a valid CSRF token");
            return Ok(Err(if api {
                refuse_api(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "A session's change needs its CSRF token in the X-CSRF-Token header (or use an API token).",
                )
            } else {
                forbidden(
                    "The form was stale or incomplete (missing security token). Reload the page and try again.",
                )
            }));
        }
    }
    if let Some(t) = token_use {
        req.extensions_mut().insert(t);
    }
    if let Some(a) = auth {
        req.extensions_mut().insert(a);
    }
    Ok(Ok(req))
}

/// Checks the CSRF token in the header, else in the urlencoded form body (buffered and put
/// back). Returns the request to pass on and whether the token matched.
async fn csrf_ok(req: Request, expected: Option<&str>) -> (Request, bool) {
    let Some(expected) = expected.filter(|e| !e.is_empty()) else {
        return (req, false);
    };
    if let Some(h) = req.headers().get(CSRF_HEADER) {
        let ok = h.to_str().is_ok_and(|t| constant_time_eq(t, expected));
        return (req, ok);
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (req, false);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return (Request::from_parts(parts, Body::empty()), false);
    };
    let ok = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == "csrf"))
        .is_some_and(|(_, t)| constant_time_eq(&t, expected));
    (Request::from_parts(parts, Body::from(bytes)), ok)
}

/// The `host[:port]` part of an `Origin` or `Referer` value.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// A state-changing request must not come from another site: its Origin (or, without one, its
/// Referer) must name a host this server answers to (the allow-list, not merely the Host
/// header, which a rebinding page controls). Requests with neither (scripts, curl) pass here
/// and still need the CSRF token, which another site cannot read.
pub fn same_origin(headers: &HeaderMap, hosts: &Hosts) -> bool {
    let claimed = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(o), _) => o.to_str().ok(),
        (None, Some(r)) => r.to_str().ok(),
        (None, None) => return true,
    };
    claimed
        .and_then(authority_of)
        .is_some_and(|a| hosts.allows(a))
}

/// The Host a request names: the header, or the URI's authority (HTTP/2, absolute-form).
fn named_host(req: &Request) -> Option<&str> {
    match req.headers().get(header::HOST) {
        Some(h) => Some(h.to_str().unwrap_or("")),
        None => req.uri().authority().map(|a| a.as_str()),
    }
}

/// Refuses, before any route, a request naming a host this server does not answer to: the
/// DNS rebinding defence (see [`super::hosts`]). A request without any Host (HTTP/1.0 from a
/// script) is no browser's and passes.
pub async fn known_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match named_host(&req) {
        Some(h) if !state.hosts().allows(h) => {
            tracing::debug!(host = %h, client = %session::client_addr(&req), "refused a request for another host");
            let mut r = (
                StatusCode::MISDIRECTED_REQUEST,
                "This server does not answer to that host name. Open it by its own name or address, \
                 or add the name to `web_host_names` in the configuration.\n",
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
        _ => next.run(req).await,
    }
}

/// Headers on every response: CSP, no framing, no sniffing, no referrer to other sites, and no
/// caching of pages (which show the household's data) unless the handler set its own rule.
pub async fn security_headers(State(tls): State<bool>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// Used by handlers that answer a refused request themselves.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    error_page(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_and_referer_must_name_an_allowed_host() {
        let hosts = Hosts::new(
            &crate::config::Config {
                listen: "192.168.1.5:8080".parse().unwrap(),
                web_host_names: vec!["pi.home".into()],
                ..Default::default()
            },
            false,
        );
        let host = ("host", "192.168.1.5:8080");
        let ok = |h: &[(&'static str, &'static str)]| same_origin(&headers(h), &hosts);
        assert!(ok(&[host, ("origin", "http://192.168.1.5:8080")]));
        assert!(ok(&[host, ("origin", "http://pi.home:8080")]));
        assert!(!ok(&[host, ("origin", "http://evil.example")]));
        assert!(!ok(&[host, ("origin", "null")]));
        assert!(!ok(&[host, ("origin", "http://192.168.1.5:8081")]));
        assert!(ok(&[host, ("referer", "http://192.168.1.5:8080/audit?x")]));
        assert!(!ok(&[
            host,
            ("referer", "http://192.168.1.5:8080.evil.example/")
        ]));
        // A rebinding page sends a Host and an Origin that agree: both name the attacker.
        assert!(!ok(&[
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080")
        ]));
        assert!(ok(&[host]));
    }
}
