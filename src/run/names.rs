//! Per-device names (issue 29, only with `per_device_services = true`): a second filtered
//! capture (`names::BPF_FILTER`: DNS answers, TLS handshake starts, QUIC Initials) whose thread
//! feeds a bounded [`Table`], and a writer that hands the table once per flush interval to the
//! flusher's transaction (never a commit of its own: SD-card writes, issue 26).
//!
//! Started like discovery's capture, on the same interface; nothing is shared with accounting.
//! With the setting off nothing here runs: no handle is opened, nothing reaches the database.

use crate::capture::LinkType;
use crate::capture::discovery_source::{self, DiscoveryCaptureConfig, RawSink};
use crate::config::Config;
use crate::names::table::Table;
use crate::names::{self, Extractor};
use crate::store::batch::WriteQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes kept per frame: a ClientHello's first segment or a QUIC Initial (≤ 1500 on most
/// links, up to ~64 KB with GRO, where the hello is still at the start).
const SNAPLEN: u32 = 4096;
/// (device, remote IP) pairs held between two writes: ~100 bytes each.
const TABLE_CAPACITY: usize = 16_384;
/// How often the writer checks for the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

type Shared = Arc<Mutex<Table>>;

struct NamesSink {
    extractor: Extractor,
    events: Vec<names::Event>,
    table: Shared,
}

impl RawSink for NamesSink {
    fn frame(&mut self, link: LinkType, ts: i64, data: &[u8]) {
        self.events.clear();
        self.extractor.frame(link, ts, data, &mut self.events);
        if self.events.is_empty() {
            return;
        }
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        for e in &self.events {
            for l in e.learned() {
                t.add(l);
            }
        }
    }
}

/// The running names capture and writer.
pub struct NamesRun {
    capture: Option<JoinHandle<()>>,
    writer_stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

impl NamesRun {
    /// Starts the capture and the writer when `per_device_services` is on; `None` otherwise.
    /// A capture that cannot open is logged and leaves everything else running.
    pub fn start(
        cfg: &Config,
        iface: &str,
        queue: WriteQueue,
        stop: Arc<AtomicBool>,
    ) -> Option<NamesRun> {
        if !cfg.per_device_services {
            return None;
        }
        let table: Shared = Arc::new(Mutex::new(Table::new(TABLE_CAPACITY)));
        let capture = match discovery_source::open_discovery(&DiscoveryCaptureConfig {
            interface: iface.to_string(),
            snaplen: SNAPLEN,
            promiscuous: cfg.promiscuous,
            filters: vec![
                names::BPF_FILTER_VLAN.to_string(),
                names::BPF_FILTER.to_string(),
            ],
        }) {
            Ok(cap) => {
                let sink = NamesSink {
                    extractor: Extractor::default(),
                    events: Vec::new(),
                    table: table.clone(),
                };
                match cap.spawn(Box::new(sink), stop) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start the names capture thread");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "per-device services are off: cannot open the names capture");
                None
            }
        };
        let interval = Duration::from_secs(cfg.flush_interval_secs);
        let keep = Duration::from_secs(u64::from(cfg.keep_services_days) * 86_400);
        let writer_stop = Arc::new(AtomicBool::new(false));
        let ws = writer_stop.clone();
        let writer = std::thread::Builder::new()
            .name("names-store".into())
            .spawn(move || writer(queue, table, interval, keep, &ws))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the names writer"))
            .ok();
        tracing::info!(
            iface,
            "per-device services: learning names from DNS answers and TLS/QUIC server names"
        );
        Some(NamesRun {
            capture,
            writer_stop,
            writer,
        })
    }

    /// Waits for the capture (it stops on the shared flag), then has the writer store the last
    /// interval and waits for it.
    pub fn join(self) {
        if let Some(c) = self.capture
            && c.join().is_err()
        {
            tracing::error!("the names capture thread panicked");
        }
        self.writer_stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer
            && w.join().is_err()
        {
            tracing::error!("the names writer panicked");
        }
    }
}

fn writer(queue: WriteQueue, table: Shared, interval: Duration, keep: Duration, stop: &AtomicBool) {
    let mut next = Instant::now() + interval;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping && Instant::now() < next {
            std::thread::sleep(STOP_CHECK);
            continue;
        }
        next = Instant::now() + interval;
        let (rows, evicted) = table.lock().unwrap_or_else(|p| p.into_inner()).take();
        if evicted > 0 {
            tracing::warn!(
                evicted,
                "more device names in one interval than the table holds"
            );
        }
        if !rows.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let keep_from = now.saturating_sub(i64::try_from(keep.as_nanos()).unwrap_or(i64::MAX));
            // The queue keeps the write until a flush commits it (a busy database only delays
            // it); on a stop the daemon joins this thread before its final flush.
            queue.push("names", move |sp, path| {
                crate::store::names::write_names_in(sp, path, &rows, keep_from).map(|_| ())
            });
        }
        if stopping {
            return;
        }
    }
}
