//! The decision record: the one path every call's outcome takes.
//!
//! While a call runs, the core notes in the calling thread's record what it found and decided:
//! the session ([`session`], through which `Module::session` looks it up), and for a
//! cryptographic operation its mechanism, key and the policy's decision ([`decided`], from
//! `Module::decide` when an operation starts; [`continued`], from the operation's state when a
//! later call continues it). When the entry point returns, `abi::guard` hands the record with the
//! call's `CK_RV` to [`finish`]: it logs the cause of a failure below the PKCS #11 level
//! (`Error::because`), sets the session's approved indicator (`C_GetSessionValidationFlags`) from
//! a decision the call made and that succeeded, and passes the [`Event`] to `audit_hook`, which
//! may refuse it (the call then fails). The indicator and every record take `fips_approved` from
//! the same decision.
//!
//! A thread-local record rather than a value passed through every function: a call runs on one
//! thread from its entry point to its return, and the record is taken (and so emptied) at the
//! end of each call, so nothing of one call reaches the next.

use crate::module::SessionRef;
use crate::object::Object;
use crate::operation::Op;
use cryptoki_sys::*;
use std::cell::Cell;
use std::mem::ManuallyDrop;

/// What the policy made of one use of a mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed and approved.
    Approved,
    /// Allowed in the non-approved mode, not approved.
    NonApproved,
    /// Refused: not allowed in the configured mode.
    Refused,
}

impl Verdict {
    /// The approved indicator of an allowed use.
    pub fn approved(self) -> bool {
        self == Verdict::Approved
    }
}

/// A decision on one operation: what it is, with which mechanism and key, and the verdict. Plain
/// data, noted at no cost on every call: the key's identity is found from its handle only when a
/// record asks for it ([`Event::key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decided {
    pub op: Op,
    pub mechanism: CK_MECHANISM_TYPE,
    /// The handle of the key the operation uses, if any.
    pub key: Option<CK_OBJECT_HANDLE>,
    pub verdict: Verdict,
    /// Conditions on the data the operation is still to be given; its verdict is settled when
    /// the data comes (`Module::data_decision`).
    pub on_data: crate::policy::DataConditions,
}

/// The identity of a key in a record: its `CKA_UNIQUE_ID`, and a SHA-256 over its `CKA_ID` and
/// `CKA_LABEL` (which an application chose, so the record does not carry them as they are), both
/// in hex as the record carries them. An object keeps its own ([`Object::identity`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIdentity {
    pub unique_id: String,
    pub id_label_sha256: String,
}

impl KeyIdentity {
    pub fn of(obj: &Object) -> KeyIdentity {
        let mut h = crate::crypto::digest::Context::new(&crate::crypto::digest::SHA256);
        for ty in [CKA_ID, CKA_LABEL] {
            let v = obj.get(ty).unwrap_or(&[]);
            h.update(&(v.len() as u64).to_be_bytes());
            h.update(v);
        }
        let hex = tessera_audit::format::hex;
        KeyIdentity { unique_id: hex(obj.get(CKA_UNIQUE_ID).unwrap_or(&[])), id_label_sha256: hex(h.finish().as_ref()) }
    }
}

/// What one call did, as the audit hook receives it.
pub struct Event {
    /// The entry point (`C_Sign` …).
    pub function: &'static str,
    /// The session the call ran in, if it named one that exists.
    pub session: Option<SessionRef>,
    /// The operation's decision, if the call started or continued one.
    pub decided: Option<Decided>,
    /// Whether the decision was made in this call (an operation started) rather than carried
    /// from an earlier call of the same operation.
    pub fresh: bool,
    /// The call answered a length query only (a NULL output buffer): it completed nothing.
    pub length_only: bool,
    /// What caused the call's failure, when it came from below the PKCS #11 level (the token
    /// store, the file system); for a call that succeeded, what the audit log should say it did
    /// ([`note`]).
    pub cause: Option<String>,
    /// What the call returns.
    pub rv: CK_RV,
}

impl Event {
    pub fn session_handle(&self) -> Option<CK_SESSION_HANDLE> {
        self.session.as_ref().map(|s| s.handle)
    }

    pub fn slot(&self) -> Option<CK_SLOT_ID> {
        self.session.as_ref().map(|s| s.slot)
    }

    pub fn token_serial(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.token.serial.as_str())
    }

    /// Who is logged in to the session's token (`CKU_USER`, `CKU_SO`), as the call ends.
    pub fn user(&self) -> Option<CK_USER_TYPE> {
        self.session.as_ref().and_then(|s| s.token.logged_in())
    }

    pub fn op(&self) -> Option<Op> {
        self.decided.as_ref().map(|d| d.op)
    }

    pub fn mechanism(&self) -> Option<CK_MECHANISM_TYPE> {
        self.decided.as_ref().map(|d| d.mechanism)
    }

    pub fn verdict(&self) -> Option<Verdict> {
        self.decided.as_ref().map(|d| d.verdict)
    }

    /// The identity of the operation's key, looked up in the call's session (`None` when the
    /// operation has no key, or the key is gone).
    pub fn key(&self) -> Option<std::sync::Arc<KeyIdentity>> {
        let h = self.decided?.key?;
        let m = crate::state::get().ok()?;
        let (_, obj) = m.resolve(self.session.as_ref()?, h).ok()?;
        Some(obj.identity())
    }

    /// The call succeeded and what it did was approved: the value of the record's
    /// `fips_approved` and of the session's indicator.
    pub fn fips_approved(&self) -> bool {
        self.rv == CKR_OK && self.verdict() == Some(Verdict::Approved)
    }
}

/// The running call's record. Plain cells, and no drop glue (the values that own memory are in
/// `ManuallyDrop`, and `finish` takes them out at the end of every call), so that each access
/// is a bare thread-local read: in a library loaded with `dlopen` each access is a call into the
/// dynamic linker already, and the record is touched a few times in every call.
struct Call {
    session: Cell<ManuallyDrop<Option<SessionRef>>>,
    decided: Cell<Option<Decided>>,
    fresh: Cell<bool>,
    /// What caused a failure below the PKCS #11 level, with the `CK_RV` it became.
    cause: Cell<ManuallyDrop<Option<(CK_RV, String)>>>,
    /// The call hands the cause to its caller itself (a report: [`reported`]).
    reported: Cell<bool>,
    /// The objects the call made (at most two: a key pair), withdrawn when its record cannot be
    /// kept.
    created: Cell<Created>,
    /// The call answered a length query only.
    length_only: Cell<bool>,
}

/// The handles of the objects one call made.
#[derive(Clone, Copy, Default)]
struct Created {
    n: u8,
    handles: [CK_OBJECT_HANDLE; 2],
}

thread_local! {
    static CALL: Call = const {
        Call {
            session: Cell::new(ManuallyDrop::new(None)),
            decided: Cell::new(None),
            fresh: Cell::new(false),
            cause: Cell::new(ManuallyDrop::new(None)),
            reported: Cell::new(false),
            created: Cell::new(Created { n: 0, handles: [0; 2] }),
            length_only: Cell::new(false),
        }
    };
}

/// Takes a value out of its cell (leaving `None`, which needs no drop).
fn take<T>(c: &Cell<ManuallyDrop<Option<T>>>) -> Option<T> {
    ManuallyDrop::into_inner(c.replace(ManuallyDrop::new(None)))
}

/// Notes what caused an error of the running call (`Error::because`).
pub fn cause(rv: CK_RV, text: String) {
    CALL.with(|c| {
        drop(take(&c.cause));
        c.cause.set(ManuallyDrop::new(Some((rv, text))));
    });
}

/// The running call gives its caller the cause of its failure itself (`T_RestoreToken`'s report,
/// which `tessera-util` prints): the diagnostic log then has it at INFO, not as an error printed
/// a second time. The audit record keeps it.
pub fn reported() {
    CALL.with(|c| c.reported.set(true));
}

/// Notes what the running call did, for the audit record of its success (a restore that reset
/// a token's rollback counter).
pub fn note(text: String) {
    cause(CKR_OK, text);
}

/// The cause noted for the running call's error `rv`, left in place (for a report that shows it
/// to the caller as well as to the log).
pub fn cause_text(rv: CK_RV) -> Option<String> {
    CALL.with(|c| {
        let cause = take(&c.cause);
        let text = cause.as_ref().filter(|(r, _)| *r == rv).map(|(_, t)| t.clone());
        c.cause.set(ManuallyDrop::new(cause));
        text
    })
}

/// An error the core handles itself (it logs it and goes on), described with its cause, which
/// then is no longer the call's.
pub fn described(e: crate::error::Error) -> String {
    let cause = CALL.with(|c| {
        let cause = take(&c.cause);
        match cause {
            Some((rv, text)) if rv == e.rv() => Some(text),
            other => {
                c.cause.set(ManuallyDrop::new(other));
                None
            }
        }
    });
    match cause {
        Some(text) => format!("{e}: {text}"),
        None => e.to_string(),
    }
}

/// The session with handle `h` for the running call, noted in its record: the one it looked up
/// already (a call that names its session looks it up in the ABI layer and again in the core,
/// and the second time needs no lock), or what `lookup` finds.
pub fn session(h: CK_SESSION_HANDLE, lookup: impl FnOnce() -> Option<SessionRef>) -> Option<SessionRef> {
    CALL.with(|c| {
        let noted = take(&c.session);
        let found = match noted.as_ref().filter(|s| s.handle == h) {
            Some(s) => Some(s.clone()),
            None => lookup(),
        };
        // The session the call works in now (an earlier one, if this one is not found).
        let keep = match &found {
            Some(s) if !noted.as_ref().is_some_and(|n| std::sync::Arc::ptr_eq(n, s)) => Some(s.clone()),
            _ => noted,
        };
        c.session.set(ManuallyDrop::new(keep));
        found
    })
}

/// Lets go of session `h` if the running call noted it: the session is being closed, and it
/// counts as open (for the logout that follows the last close) while a reference to it lives.
/// Through the ABI a close looks up no session; a program that drives the core directly
/// (`tessera-util`) ends no call, so its record would otherwise keep the session.
pub fn closing(h: CK_SESSION_HANDLE) {
    CALL.with(|c| {
        let noted = take(&c.session);
        c.session.set(ManuallyDrop::new(noted.filter(|s| s.handle != h)));
    });
}

/// Notes a decision the running call made (an operation starts, or a use is refused).
pub fn decided(d: Decided) {
    CALL.with(|c| {
        c.decided.set(Some(d));
        c.fresh.set(true);
    });
}

/// Notes an object the running call made and hands to the application: if the call's record
/// cannot be kept, the object is withdrawn ([`finish`]) and its handle never reaches the caller.
pub fn created(h: CK_OBJECT_HANDLE) {
    CALL.with(|c| {
        let mut k = c.created.get();
        if let Some(slot) = k.handles.get_mut(k.n as usize) {
            *slot = h;
            k.n += 1;
        } else {
            // No call makes more than two objects; one that did would have the rest withdrawn by
            // no one, so this is a defect, made loud.
            tracing::error!("a call made more objects than its record can follow");
        }
        c.created.set(k);
    });
}

/// Notes that the running call answers a length query only (a NULL output buffer under the
/// two-call convention): it completed no operation, and its record is not one of a completed
/// operation.
pub fn length_only() {
    CALL.with(|c| c.length_only.set(true));
}

/// Notes the decision of an operation that an earlier call started and this one continues.
pub fn continued(d: &Decided) {
    CALL.with(|c| {
        c.decided.set(Some(*d));
        c.fresh.set(false);
    });
}

/// Ends a call: the indicator, then the audit hook. The `CK_RV` the application receives: the
/// call's own, or the hook's refusal (`CKR_DEVICE_ERROR`: the audit log could not be written)
/// when it could not record a call that succeeded.
///
/// A call whose record cannot be kept leaves nothing behind: the output it computed is handed
/// out only when this returns `CKR_OK` (`abi::guard`), the objects it made are withdrawn, and
/// the operation it finished or continued ends.
pub fn finish(function: &'static str, rv: CK_RV) -> CK_RV {
    let (session, decided, fresh, cause, created) =
        CALL.with(|c| (take(&c.session), c.decided.take(), c.fresh.replace(false), take(&c.cause), c.created.take()));
    let (length_only, reported) = CALL.with(|c| (c.length_only.replace(false), c.reported.replace(false)));
    // An error noted with its cause and then handled inside the call is not this call's failure.
    let cause = cause.filter(|(r, _)| *r == rv).map(|(_, text)| text);
    if let Some(text) = cause.as_ref().filter(|_| rv != CKR_OK) {
        if reported {
            tracing::info!(call = function, rv = format_args!("0x{rv:08x}"), "{text}");
        } else {
            tracing::error!(call = function, rv = format_args!("0x{rv:08x}"), "{text}");
        }
    }
    let event = Event { function, session, decided, fresh, length_only, cause, rv };
    if event.fresh && rv == CKR_OK {
        if let (Some(s), Some(d)) = (&event.session, &event.decided) {
            if d.verdict != Verdict::Refused {
                s.set_last_approved(d.verdict.approved());
            }
        }
    }
    match crate::audit_hook::record(&event) {
        Ok(()) => rv,
        Err(e) if rv == CKR_OK => {
            tracing::error!(call = function, "the call's record could not be kept: {e}");
            undo(&event, created);
            e.rv()
        }
        Err(_) => rv,
    }
}

/// A call that succeeded but whose record could not be kept: the objects it made are withdrawn
/// and a multi-part operation it continued ends (a single-part or final call ended its own). Its
/// output is never handed out (`abi::guard` drops it, wiped).
fn undo(e: &Event, created: Created) {
    let Some(s) = &e.session else { return };
    if created.n > 0 {
        match crate::state::get() {
            Ok(m) => {
                for &h in &created.handles[..created.n as usize] {
                    if let Err(err) = m.withdraw(s, h) {
                        tracing::error!(
                            call = e.function,
                            object = h,
                            "an unrecorded object could not be withdrawn: {err}"
                        );
                    }
                }
            }
            Err(_) => tracing::error!(call = e.function, "the module is gone: unrecorded objects not withdrawn"),
        }
    }
    // A call that continues a multi-part operation (`C_*Update`, `C_DigestKey`) ends it: its
    // output was withheld, so the stream is broken. A single-part or final call has already
    // ended its own operation; ending "the" operation again would end one another thread has
    // started since on the same session. Message-based calls each encrypt or decrypt one whole
    // message: the operation (a key and a mechanism for many messages) stays, as after any
    // failed message.
    let continues = e.function.ends_with("Update") || e.function == "C_DigestKey";
    if let (Some(op), true, false) = (e.op(), continues, e.function.contains("Message")) {
        crate::module::lock(&s.ops).end(op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_hook::tests::SEEN;

    fn decision(verdict: Verdict) -> Decided {
        Decided { op: Op::Sign, mechanism: CKM_SHA256_RSA_PKCS, key: None, verdict, on_data: Default::default() }
    }

    #[test]
    fn each_call_hands_the_hook_its_own_decision_once() {
        SEEN.with(|v| v.borrow_mut().clear());
        decided(decision(Verdict::Approved));
        assert_eq!(finish("C_SignInit", CKR_OK), CKR_OK);
        // The next call noted nothing: it carries no decision of the one before.
        assert_eq!(finish("C_GetInfo", CKR_OK), CKR_OK);
        continued(&decision(Verdict::NonApproved));
        assert_eq!(finish("C_Sign", CKR_BUFFER_TOO_SMALL), CKR_BUFFER_TOO_SMALL);
        decided(decision(Verdict::Refused));
        assert_eq!(finish("C_SignInit", CKR_MECHANISM_INVALID), CKR_MECHANISM_INVALID);
        let seen = SEEN.with(|v| v.borrow().clone());
        let sign = (Some(Op::Sign), Some(CKM_SHA256_RSA_PKCS));
        assert_eq!(
            seen,
            vec![
                ("C_SignInit", sign.0, sign.1, Some(Verdict::Approved), true, CKR_OK),
                ("C_GetInfo", None, None, None, false, CKR_OK),
                ("C_Sign", sign.0, sign.1, Some(Verdict::NonApproved), false, CKR_BUFFER_TOO_SMALL),
                ("C_SignInit", sign.0, sign.1, Some(Verdict::Refused), true, CKR_MECHANISM_INVALID),
            ]
        );
    }

    #[test]
    fn a_call_whose_record_cannot_be_kept_fails() {
        crate::audit_hook::tests::REFUSE.set(true);
        decided(decision(Verdict::Approved));
        let ok = finish("C_SignInit", CKR_OK);
        let failed = finish("C_Sign", CKR_KEY_HANDLE_INVALID);
        crate::audit_hook::tests::REFUSE.set(false);
        assert_eq!(ok, CKR_DEVICE_ERROR, "the hook's refusal");
        assert_eq!(failed, CKR_KEY_HANDLE_INVALID, "a failure stays the failure it was");
        assert_eq!(finish("C_SignInit", CKR_OK), CKR_OK);
    }

    #[test]
    fn fips_approved_needs_success_and_an_approved_decision() {
        let e = |verdict, rv| Event {
            function: "C_Sign",
            session: None,
            decided: Some(decision(verdict)),
            fresh: false,
            length_only: false,
            cause: None,
            rv,
        };
        assert!(e(Verdict::Approved, CKR_OK).fips_approved());
        assert!(!e(Verdict::Approved, CKR_DEVICE_ERROR).fips_approved());
        assert!(!e(Verdict::NonApproved, CKR_OK).fips_approved());
    }
}
