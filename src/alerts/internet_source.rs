//! The internet probes (issue 27) as a rule source of the alert engine.
//!
//! - `internet.outage`: an outage that ended, as an event with its duration. It is sent when
//!   the connection is back, because mail cannot leave while the internet is down.
//! - `internet.down`: the outage going on, active until it ends, for channels that reach the
//!   household without the internet (a Home Assistant or Gotify on the LAN); the outbox retries
//!   the others, which then arrive late.
//! - `internet.loss`, `internet.latency`: packet loss or median latency above the threshold over
//!   the last `alert_internet_sustained_minutes`, active until it drops back below.
//!
//! It reads the stored probe minutes and outages only; it never probes.

use super::run::Source;
use super::{Condition, ConditionState, Severity};
use crate::config::Config;
use crate::internet::report::Quality;
use crate::internet::{Outage, State};
use crate::store::Store;

const NS: i64 = 1_000_000_000;
/// An ended outage is announced if it ended within this long (a restart does not announce the
/// whole log again: each outage is also an event once per subject).
const RECENT_SECS: i64 = 3_600;

/// The thresholds, copied from the configuration at start.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub down: bool,
    pub loss_percent: u32,
    pub latency_ms: u32,
    pub sustained_minutes: u32,
}

impl Limits {
    pub fn from_config(cfg: &Config) -> Limits {
        Limits {
            down: cfg.alert_internet_down,
            loss_percent: cfg.alert_internet_loss_percent,
            latency_ms: cfg.alert_internet_latency_ms,
            sustained_minutes: cfg.alert_internet_sustained_minutes,
        }
    }
}

/// A source for `run::Sources::extra`.
pub fn source(limits: Limits, tz: jiff::tz::TimeZone) -> Source {
    Box::new(
        move |store: &Store, now: i64| match situations(store, limits, &tz, now) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the internet probes could not be evaluated for alerts");
                Vec::new()
            }
        },
    )
}

/// Local "2026-03-04 18:20", as the dashboard writes times.
fn when(ns: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_second(ns.div_euclid(NS)).map_or_else(
        |_| ns.to_string(),
        |t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        },
    )
}

/// "9 min", "2 h 5 min", "3 days 4 h".
fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) if m == 0 => format!("{secs} s"),
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} days {h} h"),
    }
}

fn outage_facts(o: &Outage, tz: &jiff::tz::TimeZone) -> Vec<(String, String)> {
    let mut f = vec![
        ("What".into(), o.kind.label().to_string()),
        ("Began".into(), when(o.start_ns, tz)),
    ];
    if let Some(e) = o.end_ns {
        f.push(("Ended".into(), when(e, tz)));
        f.push(("Lasted".into(), duration((e - o.start_ns) / NS)));
    }
    f
}

/// The conditions at `now` (Unix seconds).
pub fn situations(
    store: &Store,
    limits: Limits,
    tz: &jiff::tz::TimeZone,
    now: i64,
) -> Result<Vec<Condition>, crate::store::StoreError> {
    let mut out = Vec::new();
    let links = vec![("See the Internet page".to_string(), "/internet".to_string())];
    if limits.down {
        let recent = store.internet_outages((now - RECENT_SECS) * NS, (now + 1) * NS)?;
        let open = recent.iter().find(|o| o.outage.end_ns.is_none());
        for o in recent.iter().filter(|o| o.outage.end_ns.is_some()) {
            let secs = (o.outage.end_ns.unwrap_or(0) - o.outage.start_ns) / NS;
            out.push(Condition {
                rule: "internet.outage".into(),
                subject: format!("internet_outage:{}", o.id),
                severity: Severity::Warning,
                title: format!(
                    "The {} was down for {}",
                    if o.outage.kind == State::LanDown {
                        "router or LAN"
                    } else if o.outage.kind == State::DnsDown {
                        "DNS"
                    } else {
                        "internet"
                    },
                    duration(secs)
                ),
                body: format!(
                    "lanmeter's probes saw \"{}\" from {} to {}. It is back now. The Internet page keeps the outage log and a monthly report for the provider.",
                    o.outage.kind.label(),
                    when(o.outage.start_ns, tz),
                    when(o.outage.end_ns.unwrap_or(0), tz)
                ),
                facts: outage_facts(&o.outage, tz),
                links: links.clone(),
                state: ConditionState::Event,
            });
        }
        out.push(Condition {
            rule: "internet.down".into(),
            subject: "internet".into(),
            severity: Severity::Critical,
            title: match open {
                Some(o) => format!("{} since {}", capital(o.outage.kind.label()), when(o.outage.start_ns, tz)),
                None => "The connection is up".into(),
            },
            body: "lanmeter's probes show an outage going on. This message goes out through every channel that works without the internet; the others get it when the connection is back.".into(),
            facts: open.map(|o| outage_facts(&o.outage, tz)).unwrap_or_default(),
            links: links.clone(),
            state: if open.is_some() {
                ConditionState::Active
            } else {
                ConditionState::Cleared
            },
        });
    }
    if limits.loss_percent > 0 || limits.latency_ms > 0 {
        let n = i64::from(limits.sustained_minutes);
        let rows = store.internet_minutes((now / 60 - n) * 60, now)?;
        let measured: Vec<_> = rows.iter().filter(|r| r.internet.sent > 0).collect();
        // At least half the window measured, or nothing is decided (a restart, probes off).
        let enough = measured.len() as i64 * 2 >= n;
        let q = Quality::of(measured.iter().copied());
        let mut rule = |name: &str, limit: u32, value: Option<f64>, what: &str, unit: &str| {
            if limit == 0 || !enough {
                return;
            }
            let Some(v) = value else { return };
            let high = v > f64::from(limit);
            out.push(Condition {
                rule: format!("internet.{name}"),
                subject: format!("internet_{name}"),
                severity: Severity::Warning,
                title: format!("Internet {what} {v:.1} {unit} over the last {n} minutes"),
                body: format!(
                    "The internet's {what} stayed above {limit} {unit} for {n} minutes (measured by pinging the internet targets)."
                ),
                facts: vec![
                    (capital(what), format!("{v:.1} {unit}")),
                    ("Threshold".into(), format!("{limit} {unit}")),
                ],
                links: links.clone(),
                state: if high {
                    ConditionState::Active
                } else {
                    ConditionState::Cleared
                },
            });
        };
        rule(
            "loss",
            limits.loss_percent,
            q.loss_percent(),
            "packet loss",
            "%",
        );
        rule(
            "latency",
            limits.latency_ms,
            q.median_ms,
            "median latency",
            "ms",
        );
    }
    Ok(out)
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internet::{Group, MinuteRow, OutageEvent};

    const NOW: i64 = 1_775_937_600;

    fn minute(m: i64, median_ms: u32, lost: u32) -> MinuteRow {
        MinuteRow {
            minute: m,
            rounds: 6,
            up: 6,
            internet: Group {
                sent: 36,
                received: 36 - lost,
                median_us: Some(median_ms * 1000),
                p95_us: Some(median_ms * 2000),
            },
            ..MinuteRow::default()
        }
    }

    fn limits() -> Limits {
        Limits {
            down: true,
            loss_percent: 5,
            latency_ms: 100,
            sustained_minutes: 10,
        }
    }

    #[test]
    fn outages_loss_and_latency_become_conditions() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        // Nothing stored: the connection is "up" (cleared) and nothing else is decided.
        let c = situations(&s, limits(), &tz, NOW).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].rule.as_str(), c[0].state),
            ("internet.down", ConditionState::Cleared)
        );

        let o = Outage {
            kind: State::InternetDown,
            start_ns: (NOW - 600) * NS,
            end_ns: None,
        };
        let rows: Vec<MinuteRow> = (1..=10)
            .map(|k| minute((NOW / 60 - k) * 60, 150, 4))
            .collect();
        s.write_internet(&rows, &[OutageEvent::Opened(o)], None)
            .unwrap();
        let c = situations(&s, limits(), &tz, NOW).unwrap();
        let by = |r: &str| c.iter().find(|x| x.rule == r).unwrap().clone();
        assert_eq!(by("internet.down").state, ConditionState::Active);
        assert!(
            by("internet.down").title.starts_with("Internet down since"),
            "{c:#?}"
        );
        assert_eq!(by("internet.loss").state, ConditionState::Active, "{c:#?}");
        assert_eq!(by("internet.latency").state, ConditionState::Active);
        assert!(c.iter().all(|x| x.rule != "internet.outage"));

        // Back: the ended outage is an event with its duration; the ongoing one clears.
        s.write_internet(
            &[],
            &[OutageEvent::Closed(Outage {
                end_ns: Some((NOW - 60) * NS),
                ..o
            })],
            None,
        )
        .unwrap();
        let c = situations(&s, limits(), &tz, NOW).unwrap();
        let ev = c.iter().find(|x| x.rule == "internet.outage").unwrap();
        assert_eq!(ev.state, ConditionState::Event);
        assert_eq!(ev.title, "The internet was down for 9 min");
        assert_eq!(
            c.iter().find(|x| x.rule == "internet.down").unwrap().state,
            ConditionState::Cleared
        );
        // An hour later it is no longer announced (it was, once).
        let later = situations(&s, limits(), &tz, NOW + 2 * 3600).unwrap();
        assert!(later.iter().all(|x| x.rule != "internet.outage"));
    }
}
