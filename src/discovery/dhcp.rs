//! Passive DHCP learning (DHCPv4 and DHCPv6): the names, vendor classes and client identities
//! clients announce, and the addresses servers hand out.
//!
//! Pure: a UDP payload in, observations out. Attribution follows the protocol, not the frame:
//! a DHCPv4 client is its `chaddr` (which a relay forwards unchanged), an ACK's lease belongs to
//! its `chaddr`. It must never read past the message or an option, and never fail on odd input.

use super::mdns::read_name;
use super::observe::{Fact, NameSource, Observation, push, useful_v4, useful_v6};
use super::text;
use crate::model::{MacAddr, TimestampNs};
use std::net::{Ipv4Addr, Ipv6Addr};

const MAGIC: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
const ACK: u8 = 5;

/// Reads a DHCPv4 (BOOTP) message carried from `eth_src`.
pub fn parse_v4(ts: TimestampNs, eth_src: MacAddr, msg: &[u8], out: &mut Vec<Observation>) {
    let Some(fixed) = msg.get(..240) else { return };
    if fixed[236..240] != MAGIC {
        return;
    }
    let op = fixed[0];
    let client = if fixed[1] == 1 && fixed[2] == 6 {
        let mut m = [0u8; 6];
        m.copy_from_slice(&fixed[28..34]);
        MacAddr(m)
    } else if op == 1 {
        eth_src
    } else {
        return;
    };
    let ip_at = |i: usize| Ipv4Addr::new(fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]);
    let (ciaddr, yiaddr) = (ip_at(12), ip_at(16));
    let mut msg_type = 0u8;
    let mut facts: Vec<Fact> = Vec::new();
    for (code, val) in Options::new(&msg[240..]) {
        match code {
            53 if val.len() == 1 => msg_type = val[0],
            12 if !val.is_empty() => {
                facts.push(Fact::Hostname(NameSource::Dhcp, text::escape(val)));
            }
            81 if val.len() > 3 => {
                if let Some(name) = fqdn(val[0] & 0x04 != 0, &val[3..]) {
                    facts.push(Fact::Hostname(NameSource::DhcpFqdn, name));
                }
            }
            60 if !val.is_empty() => facts.push(Fact::VendorClass(text::escape(val))),
            61 if !val.is_empty() => {
                facts.push(Fact::ClientId(format!("dhcp:{}", text::hex_id(val))));
            }
            _ => {}
        }
    }
    match op {
        1 => {
            if useful_v4(ciaddr) {
                facts.push(Fact::Ipv4(ciaddr));
            }
            if facts.is_empty() {
                facts.push(Fact::Seen);
            }
            for f in facts {
                push(out, ts, client, f);
            }
        }
        // A server's reply describes the server only by its own fields; the lease in an ACK
        // is the client's address. Names a server echoes back are not trusted as the client's.
        2 if msg_type == ACK && useful_v4(yiaddr) => push(out, ts, client, Fact::Ipv4(yiaddr)),
        _ => {}
    }
}

/// A client FQDN: DNS wire format when the E flag is set, else ASCII (RFC 4702 / 4704).
fn fqdn(wire_format: bool, raw: &[u8]) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    if wire_format {
        let n = read_name(raw, 0)?;
        (!n.labels.is_empty()).then(|| n.to_text())
    } else {
        Some(text::escape(raw))
    }
}

/// DHCPv4 options: (code, value) until END or the end of the buffer; pads skipped.
struct Options<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Options<'a> {
    fn new(b: &'a [u8]) -> Self {
        Options { b, at: 0 }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let code = *self.b.get(self.at)?;
            match code {
                0 => self.at += 1,
                255 => return None,
                _ => {
                    let len = usize::from(*self.b.get(self.at + 1)?);
                    let val = self.b.get(self.at + 2..self.at + 2 + len)?;
                    self.at += 2 + len;
                    return Some((code, val));
                }
            }
        }
    }
}

/// Reads a DHCPv6 message. Client messages (Solicit, Request, Confirm, Renew, Rebind, Release,
/// Inform) describe `eth_src`; a Reply's leased addresses belong to `eth_dst`, the client.
pub fn parse_v6(
    ts: TimestampNs,
    eth_src: MacAddr,
    eth_dst: MacAddr,
    msg: &[u8],
    out: &mut Vec<Observation>,
) {
    let Some(&kind) = msg.first() else { return };
    let opts = msg.get(4..).unwrap_or_default();
    match kind {
        1 | 3 | 4 | 5 | 6 | 8 | 11 => {
            let mut any = false;
            for (code, val) in V6Options::new(opts) {
                let fact = match code {
                    1 if !val.is_empty() => Fact::ClientId(format!("duid:{}", text::hex_id(val))),
                    39 if val.len() > 1 => match fqdn(true, &val[1..]) {
                        Some(n) => Fact::Hostname(NameSource::DhcpFqdn, n),
                        None => continue,
                    },
                    // Vendor class: enterprise number (4), then length-prefixed strings.
                    16 if val.len() > 6 => {
                        let n = usize::from(u16::from_be_bytes([val[4], val[5]]));
                        match val.get(6..6 + n) {
                            Some(s) if !s.is_empty() => Fact::VendorClass(text::escape(s)),
                            _ => continue,
                        }
                    }
                    _ => continue,
                };
                any = true;
                push(out, ts, eth_src, fact);
            }
            if !any {
                push(out, ts, eth_src, Fact::Seen);
            }
        }
        7 => {
            for (code, val) in V6Options::new(opts) {
                // IA_NA: IAID, T1, T2, then options, among them IAADDR (5): address first.
                if code == 3 && val.len() > 12 {
                    for (c, v) in V6Options::new(&val[12..]) {
                        if c == 5 && v.len() >= 16 {
                            let mut b = [0u8; 16];
                            b.copy_from_slice(&v[..16]);
                            let ip = Ipv6Addr::from(b);
                            if useful_v6(ip) {
                                push(out, ts, eth_dst, Fact::Ipv6(ip));
                            }
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

struct V6Options<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> V6Options<'a> {
    fn new(b: &'a [u8]) -> Self {
        V6Options { b, at: 0 }
    }
}

impl<'a> Iterator for V6Options<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let h = self.b.get(self.at..self.at + 4)?;
        let code = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let val = self.b.get(self.at + 4..self.at + 4 + len)?;
        self.at += 4 + len;
        Some((code, val))
    }
}

/// Builds a DHCPv4 client message (op 1) from `client` with the given options (code, value):
/// for tests here, in the integration tests' frame files and in the demo.
pub fn client_message(msg_type: u8, xid: u32, client: MacAddr, options: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[0] = 1;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[28..34].copy_from_slice(&client.0);
    m[236..240].copy_from_slice(&MAGIC);
    m.extend_from_slice(&[53, 1, msg_type]);
    for (code, val) in options {
        // Options longer than 255 bytes are split, as RFC 3396 concatenation would; the parser
        // keeps the first part, which is what the cap would keep anyway.
        let val = &val[..val.len().min(255)];
        m.push(*code);
        m.push(val.len() as u8);
        m.extend_from_slice(val);
    }
    m.push(255);
    if m.len() < 300 {
        m.resize(300, 0);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: MacAddr = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

    fn facts(msg: &[u8]) -> Vec<Fact> {
        let mut out = Vec::new();
        parse_v4(1, PHONE, msg, &mut out);
        assert!(out.iter().all(|o| o.mac == PHONE));
        out.into_iter().map(|o| o.fact).collect()
    }

    #[test]
    fn request_gives_name_fqdn_vendor_class_and_client_id() {
        let m = client_message(
            3,
            7,
            PHONE,
            &[
                (12, b"annas-phone"),
                (81, b"\x04\0\0\x0bannas-phone\x04home\0"),
                (60, b"android-dhcp-14"),
                (61, b"\xff\0\0\0\x01\0\x01"),
            ],
        );
        assert_eq!(
            facts(&m),
            [
                Fact::Hostname(NameSource::Dhcp, "annas-phone".into()),
                Fact::Hostname(NameSource::DhcpFqdn, "annas-phone.home".into()),
                Fact::VendorClass("android-dhcp-14".into()),
                Fact::ClientId("dhcp:ff000000010001".into()),
            ]
        );
    }

    #[test]
    fn ack_gives_the_lease_to_chaddr_not_the_server() {
        let mut m = client_message(ACK, 7, PHONE, &[(12, b"server-echo")]);
        m[0] = 2;
        m[16..20].copy_from_slice(&[192, 168, 1, 23]);
        assert_eq!(facts(&m), [Fact::Ipv4(Ipv4Addr::new(192, 168, 1, 23))]);
    }

    #[test]
    fn hostile_names_are_kept_escaped_and_capped() {
        let long = vec![b'A'; 300];
        for (raw, want) in [
            (
                &b"<script>alert(1)</script>"[..],
                "<script>alert(1)</script>".to_string(),
            ),
            (b"a\0b\"c'd", "a\\x00b\"c'd".to_string()),
            (b"\xc3\x28bad", "\\xc3(bad".to_string()),
            (&long, "A".repeat(255)),
        ] {
            let m = client_message(1, 1, PHONE, &[(12, raw)]);
            assert_eq!(facts(&m), [Fact::Hostname(NameSource::Dhcp, want)]);
        }
    }

    #[test]
    fn truncated_and_corrupt_messages_never_panic() {
        let m = client_message(
            3,
            7,
            PHONE,
            &[(12, b"x"), (61, b"\x01abcdef"), (81, b"\x04\0\0\xc0\0")],
        );
        for n in 0..m.len() {
            let _ = facts(&m[..n]);
        }
        for i in 236..m.len() {
            let mut c = m.clone();
            c[i] = 0xff;
            let _ = facts(&c);
            c[i] = 0xc0;
            let _ = facts(&c);
        }
    }

    #[test]
    fn dhcpv6_solicit_and_reply() {
        let mut s = vec![1, 0, 0, 1];
        s.extend_from_slice(&[0, 1, 0, 4, 0, 3, 0, 1]);
        s.extend_from_slice(&[0, 39, 0, 6, 0x01, 3, b'p', b'c', b'1', 0]);
        let mut out = Vec::new();
        parse_v6(1, PHONE, MacAddr::BROADCAST, &s, &mut out);
        let f: Vec<Fact> = out.into_iter().map(|o| o.fact).collect();
        assert_eq!(
            f,
            [
                Fact::ClientId("duid:00030001".into()),
                Fact::Hostname(NameSource::DhcpFqdn, "pc1".into())
            ]
        );
        let server = MacAddr([0, 0x0c, 0x29, 1, 1, 1]);
        let mut r = vec![7, 0, 0, 1];
        let ip: Ipv6Addr = "2001:db8::23".parse().unwrap();
        let mut iaaddr = vec![0, 5, 0, 24];
        iaaddr.extend_from_slice(&ip.octets());
        iaaddr.extend_from_slice(&[0; 8]);
        r.extend_from_slice(&[0, 3, 0, (12 + iaaddr.len()) as u8]);
        r.extend_from_slice(&[0; 12]);
        r.extend_from_slice(&iaaddr);
        let mut out = Vec::new();
        parse_v6(2, server, PHONE, &r, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].mac, &out[0].fact), (PHONE, &Fact::Ipv6(ip)));
    }
}
