//! `lanmeter plan`: the real binary reads a real database (written through the library, at
//! times relative to now) and prints the current cycle as text and JSON.
use crate::{LANMETER, hermetic};
use lanmeter::model::{Counts, MacAddr, MinuteUsage, Sighting};
use lanmeter::plan::{self, CycleRule, Plan};
use lanmeter::store::Store;
use serde_json::Value;
use std::process::Command;

const GB: u64 = 1_000_000_000;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = hermetic(Command::new(LANMETER).args(args).env("TZ", "UTC"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plan_prints_the_current_cycle_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plan.db");
    let now = jiff::Timestamp::now().as_second();
    let minute = |ago: i64| (now - ago).div_euclid(60) * 60;
    let mac = MacAddr::from_u64(0x02_00_00_00_00_07);
    let rows = [(minute(3 * 86_400), 3 * GB), (minute(600), 2 * GB)];
    {
        let mut store = Store::open(&db).unwrap();
        let usage: Vec<MinuteUsage> = rows
            .iter()
            .map(|&(m, b)| MinuteUsage {
                mac,
                minute: m,
                counts: Counts {
                    frames_received: 1,
                    bytes_received: b,
                    internet_download_bytes: b,
                    ..Counts::default()
                },
            })
            .collect();
        let seen = [Sighting {
            mac,
            first_seen: rows[0].0 * 1_000_000_000,
            last_seen: rows[1].0 * 1_000_000_000,
            is_gateway: false,
        }];
        store.write_flush(&usage, &seen).unwrap();
        store
            .set_plan(
                &Plan {
                    allowance_bytes: Some(50 * GB),
                    cycle: CycleRule::Monthly { start_day: 31 },
                    ..Plan::default()
                },
                now,
            )
            .unwrap();
    }
    let p = Store::open(&db).unwrap().plan().unwrap();
    let utc = jiff::tz::TimeZone::UTC;
    let cycle = plan::current_cycle(&p, jiff::Timestamp::from_second(now).unwrap(), &utc);
    let want: u64 = rows
        .iter()
        .filter(|(m, _)| *m >= cycle.start.as_second())
        .map(|(_, b)| b)
        .sum();

    let db_s = db.to_str().unwrap();
    let (ok, out, err) = run(&["plan", "--db", db_s, "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["status"]["cycle"]["first_day"],
        cycle.first_day.to_string()
    );
    assert_eq!(v["status"]["used_bytes"], want);
    assert_eq!(v["status"]["allowance_bytes"], 50 * GB);
    assert_eq!(v["plan"]["cycle"]["kind"], "monthly");
    assert_eq!(v["zone"], "UTC");
    assert!(v["days"].as_array().unwrap().len() >= 28);

    let (ok, out, err) = run(&["plan", "--db", db_s]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "cycle:     {} to {}",
            cycle.first_day, cycle.last_day
        )),
        "{out}"
    );
    assert!(out.contains("of 50.00 GB"), "{out}");

    let (ok, _, err) = run(&["plan", "--db", dir.path().join("typo.db").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("typo.db"), "{err}");
}
