//! Message digesting (spec §5.12).

use crate::error::{err, Result};
use crate::mechanisms::{registry, Param};
use crate::module::{lock, Module, SessionRef};
use crate::operation::Op;
use crate::record;
use crate::session::{DigestOp, Phase};
use cryptoki_sys::*;

pub use super::Output;

impl Module {
    /// `C_DigestInit`.
    pub fn digest_init(&self, s: &SessionRef, mech: CK_MECHANISM_TYPE, param: &Param) -> Result<()> {
        let mut ops = lock(&s.ops);
        if ops.digest.is_some() {
            return Err(err(CKR_OPERATION_ACTIVE));
        }
        let m = registry().get(mech)?;
        let decided = self.decide(Op::Digest, mech, m, None, &Default::default(), param)?;
        let op = m.digest(param)?;
        ops.digest = Some(DigestOp { op, phase: Phase::Fresh, decided });
        Ok(())
    }

    /// `C_Digest`: single part. `cap` is the caller's buffer size, `None` for a NULL buffer.
    pub fn digest(&self, s: &SessionRef, data: &[u8], cap: Option<usize>) -> Result<Output> {
        self.digest_end(s, Phase::Single, data, cap)
    }

    /// `C_DigestUpdate`.
    pub fn digest_update(&self, s: &SessionRef, data: &[u8]) -> Result<()> {
        let mut ops = lock(&s.ops);
        let d = Phase::claim(&mut ops.digest, |d| &mut d.phase, Phase::Multi)?;
        record::continued(&d.decided);
        d.op.update(data);
        Ok(())
    }

    /// `C_DigestKey`: adds a secret key's value to the digest in progress.
    pub fn digest_key(&self, s: &SessionRef, key: CK_OBJECT_HANDLE) -> Result<()> {
        let (target, obj) = self.resolve(s, key).map_err(|_| err(CKR_KEY_HANDLE_INVALID))?;
        let mut ops = lock(&s.ops);
        if ops.digest.is_none() {
            return Err(err(CKR_OPERATION_NOT_INITIALIZED));
        }
        if obj.class() != CKO_SECRET_KEY {
            return Err(err(CKR_KEY_INDIGESTIBLE));
        }
        if let crate::services::objects::Target::Token { token, id, .. } = &target {
            if !token.is_complete(*id) {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
        }
        let value = obj.get(CKA_VALUE).ok_or(err(CKR_KEY_INDIGESTIBLE))?;
        // A digest of a key whose value the caller may not read tests guesses of it: refused in the approved
        // mode, and for keys short enough to guess (under 112 bits) in either mode.
        if !obj.material_readable() && (self.cfg.mode == crate::policy::Mode::Approved || value.len() < 14) {
            return Err(err(CKR_KEY_INDIGESTIBLE));
        }
        let d = Phase::claim(&mut ops.digest, |d| &mut d.phase, Phase::Multi)?;
        record::continued(&d.decided);
        // A digest of an ECDH shared secret is a value computed from Z by no approved KDF (the
        // approved mode refused it above: Z is never readable): not approved.
        if obj.flag(crate::object::attrs::CKA_VENDOR_SHARED_SECRET) && d.decided.verdict.approved() {
            d.decided.verdict = record::Verdict::NonApproved;
            record::decided(d.decided);
        }
        d.op.update(value);
        Ok(())
    }

    /// `C_DigestFinal`.
    pub fn digest_final(&self, s: &SessionRef, cap: Option<usize>) -> Result<Output> {
        self.digest_end(s, Phase::Multi, &[], cap)
    }

    /// The call that ends a digest (`C_Digest` with the whole input, `C_DigestFinal` with none),
    /// unless the caller's buffer cannot take the result yet.
    fn digest_end(&self, s: &SessionRef, phase: Phase, data: &[u8], cap: Option<usize>) -> Result<Output> {
        let mut ops = lock(&s.ops);
        let d = Phase::claim(&mut ops.digest, |d| &mut d.phase, phase)?;
        record::continued(&d.decided);
        if let Some(o) = super::length_only(d.op.output_len(), cap) {
            return Ok(o);
        }
        let mut d = ops.digest.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        d.op.update(data);
        Ok(Output::Done(d.op.finish()))
    }
}
