//! Rendered pages reused for a moment: under a burst (20 browsers, htmx refreshes, several tabs)
//! one request per page and second renders it and the others get its bytes, so a page's cost
//! under load is that of sending it, not of building it again for each request.
//!
//! What it owns: the rendered GET responses of the pages listed in [`PAGES`], keyed by the
//! request's path and query and by who asked (their session, or the anonymous LAN viewer), so a
//! page with one session's CSRF token or an admin's buttons is never shown to anyone else.
//! What it must never do: serve a page older than an edit made through the web side (every
//! state-changing request that passes the gate bumps [`AppState::changed`], and an entry is kept
//! for the generation it was rendered at), keep a response that sets a cookie or failed, or hold
//! more than [`MAX_BYTES`]. The gate runs before it, so access rules apply to every request.
use super::AppState;
use super::session::Auth;
use axum::body::HttpBody;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The pages whose GET only reads (no side effect, no per-request state such as the live rate
/// sampler of `/live`): their rendered response may be reused. Exports, the API and the login
/// and setup forms are not listed (their own caching, freshness or cookies apply).
pub const PAGES: &[&str] = &[
    "/",
    "/devices",
    "/devices/{id}",
    "/people",
    "/plan",
    "/plan/quotas",
    "/plan/settings",
    "/alerts",
    "/system",
    "/settings",
    "/wifi",
    "/internet",
    "/internet/report",
];

/// How long a rendered page is reused: the same second as the readings behind it
/// ([`super::view::CACHE_FOR`]); live counters on a page are then at most this old.
const FRESH_FOR: Duration = super::view::CACHE_FOR;
/// While one request renders a page again, the others get the previous rendering up to this old.
const STALE_MAX: Duration = super::view::STALE_MAX;
/// How long a request waits for another's rendering of the same page before rendering it.
const WAIT_MAX: Duration = Duration::from_secs(10);
/// Bytes of rendered pages kept at most (the overview of 200 devices is about 70 KB): a Pi
/// unit's memory limit must not be reached by many sessions opening many pages.
const MAX_BYTES: usize = 4 << 20;
/// A page bigger than this is not kept (none is today; a year-long table might be).
const MAX_ONE: usize = 1 << 20;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    /// Path and query, as the client sent them.
    uri: String,
    /// The session's digest, or empty for the anonymous LAN viewer.
    who: String,
    /// htmx requests may be answered with a fragment.
    htmx: bool,
}

struct Kept {
    at: Instant,
    generation: u64,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Kept {
    fn response(&self) -> Response {
        let mut r = Response::new(Body::from(self.body.clone()));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

struct Slot {
    kept: Option<Kept>,
    /// A request is rendering this page now.
    refreshing: bool,
    /// Bumped when a rendering ends (kept or not): requests that found no page to send wait for
    /// it rather than all rendering the same page at once.
    rendered: tokio::sync::watch::Sender<()>,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            kept: None,
            refreshing: false,
            rendered: tokio::sync::watch::Sender::new(()),
        }
    }
}

#[derive(Default)]
pub(super) struct Responses {
    /// A std Mutex: held only to look up, insert or prune, never across an await.
    slots: Mutex<(HashMap<Key, Slot>, usize)>,
    /// Requests answered from a kept rendering (for /metrics-style curiosity and the tests).
    hits: AtomicU64,
}

/// What a lookup found.
enum Found {
    Kept(Response),
    /// Render it; `true` when this request holds the page's refresh (the others get the kept
    /// rendering meanwhile).
    Render(bool),
    /// Another request is rendering the page and none recent enough is kept: wait for that one.
    Wait(tokio::sync::watch::Receiver<()>),
}

impl Responses {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<Key, Slot>, usize)> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `waited`: this request already waited for another's rendering once; it then renders
    /// the page itself rather than wait again (a page that fails is not kept).
    fn find(&self, key: &Key, generation: u64, waited: bool) -> Found {
        let mut g = self.lock();
        let slot = g.0.entry(key.clone()).or_default();
        let current = slot.kept.as_ref().filter(|k| k.generation == generation);
        if let Some(k) = current
            && (k.at.elapsed() < FRESH_FOR || (slot.refreshing && k.at.elapsed() < STALE_MAX))
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Found::Kept(k.response());
        }
        if slot.refreshing {
            // After a quiet spell (nothing kept, or older than STALE_MAX) a burst would
            // otherwise render the page once per request, all at once on two cores.
            return if waited {
                Found::Render(false)
            } else {
                Found::Wait(slot.rendered.subscribe())
            };
        }
        slot.refreshing = true;
        Found::Render(true)
    }

    /// Ends this request's refresh of `key` (rendered or not: an error or a dropped request
    /// lets the next one try).
    fn release(&self, key: &Key) {
        if let Some(slot) = self.lock().0.get_mut(key) {
            slot.refreshing = false;
            slot.rendered.send_replace(());
        }
    }

    fn keep(&self, key: Key, kept: Kept) {
        let generation = kept.generation;
        let mut g = self.lock();
        let (map, bytes) = &mut *g;
        if *bytes + kept.body.len() > MAX_BYTES {
            // Old renderings and those of an earlier generation are dropped first; if that is
            // not enough, every kept page (they are rebuilt in milliseconds).
            map.retain(|_, s| {
                s.kept
                    .take_if(|k| k.generation != generation || k.at.elapsed() >= STALE_MAX);
                s.kept.is_some() || s.refreshing
            });
            *bytes = map
                .values()
                .filter_map(|s| s.kept.as_ref())
                .map(|k| k.body.len())
                .sum();
            if *bytes + kept.body.len() > MAX_BYTES {
                map.retain(|_, s| {
                    s.kept = None;
                    s.refreshing
                });
                *bytes = 0;
            }
        }
        let slot = map.entry(key).or_default();
        if let Some(old) = slot.kept.take() {
            *bytes -= old.body.len();
        }
        *bytes += kept.body.len();
        slot.kept = Some(kept);
    }

    /// Requests answered from a kept rendering since the start.
    pub(super) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// Clears a page's refresh flag when the request ends, however it ends.
struct Refreshing {
    state: AppState,
    key: Key,
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        self.state.caches().responses.release(&self.key);
    }
}

/// The middleware (inside the gate): answers a listed page's GET from a rendering less than a
/// second old, renders and keeps it otherwise, and marks every state-changing request as a
/// change so no kept page hides it.
pub async fn respond(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        let response = next.run(req).await;
        state.changed();
        return response;
    }
    let listed = req.method() == Method::GET
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|m| PAGES.contains(&m.as_str()));
    let Some(auth) = req.extensions().get::<Auth>().filter(|_| listed) else {
        return next.run(req).await;
    };
    let key = Key {
        uri: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string()),
        who: auth
            .session
            .as_ref()
            .map_or_else(String::new, |s| s.id_digest.clone()),
        htmx: req.headers().contains_key("hx-request"),
    };
    // Read before rendering: an edit made while this page renders leaves it stale.
    let generation = state.generation();
    let responses = &state.caches().responses;
    let mut waited = false;
    let holds = loop {
        match responses.find(&key, generation, waited) {
            Found::Kept(r) => return r,
            Found::Render(holds) => break holds,
            Found::Wait(mut rendered) => {
                // Bounded: a rendering that never ends (a stuck database) must not hold this
                // request forever; it then renders the page itself.
                let _ = tokio::time::timeout(WAIT_MAX, rendered.changed()).await;
                waited = true;
            }
        }
    };
    let _refreshing = holds.then(|| Refreshing {
        state: state.clone(),
        key: key.clone(),
    });
    let response = next.run(req).await;
    // Only a whole body of known size is kept (askama's pages are); a stream is passed on.
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= MAX_ONE as u64);
    if response.status() != StatusCode::OK
        || response.headers().contains_key(header::SET_COOKIE)
        || !small
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_ONE).await {
        Ok(b) => b,
        Err(e) => return super::AppError::internal(format!("page body: {e}")).into_response(),
    };
    responses.keep(
        key,
        Kept {
            at: Instant::now(),
            generation,
            status: parts.status,
            headers: parts.headers.clone(),
            body: body.clone(),
        },
    );
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(generation: u64, len: usize) -> Kept {
        Kept {
            at: Instant::now(),
            generation,
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; len]),
        }
    }

    fn key(uri: &str, who: &str) -> Key {
        Key {
            uri: uri.into(),
            who: who.into(),
            htmx: false,
        }
    }

    /// Many sessions opening many big pages never make it hold more than MAX_BYTES, and the
    /// count of bytes it keeps is the sum of what it holds.
    #[test]
    fn kept_pages_stay_within_their_bytes() {
        let r = Responses::default();
        for i in 0..500 {
            let k = key(&format!("/devices/{}", i % 97), &format!("s{}", i % 7));
            assert!(matches!(r.find(&k, 1, false), Found::Render(true)));
            r.keep(k.clone(), kept(1, 70_000 + i));
            r.release(&k);
            let g = r.lock();
            let held: usize =
                g.0.values()
                    .filter_map(|s| s.kept.as_ref())
                    .map(|k| k.body.len())
                    .sum();
            assert_eq!(g.1, held);
            assert!(held <= MAX_BYTES, "{held}");
        }
    }

    /// Fresh: reused. Another generation: rendered again. While one request renders, the others
    /// get the kept page; without one kept, they wait for that rendering (once), then are
    /// answered from it.
    #[tokio::test]
    async fn a_kept_page_serves_its_generation_and_one_request_refreshes_it() {
        let r = Responses::default();
        let k = key("/", "");
        assert!(matches!(r.find(&k, 1, false), Found::Render(true)));
        let Found::Wait(mut rendered) = r.find(&k, 1, false) else {
            panic!("no page yet and one rendering: wait for it");
        };
        assert!(
            matches!(r.find(&k, 1, true), Found::Render(false)),
            "waited once"
        );
        r.keep(k.clone(), kept(1, 10));
        r.release(&k);
        tokio::time::timeout(Duration::from_secs(5), rendered.changed())
            .await
            .expect("the end of the rendering wakes its waiters")
            .unwrap();
        assert!(matches!(r.find(&k, 1, true), Found::Kept(_)));
        assert!(
            matches!(r.find(&k, 2, false), Found::Render(true)),
            "an edit since"
        );
        assert!(
            matches!(r.find(&k, 2, false), Found::Wait(_)),
            "the kept page is of an older generation"
        );
        r.keep(k.clone(), kept(2, 10));
        assert!(matches!(r.find(&k, 2, false), Found::Kept(_)));
        assert_eq!(r.hits(), 2);
        assert!(
            matches!(r.find(&key("/", "s1"), 2, false), Found::Render(true)),
            "another session"
        );
    }
}
