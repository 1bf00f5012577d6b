//! Generic secrets and HMAC: `CKM_GENERIC_SECRET_KEY_GEN`, and HMAC over SHA-1, SHA-2 and SHA-3
//! (plain and `_GENERAL` with a `CK_MAC_GENERAL_PARAMS` length) for sign and verify.
//!
//! HMAC over SHA-1/SHA-2 comes from aws-lc (`crypto::hmac`); aws-lc has no SHA-3 HMAC, so those
//! four come from the RustCrypto `hmac` and `sha3` crates (`crypto::sha3`). [`Hash`] and [`Mac`]
//! are also the PRF of the KDFs (`kdf.rs`), and [`MacSign`] / [`MacVerify`] serve every MAC
//! mechanism (CMAC too).

use super::{GeneratedKey, Mechanism, MechanismInfo, Param, Registry, SignOperation, VerifyOperation};
use crate::crypto::hmac as lc;
use crate::crypto::sha3::{self, Mac as _};
use crate::error::{err, Result};
use crate::object::{as_ulong, AttrMap, Object};
use cryptoki_sys::*;

/// The hash functions HMAC and the KDFs are built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl Hash {
    /// The hash named by a digest mechanism (`CKM_SHA256` …), as `CK_HKDF_PARAMS` names its PRF.
    pub fn from_digest(m: CK_MECHANISM_TYPE) -> Option<Hash> {
        Some(match m {
            CKM_SHA_1 => Hash::Sha1,
            CKM_SHA224 => Hash::Sha224,
            CKM_SHA256 => Hash::Sha256,
            CKM_SHA384 => Hash::Sha384,
            CKM_SHA512 => Hash::Sha512,
            CKM_SHA3_224 => Hash::Sha3_224,
            CKM_SHA3_256 => Hash::Sha3_256,
            CKM_SHA3_384 => Hash::Sha3_384,
            CKM_SHA3_512 => Hash::Sha3_512,
            _ => return None,
        })
    }

    /// Output length in bytes.
    pub fn out_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha224 | Hash::Sha3_224 => 28,
            Hash::Sha256 | Hash::Sha3_256 => 32,
            Hash::Sha384 | Hash::Sha3_384 => 48,
            Hash::Sha512 | Hash::Sha3_512 => 64,
        }
    }

    fn aws(self) -> Option<lc::Algorithm> {
        Some(match self {
            Hash::Sha1 => lc::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha224 => lc::HMAC_SHA224,
            Hash::Sha256 => lc::HMAC_SHA256,
            Hash::Sha384 => lc::HMAC_SHA384,
            Hash::Sha512 => lc::HMAC_SHA512,
            _ => return None,
        })
    }
}

/// A keyed HMAC computation; cloning it copies the keyed state (PBKDF2 reuses it that way).
/// Every variant holds its state inline (a clone per PBKDF2 iteration should not allocate).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Mac {
    Aws(lc::Context),
    Sha3_224(Box<sha3::Wiped<sha3::Hmac<sha3::Sha3_224>>>),
    Sha3_256(Box<sha3::Wiped<sha3::Hmac<sha3::Sha3_256>>>),
    Sha3_384(Box<sha3::Wiped<sha3::Hmac<sha3::Sha3_384>>>),
    Sha3_512(Box<sha3::Wiped<sha3::Hmac<sha3::Sha3_512>>>),
}

impl Mac {
    pub fn new(hash: Hash, key: &[u8]) -> Result<Mac> {
        if let Some(a) = hash.aws() {
            return Ok(Mac::Aws(lc::Context::with_key(&lc::Key::new(a, key))));
        }
        let m = Mac::sha3(hash, key);
        // The key set-up ran in frames below this one: their stack goes (`scrub_stack`).
        crate::crypto::scrub_stack();
        m
    }

    /// The HMAC-SHA-3 key set-up, in frames of its own that [`Mac::new`] then wipes.
    #[inline(never)]
    fn sha3(hash: Hash, key: &[u8]) -> Result<Mac> {
        // On the heap: a keyed state is as good as the key, and moving the `Mac` then moves a
        // pointer, leaving no copy of the state in a stack frame.
        fn rc<M: sha3::Mac + sha3::KeyInit>(key: &[u8]) -> Result<Box<sha3::Wiped<M>>> {
            <M as sha3::Mac>::new_from_slice(key).map(|m| Box::new(sha3::Wiped(m))).map_err(|_| err(CKR_GENERAL_ERROR))
        }
        Ok(match hash {
            Hash::Sha3_224 => Mac::Sha3_224(rc(key)?),
            Hash::Sha3_256 => Mac::Sha3_256(rc(key)?),
            Hash::Sha3_384 => Mac::Sha3_384(rc(key)?),
            _ => Mac::Sha3_512(rc(key)?),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Mac::Aws(c) => c.update(data),
            Mac::Sha3_224(m) => m.update(data),
            Mac::Sha3_256(m) => m.update(data),
            Mac::Sha3_384(m) => m.update(data),
            Mac::Sha3_512(m) => m.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Mac::Aws(c) => c.sign().as_ref().to_vec(),
            Mac::Sha3_224(mut m) => m.0.finalize_reset().into_bytes().to_vec(),
            Mac::Sha3_256(mut m) => m.0.finalize_reset().into_bytes().to_vec(),
            Mac::Sha3_384(mut m) => m.0.finalize_reset().into_bytes().to_vec(),
            Mac::Sha3_512(mut m) => m.0.finalize_reset().into_bytes().to_vec(),
        }
    }

    /// One-shot HMAC.
    pub fn compute(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
        let mut m = Mac::new(hash, key)?;
        for p in parts {
            m.update(p);
        }
        Ok(m.finish())
    }
}

/// A MAC in progress, for [`MacSign`] / [`MacVerify`].
pub trait MacCore: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// The full-length tag.
    fn finish(self: Box<Self>) -> Result<Vec<u8>>;
}

impl MacCore for Mac {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Mac::update(self, data);
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        Ok(Mac::finish(*self))
    }
}

/// Signing with a MAC, the tag cut to `len` bytes.
pub struct MacSign {
    pub core: Box<dyn MacCore>,
    pub len: usize,
}

impl SignOperation for MacSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.core.update(data)
    }
    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        let mut t = self.core.finish()?;
        t.truncate(self.len);
        Ok(t)
    }
}

/// Verifying a MAC of `len` bytes: another length is `CKR_SIGNATURE_LEN_RANGE`, the comparison
/// runs in constant time.
pub struct MacVerify {
    pub core: Box<dyn MacCore>,
    pub len: usize,
}

impl VerifyOperation for MacVerify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.core.update(data)
    }
    fn finish(self: Box<Self>, signature: &[u8]) -> Result<()> {
        if signature.len() != self.len {
            return Err(err(CKR_SIGNATURE_LEN_RANGE));
        }
        let t = self.core.finish()?;
        let t = t.get(..self.len).ok_or(err(CKR_GENERAL_ERROR))?;
        crate::crypto::constant_time::verify_slices_are_equal(t, signature).map_err(|_| err(CKR_SIGNATURE_INVALID))
    }
}

/// The tag length a MAC mechanism produces: `full` for the plain mechanism, the
/// `CK_MAC_GENERAL_PARAMS` value (1..=`full`) for a `_GENERAL` one.
pub fn tag_len(param: &Param, general: bool, full: usize) -> Result<usize> {
    if !general {
        return if param.is_none() { Ok(full) } else { Err(err(CKR_MECHANISM_PARAM_INVALID)) };
    }
    let Param::Ulong(n) = *param else { return Err(err(CKR_MECHANISM_PARAM_INVALID)) };
    if n == 0 || n > full as CK_ULONG {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(n as usize)
}

/// The `CKA_VALUE` of a secret key (`CKR_KEY_HANDLE_INVALID` if it has none).
pub fn secret_value(key: &Object) -> Result<&[u8]> {
    key.get(CKA_VALUE).ok_or(err(CKR_KEY_HANDLE_INVALID))
}

/// Largest HMAC key accepted, in bytes (`C_GetMechanismInfo`'s `ulMaxKeySize`).
const MAX_KEY: usize = 1 << 16;

struct Hmac {
    hash: Hash,
    general: bool,
    key_types: &'static [CK_KEY_TYPE],
}

/// A keyed HMAC state kept with its key object, so that each signature starts from a copy
/// instead of keying again.
struct KeyedMac {
    hash: Hash,
    mac: Mac,
}

impl Hmac {
    fn key<'a>(&self, key: &'a Object) -> Result<&'a [u8]> {
        let v = secret_value(key)?;
        if v.is_empty() || v.len() > MAX_KEY {
            return Err(err(CKR_KEY_SIZE_RANGE));
        }
        Ok(v)
    }

    /// A fresh keyed state: a copy of the one kept with the key when it is for this hash.
    fn keyed(&self, key: &Object) -> Result<Mac> {
        let build = || Ok(KeyedMac { hash: self.hash, mac: Mac::new(self.hash, self.key(key)?)? });
        match key.with_parsed(build, |kept| (kept.hash == self.hash).then(|| kept.mac.clone()))? {
            Some(mac) => Ok(mac),
            None => Mac::new(self.hash, self.key(key)?),
        }
    }
}

impl Mechanism for Hmac {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: 1, max_key: MAX_KEY as CK_ULONG, flags: CKF_SIGN | CKF_VERIFY }
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        self.key_types
    }

    fn sign(&self, param: &Param, key: &Object) -> Result<Box<dyn SignOperation>> {
        let len = tag_len(param, self.general, self.hash.out_len())?;
        let core = Box::new(self.keyed(key)?);
        Ok(Box::new(MacSign { core, len }))
    }

    fn verify(&self, param: &Param, key: &Object) -> Result<Box<dyn VerifyOperation>> {
        let len = tag_len(param, self.general, self.hash.out_len())?;
        let core = Box::new(self.keyed(key)?);
        Ok(Box::new(MacVerify { core, len }))
    }
}

/// Random key material of the length `CKA_VALUE_LEN` asks (bytes), within `min..=max`.
pub fn random_value(template: &AttrMap, min: usize, max: usize) -> Result<Vec<u8>> {
    let len = template.get(&CKA_VALUE_LEN).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
    let len = as_ulong(len).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))? as usize;
    if len < min || len > max {
        return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    crate::store::seal::random_bytes(len)
}

/// `CKM_GENERIC_SECRET_KEY_GEN` and `CKM_HKDF_KEY_GEN`: `CKA_VALUE_LEN` bytes of randomness, a
/// key of the given type.
struct GenericKeyGen(CK_KEY_TYPE);

impl Mechanism for GenericKeyGen {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: 1, max_key: MAX_KEY as CK_ULONG, flags: CKF_GENERATE }
    }

    fn generate_key(&self, param: &Param, template: &AttrMap) -> Result<GeneratedKey> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let value = random_value(template, 1, MAX_KEY)?;
        Ok(GeneratedKey { key_type: self.0, material: vec![(CKA_VALUE, value.into())] })
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_GENERIC_SECRET_KEY_GEN, Box::new(GenericKeyGen(CKK_GENERIC_SECRET)));
    r.add(CKM_HKDF_KEY_GEN, Box::new(GenericKeyGen(CKK_HKDF)));
    let table: [(CK_MECHANISM_TYPE, CK_MECHANISM_TYPE, Hash, &'static [CK_KEY_TYPE]); 9] = [
        (CKM_SHA_1_HMAC, CKM_SHA_1_HMAC_GENERAL, Hash::Sha1, &[CKK_GENERIC_SECRET, CKK_SHA_1_HMAC]),
        (CKM_SHA224_HMAC, CKM_SHA224_HMAC_GENERAL, Hash::Sha224, &[CKK_GENERIC_SECRET, CKK_SHA224_HMAC]),
        (CKM_SHA256_HMAC, CKM_SHA256_HMAC_GENERAL, Hash::Sha256, &[CKK_GENERIC_SECRET, CKK_SHA256_HMAC]),
        (CKM_SHA384_HMAC, CKM_SHA384_HMAC_GENERAL, Hash::Sha384, &[CKK_GENERIC_SECRET, CKK_SHA384_HMAC]),
        (CKM_SHA512_HMAC, CKM_SHA512_HMAC_GENERAL, Hash::Sha512, &[CKK_GENERIC_SECRET, CKK_SHA512_HMAC]),
        (CKM_SHA3_224_HMAC, CKM_SHA3_224_HMAC_GENERAL, Hash::Sha3_224, &[CKK_GENERIC_SECRET, CKK_SHA3_224_HMAC]),
        (CKM_SHA3_256_HMAC, CKM_SHA3_256_HMAC_GENERAL, Hash::Sha3_256, &[CKK_GENERIC_SECRET, CKK_SHA3_256_HMAC]),
        (CKM_SHA3_384_HMAC, CKM_SHA3_384_HMAC_GENERAL, Hash::Sha3_384, &[CKK_GENERIC_SECRET, CKK_SHA3_384_HMAC]),
        (CKM_SHA3_512_HMAC, CKM_SHA3_512_HMAC_GENERAL, Hash::Sha3_512, &[CKK_GENERIC_SECRET, CKK_SHA3_512_HMAC]),
    ];
    for (plain, general, hash, key_types) in table {
        r.add(plain, Box::new(Hmac { hash, general: false, key_types }));
        r.add(general, Box::new(Hmac { hash, general: true, key_types }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2_and_sha3() {
        let t = Mac::compute(Hash::Sha256, b"Jefe", &[b"what do ya want ", b"for nothing?"]).unwrap();
        assert_eq!(t[..4], [0x5b, 0xdc, 0xc1, 0x46]);
        let a = Mac::compute(Hash::Sha3_256, b"k", &[b"ab"]).unwrap();
        let b = Mac::compute(Hash::Sha3_256, b"k", &[b"a", b"b"]).unwrap();
        assert_eq!((a.len(), a), (32, b));
        assert_eq!(tag_len(&Param::None, false, 32), Ok(32));
        assert_eq!(tag_len(&Param::Ulong(16), false, 32), Err(err(CKR_MECHANISM_PARAM_INVALID)));
        assert_eq!(tag_len(&Param::Ulong(16), true, 32), Ok(16));
        assert_eq!(tag_len(&Param::Ulong(33), true, 32), Err(err(CKR_MECHANISM_PARAM_INVALID)));
        assert_eq!(tag_len(&Param::Bytes(vec![16]), true, 32), Err(err(CKR_MECHANISM_PARAM_INVALID)));
    }
}
