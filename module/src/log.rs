//! Diagnostics through `tracing`, at the configured level (`log.level`, SoftHSMv2's values), to
//! stderr or to a file rotated daily (`log.file`, through `tracing-appender`). Colour only on a
//! terminal, and never when `NO_COLOR` is set (<https://no-color.org>).
//!
//! An error the user must see whatever the configuration (the module cannot start, it enters the
//! error state) goes through [`critical`]: printed once on stderr, and also written to the log
//! file when there is one.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// The subscriber is installed.
static READY: AtomicBool = AtomicBool::new(false);
/// It writes to stderr (no `log.file`).
static TO_STDERR: AtomicBool = AtomicBool::new(true);

/// Installs the subscriber once per process (later calls keep the first one). `file`: the log
/// file's path; a new file each day, named after it with the date appended.
pub fn init(level: &str, file: Option<&Path>) {
    static ONCE: Once = Once::new();
    let level = match level {
        "DEBUG" => tracing::Level::DEBUG,
        "INFO" => tracing::Level::INFO,
        "WARNING" => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    };
    ONCE.call_once(|| {
        let fmt = tracing_subscriber::fmt().with_max_level(level).with_target(false);
        let appender = file.map(|f| {
            let dir = f.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let prefix =
                f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "tessera.log".into());
            tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix(prefix)
                .build(dir)
                .map_err(|e| format!("log.file {}: {e}; logging to stderr", f.display()))
        });
        match appender {
            Some(Ok(a)) => {
                TO_STDERR.store(false, Ordering::Release);
                let _ = fmt.with_writer(a).with_ansi(false).try_init();
            }
            other => {
                let colour =
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
                let _ = fmt.with_writer(std::io::stderr).with_ansi(colour).try_init();
                if let Some(Err(e)) = other {
                    tracing::warn!("{e}");
                }
            }
        }
        READY.store(true, Ordering::Release);
    });
}

/// An error the user must see: once on stderr, and in the log file if there is one.
pub fn critical(msg: &str) {
    let ready = READY.load(Ordering::Acquire);
    if ready {
        tracing::error!("{msg}");
    }
    if !ready || !TO_STDERR.load(Ordering::Acquire) {
        eprintln!("tessera: {msg}");
    }
}
