//! What one flush interval learned: (device, remote IP) → name, in a fixed amount of memory.
//! The writer takes it whole once per interval and stores it in one transaction; the database
//! keeps the names across intervals, so this map only has to hold one interval's news.
//!
//! At [`Table::new`]'s capacity the entries seen longest ago are dropped (half at once, so a
//! flood of answers costs one sort per half-capacity insertions, not one per insertion).

use super::{Learned, Source};
use crate::model::MacAddr;
use std::collections::HashMap;
use std::net::IpAddr;

/// One (device, remote IP)'s name as the interval saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub source: Source,
    pub first_seen: i64,
    pub last_seen: i64,
    /// The TTL of the DNS answer that gave the name (seconds); `None` for an SNI.
    pub ttl: Option<u32>,
}

/// One row of a [`Table::take`]: (device, remote IP) and what was learned.
pub type Row = ((MacAddr, IpAddr), Entry);

pub struct Table {
    entries: HashMap<(MacAddr, IpAddr), Entry>,
    capacity: usize,
    evicted: u64,
}

impl Table {
    pub fn new(capacity: usize) -> Table {
        Table {
            entries: HashMap::new(),
            capacity: capacity.max(2),
            evicted: 0,
        }
    }

    /// Records one fact. An SNI is never replaced by a DNS name for the same address (a
    /// ClientHello names the server actually contacted); otherwise the newest name wins.
    pub fn add(&mut self, l: Learned) {
        let key = (l.device, l.remote);
        if let Some(e) = self.entries.get_mut(&key) {
            e.last_seen = e.last_seen.max(l.ts);
            e.first_seen = e.first_seen.min(l.ts);
            if !e.source.is_sni() || l.source.is_sni() {
                e.name = l.name;
                e.source = l.source;
                e.ttl = l.ttl;
            }
            return;
        }
        if self.entries.len() >= self.capacity {
            self.evict_oldest_half();
        }
        self.entries.insert(
            key,
            Entry {
                name: l.name,
                source: l.source,
                first_seen: l.ts,
                last_seen: l.ts,
                ttl: l.ttl,
            },
        );
    }

    fn evict_oldest_half(&mut self) {
        let mut seen: Vec<i64> = self.entries.values().map(|e| e.last_seen).collect();
        let mid = seen.len() / 2;
        let (_, cut, _) = seen.select_nth_unstable(mid);
        let cut = *cut;
        let before = self.entries.len();
        self.entries.retain(|_, e| e.last_seen > cut);
        // All equally old: drop arbitrary ones rather than grow.
        if self.entries.len() >= self.capacity {
            let drop: Vec<_> = self.entries.keys().take(mid.max(1)).copied().collect();
            for k in drop {
                self.entries.remove(&k);
            }
        }
        self.evicted += (before - self.entries.len()) as u64;
    }

    /// Everything learned since the last take, and how many entries were dropped for room.
    pub fn take(&mut self) -> (Vec<Row>, u64) {
        let evicted = std::mem::take(&mut self.evicted);
        (self.entries.drain().collect(), evicted)
    }

    /// Puts back rows a failed write could not store, unless newer news for the same pair
    /// came meanwhile or the table is full (names are hints: dropping some is acceptable).
    pub fn restore(&mut self, rows: Vec<Row>) {
        for (key, e) in rows {
            if self.entries.len() >= self.capacity {
                self.evicted += 1;
                continue;
            }
            self.entries.entry(key).or_insert(e);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(ts: i64, ip: &str, name: &str, source: Source) -> Learned {
        Learned {
            ts,
            device: MacAddr([2, 0, 0, 0, 0, 9]),
            remote: ip.parse().unwrap(),
            name: name.into(),
            source,
            ttl: (source == Source::Dns).then_some(30),
        }
    }

    #[test]
    fn sni_wins_over_dns_for_the_same_address() {
        let mut t = Table::new(16);
        t.add(l(1, "10.0.0.1", "a.example", Source::Dns));
        t.add(l(2, "10.0.0.1", "b.example", Source::Tls));
        t.add(l(3, "10.0.0.1", "c.example", Source::Dns));
        let (rows, _) = t.take();
        assert_eq!(rows.len(), 1);
        let e = &rows[0].1;
        assert_eq!((e.name.as_str(), e.source), ("b.example", Source::Tls));
        assert_eq!((e.first_seen, e.last_seen), (1, 3));
        assert!(t.is_empty());
    }

    #[test]
    fn memory_stays_bounded_and_the_newest_stay() {
        let mut t = Table::new(1000);
        for i in 0..100_000u32 {
            let ip = std::net::Ipv4Addr::from(i).to_string();
            t.add(l(i64::from(i), &ip, "x.example", Source::Dns));
            assert!(t.len() <= 1000);
        }
        let (rows, evicted) = t.take();
        assert_eq!(rows.len() as u64 + evicted, 100_000);
        assert!(
            rows.iter()
                .any(|((_, ip), _)| ip.to_string() == "0.1.134.159")
        );
    }
}
