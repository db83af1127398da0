//! The channel recommendation: a pure function from a [`Survey`] (and the household's SSID) to
//! advice per band, with the reasoning kept as data so a page can show why.
//!
//! A candidate channel is scored by the networks whose occupied span (20/40/80/160 MHz, from
//! their operation elements) overlaps the span our radio would occupy there, each weighted by
//! how loud it is (`mean dBm + 100`, clamped to 1..=100: a −40 dBm neighbour weighs 60, a
//! −90 dBm one 10). Our own access points never count against us. Only channels a home router
//! can use without radar detection are suggested (2.4 GHz 1/6/11; 5 GHz 36–48 and 149–165),
//! plus the channel the radio is on now. A move is advised only when it at least halves the
//! score and removes at least one faint network's worth of weight, so the advice does not
//! flap between near-equal channels. It must never do I/O.

use super::{Survey, is_ours};
use crate::capture::ieee80211::{Band, Channel};
use serde::Serialize;

/// Weight of a network whose signal is unknown (bare 802.11 captures): a faint one.
const UNKNOWN_SIGNAL_WEIGHT: u32 = 10;
/// At or above this mean signal a neighbour is "strong" in the reasoning.
const STRONG_DBM: f64 = -70.0;
/// A move must remove at least this much weight (one −80 dBm network)...
const MIN_GAIN: u32 = 20;
/// ...and leave at most this fraction (in percent) of the current score.
const MAX_REMAINING_PCT: u32 = 50;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    pub bands: Vec<BandAdvice>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Our radio is on a channel no candidate clearly beats.
    Stay,
    /// Our radio should move.
    Move,
    /// We have no radio in this band (or no configured SSID): the quietest channel to pick.
    Choose,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BandAdvice {
    pub band: Band,
    pub action: Action,
    /// Our radio's channel now, when we have one in this band.
    pub from_channel: Option<u8>,
    pub to_channel: u8,
    pub width_mhz: u16,
    /// One sentence for people.
    pub summary: String,
    /// Every channel considered, best first: the reasoning.
    pub candidates: Vec<Candidate>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub channel: u8,
    pub width_mhz: u16,
    /// The span our radio would occupy there, [low, high) MHz.
    pub span_mhz: (u16, u16),
    /// Other networks whose span overlaps it.
    pub networks: u32,
    /// Of those, networks at or above −70 dBm.
    pub strong_networks: u32,
    pub strongest_dbm: Option<i8>,
    /// Sum of the overlapping networks' weights: lower is quieter.
    pub score: u32,
    /// Our radio is on this channel now.
    pub current: bool,
}

/// Candidate primary channels and the spans they would use at `width`.
fn candidate_channels(band: Band, width: u16) -> Vec<Channel> {
    // (primary, centre channel) per width.
    let pairs: &[(u8, u8)] = match (band, width) {
        (Band::G2_4, 40) => &[(1, 3), (6, 8), (11, 9)],
        (Band::G2_4, _) => &[(1, 1), (6, 6), (11, 11)],
        (Band::G5, 40) => &[(36, 38), (44, 46), (149, 151), (157, 159)],
        (Band::G5, 80) => &[(36, 42), (149, 155)],
        (Band::G5, 160) => &[(36, 50)],
        (Band::G5, _) => &[
            (36, 36),
            (40, 40),
            (44, 44),
            (48, 48),
            (149, 149),
            (153, 153),
            (157, 157),
            (161, 161),
            (165, 165),
        ],
        (Band::G6, _) => &[],
    };
    pairs
        .iter()
        .filter_map(|&(primary, centre)| {
            Some(Channel {
                band,
                number: primary,
                width_mhz: if primary == centre && width > 20 {
                    20
                } else {
                    width
                },
                center_mhz: band.freq_of(centre)?,
            })
        })
        .collect()
}

fn weight(mean_dbm: Option<f64>) -> u32 {
    match mean_dbm {
        Some(m) => (m + 100.0).round().clamp(1.0, 100.0) as u32,
        None => UNKNOWN_SIGNAL_WEIGHT,
    }
}

/// Advice for every band where we have a radio, or where any network was heard.
pub fn recommend(survey: &Survey, our_ssid: Option<&[u8]>) -> Recommendation {
    let mut bands = Vec::new();
    for band in [Band::G2_4, Band::G5] {
        let in_band = |c: &Option<Channel>| c.is_some_and(|c| c.band == band);
        // Our strongest AP in this band is "the radio"; all of ours are excluded as interference.
        let ours = survey
            .aps
            .iter()
            .filter(|a| in_band(&a.channel) && is_ours(a, our_ssid))
            .max_by(|a, b| {
                let sa = a.signal().mean_dbm().unwrap_or(f64::NEG_INFINITY);
                let sb = b.signal().mean_dbm().unwrap_or(f64::NEG_INFINITY);
                sa.total_cmp(&sb)
            })
            .and_then(|a| a.channel);
        let others: Vec<(Channel, Option<f64>)> = survey
            .aps
            .iter()
            .filter(|a| !is_ours(a, our_ssid))
            .filter_map(|a| Some((a.channel.filter(|c| c.band == band)?, a.signal().mean_dbm())))
            .collect();
        if ours.is_none() && others.is_empty() {
            continue;
        }
        let width = ours.map_or(if band == Band::G2_4 { 20 } else { 80 }, |c| c.width_mhz);
        let mut spans = candidate_channels(band, width);
        if let Some(cur) = ours
            && !spans
                .iter()
                .any(|c| c.number == cur.number && c.span() == cur.span())
        {
            spans.push(cur);
        }
        let mut candidates: Vec<Candidate> =
            spans.iter().map(|c| score(c, &others, ours)).collect();
        candidates.sort_by_key(|c| (c.score, c.networks, !c.current, c.channel));
        let Some(best) = candidates.first().cloned() else {
            continue;
        };
        let current = candidates.iter().find(|c| c.current).cloned();
        let advice = match (ours, current) {
            (Some(cur), Some(now)) => {
                let moves = best.score + MIN_GAIN <= now.score
                    && best.score * 100 <= now.score * MAX_REMAINING_PCT;
                if moves {
                    BandAdvice {
                        band,
                        action: Action::Move,
                        from_channel: Some(cur.number),
                        to_channel: best.channel,
                        width_mhz: width,
                        summary: format!(
                            "move the {} radio from channel {} to channel {}: {} there instead of {}",
                            band.as_str(),
                            cur.number,
                            best.channel,
                            describe(&best, best.strongest_dbm <= now.strongest_dbm),
                            describe_count(&now),
                        ),
                        candidates,
                    }
                } else {
                    let alt = candidates.iter().find(|c| !c.current);
                    BandAdvice {
                        band,
                        action: Action::Stay,
                        from_channel: Some(cur.number),
                        to_channel: cur.number,
                        width_mhz: width,
                        summary: format!(
                            "keep the {} radio on channel {}: {} there{}",
                            band.as_str(),
                            cur.number,
                            describe(&now, false),
                            match alt {
                                Some(a) => format!(
                                    ", and no channel is clearly quieter (channel {}: {})",
                                    a.channel,
                                    describe(a, false)
                                ),
                                None => String::new(),
                            }
                        ),
                        candidates,
                    }
                }
            }
            _ => BandAdvice {
                band,
                action: Action::Choose,
                from_channel: None,
                to_channel: best.channel,
                width_mhz: width,
                summary: format!(
                    "for a {} radio, channel {} is the quietest: {} there",
                    band.as_str(),
                    best.channel,
                    describe(&best, false)
                ),
                candidates,
            },
        };
        bands.push(advice);
    }
    Recommendation { bands }
}

fn score(c: &Channel, others: &[(Channel, Option<f64>)], ours: Option<Channel>) -> Candidate {
    let (lo, hi) = c.span();
    let mut cand = Candidate {
        channel: c.number,
        width_mhz: c.width_mhz,
        span_mhz: (lo, hi),
        networks: 0,
        strong_networks: 0,
        strongest_dbm: None,
        score: 0,
        current: ours.is_some_and(|o| o.number == c.number && o.span() == c.span()),
    };
    for (ch, mean) in others {
        let (a, b) = ch.span();
        if a < hi && lo < b {
            cand.networks += 1;
            cand.score += weight(*mean);
            if mean.is_some_and(|m| m >= STRONG_DBM) {
                cand.strong_networks += 1;
            }
            let m = mean.map(|m| m.round() as i8);
            cand.strongest_dbm = cand.strongest_dbm.max(m);
        }
    }
    cand
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "network" } else { "networks" }
}

fn describe_count(c: &Candidate) -> String {
    match c.strongest_dbm {
        Some(s) => format!("{} (strongest {s} dBm)", c.networks),
        None => c.networks.to_string(),
    }
}

fn describe(c: &Candidate, weaker: bool) -> String {
    if c.networks == 0 {
        return "no other networks overlap".to_string();
    }
    let adj = if weaker { " weaker" } else { "" };
    match c.strongest_dbm {
        Some(s) => format!(
            "{}{adj} {} overlap (strongest {s} dBm)",
            c.networks,
            plural(c.networks)
        ),
        None => format!("{}{adj} {} overlap", c.networks, plural(c.networks)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Ap, SignalStats};
    use super::*;
    use crate::capture::ieee80211::{Security, Ssid};
    use crate::model::MacAddr;
    use std::collections::BTreeMap;

    fn ap(n: u8, ssid: &str, ch: Channel, dbm: i8) -> Ap {
        let mut minutes = BTreeMap::new();
        minutes.insert(
            0,
            SignalStats {
                frames: 1,
                samples: 1,
                sum_dbm: i64::from(dbm),
                min_dbm: dbm,
                max_dbm: dbm,
            },
        );
        Ap {
            bssid: MacAddr([0, 0x11, 0x22, 0, 0, n]),
            ssid: Ssid::new(ssid.as_bytes()),
            hidden: false,
            channel: Some(ch),
            security: Security::Wpa2Psk,
            first_seen: 0,
            last_seen: 0,
            beacons: 1,
            probe_responses: 0,
            minutes,
        }
    }

    fn ch24(n: u8) -> Channel {
        Channel::new20(Band::G2_4, n).unwrap()
    }

    fn survey(aps: Vec<Ap>) -> Survey {
        Survey::assemble(aps, vec![], vec![])
    }

    #[test]
    fn crowded_channel_moves_to_the_quiet_one() {
        let mut aps = vec![ap(0, "home", ch24(6), -40)];
        for i in 1..=9 {
            aps.push(ap(i, &format!("n{i}"), ch24(6), -55 - i as i8));
        }
        aps.push(ap(20, "far1", ch24(1), -85));
        aps.push(ap(21, "far2", ch24(1), -88));
        for i in 30..34 {
            aps.push(ap(i, "mid", ch24(11), -65));
        }
        let r = recommend(&survey(aps), Some(b"home"));
        let a = &r.bands[0];
        assert_eq!(a.band, Band::G2_4);
        assert_eq!(a.action, Action::Move);
        assert_eq!((a.from_channel, a.to_channel), (Some(6), 1));
        assert_eq!(
            a.summary,
            "move the 2.4 GHz radio from channel 6 to channel 1: 2 weaker networks overlap \
             (strongest -85 dBm) there instead of 9 (strongest -56 dBm)"
        );
        // The reasoning: every candidate, best first, ours marked, ours not counted.
        let cands: Vec<(u8, u32, bool)> = a
            .candidates
            .iter()
            .map(|c| (c.channel, c.networks, c.current))
            .collect();
        assert_eq!(cands, [(1, 2, false), (11, 4, false), (6, 9, true)]);
        assert_eq!(a.candidates[0].score, 15 + 12);
    }

    #[test]
    fn empty_channels_keep_a_radio_that_is_already_alone() {
        let aps = vec![
            ap(0, "home", ch24(11), -40),
            ap(1, "a", ch24(1), -60),
            ap(2, "b", ch24(6), -60),
        ];
        let a = &recommend(&survey(aps), Some(b"home")).bands[0];
        assert_eq!(a.action, Action::Stay);
        assert_eq!(a.to_channel, 11);
        assert!(
            a.summary.starts_with(
                "keep the 2.4 GHz radio on channel 11: no other networks overlap there"
            ),
            "{}",
            a.summary
        );
    }

    #[test]
    fn a_small_gain_is_not_worth_a_move() {
        // Channel 6: one -60 network (40). Channel 1: one -75 network (25). Less than half? No.
        let aps = vec![
            ap(0, "home", ch24(6), -40),
            ap(1, "a", ch24(6), -60),
            ap(2, "b", ch24(1), -75),
            ap(3, "c", ch24(11), -70),
        ];
        let a = &recommend(&survey(aps), Some(b"home")).bands[0];
        assert_eq!(a.action, Action::Stay, "{}", a.summary);
    }

    #[test]
    fn overlapping_2_4_ghz_channels_and_40_mhz_spans_count() {
        // Nobody sits on 1, 6 or 11 exactly, but a network on 3 overlaps 1 and a 40 MHz network
        // on 6 (secondary above, centre 8) covers 6..10, i.e. reaches 11's span too.
        let ch6_40 = Channel {
            band: Band::G2_4,
            number: 6,
            width_mhz: 40,
            center_mhz: Band::G2_4.freq_of(8).unwrap(),
        };
        let aps = vec![ap(1, "a", ch24(3), -50), ap(2, "wide", ch6_40, -50)];
        let a = &recommend(&survey(aps), None).bands[0];
        assert_eq!(a.action, Action::Choose);
        let by: Vec<(u8, u32)> = a
            .candidates
            .iter()
            .map(|c| (c.channel, c.networks))
            .collect();
        // 1: the network on 3 (2412±10 vs 2422±10 overlap). 6: both (3's span reaches 2432,
        // 6 starts at 2427). 11: the 40 MHz one (2427..2467 overlaps 2452..2472).
        assert_eq!(by, [(1, 1), (11, 1), (6, 2)]);
        assert_eq!(a.to_channel, 1);
    }

    #[test]
    fn five_ghz_80_mhz_radio_avoids_a_40_mhz_neighbour_inside_its_block() {
        let ours = Channel {
            band: Band::G5,
            number: 36,
            width_mhz: 80,
            center_mhz: 5210,
        };
        // A 40 MHz network on 44/48 lies inside 36-48's 80 MHz block without sharing a primary.
        let neighbour = Channel {
            band: Band::G5,
            number: 44,
            width_mhz: 40,
            center_mhz: 5230,
        };
        let aps = vec![
            ap(0, "home", ours, -45),
            ap(1, "n1", neighbour, -50),
            ap(2, "n2", Channel::new20(Band::G5, 40).unwrap(), -55),
        ];
        let a = &recommend(&survey(aps), Some(b"home")).bands[0];
        assert_eq!(a.band, Band::G5);
        assert_eq!(a.action, Action::Move);
        assert_eq!(
            (a.from_channel, a.to_channel, a.width_mhz),
            (Some(36), 149, 80)
        );
        let now = a.candidates.iter().find(|c| c.current).unwrap();
        assert_eq!((now.networks, now.span_mhz), (2, (5170, 5250)));
        assert!(
            a.summary
                .contains("no other networks overlap there instead of 2"),
            "{}",
            a.summary
        );
    }

    #[test]
    fn bands_without_anything_give_no_advice_and_ours_never_counts() {
        assert!(recommend(&survey(vec![]), Some(b"home")).bands.is_empty());
        // Two of our own mesh nodes on 6: no interference from ourselves.
        let aps = vec![ap(0, "home", ch24(6), -40), ap(1, "home", ch24(6), -60)];
        let a = &recommend(&survey(aps), Some(b"home")).bands[0];
        assert_eq!(a.action, Action::Stay);
        assert!(a.candidates.iter().all(|c| c.networks == 0));
    }
}
