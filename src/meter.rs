//! The bounded per-MAC counter map: the accounting rules of ACCOUNTING.md and nothing else.
//!
//! The capture thread calls [`Meter::ingest`] with batches of decoded frames; the flusher calls
//! [`Meter::take_delta`], which swaps the whole delta out in O(1) so capture never waits on the
//! database. Counts are kept per minute (a [`Segment`]) because a flush interval, or a replayed
//! capture, can span minute boundaries. The map is bounded: when it is full the least active
//! entries are folded into a visible "other" bucket, so a flood of random source MACs cannot grow
//! memory. This module must never do I/O, log per packet, allocate per packet, or block.

use crate::capture::FrameSink;
use crate::capture::decode::{Dest, Frame, IpPair};
use crate::endpoints::{Remote, RemoteUsage, Summary};
use crate::internet::passive::{DeviceHour, Handshakes, PassiveMinute, PassiveStats};
use crate::model::{Counts, IpPrefix, MacAddr, MinuteUsage, Sighting, TimestampNs, minute_of};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Default bound on tracked MACs per minute segment (configurable, default 4096).
pub const DEFAULT_MAX_DEVICES: usize = 4096;
/// Router-announced IPv6 prefixes remembered; a LAN has one or two, a hostile RA flood gets no more.
const MAX_RA_PREFIXES: usize = 16;
/// Local addresses remembered per MAC and family in one segment (a device has a handful).
const MAX_IPS: usize = 4;
/// Non-local peers tracked inline per entry while the gateway is unknown; more spill to a side map.
const INLINE_PEERS: usize = 2;
/// Peers remembered per device in [`Totals`]. A household device reaches the internet through one
/// router; only a flood of fake MACs produces more, and their bytes then stay "local".
const MAX_TOTAL_PEERS: usize = 16;

/// Hasher for the packed-MAC keys of the hot map: one multiply, keyed per process. SipHash (std's
/// default) costs several times more per frame; the random key keeps collisions unpredictable.
#[derive(Clone, Copy)]
pub struct MacHashBuilder(u64);

impl MacHashBuilder {
    fn new() -> Self {
        // RandomState is seeded from the OS once per process; hashing a constant through it
        // yields a per-process key without another dependency.
        let k = std::collections::hash_map::RandomState::new().hash_one(0x6c61_6e6d_6574_6572u64);
        MacHashBuilder(k | 1)
    }
}

pub struct MacHasher {
    key: u64,
    h: u64,
}

impl Hasher for MacHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.h = (self.h.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        let x = (v ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.h = x ^ (x >> 29);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.h
    }
}

impl BuildHasher for MacHashBuilder {
    type Hasher = MacHasher;
    #[inline]
    fn build_hasher(&self) -> MacHasher {
        MacHasher { key: self.0, h: 0 }
    }
}

type MacMap<V> = HashMap<u64, V, MacHashBuilder>;

const NO_MAC: u64 = u64::MAX;
const EMPTY_CACHE: [(u64, u32); 2] = [(NO_MAC, 0); 2];

/// What counts as "local" (ACCOUNTING.md): fixed special ranges, configured and interface prefixes, and
/// prefixes routers announce in Router Advertisements.
#[derive(Clone, Debug, Default)]
pub struct Locality {
    prefixes: Vec<IpPrefix>,
    ra_learned: usize,
}

impl Locality {
    pub fn new(prefixes: impl IntoIterator<Item = IpPrefix>) -> Locality {
        Locality {
            prefixes: prefixes.into_iter().collect(),
            ra_learned: 0,
        }
    }

    /// Adds a router-announced prefix; returns false when it was known or the bound is reached.
    pub fn learn_ra_prefix(&mut self, addr: u128, len: u8) -> bool {
        let p = IpPrefix::V6 { addr, len };
        if self.ra_learned >= MAX_RA_PREFIXES || self.prefixes.contains(&p) {
            return false;
        }
        self.prefixes.push(p);
        self.ra_learned += 1;
        true
    }

    pub fn prefixes(&self) -> &[IpPrefix] {
        &self.prefixes
    }

    #[inline]
    pub fn is_local_v4(&self, ip: u32) -> bool {
        let o = ip.to_be_bytes();
        // RFC 1918, CGNAT 100.64/10, link-local, loopback, "this network", multicast, broadcast.
        o[0] == 10
            || (o[0] == 172 && o[1] & 0xf0 == 16)
            || (o[0] == 192 && o[1] == 168)
            || (o[0] == 100 && o[1] & 0xc0 == 64)
            || (o[0] == 169 && o[1] == 254)
            || o[0] == 127
            || o[0] == 0
            || o[0] >= 224
            || self.prefixes.iter().any(|p| p.contains_v4(ip))
    }

    #[inline]
    pub fn is_local_v6(&self, ip: u128) -> bool {
        let top = (ip >> 112) as u16;
        // fe80::/10 link-local, fc00::/7 ULA, ff00::/8 multicast, :: and ::1.
        top & 0xffc0 == 0xfe80
            || top & 0xfe00 == 0xfc00
            || top & 0xff00 == 0xff00
            || ip <= 1
            || self.prefixes.iter().any(|p| p.contains_v6(ip))
    }
}

/// Meter settings, fixed at start (the gateway can be changed later with [`Meter::set_gateway`]).
#[derive(Clone, Debug)]
pub struct MeterConfig {
    pub max_devices: usize,
    pub gateway: Option<MacAddr>,
    pub locality: Locality,
    /// Time TCP handshakes to the internet (issue 27's passive latency).
    pub passive_latency: bool,
    /// Count internet bytes per (device, remote address) (issue 29, [`crate::endpoints`]).
    pub remote_endpoints: bool,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            max_devices: DEFAULT_MAX_DEVICES,
            gateway: None,
            locality: Locality::default(),
            passive_latency: true,
            remote_endpoints: false,
        }
    }
}

/// Non-local traffic between an entry's MAC and one peer MAC, kept while the gateway is unknown so
/// that the gateway can be chosen afterwards (replay) without a second pass over the capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Peer {
    mac: u64,
    /// Bytes this MAC sent to `mac` whose destination IP is not local.
    up: u64,
    /// Bytes `mac` sent to this MAC whose source IP is not local.
    down: u64,
}

/// One MAC within one minute.
#[derive(Clone, Debug)]
struct Entry {
    c: Counts,
    first_sent: TimestampNs,
    last_sent: TimestampNs,
    first_recv: TimestampNs,
    last_recv: TimestampNs,
    /// Bytes this MAC carried that had a non-local IP on the far side: the gateway score.
    nonlocal: u64,
    peers: [Peer; INLINE_PEERS],
    ipv4: [u32; MAX_IPS],
    ipv6: [u128; MAX_IPS],
    /// Internet bytes per remote, allocated at the device's first internet frame of the minute
    /// when remote endpoints are on (never otherwise).
    remotes: Option<Box<Summary>>,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            c: Counts::default(),
            first_sent: TimestampNs::MAX,
            last_sent: TimestampNs::MIN,
            first_recv: TimestampNs::MAX,
            last_recv: TimestampNs::MIN,
            nonlocal: 0,
            peers: [Peer::default(); INLINE_PEERS],
            ipv4: [0; MAX_IPS],
            ipv6: [0; MAX_IPS],
            remotes: None,
        }
    }
}

impl Entry {
    #[inline]
    fn activity(&self) -> u64 {
        self.c.bytes_sent + self.c.bytes_received
    }

    /// Adds non-local bytes with `peer`; false when the inline slots are all taken by others.
    #[inline]
    fn add_peer(&mut self, peer: u64, up: u64, down: u64) -> bool {
        for p in self.peers.iter_mut() {
            if p.mac == peer || (p.up == 0 && p.down == 0) {
                p.mac = peer;
                p.up += up;
                p.down += down;
                return true;
            }
        }
        false
    }

    #[inline]
    fn add_ipv4(&mut self, ip: u32) {
        if ip == 0 || self.ipv4.contains(&ip) {
            return;
        }
        if let Some(slot) = self.ipv4.iter_mut().find(|s| **s == 0) {
            *slot = ip;
        }
    }

    #[inline]
    fn add_ipv6(&mut self, ip: u128) {
        if ip == 0 || self.ipv6.contains(&ip) {
            return;
        }
        if let Some(slot) = self.ipv6.iter_mut().find(|s| **s == 0) {
            *slot = ip;
        }
    }
}

/// Traffic folded out of the map when it was full: totals kept, identities lost, and said so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Other {
    pub counts: Counts,
    /// How many per-minute MAC entries were folded in.
    pub entries_evicted: u64,
}

/// Everything counted within one minute.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Start of the minute, seconds since the epoch.
    pub minute: i64,
    /// Slot of each MAC in `slots`. Entries live in a Vec so that the meter can remember the
    /// slots of the last MACs it touched and skip the hash lookup for the next frame of a flow.
    index: MacMap<u32>,
    slots: Vec<(u64, Entry)>,
    /// Overflow of [`Entry::peers`]: (mac, peer) → (up, down).
    spill: HashMap<(u64, u64), (u64, u64)>,
    pub other: Other,
}

impl Segment {
    fn new(minute: i64, hasher: MacHashBuilder, capacity: usize) -> Segment {
        Segment {
            minute,
            index: HashMap::with_capacity_and_hasher(capacity, hasher),
            slots: Vec::with_capacity(capacity),
            spill: HashMap::new(),
            other: Other::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.other.counts.is_zero()
    }

    fn entries(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.slots.iter().map(|(m, e)| (*m, e))
    }
}

/// What the flusher takes: every segment counted since the last take.
#[derive(Debug, Default)]
pub struct Delta {
    pub segments: Vec<Segment>,
    /// The gateway the meter was counting against while these frames arrived (None: unknown,
    /// per-peer bytes were kept so that it can be chosen now).
    pub gateway: Option<MacAddr>,
    /// Passive handshake latency per minute: finished minutes and the current one so far.
    pub passive: Vec<PassiveMinute>,
    /// Passive latency per device and hour since the last delta.
    pub passive_devices: Vec<DeviceHour>,
    /// Whether remote endpoints were counted (the setting was on).
    pub remote_endpoints: bool,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(Segment::is_empty)
    }

    /// The MAC with the most non-local traffic in this delta (ACCOUNTING.md §4's replay inference).
    pub fn infer_gateway(&self) -> Option<MacAddr> {
        let mut score: HashMap<u64, u64> = HashMap::new();
        for s in &self.segments {
            for (mac, e) in s.entries() {
                *score.entry(mac).or_default() += e.nonlocal;
            }
        }
        best_score(score)
    }

    /// Per-device minute usage, with internet bytes resolved against `gateway` (the meter's own
    /// when it had one). Evicted traffic is returned separately, per minute.
    pub fn minute_usage(&self, gateway: Option<MacAddr>) -> (Vec<MinuteUsage>, Vec<(i64, Other)>) {
        let gw = self.gateway.or(gateway).map(MacAddr::to_u64);
        let mut usage = Vec::new();
        let mut other = Vec::new();
        for s in &self.segments {
            for (mac, e) in s.entries() {
                let mut counts = e.c;
                if self.gateway.is_none() {
                    let (up, down) = peer_bytes(s, mac, e, gw);
                    counts.internet_upload_bytes += up;
                    counts.internet_download_bytes += down;
                }
                usage.push(MinuteUsage {
                    mac: MacAddr::from_u64(mac),
                    minute: s.minute,
                    counts,
                });
            }
            if !s.other.counts.is_zero() {
                other.push((s.minute, s.other));
            }
        }
        (usage, other)
    }

    /// Internet bytes per (device, minute, remote), "other" rows (`remote: None`) included;
    /// empty when remote endpoints are off. Per device and minute the rows sum exactly to the
    /// device's internet bytes of [`Delta::minute_usage`] with the same `gateway`: bytes counted
    /// while the meter did not know the gateway (resolved only now) have no remote and are
    /// "other", as are those of a remote evicted from a full summary.
    pub fn remote_usage(&self, gateway: Option<MacAddr>) -> Vec<RemoteUsage> {
        if !self.remote_endpoints {
            return Vec::new();
        }
        let gw = self.gateway.or(gateway).map(MacAddr::to_u64);
        let mut rows = Vec::new();
        for s in &self.segments {
            for (mac, e) in s.entries() {
                let (mut other_up, mut other_down) = if self.gateway.is_none() {
                    peer_bytes(s, mac, e, gw)
                } else {
                    (0, 0)
                };
                let m = MacAddr::from_u64(mac);
                if let Some(sum) = &e.remotes {
                    for (remote, up, down) in sum.entries() {
                        rows.push(RemoteUsage {
                            mac: m,
                            minute: s.minute,
                            remote: Some(remote),
                            up,
                            down,
                        });
                    }
                    other_up += sum.other().0;
                    other_down += sum.other().1;
                }
                if other_up + other_down > 0 {
                    rows.push(RemoteUsage {
                        mac: m,
                        minute: s.minute,
                        remote: None,
                        up: other_up,
                        down: other_down,
                    });
                }
            }
        }
        rows
    }

    /// (MAC, first frame sent, last frame sent) per minute segment, for every MAC that sent in
    /// it: what presence is built from (a MAC that only received may well be offline).
    pub fn sent_spans(&self) -> impl Iterator<Item = (MacAddr, TimestampNs, TimestampNs)> + '_ {
        self.segments.iter().flat_map(|s| {
            s.entries()
                .filter(|(_, e)| e.c.frames_sent > 0)
                .map(|(mac, e)| (MacAddr::from_u64(mac), e.first_sent, e.last_sent))
        })
    }

    /// When each MAC was seen in this delta (ACCOUNTING.md §4 first/last seen rules), for the devices table.
    pub fn sightings(&self, gateway: Option<MacAddr>) -> Vec<Sighting> {
        let gw = self.gateway.or(gateway);
        let mut by_mac: MacMap<[TimestampNs; 4]> = HashMap::with_hasher(MacHashBuilder::new());
        for s in &self.segments {
            for (mac, e) in s.entries() {
                let t = by_mac.entry(mac).or_insert([
                    TimestampNs::MAX,
                    TimestampNs::MIN,
                    TimestampNs::MAX,
                    TimestampNs::MIN,
                ]);
                t[0] = t[0].min(e.first_sent);
                t[1] = t[1].max(e.last_sent);
                t[2] = t[2].min(e.first_recv);
                t[3] = t[3].max(e.last_recv);
            }
        }
        by_mac
            .into_iter()
            .map(|(mac, t)| {
                let mac = MacAddr::from_u64(mac);
                let (first_seen, last_seen) = seen_span(t);
                Sighting {
                    mac,
                    first_seen,
                    last_seen,
                    is_gateway: Some(mac) == gw,
                }
            })
            .collect()
    }
}

fn best_score(score: HashMap<u64, u64>) -> Option<MacAddr> {
    score
        .into_iter()
        .filter(|&(_, s)| s > 0)
        // Ties go to the lowest MAC so the choice does not depend on hash order.
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(mac, _)| MacAddr::from_u64(mac))
}

fn peer_bytes(s: &Segment, mac: u64, e: &Entry, gw: Option<u64>) -> (u64, u64) {
    let Some(gw) = gw else { return (0, 0) };
    let mut up = 0;
    let mut down = 0;
    for p in &e.peers {
        if p.mac == gw {
            up += p.up;
            down += p.down;
        }
    }
    if let Some(&(u, d)) = s.spill.get(&(mac, gw)) {
        up += u;
        down += d;
    }
    (up, down)
}

/// Counts an internet frame for its remote: the source address of a download, the destination
/// of an upload. Only called for frames with a non-local address, so `ip` is never `None`.
#[inline]
fn count_remote(e: &mut Entry, ip: IpPair, download: bool, len: u64) {
    let remote = match (ip, download) {
        (IpPair::V4 { dst, .. }, false) => Remote::V4(dst),
        (IpPair::V4 { src, .. }, true) => Remote::V4(src),
        (IpPair::V6 { dst, .. }, false) => Remote::V6(dst),
        (IpPair::V6 { src, .. }, true) => Remote::V6(src),
        (IpPair::None, _) => return,
    };
    let (up, down) = if download { (0, len) } else { (len, 0) };
    e.remotes
        .get_or_insert_with(Box::default)
        .add(remote, up, down);
}

/// Sent span if the MAC ever sent, else the received span (ACCOUNTING.md §4).
fn seen_span(t: [TimestampNs; 4]) -> (TimestampNs, TimestampNs) {
    if t[0] <= t[1] {
        (t[0], t[1])
    } else {
        (t[2], t[3])
    }
}

/// The counter map. Owned by whoever holds [`SharedMeter`]'s lock; see there for the lock choice.
pub struct Meter {
    gateway: Option<u64>,
    locality: Locality,
    max_devices: usize,
    hasher: MacHashBuilder,
    current: Segment,
    sealed: Vec<Segment>,
    /// MACs of the capturing host per interface index, learned from Linux cooked OUTGOING frames.
    capture_hosts: [(u32, u64); 8],
    /// The slots of the two MACs touched last in `current` (most recent first). A bulk transfer
    /// is one pair of MACs frame after frame, so most frames need no hash lookup at all.
    /// `NO_MAC` marks an empty line (no 48-bit MAC packs to it).
    cache: [(u64, u32); 2],
    /// Scratch space for eviction, kept to avoid reallocating on every eviction pass.
    scratch: Vec<(u64, u64)>,
    evictions: u64,
    /// Pending SYNs and handshake latency histograms; `None` when switched off.
    passive: Option<Box<Handshakes>>,
    /// Count internet bytes per remote ([`crate::endpoints`]); off costs one branch per frame.
    remotes: bool,
}

impl Meter {
    pub fn new(cfg: MeterConfig) -> Meter {
        let hasher = MacHashBuilder::new();
        let max_devices = cfg.max_devices.max(2);
        Meter {
            gateway: cfg.gateway.map(MacAddr::to_u64),
            locality: cfg.locality,
            max_devices,
            hasher,
            current: Segment::new(i64::MIN, hasher, 64),
            sealed: Vec::new(),
            capture_hosts: [(u32::MAX, 0); 8],
            cache: EMPTY_CACHE,
            scratch: Vec::new(),
            evictions: 0,
            passive: cfg.passive_latency.then(|| Box::new(Handshakes::new())),
            remotes: cfg.remote_endpoints,
        }
    }

    /// Changes the gateway from the next frame on (live detection found or changed it).
    pub fn set_gateway(&mut self, gateway: Option<MacAddr>) {
        if self.gateway != gateway.map(MacAddr::to_u64) {
            // A delta must be counted against one gateway: seal what was counted so far.
            self.seal();
            self.gateway = gateway.map(MacAddr::to_u64);
        }
    }

    pub fn gateway(&self) -> Option<MacAddr> {
        self.gateway.map(MacAddr::from_u64)
    }

    pub fn locality(&self) -> &Locality {
        &self.locality
    }

    /// Adds interface prefixes discovered at run time.
    pub fn add_local_prefix(&mut self, p: IpPrefix) {
        if !self.locality.prefixes.contains(&p) {
            self.locality.prefixes.push(p);
        }
    }

    /// Total entries evicted into "other" since start (for the warning and for metrics).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// What passive latency saw since start (`None` when switched off).
    pub fn passive_stats(&self) -> Option<PassiveStats> {
        self.passive.as_ref().map(|p| p.stats())
    }

    /// Minute segments waiting to be taken (replay takes a delta when this grows).
    pub fn pending_segments(&self) -> usize {
        self.sealed.len() + usize::from(!self.current.is_empty())
    }

    /// Per-MAC counts not yet taken by the flusher (summed over the pending minutes), for the
    /// web side's live view. O(devices) under the caller's lock: a copy, never a reference, so the
    /// web side cannot hold the capture path's lock while it renders.
    pub fn snapshot(&self) -> MeterSnapshot {
        let mut devices: HashMap<u64, Counts> = HashMap::new();
        for seg in self.sealed.iter().chain(std::iter::once(&self.current)) {
            for (mac, e) in seg.entries() {
                devices.entry(mac).or_default().add(&e.c);
            }
        }
        let mut devices: Vec<(MacAddr, Counts)> = devices
            .into_iter()
            .map(|(m, c)| (MacAddr::from_u64(m), c))
            .collect();
        devices.sort_unstable_by_key(|(m, _)| m.to_u64());
        MeterSnapshot {
            devices,
            gateway: self.gateway(),
        }
    }

    /// Swaps everything counted so far out, in O(1) apart from moving two small headers.
    pub fn take_delta(&mut self) -> Delta {
        self.cache = EMPTY_CACHE;
        let mut segments = std::mem::take(&mut self.sealed);
        let fresh = Segment::new(self.current.minute, self.hasher, self.current.len());
        let cur = std::mem::replace(&mut self.current, fresh);
        if !cur.is_empty() {
            segments.push(cur);
        }
        Delta {
            segments,
            gateway: self.gateway.map(MacAddr::from_u64),
            passive: self.passive.as_mut().map(|p| p.take()).unwrap_or_default(),
            passive_devices: self
                .passive
                .as_mut()
                .map(|p| p.take_devices())
                .unwrap_or_default(),
            remote_endpoints: self.remotes,
        }
    }

    fn seal(&mut self) {
        self.cache = EMPTY_CACHE;
        if !self.current.is_empty() {
            let fresh = Segment::new(self.current.minute, self.hasher, self.current.len());
            let done = std::mem::replace(&mut self.current, fresh);
            self.sealed.push(done);
        }
    }

    /// Counts a batch of frames.
    pub fn ingest_batch(&mut self, frames: &[Frame]) {
        for f in frames {
            self.ingest(f);
        }
    }

    /// Counts one frame (ACCOUNTING.md).
    #[inline]
    pub fn ingest(&mut self, f: &Frame) {
        let minute = minute_of(f.ts);
        if minute != self.current.minute {
            self.seal();
            self.current.minute = minute;
        }
        let len = f.wire_len as u64;
        let src = f.src.to_u64();

        // Router advertisements extend what is local before this very frame is classified.
        if f.ra_prefixes[0].1 != 0 {
            for &(addr, plen) in &f.ra_prefixes {
                if plen != 0 {
                    self.locality.learn_ra_prefix(addr, plen);
                }
            }
        }

        let dst = match f.dst {
            Dest::Unicast(m) => Some(m.to_u64()),
            Dest::CaptureHost { ifindex } => self.capture_host(ifindex),
            Dest::FromCaptureHost { ifindex } => {
                self.learn_capture_host(ifindex, src);
                None
            }
            Dest::Group | Dest::Unknown => None,
        };

        // Classify the IP part once: is each endpoint local?
        let (src_local, dst_local) = match f.ip {
            IpPair::None => (true, true),
            IpPair::V4 { src, dst } => (
                self.locality.is_local_v4(src),
                self.locality.is_local_v4(dst),
            ),
            IpPair::V6 { src, dst } => (
                self.locality.is_local_v6(src),
                self.locality.is_local_v6(dst),
            ),
        };

        if f.tcp.is_some() {
            if let Some(p) = self.passive.as_mut() {
                p.observe(f, src_local, dst_local);
            }
        }

        let ts = f.ts;
        let gateway = self.gateway;
        let remotes = self.remotes;
        let arp_ip = f
            .arp
            .filter(|a| a.sender_mac == f.src && self.locality.is_local_v4(a.sender_ip))
            .map(|a| a.sender_ip);
        {
            let e = self.entry(src);
            e.c.frames_sent += 1;
            e.c.bytes_sent += len;
            e.first_sent = e.first_sent.min(ts);
            e.last_sent = e.last_sent.max(ts);
            if !src_local {
                e.nonlocal += len;
            }
            match f.ip {
                IpPair::V4 { src: ip, .. } if src_local && ip >> 28 != 0xe && ip != u32::MAX => {
                    e.add_ipv4(ip)
                }
                IpPair::V6 { src: ip, .. } if src_local && (ip >> 120) != 0xff && ip > 1 => {
                    e.add_ipv6(ip)
                }
                _ => {}
            }
            if let Some(ip) = arp_ip {
                e.add_ipv4(ip);
            }
            if let (Some(d), Some(gw)) = (dst, gateway) {
                if d == gw && !dst_local && src != gw {
                    e.c.internet_upload_bytes += len;
                    if remotes {
                        count_remote(e, f.ip, false, len);
                    }
                }
            }
            // A Linux cooked capture keeps no destination MAC, but an outgoing frame of the
            // capturing host to a non-local address can only have left through the router
            // (docs/ACCOUNTING.md, "Linux cooked captures").
            if !dst_local && matches!(f.dst, Dest::FromCaptureHost { .. }) {
                e.c.internet_upload_bytes += len;
                if remotes {
                    count_remote(e, f.ip, false, len);
                }
            }
        }

        let Some(d) = dst else { return };
        let e = self.entry(d);
        e.c.frames_received += 1;
        e.c.bytes_received += len;
        e.first_recv = e.first_recv.min(ts);
        e.last_recv = e.last_recv.max(ts);
        if !dst_local {
            e.nonlocal += len;
        }
        match gateway {
            // The cooked-capture counterpart: a frame to the capturing host from a non-local
            // address came in through the router, whichever MAC the router used.
            _ if matches!(f.dst, Dest::CaptureHost { .. }) => {
                if !src_local && d != src {
                    e.c.internet_download_bytes += len;
                    if remotes {
                        count_remote(e, f.ip, true, len);
                    }
                }
            }
            Some(gw) => {
                if src == gw && !src_local && d != gw {
                    e.c.internet_download_bytes += len;
                    if remotes {
                        count_remote(e, f.ip, true, len);
                    }
                }
            }
            None => {
                // Gateway unknown: remember non-local bytes per peer; resolved when it is known.
                if !dst_local && d != src {
                    self.add_peer(src, d, len, 0);
                }
                if !src_local && d != src {
                    self.add_peer(d, src, 0, len);
                }
            }
        }
    }

    #[inline]
    fn add_peer(&mut self, mac: u64, peer: u64, up: u64, down: u64) {
        let max_spill = self.max_devices;
        let e = self.entry(mac);
        if !e.add_peer(peer, up, down) {
            // Bounded like the entries: past it (a flood of fake peers) the bytes stay counted
            // as sent/received, just not attributable to a gateway chosen later.
            let spill = &mut self.current.spill;
            if spill.len() < max_spill || spill.contains_key(&(mac, peer)) {
                let s = spill.entry((mac, peer)).or_default();
                s.0 += up;
                s.1 += down;
            }
        }
    }

    #[inline]
    fn capture_host(&self, ifindex: u32) -> Option<u64> {
        self.capture_hosts
            .iter()
            .find(|(i, _)| *i == ifindex)
            .map(|&(_, m)| m)
    }

    fn learn_capture_host(&mut self, ifindex: u32, mac: u64) {
        if let Some(slot) = self
            .capture_hosts
            .iter_mut()
            .find(|(i, _)| *i == ifindex || *i == u32::MAX)
        {
            *slot = (ifindex, mac);
        }
    }

    #[inline]
    fn entry(&mut self, mac: u64) -> &mut Entry {
        let i = self.slot(mac);
        &mut self.current.slots[i].1
    }

    #[inline]
    fn slot(&mut self, mac: u64) -> usize {
        if self.cache[0].0 == mac {
            return self.cache[0].1 as usize;
        }
        if self.cache[1].0 == mac {
            self.cache.swap(0, 1);
            return self.cache[0].1 as usize;
        }
        let i = match self.current.index.get(&mac) {
            Some(&i) => i as usize,
            None => {
                if self.current.slots.len() >= self.max_devices {
                    self.evict();
                }
                let i = self.current.slots.len();
                self.current.slots.push((mac, Entry::default()));
                // Slots are bounded by max_devices (≤ 1,000,000 by config), far below u32::MAX.
                self.current.index.insert(mac, i as u32);
                i
            }
        };
        // Read after a possible eviction, which empties the cache.
        self.cache = [(mac, i as u32), self.cache[0]];
        i
    }

    /// Folds the less active half of the map into "other". Amortised O(1) per new MAC: a pass
    /// over the map frees room for max_devices/2 newcomers.
    #[cold]
    fn evict(&mut self) {
        self.cache = EMPTY_CACHE;
        let seg = &mut self.current;
        let keep = self.max_devices / 2;
        let cut = seg.slots.len().saturating_sub(keep);
        if cut == 0 {
            return;
        }
        self.scratch.clear();
        self.scratch
            .extend(seg.slots.iter().map(|(mac, e)| (e.activity(), *mac)));
        // After this the `cut` least active are in front; ties are broken by MAC, so the
        // outcome does not depend on arrival order.
        self.scratch.select_nth_unstable(cut - 1);
        let evicted: std::collections::HashSet<u64> =
            self.scratch[..cut].iter().map(|&(_, m)| m).collect();
        let slots = std::mem::take(&mut seg.slots);
        seg.index.clear();
        for (mac, e) in slots {
            if evicted.contains(&mac) {
                seg.other.counts.add(&e.c);
                // Internet bytes still waiting on a gateway choice stay non-internet here: the
                // MAC's identity is gone, so they can no longer be resolved.
                seg.other.entries_evicted += 1;
            } else {
                seg.index.insert(mac, seg.slots.len() as u32);
                seg.slots.push((mac, e));
            }
        }
        seg.spill.retain(|(mac, _), _| seg.index.contains_key(mac));
        self.evictions += cut as u64;
    }
}

impl FrameSink for Meter {
    fn ingest(&mut self, frames: &[Frame]) {
        self.ingest_batch(frames);
    }
}

/// A copy of what the meter holds that the flusher has not taken yet (see [`Meter::snapshot`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterSnapshot {
    /// Pending counts per MAC, ordered by MAC.
    pub devices: Vec<(MacAddr, Counts)>,
    pub gateway: Option<MacAddr>,
}

/// The meter as shared between the capture thread and the flusher.
///
/// A std `Mutex`, not an async one: it is held for one batch of at most [`crate::capture::BATCH`]
/// frames by capture and for an O(1) swap by the flusher, never across an `.await` or any I/O, so
/// neither side waits more than microseconds.
#[derive(Clone)]
pub struct SharedMeter(Arc<Mutex<Meter>>);

impl SharedMeter {
    pub fn new(meter: Meter) -> SharedMeter {
        SharedMeter(Arc::new(Mutex::new(meter)))
    }

    /// Runs `f` with the meter locked. A panic while holding the lock cannot leave counters
    /// half-updated in a way that matters more than losing them, so poisoning is ignored.
    pub fn with<R>(&self, f: impl FnOnce(&mut Meter) -> R) -> R {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn take_delta(&self) -> Delta {
        self.with(Meter::take_delta)
    }

    /// The web side's only way to read the meter: a copy taken under a lock held for
    /// microseconds.
    pub fn snapshot(&self) -> MeterSnapshot {
        self.with(|m| m.snapshot())
    }
}

impl FrameSink for SharedMeter {
    fn ingest(&mut self, frames: &[Frame]) {
        self.with(|m| m.ingest_batch(frames));
    }
}

/// Per-device totals accumulated across deltas: what `replay` prints and what the web side will
/// show between flushes. Not on the packet path, so it may allocate; bounded like the meter, so
/// a long flood of fake MACs cannot grow it either.
#[derive(Debug)]
pub struct Totals {
    devices: HashMap<u64, TotalEntry>,
    other: Other,
    /// The gateway the deltas were counted against, when the meter knew it.
    gateway: Option<MacAddr>,
    max_devices: usize,
    /// Remote endpoints were counted (some delta had them on).
    remotes: bool,
}

impl Default for Totals {
    fn default() -> Self {
        Totals::new(DEFAULT_MAX_DEVICES)
    }
}

#[derive(Debug, Default, Clone)]
struct TotalEntry {
    c: Counts,
    seen: [TimestampNs; 4],
    nonlocal: u64,
    /// Non-local bytes per peer (only filled while the gateway was unknown).
    peers: HashMap<u64, (u64, u64)>,
    ipv4: Vec<Ipv4Addr>,
    ipv6: Vec<Ipv6Addr>,
    /// Internet bytes (up, down) per remote, summed over the minutes' summaries; bounded by
    /// [`MAX_TOTAL_REMOTES`] (the smallest fold into `remote_other`).
    remotes: HashMap<Remote, (u64, u64)>,
    remote_other: (u64, u64),
}

/// Remotes remembered per device across a replay's minutes before the smallest half is folded
/// into "other" (so at least the 32 a stored hour keeps): a flood brings any number, and 200
/// devices' tables must stay within the memory budget.
const MAX_TOTAL_REMOTES: usize = 2 * crate::endpoints::ENTRIES;

fn add_total_peer(peers: &mut HashMap<u64, (u64, u64)>, peer: u64, up: u64, down: u64) {
    if peers.len() < MAX_TOTAL_PEERS || peers.contains_key(&peer) {
        let v = peers.entry(peer).or_default();
        v.0 += up;
        v.1 += down;
    }
}

/// Folds the smaller half of a device's remotes into its "other" (exact sums kept).
fn fold_smallest_remotes(t: &mut TotalEntry) {
    let mut by_bytes: Vec<(u64, Remote)> =
        t.remotes.iter().map(|(&r, &(u, d))| (u + d, r)).collect();
    let cut = by_bytes.len() - MAX_TOTAL_REMOTES / 2;
    by_bytes.select_nth_unstable(cut - 1);
    for &(_, r) in &by_bytes[..cut] {
        if let Some((u, d)) = t.remotes.remove(&r) {
            t.remote_other.0 += u;
            t.remote_other.1 += d;
        }
    }
}

/// One device's internet bytes per remote across a replay (`replay --endpoints`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRemotes {
    pub mac: MacAddr,
    /// (remote, bytes up, bytes down), most bytes first.
    pub remotes: Vec<(Remote, u64, u64)>,
    /// Bytes (up, down) with no remote kept: evicted, or counted before the gateway was known.
    pub other: (u64, u64),
}

/// One device's totals, resolved against a gateway: the rows of `replay --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTotals {
    pub mac: MacAddr,
    pub counts: Counts,
    pub first_seen: TimestampNs,
    pub last_seen: TimestampNs,
    pub is_gateway: bool,
    pub ips: Vec<IpAddr>,
}

impl Totals {
    pub fn new(max_devices: usize) -> Totals {
        Totals {
            devices: HashMap::new(),
            other: Other::default(),
            gateway: None,
            max_devices: max_devices.max(2),
            remotes: false,
        }
    }

    /// Folds the less active half into "other" once the bound is passed (amortised, as in the
    /// meter). The gateway candidate scores go with them, so a flood cannot fake a gateway
    /// either: only MACs that stay among the most active can win.
    fn enforce_bound(&mut self) {
        if self.devices.len() <= self.max_devices {
            return;
        }
        let mut by_activity: Vec<(u64, u64)> = self
            .devices
            .iter()
            .map(|(&m, t)| (t.c.bytes_sent + t.c.bytes_received, m))
            .collect();
        let cut = by_activity.len() - self.max_devices / 2;
        by_activity.select_nth_unstable(cut - 1);
        for &(_, mac) in &by_activity[..cut] {
            if let Some(t) = self.devices.remove(&mac) {
                self.other.counts.add(&t.c);
                self.other.entries_evicted += 1;
            }
        }
    }

    pub fn add(&mut self, delta: &Delta) {
        if delta.gateway.is_some() {
            self.gateway = delta.gateway;
        }
        self.remotes |= delta.remote_endpoints;
        for s in &delta.segments {
            self.other.counts.add(&s.other.counts);
            self.other.entries_evicted += s.other.entries_evicted;
            for (mac, e) in s.entries() {
                let t = self.devices.entry(mac).or_insert_with(|| TotalEntry {
                    seen: [
                        TimestampNs::MAX,
                        TimestampNs::MIN,
                        TimestampNs::MAX,
                        TimestampNs::MIN,
                    ],
                    ..Default::default()
                });
                t.c.add(&e.c);
                t.seen[0] = t.seen[0].min(e.first_sent);
                t.seen[1] = t.seen[1].max(e.last_sent);
                t.seen[2] = t.seen[2].min(e.first_recv);
                t.seen[3] = t.seen[3].max(e.last_recv);
                t.nonlocal += e.nonlocal;
                if delta.gateway.is_none() {
                    for p in e.peers.iter().filter(|p| p.up != 0 || p.down != 0) {
                        add_total_peer(&mut t.peers, p.mac, p.up, p.down);
                    }
                }
                for &ip in e.ipv4.iter().filter(|&&ip| ip != 0) {
                    let ip = Ipv4Addr::from(ip);
                    if !t.ipv4.contains(&ip) {
                        t.ipv4.push(ip);
                    }
                }
                for &ip in e.ipv6.iter().filter(|&&ip| ip != 0) {
                    let ip = Ipv6Addr::from(ip);
                    if !t.ipv6.contains(&ip) {
                        t.ipv6.push(ip);
                    }
                }
                if let Some(sum) = &e.remotes {
                    for (r, up, down) in sum.entries() {
                        let v = t.remotes.entry(r).or_default();
                        v.0 += up;
                        v.1 += down;
                    }
                    t.remote_other.0 += sum.other().0;
                    t.remote_other.1 += sum.other().1;
                    if t.remotes.len() > MAX_TOTAL_REMOTES {
                        fold_smallest_remotes(t);
                    }
                }
            }
            if delta.gateway.is_none() {
                for (&(mac, peer), &(up, down)) in &s.spill {
                    if let Some(t) = self.devices.get_mut(&mac) {
                        add_total_peer(&mut t.peers, peer, up, down);
                    }
                }
            }
        }
        self.enforce_bound();
    }

    /// Internet bytes per remote for every device that had any, by MAC (empty when remote
    /// endpoints were off). Per device, remotes plus other equal the internet bytes of
    /// [`Totals::devices`]: bytes counted before the gateway was known are "other".
    pub fn remotes(&self) -> Vec<DeviceRemotes> {
        if !self.remotes {
            return Vec::new();
        }
        let gw64 = self.gateway().map(MacAddr::to_u64);
        let mut out: Vec<DeviceRemotes> = self
            .devices
            .iter()
            .filter_map(|(&mac, t)| {
                let mut other = t.remote_other;
                if let Some(&(up, down)) = gw64.and_then(|g| t.peers.get(&g)) {
                    other.0 += up;
                    other.1 += down;
                }
                let mut remotes: Vec<(Remote, u64, u64)> =
                    t.remotes.iter().map(|(&r, &(u, d))| (r, u, d)).collect();
                if remotes.is_empty() && other == (0, 0) {
                    return None;
                }
                remotes.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
                Some(DeviceRemotes {
                    mac: MacAddr::from_u64(mac),
                    remotes,
                    other,
                })
            })
            .collect();
        out.sort_by_key(|d| d.mac);
        out
    }

    /// Traffic of MACs that were evicted from a full map.
    pub fn other(&self) -> Other {
        self.other
    }

    /// The gateway: the one the meter counted against, else the MAC with most non-local traffic.
    pub fn gateway(&self) -> Option<MacAddr> {
        self.gateway
            .or_else(|| best_score(self.devices.iter().map(|(&m, t)| (m, t.nonlocal)).collect()))
    }

    /// Every MAC's totals with internet bytes resolved against [`Totals::gateway`], by MAC.
    pub fn devices(&self) -> Vec<DeviceTotals> {
        let gw = self.gateway();
        let gw64 = gw.map(MacAddr::to_u64);
        let mut out: Vec<DeviceTotals> = self
            .devices
            .iter()
            .map(|(&mac, t)| {
                let mut counts = t.c;
                if let Some(&(up, down)) = gw64.and_then(|g| t.peers.get(&g)) {
                    counts.internet_upload_bytes += up;
                    counts.internet_download_bytes += down;
                }
                let (first_seen, last_seen) = seen_span(t.seen);
                let mut ips: Vec<IpAddr> = t.ipv4.iter().map(|&a| IpAddr::V4(a)).collect();
                ips.extend(t.ipv6.iter().map(|&a| IpAddr::V6(a)));
                let mac = MacAddr::from_u64(mac);
                DeviceTotals {
                    mac,
                    counts,
                    first_seen,
                    last_seen,
                    is_gateway: Some(mac) == gw,
                    ips,
                }
            })
            .collect();
        out.sort_by_key(|d| d.mac);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::{Arp, LinkType, MAX_RA_PREFIXES, decode};

    const GW: MacAddr = MacAddr([0x00, 0x11, 0x32, 0, 0, 1]);
    const PHONE: MacAddr = MacAddr([0xda, 0xa6, 0x32, 0, 0, 2]);
    const LAPTOP: MacAddr = MacAddr([0x3c, 0x22, 0xfb, 0, 0, 3]);
    const MIN: i64 = 60_000_000_000;

    fn v4(a: [u8; 4]) -> u32 {
        u32::from_be_bytes(a)
    }

    fn frame(src: MacAddr, dst: Dest, ip: IpPair, len: u32, ts: i64) -> Frame {
        Frame {
            ts,
            wire_len: len,
            src,
            dst,
            ethertype: 0x0800,
            ip,
            arp: None,
            tcp: None,
            ra_prefixes: [(0, 0); MAX_RA_PREFIXES],
        }
    }

    fn uni(m: MacAddr) -> Dest {
        Dest::Unicast(m)
    }

    fn ip4(s: [u8; 4], d: [u8; 4]) -> IpPair {
        IpPair::V4 {
            src: v4(s),
            dst: v4(d),
        }
    }

    fn totals(m: &mut Meter) -> HashMap<MacAddr, DeviceTotals> {
        let mut t = Totals::default();
        t.add(&m.take_delta());
        t.devices().into_iter().map(|d| (d.mac, d)).collect()
    }

    fn meter(gw: Option<MacAddr>) -> Meter {
        Meter::new(MeterConfig {
            gateway: gw,
            ..Default::default()
        })
    }

    #[test]
    fn unicast_counts_sent_and_received() {
        let mut m = meter(Some(GW));
        m.ingest(&frame(PHONE, uni(LAPTOP), IpPair::None, 100, 1));
        m.ingest(&frame(PHONE, uni(LAPTOP), IpPair::None, 50, 2));
        let t = totals(&mut m);
        let p = &t[&PHONE].counts;
        assert_eq!(
            (p.frames_sent, p.bytes_sent, p.frames_received),
            (2, 150, 0)
        );
        let l = &t[&LAPTOP].counts;
        assert_eq!(
            (l.frames_received, l.bytes_received, l.frames_sent),
            (2, 150, 0)
        );
        assert_eq!(l.local_bytes(), 150);
        assert_eq!((t[&PHONE].first_seen, t[&PHONE].last_seen), (1, 2));
        // Never sent: first/last seen come from what was addressed to it.
        assert_eq!((t[&LAPTOP].first_seen, t[&LAPTOP].last_seen), (1, 2));
    }

    #[test]
    fn snapshot_copies_pending_minutes_without_taking_them() {
        let mut m = meter(Some(GW));
        m.ingest(&frame(PHONE, uni(LAPTOP), IpPair::None, 100, 1));
        m.ingest(&frame(PHONE, uni(LAPTOP), IpPair::None, 50, MIN + 1));
        let snap = m.snapshot();
        assert_eq!(snap.gateway, Some(GW));
        let phone = snap.devices.iter().find(|(mac, _)| *mac == PHONE).unwrap();
        assert_eq!((phone.1.frames_sent, phone.1.bytes_sent), (2, 150));
        let laptop = snap.devices.iter().find(|(mac, _)| *mac == LAPTOP).unwrap();
        assert_eq!(laptop.1.bytes_received, 150);
        // The flusher still gets everything.
        assert_eq!(totals(&mut m)[&PHONE].counts.bytes_sent, 150);
        assert!(m.snapshot().devices.is_empty());
    }

    #[test]
    fn broadcast_and_multicast_are_sent_only() {
        let mut m = meter(Some(GW));
        m.ingest(&frame(PHONE, Dest::Group, IpPair::None, 60, 1));
        let t = totals(&mut m);
        assert_eq!(t.len(), 1);
        assert_eq!(t[&PHONE].counts.bytes_sent, 60);
        assert_eq!(t[&PHONE].counts.bytes_received, 0);
    }

    #[test]
    fn internet_both_directions_with_known_gateway() {
        let mut m = meter(Some(GW));
        // Upload: phone → gateway, destination public.
        m.ingest(&frame(
            PHONE,
            uni(GW),
            ip4([192, 168, 1, 2], [93, 184, 216, 34]),
            1000,
            1,
        ));
        // Download: gateway → phone, source public.
        m.ingest(&frame(
            GW,
            uni(PHONE),
            ip4([93, 184, 216, 34], [192, 168, 1, 2]),
            1500,
            2,
        ));
        // To the router's own LAN address (DNS): local.
        m.ingest(&frame(
            PHONE,
            uni(GW),
            ip4([192, 168, 1, 2], [192, 168, 1, 1]),
            80,
            3,
        ));
        // From the router's own address: local.
        m.ingest(&frame(
            GW,
            uni(PHONE),
            ip4([192, 168, 1, 1], [192, 168, 1, 2]),
            90,
            4,
        ));
        // Public destination but not via the gateway (LAN peer): local.
        m.ingest(&frame(
            PHONE,
            uni(LAPTOP),
            ip4([192, 168, 1, 2], [8, 8, 8, 8]),
            70,
            5,
        ));
        let t = totals(&mut m);
        let p = &t[&PHONE].counts;
        assert_eq!(p.internet_upload_bytes, 1000);
        assert_eq!(p.internet_download_bytes, 1500);
        assert_eq!(p.local_bytes(), 80 + 90 + 70);
        let g = &t[&GW];
        assert!(g.is_gateway);
        assert_eq!(
            g.counts.internet_upload_bytes + g.counts.internet_download_bytes,
            0
        );
        assert_eq!(t[&LAPTOP].counts.local_bytes(), 70);
    }

    #[test]
    fn inferred_gateway_gives_the_same_numbers() {
        let frames = [
            frame(PHONE, uni(GW), ip4([192, 168, 1, 2], [1, 1, 1, 1]), 1000, 1),
            frame(GW, uni(PHONE), ip4([1, 1, 1, 1], [192, 168, 1, 2]), 1500, 2),
            frame(LAPTOP, uni(GW), ip4([192, 168, 1, 3], [8, 8, 4, 4]), 400, 3),
            frame(GW, uni(LAPTOP), ip4([8, 8, 4, 4], [192, 168, 1, 3]), 600, 4),
            frame(
                PHONE,
                uni(LAPTOP),
                ip4([192, 168, 1, 2], [192, 168, 1, 3]),
                300,
                5,
            ),
            frame(
                GW,
                uni(PHONE),
                ip4([192, 168, 1, 1], [192, 168, 1, 2]),
                90,
                6,
            ),
        ];
        let mut known = meter(Some(GW));
        let mut unknown = meter(None);
        known.ingest_batch(&frames);
        unknown.ingest_batch(&frames);
        let mut t = Totals::default();
        let d = unknown.take_delta();
        assert_eq!(d.infer_gateway(), Some(GW));
        t.add(&d);
        assert_eq!(t.gateway(), Some(GW));
        assert_eq!(t.devices(), {
            let mut k = Totals::default();
            k.add(&known.take_delta());
            k.devices()
        });
    }

    #[test]
    fn many_nonlocal_peers_spill_without_loss() {
        let mut m = meter(None);
        // The phone talks to public addresses through four different MACs (only one is the
        // gateway); inline slots hold two, the rest spill.
        let others: Vec<MacAddr> = (10..13).map(|i| MacAddr([0, 0, 0, 0, 0, i])).collect();
        for (i, o) in others.iter().enumerate() {
            m.ingest(&frame(
                PHONE,
                uni(*o),
                ip4([10, 0, 0, 2], [1, 2, 3, 4]),
                10,
                i as i64,
            ));
        }
        for _ in 0..10 {
            m.ingest(&frame(
                PHONE,
                uni(GW),
                ip4([10, 0, 0, 2], [1, 2, 3, 4]),
                100,
                9,
            ));
            m.ingest(&frame(
                GW,
                uni(PHONE),
                ip4([1, 2, 3, 4], [10, 0, 0, 2]),
                100,
                9,
            ));
        }
        let d = m.take_delta();
        let (usage, _) = d.minute_usage(Some(GW));
        let p = usage.iter().find(|u| u.mac == PHONE).unwrap();
        assert_eq!(p.counts.internet_upload_bytes, 1000);
        assert_eq!(p.counts.internet_download_bytes, 1000);
    }

    #[test]
    fn vlan_and_qinq_frames_belong_to_their_macs() {
        // Decode real bytes: one 802.1Q and one QinQ frame, same MACs as untagged.
        let mut f = Vec::new();
        f.extend_from_slice(&LAPTOP.0);
        f.extend_from_slice(&PHONE.0);
        f.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 3,
        ]);
        let mut m = meter(Some(GW));
        let fr = decode(LinkType::Ethernet, 7, &f, 1200).unwrap();
        m.ingest(&fr);
        let t = totals(&mut m);
        assert_eq!(t[&PHONE].counts.bytes_sent, 1200);
        assert_eq!(t[&LAPTOP].counts.bytes_received, 1200);
        assert_eq!(t[&PHONE].ips, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))]);
    }

    #[test]
    fn ipv6_local_public_and_router_announced() {
        let gua_phone: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0002;
        let gua_laptop: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0003;
        let public: u128 = 0x2606_4700_0000_0000_0000_0000_0000_1111;
        let mut m = meter(Some(GW));
        let lan = IpPair::V6 {
            src: gua_phone,
            dst: gua_laptop,
        };
        // Before the RA the GUA /64 is unknown: phone → gateway to a GUA counts as internet.
        m.ingest(&frame(
            PHONE,
            uni(GW),
            IpPair::V6 {
                src: gua_phone,
                dst: gua_laptop,
            },
            100,
            1,
        ));
        // The router announces 2001:db8:1::/64.
        let mut ra = frame(
            GW,
            Dest::Group,
            IpPair::V6 {
                src: 0xfe80 << 112,
                dst: 0xff02 << 112 | 1,
            },
            120,
            2,
        );
        ra.ra_prefixes[0] = (0x2001_0db8_0001_0000u128 << 64, 64);
        m.ingest(&ra);
        m.ingest(&frame(
            PHONE,
            uni(GW),
            IpPair::V6 {
                src: gua_phone,
                dst: gua_laptop,
            },
            100,
            3,
        ));
        m.ingest(&frame(PHONE, uni(LAPTOP), lan, 200, 4));
        m.ingest(&frame(
            PHONE,
            uni(GW),
            IpPair::V6 {
                src: gua_phone,
                dst: public,
            },
            300,
            5,
        ));
        m.ingest(&frame(
            GW,
            uni(PHONE),
            IpPair::V6 {
                src: public,
                dst: gua_phone,
            },
            400,
            6,
        ));
        m.ingest(&frame(
            PHONE,
            uni(GW),
            IpPair::V6 {
                src: 0xfe80 << 112 | 2,
                dst: 0xfe80 << 112 | 1,
            },
            50,
            7,
        ));
        let t = totals(&mut m);
        let p = &t[&PHONE].counts;
        assert_eq!(p.internet_upload_bytes, 100 + 300);
        assert_eq!(p.internet_download_bytes, 400);
        assert_eq!(p.local_bytes(), 100 + 200 + 50);
        assert!(m.locality().is_local_v6(gua_laptop));
    }

    #[test]
    fn truncated_ip_is_local_and_garbage_counts_at_layer2() {
        let mut m = meter(Some(GW));
        // Decoded from a frame whose IP header was cut: IpPair::None, so local even via gateway.
        m.ingest(&frame(PHONE, uni(GW), IpPair::None, 1500, 1));
        let t = totals(&mut m);
        assert_eq!(t[&PHONE].counts.bytes_sent, 1500);
        assert_eq!(t[&PHONE].counts.internet_upload_bytes, 0);
        // caplen < len: the wire length counts.
        let mut f = Vec::new();
        f.extend_from_slice(&GW.0);
        f.extend_from_slice(&PHONE.0);
        f.extend_from_slice(&[0x08, 0x00, 0x45]);
        let fr = decode(LinkType::Ethernet, 1, &f, 9000).unwrap();
        m.ingest(&fr);
        let t = totals(&mut m);
        assert_eq!(t[&PHONE].counts.bytes_sent, 9000);
    }

    #[test]
    fn minutes_are_separate_segments() {
        let mut m = meter(Some(GW));
        m.ingest(&frame(PHONE, uni(LAPTOP), IpPair::None, 10, 0));
        m.ingest(&frame(PHONE, uni(LAPTOP), IpPair::None, 20, MIN + 5));
        m.ingest(&frame(PHONE, uni(LAPTOP), IpPair::None, 40, 2 * MIN));
        // A timestamp that goes back still lands in its own minute.
        m.ingest(&frame(PHONE, uni(LAPTOP), IpPair::None, 80, 10));
        assert_eq!(m.pending_segments(), 4);
        let d = m.take_delta();
        let (usage, _) = d.minute_usage(None);
        let mut per_min: HashMap<i64, u64> = HashMap::new();
        for u in usage.iter().filter(|u| u.mac == PHONE) {
            *per_min.entry(u.minute).or_default() += u.counts.bytes_sent;
        }
        assert_eq!(per_min[&0], 90);
        assert_eq!(per_min[&60], 20);
        assert_eq!(per_min[&120], 40);
        assert_eq!(m.pending_segments(), 0);
        assert!(m.take_delta().is_empty());
    }

    #[test]
    fn flood_of_random_macs_stays_bounded_and_keeps_totals() {
        let mut m = Meter::new(MeterConfig {
            max_devices: 64,
            gateway: Some(GW),
            ..Default::default()
        });
        let mut total = 0u64;
        // The real household keeps talking while 100k random MACs arrive.
        for i in 0..100_000u64 {
            let rnd = MacAddr::from_u64(
                (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16) & !0x0100_0000_0000,
            );
            m.ingest(&frame(rnd, uni(LAPTOP), IpPair::None, 64, 1));
            m.ingest(&frame(PHONE, uni(GW), IpPair::None, 1000, 1));
            total += 64 + 1000;
            assert!(m.current.len() <= 64);
        }
        assert!(m.evictions() > 0);
        let d = m.take_delta();
        let (usage, other) = d.minute_usage(None);
        let counted: u64 = usage.iter().map(|u| u.counts.bytes_sent).sum::<u64>()
            + other.iter().map(|(_, o)| o.counts.bytes_sent).sum::<u64>();
        assert_eq!(counted, total, "evicted traffic is kept in 'other'");
        // The busy devices survive eviction with their exact counts.
        let phone = usage.iter().find(|u| u.mac == PHONE).unwrap();
        assert_eq!(phone.counts.bytes_sent, 100_000 * 1000);
        assert!(usage.iter().any(|u| u.mac == LAPTOP));
    }

    #[test]
    fn totals_stay_bounded_across_many_deltas() {
        let mut m = Meter::new(MeterConfig {
            max_devices: 64,
            gateway: Some(GW),
            ..Default::default()
        });
        let mut t = Totals::new(64);
        let mut total = 0;
        for round in 0..200u64 {
            for i in 0..50u64 {
                let rnd = MacAddr::from_u64(((round * 50 + i) << 8) & 0xfeff_ffff_ffff);
                m.ingest(&frame(rnd, uni(LAPTOP), IpPair::None, 64, 1));
                total += 64;
            }
            m.ingest(&frame(PHONE, uni(GW), IpPair::None, 1000, 1));
            total += 1000;
            t.add(&m.take_delta());
            assert!(t.devices.len() <= 64);
        }
        let devices = t.devices();
        let sent: u64 =
            devices.iter().map(|d| d.counts.bytes_sent).sum::<u64>() + t.other().counts.bytes_sent;
        assert_eq!(sent, total);
        assert_eq!(
            devices
                .iter()
                .find(|d| d.mac == PHONE)
                .unwrap()
                .counts
                .bytes_sent,
            200_000
        );
    }

    #[test]
    fn linux_cooked_host_frames_resolve_to_the_capture_host() {
        let mut m = meter(None);
        m.ingest(&frame(
            LAPTOP,
            Dest::FromCaptureHost { ifindex: 2 },
            IpPair::None,
            100,
            1,
        ));
        m.ingest(&frame(
            PHONE,
            Dest::CaptureHost { ifindex: 2 },
            IpPair::None,
            70,
            2,
        ));
        // Unknown interface: nobody to credit.
        m.ingest(&frame(
            PHONE,
            Dest::CaptureHost { ifindex: 9 },
            IpPair::None,
            30,
            3,
        ));
        let t = totals(&mut m);
        assert_eq!(t[&LAPTOP].counts.bytes_received, 70);
        assert_eq!(t[&PHONE].counts.bytes_sent, 100);
    }

    #[test]
    fn arp_teaches_addresses_and_set_gateway_seals() {
        let mut m = meter(None);
        let mut f = frame(PHONE, Dest::Group, IpPair::None, 60, 1);
        f.arp = Some(Arp {
            op: 1,
            sender_mac: PHONE,
            sender_ip: v4([192, 168, 1, 2]),
            target_mac: MacAddr::default(),
            target_ip: v4([192, 168, 1, 1]),
        });
        m.ingest(&f);
        m.set_gateway(Some(GW));
        assert_eq!(m.pending_segments(), 1);
        let t = totals(&mut m);
        assert_eq!(
            t[&PHONE].ips,
            vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2))]
        );
    }

    /// Per device and minute: remote rows sum to the internet bytes, kept remotes exactly.
    fn check_remotes(d: &Delta, gw: Option<MacAddr>) -> HashMap<(MacAddr, String), (u64, u64)> {
        let (usage, _) = d.minute_usage(gw);
        let rows = d.remote_usage(gw);
        let mut per_dev: HashMap<(MacAddr, i64), (u64, u64)> = HashMap::new();
        let mut per_remote = HashMap::new();
        for r in &rows {
            let v = per_dev.entry((r.mac, r.minute)).or_default();
            v.0 += r.up;
            v.1 += r.down;
            let v: &mut (u64, u64) = per_remote
                .entry((r.mac, crate::endpoints::remote_text(r.remote)))
                .or_default();
            v.0 += r.up;
            v.1 += r.down;
        }
        for u in &usage {
            let want = (
                u.counts.internet_upload_bytes,
                u.counts.internet_download_bytes,
            );
            let got = per_dev.remove(&(u.mac, u.minute)).unwrap_or_default();
            assert_eq!(got, want, "{} minute {}", u.mac, u.minute);
        }
        assert!(per_dev.is_empty(), "rows without usage: {per_dev:?}");
        per_remote
    }

    fn remotes_meter(gw: Option<MacAddr>) -> Meter {
        Meter::new(MeterConfig {
            gateway: gw,
            remote_endpoints: true,
            ..Default::default()
        })
    }

    #[test]
    fn remote_endpoints_count_internet_bytes_per_remote_exactly() {
        let frames = [
            frame(PHONE, uni(GW), ip4([192, 168, 1, 2], [1, 1, 1, 1]), 1000, 1),
            frame(GW, uni(PHONE), ip4([1, 1, 1, 1], [192, 168, 1, 2]), 1500, 2),
            frame(PHONE, uni(GW), ip4([192, 168, 1, 2], [8, 8, 8, 8]), 70, 3),
            // Local: not a remote.
            frame(
                PHONE,
                uni(GW),
                ip4([192, 168, 1, 2], [192, 168, 1, 1]),
                80,
                4,
            ),
            frame(
                LAPTOP,
                uni(GW),
                ip4([192, 168, 1, 3], [1, 1, 1, 1]),
                400,
                MIN + 1,
            ),
            frame(
                GW,
                uni(LAPTOP),
                IpPair::V6 {
                    src: 0x2606_4700 << 96 | 0x1111,
                    dst: 0x2001_0db8 << 96 | 3,
                },
                600,
                MIN + 2,
            ),
        ];
        for gw in [Some(GW), None] {
            let mut m = remotes_meter(gw);
            m.ingest_batch(&frames);
            let d = m.take_delta();
            let inferred = d.gateway.or_else(|| d.infer_gateway());
            assert_eq!(inferred, Some(GW));
            let r = check_remotes(&d, inferred);
            if gw.is_some() {
                assert_eq!(r[&(PHONE, "1.1.1.1".into())], (1000, 1500));
                assert_eq!(r[&(PHONE, "8.8.8.8".into())], (70, 0));
                assert_eq!(r[&(LAPTOP, "1.1.1.1".into())], (400, 0));
                assert_eq!(r[&(LAPTOP, "2606:4700::1111".into())], (0, 600));
                assert!(!r.contains_key(&(PHONE, "other".into())));
            } else {
                // Counted before the gateway was known: no remote, all "other".
                assert_eq!(r[&(PHONE, "other".into())], (1070, 1500));
            }
        }
    }

    #[test]
    fn remote_endpoints_off_give_no_rows() {
        let mut m = meter(Some(GW));
        m.ingest(&frame(
            PHONE,
            uni(GW),
            ip4([10, 0, 0, 2], [1, 1, 1, 1]),
            100,
            1,
        ));
        let d = m.take_delta();
        assert!(d.remote_usage(Some(GW)).is_empty());
        let mut t = Totals::default();
        t.add(&d);
        assert!(t.remotes().is_empty());
    }

    #[test]
    fn a_flood_of_remotes_stays_bounded_and_exact() {
        let mut m = remotes_meter(Some(GW));
        for i in 0..200_000u32 {
            // 1.0.0.0 to 8.255.255.255: public, never a local range.
            let rnd = (i.wrapping_mul(0x9e37_79b9) & 0x07ff_ffff) | 0x0100_0000;
            m.ingest(&frame(
                PHONE,
                uni(GW),
                ip4([10, 0, 0, 2], rnd.to_be_bytes()),
                60,
                i as i64,
            ));
            m.ingest(&frame(
                GW,
                uni(PHONE),
                ip4([93, 184, 216, 34], [10, 0, 0, 2]),
                1500,
                i as i64,
            ));
        }
        let d = m.take_delta();
        let r = check_remotes(&d, Some(GW));
        assert_eq!(r[&(PHONE, "93.184.216.34".into())], (0, 200_000 * 1500));
        // At most ENTRIES remotes plus other per device (one minute here).
        assert!(r.len() <= crate::endpoints::ENTRIES + 1, "{}", r.len());
        let mut t = Totals::default();
        t.add(&d);
        let dr = &t.remotes()[0];
        let sum = dr
            .remotes
            .iter()
            .fold(dr.other, |(u, d), r| (u + r.1, d + r.2));
        assert_eq!(sum, (200_000 * 60, 200_000 * 1500));
    }

    #[test]
    fn special_ranges_are_local() {
        let l = Locality::new(["203.0.113.0/24".parse().unwrap()]);
        for a in [
            [10, 1, 2, 3],
            [172, 16, 0, 1],
            [172, 31, 255, 255],
            [192, 168, 0, 1],
            [100, 64, 0, 1],
            [100, 127, 255, 255],
            [169, 254, 1, 1],
            [224, 0, 0, 251],
            [255, 255, 255, 255],
            [203, 0, 113, 9],
        ] {
            assert!(l.is_local_v4(v4(a)), "{a:?}");
        }
        for a in [
            [172, 32, 0, 1],
            [100, 128, 0, 1],
            [8, 8, 8, 8],
            [192, 169, 0, 1],
        ] {
            assert!(!l.is_local_v4(v4(a)), "{a:?}");
        }
        assert!(l.is_local_v6(0xfe80 << 112));
        assert!(l.is_local_v6(0xfd00 << 112 | 5));
        assert!(l.is_local_v6(0xff02 << 112 | 0xfb));
        assert!(!l.is_local_v6(0x2001_4860 << 96));
    }
}
