//! Command-line definitions (clap) and nothing else: parsing lives here, behaviour in `app`.

use crate::model::{IpPrefix, MacAddr};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "lanmeter",
    version = crate::VERSION,
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
    /// Print stored history, one row per device and bucket (ACCOUNTING.md §4).
    Export(ExportArgs),
    /// Write a synthetic household capture (for demos, tests and benchmarks) and, optionally,
    /// the per-device totals it was built with.
    Generate(GenerateArgs),
    /// Read a capture file through the same decoding and counting code as live capture and print
    /// per-device totals.
    Replay(ReplayArgs),
    /// Read a capture file through the per-device services parsers (issue 29) and print the names
    /// learned: DNS answers, TLS and QUIC server names, and (device, remote IP) → name.
    Names(NamesArgs),
    /// Write a consistent copy of the database to FILE (safe while the daemon runs).
    Backup(BackupArgs),
    /// Replace the database with the backup FILE (stop the daemon first); the current database
    /// is kept next to it. `--list` shows the backups with their check results,
    /// `--latest-good` restores the newest good one, `--dismiss-damage` closes a damage alert.
    Restore(RestoreArgs),
    /// Set or reset the web admin password (or, with --viewer, the read-only viewer password).
    /// Reads it from the terminal, or one line from standard input when that is not a terminal.
    /// Every session of that role is logged out.
    Passwd(PasswdArgs),
    /// Clear the web login lockout of one client address, or of every address.
    Unlock(UnlockArgs),
    /// Check the installation (interface, capabilities, visible traffic, database, disk, clock,
    /// time zone, port) and say how to fix each problem. Exits 1 if a check fails.
    Doctor(DoctorArgs),
    /// List the devices in the database: names, vendors, types, addresses, presence.
    Devices(DevicesArgs),
    /// Create, list or revoke API tokens (for scripts, Prometheus, Home Assistant).
    Token(TokenArgs),
    /// Print the data plan's current billing cycle: used, remaining, safe budget for today,
    /// projection and quotas (the plan itself is set on the web page /plan/settings).
    Plan(PlanArgs),
    /// Build a synthetic household (about 25 devices, weeks of history, names and people) in a
    /// fresh database and serve the dashboard on it, with live synthetic traffic. It prints the
    /// first-run setup link (with its one-time code) that sets the admin password, as a real
    /// installation does.
    Demo(DemoArgs),
    /// Print the first-run setup link with its one-time code (made now if there is none) while
    /// no admin password is set; fails once setup is done.
    SetupLink(SetupLinkArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetupLinkArgs {
    /// The database whose setup is pending (default: the configured one); the code is kept
    /// beside it.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
    /// The database to use (default: the configured one).
    #[arg(long, value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print its secret (shown only this once).
    Create {
        /// What the token is for, e.g. "prometheus" or "home assistant".
        name: String,
        /// What the token may do: viewer (read only) or admin (read and change).
        #[arg(long, default_value = "viewer", value_parser = ["viewer", "admin"])]
        role: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by its id (from `lanmeter token list`).
    Revoke { id: i64 },
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The database to read (default: the configured one).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Print one JSON object (plan, status, quotas, days, past cycles) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The database to create; it must not exist yet.
    #[arg(long, value_name = "PATH", default_value = "data/demo.db")]
    pub db: PathBuf,
    /// Address to serve the dashboard on (default: the configured `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Household devices, the router not included.
    #[arg(long, default_value_t = 25, value_name = "N")]
    pub devices: usize,
    /// Days of history before now.
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub days: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Set the admin password from the first line of FILE instead of the first visit (for tests
    /// and benchmarks); without it the demo prints its first-run setup link.
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// Let anyone on the LAN (or this machine) look without a password (read-only), as the
    /// config key `anyone_on_lan_may_view` does.
    #[arg(long)]
    pub anyone_on_lan_may_view: bool,
    /// Build the database, print what was built and exit without serving.
    #[arg(long)]
    pub build_only: bool,
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy; must not exist yet.
    pub file: PathBuf,
    /// The database to copy (default: the configured one).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Set the viewer password (read-only access) instead of the admin password.
    #[arg(long)]
    pub viewer: bool,
    /// The database to change (default: the configured one).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A backup written by `lanmeter backup` or the nightly backup; with --list or
    /// --latest-good, the backup folder (default: the configured `backup_dir`).
    #[arg(required_unless_present_any = ["list", "latest_good", "dismiss_damage"])]
    pub file: Option<PathBuf>,
    /// The database to replace (default: the configured one).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// List the backups (newest first) with their date, size and SQLite quick_check verdict,
    /// and any unresolved damage of the database. Changes nothing.
    #[arg(long, conflicts_with_all = ["latest_good", "dismiss_damage"])]
    pub list: bool,
    /// Restore the newest nightly backup that passes the check (those written after a damage,
    /// which hold only the fresh history, are skipped).
    #[arg(long, conflicts_with = "dismiss_damage")]
    pub latest_good: bool,
    /// Keep the current database and close its damage alert; the damaged files stay where they
    /// were kept, and old backups are pruned again.
    #[arg(long)]
    pub dismiss_damage: bool,
}

#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The locked client address as shown in the log or on the Security page; without it,
    /// every lockout is cleared.
    #[arg(value_name = "ADDR")]
    pub addr: Option<std::net::IpAddr>,
    /// The database to change (default: the configured one).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Check this interface instead of the configured or default-route one.
    #[arg(long, short = 'i', value_name = "IFACE")]
    pub interface: Option<String>,
    /// Seconds to listen for other devices' traffic.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub listen_secs: u64,
    /// Turn receive offloads (GRO/LRO) off on the capture interface, the one change doctor makes.
    #[arg(long)]
    pub fix: bool,
}

#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// The database to read (default: the configured one).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct NamesArgs {
    /// A pcap or pcapng capture (gzip-compressed is fine) with Ethernet or Linux cooked framing.
    pub file: PathBuf,
    /// Print one JSON object (dns, hellos, learned) instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// A pcap or pcapng capture (gzip-compressed is fine) with Ethernet or Linux cooked framing;
    /// `-` reads standard input, and pipes, FIFOs and process substitutions work too.
    pub file: PathBuf,
    /// A LAN prefix (repeatable), in addition to the private and link-local ranges.
    #[arg(long = "lan", value_name = "CIDR")]
    pub lan: Vec<IpPrefix>,
    /// The router's MAC; without it the MAC carrying the most non-local traffic is taken.
    #[arg(long, value_name = "MAC")]
    pub gateway: Option<MacAddr>,
    /// Print one JSON array (ACCOUNTING.md §4) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write minute buckets and devices into this SQLite database, as the daemon would.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Bound on MACs tracked per minute before the least active are folded into "other".
    #[arg(long, value_name = "N", default_value_t = crate::meter::DEFAULT_MAX_DEVICES)]
    pub max_devices: usize,
    /// Do not time TCP handshakes (passive latency); the benchmark's "off" row.
    #[arg(long)]
    pub no_passive_latency: bool,
    /// Count internet bytes per remote address for each device (the `per_device_services`
    /// setting); --json then gives each device a "remotes" list ending with an "other" row.
    /// Without --gateway the file is read twice (the first pass finds the gateway).
    #[arg(long)]
    pub endpoints: bool,
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
    /// Only this device's rows (its MAC address).
    #[arg(long, value_name = "MAC")]
    pub device: Option<MacAddr>,
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
    /// Percentage (0 to 100) of web requests that open a new TCP connection (SYN, SYN-ACK)
    /// first: the handshakes passive latency times. 0 writes the same file as before the option
    /// existed.
    #[arg(long, value_name = "PERCENT", default_value_t = 0)]
    pub handshakes: u32,
    /// Write the totals the generator kept (ACCOUNTING.md §4 JSON shape) to this file.
    #[arg(long, value_name = "FILE")]
    pub expected: Option<PathBuf>,
    /// Instead of a household, write a flood from this many random source MACs (memory tests).
    #[arg(long, value_name = "N")]
    pub flood_macs: Option<u64>,
    /// Bytes stored per frame at most (128 = headers only; 65535 = whole frames, for replaying
    /// onto a link with tcpreplay, which sends the stored bytes).
    #[arg(long, default_value_t = crate::demo::MIN_SNAPLEN)]
    pub snaplen: u32,
}
