//! RSA (spec "PKCS #1 RSA" mechanisms): key-pair generation, PKCS#1 v1.5 signatures and
//! encryption, PSS, OAEP (with labels, for encryption and key wrapping) and raw RSA.
//!
//! A key object's components are parsed (and a private key checked by aws-lc) once per object
//! and kept with it (`keys::rsa::public_key`/`private_key`, through `Object::parsed`); the
//! arithmetic is aws-lc's, through `crypto::rsa`. PKCS#1 v1.5 signatures are
//! verified by encoding the expected block and comparing it whole, never by parsing the recovered
//! one. Decryption failures of PKCS#1 v1.5 and OAEP all answer `CKR_ENCRYPTED_DATA_INVALID`, so the
//! return value is no padding oracle.

use super::{
    CipherOperation, GeneratedPair, Mechanism, MechanismInfo, Param, Registry, SignOperation, VerifyOperation,
};
use crate::crypto::digest::{self, Context};
use crate::crypto::rsa::{Hash, Rsa as Key};
use crate::error::{err, Error, Result};
use crate::keys::rsa::{component, pairwise_consistent, private_key, public_key, MAX_BITS, MIN_BITS};
use crate::object::{as_ulong, AttrMap, Kept, Object};
use crate::policy::Condition;
use cryptoki_sys::*;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Sizes `C_GenerateKeyPair` makes: multiples of 128 bits in this range. Below 2048 bits only in
/// the non-approved mode (the policy refuses them in the approved one): test suites written for
/// SoftHSMv2 generate 1024-bit keys for speed.
const GEN_MIN_BITS: CK_ULONG = 1024;
const GEN_MAX_BITS: CK_ULONG = 8192;

impl Hash {
    fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha224 => &digest::SHA224,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    /// DER of the DigestInfo before the digest (RFC 8017 §9.2 note 1).
    pub(crate) fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha1 => &[0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14],
            Hash::Sha224 => &[
                0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00,
                0x04, 0x1c,
            ],
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
                0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
                0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
                0x04, 0x40,
            ],
        }
    }

    /// The hash a digest mechanism names (`hashAlg` of the PSS and OAEP parameters).
    fn from_mechanism(m: CK_MECHANISM_TYPE) -> Option<Hash> {
        Some(match m {
            CKM_SHA_1 => Hash::Sha1,
            CKM_SHA224 => Hash::Sha224,
            CKM_SHA256 => Hash::Sha256,
            CKM_SHA384 => Hash::Sha384,
            CKM_SHA512 => Hash::Sha512,
            _ => return None,
        })
    }

    /// The hash of an MGF1 generator (`mgf` of the PSS and OAEP parameters).
    fn from_mgf(g: CK_ULONG) -> Option<Hash> {
        Some(match g {
            CKG_MGF1_SHA1 => Hash::Sha1,
            CKG_MGF1_SHA224 => Hash::Sha224,
            CKG_MGF1_SHA256 => Hash::Sha256,
            CKG_MGF1_SHA384 => Hash::Sha384,
            CKG_MGF1_SHA512 => Hash::Sha512,
            _ => return None,
        })
    }
}

/// What a DigestInfo given to `CKM_RSA_PKCS` holds, as the policy's data conditions ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Digested {
    /// A SHA-1 digest: verification of legacy signatures only.
    Sha1,
    /// A digest of SHA-224/256/384/512, SHA-512/224, SHA-512/256 or SHA3-224/256/384/512.
    Fips186,
}

/// Recognises `data` as the DER DigestInfo (RFC 8017 §9.2) of a hash FIPS 186-5 allows, in the one
/// encoding PKCS #1 gives it (parameters NULL), compared byte for byte with that encoding. Done by
/// hand on purpose: any other encoding of the same DigestInfo (absent parameters, long-form
/// lengths, trailing bytes) a DER parser might accept is refused, so what the policy approves is
/// exactly the block a verifier rebuilds.
fn digested(data: &[u8]) -> Option<Digested> {
    let sha1 = Hash::Sha1.digest_info_prefix();
    if data.len() == sha1.len() + 20 && data.starts_with(sha1) {
        return Some(Digested::Sha1);
    }
    // id-sha256 … id-sha3-512: 2.16.840.1.101.3.4.2.n, with their digest lengths.
    const NIST_HASHES: [(u8, u8); 10] =
        [(1, 32), (2, 48), (3, 64), (4, 28), (5, 28), (6, 32), (7, 28), (8, 32), (9, 48), (10, 64)];
    let (&n, &len) = (data.get(14)?, data.get(18)?);
    if !NIST_HASHES.contains(&(n, len)) {
        return None;
    }
    let prefix = [
        0x30,
        0x11 + len,
        0x30,
        0x0d,
        0x06,
        0x09,
        0x60,
        0x86,
        0x48,
        0x01,
        0x65,
        0x03,
        0x04,
        0x02,
        n,
        0x05,
        0x00,
        0x04,
        len,
    ];
    (data.len() == prefix.len() + len as usize && data.starts_with(&prefix)).then_some(Digested::Fips186)
}

/// What a registered mechanism is.
#[derive(Clone, Copy)]
enum Kind {
    KeyGen,
    /// PKCS#1 v1.5; `Some` hashes the data first (`CKM_SHA*_RSA_PKCS`).
    Pkcs1(Option<Hash>),
    /// PSS; `Some` hashes the data first (`CKM_SHA*_RSA_PKCS_PSS`).
    Pss(Option<Hash>),
    Oaep,
    X509,
}

struct Rsa(Kind);

fn no_param(param: &Param) -> Result<()> {
    if param.is_none() {
        Ok(())
    } else {
        Err(err(CKR_MECHANISM_PARAM_INVALID))
    }
}

/// PSS parameters, checked against the mechanism and the key.
#[derive(Clone, Copy)]
struct Pss {
    hash: Hash,
    mgf: Hash,
    salt: usize,
}

fn pss_params(param: &Param, mech_hash: Option<Hash>, key: &Key) -> Result<Pss> {
    let Param::Pss { hash: hash_alg, mgf, salt_len: slen } = *param else {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    };
    let hash = Hash::from_mechanism(hash_alg).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
    if mech_hash.is_some_and(|h| h != hash) {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    let mgf = Hash::from_mgf(mgf).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
    // RFC 8017 §9.1.1: emLen = ceil((modBits - 1) / 8) must hold hLen + sLen + 2 bytes.
    let em_len = (key.bits() - 1).div_ceil(8);
    let max = em_len.checked_sub(hash.len() + 2).ok_or(err(CKR_KEY_SIZE_RANGE))?;
    let salt = usize::try_from(slen).ok().filter(|s| *s <= max).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
    Ok(Pss { hash, mgf, salt })
}

/// OAEP parameters: hash, MGF1 hash, label.
struct Oaep {
    hash: Hash,
    mgf: Hash,
    label: Vec<u8>,
}

fn oaep_params(param: &Param) -> Result<Oaep> {
    let bad = || err(CKR_MECHANISM_PARAM_INVALID);
    let Param::Oaep { hash: hash_alg, mgf, source, label } = param else { return Err(bad()) };
    let (hash_alg, mgf, source) = (*hash_alg, *mgf, *source);
    // CKZ_DATA_SPECIFIED is the only source the specification defines; applications that pass no
    // label often leave `source` 0 (OpenSC's pkcs11-tool does), which means the same thing.
    if source != CKZ_DATA_SPECIFIED && !(source == 0 && label.is_empty()) {
        return Err(bad());
    }
    let hash = Hash::from_mechanism(hash_alg).ok_or(bad())?;
    let mgf = Hash::from_mgf(mgf).ok_or(bad())?;
    Ok(Oaep { hash, mgf, label: crate::error::try_copy(label)? })
}

/// `v` left-padded with zeros to `k` bytes (the caller checked `v.len() <= k`).
fn left_pad(v: &[u8], k: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; k - v.len()]);
    out.extend_from_slice(v);
    out
}

/// The modulus of a key object, minimal, left-padded to `k` bytes.
fn modulus_padded(obj: &Object, k: usize) -> Result<Vec<u8>> {
    let n = component(obj, CKA_MODULUS).ok_or(err(CKR_FUNCTION_FAILED))?;
    let lead = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    let n = &n[lead..];
    if n.len() > k {
        return Err(err(CKR_FUNCTION_FAILED));
    }
    Ok(left_pad(n, k).to_vec())
}

/// The data a signature or verification collects: whole (single-part mechanisms) or hashed.
enum Input {
    Buffer(Zeroizing<Vec<u8>>),
    Hashing(Context),
}

impl Input {
    fn new(hash: Option<Hash>) -> Input {
        match hash {
            Some(h) => Input::Hashing(Context::new(h.algorithm())),
            None => Input::Buffer(Zeroizing::new(Vec::new())),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Input::Buffer(b) => b.extend_from_slice(data),
            Input::Hashing(c) => c.update(data),
        }
    }

    fn multipart(&self) -> bool {
        matches!(self, Input::Hashing(_))
    }

    fn finish(self) -> Zeroizing<Vec<u8>> {
        match self {
            Input::Buffer(b) => b,
            Input::Hashing(c) => Zeroizing::new(c.finish().as_ref().to_vec()),
        }
    }
}

/// The signature scheme of a running signature or verification.
enum Scheme {
    /// PKCS#1 v1.5; with the hash whose DigestInfo wraps the digest, or over a caller's DigestInfo.
    Pkcs1(Option<Hash>),
    Pss(Pss),
    /// Raw RSA; the modulus (k bytes) bounds the input.
    X509(Vec<u8>),
}

impl Scheme {
    /// The encoded message the signature covers: the DigestInfo (PKCS#1), the digest (PSS) or the
    /// k-byte block (raw).
    fn message(&self, data: Zeroizing<Vec<u8>>, k: usize) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Scheme::Pkcs1(Some(h)) if h.digest_info_prefix().len() + h.len() + 11 > k => Err(err(CKR_KEY_SIZE_RANGE)),
            Scheme::Pkcs1(Some(h)) => {
                let mut t = Zeroizing::new(h.digest_info_prefix().to_vec());
                t.extend_from_slice(&data);
                Ok(t)
            }
            Scheme::Pkcs1(None) if data.len() + 11 > k => Err(err(CKR_DATA_LEN_RANGE)),
            Scheme::Pkcs1(None) => Ok(data),
            Scheme::Pss(p) if data.len() != p.hash.len() => Err(err(CKR_DATA_LEN_RANGE)),
            Scheme::Pss(_) => Ok(data),
            Scheme::X509(_) if data.len() > k => Err(err(CKR_DATA_LEN_RANGE)),
            Scheme::X509(n) => {
                let block = left_pad(&data, k);
                if block.as_slice() >= n.as_slice() {
                    return Err(err(CKR_DATA_INVALID));
                }
                Ok(block)
            }
        }
    }
}

struct Signer {
    key: Arc<Kept<Key>>,
    scheme: Scheme,
    input: Input,
}

impl SignOperation for Signer {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        let k = self.key.size();
        let m = self.scheme.message(self.input.finish(), k)?;
        let sig = match &self.scheme {
            Scheme::Pkcs1(_) => self.key.sign_pkcs1(&m),
            Scheme::Pss(p) => self.key.sign_pss(&m, p.hash, p.mgf, p.salt),
            Scheme::X509(_) => self.key.private_raw(&m).map(|v| v.to_vec()),
        };
        sig.ok_or(err(CKR_FUNCTION_FAILED))
    }

    fn multipart(&self) -> bool {
        self.input.multipart()
    }
}

struct Verifier {
    key: Arc<Kept<Key>>,
    scheme: Scheme,
    input: Input,
}

impl VerifyOperation for Verifier {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data);
        Ok(())
    }

    fn finish(self: Box<Self>, signature: &[u8]) -> Result<()> {
        let k = self.key.size();
        let m = self.scheme.message(self.input.finish(), k)?;
        if signature.len() != k {
            return Err(err(CKR_SIGNATURE_LEN_RANGE));
        }
        let invalid = || err(CKR_SIGNATURE_INVALID);
        match &self.scheme {
            Scheme::Pss(p) => {
                if self.key.verify_pss(&m, p.hash, p.mgf, p.salt, signature) {
                    Ok(())
                } else {
                    Err(invalid())
                }
            }
            Scheme::Pkcs1(_) => {
                // EM = 0x00 || 0x01 || PS (0xff…, at least 8) || 0x00 || T, compared whole.
                let mut em = vec![0x00, 0x01];
                em.resize(k - m.len() - 1, 0xff);
                em.push(0x00);
                em.extend_from_slice(&m);
                let got = self.key.public_raw(signature).ok_or(invalid())?;
                if crate::crypto::constant_time::verify_slices_are_equal(&got, &em).is_ok() {
                    Ok(())
                } else {
                    Err(invalid())
                }
            }
            Scheme::X509(_) => {
                let got = self.key.public_raw(signature).ok_or(invalid())?;
                if got.as_slice() == m.as_slice() {
                    Ok(())
                } else {
                    Err(invalid())
                }
            }
        }
    }

    fn multipart(&self) -> bool {
        self.input.multipart()
    }
}

/// The padding of an encryption or decryption.
enum Padding {
    Pkcs1,
    Oaep(Oaep),
    X509(Vec<u8>),
}

impl Padding {
    fn encrypt(&self, key: &Key, m: &[u8], too_long: Error) -> Result<Vec<u8>> {
        let k = key.size();
        let out = match self {
            Padding::Pkcs1 if m.len() + 11 > k => return Err(too_long),
            Padding::Pkcs1 => key.encrypt_pkcs1(m),
            Padding::Oaep(o) if m.len() + 2 * o.hash.len() + 2 > k => return Err(too_long),
            Padding::Oaep(o) => key.encrypt_oaep(m, o.hash, o.mgf, &o.label),
            Padding::X509(_) if m.len() > k => return Err(too_long),
            Padding::X509(n) => {
                let block = left_pad(m, k);
                if block.as_slice() >= n.as_slice() {
                    return Err(err(CKR_DATA_INVALID));
                }
                key.public_raw(&block)
            }
        };
        out.ok_or(err(CKR_FUNCTION_FAILED))
    }

    /// Decrypts; every failure of the padding check is the same `invalid`.
    fn decrypt(&self, key: &Key, c: &[u8], bad_len: Error, invalid: Error) -> Result<Zeroizing<Vec<u8>>> {
        if c.len() != key.size() {
            return Err(bad_len);
        }
        let out = match self {
            Padding::Pkcs1 => key.decrypt_pkcs1(c),
            Padding::Oaep(o) => key.decrypt_oaep(c, o.hash, o.mgf, &o.label),
            Padding::X509(_) => key.private_raw(c),
        };
        out.ok_or(invalid)
    }
}

/// A single-part encryption or decryption: collects the input, works at the end.
struct Cipher {
    key: Arc<Kept<Key>>,
    padding: Padding,
    encrypt: bool,
    input: Zeroizing<Vec<u8>>,
}

impl CipherOperation for Cipher {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.input.extend_from_slice(data);
        Ok(Vec::new())
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        if self.encrypt {
            self.padding.encrypt(&self.key, &self.input, err(CKR_DATA_LEN_RANGE))
        } else {
            let out = self.padding.decrypt(
                &self.key,
                &self.input,
                err(CKR_ENCRYPTED_DATA_LEN_RANGE),
                err(CKR_ENCRYPTED_DATA_INVALID),
            )?;
            Ok(out.to_vec())
        }
    }

    fn multipart(&self) -> bool {
        false
    }
}

impl Rsa {
    fn scheme(&self, param: &Param, key: &Key, obj: &Object) -> Result<(Scheme, Option<Hash>)> {
        Ok(match self.0 {
            Kind::Pkcs1(h) => {
                no_param(param)?;
                (Scheme::Pkcs1(h), h)
            }
            Kind::Pss(h) => (Scheme::Pss(pss_params(param, h, key)?), h),
            Kind::X509 => {
                no_param(param)?;
                (Scheme::X509(modulus_padded(obj, key.size())?), None)
            }
            _ => return Err(err(CKR_MECHANISM_INVALID)),
        })
    }

    fn padding(&self, param: &Param, key: &Key, obj: &Object) -> Result<Padding> {
        Ok(match self.0 {
            Kind::Pkcs1(None) => {
                no_param(param)?;
                Padding::Pkcs1
            }
            Kind::Oaep => Padding::Oaep(oaep_params(param)?),
            Kind::X509 => {
                no_param(param)?;
                Padding::X509(modulus_padded(obj, key.size())?)
            }
            _ => return Err(err(CKR_MECHANISM_INVALID)),
        })
    }

    fn can_sign(&self) -> bool {
        matches!(self.0, Kind::Pkcs1(_) | Kind::Pss(_) | Kind::X509)
    }

    fn can_encrypt(&self) -> bool {
        matches!(self.0, Kind::Pkcs1(None) | Kind::Oaep | Kind::X509)
    }

    fn can_wrap(&self) -> bool {
        matches!(self.0, Kind::Pkcs1(None) | Kind::Oaep)
    }
}

/// A public exponent from a template: big-endian, odd, at least 3, at most 32 bits.
fn exponent(v: &[u8]) -> Result<u32> {
    let lead = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    let v = &v[lead..];
    if v.len() > 4 {
        return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    let e = v.iter().fold(0u32, |a, b| (a << 8) | *b as u32);
    if e < 3 || e % 2 == 0 {
        return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    Ok(e)
}

impl Mechanism for Rsa {
    fn info(&self) -> MechanismInfo {
        let (min, max) = (MIN_BITS as CK_ULONG, MAX_BITS as CK_ULONG);
        let (min_key, max_key, flags) = match self.0 {
            Kind::KeyGen => (GEN_MIN_BITS, GEN_MAX_BITS, CKF_GENERATE_KEY_PAIR),
            Kind::Pkcs1(None) => (min, max, CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY | CKF_WRAP | CKF_UNWRAP),
            Kind::Pkcs1(Some(_)) | Kind::Pss(_) => (min, max, CKF_SIGN | CKF_VERIFY),
            Kind::Oaep => (min, max, CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP),
            Kind::X509 => (min, max, CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY),
        };
        MechanismInfo { min_key, max_key, flags }
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_RSA]
    }

    /// `pss_fips186`: PSS with an approved hash and MGF1 hash (not SHA-1) and a salt no longer
    /// than the hash (FIPS 186-5 §5.4).
    fn meets(&self, condition: Condition, param: &Param) -> bool {
        if condition != Condition::PssFips186 || !matches!(self.0, Kind::Pss(_)) {
            return false;
        }
        let Param::Pss { hash: hash_alg, mgf, salt_len: slen } = *param else { return false };
        match (Hash::from_mechanism(hash_alg), Hash::from_mgf(mgf)) {
            (Some(h), Some(m)) => h != Hash::Sha1 && m != Hash::Sha1 && (slen as usize) <= h.len(),
            _ => false,
        }
    }

    /// `digest_info_fips186` / `digest_info_sp800_131a`: `CKM_RSA_PKCS` signs or verifies a
    /// DigestInfo of an approved hash (SHA-1 only for verification under the second).
    fn meets_data(&self, condition: Condition, op: crate::operation::Op, data: &[u8]) -> bool {
        if !matches!(self.0, Kind::Pkcs1(None)) {
            return false;
        }
        match (condition, digested(data)) {
            (Condition::DigestInfoFips186, Some(Digested::Fips186)) => true,
            (Condition::DigestInfoSp800131a, Some(Digested::Fips186)) => true,
            (Condition::DigestInfoSp800131a, Some(Digested::Sha1)) => op == crate::operation::Op::Verify,
            _ => false,
        }
    }

    fn sign(&self, param: &Param, key: &Object) -> Result<Box<dyn SignOperation>> {
        if !self.can_sign() {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        let k = private_key(key)?;
        let (scheme, hash) = self.scheme(param, &k, key)?;
        Ok(Box::new(Signer { key: k, scheme, input: Input::new(hash) }))
    }

    fn verify(&self, param: &Param, key: &Object) -> Result<Box<dyn VerifyOperation>> {
        if !self.can_sign() {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        let k = public_key(key)?;
        let (scheme, hash) = self.scheme(param, &k, key)?;
        Ok(Box::new(Verifier { key: k, scheme, input: Input::new(hash) }))
    }

    fn encrypt(&self, param: &Param, key: &Object) -> Result<Box<dyn CipherOperation>> {
        if !self.can_encrypt() {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        let k = public_key(key)?;
        let padding = self.padding(param, &k, key)?;
        Ok(Box::new(Cipher { key: k, padding, encrypt: true, input: Zeroizing::new(Vec::new()) }))
    }

    fn decrypt(&self, param: &Param, key: &Object) -> Result<Box<dyn CipherOperation>> {
        if !self.can_encrypt() {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        let k = private_key(key)?;
        let padding = self.padding(param, &k, key)?;
        Ok(Box::new(Cipher { key: k, padding, encrypt: false, input: Zeroizing::new(Vec::new()) }))
    }

    fn wrap(&self, param: &Param, wrapping_key: &Object, key_bytes: &[u8]) -> Result<Vec<u8>> {
        if !self.can_wrap() {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        let k = public_key(wrapping_key).map_err(wrapping_error)?;
        let padding = self.padding(param, &k, wrapping_key)?;
        padding.encrypt(&k, key_bytes, err(CKR_KEY_SIZE_RANGE))
    }

    fn wraps_authenticated(&self) -> bool {
        matches!(self.0, Kind::Oaep)
    }

    fn unwrap(&self, param: &Param, unwrapping_key: &Object, wrapped: &[u8]) -> Result<Vec<u8>> {
        if !self.can_wrap() {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        let k = private_key(unwrapping_key).map_err(|e| match e.rv() {
            CKR_KEY_TYPE_INCONSISTENT => err(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
            CKR_KEY_SIZE_RANGE => err(CKR_UNWRAPPING_KEY_SIZE_RANGE),
            _ => e,
        })?;
        let padding = self.padding(param, &k, unwrapping_key)?;
        let out = padding.decrypt(&k, wrapped, err(CKR_WRAPPED_KEY_LEN_RANGE), err(CKR_WRAPPED_KEY_INVALID))?;
        Ok(out.to_vec())
    }

    fn generate_key_pair(&self, param: &Param, public: &AttrMap, private: &AttrMap) -> Result<GeneratedPair> {
        if !matches!(self.0, Kind::KeyGen) {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        no_param(param)?;
        // The token chooses the key; templates may not name its components (spec §2.1.2–2.1.3).
        if public.contains_key(&CKA_MODULUS) || private.contains_key(&CKA_MODULUS) {
            return Err(err(CKR_ATTRIBUTE_READ_ONLY));
        }
        let bits = public.get(&CKA_MODULUS_BITS).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
        let bits = as_ulong(bits).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))?;
        if !(GEN_MIN_BITS..=GEN_MAX_BITS).contains(&bits) || bits % 128 != 0 {
            return Err(err(CKR_KEY_SIZE_RANGE));
        }
        let e = match public.get(&CKA_PUBLIC_EXPONENT) {
            Some(v) => exponent(v)?,
            None => 65537,
        };
        if let Some(v) = private.get(&CKA_PUBLIC_EXPONENT) {
            if exponent(v)? != e {
                return Err(err(CKR_TEMPLATE_INCONSISTENT));
            }
        }
        let key = Key::generate(bits as u32, e).ok_or(err(CKR_FUNCTION_FAILED))?;
        if key.bits() as CK_ULONG != bits || !pairwise_consistent(&key) {
            return Err(err(CKR_FUNCTION_FAILED));
        }
        let c = key.components();
        let public = vec![(CKA_MODULUS, c.n.clone().into()), (CKA_PUBLIC_EXPONENT, c.e.clone().into())];
        let private = vec![
            (CKA_MODULUS, c.n.clone().into()),
            (CKA_PUBLIC_EXPONENT, c.e.clone().into()),
            (CKA_PRIVATE_EXPONENT, c.d.to_vec().into()),
            (CKA_PRIME_1, c.p.to_vec().into()),
            (CKA_PRIME_2, c.q.to_vec().into()),
            (CKA_EXPONENT_1, c.dp.to_vec().into()),
            (CKA_EXPONENT_2, c.dq.to_vec().into()),
            (CKA_COEFFICIENT, c.qinv.to_vec().into()),
        ];
        Ok(GeneratedPair { key_type: CKK_RSA, public, private, forms: (None, None) })
    }
}

fn wrapping_error(e: Error) -> Error {
    match e.rv() {
        CKR_KEY_TYPE_INCONSISTENT => err(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
        CKR_KEY_SIZE_RANGE => err(CKR_WRAPPING_KEY_SIZE_RANGE),
        _ => e,
    }
}

pub fn register(r: &mut Registry) {
    let sha = [
        (Hash::Sha1, CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS),
        (Hash::Sha224, CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS),
        (Hash::Sha256, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS),
        (Hash::Sha384, CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS),
        (Hash::Sha512, CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS),
    ];
    r.add(CKM_RSA_PKCS_KEY_PAIR_GEN, Box::new(Rsa(Kind::KeyGen)));
    r.add(CKM_RSA_PKCS, Box::new(Rsa(Kind::Pkcs1(None))));
    r.add(CKM_RSA_PKCS_PSS, Box::new(Rsa(Kind::Pss(None))));
    r.add(CKM_RSA_PKCS_OAEP, Box::new(Rsa(Kind::Oaep)));
    r.add(CKM_RSA_X_509, Box::new(Rsa(Kind::X509)));
    for (h, pkcs1, pss) in sha {
        r.add(pkcs1, Box::new(Rsa(Kind::Pkcs1(Some(h)))));
        r.add(pss, Box::new(Rsa(Kind::Pss(Some(h)))));
    }
}

/// The parameter of RSA-OAEP with SHA-256, MGF1-SHA-256 and no label (used by the
/// pairwise-consistency test of new key pairs).
pub fn oaep_sha256_param() -> Param {
    Param::Oaep { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, source: CKZ_DATA_SPECIFIED, label: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_infos_are_recognised_byte_for_byte() {
        use crate::operation::Op;
        let with = |h: Hash| {
            let mut v = h.digest_info_prefix().to_vec();
            v.resize(v.len() + h.len(), 0xab);
            v
        };
        for h in [Hash::Sha224, Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            assert_eq!(digested(&with(h)), Some(Digested::Fips186), "{h:?}");
        }
        assert_eq!(digested(&with(Hash::Sha1)), Some(Digested::Sha1));
        // SHA3-256 (…2.8) and SHA-512/256 (…2.6).
        for n in [6u8, 8] {
            let mut v = with(Hash::Sha256);
            v[14] = n;
            assert_eq!(digested(&v), Some(Digested::Fips186));
        }
        let sha256 = with(Hash::Sha256);
        // A digest of the wrong length, a trailing byte, absent parameters, another OID, a bare
        // digest: none is a DigestInfo of an approved hash.
        assert_eq!(digested(&sha256[..sha256.len() - 1]), None);
        assert_eq!(digested(&[sha256.as_slice(), &[0]].concat()), None);
        let mut absent = vec![0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09];
        absent.extend_from_slice(&sha256[6..15]);
        absent.extend_from_slice(&sha256[17..]);
        assert_eq!(digested(&absent), None);
        let mut other = sha256.clone();
        other[14] = 11;
        assert_eq!(digested(&other), None);
        assert_eq!(digested(&[0xab; 32]), None);
        let rsa = Rsa(Kind::Pkcs1(None));
        assert!(rsa.meets_data(Condition::DigestInfoFips186, Op::Sign, &sha256));
        assert!(!rsa.meets_data(Condition::DigestInfoFips186, Op::Verify, &with(Hash::Sha1)));
        assert!(rsa.meets_data(Condition::DigestInfoSp800131a, Op::Verify, &with(Hash::Sha1)));
        assert!(!rsa.meets_data(Condition::DigestInfoSp800131a, Op::Sign, &with(Hash::Sha1)));
        assert!(!Rsa(Kind::Pkcs1(Some(Hash::Sha256))).meets_data(Condition::DigestInfoFips186, Op::Sign, &sha256));
    }

    #[test]
    fn digest_info_prefixes_have_the_digest_length() {
        for h in [Hash::Sha1, Hash::Sha224, Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            let p = h.digest_info_prefix();
            assert_eq!(p[p.len() - 1] as usize, h.len());
            assert_eq!(p[1] as usize, p.len() - 2 + h.len());
        }
    }

    #[test]
    fn oaep_parameters() {
        let oaep =
            |source, label: &[u8]| Param::Oaep { hash: CKM_SHA256, mgf: CKG_MGF1_SHA1, source, label: label.to_vec() };
        let o = oaep_params(&oaep(CKZ_DATA_SPECIFIED, b"label")).unwrap();
        assert_eq!((o.hash, o.mgf, o.label.as_slice()), (Hash::Sha256, Hash::Sha1, &b"label"[..]));
        // Source 0 stands for CKZ_DATA_SPECIFIED only without a label.
        assert!(oaep_params(&oaep(0, b"")).is_ok());
        assert_eq!(oaep_params(&oaep(0, b"label")).err(), Some(err(CKR_MECHANISM_PARAM_INVALID)));
        assert_eq!(oaep_params(&oaep(7, b"")).err(), Some(err(CKR_MECHANISM_PARAM_INVALID)));
        assert_eq!(oaep_params(&Param::Bytes(vec![1, 2, 3])).err(), Some(err(CKR_MECHANISM_PARAM_INVALID)));
        assert_eq!(oaep_params(&Param::None).err(), Some(err(CKR_MECHANISM_PARAM_INVALID)));
    }

    #[test]
    fn pss_condition_reads_the_parameter() {
        let pss = |hash, mgf, salt_len| Param::Pss { hash, mgf, salt_len };
        let m = Rsa(Kind::Pss(None));
        assert!(m.meets(Condition::PssFips186, &pss(CKM_SHA256, CKG_MGF1_SHA256, 32)));
        assert!(!m.meets(Condition::PssFips186, &pss(CKM_SHA256, CKG_MGF1_SHA256, 33)));
        assert!(!m.meets(Condition::PssFips186, &pss(CKM_SHA_1, CKG_MGF1_SHA256, 20)));
        assert!(!m.meets(Condition::PssFips186, &pss(CKM_SHA256, CKG_MGF1_SHA1, 20)));
        assert!(!m.meets(Condition::PssFips186, &Param::Bytes(vec![0; 24])));
        assert!(!m.meets(Condition::EddsaFips186, &pss(CKM_SHA256, CKG_MGF1_SHA256, 32)));
        assert!(!Rsa(Kind::Pkcs1(None)).meets(Condition::PssFips186, &pss(CKM_SHA256, CKG_MGF1_SHA256, 32)));
    }

    #[test]
    fn exponents() {
        assert_eq!(exponent(&[1, 0, 1]), Ok(65537));
        assert_eq!(exponent(&[0, 0, 3]), Ok(3));
        assert!(exponent(&[2]).is_err() && exponent(&[1]).is_err() && exponent(&[1, 0, 0, 0, 1]).is_err());
    }
}
