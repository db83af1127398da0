//! "Download" on the devices list and a device's page: the chosen range's internet use per
//! device as CSV or JSON, with the names a family knows (device, person, group) beside the MAC,
//! and bytes both raw (for sums) and in words (for reading).
//!
//! GET /devices/usage.csv|json and /devices/{id}/usage.csv|json take the same `range`, `from`
//! and `to` as the pages (see [`super::range`]), so a bookmark and its download agree.
//!
//! CSV cells are spreadsheet-safe: every text cell is quoted, and one starting with `=`, `+`,
//! `-`, `@`, a tab or a carriage return (which a spreadsheet would run as a formula) gets a
//! leading apostrophe. Device names come from the network (DHCP, mDNS), so they are hostile
//! input as far as a spreadsheet is concerned.
use super::AppState;
use super::error::AppError;
use super::range::{Chosen, RangeQuery};
use super::view::{self, fmt_bytes};
use crate::model::MacAddr;
use crate::store::query::OTHER;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One device's row in a download.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub device: String,
    pub person: String,
    pub group: String,
    pub mac: String,
    pub download_bytes: u64,
    pub upload_bytes: u64,
    pub internet_bytes: u64,
    /// `internet_bytes` in decimal units, "1.20 GB".
    pub internet: String,
}

/// A download: the range and its rows.
#[derive(Debug, Serialize)]
pub struct Download {
    /// The range in words, and its bounds (RFC 3339, end exclusive).
    pub range: String,
    pub from: String,
    pub to: String,
    pub rows: Vec<Row>,
}

/// A CSV cell a spreadsheet shows as text: quoted, formula triggers defused.
pub fn csv_cell(v: &str) -> String {
    let risky = v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    format!(
        "\"{}{}\"",
        if risky { "'" } else { "" },
        v.replace('"', "\"\"")
    )
}

pub fn to_csv(d: &Download) -> String {
    let mut out = String::from(
        "device,person,group,mac,from,to,download_bytes,upload_bytes,internet_bytes,internet\r\n",
    );
    for r in &d.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_cell(&r.device),
            csv_cell(&r.person),
            csv_cell(&r.group),
            csv_cell(&r.mac),
            csv_cell(&d.from),
            csv_cell(&d.to),
            r.download_bytes,
            r.upload_bytes,
            r.internet_bytes,
            csv_cell(&r.internet)
        ));
    }
    out
}

/// The rows of `only` (one device's MAC) or of every household device, plus traffic the meter
/// could not attribute, so the rows add up to the household total (the router is left out:
/// its traffic is everyone's, seen again).
async fn build(
    state: &AppState,
    chosen: &Chosen,
    only: Option<MacAddr>,
) -> Result<Download, AppError> {
    let h = view::household(state).await?;
    let tz = state.config().time_zone();
    let (from, to) = (view::ts(chosen.from)?, view::ts(chosen.to)?);
    let (usage, _) = state
        .query(move |s| s.usage_by_device(&tz, from, to))
        .await?;
    let mut rows = Vec::new();
    for u in &usage {
        if u.is_gateway || only.is_some_and(|m| m != u.mac) {
            continue;
        }
        let c = &u.counts;
        let known = h.rows.iter().find(|r| r.mac == u.mac);
        if known.is_none() && u.mac != OTHER {
            continue;
        }
        let inet = c.internet_download_bytes + c.internet_upload_bytes;
        if inet == 0 && only.is_none() {
            continue;
        }
        rows.push(Row {
            device: known.map_or_else(|| "(not attributed)".to_string(), |r| r.label.clone()),
            person: known.map_or_else(String::new, |r| r.owner.clone()),
            group: known.map_or_else(String::new, |r| r.group.clone()),
            mac: if u.mac == OTHER {
                String::new()
            } else {
                u.mac.to_string()
            },
            download_bytes: c.internet_download_bytes,
            upload_bytes: c.internet_upload_bytes,
            internet_bytes: inet,
            internet: fmt_bytes(inet),
        });
    }
    if let (Some(m), true) = (only, rows.is_empty()) {
        // A device without traffic in the range still gets its row (of zeros).
        if let Some(r) = h.rows.iter().find(|r| r.mac == m) {
            rows.push(Row {
                device: r.label.clone(),
                person: r.owner.clone(),
                group: r.group.clone(),
                mac: m.to_string(),
                download_bytes: 0,
                upload_bytes: 0,
                internet_bytes: 0,
                internet: fmt_bytes(0),
            });
        }
    }
    rows.sort_by(|a, b| {
        b.internet_bytes
            .cmp(&a.internet_bytes)
            .then(a.device.cmp(&b.device))
    });
    Ok(Download {
        range: chosen.label.clone(),
        from: from.to_string(),
        to: to.to_string(),
        rows,
    })
}

fn respond(d: &Download, name: &str, ext: &str) -> Result<Response, AppError> {
    let (body, kind) = match ext {
        "csv" => (to_csv(d), "text/csv; charset=utf-8"),
        "json" => (
            serde_json::to_string_pretty(d).map_err(|e| AppError::internal(e.to_string()))?,
            "application/json",
        ),
        _ => return Err(AppError::NotFound),
    };
    // The file name is ours (a fixed word and dates), never a device's name.
    let disposition = format!("attachment; filename=\"lanmeter-{name}.{ext}\"");
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

async fn chosen(state: &AppState, q: &RangeQuery) -> Result<Chosen, AppError> {
    let plan = state.db(|s| s.plan()).await?;
    q.resolve(state.now(), &state.config().time_zone(), &plan)
}

fn file_name(what: &str, c: &Chosen) -> String {
    if c.first_day == c.last_day {
        format!("{what}-{}", c.first_day)
    } else {
        format!("{what}-{}-to-{}", c.first_day, c.last_day)
    }
}

async fn all_devices(state: &AppState, q: &RangeQuery, ext: &str) -> Result<Response, AppError> {
    let c = chosen(state, q).await?;
    let d = build(state, &c, None).await?;
    respond(&d, &file_name("devices", &c), ext)
}

async fn one_device(
    state: &AppState,
    id: i64,
    q: &RangeQuery,
    ext: &str,
) -> Result<Response, AppError> {
    let mac = state
        .query(move |s| Ok(s.device(id)?.map(|d| d.mac)))
        .await?
        .ok_or(AppError::NotFound)?;
    let c = chosen(state, q).await?;
    let d = build(state, &c, Some(mac)).await?;
    respond(&d, &file_name(&format!("device-{id}"), &c), ext)
}

/// GET /devices/usage.csv: every device in the range.
pub async fn devices_csv(
    State(state): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, AppError> {
    all_devices(&state, &q, "csv").await
}

/// GET /devices/usage.json
pub async fn devices_json(
    State(state): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, AppError> {
    all_devices(&state, &q, "json").await
}

/// GET /devices/{id}/usage.csv: one device in the range.
pub async fn device_csv(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, AppError> {
    one_device(&state, id, &q, "csv").await
}

/// GET /devices/{id}/usage.json
pub async fn device_json(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, AppError> {
    one_device(&state, id, &q, "json").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("Anna's iPhone"), "\"Anna's iPhone\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        for f in ["=HYPERLINK(\"x\")", "+1", "-500", "@SUM(A1)", "\tx", "\rx"] {
            let c = csv_cell(f);
            assert!(c.starts_with("\"'"), "{f:?} → {c}");
        }
        let d = Download {
            range: "Yesterday".into(),
            from: "a".into(),
            to: "b".into(),
            rows: vec![Row {
                device: "=cmd|' /C calc'!A0".into(),
                person: "Anna, \"the boss\"".into(),
                group: String::new(),
                mac: "dc:a6:32:00:00:01".into(),
                download_bytes: 10,
                upload_bytes: 5,
                internet_bytes: 15,
                internet: "15 B".into(),
            }],
        };
        let csv = to_csv(&d);
        let line = csv.lines().nth(1).unwrap();
        assert!(
            line.starts_with("\"'=cmd|' /C calc'!A0\",\"Anna, \"\"the boss\"\"\""),
            "{line}"
        );
        assert!(line.ends_with(",10,5,15,\"15 B\""), "{line}");
    }
}
