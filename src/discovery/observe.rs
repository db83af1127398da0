//! What the passive learners report: one fact about one MAC at one moment.
//!
//! Plain data, produced by the pure parsers ([`super::arp`], [`super::dhcp`], [`super::mdns`],
//! [`super::ndp`]) through [`super::wire::learn`] and merged by [`super::learner`]. Strings in
//! here have already been through [`super::text::escape`]; nothing here does I/O.

use crate::model::{MacAddr, TimestampNs};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Where a host name came from: shown beside the name, and used to rank names (a name the
/// device asked DHCP for beats an mDNS service instance name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NameSource {
    /// DHCPv4 option 12.
    Dhcp,
    /// DHCPv4 option 81 or DHCPv6 option 39 (client FQDN).
    DhcpFqdn,
    /// An mDNS A/AAAA/SRV/reverse-PTR record for `name.local`.
    Mdns,
    /// The instance label of an mDNS service ("Living Room" in `Living Room._airplay._tcp.local`).
    MdnsInstance,
}

impl NameSource {
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Dhcp => "dhcp",
            NameSource::DhcpFqdn => "dhcp-fqdn",
            NameSource::Mdns => "mdns",
            NameSource::MdnsInstance => "mdns-instance",
        }
    }
}

/// One thing learned about a MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// The MAC was heard (an ARP probe, an answer): presence only.
    Seen,
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Hostname(NameSource, String),
    /// DHCP option 60 / DHCPv6 option 16, escaped.
    VendorClass(String),
    /// DHCP option 61 (`dhcp:` + hex) or DHCPv6 DUID (`duid:` + hex): the identity a client
    /// keeps across private MAC addresses when it is not derived from the MAC itself.
    ClientId(String),
    /// A DNS-SD service type the device announced, such as `_airplay._tcp`.
    Service(String),
    /// It sent an IPv6 Router Advertisement.
    Router,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub ts: TimestampNs,
    pub mac: MacAddr,
    pub fact: Fact,
}

/// A MAC a fact may be attached to: unicast and not all zeros.
pub fn is_device_mac(mac: MacAddr) -> bool {
    !mac.is_group() && mac != MacAddr::default()
}

/// Appends `fact` about `mac` unless `mac` cannot be a device.
pub(crate) fn push(out: &mut Vec<Observation>, ts: TimestampNs, mac: MacAddr, fact: Fact) {
    if is_device_mac(mac) {
        out.push(Observation { ts, mac, fact });
    }
}

/// An IPv4 address worth recording as a device's: not unspecified, broadcast or multicast.
pub fn useful_v4(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}

/// An IPv6 address worth recording as a device's: not unspecified, loopback or multicast.
pub fn useful_v6(ip: Ipv6Addr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast())
}
