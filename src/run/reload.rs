//! The configuration reload on SIGHUP: reread the file and the environment, apply at once the
//! settings only the daemon's loop reads, and keep every other change for the next restart
//! (logged, and shown on /system through telemetry). An invalid file keeps the running
//! configuration.

use crate::config::Config;
use crate::telemetry::{ConfigStatus, Telemetry};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A configuration reload on SIGHUP: the flag the signal sets, and how to read the
/// configuration again (the file and environment, with the command line's overrides).
pub struct Reload {
    pub requested: Arc<AtomicBool>,
    pub load: Box<dyn Fn() -> anyhow::Result<Config> + Send>,
}

/// Settings a reload applies at once: those only this loop reads. Any other change (the time
/// zone, which the web side and the alert thread also use, included) is logged and shown as
/// needing a restart, and keeps its running value until then.
const RELOADABLE: &[&str] = &[
    "flush_interval_secs",
    "gateway",
    "keep_minutes_days",
    "keep_hours_days",
    "keep_days_months",
    "keep_months_years",
    "backup_hour",
    "backup_keep",
    "backup_dir",
];

impl Reload {
    /// Whether a reload was asked for since the last call.
    pub fn requested(&self) -> bool {
        self.requested.swap(false, Ordering::Relaxed)
    }

    /// Rereads the configuration into `cfg` (the reloadable keys only) and records the outcome.
    /// Returns whether the new configuration was valid (and so applied).
    pub fn apply(&self, cfg: &mut Config, telemetry: &Telemetry) -> bool {
        match (self.load)() {
            Ok(new) => {
                let needs_restart = changed_keys(cfg, &new)
                    .into_iter()
                    .filter(|k| !RELOADABLE.contains(&k.as_str()))
                    .collect::<Vec<_>>();
                // Settings that need a restart keep their running values, so what is shown
                // stays what is in force.
                *cfg = Config {
                    flush_interval_secs: new.flush_interval_secs,
                    gateway: new.gateway,
                    keep_minutes_days: new.keep_minutes_days,
                    keep_hours_days: new.keep_hours_days,
                    keep_days_months: new.keep_days_months,
                    keep_months_years: new.keep_months_years,
                    backup_hour: new.backup_hour,
                    backup_keep: new.backup_keep,
                    backup_dir: new.backup_dir.clone(),
                    ..cfg.clone()
                };
                if needs_restart.is_empty() {
                    tracing::info!("configuration reloaded");
                } else {
                    tracing::warn!(settings = ?needs_restart, "configuration reloaded; these changed settings take effect at the next restart (systemctl restart lanmeter)");
                }
                telemetry.record_reload(ConfigStatus {
                    reloaded_at: Some(jiff::Timestamp::now()),
                    error: None,
                    needs_restart,
                });
                true
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(error = %error, "the configuration was not reloaded: the new file is invalid, so the running configuration stays in force; fix the file and send SIGHUP again (systemctl reload lanmeter)");
                telemetry.record_reload(ConfigStatus {
                    reloaded_at: Some(jiff::Timestamp::now()),
                    error: Some(error),
                    needs_restart: Vec::new(),
                });
                false
            }
        }
    }
}

/// Top-level settings whose values differ between `old` and `new`.
fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let table = |c: &Config| {
        c.to_toml_string()
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .unwrap_or_default()
    };
    let (a, b) = (table(old), table(new));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
