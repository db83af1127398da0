//! The live daemon (`lanmeter run`): capture thread → meter → periodic flush into SQLite.
//!
//! It owns the lifecycle of one run: open the capture first (it needs privileges and fails most
//! often), then the database, start the capture thread, flush every interval on this thread,
//! and on SIGTERM/SIGINT stop capture and flush what is left before returning. It never counts
//! anything itself and never lets a database problem reach the capture thread.

use crate::capture::live::{self, LiveConfig};
use crate::config::Config;
use crate::discovery;
use crate::flush::Flusher;
use crate::meter::{Delta, Locality, Meter, MeterConfig, SharedMeter};
use crate::model::{MacAddr, MinuteUsage};
use crate::store::Store;
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often an undetected or auto-detected gateway is looked up again (routers get replaced).
const GATEWAY_RECHECK: Duration = Duration::from_secs(60);
/// Attempts at the final flush before giving up and saying how much could not be written.
const FINAL_FLUSH_ATTEMPTS: u32 = 5;

/// Key under which traffic folded out of a full counter map is stored. A broadcast address can
/// never be a real sender, so it cannot collide with a device; frames that claim it as their
/// source are malformed and belong in the same "not attributable" bucket.
pub const OTHER_BUCKET: MacAddr = MacAddr::BROADCAST;

pub fn run(cfg: Config, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let iface = match &cfg.interface {
        Some(i) => i.clone(),
        None => discovery::default_route_interface().context(
            "no default route to pick a capture interface from: set `interface` in the config file",
        )?,
    };
    let capture = live::open(&LiveConfig {
        interface: iface.clone(),
        snaplen: cfg.snaplen,
        buffer_bytes: cfg.buffer_mib.saturating_mul(1024 * 1024),
        promiscuous: cfg.promiscuous,
        stats_log_interval: Duration::from_secs(cfg.stats_log_interval_secs),
    })?;
    let db = cfg.database_path();
    let store = Store::open(&db).with_context(|| format!("opening database {}", db.display()))?;
    let mut flusher = Flusher::new(store);

    let detected = discovery::detect_gateway(&iface);
    let gateway = cfg.gateway.or(detected.as_ref().map(|g| g.mac));
    let locality = Locality::new(
        cfg.lan_prefixes
            .iter()
            .copied()
            .chain(discovery::interface_prefixes(&iface)),
    );
    let meter = SharedMeter::new(Meter::new(MeterConfig {
        max_devices: cfg.max_devices,
        gateway,
        locality,
    }));
    let (capture_thread, stats) = capture
        .spawn(Box::new(meter.clone()), stop.clone())
        .context("starting the capture thread")?;
    let mut wifi = crate::survey::live::start(&cfg, &db, stop.clone());
    tracing::info!(
        interface = %iface,
        gateway = %gateway.map(|g| g.to_string()).unwrap_or_else(|| "not yet known".into()),
        gateway_source = if cfg.gateway.is_some() { "config" } else { "routing table" },
        local_prefixes = ?meter.with(|m| m.locality().prefixes().to_vec()),
        database = %db.display(),
        flush_interval_secs = cfg.flush_interval_secs,
        "capturing"
    );

    let interval = Duration::from_secs(cfg.flush_interval_secs);
    let mut next_flush = Instant::now() + interval;
    let mut next_gateway_check = Instant::now() + GATEWAY_RECHECK;
    let mut evictions_seen = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
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
            let evictions = meter.with(|m| m.evictions());
            if evictions > evictions_seen {
                tracing::warn!(
                    evicted = evictions - evictions_seen,
                    max_devices = cfg.max_devices,
                    "more MACs than max_devices in one minute: the least active were folded into 'other' (a MAC flood, or raise max_devices)"
                );
                evictions_seen = evictions;
            }
            let delta = meter.take_delta();
            if let Err(e) = flush_delta(&mut flusher, &delta, interval) {
                tracing::error!(error = %e, pending_rows = flusher.pending_len(), "flush failed; counts stay in memory and are retried next interval");
            }
            if let Some(w) = wifi.as_mut() {
                w.flush();
            }
        }
    }
    tracing::info!("stopping: waiting for the capture thread, then flushing");
    if capture_thread.join().is_err() {
        tracing::error!("the capture thread panicked; flushing what it counted");
    }
    if let Some(w) = wifi {
        w.stop();
    }
    // The flusher keeps whatever it failed to write, so retries pass an empty delta: handing the
    // same delta again would count it twice.
    let mut delta = meter.take_delta();
    let mut last_err = None;
    for attempt in 1..=FINAL_FLUSH_ATTEMPTS {
        match flush_delta(&mut flusher, &std::mem::take(&mut delta), interval) {
            Ok(()) => {
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

/// Resolves a delta against its gateway (inferring one from the delta if none is known yet) and
/// hands it to the flusher, "other" traffic included under [`OTHER_BUCKET`].
pub fn flush_delta(
    flusher: &mut Flusher,
    delta: &Delta,
    interval: Duration,
) -> Result<(), crate::store::StoreError> {
    let gateway = delta.gateway.or_else(|| delta.infer_gateway());
    let (mut usage, other) = delta.minute_usage(gateway);
    usage.extend(other.into_iter().map(|(minute, o)| MinuteUsage {
        mac: OTHER_BUCKET,
        minute,
        counts: o.counts,
    }));
    let seen = delta.sightings(gateway);
    let stats = flusher.flush(usage, seen)?;
    if stats.duration > interval {
        tracing::warn!(
            took_ms = stats.duration.as_millis() as u64,
            interval_secs = interval.as_secs(),
            "a flush took longer than the flush interval: the database is slow (SD card?)"
        );
    }
    tracing::debug!(
        rows = stats.rows,
        devices = stats.devices,
        took_us = stats.duration.as_micros() as u64,
        "flushed"
    );
    Ok(())
}
