//! Pure parsers for the kernel's routing and neighbour tables as Linux prints them.
//!
//! Text in, typed rows out: `/proc/net/route`, `/proc/net/ipv6_route`, `/proc/net/arp` and the
//! JSON of `ip -6 -j neigh show`. It must never read files or run commands (the thin readers in
//! [`super`] do), and never fail on a malformed line: such a line is skipped.

use crate::model::MacAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `RTF_UP`: the route is usable.
const RTF_UP: u32 = 0x0001;
/// `RTF_GATEWAY`: the route goes through a next hop (a router), not straight onto the link.
const RTF_GATEWAY: u32 = 0x0002;
/// `RTF_REJECT`: an unreachable route (the kernel's catch-all `::/0` on `lo` carries it).
const RTF_REJECT: u32 = 0x0200;
/// `ATF_COM` in /proc/net/arp: the entry is resolved (its MAC is real, not 00:00:00:00:00:00).
const ATF_COM: u32 = 0x02;

/// One row of `/proc/net/route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Route {
    pub iface: String,
    pub destination: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub flags: u32,
    pub metric: u32,
}

impl Ipv4Route {
    /// A usable default route through a router: 0.0.0.0/0, up, with a gateway.
    pub fn is_default_via_gateway(&self) -> bool {
        self.destination.is_unspecified()
            && self.mask.is_unspecified()
            && self.flags & RTF_UP != 0
            && self.flags & RTF_GATEWAY != 0
    }
}

/// One row of `/proc/net/ipv6_route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Route {
    pub iface: String,
    pub destination: Ipv6Addr,
    pub prefix_len: u8,
    pub next_hop: Ipv6Addr,
    pub flags: u32,
    pub metric: u32,
}

impl Ipv6Route {
    /// A usable default route through a router: ::/0, up, not a reject route, with a next hop.
    pub fn is_default_via_gateway(&self) -> bool {
        self.destination.is_unspecified()
            && self.prefix_len == 0
            && self.flags & RTF_UP != 0
            && self.flags & RTF_REJECT == 0
            && !self.next_hop.is_unspecified()
    }
}

/// One resolved row of `/proc/net/arp` (incomplete entries are not returned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpEntry {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub iface: String,
}

/// One neighbour with a link-layer address, from `ip -j neigh show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub mac: MacAddr,
    /// The neighbour told us it is a router (IPv6 NDP's R flag).
    pub is_router: bool,
}

/// The kernel prints each address as the in-memory (network order) word formatted as a native
/// integer, so the bytes come back by reading the hex as a native integer.
fn hex_ipv4(s: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

fn hex_ipv6(s: &str) -> Option<Ipv6Addr> {
    if s.len() != 32 {
        return None;
    }
    u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
}

/// Parses `/proc/net/route` (header line skipped).
pub fn parse_ipv4_routes(text: &str) -> Vec<Ipv4Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            Some(Ipv4Route {
                iface: f[0].to_string(),
                destination: hex_ipv4(f[1])?,
                gateway: hex_ipv4(f[2])?,
                flags: u32::from_str_radix(f[3], 16).ok()?,
                metric: f[6].parse().ok()?,
                mask: hex_ipv4(f[7])?,
            })
        })
        .collect()
}

/// Parses `/proc/net/ipv6_route` (no header; every number is hex).
pub fn parse_ipv6_routes(text: &str) -> Vec<Ipv6Route> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            Some(Ipv6Route {
                destination: hex_ipv6(f[0])?,
                prefix_len: u8::from_str_radix(f[1], 16).ok()?,
                next_hop: hex_ipv6(f[4])?,
                metric: u32::from_str_radix(f[5], 16).ok()?,
                flags: u32::from_str_radix(f[8], 16).ok()?,
                iface: f[9].to_string(),
            })
        })
        .collect()
}

/// Parses `/proc/net/arp`, keeping only resolved entries.
pub fn parse_arp(text: &str) -> Vec<ArpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
            if flags & ATF_COM == 0 {
                return None;
            }
            Some(ArpEntry {
                ip: f[0].parse().ok()?,
                mac: f[3].parse().ok()?,
                iface: f[5].to_string(),
            })
        })
        .collect()
}

/// The shape of one element of `ip -j neigh show`. iproute2 prints flags as keys with a null value
/// (`"router": null`), so presence is what counts.
#[derive(serde::Deserialize)]
struct NeighJson {
    dst: String,
    lladdr: Option<String>,
    #[serde(default)]
    state: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    router: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d).map(|_| true)
}

/// Parses the JSON of `ip [-6] -j neigh show [dev IFACE]`, keeping neighbours whose link-layer
/// address is known and not FAILED. Unparseable output gives an empty list.
pub fn parse_ip_neigh_json(text: &str) -> Vec<Neighbour> {
    let Ok(rows) = serde_json::from_str::<Vec<NeighJson>>(text) else {
        return Vec::new();
    };
    rows.into_iter()
        .filter(|r| !r.state.iter().any(|s| s == "FAILED" || s == "INCOMPLETE"))
        .filter_map(|r| {
            Some(Neighbour {
                ip: r.dst.parse().ok()?,
                mac: r.lladdr?.parse().ok()?,
                is_router: r.router,
            })
        })
        .collect()
}

/// The lowest-metric default IPv4 route through a gateway, optionally only on `iface`.
pub fn default_ipv4_route<'a>(
    routes: &'a [Ipv4Route],
    iface: Option<&str>,
) -> Option<&'a Ipv4Route> {
    routes
        .iter()
        .filter(|r| r.is_default_via_gateway() && iface.is_none_or(|i| r.iface == i))
        .min_by_key(|r| r.metric)
}

/// The lowest-metric default IPv6 route through a router, optionally only on `iface`.
pub fn default_ipv6_route<'a>(
    routes: &'a [Ipv6Route],
    iface: Option<&str>,
) -> Option<&'a Ipv6Route> {
    routes
        .iter()
        .filter(|r| r.is_default_via_gateway() && iface.is_none_or(|i| r.iface == i))
        .min_by_key(|r| r.metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on a Debian 12 machine (x86_64, little-endian), two default routes added to show
    // the metric choice.
    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
garbage line
";

    const IPV6_ROUTE: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000099 00000400 00000002 00000000 00450003    wlan0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
192.0.2.9        0x1         0x0         00:00:00:00:00:00     *        eth0
192.168.1.1      0x1         0x6         dc:a6:32:aa:bb:cc     *        wlan0
";

    #[test]
    fn ipv4_routes_decode_native_order_hex() {
        let r = parse_ipv4_routes(ROUTE);
        assert_eq!(r.len(), 3);
        if cfg!(target_endian = "little") {
            assert_eq!(r[0].gateway, Ipv4Addr::new(192, 0, 2, 1));
            assert_eq!(r[2].destination, Ipv4Addr::new(192, 0, 2, 0));
            assert_eq!(r[2].mask, Ipv4Addr::new(255, 255, 255, 0));
        }
        assert_eq!(r[0].metric, 600);
        assert!(r[0].is_default_via_gateway());
        assert!(!r[2].is_default_via_gateway());
    }

    #[test]
    fn lowest_metric_default_wins_and_iface_filter_applies() {
        let r = parse_ipv4_routes(ROUTE);
        assert_eq!(default_ipv4_route(&r, None).unwrap().iface, "wlan0");
        assert_eq!(default_ipv4_route(&r, Some("eth0")).unwrap().metric, 600);
        assert!(default_ipv4_route(&r, Some("eth1")).is_none());
    }

    #[test]
    fn ipv6_default_skips_reject_route_on_lo() {
        let r = parse_ipv6_routes(IPV6_ROUTE);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].prefix_len, 64);
        let d = default_ipv6_route(&r, None).unwrap();
        assert_eq!(d.iface, "eth0");
        assert_eq!(d.next_hop, "fd00::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(d.metric, 0x400);
        let w = default_ipv6_route(&r, Some("wlan0")).unwrap();
        assert_eq!(w.next_hop, "fe80::99".parse::<Ipv6Addr>().unwrap());
        assert!(default_ipv6_route(&r, Some("lo")).is_none());
    }

    #[test]
    fn arp_keeps_only_resolved_entries() {
        let a = parse_arp(ARP);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].ip, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(a[0].mac.to_string(), "02:fc:00:00:00:05");
        assert_eq!(a[1].iface, "wlan0");
    }

    #[test]
    fn neigh_json_reads_router_flag_and_drops_failed() {
        let json = r#"[
            {"dst":"fe80::1","lladdr":"dc:a6:32:01:02:03","router":null,"state":["REACHABLE"]},
            {"dst":"fe80::2","lladdr":"dc:a6:32:01:02:04","state":["STALE"]},
            {"dst":"fd00::1","state":["FAILED"]},
            {"dst":"fd00::3","lladdr":"dc:a6:32:01:02:05","state":["FAILED"]},
            {"dst":"not an ip","lladdr":"dc:a6:32:01:02:06","state":["STALE"]}
        ]"#;
        let n = parse_ip_neigh_json(json);
        assert_eq!(n.len(), 2);
        assert!(n[0].is_router);
        assert!(!n[1].is_router);
        assert_eq!(n[1].mac.to_string(), "dc:a6:32:01:02:04");
        assert!(parse_ip_neigh_json("Cannot find device").is_empty());
        assert!(parse_ip_neigh_json("[]").is_empty());
    }
}
