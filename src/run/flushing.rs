//! The flush schedule: every `flush_interval_secs` the meter's delta goes through the one flush
//! path ([`Flusher::flush_gated`]) under the live clock rule, with its outcome recorded for the
//! health page, `/metrics` and the alerts; and the final flush at shutdown, retried.

use super::discovery::DiscoveryRun;
use crate::clock::{ClockGate, SystemClock};
use crate::flush::{Flusher, Stamping};
use crate::meter::{Delta, SharedMeter};
use crate::store::StoreError;
use crate::store::health::SharedHealth;
use crate::telemetry::Telemetry;
use std::time::{Duration, Instant};

/// Attempts at the final flush before giving up and saying how much could not be written.
const FINAL_FLUSH_ATTEMPTS: u32 = 5;

pub struct Flushing {
    interval: Duration,
    next: Instant,
    clock: SystemClock,
    /// Rows stamped before the clock was trusted, held until it is (see [`crate::clock`]).
    gate: ClockGate,
    evictions_seen: u64,
    max_devices: usize,
    telemetry: Telemetry,
}

impl Flushing {
    pub fn new(now: Instant, interval: Duration, max_devices: usize, telemetry: Telemetry) -> Self {
        Flushing {
            interval,
            next: now + interval,
            clock: SystemClock::default(),
            gate: ClockGate::new(crate::clock::CLOCK_FLOOR.as_second()),
            evictions_seen: 0,
            max_devices,
            telemetry,
        }
    }

    /// A reloaded interval: the next flush is one new interval from `now`.
    pub fn set_interval(&mut self, interval: Duration, now: Instant) {
        self.interval = interval;
        self.next = now + interval;
    }

    /// Whether a flush is due at `now`; if so the next one is scheduled (skipping missed ones).
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next += self.interval;
        if self.next < now {
            self.next = now + self.interval;
        }
        true
    }

    /// The minute live traffic is filed under now, `None` while the clock is not trusted.
    fn stamping(&self) -> (Stamping, Option<String>) {
        let now_s = jiff::Timestamp::now().as_second();
        let distrust = self.clock.distrust(now_s);
        let stamping = Stamping::Live(distrust.is_none().then_some(now_s - now_s.rem_euclid(60)));
        (stamping, distrust)
    }

    /// Takes the meter's delta and writes it; a failure is logged and recorded, and the counts
    /// stay pending in the flusher for the next interval.
    pub fn flush_now(
        &mut self,
        flusher: &mut Flusher,
        meter: &SharedMeter,
        health: &SharedHealth,
        discovery: Option<&DiscoveryRun>,
    ) {
        let evictions = meter.with(|m| m.evictions());
        if evictions > self.evictions_seen {
            tracing::warn!(
                evicted = evictions - self.evictions_seen,
                max_devices = self.max_devices,
                "more MACs than max_devices in one minute: the least active were folded into 'other' (a MAC flood, or raise max_devices)"
            );
            self.evictions_seen = evictions;
        }
        let delta = meter.take_delta();
        if let Some(d) = discovery {
            d.traffic(delta.sent_spans());
            // Discovery's batch goes in this flush's transaction: one commit for both.
            d.gather();
        }
        let (stamping, distrust) = self.stamping();
        let telemetry = &self.telemetry;
        let result = flusher
            .flush_gated(&delta, self.interval, &mut self.gate, stamping)
            .map(|s| telemetry.record_flush(s.duration));
        let was = telemetry.clock();
        match (&distrust, &was) {
            (Some(why), None) => {
                tracing::warn!(reason = %why, "the clock is not trusted: traffic is held and filed under the first minute after it is")
            }
            (None, Some(_)) => tracing::info!("the clock is trusted now"),
            _ => {}
        }
        telemetry.set_clock(distrust.map(|reason| crate::telemetry::ClockStatus {
            reason,
            held_devices: self.gate.held_devices(),
            held_bytes: self.gate.held_bytes(),
        }));
        if let Err(e) = &result {
            tracing::error!(error = %e, pending_rows = flusher.pending_len(), "flush failed; counts stay in memory and are retried next interval");
        }
        health.record_flush(
            result.map_err(|e| {
                let full = matches!(e, StoreError::DiskFull { .. });
                (e.to_string(), full)
            }),
            flusher.pending_len(),
            flusher.folded_rows(),
        );
    }

    /// The last flush at shutdown, tried [`FINAL_FLUSH_ATTEMPTS`] times a second apart. Rows
    /// still held for an untrusted clock are stored as stamped rather than lost.
    pub fn final_flush(
        &mut self,
        flusher: &mut Flusher,
        mut delta: Delta,
    ) -> Result<(), StoreError> {
        let (stamping, _) = self.stamping();
        let mut last_err = None;
        for attempt in 1..=FINAL_FLUSH_ATTEMPTS {
            // The flusher keeps whatever it failed to write, so retries pass an empty delta:
            // handing the same delta again would count it twice.
            let result = flusher
                .flush_gated(
                    &std::mem::take(&mut delta),
                    self.interval,
                    &mut self.gate,
                    stamping,
                )
                .and_then(|_| {
                    let (usage, seen) = self.gate.release_as_stamped();
                    flusher.flush(usage, seen)
                });
            match result {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "final flush failed, retrying");
                    last_err = Some(e);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        last_err.map_or(Ok(()), Err)
    }
}
