//! Passive IPv6 neighbour discovery learning: which MAC uses which IPv6 address (NS, NA, RS,
//! echo replies to our all-nodes ping) and who advertises routes (RA).
//!
//! Pure: an ICMPv6 message in, observations out. A link-layer address option, when present,
//! names the MAC (it is what neighbours will use); otherwise the frame's source. It must never
//! attribute an address it did not see claimed, nor read past an option.

use super::observe::{Fact, Observation, push, useful_v6};
use crate::model::{MacAddr, TimestampNs};
use std::net::Ipv6Addr;

const RS: u8 = 133;
const RA: u8 = 134;
const NS: u8 = 135;
const NA: u8 = 136;
const ECHO_REPLY: u8 = 129;

/// Reads an ICMPv6 message sent from `src` (IPv6) by `eth_src`.
pub fn parse(
    ts: TimestampNs,
    eth_src: MacAddr,
    src: Ipv6Addr,
    icmp: &[u8],
    out: &mut Vec<Observation>,
) {
    let Some(&kind) = icmp.first() else { return };
    let opts_at = match kind {
        RS => 8,
        RA => 16,
        NS | NA => 24,
        ECHO_REPLY => {
            if useful_v6(src) {
                push(out, ts, eth_src, Fact::Ipv6(src));
            } else {
                push(out, ts, eth_src, Fact::Seen);
            }
            return;
        }
        _ => return,
    };
    if icmp.len() < opts_at {
        return;
    }
    // Source (1) or target (2) link-layer address option: the MAC the sender speaks for.
    let want_opt = if kind == NA { 2 } else { 1 };
    let mac = ll_option(&icmp[opts_at..], want_opt).unwrap_or(eth_src);
    match kind {
        NS | NA => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&icmp[8..24]);
            let target = Ipv6Addr::from(b);
            // An NA announces the target; an NS from an address shows that address. A
            // duplicate-address probe (from ::) shows the address the sender is about to use.
            let claimed = if kind == NA || src.is_unspecified() {
                target
            } else {
                src
            };
            if useful_v6(claimed) {
                push(out, ts, mac, Fact::Ipv6(claimed));
            } else {
                push(out, ts, mac, Fact::Seen);
            }
        }
        RS => {
            if useful_v6(src) {
                push(out, ts, mac, Fact::Ipv6(src));
            } else {
                push(out, ts, mac, Fact::Seen);
            }
        }
        RA => {
            push(out, ts, mac, Fact::Router);
            if useful_v6(src) {
                push(out, ts, mac, Fact::Ipv6(src));
            }
        }
        _ => {}
    }
}

fn ll_option(mut opts: &[u8], want: u8) -> Option<MacAddr> {
    // Every option is at least 8 bytes (length in units of 8, never 0), so this loop ends.
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == want && len >= 8 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&opts[2..8]);
            return Some(MacAddr(m));
        }
        opts = &opts[len..];
    }
    None
}

/// ICMPv6 echo request from `src_mac`/`src_ip` to all-nodes (ff02::1): the ping that makes every
/// IPv6 host on the link answer. A complete Ethernet frame with a valid checksum.
pub fn all_nodes_ping(src_mac: MacAddr, src_ip: Ipv6Addr, id: u16, seq: u16) -> Vec<u8> {
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = vec![128, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"lanmeter");
    let sum = icmpv6_checksum(src_ip, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    f
}

fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: MacAddr = MacAddr([0xdc, 0xa6, 0x32, 0, 0, 9]);

    fn na(target: Ipv6Addr, opt_mac: Option<MacAddr>) -> Vec<u8> {
        let mut m = vec![NA, 0, 0, 0, 0x60, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        if let Some(o) = opt_mac {
            m.extend_from_slice(&[2, 1]);
            m.extend_from_slice(&o.0);
        }
        m
    }

    #[test]
    fn na_ns_ra_and_echo_reply() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let g: Ipv6Addr = "2001:db8::9".parse().unwrap();
        let mut out = Vec::new();
        let other = MacAddr([2, 0, 0, 0, 0, 7]);
        parse(1, DEV, ll, &na(g, Some(other)), &mut out);
        assert_eq!((out[0].mac, &out[0].fact), (other, &Fact::Ipv6(g)));
        out.clear();
        // DAD probe: from ::, the target is what the sender will use.
        let mut ns = na(g, None);
        ns[0] = NS;
        parse(2, DEV, Ipv6Addr::UNSPECIFIED, &ns, &mut out);
        assert_eq!(out[0].fact, Fact::Ipv6(g));
        out.clear();
        let ra = [RA, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        parse(3, DEV, ll, &ra, &mut out);
        assert_eq!(out[0].fact, Fact::Router);
        assert_eq!(out[1].fact, Fact::Ipv6(ll));
        out.clear();
        parse(4, DEV, g, &[ECHO_REPLY, 0, 0, 0, 0, 1, 0, 1], &mut out);
        assert_eq!(out[0].fact, Fact::Ipv6(g));
    }

    #[test]
    fn zero_length_and_truncated_options_are_safe() {
        let g: Ipv6Addr = "2001:db8::9".parse().unwrap();
        let mut m = na(g, None);
        m.extend_from_slice(&[2, 0, 1, 2, 3, 4, 5, 6]);
        let mut out = Vec::new();
        parse(1, DEV, g, &m, &mut out);
        assert_eq!(out[0].mac, DEV);
        for n in 0..m.len() {
            parse(1, DEV, g, &m[..n], &mut out);
        }
    }

    #[test]
    fn all_nodes_ping_checksum_verifies() {
        let src: Ipv6Addr = "fe80::dea6:32ff:fe00:9".parse().unwrap();
        let f = all_nodes_ping(DEV, src, 1, 2);
        let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        assert_eq!(icmpv6_checksum(src, dst, &f[54..]), 0);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    }
}
