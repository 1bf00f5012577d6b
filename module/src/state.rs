//! Whether the module is initialised in this process, and the one `Module` when it is.
//!
//! A `fork()` child inherits the parent's memory but must not use the parent's sessions, logins or
//! database connections: a `pthread_atfork` child handler (installed by the ABI layer) moves the
//! fork generation on, and a module initialised in an earlier generation answers
//! `CKR_CRYPTOKI_NOT_INITIALIZED` until the child calls `C_Initialize` itself. The
//! parent's state is then left untouched (leaked, never dropped) in the child, because dropping it
//! would close SQLite connections that belong to the parent.

use crate::error::{err, Result};
use crate::module::Module;
use arc_swap::ArcSwapOption;
use cryptoki_sys::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static MODULE: ArcSwapOption<Module> = ArcSwapOption::const_empty();
static INIT: Mutex<()> = Mutex::new(());
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Called in the child right after `fork()` (async-signal-safe: one atomic add).
pub fn forked() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The current fork generation of this process.
pub fn generation() -> u64 {
    FORK_GENERATION.load(Ordering::SeqCst)
}

/// A borrowed reference to the initialised module. It takes no reference count (arc-swap's
/// guard), so calls on many threads do not all write to one shared counter.
pub struct ModuleRef(arc_swap::Guard<Option<Arc<Module>>>);

impl std::ops::Deref for ModuleRef {
    type Target = Module;
    fn deref(&self) -> &Module {
        // `get` hands out a ModuleRef only when the module is present.
        self.0.as_deref().expect("checked in get")
    }
}

/// The initialised module of this process (one atomic load and a comparison).
pub fn get() -> Result<ModuleRef> {
    let g = MODULE.load();
    match g.as_deref() {
        Some(m) if m.generation == generation() => Ok(ModuleRef(g)),
        _ => Err(err(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

/// `C_Initialize`; `module_file` is the installed library, for the integrity test.
pub fn initialize(module_file: Option<&crate::fips::integrity::Library>) -> Result<()> {
    let _g = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(old) = MODULE.load_full() {
        if old.generation == generation() {
            return Err(err(CKR_CRYPTOKI_ALREADY_INITIALIZED));
        }
        // A fork child: forget the parent's module without running its destructors.
        std::mem::forget(MODULE.swap(None));
        std::mem::forget(old);
    }
    let m = Module::new(module_file)?;
    MODULE.store(Some(Arc::new(m)));
    Ok(())
}

/// `C_Finalize`.
pub fn finalize() -> Result<()> {
    let _g = INIT.lock().unwrap_or_else(|p| p.into_inner());
    let m = MODULE.load_full().filter(|m| m.generation == generation()).ok_or(err(CKR_CRYPTOKI_NOT_INITIALIZED))?;
    MODULE.store(None);
    m.shutdown();
    Ok(())
}
