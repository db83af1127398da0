//! GET /system: the health of the box and of lanmeter — CPU, memory, disk, CPU temperature,
//! uptime, the capture interface and its statistics, the database size and history rows, and
//! the version. Reads only.

use super::AppState;
use super::error::AppError;
use super::session::{Auth, Layout};
use super::view::{fmt_bytes, fmt_duration};
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;

#[derive(Template, WebTemplate)]
#[template(path = "pages/system.html")]
pub struct SystemPage {
    pub layout: Layout,
    pub rows: Vec<(&'static str, String)>,
    pub capture: Vec<(&'static str, String)>,
    pub storage: Vec<(&'static str, String)>,
    /// Unresolved damage of the database, one sentence each (empty when healthy).
    pub damage: Vec<String>,
    /// The newest good backup to restore, or why there is none.
    pub damage_offer: String,
    pub placement: PlacementCard,
    /// The router's counters (issue 24): facts, and coverage per day (label, text, bar).
    pub router: Vec<(&'static str, String)>,
    pub coverage_days: Vec<(String, String, String)>,
}

/// The placement verdict as the System page and the wizard show it.
pub struct PlacementCard {
    pub ok: bool,
    pub headline: String,
    /// In household words.
    pub explanation: String,
    /// The three set-ups (title, how), when the Pi does not see the household's traffic.
    pub remedies: Vec<(&'static str, &'static str)>,
    /// The numbers behind the verdict.
    pub facts: Vec<(&'static str, String)>,
    pub doc: &'static str,
}

impl PlacementCard {
    /// The running capture's verdict (or, when nothing captures, a card that says so).
    pub fn of(state: &AppState) -> PlacementCard {
        let doc = crate::placement::INSTALL_DOC;
        let Some((o, v)) = super::api::system::placement(state) else {
            return PlacementCard {
                ok: false,
                headline: "This server does not capture, so it cannot tell where it sits.".into(),
                explanation: String::new(),
                remedies: Vec::new(),
                facts: Vec::new(),
                doc,
            };
        };
        let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
        let facts = vec![
            ("Listening on", o.interface.clone()),
            (
                "Observed over the last",
                crate::placement::spoken(o.listened),
            ),
            ("Frames", o.seen.frames.to_string()),
            (
                "Other devices seen talking (not to or from the Pi)",
                o.seen.third_party_macs.to_string(),
            ),
            (
                "Devices sending their traffic to the Pi",
                o.seen.talking_to_us_macs.to_string(),
            ),
            (
                "The Pi forwards traffic (router)",
                yes(o.placement.forwarding),
            ),
            ("The Pi is a bridge", yes(o.placement.is_bridge)),
            ("A port of a bridge", yes(o.placement.is_bridge_port)),
            ("In networking terms", v.summary),
        ];
        PlacementCard {
            ok: v.sees_household,
            headline: v.headline,
            explanation: v.explanation,
            remedies: v.remedies.iter().map(|r| (r.title, r.how)).collect(),
            facts,
            doc,
        }
    }
}

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

pub async fn page(
    State(state): State<AppState>,
    Extension(auth): Extension<Auth>,
) -> Result<SystemPage, AppError> {
    let db = state.db_path().to_path_buf();
    let host_db = db.clone();
    let backups = state.config().backup_dir_path();
    let (host, damage, damage_offer) = tokio::task::spawn_blocking(move || {
        use crate::store::{backup, damage};
        let events = damage::unresolved(&backup::real_path(&host_db));
        // Checking every backup reads them whole: only when there is damage to offer one for.
        let offer = match events.is_empty() {
            true => String::new(),
            false => match backup::newest_good(&backups) {
                Ok(p) => format!("The newest good backup is {}.", p.display()),
                Err(e) => e.to_string(),
            },
        };
        let events = events.iter().map(|e| e.summary()).collect::<Vec<_>>();
        (crate::system::host::read(&host_db), events, offer)
    })
    .await
    .map_err(|e| AppError::internal(format!("reading the host: {e}")))?;
    let starts = state.db(|s| s.level_starts()).await?;
    let tz = state.config().time_zone();
    let schema = state.db(|s| s.schema_version()).await?;
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    let mut rows = vec![
        (
            "Host",
            host.host_name.clone().unwrap_or_else(|| "unknown".into()),
        ),
        (
            "CPU",
            match host.cpu_percent {
                Some(c) => format!(
                    "{c:.0} % of {} cores{}",
                    host.cpus,
                    host.load1
                        .map(|l| format!(" · load {l:.2}"))
                        .unwrap_or_default()
                ),
                None => "not readable here".into(),
            },
        ),
        (
            "Memory",
            format!(
                "{} of {} used ({:.0} %)",
                fmt_bytes(host.memory_used),
                fmt_bytes(host.memory_total),
                pct(host.memory_used, host.memory_total)
            ),
        ),
        (
            "Disk (database)",
            match host.disk {
                Some((avail, total)) => format!(
                    "{} free of {} ({:.0} % used)",
                    fmt_bytes(avail),
                    fmt_bytes(total),
                    pct(total - avail.min(total), total)
                ),
                None => "not readable here".into(),
            },
        ),
        (
            "CPU temperature",
            host.cpu_temp_c
                .map_or_else(|| "no sensor found".into(), |t| format!("{t:.0} °C")),
        ),
        (
            "System uptime",
            host.uptime_secs
                .map_or_else(|| "unknown".into(), fmt_duration),
        ),
        ("lanmeter running for", fmt_duration(state.running_secs())),
        ("Version", format!("lanmeter {}", crate::VERSION)),
    ];
    if let Some(d) = state.demo() {
        rows.push(("Mode", d.to_string()));
    }
    let t = state.telemetry();
    let reload = t.config_status();
    if let Some(at) = reload.reloaded_at {
        rows.push((
            "Configuration",
            match (&reload.error, reload.needs_restart.is_empty()) {
                (Some(e), _) => format!(
                    "reload at {at} refused, the previous configuration stays in force: {e}"
                ),
                (None, true) => format!("reloaded at {at}"),
                (None, false) => format!(
                    "reloaded at {at}; takes effect at the next restart: {}",
                    reload.needs_restart.join(", ")
                ),
            },
        ));
    }
    if let Some(c) = t.clock() {
        rows.push((
            "Clock",
            format!(
                "{} ({} held for {} devices)",
                c.reason,
                fmt_bytes(c.held_bytes),
                c.held_devices
            ),
        ));
    }
    let t = state.telemetry();
    let capture = match t.capture() {
        Some(s) => {
            vec![
                ("State", t.capture_state().unwrap_or_default()),
                ("Interface", t.capture_interface().unwrap_or_default()),
                ("Frames seen", s.frames_seen.to_string()),
                ("Bytes seen (wire)", fmt_bytes(s.wire_bytes_seen)),
                (
                    "Frames without a readable header",
                    s.frames_undecodable.to_string(),
                ),
                ("Kernel: received", s.pcap_received.to_string()),
                (
                    "Kernel: dropped (capture buffer full)",
                    s.pcap_dropped.to_string(),
                ),
                ("Interface/driver dropped", s.pcap_if_dropped.to_string()),
                ("Read errors", s.read_errors.to_string()),
                ("Gaps (interface down or unplugged)", fmt_gaps(&s)),
            ]
        }
        None => vec![(
            "Interface",
            if state.demo().is_some() {
                "none: demo household with synthetic traffic".into()
            } else {
                "none: this server does not capture".into()
            },
        )],
    };
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    let storage = vec![
        ("Database", db.display().to_string()),
        (
            "Size",
            format!(
                "{} (+ {} write-ahead log)",
                fmt_bytes(file_len(&db)),
                fmt_bytes(file_len(&wal))
            ),
        ),
        ("History kept", history_kept(&starts, &tz)),
        ("Schema version", schema.to_string()),
    ];
    let (router, coverage_days) = router_section(&state).await?;
    Ok(SystemPage {
        placement: PlacementCard::of(&state),
        layout: Layout::new("System", "system", Some(&auth)),
        router,
        coverage_days,
        rows,
        capture,
        storage,
        damage,
        damage_offer,
    })
}

/// Days shown in the System page's coverage chart.
const COVERAGE_DAYS: i64 = 14;

/// The router poller's status and the coverage of each of the last days.
async fn router_section(
    state: &AppState,
) -> Result<(Vec<(&'static str, String)>, Vec<(String, String, String)>), AppError> {
    let tz = state.config().time_zone();
    // The devices' bytes reach the database at each flush, the router's at each poll.
    let now = state.now() - i64::try_from(2 * state.config().flush_interval_secs).unwrap_or(0);
    let source = state.config().router_source;
    let (status, days, unseen) = state
        .db(move |s| {
            let status = crate::router::coverage::status(s)?;
            let unseen = match crate::router::coverage::today(&tz, now) {
                Some((from, to)) => {
                    crate::router::coverage::not_visible(s, &tz, from, to).unwrap_or_default()
                }
                None => Vec::new(),
            };
            let mut days = Vec::new();
            if let Some((mut from, to)) = crate::router::coverage::today(&tz, now) {
                let mut to = to;
                for _ in 0..COVERAGE_DAYS {
                    if let Ok(r) = crate::router::coverage::coverage(s, &tz, from, to)
                        && r.router_polls > 0
                    {
                        let day = from.to_zoned(tz.clone()).date().to_string();
                        days.push((day, r));
                    }
                    to = from;
                    match from
                        .to_zoned(tz.clone())
                        .yesterday()
                        .and_then(|z| z.start_of_day())
                    {
                        Ok(z) => from = z.timestamp(),
                        Err(_) => break,
                    }
                }
            }
            Ok((status, days, unseen))
        })
        .await?;
    let mut facts: Vec<(&'static str, String)> =
        vec![("Source setting", format!("{source:?}").to_lowercase())];
    if !unseen.is_empty() {
        // Heard today (ARP, DHCP, mDNS) but never a unicast frame to them: a few names say
        // more than a count, and the API has the whole list.
        const LISTED: usize = 8;
        let mut names: Vec<String> = unseen
            .iter()
            .take(LISTED)
            .map(|d| match &d.name {
                Some(n) => format!("{n} ({})", d.mac),
                None => d.mac.clone(),
            })
            .collect();
        if unseen.len() > LISTED {
            names.push(format!("and {} more", unseen.len() - LISTED));
        }
        facts.push(("Not visible from where the Pi is (today)", names.join(", ")));
    }
    if let Some(st) = status {
        facts.push(("State", st.state.clone()));
        if let Some(r) = &st.router {
            facts.push((
                "Router",
                format!("{} ({})", r, st.source.as_deref().unwrap_or("")),
            ));
        }
        if let Some(m) = &st.message {
            facts.push(("Note", m.clone()));
        }
        facts.push((
            "Counted since start",
            format!(
                "{} up, {} down",
                fmt_bytes(st.counted_bytes_up),
                fmt_bytes(st.counted_bytes_down)
            ),
        ));
        facts.push((
            "Counter events",
            format!(
                "{} wraps, {} resets, {} stuck readings",
                st.wraps, st.resets, st.stuck_polls
            ),
        ));
    }
    let days = days
        .into_iter()
        .map(|(day, r)| {
            let text = match r.percent {
                Some(p) => format!(
                    "{p:.0} % (router {} · lanmeter {})",
                    fmt_bytes(r.router_bytes_up + r.router_bytes_down),
                    fmt_bytes(r.lanmeter_bytes_up + r.lanmeter_bytes_down)
                ),
                None => r.reason.unwrap_or_default(),
            };
            (day, text, super::charts::share(r.percent.unwrap_or(0.0)))
        })
        .collect();
    Ok((facts, days))
}

/// "none", or how many gaps, their total length, and whether one is going on now.
fn fmt_gaps(s: &crate::capture::CaptureStatsSnapshot) -> String {
    if s.link_gaps == 0 {
        return "none".into();
    }
    let total = if s.link_gap_millis < 120_000 {
        format!("{:.1} s", s.link_gap_millis as f64 / 1000.0)
    } else {
        fmt_duration(s.link_gap_millis / 1000)
    };
    let mut out = format!("{} ({total} uncounted in total)", s.link_gaps);
    if let Some(since) = s
        .link_down_since
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
    {
        out.push_str(&format!("; down now, since {since}"));
    }
    out
}

/// How far back each level of the history reaches, finest first: what the retention settings
/// keep (the oldest stored minute, hour, day and month, as local dates).
fn history_kept(starts: &[Option<i64>; 4], tz: &jiff::tz::TimeZone) -> String {
    let names = ["minutes", "hours", "days", "months"];
    let parts: Vec<String> = names
        .iter()
        .zip(starts)
        .filter_map(|(name, start)| {
            let s = (*start)?;
            let date = super::view::fmt_local(s, tz);
            Some(format!(
                "{name} since {}",
                date.split(' ').next().unwrap_or(&date)
            ))
        })
        .collect();
    if parts.is_empty() {
        "nothing stored yet".into()
    } else {
        parts.join(", ")
    }
}
