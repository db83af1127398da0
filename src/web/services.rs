//! What the pages show of per-device services (issue 29, setting `per_device_services`): a
//! device's lines for the range on its page and for one tapped hour, and the overview's
//! "What used the most today" over the household. The store folds the rows
//! ([`crate::store::remotes`]); this module only words them.
//!
//! How a day is cut: rows are per UTC hour, so a range `[from, to)` holds the hours whose
//! start is ≥ `from` and < `to`. "Today" is from local midnight in the household time zone to
//! now: with a whole-hour offset that is exactly the day's hours; in a half-hour zone the hour
//! that straddles midnight belongs to the day it started in. The device page, the overview and
//! the API all cut this way (the same store fold), so they agree to the byte.

use super::view::fmt_bytes;
use crate::store::remotes::{HouseholdService, ServiceBytes};

/// Lines shown on the device page: the 8 biggest, then everything else in one line (so they
/// still add up).
const SERVICE_LINES: usize = 8;

/// Lines on the overview card.
pub const TOP_SERVICES: usize = 6;

fn is_other(l: &ServiceBytes) -> bool {
    l.service.is_none() && l.names == [crate::endpoints::OTHER]
}

/// A line's name: the service, or "unknown (network)" for a remote nobody named.
pub fn label(l: &ServiceBytes) -> String {
    match &l.service {
        Some(s) => s.clone(),
        None if is_other(l) => "everything else".into(),
        None => format!("unknown ({})", l.names.join(", ")),
    }
}

fn share(b: u64, total: u64) -> String {
    let pct = if total == 0 {
        0.0
    } else {
        b as f64 * 100.0 / total as f64
    };
    if b > 0 && pct < 0.5 {
        "<1 %".into()
    } else {
        format!("{pct:.0} %")
    }
}

/// One line of a device's "what it used": a service, an unnamed remote, or the rest.
pub struct ServiceLine {
    pub label: String,
    /// The names behind a service, or what an unnamed line is.
    pub detail: String,
    /// Down and up together (raw, for tests and scripts), then in words.
    pub bytes: u64,
    pub used: String,
    pub down: String,
    pub up: String,
    /// Share of the device's internet bytes in the range, e.g. "42 %".
    pub share: String,
}

/// The device page's lines: the biggest [`SERVICE_LINES`], the rest and `other` folded into
/// "everything else".
pub fn service_lines(all: &[ServiceBytes]) -> Vec<ServiceLine> {
    let total: u64 = all.iter().map(|l| l.bytes_up + l.bytes_down).sum();
    let line = |label: String, detail: String, up: u64, down: u64| ServiceLine {
        label,
        detail,
        bytes: up + down,
        used: fmt_bytes(up + down),
        down: fmt_bytes(down),
        up: fmt_bytes(up),
        share: share(up + down, total),
    };
    let (rest, shown): (Vec<_>, Vec<_>) = all
        .iter()
        .enumerate()
        .partition(|(i, l)| *i >= SERVICE_LINES || is_other(l));
    let mut out: Vec<ServiceLine> = shown
        .into_iter()
        .map(|(_, l)| match &l.service {
            Some(svc) => line(svc.clone(), l.names.join(", "), l.bytes_up, l.bytes_down),
            None => line(
                "unknown".into(),
                format!("no name seen for {}", l.names.join(", ")),
                l.bytes_up,
                l.bytes_down,
            ),
        })
        .collect();
    let (up, down) = rest
        .iter()
        .fold((0, 0), |(u, d), (_, l)| (u + l.bytes_up, d + l.bytes_down));
    if up + down > 0 {
        out.push(line(
            "everything else".into(),
            "smaller services and addresses together".into(),
            up,
            down,
        ));
    }
    out
}

/// One line of the overview's "What used the most today".
pub struct TopService {
    pub label: String,
    pub bytes: u64,
    pub used: String,
    /// Share of the household's bytes recorded by service today.
    pub share: String,
    pub share_bar: String,
    /// The device that used most of it, its name and its part.
    pub device_id: i64,
    pub device_label: String,
    pub device_bytes: u64,
    pub device_used: String,
    /// How many other devices used it too.
    pub more_devices: usize,
}

/// The overview's lines: the biggest named or unnamed services (not `other`, which is no
/// service), with the device that used each most. `label_of` names a device by id.
pub fn top_services(all: &[HouseholdService], label_of: impl Fn(i64) -> String) -> Vec<TopService> {
    let total: u64 = all
        .iter()
        .map(|s| s.line.bytes_up + s.line.bytes_down)
        .sum();
    all.iter()
        .filter(|s| !is_other(&s.line) && s.line.bytes_up + s.line.bytes_down > 0)
        .take(TOP_SERVICES)
        .filter_map(|s| {
            let &(id, up, down) = s.devices.first()?;
            let bytes = s.line.bytes_up + s.line.bytes_down;
            let pct = if total == 0 {
                0.0
            } else {
                bytes as f64 * 100.0 / total as f64
            };
            Some(TopService {
                label: label(&s.line),
                bytes,
                used: fmt_bytes(bytes),
                share: share(bytes, total),
                share_bar: super::charts::share(pct),
                device_id: id,
                device_label: label_of(id),
                device_bytes: up + down,
                device_used: fmt_bytes(up + down),
                more_devices: s.devices.len() - 1,
            })
        })
        .collect()
}

/// Seconds in an hour.
const HOUR: i64 = 3600;

/// The first UTC hour starting at or after `t`: the hour a chart bar starting at `t` stands
/// for (the same hour in zones with whole-hour offsets; in a half-hour zone the hour that
/// starts inside the bar, as the day cut above counts it).
pub fn hour_at(t: i64) -> i64 {
    t + (HOUR - t.rem_euclid(HOUR)) % HOUR
}

/// The first hour still kept at `now` with `keep_days` of retention (older hours are deleted
/// by the maintenance pass).
fn kept_from(now: i64, keep_days: u32) -> i64 {
    hour_at(now - i64::from(keep_days) * 86_400)
}

/// One hour's services on the device page.
pub struct HourServices {
    pub at: i64,
    /// "Sat 14:00 – 15:00".
    pub words: String,
    pub lines: Vec<ServiceLine>,
    /// Why nothing can be shown (before the retention), or "".
    pub note: String,
}

/// The device page's "What it used": the chosen range's services, and a tapped hour's.
pub struct DeviceServices {
    pub on: bool,
    pub keep_days: u32,
    pub lines: Vec<ServiceLine>,
    /// Said when the range reaches back beyond what is kept, or "".
    pub kept_note: String,
    pub hour: Option<HourServices>,
    /// The range's hours for the "show one hour" form: (hour, words, chosen). Empty for
    /// ranges charted by day (a day's bar opens that day, whose hours are then listed).
    pub hours: Vec<(i64, String, bool)>,
}

/// `?hour=UNIX_SECONDS`: the hour whose services the device page shows too.
#[derive(Debug, Default, serde::Deserialize)]
pub struct HourQuery {
    #[serde(default)]
    pub hour: String,
}

impl HourQuery {
    /// The hour asked for, floored to its start; `None` when absent or not a number.
    pub fn hour(&self) -> Option<i64> {
        let h: i64 = self.hour.trim().parse().ok()?;
        // Years 2000 to 2200: anything else is no hour the store can hold.
        (946_684_800..7_258_118_400)
            .contains(&h)
            .then(|| h - h.rem_euclid(HOUR))
    }
}

/// What a device used in `chosen` and in `hour`: nothing is read when the setting is off.
pub async fn device_services(
    state: &super::AppState,
    id: i64,
    chosen: &super::range::Chosen,
    hour: Option<i64>,
) -> Result<DeviceServices, super::AppError> {
    let cfg = state.config();
    let (on, keep_days) = (cfg.per_device_services, cfg.keep_services_days);
    let tz = cfg.time_zone();
    let now = state.now();
    let kept = kept_from(now, keep_days);
    let hours = if chosen.bucket() == crate::store::period::Period::Hour {
        let mut v = Vec::new();
        let mut h = hour_at(chosen.from);
        while h < chosen.to && v.len() < 60 {
            let z = super::view::ts(h)?.to_zoned(tz.clone());
            v.push((h, z.strftime("%a %H:%M").to_string(), Some(h) == hour));
            h += HOUR;
        }
        v
    } else {
        Vec::new()
    };
    if !on {
        return Ok(DeviceServices {
            on,
            keep_days,
            lines: Vec::new(),
            kept_note: String::new(),
            hour: None,
            hours,
        });
    }
    let (from, to) = (chosen.from, chosen.to);
    let (range, in_hour) = state
        .db(move |s| {
            let range = s.device_services(id, from, to)?;
            let in_hour = match hour {
                Some(h) => Some(s.device_services(id, h, h + HOUR)?),
                None => None,
            };
            Ok((range, in_hour))
        })
        .await?;
    let kept_note = if from < kept {
        format!(
            "Services are kept {keep_days} days, so this shows what is kept: from {}.",
            super::view::fmt_local(kept, &tz)
        )
    } else {
        String::new()
    };
    let hour = match (hour, in_hour) {
        (Some(at), Some(rows)) => {
            let z = super::view::ts(at)?.to_zoned(tz.clone());
            let end = super::view::ts(at + HOUR)?.to_zoned(tz.clone());
            Some(HourServices {
                at,
                words: format!(
                    "{} – {}",
                    z.strftime("%a %-d %b %H:%M"),
                    end.strftime("%H:%M")
                ),
                note: if at + HOUR <= kept {
                    format!(
                        "Services are kept {keep_days} days: nothing is kept for this hour any more."
                    )
                } else {
                    String::new()
                },
                lines: service_lines(&rows),
            })
        }
        _ => None,
    };
    Ok(DeviceServices {
        on,
        keep_days,
        lines: service_lines(&range),
        kept_note,
        hour,
        hours,
    })
}

#[cfg(test)]
mod tests;
