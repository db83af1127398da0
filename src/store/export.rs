//! History export (ACCOUNTING.md §4 `lanmeter export`): usage summed into minute, hour, day or month
//! buckets that start on the household time zone's boundaries, written as JSON or CSV.
//!
//! It reads through the query planner ([`super::query`]): whole buckets come from the rollup
//! of their own size (a year of days reads ~365 rows per device, not half a million minutes),
//! cut buckets at the range's edges from finer rows. Rows are streamed: only the current
//! bucket's devices are held in memory. Every stored minute lands in exactly one bucket, so sums
//! over buckets equal the minute totals exactly. This module never writes to the database.
use super::query::{self, Group, Selection};
use super::{Store, StoreError};
use crate::model::{Counts, MacAddr};
use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

pub use super::period::{ParsePeriodError, Period};

/// Output format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON array, one object per line.
    Json,
    /// A header line, then one line per row.
    Csv,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not an export format: use json or csv")]
pub struct ParseFormatError(pub String);

impl FromStr for Format {
    type Err = ParseFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(ParseFormatError(s.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{0}' is not a time: write RFC 3339 (2024-03-31T10:00:00+02:00 or ...Z), or a local date-time (2024-03-31T10:00) or date (2024-03-31) in the household time zone"
)]
pub struct ParseTimeError(pub String);

/// Parses a `--from`/`--to` bound: an RFC 3339 instant, or a civil date-time or date read in
/// `tz` (a date means its local midnight; a local time that occurs twice means the first).
pub fn parse_time(s: &str, tz: &TimeZone) -> Result<Timestamp, ParseTimeError> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = t.parse::<civil::DateTime>() {
        return dt
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|_| ParseTimeError(s.to_string()));
    }
    Err(ParseTimeError(s.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "writing the export failed: {0}; check the output file or pipe (disk space, a reader that quit)"
    )]
    Write(#[from] io::Error),
    #[error("--from ({from}) is not before --to ({to}): swap them or widen the range")]
    EmptyRange { from: Timestamp, to: Timestamp },
    #[error(
        "the database holds a minute ({minute} s since 1970) outside the years jiff can represent: the database is damaged; restore it from a backup"
    )]
    BadMinute { minute: i64 },
    #[error(
        "cannot compute {period} buckets in time zone {tz} near {at}: {source}; try TZ=UTC or a narrower --from/--to"
    )]
    Time {
        period: Period,
        tz: String,
        at: Timestamp,
        #[source]
        source: jiff::Error,
    },
}

/// One output row, fields in ACCOUNTING.md §4 order.
#[derive(Serialize)]
struct Row<'a> {
    mac: MacAddr,
    period: &'static str,
    start: &'a str,
    bytes_sent: u64,
    bytes_received: u64,
    frames_sent: u64,
    frames_received: u64,
    internet_upload_bytes: u64,
    internet_download_bytes: u64,
}

const CSV_HEADER: &str = "mac,period,start,bytes_sent,bytes_received,frames_sent,frames_received,internet_upload_bytes,internet_download_bytes\n";

struct RowWriter<W: Write> {
    out: W,
    format: Format,
    rows: u64,
}

impl<W: Write> RowWriter<W> {
    fn begin(mut out: W, format: Format) -> io::Result<Self> {
        match format {
            Format::Json => out.write_all(b"[")?,
            Format::Csv => out.write_all(CSV_HEADER.as_bytes())?,
        }
        Ok(RowWriter {
            out,
            format,
            rows: 0,
        })
    }

    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        match self.format {
            Format::Json => {
                self.out
                    .write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut self.out, row)?;
            }
            // No field can contain a comma, quote or newline (MACs, fixed words, RFC 3339,
            // integers), so no quoting is needed.
            Format::Csv => writeln!(
                self.out,
                "{},{},{},{},{},{},{},{},{}",
                row.mac,
                row.period,
                row.start,
                row.bytes_sent,
                row.bytes_received,
                row.frames_sent,
                row.frames_received,
                row.internet_upload_bytes,
                row.internet_download_bytes
            )?,
        }
        self.rows += 1;
        Ok(())
    }

    fn end(mut self) -> io::Result<()> {
        if self.format == Format::Json {
            self.out
                .write_all(if self.rows == 0 { b"]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}

/// The bucket being filled: `[start, end)`, with the devices seen in it, sorted by MAC.
struct Bucket {
    start: i64,
    end: i64,
    label: String,
    devices: BTreeMap<MacAddr, Counts>,
}

/// Writes the stored history as `period` buckets in time zone `tz`, one row per device and
/// bucket, ordered by bucket start then MAC; `device` keeps only that MAC's rows.
///
/// `from`/`to` select minutes whose start lies in `[from, to)`; a bucket cut by a bound holds
/// only the minutes inside the range (and keeps its true start), so the rows always sum to
/// exactly the selected minutes. Where retention has already deleted the rows of the asked
/// size, older buckets are left out and a warning is logged.
#[allow(clippy::too_many_arguments)]
pub fn export(
    store: &Store,
    period: Period,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    device: Option<MacAddr>,
    tz: &TimeZone,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(ExportError::EmptyRange { from, to });
    }
    let mut w = RowWriter::begin(io::BufWriter::new(out), format)?;
    let Some((first, last)) = store.data_extent()? else {
        w.end()?;
        return Ok(());
    };
    let lo = from.map_or(first, query::ceil_minute);
    let hi = to.map_or(last, query::ceil_minute);
    let time_err = |at: i64| {
        move |source| ExportError::Time {
            period,
            tz: tz.iana_name().unwrap_or("(unnamed)").to_string(),
            at: Timestamp::from_second(at).unwrap_or(Timestamp::UNIX_EPOCH),
            source,
        }
    };
    let cov = store.coverage(tz)?;
    let plan = if lo < hi {
        query::plan(&cov, tz, lo, hi, period).map_err(|(_, at, e)| time_err(at)(e))?
    } else {
        query::Plan {
            segments: Vec::new(),
            exact: true,
        }
    };
    if !plan.exact {
        tracing::warn!(period = %period, "part of the range is older than the retention of {period} rows: those buckets are left out; export a coarser period for older history");
    }
    let sel = device.map_or(Selection::All, Selection::device);

    let mut cur: Option<Bucket> = None;
    for seg in plan.segments {
        store.for_each_row(seg, &sel, Group::BucketDevice, |row| {
            let at = row.start;
            if cur.as_ref().is_none_or(|b| at >= b.end) {
                let ts = Timestamp::from_second(at)
                    .map_err(|_| ExportError::BadMinute { minute: at })?;
                let mut start = period.bucket_start(ts, tz).map_err(time_err(at))?;
                if let Some(prev) = cur.take() {
                    // `bucket_end` already stops each bucket at the next boundary, so with real
                    // zone data this never fires; it guarantees buckets cannot overlap (and a
                    // minute be counted twice) whatever the zone data says.
                    if start.timestamp().as_second() < prev.end {
                        start = Timestamp::from_second(prev.end)
                            .map_err(|_| ExportError::BadMinute { minute: prev.end })?
                            .to_zoned(tz.clone());
                    }
                    emit(&mut w, period, prev)?;
                }
                let end = period.bucket_end(&start, ts, tz).map_err(time_err(at))?;
                let label = start
                    .timestamp()
                    .display_with_offset(start.offset())
                    .to_string();
                cur = Some(Bucket {
                    start: start.timestamp().as_second(),
                    end: end.as_second(),
                    label,
                    devices: BTreeMap::new(),
                });
            }
            if let Some(b) = cur.as_mut() {
                b.devices.entry(row.mac).or_default().add(&row.counts);
            }
            Ok::<(), ExportError>(())
        })?;
    }
    if let Some(b) = cur.take() {
        emit(&mut w, period, b)?;
    }
    w.end()?;
    Ok(())
}

fn emit<W: Write>(w: &mut RowWriter<W>, period: Period, b: Bucket) -> io::Result<()> {
    debug_assert!(b.start < b.end);
    for (mac, c) in &b.devices {
        w.row(&Row {
            mac: *mac,
            period: period.as_str(),
            start: &b.label,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            frames_sent: c.frames_sent,
            frames_received: c.frames_received,
            internet_upload_bytes: c.internet_upload_bytes,
            internet_download_bytes: c.internet_download_bytes,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MinuteUsage, Sighting};
    use crate::store::usage::tests::{counts, mac};
    use serde_json::Value;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A store with devices 1 and 2 active every 10 minutes in `[from, to)`, each minute row
    /// carrying `counts(1)` (so frames_sent counts the rows), written in 10 s-interval-sized
    /// flushes that repeat each minute to exercise the add-on-conflict path.
    fn store_with(from: &str, to: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("e.db")).unwrap();
        let (lo, hi) = (ts(from).as_second(), ts(to).as_second());
        let minutes: Vec<i64> = (lo..hi).step_by(600).collect();
        for chunk in minutes.chunks(50) {
            let mut usage = Vec::new();
            for &m in chunk {
                for d in [2, 1] {
                    usage.push(MinuteUsage {
                        mac: mac(d),
                        minute: m,
                        counts: Counts::default(),
                    });
                    usage.push(MinuteUsage {
                        mac: mac(d),
                        minute: m,
                        counts: counts(1),
                    });
                }
            }
            let seen: Vec<Sighting> = [1, 2]
                .map(|d| Sighting {
                    mac: mac(d),
                    first_seen: chunk[0] * 1_000_000_000,
                    last_seen: chunk[chunk.len() - 1] * 1_000_000_000,
                    is_gateway: d == 2,
                })
                .to_vec();
            store.write_flush(&usage, &seen).unwrap();
        }
        (dir, store)
    }

    fn run(
        store: &Store,
        period: Period,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        zone: &TimeZone,
        format: Format,
    ) -> String {
        let mut out = Vec::new();
        export(store, period, from, to, None, zone, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn json_rows(s: &str) -> Vec<Value> {
        match serde_json::from_str::<Value>(s).unwrap() {
            Value::Array(rows) => rows,
            other => panic!("not an array: {other}"),
        }
    }

    const COUNTERS: [&str; 6] = [
        "frames_sent",
        "frames_received",
        "bytes_sent",
        "bytes_received",
        "internet_upload_bytes",
        "internet_download_bytes",
    ];

    fn sums_by_mac(rows: &[Value]) -> BTreeMap<String, Counts> {
        let mut m: BTreeMap<String, Counts> = BTreeMap::new();
        for r in rows {
            let g = |k: &str| r[k].as_u64().unwrap();
            m.entry(r["mac"].as_str().unwrap().to_string())
                .or_default()
                .add(&Counts {
                    frames_sent: g(COUNTERS[0]),
                    frames_received: g(COUNTERS[1]),
                    bytes_sent: g(COUNTERS[2]),
                    bytes_received: g(COUNTERS[3]),
                    internet_upload_bytes: g(COUNTERS[4]),
                    internet_download_bytes: g(COUNTERS[5]),
                });
        }
        m
    }

    /// (start, mac, frames_sent) per row, in output order.
    fn starts(rows: &[Value]) -> Vec<(String, String, u64)> {
        rows.iter()
            .map(|r| {
                (
                    r["start"].as_str().unwrap().to_string(),
                    r["mac"].as_str().unwrap().to_string(),
                    r["frames_sent"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn berlin_spring_forward_day_has_23_hours() {
        let (_d, store) = store_with("2024-03-29T23:00:00Z", "2024-03-31T22:00:00Z");
        let rows = json_rows(&run(
            &store,
            Period::Day,
            None,
            None,
            &tz("Europe/Berlin"),
            Format::Json,
        ));
        let m1 = mac(1).to_string();
        let m2 = mac(2).to_string();
        assert_eq!(
            starts(&rows),
            [
                ("2024-03-30T00:00:00+01:00".to_string(), m1.clone(), 144),
                ("2024-03-30T00:00:00+01:00".to_string(), m2.clone(), 144),
                ("2024-03-31T00:00:00+01:00".to_string(), m1, 23 * 6),
                ("2024-03-31T00:00:00+01:00".to_string(), m2, 23 * 6),
            ]
        );
        assert_eq!(rows[0]["period"], "day");
        let months = json_rows(&run(
            &store,
            Period::Month,
            None,
            None,
            &tz("Europe/Berlin"),
            Format::Json,
        ));
        assert_eq!(months.len(), 2);
        assert_eq!(months[0]["start"], "2024-03-01T00:00:00+01:00");
        assert_eq!(months[0]["frames_sent"], 144 + 23 * 6);
    }

    #[test]
    fn new_york_fall_back_day_has_25_hours_and_two_one_oclocks() {
        let (_d, store) = store_with("2024-11-02T04:00:00Z", "2024-11-04T05:00:00Z");
        let ny = tz("America/New_York");
        let days = json_rows(&run(&store, Period::Day, None, None, &ny, Format::Json));
        let got: Vec<(String, u64)> = starts(&days)
            .into_iter()
            .filter(|(_, m, _)| *m == mac(1).to_string())
            .map(|(s, _, n)| (s, n))
            .collect();
        assert_eq!(
            got,
            [
                ("2024-11-02T00:00:00-04:00".to_string(), 144),
                ("2024-11-03T00:00:00-04:00".to_string(), 25 * 6),
            ]
        );
        let hours = json_rows(&run(&store, Period::Hour, None, None, &ny, Format::Json));
        let ones: Vec<(String, u64)> = starts(&hours)
            .into_iter()
            .filter(|(s, m, _)| s.starts_with("2024-11-03T01:") && *m == mac(1).to_string())
            .map(|(s, _, n)| (s, n))
            .collect();
        assert_eq!(
            ones,
            [
                ("2024-11-03T01:00:00-04:00".to_string(), 6),
                ("2024-11-03T01:00:00-05:00".to_string(), 6),
            ]
        );
        assert_eq!(hours.len(), 2 * (24 + 25));
    }

    /// Lord Howe shifts by 30 minutes: its fall-back local hour 01:00 lasts 90 minutes, and its
    /// spring-forward hour starts at 02:30. Buckets must follow, not split into fragments.
    #[test]
    fn half_hour_dst_shifts_give_90_and_30_minute_hours() {
        let (_d, store) = store_with("2024-04-06T13:00:00Z", "2024-04-06T18:00:00Z");
        let (_e, spring) = store_with("2024-10-05T14:00:00Z", "2024-10-05T17:00:00Z");
        let lh = tz("Australia/Lord_Howe");
        let hours = |s: &Store| -> Vec<(String, u64)> {
            starts(&json_rows(&run(
                s,
                Period::Hour,
                None,
                None,
                &lh,
                Format::Json,
            )))
            .into_iter()
            .filter(|(_, m, _)| *m == mac(1).to_string())
            .map(|(s, _, n)| (s, n))
            .collect()
        };
        let got = hours(&store);
        assert_eq!(got[1], ("2024-04-07T01:00:00+11:00".to_string(), 9));
        assert_eq!(got[2], ("2024-04-07T02:00:00+10:30".to_string(), 6));
        let got = hours(&spring);
        assert_eq!(got[1], ("2024-10-06T01:00:00+10:30".to_string(), 6));
        assert_eq!(got[2], ("2024-10-06T02:30:00+11:00".to_string(), 3));
        assert_eq!(got[3], ("2024-10-06T03:00:00+11:00".to_string(), 6));
    }

    #[test]
    fn sums_over_buckets_equal_minute_totals_for_every_period_zone_and_format() {
        // Spans both 2024 DST changes in Europe and the US, and Lord Howe's half-hour shift.
        let (_d, store) = store_with("2024-03-09T00:00:00Z", "2024-04-08T00:00:00Z");
        let totals: BTreeMap<String, Counts> = store
            .device_totals()
            .unwrap()
            .into_iter()
            .map(|t| (t.mac.to_string(), t.counts))
            .collect();
        assert_eq!(totals[&mac(1).to_string()].frames_sent, 30 * 144);
        for zone in [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
        ] {
            let zone = tz(zone);
            for period in Period::ALL {
                let rows = json_rows(&run(&store, period, None, None, &zone, Format::Json));
                assert_eq!(sums_by_mac(&rows), totals, "{period} in {zone:?}");
                // Ordered by start (as instants) then MAC, and buckets never repeat.
                let keys: Vec<(Timestamp, String)> = rows
                    .iter()
                    .map(|r| {
                        (
                            r["start"].as_str().unwrap().parse().unwrap(),
                            r["mac"].as_str().unwrap().into(),
                        )
                    })
                    .collect();
                assert!(
                    keys.windows(2).all(|w| w[0] < w[1]),
                    "{period} in {zone:?} not strictly ordered"
                );

                let csv = run(&store, period, None, None, &zone, Format::Csv);
                let mut lines = csv.lines();
                assert_eq!(lines.next().unwrap(), CSV_HEADER.trim_end());
                let as_json: Vec<Value> = lines
                    .map(|l| {
                        let f: Vec<&str> = l.split(',').collect();
                        assert_eq!(f.len(), 9, "{l}");
                        assert_eq!(f[1], period.as_str());
                        let n = |i: usize| Value::from(f[i].parse::<u64>().unwrap());
                        serde_json::json!({"mac": f[0], "bytes_sent": n(3), "bytes_received": n(4),
                            "frames_sent": n(5), "frames_received": n(6),
                            "internet_upload_bytes": n(7), "internet_download_bytes": n(8)})
                    })
                    .collect();
                assert_eq!(as_json.len(), rows.len());
                assert_eq!(sums_by_mac(&as_json), totals, "csv {period} in {zone:?}");
            }
        }
    }

    #[test]
    fn from_to_select_minutes_by_start_and_cut_buckets_keep_their_start() {
        let (_d, store) = store_with("2024-06-01T00:00:00Z", "2024-06-03T00:00:00Z");
        let utc = TimeZone::UTC;
        // 10:05:30 rounds up past the 10:00 row; 12:00 exclusive, 11:50 inclusive.
        let rows = json_rows(&run(
            &store,
            Period::Day,
            Some(ts("2024-06-01T10:00:00.5Z")),
            Some(ts("2024-06-01T12:00:00Z")),
            &utc,
            Format::Json,
        ));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["start"], "2024-06-01T00:00:00+00:00");
        assert_eq!(rows[0]["frames_sent"], 11, "10:10 .. 11:50");
        let minutes = json_rows(&run(
            &store,
            Period::Minute,
            Some(ts("2024-06-02T23:50:00Z")),
            None,
            &tz("Europe/Berlin"),
            Format::Json,
        ));
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0]["start"], "2024-06-03T01:50:00+02:00");
        assert_eq!(minutes[0]["period"], "minute");
        let err = export(
            &store,
            Period::Hour,
            Some(ts("2024-06-02T00:00:00Z")),
            Some(ts("2024-06-01T00:00:00Z")),
            None,
            &utc,
            Format::Csv,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not before --to"), "{err}");
    }

    #[test]
    fn empty_history_is_an_empty_array_or_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("empty.db")).unwrap();
        assert_eq!(
            run(
                &store,
                Period::Hour,
                None,
                None,
                &TimeZone::UTC,
                Format::Json
            ),
            "[]\n"
        );
        assert_eq!(
            run(
                &store,
                Period::Hour,
                None,
                None,
                &TimeZone::UTC,
                Format::Csv
            ),
            CSV_HEADER
        );
    }

    #[test]
    fn json_rows_have_exactly_the_spec_fields_in_order() {
        let (_d, store) = store_with("2024-06-01T00:00:00Z", "2024-06-01T00:10:00Z");
        let out = run(
            &store,
            Period::Hour,
            None,
            None,
            &TimeZone::UTC,
            Format::Json,
        );
        let first_line = out.lines().nth(1).unwrap();
        assert_eq!(
            first_line,
            format!(
                "{{\"mac\":\"{}\",\"period\":\"hour\",\"start\":\"2024-06-01T00:00:00+00:00\",\"bytes_sent\":100,\"bytes_received\":200,\"frames_sent\":1,\"frames_received\":2,\"internet_upload_bytes\":10,\"internet_download_bytes\":20}},",
                mac(1)
            )
        );
    }

    #[test]
    fn period_format_and_time_parse_with_clear_errors() {
        assert_eq!("Hour".parse::<Period>().unwrap(), Period::Hour);
        assert_eq!(" month ".parse::<Period>().unwrap(), Period::Month);
        let e = "week".parse::<Period>().unwrap_err().to_string();
        assert!(
            e.contains("'week'") && e.contains("minute, hour, day or month"),
            "{e}"
        );
        assert_eq!("CSV".parse::<Format>().unwrap(), Format::Csv);
        let e = "xml".parse::<Format>().unwrap_err().to_string();
        assert!(e.contains("'xml'") && e.contains("json or csv"), "{e}");

        let berlin = tz("Europe/Berlin");
        assert_eq!(
            parse_time("2024-03-31T10:00:00Z", &berlin).unwrap(),
            ts("2024-03-31T10:00:00Z")
        );
        assert_eq!(
            parse_time("2024-03-31T10:00", &berlin).unwrap(),
            ts("2024-03-31T08:00:00Z")
        );
        assert_eq!(
            parse_time("2024-03-31", &berlin).unwrap(),
            ts("2024-03-30T23:00:00Z")
        );
        let e = parse_time("yesterday", &berlin).unwrap_err().to_string();
        assert!(e.contains("'yesterday'") && e.contains("RFC 3339"), "{e}");
    }
}
