//! The time ranges a family asks about ("how much did Leo's phone use yesterday?"): today,
//! yesterday, this and last week, this and last calendar month, this and last billing cycle,
//! or two dates. The choice travels in the URL (`?range=yesterday`,
//! `?range=custom&from=2026-11-01&to=2026-11-07`), so every view can be bookmarked and shared,
//! and the pages, the chart and the download read the same instants.
//!
//! Every range is `[from, to)` in Unix seconds on the household time zone's boundaries; a range
//! that reaches into the future ends now.
use super::error::AppError;
use super::view::ts;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Zoned};
use serde::Deserialize;

/// The query parameters of a range choice (all optional: no choice means today).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RangeQuery {
    #[serde(default)]
    pub range: String,
    /// First day of a custom range (YYYY-MM-DD).
    #[serde(default)]
    pub from: String,
    /// Last day of a custom range, included (YYYY-MM-DD).
    #[serde(default)]
    pub to: String,
}

/// The choices in the picker: URL value and words.
pub const CHOICES: [(&str, &str); 9] = [
    ("today", "Today"),
    ("yesterday", "Yesterday"),
    ("week", "This week"),
    ("lastweek", "Last week"),
    ("month", "This month"),
    ("lastmonth", "Last month"),
    ("cycle", "This billing cycle"),
    ("lastcycle", "Last billing cycle"),
    ("custom", "Dates…"),
];

/// A resolved range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// One of [`CHOICES`]' values.
    pub key: &'static str,
    /// "Yesterday", "1 Nov to 7 Nov 2026".
    pub label: String,
    pub from: i64,
    pub to: i64,
    /// The first and last local day it covers (the date inputs' values).
    pub first_day: String,
    pub last_day: String,
    /// Why a custom range was not taken (today is shown instead), in words.
    pub error: String,
    /// Set by the page when the range starts before the kept history: "history starts …".
    pub partial: String,
}

fn err(e: jiff::Error) -> AppError {
    AppError::internal(format!("local calendar: {e}"))
}

fn day_start(d: Date, tz: &TimeZone) -> Result<i64, AppError> {
    Ok(d.to_zoned(tz.clone()).map_err(err)?.timestamp().as_second())
}

fn words(first: Date, last: Date) -> String {
    if first == last {
        first.strftime("%a %-d %b %Y").to_string()
    } else if first.year() == last.year() {
        format!(
            "{} to {}",
            first.strftime("%-d %b"),
            last.strftime("%-d %b %Y")
        )
    } else {
        format!(
            "{} to {}",
            first.strftime("%-d %b %Y"),
            last.strftime("%-d %b %Y")
        )
    }
}

/// Earliest and latest day a custom range may name (keeps the calendar arithmetic in range).
const EARLIEST: Date = jiff::civil::date(2000, 1, 1);

impl RangeQuery {
    /// Resolves the choice at `now` in `tz` with the household's plan (for the cycles).
    pub fn resolve(
        &self,
        now: i64,
        tz: &TimeZone,
        plan: &crate::plan::Plan,
    ) -> Result<Chosen, AppError> {
        let z: Zoned = ts(now)?.to_zoned(tz.clone());
        let today = z.date();
        let end_now = now + 1;
        let span = |first: Date, last_excl: Date| -> Result<(i64, i64), AppError> {
            Ok((
                day_start(first, tz)?,
                day_start(last_excl, tz)?.min(end_now),
            ))
        };
        let day = |n: i64| Span::new().days(n);
        let monday = today
            .checked_sub(day(i64::from(z.weekday().to_monday_zero_offset())))
            .map_err(err)?;
        let month1 = today.first_of_month();
        let mut error = String::new();
        let key = CHOICES
            .iter()
            .map(|(k, _)| *k)
            .find(|k| *k == self.range.trim())
            .unwrap_or("today");
        let (key, from, to) = match key {
            "yesterday" => {
                let y = today.yesterday().map_err(err)?;
                let (f, t) = span(y, today)?;
                (key, f, t)
            }
            "week" => {
                let (f, _) = span(monday, today)?;
                (key, f, end_now)
            }
            "lastweek" => {
                let (f, t) = span(monday.checked_sub(day(7)).map_err(err)?, monday)?;
                (key, f, t)
            }
            "month" => {
                let (f, _) = span(month1, today)?;
                (key, f, end_now)
            }
            "lastmonth" => {
                let prev = month1.checked_sub(Span::new().months(1)).map_err(err)?;
                let (f, t) = span(prev, month1)?;
                (key, f, t)
            }
            "cycle" => {
                let c = crate::plan::current_cycle(plan, ts(now)?, tz);
                (key, c.start.as_second(), end_now)
            }
            "lastcycle" => {
                let c = crate::plan::current_cycle(plan, ts(now)?, tz);
                let p = crate::plan::current_cycle(plan, ts(c.start.as_second() - 1)?, tz);
                (key, p.start.as_second(), p.end.as_second().min(end_now))
            }
            "custom" => match self.custom(today) {
                Ok((first, last)) => {
                    let (f, t) = span(first, last.tomorrow().map_err(err)?)?;
                    (key, f, t)
                }
                Err(why) => {
                    error = why;
                    let (f, _) = span(today, today)?;
                    ("today", f, end_now)
                }
            },
            _ => {
                let (f, _) = span(today, today)?;
                ("today", f, end_now)
            }
        };
        let first = ts(from)?.to_zoned(tz.clone()).date();
        // The last day is the one holding the last instant of the range.
        let last = ts((to - 1).max(from))?.to_zoned(tz.clone()).date();
        let label = match key {
            "custom" | "lastcycle" | "cycle" => {
                let name = CHOICES.iter().find(|(k, _)| *k == key).map_or("", |c| c.1);
                if key == "custom" {
                    words(first, last)
                } else {
                    format!("{name} ({})", words(first, last))
                }
            }
            k => CHOICES
                .iter()
                .find(|(c, _)| *c == k)
                .map_or_else(String::new, |c| c.1.to_string()),
        };
        Ok(Chosen {
            key,
            label,
            from,
            to: to.max(from + 1),
            first_day: first.to_string(),
            last_day: last.to_string(),
            error,
            partial: String::new(),
        })
    }

    fn custom(&self, today: Date) -> Result<(Date, Date), String> {
        let parse = |s: &str, what: &str| -> Result<Date, String> {
            s.trim()
                .parse::<Date>()
                .map_err(|_| format!("The {what} date is not a date: write it as 2026-11-30."))
        };
        let first = parse(&self.from, "first")?;
        let last = if self.to.trim().is_empty() {
            first
        } else {
            parse(&self.to, "last")?
        };
        if first > last {
            return Err("The first date is after the last one.".into());
        }
        if first < EARLIEST || first > today {
            return Err(format!(
                "The first date must be between {EARLIEST} and today."
            ));
        }
        Ok((first, last.min(today)))
    }
}

impl Chosen {
    /// The query string that gives this range again (without a leading `?`).
    pub fn query(&self) -> String {
        let mut pairs = vec![("range", self.key.to_string())];
        if self.key == "custom" {
            pairs.push(("from", self.first_day.clone()));
            pairs.push(("to", self.last_day.clone()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// Marks the range partial when the kept history starts after it begins.
    pub fn mark_partial(&mut self, history_from: Option<i64>, tz: &TimeZone) {
        if let Some(h) = history_from
            && h > self.from
            && h < self.to
        {
            self.partial = format!(
                "partial: the history starts {}",
                super::view::fmt_local(h, tz)
            );
        }
    }

    /// The choices for a `<select>`, with this one marked.
    pub fn options(&self) -> Vec<(&'static str, &'static str, bool)> {
        CHOICES
            .iter()
            .map(|(k, w)| (*k, *w, *k == self.key))
            .collect()
    }

    /// The chart's bucket for this range: hours for a day or two, days beyond.
    pub fn bucket(&self) -> crate::store::period::Period {
        if self.to - self.from <= 2 * 86_400 {
            crate::store::period::Period::Hour
        } else {
            crate::store::period::Period::Day
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    fn q(range: &str, from: &str, to: &str) -> RangeQuery {
        RangeQuery {
            range: range.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn ranges_fall_on_local_boundaries_and_end_now() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let plan = crate::plan::Plan::default();
        // Wednesday 2026-04-15 10:00 local (08:00 UTC).
        let now = at("2026-04-15T08:00:00Z");
        let r = |range: &str| q(range, "", "").resolve(now, &tz, &plan).unwrap();
        let y = r("yesterday");
        assert_eq!(
            (y.from, y.to),
            (at("2026-04-13T22:00:00Z"), at("2026-04-14T22:00:00Z"))
        );
        assert_eq!(y.label, "Yesterday");
        assert_eq!(r("today").from, at("2026-04-14T22:00:00Z"));
        assert_eq!(r("today").to, now + 1);
        assert_eq!(r("week").from, at("2026-04-12T22:00:00Z"));
        let lw = r("lastweek");
        assert_eq!(
            (lw.from, lw.to),
            (at("2026-04-05T22:00:00Z"), at("2026-04-12T22:00:00Z"))
        );
        // Last month crosses the DST change (March 29): local midnights still.
        let lm = r("lastmonth");
        assert_eq!(
            (lm.from, lm.to),
            (at("2026-02-28T23:00:00Z"), at("2026-03-31T22:00:00Z"))
        );
        assert_eq!(r("month").from, at("2026-03-31T22:00:00Z"));
        // The default plan's cycle is the calendar month.
        assert_eq!(r("cycle").from, r("month").from);
        assert_eq!((r("lastcycle").from, r("lastcycle").to), (lm.from, lm.to));
        assert_eq!(r("nonsense").key, "today");
        let c = q("custom", "2026-04-01", "2026-04-02")
            .resolve(now, &tz, &plan)
            .unwrap();
        assert_eq!(
            (c.from, c.to),
            (at("2026-03-31T22:00:00Z"), at("2026-04-02T22:00:00Z"))
        );
        assert_eq!(c.query(), "range=custom&from=2026-04-01&to=2026-04-02");
        for (f, t) in [
            ("2026-04-05", "2026-04-01"),
            ("yesterday", ""),
            ("9999-12-31", ""),
        ] {
            let c = q("custom", f, t).resolve(now, &tz, &plan).unwrap();
            assert_eq!(c.key, "today", "{f}..{t}");
            assert!(!c.error.is_empty());
        }
    }

    #[test]
    fn a_range_before_the_history_is_marked_partial() {
        let tz = TimeZone::UTC;
        let plan = crate::plan::Plan::default();
        let now = at("2026-04-15T08:00:00Z");
        let mut c = q("lastmonth", "", "").resolve(now, &tz, &plan).unwrap();
        c.mark_partial(Some(at("2026-03-10T00:00:00Z")), &tz);
        assert!(c.partial.contains("2026-03-10"), "{}", c.partial);
        let mut c = q("month", "", "").resolve(now, &tz, &plan).unwrap();
        c.mark_partial(Some(at("2026-03-10T00:00:00Z")), &tz);
        assert!(c.partial.is_empty());
    }
}
