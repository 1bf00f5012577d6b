//! `CKA_PUBLIC_KEY_INFO`: the DER SubjectPublicKeyInfo of a key with a public half, which the
//! specification has the token compute when the application does not give it (public and private
//! key objects of the key types that have one: each key type's `keys::KeyType::public_key_info`).

use super::Object;
use crate::error::{err, Result};
use cryptoki_sys::*;
use pkcs8::der::asn1::{AnyRef, BitStringRef};
use pkcs8::der::{Decode, Encode};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

/// The SubjectPublicKeyInfo of `obj`'s public key; `None` for objects without one, or a private
/// RSA key stored without its public exponent (which cannot be computed from what it has).
pub fn public_key_info(obj: &Object) -> Result<Option<Vec<u8>>> {
    let bad = |_| err(CKR_GENERAL_ERROR);
    let private = match obj.class() {
        CKO_PUBLIC_KEY => false,
        CKO_PRIVATE_KEY => true,
        _ => return Ok(None),
    };
    let Some(k) = obj.ulong(CKA_KEY_TYPE).and_then(crate::keys::by_type) else { return Ok(None) };
    let Some((oid, params, key)) = (k.public_key_info)(obj, private)? else { return Ok(None) };
    let parameters = params.as_deref().map(AnyRef::from_der).transpose().map_err(bad)?;
    let info = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef { oid, parameters },
        subject_public_key: BitStringRef::from_bytes(&key).map_err(bad)?,
    };
    Ok(Some(info.to_der().map_err(bad)?))
}
