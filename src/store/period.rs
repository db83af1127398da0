//! Bucket sizes (minute, hour, day, month) and their boundaries in a time zone.
//!
//! Pure time arithmetic shared by the rollups, the query planner and the export: a bucket is
//! the half-open interval `[start, end)` of instants between two local boundaries, so a day is
//! 23 or 25 hours long on DST days and a month 28 to 31 days. It never touches the database.
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};
use std::fmt;
use std::str::FromStr;

/// A bucket size of the history: each is also a storage level (usage_minute, usage_hour, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Minute,
    Hour,
    Day,
    Month,
}

impl Period {
    pub const ALL: [Period; 4] = [Period::Minute, Period::Hour, Period::Day, Period::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// Start of the bucket holding `ts`, on `tz`'s local boundaries.
    pub(crate) fn bucket_start(self, ts: Timestamp, tz: &TimeZone) -> Result<Zoned, jiff::Error> {
        let z = ts.to_zoned(tz.clone());
        match self {
            Period::Minute => Ok(z),
            // `with()` keeps the current offset when it is valid, so in a repeated hour (fall
            // back) the second 01:00 resolves to itself, not to the first one an hour earlier.
            Period::Hour => z.with().minute(0).second(0).subsec_nanosecond(0).build(),
            // Local midnight (or the first instant of the day when midnight is skipped).
            Period::Day => z.start_of_day(),
            Period::Month => z.first_of_month()?.start_of_day(),
        }
    }

    /// The first bucket boundary after `ts`, for the bucket that starts at `start`.
    ///
    /// Stepping one nominal length from the start and flooring to a boundary is right almost
    /// everywhere; where a fold repeats part of an hour (Australia/Lord_Howe falls back 30
    /// minutes, from 02:00 to 01:30) the floor lands back on `start`, so step again.
    pub(crate) fn bucket_end(
        self,
        start: &Zoned,
        ts: Timestamp,
        tz: &TimeZone,
    ) -> Result<Timestamp, jiff::Error> {
        let mut candidate = start.clone();
        for _ in 0..4 {
            candidate = candidate.checked_add(self.span())?;
            let boundary = self.bucket_start(candidate.timestamp(), tz)?.timestamp();
            if boundary > ts {
                return Ok(boundary);
            }
        }
        // No real zone gets here; closing the bucket after this minute still puts every
        // minute in exactly one bucket.
        ts.checked_add(Span::new().minutes(1))
    }

    /// One bucket's nominal length: hours are elapsed time, days and months are calendar units
    /// (23 or 25 hours on DST days, 28 to 31 days), as jiff's zoned arithmetic defines them.
    fn span(self) -> Span {
        match self {
            Period::Minute => Span::new().minutes(1),
            Period::Hour => Span::new().hours(1),
            Period::Day => Span::new().days(1),
            Period::Month => Span::new().months(1),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not an export period: use minute, hour, day or month")]
pub struct ParsePeriodError(pub String);

impl FromStr for Period {
    type Err = ParsePeriodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Period::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParsePeriodError(s.to_string()))
    }
}

/// The bucket of `period` holding the minute that starts at `second`, as `[start, end)` in
/// seconds since the epoch.
pub(crate) fn bucket_secs(
    period: Period,
    second: i64,
    tz: &TimeZone,
) -> Result<(i64, i64), jiff::Error> {
    if period == Period::Minute {
        let start = second.div_euclid(60) * 60;
        return Ok((start, start + 60));
    }
    let ts = Timestamp::from_second(second)?;
    let start = period.bucket_start(ts, tz)?;
    let end = period.bucket_end(&start, ts, tz)?;
    Ok((start.timestamp().as_second(), end.as_second()))
}
