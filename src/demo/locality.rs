//! The generator's own statement of ACCOUNTING.md "what is local", used to book each frame template.
//!
//! Written independently of the meter on purpose: the expected totals must not share code with
//! what they check. It must never look at frame bytes, only at the addresses a template was built
//! with.

use crate::model::IpPrefix;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Which internet counter a frame feeds, decided by ACCOUNTING.md from its MACs and IP endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Internet {
    None,
    /// Device → gateway, destination IP not local: the sender's `internet_upload_bytes`.
    Upload,
    /// Gateway → device, source IP not local: the receiver's `internet_download_bytes`.
    Download,
}

/// The IP endpoints a template carries, when its IP header is complete and well-formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ips {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

pub(crate) struct Locality {
    prefixes: Vec<IpPrefix>,
}

/// ACCOUNTING.md's fixed list (RFC 1918, shared address space, link-local, ULA) plus multicast and the
/// limited broadcast address.
const BUILTIN: [&str; 10] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "fe80::/10",
    "fc00::/7",
    "ff00::/8",
];

impl Locality {
    /// `lan` are the configured LAN prefixes, `announced` the prefixes the router put in Router
    /// Advertisements (the generator sends its RA before any frame that depends on it).
    pub(crate) fn new(lan: &[IpPrefix], announced: &[IpPrefix]) -> Locality {
        let mut prefixes: Vec<IpPrefix> = BUILTIN.iter().filter_map(|p| p.parse().ok()).collect();
        debug_assert_eq!(prefixes.len(), BUILTIN.len());
        prefixes.extend_from_slice(lan);
        prefixes.extend_from_slice(announced);
        Locality { prefixes }
    }

    pub(crate) fn is_local_v4(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        self.prefixes.iter().any(|p| p.contains_v4(v))
    }

    pub(crate) fn is_local_v6(&self, ip: Ipv6Addr) -> bool {
        let v = u128::from(ip);
        self.prefixes.iter().any(|p| p.contains_v6(v))
    }

    /// Applies ACCOUNTING.md to one frame. `ips` is `None` when the IP part is absent or unreadable.
    pub(crate) fn classify(
        &self,
        src_is_gateway: bool,
        dst_is_gateway: bool,
        dst_is_unicast: bool,
        ips: Option<Ips>,
    ) -> Internet {
        let Some(ips) = ips else {
            return Internet::None;
        };
        let (src_local, dst_local) = match ips {
            Ips::V4(s, d) => (self.is_local_v4(s), self.is_local_v4(d)),
            Ips::V6(s, d) => (self.is_local_v6(s), self.is_local_v6(d)),
        };
        if dst_is_gateway && !src_is_gateway && !dst_local {
            Internet::Upload
        } else if src_is_gateway && dst_is_unicast && !dst_is_gateway && !src_local {
            Internet::Download
        } else {
            Internet::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn boundaries_of_every_local_range() {
        let ra: IpPrefix = "2001:db8:4b40:1e00::/64".parse().unwrap();
        let lan: IpPrefix = "192.168.178.0/24".parse().unwrap();
        let l = Locality::new(&[lan], &[ra]);
        for local in [
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "224.0.0.251",
            "239.255.255.250",
            "255.255.255.255",
        ] {
            assert!(l.is_local_v4(v4(local)), "{local} should be local");
        }
        for public in [
            "11.0.0.1",
            "172.32.0.1",
            "172.15.255.255",
            "192.169.0.1",
            "100.128.0.1",
            "100.63.255.255",
            "169.255.0.1",
            "8.8.8.8",
            "255.255.255.254",
        ] {
            assert!(!l.is_local_v4(v4(public)), "{public} should not be local");
        }
        for local in [
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fdff::1",
            "ff02::fb",
            "2001:db8:4b40:1e00::9",
        ] {
            assert!(l.is_local_v6(v6(local)), "{local} should be local");
        }
        for public in ["fec0::1", "2001:db8:4b40:1e01::1", "2606:4700::6810:85e5"] {
            assert!(!l.is_local_v6(v6(public)), "{public} should not be local");
        }
    }

    #[test]
    fn direction_rules() {
        let l = Locality::new(&[], &[]);
        let up = Some(Ips::V4(v4("192.168.178.20"), v4("142.250.185.78")));
        let down = Some(Ips::V4(v4("142.250.185.78"), v4("192.168.178.20")));
        let lan = Some(Ips::V4(v4("192.168.178.20"), v4("192.168.178.1")));
        assert_eq!(l.classify(false, true, true, up), Internet::Upload);
        assert_eq!(l.classify(true, false, true, down), Internet::Download);
        assert_eq!(l.classify(false, true, true, lan), Internet::None);
        // Not through the gateway: never internet, whatever the addresses say.
        assert_eq!(l.classify(false, false, true, up), Internet::None);
        // From the gateway to a group address: nobody receives it.
        assert_eq!(l.classify(true, false, false, down), Internet::None);
        // Unreadable IP part.
        assert_eq!(l.classify(false, true, true, None), Internet::None);
    }
}
