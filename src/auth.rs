//! Who may get in: password rules and argon2id hashes, random tokens, roles, and the login
//! throttling policy. Pure apart from the OS random source: the SQL lives in `store::auth`, the
//! HTTP side (cookies, CSRF, pages) in `web`, so `lanmeter passwd` and the server share one policy.
//!
//! This module never stores, logs or returns a password or a raw token in an error.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use std::sync::Mutex;

/// Shortest password accepted. Ten characters keeps a typed family password usable while making
/// an online guess (throttled, see [`Throttle`]) hopeless and an offline one expensive.
pub const PASSWORD_MIN_CHARS: usize = 10;
/// Longest password accepted, in bytes: argon2 would hash anything, this only bounds request work.
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// argon2id memory cost in KiB. 19 MiB, 2 passes, 1 lane is OWASP's argon2id baseline. Measured
/// (`cargo test --release --lib auth::tests::hashing_time -- --ignored --nocapture`): 41-61 ms
/// per hash on the 2-core dev machine while other builds ran (load average 6), so roughly
/// 0.15-0.3 s on a Raspberry Pi 4 (3-5x slower): well under a second, and the memory cost makes
/// GPU guessing of a stolen database expensive. A login checks up to two hashes (admin, viewer).
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
pub const ARGON2_T_COST: u32 = 2;
pub const ARGON2_P_COST: u32 = 1;

/// One hash at a time: each takes 19 MiB, and a Pi with many parallel login attempts must not
/// multiply that. A std Mutex because hashing runs on blocking threads, never across an await.
static HASHING: Mutex<()> = Mutex::new(());

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "the password is too short: use at least {PASSWORD_MIN_CHARS} characters (a few random words work well)"
    )]
    TooShort,
    #[error("the password is too long: use at most {PASSWORD_MAX_BYTES} bytes")]
    TooLong,
    #[error("the password is too easy to guess{0}: a few random words, or a longer mix, work well")]
    TooCommon(String),
    #[error("the two passwords differ: type the same password twice")]
    Mismatch,
    #[error("cannot hash the password: {0} (report this as a lanmeter bug)")]
    Hash(String),
    #[error("the system random source failed: {0}; check that /dev/urandom is available")]
    Random(String),
}

/// What a session may do. Admins change settings and name devices; viewers only read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The least zxcvbn score a new password needs: 3 is "safely unguessable: moderate protection
/// from an offline slow-hash scenario" (about 10^8 guesses or more), which is what an argon2id
/// hash stolen with the database must withstand.
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// Words an attacker tries first against this product, besides zxcvbn's own dictionaries.
const PRODUCT_WORDS: &[&str] = &["lanmeter", "admin", "viewer", "dashboard", "household"];

/// Checks a new password against the rules; the error says what to change. Strength is
/// zxcvbn's estimate (dictionaries of common passwords, names and words, keyboard patterns,
/// sequences, repeats, dates, l33t), with the product's own words added.
pub fn check_new_password(password: &str) -> Result<(), AuthError> {
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(AuthError::TooLong);
    }
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(AuthError::TooShort);
    }
    let estimate = zxcvbn::zxcvbn(password, PRODUCT_WORDS);
    if estimate.score() >= MIN_SCORE {
        return Ok(());
    }
    // zxcvbn's own advice when it has some ("This is similar to a commonly used password"),
    // else the product word it is built on, else zxcvbn's first suggestion.
    let lower = password.to_lowercase();
    let why = estimate
        .feedback()
        .and_then(|f| f.warning())
        .map(|w| w.to_string())
        .or_else(|| {
            PRODUCT_WORDS
                .iter()
                .find(|w| lower.contains(*w))
                .map(|w| format!("it is built on \"{w}\", a word tried first against lanmeter"))
        })
        .or_else(|| {
            estimate
                .feedback()
                .and_then(|f| f.suggestions().first())
                .map(|s| s.to_string())
        })
        .map(|w| format!(" ({})", w.trim_end_matches('.').to_lowercase()))
        .unwrap_or_default();
    Err(AuthError::TooCommon(why))
}

/// A rough strength word for the setup page: length and variety of characters.
pub fn strength_hint(password: &str) -> &'static str {
    let n = password.chars().count();
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    match (n, classes) {
        (0..PASSWORD_MIN_CHARS, _) => "too short",
        (_, _) if check_new_password(password).is_err() => "weak",
        (20.., _) | (14.., 3..) => "strong",
        _ => "fair",
    }
}

fn argon2() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id and a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=...`). Blocks for tens of milliseconds: call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    let _one_at_a_time = HASHING.lock().unwrap_or_else(|p| p.into_inner());
    let hash = argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// True when `password` matches the PHC string. The parameters are read from the string, so
/// hashes made with older parameters keep working. A malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > PASSWORD_MAX_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        tracing::error!("a stored password hash is malformed; reset it with `lanmeter passwd`");
        return false;
    };
    let _one_at_a_time = HASHING.lock().unwrap_or_else(|p| p.into_inner());
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash of a random password nobody knows, with the same parameters as real ones: checked
/// when a role has no password, so a wrong guess takes as long whether or not that role exists.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let secret = new_token().unwrap_or_else(|_| "lanmeter dummy password".into());
        // Hashing with fixed parameters cannot fail but for a broken random source; a PHC
        // string that does not parse would make the check fast, so fall back to a constant one.
        hash_password(&secret).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXlzYWx0ZHVtbXk$2Q5b7b5Dbz+3M0hWl6n5Ur5QN3x8lJX0y8mWmQj6Tx4".into()
        })
    })
}

/// [`verify_password`] against `phc`, or against a dummy hash (always false, same time) when
/// there is none: the time a login takes must not tell whether a viewer password exists.
pub fn verify_or_dummy(password: &str, phc: Option<&str>) -> bool {
    match phc {
        Some(h) => verify_password(password, h),
        None => {
            verify_password(password, dummy_hash());
            false
        }
    }
}

/// A fresh random token: 256 bits, hex. Used for session ids and CSRF tokens.
pub fn new_token() -> Result<String, AuthError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex(&b))
}

/// What an API token looks like: this prefix, then 64 hex digits. The prefix lets secret
/// scanners and people recognise one.
pub const API_TOKEN_PREFIX: &str = "lm_";

/// Longest API token name, in characters.
pub const TOKEN_NAME_MAX: usize = 64;

/// Why a token name was refused (the CLI and the API give the same rule).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenNameError {
    #[error("a token name must not be empty: give it a name that says who uses it")]
    Empty,
    #[error("a token name is at most {TOKEN_NAME_MAX} characters: choose a shorter one")]
    TooLong,
    #[error("a token name must not contain control characters: choose a plain one")]
    Control,
}

/// The one rule for API token names: trimmed, 1 to [`TOKEN_NAME_MAX`] characters, no control
/// characters. Returns the trimmed name.
pub fn token_name(raw: &str) -> Result<&str, TokenNameError> {
    let name = raw.trim();
    if name.is_empty() {
        Err(TokenNameError::Empty)
    } else if name.chars().count() > TOKEN_NAME_MAX {
        Err(TokenNameError::TooLong)
    } else if name.chars().any(char::is_control) {
        Err(TokenNameError::Control)
    } else {
        Ok(name)
    }
}

/// A fresh API token: (secret to show once, digest to store, first characters to list).
pub fn new_api_token() -> Result<(String, String, String), AuthError> {
    let secret = format!("{API_TOKEN_PREFIX}{}", new_token()?);
    let digest = token_digest(&secret);
    let shown = secret[..API_TOKEN_PREFIX.len() + 6].to_string();
    Ok((secret, digest, shown))
}

/// The form in which a token is stored: SHA-256, hex. A copied database then holds no usable
/// session id; the token's 256 random bits make a slow hash unnecessary.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A token only the holder of `key` can issue: 32 hex digits of randomness, then the first 32
/// hex digits of HMAC-SHA256(`key`, those digits). 64 hex digits, like the other tokens.
pub fn signed_token(key: &[u8]) -> Result<String, AuthError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| AuthError::Random(e.to_string()))?;
    let nonce = hex(&nonce);
    let tag = token_tag(key, &nonce);
    Ok(format!("{nonce}{tag}"))
}

/// Whether `token` was issued by [`signed_token`] with `key` (compared in constant time).
pub fn signed_token_valid(key: &[u8], token: &str) -> bool {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let (nonce, tag) = token.split_at(32);
    constant_time_eq(&token_tag(key, nonce), tag)
}

fn token_tag(key: &[u8], nonce: &str) -> String {
    use hmac::Mac;
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(b"lanmeter pre-login token:");
    m.update(nonce.as_bytes());
    hex(&m.finalize().into_bytes()[..16])
}

/// Compares two strings in time that depends only on their lengths (CSRF tokens).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Login throttling per client address: the first [`Throttle::free_failures`] wrong passwords
/// cost nothing, then each further attempt must wait twice as long as the previous one
/// (1 s, 2 s, 4 s ... capped), and after [`Throttle::lockout_failures`] the address is locked
/// until an admin runs `lanmeter unlock` on the shell. A lockout is per address, so a guest who
/// locks themselves out does not lock out the household.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub free_failures: u32,
    pub max_delay_secs: i64,
    pub lockout_failures: u32,
    /// Failures older than this (since the last one) are forgotten, unless the address is locked.
    pub forget_after_secs: i64,
}

impl Default for Throttle {
    /// Three free tries cover typos; 20 counted failures take over an hour with the doubling
    /// delays, which rules out online guessing of a 10-character password.
    fn default() -> Self {
        Throttle {
            free_failures: 3,
            max_delay_secs: 15 * 60,
            lockout_failures: 20,
            forget_after_secs: 24 * 3600,
        }
    }
}

/// What is known about one client address's recent failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub last_at: i64,
    pub locked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password.
    Allow,
    /// Refuse without checking; the client may try again after this many seconds.
    Wait(i64),
    /// Refuse until `lanmeter unlock` clears the address.
    Locked,
}

impl Throttle {
    /// Seconds a client must wait after its `count`-th consecutive failure.
    pub fn delay_after(&self, count: u32) -> i64 {
        if count < self.free_failures {
            return 0;
        }
        let exp = (count - self.free_failures).min(30);
        (1i64 << exp).min(self.max_delay_secs)
    }

    /// Whether an attempt at `now` may be checked. Expired failures count as none.
    pub fn verdict(&self, f: &Failures, now: i64) -> Verdict {
        if f.locked {
            return Verdict::Locked;
        }
        if f.count == 0 || now - f.last_at >= self.forget_after_secs {
            return Verdict::Allow;
        }
        let ready = f.last_at + self.delay_after(f.count);
        if now < ready {
            Verdict::Wait(ready - now)
        } else {
            Verdict::Allow
        }
    }

    /// The failures after one more wrong password at `now`.
    pub fn after_failure(&self, f: &Failures, now: i64) -> Failures {
        let count = if now - f.last_at >= self.forget_after_secs {
            1
        } else {
            f.count.saturating_add(1)
        };
        Failures {
            count,
            last_at: now,
            locked: f.locked || count >= self.lockout_failures,
        }
    }
}

/// Password checks per second for the whole server, whoever asks: each costs up to two argon2
/// hashes (19 MiB, 0.15-0.3 s on a Pi 4), so this bounds both the CPU a crowd of addresses can
/// burn and the guesses they get.
pub const CHECKS_PER_SECOND: u32 = 4;

/// The backoff for the accounts as a whole (failures from any address): ten failures are free,
/// then each check waits twice as long as the last, up to [`ACCOUNT_MAX_DELAY_SECS`]. It never
/// locks: it slows a guesser spread over many addresses to one guess per 30 s while the real
/// admin, from an address that logged in before, is not held up by it at all, and from a new
/// address waits at most 30 s.
pub const ACCOUNT_MAX_DELAY_SECS: i64 = 30;

pub fn account_throttle() -> Throttle {
    Throttle {
        free_failures: 10,
        max_delay_secs: ACCOUNT_MAX_DELAY_SECS,
        lockout_failures: u32::MAX,
        forget_after_secs: 3600,
    }
}

/// Addresses remembered as the household's own (a successful login); bounded, oldest dropped.
const TRUSTED_MAX: usize = 32;

/// Why [`LoginGate::admit`] said no.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// The server checked [`CHECKS_PER_SECOND`] passwords this second already.
    Server,
    /// The accounts' backoff: wait this many seconds.
    Account(i64),
}

/// The in-process part of login throttling: the global cap per second and the account backoff.
/// The per-address throttle lives in the database (`store::auth`), where `lanmeter unlock` can
/// clear it. A std Mutex: held for a few comparisons, never across an await or a hash.
#[derive(Default)]
pub struct LoginGate(Mutex<GateState>);

#[derive(Default)]
struct GateState {
    /// The wall-clock second the `used` checks were made in.
    window: i64,
    used: u32,
    account: Failures,
    trusted: std::collections::VecDeque<String>,
    /// Refused attempts per address not yet written to the audit log, and when it was last
    /// written for that address.
    refused: std::collections::HashMap<String, (u32, Option<std::time::Instant>)>,
}

/// Refused attempts of one address are written to the audit log at most this often (summed),
/// so a flood of refused requests costs no disk write each.
const REFUSED_WRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Addresses whose refused attempts are counted in memory at most; beyond, the count restarts.
const REFUSED_MAX: usize = 1024;

impl LoginGate {
    /// Takes the right to check one password now, or says why not. An admitted attempt is
    /// counted against the account before the password is checked (so parallel attempts
    /// cannot all slip through), and forgiven by [`LoginGate::succeeded`].
    pub fn admit(&self, client: &str, now: i64) -> Result<(), Busy> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let trusted = g.trusted.iter().any(|t| t == client);
        let account = account_throttle();
        if !trusted && let Verdict::Wait(s) = account.verdict(&g.account, now) {
            return Err(Busy::Account(s));
        }
        if g.window != now {
            g.window = now;
            g.used = 0;
        }
        if g.used >= CHECKS_PER_SECOND {
            return Err(Busy::Server);
        }
        g.used += 1;
        if !trusted {
            g.account = account.after_failure(&g.account, now);
        }
        Ok(())
    }

    /// Counts one refused attempt of `client`; returns how many to write to the audit log now
    /// (the first at once, then the sum at most every [`REFUSED_WRITE_EVERY`]).
    pub fn refused(&self, client: &str, at: std::time::Instant) -> Option<u32> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.refused.len() >= REFUSED_MAX && !g.refused.contains_key(client) {
            g.refused.clear();
        }
        let e = g.refused.entry(client.to_string()).or_insert((0, None));
        e.0 += 1;
        if e.1
            .is_some_and(|t| at.duration_since(t) < REFUSED_WRITE_EVERY)
        {
            return None;
        }
        let n = e.0;
        *e = (0, Some(at));
        Some(n)
    }

    /// The right password: the account's backoff is cleared and the address remembered.
    pub fn succeeded(&self, client: &str) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.account = Failures::default();
        if !g.trusted.iter().any(|t| t == client) {
            if g.trusted.len() >= TRUSTED_MAX {
                g.trusted.pop_front();
            }
            g.trusted.push_back(client.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_follow_one_rule() {
        assert_eq!(token_name("  grafana \n"), Ok("grafana"));
        assert_eq!(token_name(" \t "), Err(TokenNameError::Empty));
        assert_eq!(token_name(&"é".repeat(64)), Ok("é".repeat(64).as_str()));
        assert_eq!(token_name(&"é".repeat(65)), Err(TokenNameError::TooLong));
        assert_eq!(token_name("a\u{7}b"), Err(TokenNameError::Control));
    }

    #[test]
    fn the_gate_caps_checks_per_second_and_backs_off_the_account() {
        let gate = LoginGate::default();
        let ip = |i: u32| format!("10.0.0.{i}");
        for i in 0..CHECKS_PER_SECOND {
            assert_eq!(gate.admit(&ip(i), 100), Ok(()));
        }
        assert_eq!(gate.admit("10.0.1.1", 100), Err(Busy::Server));
        // Ten failures across addresses are free, then the account waits, at most 30 s.
        for i in 4..8 {
            assert_eq!(gate.admit(&ip(i), 101), Ok(()));
        }
        for i in 8..10 {
            assert_eq!(gate.admit(&ip(i), 102), Ok(()));
        }
        let mut now = 102;
        assert_eq!(gate.admit("10.0.3.1", now), Err(Busy::Account(1)));
        for _ in 0..20 {
            match gate.admit("10.0.3.1", now) {
                Err(Busy::Account(s)) => {
                    assert!(s <= ACCOUNT_MAX_DELAY_SECS);
                    now += s;
                }
                other => assert_eq!(other, Ok(())),
            }
        }
        // An address that logged in before is not held up by the account's backoff.
        gate.succeeded("192.168.1.20");
        for _ in 0..3 {
            now += 1;
            for _ in 0..CHECKS_PER_SECOND {
                let _ = gate.admit("10.9.9.9", now);
            }
        }
        assert!(matches!(gate.admit("10.9.9.9", now), Err(Busy::Account(_))));
        assert_eq!(gate.admit("192.168.1.20", now), Ok(()));
    }

    #[test]
    fn refused_attempts_are_written_summed() {
        let gate = LoginGate::default();
        let t = std::time::Instant::now();
        assert_eq!(gate.refused("10.0.0.1", t), Some(1));
        for _ in 0..99 {
            assert_eq!(gate.refused("10.0.0.1", t), None);
        }
        assert_eq!(gate.refused("10.0.0.2", t), Some(1));
        assert_eq!(gate.refused("10.0.0.1", t + REFUSED_WRITE_EVERY), Some(100));
    }

    #[test]
    fn a_missing_role_costs_a_hash_too() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(verify_or_dummy("correct horse battery", Some(&h)));
        assert!(!verify_or_dummy("correct horse battery", None));
        // Equal work is a matter of equal argon2 parameters (algorithm, memory, passes, lanes):
        // compared on the PHC strings rather than timed, as timings on a shared machine are noise.
        let params = |phc: &str| phc.rsplitn(3, '$').nth(2).unwrap_or_default().to_owned();
        assert!(h.starts_with("$argon2"), "{h}");
        assert_eq!(params(dummy_hash()), params(&h));
        // And the dummy is a real hash that a password is checked against, not a string that
        // fails to parse (which would return at once).
        assert!(argon2::PasswordHash::new(dummy_hash()).is_ok());
    }

    #[test]
    fn password_rules_say_what_to_change() {
        assert!(matches!(
            check_new_password("short"),
            Err(AuthError::TooShort)
        ));
        assert!(matches!(
            check_new_password("aaaaaaaaaaaa"),
            Err(AuthError::TooCommon(_))
        ));
        assert!(matches!(
            check_new_password("Password123"),
            Err(AuthError::TooCommon(_))
        ));
        // Found weak by an independent test of the web side (issue 19): keyboard walks,
        // the product's name and common phrases with digits appended.
        for weak in ["qwerty1234", "lanmeter12", "iloveyou123", "Lanmeter2024!"] {
            let e = check_new_password(weak).expect_err(weak).to_string();
            // Each refusal says why, not only that.
            assert!(e.contains("too easy to guess ("), "{weak}: {e}");
        }
        assert!(matches!(
            check_new_password(&"x1".repeat(600)),
            Err(AuthError::TooLong)
        ));
        assert!(check_new_password("correct horse battery").is_ok());
        // Ten characters, counted as characters not bytes.
        assert!(check_new_password("äöüßéèàç12").is_ok());
        assert!(AuthError::TooShort.to_string().contains("at least 10"));
    }

    #[test]
    fn signed_tokens_verify_only_with_their_key() {
        let t = signed_token(b"key one").unwrap();
        assert_eq!(t.len(), 64);
        assert!(signed_token_valid(b"key one", &t));
        assert!(!signed_token_valid(b"key two", &t));
        // A client-chosen value of the right shape is refused.
        assert!(!signed_token_valid(b"key one", &"ab".repeat(32)));
        let mut flipped = t.clone().into_bytes();
        flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
        assert!(!signed_token_valid(
            b"key one",
            std::str::from_utf8(&flipped).unwrap()
        ));
        assert!(!signed_token_valid(b"key one", &t[..63]));
    }

    #[test]
    fn strength_hint_grows_with_length_and_variety() {
        assert_eq!(strength_hint("abc"), "too short");
        assert_eq!(strength_hint("aaaaaaaaaaaaaa"), "weak");
        assert_eq!(strength_hint("kettle42xy"), "fair");
        assert_eq!(strength_hint("Kettle42-Harbour"), "strong");
        assert_eq!(strength_hint("correct horse battery staple"), "strong");
    }

    #[test]
    fn hash_is_argon2id_salted_and_verifies() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterY", &a));
        assert!(!verify_password("anything", "not a phc string"));
    }

    /// Measures hashing time (release build): see [`ARGON2_M_COST_KIB`].
    #[test]
    #[ignore]
    fn hashing_time() {
        let n = 10;
        let t = std::time::Instant::now();
        for _ in 0..n {
            hash_password("correct horse battery").unwrap();
        }
        eprintln!("argon2id hash: {:?} each", t.elapsed() / n);
    }

    #[test]
    fn tokens_are_256_bit_random_and_digests_stable() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_ne!(token_digest(&a), a);
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &b));
        assert!(!constant_time_eq(&a, &a[..10]));
    }

    #[test]
    fn throttle_doubles_delays_then_locks() {
        let t = Throttle::default();
        let mut f = Failures::default();
        let mut now = 1_000;
        for _ in 0..3 {
            assert_eq!(t.verdict(&f, now), Verdict::Allow);
            f = t.after_failure(&f, now);
        }
        assert_eq!(t.verdict(&f, now), Verdict::Wait(1));
        now += 1;
        assert_eq!(t.verdict(&f, now), Verdict::Allow);
        f = t.after_failure(&f, now);
        assert_eq!(t.verdict(&f, now), Verdict::Wait(2));
        assert_eq!(t.delay_after(30), t.max_delay_secs);
        while !f.locked {
            now += t.delay_after(f.count);
            assert_eq!(t.verdict(&f, now), Verdict::Allow);
            f = t.after_failure(&f, now);
        }
        assert_eq!(f.count, t.lockout_failures);
        assert_eq!(t.verdict(&f, now + 10 * 86_400), Verdict::Locked);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = Throttle::default();
        let f = Failures {
            count: 10,
            last_at: 0,
            locked: false,
        };
        assert_eq!(t.verdict(&f, t.forget_after_secs), Verdict::Allow);
        assert_eq!(t.after_failure(&f, t.forget_after_secs).count, 1);
    }
}
