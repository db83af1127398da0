//! The passive learner: observations from the discovery parsers merged, per MAC, into the batch
//! the store writes, with presence spans built on the presence window.
//!
//! It owns the bounded in-memory batch between two store writes: at most `max_macs` MACs, and
//! per MAC at most a handful of addresses, names, services and spans, so a flood of hostile
//! announcements cannot grow memory. It must never touch the database or block: the writer
//! (daemon, replay) takes the batch and writes it in one transaction.

use super::observe::{Fact, Observation, is_device_mac};
use super::wire;
use crate::capture::LinkType;
use crate::model::{MacAddr, TimestampNs};
use crate::store::discovery::MacFacts;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

const MAX_ADDRESSES: usize = 16;
const MAX_NAMES: usize = 8;
const MAX_SERVICES: usize = 32;
const MAX_CLIENT_IDS: usize = 4;
const MAX_SPANS: usize = 64;

/// Adds a sighting at `ts` to time-ordered spans: extends a span it is within `window` of,
/// else starts a new one. When there are too many, the two closest neighbours are joined (the
/// store would only see a coarser history, never a wrong "online").
pub fn add_span(
    spans: &mut Vec<(TimestampNs, TimestampNs)>,
    from: TimestampNs,
    to: TimestampNs,
    window: i64,
) {
    let (from, to) = (from.min(to), from.max(to));
    // The common case, time moving forwards: extend or follow the last span.
    if let Some(last) = spans.last_mut()
        && from >= last.0
    {
        if from <= last.1.saturating_add(window) {
            last.1 = last.1.max(to);
        } else {
            spans.push((from, to));
        }
    } else {
        let pos = spans.partition_point(|s| s.0 <= from);
        spans.insert(pos, (from, to));
        let mut merged: Vec<(TimestampNs, TimestampNs)> = Vec::with_capacity(spans.len());
        for &s in spans.iter() {
            match merged.last_mut() {
                Some(m) if s.0 <= m.1.saturating_add(window) => m.1 = m.1.max(s.1),
                _ => merged.push(s),
            }
        }
        *spans = merged;
    }
    while spans.len() > MAX_SPANS {
        let j = (0..spans.len() - 1)
            .min_by_key(|&j| spans[j + 1].0 - spans[j].1)
            .unwrap_or(0);
        spans[j].1 = spans[j].1.max(spans[j + 1].1);
        spans.remove(j + 1);
    }
}

/// The batch being collected.
#[derive(Debug)]
pub struct Learner {
    macs: HashMap<MacAddr, MacFacts>,
    max_macs: usize,
    window: i64,
    /// Observations of MACs refused because the batch was full (a MAC flood).
    dropped: u64,
    scratch: Vec<Observation>,
}

impl Learner {
    /// `window_ns`: the presence window; `max_macs`: the bound on MACs per batch.
    pub fn new(window_ns: i64, max_macs: usize) -> Learner {
        Learner {
            macs: HashMap::new(),
            max_macs,
            window: window_ns,
            dropped: 0,
            scratch: Vec::new(),
        }
    }

    /// Learns from one captured frame (any frame: those that are not discovery protocols give
    /// nothing).
    pub fn frame(&mut self, link: LinkType, ts: TimestampNs, data: &[u8]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        wire::learn(link, ts, data, &mut scratch);
        for o in scratch.drain(..) {
            self.observe(o);
        }
        self.scratch = scratch;
    }

    /// Traffic (not just discovery) proves presence: the daemon reports each flush interval's
    /// sightings here, replay every frame's source.
    pub fn traffic(&mut self, mac: MacAddr, first: TimestampNs, last: TimestampNs) {
        let window = self.window;
        if let Some(f) = self.entry(mac) {
            add_span(&mut f.spans, first, last, window);
        }
    }

    fn entry(&mut self, mac: MacAddr) -> Option<&mut MacFacts> {
        if !is_device_mac(mac) {
            return None;
        }
        if !self.macs.contains_key(&mac) && self.macs.len() >= self.max_macs {
            self.dropped += 1;
            return None;
        }
        Some(self.macs.entry(mac).or_insert_with(|| MacFacts {
            mac,
            ..Default::default()
        }))
    }

    pub fn observe(&mut self, o: Observation) {
        let window = self.window;
        let Some(f) = self.entry(o.mac) else { return };
        add_span(&mut f.spans, o.ts, o.ts, window);
        let ts = o.ts;
        match o.fact {
            Fact::Seen => {}
            Fact::Ipv4(ip) => note_addr(&mut f.addresses, IpAddr::V4(ip), ts),
            Fact::Ipv6(ip) => note_addr(&mut f.addresses, IpAddr::V6(ip), ts),
            Fact::Hostname(src, name) => {
                let src = src.as_str();
                if let Some(h) = f.hostnames.iter_mut().find(|h| h.0 == src && h.1 == name) {
                    h.2 = h.2.min(ts);
                    h.3 = h.3.max(ts);
                } else if f.hostnames.len() < MAX_NAMES {
                    f.hostnames.push((src, name, ts, ts));
                }
            }
            Fact::VendorClass(v) => f.vendor_class = Some(v),
            Fact::ClientId(c) => {
                if !f.client_ids.contains(&c) && f.client_ids.len() < MAX_CLIENT_IDS {
                    f.client_ids.push(c);
                }
            }
            Fact::Service(s) => {
                if !f.services.contains(&s) && f.services.len() < MAX_SERVICES {
                    f.services.push(s);
                }
            }
            Fact::Router => f.router = true,
        }
    }

    pub fn len(&self) -> usize {
        self.macs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.macs.is_empty()
    }

    /// Whether the batch holds a MAC outside `known` (a device the writer has not stored yet).
    pub fn has_unknown(&self, known: &HashSet<MacAddr>) -> bool {
        self.macs.keys().any(|m| !known.contains(m))
    }

    /// What was refused since the last take because the batch was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The batch so far, leaving the learner empty.
    pub fn take(&mut self) -> Vec<MacFacts> {
        self.dropped = 0;
        let mut v: Vec<MacFacts> = std::mem::take(&mut self.macs).into_values().collect();
        v.sort_by_key(|f| f.spans.first().map(|s| s.0).unwrap_or(0));
        v
    }

    /// A read-only view for replay's JSON.
    pub fn facts(&self, mac: &MacAddr) -> Option<&MacFacts> {
        self.macs.get(mac)
    }
}

fn note_addr(list: &mut Vec<(IpAddr, TimestampNs, TimestampNs)>, ip: IpAddr, ts: TimestampNs) {
    if let Some(a) = list.iter_mut().find(|a| a.0 == ip) {
        a.1 = a.1.min(ts);
        a.2 = a.2.max(ts);
    } else if list.len() < MAX_ADDRESSES {
        list.push((ip, ts, ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::observe::NameSource;

    const S: i64 = 1_000_000_000;

    #[test]
    fn spans_join_within_the_window_and_split_beyond_it() {
        let mut s = Vec::new();
        for t in [0, 60, 120, 1000, 1100, 30] {
            add_span(&mut s, t * S, t * S, 300 * S);
        }
        assert_eq!(s, [(0, 120 * S), (1000 * S, 1100 * S)]);
        add_span(&mut s, 400 * S, 700 * S, 300 * S);
        assert_eq!(s, [(0, 1100 * S)]);
    }

    #[test]
    fn spans_stay_bounded() {
        let mut s = Vec::new();
        for t in 0..1000 {
            add_span(&mut s, t * 1000 * S, t * 1000 * S, S);
        }
        assert_eq!(s.len(), MAX_SPANS);
        assert_eq!(s[0].0, 0);
        assert_eq!(s.last().unwrap().1, 999_000 * S);
    }

    #[test]
    fn batch_is_bounded_under_a_mac_flood_and_per_mac_lists_too() {
        let mut l = Learner::new(300 * S, 100);
        for i in 0..10_000u64 {
            let mac = MacAddr::from_u64(0x0200_0000_0000 | i);
            l.observe(Observation {
                ts: 1,
                mac,
                fact: Fact::Seen,
            });
        }
        assert_eq!(l.len(), 100);
        assert_eq!(l.dropped(), 9_900);
        let mac = MacAddr::from_u64(0x0200_0000_0000);
        for i in 0..1000 {
            l.observe(Observation {
                ts: i,
                mac,
                fact: Fact::Hostname(NameSource::Mdns, format!("name{i}")),
            });
        }
        assert_eq!(l.facts(&mac).unwrap().hostnames.len(), MAX_NAMES);
        assert_eq!(l.take().len(), 100);
        assert!(l.is_empty());
    }
}
