//! Which device a MAC is: the stored form of a MAC address and the lookup of the device a MAC
//! already belongs to (`device_macs`). The devices table (flush path) and discovery (linking
//! private addresses, merges) both build on it, so neither has to import the other.
use crate::model::{MacAddr, Sighting};
use rusqlite::{Connection, OptionalExtension, params};

/// The stored form of a MAC: `MacAddr::to_u64` uses 48 bits, so the cast to i64 is lossless.
pub(super) fn mac_key(mac: MacAddr) -> i64 {
    mac.to_u64() as i64
}

/// Inverse of [`mac_key`]; only the low 48 bits are meaningful.
pub(super) fn mac_from_key(key: i64) -> MacAddr {
    MacAddr::from_u64(key as u64)
}

/// When `s.mac` already belongs to a device, records the sighting against it and returns its
/// id; `None` for a MAC never seen (the caller inserts it). Used by the flush path and discovery.
pub(super) fn touch_linked_mac(tx: &Connection, s: &Sighting) -> rusqlite::Result<Option<i64>> {
    let id: Option<i64> = tx
        .prepare_cached("SELECT device_id FROM device_macs WHERE mac = ?1")?
        .query_row(params![mac_key(s.mac)], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    tx.prepare_cached(
        "UPDATE devices SET first_seen_ns = min(first_seen_ns, ?2),
             last_seen_ns = max(last_seen_ns, ?3), is_gateway = is_gateway OR ?4 WHERE id = ?1",
    )?
    .execute(params![id, s.first_seen, s.last_seen, s.is_gateway])?;
    tx.prepare_cached(
        "UPDATE device_macs SET first_seen_ns = min(first_seen_ns, ?2),
             last_seen_ns = max(last_seen_ns, ?3) WHERE mac = ?1",
    )?
    .execute(params![mac_key(s.mac), s.first_seen, s.last_seen])?;
    Ok(Some(id))
}
