//! The gateway recheck: an undetected or auto-detected gateway is looked up again (routers get
//! replaced); a configured one is left alone. A detected gateway is rechecked every minute. An
//! undetected one sooner, backing off from [`FIRST_RECHECK`] to a minute: until the router
//! shows in the ARP table (often only after the daemon starts: the box's first packet to it),
//! internet bytes are still counted, inferred per flush, but `per_device_services` cannot
//! tell their remotes apart and files them all as "other".

use super::{Ctx, Periodic};
use std::time::{Duration, Instant};

/// How often a detected gateway is looked up again, and the longest wait for an undetected one.
const GATEWAY_RECHECK: Duration = Duration::from_secs(60);
/// The first wait for an undetected gateway; each miss doubles it up to [`GATEWAY_RECHECK`].
/// One lookup reads two procfs files and runs `ip` once, so a few in the first minute cost
/// nothing measurable.
const FIRST_RECHECK: Duration = Duration::from_secs(5);

pub struct GatewayWatch {
    next: Instant,
    /// The wait after the next miss.
    backoff: Duration,
}

impl GatewayWatch {
    pub fn new(now: Instant) -> GatewayWatch {
        GatewayWatch {
            next: now + FIRST_RECHECK,
            backoff: FIRST_RECHECK,
        }
    }

    /// Records one lookup at `now` (`known`: a gateway was found, now or before) and says
    /// when the next is due.
    fn looked(&mut self, now: Instant, known: bool) -> Instant {
        let wait = if known {
            self.backoff = FIRST_RECHECK;
            GATEWAY_RECHECK
        } else {
            self.backoff = (self.backoff * 2).min(GATEWAY_RECHECK);
            self.backoff
        };
        self.next = now + wait;
        self.next
    }
}

impl Periodic for GatewayWatch {
    fn tick(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if ctx.cfg.gateway.is_some() || now < self.next {
            return;
        }
        let found = crate::discovery::detect_gateway(ctx.iface).map(|g| g.mac);
        let current = ctx.meter.with(|m| m.gateway());
        self.looked(now, found.is_some() || current.is_some());
        if found.is_some() && found != current {
            tracing::info!(gateway = %found.map(|g| g.to_string()).unwrap_or_default(), "gateway detected");
            ctx.meter.with(|m| m.set_gateway(found));
        }
    }

    /// A reload or a new interface: look again at the next tick.
    fn nudge(&mut self, now: Instant) {
        self.next = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undetected_gateway_is_looked_up_soon_then_less_often() {
        let t0 = Instant::now();
        let mut w = GatewayWatch::new(t0);
        assert_eq!(w.next, t0 + FIRST_RECHECK);
        // Misses: 10 s, 20 s, 40 s, then every minute.
        let waits: Vec<u64> = (0..5)
            .map(|_| (w.looked(t0, false) - t0).as_secs())
            .collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
        // Found: every minute; lost again (a router replaced): soon again.
        assert_eq!(w.looked(t0, true) - t0, GATEWAY_RECHECK);
        assert_eq!(w.looked(t0, false) - t0, FIRST_RECHECK * 2);
    }
}
