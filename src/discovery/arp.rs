//! Passive ARP learning: who claims which IPv4 address (requests, replies, probes, gratuitous).
//!
//! Pure: bytes of an ARP packet in, observations out. It must never trust a field it has not
//! bounds-checked, and never attribute anything to a group or zero MAC.

use super::observe::{Fact, Observation, push, useful_v4};
use crate::model::{MacAddr, TimestampNs};
use std::net::Ipv4Addr;

/// Reads an Ethernet/IPv4 ARP packet (`arp` starts at the ARP header). The sender is the device
/// speaking; a probe (sender address 0.0.0.0) still shows it is present.
pub fn parse(ts: TimestampNs, arp: &[u8], out: &mut Vec<Observation>) {
    let Some(h) = arp.get(..28) else { return };
    // htype Ethernet, ptype IPv4, hlen 6, plen 4: anything else is not an address claim we use.
    if h[0..2] != [0, 1] || h[2..4] != [0x08, 0x00] || h[4] != 6 || h[5] != 4 {
        return;
    }
    let op = u16::from_be_bytes([h[6], h[7]]);
    if op != 1 && op != 2 {
        return;
    }
    let mut m = [0u8; 6];
    m.copy_from_slice(&h[8..14]);
    let sender = MacAddr(m);
    let sender_ip = Ipv4Addr::new(h[14], h[15], h[16], h[17]);
    if useful_v4(sender_ip) {
        push(out, ts, sender, Fact::Ipv4(sender_ip));
    } else {
        push(out, ts, sender, Fact::Seen);
    }
}

/// Builds a broadcast ARP request (60 bytes, padded) asking who has `target`.
pub fn request(src_mac: MacAddr, src_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&src_mac.0);
    f[28..32].copy_from_slice(&src_ip.octets());
    f[38..42].copy_from_slice(&target.octets());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_reply_and_probe() {
        let me = MacAddr([0xdc, 0xa6, 0x32, 1, 2, 3]);
        let req = request(
            me,
            Ipv4Addr::new(192, 168, 1, 5),
            Ipv4Addr::new(192, 168, 1, 9),
        );
        let mut out = Vec::new();
        parse(7, &req[14..], &mut out);
        assert_eq!(
            out,
            [Observation {
                ts: 7,
                mac: me,
                fact: Fact::Ipv4(Ipv4Addr::new(192, 168, 1, 5))
            }]
        );
        // A probe: sender IP 0.0.0.0, presence only.
        let probe = request(me, Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(192, 168, 1, 9));
        out.clear();
        parse(8, &probe[14..], &mut out);
        assert_eq!(out[0].fact, Fact::Seen);
        // Reply op 2 is read the same way.
        let mut reply = req;
        reply[21] = 2;
        out.clear();
        parse(9, &reply[14..], &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn truncated_foreign_and_broadcast_sender_give_nothing() {
        let me = MacAddr([0xdc, 0xa6, 0x32, 1, 2, 3]);
        let req = request(me, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut out = Vec::new();
        for n in 0..28 {
            parse(0, &req[14..14 + n], &mut out);
        }
        let mut bad = req;
        bad[18] = 16; // hlen 16
        parse(0, &bad[14..], &mut out);
        let mut bcast = req;
        bcast[22..28].copy_from_slice(&[0xff; 6]);
        parse(0, &bcast[14..], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
