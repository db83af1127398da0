//! The household's settings as the page and the API edit them: one table ([`SETTINGS`]) that
//! describes every editable key once, and an editor that changes the TOML file in place.
//!
//! The file stays the one source of truth. A change is applied to the file's text with
//! `toml_edit` (comments, order and blank lines kept), the new text is checked with exactly the
//! rules [`Config::load`] applies at start-up, and only then written: to a temporary file in the
//! same folder, synced, renamed over the old one. A refused change leaves the file untouched.
//!
//! Keys marked `live` are read by the running code at each use (the alert thread rereads its
//! rules through [`Live`] at every evaluation); every other key takes effect at the next start.

use super::{Config, ConfigError, DEFAULT_PATH, ENV_PREFIX};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// The kind of value a setting holds, which decides the form control and how text from a form
/// becomes a TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// A whole number that is always set.
    Int,
    /// A whole number that may be left unset (the key removed).
    OptInt,
    /// Text that is always set (an empty string is a value).
    Text,
    /// Text that may be left unset: an empty field removes the key.
    OptText,
    /// A list of strings; in a form, one per line or comma-separated.
    List,
    /// One of a few words.
    Choice(&'static [&'static str]),
    /// Write-only text: shown as set or not set, replaced or cleared.
    Secret,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int | Kind::OptInt => "integer",
            Kind::Text | Kind::OptText | Kind::Choice(_) => "string",
            Kind::List => "list",
            Kind::Secret => "secret",
        }
    }
}

/// One editable key, described once for the page, the API and the checks.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub key: &'static str,
    pub group: &'static str,
    pub label: &'static str,
    /// One line for a household: what it does.
    pub help: &'static str,
    pub kind: Kind,
    /// Read by the running code at each use: a change takes effect without a restart.
    pub live: bool,
}

impl Setting {
    pub fn secret(&self) -> bool {
        self.kind == Kind::Secret
    }
}

const fn s(
    key: &'static str,
    group: &'static str,
    label: &'static str,
    help: &'static str,
    kind: Kind,
    live: bool,
) -> Setting {
    Setting {
        key,
        group,
        label,
        help,
        kind,
        live,
    }
}

use Kind::{Bool, Int, List, OptInt, OptText, Text};

/// The groups in page order.
pub const GROUPS: &[&str] = &[
    "Alert rules",
    "Quiet hours and digest",
    "E-mail",
    "Phone push: ntfy",
    "Phone push: Gotify",
    "Telegram",
    "Pushover",
    "Discord",
    "Home Assistant webhook",
    "Webhook (any receiver)",
    "Weekly summary",
    "Capture and network",
    "Discovery and Wi-Fi",
    "Time and history",
    "Web access",
    "Home Assistant (MQTT)",
    "Many homes",
    "Internet quality",
    "Router counters",
    "Per-device services",
];

/// Every setting a household would change, in page order within its group. Paths, listen
/// addresses and tuning knobs (snaplen, buffers, flush interval) stay in the file only.
pub const SETTINGS: &[Setting] = &[
    s(
        "alert_new_device",
        "Alert rules",
        "New device",
        "Alert when a device joins the network for the first time.",
        Bool,
        true,
    ),
    s(
        "alert_new_device_learning_minutes",
        "Alert rules",
        "Learning period (minutes)",
        "New devices in the first minutes after start are listed without a notification.",
        Int,
        true,
    ),
    s(
        "alert_offline_minutes",
        "Alert rules",
        "Offline after (minutes)",
        "Alert when a device marked \"always online\" was silent this long.",
        Int,
        true,
    ),
    s(
        "alert_absence_days",
        "Alert rules",
        "Back after absence (days)",
        "Alert when a device returns after this many days away; 0 turns it off.",
        Int,
        true,
    ),
    s(
        "alert_unusual_usage",
        "Alert rules",
        "Unusual usage",
        "Alert when a device's last hour is far above its usual for that hour of the week.",
        Bool,
        true,
    ),
    s(
        "alert_unusual_k",
        "Alert rules",
        "Unusual usage sensitivity",
        "How far above usual counts as unusual; higher means fewer alerts.",
        Int,
        true,
    ),
    s(
        "alert_unusual_min_mb",
        "Alert rules",
        "Unusual usage minimum (MB)",
        "An unusual hour must also reach this many megabytes.",
        Int,
        true,
    ),
    s(
        "alert_unusual_weeks",
        "Alert rules",
        "Weeks of history for usual",
        "How many weeks the usual is computed from.",
        Int,
        true,
    ),
    s(
        "alert_health",
        "Alert rules",
        "lanmeter's own health",
        "Alert when capture stops, drops frames, or the disk or CPU temperature runs high.",
        Bool,
        true,
    ),
    s(
        "alert_no_packets_minutes",
        "Alert rules",
        "Capture stopped after (minutes)",
        "No packet for this long counts as capture stopped.",
        Int,
        true,
    ),
    s(
        "alert_kernel_drop_percent",
        "Alert rules",
        "Dropped frames (%)",
        "Alert when the kernel drops more than this share of frames.",
        Int,
        true,
    ),
    s(
        "alert_disk_percent",
        "Alert rules",
        "Disk full (%)",
        "Alert when the database's disk is fuller than this.",
        Int,
        true,
    ),
    s(
        "alert_cpu_temp_c",
        "Alert rules",
        "CPU temperature (°C)",
        "Alert above this temperature.",
        Int,
        true,
    ),
    s(
        "alert_cooldown_minutes",
        "Alert rules",
        "Repeat at most every (minutes)",
        "A rule notifies about one device at most once in this time.",
        Int,
        true,
    ),
    s(
        "quiet_hours_from",
        "Quiet hours and digest",
        "Quiet from (hour)",
        "Alerts wait from this local hour; set both or neither.",
        OptInt,
        true,
    ),
    s(
        "quiet_hours_to",
        "Quiet hours and digest",
        "Quiet until (hour)",
        "…until this local hour, then are sent together.",
        OptInt,
        true,
    ),
    s(
        "alert_digest",
        "Quiet hours and digest",
        "Daily digest",
        "Send one message a day instead of one per alert.",
        Bool,
        true,
    ),
    s(
        "alert_digest_hour",
        "Quiet hours and digest",
        "Digest hour",
        "Local hour at which the daily digest is sent.",
        Int,
        true,
    ),
    s(
        "smtp_host",
        "E-mail",
        "Mail server",
        "Your provider's SMTP server; empty turns e-mail off.",
        OptText,
        false,
    ),
    s(
        "smtp_port",
        "E-mail",
        "Port",
        "Empty means 587 for starttls, 465 for tls, 25 for none.",
        OptInt,
        false,
    ),
    s(
        "smtp_security",
        "E-mail",
        "Security",
        "starttls (port 587), tls (port 465) or none (a local relay only).",
        Kind::Choice(&["starttls", "tls", "none"]),
        false,
    ),
    s(
        "smtp_user",
        "E-mail",
        "Login",
        "The mail account's user name; empty sends without login.",
        OptText,
        false,
    ),
    s(
        "smtp_password",
        "E-mail",
        "Password",
        "The mail account's (app) password.",
        Kind::Secret,
        false,
    ),
    s(
        "mail_from",
        "E-mail",
        "Sender",
        "From address; empty means lanmeter@this machine's name.",
        OptText,
        false,
    ),
    s(
        "mail_to",
        "E-mail",
        "Recipients",
        "Who gets the alerts, one address per line.",
        List,
        false,
    ),
    s(
        "mail_subject_prefix",
        "E-mail",
        "Subject prefix",
        "Put in front of every subject.",
        Text,
        false,
    ),
    s(
        "mail_alerts",
        "E-mail",
        "Which alerts",
        "Alert kinds e-mail gets, one per line (new_device, device_back, offline, unusual_usage, health, plan, quota); empty: all.",
        List,
        true,
    ),
    s(
        "ntfy_url",
        "Phone push: ntfy",
        "Topic URL",
        "The ntfy topic's address, such as https://ntfy.sh/a-long-private-name; subscribe to it in the ntfy app. Empty turns ntfy off.",
        OptText,
        true,
    ),
    s(
        "ntfy_token",
        "Phone push: ntfy",
        "Access token",
        "Only for a protected topic: an access token (tk_…) from the ntfy server's account page.",
        Kind::Secret,
        true,
    ),
    s(
        "ntfy_priority",
        "Phone push: ntfy",
        "Priority",
        "auto follows each alert's severity; urgent makes the phone ring through do-not-disturb.",
        Kind::Choice(crate::config::NTFY_PRIORITIES),
        true,
    ),
    s(
        "ntfy_alerts",
        "Phone push: ntfy",
        "Which alerts",
        "Alert kinds ntfy gets, one per line (new_device, device_back, offline, unusual_usage, health, plan, quota); empty: all.",
        List,
        true,
    ),
    s(
        "gotify_url",
        "Phone push: Gotify",
        "Server",
        "Your Gotify server's address; empty turns Gotify off.",
        OptText,
        true,
    ),
    s(
        "gotify_token",
        "Phone push: Gotify",
        "Application token",
        "In Gotify: Apps → Create application → its token.",
        Kind::Secret,
        true,
    ),
    s(
        "gotify_alerts",
        "Phone push: Gotify",
        "Which alerts",
        "Alert kinds Gotify gets, one per line (new_device, device_back, offline, unusual_usage, health, plan, quota); empty: all.",
        List,
        true,
    ),
    s(
        "telegram_bot_token",
        "Telegram",
        "Bot token",
        "Ask @BotFather in Telegram for /newbot; it answers with the token.",
        Kind::Secret,
        true,
    ),
    s(
        "telegram_chat_id",
        "Telegram",
        "Chat id",
        "Write to your bot once, then open api.telegram.org/bot<token>/getUpdates to read chat.id.",
        OptText,
        true,
    ),
    s(
        "telegram_alerts",
        "Telegram",
        "Which alerts",
        "Alert kinds Telegram gets, one per line (new_device, device_back, offline, unusual_usage, health, plan, quota); empty: all.",
        List,
        true,
    ),
    s(
        "pushover_token",
        "Pushover",
        "Application token",
        "On pushover.net: Create an Application/API Token.",
        Kind::Secret,
        true,
    ),
    s(
        "pushover_user",
        "Pushover",
        "User key",
        "Shown at the top right of your pushover.net dashboard.",
        Kind::Secret,
        true,
    ),
    s(
        "pushover_alerts",
        "Pushover",
        "Which alerts",
        "Alert kinds Pushover gets, one per line (new_device, device_back, offline, unusual_usage, health, plan, quota); empty: all.",
        List,
        true,
    ),
    s(
        "discord_webhook_url",
        "Discord",
        "Webhook URL",
        "In Discord: Server settings → Integrations → Webhooks → New webhook → Copy Webhook URL.",
        Kind::Secret,
        true,
    ),
    s(
        "discord_alerts",
        "Discord",
        "Which alerts",
        "Alert kinds Discord gets, one per line (new_device, device_back, offline, unusual_usage, health, plan, quota); empty: all.",
        List,
        true,
    ),
    s(
        "homeassistant_webhook_url",
        "Home Assistant webhook",
        "Webhook URL",
        "An automation with a Webhook trigger: http://homeassistant.local:8123/api/webhook/ID.",
        Kind::Secret,
        true,
    ),
    s(
        "homeassistant_alerts",
        "Home Assistant webhook",
        "Which alerts",
        "Alert kinds Home Assistant gets, one per line (new_device, device_back, offline, unusual_usage, health, plan, quota); empty: all.",
        List,
        true,
    ),
    s(
        "webhook_url",
        "Webhook (any receiver)",
        "Webhook URL",
        "An ntfy topic URL, Gotify server or Home Assistant webhook; empty turns it off.",
        OptText,
        false,
    ),
    s(
        "webhook_format",
        "Webhook (any receiver)",
        "Format",
        "The receiver's request shape.",
        Kind::Choice(&["generic", "ntfy", "gotify", "homeassistant"]),
        false,
    ),
    s(
        "webhook_token",
        "Webhook (any receiver)",
        "Token",
        "Bearer token sent with each request.",
        Kind::Secret,
        false,
    ),
    s(
        "webhook_alerts",
        "Webhook (any receiver)",
        "Which alerts",
        "Alert kinds the webhook gets, one per line (new_device, device_back, offline, unusual_usage, health, plan, quota); empty: all.",
        List,
        true,
    ),
    s(
        "weekly_summary",
        "Weekly summary",
        "Weekly summary",
        "E-mail a summary of the week.",
        Bool,
        true,
    ),
    s(
        "weekly_summary_weekday",
        "Weekly summary",
        "Day",
        "1 = Monday … 7 = Sunday.",
        Int,
        true,
    ),
    s(
        "weekly_summary_hour",
        "Weekly summary",
        "Hour",
        "Local hour at which it is sent.",
        Int,
        true,
    ),
    s(
        "interface",
        "Capture and network",
        "Capture interface",
        "The network interface to count on; empty means the default-route one.",
        OptText,
        false,
    ),
    s(
        "promiscuous",
        "Capture and network",
        "Promiscuous mode",
        "See other devices' frames (needed on a mirror port or bridge).",
        Bool,
        false,
    ),
    s(
        "lan_prefixes",
        "Capture and network",
        "Extra home prefixes",
        "Address ranges counted as local besides the detected ones, one per line.",
        List,
        false,
    ),
    s(
        "gateway",
        "Capture and network",
        "Router MAC",
        "The router's MAC address; empty detects it.",
        OptText,
        false,
    ),
    s(
        "discovery",
        "Discovery and Wi-Fi",
        "Learn device names",
        "Learn names, addresses and presence from ARP, DHCP, mDNS and NDP.",
        Bool,
        false,
    ),
    s(
        "arp_sweep_interval_secs",
        "Discovery and Wi-Fi",
        "Sweep every (seconds)",
        "How often the subnet is asked who is there; 0 = never.",
        Int,
        false,
    ),
    s(
        "presence_window_secs",
        "Discovery and Wi-Fi",
        "Online while heard within (seconds)",
        "A device counts as online while heard this recently.",
        Int,
        false,
    ),
    s(
        "wifi_interface",
        "Discovery and Wi-Fi",
        "Wi-Fi survey adapter",
        "A Wi-Fi adapter in monitor mode; empty means no survey.",
        OptText,
        false,
    ),
    s(
        "wifi_ssid",
        "Discovery and Wi-Fi",
        "Your Wi-Fi name",
        "Marked \"ours\" in the survey.",
        OptText,
        false,
    ),
    s(
        "overage_price_per_gb",
        "Time and history",
        "Price per GB over the allowance",
        "What the ISP charges per GB past the data plan's allowance, such as 0.50; empty: no price. The plan page then says what the overage costs.",
        OptText,
        true,
    ),
    s(
        "currency",
        "Time and history",
        "Currency",
        "Written after prices, such as € or USD.",
        Text,
        true,
    ),
    s(
        "timezone",
        "Time and history",
        "Time zone",
        "IANA name such as Europe/Berlin; empty uses the system's.",
        OptText,
        false,
    ),
    s(
        "keep_minutes_days",
        "Time and history",
        "Minute detail kept (days)",
        "Then only hours, days and months remain.",
        Int,
        false,
    ),
    s(
        "keep_hours_days",
        "Time and history",
        "Hourly detail kept (days)",
        "At least as long as minute detail.",
        Int,
        false,
    ),
    s(
        "keep_days_months",
        "Time and history",
        "Daily detail kept (months)",
        "0 keeps it forever.",
        Int,
        false,
    ),
    s(
        "keep_months_years",
        "Time and history",
        "Monthly totals kept (years)",
        "0 keeps them forever.",
        Int,
        false,
    ),
    s(
        "backup_keep",
        "Time and history",
        "Nightly backups kept",
        "0 turns nightly backups off.",
        Int,
        false,
    ),
    s(
        "backup_hour",
        "Time and history",
        "Backup hour",
        "Local hour of the nightly backup.",
        Int,
        false,
    ),
    s(
        "anyone_on_lan_may_view",
        "Web access",
        "Anyone at home may look",
        "Read-only access without a password from the home network.",
        Bool,
        false,
    ),
    s(
        "session_idle_hours",
        "Web access",
        "Log out after idle (hours)",
        "A login ends after this long without use.",
        Int,
        false,
    ),
    s(
        "session_max_days",
        "Web access",
        "Log out after (days)",
        "A login ends this long after it began.",
        Int,
        false,
    ),
    s(
        "dashboard_url",
        "Web access",
        "Dashboard address",
        "The address browsers open, for links in messages; empty means http://this machine:port.",
        OptText,
        false,
    ),
    s(
        "web_host_names",
        "Web access",
        "Extra host names",
        "Other names the dashboard is reached by, one per line.",
        List,
        false,
    ),
    s(
        "mqtt_host",
        "Home Assistant (MQTT)",
        "MQTT broker",
        "Home Assistant's MQTT broker; empty turns MQTT off.",
        OptText,
        false,
    ),
    s(
        "mqtt_port",
        "Home Assistant (MQTT)",
        "Port",
        "1883 is MQTT's usual port.",
        Int,
        false,
    ),
    s(
        "mqtt_username",
        "Home Assistant (MQTT)",
        "Login",
        "Empty connects anonymously.",
        OptText,
        false,
    ),
    s(
        "mqtt_password",
        "Home Assistant (MQTT)",
        "Password",
        "The broker login's password.",
        Kind::Secret,
        false,
    ),
    s(
        "mqtt_prefix",
        "Home Assistant (MQTT)",
        "Discovery prefix",
        "Home Assistant's discovery prefix.",
        Text,
        false,
    ),
    s(
        "site",
        "Many homes",
        "Site name",
        "This home's name in a central Grafana (the site label); empty means the host name.",
        OptText,
        false,
    ),
    s(
        "remote_write_url",
        "Many homes",
        "Remote-write receiver",
        "Prometheus remote-write URL of VictoriaMetrics, Prometheus or Mimir; empty turns it off.",
        OptText,
        false,
    ),
    s(
        "remote_write_token",
        "Many homes",
        "Receiver token",
        "Sent as a bearer token; empty sends none.",
        Kind::Secret,
        false,
    ),
    s(
        "remote_write_interval_secs",
        "Many homes",
        "Push every (seconds)",
        "Closed minutes not sent yet go out this often.",
        Int,
        false,
    ),
    s(
        "internet_probe_interval_secs",
        "Internet quality",
        "Probe every (seconds)",
        "How often the gateway, DNS and internet targets are pinged; 0 turns the probes off.",
        Int,
        false,
    ),
    s(
        "internet_probe_pings",
        "Internet quality",
        "Pings per address",
        "Echo requests sent to each address per round; more give finer packet-loss figures.",
        Int,
        false,
    ),
    s(
        "internet_targets",
        "Internet quality",
        "Internet targets",
        "IPv4 addresses on the internet that answer pings, one per line.",
        List,
        false,
    ),
    s(
        "internet_dns_name",
        "Internet quality",
        "Name to resolve",
        "A host name looked up each round to check that DNS works.",
        Text,
        false,
    ),
    s(
        "internet_dns_servers",
        "Internet quality",
        "DNS resolvers",
        "Resolvers to check, one per line; empty uses the system's.",
        List,
        false,
    ),
    s(
        "alert_internet_down",
        "Internet quality",
        "Outage alert",
        "Alert when the internet, router or DNS was down; sent when the connection is back.",
        Bool,
        false,
    ),
    s(
        "alert_internet_loss_percent",
        "Internet quality",
        "Loss alert (%)",
        "Alert when packet loss stays above this percent; 0 turns it off.",
        Int,
        false,
    ),
    s(
        "alert_internet_latency_ms",
        "Internet quality",
        "Latency alert (ms)",
        "Alert when the median internet latency stays above this; 0 turns it off.",
        Int,
        false,
    ),
    s(
        "alert_internet_sustained_minutes",
        "Internet quality",
        "Sustained for (minutes)",
        "How long loss or latency must stay high before the alert.",
        Int,
        false,
    ),
    s(
        "passive_latency",
        "Internet quality",
        "Passive latency",
        "Time devices' TCP handshakes to the internet from captured frames (takes effect at restart).",
        Bool,
        false,
    ),
    s(
        "router_source",
        "Router counters",
        "Read the router's counters",
        "auto finds the router by UPnP (or SNMP when a host is set); off stops reading it.",
        Kind::Choice(crate::config::RouterSource::NAMES),
        false,
    ),
    s(
        "router_snmp_host",
        "Router counters",
        "SNMP host",
        "The router's address when it has an SNMP agent; empty means no SNMP.",
        OptText,
        false,
    ),
    s(
        "router_snmp_community",
        "Router counters",
        "SNMP community",
        "The read-only community (v2c); empty means \"public\".",
        Kind::Secret,
        false,
    ),
    s(
        "router_snmp_interface",
        "Router counters",
        "SNMP WAN interface",
        "The WAN interface's name on the router, such as wan, pppoe-wan or eth0.2.",
        Text,
        false,
    ),
    s(
        "router_poll_secs",
        "Router counters",
        "Read every (seconds)",
        "1 to 10 seconds: the router's 32-bit counters wrap quickly on fast lines.",
        Int,
        false,
    ),
    s(
        "coverage_alert_percent",
        "Router counters",
        "Coverage alert below (%)",
        "Alert when lanmeter saw less than this share of the router's internet traffic for an hour; 0 turns it off.",
        Int,
        true,
    ),
    s(
        "per_device_services",
        "Per-device services",
        "Learn which services each device uses",
        "Off by default. When on, lanmeter also counts each device's internet bytes per remote address per hour (at most 32 per device and minute, the rest as other), reads the names in DNS answers to each device and the server name a device sends when it opens a TLS or QUIC connection, and stores device, remote address, name, bytes and when (kept keep_services_days, on this box only). It never stores web addresses, pages or content (takes effect at restart).",
        Bool,
        false,
    ),
    s(
        "keep_services_days",
        "Per-device services",
        "Names kept (days)",
        "Older device/name rows are deleted.",
        Int,
        false,
    ),
];

/// The setting of `key`, if it is editable.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// Copies the keys marked `live` from `src` into `dst` (the running configuration), leaving
/// every other key as the process started with it. A unit test keeps this list and the
/// table's `live` marks in step.
pub fn copy_live(dst: &mut Config, src: &Config) {
    dst.alert_new_device = src.alert_new_device;
    dst.alert_new_device_learning_minutes = src.alert_new_device_learning_minutes;
    dst.alert_offline_minutes = src.alert_offline_minutes;
    dst.alert_absence_days = src.alert_absence_days;
    dst.alert_unusual_usage = src.alert_unusual_usage;
    dst.alert_unusual_k = src.alert_unusual_k;
    dst.alert_unusual_min_mb = src.alert_unusual_min_mb;
    dst.alert_unusual_weeks = src.alert_unusual_weeks;
    dst.alert_health = src.alert_health;
    dst.coverage_alert_percent = src.coverage_alert_percent;
    dst.alert_no_packets_minutes = src.alert_no_packets_minutes;
    dst.alert_kernel_drop_percent = src.alert_kernel_drop_percent;
    dst.alert_disk_percent = src.alert_disk_percent;
    dst.alert_cpu_temp_c = src.alert_cpu_temp_c;
    dst.alert_cooldown_minutes = src.alert_cooldown_minutes;
    dst.quiet_hours_from = src.quiet_hours_from;
    dst.quiet_hours_to = src.quiet_hours_to;
    dst.alert_digest = src.alert_digest;
    dst.alert_digest_hour = src.alert_digest_hour;
    dst.weekly_summary = src.weekly_summary;
    dst.weekly_summary_weekday = src.weekly_summary_weekday;
    dst.overage_price_per_gb = src.overage_price_per_gb.clone();
    dst.currency = src.currency.clone();
    dst.weekly_summary_hour = src.weekly_summary_hour;
    dst.mail_alerts.clone_from(&src.mail_alerts);
    dst.webhook_alerts.clone_from(&src.webhook_alerts);
    dst.ntfy_url.clone_from(&src.ntfy_url);
    dst.ntfy_token.clone_from(&src.ntfy_token);
    dst.ntfy_priority.clone_from(&src.ntfy_priority);
    dst.ntfy_alerts.clone_from(&src.ntfy_alerts);
    dst.gotify_url.clone_from(&src.gotify_url);
    dst.gotify_token.clone_from(&src.gotify_token);
    dst.gotify_alerts.clone_from(&src.gotify_alerts);
    dst.telegram_bot_token.clone_from(&src.telegram_bot_token);
    dst.telegram_chat_id.clone_from(&src.telegram_chat_id);
    dst.telegram_alerts.clone_from(&src.telegram_alerts);
    dst.pushover_token.clone_from(&src.pushover_token);
    dst.pushover_user.clone_from(&src.pushover_user);
    dst.pushover_alerts.clone_from(&src.pushover_alerts);
    dst.discord_webhook_url.clone_from(&src.discord_webhook_url);
    dst.discord_alerts.clone_from(&src.discord_alerts);
    dst.homeassistant_webhook_url
        .clone_from(&src.homeassistant_webhook_url);
    dst.homeassistant_alerts
        .clone_from(&src.homeassistant_alerts);
}

/// The configuration the running code reads at each use; the settings editor replaces the
/// live keys in it after writing the file.
#[derive(Clone)]
pub struct Live(Arc<RwLock<Arc<Config>>>);

impl Live {
    pub fn new(cfg: Config) -> Live {
        Live(Arc::new(RwLock::new(Arc::new(cfg))))
    }

    /// The configuration now (a cheap `Arc` clone; the lock is held only for the copy).
    pub fn get(&self) -> Arc<Config> {
        match self.0.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Takes the live keys from `from_file` (see [`copy_live`]).
    pub fn update(&self, from_file: &Config) {
        let mut next = (*self.get()).clone();
        copy_live(&mut next, from_file);
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Arc::new(next);
    }
}

/// The config file in use for `--config PATH` (or none given): the path given, else
/// [`DEFAULT_PATH`] when it exists. `None`: lanmeter runs on built-in defaults, nothing to edit.
pub fn file_in_use(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(p) => Some(p.to_path_buf()),
        None => Path::new(DEFAULT_PATH)
            .exists()
            .then(|| PathBuf::from(DEFAULT_PATH)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("cannot read the config file {}: {source}: check that lanmeter may read it", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {} cannot be changed here: {message}: fix the file by hand first", path.display())]
    Unreadable { path: PathBuf, message: String },
    #[error("cannot write the config file {}: {source}: the service needs write access to its folder (ReadWritePaths=/etc/lanmeter in the unit)", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The change is refused: per key, what is wrong and what to write instead.
    #[error("the change was refused: {}", .0.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; "))]
    Refused(BTreeMap<String, String>),
}

/// One value to set: a TOML value, or `None` to remove the key (back to its default).
pub type Change = (String, Option<toml_edit::Value>);

/// What an accepted change did, per key: old and new as shown in the audit log (secrets
/// masked), and whether a restart is needed for it to take effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub key: String,
    pub old: String,
    pub new: String,
    pub restart: bool,
}

/// The config file with a lock, so two edits never interleave their read-modify-write.
pub struct Editor {
    path: PathBuf,
    lock: Mutex<()>,
    live: Live,
}

impl Editor {
    pub fn new(path: PathBuf, live: Live) -> Editor {
        Editor {
            path,
            lock: Mutex::new(()),
            live,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn live(&self) -> &Live {
        &self.live
    }

    /// The file's text and the configuration it gives (with the environment's overrides).
    pub fn read(&self) -> Result<(String, Config), EditError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| EditError::Read {
            path: self.path.clone(),
            source,
        })?;
        let cfg = Config::from_text(Some((&self.path, &text)), process_env()).map_err(|e| {
            EditError::Unreadable {
                path: self.path.clone(),
                message: e.to_string(),
            }
        })?;
        Ok((text, cfg))
    }

    /// Applies all `changes` or none: each key is checked alone and then all together with
    /// the start-up rules; on refusal the file is not touched.
    pub fn apply(&self, changes: &[Change]) -> Result<Vec<Changed>, EditError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let (text, old) = self.read()?;
        let mut errors = BTreeMap::new();
        for (key, _) in changes {
            if setting(key).is_none() {
                errors.insert(
                    key.clone(),
                    if super::KEYS.contains(&key.as_str()) {
                        "this key is changed in the config file only".to_string()
                    } else {
                        "not a setting".to_string()
                    },
                );
            }
        }
        if !errors.is_empty() {
            return Err(EditError::Refused(errors));
        }
        // Alone first, so several independent mistakes are all reported at once.
        for change in changes {
            let one = edited(&text, std::slice::from_ref(change));
            if let Err(e) = Config::from_text(Some((&self.path, &one)), process_env()) {
                let (key, msg) = field_error(&e, &change.0);
                errors.entry(key).or_insert(msg);
            }
        }
        let new_text = edited(&text, changes);
        let new = if errors.is_empty() {
            match Config::from_text(Some((&self.path, &new_text)), process_env()) {
                Ok(c) => Some(c),
                Err(e) => {
                    let (key, msg) = field_error(&e, &changes[0].0);
                    errors.insert(key, msg);
                    None
                }
            }
        } else {
            None
        };
        let Some(new) = new else {
            return Err(EditError::Refused(errors));
        };
        let (old_v, new_v) = (Values::of(&old), Values::of(&new));
        let done: Vec<Changed> = changes
            .iter()
            .filter_map(|(key, _)| {
                let s = setting(key)?;
                let (o, n) = (old_v.shown(s), new_v.shown(s));
                let differs = if s.secret() {
                    secret(&old, key) != secret(&new, key)
                } else {
                    o != n
                };
                differs.then(|| Changed {
                    key: key.clone(),
                    old: o,
                    new: n,
                    restart: !s.live,
                })
            })
            .collect();
        if new_text != text {
            write_atomic(&self.path, &new_text).map_err(|source| EditError::Write {
                path: self.path.clone(),
                source,
            })?;
        }
        self.live.update(&new);
        Ok(done)
    }
}

fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            k.starts_with(ENV_PREFIX)
                .then(|| (k, v.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The environment variable that overrides `key`, if one is set (a file change then does not
/// show until it is removed).
pub fn env_override(key: &str) -> Option<String> {
    let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
    std::env::var_os(&var).map(|_| var)
}

/// `text` with `changes` applied, formatting and comments kept. A text that does not parse
/// is returned unchanged (the check that follows reports the syntax error).
fn edited(text: &str, changes: &[Change]) -> String {
    let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
        return text.to_string();
    };
    for (key, value) in changes {
        match value {
            None => {
                doc.remove(key);
            }
            Some(v) => {
                let mut v = v.clone();
                // Keep the comment written after the old value on the same line.
                if let Some(old) = doc.get(key).and_then(|i| i.as_value()) {
                    let suffix = old.decor().suffix().cloned();
                    v.decor_mut().clear();
                    if let Some(sfx) = suffix {
                        v.decor_mut().set_suffix(sfx);
                    }
                    v.decor_mut().set_prefix(" ");
                    doc[key.as_str()] = toml_edit::Item::Value(v);
                } else {
                    doc.insert(key, toml_edit::Item::Value(v));
                }
            }
        }
    }
    doc.to_string()
}

/// The key an error is about and its message without the file location (the page shows it
/// beside the field).
fn field_error(e: &ConfigError, fallback: &str) -> (String, String) {
    // The hints are written for the file ("use 1..=300 seconds"); beside a field, words read better.
    let (key, msg) = field_error_raw(e, fallback);
    (key, msg.replace("..=", " to "))
}

fn field_error_raw(e: &ConfigError, fallback: &str) -> (String, String) {
    match e {
        ConfigError::OutOfRange { key, value, .. } => (
            key.to_string(),
            format!("{value} is out of range: {}", super::hint(key)),
        ),
        ConfigError::Invalid {
            key, value, reason, ..
        } => (
            key.to_string(),
            format!("{value} is not valid: {reason}: {}", super::hint(key)),
        ),
        other => (fallback.to_string(), other.to_string()),
    }
}

/// Every setting's value in one configuration as TOML, the configuration serialized once.
/// A page that shows every setting reads them here: serializing the whole configuration once
/// per key (and per comparison) made the settings page cost O(settings²), about 40 M
/// instructions of a first view.
pub struct Values(toml::Table);

impl Values {
    pub fn of(cfg: &Config) -> Values {
        // A configuration that does not serialize has no value to show: every key unset.
        Values(toml::Table::try_from(cfg).unwrap_or_default())
    }

    /// A setting's value as TOML, or `None` when unset. Secrets give `(redacted)`.
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        self.0.get(key)
    }

    /// The value as the audit log and messages show it: secrets as "set"/"not set".
    pub fn shown(&self, s: &Setting) -> String {
        match (s.secret(), self.get(s.key)) {
            (true, Some(_)) => "(set)".into(),
            (_, None) => "(not set)".into(),
            (false, Some(v)) => v.to_string(),
        }
    }
}

/// A setting's value in `cfg` as TOML, or `None` when unset. Secrets give `(redacted)`.
/// For many keys of one configuration, read a [`Values`] once instead.
pub fn value(cfg: &Config, key: &str) -> Option<toml::Value> {
    Values::of(cfg).get(key).cloned()
}

/// A secret's clear text in `cfg` (to tell a replaced secret from an unchanged one).
fn secret<'a>(cfg: &'a Config, key: &str) -> Option<&'a str> {
    match key {
        "smtp_password" => cfg.smtp_password.as_ref(),
        "webhook_token" => cfg.webhook_token.as_ref(),
        "mqtt_password" => cfg.mqtt_password.as_ref(),
        "ntfy_token" => cfg.ntfy_token.as_ref(),
        "gotify_token" => cfg.gotify_token.as_ref(),
        "telegram_bot_token" => cfg.telegram_bot_token.as_ref(),
        "pushover_token" => cfg.pushover_token.as_ref(),
        "pushover_user" => cfg.pushover_user.as_ref(),
        "discord_webhook_url" => cfg.discord_webhook_url.as_ref(),
        "homeassistant_webhook_url" => cfg.homeassistant_webhook_url.as_ref(),
        "remote_write_token" => cfg.remote_write_token.as_ref(),
        "router_snmp_community" => cfg.router_snmp_community.as_ref(),
        _ => None,
    }
    .map(super::Secret::expose)
}

/// A setting's built-in default as TOML, or `None` when unset by default.
pub fn default_value(key: &str) -> Option<toml::Value> {
    value(&Config::default(), key)
}

/// The value as the audit log and messages show it: secrets as "set"/"not set".
pub fn shown(s: &Setting, cfg: &Config) -> String {
    Values::of(cfg).shown(s)
}

/// A value typed into the page's form, as the TOML value to write (`None`: remove the key).
pub fn from_form(s: &Setting, raw: &str) -> Result<Option<toml_edit::Value>, String> {
    let raw = raw.trim();
    Ok(match s.kind {
        Kind::Bool => Some(matches!(raw, "true" | "on" | "yes" | "1").into()),
        Kind::Int | Kind::OptInt => {
            if raw.is_empty() && s.kind == Kind::OptInt {
                None
            } else {
                Some(
                    raw.parse::<i64>()
                        .map_err(|_| format!("\"{raw}\" is not a whole number"))?
                        .into(),
                )
            }
        }
        Kind::OptText | Kind::Secret if raw.is_empty() => None,
        Kind::Text | Kind::OptText | Kind::Secret | Kind::Choice(_) => Some(raw.into()),
        Kind::List => {
            let mut a = toml_edit::Array::new();
            for item in raw
                .split(['\n', ','])
                .map(str::trim)
                .filter(|i| !i.is_empty())
            {
                a.push(item);
            }
            Some(toml_edit::Value::Array(a))
        }
    })
}

/// A JSON value from the API as the TOML value to write (`null` removes the key).
pub fn from_json(v: &serde_json::Value) -> Result<Option<toml_edit::Value>, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => None,
        J::Bool(b) => Some((*b).into()),
        J::Number(n) => Some(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not a whole number"))?
                .into(),
        ),
        J::String(s) => Some(s.as_str().into()),
        J::Array(items) => {
            let mut a = toml_edit::Array::new();
            for i in items {
                a.push(
                    i.as_str()
                        .ok_or_else(|| "a list holds strings only".to_string())?,
                );
            }
            Some(toml_edit::Value::Array(a))
        }
        J::Object(_) => return Err("an object is not a setting's value".into()),
    })
}

/// Replaces `path` with `text` so that a crash leaves either the old or the new file: a
/// temporary file in the same folder (same file system, so the rename is atomic), synced,
/// with the old file's permissions and owner, renamed over it, and the folder synced.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            f.set_permissions(meta.permissions())?;
            // Keeping the group (root:lanmeter) needs privileges the service may lack; the
            // file then belongs to the service, which may read it either way.
            let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# lanmeter config\n\n# Alerts\nalert_new_device = true  # tell me\nalert_cpu_temp_c = 80\n\n# Mail\nsmtp_host = \"mail.example.org\"\nsmtp_password = \"hunter2\"\n";

    fn editor(text: &str) -> (tempfile::TempDir, Editor) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lanmeter.toml");
        std::fs::write(&path, text).unwrap();
        let ed = Editor::new(path, Live::new(Config::default()));
        (dir, ed)
    }

    #[test]
    fn every_secret_setting_is_a_secret_field() {
        let cfg = Config {
            smtp_password: Some(super::super::Secret::new("a")),
            webhook_token: Some(super::super::Secret::new("b")),
            mqtt_password: Some(super::super::Secret::new("c")),
            ntfy_token: Some(super::super::Secret::new("d")),
            gotify_token: Some(super::super::Secret::new("e")),
            telegram_bot_token: Some(super::super::Secret::new("f")),
            pushover_token: Some(super::super::Secret::new("g")),
            pushover_user: Some(super::super::Secret::new("h")),
            discord_webhook_url: Some(super::super::Secret::new("http://i")),
            homeassistant_webhook_url: Some(super::super::Secret::new("http://j")),
            remote_write_token: Some(super::super::Secret::new("k")),
            router_snmp_community: Some(super::super::Secret::new("l")),
            ..Config::default()
        };
        for s in SETTINGS.iter().filter(|s| s.secret()) {
            assert!(secret(&cfg, s.key).is_some(), "{}", s.key);
        }
    }

    #[test]
    fn every_setting_is_a_config_key_in_a_group_once() {
        let mut seen = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(super::super::KEYS.contains(&s.key), "{}", s.key);
            assert!(GROUPS.contains(&s.group), "{}", s.group);
            assert!(seen.insert(s.key), "{} twice", s.key);
        }
    }

    #[test]
    fn live_marks_match_copy_live() {
        // A config that differs from the default in every live key (the one written below).
        let text = "alert_new_device = false\nalert_new_device_learning_minutes = 5\nalert_offline_minutes = 7\nalert_absence_days = 9\nalert_unusual_usage = false\nalert_unusual_k = 3\nalert_unusual_min_mb = 11\nalert_unusual_weeks = 3\nalert_health = false\nalert_no_packets_minutes = 13\nalert_kernel_drop_percent = 5\nalert_disk_percent = 50\nalert_cpu_temp_c = 60\nalert_cooldown_minutes = 17\nquiet_hours_from = 22\nquiet_hours_to = 6\nalert_digest = true\nalert_digest_hour = 9\nweekly_summary = false\nweekly_summary_weekday = 3\nweekly_summary_hour = 10\nmail_alerts = [\"plan\"]\nwebhook_alerts = [\"plan\"]\nntfy_url = \"http://n/t\"\nntfy_token = \"t\"\nntfy_priority = \"high\"\nntfy_alerts = [\"plan\"]\ngotify_url = \"http://g\"\ngotify_token = \"t\"\ngotify_alerts = [\"plan\"]\ntelegram_bot_token = \"t\"\ntelegram_chat_id = \"1\"\ntelegram_alerts = [\"plan\"]\npushover_token = \"t\"\npushover_user = \"u\"\npushover_alerts = [\"plan\"]\ndiscord_webhook_url = \"http://d\"\ndiscord_alerts = [\"plan\"]\nhomeassistant_webhook_url = \"http://h\"\nhomeassistant_alerts = [\"plan\"]\noverage_price_per_gb = \"0.50\"\ncurrency = \"USD\"\ncoverage_alert_percent = 50\n";
        let changed = Config::from_text(Some((Path::new("t.toml"), text)), []).unwrap();
        let mut running = Config::default();
        copy_live(&mut running, &changed);
        for s in SETTINGS {
            let differs = value(&running, s.key) != default_value(s.key);
            assert_eq!(
                differs, s.live,
                "{}: copied {differs}, marked live {}",
                s.key, s.live
            );
        }
    }

    #[test]
    fn a_change_keeps_comments_and_layout() {
        let (_d, ed) = editor(FILE);
        let done = ed
            .apply(&[
                ("alert_new_device".into(), Some(false.into())),
                ("alert_digest_hour".into(), Some(7.into())),
            ])
            .unwrap();
        let text = std::fs::read_to_string(ed.path()).unwrap();
        assert_eq!(
            text,
            FILE.replace(
                "alert_new_device = true  # tell me",
                "alert_new_device = false  # tell me"
            ) + "alert_digest_hour = 7\n"
        );
        assert_eq!(done.len(), 2);
        assert!(!done[0].restart);
        assert!(!ed.live().get().alert_new_device);
        assert_eq!(ed.live().get().alert_digest_hour, 7);
    }

    #[test]
    fn refused_changes_name_each_field_and_leave_the_file_alone() {
        let (_d, ed) = editor(FILE);
        let err = ed
            .apply(&[
                ("alert_cpu_temp_c".into(), Some(500.into())),
                ("timezone".into(), Some("Mars/Olympus".into())),
                ("alert_digest".into(), Some(true.into())),
            ])
            .unwrap_err();
        let EditError::Refused(errors) = err else {
            panic!("{err}")
        };
        assert!(
            errors["alert_cpu_temp_c"].contains("40 to 120"),
            "{errors:?}"
        );
        assert!(errors["timezone"].contains("Mars/Olympus"), "{errors:?}");
        assert_eq!(errors.len(), 2);
        assert_eq!(std::fs::read_to_string(ed.path()).unwrap(), FILE);
    }

    #[test]
    fn cross_field_rules_and_unknown_keys_are_refused() {
        let (_d, ed) = editor(FILE);
        let EditError::Refused(e) = ed
            .apply(&[("quiet_hours_from".into(), Some(22.into()))])
            .unwrap_err()
        else {
            panic!()
        };
        assert!(e["quiet_hours_from"].contains("set both"), "{e:?}");
        let EditError::Refused(e) = ed
            .apply(&[
                ("listen".into(), Some("0.0.0.0:1".into())),
                ("nope".into(), None),
            ])
            .unwrap_err()
        else {
            panic!()
        };
        assert_eq!(e.len(), 2);
        assert_eq!(std::fs::read_to_string(ed.path()).unwrap(), FILE);
    }

    #[test]
    fn secrets_are_masked_and_clearing_restores_the_default() {
        let (_d, ed) = editor(FILE);
        let done = ed
            .apply(&[
                ("smtp_password".into(), Some("new-secret".into())),
                ("smtp_host".into(), None),
            ])
            .unwrap();
        assert_eq!(done[0].old, "(set)");
        assert_eq!(done[0].new, "(set)");
        assert!(done[0].restart);
        assert_eq!(done[1].new, "(not set)");
        let text = std::fs::read_to_string(ed.path()).unwrap();
        assert!(text.contains("smtp_password = \"new-secret\""));
        assert!(!text.contains("smtp_host"));
        assert!(text.starts_with("# lanmeter config\n\n# Alerts\n"));
    }

    #[test]
    fn form_values_become_typed_toml() {
        let list = setting("mail_to").unwrap();
        assert_eq!(
            from_form(list, "a@x.org\n b@y.org, ")
                .unwrap()
                .unwrap()
                .to_string(),
            "[\"a@x.org\", \"b@y.org\"]"
        );
        let n = setting("alert_cpu_temp_c").unwrap();
        assert!(from_form(n, "hot").unwrap_err().contains("whole number"));
        assert!(
            from_form(setting("quiet_hours_to").unwrap(), "")
                .unwrap()
                .is_none()
        );
    }
}
