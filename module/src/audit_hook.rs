//! The audit hook: every entry point's [`Event`] arrives here once, after the call ran (through
//! `record::finish`, called by `abi::guard`). It feeds the diagnostic log, and appends the
//! security-relevant events to the audit log (the `tessera-audit` crate: one JSON line per
//! record in a forward-secure keyed chain). The hook may refuse an event (it could not keep it):
//! a call that had succeeded then fails with the `CK_RV` the refusal carries, so nothing the
//! module did goes unrecorded.
//!
//! Where the log is (README "Audit log"): `audit.dir`, or `audit` beside the token directory.
//! The log is opened when `C_Initialize` succeeds, for that initialisation (a fork child that
//! initialises opens its own). A directory without a chain (`tessera-audit init` makes one) is
//! no log when `audit.dir` is unset: the module records nothing, as a module without the audit
//! log did. When `audit.dir` is set, or a chain exists, the log must work: a chain that cannot be
//! opened fails `C_Initialize` (`CKR_FUNCTION_FAILED`, the module left uninitialised), and a
//! record that cannot be written fails its call (`CKR_DEVICE_ERROR`; `CKR_FUNCTION_FAILED` for
//! `C_Finalize`, whose list of return values has no device error). `audit.on_failure =
//! continue` lets the call go on unrecorded instead, in the non-approved mode only. The reason
//! always goes to the diagnostic log.

use crate::config::AuditEvents;
use crate::error::{err, Result};
use crate::record::{Event, Verdict};
use arc_swap::ArcSwapOption;
use cryptoki_sys::*;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use tessera_audit::format::hex;
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
}

static LOG: ArcSwapOption<Log> = ArcSwapOption::const_empty();

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
        "C_InitToken" | "C_InitPIN" | "C_SetPIN" => ("token", AuditEvents::TOKEN, Synced),
        "C_Login" | "C_LoginUser" | "C_Logout" => ("auth", AuditEvents::AUTH, Synced),
        "C_CreateObject" | "C_CopyObject" | "C_DestroyObject" | "C_SetAttributeValue" => {
            ("object", AuditEvents::OBJECT, Synced)
        }
        "C_GenerateKey" | "C_GenerateKeyPair" | "C_DeriveKey" | "C_WrapKey" | "C_UnwrapKey" | "C_EncapsulateKey"
        | "C_DecapsulateKey" => ("key", AuditEvents::KEY, Synced),
        "C_Sign" | "C_SignFinal" | "C_Verify" | "C_VerifyFinal" | "C_Encrypt" | "C_EncryptFinal" | "C_Decrypt"
        | "C_DecryptFinal" | "C_Digest" | "C_DigestFinal" | "C_EncryptMessage" | "C_DecryptMessage"
        | "C_EncryptMessageNext" | "C_DecryptMessageNext" | "C_MessageEncryptFinal" | "C_MessageDecryptFinal"
            // A short buffer leaves the operation going: it completes in a later call.
            if e.rv != CKR_BUFFER_TOO_SMALL =>
        {
            ("crypto", AuditEvents::CRYPTO, Written)
        }
        "C_SignInit" | "C_SignUpdate" | "C_VerifyInit" | "C_VerifyUpdate" | "C_EncryptInit" | "C_EncryptUpdate"
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
        Some(Mutex::new(Writer::open(&dir).map_err(|e| format!("audit log: {e}"))?))
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
    })
}

/// The log's refusal of a call: its `CK_RV` (one the function may return).
fn refusal(function: &str) -> crate::error::Error {
    match function {
        "C_Initialize" | "C_Finalize" => err(CKR_FUNCTION_FAILED),
        _ => err(CKR_DEVICE_ERROR),
    }
}

/// A single-part or final call that returned `CKR_OK` with its operation still active: the
/// application asked for the output's length (a NULL buffer), the operation completes later.
fn length_query(e: &Event) -> bool {
    if e.rv != CKR_OK {
        return false;
    }
    let Some(s) = &e.session else { return false };
    let ops = crate::module::lock(&s.ops);
    match e.function {
        "C_Sign" | "C_SignFinal" => ops.sign.is_some(),
        "C_Encrypt" | "C_EncryptFinal" => ops.encrypt.is_some(),
        "C_Decrypt" | "C_DecryptFinal" => ops.decrypt.is_some(),
        "C_Digest" | "C_DigestFinal" => ops.digest.is_some(),
        _ => false,
    }
}

fn audit(e: &Event) -> Result<()> {
    let Some((category, bit, durability)) = category(e) else { return Ok(()) };
    if bit == AuditEvents::CRYPTO && length_query(e) {
        return Ok(());
    }
    let generation = crate::state::generation();
    if e.function == "C_Initialize" && e.rv == CKR_OK {
        let opened = crate::state::get().map_err(|_| refusal(e.function)).and_then(|m| {
            open(&m).or_else(|reason| {
                tracing::error!("{reason}");
                eprintln!("tessera: {reason}");
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
        if let Some(old) = LOG.swap(Some(Arc::new(opened))) {
            if old.generation != generation {
                // A fork child: the parent's log is the parent's (its lock may be held).
                std::mem::forget(old);
            }
        }
    }
    let log = LOG.load();
    let Some(log) = log.as_ref().filter(|l| l.generation == generation) else { return Ok(()) };
    let finalized = e.function == "C_Finalize" && e.rv == CKR_OK;
    let result = match &log.writer {
        Some(w) if log.events.has(bit) => write(e, log, w, category, durability),
        _ => Ok(()),
    };
    if finalized {
        LOG.store(None);
    }
    let result = result.or_else(|reason| {
        tracing::error!(call = e.function, "the audit record could not be written: {reason}");
        if log.unrecorded_ok {
            Ok(())
        } else {
            Err(refusal(e.function))
        }
    });
    if result.is_err() && e.function == "C_Initialize" {
        // Not even the initialisation could be recorded: the module does not run.
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
    })
}

fn write(
    e: &Event,
    log: &Log,
    w: &Mutex<Writer>,
    category: &'static str,
    durability: Durability,
) -> std::result::Result<(), String> {
    let time_us =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    let key = e.key();
    let mechanism = e.mechanism();
    let detail = match e.function {
        "C_Initialize" => crate::state::get().ok().map(|m| Cow::Owned(self_tests(&m.post))),
        _ => e.cause.as_deref().map(|c| Cow::Borrowed(c.get(..200).unwrap_or(c))),
    };
    let mut rec = Record {
        time_us,
        pid: std::process::id(),
        uid: nix::unistd::getuid().as_raw(),
        function: Cow::Borrowed(e.function),
        category: Cow::Borrowed(category),
        slot: e.slot(),
        token: e.token_serial().map(Cow::Borrowed),
        session: e.session_handle(),
        user: e.user().and_then(user_name).map(Cow::Borrowed),
        mechanism: mechanism.and_then(mechanism_name).map(Cow::Borrowed),
        mechanism_id: mechanism,
        key_unique_id: key.as_ref().map(|k| Cow::Owned(hex(&k.unique_id))),
        key_id_label_sha256: key.as_ref().map(|k| Cow::Owned(hex(&k.id_label_sha256))),
        op: e.op().map(|o| Cow::Borrowed(o.name())),
        verdict: e.verdict().map(|v| {
            Cow::Borrowed(match v {
                Verdict::Approved => "approved",
                Verdict::NonApproved => "non-approved",
                Verdict::Refused => "refused",
            })
        }),
        rv: Cow::Borrowed(rv_name(e.rv).unwrap_or("CKR_UNKNOWN")),
        rv_id: e.rv,
        fips_approved: e.fips_approved(),
        mode: Cow::Borrowed(log.mode),
        detail,
        ..Default::default()
    };
    let sync = log.sync_always || durability == Durability::Synced;
    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
    w.append(&mut rec, sync).map(|_| ()).map_err(|e| e.to_string())
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
