//! The plan in a real SQLite file: settings round trips, past cycles re-read when the cycle
//! changes (checked against the raw minutes written), calibration, quotas and alert keys.
use super::*;
use crate::model::{Counts, MinuteUsage, Sighting};
use crate::plan::{QuotaPeriod, QuotaSubject};
use crate::store::discovery::UserFields;
use crate::store::usage::tests::mac;
use jiff::civil::date;

const MB: u64 = 1_000_000;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Every minute written: (mac number, minute, counts). The oracle for cycle sums.
struct World {
    _dir: tempfile::TempDir,
    store: Store,
    minutes: Vec<(u64, i64, Counts)>,
    tz: TimeZone,
}

fn internet(down: u64, up: u64) -> Counts {
    Counts {
        frames_sent: 1,
        frames_received: 1,
        bytes_sent: up + 100,
        bytes_received: down + 100,
        internet_upload_bytes: up,
        internet_download_bytes: down,
    }
}

/// Daily traffic at 12:00 and 23:30 UTC from 2025-11-01 to 2026-04-09 for two devices, and
/// internet bytes on the gateway that must never count.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("p.db")).unwrap();
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let mut minutes = Vec::new();
    let mut d = date(2025, 11, 1);
    let mut k = 0u64;
    while d < date(2026, 4, 10) {
        for (h, m) in [(12, 0), (23, 30)] {
            let t = d
                .at(h, m, 0, 0)
                .to_zoned(TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_second();
            minutes.push((1, t, internet((k + 1) * MB, 100_000)));
            minutes.push((2, t, internet(2 * MB, 0)));
            minutes.push((90, t, internet(999 * MB, 999 * MB)));
        }
        k += 1;
        d = d.tomorrow().unwrap();
    }
    let seen: Vec<Sighting> = [1, 2, 90]
        .map(|n| Sighting {
            mac: mac(n),
            first_seen: 1_761_955_200_000_000_000,
            last_seen: 1_761_955_200_000_000_000,
            is_gateway: n == 90,
        })
        .to_vec();
    let usage: Vec<MinuteUsage> = minutes
        .iter()
        .map(|&(n, minute, counts)| MinuteUsage {
            mac: mac(n),
            minute,
            counts,
        })
        .collect();
    store.write_flush(&usage, &seen).unwrap();
    // Roll up, so cycle sums come from hour/day/month rows and minutes only at the edges.
    store
        .roll_up(&tz, ts("2026-04-10T00:00:00Z").as_second())
        .unwrap();
    World {
        _dir: dir,
        store,
        minutes,
        tz,
    }
}

impl World {
    fn oracle(&self, counted: Counted, devs: &[u64], from: Timestamp, to: Timestamp) -> u64 {
        self.minutes
            .iter()
            .filter(|(n, t, _)| devs.contains(n) && *t >= from.as_second() && *t < to.as_second())
            .map(|(_, _, c)| counted.bytes(c))
            .sum()
    }
}

#[test]
fn default_plan_then_settings_round_trip() {
    let w = world();
    assert_eq!(w.store.plan().unwrap(), Plan::default());
    let p = Plan {
        allowance_bytes: Some(500_000_000_000),
        cycle: CycleRule::Monthly { start_day: 31 },
        counted: Counted::Download,
        source: PlanSource::Router,
        thresholds: vec![80, 100],
    };
    w.store.set_plan(&p, 1).unwrap();
    assert_eq!(w.store.plan().unwrap(), p);
    let p = Plan {
        allowance_bytes: None,
        cycle: CycleRule::EveryNDays {
            days: 28,
            anchor: date(2026, 1, 3),
        },
        counted: Counted::UploadAndDownload,
        source: PlanSource::Devices,
        thresholds: vec![],
    };
    w.store.set_plan(&p, 2).unwrap();
    assert_eq!(w.store.plan().unwrap(), p);
}

#[test]
fn changing_the_cycle_rereads_past_cycles_from_history() {
    let w = world();
    let now = ts("2026-04-09T18:00:00Z");
    for (rule, counted) in [
        (
            CycleRule::Monthly { start_day: 1 },
            Counted::UploadAndDownload,
        ),
        (CycleRule::Monthly { start_day: 15 }, Counted::Download),
        (CycleRule::Monthly { start_day: 31 }, Counted::Download),
        (
            CycleRule::EveryNDays {
                days: 30,
                anchor: date(2026, 1, 7),
            },
            Counted::UploadAndDownload,
        ),
    ] {
        let p = Plan {
            allowance_bytes: Some(1_000 * MB),
            cycle: rule,
            counted,
            ..Plan::default()
        };
        w.store.set_plan(&p, 1).unwrap();
        let r = w.store.plan_report(&w.tz, now).unwrap();
        assert!(!r.past.is_empty(), "{rule:?}");
        for (a, b) in r.past.iter().zip(r.past.iter().skip(1)) {
            assert_eq!(a.cycle.end, b.cycle.start);
        }
        assert_eq!(r.past.last().unwrap().cycle.end, r.status.cycle.start);
        for c in &r.past {
            let want = w.oracle(counted, &[1, 2], c.cycle.start, c.cycle.end);
            assert_eq!(c.measured_bytes, want, "{rule:?} {}", c.cycle.first_day);
            assert!(c.exact);
        }
        let cur = w.oracle(counted, &[1, 2], r.status.cycle.start, now);
        assert_eq!(r.status.measured_bytes, cur, "{rule:?}");
        // The per-day bars add up to the cycle so far.
        let bars: u64 = r.days.iter().filter_map(|d| d.used_bytes).sum();
        assert_eq!(bars, cur, "{rule:?}");
        assert_eq!(r.days.len() as i64, r.status.cycle.days());
    }
}

/// With `source = router` the plan counts the router's WAN minutes, never the devices': the
/// cycle so far, today, every day bar, past cycles and a calibration equal sums of the router
/// minutes written (some written after the roll-up, so they go through to the rolled rows).
#[test]
fn router_source_counts_the_routers_wan_bytes() {
    let mut w = world();
    let now = ts("2026-04-09T18:00:00Z");
    // Every 3 hours from 2026-01-20 to 2026-04-10, with bytes that differ per minute.
    let mut router = Vec::new();
    let mut t = ts("2026-01-20T00:00:00Z").as_second();
    let mut k = 0u64;
    while t < ts("2026-04-10T00:00:00Z").as_second() {
        k += 1;
        router.push((t, 3 * MB + k * 1_001, 40 * MB + k * 7_919));
        t += 3 * 3600;
    }
    let minutes: Vec<(i64, crate::store::router::RouterMinute)> = router
        .iter()
        .map(|&(t, up, down)| {
            (
                t,
                crate::store::router::RouterMinute {
                    bytes_up: up,
                    bytes_down: down,
                    polls: 6,
                    stuck_polls: 0,
                },
            )
        })
        .collect();
    w.store.add_router_minutes(&minutes, "{}", 1).unwrap();
    let oracle = |counted: Counted, from: Timestamp, to: Timestamp| -> u64 {
        router
            .iter()
            .filter(|(t, _, _)| *t >= from.as_second() && *t < to.as_second())
            .map(|&(_, up, down)| counted.router_bytes(up, down))
            .sum()
    };
    for counted in [Counted::UploadAndDownload, Counted::Download] {
        let p = Plan {
            allowance_bytes: Some(100_000 * MB),
            cycle: CycleRule::Monthly { start_day: 15 },
            counted,
            source: PlanSource::Router,
            ..Plan::default()
        };
        w.store.set_plan(&p, 1).unwrap();
        let r = w.store.plan_report(&w.tz, now).unwrap();
        let s = &r.status;
        let want = oracle(counted, s.cycle.start, now);
        assert!(want > 0 && want != w.oracle(counted, &[1, 2], s.cycle.start, now));
        assert_eq!(s.measured_bytes, want, "{counted:?}");
        assert_eq!(s.used_bytes, want);
        assert_eq!(
            s.today_bytes,
            oracle(counted, ts("2026-04-08T22:00:00Z"), now)
        );
        for d in &r.days {
            let start = plan::day_start(d.date, &w.tz).unwrap();
            let end = plan::day_start(d.date.tomorrow().unwrap(), &w.tz).unwrap();
            match d.used_bytes {
                Some(b) => assert_eq!(b, oracle(counted, start, end.min(now)), "{}", d.date),
                None => assert!(start >= now, "{}", d.date),
            }
        }
        let bars: u64 = r.days.iter().filter_map(|d| d.used_bytes).sum();
        assert_eq!(bars, want);
        // Past cycles (Feb 15 to Mar 15 is wholly inside the router's minutes).
        let feb = r
            .past
            .iter()
            .find(|c| c.cycle.first_day == date(2026, 2, 15))
            .unwrap();
        assert_eq!(
            feb.measured_bytes,
            oracle(counted, feb.cycle.start, feb.cycle.end)
        );
        // A calibration measures the same way.
        let at = ts("2026-04-01T09:30:00Z");
        assert_eq!(
            w.store.plan_usage(&p, &w.tz, s.cycle.start, at).unwrap(),
            (oracle(counted, s.cycle.start, at), true)
        );
    }
    // Back to the devices: the devices' sums again.
    let p = Plan::default();
    w.store.set_plan(&p, 2).unwrap();
    let r = w.store.plan_report(&w.tz, now).unwrap();
    assert_eq!(
        r.status.measured_bytes,
        w.oracle(p.counted, &[1, 2], r.status.cycle.start, now)
    );
}

#[test]
fn calibration_offset_is_used_for_the_current_cycle_only() {
    let w = world();
    let now = ts("2026-04-09T18:00:00Z");
    let p = Plan {
        allowance_bytes: Some(2_000 * MB),
        ..Plan::default()
    };
    w.store.set_plan(&p, 1).unwrap();
    let before = w.store.plan_report(&w.tz, now).unwrap();
    let measured = before.status.measured_bytes;
    let cycle = before.status.cycle.clone();
    let reported = measured + 50 * MB;
    w.store
        .add_calibration(&Calibration {
            cycle_start: cycle.start,
            cycle_end: cycle.end,
            reported_at: now,
            reported_bytes: reported,
            measured_bytes: measured,
            offset_bytes: plan::calibration_offset(reported, measured),
            created_at: now,
        })
        .unwrap();
    let after = w.store.plan_report(&w.tz, now).unwrap();
    assert_eq!(after.status.used_bytes, reported);
    assert_eq!(after.status.offset_bytes, (50 * MB) as i64);
    assert_eq!(after.calibrations.len(), 1);
    assert_eq!(
        after.past, before.past,
        "past cycles keep their own numbers"
    );
    // A month later the offset no longer applies; the April cycle in the past list keeps it.
    let may = ts("2026-05-03T12:00:00Z");
    let r = w.store.plan_report(&w.tz, may).unwrap();
    assert_eq!(r.status.offset_bytes, 0);
    let april = r.past.last().unwrap();
    assert_eq!(april.cycle, cycle);
    assert_eq!(april.offset_bytes, (50 * MB) as i64);
    assert_eq!(april.used_bytes, april.measured_bytes + 50 * MB);
    // Moving the cycle start leaves it unused (its bounds no longer exist).
    w.store
        .set_plan(
            &Plan {
                cycle: CycleRule::Monthly { start_day: 5 },
                ..p.clone()
            },
            2,
        )
        .unwrap();
    let r = w.store.plan_report(&w.tz, now).unwrap();
    assert_eq!(r.status.offset_bytes, 0);
    assert!(r.past.iter().all(|c| c.offset_bytes == 0));
    w.store.set_plan(&p, 3).unwrap();
    assert_eq!(w.store.clear_calibrations(&cycle).unwrap(), 1);
    assert_eq!(
        w.store.plan_report(&w.tz, now).unwrap().status.offset_bytes,
        0
    );
}

#[test]
fn quotas_for_a_device_and_a_person() {
    let mut w = world();
    let now = ts("2026-04-09T18:00:00Z");
    let devices = w.store.list_devices().unwrap();
    let one = devices.iter().find(|d| d.mac == mac(1)).unwrap().id;
    let two = devices.iter().find(|d| d.mac == mac(2)).unwrap().id;
    for id in [one, two] {
        w.store
            .set_user_fields(
                id,
                &UserFields {
                    owner: Some("Sam".into()),
                    name: (id == one).then(|| "Sam's laptop".to_string()),
                    ..UserFields::default()
                },
            )
            .unwrap();
    }
    let dev = QuotaSubject::Device(mac(2));
    let id = w
        .store
        .upsert_quota(&dev, QuotaPeriod::Day, 10 * MB, 1)
        .unwrap();
    assert_eq!(
        w.store
            .upsert_quota(&dev, QuotaPeriod::Day, 3 * MB, 2)
            .unwrap(),
        id
    );
    w.store
        .upsert_quota(
            &QuotaSubject::Person("sam".into()),
            QuotaPeriod::Week,
            10_000 * MB,
            3,
        )
        .unwrap();
    w.store
        .upsert_quota(
            &QuotaSubject::Group("nobody".into()),
            QuotaPeriod::Cycle,
            MB,
            3,
        )
        .unwrap();
    let r = w.store.plan_report(&w.tz, now).unwrap();
    assert_eq!(r.quotas.len(), 3);
    let d = r.quotas.iter().find(|q| q.quota.id == id).unwrap();
    // Device 2 uses 4 MB a day (two 2 MB minutes): over its 3 MB daily quota.
    assert_eq!(d.quota.limit_bytes, 3 * MB);
    assert_eq!(
        d.used_bytes,
        w.oracle(Counted::UploadAndDownload, &[2], d.window_start, now)
    );
    assert_eq!(d.used_bytes, 4 * MB);
    assert!(d.reached);
    let person = r
        .quotas
        .iter()
        .find(|q| q.quota.subject.kind() == "person")
        .unwrap();
    assert_eq!(person.devices, 2);
    assert_eq!(
        person.used_bytes,
        w.oracle(
            Counted::UploadAndDownload,
            &[1, 2],
            person.window_start,
            now
        )
    );
    assert!(!person.reached);
    let group = r
        .quotas
        .iter()
        .find(|q| q.quota.subject.kind() == "group")
        .unwrap();
    assert_eq!((group.devices, group.used_bytes), (0, 0));
    let (label, _) = subject_devices(
        &QuotaSubject::Device(mac(1)),
        &w.store.list_devices().unwrap(),
    );
    assert_eq!(label, "Sam's laptop");
    assert!(w.store.delete_quota(id).unwrap());
    assert!(!w.store.delete_quota(id).unwrap());
    assert_eq!(w.store.quotas().unwrap().len(), 2);
    // Plan alerts from the report: the quota alert keys are stored until the window ends.
    let state = w.store.plan_alert_state(now.as_second()).unwrap();
    let alerts = plan::alert_situations(&r.status, &r.quotas, &state);
    let q = alerts
        .iter()
        .find(|a| a.rule_id == plan::rule::QUOTA_REACHED)
        .unwrap();
    w.store.mark_plan_alert(q, now.as_second()).unwrap();
    let state = w.store.plan_alert_state(now.as_second()).unwrap();
    assert!(state.sent.contains(&q.dedup_key));
    assert!(
        plan::alert_situations(&r.status, &r.quotas, &state)
            .iter()
            .all(|a| a.dedup_key != q.dedup_key)
    );
    // After the window ends the key is gone (and pruned at the next mark).
    let later = q.window_end.as_second();
    assert!(w.store.plan_alert_state(later).unwrap().sent.is_empty());
    let _ = &mut w;
}

/// The quotas' use is the raw minutes of the devices their subjects cover, in their windows up
/// to now, and their subjects are what [`subject_devices`] finds in the full device list: over
/// random households (owners and groups typed in any case, shared devices, the gateway), random
/// quotas, zones, cycles and moments, with the rollups at a random earlier moment so windows
/// read days and hours with minutes at their ends. A failing case prints its seed.
#[test]
fn quota_use_equals_the_raw_minutes_of_the_covered_devices() {
    // splitmix64, as in the history tests: the same seed gives the same case.
    let mut state = 0u64;
    let mut next = |n: u64| -> u64 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    };
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu"];
    let names = ["Ann", " ann", "BOB", "kids", "Kids ", "nobody"];
    let base = ts("2026-03-20T00:00:00Z").as_second();
    let mut used = 0;
    for seed in 0..8u64 {
        let tz = TimeZone::get(zones[seed as usize % zones.len()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("q.db")).unwrap();
        // Devices 1..=6 and the gateway (90), minutes over 40 days before base and 3 after.
        let all: Vec<u64> = (1..=6).chain([90]).collect();
        let mut minutes: Vec<(u64, i64, Counts)> = Vec::new();
        for _ in 0..400 {
            let n = all[next(all.len() as u64) as usize];
            let t = base - 40 * 86_400 + next(43 * 1440) as i64 * 60;
            if minutes.iter().any(|m| m.0 == n && m.1 == t) {
                continue;
            }
            minutes.push((n, t, internet(next(5 * MB), next(MB))));
        }
        let seen: Vec<Sighting> = all
            .iter()
            .map(|&n| Sighting {
                mac: mac(n),
                first_seen: (base - 41 * 86_400) * 1_000_000_000,
                last_seen: (base - 41 * 86_400) * 1_000_000_000,
                is_gateway: n == 90,
            })
            .collect();
        let usage: Vec<MinuteUsage> = minutes
            .iter()
            .map(|&(n, minute, counts)| MinuteUsage {
                mac: mac(n),
                minute,
                counts,
            })
            .collect();
        store.write_flush(&usage, &seen).unwrap();
        let now = base + next(3 * 86_400) as i64 + 1;
        store.roll_up(&tz, now - next(2 * 86_400) as i64).unwrap();
        for d in store.list_devices().unwrap() {
            let pick =
                |rng: u64| (rng < names.len() as u64).then(|| names[rng as usize].to_string());
            let u = UserFields {
                owner: pick(next(8)),
                group: pick(next(8)),
                name: (next(2) == 0).then(|| format!("device {}", d.id)),
                ..UserFields::default()
            };
            store.set_user_fields(d.id, &u).unwrap();
        }
        let p = Plan {
            cycle: CycleRule::Monthly {
                start_day: 1 + next(28) as u8,
            },
            counted: if next(2) == 0 {
                Counted::Download
            } else {
                Counted::UploadAndDownload
            },
            ..Plan::default()
        };
        store.set_plan(&p, 1).unwrap();
        for i in 0..5 {
            let subject = match next(3) {
                // A device, or a MAC no device has (7).
                0 => QuotaSubject::Device(mac(1 + next(7))),
                1 => QuotaSubject::Person(names[next(names.len() as u64) as usize].into()),
                _ => QuotaSubject::Group(names[next(names.len() as u64) as usize].into()),
            };
            let period =
                [QuotaPeriod::Day, QuotaPeriod::Week, QuotaPeriod::Cycle][next(3) as usize];
            store.upsert_quota(&subject, period, MB, i).unwrap();
        }
        let now = Timestamp::from_second(now).unwrap();
        let (plan, statuses) = store.quota_report(&tz, now).unwrap();
        let devices = store.list_devices().unwrap();
        assert_eq!(statuses.len(), store.quotas().unwrap().len(), "seed {seed}");
        for s in statuses {
            let (label, macs) = subject_devices(&s.quota.subject, &devices);
            assert_eq!(
                (&s.label, &s.covers, s.devices),
                (&label, &macs, macs.len()),
                "seed {seed}"
            );
            let window = plan::quota_window(&plan, s.quota.period, now, &tz).unwrap();
            assert_eq!((s.window_start, s.window_end), window, "seed {seed}");
            let raw: u64 = minutes
                .iter()
                .filter(|(n, t, _)| {
                    macs.contains(&mac(*n)) && *t >= window.0.as_second() && *t < now.as_second()
                })
                .map(|(_, _, c)| plan.counted.bytes(c))
                .sum();
            assert_eq!(s.used_bytes, raw, "seed {seed}: {:?}", s.quota);
            used += usize::from(raw > 0);
        }
    }
    // Not only empty windows were compared.
    assert!(used > 10, "{used} quotas with use");
}
