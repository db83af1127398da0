//! Run-time figures the daemon publishes for the API and `/metrics`: the capture thread's
//! counters and state, a histogram of flush durations, the storage health, the last
//! configuration reload and whether the clock is trusted.
//!
//! One cheap cloneable handle; the daemon writes, the web side reads. Everything is atomics or
//! the existing [`SharedHealth`], so recording a flush never waits on a reader. It must never be
//! touched on the packet path (the capture thread publishes into its own `CaptureStats`).

use crate::capture::{CaptureStats, CaptureStatsSnapshot};
use crate::store::health::SharedHealth;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

/// Upper bounds (seconds) of the flush-duration histogram: around the 20 ms budget in BENCHMARKS.md,
/// up to the default 10 s interval where a flush starts to fall behind.
pub const FLUSH_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0, 10.0];

/// A fixed-bucket histogram of durations, in the shape Prometheus expects.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound of [`FLUSH_BUCKETS`] (not cumulative).
    buckets: [AtomicU64; FLUSH_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A copy of a [`Histogram`]: cumulative counts per bound, then `+Inf` (= `count`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = FLUSH_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let cumulative = FLUSH_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&b, n)| {
                acc += n.load(Ordering::Relaxed);
                (b, acc)
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            // Read after the buckets: a flush recorded in between makes count larger, never a
            // bucket larger than count.
            count: self.count.load(Ordering::Relaxed).max(acc),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Set once the capture thread runs (after the web server started, so it is filled in late).
    capture: OnceLock<Arc<CaptureStats>>,
    flush_duration: Histogram,
    health: SharedHealth,
    started: OnceLock<jiff::Timestamp>,
    /// The last configuration reload (SIGHUP) and its outcome.
    config: std::sync::Mutex<ConfigStatus>,
    /// Why the clock is not trusted (traffic held meanwhile), `None` while it is.
    clock: std::sync::Mutex<Option<ClockStatus>>,
    /// What the capture saw of other devices, for the placement verdict (set once it runs).
    visibility: OnceLock<crate::placement::Watch>,
    /// Today's coverage (0–1, both directions) from the router thread's last write; `None`
    /// while the router's counters give no figure.
    coverage: std::sync::Mutex<Option<f64>>,
}

/// The outcome of the last configuration reload (SIGHUP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigStatus {
    pub reloaded_at: Option<jiff::Timestamp>,
    /// The reason the last reload was refused (the previous configuration stays in force).
    pub error: Option<String>,
    /// Settings that changed in the file but only take effect at the next start.
    pub needs_restart: Vec<String>,
}

/// The clock is not trusted yet: why, and what is held until it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockStatus {
    pub reason: String,
    pub held_devices: usize,
    pub held_bytes: u64,
}

/// The handle the daemon and the web side share.
#[derive(Clone, Debug, Default)]
pub struct Telemetry(Arc<Inner>);

impl Telemetry {
    /// A handle that reports `health` as the storage health.
    pub fn new(health: SharedHealth) -> Telemetry {
        let t = Telemetry(Arc::new(Inner {
            health,
            ..Inner::default()
        }));
        let _ = t.0.started.set(jiff::Timestamp::now());
        t
    }

    /// Publishes the capture thread's counters (the first call wins; a run has one capture).
    pub fn set_capture(&self, stats: Arc<CaptureStats>) {
        let _ = self.0.capture.set(stats);
    }

    /// The capture counters, `None` when nothing captures (a read-only web server, tests).
    pub fn capture(&self) -> Option<CaptureStatsSnapshot> {
        self.0.capture.get().map(|s| s.snapshot())
    }

    pub fn record_flush(&self, d: Duration) {
        self.0.flush_duration.observe(d);
    }

    pub fn flush_duration(&self) -> HistogramSnapshot {
        self.0.flush_duration.snapshot()
    }

    pub fn health(&self) -> &SharedHealth {
        &self.0.health
    }

    pub fn record_reload(&self, status: ConfigStatus) {
        *self.0.config.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    pub fn config_status(&self) -> ConfigStatus {
        self.0
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_clock(&self, status: Option<ClockStatus>) {
        *self.0.clock.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    pub fn clock(&self) -> Option<ClockStatus> {
        self.0
            .clock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The capture's state in words ("capturing on eth0", "waiting for interface wlan0", ...).
    pub fn capture_state(&self) -> Option<String> {
        self.0.capture.get().map(|s| s.state().to_string())
    }

    /// The interface captured on (or waited for) now, `None` when nothing captures.
    pub fn capture_interface(&self) -> Option<String> {
        self.0.capture.get().map(|s| s.interface())
    }

    /// Whether the capture waits for its interface (false when nothing captures).
    pub fn capture_waiting(&self) -> bool {
        self.0.capture.get().is_some_and(|s| s.is_waiting())
    }

    /// Publishes the tally the capture thread (or the demo's traffic) feeds (the first call wins).
    pub fn set_visibility(&self, watch: crate::placement::Watch) {
        let _ = self.0.visibility.set(watch);
    }

    /// The tally behind the placement verdict, `None` when nothing captures.
    pub fn visibility(&self) -> Option<&crate::placement::Watch> {
        self.0.visibility.get()
    }

    pub fn set_coverage(&self, c: Option<f64>) {
        *self.0.coverage.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// Today's coverage for the placement verdict, as the router thread last computed it.
    pub fn coverage(&self) -> Option<f64> {
        *self.0.coverage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When this handle was made (the daemon's start).
    pub fn started(&self) -> Option<jiff::Timestamp> {
        self.0.started.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_overflow_only_in_inf() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(15));
        h.observe(Duration::from_secs(30));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], (0.001, 1));
        assert_eq!(s.cumulative[4], (0.02, 2));
        assert_eq!(s.cumulative.last().unwrap().1, 2, "30 s only in +Inf");
        assert!((s.sum_seconds - 30.0155).abs() < 1e-9);
    }
}
