//! Alerts: what is worth telling the household, and getting it delivered.
//!
//! Map: [`rules`] turns facts into [`Condition`]s (pure: no clock, no I/O); [`engine`] applies
//! the lifecycle to conditions (deduplication, cooldown, auto-resolve, quiet hours, digest) and
//! writes alerts and outbox messages through the store; [`deliver`] works the outbox (retries
//! with backoff, expiry); [`mail`] (the only lettre user) and [`webhook`] send; [`render`] writes
//! the messages (askama templates in `templates/emails/`); [`links`] signs acknowledge links;
//! [`run`] is what the alert thread evaluates (facts, rules, engine; the threads themselves
//! start in `run::alerts`) and [`summary`] the weekly summary;
//! [`plan_source`] turns the data plan's and quotas' due alerts into conditions;
//! [`internet_source`] the internet probes' outages, loss and latency.
//!
//! It must never touch the capture path: it reads the database (its own connection, on its own
//! thread) and a copy of the capture counters the daemon hands it.
//!
//! # Plugging in a rule source (quota rules from `plan`)
//!
//! Every rule produces the same value, a [`Condition`]. A source evaluates what it knows and
//! returns one condition per subject it looked at, `Active` while the problem holds and
//! `Cleared` once it does not (so the alert resolves itself), or `Event` for something that
//! happened once (it stays until acknowledged). The engine does the rest:
//!
//! ```ignore
//! let conds: Vec<Condition> = plan_status.iter().map(|q| Condition {
//!     rule: "quota".into(),
//!     subject: format!("quota:{}", q.name),     // dedup key: one open alert per rule + subject
//!     severity: Severity::Warning,
//!     title: format!("{} used {} of its quota", q.name, q.percent),
//!     body: "...".into(),
//!     facts: vec![("Used".into(), q.used.to_string())],
//!     links: vec![("See the plan".into(), "/plan".into())],
//!     state: if q.over { ConditionState::Active } else { ConditionState::Cleared },
//! }).collect();
//! engine.apply(&mut store, &conds, now)?;   // or push them into `run::Sources::extra`
//! ```

pub mod coverage_source;
pub mod deliver;
pub mod engine;
pub mod internet_source;
pub mod links;
pub mod mail;
pub mod plan_source;
pub mod push;
pub mod render;
pub mod rules;
pub mod run;
pub mod summary;
pub mod webhook;

use serde::{Deserialize, Serialize};

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Whether a condition holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditionState {
    /// The problem holds now; it resolves when the same source later reports `Cleared`.
    Active,
    /// The problem no longer holds: an open alert of this rule and subject resolves.
    Cleared,
    /// Something happened once (a device joined): alerted once per subject, ever; it stays
    /// open until someone acknowledges it.
    Event,
}

/// What every rule produces, whatever its source: the common currency of the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// The rule's stable name (`new_device`, `unusual_usage`, `quota` …).
    pub rule: String,
    /// What the alert is about, for deduplication and cooldown (`device:12`, `disk`).
    pub subject: String,
    pub severity: Severity,
    /// One line, used as the email subject.
    pub title: String,
    /// A few sentences a person can act on.
    pub body: String,
    /// `[label, value]` facts shown as a table.
    pub facts: Vec<(String, String)>,
    /// `[label, dashboard path]` links ("Name this device" → `/devices/12`).
    pub links: Vec<(String, String)>,
    pub state: ConditionState,
}

/// Failures of the alert side, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Query(#[from] crate::store::query::QueryError),
    #[error("rendering the {what} message failed: {detail} (a lanmeter bug: please report it)")]
    Render { what: &'static str, detail: String },
    #[error("cannot start the alert thread's runtime: {0}")]
    Runtime(std::io::Error),
}

/// Formats bytes for people: 1.5 GB, 320 MB (decimal units, as providers bill).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[i])
    } else {
        format!("{v:.0} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_a_bill() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
        assert_eq!(human_bytes(320_000_000), "320 MB");
    }
}
