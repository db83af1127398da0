//! The integration tests: one binary, one module per area.
//!
//! Live tests need root (network namespaces, CAP_NET_RAW); CI and the dev machines run as root.
//! `daemon` and `cli_errors` drive the real `lanmeter` binary, as a person or systemd would.

mod alerts;
mod api;
mod browser;
mod cli_errors;
mod corpus;
mod daemon;
mod dashboard;
mod devices;
mod discovery;
mod doctor;
mod history;
mod household;
mod live;
mod mqtt;
mod netns;
mod pi_realities;
mod plan;
mod survey;
mod web_cli;

use std::process::Command;

/// The `lanmeter` binary cargo built for these tests.
pub const LANMETER: &str = env!("CARGO_BIN_EXE_lanmeter");

/// Clears what a developer's shell could leak into a child `lanmeter` and change what a test
/// sees: `LANMETER_*` overrides of config keys, the log filter and journald detection.
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LANMETER_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("RUST_LOG").env_remove("JOURNAL_STREAM")
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
