//! Names of the remote hosts each device talks to, learned passively (issue 29, opt-in): the
//! DNS answers the resolver sends a device ([`dns`]), and the server name a device puts in clear
//! text when it opens TLS over TCP ([`tls`]) or QUIC ([`quic`]). Each gives (device MAC, remote
//! IP) → name, mapped to a service by [`services`]; [`table`] keeps what one flush interval
//! learned in a fixed amount of memory. Pure: frames in, facts out, no I/O.
//!
//! What is read: UDP and TCP from port 53 (answers; over TCP, RFC 7766's length-prefixed
//! messages, when a segment holds whole ones), the first TCP segment to port 443 when it starts
//! a TLS handshake record, and UDP to port 443 that starts like a QUIC long-header packet. The
//! live capture's kernel filter ([`BPF_FILTER`]) passes only those.

pub mod dns;
pub mod quic;
pub mod services;
pub mod table;
pub mod tls;

use crate::capture::LinkType;
use crate::model::MacAddr;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const MAX_VLAN_TAGS: usize = 4;
const DNS_PORT: u16 = 53;
const HTTPS_PORT: u16 = 443;

/// The kernel filter of the names capture: DNS answers (UDP and TCP from port 53: a resolver
/// answers over TCP when the answer is too big for UDP or the client asks so), TCP segments to 443
/// whose payload starts with a TLS handshake record (0x16), UDP to 443 whose first byte is a
/// QUIC long header of type Initial (0b1100xxxx). libpcap's `tcp[]`/`udp[]` read IPv4 only, so
/// IPv6 is matched with `ip6[]` at fixed offsets (no extension headers, as clients send them).
pub const BPF_FILTER: &str = "(udp src port 53) or (tcp src port 53) \
or (tcp dst port 443 and tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x16) \
or (udp dst port 443 and (udp[8:1] & 0xf0) = 0xc0) \
or (ip6 and ip6[6:1] = 6 and tcp dst port 443 and ip6[(40 + ((ip6[52:1] & 0xf0) >> 2)):1] = 0x16) \
or (ip6 and ip6[6:1] = 17 and udp dst port 443 and (ip6[48:1] & 0xf0) = 0xc0)";

/// [`BPF_FILTER`] for frames behind one 802.1Q tag too (not compilable on Linux cooked links,
/// where [`BPF_FILTER`] is used).
pub const BPF_FILTER_VLAN: &str = "((udp src port 53) or (tcp src port 53) \
or (tcp dst port 443 and tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x16) \
or (udp dst port 443 and (udp[8:1] & 0xf0) = 0xc0) \
or (ip6 and ip6[6:1] = 6 and tcp dst port 443 and ip6[(40 + ((ip6[52:1] & 0xf0) >> 2)):1] = 0x16) \
or (ip6 and ip6[6:1] = 17 and udp dst port 443 and (ip6[48:1] & 0xf0) = 0xc0)) \
or (vlan and ((udp src port 53) or (tcp src port 53) or (tcp dst port 443) or (udp dst port 443)))";

/// Where a name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A DNS answer to the device.
    Dns,
    /// The SNI of a TLS ClientHello over TCP.
    Tls,
    /// The SNI of a QUIC Initial.
    Quic,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dns => "dns",
            Source::Tls => "tls",
            Source::Quic => "quic",
        }
    }
    /// A ClientHello names the very server the device connects to; a DNS answer only says
    /// which addresses a name has. So an SNI wins over a DNS name for the same address.
    pub fn is_sni(self) -> bool {
        self != Source::Dns
    }
}

/// One thing a frame said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// A DNS answer: to the device `device` (the frame's destination MAC; `None` on links
    /// that do not carry it).
    Dns {
        ts: i64,
        device: Option<MacAddr>,
        response: dns::Response,
    },
    /// A ClientHello with a server name, from `device` to `server`.
    Hello {
        ts: i64,
        device: Option<MacAddr>,
        server: IpAddr,
        name: String,
        source: Source,
    },
}

/// (device, remote IP) → name, as [`Extractor::frame`] turns events into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    pub ts: i64,
    pub device: MacAddr,
    pub remote: IpAddr,
    pub name: String,
    pub source: Source,
    /// The answer's TTL (DNS only).
    pub ttl: Option<u32>,
}

impl Event {
    /// The (device, remote IP) → name facts of this event: one per address of a DNS answer.
    pub fn learned(&self) -> Vec<Learned> {
        match self {
            Event::Dns {
                ts,
                device: Some(device),
                response,
            } => response
                .addresses
                .iter()
                .map(|(ip, ttl)| Learned {
                    ts: *ts,
                    device: *device,
                    remote: *ip,
                    name: response.query.clone(),
                    source: Source::Dns,
                    ttl: Some(*ttl),
                })
                .collect(),
            Event::Hello {
                ts,
                device: Some(device),
                server,
                name,
                source,
            } => vec![Learned {
                ts: *ts,
                device: *device,
                remote: *server,
                name: name.clone(),
                source: *source,
                ttl: None,
            }],
            _ => Vec::new(),
        }
    }
}

/// Frames to events. Holds the QUIC reassembly (bounded), nothing else.
#[derive(Default)]
pub struct Extractor {
    quic: quic::Reassembly,
}

struct Packet<'a> {
    src_mac: Option<MacAddr>,
    dst_mac: Option<MacAddr>,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: &'a [u8],
}

impl Extractor {
    /// Reads one captured frame; events are appended to `out`. Any bytes are safe.
    pub fn frame(&mut self, link: LinkType, ts: i64, data: &[u8], out: &mut Vec<Event>) {
        let Some(p) = packet(link, data) else { return };
        match p.proto {
            17 => {
                let Some(h) = p.l4.get(..8) else { return };
                let (sport, dport) = (be16(h, 0), be16(h, 2));
                let len = usize::from(be16(h, 4)).clamp(8, p.l4.len());
                let payload = &p.l4[8..len];
                if sport == DNS_PORT {
                    if let Some(response) = dns::parse_response(payload) {
                        out.push(Event::Dns {
                            ts,
                            device: p.dst_mac,
                            response,
                        });
                    }
                } else if dport == HTTPS_PORT {
                    let client = client_key(p.src_mac, p.src, sport);
                    for initial in quic::initials(payload) {
                        if let quic::Progress::Name(name) = self.quic.add(client, &initial) {
                            out.push(Event::Hello {
                                ts,
                                device: p.src_mac,
                                server: p.dst,
                                name,
                                source: Source::Quic,
                            });
                        }
                    }
                }
            }
            6 => {
                let Some(h) = p.l4.get(..20) else { return };
                let off = usize::from(h[12] >> 4) * 4;
                let Some(payload) = p.l4.get(off.max(20)..) else {
                    return;
                };
                if be16(h, 0) == DNS_PORT {
                    for response in tcp_dns(payload) {
                        out.push(Event::Dns {
                            ts,
                            device: p.dst_mac,
                            response,
                        });
                    }
                } else if let Some(name) = tls::sni_from_records(payload) {
                    out.push(Event::Hello {
                        ts,
                        device: p.src_mac,
                        server: p.dst,
                        name,
                        source: Source::Tls,
                    });
                }
            }
            _ => {}
        }
    }
}

/// The DNS answers of a TCP segment from port 53 (RFC 7766: each message behind its two-byte
/// length). Read without reassembly, so only a segment made of whole messages counts: one that
/// continues a message (an answer longer than a segment, or cut by the snaplen) cannot be told
/// from the start of one, and is left alone rather than misread.
fn tcp_dns(mut payload: &[u8]) -> Vec<dns::Response> {
    let mut messages = Vec::new();
    while !payload.is_empty() {
        let Some(len) = payload.get(..2).map(|l| usize::from(be16(l, 0))) else {
            return Vec::new();
        };
        let Some(msg) = payload.get(2..2 + len) else {
            return Vec::new();
        };
        messages.push(msg);
        payload = &payload[2 + len..];
    }
    messages
        .into_iter()
        .filter_map(dns::parse_response)
        .collect()
}

/// Tells QUIC clients apart for reassembly: a client's connection ids are random, but two
/// clients could pick the same, so the address and port are part of the key.
fn client_key(mac: Option<MacAddr>, ip: IpAddr, port: u16) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (mac.map(|m| m.0), ip, port).hash(&mut h);
    h.finish()
}

fn packet(link: LinkType, d: &[u8]) -> Option<Packet<'_>> {
    let (src_mac, dst_mac, mut ethertype, mut at) = match link {
        LinkType::Ethernet => (
            Some(mac(d, 6)?),
            Some(mac(d, 0)?),
            be16(d.get(12..14)?, 0),
            14,
        ),
        // Cooked captures carry only the sender's address (for outgoing frames, ours).
        LinkType::LinuxSll => {
            let addr = (be16(d.get(..16)?, 4) == 6).then(|| mac(d, 6)).flatten();
            (addr, None, be16(d, 14), 16)
        }
        LinkType::LinuxSll2 => {
            let addr = (*d.get(11)? == 6).then(|| mac(d, 12)).flatten();
            (addr, None, be16(d.get(..20)?, 0), 20)
        }
    };
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        ethertype = be16(d.get(at..at + 4)?, 2);
        at += 4;
    }
    let l3 = d.get(at..)?;
    match ethertype {
        0x0800 => {
            let h = l3.get(..20)?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(be16(h, 2)).min(l3.len());
            // Later fragments do not start with a transport header.
            if h[0] >> 4 != 4 || ihl < 20 || be16(h, 6) & 0x1fff != 0 {
                return None;
            }
            Some(Packet {
                src_mac,
                dst_mac,
                src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
                dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
                proto: h[9],
                l4: l3.get(ihl..total)?,
            })
        }
        0x86dd => {
            let h = l3.get(..40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let end = (40 + usize::from(be16(h, 4))).min(l3.len());
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            Some(Packet {
                src_mac,
                dst_mac,
                src: IpAddr::V6(Ipv6Addr::from(src)),
                dst: IpAddr::V6(Ipv6Addr::from(dst)),
                proto: h[6],
                l4: l3.get(40..end)?,
            })
        }
        _ => None,
    }
}

fn mac(d: &[u8], at: usize) -> Option<MacAddr> {
    Some(MacAddr(d.get(at..at + 6)?.try_into().ok()?))
}

/// Big-endian u16 at `at` of a slice already known to be long enough.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_ipv4(
        src: [u8; 6],
        dst: [u8; 6],
        from: [u8; 4],
        to: [u8; 4],
        proto: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(dst);
        f.extend(src);
        f.extend([0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        f.extend([0x45, 0]);
        f.extend(total.to_be_bytes());
        f.extend([0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend(from);
        f.extend(to);
        f.extend(l4);
        f
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend(sport.to_be_bytes());
        u.extend(dport.to_be_bytes());
        u.extend(((8 + payload.len()) as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        u
    }

    const CLIENT: [u8; 6] = [0xdc, 0xa6, 0x32, 1, 2, 3];
    const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn dns_answers_name_the_addresses_for_the_receiving_device() {
        let m = dns::tests::response("shop.example", &[("shop.example", 1, vec![10, 9, 0, 2])]);
        let f = eth_ipv4(
            ROUTER,
            CLIENT,
            [10, 0, 0, 1],
            [10, 0, 0, 5],
            17,
            &udp(53, 40000, &m),
        );
        let mut out = Vec::new();
        Extractor::default().frame(LinkType::Ethernet, 5, &f, &mut out);
        let l: Vec<Learned> = out.iter().flat_map(Event::learned).collect();
        assert_eq!(
            l,
            [Learned {
                ts: 5,
                device: MacAddr(CLIENT),
                remote: "10.9.0.2".parse().unwrap(),
                name: "shop.example".into(),
                source: Source::Dns,
                ttl: Some(60),
            }]
        );
    }

    #[test]
    fn tls_and_quic_hellos_name_the_server_for_the_sending_device() {
        let hs = tls::tests::client_hello("shop.example");
        let mut tcp = vec![
            0xa0, 0x00, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0, 0, 0, 0, 0, 0,
        ];
        tcp.extend([22, 3, 1]);
        tcp.extend((hs.len() as u16).to_be_bytes());
        tcp.extend(&hs);
        let f = eth_ipv4(CLIENT, ROUTER, [10, 0, 0, 5], [10, 9, 0, 2], 6, &tcp);
        let q = quic::tests::seal_initial(&[3; 8], 0, &[(0, &hs)]);
        let g = eth_ipv4(
            CLIENT,
            ROUTER,
            [10, 0, 0, 5],
            [10, 9, 0, 3],
            17,
            &udp(50000, 443, &q),
        );
        let mut x = Extractor::default();
        let mut out = Vec::new();
        x.frame(LinkType::Ethernet, 1, &f, &mut out);
        x.frame(LinkType::Ethernet, 2, &g, &mut out);
        let l: Vec<(String, String, Source)> = out
            .iter()
            .flat_map(Event::learned)
            .map(|l| (l.device.to_string(), l.remote.to_string(), l.source))
            .collect();
        assert_eq!(
            l,
            [
                ("dc:a6:32:01:02:03".into(), "10.9.0.2".into(), Source::Tls),
                ("dc:a6:32:01:02:03".into(), "10.9.0.3".into(), Source::Quic)
            ]
        );
    }

    /// A TCP header from `sport` to `dport` (20 bytes, no options) and `payload`.
    fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend(sport.to_be_bytes());
        t.extend(dport.to_be_bytes());
        t.extend([0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0, 0, 0, 0, 0, 0]);
        t.extend(payload);
        t
    }

    #[test]
    fn dns_answers_over_tcp_are_read_when_a_segment_holds_whole_messages() {
        let a = dns::tests::response("shop.example", &[("shop.example", 1, vec![192, 0, 2, 10])]);
        let b = dns::tests::response("cdn.example", &[("cdn.example", 1, vec![192, 0, 2, 11])]);
        let framed = |msgs: &[&[u8]]| {
            let mut p = Vec::new();
            for m in msgs {
                p.extend((m.len() as u16).to_be_bytes());
                p.extend(*m);
            }
            p
        };
        let learned = |payload: &[u8]| {
            let f = eth_ipv4(
                ROUTER,
                CLIENT,
                [10, 0, 0, 1],
                [10, 0, 0, 5],
                6,
                &tcp(53, 40000, payload),
            );
            let mut out = Vec::new();
            Extractor::default().frame(LinkType::Ethernet, 7, &f, &mut out);
            out.iter()
                .flat_map(Event::learned)
                .map(|l| (l.device, l.remote.to_string(), l.name, l.source))
                .collect::<Vec<_>>()
        };
        let dev = MacAddr(CLIENT);
        // One answer, and two in one segment (RFC 7766 lets a resolver pipeline them).
        assert_eq!(
            learned(&framed(&[&a])),
            [(dev, "192.0.2.10".into(), "shop.example".into(), Source::Dns)]
        );
        assert_eq!(
            learned(&framed(&[&a, &b])),
            [
                (dev, "192.0.2.10".into(), "shop.example".into(), Source::Dns),
                (dev, "192.0.2.11".into(), "cdn.example".into(), Source::Dns)
            ]
        );
        // A message longer than the segment (continued in the next, or cut by the snaplen),
        // a segment that continues one (a stray byte at its end, or no length at its start),
        // and a bare ACK: nothing read, nothing misread.
        let whole = framed(&[&a]);
        assert!(learned(&whole[..whole.len() - 1]).is_empty());
        let mut stray = whole.clone();
        stray.push(0);
        assert!(learned(&stray).is_empty());
        assert!(learned(&a).is_empty());
        assert!(learned(&[]).is_empty());
        // The same segment to port 53 is a query's, not an answer.
        let f = eth_ipv4(
            CLIENT,
            ROUTER,
            [10, 0, 0, 5],
            [10, 0, 0, 1],
            6,
            &tcp(40000, 53, &whole),
        );
        let mut out = Vec::new();
        Extractor::default().frame(LinkType::Ethernet, 7, &f, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_kernel_filters_compile_for_the_links_the_capture_opens() {
        use crate::capture::discovery_source::filter_compiles;
        // Ethernet takes the VLAN form; Linux cooked links (`any`) the plain one.
        assert!(filter_compiles(1, BPF_FILTER_VLAN));
        assert!(filter_compiles(1, BPF_FILTER));
        assert!(filter_compiles(113, BPF_FILTER));
        assert!(filter_compiles(276, BPF_FILTER));
    }

    #[test]
    fn any_prefix_of_a_frame_is_safe() {
        let hs = tls::tests::client_hello("shop.example");
        let q = quic::tests::seal_initial(&[3; 8], 0, &[(0, &hs)]);
        let g = eth_ipv4(
            CLIENT,
            ROUTER,
            [10, 0, 0, 5],
            [10, 9, 0, 3],
            17,
            &udp(50000, 443, &q),
        );
        let m = dns::tests::response("shop.example", &[("shop.example", 1, vec![192, 0, 2, 10])]);
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend(&m);
        let t = eth_ipv4(
            ROUTER,
            CLIENT,
            [10, 0, 0, 1],
            [10, 0, 0, 5],
            6,
            &tcp(53, 40000, &framed),
        );
        let mut x = Extractor::default();
        for f in [&g, &t] {
            for cut in 0..f.len() {
                let mut out = Vec::new();
                for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2] {
                    x.frame(link, 0, &f[..cut], &mut out);
                }
            }
        }
    }
}
