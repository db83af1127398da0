//! Coverage: for a range, the internet bytes lanmeter counted for the household's devices
//! divided by the bytes the router counted on its WAN interface, up and down. Near 100 % the
//! Pi sees the household's traffic; far below, it sits where part of it passes by unseen (a
//! switch port, a Wi-Fi link) and every figure on the dashboard is low by as much.
//!
//! [`coverage`] is the one function the overview, the System page, the API, `/metrics`, the
//! health alert and the first-run visibility verdict read it through.

use crate::store::Store;
use crate::store::query::{QueryError, Selection};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

/// Below this many router bytes in a direction a ratio says nothing (a few keep-alives).
pub const MIN_ROUTER_BYTES: u64 = 1_000_000;

/// Coverage over one range.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CoverageReport {
    /// The range, RFC 3339.
    pub from: String,
    pub to: String,
    /// What lanmeter counted as the devices' internet traffic (upload, download).
    pub lanmeter_bytes_up: u64,
    pub lanmeter_bytes_down: u64,
    /// What the router counted on its WAN interface (sent, received).
    pub router_bytes_up: u64,
    pub router_bytes_down: u64,
    /// lanmeter ÷ router in percent; `null` when it cannot be said (see `reason`).
    pub percent_up: Option<f64>,
    pub percent_down: Option<f64>,
    /// Both directions together.
    pub percent: Option<f64>,
    /// Router readings in the range, and those with a stuck byte counter.
    pub router_polls: u64,
    pub stuck_polls: u64,
    /// False when retention had deleted rows the range needed.
    pub exact: bool,
    /// Why there is no figure, when there is none.
    pub reason: Option<String>,
}

/// `seen` ÷ `counted` in percent, when `counted` is large enough to mean something.
pub fn percent(seen: u64, counted: u64) -> Option<f64> {
    (counted >= MIN_ROUTER_BYTES).then(|| seen as f64 * 100.0 / counted as f64)
}

/// The coverage of `[from, to)`.
pub fn coverage(
    store: &Store,
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Result<CoverageReport, QueryError> {
    // Only the internet bytes are compared with the router's: the other counters are not read.
    let seen = store.internet_usage(&Selection::Household, tz, from, to)?;
    let router = store.router_usage(tz, from, to)?;
    Ok(report(
        (from, to),
        (
            seen.counts.internet_upload_bytes,
            seen.counts.internet_download_bytes,
        ),
        router,
        seen.exact,
    ))
}

/// Local midnight of `now`'s day in `tz` to `now`: "today" on the overview.
pub fn today(tz: &TimeZone, now: i64) -> Option<(Timestamp, Timestamp)> {
    let to = Timestamp::from_second(now).ok()?;
    let from = to.to_zoned(tz.clone()).start_of_day().ok()?.timestamp();
    (from < to).then_some((from, to))
}

/// Today's coverage (see [`today`]) up to `lag_secs` ago: the router's bytes are stored at
/// every poll, the devices' only at each flush, so the newest minutes are left out (pass two
/// flush intervals); `None` while that leaves nothing of today.
pub fn coverage_today(
    store: &Store,
    tz: &TimeZone,
    now: i64,
    lag_secs: u64,
) -> Result<Option<CoverageReport>, QueryError> {
    let lagged = now - i64::try_from(lag_secs).unwrap_or(0);
    match today(tz, now).filter(|(from, _)| from.as_second() < lagged) {
        Some((from, _)) => {
            let to = Timestamp::from_second(lagged).unwrap_or(from);
            coverage(store, tz, from, to).map(Some)
        }
        None => Ok(None),
    }
}

/// The overview's sentence for today's coverage: the figure, or why there is none while the
/// router is read; `None` when the router is not read at all (nothing to say).
pub fn overview_line(
    report: Option<&CoverageReport>,
    status: Option<&super::RouterStatus>,
) -> Option<String> {
    let status = status?;
    if status.state == "stuck" {
        return status.message.clone();
    }
    let r = report?;
    match r.percent {
        Some(p) => Some(format!(
            "lanmeter saw {p:.0} % of the internet traffic your router counted today."
        )),
        None if status.state == "ok" => r
            .reason
            .clone()
            .map(|why| format!("Coverage today: {why}.")),
        None => status
            .message
            .clone()
            .map(|m| format!("The router's counters are not read: {m}")),
    }
}

/// The router poller's last status as stored (`None` before its first poll or when unreadable).
pub fn status(store: &Store) -> Result<Option<super::RouterStatus>, crate::store::StoreError> {
    Ok(store
        .router_status()?
        .and_then(|(_, json)| serde_json::from_str(&json).ok()))
}

/// The figures from the two sums (pure, for the tests and the callers that have them).
pub fn report(
    (from, to): (Timestamp, Timestamp),
    (seen_up, seen_down): (u64, u64),
    router: crate::store::router::RouterUsage,
    exact: bool,
) -> CoverageReport {
    let mut r = CoverageReport {
        from: from.to_string(),
        to: to.to_string(),
        lanmeter_bytes_up: seen_up,
        lanmeter_bytes_down: seen_down,
        router_bytes_up: router.bytes_up,
        router_bytes_down: router.bytes_down,
        router_polls: router.polls,
        stuck_polls: router.stuck_polls,
        exact: exact && router.exact,
        ..CoverageReport::default()
    };
    if router.polls == 0 {
        r.reason = Some(
            "no router counters were read in this range (router_source, docs/INSTALL.md)".into(),
        );
    } else if router.stuck_polls > 0 {
        r.reason = Some(format!(
            "the router's byte counter was stuck in {} of {} readings: its totals are too low to compare with",
            router.stuck_polls, router.polls
        ));
    } else {
        r.percent_up = percent(seen_up, router.bytes_up);
        r.percent_down = percent(seen_down, router.bytes_down);
        r.percent = percent(seen_up + seen_down, router.bytes_up + router.bytes_down);
        if r.percent.is_none() {
            r.reason =
                Some("the router counted too little traffic in this range to compare with".into());
        }
    }
    r
}

/// A device heard on the LAN (it sent broadcasts: ARP, DHCP, mDNS) to which not one unicast
/// frame was seen: its conversations pass the Pi by ("not visible from where the Pi is").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnseenDevice {
    pub mac: String,
    /// The name given, else a host name it announced; `null` when it has neither.
    pub name: Option<String>,
    /// Frames it sent in the range (broadcasts and multicasts, for the most part).
    pub frames_sent: u64,
}

/// The devices of `devices` that sent in the range but received no unicast frame in it (the
/// router and ignored devices left out), by MAC. Pure: `usage` is per MAC, as stored.
pub fn unseen(
    devices: &[crate::store::discovery::DeviceRecord],
    usage: &[crate::store::query::DeviceUsage],
) -> Vec<UnseenDevice> {
    let by_mac: std::collections::HashMap<_, _> = usage.iter().map(|u| (u.mac, u.counts)).collect();
    let mut out: Vec<UnseenDevice> = devices
        .iter()
        .filter(|d| !d.is_gateway && !d.user.ignored)
        .filter_map(|d| {
            let macs = std::iter::once(d.mac).chain(d.macs.iter().map(|m| m.mac));
            let mut seen = std::collections::HashSet::new();
            let (sent, received) = macs
                .filter(|m| seen.insert(*m))
                .filter_map(|m| by_mac.get(&m))
                .fold((0, 0), |(s, r), c| {
                    (s + c.frames_sent, r + c.frames_received)
                });
            (sent > 0 && received == 0).then(|| UnseenDevice {
                mac: d.mac.to_string(),
                name: d.display_name().map(str::to_string),
                frames_sent: sent,
            })
        })
        .collect();
    out.sort_by(|a, b| a.mac.cmp(&b.mac));
    out
}

/// [`unseen`] over `[from, to)` from the store.
pub fn not_visible(
    store: &Store,
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<UnseenDevice>, QueryError> {
    let (usage, _) = store.usage_by_device(tz, from, to)?;
    Ok(unseen(&store.list_devices()?, &usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::router::RouterUsage;

    fn range() -> (Timestamp, Timestamp) {
        (
            Timestamp::from_second(0).unwrap(),
            Timestamp::from_second(3600).unwrap(),
        )
    }

    #[test]
    fn the_overview_says_the_figure_or_why_not() {
        let ok = crate::router::RouterStatus {
            state: "ok".into(),
            ..Default::default()
        };
        let router = RouterUsage {
            bytes_up: 10_000_000,
            bytes_down: 90_000_000,
            polls: 360,
            stuck_polls: 0,
            exact: true,
        };
        let r = report(range(), (9_000_000, 88_000_000), router, true);
        assert_eq!(
            overview_line(Some(&r), Some(&ok)).unwrap(),
            "lanmeter saw 97 % of the internet traffic your router counted today."
        );
        assert_eq!(overview_line(Some(&r), None), None);
    }

    #[test]
    fn coverage_is_seen_over_counted_per_direction() {
        let router = RouterUsage {
            bytes_up: 10_000_000,
            bytes_down: 90_000_000,
            polls: 360,
            stuck_polls: 0,
            exact: true,
        };
        let r = report(range(), (5_000_000, 87_300_000), router, true);
        assert_eq!(r.percent_up, Some(50.0));
        assert_eq!(r.percent_down, Some(97.0));
        assert_eq!(r.percent, Some(92.3));
        assert_eq!(r.reason, None);
    }

    #[test]
    fn no_figure_without_readings_or_with_a_stuck_counter_or_too_little_traffic() {
        let none = report(range(), (5, 5), RouterUsage::default(), true);
        assert!(none.percent.is_none() && none.reason.unwrap().contains("no router counters"));
        let stuck = RouterUsage {
            bytes_up: 10_000_000,
            bytes_down: 10_000_000,
            polls: 10,
            stuck_polls: 3,
            exact: true,
        };
        let r = report(range(), (5, 5), stuck, true);
        assert!(r.percent.is_none() && r.reason.unwrap().contains("stuck in 3 of 10"));
        let quiet = RouterUsage {
            bytes_up: 1_000,
            bytes_down: 1_000,
            polls: 10,
            ..RouterUsage::default()
        };
        assert!(report(range(), (5, 5), quiet, true).percent.is_none());
    }

    /// In a real store: a device that only broadcast (an ARP, a DHCP request) is listed; one
    /// that also received a unicast frame is not, nor the router, nor an ignored device, nor a
    /// device outside the range.
    #[test]
    fn devices_heard_but_never_sent_a_unicast_frame_are_not_visible() {
        use crate::model::{Counts, MinuteUsage, Sighting};
        use crate::store::usage::tests::mac;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("v.db")).unwrap();
        let tz = TimeZone::UTC;
        let t = 1_765_000_800;
        let talk = |sent: u64, received: u64| Counts {
            frames_sent: sent,
            frames_received: received,
            bytes_sent: sent * 60,
            bytes_received: received * 1500,
            ..Counts::default()
        };
        // 1 talks; 2 only broadcasts; 3 broadcasts and receives a unicast frame an hour later;
        // 4 is ignored; 90 is the router; 5 only broadcast the day before.
        let rows = [
            (1, t, talk(10, 12)),
            (2, t, talk(3, 0)),
            (2, t + 60, talk(2, 0)),
            (3, t, talk(4, 0)),
            (3, t + 3600, talk(0, 1)),
            (4, t, talk(1, 0)),
            (90, t, talk(50, 0)),
            (5, t - 86_400, talk(1, 0)),
        ];
        let usage: Vec<MinuteUsage> = rows
            .iter()
            .map(|&(n, minute, counts)| MinuteUsage {
                mac: mac(n),
                minute,
                counts,
            })
            .collect();
        let seen: Vec<Sighting> = [1, 2, 3, 4, 5, 90]
            .map(|n| Sighting {
                mac: mac(n),
                first_seen: (t - 86_400) * 1_000_000_000,
                last_seen: t * 1_000_000_000,
                is_gateway: n == 90,
            })
            .to_vec();
        store.write_flush(&usage, &seen).unwrap();
        let four = store
            .list_devices()
            .unwrap()
            .into_iter()
            .find(|d| d.mac == mac(4))
            .unwrap();
        let mut user = four.user.clone();
        user.ignored = true;
        store.set_user_fields(four.id, &user).unwrap();
        let at = |s: i64| Timestamp::from_second(s).unwrap();
        let hidden = not_visible(&store, &tz, at(t), at(t + 7200)).unwrap();
        assert_eq!(
            hidden,
            vec![UnseenDevice {
                mac: mac(2).to_string(),
                name: None,
                frames_sent: 5,
            }]
        );
        // Within the first hour device 3 had not received anything yet.
        let first_hour: Vec<String> = not_visible(&store, &tz, at(t), at(t + 3600))
            .unwrap()
            .into_iter()
            .map(|d| d.mac)
            .collect();
        assert_eq!(first_hour, [mac(2).to_string(), mac(3).to_string()]);
    }
}
