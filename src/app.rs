//! Wiring and lifecycle: turns a parsed command line into running parts and exit codes.
//!
//! This is the only place (with main) where `anyhow` is used, to add the context a person needs
//! ("replaying FILE"). Nothing imports `app`.

use crate::cli::{Cli, Command, ExportArgs, GenerateArgs, ReplayArgs, RunArgs};
use crate::config::Config;
use crate::flush::Flusher;
use crate::replay::{self, ReplayOptions};
use crate::store::Store;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Logs go to stderr (journald under systemd), filtered by `RUST_LOG` (default `info`). Under
/// systemd (JOURNAL_STREAM set) journald adds timestamps, so ours are left out.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Run(args) => run_daemon(config, args),
        Command::CheckConfig => {
            let cfg = load_config(config)?;
            print!("{}", cfg.to_toml_string()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => run_export(config, args),
        Command::Generate(args) => run_generate(args),
    }
}

fn run_generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    use crate::demo;
    if let Some(macs) = args.flood_macs {
        demo::write_mac_flood_pcap(&args.file, args.seed, args.frames, macs)?;
        println!(
            "{}: {} frames from {} random source MACs",
            args.file.display(),
            args.frames,
            macs
        );
        return Ok(ExitCode::SUCCESS);
    }
    let opts = demo::GenOptions {
        seed: args.seed,
        frames: args.frames,
        duration_secs: args.duration_secs,
        devices: args.devices,
        ..Default::default()
    };
    let expected = demo::write_household_pcap(&args.file, &opts)?;
    if let Some(path) = &args.expected {
        let json = serde_json::to_string_pretty(&expected.to_json())?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing expected totals to {}", path.display()))?;
    }
    println!(
        "{}: {} frames, {} MACs, gateway {}",
        args.file.display(),
        expected.frames,
        expected.devices.len(),
        expected.gateway
    );
    Ok(ExitCode::SUCCESS)
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

fn run_daemon(config: Option<&Path>, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = load_config(config)?;
    if args.interface.is_some() {
        cfg.interface = args.interface;
    }
    if args.db.is_some() {
        cfg.database = args.db;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    crate::daemon::run(cfg, stop)?;
    Ok(ExitCode::SUCCESS)
}

fn run_export(config: Option<&Path>, args: ExportArgs) -> anyhow::Result<ExitCode> {
    use crate::store::export;
    let cfg = load_config(config)?;
    let tz = cfg.time_zone();
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    // open_existing: a mistyped --db must be an error, not a new empty database.
    let store = Store::open_existing(&db)?;
    let from = args.from.map(|s| export::parse_time(&s, &tz)).transpose()?;
    let to = args.to.map(|s| export::parse_time(&s, &tz)).transpose()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    export::export(&store, args.period, from, to, &tz, args.format, &mut out)?;
    out.flush().context("writing the export")?;
    Ok(ExitCode::SUCCESS)
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.survey {
        return run_survey_replay(args);
    }
    let mut opts = ReplayOptions {
        lan: args.lan.clone(),
        gateway: args.gateway,
        max_devices: args.max_devices,
    };
    let result = match &args.db {
        None => replay::replay(&args.file, &opts, |_, _| {
            Ok::<(), std::convert::Infallible>(())
        })
        .with_context(|| format!("replaying {}", args.file.display()))?
        .unwrap_or_else(|e| match e {}),
        Some(db) => {
            // Minute rows are written as the file is read, so the gateway must be known before
            // the first one: without --gateway a first pass finds it.
            if opts.gateway.is_none() {
                opts.gateway = replay::infer_gateway(&args.file, &opts)
                    .with_context(|| format!("replaying {}", args.file.display()))?;
            }
            let store =
                Store::open(db).with_context(|| format!("opening database {}", db.display()))?;
            let mut flusher = Flusher::new(store);
            let interval = std::time::Duration::from_secs(10);
            replay::replay(&args.file, &opts, |delta, _| {
                crate::daemon::flush_delta(&mut flusher, delta, interval)
            })
            .with_context(|| format!("replaying {}", args.file.display()))?
            .with_context(|| format!("writing to {}", db.display()))?
        }
    };
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

/// `replay --survey`: an 802.11 capture through the survey decoder into a collector, printed as
/// JSON (read back from the database when `--db` is given, so the stored form is what prints).
fn run_survey_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    use crate::capture::file::{FileError, WifiFileSource};
    use crate::survey::Collector;
    let mut src = WifiFileSource::open(&args.file)
        .with_context(|| format!("surveying {}", args.file.display()))?;
    let mut collector = Collector::new();
    let truncated = match src.run(&mut collector) {
        Ok(_) => None,
        Err(e @ FileError::Truncated { .. }) => Some(e),
        Err(e) => {
            return Err(e).with_context(|| format!("surveying {}", args.file.display()));
        }
    };
    if collector.refused > 0 {
        tracing::warn!(
            refused = collector.refused,
            "more access points, clients or channel minutes than the survey keeps: the excess was dropped (a beacon or probe flood?)"
        );
    }
    let survey = match &args.db {
        None => collector.survey(),
        Some(db) => {
            let mut store =
                Store::open(db).with_context(|| format!("opening database {}", db.display()))?;
            store
                .write_survey(&collector)
                .with_context(|| format!("writing the survey to {}", db.display()))?;
            crate::store::survey::survey(&store, None, None)
                .with_context(|| format!("reading the survey back from {}", db.display()))?
        }
    };
    let json = survey.to_json(args.ssid.as_deref().map(str::as_bytes));
    // Serialising plain strings and numbers cannot fail.
    let out = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing the survey output")?;
    if let Some(e) = truncated {
        eprintln!("lanmeter: error: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
