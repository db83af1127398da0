//! lanmeter: a household network usage monitor.
//!
//! The crate map, one line per module (arrows in STYLE.md: `main → app → everything`):
//! - [`config`]: the typed configuration: defaults, TOML file, `LANMETER_*` overrides, `validate()`.
//! - [`model`]: plain domain types (MAC addresses, counters, timestamps).
//! - [`capture`]: packet sources (live libpcap, capture files, frames in memory) behind one
//!   `PacketSource` seam and one capture loop, and the pure frame decoder.
//! - [`discovery`]: who is on the LAN: route/gateway/prefix detection, passive learners (ARP,
//!   DHCP, mDNS, NDP), the ARP sweep, OUI vendors, device type guess.
//! - [`meter`]: the bounded per-MAC counter map the packet path writes into.
//! - [`endpoints`]: opt-in internet bytes per (device, remote address), bounded per device
//!   (Space-Saving with exact counts), and the stored text form of a remote.
//! - [`placement`]: where the Pi sits and whether it sees the household's traffic: the one
//!   visibility verdict (doctor, daemon, System page, wizard, API) and the tally behind it.
//! - [`plan`]: the household data plan (pure): billing cycles, budgets, projection, calibration,
//!   quotas and the plan/quota alert situations.
//! - [`store`]: the SQLite database (the only rusqlite user): migrations, devices, minute usage,
//!   rollups and retention, history queries, export, backup/restore, storage health.
//! - [`clock`]: clock sanity: traffic stamped before the clock is trusted is filed under the
//!   first trusted minute.
//! - [`flush`]: the one flush path: a meter delta into minute rows and one store transaction,
//!   kept pending until written (the daemon, the demo and replay all use it).
//! - [`daemon`]: the live run's lifecycle: open its inputs, start the threads, tick the
//!   schedules, stop them in order and flush what is left.
//! - [`run`]: what the live run starts or schedules, one small type each: flushing, watchdog,
//!   gateway recheck, maintenance and backups, SIGHUP reload, the discovery, Wi-Fi survey,
//!   MQTT and router-counter threads.
//! - [`router`]: the router's own WAN counters (UPnP IGD by SSDP, FRITZ!Box `GetAddonInfos`,
//!   SNMP IF-MIB), wraps, resets and stuck counters, and the coverage figure.
//! - [`replay`]: capture files through the same decoder and meter, rendered as JSON or a table,
//!   or written into a database through the same flush path.
//! - [`survey`]: the Wi-Fi survey from a monitor-mode adapter: access points, channels, probing
//!   clients, and the channel recommendation.
//! - [`demo`]: the synthetic household capture generator and its expected per-MAC totals.
//! - [`alerts`]: rules, the alert engine (dedup, cooldown, lifecycle), the durable outbox's
//!   delivery by email (lettre) and webhook, signed acknowledge links, the weekly summary.
//! - [`setup_code`]: the one-time first-run setup code beside the database, and its link.
//! - [`auth`]: password rules and argon2id hashes, tokens, roles, login throttling policy (pure).
//! - [`telemetry`]: run-time figures (capture counters, flush durations, storage health) for the
//!   API and `/metrics`.
//! - [`visible`]: the one display rule for device-supplied text (bidi, invisible, control
//!   characters spelled out), applied by every template's escaper.
//! - [`internet`]: internet quality from active probes: round classification, the outage log,
//!   per-minute loss and latency (the sockets in `internet::probe`, the thread in `run`).
//! - [`mqtt`]: Home Assistant over MQTT: discovery configs and state messages (the session; its
//!   threads are started in `run`).
//! - [`remote`]: Prometheus remote write: series built from the minute history with a `site`
//!   label, the protobuf + snappy request, the one POST (its thread is started in `run`).
//! - [`web`]: the web UI and its gate (axum + askama live only there): sessions, CSRF, pages.
//! - [`system`]: the host around lanmeter: systemd notify/watchdog, `lanmeter doctor`'s checks.
//! - [`cli`]: command-line definitions; [`app`]: wiring, lifecycle and exit codes.
/// This build's version: the Cargo version, with `+g<commit>` for a development build from a
/// git checkout (build.rs), so a report or bug says exactly which code ran.
pub const VERSION: &str = env!("LANMETER_VERSION");

pub mod alerts;
pub mod app;
pub mod auth;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod discovery;
pub mod endpoints;

pub mod flush;
pub mod internet;
pub mod meter;
pub mod model;
pub mod mqtt;
pub mod names;
pub mod placement;
pub mod plan;
pub mod remote;
pub mod replay;
pub mod router;
pub mod run;
pub mod setup_code;
pub mod store;
pub mod survey;
pub mod system;
pub mod telemetry;
pub mod visible;
pub mod web;
