//! HTTPS with the household's own certificate: the PEM files named by `tls_cert` and `tls_key`
//! turned into a rustls server configuration, checked at start so a bad file is one clear error.
//!
//! It must never create, fetch or renew certificates: which certificate to trust is the
//! household's decision, made outside lanmeter.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot use the TLS certificate {path}: {detail}: set `tls_cert` to a PEM file with the certificate chain, readable by lanmeter"
    )]
    Cert { path: PathBuf, detail: String },
    #[error(
        "cannot use the TLS key {path}: {detail}: set `tls_key` to the PEM private key of the certificate, readable by lanmeter only"
    )]
    Key { path: PathBuf, detail: String },
    #[error(
        "the TLS certificate {cert} and key {key} cannot be used together ({detail}): check that the key belongs to the certificate"
    )]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// Reads and checks the certificate chain and key; the result serves HTTP/1.1 over TLS 1.2/1.3.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_err = |detail: String| TlsError::Cert {
        path: cert.to_path_buf(),
        detail,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("it holds no PEM certificate".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        detail: e.to_string(),
    })?;
    let pair_err = |e: rustls::Error| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        detail: e.to_string(),
    };
    // An explicit provider rather than a process-wide default: nothing else in the process can
    // change which primitives the dashboard uses.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pair_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(pair_err)?;
    // The server speaks HTTP/1.1 only (a household's few browsers gain nothing from HTTP/2).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=lanmeter.local",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs (Debian package openssl)")
            .status
            .success();
        assert!(ok, "openssl made a certificate");
        (cert, key)
    }

    #[test]
    fn a_matching_pair_loads_and_mismatches_and_garbage_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl(dir.path(), "a");
        let (_, other_key) = openssl(dir.path(), "b");
        let cfg = server_config(&cert, &key).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);

        let err = server_config(&cert, &other_key).unwrap_err().to_string();
        assert!(err.contains("cannot be used together"), "{err}");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = server_config(&junk, &key).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = server_config(&cert, &junk).unwrap_err().to_string();
        assert!(err.contains("cannot use the TLS key"), "{err}");
        let err = server_config(&dir.path().join("missing.pem"), &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_cert"), "{err}");
    }
}
