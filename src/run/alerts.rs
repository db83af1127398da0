//! The alert threads of `lanmeter run`: the evaluation every `alert_interval_secs` and one
//! outbox worker per channel (email, webhook and the push services), each with its own database connection. What they
//! evaluate and deliver is [`crate::alerts`]'s; this file only starts, paces and joins them.

use crate::alerts::AlertError;
use crate::alerts::deliver;
use crate::alerts::engine::Policy;
use crate::alerts::mail::Mailer;
use crate::alerts::render::LinkCtx;
use crate::alerts::run::{EvalMemory, Sources, channels, evaluate};
use crate::config::Config;
use crate::config::settings::Live;
use crate::store::Store;
use crate::store::batch::WriteQueue;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the outbox is checked for due messages: one indexed read.
const DELIVERY_TICK: Duration = Duration::from_secs(1);

/// Starts the alert thread; it returns when `stop` is set. `queue` is the flusher's: an active
/// alert's refresh each evaluation waits for the next flush there (no commit of its own).
pub fn spawn(
    cfg: Config,
    db: PathBuf,
    sources: Sources,
    queue: Option<WriteQueue>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || run(&cfg, &db, sources, queue, &stop))
}

/// Starts one outbox worker per channel. Each has its own connection and runtime, so a
/// receiver that stalls for `delivery_timeout_secs` per message holds up only its own
/// channel's messages, never the other channel or the rule evaluation.
fn spawn_workers(
    cfg: &Config,
    db: &Path,
    live: Option<&Live>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    if let Err(e) = Mailer::from_config(cfg) {
        tracing::error!(error = %e, "email is misconfigured; messages wait in the outbox");
    }
    let mut workers = Vec::new();
    for channel in deliver::CHANNELS {
        let (cfg, db, stop, live) = (
            cfg.clone(),
            db.to_path_buf(),
            Arc::clone(stop),
            live.cloned(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("outbox-{channel}"))
            .spawn(move || {
                if let Err(e) = deliver_loop(&cfg, &db, live.as_ref(), channel, &stop) {
                    tracing::error!(channel, error = %e, "an outbox worker stopped: its messages wait until lanmeter restarts");
                }
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                tracing::error!(channel, error = %e, "cannot start an outbox worker: its messages wait until lanmeter restarts");
            }
        }
    }
    workers
}

/// Works `channel`'s part of the outbox every [`DELIVERY_TICK`] until `stop` is set.
fn deliver_loop(
    cfg: &Config,
    db: &Path,
    live: Option<&Live>,
    channel: &str,
    stop: &AtomicBool,
) -> Result<(), AlertError> {
    let ch = channels(cfg, live)?;
    let mut store: Option<Store> = None;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now_i = Instant::now();
        if now_i < next {
            continue;
        }
        next = now_i + DELIVERY_TICK;
        if store.is_none() {
            match Store::open(db) {
                Ok(s) => store = Some(s),
                Err(e) => {
                    tracing::warn!(channel, error = %e, "the outbox worker cannot open the database; retrying");
                    next = now_i + Duration::from_secs(cfg.alert_interval_secs);
                    continue;
                }
            }
        }
        let Some(s) = store.as_mut() else { continue };
        let clock = || jiff::Timestamp::now().as_second();
        if let Err(e) = deliver::work_channel(s, &ch, channel, clock, cfg.outbox_retry_secs as i64)
        {
            tracing::warn!(channel, error = %e, "outbox pass failed; retried");
            store = None;
        }
    }
    Ok(())
}

fn run(
    cfg: &Config,
    db: &Path,
    mut sources: Sources,
    queue: Option<WriteQueue>,
    stop: &Arc<AtomicBool>,
) {
    let workers = spawn_workers(cfg, db, sources.live.as_ref(), stop);
    evaluate_loop(cfg, db, &mut sources, queue.as_ref(), stop);
    for w in workers {
        if w.join().is_err() {
            tracing::error!("an outbox worker panicked");
        }
    }
}

/// Evaluates the rules every `alert_interval_secs` until `stop` is set; failures are logged
/// and retried at the next interval.
fn evaluate_loop(
    start_cfg: &Config,
    db: &Path,
    sources: &mut Sources,
    queue: Option<&WriteQueue>,
    stop: &AtomicBool,
) {
    let cfg = start_cfg;
    let email = cfg.smtp_host.is_some();
    let interval = Duration::from_secs(cfg.alert_interval_secs);
    let mut store: Option<Store> = None;
    let mut memory = EvalMemory::new();
    let mut next_eval = Instant::now();
    tracing::info!(
        email,
        webhook = cfg.webhook_url.is_some(),
        interval_secs = cfg.alert_interval_secs,
        "alerts running"
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now_i = Instant::now();
        if now_i < next_eval {
            continue;
        }
        next_eval = now_i + interval;
        if store.is_none() {
            match Store::open(db) {
                Ok(mut s) => {
                    if let Some(q) = queue {
                        s.defer_to(q.clone());
                    }
                    store = Some(s);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "alerts cannot open the database; retrying");
                    continue;
                }
            }
        }
        let Some(s) = store.as_mut() else { continue };
        let current = sources.live.as_ref().map(|l| l.get());
        let cfg: &Config = current.as_deref().unwrap_or(start_cfg);
        // Rebuilt each time (a few fields), so a changed rule or quiet hour applies now.
        let policy = Policy::from_config(cfg, email);
        let now = jiff::Timestamp::now().as_second();
        let evaluated = s
            .link_secret()
            .map_err(AlertError::from)
            .and_then(|secret| {
                let links = LinkCtx::new(cfg, secret);
                evaluate(s, cfg, &policy, &links, sources, &mut memory, now)
            });
        if let Err(e) = evaluated {
            tracing::warn!(error = %e, "alert evaluation failed; retried next interval");
            store = None;
        }
    }
}
