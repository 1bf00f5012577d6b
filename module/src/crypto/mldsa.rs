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
//!
//! A long or multi-part pure message is not gathered: its message representative μ =
//! SHAKE256(tr ‖ M′, 64) (FIPS 204 Algorithm 2 line 6, Algorithm 3 line 7) runs as the data comes,
//! in aws-lc's SHAKE256 ([`Mu`]), and the signature is made or checked from μ ("external μ",
//! which FIPS 204 §3.6.4 allows): aws-lc's `EVP_PKEY_sign`/`EVP_PKEY_verify` on an ML-DSA key take
//! μ (hedged signing, and verification), RustCrypto's `sign_mu_deterministic` the deterministic
//! variant, which aws-lc offers for μ only below its public interface. aws-lc-rs exposes none of
//! this, so these are small wrappers around aws-lc's C interface, one call each.

use super::clear_errors;
use super::evp::Pkey;
use super::sys;
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

    /// aws-lc's identifier of the set.
    fn nid(self) -> i32 {
        match self {
            MlDsa::P44 => sys::NID_MLDSA44,
            MlDsa::P65 => sys::NID_MLDSA65,
            MlDsa::P87 => sys::NID_MLDSA87,
        }
    }

    /// `tr` of an expanded private key: its bytes 64..128 (FIPS 204 Algorithm 24, `skEncode`).
    pub fn tr_of_private(self, sk: &[u8]) -> Option<[u8; 64]> {
        if sk.len() != self.private_len() {
            return None;
        }
        sk.get(64..128)?.try_into().ok()
    }

    /// `tr` = SHAKE256(pk, 64) of a public key (FIPS 204 Algorithm 3 line 6), in aws-lc.
    pub fn tr_of_public(self, pk: &[u8]) -> Option<[u8; 64]> {
        if pk.len() != self.public_len() {
            return None;
        }
        let mut h = Shake256::new()?;
        h.update(pk).then_some(())?;
        let mut tr = [0u8; 64];
        h.finish(&mut tr).then_some(tr)
    }

    /// aws-lc's key for signing a μ with [`MlDsa::sign_mu`]: the expanded private key loaded into
    /// an `EVP_PKEY` (aws-lc computes its public key from it, about the cost of a key generation,
    /// so a key object keeps it). `None` when `sk` is not a key of this set.
    pub fn mu_key(self, sk: &[u8]) -> Option<MuKey> {
        if sk.len() != self.private_len() || !secrets_in_range(sk) {
            return None;
        }
        // SAFETY: `sk` is a valid slice for its length; aws-lc copies it. NULL is checked.
        let Some(k) = Pkey::new(unsafe { sys::EVP_PKEY_pqdsa_new_raw_private_key(self.nid(), sk.as_ptr(), sk.len()) })
        else {
            clear_errors();
            return None;
        };
        Some(MuKey(k))
    }

    /// aws-lc: a hedged signature of the message representative `mu` (FIPS 204 Algorithm 2 from
    /// line 7, with fresh randomness from aws-lc's DRBG): `EVP_PKEY_sign` on an ML-DSA key.
    pub fn sign_mu(self, key: &MuKey, mu: &[u8; 64]) -> Option<Vec<u8>> {
        let ctx = key.0.context()?;
        let mut sig = vec![0u8; self.signature_len()];
        let mut len = sig.len();
        // SAFETY: `ctx` is a live context for the key; `sig` has `len` writable bytes, `mu` 64
        // readable ones; aws-lc writes at most `len` bytes and sets `len` to what it wrote.
        let ok = unsafe {
            sys::EVP_PKEY_sign_init(ctx.as_ptr()) == 1
                && sys::EVP_PKEY_sign(ctx.as_ptr(), sig.as_mut_ptr(), &mut len, mu.as_ptr(), mu.len()) == 1
        };
        if !ok || len != self.signature_len() {
            clear_errors();
            return None;
        }
        Some(sig)
    }

    /// aws-lc: whether `sig` is a valid signature of the message representative `mu` under `pk`
    /// (FIPS 204 Algorithm 3 from line 8): `EVP_PKEY_verify` on an ML-DSA key.
    pub fn verify_mu(self, pk: &[u8], mu: &[u8; 64], sig: &[u8]) -> bool {
        if pk.len() != self.public_len() || sig.len() != self.signature_len() {
            return false;
        }
        // SAFETY: `pk` is a valid slice for its length; aws-lc copies it. NULL is checked.
        let Some(key) = Pkey::new(unsafe { sys::EVP_PKEY_pqdsa_new_raw_public_key(self.nid(), pk.as_ptr(), pk.len()) })
        else {
            clear_errors();
            return false;
        };
        let Some(ctx) = key.context() else { return false };
        // SAFETY: `ctx` is a live context for the key; `sig` and `mu` are valid for their lengths.
        let ok = unsafe {
            sys::EVP_PKEY_verify_init(ctx.as_ptr()) == 1
                && sys::EVP_PKEY_verify(ctx.as_ptr(), sig.as_ptr(), sig.len(), mu.as_ptr(), mu.len()) == 1
        };
        if !ok {
            clear_errors();
        }
        ok
    }

    /// RustCrypto: the signature of the message representative `mu` with the randomness `rnd`
    /// (FIPS 204 Algorithm 2 from line 7; `rnd` = 0³² for the deterministic variant). `None` when
    /// `sk` is not a key of this set.
    pub fn sign_mu_internal(self, sk: &[u8], mu: &[u8; 64], rnd: &[u8; 32]) -> Option<Vec<u8>> {
        with_params!(self, P => {
            let key = expanded::<P>(sk)?;
            let mu = (*mu).into();
            let sig = key.sign_mu_randomized(&mu, &mut GivenRnd(Some(*rnd))).ok()?;
            Some(sig.encode().to_vec())
        })
    }

    /// RustCrypto: whether `sig` is a valid signature of the message representative `mu` under
    /// `pk` (FIPS 204 Algorithm 3 from line 8).
    pub fn verify_mu_internal(self, pk: &[u8], mu: &[u8; 64], sig: &[u8]) -> bool {
        with_params!(self, P => {
            let Ok(enc) = ml_dsa::EncodedVerifyingKey::<P>::try_from(pk) else { return false };
            let Ok(sig_enc) = ml_dsa::EncodedSignature::<P>::try_from(sig) else { return false };
            let Some(sig) = Signature::<P>::decode(&sig_enc) else { return false };
            VerifyingKey::<P>::decode(&enc).verify_mu(&(*mu).into(), &sig)
        })
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

/// A running SHAKE256 in aws-lc (`EVP_shake256`), for μ and `tr`.
struct Shake256(*mut sys::EVP_MD_CTX);

impl Shake256 {
    fn new() -> Option<Shake256> {
        // SAFETY: plain constructor; NULL is checked.
        let ctx = unsafe { sys::EVP_MD_CTX_new() };
        if ctx.is_null() {
            return None;
        }
        let h = Shake256(ctx);
        // SAFETY: `ctx` is a fresh context; EVP_shake256 returns a static method table.
        if unsafe { sys::EVP_DigestInit_ex(h.0, sys::EVP_shake256(), std::ptr::null_mut()) } != 1 {
            clear_errors();
            return None;
        }
        Some(h)
    }

    fn update(&mut self, data: &[u8]) -> bool {
        // SAFETY: the context is initialised and owned; `data` is valid for its length.
        unsafe { sys::EVP_DigestUpdate(self.0, data.as_ptr().cast(), data.len()) == 1 }
    }

    fn finish(self, out: &mut [u8]) -> bool {
        // SAFETY: the context is initialised and owned; `out` has `out.len()` writable bytes.
        unsafe { sys::EVP_DigestFinalXOF(self.0, out.as_mut_ptr(), out.len()) == 1 }
    }
}

impl Drop for Shake256 {
    fn drop(&mut self) {
        // SAFETY: the context came from EVP_MD_CTX_new and is freed once (aws-lc clears the
        // state it frees).
        unsafe { sys::EVP_MD_CTX_free(self.0) }
    }
}

// SAFETY: the context is owned by this value alone and used by one thread at a time (`&mut`).
unsafe impl Send for Shake256 {}

/// The message representative μ = SHAKE256(tr ‖ M′, 64) of a pure signature, computed as the
/// message comes: the same value ML-DSA.Sign and ML-DSA.Verify compute from the whole message
/// (FIPS 204 Algorithm 2 line 6, Algorithm 3 line 7; `M′` = `0 ‖ |ctx| ‖ ctx ‖ M`). Constant
/// memory whatever the message's length.
pub struct Mu(Shake256);

impl Mu {
    /// Starts μ with `tr` and the part of `M′` before the message.
    pub fn start(tr: &[u8; 64], header: &[u8]) -> Option<Mu> {
        let mut h = Shake256::new()?;
        (h.update(tr) && h.update(header)).then_some(Mu(h))
    }

    pub fn update(&mut self, data: &[u8]) -> bool {
        self.0.update(data)
    }

    pub fn finish(self) -> Option<[u8; 64]> {
        let mut mu = [0u8; 64];
        self.0.finish(&mut mu).then_some(mu)
    }
}

/// aws-lc's ML-DSA private key, ready to sign a μ ([`MlDsa::mu_key`]).
pub struct MuKey(Pkey);

/// The 32 bytes of `rnd` the caller drew (aws-lc's DRBG) or chose (zero: deterministic), handed
/// to RustCrypto's μ signing, which takes its randomness from a random generator: once, then no
/// more.
struct GivenRnd(Option<[u8; 32]>);

/// [`GivenRnd`] had no more to give.
#[derive(Debug)]
struct Spent;

impl std::fmt::Display for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rnd already used")
    }
}

impl std::error::Error for Spent {}

impl ml_dsa::signature::rand_core::TryRng for GivenRnd {
    type Error = Spent;

    fn try_next_u32(&mut self) -> Result<u32, Spent> {
        Err(Spent)
    }

    fn try_next_u64(&mut self) -> Result<u64, Spent> {
        Err(Spent)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Spent> {
        match self.0.take() {
            Some(rnd) if dst.len() == rnd.len() => {
                dst.copy_from_slice(&rnd);
                Ok(())
            }
            _ => Err(Spent),
        }
    }
}

impl ml_dsa::signature::rand_core::TryCryptoRng for GivenRnd {}

impl Drop for GivenRnd {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
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

    /// μ of a message given in parts, signed or verified, agrees with the whole-message functions:
    /// RustCrypto's μ signing equals `Sign_internal` byte for byte for any `rnd` (so hedged
    /// signatures with a context are FIPS 204's too), aws-lc's μ signature verifies as a pure
    /// signature and the reverse, and both verifications agree.
    #[test]
    fn mu_paths_agree_with_whole_messages() {
        for set in MlDsa::ALL {
            let (sk, pk) = set.from_seed(&[3u8; 32]).unwrap();
            let tr = set.tr_of_private(&sk).unwrap();
            assert_eq!(set.tr_of_public(&pk), Some(tr), "tr = SHAKE256(pk)");
            let msg: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
            let header = [0u8, 3, b'c', b't', b'x'];
            let mut mu = Mu::start(&tr, &header).unwrap();
            for part in msg.chunks(9999) {
                assert!(mu.update(part));
            }
            let mu = mu.finish().unwrap();
            let rnd = [0x42u8; 32];
            let whole = set.sign_internal(&sk, &[&header, &msg], &rnd).unwrap();
            assert_eq!(set.sign_mu_internal(&sk, &mu, &rnd), Some(whole.clone()), "{}", set.name());
            assert!(set.verify_mu(&pk, &mu, &whole) && set.verify_mu_internal(&pk, &mu, &whole));
            // Empty context: aws-lc's μ signature is a pure signature of the message.
            let mut mu0 = Mu::start(&tr, &[0, 0]).unwrap();
            assert!(mu0.update(&msg));
            let mu0 = mu0.finish().unwrap();
            let sig = set.sign_mu(&set.mu_key(&sk).unwrap(), &mu0).unwrap();
            assert!(set.verify_pure(&pk, &msg, &sig) && set.verify_mu_internal(&pk, &mu0, &sig));
            let kp = set.key_pair(&sk).unwrap();
            assert!(set.verify_mu(&pk, &mu0, &set.sign_pure(&kp, &msg).unwrap()));
            assert!(!set.verify_mu(&pk, &mu, &sig), "another μ");
            assert!(set.mu_key(&sk[1..]).is_none() && set.tr_of_private(&sk[1..]).is_none());
        }
    }

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
