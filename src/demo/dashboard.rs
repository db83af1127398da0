//! The living household behind `lanmeter demo`: a fresh database filled with weeks of history
//! of the generator's family (same catalogue, same day/night rhythm), names, people and groups a
//! family would give, one unknown device that joined today, a data plan already gone past its
//! allowance and quotas (one phone close to its own, its owner and the kids' group past
//! theirs); then synthetic traffic fed into a real meter and flushed like the daemon does, so the
//! dashboard's live rate moves and today's totals grow.
//!
//! Everything is written through the store's own APIs (discovery writes, flushes, maintenance,
//! user fields), never SQL: the demo database is exactly what a running lanmeter would hold. It
//! sets no password and no secret.

use super::household::{CatalogueEntry, catalogue, hourly};
use super::rng::Rng;
use crate::capture::decode::{Dest, Frame, IpPair};
use crate::config::Config;
use crate::flush::Flusher;
use crate::meter::SharedMeter;
use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};
use crate::plan::{CycleRule, Plan, QuotaPeriod, QuotaSubject};
use crate::store::discovery::{MacFacts, Profile, UserFields};
use crate::store::{Store, StoreError};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const NS: i64 = 1_000_000_000;

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// Household devices, the router not included (the catalogue repeats past 25).
    pub devices: usize,
    /// Days of history before now.
    pub days: u32,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            devices: 25,
            days: 60,
            seed: 7,
        }
    }
}

/// One demo device and how much it talks.
#[derive(Clone, Debug)]
pub struct DemoDevice {
    pub mac: MacAddr,
    pub name: String,
    pub kind: &'static str,
    pub ip: Ipv4Addr,
    /// Relative activity by day and by night.
    pub busyness: (f64, f64),
    /// Internet megabytes in an hour at the household's peak, for this kind of device.
    pub peak_mb_per_hour: f64,
    /// Share of its internet bytes that are uploads.
    pub up_share: f64,
    /// Local (in-home) bytes per internet byte.
    pub local_ratio: f64,
}

/// The household as built.
#[derive(Clone, Debug)]
pub struct Demo {
    pub gateway: MacAddr,
    pub devices: Vec<DemoDevice>,
    /// The device that joined today and has no name yet.
    pub newcomer: MacAddr,
    /// The phone close to its (notional) quota.
    pub heavy: MacAddr,
}

/// Per kind: (peak MB per hour, upload share, local bytes per internet byte).
fn profile(kind: &str) -> (f64, f64, f64) {
    match kind {
        "tv" => (420.0, 0.02, 0.01),
        "console" => (260.0, 0.06, 0.02),
        "computer" => (220.0, 0.1, 0.2),
        "laptop" => (140.0, 0.18, 0.3),
        "tablet" => (90.0, 0.05, 0.05),
        "phone" => (60.0, 0.12, 0.05),
        "nas" => (40.0, 0.8, 6.0),
        "speaker" => (35.0, 0.03, 0.1),
        "camera" => (25.0, 0.9, 0.0),
        "server" => (8.0, 0.5, 0.5),
        "printer" => (0.4, 0.3, 20.0),
        "ereader" => (2.0, 0.1, 0.0),
        "watch" => (2.0, 0.3, 0.5),
        _ => (1.2, 0.5, 0.2),
    }
}

/// The names, people and groups the family gave the catalogue's devices (by catalogue order).
const FAMILY: [(&str, &str, &str); 25] = [
    ("Tom's MacBook", "Tom", "work laptops"),
    ("NAS", "", "home office"),
    ("Anna's iPhone", "Anna", "phones"),
    ("Living room TV", "", "media"),
    ("Tom's Galaxy", "Tom", "phones"),
    ("Anna's work laptop", "Anna", "work laptops"),
    ("PlayStation 5", "Leo", "the kids"),
    ("Printer", "", "home office"),
    ("Kettle plug", "", "smart home"),
    ("Garden lights", "", "smart home"),
    ("Family iPad", "", "the kids"),
    ("Emma's Pixel", "Emma", "the kids"),
    ("Bedroom Fire TV", "", "media"),
    ("Kitchen Sonos", "", "media"),
    ("Raspberry Pi", "Tom", "home office"),
    ("Thermostat", "", "smart home"),
    ("Doorbell", "", "smart home"),
    ("Hue bridge", "", "smart home"),
    ("Emma's gaming PC", "Emma", "the kids"),
    ("Anna's Kindle", "Anna", "media"),
    ("Leo's iPhone", "Leo", "the kids"),
    ("Tom's Watch", "Tom", "phones"),
    ("Robot vacuum", "", "smart home"),
    ("Nintendo Switch", "Leo", "the kids"),
    ("Guest phone", "", "guests"),
];
/// Index of Leo's iPhone in the catalogue: the phone near its quota.
const HEAVY: usize = 20;
/// Its notional monthly quota, in GB, and the share of it used by today.
const QUOTA_GB: f64 = 30.0;
const QUOTA_USED: f64 = 0.94;
/// The demo plan's allowance per cycle, in GB: below what the household uses in 20 days.
const PLAN_GB: u64 = 400;
/// Days of the demo's billing cycle already gone (today not included).
const CYCLE_DAYS_GONE: i64 = 20;
/// Leo's own quota per cycle (his phone and his console together go past it).
const LEO_GB: f64 = 60.0;
/// The kids' group quota per cycle (they go past it).
const KIDS_GB: f64 = 120.0;

fn ts(s: i64) -> Result<jiff::Timestamp, DemoError> {
    jiff::Timestamp::from_second(s).map_err(|e| DemoError::Options(e.to_string()))
}

/// The demo's plan: [`PLAN_GB`] a month, the cycle starting on the day of the month
/// [`CYCLE_DAYS_GONE`] days ago (the 28th at the latest, so the start exists in every month).
fn demo_plan(now: i64, tz: &jiff::tz::TimeZone) -> Result<Plan, DemoError> {
    let began = ts(now)?
        .to_zoned(tz.clone())
        .date()
        .checked_sub(jiff::Span::new().days(CYCLE_DAYS_GONE))
        .map_err(|e| DemoError::Options(e.to_string()))?;
    Ok(Plan {
        allowance_bytes: Some(PLAN_GB * 1_000_000_000),
        cycle: CycleRule::Monthly {
            start_day: began.day().clamp(1, 28) as u8,
        },
        ..Plan::default()
    })
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the demo database {0} already exists: delete it (and its -wal/-shm files) or choose another --db"
    )]
    Exists(std::path::PathBuf),
    #[error("invalid demo options: {0}")]
    Options(String),
}

fn hostname(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

fn random_mac(rng: &mut Rng, oui: Option<[u8; 3]>) -> MacAddr {
    let b = rng.bytes6();
    match oui {
        Some(o) => MacAddr([o[0], o[1], o[2], b[3], b[4], b[5]]),
        None => MacAddr([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]),
    }
}

/// How busy device `d` is at local hour `h` (0..=1.5), the household rhythm times its own.
fn activity(d: &DemoDevice, h: usize, weekend: bool) -> f64 {
    let always_on = matches!(d.kind, "iot" | "camera" | "server" | "nas");
    let base = if always_on {
        0.5 + 0.5 * hourly()[h]
    } else {
        hourly()[h]
    };
    let own = if h < 6 { d.busyness.1 } else { d.busyness.0 };
    let weekend = if weekend && (9..18).contains(&h) {
        1.3
    } else {
        1.0
    };
    base * own * weekend
}

fn counts(down: u64, up: u64, local: u64) -> Counts {
    Counts {
        frames_sent: up / 1200 + local / 2400 + 1,
        frames_received: down / 1400 + local / 2400 + 1,
        bytes_sent: up + local / 2,
        bytes_received: down + local - local / 2,
        internet_upload_bytes: up,
        internet_download_bytes: down,
    }
}

/// Fills the fresh database at `db` with `opts.days` of history up to `now` (Unix seconds).
pub fn build(
    db: &std::path::Path,
    cfg: &Config,
    opts: &DemoOptions,
    now: i64,
) -> Result<Demo, DemoError> {
    if db.exists() {
        return Err(DemoError::Exists(db.to_path_buf()));
    }
    if opts.devices == 0 || opts.devices > 250 || opts.days == 0 || opts.days > 800 {
        return Err(DemoError::Options(
            "--devices must be 1..=250 and --days 1..=800".into(),
        ));
    }
    let tz = cfg.time_zone();
    let mut rng = Rng::new(opts.seed);
    let (cat, router_oui) = catalogue();
    let gateway = random_mac(&mut rng, Some(router_oui));
    let mut devices: Vec<DemoDevice> = Vec::with_capacity(opts.devices);
    let mut extra: Vec<(&CatalogueEntry, String, String, String)> = Vec::new();
    for i in 0..opts.devices {
        let e = &cat[i % cat.len()];
        let (name, owner, group) = FAMILY[i % FAMILY.len()];
        let round = i / cat.len();
        let name = if round == 0 {
            name.to_string()
        } else {
            format!("{name} {}", round + 1)
        };
        let (mb, up, local) = profile(e.kind);
        let heavy = i == HEAVY;
        devices.push(DemoDevice {
            mac: random_mac(&mut rng, e.oui),
            name: name.clone(),
            kind: e.kind,
            ip: Ipv4Addr::new(192, 168, 178, 10 + (i % 240) as u8),
            busyness: e.busyness,
            peak_mb_per_hour: if heavy { 0.0 } else { mb },
            up_share: up,
            local_ratio: local,
        });
        extra.push((e, name, owner.to_string(), group.to_string()));
    }
    let newcomer = random_mac(&mut rng, Some([0x24, 0x0a, 0xc4]));

    let start_day = {
        let z = jiff::Timestamp::from_second(now)
            .map_err(|e| DemoError::Options(e.to_string()))?
            .to_zoned(tz.clone());
        let today = z
            .start_of_day()
            .map_err(|e| DemoError::Options(e.to_string()))?;
        today
            .checked_sub(jiff::Span::new().days(i64::from(opts.days)))
            .map_err(|e| DemoError::Options(e.to_string()))?
    };

    // The household's plan: a monthly cycle that began about 20 days ago with an allowance the
    // family has already gone past, so the showcase shows the states a family must be told about
    // (exceeded, quotas reached and nearly reached). The start day follows today so every run of
    // the demo is in the same situation.
    let plan = demo_plan(now, &tz)?;
    let cycle = crate::plan::current_cycle(&plan, ts(now)?, &tz);
    // The heavy phone: a steady daily volume that puts this cycle at 94 % of its quota (amber).
    let month_start = cycle.start.as_second();
    let days_in_cycle = ((now - month_start) as f64 / 86_400.0).max(0.5);
    let heavy_per_day = QUOTA_GB * 1e9 * QUOTA_USED / days_in_cycle;

    let mut store = Store::open(db)?;
    let window_ns = i64::try_from(cfg.presence_window_secs).unwrap_or(300) * NS;

    // Identity first (as discovery would have learned it), then the traffic, day by day.
    let mut facts: Vec<MacFacts> = Vec::new();
    let first_ns = start_day.timestamp().as_second() * NS;
    let vendors = crate::discovery::vendor::OuiDb::system().lookup(
        &devices
            .iter()
            .map(|d| d.mac)
            .chain([gateway, newcomer])
            .collect::<Vec<_>>(),
    );
    facts.push(MacFacts {
        mac: gateway,
        spans: vec![(first_ns, now * NS)],
        addresses: vec![(
            IpAddr::V4(Ipv4Addr::new(192, 168, 178, 1)),
            first_ns,
            now * NS,
        )],
        hostnames: vec![("mdns", "fritz.box".into(), first_ns, now * NS)],
        router: true,
        vendor: vendors.get(&gateway).cloned(),
        ..MacFacts::default()
    });

    let retention = crate::store::rollup::Retention::from_config(cfg);
    let fine_from = now - i64::from(cfg.keep_minutes_days.max(1)) * 86_400;
    let mut day = start_day.clone();
    let mut spans: Vec<Vec<(i64, i64)>> = vec![Vec::new(); devices.len()];
    let mut first_day = true;
    loop {
        let d0 = day.timestamp().as_second();
        if d0 > now {
            break;
        }
        let next = day
            .checked_add(jiff::Span::new().days(1))
            .map_err(|e| DemoError::Options(e.to_string()))?;
        let d1 = next.timestamp().as_second().min(now);
        let weekend = matches!(
            day.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        );
        let mut usage: Vec<MinuteUsage> = Vec::new();
        let mut h_start = d0;
        while h_start < d1 {
            let h = usize::try_from(
                jiff::Timestamp::from_second(h_start)
                    .map(|t| t.to_zoned(tz.clone()).hour())
                    .unwrap_or(0),
            )
            .unwrap_or(0)
            .min(23);
            let h_end = (h_start + 3600).min(d1);
            for (i, dev) in devices.iter().enumerate() {
                let a = activity(dev, h, weekend);
                let mut mb = dev.peak_mb_per_hour * a * (0.4 + 1.2 * rng.unit());
                if i == HEAVY {
                    // Phones follow the household rhythm; sum(hourly) spreads the day's volume.
                    let total: f64 = hourly().iter().sum();
                    mb = heavy_per_day / 1e6 * hourly()[h] / total * (0.6 + 0.8 * rng.unit());
                }
                let bytes = (mb * 1e6 * ((h_end - h_start) as f64 / 3600.0)) as u64;
                if bytes < 2_000 && rng.unit() > 0.3 {
                    continue;
                }
                let online = a > 0.04 || matches!(dev.kind, "iot" | "camera" | "nas" | "server");
                if online {
                    match spans[i].last_mut() {
                        Some(last) if last.1 >= h_start - 60 => last.1 = h_end - 1,
                        _ => spans[i].push((h_start, h_end - 1)),
                    }
                }
                let up = (bytes as f64 * dev.up_share) as u64;
                let down = bytes - up;
                let local = (bytes as f64 * dev.local_ratio) as u64;
                if h_start >= fine_from {
                    // Recent days keep minute detail: spread the hour over active 5-minute slots.
                    let mut slots: Vec<i64> = Vec::with_capacity(12);
                    for k in 0..12 {
                        let m = h_start + k * 300 + (rng.below(5) as i64) * 60;
                        if rng.unit() < (0.25 + a).min(1.0) && m < h_end {
                            slots.push(m);
                        }
                    }
                    let n = slots.len().max(1) as u64;
                    for m in slots {
                        usage.push(MinuteUsage {
                            mac: dev.mac,
                            minute: m,
                            counts: counts(down / n, up / n, local / n),
                        });
                    }
                } else {
                    usage.push(MinuteUsage {
                        mac: dev.mac,
                        minute: h_start,
                        counts: counts(down, up, local),
                    });
                }
            }
            h_start = h_end;
        }
        let seen: Vec<Sighting> = if first_day {
            std::iter::once(Sighting {
                mac: gateway,
                first_seen: d0 * NS,
                last_seen: d0 * NS,
                is_gateway: true,
            })
            .collect()
        } else {
            Vec::new()
        };
        first_day = false;
        store.write_flush(&usage, &seen)?;
        store.maintain(&tz, &retention, d1)?;
        day = next;
    }

    for (i, dev) in devices.iter().enumerate() {
        let (e, name, _, _) = &extra[i];
        let last = spans[i].last().map_or(now, |s| s.1);
        facts.push(MacFacts {
            mac: dev.mac,
            spans: spans[i].iter().map(|&(a, b)| (a * NS, b * NS)).collect(),
            addresses: vec![(IpAddr::V4(dev.ip), first_ns, last * NS)],
            hostnames: if matches!(e.kind, "iot" | "camera") {
                Vec::new()
            } else {
                vec![("dhcp", hostname(name), first_ns, last * NS)]
            },
            vendor: vendors.get(&dev.mac).cloned(),
            services: match e.kind {
                "printer" => vec!["_ipp._tcp.local".into()],
                "tv" => vec!["_googlecast._tcp.local".into()],
                "speaker" => vec!["_sonos._tcp.local".into()],
                "nas" => vec!["_smb._tcp.local".into()],
                _ => Vec::new(),
            },
            ..MacFacts::default()
        });
    }
    // The newcomer: an unnamed gadget that joined an hour ago.
    let joined = now - 3600;
    facts.push(MacFacts {
        mac: newcomer,
        spans: vec![(joined * NS, now * NS)],
        addresses: vec![(
            IpAddr::V4(Ipv4Addr::new(192, 168, 178, 251)),
            joined * NS,
            now * NS,
        )],
        hostnames: vec![("dhcp", "ESP_9F21C4".into(), joined * NS, now * NS)],
        vendor: vendors.get(&newcomer).cloned(),
        ..MacFacts::default()
    });
    store.write_discovery(&facts, window_ns, guess)?;
    let joined_usage: Vec<MinuteUsage> = (0..6)
        .map(|k| MinuteUsage {
            mac: newcomer,
            minute: (joined / 60) * 60 + k * 600,
            counts: counts(150_000, 40_000, 2_000),
        })
        .filter(|u| u.minute < now)
        .collect();
    store.write_flush(&joined_usage, &[])?;

    // What the family typed in.
    let all = store.list_devices()?;
    for d in &all {
        let Some(i) = devices.iter().position(|x| x.mac == d.mac) else {
            if d.mac == gateway {
                store.set_user_fields(
                    d.id,
                    &UserFields {
                        name: Some("FRITZ!Box".into()),
                        group: Some("home office".into()),
                        type_override: Some("router".into()),
                        known: true,
                        ..UserFields::default()
                    },
                )?;
            }
            continue;
        };
        let (e, name, owner, group) = &extra[i];
        store.set_user_fields(
            d.id,
            &UserFields {
                name: Some(name.clone()),
                owner: (!owner.is_empty()).then(|| owner.clone()),
                group: (!group.is_empty()).then(|| group.clone()),
                type_override: Some(e.kind.to_string()),
                notes: (i == HEAVY).then(|| {
                    format!("Allowance of {QUOTA_GB:.0} GB a billing cycle, agreed with Leo.")
                }),
                known: true,
                ignored: false,
            },
        )?;
    }
    store.maintain(&tz, &retention, now)?;
    store.set_plan(&plan, now)?;
    let heavy = devices.get(HEAVY).map_or(newcomer, |d| d.mac);
    for (subject, period, gb) in [
        (QuotaSubject::Device(heavy), QuotaPeriod::Cycle, QUOTA_GB),
        (
            QuotaSubject::Person("Leo".into()),
            QuotaPeriod::Cycle,
            LEO_GB,
        ),
        (
            QuotaSubject::Group("the kids".into()),
            QuotaPeriod::Cycle,
            KIDS_GB,
        ),
    ] {
        store.upsert_quota(&subject, period, (gb * 1e9) as u64, now)?;
    }
    let heavy = devices.get(HEAVY).map_or(newcomer, |d| d.mac);
    if let Some(h) = devices.get_mut(HEAVY) {
        h.peak_mb_per_hour = 180.0;
    }
    Ok(Demo {
        gateway,
        devices,
        newcomer,
        heavy,
    })
}

/// The discovery type guess, as the daemon makes it.
fn guess(p: &Profile) -> Option<&'static str> {
    crate::discovery::devtype::guess(&crate::discovery::devtype::Evidence {
        router: p.router,
        services: &p.services,
        vendor_class: p.vendor_class.as_deref(),
        hostnames: &p.hostnames,
        vendor: p.vendor.as_deref(),
    })
}

/// Internet addresses the synthetic traffic talks to (well-known CDN ranges).
const REMOTES: [[u8; 4]; 4] = [
    [142, 250, 185, 78],
    [151, 101, 65, 140],
    [45, 57, 90, 1],
    [104, 16, 132, 229],
];

/// Feeds synthetic frames for `demo`'s devices into `meter` (and the placement `watch`, as the
/// daemon's capture does) four times a second and flushes the meter into `db` every
/// `cfg.flush_interval_secs`, as the daemon does, until `stop` is set.
pub fn spawn_live(
    demo: Demo,
    meter: SharedMeter,
    watch: crate::placement::Watch,
    db: std::path::PathBuf,
    cfg: Config,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("demo-traffic".into())
        .spawn(move || {
            if let Err(e) = live_loop(&demo, &meter, &watch, &db, &cfg, &stop) {
                tracing::error!(error = %e, "the demo's synthetic traffic stopped");
            }
        })
}

fn live_loop(
    demo: &Demo,
    meter: &SharedMeter,
    watch: &crate::placement::Watch,
    db: &std::path::Path,
    cfg: &Config,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let tz = cfg.time_zone();
    let retention = crate::store::rollup::Retention::from_config(cfg);
    let mut flusher = Flusher::new(Store::open(db)?);
    let interval = Duration::from_secs(cfg.flush_interval_secs.max(1));
    let tick = Duration::from_millis(250);
    let mut rng = Rng::new(0x5eed);
    let mut next_flush = Instant::now() + interval;
    let mut next_maintenance = Instant::now() + Duration::from_secs(600);
    // Each device is in a "burst" or idle; bursts give the live rate its ups and downs.
    let mut burst: Vec<f64> = vec![1.0; demo.devices.len()];
    meter.with(|m| m.set_gateway(Some(demo.gateway)));
    let mut frames: Vec<Frame> = Vec::with_capacity(512);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        let now = jiff::Timestamp::now();
        let z = now.to_zoned(tz.clone());
        let h = usize::try_from(z.hour()).unwrap_or(0).min(23);
        let weekend = matches!(
            z.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        );
        let ts = now.as_nanosecond() as i64;
        frames.clear();
        for (i, d) in demo.devices.iter().enumerate() {
            if rng.unit() < 0.02 {
                burst[i] = if rng.unit() < 0.5 {
                    0.1
                } else {
                    0.5 + 2.5 * rng.unit()
                };
            }
            // A live floor, so that even at night the demo rate visibly moves.
            let a = activity(d, h, weekend).max(0.15) * burst[i];
            let bytes = (d.peak_mb_per_hour * 1e6 * a * tick.as_secs_f64() / 3600.0) as u64;
            if bytes == 0 {
                continue;
            }
            let up = (bytes as f64 * d.up_share) as u64;
            let remote = u32::from_be_bytes(REMOTES[i % REMOTES.len()]);
            let ip = u32::from(d.ip);
            for (src, dst, total, ips) in [
                (
                    demo.gateway,
                    d.mac,
                    bytes - up,
                    IpPair::V4 {
                        src: remote,
                        dst: ip,
                    },
                ),
                (
                    d.mac,
                    demo.gateway,
                    up,
                    IpPair::V4 {
                        src: ip,
                        dst: remote,
                    },
                ),
            ] {
                if total == 0 {
                    continue;
                }
                // Large frames stand in for GRO/TSO aggregates: a few per tick, not thousands.
                let n = total.div_ceil(60_000).min(16);
                for _ in 0..n {
                    frames.push(Frame {
                        ts,
                        wire_len: u32::try_from(total / n).unwrap_or(u32::MAX).max(60),
                        src,
                        dst: Dest::Unicast(dst),
                        ethertype: 0x0800,
                        ip: ips,
                        ..Frame::EMPTY
                    });
                }
            }
        }
        meter.with(|m| m.ingest_batch(&frames));
        watch.observe(&frames, Some(demo.gateway));
        let t = Instant::now();
        if t >= next_flush {
            next_flush = t + interval;
            let delta = meter.take_delta();
            if let Err(e) = flusher.flush_delta(&delta, interval) {
                tracing::warn!(error = %e, "demo flush failed; retried next interval");
            }
        }
        if t >= next_maintenance {
            next_maintenance = t + Duration::from_secs(600);
            if let Err(e) = flusher
                .store_mut()
                .maintain(&tz, &retention, now.as_second())
            {
                tracing::warn!(error = %e, "demo history maintenance failed");
            }
        }
    }
    let delta = meter.take_delta();
    flusher.flush_delta(&delta, interval).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_demo_household_has_history_names_a_newcomer_and_a_heavy_phone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("demo.db");
        let cfg = Config {
            timezone: Some("UTC".into()),
            ..Config::default()
        };
        // 2026-03-15T18:30:00Z
        let now = 1_773_599_400;
        let demo = build(
            &db,
            &cfg,
            &DemoOptions {
                devices: 25,
                days: 24,
                seed: 1,
            },
            now,
        )
        .unwrap();
        let store = Store::open(&db).unwrap();
        let devices = store.list_devices().unwrap();
        assert_eq!(devices.len(), 27, "25 devices, the router and the newcomer");
        let newcomer = devices.iter().find(|d| d.mac == demo.newcomer).unwrap();
        assert!(newcomer.user.name.is_none() && !newcomer.user.known);
        assert!(newcomer.first_seen_ns >= (now - 3600) * NS);
        let heavy = devices.iter().find(|d| d.mac == demo.heavy).unwrap();
        assert!(heavy.user.notes.as_deref().unwrap().contains("30 GB"));
        let tz = cfg.time_zone();
        let t = |s| jiff::Timestamp::from_second(s).unwrap();
        // The plan's cycle began 20 days before 2026-03-15: on 2026-02-23.
        let plan = store.plan().unwrap();
        assert_eq!(plan.cycle, CycleRule::Monthly { start_day: 23 });
        assert_eq!(plan.allowance_bytes, Some(400_000_000_000));
        assert_eq!(store.quotas().unwrap().len(), 3);
        let c0 = 1_771_804_800; // 2026-02-23T00:00Z
        let u = store
            .usage(
                &crate::store::query::Selection::device(demo.heavy),
                &tz,
                t(c0),
                t(now + 1),
            )
            .unwrap();
        let inet = u.counts.internet_download_bytes + u.counts.internet_upload_bytes;
        // 24 days of history reach back before the cycle: it holds about 94 % of 30 GB.
        assert!((24e9..30e9).contains(&(inet as f64)), "{inet}");
        let owners: std::collections::BTreeSet<_> = devices
            .iter()
            .filter_map(|d| d.user.owner.clone())
            .collect();
        assert!(owners.len() >= 4, "{owners:?}");
        assert!(matches!(
            build(&db, &cfg, &DemoOptions::default(), now),
            Err(DemoError::Exists(_))
        ));
    }
}
