//! ARP packets (the Ethernet payload).
#![no_main]

use lanmeter::discovery::arp::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|arp: &[u8]| {
    let mut out = Vec::new();
    parse(1_700_000_000_000_000_000, arp, &mut out);
});
