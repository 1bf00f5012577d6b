//! Configuration: the keys of `softhsm2.conf` that apply to Tessera, plus Tessera's own.
//!
//! The file is named by `TESSERA_CONF`; without it, `$XDG_CONFIG_HOME/tessera/tessera.conf`
//! (or `~/.config/tessera/tessera.conf`) and then `/etc/tessera/tessera.conf` are read if present,
//! and built-in defaults apply otherwise. The format is SoftHSMv2's: `key = value` lines, `#` comments.

use std::path::{Path, PathBuf};

/// Lowest PBKDF2 iteration count accepted for PIN-derived keys.
pub const MIN_KDF_ITERATIONS: u32 = 600_000;

/// Module configuration, read once per `C_Initialize`.
#[derive(Debug, Clone)]
pub struct Config {
    /// `directories.tokendir`: one sub-directory per token.
    pub tokendir: PathBuf,
    /// `log.level`: ERROR, WARNING, INFO or DEBUG.
    pub log_level: String,
    /// `slots.removable`: report slots as removable devices.
    pub removable: bool,
    /// `pin.max_failures`: consecutive wrong PINs before the PIN locks (0 = never).
    pub pin_max_failures: u32,
    /// `pin.kdf_iterations`: PBKDF2-HMAC-SHA-256 iterations for new PIN wraps (>= 600,000).
    pub kdf_iterations: u32,
    /// `tessera.mode`: approved or non-approved (overridden by `TESSERA_MODE`).
    pub mode: crate::policy::Mode,
    /// `keys.legacy_wrapping = allow`: lift Tessera's key-management rules (keys that both wrap and
    /// process data, unauthenticated wrapping mechanisms, unwrapped keys that are not sensitive) for
    /// test suites written against modules without them. Never in the approved mode.
    pub legacy_wrapping: bool,
    /// Where the configuration came from, for diagnostics.
    pub source: Option<PathBuf>,
}

impl Config {
    fn defaults() -> Config {
        Config {
            tokendir: default_tokendir(),
            log_level: "ERROR".into(),
            removable: false,
            pin_max_failures: 10,
            kdf_iterations: MIN_KDF_ITERATIONS,
            mode: crate::policy::Mode::NonApproved,
            legacy_wrapping: false,
            source: None,
        }
    }

    /// Reads the configuration the environment points at; `TESSERA_MODE` overrides the mode.
    pub fn load() -> Result<Config, String> {
        let mut cfg = Config::load_file()?;
        if let Some(m) = std::env::var_os("TESSERA_MODE").filter(|m| !m.is_empty()) {
            let m = m.to_string_lossy();
            cfg.mode = crate::policy::Mode::parse(&m)
                .ok_or_else(|| format!("TESSERA_MODE={m}: expected approved or non-approved"))?;
        }
        Ok(cfg)
    }

    fn load_file() -> Result<Config, String> {
        if let Some(path) = std::env::var_os("TESSERA_CONF") {
            let path = PathBuf::from(path);
            return Config::from_file(&path);
        }
        for path in default_conf_paths() {
            if path.exists() {
                return Config::from_file(&path);
            }
        }
        Ok(Config::defaults())
    }

    /// Reads one configuration file; every unknown or malformed line is an error naming the line.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read configuration {}: {e}", path.display()))?;
        let mut cfg = Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut cfg = Config::defaults();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line {}: expected `key = value`", n + 1));
            };
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| format!("line {}: {key}: {what}", n + 1);
            match key {
                "directories.tokendir" => {
                    if value.is_empty() {
                        return Err(bad("empty path"));
                    }
                    cfg.tokendir = PathBuf::from(value);
                }
                "objectstore.backend" => match value {
                    // Tessera keeps every token in SQLite; SoftHSMv2's file backend name is accepted so
                    // that an existing softhsm2.conf works unchanged.
                    "db" | "sqlite" | "file" => {}
                    _ => return Err(bad("expected db, sqlite or file")),
                },
                "log.level" => match value.to_ascii_uppercase().as_str() {
                    "ERROR" | "WARNING" | "INFO" | "DEBUG" => cfg.log_level = value.to_ascii_uppercase(),
                    _ => return Err(bad("expected ERROR, WARNING, INFO or DEBUG")),
                },
                "slots.removable" => cfg.removable = parse_bool(value).ok_or_else(|| bad("expected true or false"))?,
                // SoftHSMv2 keys that have no meaning for Tessera are accepted and ignored.
                "slots.mechanisms" | "library.reset_on_fork" => {}
                "pin.max_failures" => cfg.pin_max_failures = value.parse().map_err(|_| bad("expected a number"))?,
                "pin.kdf_iterations" => {
                    let it: u32 = value.parse().map_err(|_| bad("expected a number"))?;
                    if it < MIN_KDF_ITERATIONS {
                        return Err(bad("must be at least 600000"));
                    }
                    cfg.kdf_iterations = it;
                }
                "tessera.mode" => {
                    cfg.mode =
                        crate::policy::Mode::parse(value).ok_or_else(|| bad("expected approved or non-approved"))?
                }
                "keys.legacy_wrapping" => {
                    cfg.legacy_wrapping = match value {
                        "allow" => true,
                        "deny" => false,
                        _ => return Err(bad("expected allow or deny")),
                    }
                }
                _ => return Err(format!("line {}: unknown key `{key}`", n + 1)),
            }
        }
        Ok(cfg)
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

fn default_conf_paths() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        v.push(PathBuf::from(x).join("tessera/tessera.conf"));
    } else if let Some(h) = home() {
        v.push(h.join(".config/tessera/tessera.conf"));
    }
    v.push(PathBuf::from("/etc/tessera/tessera.conf"));
    v
}

/// The per-user default token directory: `$XDG_DATA_HOME/tessera/tokens`, else
/// `~/.local/share/tessera/tokens`, else `/var/lib/tessera/tokens`.
pub fn default_tokendir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("tessera/tokens");
    }
    match home() {
        Some(h) => h.join(".local/share/tessera/tokens"),
        None => PathBuf::from("/var/lib/tessera/tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_softhsm_keys() {
        let c = Config::parse(
            "# comment\ndirectories.tokendir = /tmp/x\nobjectstore.backend = file\nlog.level = info\nslots.removable = true\npin.max_failures = 3\n",
        )
        .unwrap();
        assert_eq!(c.tokendir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log_level, "INFO");
        assert!(c.removable);
        assert_eq!(c.pin_max_failures, 3);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(Config::parse("nonsense").is_err());
        assert!(Config::parse("unknown.key = 1").is_err());
        assert!(Config::parse("pin.kdf_iterations = 1000").is_err());
        assert!(Config::parse("slots.removable = maybe").is_err());
        assert!(Config::parse("tessera.mode = lax").is_err());
        assert_eq!(Config::parse("tessera.mode = approved").unwrap().mode, crate::policy::Mode::Approved);
    }
}
