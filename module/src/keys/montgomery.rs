//! Montgomery-curve keys (`CKK_EC_MONTGOMERY`): X25519, as RFC 8410 and PKCS#11 3.x encode them:
//! `CKA_EC_PARAMS` the curve's OID, `CKA_EC_POINT` the 32-byte public key in a DER OCTET STRING,
//! private `CKA_VALUE` the 32-byte scalar. The curve encodings are `ec.rs`'s; the agreement is
//! `CKM_ECDH1_DERIVE` in `mechanisms::ec`. Never approved; no PKCS#8 encoding here.

use super::ec::{point_matches, public_point, stored_point, Curve};
use super::{KeyParts, KeyType};
use crate::error::{err, Result};
use crate::object::Object;
use cryptoki_sys::*;
use pkcs8::der::Encode;
use pkcs8::spki::SubjectPublicKeyInfoRef;
use pkcs8::ObjectIdentifier;

pub const MONTGOMERY: KeyType = KeyType {
    name: "EC Montgomery",
    public_key_info,
    public_key_info_matches,
    approved: |_, _| false,
    pairwise: super::ec::agreement_consistent,
    ..super::ec::CURVE_KEY
};

const X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");

/// id-X25519 (no parameters) with the 32-byte public key.
fn public_key_info(obj: &Object, private: bool) -> Result<Option<KeyParts>> {
    let curve = Curve::of_key(obj)?;
    let point =
        if private { public_point(curve, obj.get(CKA_VALUE).unwrap_or(&[]))? } else { stored_point(obj, curve)? };
    Ok(Some((X25519, None, point)))
}

fn public_key_info_matches(obj: &Object, spki: &SubjectPublicKeyInfoRef<'_>, key: &[u8]) -> Result<bool> {
    let bad = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    let oid = spki.algorithm.oid.to_string();
    let curve = Curve::of_key(obj).map_err(|_| bad())?;
    let expected = public_point(curve, obj.get(CKA_VALUE).unwrap_or(&[])).map_err(|_| bad())?;
    spki.algorithm.parameters.map(|p| p.to_der()).transpose().map_err(|_| bad())?;
    Ok(oid == "1.3.101.110" && point_matches(key, &expected))
}
