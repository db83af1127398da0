//! The internet probe thread (issue 27): a round every `internet_probe_interval_secs` (pings to
//! the gateway, the resolvers and the internet targets, and one DNS resolution), classified and
//! folded into the outage log and per-minute rows by [`crate::internet`], written through its
//! own database connection.
//!
//! Finished minutes are queued for the flusher's transaction ([`crate::store::batch`]), so they
//! reach the database with the accounting rows and cost no commit of their own; an outage is
//! written the moment it opens or closes, on the thread's own connection. A write the database
//! refuses is kept for the next try (bounded). The probes are optional: if the ICMP socket cannot be opened the error is
//! logged with advice and the daemon carries on.

use crate::config::Config;
use crate::internet::probe::{self, Pinger};
use crate::internet::{
    self, MinuteAgg, MinuteRow, OutageEvent, OutageTracker, Round, SharedNow, State,
};
use crate::store::Store;
use crate::store::batch::WriteQueue;
use crate::store::internet::{prune_internet_in, write_internet_in};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Minutes kept while the database refuses writes: a day.
const MAX_PENDING_MINUTES: usize = 1_440;
/// At most this many resolvers are asked and pinged.
const MAX_RESOLVERS: usize = 3;
/// Probe minutes are pruned this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

pub struct InternetRun {
    thread: JoinHandle<()>,
}

/// Starts the probe thread unless the probes are off or cannot run.
pub fn start(
    cfg: &Config,
    db: &Path,
    now: SharedNow,
    queue: WriteQueue,
    stop: Arc<AtomicBool>,
) -> Option<InternetRun> {
    if cfg.internet_probe_interval_secs == 0 {
        tracing::info!("internet probes are off (internet_probe_interval_secs = 0)");
        return None;
    }
    let pinger = match Pinger::open() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "the internet probes are not running; byte accounting carries on");
            return None;
        }
    };
    let store = match Store::open(db) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the internet probes cannot open the database; byte accounting carries on");
            return None;
        }
    };
    let cfg = cfg.clone();
    let thread = std::thread::Builder::new()
        .name("internet".into())
        .spawn(move || Prober::new(cfg, store, pinger, now, queue).run(&stop))
        .map_err(|e| tracing::error!(error = %e, "cannot start the internet probe thread"))
        .ok()?;
    Some(InternetRun { thread })
}

impl InternetRun {
    /// Waits for the thread (the stop flag is the daemon's); it writes what it has first.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the internet probe thread panicked");
        }
    }
}

fn wall_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

struct Prober {
    cfg: Config,
    store: Store,
    pinger: Pinger,
    now: SharedNow,
    tracker: OutageTracker,
    agg: MinuteAgg,
    pending_minutes: Vec<MinuteRow>,
    pending_events: Vec<OutageEvent>,
    /// The flusher's queue: finished minutes go there.
    queue: WriteQueue,
    gateway_pingable: bool,
}

impl Prober {
    fn new(
        cfg: Config,
        mut store: Store,
        pinger: Pinger,
        now: SharedNow,
        queue: WriteQueue,
    ) -> Prober {
        let interval_ns = (cfg.internet_probe_interval_secs as i64).saturating_mul(1_000_000_000);
        // A restart within a few rounds (or five minutes) continues the outage it interrupted.
        let resume = store
            .internet_outage_on_start(wall_ns(), (3 * interval_ns).max(300_000_000_000))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the outage log; starting a new one");
                None
            });
        let tracker = resume.map_or_else(OutageTracker::default, OutageTracker::resume);
        now.update(|n| n.outage = tracker.open());
        Prober {
            cfg,
            store,
            pinger,
            now,
            tracker,
            agg: MinuteAgg::default(),
            pending_minutes: Vec::new(),
            pending_events: Vec::new(),
            queue,
            gateway_pingable: false,
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let interval = Duration::from_secs(self.cfg.internet_probe_interval_secs);
        let flush_every = Duration::from_secs(self.cfg.flush_interval_secs);
        tracing::info!(
            interval_secs = interval.as_secs(),
            raw_socket = self.pinger.is_raw(),
            targets = ?self.cfg.internet_targets,
            "internet probes running"
        );
        let mut next = Instant::now();
        let mut next_flush = next + flush_every;
        let mut next_prune = next;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                next += interval;
                // Fell behind (a suspended machine): skip the missed rounds, keep the rhythm.
                while next <= now {
                    next += interval;
                }
                let at_ns = wall_ns();
                self.round(at_ns, interval);
            }
            let now = Instant::now();
            if now >= next_flush {
                next_flush = now + flush_every;
                // Only what an own write (an outage) could not store waits here.
                if !self.pending_minutes.is_empty() || !self.pending_events.is_empty() {
                    self.write(false);
                }
            }
            if now >= next_prune {
                next_prune = now + PRUNE_EVERY;
                self.prune();
            }
            std::thread::sleep(
                Duration::from_millis(50)
                    .min(next.saturating_duration_since(Instant::now()))
                    .max(Duration::from_millis(5)),
            );
        }
        // The minute in progress too; the daemon's final flush (after this thread is joined)
        // writes it.
        let rest = self.agg.take(wall_ns(), true);
        self.pending_minutes.extend(rest);
        self.queue_pending();
        tracing::info!("internet probes stopped");
    }

    fn resolvers(&self) -> Vec<IpAddr> {
        let mut r = if self.cfg.internet_dns_servers.is_empty() {
            internet::system_resolvers()
        } else {
            self.cfg.internet_dns_servers.clone()
        };
        r.truncate(MAX_RESOLVERS);
        r
    }

    fn round(&mut self, at_ns: i64, interval: Duration) {
        // Replies must be in before the next round; two seconds is an eternity for a ping.
        let timeout = interval
            .mul_f64(0.8)
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(100));
        let gateway = internet::default_gateway();
        let resolvers = self.resolvers();
        // Resolvers on this machine (a stub or a local cache) say nothing about the network.
        let resolver_pings: Vec<Ipv4Addr> = resolvers
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v4) if !v4.is_loopback() => Some(*v4),
                _ => None,
            })
            .collect();
        let groups = [
            gateway.into_iter().collect::<Vec<_>>(),
            resolver_pings,
            self.cfg.internet_targets.clone(),
        ];
        let count = self.cfg.internet_probe_pings;
        let name = self.cfg.internet_dns_name.clone();
        let pinger = &mut self.pinger;
        let (pings, dns) = std::thread::scope(|s| {
            let dns = s.spawn(|| probe::resolve(&resolvers, &name, timeout));
            let pings = pinger.ping(&groups, count, timeout);
            (pings, dns.join().unwrap_or(Some(Err(()))))
        });
        let mut pings = pings.into_iter();
        let round = Round {
            gateway: pings.next().unwrap_or_default(),
            resolvers: pings.next().unwrap_or_default(),
            internet: pings.next().unwrap_or_default(),
            dns,
        };
        self.gateway_pingable |= round.gateway.answered();
        let state = internet::classify(&round, self.gateway_pingable);
        tracing::debug!(?state, ?round, "internet probe round");
        let events = self.tracker.feed(state, at_ns);
        for e in &events {
            match e {
                OutageEvent::Opened(o) => tracing::warn!(
                    kind = o.kind.as_str(),
                    start_ns = o.start_ns,
                    "internet outage began"
                ),
                OutageEvent::Closed(o) => tracing::warn!(
                    kind = o.kind.as_str(),
                    start_ns = o.start_ns,
                    duration_ms = (o.end_ns.unwrap_or(o.start_ns) - o.start_ns) / 1_000_000,
                    "internet outage ended"
                ),
            }
        }
        self.agg.add(at_ns, &round, state);
        let open = self.tracker.open();
        let finished = self.agg.take(wall_ns(), false);
        let outages = events
            .iter()
            .filter(|e| matches!(e, OutageEvent::Opened(_)))
            .count() as u64;
        let sent = u64::from(round.gateway.sent + round.resolvers.sent + round.internet.sent);
        let received = (round.gateway.rtts_us.len()
            + round.resolvers.rtts_us.len()
            + round.internet.rtts_us.len()) as u64;
        self.now.update(|n| {
            n.at_ns = Some(at_ns);
            n.state = Some(state);
            n.outage = open;
            n.rounds += 1;
            n.sent += sent;
            n.received += received;
            n.outages += outages;
            if let Some(last) = finished.last() {
                n.last_minute = Some(last.clone());
            }
        });
        self.pending_minutes.extend(finished);
        if !events.is_empty() {
            self.pending_events.extend(events);
            // An outage is written at once: a power cut must not lose its start or end.
            self.write(false);
        } else if !self.pending_minutes.is_empty() && self.pending_events.is_empty() {
            self.queue_pending();
        }
        if state == State::Unknown {
            tracing::debug!("nothing to probe: no gateway, no target, no resolver");
        }
    }

    fn write(&mut self, all: bool) {
        if all {
            let rest = self.agg.take(wall_ns(), true);
            self.pending_minutes.extend(rest);
        }
        let open_seen = self.tracker.open().map(|_| wall_ns());
        match self
            .store
            .write_internet(&self.pending_minutes, &self.pending_events, open_seen)
        {
            Ok(()) => {
                self.pending_minutes.clear();
                self.pending_events.clear();
            }
            Err(e) => {
                tracing::warn!(error = %e, pending_minutes = self.pending_minutes.len(), "writing internet probes failed; retrying later");
                if self.pending_minutes.len() > MAX_PENDING_MINUTES {
                    let excess = self.pending_minutes.len() - MAX_PENDING_MINUTES;
                    self.pending_minutes.drain(..excess);
                }
            }
        }
    }

    /// Hands the finished minutes (and any outage event an own write could not store) to the
    /// flusher's next transaction.
    fn queue_pending(&mut self) {
        if self.pending_minutes.is_empty() && self.pending_events.is_empty() {
            return;
        }
        let minutes = std::mem::take(&mut self.pending_minutes);
        let events = std::mem::take(&mut self.pending_events);
        let open_seen = self.tracker.open().map(|_| wall_ns());
        self.queue.push("internet", move |sp, path| {
            write_internet_in(sp, path, &minutes, &events, open_seen)
        });
    }

    fn prune(&mut self) {
        let days = i64::from(self.cfg.keep_hours_days.max(self.cfg.keep_minutes_days));
        let before = wall_ns() / 1_000_000_000 - days * 86_400;
        // With the flush's rows: an hourly delete would otherwise be a commit of its own.
        self.queue.push("internet", move |sp, path| {
            prune_internet_in(sp, path, before)
        });
    }
}
