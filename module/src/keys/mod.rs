//! Key types: everything Tessera knows about one kind of key, one file per key type.
//!
//! Each file describes its key type with a [`KeyType`]: the rows its key material adds to the
//! attribute tables of `object::attrs` (for each class the type has), the attributes the token
//! computes from that material, its SubjectPublicKeyInfo and PKCS#8 encodings, how the policy
//! measures and approves such a key, and the pairwise-consistency test of a new pair. The generic
//! machinery that reads these descriptions stays where it was: `object::template` (building,
//! changing and copying objects), `object::spki`, `import`, `policy` and `services::keys`.
//!
//! The mechanisms (`mechanisms/*.rs`) keep the operations; the key-material helpers they share
//! with the object model (curves and points, RSA components, DES key lengths) live here.
//!
//! A new key type is a new file here with its `pub static` [`KeyType`], and one line in the
//! `key_types!` list below, which is both [`by_type`] (a `match`, O(1)) and [`ALL`].

use crate::error::Result;
use crate::object::attrs::{Spec, SECRET};
use crate::object::{Object, Template};
use crate::policy::KeyInfo;
use cryptoki_sys::*;
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::ObjectIdentifier;

pub mod aes;
pub mod des;
pub mod ec;
pub mod edwards;
pub mod generic;
pub mod hkdf;
pub mod ml_dsa;
pub mod ml_kem;
pub mod montgomery;
pub mod rsa;
pub mod slh_dsa;
pub mod xwing;

/// The parts of a SubjectPublicKeyInfo (or of a PKCS#8 PrivateKeyInfo): the algorithm's OID, the
/// DER of its parameters (`None`: absent) and the key itself.
pub type KeyParts = (ObjectIdentifier, Option<Vec<u8>>, Vec<u8>);

/// The two halves of a key pair read from an encoding: the private key's material and the
/// public key's, as template entries.
pub struct KeyPair {
    pub key_type: CK_KEY_TYPE,
    pub private: Template,
    pub public: Template,
}

/// How a key type's private keys are encoded as PKCS#8 (what `C_WrapKey` wraps and `C_UnwrapKey`
/// and `tessera-util --import` read).
pub struct Pkcs8 {
    /// Whether a PrivateKeyInfo's algorithm OID is this key type's (one OID, or one per parameter
    /// set).
    pub reads_oid: fn(ObjectIdentifier) -> bool,
    /// The key pair of a PrivateKeyInfo with this algorithm (its algorithm identifier and its
    /// `privateKey` bytes).
    pub read: fn(&AlgorithmIdentifierRef<'_>, &[u8]) -> std::result::Result<KeyPair, String>,
    /// The (algorithm OID, parameters, `privateKey` bytes) of a private key object.
    pub encode: fn(&Object) -> std::result::Result<KeyParts, String>,
}

/// What Tessera knows about one key type. Data and plain function pointers: looking one up is a
/// `match` ([`by_type`]), and none of it allocates.
pub struct KeyType {
    /// The key type's name (as a tool shows it).
    pub name: &'static str,
    /// The rows its key material adds to the attribute tables of a public key; `None` when
    /// Tessera holds no public key of this type (the same for the two below).
    pub public: Option<&'static [Spec]>,
    /// The rows of a private key.
    pub private: Option<&'static [Spec]>,
    /// The rows of a secret key.
    pub secret: Option<&'static [Spec]>,
    /// Secret keys: whether a value of this many bytes is a key of the type (given the exact
    /// `CK_KEY_TYPE`, for a description shared by several).
    pub value_len_ok: fn(CK_KEY_TYPE, usize) -> bool,
    /// Secret keys: the `CKA_CHECK_VALUE` of a non-empty value.
    pub check_value: fn(CK_KEY_TYPE, &[u8]) -> Option<Vec<u8>>,
    /// Public and private keys: the attributes that follow from the material, computed or
    /// checked when the object is built (`CKR_TEMPLATE_INCONSISTENT` …).
    pub computed: fn(&mut Object, CK_KEY_TYPE) -> Result<()>,
    /// The SubjectPublicKeyInfo parts of a public or private (`true`) key object; `None` when its
    /// material does not yield them.
    pub public_key_info: fn(&Object, bool) -> Result<Option<KeyParts>>,
    /// Whether a SubjectPublicKeyInfo (decoded, with its key bytes) is this private key's own.
    pub public_key_info_matches: fn(&Object, &SubjectPublicKeyInfoRef<'_>, &[u8]) -> Result<bool>,
    /// The key as the policy measures it.
    pub key_info: fn(&Object) -> KeyInfo,
    /// Whether a key so measured meets the approved sizes of its type.
    pub approved: fn(CK_KEY_TYPE, &KeyInfo) -> bool,
    /// Its PKCS#8 encoding, if its private keys have one.
    pub pkcs8: Option<Pkcs8>,
    /// The conditional pairwise-consistency test of a new pair (public, private); `healthy` false
    /// makes it fail (the self-test fault injection).
    pub pairwise: fn(&Object, &Object, bool) -> std::result::Result<(), String>,
}

/// What a key type that leaves a part out has: the defaults of the specification and of
/// Tessera's secret keys. Each key type's description starts from it (`..keys::BASE`).
pub const BASE: KeyType = KeyType {
    name: "",
    public: None,
    private: None,
    secret: None,
    value_len_ok: |_, _| true,
    check_value: |_, v| Some(sha1_check_value(v)),
    computed: |_, _| Ok(()),
    public_key_info: |_, _| Ok(None),
    public_key_info_matches: |_, _, _| Ok(false),
    key_info: value_bits,
    approved: |_, k| k.bits.is_some_and(|b| b >= 112),
    pkcs8: None,
    pairwise: |_, _, _| Ok(()),
};

/// The registration of the key types: `CK_KEY_TYPE` patterns and their description.
macro_rules! key_types {
    ($($p:pat => $t:path),* $(,)?) => {
        /// The description of a key type; `None` for types Tessera does not hold.
        #[inline]
        pub fn by_type(key_type: CK_KEY_TYPE) -> Option<&'static KeyType> {
            match key_type {
                $($p => Some(&$t),)*
                _ => None,
            }
        }

        /// Every key type Tessera holds, once each.
        pub const ALL: &[&KeyType] = &[$(&$t),*];
    };
}

key_types! {
    CKK_RSA => rsa::RSA,
    CKK_EC => ec::EC,
    CKK_EC_EDWARDS => edwards::EDWARDS,
    CKK_EC_MONTGOMERY => montgomery::MONTGOMERY,
    CKK_AES => aes::AES,
    CKK_DES | CKK_DES2 | CKK_DES3 => des::DES,
    CKK_GENERIC_SECRET => generic::GENERIC_SECRET,
    CKK_SHA_1_HMAC | CKK_SHA224_HMAC | CKK_SHA256_HMAC | CKK_SHA384_HMAC | CKK_SHA512_HMAC
        | CKK_SHA3_224_HMAC | CKK_SHA3_256_HMAC | CKK_SHA3_384_HMAC | CKK_SHA3_512_HMAC => generic::HMAC,
    CKK_HKDF => hkdf::HKDF,
    CKK_ML_DSA => ml_dsa::ML_DSA,
    CKK_SLH_DSA => slh_dsa::SLH_DSA,
    CKK_ML_KEM => ml_kem::ML_KEM,
    xwing::CKK_TESSERA_XWING => xwing::XWING,
}

impl KeyType {
    /// The rows its key material adds to an object of `class`.
    #[inline]
    pub const fn material(&self, class: CK_OBJECT_CLASS) -> Option<&'static [Spec]> {
        match class {
            CKO_PUBLIC_KEY => self.public,
            CKO_PRIVATE_KEY => self.private,
            CKO_SECRET_KEY => self.secret,
            _ => None,
        }
    }

    /// The attributes of an object of `class` that are key material (`attrs::SECRET`: sealed at
    /// rest, readable only from a non-sensitive, extractable key): what a tool that brings objects
    /// over from another token must carry as material.
    pub fn material_attributes(&self, class: CK_OBJECT_CLASS) -> impl Iterator<Item = CK_ATTRIBUTE_TYPE> {
        self.material(class).unwrap_or(&[]).iter().filter(|s| s.flags & SECRET != 0).map(|s| s.ty)
    }
}

/// A key-material row of any key type with attribute `ty` (for its encoding, wherever the
/// attribute appears). The rows are constant data gathered at compile time, so the search compiles
/// like the common tables' (no lookup through the descriptions at run time).
#[inline]
pub fn row(ty: CK_ATTRIBUTE_TYPE) -> Option<Spec> {
    crate::object::attrs::find(&ROWS, ty)
}

/// Every key type's row tables (a table shared by several key types appears once for each).
const ROWS: [&[Spec]; 3 * ALL.len()] = {
    let mut rows: [&[Spec]; 3 * ALL.len()] = [&[]; 3 * ALL.len()];
    let mut i = 0;
    while i < ALL.len() {
        let k = ALL[i];
        let tables = [k.public, k.private, k.secret];
        let mut j = 0;
        while j < 3 {
            if let Some(t) = tables[j] {
                rows[3 * i + j] = t;
            }
            j += 1;
        }
        i += 1;
    }
    rows
};

/// Whether a SubjectPublicKeyInfo is the one a key object's own parts `own` give (its
/// `public_key_info`), for key types that put the raw key under an OID of its own per parameter set
/// and no parameters (ML-KEM, ML-DSA, SLH-DSA). A key whose parts cannot be had matches nothing
/// (`CKR_ATTRIBUTE_VALUE_INVALID`).
pub fn raw_key_info_matches(
    own: Result<Option<KeyParts>>,
    spki: &SubjectPublicKeyInfoRef<'_>,
    key: &[u8],
) -> Result<bool> {
    let bad = || crate::error::err(CKR_ATTRIBUTE_VALUE_INVALID);
    let (oid, _, expected) = own.map_err(|_| bad())?.ok_or_else(bad)?;
    Ok(spki.algorithm.oid == oid && spki.algorithm.parameters.is_none() && key == expected.as_slice())
}

/// The PKCS#8 encoding of the key type whose PrivateKeyInfo algorithm is `oid`.
pub fn by_pkcs8_oid(oid: ObjectIdentifier) -> Option<&'static Pkcs8> {
    ALL.iter().filter_map(|k| k.pkcs8.as_ref()).find(|p| (p.reads_oid)(oid))
}

/// `CKA_CHECK_VALUE` of a secret key (spec §6.1 and §2.8): for AES the first three bytes of the
/// ECB encryption of a zero block, for other secret keys the first three bytes of SHA-1 of the
/// value.
pub fn check_value(key_type: CK_KEY_TYPE, value: &[u8]) -> Option<Vec<u8>> {
    if value.is_empty() {
        return None;
    }
    match by_type(key_type) {
        Some(k) => (k.check_value)(key_type, value),
        None => Some(sha1_check_value(value)),
    }
}

/// The first three bytes of SHA-1 of a value: the check value of most key types.
pub fn sha1_check_value(value: &[u8]) -> Vec<u8> {
    let d = crate::crypto::digest::digest(&crate::crypto::digest::SHA1_FOR_LEGACY_USE_ONLY, value);
    d.as_ref()[..3].to_vec()
}

/// The size of a secret key as the policy measures it: the length of its value in bits.
pub fn value_bits(obj: &Object) -> KeyInfo {
    KeyInfo { bits: obj.get(CKA_VALUE).map(|v| (v.len() * 8) as u32), curve: None }
}

/// A key-material attribute of an object being encoded.
fn attr(obj: &Object, t: CK_ATTRIBUTE_TYPE) -> std::result::Result<&[u8], String> {
    obj.get(t).ok_or_else(|| format!("attribute {t:#x} missing"))
}

/// The signature part of the pairwise-consistency test (FIPS 140-3 IG 10.3.A): the private key
/// signs with `mech`, the public key verifies.
fn signs_and_verifies(
    mt: CK_MECHANISM_TYPE,
    public: &Object,
    private: &Object,
    healthy: bool,
) -> std::result::Result<(), String> {
    let reg = crate::mechanisms::registry();
    let msg = PCT_MESSAGE;
    let m = reg.get(mt).map_err(|_| format!("no signature mechanism {mt:#x} for the test"))?;
    let mut op = m.sign(&crate::mechanisms::Param::None, private).map_err(|e| format!("sign: {e}"))?;
    op.update(msg).map_err(|e| format!("sign: {e}"))?;
    let mut sig = op.finish().map_err(|e| format!("sign: {e}"))?;
    if !healthy {
        sig[0] ^= 1;
    }
    let mut v = m.verify(&crate::mechanisms::Param::None, public).map_err(|e| format!("verify: {e}"))?;
    v.update(msg).map_err(|e| format!("verify: {e}"))?;
    v.finish(&sig).map_err(|e| format!("the signature does not verify ({e})"))?;
    Ok(())
}

/// What the pairwise-consistency tests sign and encrypt.
const PCT_MESSAGE: &[u8] = b"Tessera pairwise-consistency test";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::attrs;

    #[test]
    fn every_key_type_is_found_by_its_types() {
        for k in ALL {
            assert!(!k.name.is_empty());
            assert!(k.public.is_some() || k.secret.is_some());
        }
        assert_eq!(by_type(CKK_DES3).map(|k| k.name), by_type(CKK_DES).map(|k| k.name));
        assert!(by_type(CKK_DSA).is_none());
    }

    #[test]
    fn key_material_attributes() {
        let rsa: Vec<_> = by_type(CKK_RSA).unwrap().material_attributes(CKO_PRIVATE_KEY).collect();
        assert_eq!(rsa.len(), 6);
        assert!(rsa.contains(&CKA_PRIVATE_EXPONENT) && !rsa.contains(&CKA_MODULUS));
        assert_eq!(by_type(CKK_RSA).unwrap().material_attributes(CKO_PUBLIC_KEY).count(), 0);
        let ed: Vec<_> = by_type(CKK_EC_EDWARDS).unwrap().material_attributes(CKO_PRIVATE_KEY).collect();
        assert_eq!(ed, [CKA_VALUE]);
        let aes: Vec<_> = by_type(CKK_AES).unwrap().material_attributes(CKO_SECRET_KEY).collect();
        assert_eq!(aes, [CKA_VALUE]);
    }

    /// A key-material attribute has one encoding wherever it appears (`attrs::kind_of` relies
    /// on it).
    #[test]
    fn key_rows_agree_with_each_other_and_the_common_tables() {
        for k in ALL {
            for t in [k.public, k.private, k.secret].into_iter().flatten() {
                for s in t {
                    assert_eq!(row(s.ty).map(|r| r.kind), Some(s.kind));
                    if let Some(c) = attrs::find(attrs::COMMON, s.ty) {
                        assert!(s.ty == CKA_VALUE || c.kind == s.kind);
                    }
                }
            }
        }
    }
}
