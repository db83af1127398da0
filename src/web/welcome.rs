//! GET/POST /welcome: the first-run wizard the setup page leads to once the admin password is
//! set, and the Settings page links to later. Three steps, each skippable: where the Pi is (the
//! placement verdict of the System page), the data plan (the plan settings' form and save), and
//! notifications (the Settings page's e-mail and ntfy fields, provider presets and test
//! messages); then done. It keeps no state of its own: every step saves where its page does.

use super::AppState;
use super::error::AppError;
use super::plan::PlanForm;
use super::session::{Auth, Client, Layout};
use super::settings::{Field, MAIL_PRESETS, MailPreset};
use super::system::PlacementCard;
use crate::config::settings::EditError;
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The settings groups step 3 shows: e-mail and phone push through ntfy (the other channels are
/// on the Settings page).
const NOTIFY_GROUPS: [&str; 2] = ["E-mail", "Phone push: ntfy"];

#[derive(Template, WebTemplate)]
#[template(path = "pages/welcome.html")]
pub struct WelcomePage {
    pub layout: Layout,
    /// 1 where, 2 plan, 3 notifications, 4 done.
    pub step: u8,
    pub placement: PlacementCard,
    pub form: PlanForm,
    pub currency: String,
    pub zone: String,
    pub error: Option<String>,
    /// The notification groups (title, fields, test channel).
    pub groups: Vec<(&'static str, Vec<Field>, Option<&'static str>)>,
    /// The config file can be edited (lanmeter runs with one).
    pub edit: bool,
    pub presets: &'static [MailPreset],
    pub preset: Option<&'static MailPreset>,
    /// After a test message: whether it was accepted, and what happened in words.
    pub tested: Option<(bool, String)>,
    /// Step 2 saved.
    pub plan_saved: bool,
    /// Saved settings (mail, for one) wait for a restart to take effect.
    pub restart_pending: bool,
    /// A service manager brings lanmeter back, so the restart button is offered.
    pub can_restart: bool,
}

impl WelcomePage {
    /// Askama calls this for the plan form's `checked` attributes.
    pub fn is(&self, field: &str, value: &str) -> bool {
        match field {
            "cycle_kind" => self.form.cycle_kind == value,
            "counted" => self.form.counted == value,
            "source" => self.form.source == value,
            _ => false,
        }
    }

    pub fn steps(&self) -> [(u8, &'static str); 3] {
        [(1, "Where"), (2, "Plan"), (3, "Notifications")]
    }
}

#[derive(Deserialize)]
pub struct StepQuery {
    #[serde(default)]
    step: Option<u8>,
    /// Step 2 was just saved.
    #[serde(default)]
    saved: Option<u8>,
}

async fn render(
    state: &AppState,
    auth: &Auth,
    step: u8,
    typed: Option<&BTreeMap<String, String>>,
    errors: &BTreeMap<String, String>,
) -> Result<WelcomePage, AppError> {
    let (form, currency, zone) = super::plan::plan_form(state).await?;
    let g = super::settings::groups(state, &NOTIFY_GROUPS, typed, errors).await;
    Ok(WelcomePage {
        layout: Layout::new("Welcome", "", Some(auth)),
        step: step.clamp(1, 4),
        placement: PlacementCard::of(state),
        form,
        currency,
        zone,
        error: None,
        groups: g.shown,
        edit: g.editable,
        restart_pending: g.restart_pending,
        can_restart: g.can_restart,
        presets: MAIL_PRESETS,
        preset: None,
        tested: None,
        plan_saved: false,
    })
}

/// GET /welcome?step=N
pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<StepQuery>,
) -> Result<WelcomePage, AppError> {
    let mut page = render(&state, &auth, q.step.unwrap_or(1), None, &BTreeMap::new()).await?;
    page.plan_saved = q.saved == Some(2);
    Ok(page)
}

/// POST /welcome/plan: step 2 saved exactly as /plan/settings saves it; on to step 3, or the
/// step again with what was typed and why it was refused.
pub async fn save_plan(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<PlanForm>,
) -> Result<Response, AppError> {
    match super::plan::save_plan(&state, &auth, &client, &form).await? {
        Ok(()) => Ok(Redirect::to("/welcome?step=3&saved=2").into_response()),
        Err(msg) => {
            let mut page = render(&state, &auth, 2, None, &BTreeMap::new()).await?;
            page.form = form;
            page.error = Some(msg);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// POST /welcome/notify: step 3. `action=preset` fills in a mail provider (nothing saved);
/// `test=CHANNEL` saves, then sends a test on that channel (as the Settings page's button does);
/// anything else saves, then the wizard is done.
pub async fn save_notify(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
    Client(client): Client,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    // A checkbox sends a hidden "false" and, when ticked, "true" after it: the last one counts.
    let mut typed: BTreeMap<String, String> = form.into_iter().collect();
    let action = typed.remove("action").unwrap_or_default();
    let test = typed.remove("test");
    if action == "preset" {
        let p = super::settings::apply_mail_preset(&mut typed)?;
        let mut page = render(&state, &auth, 3, Some(&typed), &BTreeMap::new()).await?;
        page.preset = Some(p);
        return Ok(page.into_response());
    }
    match super::settings::save_typed(&state, auth.actor(), &client, &typed).await {
        Ok(_) => {}
        Err(EditError::Refused(errors)) => {
            let mut page = render(&state, &auth, 3, Some(&typed), &errors).await?;
            page.error = Some("Nothing was saved: please fix the fields marked below.".into());
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        Err(e) => {
            let mut page = render(&state, &auth, 3, Some(&typed), &BTreeMap::new()).await?;
            page.error = Some(e.to_string());
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
    }
    let Some(channel) = test else {
        return Ok(Redirect::to("/welcome?step=4").into_response());
    };
    if !NOTIFY_GROUPS
        .iter()
        .any(|g| super::settings::test_channel(g) == Some(channel.as_str()))
    {
        return Err(AppError::BadRequest("unknown channel".into()));
    }
    let cfg = super::settings::file_config(&state).await;
    let (what, result) = super::settings::send_test(&state, &cfg, &channel).await?;
    super::session::audit(&state, auth.actor(), &client, &what, result.1.clone()).await;
    let mut page = render(&state, &auth, 3, None, &BTreeMap::new()).await?;
    page.tested = Some(result);
    Ok(page.into_response())
}
