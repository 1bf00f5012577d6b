//! A session: its slot and token, whether it is read-write, and the operations in progress.
//! The session's state (`CKS_*`) follows from the token's login state, shared by all sessions.

use crate::mechanisms::{CipherOperation, DigestOperation, SignOperation, VerifyOperation};
use crate::operation::Op;
use crate::record::Decided;
use crate::token::Token;
use cryptoki_sys::*;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// An active `C_FindObjects` search: handles found at `C_FindObjectsInit`, handed out in order.
pub struct FindOp {
    pub results: Vec<CK_OBJECT_HANDLE>,
    pub pos: usize,
}

/// How an operation is being driven. A single-part call (`C_Encrypt` …) and the multi-part calls
/// (`C_EncryptUpdate`, `C_EncryptFinal` …) exclude each other once one of them has begun: the
/// other kind then ends the operation with `CKR_OPERATION_ACTIVE` (the single-part functions
/// "cannot be used to terminate a multi-part operation").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Fresh,
    Single,
    Multi,
}

impl Phase {
    /// Claims the operation in `slot` for a call of kind `want` (`Single` or `Multi`); the
    /// operation, to go on with.
    pub fn claim<S>(
        slot: &mut Option<S>,
        phase: impl Fn(&mut S) -> &mut Phase,
        want: Phase,
    ) -> crate::error::Result<&mut S> {
        use crate::error::err;
        let now = *phase(slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?);
        if now != Phase::Fresh && now != want {
            *slot = None;
            return Err(err(CKR_OPERATION_ACTIVE));
        }
        let st = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        *phase(st) = want;
        Ok(st)
    }
}

/// An active digest.
pub struct DigestOp {
    pub op: Box<dyn DigestOperation>,
    pub phase: Phase,
    /// The decision that started it, for the records of the calls that continue it.
    pub decided: Decided,
}

/// An active signature (or MAC). `pending` holds a result already computed for a caller whose
/// buffer was missing or too small, handed out on the next call (two-call convention).
pub struct SignOp {
    pub op: Option<Box<dyn SignOperation>>,
    /// The mechanism takes its input in parts.
    pub multipart: bool,
    pub phase: Phase,
    pub pending: Option<Vec<u8>>,
    /// The key is `CKA_ALWAYS_AUTHENTICATE`: a `CKU_CONTEXT_SPECIFIC` login must come first.
    pub reauth: bool,
    /// As for [`DigestOp::decided`].
    pub decided: Decided,
}

/// A result held for the next call may be a plaintext (a decryption whose length was only an
/// upper bound, asked for with a short buffer): it is wiped when the operation ends unclaimed
/// (`C_SessionCancel`, `C_CloseSession`, a new `C_*Init` after an error).
impl Drop for SignOp {
    fn drop(&mut self) {
        if let Some(p) = self.pending.as_mut() {
            zeroize::Zeroize::zeroize(p);
        }
    }
}

/// An active verification.
pub struct VerifyOp {
    pub op: Box<dyn VerifyOperation>,
    pub multipart: bool,
    pub phase: Phase,
    /// As for [`DigestOp::decided`].
    pub decided: Decided,
    /// The signature given to `C_VerifySignatureInit` (PKCS #11 3.2); `None` for an operation
    /// `C_VerifyInit` started. Each kind is continued only by its own functions.
    pub signature: Option<Vec<u8>>,
}

/// An active encryption or decryption; `pending` as for [`SignOp`].
pub struct CipherOp {
    pub op: Option<Box<dyn CipherOperation>>,
    pub multipart: bool,
    pub phase: Phase,
    pub pending: Option<Vec<u8>>,
    /// As for [`SignOp::reauth`].
    pub reauth: bool,
    /// As for [`DigestOp::decided`].
    pub decided: Decided,
}

impl Drop for CipherOp {
    fn drop(&mut self) {
        if let Some(p) = self.pending.as_mut() {
            zeroize::Zeroize::zeroize(p);
        }
    }
}

/// An active message-based encryption or decryption (`C_MessageEncryptInit` …).
pub struct MessageOp {
    pub mechanism: CK_MECHANISM_TYPE,
    pub key: std::sync::Arc<crate::object::Object>,
    /// The key's handle, for the records.
    pub key_handle: CK_OBJECT_HANDLE,
    /// The message being processed in parts (`C_EncryptMessageBegin` … `C_EncryptMessageNext`
    /// with `CKF_END_OF_MESSAGE`), if any.
    pub part: Option<MessagePart>,
    /// The names of the key material's GCM invocation counters (narrow, wide: see
    /// `Token::iv_space`), computed at the first message that needs each and shared by the
    /// operation's detached copies, so that a message costs no HMAC.
    pub iv_spaces: std::sync::Arc<[std::sync::OnceLock<Vec<u8>>; 2]>,
}

/// A message processed in parts: the streaming cipher, and for decryption how much ciphertext it
/// holds back until the tag is checked at the end.
pub struct MessagePart {
    pub op: Box<dyn CipherOperation>,
    pub held: usize,
    /// The decision on the message, for the records of the calls that continue it.
    pub decided: Decided,
}

/// Keys this session used lately, as its own copies (`Object::session_copy`): trusted while the
/// module's handle epoch is the one they were checked in (every change to the handle table moves
/// it on; see `services::objects::HandleTable`) and, for token objects, while the token's view
/// generation is too (checked after the view is brought up to date with other processes'
/// writes). When either moved, the handle is looked up again and the copy kept if the object is
/// still the same. A few entries: an application alternates between a handful of keys at most.
#[derive(Default)]
pub struct KeyCache {
    pub entries: Vec<CachedKey>,
}

/// One key a session resolved.
pub struct CachedKey {
    pub handle: CK_OBJECT_HANDLE,
    /// The session's copy, lent to its operations.
    pub local: Arc<crate::object::Object>,
    /// The object as the handle table (or the token's view) holds it, to tell whether a new
    /// lookup found the same one.
    pub shared: Arc<crate::object::Object>,
    /// The handle epoch it was last checked in.
    pub epoch: u64,
    /// For a token object, the token view generation it was last checked in.
    pub token_view: Option<u64>,
}

impl KeyCache {
    pub const CAPACITY: usize = 4;
}

/// Operations in progress in one session.
#[derive(Default)]
pub struct Ops {
    pub find: Option<FindOp>,
    pub digest: Option<DigestOp>,
    pub sign: Option<SignOp>,
    pub verify: Option<VerifyOp>,
    pub encrypt: Option<CipherOp>,
    pub decrypt: Option<CipherOp>,
    pub message_encrypt: Option<MessageOp>,
    pub message_decrypt: Option<MessageOp>,
    /// Keys this session resolved lately.
    pub keys: KeyCache,
}

impl Ops {
    /// Ends every operation (logout, token removal).
    pub fn clear(&mut self) {
        *self = Ops::default();
    }

    /// Ends the session's operation of kind `op` (those a session runs one of at a time through
    /// `C_*Init`); whether one was active.
    pub fn end(&mut self, op: Op) -> bool {
        match op {
            Op::Encrypt => self.encrypt.take().is_some(),
            Op::Decrypt => self.decrypt.take().is_some(),
            Op::Sign => self.sign.take().is_some(),
            Op::Verify => self.verify.take().is_some(),
            Op::Digest => self.digest.take().is_some(),
            _ => false,
        }
    }
}

pub struct Session {
    pub handle: CK_SESSION_HANDLE,
    pub slot: CK_SLOT_ID,
    pub token: Arc<Token>,
    pub rw: bool,
    pub ops: Mutex<Ops>,
    /// The approved indicator of the last operation started in this session
    /// (`C_GetSessionValidationFlags`): 0 before any, 1 not approved, 2 approved. Written by
    /// `record::finish` alone.
    indicator: AtomicU8,
    /// A session object was ever made in this session (closing one that made none need not
    /// look through the handle table).
    pub made_objects: std::sync::atomic::AtomicBool,
}

impl Session {
    /// A new session, counted on its token until it is dropped.
    pub fn new(handle: CK_SESSION_HANDLE, slot: CK_SLOT_ID, token: Arc<Token>, rw: bool) -> Session {
        use std::sync::atomic::Ordering::AcqRel;
        token.open_sessions.0.fetch_add(1, AcqRel);
        if rw {
            token.open_sessions.1.fetch_add(1, AcqRel);
        }
        Session {
            handle,
            slot,
            token,
            rw,
            ops: Mutex::new(Ops::default()),
            indicator: AtomicU8::new(0),
            made_objects: Default::default(),
        }
    }

    /// `CKS_*` for `C_GetSessionInfo`.
    pub fn state(&self) -> CK_STATE {
        match (self.token.logged_in(), self.rw) {
            (Some(CKU_SO), _) => CKS_RW_SO_FUNCTIONS,
            (Some(_), true) => CKS_RW_USER_FUNCTIONS,
            (Some(_), false) => CKS_RO_USER_FUNCTIONS,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (None, false) => CKS_RO_PUBLIC_SESSION,
        }
    }

    /// Whether the normal user is logged in (private objects visible, keys usable).
    pub fn user(&self) -> bool {
        self.token.logged_in() == Some(CKU_USER)
    }

    /// The approved indicator of the last operation started in this session; `None` before any.
    pub fn last_approved(&self) -> Option<bool> {
        match self.indicator.load(Ordering::Relaxed) {
            0 => None,
            i => Some(i == 2),
        }
    }

    /// Sets the indicator (`record::finish`, when an operation started).
    pub fn set_last_approved(&self, approved: bool) {
        self.indicator.store(1 + approved as u8, Ordering::Relaxed);
    }

    /// Whether the Security Officer is logged in.
    pub fn so(&self) -> bool {
        self.token.logged_in() == Some(CKU_SO)
    }
}

impl Drop for Session {
    /// A session stops counting when the last reference to it goes (after `C_CloseSession`, any
    /// call still running in it finishes first).
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::AcqRel;
        self.token.open_sessions.0.fetch_sub(1, AcqRel);
        if self.rw {
            self.token.open_sessions.1.fetch_sub(1, AcqRel);
        }
    }
}
