//! Clock sanity: which frame timestamps may decide the minute traffic is filed under.
//!
//! A Raspberry Pi has no real-time clock: it boots at the last shutdown time (fake-hwclock), at
//! systemd's build time, or in 1970/2000, and jumps to the real time when NTP syncs. Frames
//! captured before that carry the wrong date; stored as stamped they would sit in a day, week and
//! billing cycle that are not today's (issue 25).
//!
//! **The rule** (README, "Durability"): traffic stamped while the clock cannot be trusted is
//! counted, not dropped, and is filed under the first trusted minute:
//! - a stamp before [`CLOCK_FLOOR`] (a date no later than this release was made) is never
//!   trusted;
//! - live, the clock is trusted once the wall clock is past the floor and, when
//!   systemd-timesyncd runs (`/run/systemd/timesync/` exists), once it has synchronized
//!   (`/run/systemd/timesync/synchronized` exists), or at most [`TIMESYNC_PATIENCE`] after
//!   lanmeter started (a network without NTP must not stop the counting for good). Until then
//!   every row is held in memory
//!   (one row per device, so bounded like the meter) and is written, at the first flush after
//!   the clock became trusted, under that flush's minute;
//! - in a capture file (`replay --db`), the file's own stamps decide: rows stamped before the
//!   floor are held and filed under the minute of the next row stamped after it.
//!
//! Held traffic is in memory only: a crash before the clock is trusted loses it, like any
//! unflushed interval. Device sightings are stamped the same way.
use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// No frame stamped before this moment is believed: lanmeter did not exist yet. Bumped with each
/// release (a constant rather than the build time, so builds stay reproducible).
pub const CLOCK_FLOOR: jiff::Timestamp = jiff::Timestamp::constant(1_764_547_200, 0); // 2025-12-01T00:00:00Z

/// The directory systemd-timesyncd creates while it runs, and its "synchronized" flag file.
pub const TIMESYNC_DIR: &str = "/run/systemd/timesync";

/// How long a clock past the floor waits for timesyncd's synchronization before it is trusted
/// anyway (no NTP server reachable: the restored clock is the best there is).
pub const TIMESYNC_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether the system clock can be trusted now, as the live daemon sees it.
#[derive(Clone, Debug)]
pub struct SystemClock {
    floor: i64,
    timesync_dir: PathBuf,
    started: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new(CLOCK_FLOOR.as_second(), Path::new(TIMESYNC_DIR))
    }
}

impl SystemClock {
    pub fn new(floor: i64, timesync_dir: &Path) -> SystemClock {
        SystemClock {
            floor,
            timesync_dir: timesync_dir.to_path_buf(),
            started: std::time::Instant::now(),
        }
    }

    /// `None` when the clock is trusted at `now` (seconds), otherwise why not, for the log and
    /// the health page.
    pub fn distrust(&self, now: i64) -> Option<String> {
        if now < self.floor {
            return Some(format!(
                "the system clock says {}, before this lanmeter release existed: traffic is held until the clock is set (NTP)",
                jiff::Timestamp::from_second(now)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| now.to_string())
            ));
        }
        if self.timesync_dir.is_dir()
            && !self.timesync_dir.join("synchronized").exists()
            && self.started.elapsed() < TIMESYNC_PATIENCE
        {
            return Some(
                "systemd-timesyncd has not synchronized the clock yet: traffic is held until it has (at most 10 minutes)"
                    .into(),
            );
        }
        None
    }
}

/// Rows and sightings held back while the clock was not trusted, merged per device.
#[derive(Debug, Default)]
pub struct ClockGate {
    floor: i64,
    usage: HashMap<MacAddr, Counts>,
    seen: HashMap<MacAddr, bool>,
    /// The latest minute among the rows held, for [`ClockGate::release_as_stamped`].
    latest_held: Option<i64>,
}

impl ClockGate {
    pub fn new(floor: i64) -> ClockGate {
        ClockGate {
            floor,
            ..ClockGate::default()
        }
    }

    /// Devices with traffic held back now.
    pub fn held_devices(&self) -> usize {
        self.usage.len().max(self.seen.len())
    }

    /// Bytes (sent + received) held back now.
    pub fn held_bytes(&self) -> u64 {
        self.usage
            .values()
            .map(|c| c.bytes_sent + c.bytes_received)
            .sum()
    }

    /// Live: `trusted_minute` is the current minute when the wall clock is trusted, `None` while
    /// it is not. Untrusted: everything is held. Trusted: held rows are released into that
    /// minute, and rows still stamped before the floor are moved there too.
    pub fn admit_live(
        &mut self,
        usage: Vec<MinuteUsage>,
        seen: Vec<Sighting>,
        trusted_minute: Option<i64>,
    ) -> (Vec<MinuteUsage>, Vec<Sighting>) {
        let Some(minute) = trusted_minute else {
            self.hold(usage, seen);
            return (Vec::new(), Vec::new());
        };
        let (mut usage, mut seen) = self.split(usage, seen);
        self.log_release(minute);
        self.release(minute, &mut usage, &mut seen);
        (usage, seen)
    }

    /// Capture files: rows stamped before the floor are held and released into the earliest
    /// minute at or after the floor seen in this or a later call.
    pub fn admit_stamped(
        &mut self,
        usage: Vec<MinuteUsage>,
        seen: Vec<Sighting>,
    ) -> (Vec<MinuteUsage>, Vec<Sighting>) {
        let (mut usage, mut seen) = self.split(usage, seen);
        if let Some(first) = usage.iter().map(|u| u.minute).min() {
            self.log_release(first);
            self.release(first, &mut usage, &mut seen);
        }
        (usage, seen)
    }

    /// Keeps the rows at or after the floor; holds the rest.
    fn split(
        &mut self,
        usage: Vec<MinuteUsage>,
        seen: Vec<Sighting>,
    ) -> (Vec<MinuteUsage>, Vec<Sighting>) {
        let floor_ns = self.floor.saturating_mul(1_000_000_000);
        let (ok, early): (Vec<_>, Vec<_>) = usage.into_iter().partition(|u| u.minute >= self.floor);
        let (ok_seen, early_seen): (Vec<_>, Vec<_>) =
            seen.into_iter().partition(|s| s.last_seen >= floor_ns);
        self.hold(early, early_seen);
        // A device first seen before the floor and again after it: its first sighting is the
        // first trusted one.
        let ok_seen = ok_seen
            .into_iter()
            .map(|mut s| {
                if s.first_seen < floor_ns {
                    s.first_seen = s.last_seen;
                }
                s
            })
            .collect();
        (ok, ok_seen)
    }

    /// At the end (a stop while the clock is still untrusted, a file with no trusted stamp):
    /// what is held is written under the latest minute it was stamped with rather than lost, as
    /// before issue 25. Logged, since those rows sit at a wrong date.
    pub fn release_as_stamped(&mut self) -> (Vec<MinuteUsage>, Vec<Sighting>) {
        let (mut usage, mut seen) = (Vec::new(), Vec::new());
        if let Some(minute) = self.latest_held.take() {
            tracing::warn!(
                devices = self.held_devices(),
                bytes = self.held_bytes(),
                "the clock never became trusted: traffic held meanwhile is stored under the minute it was last stamped with"
            );
            self.release(minute, &mut usage, &mut seen);
        }
        (usage, seen)
    }

    fn hold(&mut self, usage: Vec<MinuteUsage>, seen: Vec<Sighting>) {
        for u in usage {
            self.latest_held = self.latest_held.max(Some(u.minute));
            self.usage.entry(u.mac).or_default().add(&u.counts);
        }
        for s in seen {
            *self.seen.entry(s.mac).or_default() |= s.is_gateway;
        }
    }

    fn log_release(&self, minute: i64) {
        if self.held_devices() > 0 {
            tracing::info!(
                devices = self.held_devices(),
                bytes = self.held_bytes(),
                minute = %jiff::Timestamp::from_second(minute).map(|t| t.to_string()).unwrap_or_default(),
                "the clock is trusted now: traffic held while it was not is filed under this minute"
            );
        }
    }

    /// Moves everything held into `minute`.
    fn release(&mut self, minute: i64, usage: &mut Vec<MinuteUsage>, seen: &mut Vec<Sighting>) {
        self.latest_held = None;
        if self.usage.is_empty() && self.seen.is_empty() {
            return;
        }
        usage.extend(self.usage.drain().map(|(mac, counts)| MinuteUsage {
            mac,
            minute,
            counts,
        }));
        let ns = minute.saturating_mul(1_000_000_000);
        for (mac, is_gateway) in self.seen.drain() {
            match seen.iter_mut().find(|s| s.mac == mac) {
                Some(s) => {
                    s.first_seen = s.first_seen.min(ns);
                    s.is_gateway |= is_gateway;
                }
                None => seen.push(Sighting {
                    mac,
                    first_seen: ns,
                    last_seen: ns,
                    is_gateway,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: i64 = 1_000_000_020;

    fn row(m: u8, minute: i64, bytes: u64) -> MinuteUsage {
        MinuteUsage {
            mac: MacAddr([2, 0, 0, 0, 0, m]),
            minute,
            counts: Counts {
                frames_sent: 1,
                bytes_sent: bytes,
                ..Counts::default()
            },
        }
    }

    fn seen(m: u8, first: i64, last: i64) -> Sighting {
        Sighting {
            mac: MacAddr([2, 0, 0, 0, 0, m]),
            first_seen: first * 1_000_000_000,
            last_seen: last * 1_000_000_000,
            is_gateway: false,
        }
    }

    #[test]
    fn stamped_rows_before_the_floor_go_to_the_first_minute_after_it() {
        let mut g = ClockGate::new(FLOOR);
        let (u, s) = g.admit_stamped(vec![row(1, 60, 100), row(2, 120, 7)], vec![seen(1, 60, 60)]);
        assert!(u.is_empty() && s.is_empty());
        assert_eq!((g.held_devices(), g.held_bytes()), (2, 107));
        let later = FLOOR + 100;
        let (mut u, s) = g.admit_stamped(vec![row(1, later, 5)], vec![seen(1, 61, later)]);
        u.sort_by_key(|r| (r.mac, r.minute));
        assert_eq!(u.len(), 3);
        assert!(u.iter().all(|r| r.minute == later));
        assert_eq!(u.iter().map(|r| r.counts.bytes_sent).sum::<u64>(), 112);
        let s1 = s.iter().find(|x| x.mac == row(1, 0, 0).mac).unwrap();
        assert_eq!(s1.first_seen, later * 1_000_000_000);
        assert_eq!(g.held_devices(), 0);
    }

    #[test]
    fn live_holds_everything_until_the_clock_is_trusted() {
        let mut g = ClockGate::new(FLOOR);
        let (u, _) = g.admit_live(
            vec![row(1, FLOOR + 60, 10)],
            vec![seen(1, FLOOR + 60, FLOOR + 61)],
            None,
        );
        assert!(u.is_empty());
        let (u, s) = g.admit_live(vec![row(1, FLOOR + 600, 1)], vec![], Some(FLOOR + 600));
        assert_eq!(u.iter().map(|r| r.counts.bytes_sent).sum::<u64>(), 11);
        assert!(u.iter().all(|r| r.minute == FLOOR + 600));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_system_clock_is_distrusted_before_the_floor_and_before_timesyncd_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let ts = dir.path().join("timesync");
        let c = SystemClock::new(FLOOR, &ts);
        assert!(c.distrust(FLOOR - 1).is_some());
        // timesyncd not running: the floor alone decides.
        assert_eq!(c.distrust(FLOOR), None);
        std::fs::create_dir(&ts).unwrap();
        assert!(c.distrust(FLOOR).unwrap().contains("timesyncd"));
        std::fs::write(ts.join("synchronized"), "").unwrap();
        assert_eq!(c.distrust(FLOOR), None);
    }
}
