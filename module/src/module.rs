//! The initialised module: configuration, slots and tokens, sessions, and the object handle table.
//! Services (`services/`) are methods on it, one file per chapter of the specification.

use crate::config::Config;
use crate::error::{err, Result};
use crate::services::objects::HandleTable;
use crate::session::Session;
use crate::slots::Slots;
use crate::store::seal::KekCache;
use crate::token::PinPolicy;
use cryptoki_sys::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// A session as the module holds it: each has its own lock, so sessions run in parallel.
pub type SessionRef = Arc<Session>;

pub struct Module {
    /// The power-on self-test results of this initialisation.
    pub post: crate::fips::PostReport,
    /// The library file the integrity test checks (as `C_Initialize` found it), for the
    /// self-tests run on demand and the status report.
    pub library: Option<crate::fips::integrity::Library>,
    /// The last self-tests run on demand (`T_SelfTest`), and how many have run.
    pub on_demand: Mutex<Option<(crate::fips::PostReport, u64)>>,
    /// Held while self-tests run on demand: one run at a time.
    pub(crate) self_test_running: Mutex<()>,
    /// Set by any self-test failure: the module refuses every cryptographic and object service.
    in_error: std::sync::atomic::AtomicBool,
    error_reason: Mutex<Option<String>>,
    /// The fork generation this module was initialised in (see `state`).
    pub generation: u64,
    pub cfg: Config,
    pub kek: Arc<KekCache>,
    pub slots: RwLock<Slots>,
    pub sessions: crate::session_table::SessionTable,
    next_session: AtomicU64,
    pub handles: HandleTable,
}

/// Locks a mutex, ignoring poisoning: a panic in one call must not wedge every later one.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Module {
    /// Initialises the module: configuration, power-on self-tests (`module_file` is the installed
    /// library, checked by the integrity test), token discovery.
    pub fn new(module_file: Option<&crate::fips::integrity::Library>) -> Result<Module> {
        let cfg = Config::load().map_err(|e| {
            crate::log::critical(&e);
            err(CKR_GENERAL_ERROR)
        })?;
        crate::log::init(&cfg.log_level, cfg.log_file.as_deref());
        for name in &cfg.mechanisms.unknown {
            tracing::warn!("slots.mechanisms: {name} names no mechanism Tessera knows; ignored");
        }
        if cfg.legacy_wrapping && cfg.mode == crate::policy::Mode::Approved {
            tracing::warn!("keys.legacy_wrapping = allow has no effect in the approved mode");
        }
        if let Err(e) = std::fs::create_dir_all(&cfg.tokendir) {
            let msg = format!("cannot create token directory {}: {e}", cfg.tokendir.display());
            crate::log::critical(&msg);
            return Err(err(CKR_GENERAL_ERROR));
        }
        let keyring = cfg.pin_cache_seconds.map(|seconds| crate::store::keyring::Keyring { seconds });
        let kek = Arc::new(KekCache::with_keyring(keyring)?);
        let post = crate::fips::power_on_self_tests(module_file, cfg.mode == crate::policy::Mode::Approved);
        if let Some(f) = &post.failure {
            crate::log::critical(&format!("power-on self-tests: {f}; the module is in the error state"));
        }
        let m = Module {
            in_error: std::sync::atomic::AtomicBool::new(post.failure.is_some()),
            error_reason: Mutex::new(post.failure.clone()),
            post,
            library: module_file.cloned(),
            on_demand: Mutex::new(None),
            self_test_running: Mutex::new(()),
            generation: crate::state::generation(),
            slots: RwLock::new(Slots::default()),
            sessions: Default::default(),
            next_session: AtomicU64::new(1),
            handles: HandleTable::default(),
            kek,
            cfg,
        };
        m.rescan()?;
        Ok(m)
    }

    /// Whether the module is in the error state.
    pub fn in_error(&self) -> bool {
        self.in_error.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Why the module is in the error state.
    pub fn error_reason(&self) -> Option<String> {
        lock(&self.error_reason).clone()
    }

    /// Enters the error state (a conditional self-test failed). Only `C_Finalize` and a new
    /// `C_Initialize`, which re-runs the power-on self-tests, leave it.
    pub fn enter_error_state(&self, reason: String) {
        crate::log::critical(&format!("{reason}; the module is in the error state"));
        // Leaving the error state takes every self-test again, the algorithm self-tests included.
        crate::fips::forget_algorithm_tests();
        *lock(&self.error_reason) = Some(reason);
        self.in_error.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn pin_policy(&self) -> PinPolicy {
        PinPolicy {
            max_failures: self.cfg.pin_max_failures,
            iterations: self.cfg.kdf_iterations,
            min_length: self.cfg.pin_min_length(),
            approved: self.cfg.mode == crate::policy::Mode::Approved,
            keep_wrap_usages: self.cfg.legacy_wrapping,
        }
    }

    pub fn new_session_handle(&self) -> CK_SESSION_HANDLE {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// A session by handle, noted in the running call's record (a second lookup in the same call
    /// takes it from there).
    pub fn session(&self, h: CK_SESSION_HANDLE) -> Result<SessionRef> {
        crate::record::session(h, || self.sessions.get(h)).ok_or(err(CKR_SESSION_HANDLE_INVALID))
    }

    /// `C_Finalize`: closes every session and forgets every login.
    pub fn shutdown(&self) {
        let sessions = self.sessions.take(|_| true);
        drop(sessions);
        for t in self.slots.read().unwrap_or_else(|p| p.into_inner()).tokens() {
            t.logout();
        }
        self.kek.clear();
    }
}
