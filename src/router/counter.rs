//! Turning successive readings of a router's cumulative WAN counters into byte deltas.
//!
//! Routers report totals since some start (boot, connection, daemon start), not deltas, and
//! they report them badly: UPnP IGD's `ui4` counters wrap at 2³² (every 34 s at 1 Gbit/s),
//! several routers leave the byte counters stuck at 4294967295 or cap them at 2³¹−1 while the
//! packet counters still move, and a FRITZ!Box starts its 64-bit counters again at each new
//! connection. This module decides, per reading, which of those happened and how many bytes
//! really passed; it does no I/O and reads no clock (the caller passes elapsed seconds).

/// How wide the router says its counters are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// UPnP `ui4`: wraps at 2³², unless the router prints wider values (Debian's miniupnpd
    /// prints the kernel's 64-bit counter; the tracker notices and stops assuming a wrap).
    Bits32,
    /// SNMP `Counter64`, TR-064's `X_AVM_DE_TotalBytes*64`: a decrease is a reset.
    Bits64,
}

/// One reading of the router's WAN counters. Up is what the router sent to the internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Packet counters, when the source has them: they tell a wrap from a reset and a stuck
    /// byte counter from an idle line.
    pub packets_up: Option<u64>,
    pub packets_down: Option<u64>,
    pub width: Width,
}

/// Something unusual the tracker noticed on one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A 32-bit counter went past 2³² − 1 and started again; the delta includes the wrap.
    Wrapped,
    /// The counter started again (router or connection restart): the bytes since the restart
    /// are counted, what passed between the last reading and the restart is lost.
    Reset,
    /// The byte counter did not move (or sits at a known cap) while packets did: its figures
    /// cannot be used until it moves again. Nothing is counted for the interval.
    Stuck { at: u64 },
}

/// The outcome of one reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub up: Option<Event>,
    pub down: Option<Event>,
}

impl Step {
    /// Whether either direction's byte counter is stuck.
    pub fn stuck(&self) -> bool {
        matches!(self.up, Some(Event::Stuck { .. }))
            || matches!(self.down, Some(Event::Stuck { .. }))
    }
}

/// Faster than any household line (10 Gbit/s): a "wrap" that would mean more than this was a
/// reset instead.
pub const MAX_BYTES_PER_SEC: f64 = 1.25e9;

/// Values several routers freeze their byte counters at.
pub const STUCK_VALUES: [u64; 2] = [u32::MAX as u64, i32::MAX as u64];

/// Keeps the previous reading and turns each new one into a [`Step`].
#[derive(Debug, Default)]
pub struct Tracker {
    prev: Option<Reading>,
    /// The source printed a value above 2³² − 1: its "32-bit" counters are really wider.
    wide: bool,
    /// The last reading looked frozen (bytes still, packets moved), per direction (up, down).
    suspect: [bool; 2],
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Forgets the baseline (another router answers now); the next reading is a new baseline.
    pub fn forget(&mut self) {
        *self = Tracker::default();
    }

    /// Whether a baseline is held.
    pub fn has_baseline(&self) -> bool {
        self.prev.is_some()
    }

    /// Takes `r`, read `elapsed` seconds after the previous reading. The first reading only sets
    /// the baseline (a zero step): the router's totals since its boot are not this household's
    /// traffic since lanmeter started.
    pub fn update(&mut self, r: Reading, elapsed: f64) -> Step {
        let wide = [
            r.bytes_up,
            r.bytes_down,
            r.packets_up.unwrap_or(0),
            r.packets_down.unwrap_or(0),
        ]
        .iter()
        .any(|&v| v > u64::from(u32::MAX));
        self.wide |= wide;
        let width = if self.wide { Width::Bits64 } else { r.width };
        let Some(p) = self.prev.replace(r) else {
            return Step::default();
        };
        let (bytes_up, up) = self.confirm(
            0,
            delta(
                (p.bytes_up, r.bytes_up),
                p.packets_up.zip(r.packets_up),
                width,
                elapsed,
            ),
        );
        let (bytes_down, down) = self.confirm(
            1,
            delta(
                (p.bytes_down, r.bytes_down),
                p.packets_down.zip(r.packets_down),
                width,
                elapsed,
            ),
        );
        Step {
            bytes_up,
            bytes_down,
            up,
            down,
        }
    }
}

impl Tracker {
    /// A frozen-looking byte counter is reported stuck only at a known cap or on the second
    /// reading in a row: the counters are read one SOAP call (or one SNMP binding) apart, so a
    /// frame that arrives between the byte and the packet read looks frozen once.
    fn confirm(&mut self, dir: usize, (bytes, ev): (u64, Option<Event>)) -> (u64, Option<Event>) {
        match ev {
            Some(Event::Stuck { at }) => {
                let seen_before = std::mem::replace(&mut self.suspect[dir], true);
                if seen_before || STUCK_VALUES.contains(&at) {
                    (bytes, ev)
                } else {
                    (bytes, None)
                }
            }
            other => {
                self.suspect[dir] = false;
                (bytes, other)
            }
        }
    }
}

/// One counter's delta between two readings, with what happened to it.
fn delta(
    (prev, cur): (u64, u64),
    packets: Option<(u64, u64)>,
    width: Width,
    elapsed: f64,
) -> (u64, Option<Event>) {
    let packets_moved = packets.is_some_and(|(a, b)| b != a);
    let packets_went_back = packets.is_some_and(|(a, b)| b < a);
    if cur == prev {
        // An idle line keeps both still; bytes still while packets move is a frozen counter.
        // A value at a known cap is reported even then: it is the usual symptom.
        if packets_moved && !packets_went_back {
            return (0, Some(Event::Stuck { at: cur }));
        }
        return (0, None);
    }
    if cur > prev {
        return (cur - prev, None);
    }
    // The counter went back: a wrap (32-bit only) or a reset.
    if width == Width::Bits32 && !packets_went_back {
        let wrapped = cur + (1u64 << 32) - prev;
        // Without packet counters to tell, a wrap must also be possible at 10 Gbit/s.
        let plausible =
            packets.is_some() || (wrapped as f64) <= MAX_BYTES_PER_SEC * elapsed.max(1.0);
        if plausible {
            return (wrapped, Some(Event::Wrapped));
        }
    }
    (cur, Some(Event::Reset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r32(up: u64, down: u64, pu: u64, pd: u64) -> Reading {
        Reading {
            bytes_up: up,
            bytes_down: down,
            packets_up: Some(pu),
            packets_down: Some(pd),
            width: Width::Bits32,
        }
    }

    #[test]
    fn first_reading_is_a_baseline_then_deltas_follow() {
        let mut t = Tracker::new();
        assert_eq!(t.update(r32(1000, 5000, 10, 20), 0.0), Step::default());
        let s = t.update(r32(1500, 9000, 15, 30), 10.0);
        assert_eq!(
            (s.bytes_up, s.bytes_down, s.up, s.down),
            (500, 4000, None, None)
        );
    }

    #[test]
    fn a_32_bit_wrap_counts_the_bytes_across_it() {
        let mut t = Tracker::new();
        t.update(r32(4_294_967_000, 10, 100, 100), 0.0);
        let s = t.update(r32(704, 10, 105, 100), 10.0);
        assert_eq!(s.bytes_up, 296 + 704);
        assert_eq!(s.up, Some(Event::Wrapped));
        assert_eq!((s.bytes_down, s.down), (0, None));
    }

    #[test]
    fn a_reset_is_told_from_a_wrap_by_the_packet_counters() {
        let mut t = Tracker::new();
        t.update(r32(3_000_000_000, 2_000_000_000, 5_000_000, 4_000_000), 0.0);
        // Packets went back too: the router restarted; bytes since the restart are counted.
        let s = t.update(r32(1234, 5678, 10, 12), 10.0);
        assert_eq!((s.bytes_up, s.up), (1234, Some(Event::Reset)));
        assert_eq!((s.bytes_down, s.down), (5678, Some(Event::Reset)));
    }

    #[test]
    fn without_packet_counters_an_impossible_wrap_is_a_reset() {
        let no_packets = |up| Reading {
            bytes_up: up,
            bytes_down: 0,
            packets_up: None,
            packets_down: None,
            width: Width::Bits32,
        };
        let mut t = Tracker::new();
        t.update(no_packets(100_000), 0.0);
        // 4.29 GB in one second is faster than 10 Gbit/s: not a wrap.
        let s = t.update(no_packets(50), 1.0);
        assert_eq!((s.bytes_up, s.up), (50, Some(Event::Reset)));
        // After 10 s it could be a wrap (at 3.4 Gbit/s): counted as one.
        t.update(no_packets(4_294_000_000), 1.0);
        let s = t.update(no_packets(1_000), 10.0);
        assert_eq!((s.bytes_up, s.up), (967_296 + 1_000, Some(Event::Wrapped)));
    }

    #[test]
    fn a_64_bit_counter_that_goes_back_was_reset() {
        let r = |up| Reading {
            bytes_up: up,
            bytes_down: 0,
            packets_up: None,
            packets_down: None,
            width: Width::Bits64,
        };
        let mut t = Tracker::new();
        t.update(r(10_000_000_000), 0.0);
        let s = t.update(r(300), 10.0);
        assert_eq!((s.bytes_up, s.up), (300, Some(Event::Reset)));
    }

    #[test]
    fn a_ui4_value_above_2_32_makes_the_counter_64_bit_for_good() {
        // Debian's miniupnpd prints the kernel's 64-bit counter in a ui4 field.
        let mut t = Tracker::new();
        t.update(r32(4_000_000_000, 0, 10, 0), 0.0);
        let s = t.update(r32(4_552_940_042, 0, 70_000, 0), 1.0);
        assert_eq!((s.bytes_up, s.up), (552_940_042, None));
        // A later decrease is then a reset, not a wrap.
        let s = t.update(r32(1_000, 0, 70_001, 0), 1.0);
        assert_eq!((s.bytes_up, s.up), (1_000, Some(Event::Reset)));
    }

    #[test]
    fn a_byte_counter_frozen_while_packets_flow_is_stuck() {
        let mut t = Tracker::new();
        for cap in STUCK_VALUES {
            t.forget();
            t.update(r32(cap, 10, 100, 100), 0.0);
            let s = t.update(r32(cap, 10, 180, 100), 10.0);
            assert_eq!((s.bytes_up, s.up), (0, Some(Event::Stuck { at: cap })));
            assert!(s.stuck());
            // The idle direction (packets still too) is not stuck.
            assert_eq!(s.down, None);
        }
        // A frozen value that is not a known cap: stuck from the second such reading on; a
        // single one is a frame that arrived between the byte and the packet reads.
        t.forget();
        t.update(r32(1_000, 10, 100, 100), 0.0);
        assert!(!t.update(r32(1_000, 10, 101, 100), 10.0).stuck());
        assert!(!t.update(r32(1_060, 10, 101, 100), 10.0).stuck());
        assert!(!t.update(r32(1_060, 10, 150, 100), 10.0).stuck());
        let s = t.update(r32(1_060, 10, 190, 100), 10.0);
        assert_eq!(s.up, Some(Event::Stuck { at: 1_060 }));
        // An idle line is not stuck.
        t.forget();
        t.update(r32(5, 5, 1, 1), 0.0);
        assert!(!t.update(r32(5, 5, 1, 1), 10.0).stuck());
    }
}
