//! GET /devices: every device with its name (or host name, or vendor + last MAC bytes), type,
//! vendor, addresses, online dot, last seen, internet use today and this cycle; sorted, filtered
//! (online, unknown, group) and searched through query parameters, so every view has a URL and
//! works without JavaScript (htmx only swaps the table in place).
//!
//! POST /devices/{id}/rename and /devices/{id}/known change one device and answer with its new
//! table row (htmx swaps it in); POST /devices/bulk marks or ignores several unknown devices.
//! The guard admits these for admins with a CSRF token only; each change is audited.

use super::AppState;
use super::error::AppError;
use super::range::{Chosen, RangeQuery};
use super::session::{self, Auth, Layout};
use super::view::{self, DeviceRow};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// Longest name, owner, group or note a person may type (bytes); longer input is refused.
pub const MAX_FIELD: usize = 120;
pub const MAX_NOTES: usize = 2000;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub q: String,
    /// "", "online", "unknown", "ignored"
    #[serde(default)]
    pub filter: String,
    #[serde(default)]
    pub group: String,
    /// "name" (default), "today" (the chosen range), "cycle", "seen"
    #[serde(default)]
    pub sort: String,
    /// The range of the use column (see [`super::range`]); empty means today.
    #[serde(default)]
    pub range: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

impl Filter {
    fn keeps(&self, r: &DeviceRow) -> bool {
        let q = self.q.trim().to_lowercase();
        let text = !q.is_empty()
            && ![&r.label, &r.vendor, &r.ips, &r.owner, &r.group]
                .iter()
                .any(|f| f.to_lowercase().contains(&q))
            && !r.mac.to_string().contains(&q);
        let kind = match self.filter.as_str() {
            "online" => r.counts_online() || (r.gateway && r.online),
            "unknown" => !r.known && !r.gateway,
            "ignored" => r.ignored,
            _ => !r.ignored,
        };
        let group = self.group.is_empty() || r.group == self.group || r.owner == self.group;
        !text && kind && group
    }

    /// The query string for a header link that sorts by `by`, keeping the other choices.
    pub fn sort_link(&self, by: &str) -> String {
        let f = Filter {
            sort: by.to_string(),
            ..self.clone()
        };
        let custom = f.range == "custom";
        let pairs = [
            ("q", f.q.as_str()),
            ("filter", f.filter.as_str()),
            ("group", f.group.as_str()),
            ("sort", f.sort.as_str()),
            ("range", f.range.as_str()),
            ("from", if custom { f.from.as_str() } else { "" }),
            ("to", if custom { f.to.as_str() } else { "" }),
        ];
        let kept: Vec<(&str, &str)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        format!(
            "/devices?{}",
            serde_urlencoded::to_string(kept).unwrap_or_default()
        )
    }

    pub fn range_query(&self) -> RangeQuery {
        RangeQuery {
            range: self.range.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
        }
    }
}

/// Resolves the range of `q` and puts each row's internet use in it into `in_range` (rows
/// already hold today's, live counts included, so today needs no query). A range that is one of
/// the household's stored readings (this week, this cycle) is taken from `stored`.
pub async fn apply_range(
    state: &AppState,
    rows: &mut [DeviceRow],
    q: &RangeQuery,
    stored: &view::Stored,
) -> Result<Chosen, AppError> {
    let tz = state.config().time_zone();
    let plan = state.db(|s| s.plan()).await?;
    // At the household reading's instant, so that a range it holds (this week, this cycle)
    // is the same range and its figures match the columns beside it.
    let mut chosen = q.resolve(stored.now(), &tz, &plan)?;
    if chosen.key == "today" {
        return Ok(chosen);
    }
    let by: std::collections::HashMap<crate::model::MacAddr, u64> =
        match stored.reading(chosen.from, chosen.to) {
            Some(u) => {
                let extent = state.query(move |s| Ok(s.data_extent()?)).await?;
                chosen.mark_partial(extent.map(|e| e.0), &tz);
                u.iter().map(|u| (u.mac, view::internet(u))).collect()
            }
            None => {
                // A range that ends now (this month, a custom range to today) takes today's part
                // from the household reading the rows came from: only the days before today are
                // read here. Cutting a range at a local midnight splits its rows exactly (each
                // row lies on one side: no stored bucket spans a midnight that has passed).
                let today = view::ts(stored.now())?
                    .to_zoned(tz.clone())
                    .start_of_day()
                    .map_err(|e| AppError::internal(format!("local calendar: {e}")))?
                    .timestamp()
                    .as_second();
                let tail = stored
                    .reading(today, chosen.to)
                    .filter(|_| chosen.from < today);
                let read_to = if tail.is_some() { today } else { chosen.to };
                let (from, to) = (view::ts(chosen.from)?, view::ts(read_to)?);
                let tzq = tz.clone();
                let (mut by, extent) = state
                    .query(move |s| Ok((s.internet_by_device(&tzq, from, to)?.0, s.data_extent()?)))
                    .await?;
                chosen.mark_partial(extent.map(|e| e.0), &tz);
                for u in tail.unwrap_or_default() {
                    *by.entry(u.mac).or_default() += view::internet(u);
                }
                by
            }
        };
    for r in rows.iter_mut() {
        r.in_range_label = chosen.label.to_lowercase();
        r.in_range = by.get(&r.mac).copied().unwrap_or(0);
    }
    Ok(chosen)
}

pub fn sort_rows(rows: &mut [DeviceRow], by: &str) {
    match by {
        "today" => rows.sort_by_key(|r| std::cmp::Reverse(r.in_range)),
        "cycle" => rows.sort_by_key(|r| std::cmp::Reverse(r.cycle)),
        "seen" => rows.sort_by_key(|r| std::cmp::Reverse(r.last_seen_s)),
        _ => rows.sort_by_key(|r| r.label.to_lowercase()),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/devices.html")]
pub struct DevicesPage {
    pub layout: Layout,
    pub f: Filter,
    pub rows: Vec<DeviceRow>,
    /// Devices among `rows` (the router left out).
    pub shown: usize,
    /// Every device, ignored ones included, the router not.
    pub total: usize,
    pub groups: Vec<String>,
    pub admin: bool,
    pub unknown: usize,
    /// The range of the use column.
    pub chosen: Chosen,
}

#[derive(Template, WebTemplate)]
#[template(path = "partials/device_row.html")]
pub struct RowPartial {
    pub r: DeviceRow,
    pub admin: bool,
    pub layout: Layout,
    /// The row's link takes the focus when htmx swaps the row in (`autofocus`), so an in-place
    /// edit leaves the keyboard on the row it changed, not at the top of the page.
    pub focus: bool,
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Query(f): Query<Filter>,
) -> Result<DevicesPage, AppError> {
    let h = view::household(&state).await?;
    let total = h.rows.iter().filter(|r| r.is_device()).count();
    let mut groups: Vec<String> = h
        .rows
        .iter()
        .flat_map(|r| [r.group.clone(), r.owner.clone()])
        .filter(|g| !g.is_empty())
        .collect();
    groups.sort_by_key(|g| g.to_lowercase());
    groups.dedup();
    let unknown = h
        .rows
        .iter()
        .filter(|r| !r.known && !r.gateway && !r.ignored)
        .count();
    let mut rows: Vec<DeviceRow> = h.rows.into_iter().filter(|r| f.keeps(r)).collect();
    let chosen = apply_range(&state, &mut rows, &f.range_query(), &h.stored).await?;
    sort_rows(&mut rows, &f.sort);
    // The router is listed last, apart, and never counted (see `DeviceRow::is_device`).
    rows.sort_by_key(|r| r.gateway);
    let shown = rows.iter().filter(|r| r.is_device()).count();
    Ok(DevicesPage {
        shown,
        admin: auth.role == crate::auth::Role::Admin,
        layout: Layout::new("Devices", "devices", Some(&auth)),
        f,
        rows,
        total,
        groups,
        unknown,
        chosen,
    })
}

/// A person-typed one-line field (name, person, group, type): trimmed, empty means "not set",
/// refused when too long or when it holds any control character, CR and LF included, as the
/// API refuses them (a line break in a name could only come from a crafted request, and would
/// break every one-line place the name is shown: CSV rows, log lines, e-mail headers).
pub fn field(v: Option<&str>, what: &str, max: usize) -> Result<Option<String>, AppError> {
    checked(v.map(str::trim).unwrap_or(""), what, max, false)
}

/// A person-typed text area (notes): like [`field`], but line breaks and tabs are kept. The
/// browser sends a text area's line breaks as CR LF; they are stored as LF, as the API stores
/// them, and any other CR is refused.
pub fn multiline_field(
    v: Option<&str>,
    what: &str,
    max: usize,
) -> Result<Option<String>, AppError> {
    let v = v
        .map(|v| v.trim().replace("\r\n", "\n"))
        .unwrap_or_default();
    checked(&v, what, max, true)
}

fn checked(v: &str, what: &str, max: usize, multiline: bool) -> Result<Option<String>, AppError> {
    // Characters, as the form's `maxlength` counts them (a byte limit refused 120 letters with
    // accents the browser let through).
    if v.chars().count() > max {
        return Err(AppError::BadRequest(format!(
            "The {what} is too long: at most {max} characters."
        )));
    }
    if v.chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(AppError::BadRequest(format!(
            "The {what} contains control characters{}.",
            if multiline {
                ""
            } else {
                " (line breaks included): use one line"
            }
        )));
    }
    Ok((!v.is_empty()).then(|| v.to_string()))
}

fn form_fields(body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("The form could not be read.".into()))
}

fn get<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Loads one device, changes its user fields with `f`, saves, and returns the new record.
pub async fn update(
    state: &AppState,
    id: i64,
    f: impl FnOnce(&mut crate::store::discovery::UserFields) + Send + 'static,
) -> Result<crate::store::discovery::DeviceRecord, AppError> {
    let found = state
        .db_mut(move |s| {
            let Some(mut d) = s.device(id)? else {
                return Ok(None);
            };
            f(&mut d.user);
            s.set_user_fields(id, &d.user)?;
            Ok(Some(d))
        })
        .await?;
    state.changed();
    found.ok_or(AppError::NotFound)
}

/// The row of `id` again, its use column in the range the list shows (htmx sends the list's
/// filter form along with the row's own fields).
async fn row_response(
    state: &AppState,
    auth: &Auth,
    id: i64,
    fields: &[(String, String)],
) -> Result<Response, AppError> {
    let h = view::household(state).await?;
    let mut r = h
        .rows
        .into_iter()
        .find(|r| r.id == id)
        .ok_or(AppError::NotFound)?;
    let q = RangeQuery {
        range: get(fields, "range").unwrap_or("").to_string(),
        from: get(fields, "from").unwrap_or("").to_string(),
        to: get(fields, "to").unwrap_or("").to_string(),
    };
    apply_range(state, std::slice::from_mut(&mut r), &q, &h.stored).await?;
    Ok(RowPartial {
        r,
        admin: auth.role == crate::auth::Role::Admin,
        layout: Layout::new("Devices", "devices", Some(auth)),
        focus: true,
    }
    .into_response())
}

/// POST /devices/{id}/rename (field `name`; empty clears the name).
pub async fn rename(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let fields = form_fields(&body)?;
    let name = field(get(&fields, "name"), "name", MAX_FIELD)?;
    let new = name.clone();
    let d = update(&state, id, move |u| {
        u.name = new;
        if u.name.is_some() {
            u.known = true;
        }
    })
    .await?;
    session::audit(
        &state,
        auth.actor(),
        &auth.client,
        "device renamed",
        format!(
            "{} ({}) → {}",
            id,
            d.mac,
            name.as_deref().unwrap_or("(no name)")
        ),
    )
    .await;
    respond(&state, &auth, id, &fields).await
}

/// POST /devices/{id}/known (field `known`: "1" or "0").
pub async fn known(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let fields = form_fields(&body)?;
    let known = get(&fields, "known") != Some("0");
    let d = update(&state, id, move |u| u.known = known).await?;
    session::audit(
        &state,
        auth.actor(),
        &auth.client,
        if known {
            "device marked known"
        } else {
            "device marked unknown"
        },
        format!("{} ({})", id, d.mac),
    )
    .await;
    respond(&state, &auth, id, &fields).await
}

/// htmx gets the new row; a plain form post goes back to where it came from.
async fn respond(
    state: &AppState,
    auth: &Auth,
    id: i64,
    fields: &[(String, String)],
) -> Result<Response, AppError> {
    if get(fields, "back") == Some("device") {
        return Ok(Redirect::to(&format!("/devices/{id}")).into_response());
    }
    row_response(state, auth, id, fields).await
}

/// POST /devices/bulk: fields `id` (repeated) and `action` = "known" or "ignore".
pub async fn bulk(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    body: Bytes,
) -> Result<Response, AppError> {
    let fields = form_fields(&body)?;
    let action = get(&fields, "action").unwrap_or("").to_string();
    if action != "known" && action != "ignore" {
        return Err(AppError::BadRequest(
            "Choose what to do with the selected devices.".into(),
        ));
    }
    let ids: Vec<i64> = fields
        .iter()
        .filter(|(k, _)| k == "id")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    if ids.is_empty() {
        return Ok(Redirect::to("/devices?filter=unknown").into_response());
    }
    let a = action.clone();
    let list = ids.clone();
    let changed = state
        .db_mut(move |s| {
            let mut n = 0;
            for id in list {
                if let Some(mut d) = s.device(id)? {
                    if a == "known" {
                        d.user.known = true;
                    } else {
                        d.user.ignored = true;
                    }
                    s.set_user_fields(id, &d.user)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await?;
    state.changed();
    session::audit(
        &state,
        auth.actor(),
        &auth.client,
        if action == "known" {
            "devices marked known"
        } else {
            "devices ignored"
        },
        format!("{changed} device(s): {ids:?}"),
    )
    .await;
    Ok(Redirect::to("/devices?filter=unknown").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(
            field(Some("  Emma's iPad "), "name", 20)
                .unwrap()
                .as_deref(),
            Some("Emma's iPad")
        );
        assert_eq!(field(Some("   "), "name", 20).unwrap(), None);
        assert!(field(Some(&"x".repeat(21)), "name", 20).is_err());
        assert!(field(Some("a\u{0}b"), "name", 20).is_err());
        // Issue 19: the web form took CR/LF in one-line fields that the API refused.
        for v in ["Emma\r\nSet-Cookie: x", "a\nb", "a\rb", "a\tb"] {
            assert!(field(Some(v), "name", 60).is_err(), "{v:?}");
        }
        assert_eq!(
            multiline_field(Some("line one\r\nline two\tend"), "notes", 100).unwrap(),
            Some("line one\nline two\tend".to_string())
        );
        assert!(multiline_field(Some("a\rb"), "notes", 100).is_err());
        // Markup is kept as typed: the templates escape it.
        assert_eq!(
            field(Some("<img src=x onerror=alert(1)>"), "name", 60)
                .unwrap()
                .as_deref(),
            Some("<img src=x onerror=alert(1)>")
        );
    }
}
