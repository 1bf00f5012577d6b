//! Encryption, decryption, signing and verification (spec §5.10–5.14): key checks, operation
//! state and the two-call output convention, around the operations the mechanisms provide.

use super::{deliver, Output};
use crate::error::{err, Result};
use crate::mechanisms::{registry, Mechanism, Param};
use crate::module::{lock, Module};
use crate::object::Object;
use crate::operation::Op;
use crate::policy::{policy, Condition, KeyInfo};
use crate::record::{self, Decided, Verdict};
use crate::services::objects::Target;
use crate::session::{CachedKey, CipherOp, KeyCache, Ops, Phase, Session, SignOp, VerifyOp};
use cryptoki_sys::*;
use std::sync::Arc;

/// `CKR_MECHANISM_INVALID` when the mechanism does not offer this use at all.
fn mechanism_does(mech: &dyn Mechanism, op: Op) -> Result<()> {
    if mech.info().flags & op.flag() == 0 {
        return Err(err(CKR_MECHANISM_INVALID));
    }
    Ok(())
}

/// An object handle that does not resolve is, where a key is expected, a key handle that does not.
fn as_key_handle(e: crate::error::Error) -> crate::error::Error {
    match e.rv() {
        CKR_OBJECT_HANDLE_INVALID => err(CKR_KEY_HANDLE_INVALID),
        _ => e,
    }
}

/// The checks on a resolved key for one use: a key at all, of a type the mechanism takes, with
/// the usage attribute set and the mechanism among `CKA_ALLOWED_MECHANISMS`.
fn check_key(obj: &Object, mech_type: CK_MECHANISM_TYPE, mech: &dyn Mechanism, usage: Op) -> Result<()> {
    if !matches!(obj.class(), CKO_SECRET_KEY | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) {
        return Err(err(CKR_KEY_HANDLE_INVALID));
    }
    let kt = obj.ulong(CKA_KEY_TYPE).unwrap_or(CK_UNAVAILABLE_INFORMATION);
    let types = mech.key_types();
    if !types.is_empty() && !types.contains(&kt) {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    if !usage.usage_attribute().is_some_and(|a| obj.flag(a)) {
        return Err(err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    }
    if !obj.allows_mechanism(mech_type) {
        return Err(err(CKR_MECHANISM_INVALID));
    }
    Ok(())
}

/// [`check_key`] on a key just resolved, and for a token object that its material is loaded
/// (`CKR_USER_NOT_LOGGED_IN` while the token is locked).
fn check_resolved(
    target: &Target,
    obj: &Object,
    mech_type: CK_MECHANISM_TYPE,
    mech: &dyn Mechanism,
    usage: Op,
    legacy: bool,
) -> Result<()> {
    check_key(obj, mech_type, mech, usage)?;
    // A guarding key that both wraps and processes data (made by a build before these rules, or
    // under the legacy rules) is used for neither, outside the legacy rules. Checked when the key
    // is resolved: a cached key was resolved after its last change.
    use crate::object::template::{guarding, usages_conflict};
    if !legacy && usages_conflict(obj) && guarding(obj) {
        return Err(err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    }
    if let Target::Token { token, id, .. } = target {
        if !token.is_complete(*id) {
            return Err(err(CKR_USER_NOT_LOGGED_IN));
        }
    }
    Ok(())
}

impl Module {
    /// The policy decision on one use of a mechanism, in the configured mode: refused uses give
    /// the error the approved mode names; allowed ones carry the approved indicator. The one place
    /// an operation's decision is made; noted in the call's record either way.
    pub fn decide(
        &self,
        op: Op,
        mech: CK_MECHANISM_TYPE,
        m: &dyn Mechanism,
        key: Option<CK_OBJECT_HANDLE>,
        info: &KeyInfo,
        param: &Param,
    ) -> Result<Decided> {
        self.decide_with(op, mech, key, info, &|c| m.meets(c, param))
    }

    /// [`Module::decide`] with the policy's named conditions answered by `meets`.
    pub fn decide_with(
        &self,
        op: Op,
        mech: CK_MECHANISM_TYPE,
        key: Option<CK_OBJECT_HANDLE>,
        info: &KeyInfo,
        meets: &dyn Fn(Condition) -> bool,
    ) -> Result<Decided> {
        let d = policy()?.decide(self.cfg.mode, mech, op, info, meets);
        let verdict = match &d {
            Ok(d) if d.approved => Verdict::Approved,
            Ok(_) => Verdict::NonApproved,
            Err(_) => Verdict::Refused,
        };
        let decided = Decided { op, mechanism: mech, key, verdict };
        record::decided(decided);
        d.map(|_| decided)
    }

    /// `C_Login(CKU_CONTEXT_SPECIFIC)`: authorises the pending operations of the session whose key
    /// asks for it.
    pub fn context_login(&self, s: &Session, pin: &[u8]) -> Result<()> {
        let mut ops = lock(&s.ops);
        let sign = ops.sign.as_ref().is_some_and(|o| o.reauth);
        let decrypt = ops.decrypt.as_ref().is_some_and(|o| o.reauth);
        if !sign && !decrypt {
            return Err(err(CKR_OPERATION_NOT_INITIALIZED));
        }
        s.token.verify_pin(crate::store::Role::User, pin)?;
        if let Some(o) = ops.sign.as_mut() {
            o.reauth = false;
        }
        if let Some(o) = ops.decrypt.as_mut() {
            o.reauth = false;
        }
        Ok(())
    }

    /// `C_SessionCancel`: ends the operations named by `flags`.
    pub fn session_cancel(&self, h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
        self.with_ops(h, |_, ops| {
            for op in [Op::Encrypt, Op::Decrypt, Op::Digest, Op::Sign, Op::Verify] {
                if flags & op.flag() != 0 {
                    ops.end(op);
                }
            }
            if flags & CKF_FIND_OBJECTS != 0 {
                ops.find = None;
            }
            if flags & CKF_MESSAGE_ENCRYPT != 0 {
                ops.message_encrypt = None;
            }
            if flags & CKF_MESSAGE_DECRYPT != 0 {
                ops.message_decrypt = None;
            }
            Ok(())
        })
    }

    /// Ends an operation after a failed call: the specification ends an operation on any error
    /// but `CKR_BUFFER_TOO_SMALL` (and errors that never reached the session).
    pub fn end_after_error(&self, h: CK_SESSION_HANDLE, op: Op, rv: CK_RV) {
        if matches!(
            rv,
            CKR_BUFFER_TOO_SMALL
                | CKR_SESSION_HANDLE_INVALID
                | CKR_CRYPTOKI_NOT_INITIALIZED
                | CKR_OPERATION_NOT_INITIALIZED
        ) {
            return;
        }
        if let Ok(s) = self.session(h) {
            lock(&s.ops).end(op);
        }
    }

    /// `C_*Init` with a NULL mechanism (PKCS#11 3.0): cancels the active operation of that kind.
    pub fn cancel_operation(&self, h: CK_SESSION_HANDLE, op: Op) -> Result<()> {
        let s = self.session(h)?;
        if lock(&s.ops).end(op) {
            Ok(())
        } else {
            Err(err(CKR_ARGUMENTS_BAD))
        }
    }

    /// Resolves a key handle for a use with a mechanism and checks everything the specification
    /// attaches to that: the handle (`CKR_KEY_HANDLE_INVALID`), the usage attribute
    /// (`CKR_KEY_FUNCTION_NOT_PERMITTED`), the key type (`CKR_KEY_TYPE_INCONSISTENT`),
    /// `CKA_ALLOWED_MECHANISMS` (`CKR_MECHANISM_INVALID`) and that its material is loaded.
    pub fn usable_key(
        &self,
        s: &Session,
        key: CK_OBJECT_HANDLE,
        mech_type: CK_MECHANISM_TYPE,
        mech: &dyn Mechanism,
        usage: Op,
    ) -> Result<Arc<Object>> {
        mechanism_does(mech, usage)?;
        let (target, obj) = self.resolve(s, key).map_err(as_key_handle)?;
        check_resolved(&target, &obj, mech_type, mech, usage, self.legacy_wrapping())?;
        Ok(obj)
    }

    /// [`Module::usable_key`] through the session's key cache: a key resolved before is taken from
    /// the cache while neither the handle table nor (for a token object) the token's view has
    /// changed since, and the session's own copy is lent, so that no lock or reference count other
    /// sessions use is written. After a change the handle is looked up again; the session's copy
    /// stays if the object is the same one.
    fn usable_key_cached<'a>(
        &self,
        s: &Session,
        cache: &'a mut KeyCache,
        key: CK_OBJECT_HANDLE,
        mech_type: CK_MECHANISM_TYPE,
        mech: &dyn Mechanism,
        usage: Op,
    ) -> Result<&'a Arc<Object>> {
        mechanism_does(mech, usage)?;
        let epoch = self.handles.epoch();
        let found = cache.entries.iter().position(|e| e.handle == key);
        if let Some(i) = found {
            let e = &cache.entries[i];
            let current = e.epoch == epoch
                && match e.token_view {
                    None => true,
                    Some(generation) => {
                        // Another process may have changed the token's objects.
                        s.token.fresh()?;
                        s.token.view_generation() == generation
                    }
                };
            if current {
                // Login state is part of neither: visibility is checked on every use.
                if e.local.is_private() && !s.user() {
                    return Err(err(CKR_KEY_HANDLE_INVALID));
                }
                check_key(&e.local, mech_type, mech, usage)?;
                return Ok(&cache.entries[i].local);
            }
        }
        // The token view generation as of before the lookup: a change after it shows next time.
        s.token.fresh()?;
        let generation = s.token.view_generation();
        let (target, obj) = match self.resolve(s, key).map_err(as_key_handle) {
            Ok(r) => r,
            Err(e) => {
                if let Some(i) = found {
                    cache.entries.remove(i);
                }
                return Err(e);
            }
        };
        check_resolved(&target, &obj, mech_type, mech, usage, self.legacy_wrapping())?;
        let token_view = matches!(target, Target::Token { .. }).then_some(generation);
        if let Some(i) = found {
            if Arc::ptr_eq(&cache.entries[i].shared, &obj) {
                let e = &mut cache.entries[i];
                e.epoch = epoch;
                e.token_view = token_view;
                return Ok(&cache.entries[i].local);
            }
            cache.entries.remove(i);
        }
        if cache.entries.len() >= KeyCache::CAPACITY {
            cache.entries.remove(0);
        }
        let local = Arc::new(obj.session_copy());
        cache.entries.push(CachedKey { handle: key, local, shared: obj, epoch, token_view });
        Ok(&cache.entries[cache.entries.len() - 1].local)
    }

    /// What every `C_*Init` with a key checks first: the mechanism, the key for this use, and the
    /// policy's decision (which the operation's indicator records).
    #[allow(clippy::too_many_arguments)]
    fn prepare<'a>(
        &self,
        s: &Session,
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

    fn with_ops<T>(&self, h: CK_SESSION_HANDLE, f: impl FnOnce(&Session, &mut Ops) -> Result<T>) -> Result<T> {
        let s = self.session(h)?;
        let mut ops = lock(&s.ops);
        f(&s, &mut ops)
    }

    /// `C_SignInit`.
    pub fn sign_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.with_ops(h, |s, ops| {
            if ops.sign.is_some() {
                return Err(err(CKR_OPERATION_ACTIVE));
            }
            let (m, k, decided) = self.prepare(s, &mut ops.keys, mech, param, key, Op::Sign)?;
            let op = m.sign(param, k)?;
            let multipart = op.multipart();
            let reauth = needs_reauth(k);
            ops.sign = Some(SignOp { op: Some(op), multipart, phase: Phase::Fresh, pending: None, reauth, decided });
            Ok(())
        })
    }

    /// `C_Sign`: single part.
    pub fn sign(&self, h: CK_SESSION_HANDLE, data: &[u8], cap: Option<usize>) -> Result<Output> {
        self.with_ops(h, |_, ops| {
            let st = ops.sign.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.reauth {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
            let st = Phase::claim(&mut ops.sign, |s| &mut s.phase, Phase::Single)?;
            if let Some(mut op) = st.op.take() {
                match op.update(data).and_then(|_| op.finish()) {
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
    pub fn sign_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        self.with_ops(h, |_, ops| {
            let st = ops.sign.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.reauth {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
            let st = Phase::claim(&mut ops.sign, |s| &mut s.phase, Phase::Multi)?;
            let r = match st.op.as_mut() {
                Some(op) if st.multipart => op.update(data),
                _ => Err(err(CKR_FUNCTION_NOT_SUPPORTED)),
            };
            r.inspect_err(|_| ops.sign = None)
        })
    }

    /// `C_SignFinal`.
    pub fn sign_final(&self, h: CK_SESSION_HANDLE, cap: Option<usize>) -> Result<Output> {
        self.with_ops(h, |_, ops| {
            let st = ops.sign.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.reauth {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
            let st = Phase::claim(&mut ops.sign, |s| &mut s.phase, Phase::Multi)?;
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

    /// `C_VerifyInit`.
    pub fn verify_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.with_ops(h, |s, ops| {
            if ops.verify.is_some() {
                return Err(err(CKR_OPERATION_ACTIVE));
            }
            let (m, k, decided) = self.prepare(s, &mut ops.keys, mech, param, key, Op::Verify)?;
            let op = m.verify(param, k)?;
            let multipart = op.multipart();
            ops.verify = Some(VerifyOp { op, multipart, phase: Phase::Fresh, decided });
            Ok(())
        })
    }

    /// `C_Verify`: single part; the operation ends whatever the outcome.
    pub fn verify(&self, h: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
        self.with_ops(h, |_, ops| {
            let mut st = ops.verify.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.phase == Phase::Multi {
                return Err(err(CKR_OPERATION_ACTIVE));
            }
            st.op.update(data)?;
            st.op.finish(signature)
        })
    }

    /// `C_VerifyUpdate`.
    pub fn verify_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        self.with_ops(h, |_, ops| {
            let st = Phase::claim(&mut ops.verify, |s| &mut s.phase, Phase::Multi)?;
            record::continued(&st.decided);
            let r = if st.multipart { st.op.update(data) } else { Err(err(CKR_FUNCTION_NOT_SUPPORTED)) };
            r.inspect_err(|_| ops.verify = None)
        })
    }

    /// `C_VerifyFinal`.
    pub fn verify_final(&self, h: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
        self.with_ops(h, |_, ops| {
            let st = ops.verify.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            st.op.finish(signature)
        })
    }

    /// `C_EncryptInit` / `C_DecryptInit`.
    pub fn cipher_init(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.with_ops(h, |s, ops| {
            let slot = if encrypt { &mut ops.encrypt } else { &mut ops.decrypt };
            if slot.is_some() {
                return Err(err(CKR_OPERATION_ACTIVE));
            }
            let kind = if encrypt { Op::Encrypt } else { Op::Decrypt };
            let (m, k, decided) = self.prepare(s, &mut ops.keys, mech, param, key, kind)?;
            let op = if encrypt { m.encrypt(param, k)? } else { m.decrypt(param, k)? };
            let multipart = op.multipart();
            let reauth = needs_reauth(k);
            let slot = if encrypt { &mut ops.encrypt } else { &mut ops.decrypt };
            *slot = Some(CipherOp { op: Some(op), multipart, phase: Phase::Fresh, pending: None, reauth, decided });
            Ok(())
        })
    }

    /// `C_Encrypt` / `C_Decrypt`: single part. `dest` is the caller's buffer (`cap` bytes).
    pub fn cipher(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        data: &[u8],
        cap: Option<usize>,
        dest: Option<&mut [u8]>,
    ) -> Result<Output> {
        self.with_ops(h, |_, ops| {
            let slot = if encrypt { &mut ops.encrypt } else { &mut ops.decrypt };
            let st = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.reauth {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
            let st = Phase::claim(slot, |s| &mut s.phase, Phase::Single)?;
            // A length query (or a short buffer) answered from the mechanism's own arithmetic
            // leaves the input untouched: no work on a large input just to measure it.
            if st.pending.is_none() {
                if let Some((len, exact)) = st.op.as_ref().and_then(|op| op.output_len(data.len())) {
                    match cap {
                        None => return Ok(Output::Length { len, too_small: false }),
                        Some(c) if c < len && exact => return Ok(Output::Length { len, too_small: true }),
                        // The caller's buffer takes the exact result: write it there directly.
                        Some(c) if c >= len && exact => {
                            if let (Some(op), Some(dest)) = (st.op.take(), dest) {
                                let r = op.one_shot_into(data, dest);
                                *slot = None;
                                return r.map(Output::Written);
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
    pub fn cipher_update(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        data: &[u8],
        cap: Option<usize>,
    ) -> Result<Output> {
        self.with_ops(h, |_, ops| {
            let slot = if encrypt { &mut ops.encrypt } else { &mut ops.decrypt };
            let st = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.reauth {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
            let st = Phase::claim(slot, |s| &mut s.phase, Phase::Multi)?;
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
    pub fn cipher_final(&self, h: CK_SESSION_HANDLE, encrypt: bool, cap: Option<usize>) -> Result<Output> {
        self.with_ops(h, |_, ops| {
            let slot = if encrypt { &mut ops.encrypt } else { &mut ops.decrypt };
            let st = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
            record::continued(&st.decided);
            if st.reauth {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
            let st = Phase::claim(slot, |s| &mut s.phase, Phase::Multi)?;
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
