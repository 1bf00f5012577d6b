//! Elliptic-curve keys over prime fields (`CKK_EC`), and the curve encodings the Edwards and
//! Montgomery key types (`edwards.rs`, `montgomery.rs`) share with them: `CKA_EC_PARAMS` as a DER
//! named-curve OID (or the PrintableString curve name some applications write) and `CKA_EC_POINT`
//! as a DER OCTET STRING (a raw point is accepted as well). The operations (ECDSA, ECDH) are
//! `mechanisms::ec`'s.

use super::{attr, KeyPair, KeyParts, KeyType, Pkcs8, BASE};
use crate::crypto::ecdh as agreement;
use crate::crypto::ecdsa::{self as ffi, SigningKey};
use crate::error::{err, Result};
use crate::object::attrs::{s, Kind::*, Spec, FIXED, REQ_CREATE, SECRET};
use crate::object::Object;
use crate::policy::KeyInfo;
use cryptoki_sys::*;
use pkcs8::der::asn1::{OctetStringRef, PrintableStringRef};
use pkcs8::der::{Decode, Encode};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::ObjectIdentifier;
use zeroize::Zeroizing;

/// EC, Edwards and Montgomery public keys share their attributes.
pub const PUBLIC: &[Spec] = &[s(CKA_EC_PARAMS, Bytes, REQ_CREATE | FIXED), s(CKA_EC_POINT, Bytes, REQ_CREATE | FIXED)];

pub const PRIVATE: &[Spec] =
    &[s(CKA_EC_PARAMS, Bytes, REQ_CREATE | FIXED), s(CKA_VALUE, Bytes, REQ_CREATE | FIXED | SECRET)];

/// What the three curve key types (EC, Edwards, Montgomery) share: the attribute rows of
/// `CKA_EC_PARAMS` and `CKA_EC_POINT`/`CKA_VALUE`, the computed attributes and the policy's
/// measure (the named curve).
pub(super) const CURVE_KEY: KeyType =
    KeyType { public: Some(PUBLIC), private: Some(PRIVATE), computed, key_info, ..BASE };

pub const EC: KeyType = KeyType {
    name: "EC",
    public_key_info,
    public_key_info_matches,
    approved: |_, k| matches!(k.curve, Some("secp256r1" | "secp384r1" | "secp521r1")),
    pkcs8: Some(Pkcs8 { reads_oid: |o| o == EC_PUBLIC_KEY, read: read_pkcs8, encode: encode_pkcs8 }),
    pairwise,
    ..CURVE_KEY
};

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_P224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.33");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const OID_BRAINPOOL_P256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");
const OID_BRAINPOOL_P384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.11");
const OID_BRAINPOOL_P512R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.13");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The curves Tessera implements. Anything else (Ed448, X448, explicit parameters …) is
/// `CKR_CURVE_NOT_SUPPORTED`; no curve is ever substituted for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    P224,
    Secp256k1,
    BrainpoolP256r1,
    BrainpoolP384r1,
    BrainpoolP512r1,
    Ed25519,
    X25519,
}

impl Curve {
    /// Reads `CKA_EC_PARAMS`: a DER OBJECT IDENTIFIER naming the curve, or a DER PrintableString
    /// with its name. Undecodable bytes are `CKR_DOMAIN_PARAMS_INVALID`; a well-formed encoding of
    /// a curve Tessera does not implement is `CKR_CURVE_NOT_SUPPORTED`.
    pub fn from_params(params: &[u8]) -> Result<Curve> {
        if let Ok(oid) = ObjectIdentifier::from_der(params) {
            return match oid {
                o if o == OID_P256 => Ok(Curve::P256),
                o if o == OID_P384 => Ok(Curve::P384),
                o if o == OID_P521 => Ok(Curve::P521),
                o if o == OID_P224 => Ok(Curve::P224),
                o if o == OID_SECP256K1 => Ok(Curve::Secp256k1),
                o if o == OID_BRAINPOOL_P256R1 => Ok(Curve::BrainpoolP256r1),
                o if o == OID_BRAINPOOL_P384R1 => Ok(Curve::BrainpoolP384r1),
                o if o == OID_BRAINPOOL_P512R1 => Ok(Curve::BrainpoolP512r1),
                o if o == OID_ED25519 => Ok(Curve::Ed25519),
                o if o == OID_X25519 => Ok(Curve::X25519),
                _ => Err(err(CKR_CURVE_NOT_SUPPORTED)),
            };
        }
        if let Ok(name) = PrintableStringRef::from_der(params) {
            return match name.as_str() {
                "prime256v1" | "secp256r1" => Ok(Curve::P256),
                "secp384r1" => Ok(Curve::P384),
                "secp521r1" => Ok(Curve::P521),
                "secp224r1" => Ok(Curve::P224),
                "secp256k1" => Ok(Curve::Secp256k1),
                "brainpoolP256r1" => Ok(Curve::BrainpoolP256r1),
                "brainpoolP384r1" => Ok(Curve::BrainpoolP384r1),
                "brainpoolP512r1" => Ok(Curve::BrainpoolP512r1),
                "edwards25519" => Ok(Curve::Ed25519),
                "curve25519" => Ok(Curve::X25519),
                _ => Err(err(CKR_CURVE_NOT_SUPPORTED)),
            };
        }
        // A SEQUENCE is explicit curve parameters: well-formed, but not a named curve we offer.
        if params.first() == Some(&0x30) {
            return Err(err(CKR_CURVE_NOT_SUPPORTED));
        }
        Err(err(CKR_DOMAIN_PARAMS_INVALID))
    }

    /// The curve of a key object, checked against its key type.
    pub fn of_key(key: &Object) -> Result<Curve> {
        let params = key.get(CKA_EC_PARAMS).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
        let curve = Curve::from_params(params)?;
        if key.ulong(CKA_KEY_TYPE) != Some(curve.key_type()) {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        Ok(curve)
    }

    /// The curve's usual name (as `policy/*.toml` writes it), whatever form `CKA_EC_PARAMS` took.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "secp256r1",
            Curve::P384 => "secp384r1",
            Curve::P521 => "secp521r1",
            Curve::P224 => "secp224r1",
            Curve::Secp256k1 => "secp256k1",
            Curve::BrainpoolP256r1 => "brainpoolP256r1",
            Curve::BrainpoolP384r1 => "brainpoolP384r1",
            Curve::BrainpoolP512r1 => "brainpoolP512r1",
            Curve::Ed25519 => "ed25519",
            Curve::X25519 => "x25519",
        }
    }

    /// The PKCS#11 key type of keys on this curve.
    pub fn key_type(self) -> CK_KEY_TYPE {
        match self {
            Curve::Ed25519 => CKK_EC_EDWARDS,
            Curve::X25519 => CKK_EC_MONTGOMERY,
            _ => CKK_EC,
        }
    }

    /// Field size in bytes: the length of a private scalar, of one point coordinate and of each
    /// half of an ECDSA signature.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P224 => 28,
            Curve::P256 | Curve::Secp256k1 | Curve::BrainpoolP256r1 => 32,
            Curve::P384 | Curve::BrainpoolP384r1 => 48,
            Curve::BrainpoolP512r1 => 64,
            Curve::P521 => 66,
            Curve::Ed25519 | Curve::X25519 => 32,
        }
    }

    pub fn nid(self) -> Result<i32> {
        match self {
            Curve::P256 => Ok(ffi::NID_P256),
            Curve::P384 => Ok(ffi::NID_P384),
            Curve::P521 => Ok(ffi::NID_P521),
            Curve::P224 => Ok(ffi::NID_P224),
            Curve::Secp256k1 => Ok(ffi::NID_SECP256K1),
            Curve::BrainpoolP256r1 => Ok(ffi::NID_BRAINPOOL_P256R1),
            Curve::BrainpoolP384r1 => Ok(ffi::NID_BRAINPOOL_P384R1),
            Curve::BrainpoolP512r1 => Ok(ffi::NID_BRAINPOOL_P512R1),
            Curve::Ed25519 | Curve::X25519 => Err(err(CKR_CURVE_NOT_SUPPORTED)),
        }
    }

    /// The aws-lc-rs algorithm of the curve, where aws-lc-rs has one (the NIST curves of the
    /// approved mode and X25519); the other prime curves go through `crypto::ecdsa`.
    pub fn agreement(self) -> Option<&'static agreement::Algorithm> {
        match self {
            Curve::P256 => Some(&agreement::ECDH_P256),
            Curve::P384 => Some(&agreement::ECDH_P384),
            Curve::P521 => Some(&agreement::ECDH_P521),
            Curve::Ed25519 | Curve::X25519 => Some(&agreement::X25519),
            _ => None,
        }
    }

    pub fn is_prime(self) -> bool {
        !matches!(self, Curve::Ed25519 | Curve::X25519)
    }

    /// Whether `p` has the shape of a public point on this curve: SEC 1 uncompressed (`04‖X‖Y`)
    /// or compressed (`02|03‖X`) for the prime curves, 32 raw bytes for the 25519 curves.
    fn point_shape(self, p: &[u8]) -> bool {
        let n = self.field_len();
        match self {
            Curve::Ed25519 | Curve::X25519 => p.len() == 32,
            _ => (p.len() == 1 + 2 * n && p[0] == 4) || (p.len() == 1 + n && matches!(p[0], 2 | 3)),
        }
    }

    /// A public point given either as a DER OCTET STRING (`CKA_EC_POINT`'s encoding) or raw.
    pub fn point(self, bytes: &[u8]) -> Result<&[u8]> {
        if let Ok(os) = OctetStringRef::from_der(bytes) {
            if self.point_shape(os.as_bytes()) {
                return Ok(os.as_bytes());
            }
        }
        if self.point_shape(bytes) {
            return Ok(bytes);
        }
        Err(err(CKR_KEY_TYPE_INCONSISTENT))
    }
}

/// Encodes a public point as `CKA_EC_POINT`: a DER OCTET STRING.
pub fn ec_point(raw: &[u8]) -> Result<Vec<u8>> {
    OctetStringRef::new(raw).and_then(|o| o.to_der()).map_err(|_| err(CKR_GENERAL_ERROR))
}

/// The private scalar (`CKA_VALUE`) as exactly `field_len` big-endian bytes. Shorter values (an
/// importer that dropped leading zeros) are padded; longer ones only lose leading zeros.
pub fn scalar(key: &Object, curve: Curve) -> Result<Zeroizing<Vec<u8>>> {
    let v = key.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
    let n = curve.field_len();
    let mut out = Zeroizing::new(vec![0u8; n]);
    if v.len() <= n {
        out[n - v.len()..].copy_from_slice(v);
    } else {
        let (extra, rest) = v.split_at(v.len() - n);
        if extra.iter().any(|b| *b != 0) {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        out.copy_from_slice(rest);
    }
    Ok(out)
}

/// The public point a private key object implies (raw: SEC 1 uncompressed for the prime curves,
/// 32 bytes for X25519), for the key-agreement pairwise-consistency test (SP 800-56A rev. 3,
/// §5.6.2.1.4).
pub fn implied_public(private: &Object) -> Result<Vec<u8>> {
    let curve = Curve::of_key(private)?;
    if curve == Curve::Ed25519 {
        return Err(err(CKR_CURVE_NOT_SUPPORTED));
    }
    let d = match curve {
        Curve::X25519 => Zeroizing::new(private.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?.to_vec()),
        _ => scalar(private, curve)?,
    };
    public_point(curve, &d)
}

/// The public point of private scalar `d` on an ECDH-capable curve (raw, as [`implied_public`]).
pub fn public_point(curve: Curve, d: &[u8]) -> Result<Vec<u8>> {
    let Some(alg) = curve.agreement() else {
        let k = SigningKey::new(curve.nid()?, curve.field_len(), d).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
        return k.public_point().ok_or(err(CKR_KEY_TYPE_INCONSISTENT));
    };
    let k = agreement::PrivateKey::from_private_key(alg, d).map_err(|_| err(CKR_KEY_TYPE_INCONSISTENT))?;
    Ok(k.compute_public_key().map_err(|_| err(CKR_KEY_TYPE_INCONSISTENT))?.as_ref().to_vec())
}

/// The key attributes of the curve families: only curves Tessera implements, in the key type that
/// fits them, with a public point of the curve's shape. (EC, Edwards and Montgomery keys.)
pub fn computed(obj: &mut Object, sub: CK_KEY_TYPE) -> Result<()> {
    let curve = Curve::from_params(obj.get(CKA_EC_PARAMS).unwrap_or(&[]))?;
    if curve.key_type() != sub {
        return Err(err(CKR_TEMPLATE_INCONSISTENT));
    }
    if let Some(point) = obj.get(CKA_EC_POINT) {
        curve.point(point).map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
    }
    Ok(())
}

/// The public point of a key object: its `CKA_EC_POINT`, or the one its private value implies.
fn point_of(obj: &Object, curve: Curve, private: bool) -> Result<Vec<u8>> {
    Ok(if private { public_point(curve, &scalar(obj, curve)?)? } else { stored_point(obj, curve)? })
}

/// The raw public point of a public key object.
pub fn stored_point(obj: &Object, curve: Curve) -> Result<Vec<u8>> {
    Ok(curve.point(obj.get(CKA_EC_POINT).unwrap_or(&[]))?.to_vec())
}

/// id-ecPublicKey with the curve's `CKA_EC_PARAMS`.
fn public_key_info(obj: &Object, private: bool) -> Result<Option<KeyParts>> {
    let curve = Curve::of_key(obj)?;
    let point = point_of(obj, curve, private)?;
    Ok(Some((EC_PUBLIC_KEY, Some(obj.get(CKA_EC_PARAMS).unwrap_or(&[]).to_vec()), point)))
}

fn public_key_info_matches(obj: &Object, spki: &SubjectPublicKeyInfoRef<'_>, key: &[u8]) -> Result<bool> {
    let bad = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    let oid = spki.algorithm.oid.to_string();
    let curve = Curve::of_key(obj).map_err(|_| bad())?;
    let expected = public_point(curve, &scalar(obj, curve)?).map_err(|_| bad())?;
    let params = spki.algorithm.parameters.map(|p| p.to_der()).transpose().map_err(|_| bad())?;
    let alg_ok = oid == "1.2.840.10045.2.1" && params.as_deref() == obj.get(CKA_EC_PARAMS);
    Ok(alg_ok && point_matches(key, &expected))
}

/// Whether a SubjectPublicKeyInfo's key is the `expected` point. A prime-curve point may be given
/// compressed: its x and the parity of its y.
pub fn point_matches(key: &[u8], expected: &[u8]) -> bool {
    key == expected
        || (expected.len() > 1
            && expected[0] == 4
            && key.len() == 1 + (expected.len() - 1) / 2
            && key[0] == 2 + (expected[expected.len() - 1] & 1)
            && key[1..] == expected[1..key.len()])
}

/// The named curve of a key (EC, Edwards and Montgomery keys).
pub fn key_info(obj: &Object) -> KeyInfo {
    let p = obj.get(CKA_EC_PARAMS).unwrap_or(&[]);
    KeyInfo { bits: None, curve: Curve::from_params(p).ok().map(|c| c.name()) }
}

fn read_pkcs8(alg: &AlgorithmIdentifierRef<'_>, der: &[u8]) -> std::result::Result<KeyPair, String> {
    let curve = alg.parameters_oid().map_err(|_| "EC key without a named curve")?;
    let params = curve.to_der().map_err(|e| e.to_string())?;
    let c = Curve::from_params(&params).ok().filter(|c| c.key_type() == CKK_EC);
    let c = c.ok_or_else(|| format!("unsupported curve {curve}"))?;
    let k = sec1::EcPrivateKey::from_der(der).map_err(|e| format!("EC key: {e}"))?;
    let point = match k.public_key {
        Some(p) => p.to_vec(),
        None => public_point(c, k.private_key).map_err(|_| "invalid EC private key")?,
    };
    let public = vec![(CKA_EC_PARAMS, params.clone().into()), (CKA_EC_POINT, octet_string(&point)?.into())];
    let private = vec![(CKA_EC_PARAMS, params.into()), (CKA_VALUE, k.private_key.to_vec().into())];
    Ok(KeyPair { key_type: CKK_EC, private, public })
}

fn encode_pkcs8(obj: &Object) -> std::result::Result<KeyParts, String> {
    let get = |t| attr(obj, t);
    let e = |e: pkcs8::der::Error| e.to_string();
    let k = sec1::EcPrivateKey { private_key: get(CKA_VALUE)?, parameters: None, public_key: None };
    Ok((EC_PUBLIC_KEY, Some(get(CKA_EC_PARAMS)?.to_vec()), k.to_der().map_err(e)?))
}

/// A DER OCTET STRING (`CKA_EC_POINT` of an imported key).
pub fn octet_string(v: &[u8]) -> std::result::Result<Vec<u8>, String> {
    OctetStringRef::new(v).and_then(|o| o.to_der()).map_err(|e| e.to_string())
}

/// A pair that may sign signs and verifies; a key-agreement pair (its private key may not sign)
/// has the public key its private key implies.
fn pairwise(public: &Object, private: &Object, healthy: bool) -> std::result::Result<(), String> {
    if private.flag(CKA_SIGN) {
        super::signs_and_verifies(CKM_ECDSA_SHA256, public, private, healthy)
    } else {
        agreement_consistent(public, private, healthy)
    }
}

/// The pairwise-consistency test of a key-agreement pair (SP 800-56A rev. 3, §5.6.2.1.4): the
/// public key is the one the private key implies.
pub fn agreement_consistent(public: &Object, private: &Object, healthy: bool) -> std::result::Result<(), String> {
    let implied = implied_public(private).map_err(|e| format!("private key: {e}"))?;
    let point = public.get(CKA_EC_POINT).ok_or("public key without CKA_EC_POINT")?;
    let curve = Curve::of_key(public).map_err(|e| format!("public key: {e}"))?;
    let stored = curve.point(point).map_err(|e| format!("public point: {e}"))?;
    if !healthy || implied != stored {
        return Err("the public key is not the one the private key implies".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_forms() {
        let oid = OID_P384.to_der().expect("der");
        assert_eq!(Curve::from_params(&oid), Ok(Curve::P384));
        let name = PrintableStringRef::new("prime256v1").and_then(|s| s.to_der()).expect("der");
        assert_eq!(Curve::from_params(&name), Ok(Curve::P256));
        let ed448 = ObjectIdentifier::new_unwrap("1.3.101.113").to_der().expect("der");
        assert_eq!(Curve::from_params(&ed448), Err(err(CKR_CURVE_NOT_SUPPORTED)));
        assert_eq!(Curve::from_params(&[0xff, 0x00]), Err(err(CKR_DOMAIN_PARAMS_INVALID)));
        assert_eq!(Curve::from_params(&[]), Err(err(CKR_DOMAIN_PARAMS_INVALID)));
    }

    #[test]
    fn point_forms() {
        let mut raw = vec![4u8; 65];
        raw[1] = 0x41;
        let der = ec_point(&raw).expect("der");
        assert_eq!(Curve::P256.point(&der), Ok(&raw[..]));
        assert_eq!(Curve::P256.point(&raw), Ok(&raw[..]));
        assert!(Curve::P384.point(&raw).is_err());
        // A raw Ed25519 key that happens to look like an OCTET STRING header stays raw.
        let mut ed = vec![7u8; 32];
        ed[0] = 4;
        ed[1] = 30;
        assert_eq!(Curve::Ed25519.point(&ed), Ok(&ed[..]));
    }
}
