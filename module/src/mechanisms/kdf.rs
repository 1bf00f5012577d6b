//! Key derivation: HKDF (RFC 5869; `CKM_HKDF_DERIVE`, `CKM_HKDF_DATA`) and PBKDF2 (RFC 8018;
//! `CKM_PKCS5_PBKD2`, a key *generation* mechanism in PKCS#11: the password is a parameter, not a
//! key).
//!
//! `CK_HKDF_PARAMS` and `CK_PKCS5_PBKD2_PARAMS(2)` hold pointers; the ABI layer
//! (`abi/params.rs`) decodes them into [`Param::Hkdf`] and [`Param::Pbkdf2`] first. HKDF runs over
//! the HMAC of `hmac.rs` for every hash (SHA-1, SHA-2, SHA-3); PBKDF2 uses aws-lc-rs where it
//! has the PRF and the same HMAC otherwise.

use super::hmac::{secret_value, Hash, Mac};
use super::{GeneratedKey, Mechanism, MechanismInfo, Param, Registry};
use crate::error::{err, Result};
use crate::object::{as_ulong, AttrMap, Object};
use crate::policy::Condition;
use cryptoki_sys::*;
use std::num::NonZeroU32;
use zeroize::Zeroizing;

/// Largest derived value, in bytes.
const MAX_OUT: usize = 1 << 16;

/// HKDF-Extract.
/// SSP: HKDF pseudorandom key (PRK)
pub fn hkdf_extract(hash: Hash, salt: &[u8], ikm: &[u8]) -> Result<Vec<u8>> {
    Mac::compute(hash, salt, &[ikm])
}

/// HKDF-Expand to `len` bytes (at most 255 blocks).
pub fn hkdf_expand(hash: Hash, prk: &[u8], info: &[u8], len: usize) -> Result<Vec<u8>> {
    if len > 255 * hash.out_len() {
        return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    let keyed = Mac::new(hash, prk)?;
    let mut out = Vec::with_capacity(len);
    let mut t: Vec<u8> = Vec::new();
    let mut i = 1u8;
    while out.len() < len {
        let mut m = keyed.clone();
        m.update(&t);
        m.update(info);
        m.update(&[i]);
        t = m.finish();
        let n = (len - out.len()).min(t.len());
        out.extend_from_slice(&t[..n]);
        i = i.wrapping_add(1);
    }
    Ok(out)
}

/// `CKM_HKDF_DERIVE` and `CKM_HKDF_DATA`.
struct Hkdf;

impl Mechanism for Hkdf {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: 1, max_key: MAX_OUT as CK_ULONG, flags: CKF_DERIVE }
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_GENERIC_SECRET, CKK_HKDF]
    }

    fn derive(&self, param: &Param, base: &Object, len: Option<usize>) -> Result<Vec<u8>> {
        let Param::Hkdf(p) = param else { return Err(err(CKR_MECHANISM_PARAM_INVALID)) };
        if !p.extract && !p.expand {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let hash = Hash::from_digest(p.prf).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
        let ikm = secret_value(base)?;
        let prk = Zeroizing::new(if p.extract {
            let zeros = [0u8; 64];
            let salt: &[u8] = match p.salt_type {
                CKF_HKDF_SALT_NULL => &zeros[..hash.out_len()],
                CKF_HKDF_SALT_DATA => &p.salt,
                // A salt key (`CKF_HKDF_SALT_KEY`) is an object handle: the key service, which
                // has the session, resolves it into data before the mechanism runs.
                _ => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
            };
            hkdf_extract(hash, salt, ikm)?
        } else {
            ikm.to_vec()
        });
        if !p.expand {
            return match len {
                Some(l) if l != prk.len() => Err(err(CKR_TEMPLATE_INCONSISTENT)),
                _ => Ok(prk.to_vec()),
            };
        }
        // CKA_VALUE_LEN "should be set" when expanding; without it the output is one PRF block,
        // as extraction alone gives.
        let len = len.unwrap_or(hash.out_len());
        if len == 0 || len > MAX_OUT {
            return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
        }
        hkdf_expand(hash, &prk, &p.info, len)
    }
}

/// PBKDF2 with any HMAC.
pub fn pbkdf2(hash: Hash, password: &[u8], salt: &[u8], iterations: NonZeroU32, len: usize) -> Result<Vec<u8>> {
    use crate::crypto::kdf as lc;
    let mut out = vec![0u8; len];
    let fast = match hash {
        Hash::Sha1 => Some(lc::PBKDF2_HMAC_SHA1),
        Hash::Sha256 => Some(lc::PBKDF2_HMAC_SHA256),
        Hash::Sha384 => Some(lc::PBKDF2_HMAC_SHA384),
        Hash::Sha512 => Some(lc::PBKDF2_HMAC_SHA512),
        _ => None,
    };
    // aws-lc-rs asserts on outputs above (2^32 - 1) blocks; `len` is far below that.
    if let Some(a) = fast.filter(|_| len <= MAX_OUT) {
        lc::derive(a, iterations, salt, password, &mut out);
        return Ok(out);
    }
    pbkdf2_loop(hash, password, salt, iterations, &mut out)?;
    Ok(out)
}

/// PBKDF2's blocks (RFC 8018 §5.2) over [`Mac`], for the PRFs aws-lc-rs does not offer: fills
/// `out`. Its own function so that the power-on self-test runs this loop (`fips::kat`).
pub(crate) fn pbkdf2_loop(
    hash: Hash,
    password: &[u8],
    salt: &[u8],
    iterations: NonZeroU32,
    out: &mut [u8],
) -> Result<()> {
    let keyed = Mac::new(hash, password)?;
    for (block, chunk) in out.chunks_mut(hash.out_len()).enumerate() {
        let index = u32::try_from(block + 1).map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
        let mut m = keyed.clone();
        m.update(salt);
        m.update(&index.to_be_bytes());
        let mut u = Zeroizing::new(m.finish());
        let mut acc = Zeroizing::new(u.to_vec());
        for _ in 1..iterations.get() {
            let mut m = keyed.clone();
            m.update(&u);
            u = Zeroizing::new(m.finish());
            acc.iter_mut().zip(u.iter()).for_each(|(a, b)| *a ^= b);
        }
        let n = chunk.len();
        chunk.copy_from_slice(&acc[..n]);
    }
    Ok(())
}

/// `CKM_PKCS5_PBKD2`: a secret key of the template's type and `CKA_VALUE_LEN`.
struct Pbkd2;

impl Mechanism for Pbkd2 {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: 0, max_key: 0, flags: CKF_GENERATE }
    }

    /// `pbkdf2_sp800_132`: an approved HMAC PRF, a salt of at least 128 bits and at least 1,000
    /// iterations (the derived key's size is the policy's `key_bits` check).
    fn meets(&self, condition: Condition, param: &Param) -> bool {
        let Param::Pbkdf2(p) = param else {
            return false;
        };
        condition == Condition::Pbkdf2Sp800132
            && p.salt_source == CKZ_SALT_SPECIFIED
            && p.salt.len() >= 16
            && p.iterations >= 1000
            && (CKP_PKCS5_PBKD2_HMAC_SHA1..=CKP_PKCS5_PBKD2_HMAC_SHA512).contains(&p.prf)
            && p.prf != CKP_PKCS5_PBKD2_HMAC_GOSTR3411
    }

    fn generate_key(&self, param: &Param, template: &AttrMap) -> Result<GeneratedKey> {
        let Param::Pbkdf2(p) = param else { return Err(err(CKR_MECHANISM_PARAM_INVALID)) };
        if p.salt_source != CKZ_SALT_SPECIFIED {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let iterations =
            u32::try_from(p.iterations).ok().and_then(NonZeroU32::new).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
        let hash = match p.prf {
            CKP_PKCS5_PBKD2_HMAC_SHA1 => Hash::Sha1,
            CKP_PKCS5_PBKD2_HMAC_SHA224 => Hash::Sha224,
            CKP_PKCS5_PBKD2_HMAC_SHA256 => Hash::Sha256,
            CKP_PKCS5_PBKD2_HMAC_SHA384 => Hash::Sha384,
            CKP_PKCS5_PBKD2_HMAC_SHA512 => Hash::Sha512,
            _ => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
        };
        let key_type = match template.get(&CKA_KEY_TYPE) {
            None => CKK_GENERIC_SECRET,
            Some(v) => as_ulong(v).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))?,
        };
        let ok_type = matches!(
            key_type,
            CKK_GENERIC_SECRET
                | CKK_AES
                | CKK_SHA_1_HMAC
                | CKK_SHA224_HMAC
                | CKK_SHA256_HMAC
                | CKK_SHA384_HMAC
                | CKK_SHA512_HMAC
                | CKK_SHA3_224_HMAC
                | CKK_SHA3_256_HMAC
                | CKK_SHA3_384_HMAC
                | CKK_SHA3_512_HMAC
        );
        if !ok_type {
            return Err(err(CKR_TEMPLATE_INCONSISTENT));
        }
        let len = template.get(&CKA_VALUE_LEN).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
        let len = as_ulong(len).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))? as usize;
        let len_ok = if key_type == CKK_AES { [16, 24, 32].contains(&len) } else { (1..=MAX_OUT).contains(&len) };
        if !len_ok {
            return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
        }
        let value = pbkdf2(hash, &p.password, &p.salt, iterations, len)?;
        Ok(GeneratedKey { key_type, material: vec![(CKA_VALUE, value.into())] })
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_HKDF_DERIVE, Box::new(Hkdf));
    r.add(CKM_HKDF_DATA, Box::new(Hkdf));
    r.add(CKM_PKCS5_PBKD2, Box::new(Pbkd2));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=12).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let prk = hkdf_extract(Hash::Sha256, &salt, &ikm).unwrap();
        assert_eq!(prk[..4], [0x07, 0x77, 0x09, 0x36]);
        let okm = hkdf_expand(Hash::Sha256, &prk, &info, 42).unwrap();
        assert_eq!(okm[..4], [0x3c, 0xb2, 0x5f, 0x25]);
        assert_eq!(okm[40..], [0x58, 0x65]);
    }

    #[test]
    fn pbkdf2_generic_matches_aws_lc() {
        let it = NonZeroU32::new(3).unwrap();
        // RFC 6070 case 2 (SHA-1, 2 iterations).
        let a = pbkdf2(Hash::Sha1, b"password", b"salt", NonZeroU32::new(2).unwrap(), 20).unwrap();
        assert_eq!(a[..4], [0xea, 0x6c, 0x01, 0x4d]);
        // The generic path against aws-lc-rs, through an output length beyond MAX_OUT's check.
        let fast = pbkdf2(Hash::Sha256, b"pw", b"na", it, 70).unwrap();
        let keyed = Mac::new(Hash::Sha256, b"pw").unwrap();
        let mut m = keyed.clone();
        m.update(b"na");
        m.update(&1u32.to_be_bytes());
        let u1 = m.finish();
        let mut m = keyed.clone();
        m.update(&u1);
        let u2 = m.finish();
        let mut m = keyed;
        m.update(&u2);
        let u3 = m.finish();
        let t1: Vec<u8> = (0..32).map(|i| u1[i] ^ u2[i] ^ u3[i]).collect();
        assert_eq!(fast[..32], t1[..]);
        let slow = pbkdf2(Hash::Sha224, b"pw", b"na", it, 70).unwrap();
        assert_eq!(slow.len(), 70);
    }
}
