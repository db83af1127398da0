//! The coverage health check as a rule source of the alert engine: when lanmeter saw less than
//! `coverage_alert_percent` of the internet bytes the router counted over the last hour, the
//! "health" rule's `coverage` condition is active; it clears when coverage is back (or cannot be
//! said: no router readings, a stuck counter, too little traffic). The figure itself is
//! `router::coverage`'s.

use super::run::Source;
use super::{Condition, ConditionState, Severity};
use crate::config::settings::Live;
use crate::router::coverage::{self, CoverageReport};
use crate::store::Store;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The window the threshold must be missed over.
pub const WINDOW_SECS: i64 = 3600;

/// A source for `run::Sources::extra`; the threshold is reread from `live` when given.
/// `lag_secs` ends the window that far back: the router's bytes are stored every poll, the
/// devices' only at each flush, so the newest minutes would otherwise look uncovered.
pub fn source(tz: TimeZone, threshold: u32, lag_secs: u64, live: Option<Live>) -> Source {
    let lag = i64::try_from(lag_secs).unwrap_or(i64::MAX / 4);
    Box::new(move |store: &Store, now: i64| {
        // Part of the health rule: `alert_health = false` silences it with the others.
        let (threshold, health_on) = live.as_ref().map_or((threshold, true), |l| {
            let c = l.get();
            (c.coverage_alert_percent, c.alert_health)
        });
        if threshold == 0 || !health_on {
            return Vec::new();
        }
        let (Ok(from), Ok(to)) = (
            Timestamp::from_second(now - lag - WINDOW_SECS),
            Timestamp::from_second(now - lag),
        ) else {
            return Vec::new();
        };
        match coverage::coverage(store, &tz, from, to) {
            Ok(r) => vec![condition(&r, threshold, now)],
            Err(e) => {
                tracing::warn!(error = %e, "coverage could not be evaluated for alerts");
                Vec::new()
            }
        }
    })
}

/// The condition for one hour's coverage `r` against `threshold` percent. Active only when
/// the router's readings cover the whole hour (one missing hour of polls is no evidence).
pub fn condition(r: &CoverageReport, threshold: u32, _now: i64) -> Condition {
    let low = r.percent.filter(|p| *p < f64::from(threshold));
    Condition {
        rule: "health".into(),
        subject: "coverage".into(),
        severity: Severity::Warning,
        title: format!(
            "lanmeter saw only {:.0} % of the internet traffic your router counted in the last hour",
            low.unwrap_or_default()
        ),
        body: format!(
            "The router counted {} bytes up and {} down, lanmeter {} and {}. The Pi is probably \
             placed where part of the household's traffic passes by unseen (a switch port, a \
             Wi-Fi link): every figure on the dashboard is low by as much. See docs/INSTALL.md \
             on placement, and `sudo lanmeter doctor`.",
            r.router_bytes_up, r.router_bytes_down, r.lanmeter_bytes_up, r.lanmeter_bytes_down
        ),
        facts: vec![
            (
                "Coverage".into(),
                r.percent.map_or("unknown".into(), |p| format!("{p:.1} %")),
            ),
            ("Threshold".into(), format!("{threshold} %")),
        ],
        links: vec![("System".into(), "/system".into())],
        state: if low.is_some() {
            ConditionState::Active
        } else {
            ConditionState::Cleared
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::router::RouterUsage;

    fn hour(seen: u64, router: u64, stuck: u64) -> CoverageReport {
        coverage::report(
            (
                Timestamp::from_second(0).unwrap(),
                Timestamp::from_second(3600).unwrap(),
            ),
            (seen / 10, seen - seen / 10),
            RouterUsage {
                bytes_up: router / 10,
                bytes_down: router - router / 10,
                polls: 360,
                stuck_polls: stuck,
                exact: true,
            },
            true,
        )
    }

    #[test]
    fn low_coverage_over_the_hour_is_an_active_health_condition() {
        let c = condition(&hour(50_000_000, 100_000_000, 0), 80, 0);
        assert_eq!(
            (c.rule.as_str(), c.subject.as_str()),
            ("health", "coverage")
        );
        assert_eq!(c.state, ConditionState::Active);
        assert!(c.title.contains("only 50 %"), "{}", c.title);
        assert_eq!(
            condition(&hour(90_000_000, 100_000_000, 0), 80, 0).state,
            ConditionState::Cleared
        );
        // A stuck router counter says nothing about placement.
        assert_eq!(
            condition(&hour(50_000_000, 100_000_000, 5), 80, 0).state,
            ConditionState::Cleared
        );
    }
}
