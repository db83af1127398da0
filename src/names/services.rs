//! Names to services: a small curated map of the domains that carry the bulk of a household's
//! bytes (video, game downloads, updates, backups), each with what it is; every other name is
//! shown as its registrable domain from the public suffix list (`psl`), so
//! `r3---sn-4g5e6nz7.googlevideo.com` is "YouTube" and `a.b.example.co.uk` is "example.co.uk".
//!
//! Entries are matched on whole labels from the right (`googlevideo.com` matches
//! `x.googlevideo.com`, not `notgooglevideo.com`). Keep it short: a name absent here is still
//! shown honestly by its domain; an entry is worth adding only when the domain alone would
//! not say what the bytes were (a CDN name) or several domains make one service.

/// (domain suffix, service, why the domain means that service).
pub const SERVICES: &[(&str, &str, &str)] = &[
    (
        "googlevideo.com",
        "YouTube",
        "YouTube's video CDN: the video bytes themselves",
    ),
    ("youtube.com", "YouTube", "YouTube's site and apps"),
    (
        "ytimg.com",
        "YouTube",
        "YouTube thumbnails and player images",
    ),
    (
        "youtubei.googleapis.com",
        "YouTube",
        "the YouTube apps' API",
    ),
    (
        "nflxvideo.net",
        "Netflix",
        "Netflix's Open Connect video CDN",
    ),
    ("netflix.com", "Netflix", "Netflix's site and apps"),
    ("nflxso.net", "Netflix", "Netflix images and scripts"),
    ("nflxext.com", "Netflix", "Netflix static assets"),
    (
        "steamcontent.com",
        "Steam",
        "Steam game downloads and updates",
    ),
    ("steampowered.com", "Steam", "the Steam store and client"),
    ("steamserver.net", "Steam", "Steam's content servers"),
    ("steamstatic.com", "Steam", "Steam store images and videos"),
    (
        "xboxlive.com",
        "Xbox",
        "Xbox Live services and game downloads (assets1.xboxlive.com)",
    ),
    (
        "dl.delivery.mp.microsoft.com",
        "Microsoft updates",
        "Windows Update and Xbox/Store downloads",
    ),
    ("windowsupdate.com", "Microsoft updates", "Windows Update"),
    (
        "playstation.net",
        "PlayStation",
        "PlayStation Network, game downloads (gst.prod.dl.playstation.net)",
    ),
    (
        "playstation.com",
        "PlayStation",
        "PlayStation Store and network",
    ),
    (
        "nintendo.net",
        "Nintendo",
        "Nintendo eShop downloads and updates",
    ),
    (
        "epicgames.com",
        "Epic Games",
        "Epic Games Store and Fortnite downloads",
    ),
    (
        "battle.net",
        "Battle.net",
        "Blizzard's launcher and game downloads",
    ),
    ("twitch.tv", "Twitch", "Twitch's site"),
    ("ttvnw.net", "Twitch", "Twitch's live video CDN"),
    ("jtvnw.net", "Twitch", "Twitch images and assets"),
    (
        "aiv-cdn.net",
        "Prime Video",
        "Amazon Prime Video's video CDN",
    ),
    (
        "primevideo.com",
        "Prime Video",
        "Prime Video's site and apps",
    ),
    ("dssott.com", "Disney+", "Disney+ video CDN"),
    ("disneyplus.com", "Disney+", "Disney+ site and apps"),
    ("bamgrid.com", "Disney+", "Disney+'s streaming platform API"),
    ("hulustream.com", "Hulu", "Hulu's video CDN"),
    ("hbomaxcdn.com", "Max", "Max (HBO) video CDN"),
    ("spotify.com", "Spotify", "Spotify's apps and API"),
    ("scdn.co", "Spotify", "Spotify's audio and image CDN"),
    ("spotifycdn.com", "Spotify", "Spotify's audio CDN"),
    ("tiktokcdn.com", "TikTok", "TikTok's video CDN"),
    ("tiktokv.com", "TikTok", "TikTok's app API"),
    ("byteoversea.com", "TikTok", "TikTok's CDN (ByteDance)"),
    (
        "fbcdn.net",
        "Facebook/Instagram",
        "Meta's photo and video CDN",
    ),
    (
        "cdninstagram.com",
        "Instagram",
        "Instagram's photo and video CDN",
    ),
    ("whatsapp.net", "WhatsApp", "WhatsApp messages and media"),
    ("zoom.us", "Zoom", "Zoom meetings"),
    (
        "teams.microsoft.com",
        "Microsoft Teams",
        "Teams meetings and chat",
    ),
    ("icloud-content.com", "iCloud", "iCloud Photos and backups"),
    ("icloud.com", "iCloud", "iCloud services"),
    (
        "updates.cdn-apple.com",
        "Apple updates",
        "iOS and macOS software updates",
    ),
    (
        "mzstatic.com",
        "Apple App Store",
        "App Store downloads and media",
    ),
    ("aaplimg.com", "Apple", "Apple's CDN"),
    (
        "dropboxusercontent.com",
        "Dropbox",
        "Dropbox file transfers",
    ),
    ("onedrive.live.com", "OneDrive", "OneDrive file transfers"),
    (
        "googleusercontent.com",
        "Google",
        "Google Photos, Drive downloads and other user content",
    ),
    (
        "gvt1.com",
        "Google updates",
        "Chrome, Android and Play downloads",
    ),
    ("ring.com", "Ring", "Ring doorbell and camera uploads"),
    ("nest.com", "Google Nest", "Nest cameras and thermostats"),
];

/// The service of `name`: the curated entry it falls under, else its registrable domain, else
/// the name itself (a single-label or unlisted name).
pub fn service_of(name: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some((_, service, _)) = SERVICES.iter().find(|(suffix, _, _)| {
        name == *suffix
            || name
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.'))
    }) {
        return (*service).to_string();
    }
    psl::domain_str(&name).unwrap_or(&name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curated_names_and_registrable_domains() {
        assert_eq!(service_of("r3---sn-4g5e6nz7.googlevideo.com"), "YouTube");
        assert_eq!(service_of("ipv4-c001-x.1.oca.NFLXVIDEO.net."), "Netflix");
        assert_eq!(service_of("cache1-fra1.steamcontent.com"), "Steam");
        assert_eq!(service_of("notgooglevideo.com"), "notgooglevideo.com");
        assert_eq!(service_of("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(service_of("shop.example"), "shop.example");
        assert_eq!(service_of("localhost"), "localhost");
    }

    #[test]
    fn every_entry_is_lower_case_and_explained() {
        for (suffix, service, why) in SERVICES {
            assert_eq!(suffix.to_ascii_lowercase(), *suffix);
            assert!(!service.is_empty() && why.len() > 5, "{suffix}");
        }
    }
}
