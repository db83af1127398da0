//! Prometheus remote write (issue 28): the stored minute history, pushed to a central receiver
//! (VictoriaMetrics, Prometheus with its receiver on, Mimir, Thanos) as counters with a `site`
//! label, so several homes share one Grafana.
//!
//! SQLite is the source of truth. Each push sends every *closed* minute after the cursor
//! ([`last_closed_minute`]), each sample stamped with the end of its own minute, so minutes the
//! receiver missed (it was down, or remote write was just turned on) arrive later with their
//! original timestamps and central totals end equal to local ones. The counters are running
//! totals kept per series in the database ([`SentSeries`]): a series (one device's label set,
//! or the household) starts with a 0 sample when it is first sent, so `increase()` over any
//! range that holds its start counts every byte. A rename, a new person or group is a new
//! series that starts at 0 again (the old one stops): sums of `increase()` stay exact.
//!
//! This module is pure: [`build`] turns rows and what was sent into series, [`proto`] encodes
//! them, [`send`] makes the one POST; the thread that schedules it is `run::remote`.

pub mod proto;
pub mod send;

use crate::model::Counts;
use proto::TimeSeries;
use std::collections::{BTreeMap, BTreeSet};

/// The series id of the household (every device but the gateway); device ids start at 1.
pub const HOUSEHOLD: i64 = 0;

/// Most minutes with usage one request carries: a long backfill goes in requests of this size
/// (about 120 × (devices + 1) × 6 samples, a few hundred kB before compression).
pub const BATCH_MINUTES: usize = 120;

/// A minute counts as closed once a flush ran this long after its end: traffic of the minute
/// still in the capture buffer at its end is in the meter by then.
pub const CLOSE_MARGIN_SECS: i64 = 5;

/// One stored minute row of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteRow {
    pub minute: i64,
    pub device_id: i64,
    pub counts: Counts,
}

/// What the receiver has of one series: the labels it was started with and its total so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentSeries {
    /// A device id, or [`HOUSEHOLD`].
    pub series: i64,
    /// The label values that make the series (compared to notice a rename).
    pub labels: String,
    pub counts: Counts,
}

/// A device's labels as pushed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceLabels {
    pub id: i64,
    pub mac: String,
    pub name: String,
    pub person: String,
    pub group: String,
    pub is_gateway: bool,
}

impl DeviceLabels {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("device", self.id.to_string()),
            ("mac", self.mac.clone()),
            ("name", self.name.clone()),
            ("person", self.person.clone()),
            ("group", self.group.clone()),
        ]
    }
}

/// The counter families, per device (`lanmeter_device_*`) and household
/// (`lanmeter_household_*`): (family suffix, direction, value).
type Field = fn(&Counts) -> u64;
const FAMILIES: [(&str, &str, Field); 6] = [
    ("bytes_total", "sent", |c| c.bytes_sent),
    ("bytes_total", "received", |c| c.bytes_received),
    ("frames_total", "sent", |c| c.frames_sent),
    ("frames_total", "received", |c| c.frames_received),
    ("internet_bytes_total", "upload", |c| {
        c.internet_upload_bytes
    }),
    ("internet_bytes_total", "download", |c| {
        c.internet_download_bytes
    }),
];

/// The start of the last minute that is complete in the database after a flush at
/// `flushed_at` (UTC seconds): it ended at least [`CLOSE_MARGIN_SECS`] before the flush.
pub fn last_closed_minute(flushed_at: i64) -> i64 {
    (flushed_at - CLOSE_MARGIN_SECS).div_euclid(60) * 60 - 60
}

/// One request's series and what the receiver has once it took them.
#[derive(Debug, Default)]
pub struct Batch {
    pub series: Vec<TimeSeries>,
    /// Replaces the stored [`SentSeries`] after a successful send.
    pub sent: Vec<SentSeries>,
    pub samples: usize,
}

/// The series for `rows` (every row after the cursor up to the batch's end, ascending), given
/// what was sent before. A sample goes out for every series at the end of each minute that has
/// rows, and at the end of `last_minute` (the newest closed minute, so series stay fresh while
/// nothing is counted); idle minutes in between need none (the counters did not move).
pub fn build(
    site: &str,
    devices: &[DeviceLabels],
    before: &[SentSeries],
    rows: &[MinuteRow],
    last_minute: Option<i64>,
) -> Batch {
    let mut labels: BTreeMap<i64, Vec<(&'static str, String)>> = BTreeMap::new();
    labels.insert(HOUSEHOLD, Vec::new());
    let mut gateways = BTreeSet::new();
    for d in devices {
        labels.insert(d.id, d.pairs());
        if d.is_gateway {
            gateways.insert(d.id);
        }
    }
    for r in rows {
        // A row of a device not listed (it cannot be, with the foreign key): its id alone.
        labels.entry(r.device_id).or_insert_with(|| {
            DeviceLabels {
                id: r.device_id,
                ..DeviceLabels::default()
            }
            .pairs()
        });
    }
    let key = |pairs: &[(&str, String)]| {
        let values: Vec<&str> = std::iter::once(site)
            .chain(pairs.iter().map(|(_, v)| v.as_str()))
            .collect();
        values.join("\u{1f}")
    };
    let old: BTreeMap<i64, &SentSeries> = before.iter().map(|s| (s.series, s)).collect();
    // Each series' running total, and whether it starts with this batch.
    let mut state: BTreeMap<i64, (String, Counts, bool)> = labels
        .iter()
        .map(|(&id, pairs)| {
            let k = key(pairs);
            match old.get(&id) {
                Some(s) if s.labels == k => (id, (k, s.counts, false)),
                _ => (id, (k, Counts::default(), true)),
            }
        })
        .collect();
    let mut minutes: Vec<i64> = rows.iter().map(|r| r.minute).collect();
    minutes.extend(last_minute);
    minutes.sort_unstable();
    minutes.dedup();
    if minutes.is_empty() {
        // Nothing sent: a new series must still start with its zero when it first goes out.
        return Batch {
            sent: before.to_vec(),
            ..Batch::default()
        };
    }
    let mut samples: BTreeMap<i64, [Vec<(i64, f64)>; 6]> =
        labels.keys().map(|&id| (id, Default::default())).collect();
    let mut next = 0;
    for (i, &m) in minutes.iter().enumerate() {
        if i == 0 {
            for (id, (_, _, fresh)) in &state {
                if *fresh {
                    for v in samples.get_mut(id).into_iter().flatten() {
                        v.push((m * 1000, 0.0));
                    }
                }
            }
        }
        while let Some(r) = rows.get(next).filter(|r| r.minute == m) {
            if let Some((_, c, _)) = state.get_mut(&r.device_id) {
                c.add(&r.counts);
            }
            if !gateways.contains(&r.device_id)
                && let Some((_, c, _)) = state.get_mut(&HOUSEHOLD)
            {
                c.add(&r.counts);
            }
            next += 1;
        }
        let end_ms = (m + 60) * 1000;
        for (id, (_, c, _)) in &state {
            if let Some(per) = samples.get_mut(id) {
                for (f, (_, _, get)) in FAMILIES.iter().enumerate() {
                    per[f].push((end_ms, get(c) as f64));
                }
            }
        }
    }
    let mut batch = Batch::default();
    for (id, per) in samples {
        let kind = if id == HOUSEHOLD {
            "household"
        } else {
            "device"
        };
        for (f, v) in per.into_iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let (suffix, direction, _) = FAMILIES[f];
            let mut l = vec![
                ("__name__".to_string(), format!("lanmeter_{kind}_{suffix}")),
                ("direction".to_string(), direction.to_string()),
                ("site".to_string(), site.to_string()),
            ];
            // An empty label is the same as no label to a receiver: left out.
            l.extend(
                labels[&id]
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_string(), v.clone())),
            );
            batch.samples += v.len();
            batch.series.push(TimeSeries {
                labels: l,
                samples: v,
            });
        }
    }
    batch.sent = state
        .into_iter()
        .map(|(series, (labels, counts, _))| SentSeries {
            series,
            labels,
            counts,
        })
        .collect();
    batch
}

/// The capture and storage health pushed with each round, as of now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    pub capture_up: bool,
    pub packets: u64,
    pub kernel_dropped: u64,
    pub interface_dropped: u64,
    pub flush_failures: u32,
    /// Seconds between the end of the last minute the receiver has and now.
    pub backlog_secs: i64,
    /// Today's coverage (lanmeter's internet bytes ÷ the router's), as a ratio, per direction;
    /// `None` without router counters.
    pub coverage_up: Option<f64>,
    pub coverage_down: Option<f64>,
}

/// The health gauges and process counters of one round, stamped `now_ms`.
pub fn health_series(site: &str, now_ms: i64, h: &Health) -> Vec<TimeSeries> {
    let one = |name: &str, extra: Option<(&str, &str)>, value: f64| TimeSeries {
        labels: [("__name__", name), ("site", site)]
            .into_iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        samples: vec![(now_ms, value)],
    };
    vec![
        one(
            "lanmeter_capture_up",
            None,
            f64::from(u8::from(h.capture_up)),
        ),
        one("lanmeter_capture_packets_total", None, h.packets as f64),
        one(
            "lanmeter_capture_dropped_packets_total",
            Some(("where", "kernel")),
            h.kernel_dropped as f64,
        ),
        one(
            "lanmeter_capture_dropped_packets_total",
            Some(("where", "interface")),
            h.interface_dropped as f64,
        ),
        one(
            "lanmeter_flush_consecutive_failures",
            None,
            f64::from(h.flush_failures),
        ),
        one(
            "lanmeter_remote_write_backlog_seconds",
            None,
            h.backlog_secs as f64,
        ),
    ]
    .into_iter()
    .chain(
        [("up", h.coverage_up), ("down", h.coverage_down)]
            .into_iter()
            .filter_map(|(dir, r)| {
                r.map(|r| one("lanmeter_coverage_ratio", Some(("direction", dir)), r))
            }),
    )
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(bytes_sent: u64, bytes_received: u64) -> Counts {
        Counts {
            frames_sent: 1,
            frames_received: 1,
            bytes_sent,
            bytes_received,
            internet_upload_bytes: bytes_sent / 2,
            internet_download_bytes: 0,
        }
    }

    fn dev(id: i64, name: &str, gateway: bool) -> DeviceLabels {
        DeviceLabels {
            id,
            mac: format!("02:00:00:00:00:{id:02x}"),
            name: name.into(),
            person: "Ann".into(),
            group: String::new(),
            is_gateway: gateway,
        }
    }

    fn find<'a>(b: &'a Batch, name: &str, dir: &str, device: Option<&str>) -> &'a TimeSeries {
        b.series
            .iter()
            .find(|s| {
                let get = |k: &str| {
                    s.labels
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())
                };
                get("__name__") == Some(name)
                    && get("direction") == Some(dir)
                    && get("device") == device
            })
            .unwrap_or_else(|| panic!("{name} {dir} {device:?} in {:#?}", b.series))
    }

    #[test]
    fn closed_minute_needs_a_flush_after_its_end() {
        // Minute 3540..3600 is closed by a flush at 3605 or later, not at 3604.
        assert_eq!(last_closed_minute(3_667), 3_600);
        assert_eq!(last_closed_minute(3_605), 3_540);
        assert_eq!(last_closed_minute(3_604), 3_480);
    }

    #[test]
    fn counters_start_at_zero_run_up_and_skip_the_gateway_in_the_household() {
        let devices = [dev(1, "laptop", false), dev(2, "router", true)];
        let rows = [
            MinuteRow {
                minute: 600,
                device_id: 1,
                counts: c(100, 10),
            },
            MinuteRow {
                minute: 600,
                device_id: 2,
                counts: c(7, 7),
            },
            MinuteRow {
                minute: 720,
                device_id: 1,
                counts: c(50, 5),
            },
        ];
        let b = build("home", &devices, &[], &rows, Some(780));
        let s = find(&b, "lanmeter_device_bytes_total", "sent", Some("1"));
        assert_eq!(
            s.samples,
            vec![
                (600_000, 0.0),
                (660_000, 100.0),
                (780_000, 150.0),
                (840_000, 150.0)
            ]
        );
        assert!(s.labels.contains(&("site".into(), "home".into())));
        assert!(s.labels.contains(&("name".into(), "laptop".into())));
        assert!(s.labels.contains(&("person".into(), "Ann".into())));
        assert!(
            !s.labels.iter().any(|(k, _)| k == "group"),
            "empty labels are left out"
        );
        let h = find(&b, "lanmeter_household_bytes_total", "sent", None);
        assert_eq!(h.samples.last(), Some(&(840_000, 150.0)));
        let up = find(
            &b,
            "lanmeter_device_internet_bytes_total",
            "upload",
            Some("1"),
        );
        assert_eq!(up.samples.last(), Some(&(840_000, 75.0)));
        // 3 series × 6 families × (zero + 3 minutes).
        assert_eq!(b.samples, 3 * 6 * 4);

        // The next batch goes on from the stored totals, without a new zero.
        let more = [MinuteRow {
            minute: 840,
            device_id: 1,
            counts: c(1, 1),
        }];
        let b2 = build("home", &devices, &b.sent, &more, Some(840));
        let s = find(&b2, "lanmeter_device_bytes_total", "sent", Some("1"));
        assert_eq!(s.samples, vec![(900_000, 151.0)]);
    }

    #[test]
    fn a_renamed_device_is_a_new_series_from_zero() {
        let rows = [MinuteRow {
            minute: 0,
            device_id: 1,
            counts: c(100, 0),
        }];
        let b = build("home", &[dev(1, "old", false)], &[], &rows, None);
        let more = [MinuteRow {
            minute: 60,
            device_id: 1,
            counts: c(5, 0),
        }];
        let b2 = build("home", &[dev(1, "new", false)], &b.sent, &more, None);
        let s = find(&b2, "lanmeter_device_bytes_total", "sent", Some("1"));
        assert_eq!(s.samples, vec![(60_000, 0.0), (120_000, 5.0)]);
        // The household's labels did not change: it runs on.
        let h = find(&b2, "lanmeter_household_bytes_total", "sent", None);
        assert_eq!(h.samples, vec![(120_000, 105.0)]);
    }

    #[test]
    fn health_is_one_sample_per_series_at_now_with_the_site() {
        let h = Health {
            capture_up: true,
            packets: 42,
            kernel_dropped: 3,
            interface_dropped: 0,
            flush_failures: 0,
            backlog_secs: 65,
            coverage_up: Some(0.75),
            coverage_down: None,
        };
        let series = health_series("flat 2", 1_000, &h);
        let value = |name: &str, extra: Option<(&str, &str)>| {
            series
                .iter()
                .find(|s| {
                    s.labels.contains(&("__name__".into(), name.into()))
                        && extra.is_none_or(|(k, v)| s.labels.contains(&(k.into(), v.into())))
                })
                .map(|s| {
                    assert!(s.labels.contains(&("site".into(), "flat 2".into())));
                    assert_eq!(s.samples.len(), 1);
                    s.samples[0]
                })
        };
        assert_eq!(value("lanmeter_capture_up", None), Some((1_000, 1.0)));
        assert_eq!(
            value("lanmeter_capture_packets_total", None),
            Some((1_000, 42.0))
        );
        assert_eq!(
            value(
                "lanmeter_capture_dropped_packets_total",
                Some(("where", "kernel"))
            ),
            Some((1_000, 3.0))
        );
        assert_eq!(
            value("lanmeter_remote_write_backlog_seconds", None),
            Some((1_000, 65.0))
        );
        // Coverage only in the direction that has a figure.
        assert_eq!(
            value("lanmeter_coverage_ratio", Some(("direction", "up"))),
            Some((1_000, 0.75))
        );
        assert_eq!(
            value("lanmeter_coverage_ratio", Some(("direction", "down"))),
            None
        );
    }

    #[test]
    fn nothing_to_send_gives_no_series() {
        let b = build("home", &[dev(1, "a", false)], &[], &[], None);
        assert!(b.series.is_empty() && b.samples == 0);
    }
}
