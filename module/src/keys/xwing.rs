//! X-Wing keys (`CKK_TESSERA_XWING`, a Tessera vendor key type: X-Wing has no PKCS #11 number):
//! public `CKA_VALUE` the draft's 1216-byte public key pk_M ‖ pk_X (the ML-KEM-768 part passes the
//! modulus check of FIPS 203 §7.2), private `CKA_VALUE` the draft's 32-byte private key sk (a seed
//! both halves are expanded from; key material). No SubjectPublicKeyInfo or PKCS #8 encoding (the
//! draft fixes none Tessera could rely on). Never approved (`policy/non-approved.toml`). The
//! operations are `mechanisms::xwing`'s.

use super::{KeyType, BASE};
use crate::crypto::xwing;
use crate::error::{err, Result};
use crate::object::attrs::{s, Kind::*, Spec, FIXED, REQ_CREATE, SECRET};
use crate::object::Object;
use crate::policy::KeyInfo;
use cryptoki_sys::*;

/// `CKK_VENDOR_DEFINED | 0x5457_0001` ("TW", Tessera's vendor space, key type 1).
pub const CKK_TESSERA_XWING: CK_KEY_TYPE = CKK_VENDOR_DEFINED | 0x5457_0001;

pub const PUBLIC: &[Spec] = &[s(CKA_VALUE, Bytes, REQ_CREATE | FIXED)];
pub const PRIVATE: &[Spec] = &[s(CKA_VALUE, Bytes, REQ_CREATE | FIXED | SECRET)];

pub const XWING: KeyType = KeyType {
    name: "X-Wing",
    public: Some(PUBLIC),
    private: Some(PRIVATE),
    computed,
    // X-Wing's security strength is that of ML-KEM-768 (category 3), for the policy's measure.
    key_info: |_| KeyInfo { bits: Some(192), curve: None },
    approved: |_, _| false,
    pairwise,
    ..BASE
};

/// Whether `pk` is an X-Wing public key: 1216 bytes whose ML-KEM-768 part passes the modulus
/// check.
pub fn public_valid(pk: &[u8]) -> bool {
    pk.len() == xwing::ENCAPSULATION_KEY_SIZE
        && super::ml_kem::ek_valid(crate::crypto::mlkem::Params::MlKem768, &pk[..pk.len() - 32])
}

/// A private key's sk.
pub fn sk(obj: &Object) -> Result<&[u8; xwing::DECAPSULATION_KEY_SIZE]> {
    obj.get(CKA_VALUE).and_then(|v| v.try_into().ok()).ok_or(err(CKR_KEY_HANDLE_INVALID))
}

fn computed(obj: &mut Object, _kt: CK_KEY_TYPE) -> Result<()> {
    let v = obj.get(CKA_VALUE).unwrap_or(&[]);
    let ok = match obj.class() {
        CKO_PUBLIC_KEY => public_valid(v),
        CKO_PRIVATE_KEY => v.len() == xwing::DECAPSULATION_KEY_SIZE,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(err(CKR_ATTRIBUTE_VALUE_INVALID))
    }
}

/// The pairwise-consistency test of a new pair: the public key is the one sk expands to, and an
/// encapsulation under it decapsulates with sk to the same secret.
fn pairwise(public: &Object, private: &Object, healthy: bool) -> std::result::Result<(), String> {
    let pk = public.get(CKA_VALUE).ok_or("public key without CKA_VALUE")?;
    let sk = sk(private).map_err(|_| "private key without its 32-byte sk")?;
    if xwing::public_key(sk) != pk {
        return Err("the public key is not the one the private key expands to".into());
    }
    let (mut ct, k1) = xwing::encapsulate(pk).ok_or("encapsulation failed")?;
    if !healthy {
        ct[0] ^= 1;
    }
    let k2 = xwing::decapsulate(sk, &ct).ok_or("decapsulation failed")?;
    if k1 != k2 {
        return Err("the decapsulated secret differs from the encapsulated one".into());
    }
    Ok(())
}
