//! Internet quality from active probes (issue 27), the pure part: what one probe round found,
//! what state that means, the outage log it builds and the per-minute loss and latency.
//!
//! A round pings the gateway, the system's DNS resolvers and the configured internet targets,
//! and resolves one name. [`classify`] turns it into a [`State`]; [`OutageTracker`] turns
//! states into outages (opened after [`CONFIRM_ROUNDS`] bad rounds, dated from the first);
//! [`MinuteAgg`] folds rounds into [`MinuteRow`]s. The sockets live in [`probe`], the
//! schedule in `run::internet`, the tables in `store::internet`.

pub mod passive;
pub mod probe;
pub mod report;
pub mod wire;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

/// Bad rounds in a row before an outage is opened: one lost round is a blip, not an outage
/// (it still counts as loss in its minute).
pub const CONFIRM_ROUNDS: u32 = 2;

/// The connection's state in one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Up,
    /// The gateway answers, the internet targets do not.
    InternetDown,
    /// The gateway is silent (or there is no route to it): the router or the LAN is down.
    LanDown,
    /// Pings cross the internet but the name does not resolve.
    DnsDown,
    /// Nothing could be probed (no gateway, no target, no resolver).
    Unknown,
}

impl State {
    /// The word stored in the database and used by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::InternetDown => "internet_down",
            State::LanDown => "lan_down",
            State::DnsDown => "dns_down",
            State::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Up,
            State::InternetDown,
            State::LanDown,
            State::DnsDown,
            State::Unknown,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// How a household reads it.
    pub fn label(self) -> &'static str {
        match self {
            State::Up => "up",
            State::InternetDown => "internet down",
            State::LanDown => "router or LAN down",
            State::DnsDown => "DNS down",
            State::Unknown => "not measured",
        }
    }

    pub fn is_outage(self) -> bool {
        matches!(self, State::InternetDown | State::LanDown | State::DnsDown)
    }
}

/// Echo requests sent to one group of addresses in a round and the round-trip times of the
/// replies, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pings {
    pub sent: u32,
    pub rtts_us: Vec<u32>,
}

impl Pings {
    pub fn answered(&self) -> bool {
        !self.rtts_us.is_empty()
    }

    fn add(&mut self, other: &Pings) {
        self.sent += other.sent;
        self.rtts_us.extend_from_slice(&other.rtts_us);
    }
}

/// What one round found. A group that had nothing to probe has `sent == 0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub gateway: Pings,
    pub resolvers: Pings,
    pub internet: Pings,
    /// Resolution of the configured name: `None` when no resolver was known; the time it took.
    pub dns: Option<Result<u32, ()>>,
}

/// The state one round shows. `gateway_pingable` says whether the gateway has ever answered a
/// ping: a router that drops ICMP must not turn every internet outage into a LAN one.
pub fn classify(r: &Round, gateway_pingable: bool) -> State {
    let dns_ok = r.dns.map(|d| d.is_ok());
    let internet_ok = if r.internet.sent > 0 {
        Some(r.internet.answered())
    } else {
        // No internet target configured: a resolved name is the only sign of the internet.
        dns_ok
    };
    match internet_ok {
        Some(true) if dns_ok == Some(false) => State::DnsDown,
        Some(true) => State::Up,
        Some(false) => {
            if r.gateway.answered() || !gateway_pingable {
                State::InternetDown
            } else {
                State::LanDown
            }
        }
        None if r.gateway.sent > 0 && !r.gateway.answered() && gateway_pingable => State::LanDown,
        None => State::Unknown,
    }
}

/// One outage: `end_ns` is `None` while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    pub kind: State,
    pub start_ns: i64,
    pub end_ns: Option<i64>,
}

/// What [`OutageTracker::feed`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutageEvent {
    Opened(Outage),
    /// A finished outage (its `end_ns` is set).
    Closed(Outage),
}

/// Builds the outage log from one state per round.
#[derive(Clone, Debug, Default)]
pub struct OutageTracker {
    open: Option<Outage>,
    /// A bad state seen in the last rounds but not yet confirmed: kind, first time, rounds.
    pending: Option<(State, i64, u32)>,
}

impl OutageTracker {
    /// Continues an outage left open by an earlier run (it is still going if this run's rounds
    /// are bad, closed at the first good one).
    pub fn resume(open: Outage) -> OutageTracker {
        OutageTracker {
            open: Some(open),
            pending: None,
        }
    }

    pub fn open(&self) -> Option<Outage> {
        self.open
    }

    /// The state of the round that started at `at_ns`. An outage ends at the start of the first
    /// good round; one of another kind closes it when the new kind is confirmed.
    pub fn feed(&mut self, state: State, at_ns: i64) -> Vec<OutageEvent> {
        let mut events = Vec::new();
        if state == State::Unknown {
            return events;
        }
        if !state.is_outage() {
            self.pending = None;
            if let Some(mut o) = self.open.take() {
                o.end_ns = Some(at_ns);
                events.push(OutageEvent::Closed(o));
            }
            return events;
        }
        if self.open.is_some_and(|o| o.kind == state) {
            self.pending = None;
            return events;
        }
        let (kind, first, n) = match self.pending {
            Some((k, first, n)) if k == state => (k, first, n + 1),
            _ => (state, at_ns, 1),
        };
        if n < CONFIRM_ROUNDS {
            self.pending = Some((kind, first, n));
            return events;
        }
        self.pending = None;
        if let Some(mut o) = self.open.take() {
            o.end_ns = Some(first);
            events.push(OutageEvent::Closed(o));
        }
        let o = Outage {
            kind,
            start_ns: first,
            end_ns: None,
        };
        self.open = Some(o);
        events.push(OutageEvent::Opened(o));
        events
    }
}

/// The `q`-quantile (0..=1) of `v` by the nearest-rank method; `None` when empty.
pub fn quantile(v: &mut [u32], q: f64) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// Latency of one group in one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub sent: u32,
    pub received: u32,
    pub median_us: Option<u32>,
    pub p95_us: Option<u32>,
}

impl Group {
    fn of(p: &Pings) -> Group {
        let mut v = p.rtts_us.clone();
        Group {
            sent: p.sent,
            received: v.len() as u32,
            median_us: quantile(&mut v, 0.5),
            p95_us: quantile(&mut v, 0.95),
        }
    }

    /// Lost echo requests in percent; `None` when nothing was sent.
    pub fn loss_percent(&self) -> Option<f64> {
        (self.sent > 0).then(|| {
            100.0 * f64::from(self.sent.saturating_sub(self.received)) / f64::from(self.sent)
        })
    }
}

/// One minute of probing, as stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MinuteRow {
    /// Unix seconds at the minute's start (UTC).
    pub minute: i64,
    /// Rounds per state.
    pub rounds: u32,
    pub up: u32,
    pub internet_down: u32,
    pub lan_down: u32,
    pub dns_down: u32,
    pub gateway: Group,
    pub resolvers: Group,
    pub internet: Group,
    pub dns_queries: u32,
    pub dns_failures: u32,
    pub dns_median_us: Option<u32>,
}

#[derive(Default)]
struct MinuteAcc {
    states: BTreeMap<State, u32>,
    gateway: Pings,
    resolvers: Pings,
    internet: Pings,
    dns_queries: u32,
    dns_failures: u32,
    dns_us: Vec<u32>,
}

/// Folds rounds into minutes; a minute is handed out once a round of a later minute arrived.
#[derive(Default)]
pub struct MinuteAgg {
    minutes: BTreeMap<i64, MinuteAcc>,
}

impl MinuteAgg {
    pub fn add(&mut self, at_ns: i64, r: &Round, state: State) {
        let minute = at_ns.div_euclid(60_000_000_000) * 60;
        let m = self.minutes.entry(minute).or_default();
        *m.states.entry(state).or_default() += 1;
        m.gateway.add(&r.gateway);
        m.resolvers.add(&r.resolvers);
        m.internet.add(&r.internet);
        if let Some(d) = r.dns {
            m.dns_queries += 1;
            match d {
                Ok(us) => m.dns_us.push(us),
                Err(()) => m.dns_failures += 1,
            }
        }
    }

    /// The minutes before the one `now_ns` is in (all of them when `all`).
    pub fn take(&mut self, now_ns: i64, all: bool) -> Vec<MinuteRow> {
        let current = now_ns.div_euclid(60_000_000_000) * 60;
        let keep = if all {
            BTreeMap::new()
        } else {
            self.minutes.split_off(&current)
        };
        let done = std::mem::replace(&mut self.minutes, keep);
        done.into_iter()
            .map(|(minute, mut m)| {
                let n = |s| m.states.get(&s).copied().unwrap_or(0);
                MinuteRow {
                    minute,
                    rounds: m.states.values().sum(),
                    up: n(State::Up),
                    internet_down: n(State::InternetDown),
                    lan_down: n(State::LanDown),
                    dns_down: n(State::DnsDown),
                    gateway: Group::of(&m.gateway),
                    resolvers: Group::of(&m.resolvers),
                    internet: Group::of(&m.internet),
                    dns_queries: m.dns_queries,
                    dns_failures: m.dns_failures,
                    dns_median_us: quantile(&mut m.dns_us, 0.5),
                }
            })
            .collect()
    }
}

/// The nameservers of a resolv.conf text, in order.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            // A link-local IPv6 server may carry a zone ("fe80::1%eth0"): not usable here.
            w.next()?.parse().ok()
        })
        .collect()
}

/// The system's upstream resolvers: resolv.conf's, or systemd-resolved's upstreams when
/// resolv.conf only names its local stub (127.0.0.53).
pub fn system_resolvers() -> Vec<IpAddr> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|t| parse_resolv_conf(&t))
            .unwrap_or_default()
    };
    let main = read("/etc/resolv.conf");
    let stub = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));
    if !main.is_empty() && main.iter().all(|a| *a == stub) {
        let upstream = read("/run/systemd/resolve/resolv.conf");
        if !upstream.is_empty() {
            return upstream;
        }
    }
    main
}

/// The IPv4 default gateway from the kernel's routing table (this thread's namespace).
pub fn default_gateway() -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/thread-self/net/route").ok()?;
    let routes = crate::discovery::routes::parse_ipv4_routes(&text);
    crate::discovery::routes::default_ipv4_route(&routes, None).map(|r| r.gateway)
}

/// What the web side and `/metrics` show as "now", kept by the probe thread.
#[derive(Clone, Debug, Default)]
pub struct Now {
    /// When the last round started (ns), `None` before the first.
    pub at_ns: Option<i64>,
    pub state: Option<State>,
    /// The outage going on, if any.
    pub outage: Option<Outage>,
    /// The last full minute.
    pub last_minute: Option<MinuteRow>,
    /// Counters since start, for Prometheus.
    pub rounds: u64,
    pub sent: u64,
    pub received: u64,
    pub outages: u64,
}

/// [`Now`] shared between the probe thread and the web side.
#[derive(Clone, Debug, Default)]
pub struct SharedNow(Arc<Mutex<Now>>);

impl SharedNow {
    pub fn get(&self) -> Now {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut Now)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pings(sent: u32, rtts: &[u32]) -> Pings {
        Pings {
            sent,
            rtts_us: rtts.to_vec(),
        }
    }

    fn round(gw: bool, net: bool, dns: Option<bool>) -> Round {
        Round {
            gateway: pings(1, if gw { &[500] } else { &[] }),
            resolvers: Pings::default(),
            internet: pings(2, if net { &[20_000] } else { &[] }),
            dns: dns.map(|ok| if ok { Ok(3_000) } else { Err(()) }),
        }
    }

    #[test]
    fn classification_tells_the_three_outages_apart() {
        assert_eq!(classify(&round(true, true, Some(true)), true), State::Up);
        assert_eq!(
            classify(&round(true, false, Some(true)), true),
            State::InternetDown
        );
        assert_eq!(
            classify(&round(false, false, Some(false)), true),
            State::LanDown
        );
        assert_eq!(
            classify(&round(true, true, Some(false)), true),
            State::DnsDown
        );
        // No resolver known: pings alone decide.
        assert_eq!(classify(&round(true, true, None), true), State::Up);
        // A gateway that never answered pings is no evidence against the LAN.
        assert_eq!(
            classify(&round(false, false, Some(false)), false),
            State::InternetDown
        );
        // The gateway may ignore pings while the internet works.
        assert_eq!(classify(&round(false, true, Some(true)), true), State::Up);
        // Nothing to probe at all.
        assert_eq!(classify(&Round::default(), true), State::Unknown);
        // No targets: DNS stands for the internet.
        let mut r = round(true, false, Some(true));
        r.internet = Pings::default();
        assert_eq!(classify(&r, true), State::Up);
        r.dns = Some(Err(()));
        assert_eq!(classify(&r, true), State::InternetDown);
    }

    #[test]
    fn outage_opens_after_confirmation_dated_from_the_first_bad_round() {
        let mut t = OutageTracker::default();
        assert!(t.feed(State::Up, 0).is_empty());
        // One blip: no outage.
        assert!(t.feed(State::InternetDown, 10).is_empty());
        assert!(t.feed(State::Up, 20).is_empty());
        assert!(t.feed(State::InternetDown, 30).is_empty());
        let ev = t.feed(State::InternetDown, 40);
        let opened = Outage {
            kind: State::InternetDown,
            start_ns: 30,
            end_ns: None,
        };
        assert_eq!(ev, [OutageEvent::Opened(opened)]);
        assert!(t.feed(State::InternetDown, 50).is_empty());
        assert!(t.feed(State::Unknown, 60).is_empty());
        let ev = t.feed(State::Up, 90);
        assert_eq!(
            ev,
            [OutageEvent::Closed(Outage {
                end_ns: Some(90),
                ..opened
            })]
        );
        assert_eq!(t.open(), None);
    }

    #[test]
    fn a_new_kind_closes_the_old_outage_where_it_began() {
        let mut t = OutageTracker::resume(Outage {
            kind: State::LanDown,
            start_ns: 0,
            end_ns: None,
        });
        assert!(t.feed(State::InternetDown, 100).is_empty());
        let ev = t.feed(State::InternetDown, 110);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0],
            OutageEvent::Closed(Outage {
                kind: State::LanDown,
                start_ns: 0,
                end_ns: Some(100)
            })
        );
        assert!(
            matches!(ev[1], OutageEvent::Opened(o) if o.kind == State::InternetDown && o.start_ns == 100)
        );
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut v, 0.5), Some(50));
        assert_eq!(quantile(&mut v, 0.95), Some(95));
        assert_eq!(quantile(&mut [7], 0.95), Some(7));
        assert_eq!(quantile(&mut [], 0.5), None);
    }

    #[test]
    fn minutes_are_handed_out_when_complete() {
        let mut agg = MinuteAgg::default();
        let s = 1_000_000_000i64;
        agg.add(120 * s, &round(true, true, Some(true)), State::Up);
        let mut lossy = round(true, false, Some(false));
        lossy.internet.sent = 2;
        agg.add(130 * s, &lossy, State::InternetDown);
        agg.add(180 * s, &round(true, true, Some(true)), State::Up);
        assert!(agg.take(179 * s, false).is_empty());
        let rows = agg.take(181 * s, false);
        assert_eq!(rows.len(), 1);
        let m = &rows[0];
        assert_eq!((m.minute, m.rounds, m.up, m.internet_down), (120, 2, 1, 1));
        assert_eq!(m.internet.sent, 4);
        assert_eq!(m.internet.received, 1);
        assert_eq!(m.internet.loss_percent(), Some(75.0));
        assert_eq!(m.internet.median_us, Some(20_000));
        assert_eq!((m.dns_queries, m.dns_failures), (2, 1));
        assert_eq!(agg.take(181 * s, true).len(), 1);
    }

    #[test]
    fn resolv_conf_nameservers() {
        let t = "# generated\nsearch lan\nnameserver 192.168.1.1\nnameserver  2001:db8::53\nnameserver fe80::1%eth0\noptions edns0\nnameserver\n";
        assert_eq!(
            parse_resolv_conf(t),
            [
                "192.168.1.1".parse::<IpAddr>().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
    }
}
