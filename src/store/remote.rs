//! What remote write reads and keeps (issue 28): the closed minutes not sent yet, and the cursor
//! and per-series totals of what the receiver already has. Policy (what a series is, when a
//! minute is closed) is in [`crate::remote`].
use super::{Store, StoreError, sql_err};
use crate::model::Counts;
use crate::remote::{MinuteRow, SentSeries};
use rusqlite::{OptionalExtension, params};

const COUNTS: &str = "frames_sent, frames_received, bytes_sent, bytes_received, internet_upload_bytes, internet_download_bytes";

fn counts(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    let get = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(first + i)?.max(0) as u64) };
    Ok(Counts {
        frames_sent: get(0)?,
        frames_received: get(1)?,
        bytes_sent: get(2)?,
        bytes_received: get(3)?,
        internet_upload_bytes: get(4)?,
        internet_download_bytes: get(5)?,
    })
}

impl Store {
    /// The start of the last minute sent to the receiver at `url`; `None` when nothing was sent
    /// there yet (first enable, or a different receiver).
    pub fn remote_cursor(&self, url: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT sent_through FROM remote_write_cursor WHERE id = 1 AND url = ?1",
                [url],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err(&self.path, "reading the remote-write cursor"))
    }

    /// The series the receiver has, with their labels and totals so far. Empty when `url` is
    /// not the receiver they were sent to.
    pub fn remote_series(&self, url: &str) -> Result<Vec<SentSeries>, StoreError> {
        if self.remote_cursor(url)?.is_none() {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT series, labels, {COUNTS} FROM remote_write_series ORDER BY series"
            ))
            .map_err(sql_err(&self.path, "reading the remote-write series"))?;
        st.query_map([], |r| {
            Ok(SentSeries {
                series: r.get(0)?,
                labels: r.get(1)?,
                counts: counts(r, 2)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql_err(&self.path, "reading the remote-write series"))
    }

    /// The first `limit` minutes (starts, ascending) after `after` up to `through` that hold
    /// any usage row: a long gap is sent in batches that end on one of these.
    pub fn usage_minutes_between(
        &self,
        after: i64,
        through: i64,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT DISTINCT minute FROM usage_minute WHERE minute > ?1 AND minute <= ?2 ORDER BY minute LIMIT ?3",
            )
            .map_err(sql_err(&self.path, "listing minutes to send"))?;
        st.query_map(params![after, through, limit as i64], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sql_err(&self.path, "listing minutes to send"))
    }

    /// Every minute row after `after` up to `through`, by minute then device.
    pub fn usage_rows_between(
        &self,
        after: i64,
        through: i64,
    ) -> Result<Vec<MinuteRow>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT minute, device_id, {COUNTS} FROM usage_minute WHERE minute > ?1 AND minute <= ?2 ORDER BY minute, device_id"
            ))
            .map_err(sql_err(&self.path, "reading minutes to send"))?;
        st.query_map(params![after, through], |r| {
            Ok(MinuteRow {
                minute: r.get(0)?,
                device_id: r.get(1)?,
                counts: counts(r, 2)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql_err(&self.path, "reading minutes to send"))
    }

    /// Records that the receiver at `url` now has everything through `sent_through`, with
    /// these series, in one transaction (a crash leaves the previous record whole).
    pub fn save_remote(
        &mut self,
        url: &str,
        sent_through: i64,
        series: &[SentSeries],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(sql_err(&path, "recording what remote write sent"))?;
        tx.execute(
            "INSERT INTO remote_write_cursor (id, url, sent_through) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET url = excluded.url, sent_through = excluded.sent_through",
            params![url, sent_through],
        )
        .map_err(sql_err(&path, "recording what remote write sent"))?;
        tx.execute("DELETE FROM remote_write_series", [])
            .map_err(sql_err(&path, "recording what remote write sent"))?;
        {
            let mut ins = tx
                .prepare(&format!(
                    "INSERT INTO remote_write_series (series, labels, {COUNTS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ))
                .map_err(sql_err(&path, "recording what remote write sent"))?;
            for s in series {
                let c = &s.counts;
                let v = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
                ins.execute(params![
                    s.series,
                    s.labels,
                    v(c.frames_sent),
                    v(c.frames_received),
                    v(c.bytes_sent),
                    v(c.bytes_received),
                    v(c.internet_upload_bytes),
                    v(c.internet_download_bytes)
                ])
                .map_err(sql_err(&path, "recording what remote write sent"))?;
            }
        }
        tx.commit()
            .map_err(sql_err(&path, "recording what remote write sent"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_and_series_belong_to_one_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("r.db")).unwrap();
        let a = "http://a:8428/api/v1/write";
        assert_eq!(s.remote_cursor(a).unwrap(), None);
        let sent = [SentSeries {
            series: 0,
            labels: "home".into(),
            counts: Counts {
                bytes_sent: 5,
                ..Counts::default()
            },
        }];
        s.save_remote(a, 600, &sent).unwrap();
        assert_eq!(s.remote_cursor(a).unwrap(), Some(600));
        assert_eq!(s.remote_series(a).unwrap(), sent);
        // Another receiver has nothing yet: it gets the whole history again.
        let b = "http://b:9090/api/v1/write";
        assert_eq!(s.remote_cursor(b).unwrap(), None);
        assert!(s.remote_series(b).unwrap().is_empty());
        s.save_remote(a, 660, &[]).unwrap();
        assert_eq!(s.remote_cursor(a).unwrap(), Some(660));
        assert!(s.remote_series(a).unwrap().is_empty());
    }
}
