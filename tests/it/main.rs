//! The integration tests: one binary, one module per area.
//!
//! Live tests need root (network namespaces, CAP_NET_RAW); CI and the dev machines run as root.

mod corpus;
mod discovery;
mod live;
mod netns;

/// Sends the library's logs to the test output (shown with `--nocapture` or on failure);
/// `RUST_LOG` picks the level, `info` by default.
pub fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
