//! ML-DSA keys (`CKK_ML_DSA`, FIPS 204), as PKCS #11 3.2 encodes them: `CKA_PARAMETER_SET`
//! (`CKP_ML_DSA_44/65/87`), public `CKA_VALUE` the raw `pk`, private `CKA_VALUE` the expanded `sk`
//! and `CKA_SEED` the 32-byte seed ξ. A private key is made from the seed, the expanded key or both:
//! the missing one is derived (from a seed) and a pair that disagrees is refused. A key made from
//! the expanded key alone has no seed. SubjectPublicKeyInfo and PKCS #8 use the NIST OIDs (RFC
//! 9881); the signatures are `mechanisms::pq_sign`'s.

use super::{KeyPair, KeyParts, KeyType, Pkcs8, BASE};
use crate::crypto::mldsa::MlDsa;
use crate::error::{err, Result};
use crate::object::attrs::{s, Kind::*, Spec, FIXED, REQ_CREATE, SECRET};
use crate::object::{ulong, Object};
use cryptoki_sys::*;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::{Encode, Reader, SliceReader, Tag, TagNumber};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

pub const PUBLIC: &[Spec] = &[s(CKA_PARAMETER_SET, Ulong, REQ_CREATE | FIXED), s(CKA_VALUE, Bytes, REQ_CREATE | FIXED)];

/// `CKA_SEED` and `CKA_VALUE`: at least one on `C_CreateObject` (checked by [`computed`]).
pub const PRIVATE: &[Spec] = &[
    s(CKA_PARAMETER_SET, Ulong, REQ_CREATE | FIXED),
    s(CKA_SEED, Bytes, FIXED | SECRET),
    s(CKA_VALUE, Bytes, FIXED | SECRET),
];

pub const ML_DSA: KeyType = KeyType {
    name: "ML-DSA",
    public: Some(PUBLIC),
    private: Some(PRIVATE),
    computed,
    public_key_info,
    public_key_info_matches,
    key_info: |_| Default::default(),
    // Every parameter set of FIPS 204 is approved; the policy decides the uses.
    approved: |_, _| true,
    pkcs8: Some(Pkcs8 { reads_oid: |o| MlDsa::of_oid(o).is_some(), read, encode }),
    pairwise: |public, private, healthy| super::signs_and_verifies(CKM_ML_DSA, public, private, healthy),
    ..BASE
};

/// The parameter set of a key object: `CKR_PARAMETER_SET_NOT_SUPPORTED` for a value that names
/// none (PKCS #11 3.2 §5.1.2), `CKR_TEMPLATE_INCOMPLETE` without one.
pub fn set_of(obj: &Object) -> Result<MlDsa> {
    let v = obj.ulong(CKA_PARAMETER_SET).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
    MlDsa::of(v).ok_or(err(CKR_PARAMETER_SET_NOT_SUPPORTED))
}

/// Checks the material against the parameter set; a private key gets the expanded key its seed
/// gives, and a seed and an expanded key given together must agree.
fn computed(obj: &mut Object, _: CK_KEY_TYPE) -> Result<()> {
    let set = set_of(obj)?;
    let bad = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    match obj.class() {
        CKO_PUBLIC_KEY if obj.get(CKA_VALUE).map(<[u8]>::len) != Some(set.public_len()) => return Err(bad()),
        CKO_PRIVATE_KEY => {
            let value = obj.get(CKA_VALUE);
            if value.is_some_and(|v| v.len() != set.private_len()) {
                return Err(bad());
            }
            // A pair this token generated (CKA_LOCAL, which only the token sets) has the expanded
            // key its seed gives by construction: not expanded a second time.
            let generated = obj.flag(CKA_LOCAL) && obj.ulong(CKA_KEY_GEN_MECHANISM) == Some(CKM_ML_DSA_KEY_PAIR_GEN);
            match obj.get(CKA_SEED) {
                Some(seed) if generated && value.is_some() && seed.len() == 32 => {}
                Some(seed) => {
                    let (sk, _) = set.from_seed(seed).ok_or_else(bad)?;
                    match value {
                        Some(v) => {
                            if crate::crypto::constant_time::verify_slices_are_equal(v, &sk).is_err() {
                                return Err(err(CKR_TEMPLATE_INCONSISTENT));
                            }
                        }
                        None => {
                            obj.attrs.insert(CKA_VALUE, sk.to_vec().into());
                        }
                    }
                }
                None if value.is_none() => return Err(err(CKR_TEMPLATE_INCOMPLETE)),
                None => {
                    // An expanded key must decode to a public key.
                    set.public_of(value.unwrap_or_default()).ok_or_else(bad)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The raw public key of a public or private key object.
pub fn public_key(obj: &Object, private: bool) -> Result<Vec<u8>> {
    let set = set_of(obj)?;
    let v = obj.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
    if private {
        set.public_of(v).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))
    } else {
        Ok(v.to_vec())
    }
}

fn public_key_info(obj: &Object, private: bool) -> Result<Option<KeyParts>> {
    Ok(Some((set_of(obj)?.oid(), None, public_key(obj, private)?)))
}

fn public_key_info_matches(obj: &Object, spki: &SubjectPublicKeyInfoRef<'_>, key: &[u8]) -> Result<bool> {
    super::raw_key_info_matches(public_key_info(obj, obj.class() == CKO_PRIVATE_KEY), spki, key)
}

/// A PKCS #8 `privateKey` (RFC 9881 §6): `seed [0] IMPLICIT OCTET STRING (32)`, `expandedKey OCTET
/// STRING`, or `both SEQUENCE { seed, expandedKey }`.
fn read(alg: &AlgorithmIdentifierRef<'_>, der: &[u8]) -> std::result::Result<KeyPair, String> {
    let set = MlDsa::of_oid(alg.oid).ok_or("not an ML-DSA algorithm")?;
    if alg.parameters.is_some() {
        return Err("ML-DSA algorithm identifiers have no parameters".into());
    }
    let e = |e: pkcs8::der::Error| format!("ML-DSA private key: {e}");
    let mut r = SliceReader::new(der).map_err(e)?;
    let header = r.peek_header().map_err(e)?;
    type Part = Option<Zeroizing<Vec<u8>>>;
    let (seed, expanded): (Part, Part) = match header.tag {
        Tag::ContextSpecific { constructed: false, number } if number == TagNumber::N0 => {
            let h = r.decode::<pkcs8::der::Header>().map_err(e)?;
            let v = r.read_slice(h.length).map_err(e)?;
            (Some(Zeroizing::new(v.to_vec())), None)
        }
        Tag::OctetString => {
            (None, Some(Zeroizing::new(r.decode::<OctetStringRef<'_>>().map_err(e)?.as_bytes().to_vec())))
        }
        Tag::Sequence => {
            let (s, x) = r
                .sequence(|r| {
                    let s = r.decode::<OctetStringRef<'_>>()?.as_bytes().to_vec();
                    let x = r.decode::<OctetStringRef<'_>>()?.as_bytes().to_vec();
                    Ok((s, x))
                })
                .map_err(e)?;
            (Some(Zeroizing::new(s)), Some(Zeroizing::new(x)))
        }
        _ => return Err("ML-DSA private key: not a seed, an expanded key or both".into()),
    };
    r.finish(()).map_err(e)?;
    let sk = match (&seed, &expanded) {
        (Some(s), _) => {
            let (sk, _) = set.from_seed(s).ok_or("ML-DSA private key: the seed is not 32 bytes")?;
            if expanded.as_ref().is_some_and(|x| x.as_slice() != sk.as_slice()) {
                return Err("ML-DSA private key: the seed and the expanded key disagree".into());
            }
            sk
        }
        (None, Some(x)) => x.clone(),
        (None, None) => return Err("ML-DSA private key: empty".into()),
    };
    let pk = set.public_of(&sk).ok_or("ML-DSA private key: not an expanded key of its parameter set")?;
    let mut private = vec![(CKA_PARAMETER_SET, ulong(set.set())), (CKA_VALUE, sk.to_vec().into())];
    if let Some(s) = seed {
        private.push((CKA_SEED, s.to_vec().into()));
    }
    let public = vec![(CKA_PARAMETER_SET, ulong(set.set())), (CKA_VALUE, pk.into())];
    Ok(KeyPair { key_type: CKK_ML_DSA, private, public })
}

/// Writes `both` when the key has its seed (what other implementations read most widely), the
/// expanded key alone otherwise.
fn encode(obj: &Object) -> std::result::Result<KeyParts, String> {
    let set = set_of(obj).map_err(|e| e.to_string())?;
    let e = |e: pkcs8::der::Error| e.to_string();
    let sk = obj.get(CKA_VALUE).ok_or("ML-DSA private key without CKA_VALUE")?;
    let body = match obj.get(CKA_SEED) {
        Some(seed) => {
            let inner = [
                OctetStringRef::new(seed).map_err(e)?.to_der().map_err(e)?,
                OctetStringRef::new(sk).map_err(e)?.to_der().map_err(e)?,
            ]
            .concat();
            let mut out = pkcs8::der::Header::new(Tag::Sequence, pkcs8::der::Length::try_from(inner.len()).map_err(e)?)
                .map_err(e)?
                .to_der()
                .map_err(e)?;
            out.extend_from_slice(&inner);
            out
        }
        None => OctetStringRef::new(sk).map_err(e)?.to_der().map_err(e)?,
    };
    Ok((set.oid(), None, body))
}
