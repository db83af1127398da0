//! The Wi-Fi survey's decoders: radiotap headers, 802.11 frames and their information elements.
//! Selector byte: even = radiotap + 802.11 (DLT 127), odd = bare 802.11 (DLT 105).
#![no_main]

use lanmeter::capture::ieee80211::{Elements, WifiFrame, WifiLink, decode_into};
use lanmeter::capture::radiotap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&sel, data)) = input.split_first() else {
        return;
    };
    let link = if sel % 2 == 0 {
        if let Some(rt) = radiotap::parse(data) {
            let _ = rt.airtime_us(data.len() as u32);
            let _ = rt.airtime_us(u32::MAX);
        }
        WifiLink::Radiotap
    } else {
        let _ = Elements::parse(data);
        WifiLink::Ieee80211
    };
    let mut out = WifiFrame::EMPTY;
    let _ = decode_into(
        link,
        1_700_000_000_000_000_000,
        data,
        data.len() as u32,
        &mut out,
    );
});
