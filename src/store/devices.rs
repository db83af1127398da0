//! The devices table: one row per device ever seen, with when it was first and last seen. A
//! device usually has one MAC; a rotated private address or a merge links more MACs to it.
//!
//! Writes happen only inside the flush transaction ([`super::Store::write_flush`]); this module
//! never opens a transaction of its own.
use super::identity::{mac_key, touch_linked_mac};
use crate::model::{Counts, MacAddr, Sighting, TimestampNs};
use rusqlite::{OptionalExtension, params};

/// One device with its counters summed over every stored minute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceTotals {
    pub mac: MacAddr,
    pub counts: Counts,
    pub first_seen_ns: TimestampNs,
    pub last_seen_ns: TimestampNs,
    pub is_gateway: bool,
}

/// Merges a sighting into the devices table and returns the device's id.
///
/// `is_gateway` is sticky (OR-ed): a MAC that was ever the gateway stays marked as
/// infrastructure, so a router that was replaced never shows up among household devices, and
/// a flush that happens not to carry the gateway flag cannot un-mark it.
const UPSERT_DEVICE: &str = "
INSERT INTO devices (mac, first_seen_ns, last_seen_ns, is_gateway) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (mac) DO UPDATE SET
    first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
    last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
    is_gateway = is_gateway OR excluded.is_gateway
RETURNING id";

pub(super) fn upsert_sighting(tx: &rusqlite::Connection, s: &Sighting) -> rusqlite::Result<i64> {
    // A MAC linked to another device (a rotated private address, a user merge) counts for
    // that device: see store::identity.
    if let Some(id) = touch_linked_mac(tx, s)? {
        return Ok(id);
    }
    tx.prepare_cached(UPSERT_DEVICE)?.query_row(
        params![mac_key(s.mac), s.first_seen, s.last_seen, s.is_gateway],
        |row| row.get(0),
    )
}

/// The id of `mac`, inserting a device seen at `at` if the table has none. Only for usage that
/// arrives without a sighting (the meter reports both, so this is a safety net that keeps the
/// counts rather than dropping them).
pub(super) fn ensure_device(
    tx: &rusqlite::Connection,
    mac: MacAddr,
    at: TimestampNs,
) -> rusqlite::Result<i64> {
    let found = tx
        .prepare_cached("SELECT device_id FROM device_macs WHERE mac = ?1")?
        .query_row(params![mac_key(mac)], |row| row.get(0))
        .optional()?;
    match found {
        Some(id) => Ok(id),
        None => upsert_sighting(
            tx,
            &Sighting {
                mac,
                first_seen: at,
                last_seen: at,
                is_gateway: false,
            },
        ),
    }
}
