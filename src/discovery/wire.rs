//! From a captured frame to the discovery protocol it carries: link layer (Ethernet with
//! 802.1Q/802.1ad tags, Linux cooked SLL/SLL2), IPv4/IPv6, UDP/ICMPv6, then the right learner.
//!
//! Pure and total: any bytes in, zero or more observations out. It must never read past the
//! captured bytes, reassemble fragments, or look at any protocol other than ARP, DHCP (67/68,
//! 546/547), mDNS (5353) and ICMPv6 neighbour discovery: discovery learns who is on the LAN,
//! never what they do.

use super::observe::{Fact, Observation, push, useful_v4, useful_v6};
use super::{arp, dhcp, mdns, ndp};
use crate::capture::LinkType;
use crate::model::{MacAddr, TimestampNs};
use std::net::{Ipv4Addr, Ipv6Addr};

const MAX_VLAN_TAGS: usize = 8;

/// The BPF filter for the discovery capture: exactly the frames [`learn`] can use. ICMPv6 types
/// are read at a fixed offset, so NDP behind IPv6 extension headers is missed (hosts do not send
/// it that way).
pub const BPF_FILTER: &str = "arp or (udp and (port 67 or port 68 or port 546 or port 547 or port 5353)) \
or (icmp6 and (ip6[40] == 129 or ip6[40] == 133 or ip6[40] == 134 or ip6[40] == 135 or ip6[40] == 136))";

/// [`BPF_FILTER`] plus the same IPv4 protocols behind one 802.1Q tag. libpcap cannot compile
/// `vlan` for Linux cooked captures (the `any` device), where [`BPF_FILTER`] is used instead.
pub const BPF_FILTER_VLAN: &str = "arp or (udp and (port 67 or port 68 or port 546 or port 547 or port 5353)) \
or (icmp6 and (ip6[40] == 129 or ip6[40] == 133 or ip6[40] == 134 or ip6[40] == 135 or ip6[40] == 136)) \
or (vlan and (arp or (udp and (port 67 or port 68 or port 5353))))";

fn mac_at(b: &[u8], at: usize) -> Option<MacAddr> {
    let s: [u8; 6] = b.get(at..at + 6)?.try_into().ok()?;
    Some(MacAddr(s))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// A quick look (a few byte reads) at whether [`learn`] could find anything in an Ethernet frame:
/// replay shows every record of a file to discovery, and most are TCP. `true` when unsure.
#[inline]
pub fn maybe_discovery(link: LinkType, d: &[u8]) -> bool {
    if link != LinkType::Ethernet {
        return true;
    }
    let port = |at: usize| be16(d, at).unwrap_or(0);
    let wanted_udp = |sport: u16, dport: u16| {
        matches!(sport, 67 | 68 | 546 | 547 | 5353) || matches!(dport, 67 | 68 | 546 | 547 | 5353)
    };
    match be16(d, 12) {
        Some(0x0800) => match (d.get(14), d.get(23)) {
            (Some(0x45), Some(17)) => wanted_udp(port(34), port(36)),
            (Some(0x45), Some(_)) => false,
            _ => true,
        },
        Some(0x86dd) => match d.get(20) {
            Some(58) => true,
            Some(17) => wanted_udp(port(54), port(56)),
            Some(_) => false,
            None => true,
        },
        Some(0x0806 | 0x8100 | 0x88a8 | 0x9100) => true,
        _ => false,
    }
}

/// Learns what `data` (one captured frame) says about who is on the LAN.
pub fn learn(link: LinkType, ts: TimestampNs, data: &[u8], out: &mut Vec<Observation>) {
    let Some((src, dst, mut ethertype, mut at)) = link_header(link, data) else {
        return;
    };
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        let Some(et) = be16(data, at + 2) else { return };
        ethertype = et;
        at += 4;
    }
    let Some(l3) = data.get(at..) else { return };
    match ethertype {
        0x0806 => arp::parse(ts, l3, out),
        0x0800 => ipv4(ts, src, l3, out),
        0x86dd => ipv6(ts, src, dst, l3, out),
        _ => {}
    }
}

/// (source MAC, destination MAC or broadcast when unknown, EtherType, offset of what follows).
fn link_header(link: LinkType, d: &[u8]) -> Option<(MacAddr, MacAddr, u16, usize)> {
    match link {
        LinkType::Ethernet => Some((mac_at(d, 6)?, mac_at(d, 0)?, be16(d, 12)?, 14)),
        LinkType::LinuxSll => {
            (be16(d, 2)? == 1 && be16(d, 4)? == 6).then_some(())?;
            Some((mac_at(d, 6)?, MacAddr::BROADCAST, be16(d, 14)?, 16))
        }
        LinkType::LinuxSll2 => {
            (be16(d, 8)? == 1 && *d.get(11)? == 6).then_some(())?;
            Some((mac_at(d, 12)?, MacAddr::BROADCAST, be16(d, 0)?, 20))
        }
    }
}

fn ipv4(ts: TimestampNs, src_mac: MacAddr, p: &[u8], out: &mut Vec<Observation>) {
    let Some(h) = p.get(..20) else { return };
    if h[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    // Only first fragments start with the UDP header; later ones would be read as garbage.
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    if ihl < 20 || total < ihl || h[9] != 17 || frag_offset != 0 {
        return;
    }
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let end = total.min(p.len());
    let Some(udp) = p.get(ihl..end) else { return };
    let Some((sport, dport, payload)) = udp_payload(udp) else {
        return;
    };
    match (sport, dport) {
        (67 | 68, 67 | 68) => dhcp::parse_v4(ts, src_mac, payload, out),
        (5353, _) | (_, 5353) => {
            if useful_v4(src) {
                push(out, ts, src_mac, Fact::Ipv4(src));
            }
            mdns::parse(ts, src_mac, payload, out);
        }
        _ => {}
    }
}

fn ipv6(ts: TimestampNs, src_mac: MacAddr, dst_mac: MacAddr, p: &[u8], out: &mut Vec<Observation>) {
    let Some(h) = p.get(..40) else { return };
    if h[0] >> 4 != 6 {
        return;
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let src = Ipv6Addr::from(src);
    let end = (40 + plen).min(p.len());
    let Some(body) = p.get(40..end) else { return };
    match h[6] {
        58 => ndp::parse(ts, src_mac, src, body, out),
        17 => {
            let Some((sport, dport, payload)) = udp_payload(body) else {
                return;
            };
            match (sport, dport) {
                (546 | 547, 546 | 547) => dhcp::parse_v6(ts, src_mac, dst_mac, payload, out),
                (5353, _) | (_, 5353) => {
                    if useful_v6(src) {
                        push(out, ts, src_mac, Fact::Ipv6(src));
                    }
                    mdns::parse(ts, src_mac, payload, out);
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fn udp_payload(u: &[u8]) -> Option<(u16, u16, &[u8])> {
    let sport = be16(u, 0)?;
    let dport = be16(u, 2)?;
    let len = usize::from(be16(u, 4)?);
    let end = if len >= 8 { len.min(u.len()) } else { u.len() };
    Some((sport, dport, u.get(8..end)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::discovery_source::filter_compiles;

    #[test]
    fn the_filters_compile_for_ethernet_and_the_plain_one_for_cooked_captures() {
        assert!(filter_compiles(1, BPF_FILTER_VLAN));
        assert!(filter_compiles(1, BPF_FILTER));
        // `any` gives SLL2 (276), where `vlan` does not compile: the fallback must.
        assert!(!filter_compiles(276, BPF_FILTER_VLAN));
        assert!(filter_compiles(276, BPF_FILTER));
        assert!(filter_compiles(113, BPF_FILTER));
    }

    #[test]
    fn the_quick_look_never_hides_a_frame_learn_would_use() {
        let me = MacAddr([0xdc, 0xa6, 0x32, 1, 2, 3]);
        let req = arp::request(me, Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 1));
        assert!(maybe_discovery(LinkType::Ethernet, &req));
        let mut udp = vec![0u8; 14 + 20 + 8];
        udp[12..14].copy_from_slice(&[0x08, 0x00]);
        udp[14] = 0x45;
        udp[23] = 17;
        for (port, want) in [
            (5353u16, true),
            (67, true),
            (68, true),
            (53, false),
            (443, false),
        ] {
            udp[36..38].copy_from_slice(&port.to_be_bytes());
            assert_eq!(maybe_discovery(LinkType::Ethernet, &udp), want, "{port}");
        }
        udp[23] = 6;
        assert!(!maybe_discovery(LinkType::Ethernet, &udp));
        // Options in the IPv4 header: unsure, so yes.
        udp[14] = 0x46;
        assert!(maybe_discovery(LinkType::Ethernet, &udp));
        // Every frame learn() gets anything from passes the quick look: checked over a sample
        // of all single-byte variations of an mDNS announcement frame.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[
            0x08, 0x00, 0x45, 0, 0, 60, 0, 0, 0, 0, 255, 17, 0, 0, 10, 0, 0, 5, 224, 0, 0, 251,
        ]);
        f.extend_from_slice(&[0x14, 0xe9, 0x14, 0xe9, 0, 40, 0, 0]);
        f.extend_from_slice(&crate::discovery::mdns::tests::announcement(
            b"tv",
            [10, 0, 0, 5],
        ));
        f[6..12].copy_from_slice(&me.0);
        for i in 0..60 {
            for v in [0u8, 17, 0x45, 0xff] {
                let mut g = f.clone();
                g[i] = v;
                let mut out = Vec::new();
                learn(LinkType::Ethernet, 1, &g, &mut out);
                if !out.is_empty() {
                    assert!(maybe_discovery(LinkType::Ethernet, &g), "byte {i} = {v}");
                }
            }
        }
    }

    #[test]
    fn vlan_tagged_and_cooked_frames_reach_the_learners() {
        let me = MacAddr([0xdc, 0xa6, 0x32, 1, 2, 3]);
        let req = arp::request(me, Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 1));
        let mut tagged = req[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0, 7]);
        tagged.extend_from_slice(&req[12..]);
        let mut out = Vec::new();
        learn(LinkType::Ethernet, 1, &tagged, &mut out);
        assert_eq!(out[0].fact, Fact::Ipv4(Ipv4Addr::new(10, 0, 0, 5)));
        // SLL2: protocol, reserved, ifindex, hatype 1, pkttype, halen 6, address (8), payload.
        let mut sll2 = vec![0x08, 0x06, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        sll2.extend_from_slice(&me.0);
        sll2.extend_from_slice(&[0, 0]);
        sll2.extend_from_slice(&req[14..]);
        out.clear();
        learn(LinkType::LinuxSll2, 1, &sll2, &mut out);
        assert_eq!(out.len(), 1);
        // Nothing captured at all, or garbage: nothing learned, no panic.
        for n in 0..tagged.len() {
            learn(LinkType::Ethernet, 1, &tagged[..n], &mut Vec::new());
            learn(LinkType::LinuxSll, 1, &tagged[..n], &mut Vec::new());
            learn(
                LinkType::LinuxSll2,
                1,
                &sll2[..n.min(sll2.len())],
                &mut Vec::new(),
            );
        }
    }
}
