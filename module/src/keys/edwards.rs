//! Edwards-curve keys (`CKK_EC_EDWARDS`): Ed25519, as RFC 8410 and PKCS#11 3.x encode them:
//! `CKA_EC_PARAMS` the curve's OID, `CKA_EC_POINT` the 32-byte public key in a DER OCTET STRING,
//! private `CKA_VALUE` the 32-byte seed. The curve encodings are `ec.rs`'s; the signatures are
//! `mechanisms::eddsa`'s.

use super::ec::{octet_string, point_matches, stored_point, Curve};
use super::{attr, KeyPair, KeyParts, KeyType, Pkcs8};
use crate::crypto::ed25519::Ed25519KeyPair;
use crate::error::{err, Result};
use crate::object::Object;
use cryptoki_sys::*;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::{Decode, Encode};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::ObjectIdentifier;

pub const EDWARDS: KeyType = KeyType {
    name: "EC Edwards",
    public_key_info,
    public_key_info_matches,
    approved: |_, k| k.curve == Some("ed25519"),
    pkcs8: Some(Pkcs8 { reads_oid: |o| o == ED25519, read: read_pkcs8, encode: encode_pkcs8 }),
    pairwise: |public, private, healthy| super::signs_and_verifies(CKM_EDDSA, public, private, healthy),
    ..super::ec::CURVE_KEY
};

const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The public key (32 bytes) of an Ed25519 private key object.
pub fn public_key(key: &Object) -> Result<Vec<u8>> {
    let seed = key.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
    let kp = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| err(CKR_KEY_TYPE_INCONSISTENT))?;
    Ok(crate::crypto::ed25519::KeyPair::public_key(&kp).as_ref().to_vec())
}

/// id-Ed25519 (no parameters) with the 32-byte public key.
fn public_key_info(obj: &Object, private: bool) -> Result<Option<KeyParts>> {
    let curve = Curve::of_key(obj)?;
    let point = if private { public_key(obj)? } else { stored_point(obj, curve)? };
    Ok(Some((ED25519, None, point)))
}

fn public_key_info_matches(obj: &Object, spki: &SubjectPublicKeyInfoRef<'_>, key: &[u8]) -> Result<bool> {
    let bad = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    let oid = spki.algorithm.oid.to_string();
    Curve::of_key(obj).map_err(|_| bad())?;
    let expected = public_key(obj).map_err(|_| bad())?;
    spki.algorithm.parameters.map(|p| p.to_der()).transpose().map_err(|_| bad())?;
    Ok(oid == "1.3.101.112" && point_matches(key, &expected))
}

fn read_pkcs8(_: &AlgorithmIdentifierRef<'_>, der: &[u8]) -> std::result::Result<KeyPair, String> {
    let seed = OctetStringRef::from_der(der).map_err(|e| format!("Ed25519 key: {e}"))?;
    let kp = Ed25519KeyPair::from_seed_unchecked(seed.as_bytes()).map_err(|_| "invalid Ed25519 private key")?;
    let point = crate::crypto::ed25519::KeyPair::public_key(&kp).as_ref().to_vec();
    let params = ED25519.to_der().map_err(|e| e.to_string())?;
    let public = vec![(CKA_EC_PARAMS, params.clone().into()), (CKA_EC_POINT, octet_string(&point)?.into())];
    let private = vec![(CKA_EC_PARAMS, params.into()), (CKA_VALUE, seed.as_bytes().to_vec().into())];
    Ok(KeyPair { key_type: CKK_EC_EDWARDS, private, public })
}

fn encode_pkcs8(obj: &Object) -> std::result::Result<KeyParts, String> {
    let e = |e: pkcs8::der::Error| e.to_string();
    Ok((ED25519, None, OctetStringRef::new(attr(obj, CKA_VALUE)?).map_err(e)?.to_der().map_err(e)?))
}
