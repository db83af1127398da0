//! Property and DST tests of the rollups, retention and query planner against the raw minutes.
//!
//! Each property loops over seeded random cases (a failing case prints its seed), with random
//! data written in flushes interleaved with rollups, late minutes included, in zones with DST
//! and half-hour offsets. The oracle is a plain map of every minute ever written.
use super::Store;
use super::period::{Period, bucket_secs};
use super::query::{DeviceUsage, Selection, ceil_minute, month_complements, plan};
use super::rollup::Retention;
use super::usage::tests::mac;
use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::BTreeMap;

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
];

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

/// splitmix64: a seeded, dependency-free generator; the same seed gives the same case.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn below(rng: &mut Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

fn random_counts(rng: &mut Rng) -> Counts {
    let bytes = 60 + below(rng, 100_000);
    Counts {
        frames_sent: 1 + below(rng, 50),
        frames_received: below(rng, 50),
        bytes_sent: bytes,
        bytes_received: below(rng, 200_000),
        internet_upload_bytes: below(rng, bytes),
        internet_download_bytes: below(rng, 1000),
    }
}

/// Every minute written, per device: the oracle.
type Oracle = BTreeMap<(MacAddr, i64), Counts>;

fn oracle_sum(o: &Oracle, pick: impl Fn(MacAddr) -> bool, lo: i64, hi: i64) -> (Counts, u64) {
    let mut c = Counts::default();
    let mut n = 0;
    for (&(m, minute), v) in o {
        if pick(m) && minute >= lo && minute < hi {
            c.add(v);
            n += 1;
        }
    }
    (c, n)
}

const GATEWAY: u64 = 90;

fn devices() -> Vec<MacAddr> {
    let mut v: Vec<MacAddr> = (1..=4).map(mac).collect();
    v.push(mac(GATEWAY));
    v.push(super::query::OTHER);
    v
}

/// Writes random minutes over `span` seconds from `base` in several flushes, rolling up at
/// increasing times in between; later flushes also carry minutes older than the watermarks.
fn fill(store: &mut Store, rng: &mut Rng, tz: &TimeZone, base: i64, span: i64) -> Oracle {
    let mut oracle = Oracle::new();
    let devs = devices();
    let flushes = 6;
    for f in 0..flushes {
        let mut usage = Vec::new();
        for _ in 0..400 {
            // Mostly in this flush's slice of time, sometimes anywhere earlier (late data).
            let slice_end = base + span * (f + 1) / flushes;
            let from = if below(rng, 5) == 0 {
                base
            } else {
                base + span * f / flushes
            };
            let minute = (from + below(rng, (slice_end - from) as u64) as i64) / 60 * 60;
            let m = devs[below(rng, devs.len() as u64) as usize];
            let c = random_counts(rng);
            oracle.entry((m, minute)).or_default().add(&c);
            usage.push(MinuteUsage {
                mac: m,
                minute,
                counts: c,
            });
        }
        let seen: Vec<Sighting> = devs
            .iter()
            .map(|&m| Sighting {
                mac: m,
                first_seen: base * 1_000_000_000,
                last_seen: base * 1_000_000_000,
                is_gateway: m == mac(GATEWAY),
            })
            .collect();
        store.write_flush(&usage, &seen).unwrap();
        let now = base + span * (f + 1) / flushes;
        store.roll_up(tz, now).unwrap();
    }
    oracle
}

/// A retention short enough that some random ranges of a 30-70-day history are inexact.
fn short_retention(rng: &mut Rng) -> Retention {
    let days = |n: u64| Some(n as i64 * 86_400);
    Retention {
        minutes: days(1 + below(rng, 5)),
        hours: days(3 + below(rng, 10)),
        days: days(20 + below(rng, 20)),
        months: None,
    }
}

fn random_range(rng: &mut Rng, base: i64, span: i64) -> (i64, i64) {
    let a = base - 86_400 + below(rng, (span + 2 * 86_400) as u64) as i64;
    // Short, medium and long ranges, at second precision (not minute-aligned).
    let len = match below(rng, 3) {
        0 => below(rng, 3 * 3600) as i64 + 1,
        1 => below(rng, 10 * 86_400) as i64 + 1,
        _ => below(rng, span as u64 + 86_400) as i64 + 1,
    };
    (a, a + len)
}

#[test]
fn totals_over_random_ranges_are_the_same_from_every_level() {
    let mut coarse_segments = 0;
    for case in 0..10u64 {
        let mut rng = Rng::new(0x5eed_0000 + case);
        let tz = TimeZone::get(ZONES[case as usize % ZONES.len()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("p.db")).unwrap();
        // Spans the 2024 DST changes of both hemispheres for some seeds.
        let base = 1_704_067_200 + below(&mut rng, 300) as i64 * 86_400 + 37 * 60;
        let span = (40 + below(&mut rng, 50) as i64) * 86_400;
        let oracle = fill(&mut store, &mut rng, &tz, base, span);
        store.roll_up(&tz, base + span + 40 * 86_400).unwrap();
        let cov = store.coverage(&tz).unwrap();

        for _ in 0..25 {
            let (a, b) = random_range(&mut rng, base, span);
            let (lo, hi) = (ceil_minute(ts(a)), ceil_minute(ts(b)));
            let ctx = format!("seed case {case} zone {tz:?} range {a}..{b}");
            for m in devices() {
                let (want, active) = oracle_sum(&oracle, |x| x == m, lo, hi);
                let got = store
                    .usage(&Selection::device(m), &tz, ts(a), ts(b))
                    .unwrap();
                assert!(got.exact, "{ctx}");
                assert_eq!(
                    (got.counts, got.active_minutes),
                    (want, active),
                    "{ctx} {m}"
                );
            }
            let (want, _) = oracle_sum(&oracle, |x| x != mac(GATEWAY), lo, hi);
            let hh = store
                .usage(&Selection::Household, &tz, ts(a), ts(b))
                .unwrap();
            assert_eq!(hh.counts, want, "household without the gateway: {ctx}");
            // Per level: a series of that size reads from that level and finer only.
            for period in Period::ALL {
                let p = plan(&cov, &tz, lo, hi, period).unwrap();
                coarse_segments += p.segments.iter().filter(|s| s.level > Period::Hour).count();
                assert!(p.segments.iter().all(|s| s.level <= period), "{ctx}");
                let s = store
                    .usage_series(&Selection::All, &tz, ts(a), ts(b), Some(period))
                    .unwrap();
                let mut sum = Counts::default();
                for pt in &s.points {
                    sum.add(&pt.counts);
                    let (start, _) = bucket_secs(period, pt.start.as_second(), &tz).unwrap();
                    assert_eq!(start, pt.start.as_second(), "points start on boundaries");
                }
                let (want, _) = oracle_sum(&oracle, |_| true, lo, hi);
                assert_eq!(sum, want, "{period} series: {ctx}");
            }
        }
        // Whole buckets read straight from each level's table equal the oracle too.
        for level in [Period::Hour, Period::Day, Period::Month] {
            let rows = level_rows(&store, level);
            assert!(!rows.is_empty());
            for ((m, start), c) in rows {
                let (_, end) = bucket_secs(level, start, &tz).unwrap();
                assert_eq!(c, oracle_sum(&oracle, |x| x == m, start, end).0, "{level}");
            }
        }
    }
    assert!(coarse_segments > 100, "day and month rows were really used");
}

fn level_rows(store: &Store, level: Period) -> BTreeMap<(MacAddr, i64), Counts> {
    let mut out = BTreeMap::new();
    let seg = super::query::Segment {
        level,
        from: i64::MIN,
        to: i64::MAX,
    };
    store
        .for_each_row(
            seg,
            &Selection::All,
            super::query::Group::BucketDevice,
            |r| {
                out.insert((r.mac, r.start), r.counts);
                Ok::<(), super::StoreError>(())
            },
        )
        .unwrap();
    out
}

#[test]
fn retention_deletes_only_rows_older_than_their_horizon() {
    for case in 0..8u64 {
        let mut rng = Rng::new(0x7e7e_0000 + case);
        let tz = TimeZone::get(ZONES[case as usize % ZONES.len()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.db")).unwrap();
        let base = 1_704_067_200 + below(&mut rng, 300) as i64 * 86_400;
        let span = 70 * 86_400;
        let oracle = fill(&mut store, &mut rng, &tz, base, span);
        let now = base + span + below(&mut rng, 20 * 86_400) as i64;
        store.roll_up(&tz, now).unwrap();
        let before: Vec<_> = Period::ALL.map(|l| level_rows(&store, l)).to_vec();
        let days = |n: u64| Some(n as i64 * 86_400);
        let retention = Retention {
            minutes: days(1 + below(&mut rng, 10)),
            hours: days(5 + below(&mut rng, 40)),
            days: days(20 + below(&mut rng, 60)),
            months: if below(&mut rng, 2) == 0 {
                None
            } else {
                days(40 + below(&mut rng, 40))
            },
        };
        let deleted = store.apply_retention(&retention, now).unwrap();
        let after: Vec<_> = Period::ALL.map(|l| level_rows(&store, l)).to_vec();
        let horizons = [
            retention.minutes,
            retention.hours,
            retention.days,
            retention.months,
        ];
        for (i, level) in Period::ALL.into_iter().enumerate() {
            let gone = before[i].len() - after[i].len();
            assert_eq!(gone as u64, deleted[i], "{level} case {case}");
            for (key, c) in &before[i] {
                let cutoff = horizons[i].map_or(i64::MIN, |h| now - h);
                match after[i].get(key) {
                    Some(kept) => assert_eq!(kept, c, "{level}: kept rows unchanged"),
                    None => assert!(
                        key.1 < cutoff,
                        "case {case}: {level} row at {} deleted but the horizon is {cutoff}",
                        key.1
                    ),
                }
                if key.1 >= cutoff {
                    assert!(
                        after[i].contains_key(key),
                        "{level} row inside horizon kept"
                    );
                }
            }
        }
        assert!(deleted[0] > 0, "case {case}: minutes were old enough to go");
        // What retention removed is still counted by the coarser levels.
        let month0 = bucket_secs(Period::Month, base, &tz).unwrap().0;
        if retention.months.is_none() {
            for m in devices() {
                let got = store
                    .usage(&Selection::device(m), &tz, ts(month0), ts(now + 86_400))
                    .unwrap();
                assert!(got.exact, "case {case}");
                assert_eq!(
                    got.counts,
                    oracle_sum(&oracle, |x| x == m, month0, now + 86_400).0
                );
            }
        }
        // Inside the minute horizon, any range is still exact to the minute.
        let recent = now - retention.minutes.unwrap_or(0) + 60;
        for _ in 0..10 {
            let a = recent + below(&mut rng, (now - recent).max(1) as u64) as i64;
            let b = a + 1 + below(&mut rng, 7200) as i64;
            let got = store.usage(&Selection::All, &tz, ts(a), ts(b)).unwrap();
            let (lo, hi) = (ceil_minute(ts(a)), ceil_minute(ts(b)));
            assert!(got.exact);
            assert_eq!(got.counts, oracle_sum(&oracle, |_| true, lo, hi).0);
        }
    }
}

/// Writes `counts(1)` for device 1 every minute of `[from, to)` in one flush.
fn every_minute(store: &mut Store, from: &str, to: &str) {
    let (a, b) = (
        from.parse::<Timestamp>().unwrap().as_second(),
        to.parse::<Timestamp>().unwrap().as_second(),
    );
    let usage: Vec<MinuteUsage> = (a..b)
        .step_by(60)
        .map(|m| MinuteUsage {
            mac: mac(1),
            minute: m,
            counts: super::usage::tests::counts(1),
        })
        .collect();
    store.write_flush(&usage, &[]).unwrap();
}

fn day_minutes(store: &Store, tz: &TimeZone, from: &str, to: &str) -> Vec<(String, u64)> {
    store
        .usage_series(
            &Selection::device(mac(1)),
            tz,
            from.parse().unwrap(),
            to.parse().unwrap(),
            Some(Period::Day),
        )
        .unwrap()
        .points
        .iter()
        .map(|p| {
            (
                p.start.to_zoned(tz.clone()).date().to_string(),
                p.active_minutes,
            )
        })
        .collect()
}

#[test]
fn berlin_day_rollups_have_23_and_25_hours() {
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("b.db")).unwrap();
    every_minute(&mut store, "2024-03-29T23:00:00Z", "2024-04-01T22:00:00Z");
    every_minute(&mut store, "2024-10-25T22:00:00Z", "2024-10-28T23:00:00Z");
    store
        .maintain(&tz, &Retention::FOREVER, 1_735_689_600)
        .unwrap();
    let st = store.history_state().unwrap().unwrap();
    assert_eq!(st.zone, "Europe/Berlin");
    let spring = day_minutes(&store, &tz, "2024-03-29T23:00:00Z", "2024-04-01T22:00:00Z");
    assert_eq!(
        spring,
        [
            ("2024-03-30".to_string(), 1440),
            ("2024-03-31".to_string(), 23 * 60),
            ("2024-04-01".to_string(), 1440)
        ]
    );
    let fall = day_minutes(&store, &tz, "2024-10-25T22:00:00Z", "2024-10-28T23:00:00Z");
    assert_eq!(fall[1], ("2024-10-27".to_string(), 25 * 60));
    // The stored day rows themselves start at local midnights.
    let days = level_rows(&store, Period::Day);
    let starts: Vec<String> = days
        .keys()
        .map(|(_, s)| ts(*s).to_zoned(tz.clone()).to_string())
        .collect();
    assert!(starts.contains(&"2024-03-31T00:00:00+01:00[Europe/Berlin]".to_string()));
    assert!(starts.contains(&"2024-04-01T00:00:00+02:00[Europe/Berlin]".to_string()));
    assert!(starts.contains(&"2024-10-27T00:00:00+02:00[Europe/Berlin]".to_string()));
    assert!(starts.contains(&"2024-10-28T00:00:00+01:00[Europe/Berlin]".to_string()));
    // The month of March holds its 23-hour day exactly once.
    let march = store
        .usage(
            &Selection::device(mac(1)),
            &tz,
            "2024-02-29T23:00:00Z".parse().unwrap(),
            "2024-03-31T22:00:00Z".parse().unwrap(),
        )
        .unwrap();
    assert_eq!(march.active_minutes, 1440 + 23 * 60, "March 30 and 31");
    assert!(march.exact);
}

#[test]
fn new_york_fall_back_hour_one_is_two_hours_in_the_heatmap() {
    let tz = TimeZone::get("America/New_York").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("n.db")).unwrap();
    // Sat 2024-11-02 00:00 EDT .. Mon 2024-11-04 00:00 EST.
    every_minute(&mut store, "2024-11-02T04:00:00Z", "2024-11-04T05:00:00Z");
    store
        .maintain(&tz, &Retention::FOREVER, 1_735_689_600)
        .unwrap();
    let days = day_minutes(&store, &tz, "2024-11-02T04:00:00Z", "2024-11-04T05:00:00Z");
    assert_eq!(
        days,
        [
            ("2024-11-02".to_string(), 1440),
            ("2024-11-03".to_string(), 25 * 60)
        ]
    );
    let hm = store
        .heatmap(
            &Selection::device(mac(1)),
            &tz,
            "2024-11-02T04:00:00Z".parse().unwrap(),
            "2024-11-04T05:00:00Z".parse().unwrap(),
        )
        .unwrap();
    assert!(hm.exact);
    // Sunday is weekday 6 (Monday = 0); its 01:00 happened twice.
    assert_eq!(hm.cells[6][1].frames_sent, 120);
    assert_eq!(hm.cells[6][2].frames_sent, 60);
    assert_eq!(hm.cells[5][1].frames_sent, 60, "Saturday");
    let hours: Vec<(String, u64)> = store
        .usage_series(
            &Selection::Household,
            &tz,
            "2024-11-03T04:00:00Z".parse().unwrap(),
            "2024-11-03T08:00:00Z".parse().unwrap(),
            None,
        )
        .map(|s| {
            assert_eq!(s.period, Period::Hour, "4 hours: hourly points");
            s.points
                .iter()
                .map(|p| (p.start.to_zoned(tz.clone()).to_string(), p.active_minutes))
                .collect()
        })
        .unwrap();
    assert_eq!(
        hours[1..3],
        [
            (
                "2024-11-03T01:00:00-04:00[America/New_York]".to_string(),
                60
            ),
            (
                "2024-11-03T01:00:00-05:00[America/New_York]".to_string(),
                60
            )
        ]
    );
}

#[test]
fn top_n_cycles_and_presence() {
    let tz = TimeZone::UTC;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("t.db")).unwrap();
    let mk = |m: MacAddr, minute: i64, bytes: u64| MinuteUsage {
        mac: m,
        minute,
        counts: Counts {
            bytes_sent: bytes,
            frames_sent: 1,
            ..Counts::default()
        },
    };
    let day = 86_400;
    let mut usage = Vec::new();
    for d in 0..60 {
        usage.push(mk(mac(1), d * day, 10));
        usage.push(mk(mac(2), d * day + 60, 20));
        usage.push(mk(mac(GATEWAY), d * day, 1000));
        usage.push(mk(super::query::OTHER, d * day, 500));
    }
    let seen = [Sighting {
        mac: mac(GATEWAY),
        first_seen: 0,
        last_seen: 0,
        is_gateway: true,
    }];
    store.write_flush(&usage, &seen).unwrap();
    store.maintain(&tz, &Retention::FOREVER, 90 * day).unwrap();
    let top = store.top_devices(&tz, ts(0), ts(60 * day), 5).unwrap();
    let got: Vec<(MacAddr, u64)> = top.iter().map(|d| (d.mac, d.total_bytes())).collect();
    assert_eq!(got, [(mac(2), 1200), (mac(1), 600)]);
    let cycles = [(ts(0), ts(31 * day)), (ts(31 * day), ts(60 * day))];
    let per = store
        .usage_per_cycle(&Selection::Household, &tz, &cycles)
        .unwrap();
    assert_eq!(per[0].counts.bytes_sent, 31 * 530);
    assert_eq!(
        per[1].counts.bytes_sent,
        29 * 530,
        "other included, gateway not"
    );
    let presence: BTreeMap<MacAddr, u64> = store
        .active_minutes(&tz, ts(0), ts(10 * day))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(presence[&mac(1)], 10);
    assert!(!presence.contains_key(&super::query::OTHER));
}

#[test]
fn changing_the_zone_rebuilds_rollups_while_minutes_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("z.db")).unwrap();
    every_minute(&mut store, "2024-03-29T23:00:00Z", "2024-04-01T22:00:00Z");
    store.roll_up(&TimeZone::UTC, 1_735_689_600).unwrap();
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    store.roll_up(&berlin, 1_735_689_600).unwrap();
    assert_eq!(
        store.history_state().unwrap().unwrap().zone,
        "Europe/Berlin"
    );
    let spring = day_minutes(
        &store,
        &berlin,
        "2024-03-29T23:00:00Z",
        "2024-04-01T22:00:00Z",
    );
    assert_eq!(spring[1], ("2024-03-31".to_string(), 23 * 60));
    // A query in another zone than the rollups' still answers exactly, from the minutes.
    let u = store
        .usage(
            &Selection::All,
            &TimeZone::UTC,
            "2024-03-30T00:00:00Z".parse().unwrap(),
            "2024-03-31T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
    assert_eq!((u.active_minutes, u.exact), (1440, true));
}

/// Issue 25: after a short first run (hours and retention passes, nothing old enough to delete),
/// a zone set later still rebuilds the rollups; once retention really deleted minutes it cannot.
#[test]
fn a_zone_set_after_a_short_first_run_rebuilds_until_minutes_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("z.db")).unwrap();
    let week = Retention {
        minutes: Some(7 * 86_400),
        ..Retention::FOREVER
    };
    every_minute(&mut store, "2024-07-01T03:00:00Z", "2024-07-01T05:00:00Z");
    let now = "2024-07-01T05:01:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    let first = store.maintain(&TimeZone::UTC, &week, now).unwrap();
    assert_eq!(first.deleted, [0; 4]);
    assert_eq!(
        store.history_state().unwrap().unwrap().minute_kept,
        i64::MIN
    );
    let ny = TimeZone::get("America/New_York").unwrap();
    store.maintain(&ny, &week, now + 300).unwrap();
    assert_eq!(
        store.history_state().unwrap().unwrap().zone,
        "America/New_York"
    );
    // New York's 2024-06-30 ends at 04:00 UTC: the rebuilt day holds the first hour only.
    let days = day_minutes(&store, &ny, "2024-06-30T04:00:00Z", "2024-07-02T04:00:00Z");
    assert_eq!(days[0], ("2024-06-30".to_string(), 60));

    // Ten days on, retention deletes those minutes: another zone can no longer be applied.
    let later = now + 10 * 86_400;
    every_minute(&mut store, "2024-07-11T05:00:00Z", "2024-07-11T05:02:00Z");
    let r = store.maintain(&ny, &week, later).unwrap();
    assert!(r.deleted[0] > 0, "{r:?}");
    assert!(store.history_state().unwrap().unwrap().minute_kept > i64::MIN);
    store.maintain(&TimeZone::UTC, &week, later + 300).unwrap();
    assert_eq!(
        store.history_state().unwrap().unwrap().zone,
        "America/New_York"
    );
}

/// Issue 26 (SD-card writes): a maintenance round with nothing to roll up or delete commits
/// nothing, so it costs the card no WAL page and no fsync; one that rolls an hour still writes.
#[test]
fn a_maintenance_round_with_nothing_to_do_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("quiet.db");
    let wal = dir.path().join("quiet.db-wal");
    let mut store = Store::open(&db).unwrap();
    let week = Retention {
        minutes: Some(7 * 86_400),
        ..Retention::FOREVER
    };
    every_minute(&mut store, "2024-07-01T03:00:00Z", "2024-07-01T05:00:00Z");
    let now = "2024-07-01T05:01:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    store.maintain(&TimeZone::UTC, &week, now).unwrap();
    let size = || std::fs::metadata(&wal).unwrap().len();
    let before = size();
    for round in 1..=3 {
        store
            .maintain(&TimeZone::UTC, &week, now + 300 * round)
            .unwrap();
    }
    assert_eq!(size(), before, "quiet rounds appended WAL frames");
    // An hour closes: the rollup and its state row are written.
    every_minute(&mut store, "2024-07-01T05:00:00Z", "2024-07-01T05:02:00Z");
    let grown = size();
    let r = store.maintain(&TimeZone::UTC, &week, now + 3_600).unwrap();
    assert_eq!(r.rolled[0], 1, "{r:?}");
    assert!(size() > grown);
}

/// Rollups recorded as `UTC` serve queries in `Etc/UTC` (a Debian system zone) and in an
/// unnamed zero-offset zone: the zone comparison folds UTC aliases, so history older than the
/// minute retention is still counted (it used to be read from the minutes alone and vanish).
#[test]
fn utc_aliases_share_the_rollups_after_minutes_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("u.db")).unwrap();
    let week = Retention {
        minutes: Some(7 * 86_400),
        ..Retention::FOREVER
    };
    every_minute(&mut store, "2024-07-01T00:00:00Z", "2024-07-02T00:00:00Z");
    let utc = TimeZone::get("UTC").unwrap();
    let later = "2024-07-20T00:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    let r = store.maintain(&utc, &week, later).unwrap();
    assert!(r.deleted[0] > 0, "the minutes are gone: {r:?}");
    assert_eq!(store.history_state().unwrap().unwrap().zone, "UTC");
    let etc = TimeZone::get("Etc/UTC").unwrap();
    let unnamed = TimeZone::fixed(jiff::tz::Offset::UTC);
    for tz in [&utc, &etc, &unnamed] {
        let u = store
            .usage(
                &Selection::All,
                tz,
                "2024-06-30T00:00:00Z".parse().unwrap(),
                ts(later),
            )
            .unwrap();
        assert_eq!((u.active_minutes, u.exact), (1440, true), "{tz:?}");
    }
    // Maintenance in the alias neither rebuilds nor re-records the zone.
    store.maintain(&etc, &week, later + 3600).unwrap();
    assert_eq!(store.history_state().unwrap().unwrap().zone, "UTC");
    let london = TimeZone::get("Europe/London").unwrap();
    assert!(!super::rollup::same_zone("UTC", &london));
    assert!(super::rollup::same_zone("Etc/UTC", &utc));
}

/// Sums per bucket of one level over `[a, b)` for `sel`, read with `group` (the totals for
/// household and all-device buckets, point lookups for devices, the plain scan per device).
fn bucket_sums(
    store: &Store,
    level: Period,
    sel: &Selection,
    group: super::query::Group,
    (a, b): (i64, i64),
) -> BTreeMap<i64, (Counts, u64)> {
    let mut out: BTreeMap<i64, (Counts, u64)> = BTreeMap::new();
    let seg = super::query::Segment {
        level,
        from: a,
        to: b,
    };
    store
        .for_each_row(seg, sel, group, |r| {
            let e = out.entry(r.start).or_default();
            e.0.add(&r.counts);
            e.1 += r.active_minutes;
            Ok::<(), super::StoreError>(())
        })
        .unwrap();
    out
}

/// The raw level rows summed per bucket over the devices `pick` accepts (the oracle of the
/// totals: every row of the level, read one per device and bucket).
fn raw_sums(
    store: &Store,
    level: Period,
    pick: impl Fn(MacAddr, bool) -> bool,
    (a, b): (i64, i64),
) -> BTreeMap<i64, (Counts, u64)> {
    let mut out: BTreeMap<i64, (Counts, u64)> = BTreeMap::new();
    let seg = super::query::Segment {
        level,
        from: a,
        to: b,
    };
    store
        .for_each_row(
            seg,
            &Selection::All,
            super::query::Group::BucketDevice,
            |r| {
                if pick(r.mac, r.is_gateway) {
                    let e = out.entry(r.start).or_default();
                    e.0.add(&r.counts);
                    e.1 += r.active_minutes;
                }
                Ok::<(), super::StoreError>(())
            },
        )
        .unwrap();
    out
}

/// Issue 26: the per-bucket totals the rollups keep equal the level rows they sum, over random
/// ranges and zones, through late minutes, retention, a merge and a deleted device; and the
/// household, all-device and per-device readings built on them equal the raw rows.
#[test]
fn totals_equal_the_level_rows_over_random_ranges_zones_merges_and_deletes() {
    use super::query::Group;
    let mut compared = 0usize;
    for case in 0..8u64 {
        let mut rng = Rng::new(0x70a1_0000 + case);
        let tz = TimeZone::get(ZONES[case as usize % ZONES.len()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let base = 1_704_067_200 + below(&mut rng, 300) as i64 * 86_400 + 11 * 60;
        let span = (40 + below(&mut rng, 40) as i64) * 86_400;
        fill(&mut store, &mut rng, &tz, base, span);
        let now = base + span + below(&mut rng, 30 * 86_400) as i64;
        store.roll_up(&tz, now).unwrap();
        let check = |store: &Store, rng: &mut Rng, stage: &str| -> usize {
            let bad = super::rollup::totals_mismatches(&store.conn).unwrap();
            assert!(
                bad.is_empty(),
                "case {case} {stage}: {} buckets differ, first {:?}",
                bad.len(),
                bad.first()
            );
            let mut n = 0;
            for _ in 0..12 {
                let (a, b) = random_range(rng, base, span);
                let ctx = format!("case {case} {stage} zone {tz:?} range {a}..{b}");
                for level in [Period::Hour, Period::Day, Period::Month] {
                    let all = bucket_sums(store, level, &Selection::All, Group::Bucket, (a, b));
                    assert_eq!(all, raw_sums(store, level, |_, _| true, (a, b)), "{ctx}");
                    let hh =
                        bucket_sums(store, level, &Selection::Household, Group::Bucket, (a, b));
                    assert_eq!(hh, raw_sums(store, level, |_, g| !g, (a, b)), "{ctx}");
                    for m in devices() {
                        let sel = Selection::device(m);
                        let one = bucket_sums(store, level, &sel, Group::Bucket, (a, b));
                        assert_eq!(one, raw_sums(store, level, |x, _| x == m, (a, b)), "{ctx}");
                    }
                    n += all.len();
                }
            }
            n
        };
        compared += check(&store, &mut rng, "after the rollups");

        // Late minutes written through, then retention at a random horizon.
        let late: Vec<MinuteUsage> = (0..50)
            .map(|_| MinuteUsage {
                mac: devices()[below(&mut rng, 6) as usize],
                minute: (base + below(&mut rng, span as u64) as i64) / 60 * 60,
                counts: random_counts(&mut rng),
            })
            .collect();
        store.write_flush(&late, &[]).unwrap();
        compared += check(&store, &mut rng, "after late minutes");
        let days = |n: u64| Some(n as i64 * 86_400);
        let retention = Retention {
            minutes: days(1 + below(&mut rng, 10)),
            hours: days(5 + below(&mut rng, 40)),
            days: days(20 + below(&mut rng, 60)),
            months: None,
        };
        store.apply_retention(&retention, now).unwrap();
        compared += check(&store, &mut rng, "after retention");

        // A merge moves rows between devices; deleting a device subtracts its rows.
        let ids: BTreeMap<MacAddr, i64> = store
            .list_devices()
            .unwrap()
            .into_iter()
            .map(|d| (d.mac, d.id))
            .collect();
        store
            .merge_devices(ids[&mac(3)], ids[&mac(4)], 0, "merged", 0)
            .unwrap();
        compared += check(&store, &mut rng, "after a merge");
        let tx = store.conn.unchecked_transaction().unwrap();
        super::rollup::remove_device_history(&tx, ids[&mac(1)]).unwrap();
        tx.commit().unwrap();
        assert!(
            raw_sums(
                &store,
                Period::Hour,
                |m, _| m == mac(1),
                (i64::MIN, i64::MAX)
            )
            .is_empty()
        );
        compared += check(&store, &mut rng, "after deleting a device");
    }
    assert!(compared > 1000, "buckets compared: {compared}");
}

/// A database from before the totals gets them summed from its rollups by the migration.
#[test]
fn the_migration_sums_existing_rollups_into_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    {
        let mut store = Store::open(&path).unwrap();
        let mut rng = Rng::new(0x3161);
        fill(&mut store, &mut rng, &tz, 1_711_000_000, 30 * 86_400);
        store.roll_up(&tz, 1_711_000_000 + 40 * 86_400).unwrap();
        // As a database of the schema before the totals: the totals step and the steps after
        // it (merge undo's table, remote write's and the internet probes' tables, the router's
        // tables, the plan's source column) not applied yet.
        let totals_step = super::migrations::MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE total_hour"))
            .unwrap();
        store
            .conn
            .execute_batch(&format!(
                "DROP TABLE total_hour; DROP TABLE total_day; DROP TABLE total_month;
                 DROP TABLE device_undo; DROP TABLE remote_write_cursor;
                 DROP TABLE remote_write_series; DROP TABLE internet_minute;
                 DROP TABLE internet_outage; DROP TABLE router_minute; DROP TABLE router_hour;
                 DROP TABLE router_day; DROP TABLE router_month; DROP TABLE router_state;
                 ALTER TABLE plan_settings DROP COLUMN source;
                 DROP TABLE passive_minute; DROP TABLE passive_device_hour; DROP TABLE device_names; DROP TABLE device_remote_hour;
                 PRAGMA user_version = {totals_step};"
            ))
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let rows: i64 = store
        .conn
        .query_row("SELECT count(*) FROM total_day", [], |r| r.get(0))
        .unwrap();
    assert!(rows >= 30, "{rows}");
    assert_eq!(super::rollup::totals_mismatches(&store.conn).unwrap(), []);
}

/// What a device page draws (issue 26): one device's series per minute, hour, day and month
/// and its weekday × hour heatmap, read through the single-device path, equal the raw minutes
/// bucket by bucket, over random histories, ranges and zones; a two-device selection (the
/// general path) too.
#[test]
fn a_devices_series_and_heatmap_equal_the_raw_minutes() {
    let mut compared = 0;
    for case in 0..5u64 {
        let mut rng = Rng::new(0xde26_0000 + case);
        let tz = TimeZone::get(ZONES[case as usize % ZONES.len()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("d.db")).unwrap();
        let base = 1_704_067_200 + below(&mut rng, 300) as i64 * 86_400 + 11 * 60;
        let span = (30 + below(&mut rng, 30) as i64) * 86_400;
        let oracle = fill(&mut store, &mut rng, &tz, base, span);
        // Rolled up to a time inside the history: the newest hours are read from minutes.
        store.roll_up(&tz, base + span - 5000).unwrap();
        let local = |t: i64| Timestamp::from_second(t).unwrap().to_zoned(tz.clone());
        for _ in 0..12 {
            let (a, b) = random_range(&mut rng, base, span);
            let (lo, hi) = (ceil_minute(ts(a)), ceil_minute(ts(b)));
            let ctx = format!("seed case {case} zone {tz:?} range {a}..{b}");
            let sels: [(Selection, Vec<MacAddr>); 3] = [
                (Selection::device(mac(1)), vec![mac(1)]),
                (Selection::device(mac(GATEWAY)), vec![mac(GATEWAY)]),
                (
                    Selection::Devices(vec![mac(2), mac(3)]),
                    vec![mac(2), mac(3)],
                ),
            ];
            for (sel, macs) in &sels {
                let pick = |m: MacAddr| macs.contains(&m);
                for period in Period::ALL {
                    if period == Period::Minute && hi - lo > 3 * 86_400 {
                        continue;
                    }
                    let s = store
                        .usage_series(sel, &tz, ts(a), ts(b), Some(period))
                        .unwrap();
                    let mut want: BTreeMap<i64, Counts> = BTreeMap::new();
                    for (&(m, minute), c) in &oracle {
                        if pick(m) && minute >= lo && minute < hi {
                            let (start, _) = bucket_secs(period, minute, &tz).unwrap();
                            want.entry(start).or_default().add(c);
                        }
                    }
                    let got: BTreeMap<i64, Counts> = s
                        .points
                        .iter()
                        .map(|p| (p.start.as_second(), p.counts))
                        .collect();
                    assert!(s.exact, "{ctx}");
                    assert_eq!(got, want, "{period} series of {macs:?}: {ctx}");
                    compared += got.len();
                }
                let hm = store.heatmap(sel, &tz, ts(a), ts(b)).unwrap();
                let mut cells = [[Counts::default(); 24]; 7];
                for (&(m, minute), c) in &oracle {
                    if pick(m) && minute >= lo && minute < hi {
                        let z = local(minute);
                        let wd = z.weekday().to_monday_zero_offset() as usize;
                        cells[wd][z.hour() as usize].add(c);
                    }
                }
                assert!(hm.exact, "{ctx}");
                assert_eq!(hm.cells, cells, "heatmap of {macs:?}: {ctx}");
            }
        }
    }
    assert!(compared > 1000, "buckets compared: {compared}");
}

/// The household pages read today, this week and this cycle (and the plan's quotas their
/// windows) up to now in one reading that reads the rows the ranges share once. Over random
/// histories, zones, starts (local midnights like the pages' and arbitrary instants) and a
/// retention that leaves some ranges inexact, each answer equals the range read alone, and
/// where exact the raw minutes; the internet-only reading equals the full one's internet bytes.
#[test]
fn ranges_sharing_an_end_equal_each_range_read_alone_and_the_raw_minutes() {
    for case in 0..8u64 {
        let mut rng = Rng::new(0x5a3e_0000 + case);
        let tz = TimeZone::get(ZONES[case as usize % ZONES.len()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let base = 1_704_067_200 + below(&mut rng, 300) as i64 * 86_400 + 11 * 60;
        let span = (30 + below(&mut rng, 40) as i64) * 86_400;
        let oracle = fill(&mut store, &mut rng, &tz, base, span);
        // Minutes past the last closed hour and hours past the last closed day stay unrolled.
        let end = base + span - below(&mut rng, 2 * 86_400) as i64;
        if case % 2 == 1 {
            store
                .apply_retention(&short_retention(&mut rng), base + span)
                .unwrap();
        }
        for round in 0..6 {
            let n = 1 + below(&mut rng, 4) as usize;
            let starts: Vec<i64> = (0..n)
                .map(|_| {
                    let back = below(&mut rng, 40 * 86_400) as i64 + 1;
                    let t = end - back;
                    // Half of them on local midnights, as today, the week and the cycle are.
                    if below(&mut rng, 2) == 0 {
                        bucket_secs(Period::Day, t, &tz).unwrap().0
                    } else {
                        t
                    }
                })
                .collect();
            let ctx = format!("case {case} zone {tz:?} round {round} starts {starts:?} end {end}");
            let starts: Vec<Timestamp> = starts.into_iter().map(ts).collect();
            let shared = store.usage_by_device_since(&tz, &starts, ts(end)).unwrap();
            // The internet-only reading (the household pages'): the same devices, exactness and
            // internet bytes, every other counter 0.
            let internet = store
                .internet_by_device_since(&tz, &starts, ts(end))
                .unwrap();
            for (full, net) in shared.iter().zip(&internet) {
                let want: Vec<DeviceUsage> = full
                    .0
                    .iter()
                    .map(|d| DeviceUsage {
                        counts: Counts {
                            internet_upload_bytes: d.counts.internet_upload_bytes,
                            internet_download_bytes: d.counts.internet_download_bytes,
                            ..Counts::default()
                        },
                        active_minutes: 0,
                        ..*d
                    })
                    .collect();
                assert_eq!((&net.0, net.1), (&want, full.1), "{ctx}: internet only");
            }
            assert_eq!(internet.len(), shared.len(), "{ctx}");
            let hh = store
                .usage_of_ranges_to(&Selection::Household, &tz, &starts, ts(end))
                .unwrap();
            assert_eq!((shared.len(), hh.len()), (starts.len(), starts.len()));
            // The plan's reading: the same ranges, internet bytes only.
            let hh_net = store
                .internet_of_ranges_to(&Selection::Household, &tz, &starts, ts(end))
                .unwrap();
            for (net, full) in hh_net.iter().zip(&hh) {
                let want = Counts {
                    internet_upload_bytes: full.counts.internet_upload_bytes,
                    internet_download_bytes: full.counts.internet_download_bytes,
                    ..Counts::default()
                };
                assert_eq!(
                    (net.counts, net.active_minutes, net.exact),
                    (want, 0, full.exact),
                    "{ctx}: the plan's internet-only reading"
                );
            }
            for (i, &s) in starts.iter().enumerate() {
                let alone = store.usage_by_device(&tz, s, ts(end)).unwrap();
                assert_eq!(shared[i], alone, "{ctx}: start {s}");
                let hh_alone = store.usage(&Selection::Household, &tz, s, ts(end)).unwrap();
                assert_eq!(hh[i], hh_alone, "{ctx}: household from {s}");
                // The internet-only sums (the coverage line's): the same internet bytes and
                // exactness, every other counter 0; for the household and for a device pair.
                let pair = Selection::Devices(vec![mac(1), mac(GATEWAY)]);
                for sel in [Selection::Household, pair] {
                    let full = store.usage(&sel, &tz, s, ts(end)).unwrap();
                    let net = store.internet_usage(&sel, &tz, s, ts(end)).unwrap();
                    let want = Counts {
                        internet_upload_bytes: full.counts.internet_upload_bytes,
                        internet_download_bytes: full.counts.internet_download_bytes,
                        ..Counts::default()
                    };
                    assert_eq!(
                        (net.counts, net.active_minutes, net.exact),
                        (want, 0, full.exact),
                        "{ctx}: internet only, {sel:?} from {s}"
                    );
                }
                if !alone.1 {
                    continue;
                }
                let (lo, hi) = (ceil_minute(s), ceil_minute(ts(end)));
                for m in devices() {
                    let (want, active) = oracle_sum(&oracle, |x| x == m, lo, hi);
                    let got = shared[i].0.iter().find(|d| d.mac == m);
                    assert_eq!(
                        got.map_or((Counts::default(), 0), |d| (d.counts, d.active_minutes)),
                        (want, active),
                        "{ctx}: {m} from {s}"
                    );
                    if let Some(d) = got {
                        assert_eq!(d.is_gateway, m == mac(GATEWAY));
                    }
                }
                let (want, active) = oracle_sum(&oracle, |x| x != mac(GATEWAY), lo, hi);
                assert_eq!(
                    (hh[i].counts, hh[i].active_minutes),
                    (want, active),
                    "{ctx}"
                );
            }
        }
    }
}

/// The devices list reads a range's internet bytes only, and a range that ends now takes
/// today's part from the household reading (issue 26). Over random histories, zones, ranges
/// and a retention that leaves some ranges inexact: the internet bytes per device equal those
/// of the full reading (same devices, same flag) and, where exact, the raw minutes; and a range
/// cut at a local midnight inside it, read in two parts, adds up to the range read whole.
#[test]
fn internet_by_device_equals_the_full_reading_and_splits_at_local_midnights() {
    use std::collections::HashMap;
    let inet = |c: &Counts| c.internet_upload_bytes + c.internet_download_bytes;
    let (mut splits, mut subtracted) = (0, 0);
    for case in 0..8u64 {
        let mut rng = Rng::new(0x1a7e_0000 + case);
        let tz = TimeZone::get(ZONES[case as usize % ZONES.len()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("i.db")).unwrap();
        let base = 1_704_067_200 + below(&mut rng, 300) as i64 * 86_400 + 23 * 60;
        let span = (30 + below(&mut rng, 40) as i64) * 86_400;
        let oracle = fill(&mut store, &mut rng, &tz, base, span);
        if case % 2 == 0 {
            // Every month closed, so more ranges hold more than half of a rolled month.
            store.roll_up(&tz, base + span + 40 * 86_400).unwrap();
        } else {
            store
                .apply_retention(&short_retention(&mut rng), base + span)
                .unwrap();
        }
        for round in 0..12 {
            let (a, b) = random_range(&mut rng, base, span);
            let ctx = format!("case {case} zone {tz:?} round {round} range {a}..{b}");
            let (full, exact) = store.usage_by_device(&tz, ts(a), ts(b)).unwrap();
            // Devices without internet bytes in the range may be left out (the list shows 0).
            let want: HashMap<MacAddr, u64> = full
                .iter()
                .map(|d| (d.mac, inet(&d.counts)))
                .filter(|&(_, b)| b > 0)
                .collect();
            let cov = store.coverage(&tz).unwrap();
            let (lo, hi) = (ceil_minute(ts(a)), ceil_minute(ts(b)));
            let p = plan(&cov, &tz, lo, hi, Period::Month).unwrap();
            let pieces = month_complements(&cov, &tz, &p.segments).unwrap();
            subtracted += pieces.iter().filter(|(_, minus)| *minus).count();
            let (got, got_exact) = store.internet_by_device(&tz, ts(a), ts(b)).unwrap();
            assert_eq!((&got, got_exact), (&want, exact), "{ctx}");
            if exact {
                for m in devices() {
                    let (c, _) = oracle_sum(&oracle, |x| x == m, lo, hi);
                    assert_eq!(got.get(&m).copied().unwrap_or(0), inet(&c), "{ctx} {m}");
                }
            }
            // The local midnight of an instant inside the range, when it is inside too.
            let t = a + 1 + below(&mut rng, (b - a) as u64) as i64;
            let cut = bucket_secs(Period::Day, t.min(b - 1), &tz).unwrap().0;
            if cut <= a {
                continue;
            }
            splits += 1;
            let (mut parts, _) = store.internet_by_device(&tz, ts(a), ts(cut)).unwrap();
            let (tail, _) = store.usage_by_device(&tz, ts(cut), ts(b)).unwrap();
            for d in tail.iter().filter(|d| inet(&d.counts) > 0) {
                *parts.entry(d.mac).or_default() += inet(&d.counts);
            }
            assert_eq!(parts, want, "{ctx} cut at {cut}");
        }
    }
    assert!(splits > 30, "ranges were really cut: {splits}");
    assert!(
        subtracted > 10,
        "months minus days were really read: {subtracted}"
    );
}

/// [`oracle_sum`] of one device, reading only its minutes in the range.
fn device_sum(o: &Oracle, m: MacAddr, lo: i64, hi: i64) -> (Counts, u64) {
    let mut c = Counts::default();
    let mut n = 0;
    for (_, v) in o.range((m, lo)..(m, hi.max(lo))) {
        c.add(v);
        n += 1;
    }
    (c, n)
}

/// Writes one minute row for a random device at every minute of `[from, to)`, into the oracle
/// too: a dense stretch, as a live household's last hours are.
fn dense(store: &mut Store, rng: &mut Rng, oracle: &mut Oracle, from: i64, to: i64) {
    let devs = devices();
    let mut usage = Vec::new();
    for minute in (from / 60 * 60..to).step_by(60) {
        for _ in 0..1 + below(rng, 2) {
            let m = devs[below(rng, devs.len() as u64) as usize];
            let c = random_counts(rng);
            oracle.entry((m, minute)).or_default().add(&c);
            usage.push(MinuteUsage {
                mac: m,
                minute,
                counts: c,
            });
        }
    }
    store.write_flush(&usage, &[]).unwrap();
}

/// The open hour, day and month are rolled as they go (issue 26): the hour in steps of a
/// quarter once settled, the day up to the last whole hour, the month up to the last whole day,
/// so a page reads today as one row per device plus a few minutes. Over random histories and
/// zones (DST, half-hour offsets), rolled at random instants twice with late minutes between:
/// every row of every level holds exactly the raw minutes from its start to its level's
/// watermark (or its end), the watermarks are where they should be, and every reading of a
/// range that ends at or after the watermarks (today, this week, this cycle up to now; series;
/// the devices list) equals the raw minutes, the open buckets' rows really being read.
#[test]
fn open_buckets_rolled_as_they_go_hold_their_minutes_up_to_the_watermark() {
    let mut partial_read = [0usize; 3];
    for case in 0..8u64 {
        let mut rng = Rng::new(0x09e2_0000 + case);
        let tz = TimeZone::get(ZONES[case as usize % ZONES.len()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("o.db")).unwrap();
        let base = 1_704_067_200 + below(&mut rng, 300) as i64 * 86_400 + 7 * 60;
        let span = (20 + below(&mut rng, 20) as i64) * 86_400;
        let mut oracle = fill(&mut store, &mut rng, &tz, base, span);
        let mut now = base + span;
        for round in 0..2 {
            // A dense stretch up to a little past `now`, a few late minutes, then the round.
            let later = now + 3600 + below(&mut rng, 30 * 3600) as i64;
            dense(&mut store, &mut rng, &mut oracle, now, later + 600);
            let late: Vec<MinuteUsage> = (0..20)
                .map(|_| {
                    let minute = (later - below(&mut rng, 3 * 86_400) as i64) / 60 * 60;
                    let m = devices()[below(&mut rng, 6) as usize];
                    let c = random_counts(&mut rng);
                    oracle.entry((m, minute)).or_default().add(&c);
                    MinuteUsage {
                        mac: m,
                        minute,
                        counts: c,
                    }
                })
                .collect();
            store.write_flush(&late, &[]).unwrap();
            now = later + below(&mut rng, 3600) as i64;
            store.roll_up(&tz, now).unwrap();
            let ctx = format!("case {case} zone {tz:?} round {round} now {now}");
            let st = store.history_state().unwrap().unwrap();
            // The hour is rolled to a settled quarter (or the hour's end), the day to a whole
            // hour, the month to a whole day.
            let (h0, h1) = bucket_secs(Period::Hour, now, &tz).unwrap();
            let settled = now - super::rollup::SETTLED_AFTER;
            let (s0, _) = bucket_secs(Period::Hour, settled, &tz).unwrap();
            let quarter =
                s0 + (settled - s0) / super::rollup::OPEN_HOUR_STEP * super::rollup::OPEN_HOUR_STEP;
            assert_eq!(st.hour_rolled, h0.max(quarter), "{ctx}");
            assert!(st.hour_rolled <= now && st.hour_rolled < h1, "{ctx}");
            let whole_hour = bucket_secs(Period::Hour, st.hour_rolled, &tz).unwrap().0;
            assert_eq!(st.day_rolled, whole_hour, "{ctx}");
            let whole_day = bucket_secs(Period::Day, st.day_rolled, &tz).unwrap().0;
            assert_eq!(st.month_rolled, whole_day, "{ctx}");
            for level in [Period::Hour, Period::Day, Period::Month] {
                let rolled = st.rolled(level);
                for ((m, start), c) in level_rows(&store, level) {
                    let (_, end) = bucket_secs(level, start, &tz).unwrap();
                    let want = device_sum(&oracle, m, start, end.min(rolled)).0;
                    assert_eq!(c, want, "{ctx}: {level} row of {m} at {start}");
                }
            }
            let cov = store.coverage(&tz).unwrap();
            for _ in 0..6 {
                // Ends at now (the pages) or anywhere past the hour watermark.
                let end = if below(&mut rng, 2) == 0 {
                    now
                } else {
                    st.hour_rolled + below(&mut rng, 2 * 3600) as i64
                };
                let day = |t: i64| bucket_secs(Period::Day, t, &tz).unwrap().0;
                let starts = [
                    day(end),
                    day(end - 6 * 86_400),
                    bucket_secs(Period::Month, end, &tz).unwrap().0,
                    end - below(&mut rng, 20 * 86_400) as i64 - 1,
                ];
                let ctx = format!("{ctx} end {end} starts {starts:?}");
                let starts: Vec<Timestamp> = starts.into_iter().map(ts).collect();
                let shared = store.usage_by_device_since(&tz, &starts, ts(end)).unwrap();
                let net = store
                    .internet_by_device_since(&tz, &starts, ts(end))
                    .unwrap();
                let hh = store
                    .usage_of_ranges_to(&Selection::Household, &tz, &starts, ts(end))
                    .unwrap();
                let hh_net = store
                    .internet_of_ranges_to(&Selection::Household, &tz, &starts, ts(end))
                    .unwrap();
                for (i, &s) in starts.iter().enumerate() {
                    let (lo, hi) = (ceil_minute(s), ceil_minute(ts(end)));
                    let p = plan(&cov, &tz, lo, hi, Period::Month).unwrap();
                    for (k, level) in [Period::Hour, Period::Day, Period::Month]
                        .iter()
                        .enumerate()
                    {
                        partial_read[k] += p
                            .segments
                            .iter()
                            .filter(|g| g.level == *level && g.to == st.rolled(*level))
                            .filter(|g| bucket_secs(*level, g.to, &tz).unwrap().0 != g.to)
                            .count();
                    }
                    let (list, _) = store.internet_by_device(&tz, s, ts(end)).unwrap();
                    for m in devices() {
                        let (want, active) = device_sum(&oracle, m, lo, hi);
                        let got = shared[i].0.iter().find(|d| d.mac == m);
                        assert_eq!(
                            got.map_or((Counts::default(), 0), |d| (d.counts, d.active_minutes)),
                            (want, active),
                            "{ctx}: {m} from {s}"
                        );
                        let inet = want.internet_upload_bytes + want.internet_download_bytes;
                        let got_net = net[i].0.iter().find(|d| d.mac == m).map_or(0, |d| {
                            d.counts.internet_upload_bytes + d.counts.internet_download_bytes
                        });
                        assert_eq!(got_net, inet, "{ctx}: internet of {m} from {s}");
                        assert_eq!(list.get(&m).copied().unwrap_or(0), inet, "{ctx}: list");
                    }
                    let (mut want, mut active) = (Counts::default(), 0);
                    for m in devices().into_iter().filter(|&m| m != mac(GATEWAY)) {
                        let (c, n) = device_sum(&oracle, m, lo, hi);
                        want.add(&c);
                        active += n;
                    }
                    assert_eq!(
                        (hh[i].counts, hh[i].active_minutes),
                        (want, active),
                        "{ctx}"
                    );
                    assert_eq!(
                        (
                            hh_net[i].counts.internet_upload_bytes,
                            hh_net[i].counts.internet_download_bytes
                        ),
                        (want.internet_upload_bytes, want.internet_download_bytes),
                        "{ctx}: the plan's reading"
                    );
                    // The charts: each bucket equals its minutes, the open one's row and the
                    // minutes after its watermark making one point.
                    for period in [Period::Hour, Period::Day, Period::Month] {
                        let series = store
                            .usage_series(&Selection::device(mac(1)), &tz, s, ts(end), Some(period))
                            .unwrap();
                        let mut want: BTreeMap<i64, Counts> = BTreeMap::new();
                        for (&(_, minute), c) in oracle.range((mac(1), lo)..(mac(1), hi)) {
                            let (b, _) = bucket_secs(period, minute, &tz).unwrap();
                            want.entry(b).or_default().add(c);
                        }
                        let got: Vec<(i64, Counts)> = series
                            .points
                            .iter()
                            .map(|p| (p.start.as_second(), p.counts))
                            .collect();
                        let want: Vec<(i64, Counts)> = want.into_iter().collect();
                        assert_eq!(got, want, "{ctx}: {period} series from {s}");
                    }
                }
            }
        }
    }
    assert!(
        partial_read.iter().all(|&n| n > 20),
        "open hours, days and months were really read from their rows: {partial_read:?}"
    );
}
