//! Static assets (CSS, htmx) embedded in the binary and served under content-hash URLs
//! (`/static/app.3f2a91c0de.css`), so a browser may cache them for a year and still never run
//! an old file after an upgrade. Each is gzip-compressed once, at first use.
//!
//! Nothing here reads the filesystem at run time, and no page refers to anything off the box.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::LazyLock;

struct Asset {
    /// The name templates ask for: "app.css".
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    gzip: Vec<u8>,
    /// The file name in the URL, with the first 10 hex digits of the content's SHA-256.
    hashed: String,
    url: String,
    etag: String,
}

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx-2.0.11.min.js"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, body)| {
            let digest = Sha256::digest(body);
            let hash: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            let hashed = format!("{stem}.{hash}.{ext}");
            Asset {
                name,
                content_type,
                body,
                gzip: gzip(body),
                url: format!("/static/{hashed}"),
                etag: format!("\"{hash}\""),
                hashed,
            }
        })
        .collect()
});

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail; should it ever, an empty result means "serve uncompressed".
    if enc.write_all(body).is_err() {
        return Vec::new();
    }
    enc.finish().unwrap_or_default()
}

/// The URL of an embedded asset by its plain name ("app.css"); "/static/missing" for an
/// unknown name, which a test catches.
pub fn url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or("/static/missing", |a| a.url.as_str())
}

/// GET /static/{file}: the asset, gzipped when the client accepts it, cacheable for a year.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.hashed == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == a.etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, cache_headers(a)).into_response();
    }
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut h = cache_headers(a);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    if accepts_gzip && !a.gzip.is_empty() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (h, a.gzip.clone()).into_response()
    } else {
        (h, a.body).into_response()
    }
}

fn cache_headers(a: &Asset) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&a.etag) {
        h.insert(header::ETAG, v);
    }
    h
}

/// A sample asset file name, for route tests that need a real `{file}`.
pub fn sample_file() -> String {
    url("app.css").trim_start_matches("/static/").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash_and_gzip_round_trips() {
        let css = url("app.css");
        assert!(
            css.starts_with("/static/app.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/static/app.".len() + 10 + ".css".len());
        assert!(url("htmx.min.js").starts_with("/static/htmx.min."));
        assert_eq!(url("nope"), "/static/missing");
        for a in ASSETS.iter() {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a.gzip[..]), &mut out)
                .unwrap();
            assert_eq!(out, a.body);
            assert!(a.gzip.len() < a.body.len(), "{} compresses", a.name);
        }
    }
}
