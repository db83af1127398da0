//! The active scan: an ARP request to every address of the local IPv4 subnet(s) and one IPv6
//! echo request to all-nodes, every sweep interval, so that devices that stay silent are found.
//! Their answers arrive on the discovery capture like any other ARP reply or echo reply.
//!
//! It owns the target list (pure), the pacing that keeps the request rate at or under the
//! configured limit (consecutive requests are never closer than 1/rate), and the sweep loop on
//! its own thread. It must never exceed the rate, sweep more than [`MAX_TARGETS`] addresses at
//! once, address anything outside the interface's own subnets, or outlive the stop flag by more
//! than about [`STOP_CHECK`].

use super::{arp, ndp};
use crate::model::MacAddr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Subnets larger than a /20 (4,094 hosts) are swept only around our own /24: a /16 would
/// take 20 minutes at 50 requests/s and is not a household LAN.
pub const MAX_TARGETS: usize = 4094;
/// How often a waiting sweep looks at the stop flag.
pub const STOP_CHECK: Duration = Duration::from_millis(100);

/// Sends one link-layer frame (the daemon wires it to the capture module's send handle).
pub trait SendFrame: Send {
    fn send(&mut self, frame: &[u8]) -> Result<(), String>;
}

/// What the sweep needs to know about the interface it speaks from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalInterface {
    pub mac: MacAddr,
    /// Our IPv4 addresses with their prefix lengths.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// Our link-local IPv6 address, the source of the all-nodes ping.
    pub ipv6_link_local: Option<Ipv6Addr>,
}

/// Reads `iface`'s MAC and addresses from the kernel (getifaddrs). `None` if it has no MAC.
pub fn local_interface(iface: &str) -> Option<LocalInterface> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut out = LocalInterface::default();
    let mut have_mac = false;
    for a in addrs.filter(|a| a.interface_name == iface) {
        let Some(addr) = a.address else { continue };
        if let Some(ll) = addr.as_link_addr()
            && let Some(m) = ll.addr()
        {
            out.mac = MacAddr(m);
            have_mac = true;
        } else if let Some(v4) = addr.as_sockaddr_in() {
            let len = a
                .netmask
                .and_then(|m| m.as_sockaddr_in().map(|m| u32::from(m.ip()).leading_ones()))
                .unwrap_or(32);
            // leading_ones of a u32 is at most 32.
            out.ipv4.push((v4.ip(), len as u8));
        } else if let Some(v6) = addr.as_sockaddr_in6()
            && v6.ip().is_unicast_link_local()
        {
            out.ipv6_link_local = Some(v6.ip());
        }
    }
    have_mac.then_some(out)
}

/// Every host address of our subnets except our own, network and broadcast, in order; a
/// subnet larger than [`MAX_TARGETS`] hosts is narrowed to our /24.
pub fn targets(ours: &[(Ipv4Addr, u8)]) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for &(ip, len) in ours {
        if ip.is_loopback() || ip.is_link_local() || len >= 31 {
            continue;
        }
        let len = if (1u64 << (32 - u32::from(len))) - 2 > MAX_TARGETS as u64 {
            24
        } else {
            len
        };
        let me = u32::from(ip);
        let mask = u32::MAX << (32 - u32::from(len));
        let net = me & mask;
        let bcast = net | !mask;
        for a in net + 1..bcast {
            if a != me && out.len() < MAX_TARGETS {
                out.push(Ipv4Addr::from(a));
            }
        }
    }
    out.dedup();
    out
}

/// Spaces sends at least `1/rate` apart: never a burst, even after a late wake-up.
#[derive(Debug)]
pub struct Pacer {
    gap: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(rate_per_sec: u32) -> Pacer {
        Pacer {
            gap: Duration::from_secs(1) / rate_per_sec.max(1),
            next: None,
        }
    }

    /// How long to wait at `now` before the next send may go (zero if it may go now).
    pub fn wait(&self, now: Instant) -> Duration {
        self.next
            .map_or(Duration::ZERO, |n| n.saturating_duration_since(now))
    }

    /// Records a send at `now`: the next one is a full gap later, never earlier.
    pub fn sent(&mut self, now: Instant) {
        self.next = Some(now + self.gap);
    }
}

/// Sleeps up to `d`, in slices, returning early (false) when `stop` is set.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(STOP_CHECK));
    }
}

/// Sweeps now and then every `interval` until `stop`: the all-nodes ping first (one frame),
/// then the ARP requests, paced at `rate` per second (the ping counts against the same pace).
pub fn run(
    sender: &mut dyn SendFrame,
    local: &LocalInterface,
    interval: Duration,
    rate: u32,
    stop: &AtomicBool,
) {
    let list = targets(&local.ipv4);
    let Some(&(src_ip, _)) = local
        .ipv4
        .iter()
        .find(|(ip, _)| !ip.is_loopback() && !ip.is_link_local())
    else {
        tracing::info!("no IPv4 address on the interface: the ARP sweep is off");
        return;
    };
    let mut pacer = Pacer::new(rate);
    let mut seq: u16 = 0;
    let mut failures = 0u64;
    loop {
        let started = Instant::now();
        if let Some(ll) = local.ipv6_link_local
            && sleep_unless_stopped(pacer.wait(Instant::now()), stop)
        {
            seq = seq.wrapping_add(1);
            if let Err(e) = sender.send(&ndp::all_nodes_ping(local.mac, ll, 0x6c6d, seq)) {
                tracing::debug!(error = %e, "all-nodes ping not sent");
            }
            pacer.sent(Instant::now());
        }
        for &t in &list {
            if !sleep_unless_stopped(pacer.wait(Instant::now()), stop) {
                return;
            }
            if let Err(e) = sender.send(&arp::request(local.mac, src_ip, t)) {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures, "ARP sweep request not sent");
                }
            }
            pacer.sent(Instant::now());
        }
        tracing::debug!(
            targets = list.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "ARP sweep done"
        );
        if !sleep_unless_stopped(interval.saturating_sub(started.elapsed()), stop) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_cover_the_subnet_but_not_us_network_or_broadcast() {
        let t = targets(&[(Ipv4Addr::new(192, 168, 1, 10), 24)]);
        assert_eq!(t.len(), 253);
        assert_eq!(t[0], Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(*t.last().unwrap(), Ipv4Addr::new(192, 168, 1, 254));
        assert!(!t.contains(&Ipv4Addr::new(192, 168, 1, 10)));
        // A /16 is narrowed to our /24; loopback and point-to-point links are skipped.
        let t = targets(&[
            (Ipv4Addr::new(10, 1, 2, 3), 16),
            (Ipv4Addr::new(127, 0, 0, 1), 8),
            (Ipv4Addr::new(10, 9, 9, 9), 31),
        ]);
        assert_eq!(t.len(), 253);
        assert!(t.iter().all(|a| a.octets()[..3] == [10, 1, 2]));
        assert_eq!(targets(&[(Ipv4Addr::new(10, 0, 0, 1), 20)]).len(), 4093);
    }

    #[test]
    fn pacer_never_lets_two_sends_closer_than_the_gap() {
        let t0 = Instant::now();
        let mut p = Pacer::new(50);
        assert_eq!(p.wait(t0), Duration::ZERO);
        p.sent(t0);
        assert_eq!(p.wait(t0), Duration::from_millis(20));
        assert_eq!(
            p.wait(t0 + Duration::from_millis(5)),
            Duration::from_millis(15)
        );
        // A late send does not earn a burst afterwards.
        let late = t0 + Duration::from_millis(500);
        assert_eq!(p.wait(late), Duration::ZERO);
        p.sent(late);
        assert_eq!(p.wait(late), Duration::from_millis(20));
    }

    struct Recorder(Vec<(Instant, Vec<u8>)>);
    impl SendFrame for Recorder {
        fn send(&mut self, frame: &[u8]) -> Result<(), String> {
            self.0.push((Instant::now(), frame.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn a_sweep_sends_the_ping_and_one_request_per_target_then_stops_on_the_flag() {
        let local = LocalInterface {
            mac: MacAddr([0xdc, 0xa6, 0x32, 0, 0, 1]),
            ipv4: vec![(Ipv4Addr::new(10, 0, 0, 1), 29)],
            ipv6_link_local: Some("fe80::1".parse().unwrap()),
        };
        let stop = AtomicBool::new(false);
        let mut rec = Recorder(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(400));
                stop.store(true, Ordering::Relaxed);
            });
            run(&mut rec, &local, Duration::from_secs(3600), 1000, &stop);
        });
        // 1 ping + 5 targets (10.0.0.2..=6), once: the next sweep is an hour away.
        assert_eq!(rec.0.len(), 6);
        assert_eq!(&rec.0[0].1[..2], &[0x33, 0x33]);
        for w in rec.0.windows(2) {
            assert!(w[1].0 - w[0].0 >= Duration::from_millis(1));
        }
    }
}
