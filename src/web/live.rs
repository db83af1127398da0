//! GET /live: the household's internet rate right now, as an htmx fragment the overview polls
//! every second, computed from successive meter snapshots.
//!
//! The meter only holds what the flusher has not taken yet, so the rate is the growth of those
//! pending counters between two readings. When a flush empties them in between, a device's
//! counter is lower than before: its current value (what arrived since the flush) is counted,
//! and the bytes between the previous reading and the flush are missed — at most one second in
//! ten, so the figure reads slightly low for that one second. Nothing here writes to the meter.

use super::AppState;
use super::session::Auth;
use crate::meter::MeterSnapshot;
use crate::model::MacAddr;
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Readings closer together than this reuse the last rate (several open tabs poll at once).
const MIN_GAP: Duration = Duration::from_millis(500);
/// A reading older than this is too stale to difference against (nobody was watching).
const MAX_GAP: Duration = Duration::from_secs(5);

/// Household internet rate in bits per second; `measured` is false until two readings exist.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate {
    pub down_bps: f64,
    pub up_bps: f64,
    pub measured: bool,
}

/// Internet (download, upload) bytes pending per MAC at one reading.
type Reading = HashMap<MacAddr, (u64, u64)>;

#[derive(Default)]
pub struct RateSampler {
    last: Option<(Instant, Reading)>,
    rate: Rate,
}

impl RateSampler {
    pub fn sample(&mut self, now: Instant, snap: &MeterSnapshot) -> Rate {
        let cur: HashMap<MacAddr, (u64, u64)> = snap
            .devices
            .iter()
            .filter(|(mac, _)| Some(*mac) != snap.gateway)
            .map(|(mac, c)| (*mac, (c.internet_download_bytes, c.internet_upload_bytes)))
            .collect();
        match &self.last {
            Some((at, _)) if now.duration_since(*at) < MIN_GAP => return self.rate,
            Some((at, prev)) if now.duration_since(*at) <= MAX_GAP => {
                let secs = now.duration_since(*at).as_secs_f64();
                let grow = |now: u64, before: u64| if now >= before { now - before } else { now };
                let (mut down, mut up) = (0u64, 0u64);
                for (mac, &(d, u)) in &cur {
                    let (pd, pu) = prev.get(mac).copied().unwrap_or((0, 0));
                    down += grow(d, pd);
                    up += grow(u, pu);
                }
                self.rate = Rate {
                    down_bps: down as f64 * 8.0 / secs,
                    up_bps: up as f64 * 8.0 / secs,
                    measured: true,
                };
            }
            _ => self.rate = Rate::default(),
        }
        self.last = Some((now, cur));
        self.rate
    }
}

/// Bits per second as Mbit/s (decimal, as ISPs sell them).
pub fn fmt_rate(bps: f64) -> String {
    let m = bps / 1e6;
    if m >= 100.0 {
        format!("{m:.0} Mbit/s")
    } else if m >= 10.0 {
        format!("{m:.1} Mbit/s")
    } else {
        format!("{m:.2} Mbit/s")
    }
}

/// The /live fragment; the overview includes the same partial.
#[derive(Template, WebTemplate)]
#[template(path = "partials/live.html")]
pub struct LivePartial {
    pub live: LiveView,
}

pub struct LiveView {
    pub measured: bool,
    pub capturing: bool,
    pub down: String,
    pub up: String,
    /// Bar widths (0..=100) on a scale that grows with the largest rate seen.
    pub down_pct: u32,
    pub up_pct: u32,
}

impl LiveView {
    pub fn now(state: &AppState) -> LiveView {
        let r = state.live_rate();
        // A fixed 100 Mbit/s scale unless the rate is above it: typical household lines.
        let scale = (r.down_bps.max(r.up_bps) / 1e6).max(100.0);
        let pct = |bps: f64| ((bps / 1e6 / scale) * 100.0).round().clamp(0.0, 100.0) as u32;
        LiveView {
            measured: r.measured,
            capturing: state.has_meter(),
            down: fmt_rate(r.down_bps),
            up: fmt_rate(r.up_bps),
            down_pct: pct(r.down_bps),
            up_pct: pct(r.up_bps),
        }
    }
}

pub async fn fragment(State(state): State<AppState>, Extension(_): Extension<Auth>) -> LivePartial {
    LivePartial {
        live: LiveView::now(&state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Counts;

    fn snap(down: u64) -> MeterSnapshot {
        MeterSnapshot {
            devices: vec![(
                MacAddr([2, 0, 0, 0, 0, 1]),
                Counts {
                    internet_download_bytes: down,
                    ..Counts::default()
                },
            )],
            gateway: None,
        }
    }

    #[test]
    fn rate_is_growth_between_readings_and_survives_a_flush() {
        let mut s = RateSampler::default();
        let t0 = Instant::now();
        assert!(!s.sample(t0, &snap(0)).measured);
        let r = s.sample(t0 + Duration::from_secs(1), &snap(1_000_000));
        assert!(r.measured);
        assert_eq!(r.down_bps, 8_000_000.0);
        // A flush emptied the meter, then 250 kB arrived.
        let r = s.sample(t0 + Duration::from_secs(2), &snap(250_000));
        assert_eq!(r.down_bps, 2_000_000.0);
        // Too soon: the same figure again.
        let r2 = s.sample(t0 + Duration::from_millis(2100), &snap(900_000));
        assert_eq!(r2, r);
        // Nobody watched for a minute: start over.
        assert!(!s.sample(t0 + Duration::from_secs(60), &snap(0)).measured);
        assert_eq!(fmt_rate(12_340_000.0), "12.3 Mbit/s");
    }
}
