//! The weekly summary email: the household's total and its trend against the week before, top
//! devices and people, new devices and the week's alerts, at the configured weekday and hour
//! in the household's time zone.
//!
//! It reads the query layer and the alerts, and queues one email through the outbox; it never
//! sends itself. Plan status joins when the plan module offers it (issue 8).

use super::engine::Policy;
use super::render::{self, LinkCtx, WeeklyData};
use super::{AlertError, human_bytes};
use crate::config::Config;
use crate::store::Store;
use crate::store::alerts::NewMessage;
use crate::store::query::Selection;
use jiff::{ToSpan, Zoned};
use std::collections::BTreeMap;

const TOP: usize = 5;

/// "+12 %", "−30 %", "new" — this week against the last.
pub fn trend(this: u64, last: u64) -> String {
    if last == 0 {
        return if this == 0 {
            "no change".into()
        } else {
            "up from nothing".into()
        };
    }
    let pct = (this as f64 - last as f64) / last as f64 * 100.0;
    if pct.abs() < 0.5 {
        "no change".into()
    } else if pct > 0.0 {
        format!("+{pct:.0} %")
    } else {
        format!("−{:.0} %", -pct)
    }
}

/// The summary of the seven local days before `end` (a local midnight).
pub fn build(store: &Store, links: &LinkCtx, end: &Zoned) -> Result<WeeklyData, AlertError> {
    let tz = &links.tz;
    let start = end.checked_sub(7.days()).map_err(|e| AlertError::Render {
        what: "weekly",
        detail: e.to_string(),
    })?;
    let before = start
        .checked_sub(7.days())
        .map_err(|e| AlertError::Render {
            what: "weekly",
            detail: e.to_string(),
        })?;
    let (s, e, b) = (start.timestamp(), end.timestamp(), before.timestamp());
    let this = store.usage(&Selection::Household, tz, s, e)?;
    let last = store.usage(&Selection::Household, tz, b, s)?;
    let total = |c: &crate::model::Counts| c.bytes_sent + c.bytes_received;
    let devices = store.list_devices()?;
    let name_of = |mac: crate::model::MacAddr| {
        devices
            .iter()
            .find(|d| d.macs.iter().any(|m| m.mac == mac) || d.mac == mac)
            .map(|d| {
                (
                    d.display_name()
                        .map(str::to_string)
                        .unwrap_or_else(|| mac.to_string()),
                    d.user.owner.clone(),
                )
            })
            .unwrap_or_else(|| (mac.to_string(), None))
    };
    let (all, _) = store.usage_by_device(tz, s, e)?;
    let mut people: BTreeMap<String, u64> = BTreeMap::new();
    for d in all
        .iter()
        .filter(|d| !d.is_gateway && d.mac != crate::store::query::OTHER)
    {
        if let (_, Some(owner)) = name_of(d.mac) {
            *people.entry(owner).or_default() += d.total_bytes();
        }
    }
    let mut people: Vec<(String, u64)> = people.into_iter().collect();
    people.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = store
        .top_devices(tz, s, e, TOP)?
        .into_iter()
        .map(|d| (name_of(d.mac).0, human_bytes(d.total_bytes())))
        .collect();
    let (s_ns, e_ns) = (s.as_nanosecond() as i64, e.as_nanosecond() as i64);
    let new_devices = store
        .device_events_after(0)?
        .into_iter()
        .filter(|ev| {
            ev.kind == "new_device" && ev.at_ns >= s_ns && ev.at_ns < e_ns && !ev.mac.is_group()
        })
        .map(|ev| {
            let d = devices.iter().find(|d| d.id == ev.device_id);
            let vendor = d
                .and_then(|d| d.vendor.clone())
                .map(|v| format!(" ({v})"))
                .unwrap_or_default();
            format!("{}{vendor}", name_of(ev.mac).0)
        })
        .collect();
    let alerts = store
        .alerts_between(s.as_second(), e.as_second())?
        .into_iter()
        .map(|a| {
            format!(
                "{} — {} ({})",
                links.local_time(a.triggered_at),
                a.title,
                a.stage()
            )
        })
        .collect();
    Ok(WeeklyData {
        week: start.strftime("%Y-%m-%d").to_string(),
        total: human_bytes(total(&this.counts)),
        previous: human_bytes(total(&last.counts)),
        trend: trend(total(&this.counts), total(&last.counts)),
        download: human_bytes(this.counts.internet_download_bytes),
        upload: human_bytes(this.counts.internet_upload_bytes),
        top,
        people: people
            .into_iter()
            .map(|(n, b)| (n, human_bytes(b)))
            .collect(),
        new_devices,
        alerts,
        dashboard: links.dashboard.clone(),
    })
}

/// Queues the weekly summary when its local weekday and hour have come and it was not sent
/// yet this week. Returns whether it queued one.
pub fn maybe_queue(
    store: &mut Store,
    cfg: &Config,
    policy: &Policy,
    links: &LinkCtx,
    now: i64,
) -> Result<bool, AlertError> {
    if !cfg.weekly_summary || !policy.email {
        return Ok(false);
    }
    let Ok(t) = jiff::Timestamp::from_second(now) else {
        return Ok(false);
    };
    let local = t.to_zoned(links.tz.clone());
    let weekday = local.weekday().to_monday_one_offset() as u8;
    if weekday != cfg.weekly_summary_weekday || (local.hour() as u8) < cfg.weekly_summary_hour {
        return Ok(false);
    }
    let today = local.date().to_string();
    if store.alert_state("last_weekly_day")?.as_deref() == Some(today.as_str()) {
        return Ok(false);
    }
    let end = local.start_of_day().map_err(|e| AlertError::Render {
        what: "weekly",
        detail: e.to_string(),
    })?;
    let data = build(store, links, &end)?;
    let mail = render::weekly_mail(&data)?;
    store.queue_messages(
        &[],
        &[NewMessage {
            channel: "email",
            kind: "weekly",
            alert_ids: Vec::new(),
            subject: mail.subject,
            text_body: mail.text,
            html_body: Some(mail.html),
            json_body: None,
            not_before: now,
            expires_at: now + policy.expire_secs,
        }],
        now,
    )?;
    store.set_alert_state("last_weekly_day", &today)?;
    tracing::info!(week = %data.week, "weekly summary queued");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_words() {
        assert_eq!(trend(120, 100), "+20 %");
        assert_eq!(trend(70, 100), "−30 %");
        assert_eq!(trend(100, 100), "no change");
        assert_eq!(trend(5, 0), "up from nothing");
    }
}
