//! Sessions as the browser sees them: the cookies, the signed-in [`Auth`] a request carries,
//! the client address, and the [`Layout`] every page shares.
//!
//! The session id travels only in an HttpOnly, SameSite=Strict cookie (Secure over TLS) and is
//! stored only as a digest; a login always issues a fresh id, so an id planted before login is
//! worthless after it. Over TLS both cookies carry the `__Host-` prefix on the wire (see
//! [`host_prefix`]), so no other host name and no plain-HTTP page can set or shadow them. The
//! pre-login token is signed with a per-process key: a value the client made up is never
//! accepted as one. Nothing here decides who may do what: that is `guard`.

use super::AppState;
use super::assets;
use super::error::AppError;
use crate::auth::{self, Role};
use crate::store::auth::SessionRow;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use std::net::{IpAddr, SocketAddr};

pub const SESSION_COOKIE: &str = "lm_session";
/// The pre-login CSRF token (double-submit) for the setup and login forms.
pub const PRE_COOKIE: &str = "lm_pre";
/// A session's `last_seen` is written at most this often, so a page polling every second does
/// not turn into a database write every second.
const TOUCH_EVERY_SECS: i64 = 60;

/// Who is making the request, after the guard checked the session.
#[derive(Clone, Debug)]
pub struct Auth {
    pub role: Role,
    /// The stored session; `None` for the anonymous LAN viewer (`anyone_on_lan_may_view`).
    pub session: Option<SessionRow>,
    pub client: String,
}

impl Auth {
    pub fn actor(&self) -> &'static str {
        match (&self.session, self.role) {
            (None, _) => "anonymous",
            (Some(_), r) => r.as_str(),
        }
    }
}

/// The client's address as text: the socket peer ("unknown" when the server was not given
/// connection info). Behind a reverse proxy every client is the proxy: lanmeter does not trust
/// X-Forwarded-For, because any client could send one to dodge login throttling.
pub fn client_addr<B>(req: &Request<B>) -> String {
    addr_from(req.extensions())
}

fn addr_from(ext: &axum::http::Extensions) -> String {
    ext.get::<ConnectInfo<SocketAddr>>().map_or_else(
        || "unknown".to_string(),
        |c| c.0.ip().to_canonical().to_string(),
    )
}

/// Extractor for [`client_addr`].
pub struct Client(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Client, Self::Rejection> {
        Ok(Client(addr_from(&parts.extensions)))
    }
}

/// True for addresses that can only be on the LAN (or the box itself).
pub fn is_lan_addr(addr: &str) -> bool {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.is_private() || a.is_loopback() || a.is_link_local(),
        Ok(IpAddr::V6(a)) => a.is_loopback() || a.is_unique_local() || a.is_unicast_link_local(),
        Err(_) => false,
    }
}

/// The value of cookie `name`, from every Cookie header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn cookie_header(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    // Names are constants and values are hex tokens: always a valid header value.
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Set-Cookie for a new session id; it lives as long as the session's absolute limit.
pub fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    let max = (state.config().session_max_days * 86_400) as i64;
    cookie_header(SESSION_COOKIE, token, max, state.tls())
}

pub fn clear_session_cookie(state: &AppState) -> HeaderValue {
    cookie_header(SESSION_COOKIE, "", 0, state.tls())
}

/// The key pre-login tokens are signed with: random per process (a restart only means a login
/// form shown before it is shown again).
fn pre_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        // The kernel's random source does not fail once the system has booted; a process that
        // cannot read it cannot make session ids either.
        getrandom::fill(&mut k).expect("the kernel's random source is readable");
        k
    })
}

/// The pre-login token the request carries, only if this process issued it: the double-submit
/// check of the guard compares the form field with this, so a client (or a page on another
/// site that planted a cookie) cannot choose both halves.
pub fn pre_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, PRE_COOKIE)
        .filter(|t| auth::signed_token_valid(pre_key(), t))
        .map(str::to_string)
}

/// The pre-login token from the request, or a fresh one with the Set-Cookie that plants it.
pub fn pre_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Option<HeaderValue>), AppError> {
    if let Some(t) = pre_cookie(headers) {
        return Ok((t, None));
    }
    let t = auth::signed_token(pre_key())?;
    // An hour is plenty to type a password; the cookie is refreshed whenever the form is shown.
    let c = cookie_header(PRE_COOKIE, &t, 3600, state.tls());
    Ok((t, Some(c)))
}

/// The prefix browsers reserve for cookies set over HTTPS with `Secure`, `Path=/` and no
/// `Domain`: such a cookie cannot have been set by a sibling host or a plain-HTTP page.
const HOST_PREFIX: &str = "__Host-";

/// Middleware (outermost): over TLS, our cookies travel as `__Host-lm_session` and
/// `__Host-lm_pre`. Incoming, the prefixed names are read and an unprefixed `lm_*` (which
/// anything could have planted) is dropped; outgoing, Set-Cookie names get the prefix. The
/// handlers see the plain names either way.
pub async fn host_prefix(
    axum::extract::State(tls): axum::extract::State<bool>,
    mut req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !tls {
        return next.run(req).await;
    }
    let ours = [SESSION_COOKIE, PRE_COOKIE];
    let incoming: Vec<String> = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            let kv = kv.trim();
            let name = kv.split_once('=').map_or(kv, |(k, _)| k);
            match name.strip_prefix(HOST_PREFIX) {
                Some(plain) if ours.contains(&plain) => Some(kv[HOST_PREFIX.len()..].to_string()),
                _ if ours.contains(&name) => None,
                _ => Some(kv.to_string()),
            }
        })
        .collect();
    req.headers_mut().remove(header::COOKIE);
    if !incoming.is_empty()
        && let Ok(v) = HeaderValue::from_str(&incoming.join("; "))
    {
        req.headers_mut().insert(header::COOKIE, v);
    }
    let mut res = next.run(req).await;
    let outgoing: Vec<HeaderValue> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| match v.to_str() {
            Ok(s) if ours.iter().any(|n| s.starts_with(&format!("{n}="))) => {
                HeaderValue::from_str(&format!("{HOST_PREFIX}{s}")).unwrap_or_else(|_| v.clone())
            }
            _ => v.clone(),
        })
        .collect();
    res.headers_mut().remove(header::SET_COOKIE);
    for v in outgoing {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// Looks up the session cookie and applies idle and absolute expiry (an expired session is
/// deleted, so it can never come back).
pub async fn lookup(state: &AppState, headers: &HeaderMap) -> Result<Option<SessionRow>, AppError> {
    let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let digest = auth::token_digest(token);
    let now = state.now();
    let idle = (state.config().session_idle_hours * 3600) as i64;
    let max = (state.config().session_max_days * 86_400) as i64;
    state
        .db(move |s| {
            let Some(row) = s.session(&digest)? else {
                return Ok(None);
            };
            if now - row.last_seen >= idle || now - row.created_at >= max {
                s.delete_session(&digest)?;
                return Ok(None);
            }
            if now - row.last_seen >= TOUCH_EVERY_SECS {
                s.touch_session(&digest, now)?;
            }
            Ok(Some(row))
        })
        .await
}

/// Creates a session with a fresh random id (and CSRF token) and returns the Set-Cookie header.
/// `replaces` is the digest of a session the request already had: it is ended, so the id a
/// browser had before login is never valid after it.
pub async fn start(
    state: &AppState,
    role: Role,
    client: &str,
    replaces: Option<String>,
) -> Result<HeaderValue, AppError> {
    let token = auth::new_token()?;
    let row = SessionRow {
        id_digest: auth::token_digest(&token),
        role,
        csrf: auth::new_token()?,
        created_at: state.now(),
        last_seen: state.now(),
        client: client.to_string(),
    };
    let now = state.now();
    let idle = (state.config().session_idle_hours * 3600) as i64;
    let max = (state.config().session_max_days * 86_400) as i64;
    state
        .db(move |s| {
            if let Some(old) = replaces {
                s.delete_session(&old)?;
            }
            s.delete_expired_sessions(now - idle, now - max)?;
            s.insert_session(&row)
        })
        .await?;
    Ok(session_cookie(state, &token))
}

/// Appends to the audit log; a failure to write it is logged, never shown to the person.
pub async fn audit(state: &AppState, actor: &str, client: &str, action: &str, detail: String) {
    let (actor, client, action, at) = (
        actor.to_string(),
        client.to_string(),
        action.to_string(),
        state.now(),
    );
    let r = state
        .db(move |s| {
            s.audit(&crate::store::auth::AuditEntry {
                at,
                actor: &actor,
                client: &client,
                action: &action,
                detail: &detail,
            })
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = ?e, "could not write the audit log");
    }
}

/// What the base template needs: title, active nav entry, CSRF token, role and asset URLs.
pub struct Layout {
    pub title: &'static str,
    pub nav: &'static str,
    pub csrf: String,
    pub role: Option<Role>,
    pub css: &'static str,
    pub htmx: &'static str,
}

impl Layout {
    pub fn new(title: &'static str, nav: &'static str, auth: Option<&Auth>) -> Layout {
        Layout {
            title,
            nav,
            csrf: auth
                .and_then(|a| a.session.as_ref())
                .map(|s| s.csrf.clone())
                .unwrap_or_default(),
            role: auth.map(|a| a.role),
            css: assets::url("app.css"),
            htmx: assets::url("htmx.min.js"),
        }
    }

    pub fn signed_in(&self) -> bool {
        self.role.is_some()
    }

    pub fn is_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    /// Whether there is a session to log out of (the anonymous LAN viewer has none).
    pub fn has_session(&self) -> bool {
        !self.csrf.is_empty()
    }
}

/// `next` after login, only if it is a local path (no open redirect to another site).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/audit")), "/audit");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn lan_addresses() {
        for a in [
            "192.168.1.5",
            "10.0.0.1",
            "127.0.0.1",
            "fe80::1",
            "fd00::5",
            "169.254.1.1",
        ] {
            assert!(is_lan_addr(a), "{a}");
        }
        for a in ["8.8.8.8", "2001:db8::1", "unknown"] {
            assert!(!is_lan_addr(a), "{a}");
        }
    }

    #[test]
    fn cookies_are_found_among_several_headers() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; lm_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("lm_pre=def"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, PRE_COOKIE), Some("def"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
