//! Diagnostics through `tracing`, to stderr, at the configured level.

use std::sync::Once;

/// Installs the subscriber once per process (later calls keep the first level).
pub fn init(level: &str) {
    static ONCE: Once = Once::new();
    let level = match level {
        "DEBUG" => tracing::Level::DEBUG,
        "INFO" => tracing::Level::INFO,
        "WARNING" => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    };
    ONCE.call_once(|| {
        let _ =
            tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_target(false).try_init();
    });
}
