//! The live discovery run beside accounting: the filtered discovery capture thread feeding the
//! learner, the sweep thread, and the writer thread that stores newcomers at once.
//!
//! It owns the wiring between `capture` (the handles), `discovery` (parsers, learner, sweep,
//! vendor, type guess) and `store`. What the learner gathered is written with each flush:
//! [`DiscoveryRun::gather`], called by the flush schedule, queues the batch for the flusher's
//! transaction (one commit per flush interval for accounting and discovery together, see
//! [`crate::store::batch`]). Only a MAC never stored before is written sooner, by the writer
//! thread on its own connection (WAL lets it write beside the flusher). Nothing here shares a
//! lock with the accounting capture, and a failure to open the discovery handle leaves
//! accounting running.

use crate::capture::LinkType;
use crate::capture::discovery_source::{self, DiscoveryCaptureConfig, FrameSender, RawSink};
use crate::config::Config;
use crate::discovery::devtype::{self, Evidence};
use crate::discovery::learner::Learner;
use crate::discovery::sweep::{self, SendFrame};
use crate::discovery::vendor::OuiDb;
use crate::discovery::wire;
use crate::model::MacAddr;
use crate::store::Store;
use crate::store::batch::WriteQueue;
use crate::store::discovery::{MacFacts, Profile, write_discovery_in};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// MACs per batch: beyond this (a MAC flood) the rest waits for the next batch's frames.
const MAX_BATCH_MACS: usize = 4096;
/// Vendors already looked up, so the registry is read only for new MACs; cleared when full.
const VENDOR_CACHE: usize = 4096;

/// A MAC the writer has not stored yet is written within this long, whatever the flush interval:
/// the new-device alert and its name wait on the device's row, and a household should hear about
/// a newcomer in seconds, not at the next 5-minute batch. Steady households add no MACs, so this
/// costs the SD card nothing between arrivals (docs/DURABILITY.md).
const NEWCOMER_WRITE: Duration = Duration::from_secs(10);

/// Bound on the MACs remembered as written (a MAC flood must not grow it without limit; past it
/// the set starts again, costing at most one early write).
const WRITTEN_MAX: usize = 65_536;

/// The learner behind a std Mutex: the capture thread holds it for one frame's parse, the
/// writer for one `take`; neither ever waits on I/O while holding it.
type SharedLearner = Arc<Mutex<Learner>>;

struct LearnerSink(SharedLearner);

impl RawSink for LearnerSink {
    fn frame(&mut self, link: LinkType, ts: i64, data: &[u8]) {
        // A poisoned lock means a parser panicked on some frame: keep learning from the rest.
        let mut l = self.0.lock().unwrap_or_else(|p| p.into_inner());
        l.frame(link, ts, data);
    }
}

struct PcapSender(FrameSender);

impl SendFrame for PcapSender {
    fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        self.0.send(frame)
    }
}

/// The type guess from what the store knows about a device.
pub fn guess(p: &Profile) -> Option<&'static str> {
    devtype::guess(&Evidence {
        router: p.router,
        services: &p.services,
        vendor_class: p.vendor_class.as_deref(),
        hostnames: &p.hostnames,
        vendor: p.vendor.as_deref(),
    })
}

/// Looks up vendors of the MACs in `batch` not looked up before, and fills them in.
pub fn fill_vendors(db: &OuiDb, batch: &mut [MacFacts], done: &mut HashSet<MacAddr>) {
    let new: Vec<MacAddr> = batch
        .iter()
        .map(|f| f.mac)
        .filter(|m| !m.is_locally_administered() && !done.contains(m))
        .collect();
    if new.is_empty() {
        return;
    }
    if done.len() + new.len() > VENDOR_CACHE {
        done.clear();
    }
    let found = db.lookup(&new);
    done.extend(new);
    for f in batch {
        if let Some(v) = found.get(&f.mac) {
            f.vendor = Some(v.clone());
        }
    }
}

/// The OUI registry and the MACs already looked up in it, shared by the writer thread and the
/// flush's [`DiscoveryRun::gather`].
struct Vendors {
    oui: OuiDb,
    looked_up: HashSet<MacAddr>,
}

/// MACs stored (or committed with a flush): the writer writes at once only MACs not in it.
type Written = Arc<Mutex<HashSet<MacAddr>>>;

fn remember(written: &Written, macs: &[MacAddr]) {
    let mut w = written.lock().unwrap_or_else(|p| p.into_inner());
    if w.len() + macs.len() > WRITTEN_MAX {
        w.clear();
    }
    w.extend(macs.iter().copied());
}

/// The running discovery threads.
pub struct DiscoveryRun {
    learner: SharedLearner,
    vendors: Arc<Mutex<Vendors>>,
    written: Written,
    queue: WriteQueue,
    window_ns: i64,
    threads: Vec<JoinHandle<()>>,
    /// The writer stops on its own flag, set only once the capture and sweep threads are done
    /// and the daemon has reported its last traffic; [`DiscoveryRun::join`] then queues the
    /// last batch, complete, for the final flush.
    writer_stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

impl DiscoveryRun {
    /// Starts what can be started; logs (and skips) what cannot, so accounting always runs.
    /// `queue` is the flusher's: each flush's batch is written in its transaction.
    pub fn start(
        cfg: &Config,
        iface: &str,
        db: PathBuf,
        queue: WriteQueue,
        stop: Arc<AtomicBool>,
    ) -> DiscoveryRun {
        let window_ns = i64::try_from(cfg.presence_window_secs)
            .unwrap_or(i64::MAX / 1_000_000_000)
            .saturating_mul(1_000_000_000);
        let learner: SharedLearner = Arc::new(Mutex::new(Learner::new(window_ns, MAX_BATCH_MACS)));
        let mut threads = Vec::new();
        match discovery_source::open_discovery(&DiscoveryCaptureConfig {
            interface: iface.to_string(),
            snaplen: cfg.discovery_snaplen,
            promiscuous: cfg.promiscuous,
            filters: vec![
                wire::BPF_FILTER_VLAN.to_string(),
                wire::BPF_FILTER.to_string(),
            ],
        }) {
            Ok(cap) => match cap.spawn(Box::new(LearnerSink(learner.clone())), stop.clone()) {
                Ok(t) => threads.push(t),
                Err(e) => tracing::warn!(error = %e, "cannot start the discovery capture thread"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "passive discovery is off: cannot open the discovery capture")
            }
        }
        if cfg.arp_sweep_interval_secs > 0 {
            match (
                discovery_source::open_sender(iface),
                sweep::local_interface(iface),
            ) {
                (Ok(sender), Some(local)) => {
                    let interval = Duration::from_secs(cfg.arp_sweep_interval_secs);
                    let rate = cfg.arp_sweep_rate;
                    let stop = stop.clone();
                    match std::thread::Builder::new()
                        .name("discovery-sweep".into())
                        .spawn(move || {
                            let mut s = PcapSender(sender);
                            sweep::run(&mut s, &local, interval, rate, &stop);
                        }) {
                        Ok(t) => threads.push(t),
                        Err(e) => tracing::warn!(error = %e, "cannot start the sweep thread"),
                    }
                }
                (Err(e), _) => {
                    tracing::warn!(error = %e, "the ARP sweep is off: cannot open a send handle")
                }
                (_, None) => tracing::warn!(
                    iface,
                    "the ARP sweep is off: the interface has no MAC address"
                ),
            }
        }
        let vendors = Arc::new(Mutex::new(Vendors {
            oui: OuiDb::system(),
            looked_up: HashSet::new(),
        }));
        let written: Written = Arc::default();
        let writer_stop = Arc::new(AtomicBool::new(false));
        let w = Writer {
            db,
            learner: learner.clone(),
            vendors: vendors.clone(),
            written: written.clone(),
            queue: queue.clone(),
            window_ns,
        };
        let ws = writer_stop.clone();
        let writer = match std::thread::Builder::new()
            .name("discovery-store".into())
            .spawn(move || w.run(&ws))
        {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the discovery writer");
                None
            }
        };
        DiscoveryRun {
            learner,
            vendors,
            written,
            queue,
            window_ns,
            threads,
            writer_stop,
            writer,
        }
    }

    /// Traffic keeps devices present: (MAC, first, last frame sent) per minute, from each
    /// flush interval's delta (`Delta::sent_spans`).
    pub fn traffic(&self, spans: impl Iterator<Item = (MacAddr, i64, i64)>) {
        let mut l = self.learner.lock().unwrap_or_else(|p| p.into_inner());
        for (mac, first, last) in spans {
            l.traffic(mac, first, last);
        }
    }

    /// Queues what the learner gathered since the last batch for the flusher's transaction,
    /// called by the flush schedule just before each flush (and at stop, before the last one):
    /// the batch is committed with the flush, and its MACs count as stored once it is.
    pub fn gather(&self) {
        let batch = take_batch(&self.learner, &self.vendors);
        if batch.is_empty() {
            return;
        }
        let macs: Vec<MacAddr> = batch.iter().map(|f| f.mac).collect();
        let (written, window_ns) = (self.written.clone(), self.window_ns);
        self.queue.push_then(
            "discovery",
            move |sp, path| {
                let w = write_discovery_in(sp, path, &batch, window_ns, guess)?;
                tracing::debug!(devices = w.devices, merged = w.merged, "discovery written");
                Ok(())
            },
            move || remember(&written, &macs),
        );
    }

    /// Waits for the capture and sweep threads (they stop on the shared stop flag) and the
    /// writer, then queues the last batch: the final flush writes it.
    pub fn join(mut self) {
        for t in std::mem::take(&mut self.threads) {
            if t.join().is_err() {
                tracing::error!("a discovery thread panicked");
            }
        }
        self.writer_stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take()
            && w.join().is_err()
        {
            tracing::error!("the discovery writer panicked");
        }
        self.gather();
    }
}

/// The learner's batch so far, with the vendors of MACs not looked up before filled in.
fn take_batch(learner: &SharedLearner, vendors: &Mutex<Vendors>) -> Vec<MacFacts> {
    let (mut batch, dropped) = {
        let mut l = learner.lock().unwrap_or_else(|p| p.into_inner());
        let d = l.dropped();
        (l.take(), d)
    };
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "more MACs than a discovery batch holds: a MAC flood?"
        );
    }
    if !batch.is_empty() {
        let mut v = vendors.lock().unwrap_or_else(|p| p.into_inner());
        let Vendors { oui, looked_up } = &mut *v;
        fill_vendors(oui, &mut batch, looked_up);
    }
    batch
}

/// The writer thread: a MAC the database has not got yet is written at once (within
/// [`NEWCOMER_WRITE`]), with the rest of the learner's batch, on its own connection; everything
/// else waits for the flush ([`DiscoveryRun::gather`]).
struct Writer {
    db: PathBuf,
    learner: SharedLearner,
    vendors: Arc<Mutex<Vendors>>,
    written: Written,
    queue: WriteQueue,
    window_ns: i64,
}

impl Writer {
    fn run(self, stop: &AtomicBool) {
        let mut store: Option<Store> = None;
        let mut next_look = Instant::now() + NEWCOMER_WRITE;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(sweep::STOP_CHECK);
            let now = Instant::now();
            if now < next_look {
                continue;
            }
            next_look = now + NEWCOMER_WRITE;
            let newcomer = {
                let w = self.written.lock().unwrap_or_else(|p| p.into_inner());
                let l = self.learner.lock().unwrap_or_else(|p| p.into_inner());
                l.has_unknown(&w)
            };
            if !newcomer {
                continue;
            }
            let batch = take_batch(&self.learner, &self.vendors);
            if batch.is_empty() {
                continue;
            }
            if store.is_none() {
                match Store::open(&self.db) {
                    Ok(s) => store = Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "discovery cannot open the database; new devices are written with the next flush");
                    }
                }
            }
            let written = store
                .as_mut()
                .map(|s| s.write_discovery(&batch, self.window_ns, guess));
            match written {
                Some(Ok(w)) => {
                    tracing::debug!(
                        devices = w.devices,
                        merged = w.merged,
                        "new devices written"
                    );
                    let macs: Vec<MacAddr> = batch.iter().map(|f| f.mac).collect();
                    remember(&self.written, &macs);
                }
                other => {
                    if let Some(Err(e)) = other {
                        tracing::warn!(error = %e, "writing new devices failed; they are written with the next flush");
                    }
                    // The flush takes them (and retries until a commit has them).
                    let window_ns = self.window_ns;
                    let macs: Vec<MacAddr> = batch.iter().map(|f| f.mac).collect();
                    let written = self.written.clone();
                    self.queue.push_then(
                        "discovery",
                        move |sp, path| {
                            write_discovery_in(sp, path, &batch, window_ns, guess).map(|_| ())
                        },
                        move || remember(&written, &macs),
                    );
                }
            }
        }
    }
}
