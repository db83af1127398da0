//! The gateway recheck: an undetected or auto-detected gateway is looked up again every minute
//! (routers get replaced); a configured one is left alone.

use super::{Ctx, Periodic};
use std::time::{Duration, Instant};

/// How often an undetected or auto-detected gateway is looked up again.
const GATEWAY_RECHECK: Duration = Duration::from_secs(60);

pub struct GatewayWatch {
    next: Instant,
}

impl GatewayWatch {
    pub fn new(now: Instant) -> GatewayWatch {
        GatewayWatch {
            next: now + GATEWAY_RECHECK,
        }
    }
}

impl Periodic for GatewayWatch {
    fn tick(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if ctx.cfg.gateway.is_some() || now < self.next {
            return;
        }
        self.next = now + GATEWAY_RECHECK;
        let found = crate::discovery::detect_gateway(ctx.iface).map(|g| g.mac);
        if found.is_some() && found != ctx.meter.with(|m| m.gateway()) {
            tracing::info!(gateway = %found.map(|g| g.to_string()).unwrap_or_default(), "gateway detected");
            ctx.meter.with(|m| m.set_gateway(found));
        }
    }

    /// A reload or a new interface: look again at the next tick.
    fn nudge(&mut self, now: Instant) {
        self.next = now;
    }
}
