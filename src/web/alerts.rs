//! GET /alerts: the alerts list. Alert rules, the engine and delivery come with their own issue;
//! until then the page says plainly that there are none and why.

use super::session::{Auth, Layout};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;

#[derive(Template, WebTemplate)]
#[template(path = "pages/alerts.html")]
pub struct AlertsPage {
    pub layout: Layout,
}

pub async fn page(Extension(auth): Extension<Auth>) -> AlertsPage {
    AlertsPage {
        layout: Layout::new("Alerts", "alerts", Some(&auth)),
    }
}
