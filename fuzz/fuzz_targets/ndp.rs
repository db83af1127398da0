//! ICMPv6 neighbour discovery (RS, RA, NS, NA, echo reply). Input: 16 bytes of IPv6 source
//! address, then the ICMPv6 message.
#![no_main]

use std::net::Ipv6Addr;

use lanmeter::discovery::ndp::parse;
use lanmeter::model::MacAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((addr, icmp)) = input.split_first_chunk::<16>() else {
        return;
    };
    let mut out = Vec::new();
    parse(
        1_700_000_000_000_000_000,
        MacAddr([0x02, 0, 0, 0, 0, 1]),
        Ipv6Addr::from(*addr),
        icmp,
        &mut out,
    );
});
