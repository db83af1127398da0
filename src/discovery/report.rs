//! `lanmeter devices`: the devices list as JSON or a table for people.
//!
//! It owns the rendering only (what the store returns, plus "online" against a given clock);
//! it must never unescape a device-supplied string: they are printed exactly as stored (already
//! free of control characters), and JSON encoding escapes quotes.

use crate::model::{TimestampNs, rfc3339};
use crate::store::discovery::DeviceRecord;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Serialize)]
struct JsonName<'a> {
    name: &'a str,
    source: &'a str,
    first_seen: String,
    last_seen: String,
}

#[derive(Serialize)]
struct JsonMac {
    mac: String,
    randomized: bool,
    first_seen: String,
    last_seen: String,
}

#[derive(Serialize)]
struct JsonInterval {
    from: String,
    last_seen: String,
}

#[derive(Serialize)]
struct JsonDevice<'a> {
    id: i64,
    mac: String,
    macs: Vec<JsonMac>,
    name: Option<&'a str>,
    hostnames: Vec<JsonName<'a>>,
    vendor: Option<&'a str>,
    vendor_class: Option<&'a str>,
    #[serde(rename = "type")]
    device_type: Option<&'a str>,
    type_guess: Option<&'a str>,
    randomized: bool,
    is_gateway: bool,
    ipv4: Vec<String>,
    ipv6: Vec<String>,
    services: &'a [String],
    first_seen: String,
    last_seen: String,
    online: bool,
    /// Online intervals: from the first sighting to the last one (online until it plus the
    /// presence window).
    presence: Vec<JsonInterval>,
    user: &'a crate::store::discovery::UserFields,
}

fn online(d: &DeviceRecord, now: TimestampNs, window_ns: i64) -> bool {
    d.last_seen_ns.saturating_add(window_ns) >= now
}

/// One JSON array, devices in id order.
pub fn to_json(devices: &[DeviceRecord], now: TimestampNs, window_ns: i64) -> String {
    let rows: Vec<JsonDevice<'_>> = devices
        .iter()
        .map(|d| JsonDevice {
            id: d.id,
            mac: d.mac.to_string(),
            macs: d
                .macs
                .iter()
                .map(|m| JsonMac {
                    mac: m.mac.to_string(),
                    randomized: m.randomized,
                    first_seen: rfc3339(m.first_seen_ns),
                    last_seen: rfc3339(m.last_seen_ns),
                })
                .collect(),
            name: d.display_name(),
            hostnames: d
                .hostnames
                .iter()
                .map(|h| JsonName {
                    name: &h.name,
                    source: &h.source,
                    first_seen: rfc3339(h.first_seen_ns),
                    last_seen: rfc3339(h.last_seen_ns),
                })
                .collect(),
            vendor: d.vendor.as_deref(),
            vendor_class: d.vendor_class.as_deref(),
            device_type: d.device_type(),
            type_guess: d.type_guess.as_deref(),
            randomized: d.randomized,
            is_gateway: d.is_gateway,
            ipv4: addrs(d, true),
            ipv6: addrs(d, false),
            services: &d.services,
            first_seen: rfc3339(d.first_seen_ns),
            last_seen: rfc3339(d.last_seen_ns),
            online: online(d, now, window_ns),
            presence: d
                .presence
                .iter()
                .map(|&(f, l)| JsonInterval {
                    from: rfc3339(f),
                    last_seen: rfc3339(l),
                })
                .collect(),
            user: &d.user,
        })
        .collect();
    // Plain strings, numbers and booleans: serialising cannot fail.
    serde_json::to_string_pretty(&rows).unwrap_or_default()
}

fn addrs(d: &DeviceRecord, v4: bool) -> Vec<String> {
    d.addresses
        .iter()
        .filter(|a| matches!(a.addr, IpAddr::V4(_)) == v4)
        .map(|a| a.addr.to_string())
        .collect()
}

/// A table: one line per device, most recently seen first.
pub fn to_table(devices: &[DeviceRecord], now: TimestampNs, window_ns: i64) -> String {
    let mut devs: Vec<&DeviceRecord> = devices.iter().collect();
    devs.sort_by_key(|d| std::cmp::Reverse(d.last_seen_ns));
    let mut out = format!(
        "{:<5} {:<19} {:<24} {:<24} {:<9} {:<15} {:<7} {}\n",
        "ID", "MAC", "NAME", "VENDOR", "TYPE", "IPV4", "ONLINE", "LAST SEEN"
    );
    // A terminal obeys bidi overrides too: names follow the pages' display rule.
    let cut = |s: Option<&str>, n: usize| -> String {
        let s = crate::visible::visible(s.unwrap_or("-"));
        if s.chars().count() > n {
            s.chars().take(n - 1).chain(['…']).collect()
        } else {
            s.to_string()
        }
    };
    for d in devs {
        let mut mac = d.mac.to_string();
        if d.macs.len() > 1 {
            mac = format!("{mac}+{}", d.macs.len() - 1);
        }
        let v4 = addrs(d, true);
        out.push_str(&format!(
            "{:<5} {:<19} {:<24} {:<24} {:<9} {:<15} {:<7} {}\n",
            d.id,
            mac,
            cut(d.display_name(), 24),
            cut(d.vendor.as_deref(), 24),
            cut(d.device_type(), 9),
            v4.first().map(String::as_str).unwrap_or("-"),
            if online(d, now, window_ns) {
                "yes"
            } else {
                "no"
            },
            rfc3339(d.last_seen_ns),
        ));
    }
    out.push_str(&format!("{} devices\n", devices.len()));
    out
}
