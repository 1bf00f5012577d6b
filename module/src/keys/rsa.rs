//! RSA keys (`CKK_RSA`): their attributes, encodings (SubjectPublicKeyInfo, PKCS#8 with a PKCS#1
//! RSAPrivateKey), the aws-lc keys made from an object's components, and the pairwise-consistency
//! tests of a new pair. The operations are `mechanisms::rsa`'s.

use super::{attr, KeyPair, KeyParts, KeyType, Pkcs8, BASE};
use crate::crypto::digest;
use crate::crypto::rsa::{Hash, PrivateParts, Rsa as Key};
use crate::error::{err, Result};
use crate::object::attrs::{s, Kind::*, Spec, FIXED, REQ_CREATE, SECRET};
use crate::object::template::without_leading_zeros;
use crate::object::{ulong, Kept, Object};
use crate::policy::KeyInfo;
use cryptoki_sys::*;
use pkcs8::der::{Decode, Encode};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::ObjectIdentifier;
use std::sync::Arc;

pub const PUBLIC: &[Spec] = &[
    s(CKA_MODULUS, Bytes, REQ_CREATE | FIXED),
    s(CKA_MODULUS_BITS, Ulong, FIXED),
    s(CKA_PUBLIC_EXPONENT, Bytes, REQ_CREATE | FIXED),
];

pub const PRIVATE: &[Spec] = &[
    s(CKA_MODULUS, Bytes, REQ_CREATE | FIXED),
    s(CKA_PUBLIC_EXPONENT, Bytes, FIXED),
    s(CKA_PRIVATE_EXPONENT, Bytes, REQ_CREATE | FIXED | SECRET),
    s(CKA_PRIME_1, Bytes, FIXED | SECRET),
    s(CKA_PRIME_2, Bytes, FIXED | SECRET),
    s(CKA_EXPONENT_1, Bytes, FIXED | SECRET),
    s(CKA_EXPONENT_2, Bytes, FIXED | SECRET),
    s(CKA_COEFFICIENT, Bytes, FIXED | SECRET),
];

pub const RSA: KeyType = KeyType {
    name: "RSA",
    public: Some(PUBLIC),
    private: Some(PRIVATE),
    computed,
    public_key_info,
    public_key_info_matches,
    key_info,
    approved: |_, k| k.bits.is_some_and(|b| b >= 2048),
    pkcs8: Some(Pkcs8 { reads_oid: |o| o == RSA_ENCRYPTION, read: read_pkcs8, encode: encode_pkcs8 }),
    pairwise,
    ..BASE
};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// The DER of an ASN.1 NULL: rsaEncryption's parameters (RFC 3279 §2.3.1).
const DER_NULL: &[u8] = &[0x05, 0x00];

/// Smallest and largest modulus (bits) of keys the operations accept.
pub const MIN_BITS: usize = 1024;
pub const MAX_BITS: usize = 16384;

/// `CKA_MODULUS_BITS` of a public key follows from its modulus; a private key given with its
/// primes but without the other CRT values (as SoftHSM v1's keys come) gets them computed.
fn computed(obj: &mut Object, _: CK_KEY_TYPE) -> Result<()> {
    if obj.class() == CKO_PRIVATE_KEY {
        let crt = [CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT];
        let given = |t| obj.get(t).is_some_and(|v| !v.is_empty());
        if given(CKA_PRIME_1) && given(CKA_PRIME_2) && crt.iter().all(|t| !given(*t)) {
            let part = |t| obj.get(t).unwrap_or(&[]);
            let values =
                crate::crypto::rsa::crt_values(part(CKA_PRIME_1), part(CKA_PRIME_2), part(CKA_PRIVATE_EXPONENT))
                    .ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))?;
            for (t, v) in crt.into_iter().zip(values) {
                obj.attrs.insert(t, v.to_vec().into());
            }
        }
        return Ok(());
    }
    if obj.class() != CKO_PUBLIC_KEY {
        return Ok(());
    }
    let m = obj.get(CKA_MODULUS).unwrap_or(&[]);
    let lead = m.iter().position(|b| *b != 0).unwrap_or(m.len());
    let bits = match m.get(lead) {
        Some(b) => (m.len() - lead - 1) * 8 + (8 - b.leading_zeros() as usize),
        None => 0,
    } as CK_ULONG;
    if let Some(given) = obj.ulong(CKA_MODULUS_BITS) {
        if given != bits {
            return Err(err(CKR_TEMPLATE_INCONSISTENT));
        }
    }
    obj.attrs.insert(CKA_MODULUS_BITS, ulong(bits));
    Ok(())
}

/// rsaEncryption with the modulus and public exponent; `None` for a private key stored without
/// its public exponent (which cannot be computed from what it has).
fn public_key_info(obj: &Object, _private: bool) -> Result<Option<KeyParts>> {
    let bad = |_| err(CKR_GENERAL_ERROR);
    let (Some(n), Some(e)) = (obj.get(CKA_MODULUS), obj.get(CKA_PUBLIC_EXPONENT)) else {
        return Ok(None);
    };
    let k = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(n).map_err(bad)?,
        public_exponent: pkcs1::UintRef::new(e).map_err(bad)?,
    };
    Ok(Some((RSA_ENCRYPTION, Some(DER_NULL.to_vec()), k.to_der().map_err(bad)?)))
}

fn public_key_info_matches(obj: &Object, spki: &SubjectPublicKeyInfoRef<'_>, key: &[u8]) -> Result<bool> {
    let bad = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    let oid = spki.algorithm.oid.to_string();
    let k = pkcs1::RsaPublicKey::from_der(key).map_err(|_| bad())?;
    Ok(oid == "1.2.840.113549.1.1.1"
        && without_leading_zeros(k.modulus.as_bytes()) == without_leading_zeros(obj.get(CKA_MODULUS).unwrap_or(&[]))
        && without_leading_zeros(k.public_exponent.as_bytes())
            == without_leading_zeros(obj.get(CKA_PUBLIC_EXPONENT).unwrap_or(&[])))
}

/// The modulus size in bits.
fn key_info(obj: &Object) -> KeyInfo {
    let bits_of = |v: &[u8]| {
        let lead = v.iter().position(|b| *b != 0).unwrap_or(v.len());
        v.get(lead).map(|b| ((v.len() - lead - 1) * 8 + 8 - b.leading_zeros() as usize) as u32)
    };
    KeyInfo { bits: obj.get(CKA_MODULUS).and_then(bits_of), curve: None }
}

fn read_pkcs8(_: &AlgorithmIdentifierRef<'_>, der: &[u8]) -> std::result::Result<KeyPair, String> {
    let k = pkcs1::RsaPrivateKey::from_der(der).map_err(|e| format!("RSA key: {e}"))?;
    let b = |u: pkcs1::UintRef<'_>| -> crate::object::Value { u.as_bytes().to_vec().into() };
    let public = vec![(CKA_MODULUS, b(k.modulus)), (CKA_PUBLIC_EXPONENT, b(k.public_exponent))];
    let private = vec![
        (CKA_MODULUS, b(k.modulus)),
        (CKA_PUBLIC_EXPONENT, b(k.public_exponent)),
        (CKA_PRIVATE_EXPONENT, b(k.private_exponent)),
        (CKA_PRIME_1, b(k.prime1)),
        (CKA_PRIME_2, b(k.prime2)),
        (CKA_EXPONENT_1, b(k.exponent1)),
        (CKA_EXPONENT_2, b(k.exponent2)),
        (CKA_COEFFICIENT, b(k.coefficient)),
    ];
    Ok(KeyPair { key_type: CKK_RSA, private, public })
}

fn encode_pkcs8(obj: &Object) -> std::result::Result<KeyParts, String> {
    let get = |t| attr(obj, t);
    let e = |e: pkcs8::der::Error| e.to_string();
    let u = |t| get(t).and_then(|v| pkcs1::UintRef::new(v).map_err(e));
    let k = pkcs1::RsaPrivateKey {
        modulus: u(CKA_MODULUS)?,
        public_exponent: u(CKA_PUBLIC_EXPONENT)?,
        private_exponent: u(CKA_PRIVATE_EXPONENT)?,
        prime1: u(CKA_PRIME_1)?,
        prime2: u(CKA_PRIME_2)?,
        exponent1: u(CKA_EXPONENT_1)?,
        exponent2: u(CKA_EXPONENT_2)?,
        coefficient: u(CKA_COEFFICIENT)?,
        other_prime_infos: None,
    };
    Ok((RSA_ENCRYPTION, Some(vec![0x05, 0x00]), k.to_der().map_err(e)?))
}

/// The pair signs and verifies, and OAEP decryption inverts encryption.
fn pairwise(public: &Object, private: &Object, healthy: bool) -> std::result::Result<(), String> {
    super::signs_and_verifies(CKM_SHA256_RSA_PKCS, public, private, healthy)?;
    let reg = crate::mechanisms::registry();
    let msg = super::PCT_MESSAGE;
    let m = reg.get(CKM_RSA_PKCS_OAEP).map_err(|_| "no RSA-OAEP for the test".to_string())?;
    let param = crate::mechanisms::rsa::oaep_sha256_param();
    let mut e = m.encrypt(&param, public).map_err(|e| format!("encrypt: {e}"))?;
    let mut ct = e.update(msg).map_err(|e| format!("encrypt: {e}"))?;
    ct.extend(e.finish().map_err(|e| format!("encrypt: {e}"))?);
    let mut d = m.decrypt(&param, private).map_err(|e| format!("decrypt: {e}"))?;
    let mut pt = d.update(&ct).map_err(|e| format!("decrypt: {e}"))?;
    pt.extend(d.finish().map_err(|e| format!("decrypt: {e}"))?);
    if pt != msg {
        return Err("RSA decryption does not invert encryption".into());
    }
    Ok(())
}

/// Pair-wise consistency test of a key the mechanism generates: a PKCS#1 v1.5 signature that the
/// public operation turns back into the expected block.
pub fn pairwise_consistent(key: &Key) -> bool {
    let mut t = Hash::Sha256.digest_info_prefix().to_vec();
    t.extend_from_slice(digest::digest(&digest::SHA256, b"Tessera pair-wise consistency test").as_ref());
    let Some(sig) = key.sign_pkcs1(&t) else { return false };
    let k = key.size();
    let mut em = vec![0x00, 0x01];
    em.resize(k - t.len() - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(&t);
    key.public_raw(&sig).is_some_and(|got| got == em)
}

/// A big-integer attribute, absent when empty.
pub fn component(obj: &Object, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    obj.get(ty).filter(|v| !v.is_empty())
}

fn check_size(key: Key) -> Result<Key> {
    if (MIN_BITS..=MAX_BITS).contains(&key.bits()) {
        Ok(key)
    } else {
        Err(err(CKR_KEY_SIZE_RANGE))
    }
}

/// The aws-lc key of a public-key object.
/// The parsed public key of an object (parsed once per object).
pub fn public_key(obj: &Object) -> Result<Arc<Kept<Key>>> {
    obj.parsed(|| parse_public_key(obj))
}

/// The parsed private key of an object (parsed, and checked by aws-lc, once per object).
pub fn private_key(obj: &Object) -> Result<Arc<Kept<Key>>> {
    obj.parsed(|| parse_private_key(obj))
}

fn parse_public_key(obj: &Object) -> Result<Key> {
    if obj.class() != CKO_PUBLIC_KEY {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    let n = component(obj, CKA_MODULUS).ok_or(err(CKR_FUNCTION_FAILED))?;
    let e = component(obj, CKA_PUBLIC_EXPONENT).ok_or(err(CKR_FUNCTION_FAILED))?;
    check_bits_of(n)?;
    check_size(Key::public(n, e).ok_or(err(CKR_FUNCTION_FAILED))?)
}

/// The aws-lc key of a private-key object: with CRT components when it has them all.
fn parse_private_key(obj: &Object) -> Result<Key> {
    if obj.class() != CKO_PRIVATE_KEY {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    let n = component(obj, CKA_MODULUS).ok_or(err(CKR_FUNCTION_FAILED))?;
    let d = component(obj, CKA_PRIVATE_EXPONENT).ok_or(err(CKR_FUNCTION_FAILED))?;
    check_bits_of(n)?;
    let crt = [CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT].map(|t| component(obj, t));
    let crt = match crt {
        [Some(p), Some(q), Some(dp), Some(dq), Some(qi)] => Some([p, q, dp, dq, qi]),
        _ => None,
    };
    let parts = PrivateParts { e: component(obj, CKA_PUBLIC_EXPONENT), d, crt };
    check_size(Key::private(n, &parts).ok_or(err(CKR_FUNCTION_FAILED))?)
}

/// Refuses absurd moduli before any arithmetic.
fn check_bits_of(n: &[u8]) -> Result<()> {
    let lead = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    if n.len() - lead > MAX_BITS / 8 {
        return Err(err(CKR_KEY_SIZE_RANGE));
    }
    Ok(())
}
