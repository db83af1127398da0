//! The web side: server-rendered pages (askama + htmx) over axum, and nothing else uses axum
//! or askama.
//!
//! Map: [`state`] the shared handle; [`error`] the one error type; [`assets`] embedded static
//! files; [`hosts`] the Host allow-list (DNS rebinding); [`guard`] the gate every request
//! passes (login, roles, CSRF, Origin, security headers); [`session`] cookies and sessions;
//! one file per page ([`setup`], [`login`], [`audit`], [`overview`], [`alerts`], [`plan`],
//! [`wifi`]); [`api`] the JSON API, `/metrics` and the OpenAPI document.
//!
//! Every route is registered in [`routes`] with its [`Access`]; the guard looks the matched route
//! up there and treats anything it cannot find (a route added some other way, the 404 fallback)
//! as admin-only, so a forgotten route fails closed. The web side never writes to the meter and
//! reads it only through snapshots.

pub mod accounts;
pub mod alerts;
pub mod api;
pub mod assets;
pub mod audit;
mod cache;
pub mod charts;
pub mod device;
pub mod devices;
pub mod download;
pub mod error;
pub mod guard;
pub mod hosts;
pub mod internet;
pub mod live;
pub mod login;
pub mod notify;
pub mod overview;
pub mod people;
pub mod plan;
pub mod range;
mod respond;
pub mod services;
pub mod session;
pub mod settings;
pub mod setup;
pub mod state;
pub mod system;
pub mod tls;
pub mod view;
pub mod welcome;
pub mod wifi;

#[cfg(test)]
mod tests;

pub use error::AppError;
pub use state::{AppState, Clock};

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Who may use a route. Reading needs at least a viewer; changing anything needs an admin
/// unless the route says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No login: setup, login, health check, static assets.
    Public,
    /// Viewers may read (GET); state-changing methods need an admin.
    Viewer,
    /// Any signed-in session may use every method: only for acting on one's own session (logout).
    OwnSession,
    /// Admins only, every method.
    Admin,
}

/// One registered route, as the guard and the route-table tests see it.
#[derive(Clone, Copy, Debug)]
pub struct RouteInfo {
    pub path: &'static str,
    pub access: Access,
}

/// Every route with its access rule: the single place a route is added.
fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![
        ("/", Access::Viewer, get(overview::page)),
        (
            "/setup",
            Access::Public,
            get(setup::form).post(setup::submit),
        ),
        (
            "/login",
            Access::Public,
            get(login::form).post(login::submit),
        ),
        ("/logout", Access::OwnSession, post(login::logout)),
        (
            "/sessions/end-others",
            Access::Admin,
            post(login::end_others),
        ),
        ("/audit", Access::Admin, get(audit::page)),
        ("/alerts", Access::Viewer, get(alerts::page)),
        ("/alerts/{id}/ack", Access::Admin, post(alerts::ack)),
        (
            "/alerts/ack",
            Access::Public,
            get(alerts::ack_link_form).post(alerts::ack_link_submit),
        ),
        (
            "/alerts/test-email",
            Access::Admin,
            post(alerts::test_email),
        ),
        (
            "/alerts/test-webhook",
            Access::Admin,
            post(alerts::test_webhook),
        ),
        ("/alerts/watch", Access::Admin, post(alerts::watch)),
        (
            "/alerts/outbox/{id}/retry",
            Access::Admin,
            post(alerts::retry),
        ),
        // The data plan: viewers read, changes (POST) need an admin.
        ("/plan", Access::Viewer, get(plan::page)),
        (
            "/plan/settings",
            Access::Viewer,
            get(plan::settings).post(plan::save_settings),
        ),
        ("/plan/calibrate", Access::Admin, post(plan::calibrate)),
        (
            "/plan/quotas",
            Access::Viewer,
            get(plan::quotas).post(plan::save_quota),
        ),
        (
            "/plan/quotas/delete",
            Access::Admin,
            post(plan::delete_quota),
        ),
        ("/healthz", Access::Public, get(healthz)),
        // The dashboard (issue 5). Viewer routes answer GET to viewers; their POSTs need an admin.
        ("/live", Access::Viewer, get(live::fragment)),
        ("/devices", Access::Viewer, get(devices::page)),
        ("/devices/bulk", Access::Admin, post(devices::bulk)),
        (
            "/devices/usage.csv",
            Access::Viewer,
            get(download::devices_csv),
        ),
        (
            "/devices/usage.json",
            Access::Viewer,
            get(download::devices_json),
        ),
        (
            "/devices/{id}/usage.csv",
            Access::Viewer,
            get(download::device_csv),
        ),
        (
            "/devices/{id}/usage.json",
            Access::Viewer,
            get(download::device_json),
        ),
        (
            "/devices/{id}",
            Access::Viewer,
            get(device::page).post(device::save),
        ),
        ("/devices/{id}/rename", Access::Admin, post(devices::rename)),
        ("/devices/{id}/known", Access::Admin, post(devices::known)),
        ("/devices/{id}/merge", Access::Admin, post(device::merge)),
        (
            "/devices/{id}/unmerge",
            Access::Admin,
            post(device::unmerge),
        ),
        ("/people", Access::Viewer, get(people::page)),
        (
            "/settings",
            Access::Viewer,
            get(settings::page).post(settings::save),
        ),
        ("/settings/test", Access::Admin, post(settings::test)),
        ("/settings/preset", Access::Admin, post(settings::preset)),
        ("/settings/restart", Access::Admin, post(settings::restart)),
        (
            "/settings/password",
            Access::Admin,
            post(accounts::set_password),
        ),
        ("/system", Access::Viewer, get(system::page)),
        // The first-run wizard (setup leads there; Settings links to it).
        ("/welcome", Access::Admin, get(welcome::page)),
        ("/welcome/plan", Access::Admin, post(welcome::save_plan)),
        ("/welcome/notify", Access::Admin, post(welcome::save_notify)),
        ("/wifi", Access::Viewer, get(wifi::page)),
        ("/internet", Access::Viewer, get(internet::page)),
        ("/internet/report", Access::Viewer, get(internet::report)),
        (
            "/internet/report.csv",
            Access::Viewer,
            get(internet::report_csv),
        ),
        ("/static/{file}", Access::Public, get(assets::serve)),
    ]
    .into_iter()
    .chain(api::routes())
    .collect()
}

/// The registered routes and their access rules (for tests that walk every route).
pub fn route_table() -> Vec<RouteInfo> {
    routes()
        .into_iter()
        .map(|(path, access, _)| RouteInfo { path, access })
        .collect()
}

/// The whole web application; tests call `router(state).oneshot(request)` without a server.
pub fn router(state: AppState) -> Router {
    let mut access = HashMap::new();
    let mut r = Router::new();
    for (path, rule, method_router) in routes() {
        access.insert(path, rule);
        r = r.route(path, method_router);
    }
    let gate = guard::Gate {
        state: state.clone(),
        access: Arc::new(access),
    };
    r.fallback(not_found)
        // Inside the gate: only requests it let through are answered from kept pages.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            respond::respond,
        ))
        .layer(axum::middleware::from_fn_with_state(gate, guard::guard))
        .layer(axum::middleware::from_fn(api::error::layer))
        // Outside every route and the guard: a request for another host never reaches them.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::known_host,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.tls(),
            guard::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.tls(),
            session::host_prefix,
        ))
        .with_state(state)
}

/// GET /healthz: no login, for systemd and `lanmeter doctor`; checks the database answers.
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, AppError> {
    state.db(|s| s.schema_version()).await?;
    Ok("ok\n")
}

async fn not_found() -> AppError {
    AppError::NotFound
}

/// What a connection may cost: how long it may take to send a request head, and how many may
/// be open at once (`web_header_timeout_secs`, `web_max_connections`).
struct Limits {
    header_timeout: std::time::Duration,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Limits {
    /// HTTP/1.1 only (no protocol sniffing that could wait on a silent client), with hyper's
    /// header-read timeout driven by tokio's timer: a connection that has not sent a whole
    /// request head in time is closed, however slowly it trickles bytes.
    fn apply<A: axum_server::Address, Acc>(
        &self,
        server: axum_server::Server<A, Acc>,
    ) -> axum_server::Server<A, Acc> {
        let mut server = server.http1_only();
        server
            .http_builder()
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        server
    }
}

/// An acceptor that holds one of `slots` for the life of each connection and closes a
/// connection at once when none is free, so at most `web_max_connections` file descriptors are
/// held by clients however many connect (the unit's open-file limit stays out of reach).
#[derive(Clone)]
struct Limited {
    slots: Arc<tokio::sync::Semaphore>,
}

impl<I, S> axum_server::accept::Accept<I, S> for Limited {
    type Stream = Held<I>;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Held<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        std::future::ready(match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok((
                Held {
                    io: stream,
                    _permit: permit,
                },
                service,
            )),
            Err(_) => {
                // Dropping the stream closes it; logged at debug only, as a flood would flood.
                tracing::debug!("web connection limit reached; connection closed");
                Err(std::io::Error::other("web connection limit reached"))
            }
        })
    }
}

/// A connection's stream with its slot: the slot is freed when the connection is dropped.
struct Held<I> {
    io: I,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Held<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Held<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// How long in-flight requests may take to finish after the stop flag is set.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the web server on its own OS thread with its own small tokio runtime until `stop` is
/// set, so the capture thread stays a plain thread that never shares a scheduler with requests.
/// The listener is bound by the caller, so a port conflict is reported before anything starts;
/// with `tls`, every connection is HTTPS (the state must have been built `with_tls(true)`).
/// Plain or TLS, every connection is bounded by [`Limits`] (header-read timeout, connection limit).
pub fn spawn(
    listener: std::net::TcpListener,
    state: AppState,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    listener.set_nonblocking(true)?;
    state.hosts().set_port(listener.local_addr()?.port());
    // The journal is where the owner of a fresh install finds the way in (see setup_code).
    match setup::pending_link(&state) {
        Ok(Some(link)) => {
            tracing::info!("first-run setup: open {link} to choose the admin password")
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = ?e, "cannot prepare the first-run setup code"),
    }
    // Two workers: a household's few browsers never need more, and the Pi keeps cores for capture.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Bounded: each blocking thread holds a database connection and malloc memory, and the
        // default (512) let 20 clients grow the process past a Pi unit's MemoryMax (issue 25).
        .max_blocking_threads(crate::system::memory::WEB_BLOCKING_THREADS)
        .thread_name("web")
        .enable_all()
        .build()?;
    let cfg = state.config();
    let limits = Limits {
        header_timeout: std::time::Duration::from_secs(cfg.web_header_timeout_secs),
        slots: Arc::new(tokio::sync::Semaphore::new(
            cfg.web_max_connections as usize,
        )),
    };
    std::thread::Builder::new().name("web".into()).spawn(move || {
        rt.block_on(async move {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let server = match axum_server::from_tcp(listener) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot use the web listener; the dashboard is off");
                    return;
                }
            };
            let handle = axum_server::Handle::new();
            let on_stop = handle.clone();
            tokio::spawn(async move {
                let _ = rx.await;
                on_stop.graceful_shutdown(Some(STOP_GRACE));
            });
            // The System page's CPU figure is the difference of two readings: take the first
            // now, so that its first view does not wait for sysinfo's interval (200 ms).
            tokio::task::spawn_blocking(crate::system::host::prime);
            let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
            let limited = Limited {
                slots: limits.slots.clone(),
            };
            let server = match tls {
                None => tokio::spawn(limits.apply(server.acceptor(limited)).handle(handle).serve(app)),
                Some(config) => {
                    let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                    // The handshake gets the header timeout too: a client that opens a TLS
                    // connection and stays silent is as slow as one that sends no headers.
                    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                        .handshake_timeout(limits.header_timeout)
                        .acceptor(limited);
                    tokio::spawn(limits.apply(server.acceptor(acceptor)).handle(handle).serve(app))
                }
            };
            while !stop.load(Ordering::Relaxed) && !server.is_finished() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let _ = tx.send(());
            // The server drains for up to STOP_GRACE itself; allow a little beyond that.
            match tokio::time::timeout(STOP_GRACE + std::time::Duration::from_secs(1), server).await {
                Ok(Ok(Ok(()))) => tracing::debug!("web server stopped"),
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "the web server failed; the dashboard is off"),
                Ok(Err(e)) => tracing::error!(error = %e, "the web server task panicked"),
                Err(_) => tracing::warn!("web requests still open after the grace period were cut off"),
            }
        });
    })
}
