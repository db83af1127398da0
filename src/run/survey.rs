//! The live Wi-Fi survey: the monitor-mode capture thread feeding a shared [`Collector`], drained
//! into the database once per flush interval on the daemon's thread.
//!
//! It owns the survey's own database connection (WAL lets it sit beside the accounting
//! flusher's) and the collections that failed to be written, kept for the next interval. The
//! survey is optional: any failure to start it is logged with advice and the daemon goes on
//! counting bytes. It never touches the accounting meter or its flusher.

use crate::capture::monitor::{self, MonitorStats};
use crate::config::Config;
use crate::store::Store;
use crate::survey::{Collector, SharedCollector};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Collections kept when the database refuses them (six 10 s intervals, a minute): enough to
/// ride out a lock held by a backup, bounded so a broken disk cannot grow memory.
const MAX_PENDING: usize = 6;

pub struct LiveSurvey {
    collector: SharedCollector,
    store: Store,
    pending: VecDeque<Collector>,
    /// Taken by [`LiveSurvey::stop`].
    thread: Option<JoinHandle<()>>,
    stats: Arc<MonitorStats>,
}

/// Starts the survey when `wifi_interface` is set; `None` when it is not, or cannot start.
pub fn start(cfg: &Config, db: &Path, stop: Arc<AtomicBool>) -> Option<LiveSurvey> {
    let iface = cfg.wifi_interface.as_deref()?;
    let capture = match monitor::open(iface, cfg.buffer_mib.saturating_mul(1024 * 1024)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the Wi-Fi survey is not running; byte accounting carries on");
            return None;
        }
    };
    let store = match Store::open(db) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the Wi-Fi survey cannot open the database; byte accounting carries on");
            return None;
        }
    };
    let collector = SharedCollector::default();
    match capture.spawn(Box::new(collector.clone()), stop) {
        Ok((thread, stats)) => Some(LiveSurvey {
            collector,
            store,
            pending: VecDeque::new(),
            thread: Some(thread),
            stats,
        }),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the Wi-Fi capture thread; byte accounting carries on");
            None
        }
    }
}

impl LiveSurvey {
    /// Writes what was collected since the last call (and anything left from failed writes).
    pub fn flush(&mut self) {
        let fresh = self.collector.take();
        if !fresh.is_empty() {
            self.pending.push_back(fresh);
        }
        while let Some(c) = self.pending.front() {
            match self.store.write_survey(c) {
                Ok(()) => {
                    self.pending.pop_front();
                }
                Err(e) => {
                    tracing::warn!(error = %e, pending = self.pending.len(), "writing the Wi-Fi survey failed; retrying next interval");
                    break;
                }
            }
        }
        if self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
            tracing::warn!(
                "the database refused the Wi-Fi survey for a minute; its oldest interval was dropped"
            );
        }
    }

    /// Waits for the capture thread (the stop flag is the daemon's) and writes the rest.
    pub fn stop(mut self) {
        if self.thread.take().is_some_and(|t| t.join().is_err()) {
            tracing::error!("the Wi-Fi capture thread panicked; writing what it collected");
        }
        self.flush();
        tracing::info!(
            frames = self.stats.frames_seen.load(Ordering::Relaxed),
            unwritten_intervals = self.pending.len(),
            "Wi-Fi survey stopped"
        );
    }
}
