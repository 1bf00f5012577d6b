//! `CKA_PUBLIC_KEY_INFO`: the DER SubjectPublicKeyInfo of a key with a public half, which the
//! specification has the token compute when the application does not give it (RSA, EC, Edwards
//! and Montgomery keys; public and private key objects).

use super::Object;
use crate::error::{err, Result};
use crate::mechanisms::ec::{public_point, scalar, Curve};
use cryptoki_sys::*;
use pkcs8::der::asn1::{AnyRef, BitStringRef, ObjectIdentifier};
use pkcs8::der::{Decode, Encode};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
/// The DER of an ASN.1 NULL: rsaEncryption's parameters (RFC 3279 §2.3.1).
const DER_NULL: &[u8] = &[0x05, 0x00];

/// The SubjectPublicKeyInfo of `obj`'s public key; `None` for objects without one, or a private
/// RSA key stored without its public exponent (which cannot be computed from what it has).
pub fn public_key_info(obj: &Object) -> Result<Option<Vec<u8>>> {
    let bad = |_| err(CKR_GENERAL_ERROR);
    let private = match obj.class() {
        CKO_PUBLIC_KEY => false,
        CKO_PRIVATE_KEY => true,
        _ => return Ok(None),
    };
    let (oid, params, key): (ObjectIdentifier, Option<Vec<u8>>, Vec<u8>) = match obj.ulong(CKA_KEY_TYPE) {
        Some(CKK_RSA) => {
            let (Some(n), Some(e)) = (obj.get(CKA_MODULUS), obj.get(CKA_PUBLIC_EXPONENT)) else {
                return Ok(None);
            };
            let k = pkcs1::RsaPublicKey {
                modulus: pkcs1::UintRef::new(n).map_err(bad)?,
                public_exponent: pkcs1::UintRef::new(e).map_err(bad)?,
            };
            (RSA_ENCRYPTION, Some(DER_NULL.to_vec()), k.to_der().map_err(bad)?)
        }
        Some(CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY) => {
            let curve = Curve::of_key(obj)?;
            let point = if private {
                match curve {
                    Curve::Ed25519 => crate::mechanisms::eddsa::public_key(obj)?,
                    Curve::X25519 => public_point(curve, obj.get(CKA_VALUE).unwrap_or(&[]))?,
                    _ => public_point(curve, &scalar(obj, curve)?)?,
                }
            } else {
                curve.point(obj.get(CKA_EC_POINT).unwrap_or(&[]))?.to_vec()
            };
            match curve {
                Curve::Ed25519 => (ED25519, None, point),
                Curve::X25519 => (X25519, None, point),
                _ => (EC_PUBLIC_KEY, Some(obj.get(CKA_EC_PARAMS).unwrap_or(&[]).to_vec()), point),
            }
        }
        _ => return Ok(None),
    };
    let parameters = params.as_deref().map(AnyRef::from_der).transpose().map_err(bad)?;
    let info = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef { oid, parameters },
        subject_public_key: BitStringRef::from_bytes(&key).map_err(bad)?,
    };
    Ok(Some(info.to_der().map_err(bad)?))
}
