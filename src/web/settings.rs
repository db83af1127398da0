//! GET /settings: the configuration in effect, as a household can read it. Nothing here is
//! changed at run time yet: the file /etc/lanmeter/lanmeter.toml is the place, and the data plan
//! and alert settings (their own issues) will add forms to this page. No secret is shown.

use super::AppState;
use super::error::AppError;
use super::session::{Auth, Layout};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;

/// One shown setting: its config key (empty when it has none), label and value.
pub type Item = (&'static str, &'static str, String);

#[derive(Template, WebTemplate)]
#[template(path = "pages/settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub sections: Vec<(&'static str, Vec<Item>)>,
}

fn yes(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

fn keep(n: u32, unit: &str) -> String {
    if n == 0 {
        "forever".into()
    } else {
        format!("{n} {unit}")
    }
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<SettingsPage, AppError> {
    let c = state.config();
    let tz = c.time_zone();
    let sections = vec![
        (
            "Capture",
            vec![
                ("interface", "Interface", c.interface.clone().unwrap_or_else(|| "the default-route interface".into())),
                ("promiscuous", "Promiscuous mode", yes(c.promiscuous)),
                ("gateway", "Router", c.gateway.map_or_else(|| "detected automatically".into(), |g| g.to_string())),
                ("flush_interval_secs", "Saved to the database every", format!("{} s", c.flush_interval_secs)),
                ("discovery", "Learn device names and presence", yes(c.discovery)),
                ("presence_window_secs", "Online while heard within", format!("{} s", c.presence_window_secs)),
            ],
        ),
        (
            "Time and billing",
            vec![
                ("timezone", "Time zone", tz.iana_name().unwrap_or("system").to_string()),
                ("", "Billing cycle", "calendar month, from the 1st (the data plan settings will make this adjustable)".into()),
            ],
        ),
        (
            "History",
            vec![
                ("keep_minutes_days", "Minute detail kept", keep(c.keep_minutes_days, "days")),
                ("keep_hours_days", "Hourly detail kept", keep(c.keep_hours_days, "days")),
                ("keep_days_months", "Daily detail kept", keep(c.keep_days_months, "months")),
                ("keep_months_years", "Monthly totals kept", keep(c.keep_months_years, "years")),
                ("backup_keep", "Nightly backups kept", c.backup_keep.to_string()),
            ],
        ),
        (
            "Web",
            vec![
                ("listen", "Dashboard address", c.listen.to_string()),
                ("anyone_on_lan_may_view", "Anyone on the home network may look without a password", yes(c.anyone_on_lan_may_view)),
                ("session_idle_hours", "Log out after idle", format!("{} h", c.session_idle_hours)),
            ],
        ),
    ];
    Ok(SettingsPage {
        layout: Layout::new("Settings", "settings", Some(&auth)),
        sections,
    })
}
