//! Post-quantum signatures: ML-DSA (FIPS 204) and SLH-DSA (FIPS 205), as PKCS #11 3.2 names them.
//!
//! - `CKM_ML_DSA_KEY_PAIR_GEN`, `CKM_SLH_DSA_KEY_PAIR_GEN`: the parameter set comes from the public
//!   template's `CKA_PARAMETER_SET`.
//! - `CKM_ML_DSA`, `CKM_SLH_DSA`: pure signatures over the message, with the optional
//!   `CK_SIGN_ADDITIONAL_CONTEXT` (hedging, context of at most 255 bytes).
//! - `CKM_HASH_ML_DSA`, `CKM_HASH_SLH_DSA`: HashML-DSA / HashSLH-DSA over a digest the caller
//!   computed (`CK_HASH_SIGN_ADDITIONAL_CONTEXT` names its hash); single-part.
//! - `CKM_HASH_ML_DSA_<hash>`, `CKM_HASH_SLH_DSA_<hash>`: the same with the token hashing the message,
//!   single- or multi-part.
//!
//! Every variant is one computation: the message representative `M'` of FIPS 204 §5.2/§5.4 and
//! FIPS 205 §10.2/§10.2.2 (`0 ‖ |ctx| ‖ ctx ‖ M` for pure signatures, `1 ‖ |ctx| ‖ ctx ‖ OID ‖
//! PH(M)` for pre-hash ones) goes to the internal signing function, with fresh randomness (hedged)
//! or without (deterministic). The one exception is pure ML-DSA with an empty context, hedged: that
//! is aws-lc's own signing and verification (`crypto::mldsa`), which the approved mode uses
//! (condition `ml_dsa_in_module`).
//!
//! Pure ML-DSA streams: a message given in one part of at most [`ML_DSA_ONE_PART`] bytes is signed
//! or verified whole as above; a longer one, or one given in more than one part, goes into its
//! message representative μ = SHAKE256(tr ‖ M′) as it comes (`crypto::mldsa::Mu`, aws-lc's
//! SHAKE256), and the signature is made from μ or checked against it by the implementation that
//! serves the variant for a whole message (aws-lc for hedged signatures with an empty context and
//! their verification, RustCrypto for the others). The signatures are the same, byte for byte
//! when deterministic: FIPS 204 computes μ first either way. Memory stays constant whatever the
//! message's length.
//!
//! A pure SLH-DSA message is gathered whole: SLH-DSA hashes the message twice (FIPS 205 Algorithm
//! 19: once for the randomizer, once for the digest), so it cannot be streamed. It is bounded by
//! [`SLH_DSA_MAX_MESSAGE`], and data past it is `CKR_DATA_LEN_RANGE` (which ends the operation).
//! Longer messages are signed with HashSLH-DSA (`CKM_HASH_SLH_DSA_<hash>`), which streams.

use super::{
    DigestOperation, GeneratedPair, Mechanism, MechanismInfo, Param, Registry, SignOperation, VerifyOperation,
};
use crate::crypto::mldsa::{MlDsa, Mu, MuKey};
use crate::crypto::slhdsa::SlhDsa;
use crate::error::{err, Result};
use crate::object::{ulong, AttrMap, Kept, Object, Prepared};
use crate::policy::Condition;
use cryptoki_sys::*;
use sha3::digest::{ExtendableOutput, Update, XofReader};
use std::sync::{Arc, OnceLock};
use zeroize::Zeroizing;

/// The two families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    MlDsa,
    SlhDsa,
}

impl Family {
    fn key_type(self) -> CK_KEY_TYPE {
        match self {
            Family::MlDsa => CKK_ML_DSA,
            Family::SlhDsa => CKK_SLH_DSA,
        }
    }

    /// `CK_MECHANISM_INFO`'s key sizes: public keys in bytes (the 3.2 specification's unit).
    fn info(self, flags: CK_FLAGS) -> MechanismInfo {
        let (min_key, max_key) = match self {
            Family::MlDsa => (1312, 2592),
            Family::SlhDsa => (32, 64),
        };
        MechanismInfo { min_key, max_key, flags }
    }
}

/// The parameter set of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    MlDsa(MlDsa),
    SlhDsa(SlhDsa),
}

impl Set {
    fn of(family: Family, key: &Object) -> Result<Set> {
        Ok(match family {
            Family::MlDsa => Set::MlDsa(crate::keys::ml_dsa::set_of(key)?),
            Family::SlhDsa => Set::SlhDsa(crate::keys::slh_dsa::set_of(key)?),
        })
    }

    fn signature_len(self) -> usize {
        match self {
            Set::MlDsa(s) => s.signature_len(),
            Set::SlhDsa(s) => s.signature_len(),
        }
    }

    /// The internal signing function over `M'`; `hedged` adds fresh randomness (FIPS 204 `rnd`,
    /// FIPS 205 `addrnd`), otherwise the deterministic variant.
    fn sign_internal(self, sk: &[u8], m_prime: &[&[u8]], hedged: bool) -> Result<Vec<u8>> {
        let failed = || err(CKR_FUNCTION_FAILED);
        match self {
            Set::MlDsa(s) => {
                let mut rnd = Zeroizing::new([0u8; 32]);
                if hedged {
                    crate::crypto::random::fill(&mut rnd[..]).map_err(|_| failed())?;
                }
                s.sign_internal(sk, m_prime, &rnd).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))
            }
            Set::SlhDsa(s) => {
                let mut rnd = Zeroizing::new(vec![0u8; s.n()]);
                let addrnd = if hedged {
                    crate::crypto::random::fill(&mut rnd[..]).map_err(|_| failed())?;
                    Some(rnd.as_slice())
                } else {
                    None
                };
                s.sign_internal(sk, m_prime, addrnd).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))
            }
        }
    }

    fn verify_internal(self, pk: &[u8], m_prime: &[&[u8]], sig: &[u8]) -> bool {
        match self {
            Set::MlDsa(s) => s.verify_internal(pk, &m_prime.concat(), sig),
            Set::SlhDsa(s) => s.verify_internal(pk, m_prime, sig),
        }
    }
}

/// The hash functions of HashML-DSA and HashSLH-DSA, in `CKM_HASH_*_<hash>` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
    Shake128,
    Shake256,
}

impl PreHash {
    const ALL: [PreHash; 10] = [
        PreHash::Sha224,
        PreHash::Sha256,
        PreHash::Sha384,
        PreHash::Sha512,
        PreHash::Sha3_224,
        PreHash::Sha3_256,
        PreHash::Sha3_384,
        PreHash::Sha3_512,
        PreHash::Shake128,
        PreHash::Shake256,
    ];

    /// The family and hash of a `CKM_HASH_ML_DSA_<hash>` / `CKM_HASH_SLH_DSA_<hash>` mechanism.
    fn of_mechanism(m: CK_MECHANISM_TYPE) -> Option<(Family, PreHash)> {
        match m {
            CKM_HASH_ML_DSA_SHA224..=CKM_HASH_ML_DSA_SHAKE256 => {
                Some((Family::MlDsa, PreHash::ALL[(m - CKM_HASH_ML_DSA_SHA224) as usize]))
            }
            CKM_HASH_SLH_DSA_SHA224..=CKM_HASH_SLH_DSA_SHAKE256 => {
                Some((Family::SlhDsa, PreHash::ALL[(m - CKM_HASH_SLH_DSA_SHA224) as usize]))
            }
            _ => None,
        }
    }

    /// The hash a `CK_HASH_SIGN_ADDITIONAL_CONTEXT` names by its digest mechanism (SHAKE by the
    /// SHAKE key-derivation mechanisms, PKCS #11 having no SHAKE digest mechanism).
    fn of_digest(m: CK_MECHANISM_TYPE) -> Option<PreHash> {
        Some(match m {
            CKM_SHA224 => PreHash::Sha224,
            CKM_SHA256 => PreHash::Sha256,
            CKM_SHA384 => PreHash::Sha384,
            CKM_SHA512 => PreHash::Sha512,
            CKM_SHA3_224 => PreHash::Sha3_224,
            CKM_SHA3_256 => PreHash::Sha3_256,
            CKM_SHA3_384 => PreHash::Sha3_384,
            CKM_SHA3_512 => PreHash::Sha3_512,
            CKM_SHAKE_128_KEY_DERIVATION => PreHash::Shake128,
            CKM_SHAKE_256_KEY_DERIVATION => PreHash::Shake256,
            _ => return None,
        })
    }

    /// The digest's length: SHAKE128 gives 256 bits, SHAKE256 512 (FIPS 204 §5.4.1, FIPS 205 §10.2.2).
    fn len(self) -> usize {
        match self {
            PreHash::Sha224 | PreHash::Sha3_224 => 28,
            PreHash::Sha256 | PreHash::Sha3_256 | PreHash::Shake128 => 32,
            PreHash::Sha384 | PreHash::Sha3_384 => 48,
            PreHash::Sha512 | PreHash::Sha3_512 | PreHash::Shake256 => 64,
        }
    }

    /// The DER of the hash's OID (NIST CSOR 2.16.840.1.101.3.4.2.x).
    fn oid_der(self) -> [u8; 11] {
        let last = match self {
            PreHash::Sha256 => 1,
            PreHash::Sha384 => 2,
            PreHash::Sha512 => 3,
            PreHash::Sha224 => 4,
            PreHash::Sha3_224 => 7,
            PreHash::Sha3_256 => 8,
            PreHash::Sha3_384 => 9,
            PreHash::Sha3_512 => 10,
            PreHash::Shake128 => 11,
            PreHash::Shake256 => 12,
        };
        [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last]
    }

    fn hasher(self) -> Result<Hasher> {
        let digest = |m| super::registry().get(m)?.digest(&Param::None).map(Hasher::Digest);
        match self {
            PreHash::Sha224 => digest(CKM_SHA224),
            PreHash::Sha256 => digest(CKM_SHA256),
            PreHash::Sha384 => digest(CKM_SHA384),
            PreHash::Sha512 => digest(CKM_SHA512),
            PreHash::Sha3_224 => digest(CKM_SHA3_224),
            PreHash::Sha3_256 => digest(CKM_SHA3_256),
            PreHash::Sha3_384 => digest(CKM_SHA3_384),
            PreHash::Sha3_512 => digest(CKM_SHA3_512),
            PreHash::Shake128 => Ok(Hasher::Shake128(Box::default())),
            PreHash::Shake256 => Ok(Hasher::Shake256(Box::default())),
        }
    }
}

/// A running pre-hash.
enum Hasher {
    Digest(Box<dyn DigestOperation>),
    Shake128(Box<sha3::Shake128>),
    Shake256(Box<sha3::Shake256>),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Digest(d) => d.update(data),
            Hasher::Shake128(h) => h.update(data),
            Hasher::Shake256(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        let xof = |mut r: Box<dyn XofReader>, n: usize| {
            let mut out = vec![0u8; n];
            r.read(&mut out);
            out
        };
        match self {
            Hasher::Digest(d) => d.finish(),
            Hasher::Shake128(h) => xof(Box::new((*h).finalize_xof()), 32),
            Hasher::Shake256(h) => xof(Box::new((*h).finalize_xof()), 64),
        }
    }
}

/// Whether `m` takes `CK_SIGN_ADDITIONAL_CONTEXT` (the ABI layer decodes it for these).
pub fn takes_sign_context(m: CK_MECHANISM_TYPE) -> bool {
    matches!(m, CKM_ML_DSA | CKM_SLH_DSA) || PreHash::of_mechanism(m).is_some()
}

/// What a signature mechanism signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    /// The message (pure ML-DSA / SLH-DSA).
    Message,
    /// A digest the caller computed (`CKM_HASH_ML_DSA`, `CKM_HASH_SLH_DSA`).
    Digest,
    /// The message, hashed here.
    Hashed(PreHash),
}

/// The variant a parameter selects.
#[derive(Clone, Debug)]
struct Variant {
    hedge: CK_HEDGE_TYPE,
    context: Vec<u8>,
    prehash: Option<PreHash>,
}

impl Variant {
    fn of(input: Input, param: &Param) -> Result<Variant> {
        let bad = || err(CKR_MECHANISM_PARAM_INVALID);
        let (hedge, context, hash) = match param {
            Param::None if input != Input::Digest => (CKH_HEDGE_PREFERRED, Vec::new(), None),
            Param::SignContext { hedge, context, hash } => (*hedge, crate::error::try_copy(context)?, *hash),
            _ => return Err(bad()),
        };
        if hedge > CKH_DETERMINISTIC_REQUIRED || context.len() > 255 {
            return Err(bad());
        }
        let prehash = match (input, hash) {
            (Input::Digest, Some(h)) => Some(PreHash::of_digest(h).ok_or_else(bad)?),
            (Input::Message, None) => None,
            (Input::Hashed(h), None) => Some(h),
            _ => return Err(bad()),
        };
        Ok(Variant { hedge, context, prehash })
    }

    /// Whether a signature is hedged (fresh randomness): unless deterministic signing is required.
    fn hedged(&self) -> bool {
        self.hedge != CKH_DETERMINISTIC_REQUIRED
    }

    /// The part of `M'` before the message or its digest: `0 ‖ |ctx| ‖ ctx` (pure) or
    /// `1 ‖ |ctx| ‖ ctx ‖ OID` (pre-hash).
    fn header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(2 + self.context.len() + 11);
        h.push(u8::from(self.prehash.is_some()));
        h.push(self.context.len() as u8);
        h.extend_from_slice(&self.context);
        if let Some(p) = self.prehash {
            h.extend_from_slice(&p.oid_der());
        }
        h
    }

    /// Whether this is what aws-lc's module serves: pure ML-DSA, empty context, hedged.
    fn in_module(&self, family: Family) -> bool {
        family == Family::MlDsa && self.prehash.is_none() && self.context.is_empty() && self.hedged()
    }
}

/// Most bytes of a message pure SLH-DSA gathers to sign or verify (64 MiB).
pub const SLH_DSA_MAX_MESSAGE: usize = 64 << 20;

/// The longest single part pure ML-DSA signs or verifies whole (64 KiB); a longer part, or a
/// second one, streams into μ.
pub const ML_DSA_ONE_PART: usize = 64 << 10;

/// A pure ML-DSA message on its way: its only part so far (at most [`ML_DSA_ONE_PART`] bytes, in
/// [`Data::Buffer`]), or μ running.
struct Streaming {
    /// Parts seen.
    parts: usize,
    mu: Option<Mu>,
}

impl Streaming {
    /// Takes a part: into the buffer while it is the only one and short, else into μ (started
    /// with `tr` and `M′`'s header, then what the buffer held).
    fn update(
        &mut self,
        buffer: &mut Data,
        data: &[u8],
        tr: impl FnOnce() -> Option<[u8; 64]>,
        v: &Variant,
    ) -> Result<()> {
        let failed = || err(CKR_FUNCTION_FAILED);
        self.parts = self.parts.saturating_add(1);
        if self.mu.is_none() {
            if self.parts == 1 && data.len() <= ML_DSA_ONE_PART {
                return buffer.update(data);
            }
            let mut mu = Mu::start(&tr().ok_or_else(failed)?, &v.header()).ok_or_else(failed)?;
            if let Data::Buffer(b, _) = buffer {
                mu.update(b).then_some(()).ok_or_else(failed)?;
                *b = Vec::new();
            }
            self.mu = Some(mu);
        }
        match &mut self.mu {
            Some(mu) => mu.update(data).then_some(()).ok_or_else(failed),
            None => Err(failed()),
        }
    }

    /// μ, when the message went into it.
    fn finish(self) -> Result<Option<[u8; 64]>> {
        self.mu.map(|m| m.finish().ok_or(err(CKR_FUNCTION_FAILED))).transpose()
    }
}

/// aws-lc's key for signing a μ, made the first time an object signs a streamed message and kept
/// by the object (making it costs about a key generation); `None` inside when the key is none.
#[derive(Default)]
struct LazyMuKey(OnceLock<Option<MuKey>>);

/// The data of a running operation: the message (or the caller's digest), or a running hash.
enum Data {
    /// The message gathered, and the most it may hold.
    Buffer(Vec<u8>, usize),
    Hashing(Hasher),
}

impl Data {
    fn new(v: &Variant, input: Input, family: Family) -> Result<Data> {
        let max = match family {
            Family::SlhDsa => SLH_DSA_MAX_MESSAGE,
            Family::MlDsa => ML_DSA_ONE_PART,
        };
        Ok(match (input, v.prehash) {
            (Input::Hashed(_), Some(p)) => Data::Hashing(p.hasher()?),
            _ => Data::Buffer(Vec::new(), max),
        })
    }

    fn update(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Data::Buffer(b, max) => {
                if data.len() > *max - b.len() {
                    return Err(err(CKR_DATA_LEN_RANGE));
                }
                b.extend_from_slice(data);
            }
            Data::Hashing(h) => h.update(data),
        }
        Ok(())
    }

    /// The message or the digest that ends `M'`; a caller's digest must have its hash's length.
    fn finish(self, v: &Variant) -> Result<Vec<u8>> {
        match self {
            Data::Hashing(h) => Ok(h.finish()),
            Data::Buffer(b, _) => match v.prehash {
                Some(p) if b.len() != p.len() => Err(err(CKR_DATA_LEN_RANGE)),
                _ => Ok(b),
            },
        }
    }
}

/// aws-lc's form of an ML-DSA private key, made once per object.
struct ModuleKey(aws_lc_rs::signature::PqdsaKeyPair);

struct Sign {
    set: Set,
    family: Family,
    sk: Zeroizing<Vec<u8>>,
    module_key: Option<Arc<Kept<ModuleKey>>>,
    variant: Variant,
    input: Input,
    data: Data,
    /// Pure ML-DSA: the streaming state, and the object's key for signing μ.
    streaming: Option<(Streaming, Arc<Kept<LazyMuKey>>)>,
}

impl SignOperation for Sign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match (&mut self.streaming, self.set) {
            (Some((st, _)), Set::MlDsa(s)) => {
                let sk = &self.sk;
                st.update(&mut self.data, data, || s.tr_of_private(sk), &self.variant)
            }
            _ => self.data.update(data),
        }
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        let Sign { set, family, sk, module_key, variant, data, streaming, .. } = *self;
        if let (Some((st, lazy)), Set::MlDsa(s)) = (streaming, set) {
            if let Some(mu) = st.finish()? {
                if variant.in_module(family) {
                    let key = lazy.0.get_or_init(|| s.mu_key(&sk));
                    let key = key.as_ref().ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
                    return s.sign_mu(key, &mu).ok_or(err(CKR_FUNCTION_FAILED));
                }
                let mut rnd = Zeroizing::new([0u8; 32]);
                if variant.hedged() {
                    crate::crypto::random::fill(&mut rnd[..]).map_err(|_| err(CKR_FUNCTION_FAILED))?;
                }
                return s.sign_mu_internal(&sk, &mu, &rnd).ok_or(err(CKR_KEY_TYPE_INCONSISTENT));
            }
        }
        let body = data.finish(&variant)?;
        if let (true, Some(k), Set::MlDsa(s)) = (variant.in_module(family), &module_key, set) {
            return s.sign_pure(&k.0, &body).ok_or(err(CKR_FUNCTION_FAILED));
        }
        let sig = set.sign_internal(&sk, &[&variant.header(), &body], variant.hedged())?;
        debug_assert_eq!(sig.len(), set.signature_len());
        Ok(sig)
    }

    fn multipart(&self) -> bool {
        self.input != Input::Digest
    }
}

struct Verify {
    set: Set,
    family: Family,
    pk: Vec<u8>,
    variant: Variant,
    input: Input,
    data: Data,
    /// Pure ML-DSA: the streaming state.
    streaming: Option<Streaming>,
}

impl VerifyOperation for Verify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match (&mut self.streaming, self.set) {
            (Some(st), Set::MlDsa(s)) => {
                let pk = &self.pk;
                st.update(&mut self.data, data, || s.tr_of_public(pk), &self.variant)
            }
            _ => self.data.update(data),
        }
    }

    fn finish(self: Box<Self>, sig: &[u8]) -> Result<()> {
        let Verify { set, family, pk, variant, data, streaming, .. } = *self;
        if sig.len() != set.signature_len() {
            return Err(err(CKR_SIGNATURE_LEN_RANGE));
        }
        let streamed = match streaming {
            Some(st) => st.finish()?,
            None => None,
        };
        if let (Some(mu), Set::MlDsa(s)) = (streamed, set) {
            // As for a whole message: aws-lc's verification without a context, RustCrypto's with.
            let ok = if variant.context.is_empty() {
                s.verify_mu(&pk, &mu, sig)
            } else {
                s.verify_mu_internal(&pk, &mu, sig)
            };
            return if ok { Ok(()) } else { Err(err(CKR_SIGNATURE_INVALID)) };
        }
        let body = data.finish(&variant)?;
        let ok = match set {
            // Pure ML-DSA with an empty context (whatever the hedging, which verification ignores):
            // aws-lc's verification.
            Set::MlDsa(s) if family == Family::MlDsa && variant.prehash.is_none() && variant.context.is_empty() => {
                s.verify_pure(&pk, &body, sig)
            }
            _ => set.verify_internal(&pk, &[&variant.header(), &body], sig),
        };
        if ok {
            Ok(())
        } else {
            Err(err(CKR_SIGNATURE_INVALID))
        }
    }

    /// `C_VerifyUpdate`: for the mechanisms that hash the message, and for pure ML-DSA, which
    /// streams into μ. (Published PKCS #11 3.2 allows pure ML-DSA verification in parts only with
    /// the signature first; the OASIS working text since January 2026 allows `C_VerifyUpdate` too.
    /// Pure SLH-DSA needs the signature's randomizer before the message, and keeps the 3.2 rule.)
    fn multipart(&self) -> bool {
        matches!(self.input, Input::Hashed(_)) || self.streaming.is_some()
    }

    /// With the signature first, pure signatures are verified in parts too (the message is
    /// gathered); a caller's digest is still given whole.
    fn multipart_with_signature_first(&self) -> bool {
        self.input != Input::Digest
    }
}

/// `CKM_ML_DSA`, `CKM_SLH_DSA`, `CKM_HASH_*` and `CKM_HASH_*_<hash>`.
struct Signature {
    family: Family,
    input: Input,
}

impl Mechanism for Signature {
    fn info(&self) -> MechanismInfo {
        self.family.info(CKF_SIGN | CKF_VERIFY)
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        match self.family {
            Family::MlDsa => &[CKK_ML_DSA],
            Family::SlhDsa => &[CKK_SLH_DSA],
        }
    }

    fn sign(&self, param: &Param, key: &Object) -> Result<Box<dyn SignOperation>> {
        let variant = Variant::of(self.input, param)?;
        if key.class() != CKO_PRIVATE_KEY {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        let set = Set::of(self.family, key)?;
        let sk = key.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
        let module_key = match set {
            Set::MlDsa(s) if variant.in_module(self.family) => {
                Some(key.parsed(|| s.key_pair(sk).map(ModuleKey).ok_or(err(CKR_KEY_TYPE_INCONSISTENT)))?)
            }
            _ => None,
        };
        let data = Data::new(&variant, self.input, self.family)?;
        let streaming = match set {
            Set::MlDsa(_) if self.input == Input::Message => {
                Some((Streaming { parts: 0, mu: None }, key.parsed(|| Ok(LazyMuKey::default()))?))
            }
            _ => None,
        };
        Ok(Box::new(Sign {
            set,
            family: self.family,
            sk: Zeroizing::new(crate::error::try_copy(sk)?),
            module_key,
            variant,
            input: self.input,
            data,
            streaming,
        }))
    }

    fn verify(&self, param: &Param, key: &Object) -> Result<Box<dyn VerifyOperation>> {
        let variant = Variant::of(self.input, param)?;
        if key.class() != CKO_PUBLIC_KEY {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        let set = Set::of(self.family, key)?;
        let pk = key.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?.to_vec();
        let data = Data::new(&variant, self.input, self.family)?;
        let streaming = match set {
            Set::MlDsa(_) if self.input == Input::Message => Some(Streaming { parts: 0, mu: None }),
            _ => None,
        };
        Ok(Box::new(Verify { set, family: self.family, pk, variant, input: self.input, data, streaming }))
    }

    fn meets(&self, condition: Condition, param: &Param) -> bool {
        condition == Condition::MlDsaInModule && Variant::of(self.input, param).is_ok_and(|v| v.in_module(self.family))
    }
}

/// `CKM_ML_DSA_KEY_PAIR_GEN` and `CKM_SLH_DSA_KEY_PAIR_GEN`.
struct KeyPairGen(Family);

impl Mechanism for KeyPairGen {
    fn info(&self) -> MechanismInfo {
        self.0.info(CKF_GENERATE_KEY_PAIR)
    }

    fn generate_key_pair(&self, param: &Param, public: &AttrMap, private: &AttrMap) -> Result<GeneratedPair> {
        param.require_none()?;
        let set = super::keygen_parameter_set(public, private)?;
        let failed = |_| err(CKR_FUNCTION_FAILED);
        let unsupported = || err(CKR_PARAMETER_SET_NOT_SUPPORTED);
        let (pk, sk, seed, form) = match self.0 {
            Family::MlDsa => {
                let s = MlDsa::of(set).ok_or_else(unsupported)?;
                let mut seed = Zeroizing::new([0u8; 32]);
                crate::crypto::random::fill(&mut seed[..]).map_err(failed)?;
                let (kp, sk, pk) = s.key_pair_of_seed(&seed[..]).ok_or(err(CKR_FUNCTION_FAILED))?;
                // aws-lc's key pair, kept by the private key object: its pairwise test and its
                // first signature do not parse the expanded key again (which would compute the
                // public key from it once more).
                (pk, sk, Some(seed), Some(Prepared::shared(ModuleKey(kp))))
            }
            Family::SlhDsa => {
                let s = SlhDsa::of(set).ok_or_else(unsupported)?;
                let mut seeds = Zeroizing::new(vec![0u8; 3 * s.n()]);
                crate::crypto::random::fill(&mut seeds[..]).map_err(failed)?;
                let n = s.n();
                let sk = s
                    .keygen_internal(&seeds[..n], &seeds[n..2 * n], &seeds[2 * n..])
                    .ok_or(err(CKR_FUNCTION_FAILED))?;
                (sk[sk.len() - s.public_len()..].to_vec(), sk, None, None)
            }
        };
        let mut private = vec![(CKA_PARAMETER_SET, ulong(set)), (CKA_VALUE, sk.to_vec().into())];
        if let Some(seed) = seed {
            private.push((CKA_SEED, seed.to_vec().into()));
        }
        Ok(GeneratedPair {
            key_type: self.0.key_type(),
            public: vec![(CKA_PARAMETER_SET, ulong(set)), (CKA_VALUE, pk.into())],
            private,
            forms: (None, form),
        })
    }
}

pub fn register(r: &mut Registry) {
    for family in [Family::MlDsa, Family::SlhDsa] {
        let (gen, pure, digest, first) = match family {
            Family::MlDsa => (CKM_ML_DSA_KEY_PAIR_GEN, CKM_ML_DSA, CKM_HASH_ML_DSA, CKM_HASH_ML_DSA_SHA224),
            Family::SlhDsa => (CKM_SLH_DSA_KEY_PAIR_GEN, CKM_SLH_DSA, CKM_HASH_SLH_DSA, CKM_HASH_SLH_DSA_SHA224),
        };
        r.add(gen, Box::new(KeyPairGen(family)));
        r.add(pure, Box::new(Signature { family, input: Input::Message }));
        r.add(digest, Box::new(Signature { family, input: Input::Digest }));
        for (i, h) in PreHash::ALL.into_iter().enumerate() {
            r.add(first + i as CK_ULONG, Box::new(Signature { family, input: Input::Hashed(h) }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_mechanisms_map_in_order() {
        assert_eq!(PreHash::of_mechanism(CKM_HASH_ML_DSA_SHA224), Some((Family::MlDsa, PreHash::Sha224)));
        assert_eq!(PreHash::of_mechanism(CKM_HASH_ML_DSA_SHAKE256), Some((Family::MlDsa, PreHash::Shake256)));
        assert_eq!(PreHash::of_mechanism(CKM_HASH_SLH_DSA_SHA3_384), Some((Family::SlhDsa, PreHash::Sha3_384)));
        assert_eq!(PreHash::of_mechanism(CKM_ML_DSA), None);
        for h in PreHash::ALL {
            assert_eq!(h.hasher().unwrap().finish().len(), h.len());
        }
    }

    #[test]
    fn variants() {
        let p = |hedge, context: &[u8], hash| Param::SignContext { hedge, context: context.to_vec(), hash };
        assert!(Variant::of(Input::Message, &Param::None).unwrap().in_module(Family::MlDsa));
        assert!(!Variant::of(Input::Message, &Param::None).unwrap().in_module(Family::SlhDsa));
        assert!(!Variant::of(Input::Message, &p(CKH_DETERMINISTIC_REQUIRED, b"", None))
            .unwrap()
            .in_module(Family::MlDsa));
        assert!(!Variant::of(Input::Message, &p(CKH_HEDGE_REQUIRED, b"c", None)).unwrap().in_module(Family::MlDsa));
        assert!(Variant::of(Input::Message, &p(3, b"", None)).is_err());
        assert!(Variant::of(Input::Message, &p(0, &[0; 256], None)).is_err());
        assert!(Variant::of(Input::Digest, &Param::None).is_err());
        assert!(Variant::of(Input::Digest, &p(0, b"", Some(CKM_MD5))).is_err());
        let v = Variant::of(Input::Digest, &p(0, b"ab", Some(CKM_SHA256))).unwrap();
        assert_eq!(v.header(), [&[1u8, 2, b'a', b'b'][..], &PreHash::Sha256.oid_der()].concat());
    }
}
