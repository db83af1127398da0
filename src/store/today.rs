//! Read-only usage sums for the web pages: each device's counters since a point in time.
//!
//! Plain reads on the caller's connection; never writes and never holds a transaction open.
use super::{Store, StoreError, identity, sql_err, usage::counts_at};
use crate::model::{Counts, MacAddr};

const USAGE_SINCE: &str = "
SELECT d.mac, d.is_gateway,
       sum(u.frames_sent), sum(u.frames_received), sum(u.bytes_sent), sum(u.bytes_received),
       sum(u.internet_upload_bytes), sum(u.internet_download_bytes)
FROM usage_minute u JOIN devices d ON d.id = u.device_id
WHERE u.minute >= ?1
GROUP BY u.device_id
ORDER BY d.mac";

/// One device's stored counters since a minute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageSince {
    pub mac: MacAddr,
    pub is_gateway: bool,
    pub counts: Counts,
}

impl Store {
    /// Every device with stored usage at or after `from_minute` (Unix seconds), ordered by MAC.
    pub fn usage_since(&self, from_minute: i64) -> Result<Vec<UsageSince>, StoreError> {
        let path = self.path.as_path();
        let op = "reading usage since a time";
        let mut st = self
            .conn
            .prepare_cached(USAGE_SINCE)
            .map_err(sql_err(path, op))?;
        let rows = st
            .query_map([from_minute], |row| {
                Ok(UsageSince {
                    mac: identity::mac_from_key(row.get(0)?),
                    is_gateway: row.get(1)?,
                    counts: counts_at(row, 2)?,
                })
            })
            .map_err(sql_err(path, op))?;
        rows.collect::<Result<_, _>>().map_err(sql_err(path, op))
    }
}
