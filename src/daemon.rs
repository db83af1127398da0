//! The live daemon (`lanmeter run`): capture thread → meter → periodic flush into SQLite.
//!
//! It owns the lifecycle of one run, in four steps that [`run`] reads as: **open** what can fail
//! ([`Inputs`]: the capture first, since it needs privileges and fails most often; the database
//! lock; the web listener; then the database itself and the TLS certificates), **start** the
//! threads (web, with its own tokio runtime, reading the meter only through snapshots; capture;
//! alerts; discovery; the Wi-Fi survey; MQTT), **tick** the schedules of [`crate::run`] on this
//! thread every 100 ms (flush, watchdog, gateway, maintenance and backups, SIGHUP reloads, an
//! interface that appears or moves), and on SIGTERM/SIGINT **stop** them in a fixed order and
//! flush what is left before returning. A capture interface that is not there yet is waited
//! for, and traffic stamped before the clock is trusted is filed by [`crate::clock`]'s rule. It
//! never counts anything itself and never lets a database problem reach the capture thread.

use crate::capture::live::{self, Follow, LiveConfig};
use crate::capture::{CaptureStats, PacketSource};
use crate::config::Config;
use crate::discovery;
use crate::flush::Flusher;
use crate::meter::{Locality, Meter, MeterConfig, SharedMeter};
use crate::run::discovery::DiscoveryRun;
use crate::run::flushing::Flushing;
use crate::run::gateway::GatewayWatch;
use crate::run::maintenance::Maintenance;
use crate::run::reload::Reload;
use crate::run::watchdog::Watchdog;
use crate::run::{Ctx, Periodic};
use crate::store::Store;
use crate::store::backup::{self, DbLock};
use crate::store::health::SharedHealth;
use crate::system::notify::Notifier;
use crate::telemetry::Telemetry;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    file: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    reload: Option<Reload>,
) -> anyhow::Result<()> {
    let mut o = open(&cfg, inputs)?;
    let mut t = start(&cfg, &mut o, file, &stop)?;
    // READY only now: the database is open and the capture thread runs (Type=notify in the unit).
    // READY even while the interface is waited for: the service is up (web, database) and a
    // restart would not make the interface appear; the status line says what it waits for.
    let mut notifier = Notifier::from_env();
    let mut capture_state = t.stats.state();
    notifier.ready(&format!("{capture_state} into {}", o.db.display()));
    let now = Instant::now();
    let interval = Duration::from_secs(cfg.flush_interval_secs);
    let mut flushing = Flushing::new(now, interval, cfg.max_devices, t.telemetry.clone());
    let mut gateway = GatewayWatch::new(now);
    let mut maintenance = Maintenance::new(now, interval, cfg.time_zone());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        let capturing = !t.capture.is_finished();
        t.capture_running
            .store(capturing && !t.stats.is_waiting(), Ordering::Relaxed);
        let state = t.stats.state();
        if state != capture_state {
            notifier.status(&state.to_string());
            if follow_interface(&cfg, &mut o, &mut t, &stop) {
                gateway.nudge(now);
            }
            capture_state = state;
        }
        let mut watchdog = Watchdog {
            notifier: &mut notifier,
        };
        tick(
            [&mut watchdog, &mut gateway],
            now,
            &mut ctx(&cfg, &mut o, capturing),
        );
        if let Some(r) = &reload
            && r.requested()
        {
            tracing::info!("SIGHUP: flushing, then rereading the configuration");
            flushing.flush_now(&mut o.flusher, &o.meter, &o.health, t.discovery.as_ref());
            tracing::info!(pending_rows = o.flusher.pending_len(), "flushed on SIGHUP");
            let old_gateway = cfg.gateway;
            if r.apply(&mut cfg, &t.telemetry) {
                flushing.set_interval(Duration::from_secs(cfg.flush_interval_secs), now);
                if cfg.gateway.is_some() && cfg.gateway != old_gateway {
                    o.meter.with(|m| m.set_gateway(cfg.gateway));
                }
                gateway.nudge(now);
            }
        }
        if flushing.due(now) {
            flushing.flush_now(&mut o.flusher, &o.meter, &o.health, t.discovery.as_ref());
            if let Some(w) = t.wifi.as_mut() {
                w.flush();
            }
        }
        tick([&mut maintenance], now, &mut ctx(&cfg, &mut o, capturing));
    }
    notifier.stopping();
    tracing::info!("stopping: waiting for the capture thread, then flushing");
    maintenance.stop();
    let stats = Arc::clone(&t.stats);
    let discovery = t.join();
    let delta = o.meter.take_delta();
    if let Some(d) = discovery {
        d.traffic(delta.sent_spans());
        d.join();
    }
    let result = flushing.final_flush(&mut o.flusher, delta);
    let s = stats.snapshot();
    tracing::info!(
        frames = s.frames_seen,
        pcap_received = s.pcap_received,
        pcap_dropped = s.pcap_dropped,
        pcap_if_dropped = s.pcap_if_dropped,
        "stopped"
    );
    if let Err(e) = result {
        anyhow::bail!(
            "could not write the last {} minute rows to {}: {e}",
            o.flusher.pending_len(),
            o.db.display()
        );
    }
    Ok(())
}

/// Ticks `jobs` in order.
fn tick<const N: usize>(jobs: [&mut dyn Periodic; N], now: Instant, ctx: &mut Ctx<'_>) {
    for job in jobs {
        job.tick(now, ctx);
    }
}

/// What the scheduled jobs of [`crate::run`] get to see on one turn of the loop.
fn ctx<'a>(cfg: &'a Config, o: &'a mut Opened, capturing: bool) -> Ctx<'a> {
    Ctx {
        cfg,
        db: &o.db,
        flusher: &mut o.flusher,
        meter: &o.meter,
        health: &o.health,
        iface: &o.iface,
        capturing,
    }
}

/// What [`open`] opened: the database, the meter and what the threads are started with.
struct Opened {
    /// Held for the whole run (see [`Inputs`]).
    _lock: DbLock,
    db: PathBuf,
    flusher: Flusher,
    meter: SharedMeter,
    health: SharedHealth,
    /// Taken by [`start`].
    capture: Option<Box<dyn PacketSource>>,
    listener: Option<std::net::TcpListener>,
    /// The interface captured on now; empty or a waited-for name until capture has it.
    iface: String,
    waiting_at_start: bool,
}

/// Opens the database (moving a damaged file aside) and builds the meter.
fn open(cfg: &Config, inputs: Inputs) -> anyhow::Result<Opened> {
    let Inputs {
        capture,
        mut lock,
        listener,
    } = inputs;
    let health = SharedHealth::new();
    let iface = capture.interface().to_string();
    let waiting_at_start = capture.is_waiting();
    let db = cfg.database_path();
    // Gone while backups of it exist: a damage too, before the open creates an empty one.
    backup::record_if_missing(&db, &cfg.backup_dir_path())
        .with_context(|| format!("checking database {}", db.display()))?;
    let (store, _damage) =
        Store::open_checked(&db).with_context(|| format!("opening database {}", db.display()))?;
    // A damaged file moved aside: the lock now covers the fresh one.
    lock.cover_file();
    health.read_damage(&db);
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
        passive_latency: cfg.passive_latency,
        remote_endpoints: cfg.per_device_services,
    }));
    Ok(Opened {
        _lock: lock,
        db,
        flusher: Flusher::new(store),
        meter,
        health,
        capture: Some(capture),
        listener: Some(listener),
        iface,
        waiting_at_start,
    })
}

/// The capture thread's sink: the meter counts each batch, then the placement tally looks at it
/// with the gateway the meter knows now (it may be learned or changed while running).
struct MeterAndWatch {
    meter: SharedMeter,
    watch: crate::placement::Watch,
}

impl crate::capture::FrameSink for MeterAndWatch {
    fn ingest(&mut self, frames: &[crate::capture::Frame]) {
        let gateway = self.meter.with(|m| {
            m.ingest_batch(frames);
            m.gateway()
        });
        self.watch.observe(frames, gateway);
    }
}

/// The threads a run started, joined by [`Threads::join`] in a fixed order.
struct Threads {
    web: JoinHandle<()>,
    capture: JoinHandle<()>,
    stats: Arc<CaptureStats>,
    telemetry: Telemetry,
    /// What the alert thread's probe reads: capture runs and is not waiting.
    capture_running: Arc<AtomicBool>,
    alerts: JoinHandle<()>,
    discovery: Option<DiscoveryRun>,
    names: Option<crate::run::names::NamesRun>,
    wifi: Option<crate::run::survey::LiveSurvey>,
    mqtt: Option<crate::run::mqtt::MqttRun>,
    remote: Option<crate::run::remote::RemoteWrite>,
    internet: Option<crate::run::internet::InternetRun>,
    router: Option<crate::run::router::RouterRun>,
}

/// Starts the web server, the capture thread, the alert thread, discovery (once its interface
/// is there), the Wi-Fi survey and MQTT.
fn start(
    cfg: &Config,
    o: &mut Opened,
    file: Option<PathBuf>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Threads> {
    let db = o.db.clone();
    // Certificates are checked before anything runs, like the port: one clear error, nothing half-up.
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(crate::web::tls::server_config(cert, key)?),
        _ => None,
    };
    let telemetry = Telemetry::new(o.health.clone());
    let internet_now = crate::internet::SharedNow::default();
    let web_state = crate::web::AppState::new(cfg.clone(), &db, Some(o.meter.clone()))
        .with_context(|| format!("opening database {} for the web side", db.display()))?
        .with_tls(tls.is_some())
        .with_telemetry(telemetry.clone())
        .with_internet(internet_now.clone());
    // The running configuration the alert thread rereads; the settings editor updates it.
    let live = crate::config::settings::Live::new(cfg.clone());
    if let Some(path) = file {
        web_state.set_settings(Arc::new(crate::config::settings::Editor::new(
            path,
            live.clone(),
        )));
    }
    let listener = o.listener.take().context("the listener was taken")?;
    let listen_addr = listener
        .local_addr()
        .map_or_else(|_| cfg.listen.to_string(), |a| a.to_string());
    let web = crate::web::spawn(listener, web_state, stop.clone(), tls)
        .context("starting the web server thread")?;
    let source = o.capture.take().context("the capture was taken")?;
    // The placement verdict (System page, wizard, API) from the same frames the meter counts.
    let own = (!o.waiting_at_start)
        .then(|| live::interface_mac(&o.iface))
        .flatten();
    let watch = crate::placement::Watch::new(&o.iface, own, None);
    telemetry.set_visibility(watch.clone());
    let sink = MeterAndWatch {
        meter: o.meter.clone(),
        watch,
    };
    let (capture, stats) = crate::capture::source::spawn(source, Box::new(sink), stop.clone())
        .context("starting the capture thread")?;
    telemetry.set_capture(Arc::clone(&stats));
    // The alert thread sees capture only through this copy of a few counters and a flag the
    // loop keeps current; it never touches the meter or the capture thread.
    let capture_running = Arc::new(AtomicBool::new(!o.waiting_at_start));
    let alerts = {
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
        crate::run::alerts::spawn(
            cfg.clone(),
            db.clone(),
            crate::alerts::run::Sources {
                probe: Some(probe),
                health: o.health.clone(),
                extra: vec![
                    crate::alerts::plan_source::source(cfg.time_zone()),
                    crate::alerts::internet_source::source(
                        crate::alerts::internet_source::Limits::from_config(cfg),
                        cfg.time_zone(),
                    ),
                    crate::alerts::coverage_source::source(
                        cfg.time_zone(),
                        cfg.coverage_alert_percent,
                        2 * cfg.flush_interval_secs,
                        Some(live.clone()),
                    ),
                ],
                live: Some(live),
            },
            Some(o.flusher.queue()),
            stop.clone(),
        )
        .context("starting the alert thread")?
    };
    // Discovery captures on the same interface: it starts once that interface is there.
    let discovery = (cfg.discovery && !o.waiting_at_start)
        .then(|| DiscoveryRun::start(cfg, &o.iface, db.clone(), o.flusher.queue(), stop.clone()));
    let names = (!o.waiting_at_start)
        .then(|| crate::run::names::NamesRun::start(cfg, &o.iface, o.flusher.queue(), stop.clone()))
        .flatten();
    let wifi = crate::run::survey::start(cfg, &db, stop.clone());
    let mqtt = crate::run::mqtt::MqttRun::start(cfg, db.clone(), stop.clone());
    let remote = crate::run::remote::RemoteWrite::start(
        cfg,
        db.clone(),
        telemetry.clone(),
        capture_running.clone(),
        stop.clone(),
    );
    let internet =
        crate::run::internet::start(cfg, &db, internet_now, o.flusher.queue(), stop.clone());
    let router = crate::run::router::RouterRun::start(
        cfg,
        db.clone(),
        telemetry.clone(),
        o.flusher.queue(),
        stop.clone(),
    );
    tracing::info!(
        interface = %o.iface,
        gateway = %o.meter.with(|m| m.gateway()).map(|g| g.to_string()).unwrap_or_else(|| "not yet known".into()),
        gateway_source = if cfg.gateway.is_some() { "config" } else { "routing table" },
        local_prefixes = ?o.meter.with(|m| m.locality().prefixes().to_vec()),
        database = %db.display(),
        web = %listen_addr,
        flush_interval_secs = cfg.flush_interval_secs,
        "capturing"
    );
    Ok(Threads {
        web,
        capture,
        stats,
        telemetry,
        capture_running,
        alerts,
        discovery,
        names,
        wifi,
        mqtt,
        remote,
        internet,
        router,
    })
}

impl Threads {
    /// Joins capture first (its last frames must be in the meter before the final flush), then
    /// the web server, the survey, the alerts and MQTT; discovery is handed back to be joined
    /// after it gets the last delta's traffic.
    fn join(self) -> Option<DiscoveryRun> {
        if self.capture.join().is_err() {
            tracing::error!("the capture thread panicked; flushing what it counted");
        }
        if self.web.join().is_err() {
            tracing::error!("the web server thread panicked");
        }
        if let Some(w) = self.wifi {
            w.stop();
        }
        if self.alerts.join().is_err() {
            tracing::error!("the alert thread panicked");
        }
        if let Some(m) = self.mqtt {
            m.join();
        }
        if let Some(r) = self.remote {
            r.join();
        }
        if let Some(i) = self.internet {
            i.join();
        }
        if let Some(r) = self.router {
            r.join();
        }
        if let Some(n) = self.names {
            n.join();
        }
        self.discovery
    }
}

/// The capture's state changed: when the interface appeared, or capture followed it elsewhere,
/// what depends on its name (local prefixes, discovery) follows too. Returns whether it did (the
/// gateway is then looked up again).
fn follow_interface(cfg: &Config, o: &mut Opened, t: &mut Threads, stop: &Arc<AtomicBool>) -> bool {
    let current = t.stats.interface();
    if t.stats.is_waiting() || current == o.iface {
        return false;
    }
    o.iface = current;
    if let Some(w) = t.telemetry.visibility() {
        w.restart(&o.iface, live::interface_mac(&o.iface));
    }
    for p in discovery::interface_prefixes(&o.iface) {
        o.meter.with(|m| m.add_local_prefix(p));
    }
    if t.names.is_none() {
        t.names =
            crate::run::names::NamesRun::start(cfg, &o.iface, o.flusher.queue(), stop.clone());
    }
    if cfg.discovery && t.discovery.is_none() {
        t.discovery = Some(DiscoveryRun::start(
            cfg,
            &o.iface,
            o.db.clone(),
            o.flusher.queue(),
            stop.clone(),
        ));
    }
    true
}
