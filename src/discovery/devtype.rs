//! The device type guess: phone, laptop, TV, speaker, printer, camera, IoT, game console,
//! router… from what a device says about itself.
//!
//! Pure. Evidence is ranked by how specific it is: advertised routes, then mDNS services (a
//! device announcing `_ipp._tcp` prints), then the DHCP vendor class, then the host name, then
//! the vendor. It is a guess shown as such; the user's override always wins (in the store).
//! It must never treat its input as anything but text to match.

/// What the guess is made from (escaped strings as stored).
#[derive(Clone, Debug, Default)]
pub struct Evidence<'a> {
    pub router: bool,
    pub services: &'a [String],
    pub vendor_class: Option<&'a str>,
    pub hostnames: &'a [String],
    pub vendor: Option<&'a str>,
}

/// Needles (lower case) and the type they point to, per kind of evidence, first match wins.
const SERVICES: &[(&str, &str)] = &[
    ("_ipp.", "printer"),
    ("_ipps.", "printer"),
    ("_printer.", "printer"),
    ("_pdl-datastream.", "printer"),
    ("_scanner.", "printer"),
    ("_googlecast.", "tv"),
    ("_amzn-wplay.", "tv"),
    ("_androidtvremote", "tv"),
    ("_roku", "tv"),
    ("_sonos.", "speaker"),
    ("_spotify-connect.", "speaker"),
    ("_raop.", "speaker"),
    ("_airplay.", "tv"),
    ("_hap.", "iot"),
    ("_matter", "iot"),
    ("_homekit.", "iot"),
    ("_axis-video.", "camera"),
    ("_rtsp.", "camera"),
    ("_companion-link.", "phone"),
    ("_apple-mobdev2.", "phone"),
    ("_smb.", "computer"),
    ("_ssh.", "computer"),
    ("_workstation.", "computer"),
];

const VENDOR_CLASSES: &[(&str, &str)] = &[
    ("android-dhcp", "phone"),
    ("msft", "computer"),
    ("dhcpcd", "computer"),
    ("udhcp", "iot"),
    ("espressif", "iot"),
];

const HOSTNAMES: &[(&str, &str)] = &[
    ("iphone", "phone"),
    ("android", "phone"),
    ("galaxy", "phone"),
    ("pixel", "phone"),
    ("phone", "phone"),
    ("ipad", "tablet"),
    ("tablet", "tablet"),
    ("macbook", "laptop"),
    ("laptop", "laptop"),
    ("thinkpad", "laptop"),
    ("chromecast", "tv"),
    ("firetv", "tv"),
    ("roku", "tv"),
    ("bravia", "tv"),
    ("appletv", "tv"),
    ("apple-tv", "tv"),
    ("-tv", "tv"),
    ("tv-", "tv"),
    ("sonos", "speaker"),
    ("echo", "speaker"),
    ("homepod", "speaker"),
    ("speaker", "speaker"),
    ("printer", "printer"),
    ("epson", "printer"),
    ("brother", "printer"),
    ("xbox", "console"),
    ("playstation", "console"),
    ("ps4", "console"),
    ("ps5", "console"),
    ("nintendo", "console"),
    ("camera", "camera"),
    ("cam-", "camera"),
    ("doorbell", "camera"),
    ("esp-", "iot"),
    ("esp32", "iot"),
    ("shelly", "iot"),
    ("tasmota", "iot"),
    ("raspberrypi", "computer"),
    ("desktop", "computer"),
    ("-pc", "computer"),
    ("imac", "computer"),
];

const VENDORS: &[(&str, &str)] = &[
    ("sonos", "speaker"),
    ("roku", "tv"),
    ("nintendo", "console"),
    ("sony interactive", "console"),
    ("microsoft", "computer"),
    ("espressif", "iot"),
    ("tuya", "iot"),
    ("shelly", "iot"),
    ("signify", "iot"),
    ("philips lighting", "iot"),
    ("hikvision", "camera"),
    ("dahua", "camera"),
    ("axis communications", "camera"),
    ("wyze", "camera"),
    ("brother", "printer"),
    ("seiko epson", "printer"),
    ("canon", "printer"),
    ("hewlett packard", "printer"),
    ("raspberry pi", "computer"),
    ("avm", "router"),
    ("ubiquiti", "router"),
    ("tp-link", "router"),
    ("netgear", "router"),
];

fn first_match(haystack: &str, table: &[(&str, &'static str)]) -> Option<&'static str> {
    let h = haystack.to_lowercase();
    table.iter().find(|(n, _)| h.contains(n)).map(|(_, t)| *t)
}

/// The best guess, or `None` when nothing points anywhere.
pub fn guess(e: &Evidence<'_>) -> Option<&'static str> {
    if e.router {
        return Some("router");
    }
    for table in SERVICES {
        if e.services
            .iter()
            .any(|s| format!("{}.", s.to_lowercase()).contains(table.0))
        {
            return Some(table.1);
        }
    }
    if let Some(t) = e.vendor_class.and_then(|v| first_match(v, VENDOR_CLASSES)) {
        return Some(t);
    }
    for h in e.hostnames {
        if let Some(t) = first_match(h, HOSTNAMES) {
            return Some(t);
        }
    }
    e.vendor.and_then(|v| first_match(v, VENDORS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_evidence_beats_vague_evidence() {
        let services = vec!["_ipp._tcp".to_string()];
        let hostnames = vec!["annas-iphone".to_string()];
        let e = Evidence {
            services: &services,
            hostnames: &hostnames,
            vendor: Some("Raspberry Pi Trading Ltd"),
            ..Default::default()
        };
        assert_eq!(guess(&e), Some("printer"));
        let e = Evidence {
            hostnames: &hostnames,
            vendor: Some("Raspberry Pi Trading Ltd"),
            ..Default::default()
        };
        assert_eq!(guess(&e), Some("phone"));
        let e = Evidence {
            vendor: Some("Raspberry Pi Trading Ltd"),
            ..Default::default()
        };
        assert_eq!(guess(&e), Some("computer"));
        let e = Evidence {
            vendor_class: Some("android-dhcp-14"),
            vendor: Some("Sonos, Inc."),
            ..Default::default()
        };
        assert_eq!(guess(&e), Some("phone"));
        assert_eq!(
            guess(&Evidence {
                router: true,
                ..Default::default()
            }),
            Some("router")
        );
        assert_eq!(guess(&Evidence::default()), None);
    }

    #[test]
    fn hostile_text_is_only_matched() {
        let hostnames = vec!["<script>alert(1)</script>".to_string(), "\\x00".repeat(80)];
        let e = Evidence {
            hostnames: &hostnames,
            ..Default::default()
        };
        assert_eq!(guess(&e), None);
    }
}
