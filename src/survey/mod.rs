//! The Wi-Fi survey: what the air around the house holds, built from decoded 802.11 frames.
//!
//! It owns the in-memory [`Collector`] the monitor capture thread (or a replay) feeds — access
//! points, per-channel occupancy per minute, clients heard probing, all bounded so a beacon or
//! probe flood cannot grow memory — and the [`Survey`] report that a page, `replay --survey` and
//! the store's range query all return, with its JSON form. [`recommend`] turns a survey into a
//! channel recommendation. It never touches the database, the capture handle or the accounting
//! meter: the survey and byte accounting share nothing.
pub mod recommend;

use crate::capture::WifiSink;
use crate::capture::ieee80211::{Band, Channel, Kind, Security, Ssid, WifiFrame};
use crate::model::{MacAddr, TimestampNs, minute_of, rfc3339};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub use recommend::{Recommendation, recommend};

/// A flood is a rate: new access points first heard in one minute of capture time. A home hears
/// tens in total; a beacon flood (mdk4, a fuzzer) makes hundreds a second.
pub const MAX_NEW_APS_PER_MINUTE: u32 = 256;
/// New probing clients first heard in one minute. Phones that use a fresh randomized MAC per
/// scan make a few a minute on a busy street (a day-long capture of 26,177 probe requests held
/// about 6,000 addresses); a probe flood makes thousands a second.
pub const MAX_NEW_CLIENTS_PER_MINUTE: u32 = 1024;
/// Access points kept per collection interval, whatever the rate: a memory bound for a replayed
/// capture (one interval for the whole file) of days of a slow flood. About 2 KB each with a
/// day of signal minutes.
pub const MAX_APS: usize = 8192;
/// Clients kept per collection interval, whatever the rate (about 100 bytes each).
pub const MAX_CLIENTS: usize = 65_536;
/// SSIDs remembered per probing client.
pub const MAX_SSIDS_PER_CLIENT: usize = 16;
/// (minute, frequency) cells per collection interval. Live, an interval is one flush (a few
/// minutes); a replay is one interval for the whole file, and a day-long capture of a radio
/// hopping over 64 channels (every 2.4 GHz and 5 GHz 20 MHz channel) fits: 1,440 × 64 cells,
/// about 7 MB. Only frequencies that are an 802.11 channel get a cell, so a flood of frames with
/// made-up frequencies cannot fill it faster than the clock advances.
pub const MAX_CHANNEL_CELLS: usize = 1440 * 64;

/// Signal samples of one AP in one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalStats {
    /// Frames heard from the AP (beacons and probe responses).
    pub frames: u64,
    /// Frames that carried a signal reading.
    pub samples: u64,
    pub sum_dbm: i64,
    pub min_dbm: i8,
    pub max_dbm: i8,
}

impl SignalStats {
    fn add_frame(&mut self, signal: Option<i8>) {
        self.frames += 1;
        if let Some(s) = signal {
            if self.samples == 0 {
                self.min_dbm = s;
                self.max_dbm = s;
            }
            self.samples += 1;
            self.sum_dbm += i64::from(s);
            self.min_dbm = self.min_dbm.min(s);
            self.max_dbm = self.max_dbm.max(s);
        }
    }

    pub fn merge(&mut self, o: &SignalStats) {
        if o.samples > 0 {
            if self.samples == 0 {
                self.min_dbm = o.min_dbm;
                self.max_dbm = o.max_dbm;
            }
            self.min_dbm = self.min_dbm.min(o.min_dbm);
            self.max_dbm = self.max_dbm.max(o.max_dbm);
        }
        self.frames += o.frames;
        self.samples += o.samples;
        self.sum_dbm += o.sum_dbm;
    }

    /// Mean signal in dBm (an average of dBm values: good enough to rank and chart).
    pub fn mean_dbm(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.sum_dbm as f64 / self.samples as f64)
    }
}

/// One access point (BSS) as collected.
#[derive(Clone, Debug, PartialEq)]
pub struct Ap {
    pub bssid: MacAddr,
    /// The network name; for a hidden network, the name a probe response revealed, if any.
    pub ssid: Option<Ssid>,
    /// Its beacons hide the name.
    pub hidden: bool,
    pub channel: Option<Channel>,
    pub security: Security,
    pub first_seen: TimestampNs,
    pub last_seen: TimestampNs,
    pub beacons: u64,
    pub probe_responses: u64,
    /// Signal per minute (minute start, seconds since the epoch).
    pub minutes: BTreeMap<i64, SignalStats>,
}

impl Ap {
    pub fn signal(&self) -> SignalStats {
        let mut s = SignalStats::default();
        for m in self.minutes.values() {
            s.merge(m);
        }
        s
    }
}

/// What was heard on one frequency in one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelCell {
    pub frames: u64,
    /// Sum of estimated airtime of the frames whose rate radiotap gave.
    pub airtime_us: u64,
    pub timed_frames: u64,
    pub strongest_dbm: Option<i8>,
    pub first_ns: TimestampNs,
    pub last_ns: TimestampNs,
}

impl ChannelCell {
    pub fn merge(&mut self, o: &ChannelCell) {
        if self.frames == 0 {
            *self = *o;
            return;
        }
        self.frames += o.frames;
        self.airtime_us += o.airtime_us;
        self.timed_frames += o.timed_frames;
        self.strongest_dbm = self.strongest_dbm.max(o.strongest_dbm);
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
    }
}

/// A device heard sending probe requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub mac: MacAddr,
    pub first_seen: TimestampNs,
    pub last_seen: TimestampNs,
    pub probes: u64,
    pub strongest_dbm: Option<i8>,
    /// Networks it asked for by name (wildcard probes ask for none).
    pub ssids: Vec<Ssid>,
}

/// Accumulates decoded frames between two writes (live) or over a whole file (replay).
#[derive(Debug, Default)]
pub struct Collector {
    pub aps: HashMap<MacAddr, Ap>,
    /// Keyed by (minute, frequency heard).
    pub channels: HashMap<(i64, u16), ChannelCell>,
    pub clients: HashMap<MacAddr, Client>,
    /// Frames decoded; frames whose AP or client was refused because [`MAX_APS`] or
    /// [`MAX_CLIENTS`] was reached (a beacon or probe flood).
    pub frames: u64,
    pub refused: u64,
    /// Frames not counted in channel occupancy because [`MAX_CHANNEL_CELLS`] was reached (a
    /// replayed capture longer than a day of channel hopping), so `frames_heard` is short by
    /// exactly this many.
    pub refused_cells: u64,
    /// Access points whose name and security so far come only from frames whose element list
    /// ran past the frame: the first well-formed frame replaces them, and a malformed one never
    /// overrides a well-formed one.
    unsound: std::collections::HashSet<MacAddr>,
    /// The minute of capture time the two rates below count in, and the new APs and clients
    /// first heard in it (frames arrive in time order; a frame from another minute starts over).
    rate_minute: i64,
    new_aps: u32,
    new_clients: u32,
}

impl Collector {
    pub fn new() -> Collector {
        Collector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.aps.is_empty() && self.channels.is_empty() && self.clients.is_empty()
    }

    pub fn add(&mut self, f: &WifiFrame) {
        self.frames += 1;
        let minute = minute_of(f.ts);
        if minute != self.rate_minute {
            (self.rate_minute, self.new_aps, self.new_clients) = (minute, 0, 0);
        }
        // A frequency that is no 802.11 channel has no row in the report: no cell either.
        if let Some(freq) = f.heard_mhz.filter(|&mhz| Band::of_freq(mhz).is_some()) {
            let n = self.channels.len();
            match self.channels.get_mut(&(minute, freq)) {
                Some(c) => c.merge(&cell_of(f)),
                None if n < MAX_CHANNEL_CELLS => {
                    self.channels.insert((minute, freq), cell_of(f));
                }
                None => self.refused_cells += 1,
            }
        }
        // A frame whose checksum failed has unreliable addresses and elements.
        if f.bad_fcs {
            return;
        }
        match f.kind {
            Kind::Beacon | Kind::ProbeResponse => self.add_ap(f, minute),
            Kind::ProbeRequest => self.add_probe(f),
            _ => {}
        }
    }

    fn add_ap(&mut self, f: &WifiFrame, minute: i64) {
        // A zero BSSID is a corrupt frame. A group BSSID is kept (ACCOUNTING.md §2, "group
        // source addresses"): both modes count what was sent under the address it carried.
        if f.bssid == MacAddr([0; 6]) {
            return;
        }
        if !self.aps.contains_key(&f.bssid) {
            if self.aps.len() >= MAX_APS || self.new_aps >= MAX_NEW_APS_PER_MINUTE {
                self.refused += 1;
                return;
            }
            self.new_aps += 1;
            self.aps.insert(
                f.bssid,
                Ap {
                    bssid: f.bssid,
                    ssid: None,
                    hidden: false,
                    channel: None,
                    security: f.security,
                    first_seen: f.ts,
                    last_seen: f.ts,
                    beacons: 0,
                    probe_responses: 0,
                    minutes: BTreeMap::new(),
                },
            );
        }
        let Some(ap) = self.aps.get_mut(&f.bssid) else {
            return;
        };
        ap.first_seen = ap.first_seen.min(f.ts);
        let latest = f.ts >= ap.last_seen;
        ap.last_seen = ap.last_seen.max(f.ts);
        // An element claiming more bytes than the frame holds ends the list early: what such a
        // frame says about name and security (a missing RSN element reads as WEP) is evidence
        // only until a well-formed frame of the same AP is heard.
        let sound = !f.elements_truncated;
        let new_ap = ap.beacons + ap.probe_responses == 0;
        let first_sound = sound && (new_ap || self.unsound.remove(&f.bssid));
        if !sound && new_ap {
            self.unsound.insert(f.bssid);
        }
        let trusted = sound || self.unsound.contains(&f.bssid);
        if first_sound {
            // What malformed frames said before is replaced, not merged.
            ap.ssid = None;
            ap.security = f.security;
        }
        match f.ssid {
            _ if !trusted => {}
            Some(s) if !s.is_hidden() => ap.ssid = Some(s),
            Some(s) => {
                if f.kind == Kind::Beacon {
                    ap.hidden = true;
                }
                // An empty name says nothing; a zero-filled one at least gives the length.
                if ap.ssid.is_none_or(|old| old.is_hidden()) {
                    ap.ssid = Some(s);
                }
            }
            None => {}
        }
        if latest || ap.channel.is_none() {
            if f.channel.is_some() {
                ap.channel = f.channel;
            }
            if trusted {
                ap.security = f.security;
            }
        }
        if f.kind == Kind::Beacon {
            ap.beacons += 1;
        } else {
            ap.probe_responses += 1;
        }
        ap.minutes
            .entry(minute)
            .or_default()
            .add_frame(f.signal_dbm);
    }

    fn add_probe(&mut self, f: &WifiFrame) {
        // A group transmitter address is kept, as Ethernet replay keeps a group source
        // (ACCOUNTING.md §2, "group source addresses").
        let Some(mac) = f.transmitter else {
            return;
        };
        if !self.clients.contains_key(&mac) {
            if self.clients.len() >= MAX_CLIENTS || self.new_clients >= MAX_NEW_CLIENTS_PER_MINUTE {
                self.refused += 1;
                return;
            }
            self.new_clients += 1;
            self.clients.insert(
                mac,
                Client {
                    mac,
                    first_seen: f.ts,
                    last_seen: f.ts,
                    probes: 0,
                    strongest_dbm: None,
                    ssids: Vec::new(),
                },
            );
        }
        let Some(c) = self.clients.get_mut(&mac) else {
            return;
        };
        c.first_seen = c.first_seen.min(f.ts);
        c.last_seen = c.last_seen.max(f.ts);
        c.probes += 1;
        c.strongest_dbm = c.strongest_dbm.max(f.signal_dbm);
        if let Some(s) = f.ssid.filter(|s| !s.is_hidden())
            && !c.ssids.contains(&s)
            && c.ssids.len() < MAX_SSIDS_PER_CLIENT
        {
            c.ssids.push(s);
        }
    }

    /// The report of everything collected.
    pub fn survey(&self) -> Survey {
        let mut cells: BTreeMap<u16, ChannelCell> = BTreeMap::new();
        let mut listened: BTreeMap<u16, u64> = BTreeMap::new();
        for (&(_, freq), c) in &self.channels {
            cells.entry(freq).or_default().merge(c);
            *listened.entry(freq).or_default() += c.last_ns.saturating_sub(c.first_ns) as u64;
        }
        let heard = cells
            .into_iter()
            .map(|(freq, c)| (freq, c, listened.get(&freq).copied().unwrap_or(0) / 1000))
            .collect();
        Survey::assemble(
            self.aps.values().cloned().collect(),
            heard,
            self.clients.values().cloned().collect(),
        )
    }
}

/// The report row of a channel, created empty on first use; `None` for a number the band lacks.
fn slot(
    channels: &mut BTreeMap<(Band, u8), ChannelReport>,
    band: Band,
    number: u8,
) -> Option<&mut ChannelReport> {
    let freq_mhz = band.freq_of(number)?;
    Some(
        channels
            .entry((band, number))
            .or_insert_with(|| ChannelReport {
                band,
                number,
                freq_mhz,
                aps: 0,
                overlapping_aps: 0,
                strongest_ap_dbm: None,
                frames_heard: 0,
                airtime_us: 0,
                listened_us: 0,
            }),
    )
}

fn cell_of(f: &WifiFrame) -> ChannelCell {
    ChannelCell {
        frames: 1,
        airtime_us: f.airtime_us.map_or(0, u64::from),
        timed_frames: u64::from(f.airtime_us.is_some()),
        strongest_dbm: f.signal_dbm,
        first_ns: f.ts,
        last_ns: f.ts,
    }
}

impl WifiSink for Collector {
    fn ingest(&mut self, frames: &[WifiFrame]) {
        for f in frames {
            self.add(f);
        }
    }
}

/// A collector shared between the monitor capture thread and the writer that drains it.
/// A std `Mutex`: held only for one batch or one `mem::take`, never across I/O.
#[derive(Clone, Debug, Default)]
pub struct SharedCollector(Arc<Mutex<Collector>>);

impl SharedCollector {
    /// Everything collected since the last take; the capture thread carries on with an empty one.
    pub fn take(&self) -> Collector {
        // A poisoned lock means the capture thread panicked mid-batch; its partial data is still
        // worth writing.
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl WifiSink for SharedCollector {
    fn ingest(&mut self, frames: &[WifiFrame]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ingest(frames);
    }
}

/// One channel of the report: the APs operating on or overlapping it and what was heard there.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelReport {
    pub band: Band,
    pub number: u8,
    pub freq_mhz: u16,
    /// APs whose primary channel this is.
    pub aps: u32,
    /// APs whose span (20/40/80/160 MHz) covers this channel, primary or not.
    pub overlapping_aps: u32,
    /// The strongest mean signal among the APs whose primary channel this is.
    pub strongest_ap_dbm: Option<i8>,
    /// Frames the radio heard on this frequency, and their estimated airtime.
    pub frames_heard: u64,
    pub airtime_us: u64,
    /// Time between the first and last frame heard, summed per minute: the listening window
    /// the airtime is a share of.
    pub listened_us: u64,
}

impl ChannelReport {
    pub fn airtime_share(&self) -> Option<f64> {
        (self.listened_us > 0).then(|| (self.airtime_us as f64 / self.listened_us as f64).min(1.0))
    }
}

/// The survey of a time range: what a page renders and `replay --survey` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct Survey {
    /// Strongest first, then by BSSID.
    pub aps: Vec<Ap>,
    /// By band, then channel number.
    pub channels: Vec<ChannelReport>,
    /// Most recently heard first.
    pub clients: Vec<Client>,
}

impl Survey {
    /// Builds the report from its parts; `heard` is (frequency, summed cell, listened µs).
    pub fn assemble(
        mut aps: Vec<Ap>,
        heard: Vec<(u16, ChannelCell, u64)>,
        mut clients: Vec<Client>,
    ) -> Survey {
        aps.sort_by(|a, b| {
            let sa = a.signal().mean_dbm().unwrap_or(f64::NEG_INFINITY);
            let sb = b.signal().mean_dbm().unwrap_or(f64::NEG_INFINITY);
            sb.total_cmp(&sa).then(a.bssid.cmp(&b.bssid))
        });
        clients.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.mac.cmp(&b.mac)));
        let mut channels: BTreeMap<(Band, u8), ChannelReport> = BTreeMap::new();
        for (freq, cell, listened_us) in heard {
            if let Some((band, number)) = Band::of_freq(freq)
                && let Some(c) = slot(&mut channels, band, number)
            {
                c.frames_heard = cell.frames;
                c.airtime_us = cell.airtime_us;
                c.listened_us = listened_us;
            }
        }
        for ap in &aps {
            let Some(ch) = ap.channel else { continue };
            let mean = ap.signal().mean_dbm().map(|m| m.round() as i8);
            if let Some(c) = slot(&mut channels, ch.band, ch.number) {
                c.aps += 1;
                c.strongest_ap_dbm = c.strongest_ap_dbm.max(mean);
            }
        }
        // Overlap counts for every channel listed (the 20 MHz channel's own span).
        let listed: Vec<(Band, u8)> = channels.keys().copied().collect();
        for key in listed {
            let Some(c) = channels.get_mut(&key) else {
                continue;
            };
            let (lo, hi) = (c.freq_mhz - 10, c.freq_mhz + 10);
            c.overlapping_aps = aps
                .iter()
                .filter_map(|a| a.channel)
                .filter(|ch| ch.band == key.0)
                .filter(|ch| {
                    let (a, b) = ch.span();
                    a < hi && lo < b
                })
                .count() as u32;
        }
        Survey {
            aps,
            channels: channels.into_values().collect(),
            clients,
        }
    }

    /// The JSON document of `replay --survey`, recommendation included.
    pub fn to_json(&self, our_ssid: Option<&[u8]>) -> serde_json::Value {
        let aps: Vec<JsonAp> = self.aps.iter().map(|a| JsonAp::of(a, our_ssid)).collect();
        let channels: Vec<JsonChannel> = self.channels.iter().map(JsonChannel::of).collect();
        let clients: Vec<JsonClient> = self.clients.iter().map(JsonClient::of).collect();
        let rec = recommend(self, our_ssid);
        serde_json::json!({
            "access_points": aps,
            "channels": channels,
            "clients": clients,
            "recommendation": rec,
        })
    }
}

/// An SSID in JSON: the safe display form for people, the exact bytes in hex for machines.
#[derive(Serialize)]
pub struct JsonSsid {
    pub text: String,
    pub hex: String,
}

impl JsonSsid {
    pub fn of(s: &Ssid) -> JsonSsid {
        JsonSsid {
            text: s.display(),
            hex: s.to_hex(),
        }
    }
}

#[derive(Serialize)]
pub struct JsonSignal {
    pub mean_dbm: Option<f64>,
    pub min_dbm: Option<i8>,
    pub max_dbm: Option<i8>,
    pub samples: u64,
}

impl JsonSignal {
    fn of(s: &SignalStats) -> JsonSignal {
        let any = s.samples > 0;
        JsonSignal {
            mean_dbm: s.mean_dbm().map(|m| (m * 10.0).round() / 10.0),
            min_dbm: any.then_some(s.min_dbm),
            max_dbm: any.then_some(s.max_dbm),
            samples: s.samples,
        }
    }
}

#[derive(Serialize)]
pub struct JsonAp {
    pub bssid: String,
    pub ssid: Option<JsonSsid>,
    pub hidden: bool,
    pub ours: bool,
    pub band: Option<Band>,
    pub channel: Option<u8>,
    pub width_mhz: Option<u16>,
    pub center_mhz: Option<u16>,
    pub security: &'static str,
    pub first_seen: String,
    pub last_seen: String,
    pub beacons: u64,
    pub probe_responses: u64,
    pub signal: JsonSignal,
    /// From the BSSID's OUI; not looked up yet (the OUI table belongs to discovery).
    pub vendor: Option<String>,
    pub randomized_bssid: bool,
}

impl JsonAp {
    fn of(a: &Ap, our_ssid: Option<&[u8]>) -> JsonAp {
        JsonAp {
            bssid: a.bssid.to_string(),
            ssid: a.ssid.as_ref().map(JsonSsid::of),
            hidden: a.hidden,
            ours: is_ours(a, our_ssid),
            band: a.channel.map(|c| c.band),
            channel: a.channel.map(|c| c.number),
            width_mhz: a.channel.map(|c| c.width_mhz),
            center_mhz: a.channel.map(|c| c.center_mhz),
            security: a.security.as_str(),
            first_seen: rfc3339(a.first_seen),
            last_seen: rfc3339(a.last_seen),
            beacons: a.beacons,
            probe_responses: a.probe_responses,
            signal: JsonSignal::of(&a.signal()),
            vendor: None,
            randomized_bssid: a.bssid.is_locally_administered(),
        }
    }
}

/// "Our network": the AP announces the configured SSID (byte for byte).
pub fn is_ours(a: &Ap, our_ssid: Option<&[u8]>) -> bool {
    match (our_ssid, a.ssid) {
        (Some(ours), Some(s)) => !ours.is_empty() && s.as_bytes() == ours,
        _ => false,
    }
}

#[derive(Serialize)]
pub struct JsonChannel {
    pub band: Band,
    pub channel: u8,
    pub freq_mhz: u16,
    pub aps: u32,
    pub overlapping_aps: u32,
    pub strongest_ap_dbm: Option<i8>,
    pub frames_heard: u64,
    pub airtime_us: u64,
    pub listened_us: u64,
    pub airtime_share: Option<f64>,
}

impl JsonChannel {
    fn of(c: &ChannelReport) -> JsonChannel {
        JsonChannel {
            band: c.band,
            channel: c.number,
            freq_mhz: c.freq_mhz,
            aps: c.aps,
            overlapping_aps: c.overlapping_aps,
            strongest_ap_dbm: c.strongest_ap_dbm,
            frames_heard: c.frames_heard,
            airtime_us: c.airtime_us,
            listened_us: c.listened_us,
            airtime_share: c.airtime_share().map(|s| (s * 10_000.0).round() / 10_000.0),
        }
    }
}

#[derive(Serialize)]
pub struct JsonClient {
    pub mac: String,
    pub randomized: bool,
    pub first_seen: String,
    pub last_seen: String,
    pub probes: u64,
    pub strongest_dbm: Option<i8>,
    pub probed_ssids: Vec<JsonSsid>,
}

impl JsonClient {
    fn of(c: &Client) -> JsonClient {
        JsonClient {
            mac: c.mac.to_string(),
            randomized: c.mac.is_locally_administered(),
            first_seen: rfc3339(c.first_seen),
            last_seen: rfc3339(c.last_seen),
            probes: c.probes,
            strongest_dbm: c.strongest_dbm,
            probed_ssids: c.ssids.iter().map(JsonSsid::of).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
