//! The remote-write thread (`remote_write_url` set): every `remote_write_interval_secs` it sends
//! the closed minutes after the cursor (all of them, in batches, after an outage or on first
//! enable) and the health of this round, then records the cursor. The series are built by
//! [`crate::remote`]; this file only decides when.
use crate::config::Config;
use crate::remote::send::{Receiver, SendError};
use crate::remote::{self, BATCH_MINUTES, DeviceLabels, Health};
use crate::store::Store;
use crate::telemetry::Telemetry;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The running remote-write thread.
pub struct RemoteWrite {
    handle: std::thread::JoinHandle<()>,
}

struct Job {
    receiver: Receiver,
    site: String,
    interval: Duration,
    db: PathBuf,
    telemetry: Telemetry,
    capture_running: Arc<AtomicBool>,
    /// Whether the last round failed to reach the receiver (logged once per outage).
    failing: bool,
    /// For today's coverage (the router's counters): the zone of "today" and how far back
    /// today ends (two flush intervals, as on the overview).
    tz: jiff::tz::TimeZone,
    coverage_lag_secs: u64,
}

impl RemoteWrite {
    /// Starts the thread when `remote_write_url` is set; `None` when it is off or the thread
    /// cannot start (logged: the daemon runs on without it).
    pub fn start(
        cfg: &Config,
        db: PathBuf,
        telemetry: Telemetry,
        capture_running: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    ) -> Option<RemoteWrite> {
        let url = cfg.remote_write_url.clone()?;
        let mut job = Job {
            receiver: Receiver {
                url,
                token: cfg
                    .remote_write_token
                    .as_ref()
                    .map(|t| t.expose().to_string()),
                timeout: Duration::from_secs(cfg.delivery_timeout_secs),
            },
            site: cfg.site_name(),
            interval: Duration::from_secs(cfg.remote_write_interval_secs),
            db,
            telemetry,
            capture_running,
            failing: false,
            tz: cfg.time_zone(),
            coverage_lag_secs: 2 * cfg.flush_interval_secs,
        };
        let shown = crate::alerts::webhook::redact(&job.receiver.url);
        let site = job.site.clone();
        match std::thread::Builder::new()
            .name("remote-write".into())
            .spawn(move || job.run(&stop))
        {
            Ok(handle) => {
                tracing::info!(receiver = %shown, %site, "remote write on");
                Some(RemoteWrite { handle })
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the remote-write thread; remote write is off");
                None
            }
        }
    }

    /// Waits for the thread (it stops on the stop flag, within one request's timeout).
    pub fn join(self) {
        if self.handle.join().is_err() {
            tracing::error!("the remote-write thread panicked");
        }
    }
}

impl Job {
    fn run(&mut self, stop: &AtomicBool) {
        let mut store: Option<Store> = None;
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            next = Instant::now() + self.interval;
            if store.is_none() {
                match Store::open(&self.db) {
                    Ok(s) => store = Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "remote write cannot open the database; retried next round");
                        continue;
                    }
                }
            }
            if let Some(s) = store.as_mut()
                && let Err(e) = self.round(s, stop)
            {
                tracing::warn!(error = %e, "remote write cannot read the history; retried next round");
                store = None;
            }
        }
    }

    /// Sends every closed minute after the cursor, batch by batch, then this round's health.
    fn round(&mut self, s: &mut Store, stop: &AtomicBool) -> Result<(), crate::store::StoreError> {
        let url = self.receiver.url.clone();
        let health = self.telemetry.health().snapshot();
        // Nothing is closed before the first flush of this run wrote what capture counted.
        let closed = health
            .last_flush_ok
            .map(|t| remote::last_closed_minute(t.as_second()));
        let mut after = s.remote_cursor(&url)?;
        let first = after.is_none();
        let mut minutes_sent = 0usize;
        let mut health_sent = false;
        while let Some(closed) = closed
            && !stop.load(Ordering::Relaxed)
        {
            let from = after.unwrap_or(i64::MIN);
            if from >= closed {
                break;
            }
            let active = s.usage_minutes_between(from, closed, BATCH_MINUTES)?;
            let end = if active.len() == BATCH_MINUTES {
                active[BATCH_MINUTES - 1]
            } else {
                closed
            };
            let rows = s.usage_rows_between(from, end)?;
            let devices: Vec<DeviceLabels> = s
                .list_devices()?
                .into_iter()
                .map(|d| DeviceLabels {
                    id: d.id,
                    mac: d.mac.to_string(),
                    name: d.display_name().unwrap_or("").to_string(),
                    person: d.user.owner.clone().unwrap_or_default(),
                    group: d.user.group.clone().unwrap_or_default(),
                    is_gateway: d.is_gateway,
                })
                .collect();
            let before = s.remote_series(&url)?;
            let last = end == closed;
            let mut batch =
                remote::build(&self.site, &devices, &before, &rows, last.then_some(closed));
            if last {
                batch.series.extend(remote::health_series(
                    &self.site,
                    now_ms(),
                    &self.health(s, closed),
                ));
                health_sent = true;
            }
            let body = remote::proto::body(&batch.series);
            let refused = match remote::send::send(&self.receiver, &body) {
                Ok(()) => false,
                Err(e @ SendError::Refused { .. }) => {
                    // Sending the same samples again cannot help: they are skipped (the running
                    // totals carry on, so later samples still hold every byte).
                    tracing::error!(error = %e, through = end, "remote write: samples refused; going on after them");
                    true
                }
                Err(SendError::NotNow(message)) => {
                    if !self.failing {
                        tracing::warn!(error = %message, "remote write failed; the minutes wait in the database and are sent when the receiver is back");
                    }
                    self.failing = true;
                    return Ok(());
                }
            };
            s.save_remote(&url, end, &batch.sent)?;
            let n = rows
                .iter()
                .map(|r| r.minute)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            minutes_sent += n;
            if !refused && (first || self.failing || n > 1) {
                tracing::info!(
                    minutes = n,
                    samples = batch.samples,
                    through = end,
                    backfill = first || self.failing,
                    "remote write sent"
                );
            }
            self.failing = false;
            after = Some(end);
        }
        if !health_sent && !stop.load(Ordering::Relaxed) {
            let series =
                remote::health_series(&self.site, now_ms(), &self.health(s, after.unwrap_or(0)));
            match remote::send::send(&self.receiver, &remote::proto::body(&series)) {
                Ok(()) => self.failing = false,
                Err(e) => {
                    if !self.failing {
                        tracing::warn!(error = %e, "remote write failed; the minutes wait in the database and are sent when the receiver is back");
                    }
                    self.failing = true;
                }
            }
        }
        tracing::debug!(minutes = minutes_sent, "remote write round");
        Ok(())
    }

    /// The health of this round; `through` is the last minute the receiver has.
    fn health(&self, s: &Store, through: i64) -> Health {
        let cap = self.telemetry.capture().unwrap_or_default();
        let storage = self.telemetry.health().snapshot();
        // Today's coverage when the router's counters are read; none otherwise (or unreadable:
        // the counters still go out).
        let coverage = crate::router::coverage::coverage_today(
            s,
            &self.tz,
            now_ms() / 1000,
            self.coverage_lag_secs,
        )
        .ok()
        .flatten();
        let ratio = |p: Option<f64>| p.map(|p| p / 100.0);
        Health {
            coverage_up: ratio(coverage.as_ref().and_then(|c| c.percent_up)),
            coverage_down: ratio(coverage.as_ref().and_then(|c| c.percent_down)),
            capture_up: self.capture_running.load(Ordering::Relaxed),
            packets: cap.frames_seen,
            kernel_dropped: cap.pcap_dropped,
            interface_dropped: cap.pcap_if_dropped,
            flush_failures: storage.consecutive_failures,
            backlog_secs: (now_ms() / 1000 - (through + 60)).max(0),
        }
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
