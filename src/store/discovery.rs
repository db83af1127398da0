//! What discovery knows about devices, in SQLite: MAC-to-device identity, addresses, host names,
//! services, client ids, vendor and type, presence intervals, user fields and device events.
//!
//! It owns the identity rules: a device (`devices.id`) owns one or more MACs (`device_macs`);
//! a private (locally administered) MAC is linked to an existing device when the evidence is
//! strong (the same DHCP client id, or the same non-generic DHCP host name held by exactly one
//! device), or when the user merges two devices; history (usage, presence, names) follows.
//! Every write is one transaction per batch, never per packet. It must never interpret a
//! device-supplied string: they arrive escaped and are stored and returned as they are.

use super::identity::{mac_from_key, mac_key, touch_linked_mac};
use super::presence::add_presence;
use super::{Store, StoreError, sql_err};
use crate::model::{MacAddr, Sighting, TimestampNs};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

/// Host names too common to identify a device: two phones called "iPhone" are not one phone.
const GENERIC_NAMES: &[&str] = &[
    "iphone",
    "ipad",
    "android",
    "localhost",
    "galaxy",
    "phone",
    "laptop",
    "desktop",
    "unknown",
    "espressif",
    "raspberrypi",
];

/// Everything learned about one MAC in one batch. Strings are already escaped and capped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MacFacts {
    pub mac: MacAddr,
    /// When it was heard, as (from, to) spans in time order, each gap wider than the presence
    /// window starting a new span.
    pub spans: Vec<(TimestampNs, TimestampNs)>,
    pub addresses: Vec<(IpAddr, TimestampNs, TimestampNs)>,
    /// (source, name, first, last).
    pub hostnames: Vec<(&'static str, String, TimestampNs, TimestampNs)>,
    pub vendor_class: Option<String>,
    pub client_ids: Vec<String>,
    pub services: Vec<String>,
    pub router: bool,
    /// From the OUI registry, when looked up.
    pub vendor: Option<String>,
}

/// What the type guess is made from, as stored.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub router: bool,
    pub services: Vec<String>,
    pub vendor_class: Option<String>,
    pub hostnames: Vec<String>,
    pub vendor: Option<String>,
}

/// What one discovery write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryWrite {
    pub devices: usize,
    /// Devices merged into another because a private MAC was linked.
    pub merged: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceMac {
    pub mac: MacAddr,
    pub randomized: bool,
    pub first_seen_ns: TimestampNs,
    pub last_seen_ns: TimestampNs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostnameRecord {
    pub name: String,
    pub source: String,
    pub first_seen_ns: TimestampNs,
    pub last_seen_ns: TimestampNs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressRecord {
    pub addr: IpAddr,
    pub first_seen_ns: TimestampNs,
    pub last_seen_ns: TimestampNs,
}

/// Fields only the user sets (the web UI will edit them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserFields {
    pub name: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub type_override: Option<String>,
    pub notes: Option<String>,
    pub known: bool,
    pub ignored: bool,
}

/// One device as the devices list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    pub id: i64,
    /// The MAC the device was first seen with.
    pub mac: MacAddr,
    pub macs: Vec<DeviceMac>,
    pub first_seen_ns: TimestampNs,
    pub last_seen_ns: TimestampNs,
    pub is_gateway: bool,
    pub randomized: bool,
    pub vendor: Option<String>,
    pub vendor_class: Option<String>,
    pub type_guess: Option<String>,
    pub user: UserFields,
    /// Most recently seen first.
    pub hostnames: Vec<HostnameRecord>,
    /// Most recently seen first.
    pub addresses: Vec<AddressRecord>,
    pub services: Vec<String>,
    /// The most recent online intervals (from, last seen), oldest first, at most
    /// [`PRESENCE_LISTED`].
    pub presence: Vec<(TimestampNs, TimestampNs)>,
}

/// Online intervals listed per device by [`Store::list_devices`].
pub const PRESENCE_LISTED: usize = 50;

impl DeviceRecord {
    /// The user's type when set, else the guess.
    pub fn device_type(&self) -> Option<&str> {
        self.user
            .type_override
            .as_deref()
            .or(self.type_guess.as_deref())
    }

    /// The name to show: the user's, else the most recent DHCP name, else any.
    pub fn display_name(&self) -> Option<&str> {
        if let Some(n) = &self.user.name {
            return Some(n);
        }
        ["dhcp", "dhcp-fqdn", "mdns", "mdns-instance"]
            .iter()
            .find_map(|src| self.hostnames.iter().find(|h| h.source == *src))
            .map(|h| h.name.as_str())
    }
}

/// A durable device event for the alert engine (`new_device`, `merged`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceEvent {
    pub id: i64,
    pub device_id: i64,
    pub mac: MacAddr,
    pub kind: String,
    pub at_ns: TimestampNs,
    pub detail: Option<String>,
}

fn device_for(tx: &Connection, s: &Sighting) -> rusqlite::Result<i64> {
    if let Some(id) = touch_linked_mac(tx, s)? {
        return Ok(id);
    }
    // The trigger adds the MAC mapping, the randomized flag and the new_device event.
    tx.prepare_cached(
        "INSERT INTO devices (mac, first_seen_ns, last_seen_ns, is_gateway) VALUES (?1, ?2, ?3, 0)
         RETURNING id",
    )?
    .query_row(params![mac_key(s.mac), s.first_seen, s.last_seen], |r| {
        r.get(0)
    })
}

/// Moves everything of device `from` to device `into` and deletes `from`. User fields of `into`
/// win; those it lacks are taken from `from`. Fails (and the caller's savepoint rolls back) if
/// a table this module does not know still references `from`.
fn merge_into(tx: &Connection, from: i64, into: i64, window: i64) -> rusqlite::Result<()> {
    // History follows the device at every level (the rollup levels hold the same history at
    // coarser grain, so totals read from hours, days or months would keep the old identity).
    // Moving rows between devices leaves every sum over all devices, the household aggregates
    // included, unchanged (see rollup::totals).
    use super::rollup::{COUNTERS, add_on_conflict};
    for (level, key, active) in [
        ("usage_minute", "minute", ""),
        ("usage_hour", "start", ", active_minutes"),
        ("usage_day", "start", ", active_minutes"),
        ("usage_month", "start", ", active_minutes"),
    ] {
        tx.execute(
            &format!(
                "INSERT INTO {level} ({key}, device_id, {COUNTERS}{active})
                 SELECT {key}, ?2, {COUNTERS}{active} FROM {level} WHERE device_id = ?1 {}",
                add_on_conflict(&format!("{key}, device_id"), !active.is_empty())
            ),
            params![from, into],
        )?;
        tx.execute(
            &format!("DELETE FROM {level} WHERE device_id = ?1"),
            params![from],
        )?;
    }
    for (table, key) in [
        ("device_addresses", "addr, family"),
        ("device_hostnames", "source, name"),
        ("device_services", "service"),
    ] {
        let conflict = match table {
            "device_addresses" => "device_id, addr",
            "device_hostnames" => "device_id, source, name",
            _ => "device_id, service",
        };
        tx.execute(
            &format!(
                "INSERT INTO {table} (device_id, {key}, first_seen_ns, last_seen_ns)
                 SELECT ?2, {key}, first_seen_ns, last_seen_ns FROM {table} WHERE device_id = ?1
                 ON CONFLICT ({conflict}) DO UPDATE SET
                     first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
                     last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)"
            ),
            params![from, into],
        )?;
        tx.execute(
            &format!("DELETE FROM {table} WHERE device_id = ?1"),
            params![from],
        )?;
    }
    super::names::merge_names(tx, from, into)?;
    super::remotes::merge_remotes(tx, from, into)?;
    tx.execute(
        "UPDATE device_macs SET device_id = ?2 WHERE device_id = ?1",
        params![from, into],
    )?;
    tx.execute(
        "UPDATE device_client_ids SET device_id = ?2 WHERE device_id = ?1",
        params![from, into],
    )?;
    let spans: Vec<(i64, i64)> = tx
        .prepare("SELECT online_from_ns, last_seen_ns FROM presence WHERE device_id = ?1")?
        .query_map(params![from], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    tx.execute("DELETE FROM presence WHERE device_id = ?1", params![from])?;
    for (f, l) in spans {
        add_presence(tx, into, f, l, window)?;
    }
    tx.execute(
        "UPDATE devices AS d SET
             first_seen_ns = min(d.first_seen_ns, f.first_seen_ns),
             last_seen_ns = max(d.last_seen_ns, f.last_seen_ns),
             is_gateway = d.is_gateway OR f.is_gateway,
             vendor = coalesce(d.vendor, f.vendor),
             vendor_class = coalesce(d.vendor_class, f.vendor_class),
             advertises_routes = d.advertises_routes OR f.advertises_routes,
             name = coalesce(d.name, f.name),
             owner = coalesce(d.owner, f.owner),
             device_group = coalesce(d.device_group, f.device_group),
             type_override = coalesce(d.type_override, f.type_override),
             notes = coalesce(d.notes, f.notes),
             known = d.known OR f.known,
             ignored = d.ignored AND f.ignored
         FROM (SELECT * FROM devices WHERE id = ?1) AS f
         WHERE d.id = ?2",
        params![from, into],
    )?;
    tx.execute(
        "UPDATE device_events SET device_id = ?2 WHERE device_id = ?1",
        params![from, into],
    )?;
    tx.execute(
        "INSERT INTO device_events (device_id, mac, kind, at_ns, detail)
         SELECT ?2, mac, 'merged', last_seen_ns, 'device ' || ?1 || ' merged into ' || ?2
         FROM devices WHERE id = ?1",
        params![from, into],
    )?;
    tx.execute("DELETE FROM devices WHERE id = ?1", params![from])?;
    Ok(())
}

/// A device other than `id` that the private MAC of `id` should be linked to, by evidence.
fn link_target(tx: &Connection, id: i64, f: &MacFacts) -> rusqlite::Result<Option<i64>> {
    for cid in &f.client_ids {
        // A client id of type 1 that is just this MAC changes with the MAC and links nothing;
        // such ids simply never match another device.
        let owner: Option<i64> = tx
            .prepare_cached("SELECT device_id FROM device_client_ids WHERE client_id = ?1")?
            .query_row(params![cid], |r| r.get(0))
            .optional()?;
        if let Some(d) = owner.filter(|d| *d != id) {
            return Ok(Some(d));
        }
    }
    for (source, name, _, _) in &f.hostnames {
        if !matches!(*source, "dhcp" | "dhcp-fqdn")
            || name.len() < 3
            || GENERIC_NAMES.contains(&name.to_lowercase().as_str())
        {
            continue;
        }
        let owners: Vec<i64> = tx
            .prepare_cached(
                "SELECT DISTINCT device_id FROM device_hostnames
                 WHERE name = ?1 COLLATE NOCASE AND source IN ('dhcp', 'dhcp-fqdn')
                   AND device_id != ?2",
            )?
            .query_map(params![name, id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if let [one] = owners[..] {
            return Ok(Some(one));
        }
    }
    Ok(None)
}

/// How stale a fact's `last_seen_ns` (an address, a host name, a service, a DHCP client id) may
/// get before a batch refreshes it: an hour. Every batch hears the same facts again, and refreshing
/// each one to the batch's time rewrote three more pages per commit, half of discovery's writes to
/// the SD card (docs/DURABILITY.md). The device's and its MAC's own `last_seen_ns` (what "last
/// seen" and presence read) stay exact; a new fact, an earlier `first_seen_ns` or a client id
/// moving to another device is written at once.
const FACT_REFRESH_NS: i64 = 3_600_000_000_000;

fn write_facts(tx: &Connection, id: i64, f: &MacFacts) -> rusqlite::Result<()> {
    for cid in &f.client_ids {
        let (a, b) = span_bounds(f);
        tx.prepare_cached(
            "INSERT INTO device_client_ids (client_id, device_id, first_seen_ns, last_seen_ns)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (client_id) DO UPDATE SET device_id = excluded.device_id,
                 last_seen_ns = iif(excluded.last_seen_ns >= last_seen_ns + ?5,
                                    excluded.last_seen_ns, last_seen_ns)",
        )?
        .execute(params![cid, id, a, b, FACT_REFRESH_NS])?;
    }
    for (addr, a, b) in &f.addresses {
        tx.prepare_cached(
            "INSERT INTO device_addresses (device_id, addr, family, first_seen_ns, last_seen_ns)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (device_id, addr) DO UPDATE SET
                 first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
                 last_seen_ns = iif(excluded.last_seen_ns >= last_seen_ns + ?6,
                                    excluded.last_seen_ns, last_seen_ns)",
        )?
        .execute(params![
            id,
            addr.to_string(),
            if addr.is_ipv4() { 4 } else { 6 },
            a,
            b,
            FACT_REFRESH_NS
        ])?;
    }
    for (source, name, a, b) in &f.hostnames {
        tx.prepare_cached(
            "INSERT INTO device_hostnames (device_id, source, name, first_seen_ns, last_seen_ns)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (device_id, source, name) DO UPDATE SET
                 first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
                 last_seen_ns = iif(excluded.last_seen_ns >= last_seen_ns + ?6,
                                    excluded.last_seen_ns, last_seen_ns)",
        )?
        .execute(params![id, source, name, a, b, FACT_REFRESH_NS])?;
    }
    let (a, b) = span_bounds(f);
    for s in &f.services {
        tx.prepare_cached(
            "INSERT INTO device_services (device_id, service, first_seen_ns, last_seen_ns)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (device_id, service) DO UPDATE SET
                 last_seen_ns = iif(excluded.last_seen_ns >= last_seen_ns + ?5,
                                    excluded.last_seen_ns, last_seen_ns)",
        )?
        .execute(params![id, s, a, b, FACT_REFRESH_NS])?;
    }
    tx.prepare_cached(
        "UPDATE devices SET vendor_class = coalesce(?2, vendor_class),
             vendor = coalesce(vendor, ?3), advertises_routes = advertises_routes OR ?4
         WHERE id = ?1",
    )?
    .execute(params![id, f.vendor_class, f.vendor, f.router])?;
    Ok(())
}

fn span_bounds(f: &MacFacts) -> (TimestampNs, TimestampNs) {
    let a = f.spans.iter().map(|s| s.0).min().unwrap_or(0);
    let b = f.spans.iter().map(|s| s.1).max().unwrap_or(a);
    (a, b)
}

fn profile(tx: &Connection, id: i64) -> rusqlite::Result<Profile> {
    let (router, vendor_class, vendor): (bool, Option<String>, Option<String>) = tx
        .prepare_cached(
            "SELECT advertises_routes, vendor_class, vendor FROM devices WHERE id = ?1",
        )?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let services = tx
        .prepare_cached("SELECT service FROM device_services WHERE device_id = ?1")?
        .query_map(params![id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let hostnames = tx
        .prepare_cached(
            "SELECT name FROM device_hostnames WHERE device_id = ?1 ORDER BY last_seen_ns DESC",
        )?
        .query_map(params![id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(Profile {
        router,
        services,
        vendor_class,
        hostnames,
        vendor,
    })
}

/// [`Store::write_discovery`] inside a savepoint of a transaction already open: the flusher's,
/// when discovery's steady batch is queued for it ([`super::batch`]), so it costs no commit of
/// its own.
pub fn write_discovery_in(
    tx: &mut rusqlite::Savepoint<'_>,
    path: &Path,
    batch: &[MacFacts],
    window_ns: i64,
    guess: impl Fn(&Profile) -> Option<&'static str>,
) -> Result<DiscoveryWrite, StoreError> {
    let path = path.to_path_buf();
    let op = "recording discovered devices";
    let mut touched = BTreeSet::new();
    let mut out = DiscoveryWrite::default();
    for f in batch {
        if f.mac.is_group() || f.mac == MacAddr::default() {
            continue;
        }
        let (a, b) = span_bounds(f);
        let seen = Sighting {
            mac: f.mac,
            first_seen: a,
            last_seen: b,
            is_gateway: false,
        };
        let mut id = device_for(tx, &seen).map_err(sql_err(&path, op))?;
        if f.mac.is_locally_administered()
            && let Some(target) = link_target(tx, id, f).map_err(sql_err(&path, op))?
        {
            // A savepoint: a merge that cannot complete (a table we do not know still
            // points at the device) leaves both devices as they were, and the batch goes on.
            let sp = tx.savepoint().map_err(sql_err(&path, op))?;
            match merge_into(&sp, id, target, window_ns) {
                Ok(()) => {
                    sp.commit().map_err(sql_err(&path, op))?;
                    touched.remove(&id);
                    tracing::info!(mac = %f.mac, from = id, into = target, "private MAC linked to a known device");
                    id = target;
                    out.merged += 1;
                }
                Err(err) => {
                    drop(sp);
                    tracing::warn!(mac = %f.mac, error = %err, "could not link a private MAC to its device");
                }
            }
        }
        write_facts(tx, id, f).map_err(sql_err(&path, op))?;
        for &(s, e) in &f.spans {
            add_presence(tx, id, s, e, window_ns).map_err(sql_err(&path, op))?;
        }
        touched.insert(id);
    }
    for &id in &touched {
        let p = profile(tx, id).map_err(sql_err(&path, op))?;
        tx.prepare_cached("UPDATE devices SET type_guess = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![id, guess(&p)]))
            .map_err(sql_err(&path, op))?;
    }
    out.devices = touched.len();
    Ok(out)
}

impl Store {
    /// Writes one batch of discovery facts as ONE transaction: devices created or linked,
    /// facts and presence added, type guesses refreshed with `guess`. `window_ns` is the
    /// presence window: sightings closer than this are one online interval.
    pub fn write_discovery(
        &mut self,
        batch: &[MacFacts],
        window_ns: i64,
        guess: impl Fn(&Profile) -> Option<&'static str>,
    ) -> Result<DiscoveryWrite, StoreError> {
        let path = self.path.clone();
        let op = "recording discovered devices";
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&path, op))?;
        let mut sp = tx.savepoint().map_err(sql_err(&path, op))?;
        let out = write_discovery_in(&mut sp, &path, batch, window_ns, guess)?;
        sp.commit().map_err(sql_err(&path, op))?;
        tx.commit().map_err(sql_err(&path, op))?;
        Ok(out)
    }

    /// Merges device `from` into `into` (the user said they are one): MACs, usage, names,
    /// addresses and presence follow; `into`'s user fields win. What the merge changes is kept
    /// so that [`Store::undo_merge`] can split them again; returns that undo's id (`None` when
    /// `from == into`, which changes nothing). `label` is what `from` was called, `now_ns` when.
    pub fn merge_devices(
        &mut self,
        from: i64,
        into: i64,
        window_ns: i64,
        label: &str,
        now_ns: i64,
    ) -> Result<Option<i64>, StoreError> {
        let path = self.path.clone();
        let op = "merging devices";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&path, op))?;
        let mut undo = None;
        if from != into {
            undo = Some(
                super::undo::record_merge(&tx, from, into, label, now_ns)
                    .map_err(sql_err(&path, op))?,
            );
            merge_into(&tx, from, into, window_ns).map_err(sql_err(&path, op))?;
        }
        tx.commit().map_err(sql_err(&path, op))?;
        Ok(undo)
    }

    /// Sets the user's fields of a device (as given: the web layer validates them). A person or
    /// group that differs from an existing one only in case takes the existing spelling (the
    /// one most other devices use), so "grandma" joins "Grandma" instead of becoming another.
    pub fn set_user_fields(&mut self, id: i64, u: &UserFields) -> Result<(), StoreError> {
        let spelt = |col: &str, v: &Option<String>| -> rusqlite::Result<Option<String>> {
            let Some(v) = v else { return Ok(None) };
            let found: Option<String> = self
                .conn
                .query_row(
                    &format!(
                        "SELECT {col} FROM devices WHERE {col} = ?1 COLLATE NOCASE AND id != ?2
                         GROUP BY {col} ORDER BY count(*) DESC, {col} LIMIT 1"
                    ),
                    params![v, id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(Some(found.unwrap_or_else(|| v.clone())))
        };
        let owner =
            spelt("owner", &u.owner).map_err(sql_err(&self.path, "saving device fields"))?;
        let group =
            spelt("device_group", &u.group).map_err(sql_err(&self.path, "saving device fields"))?;
        self.conn
            .execute(
                "UPDATE devices SET name = ?2, owner = ?3, device_group = ?4, type_override = ?5,
                     notes = ?6, known = ?7, ignored = ?8 WHERE id = ?1",
                params![
                    id,
                    u.name,
                    owner,
                    group,
                    u.type_override,
                    u.notes,
                    u.known,
                    u.ignored
                ],
            )
            .map_err(sql_err(&self.path, "saving device fields"))?;
        Ok(())
    }

    /// Every device, ordered by id, with its MACs, names, addresses and services; `presence` is
    /// left empty (every page reads this list, none of them the intervals: see
    /// [`Store::list_devices_with_presence`]).
    pub fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.devices_where(None, false)
    }

    /// [`Store::list_devices`] with each device's last [`PRESENCE_LISTED`] online intervals.
    pub fn list_devices_with_presence(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.devices_where(None, true)
    }

    /// One device with everything [`Store::list_devices_with_presence`] gives for it; `None`
    /// if there is no such id (it was merged into another, or never existed).
    pub fn device(&self, id: i64) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self.devices_where(Some(id), true)?.pop())
    }

    /// The devices (all, or the one `only`) with their facts. Each fact table is read in one
    /// query for all devices, ordered by device: a page's first view reads 200 devices in four
    /// scans instead of 800 point lookups.
    fn devices_where(
        &self,
        only: Option<i64>,
        with_presence: bool,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let path = self.path.as_path();
        let op = "listing devices";
        let e = sql_err(path, op);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, mac, first_seen_ns, last_seen_ns, is_gateway, randomized, vendor,
                     vendor_class, type_guess, name, owner, device_group, type_override, notes,
                     known, ignored
                 FROM devices WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
            )
            .map_err(e)?;
        let mut devices: Vec<DeviceRecord> = st
            .query_map(params![only], |r| {
                Ok(DeviceRecord {
                    id: r.get(0)?,
                    mac: mac_from_key(r.get(1)?),
                    macs: Vec::new(),
                    first_seen_ns: r.get(2)?,
                    last_seen_ns: r.get(3)?,
                    is_gateway: r.get(4)?,
                    randomized: r.get(5)?,
                    vendor: r.get(6)?,
                    vendor_class: r.get(7)?,
                    type_guess: r.get(8)?,
                    user: UserFields {
                        name: r.get(9)?,
                        owner: r.get(10)?,
                        group: r.get(11)?,
                        type_override: r.get(12)?,
                        notes: r.get(13)?,
                        known: r.get(14)?,
                        ignored: r.get(15)?,
                    },
                    hostnames: Vec::new(),
                    addresses: Vec::new(),
                    services: Vec::new(),
                    presence: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(sql_err(path, op))?;
        // Devices are ordered by id: a fact row finds its device by binary search.
        let slot = |devices: &mut [DeviceRecord], id: i64| -> Option<usize> {
            devices.binary_search_by_key(&id, |d| d.id).ok()
        };
        let filter = if only.is_some() {
            "WHERE device_id = ?1"
        } else {
            "WHERE ?1 IS NULL"
        };
        let e = || sql_err(path, op);
        // Each fact table is read in its key order (by device) and each device's few facts are
        // put in order here: an ORDER BY on more than the device made SQLite sort every
        // device's rows apart, which cost about a third of the whole listing.
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT device_id, mac, first_seen_ns, last_seen_ns FROM device_macs {filter}
                 ORDER BY device_id"
            ))
            .map_err(e())?;
        let mut rows = st.query(params![only]).map_err(e())?;
        while let Some(r) = rows.next().map_err(e())? {
            let Some(i) = slot(&mut devices, r.get(0).map_err(e())?) else {
                continue;
            };
            let mac = mac_from_key(r.get(1).map_err(e())?);
            devices[i].macs.push(DeviceMac {
                mac,
                randomized: mac.is_locally_administered(),
                first_seen_ns: r.get(2).map_err(e())?,
                last_seen_ns: r.get(3).map_err(e())?,
            });
        }
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT device_id, name, source, first_seen_ns, last_seen_ns FROM device_hostnames
                 {filter} ORDER BY device_id"
            ))
            .map_err(e())?;
        let mut rows = st.query(params![only]).map_err(e())?;
        while let Some(r) = rows.next().map_err(e())? {
            let Some(i) = slot(&mut devices, r.get(0).map_err(e())?) else {
                continue;
            };
            devices[i].hostnames.push(HostnameRecord {
                name: r.get(1).map_err(e())?,
                source: r.get(2).map_err(e())?,
                first_seen_ns: r.get(3).map_err(e())?,
                last_seen_ns: r.get(4).map_err(e())?,
            });
        }
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT device_id, addr, first_seen_ns, last_seen_ns FROM device_addresses
                 {filter} ORDER BY device_id"
            ))
            .map_err(e())?;
        let mut rows = st.query(params![only]).map_err(e())?;
        // (device slot, address as stored, record): the stored text breaks ties in the order.
        let mut addresses: Vec<(usize, String, AddressRecord)> = Vec::new();
        while let Some(r) = rows.next().map_err(e())? {
            let Some(i) = slot(&mut devices, r.get(0).map_err(e())?) else {
                continue;
            };
            let text: String = r.get(1).map_err(e())?;
            // An address this version cannot parse (written by a newer one) is left out.
            if let Ok(addr) = text.parse() {
                let rec = AddressRecord {
                    addr,
                    first_seen_ns: r.get(2).map_err(e())?,
                    last_seen_ns: r.get(3).map_err(e())?,
                };
                addresses.push((i, text, rec));
            }
        }
        // Per device: the most recently seen first, then by the stored text.
        addresses.sort_by(|a, b| {
            (a.0, std::cmp::Reverse(a.2.last_seen_ns), &a.1).cmp(&(
                b.0,
                std::cmp::Reverse(b.2.last_seen_ns),
                &b.1,
            ))
        });
        for (i, _, rec) in addresses {
            devices[i].addresses.push(rec);
        }
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT device_id, service FROM device_services {filter}
                 ORDER BY device_id, service"
            ))
            .map_err(e())?;
        let mut rows = st.query(params![only]).map_err(e())?;
        while let Some(r) = rows.next().map_err(e())? {
            let Some(i) = slot(&mut devices, r.get(0).map_err(e())?) else {
                continue;
            };
            devices[i].services.push(r.get(1).map_err(e())?);
        }
        for d in &mut devices {
            // The order the listing promises: MACs oldest first, names most recently seen
            // first (then by source and name, as stored).
            d.macs.sort_by_key(|m| m.first_seen_ns);
            d.hostnames.sort_by(|a, b| {
                (std::cmp::Reverse(a.last_seen_ns), &a.source, &a.name).cmp(&(
                    std::cmp::Reverse(b.last_seen_ns),
                    &b.source,
                    &b.name,
                ))
            });
        }
        if with_presence {
            for d in &mut devices {
                let mut presence: Vec<(i64, i64)> = self
                    .conn
                    .prepare_cached(
                        "SELECT online_from_ns, last_seen_ns FROM presence WHERE device_id = ?1
                         ORDER BY online_from_ns DESC LIMIT ?2",
                    )
                    .and_then(|mut st| {
                        st.query_map(params![d.id, PRESENCE_LISTED as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?
                        .collect()
                    })
                    .map_err(e())?;
                presence.reverse();
                d.presence = presence;
            }
        }
        Ok(devices)
    }

    /// A device's online intervals (from, last seen), oldest first. The device counts as online
    /// until `last seen + presence window`.
    pub fn presence(&self, device_id: i64) -> Result<Vec<(TimestampNs, TimestampNs)>, StoreError> {
        let path = self.path.as_path();
        self.conn
            .prepare_cached(
                "SELECT online_from_ns, last_seen_ns FROM presence WHERE device_id = ?1
                 ORDER BY online_from_ns",
            )
            .and_then(|mut st| {
                st.query_map(params![device_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(sql_err(path, "reading presence"))
    }

    /// Device events with an id above `after`, oldest first: the alert engine remembers the
    /// last id it handled, so nothing is lost across restarts.
    pub fn device_events_after(&self, after: i64) -> Result<Vec<DeviceEvent>, StoreError> {
        let path = self.path.as_path();
        self.conn
            .prepare_cached(
                "SELECT id, device_id, mac, kind, at_ns, detail FROM device_events
                 WHERE id > ?1 ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map(params![after], |r| {
                    Ok(DeviceEvent {
                        id: r.get(0)?,
                        device_id: r.get(1)?,
                        mac: mac_from_key(r.get(2)?),
                        kind: r.get(3)?,
                        at_ns: r.get(4)?,
                        detail: r.get(5)?,
                    })
                })?
                .collect()
            })
            .map_err(sql_err(path, "reading device events"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counts, MinuteUsage};

    const S: i64 = 1_000_000_000;
    const WINDOW: i64 = 300 * S;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    fn facts(m: MacAddr, at: i64) -> MacFacts {
        MacFacts {
            mac: m,
            spans: vec![(at, at)],
            ..Default::default()
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("d.db")).unwrap();
        (dir, s)
    }

    fn no_guess(_: &Profile) -> Option<&'static str> {
        None
    }

    #[test]
    fn two_private_macs_with_one_client_id_become_one_device_and_history_follows() {
        let (_d, mut st) = store();
        let a = mac("da:00:00:00:00:01");
        let b = mac("fa:00:00:00:00:02");
        // The first MAC has traffic history before discovery hears its DHCP.
        st.write_flush(
            &[MinuteUsage {
                mac: a,
                minute: 60,
                counts: Counts {
                    bytes_sent: 100,
                    frames_sent: 1,
                    ..Default::default()
                },
            }],
            &[Sighting {
                mac: a,
                first_seen: 60 * S,
                last_seen: 61 * S,
                is_gateway: false,
            }],
        )
        .unwrap();
        let mut fa = facts(a, 62 * S);
        fa.client_ids = vec!["dhcp:ff00112233".into()];
        fa.hostnames = vec![("dhcp", "annas-phone".into(), 62 * S, 62 * S)];
        st.write_discovery(&[fa], WINDOW, no_guess).unwrap();
        // Days later the phone comes back with another private MAC and the same client id.
        let mut fb = facts(b, 90_000 * S);
        fb.client_ids = vec!["dhcp:ff00112233".into()];
        let w = st.write_discovery(&[fb], WINDOW, no_guess).unwrap();
        assert_eq!(w.merged, 1);
        // Its traffic, flushed after the link, lands on the same device.
        st.write_flush(
            &[MinuteUsage {
                mac: b,
                minute: 90_000,
                counts: Counts {
                    bytes_sent: 50,
                    frames_sent: 1,
                    ..Default::default()
                },
            }],
            &[Sighting {
                mac: b,
                first_seen: 90_000 * S,
                last_seen: 90_001 * S,
                is_gateway: false,
            }],
        )
        .unwrap();
        let list = st.list_devices().unwrap();
        assert_eq!(list.len(), 1, "{list:#?}");
        let d = &list[0];
        assert_eq!(d.macs.iter().map(|m| m.mac).collect::<Vec<_>>(), [a, b]);
        assert!(d.randomized);
        assert_eq!(d.display_name(), Some("annas-phone"));
        let totals = st.device_totals().unwrap();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].counts.bytes_sent, 150);
        // Two online intervals, days apart.
        assert_eq!(st.presence(d.id).unwrap().len(), 2);
        let kinds: Vec<String> = st
            .device_events_after(0)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["new_device", "new_device", "merged"]);
    }

    #[test]
    fn a_unique_dhcp_hostname_links_but_a_generic_or_shared_one_does_not() {
        let (_d, mut st) = store();
        let named = |m: &str, n: &str, at: i64| {
            let mut f = facts(mac(m), at);
            f.hostnames = vec![("dhcp", n.to_string(), at, at)];
            f
        };
        st.write_discovery(
            &[
                named("da:00:00:00:00:01", "bens-laptop", S),
                named("da:00:00:00:00:02", "iPhone", S),
                named("da:00:00:00:00:03", "iPhone", S),
            ],
            WINDOW,
            no_guess,
        )
        .unwrap();
        st.write_discovery(
            &[
                named("da:00:00:00:00:11", "BENS-LAPTOP", 9 * S),
                named("da:00:00:00:00:12", "iphone", 9 * S),
            ],
            WINDOW,
            no_guess,
        )
        .unwrap();
        let list = st.list_devices().unwrap();
        assert_eq!(list.len(), 4, "{list:#?}");
        let ben = list
            .iter()
            .find(|d| d.display_name() == Some("BENS-LAPTOP"))
            .unwrap();
        assert_eq!(ben.macs.len(), 2);
        // A global (vendor) MAC is never linked by evidence, even with a matching name.
        st.write_discovery(
            &[named("dc:a6:32:00:00:01", "bens-laptop", 10 * S)],
            WINDOW,
            no_guess,
        )
        .unwrap();
        assert_eq!(st.list_devices().unwrap().len(), 5);
    }

    #[test]
    fn presence_intervals_follow_a_device_going_quiet_and_coming_back() {
        let (_d, mut st) = store();
        let m = mac("dc:a6:32:00:00:09");
        // Seen every minute for 10 minutes, quiet for an hour, back for 5 minutes; batches
        // arrive out of order, and one batch spans the gap.
        let mut batches: Vec<Vec<(i64, i64)>> =
            (0..10).map(|i| vec![(i * 60 * S, i * 60 * S)]).collect();
        batches.push(vec![(9 * 60 * S, 9 * 60 * S), (70 * 60 * S, 71 * 60 * S)]);
        batches.push(vec![(75 * 60 * S, 75 * 60 * S)]);
        batches.swap(0, 5);
        for spans in batches {
            let f = MacFacts {
                mac: m,
                spans,
                ..Default::default()
            };
            st.write_discovery(&[f], WINDOW, no_guess).unwrap();
        }
        let id = st.list_devices().unwrap()[0].id;
        assert_eq!(
            st.presence(id).unwrap(),
            [(0, 9 * 60 * S), (70 * 60 * S, 75 * 60 * S)]
        );
        // A sighting exactly at the window's edge still continues the interval.
        st.write_discovery(&[facts(m, 80 * 60 * S)], WINDOW, no_guess)
            .unwrap();
        assert_eq!(st.presence(id).unwrap()[1], (70 * 60 * S, 80 * 60 * S));
    }

    #[test]
    fn hostile_strings_round_trip_unchanged_and_guess_is_stored() {
        let (_d, mut st) = store();
        let m = mac("dc:a6:32:00:00:07");
        let hostile = [
            "<script>alert(1)</script>",
            "a\\x00b\"c'd",
            &"x".repeat(255),
            "\\xff\\xfe",
        ];
        let mut f = facts(m, S);
        f.hostnames = hostile
            .iter()
            .map(|h| ("dhcp", h.to_string(), S, S))
            .collect();
        f.services = vec!["_ipp._tcp".into()];
        f.vendor = Some("Raspberry Pi Trading Ltd".into());
        st.write_discovery(&[f], WINDOW, |p| {
            p.services
                .iter()
                .any(|s| s == "_ipp._tcp")
                .then_some("printer")
        })
        .unwrap();
        let d = &st.list_devices().unwrap()[0];
        let mut got: Vec<&str> = d.hostnames.iter().map(|h| h.name.as_str()).collect();
        let mut want: Vec<&str> = hostile.to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(d.type_guess.as_deref(), Some("printer"));
        assert_eq!(d.vendor.as_deref(), Some("Raspberry Pi Trading Ltd"));
        // The user's type wins over the guess.
        st.set_user_fields(
            d.id,
            &UserFields {
                type_override: Some("tv".into()),
                name: Some("Küche".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let d = &st.list_devices().unwrap()[0];
        assert_eq!(d.device_type(), Some("tv"));
        assert_eq!(d.display_name(), Some("Küche"));
    }

    #[test]
    fn a_database_from_before_discovery_keeps_its_devices_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            super::super::migrations::migrate(
                &mut conn,
                &path,
                &super::super::migrations::MIGRATIONS[..1],
            )
            .unwrap();
            conn.execute_batch(
                "INSERT INTO devices (id, mac, first_seen_ns, last_seen_ns) VALUES (7, 240518168577, 1, 2);
                 INSERT INTO usage_minute VALUES (7, 60, 1, 0, 100, 0, 0, 0);",
            )
            .unwrap();
        }
        let mut st = Store::open(&path).unwrap();
        let list = st.list_devices().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].macs.len(), 1);
        assert_eq!(list[0].mac, MacAddr::from_u64(240_518_168_577));
        // New traffic and discovery for that MAC land on the same device.
        st.write_discovery(&[facts(list[0].mac, 5 * S)], WINDOW, no_guess)
            .unwrap();
        let list = st.list_devices().unwrap();
        assert_eq!((list.len(), list[0].id), (1, 7));
        // Events start with discovery: old devices are not announced as new.
        assert!(st.device_events_after(0).unwrap().is_empty());
    }

    #[test]
    fn a_person_or_group_typed_in_another_case_joins_the_existing_one() {
        let (_d, mut st) = store();
        let macs = [
            "dc:a6:32:00:00:01",
            "dc:a6:32:00:00:02",
            "dc:a6:32:00:00:03",
        ];
        let f: Vec<MacFacts> = macs.iter().map(|m| facts(mac(m), S)).collect();
        st.write_discovery(&f, WINDOW, no_guess).unwrap();
        let ids: Vec<i64> = st.list_devices().unwrap().iter().map(|d| d.id).collect();
        let set = |st: &mut Store, id: i64, owner: &str, group: &str| {
            st.set_user_fields(
                id,
                &UserFields {
                    owner: Some(owner.into()),
                    group: Some(group.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        };
        set(&mut st, ids[0], "Grandma", "Smart home");
        set(&mut st, ids[1], "grandma", "SMART HOME");
        // The only device with a spelling may change it.
        set(&mut st, ids[2], "Leo", "kids");
        set(&mut st, ids[2], "leo", "Kids");
        let list = st.list_devices().unwrap();
        let got: Vec<(Option<&str>, Option<&str>)> = list
            .iter()
            .map(|d| (d.user.owner.as_deref(), d.user.group.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("Grandma"), Some("Smart home")),
                (Some("Grandma"), Some("Smart home")),
                (Some("leo"), Some("Kids")),
            ]
        );
    }

    #[test]
    fn user_merge_moves_history_and_keeps_the_targets_fields() {
        let (_d, mut st) = store();
        let a = mac("dc:a6:32:00:00:01");
        let b = mac("dc:a6:32:00:00:02");
        st.write_discovery(&[facts(a, S), facts(b, 2 * S)], WINDOW, no_guess)
            .unwrap();
        let ids: Vec<i64> = st.list_devices().unwrap().iter().map(|d| d.id).collect();
        st.set_user_fields(
            ids[0],
            &UserFields {
                name: Some("desk".into()),
                ..Default::default()
            },
        )
        .unwrap();
        st.merge_devices(ids[1], ids[0], WINDOW, "b", 0).unwrap();
        let list = st.list_devices().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].macs.len(), 2);
        assert_eq!(list[0].user.name.as_deref(), Some("desk"));
        assert_eq!(st.presence(ids[0]).unwrap(), [(S, 2 * S)]);
    }

    /// Pages a commit appends to the WAL (each frame is a 24-byte header and one 4 KB page).
    fn wal_frames(db: &std::path::Path) -> u64 {
        let n = std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
        n.saturating_sub(32) / (4096 + 24)
    }

    #[test]
    fn a_steady_batch_refreshes_presence_and_last_seen_not_every_known_fact() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.db");
        let mut st = Store::open(&db).unwrap();
        // A household of 25 heard again every 5 minutes with the addresses, names and services
        // it already has: what discovery writes all day.
        let batch = |from: i64, to: i64| -> Vec<MacFacts> {
            (0..25u8)
                .map(|i| MacFacts {
                    mac: mac(&format!("00:11:22:33:44:{i:02x}")),
                    spans: vec![(from, to)],
                    addresses: vec![
                        (format!("192.168.1.{}", 10 + i).parse().unwrap(), from, to),
                        (format!("fe80::{}", 10 + i).parse().unwrap(), from, to),
                    ],
                    hostnames: vec![("dhcp", format!("host-{i}"), from, to)],
                    services: vec!["_airplay._tcp".into()],
                    client_ids: vec![format!("01:00:11:22:33:44:{i:02x}")],
                    ..Default::default()
                })
                .collect()
        };
        let t0 = 1_700_000_000 * S;
        st.write_discovery(&batch(t0, t0 + 290 * S), WINDOW, no_guess)
            .unwrap();
        let mut pages = Vec::new();
        for k in 1..=3 {
            let before = wal_frames(&db);
            let t = t0 + k * 300 * S;
            st.write_discovery(&batch(t, t + 290 * S), WINDOW, no_guess)
                .unwrap();
            pages.push(wal_frames(&db) - before);
        }
        // devices, device_macs and presence: one leaf page each for 25 devices. Refreshing every
        // address, name, service and client id as well wrote 7.
        assert!(
            pages.iter().all(|&p| p <= 3),
            "pages per steady batch: {pages:?}"
        );

        let addr_last = |st: &Store| -> i64 {
            st.conn
                .query_row(
                    "SELECT last_seen_ns FROM device_addresses WHERE addr = '192.168.1.10'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(addr_last(&st), t0 + 290 * S, "within the hour: kept");
        let list = st.list_devices().unwrap();
        assert_eq!(
            list[0].last_seen_ns,
            t0 + 3 * 300 * S + 290 * S,
            "the device's own last seen is exact"
        );
        let later = t0 + 4_000 * S;
        st.write_discovery(&batch(later, later + 10 * S), WINDOW, no_guess)
            .unwrap();
        assert_eq!(addr_last(&st), later + 10 * S, "an hour on: refreshed");
    }
}
