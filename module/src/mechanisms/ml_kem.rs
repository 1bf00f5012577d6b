//! ML-KEM (FIPS 203): `CKM_ML_KEM_KEY_PAIR_GEN` and `CKM_ML_KEM` (`C_EncapsulateKey`,
//! `C_DecapsulateKey`). Neither takes a parameter. Key generation draws the seed d‖z and expands
//! it (`crypto::mlkem`), so a generated private key carries `CKA_SEED` beside dk. Decapsulation of
//! a ciphertext of the right length always gives a secret (FIPS 203 implicit rejection: a
//! ciphertext that is not the key's gives a pseudorandom one); one of another length is
//! `CKR_ENCRYPTED_DATA_LEN_RANGE`, the error PKCS #11 gives for an encrypted input of a length the
//! mechanism cannot take. `ulMinKeySize`/`ulMaxKeySize`: the public key's length in bytes, as the
//! 3.2 specification says.

use super::{Encapsulated, GeneratedPair, Mechanism, MechanismInfo, Param, Registry};
use crate::crypto::mlkem::{self, Params};
use crate::error::{err, Result};
use crate::keys::ml_kem::{parameter_set, params, params_of};
use crate::object::{ulong, AttrMap, Object, Prepared};
use cryptoki_sys::*;
use zeroize::Zeroizing;

fn info(flags: CK_FLAGS) -> MechanismInfo {
    MechanismInfo {
        min_key: Params::MlKem512.ek_len() as CK_ULONG,
        max_key: Params::MlKem1024.ek_len() as CK_ULONG,
        flags,
    }
}

struct KeyPairGen;

impl Mechanism for KeyPairGen {
    fn info(&self) -> MechanismInfo {
        info(CKF_GENERATE_KEY_PAIR)
    }

    fn generate_key_pair(&self, param: &Param, public: &AttrMap, private: &AttrMap) -> Result<GeneratedPair> {
        param.require_none()?;
        let p = params_of(super::keygen_parameter_set(public, private)?)?;
        // With the parsed keys the objects keep (what `MlKem` below and the pairwise test use).
        let ((ek, mut dk, seed), public_form, private_form) =
            mlkem::generate_parsed(p).ok_or(err(CKR_FUNCTION_FAILED))?;
        Ok(GeneratedPair {
            key_type: CKK_ML_KEM,
            public: vec![(CKA_PARAMETER_SET, ulong(parameter_set(p))), (CKA_VALUE, ek.into())],
            private: vec![
                (CKA_PARAMETER_SET, ulong(parameter_set(p))),
                (CKA_SEED, seed.to_vec().into()),
                // Moved out, not copied: a copy left the original's 2,400 bytes (ML-KEM-768) to
                // be wiped one at a time, and the private key object wipes its own.
                (CKA_VALUE, std::mem::take(&mut *dk).into()),
            ],
            forms: (Some(Prepared::shared(public_form)), Some(Prepared::shared(private_form))),
        })
    }
}

struct MlKem;

impl Mechanism for MlKem {
    fn info(&self) -> MechanismInfo {
        info(CKF_ENCAPSULATE | CKF_DECAPSULATE)
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_ML_KEM]
    }

    fn ciphertext_len(&self, param: &Param, public_key: &Object) -> Result<usize> {
        param.require_none()?;
        Ok(params(public_key)?.ct_len())
    }

    fn encapsulate(&self, param: &Param, public_key: &Object) -> Result<Encapsulated> {
        param.require_none()?;
        let p = params(public_key)?;
        let ek = public_key.get(CKA_VALUE).ok_or(err(CKR_KEY_HANDLE_INVALID))?;
        // The parsed key is kept with the object for its next use.
        let parse = || mlkem::EncapsulationKey::new(p, ek).ok_or(err(CKR_KEY_TYPE_INCONSISTENT));
        let (ciphertext, secret) =
            public_key.with_parsed(parse, |k| k.encapsulate())?.ok_or(err(CKR_FUNCTION_FAILED))?;
        Ok(Encapsulated { ciphertext, secret })
    }

    fn decapsulate(&self, param: &Param, private_key: &Object, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        param.require_none()?;
        let p = params(private_key)?;
        if ciphertext.len() != p.ct_len() {
            return Err(err(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        // A locked token's key has no dk loaded: `usable_key` refused it already.
        let dk = private_key.get(CKA_VALUE).ok_or(err(CKR_USER_NOT_LOGGED_IN))?;
        let parse = || mlkem::DecapsulationKey::new(p, dk).ok_or(err(CKR_KEY_TYPE_INCONSISTENT));
        private_key.with_parsed(parse, |k| k.decapsulate(ciphertext))?.ok_or(err(CKR_FUNCTION_FAILED))
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_ML_KEM_KEY_PAIR_GEN, Box::new(KeyPairGen));
    r.add(CKM_ML_KEM, Box::new(MlKem));
}
