//! Configuration: the keys of `softhsm2.conf` that apply to Tessera, plus Tessera's own.
//!
//! The file is named by `TESSERA_CONF`; without it, `$XDG_CONFIG_HOME/tessera/tessera.conf`
//! (or `~/.config/tessera/tessera.conf`) and then `/etc/tessera/tessera.conf` are read if present,
//! and built-in defaults apply otherwise. The format is SoftHSMv2's: `key = value` lines, `#` comments.
//!
//! A process in secure-execution mode (the kernel's `AT_SECURE`: setuid or setgid programs, file
//! capabilities) reads none of `TESSERA_CONF`, `TESSERA_MODE`, `HOME` or `XDG_*`: its environment
//! was chosen by whoever started it, not by the program's owner. It reads the system configuration
//! `/etc/tessera/tessera.conf`, and the defaults otherwise (tokens in `/var/lib/tessera/tokens`).
//!
//! `TESSERA_MODE` may always make the mode stricter (`approved` over a non-approved
//! configuration); it may lower an approved configuration to `non-approved` only when that
//! configuration says `tessera.mode_override = allow`. Otherwise the configuration is refused with
//! a message naming both, and `C_Initialize` fails: the module never runs in the non-approved mode
//! when its configuration says approved.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The system configuration, the only one a secure-execution process reads.
pub const SYSTEM_CONF: &str = "/etc/tessera/tessera.conf";

/// SoftHSMv2's system configuration, read (the drop-in) when no Tessera configuration exists.
pub const SOFTHSM2_SYSTEM_CONF: &str = "/etc/softhsm/softhsm2.conf";

/// The directory, inside SoftHSMv2's token directory, that holds Tessera's store in the drop-in.
pub const DROPIN_STORE: &str = ".tessera";

/// The environment variables the configuration may read.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `TESSERA_CONF`.
    pub conf: Option<OsString>,
    /// `TESSERA_MODE`.
    pub mode: Option<OsString>,
    pub home: Option<OsString>,
    pub xdg_config_home: Option<OsString>,
    pub xdg_data_home: Option<OsString>,
    /// `SOFTHSM2_CONF`: SoftHSMv2's configuration, read when `TESSERA_CONF` is unset (the
    /// drop-in: see [`Config::softhsm2_tokendir`]).
    pub softhsm2_conf: Option<OsString>,
    /// A secure-execution process: no SoftHSMv2 configuration is looked for either.
    pub secure: bool,
}

impl Environment {
    /// This process's variables; none at all in a secure-execution process (see the module
    /// documentation). Empty values count as unset.
    pub fn of_process() -> Environment {
        Environment::read(crate::abi::secure_execution())
    }

    /// The process's variables, or none when `secure`.
    pub fn read(secure: bool) -> Environment {
        if secure {
            return Environment { secure: true, ..Environment::default() };
        }
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Environment {
            conf: var("TESSERA_CONF"),
            mode: var("TESSERA_MODE"),
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            xdg_data_home: var("XDG_DATA_HOME"),
            softhsm2_conf: var("SOFTHSM2_CONF"),
            secure: false,
        }
    }
}

/// Lowest PBKDF2 iteration count accepted for PIN-derived keys.
pub const MIN_KDF_ITERATIONS: u32 = 600_000;

/// PBKDF2 iterations of a test token's PINs (`T_InitTestToken`, `tessera-util --init-token
/// --test-token`, the tokens of `tessera-util run`): a throwaway token a pipeline makes for its
/// tests, whose PINs guard nothing worth 600,000 iterations per process. A token whose SO PIN wrap
/// has exactly this count is a test token: labelled so in `C_GetTokenInfo`'s model, refused in the
/// approved mode; every other token keeps the 600,000 floor.
pub const TEST_KDF_ITERATIONS: u32 = 1_000;

/// The shortest PIN a configuration may allow (`pin.min_length`), and the non-approved mode's
/// minimum when the key is absent (SoftHSMv2's): 4 bytes.
pub const MIN_PIN_LENGTH: usize = 4;

/// The approved mode's minimum when `pin.min_length` is absent, and the least it accepts: a
/// random guess at a PIN of 6 digits (the worst case: digits only) succeeds in one attempt with
/// probability 1/10^6 (see [`Config::check_authentication_strength`]).
pub const APPROVED_MIN_PIN_LENGTH: usize = 6;

/// The one-minute bound of the approved mode, as the denominator of a probability: a random
/// guess may succeed with probability at most 1/100,000 in one minute.
const ONE_MINUTE_BOUND: u128 = 100_000;

/// Module configuration, read once per `C_Initialize`.
#[derive(Debug, Clone)]
pub struct Config {
    /// `directories.tokendir`: one sub-directory per token.
    pub tokendir: PathBuf,
    /// `log.level`: ERROR, WARNING, INFO or DEBUG.
    pub log_level: String,
    /// `log.file`: diagnostics to this file (a new one each day, the date appended) instead of
    /// stderr.
    pub log_file: Option<PathBuf>,
    /// `slots.removable`: report slots as removable devices.
    pub removable: bool,
    /// `pin.max_failures`: consecutive wrong PINs before the PIN locks (0 = never; not in the
    /// approved mode).
    pub pin_max_failures: u32,
    /// `pin.min_length` as configured (4 to 255 bytes); the minimum in force is
    /// [`Config::pin_min_length`], which depends on the mode when the key is absent.
    pub pin_min_length_set: Option<usize>,
    /// `pin.kdf_iterations`: PBKDF2-HMAC-SHA-256 iterations for new PIN wraps (>= 600,000).
    pub kdf_iterations: u32,
    /// `tessera.mode`: approved or non-approved (overridden by `TESSERA_MODE`, see the module
    /// documentation).
    pub mode: crate::policy::Mode,
    /// `keys.legacy_wrapping = allow`: lift Tessera's key-management rules (keys that both wrap and
    /// process data, unauthenticated wrapping mechanisms, unwrapped keys that are not sensitive) for
    /// test suites written against modules without them. Never in the approved mode.
    pub legacy_wrapping: bool,
    /// `tessera.mode_override`: whether `TESSERA_MODE=non-approved` may lower `tessera.mode =
    /// approved` (`allow`; `deny` by default).
    pub mode_override: bool,
    /// Where the configuration came from, for diagnostics.
    pub source: Option<PathBuf>,
    /// The `audit.*` keys.
    pub audit: Audit,
    /// `slots.mechanisms` (SoftHSMv2's key): the mechanisms the token offers.
    pub mechanisms: MechanismFilter,
    /// `pin.cache = keyring`: the login cache's lifetime in seconds (`pin.cache_seconds`); `None`:
    /// no cache (`pin.cache = none`, the default). Not in the approved mode.
    pub pin_cache_seconds: Option<usize>,
    /// The drop-in: the configuration is SoftHSMv2's (`SOFTHSM2_CONF`, or
    /// `/etc/softhsm/softhsm2.conf` when no Tessera configuration exists), and this is its
    /// `directories.tokendir`. Its SoftHSMv2 tokens appear as slots (see `migrate::dropin`);
    /// Tessera's store, `tokendir`, is its sub-directory `.tessera`.
    pub softhsm2_tokendir: Option<PathBuf>,
}

/// `slots.mechanisms`, with SoftHSMv2's meaning: `ALL` (the default), a comma-separated list of
/// the mechanisms enabled, or such a list after a minus sign of those disabled. It applies before
/// anything else (`C_GetMechanismList`, `C_GetMechanismInfo` and every call that takes a
/// mechanism answer `CKR_MECHANISM_INVALID` for a disabled one), so it is stronger than a key's
/// `CKA_ALLOWED_MECHANISMS`. Names the module does not know are ignored, as SoftHSMv2 ignores them,
/// and reported in the diagnostic log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MechanismFilter {
    /// `None`: every mechanism. `Some((true, set))`: only `set`; `Some((false, set))`: all but `set`.
    pub list: Option<(bool, Vec<cryptoki_sys::CK_MECHANISM_TYPE>)>,
    /// Names in the list that name no mechanism.
    pub unknown: Vec<String>,
}

impl MechanismFilter {
    fn parse(value: &str) -> MechanismFilter {
        let value = value.trim();
        if value.eq_ignore_ascii_case("ALL") {
            return MechanismFilter::default();
        }
        let (enabled, rest) = match value.strip_prefix('-') {
            Some(r) => (false, r),
            None => (true, value),
        };
        let mut set = Vec::new();
        let mut unknown = Vec::new();
        for name in rest.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let bare = name.strip_prefix('-').unwrap_or(name);
            let full = if bare.starts_with("CKM_") { bare.to_string() } else { format!("CKM_{bare}") };
            match crate::mechanisms::names::MECHANISMS.iter().find(|(n, _)| *n == full) {
                Some((_, v)) => set.push(*v),
                None => unknown.push(name.to_string()),
            }
        }
        MechanismFilter { list: Some((enabled, set)), unknown }
    }

    /// Whether the configuration lets the token offer `m`.
    pub fn allows(&self, m: cryptoki_sys::CK_MECHANISM_TYPE) -> bool {
        match &self.list {
            None => true,
            Some((enabled, set)) => set.contains(&m) == *enabled,
        }
    }
}

impl Config {
    fn defaults(env: &Environment) -> Config {
        Config {
            tokendir: default_tokendir(env),
            log_level: "ERROR".into(),
            log_file: None,
            removable: false,
            pin_max_failures: 10,
            pin_min_length_set: None,
            kdf_iterations: MIN_KDF_ITERATIONS,
            mode: crate::policy::Mode::NonApproved,
            legacy_wrapping: false,
            mode_override: false,
            source: None,
            audit: Audit::default(),
            mechanisms: MechanismFilter::default(),
            pin_cache_seconds: None,
            softhsm2_tokendir: None,
        }
    }

    /// Reads the configuration this process's environment points at (see the module
    /// documentation); `TESSERA_MODE` overrides the mode where it may.
    pub fn load() -> Result<Config, String> {
        Config::load_from(&Environment::of_process())
    }

    /// [`Config::load`] with the given environment.
    pub fn load_from(env: &Environment) -> Result<Config, String> {
        let mut cfg = Config::load_file(env)?;
        if let Some(m) = &env.mode {
            let m = m.to_string_lossy();
            let wanted = crate::policy::Mode::parse(&m)
                .ok_or_else(|| format!("TESSERA_MODE={m}: expected approved or non-approved"))?;
            if cfg.mode == crate::policy::Mode::Approved && wanted != cfg.mode && !cfg.mode_override {
                let from = cfg.source.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                return Err(format!(
                    "TESSERA_MODE={m} refused: the configuration {from} sets tessera.mode = approved and does \
                     not allow the environment to lower it (tessera.mode_override = allow); the module does not start"
                ));
            }
            cfg.mode = wanted;
        }
        // Only now is the mode final: the PIN rules it asks for are checked against it.
        cfg.check_authentication_strength()?;
        Ok(cfg)
    }

    /// The shortest PIN accepted (bytes): `pin.min_length`, else 6 in the approved mode and 4 in
    /// the non-approved one. Depends on the mode, so read it once the mode is final (after
    /// [`Config::load_from`]).
    pub fn pin_min_length(&self) -> usize {
        self.pin_min_length_set.unwrap_or(match self.mode {
            crate::policy::Mode::Approved => APPROVED_MIN_PIN_LENGTH,
            crate::policy::Mode::NonApproved => MIN_PIN_LENGTH,
        })
    }

    /// The approved mode's strength of authentication (ISO/IEC 19790 §7.4.3, SP 800-140B): a
    /// random guess at a PIN succeeds with probability at most 1/1,000,000 in one attempt and
    /// at most 1/100,000 in one minute. The worst case is a PIN of digits only, of the minimum
    /// length L: 10^L possibilities. One attempt: 1/10^L, so L >= 6. One minute: the PIN locks
    /// after N consecutive failures and failures are counted before a PIN is tried (across
    /// threads and processes), so at most N guesses are ever tried before it locks, whatever the
    /// rate: N/10^L <= 1/100,000, that is N <= 10^(L-5); and N = 0 (no lockout) leaves only the
    /// rate to bound them. The non-approved mode checks nothing here.
    pub fn check_authentication_strength(&self) -> Result<(), String> {
        if self.mode != crate::policy::Mode::Approved {
            return Ok(());
        }
        let from = match &self.source {
            Some(p) => format!(" (configuration {})", p.display()),
            None => String::new(),
        };
        let refuse = |why: String| {
            Err(format!("the approved mode refuses this PIN policy{from}: {why}; the module does not start"))
        };
        if self.pin_cache_seconds.is_some() {
            return refuse(
                "pin.cache = keyring keeps PIN-derived keys in the kernel's keyring, outside the module; set \
                 pin.cache = none (or remove the key)"
                    .into(),
            );
        }
        let l = self.pin_min_length();
        let n = self.pin_max_failures;
        if l < APPROVED_MIN_PIN_LENGTH {
            return refuse(format!(
                "pin.min_length = {l} lets a random guess at a PIN of {l} digits succeed with probability 1/10^{l} in one \
                 attempt, above 1/1,000,000; set pin.min_length = {APPROVED_MIN_PIN_LENGTH} or more (or remove the key)"
            ));
        }
        // The most failures the one-minute bound allows: 10^(L-5) (beyond u128 for long minimums).
        let most = 10u128.checked_pow(l as u32).map(|p| p / ONE_MINUTE_BOUND);
        if n == 0 {
            let most = most.map_or(u32::MAX, |m| m.min(u32::MAX as u128) as u32);
            return refuse(format!(
                "pin.max_failures = 0 never locks a PIN, so guesses at it are unlimited; set pin.max_failures from 1 \
                 to {most} (with pin.min_length = {l})"
            ));
        }
        if most.is_some_and(|m| n as u128 > m) {
            let most = most.unwrap_or_default();
            return refuse(format!(
                "pin.max_failures = {n} lets {n} guesses at a PIN of {l} digits succeed with probability {n}/10^{l} \
                 before it locks, above 1/100,000 in one minute; set pin.max_failures to {most} or fewer, or raise \
                 pin.min_length (each byte more allows ten times as many failures)"
            ));
        }
        Ok(())
    }

    fn load_file(env: &Environment) -> Result<Config, String> {
        if let Some(path) = &env.conf {
            return Config::from_file_in(Path::new(path), env);
        }
        if let Some(path) = &env.softhsm2_conf {
            return Config::dropin(Path::new(path), env);
        }
        for path in default_conf_paths(env) {
            if path.exists() {
                return Config::from_file_in(&path, env);
            }
        }
        if !env.secure && Path::new(SOFTHSM2_SYSTEM_CONF).exists() {
            return Config::dropin(Path::new(SOFTHSM2_SYSTEM_CONF), env);
        }
        Ok(Config::defaults(env))
    }

    /// SoftHSMv2's configuration file, read as Tessera's (the same format and keys): its
    /// `directories.tokendir` holds SoftHSMv2's tokens, and Tessera's store goes in its
    /// sub-directory `.tessera` (which SoftHSMv2 skips: it holds no `token.object`).
    fn dropin(path: &Path, env: &Environment) -> Result<Config, String> {
        let mut cfg = Config::from_file_in(path, env)?;
        cfg.softhsm2_tokendir = Some(cfg.tokendir.clone());
        cfg.tokendir = cfg.tokendir.join(DROPIN_STORE);
        Ok(cfg)
    }

    /// Reads one configuration file; every unknown or malformed line is an error naming the line.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        Config::from_file_in(path, &Environment::of_process())
    }

    fn from_file_in(path: &Path, env: &Environment) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read configuration {}: {e}", path.display()))?;
        let mut cfg = Config::parse_in(&text, env).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Config, String> {
        Config::parse_in(text, &Environment::of_process())
    }

    fn parse_in(text: &str, env: &Environment) -> Result<Config, String> {
        let mut cfg = Config::defaults(env);
        let (mut cache, mut cache_seconds) = (false, DEFAULT_PIN_CACHE_SECONDS);
        for (n, raw) in text.lines().enumerate() {
            // As in softhsm2.conf(5): anything after a hash sign is a comment.
            let line = raw.split('#').next().unwrap_or_default().trim();
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
                "log.file" => {
                    if value.is_empty() {
                        return Err(bad("empty path"));
                    }
                    cfg.log_file = Some(PathBuf::from(value));
                }
                "slots.removable" => cfg.removable = parse_bool(value).ok_or_else(|| bad("expected true or false"))?,
                "slots.mechanisms" => cfg.mechanisms = MechanismFilter::parse(value),
                // SoftHSMv2 keys accepted with no effect: a child process after fork() always
                // starts afresh (CKR_CRYPTOKI_NOT_INITIALIZED until its own C_Initialize), which is
                // what `library.reset_on_fork = true` asks; and Tessera's store files are always
                // the owner's alone (0600 in 0700 directories), which no umask loosens.
                "library.reset_on_fork" => {
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?;
                }
                "objectstore.umask" => {
                    u32::from_str_radix(value, 8).map_err(|_| bad("expected an octal mask"))?;
                }
                "pin.max_failures" => cfg.pin_max_failures = value.parse().map_err(|_| bad("expected a number"))?,
                "pin.min_length" => {
                    let range = MIN_PIN_LENGTH..=crate::token::MAX_PIN;
                    let expected =
                        || bad(&format!("expected a number of bytes from {} to {}", range.start(), range.end()));
                    let l: usize = value.parse().map_err(|_| expected())?;
                    if !range.contains(&l) {
                        return Err(expected());
                    }
                    cfg.pin_min_length_set = Some(l);
                }
                "pin.cache" => {
                    cache = match value {
                        "none" => false,
                        "keyring" => true,
                        _ => return Err(bad("expected none or keyring")),
                    }
                }
                "pin.cache_seconds" => {
                    let s: usize = value.parse().map_err(|_| bad("expected a number of seconds"))?;
                    if !(1..=86_400).contains(&s) {
                        return Err(bad("expected 1 to 86400 seconds"));
                    }
                    cache_seconds = s;
                }
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
                "tessera.mode_override" => match value {
                    "allow" => cfg.mode_override = true,
                    "deny" => cfg.mode_override = false,
                    _ => return Err(bad("expected allow or deny")),
                },
                k if k.starts_with("audit.") => cfg.audit.set(k, value).map_err(|e| bad(&e))?,
                _ => return Err(format!("line {}: unknown key `{key}`", n + 1)),
            }
        }
        cfg.pin_cache_seconds = cache.then_some(cache_seconds);
        Ok(cfg)
    }
}

/// `pin.cache_seconds` by default: five minutes.
pub const DEFAULT_PIN_CACHE_SECONDS: usize = 300;

/// The audit log's keys (`audit.*`; see docs/audit.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// `audit.dir`: the log's directory. Unset: `audit` beside the token directory, used only if
    /// `tessera-audit init` created a chain there; set: the chain must exist there.
    pub dir: Option<PathBuf>,
    /// `audit.events`: the categories recorded (comma-separated; `all` by default).
    pub events: AuditEvents,
    /// `audit.sync = always`: every record reaches the disk before its call returns (`default`:
    /// authentication, key-lifecycle and module records only).
    pub sync_always: bool,
    /// `audit.on_failure = continue`: a call whose record cannot be written runs unrecorded
    /// (non-approved mode only; `fail`, the default, fails it).
    pub on_failure_continue: bool,
    /// `audit.checkpoint_every`: records between signed checkpoints (0: only at `C_Finalize`
    /// and on demand; default 1,000).
    pub checkpoint_every: u64,
    /// `audit.rotate_bytes`: the size at which the log goes on in a new file (0, the default:
    /// one file).
    pub rotate_bytes: u64,
    /// `audit.keep_files`: rotated files kept (0, the default: all); older ones are deleted, each
    /// covered by a signed checkpoint first.
    pub keep_files: u64,
    /// `audit.checkpoint_seconds`: a checkpoint at the first record after this many seconds
    /// since the process's last one (0: by count only; default 60).
    pub checkpoint_seconds: u64,
    /// `audit.checkpoint_sink`: where each checkpoint's note also goes: a file it is appended
    /// to, or `syslog`.
    pub checkpoint_sink: Option<tessera_audit::writer::Sink>,
}

impl Default for Audit {
    fn default() -> Audit {
        Audit {
            dir: None,
            events: AuditEvents::ALL,
            sync_always: false,
            on_failure_continue: false,
            checkpoint_every: tessera_audit::writer::CHECKPOINT_EVERY,
            rotate_bytes: 0,
            keep_files: 0,
            checkpoint_seconds: 60,
            checkpoint_sink: None,
        }
    }
}

/// The categories of `audit.events`, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditEvents(pub u8);

impl AuditEvents {
    /// `C_Initialize`, `C_Finalize`, self-tests on demand, token deletion.
    pub const MODULE: u8 = 1;
    /// `C_InitToken`, `C_InitPIN`, `C_SetPIN`.
    pub const TOKEN: u8 = 2;
    /// `C_Login`, `C_LoginUser`, `C_Logout`.
    pub const AUTH: u8 = 4;
    /// Object creation, copy, destruction, attribute changes.
    pub const OBJECT: u8 = 8;
    /// Key generation, derivation, wrapping, unwrapping, encapsulation.
    pub const KEY: u8 = 16;
    /// Cryptographic operations (digest, sign, verify, encrypt, decrypt, message).
    pub const CRYPTO: u8 = 32;
    /// Calls the policy refused, whatever their function.
    pub const REFUSAL: u8 = 64;
    pub const ALL: AuditEvents = AuditEvents(127);
    pub const NAMES: [(&'static str, u8); 7] = [
        ("module", Self::MODULE),
        ("token", Self::TOKEN),
        ("auth", Self::AUTH),
        ("object", Self::OBJECT),
        ("key", Self::KEY),
        ("crypto", Self::CRYPTO),
        ("refusal", Self::REFUSAL),
    ];

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

impl Audit {
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "audit.dir" => {
                if value.is_empty() {
                    return Err("empty path".into());
                }
                self.dir = Some(PathBuf::from(value));
            }
            "audit.events" => {
                let mut bits = 0;
                for name in value.split(',').map(str::trim) {
                    bits |= match name {
                        "all" => AuditEvents::ALL.0,
                        _ => AuditEvents::NAMES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).ok_or_else(|| {
                            format!(
                                "unknown category `{name}` (module, token, auth, object, key, crypto, refusal, all)"
                            )
                        })?,
                    };
                }
                self.events = AuditEvents(bits);
            }
            "audit.sync" => {
                self.sync_always = match value {
                    "always" => true,
                    "default" => false,
                    _ => return Err("expected default or always".into()),
                }
            }
            "audit.on_failure" => {
                self.on_failure_continue = match value {
                    "continue" => true,
                    "fail" => false,
                    _ => return Err("expected fail or continue".into()),
                }
            }
            "audit.checkpoint_every" => {
                self.checkpoint_every = value.parse().map_err(|_| "expected a number of records".to_string())?;
            }
            "audit.rotate_bytes" => {
                self.rotate_bytes = value.parse().map_err(|_| "expected a number of bytes".to_string())?;
            }
            "audit.keep_files" => {
                self.keep_files = value.parse().map_err(|_| "expected a number of files".to_string())?;
            }
            "audit.checkpoint_seconds" => {
                self.checkpoint_seconds = value.parse().map_err(|_| "expected a number of seconds".to_string())?;
            }
            "audit.checkpoint_sink" => {
                self.checkpoint_sink =
                    Some(tessera_audit::writer::Sink::parse(value).ok_or("expected a file's path or syslog")?);
            }
            _ => return Err("unknown audit key".into()),
        }
        Ok(())
    }

    /// The log's directory: `audit.dir`, else `audit` beside the token directory.
    pub fn dir_for(&self, tokendir: &Path) -> PathBuf {
        match &self.dir {
            Some(d) => d.clone(),
            None => tokendir.parent().unwrap_or(tokendir).join("audit"),
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn default_conf_paths(env: &Environment) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(x) = &env.xdg_config_home {
        v.push(PathBuf::from(x).join("tessera/tessera.conf"));
    } else if let Some(h) = &env.home {
        v.push(PathBuf::from(h).join(".config/tessera/tessera.conf"));
    }
    v.push(PathBuf::from(SYSTEM_CONF));
    v
}

/// The per-user default token directory: `$XDG_DATA_HOME/tessera/tokens`, else
/// `~/.local/share/tessera/tokens`, else (and always in a secure-execution process)
/// `/var/lib/tessera/tokens`.
pub fn default_tokendir(env: &Environment) -> PathBuf {
    if let Some(x) = &env.xdg_data_home {
        return PathBuf::from(x).join("tessera/tokens");
    }
    match &env.home {
        Some(h) => PathBuf::from(h).join(".local/share/tessera/tokens"),
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
        assert!(Config::parse("tessera.mode_override = maybe").is_err());
    }

    #[test]
    fn parses_the_audit_keys() {
        let c = Config::parse("directories.tokendir = /t/tokens").unwrap();
        assert_eq!(c.audit, Audit::default());
        assert_eq!(c.audit.dir_for(&c.tokendir), PathBuf::from("/t/audit"));
        let c = Config::parse(
            "audit.dir = /var/log/tessera\naudit.events = auth, key\naudit.sync = always\naudit.on_failure = continue\naudit.checkpoint_every = 50",
        )
        .unwrap();
        assert_eq!(c.audit.checkpoint_every, 50);
        assert_eq!(Config::parse("audit.rotate_bytes = 1048576").unwrap().audit.rotate_bytes, 1 << 20);
        assert!(Config::parse("audit.rotate_bytes = 1M").is_err());
        assert_eq!(Config::parse("audit.keep_files = 7").unwrap().audit.keep_files, 7);
        let t = Config::parse("audit.checkpoint_seconds = 5\naudit.checkpoint_sink = /var/log/cp").unwrap();
        let file = tessera_audit::writer::Sink::File(PathBuf::from("/var/log/cp"));
        assert_eq!((t.audit.checkpoint_seconds, t.audit.checkpoint_sink), (5, Some(file)));
        let t = Config::parse("audit.checkpoint_sink = syslog").unwrap();
        assert_eq!(t.audit.checkpoint_sink, Some(tessera_audit::writer::Sink::Syslog));
        assert!(Config::parse("audit.checkpoint_sink =").is_err());
        assert!(Config::parse("audit.checkpoint_every = often").is_err());
        assert_eq!(c.audit.dir_for(Path::new("/x")), PathBuf::from("/var/log/tessera"));
        assert_eq!(c.audit.events, AuditEvents(AuditEvents::AUTH | AuditEvents::KEY));
        assert!(c.audit.sync_always && c.audit.on_failure_continue);
        assert!(Config::parse("audit.events = everything").is_err());
        assert!(Config::parse("audit.sync = sometimes").is_err());
        assert!(Config::parse("audit.on_failure = ignore").is_err());
        assert!(Config::parse("audit.dir =").is_err());
        assert!(Config::parse("audit.other = 1").is_err());
    }

    /// A configuration file and an environment that names it.
    fn conf(text: &str) -> (tempfile::TempDir, Environment) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.conf"), text).unwrap();
        let env = Environment { conf: Some(dir.path().join("t.conf").into()), ..Default::default() };
        (dir, env)
    }

    #[test]
    fn the_environment_lowers_an_approved_mode_only_when_the_configuration_allows_it() {
        use crate::policy::Mode::*;
        let with_mode = |text: &str, mode: Option<&str>| {
            let (_d, mut env) = conf(text);
            env.mode = mode.map(Into::into);
            Config::load_from(&env).map(|c| c.mode)
        };
        let e = with_mode("tessera.mode = approved", Some("non-approved")).unwrap_err();
        assert!(e.contains("TESSERA_MODE=non-approved refused") && e.contains("tessera.mode_override = allow"), "{e}");
        let e = with_mode("tessera.mode = approved\ntessera.mode_override = deny", Some("non-approved"));
        assert!(e.is_err());
        let allowed = "tessera.mode = approved\ntessera.mode_override = allow";
        assert_eq!(with_mode(allowed, Some("non-approved")), Ok(NonApproved));
        assert_eq!(with_mode("tessera.mode = approved", Some("approved")), Ok(Approved));
        assert_eq!(with_mode("tessera.mode = approved", None), Ok(Approved));
        // Stricter is always allowed.
        assert_eq!(with_mode("tessera.mode = non-approved", Some("approved")), Ok(Approved));
        assert_eq!(with_mode("", Some("approved")), Ok(Approved));
        assert_eq!(with_mode("", Some("non-approved")), Ok(NonApproved));
        assert!(with_mode("", Some("lax")).is_err());
    }

    #[test]
    fn pin_min_length_is_checked_and_its_default_follows_the_final_mode() {
        use crate::policy::Mode::*;
        assert_eq!(Config::parse("pin.min_length = 8").unwrap().pin_min_length_set, Some(8));
        for bad in ["3", "0", "256", "-1", "six", ""] {
            let e = Config::parse(&format!("pin.min_length = {bad}")).unwrap_err();
            assert!(e.contains("pin.min_length") && e.contains("from 4 to 255"), "{bad}: {e}");
        }
        assert_eq!(Config::parse("pin.min_length = 4").unwrap().pin_min_length(), 4);
        assert_eq!(Config::parse("pin.min_length = 255").unwrap().pin_min_length(), 255);
        let load = |text: &str, mode: Option<&str>| {
            let (_d, mut env) = conf(text);
            env.mode = mode.map(Into::into);
            Config::load_from(&env).map(|c| (c.mode, c.pin_min_length()))
        };
        // Absent: 4 in the non-approved mode, 6 in the approved one, however the mode was chosen.
        assert_eq!(load("", None), Ok((NonApproved, 4)));
        assert_eq!(load("", Some("approved")), Ok((Approved, 6)));
        assert_eq!(load("tessera.mode = approved", None), Ok((Approved, 6)));
        let lowered = "tessera.mode = approved\ntessera.mode_override = allow";
        assert_eq!(load(lowered, Some("non-approved")), Ok((NonApproved, 4)));
        // Set: the key, in either mode.
        assert_eq!(load("pin.min_length = 5", None), Ok((NonApproved, 5)));
        assert_eq!(load("pin.min_length = 9", Some("approved")), Ok((Approved, 9)));
    }

    #[test]
    fn the_approved_mode_refuses_a_weak_pin_policy_and_says_which_key() {
        let load = |text: &str, mode: &str| {
            let (_d, mut env) = conf(text);
            env.mode = Some(mode.into());
            Config::load_from(&env)
        };
        let refused = |text: &str, key: &str| {
            let e = load(text, "approved").unwrap_err();
            assert!(e.contains("approved mode refuses") && e.contains(key) && e.contains("t.conf"), "{text}: {e}");
            // The non-approved mode takes what it took before.
            assert!(load(text, "non-approved").is_ok(), "{text}");
            e
        };
        let e = refused("pin.min_length = 4", "pin.min_length = 4");
        assert!(e.contains("1/10^4") && e.contains("pin.min_length = 6 or more"), "{e}");
        refused("pin.min_length = 5\npin.max_failures = 1", "pin.min_length = 5");
        let e = refused("pin.max_failures = 0", "pin.max_failures = 0");
        assert!(e.contains("from 1 to 10"), "{e}");
        refused("pin.min_length = 8\npin.max_failures = 0", "pin.max_failures = 0");
        let e = refused("pin.max_failures = 11", "pin.max_failures = 11");
        assert!(e.contains("11/10^6") && e.contains("10 or fewer"), "{e}");
        refused("pin.min_length = 7\npin.max_failures = 101", "pin.max_failures = 101");
        refused("pin.min_length = 8\npin.max_failures = 1001", "pin.max_failures = 1001");
        // Within the bounds: N <= 10^(L-5).
        for ok in [
            "",
            "pin.max_failures = 10",
            "pin.max_failures = 1",
            "pin.min_length = 6\npin.max_failures = 10",
            "pin.min_length = 7\npin.max_failures = 100",
            "pin.min_length = 8\npin.max_failures = 1000",
            "pin.min_length = 15\npin.max_failures = 4294967295",
            "pin.min_length = 255\npin.max_failures = 4294967295",
        ] {
            assert!(load(ok, "approved").is_ok(), "{ok}: {:?}", load(ok, "approved"));
        }
        // The mode set by the file is checked too, not only the one the environment sets.
        let (_d, env) = conf("tessera.mode = approved\npin.max_failures = 0");
        assert!(Config::load_from(&env).is_err());
    }

    #[test]
    fn a_secure_execution_process_reads_no_environment() {
        let open = Environment {
            conf: Some("/nonexistent/t.conf".into()),
            mode: Some("lax".into()),
            home: Some("/home/x".into()),
            xdg_config_home: Some("/xdg/config".into()),
            xdg_data_home: Some("/xdg/data".into()),
            softhsm2_conf: Some("/nonexistent/softhsm2.conf".into()),
            secure: false,
        };
        // What a secure-execution process sees, whatever its environment holds.
        let secure = Environment::read(true);
        assert_eq!(open.conf.as_deref(), Some(std::ffi::OsStr::new("/nonexistent/t.conf")));
        assert!(Config::load_from(&open).is_err(), "an ordinary process reads TESSERA_CONF");
        assert_eq!(default_tokendir(&open), PathBuf::from("/xdg/data/tessera/tokens"));
        assert_eq!(default_conf_paths(&open)[0], PathBuf::from("/xdg/config/tessera/tessera.conf"));
        assert!(secure.conf.is_none() && secure.mode.is_none() && secure.home.is_none());
        assert!(secure.softhsm2_conf.is_none() && secure.secure);
        assert_eq!(default_tokendir(&secure), PathBuf::from("/var/lib/tessera/tokens"));
        assert_eq!(default_conf_paths(&secure), vec![PathBuf::from(SYSTEM_CONF)]);
    }

    /// The drop-in: without `TESSERA_CONF`, `SOFTHSM2_CONF` is read as the configuration, its
    /// token directory holds SoftHSMv2's tokens and Tessera's store is its `.tessera`;
    /// `TESSERA_CONF` wins over it.
    #[test]
    fn softhsm2_conf_is_read_when_tessera_conf_is_unset() {
        let d = tempfile::tempdir().unwrap();
        let soft = d.path().join("softhsm2.conf");
        std::fs::write(&soft, "directories.tokendir = /srv/softhsm/tokens\nobjectstore.backend = file\n").unwrap();
        let own = d.path().join("tessera.conf");
        std::fs::write(&own, "directories.tokendir = /srv/tessera\n").unwrap();
        let env = Environment { softhsm2_conf: Some(soft.clone().into()), ..Default::default() };
        let c = Config::load_from(&env).unwrap();
        assert_eq!(c.softhsm2_tokendir, Some(PathBuf::from("/srv/softhsm/tokens")));
        assert_eq!(c.tokendir, PathBuf::from("/srv/softhsm/tokens/.tessera"));
        assert_eq!(c.source, Some(soft.clone()));
        let env = Environment { conf: Some(own.into()), softhsm2_conf: Some(soft.into()), ..Default::default() };
        let c = Config::load_from(&env).unwrap();
        assert_eq!((c.tokendir, c.softhsm2_tokendir), (PathBuf::from("/srv/tessera"), None));
    }
}
