//! Discovery's frame entry point (link header, VLAN tags, IPv4/IPv6, UDP, ICMPv6, ARP), which
//! hands payloads to the DHCP, mDNS, NDP and ARP parsers the way capture does.
#![no_main]

use lanmeter::capture::decode::LinkType;
use lanmeter::discovery::wire::{learn, maybe_discovery};
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
    let _ = maybe_discovery(link, data);
    let mut out = Vec::new();
    learn(link, 1_700_000_000_000_000_000, data, &mut out);
});
