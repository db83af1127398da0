//! Summaries of stored probe minutes and outages for the Internet page, the monthly report
//! card, the API and the alerts. Pure: rows in, figures out.
//!
//! Latency over many minutes is summarised from the per-minute figures (the raw round-trip
//! times are not kept): a period's median is the median of its minutes' medians, its p95 the
//! 95th percentile of its minutes' p95s, which leans towards the bad minutes as a report to the
//! ISP should.

use super::{MinuteRow, Outage, State, quantile};
use jiff::tz::TimeZone;

/// Loss and latency over a set of minutes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quality {
    pub minutes: u32,
    pub sent: u64,
    pub received: u64,
    pub median_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

impl Quality {
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a MinuteRow>) -> Quality {
        let mut q = Quality::default();
        let (mut med, mut p95) = (Vec::new(), Vec::new());
        for r in rows {
            q.minutes += 1;
            q.sent += u64::from(r.internet.sent);
            q.received += u64::from(r.internet.received);
            med.extend(r.internet.median_us);
            p95.extend(r.internet.p95_us);
        }
        q.median_ms = quantile(&mut med, 0.5).map(|u| f64::from(u) / 1e3);
        q.p95_ms = quantile(&mut p95, 0.95).map(|u| f64::from(u) / 1e3);
        q
    }

    pub fn loss_percent(&self) -> Option<f64> {
        (self.sent > 0)
            .then(|| 100.0 * self.sent.saturating_sub(self.received) as f64 / self.sent as f64)
    }
}

/// Seconds of `o` inside `[from_ns, to_ns)`; an open outage lasts until `now_ns`.
pub fn overlap_secs(o: &Outage, from_ns: i64, to_ns: i64, now_ns: i64) -> f64 {
    let end = o.end_ns.unwrap_or(now_ns).min(to_ns);
    let start = o.start_ns.max(from_ns);
    ((end - start).max(0)) as f64 / 1e9
}

/// The local hour of day (0..=23) a minute falls in.
pub fn local_hour(minute: i64, tz: &TimeZone) -> u8 {
    jiff::Timestamp::from_second(minute)
        .map(|t| t.to_zoned(tz.clone()).hour() as u8)
        .unwrap_or(0)
}

/// The minutes whose local hour is in `from..to` (to exclusive; wraps past midnight).
pub fn in_hours<'a>(
    rows: &'a [MinuteRow],
    from: u8,
    to: u8,
    tz: &'a TimeZone,
) -> impl Iterator<Item = &'a MinuteRow> + 'a {
    rows.iter().filter(move |r| {
        let h = local_hour(r.minute, tz);
        if from <= to {
            (from..to).contains(&h)
        } else {
            h >= from || h < to
        }
    })
}

/// One hour of the day in a report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HourQuality {
    pub hour: u8,
    pub quality: Quality,
}

/// The `n` hours of day with the highest median latency (ties: more loss first).
pub fn worst_hours(rows: &[MinuteRow], tz: &TimeZone, n: usize) -> Vec<HourQuality> {
    let mut hours: Vec<HourQuality> = (0..24u8)
        .map(|h| HourQuality {
            hour: h,
            quality: Quality::of(in_hours(rows, h, h + 1, tz)),
        })
        .filter(|h| h.quality.minutes > 0)
        .collect();
    hours.sort_by(|a, b| {
        let m = |h: &HourQuality| h.quality.median_ms.unwrap_or(f64::INFINITY);
        let l = |h: &HourQuality| h.quality.loss_percent().unwrap_or(0.0);
        m(b).total_cmp(&m(a)).then(l(b).total_cmp(&l(a)))
    });
    hours.truncate(n);
    hours
}

/// The monthly report card.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportCard {
    /// Minutes with probes.
    pub monitored_secs: f64,
    /// Seconds per outage kind inside the period.
    pub internet_down_secs: f64,
    pub lan_down_secs: f64,
    pub dns_down_secs: f64,
    pub outages: usize,
    pub quality: Quality,
    pub worst: Vec<HourQuality>,
}

impl ReportCard {
    pub fn build(
        rows: &[MinuteRow],
        outages: &[Outage],
        from_ns: i64,
        to_ns: i64,
        now_ns: i64,
        tz: &TimeZone,
    ) -> ReportCard {
        let secs = |k: State| {
            outages
                .iter()
                .filter(|o| o.kind == k)
                .map(|o| overlap_secs(o, from_ns, to_ns, now_ns))
                .sum::<f64>()
        };
        ReportCard {
            monitored_secs: rows.iter().filter(|r| r.rounds > 0).count() as f64 * 60.0,
            internet_down_secs: secs(State::InternetDown),
            lan_down_secs: secs(State::LanDown),
            dns_down_secs: secs(State::DnsDown),
            outages: outages.len(),
            quality: Quality::of(rows),
            worst: worst_hours(rows, tz, 3),
        }
    }

    /// The internet's uptime in percent of the monitored time (the router's and the LAN's own
    /// outages are not the ISP's and are not counted against it); `None` with nothing monitored.
    pub fn uptime_percent(&self) -> Option<f64> {
        (self.monitored_secs > 0.0).then(|| {
            let down = self.internet_down_secs + self.dns_down_secs;
            (100.0 * (1.0 - down / self.monitored_secs)).clamp(0.0, 100.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Group;
    use super::*;

    fn row(minute: i64, median_ms: u32, sent: u32, received: u32) -> MinuteRow {
        MinuteRow {
            minute,
            rounds: 6,
            up: 6,
            internet: Group {
                sent,
                received,
                median_us: Some(median_ms * 1000),
                p95_us: Some(median_ms * 2000),
            },
            ..MinuteRow::default()
        }
    }

    #[test]
    fn evening_hours_and_worst_hours_in_local_time() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // 2026-01-15 18:30 UTC is 19:30 in Berlin (UTC+1).
        let evening = 1_768_501_800;
        let morning = evening - 12 * 3600;
        let rows = [
            row(evening, 48, 36, 36),
            row(evening + 60, 50, 36, 35),
            row(evening + 120, 40, 36, 36),
            row(morning, 10, 36, 36),
        ];
        let q = Quality::of(in_hours(&rows, 19, 23, &tz));
        assert_eq!(q.minutes, 3);
        assert_eq!(q.median_ms, Some(48.0));
        assert_eq!(q.p95_ms, Some(100.0));
        assert!((q.loss_percent().unwrap() - 100.0 / 108.0).abs() < 1e-9);
        let w = worst_hours(&rows, &tz, 2);
        assert_eq!(w.iter().map(|h| h.hour).collect::<Vec<_>>(), [19, 7]);
        // Wrapping past midnight.
        assert_eq!(in_hours(&rows, 22, 8, &tz).count(), 1);
    }

    #[test]
    fn report_card_counts_only_the_isps_outages_against_uptime() {
        let tz = TimeZone::UTC;
        let rows: Vec<MinuteRow> = (0..100).map(|m| row(m * 60, 20, 6, 6)).collect();
        let s = 1_000_000_000i64;
        let outages = [
            Outage {
                kind: State::InternetDown,
                start_ns: 60 * s,
                end_ns: Some(120 * s),
            },
            Outage {
                kind: State::LanDown,
                start_ns: 600 * s,
                end_ns: Some(900 * s),
            },
            // Open, and partly before the period.
            Outage {
                kind: State::DnsDown,
                start_ns: -30 * s,
                end_ns: None,
            },
        ];
        let r = ReportCard::build(&rows, &outages, 0, 6000 * s, 30 * s, &tz);
        assert_eq!(r.monitored_secs, 6000.0);
        assert_eq!(
            (r.internet_down_secs, r.lan_down_secs, r.dns_down_secs),
            (60.0, 300.0, 30.0)
        );
        assert_eq!(r.outages, 3);
        assert!((r.uptime_percent().unwrap() - 98.5).abs() < 1e-9);
    }
}
