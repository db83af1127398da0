//! GET /devices/{id}: one device — its internet use (last 24 hours in 5-minute bars, last 30
//! days by day, busy hours by weekday), addresses and host names with where they were learned,
//! when it was online, and (for admins) its editable fields, ignore, and merging another device
//! into it. POST /devices/{id} saves the fields; POST /devices/{id}/merge merges. Both are
//! admin-only through the guard, and audited.

use super::AppState;
use super::charts::{self, Bar};
use super::devices::{MAX_FIELD, MAX_NOTES, field, multiline_field, update};
use super::error::AppError;
use super::session::{self, Auth, Layout};
use super::view::{self, fmt_bytes, fmt_local};
use crate::store::period::Period;
use crate::store::query::Selection;
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

pub struct Named {
    pub name: String,
    pub source: String,
    pub seen: String,
}

pub struct Other {
    pub id: i64,
    pub label: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/device.html")]
pub struct DevicePage {
    pub layout: Layout,
    pub admin: bool,
    pub d: Arc<DeviceView>,
    /// Merges into this device that can still be undone (admins only).
    pub undos: Vec<crate::store::undo::MergeUndo>,
    /// Why the last undo could not be done, if it could not.
    pub undo_error: String,
    /// The chosen range's use, chart and download links.
    pub r: RangeView,
    /// What it used by service in the range and in a tapped hour (issue 29).
    pub s: super::services::DeviceServices,
    /// The edit form was just saved (the page says so next to the form).
    pub saved: bool,
    /// What the edit form shows: the device's fields, or what was typed and why it was refused.
    pub edit: EditForm,
}

/// The edit form's values, and for a refused save the reason next to each refused field.
#[derive(Debug, Default)]
pub struct EditForm {
    pub name: String,
    pub owner: String,
    pub group: String,
    pub kind: String,
    pub notes: String,
    pub known: bool,
    pub ignored: bool,
    /// (field id, reason) for each refused field.
    pub errors: Vec<(&'static str, String)>,
}

impl EditForm {
    fn of(d: &DeviceView) -> EditForm {
        EditForm {
            name: d.name.clone(),
            owner: d.owner.clone(),
            group: d.group.clone(),
            kind: d.type_override.clone(),
            notes: d.notes.clone(),
            known: d.known,
            ignored: d.ignored,
            errors: Vec::new(),
        }
    }

    /// Why `field` was refused, or "".
    pub fn error(&self, field: &str) -> &str {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map_or("", |(_, e)| e.as_str())
    }

    /// The values of a submitted form, each checked as the save checks it.
    fn submitted(f: &[(String, String)]) -> (EditForm, Edited) {
        let mut form = EditForm {
            name: get(f, "name").unwrap_or("").to_string(),
            owner: get(f, "owner").unwrap_or("").to_string(),
            group: get(f, "group").unwrap_or("").to_string(),
            kind: get(f, "type").unwrap_or("").to_string(),
            notes: get(f, "notes").unwrap_or("").to_string(),
            known: get(f, "known").is_some(),
            ignored: get(f, "ignored").is_some(),
            errors: Vec::new(),
        };
        let mut keep = |id: &'static str, r: Result<Option<String>, AppError>| match r {
            Ok(v) => v,
            Err(e) => {
                let why = match e {
                    AppError::BadRequest(m) => m,
                    _ => "This value cannot be saved.".to_string(),
                };
                form.errors.push((id, why));
                None
            }
        };
        let mut kind = keep("type", field(Some(&form.kind), "type", MAX_FIELD));
        if let Some(k) = &kind
            && !view::TYPES.contains(&k.as_str())
        {
            kind = keep(
                "type",
                Err(AppError::BadRequest("Choose a type from the list.".into())),
            );
        }
        let edited = Edited {
            name: keep("name", field(Some(&form.name), "name", MAX_FIELD)),
            owner: keep("owner", field(Some(&form.owner), "person", MAX_FIELD)),
            group: keep("group", field(Some(&form.group), "group", MAX_FIELD)),
            notes: keep(
                "notes",
                multiline_field(Some(&form.notes), "notes", MAX_NOTES),
            ),
            kind,
        };
        (form, edited)
    }
}

/// The checked values of a saved edit form.
struct Edited {
    name: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    notes: Option<String>,
    kind: Option<String>,
}

/// `?saved=1` after the edit form's redirect.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SavedFlag {
    #[serde(default)]
    pub saved: String,
}

/// The device's internet use in the range chosen in the URL.
pub struct RangeView {
    pub chosen: super::range::Chosen,
    /// Internet bytes (download + upload), raw and in words.
    pub bytes: u64,
    pub total: String,
    pub down: String,
    pub up: String,
    pub chart: String,
}

/// The device's use in `chosen`, with bars per hour or day whose tooltips give each value. With
/// per-device services on, an hour's bar opens that hour's services (`?hour=`) and a day's
/// bar opens that day as the range.
pub async fn range_view(
    state: &AppState,
    id: i64,
    mac: crate::model::MacAddr,
    mut chosen: super::range::Chosen,
) -> Result<RangeView, AppError> {
    let linked = state.config().per_device_services;
    let tz = state.config().time_zone();
    let tzq = tz.clone();
    let period = chosen.bucket();
    let (from, to) = (chosen.from, chosen.to);
    let (series, extent) = state
        .query(move |s| {
            let sel = Selection::device(mac);
            let series = s.usage_series(
                &sel,
                &tzq,
                view::ts(from).map_err(|_| range_err())?,
                view::ts(to).map_err(|_| range_err())?,
                Some(period),
            )?;
            Ok((series, s.data_extent()?))
        })
        .await?;
    chosen.mark_partial(extent.map(|e| e.0), &tz);
    // The series holds every minute of the range once, so its points add up to the range's
    // total: the same number a second reading of the range would give, read once.
    let mut total = crate::model::Counts::default();
    for p in &series.points {
        total.add(&p.counts);
    }
    let c = &total;
    let mut bars = Vec::new();
    let mut z = view::ts(from)?.to_zoned(tz.clone());
    let step = match period {
        Period::Hour => jiff::Span::new().hours(1),
        _ => jiff::Span::new().days(1),
    };
    let mut i = 0usize;
    let mut links = Vec::new();
    // Points and bars are both in time order: one pass, not a search per bar.
    let mut points = series.points.iter().peekable();
    while z.timestamp().as_second() < to && bars.len() < 400 {
        let start = z.timestamp();
        if linked {
            links.push(if period == Period::Hour {
                format!(
                    "/devices/{id}?{}&hour={}#hour-services",
                    chosen.query(),
                    super::services::hour_at(start.as_second())
                )
            } else {
                let day = z.date();
                format!("/devices/{id}?range=custom&from={day}&to={day}#top-services")
            });
        }
        while points.next_if(|p| p.start < start).is_some() {}
        let pt = points.next_if(|p| p.start == start);
        let hourly = period == Period::Hour;
        let label = if hourly {
            (z.hour() % 6 == 0).then(|| format!("{:02}:00", z.hour()))
        } else {
            (i % 7 == 0).then(|| z.strftime("%-d %b").to_string())
        };
        bars.push(Bar {
            label,
            down: pt.map_or(0, |p| p.counts.internet_download_bytes),
            up: pt.map_or(0, |p| p.counts.internet_upload_bytes),
            when: Some(if hourly {
                z.strftime("%a %H:00").to_string()
            } else {
                z.strftime("%a %-d %b").to_string()
            }),
        });
        z = z
            .checked_add(step)
            .map_err(|e| AppError::internal(format!("calendar: {e}")))?;
        i += 1;
    }
    let chart = charts::linked_bars(
        "Internet use in the chosen range",
        if period == Period::Hour {
            "per hour"
        } else {
            "per day"
        },
        &bars,
        &links,
        period == Period::Hour,
    );
    let bytes = c.internet_download_bytes + c.internet_upload_bytes;
    Ok(RangeView {
        chosen,
        bytes,
        total: fmt_bytes(bytes),
        down: fmt_bytes(c.internet_download_bytes),
        up: fmt_bytes(c.internet_upload_bytes),
        chart,
    })
}

fn range_err() -> crate::store::query::QueryError {
    crate::store::query::QueryError::EmptyRange {
        from: jiff::Timestamp::UNIX_EPOCH,
        to: jiff::Timestamp::UNIX_EPOCH,
    }
}

/// "Connection setup to the internet, last 24 h: median 41 ms, p95 63 ms, 1,234 handshakes."
fn latency_line(t: &crate::internet::passive::PassiveMinute, on: bool) -> String {
    let ms = |v: Option<i64>| v.map_or_else(|| "—".into(), |u| format!("{:.0} ms", u as f64 / 1e3));
    match (t.handshakes, on) {
        (0, false) => {
            "Connection setup to the internet: not measured (passive_latency = false).".into()
        }
        (0, true) => {
            "Connection setup to the internet, last 24 h: no TCP connection to the internet seen."
                .into()
        }
        (n, _) => format!(
            "Connection setup to the internet, last 24 h: median {}, p95 {}, {} handshake{}.",
            ms(t.median_us),
            ms(t.p95_us),
            view::fmt_count(n.unsigned_abs()),
            if n == 1 { "" } else { "s" }
        ),
    }
}

/// Everything the device page shows, cached briefly per device (see [`view::CACHE_FOR`]).
pub struct DeviceView {
    pub id: i64,
    pub mac: crate::model::MacAddr,
    pub label: String,
    pub icon: &'static str,
    pub kind: String,
    pub vendor: String,
    pub vendor_class: String,
    pub online: bool,
    pub first_seen: String,
    pub last_seen: String,
    pub gateway: bool,
    pub today: String,
    pub cycle: String,
    pub days30: String,
    pub local30: String,
    pub chart_day: String,
    pub chart_month: String,
    pub heat: String,
    pub presence: String,
    pub online_24h: String,
    /// Passive latency (issue 27) over the last 24 hours, one sentence.
    pub latency: String,
    pub macs: Vec<(String, bool, String)>,
    pub hostnames: Vec<Named>,
    pub addresses: Vec<Named>,
    pub services: Vec<String>,
    pub name: String,
    pub owner: String,
    pub group: String,
    pub type_override: String,
    pub type_guess: String,
    pub notes: String,
    pub known: bool,
    pub ignored: bool,
    pub types: &'static [&'static str],
    pub others: Vec<Other>,
    /// Every person and group already named (for the edit form's suggestions).
    pub people: Vec<String>,
    pub groups: Vec<String>,
    /// Every quota that applies: the device's own, its owner's and its group's.
    pub quotas: Vec<super::plan::QuotaRow>,
}

/// 5-minute buckets in the 24-hour chart.
const FIVE: i64 = 300;

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<i64>,
    Query(rq): Query<super::range::RangeQuery>,
    Query(flag): Query<SavedFlag>,
    Query(hq): Query<super::services::HourQuery>,
) -> Result<DevicePage, AppError> {
    let generation = state.generation();
    let cached = state.caches().device(id, generation);
    let d = match cached {
        Some((at, d)) if at.elapsed() < view::CACHE_FOR => d,
        cached => {
            let refresh = state.caches().refresh_device();
            match (refresh, cached) {
                (None, Some((_, d))) => d,
                (refresh, _) => {
                    let d = Arc::new(load(&state, id).await?);
                    state.caches().set_device(id, generation, Arc::clone(&d));
                    drop(refresh);
                    d
                }
            }
        }
    };
    let plan = state.db(|s| s.plan()).await?;
    let chosen = rq.resolve(state.now(), &state.config().time_zone(), &plan)?;
    let s = super::services::device_services(&state, id, &chosen, hq.hour()).await?;
    let r = range_view(&state, id, d.mac, chosen).await?;
    let admin = auth.role == crate::auth::Role::Admin;
    let undos = if admin {
        state.query(move |s| Ok(s.merge_undos(id)?)).await?
    } else {
        Vec::new()
    };
    Ok(DevicePage {
        admin,
        layout: Layout::new("Device", "devices", Some(&auth)),
        undos,
        undo_error: String::new(),
        r,
        s,
        saved: flag.saved == "1",
        edit: EditForm::of(&d),
        d,
    })
}

async fn load(state: &AppState, id: i64) -> Result<DeviceView, AppError> {
    let tz = state.config().time_zone();
    let plan = state.db(|s| s.plan()).await?;
    let p = view::Periods::at(state.now(), &tz, &plan)?;
    let now = p.now;
    let day_from = (now - 86_400).div_euclid(FIVE) * FIVE + FIVE;
    let month_from = {
        let z = view::ts(p.today)?.to_zoned(tz.clone());
        z.checked_sub(jiff::Span::new().days(29))
            .map_err(|e| AppError::internal(format!("calendar: {e}")))?
            .timestamp()
            .as_second()
    };
    let heat_from = p.today - 28 * 86_400;
    // The local midnights of the 30 days the month chart shows.
    let mut day_starts = Vec::with_capacity(30);
    let mut day = view::ts(month_from)?.to_zoned(tz.clone());
    for _ in 0..30 {
        day_starts.push(day.timestamp().as_second());
        day = day
            .checked_add(jiff::Span::new().days(1))
            .map_err(|e| AppError::internal(format!("calendar: {e}")))?;
    }
    let tzq = tz.clone();
    let loaded = state
        .query(move |s| {
            let Some(d) = s.device(id)? else {
                return Ok(None);
            };
            let sel = Selection::device(d.mac);
            let t = |x: i64| jiff::Timestamp::from_second(x).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let end = t(now + 1);
            let minutes = s.usage_series(&sel, &tzq, t(day_from), end, Some(Period::Minute))?;
            let days = s.usage_series(&sel, &tzq, t(month_from), end, Some(Period::Day))?;
            let heat = s.heatmap(&sel, &tzq, t(heat_from), end)?;
            // Today and the cycle end now, as the 30 days do: their days are the series' points
            // (each holds exactly its day's minutes), so only a cycle older than the 30 days
            // reads its first part, and nothing is read twice.
            let since = |from: i64| {
                let mut c = crate::model::Counts::default();
                for pt in days.points.iter().filter(|pt| pt.start.as_second() >= from) {
                    c.add(&pt.counts);
                }
                c
            };
            let today = since(p.today);
            let cycle = if day_starts.contains(&p.cycle.0) {
                since(p.cycle.0)
            } else if p.cycle.0 < month_from {
                let mut c = s.usage(&sel, &tzq, t(p.cycle.0), t(month_from))?.counts;
                c.add(&since(month_from));
                c
            } else {
                s.usage(&sel, &tzq, t(p.cycle.0), end)?.counts
            };
            let presence = s.presence(id)?;
            // The current hour and the 23 before it.
            let hour = now - now.rem_euclid(3600);
            let latency = s.passive_device(id, hour - 23 * 3600, hour + 3600)?;
            // The merge choices and the edit form's suggestions need the devices, not their
            // use: the household read (every device's today and cycle) is not needed here.
            let all = s.list_devices()?;
            // Quotas are measured only when one covers this device: most devices have none,
            // and measuring every quota costs each one's whole window.
            let covered = s.quotas()?.iter().any(|q| {
                crate::store::plan::subject_devices(&q.subject, &all)
                    .1
                    .contains(&d.mac)
            });
            Ok(Some((
                d, minutes, days, heat, today, cycle, presence, latency, all, covered,
            )))
        })
        .await?;
    let Some((d, minutes, days, heat, today, cycle, presence, latency, all, covered)) = loaded
    else {
        return Err(AppError::NotFound);
    };
    let inet = |c: &crate::model::Counts| c.internet_download_bytes + c.internet_upload_bytes;
    let quotas = if covered {
        super::plan::quotas_covering(state, d.mac).await?
    } else {
        Vec::new()
    };

    // 24 hours of 5-minute bars, labelled every 6 hours on the local clock.
    let n = ((now + 1 - day_from) / FIVE + 1) as usize;
    let mut bars = vec![Bar::default(); n];
    for pt in &minutes.points {
        let i = ((pt.start.as_second() - day_from) / FIVE) as usize;
        if let Some(b) = bars.get_mut(i) {
            b.down += pt.counts.internet_download_bytes;
            b.up += pt.counts.internet_upload_bytes;
        }
    }
    for (i, b) in bars.iter_mut().enumerate() {
        let at = day_from + i as i64 * FIVE;
        let z = view::ts(at)?.to_zoned(tz.clone());
        b.when = Some(z.strftime("%H:%M").to_string());
        if z.minute() == 0 && z.hour() % 6 == 0 {
            b.label = Some(format!("{:02}:00", z.hour()));
        }
    }
    let chart_day = charts::bars(
        "Internet use in the last 24 hours, 5-minute bars",
        "per 5 min",
        &bars,
    );

    let mut dbars = Vec::with_capacity(30);
    let mut total30 = crate::model::Counts::default();
    let mut day = view::ts(month_from)?.to_zoned(tz.clone());
    for i in 0..30 {
        let start = day.timestamp();
        let pt = days.points.iter().find(|pt| pt.start == start);
        if let Some(pt) = pt {
            total30.add(&pt.counts);
        }
        dbars.push(Bar {
            label: (i % 7 == 0).then(|| day.strftime("%-d %b").to_string()),
            down: pt.map_or(0, |p| p.counts.internet_download_bytes),
            up: pt.map_or(0, |p| p.counts.internet_upload_bytes),
            when: Some(day.strftime("%a %-d %b").to_string()),
        });
        day = day
            .checked_add(jiff::Span::new().days(1))
            .map_err(|e| AppError::internal(format!("calendar: {e}")))?;
    }
    let chart_month = charts::bars("Internet use per day, last 30 days", "per day", &dbars);

    let mut cells = [[0u64; 24]; 7];
    for (w, row) in heat.cells.iter().enumerate() {
        for (h, c) in row.iter().enumerate() {
            cells[w][h] = inet(c);
        }
    }
    let heat_svg = charts::heatmap("Busy hours over the last 4 weeks", &cells);

    // Presence over the last 7 days, ticks at local midnights.
    let week_from = p.today - 6 * 86_400;
    let spans: Vec<(i64, i64)> = presence
        .iter()
        .map(|&(a, b)| (a / 1_000_000_000, b / 1_000_000_000))
        .collect();
    let mut ticks = Vec::new();
    let mut z = view::ts(week_from)?.to_zoned(tz.clone());
    for _ in 0..7 {
        ticks.push((z.timestamp().as_second(), z.strftime("%a").to_string()));
        z = z
            .checked_add(jiff::Span::new().days(1))
            .map_err(|e| AppError::internal(format!("calendar: {e}")))?;
    }
    let presence_svg = charts::timeline(
        "When it was online, last 7 days",
        week_from,
        now,
        &spans,
        &ticks,
    );
    let online_24h: i64 = spans
        .iter()
        .map(|&(a, b)| (b.min(now) - a.max(now - 86_400)).max(0))
        .sum();

    let window_ns = i64::try_from(state.config().presence_window_secs)
        .unwrap_or(300)
        .saturating_mul(1_000_000_000);
    let snap = state.meter_snapshot();
    let in_meter = d
        .macs
        .iter()
        .any(|m| snap.devices.iter().any(|(mac, _)| *mac == m.mac));
    let online = in_meter || now.saturating_mul(1_000_000_000) - d.last_seen_ns <= window_ns;
    let seen = |a: i64, b: i64| {
        format!(
            "{} – {}",
            fmt_local(a / 1_000_000_000, &tz),
            fmt_local(b / 1_000_000_000, &tz)
        )
    };
    // The people and groups to choose from, each once whatever its case.
    let names = |f: fn(&crate::store::discovery::DeviceRecord) -> &Option<String>| -> Vec<String> {
        let mut v: Vec<String> = all
            .iter()
            .filter_map(|r| f(r).as_ref())
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        v.sort_by_key(|s| s.to_lowercase());
        v.dedup_by(|a, b| a.to_lowercase() == b.to_lowercase());
        v
    };
    let people = names(|r| &r.user.owner);
    let groups = names(|r| &r.user.group);
    let mut others: Vec<Other> = all
        .iter()
        .filter(|o| o.id != id && !o.is_gateway)
        .map(|o| Other {
            id: o.id,
            label: format!("{} ({})", view::label(o), o.mac),
        })
        .collect();
    others.sort_by_key(|o| o.label.to_lowercase());
    Ok(DeviceView {
        id,
        mac: d.mac,
        label: view::label(&d),
        icon: view::icon(d.device_type()),
        kind: d.device_type().unwrap_or("unknown type").to_string(),
        vendor: d.vendor.clone().unwrap_or_else(|| {
            if d.randomized {
                "private (randomized) address: no vendor".into()
            } else {
                "unknown vendor".into()
            }
        }),
        vendor_class: d.vendor_class.clone().unwrap_or_default(),
        online,
        first_seen: fmt_local(d.first_seen_ns / 1_000_000_000, &tz),
        last_seen: view::fmt_ago(d.last_seen_ns / 1_000_000_000, now),
        gateway: d.is_gateway,
        today: fmt_bytes(inet(&today)),
        cycle: fmt_bytes(inet(&cycle)),
        days30: fmt_bytes(inet(&total30)),
        local30: fmt_bytes(total30.local_bytes()),
        chart_day,
        chart_month,
        heat: heat_svg,
        presence: presence_svg,
        online_24h: view::fmt_duration(online_24h.unsigned_abs()),
        latency: latency_line(&latency.total, state.config().passive_latency),
        macs: d
            .macs
            .iter()
            .map(|m| {
                (
                    m.mac.to_string(),
                    m.randomized,
                    seen(m.first_seen_ns, m.last_seen_ns),
                )
            })
            .collect(),
        hostnames: d
            .hostnames
            .iter()
            .map(|h| Named {
                name: h.name.clone(),
                source: h.source.clone(),
                seen: seen(h.first_seen_ns, h.last_seen_ns),
            })
            .collect(),
        addresses: d
            .addresses
            .iter()
            .map(|a| Named {
                name: a.addr.to_string(),
                source: if a.addr.is_ipv4() {
                    "IPv4".into()
                } else {
                    "IPv6".into()
                },
                seen: seen(a.first_seen_ns, a.last_seen_ns),
            })
            .collect(),
        services: d.services.clone(),
        name: d.user.name.clone().unwrap_or_default(),
        owner: d.user.owner.clone().unwrap_or_default(),
        group: d.user.group.clone().unwrap_or_default(),
        type_override: d.user.type_override.clone().unwrap_or_default(),
        type_guess: d.type_guess.clone().unwrap_or_default(),
        notes: d.user.notes.clone().unwrap_or_default(),
        known: d.user.known,
        ignored: d.user.ignored,
        types: view::TYPES,
        others,
        people,
        groups,
        quotas,
    })
}

fn fields(body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("The form could not be read.".into()))
}

fn get<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// POST /devices/{id}: name, owner, group, type, notes, known, ignored.
pub async fn save(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let f = fields(&body)?;
    let (form, edited) = EditForm::submitted(&f);
    if !form.errors.is_empty() {
        // The page again, with what was typed and the reason next to each refused field.
        let mut page = page(
            State(state),
            Extension(auth),
            Path(id),
            Query(super::range::RangeQuery::default()),
            Query(SavedFlag::default()),
            Query(super::services::HourQuery::default()),
        )
        .await?;
        page.edit = form;
        return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let Edited {
        name,
        owner,
        group,
        notes,
        kind,
    } = edited;
    let (known, ignored) = (form.known, form.ignored);
    let detail = format!(
        "{id}: name={:?} person={:?} group={:?} type={:?} known={known} ignored={ignored}",
        name.as_deref().unwrap_or(""),
        owner.as_deref().unwrap_or(""),
        group.as_deref().unwrap_or(""),
        kind.as_deref().unwrap_or("")
    );
    update(&state, id, move |u| {
        u.name = name;
        u.owner = owner;
        u.group = group;
        u.notes = notes;
        u.type_override = kind;
        u.known = known;
        u.ignored = ignored;
    })
    .await?;
    session::audit(&state, auth.actor(), &auth.client, "device edited", detail).await;
    // Back at the form (not the top of the page), which says it saved.
    Ok(Redirect::to(&format!("/devices/{id}?saved=1#edit-card")).into_response())
}

/// POST /devices/{id}/merge: field `from` = the device whose MACs and history move into this one.
pub async fn merge(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let f = fields(&body)?;
    let from: i64 = get(&f, "from")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AppError::BadRequest("Choose the device to merge into this one.".into()))?;
    if from == id {
        return Err(AppError::BadRequest(
            "A device cannot be merged with itself.".into(),
        ));
    }
    if get(&f, "confirm") != Some("yes") {
        return confirm_merge(&state, &auth, from, id).await;
    }
    let window_ns = i64::try_from(state.config().presence_window_secs)
        .unwrap_or(300)
        .saturating_mul(1_000_000_000);
    let now_ns = state.now().saturating_mul(1_000_000_000);
    let found = state
        .db_mut(move |s| {
            let (Some(a), Some(b)) = (s.device(from)?, s.device(id)?) else {
                return Ok(None);
            };
            s.merge_devices(from, id, window_ns, &view::label(&a), now_ns)?;
            Ok(Some((a.mac, b.mac)))
        })
        .await?;
    state.changed();
    let Some((from_mac, into_mac)) = found else {
        return Err(AppError::NotFound);
    };
    session::audit(
        &state,
        auth.actor(),
        &auth.client,
        "devices merged",
        format!("{from} ({from_mac}) into {id} ({into_mac})"),
    )
    .await;
    Ok(Redirect::to(&format!("/devices/{id}")).into_response())
}

/// POST /devices/{id}/unmerge: field `undo` = a merge into this device to undo.
pub async fn unmerge(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let f = fields(&body)?;
    let undo: i64 = get(&f, "undo")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AppError::BadRequest("Choose the merge to undo.".into()))?;
    let window_ns = i64::try_from(state.config().presence_window_secs)
        .unwrap_or(300)
        .saturating_mul(1_000_000_000);
    let outcome = state
        .db_mut(move |s| {
            // Only a merge into the device whose page this is.
            if !s.merge_undos(id)?.iter().any(|u| u.id == undo) {
                return Ok(crate::store::undo::Unmerge::Gone);
            }
            s.undo_merge(undo, window_ns)
        })
        .await?;
    state.changed();
    match outcome {
        crate::store::undo::Unmerge::Split { from, into } => {
            session::audit(
                &state,
                auth.actor(),
                &auth.client,
                "merge undone",
                format!("{from} split off {into} again"),
            )
            .await;
            Ok(Redirect::to(&format!("/devices/{from}")).into_response())
        }
        crate::store::undo::Unmerge::Gone => {
            Ok(Redirect::to(&format!("/devices/{id}")).into_response())
        }
        crate::store::undo::Unmerge::Refused(why) => {
            let mut page = page(
                State(state),
                Extension(auth),
                Path(id),
                Query(super::range::RangeQuery::default()),
                Query(SavedFlag::default()),
                Query(super::services::HourQuery::default()),
            )
            .await?;
            page.undo_error = format!("The merge cannot be undone: {why}.");
            Ok((axum::http::StatusCode::CONFLICT, page).into_response())
        }
    }
}

/// One side of a merge as the confirmation names it.
pub struct MergeSide {
    pub id: i64,
    pub label: String,
    pub macs: Vec<String>,
    pub names: usize,
    pub addresses: usize,
    /// Internet traffic in the whole kept history.
    pub history: String,
    pub owner: String,
    pub group: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/merge_confirm.html")]
pub struct MergeConfirm {
    pub layout: Layout,
    pub from: MergeSide,
    pub into: MergeSide,
}

/// The page a merge goes through first: both devices named, and what moves.
async fn confirm_merge(
    state: &AppState,
    auth: &Auth,
    from: i64,
    into: i64,
) -> Result<Response, AppError> {
    let tz = state.config().time_zone();
    let now = state.now();
    let sides = state
        .query(move |s| {
            let mut out = Vec::new();
            for id in [from, into] {
                let Some(d) = s.device(id)? else {
                    return Ok(None);
                };
                let end =
                    jiff::Timestamp::from_second(now + 1).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                let u = s.usage(
                    &Selection::device(d.mac),
                    &tz,
                    jiff::Timestamp::UNIX_EPOCH,
                    end,
                )?;
                out.push(MergeSide {
                    id,
                    label: d
                        .display_name()
                        .map_or_else(|| d.mac.to_string(), str::to_string),
                    macs: d.macs.iter().map(|m| m.mac.to_string()).collect(),
                    names: d.hostnames.len(),
                    addresses: d.addresses.len(),
                    history: fmt_bytes(
                        u.counts.internet_download_bytes + u.counts.internet_upload_bytes,
                    ),
                    owner: d.user.owner.clone().unwrap_or_default(),
                    group: d.user.group.clone().unwrap_or_default(),
                });
            }
            Ok(Some(out))
        })
        .await?;
    let Some(mut sides) = sides else {
        return Err(AppError::NotFound);
    };
    let into_side = sides.pop().ok_or(AppError::NotFound)?;
    let from_side = sides.pop().ok_or(AppError::NotFound)?;
    Ok(MergeConfirm {
        layout: Layout::new("Merge devices?", "devices", Some(auth)),
        from: from_side,
        into: into_side,
    }
    .into_response())
}
