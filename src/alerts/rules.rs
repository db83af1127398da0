//! The rules: facts in, [`Condition`]s out. Pure functions with no clock, no database and no
//! I/O of their own, so each is tested on constructed data; `run` gathers the facts.
//!
//! Device-supplied strings (host names, vendors) arrive escaped by discovery and are carried as
//! data; templates escape again for HTML.

use super::{Condition, ConditionState, Severity, human_bytes};
use crate::store::health::StorageHealth;

const NS: i64 = 1_000_000_000;

/// Scales a median absolute deviation to a standard deviation for normal data, so `k` reads
/// like "k sigmas" (1 / Φ⁻¹(3/4)).
pub const MAD_SCALE: f64 = 1.4826;
/// Fewer history samples than this give no baseline: a device that is two days old has no
/// "usual" yet (3 slots a week × 2 weeks).
pub const MIN_SAMPLES: usize = 6;

fn device_links(device_id: i64) -> Vec<(String, String)> {
    vec![
        ("Open this device".into(), format!("/devices/{device_id}")),
        ("Alerts".into(), "/alerts".into()),
    ]
}

/// What the new-device alert shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDeviceFacts {
    pub device_id: i64,
    pub mac: String,
    pub vendor: Option<String>,
    pub device_type: Option<String>,
    pub hostname: Option<String>,
    pub first_ip: Option<String>,
    /// First seen, already formatted in the household's time zone.
    pub first_seen: String,
    pub randomized: bool,
}

/// A device joined the network for the first time.
pub fn new_device(d: &NewDeviceFacts) -> Condition {
    let what = d
        .hostname
        .clone()
        .or_else(|| d.vendor.as_ref().map(|v| format!("a {v} device")))
        .unwrap_or_else(|| format!("device {}", d.mac));
    let unknown = || "not known yet".to_string();
    let mut facts = vec![
        ("MAC address".into(), d.mac.clone()),
        ("Vendor".into(), d.vendor.clone().unwrap_or_else(unknown)),
        (
            "Type (guess)".into(),
            d.device_type.clone().unwrap_or_else(unknown),
        ),
        (
            "Host name".into(),
            d.hostname.clone().unwrap_or_else(unknown),
        ),
        (
            "First address".into(),
            d.first_ip.clone().unwrap_or_else(unknown),
        ),
        ("First seen".into(), d.first_seen.clone()),
    ];
    if d.randomized {
        facts.push((
            "Private address".into(),
            "yes: a phone or laptop with MAC randomization".into(),
        ));
    }
    let mut links = vec![
        (
            "Name it or mark it known".into(),
            format!("/devices/{}", d.device_id),
        ),
        ("Alerts".into(), "/alerts".into()),
    ];
    links.dedup();
    Condition {
        rule: "new_device".into(),
        subject: format!("device:{}", d.device_id),
        severity: Severity::Info,
        title: format!("New device on the network: {what}"),
        body: format!(
            "{what} joined the network for the first time. Is it yours? Give it a name or mark \
             it as known; if nobody recognises it, change the Wi-Fi password."
        ),
        facts,
        links,
        state: ConditionState::Event,
    }
}

/// A device came back after a long absence: its latest online interval started at least
/// `absence_ns` after the previous one ended, and within the last day (older returns are history).
pub fn back_after_absence(
    device_id: i64,
    name: &str,
    presence: &[(i64, i64)],
    absence_ns: i64,
    now_ns: i64,
) -> Option<Condition> {
    let [.., (_, prev_last), (from, _)] = presence else {
        return None;
    };
    let gap = from - prev_last;
    if absence_ns <= 0 || gap < absence_ns || now_ns - from > 86_400 * NS {
        return None;
    }
    let days = gap / (86_400 * NS);
    Some(Condition {
        rule: "device_back".into(),
        subject: format!("device:{device_id}:{from}"),
        severity: Severity::Info,
        title: format!("{name} is back after {days} days"),
        body: format!(
            "{name} was last seen {days} days ago and is on the network again. If nobody \
             expected it, check who has it."
        ),
        facts: vec![("Away for".into(), format!("{days} days"))],
        links: device_links(device_id),
        state: ConditionState::Event,
    })
}

/// A device that should always be online has been silent for at least `threshold_ns`.
pub fn offline_too_long(
    device_id: i64,
    name: &str,
    last_seen_ns: i64,
    now_ns: i64,
    threshold_ns: i64,
) -> Condition {
    let silent = now_ns.saturating_sub(last_seen_ns);
    let minutes = silent / (60 * NS);
    Condition {
        rule: "offline".into(),
        subject: format!("device:{device_id}"),
        severity: Severity::Warning,
        title: format!("{name} has been offline for {minutes} minutes"),
        body: format!(
            "{name} is marked as a device that should always be online, and nothing was heard \
             from it for {minutes} minutes. Check its power and its Wi-Fi or cable."
        ),
        facts: vec![("Silent for".into(), format!("{minutes} minutes"))],
        links: device_links(device_id),
        state: if silent >= threshold_ns {
            ConditionState::Active
        } else {
            ConditionState::Cleared
        },
    }
}

/// A device's usual for one hour of the week.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Baseline {
    pub median: f64,
    /// Median absolute deviation (unscaled).
    pub mad: f64,
    /// Usage above this is unusual.
    pub threshold: f64,
    pub samples: usize,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The robust baseline of `samples` (bytes per hour at the same hour of the week): the median,
/// the MAD, and the threshold `max(median + k·1.4826·MAD, 2·median, min_bytes)`. The MAD ignores
/// the odd big download in the history; twice the median keeps a steady device (MAD near 0)
/// from firing on a small rise; `min_bytes` keeps tiny devices quiet. `None` with fewer than
/// [`MIN_SAMPLES`] samples.
pub fn baseline(samples: &[u64], k: u32, min_bytes: u64) -> Option<Baseline> {
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|&b| b as f64).collect();
    v.sort_by(f64::total_cmp);
    let med = median(&v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = median(&dev);
    let threshold = (med + f64::from(k) * MAD_SCALE * mad)
        .max(2.0 * med)
        .max(min_bytes as f64);
    Some(Baseline {
        median: med,
        mad,
        threshold,
        samples: samples.len(),
    })
}

/// The unusual-usage rule for one device and one closed hour: `None` without enough history.
pub fn unusual_usage(
    device_id: i64,
    name: &str,
    hour_label: &str,
    bytes: u64,
    samples: &[u64],
    k: u32,
    min_bytes: u64,
) -> Option<Condition> {
    let b = baseline(samples, k, min_bytes)?;
    let unusual = bytes as f64 > b.threshold;
    let times = if b.median >= 1.0 {
        format!("{:.0}×", bytes as f64 / b.median)
    } else {
        "far above".into()
    };
    Some(Condition {
        rule: "unusual_usage".into(),
        subject: format!("device:{device_id}"),
        severity: Severity::Warning,
        title: format!(
            "{name} used {} in one hour ({times} its usual)",
            human_bytes(bytes)
        ),
        body: format!(
            "{name} moved {} between {hour_label}; at this hour of the week it usually moves \
             about {}. A big update or backup explains this; if not, look at what it is doing.",
            human_bytes(bytes),
            human_bytes(b.median as u64)
        ),
        facts: vec![
            ("This hour".into(), human_bytes(bytes)),
            ("Usual (median)".into(), human_bytes(b.median as u64)),
            ("Spread (MAD)".into(), human_bytes(b.mad as u64)),
            ("Alert above".into(), human_bytes(b.threshold as u64)),
            ("History samples".into(), b.samples.to_string()),
        ],
        links: device_links(device_id),
        state: if unusual {
            ConditionState::Active
        } else {
            ConditionState::Cleared
        },
    })
}

/// lanmeter's own health, as gathered by the alert thread.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthInput {
    /// The capture thread is running.
    pub capture_running: bool,
    /// Seconds since the capture last saw a frame (since start when it never did).
    pub silent_secs: u64,
    /// Kernel drops as a percentage of frames the kernel handled since the last evaluation;
    /// `None` when nothing was received.
    pub drop_percent: Option<f64>,
    pub disk_used_percent: Option<f64>,
    pub cpu_temp_c: Option<f64>,
    pub storage: StorageHealth,
    /// Seconds flushes have been failing (0 while they succeed).
    pub flush_failing_secs: u64,
}

/// The thresholds of the health rule (from the config).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthLimits {
    pub no_packets_secs: u64,
    pub drop_percent: f64,
    pub disk_percent: f64,
    pub cpu_temp_c: f64,
    /// Flushes failing at least this long alert (a single failure is retried silently).
    pub flush_failing_secs: u64,
}

fn health_cond(
    subject: &str,
    severity: Severity,
    active: bool,
    title: String,
    body: String,
    facts: Vec<(String, String)>,
) -> Condition {
    Condition {
        rule: "health".into(),
        subject: subject.into(),
        severity,
        title,
        body,
        facts,
        links: vec![("System".into(), "/system".into())],
        state: if active {
            ConditionState::Active
        } else {
            ConditionState::Cleared
        },
    }
}

/// One condition per health check, active or cleared.
pub fn health(h: &HealthInput, l: &HealthLimits) -> Vec<Condition> {
    let mut out = Vec::new();
    let stopped = !h.capture_running;
    let silent = h.silent_secs >= l.no_packets_secs;
    out.push(health_cond(
        "capture",
        Severity::Critical,
        stopped || silent,
        if stopped {
            "lanmeter stopped capturing".into()
        } else {
            format!(
                "lanmeter has seen no packet for {} minutes",
                h.silent_secs / 60
            )
        },
        "Usage is not being counted. Check that the capture interface is up and still sees the \
         household's traffic (mirror port, bridge), then look at `journalctl -u lanmeter`."
            .into(),
        vec![("Silent for".into(), format!("{} s", h.silent_secs))],
    ));
    if let Some(p) = h.drop_percent {
        out.push(health_cond(
            "kernel_drops",
            Severity::Warning,
            p > l.drop_percent,
            format!("The kernel dropped {p:.1} % of the frames before lanmeter read them"),
            "Counts are too low while this lasts. Raise `buffer_mib` in the config, or give the \
             machine less other work."
                .into(),
            vec![("Dropped".into(), format!("{p:.2} %"))],
        ));
    }
    if let Some(p) = h.disk_used_percent {
        out.push(health_cond(
            "disk",
            Severity::Warning,
            p > l.disk_percent,
            format!("The disk holding the database is {p:.0} % full"),
            "When it is full, history stops being saved. Free space, or shorten retention \
             (`keep_*` keys) and delete old backups."
                .into(),
            vec![("Used".into(), format!("{p:.1} %"))],
        ));
    }
    if let Some(t) = h.cpu_temp_c {
        out.push(health_cond(
            "cpu_temp",
            Severity::Warning,
            t > l.cpu_temp_c,
            format!("The CPU is at {t:.0} °C"),
            "The machine throttles and may drop packets when this hot. Give it air or a heatsink."
                .into(),
            vec![("Temperature".into(), format!("{t:.1} °C"))],
        ));
    }
    out.push(health_cond(
        "flush",
        Severity::Critical,
        h.flush_failing_secs >= l.flush_failing_secs && h.storage.consecutive_failures > 0,
        "Counts cannot be written to the database".into(),
        format!(
            "Flushes have failed for {} s; counts wait in memory and are lost if lanmeter stops. \
             Last error: {}",
            h.flush_failing_secs,
            h.storage.last_error.as_deref().unwrap_or("unknown")
        ),
        vec![
            (
                "Failures in a row".into(),
                h.storage.consecutive_failures.to_string(),
            ),
            ("Rows waiting".into(), h.storage.pending_rows.to_string()),
        ],
    ));
    out.push(health_cond(
        "database",
        Severity::Critical,
        h.storage.moved_aside.is_some() || !h.storage.damage.is_empty(),
        "The database was found damaged".into(),
        format!(
            "{} Old backups are no longer pruned. Stop the service and run `lanmeter restore \
             --list` then `lanmeter restore --latest-good` to get the history back, or keep the \
             current database with `lanmeter restore --dismiss-damage`; this alert stays open \
             until then.",
            h.storage
                .damage
                .iter()
                .map(|e| e.summary())
                .chain(
                    h.storage
                        .moved_aside
                        .iter()
                        .filter(|_| h.storage.damage.is_empty())
                        .map(|p| format!("The damaged database was kept as {}.", p.display()))
                )
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Vec::new(),
    ));
    out.push(health_cond(
        "backup",
        Severity::Warning,
        h.storage.last_backup_error.is_some(),
        "The nightly backup failed".into(),
        format!(
            "{} Check the backup folder's space and permissions.",
            h.storage.last_backup_error.as_deref().unwrap_or("")
        ),
        Vec::new(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    #[test]
    fn baseline_math_on_known_values() {
        // Sorted: 10 20 30 40 50 60 100 → median 40; deviations 30 20 10 0 10 20 60 →
        // sorted 0 10 10 20 20 30 60 → MAD 20. Threshold = 40 + 3·1.4826·20 = 128.956.
        let b = baseline(&[50, 10, 100, 30, 20, 40, 60], 3, 1).unwrap();
        assert_eq!(b.median, 40.0);
        assert_eq!(b.mad, 20.0);
        assert!((b.threshold - 128.956).abs() < 1e-9, "{b:?}");
        // An even count averages the middle pair: median (30+40)/2 = 35; deviations
        // 25 15 5 5 15 65 → sorted 5 5 15 15 25 65 → MAD (15+15)/2 = 15.
        let b = baseline(&[10, 20, 30, 40, 50, 100], 1, 1).unwrap();
        assert_eq!((b.median, b.mad), (35.0, 15.0));
        // Steady device: MAD 0, so twice the median is the floor; min volume above both.
        let b = baseline(&[100; 8], 6, 1).unwrap();
        assert_eq!((b.mad, b.threshold), (0.0, 200.0));
        assert_eq!(baseline(&[100; 8], 6, 500).unwrap().threshold, 500.0);
        assert!(baseline(&[1; 5], 6, 1).is_none(), "too little history");
    }

    #[test]
    fn unusual_usage_needs_volume_and_distance() {
        let history = [200 * MB, 220 * MB, 180 * MB, 210 * MB, 190 * MB, 205 * MB];
        let fire = unusual_usage(
            3,
            "TV",
            "20:00 and 21:00",
            3_000 * MB,
            &history,
            6,
            500 * MB,
        )
        .unwrap();
        assert_eq!(fire.state, ConditionState::Active);
        assert_eq!(fire.subject, "device:3");
        assert!(
            fire.title.contains("3.0 GB") && fire.title.contains("15×"),
            "{}",
            fire.title
        );
        let calm = unusual_usage(3, "TV", "x", 260 * MB, &history, 6, 500 * MB).unwrap();
        assert_eq!(calm.state, ConditionState::Cleared);
        // A tiny device: 50× its usual is still under the minimum volume.
        let tiny = [MB; 6];
        let t = unusual_usage(4, "plug", "x", 50 * MB, &tiny, 6, 500 * MB).unwrap();
        assert_eq!(t.state, ConditionState::Cleared);
    }

    #[test]
    fn offline_and_back_after_absence() {
        let min = 60 * NS;
        let c = offline_too_long(7, "Camera", 0, 31 * min, 30 * min);
        assert_eq!(c.state, ConditionState::Active);
        assert!(c.title.contains("31 minutes"));
        assert_eq!(
            offline_too_long(7, "Camera", 0, 29 * min, 30 * min).state,
            ConditionState::Cleared
        );
        let day = 86_400 * NS;
        let p = [(0, day), (45 * day, 45 * day + 100)];
        let c = back_after_absence(9, "Tablet", &p, 30 * day, 45 * day + 200).unwrap();
        assert_eq!(c.subject, format!("device:9:{}", 45 * day));
        assert!(c.title.contains("44 days"), "{}", c.title);
        assert!(back_after_absence(9, "Tablet", &p, 50 * day, 45 * day + 200).is_none());
        assert!(
            back_after_absence(9, "Tablet", &p, 30 * day, 47 * day).is_none(),
            "old news"
        );
        assert!(back_after_absence(9, "Tablet", &p[..1], 30 * day, day).is_none());
    }

    #[test]
    fn new_device_carries_its_facts_and_links() {
        let c = new_device(&NewDeviceFacts {
            device_id: 5,
            mac: "dc:a6:32:01:02:03".into(),
            vendor: Some("Raspberry Pi Trading Ltd".into()),
            device_type: Some("computer".into()),
            hostname: Some("pi-hole".into()),
            first_ip: Some("192.168.1.20".into()),
            first_seen: "2026-03-01 10:00".into(),
            randomized: false,
        });
        assert_eq!(
            (c.rule.as_str(), c.state),
            ("new_device", ConditionState::Event)
        );
        assert!(c.title.contains("pi-hole"));
        let facts: Vec<&str> = c.facts.iter().map(|(_, v)| v.as_str()).collect();
        assert!(facts.contains(&"Raspberry Pi Trading Ltd") && facts.contains(&"192.168.1.20"));
        assert_eq!(c.links[0].1, "/devices/5");
    }

    #[test]
    fn health_checks_fire_on_their_thresholds() {
        let limits = HealthLimits {
            no_packets_secs: 600,
            drop_percent: 1.0,
            disk_percent: 90.0,
            cpu_temp_c: 80.0,
            flush_failing_secs: 60,
        };
        let ok = HealthInput {
            capture_running: true,
            silent_secs: 5,
            drop_percent: Some(0.5),
            disk_used_percent: Some(40.0),
            cpu_temp_c: Some(55.0),
            ..HealthInput::default()
        };
        let active = |h: &HealthInput| -> Vec<String> {
            health(h, &limits)
                .into_iter()
                .filter(|c| c.state == ConditionState::Active)
                .map(|c| c.subject)
                .collect()
        };
        assert!(active(&ok).is_empty());
        let mut bad = ok.clone();
        bad.silent_secs = 601;
        bad.drop_percent = Some(2.5);
        bad.disk_used_percent = Some(93.0);
        bad.cpu_temp_c = Some(85.0);
        bad.flush_failing_secs = 120;
        bad.storage.consecutive_failures = 12;
        bad.storage.moved_aside = Some("/x.damaged".into());
        assert_eq!(
            active(&bad),
            [
                "capture",
                "kernel_drops",
                "disk",
                "cpu_temp",
                "flush",
                "database"
            ]
        );
        let stopped = HealthInput {
            capture_running: false,
            ..ok
        };
        assert_eq!(active(&stopped), ["capture"]);
    }

    /// An unresolved damage record keeps the database alert active (it auto-resolved at the
    /// next start when only the in-memory "moved aside" flag raised it), and says how to act.
    #[test]
    fn unresolved_damage_keeps_the_database_alert_active() {
        let limits = HealthLimits {
            no_packets_secs: 600,
            drop_percent: 1.0,
            disk_percent: 90.0,
            cpu_temp_c: 80.0,
            flush_failing_secs: 60,
        };
        let mut h = HealthInput {
            capture_running: true,
            ..HealthInput::default()
        };
        h.storage.damage = vec![crate::store::damage::DamageEvent {
            at: 1_767_225_600,
            kind: "wal".into(),
            detail: "the -wal is not a valid write-ahead log".into(),
            kept: vec!["/var/lib/lanmeter/lanmeter.db.wal-damaged-X".into()],
        }];
        let c = health(&h, &limits)
            .into_iter()
            .find(|c| c.subject == "database")
            .unwrap();
        assert_eq!(c.state, ConditionState::Active);
        assert!(
            c.body.contains("wal-damaged-X") && c.body.contains("--latest-good"),
            "{}",
            c.body
        );
    }
}
