//! Table and property tests of the plan arithmetic: cycle boundaries (short months, leap years,
//! DST and midnight gaps, every N days), projections on constructed histories with known
//! run-out dates, calibration, quotas and once-per-window alerts.
use super::*;
use jiff::civil::date;

const GB: u64 = 1_000_000_000;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn monthly(day: u8) -> Plan {
    Plan {
        allowance_bytes: Some(300 * GB),
        cycle: CycleRule::Monthly { start_day: day },
        ..Plan::default()
    }
}

fn every(days: u16, anchor: Date) -> Plan {
    Plan {
        cycle: CycleRule::EveryNDays { days, anchor },
        ..Plan::default()
    }
}

fn at(d: Date, h: i8, z: &TimeZone) -> Timestamp {
    d.at(h, 0, 0, 0).to_zoned(z.clone()).unwrap().timestamp()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn monthly_start_days_across_february_and_leap_years() {
    let utc = TimeZone::UTC;
    // (start day, a date inside, expected first day, expected last day)
    let table = [
        (1, date(2024, 2, 10), date(2024, 2, 1), date(2024, 2, 29)),
        (1, date(2025, 2, 10), date(2025, 2, 1), date(2025, 2, 28)),
        (1, date(2000, 2, 29), date(2000, 2, 1), date(2000, 2, 29)),
        (1, date(2100, 2, 10), date(2100, 2, 1), date(2100, 2, 28)),
        (15, date(2024, 2, 14), date(2024, 1, 15), date(2024, 2, 14)),
        (15, date(2024, 2, 15), date(2024, 2, 15), date(2024, 3, 14)),
        (15, date(2025, 1, 10), date(2024, 12, 15), date(2025, 1, 14)),
        (28, date(2025, 2, 27), date(2025, 1, 28), date(2025, 2, 27)),
        (28, date(2025, 2, 28), date(2025, 2, 28), date(2025, 3, 27)),
        (29, date(2025, 2, 28), date(2025, 2, 28), date(2025, 3, 28)),
        (29, date(2024, 2, 28), date(2024, 1, 29), date(2024, 2, 28)),
        (29, date(2024, 2, 29), date(2024, 2, 29), date(2024, 3, 28)),
        (30, date(2025, 2, 28), date(2025, 2, 28), date(2025, 3, 29)),
        (30, date(2025, 3, 1), date(2025, 2, 28), date(2025, 3, 29)),
        (30, date(2024, 2, 29), date(2024, 2, 29), date(2024, 3, 29)),
        (30, date(2024, 2, 28), date(2024, 1, 30), date(2024, 2, 28)),
        (31, date(2025, 2, 15), date(2025, 1, 31), date(2025, 2, 27)),
        (31, date(2025, 2, 28), date(2025, 2, 28), date(2025, 3, 30)),
        (31, date(2024, 2, 28), date(2024, 1, 31), date(2024, 2, 28)),
        (31, date(2024, 2, 29), date(2024, 2, 29), date(2024, 3, 30)),
        (31, date(2025, 4, 30), date(2025, 4, 30), date(2025, 5, 30)),
        (31, date(2025, 5, 31), date(2025, 5, 31), date(2025, 6, 29)),
        (
            31,
            date(2025, 12, 31),
            date(2025, 12, 31),
            date(2026, 1, 30),
        ),
    ];
    for (day, inside, first, last) in table {
        for hour in [0, 12, 23] {
            let c = cycle_containing(&monthly(day), at(inside, hour, &utc), &utc).unwrap();
            assert_eq!(
                (c.first_day, c.last_day),
                (first, last),
                "start day {day}, {inside} {hour}:00"
            );
            assert_eq!(c.start, at(first, 0, &utc));
            assert_eq!(c.end, at(last.tomorrow().unwrap(), 0, &utc));
        }
    }
}

#[test]
fn every_30_days_from_an_anchor_both_ways() {
    let utc = TimeZone::UTC;
    let p = every(30, date(2024, 1, 5));
    let table = [
        (date(2024, 1, 5), date(2024, 1, 5), date(2024, 2, 3)),
        (date(2024, 2, 3), date(2024, 1, 5), date(2024, 2, 3)),
        (date(2024, 2, 4), date(2024, 2, 4), date(2024, 3, 4)),
        (date(2024, 3, 5), date(2024, 3, 5), date(2024, 4, 3)),
        (date(2024, 1, 4), date(2023, 12, 6), date(2024, 1, 4)),
        (date(2023, 12, 6), date(2023, 12, 6), date(2024, 1, 4)),
        (date(2023, 12, 5), date(2023, 11, 6), date(2023, 12, 5)),
    ];
    for (inside, first, last) in table {
        let c = cycle_containing(&p, at(inside, 9, &utc), &utc).unwrap();
        assert_eq!((c.first_day, c.last_day), (first, last), "{inside}");
        assert_eq!(c.days(), 30);
    }
}

#[test]
fn dst_days_and_midnight_gaps_start_cycles_at_the_first_local_instant() {
    let berlin = tz("Europe/Berlin");
    // Spring forward on 2025-03-30 (a 23-hour day): the cycle starting that day begins at
    // local midnight, still +01:00.
    let c = cycle_containing(&monthly(30), ts("2025-04-10T12:00:00Z"), &berlin).unwrap();
    assert_eq!(c.start, ts("2025-03-29T23:00:00Z"));
    assert_eq!(c.end, ts("2025-04-29T22:00:00Z"));
    // A cycle spanning the spring change is one hour short of 31 × 24 h.
    let c = cycle_containing(&monthly(1), ts("2025-03-15T00:00:00Z"), &berlin).unwrap();
    assert_eq!(c.end.as_second() - c.start.as_second(), 31 * 86_400 - 3600);
    // Fall back on 2025-10-26: 25-hour day, a cycle covering it is one hour longer.
    let c = cycle_containing(&monthly(26), ts("2025-10-26T23:30:00Z"), &berlin).unwrap();
    assert_eq!(c.first_day, date(2025, 10, 26));
    assert_eq!(c.start, ts("2025-10-25T22:00:00Z"));
    assert_eq!(c.end, ts("2025-11-25T23:00:00Z"));
    // The instant just before the boundary belongs to the previous cycle.
    let before = cycle_containing(&monthly(26), ts("2025-10-25T21:59:59Z"), &berlin).unwrap();
    assert_eq!(before.end, c.start);
    // America/Santiago skips 00:00-01:00 on 2024-09-08: that day starts at 01:00 -03 (04:00Z).
    let santiago = tz("America/Santiago");
    assert_eq!(
        day_start(date(2024, 9, 8), &santiago).unwrap(),
        ts("2024-09-08T04:00:00Z")
    );
    let c = cycle_containing(&monthly(8), ts("2024-09-08T04:00:00Z"), &santiago).unwrap();
    assert_eq!(c.first_day, date(2024, 9, 8));
    let prev = cycle_containing(&monthly(8), ts("2024-09-08T03:59:59Z"), &santiago).unwrap();
    assert_eq!(prev.last_day, date(2024, 9, 7));
    assert_eq!(prev.end, c.start);
    // Every N days across both Berlin changes: 7 local days, 167 and 169 hours.
    let p = every(7, date(2025, 3, 24));
    let c = cycle_containing(&p, ts("2025-03-30T12:00:00Z"), &berlin).unwrap();
    assert_eq!(c.end.as_second() - c.start.as_second(), 7 * 86_400 - 3600);
    let c = cycle_containing(&p, ts("2025-10-26T12:00:00Z"), &berlin).unwrap();
    assert_eq!(c.end.as_second() - c.start.as_second(), 7 * 86_400 + 3600);
}

/// splitmix64, seeded: the same seed gives the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn rules(rng: &mut Rng) -> Vec<Plan> {
    let mut v: Vec<Plan> = [1, 15, 28, 29, 30, 31].into_iter().map(monthly).collect();
    v.push(every(30, date(2024, 1, 5)));
    v.push(every(2, date(2020, 1, 1)));
    let n = 2 + (rng.next() % 89) as u16;
    let anchor = date(2023, 1, 1)
        .checked_add(Span::new().days((rng.next() % 1500) as i64))
        .unwrap();
    v.push(every(n, anchor));
    v
}

#[test]
fn every_instant_lies_in_exactly_one_cycle_and_cycles_tile_time() {
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/Santiago",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "Pacific/Apia",
    ];
    let lo = ts("2023-01-01T00:00:00Z").as_second();
    let hi = ts("2027-01-01T00:00:00Z").as_second();
    for seed in 0..6u64 {
        let mut rng = Rng(seed);
        for z in zones {
            let z = tz(z);
            for plan in rules(&mut rng) {
                // The cycles of a long range are contiguous and each starts on its rule's day.
                let all = cycles_between(
                    &plan,
                    Timestamp::from_second(lo).unwrap(),
                    Timestamp::from_second(hi).unwrap(),
                    &z,
                )
                .unwrap();
                for w in all.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "seed {seed} {:?}", plan.cycle);
                    assert_eq!(w[0].last_day.tomorrow().unwrap(), w[1].first_day);
                }
                for c in &all {
                    assert!(c.start < c.end);
                    match plan.cycle {
                        CycleRule::Monthly { start_day } => assert_eq!(
                            c.first_day.day(),
                            (start_day as i8).min(c.first_day.days_in_month()),
                            "seed {seed} {c:?}"
                        ),
                        CycleRule::EveryNDays { days, .. } => {
                            assert_eq!(c.days(), i64::from(days))
                        }
                    }
                }
                for _ in 0..40 {
                    let t = Timestamp::from_second(
                        lo + (rng.next() % (hi - lo - 86_400 * 400) as u64) as i64 + 86_400 * 200,
                    )
                    .unwrap();
                    let c = cycle_containing(&plan, t, &z).unwrap();
                    assert!(c.contains(t), "seed {seed} {t} {c:?}");
                    let holders = all.iter().filter(|x| x.contains(t)).count();
                    assert_eq!(holders, 1, "seed {seed} {t}");
                    assert!(all.contains(&c));
                    assert_eq!(cycle_containing(&plan, c.start, &z).unwrap(), c);
                    let next = next_cycle(&plan, &c, &z).unwrap();
                    assert_eq!(cycle_containing(&plan, c.end, &z).unwrap(), next);
                    let just_before = c.end.checked_sub(Span::new().seconds(1)).unwrap();
                    assert_eq!(cycle_containing(&plan, just_before, &z).unwrap(), c);
                    assert_eq!(previous_cycle(&plan, &next, &z).unwrap(), c);
                }
            }
        }
    }
}

#[test]
fn cycles_between_and_past_cycles() {
    let utc = TimeZone::UTC;
    let p = monthly(31);
    let v = cycles_between(
        &p,
        ts("2025-01-15T00:00:00Z"),
        ts("2025-04-01T00:00:00Z"),
        &utc,
    )
    .unwrap();
    let firsts: Vec<Date> = v.iter().map(|c| c.first_day).collect();
    assert_eq!(
        firsts,
        [
            date(2024, 12, 31),
            date(2025, 1, 31),
            date(2025, 2, 28),
            date(2025, 3, 31)
        ]
    );
    assert!(
        cycles_between(
            &p,
            ts("2025-01-15T00:00:00Z"),
            ts("2025-01-15T00:00:00Z"),
            &utc
        )
        .unwrap()
        .is_empty()
    );
    let past = past_cycles(&monthly(1), ts("2025-03-10T00:00:00Z"), 3, &utc).unwrap();
    let firsts: Vec<Date> = past.iter().map(|c| c.first_day).collect();
    assert_eq!(
        firsts,
        [date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1)]
    );
    // The infallible form agrees.
    assert_eq!(
        current_cycle(&p, ts("2025-02-28T10:00:00Z"), &utc),
        cycle_containing(&p, ts("2025-02-28T10:00:00Z"), &utc).unwrap()
    );
}

#[test]
fn validation_and_threshold_parsing() {
    assert_eq!(monthly(0).validate(), Err(PlanError::StartDay(0)));
    assert_eq!(monthly(32).validate(), Err(PlanError::StartDay(32)));
    assert!(monthly(31).validate().is_ok());
    assert_eq!(
        every(0, date(2025, 1, 1)).validate(),
        Err(PlanError::EveryDays(0))
    );
    assert_eq!(
        every(367, date(2025, 1, 1)).validate(),
        Err(PlanError::EveryDays(367))
    );
    let mut p = monthly(1);
    p.allowance_bytes = Some(0);
    assert_eq!(p.validate(), Err(PlanError::ZeroAllowance));
    assert_eq!(
        parse_thresholds("90, 50 75,100%,50").unwrap(),
        [50, 75, 90, 100]
    );
    assert_eq!(parse_thresholds("").unwrap(), Vec::<u16>::new());
    assert!(parse_thresholds("50, lots").is_err());
    assert!(parse_thresholds("0").is_err());
    assert_eq!(format_thresholds(&[50, 75]), "50, 75");
}

// ---------------------------------------------------------------------------------------------
// Projections

/// 28 complete days ending the day before `today`, from `f(offset)` with offset -28..=-1.
fn history(today: Date, f: impl Fn(i64, Date) -> f64) -> Vec<DayUsage> {
    (1..=28i64)
        .rev()
        .map(|back| {
            let d = today.checked_sub(Span::new().days(back)).unwrap();
            DayUsage {
                date: d,
                bytes: Some(f(-back, d).round() as u64),
            }
        })
        .collect()
}

fn april() -> Cycle {
    cycle_containing(&monthly(1), ts("2026-04-15T00:00:00Z"), &TimeZone::UTC).unwrap()
}

fn used_in_april(h: &[DayUsage]) -> u64 {
    h.iter()
        .filter(|d| d.date >= date(2026, 4, 1))
        .map(|d| d.bytes.unwrap())
        .sum()
}

fn run(recent: &[DayUsage], allowance: u64) -> Projection {
    let cycle = april();
    project(&ProjectionInput {
        cycle: &cycle,
        today: date(2026, 4, 11),
        today_fraction: 0.0,
        used_bytes: used_in_april(recent),
        today_bytes: 0,
        recent,
        allowance_bytes: Some(allowance),
    })
}

#[test]
fn flat_history_runs_out_on_the_day_the_straight_line_says() {
    let today = date(2026, 4, 11);
    let h = history(today, |_, _| 10e9);
    assert_eq!(used_in_april(&h), 100 * GB);
    // 100 GB used, 10 GB a day: 250 GB is reached after 15 more days, on April 25.
    let p = run(&h, 250 * GB);
    assert_eq!(p.runs_out_on, Some(date(2026, 4, 25)));
    assert_eq!(p.end_bytes, 300 * GB);
    assert_eq!(p.basis_days, 7);
    assert_eq!(p.trend_bytes_per_day, 0.0);
    assert!(p.weekday_factors.iter().all(|f| (f - 1.0).abs() < 1e-12));
    assert_eq!(run(&h, 350 * GB).runs_out_on, None);
    // Exactly at the boundary day: 300 GB is reached on the cycle's last day.
    assert_eq!(run(&h, 300 * GB).runs_out_on, Some(date(2026, 4, 30)));
}

#[test]
fn weekday_heavy_history_follows_the_rhythm() {
    let today = date(2026, 4, 11); // a Saturday
    assert_eq!(today.weekday(), jiff::civil::Weekday::Saturday);
    let pattern = |d: Date| {
        if d.weekday().to_monday_zero_offset() >= 5 {
            20e9
        } else {
            5e9
        }
    };
    let h = history(today, |_, d| pattern(d));
    assert_eq!(used_in_april(&h), 80 * GB);
    // By hand: Sat 11 +20 = 100, Sun 12 +20 = 120, 13-17 +25 = 145, 18/19 +40 = 185,
    // 20-24 +25 = 210, Sat 25 = 230, Sun 26 = 250 ≥ 240, ..., Thu 30 = 270.
    let p = run(&h, 240 * GB);
    assert_eq!(p.runs_out_on, Some(date(2026, 4, 26)));
    assert_eq!(p.end_bytes, 270 * GB);
    let mean = 65.0 / 7.0;
    for (i, f) in p.weekday_factors.iter().enumerate() {
        let want = if i >= 5 { 20.0 / mean } else { 5.0 / mean };
        assert!((f - want).abs() < 1e-9, "weekday {i}: {f} vs {want}");
    }
}

#[test]
fn accelerating_history_projects_the_trend() {
    let today = date(2026, 4, 11);
    // 20 GB today, growing 0.5 GB a day: u(i) = 20 + 0.5 i for day offset i.
    let h = history(today, |i, _| (20.0 + 0.5 * i as f64) * 1e9);
    assert_eq!(used_in_april(&h), 172_500_000_000);
    // Running total after day j (0 = today): 172.5 + 20(j+1) + 0.25 j(j+1) GB.
    // j = 13: 498 GB, j = 14: 525 GB, so 500 GB runs out on April 25; the end is 667.5 GB.
    let p = run(&h, 500 * GB);
    assert_eq!(p.runs_out_on, Some(date(2026, 4, 25)));
    assert!(
        (p.end_bytes as f64 - 667.5e9).abs() < 1e3,
        "{}",
        p.end_bytes
    );
    assert!((p.trend_bytes_per_day - 0.5e9).abs() < 1.0);
    assert!((p.level_bytes_per_day - 18e9).abs() < 1.0);
    assert!(p.weekday_factors.iter().all(|f| (f - 1.0).abs() < 1e-9));
    // A falling pace is not extrapolated: it projects the last week's level.
    let h = history(today, |i, _| (6.0 - 0.2 * i as f64) * 1e9);
    let p = run(&h, 10_000 * GB);
    assert_eq!(p.trend_bytes_per_day, 0.0);
}

#[test]
fn partial_today_short_history_and_no_history() {
    let cycle = april();
    let today = date(2026, 4, 11);
    let h = history(today, |_, _| 10e9);
    // Half of today gone with 7 GB used: the rest of today adds 5 GB, then 19 days of 10 GB.
    let p = project(&ProjectionInput {
        cycle: &cycle,
        today,
        today_fraction: 0.5,
        used_bytes: 107 * GB,
        today_bytes: 7 * GB,
        recent: &h,
        allowance_bytes: None,
    });
    assert_eq!(p.end_bytes, 302 * GB);
    assert_eq!(p.per_day[0], (today, 5 * GB));
    assert_eq!(p.per_day.len(), 20);
    // Three known days (history began on the 8th): their mean, no trend, no rhythm.
    let mut short = h.clone();
    for d in short.iter_mut().filter(|d| d.date < date(2026, 4, 8)) {
        d.bytes = None;
    }
    for d in short.iter_mut().filter(|d| d.date >= date(2026, 4, 8)) {
        d.bytes = Some(d.date.day() as u64 * GB);
    }
    let p = project(&ProjectionInput {
        cycle: &cycle,
        today,
        today_fraction: 0.0,
        used_bytes: 27 * GB,
        today_bytes: 0,
        recent: &short,
        allowance_bytes: None,
    });
    assert_eq!(p.basis_days, 3);
    assert_eq!(p.level_bytes_per_day, 9e9);
    assert_eq!(p.end_bytes, 27 * GB + 20 * 9 * GB);
    // Nothing before today: today's pace (4 GB in half a day) stands in.
    let p = project(&ProjectionInput {
        cycle: &cycle,
        today,
        today_fraction: 0.5,
        used_bytes: 4 * GB,
        today_bytes: 4 * GB,
        recent: &[],
        allowance_bytes: Some(100 * GB),
    });
    assert_eq!(p.basis_days, 0);
    assert_eq!(p.level_bytes_per_day, 8e9);
    assert_eq!(p.end_bytes, 4 * GB + 4 * GB + 19 * 8 * GB);
    // 8 GB tonight, then 8 GB a day: 100 GB is passed on the 12th day after, April 23.
    assert_eq!(p.runs_out_on, Some(date(2026, 4, 23)));
}

// ---------------------------------------------------------------------------------------------
// Status, calibration

fn status_at(plan: &Plan, now: Timestamp, measured: u64, today: u64, offset: i64) -> PlanStatus {
    let utc = TimeZone::UTC;
    let cycle = cycle_containing(plan, now, &utc).unwrap();
    status(StatusInput {
        plan,
        cycle,
        now,
        tz: &utc,
        measured_bytes: measured,
        today_bytes: today,
        offset_bytes: offset,
        recent: &[],
        exact: true,
    })
    .unwrap()
}

#[test]
fn plan_state_says_exceeded_with_the_day_and_the_overage_never_on_track() {
    // 300 GB from April 1st; 20 GB a day for ten days, then 110 GB on the 11th by noon.
    let p = monthly(1);
    let days: Vec<(Date, u64)> = (1..=11)
        .map(|d| (date(2026, 4, d), if d < 11 { 20 * GB } else { 110 * GB }))
        .collect();
    let s = status_at(&p, ts("2026-04-11T12:00:00Z"), 310 * GB, 110 * GB, 0);
    // The running total reaches 300 GB on the 11th (200 GB before it), 10 GB over.
    assert_eq!(
        plan_state(&s, &days),
        PlanState::Exceeded {
            on: date(2026, 4, 11),
            over_bytes: 10 * GB
        }
    );
    // A +120 GB calibration: 120 + 9 × 20 = 300 GB by the 9th.
    let s = status_at(
        &p,
        ts("2026-04-11T12:00:00Z"),
        310 * GB,
        110 * GB,
        120 * GB as i64,
    );
    assert_eq!(
        plan_state(&s, &days),
        PlanState::Exceeded {
            on: date(2026, 4, 9),
            over_bytes: 130 * GB
        }
    );
    // Days that do not add up (history cut short): it ran out today.
    let s = status_at(&p, ts("2026-04-11T12:00:00Z"), 310 * GB, 110 * GB, 0);
    assert_eq!(
        plan_state(&s, &days[..3]),
        PlanState::Exceeded {
            on: date(2026, 4, 11),
            over_bytes: 10 * GB
        }
    );
    // Exactly at the allowance is exceeded (0 B left), not "on track".
    let s = status_at(&p, ts("2026-04-11T12:00:00Z"), 300 * GB, 100 * GB, 0);
    assert!(matches!(
        plan_state(&s, &days),
        PlanState::Exceeded { over_bytes: 0, .. }
    ));
    // Below it: today's pace (no history) decides between on track and a run-out day.
    let s = status_at(&p, ts("2026-04-11T12:00:00Z"), 110 * GB, GB, 0);
    assert_eq!(plan_state(&s, &[]), PlanState::OnTrack);
    let s = status_at(&p, ts("2026-04-11T12:00:00Z"), 200 * GB, 90 * GB, 0);
    assert!(matches!(plan_state(&s, &[]), PlanState::RunsOut { .. }));
    let s = status_at(&Plan::default(), ts("2026-04-11T12:00:00Z"), 900 * GB, 0, 0);
    assert_eq!(plan_state(&s, &days), PlanState::Unlimited);
}

#[test]
fn bars_turn_amber_at_the_last_threshold_below_100_and_red_at_100() {
    let t = [50, 75, 90, 100];
    assert_eq!(bar_level(89.9, &t), "");
    assert_eq!(bar_level(90.0, &t), "amber");
    assert_eq!(bar_level(99.99, &t), "amber");
    assert_eq!(bar_level(100.0, &t), "red");
    assert_eq!(bar_level(239.0, &t), "red");
    assert_eq!(bar_level(80.0, &[50, 80, 100]), "amber");
    assert_eq!(bar_level(95.0, &[]), "amber");
}

#[test]
fn status_safe_budget_and_elapsed_share() {
    let p = monthly(1); // 300 GB
    let s = status_at(&p, ts("2026-04-11T12:00:00Z"), 110 * GB, 10 * GB, 0);
    assert_eq!(s.used_bytes, 110 * GB);
    assert_eq!(s.remaining_bytes, Some(190 * GB));
    assert!((s.used_pct.unwrap() - 110.0 / 3.0).abs() < 1e-9);
    assert!((s.elapsed_pct - 35.0).abs() < 1e-9);
    assert_eq!(s.days_left, 20);
    // (300 − 100 used before today) ÷ 20 days.
    assert_eq!(s.safe_today_bytes, Some(10 * GB));
    assert!((s.safe_today_hd_hours.unwrap() - 10.0 / 3.0).abs() < 1e-9);
    assert!(!s.over_budget_today);
    let s = status_at(&p, ts("2026-04-11T12:00:00Z"), 111 * GB, 11 * GB, 0);
    assert!(s.over_budget_today);
    let unlimited = Plan::default();
    let s = status_at(&unlimited, ts("2026-04-11T12:00:00Z"), 111 * GB, 11 * GB, 0);
    assert_eq!(
        (s.remaining_bytes, s.used_pct, s.safe_today_bytes),
        (None, None, None)
    );
    assert!(!s.over_budget_today);
    assert_eq!(even_daily_share(&p, &s.cycle), Some(10 * GB));
    assert_eq!(even_daily_share(&unlimited, &s.cycle), None);
    // The status serialises with readable dates.
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["cycle"]["first_day"], "2026-04-01");
    assert_eq!(j["cycle"]["start"], "2026-04-01T00:00:00Z");
    assert_eq!(j["counted"], "upload_and_download");
}

#[test]
fn calibration_offset_applies_to_its_cycle_only() {
    let utc = TimeZone::UTC;
    let p = monthly(1);
    let now = ts("2026-04-20T12:00:00Z");
    let april = cycle_containing(&p, now, &utc).unwrap();
    let may = next_cycle(&p, &april, &utc).unwrap();
    let march = previous_cycle(&p, &april, &utc).unwrap();
    // The ISP says 150 GB on the 20th; lanmeter had 142 GB: +8 GB.
    assert_eq!(calibration_offset(150 * GB, 142 * GB), 8 * GB as i64);
    assert_eq!(calibration_offset(142 * GB, 150 * GB), -(8 * GB as i64));
    let cal = |reported: u64, measured: u64, created: &str| Calibration {
        cycle_start: april.start,
        cycle_end: april.end,
        reported_at: now,
        reported_bytes: reported,
        measured_bytes: measured,
        offset_bytes: calibration_offset(reported, measured),
        created_at: ts(created),
    };
    let cals = vec![
        cal(150 * GB, 142 * GB, "2026-04-20T12:00:00Z"),
        cal(140 * GB, 142 * GB, "2026-04-20T13:00:00Z"),
    ];
    // The latest calibration of the cycle wins; other cycles get nothing.
    assert_eq!(offset_for(&april, &cals), -(2 * GB as i64));
    assert_eq!(offset_for(&may, &cals), 0);
    assert_eq!(offset_for(&march, &cals), 0);
    // A changed cycle (start day 15) no longer matches the stored bounds.
    let moved = cycle_containing(&monthly(15), now, &utc).unwrap();
    assert_eq!(offset_for(&moved, &cals), 0);
    // Applied: the status equals the ISP's figure at the reading.
    let s = status_at(&p, now, 142 * GB, 5 * GB, offset_for(&april, &cals[..1]));
    assert_eq!(s.used_bytes, 150 * GB);
    assert_eq!(s.measured_bytes, 142 * GB);
    assert_eq!(apply_offset(GB, -(2 * GB as i64)), 0);
    assert_eq!(apply_offset(u64::MAX, 5), u64::MAX);
}

// ---------------------------------------------------------------------------------------------
// Quotas, alerts

#[test]
fn quota_windows_day_week_cycle() {
    let berlin = tz("Europe/Berlin");
    let p = monthly(15);
    // Wednesday 2025-03-26: the week is Monday 24th to Monday 31st, across the spring change.
    let now = ts("2025-03-26T10:00:00Z");
    let (s, e) = quota_window(&p, QuotaPeriod::Week, now, &berlin).unwrap();
    assert_eq!(s, ts("2025-03-23T23:00:00Z"));
    assert_eq!(e, ts("2025-03-30T22:00:00Z"));
    let (s, e) = quota_window(&p, QuotaPeriod::Day, now, &berlin).unwrap();
    assert_eq!(
        (s, e),
        (ts("2025-03-25T23:00:00Z"), ts("2025-03-26T23:00:00Z"))
    );
    // A Monday is its own week's first day.
    let (s, _) = quota_window(&p, QuotaPeriod::Week, ts("2025-03-24T10:00:00Z"), &berlin).unwrap();
    assert_eq!(s, ts("2025-03-23T23:00:00Z"));
    let (s, e) = quota_window(&p, QuotaPeriod::Cycle, now, &berlin).unwrap();
    let c = cycle_containing(&p, now, &berlin).unwrap();
    assert_eq!((s, e), (c.start, c.end));
    let q = Quota {
        id: 3,
        subject: QuotaSubject::Person("Sam".into()),
        period: QuotaPeriod::Day,
        limit_bytes: 2 * GB,
    };
    let st = quota_status(q.clone(), "Sam".into(), 2, (s, e), 2 * GB - 1);
    assert!(!st.reached);
    let st = quota_status(q, "Sam".into(), 2, (s, e), 2 * GB);
    assert!(st.reached && (st.used_pct - 100.0).abs() < 1e-9);
}

/// Feeds statuses through `alert_situations`, recording every alert as the engine would.
fn drive(state: &mut AlertState, s: &PlanStatus, q: &[QuotaStatus]) -> Vec<PlanAlert> {
    let out = alert_situations(s, q, state);
    for a in &out {
        state.record(a);
    }
    out
}

#[test]
fn thresholds_fire_once_per_cycle_and_rearm_next_cycle() {
    let p = monthly(1); // 300 GB, thresholds 50/75/90/100
    let mut state = AlertState::default();
    let mut fired = Vec::new();
    // Usage climbs through April, checked twice at each level.
    for (day, used) in [
        (5, 30),
        (8, 160),
        (9, 170),
        (15, 230),
        (20, 275),
        (22, 280),
        (25, 301),
        (28, 320),
    ] {
        for _ in 0..2 {
            let now = at(date(2026, 4, day), 12, &TimeZone::UTC);
            let s = status_at(&p, now, used * GB, 0, 0);
            for a in drive(&mut state, &s, &[]) {
                if a.rule_id == rule::THRESHOLD {
                    fired.push(a.dedup_key.clone());
                    assert_eq!(a.subject_key, PLAN_SUBJECT);
                }
            }
        }
    }
    let april = ts("2026-04-01T00:00:00Z").as_second();
    assert_eq!(
        fired,
        [50, 75, 90, 100].map(|t| format!("plan.threshold:{t}@{april}"))
    );
    // May: the same keys re-arm (they carry the new cycle's start).
    let now = ts("2026-05-20T12:00:00Z");
    let s = status_at(&p, now, 160 * GB, 0, 0);
    let a = drive(&mut state, &s, &[]);
    let may = ts("2026-05-01T00:00:00Z").as_second();
    assert!(
        a.iter()
            .any(|a| a.dedup_key == format!("plan.threshold:50@{may}")),
        "{a:?}"
    );
    // A leap from 40 % to 95 % sends one alert (90 %) and marks 50 and 75 with it.
    let mut state = AlertState::default();
    let s = status_at(&p, ts("2026-06-05T12:00:00Z"), 120 * GB, 0, 0);
    assert!(
        drive(&mut state, &s, &[])
            .iter()
            .all(|a| a.rule_id != rule::THRESHOLD)
    );
    let s = status_at(&p, ts("2026-06-06T12:00:00Z"), 285 * GB, 0, 0);
    let a: Vec<PlanAlert> = drive(&mut state, &s, &[])
        .into_iter()
        .filter(|a| a.rule_id == rule::THRESHOLD)
        .collect();
    assert_eq!(a.len(), 1);
    assert!(a[0].dedup_key.starts_with("plan.threshold:90@"));
    assert_eq!(a[0].marks.len(), 3);
    assert_eq!(a[0].severity, Severity::Warning);
    let s = status_at(&p, ts("2026-06-06T13:00:00Z"), 286 * GB, 0, 0);
    assert!(
        drive(&mut state, &s, &[])
            .iter()
            .all(|a| a.rule_id != rule::THRESHOLD)
    );
}

#[test]
fn runout_daily_budget_and_quota_alerts_once_per_window() {
    let utc = TimeZone::UTC;
    let p = monthly(1); // 300 GB
    let now = ts("2026-04-11T18:00:00Z");
    let cycle = cycle_containing(&p, now, &utc).unwrap();
    let recent = history(date(2026, 4, 11), |_, _| 15e9);
    let mk = |now: Timestamp, today: u64| {
        status(StatusInput {
            plan: &p,
            cycle: cycle.clone(),
            now,
            tz: &utc,
            measured_bytes: 150 * GB + today,
            today_bytes: today,
            offset_bytes: 0,
            recent: &recent,
            exact: true,
        })
        .unwrap()
    };
    let mut state = AlertState::default();
    // 150 GB by the 10th at 15 GB a day, 8 GB by 18:00 today and a quarter day (3.75 GB) to
    // come: 161.75 GB tonight, 300 GB reached on April 21. Budget: 150 GB / 20 days = 7.5 GB.
    let s = mk(now, 8 * GB);
    assert_eq!(s.projection.runs_out_on, Some(date(2026, 4, 21)));
    let rules: Vec<&str> = drive(&mut state, &s, &[])
        .iter()
        .map(|a| a.rule_id)
        .collect();
    assert!(rules.contains(&rule::PROJECTED_RUNOUT), "{rules:?}");
    assert!(rules.contains(&rule::DAILY_BUDGET), "{rules:?}");
    let a = alert_situations(&s, &[], &AlertState::default());
    let runout = a
        .iter()
        .find(|a| a.rule_id == rule::PROJECTED_RUNOUT)
        .unwrap();
    assert!(runout.title.contains("2026-04-21"), "{}", runout.title);
    // Later the same day: nothing new.
    assert!(drive(&mut state, &mk(ts("2026-04-11T20:00:00Z"), 9 * GB), &[]).is_empty());
    // The next day the daily budget re-arms, the run-out warning does not (once per cycle).
    let next = status(StatusInput {
        plan: &p,
        cycle: cycle.clone(),
        now: ts("2026-04-12T18:00:00Z"),
        tz: &utc,
        measured_bytes: 170 * GB,
        today_bytes: 12 * GB,
        offset_bytes: 0,
        recent: &recent,
        exact: true,
    })
    .unwrap();
    let rules: Vec<&str> = drive(&mut state, &next, &[])
        .iter()
        .map(|a| a.rule_id)
        .collect();
    assert_eq!(rules, [rule::DAILY_BUDGET]);
    // Quotas: once per quota window, re-armed by the next window.
    let q = Quota {
        id: 7,
        subject: QuotaSubject::Device("02:00:00:00:00:01".parse().unwrap()),
        period: QuotaPeriod::Day,
        limit_bytes: GB,
    };
    let day1 = quota_window(&p, QuotaPeriod::Day, now, &utc).unwrap();
    let qs = quota_status(q.clone(), "tablet".into(), 1, day1, 2 * GB);
    let a = drive(&mut state, &s, std::slice::from_ref(&qs));
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].rule_id, a[0].subject_key.as_str()),
        (rule::QUOTA_REACHED, "quota:7")
    );
    assert!(a[0].title.contains("tablet"));
    assert!(drive(&mut state, &s, std::slice::from_ref(&qs)).is_empty());
    let day2 = quota_window(&p, QuotaPeriod::Day, ts("2026-04-12T10:00:00Z"), &utc).unwrap();
    let qs2 = quota_status(q, "tablet".into(), 1, day2, 2 * GB);
    assert_eq!(drive(&mut state, &next, &[qs2]).len(), 1);
    // An unlimited plan raises no plan alerts at all.
    let s = status_at(&Plan::default(), now, 10_000 * GB, 500 * GB, 0);
    assert!(alert_situations(&s, &[], &AlertState::default()).is_empty());
}
