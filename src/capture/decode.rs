//! The pure frame decoder: link-layer bytes in, a small fixed-size [`Frame`] summary out.
//!
//! It owns the knowledge of header layouts (Ethernet, 802.1Q/802.1ad, Linux cooked SLL and SLL2,
//! IPv4, IPv6, ARP, ICMPv6 router advertisements). It must never allocate, panic, log or look at
//! anything past the headers: accounting (the meter) never sees raw bytes, only the summary.

use crate::model::{MacAddr, TimestampNs};

/// The link types accounting understands. Anything else is refused when a source is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_EN10MB (1).
    Ethernet,
    /// DLT_LINUX_SLL (113): what capturing on `any` produced before libpcap 1.10.
    LinuxSll,
    /// DLT_LINUX_SLL2 (276): what capturing on `any` produces now.
    LinuxSll2,
}

impl LinkType {
    /// Maps a libpcap DLT number; `None` for link types accounting cannot use.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            _ => None,
        }
    }
}

/// Where a frame was going at layer 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// A unicast MAC: it is counted as received by that MAC.
    Unicast(MacAddr),
    /// Broadcast or multicast: counted as sent only.
    Group,
    /// Linux cooked capture of a frame addressed to the capturing host ("HOST" packet type).
    /// SLL keeps no destination MAC, so the meter resolves it from the host's own outgoing frames
    /// on the same interface (`ifindex` is 0 for SLL v1, which has none).
    CaptureHost { ifindex: u32 },
    /// Linux cooked capture of a frame the capturing host sent ("OUTGOING"): its source is the
    /// host's own MAC on `ifindex`, which the meter learns to resolve [`Dest::CaptureHost`].
    FromCaptureHost { ifindex: u32 },
    /// Linux cooked capture of a frame whose destination is not recorded.
    Unknown,
}

/// The IP endpoints of a frame, when its IP header was complete and well-formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpPair {
    None,
    V4 { src: u32, dst: u32 },
    V6 { src: u128, dst: u128 },
}

/// The TCP header fields passive latency needs (issue 27): ports, sequence numbers and flags.
/// Present only for a SYN or SYN-ACK whose fixed TCP header (unfragmented) was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The flag byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...).
    pub flags: u8,
}

impl Tcp {
    pub const SYN: u8 = 0x02;
    pub const ACK: u8 = 0x10;
    pub const RST: u8 = 0x04;
}

/// An IPv6 prefix a router announced in a Router Advertisement's Prefix Information option.
pub const MAX_RA_PREFIXES: usize = 2;

/// What an ARP packet says: who has which IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: u32,
    pub target_mac: MacAddr,
    pub target_ip: u32,
}

/// The summary of one frame: everything accounting needs, nothing more. `Copy`, no borrows, so a
/// capture loop can fill a reusable batch of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub ts: TimestampNs,
    /// Size on the wire (the pcap record's original length), never the captured length.
    pub wire_len: u32,
    pub src: MacAddr,
    pub dst: Dest,
    /// The innermost EtherType after VLAN tags (0 for 802.3 length-framed frames).
    pub ethertype: u16,
    pub ip: IpPair,
    pub arp: Option<Arp>,
    pub tcp: Option<Tcp>,
    /// Prefixes from an ICMPv6 Router Advertisement carried by this frame (length 0 = empty slot).
    pub ra_prefixes: [(u128, u8); MAX_RA_PREFIXES],
}

impl Frame {
    /// A placeholder for preallocated batch buffers; never counted.
    pub const EMPTY: Frame = Frame {
        ts: 0,
        wire_len: 0,
        src: MacAddr([0; 6]),
        dst: Dest::Unknown,
        ethertype: 0,
        ip: IpPair::None,
        arp: None,
        tcp: None,
        ra_prefixes: [(0, 0); MAX_RA_PREFIXES],
    };
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still emitted by some switches.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// More tags than this is not a real network; stop peeling rather than loop on crafted input.
const MAX_VLAN_TAGS: usize = 8;

/// ARPHRD_ETHER: the only SLL hardware type whose address is an Ethernet MAC.
const ARPHRD_ETHER: u16 = 1;

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline]
fn be128(b: &[u8], at: usize) -> Option<u128> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(u128::from_be_bytes(s))
}

#[inline]
fn mac(b: &[u8], at: usize) -> Option<MacAddr> {
    let s: [u8; 6] = b.get(at..at + 6)?.try_into().ok()?;
    Some(MacAddr(s))
}

#[inline]
fn dest_of(m: MacAddr) -> Dest {
    if m.is_group() {
        Dest::Group
    } else {
        Dest::Unicast(m)
    }
}

/// Decodes one captured frame. Returns `None` when not even a link-layer source address is
/// readable: such a frame cannot be attributed to anyone and is not counted.
///
/// `data` is what was captured (possibly cut at the snaplen); `wire_len` is the original length.
pub fn decode(link: LinkType, ts: TimestampNs, data: &[u8], wire_len: u32) -> Option<Frame> {
    let mut f = Frame::EMPTY;
    decode_into(link, ts, data, wire_len, &mut f).then_some(f)
}

/// [`decode`] writing into a caller's slot (a capture loop's batch buffer), so the summary is
/// built in place instead of being copied. Returns false, leaving `out` unspecified, when the
/// frame has no readable link-layer source.
#[inline]
pub fn decode_into(
    link: LinkType,
    ts: TimestampNs,
    data: &[u8],
    wire_len: u32,
    out: &mut Frame,
) -> bool {
    let (src, dst, ethertype, l3_at) = match link {
        LinkType::Ethernet => {
            let (Some(dst), Some(src), Some(et)) = (mac(data, 0), mac(data, 6), be16(data, 12))
            else {
                return false;
            };
            (src, dest_of(dst), et, 14)
        }
        LinkType::LinuxSll => {
            // pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
            let (Some(pkttype), Some(ARPHRD_ETHER), Some(6), Some(src), Some(et)) = (
                be16(data, 0),
                be16(data, 2),
                be16(data, 4),
                mac(data, 6),
                be16(data, 14),
            ) else {
                return false;
            };
            (src, sll_dest(pkttype, 0), et, 16)
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
            let (Some(et), Some(ifindex), Some(ARPHRD_ETHER), Some(&pkttype), Some(6), Some(src)) = (
                be16(data, 0),
                be32(data, 4),
                be16(data, 8),
                data.get(10),
                data.get(11),
                mac(data, 12),
            ) else {
                return false;
            };
            (src, sll_dest(pkttype as u16, ifindex), et, 20)
        }
    };
    out.ts = ts;
    out.wire_len = wire_len;
    out.src = src;
    out.dst = dst;
    out.ethertype = 0;
    out.ip = IpPair::None;
    out.arp = None;
    out.tcp = None;
    out.ra_prefixes = [(0, 0); MAX_RA_PREFIXES];
    let frame = out;
    let (ethertype, l3_at) = peel_vlans(data, ethertype, l3_at);
    // EtherType values below 0x0600 are 802.3 lengths: LLC follows, not a protocol we read.
    if ethertype < 0x0600 {
        return true;
    }
    frame.ethertype = ethertype;
    let l3 = data.get(l3_at..).unwrap_or(&[]);
    match ethertype {
        ETHERTYPE_IPV4 => {
            frame.ip = ipv4(l3);
            if frame.ip != IpPair::None {
                frame.tcp = tcp_in_ipv4(l3);
            }
        }
        ETHERTYPE_IPV6 => {
            frame.ip = ipv6(l3);
            if frame.ip != IpPair::None {
                router_advertisement(l3, &mut frame.ra_prefixes);
                frame.tcp = tcp_in_ipv6(l3);
            }
        }
        ETHERTYPE_ARP => frame.arp = arp(l3),
        _ => {}
    }
    true
}

#[inline]
fn sll_dest(pkttype: u16, ifindex: u32) -> Dest {
    match pkttype {
        0 => Dest::CaptureHost { ifindex },
        // Broadcast and multicast: counted as sent only, as for Ethernet.
        1 | 2 => Dest::Group,
        4 => Dest::FromCaptureHost { ifindex },
        _ => Dest::Unknown,
    }
}

#[inline]
fn peel_vlans(data: &[u8], mut ethertype: u16, mut at: usize) -> (u16, usize) {
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            break;
        }
        // A tag is TCI(2) + inner EtherType(2); a cut-off tag leaves nothing readable beyond L2.
        match be16(data, at + 2) {
            Some(inner) => {
                ethertype = inner;
                at += 4;
            }
            None => return (0, at),
        }
    }
    (ethertype, at)
}

#[inline]
fn ipv4(l3: &[u8]) -> IpPair {
    let Some(&vihl) = l3.first() else {
        return IpPair::None;
    };
    let ihl = (vihl & 0x0f) as usize * 4;
    // The whole header, options included, must have been captured; otherwise the IP part is
    // treated as unreadable (the frame is still counted at layer 2, as local traffic).
    if vihl >> 4 != 4 || ihl < 20 || l3.len() < ihl {
        return IpPair::None;
    }
    match (be32(l3, 12), be32(l3, 16)) {
        (Some(src), Some(dst)) => IpPair::V4 { src, dst },
        _ => IpPair::None,
    }
}

#[inline]
fn ipv6(l3: &[u8]) -> IpPair {
    if l3.len() < 40 || l3[0] >> 4 != 6 {
        return IpPair::None;
    }
    match (be128(l3, 8), be128(l3, 24)) {
        (Some(src), Some(dst)) => IpPair::V6 { src, dst },
        _ => IpPair::None,
    }
}

const IPPROTO_TCP: u8 = 6;

/// The TCP header of an IPv4 packet whose header [`ipv4`] accepted; only a first (or only)
/// fragment carries one, so later fragments give `None`.
#[inline]
fn tcp_in_ipv4(l3: &[u8]) -> Option<Tcp> {
    let ihl = (l3[0] & 0x0f) as usize * 4;
    let frag_offset = be16(l3, 6)? & 0x1fff;
    if l3.get(9) != Some(&IPPROTO_TCP) || frag_offset != 0 {
        return None;
    }
    tcp(l3, ihl)
}

/// The TCP header of an IPv6 packet with no extension headers (a handshake carries none).
#[inline]
fn tcp_in_ipv6(l3: &[u8]) -> Option<Tcp> {
    if l3.get(6) != Some(&IPPROTO_TCP) {
        return None;
    }
    tcp(l3, 40)
}

/// Only segments with SYN set are decoded: passive latency times SYN to SYN-ACK and nothing
/// else, and stopping at the flag byte keeps the other 99 % of TCP frames at one load and one
/// branch beyond what accounting already reads.
#[inline]
fn tcp(l3: &[u8], at: usize) -> Option<Tcp> {
    if l3.get(at + 13)? & Tcp::SYN == 0 {
        return None;
    }
    Some(Tcp {
        src_port: be16(l3, at)?,
        dst_port: be16(l3, at + 2)?,
        seq: be32(l3, at + 4)?,
        ack: be32(l3, at + 8)?,
        flags: *l3.get(at + 13)?,
    })
}

#[inline]
fn arp(l3: &[u8]) -> Option<Arp> {
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if be16(l3, 0)? != 1 || be16(l3, 2)? != ETHERTYPE_IPV4 || l3.get(4..6)? != [6, 4] {
        return None;
    }
    Some(Arp {
        op: be16(l3, 6)?,
        sender_mac: mac(l3, 8)?,
        sender_ip: be32(l3, 14)?,
        target_mac: mac(l3, 18)?,
        target_ip: be32(l3, 24)?,
    })
}

/// Collects Prefix Information options from an ICMPv6 Router Advertisement sent directly over
/// IPv6 (RAs carry no extension headers in practice). Options cut off by the snaplen are skipped.
fn router_advertisement(l3: &[u8], out: &mut [(u128, u8); MAX_RA_PREFIXES]) {
    const ICMPV6: u8 = 58;
    const RA: u8 = 134;
    const RA_HEADER: usize = 16;
    const PREFIX_INFO: u8 = 3;
    if l3.get(6) != Some(&ICMPV6) || l3.get(40) != Some(&RA) {
        return;
    }
    let mut at = 40 + RA_HEADER;
    let mut found = 0;
    // Each option is at least 8 bytes, so this loop ends within len/8 steps on any input.
    while found < MAX_RA_PREFIXES {
        let (Some(&kind), Some(&units)) = (l3.get(at), l3.get(at + 1)) else {
            return;
        };
        if units == 0 {
            return; // RFC 4861: a zero-length option is invalid, stop reading.
        }
        if kind == PREFIX_INFO && units == 4 {
            if let (Some(&len), Some(prefix)) = (l3.get(at + 2), be128(l3, at + 16)) {
                if (1..=128).contains(&len) {
                    let mask = u128::MAX << (128 - len as u32);
                    out[found] = (prefix & mask, len);
                    found += 1;
                }
            }
        }
        at += units as usize * 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const B: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4_header(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    #[test]
    fn ethernet_ipv4_unicast() {
        let f = eth(B, A, 0x0800, &ipv4_header([192, 168, 1, 2], [8, 8, 8, 8]));
        let d = decode(LinkType::Ethernet, 5, &f, 1514).unwrap();
        assert_eq!(d.src, MacAddr(A));
        assert_eq!(d.dst, Dest::Unicast(MacAddr(B)));
        assert_eq!(d.wire_len, 1514);
        assert_eq!(d.ts, 5);
        assert_eq!(
            d.ip,
            IpPair::V4 {
                src: 0xc0a8_0102,
                dst: 0x0808_0808
            }
        );
    }

    #[test]
    fn only_syn_segments_carry_tcp_fields() {
        let segment = |flags: u8, frag: u16| {
            let mut ip = ipv4_header([192, 168, 1, 2], [8, 8, 8, 8]);
            ip[6..8].copy_from_slice(&frag.to_be_bytes());
            let mut tcp = [0u8; 20];
            tcp[0..2].copy_from_slice(&50000u16.to_be_bytes());
            tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
            tcp[4..8].copy_from_slice(&7u32.to_be_bytes());
            tcp[8..12].copy_from_slice(&9u32.to_be_bytes());
            tcp[13] = flags;
            ip.extend_from_slice(&tcp);
            decode(LinkType::Ethernet, 0, &eth(B, A, 0x0800, &ip), 74).unwrap()
        };
        let syn = segment(Tcp::SYN, 0).tcp.expect("a SYN is decoded");
        assert_eq!(
            (syn.src_port, syn.dst_port, syn.seq, syn.ack),
            (50000, 443, 7, 9)
        );
        assert!(segment(Tcp::SYN | Tcp::ACK, 0).tcp.is_some());
        // An established segment (ACK|PSH) and a later fragment carry none.
        assert_eq!(segment(0x18, 0).tcp, None);
        assert_eq!(segment(Tcp::SYN, 0x0010).tcp, None);
    }

    #[test]
    fn vlan_and_qinq_are_peeled() {
        let ip = ipv4_header([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut one = vec![0x00, 0x05, 0x08, 0x00];
        one.extend_from_slice(&ip);
        let f = eth(B, A, 0x8100, &one);
        assert!(matches!(
            decode(LinkType::Ethernet, 0, &f, 100).unwrap().ip,
            IpPair::V4 { .. }
        ));
        let mut two = vec![0x00, 0x07, 0x81, 0x00, 0x00, 0x05, 0x08, 0x00];
        two.extend_from_slice(&ip);
        let f = eth(B, A, 0x88a8, &two);
        let d = decode(LinkType::Ethernet, 0, &f, 100).unwrap();
        assert_eq!(d.ethertype, 0x0800);
        assert_eq!(
            d.ip,
            IpPair::V4 {
                src: 0x0a00_0001,
                dst: 0x0a00_0002
            }
        );
        // A tag cut off by the snaplen: layer 2 still readable, nothing else.
        let f = eth(B, A, 0x8100, &[0x00]);
        let d = decode(LinkType::Ethernet, 0, &f, 100).unwrap();
        assert_eq!(d.src, MacAddr(A));
        assert_eq!(d.ip, IpPair::None);
    }

    #[test]
    fn endless_vlan_tags_stop() {
        let mut payload = Vec::new();
        for _ in 0..100 {
            payload.extend_from_slice(&[0, 1, 0x81, 0x00]);
        }
        let f = eth(B, A, 0x8100, &payload);
        let d = decode(LinkType::Ethernet, 0, &f, 500).unwrap();
        assert_eq!(d.ip, IpPair::None);
    }

    #[test]
    fn group_destinations() {
        let f = eth([0xff; 6], A, 0x0806, &[]);
        assert_eq!(
            decode(LinkType::Ethernet, 0, &f, 60).unwrap().dst,
            Dest::Group
        );
        let f = eth([0x01, 0x00, 0x5e, 0, 0, 0xfb], A, 0x0800, &[]);
        assert_eq!(
            decode(LinkType::Ethernet, 0, &f, 60).unwrap().dst,
            Dest::Group
        );
        let f = eth([0x33, 0x33, 0, 0, 0, 1], A, 0x86dd, &[]);
        assert_eq!(
            decode(LinkType::Ethernet, 0, &f, 60).unwrap().dst,
            Dest::Group
        );
    }

    #[test]
    fn truncated_ip_is_ignored_but_frame_counts() {
        let ip = ipv4_header([192, 168, 1, 2], [8, 8, 8, 8]);
        let f = eth(B, A, 0x0800, &ip[..19]);
        let d = decode(LinkType::Ethernet, 0, &f, 1000).unwrap();
        assert_eq!(d.ip, IpPair::None);
        assert_eq!(d.wire_len, 1000);
        // IHL claims options that were not captured.
        let mut ip = ip.clone();
        ip[0] = 0x4f;
        let f = eth(B, A, 0x0800, &ip);
        assert_eq!(
            decode(LinkType::Ethernet, 0, &f, 1000).unwrap().ip,
            IpPair::None
        );
        // Wrong version nibble.
        let mut ip6 = vec![0x45; 40];
        ip6[0] = 0x45;
        let f = eth(B, A, 0x86dd, &ip6);
        assert_eq!(
            decode(LinkType::Ethernet, 0, &f, 1000).unwrap().ip,
            IpPair::None
        );
    }

    #[test]
    fn short_frames_have_no_owner() {
        for n in 0..14 {
            let f = eth(B, A, 0x0800, &[]);
            assert!(decode(LinkType::Ethernet, 0, &f[..n], 60).is_none(), "{n}");
        }
    }

    #[test]
    fn ipv6_and_router_advertisement_prefixes() {
        let mut ip6 = vec![0u8; 40];
        ip6[0] = 0x60;
        ip6[6] = 58;
        ip6[8] = 0xfe;
        ip6[9] = 0x80;
        ip6[24] = 0xff;
        ip6[25] = 0x02;
        ip6[39] = 1;
        // RA header (16 bytes), a source link-layer option (8 bytes), a prefix option (32 bytes).
        let mut icmp = vec![134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&[1, 1, 0, 1, 2, 3, 4, 5]);
        let mut pio = vec![3, 4, 64, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        pio.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9]);
        icmp.extend_from_slice(&pio);
        ip6.extend_from_slice(&icmp);
        let f = eth([0x33, 0x33, 0, 0, 0, 1], A, 0x86dd, &ip6);
        let d = decode(LinkType::Ethernet, 0, &f, f.len() as u32).unwrap();
        assert!(matches!(d.ip, IpPair::V6 { .. }));
        assert_eq!(d.ra_prefixes[0], (0x2001_0db8_0001_0002u128 << 64, 64));
        assert_eq!(d.ra_prefixes[1], (0, 0));
        // The same RA cut inside the prefix option yields no prefix and no panic.
        for cut in 0..f.len() {
            let _ = decode(LinkType::Ethernet, 0, &f[..cut], f.len() as u32);
        }
        // A zero-length option ends parsing instead of looping forever.
        let mut bad = f.clone();
        bad[14 + 40 + 16 + 1] = 0;
        let d = decode(LinkType::Ethernet, 0, &bad, bad.len() as u32).unwrap();
        assert_eq!(d.ra_prefixes[0], (0, 0));
    }

    #[test]
    fn arp_request() {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&A);
        a.extend_from_slice(&[192, 168, 1, 2]);
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&[192, 168, 1, 1]);
        let f = eth([0xff; 6], A, 0x0806, &a);
        let d = decode(LinkType::Ethernet, 0, &f, 60).unwrap();
        let arp = d.arp.unwrap();
        assert_eq!(arp.op, 1);
        assert_eq!(arp.sender_mac, MacAddr(A));
        assert_eq!(arp.sender_ip, 0xc0a8_0102);
        assert_eq!(arp.target_ip, 0xc0a8_0101);
        assert!(
            decode(LinkType::Ethernet, 0, &f[..30], 60)
                .unwrap()
                .arp
                .is_none()
        );
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = ipv4_header([192, 168, 1, 2], [1, 1, 1, 1]);
        // SLL v1, outgoing (4), ARPHRD_ETHER, halen 6.
        let mut s = vec![0, 4, 0, 1, 0, 6];
        s.extend_from_slice(&A);
        s.extend_from_slice(&[0, 0, 0x08, 0x00]);
        s.extend_from_slice(&ip);
        let d = decode(LinkType::LinuxSll, 0, &s, 74).unwrap();
        assert_eq!(d.src, MacAddr(A));
        assert_eq!(d.dst, Dest::FromCaptureHost { ifindex: 0 });
        assert!(matches!(d.ip, IpPair::V4 { .. }));
        s[1] = 0;
        assert_eq!(
            decode(LinkType::LinuxSll, 0, &s, 74).unwrap().dst,
            Dest::CaptureHost { ifindex: 0 }
        );
        // Loopback (ARPHRD_LOOPBACK 772) carries no Ethernet MAC.
        s[2] = 0x03;
        s[3] = 0x04;
        assert!(decode(LinkType::LinuxSll, 0, &s, 74).is_none());

        // SLL2: protocol, reserved, ifindex 3, hatype 1, pkttype 1 (broadcast), halen 6, addr.
        let mut s2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 1, 6];
        s2.extend_from_slice(&A);
        s2.extend_from_slice(&[0, 0]);
        s2.extend_from_slice(&ip);
        let d = decode(LinkType::LinuxSll2, 0, &s2, 74).unwrap();
        assert_eq!(d.dst, Dest::Group);
        s2[10] = 0;
        assert_eq!(
            decode(LinkType::LinuxSll2, 0, &s2, 74).unwrap().dst,
            Dest::CaptureHost { ifindex: 3 }
        );
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic sweep over random-looking inputs of every short length.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = [0u8; 200];
        for round in 0..20_000 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let n = round % buf.len();
            if round % 3 == 0 {
                buf[12] = 0x86;
                buf[13] = 0xdd;
                buf[14] = 0x60;
                buf[20] = 58;
                buf[54] = 134;
            }
            for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2] {
                let _ = decode(link, 0, &buf[..n], n as u32);
            }
        }
    }
}
