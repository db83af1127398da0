//! What several pages share: units (decimal bytes, Mbit/s), times ("5 min ago"), the periods a
//! household thinks in (today, this week, this billing cycle), a device's display name and type
//! icon, and the per-device rows the overview, devices list and people page are built from.
//!
//! Everything here reads; nothing writes. Device-supplied strings pass through untouched: the
//! templates escape them (askama escapes every `{{ }}` by default; only the constant icon SVG
//! below is marked safe).

use super::AppState;
use super::error::AppError;
use crate::model::MacAddr;
use crate::store::discovery::DeviceRecord;
use crate::store::query::DeviceUsage;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::sync::Arc;

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
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

/// "just now", "5 min ago", "3 h ago", "2 days ago".
/// A count with thousands separators: 1,234.
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn fmt_ago(then_s: i64, now_s: i64) -> String {
    let d = (now_s - then_s).max(0);
    match d {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", d / 60),
        3600..86_400 => format!("{} h ago", d / 3600),
        86_400..172_800 => "yesterday".into(),
        _ => format!("{} days ago", d / 86_400),
    }
}

pub fn fmt_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} days {h} h"),
    }
}

pub fn ts(s: i64) -> Result<Timestamp, AppError> {
    Timestamp::from_second(s).map_err(|e| AppError::internal(format!("time out of range: {e}")))
}

/// Local date and time, "2026-03-04 18:20".
pub fn fmt_local(s: i64, tz: &TimeZone) -> String {
    Timestamp::from_second(s).map_or_else(
        |_| s.to_string(),
        |t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        },
    )
}

/// The ranges the pages sum over, in the household's time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Periods {
    pub now: i64,
    pub today: i64,
    pub week: i64,
    pub cycle: (i64, i64),
}

impl Periods {
    pub fn at(now: i64, tz: &TimeZone, plan: &crate::plan::Plan) -> Result<Periods, AppError> {
        let z = ts(now)?.to_zoned(tz.clone());
        let err = |e: jiff::Error| AppError::internal(format!("local calendar: {e}"));
        let today = z.start_of_day().map_err(err)?;
        let back = i64::from(z.weekday().to_monday_zero_offset());
        let week = today
            .checked_sub(jiff::Span::new().days(back))
            .map_err(err)?;
        Ok(Periods {
            now,
            today: today.timestamp().as_second(),
            week: week.timestamp().as_second(),
            cycle: billing_cycle(now, tz, plan)?,
        })
    }

    /// Household time is never before the first minute; the query layer wants `from < to`.
    pub fn until_now(&self) -> i64 {
        self.now + 1
    }
}

/// The billing cycle containing `now`: `[start, end)` in Unix seconds, from the household's
/// data plan (`/plan/settings`; the default plan's cycle is the calendar month from the 1st).
pub fn billing_cycle(
    now: i64,
    tz: &TimeZone,
    plan: &crate::plan::Plan,
) -> Result<(i64, i64), AppError> {
    let c = crate::plan::current_cycle(plan, ts(now)?, tz);
    Ok((c.start.as_second(), c.end.as_second()))
}

/// Internet bytes (download + upload) in a usage figure: what the ISP counts.
pub fn internet(u: &DeviceUsage) -> u64 {
    u.counts.internet_download_bytes + u.counts.internet_upload_bytes
}

/// The name to show: the user's, else a host name it announced, else vendor + the MAC's last bytes.
pub fn label(d: &DeviceRecord) -> String {
    if let Some(n) = d.display_name() {
        return n.to_string();
    }
    let tail = format!("{:02x}:{:02x}", d.mac.0[4], d.mac.0[5]);
    match &d.vendor {
        Some(v) => format!("{} …{tail}", short_vendor(v)),
        None if d.randomized => format!("Private address …{tail}"),
        None => format!("Device …{tail}"),
    }
}

/// "Apple, Inc." → "Apple": registry names carry legal suffixes a family does not need.
fn short_vendor(v: &str) -> &str {
    let cut = v.find([',', '(']).unwrap_or(v.len());
    let s = v[..cut].trim();
    for suffix in [
        " Inc.",
        " Inc",
        " Ltd.",
        " Ltd",
        " GmbH",
        " Co.",
        " Corporation",
        " Corp.",
    ] {
        if let Some(x) = s.strip_suffix(suffix) {
            return x.trim();
        }
    }
    s
}

/// The types a user can pick (the discovery guesses use the same words).
pub const TYPES: &[&str] = &[
    "phone",
    "tablet",
    "laptop",
    "desktop",
    "tv",
    "streaming",
    "console",
    "speaker",
    "printer",
    "nas",
    "camera",
    "smart-home",
    "watch",
    "ereader",
    "server",
    "router",
    "other",
];

/// The inside of a small monochrome icon for a device type: constant SVG markup (never device
/// text); the templates wrap it in an `<svg>` drawn with `currentColor`, so it follows dark mode.
pub fn icon(kind: Option<&str>) -> &'static str {
    let k = kind.unwrap_or("");
    match k {
        _ if k.contains("phone") || k == "watch" => {
            r#"<rect x="7" y="2" width="10" height="20" rx="2"/><path d="M11 18h2"/>"#
        }
        _ if k.contains("tablet") || k.contains("reader") => {
            r#"<rect x="4" y="2" width="16" height="20" rx="2"/><path d="M11 18h2"/>"#
        }
        _ if k.contains("laptop") => {
            r#"<rect x="5" y="5" width="14" height="10" rx="1"/><path d="M2 19h20"/>"#
        }
        _ if k.contains("desktop") || k.contains("computer") => {
            r#"<rect x="3" y="3" width="18" height="13" rx="1"/><path d="M9 21h6M12 16v5"/>"#
        }
        _ if k.contains("tv") || k.contains("stream") => {
            r#"<rect x="2" y="4" width="20" height="13" rx="1"/><path d="M8 21h8"/>"#
        }
        _ if k.contains("console") || k.contains("game") => {
            r#"<rect x="2" y="7" width="20" height="11" rx="5"/><path d="M7 11v3M5.5 12.5h3M16 12h.01M18 13h.01"/>"#
        }
        _ if k.contains("speaker") => {
            r#"<rect x="6" y="2" width="12" height="20" rx="2"/><circle cx="12" cy="14" r="3"/>"#
        }
        _ if k.contains("printer") => {
            r#"<path d="M6 9V3h12v6"/><rect x="3" y="9" width="18" height="8" rx="1"/><path d="M7 14h10v7H7z"/>"#
        }
        _ if k.contains("nas") || k.contains("server") => {
            r#"<rect x="4" y="3" width="16" height="8" rx="1"/><rect x="4" y="13" width="16" height="8" rx="1"/><path d="M8 7h.01M8 17h.01"/>"#
        }
        _ if k.contains("router") => {
            r#"<rect x="2" y="13" width="20" height="7" rx="1"/><path d="M7 13V7M17 13V7M6 17h.01"/>"#
        }
        _ if k.contains("camera") => {
            r#"<rect x="2" y="6" width="14" height="12" rx="2"/><path d="M16 10l6-3v10l-6-3"/>"#
        }
        _ if k.is_empty() || k == "other" || k == "unknown" => {
            r#"<circle cx="12" cy="12" r="9"/><path d="M9.5 9.5a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .8-1 1.5V14M12 17h.01"/>"#
        }
        // Plugs, thermostats, hubs, vacuums and other smart-home gadgets.
        _ => r#"<path d="M3 11l9-7 9 7v9H3z"/><path d="M10 20v-5h4v5"/>"#,
    }
}

/// One device with its usage, as the lists show it.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub id: i64,
    pub mac: MacAddr,
    pub label: String,
    pub kind: Option<String>,
    pub vendor: String,
    pub ips: String,
    pub online: bool,
    pub last_seen_s: i64,
    pub last_seen: String,
    /// "3 h ago": when it was first seen.
    pub first_seen: String,
    pub today: u64,
    pub cycle: u64,
    /// Internet bytes in the range the devices list shows (today unless another is chosen).
    pub in_range: u64,
    /// What that range is called on a phone's card ("today", "yesterday").
    pub in_range_label: String,
    pub known: bool,
    pub ignored: bool,
    pub gateway: bool,
    pub owner: String,
    pub group: String,
    pub named: bool,
    pub first_seen_s: i64,
}

impl DeviceRow {
    /// The one definition of "a device" behind every count on every page: any row but the
    /// router (whose traffic is the household's own, seen again on its way out). Ignored
    /// devices still count: they are hidden from lists, not from the total.
    pub fn is_device(&self) -> bool {
        !self.gateway
    }

    /// Counted as "online now" everywhere: a device (not the router), online, not ignored.
    pub fn counts_online(&self) -> bool {
        self.is_device() && self.online && !self.ignored
    }

    pub fn icon(&self) -> &'static str {
        icon(self.kind.as_deref())
    }
    pub fn today_fmt(&self) -> String {
        fmt_bytes(self.today)
    }
    pub fn in_range_fmt(&self) -> String {
        fmt_bytes(self.in_range)
    }
    pub fn cycle_fmt(&self) -> String {
        fmt_bytes(self.cycle)
    }
}

/// Everything the list pages need, read in one database call.
pub struct Household {
    pub periods: Periods,
    pub rows: Vec<DeviceRow>,
    /// Internet bytes today / this week / this cycle over the household (gateway excluded,
    /// traffic the meter could not attribute included: ACCOUNTING.md).
    pub totals: [u64; 3],
    /// Today's internet download and upload.
    pub today_down_up: (u64, u64),
    /// The stored readings the rows were built from (a range that ends now reuses them).
    pub stored: Arc<Stored>,
}

/// What [`household`] reads from the database: shared by every request for [`CACHE_FOR`].
pub struct Stored {
    periods: Periods,
    generation: u64,
    at: std::time::Instant,
    devices: Vec<DeviceRecord>,
    /// Per-device internet bytes ([`crate::store::Store::internet_by_device_since`]: the other
    /// counters are not read and are 0).
    today: Vec<DeviceUsage>,
    cycle: Vec<DeviceUsage>,
    week: Vec<DeviceUsage>,
    totals: [u64; 3],
}

impl Stored {
    /// The instant the readings end at (Unix seconds, the last second included).
    pub fn now(&self) -> i64 {
        self.periods.now
    }

    /// The per-device usage over `[from, to)` (Unix seconds) when it is one of the readings
    /// held (today, this week or this cycle, up to now): a devices list whose range is one of
    /// them shows the same numbers as the columns beside it without reading them again.
    /// Only the internet bytes are read: the other counters are 0.
    pub fn reading(&self, from: i64, to: i64) -> Option<&[DeviceUsage]> {
        let p = &self.periods;
        if to != p.until_now() {
            return None;
        }
        if from == p.today {
            Some(&self.today)
        } else if from == p.week {
            Some(&self.week)
        } else if from == p.cycle.0 {
            Some(&self.cycle)
        } else {
            None
        }
    }
}

/// How long the stored part of the household is reused. History only grows at a flush (every
/// 10 s by default) and the live meter counts are added fresh on every request, so a reading a
/// second old differs by at most the bytes of a flush that happened within that second; user
/// edits on this server bump the generation and are seen at once.
pub const CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// While another request refreshes a cache, a reading up to this old is served instead.
pub const STALE_MAX: std::time::Duration = std::time::Duration::from_secs(5);

async fn stored_household(state: &AppState, periods: Periods) -> Result<Arc<Stored>, AppError> {
    let generation = state.generation();
    let cached = state.caches().household().filter(|c| {
        c.generation == generation
            && c.periods.today == periods.today
            && c.periods.week == periods.week
            && c.periods.cycle == periods.cycle
    });
    if let Some(c) = &cached
        && c.at.elapsed() < CACHE_FOR
    {
        return Ok(Arc::clone(c));
    }
    let refresh = state.caches().refresh_household();
    if refresh.is_none()
        && let Some(c) = cached.filter(|c| c.at.elapsed() < STALE_MAX)
    {
        return Ok(c);
    }
    let tz = state.config().time_zone();
    let p = periods;
    let stored = state
        .query(move |s| {
            let t = |x: i64| Timestamp::from_second(x).unwrap_or(Timestamp::UNIX_EPOCH);
            let now = t(p.until_now());
            // Today, the cycle and the week end now: one reading, their shared rows read once,
            // and only the internet bytes, which is all any page counts from it.
            let mut read = s
                .internet_by_device_since(&tz, &[t(p.today), t(p.cycle.0), t(p.week)], now)?
                .into_iter()
                .map(|(v, _)| v);
            let (today, cycle, week) = (
                read.next().unwrap_or_default(),
                read.next().unwrap_or_default(),
                read.next().unwrap_or_default(),
            );
            // The household totals are the non-gateway devices just read (the household
            // selection is exactly those rows).
            let household = |v: &[DeviceUsage]| -> u64 {
                v.iter().filter(|u| !u.is_gateway).map(internet).sum()
            };
            let totals = [household(&today), household(&week), household(&cycle)];
            Ok(Stored {
                periods: p,
                generation,
                at: std::time::Instant::now(),
                devices: s.list_devices()?,
                today,
                cycle,
                week,
                totals,
            })
        })
        .await?;
    let stored = Arc::new(stored);
    state.caches().set_household(Arc::clone(&stored));
    drop(refresh);
    Ok(stored)
}

pub async fn household(state: &AppState) -> Result<Household, AppError> {
    let tz = state.config().time_zone();
    let plan = state.db(|s| s.plan()).await?;
    let periods = Periods::at(state.now(), &tz, &plan)?;
    let window_ns = i64::try_from(state.config().presence_window_secs)
        .unwrap_or(300)
        .saturating_mul(1_000_000_000);
    let stored = stored_household(state, periods).await?;
    let (devices, today, cycle, totals) =
        (&stored.devices, &stored.today, &stored.cycle, stored.totals);
    let snap = state.meter_snapshot();
    let mut live: HashMap<MacAddr, u64> = HashMap::new();
    for (mac, c) in &snap.devices {
        live.insert(*mac, c.internet_download_bytes + c.internet_upload_bytes);
    }
    let by = |v: &[DeviceUsage]| -> HashMap<MacAddr, (u64, u64, u64)> {
        v.iter()
            .map(|u| {
                (
                    u.mac,
                    (
                        internet(u),
                        u.counts.internet_download_bytes,
                        u.counts.internet_upload_bytes,
                    ),
                )
            })
            .collect()
    };
    let (today_by, cycle_by) = (by(today), by(cycle));
    let now_ns = periods.now.saturating_mul(1_000_000_000);
    let mut rows = Vec::with_capacity(devices.len());
    let mut pending_household = 0u64;
    for (mac, bytes) in &live {
        if Some(*mac) != snap.gateway {
            pending_household += bytes;
        }
    }
    let (mut down, mut up) = (0u64, 0u64);
    for u in today {
        if !u.is_gateway {
            down += u.counts.internet_download_bytes;
            up += u.counts.internet_upload_bytes;
        }
    }
    for (_, c) in snap
        .devices
        .iter()
        .filter(|(m, _)| Some(*m) != snap.gateway)
    {
        down += c.internet_download_bytes;
        up += c.internet_upload_bytes;
    }
    for d in devices {
        // Pending meter counts belong to the MAC that sent them; a device owns several MACs.
        let pending: u64 = d.macs.iter().filter_map(|m| live.get(&m.mac)).sum();
        let in_meter = d.macs.iter().any(|m| live.contains_key(&m.mac));
        let ips = d
            .addresses
            .iter()
            .filter(|a| a.addr.is_ipv4())
            .chain(d.addresses.iter().filter(|a| a.addr.is_ipv6()))
            .take(2)
            .map(|a| a.addr.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let last_s = d.last_seen_ns / 1_000_000_000;
        rows.push(DeviceRow {
            id: d.id,
            mac: d.mac,
            label: label(d),
            kind: d.device_type().map(str::to_string),
            vendor: d.vendor.clone().unwrap_or_default(),
            ips,
            online: in_meter || now_ns.saturating_sub(d.last_seen_ns) <= window_ns,
            last_seen_s: last_s,
            last_seen: fmt_ago(last_s, periods.now),
            first_seen: fmt_ago(d.first_seen_ns / 1_000_000_000, periods.now),
            today: today_by.get(&d.mac).map_or(0, |x| x.0) + pending,
            cycle: cycle_by.get(&d.mac).map_or(0, |x| x.0) + pending,
            in_range: today_by.get(&d.mac).map_or(0, |x| x.0) + pending,
            in_range_label: "today".into(),
            known: d.user.known,
            ignored: d.user.ignored,
            gateway: d.is_gateway,
            owner: d.user.owner.clone().unwrap_or_default(),
            group: d.user.group.clone().unwrap_or_default(),
            named: d.user.name.is_some(),
            first_seen_s: d.first_seen_ns / 1_000_000_000,
        });
    }
    Ok(Household {
        periods,
        rows,
        totals: totals.map(|t| t + pending_household),
        today_down_up: (down, up),
        stored: Arc::clone(&stored),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_decimal() {
        assert_eq!(fmt_bytes(999), "999 B");
        assert_eq!(fmt_bytes(1_500), "1.50 kB");
        assert_eq!(fmt_bytes(2_340_000_000), "2.34 GB");
        assert_eq!(fmt_bytes(123_400_000_000), "123 GB");
    }

    #[test]
    fn cycle_is_the_calendar_month_in_the_household_zone() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // 2026-03-15T12:00:00Z
        let plan = crate::plan::Plan::default();
        let (s, e) = billing_cycle(1_773_576_000, &tz, &plan).unwrap();
        assert_eq!(s, 1_772_319_600); // 2026-03-01T00:00+01:00
        assert_eq!(e, 1_774_994_400); // 2026-04-01T00:00+02:00 (after the DST change)
        let p = Periods::at(1_773_576_000, &tz, &plan).unwrap();
        // A plan whose cycle starts on the 20th: 15 March lies in 20 February – 20 March.
        let from_20th = crate::plan::Plan {
            cycle: crate::plan::CycleRule::Monthly { start_day: 20 },
            ..crate::plan::Plan::default()
        };
        let (s20, e20) = billing_cycle(1_773_576_000, &tz, &from_20th).unwrap();
        assert_eq!(s20, 1_771_542_000); // 2026-02-20T00:00+01:00
        assert_eq!(e20, 1_773_961_200); // 2026-03-20T00:00+01:00
        // Sunday 15 March: the week began on Monday 9 March.
        assert_eq!(p.week, 1_773_010_800);
    }

    #[test]
    fn labels_fall_back_to_vendor_and_mac() {
        assert_eq!(short_vendor("Apple, Inc."), "Apple");
        assert_eq!(
            short_vendor("AVM Audiovisuelles Marketing und Computersysteme GmbH"),
            "AVM Audiovisuelles Marketing und Computersysteme"
        );
        assert!(icon(Some("phone")).contains("rect"));
        assert_ne!(icon(None), icon(Some("plug")));
    }
}
