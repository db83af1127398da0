//! The router-counter thread (`router_source` not "off"): finds the router ([`crate::router::
//! connect`]), reads its WAN counters every `router_poll_secs`, turns them into bytes with the
//! counter tracker and adds them to the current minute in the database, with the status the
//! API, `/metrics` and the System page show. Each reading is queued for the flusher's
//! transaction ([`crate::store::batch`]: no commit of its own, the devices' bytes and the
//! router's land together); a change of state (stuck, unreachable) is written at once on the
//! thread's own connection. It never touches the meter.

use crate::config::{Config, RouterSource};
use crate::router::counter::{Event, Step, Tracker};
use crate::router::{self, Connection, RouterStatus};
use crate::store::Store;
use crate::store::batch::WriteQueue;
use crate::store::router::{RouterMinute, RouterPoll, add_router_minutes_in};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Searching again after a failure: soon at first, then at most every minute.
const RETRY_MIN: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// An unchanged status with no readings to go with it is written this often.
const IDLE_STATUS_WRITE: Duration = Duration::from_secs(3600);

pub struct RouterRun {
    thread: std::thread::JoinHandle<()>,
}

impl RouterRun {
    /// Starts the thread unless `router_source` is "off"; `None` then or when it cannot start.
    pub fn start(
        cfg: &Config,
        db: PathBuf,
        telemetry: crate::telemetry::Telemetry,
        queue: WriteQueue,
        stop: Arc<AtomicBool>,
    ) -> Option<RouterRun> {
        if cfg.router_source == RouterSource::Off {
            return None;
        }
        let cfg = cfg.clone();
        match std::thread::Builder::new()
            .name("router".into())
            .spawn(move || Poller::new(cfg, db, telemetry, queue).run(&stop))
        {
            Ok(thread) => Some(RouterRun { thread }),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the router-counter thread; coverage is off");
                None
            }
        }
    }

    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the router-counter thread panicked");
        }
    }
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The host part of a connection's identity: the same router on another port (miniupnpd picks
/// a new one at each start unless configured) keeps the baseline.
fn host_of(identity: &str) -> &str {
    let rest = identity.split_once("://").map_or(identity, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    host.rsplit_once(':')
        .filter(|(h, _)| !h.ends_with(']') || h.starts_with('['))
        .map_or(host, |(h, _)| h)
}

struct Poller {
    cfg: Config,
    db: PathBuf,
    /// Where today's coverage goes for the placement verdict (System page, wizard, API).
    telemetry: crate::telemetry::Telemetry,
    store: Option<Store>,
    conn: Option<Connection>,
    /// The router the tracker's baseline belongs to.
    router_host: Option<String>,
    tracker: Tracker,
    status: RouterStatus,
    last_read: Option<Instant>,
    last_write: Option<Instant>,
    /// Polls not written yet, per minute: queued for the next flush at each reading (a commit
    /// every poll would be 8,640 a day on the SD card, docs/DURABILITY.md), kept here only while
    /// a write of their own (a change of state) is refused.
    pending: std::collections::BTreeMap<i64, RouterMinute>,
    /// The flusher's queue.
    queue: WriteQueue,
    /// Set once a flush has committed queued readings: today's coverage is read again.
    committed: Arc<AtomicBool>,
    retry: Duration,
}

impl Poller {
    fn new(
        cfg: Config,
        db: PathBuf,
        telemetry: crate::telemetry::Telemetry,
        queue: WriteQueue,
    ) -> Poller {
        Poller {
            cfg,
            db,
            telemetry,
            store: None,
            conn: None,
            router_host: None,
            tracker: Tracker::new(),
            status: RouterStatus {
                state: "searching".into(),
                ..RouterStatus::default()
            },
            last_read: None,
            last_write: None,
            pending: std::collections::BTreeMap::new(),
            queue,
            committed: Arc::new(AtomicBool::new(false)),
            retry: RETRY_MIN,
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let interval = Duration::from_secs(self.cfg.router_poll_secs);
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                next = now + self.turn(now, interval);
            }
            if self.committed.swap(false, Ordering::Relaxed) {
                self.update_coverage();
            }
            std::thread::sleep(
                Duration::from_millis(100)
                    .min(next.saturating_duration_since(Instant::now()))
                    .max(Duration::from_millis(10)),
            );
        }
        // What was read since the last write is not left behind at a clean stop: queued, the
        // daemon's final flush (after this thread is joined) writes it.
        self.queue_pending();
    }

    /// One search or reading; returns when the next is due.
    fn turn(&mut self, now: Instant, interval: Duration) -> Duration {
        if self.conn.is_none() {
            match router::connect(&self.cfg) {
                Ok(c) => {
                    let host = host_of(&c.identity()).to_string();
                    if self.router_host.as_deref() != Some(host.as_str()) {
                        self.tracker.forget();
                        self.last_read = None;
                        self.status = RouterStatus::default();
                    }
                    tracing::info!(source = c.kind(), router = %c.identity(), "reading the router's WAN counters");
                    self.status.source = Some(c.kind().into());
                    self.status.router = Some(c.identity());
                    self.router_host = Some(host);
                    self.conn = Some(c);
                    self.retry = RETRY_MIN;
                }
                Err(e) => {
                    let changed = self.status.message.as_deref() != Some(&e.to_string());
                    if changed {
                        tracing::warn!(error = %e, "the router's counters cannot be read; coverage is unknown until they can");
                    }
                    self.status.state = if self.status.source.is_some() {
                        "unreachable".into()
                    } else {
                        "searching".into()
                    };
                    self.status.message = Some(e.to_string());
                    self.write(None, now, changed);
                    let wait = self.retry;
                    self.retry = (self.retry * 2).min(RETRY_MAX);
                    return wait;
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return self.retry;
        };
        match conn.read() {
            Ok(r) => {
                let elapsed = self
                    .last_read
                    .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
                let baseline = !self.tracker.has_baseline();
                let step = self.tracker.update(r, elapsed);
                self.last_read = Some(now);
                let before = (self.status.state.clone(), self.status.message.clone());
                self.note(&step, r, baseline);
                let changed = before != (self.status.state.clone(), self.status.message.clone());
                let poll = RouterPoll {
                    bytes_up: step.bytes_up,
                    bytes_down: step.bytes_down,
                    stuck: step.stuck(),
                };
                self.write((!baseline).then_some(poll), now, changed);
                interval
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the router's counters failed; searching for it again");
                self.conn = None;
                self.status.state = "unreachable".into();
                self.status.message = Some(e.to_string());
                self.write(None, now, true);
                self.retry
            }
        }
    }

    /// Updates the status from one step.
    fn note(&mut self, step: &Step, r: router::counter::Reading, baseline: bool) {
        let s = &mut self.status;
        s.last_read_at = Some(now_secs());
        s.raw_bytes_up = Some(r.bytes_up);
        s.raw_bytes_down = Some(r.bytes_down);
        s.raw_packets_up = r.packets_up;
        s.raw_packets_down = r.packets_down;
        if baseline {
            s.baseline_bytes_up = Some(r.bytes_up);
            s.baseline_bytes_down = Some(r.bytes_down);
        }
        s.counted_bytes_up += step.bytes_up;
        s.counted_bytes_down += step.bytes_down;
        let mut message = None;
        for (dir, ev) in [("upload", step.up), ("download", step.down)] {
            match ev {
                Some(Event::Wrapped) => {
                    s.wraps += 1;
                    tracing::info!(direction = dir, "the router's 32-bit byte counter wrapped");
                }
                Some(Event::Reset) => {
                    s.resets += 1;
                    tracing::info!(
                        direction = dir,
                        "the router's byte counter started again (router or connection restart)"
                    );
                }
                Some(Event::Stuck { at }) => {
                    message = Some(format!(
                        "the router's {dir} byte counter is stuck at {at} while its packet counter moves: a firmware fault; its totals cannot be used until it moves again"
                    ));
                }
                None => {}
            }
        }
        if step.stuck() {
            s.stuck_polls += 1;
            if s.state != "stuck" {
                tracing::warn!(
                    message = message.as_deref().unwrap_or(""),
                    "router counter stuck"
                );
            }
            s.state = "stuck".into();
        } else {
            s.state = "ok".into();
        }
        s.message = message;
    }

    /// Queues the poll (if any) with the status for the next flush; writes at once, with its own
    /// commit, only when the state changed. With nothing read (no router found, or it is
    /// unreachable) an unchanged status is queued only hourly: the same sentence every flush
    /// would cost the SD card as much as the devices' own history (docs/DURABILITY.md).
    fn write(&mut self, poll: Option<RouterPoll>, now: Instant, changed: bool) {
        if let Some(p) = poll {
            let minute = now_secs().div_euclid(60) * 60;
            self.pending.entry(minute).or_default().add(p);
        }
        if changed {
            self.write_now(now);
            return;
        }
        let due = !self.pending.is_empty()
            || self
                .last_write
                .is_none_or(|t| now.duration_since(t) >= IDLE_STATUS_WRITE);
        if due {
            self.last_write = Some(now);
            self.queue_pending();
        }
    }

    /// Hands what was read, with the status, to the flusher's next transaction.
    fn queue_pending(&mut self) {
        let json = serde_json::to_string(&self.status).unwrap_or_else(|_| "{}".into());
        let minutes: Vec<(i64, RouterMinute)> =
            std::mem::take(&mut self.pending).into_iter().collect();
        let at = now_secs();
        let committed = self.committed.clone();
        self.queue.push_then(
            "router",
            move |sp, path| add_router_minutes_in(sp, path, &minutes, &json, at),
            move || committed.store(true, Ordering::Relaxed),
        );
    }

    /// Writes what was read and the status at once (a change of state), on the thread's own
    /// connection; kept for the next try when refused.
    fn write_now(&mut self, now: Instant) {
        if self.store.is_none() {
            match Store::open(&self.db) {
                Ok(s) => self.store = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "the router thread cannot open the database; retrying");
                    return;
                }
            }
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let json = serde_json::to_string(&self.status).unwrap_or_else(|_| "{}".into());
        let minutes: Vec<_> = self.pending.iter().map(|(m, p)| (*m, *p)).collect();
        match store.add_router_minutes(&minutes, &json, now_secs()) {
            Ok(()) => {
                self.last_write = Some(now);
                self.pending.clear();
                self.update_coverage();
            }
            // Kept for the next write; a locked database (a backup) is rare and brief. A
            // database that stays unwritable would grow this by one entry a minute.
            Err(e) => tracing::warn!(error = %e, "writing the router's counters failed"),
        }
    }

    /// Today's share, for the verdict; "today" ends two flush intervals back, as on the
    /// overview (the devices' bytes reach the database only at each flush).
    fn update_coverage(&mut self) {
        if self.store.is_none() {
            match Store::open(&self.db) {
                Ok(s) => self.store = Some(s),
                Err(_) => return,
            }
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let today = crate::router::coverage::coverage_today(
            store,
            &self.cfg.time_zone(),
            now_secs(),
            2 * self.cfg.flush_interval_secs,
        );
        self.telemetry.set_coverage(
            today
                .ok()
                .flatten()
                .and_then(|c| c.percent)
                .map(|p| p / 100.0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_router_is_known_by_its_host_whatever_the_port() {
        assert_eq!(
            host_of("http://192.168.77.1:5555/rootDesc.xml"),
            "192.168.77.1"
        );
        assert_eq!(
            host_of("http://192.168.77.1:40123/rootDesc.xml"),
            "192.168.77.1"
        );
        assert_eq!(host_of("snmp://10.0.0.1/ifIndex.3"), "10.0.0.1");
        assert_eq!(host_of("http://[fe80::1]:5000/x"), "[fe80::1]");
    }
}
