//! The live daemon (`lanmeter run`): capture thread → meter → periodic flush into SQLite.
//!
//! It owns the lifecycle of one run: open the capture first (it needs privileges and fails most
//! often), then the database and the web listener, start the web thread (its own tokio runtime;
//! it reads the meter only through snapshots), the alert thread (rules and the outbox, on its
//! own connection), the MQTT threads (Home Assistant, when configured; their own connection)
//! and the capture thread, flush every interval on this thread, and on SIGTERM/SIGINT stop capture and the web server and flush what is left
//! before returning. On SIGHUP it flushes, rereads the configuration (keeping the old one when
//! the new one is invalid) and goes on. A capture interface that is not there yet is waited
//! for, and traffic stamped before the clock is trusted is filed by [`crate::clock`]'s rule.
//! It never counts anything itself and never lets a database problem reach the capture thread.

use crate::capture::PacketSource;
use crate::capture::live::{self, Follow, LiveConfig};
use crate::clock::{ClockGate, SystemClock};
use crate::config::Config;
use crate::discovery;
use crate::flush::{Flusher, Stamping};
use crate::meter::{Locality, Meter, MeterConfig, SharedMeter};
use crate::store::Store;
use crate::store::backup::{self, DbLock};
use crate::store::health::SharedHealth;
use crate::store::rollup::Retention;
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often an undetected or auto-detected gateway is looked up again (routers get replaced).
const GATEWAY_RECHECK: Duration = Duration::from_secs(60);
/// How often the history maintenance (rollups, retention) and the nightly-backup clock are
/// checked. Rollups only do work when an hour has closed, so this mostly costs one small read.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(300);
/// Attempts at the final flush before giving up and saying how much could not be written.
const FINAL_FLUSH_ATTEMPTS: u32 = 5;

/// A configuration reload on SIGHUP: the flag the signal sets, and how to read the
/// configuration again (the file and environment, with the command line's overrides).
pub struct Reload {
    pub requested: Arc<AtomicBool>,
    pub load: Box<dyn Fn() -> anyhow::Result<Config> + Send>,
}

/// Settings a reload applies at once: those only this loop reads. Any other change (the time
/// zone, which the web side and the alert thread also use, included) is logged and shown as
/// needing a restart, and keeps its running value until then.
const RELOADABLE: &[&str] = &[
    "flush_interval_secs",
    "gateway",
    "keep_minutes_days",
    "keep_hours_days",
    "keep_days_months",
    "keep_months_years",
    "backup_hour",
    "backup_keep",
    "backup_dir",
];

/// What a run reads from and answers on, opened before anything starts: the packet source, the
/// database lock and the web listener. [`Inputs::live`] opens them from the configuration; a
/// test hands in fabricated frames and a listener on port 0 with [`Inputs::new`].
pub struct Inputs {
    pub capture: Box<dyn PacketSource>,
    /// Held for the whole run: a second daemon on the same file, or `lanmeter restore`, refuses.
    lock: DbLock,
    pub listener: std::net::TcpListener,
}

impl Inputs {
    /// The configured interface (or the default route's), the database lock and `listen`, in
    /// the order whose first failure is the one worth reporting: capture needs privileges and
    /// fails most often; a second daemon on the same database is told so before it is told
    /// about the port they share; a port conflict is one clear error and nothing half-runs.
    pub fn live(cfg: &Config) -> anyhow::Result<Inputs> {
        // A configured interface is followed by its MAC when it comes back under another name;
        // none configured, the capture follows the default route. Either way a missing one is
        // waited for.
        let follow = match &cfg.interface {
            Some(name) => live::interface_mac(name).map_or(Follow::Name, Follow::NameOrMac),
            None => Follow::DefaultRoute(discovery::default_route_interface),
        };
        let capture = live::open_following(
            &LiveConfig {
                interface: cfg.interface.clone().unwrap_or_default(),
                snaplen: cfg.snaplen,
                buffer_bytes: cfg.buffer_mib.saturating_mul(1024 * 1024),
                promiscuous: cfg.promiscuous,
                stats_log_interval: Duration::from_secs(cfg.stats_log_interval_secs),
            },
            follow,
        )?;
        let lock = lock(cfg)?;
        let listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} for the web dashboard: {e}: stop the program that uses this port, or set `listen` in the config file",
                cfg.listen
            )
        })?;
        Ok(Inputs {
            capture: Box::new(capture),
            lock,
            listener,
        })
    }

    /// Any packet source and an already bound listener; the configured database is locked here.
    pub fn new(
        cfg: &Config,
        capture: Box<dyn PacketSource>,
        listener: std::net::TcpListener,
    ) -> anyhow::Result<Inputs> {
        Ok(Inputs {
            capture,
            lock: lock(cfg)?,
            listener,
        })
    }
}

fn lock(cfg: &Config) -> anyhow::Result<DbLock> {
    let db = cfg.database_path();
    DbLock::acquire(&db).with_context(|| format!("locking database {}", db.display()))
}

/// The live run. `file` is the config file the settings page may edit (`None`: nothing to edit).
pub fn run(
    mut cfg: Config,
    inputs: Inputs,
    file: Option<std::path::PathBuf>,
    stop: Arc<AtomicBool>,
    reload: Option<Reload>,
) -> anyhow::Result<()> {
    let health = SharedHealth::new();
    let Inputs {
        capture,
        lock: mut _lock,
        listener,
    } = inputs;
    let mut iface = capture.interface().to_string();
    let waiting_at_start = capture.is_waiting();
    let db = cfg.database_path();
    // Gone while backups of it exist: a damage too, before the open creates an empty one.
    backup::record_if_missing(&db, &cfg.backup_dir_path())
        .with_context(|| format!("checking database {}", db.display()))?;
    let (store, _damage) =
        Store::open_checked(&db).with_context(|| format!("opening database {}", db.display()))?;
    // A damaged file moved aside: the lock now covers the fresh one.
    _lock.cover_file();
    health.read_damage(&db);
    let mut flusher = Flusher::new(store);
    let tz = cfg.time_zone();
    let mut retention = Retention::from_config(&cfg);
    let clock = SystemClock::default();
    let mut gate = ClockGate::new(crate::clock::CLOCK_FLOOR.as_second());
    let mut backups = BackupSchedule::default();

    let detected = (!waiting_at_start)
        .then(|| discovery::detect_gateway(&iface))
        .flatten();
    let gateway = cfg.gateway.or(detected.as_ref().map(|g| g.mac));
    let locality = Locality::new(cfg.lan_prefixes.iter().copied().chain(if waiting_at_start {
        Vec::new()
    } else {
        discovery::interface_prefixes(&iface)
    }));
    let meter = SharedMeter::new(Meter::new(MeterConfig {
        max_devices: cfg.max_devices,
        gateway,
        locality,
    }));
    // Certificates are checked before anything runs, like the port: one clear error, nothing half-up.
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(crate::web::tls::server_config(cert, key)?),
        _ => None,
    };
    let telemetry = crate::telemetry::Telemetry::new(health.clone());
    let web_state = crate::web::AppState::new(cfg.clone(), &db, Some(meter.clone()))
        .with_context(|| format!("opening database {} for the web side", db.display()))?
        .with_tls(tls.is_some())
        .with_telemetry(telemetry.clone());
    // The running configuration the alert thread rereads; the settings editor updates it.
    let live = crate::config::settings::Live::new(cfg.clone());
    if let Some(path) = file {
        web_state.set_settings(Arc::new(crate::config::settings::Editor::new(
            path,
            live.clone(),
        )));
    }
    let listen_addr = listener
        .local_addr()
        .map_or_else(|_| cfg.listen.to_string(), |a| a.to_string());
    let web_thread = crate::web::spawn(listener, web_state, stop.clone(), tls)
        .context("starting the web server thread")?;
    let (capture_thread, stats) =
        crate::capture::source::spawn(capture, Box::new(meter.clone()), stop.clone())
            .context("starting the capture thread")?;
    telemetry.set_capture(Arc::clone(&stats));
    // The alert thread sees capture only through this copy of a few counters and a flag the
    // loop below keeps current; it never touches the meter or the capture thread.
    let capture_running = Arc::new(AtomicBool::new(!waiting_at_start));
    let alerts_thread = {
        let (stats, running) = (Arc::clone(&stats), Arc::clone(&capture_running));
        let probe: crate::alerts::run::Probe = Box::new(move || {
            let s = stats.snapshot();
            crate::alerts::run::MonitorSample {
                capture_running: running.load(Ordering::Relaxed),
                frames_seen: s.frames_seen,
                pcap_received: s.pcap_received,
                pcap_dropped: s.pcap_dropped,
            }
        });
        crate::alerts::run::spawn(
            cfg.clone(),
            db.clone(),
            crate::alerts::run::Sources {
                probe: Some(probe),
                health: health.clone(),
                extra: vec![crate::alerts::plan_source::source(cfg.time_zone())],
                live: Some(live),
            },
            stop.clone(),
        )
        .context("starting the alert thread")?
    };
    // Discovery captures on the same interface: it starts once that interface is there.
    let mut discovery = (cfg.discovery && !waiting_at_start)
        .then(|| crate::discovery_run::DiscoveryRun::start(&cfg, &iface, db.clone(), stop.clone()));
    let mut wifi = crate::survey::live::start(&cfg, &db, stop.clone());
    let mqtt = crate::mqtt::MqttRun::start(&cfg, db.clone(), stop.clone());
    tracing::info!(
        interface = %iface,
        gateway = %gateway.map(|g| g.to_string()).unwrap_or_else(|| "not yet known".into()),
        gateway_source = if cfg.gateway.is_some() { "config" } else { "routing table" },
        local_prefixes = ?meter.with(|m| m.locality().prefixes().to_vec()),
        database = %db.display(),
        web = %listen_addr,
        flush_interval_secs = cfg.flush_interval_secs,
        "capturing"
    );
    // READY only now: the database is open and the capture thread runs (Type=notify in the unit).
    // READY even while the interface is waited for: the service is up (web, database) and a
    // restart would not make the interface appear; the status line says what it waits for.
    let mut notifier = crate::system::notify::Notifier::from_env();
    let mut capture_state = stats.state();
    notifier.ready(&format!("{capture_state} into {}", db.display()));

    let mut interval = Duration::from_secs(cfg.flush_interval_secs);
    let mut next_flush = Instant::now() + interval;
    let mut next_gateway_check = Instant::now() + GATEWAY_RECHECK;
    let mut next_maintenance = Instant::now() + interval;
    let mut evictions_seen = 0;
    let max_devices = cfg.max_devices;
    let mut flush_now =
        |flusher: &mut Flusher,
         gate: &mut ClockGate,
         interval: Duration,
         discovery: Option<&crate::discovery_run::DiscoveryRun>| {
            let evictions = meter.with(|m| m.evictions());
            if evictions > evictions_seen {
                tracing::warn!(
                    evicted = evictions - evictions_seen,
                    max_devices,
                    "more MACs than max_devices in one minute: the least active were folded into 'other' (a MAC flood, or raise max_devices)"
                );
                evictions_seen = evictions;
            }
            let delta = meter.take_delta();
            if let Some(d) = discovery {
                d.traffic(delta.sent_spans());
            }
            let now_s = jiff::Timestamp::now().as_second();
            let distrust = clock.distrust(now_s);
            let stamping =
                Stamping::Live(distrust.is_none().then_some(now_s - now_s.rem_euclid(60)));
            let result = flusher
                .flush_gated(&delta, interval, gate, stamping)
                .map(|s| telemetry.record_flush(s.duration));
            let was = telemetry.clock();
            match (&distrust, &was) {
                (Some(why), None) => {
                    tracing::warn!(reason = %why, "the clock is not trusted: traffic is held and filed under the first minute after it is")
                }
                (None, Some(_)) => tracing::info!("the clock is trusted now"),
                _ => {}
            }
            telemetry.set_clock(distrust.map(|reason| crate::telemetry::ClockStatus {
                reason,
                held_devices: gate.held_devices(),
                held_bytes: gate.held_bytes(),
            }));
            if let Err(e) = &result {
                tracing::error!(error = %e, pending_rows = flusher.pending_len(), "flush failed; counts stay in memory and are retried next interval");
            }
            health.record_flush(
                result.map_err(|e| {
                    let full = matches!(e, crate::store::StoreError::DiskFull { .. });
                    (e.to_string(), full)
                }),
                flusher.pending_len(),
                flusher.folded_rows(),
            );
        };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        let state = stats.state();
        capture_running.store(
            !capture_thread.is_finished() && !stats.is_waiting(),
            Ordering::Relaxed,
        );
        if state != capture_state {
            notifier.status(&state.to_string());
            let current = stats.interface();
            if !stats.is_waiting() && current != iface {
                // The interface appeared, or capture followed it elsewhere: what depends on
                // its name (local prefixes, gateway, discovery) follows too.
                iface = current;
                for p in discovery::interface_prefixes(&iface) {
                    meter.with(|m| m.add_local_prefix(p));
                }
                next_gateway_check = now;
                if cfg.discovery && discovery.is_none() {
                    discovery = Some(crate::discovery_run::DiscoveryRun::start(
                        &cfg,
                        &iface,
                        db.clone(),
                        stop.clone(),
                    ));
                }
            }
            capture_state = state;
        }
        if notifier.watchdog_due(now) {
            // No ping while the capture thread is dead or the database does not answer:
            // systemd's watchdog then restarts the service, which is the repair for both. A
            // capture waiting for its interface is alive (a restart would not bring the
            // interface): it is pinged, and the status line and /system say what it waits for.
            let capturing = !capture_thread.is_finished();
            let db_ok = flusher.store().schema_version();
            match (capturing, &db_ok) {
                (true, Ok(_)) => notifier.watchdog(now),
                _ => tracing::error!(
                    capturing,
                    database = %db_ok.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
                    "unhealthy: withholding the watchdog ping so systemd restarts lanmeter"
                ),
            }
        }
        if let Some(r) = &reload
            && r.requested.swap(false, Ordering::Relaxed)
        {
            tracing::info!("SIGHUP: flushing, then rereading the configuration");
            flush_now(&mut flusher, &mut gate, interval, discovery.as_ref());
            tracing::info!(pending_rows = flusher.pending_len(), "flushed on SIGHUP");
            match (r.load)() {
                Ok(new) => {
                    let needs_restart = changed_keys(&cfg, &new)
                        .into_iter()
                        .filter(|k| !RELOADABLE.contains(&k.as_str()))
                        .collect::<Vec<_>>();
                    retention = Retention::from_config(&new);
                    interval = Duration::from_secs(new.flush_interval_secs);
                    next_flush = now + interval;
                    if new.gateway.is_some() && new.gateway != cfg.gateway {
                        meter.with(|m| m.set_gateway(new.gateway));
                    }
                    next_gateway_check = now;
                    // Settings that need a restart keep their running values, so what is
                    // shown stays what is in force.
                    cfg = Config {
                        flush_interval_secs: new.flush_interval_secs,
                        gateway: new.gateway,
                        keep_minutes_days: new.keep_minutes_days,
                        keep_hours_days: new.keep_hours_days,
                        keep_days_months: new.keep_days_months,
                        keep_months_years: new.keep_months_years,
                        backup_hour: new.backup_hour,
                        backup_keep: new.backup_keep,
                        backup_dir: new.backup_dir.clone(),
                        ..cfg
                    };
                    if needs_restart.is_empty() {
                        tracing::info!("configuration reloaded");
                    } else {
                        tracing::warn!(settings = ?needs_restart, "configuration reloaded; these changed settings take effect at the next restart (systemctl restart lanmeter)");
                    }
                    telemetry.record_reload(crate::telemetry::ConfigStatus {
                        reloaded_at: Some(jiff::Timestamp::now()),
                        error: None,
                        needs_restart,
                    });
                }
                Err(e) => {
                    let error = format!("{e:#}");
                    tracing::error!(error = %error, "the configuration was not reloaded: the new file is invalid, so the running configuration stays in force; fix the file and send SIGHUP again (systemctl reload lanmeter)");
                    telemetry.record_reload(crate::telemetry::ConfigStatus {
                        reloaded_at: Some(jiff::Timestamp::now()),
                        error: Some(error),
                        needs_restart: Vec::new(),
                    });
                }
            }
        }
        if cfg.gateway.is_none() && now >= next_gateway_check {
            next_gateway_check = now + GATEWAY_RECHECK;
            let found = discovery::detect_gateway(&iface).map(|g| g.mac);
            if found.is_some() && found != meter.with(|m| m.gateway()) {
                tracing::info!(gateway = %found.map(|g| g.to_string()).unwrap_or_default(), "gateway detected");
                meter.with(|m| m.set_gateway(found));
            }
        }
        if now >= next_flush {
            next_flush += interval;
            if next_flush < now {
                next_flush = now + interval;
            }
            flush_now(&mut flusher, &mut gate, interval, discovery.as_ref());
            if let Some(w) = wifi.as_mut() {
                w.flush();
            }
        }
        if now >= next_maintenance {
            next_maintenance = now + MAINTENANCE_INTERVAL;
            maintain(&mut flusher, &tz, &retention, &health);
            health.read_damage(&db);
            if cfg.backup_keep > 0 {
                nightly_backup(&cfg, &tz, &db, &health, &mut backups);
            }
        }
    }
    notifier.stopping();
    tracing::info!("stopping: waiting for the capture thread, then flushing");
    if let Some(job) = backups.job.take() {
        // The handle of a finished backup stays here until the next maintenance round.
        if !job.is_finished() {
            tracing::info!("waiting for the nightly backup to finish");
        }
        let _ = job.join();
    }
    if capture_thread.join().is_err() {
        tracing::error!("the capture thread panicked; flushing what it counted");
    }
    if web_thread.join().is_err() {
        tracing::error!("the web server thread panicked");
    }
    if let Some(w) = wifi {
        w.stop();
    }
    if alerts_thread.join().is_err() {
        tracing::error!("the alert thread panicked");
    }
    if let Some(m) = mqtt {
        m.join();
    }
    // The flusher keeps whatever it failed to write, so retries pass an empty delta: handing the
    // same delta again would count it twice.
    let mut delta = meter.take_delta();
    if let Some(d) = discovery {
        d.traffic(delta.sent_spans());
        d.join();
    }
    let now_s = jiff::Timestamp::now().as_second();
    let trusted = clock
        .distrust(now_s)
        .is_none()
        .then_some(now_s - now_s.rem_euclid(60));
    let stamping = Stamping::Live(trusted);
    let mut last_err = None;
    for attempt in 1..=FINAL_FLUSH_ATTEMPTS {
        let result = flusher
            .flush_gated(&std::mem::take(&mut delta), interval, &mut gate, stamping)
            .and_then(|_| {
                // Stopping while the clock is still untrusted: stored as stamped rather than lost.
                let (usage, seen) = gate.release_as_stamped();
                flusher.flush(usage, seen)
            });
        match result {
            Ok(_) => {
                last_err = None;
                break;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "final flush failed, retrying");
                last_err = Some(e);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    let s = stats.snapshot();
    tracing::info!(
        frames = s.frames_seen,
        pcap_received = s.pcap_received,
        pcap_dropped = s.pcap_dropped,
        pcap_if_dropped = s.pcap_if_dropped,
        "stopped"
    );
    if let Some(e) = last_err {
        anyhow::bail!(
            "could not write the last {} minute rows to {}: {e}",
            flusher.pending_len(),
            db.display()
        );
    }
    Ok(())
}

/// Top-level settings whose values differ between `old` and `new`.
fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let table = |c: &Config| {
        c.to_toml_string()
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .unwrap_or_default()
    };
    let (a, b) = (table(old), table(new));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Rolls up closed hours and applies retention; failures are logged and retried next time
/// (the minutes they need stay stored until a rollup has them).
fn maintain(
    flusher: &mut Flusher,
    tz: &jiff::tz::TimeZone,
    retention: &Retention,
    health: &SharedHealth,
) {
    let now = jiff::Timestamp::now();
    let started = Instant::now();
    match flusher.store_mut().maintain(tz, retention, now.as_second()) {
        Ok(r) => {
            health.update(|h| h.last_maintenance = Some(now));
            if r.rolled.iter().chain(&r.deleted).any(|&n| n > 0) {
                tracing::info!(
                    rolled_hours = r.rolled[0],
                    rolled_days = r.rolled[1],
                    rolled_months = r.rolled[2],
                    deleted_minute_rows = r.deleted[0],
                    deleted_hour_rows = r.deleted[1],
                    deleted_day_rows = r.deleted[2],
                    deleted_month_rows = r.deleted[3],
                    ms = started.elapsed().as_millis() as u64,
                    "history maintenance"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "history maintenance failed; retried later"),
    }
}

/// When a failed nightly backup is tried again: soon enough to get one that night once space is
/// freed, rarely enough that a full disk is not rewritten every maintenance round.
const BACKUP_RETRY: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// The nightly backup's state between maintenance rounds.
#[derive(Default)]
struct BackupSchedule {
    /// The running backup thread; it returns whether the backup was written.
    job: Option<std::thread::JoinHandle<bool>>,
    /// The local date of the last backup written (or found already on disk).
    done_day: Option<jiff::civil::Date>,
    /// After a failure, no new attempt before this moment.
    retry_after: Option<jiff::Timestamp>,
}

/// Starts the nightly backup on its own thread (with its own connection, so flushes go on)
/// once the local clock reaches `backup_hour`, at most once a day; a failed one is tried again
/// every [`BACKUP_RETRY`] until it is written.
fn nightly_backup(
    cfg: &Config,
    tz: &jiff::tz::TimeZone,
    db: &std::path::Path,
    health: &SharedHealth,
    s: &mut BackupSchedule,
) {
    if s.job.as_ref().is_some_and(|j| !j.is_finished()) {
        return;
    }
    let now = jiff::Timestamp::now();
    if let Some(done) = s.job.take() {
        match done.join() {
            Ok(true) => s.retry_after = None,
            Ok(false) => {
                s.done_day = None;
                s.retry_after = now.checked_add(BACKUP_RETRY).ok();
            }
            Err(_) => tracing::error!("the backup thread panicked"),
        }
    }
    let local = now.to_zoned(tz.clone());
    let today = local.date();
    if local.hour() < i8::try_from(cfg.backup_hour).unwrap_or(0)
        || s.done_day == Some(today)
        || s.retry_after.is_some_and(|t| now < t)
    {
        return;
    }
    s.done_day = Some(today);
    let (db, dir, keep, health) = (
        db.to_path_buf(),
        cfg.backup_dir_path(),
        cfg.backup_keep as usize,
        health.clone(),
    );
    let spawned = std::thread::Builder::new()
        .name("backup".into())
        .spawn(move || match backup::nightly(&db, &dir, keep, today) {
            Ok(written) => {
                if let Some(path) = written {
                    tracing::info!(backup = %path.display(), "nightly backup written");
                    health.update(|h| {
                        h.last_backup = Some((jiff::Timestamp::now(), path));
                        h.last_backup_error = None;
                    });
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, folder = %dir.display(), retry_in_minutes = BACKUP_RETRY.as_mins(), "nightly backup failed");
                health.update(|h| h.last_backup_error = Some(e.to_string()));
                false
            }
        });
    match spawned {
        Ok(handle) => s.job = Some(handle),
        Err(e) => tracing::error!(error = %e, "cannot start the backup thread"),
    }
}
