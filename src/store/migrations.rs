//! Versioned schema migrations: an ordered list of SQL steps whose length is the schema version
//! (`PRAGMA user_version`).
//!
//! Steps are append-only: once released, a step is never edited or reordered, because databases
//! in the field record only how many steps they have applied. Never put data-dependent Rust
//! logic here; a step is plain SQL so it can be read and replayed by hand.
use super::{StoreError, sql_err};
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// Schema v1: devices and per-minute usage buckets.
///
/// `mac` is `MacAddr::to_u64` (48 bits, always fits an i64). `minute` is the UTC minute start in
/// seconds since the epoch: minute boundaries are the same in every time zone, so local-time
/// buckets (hour, day, month) are derived from it at read time. Counters are non-negative.
/// STRICT makes SQLite refuse a value of the wrong type instead of storing it silently.
///
/// The usage key is (minute, device_id), minute FIRST: a flush writes one minute for every
/// active device, and with the minute leading those rows sit side by side in a few B-tree
/// pages. With (device_id, minute) each device's row lands on its own leaf page: measured with
/// 1,000 devices after a day of history, one flush wrote 5.4 MB of WAL (vs 87 KB) and took
/// 11-37 ms (vs 3 ms), i.e. tens of GB a day of SD-card wear. The same key serves time-range
/// reads across devices (export, rollups, retention) without a second index.
const V1: &str = "
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    mac INTEGER NOT NULL UNIQUE,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    is_gateway INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE usage_minute (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    minute INTEGER NOT NULL,
    frames_sent INTEGER NOT NULL,
    frames_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    internet_upload_bytes INTEGER NOT NULL,
    internet_download_bytes INTEGER NOT NULL,
    PRIMARY KEY (minute, device_id)
) STRICT, WITHOUT ROWID;
";

/// History rollups (issue 4): hour, day and month buckets in the household time zone, and the
/// state that says how far minutes have been rolled up and how far retention has deleted.
///
/// `start` is the bucket's first instant (UTC seconds) on the zone's local boundaries, so one
/// key type serves every zone, including half-hour offsets. Keys lead with `start` for the same
/// reason as `usage_minute`: rollups and retention work on time ranges across devices.
/// `active_minutes` counts the minute rows folded in, so presence survives minute retention.
///
/// `history_state` has at most one row (absent until the first rollup). Invariants the store
/// keeps: every minute ever written before `hour_rolled` is in `usage_hour`, before `day_rolled`
/// in `usage_day`, before `month_rolled` in `usage_month` (late minutes are written through),
/// and no later one (a watermark inside a bucket: its row holds the minutes before it);
/// rows of a level starting before its `*_kept` have been deleted by retention.
const V_HISTORY: &str = "
CREATE TABLE usage_hour (
    start INTEGER NOT NULL,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    frames_sent INTEGER NOT NULL,
    frames_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    internet_upload_bytes INTEGER NOT NULL,
    internet_download_bytes INTEGER NOT NULL,
    active_minutes INTEGER NOT NULL,
    PRIMARY KEY (start, device_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE usage_day (
    start INTEGER NOT NULL,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    frames_sent INTEGER NOT NULL,
    frames_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    internet_upload_bytes INTEGER NOT NULL,
    internet_download_bytes INTEGER NOT NULL,
    active_minutes INTEGER NOT NULL,
    PRIMARY KEY (start, device_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE usage_month (
    start INTEGER NOT NULL,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    frames_sent INTEGER NOT NULL,
    frames_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    internet_upload_bytes INTEGER NOT NULL,
    internet_download_bytes INTEGER NOT NULL,
    active_minutes INTEGER NOT NULL,
    PRIMARY KEY (start, device_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE history_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    zone TEXT NOT NULL,
    hour_rolled INTEGER NOT NULL,
    day_rolled INTEGER NOT NULL,
    month_rolled INTEGER NOT NULL,
    minute_kept INTEGER NOT NULL,
    hour_kept INTEGER NOT NULL,
    day_kept INTEGER NOT NULL,
    month_kept INTEGER NOT NULL
) STRICT;
";

/// Schema step: who may get in (see `store::auth`). Passwords are argon2id PHC strings, one per
/// role; session ids and tokens are stored only as SHA-256 digests; times are Unix seconds.
/// `login_throttle` is keyed by client address and survives restarts, so a lockout holds until
/// `lanmeter unlock` clears it. The audit log is append-only apart from pruning its oldest rows.
const AUTH: &str = "
CREATE TABLE auth_passwords (
    role TEXT PRIMARY KEY CHECK (role IN ('admin', 'viewer')),
    phc TEXT NOT NULL,
    changed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id_digest TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    client TEXT NOT NULL
) STRICT;

CREATE TABLE login_throttle (
    client TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    locked INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    client TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;
";

/// Discovery: a device is an identity (`devices.id`) that may own several MACs (`device_macs`),
/// so a phone rotating private addresses keeps one history. `devices.mac` stays the first MAC
/// the device was seen with. Every device row gets its MAC mapping, its randomized flag and a
/// durable `new_device` event from a trigger, whichever path inserted it (flush or discovery).
/// Strings a device announced are stored escaped (discovery::text) and capped at 255 bytes.
/// `presence` holds online intervals: online from `online_from_ns` until `last_seen_ns` plus
/// the presence window. `device_events` has no foreign key: an event outlives a merge.
const V_DISCOVERY: &str = "
ALTER TABLE devices ADD COLUMN randomized INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN vendor TEXT;
ALTER TABLE devices ADD COLUMN vendor_class TEXT;
ALTER TABLE devices ADD COLUMN type_guess TEXT;
ALTER TABLE devices ADD COLUMN advertises_routes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN name TEXT;
ALTER TABLE devices ADD COLUMN owner TEXT;
ALTER TABLE devices ADD COLUMN device_group TEXT;
ALTER TABLE devices ADD COLUMN type_override TEXT;
ALTER TABLE devices ADD COLUMN notes TEXT;
ALTER TABLE devices ADD COLUMN known INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN ignored INTEGER NOT NULL DEFAULT 0;
UPDATE devices SET randomized = (mac >> 41) & 1;

CREATE TABLE device_macs (
    mac INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
) STRICT;
CREATE INDEX device_macs_device ON device_macs(device_id);
INSERT INTO device_macs (mac, device_id, first_seen_ns, last_seen_ns)
    SELECT mac, id, first_seen_ns, last_seen_ns FROM devices;

CREATE TABLE device_addresses (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    addr TEXT NOT NULL,
    family INTEGER NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (device_id, addr)
) STRICT, WITHOUT ROWID;

CREATE TABLE device_hostnames (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (device_id, source, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX device_hostnames_name ON device_hostnames(name COLLATE NOCASE);

CREATE TABLE device_services (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    service TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (device_id, service)
) STRICT, WITHOUT ROWID;

CREATE TABLE device_client_ids (
    client_id TEXT PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
) STRICT;

CREATE TABLE presence (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    online_from_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (device_id, online_from_ns)
) STRICT, WITHOUT ROWID;

CREATE TABLE device_events (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL,
    mac INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    detail TEXT
) STRICT;

CREATE TRIGGER devices_identity AFTER INSERT ON devices BEGIN
    UPDATE devices SET randomized = (NEW.mac >> 41) & 1 WHERE id = NEW.id;
    INSERT OR IGNORE INTO device_macs (mac, device_id, first_seen_ns, last_seen_ns)
        VALUES (NEW.mac, NEW.id, NEW.first_seen_ns, NEW.last_seen_ns);
    INSERT INTO device_events (device_id, mac, kind, at_ns)
        VALUES (NEW.id, NEW.mac, 'new_device', NEW.first_seen_ns);
END;
";

/// The Wi-Fi survey (store/survey.rs): access points, their signal per minute, what was heard
/// per frequency per minute, clients heard probing and the names they asked for.
///
/// SSIDs are BLOBs: an SSID is up to 32 arbitrary bytes, and storing the exact bytes keeps hostile
/// or non-UTF-8 names lossless (display escaping happens when shown). `named` says the stored
/// SSID is a real name (not empty or zero-filled), so a hidden beacon never overwrites a name a
/// probe response revealed. Band is '2.4GHz'/'5GHz'/'6GHz' because channel numbers repeat
/// across bands. Minute tables are keyed minute first, like usage_minute, for the same reason.
const V_WIFI_SURVEY: &str = "
CREATE TABLE wifi_ap (
    id INTEGER PRIMARY KEY,
    bssid INTEGER NOT NULL UNIQUE,
    ssid BLOB,
    named INTEGER NOT NULL DEFAULT 0,
    hidden INTEGER NOT NULL DEFAULT 0,
    band TEXT,
    channel INTEGER,
    width_mhz INTEGER,
    center_mhz INTEGER,
    security TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    beacons INTEGER NOT NULL,
    probe_responses INTEGER NOT NULL
) STRICT;

CREATE TABLE wifi_ap_minute (
    minute INTEGER NOT NULL,
    ap_id INTEGER NOT NULL REFERENCES wifi_ap(id),
    frames INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    sum_dbm INTEGER NOT NULL,
    min_dbm INTEGER,
    max_dbm INTEGER,
    PRIMARY KEY (minute, ap_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE wifi_channel_minute (
    minute INTEGER NOT NULL,
    freq_mhz INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    airtime_us INTEGER NOT NULL,
    timed_frames INTEGER NOT NULL,
    strongest_dbm INTEGER,
    first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL,
    PRIMARY KEY (minute, freq_mhz)
) STRICT, WITHOUT ROWID;

CREATE TABLE wifi_client (
    id INTEGER PRIMARY KEY,
    mac INTEGER NOT NULL UNIQUE,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    probes INTEGER NOT NULL,
    strongest_dbm INTEGER
) STRICT;

CREATE TABLE wifi_client_ssid (
    client_id INTEGER NOT NULL REFERENCES wifi_client(id),
    ssid BLOB NOT NULL,
    UNIQUE (client_id, ssid)
) STRICT;
";

/// Alerts (issue 7): one row per alert episode, the durable outbox of messages, the engine's
/// small state (device-event cursor, link secret, schedule marks) and the user's "should always
/// be online" flag on devices.
///
/// At most one open (unresolved) alert per (rule, subject): the partial unique index is the
/// deduplication the engine relies on. `notify` says what happens to the alert's notification:
/// `pending` (waiting for the next instant send, the end of quiet hours or the digest), `queued`
/// (an outbox message carries it), `suppressed` (cooldown) or `off` (no channel configured).
/// An outbox row is written before anything is sent, and is finished by exactly one of
/// `delivered_at` or `failed_at` (expired, with `last_error` saying why). The device-event
/// cursor starts at the newest event, so devices known before this upgrade are not news.
const V_ALERTS: &str = "
ALTER TABLE devices ADD COLUMN always_online INTEGER NOT NULL DEFAULT 0;

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    facts TEXT NOT NULL,
    links TEXT NOT NULL,
    auto_resolve INTEGER NOT NULL,
    occurrences INTEGER NOT NULL DEFAULT 1,
    triggered_at INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL,
    notify TEXT NOT NULL,
    queued_at INTEGER,
    notified_at INTEGER,
    acked_at INTEGER,
    acked_by TEXT,
    resolved_at INTEGER
) STRICT;
CREATE UNIQUE INDEX alerts_open ON alerts(rule, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_subject ON alerts(rule, subject, triggered_at);
CREATE INDEX alerts_triggered ON alerts(triggered_at);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    kind TEXT NOT NULL,
    alert_ids TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT,
    json_body TEXT,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    delivered_at INTEGER,
    failed_at INTEGER,
    last_error TEXT
) STRICT;
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE alert_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
INSERT INTO alert_state (key, value)
    SELECT 'device_events_cursor', CAST(COALESCE(MAX(id), 0) AS TEXT) FROM device_events;
INSERT INTO alert_state (key, value) VALUES ('installed_at', CAST(unixepoch() AS TEXT));
";

/// API tokens (issue 10): scripts, Prometheus and Home Assistant authenticate with a bearer
/// token instead of a session. Only the SHA-256 digest of a token is stored (like session ids);
/// `prefix` is the token's first characters, shown so a person can tell tokens apart. A revoked
/// token keeps its row (with `revoked_at`) so the list shows what was revoked and when.
const API_TOKENS: &str = "
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    digest TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
) STRICT;
";

/// The household data plan (issue 8, see `store::plan`): one settings row (absent until an admin
/// saves the plan: the default plan applies), calibration offsets tied to the exact bounds of
/// the cycle they were made in, quotas per device (by MAC text) / person / group, and the keys
/// of plan alerts already sent, each kept until its window ends. Cycles themselves are never
/// stored: they are computed from the settings, so a changed cycle re-reads the history.
const V_PLAN: &str = "
CREATE TABLE plan_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    allowance_bytes INTEGER CHECK (allowance_bytes IS NULL OR allowance_bytes > 0),
    cycle_kind TEXT NOT NULL CHECK (cycle_kind IN ('monthly', 'every_n_days')),
    start_day INTEGER NOT NULL DEFAULT 1 CHECK (start_day BETWEEN 1 AND 31),
    every_days INTEGER NOT NULL DEFAULT 30 CHECK (every_days BETWEEN 1 AND 366),
    anchor_date TEXT,
    counted TEXT NOT NULL CHECK (counted IN ('download', 'both')),
    thresholds TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE plan_calibrations (
    id INTEGER PRIMARY KEY,
    cycle_start INTEGER NOT NULL,
    cycle_end INTEGER NOT NULL,
    reported_at INTEGER NOT NULL,
    reported_bytes INTEGER NOT NULL CHECK (reported_bytes >= 0),
    measured_bytes INTEGER NOT NULL CHECK (measured_bytes >= 0),
    offset_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX plan_calibrations_cycle ON plan_calibrations(cycle_start, cycle_end);

CREATE TABLE quotas (
    id INTEGER PRIMARY KEY,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('device', 'person', 'group')),
    subject TEXT NOT NULL,
    period TEXT NOT NULL CHECK (period IN ('day', 'week', 'cycle')),
    limit_bytes INTEGER NOT NULL CHECK (limit_bytes > 0),
    created_at INTEGER NOT NULL,
    UNIQUE (subject_kind, subject, period)
) STRICT;

CREATE TABLE plan_alerts_sent (
    key TEXT PRIMARY KEY,
    window_end INTEGER NOT NULL,
    sent_at INTEGER NOT NULL
) STRICT;
";

/// Phone push channels (issue 21): the outbox takes messages for ntfy, Gotify, Telegram,
/// Pushover, Discord and Home Assistant too. SQLite cannot change a CHECK in place, so the
/// table is rebuilt with its rows (nothing references it).
const V_PUSH_CHANNELS: &str = "
CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'webhook', 'ntfy', 'gotify', 'telegram',
        'pushover', 'discord', 'homeassistant')),
    kind TEXT NOT NULL,
    alert_ids TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT,
    json_body TEXT,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    delivered_at INTEGER,
    failed_at INTEGER,
    last_error TEXT
) STRICT;
INSERT INTO outbox_new SELECT id, channel, kind, alert_ids, subject, text_body, html_body,
    json_body, created_at, next_attempt_at, attempts, expires_at, delivered_at, failed_at,
    last_error FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
";

/// Schema step (issue 26): per-bucket sums over every device of each rollup level, kept by the
/// rollups themselves (`rollup::totals`), so a household or all-devices total, series or heatmap
/// reads one row per bucket instead of one per device and bucket, and a device's own rows are
/// found by point lookups on the buckets listed here (`store::query`). The household is the
/// total minus the gateway's rows (the gateway flag can change; the sums need not). Existing
/// history is summed in here once.
const V_TOTALS: &str = "
CREATE TABLE total_hour (
    start INTEGER PRIMARY KEY,
    frames_sent INTEGER NOT NULL,
    frames_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    internet_upload_bytes INTEGER NOT NULL,
    internet_download_bytes INTEGER NOT NULL,
    active_minutes INTEGER NOT NULL
) STRICT;
INSERT INTO total_hour (start, frames_sent, frames_received, bytes_sent, bytes_received, internet_upload_bytes, internet_download_bytes, active_minutes)
    SELECT start, sum(frames_sent), sum(frames_received), sum(bytes_sent), sum(bytes_received),
        sum(internet_upload_bytes), sum(internet_download_bytes), sum(active_minutes)
    FROM usage_hour GROUP BY start;
CREATE TABLE total_day (
    start INTEGER PRIMARY KEY,
    frames_sent INTEGER NOT NULL,
    frames_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    internet_upload_bytes INTEGER NOT NULL,
    internet_download_bytes INTEGER NOT NULL,
    active_minutes INTEGER NOT NULL
) STRICT;
INSERT INTO total_day (start, frames_sent, frames_received, bytes_sent, bytes_received, internet_upload_bytes, internet_download_bytes, active_minutes)
    SELECT start, sum(frames_sent), sum(frames_received), sum(bytes_sent), sum(bytes_received),
        sum(internet_upload_bytes), sum(internet_download_bytes), sum(active_minutes)
    FROM usage_day GROUP BY start;
CREATE TABLE total_month (
    start INTEGER PRIMARY KEY,
    frames_sent INTEGER NOT NULL,
    frames_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    internet_upload_bytes INTEGER NOT NULL,
    internet_download_bytes INTEGER NOT NULL,
    active_minutes INTEGER NOT NULL
) STRICT;
INSERT INTO total_month (start, frames_sent, frames_received, bytes_sent, bytes_received, internet_upload_bytes, internet_download_bytes, active_minutes)
    SELECT start, sum(frames_sent), sum(frames_received), sum(bytes_sent), sum(bytes_received),
        sum(internet_upload_bytes), sum(internet_download_bytes), sum(active_minutes)
    FROM usage_month GROUP BY start;
";

/// What a merge changed, kept so it can be undone (store/undo.rs): the merged device's id, the
/// survivor's, the name shown in the offer, and a JSON copy of the rows. `history` is the
/// history watermarks when it was taken: a copy from before they moved can no longer be
/// applied exactly and is dropped at the next merge.
const V_DEVICE_UNDO: &str = "
CREATE TABLE device_undo (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL,
    into_id INTEGER NOT NULL,
    label TEXT,
    created_at_ns INTEGER NOT NULL,
    history TEXT NOT NULL,
    snapshot TEXT NOT NULL
) STRICT;
CREATE INDEX device_undo_into ON device_undo(into_id);
";

/// Prometheus remote write (issue 28): how far the history has been sent to the receiver at
/// `url` (`sent_through`: the start of the last minute sent, UTC seconds) and, per series, the
/// labels it was started with and the running totals sent so far. `series` is a device id, or
/// 0 for the household. A different `url` is a new receiver: everything is sent again.
const V_REMOTE_WRITE: &str = "
CREATE TABLE remote_write_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL,
    sent_through INTEGER NOT NULL
) STRICT;
CREATE TABLE remote_write_series (
    series INTEGER PRIMARY KEY,
    labels TEXT NOT NULL,
    frames_sent INTEGER NOT NULL,
    frames_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    internet_upload_bytes INTEGER NOT NULL,
    internet_download_bytes INTEGER NOT NULL
) STRICT;
";

/// Internet quality (issue 27): one row per minute of active probing (round states, loss and
/// latency per group: gateway, resolvers, internet targets; DNS resolution) and one row per
/// outage (`end_ns` NULL while it lasts; `last_ns` the last time it was seen going on, which
/// closes it when the daemon stopped during it). Minutes are Unix seconds at the minute's start.
const V_INTERNET: &str = "
CREATE TABLE internet_minute (
    minute INTEGER PRIMARY KEY,
    rounds INTEGER NOT NULL,
    up INTEGER NOT NULL,
    internet_down INTEGER NOT NULL,
    lan_down INTEGER NOT NULL,
    dns_down INTEGER NOT NULL,
    gw_sent INTEGER NOT NULL,
    gw_received INTEGER NOT NULL,
    gw_median_us INTEGER,
    gw_p95_us INTEGER,
    res_sent INTEGER NOT NULL,
    res_received INTEGER NOT NULL,
    res_median_us INTEGER,
    res_p95_us INTEGER,
    net_sent INTEGER NOT NULL,
    net_received INTEGER NOT NULL,
    net_median_us INTEGER,
    net_p95_us INTEGER,
    dns_queries INTEGER NOT NULL,
    dns_failures INTEGER NOT NULL,
    dns_median_us INTEGER
) STRICT;

CREATE TABLE internet_outage (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    last_ns INTEGER NOT NULL
) STRICT;
CREATE INDEX internet_outage_start ON internet_outage(start_ns);
";

/// Schema step (issue 24): the router's own WAN bytes per minute, beside the devices' history
/// and rolled up with it (hour, day and month rows on the same watermarks, deleted with the same
/// retention: `rollup`), and the poller's last status. `polls` counts the readings that went
/// into a row, `stuck_polls` those in which a byte counter was stuck (nothing counted then).
const V_ROUTER: &str = "
CREATE TABLE router_minute (
    minute INTEGER PRIMARY KEY,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    polls INTEGER NOT NULL,
    stuck_polls INTEGER NOT NULL
) STRICT;
CREATE TABLE router_hour (
    start INTEGER PRIMARY KEY,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    polls INTEGER NOT NULL,
    stuck_polls INTEGER NOT NULL
) STRICT;
CREATE TABLE router_day (
    start INTEGER PRIMARY KEY,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    polls INTEGER NOT NULL,
    stuck_polls INTEGER NOT NULL
) STRICT;
CREATE TABLE router_month (
    start INTEGER PRIMARY KEY,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    polls INTEGER NOT NULL,
    stuck_polls INTEGER NOT NULL
) STRICT;
CREATE TABLE router_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    updated_at INTEGER NOT NULL,
    status TEXT NOT NULL
) STRICT;
";

/// Schema step (issue 24): whose bytes the data plan counts, the devices' (as before) or the
/// router's WAN counters.
const V_PLAN_SOURCE: &str = "
ALTER TABLE plan_settings ADD COLUMN source TEXT NOT NULL DEFAULT 'devices'
    CHECK (source IN ('devices', 'router'));
";

/// Schema step (issue 27): passive latency, the household's TCP handshakes to the internet per
/// minute (count, median and 95th percentile of SYN to SYN-ACK), pruned with `internet_minute`.
const V_PASSIVE: &str = "
CREATE TABLE passive_minute (
    minute INTEGER PRIMARY KEY,
    handshakes INTEGER NOT NULL,
    median_us INTEGER,
    p95_us INTEGER
) STRICT;
";

/// Schema step (issue 27): passive latency per device (by MAC, so merges and their undo need
/// nothing) and hour: the count, median and 95th percentile, and the histogram itself
/// (`Histogram::to_sparse`, a few dozen bytes) so that hours add up exactly to a day's figures.
/// Hours rather than minutes: kept as long as `internet_minute` (92 days by default), a
/// household's 30 devices would leave up to 4 million minute rows, hours 66 000.
const V_PASSIVE_DEVICE: &str = "
CREATE TABLE passive_device_hour (
    mac INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    handshakes INTEGER NOT NULL,
    median_us INTEGER,
    p95_us INTEGER,
    buckets BLOB NOT NULL,
    PRIMARY KEY (mac, hour)
) STRICT, WITHOUT ROWID;
CREATE INDEX passive_device_hour_hour ON passive_device_hour(hour);
";

/// Schema step (issue 29, opt-in per-device services): (device, remote IP) → the name learned
/// from a DNS answer to the device or the SNI it sent, with its service; keyed like the
/// per-device endpoint rows so the two join on (device_id, remote_ip). Pruned by last_seen_ns.
const V_DEVICE_NAMES: &str = "
CREATE TABLE device_names (
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    remote_ip TEXT NOT NULL,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('dns', 'tls', 'quic')),
    dns_ttl_secs INTEGER,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (device_id, remote_ip)
) STRICT, WITHOUT ROWID;
CREATE INDEX device_names_last_seen ON device_names (last_seen_ns);
";

/// Schema step (issue 29, setting `per_device_services`): each device's internet bytes per remote
/// endpoint per UTC hour (`hour`: the hour's start, Unix seconds). `remote` is the text form of
/// `crate::endpoints`: an address as Rust prints it (`203.0.113.7`, `2001:db8::1`), a network
/// where the per-device bound aggregated (`203.0.113.0/24`, `2001:db8:1::/48`), or `other`.
/// Per device and hour the rows sum to its internet bytes. Hour first, as in `usage_minute`:
/// a flush writes one hour for many devices side by side.
const V_REMOTES: &str = "
CREATE TABLE device_remote_hour (
    hour INTEGER NOT NULL,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    remote TEXT NOT NULL,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    PRIMARY KEY (hour, device_id, remote)
) STRICT, WITHOUT ROWID;
";

/// Every schema step, oldest first. The schema version of a fully migrated file is the length.
pub(super) const MIGRATIONS: &[&str] = &[
    V1,
    V_HISTORY,
    AUTH,
    V_DISCOVERY,
    V_WIFI_SURVEY,
    V_ALERTS,
    API_TOKENS,
    V_PLAN,
    V_PUSH_CHANNELS,
    V_TOTALS,
    V_DEVICE_UNDO,
    V_REMOTE_WRITE,
    V_INTERNET,
    V_ROUTER,
    V_PLAN_SOURCE,
    V_PASSIVE,
    V_PASSIVE_DEVICE,
    V_DEVICE_NAMES,
    V_REMOTES,
];

pub(super) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Brings the file at `path` up to `steps.len()`, one transaction per step, or refuses a file
/// written by a newer build.
pub(super) fn migrate(
    conn: &mut Connection,
    path: &Path,
    steps: &[&str],
) -> Result<(), StoreError> {
    let known = steps.len();
    let current = user_version(conn).map_err(sql_err(path, "reading the schema version"))?;
    let current = check_version(path, current, known)?;
    for (index, sql) in steps.iter().enumerate().skip(current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(path, "starting a schema upgrade"))?;
        // Another process may have applied this step between our read and our write lock.
        let now = user_version(&tx).map_err(sql_err(path, "reading the schema version"))?;
        if check_version(path, now, known)? > index {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(sql_err(path, "applying a schema upgrade"))?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(sql_err(path, "recording the schema version"))?;
        tx.commit()
            .map_err(sql_err(path, "committing a schema upgrade"))?;
        tracing::info!(path = %path.display(), from = index, to = index + 1, "database schema upgraded");
    }
    Ok(())
}

fn check_version(path: &Path, found: i64, known: usize) -> Result<usize, StoreError> {
    match usize::try_from(found) {
        Ok(v) if v <= known => Ok(v),
        Ok(_) => Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known,
        }),
        Err(_) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("schema version {found} is not one lanmeter ever writes"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn fresh_file_gets_every_step_and_version_equals_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).unwrap();
        assert_eq!(user_version(&store.conn).unwrap(), MIGRATIONS.len() as i64);
        let t = tables(&store.conn);
        for want in [
            "devices",
            "usage_minute",
            "usage_hour",
            "usage_day",
            "usage_month",
            "sessions",
            "audit_log",
            "device_addresses",
            "device_client_ids",
            "device_events",
            "device_hostnames",
            "device_macs",
            "device_services",
            "presence",
            "wifi_ap",
            "wifi_client",
            "plan_settings",
            "plan_calibrations",
            "quotas",
            "plan_alerts_sent",
            "total_hour",
            "total_day",
            "total_month",
            "remote_write_cursor",
            "remote_write_series",
        ] {
            assert!(t.iter().any(|n| n == want), "{want} missing from {t:?}");
        }
    }

    #[test]
    fn older_file_is_upgraded_step_by_step_keeping_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate(
            &mut conn,
            &path,
            &["CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (7);"],
        )
        .unwrap();
        assert_eq!(user_version(&conn).unwrap(), 1);
        let steps = [
            "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (7);",
            "ALTER TABLE t ADD COLUMN y INTEGER NOT NULL DEFAULT 3;",
            "CREATE TABLE u(z TEXT);",
        ];
        migrate(&mut conn, &path, &steps).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 3);
        let (x, y): (i64, i64) = conn
            .query_row("SELECT x, y FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((x, y), (7, 3));
        // Idempotent: a second run applies nothing (re-running step 1 would fail: t exists).
        migrate(&mut conn, &path, &steps).unwrap();
    }

    #[test]
    fn failing_step_rolls_back_alone_and_keeps_earlier_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let mut conn = Connection::open(&path).unwrap();
        let steps = [
            "CREATE TABLE a(x INTEGER);",
            "CREATE TABLE b(x INTEGER); THIS IS NOT SQL;",
        ];
        let err = migrate(&mut conn, &path, &steps).unwrap_err();
        assert!(err.to_string().contains("f.db"), "{err}");
        assert_eq!(user_version(&conn).unwrap(), 1);
        assert_eq!(tables(&conn), ["a"]);
    }

    #[test]
    fn newer_file_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let err = Store::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, .. }),
            "{err:?}"
        );
        assert!(
            msg.contains("new.db")
                && msg.contains("schema 99")
                && msg.contains(&format!("knows {}", MIGRATIONS.len()))
                && msg.contains("upgrade lanmeter or restore a backup"),
            "{msg}"
        );
    }
}
