//! A device's presence: the intervals it was seen online, joined when closer than the presence
//! window. Discovery and merge undo both write them; this file must not import either.

use crate::model::TimestampNs;
use rusqlite::{Connection, params};

/// Adds the span `[from, to]` to a device's presence, joining it with intervals less than
/// `window` apart (before or after it, so out-of-order batches are fine).
pub(super) fn add_presence(
    tx: &Connection,
    id: i64,
    from: TimestampNs,
    to: TimestampNs,
    window: i64,
) -> rusqlite::Result<()> {
    let (mut from, mut to) = (from.min(to), from.max(to));
    // Every interval that touches [from - window, to + window] is absorbed into one.
    let near: Vec<(i64, i64)> = tx
        .prepare_cached(
            "SELECT online_from_ns, last_seen_ns FROM presence
             WHERE device_id = ?1 AND online_from_ns <= ?3 AND last_seen_ns >= ?2",
        )?
        .query_map(
            params![id, from.saturating_sub(window), to.saturating_add(window)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    for (f, l) in near {
        from = from.min(f);
        to = to.max(l);
        tx.prepare_cached("DELETE FROM presence WHERE device_id = ?1 AND online_from_ns = ?2")?
            .execute(params![id, f])?;
    }
    tx.prepare_cached(
        "INSERT INTO presence (device_id, online_from_ns, last_seen_ns) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, from, to])?;
    Ok(())
}
