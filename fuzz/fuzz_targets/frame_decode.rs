//! Frame decode for every link type accounting accepts. Input: one selector byte (link type),
//! then the captured bytes. The wire length is varied too: the decoder must not trust it.
#![no_main]

use lanmeter::capture::decode::{LinkType, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&sel, data)) = input.split_first() else {
        return;
    };
    let link = match sel % 3 {
        0 => LinkType::Ethernet,
        1 => LinkType::LinuxSll,
        _ => LinkType::LinuxSll2,
    };
    // The high bits pick a wire length that is equal to, shorter or much longer than the data.
    let len = data.len() as u32;
    let wire_len = match sel >> 6 {
        0 => len,
        1 => len / 2,
        2 => len.saturating_add(65_000),
        _ => u32::MAX,
    };
    let _ = decode(link, i64::from(sel) * 1_000_000_007, data, wire_len);
});
