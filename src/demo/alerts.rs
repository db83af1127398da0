//! The demo's alerts: the real alert engine and outbox run on the demo database, as in the
//! daemon, so the showcase's Alerts page lists what its data should raise (the plan past its
//! allowance, quotas reached, the newcomer). Messages go nowhere unless the demo's config names
//! a mail server or webhook; otherwise they wait in the outbox like any undeliverable message.
use super::dashboard::Demo;
use crate::config::Config;
use crate::store::{Store, StoreError};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[derive(Debug, thiserror::Error)]
pub enum DemoAlertsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the demo's alert thread: {0}; the system is out of threads or memory")]
    Thread(#[from] std::io::Error),
}

/// Starts the alert thread (with the plan's quota rules) on `db`. The demo's history was
/// written just now, so the engine would take the whole household for its learning period and
/// skip the events already stored: instead the alerts count as installed when the history
/// starts, and only the newcomer's arrival is news.
pub fn spawn(
    demo: &Demo,
    cfg: &Config,
    db: &Path,
    days: u32,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, DemoAlertsError> {
    let s = Store::open(db)?;
    let now = jiff::Timestamp::now().as_second();
    s.set_alert_state(
        "installed_at",
        &(now - i64::from(days) * 86_400).to_string(),
    )?;
    let newcomer = s
        .device_events_after(0)?
        .into_iter()
        .find(|e| e.kind == "new_device" && e.mac == demo.newcomer)
        .map(|e| e.id);
    if let Some(id) = newcomer {
        s.set_alert_state("device_events_cursor", &(id - 1).to_string())?;
    }
    drop(s);
    Ok(crate::run::alerts::spawn(
        cfg.clone(),
        db.to_path_buf(),
        crate::alerts::run::Sources {
            extra: vec![crate::alerts::plan_source::source(cfg.time_zone())],
            ..Default::default()
        },
        // The demo has no flusher running beside it: every write commits at once.
        None,
        stop,
    )?)
}
