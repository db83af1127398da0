//! mDNS / DNS-SD messages (the UDP payload), including name decompression.
#![no_main]

use lanmeter::discovery::mdns::parse;
use lanmeter::model::MacAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|msg: &[u8]| {
    let mut out = Vec::new();
    parse(
        1_700_000_000_000_000_000,
        MacAddr([0x02, 0, 0, 0, 0, 1]),
        msg,
        &mut out,
    );
});
