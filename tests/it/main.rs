//! The integration tests: one binary, one module per area.
//!
//! Live tests need root (network namespaces, CAP_NET_RAW); CI and the dev machines run as root.
//! `daemon` and `cli_errors` drive the real `lanmeter` binary, as a person or systemd would.

mod alerts;
mod api;
mod browser;
mod capture_files;
mod cli_errors;
mod corpus;
mod daemon;
mod daemon_in_process;
mod damage;
mod dashboard;
mod devices;
mod discovery;
mod doctor;
mod endpoints;
mod hardening;
mod history;
mod household;
mod internet;
mod live;
mod mqtt;
mod multisite;
mod names;
mod netns;
mod pi_realities;
mod plan;
mod router;
mod security;
mod services_pages;
mod settings;
mod survey;
mod web_cli;
mod welcome;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `lanmeter` binary cargo built for these tests.
pub const LANMETER: &str = env!("CARGO_BIN_EXE_lanmeter");

/// The capture corpus the repository carries (`tests/data/pcaps`: tcpdump's own test captures,
/// with their licence and provenance), or the folder `LANMETER_PCAPS` names. A missing corpus
/// fails the test that needs it: those tests are never skipped.
pub fn pcap_corpus() -> PathBuf {
    let dir = match std::env::var_os("LANMETER_PCAPS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcaps"),
    };
    assert!(
        dir.join("INDEX.tsv").is_file(),
        "the capture corpus is missing: {} has no INDEX.tsv (it is part of the repository; \
         restore tests/data/pcaps from git, or point LANMETER_PCAPS at a copy)",
        dir.display()
    );
    dir
}

/// Clears what a developer's shell could leak into a child `lanmeter` and change what a test
/// sees: `LANMETER_*` overrides of config keys, the log filter and journald detection; and
/// turns the internet probes off (see below).
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LANMETER_") {
            cmd.env_remove(&k);
        }
    }
    // No internet probes unless a test asks for them: a daemon in the host's own namespace
    // would otherwise ping the real gateway and internet hosts. No router search either (its
    // SSDP queries are frames on the captured interface, which tests count exactly); a test
    // that names `router_source` in its config gets it (`daemon::Daemon` lifts this).
    cmd.env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env("LANMETER_INTERNET_PROBE_INTERVAL_SECS", "0")
        .env("LANMETER_ROUTER_SOURCE", "off")
}

/// Sends the library's logs to the test output (shown with `--nocapture` or on failure);
/// `RUST_LOG` picks the level, `info` by default.
pub fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
