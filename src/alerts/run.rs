//! What the alert thread evaluates (its threads are started by `run::alerts`): every
//! `alert_interval_secs` it gathers facts (device events, presence, usage history, lanmeter's
//! health), runs the rules and the engine, and queues the weekly summary; the outbox workers
//! deliver what is queued, one per channel (email, webhook), so a stalled receiver delays only
//! its own channel's messages, never the other channel or the rule evaluation.
//!
//! The evaluation and each worker have their own database connection; the email worker has a
//! small single-threaded tokio runtime for SMTP. None of them touches the capture path: capture
//! counters reach the evaluation only through the [`Probe`] closure the daemon hands in, which
//! copies a few atomics.

use super::deliver::Channels;
use super::engine::{self, Policy};
use super::mail::Mailer;
use super::render::LinkCtx;
use super::rules::{self, HealthInput, HealthLimits, NewDeviceFacts};
use super::{AlertError, Condition, summary};
use crate::config::Config;
use crate::config::settings::Live;
use crate::store::Store;
use crate::store::discovery::DeviceRecord;
use crate::store::health::SharedHealth;
use jiff::{ToSpan, Zoned};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const NS: i64 = 1_000_000_000;
/// Flushes failing for this long alert (one failure is retried silently next interval).
const FLUSH_FAILING_SECS: u64 = 60;
/// A new device is announced this long after its first frame, so discovery has had a batch or
/// two to learn its address, host name and vendor for the message.
const NEW_DEVICE_SETTLE_NS: i64 = 10 * NS;
/// Where Linux reports the SoC temperature on a Raspberry Pi (millidegrees Celsius).
const THERMAL_ZONE: &str = "/sys/class/thermal/thermal_zone0/temp";

/// A copy of the capture's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitorSample {
    pub capture_running: bool,
    pub frames_seen: u64,
    pub pcap_received: u64,
    pub pcap_dropped: u64,
}

/// Reads the capture's counters (the daemon builds it from its stats handle).
pub type Probe = Box<dyn Fn() -> MonitorSample + Send>;

/// A further rule source, such as the plan's quota rules: called at each evaluation with the
/// alert thread's connection and the time, returns its conditions.
pub type Source = Box<dyn FnMut(&Store, i64) -> Vec<Condition> + Send>;

/// What the alert thread reads besides the database.
#[derive(Default)]
pub struct Sources {
    pub probe: Option<Probe>,
    pub health: SharedHealth,
    pub extra: Vec<Source>,
    /// The running configuration as the settings editor changes it: the rules, thresholds,
    /// quiet hours, digest and summary keys are reread from it at every evaluation.
    pub live: Option<crate::config::settings::Live>,
}

/// Memory between evaluations (not worth persisting: a restart starts fresh).
pub(crate) struct EvalMemory {
    last: Option<MonitorSample>,
    frames_changed: Instant,
}

impl EvalMemory {
    pub(crate) fn new() -> EvalMemory {
        EvalMemory {
            last: None,
            frames_changed: Instant::now(),
        }
    }
}

/// The delivery channels of one outbox worker, from `cfg` and, for the push channels, the live
/// settings (each worker has its own runtime).
pub(crate) fn channels(cfg: &Config, live: Option<&Live>) -> Result<Channels, AlertError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AlertError::Runtime)?;
    let (mailer, mail_config_error) = match Mailer::from_config(cfg) {
        Ok(m) => (m, None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Channels {
        mailer,
        mail_config_error,
        webhook_token: cfg.webhook_token.as_ref().map(|t| t.expose().to_string()),
        webhook_timeout: Duration::from_secs(cfg.delivery_timeout_secs),
        rt,
        // Without the settings editor, the start-up configuration is the push settings.
        push: Some(live.cloned().unwrap_or_else(|| Live::new(cfg.clone()))),
    })
}

/// One evaluation: every rule, the engine, the schedule, the weekly summary.
pub(crate) fn evaluate(
    s: &mut Store,
    cfg: &Config,
    policy: &Policy,
    links: &LinkCtx,
    sources: &mut Sources,
    memory: &mut EvalMemory,
    now: i64,
) -> Result<(), AlertError> {
    let devices = s.list_devices_with_presence()?;
    // Always run, so the cursor moves on while the rule is off: devices that joined meanwhile
    // are not announced in a burst when it is switched back on (it can change at run time).
    new_devices(s, cfg, policy, links, &devices, now)?;
    let mut conds: Vec<Condition> = Vec::new();
    let by_id: HashMap<i64, &DeviceRecord> = devices.iter().map(|d| (d.id, d)).collect();
    let name = |d: &DeviceRecord| {
        d.display_name().map(str::to_string).unwrap_or_else(|| {
            d.vendor
                .as_ref()
                .map_or_else(|| d.mac.to_string(), |v| format!("{v} device {}", d.mac))
        })
    };
    for id in s.always_online_devices()? {
        if let Some(d) = by_id.get(&id) {
            let threshold = cfg.alert_offline_minutes as i64 * 60 * NS;
            conds.push(rules::offline_too_long(
                id,
                &name(d),
                d.last_seen_ns,
                now * NS,
                threshold,
            ));
        }
    }
    if cfg.alert_absence_days > 0 {
        let absence = i64::from(cfg.alert_absence_days) * 86_400 * NS;
        for d in devices.iter().filter(|d| !d.is_gateway && !d.user.ignored) {
            conds.extend(rules::back_after_absence(
                d.id,
                &name(d),
                &d.presence,
                absence,
                now * NS,
            ));
        }
    }
    if cfg.alert_unusual_usage {
        conds.extend(unusual(s, cfg, &links.tz, &devices, now)?);
    }
    if cfg.alert_health {
        let input = health_input(cfg, sources, memory, now);
        conds.extend(rules::health(
            &input,
            &HealthLimits {
                no_packets_secs: cfg.alert_no_packets_minutes * 60,
                drop_percent: f64::from(cfg.alert_kernel_drop_percent),
                disk_percent: f64::from(cfg.alert_disk_percent),
                cpu_temp_c: f64::from(cfg.alert_cpu_temp_c),
                flush_failing_secs: FLUSH_FAILING_SECS,
            },
        ));
    }
    for source in &mut sources.extra {
        conds.extend(source(s, now));
    }
    let applied = engine::apply(s, &conds, now, policy, false)?;
    if !applied.triggered.is_empty() || !applied.resolved.is_empty() {
        tracing::info!(triggered = ?applied.triggered, resolved = ?applied.resolved, suppressed = ?applied.suppressed, "alerts changed");
    }
    engine::schedule(s, policy, links, now)?;
    summary::maybe_queue(s, cfg, policy, links, now)?;
    Ok(())
}

/// New-device events since the cursor become alerts; those in the learning period after the
/// alerts started are recorded without a notification (the household's inventory).
fn new_devices(
    s: &mut Store,
    cfg: &Config,
    policy: &Policy,
    links: &LinkCtx,
    devices: &[DeviceRecord],
    now: i64,
) -> Result<(), AlertError> {
    let cursor: i64 = match s.alert_state("device_events_cursor")? {
        Some(v) => v.parse().unwrap_or(0),
        None => s.max_device_event_id()?,
    };
    let installed: i64 = s
        .alert_state("installed_at")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(now);
    let learning_until = installed + cfg.alert_new_device_learning_minutes as i64 * 60;
    let mut events = s.device_events_after(cursor)?;
    // Events are in id order, which is insertion order; stop at the first one still settling
    // and pick it up at a later evaluation (the cursor stays before it).
    if let Some(young) = events
        .iter()
        .position(|e| e.kind == "new_device" && now * NS - e.at_ns < NEW_DEVICE_SETTLE_NS)
    {
        events.truncate(young);
    }
    let Some(last) = events.last().map(|e| e.id) else {
        return Ok(());
    };
    for ev in events
        .iter()
        .filter(|e| e.kind == "new_device" && !e.mac.is_group())
    {
        let Some(d) = devices.iter().find(|d| d.id == ev.device_id) else {
            continue;
        };
        if d.is_gateway || d.user.ignored || d.user.known || !cfg.alert_new_device {
            continue;
        }
        let facts = NewDeviceFacts {
            device_id: d.id,
            mac: ev.mac.to_string(),
            vendor: d.vendor.clone(),
            device_type: d.device_type().map(str::to_string),
            hostname: d.display_name().map(str::to_string),
            first_ip: d
                .addresses
                .iter()
                .min_by_key(|a| a.first_seen_ns)
                .map(|a| a.addr.to_string()),
            first_seen: links.local_time(ev.at_ns / NS),
            randomized: d.randomized,
        };
        let silent = ev.at_ns / NS < learning_until;
        engine::apply(s, &[rules::new_device(&facts)], now, policy, silent)?;
    }
    s.set_alert_state("device_events_cursor", &last.to_string())?;
    Ok(())
}

/// The unusual-usage rule, once per closed local hour: that hour against the same hour and its
/// neighbours in each of the last `alert_unusual_weeks` weeks (local time, so DST is respected).
fn unusual(
    s: &Store,
    cfg: &Config,
    tz: &jiff::tz::TimeZone,
    devices: &[DeviceRecord],
    now: i64,
) -> Result<Vec<Condition>, AlertError> {
    let Ok(t) = jiff::Timestamp::from_second(now) else {
        return Ok(Vec::new());
    };
    let render_err = |e: jiff::Error| AlertError::Render {
        what: "unusual usage",
        detail: e.to_string(),
    };
    let local = t.to_zoned(tz.clone());
    let hour_end = local
        .with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .map_err(render_err)?;
    let mark = hour_end.timestamp().as_second().to_string();
    if s.alert_state("unusual_hour")?.as_deref() == Some(mark.as_str()) {
        return Ok(Vec::new());
    }
    let hour_start = hour_end.checked_sub(1.hour()).map_err(render_err)?;
    let conds = unusual_for_hour(s, cfg, tz, devices, &hour_start)?;
    s.set_alert_state("unusual_hour", &mark)?;
    Ok(conds)
}

/// The unusual-usage conditions for the local hour starting at `hour_start`.
pub fn unusual_for_hour(
    s: &Store,
    cfg: &Config,
    tz: &jiff::tz::TimeZone,
    devices: &[DeviceRecord],
    hour_start: &Zoned,
) -> Result<Vec<Condition>, AlertError> {
    let err = |e: jiff::Error| AlertError::Render {
        what: "unusual usage",
        detail: e.to_string(),
    };
    let slot = |z: &Zoned| -> Result<HashMap<crate::model::MacAddr, u64>, AlertError> {
        let end = z.checked_add(1.hour()).map_err(err)?;
        let (rows, _) = s.usage_by_device(tz, z.timestamp(), end.timestamp())?;
        Ok(rows.into_iter().map(|d| (d.mac, d.total_bytes())).collect())
    };
    let current = slot(hour_start)?;
    // Per device: the history samples from weeks in which the device already existed.
    let mut samples: HashMap<crate::model::MacAddr, Vec<u64>> = HashMap::new();
    let candidates: Vec<&DeviceRecord> = devices
        .iter()
        .filter(|d| !d.is_gateway && !d.user.ignored && !d.mac.is_group())
        .collect();
    for w in 1..=i64::from(cfg.alert_unusual_weeks) {
        for off in [-1i64, 0, 1] {
            let z = hour_start
                .checked_sub((w * 7).days())
                .and_then(|z| z.checked_add(off.hours()))
                .map_err(err)?;
            let start_ns = z.timestamp().as_nanosecond() as i64;
            let used = slot(&z)?;
            for d in &candidates {
                if d.first_seen_ns <= start_ns {
                    samples
                        .entry(d.mac)
                        .or_default()
                        .push(used.get(&d.mac).copied().unwrap_or(0));
                }
            }
        }
    }
    let label = format!(
        "{} and {}",
        hour_start.strftime("%a %H:%M"),
        hour_start
            .checked_add(1.hour())
            .map_err(err)?
            .strftime("%H:%M")
    );
    let min_bytes = cfg.alert_unusual_min_mb.saturating_mul(1_000_000);
    Ok(candidates
        .iter()
        .filter_map(|d| {
            let name = d
                .display_name()
                .map(str::to_string)
                .unwrap_or_else(|| d.mac.to_string());
            rules::unusual_usage(
                d.id,
                &name,
                &label,
                current.get(&d.mac).copied().unwrap_or(0),
                samples.get(&d.mac).map_or(&[][..], Vec::as_slice),
                cfg.alert_unusual_k,
                min_bytes,
            )
        })
        .collect())
}

fn health_input(cfg: &Config, sources: &Sources, memory: &mut EvalMemory, now: i64) -> HealthInput {
    let storage = sources.health.snapshot();
    let sample = sources.probe.as_ref().map(|p| p());
    let mut drop_percent = None;
    if let Some(cur) = sample {
        match memory.last {
            Some(prev) if cur.frames_seen == prev.frames_seen => {}
            _ => memory.frames_changed = Instant::now(),
        }
        if let Some(prev) = memory.last {
            let received = cur.pcap_received.saturating_sub(prev.pcap_received);
            let dropped = cur.pcap_dropped.saturating_sub(prev.pcap_dropped);
            if received + dropped > 0 {
                drop_percent = Some(dropped as f64 * 100.0 / (received + dropped) as f64);
            }
        }
        memory.last = Some(cur);
    }
    let db = cfg.database_path();
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // fsblkcnt_t is 32 bits on armhf, 64 here.
    #[allow(clippy::useless_conversion)]
    let disk_used_percent = nix::sys::statvfs::statvfs(dir).ok().and_then(|st| {
        let total = u64::from(st.blocks());
        let free = u64::from(st.blocks_free());
        (total > 0).then(|| (total - free) as f64 * 100.0 / total as f64)
    });
    let cpu_temp_c = std::fs::read_to_string(THERMAL_ZONE)
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .map(|m| m / 1000.0);
    let flush_failing_secs = storage
        .failing_since
        .map_or(0, |t| (now - t.as_second()).max(0) as u64);
    HealthInput {
        // Without a probe (a replay-only setup) capture health is not ours to judge.
        capture_running: sample.is_none_or(|s| s.capture_running),
        silent_secs: if sample.is_some() {
            memory.frames_changed.elapsed().as_secs()
        } else {
            0
        },
        drop_percent,
        disk_used_percent,
        cpu_temp_c,
        storage,
        flush_failing_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::ConditionState;
    use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};

    const MB: u64 = 1_000_000;
    /// Monday 2026-01-05 00:00 UTC: five weeks of history start here.
    const START: i64 = 1_767_571_200;

    /// A household's weekly rhythm for a TV: quiet nights, evening streaming on weekdays,
    /// long weekend afternoons; ±15 % deterministic noise.
    fn tv_bytes(hour_of_week: i64, week: i64) -> u64 {
        let (day, hour) = (hour_of_week / 24, hour_of_week % 24);
        let base = match (day >= 5, hour) {
            (false, 19..=22) => 800 * MB,
            (true, 13..=21) => 1_500 * MB,
            (_, 7..=18) => 60 * MB,
            _ => 5 * MB,
        };
        let noise = (hour_of_week * 7919 + week * 104_729) % 31 - 15; // -15..=15
        (base as i64 + base as i64 * noise / 100) as u64
    }

    fn usage(mac: MacAddr, at: i64, bytes: u64) -> MinuteUsage {
        MinuteUsage {
            mac,
            minute: at,
            counts: Counts {
                frames_sent: 1,
                bytes_received: bytes,
                ..Counts::default()
            },
        }
    }

    #[test]
    fn unusual_usage_fires_on_a_spike_and_not_on_the_weekly_rhythm() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("h.db")).unwrap();
        let tv: MacAddr = "dc:a6:32:00:00:10".parse().unwrap();
        let plug: MacAddr = "dc:a6:32:00:00:11".parse().unwrap();
        let mut rows = Vec::new();
        for week in 0..5 {
            for how in 0..168 {
                let at = START + (week * 168 + how) * 3600;
                rows.push(usage(tv, at, tv_bytes(how, week)));
                rows.push(usage(plug, at, 20_000 + (how as u64 % 5) * 1000));
            }
        }
        let seen: Vec<Sighting> = [tv, plug]
            .iter()
            .map(|&mac| Sighting {
                mac,
                first_seen: START * NS,
                last_seen: START * NS,
                is_gateway: false,
            })
            .collect();
        s.write_flush(&rows, &seen).unwrap();
        let cfg = Config {
            timezone: Some("UTC".into()),
            ..Config::default()
        };
        let tz = jiff::tz::TimeZone::UTC;
        let devices = s.list_devices().unwrap();
        let fired = |s: &Store| -> Vec<(i64, String)> {
            let mut out = Vec::new();
            for how in 0..168 {
                let at = START + (4 * 168 + how) * 3600;
                let z = jiff::Timestamp::from_second(at)
                    .unwrap()
                    .to_zoned(tz.clone());
                let conds = unusual_for_hour(s, &cfg, &tz, &devices, &z).unwrap();
                assert_eq!(conds.len(), 2, "both devices have a baseline at hour {how}");
                for c in conds
                    .into_iter()
                    .filter(|c| c.state == ConditionState::Active)
                {
                    out.push((how, c.subject));
                }
            }
            out
        };
        assert_eq!(fired(&s), [], "the normal weekly rhythm is silent");
        // Wednesday 03:00 of week 5: a 4 GB night-time upload from the TV.
        let spike_how = 2 * 24 + 3;
        let at = START + (4 * 168 + spike_how) * 3600 + 60;
        s.write_flush(&[usage(tv, at, 4_000 * MB)], &[]).unwrap();
        let tv_id = devices.iter().find(|d| d.mac == tv).unwrap().id;
        assert_eq!(fired(&s), [(spike_how, format!("device:{tv_id}"))]);
        // The same 4 GB on a weekend afternoon is within 2× its usual (1.5 GB): silent.
        let sat = START + (4 * 168 + 5 * 24 + 15) * 3600 + 120;
        s.write_flush(&[usage(tv, sat, 1_000 * MB)], &[]).unwrap();
        assert_eq!(fired(&s).len(), 1);
    }
}
