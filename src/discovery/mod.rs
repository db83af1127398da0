//! Who is on the LAN, and the shape of the LAN itself.
//!
//! The LAN's shape: which interface carries the default route, who the gateway is (its MAC and
//! addresses) and which prefixes the interface is on, from thin readers of the kernel's tables
//! (procfs, `ip -6 neigh`, getifaddrs) whose parsing is pure and lives in [`routes`]. They never
//! send packets or block for long: every answer is "what the kernel knows right now", `None` or
//! empty when it knows nothing.
//!
//! The devices on it: the passive learners (pure parsers [`arp`], [`dhcp`], [`mdns`], [`ndp`]
//! behind [`wire::learn`], merged by [`learner`]), the active [`sweep`] (ARP and all-nodes
//! ping, rate-limited), [`vendor`] names from the OUI registry and the [`devtype`] guess, with
//! device-supplied strings made safe by [`text`]. These never touch the packet path of
//! accounting: they read their own capture handle and write the store in batches.
//!
//! Tables are read from `/proc/thread-self/net/`, not `/proc/net/` (which is the main thread's),
//! so a thread that entered another network namespace sees that namespace's tables.

pub mod arp;
pub mod devtype;
pub mod dhcp;
pub mod learner;
pub mod mdns;
pub mod ndp;
pub mod observe;
pub mod report;
pub mod routes;
pub mod sweep;
pub mod text;
pub mod vendor;
pub mod wire;

use crate::model::{IpPrefix, MacAddr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

/// The router that carries internet traffic, as the host's tables know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayInfo {
    pub mac: MacAddr,
    /// The IPv4 default gateway, when one resolves to `mac`.
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 default router (usually its link-local address), when it resolves to `mac`.
    pub ipv6: Option<Ipv6Addr>,
}

fn read_proc_net(file: &str) -> Option<String> {
    let path = format!("/proc/thread-self/net/{file}");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(err) => {
            tracing::debug!(path, error = %err, "cannot read kernel table");
            None
        }
    }
}

/// The interface of the lowest-metric IPv4 default route, else of the lowest-metric IPv6 one.
pub fn default_route_interface() -> Option<String> {
    if let Some(text) = read_proc_net("route") {
        let r = routes::parse_ipv4_routes(&text);
        if let Some(d) = routes::default_ipv4_route(&r, None) {
            return Some(d.iface.clone());
        }
    }
    let text = read_proc_net("ipv6_route")?;
    let r = routes::parse_ipv6_routes(&text);
    routes::default_ipv6_route(&r, None).map(|d| d.iface.clone())
}

/// The default gateway on `iface` and its MAC, from the IPv4 route and ARP tables and the IPv6
/// route and neighbour tables. `None` when there is no default route on `iface` or its router's
/// MAC is not resolved yet (the neighbour tables fill as soon as the host talks to it).
///
/// When both families have a router, the IPv4 one's MAC is the gateway; the IPv6 router is
/// reported only if it is the same box (same MAC), since a separate IPv6 router is not the
/// gateway the IPv4 internet traffic crosses.
pub fn detect_gateway(iface: &str) -> Option<GatewayInfo> {
    let v4 = ipv4_gateway(iface);
    let v6 = ipv6_router(iface);
    match (v4, v6) {
        (Some((ip4, mac4)), Some((ip6, mac6))) => Some(GatewayInfo {
            mac: mac4,
            ipv4: Some(ip4),
            ipv6: (mac6 == mac4).then_some(ip6),
        }),
        (Some((ip4, mac)), None) => Some(GatewayInfo {
            mac,
            ipv4: Some(ip4),
            ipv6: None,
        }),
        (None, Some((ip6, mac))) => Some(GatewayInfo {
            mac,
            ipv4: None,
            ipv6: Some(ip6),
        }),
        (None, None) => None,
    }
}

fn ipv4_gateway(iface: &str) -> Option<(Ipv4Addr, MacAddr)> {
    let r = routes::parse_ipv4_routes(&read_proc_net("route")?);
    let gw = routes::default_ipv4_route(&r, Some(iface))?.gateway;
    let arp = routes::parse_arp(&read_proc_net("arp")?);
    let mac = arp.iter().find(|e| e.ip == gw && e.iface == iface)?.mac;
    Some((gw, mac))
}

/// The IPv6 neighbour table has no procfs file, so this asks iproute2 for its JSON (`ip` is on
/// every Pi OS and Debian install; netlink would need another crate for one lookup).
fn ipv6_router(iface: &str) -> Option<(Ipv6Addr, MacAddr)> {
    let r = routes::parse_ipv6_routes(&read_proc_net("ipv6_route")?);
    let router = routes::default_ipv6_route(&r, Some(iface))?.next_hop;
    let out = match Command::new("ip")
        .args(["-6", "-j", "neigh", "show", "dev", iface])
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            tracing::debug!(iface, status = %o.status, "`ip -6 neigh show` failed");
            return None;
        }
        Err(err) => {
            tracing::debug!(iface, error = %err, "cannot run `ip -6 neigh show`");
            return None;
        }
    };
    let neigh = routes::parse_ip_neigh_json(&String::from_utf8_lossy(&out.stdout));
    let mac = neigh.iter().find(|n| n.ip == IpAddr::V6(router))?.mac;
    Some((router, mac))
}

/// The IPv4 and IPv6 prefixes of `iface`'s addresses, link-local ones left out (they are local by
/// rule anyway). Empty when the interface has no address or cannot be listed.
pub fn interface_prefixes(iface: &str) -> Vec<IpPrefix> {
    let addrs = match nix::ifaddrs::getifaddrs() {
        Ok(a) => a,
        Err(err) => {
            tracing::warn!(iface, error = %err, "cannot list interface addresses");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for a in addrs.filter(|a| a.interface_name == iface) {
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let prefix = if let (Some(ip), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            let ip = ip.ip();
            if ip.is_link_local() {
                continue;
            }
            IpPrefix::new(
                IpAddr::V4(ip),
                mask_len(u128::from(u32::from(m.ip())) << 96),
            )
        } else if let (Some(ip), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            let ip = ip.ip();
            if ip.is_unicast_link_local() {
                continue;
            }
            IpPrefix::new(IpAddr::V6(ip), mask_len(u128::from(m.ip())))
        } else {
            continue;
        };
        if let Ok(p) = prefix
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    out
}

/// Prefix length of a netmask: its leading ones (a non-contiguous mask, which the kernel does not
/// produce for addresses, is read up to its first zero).
fn mask_len(mask: u128) -> u8 {
    // leading_ones of a u128 is at most 128, so the cast cannot truncate.
    mask.leading_ones() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_len_counts_leading_ones() {
        assert_eq!(mask_len(u128::from(0xffff_ff00u32) << 96), 24);
        assert_eq!(mask_len(u128::MAX << 64), 64);
        assert_eq!(mask_len(0), 0);
        assert_eq!(mask_len(u128::MAX), 128);
    }

    #[test]
    fn loopback_prefixes_come_from_getifaddrs() {
        let p = interface_prefixes("lo");
        assert!(
            p.contains(&"127.0.0.0/8".parse().unwrap()),
            "lo prefixes: {p:?}"
        );
    }
}
