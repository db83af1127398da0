//! Home Assistant over MQTT discovery (`mqtt_host` set): retained discovery configs for every
//! device's usage today, current rate and online state and for the household's billing cycle,
//! then their values every `mqtt_interval_secs`.
//!
//! The only user of rumqttc. Two loops, each run on a thread of its own by `run::mqtt`: the
//! [`Driver`] polls the connection (rumqttc reconnects when polled again; we add the backoff),
//! the [`Publisher`] reads the database on its OWN connection and publishes. It never touches the meter or the capture path, and never writes the database.
//! After every (re)connect the discovery configs are sent again, so a broker that lost its
//! retained messages (restarted without persistence) learns the sensors anew.

use crate::config::Config;
use crate::model::MacAddr;
use crate::store::Store;
use crate::store::discovery::DeviceRecord;
use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where state messages live: `lanmeter/<mac without colons>/<metric>`.
pub const STATE_ROOT: &str = "lanmeter";
/// Seconds the current rate is averaged over (the last stored minutes up to now).
const RATE_WINDOW_SECS: i64 = 300;
/// Reconnect backoff: first wait, doubling up to the cap.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Requests queued towards the connection thread; one round is a few per device.
const QUEUE: usize = 4096;

/// The connection side of an MQTT session: polled on a thread of its own by [`Driver::run`].
pub struct Driver {
    connection: Connection,
    /// `host:port`, for the log lines.
    target: String,
    /// Bumped on every ConnAck: the publisher re-sends discovery when it changes.
    sessions: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
}

/// The connection and the publisher for `cfg`, when `mqtt_host` is set; `None` when MQTT is off.
/// Nothing connects until the [`Driver`] runs (the threads are started by `run::mqtt`).
pub fn setup(cfg: &Config, db: PathBuf) -> Option<(Driver, Publisher)> {
    let host = cfg.mqtt_host.clone()?;
    let client_id = format!("lanmeter-{}", std::process::id());
    let mut opts = MqttOptions::new(client_id, host.clone(), cfg.mqtt_port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(true);
    if let Some(user) = &cfg.mqtt_username {
        let pass = cfg
            .mqtt_password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        opts.set_credentials(user.clone(), pass);
    }
    let (client, connection) = Client::new(opts, QUEUE);
    let sessions = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicBool::new(false));
    let driver = Driver {
        connection,
        target: format!("{host}:{}", cfg.mqtt_port),
        sessions: sessions.clone(),
        connected: connected.clone(),
    };
    let publisher = Publisher {
        client,
        db,
        tz: cfg.time_zone(),
        prefix: cfg.mqtt_prefix.clone(),
        interval: Duration::from_secs(cfg.mqtt_interval_secs),
        presence_window_ns: i64::try_from(cfg.presence_window_secs)
            .unwrap_or(i64::MAX / 1_000_000_000)
            .saturating_mul(1_000_000_000),
        announced: HashSet::new(),
        sessions,
        connected,
    };
    Some((driver, publisher))
}

impl Driver {
    /// Polls the connection for as long as a client exists; after an error waits with backoff
    /// before the next poll (which reconnects).
    pub fn run(mut self, stop: &AtomicBool) {
        let (sessions, connected, target) = (&self.sessions, &self.connected, &self.target);
        let mut backoff = BACKOFF_FIRST;
        loop {
            match self.connection.recv() {
                // Every client handle is gone: the publisher has stopped.
                Err(_) => return,
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    tracing::info!(broker = %target, "connected to the MQTT broker");
                    backoff = BACKOFF_FIRST;
                    connected.store(true, Ordering::Relaxed);
                    sessions.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    connected.store(false, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    tracing::warn!(broker = %target, error = %e, retry_in_secs = backoff.as_secs(), "MQTT broker unreachable; retrying");
                    let until = Instant::now() + backoff;
                    while Instant::now() < until {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// The publishing side: reads the database on its own connection and sends discovery configs
/// and states, on a thread of its own ([`Publisher::run`]).
pub struct Publisher {
    client: Client,
    db: PathBuf,
    tz: jiff::tz::TimeZone,
    prefix: String,
    interval: Duration,
    presence_window_ns: i64,
    /// Devices whose discovery was already sent in this session.
    announced: HashSet<MacAddr>,
    /// Shared with the [`Driver`]: its connect count and whether it is connected now.
    sessions: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
}

impl Publisher {
    /// Publishes every interval (and at once after each new connection) until `stop`, then
    /// disconnects, which ends the [`Driver`].
    pub fn run(mut self, stop: &AtomicBool) {
        let (sessions, connected) = (self.sessions.clone(), self.connected.clone());
        let mut store: Option<Store> = None;
        let mut session_seen = 0;
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if !connected.load(Ordering::Relaxed) {
                continue;
            }
            let session = sessions.load(Ordering::Relaxed);
            let fresh = session != session_seen;
            if !fresh && Instant::now() < next {
                continue;
            }
            next = Instant::now() + self.interval;
            if store.is_none() {
                match Store::open_existing(&self.db) {
                    Ok(s) => store = Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "MQTT: cannot open the database; retried next interval");
                        continue;
                    }
                }
            }
            let Some(s) = store.as_ref() else { continue };
            if fresh {
                self.announced.clear();
                self.household_discovery();
            }
            match self.round(s) {
                Ok(()) => session_seen = session,
                Err(e) => {
                    tracing::warn!(error = %e, "MQTT: reading the database failed; retried next interval");
                    // A fresh connection next time, in case this one is broken.
                    store = None;
                }
            }
        }
        let _ = self.client.try_disconnect();
    }

    /// One round: discovery for devices not yet announced in this session, then every state.
    fn round(&mut self, store: &Store) -> Result<(), crate::store::StoreError> {
        let now = jiff::Timestamp::now();
        let now_s = now.as_second();
        let today = now.to_zoned(self.tz.clone()).date();
        let today_start = crate::plan::day_start(today, &self.tz)
            .map(|t| t.as_second())
            .unwrap_or(now_s - now_s.rem_euclid(86_400));
        let minute = now_s - now_s.rem_euclid(60);
        let rate_from = minute - RATE_WINDOW_SECS;
        let totals = |rows: Vec<crate::store::today::UsageSince>| -> HashMap<MacAddr, u64> {
            rows.into_iter()
                .map(|u| {
                    let c = u.counts;
                    (u.mac, c.bytes_sent.saturating_add(c.bytes_received))
                })
                .collect()
        };
        let today_bytes = totals(store.usage_since(today_start)?);
        let recent_bytes = totals(store.usage_since(rate_from)?);
        let rate_secs = u64::try_from((now_s - rate_from).max(1)).unwrap_or(1);
        let now_ns = now.as_nanosecond().try_into().unwrap_or(i64::MAX);
        for d in store.list_devices()? {
            if d.user.ignored {
                continue;
            }
            if self.announced.insert(d.mac) {
                self.device_discovery(&d);
            }
            let sum = |m: &HashMap<MacAddr, u64>| -> u64 {
                d.macs
                    .iter()
                    .map(|x| x.mac)
                    .chain(d.macs.is_empty().then_some(d.mac))
                    .filter_map(|mac| m.get(&mac))
                    .sum()
            };
            let base = format!("{STATE_ROOT}/{}", mac_id(d.mac));
            let online = d.last_seen_ns.saturating_add(self.presence_window_ns) >= now_ns;
            self.publish(
                &format!("{base}/today_bytes"),
                sum(&today_bytes).to_string(),
            );
            self.publish(
                &format!("{base}/rate_bps"),
                (sum(&recent_bytes).saturating_mul(8) / rate_secs).to_string(),
            );
            self.publish(
                &format!("{base}/online"),
                if online { "ON" } else { "OFF" }.to_string(),
            );
        }
        match store.plan_report(&self.tz, now) {
            Ok(r) => {
                let base = format!("{STATE_ROOT}/household");
                self.publish(
                    &format!("{base}/cycle_used_bytes"),
                    r.status.used_bytes.to_string(),
                );
                // No allowance, nothing remaining to report: the sensor stays unknown.
                if let Some(left) = r.status.remaining_bytes {
                    self.publish(&format!("{base}/cycle_remaining_bytes"), left.to_string());
                }
            }
            Err(e) => tracing::warn!(error = %e, "MQTT: cannot compute the plan status"),
        }
        Ok(())
    }

    fn device_discovery(&self, d: &DeviceRecord) {
        let id = mac_id(d.mac);
        let name = d
            .display_name()
            .map(str::to_string)
            .unwrap_or_else(|| d.mac.to_string());
        let device = json!({
            "identifiers": [format!("lanmeter_{id}")],
            "name": name,
            "connections": [["mac", d.mac.to_string()]],
            "manufacturer": d.vendor,
            "via_device": "lanmeter_household",
        });
        let base = format!("{STATE_ROOT}/{id}");
        for (component, metric, label, extra) in [
            (
                "sensor",
                "today",
                "Usage today",
                json!({"unit_of_measurement": "B", "device_class": "data_size", "state_class": "total_increasing", "state_topic": format!("{base}/today_bytes")}),
            ),
            (
                "sensor",
                "rate",
                "Current rate",
                json!({"unit_of_measurement": "bit/s", "device_class": "data_rate", "state_class": "measurement", "state_topic": format!("{base}/rate_bps")}),
            ),
            (
                "binary_sensor",
                "online",
                "Online",
                json!({"device_class": "connectivity", "payload_on": "ON", "payload_off": "OFF", "state_topic": format!("{base}/online")}),
            ),
        ] {
            self.config(component, &format!("{id}_{metric}"), label, extra, &device);
        }
    }

    fn household_discovery(&self) {
        let device = json!({"identifiers": ["lanmeter_household"], "name": "lanmeter household"});
        let base = format!("{STATE_ROOT}/household");
        for (metric, label, topic) in [
            ("cycle_used", "Billing cycle used", "cycle_used_bytes"),
            (
                "cycle_remaining",
                "Billing cycle remaining",
                "cycle_remaining_bytes",
            ),
        ] {
            let extra = json!({"unit_of_measurement": "B", "device_class": "data_size", "state_class": "measurement", "state_topic": format!("{base}/{topic}")});
            self.config(
                "sensor",
                &format!("household_{metric}"),
                label,
                extra,
                &device,
            );
        }
    }

    /// One retained discovery config: `<prefix>/<component>/lanmeter_<object>/config`.
    fn config(
        &self,
        component: &str,
        object: &str,
        name: &str,
        extra: serde_json::Value,
        device: &serde_json::Value,
    ) {
        let mut body = json!({
            "name": name,
            "unique_id": format!("lanmeter_{object}"),
            "object_id": format!("lanmeter_{object}"),
            "device": device,
        });
        if let (Some(b), serde_json::Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let topic = format!("{}/{component}/lanmeter_{object}/config", self.prefix);
        self.send(&topic, body.to_string(), QoS::AtLeastOnce);
    }

    fn publish(&self, topic: &str, payload: String) {
        self.send(topic, payload, QoS::AtMostOnce);
    }

    fn send(&self, topic: &str, payload: String, qos: QoS) {
        // Retained: Home Assistant restarting (or subscribing late) sees the sensors and their
        // last values at once. try_: a full queue (broker gone) drops this round, never blocks.
        if let Err(e) = self.client.try_publish(topic, qos, true, payload) {
            tracing::debug!(topic, error = %e, "MQTT publish dropped");
        }
    }
}

/// The MAC as it appears in topics and ids: lowercase hex without colons.
pub fn mac_id(mac: MacAddr) -> String {
    mac.to_string().replace(':', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_id_is_lowercase_hex_without_colons() {
        let mac: MacAddr = "DC:A6:32:0A:0B:0C".parse().unwrap();
        assert_eq!(mac_id(mac), "dca6320a0b0c");
    }
}
