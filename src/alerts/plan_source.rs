//! The data plan and quotas as a rule source of the alert engine: what `plan::alert_situations`
//! says is due becomes a [`Condition`].
//!
//! It owns only the translation. Which thresholds are due, and that each fires once per window,
//! is the plan module's; cooldown, quiet hours and delivery are the engine's. It must never
//! compute usage itself.

use super::run::Source;
use super::{Condition, ConditionState, Severity};
use crate::plan;
use crate::store::Store;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A source for `run::Sources::extra`, evaluated in the household time zone `tz`.
pub fn source(tz: TimeZone) -> Source {
    Box::new(move |store: &Store, now: i64| situations(store, &tz, now))
}

/// The conditions due at `now`, each recorded as sent so the plan side does not repeat it.
pub fn situations(store: &Store, tz: &TimeZone, now: i64) -> Vec<Condition> {
    let Ok(at) = Timestamp::from_second(now) else {
        return Vec::new();
    };
    let report = match store.plan_report(tz, at) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the data plan could not be evaluated for alerts");
            return Vec::new();
        }
    };
    let state = match store.plan_alert_state(now) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "the plan alert state could not be read");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for a in plan::alert_situations(&report.status, &report.quotas, &state) {
        // Recorded before the engine sees it: at most once per window, even if the process
        // stops between here and delivery (the engine's outbox keeps what it accepted).
        if let Err(e) = store.mark_plan_alert(&a, now) {
            tracing::warn!(error = %e, rule = a.rule_id, "a plan alert could not be recorded; it is skipped now and retried next evaluation");
            continue;
        }
        out.push(Condition {
            rule: a.rule_id.to_string(),
            // The dedup key is unique per threshold and window, so 50 % and 90 % of one cycle
            // are separate alerts, and next cycle's 50 % is new again.
            subject: a.dedup_key.clone(),
            severity: match a.severity {
                plan::Severity::Info => Severity::Info,
                plan::Severity::Warning => Severity::Warning,
                plan::Severity::Critical => Severity::Critical,
            },
            title: a.title,
            body: a.message,
            facts: vec![
                ("Window starts".into(), a.window_start.to_string()),
                ("Window ends".into(), a.window_end.to_string()),
            ],
            links: vec![("See the data plan".into(), "/plan".into())],
            state: ConditionState::Event,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};
    use crate::plan::{CycleRule, Plan};

    #[test]
    fn a_crossed_threshold_becomes_one_event_per_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("a.db")).unwrap();
        let tz = TimeZone::UTC;
        let now: i64 = "2026-04-10T12:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second();
        let plan = Plan {
            allowance_bytes: Some(10_000_000_000),
            cycle: CycleRule::Monthly { start_day: 1 },
            ..Plan::default()
        };
        store.set_plan(&plan, now).unwrap();
        let phone = MacAddr([0x02, 0, 0, 0, 0, 1]);
        // 6 GB downloaded this cycle: the 50 % threshold is crossed, 75 % is not.
        let minute = now - 3600 - (now % 60);
        let counts = Counts {
            frames_received: 1,
            bytes_received: 6_000_000_000,
            internet_download_bytes: 6_000_000_000,
            ..Counts::default()
        };
        store
            .write_flush(
                &[MinuteUsage {
                    mac: phone,
                    minute,
                    counts,
                }],
                &[Sighting {
                    mac: phone,
                    first_seen: minute * 1_000_000_000,
                    last_seen: minute * 1_000_000_000,
                    is_gateway: false,
                }],
            )
            .unwrap();
        let first = situations(&store, &tz, now);
        let thresholds: Vec<&Condition> = first
            .iter()
            .filter(|c| c.rule == plan::rule::THRESHOLD)
            .collect();
        assert_eq!(thresholds.len(), 1, "{first:#?}");
        assert_eq!(thresholds[0].state, ConditionState::Event);
        assert!(
            thresholds[0].title.contains("50"),
            "{}",
            thresholds[0].title
        );
        // Recorded: the next evaluation in the same cycle raises nothing new for it.
        let again = situations(&store, &tz, now + 60);
        assert!(
            again.iter().all(|c| c.rule != plan::rule::THRESHOLD),
            "{again:#?}"
        );
    }
}
