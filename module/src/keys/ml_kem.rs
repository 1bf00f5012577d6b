//! ML-KEM keys (`CKK_ML_KEM`, FIPS 203), as PKCS#11 3.2 encodes them: `CKA_PARAMETER_SET` one of
//! `CKP_ML_KEM_512/768/1024`; public `CKA_VALUE` the encapsulation key ek; private `CKA_VALUE` the
//! (expanded) decapsulation key dk and `CKA_SEED` the key-generation seed d‖z (64 bytes), both key
//! material. A private key may be created from the seed, from dk, or from both: the seed is
//! expanded (and must give the dk given with it); dk alone is checked as FIPS 203 §7.3 asks (the
//! hash of the ek it holds), and such a key has no `CKA_SEED` (a seed cannot be recovered from dk).
//! Public keys are checked as §7.2 asks (every coefficient of ek reduced modulo q).
//! SubjectPublicKeyInfo: id-ml-kem-512/768/1024 (2.16.840.1.101.3.4.4.1/2/3), no parameters, ek as
//! the key. PKCS#8 as the IETF LAMPS ML-KEM certificates draft has it (the same OIDs, no
//! parameters; the privateKey an `ML-KEM-PrivateKey`): read in all three of its forms — `seed`
//! (`[0] IMPLICIT OCTET STRING`, d‖z), `expandedKey` (an OCTET STRING, dk) and `both` (a SEQUENCE
//! of the two, which must be one key) — and written as `seed` when the key has its seed (the form
//! the draft recommends; a reader expands it), else as `expandedKey`. The operations are
//! `mechanisms::ml_kem`'s.

use super::{KeyPair, KeyParts, KeyType, Pkcs8, BASE};
use crate::crypto::mlkem::{self, Params, SEED_LEN};
use crate::error::{err, Result};
use crate::object::attrs::{s, Kind::*, Spec, FIXED, REQ_CREATE, SECRET};
use crate::object::Object;
use crate::policy::KeyInfo;
use cryptoki_sys::*;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::{Decode, Encode, Header, Reader, SliceReader, Tag};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::ObjectIdentifier;

pub const PUBLIC: &[Spec] = &[s(CKA_PARAMETER_SET, Ulong, REQ_CREATE | FIXED), s(CKA_VALUE, Bytes, REQ_CREATE | FIXED)];

/// `CKA_VALUE` is not required on its own: a seed is enough (`computed` adds dk).
pub const PRIVATE: &[Spec] = &[
    s(CKA_PARAMETER_SET, Ulong, REQ_CREATE | FIXED),
    s(CKA_SEED, Bytes, FIXED | SECRET),
    s(CKA_VALUE, Bytes, FIXED | SECRET),
];

pub const ML_KEM: KeyType = KeyType {
    name: "ML-KEM",
    public: Some(PUBLIC),
    private: Some(PRIVATE),
    computed,
    public_key_info,
    public_key_info_matches,
    key_info,
    // FIPS 203 approves all three parameter sets (categories 1, 3 and 5).
    approved: |_, k| k.bits.is_some_and(|b| b >= 128),
    pairwise,
    pkcs8: Some(Pkcs8 {
        reads_oid: |o| [OID_512, OID_768, OID_1024].contains(&o),
        read: read_pkcs8,
        encode: encode_pkcs8,
    }),
    ..BASE
};

const OID_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.4.1");
const OID_768: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.4.2");
const OID_1024: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.4.3");

/// The parameter set a `CKA_PARAMETER_SET` value names; `CKR_PARAMETER_SET_NOT_SUPPORTED` for any
/// other value.
pub fn params_of(v: CK_ULONG) -> Result<Params> {
    match v {
        CKP_ML_KEM_512 => Ok(Params::MlKem512),
        CKP_ML_KEM_768 => Ok(Params::MlKem768),
        CKP_ML_KEM_1024 => Ok(Params::MlKem1024),
        _ => Err(err(CKR_PARAMETER_SET_NOT_SUPPORTED)),
    }
}

/// The `CKA_PARAMETER_SET` value of a parameter set.
pub fn parameter_set(p: Params) -> CK_ULONG {
    match p {
        Params::MlKem512 => CKP_ML_KEM_512,
        Params::MlKem768 => CKP_ML_KEM_768,
        Params::MlKem1024 => CKP_ML_KEM_1024,
    }
}

/// The parameter set of a key object.
pub fn params(obj: &Object) -> Result<Params> {
    params_of(obj.ulong(CKA_PARAMETER_SET).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?)
}

fn oid(p: Params) -> ObjectIdentifier {
    match p {
        Params::MlKem512 => OID_512,
        Params::MlKem768 => OID_768,
        Params::MlKem1024 => OID_1024,
    }
}

/// FIPS 203 §7.2 (modulus check): every 12-bit coefficient of ek's t̂ is below q = 3329, as
/// ByteEncode₁₂(ByteDecode₁₂(ek)) = ek asks. Written here because neither aws-lc-rs nor the C API
/// reports this check on its own for a raw key.
pub fn ek_valid(p: Params, ek: &[u8]) -> bool {
    if ek.len() != p.ek_len() {
        return false;
    }
    ek[..384 * p.k()].chunks_exact(3).all(|b| {
        let c0 = u16::from(b[0]) | (u16::from(b[1] & 0x0f) << 8);
        let c1 = u16::from(b[1] >> 4) | (u16::from(b[2]) << 4);
        c0 < 3329 && c1 < 3329
    })
}

/// The ek a dk holds (dk = dk_PKE ‖ ek ‖ H(ek) ‖ z).
pub fn ek_of_dk(p: Params, dk: &[u8]) -> Option<&[u8]> {
    dk.get(384 * p.k()..384 * p.k() + p.ek_len())
}

/// FIPS 203 §7.3 (hash check): dk has the right length and H(ek) = SHA3-256 of the ek it holds.
pub fn dk_valid(p: Params, dk: &[u8]) -> bool {
    use sha3::Digest;
    if dk.len() != p.dk_len() {
        return false;
    }
    let start = 384 * p.k();
    let ek = &dk[start..start + p.ek_len()];
    let h = &dk[start + p.ek_len()..start + p.ek_len() + 32];
    let computed = sha3::Sha3_256::digest(ek);
    crate::crypto::constant_time::verify_slices_are_equal(&computed, h).is_ok()
}

/// The checks and completions of a new key object: the parameter set is one Tessera has; a
/// public key's ek passes the modulus check; a private key's seed is expanded into dk (which must
/// equal a dk given with it), or its dk passes the hash check.
///
/// A pair this token generated (`CKA_LOCAL` true and `CKA_KEY_GEN_MECHANISM` ML-KEM's, which only
/// the token sets, and whose template could name no key material) is aws-lc's own expansion of its
/// seed: checked by the pairwise-consistency test, not expanded or hashed again here.
fn computed(obj: &mut Object, _kt: CK_KEY_TYPE) -> Result<()> {
    let p = params(obj)?;
    let invalid = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    let generated = obj.flag(CKA_LOCAL) && obj.ulong(CKA_KEY_GEN_MECHANISM) == Some(CKM_ML_KEM_KEY_PAIR_GEN);
    match obj.class() {
        CKO_PUBLIC_KEY if generated => {}
        CKO_PUBLIC_KEY if !ek_valid(p, obj.get(CKA_VALUE).unwrap_or(&[])) => return Err(invalid()),
        CKO_PRIVATE_KEY => match obj.get(CKA_SEED) {
            Some(seed) if generated && seed.len() == SEED_LEN && obj.get(CKA_VALUE).is_some() => {}
            Some(seed) => {
                let seed: &[u8; SEED_LEN] = seed.try_into().map_err(|_| invalid())?;
                let (_, dk) = mlkem::keygen_from_seed(p, seed).ok_or(err(CKR_FUNCTION_FAILED))?;
                match obj.get(CKA_VALUE) {
                    Some(given) if crate::crypto::constant_time::verify_slices_are_equal(given, &dk).is_ok() => {}
                    // A seed and a dk that are not one key.
                    Some(_) => return Err(err(CKR_TEMPLATE_INCONSISTENT)),
                    None => {
                        obj.attrs.insert(CKA_VALUE, dk.to_vec().into());
                    }
                }
            }
            None => match obj.get(CKA_VALUE) {
                Some(dk) if dk_valid(p, dk) => {}
                Some(_) => return Err(invalid()),
                None => return Err(err(CKR_TEMPLATE_INCOMPLETE)),
            },
        },
        _ => {}
    }
    Ok(())
}

fn params_of_oid(oid: ObjectIdentifier) -> Option<Params> {
    [Params::MlKem512, Params::MlKem768, Params::MlKem1024].into_iter().find(|p| self::oid(*p) == oid)
}

/// An `ML-KEM-PrivateKey` (the draft's three forms): (seed, dk), at least one of them.
type PrivateForms = (Option<zeroize::Zeroizing<[u8; SEED_LEN]>>, Option<zeroize::Zeroizing<Vec<u8>>>);

fn private_forms(der: &[u8]) -> std::result::Result<PrivateForms, String> {
    let e = |e: pkcs8::der::Error| format!("ML-KEM private key: {e}");
    let seed = |b: &[u8]| -> std::result::Result<zeroize::Zeroizing<[u8; SEED_LEN]>, String> {
        Ok(zeroize::Zeroizing::new(b.try_into().map_err(|_| "ML-KEM seed of the wrong length")?))
    };
    match der.first() {
        // seed [0] IMPLICIT OCTET STRING (SIZE (64)): the short form, tag 0x80, length 0x40.
        Some(0x80) => match der {
            [0x80, 0x40, rest @ ..] => Ok((Some(seed(rest)?), None)),
            _ => Err("ML-KEM private key: a malformed seed".into()),
        },
        Some(0x04) => {
            let dk = OctetStringRef::from_der(der).map_err(e)?;
            Ok((None, Some(zeroize::Zeroizing::new(dk.as_bytes().to_vec()))))
        }
        Some(0x30) => {
            let mut r = SliceReader::new(der).map_err(e)?;
            let h = Header::decode(&mut r).map_err(e)?;
            if h.tag != Tag::Sequence || r.remaining_len() != h.length {
                return Err("ML-KEM private key: a malformed SEQUENCE".into());
            }
            let s = OctetStringRef::decode(&mut r).map_err(e)?;
            let dk = OctetStringRef::decode(&mut r).map_err(e)?;
            r.finish(()).map_err(e)?;
            Ok((Some(seed(s.as_bytes())?), Some(zeroize::Zeroizing::new(dk.as_bytes().to_vec()))))
        }
        _ => Err("ML-KEM private key: not one of the seed, expandedKey or both forms".into()),
    }
}

fn read_pkcs8(alg: &AlgorithmIdentifierRef<'_>, der: &[u8]) -> std::result::Result<KeyPair, String> {
    let p = params_of_oid(alg.oid).ok_or("not an ML-KEM OID")?;
    if alg.parameters.is_some() {
        return Err("ML-KEM's AlgorithmIdentifier has no parameters".into());
    }
    let (seed, dk) = private_forms(der)?;
    let (ek, dk) = match (&seed, dk) {
        (Some(s), given) => {
            let (ek, dk) = mlkem::keygen_from_seed(p, s).ok_or("ML-KEM key expansion failed")?;
            if given.is_some_and(|g| crate::crypto::constant_time::verify_slices_are_equal(&g, &dk).is_err()) {
                return Err("the ML-KEM seed and expanded key are not one key".into());
            }
            (ek, dk)
        }
        (None, Some(dk)) if dk_valid(p, &dk) => (ek_of_dk(p, &dk).unwrap_or_default().to_vec(), dk),
        _ => return Err("an invalid ML-KEM expanded key".into()),
    };
    let set = crate::object::ulong(parameter_set(p));
    let mut private = vec![(CKA_PARAMETER_SET, set.clone()), (CKA_VALUE, dk.to_vec().into())];
    if let Some(s) = seed {
        private.push((CKA_SEED, s.to_vec().into()));
    }
    Ok(KeyPair { key_type: CKK_ML_KEM, private, public: vec![(CKA_PARAMETER_SET, set), (CKA_VALUE, ek.into())] })
}

fn encode_pkcs8(obj: &Object) -> std::result::Result<KeyParts, String> {
    let p = params(obj).map_err(|e| e.to_string())?;
    let key = match obj.get(CKA_SEED) {
        Some(seed) if seed.len() == SEED_LEN => [&[0x80, 0x40][..], seed].concat(),
        _ => {
            let dk = super::attr(obj, CKA_VALUE)?;
            OctetStringRef::new(dk).and_then(|o| o.to_der()).map_err(|e| e.to_string())?
        }
    };
    Ok((oid(p), None, key))
}

/// The ek of a public key, or the one a private key's dk holds.
pub fn ek(obj: &Object) -> Result<Vec<u8>> {
    let p = params(obj)?;
    let v = obj.get(CKA_VALUE).ok_or(err(CKR_KEY_HANDLE_INVALID))?;
    Ok(match obj.class() {
        CKO_PRIVATE_KEY => ek_of_dk(p, v).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))?.to_vec(),
        _ => v.to_vec(),
    })
}

fn public_key_info(obj: &Object, _private: bool) -> Result<Option<KeyParts>> {
    let p = params(obj)?;
    Ok(Some((oid(p), None, ek(obj)?)))
}

fn public_key_info_matches(obj: &Object, spki: &SubjectPublicKeyInfoRef<'_>, key: &[u8]) -> Result<bool> {
    super::raw_key_info_matches(public_key_info(obj, false), spki, key)
}

/// An ML-KEM key as the policy measures it: its security strength in bits (FIPS 203 categories 1,
/// 3 and 5: 128, 192, 256).
fn key_info(obj: &Object) -> KeyInfo {
    let bits = params(obj).ok().map(|p| match p {
        Params::MlKem512 => 128,
        Params::MlKem768 => 192,
        Params::MlKem1024 => 256,
    });
    KeyInfo { bits, curve: None }
}

/// The pairwise-consistency test of a new pair (FIPS 203 §7.1 and FIPS 140-3 IG 10.3.A): the
/// public key encapsulates, the private key decapsulates, and both secrets are the same.
///
/// The keys are the objects' parsed forms, as `C_EncapsulateKey` and `C_DecapsulateKey` use them: a
/// generated pair's are those its generation made (`mechanisms::ml_kem`), parsed once.
fn pairwise(public: &Object, private: &Object, healthy: bool) -> std::result::Result<(), String> {
    let p = params(public).map_err(|e| format!("public key: {e}"))?;
    let ek = public.get(CKA_VALUE).ok_or("public key without CKA_VALUE")?;
    let dk = private.get(CKA_VALUE).ok_or("private key without CKA_VALUE")?;
    let invalid = || crate::error::err(CKR_KEY_TYPE_INCONSISTENT);
    let parse_ek = || mlkem::EncapsulationKey::new(p, ek).ok_or_else(invalid);
    let (mut ct, k1) = public
        .with_parsed(parse_ek, |k| k.encapsulate())
        .map_err(|e| format!("public key: {e}"))?
        .ok_or("encapsulation failed")?;
    if !healthy {
        ct[0] ^= 1;
    }
    let parse_dk = || mlkem::DecapsulationKey::new(p, dk).ok_or_else(invalid);
    let k2 = private
        .with_parsed(parse_dk, |k| k.decapsulate(&ct))
        .map_err(|e| format!("private key: {e}"))?
        .ok_or("decapsulation failed")?;
    if k1 != k2 {
        return Err("the decapsulated secret differs from the encapsulated one".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(p: Params, seed: Option<&[u8]>, dk: &[u8]) -> Object {
        let mut m = crate::object::AttrMap::new();
        m.insert(CKA_CLASS, crate::object::ulong(CKO_PRIVATE_KEY));
        m.insert(CKA_KEY_TYPE, crate::object::ulong(CKK_ML_KEM));
        m.insert(CKA_PARAMETER_SET, crate::object::ulong(parameter_set(p)));
        m.insert(CKA_VALUE, dk.to_vec().into());
        if let Some(s) = seed {
            m.insert(CKA_SEED, s.to_vec().into());
        }
        Object::new(m)
    }

    fn read(p: Params, key: &[u8]) -> std::result::Result<KeyPair, String> {
        read_pkcs8(&AlgorithmIdentifierRef { oid: oid(p), parameters: None }, key)
    }

    #[test]
    fn pkcs8_forms() {
        let seed = [9u8; SEED_LEN];
        for p in [Params::MlKem512, Params::MlKem768, Params::MlKem1024] {
            let (ek, dk) = mlkem::keygen_from_seed(p, &seed).unwrap();
            let get = |t: &crate::object::Template, a| t.iter().find(|(x, _)| *x == a).map(|(_, v)| v.to_vec());
            // Written as the seed when the key has it, else as the expanded key; both read back.
            for (with_seed, first) in [(true, 0x80u8), (false, 0x04)] {
                let (o, params, key) = encode_pkcs8(&object(p, with_seed.then_some(&seed[..]), &dk)).unwrap();
                assert_eq!((o, params.is_none(), key[0]), (oid(p), true, first));
                let kp = read(p, &key).unwrap();
                assert_eq!(get(&kp.private, CKA_VALUE), Some(dk.to_vec()));
                assert_eq!(get(&kp.private, CKA_SEED), with_seed.then(|| seed.to_vec()));
                assert_eq!(get(&kp.public, CKA_VALUE), Some(ek.clone()));
            }
            // The `both` form, and a `both` whose halves disagree.
            let both = |s: &[u8], d: &[u8]| {
                let inner = [
                    OctetStringRef::new(s).unwrap().to_der().unwrap(),
                    OctetStringRef::new(d).unwrap().to_der().unwrap(),
                ]
                .concat();
                let h = Header::new(Tag::Sequence, pkcs8::der::Length::try_from(inner.len()).unwrap()).unwrap();
                [h.to_der().unwrap(), inner].concat()
            };
            let kp = read(p, &both(&seed, &dk)).unwrap();
            assert_eq!(get(&kp.private, CKA_SEED), Some(seed.to_vec()));
            assert!(read(p, &both(&[8u8; SEED_LEN], &dk)).is_err());
            // Wrong lengths, a corrupted dk, parameters, another OID.
            assert!(read(p, &[&[0x80, 0x3f][..], &seed[1..]].concat()).is_err());
            let mut bad = dk.to_vec();
            bad[384 * p.k() + 1] ^= 1;
            assert!(read(p, &OctetStringRef::new(&bad).unwrap().to_der().unwrap()).is_err());
            let null = pkcs8::der::asn1::AnyRef::from(pkcs8::der::asn1::Null);
            let alg = AlgorithmIdentifierRef { oid: oid(p), parameters: Some(null) };
            assert!(read_pkcs8(&alg, &[&[0x80, 0x40][..], &seed].concat()).is_err());
        }
        // Every parameter set's OID finds ML-KEM's encoding.
        for o in [OID_512, OID_768, OID_1024] {
            let found = super::super::by_pkcs8_oid(o)
                .map(|p| (p.read)(&AlgorithmIdentifierRef { oid: o, parameters: None }, &[]));
            // ML-KEM's reader answers (an empty key is refused with its own message).
            assert!(found.is_some_and(|r| r.is_err_and(|e| e.contains("ML-KEM"))), "{o}");
        }
    }

    #[test]
    fn sizes_and_checks() {
        for p in [Params::MlKem512, Params::MlKem768, Params::MlKem1024] {
            let (ek, dk) = mlkem::keygen_from_seed(p, &[7; SEED_LEN]).unwrap();
            assert_eq!((ek.len(), dk.len()), (p.ek_len(), p.dk_len()));
            assert!(ek_valid(p, &ek) && dk_valid(p, &dk));
            assert_eq!(ek_of_dk(p, &dk), Some(&ek[..]));
            let mut bad = ek.clone();
            bad[0] = 0xff;
            bad[1] |= 0x0f;
            assert!(!ek_valid(p, &bad));
            let mut bad = dk.to_vec();
            bad[384 * p.k()] ^= 1;
            assert!(!dk_valid(p, &bad));
        }
    }
}
