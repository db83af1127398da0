//! DNS responses (RFC 1035) as a resolver sends them to a device: the names in the answer
//! section and, for the name the device asked about, the addresses it was given, following the
//! CNAME chain from the question to the A/AAAA records (a device that looked up
//! `www.youtube.com` and got `youtube-ui.l.google.com` → 142.250.x.y will talk to 142.250.x.y
//! for www.youtube.com). HTTPS/SVCB records (RFC 9460) add their ipv4hint/ipv6hint addresses.
//!
//! Every read is bounds-checked; compression pointers may only point backwards and a name is at
//! most 255 bytes and [`MAX_JUMPS`] pointers, so a malicious message costs a bounded amount of
//! work and yields `None` (or fewer answers), never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Pointers followed within one name: real messages use one or two.
const MAX_JUMPS: usize = 16;
/// A name on the wire is at most 255 bytes (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// Records read per message: a response to a device carries a handful.
const MAX_RECORDS: usize = 64;
/// CNAME links followed from the question.
const MAX_CHAIN: usize = 16;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const TYPE_SVCB: u16 = 64;
const TYPE_HTTPS: u16 = 65;
const CLASS_IN: u16 = 1;
/// SvcParamKeys (RFC 9460 §14.3.2).
const KEY_IPV4HINT: u16 = 4;
const KEY_IPV6HINT: u16 = 6;

/// What one DNS response says.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Response {
    /// The question's name (lower case, no trailing dot).
    pub query: String,
    /// Owner names of the answer section's A, AAAA, CNAME, HTTPS and SVCB records, in order,
    /// each once (lower case).
    pub answer_names: Vec<String>,
    /// Addresses the queried name resolves to, reached through the CNAME chain, with the
    /// smallest TTL along the chain (seconds).
    pub addresses: Vec<(IpAddr, u32)>,
}

/// One resource record of the answer section, as far as names are concerned.
#[derive(Debug)]
enum Data {
    Addr(IpAddr),
    Alias(String),
    Hints(Vec<IpAddr>),
}

#[derive(Debug)]
struct Record {
    owner: String,
    ttl: u32,
    data: Data,
}

/// Parses a DNS message; `None` unless it is a well-formed standard response (QR set, opcode 0,
/// no error) with one question of class IN.
pub fn parse_response(msg: &[u8]) -> Option<Response> {
    let flags = be16(msg, 2)?;
    let (qr, opcode, rcode) = (flags >> 15, (flags >> 11) & 0xf, flags & 0xf);
    if qr != 1 || opcode != 0 || rcode != 0 {
        return None;
    }
    let qdcount = be16(msg, 4)?;
    let ancount = usize::from(be16(msg, 6)?);
    if qdcount != 1 {
        return None;
    }
    let (query, mut at) = read_name(msg, 12)?;
    let qclass = be16(msg, at + 2)?;
    if qclass != CLASS_IN {
        return None;
    }
    at += 4;
    let mut records = Vec::new();
    for _ in 0..ancount.min(MAX_RECORDS) {
        let Some((record, next)) = read_record(msg, at) else {
            break;
        };
        at = next;
        if let Some(r) = record {
            records.push(r);
        }
    }
    let mut answer_names: Vec<String> = Vec::new();
    for r in &records {
        if !answer_names.contains(&r.owner) {
            answer_names.push(r.owner.clone());
        }
    }
    let addresses = resolve(&query, &records);
    Some(Response {
        query,
        answer_names,
        addresses,
    })
}

/// Follows the CNAME chain from `query` and collects the addresses at its end.
fn resolve(query: &str, records: &[Record]) -> Vec<(IpAddr, u32)> {
    let mut name = query.to_string();
    let mut ttl = u32::MAX;
    let mut out: Vec<(IpAddr, u32)> = Vec::new();
    for _ in 0..MAX_CHAIN {
        let mut alias = None;
        for r in records.iter().filter(|r| r.owner == name) {
            match &r.data {
                Data::Addr(a) => push(&mut out, *a, ttl.min(r.ttl)),
                Data::Hints(h) => h.iter().for_each(|a| push(&mut out, *a, ttl.min(r.ttl))),
                Data::Alias(target) => alias = alias.or(Some((target.clone(), r.ttl))),
            }
        }
        match alias {
            Some((target, t)) if out.is_empty() => {
                name = target;
                ttl = ttl.min(t);
            }
            _ => break,
        }
    }
    out
}

fn push(out: &mut Vec<(IpAddr, u32)>, a: IpAddr, ttl: u32) {
    if !out.iter().any(|(b, _)| *b == a) {
        out.push((a, ttl));
    }
}

/// One record at `at`: `Some(None)` for a record of another type or class (skipped),
/// `None` when the message ends inside it.
fn read_record(msg: &[u8], at: usize) -> Option<(Option<Record>, usize)> {
    let (owner, at) = read_name(msg, at)?;
    let rtype = be16(msg, at)?;
    let class = be16(msg, at + 2)?;
    let ttl = be32(msg, at + 4)?;
    let len = usize::from(be16(msg, at + 8)?);
    let start = at + 10;
    let end = start.checked_add(len)?;
    let rdata = msg.get(start..end)?;
    // The top bit of the class is mDNS's cache-flush bit; unicast DNS leaves it clear.
    if class & 0x7fff != CLASS_IN {
        return Some((None, end));
    }
    let data = match rtype {
        TYPE_A => <[u8; 4]>::try_from(rdata)
            .ok()
            .map(|b| Data::Addr(IpAddr::V4(Ipv4Addr::from(b)))),
        TYPE_AAAA => <[u8; 16]>::try_from(rdata)
            .ok()
            .map(|b| Data::Addr(IpAddr::V6(Ipv6Addr::from(b)))),
        TYPE_CNAME => read_name(msg, start)
            .filter(|&(_, e)| e <= end)
            .map(|(n, _)| Data::Alias(n)),
        TYPE_SVCB | TYPE_HTTPS => svcb_hints(msg, start, end).map(Data::Hints),
        _ => return Some((None, end)),
    };
    Some((
        data.map(|data| Record {
            owner: owner.clone(),
            ttl,
            data,
        }),
        end,
    ))
}

/// The ipv4hint/ipv6hint addresses of an SVCB/HTTPS record whose target is the owner itself
/// (TargetName "."): hints for another target are that target's addresses, not the owner's.
/// AliasMode records (priority 0) carry none.
fn svcb_hints(msg: &[u8], start: usize, end: usize) -> Option<Vec<IpAddr>> {
    let priority = be16(msg, start)?;
    let (target, mut at) = read_name(msg, start + 2)?;
    if priority == 0 || !target.is_empty() || at > end {
        return Some(Vec::new());
    }
    let mut hints = Vec::new();
    while at + 4 <= end {
        let key = be16(msg, at)?;
        let len = usize::from(be16(msg, at + 2)?);
        let v = msg.get(at + 4..(at + 4).checked_add(len)?.min(end))?;
        match key {
            KEY_IPV4HINT => hints.extend(
                v.chunks_exact(4)
                    .filter_map(|c| <[u8; 4]>::try_from(c).ok())
                    .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            ),
            KEY_IPV6HINT => hints.extend(
                v.chunks_exact(16)
                    .filter_map(|c| <[u8; 16]>::try_from(c).ok())
                    .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            ),
            _ => {}
        }
        at += 4 + len;
    }
    Some(hints)
}

/// Reads the (possibly compressed) name at `at`: the name in lower case without the trailing
/// dot, and the offset just after it in the message (after the first pointer, if any).
pub(crate) fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut wire_len = 0usize;
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(at)?;
        match len >> 6 {
            0 => {
                if len == 0 {
                    return Some((name, after.unwrap_or(at + 1)));
                }
                let label = msg.get(at + 1..at + 1 + usize::from(len))?;
                wire_len += 1 + label.len();
                if wire_len >= MAX_NAME {
                    return None;
                }
                if !name.is_empty() {
                    name.push('.');
                }
                for &b in label {
                    // Names are kept printable: an odd byte becomes '?', never a control character.
                    let c = b.to_ascii_lowercase();
                    name.push(if c.is_ascii_graphic() && c != b'.' {
                        char::from(c)
                    } else {
                        '?'
                    });
                }
                at += 1 + usize::from(len);
            }
            3 => {
                let target = usize::from(be16(msg, at)? & 0x3fff);
                jumps += 1;
                // Only backwards: with MAX_JUMPS this bounds the work on pointer loops.
                if jumps > MAX_JUMPS || target >= at {
                    return None;
                }
                after.get_or_insert(at + 2);
                at = target;
            }
            _ => return None,
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a response: question `q` (type A), then `answers` as (owner, type, rdata).
    pub(crate) fn response(q: &str, answers: &[(&str, u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        m.extend((answers.len() as u16).to_be_bytes());
        m.extend([0, 0, 0, 0]);
        m.extend(encode(q));
        m.extend([0, 1, 0, 1]);
        for (owner, t, rdata) in answers {
            m.extend(encode(owner));
            m.extend(t.to_be_bytes());
            m.extend([0, 1, 0, 0, 0, 60]);
            m.extend((rdata.len() as u16).to_be_bytes());
            m.extend(rdata);
        }
        m
    }

    pub(crate) fn encode(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in name.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend(l.as_bytes());
        }
        v.push(0);
        v
    }

    #[test]
    fn follows_the_cname_chain_to_the_queried_name() {
        let m = response(
            "www.YouTube.com",
            &[
                (
                    "www.youtube.com",
                    TYPE_CNAME,
                    encode("youtube-ui.l.google.com"),
                ),
                ("youtube-ui.l.google.com", TYPE_A, vec![142, 250, 1, 2]),
                ("youtube-ui.l.google.com", TYPE_A, vec![142, 250, 1, 3]),
            ],
        );
        let r = parse_response(&m).unwrap();
        assert_eq!(r.query, "www.youtube.com");
        assert_eq!(
            r.answer_names,
            ["www.youtube.com", "youtube-ui.l.google.com"]
        );
        let a: Vec<String> = r.addresses.iter().map(|(a, _)| a.to_string()).collect();
        assert_eq!(a, ["142.250.1.2", "142.250.1.3"]);
        assert_eq!(r.addresses[0].1, 60);
    }

    #[test]
    fn compressed_names_and_aaaa() {
        // Question at offset 12; the answer's owner is a pointer to it (0xc00c).
        let mut m = response("a.example", &[]);
        m[7] = 1;
        m.extend([0xc0, 0x0c, 0, 28, 0, 1, 0, 0, 1, 0, 0, 16]);
        m.extend(
            [0x20, 0x01, 0x0d, 0xb8]
                .iter()
                .chain([0u8; 11].iter())
                .chain([1u8].iter()),
        );
        let r = parse_response(&m).unwrap();
        assert_eq!(r.answer_names, ["a.example"]);
        assert_eq!(r.addresses, [("2001:db8::1".parse().unwrap(), 256)]);
    }

    #[test]
    fn https_record_hints_belong_to_the_owner() {
        let mut rdata = vec![0, 1, 0]; // priority 1, target "."
        rdata.extend([0, 1, 0, 3, 2, b'h', b'3']); // alpn (ignored)
        rdata.extend([0, 4, 0, 8, 10, 0, 0, 1, 10, 0, 0, 2]);
        let m = response("svc.example", &[("svc.example", TYPE_HTTPS, rdata)]);
        let r = parse_response(&m).unwrap();
        let a: Vec<String> = r.addresses.iter().map(|(a, _)| a.to_string()).collect();
        assert_eq!(a, ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        let mut m = response("x.example", &[]);
        m[7] = 1;
        let here = m.len();
        // A pointer to itself.
        m.extend([
            0xc0 | (here >> 8) as u8,
            here as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            1,
            0,
            4,
            1,
            2,
            3,
            4,
        ]);
        let r = parse_response(&m).unwrap();
        assert!(r.answer_names.is_empty() && r.addresses.is_empty());
        assert!(read_name(&[0xc0, 0x05, 0, 0, 0, 0], 0).is_none());
    }

    #[test]
    fn queries_errors_and_truncations_give_nothing_or_less() {
        let m = response("a.example", &[("a.example", TYPE_A, vec![1, 2, 3, 4])]);
        let mut q = m.clone();
        q[2] &= 0x7f;
        assert_eq!(parse_response(&q), None);
        let mut nx = m.clone();
        nx[3] |= 3;
        assert_eq!(parse_response(&nx), None);
        for cut in 0..m.len() {
            let r = parse_response(&m[..cut]);
            assert!(r.is_none_or(|r| r.addresses.is_empty()), "{cut}");
        }
    }

    #[test]
    fn a_cname_loop_ends() {
        let m = response(
            "a.example",
            &[
                ("a.example", TYPE_CNAME, encode("b.example")),
                ("b.example", TYPE_CNAME, encode("a.example")),
            ],
        );
        assert!(parse_response(&m).unwrap().addresses.is_empty());
    }
}
