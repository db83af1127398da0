//! GET /: a minimal overview — each device's bytes today (stored minutes plus what the live
//! meter holds that is not flushed yet). The dashboard proper replaces this page.

use super::AppState;
use super::error::AppError;
use super::session::{Auth, Layout};
use crate::model::{Counts, MacAddr};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;
use std::collections::BTreeMap;

pub struct Row {
    pub mac: String,
    pub received: String,
    pub sent: String,
    pub live: String,
    pub gateway: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/overview.html")]
pub struct OverviewPage {
    pub layout: Layout,
    pub rows: Vec<Row>,
    pub today_total: String,
}

/// Bytes in decimal units, as ISPs bill: 1 GB = 10^9 bytes.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if b < 1000 {
        return format!("{b} B");
    }
    let mut v = b as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.2} {unit}")
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<OverviewPage, AppError> {
    let tz = state.config().time_zone();
    let now = jiff::Timestamp::from_second(state.now())
        .map_err(|e| AppError::internal(format!("clock out of range: {e}")))?;
    let day_start = now
        .to_zoned(tz)
        .start_of_day()
        .map_err(|e| AppError::internal(format!("start of day: {e}")))?
        .timestamp()
        .as_second();
    let stored = state.db(move |s| s.usage_since(day_start)).await?;
    let snapshot = state.meter_snapshot();

    let mut devices: BTreeMap<MacAddr, (Counts, Counts, bool)> = BTreeMap::new();
    for u in stored {
        let e = devices.entry(u.mac).or_default();
        e.0.add(&u.counts);
        e.2 |= u.is_gateway;
    }
    for (mac, c) in &snapshot.devices {
        let e = devices.entry(*mac).or_default();
        e.0.add(c);
        e.1.add(c);
        e.2 |= snapshot.gateway == Some(*mac);
    }
    devices.remove(&crate::daemon::OTHER_BUCKET);
    let mut rows: Vec<(u64, Row)> = devices
        .into_iter()
        .map(|(mac, (today, live, gateway))| {
            let total = today.bytes_sent + today.bytes_received;
            (
                if gateway { 0 } else { total },
                Row {
                    mac: mac.to_string(),
                    received: fmt_bytes(today.bytes_received),
                    sent: fmt_bytes(today.bytes_sent),
                    live: fmt_bytes(live.bytes_sent + live.bytes_received),
                    gateway,
                },
            )
        })
        .collect();
    let household: u64 = rows.iter().map(|(t, _)| t).sum();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(OverviewPage {
        layout: Layout::new("Overview", "overview", Some(&auth)),
        rows: rows.into_iter().map(|(_, r)| r).collect(),
        today_total: fmt_bytes(household),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_decimal() {
        assert_eq!(super::fmt_bytes(999), "999 B");
        assert_eq!(super::fmt_bytes(1_500), "1.50 kB");
        assert_eq!(super::fmt_bytes(2_340_000_000), "2.34 GB");
    }
}
