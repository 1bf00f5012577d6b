//! X-Wing (draft-connolly-cfrg-xwing-kem-06), as Tessera vendor mechanisms:
//! `CKM_TESSERA_XWING_KEY_PAIR_GEN` (no parameter) and `CKM_TESSERA_XWING` (`C_EncapsulateKey`,
//! `C_DecapsulateKey`; no parameter), on `CKK_TESSERA_XWING` keys. A ciphertext of the right
//! length always decapsulates (ML-KEM's implicit rejection); another length is
//! `CKR_ENCRYPTED_DATA_LEN_RANGE`, as for `CKM_ML_KEM`. Never approved: see
//! `policy/non-approved.toml`. `ulMinKeySize`/`ulMaxKeySize`: the public key's length in bytes.

use super::{Encapsulated, GeneratedPair, Mechanism, MechanismInfo, Param, Registry};
use crate::crypto::xwing;
use crate::error::{err, Result};
use crate::keys::xwing::{sk, CKK_TESSERA_XWING};
use crate::object::{AttrMap, Object};
use cryptoki_sys::*;
use zeroize::Zeroizing;

/// `CKM_VENDOR_DEFINED | 0x5457_0001`: X-Wing key-pair generation.
pub const CKM_TESSERA_XWING_KEY_PAIR_GEN: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x5457_0001;
/// `CKM_VENDOR_DEFINED | 0x5457_0002`: X-Wing encapsulation and decapsulation.
pub const CKM_TESSERA_XWING: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x5457_0002;

fn info(flags: CK_FLAGS) -> MechanismInfo {
    let len = xwing::ENCAPSULATION_KEY_SIZE as CK_ULONG;
    MechanismInfo { min_key: len, max_key: len, flags }
}

struct KeyPairGen;

impl Mechanism for KeyPairGen {
    fn info(&self) -> MechanismInfo {
        info(CKF_GENERATE_KEY_PAIR)
    }

    fn generate_key_pair(&self, param: &Param, _public: &AttrMap, _private: &AttrMap) -> Result<GeneratedPair> {
        param.require_none()?;
        let (sk, pk) = xwing::generate().ok_or(err(CKR_FUNCTION_FAILED))?;
        Ok(GeneratedPair {
            key_type: CKK_TESSERA_XWING,
            public: vec![(CKA_VALUE, pk.into())],
            private: vec![(CKA_VALUE, sk.to_vec().into())],
            forms: (None, None),
        })
    }
}

struct XWing;

impl Mechanism for XWing {
    fn info(&self) -> MechanismInfo {
        info(CKF_ENCAPSULATE | CKF_DECAPSULATE)
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_TESSERA_XWING]
    }

    fn ciphertext_len(&self, param: &Param, _public_key: &Object) -> Result<usize> {
        param.require_none()?;
        Ok(xwing::CIPHERTEXT_SIZE)
    }

    fn encapsulate(&self, param: &Param, public_key: &Object) -> Result<Encapsulated> {
        param.require_none()?;
        let pk = public_key.get(CKA_VALUE).ok_or(err(CKR_KEY_HANDLE_INVALID))?;
        let (ciphertext, secret) = xwing::encapsulate(pk).ok_or(err(CKR_FUNCTION_FAILED))?;
        Ok(Encapsulated { ciphertext, secret })
    }

    fn decapsulate(&self, param: &Param, private_key: &Object, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        param.require_none()?;
        if ciphertext.len() != xwing::CIPHERTEXT_SIZE {
            return Err(err(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        xwing::decapsulate(sk(private_key)?, ciphertext).ok_or(err(CKR_FUNCTION_FAILED))
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_TESSERA_XWING_KEY_PAIR_GEN, Box::new(KeyPairGen));
    r.add(CKM_TESSERA_XWING, Box::new(XWing));
}
