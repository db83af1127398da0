//! Command-line definitions (clap) and nothing else: parsing lives here, behaviour in `app`.

use crate::model::{IpPrefix, MacAddr};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "lanmeter",
    version,
    about = "Household network usage monitor: bytes per device, history, alerts"
)]
pub struct Cli {
    /// Configuration file (default: /etc/lanmeter/lanmeter.toml when it exists, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture live on the configured (or default-route) interface and keep history in SQLite.
    Run(RunArgs),
    /// Validate the configuration and print the effective settings.
    CheckConfig,
    /// Print stored history, one row per device and bucket (SPEC §3).
    Export(ExportArgs),
    /// Write a synthetic household capture (for demos, tests and benchmarks) and, optionally,
    /// the per-device totals it was built with.
    Generate(GenerateArgs),
    /// Read a capture file through the same decoding and counting code as live capture and print
    /// per-device totals.
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// A pcap or pcapng file with Ethernet or Linux cooked framing.
    pub file: PathBuf,
    /// A LAN prefix (repeatable), in addition to the private and link-local ranges.
    #[arg(long = "lan", value_name = "CIDR")]
    pub lan: Vec<IpPrefix>,
    /// The router's MAC; without it the MAC carrying the most non-local traffic is taken.
    #[arg(long, value_name = "MAC")]
    pub gateway: Option<MacAddr>,
    /// Print one JSON array (SPEC §3) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write minute buckets and devices into this SQLite database, as the daemon would.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Bound on MACs tracked per minute before the least active are folded into "other".
    #[arg(long, value_name = "N", default_value_t = crate::meter::DEFAULT_MAX_DEVICES)]
    pub max_devices: usize,
    /// Read an 802.11 capture (radiotap, from a monitor-mode interface) and print the Wi-Fi
    /// survey as JSON: access points, channels, probing clients, channel recommendation. With
    /// --db the survey is stored and the printed JSON is read back from the database.
    #[arg(long)]
    pub survey: bool,
    /// With --survey: the household's own network name, marked as "ours" and not counted as
    /// interference in the recommendation.
    #[arg(long, value_name = "SSID", requires = "survey")]
    pub ssid: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Capture on this interface instead of the configured or default-route one.
    #[arg(long, short = 'i', value_name = "IFACE")]
    pub interface: Option<String>,
    /// Use this database instead of the configured one.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The database to read (default: the configured one).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Bucket size: minute, hour, day or month (in the household time zone).
    #[arg(long, default_value = "hour")]
    pub period: crate::store::export::Period,
    /// Start of the range (RFC 3339, or a local date/time such as 2026-03-01 or 2026-03-01T08:00).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the range, exclusive.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// json (one array) or csv (with a header line).
    #[arg(long, default_value = "json")]
    pub format: crate::store::export::Format,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The pcap file to write.
    pub file: PathBuf,
    /// Number of frames.
    #[arg(long, default_value_t = 1_000_000)]
    pub frames: u64,
    /// Same seed, same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Household devices (the router not included).
    #[arg(long, default_value_t = 25)]
    pub devices: usize,
    /// Seconds the capture spans, with a day/night rhythm.
    #[arg(long, default_value_t = 86_400)]
    pub duration_secs: u64,
    /// Write the totals the generator kept (SPEC §3 JSON shape) to this file.
    #[arg(long, value_name = "FILE")]
    pub expected: Option<PathBuf>,
    /// Instead of a household, write a flood from this many random source MACs (memory tests).
    #[arg(long, value_name = "N")]
    pub flood_macs: Option<u64>,
}
