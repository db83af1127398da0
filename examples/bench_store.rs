//! `make bench`, history part: the database after one simulated year of a 200-device household
//! with the default retention, one flush of 1,000 active devices on top of it, and the latency
//! of the heaviest history queries. Prints JSON (bench/run.sh stores it as bench-out/store.json;
//! bench/report.py turns it into BENCHMARKS.md).
//!
//! The year is simulated by direct store writes (one transaction per simulated hour, the daemon's
//! hourly maintenance after each), not by capturing: activity follows a day/night rhythm per kind
//! of device (always-on gadgets, phones, laptops, TVs, rare visitors).
//!
//! Usage: bench_store DIR [DAYS]   (DAYS defaults to 365)

use lanmeter::config::Config;
use lanmeter::flush::Flusher;
use lanmeter::model::{Counts, MacAddr, MinuteUsage, Sighting};
use lanmeter::store::Store;
use lanmeter::store::export::{self, Format, Period};
use lanmeter::store::query::Selection;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const DEVICES: u64 = 200;

fn mac(n: u64) -> MacAddr {
    MacAddr::from_u64(0xdca6_3200_0000 | n)
}

/// Probability that device `d` has traffic in a minute at local hour `h`, and its typical
/// bytes per active minute.
fn activity(d: u64, h: i64) -> (f64, u64) {
    let day = (7..23).contains(&h);
    let evening = (18..23).contains(&h);
    match d % 5 {
        0 => (0.9, 20_000),                                  // always-on gadgets
        1 => (if day { 0.5 } else { 0.08 }, 400_000),        // phones
        2 => (if day { 0.35 } else { 0.0 }, 2_000_000),      // laptops
        3 => (if evening { 0.7 } else { 0.03 }, 30_000_000), // TVs
        _ => (if day { 0.05 } else { 0.0 }, 100_000),        // rare visitors
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Five timed runs of `f`, in milliseconds (the report takes their median and range).
fn median_ms(mut f: impl FnMut()) -> Vec<f64> {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            ms(t.elapsed())
        })
        .collect()
}

fn file_size(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: bench_store DIR [DAYS]")?);
    let days: i64 = args.next().map(|d| d.parse()).transpose()?.unwrap_or(365);
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("year.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let cfg = Config {
        timezone: Some("Europe/Berlin".into()),
        ..Config::default()
    };
    let tz = cfg.time_zone();
    let retention = lanmeter::store::rollup::Retention::from_config(&cfg);
    let mut store = Store::open(&db)?;
    let mut rng = Rng(42);
    // 2025-01-01T00:00:00+01:00
    let start = 1_735_686_000i64;
    let sightings: Vec<Sighting> = (0..DEVICES)
        .map(|d| Sighting {
            mac: mac(d),
            first_seen: start * 1_000_000_000,
            last_seen: start * 1_000_000_000,
            is_gateway: d == 0,
        })
        .collect();

    let t0 = Instant::now();
    let mut rows = 0u64;
    let mut maintenance = Duration::ZERO;
    let mut max_maintenance = Duration::ZERO;
    for hour in 0..days * 24 {
        let base = start + hour * 3600;
        let local_h = hour % 24;
        let mut usage = Vec::with_capacity(8000);
        for m in 0..60 {
            let minute = base + m * 60;
            for d in 0..DEVICES {
                let (p, typical) = activity(d, local_h);
                if rng.unit() >= p {
                    continue;
                }
                let sent = 60 + rng.below(typical / 4);
                let received = 60 + rng.below(typical);
                usage.push(MinuteUsage {
                    mac: mac(d),
                    minute,
                    counts: Counts {
                        frames_sent: sent / 600 + 1,
                        frames_received: received / 1200 + 1,
                        bytes_sent: sent,
                        bytes_received: received,
                        internet_upload_bytes: sent * 9 / 10,
                        internet_download_bytes: received * 9 / 10,
                    },
                });
            }
        }
        rows += usage.len() as u64;
        store.write_flush(&usage, if hour == 0 { &sightings } else { &[] })?;
        let t = Instant::now();
        store.maintain(&tz, &retention, base + 3600)?;
        let took = t.elapsed();
        maintenance += took;
        max_maintenance = max_maintenance.max(took);
    }
    let simulated = t0.elapsed();
    let end = start + days * 86_400;
    let levels = store.level_rows()?;
    let db_bytes = file_size(&db);
    let wal_bytes = file_size(&dir.join("year.db-wal"));

    // The heaviest queries, on the year of history.
    let ts = |s: i64| jiff::Timestamp::from_second(s).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let (year_from, to) = (ts(start), ts(end));
    let q92 = ts(end - 92 * 86_400);
    let mut queries: Vec<(&str, Vec<f64>)> = Vec::new();
    queries.push((
        "top 10 devices, whole year",
        median_ms(|| {
            store
                .top_devices(&tz, year_from, to, 10)
                .map(drop)
                .unwrap_or(());
        }),
    ));
    queries.push((
        "household total, unaligned year (…:17:30 to …:42:10)",
        median_ms(|| {
            store
                .usage(
                    &Selection::Household,
                    &tz,
                    ts(start + 3 * 86_400 + 1050),
                    ts(end - 1070),
                )
                .map(drop)
                .unwrap_or(());
        }),
    ));
    let cycles: Vec<_> = (0..12)
        .map(|i| {
            (
                ts(start + i * 30 * 86_400),
                ts(start + (i + 1) * 30 * 86_400),
            )
        })
        .collect();
    queries.push((
        "household per billing cycle, 12 cycles",
        median_ms(|| {
            store
                .usage_per_cycle(&Selection::Household, &tz, &cycles)
                .map(drop)
                .unwrap_or(());
        }),
    ));
    queries.push((
        "household series, last 92 days (auto: day)",
        median_ms(|| {
            store
                .usage_series(&Selection::Household, &tz, q92, to, None)
                .map(drop)
                .unwrap_or(());
        }),
    ));
    queries.push((
        "household series, last 7 days (auto: hour)",
        median_ms(|| {
            store
                .usage_series(&Selection::Household, &tz, ts(end - 7 * 86_400), to, None)
                .map(drop)
                .unwrap_or(());
        }),
    ));
    queries.push((
        "heatmap weekday × hour, household, last 92 days",
        median_ms(|| {
            store
                .heatmap(&Selection::Household, &tz, q92, to)
                .map(drop)
                .unwrap_or(());
        }),
    ));
    queries.push((
        "presence, all devices, last 30 days",
        median_ms(|| {
            store
                .active_minutes(&tz, ts(end - 30 * 86_400), to)
                .map(drop)
                .unwrap_or(());
        }),
    ));
    queries.push((
        "export --period day, whole year, all devices (to /dev/null)",
        median_ms(|| {
            let _ = export::export(
                &store,
                Period::Day,
                Some(year_from),
                Some(to),
                None,
                &tz,
                Format::Csv,
                &mut std::io::sink(),
            );
        }),
    ));
    queries.push((
        "export --period hour, last 30 days, all devices",
        median_ms(|| {
            let _ = export::export(
                &store,
                Period::Hour,
                Some(ts(end - 30 * 86_400)),
                Some(to),
                None,
                &tz,
                Format::Json,
                &mut std::io::sink(),
            );
        }),
    ));
    drop(store);

    // The flush rounds run twice from the same state: on the year's file here, and on a copy
    // in /dev/shm (tmpfs, where fsync costs nothing), which separates the CPU and SQLite work
    // from the storage's sync latency (the store commits with synchronous=FULL).
    let shm =
        std::path::Path::new("/dev/shm").join(format!("lanmeter-bench-{}", std::process::id()));
    let shm_db = shm.join("year.db");
    let on_tmpfs = std::fs::create_dir_all(&shm).is_ok()
        && std::fs::copy(&db, &shm_db).is_ok()
        && ["-wal", "-shm"].iter().all(|s| {
            let from = format!("{}{s}", db.display());
            !std::path::Path::new(&from).exists()
                || std::fs::copy(&from, format!("{}{s}", shm_db.display())).is_ok()
        });
    let (flush_ms, flush_cpu_ms) = flush_rounds(&db, end)?;
    let tmpfs = if on_tmpfs {
        Some(flush_rounds(&shm_db, end)?)
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&shm);
    let maintenance_mean_ms = ms(maintenance) / (days * 24) as f64;
    let report = serde_json::json!({
        "command": format!("bench_store DIR {days}"),
        "days": days,
        "devices": DEVICES,
        "device_minute_rows": rows,
        "simulate_secs": simulated.as_secs_f64(),
        "timezone": "Europe/Berlin",
        "retention": {
            "keep_minutes_days": cfg.keep_minutes_days,
            "keep_hours_days": cfg.keep_hours_days,
            "keep_days_months": cfg.keep_days_months,
            "keep_months_years": cfg.keep_months_years,
        },
        "db_bytes": db_bytes,
        "wal_bytes": wal_bytes,
        "rows_kept": {"minute": levels[0], "hour": levels[1], "day": levels[2], "month": levels[3]},
        "maintenance_mean_ms": maintenance_mean_ms,
        "maintenance_max_ms": ms(max_maintenance),
        // Twelve flushes of 1,000 devices; the first one inserts 800 new devices.
        "flush_1000_ms": flush_ms,
        "flush_1000_cpu_ms_mean": flush_cpu_ms,
        "flush_1000_tmpfs_ms": tmpfs.as_ref().map(|t| t.0.clone()),
        "flush_1000_tmpfs_cpu_ms_mean": tmpfs.as_ref().map(|t| t.1),
        "queries": queries
            .iter()
            .map(|(name, samples)| serde_json::json!({"query": name, "ms": samples}))
            .collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// This thread's CPU time (user + system) in clock ticks of 10 ms, from /proc/thread-self/stat.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which may contain spaces, so split after its ')').
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Twelve flushes of 1,000 active devices on `db` (800 of them new to the year's 200), six per
/// minute as with the default 10 s interval: each flush's wall time in ms, and the mean CPU time
/// per flush in ms (10 ms ticks summed over the twelve).
fn flush_rounds(
    db: &std::path::Path,
    end: i64,
) -> Result<(Vec<f64>, Option<f64>), Box<dyn std::error::Error>> {
    let mut flusher = Flusher::new(Store::open(db)?);
    let mut flush_ms = Vec::new();
    let cpu0 = cpu_ticks();
    for round in 0..12i64 {
        let minute = end + (round / 6) * 60;
        let usage: Vec<MinuteUsage> = (0..1000)
            .map(|d| MinuteUsage {
                mac: mac(d),
                minute,
                counts: Counts {
                    frames_sent: 3,
                    bytes_sent: 1500 + d,
                    ..Counts::default()
                },
            })
            .collect();
        let seen: Vec<Sighting> = usage
            .iter()
            .map(|u| Sighting {
                mac: u.mac,
                first_seen: minute * 1_000_000_000,
                last_seen: minute * 1_000_000_000,
                is_gateway: false,
            })
            .collect();
        flush_ms.push(ms(flusher.flush(usage, seen)?.duration));
    }
    let cpu = match (cpu0, cpu_ticks()) {
        (Some(a), Some(b)) => Some((b - a) as f64 * 10.0 / 12.0),
        _ => None,
    };
    Ok((flush_ms, cpu))
}
