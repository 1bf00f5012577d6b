//! The audit hook: every entry point's [`Event`] arrives here once, after the call ran (through
//! `record::finish`, called by `abi::guard`). It feeds the diagnostic log, and appends the
//! security-relevant events to the audit log (the `tessera-audit` crate: one JSON line per
//! record in a forward-secure keyed chain). The hook may refuse an event (it could not keep it):
//! a call that had succeeded then fails with the `CK_RV` the refusal carries, so nothing the
//! module did goes unrecorded.
//!
//! Where the log is (docs/audit.md): `audit.dir`, or `audit` beside the token directory.
//! The log is opened when `C_Initialize` succeeds, for that initialisation (a fork child that
//! initialises opens its own). A directory without a chain (`tessera-audit init` makes one) is
//! no log when `audit.dir` is unset: the module records nothing, as a module without the audit
//! log did. When `audit.dir` is set, or a chain exists, the log must work: a chain that cannot be
//! opened fails `C_Initialize` (`CKR_FUNCTION_FAILED`, the module left uninitialised), and a
//! record that cannot be written fails its call (`CKR_DEVICE_ERROR`; `CKR_FUNCTION_FAILED` for
//! `C_Finalize`, whose list of return values has no device error). `audit.on_failure =
//! continue` lets the call go on unrecorded instead, in the non-approved mode only. While the
//! log's file system has no room for the writer's reserve, no operation starts: a successful
//! `C_*Init` is turned into `CKR_DEVICE_ERROR` and its operation ended before any data reaches
//! it, so nothing is signed, encrypted or digested unrecorded. The reason always goes to the
//! diagnostic log.

use crate::config::AuditEvents;
use crate::error::{err, Result};
use crate::record::{Event, Verdict};
use arc_swap::ArcSwapOption;
use cryptoki_sys::*;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use tessera_audit::names::{rv_name, user_name};
use tessera_audit::{Record, Writer};

/// The audit log of this process's initialised module.
struct Log {
    /// The fork generation it was opened in (see `state`).
    generation: u64,
    /// `None`: no chain, nothing is recorded.
    writer: Option<Mutex<Writer>>,
    events: AuditEvents,
    sync_always: bool,
    /// A record that cannot be written lets its call go on (`audit.on_failure = continue`, in
    /// the non-approved mode).
    unrecorded_ok: bool,
    mode: &'static str,
    /// The log's directory (a fork child opens it again to record the fork).
    dir: std::path::PathBuf,
    /// The module was in the error state at the last event seen.
    in_error: std::sync::atomic::AtomicBool,
    /// The log was opened in a child process of the one that opened the log before.
    forked_from: Option<u32>,
    /// The log's file system has no room for its reserve (`tessera_audit::writer::RESERVE`):
    /// no operation starts until it has.
    halted: std::sync::atomic::AtomicBool,
    /// This process's id: a log belongs to one fork generation, and a fork child opens its own
    /// (read once rather than with a system call per record).
    pid: u32,
}

static LOG: ArcSwapOption<Log> = ArcSwapOption::const_empty();

/// Whether [`LOG`] holds a log that writes: without one (no chain, the usual case) every call
/// costs this one load, not a load of `LOG` and the look-up of its category.
static ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn set_active(on: bool) {
    ACTIVE.store(on, std::sync::atomic::Ordering::Release);
}

/// Receives one call's event.
pub fn record(e: &Event) -> Result<()> {
    #[cfg(test)]
    {
        tests::SEEN.with(|v| v.borrow_mut().push((e.function, e.op(), e.mechanism(), e.verdict(), e.fresh, e.rv)));
        if tests::REFUSE.get() {
            return Err(crate::error::err(CKR_DEVICE_ERROR));
        }
    }
    diagnostic(e);
    audit(e)
}

fn diagnostic(e: &Event) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let mechanism = e.mechanism().and_then(mechanism_name);
    let op = e.op().map(|o| o.name());
    let approved = e.fips_approved();
    if e.rv == CKR_OK {
        tracing::debug!(call = e.function, session = e.session_handle(), op, mechanism, approved, "ok");
    } else {
        tracing::debug!(
            call = e.function,
            session = e.session_handle(),
            op,
            mechanism,
            rv = format_args!("0x{:08x}", e.rv),
            "failed"
        );
    }
}

fn mechanism_name(m: CK_MECHANISM_TYPE) -> Option<&'static str> {
    crate::mechanisms::names::MECHANISMS.iter().find(|(_, v)| *v == m).map(|(n, _)| *n)
}

/// What a record costs to keep: whether it must reach the disk before the call returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    Synced,
    Written,
}

/// The event's category and durability, if it is one the log records: the security-relevant
/// calls (module, token, authentication, object and key lifecycle), every completed or failed
/// cryptographic operation (a call that starts or continues one only when it fails), and
/// every policy refusal.
fn category(e: &Event) -> Option<(&'static str, u8, Durability)> {
    use Durability::*;
    let (name, bit, durability) = match e.function {
        "C_Initialize" | "C_Finalize" | "T_SelfTest" | "T_DeleteToken" => ("module", AuditEvents::MODULE, Synced),
        "C_InitToken" | "C_InitPIN" | "C_SetPIN" | "T_BackupToken" | "T_RestoreToken" => ("token", AuditEvents::TOKEN, Synced),
        "C_Login" | "C_LoginUser" | "C_Logout" => ("auth", AuditEvents::AUTH, Synced),
        "C_CreateObject" | "C_CopyObject" | "C_DestroyObject" | "C_SetAttributeValue" => {
            ("object", AuditEvents::OBJECT, Synced)
        }
        "C_GenerateKey" | "C_GenerateKeyPair" | "C_DeriveKey" | "C_WrapKey" | "C_UnwrapKey" | "C_EncapsulateKey"
        | "C_DecapsulateKey" => ("key", AuditEvents::KEY, Synced),
        "C_Sign" | "C_SignFinal" | "C_Verify" | "C_VerifyFinal" | "C_VerifySignature" | "C_VerifySignatureFinal" | "C_Encrypt" | "C_EncryptFinal" | "C_Decrypt"
        | "C_DecryptFinal" | "C_Digest" | "C_DigestFinal" | "C_EncryptMessage" | "C_DecryptMessage"
        | "C_EncryptMessageNext" | "C_DecryptMessageNext" | "C_MessageEncryptFinal" | "C_MessageDecryptFinal"
        // Parts of a multi-part encryption or decryption hand out output as they go: each is a
        // record (an operation abandoned before its final call leaves no gap).
        | "C_EncryptUpdate" | "C_DecryptUpdate"
            // A short buffer leaves the operation going: it completes in a later call.
            if e.rv != CKR_BUFFER_TOO_SMALL =>
        {
            ("crypto", AuditEvents::CRYPTO, Written)
        }
        "C_SignInit" | "C_SignUpdate" | "C_VerifyInit" | "C_VerifyUpdate" | "C_VerifySignatureInit"
        | "C_VerifySignatureUpdate" | "C_EncryptInit" | "C_EncryptUpdate"
        | "C_DecryptInit" | "C_DecryptUpdate" | "C_DigestInit" | "C_DigestUpdate" | "C_DigestKey"
        | "C_MessageEncryptInit" | "C_MessageDecryptInit" | "C_EncryptMessageBegin" | "C_DecryptMessageBegin"
            if e.rv != CKR_OK && e.rv != CKR_BUFFER_TOO_SMALL =>
        {
            ("crypto", AuditEvents::CRYPTO, Written)
        }
        _ if e.verdict() == Some(Verdict::Refused) => ("refusal", AuditEvents::REFUSAL, Written),
        _ => return None,
    };
    Some((name, bit, durability))
}

/// Opens the log of the module just initialised. `Err`: the reason the log cannot be kept.
fn open(m: &crate::module::Module) -> std::result::Result<Log, String> {
    let a = &m.cfg.audit;
    let dir = a.dir_for(&m.cfg.tokendir);
    let approved = m.cfg.mode == crate::policy::Mode::Approved;
    let writer = if a.dir.is_none() && !tessera_audit::writer::has_chain(&dir) {
        None
    } else if a.dir.is_none() && !tessera_audit::writer::owned_by_this_user(&dir) {
        // A chain beside the token directory that another user made (the directory above the
        // store may be one others can write to): not this module's log, and not a reason to
        // refuse to start.
        tracing::warn!("{}: an audit chain of another user; not used (set audit.dir to use a log)", dir.display());
        None
    } else {
        let mut w = Writer::open(&dir).map_err(|e| format!("audit log: {e}"))?;
        w.set_checkpoint_every(a.checkpoint_every);
        w.set_rotate_bytes(a.rotate_bytes);
        w.set_keep_files(a.keep_files);
        w.set_checkpoint_interval(
            (a.checkpoint_seconds > 0).then(|| std::time::Duration::from_secs(a.checkpoint_seconds)),
        );
        w.set_checkpoint_sink(a.checkpoint_sink.clone());
        Some(Mutex::new(w))
    };
    if a.on_failure_continue && approved {
        tracing::warn!("audit.on_failure = continue has no effect in the approved mode");
    }
    Ok(Log {
        generation: crate::state::generation(),
        writer,
        events: a.events,
        sync_always: a.sync_always,
        unrecorded_ok: a.on_failure_continue && !approved,
        mode: m.cfg.mode.name(),
        dir,
        in_error: std::sync::atomic::AtomicBool::new(m.in_error()),
        forked_from: None,
        halted: Default::default(),
        pid: std::process::id(),
    })
}

/// The log's refusal of a call: its `CK_RV` (one the function may return).
fn refusal(function: &str) -> crate::error::Error {
    match function {
        "C_Initialize" | "C_Finalize" => err(CKR_FUNCTION_FAILED),
        _ => err(CKR_DEVICE_ERROR),
    }
}

/// A call that returned `CKR_OK` to a length query (a NULL buffer): a single-part or final call
/// whose operation is still active, to complete later, or a `C_WrapKey` or `C_EncapsulateKey`
/// that handed out a length and made nothing. (A length query of the message API is recorded.)
///
/// Decided by what the call itself noted (`record::length_only`, set where a length alone is
/// handed out), never by the session's operation slot afterwards: another thread may have
/// started a new operation in that slot since, and a call that handed out a signature would
/// then pass for a length query and go unrecorded.
fn length_query(e: &Event) -> bool {
    e.rv == CKR_OK
        && e.length_only
        && matches!(
            e.function,
            "C_WrapKey"
                | "C_EncapsulateKey"
                | "C_Sign"
                | "C_SignFinal"
                | "C_Encrypt"
                | "C_EncryptFinal"
                | "C_Decrypt"
                | "C_DecryptFinal"
                | "C_Digest"
                | "C_DigestFinal"
        )
}

fn audit(e: &Event) -> Result<()> {
    if e.function == "C_Initialize" && e.rv == CKR_OK {
        return initialized(e, crate::state::generation());
    }
    if !ACTIVE.load(std::sync::atomic::Ordering::Acquire) {
        return Ok(());
    }
    let generation = crate::state::generation();
    let log = LOG.load();
    let Some(log) = log.as_ref() else { return Ok(()) };
    if log.generation != generation {
        fork_detected(e, log, generation);
        return Ok(());
    }
    if e.rv == CKR_OK
        && !log.unrecorded_ok
        && log.halted.load(std::sync::atomic::Ordering::Acquire)
        && STARTS.contains(&e.function)
    {
        if let Some(refused) = refuse_start(e, log) {
            return refused;
        }
    }
    let entered = error_state_entered(log);
    let Some((category, bit, durability)) = category(e) else {
        return match entered {
            Some(reason) => keep(e, log, write(e, log, "module", Durability::Synced, Some(reason), None)),
            None => Ok(()),
        };
    };
    if (bit == AuditEvents::CRYPTO || bit == AuditEvents::KEY) && length_query(e) && entered.is_none() {
        return Ok(());
    }
    let result = match entered {
        Some(reason) => write(e, log, "module", Durability::Synced, Some(reason), None),
        None => Ok(()),
    };
    let result = result.and_then(|()| match log.events.has(bit) {
        true => write(e, log, category, durability, None, None),
        false => Ok(()),
    });
    if e.function == "C_Finalize" && e.rv == CKR_OK {
        if result.is_ok() {
            final_checkpoint(log);
        }
        set_active(false);
        LOG.store(None);
    }
    keep(e, log, result)
}

/// The call's outcome once its records were (or were not) written.
fn keep(e: &Event, log: &Log, written: std::result::Result<(), String>) -> Result<()> {
    written.or_else(|reason| {
        tracing::error!(call = e.function, "the audit record could not be written: {reason}");
        if log.unrecorded_ok {
            Ok(())
        } else {
            Err(refusal(e.function))
        }
    })
}

/// The module entered the error state since the last event (a conditional self-test failed in
/// this call or a concurrent one): the reason, once.
fn error_state_entered(log: &Log) -> Option<String> {
    use std::sync::atomic::Ordering;
    log.writer.as_ref()?;
    if !log.events.has(AuditEvents::MODULE) {
        return None;
    }
    let m = crate::state::get().ok()?;
    if !m.in_error() || log.in_error.swap(true, Ordering::AcqRel) {
        return None;
    }
    Some(format!("error state entered: {}", m.error_reason().unwrap_or_default()))
}

/// A fork child calls the library its parent initialised: one record, from a log the child
/// opens itself (the parent's descriptors share the parent's lock), then nothing until the
/// child initialises the library.
fn fork_detected(e: &Event, parent: &Arc<Log>, generation: u64) {
    if parent.writer.is_none() || !parent.events.has(AuditEvents::MODULE) {
        return;
    }
    let quiet = Log {
        generation,
        writer: None,
        events: AuditEvents(0),
        sync_always: false,
        unrecorded_ok: true,
        mode: parent.mode,
        dir: parent.dir.clone(),
        in_error: Default::default(),
        forked_from: Some(nix::unistd::getppid().as_raw() as u32),
        halted: Default::default(),
        pid: std::process::id(),
    };
    // One thread of the child records it; the parent's log is left as it is (never dropped).
    let prev = LOG.compare_and_swap(parent, Some(Arc::new(quiet)));
    if !prev.as_ref().is_some_and(|p| Arc::ptr_eq(p, parent)) {
        return;
    }
    // Nothing more is recorded in this child until it initialises the library itself.
    set_active(false);
    std::mem::forget(Arc::clone(parent));
    let detail = format!(
        "fork detected: this process (parent {}) calls a library its parent initialised; it must call C_Initialize",
        nix::unistd::getppid()
    );
    let written = Writer::open(&parent.dir).map_err(|e| e.to_string()).and_then(|w| {
        let log = Log { writer: Some(Mutex::new(w)), ..clone_settings(parent, generation) };
        write(e, &log, "module", Durability::Synced, Some(detail), None)
    });
    if let Err(reason) = written {
        tracing::error!(call = e.function, "the fork's audit record could not be written: {reason}");
    }
}

fn clone_settings(l: &Log, generation: u64) -> Log {
    Log {
        generation,
        writer: None,
        events: l.events,
        sync_always: l.sync_always,
        unrecorded_ok: l.unrecorded_ok,
        mode: l.mode,
        dir: l.dir.clone(),
        in_error: Default::default(),
        forked_from: None,
        halted: Default::default(),
        pid: std::process::id(),
    }
}

/// `C_Initialize` succeeded: the log is opened and the initialisation recorded, or the module
/// does not run.
fn initialized(e: &Event, generation: u64) -> Result<()> {
    let opened = crate::state::get().map_err(|_| refusal(e.function)).and_then(|m| {
        open(&m).or_else(|reason| {
            crate::log::critical(&reason);
            if m.cfg.audit.on_failure_continue && m.cfg.mode != crate::policy::Mode::Approved {
                tracing::warn!("audit.on_failure = continue: the module runs without an audit log");
                open_nothing(&m)
            } else {
                Err(refusal(e.function))
            }
        })
    });
    let opened = match opened {
        Ok(l) => l,
        Err(refused) => {
            // The module does not run without the log it was configured to keep.
            let _ = crate::state::finalize();
            return Err(refused);
        }
    };
    let mut opened = opened;
    let before = LOG.load_full();
    if let Some(old) = &before {
        if old.generation != generation && old.writer.is_some() {
            opened.forked_from = Some(nix::unistd::getppid().as_raw() as u32);
        } else if old.generation == generation {
            // The child's first call recorded the fork and left a log that records nothing.
            opened.forked_from = old.forked_from;
        }
    }
    let log = Arc::new(opened);
    set_active(log.writer.is_some());
    if let Some(old) = LOG.swap(Some(log.clone())) {
        if old.generation != generation {
            // A fork child: the parent's log is the parent's (its lock may be held).
            std::mem::forget(old);
        }
    }
    // `before` is one more reference to the parent's log (forgotten above, so never dropped).
    drop(before);
    let result = match &log.writer {
        Some(_) if log.events.has(AuditEvents::MODULE) => write(e, &log, "module", Durability::Synced, None, None),
        _ => Ok(()),
    };
    let result = keep(e, &log, result);
    if result.is_err() {
        // Not even the initialisation could be recorded: the module does not run.
        set_active(false);
        LOG.store(None);
        let _ = crate::state::finalize();
    }
    result
}

/// A log that records nothing (`audit.on_failure = continue` after the chain could not be opened).
fn open_nothing(m: &crate::module::Module) -> Result<Log> {
    Ok(Log {
        generation: crate::state::generation(),
        writer: None,
        events: AuditEvents(0),
        sync_always: false,
        unrecorded_ok: true,
        mode: m.cfg.mode.name(),
        dir: Default::default(),
        in_error: Default::default(),
        forked_from: None,
        halted: Default::default(),
        pid: std::process::id(),
    })
}

/// Writes the record of `e` (`detail` replacing its own, `rv` the `CK_RV` the call returns if
/// the log changes it).
fn write(
    e: &Event,
    log: &Log,
    category: &'static str,
    durability: Durability,
    detail: Option<String>,
    rv: Option<CK_RV>,
) -> std::result::Result<(), String> {
    let Some(w) = &log.writer else { return Ok(()) };
    let rv = rv.unwrap_or(e.rv);
    let time_us = tessera_audit::format::now_us();
    let key = e.key();
    let mechanism = e.mechanism();
    let detail = match (detail, e.function) {
        (Some(d), _) => Some(Cow::Owned(d)),
        (None, "C_Initialize") => crate::state::get().ok().map(|m| {
            let mut d = self_tests(&m.post);
            if let Some(parent) = log.forked_from {
                d.push_str(&format!("; in a child of process {parent} (fork)"));
            }
            Cow::Owned(d)
        }),
        (None, "T_SelfTest") => crate::state::get()
            .ok()
            .and_then(|m| {
                crate::module::lock(&m.on_demand).as_ref().map(|(r, runs)| format!("run {runs}: {}", self_tests(r)))
            })
            .map(Cow::Owned),
        (None, _) => e.cause.as_deref().map(|c| Cow::Borrowed(c.get(..200).unwrap_or(c))),
    };
    let mut rec = Record {
        time_us,
        pid: log.pid,
        uid: nix::unistd::getuid().as_raw(),
        function: Cow::Borrowed(e.function),
        category: Cow::Borrowed(category),
        slot: e.slot(),
        token: e.token_serial().map(Cow::Borrowed),
        session: e.session_handle(),
        user: e.user().and_then(user_name).map(Cow::Borrowed),
        mechanism: mechanism.and_then(mechanism_name).map(Cow::Borrowed),
        mechanism_id: mechanism,
        key_unique_id: key.as_ref().map(|k| Cow::Borrowed(k.unique_id.as_str())),
        key_id_label_sha256: key.as_ref().map(|k| Cow::Borrowed(k.id_label_sha256.as_str())),
        op: e.op().map(|o| Cow::Borrowed(o.name())),
        verdict: e.verdict().map(|v| {
            Cow::Borrowed(match v {
                Verdict::Approved => "approved",
                Verdict::NonApproved => "non-approved",
                Verdict::Refused => "refused",
            })
        }),
        rv: Cow::Borrowed(rv_name(rv).unwrap_or("CKR_UNKNOWN")),
        rv_id: rv,
        fips_approved: e.fips_approved() && rv == CKR_OK,
        mode: Cow::Borrowed(log.mode),
        detail,
        ..Default::default()
    };
    let sync = log.sync_always || durability == Durability::Synced;
    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
    let r = w.append(&mut rec, sync).map(|_| ()).map_err(|e| e.to_string());
    log.halted.store(r.is_err() || w.low_space(), std::sync::atomic::Ordering::Release);
    r
}

/// `C_Finalize` seals the log: a signed checkpoint over every record so far (when the chain has
/// signing keys). The finalisation is recorded already; a checkpoint that cannot be written
/// fails nothing (the next one covers these records) and goes to the diagnostic log.
fn final_checkpoint(log: &Log) {
    let Some(w) = &log.writer else { return };
    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
    if !w.signs_checkpoints() {
        return;
    }
    let like = Record::now(Cow::Borrowed(log.mode));
    if let Err(e) = w.checkpoint(&like) {
        tracing::error!("the audit log's checkpoint at C_Finalize could not be written: {e}");
    }
}

/// The calls that start an operation, whose data a later call processes.
const STARTS: [&str; 7] = [
    "C_SignInit",
    "C_VerifyInit",
    "C_EncryptInit",
    "C_DecryptInit",
    "C_DigestInit",
    "C_MessageEncryptInit",
    "C_MessageDecryptInit",
];

/// While the log's file system is full, an operation that `e` started is refused and ended
/// before any data reaches it (its refusal recorded in the reserve while it lasts): `None` when
/// the file system has room again.
fn refuse_start(e: &Event, log: &Log) -> Option<Result<()>> {
    let w = log.writer.as_ref()?;
    let short = w.lock().unwrap_or_else(|p| p.into_inner()).check_space();
    log.halted.store(short, std::sync::atomic::Ordering::Release);
    if !short {
        return None;
    }
    let reason = "refused: the audit log's file system is full; no operation starts until it has room";
    tracing::error!(call = e.function, "{reason}");
    if let Some(s) = &e.session {
        let mut ops = crate::module::lock(&s.ops);
        match e.function {
            "C_SignInit" => ops.sign = None,
            "C_VerifyInit" => ops.verify = None,
            "C_EncryptInit" => ops.encrypt = None,
            "C_DecryptInit" => ops.decrypt = None,
            "C_DigestInit" => ops.digest = None,
            "C_MessageEncryptInit" => ops.message_encrypt = None,
            "C_MessageDecryptInit" => ops.message_decrypt = None,
            _ => {}
        }
    }
    let _ = write(e, log, "crypto", Durability::Written, Some(reason.into()), Some(CKR_DEVICE_ERROR));
    Some(Err(err(CKR_DEVICE_ERROR)))
}

/// The power-on self-tests' outcome, for `C_Initialize`'s record.
fn self_tests(post: &crate::fips::PostReport) -> String {
    let passed = post.results.iter().filter(|(_, ok)| *ok).count();
    let outcome = match &post.failure {
        None => format!("self-tests passed ({passed} of {})", post.results.len()),
        Some(f) => format!("self-tests failed: {f}"),
    };
    let integrity = match &post.integrity {
        crate::fips::integrity::Status::Verified => "verified",
        crate::fips::integrity::Status::Unsealed => "unsealed",
        crate::fips::integrity::Status::Mismatch => "mismatch",
        crate::fips::integrity::Status::Unreadable(_) => "unreadable",
        crate::fips::integrity::Status::NotApplicable => "not applicable",
    };
    match &post.integrity_value {
        Some(v) => format!("{outcome}; integrity {integrity} {v}"),
        None => format!("{outcome}; integrity {integrity}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::operation::Op;
    use crate::record::Verdict;
    use cryptoki_sys::*;
    use std::cell::RefCell;

    type Seen = (&'static str, Option<Op>, Option<CK_MECHANISM_TYPE>, Option<Verdict>, bool, CK_RV);

    thread_local! {
        /// What the hook received on this thread (unit tests only).
        pub(crate) static SEEN: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
        /// Makes the hook refuse every event (unit tests only).
        pub(crate) static REFUSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
}
