//! Message-based encryption (spec §5.11, PKCS#11 3.0): AES-GCM with per-message parameters,
//! where the token can generate the IV (`CKG_GENERATE_COUNTER`, `CKG_GENERATE_RANDOM`).
//!
//! A counter IV is the caller's fixed field (`ulIvFixedBits`) followed by the token's invocation
//! field: a counter in its last 8 bytes (or all of it, when it is shorter), and above a 64-bit
//! counter random bytes chosen when the process first used the key. The counter belongs to the
//! key material, not to one key object: token and session keys with the same value — a key and
//! its copies, unwrapped or imported twins — draw from one counter (one for 64-bit counters, one
//! for shorter ones) kept in the token's store,
//! reserved in blocks written to disk before use, and kept ahead of a restored older database
//! (see `Token::next_iv_counter` and `Db::reserve_iv_block`). So a counter IV never repeats for a
//! key value on one token, across sessions, processes, restarts and crashes. A message goes in one call
//! (`C_EncryptMessage`) or in parts (`C_EncryptMessageBegin`, then `C_EncryptMessageNext` until
//! the part flagged `CKF_END_OF_MESSAGE`, which gives the tag).

use super::Output;
use crate::error::{err, Result};
use crate::mechanisms::param::GcmParams;
use crate::mechanisms::{registry, Param};
use crate::module::{lock, Module};
use crate::operation::Op;
use crate::policy::{Condition, KeyInfo};
use crate::record::{self, Decided};
use crate::session::{MessageOp, MessagePart, Session};
use cryptoki_sys::*;

/// `CK_GCM_MESSAGE_PARAMS` without its pointers: the IV buffer's contents and length, how the IV
/// is made, and the tag length.
#[derive(Clone, Debug)]
pub struct GcmMessage {
    pub iv: Vec<u8>,
    pub iv_fixed_bits: CK_ULONG,
    pub generator: CK_GENERATOR_FUNCTION,
    pub tag_bits: CK_ULONG,
}

/// What an encrypted message gives back beside its ciphertext: the IV used (to be written back
/// into the caller's IV buffer) and the tag.
pub struct Sealed {
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
}

const IV_BYTES: usize = 12;

impl MessageOp {
    /// The operation's key and mechanism, to work with outside the session lock.
    fn detached(&self) -> MessageOp {
        MessageOp {
            mechanism: self.mechanism,
            key: self.key.clone(),
            key_handle: self.key_handle,
            part: None,
            iv_spaces: self.iv_spaces.clone(),
        }
    }
}

/// The session's active message-based operation of this direction, detached, for a call that
/// starts a message: none is `CKR_OPERATION_NOT_INITIALIZED`, a message still in parts
/// `CKR_OPERATION_ACTIVE`.
fn for_new_message(s: &Session, encrypt: bool) -> Result<MessageOp> {
    let ops = lock(&s.ops);
    let op = if encrypt { &ops.message_encrypt } else { &ops.message_decrypt };
    let op = op.as_ref().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
    if op.part.is_some() {
        return Err(err(CKR_OPERATION_ACTIVE));
    }
    Ok(op.detached())
}

impl Module {
    /// `C_MessageEncryptInit` / `C_MessageDecryptInit`.
    pub fn message_init(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let s = self.session(h)?;
        // `slots.mechanisms` may have withheld it (the other calls that take a mechanism are
        // checked in the ABI layer's `mechanism()`).
        if !self.cfg.mechanisms.allows(mech) {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        let mut ops = lock(&s.ops);
        let slot = if encrypt { &ops.message_encrypt } else { &ops.message_decrypt };
        if slot.is_some() {
            return Err(err(CKR_OPERATION_ACTIVE));
        }
        if mech != CKM_AES_GCM {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let m = registry().get(mech)?;
        let k = self.usable_key(&s, key, mech, m, if encrypt { Op::Encrypt } else { Op::Decrypt })?;
        let op = MessageOp { mechanism: mech, key: k, key_handle: key, part: None, iv_spaces: Default::default() };
        if encrypt {
            ops.message_encrypt = Some(op);
        } else {
            ops.message_decrypt = Some(op);
        }
        Ok(())
    }

    /// Whether a message-based operation is active (checked before its parameters are read).
    pub fn message_active(&self, h: CK_SESSION_HANDLE, encrypt: bool) -> Result<()> {
        let s = self.session(h)?;
        let ops = lock(&s.ops);
        let active = if encrypt { ops.message_encrypt.is_some() } else { ops.message_decrypt.is_some() };
        if active {
            Ok(())
        } else {
            Err(err(CKR_OPERATION_NOT_INITIALIZED))
        }
    }

    /// `C_MessageEncryptFinal` / `C_MessageDecryptFinal`.
    pub fn message_final(&self, h: CK_SESSION_HANDLE, encrypt: bool) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = lock(&s.ops);
        let slot = if encrypt { &mut ops.message_encrypt } else { &mut ops.message_decrypt };
        slot.take().map(|_| ()).ok_or(err(CKR_OPERATION_NOT_INITIALIZED))
    }

    /// Makes the IV of one message as the parameters ask.
    fn message_iv(&self, s: &Session, op: &MessageOp, p: &GcmMessage) -> Result<Vec<u8>> {
        if p.generator == CKG_NO_GENERATE {
            return Ok(p.iv.clone());
        }
        let fixed_bits = p.iv_fixed_bits as usize;
        if p.iv.len() != IV_BYTES || !fixed_bits.is_multiple_of(8) || fixed_bits > 64 {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let fixed = fixed_bits / 8;
        let mut iv = p.iv.clone();
        match p.generator {
            CKG_GENERATE_COUNTER => {
                let value = op.key.get(CKA_VALUE).ok_or(err(CKR_KEY_HANDLE_INVALID))?;
                let room = IV_BYTES - fixed;
                // A 64-bit counter and a shorter one are kept apart (see
                // `Token::next_iv_counter`).
                let wide = room >= 8;
                let kid = op.iv_spaces[wide as usize].get_or_init(|| s.token.iv_space(value, wide));
                let (counter, high) = s.token.next_iv_counter(kid, wide)?;
                if room < 8 && counter >> (room * 8) != 0 {
                    tracing::error!("the IV counter of a GCM key is exhausted");
                    return Err(err(CKR_FUNCTION_FAILED));
                }
                let bytes = counter.to_be_bytes();
                let take = room.min(8);
                iv[IV_BYTES - take..].copy_from_slice(&bytes[8 - take..]);
                iv[fixed..IV_BYTES - take].copy_from_slice(&high[..room - take]);
            }
            // CKG_GENERATE leaves the method to the token: random, as for CKG_GENERATE_RANDOM.
            CKG_GENERATE | CKG_GENERATE_RANDOM => {
                let r = crate::store::seal::random_bytes(IV_BYTES - fixed)?;
                iv[fixed..].copy_from_slice(&r);
            }
            _ => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
        }
        Ok(iv)
    }

    /// The decision on one message (approved only with an IV the token generated).
    fn message_decision(&self, op: &MessageOp, kind: Op, generated: bool) -> Result<Decided> {
        let meets = |c: Condition| c == Condition::TokenGeneratedIv && generated;
        self.decide_with(kind, op.mechanism, Some(op.key_handle), &KeyInfo::of(&op.key), &meets)
    }

    /// `C_EncryptMessage`. `cap` is the caller's ciphertext buffer (`None` for NULL). With the
    /// ciphertext come the IV used (to be written back into the caller's IV buffer) and the tag.
    pub fn encrypt_message(
        &self,
        h: CK_SESSION_HANDLE,
        p: &GcmMessage,
        aad: &[u8],
        plain: &[u8],
        cap: Option<usize>,
    ) -> Result<(Output, Option<Sealed>)> {
        let s = self.session(h)?;
        let op = for_new_message(&s, true)?;
        if let Some(o) = super::length_only(plain.len(), cap) {
            return Ok((o, None));
        }
        self.message_decision(&op, Op::Encrypt, p.generator != CKG_NO_GENERATE)?;
        let iv = self.message_iv(&s, &op, p)?;
        let param = Param::Gcm(GcmParams { iv, aad: crate::error::try_copy(aad)?, tag_bits: p.tag_bits });
        let m = registry().get(op.mechanism)?;
        let mut c = m.encrypt(&param, &op.key)?;
        let mut out = c.update(plain)?;
        out.extend(c.finish()?);
        let tag = out.split_off(plain.len());
        let Param::Gcm(GcmParams { iv, .. }) = param else { return Err(err(CKR_GENERAL_ERROR)) };
        Ok((Output::Done(out), Some(Sealed { iv, tag })))
    }

    /// `C_DecryptMessage`: `tag` is what the caller's tag buffer holds.
    pub fn decrypt_message(
        &self,
        h: CK_SESSION_HANDLE,
        p: &GcmMessage,
        tag: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        cap: Option<usize>,
    ) -> Result<Output> {
        let s = self.session(h)?;
        let op = for_new_message(&s, false)?;
        if let Some(o) = super::length_only(ciphertext.len(), cap) {
            return Ok(o);
        }
        self.message_decision(&op, Op::Decrypt, false)?;
        let param = Param::Gcm(GcmParams { iv: p.iv.clone(), aad: crate::error::try_copy(aad)?, tag_bits: p.tag_bits });
        let m = registry().get(op.mechanism)?;
        let mut d = m.decrypt(&param, &op.key)?;
        let mut out = d.update(ciphertext)?;
        out.extend(d.update(tag)?);
        out.extend(d.finish()?);
        Ok(Output::Done(out))
    }

    /// `C_EncryptMessageBegin` / `C_DecryptMessageBegin`: starts a message processed in parts;
    /// gives the IV used (generated by the token when the parameters ask, for encryption).
    pub fn message_begin(&self, h: CK_SESSION_HANDLE, encrypt: bool, p: &GcmMessage, aad: &[u8]) -> Result<Vec<u8>> {
        let s = self.session(h)?;
        let op = for_new_message(&s, encrypt)?;
        let generated = encrypt && p.generator != CKG_NO_GENERATE;
        let decided = self.message_decision(&op, if encrypt { Op::Encrypt } else { Op::Decrypt }, generated)?;
        let iv = if encrypt { self.message_iv(&s, &op, p)? } else { p.iv.clone() };
        let param = Param::Gcm(GcmParams { iv, aad: crate::error::try_copy(aad)?, tag_bits: p.tag_bits });
        let m = registry().get(op.mechanism)?;
        let cipher = if encrypt { m.encrypt(&param, &op.key)? } else { m.decrypt(&param, &op.key)? };
        let Param::Gcm(GcmParams { iv, .. }) = param else { return Err(err(CKR_GENERAL_ERROR)) };
        let mut ops = lock(&s.ops);
        let slot = if encrypt { &mut ops.message_encrypt } else { &mut ops.message_decrypt };
        let active = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        if active.part.is_some() {
            return Err(err(CKR_OPERATION_ACTIVE));
        }
        active.part = Some(MessagePart { op: cipher, held: 0, decided });
        Ok(iv)
    }

    /// `C_EncryptMessageNext` / `C_DecryptMessageNext`. Encryption gives each part's ciphertext at
    /// once, and the tag with the last part; decryption holds the plaintext back until the last
    /// part, whose tag (`tag`, from the caller's parameters) is checked first. A length query
    /// (`cap` `None`) or a short buffer consumes nothing. The message ends with its last part, or
    /// with any error other than a short buffer; the message-based operation goes on. Gives the
    /// part's output and, at the end of an encrypted message, its tag.
    pub fn message_next(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        data: &[u8],
        cap: Option<usize>,
        end: bool,
        tag: &[u8],
    ) -> Result<(Output, Option<Vec<u8>>)> {
        let s = self.session(h)?;
        let mut ops = lock(&s.ops);
        let slot = if encrypt { &mut ops.message_encrypt } else { &mut ops.message_decrypt };
        let active = slot.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        let part = active.part.as_ref().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        record::continued(&part.decided);
        let held = part.held;
        let len = match (encrypt, end) {
            (true, _) => data.len(),
            (false, false) => 0,
            (false, true) => held + data.len(),
        };
        if let Some(o) = super::length_only(len, cap) {
            return Ok((o, None));
        }
        // Taken out while it works: an error leaves the message ended.
        let mut part = active.part.take().ok_or(err(CKR_GENERAL_ERROR))?;
        let output = part.op.update(data)?;
        if !end {
            part.held += data.len().saturating_sub(output.len());
            active.part = Some(part);
            return Ok((Output::Done(output), None));
        }
        if encrypt {
            let tag = part.op.finish()?;
            Ok((Output::Done(output), Some(tag)))
        } else {
            let mut output = output;
            output.extend(part.op.update(tag)?);
            output.extend(part.op.finish()?);
            Ok((Output::Done(output), None))
        }
    }
}
