//! The state every handler shares: one cheap clonable handle over `Arc<Shared>`.
//!
//! It holds the database location with a small pool of open connections, the configuration,
//! the clock (injectable, so session expiry is tested without waiting) and the live meter.
//! It must never hold the meter's lock: the web side reads the meter only through
//! [`SharedMeter::snapshot`], which copies.

use super::error::AppError;
use crate::config::Config;
use crate::meter::{MeterSnapshot, SharedMeter};
use crate::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Idle connections kept for reuse; more concurrent requests open more and drop the extra.
const POOL_KEEP: usize = 4;

/// Wall-clock seconds, or a hand-set time for tests.
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A clock that stays at `now` (Unix seconds) until [`Clock::advance`]d.
    pub fn manual(now: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(now)))
    }

    pub fn now(&self) -> i64 {
        match self {
            Clock::System => jiff::Timestamp::now().as_second(),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; a system clock ignores it.
    pub fn advance(&self, secs: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(secs, Ordering::Relaxed);
        }
    }
}

/// The handle handlers receive (`State<AppState>`). Cloning copies one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    /// The live counters, absent when the server runs without capture (tests, a read-only view).
    pub meter: Option<SharedMeter>,
    pub clock: Clock,
    /// Set when the server itself terminates TLS: session cookies then carry `Secure`.
    pub tls: bool,
    /// The Host names and ports this server answers to (see [`super::hosts`]).
    pub hosts: super::hosts::Hosts,
    /// Password checks per second and the accounts' backoff (in process; the per-address
    /// throttle is in the database).
    pub login_gate: crate::auth::LoginGate,
    /// Capture counters, flush durations and storage health the daemon publishes (empty when
    /// the server runs without a daemon).
    pub telemetry: crate::telemetry::Telemetry,
    /// The internet probes' "now" (issue 27), kept by the probe thread; `None` without a daemon
    /// or with the probes off (the page then reads the last stored minute).
    pub internet: Option<crate::internet::SharedNow>,
    /// Unknown API tokens per client address, for the guard's log-once-and-throttle.
    pub unknown_tokens: super::api::tokens::UnknownTokens,
    db_path: PathBuf,
    /// A std Mutex: held only to push or pop a connection, never across an `.await`.
    pool: Mutex<Vec<Store>>,
    /// Once an admin password exists it can be changed but never removed, so after the first
    /// `true` the database need not be asked again on every request.
    admin_exists: AtomicBool,
    /// The config file the settings page edits; unset when lanmeter runs without one.
    settings: OnceLock<Arc<crate::config::settings::Editor>>,
    /// The last meter reading, for the live rate (see [`super::live`]).
    pub(super) rate: Mutex<super::live::RateSampler>,
    /// A short text saying the data is synthetic (`lanmeter demo`); `None` for a real household.
    demo: OnceLock<String>,
    started: std::time::Instant,
    /// Bumped by every change made through the web side, so cached reads never hide it.
    generation: std::sync::atomic::AtomicU64,
    /// The household and device pages' cached reads (see [`super::cache`]).
    caches: super::cache::PageCaches,
}

impl AppState {
    /// Opens (creating and migrating if needed) the database once, so a bad path fails here
    /// with the store's message rather than on the first request.
    pub fn new(
        config: Config,
        db_path: &Path,
        meter: Option<SharedMeter>,
    ) -> Result<AppState, StoreError> {
        let store = Store::open(db_path)?;
        let hosts = super::hosts::Hosts::new(&config, false);
        Ok(AppState(Arc::new(Shared {
            config,
            meter,
            clock: Clock::System,
            tls: false,
            hosts,
            login_gate: crate::auth::LoginGate::default(),
            telemetry: crate::telemetry::Telemetry::default(),
            internet: None,
            unknown_tokens: Default::default(),
            db_path: db_path.to_path_buf(),
            pool: Mutex::new(vec![store]),
            admin_exists: AtomicBool::new(false),
            settings: OnceLock::new(),
            rate: Mutex::new(super::live::RateSampler::default()),
            demo: OnceLock::new(),
            started: std::time::Instant::now(),
            generation: std::sync::atomic::AtomicU64::new(0),
            caches: Default::default(),
        })))
    }

    /// Marks the server as terminating TLS itself (session cookies get `Secure`, responses HSTS).
    /// Call before cloning the state.
    pub fn with_tls(mut self, tls: bool) -> AppState {
        if let Some(shared) = Arc::get_mut(&mut self.0) {
            shared.tls = tls;
            shared.hosts = super::hosts::Hosts::new(&shared.config, tls);
        }
        self
    }

    /// Replaces the clock (tests). Call before cloning the state.
    pub fn with_clock(mut self, clock: Clock) -> AppState {
        if let Some(shared) = Arc::get_mut(&mut self.0) {
            shared.clock = clock;
        }
        self
    }

    /// Replaces the run-time figures (the daemon's). Call before cloning the state.
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> AppState {
        if let Some(shared) = Arc::get_mut(&mut self.0) {
            shared.telemetry = telemetry;
        }
        self
    }

    /// The probe thread's shared "now". Call before cloning the state.
    pub fn with_internet(mut self, now: crate::internet::SharedNow) -> AppState {
        if let Some(shared) = Arc::get_mut(&mut self.0) {
            shared.internet = Some(now);
        }
        self
    }

    pub fn internet_now(&self) -> Option<crate::internet::Now> {
        self.0.internet.as_ref().map(|n| n.get())
    }

    pub fn unknown_tokens(&self) -> &super::api::tokens::UnknownTokens {
        &self.0.unknown_tokens
    }

    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.0.telemetry
    }

    /// The database file (for its size).
    pub fn db_path(&self) -> &Path {
        &self.0.db_path
    }

    pub fn now(&self) -> i64 {
        self.0.clock.now()
    }

    /// Lets the settings page and API edit this config file; only the first call counts.
    pub fn set_settings(&self, editor: Arc<crate::config::settings::Editor>) {
        let _ = self.0.settings.set(editor);
    }

    /// The editable config file, if lanmeter runs with one.
    pub fn settings(&self) -> Option<&Arc<crate::config::settings::Editor>> {
        self.0.settings.get()
    }

    /// Marks the data as synthetic, with a line the pages show; only the first call counts.
    pub fn set_demo(&self, note: String) {
        let _ = self.0.demo.set(note);
    }

    pub fn demo(&self) -> Option<&str> {
        self.0.demo.get().map(String::as_str)
    }

    /// Says that stored data changed (a rename, a merge…): cached reads are not reused.
    pub fn changed(&self) {
        self.0.generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Relaxed)
    }

    /// The pages' cached reads; [`AppState::generation`] says whether one is still current.
    pub(super) fn caches(&self) -> &super::cache::PageCaches {
        &self.0.caches
    }

    /// Seconds since the web state was created (the service's uptime, near enough).
    pub fn running_secs(&self) -> u64 {
        self.0.started.elapsed().as_secs()
    }

    /// The live household rate from the meter: see [`super::live::RateSampler`].
    pub fn live_rate(&self) -> super::live::Rate {
        let snap = self.meter_snapshot();
        let mut s = self.0.rate.lock().unwrap_or_else(|p| p.into_inner());
        s.sample(std::time::Instant::now(), &snap)
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn tls(&self) -> bool {
        self.0.tls
    }

    pub fn login_gate(&self) -> &crate::auth::LoginGate {
        &self.0.login_gate
    }

    pub fn hosts(&self) -> &super::hosts::Hosts {
        &self.0.hosts
    }

    /// Whether a live meter feeds this server (capture or the demo's synthetic traffic).
    pub fn has_meter(&self) -> bool {
        self.0.meter.is_some()
    }

    /// Pending counts of the live meter; empty without one.
    pub fn meter_snapshot(&self) -> MeterSnapshot {
        self.0
            .meter
            .as_ref()
            .map(SharedMeter::snapshot)
            .unwrap_or_default()
    }

    /// Runs `f` with a pooled connection on a blocking thread: SQLite calls may wait on disk or
    /// on the flusher's write lock and must not stall the async workers.
    pub async fn db<R, F>(&self, f: F) -> Result<R, AppError>
    where
        R: Send + 'static,
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    {
        self.blocking(|s: &mut Store| f(s)).await
    }

    /// [`AppState::db`] for writes that need a transaction (`&mut Store`).
    pub async fn db_mut<R, F>(&self, f: F) -> Result<R, AppError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    {
        self.blocking(f).await
    }

    async fn blocking<R, E, F>(&self, f: F) -> Result<R, AppError>
    where
        R: Send + 'static,
        E: Into<AppError> + Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, E> + Send + 'static,
    {
        let shared = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || {
            let pooled = shared.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut store = match pooled {
                Some(s) => s,
                None => Store::open(&shared.db_path)?,
            };
            let out = f(&mut store);
            let mut pool = shared.pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOL_KEEP {
                pool.push(store);
            }
            Ok::<_, StoreError>(out)
        })
        .await
        .map_err(|e| AppError::internal(format!("database task failed: {e}")))?
        .map_err(AppError::from)?
        .map_err(Into::into)
    }

    /// [`AppState::db`] for the query layer, whose errors also name bad ranges and time zones.
    pub async fn query<R, F>(&self, f: F) -> Result<R, AppError>
    where
        R: Send + 'static,
        F: FnOnce(&Store) -> Result<R, crate::store::query::QueryError> + Send + 'static,
    {
        self.blocking(|s: &mut Store| f(s)).await
    }

    /// Whether the first-run setup is done (an admin password exists).
    pub async fn admin_exists(&self) -> Result<bool, AppError> {
        if self.0.admin_exists.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let exists = self
            .db(|s| Ok(s.password_hash(crate::auth::Role::Admin)?.is_some()))
            .await?;
        if exists {
            self.0.admin_exists.store(true, Ordering::Relaxed);
        }
        Ok(exists)
    }
}
