//! `/api/v1/system` (is lanmeter healthy: storage, flushes, capture, database) and
//! `/api/v1/capture` (the capture counters alone), from the daemon's telemetry and the store.

use super::error::ApiError;
use crate::web::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The capture thread's counters since the daemon started.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CaptureReport {
    /// False when this server captures nothing (no daemon); the counters are then zero.
    pub running: bool,
    /// What capture does now: "capturing on eth0", "waiting for interface wlan0" (it does not
    /// exist yet or vanished), "link down on eth0 since …"; empty without a daemon.
    pub state: String,
    /// The interface captured on or waited for now.
    pub interface: String,
    /// True while the interface is missing and waited for (nothing is counted).
    pub waiting: bool,
    pub frames_seen: u64,
    pub frames_decoded: u64,
    pub frames_undecodable: u64,
    pub wire_bytes_seen: u64,
    pub read_errors: u64,
    /// Frames the kernel passed to the capture socket.
    pub kernel_received: u64,
    /// Frames the kernel dropped because the capture buffer was full.
    pub kernel_dropped: u64,
    /// Frames the interface or its driver dropped.
    pub interface_dropped: u64,
    /// Times the interface went down, lost its carrier or vanished (its traffic meanwhile was not counted).
    pub link_gaps: u64,
    /// Total length of the gaps that have ended, in seconds.
    pub link_gap_seconds: f64,
    /// While the interface is down: since when (RFC 3339).
    pub link_down_since: Option<String>,
}

pub fn capture_report(state: &AppState) -> CaptureReport {
    match state.telemetry().capture() {
        None => CaptureReport::default(),
        Some(s) => CaptureReport {
            running: true,
            state: state.telemetry().capture_state().unwrap_or_default(),
            interface: state.telemetry().capture_interface().unwrap_or_default(),
            waiting: state.telemetry().capture_waiting(),
            frames_seen: s.frames_seen,
            frames_decoded: s.frames_decoded,
            frames_undecodable: s.frames_undecodable,
            wire_bytes_seen: s.wire_bytes_seen,
            read_errors: s.read_errors,
            kernel_received: s.pcap_received,
            kernel_dropped: s.pcap_dropped,
            interface_dropped: s.pcap_if_dropped,
            link_gaps: s.link_gaps,
            link_gap_seconds: s.link_gap_millis as f64 / 1000.0,
            link_down_since: s
                .link_down_since
                .and_then(|t| jiff::Timestamp::from_second(t).ok())
                .map(|t| t.to_string()),
        },
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StorageReport {
    /// Flushes reach the database.
    pub ok: bool,
    pub last_flush_ok: Option<String>,
    pub failing_since: Option<String>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub disk_full: bool,
    /// (device, minute) rows waiting in memory.
    pub pending_rows: u64,
    /// Minute rows merged into coarser ones to bound memory during an outage.
    pub folded_rows: u64,
    /// A damaged database found at start and moved aside to this path.
    pub moved_aside: Option<String>,
    pub last_maintenance: Option<String>,
    pub last_backup: Option<String>,
    pub last_backup_error: Option<String>,
    pub flushes: u64,
    pub flush_seconds_total: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemReport {
    pub version: String,
    pub schema_version: i64,
    pub time_zone: String,
    pub now: String,
    /// When the daemon started (absent without one).
    pub started_at: Option<String>,
    /// Database file plus its write-ahead log, in bytes.
    pub database_bytes: u64,
    pub devices: u64,
    pub storage: StorageReport,
    pub capture: CaptureReport,
    pub config: ConfigReport,
    /// Why the clock is not trusted yet (traffic is held until it is); absent while it is.
    pub clock_untrusted: Option<String>,
}

/// The last configuration reload (SIGHUP).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ConfigReport {
    pub reloaded_at: Option<String>,
    /// Why the last reload was refused; the previous configuration stays in force.
    pub reload_error: Option<String>,
    /// Changed settings that take effect at the next restart.
    pub needs_restart: Vec<String>,
}

/// Bytes of the database file and its WAL (missing files count 0).
pub fn database_bytes(state: &AppState) -> u64 {
    let path = state.db_path();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path.to_path_buf(), wal.into()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// GET /api/v1/system
#[utoipa::path(
    get,
    path = "/api/v1/system",
    tag = "system",
    responses(
        (status = 200, description = "Health of storage, capture and database", body = SystemReport),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn health(State(state): State<AppState>) -> Result<Json<SystemReport>, ApiError> {
    let (schema_version, devices) = state
        .db(|s| Ok((s.schema_version()?, s.list_devices()?.len() as u64)))
        .await?;
    let t = state.telemetry();
    let h = t.health().snapshot();
    let flush = t.flush_duration();
    let ts = |x: Option<jiff::Timestamp>| x.map(|t| t.to_string());
    Ok(Json(SystemReport {
        version: crate::VERSION.to_string(),
        schema_version,
        time_zone: state
            .config()
            .time_zone()
            .iana_name()
            .unwrap_or("(system)")
            .to_string(),
        now: super::time_s(state.now()),
        started_at: ts(t.started()),
        database_bytes: database_bytes(&state),
        devices,
        storage: StorageReport {
            ok: h.consecutive_failures == 0,
            last_flush_ok: ts(h.last_flush_ok),
            failing_since: ts(h.failing_since),
            consecutive_failures: h.consecutive_failures,
            last_error: h.last_error,
            disk_full: h.disk_full,
            pending_rows: h.pending_rows as u64,
            folded_rows: h.folded_rows,
            moved_aside: h.moved_aside.map(|p| p.display().to_string()),
            last_maintenance: ts(h.last_maintenance),
            last_backup: h.last_backup.map(|(t, _)| t.to_string()),
            last_backup_error: h.last_backup_error,
            flushes: flush.count,
            flush_seconds_total: flush.sum_seconds,
        },
        capture: capture_report(&state),
        config: {
            let c = t.config_status();
            ConfigReport {
                reloaded_at: ts(c.reloaded_at),
                reload_error: c.error,
                needs_restart: c.needs_restart,
            }
        },
        clock_untrusted: t.clock().map(|c| c.reason),
    }))
}

/// GET /api/v1/capture
#[utoipa::path(
    get,
    path = "/api/v1/capture",
    tag = "system",
    responses(
        (status = 200, description = "Capture counters", body = CaptureReport),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn capture(State(state): State<AppState>) -> Json<CaptureReport> {
    Json(capture_report(&state))
}

/// One of the three set-ups in which the Pi sees the household's traffic.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RemedyReport {
    pub title: String,
    pub how: String,
}

/// Where the Pi sits and whether it sees the household's traffic: the verdict of
/// `lanmeter doctor`, made from what the running capture saw in the last 30 to 60 minutes
/// (since it started, at first).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VisibilityReport {
    /// False when this server captures nothing (no running daemon): nothing to judge.
    pub available: bool,
    /// The likely set-up: `mirror` (a switch's mirror port or a hub), `bridge` (this machine
    /// bridges the LAN: Wi-Fi access point), `router` (this machine routes), `bridge_port` (a
    /// port of a bridge: part of the traffic only), `only_itself` (its own traffic only),
    /// `silent` (no frames yet); `unknown` when not available.
    pub setup: String,
    /// Whether lanmeter counts the household's traffic from here, not only its own.
    pub sees_household: bool,
    /// One sentence for a household.
    pub headline: String,
    /// What the Pi saw, in household words with its numbers.
    pub explanation: String,
    /// What was observed, in networking terms (the line `lanmeter doctor` prints).
    pub summary: String,
    /// What to change, in one line, when something should change.
    pub fix: Option<String>,
    /// The set-ups of docs/INSTALL.md, when the Pi does not see the household's traffic.
    pub remedies: Vec<RemedyReport>,
    /// The interface captured on.
    pub interface: String,
    /// How long the verdict's observations cover, in seconds (at most an hour).
    pub listened_seconds: f64,
    pub frames: u64,
    /// Other devices seen in unicast traffic neither to nor from this machine (nor from the
    /// router): proof that the capture sees the household's conversations.
    pub other_devices_seen: u64,
    /// Other devices (not the router) that sent unicast traffic to this machine.
    pub devices_talking_to_this_machine: u64,
    pub is_bridge: bool,
    pub is_bridge_port: bool,
    /// This machine forwards IP packets (routes).
    pub forwarding: bool,
    pub promiscuous: bool,
    /// The share (0–1) of the bytes the router itself counted that lanmeter saw too; absent
    /// while the router's own counters are not known.
    pub coverage: Option<f64>,
}

/// The verdict from the running capture's tally, `None` when this server captures nothing.
pub fn placement(
    state: &AppState,
) -> Option<(crate::placement::Observed, crate::placement::Verdict)> {
    let mut o = state
        .telemetry()
        .visibility()?
        .observed(state.config().promiscuous);
    o.coverage = state.telemetry().coverage();
    let v = crate::placement::verdict(&o);
    Some((o, v))
}

pub fn visibility_report(state: &AppState) -> VisibilityReport {
    let Some((o, v)) = placement(state) else {
        return VisibilityReport {
            available: false,
            setup: "unknown".into(),
            sees_household: false,
            headline: "This server does not capture, so there is nothing to judge.".into(),
            explanation: String::new(),
            summary: String::new(),
            fix: None,
            remedies: Vec::new(),
            interface: String::new(),
            listened_seconds: 0.0,
            frames: 0,
            other_devices_seen: 0,
            devices_talking_to_this_machine: 0,
            is_bridge: false,
            is_bridge_port: false,
            forwarding: false,
            promiscuous: state.config().promiscuous,
            coverage: None,
        };
    };
    VisibilityReport {
        available: true,
        setup: v.setup.as_str().into(),
        sees_household: v.sees_household,
        headline: v.headline,
        explanation: v.explanation,
        summary: v.summary,
        fix: v.fix,
        remedies: v
            .remedies
            .iter()
            .map(|r| RemedyReport {
                title: r.title.into(),
                how: r.how.into(),
            })
            .collect(),
        interface: o.interface,
        listened_seconds: o.listened.as_secs_f64(),
        frames: o.seen.frames,
        other_devices_seen: o.seen.third_party_macs as u64,
        devices_talking_to_this_machine: o.seen.talking_to_us_macs as u64,
        is_bridge: o.placement.is_bridge,
        is_bridge_port: o.placement.is_bridge_port,
        forwarding: o.placement.forwarding,
        promiscuous: o.placement.promiscuous,
        coverage: o.coverage,
    }
}

/// GET /api/v1/visibility
#[utoipa::path(
    get,
    path = "/api/v1/visibility",
    tag = "system",
    responses(
        (status = 200, description = "Where the Pi sits and whether it sees the household's traffic", body = VisibilityReport),
        (status = 401, description = "Not logged in and no valid token", body = super::ErrorBody),
    )
)]
pub async fn visibility(State(state): State<AppState>) -> Json<VisibilityReport> {
    Json(visibility_report(&state))
}
