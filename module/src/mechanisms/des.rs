//! Triple-DES (TDEA) and single DES: key generation (`CKM_DES_KEY_GEN`, `CKM_DES2_KEY_GEN`,
//! `CKM_DES3_KEY_GEN`) and ECB, CBC and CBC_PAD over `CKK_DES`, `CKK_DES2` and `CKK_DES3` keys,
//! all of which also wrap and unwrap. Kept for legacy data, for applications and test
//! suites written for SoftHSMv2 and other HSMs, and for keys carried over from them; none of it is
//! approved (SP 800-131A Rev. 2: TDEA encryption is disallowed after 2023; DES was withdrawn in
//! 2005), so the approved mode offers none of it.

use super::block::{as_unwrap_error, zero_padded, BlockOp};
use super::hmac::secret_value;
use super::{CipherOperation, GeneratedKey, Mechanism, MechanismInfo, Param, Registry};
use crate::crypto::des::{Des3Key, BLOCK};
use crate::error::{err, Result};
use crate::keys::des::key_len;
use crate::object::{as_ulong, AttrMap, Object};
use cryptoki_sys::*;

impl super::block::BlockCipher for Des3Key {
    const BLOCK: usize = BLOCK;

    fn ecb(&self, data: &[u8]) -> Option<Vec<u8>> {
        Des3Key::ecb(self, data)
    }

    fn cbc_into(&self, iv: &mut [u8], data: &[u8], out: &mut [u8]) -> Option<()> {
        Des3Key::cbc_into(self, iv.try_into().ok()?, data, out)
    }
}

/// The key schedule of `key` for one direction.
fn schedule(key: &Object, encrypt: bool) -> Result<Des3Key> {
    let v = secret_value(key)?;
    if key.ulong(CKA_KEY_TYPE).and_then(key_len) != Some(v.len()) {
        return Err(err(CKR_KEY_SIZE_RANGE));
    }
    Des3Key::new(v, encrypt).ok_or(err(CKR_KEY_SIZE_RANGE))
}

/// `CKM_DES2_KEY_GEN` and `CKM_DES3_KEY_GEN`: random keys with odd parity (the parity bits
/// carry no key material; SP 800-67 §3.3.1 sets them so).
struct KeyGen(CK_KEY_TYPE);

impl Mechanism for KeyGen {
    fn info(&self) -> MechanismInfo {
        let n = key_len(self.0).unwrap_or(0) as CK_ULONG;
        MechanismInfo { min_key: n, max_key: n, flags: CKF_GENERATE }
    }

    fn generate_key(&self, param: &Param, template: &AttrMap) -> Result<GeneratedKey> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let len = key_len(self.0).ok_or(err(CKR_GENERAL_ERROR))?;
        if template.get(&CKA_VALUE_LEN).is_some_and(|v| as_ulong(v) != Some(len as CK_ULONG)) {
            return Err(err(CKR_TEMPLATE_INCONSISTENT));
        }
        let mut value = crate::store::seal::random_bytes(len)?;
        for b in value.iter_mut() {
            let high = *b & 0xfe;
            *b = high | ((high.count_ones() & 1) ^ 1) as u8;
        }
        Ok(GeneratedKey { key_type: self.0, material: vec![(CKA_VALUE, value.into())] })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ecb,
    Cbc,
    CbcPad,
}

/// A mode over single-DES keys (`true`) or Triple-DES keys.
struct Cipher(Mode, bool);

impl Cipher {
    fn start(&self, param: &Param, key: &Object, encrypt: bool) -> Result<Box<dyn CipherOperation>> {
        let iv = || param.bytes().ok_or(err(CKR_MECHANISM_PARAM_INVALID));
        let (iv, pad) = match self.0 {
            Mode::Ecb if param.is_none() => (None, false),
            Mode::Ecb => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
            Mode::Cbc => (Some(iv()?), false),
            Mode::CbcPad => (Some(iv()?), true),
        };
        Ok(Box::new(BlockOp::new(schedule(key, encrypt)?, iv, pad, encrypt)?))
    }

    /// A whole encryption or decryption in one go (wrapping and unwrapping).
    fn once(&self, param: &Param, key: &Object, encrypt: bool, data: &[u8]) -> Result<Vec<u8>> {
        self.start(param, key, encrypt)?.one_shot(data)
    }
}

impl Mechanism for Cipher {
    fn info(&self) -> MechanismInfo {
        let (min_key, max_key) = if self.1 { (8, 8) } else { (16, 24) };
        MechanismInfo { min_key, max_key, flags: CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP }
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        if self.1 {
            &[CKK_DES]
        } else {
            &[CKK_DES2, CKK_DES3]
        }
    }

    fn encrypt(&self, param: &Param, key: &Object) -> Result<Box<dyn CipherOperation>> {
        self.start(param, key, true)
    }

    fn decrypt(&self, param: &Param, key: &Object) -> Result<Box<dyn CipherOperation>> {
        self.start(param, key, false)
    }

    fn wrap(&self, param: &Param, wrapping_key: &Object, key_bytes: &[u8]) -> Result<Vec<u8>> {
        match self.0 {
            Mode::CbcPad => self.once(param, wrapping_key, true, key_bytes),
            Mode::Ecb | Mode::Cbc => self.once(param, wrapping_key, true, &zero_padded(key_bytes, BLOCK)),
        }
    }

    fn wraps_zero_padded(&self) -> bool {
        self.0 != Mode::CbcPad
    }

    fn unwrap(&self, param: &Param, unwrapping_key: &Object, wrapped: &[u8]) -> Result<Vec<u8>> {
        self.once(param, unwrapping_key, false, wrapped).map_err(as_unwrap_error)
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_DES_KEY_GEN, Box::new(KeyGen(CKK_DES)));
    r.add(CKM_DES2_KEY_GEN, Box::new(KeyGen(CKK_DES2)));
    r.add(CKM_DES3_KEY_GEN, Box::new(KeyGen(CKK_DES3)));
    r.add(CKM_DES_ECB, Box::new(Cipher(Mode::Ecb, true)));
    r.add(CKM_DES_CBC, Box::new(Cipher(Mode::Cbc, true)));
    r.add(CKM_DES_CBC_PAD, Box::new(Cipher(Mode::CbcPad, true)));
    r.add(CKM_DES3_ECB, Box::new(Cipher(Mode::Ecb, false)));
    r.add(CKM_DES3_CBC, Box::new(Cipher(Mode::Cbc, false)));
    r.add(CKM_DES3_CBC_PAD, Box::new(Cipher(Mode::CbcPad, false)));
}
