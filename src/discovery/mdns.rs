//! Passive mDNS / DNS-SD learning, and the DNS wire-format name reader it rests on.
//!
//! Pure: a DNS message in, observations about its sender out. It owns name decompression with
//! loop protection (every compression pointer must point strictly before everything read so far,
//! and a name is at most 255 bytes), which the DHCP FQDN options reuse. It must never follow a
//! pointer forwards, read past the message, or attribute a querier's known answers (records it
//! heard from others) to the querier.

use super::observe::{Fact, NameSource, Observation, push, useful_v4, useful_v6};
use super::text;
use crate::model::{MacAddr, TimestampNs};
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 1035: a name is at most 255 bytes on the wire (labels plus length bytes).
const MAX_NAME_WIRE: usize = 255;
/// Records read from one message: a real announcement has a few dozen at most.
const MAX_RECORDS: usize = 128;

/// The labels of a name and the offset just after it where it started (not where pointers led).
pub(crate) struct Name<'a> {
    pub labels: Vec<&'a [u8]>,
    pub end: usize,
}

impl Name<'_> {
    /// Escaped labels joined with '.'; a '.' inside a label is escaped so the join stays lossless.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (i, l) in self.labels.iter().enumerate() {
            if i > 0 {
                s.push('.');
            }
            s.push_str(&text::escape(l).replace('.', "\\x2e"));
        }
        s
    }

    fn ends_with_ci(&self, suffix: &[&str]) -> bool {
        self.labels.len() >= suffix.len()
            && self.labels[self.labels.len() - suffix.len()..]
                .iter()
                .zip(suffix)
                .all(|(l, s)| l.eq_ignore_ascii_case(s.as_bytes()))
    }

    /// `host` for `host.local` (one label before `local`), escaped.
    fn local_host(&self) -> Option<String> {
        (self.labels.len() == 2 && self.ends_with_ci(&["local"])).then(|| {
            Name {
                labels: vec![self.labels[0]],
                end: 0,
            }
            .to_text()
        })
    }
}

/// Reads the (possibly compressed) name at `pos` in `msg`. `None` on anything malformed: a
/// pointer that does not point strictly before the lowest offset read so far (which is what
/// makes every chain finite), a label past the end, a reserved label type, or a name over 255
/// bytes.
pub(crate) fn read_name(msg: &[u8], pos: usize) -> Option<Name<'_>> {
    let mut labels = Vec::new();
    let mut at = pos;
    let mut lowest = pos;
    let mut end = None;
    let mut wire = 0usize;
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Some(Name {
                        labels,
                        end: end.unwrap_or(at + 1),
                    });
                }
                let l = msg.get(at + 1..at + 1 + usize::from(len))?;
                wire += 1 + l.len();
                if wire + 1 > MAX_NAME_WIRE {
                    return None;
                }
                labels.push(l);
                at += 1 + usize::from(len);
            }
            0xc0 => {
                let target = usize::from(u16::from_be_bytes([len & 0x3f, *msg.get(at + 1)?]));
                if end.is_none() {
                    end = Some(at + 2);
                }
                if target >= lowest {
                    return None;
                }
                lowest = target;
                at = target;
            }
            // 0x40 (extended) and 0x80 (reserved) label types are not used by anyone.
            _ => return None,
        }
    }
}

/// Reads an mDNS message sent by `src_mac` from `src_ip`.
///
/// Responses (QR set): answers and additional records describe the sender. Queries: only the
/// authority section (a probe's proposed records) does; their answer section lists what the
/// querier already heard from *other* hosts.
pub fn parse(ts: TimestampNs, src_mac: MacAddr, msg: &[u8], out: &mut Vec<Observation>) {
    let Some(h) = msg.get(..12) else { return };
    let be = |i: usize| usize::from(u16::from_be_bytes([h[i], h[i + 1]]));
    let response = h[2] & 0x80 != 0;
    let (qd, an, ns, ar) = (be(4), be(6), be(8), be(10));
    let mut at = 12;
    for _ in 0..qd.min(MAX_RECORDS) {
        let Some(n) = read_name(msg, at) else { return };
        at = n.end + 4;
    }
    let mut read = 0;
    for (section, count) in [(1, an), (2, ns), (3, ar)] {
        for _ in 0..count {
            read += 1;
            if read > MAX_RECORDS {
                return;
            }
            let Some(rr) = read_record(msg, at) else {
                return;
            };
            at = rr.next;
            let about_sender = if response { section != 2 } else { section == 2 };
            if about_sender {
                record_facts(ts, src_mac, msg, &rr, out);
            }
        }
    }
}

struct Record<'a> {
    name: Name<'a>,
    rtype: u16,
    rdata_at: usize,
    rdata: &'a [u8],
    next: usize,
}

fn read_record(msg: &[u8], at: usize) -> Option<Record<'_>> {
    let name = read_name(msg, at)?;
    let f = msg.get(name.end..name.end + 10)?;
    let rtype = u16::from_be_bytes([f[0], f[1]]);
    let rdlen = usize::from(u16::from_be_bytes([f[8], f[9]]));
    let rdata_at = name.end + 10;
    let rdata = msg.get(rdata_at..rdata_at + rdlen)?;
    Some(Record {
        next: rdata_at + rdlen,
        name,
        rtype,
        rdata_at,
        rdata,
    })
}

fn record_facts(
    ts: TimestampNs,
    mac: MacAddr,
    msg: &[u8],
    rr: &Record<'_>,
    out: &mut Vec<Observation>,
) {
    match rr.rtype {
        // A
        1 if rr.rdata.len() == 4 => {
            let ip = Ipv4Addr::new(rr.rdata[0], rr.rdata[1], rr.rdata[2], rr.rdata[3]);
            if useful_v4(ip) {
                push(out, ts, mac, Fact::Ipv4(ip));
            }
            if let Some(h) = rr.name.local_host() {
                push(out, ts, mac, Fact::Hostname(NameSource::Mdns, h));
            }
        }
        // AAAA
        28 if rr.rdata.len() == 16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(rr.rdata);
            let ip = Ipv6Addr::from(b);
            if useful_v6(ip) {
                push(out, ts, mac, Fact::Ipv6(ip));
            }
            if let Some(h) = rr.name.local_host() {
                push(out, ts, mac, Fact::Hostname(NameSource::Mdns, h));
            }
        }
        // PTR
        12 => {
            let Some(target) = read_name(msg, rr.rdata_at) else {
                return;
            };
            if rr.name.ends_with_ci(&["in-addr", "arpa"]) || rr.name.ends_with_ci(&["ip6", "arpa"])
            {
                if let Some(h) = target.local_host() {
                    push(out, ts, mac, Fact::Hostname(NameSource::Mdns, h));
                }
            } else if rr
                .name
                .ends_with_ci(&["_services", "_dns-sd", "_udp", "local"])
            {
                if let Some(s) = service_type(&target) {
                    push(out, ts, mac, Fact::Service(s));
                }
            } else if let Some(s) = service_type(&rr.name) {
                push(out, ts, mac, Fact::Service(s));
            }
        }
        // SRV: the target is the host name; the owner is "Instance._service._proto.local".
        33 => {
            if let Some(target) = read_name(msg, rr.rdata_at + 6)
                && let Some(h) = target.local_host()
            {
                push(out, ts, mac, Fact::Hostname(NameSource::Mdns, h));
            }
            let l = &rr.name.labels;
            if l.len() == 4 && service_type(&rr.name).is_some() {
                push(
                    out,
                    ts,
                    mac,
                    Fact::Hostname(NameSource::MdnsInstance, text::escape(l[0])),
                );
            }
            if let Some(s) = service_type(&rr.name) {
                push(out, ts, mac, Fact::Service(s));
            }
        }
        _ => {}
    }
}

/// `_svc._tcp` from a name ending in `_svc._tcp.local` (or `_udp`), with or without an instance
/// label or a `_sub` subtype in front.
fn service_type(n: &Name<'_>) -> Option<String> {
    let l = &n.labels;
    if l.len() < 3 || !l[l.len() - 1].eq_ignore_ascii_case(b"local") {
        return None;
    }
    let proto = l[l.len() - 2];
    let svc = l[l.len() - 3];
    let is_proto = proto.eq_ignore_ascii_case(b"_tcp") || proto.eq_ignore_ascii_case(b"_udp");
    if !is_proto || svc.first() != Some(&b'_') || svc.len() < 2 {
        return None;
    }
    Some(format!(
        "{}.{}",
        text::escape(svc).to_ascii_lowercase(),
        text::escape(proto).to_ascii_lowercase()
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Appends `name` in wire format (uncompressed).
    pub(crate) fn put_name(m: &mut Vec<u8>, name: &[&[u8]]) {
        for l in name {
            m.push(l.len() as u8);
            m.extend_from_slice(l);
        }
        m.push(0);
    }

    fn put_rr(m: &mut Vec<u8>, rtype: u16, rdata: &[u8]) {
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0x80, 0x01, 0, 0, 0x11, 0x94]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }

    /// A response announcing `host.local` A, a service PTR and SRV, with compression.
    pub(crate) fn announcement(host: &[u8], ip: [u8; 4]) -> Vec<u8> {
        let mut m = vec![0, 0, 0x84, 0, 0, 0, 0, 3, 0, 0, 0, 0];
        let host_at = m.len();
        put_name(&mut m, &[host, b"local"]);
        put_rr(&mut m, 1, &ip);
        let svc_at = m.len();
        put_name(&mut m, &[b"_airplay", b"_tcp", b"local"]);
        // PTR _airplay._tcp.local -> "Living Room"._airplay._tcp.local (compressed)
        let mut inst = vec![11];
        inst.extend_from_slice(b"Living Room");
        inst.extend_from_slice(&[0xc0, svc_at as u8]);
        put_rr(&mut m, 12, &inst);
        // The SRV owner: the instance label, then a pointer to the service type.
        m.extend_from_slice(&inst);
        let mut srv = vec![0, 0, 0, 0, 0x1b, 0x58];
        srv.extend_from_slice(&[0xc0, host_at as u8]);
        put_rr(&mut m, 33, &srv);
        m
    }

    fn facts(msg: &[u8]) -> Vec<Fact> {
        let mut out = Vec::new();
        parse(1, MacAddr([2, 0, 0, 0, 0, 1]), msg, &mut out);
        out.into_iter().map(|o| o.fact).collect()
    }

    #[test]
    fn announcement_gives_host_address_service_and_instance() {
        let f = facts(&announcement(b"tv", [192, 168, 1, 40]));
        assert!(
            f.contains(&Fact::Ipv4(Ipv4Addr::new(192, 168, 1, 40))),
            "{f:?}"
        );
        assert!(f.contains(&Fact::Hostname(NameSource::Mdns, "tv".into())));
        assert!(f.contains(&Fact::Service("_airplay._tcp".into())));
        assert!(f.contains(&Fact::Hostname(
            NameSource::MdnsInstance,
            "Living Room".into()
        )));
    }

    #[test]
    fn a_querys_known_answers_are_not_the_queriers() {
        let mut m = announcement(b"tv", [192, 168, 1, 40]);
        m[2] = 0; // a query
        assert!(facts(&m).is_empty());
    }

    #[test]
    fn compression_loops_and_forward_pointers_are_refused() {
        // A pointer to itself, a pointer forwards, and a two-pointer cycle.
        let mut self_loop = vec![0u8; 12];
        self_loop.extend_from_slice(&[0xc0, 12]);
        assert!(read_name(&self_loop, 12).is_none());
        let fwd = [0xc0u8, 2, 0];
        assert!(read_name(&fwd, 0).is_none());
        // label "a" at 0, pointer at 2 -> 0: reading from 2 jumps to 0, reads "a", meets the
        // pointer at 2 again: must stop, since 0 is not strictly below the lowest offset (0).
        let cycle = [1u8, b'a', 0xc0, 0];
        assert!(read_name(&cycle, 2).is_none());
        // A legitimate backward pointer works.
        let ok = [1u8, b'a', 0, 1, b'b', 0xc0, 0];
        let n = read_name(&ok, 3).unwrap();
        assert_eq!(n.to_text(), "b.a");
        assert_eq!(n.end, 7);
    }

    #[test]
    fn names_over_255_bytes_are_refused() {
        let mut m = Vec::new();
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.push(0);
        assert!(read_name(&m, 0).is_none());
    }

    #[test]
    fn hostile_host_names_are_escaped_never_dropped() {
        for host in [
            &b"<script>alert(1)</script>"[..],
            b"a\0b\"c'",
            b"\xff\xfebad",
            &[b'z'; 63],
        ] {
            let f = facts(&announcement(host, [10, 0, 0, 9]));
            let name = f.iter().find_map(|f| match f {
                Fact::Hostname(NameSource::Mdns, n) => Some(n.clone()),
                _ => None,
            });
            let name = name.expect("a host name");
            assert_eq!(text::unescape(&name), host);
            assert!(!name.chars().any(char::is_control));
        }
    }

    #[test]
    fn every_truncation_of_an_announcement_is_harmless() {
        let m = announcement(b"tv", [192, 168, 1, 40]);
        for n in 0..m.len() {
            let _ = facts(&m[..n]);
        }
        // And every single-byte corruption.
        for i in 0..m.len() {
            for v in [0u8, 0xc0, 0xff, 0x3f] {
                let mut c = m.clone();
                c[i] = v;
                let _ = facts(&c);
            }
        }
    }
}
