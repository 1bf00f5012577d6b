//! AES: key generation, ECB, CBC, CBC with PKCS#7 padding, CTR, GCM, key wrap (RFC 3394 and
//! RFC 5649) and CMAC.
//!
//! Block modes, CTR, key wrap and GCM use the small aws-lc wrappers of `crypto::aes` (aws-lc-rs
//! offers no unpadded streaming ECB/CBC, no GCM with other IV or tag lengths and no 192-bit key
//! wrap); CMAC comes from aws-lc-rs.
//!
//! Parameters come decoded by the ABI layer (`abi/params.rs`): [`Param::Gcm`], [`Param::Ctr`],
//! the CBC and key-wrap IVs as [`Param::Bytes`], `CK_MAC_GENERAL_PARAMS` as [`Param::Ulong`].

use super::block::{as_unwrap_error, len_range, zero_padded, BlockCipher, BlockOp};
use super::hmac::{random_value, secret_value, tag_len, MacCore, MacSign, MacVerify};
use super::param::GcmParams;
use super::{CipherOperation, GeneratedKey, Mechanism, MechanismInfo, Param, Registry, SignOperation, VerifyOperation};
use crate::crypto::aes::{AesKey, CtrState, Gcm, BLOCK};
use crate::error::{err, Result};
use crate::object::{as_ulong, AttrMap, Kept, Object};
use cryptoki_sys::*;
use zeroize::Zeroizing;

/// Tag lengths (bits) GCM accepts: those of NIST SP 800-38D.
const GCM_TAG_BITS: [CK_ULONG; 7] = [32, 64, 96, 104, 112, 120, 128];

const AES_INFO_MIN: CK_ULONG = 16;
const AES_INFO_MAX: CK_ULONG = 32;

/// The AES key of `key` (`CKR_KEY_SIZE_RANGE` unless 16, 24 or 32 bytes).
fn aes_value(key: &Object) -> Result<&[u8]> {
    let v = secret_value(key)?;
    if [16, 24, 32].contains(&v.len()) {
        Ok(v)
    } else {
        Err(err(CKR_KEY_SIZE_RANGE))
    }
}

fn expand(key: &Object, encrypt: bool) -> Result<AesKey> {
    AesKey::new(aes_value(key)?, encrypt).ok_or(err(CKR_KEY_SIZE_RANGE))
}

/// `CKM_AES_KEY_GEN`.
struct KeyGen;

impl Mechanism for KeyGen {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: AES_INFO_MIN, max_key: AES_INFO_MAX, flags: CKF_GENERATE }
    }

    fn generate_key(&self, param: &Param, template: &AttrMap) -> Result<GeneratedKey> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let len = template.get(&CKA_VALUE_LEN).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
        let len = as_ulong(len).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))?;
        if ![16, 24, 32].contains(&len) {
            return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
        }
        let value = random_value(template, 16, 32)?;
        Ok(GeneratedKey { key_type: CKK_AES, material: vec![(CKA_VALUE, value.into())] })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ecb,
    Cbc,
    CbcPad,
    Ctr,
    Gcm,
}

impl BlockCipher for AesKey {
    const BLOCK: usize = BLOCK;

    fn ecb(&self, data: &[u8]) -> Option<Vec<u8>> {
        AesKey::ecb(self, data)
    }

    fn cbc_into(&self, iv: &mut [u8], data: &[u8], out: &mut [u8]) -> Option<()> {
        AesKey::cbc_into(self, iv.try_into().ok()?, data, out)
    }
}

/// CTR with a counter of `bits` low bits of the counter block; running past them is an error.
struct CtrOp {
    key: AesKey,
    state: CtrState,
    /// Bytes of key stream left before the counter would wrap.
    left: u128,
    encrypt: bool,
}

impl CipherOperation for CtrOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let n = data.len() as u128;
        if n > self.left {
            return Err(len_range(self.encrypt));
        }
        self.left -= n;
        Ok(self.key.ctr(&mut self.state, data))
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

fn ctr_op(param: &Param, key: &Object, encrypt: bool) -> Result<CtrOp> {
    let Param::Ctr { counter_bits: bits, block: cb } = *param else {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    };
    if bits == 0 || bits > 128 {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    let counter = u128::from_be_bytes(cb);
    // Blocks from the current counter value up to the largest `bits`-bit value, inclusive.
    let blocks = if bits == 128 {
        (u128::MAX - counter).saturating_add(1)
    } else {
        let mask = (1u128 << bits) - 1;
        mask - (counter & mask) + 1
    };
    Ok(CtrOp { key: expand(key, true)?, state: CtrState::new(cb), left: blocks.saturating_mul(BLOCK as u128), encrypt })
}

/// GCM encryption: text out as it comes, the tag at the end.
struct GcmEncrypt {
    gcm: Option<Gcm>,
    tag_len: usize,
}

impl CipherOperation for GcmEncrypt {
    fn output_len(&self, input: usize) -> Option<(usize, bool)> {
        Some((input + self.tag_len, true))
    }

    fn one_shot_into(mut self: Box<Self>, data: &[u8], out: &mut [u8]) -> Result<usize> {
        let (text, rest) = out.split_at_mut(data.len());
        let mut g = self.gcm.take().ok_or(err(CKR_GENERAL_ERROR))?;
        g.update_into(data, text).ok_or(err(CKR_GENERAL_ERROR))?;
        let tag = g.tag(self.tag_len).ok_or(err(CKR_GENERAL_ERROR))?;
        rest.get_mut(..tag.len()).ok_or(err(CKR_BUFFER_TOO_SMALL))?.copy_from_slice(&tag);
        Ok(data.len() + tag.len())
    }

    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.gcm.as_mut().and_then(|g| g.update(data)).ok_or(err(CKR_GENERAL_ERROR))
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>> {
        self.gcm.take().and_then(|g| g.tag(self.tag_len)).ok_or(err(CKR_GENERAL_ERROR))
    }
}

/// GCM decryption: nothing leaves before the tag is checked, so the text waits for the end.
struct GcmDecrypt {
    gcm: Option<Gcm>,
    tag_len: usize,
    buf: Vec<u8>,
}

impl CipherOperation for GcmDecrypt {
    fn output_len(&self, input: usize) -> Option<(usize, bool)> {
        self.buf.is_empty().then(|| (input.saturating_sub(self.tag_len), true))
    }

    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>> {
        let Some(split) = self.buf.len().checked_sub(self.tag_len) else {
            return Err(err(CKR_ENCRYPTED_DATA_LEN_RANGE));
        };
        let (ct, tag) = self.buf.split_at(split);
        let mut gcm = self.gcm.take().ok_or(err(CKR_GENERAL_ERROR))?;
        let pt = Zeroizing::new(gcm.update(ct).ok_or(err(CKR_GENERAL_ERROR))?);
        if gcm.check(tag) {
            Ok(pt.to_vec())
        } else {
            Err(err(CKR_ENCRYPTED_DATA_INVALID))
        }
    }
}

/// AES-GCM with a 96-bit IV and a 128-bit tag over a whole message at once, through aws-lc's
/// AEAD interface with the key schedule kept with the key object: the common case, taken by
/// single-part `C_Encrypt`/`C_Decrypt`. Streaming use falls back to [`Gcm`].
struct GcmWhole {
    key: std::sync::Arc<Kept<GcmKey>>,
    iv: [u8; 12],
    aad: Vec<u8>,
    encrypt: bool,
    /// The streaming operation, made on the first `update`.
    stream: Option<Box<dyn CipherOperation>>,
}

/// A GCM key as its object keeps it: aws-lc's AEAD key, and the raw value for the streaming path
/// (so that no operation copies it).
struct GcmKey {
    aead: crate::crypto::aes::aead::LessSafeKey,
    value: Zeroizing<Vec<u8>>,
}

impl std::ops::Deref for GcmKey {
    type Target = crate::crypto::aes::aead::LessSafeKey;
    fn deref(&self) -> &Self::Target {
        &self.aead
    }
}

impl GcmWhole {
    /// The streaming encryption for this message, as its own operation.
    fn streaming_encrypt(&mut self) -> Result<Box<dyn CipherOperation>> {
        let g = Gcm::new(&self.key.value, &self.iv, &self.aad, true).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
        Ok(Box::new(GcmEncrypt { gcm: Some(g), tag_len: 16 }))
    }

    fn streaming(&mut self) -> Result<&mut Box<dyn CipherOperation>> {
        if self.stream.is_none() {
            let g =
                Gcm::new(&self.key.value, &self.iv, &self.aad, self.encrypt).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
            let op: Box<dyn CipherOperation> = if self.encrypt {
                Box::new(GcmEncrypt { gcm: Some(g), tag_len: 16 })
            } else {
                Box::new(GcmDecrypt { gcm: Some(g), tag_len: 16, buf: Vec::new() })
            };
            self.stream = Some(op);
        }
        self.stream.as_mut().ok_or(err(CKR_GENERAL_ERROR))
    }
}

impl CipherOperation for GcmWhole {
    fn one_shot_into(mut self: Box<Self>, data: &[u8], out: &mut [u8]) -> Result<usize> {
        use crate::crypto::aes::aead::{Aad, Nonce};
        if !self.encrypt || data.len() > 64 * 1024 {
            if self.encrypt {
                // Large messages: the streaming cipher writes straight into the caller's buffer.
                let op = self.streaming_encrypt()?;
                return op.one_shot_into(data, out);
            }
            let v = self.one_shot(data)?;
            out.get_mut(..v.len()).ok_or(err(CKR_BUFFER_TOO_SMALL))?.copy_from_slice(&v);
            return Ok(v.len());
        }
        let (text, rest) = out.split_at_mut(data.len());
        text.copy_from_slice(data);
        let nonce = Nonce::assume_unique_for_key(self.iv);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&self.aad), text)
            .map_err(|_| err(CKR_GENERAL_ERROR))?;
        rest.get_mut(..16).ok_or(err(CKR_BUFFER_TOO_SMALL))?.copy_from_slice(tag.as_ref());
        Ok(data.len() + 16)
    }

    fn output_len(&self, input: usize) -> Option<(usize, bool)> {
        if self.stream.is_some() {
            return None;
        }
        Some(if self.encrypt { (input + 16, true) } else { (input.saturating_sub(16), true) })
    }

    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.streaming()?.update(data)
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>> {
        self.streaming()?;
        self.stream.take().ok_or(err(CKR_GENERAL_ERROR))?.finish()
    }

    fn one_shot(self: Box<Self>, data: &[u8]) -> Result<Vec<u8>> {
        use crate::crypto::aes::aead::{Aad, Nonce};
        // Large messages go through the streaming path, which writes its output once; small ones
        // gain most from the kept key schedule.
        if self.stream.is_some() || data.len() > 64 * 1024 {
            let mut me = self;
            let mut out = me.update(data)?;
            out.extend(me.finish()?);
            return Ok(out);
        }
        let nonce = || Nonce::assume_unique_for_key(self.iv);
        if self.encrypt {
            let mut buf = Vec::with_capacity(data.len() + 16);
            buf.extend_from_slice(data);
            self.key
                .seal_in_place_append_tag(nonce(), Aad::from(&self.aad), &mut buf)
                .map_err(|_| err(CKR_GENERAL_ERROR))?;
            Ok(buf)
        } else {
            if data.len() < 16 {
                return Err(err(CKR_ENCRYPTED_DATA_LEN_RANGE));
            }
            let mut buf = Zeroizing::new(data.to_vec());
            let n = self
                .key
                .open_in_place(nonce(), Aad::from(&self.aad), &mut buf)
                .map_err(|_| err(CKR_ENCRYPTED_DATA_INVALID))?
                .len();
            Ok(buf[..n].to_vec())
        }
    }
}

/// The whole-message fast path when the parameters allow it (96-bit IV, 128-bit tag).
fn gcm_whole(p: &GcmParams, key: &Object, encrypt: bool) -> Result<Option<GcmWhole>> {
    let Ok(iv) = <[u8; 12]>::try_from(p.iv.as_slice()) else { return Ok(None) };
    if p.tag_bits != 128 {
        return Ok(None);
    }
    let value = aes_value(key)?;
    let alg = match value.len() {
        16 => &crate::crypto::aes::aead::AES_128_GCM,
        24 => &crate::crypto::aes::aead::AES_192_GCM,
        _ => &crate::crypto::aes::aead::AES_256_GCM,
    };
    let k = key.parsed_per_session(|| {
        let unbound = crate::crypto::aes::aead::UnboundKey::new(alg, value).map_err(|_| err(CKR_KEY_SIZE_RANGE))?;
        Ok(GcmKey { aead: crate::crypto::aes::aead::LessSafeKey::new(unbound), value: Zeroizing::new(value.to_vec()) })
    })?;
    if k.algorithm() != alg {
        return Ok(None);
    }
    Ok(Some(GcmWhole { key: k, iv, aad: crate::error::try_copy(&p.aad)?, encrypt, stream: None }))
}

fn gcm_start(p: &GcmParams, key: &Object, encrypt: bool) -> Result<(Gcm, usize)> {
    if p.iv.is_empty() || !GCM_TAG_BITS.contains(&p.tag_bits) {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    let g = Gcm::new(aes_value(key)?, &p.iv, &p.aad, encrypt).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
    Ok((g, (p.tag_bits / 8) as usize))
}

struct Cipher(Mode);

impl Cipher {
    fn start(&self, param: &Param, key: &Object, encrypt: bool) -> Result<Box<dyn CipherOperation>> {
        let block = |iv: Option<&[u8]>, pad: bool| -> Result<Box<dyn CipherOperation>> {
            // CTR-like modes aside, decryption needs the inverse key schedule.
            let key = expand(key, encrypt)?;
            Ok(Box::new(BlockOp::new(key, iv, pad, encrypt)?))
        };
        let bad = || err(CKR_MECHANISM_PARAM_INVALID);
        match self.0 {
            Mode::Ecb if param.is_none() => block(None, false),
            Mode::Ecb => Err(bad()),
            Mode::Cbc => block(Some(param.bytes().ok_or(bad())?), false),
            Mode::CbcPad => block(Some(param.bytes().ok_or(bad())?), true),
            Mode::Ctr => Ok(Box::new(ctr_op(param, key, encrypt)?)),
            Mode::Gcm => {
                let Param::Gcm(p) = param else { return Err(bad()) };
                if let Some(w) = gcm_whole(p, key, encrypt)? {
                    return Ok(Box::new(w));
                }
                let (gcm, tag_len) = gcm_start(p, key, encrypt)?;
                if encrypt {
                    Ok(Box::new(GcmEncrypt { gcm: Some(gcm), tag_len }))
                } else {
                    Ok(Box::new(GcmDecrypt { gcm: Some(gcm), tag_len, buf: Vec::new() }))
                }
            }
        }
    }

    /// A whole encryption or decryption in one go (wrapping with CBC_PAD and GCM).
    fn once(&self, param: &Param, key: &Object, encrypt: bool, data: &[u8]) -> Result<Vec<u8>> {
        self.start(param, key, encrypt)?.one_shot(data)
    }
}

impl Mechanism for Cipher {
    fn info(&self) -> MechanismInfo {
        let wrap = if self.0 != Mode::Ctr { CKF_WRAP | CKF_UNWRAP } else { 0 };
        // GCM also serves the 3.0 message-based encryption functions (`services::message`).
        let message = if matches!(self.0, Mode::Gcm) { CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT } else { 0 };
        MechanismInfo {
            min_key: AES_INFO_MIN,
            max_key: AES_INFO_MAX,
            flags: CKF_ENCRYPT | CKF_DECRYPT | wrap | message,
        }
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_AES]
    }

    fn encrypt(&self, param: &Param, key: &Object) -> Result<Box<dyn CipherOperation>> {
        self.start(param, key, true)
    }

    fn decrypt(&self, param: &Param, key: &Object) -> Result<Box<dyn CipherOperation>> {
        self.start(param, key, false)
    }

    fn wrap(&self, param: &Param, wrapping_key: &Object, key_bytes: &[u8]) -> Result<Vec<u8>> {
        match self.0 {
            Mode::Ctr => Err(err(CKR_MECHANISM_INVALID)),
            Mode::Ecb | Mode::Cbc => self.once(param, wrapping_key, true, &zero_padded(key_bytes, BLOCK)),
            Mode::CbcPad | Mode::Gcm => self.once(param, wrapping_key, true, key_bytes),
        }
    }

    fn wraps_zero_padded(&self) -> bool {
        matches!(self.0, Mode::Ecb | Mode::Cbc)
    }

    fn unwraps_authenticated(&self) -> bool {
        self.0 == Mode::Gcm
    }

    fn unwrap(&self, param: &Param, unwrapping_key: &Object, wrapped: &[u8]) -> Result<Vec<u8>> {
        if self.0 == Mode::Ctr {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        // GCM unwraps as authenticated unwrapping: with a tag of 96 bits at least (a 32- or
        // 64-bit tag would take a forged wrapped key once in 2^32 or 2^64 tries; SP 800-38D
        // Appendix C).
        if let Param::Gcm(p) = param {
            if p.tag_bits < 96 {
                return Err(err(CKR_MECHANISM_PARAM_INVALID));
            }
        }
        self.once(param, unwrapping_key, false, wrapped).map_err(as_unwrap_error)
    }
}

/// `CKM_AES_KEY_WRAP` (RFC 3394) and `CKM_AES_KEY_WRAP_KWP` (RFC 5649).
struct KeyWrap {
    padded: bool,
}

/// What a key-wrap failure means for each use.
#[derive(Clone, Copy)]
enum Use {
    Encrypt,
    Decrypt,
    Wrap,
    Unwrap,
}

impl KeyWrap {
    fn check_param(&self, param: &Param) -> Result<()> {
        let default: &[u8] = if self.padded { &[0xa6, 0x59, 0x59, 0xa6] } else { &[0xa6; 8] };
        if param.bytes().is_some_and(|b| b.is_empty() || b == default) {
            Ok(())
        } else {
            Err(err(CKR_MECHANISM_PARAM_INVALID))
        }
    }

    fn run(&self, param: &Param, key: &Object, data: &[u8], u: Use) -> Result<Vec<u8>> {
        self.check_param(param)?;
        let forward = matches!(u, Use::Encrypt | Use::Wrap);
        let k = expand(key, forward)?;
        // PKCS#11 on CKM_AES_KEY_WRAP: "a key whose length is not a multiple of the AES Key Wrap
        // block size (8 bytes) will be zero padded to fit" — here to at least the two blocks
        // RFC 3394 needs. Unwrapping takes the padding off again (`services::keys`).
        let filled: Zeroizing<Vec<u8>>;
        let short = data.len() < 16 || !data.len().is_multiple_of(8);
        let data = if matches!(u, Use::Wrap) && !self.padded && !data.is_empty() && short {
            let mut v = zero_padded(data, 8);
            let n = v.len().max(16);
            v.resize(n, 0);
            filled = v;
            filled.as_slice()
        } else {
            data
        };
        let len_ok = if forward {
            if self.padded {
                !data.is_empty()
            } else {
                data.len() >= 16 && data.len().is_multiple_of(8)
            }
        } else {
            data.len() >= if self.padded { 16 } else { 24 } && data.len().is_multiple_of(8)
        };
        let (len_rv, bad_rv) = match u {
            Use::Encrypt => (CKR_DATA_LEN_RANGE, CKR_GENERAL_ERROR),
            Use::Decrypt => (CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID),
            Use::Wrap => (CKR_KEY_SIZE_RANGE, CKR_GENERAL_ERROR),
            Use::Unwrap => (CKR_WRAPPED_KEY_LEN_RANGE, CKR_WRAPPED_KEY_INVALID),
        };
        if !len_ok {
            return Err(err(len_rv));
        }
        let out = match (forward, self.padded) {
            (true, false) => k.wrap(data),
            (true, true) => k.wrap_padded(data),
            (false, false) => k.unwrap(data),
            (false, true) => k.unwrap_padded(data),
        };
        out.ok_or(err(bad_rv))
    }
}

/// A single-part operation that needs all its input at once.
struct Whole<F: FnOnce(&[u8]) -> Result<Vec<u8>> + Send> {
    buf: Zeroizing<Vec<u8>>,
    f: F,
}

impl<F: FnOnce(&[u8]) -> Result<Vec<u8>> + Send> CipherOperation for Whole<F> {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        let Whole { buf, f } = *self;
        f(&buf)
    }

    fn multipart(&self) -> bool {
        false
    }
}

impl Mechanism for KeyWrap {
    fn info(&self) -> MechanismInfo {
        MechanismInfo {
            min_key: AES_INFO_MIN,
            max_key: AES_INFO_MAX,
            flags: CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
        }
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_AES]
    }

    fn encrypt(&self, param: &Param, key: &Object) -> Result<Box<dyn CipherOperation>> {
        self.check_param(param)?;
        aes_value(key)?;
        let (param, key, padded) = (param.clone(), key.clone(), self.padded);
        let f = move |d: &[u8]| KeyWrap { padded }.run(&param, &key, d, Use::Encrypt);
        Ok(Box::new(Whole { buf: Zeroizing::new(Vec::new()), f }))
    }

    fn decrypt(&self, param: &Param, key: &Object) -> Result<Box<dyn CipherOperation>> {
        self.check_param(param)?;
        aes_value(key)?;
        let (param, key, padded) = (param.clone(), key.clone(), self.padded);
        let f = move |d: &[u8]| KeyWrap { padded }.run(&param, &key, d, Use::Decrypt);
        Ok(Box::new(Whole { buf: Zeroizing::new(Vec::new()), f }))
    }

    fn wrap(&self, param: &Param, wrapping_key: &Object, key_bytes: &[u8]) -> Result<Vec<u8>> {
        self.run(param, wrapping_key, key_bytes, Use::Wrap)
    }

    fn wraps_zero_padded(&self) -> bool {
        !self.padded
    }

    fn wraps_authenticated(&self) -> bool {
        true
    }

    fn unwrap(&self, param: &Param, unwrapping_key: &Object, wrapped: &[u8]) -> Result<Vec<u8>> {
        self.run(param, unwrapping_key, wrapped, Use::Unwrap)
    }
}

/// AES-CMAC in progress.
struct Cmac(crate::crypto::aes::cmac::Context);

impl MacCore for Cmac {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.0.update(data).map_err(|_| err(CKR_GENERAL_ERROR))
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        Ok(self.0.sign().map_err(|_| err(CKR_GENERAL_ERROR))?.as_ref().to_vec())
    }
}

/// `CKM_AES_CMAC` and `CKM_AES_CMAC_GENERAL`.
struct CmacMech {
    general: bool,
}

impl CmacMech {
    fn start(&self, param: &Param, key: &Object) -> Result<(Box<dyn MacCore>, usize)> {
        use crate::crypto::aes::cmac;
        let len = tag_len(param, self.general, BLOCK)?;
        let v = aes_value(key)?;
        let alg = match v.len() {
            16 => cmac::AES_128,
            24 => cmac::AES_192,
            _ => cmac::AES_256,
        };
        let k = cmac::Key::new(alg, v).map_err(|_| err(CKR_KEY_SIZE_RANGE))?;
        Ok((Box::new(Cmac(cmac::Context::with_key(&k))), len))
    }
}

impl Mechanism for CmacMech {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: AES_INFO_MIN, max_key: AES_INFO_MAX, flags: CKF_SIGN | CKF_VERIFY }
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_AES]
    }

    fn sign(&self, param: &Param, key: &Object) -> Result<Box<dyn SignOperation>> {
        let (core, len) = self.start(param, key)?;
        Ok(Box::new(MacSign { core, len }))
    }

    fn verify(&self, param: &Param, key: &Object) -> Result<Box<dyn VerifyOperation>> {
        let (core, len) = self.start(param, key)?;
        Ok(Box::new(MacVerify { core, len }))
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_AES_KEY_GEN, Box::new(KeyGen));
    r.add(CKM_AES_ECB, Box::new(Cipher(Mode::Ecb)));
    r.add(CKM_AES_CBC, Box::new(Cipher(Mode::Cbc)));
    r.add(CKM_AES_CBC_PAD, Box::new(Cipher(Mode::CbcPad)));
    r.add(CKM_AES_CTR, Box::new(Cipher(Mode::Ctr)));
    r.add(CKM_AES_GCM, Box::new(Cipher(Mode::Gcm)));
    r.add(CKM_AES_KEY_WRAP, Box::new(KeyWrap { padded: false }));
    r.add(CKM_AES_KEY_WRAP_KWP, Box::new(KeyWrap { padded: true }));
    r.add(CKM_AES_CMAC, Box::new(CmacMech { general: false }));
    r.add(CKM_AES_CMAC_GENERAL, Box::new(CmacMech { general: true }));
}
