//! ML-DSA (FIPS 204), from two implementations:
//!
//! - aws-lc's, through aws-lc-rs: key pairs from a seed, and pure ML-DSA with an empty context,
//!   hedged, signing and verifying. This is what the approved mode uses (aws-lc's FIPS module
//!   line includes it).
//! - RustCrypto's `ml-dsa`, for what aws-lc-rs does not expose: the internal functions
//!   (`ML-DSA.Sign_internal`/`Verify_internal`, FIPS 204 Algorithms 7 and 8) over a message
//!   representative `M'` that the mechanism builds, which gives contexts, deterministic signing and
//!   HashML-DSA, and the public key of an expanded private key. Outside aws-lc's module: the
//!   policy does not approve what only this side serves.

use aws_lc_rs::encoding::AsRawBytes;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use cryptoki_sys::*;
use ml_dsa::{ExpandedSigningKey, MlDsa44, MlDsa65, MlDsa87, MlDsaParams, Signature, VerifyingKey};
use pkcs8::ObjectIdentifier;
use zeroize::Zeroizing;

/// The three parameter sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlDsa {
    P44,
    P65,
    P87,
}

/// Runs `$body` with `$p` the RustCrypto parameter type of `$set`.
macro_rules! with_params {
    ($set:expr, $p:ident => $body:expr) => {
        match $set {
            MlDsa::P44 => {
                type $p = MlDsa44;
                $body
            }
            MlDsa::P65 => {
                type $p = MlDsa65;
                $body
            }
            MlDsa::P87 => {
                type $p = MlDsa87;
                $body
            }
        }
    };
}

impl MlDsa {
    pub const ALL: [MlDsa; 3] = [MlDsa::P44, MlDsa::P65, MlDsa::P87];

    /// The set a `CKA_PARAMETER_SET` value names.
    pub fn of(set: CK_ULONG) -> Option<MlDsa> {
        match set {
            CKP_ML_DSA_44 => Some(MlDsa::P44),
            CKP_ML_DSA_65 => Some(MlDsa::P65),
            CKP_ML_DSA_87 => Some(MlDsa::P87),
            _ => None,
        }
    }

    /// Its `CKA_PARAMETER_SET` value.
    pub fn set(self) -> CK_ULONG {
        match self {
            MlDsa::P44 => CKP_ML_DSA_44,
            MlDsa::P65 => CKP_ML_DSA_65,
            MlDsa::P87 => CKP_ML_DSA_87,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MlDsa::P44 => "ML-DSA-44",
            MlDsa::P65 => "ML-DSA-65",
            MlDsa::P87 => "ML-DSA-87",
        }
    }

    /// id-ml-dsa-44/65/87 (NIST CSOR, FIPS 204 and RFC 9881).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            MlDsa::P44 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.17"),
            MlDsa::P65 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18"),
            MlDsa::P87 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.19"),
        }
    }

    /// The set whose OID this is.
    pub fn of_oid(oid: ObjectIdentifier) -> Option<MlDsa> {
        MlDsa::ALL.into_iter().find(|s| s.oid() == oid)
    }

    /// Bytes of a public key (`pk`).
    pub fn public_len(self) -> usize {
        match self {
            MlDsa::P44 => 1312,
            MlDsa::P65 => 1952,
            MlDsa::P87 => 2592,
        }
    }

    /// Bytes of an expanded private key (`sk`).
    pub fn private_len(self) -> usize {
        match self {
            MlDsa::P44 => 2560,
            MlDsa::P65 => 4032,
            MlDsa::P87 => 4896,
        }
    }

    /// Bytes of a signature.
    pub fn signature_len(self) -> usize {
        match self {
            MlDsa::P44 => 2420,
            MlDsa::P65 => 3309,
            MlDsa::P87 => 4627,
        }
    }

    fn signing(self) -> &'static lc::PqdsaSigningAlgorithm {
        match self {
            MlDsa::P44 => &lc::ML_DSA_44_SIGNING,
            MlDsa::P65 => &lc::ML_DSA_65_SIGNING,
            MlDsa::P87 => &lc::ML_DSA_87_SIGNING,
        }
    }

    fn verification(self) -> &'static lc::PqdsaVerificationAlgorithm {
        match self {
            MlDsa::P44 => &lc::ML_DSA_44,
            MlDsa::P65 => &lc::ML_DSA_65,
            MlDsa::P87 => &lc::ML_DSA_87,
        }
    }

    /// aws-lc: the key pair of a 32-byte seed ξ (`ML-DSA.KeyGen_internal`): (expanded `sk`, `pk`).
    pub fn from_seed(self, seed: &[u8]) -> Option<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        self.key_pair_of_seed(seed).map(|(_, sk, pk)| (sk, pk))
    }

    /// [`MlDsa::from_seed`] with aws-lc's key pair itself, ready for [`MlDsa::sign_pure`]: (key
    /// pair, expanded `sk`, `pk`).
    pub fn key_pair_of_seed(self, seed: &[u8]) -> Option<(lc::PqdsaKeyPair, Zeroizing<Vec<u8>>, Vec<u8>)> {
        if seed.len() != 32 {
            return None;
        }
        let kp = lc::PqdsaKeyPair::from_seed(self.signing(), seed).ok()?;
        let sk = Zeroizing::new(kp.private_key().as_raw_bytes().ok()?.as_ref().to_vec());
        let pk = kp.public_key().as_ref().to_vec();
        Some((kp, sk, pk))
    }

    /// aws-lc's key pair of an expanded private key, for [`MlDsa::sign_pure`].
    pub fn key_pair(self, sk: &[u8]) -> Option<lc::PqdsaKeyPair> {
        lc::PqdsaKeyPair::from_raw_private_key(self.signing(), sk).ok()
    }

    /// aws-lc: pure ML-DSA with an empty context, hedged (FIPS 204 Algorithm 2).
    pub fn sign_pure(self, kp: &lc::PqdsaKeyPair, msg: &[u8]) -> Option<Vec<u8>> {
        let mut sig = vec![0u8; self.signature_len()];
        let n = kp.sign(msg, &mut sig).ok()?;
        sig.truncate(n);
        Some(sig)
    }

    /// aws-lc: verifies a pure ML-DSA signature with an empty context (FIPS 204 Algorithm 3).
    pub fn verify_pure(self, pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        lc::UnparsedPublicKey::new(self.verification(), pk).verify(msg, sig).is_ok()
    }

    /// RustCrypto: the public key of an expanded private key; `None` when `sk` is not one.
    pub fn public_of(self, sk: &[u8]) -> Option<Vec<u8>> {
        with_params!(self, P => {
            let key = expanded::<P>(sk)?;
            Some(key.verifying_key().encode().to_vec())
        })
    }

    /// RustCrypto: `ML-DSA.Sign_internal(sk, M', rnd)` (FIPS 204 Algorithm 7), `M'` given in parts.
    pub fn sign_internal(self, sk: &[u8], m_prime: &[&[u8]], rnd: &[u8; 32]) -> Option<Vec<u8>> {
        with_params!(self, P => {
            let key = expanded::<P>(sk)?;
            let rnd = ml_dsa::B32::from(*rnd);
            Some(key.sign_internal(m_prime, &rnd).encode().to_vec())
        })
    }

    /// RustCrypto: `ML-DSA.Verify_internal(pk, M', σ)` (FIPS 204 Algorithm 8).
    pub fn verify_internal(self, pk: &[u8], m_prime: &[u8], sig: &[u8]) -> bool {
        with_params!(self, P => {
            let Ok(enc) = ml_dsa::EncodedVerifyingKey::<P>::try_from(pk) else { return false };
            let Ok(sig_enc) = ml_dsa::EncodedSignature::<P>::try_from(sig) else { return false };
            let Some(sig) = Signature::<P>::decode(&sig_enc) else { return false };
            VerifyingKey::<P>::decode(&enc).verify_internal(m_prime, &sig)
        })
    }
}

/// An expanded private key of set `P`, decoded; `None` when the bytes have the wrong length or
/// are no key (see [`secrets_in_range`]).
fn expanded<P: MlDsaParams>(sk: &[u8]) -> Option<ExpandedSigningKey<P>> {
    let mut enc = ml_dsa::ExpandedSigningKeyBytes::<P>::try_from(sk).ok()?;
    if !secrets_in_range(sk) {
        return None;
    }
    #[allow(deprecated)]
    let key = ExpandedSigningKey::<P>::from_expanded(&enc);
    zeroize::Zeroize::zeroize(enc.as_mut_slice());
    Some(key)
}

/// Whether every coefficient of `s1` and `s2` in an expanded private key is a valid encoding
/// (FIPS 204 Algorithm 25 skDecode: `BitUnpack(y, η, η)` gives `η - z` for a field `z` of
/// `bitlen(2η)` bits, which must be at most `2η`). RustCrypto's `from_expanded` asserts this
/// (it panics on such a key, as Wycheproof's `InvalidPrivateKey` cases show) and aws-lc-rs offers
/// no check of its own, so it is done here before decoding; `t0`'s 13-bit fields are all valid.
/// The layout is FIPS 204 Table 2 and Algorithm 24: `rho(32) ‖ K(32) ‖ tr(64) ‖ s1 ‖ s2 ‖ t0`.
/// No branch depends on a coefficient: the result is only known once all are read.
fn secrets_in_range(sk: &[u8]) -> bool {
    // (k + l polynomials of s1 and s2, η) by key length.
    let (polys, eta) = match sk.len() {
        2560 => (4 + 4, 2u32),
        4032 => (6 + 5, 4),
        4896 => (8 + 7, 2),
        _ => return false,
    };
    let bits = if eta == 2 { 3 } else { 4 };
    let Some(region) = sk.get(128..128 + polys * 32 * bits) else { return false };
    let mut bad = 0u32;
    for i in 0..polys * 256 {
        let mut z = 0u32;
        for b in 0..bits {
            let bit = i * bits + b;
            z |= u32::from((region[bit / 8] >> (bit % 8)) & 1) << b;
        }
        // 1 when z > 2η, without a branch.
        bad |= (2 * eta).wrapping_sub(z) >> 31;
    }
    bad == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An expanded key whose `s1` holds a coefficient out of range is refused, not a panic.
    #[test]
    fn out_of_range_expanded_keys_are_refused() {
        for set in MlDsa::ALL {
            let (sk, pk) = set.from_seed(&[7u8; 32]).unwrap();
            assert_eq!(set.public_of(&sk), Some(pk));
            let mut bad = sk.to_vec();
            // The first field of s1 (3 or 4 bits) all ones: 7 > 2η = 4, or 15 > 2η = 8.
            bad[128] |= if set == MlDsa::P65 { 0x0f } else { 0x07 };
            assert_eq!(set.public_of(&bad), None, "{}", set.name());
            assert!(set.sign_internal(&bad, &[b"m"], &[0; 32]).is_none());
            // The last field of s2 likewise.
            let mut bad = sk.to_vec();
            let end = set.private_len()
                - match set {
                    MlDsa::P44 => 4 * 416,
                    MlDsa::P65 => 6 * 416,
                    MlDsa::P87 => 8 * 416,
                };
            bad[end - 1] |= 0xf0;
            assert_eq!(set.public_of(&bad), None, "{}", set.name());
        }
    }
}
