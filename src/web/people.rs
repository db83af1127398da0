//! GET /people: internet use per person (the device's owner) and per group ("the kids", "work
//! laptops", "smart home"), today and this billing cycle, with each one's devices.

use super::AppState;
use super::charts;
use super::error::AppError;
use super::session::{Auth, Layout};
use super::view::{self, DeviceRow, fmt_bytes};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;
use std::collections::BTreeMap;

pub struct Bucket {
    pub name: String,
    pub today: String,
    pub cycle: String,
    pub share_bar: String,
    pub share: String,
    pub devices: Vec<DeviceRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/people.html")]
pub struct PeoplePage {
    pub layout: Layout,
    pub people: Vec<Bucket>,
    pub groups: Vec<Bucket>,
}

fn buckets(rows: &[DeviceRow], key: impl Fn(&DeviceRow) -> &str, none: &str) -> Vec<Bucket> {
    // "grandma" and "Grandma" are one person: keyed case-insensitively, shown as first spelt.
    let mut by: BTreeMap<String, (String, Vec<DeviceRow>)> = BTreeMap::new();
    for r in rows {
        let k = key(r);
        let k = if k.is_empty() { none } else { k };
        by.entry(k.to_lowercase())
            .or_insert_with(|| (k.to_string(), Vec::new()))
            .1
            .push(r.clone());
    }
    let total: u64 = rows.iter().map(|r| r.cycle).sum();
    let mut out: Vec<(u64, Bucket)> = by
        .into_values()
        .map(|(name, mut devices)| {
            devices.sort_by_key(|r| std::cmp::Reverse(r.cycle));
            let today: u64 = devices.iter().map(|r| r.today).sum();
            let cycle: u64 = devices.iter().map(|r| r.cycle).sum();
            let pct = if total == 0 {
                0.0
            } else {
                cycle as f64 * 100.0 / total as f64
            };
            (
                cycle,
                Bucket {
                    name,
                    today: fmt_bytes(today),
                    cycle: fmt_bytes(cycle),
                    share_bar: charts::share(pct),
                    share: format!("{pct:.0} %"),
                    devices,
                },
            )
        })
        .collect();
    out.sort_by_key(|b| std::cmp::Reverse(b.0));
    out.into_iter().map(|(_, b)| b).collect()
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<PeoplePage, AppError> {
    let h = view::household(&state).await?;
    let rows: Vec<DeviceRow> = h
        .rows
        .into_iter()
        .filter(|r| !r.gateway && !r.ignored)
        .collect();
    Ok(PeoplePage {
        layout: Layout::new("People", "people", Some(&auth)),
        people: buckets(&rows, |r| &r.owner, "No person set"),
        groups: buckets(&rows, |r| &r.group, "No group set"),
    })
}
