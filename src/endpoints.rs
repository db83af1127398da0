//! Bytes per (device, remote endpoint) for internet traffic (issue 29), opt-in with the
//! `per_device_services` setting: pure logic, run inside the meter on the packet path (no I/O, no
//! locks, no allocation per packet).
//!
//! # What is counted
//! Exactly the frames the meter counts as a device's internet upload or download (ACCOUNTING.md
//! §3): for an upload the remote is the destination IP address, for a download the source. Each
//! device has one [`Summary`] per minute with at most [`ENTRIES`] remotes and an "other" bucket.
//!
//! # The bound and the guarantee
//! The summary is Space-Saving (Metwally et al.) with exact counts beside the estimates: the
//! estimate (used only to pick whom to evict) is the classic Space-Saving count, while the
//! bytes kept for a remote are counted exactly from the moment it was admitted. When a new
//! remote arrives and the summary is full:
//! - if a kept single address shares the newcomer's network (/24 for IPv4, /48 for IPv6), that
//!   entry becomes the network's entry and the newcomer's bytes go there (the bound forces
//!   aggregation: a CDN's many addresses in one /24 stay one visible row, not "other");
//! - otherwise the entry with the smallest estimate is evicted: its exact bytes move to
//!   "other", and the newcomer takes its place.
//!
//! So, per device and minute, the entries plus "other" equal the device's internet bytes
//! exactly, a remote's stored bytes are exact from its admission (for a remote never evicted:
//! exact), and any remote with more than 1/[`ENTRIES`] of the device's bytes in the minute is
//! kept (Space-Saving's guarantee). Memory is fixed: one summary per active device per minute,
//! whatever the device talks to.
//!
//! # The stored form (for joins, e.g. with the names learnt from DNS/SNI)
//! A remote is stored as text ([`Remote`]'s `Display`, parsed back by `FromStr`):
//! - a single address in Rust's `IpAddr` text form: `203.0.113.7`, `2001:db8::1` (IPv6 per
//!   RFC 5952: lower case, longest zero run compressed; an IPv4-mapped address stays
//!   `::ffff:1.2.3.4`, it is never turned into IPv4);
//! - a network in CIDR form with its host bits zero: `203.0.113.0/24`, `2001:db8:1::/48`;
//! - the "other" row as the word `other`.
//!
//! A table of (device, remote IP) → name joins on equality for single addresses
//! (`remote = ip_text`) and on containment for networks (`ip` within `remote`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Remotes kept per device and minute. A household device reaches a handful of services in a
/// minute (a video stream is one or two CDN addresses, a game download a few); 32 keeps every
/// remote with more than 3 % of the device's minute, costs ~1.8 KB per active device (200
/// devices: 0.36 MB per pending minute) and lets a lookup scan the keys in a few cache lines.
pub const ENTRIES: usize = 32;
/// The text of the "other" row.
pub const OTHER: &str = "other";

/// A remote endpoint: one address or, where the bound forced aggregation, its /24 or /48.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Remote {
    V4(u32),
    /// The /24 network (host bits zero).
    V4Net(u32),
    V6(u128),
    /// The /48 network (host bits zero).
    V6Net(u128),
}

impl Remote {
    /// The network a single address is aggregated into (a network is its own).
    #[inline]
    pub fn network(self) -> Remote {
        match self {
            Remote::V4(a) | Remote::V4Net(a) => Remote::V4Net(a & 0xffff_ff00),
            Remote::V6(a) | Remote::V6Net(a) => Remote::V6Net(a & !((1u128 << 80) - 1)),
        }
    }

    pub fn is_network(self) -> bool {
        matches!(self, Remote::V4Net(_) | Remote::V6Net(_))
    }

    /// Whether `ip` is this address or lies in this network.
    pub fn contains(self, ip: IpAddr) -> bool {
        let single = match ip {
            IpAddr::V4(a) => Remote::V4(a.into()),
            IpAddr::V6(a) => Remote::V6(a.into()),
        };
        self == single || (self.is_network() && self == single.network())
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Remote::V4(a) => write!(f, "{}", Ipv4Addr::from(a)),
            Remote::V4Net(a) => write!(f, "{}/24", Ipv4Addr::from(a)),
            Remote::V6(a) => write!(f, "{}", Ipv6Addr::from(a)),
            Remote::V6Net(a) => write!(f, "{}/48", Ipv6Addr::from(a)),
        }
    }
}

/// A remote's text that is neither an address nor a /24 or /48 network.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a remote endpoint: use an IP address, an IPv4 /24 or an IPv6 /48")]
pub struct ParseRemoteError(String);

impl std::str::FromStr for Remote {
    type Err = ParseRemoteError;
    fn from_str(s: &str) -> Result<Remote, ParseRemoteError> {
        let bad = || ParseRemoteError(s.to_string());
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let r = match (ip, len) {
            (IpAddr::V4(a), None) => Remote::V4(a.into()),
            (IpAddr::V6(a), None) => Remote::V6(a.into()),
            (IpAddr::V4(a), Some("24")) => Remote::V4Net(a.into()),
            (IpAddr::V6(a), Some("48")) => Remote::V6Net(a.into()),
            _ => return Err(bad()),
        };
        // Host bits must be zero: one network has one spelling.
        if r.is_network() && r.network() != r {
            return Err(bad());
        }
        Ok(r)
    }
}

/// One device's remotes within one minute (see the module doc for the guarantee).
#[derive(Clone, Debug)]
pub struct Summary {
    len: u8,
    /// The entry hit last: a transfer is one remote frame after frame.
    last: u8,
    keys: [Remote; ENTRIES],
    /// Space-Saving estimates: only for choosing whom to evict, never stored.
    est: [u64; ENTRIES],
    up: [u64; ENTRIES],
    down: [u64; ENTRIES],
    other_up: u64,
    other_down: u64,
    /// Remotes whose bytes moved to "other" to make room.
    evicted: u32,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            len: 0,
            last: 0,
            keys: [Remote::V4(0); ENTRIES],
            est: [0; ENTRIES],
            up: [0; ENTRIES],
            down: [0; ENTRIES],
            other_up: 0,
            other_down: 0,
            evicted: 0,
        }
    }
}

impl Summary {
    /// Counts `up` bytes sent to `remote` and `down` bytes received from it.
    #[inline]
    pub fn add(&mut self, remote: Remote, up: u64, down: u64) {
        let last = self.last as usize;
        if last < self.len as usize && self.keys[last] == remote {
            self.bump(last, up, down);
            return;
        }
        self.add_slow(remote, up, down);
    }

    #[inline]
    fn bump(&mut self, i: usize, up: u64, down: u64) {
        self.est[i] += up + down;
        self.up[i] += up;
        self.down[i] += down;
        self.last = i as u8;
    }

    fn add_slow(&mut self, remote: Remote, up: u64, down: u64) {
        let n = self.len as usize;
        let net = remote.network();
        let mut in_net = None;
        for i in 0..n {
            if self.keys[i] == remote {
                return self.bump(i, up, down);
            }
            if self.keys[i] == net {
                in_net = Some(i);
            }
        }
        if let Some(i) = in_net {
            return self.bump(i, up, down);
        }
        if n < ENTRIES {
            self.keys[n] = remote;
            self.est[n] = 0;
            self.up[n] = 0;
            self.down[n] = 0;
            self.len += 1;
            return self.bump(n, up, down);
        }
        // Full: aggregate with a kept address of the same network, else evict the smallest.
        let mut min = 0;
        for i in 0..n {
            if self.keys[i].network() == net {
                self.keys[i] = net;
                return self.bump(i, up, down);
            }
            if self.est[i] < self.est[min] {
                min = i;
            }
        }
        self.other_up += self.up[min];
        self.other_down += self.down[min];
        self.evicted += 1;
        self.keys[min] = remote;
        self.up[min] = 0;
        self.down[min] = 0;
        // The estimate keeps the evicted count: Space-Saving's over-estimate, ranking only.
        self.bump(min, up, down);
    }

    /// The kept remotes with their exact (up, down) bytes since admission.
    pub fn entries(&self) -> impl Iterator<Item = (Remote, u64, u64)> + '_ {
        (0..self.len as usize).map(|i| (self.keys[i], self.up[i], self.down[i]))
    }

    /// Bytes (up, down) of evicted remotes.
    pub fn other(&self) -> (u64, u64) {
        (self.other_up, self.other_down)
    }

    pub fn evicted(&self) -> u32 {
        self.evicted
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every byte counted: entries plus other, (up, down).
    pub fn total(&self) -> (u64, u64) {
        self.entries()
            .fold(self.other(), |(u, d), (_, eu, ed)| (u + eu, d + ed))
    }
}

/// One stored row: a device's bytes with one remote (`None`: "other") in one minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteUsage {
    pub mac: crate::model::MacAddr,
    pub minute: i64,
    pub remote: Option<Remote>,
    pub up: u64,
    pub down: u64,
}

/// The text stored for a row's remote.
pub fn remote_text(r: Option<Remote>) -> String {
    r.map_or_else(|| OTHER.to_string(), |r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> Remote {
        Remote::V4(u32::from_be_bytes(a))
    }

    #[test]
    fn text_round_trips_and_networks_have_one_spelling() {
        for s in [
            "203.0.113.7",
            "203.0.113.0/24",
            "2001:db8::1",
            "2001:db8:1::/48",
            "::ffff:1.2.3.4",
        ] {
            let r: Remote = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
        }
        assert_eq!(v4([203, 0, 113, 7]).network().to_string(), "203.0.113.0/24");
        let a: Remote = "2001:db8:1:2::5".parse().unwrap();
        assert_eq!(a.network().to_string(), "2001:db8:1::/48");
        assert!("203.0.113.7/24".parse::<Remote>().is_err());
        assert!("203.0.113.0/16".parse::<Remote>().is_err());
        assert!("other".parse::<Remote>().is_err());
        assert!(a.network().contains("2001:db8:1:ffff::1".parse().unwrap()));
        assert!(!a.contains("2001:db8:1:ffff::1".parse().unwrap()));
    }

    #[test]
    fn entries_plus_other_are_exact_under_a_flood() {
        let mut s = Summary::default();
        let (mut up, mut down) = (0u64, 0u64);
        // A heavy remote from the start, then 100k distinct random remotes.
        for i in 0..100_000u32 {
            s.add(v4([93, 184, 216, 34]), 1000, 1500);
            let r = Remote::V4(i.wrapping_mul(0x9e37_79b9) | 0x0100_0000);
            s.add(r, 60, 0);
            up += 1060;
            down += 1500;
        }
        assert_eq!(s.total(), (up, down));
        assert!(s.len() <= ENTRIES && s.evicted() > 0);
        let heavy = s.entries().find(|e| e.0 == v4([93, 184, 216, 34])).unwrap();
        assert_eq!((heavy.1, heavy.2), (100_000 * 1000, 100_000 * 1500));
    }

    #[test]
    fn a_full_summary_aggregates_a_network_instead_of_evicting() {
        let mut s = Summary::default();
        for i in 0..ENTRIES as u8 {
            s.add(v4([8, i, 0, 1]), 100, 0);
        }
        // Same /24 as the first entry: merged there, nothing evicted.
        s.add(v4([8, 0, 0, 2]), 10, 5);
        assert_eq!(s.evicted(), 0);
        let net = s
            .entries()
            .find(|e| e.0 == v4([8, 0, 0, 0]).network())
            .unwrap();
        assert_eq!((net.1, net.2), (110, 5));
        // Another address of that network finds the network entry.
        s.add(v4([8, 0, 0, 3]), 1, 0);
        assert_eq!(s.entries().find(|e| e.0 == net.0).unwrap().1, 111);
        // A new network evicts the smallest: its exact bytes go to other.
        s.add(v4([9, 9, 9, 9]), 7, 0);
        assert_eq!(s.evicted(), 1);
        assert_eq!(s.other(), (100, 0));
        assert_eq!(s.total(), (ENTRIES as u64 * 100 + 11 + 7, 5));
    }
}
