//! DHCPv4 and DHCPv6 messages (the UDP payload). Selector byte: even = v4, odd = v6.
#![no_main]

use lanmeter::discovery::dhcp::{parse_v4, parse_v6};
use lanmeter::model::MacAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&sel, msg)) = input.split_first() else {
        return;
    };
    let src = MacAddr([0x02, 0, 0, 0, 0, 1]);
    let dst = MacAddr([0x02, 0, 0, 0, 0, 2]);
    let mut out = Vec::new();
    if sel % 2 == 0 {
        parse_v4(1_700_000_000_000_000_000, src, msg, &mut out);
    } else {
        parse_v6(1_700_000_000_000_000_000, src, dst, msg, &mut out);
    }
});
