//! The one-time setup code that guards first-run setup, and the link that carries it.
//!
//! Until an admin password exists, whoever reaches `/setup` first would become the admin; the
//! code makes that whoever can read a file only the machine's owner can read: it is created
//! beside the database (`<database>.setup-code`, mode 0600, owned by the user the daemon runs
//! as), written to the journal at start and printed by `lanmeter setup-link` (the package's
//! post-install script runs that). `/setup` accepts it once; then the file is deleted.
//!
//! This module never logs the code itself; the callers decide where the link goes.

use crate::config::Config;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Letters and digits that cannot be mistaken for each other (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Twelve characters of 31: about 59 bits, far beyond what the throttled form lets anyone try.
const CODE_CHARS: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SetupCodeError {
    #[error(
        "cannot write the setup code {path}: {source}; check that the folder exists and belongs to the user lanmeter runs as"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read the setup code {path}: {source}; run `lanmeter setup-link` as the user lanmeter runs as"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the system random source failed: {0}; check that /dev/urandom is available")]
    Random(String),
}

/// Where the code for the database `db` lives: beside it, named after it.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".setup-code");
    db.with_file_name(name)
}

fn new_code() -> Result<String, SetupCodeError> {
    let mut bytes = [0u8; CODE_CHARS];
    getrandom::fill(&mut bytes).map_err(|e| SetupCodeError::Random(e.to_string()))?;
    // 256 % 31 leaves a bias of under 1 in 8 per character: a fraction of a bit in all.
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    Ok(format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..]))
}

/// The code for `db`, if one was made.
pub fn read(db: &Path) -> Result<Option<String>, SetupCodeError> {
    let path = path_for(db);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|c| !c.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SetupCodeError::Read { path, source }),
    }
}

/// The code for `db`, made now if there is none. Created with mode 0600 and, when root makes
/// it (the package's scripts), handed to the owner of the folder, so the daemon's user can
/// read it and nobody else.
pub fn ensure(db: &Path) -> Result<String, SetupCodeError> {
    if let Some(code) = read(db)? {
        return Ok(code);
    }
    let path = path_for(db);
    let code = new_code()?;
    let write_err = |source| SetupCodeError::Write {
        path: path.clone(),
        source,
    };
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    let mut file = match created {
        Ok(f) => f,
        // Another process (the daemon, the CLI) made it a moment ago: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return read(db)?.ok_or_else(|| write_err(e));
        }
        Err(e) => return Err(write_err(e)),
    };
    file.write_all(format!("{code}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    if nix::unistd::geteuid().is_root()
        && let Some(dir) = path.parent()
        && let Ok(meta) = std::fs::metadata(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        && meta.uid() != 0
    {
        std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid())).map_err(write_err)?;
    }
    Ok(code)
}

/// Deletes the code once setup is done; a missing file is fine.
pub fn remove(db: &Path) {
    if let Err(e) = std::fs::remove_file(path_for(db))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "could not delete the used setup code; delete it by hand");
    }
}

/// Whether `given` (typed or from the link) is `code`: case, spaces and dashes do not matter;
/// compared in time that does not depend on where they differ.
pub fn matches(given: &str, code: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let (g, c) = (norm(given), norm(code));
    !c.is_empty() && crate::auth::constant_time_eq(&g, &c)
}

/// The host a browser on the LAN most likely reaches this machine by: the `listen` address when
/// it names one, else the first private IPv4 address of an interface, else the host name.
pub fn lan_host(cfg: &Config) -> String {
    let ip = cfg.listen.ip();
    if !ip.is_unspecified() {
        return match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
    }
    let private = nix::ifaddrs::getifaddrs().ok().and_then(|addrs| {
        addrs
            .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
            .find(|ip| ip.is_private())
    });
    match private {
        Some(ip) => ip.to_string(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into()),
    }
}

/// The setup link: `dashboard_url`'s address when set, else `http(s)://HOST:PORT`, then
/// `/setup?code=CODE`.
pub fn link(cfg: &Config, host: &str, port: u16, code: &str) -> String {
    let base = match &cfg.dashboard_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let scheme = if cfg.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}:{port}")
        }
    };
    format!("{base}/setup?code={code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_made_once_private_and_matched_loosely() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("lanmeter.db");
        assert_eq!(read(&db).unwrap(), None);
        let code = ensure(&db).unwrap();
        assert_eq!(code.len(), CODE_CHARS + 2, "{code}");
        assert_eq!(ensure(&db).unwrap(), code, "made once, then reused");
        let meta = std::fs::metadata(path_for(&db)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(path_for(&db).ends_with("lanmeter.db.setup-code"));
        assert!(matches(&code.to_uppercase().replace('-', " "), &code));
        assert!(!matches("", &code));
        assert!(!matches(&code[..10], &code));
        assert_ne!(new_code().unwrap(), code);
        remove(&db);
        assert_eq!(read(&db).unwrap(), None);
        remove(&db);
    }

    #[test]
    fn the_link_names_the_dashboard() {
        let cfg = Config::default();
        assert_eq!(
            link(&cfg, "192.168.1.5", 8080, "abcd-efgh-jkmn"),
            "http://192.168.1.5:8080/setup?code=abcd-efgh-jkmn"
        );
        let cfg = Config {
            dashboard_url: Some("https://pi.home/".into()),
            ..Config::default()
        };
        assert_eq!(link(&cfg, "x", 8080, "c"), "https://pi.home/setup?code=c");
        let cfg = Config {
            listen: "[::1]:9000".parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(lan_host(&cfg), "[::1]");
    }
}
