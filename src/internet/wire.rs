//! The bytes the probes send and read: ICMP echo (RFC 792) and a one-question DNS query
//! (RFC 1035). Pure: no sockets here, so every parser is tested on crafted and hostile input.

/// ICMP type of an echo request and of an echo reply.
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with `id`, `seq` and `token` as its payload (so a reply to somebody else's
/// ping with the same id is not taken for ours).
pub fn echo_request(id: u16, seq: u16, token: [u8; 8]) -> Vec<u8> {
    let mut p = vec![ECHO_REQUEST, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&token);
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// An echo reply's identifier and sequence number, if `packet` is one carrying `token`.
/// `packet` starts with the IPv4 header when it came from a raw socket (`with_ip_header`); a
/// datagram ICMP socket hands over the ICMP message alone.
pub fn parse_echo_reply(packet: &[u8], with_ip_header: bool, token: [u8; 8]) -> Option<(u16, u16)> {
    let icmp = if with_ip_header {
        let first = *packet.first()?;
        if first >> 4 != 4 {
            return None;
        }
        packet.get(usize::from(first & 0x0f) * 4..)?
    } else {
        packet
    };
    if icmp.len() < 16 || icmp[0] != ECHO_REPLY || icmp[1] != 0 || icmp[8..16] != token {
        return None;
    }
    Some((
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
    ))
}

/// A recursive query for `name`'s A records. `None` for a name DNS cannot carry (an empty
/// label, a label over 63 bytes, over 253 bytes in all).
pub fn dns_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    // Header: id, flags with RD (recursion desired), one question.
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    // The root label, QTYPE A, QCLASS IN.
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    Some(q)
}

/// What a resolver answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsAnswer {
    /// NOERROR with at least one answer record: the name resolved.
    Resolved,
    /// Any other response code, or NOERROR without an answer (the resolver could not resolve).
    Failed { rcode: u8 },
}

/// The answer in `packet` if it is the response to query `id`.
pub fn parse_dns_response(packet: &[u8], id: u16) -> Option<DnsAnswer> {
    if packet.len() < 12 || u16::from_be_bytes([packet[0], packet[1]]) != id {
        return None;
    }
    // QR must be set: a response, not our own query bounced back.
    if packet[2] & 0x80 == 0 {
        return None;
    }
    let rcode = packet[3] & 0x0f;
    let answers = u16::from_be_bytes([packet[6], packet[7]]);
    Some(if rcode == 0 && answers > 0 {
        DnsAnswer::Resolved
    } else {
        DnsAnswer::Failed { rcode }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: [u8; 8] = *b"lanmeter";

    #[test]
    fn checksum_of_a_message_with_its_checksum_is_zero() {
        let p = echo_request(0x1234, 7, TOKEN);
        assert_eq!(checksum(&p), 0);
        // RFC 1071's example words.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // Odd length: the last byte is padded with zero.
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn reply_is_read_with_and_without_the_ip_header() {
        let mut reply = echo_request(0xbeef, 3, TOKEN);
        reply[0] = ECHO_REPLY;
        assert_eq!(parse_echo_reply(&reply, false, TOKEN), Some((0xbeef, 3)));
        // A 24-byte IPv4 header (IHL 6, with options) in front.
        let mut ip = vec![0x46];
        ip.resize(24, 0);
        ip.extend_from_slice(&reply);
        assert_eq!(parse_echo_reply(&ip, true, TOKEN), Some((0xbeef, 3)));
    }

    #[test]
    fn requests_foreign_tokens_and_garbage_are_not_replies() {
        let req = echo_request(1, 1, TOKEN);
        assert_eq!(parse_echo_reply(&req, false, TOKEN), None);
        let mut other = req.clone();
        other[0] = ECHO_REPLY;
        assert_eq!(parse_echo_reply(&other, false, *b"someone!"), None);
        for junk in [&[][..], &[0x45], &[0x4f, 0, 0], &[0x60; 40], &other[..15]] {
            assert_eq!(parse_echo_reply(junk, true, TOKEN), None, "{junk:?}");
            assert_eq!(parse_echo_reply(junk, false, TOKEN), None, "{junk:?}");
        }
    }

    #[test]
    fn dns_query_encodes_labels_and_refuses_impossible_names() {
        let q = dns_query(0xabcd, "probe.example.").unwrap();
        assert_eq!(&q[..4], &[0xab, 0xcd, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x05probe\x07example\x00\x00\x01\x00\x01");
        assert_eq!(dns_query(1, ""), None);
        assert_eq!(dns_query(1, "a..b"), None);
        assert_eq!(dns_query(1, &"x".repeat(64)), None);
        assert_eq!(dns_query(1, &["abc"; 70].join(".")), None);
    }

    #[test]
    fn dns_response_codes() {
        let mut r = dns_query(9, "a.b").unwrap();
        // Our own query is not a response.
        assert_eq!(parse_dns_response(&r, 9), None);
        r[2] |= 0x80;
        assert_eq!(
            parse_dns_response(&r, 9),
            Some(DnsAnswer::Failed { rcode: 0 })
        );
        r[7] = 1;
        assert_eq!(parse_dns_response(&r, 9), Some(DnsAnswer::Resolved));
        assert_eq!(parse_dns_response(&r, 10), None);
        r[3] = 0x02; // SERVFAIL
        assert_eq!(
            parse_dns_response(&r, 9),
            Some(DnsAnswer::Failed { rcode: 2 })
        );
        assert_eq!(parse_dns_response(&r[..11], 9), None);
    }
}
