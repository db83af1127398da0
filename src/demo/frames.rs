//! Frame templates for the generator, built with `pnet_packet` (an implementation independent of
//! our own decoder) and then patched per emitted frame (lengths, IPv4 id/checksum, TCP sequence).
//!
//! It owns header layouts on the *writing* side only. It must never decide who a frame is counted
//! for: templates carry the addresses they were built with, and the household books them.

use crate::model::MacAddr;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperation, MutableArpPacket};
use pnet_packet::dhcp::{DhcpHardwareTypes, DhcpOperation, MutableDhcpPacket};
use pnet_packet::ethernet::{EtherType, EtherTypes, MutableEthernetPacket};
use pnet_packet::icmp::{self, IcmpCode, IcmpPacket, IcmpTypes};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, MutableNeighborSolicitPacket, MutableRouterAdvertPacket,
    NdpOption, NdpOptionTypes, NeighborAdvertFlags,
};
use pnet_packet::icmpv6::{self, Icmpv6Code, Icmpv6Packet, Icmpv6Type, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self, Ipv4Flags, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpOption, TcpPacket};
use pnet_packet::udp::{self, MutableUdpPacket, UdpPacket};
use pnet_packet::vlan::{ClassOfService, MutableVlanPacket};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::locality::Ips;

pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_ICMPV6: u8 = 58;

/// Real Ethernet frames are padded to 60 bytes (64 with the FCS, which captures do not show).
const MIN_FRAME: usize = 60;
/// The IP MTU of every household link; TCP segments carry at most MTU − headers.
pub(crate) const MTU: u32 = 1500;
/// NOP, NOP, timestamps: what Linux, macOS and Windows put on every established-flow segment.
const TCP_HEADER: usize = 32;

/// VLAN tagging of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tags {
    None,
    /// One 802.1Q tag with this VLAN id.
    Dot1q(u16),
    /// 802.1ad outer tag (0x88a8) then an 802.1Q inner tag: (outer id, inner id).
    QinQ(u16, u16),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct L2 {
    pub src: MacAddr,
    pub dst: MacAddr,
    pub tags: Tags,
}

/// How a template is adjusted to the wire length chosen for each emitted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Patch {
    /// The template is the whole frame; it is always emitted at its own length.
    Fixed,
    /// Headers only; lengths follow the chosen wire length, payload is never captured as such.
    Ip {
        l3: u16,
        v6: bool,
        udp_at: Option<u16>,
        tcp_at: Option<u16>,
    },
}

/// A built frame: its bytes (the whole frame, or its headers) and how to patch it.
#[derive(Clone, Debug)]
pub(crate) struct Built {
    pub bytes: Vec<u8>,
    pub patch: Patch,
}

impl Built {
    /// Largest transport payload one MTU-sized frame of this flow carries.
    pub(crate) fn mss(&self) -> u32 {
        match self.patch {
            Patch::Fixed => 0,
            Patch::Ip { l3, .. } => MTU.saturating_sub(self.bytes.len() as u32 - u32::from(l3)),
        }
    }
}

fn pad(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() < MIN_FRAME {
        b.resize(MIN_FRAME, 0);
    }
    b
}

/// Ethernet header (and tags) in front of `l3`. Returns the frame and where `l3` starts.
pub(crate) fn ethernet(l2: &L2, ethertype: u16, l3: &[u8]) -> (Vec<u8>, usize) {
    let l3_at = 14
        + match l2.tags {
            Tags::None => 0,
            Tags::Dot1q(_) => 4,
            Tags::QinQ(..) => 8,
        };
    let mut buf = vec![0u8; l3_at + l3.len()];
    let outer = match l2.tags {
        Tags::None => ethertype,
        Tags::Dot1q(_) => EtherTypes::Vlan.0,
        Tags::QinQ(..) => EtherTypes::PBridge.0,
    };
    {
        // The buffer is at least 14 bytes long, the Ethernet header size.
        let mut eth = MutableEthernetPacket::new(&mut buf).expect("buffer holds a header");
        eth.set_destination(l2.dst.0.into());
        eth.set_source(l2.src.0.into());
        eth.set_ethertype(EtherType(outer));
    }
    match l2.tags {
        Tags::None => {}
        Tags::Dot1q(vid) => vlan_tag(&mut buf[14..18], vid, ethertype),
        Tags::QinQ(outer_vid, inner_vid) => {
            vlan_tag(&mut buf[14..18], outer_vid, EtherTypes::Vlan.0);
            vlan_tag(&mut buf[18..22], inner_vid, ethertype);
        }
    }
    buf[l3_at..].copy_from_slice(l3);
    (buf, l3_at)
}

fn vlan_tag(b: &mut [u8], vid: u16, inner: u16) {
    // Callers pass exactly the 4 bytes of a tag, the packet's minimum size.
    let mut tag = MutableVlanPacket::new(b).expect("four bytes hold a tag");
    // PCP 4 ("video"): what ISPs put on IPTV VLANs.
    tag.set_priority_code_point(ClassOfService(4));
    tag.set_drop_eligible_indicator(0);
    tag.set_vlan_identifier(vid & 0x0fff);
    tag.set_ethertype(EtherType(inner));
}

fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, l4: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 20 + l4.len()];
    {
        // 20 bytes or more: an option-less IPv4 header fits.
        let mut p = MutableIpv4Packet::new(&mut buf).expect("buffer holds an IPv4 header");
        p.set_version(4);
        p.set_header_length(5);
        p.set_total_length((20 + l4.len()) as u16);
        p.set_identification(0x1c46);
        p.set_flags(Ipv4Flags::DontFragment);
        p.set_ttl(ttl);
        p.set_next_level_protocol(IpNextHeaderProtocol(proto));
        p.set_source(src);
        p.set_destination(dst);
        p.set_payload(l4);
        let c = ipv4::checksum(&p.to_immutable());
        p.set_checksum(c);
    }
    buf
}

fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop: u8, l4: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 40 + l4.len()];
    {
        // 40 bytes or more: the fixed IPv6 header fits.
        let mut p = MutableIpv6Packet::new(&mut buf).expect("buffer holds an IPv6 header");
        p.set_version(6);
        p.set_payload_length(l4.len() as u16);
        p.set_next_header(IpNextHeaderProtocol(next));
        p.set_hop_limit(hop);
        p.set_source(src);
        p.set_destination(dst);
        p.set_payload(l4);
    }
    buf
}

/// Wraps a transport segment in IP and Ethernet; `fixed` templates are padded whole frames.
fn ip_frame(l2: &L2, ips: Ips, proto: u8, l4: &[u8], fixed: bool) -> Built {
    let (ethertype, l3, ip_len, v6) = match ips {
        Ips::V4(s, d) => (
            EtherTypes::Ipv4.0,
            ipv4_packet(s, d, proto, 64, l4),
            20,
            false,
        ),
        Ips::V6(s, d) => (
            EtherTypes::Ipv6.0,
            ipv6_packet(s, d, proto, 64, l4),
            40,
            true,
        ),
    };
    let (bytes, l3_at) = ethernet(l2, ethertype, &l3);
    if fixed {
        return Built {
            bytes: pad(bytes),
            patch: Patch::Fixed,
        };
    }
    let l4_at = (l3_at + ip_len) as u16;
    Built {
        bytes,
        patch: Patch::Ip {
            l3: l3_at as u16,
            v6,
            udp_at: (proto == PROTO_UDP).then_some(l4_at),
            tcp_at: (proto == PROTO_TCP).then_some(l4_at),
        },
    }
}

/// Headers of one direction of an established TCP flow (ACK|PSH), patched per segment.
pub(crate) fn tcp(l2: &L2, ips: Ips, sport: u16, dport: u16, seq: u32, ack: u32) -> Built {
    let mut seg = vec![0u8; TCP_HEADER];
    {
        // TCP_HEADER (32) bytes: the 20-byte header plus 12 bytes of options.
        let mut t = MutableTcpPacket::new(&mut seg).expect("buffer holds a TCP header");
        t.set_source(sport);
        t.set_destination(dport);
        t.set_sequence(seq);
        t.set_acknowledgement(ack);
        t.set_data_offset((TCP_HEADER / 4) as u8);
        t.set_flags(0x18);
        t.set_window(501);
        t.set_options(&[
            TcpOption::nop(),
            TcpOption::nop(),
            TcpOption::timestamp(seq ^ 0x5a5a_5a5a, ack ^ 0x3c3c_3c3c),
        ]);
    }
    set_l4_checksum(&mut seg, ips, PROTO_TCP);
    ip_frame(l2, ips, PROTO_TCP, &seg, false)
}

/// A UDP datagram. `fixed` builds the whole frame around `payload`; otherwise the template is
/// the headers of a flow whose datagram sizes vary per emitted frame.
pub(crate) fn udp(l2: &L2, ips: Ips, sport: u16, dport: u16, payload: &[u8], fixed: bool) -> Built {
    let mut dgram = vec![0u8; 8 + payload.len()];
    {
        // Sized for the 8-byte UDP header plus the payload.
        let mut u = MutableUdpPacket::new(&mut dgram).expect("buffer holds a UDP header");
        u.set_source(sport);
        u.set_destination(dport);
        u.set_length((8 + payload.len()) as u16);
        u.set_payload(payload);
    }
    set_l4_checksum(&mut dgram, ips, PROTO_UDP);
    ip_frame(l2, ips, PROTO_UDP, &dgram, fixed)
}

fn set_l4_checksum(seg: &mut [u8], ips: Ips, proto: u8) {
    let sum = match (proto, ips) {
        (PROTO_TCP, Ips::V4(s, d)) => TcpPacket::new(seg).map(|p| tcp::ipv4_checksum(&p, &s, &d)),
        (PROTO_TCP, Ips::V6(s, d)) => TcpPacket::new(seg).map(|p| tcp::ipv6_checksum(&p, &s, &d)),
        (PROTO_UDP, Ips::V4(s, d)) => UdpPacket::new(seg).map(|p| udp::ipv4_checksum(&p, &s, &d)),
        (PROTO_UDP, Ips::V6(s, d)) => UdpPacket::new(seg).map(|p| udp::ipv6_checksum(&p, &s, &d)),
        _ => None,
    };
    let at = if proto == PROTO_TCP { 16 } else { 6 };
    if let (Some(sum), Some(slot)) = (sum, seg.get_mut(at..at + 2)) {
        slot.copy_from_slice(&sum.to_be_bytes());
    }
}

/// ICMP (v4) or ICMPv6 echo request/reply with `data_len` bytes of ping pattern.
pub(crate) fn echo(l2: &L2, ips: Ips, reply: bool, id: u16, seq: u16, data_len: usize) -> Built {
    let mut msg = vec![0u8; 8 + data_len];
    for (i, b) in msg[8..].iter_mut().enumerate() {
        *b = 0x10 + (i % 0x30) as u8;
    }
    msg[4..6].copy_from_slice(&id.to_be_bytes());
    msg[6..8].copy_from_slice(&seq.to_be_bytes());
    match ips {
        Ips::V4(..) => {
            msg[0] = if reply {
                IcmpTypes::EchoReply.0
            } else {
                IcmpTypes::EchoRequest.0
            };
            msg[1] = IcmpCode(0).0;
            if let Some(p) = IcmpPacket::new(&msg) {
                let c = icmp::checksum(&p);
                msg[2..4].copy_from_slice(&c.to_be_bytes());
            }
            ip_frame(l2, ips, PROTO_ICMP, &msg, true)
        }
        Ips::V6(s, d) => {
            msg[0] = if reply {
                Icmpv6Types::EchoReply.0
            } else {
                Icmpv6Types::EchoRequest.0
            };
            icmpv6_checksum(&mut msg, s, d);
            ip_frame(l2, ips, PROTO_ICMPV6, &msg, true)
        }
    }
}

fn icmpv6_checksum(msg: &mut [u8], s: Ipv6Addr, d: Ipv6Addr) {
    msg[2] = 0;
    msg[3] = 0;
    if let Some(p) = Icmpv6Packet::new(msg) {
        let c = icmpv6::checksum(&p, &s, &d);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
    }
}

/// An Ethernet/IPv4 ARP request or reply.
pub(crate) fn arp(
    l2: &L2,
    reply: bool,
    sender: (MacAddr, Ipv4Addr),
    target: (MacAddr, Ipv4Addr),
) -> Built {
    let mut msg = vec![0u8; 28];
    {
        // 28 bytes: the Ethernet/IPv4 ARP message size.
        let mut a = MutableArpPacket::new(&mut msg).expect("buffer holds an ARP message");
        a.set_hardware_type(ArpHardwareTypes::Ethernet);
        a.set_protocol_type(EtherTypes::Ipv4);
        a.set_hw_addr_len(6);
        a.set_proto_addr_len(4);
        a.set_operation(ArpOperation(if reply { 2 } else { 1 }));
        a.set_sender_hw_addr(sender.0.0.into());
        a.set_sender_proto_addr(sender.1);
        a.set_target_hw_addr(target.0.0.into());
        a.set_target_proto_addr(target.1);
    }
    let (bytes, _) = ethernet(l2, EtherTypes::Arp.0, &msg);
    Built {
        bytes: pad(bytes),
        patch: Patch::Fixed,
    }
}

/// DHCP message types (option 53).
pub(crate) const DHCP_DISCOVER: u8 = 1;
pub(crate) const DHCP_OFFER: u8 = 2;
pub(crate) const DHCP_REQUEST: u8 = 3;
pub(crate) const DHCP_ACK: u8 = 5;

/// A DHCPv4 message over UDP 68→67 (client) or 67→68 (server), with the options a phone or a
/// home router really sends (message type, requested address, host name, server id, lease).
pub(crate) struct Dhcp<'a> {
    pub msg_type: u8,
    pub xid: u32,
    pub client: MacAddr,
    pub yiaddr: Ipv4Addr,
    pub server: Ipv4Addr,
    pub hostname: &'a str,
}

pub(crate) fn dhcp(l2: &L2, ips: Ips, m: &Dhcp<'_>) -> Built {
    let from_server = matches!(m.msg_type, DHCP_OFFER | DHCP_ACK);
    let mut opts: Vec<u8> = vec![0x63, 0x82, 0x53, 0x63, 53, 1, m.msg_type];
    if from_server {
        opts.extend_from_slice(&[54, 4]);
        opts.extend_from_slice(&m.server.octets());
        opts.extend_from_slice(&[51, 4, 0, 0, 0x0e, 0x10, 1, 4, 255, 255, 255, 0, 3, 4]);
        opts.extend_from_slice(&m.server.octets());
        opts.extend_from_slice(&[6, 4]);
        opts.extend_from_slice(&m.server.octets());
    } else {
        opts.extend_from_slice(&[61, 7, 1]);
        opts.extend_from_slice(&m.client.0);
        opts.extend_from_slice(&[50, 4]);
        opts.extend_from_slice(&m.yiaddr.octets());
        let name = &m.hostname.as_bytes()[..m.hostname.len().min(63)];
        opts.extend_from_slice(&[12, name.len() as u8]);
        opts.extend_from_slice(name);
        opts.extend_from_slice(&[55, 4, 1, 3, 6, 15]);
    }
    opts.push(255);
    // BOOTP messages are at least 300 bytes (RFC 1542); clients pad to that.
    let len = (236 + opts.len()).max(300);
    let mut msg = vec![0u8; len];
    {
        // At least 300 bytes: the 236-byte fixed part plus the options.
        let mut d = MutableDhcpPacket::new(&mut msg).expect("buffer holds a DHCP message");
        d.set_op(DhcpOperation(if from_server { 2 } else { 1 }));
        d.set_htype(DhcpHardwareTypes::Ethernet);
        d.set_hlen(6);
        d.set_xid(m.xid);
        d.set_flags(0);
        if from_server {
            d.set_yiaddr(m.yiaddr);
            d.set_siaddr(m.server);
        }
        d.set_chaddr(m.client.0.into());
    }
    msg[236..236 + opts.len()].copy_from_slice(&opts);
    let (sport, dport) = if from_server { (67, 68) } else { (68, 67) };
    udp(l2, ips, sport, dport, &msg, true)
}

/// A DNS message with one question (and, for a response, one answer) for `name`.
pub(crate) fn dns_message(id: u16, name: &str, aaaa: bool, response: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(if response {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    m.extend_from_slice(&[0, 1, 0, u8::from(response), 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        m.push(l.len() as u8);
        m.extend_from_slice(l);
    }
    m.push(0);
    let qtype: u16 = if aaaa { 28 } else { 1 };
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if response {
        m.extend_from_slice(&[0xc0, 0x0c]);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0x01, 0x2c]);
        if aaaa {
            m.extend_from_slice(&[0, 16, 0x2a, 0x00, 0x14, 0x50, 0x40, 0x01, 0x08, 0x2a]);
            m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x20, 0x0e]);
        } else {
            m.extend_from_slice(&[0, 4, 142, 250, 185, 78]);
        }
    }
    m
}

/// An mDNS query (PTR, QU bit clear) as multicast DNS responders and browsers send it.
pub(crate) fn mdns_message(service: &str) -> Vec<u8> {
    let mut m = dns_message(0, service, false, false);
    // dns_message asked for an A record; mDNS browsing asks for PTR (12).
    let at = m.len() - 4;
    m[at..at + 2].copy_from_slice(&12u16.to_be_bytes());
    m[2] = 0;
    m
}

/// An ICMPv6 Router Advertisement from the router's link-local address to all-nodes, carrying a
/// Prefix Information option (on-link, autonomous) first, then source link-layer and MTU options.
/// The PIO comes first so that it is complete within any snaplen of 102 bytes or more.
pub(crate) fn router_advert(l2: &L2, src: Ipv6Addr, prefix: Ipv6Addr, prefix_len: u8) -> Built {
    let dst: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut pio = vec![prefix_len, 0xc0];
    pio.extend_from_slice(&7200u32.to_be_bytes());
    pio.extend_from_slice(&3600u32.to_be_bytes());
    pio.extend_from_slice(&[0, 0, 0, 0]);
    pio.extend_from_slice(&prefix.octets());
    let mut mtu = vec![0, 0];
    mtu.extend_from_slice(&MTU.to_be_bytes());
    let options = [
        NdpOption {
            option_type: NdpOptionTypes::PrefixInformation,
            length: 4,
            data: pio,
        },
        NdpOption {
            option_type: NdpOptionTypes::SourceLLAddr,
            length: 1,
            data: l2.src.0.to_vec(),
        },
        NdpOption {
            option_type: NdpOptionTypes::MTU,
            length: 1,
            data: mtu,
        },
    ];
    let mut msg = vec![0u8; 16 + 32 + 8 + 8];
    {
        // 16-byte RA header plus the three options sized just above.
        let mut ra = MutableRouterAdvertPacket::new(&mut msg).expect("buffer holds the RA");
        ra.set_icmpv6_type(Icmpv6Types::RouterAdvert);
        ra.set_icmpv6_code(Icmpv6Code(0));
        ra.set_hop_limit(64);
        ra.set_flags(0);
        ra.set_lifetime(1800);
        ra.set_reachable_time(0);
        ra.set_retrans_time(0);
        ra.set_options(&options);
    }
    icmpv6_checksum(&mut msg, src, dst);
    let l3 = ipv6_packet(src, dst, PROTO_ICMPV6, 255, &msg);
    let (bytes, _) = ethernet(l2, EtherTypes::Ipv6.0, &l3);
    Built {
        bytes: pad(bytes),
        patch: Patch::Fixed,
    }
}

/// Neighbor Solicitation for `target` (to its solicited-node group) or the unicast Neighbor
/// Advertisement answering it.
pub(crate) fn neighbor(l2: &L2, ips: Ips, target: Ipv6Addr, advert: bool) -> Built {
    let Ips::V6(s, d) = ips else {
        return Built {
            bytes: Vec::new(),
            patch: Patch::Fixed,
        };
    };
    let opt = NdpOption {
        option_type: if advert {
            NdpOptionTypes::TargetLLAddr
        } else {
            NdpOptionTypes::SourceLLAddr
        },
        length: 1,
        data: l2.src.0.to_vec(),
    };
    let mut msg = vec![0u8; 24 + 8];
    if advert {
        // 24-byte NA header plus one 8-byte option.
        let mut na = MutableNeighborAdvertPacket::new(&mut msg).expect("buffer holds the NA");
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(Icmpv6Code(0));
        na.set_flags(NeighborAdvertFlags::Router | NeighborAdvertFlags::Solicited);
        na.set_target_addr(target);
        na.set_options(&[opt]);
    } else {
        // 24-byte NS header plus one 8-byte option.
        let mut ns = MutableNeighborSolicitPacket::new(&mut msg).expect("buffer holds the NS");
        ns.set_icmpv6_type(Icmpv6Type(135));
        ns.set_icmpv6_code(Icmpv6Code(0));
        ns.set_target_addr(target);
        ns.set_options(&[opt]);
    }
    icmpv6_checksum(&mut msg, s, d);
    let l3 = ipv6_packet(s, d, PROTO_ICMPV6, 255, &msg);
    let (bytes, _) = ethernet(l2, EtherTypes::Ipv6.0, &l3);
    Built {
        bytes: pad(bytes),
        patch: Patch::Fixed,
    }
}

/// An IEEE 802.1D configuration BPDU: an 802.3 length-framed frame with an LLC header.
pub(crate) fn stp_bpdu(l2: &L2, bridge: MacAddr) -> Built {
    // LLC (DSAP/SSAP 0x42, UI), protocol 0, version 0, type 0 (configuration), flags 0.
    let mut llc = vec![0x42, 0x42, 0x03, 0, 0, 0, 0, 0];
    // Root id = bridge id (priority 32768 + MAC): this bridge is the root, path cost 0.
    llc.extend_from_slice(&[0x80, 0x00]);
    llc.extend_from_slice(&bridge.0);
    llc.extend_from_slice(&[0, 0, 0, 0]);
    llc.extend_from_slice(&[0x80, 0x00]);
    llc.extend_from_slice(&bridge.0);
    // Port id, message age 0, max age 20 s, hello 2 s, forward delay 15 s (units of 1/256 s).
    llc.extend_from_slice(&[0x80, 0x01, 0, 0, 0x14, 0, 0x02, 0, 0x0f, 0]);
    let (bytes, _) = ethernet(l2, llc.len() as u16, &llc);
    Built {
        bytes: pad(bytes),
        patch: Patch::Fixed,
    }
}

/// A frame carried verbatim: used for the deliberately malformed ones. `wire_len` may be shorter
/// than the minimum frame: truncated frames are exactly what it is for.
pub(crate) fn raw(l2: &L2, ethertype: u16, l3: &[u8]) -> Built {
    let (bytes, _) = ethernet(l2, ethertype, l3);
    Built {
        bytes,
        patch: Patch::Fixed,
    }
}

/// A well-formed IPv4 header (TCP SYN to port 443 behind it), for the malformed frames to damage.
pub(crate) fn ipv4_syn(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut seg = vec![0u8; 20];
    {
        // 20 bytes: a TCP header without options.
        let mut t = MutableTcpPacket::new(&mut seg).expect("buffer holds a TCP header");
        t.set_source(51514);
        t.set_destination(443);
        t.set_sequence(0x1234_5678);
        t.set_data_offset(5);
        t.set_flags(0x02);
        t.set_window(64240);
    }
    ipv4_packet(src, dst, PROTO_TCP, 64, &seg)
}

/// The sequence number the next segment of a TCP template will carry: what its peer acknowledges.
#[inline]
pub(crate) fn next_seq(bytes: &[u8], patch: Patch, last_payload: u32) -> Option<u32> {
    match patch {
        Patch::Ip {
            tcp_at: Some(t), ..
        } => Some(get32(bytes, t as usize + 4).wrapping_add(last_payload)),
        _ => None,
    }
}

/// Per-frame patching of an `Ip` template to `wire_len`. `last_payload` is the previous segment's
/// payload, by which the TCP sequence number advances; `ack`, when known, is the peer direction's
/// next sequence number. Returns this segment's payload length.
#[inline]
pub(crate) fn patch(
    bytes: &mut [u8],
    patch: Patch,
    wire_len: u32,
    last_payload: u32,
    ack: Option<u32>,
) -> u32 {
    let Patch::Ip {
        l3,
        v6,
        udp_at,
        tcp_at,
    } = patch
    else {
        return 0;
    };
    let l3 = l3 as usize;
    let ip_len = wire_len as usize - l3;
    if v6 {
        put16(bytes, l3 + 4, (ip_len - 40) as u16);
    } else {
        put16(bytes, l3 + 2, ip_len as u16);
        let id = get16(bytes, l3 + 4).wrapping_add(1);
        put16(bytes, l3 + 4, id);
        put16(bytes, l3 + 10, 0);
        let c = ipv4_header_checksum(&bytes[l3..l3 + 20]);
        put16(bytes, l3 + 10, c);
    }
    if let Some(u) = udp_at {
        let u = u as usize;
        put16(bytes, u + 4, (wire_len as usize - u) as u16);
        return wire_len - (u as u32 + 8);
    }
    if let Some(t) = tcp_at {
        let t = t as usize;
        let seq = get32(bytes, t + 4).wrapping_add(last_payload);
        put32(bytes, t + 4, seq);
        if let Some(ack) = ack {
            put32(bytes, t + 8, ack);
        }
        return wire_len - (t + TCP_HEADER) as u32;
    }
    0
}

#[inline]
fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in h.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[inline]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
#[inline]
fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::ipv4::Ipv4Packet;

    fn l2() -> L2 {
        L2 {
            src: MacAddr([0x02, 0, 0, 0, 0, 1]),
            dst: MacAddr([0x3c, 0xa6, 0x2f, 0, 0, 2]),
            tags: Tags::None,
        }
    }

    #[test]
    fn patched_ipv4_header_has_valid_checksum_and_lengths() {
        let ips = Ips::V4(Ipv4Addr::new(192, 168, 178, 20), Ipv4Addr::new(8, 8, 8, 8));
        let mut b = tcp(&l2(), ips, 50000, 443, 1000, 2000);
        assert_eq!(b.bytes.len(), 14 + 20 + 32);
        assert_eq!(b.mss(), 1448);
        let paid = patch(&mut b.bytes, b.patch, 1514, 0, Some(7));
        assert_eq!(paid, 1448);
        let ip = Ipv4Packet::new(&b.bytes[14..]).unwrap();
        assert_eq!(ip.get_total_length(), 1500);
        assert_eq!(ipv4::checksum(&ip), ip.get_checksum());
        assert_eq!(next_seq(&b.bytes, b.patch, paid), Some(1000 + 1448));
        patch(&mut b.bytes, b.patch, 66, paid, Some(9));
        let t = TcpPacket::new(&b.bytes[34..]).unwrap();
        assert_eq!(t.get_sequence(), 1000 + 1448);
        assert_eq!(t.get_acknowledgement(), 9);
    }

    #[test]
    fn qinq_tags_in_order() {
        let mut l = l2();
        l.tags = Tags::QinQ(100, 8);
        let (f, at) = ethernet(&l, 0x0800, &[0x45]);
        assert_eq!(at, 22);
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(&f[16..18], &[0x81, 0x00]);
        assert_eq!(&f[20..22], &[0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([f[14], f[15]]) & 0x0fff, 100);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]) & 0x0fff, 8);
    }

    #[test]
    fn router_advert_pio_within_first_102_bytes() {
        let mut l = l2();
        l.dst = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
        let prefix: Ipv6Addr = "2001:db8:4b40:1e00::".parse().unwrap();
        let b = router_advert(&l, "fe80::1".parse().unwrap(), prefix, 64);
        assert_eq!(b.bytes[14 + 6], PROTO_ICMPV6);
        assert_eq!(b.bytes[54], 134);
        assert_eq!(&b.bytes[70..72], &[3, 4]);
        assert_eq!(b.bytes[72], 64);
        assert_eq!(&b.bytes[86..102], &prefix.octets());
    }
}
