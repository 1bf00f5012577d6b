//! Encryption, decryption, signing and verification (spec §5.10–5.14): the operations the
//! mechanisms provide, in the session's slots, under the two-call output convention. The key
//! checks and the decision are `key_use.rs`'s; cancelling and ending operations `operations.rs`'s.

use super::{deliver, Output};
use crate::error::{err, Result};
use crate::mechanisms::{registry, Mechanism, Param};
use crate::module::{lock, Module, SessionRef};
use crate::object::Object;
use crate::operation::Op;
use crate::policy::KeyInfo;
use crate::record::{self, Decided};
use crate::session::{CipherOp, KeyCache, Ops, Phase, SignOp, VerifyOp};
use cryptoki_sys::*;
use std::sync::Arc;

impl Module {
    /// What every `C_*Init` with a key checks first: the mechanism, the key for this use, and the
    /// policy's decision (which the operation's indicator records).
    #[allow(clippy::too_many_arguments)]
    fn prepare<'a>(
        &self,
        s: &SessionRef,
        keys: &'a mut KeyCache,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
        op: Op,
    ) -> Result<(&'static dyn Mechanism, &'a Arc<Object>, Decided)> {
        let m = registry().get(mech)?;
        let k = self.usable_key_cached(s, keys, key, mech, m, op)?;
        let d = self.decide(op, mech, m, Some(key), &KeyInfo::of(k), param)?;
        Ok((m, k, d))
    }

    /// Runs `f` on the session's operations, under their lock.
    pub(super) fn with_ops<T>(&self, s: &SessionRef, f: impl FnOnce(&mut Ops) -> Result<T>) -> Result<T> {
        f(&mut lock(&s.ops))
    }

    /// What every `C_*Init` with a key does: refuses a second operation of the kind
    /// (`CKR_OPERATION_ACTIVE`), takes the mechanism, key and decision ([`Module::prepare`]), and
    /// puts the operation `make` starts into the session's `slot`.
    #[allow(clippy::too_many_arguments)]
    fn start<S>(
        &self,
        s: &SessionRef,
        slot: fn(&mut Ops) -> &mut Option<S>,
        make: impl FnOnce(&dyn Mechanism, &Arc<Object>, Decided) -> Result<S>,
        op: Op,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.with_ops(s, |ops| {
            if slot(ops).is_some() {
                return Err(err(CKR_OPERATION_ACTIVE));
            }
            let (m, k, decided) = self.prepare(s, &mut ops.keys, mech, param, key, op)?;
            let started = make(m, k, decided)?;
            *slot(ops) = Some(started);
            Ok(())
        })
    }

    /// `C_SignInit`, `C_VerifyInit`, `C_EncryptInit`, `C_DecryptInit`: starts operation `op`.
    pub fn operation_init(
        &self,
        s: &SessionRef,
        op: Op,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let cipher = |encrypt: bool| {
            move |m: &dyn Mechanism, k: &Arc<Object>, decided| {
                let op = if encrypt { m.encrypt(param, k)? } else { m.decrypt(param, k)? };
                let (multipart, reauth) = (op.multipart(), needs_reauth(k));
                Ok(CipherOp { op: Some(op), multipart, phase: Phase::Fresh, pending: None, reauth, decided })
            }
        };
        let sign = |m: &dyn Mechanism, k: &Arc<Object>, decided| {
            let op = m.sign(param, k)?;
            let (multipart, reauth) = (op.multipart(), needs_reauth(k));
            Ok(SignOp { op: Some(op), multipart, phase: Phase::Fresh, pending: None, reauth, decided })
        };
        let verify = |m: &dyn Mechanism, k: &Arc<Object>, decided| {
            let op = m.verify(param, k)?;
            Ok(VerifyOp { multipart: op.multipart(), op, phase: Phase::Fresh, decided, signature: None })
        };
        match op {
            Op::Sign => self.start(s, |o| &mut o.sign, sign, op, mech, param, key),
            Op::Verify => self.start(s, |o| &mut o.verify, verify, op, mech, param, key),
            Op::Encrypt => self.start(s, |o| &mut o.encrypt, cipher(true), op, mech, param, key),
            Op::Decrypt => self.start(s, |o| &mut o.decrypt, cipher(false), op, mech, param, key),
            _ => Err(err(CKR_MECHANISM_INVALID)),
        }
    }

    /// `C_Sign`: single part.
    pub fn sign(&self, s: &SessionRef, data: &[u8], cap: Option<usize>) -> Result<Output> {
        self.with_ops(s, |ops| {
            let st = resume(&mut ops.sign, Phase::Single)?;
            if let Some(mut op) = st.op.take() {
                let r = self.data_decision(&mut st.decided, data);
                match r.and_then(|_| op.update(data)).and_then(|_| op.finish()) {
                    Ok(v) => st.pending = Some(v),
                    Err(e) => {
                        ops.sign = None;
                        return Err(e);
                    }
                }
            }
            finish_output(&mut ops.sign, |s| &mut s.pending, cap)
        })
    }

    /// `C_SignUpdate`.
    pub fn sign_update(&self, s: &SessionRef, data: &[u8]) -> Result<()> {
        self.with_ops(s, |ops| {
            let st = resume(&mut ops.sign, Phase::Multi)?;
            let r = match st.op.as_mut() {
                Some(op) if st.multipart => op.update(data),
                _ => Err(err(CKR_FUNCTION_NOT_SUPPORTED)),
            };
            r.inspect_err(|_| ops.sign = None)
        })
    }

    /// `C_SignFinal`.
    pub fn sign_final(&self, s: &SessionRef, cap: Option<usize>) -> Result<Output> {
        self.with_ops(s, |ops| {
            let st = resume(&mut ops.sign, Phase::Multi)?;
            if let Some(op) = st.op.take() {
                match op.finish() {
                    Ok(v) => st.pending = Some(v),
                    Err(e) => {
                        ops.sign = None;
                        return Err(e);
                    }
                }
            }
            finish_output(&mut ops.sign, |s| &mut s.pending, cap)
        })
    }

    /// `C_VerifySignatureInit` (PKCS #11 3.2): a verification whose signature comes first. It
    /// takes the session's verification slot, as `C_VerifyInit` does.
    pub fn verify_signature_init(
        &self,
        s: &SessionRef,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
        signature: &[u8],
    ) -> Result<()> {
        let signature = crate::error::try_copy(signature)?;
        let make = move |m: &dyn Mechanism, k: &Arc<Object>, decided| {
            let op = m.verify(param, k)?;
            let multipart = op.multipart_with_signature_first();
            Ok(VerifyOp { multipart, op, phase: Phase::Fresh, decided, signature: Some(signature) })
        };
        self.start(s, |o| &mut o.verify, make, Op::Verify, mech, param, key)
    }

    /// `C_VerifySignature`: single part; the operation ends whatever the outcome.
    pub fn verify_signature(&self, s: &SessionRef, data: &[u8]) -> Result<()> {
        self.with_ops(s, |ops| {
            signature_first(ops, true)?;
            let mut st = ops.verify.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.phase == Phase::Multi {
                return Err(err(CKR_OPERATION_ACTIVE));
            }
            self.data_decision(&mut st.decided, data)?;
            st.op.update(data)?;
            st.op.finish(st.signature.as_deref().unwrap_or_default())
        })
    }

    /// `C_VerifySignatureUpdate`.
    pub fn verify_signature_update(&self, s: &SessionRef, data: &[u8]) -> Result<()> {
        self.with_ops(s, |ops| {
            signature_first(ops, true)?;
            let st = Phase::claim(&mut ops.verify, |s| &mut s.phase, Phase::Multi)?;
            record::continued(&st.decided);
            let r = if st.multipart { st.op.update(data) } else { Err(err(CKR_FUNCTION_NOT_SUPPORTED)) };
            r.inspect_err(|_| ops.verify = None)
        })
    }

    /// `C_VerifySignatureFinal`.
    pub fn verify_signature_final(&self, s: &SessionRef) -> Result<()> {
        self.with_ops(s, |ops| {
            signature_first(ops, true)?;
            let st = ops.verify.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            st.op.finish(st.signature.as_deref().unwrap_or_default())
        })
    }

    /// `C_Verify`: single part; the operation ends whatever the outcome.
    pub fn verify(&self, s: &SessionRef, data: &[u8], signature: &[u8]) -> Result<()> {
        self.with_ops(s, |ops| {
            signature_first(ops, false)?;
            let mut st = ops.verify.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.phase == Phase::Multi {
                return Err(err(CKR_OPERATION_ACTIVE));
            }
            self.data_decision(&mut st.decided, data)?;
            st.op.update(data)?;
            st.op.finish(signature)
        })
    }

    /// `C_VerifyUpdate`.
    pub fn verify_update(&self, s: &SessionRef, data: &[u8]) -> Result<()> {
        self.with_ops(s, |ops| {
            signature_first(ops, false)?;
            let st = Phase::claim(&mut ops.verify, |s| &mut s.phase, Phase::Multi)?;
            record::continued(&st.decided);
            let r = if st.multipart { st.op.update(data) } else { Err(err(CKR_FUNCTION_NOT_SUPPORTED)) };
            r.inspect_err(|_| ops.verify = None)
        })
    }

    /// `C_VerifyFinal`.
    pub fn verify_final(&self, s: &SessionRef, signature: &[u8]) -> Result<()> {
        self.with_ops(s, |ops| {
            signature_first(ops, false)?;
            let st = ops.verify.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            st.op.finish(signature)
        })
    }

    /// `C_Encrypt` / `C_Decrypt`: single part, for a caller's buffer of `cap` bytes. The result
    /// is the module's until the call's record is kept (`abi::guard` copies it out).
    pub fn cipher(&self, s: &SessionRef, encrypt: bool, data: &[u8], cap: Option<usize>) -> Result<Output> {
        self.with_ops(s, |ops| {
            let slot = if encrypt { &mut ops.encrypt } else { &mut ops.decrypt };
            let st = resume(slot, Phase::Single)?;
            // A length query (or a short buffer) answered from the mechanism's own arithmetic
            // leaves the input untouched: no work on a large input just to measure it.
            if st.pending.is_none() {
                if let Some((len, exact)) = st.op.as_ref().and_then(|op| op.output_len(data.len())) {
                    match cap {
                        None => return Ok(Output::Length { len, too_small: false }),
                        Some(c) if c < len && exact => return Ok(Output::Length { len, too_small: true }),
                        // The caller's buffer takes the exact result: made in one buffer of
                        // its size, kept by the module until the call's record is kept.
                        Some(c) if c >= len && exact => {
                            if let Some(op) = st.op.take() {
                                let mut out = crate::error::try_zeroed(len)?;
                                let r = op.one_shot_into(data, &mut out);
                                *slot = None;
                                return match r {
                                    Ok(n) => {
                                        out.truncate(n);
                                        Ok(Output::Done(out))
                                    }
                                    Err(e) => {
                                        // What a failed decryption may have left in it.
                                        zeroize::Zeroize::zeroize(&mut out);
                                        Err(e)
                                    }
                                };
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let Some(op) = st.op.take() {
                let r = op.one_shot(data);
                match r {
                    Ok(v) => st.pending = Some(v),
                    Err(e) => {
                        *slot = None;
                        return Err(e);
                    }
                }
            }
            finish_output(slot, |s| &mut s.pending, cap)
        })
    }

    /// `C_EncryptUpdate` / `C_DecryptUpdate`.
    pub fn cipher_update(&self, s: &SessionRef, encrypt: bool, data: &[u8], cap: Option<usize>) -> Result<Output> {
        self.with_ops(s, |ops| {
            let slot = if encrypt { &mut ops.encrypt } else { &mut ops.decrypt };
            let st = resume(slot, Phase::Multi)?;
            if !st.multipart {
                *slot = None;
                return Err(err(CKR_FUNCTION_NOT_SUPPORTED));
            }
            if st.pending.is_none() {
                let op = st.op.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
                match op.update(data) {
                    Ok(v) => st.pending = Some(v),
                    Err(e) => {
                        *slot = None;
                        return Err(e);
                    }
                }
            }
            let st = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            if st.reauth {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
            Ok(deliver(&mut st.pending, cap))
        })
    }

    /// `C_EncryptFinal` / `C_DecryptFinal`.
    pub fn cipher_final(&self, s: &SessionRef, encrypt: bool, cap: Option<usize>) -> Result<Output> {
        self.with_ops(s, |ops| {
            let slot = if encrypt { &mut ops.encrypt } else { &mut ops.decrypt };
            let st = resume(slot, Phase::Multi)?;
            if let Some(op) = st.op.take() {
                match op.finish() {
                    Ok(v) => st.pending = Some(v),
                    Err(e) => {
                        *slot = None;
                        return Err(e);
                    }
                }
            }
            finish_output(slot, |s| &mut s.pending, cap)
        })
    }
}

/// What an operation started with a key carries for the calls that continue it.
trait Started {
    fn decided(&self) -> &Decided;
    /// A context-specific login is still due (`CKA_ALWAYS_AUTHENTICATE`).
    fn reauth(&self) -> bool;
    fn phase(&mut self) -> &mut Phase;
}

/// [`Started`] for the operation types whose fields carry it.
macro_rules! started {
    ($($t:ty),*) => {$(
        impl Started for $t {
            fn decided(&self) -> &Decided {
                &self.decided
            }
            fn reauth(&self) -> bool {
                self.reauth
            }
            fn phase(&mut self) -> &mut Phase {
                &mut self.phase
            }
        }
    )*};
}

started!(SignOp, CipherOp);

/// The operation in `slot`, for a call of kind `want` that continues it: noted in the call's
/// record, refused while a context-specific login is due, and claimed ([`Phase::claim`]).
fn resume<S: Started>(slot: &mut Option<S>, want: Phase) -> Result<&mut S> {
    let st = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
    record::continued(st.decided());
    if st.reauth() {
        return Err(err(CKR_USER_NOT_LOGGED_IN));
    }
    Phase::claim(slot, S::phase, want)
}

/// Whether using this key needs a context-specific login first (spec §4.9 `CKA_ALWAYS_AUTHENTICATE`).
fn needs_reauth(k: &Object) -> bool {
    k.class() == CKO_PRIVATE_KEY && k.flag(CKA_ALWAYS_AUTHENTICATE)
}

/// Delivers the pending result of a finishing call; the operation ends once it is handed out.
fn finish_output<S>(
    slot: &mut Option<S>,
    pending: impl Fn(&mut S) -> &mut Option<Vec<u8>>,
    cap: Option<usize>,
) -> Result<Output> {
    let st = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
    let out = deliver(pending(st), cap);
    if matches!(out, Output::Done(_)) {
        *slot = None;
    }
    Ok(out)
}

/// `CKR_OPERATION_NOT_INITIALIZED` when the session's verification is not of the kind a function
/// continues: `C_VerifySignature*` continue what `C_VerifySignatureInit` started (`first`), the
/// other verification functions what `C_VerifyInit` started. The operation is left as it was.
fn signature_first(ops: &Ops, first: bool) -> Result<()> {
    match &ops.verify {
        Some(v) if v.signature.is_some() != first => Err(err(CKR_OPERATION_NOT_INITIALIZED)),
        _ => Ok(()),
    }
}
