//! Elliptic curves over prime fields (P-256, P-384, P-521; outside the approved mode also P-224,
//! secp256k1 and the Brainpool curves of RFC 5639): key pair generation, ECDSA (raw and with
//! SHA-1/SHA-2) and ECDH (`CKM_ECDH1_DERIVE`, also for X25519 keys, with the ANSI X9.63 KDFs).
//! The curves and their encodings (`CKA_EC_PARAMS`, `CKA_EC_POINT`) are `keys::ec`'s.

use super::{GeneratedPair, Mechanism, MechanismInfo, Param, Registry, SignOperation, VerifyOperation};
use crate::crypto::digest::{self, Context};
use crate::crypto::ecdh as agreement;
use crate::crypto::ecdh::{AsBigEndian, EcPrivateKeyBin};
use crate::crypto::ecdsa::{SigningKey, VerifyingKey};
use crate::error::{err, Result};
use crate::keys::ec::{ec_point, scalar, Curve};
use crate::object::{AttrMap, Kept, Object};
use crate::policy::Condition;
use cryptoki_sys::*;

use zeroize::Zeroizing;

/// The `CKA_EC_PARAMS` of a key pair generation: from the public template (required), and equal
/// in the private template if given there too.
pub fn keygen_params(public: &AttrMap, private: &AttrMap) -> Result<(Curve, Vec<u8>)> {
    let params = public.get(&CKA_EC_PARAMS).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
    if private.get(&CKA_EC_PARAMS).is_some_and(|p| p != params) {
        return Err(err(CKR_TEMPLATE_INCONSISTENT));
    }
    Ok((Curve::from_params(params)?, params.to_vec()))
}

/// The flags every EC mechanism reports.
const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

fn ec_info(flags: CK_FLAGS) -> MechanismInfo {
    MechanismInfo { min_key: 224, max_key: 521, flags: flags | EC_FLAGS }
}

/// `CKM_EC_KEY_PAIR_GEN`.
struct KeyPairGen;

impl Mechanism for KeyPairGen {
    fn info(&self) -> MechanismInfo {
        ec_info(CKF_GENERATE_KEY_PAIR)
    }

    fn generate_key_pair(&self, param: &Param, public: &AttrMap, private: &AttrMap) -> Result<GeneratedPair> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let (curve, params) = keygen_params(public, private)?;
        if !curve.is_prime() {
            return Err(err(CKR_CURVE_NOT_SUPPORTED));
        }
        let failed = |_| err(CKR_FUNCTION_FAILED);
        let (d, q): (Zeroizing<Vec<u8>>, Vec<u8>) = match curve.agreement() {
            Some(alg) => {
                let sk = agreement::PrivateKey::generate(alg).map_err(failed)?;
                let d: EcPrivateKeyBin = sk.as_be_bytes().map_err(failed)?;
                let q = sk.compute_public_key().map_err(failed)?;
                (Zeroizing::new(d.as_ref().to_vec()), q.as_ref().to_vec())
            }
            None => {
                // A curve this build's aws-lc lacks is an unsupported curve.
                let k = SigningKey::generate(curve.nid()?, curve.field_len()).ok_or(err(CKR_CURVE_NOT_SUPPORTED))?;
                let d = k.scalar().ok_or(err(CKR_FUNCTION_FAILED))?;
                (d, k.public_point().ok_or(err(CKR_FUNCTION_FAILED))?)
            }
        };
        let point = ec_point(&q)?;
        Ok(GeneratedPair {
            key_type: CKK_EC,
            public: vec![(CKA_EC_PARAMS, params.clone().into()), (CKA_EC_POINT, point.into())],
            private: vec![(CKA_EC_PARAMS, params.into()), (CKA_VALUE, d.to_vec().into())],
            forms: (None, None),
        })
    }
}

/// What an ECDSA operation signs: the data itself (`CKM_ECDSA`, single part) or its hash.
enum Input {
    Raw(Vec<u8>),
    Hashed(Context),
}

impl Input {
    fn new(hash: Option<&'static digest::Algorithm>) -> Input {
        match hash {
            Some(a) => Input::Hashed(Context::new(a)),
            None => Input::Raw(Vec::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Input::Raw(v) => v.extend_from_slice(data),
            Input::Hashed(c) => c.update(data),
        }
    }

    fn digest(self) -> Vec<u8> {
        match self {
            Input::Raw(v) => v,
            Input::Hashed(c) => c.finish().as_ref().to_vec(),
        }
    }

    fn multipart(&self) -> bool {
        matches!(self, Input::Hashed(_))
    }
}

/// `CKM_ECDSA` (hash `None`) and `CKM_ECDSA_SHA*`.
struct Ecdsa {
    hash: Option<&'static digest::Algorithm>,
}

struct EcdsaSign {
    key: std::sync::Arc<Kept<SigningKey>>,
    input: Input,
}

impl SignOperation for EcdsaSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        let this = *self;
        this.key.sign(&this.input.digest()).ok_or(err(CKR_FUNCTION_FAILED))
    }

    fn multipart(&self) -> bool {
        self.input.multipart()
    }
}

struct EcdsaVerify {
    key: std::sync::Arc<Kept<VerifyingKey>>,
    field: usize,
    input: Input,
}

impl VerifyOperation for EcdsaVerify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data);
        Ok(())
    }

    fn finish(self: Box<Self>, signature: &[u8]) -> Result<()> {
        if signature.len() != 2 * self.field {
            return Err(err(CKR_SIGNATURE_LEN_RANGE));
        }
        let this = *self;
        if this.key.verify(&this.input.digest(), signature) {
            Ok(())
        } else {
            Err(err(CKR_SIGNATURE_INVALID))
        }
    }

    fn multipart(&self) -> bool {
        self.input.multipart()
    }
}

/// The aws-lc private key of a prime-curve key object, made once per object and kept with it
/// (ECDSA and ECDH share it).
fn signing_key(key: &Object) -> Result<std::sync::Arc<Kept<SigningKey>>> {
    let curve = prime_curve(key)?;
    key.parsed(|| {
        let d = scalar(key, curve)?;
        SigningKey::new(curve.nid()?, curve.field_len(), &d).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))
    })
}

/// The prime curve of an EC key (other curves cannot do ECDSA).
fn prime_curve(key: &Object) -> Result<Curve> {
    let curve = Curve::of_key(key)?;
    if !curve.is_prime() {
        return Err(err(CKR_CURVE_NOT_SUPPORTED));
    }
    Ok(curve)
}

impl Mechanism for Ecdsa {
    fn info(&self) -> MechanismInfo {
        ec_info(CKF_SIGN | CKF_VERIFY)
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_EC]
    }

    fn sign(&self, param: &Param, key: &Object) -> Result<Box<dyn SignOperation>> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        if key.class() != CKO_PRIVATE_KEY {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        let key = signing_key(key)?;
        Ok(Box::new(EcdsaSign { key, input: Input::new(self.hash) }))
    }

    fn verify(&self, param: &Param, key: &Object) -> Result<Box<dyn VerifyOperation>> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        if key.class() != CKO_PUBLIC_KEY {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        let curve = prime_curve(key)?;
        // The aws-lc public key is made (its point decoded and checked) once per object.
        let vk = key.parsed(|| {
            let point = curve.point(key.get(CKA_EC_POINT).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?)?;
            VerifyingKey::new(curve.nid()?, curve.field_len(), point).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))
        })?;
        Ok(Box::new(EcdsaVerify { key: vk, field: curve.field_len(), input: Input::new(self.hash) }))
    }
}

/// The longest key an X9.63 KDF derives here (far above any key type's size).
const MAX_DERIVED: usize = 64 * 1024;

/// How a KDF of `CK_ECDH1_DERIVE_PARAMS` orders its hash input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KdfOrder {
    /// ANSI X9.63 (`CKD_SHA*_KDF`): `Hash(Z ‖ counter ‖ SharedInfo)`.
    X963,
    /// SP 800-56C Rev. 2 §4.1 one-step, hash option (`CKD_SHA*_KDF_SP800`):
    /// `Hash(counter ‖ Z ‖ FixedInfo)`.
    Sp800,
}

/// The hash-based KDFs of `CK_ECDH1_DERIVE_PARAMS`: `Hash(…)` for counter = 1, 2, … in the
/// order `order` gives, concatenated and truncated to `len`.
pub(crate) fn hash_kdf(
    alg: &'static digest::Algorithm,
    order: KdfOrder,
    z: &[u8],
    shared: &[u8],
    len: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + alg.output_len());
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut c = Context::new(alg);
        if order == KdfOrder::X963 {
            c.update(z);
            c.update(&counter.to_be_bytes());
        } else {
            c.update(&counter.to_be_bytes());
            c.update(z);
        }
        c.update(shared);
        out.extend_from_slice(c.finish().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

pub(crate) fn kdf_hash(kdf: CK_EC_KDF_TYPE) -> Result<Option<(&'static digest::Algorithm, KdfOrder)>> {
    use KdfOrder::{Sp800, X963};
    Ok(Some(match kdf {
        CKD_NULL => return Ok(None),
        CKD_SHA1_KDF => (&digest::SHA1_FOR_LEGACY_USE_ONLY, X963),
        CKD_SHA224_KDF => (&digest::SHA224, X963),
        CKD_SHA256_KDF => (&digest::SHA256, X963),
        CKD_SHA384_KDF => (&digest::SHA384, X963),
        CKD_SHA512_KDF => (&digest::SHA512, X963),
        CKD_SHA1_KDF_SP800 => (&digest::SHA1_FOR_LEGACY_USE_ONLY, Sp800),
        CKD_SHA224_KDF_SP800 => (&digest::SHA224, Sp800),
        CKD_SHA256_KDF_SP800 => (&digest::SHA256, Sp800),
        CKD_SHA384_KDF_SP800 => (&digest::SHA384, Sp800),
        CKD_SHA512_KDF_SP800 => (&digest::SHA512, Sp800),
        _ => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
    }))
}

/// The raw shared secret of an ECDH agreement between a private key object and a peer's public
/// key (raw point or DER OCTET STRING). An invalid peer key is `CKR_MECHANISM_PARAM_INVALID`.
/// SSP: ECDH shared secret Z
pub fn shared_secret(base: &Object, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if base.class() != CKO_PRIVATE_KEY {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    let curve = Curve::of_key(base)?;
    if curve == Curve::Ed25519 {
        return Err(err(CKR_CURVE_NOT_SUPPORTED));
    }
    let peer = curve.point(peer).map_err(|_| err(CKR_MECHANISM_PARAM_INVALID))?;
    if curve.is_prime() {
        return signing_key(base)?.agree(peer).ok_or(err(CKR_MECHANISM_PARAM_INVALID));
    }
    let alg = curve.agreement().ok_or(err(CKR_CURVE_NOT_SUPPORTED))?;
    // The aws-lc private key is made (its public point computed) once per object.
    let sk = base.parsed(|| {
        let d = scalar(base, curve)?;
        agreement::PrivateKey::from_private_key(alg, &d).map_err(|_| err(CKR_KEY_TYPE_INCONSISTENT))
    })?;
    let pk = agreement::UnparsedPublicKey::new(alg, peer);
    agreement::agree(&sk, pk, err(CKR_MECHANISM_PARAM_INVALID), |z| Ok(Zeroizing::new(z.to_vec())))
}

/// `CKM_ECDH1_DERIVE`, for prime-curve (`CKK_EC`) and X25519 (`CKK_EC_MONTGOMERY`) keys.
struct Ecdh1Derive;

impl Mechanism for Ecdh1Derive {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: 224, max_key: 521, flags: CKF_DERIVE | EC_FLAGS }
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_EC, CKK_EC_MONTGOMERY]
    }

    /// `ecdh_sp800_56a`: no KDF (the services then keep Z inside, `services::keys`), the ANS
    /// X9.63 KDF with SHA-224/256/384/512 (SP 800-135 Rev. 1 §4.1), or the SP 800-56C Rev. 2
    /// one-step KDF with the same hashes; SHA-1 in neither.
    fn meets(&self, condition: Condition, param: &Param) -> bool {
        let Param::Ecdh1 { kdf, .. } = param else { return false };
        condition == Condition::EcdhSp80056a
            && matches!(
                *kdf,
                CKD_NULL
                    | CKD_SHA224_KDF
                    | CKD_SHA256_KDF
                    | CKD_SHA384_KDF
                    | CKD_SHA512_KDF
                    | CKD_SHA224_KDF_SP800
                    | CKD_SHA256_KDF_SP800
                    | CKD_SHA384_KDF_SP800
                    | CKD_SHA512_KDF_SP800
            )
    }

    fn derive(&self, param: &Param, base: &Object, len: Option<usize>) -> Result<Vec<u8>> {
        let Param::Ecdh1 { kdf, shared_data, public_data } = param else {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        };
        let hash = kdf_hash(*kdf)?;
        if hash.is_none() && !shared_data.is_empty() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        if len == Some(0) {
            return Err(err(CKR_KEY_SIZE_RANGE));
        }
        let mut z = shared_secret(base, public_data)?;
        match hash {
            // The raw secret, shortened to the requested length by removing bytes from its
            // leading end (as PKCS#11 specifies for Diffie-Hellman derivations).
            None => {
                let n = len.unwrap_or(z.len());
                if n > z.len() {
                    return Err(err(CKR_KEY_SIZE_RANGE));
                }
                if n == z.len() {
                    // The whole secret: handed on as it is, not copied (it is wiped with the
                    // key object that holds it).
                    return Ok(std::mem::take(&mut *z));
                }
                Ok(z[z.len() - n..].to_vec())
            }
            Some((alg, order)) => {
                let n = len.unwrap_or(alg.output_len());
                if n > MAX_DERIVED {
                    return Err(err(CKR_KEY_SIZE_RANGE));
                }
                Ok(hash_kdf(alg, order, &z, shared_data, n))
            }
        }
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_EC_KEY_PAIR_GEN, Box::new(KeyPairGen));
    r.add(CKM_ECDSA, Box::new(Ecdsa { hash: None }));
    for (m, h) in [
        (CKM_ECDSA_SHA1, CKM_SHA_1),
        (CKM_ECDSA_SHA224, CKM_SHA224),
        (CKM_ECDSA_SHA256, CKM_SHA256),
        (CKM_ECDSA_SHA384, CKM_SHA384),
        (CKM_ECDSA_SHA512, CKM_SHA512),
    ] {
        if let Some(a) = super::digest::algorithm(h) {
            r.add(m, Box::new(Ecdsa { hash: Some(a) }));
        }
    }
    r.add(CKM_ECDH1_DERIVE, Box::new(Ecdh1Derive));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x963_kdf_counter_blocks() {
        // Two SHA-256 blocks: counters 1 and 2, then truncation.
        let out = hash_kdf(&digest::SHA256, KdfOrder::X963, b"z", b"info", 40);
        let mut c = Context::new(&digest::SHA256);
        c.update(b"z");
        c.update(&1u32.to_be_bytes());
        c.update(b"info");
        assert_eq!(&out[..32], c.finish().as_ref());
        assert_eq!(out.len(), 40);
        // SP 800-56C one-step: the counter first; its second block is counter 2.
        let out = hash_kdf(&digest::SHA256, KdfOrder::Sp800, b"z", b"info", 40);
        let mut c = Context::new(&digest::SHA256);
        c.update(&2u32.to_be_bytes());
        c.update(b"z");
        c.update(b"info");
        assert_eq!(&out[32..], &c.finish().as_ref()[..8]);
    }
}
