//! Everything the live run starts or schedules, one small type per job, so that the daemon's
//! `run` reads as open → start → tick → stop in reverse, and a new background
//! feature is one file here plus one line there.
//!
//! A job that keeps a schedule on the daemon's thread implements [`Periodic`]: the daemon's loop
//! calls [`Periodic::tick`] about every 100 ms and the job decides whether it is due. A job that
//! needs a thread of its own starts it and keeps its handle (`alerts`, `discovery`, `mqtt`, the
//! Wi-Fi `survey`; the web server is started by the daemon). The pure logic stays in
//! the feature folders (`store`, `discovery`, `alerts`, ...): nothing here parses, counts or
//! decides anything but when.

pub mod alerts;
pub mod discovery;
pub mod flushing;
pub mod gateway;
pub mod internet;
pub mod maintenance;
pub mod mqtt;
pub mod names;
pub mod reload;
pub mod remote;
pub mod router;
pub mod survey;
pub mod watchdog;

use crate::config::Config;
use crate::flush::Flusher;
use crate::meter::SharedMeter;
use crate::store::health::SharedHealth;
use std::path::Path;
use std::time::Instant;

/// What a scheduled job may read or use on the daemon's thread, lent for one tick.
pub struct Ctx<'a> {
    /// The running configuration (a reload replaces the reloadable keys).
    pub cfg: &'a Config,
    pub db: &'a Path,
    /// The writing connection, shared with the flush.
    pub flusher: &'a mut Flusher,
    pub meter: &'a SharedMeter,
    pub health: &'a SharedHealth,
    /// The interface captured on now (empty while none is known).
    pub iface: &'a str,
    /// Whether the capture thread still runs.
    pub capturing: bool,
}

/// A job the daemon's loop ticks. It must return quickly (the loop also flushes and answers
/// signals); long work goes to a thread of its own, joined in [`Periodic::stop`].
pub trait Periodic {
    /// Does the job's work if it is due at `now`.
    fn tick(&mut self, now: Instant, ctx: &mut Ctx<'_>);
    /// Something changed that the job should act on at its next tick (a reload, a new
    /// interface): by default nothing.
    fn nudge(&mut self, _now: Instant) {}
    /// At shutdown, in reverse start order: wait for whatever the job still runs.
    fn stop(&mut self) {}
}
