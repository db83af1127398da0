//! GET /audit (admins): the Security page — the audit log, signed-in sessions with "log out
//! other sessions", and addresses locked out after failed logins.

use super::AppState;
use super::error::AppError;
use super::session::{Auth, Layout};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;

/// Entries shown; the store keeps more (see `store::auth::AUDIT_KEEP`).
const SHOWN: u32 = 200;

pub struct Entry {
    pub at: String,
    pub actor: String,
    pub client: String,
    pub action: String,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "pages/audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub sessions: i64,
    pub locked: Vec<(String, u32)>,
    pub entries: Vec<Entry>,
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<AuditPage, AppError> {
    let (sessions, locked, rows) = state
        .db(|s| {
            Ok((
                s.session_count()?,
                s.locked_clients()?,
                s.audit_recent(SHOWN)?,
            ))
        })
        .await?;
    let tz = state.config().time_zone();
    let entries = rows
        .into_iter()
        .map(|r| Entry {
            at: jiff::Timestamp::from_second(r.at).map_or_else(
                |_| r.at.to_string(),
                |t| {
                    t.to_zoned(tz.clone())
                        .strftime("%Y-%m-%d %H:%M:%S")
                        .to_string()
                },
            ),
            actor: r.actor,
            client: r.client,
            action: r.action,
            detail: r.detail,
        })
        .collect();
    Ok(AuditPage {
        layout: Layout::new("Security", "security", Some(&auth)),
        sessions,
        locked,
        entries,
    })
}
