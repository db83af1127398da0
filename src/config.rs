//! The typed configuration: defaults in code, the TOML file, `LANMETER_*` environment overrides,
//! and `validate()` with one-line messages naming where a bad value came from and what to do.
//!
//! This module only reads the config file and the environment it is handed; it never opens
//! interfaces, detects routes or creates the state directory (that is `app`'s job at start-up).

use crate::model::{IpPrefix, MacAddr};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

pub mod settings;

/// Where the packaged service looks when no path is given.
pub const DEFAULT_PATH: &str = "/etc/lanmeter/lanmeter.toml";

/// Prefix of the environment variables that override single keys (`LANMETER_FLUSH_INTERVAL_SECS`).
pub const ENV_PREFIX: &str = "LANMETER_";

/// `LANMETER_*` variables that belong to other parts of lanmeter (the CLI), so they are neither
/// config keys nor typos worth a warning.
pub const NON_CONFIG_ENV_VARS: &[&str] = &["LANMETER_CONFIG", "LANMETER_LOG"];

const SNAPLEN: RangeInclusive<u32> = 64..=65_535;
const BUFFER_MIB: RangeInclusive<u32> = 1..=1024;
const FLUSH_INTERVAL_SECS: RangeInclusive<u64> = 1..=300;
const MAX_DEVICES: RangeInclusive<usize> = 16..=1_000_000;
const STATS_LOG_INTERVAL_SECS: RangeInclusive<u64> = 1..=86_400;
const KEEP_MINUTES_DAYS: RangeInclusive<u32> = 1..=366;
const KEEP_REMOTES_DAYS: RangeInclusive<u32> = 1..=366;
const KEEP_HOURS_DAYS: RangeInclusive<u32> = 1..=36_500;
const KEEP_DAYS_MONTHS: RangeInclusive<u32> = 0..=1200;
const KEEP_MONTHS_YEARS: RangeInclusive<u32> = 0..=100;
const BACKUP_KEEP: RangeInclusive<u32> = 0..=365;
const BACKUP_HOUR: RangeInclusive<u8> = 0..=23;
const SESSION_IDLE_HOURS: RangeInclusive<u64> = 1..=8_760;
const SESSION_MAX_DAYS: RangeInclusive<u64> = 1..=365;
const DISCOVERY_SNAPLEN: RangeInclusive<u32> = 512..=65_535;
/// 0 turns the sweep off; otherwise at least a minute apart, so a sweep has finished (a /24 at
/// 50 requests/s takes about 5 s) long before the next one starts.
const ARP_SWEEP_INTERVAL_SECS: RangeInclusive<u64> = 0..=86_400;
const MIN_SWEEP_INTERVAL_SECS: u64 = 60;
const ARP_SWEEP_RATE: RangeInclusive<u32> = 1..=1_000;
const PRESENCE_WINDOW_SECS: RangeInclusive<u64> = 10..=86_400;
const ALERT_INTERVAL_SECS: RangeInclusive<u64> = 1..=3_600;
const ALERT_COOLDOWN_MINUTES: RangeInclusive<u64> = 0..=10_080;
const ALERT_NEW_DEVICE_LEARNING_MINUTES: RangeInclusive<u64> = 0..=10_080;
const ALERT_ABSENCE_DAYS: RangeInclusive<u32> = 0..=365;
const ALERT_OFFLINE_MINUTES: RangeInclusive<u64> = 1..=10_080;
const ALERT_UNUSUAL_K: RangeInclusive<u32> = 1..=100;
const ALERT_UNUSUAL_MIN_MB: RangeInclusive<u64> = 1..=1_000_000;
const ALERT_UNUSUAL_WEEKS: RangeInclusive<u32> = 2..=12;
const ALERT_NO_PACKETS_MINUTES: RangeInclusive<u64> = 1..=1_440;
const PERCENT: RangeInclusive<u32> = 1..=100;
const ALERT_CPU_TEMP_C: RangeInclusive<u32> = 40..=120;
const HOUR_OF_DAY: RangeInclusive<u8> = 0..=23;
const ACK_LINK_DAYS: RangeInclusive<u32> = 1..=90;
const OUTBOX_RETRY_SECS: RangeInclusive<u64> = 1..=3_600;
const OUTBOX_EXPIRE_HOURS: RangeInclusive<u64> = 1..=720;
const DELIVERY_TIMEOUT_SECS: RangeInclusive<u64> = 1..=300;
const MQTT_INTERVAL_SECS: RangeInclusive<u64> = 5..=3_600;
const REMOTE_WRITE_INTERVAL_SECS: RangeInclusive<u64> = 1..=3_600;
/// A site name is a label value on every exported series: short, one line.
const MAX_SITE_CHARS: usize = 64;
const WEEKDAY: RangeInclusive<u8> = 1..=7;
/// 0 turns the internet probes off.
const INTERNET_PROBE_INTERVAL_SECS: RangeInclusive<u64> = 0..=3_600;
const INTERNET_PROBE_PINGS: RangeInclusive<u32> = 1..=20;
/// Two targets are enough to tell one host's trouble from the internet's.
const MAX_INTERNET_TARGETS: usize = 4;
const ALERT_INTERNET_PERCENT: RangeInclusive<u32> = 0..=100;
const ALERT_INTERNET_LATENCY_MS: RangeInclusive<u32> = 0..=60_000;
const ALERT_INTERNET_SUSTAINED_MINUTES: RangeInclusive<u32> = 1..=1_440;
/// UPnP's 32-bit counters wrap every 34 s at 1 Gbit/s: at most 10 s between polls.
const ROUTER_POLL_SECS: RangeInclusive<u64> = 1..=10;
/// 0 turns the coverage alert off.
const COVERAGE_ALERT_PERCENT: RangeInclusive<u32> = 0..=100;
const WEB_HEADER_TIMEOUT_SECS: RangeInclusive<u64> = 1..=300;
/// Below systemd's default soft limit of 1024 open files, which the unit keeps, with room for
/// the database, capture handles and outgoing connections.
const WEB_MAX_CONNECTIONS: RangeInclusive<u32> = 4..=768;

/// Linux interface names are at most IFNAMSIZ - 1 bytes.
const MAX_INTERFACE_NAME: usize = 15;

/// Every key, in struct order. A unit test checks this list against the struct's fields, so the
/// unknown-key message and the environment overrides cannot miss a key.
pub const KEYS: &[&str] = &[
    "interface",
    "promiscuous",
    "snaplen",
    "buffer_mib",
    "flush_interval_secs",
    "max_devices",
    "lan_prefixes",
    "gateway",
    "state_dir",
    "database",
    "listen",
    "timezone",
    "stats_log_interval_secs",
    "keep_minutes_days",
    "keep_hours_days",
    "keep_days_months",
    "keep_months_years",
    "backup_dir",
    "backup_keep",
    "backup_hour",
    "session_idle_hours",
    "session_max_days",
    "anyone_on_lan_may_view",
    "web_host_names",
    "discovery",
    "discovery_snaplen",
    "arp_sweep_interval_secs",
    "arp_sweep_rate",
    "presence_window_secs",
    "wifi_interface",
    "wifi_ssid",
    "tls_cert",
    "tls_key",
    "web_header_timeout_secs",
    "web_max_connections",
    "alert_interval_secs",
    "alert_cooldown_minutes",
    "alert_new_device",
    "alert_new_device_learning_minutes",
    "alert_absence_days",
    "alert_offline_minutes",
    "alert_unusual_usage",
    "alert_unusual_k",
    "alert_unusual_min_mb",
    "alert_unusual_weeks",
    "alert_health",
    "alert_no_packets_minutes",
    "alert_kernel_drop_percent",
    "alert_disk_percent",
    "alert_cpu_temp_c",
    "alert_digest",
    "alert_digest_hour",
    "quiet_hours_from",
    "quiet_hours_to",
    "ack_link_days",
    "dashboard_url",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_user",
    "smtp_password",
    "smtp_password_file",
    "smtp_ca_file",
    "mail_from",
    "mail_to",
    "mail_subject_prefix",
    "webhook_url",
    "webhook_format",
    "webhook_token",
    "mail_alerts",
    "webhook_alerts",
    "ntfy_url",
    "ntfy_token",
    "ntfy_priority",
    "ntfy_alerts",
    "gotify_url",
    "gotify_token",
    "gotify_alerts",
    "telegram_bot_token",
    "telegram_chat_id",
    "telegram_alerts",
    "pushover_token",
    "pushover_user",
    "pushover_alerts",
    "discord_webhook_url",
    "discord_alerts",
    "homeassistant_webhook_url",
    "homeassistant_alerts",
    "outbox_retry_secs",
    "outbox_expire_hours",
    "weekly_summary",
    "weekly_summary_weekday",
    "weekly_summary_hour",
    "mqtt_host",
    "mqtt_port",
    "mqtt_username",
    "mqtt_password",
    "mqtt_prefix",
    "mqtt_interval_secs",
    "delivery_timeout_secs",
    "overage_price_per_gb",
    "currency",
    "site",
    "remote_write_url",
    "remote_write_token",
    "remote_write_interval_secs",
    "internet_probe_interval_secs",
    "internet_probe_pings",
    "internet_targets",
    "internet_dns_name",
    "internet_dns_servers",
    "alert_internet_down",
    "alert_internet_loss_percent",
    "alert_internet_latency_ms",
    "alert_internet_sustained_minutes",
    "passive_latency",
    "router_source",
    "router_snmp_host",
    "router_snmp_community",
    "router_snmp_interface",
    "router_poll_secs",
    "coverage_alert_percent",
    "remote_endpoints",
    "keep_remotes_days",
];

/// Keys whose environment variable is a comma-separated list rather than one value.
const LIST_KEYS: &[&str] = &[
    "lan_prefixes",
    "mail_to",
    "web_host_names",
    "mail_alerts",
    "webhook_alerts",
    "ntfy_alerts",
    "gotify_alerts",
    "telegram_alerts",
    "pushover_alerts",
    "discord_alerts",
    "homeassistant_alerts",
    "internet_targets",
    "internet_dns_servers",
];

/// The alert kinds a channel can be limited to (`ntfy_alerts = ["new_device", "plan"]`): a
/// rule's name, or the family before its dot (`plan` for `plan.threshold`).
pub const ALERT_KINDS: &[&str] = &[
    "new_device",
    "device_back",
    "offline",
    "unusual_usage",
    "health",
    "plan",
    "quota",
    "internet",
];

/// The words ntfy takes for a priority; `auto` follows each alert's severity.
pub const NTFY_PRIORITIES: &[&str] = &["auto", "min", "low", "default", "high", "urgent"];

/// The effective configuration. Every key is optional in the file; see `packaging/lanmeter.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Capture interface; `None` means the interface of the default route (detected by `app`).
    pub interface: Option<String>,
    /// Promiscuous mode, so a mirror port or bridge shows every device's frames.
    pub promiscuous: bool,
    /// Bytes captured per frame; accounting needs headers only, the wire length comes from pcap.
    pub snaplen: u32,
    /// Kernel capture buffer in MiB: absorbs bursts while the capture thread is descheduled.
    pub buffer_mib: u32,
    /// Seconds between flushes of the counter map into SQLite.
    pub flush_interval_secs: u64,
    /// Bound of the in-memory counter map, so a flood of random source MACs cannot exhaust memory.
    pub max_devices: usize,
    /// Extra prefixes counted as local, on top of the interface's, RA-announced and private ones.
    pub lan_prefixes: Vec<IpPrefix>,
    /// The router's MAC; `None` means detect it from the default route and ARP/NDP.
    pub gateway: Option<MacAddr>,
    /// Directory for the database and other state.
    pub state_dir: PathBuf,
    /// SQLite database file; `None` means `state_dir/lanmeter.db` (see [`Config::database_path`]).
    pub database: Option<PathBuf>,
    /// Address of the web dashboard.
    pub listen: SocketAddr,
    /// IANA time zone for day/month boundaries; `None` means the system's (which honours `TZ`).
    pub timezone: Option<String>,
    /// Seconds between log lines with capture statistics (received, dropped).
    pub stats_log_interval_secs: u64,
    /// Days minute rows are kept (then only their hour, day and month rollups remain).
    pub keep_minutes_days: u32,
    /// Days hour rows are kept.
    pub keep_hours_days: u32,
    /// Months day rows are kept; 0 keeps them forever.
    pub keep_days_months: u32,
    /// Years month rows are kept; 0 keeps them forever.
    pub keep_months_years: u32,
    /// Folder of the nightly backups; `None` means `state_dir/backups`.
    pub backup_dir: Option<PathBuf>,
    /// Nightly backups kept (the oldest are deleted); 0 turns nightly backups off.
    pub backup_keep: u32,
    /// Local hour of day (0..=23) at which the nightly backup is taken.
    pub backup_hour: u8,
    /// A web login ends after this many hours without a request.
    pub session_idle_hours: u64,
    /// A web login ends this many days after it began, however active.
    pub session_max_days: u64,
    /// Read-only access without a password for clients on the LAN (private, link-local or
    /// loopback addresses). Off by default: usage data shows who is home and what they do.
    pub anyone_on_lan_may_view: bool,
    /// Extra names (or `name:port`) browsers may use to reach the dashboard, beyond this
    /// machine's own names and addresses and `dashboard_url`'s host: a request naming any other
    /// host is refused (the defence against DNS rebinding, see `web::hosts`).
    pub web_host_names: Vec<String>,
    /// Learn device names, addresses and presence from ARP, DHCP, mDNS and NDP (a second capture
    /// handle that sees only those protocols) and sweep the subnet.
    pub discovery: bool,
    /// Bytes kept per discovery frame: DHCP and mDNS need their payloads.
    pub discovery_snaplen: u32,
    /// Seconds between ARP sweeps of the local IPv4 subnet (and all-nodes pings); 0 = no sweep.
    pub arp_sweep_interval_secs: u64,
    /// Most ARP requests per second a sweep sends.
    pub arp_sweep_rate: u32,
    /// A device is online while it was heard (traffic or an answer) within this many seconds.
    pub presence_window_secs: u64,
    /// A Wi-Fi adapter in monitor mode for the Wi-Fi survey; `None`: no survey.
    pub wifi_interface: Option<String>,
    /// The household's own network name, marked "ours" in the survey and in its advice.
    pub wifi_ssid: Option<String>,
    /// PEM certificate chain for HTTPS; with `tls_key`, the dashboard is served over TLS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// A connection that has not sent a whole request head within this many seconds is closed
    /// (slow-header attacks); with TLS, the handshake has as long again.
    pub web_header_timeout_secs: u64,
    /// Most web connections open at once; more are closed as soon as they are accepted, so a
    /// flood of idle connections cannot use up the process's open files.
    pub web_max_connections: u32,
    /// Seconds between evaluations of the alert rules (and checks of the outbox).
    pub alert_interval_secs: u64,
    /// A rule and subject notify at most once per this many minutes; a condition that clears
    /// and comes back within it reopens the same alert silently.
    pub alert_cooldown_minutes: u64,
    /// Alert when a device joins the network for the first time.
    pub alert_new_device: bool,
    /// New devices in the first minutes after the alerts start (the household's inventory)
    /// are listed on the alerts page without a notification.
    pub alert_new_device_learning_minutes: u64,
    /// Alert when a device comes back after at least this many days away; 0 = never.
    pub alert_absence_days: u32,
    /// Alert when a device marked "should always be online" was silent this many minutes.
    pub alert_offline_minutes: u64,
    /// Alert when a device's last hour is far above its own usual for that hour of the week.
    pub alert_unusual_usage: bool,
    /// "Far above": more than the median plus this many (scaled) median absolute deviations.
    pub alert_unusual_k: u32,
    /// And at least this many megabytes in the hour, so small devices never page anyone.
    pub alert_unusual_min_mb: u64,
    /// Weeks of history the usual is computed from.
    pub alert_unusual_weeks: u32,
    /// Alert on lanmeter's own health (capture, drops, disk, temperature, database).
    pub alert_health: bool,
    /// Capture counts as stopped when no packet arrived for this many minutes.
    pub alert_no_packets_minutes: u64,
    /// Kernel drops above this percentage of received frames between two evaluations.
    pub alert_kernel_drop_percent: u32,
    /// The database's filesystem fuller than this percentage.
    pub alert_disk_percent: u32,
    /// CPU temperature above this many degrees Celsius.
    pub alert_cpu_temp_c: u32,
    /// Send one daily digest instead of a message per alert.
    pub alert_digest: bool,
    /// Local hour at which the daily digest is sent.
    pub alert_digest_hour: u8,
    /// Quiet hours (local hours, from inclusive, to exclusive): alerts wait and are sent
    /// together when they end. Both set, or neither.
    pub quiet_hours_from: Option<u8>,
    pub quiet_hours_to: Option<u8>,
    /// Days an acknowledge link in an email keeps working.
    pub ack_link_days: u32,
    /// The dashboard's address as the household's browsers reach it, for links in messages;
    /// `None` means `http://HOSTNAME:PORT` from the machine's host name and `listen`.
    pub dashboard_url: Option<String>,
    /// SMTP server; `None` turns email off.
    pub smtp_host: Option<String>,
    /// SMTP port; `None` means 587 for starttls, 465 for tls, 25 for none.
    pub smtp_port: Option<u16>,
    /// `starttls`, `tls` (implicit, port 465) or `none` (a local relay only).
    pub smtp_security: SmtpSecurity,
    /// SMTP login; `None` sends without authentication.
    pub smtp_user: Option<String>,
    /// SMTP password (redacted when printed); `smtp_password_file` wins when both are set.
    pub smtp_password: Option<Secret>,
    /// File whose first line is the SMTP password (readable only by lanmeter).
    pub smtp_password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for the SMTP server, for a relay with its own CA.
    pub smtp_ca_file: Option<PathBuf>,
    /// Sender address; `None` means `lanmeter@HOSTNAME`.
    pub mail_from: Option<String>,
    /// Recipient addresses.
    pub mail_to: Vec<String>,
    /// Put in front of every subject.
    pub mail_subject_prefix: String,
    /// Webhook URL (ntfy topic URL, Gotify server, Home Assistant webhook); `None` = off.
    pub webhook_url: Option<String>,
    /// Body shape: `generic`, `ntfy`, `gotify` or `homeassistant`.
    pub webhook_format: WebhookFormat,
    /// Bearer token sent with webhook requests (redacted when printed).
    pub webhook_token: Option<Secret>,
    /// Alert kinds e-mail gets ([`ALERT_KINDS`]); empty: every kind. The same for each channel.
    pub mail_alerts: Vec<String>,
    pub webhook_alerts: Vec<String>,
    /// ntfy topic URL (`https://ntfy.sh/my-topic`); `None` = off.
    pub ntfy_url: Option<String>,
    /// ntfy access token, sent as a bearer token (a protected topic).
    pub ntfy_token: Option<Secret>,
    /// One of [`NTFY_PRIORITIES`].
    pub ntfy_priority: String,
    pub ntfy_alerts: Vec<String>,
    /// Gotify server (`https://gotify.example.org`); `None` = off.
    pub gotify_url: Option<String>,
    /// Gotify application token.
    pub gotify_token: Option<Secret>,
    pub gotify_alerts: Vec<String>,
    /// Telegram bot token from @BotFather.
    pub telegram_bot_token: Option<Secret>,
    /// The chat (a person, group or channel) the bot writes to.
    pub telegram_chat_id: Option<String>,
    pub telegram_alerts: Vec<String>,
    /// Pushover application token.
    pub pushover_token: Option<Secret>,
    /// Pushover user or group key.
    pub pushover_user: Option<Secret>,
    pub pushover_alerts: Vec<String>,
    /// Discord channel webhook URL (its path holds the webhook's token).
    pub discord_webhook_url: Option<Secret>,
    pub discord_alerts: Vec<String>,
    /// Home Assistant webhook trigger URL (`http://homeassistant.local:8123/api/webhook/ID`).
    pub homeassistant_webhook_url: Option<Secret>,
    pub homeassistant_alerts: Vec<String>,
    /// First retry this many seconds after a failed delivery, doubling up to an hour.
    pub outbox_retry_secs: u64,
    /// A message not delivered after this many hours is given up, with its error shown.
    pub outbox_expire_hours: u64,
    /// Email a weekly summary.
    pub weekly_summary: bool,
    /// ISO weekday of the summary: 1 = Monday … 7 = Sunday.
    pub weekly_summary_weekday: u8,
    /// Local hour of the summary.
    pub weekly_summary_hour: u8,
    /// MQTT broker for Home Assistant discovery; `None` turns MQTT off.
    pub mqtt_host: Option<String>,
    pub mqtt_port: u16,
    /// MQTT login; `None` connects anonymously.
    pub mqtt_username: Option<String>,
    /// MQTT password (redacted when printed).
    pub mqtt_password: Option<Secret>,
    /// Home Assistant's discovery prefix.
    pub mqtt_prefix: String,
    /// Seconds between state messages.
    pub mqtt_interval_secs: u64,
    /// Seconds one SMTP or webhook attempt may take before it counts as failed and is retried.
    pub delivery_timeout_secs: u64,
    /// What the ISP charges per GB (10^9 bytes) over the plan's allowance, as a decimal number in
    /// a string ("0.50"); `None` means the plan has no overage price (or it is not known).
    pub overage_price_per_gb: Option<String>,
    /// Put after amounts of money ("6.20 €"): plain text.
    pub currency: String,
    /// This installation's name among several homes, the `site` label on everything exported;
    /// `None` means the host name ([`Config::site_name`]).
    pub site: Option<String>,
    /// A Prometheus remote-write receiver (VictoriaMetrics, Prometheus, Mimir, Thanos); `None`
    /// turns remote write off.
    pub remote_write_url: Option<String>,
    /// Sent as a bearer token to the receiver (redacted when printed).
    pub remote_write_token: Option<Secret>,
    /// Seconds between pushes (each push sends every closed minute not sent yet).
    pub remote_write_interval_secs: u64,
    /// Seconds between internet probe rounds; 0 turns the probes off.
    pub internet_probe_interval_secs: u64,
    /// Echo requests per address per round.
    pub internet_probe_pings: u32,
    /// Internet hosts pinged each round (IPv4 addresses).
    pub internet_targets: Vec<Ipv4Addr>,
    /// The name resolved each round.
    pub internet_dns_name: String,
    /// Resolvers asked and pinged; empty means the system's (resolv.conf, systemd-resolved).
    pub internet_dns_servers: Vec<IpAddr>,
    /// Alert when the internet, the router or DNS was down (sent when it is back).
    pub alert_internet_down: bool,
    /// Alert when internet packet loss stays above this percent (0: off).
    pub alert_internet_loss_percent: u32,
    /// Alert when the internet's median latency stays above this many ms (0: off).
    pub alert_internet_latency_ms: u32,
    /// How long loss or latency must stay above its threshold before the alert.
    pub alert_internet_sustained_minutes: u32,
    /// Time TCP handshakes to the internet from captured frames (passive latency).
    pub passive_latency: bool,
    /// Where the router's own WAN byte counters are read from (issue 24).
    pub router_source: RouterSource,
    /// SNMP agent of the router (`host` or `host:port`); SNMP is only tried when it is set.
    pub router_snmp_host: Option<String>,
    /// SNMP v2c community; `None` means "public".
    pub router_snmp_community: Option<Secret>,
    /// The router's WAN interface as its SNMP agent names it (ifDescr or ifName).
    pub router_snmp_interface: String,
    /// Seconds between reads of the router's counters.
    pub router_poll_secs: u64,
    /// A health alert when lanmeter saw less than this share of the router's internet bytes
    /// for an hour; 0 turns it off.
    pub coverage_alert_percent: u32,
    /// Record each device's internet bytes per remote address, per hour (issue 29; off by
    /// default: which addresses a device talks to is private).
    pub remote_endpoints: bool,
    /// Days the per-remote hours are kept.
    pub keep_remotes_days: u32,
}

/// Where the router's WAN counters come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterSource {
    /// SNMP when a host is configured, else UPnP IGD found by SSDP (AVM's 64-bit counters when
    /// the router is a FRITZ!Box).
    Auto,
    Upnp,
    /// The FRITZ!Box's IGD at the gateway's port 49000 (`GetAddonInfos`, 64-bit counters).
    Tr064,
    Snmp,
    Off,
}

impl RouterSource {
    pub const NAMES: &'static [&'static str] = &["auto", "upnp", "tr064", "snmp", "off"];
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interface: None,
            promiscuous: true,
            snaplen: 128,
            buffer_mib: 16,
            // Five minutes: what a power cut may lose (the durability promise, docs/DURABILITY.md)
            // and what keeps SD-card writes within budget (BENCHMARKS.md, "SD-card writes": at
            // 10 s the flusher and discovery commits wrote over 1 GB a day).
            flush_interval_secs: 300,
            max_devices: 4096,
            lan_prefixes: Vec::new(),
            gateway: None,
            // Relative on purpose: run from a checkout with no config, data lands under the current
            // directory; the shipped /etc file sets /var/lib/lanmeter.
            state_dir: PathBuf::from("./data"),
            database: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            timezone: None,
            stats_log_interval_secs: 60,
            keep_minutes_days: 7,
            keep_hours_days: 92,
            keep_days_months: 60,
            keep_months_years: 0,
            backup_dir: None,
            backup_keep: 7,
            backup_hour: 3,
            session_idle_hours: 7 * 24,
            session_max_days: 30,
            anyone_on_lan_may_view: false,
            web_host_names: Vec::new(),
            discovery: true,
            discovery_snaplen: 2048,
            arp_sweep_interval_secs: 300,
            arp_sweep_rate: 50,
            presence_window_secs: 300,
            wifi_interface: None,
            wifi_ssid: None,
            tls_cert: None,
            tls_key: None,
            web_header_timeout_secs: 10,
            web_max_connections: 256,
            alert_interval_secs: 60,
            alert_cooldown_minutes: 60,
            alert_new_device: true,
            alert_new_device_learning_minutes: 60,
            alert_absence_days: 30,
            alert_offline_minutes: 30,
            alert_unusual_usage: true,
            alert_unusual_k: 6,
            alert_unusual_min_mb: 500,
            alert_unusual_weeks: 4,
            alert_health: true,
            alert_no_packets_minutes: 10,
            alert_kernel_drop_percent: 1,
            alert_disk_percent: 90,
            alert_cpu_temp_c: 80,
            alert_digest: false,
            alert_digest_hour: 8,
            quiet_hours_from: None,
            quiet_hours_to: None,
            ack_link_days: 7,
            dashboard_url: None,
            smtp_host: None,
            smtp_port: None,
            smtp_security: SmtpSecurity::Starttls,
            smtp_user: None,
            smtp_password: None,
            smtp_password_file: None,
            smtp_ca_file: None,
            mail_from: None,
            mail_to: Vec::new(),
            mail_subject_prefix: "[lanmeter]".into(),
            webhook_url: None,
            webhook_format: WebhookFormat::Generic,
            webhook_token: None,
            mail_alerts: Vec::new(),
            webhook_alerts: Vec::new(),
            ntfy_url: None,
            ntfy_token: None,
            ntfy_priority: "auto".into(),
            ntfy_alerts: Vec::new(),
            gotify_url: None,
            gotify_token: None,
            gotify_alerts: Vec::new(),
            telegram_bot_token: None,
            telegram_chat_id: None,
            telegram_alerts: Vec::new(),
            pushover_token: None,
            pushover_user: None,
            pushover_alerts: Vec::new(),
            discord_webhook_url: None,
            discord_alerts: Vec::new(),
            homeassistant_webhook_url: None,
            homeassistant_alerts: Vec::new(),
            outbox_retry_secs: 30,
            outbox_expire_hours: 48,
            weekly_summary: true,
            weekly_summary_weekday: 1,
            weekly_summary_hour: 8,
            mqtt_host: None,
            mqtt_port: 1883,
            mqtt_username: None,
            mqtt_password: None,
            mqtt_prefix: "homeassistant".into(),
            mqtt_interval_secs: 30,
            delivery_timeout_secs: 15,
            overage_price_per_gb: None,
            currency: "€".into(),
            site: None,
            remote_write_url: None,
            remote_write_token: None,
            remote_write_interval_secs: 60,
            internet_probe_interval_secs: 10,
            internet_probe_pings: 3,
            // Two anycast resolvers run by different organisations: one host's trouble is not
            // taken for the internet's.
            internet_targets: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(9, 9, 9, 9)],
            internet_dns_name: "example.com".into(),
            internet_dns_servers: Vec::new(),
            alert_internet_down: true,
            alert_internet_loss_percent: 5,
            alert_internet_latency_ms: 200,
            alert_internet_sustained_minutes: 10,
            passive_latency: true,
            router_source: RouterSource::Auto,
            router_snmp_host: None,
            router_snmp_community: None,
            router_snmp_interface: "wan".into(),
            router_poll_secs: 10,
            coverage_alert_percent: 80,
            remote_endpoints: false,
            keep_remotes_days: 7,
        }
    }
}

/// How lanmeter talks TLS to the SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refuses to send without it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine or a trusted LAN.
    None,
}

impl SmtpSecurity {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

/// The JSON shape of webhook bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Generic,
    Ntfy,
    Gotify,
    Homeassistant,
}

/// A password or token: shown as `(redacted)` in logs and printed configs, never in clear.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The clear text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("(redacted)")
    }
}

/// Where a value came from, so an error can point at the line or variable to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `Config` built in code and checked with [`Config::validate`].
    Config,
    /// A config file, with the line of the key when known.
    File { path: PathBuf, line: Option<usize> },
    /// An environment variable such as `LANMETER_SNAPLEN`.
    Env { var: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Config => f.write_str("config"),
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}: check the path and that lanmeter may read it", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: TOML syntax error: {message}: fix that line (strings need double quotes, lists use [ ], comments start with #)", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: unknown key `{key}`{}: valid keys are {}", did_you_mean.map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default(), KEYS.join(", "))]
    UnknownKey {
        origin: Origin,
        key: String,
        did_you_mean: Option<&'static str>,
    },
    #[error("{origin}: {key} = {value} is out of range: {}", hint(key))]
    OutOfRange {
        origin: Origin,
        key: &'static str,
        value: String,
    },
    #[error("{origin}: {key} = {value} is not valid: {reason}: {}", hint(key))]
    Invalid {
        origin: Origin,
        key: &'static str,
        value: String,
        reason: String,
    },
    /// Unreachable in practice: every key was already deserialized on its own.
    #[error("config: {0}: compare the file with the shipped example lanmeter.toml")]
    Deserialize(String),
    #[error("cannot print the config as TOML: {0}: every path must be valid UTF-8")]
    Print(#[from] toml::ser::Error),
}

impl ConfigError {
    /// Replaces the origin of a validation error (raised as `Origin::Config`) with the file line
    /// or variable the key came from.
    fn located(mut self, origins: &HashMap<&'static str, Origin>) -> ConfigError {
        if let ConfigError::OutOfRange { origin, key, .. }
        | ConfigError::Invalid { origin, key, .. } = &mut self
            && let Some(o) = origins.get(key)
        {
            *origin = o.clone();
        }
        self
    }
}

/// Splits `host[:port]` as a `Host` header or a `web_host_names` entry writes it: the host in
/// lower case without a trailing dot (IPv6 without its brackets) and the port if one is given.
/// `None` when it is not that shape (a scheme, a path, spaces, an empty host, a bad port).
pub fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            // A bare IPv6 address (no brackets, so no port).
            Some(_) => (s, None),
            None => (s, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    if host.is_empty() || !host.chars().all(ok) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
    };
    Some((host, port))
}

/// What to write instead, per key; used by both type and range errors.
fn hint(key: &str) -> String {
    fn range<T: fmt::Display>(r: &RangeInclusive<T>, unit: &str) -> String {
        format!("use {}..={} {unit}", r.start(), r.end())
    }
    match key {
        "interface" => "use an interface name such as \"eth0\", or remove the key to capture on the default-route interface".into(),
        "promiscuous" => "use true or false".into(),
        "snaplen" => range(&SNAPLEN, "bytes"),
        "buffer_mib" => range(&BUFFER_MIB, "MiB"),
        "flush_interval_secs" => range(&FLUSH_INTERVAL_SECS, "seconds"),
        "max_devices" => range(&MAX_DEVICES, "devices"),
        "lan_prefixes" => "use a list of prefixes such as [\"192.168.1.0/24\", \"2001:db8:1::/64\"] (comma-separated in LANMETER_LAN_PREFIXES)".into(),
        "gateway" => "use the router's MAC address such as \"aa:bb:cc:dd:ee:ff\", or remove the key to detect it".into(),
        "state_dir" => "use a directory path in double quotes, such as \"/var/lib/lanmeter\"".into(),
        "database" => "use a file path in double quotes, or remove the key to use lanmeter.db in state_dir".into(),
        "listen" => "use an address and port such as \"0.0.0.0:8080\" or \"[::]:8080\"".into(),
        "timezone" => "use an IANA name such as \"Europe/Berlin\" or \"UTC\", or remove the key to use the system's time zone".into(),
        "stats_log_interval_secs" => range(&STATS_LOG_INTERVAL_SECS, "seconds"),
        "keep_minutes_days" => range(&KEEP_MINUTES_DAYS, "days"),
        "keep_hours_days" => format!("{}, and at least keep_minutes_days", range(&KEEP_HOURS_DAYS, "days")),
        "keep_days_months" => range(&KEEP_DAYS_MONTHS, "months (0 keeps day rows forever)"),
        "keep_months_years" => range(&KEEP_MONTHS_YEARS, "years (0 keeps month rows forever)"),
        "backup_dir" => "use a directory path in double quotes, or remove the key to use backups/ in state_dir".into(),
        "backup_keep" => range(&BACKUP_KEEP, "backups (0 turns nightly backups off)"),
        "backup_hour" => range(&BACKUP_HOUR, "(local hour of day)"),
        "session_idle_hours" => range(&SESSION_IDLE_HOURS, "hours"),
        "session_max_days" => range(&SESSION_MAX_DAYS, "days"),
        "anyone_on_lan_may_view" => "use true or false".into(),
        "web_host_names" => "use a list of host names such as [\"lanmeter.example.org\", \"pi.fritz.box:443\"] (comma-separated in LANMETER_WEB_HOST_NAMES)".into(),
        "discovery" => "use true or false".into(),
        "discovery_snaplen" => range(&DISCOVERY_SNAPLEN, "bytes"),
        "arp_sweep_interval_secs" => format!(
            "use 0 (no sweep) or {}..={} seconds",
            MIN_SWEEP_INTERVAL_SECS,
            ARP_SWEEP_INTERVAL_SECS.end()
        ),
        "arp_sweep_rate" => range(&ARP_SWEEP_RATE, "requests per second"),
        "presence_window_secs" => range(&PRESENCE_WINDOW_SECS, "seconds"),
        "wifi_interface" => "use the name of a Wi-Fi adapter in monitor mode such as \"wlan1\", or remove the key to run without a Wi-Fi survey".into(),
        "wifi_ssid" => "use your network's name (1 to 32 bytes) in double quotes, or remove the key".into(),
        "web_header_timeout_secs" => range(&WEB_HEADER_TIMEOUT_SECS, "seconds"),
        "web_max_connections" => range(&WEB_MAX_CONNECTIONS, "connections"),
        "tls_cert" | "tls_key" => "set both tls_cert and tls_key to PEM file paths in double quotes, or remove both to serve plain HTTP".into(),
        "alert_interval_secs" => range(&ALERT_INTERVAL_SECS, "seconds"),
        "alert_cooldown_minutes" => range(&ALERT_COOLDOWN_MINUTES, "minutes"),
        "alert_new_device_learning_minutes" => range(&ALERT_NEW_DEVICE_LEARNING_MINUTES, "minutes"),
        "alert_absence_days" => range(&ALERT_ABSENCE_DAYS, "days (0 turns the rule off)"),
        "alert_offline_minutes" => range(&ALERT_OFFLINE_MINUTES, "minutes"),
        "alert_unusual_k" => range(&ALERT_UNUSUAL_K, "(a whole number)"),
        "alert_unusual_min_mb" => range(&ALERT_UNUSUAL_MIN_MB, "MB"),
        "alert_unusual_weeks" => range(&ALERT_UNUSUAL_WEEKS, "weeks"),
        "alert_no_packets_minutes" => range(&ALERT_NO_PACKETS_MINUTES, "minutes"),
        "alert_kernel_drop_percent" | "alert_disk_percent" => range(&PERCENT, "percent"),
        "alert_cpu_temp_c" => range(&ALERT_CPU_TEMP_C, "degrees Celsius"),
        "alert_digest_hour" | "weekly_summary_hour" => range(&HOUR_OF_DAY, "(local hour of day)"),
        "quiet_hours_from" | "quiet_hours_to" => "use local hours 0..=23, and set both quiet_hours_from and quiet_hours_to (or neither)".into(),
        "ack_link_days" => range(&ACK_LINK_DAYS, "days"),
        "dashboard_url" => "use the address browsers open, such as \"http://lanmeter.local:8080\"".into(),
        "smtp_host" => "use the mail server's host name, such as \"smtp.example.org\"".into(),
        "smtp_port" => "use 587 (starttls), 465 (tls) or 25 (none), or remove the key".into(),
        "smtp_security" => "use \"starttls\" (port 587), \"tls\" (port 465) or \"none\" (a local relay)".into(),
        "smtp_user" | "mail_from" | "mail_subject_prefix" | "smtp_password" | "webhook_token" => "use a string in double quotes".into(),
        "smtp_password_file" | "smtp_ca_file" => "use a file path in double quotes".into(),
        "mail_to" => "use a list of addresses such as [\"me@example.org\"] (comma-separated in LANMETER_MAIL_TO)".into(),
        "webhook_url" => "use an http:// or https:// URL".into(),
        "webhook_format" => "use \"generic\", \"ntfy\", \"gotify\" or \"homeassistant\"".into(),
        "mail_alerts" | "webhook_alerts" | "ntfy_alerts" | "gotify_alerts" | "telegram_alerts"
        | "pushover_alerts" | "discord_alerts" | "homeassistant_alerts" => format!(
            "use a list of alert kinds from {} (empty: every kind)",
            ALERT_KINDS.join(", ")
        ),
        "ntfy_url" => "use the topic's URL such as \"https://ntfy.sh/my-household-alerts\"".into(),
        "gotify_url" => "use the Gotify server's address such as \"https://gotify.example.org\"".into(),
        "discord_webhook_url" => "use the channel webhook's URL (Server settings → Integrations → Webhooks → Copy Webhook URL)".into(),
        "homeassistant_webhook_url" => "use the webhook trigger's URL such as \"http://homeassistant.local:8123/api/webhook/ID\"".into(),
        "ntfy_priority" => format!("use one of {}", NTFY_PRIORITIES.join(", ")),
        "telegram_chat_id" => "use the chat's number such as \"123456789\" (a group's starts with -) or a channel's @name".into(),
        "ntfy_token" | "gotify_token" | "telegram_bot_token" | "pushover_token" | "pushover_user" => "use a string in double quotes".into(),
        "outbox_retry_secs" => range(&OUTBOX_RETRY_SECS, "seconds"),
        "outbox_expire_hours" => range(&OUTBOX_EXPIRE_HOURS, "hours"),
        "weekly_summary_weekday" => range(&WEEKDAY, "(1 = Monday, 7 = Sunday)"),
        "alert_new_device" | "alert_unusual_usage" | "alert_health" | "alert_digest" | "weekly_summary" => "use true or false".into(),
        "mqtt_host" => "use the MQTT broker's host name or address, such as \"homeassistant.local\", or remove the key to turn MQTT off".into(),
        "mqtt_port" => "use the broker's port, 1..=65535 (1883 is MQTT's usual port)".into(),
        "mqtt_username" | "mqtt_password" => "use a string in double quotes".into(),
        "mqtt_prefix" => "use Home Assistant's discovery prefix (\"homeassistant\" unless you changed it): letters, digits, '_', '-' or '/', no '+' or '#'".into(),
        "mqtt_interval_secs" => range(&MQTT_INTERVAL_SECS, "seconds"),
        "delivery_timeout_secs" => range(&DELIVERY_TIMEOUT_SECS, "seconds"),
        "overage_price_per_gb" => "use a price in double quotes such as \"0.50\" (a point before the cents), or remove the key".into(),
        "currency" => "use a short text in double quotes such as \"€\" or \"USD\"".into(),
        "site" => format!("use a short name for this home in double quotes such as \"grandparents\" (at most {MAX_SITE_CHARS} characters, one line), or remove the key to use the host name"),
        "remote_write_url" => "use the receiver's remote-write URL such as \"http://10.8.0.1:8428/api/v1/write\" (VictoriaMetrics) or \"http://prometheus:9090/api/v1/write\", or remove the key to turn remote write off".into(),
        "remote_write_token" => "use a string in double quotes".into(),
        "remote_write_interval_secs" => range(&REMOTE_WRITE_INTERVAL_SECS, "seconds"),
        "internet_probe_interval_secs" => range(&INTERNET_PROBE_INTERVAL_SECS, "seconds (0 turns the probes off)"),
        "internet_probe_pings" => range(&INTERNET_PROBE_PINGS, "echo requests per address"),
        "internet_targets" => format!("use a list of up to {MAX_INTERNET_TARGETS} IPv4 addresses such as [\"1.1.1.1\", \"9.9.9.9\"]"),
        "internet_dns_name" => "use a host name such as \"example.com\"".into(),
        "internet_dns_servers" => "use a list of resolver addresses such as [\"192.168.1.1\"], or [] for the system's".into(),
        "alert_internet_down" => "use true or false".into(),
        "alert_internet_loss_percent" => range(&ALERT_INTERNET_PERCENT, "percent (0 turns the rule off)"),
        "alert_internet_latency_ms" => range(&ALERT_INTERNET_LATENCY_MS, "ms (0 turns the rule off)"),
        "alert_internet_sustained_minutes" => range(&ALERT_INTERNET_SUSTAINED_MINUTES, "minutes"),
        "passive_latency" | "remote_endpoints" => "use true or false".into(),
        "keep_remotes_days" => range(&KEEP_REMOTES_DAYS, "days"),
        "router_source" => "use \"auto\", \"upnp\", \"tr064\", \"snmp\" or \"off\"".into(),
        "router_snmp_host" => "use the router's address or host name, with :port if not 161, such as \"192.168.1.1\", or remove the key".into(),
        "router_snmp_community" => "use the router's read-only SNMP community in double quotes (often \"public\")".into(),
        "router_snmp_interface" => "use the WAN interface's name as the router's SNMP agent lists it (ifDescr or ifName), such as \"wan\", \"pppoe-wan\" or \"eth0.2\"".into(),
        "router_poll_secs" => range(&ROUTER_POLL_SECS, "seconds"),
        "coverage_alert_percent" => range(&COVERAGE_ALERT_PERCENT, "percent (0 turns the alert off)"),
        _ => format!("valid keys are {}", KEYS.join(", ")),
    }
}

/// A close valid key for a misspelt one: a prefix of one another, or at most two edits apart.
fn did_you_mean(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    KEYS.iter()
        .copied()
        .filter(|k| key.len() >= 4 && (k.starts_with(&key) || key.starts_with(k)))
        .chain(KEYS.iter().copied().filter(|k| edit_distance(k, &key) <= 2))
        .next()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The value as it would be written in TOML, for messages (`0`, `"Mars/Olympus"`).
fn show<T: Serialize>(v: &T) -> String {
    toml::Value::try_from(v).map_or_else(|_| "(unprintable)".into(), |v| v.to_string())
}

fn check_range<T>(key: &'static str, v: T, r: &RangeInclusive<T>) -> Result<(), ConfigError>
where
    T: PartialOrd + Serialize,
{
    if r.contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            origin: Origin::Config,
            key,
            value: show(&v),
        })
    }
}

fn invalid<T: Serialize>(key: &'static str, v: &T, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: Origin::Config,
        key,
        value: show(v),
        reason: reason.into(),
    }
}

impl Config {
    /// Loads the file (the given one, which must exist, or [`DEFAULT_PATH`] if it exists, else
    /// defaults), applies `LANMETER_*` overrides from the process environment and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        // vars_os: `std::env::vars` panics on a non-UTF-8 variable anywhere in the environment.
        let env = std::env::vars_os().filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            k.starts_with(ENV_PREFIX)
                .then(|| (k, v.to_string_lossy().into_owned()))
        });
        Config::load_from(path, env)
    }

    /// [`Config::load`] with the environment passed in, so tests need not touch the process's.
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::load_with_default(path, Path::new(DEFAULT_PATH), env)
    }

    fn load_with_default(
        path: Option<&Path>,
        default_path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => Some((p, read(p)?)),
            None => match std::fs::read_to_string(default_path) {
                Ok(text) => Some((default_path, text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: default_path.to_path_buf(),
                        source,
                    });
                }
            },
        };
        Config::from_text(file.as_ref().map(|(p, t)| (*p, t.as_str())), env)
    }

    /// [`Config::load_from`] on a file's text already read (the settings editor checks a
    /// changed text with exactly the rules a restart would apply, before writing it).
    pub fn from_text(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        let mut origins: HashMap<&'static str, Origin> = HashMap::new();
        if let Some((path, text)) = file {
            read_file_table(path, text, &mut table, &mut origins)?;
        }

        for (var, raw) in env {
            let Some(name) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            let Some(key) = KEYS.iter().copied().find(|k| *k == name) else {
                if !NON_CONFIG_ENV_VARS.contains(&var.as_str()) {
                    tracing::warn!(
                        var = %var,
                        suggestion = did_you_mean(&name).unwrap_or(""),
                        "ignoring environment variable that is not a config key"
                    );
                }
                continue;
            };
            let origin = Origin::Env { var: var.clone() };
            if raw.trim().is_empty() {
                // An empty variable resets the key to its built-in default, e.g. to undo an
                // `interface` set in the file without editing it.
                table.remove(key);
            } else {
                table.insert(key.to_string(), env_value(key, &raw));
            }
            origins.insert(key, origin);
        }

        // Deserializing key by key attributes a type error to the key and the line or variable.
        for key in KEYS {
            let Some(value) = table.get(*key) else {
                continue;
            };
            if let Err(e) = deserialize_one(key, value.clone()) {
                return Err(ConfigError::Invalid {
                    origin: origins.get(key).cloned().unwrap_or(Origin::Config),
                    key,
                    value: value.to_string(),
                    reason: e.message().to_string(),
                });
            }
        }

        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Deserialize(e.message().to_string()))?;
        config.validate().map_err(|e| e.located(&origins))?;
        Ok(config)
    }

    /// Checks ranges and values serde cannot: the errors say which key and what to write instead.
    /// `overage_price_per_gb` as a number, if set and valid.
    pub fn overage_price(&self) -> Option<f64> {
        let p: f64 = self.overage_price_per_gb.as_deref()?.trim().parse().ok()?;
        (p.is_finite() && p >= 0.0).then_some(p)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for name in &self.web_host_names {
            if split_host_port(name).is_none() {
                return Err(invalid(
                    "web_host_names",
                    name,
                    "not a host name, address or name:port (no scheme, path or spaces)",
                ));
            }
        }
        for (key, value) in [
            ("interface", &self.interface),
            ("wifi_interface", &self.wifi_interface),
        ] {
            let Some(name) = value else { continue };
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(invalid(
                    key,
                    name,
                    "not an interface name (empty, or contains a space or '/')",
                ));
            }
            if name.len() > MAX_INTERFACE_NAME {
                return Err(invalid(
                    key,
                    name,
                    format!("Linux interface names are at most {MAX_INTERFACE_NAME} bytes"),
                ));
            }
        }
        if let Some(ssid) = &self.wifi_ssid
            && (ssid.is_empty() || ssid.len() > 32)
        {
            return Err(invalid("wifi_ssid", ssid, "an SSID is 1 to 32 bytes"));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(invalid(
                    "tls_key",
                    &"(unset)",
                    "tls_cert is set: HTTPS needs the key too",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_cert",
                    &"(unset)",
                    "tls_key is set: HTTPS needs the certificate too",
                ));
            }
            _ => {}
        }
        check_range(
            "web_header_timeout_secs",
            self.web_header_timeout_secs,
            &WEB_HEADER_TIMEOUT_SECS,
        )?;
        check_range(
            "web_max_connections",
            self.web_max_connections,
            &WEB_MAX_CONNECTIONS,
        )?;
        check_range("snaplen", self.snaplen, &SNAPLEN)?;
        check_range("buffer_mib", self.buffer_mib, &BUFFER_MIB)?;
        check_range(
            "flush_interval_secs",
            self.flush_interval_secs,
            &FLUSH_INTERVAL_SECS,
        )?;
        check_range("max_devices", self.max_devices, &MAX_DEVICES)?;
        if let Some(mac) = self.gateway {
            if mac.is_group() || mac == MacAddr::default() {
                return Err(invalid(
                    "gateway",
                    &mac,
                    "a router's MAC address is a unicast address, not zero, broadcast or multicast",
                ));
            }
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(invalid("state_dir", &self.state_dir, "the path is empty"));
        }
        if let Some(db) = &self.database {
            if db.as_os_str().is_empty() {
                return Err(invalid("database", db, "the path is empty"));
            }
        }
        if let Some(name) = &self.timezone {
            if let Err(e) = jiff::tz::TimeZone::get(name) {
                return Err(invalid("timezone", name, e.to_string()));
            }
        }
        check_range(
            "stats_log_interval_secs",
            self.stats_log_interval_secs,
            &STATS_LOG_INTERVAL_SECS,
        )?;
        check_range(
            "keep_minutes_days",
            self.keep_minutes_days,
            &KEEP_MINUTES_DAYS,
        )?;
        check_range("keep_hours_days", self.keep_hours_days, &KEEP_HOURS_DAYS)?;
        check_range(
            "keep_remotes_days",
            self.keep_remotes_days,
            &KEEP_REMOTES_DAYS,
        )?;
        if self.keep_hours_days < self.keep_minutes_days {
            // Hours shorter than minutes would make the mid-range history coarser than the
            // older one for no saving.
            return Err(ConfigError::OutOfRange {
                origin: Origin::Config,
                key: "keep_hours_days",
                value: show(&self.keep_hours_days),
            });
        }
        check_range("keep_days_months", self.keep_days_months, &KEEP_DAYS_MONTHS)?;
        check_range(
            "keep_months_years",
            self.keep_months_years,
            &KEEP_MONTHS_YEARS,
        )?;
        if let Some(dir) = &self.backup_dir
            && dir.as_os_str().is_empty()
        {
            return Err(invalid("backup_dir", dir, "the path is empty"));
        }
        check_range("backup_keep", self.backup_keep, &BACKUP_KEEP)?;
        check_range("backup_hour", self.backup_hour, &BACKUP_HOUR)?;
        check_range(
            "session_idle_hours",
            self.session_idle_hours,
            &SESSION_IDLE_HOURS,
        )?;
        check_range("session_max_days", self.session_max_days, &SESSION_MAX_DAYS)?;
        check_range(
            "discovery_snaplen",
            self.discovery_snaplen,
            &DISCOVERY_SNAPLEN,
        )?;
        check_range(
            "arp_sweep_interval_secs",
            self.arp_sweep_interval_secs,
            &ARP_SWEEP_INTERVAL_SECS,
        )?;
        if (1..MIN_SWEEP_INTERVAL_SECS).contains(&self.arp_sweep_interval_secs) {
            return Err(invalid(
                "arp_sweep_interval_secs",
                &self.arp_sweep_interval_secs,
                hint("arp_sweep_interval_secs"),
            ));
        }
        check_range("arp_sweep_rate", self.arp_sweep_rate, &ARP_SWEEP_RATE)?;
        check_range(
            "presence_window_secs",
            self.presence_window_secs,
            &PRESENCE_WINDOW_SECS,
        )?;
        self.validate_alerts()?;
        self.validate_internet()?;
        Ok(())
    }

    /// The internet probes' keys (issue 27).
    fn validate_internet(&self) -> Result<(), ConfigError> {
        check_range(
            "internet_probe_interval_secs",
            self.internet_probe_interval_secs,
            &INTERNET_PROBE_INTERVAL_SECS,
        )?;
        check_range(
            "internet_probe_pings",
            self.internet_probe_pings,
            &INTERNET_PROBE_PINGS,
        )?;
        if self.internet_targets.len() > MAX_INTERNET_TARGETS {
            return Err(invalid(
                "internet_targets",
                &self.internet_targets.len(),
                "too many targets",
            ));
        }
        let n = &self.internet_dns_name;
        if crate::internet::wire::dns_query(0, n).is_none() || n.contains(char::is_whitespace) {
            return Err(invalid("internet_dns_name", n, "not a host name"));
        }
        check_range(
            "alert_internet_loss_percent",
            self.alert_internet_loss_percent,
            &ALERT_INTERNET_PERCENT,
        )?;
        check_range(
            "alert_internet_latency_ms",
            self.alert_internet_latency_ms,
            &ALERT_INTERNET_LATENCY_MS,
        )?;
        check_range(
            "alert_internet_sustained_minutes",
            self.alert_internet_sustained_minutes,
            &ALERT_INTERNET_SUSTAINED_MINUTES,
        )
    }

    /// The alert and delivery keys (issue 7).
    fn validate_mqtt(&self) -> Result<(), ConfigError> {
        if let Some(h) = &self.mqtt_host
            && (h.is_empty() || h.contains(char::is_whitespace) || h.contains('/'))
        {
            return Err(invalid("mqtt_host", h, "not a host name"));
        }
        if self.mqtt_port == 0 {
            return Err(invalid("mqtt_port", &0, "port 0 is not a port"));
        }
        let p = &self.mqtt_prefix;
        if p.is_empty()
            || p.starts_with('/')
            || p.ends_with('/')
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'))
        {
            return Err(invalid("mqtt_prefix", p, "not a usable MQTT topic prefix"));
        }
        check_range(
            "mqtt_interval_secs",
            self.mqtt_interval_secs,
            &MQTT_INTERVAL_SECS,
        )
    }

    /// The site name and the remote-write receiver (issue 28).
    fn validate_remote_write(&self) -> Result<(), ConfigError> {
        if let Some(site) = &self.site
            && (site.trim().is_empty()
                || site.chars().count() > MAX_SITE_CHARS
                || site.chars().any(char::is_control))
        {
            return Err(invalid("site", site, "not a short one-line name"));
        }
        if let Some(u) = &self.remote_write_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            // A hosted receiver's URL may hold a tenant or key: only the start is shown.
            let shown = format!("{}…", u.chars().take(8).collect::<String>());
            return Err(invalid(
                "remote_write_url",
                &shown,
                "not an http:// or https:// URL",
            ));
        }
        check_range(
            "remote_write_interval_secs",
            self.remote_write_interval_secs,
            &REMOTE_WRITE_INTERVAL_SECS,
        )
    }

    /// The `site` label: the configured name, else this machine's host name, else "lanmeter".
    pub fn site_name(&self) -> String {
        if let Some(s) = &self.site {
            return s.trim().to_string();
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "lanmeter".into())
    }

    /// The router counter keys (issue 24).
    fn validate_router(&self) -> Result<(), ConfigError> {
        if let Some(h) = &self.router_snmp_host
            && (h.is_empty() || h.contains(char::is_whitespace) || h.contains('/'))
        {
            return Err(invalid("router_snmp_host", h, "not a host name or address"));
        }
        if self.router_source == RouterSource::Snmp && self.router_snmp_host.is_none() {
            return Err(invalid(
                "router_snmp_host",
                &"(not set)",
                "router_source = \"snmp\" needs it",
            ));
        }
        if self.router_snmp_interface.is_empty() {
            return Err(invalid("router_snmp_interface", &"\"\"", "empty"));
        }
        check_range("router_poll_secs", self.router_poll_secs, &ROUTER_POLL_SECS)?;
        check_range(
            "coverage_alert_percent",
            self.coverage_alert_percent,
            &COVERAGE_ALERT_PERCENT,
        )
    }

    /// The phone push channels: URLs are http(s) (secret URLs are never quoted back), the
    /// priority a word ntfy knows, and each channel's alert kinds known ones.
    fn validate_push(&self) -> Result<(), ConfigError> {
        let web = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        for (key, url) in [
            ("ntfy_url", &self.ntfy_url),
            ("gotify_url", &self.gotify_url),
        ] {
            if let Some(u) = url
                && !web(u)
            {
                // The topic is as good as a password: only the start is shown.
                let shown = format!("{}…", u.chars().take(8).collect::<String>());
                return Err(invalid(key, &shown, "not an http:// or https:// URL"));
            }
        }
        for (key, url) in [
            ("discord_webhook_url", &self.discord_webhook_url),
            ("homeassistant_webhook_url", &self.homeassistant_webhook_url),
        ] {
            if let Some(u) = url
                && !web(u.expose())
            {
                return Err(invalid(key, &"(secret)", "not an http:// or https:// URL"));
            }
        }
        if let Some(p) = &self.overage_price_per_gb
            && self.overage_price().is_none()
        {
            return Err(invalid(
                "overage_price_per_gb",
                p,
                "not a price of 0 or more with a point before the cents",
            ));
        }
        if self.currency.chars().count() > 8 || self.currency.chars().any(char::is_control) {
            return Err(invalid(
                "currency",
                &self.currency,
                "not a short currency text (at most 8 characters)",
            ));
        }
        if !NTFY_PRIORITIES.contains(&self.ntfy_priority.as_str()) {
            return Err(invalid(
                "ntfy_priority",
                &self.ntfy_priority,
                "not an ntfy priority",
            ));
        }
        if let Some(c) = &self.telegram_chat_id
            && (c.is_empty() || c.contains(char::is_whitespace))
        {
            return Err(invalid("telegram_chat_id", c, "not a chat id"));
        }
        for (key, kinds) in [
            ("mail_alerts", &self.mail_alerts),
            ("webhook_alerts", &self.webhook_alerts),
            ("ntfy_alerts", &self.ntfy_alerts),
            ("gotify_alerts", &self.gotify_alerts),
            ("telegram_alerts", &self.telegram_alerts),
            ("pushover_alerts", &self.pushover_alerts),
            ("discord_alerts", &self.discord_alerts),
            ("homeassistant_alerts", &self.homeassistant_alerts),
        ] {
            if let Some(k) = kinds.iter().find(|k| !ALERT_KINDS.contains(&k.as_str())) {
                return Err(invalid(key, k, "not an alert kind"));
            }
        }
        Ok(())
    }

    fn validate_alerts(&self) -> Result<(), ConfigError> {
        check_range(
            "alert_interval_secs",
            self.alert_interval_secs,
            &ALERT_INTERVAL_SECS,
        )?;
        check_range(
            "alert_cooldown_minutes",
            self.alert_cooldown_minutes,
            &ALERT_COOLDOWN_MINUTES,
        )?;
        check_range(
            "alert_new_device_learning_minutes",
            self.alert_new_device_learning_minutes,
            &ALERT_NEW_DEVICE_LEARNING_MINUTES,
        )?;
        check_range(
            "alert_absence_days",
            self.alert_absence_days,
            &ALERT_ABSENCE_DAYS,
        )?;
        check_range(
            "alert_offline_minutes",
            self.alert_offline_minutes,
            &ALERT_OFFLINE_MINUTES,
        )?;
        check_range("alert_unusual_k", self.alert_unusual_k, &ALERT_UNUSUAL_K)?;
        check_range(
            "alert_unusual_min_mb",
            self.alert_unusual_min_mb,
            &ALERT_UNUSUAL_MIN_MB,
        )?;
        check_range(
            "alert_unusual_weeks",
            self.alert_unusual_weeks,
            &ALERT_UNUSUAL_WEEKS,
        )?;
        check_range(
            "alert_no_packets_minutes",
            self.alert_no_packets_minutes,
            &ALERT_NO_PACKETS_MINUTES,
        )?;
        check_range(
            "alert_kernel_drop_percent",
            self.alert_kernel_drop_percent,
            &PERCENT,
        )?;
        check_range("alert_disk_percent", self.alert_disk_percent, &PERCENT)?;
        check_range("alert_cpu_temp_c", self.alert_cpu_temp_c, &ALERT_CPU_TEMP_C)?;
        check_range("alert_digest_hour", self.alert_digest_hour, &HOUR_OF_DAY)?;
        match (self.quiet_hours_from, self.quiet_hours_to) {
            (None, None) => {}
            (Some(f), Some(t)) => {
                check_range("quiet_hours_from", f, &HOUR_OF_DAY)?;
                check_range("quiet_hours_to", t, &HOUR_OF_DAY)?;
            }
            (Some(f), None) => {
                return Err(invalid("quiet_hours_from", &f, hint("quiet_hours_from")));
            }
            (None, Some(t)) => return Err(invalid("quiet_hours_to", &t, hint("quiet_hours_to"))),
        }
        check_range("ack_link_days", self.ack_link_days, &ACK_LINK_DAYS)?;
        for (key, url) in [
            ("dashboard_url", &self.dashboard_url),
            ("webhook_url", &self.webhook_url),
        ] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                // A webhook URL's path is a credential: the message (journal, console) quotes
                // only what is needed to see the wrong scheme.
                let shown = if key == "webhook_url" {
                    format!("{}…", u.chars().take(8).collect::<String>())
                } else {
                    u.clone()
                };
                return Err(invalid(key, &shown, "not an http:// or https:// URL"));
            }
        }
        self.validate_push()?;
        if let Some(h) = &self.smtp_host
            && (h.is_empty() || h.contains(char::is_whitespace) || h.contains('/'))
        {
            return Err(invalid("smtp_host", h, "not a host name"));
        }
        if self.smtp_port == Some(0) {
            return Err(invalid("smtp_port", &0, "port 0 is not a port"));
        }
        self.validate_mqtt()?;
        self.validate_remote_write()?;
        self.validate_router()?;
        for a in self.mail_to.iter().chain(&self.mail_from) {
            let ok = a.rsplit_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && !d.is_empty() && !a.contains(char::is_whitespace)
            });
            if !ok {
                let key = if self.mail_from.as_ref() == Some(a) {
                    "mail_from"
                } else {
                    "mail_to"
                };
                return Err(invalid(key, a, "not an email address (name@example.org)"));
            }
        }
        check_range(
            "outbox_retry_secs",
            self.outbox_retry_secs,
            &OUTBOX_RETRY_SECS,
        )?;
        check_range(
            "outbox_expire_hours",
            self.outbox_expire_hours,
            &OUTBOX_EXPIRE_HOURS,
        )?;
        check_range(
            "delivery_timeout_secs",
            self.delivery_timeout_secs,
            &DELIVERY_TIMEOUT_SECS,
        )?;
        check_range(
            "weekly_summary_weekday",
            self.weekly_summary_weekday,
            &WEEKDAY,
        )?;
        check_range(
            "weekly_summary_hour",
            self.weekly_summary_hour,
            &HOUR_OF_DAY,
        )?;
        Ok(())
    }

    /// The folder of the nightly backups: `backup_dir` if set, else `state_dir/backups`.
    pub fn backup_dir_path(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("backups"))
    }

    /// The SQLite file: `database` if set, else `state_dir/lanmeter.db`.
    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.state_dir.join("lanmeter.db"))
    }

    /// The household time zone for day and month boundaries: `timezone` if set, else the
    /// system's (jiff honours `TZ`, then /etc/localtime; UTC if neither can be read).
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        match &self.timezone {
            Some(name) => jiff::tz::TimeZone::get(name).unwrap_or_else(|err| {
                // validate() already resolved this name, so only a tz database that vanished
                // since start-up gets here; the system zone beats refusing to bucket at all.
                tracing::warn!(timezone = %name, error = %err, "time zone not found, using the system's");
                jiff::tz::TimeZone::system()
            }),
            None => jiff::tz::TimeZone::system(),
        }
    }

    /// The effective config as TOML (for `lanmeter check-config`), with `database` resolved and
    /// comments saying what the unset keys fall back to. Loading the output gives the same config.
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        let mut effective = self.clone();
        effective.database = Some(self.database_path());
        let mut out = toml::to_string(&effective)?;
        if self.interface.is_none() {
            out.push_str("# interface is not set: capturing on the default-route interface\n");
        }
        if self.gateway.is_none() {
            out.push_str("# gateway is not set: detected from the default route and ARP/NDP\n");
        }
        if self.timezone.is_none() {
            let tz = jiff::tz::TimeZone::system();
            out.push_str(&format!(
                "# timezone is not set: using the system's ({})\n",
                tz.iana_name().unwrap_or("unnamed zone")
            ));
        }
        Ok(out)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses the file into `table`, rejecting syntax errors and unknown keys with their position.
fn read_file_table(
    path: &Path,
    text: &str,
    table: &mut toml::Table,
    origins: &mut HashMap<&'static str, Origin>,
) -> Result<(), ConfigError> {
    let syntax = |e: toml::de::Error| {
        let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
        }
    };
    *table = toml::from_str(text).map_err(syntax)?;
    // A second, span-keeping parse only to find each key's line; it cannot fail where the first
    // parse succeeded, and if it did we would merely lose line numbers.
    let lines: HashMap<String, usize> = toml::de::DeTable::parse(text)
        .map(|t| {
            t.into_inner()
                .iter()
                .map(|(k, _)| (k.get_ref().to_string(), line_column(text, k.span().start).0))
                .collect()
        })
        .unwrap_or_default();
    let origin = |key: &str| Origin::File {
        path: path.to_path_buf(),
        line: lines.get(key).copied(),
    };
    // Report the first unknown key in file order, which is where the reader looks first.
    let mut unknown: Vec<&String> = table
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()))
        .collect();
    unknown.sort_by_key(|k| lines.get(k.as_str()).copied().unwrap_or(usize::MAX));
    if let Some(key) = unknown.first() {
        return Err(ConfigError::UnknownKey {
            origin: origin(key),
            key: key.to_string(),
            did_you_mean: did_you_mean(key),
        });
    }
    for key in KEYS {
        if table.contains_key(*key) {
            origins.insert(key, origin(key));
        }
    }
    Ok(())
}

/// One environment value as a TOML value: parsed as TOML when it is one (`10`, `true`,
/// `["a", "b"]`), otherwise taken as a plain string; list keys also take `a, b`.
fn env_value(key: &str, raw: &str) -> toml::Value {
    let raw = raw.trim();
    let parsed = raw.parse::<toml::Value>().ok();
    if LIST_KEYS.contains(&key) {
        if let Some(v @ toml::Value::Array(_)) = parsed {
            return v;
        }
        let items = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| toml::Value::String(s.to_string()))
            .collect();
        return toml::Value::Array(items);
    }
    let as_string = toml::Value::String(raw.to_string());
    match parsed {
        // A bare word such as eth0 or Europe/Berlin is not TOML: it is the string itself.
        None => as_string,
        // `LANMETER_INTERFACE=1` parses as an integer but the key wants a string.
        Some(v)
            if deserialize_one(key, v.clone()).is_err()
                && deserialize_one(key, as_string.clone()).is_ok() =>
        {
            as_string
        }
        // Otherwise keep the TOML reading, also when neither fits, so the caller's message
        // describes what was typed ("floating point 1.5, expected u64").
        Some(v) => v,
    }
}

fn deserialize_one(key: &str, value: toml::Value) -> Result<Config, toml::de::Error> {
    let mut t = toml::Table::new();
    t.insert(key.to_string(), value);
    toml::Value::Table(t).try_into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Loads `text` as a config file with `vars` as the environment.
    fn load_text(text: &str, vars: &[(&str, &str)]) -> (Result<Config, ConfigError>, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lanmeter.toml");
        std::fs::write(&path, text).unwrap();
        let r = Config::load_from(Some(&path), env(vars));
        (r, path)
    }

    fn err_text(text: &str, vars: &[(&str, &str)]) -> (String, PathBuf) {
        let (r, path) = load_text(text, vars);
        (r.unwrap_err().to_string(), path)
    }

    #[test]
    fn no_file_and_no_env_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load_with_default(None, &dir.path().join("absent.toml"), env(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.interface, None);
        assert!(c.promiscuous);
        assert_eq!(c.snaplen, 128);
        assert_eq!(c.buffer_mib, 16);
        assert_eq!(c.flush_interval_secs, 300);
        assert_eq!(c.max_devices, 4096);
        assert!(c.lan_prefixes.is_empty());
        assert_eq!(c.gateway, None);
        assert_eq!(c.state_dir, PathBuf::from("./data"));
        assert_eq!(c.database_path(), PathBuf::from("./data/lanmeter.db"));
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.timezone, None);
        assert_eq!(c.stats_log_interval_secs, 60);
        Config::default().validate().unwrap();
    }

    #[test]
    fn default_path_is_used_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lanmeter.toml");
        std::fs::write(&p, "snaplen = 256\n").unwrap();
        let c = Config::load_with_default(None, &p, env(&[])).unwrap();
        assert_eq!(c.snaplen, 256);
    }

    #[test]
    fn explicit_path_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing.toml");
        let e = Config::load_from(Some(&p), env(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }

    #[test]
    fn file_values_are_read() {
        let (c, _) = load_text(
            r#"
interface = "br0"
promiscuous = false
lan_prefixes = ["192.168.1.0/24", "2001:db8:1::/64"]
gateway = "DC:A6:32:11:22:33"
state_dir = "/srv/lm"
listen = "[::1]:9000"
timezone = "Europe/Berlin"
"#,
            &[],
        );
        let c = c.unwrap();
        assert_eq!(c.interface.as_deref(), Some("br0"));
        assert!(!c.promiscuous);
        assert_eq!(c.lan_prefixes.len(), 2);
        assert_eq!(c.lan_prefixes[1].to_string(), "2001:db8:1::/64");
        assert_eq!(c.gateway.unwrap().to_string(), "dc:a6:32:11:22:33");
        assert_eq!(c.database_path(), PathBuf::from("/srv/lm/lanmeter.db"));
        assert_eq!(c.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(c.time_zone().iana_name(), Some("Europe/Berlin"));
    }

    #[test]
    fn explicit_database_wins_over_state_dir() {
        let (c, _) = load_text("state_dir = \"/a\"\ndatabase = \"/b/x.db\"\n", &[]);
        assert_eq!(c.unwrap().database_path(), PathBuf::from("/b/x.db"));
    }

    #[test]
    fn each_range_is_enforced_with_key_value_and_hint() {
        let cases = [
            (
                "snaplen = 63",
                "snaplen = 63 is out of range: use 64..=65535 bytes",
            ),
            (
                "snaplen = 65536",
                "snaplen = 65536 is out of range: use 64..=65535 bytes",
            ),
            (
                "buffer_mib = 0",
                "buffer_mib = 0 is out of range: use 1..=1024 MiB",
            ),
            (
                "buffer_mib = 1025",
                "buffer_mib = 1025 is out of range: use 1..=1024 MiB",
            ),
            (
                "flush_interval_secs = 0",
                "flush_interval_secs = 0 is out of range: use 1..=300 seconds",
            ),
            (
                "flush_interval_secs = 301",
                "flush_interval_secs = 301 is out of range: use 1..=300 seconds",
            ),
            (
                "max_devices = 15",
                "max_devices = 15 is out of range: use 16..=1000000 devices",
            ),
            (
                "max_devices = 1000001",
                "max_devices = 1000001 is out of range: use 16..=1000000 devices",
            ),
            (
                "stats_log_interval_secs = 0",
                "stats_log_interval_secs = 0 is out of range: use 1..=86400 seconds",
            ),
        ];
        for (line, want) in cases {
            let (msg, path) = err_text(&format!("# comment\n{line}\n"), &[]);
            assert_eq!(msg, format!("{}:2: {want}", path.display()));
        }
        // The bounds themselves are accepted.
        let (c, _) = load_text(
            "snaplen = 64\nbuffer_mib = 1024\nflush_interval_secs = 300\nmax_devices = 16\n",
            &[],
        );
        c.unwrap();
        let (c, _) = load_text("overage_price_per_gb = \"0.50\"\ncurrency = \"USD\"\n", &[]);
        let c = c.unwrap();
        assert_eq!((c.overage_price(), c.currency.as_str()), (Some(0.5), "USD"));
    }

    #[test]
    fn site_defaults_to_the_host_name_and_remote_write_keys_are_checked() {
        let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
        assert_eq!(Config::default().site_name(), host);
        let (c, _) = load_text("site = \" flat 2 \"\n", &[]);
        assert_eq!(c.unwrap().site_name(), "flat 2");
        for (text, key) in [
            ("site = \"\"", "site"),
            ("site = \"a\\nb\"", "site"),
            ("remote_write_url = \"10.8.0.1:8428\"", "remote_write_url"),
            (
                "remote_write_interval_secs = 0",
                "remote_write_interval_secs",
            ),
        ] {
            let (c, _) = load_text(text, &[]);
            let e = c.unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let (c, _) = load_text(
            "remote_write_url = \"https://mimir.example.org/api/v1/push\"\nremote_write_token = \"t\"\n",
            &[],
        );
        let c = c.unwrap();
        assert_eq!(c.remote_write_token.unwrap().expose(), "t");
        assert_eq!(c.remote_write_interval_secs, 60);
    }

    #[test]
    fn invalid_values_name_key_and_reason() {
        let cases = [
            (
                "interface = \"\"",
                "interface = \"\" is not valid: not an interface name",
            ),
            ("interface = \"eth 0\"", "not an interface name"),
            ("interface = \"averyveryverylongname\"", "at most 15 bytes"),
            (
                "gateway = \"ff:ff:ff:ff:ff:ff\"",
                "gateway = \"ff:ff:ff:ff:ff:ff\" is not valid: a router's MAC",
            ),
            ("gateway = \"01:00:5e:00:00:01\"", "unicast"),
            ("gateway = \"00:00:00:00:00:00\"", "unicast"),
            (
                "gateway = \"router\"",
                "gateway = \"router\" is not valid: 'router' is not a MAC address",
            ),
            (
                "state_dir = \"\"",
                "state_dir = \"\" is not valid: the path is empty",
            ),
            (
                "database = \"\"",
                "database = \"\" is not valid: the path is empty",
            ),
            (
                "timezone = \"Mars/Olympus\"",
                "timezone = \"Mars/Olympus\" is not valid: ",
            ),
            ("listen = \"8080\"", "listen = \"8080\" is not valid: "),
            (
                "overage_price_per_gb = \"-1\"",
                "overage_price_per_gb = \"-1\" is not valid: not a price of 0 or more",
            ),
            (
                "overage_price_per_gb = \"1,50\"",
                "not a price of 0 or more with a point before the cents",
            ),
            ("currency = \"euros and cents\"", "at most 8 characters"),
            (
                "lan_prefixes = [\"10.0.0.0/33\"]",
                "'10.0.0.0/33' is not an IP prefix",
            ),
            (
                "lan_prefixes = \"10.0.0.0/8\"",
                "lan_prefixes = \"10.0.0.0/8\" is not valid: invalid type",
            ),
            (
                "promiscuous = \"yes\"",
                "promiscuous = \"yes\" is not valid: invalid type: string \"yes\", expected a boolean: use true or false",
            ),
            ("snaplen = -1", "snaplen = -1 is not valid: "),
            (
                "flush_interval_secs = \"ten\"",
                "flush_interval_secs = \"ten\" is not valid: invalid type: string \"ten\"",
            ),
        ];
        for (line, want) in cases {
            let (msg, path) = err_text(&format!("\n\n{line}\n"), &[]);
            let key = line.split(' ').next().unwrap();
            assert!(
                msg.starts_with(&format!("{}:3: {key} = ", path.display())),
                "{msg}"
            );
            assert!(msg.contains(want), "{line}: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
    }

    #[test]
    fn validate_alone_reports_origin_config() {
        let c = Config {
            flush_interval_secs: 0,
            ..Config::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "config: flush_interval_secs = 0 is out of range: use 1..=300 seconds"
        );
    }

    #[test]
    fn unknown_key_is_named_with_valid_keys_and_suggestion() {
        let (msg, path) = err_text("snaplen = 100\nflush_interval = 5\n", &[]);
        assert!(
            msg.starts_with(&format!(
                "{}:2: unknown key `flush_interval` (did you mean `flush_interval_secs`?): valid keys are interface, promiscuous,",
                path.display()
            )),
            "{msg}"
        );
        // Every key is listed, the last one last (other keys get appended over time).
        assert!(msg.ends_with(KEYS[KEYS.len() - 1]), "{msg}");
        assert!(KEYS.iter().all(|k| msg.contains(k)), "{msg}");
        let (msg, _) = err_text("[web]\nport = 1\n", &[]);
        assert!(msg.contains("unknown key `web`: valid keys"), "{msg}");
        let (msg, _) = err_text("tiemzone = \"UTC\"\n", &[]);
        assert!(msg.contains("(did you mean `timezone`?)"), "{msg}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let (msg, path) = err_text("snaplen = 128\ninterface = eth0\n", &[]);
        assert!(
            msg.starts_with(&format!("{}:2:13: TOML syntax error: ", path.display())),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        let (msg, _) = err_text("snaplen = 1\nsnaplen = 2\n", &[]);
        assert!(msg.contains(":2:") && msg.contains("duplicate"), "{msg}");
    }

    #[test]
    fn env_overrides_file_and_defaults() {
        let (c, _) = load_text(
            "interface = \"eth0\"\nflush_interval_secs = 5\n",
            &[
                ("LANMETER_INTERFACE", "wlan0"),
                ("LANMETER_FLUSH_INTERVAL_SECS", "30"),
                ("LANMETER_PROMISCUOUS", "false"),
                ("LANMETER_LAN_PREFIXES", "192.168.1.0/24, 2001:db8::/32,"),
                ("LANMETER_GATEWAY", "dc-a6-32-11-22-33"),
                ("LANMETER_TIMEZONE", "America/New_York"),
                ("LANMETER_LISTEN", "127.0.0.1:9999"),
                ("LANMETER_STATE_DIR", "/tmp/lm"),
                ("LANMETER_CONFIG", "/elsewhere.toml"),
                ("LANMETER_NOT_A_KEY", "1"),
                ("HOME", "/root"),
            ],
        );
        let c = c.unwrap();
        assert_eq!(c.interface.as_deref(), Some("wlan0"));
        assert_eq!(c.flush_interval_secs, 30);
        assert!(!c.promiscuous);
        assert_eq!(
            c.lan_prefixes
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            ["192.168.1.0/24", "2001:db8::/32"]
        );
        assert_eq!(c.gateway.unwrap().to_string(), "dc:a6:32:11:22:33");
        assert_eq!(c.timezone.as_deref(), Some("America/New_York"));
        assert_eq!(c.listen, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(c.database_path(), PathBuf::from("/tmp/lm/lanmeter.db"));
    }

    #[test]
    fn env_accepts_toml_syntax_and_empty_resets() {
        let (c, _) = load_text(
            "interface = \"eth0\"\nsnaplen = 256\n",
            &[
                ("LANMETER_INTERFACE", ""),
                ("LANMETER_SNAPLEN", " "),
                ("LANMETER_LAN_PREFIXES", "[\"10.0.0.0/8\"]"),
                ("LANMETER_TIMEZONE", "\"UTC\""),
            ],
        );
        let c = c.unwrap();
        assert_eq!(c.interface, None);
        assert_eq!(c.snaplen, 128);
        assert_eq!(c.lan_prefixes[0].to_string(), "10.0.0.0/8");
        assert_eq!(c.timezone.as_deref(), Some("UTC"));
        // A numeric-looking interface name is still a name.
        let (c, _) = load_text("", &[("LANMETER_INTERFACE", "1")]);
        assert_eq!(c.unwrap().interface.as_deref(), Some("1"));
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let (msg, _) = err_text("", &[("LANMETER_FLUSH_INTERVAL_SECS", "ten")]);
        assert!(
            msg.starts_with("environment variable LANMETER_FLUSH_INTERVAL_SECS: flush_interval_secs = \"ten\" is not valid: invalid type: string \"ten\""),
            "{msg}"
        );
        assert!(msg.ends_with("use 1..=300 seconds"), "{msg}");
        let (msg, _) = err_text("", &[("LANMETER_FLUSH_INTERVAL_SECS", "1.5")]);
        assert!(msg.contains("floating point"), "{msg}");
        // A range error from an env value also names the variable, not the file.
        let (msg, _) = err_text(
            "flush_interval_secs = 20\n",
            &[("LANMETER_FLUSH_INTERVAL_SECS", "0")],
        );
        assert_eq!(
            msg,
            "environment variable LANMETER_FLUSH_INTERVAL_SECS: flush_interval_secs = 0 is out of range: use 1..=300 seconds"
        );
        let (msg, _) = err_text("", &[("LANMETER_LAN_PREFIXES", "10.0.0.0/8,bogus")]);
        assert!(
            msg.starts_with("environment variable LANMETER_LAN_PREFIXES: lan_prefixes = ")
                && msg.contains("'bogus' is not an IP prefix"),
            "{msg}"
        );
        let (msg, _) = err_text("", &[("LANMETER_TIMEZONE", "Nowhere/City")]);
        assert!(
            msg.starts_with("environment variable LANMETER_TIMEZONE: timezone = \"Nowhere/City\""),
            "{msg}"
        );
    }

    #[test]
    fn keys_list_matches_struct_fields() {
        // Every Option set, so serialization emits every field.
        let full = Config {
            interface: Some("eth0".into()),
            gateway: Some("dc:a6:32:00:00:01".parse().unwrap()),
            database: Some("/x.db".into()),
            timezone: Some("UTC".into()),
            backup_dir: Some("/b".into()),
            wifi_interface: Some("wlan1".into()),
            wifi_ssid: Some("home".into()),
            tls_cert: Some("/c.pem".into()),
            tls_key: Some("/k.pem".into()),
            quiet_hours_from: Some(22),
            quiet_hours_to: Some(7),
            dashboard_url: Some("http://x:8080".into()),
            smtp_host: Some("smtp.example.org".into()),
            smtp_port: Some(587),
            smtp_user: Some("u".into()),
            smtp_password: Some(Secret::new("p")),
            smtp_password_file: Some("/p".into()),
            smtp_ca_file: Some("/ca.pem".into()),
            mail_from: Some("a@example.org".into()),
            webhook_url: Some("http://x/".into()),
            webhook_token: Some(Secret::new("t")),
            ntfy_url: Some("https://ntfy.sh/t".into()),
            ntfy_token: Some(Secret::new("n")),
            gotify_url: Some("https://g".into()),
            gotify_token: Some(Secret::new("g")),
            telegram_bot_token: Some(Secret::new("1:x")),
            telegram_chat_id: Some("1".into()),
            pushover_token: Some(Secret::new("p")),
            pushover_user: Some(Secret::new("u")),
            discord_webhook_url: Some(Secret::new("https://d")),
            homeassistant_webhook_url: Some(Secret::new("http://h")),
            mqtt_host: Some("broker".into()),
            mqtt_username: Some("u".into()),
            mqtt_password: Some(Secret::new("m")),
            overage_price_per_gb: Some("0.50".into()),
            site: Some("home".into()),
            remote_write_url: Some("http://central:8428/api/v1/write".into()),
            remote_write_token: Some(Secret::new("r")),
            router_snmp_host: Some("192.168.1.1".into()),
            router_snmp_community: Some(Secret::new("public")),
            ..Config::default()
        };
        let table = toml::Table::try_from(&full).unwrap();
        let mut fields: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut keys = KEYS.to_vec();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
        // And the printed order follows the struct, which KEYS mirrors.
        let printed = full.to_toml_string().unwrap();
        let order: Vec<&str> = printed
            .lines()
            .filter_map(|l| l.split(" = ").next().filter(|_| l.contains(" = ")))
            .collect();
        assert_eq!(order, KEYS);
        for key in LIST_KEYS {
            assert!(KEYS.contains(key));
        }
    }

    #[test]
    fn printed_config_resolves_database_and_loads_back() {
        let c = Config {
            state_dir: "/var/lib/lanmeter".into(),
            lan_prefixes: vec!["192.168.1.0/24".parse().unwrap()],
            ..Config::default()
        };
        let text = c.to_toml_string().unwrap();
        assert!(
            text.contains("database = \"/var/lib/lanmeter/lanmeter.db\""),
            "{text}"
        );
        assert!(text.contains("# timezone is not set"), "{text}");
        let (back, _) = load_text(&text, &[]);
        let back = back.unwrap();
        assert_eq!(back.database_path(), c.database_path());
        assert_eq!(
            Config {
                database: None,
                ..back
            },
            c
        );
    }

    /// The shipped example with every `# key = value` line uncommented.
    fn uncommented_example() -> String {
        let text = include_str!("../packaging/lanmeter.toml");
        text.lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| KEYS.contains(&k)) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn shipped_example_documents_every_key_and_loads() {
        let text = uncommented_example();
        let table: toml::Table = toml::from_str(&text).unwrap();
        for key in KEYS {
            assert!(
                table.contains_key(*key),
                "packaging/lanmeter.toml lacks `{key}`"
            );
        }
        let (c, _) = load_text(&text, &[]);
        let c = c.unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/lanmeter"));
        // As shipped (commented), only state_dir differs from the defaults.
        let (shipped, _) = load_text(include_str!("../packaging/lanmeter.toml"), &[]);
        assert_eq!(
            shipped.unwrap(),
            Config {
                state_dir: "/var/lib/lanmeter".into(),
                ..Config::default()
            }
        );
    }

    #[test]
    fn shipped_example_comments_show_the_defaults() {
        // Commented values that are not placeholders for unset Options must equal the defaults,
        // so the documentation cannot claim a default the code does not have.
        let text = uncommented_example();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (key, value) in &defaults {
            if key == "state_dir" {
                continue;
            }
            assert_eq!(
                table.get(key),
                Some(value),
                "default of `{key}` in packaging/lanmeter.toml"
            );
        }
    }

    #[test]
    fn host_port_is_split_and_normalised() {
        let sp = |s| split_host_port(s);
        assert_eq!(sp("Pi.Local."), Some(("pi.local".into(), None)));
        assert_eq!(sp("pi.local:8080"), Some(("pi.local".into(), Some(8080))));
        assert_eq!(sp("[::1]:8080"), Some(("::1".into(), Some(8080))));
        assert_eq!(sp("[fe80::1]"), Some(("fe80::1".into(), None)));
        assert_eq!(sp("192.168.1.5:80"), Some(("192.168.1.5".into(), Some(80))));
        for bad in [
            "",
            "http://pi",
            "pi/x",
            "pi:0",
            "pi:99999",
            "pi:",
            "[::1",
            "[nope]:80",
            "a b",
        ] {
            assert_eq!(sp(bad), None, "{bad}");
        }
        let (c, _) = load_text("web_host_names = [\"http://x\"]\n", &[]);
        assert!(
            c.unwrap_err().to_string().contains("web_host_names"),
            "the error names the key"
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("snaplen", "snaplen"), 0);
        assert_eq!(edit_distance("snaplen", "snaplne"), 2);
        assert_eq!(edit_distance("gateway", "gatway"), 1);
        assert_eq!(did_you_mean("listn"), Some("listen"));
        assert_eq!(did_you_mean("zz"), None);
    }
}
