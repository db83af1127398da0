//! The systemd watchdog: pings while the capture thread runs and the database answers.
//!
//! No ping while the capture thread is dead or the database does not answer: systemd's watchdog
//! then restarts the service, which is the repair for both. A capture waiting for its interface
//! is alive (a restart would not bring the interface): it is pinged, and the status line and
//! /system say what it waits for.

use super::{Ctx, Periodic};
use crate::system::notify::Notifier;
use std::time::Instant;

pub struct Watchdog<'n> {
    pub notifier: &'n mut Notifier,
}

impl Periodic for Watchdog<'_> {
    fn tick(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if !self.notifier.watchdog_due(now) {
            return;
        }
        let db_ok = ctx.flusher.store().schema_version();
        match (ctx.capturing, &db_ok) {
            (true, Ok(_)) => self.notifier.watchdog(now),
            _ => tracing::error!(
                capturing = ctx.capturing,
                database = %db_ok.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
                "unhealthy: withholding the watchdog ping so systemd restarts lanmeter"
            ),
        }
    }
}
