//! Signed, expiring acknowledge links for emails: `ID.EXPIRES.HMAC` where the HMAC-SHA256 over
//! `ack:ID:EXPIRES` uses a secret kept in the database. Whoever holds the link may acknowledge
//! that one alert until it expires, and nothing else; no login is needed.
//!
//! Pure: the caller passes the secret and the time. It never stores or logs a token.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, id: i64, expires: i64) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    m.update(format!("ack:{id}:{expires}").as_bytes());
    m
}

/// The token for acknowledging alert `id` until `expires` (Unix seconds).
pub fn sign(secret: &str, id: i64, expires: i64) -> String {
    let tag: String = mac(secret, id, expires)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{id}.{expires}.{tag}")
}

/// Why a link was refused, in words for the person who clicked it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is incomplete or was changed: open the alerts page instead")]
    Malformed,
    #[error("this link has expired: acknowledge the alert on the alerts page instead")]
    Expired,
}

/// The alert id a token grants, if its signature holds and it has not expired at `now`.
pub fn verify(secret: &str, token: &str, now: i64) -> Result<i64, LinkError> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(exp), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(LinkError::Malformed);
    };
    let id: i64 = id.parse().map_err(|_| LinkError::Malformed)?;
    let exp: i64 = exp.parse().map_err(|_| LinkError::Malformed)?;
    if tag.len() != 64 {
        return Err(LinkError::Malformed);
    }
    let bytes: Option<Vec<u8>> = (0..32)
        .map(|i| u8::from_str_radix(tag.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let bytes = bytes.ok_or(LinkError::Malformed)?;
    // verify_slice compares in constant time.
    mac(secret, id, exp)
        .verify_slice(&bytes)
        .map_err(|_| LinkError::Malformed)?;
    if now > exp {
        return Err(LinkError::Expired);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_links_verify_expire_and_resist_edits() {
        let t = sign("s3cret", 42, 1_000);
        assert_eq!(verify("s3cret", &t, 999), Ok(42));
        assert_eq!(verify("s3cret", &t, 1_001), Err(LinkError::Expired));
        assert_eq!(verify("other", &t, 999), Err(LinkError::Malformed));
        let forged = t.replacen("42.", "43.", 1);
        assert_eq!(verify("s3cret", &forged, 999), Err(LinkError::Malformed));
        let longer = t.replacen(".1000.", ".99999.", 1);
        assert_eq!(verify("s3cret", &longer, 999), Err(LinkError::Malformed));
        assert_eq!(verify("s3cret", "x", 0), Err(LinkError::Malformed));
        assert_eq!(verify("s3cret", "1.2.zz", 0), Err(LinkError::Malformed));
    }
}
