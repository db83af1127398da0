//! The names parsers (issue 29): a DNS response, TLS records and a QUIC datagram from the same
//! bytes, then the whole frame path (Ethernet, IPv4/IPv6, UDP/TCP) with the QUIC reassembly.
#![no_main]

use lanmeter::capture::LinkType;
use lanmeter::names::{Extractor, dns, quic, tls};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dns::parse_response(data);
    let _ = tls::sni_from_records(data);
    let _ = tls::sni_from_handshake(data);
    let mut r = quic::Reassembly::default();
    for i in quic::initials(data) {
        let _ = r.add(1, &i);
    }
    let mut x = Extractor::default();
    let mut out = Vec::new();
    x.frame(LinkType::Ethernet, 0, data, &mut out);
    x.frame(LinkType::LinuxSll2, 0, data, &mut out);
    for e in &out {
        let _ = e.learned();
    }
});
