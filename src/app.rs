//! Wiring and lifecycle: turns a parsed command line into running parts and exit codes.
//!
//! This is the only place (with main) where `anyhow` is used, to add the context a person needs
//! ("replaying FILE"). Nothing imports `app`.

use crate::cli::{Cli, Command, ReplayArgs};
use crate::replay::{self, ReplayOptions};
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;

/// Logs go to stderr (journald under systemd), filtered by `RUST_LOG` (default `info`). Under
/// systemd (JOURNAL_STREAM set) journald adds timestamps, so ours are left out.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => run_replay(args),
    }
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let opts = ReplayOptions {
        lan: args.lan.clone(),
        gateway: args.gateway,
        max_devices: args.max_devices,
    };
    let result = replay::replay(&args.file, &opts, |_, _| {
        Ok::<(), std::convert::Infallible>(())
    })
    .with_context(|| format!("replaying {}", args.file.display()))?
    .unwrap_or_else(|e| match e {});
    if result.other.entries_evicted > 0 {
        tracing::warn!(
            entries = result.other.entries_evicted,
            bytes = result.other.counts.bytes_sent,
            "the per-minute device bound was reached; the least active MACs were folded into 'other' (raise --max-devices if this is a real network)"
        );
    }
    let out = if args.json {
        replay::to_json(&result) + "\n"
    } else {
        replay::to_table(&result)
    };
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing the replay output")?;
    if let Some(e) = result.truncated {
        eprintln!("lanmeter: error: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
