//! Passive latency (issue 27): the time from a device's TCP SYN to the SYN-ACK coming back from
//! the internet, measured on frames capture already sees, kept per minute as a fixed-bucket
//! histogram. Nothing is stored per connection.
//!
//! This runs inside the meter (the packet path): a fixed table of pending SYNs (set-associative,
//! allocated once, oldest evicted and counted) and a fixed array of buckets; no allocation per
//! packet apart from one histogram per finished minute, no I/O, no locks of its own.

use crate::capture::decode::{Frame, IpPair, Tcp};
use crate::meter::Locality;
use crate::model::{MacAddr, TimestampNs, minute_of};
use std::hash::BuildHasher;

/// Pending SYNs remembered at most (a household opens a few hundred connections a second at
/// most; a SYN flood evicts the oldest, which are counted).
pub const TABLE_ENTRIES: usize = 4096;
const WAYS: usize = 4;
const SETS: usize = TABLE_ENTRIES / WAYS;
/// A SYN unanswered this long is forgotten (TCP gives up on a SYN long before a minute, and an
/// answer after this would be no latency worth charting).
const STALE_NS: i64 = 30_000_000_000;
/// Two copies of one SYN closer than this are the same packet captured twice (on two
/// interfaces of a router, say), not a retransmission.
const DUPLICATE_NS: i64 = 1_000_000;

/// Sub-buckets per power of two: a bucket is at most 1/32 (3 %) of its value wide, so a
/// reported 40 ms is within 0.7 ms of what was measured.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two above the linear range covered: up to 2^(SUB_BITS+LEVELS) µs ≈ 67 s.
const LEVELS: usize = 21;
pub const BUCKETS: usize = SUB + LEVELS * SUB;

/// The bucket of a latency in microseconds: exact below 32 µs, then 32 per power of two.
#[inline]
fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let top = 63 - us.leading_zeros(); // >= SUB_BITS
    let level = (top - SUB_BITS) as usize;
    let sub = ((us >> (top - SUB_BITS)) as usize) & (SUB - 1);
    (SUB + level * SUB + sub).min(BUCKETS - 1)
}

/// The middle of a bucket, in microseconds.
fn bucket_mid(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let level = ((b - SUB) / SUB) as u32;
    let sub = ((b - SUB) % SUB) as u64;
    let low = (SUB as u64 + sub) << level;
    low + ((1u64 << level) >> 1)
}

/// One minute (or, per device, one hour) of handshake latencies.
#[derive(Clone)]
pub struct Histogram {
    pub minute: i64,
    counts: [u32; BUCKETS],
    n: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("minute", &self.minute)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl Histogram {
    pub fn new(minute: i64) -> Histogram {
        Histogram {
            minute,
            counts: [0; BUCKETS],
            n: 0,
        }
    }

    #[inline]
    pub fn add(&mut self, us: u64) {
        self.counts[bucket_of(us)] += 1;
        self.n += 1;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// The q-quantile (0..=1) in microseconds, `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                return Some(bucket_mid(b));
            }
        }
        None
    }

    /// Adds another histogram's counts (the same buckets, any period).
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.n += other.n;
    }

    /// The non-empty buckets as LEB128 varint pairs (gap from the previous bucket, count): a
    /// device's hour of handshakes spreads over a few dozen buckets, so tens of bytes, and
    /// hours stored this way can be merged exactly later (a median of medians could not).
    pub fn to_sparse(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = 0usize;
        for (b, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                varint(&mut out, (b - prev) as u64);
                varint(&mut out, c as u64);
                prev = b;
            }
        }
        out
    }

    /// Adds counts encoded by [`Histogram::to_sparse`]; `false` (and nothing added past the
    /// damage) when the bytes are not such an encoding.
    pub fn add_sparse(&mut self, mut bytes: &[u8]) -> bool {
        let mut b = 0usize;
        while !bytes.is_empty() {
            let (Some(gap), Some(c)) = (read_varint(&mut bytes), read_varint(&mut bytes)) else {
                return false;
            };
            b = b.saturating_add(gap as usize);
            let (Some(slot), Ok(c)) = (self.counts.get_mut(b), u32::try_from(c)) else {
                return false;
            };
            *slot = slot.saturating_add(c);
            self.n += c as u64;
        }
        true
    }

    pub fn summary(&self) -> PassiveMinute {
        PassiveMinute {
            minute: self.minute,
            handshakes: self.n as i64,
            median_us: self.quantile_us(0.5).map(|v| v as i64),
            p95_us: self.quantile_us(0.95).map(|v| v as i64),
        }
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// What is stored per minute: the household's handshakes and their median and 95th percentile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PassiveMinute {
    pub minute: i64,
    pub handshakes: i64,
    pub median_us: Option<i64>,
    pub p95_us: Option<i64>,
}

/// Counters of what the tracker saw, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassiveStats {
    pub syns: u64,
    pub samples: u64,
    /// Pending SYNs pushed out by newer ones because their set was full.
    pub evicted: u64,
    /// Handshakes whose SYN was sent again: which copy was answered is unknown (Karn's rule).
    pub retransmitted: u64,
    /// Samples not kept per device because every device slot was taken (the household's
    /// distribution still has them).
    pub device_overflow: u64,
}

/// Device slots between two takes (one per device and hour with a handshake). The flusher
/// takes every few minutes, so this is the number of devices making connections to the
/// internet in one flush interval; past it the samples count for the household only.
pub const DEVICE_SLOTS: usize = 64;

/// One device's handshakes in one hour, since the last take: what the flusher folds into the
/// device's stored hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceHour {
    pub mac: MacAddr,
    /// Start of the hour, Unix seconds.
    pub hour: i64,
    pub handshakes: u64,
    /// The histogram in [`Histogram::to_sparse`] form.
    pub buckets: Vec<u8>,
}

#[derive(Clone, Copy, Default)]
struct Pending {
    /// 0 = empty slot.
    ts: TimestampNs,
    client: u128,
    server: u128,
    ports: u32,
    seq: u32,
    /// The SYN's source MAC (the device), as [`MacAddr::to_u64`]: taken from the SYN rather
    /// than the SYN-ACK because a router capturing on both sides sees the SYN-ACK first with
    /// its own WAN MAC as destination.
    mac: u64,
    /// The SYN was seen again later: no sample from this handshake.
    ambiguous: bool,
}

/// A device slot: `mac` 0 is free (no real MAC is all zeros); `hist.minute` holds the hour.
struct DeviceSlot {
    mac: u64,
    hist: Histogram,
}

/// The SYN table and the per-minute histograms.
pub struct Handshakes {
    table: Box<[Pending]>,
    key: u64,
    current: Histogram,
    finished: Vec<Histogram>,
    /// Allocated once; emptied at each take.
    devices: Box<[DeviceSlot]>,
    stats: PassiveStats,
}

impl Default for Handshakes {
    fn default() -> Self {
        Handshakes::new()
    }
}

impl Handshakes {
    pub fn new() -> Handshakes {
        // A per-process hash key, so that a crafted SYN flood cannot aim at one set.
        let key = std::collections::hash_map::RandomState::new().hash_one(0x7379_6e61_636bu64) | 1;
        Handshakes {
            table: vec![Pending::default(); TABLE_ENTRIES].into_boxed_slice(),
            key,
            current: Histogram::new(i64::MIN),
            finished: Vec::new(),
            devices: (0..DEVICE_SLOTS)
                .map(|_| DeviceSlot {
                    mac: 0,
                    hist: Histogram::new(0),
                })
                .collect(),
            stats: PassiveStats::default(),
        }
    }

    pub fn stats(&self) -> PassiveStats {
        self.stats
    }

    #[inline]
    fn set_of(&self, client: u128, server: u128, ports: u32) -> usize {
        let x = (client as u64)
            ^ ((client >> 64) as u64).rotate_left(17)
            ^ (server as u64).rotate_left(31)
            ^ ((server >> 64) as u64).rotate_left(47)
            ^ ports as u64;
        let h = (x ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((h >> 32) as usize) & (SETS - 1)
    }

    /// [`Handshakes::observe`] classifying the addresses itself (tests, tools).
    pub fn observe_frame(&mut self, f: &Frame, locality: &Locality) {
        let (src_local, dst_local) = match f.ip {
            IpPair::V4 { src, dst } => (locality.is_local_v4(src), locality.is_local_v4(dst)),
            IpPair::V6 { src, dst } => (locality.is_local_v6(src), locality.is_local_v6(dst)),
            IpPair::None => return,
        };
        self.observe(f, src_local, dst_local);
    }

    /// Looks at one frame whose endpoints the meter already classified; only TCP SYNs from a
    /// local to a non-local address and SYN-ACKs coming back matter.
    #[inline]
    pub fn observe(&mut self, f: &Frame, src_local: bool, dst_local: bool) {
        let Some(t) = f.tcp else { return };
        if t.flags & Tcp::SYN == 0 || src_local == dst_local {
            return;
        }
        let (src, dst) = match f.ip {
            IpPair::V4 { src, dst } => (src as u128, dst as u128),
            IpPair::V6 { src, dst } => (src, dst),
            IpPair::None => return,
        };
        if t.flags & (Tcp::ACK | Tcp::RST) == 0 {
            if src_local {
                self.syn(f.ts, src, dst, t, f.src.to_u64());
            }
        } else if t.flags & Tcp::ACK != 0 && dst_local {
            self.syn_ack(f.ts, dst, src, t);
        }
    }

    fn syn(&mut self, ts: TimestampNs, client: u128, server: u128, t: Tcp, mac: u64) {
        self.stats.syns += 1;
        let ports = (t.src_port as u32) << 16 | t.dst_port as u32;
        let set = self.set_of(client, server, ports) * WAYS;
        let ways = &mut self.table[set..set + WAYS];
        let mut free = None;
        let (mut oldest, mut oldest_ts) = (0, TimestampNs::MAX);
        for (i, p) in ways.iter_mut().enumerate() {
            if p.ts != 0 && p.client == client && p.server == server && p.ports == ports {
                if p.seq == t.seq {
                    if ts - p.ts >= DUPLICATE_NS && !p.ambiguous {
                        p.ambiguous = true;
                        self.stats.retransmitted += 1;
                    }
                    return;
                }
                // Same four-tuple, new sequence number: a new connection reusing the port.
                free = Some(i);
                break;
            }
            if p.ts == 0 || ts - p.ts > STALE_NS {
                free.get_or_insert(i);
            } else if p.ts < oldest_ts {
                (oldest, oldest_ts) = (i, p.ts);
            }
        }
        let slot = match free {
            Some(i) => i,
            None => {
                self.stats.evicted += 1;
                oldest
            }
        };
        ways[slot] = Pending {
            ts: ts.max(1),
            client,
            server,
            ports,
            seq: t.seq,
            mac,
            ambiguous: false,
        };
    }

    fn syn_ack(&mut self, ts: TimestampNs, client: u128, server: u128, t: Tcp) {
        // The SYN-ACK's ports are the SYN's swapped.
        let ports = (t.dst_port as u32) << 16 | t.src_port as u32;
        let set = self.set_of(client, server, ports) * WAYS;
        let Some(p) = self.table[set..set + WAYS].iter_mut().find(|p| {
            p.ts != 0
                && p.client == client
                && p.server == server
                && p.ports == ports
                && p.seq.wrapping_add(1) == t.ack
        }) else {
            return;
        };
        let (syn_ts, ambiguous, mac) = (p.ts, p.ambiguous, p.mac);
        *p = Pending::default();
        if ambiguous || ts < syn_ts {
            return;
        }
        let minute = minute_of(ts);
        if minute != self.current.minute {
            let done = std::mem::replace(&mut self.current, Histogram::new(minute));
            if done.n > 0 {
                self.finished.push(done);
            }
        }
        let us = ((ts - syn_ts) / 1_000) as u64;
        self.current.add(us);
        self.stats.samples += 1;
        self.device_sample(mac, minute - minute.rem_euclid(3600), us);
    }

    /// Adds a sample to the device's slot for the hour, taking a free slot if it has none.
    fn device_sample(&mut self, mac: u64, hour: i64, us: u64) {
        let mut free = None;
        for (i, d) in self.devices.iter_mut().enumerate() {
            if d.mac == mac && d.hist.minute == hour {
                d.hist.add(us);
                return;
            }
            if d.mac == 0 && free.is_none() {
                free = Some(i);
                // Slots fill from the front and are emptied all at once: none is used after.
                break;
            }
        }
        match free {
            Some(i) => {
                let d = &mut self.devices[i];
                d.mac = mac;
                d.hist.minute = hour;
                d.hist.add(us);
            }
            None => self.stats.device_overflow += 1,
        }
    }

    /// Finished minutes (moved out) and the current one so far (copied): the flusher writes each
    /// as a row, replacing the current minute's row at every flush until the minute is over.
    pub fn take(&mut self) -> Vec<PassiveMinute> {
        let mut out: Vec<PassiveMinute> = self.finished.drain(..).map(|h| h.summary()).collect();
        if self.current.n > 0 {
            out.push(self.current.summary());
        }
        out
    }

    /// Each device's samples since the last call, per hour (moved out: the store adds them to
    /// what it has for that device and hour).
    pub fn take_devices(&mut self) -> Vec<DeviceHour> {
        let mut out = Vec::new();
        for d in self.devices.iter_mut() {
            if d.mac == 0 {
                break;
            }
            out.push(DeviceHour {
                mac: MacAddr::from_u64(d.mac),
                hour: d.hist.minute,
                handshakes: d.hist.n,
                buckets: d.hist.to_sparse(),
            });
            d.mac = 0;
            d.hist.counts.fill(0);
            d.hist.n = 0;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::{Dest, LinkType, decode};

    const DEV: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const MS: i64 = 1_000_000;
    const T0: i64 = 1_700_000_040 * 1_000_000_000;

    /// A real Ethernet/IPv4/TCP frame's bytes, decoded by the real decoder.
    fn tcp_frame(
        ts: i64,
        from_dev: bool,
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
    ) -> Frame {
        let (smac, dmac, sip, dip) = if from_dev {
            (DEV, GW, [192, 168, 1, 10], [93, 184, 216, 34])
        } else {
            (GW, DEV, [93, 184, 216, 34], [192, 168, 1, 10])
        };
        let mut b = Vec::new();
        b.extend_from_slice(&dmac);
        b.extend_from_slice(&smac);
        b.extend_from_slice(&[0x08, 0x00]);
        b.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        b.extend_from_slice(&sip);
        b.extend_from_slice(&dip);
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ack.to_be_bytes());
        b.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        let f = decode(LinkType::Ethernet, ts, &b, 60).unwrap();
        assert_eq!(
            f.dst,
            Dest::Unicast(MacAddr(if from_dev { GW } else { DEV }))
        );
        f
    }

    fn syn(ts: i64, sport: u16, seq: u32) -> Frame {
        tcp_frame(ts, true, sport, 443, seq, 0, Tcp::SYN)
    }

    fn syn_ack(ts: i64, sport: u16, ack: u32) -> Frame {
        tcp_frame(ts, false, 443, sport, 7777, ack, Tcp::SYN | Tcp::ACK)
    }

    #[test]
    fn syn_then_syn_ack_40ms_later_is_one_40ms_sample() {
        let loc = Locality::default();
        let mut h = Handshakes::new();
        h.observe_frame(&syn(T0, 50_000, 1000), &loc);
        // An unrelated ACK, a SYN-ACK with the wrong ack number, and one for another port: no sample.
        h.observe_frame(
            &tcp_frame(T0 + MS, false, 443, 50_000, 1, 1001, Tcp::ACK),
            &loc,
        );
        h.observe_frame(&syn_ack(T0 + 20 * MS, 50_000, 5), &loc);
        h.observe_frame(&syn_ack(T0 + 20 * MS, 50_001, 1001), &loc);
        h.observe_frame(&syn_ack(T0 + 40 * MS, 50_000, 1001), &loc);
        // The same SYN-ACK again (retransmitted by the server): the SYN was used up.
        h.observe_frame(&syn_ack(T0 + 45 * MS, 50_000, 1001), &loc);
        let rows = h.take();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].minute, T0 / 1_000_000_000 / 60 * 60);
        assert_eq!(rows[0].handshakes, 1);
        let med = rows[0].median_us.unwrap();
        assert!((39_400..=40_600).contains(&med), "median {med} µs");
        assert_eq!(rows[0].p95_us, rows[0].median_us);
        assert_eq!(h.stats().samples, 1);
    }

    #[test]
    fn local_handshakes_do_not_count() {
        let loc = Locality::default();
        let mut h = Handshakes::new();
        let mut f = syn(T0, 1, 1);
        f.ip = IpPair::V4 {
            src: 0xc0a8_010a,
            dst: 0xc0a8_0101,
        };
        h.observe_frame(&f, &loc);
        assert_eq!(h.stats().syns, 0);
        assert!(h.take().is_empty());
    }

    #[test]
    fn retransmitted_syn_gives_no_sample_but_a_captured_twice_syn_does() {
        let loc = Locality::default();
        let mut h = Handshakes::new();
        // Retransmitted after 1 s: the SYN-ACK may answer either copy, so no sample (Karn).
        h.observe_frame(&syn(T0, 40_000, 10), &loc);
        h.observe_frame(&syn(T0 + 1_000 * MS, 40_000, 10), &loc);
        h.observe_frame(&syn_ack(T0 + 1_030 * MS, 40_000, 11), &loc);
        assert_eq!(h.stats().retransmitted, 1);
        assert_eq!(h.stats().samples, 0);
        // The same SYN captured twice 50 µs apart: one handshake, timed from the first copy.
        h.observe_frame(&syn(T0 + 2_000 * MS, 40_001, 20), &loc);
        h.observe_frame(&syn(T0 + 2_000 * MS + 50_000, 40_001, 20), &loc);
        h.observe_frame(&syn_ack(T0 + 2_025 * MS, 40_001, 21), &loc);
        // A port reused with a new sequence number: the newer SYN is timed.
        h.observe_frame(&syn(T0 + 3_000 * MS, 40_002, 30), &loc);
        h.observe_frame(&syn(T0 + 3_500 * MS, 40_002, 99), &loc);
        h.observe_frame(&syn_ack(T0 + 3_525 * MS, 40_002, 100), &loc);
        let rows = h.take();
        assert_eq!(rows[0].handshakes, 2);
        let med = rows[0].median_us.unwrap();
        assert!((24_500..=25_500).contains(&med), "median {med} µs");
    }

    #[test]
    fn syn_flood_stays_within_the_table_and_counts_evictions() {
        let loc = Locality::default();
        let mut h = Handshakes::new();
        let first = syn(T0, 1, 1);
        h.observe_frame(&first, &loc);
        let flood = 100_000u32;
        for i in 0..flood {
            let mut f = syn(T0 + MS + i as i64 * 1_000, 2 + (i % 60_000) as u16, i);
            // Random-looking spoofed sources, all "local" side, all to one server.
            f.ip = IpPair::V4 {
                src: 0x0a00_0000 | (i.wrapping_mul(2_654_435_761) & 0x00ff_ffff),
                dst: 0x5db8_d822,
            };
            h.observe_frame(&f, &loc);
        }
        assert_eq!(h.table.len(), TABLE_ENTRIES);
        let s = h.stats();
        assert_eq!(s.syns, flood as u64 + 1);
        // At most TABLE_ENTRIES SYNs can still be pending; every other one was evicted.
        assert!(
            s.evicted >= (flood as u64 + 1) - TABLE_ENTRIES as u64,
            "{s:?}"
        );
        // After the flood a fresh handshake is still timed.
        h.observe_frame(&syn(T0 + 2_000 * MS, 3, 5), &loc);
        h.observe_frame(&syn_ack(T0 + 2_010 * MS, 3, 6), &loc);
        assert_eq!(h.stats().samples, 1);
    }

    #[test]
    fn minutes_are_separate_and_the_current_one_is_copied() {
        let loc = Locality::default();
        let mut h = Handshakes::new();
        for (i, lat) in [10i64, 20, 30, 40, 100].iter().enumerate() {
            let t = T0 + i as i64 * 1_000 * MS;
            h.observe_frame(&syn(t, 1000 + i as u16, 1), &loc);
            h.observe_frame(&syn_ack(t + lat * MS, 1000 + i as u16, 2), &loc);
        }
        let t = T0 + 61_000 * MS;
        h.observe_frame(&syn(t, 9, 1), &loc);
        h.observe_frame(&syn_ack(t + 5 * MS, 9, 2), &loc);
        let rows = h.take();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].handshakes, 5);
        assert!((29_000..=31_000).contains(&rows[0].median_us.unwrap()));
        assert!((97_000..=103_000).contains(&rows[0].p95_us.unwrap()));
        assert_eq!(rows[1].handshakes, 1);
        // The current minute is copied, not taken: the next flush rewrites it with more.
        assert_eq!(h.take(), vec![rows[1]]);
    }

    #[test]
    fn buckets_are_within_3_percent() {
        for us in [
            0u64,
            1,
            31,
            32,
            33,
            100,
            1_000,
            40_000,
            123_456,
            10_000_000,
            u64::MAX / 2,
        ] {
            let mid = bucket_mid(bucket_of(us));
            if us < 60_000_000 {
                let err = mid.abs_diff(us) as f64 / us.max(1) as f64;
                assert!(err <= 1.0 / 32.0, "{us}: {mid}");
            }
        }
    }

    #[test]
    fn devices_get_their_own_hour_from_the_syn_s_mac() {
        let loc = Locality::default();
        let mut h = Handshakes::new();
        // Device DEV: 10 and 30 ms; another device (MAC ..0b, same IP for the test): 50 ms.
        h.observe_frame(&syn(T0, 1, 1), &loc);
        h.observe_frame(&syn_ack(T0 + 10 * MS, 1, 2), &loc);
        h.observe_frame(&syn(T0 + MS, 2, 1), &loc);
        h.observe_frame(&syn_ack(T0 + 31 * MS, 2, 2), &loc);
        let mut other = syn(T0 + 2 * MS, 3, 1);
        other.src = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
        h.observe_frame(&other, &loc);
        // The SYN-ACK's destination MAC is not what attributes it (a router's WAN copy).
        h.observe_frame(&syn_ack(T0 + 52 * MS, 3, 2), &loc);
        let mut rows = h.take_devices();
        rows.sort_by_key(|r| r.mac.to_u64());
        assert_eq!(rows.len(), 2, "{rows:?}");
        let hour = T0 / 1_000_000_000 / 3600 * 3600;
        assert_eq!((rows[0].mac, rows[0].hour), (MacAddr(DEV), hour));
        assert_eq!(rows[0].handshakes, 2);
        assert_eq!(rows[1].handshakes, 1);
        let mut back = Histogram::new(hour);
        assert!(back.add_sparse(&rows[0].buckets));
        assert_eq!(back.count(), 2);
        let med = back.quantile_us(0.5).unwrap();
        assert!((9_700..=10_300).contains(&med), "median {med}");
        let p95 = back.quantile_us(0.95).unwrap();
        assert!((29_000..=31_000).contains(&p95), "p95 {p95}");
        // Taken means moved out.
        assert!(h.take_devices().is_empty());
    }

    #[test]
    fn device_slots_are_bounded_and_the_household_keeps_every_sample() {
        let loc = Locality::default();
        let mut h = Handshakes::new();
        let n = DEVICE_SLOTS as u16 + 10;
        for i in 0..n {
            let mut f = syn(T0 + i as i64 * MS, 1000 + i, 1);
            f.src = MacAddr([0x02, 0, 0, 0, (i >> 8) as u8, i as u8 + 1]);
            h.observe_frame(&f, &loc);
            h.observe_frame(&syn_ack(T0 + i as i64 * MS + 5 * MS, 1000 + i, 2), &loc);
        }
        assert_eq!(h.take_devices().len(), DEVICE_SLOTS);
        assert_eq!(h.stats().device_overflow, 10);
        assert_eq!(h.take()[0].handshakes, n as i64);
        assert_eq!(h.devices.len(), DEVICE_SLOTS);
    }

    #[test]
    fn sparse_histograms_round_trip_and_refuse_garbage() {
        let mut a = Histogram::new(0);
        for us in [0u64, 5, 40_000, 40_100, 1_000_000, 60_000_000] {
            a.add(us);
        }
        a.add(40_000);
        let bytes = a.to_sparse();
        let mut b = Histogram::new(0);
        assert!(b.add_sparse(&bytes));
        assert_eq!(b.counts, a.counts);
        assert_eq!(b.count(), 7);
        b.merge(&a);
        assert_eq!(b.count(), 14);
        assert_eq!(b.quantile_us(0.5), a.quantile_us(0.5));
        // A truncated varint, and a bucket past the end.
        assert!(!Histogram::new(0).add_sparse(&[0x80]));
        assert!(!Histogram::new(0).add_sparse(&[0xff, 0x7f, 1]));
    }
}
