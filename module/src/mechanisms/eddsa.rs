//! Edwards and Montgomery curves: Ed25519 key pairs and signatures (`CKM_EC_EDWARDS_KEY_PAIR_GEN`,
//! `CKM_EDDSA`, pure Ed25519) and X25519 key pairs (`CKM_EC_MONTGOMERY_KEY_PAIR_GEN`; the agreement
//! itself is `CKM_ECDH1_DERIVE` in `ec.rs`). Encodings as RFC 8410 and PKCS#11 3.x give them:
//! `CKA_EC_PARAMS` the curve's OID, `CKA_EC_POINT` the 32-byte public key in a DER OCTET STRING,
//! private `CKA_VALUE` the 32-byte seed (Ed25519) or scalar (X25519). Ed448 and X448 are not
//! implemented: `CKR_CURVE_NOT_SUPPORTED`.

use super::ec::keygen_params;
use super::{GeneratedPair, Mechanism, MechanismInfo, Param, Registry, SignOperation, VerifyOperation};
use crate::crypto::ecdh as agreement;
use crate::crypto::ed25519::{self as signature, Ed25519KeyPair, KeyPair};
use crate::crypto::ed25519::{AsBigEndian, Curve25519SeedBin};
use crate::error::{err, Result};
use crate::keys::ec::{ec_point, Curve};
use crate::object::{AttrMap, Kept, Object};
use crate::policy::Condition;
use cryptoki_sys::*;
use zeroize::Zeroizing;

fn info(flags: CK_FLAGS) -> MechanismInfo {
    MechanismInfo { min_key: 255, max_key: 255, flags: flags | CKF_EC_NAMEDCURVE }
}

/// `CKM_EC_EDWARDS_KEY_PAIR_GEN` (Ed25519) and `CKM_EC_MONTGOMERY_KEY_PAIR_GEN` (X25519): the
/// curve each generates; the template must name it.
struct KeyPairGen(Curve);

impl Mechanism for KeyPairGen {
    fn info(&self) -> MechanismInfo {
        info(CKF_GENERATE_KEY_PAIR)
    }

    fn generate_key_pair(&self, param: &Param, public: &AttrMap, private: &AttrMap) -> Result<GeneratedPair> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        let (curve, params) = keygen_params(public, private)?;
        if curve != self.0 {
            return Err(err(CKR_CURVE_NOT_SUPPORTED));
        }
        let failed = |_| err(CKR_FUNCTION_FAILED);
        // The private value (an Ed25519 seed, an X25519 scalar) and the public point.
        let (secret, point): (Curve25519SeedBin, Vec<u8>) = if curve == Curve::Ed25519 {
            let kp = Ed25519KeyPair::generate().map_err(failed)?;
            (kp.seed().map_err(failed)?.as_be_bytes().map_err(failed)?, kp.public_key().as_ref().to_vec())
        } else {
            let sk = agreement::PrivateKey::generate(&agreement::X25519).map_err(failed)?;
            (sk.as_be_bytes().map_err(failed)?, sk.compute_public_key().map_err(failed)?.as_ref().to_vec())
        };
        Ok(GeneratedPair {
            key_type: curve.key_type(),
            public: vec![(CKA_EC_PARAMS, params.clone().into()), (CKA_EC_POINT, ec_point(&point)?.into())],
            private: vec![(CKA_EC_PARAMS, params.into()), (CKA_VALUE, secret.as_ref().to_vec().into())],
            forms: (None, None),
        })
    }
}

/// `CKM_EDDSA`: pure Ed25519 without a parameter; with `CK_EDDSA_PARAMS`, Ed25519ph (`phFlag`
/// true) or Ed25519ctx (`phFlag` false, a context of 1 to 255 bytes), as RFC 8032 §5.1 defines
/// them. The message is buffered, so `C_SignUpdate` works too.
struct Eddsa;

/// Which EdDSA a parameter selects.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Variant {
    Pure,
    /// (pre-hash, context): Ed25519ph when true, Ed25519ctx when false.
    WithContext(bool, Vec<u8>),
}

impl Variant {
    /// No parameter is pure Ed25519. A parameter always names Ed25519ph or Ed25519ctx, never pure
    /// Ed25519 again: its signatures differ, so an application asking for a variant must get it.
    /// Ed25519ctx needs a non-empty context (RFC 8032 §5.1); contexts are at most 255 bytes.
    fn of(param: &Param) -> Result<Variant> {
        let (prehash, context) = match param {
            Param::None => return Ok(Variant::Pure),
            Param::Eddsa { prehash, context } => (*prehash, context),
            _ => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
        };
        if context.len() > 255 || (!prehash && context.is_empty()) {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        Ok(Variant::WithContext(prehash, crate::error::try_copy(context)?))
    }
}

struct EddsaSign {
    key: std::sync::Arc<Kept<Ed25519KeyPair>>,
    /// aws-lc's private key form (seed ‖ public key), for the variants with a context.
    private: Option<Zeroizing<[u8; 64]>>,
    variant: Variant,
    msg: Vec<u8>,
}

impl SignOperation for EddsaSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.msg.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>> {
        match (&self.variant, &self.private) {
            (Variant::WithContext(prehash, context), Some(private)) => {
                let sig = crate::crypto::ed25519::sign(*prehash, private, &self.msg, context.as_slice())
                    .ok_or(err(CKR_FUNCTION_FAILED))?;
                Ok(sig.to_vec())
            }
            _ => {
                let sig = self.key.try_sign(&self.msg).map_err(|_| err(CKR_FUNCTION_FAILED))?;
                Ok(sig.as_ref().to_vec())
            }
        }
    }
}

struct EddsaVerify {
    point: [u8; 32],
    variant: Variant,
    msg: Vec<u8>,
}

impl VerifyOperation for EddsaVerify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.msg.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>, sig: &[u8]) -> Result<()> {
        let sig: &[u8; 64] = sig.try_into().map_err(|_| err(CKR_SIGNATURE_LEN_RANGE))?;
        let ok = match &self.variant {
            Variant::Pure => {
                signature::UnparsedPublicKey::new(&signature::ED25519, &self.point).verify(&self.msg, sig).is_ok()
            }
            Variant::WithContext(prehash, context) => {
                crate::crypto::ed25519::verify(*prehash, &self.point, &self.msg, sig, context)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(err(CKR_SIGNATURE_INVALID))
        }
    }
}

/// Checks the parameter and the key's class and curve; gives the variant.
fn ed25519_key(param: &Param, key: &Object, class: CK_OBJECT_CLASS) -> Result<Variant> {
    let v = Variant::of(param)?;
    if key.class() != class {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    if Curve::of_key(key)? != Curve::Ed25519 {
        return Err(err(CKR_CURVE_NOT_SUPPORTED));
    }
    Ok(v)
}

impl Mechanism for Eddsa {
    fn info(&self) -> MechanismInfo {
        info(CKF_SIGN | CKF_VERIFY)
    }

    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[CKK_EC_EDWARDS]
    }

    fn sign(&self, param: &Param, key: &Object) -> Result<Box<dyn SignOperation>> {
        let variant = ed25519_key(param, key, CKO_PRIVATE_KEY)?;
        let seed = key.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
        if seed.len() != 32 {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        // The key pair (and its public key, which Ed25519 signing needs) is made once per object.
        let kp =
            key.parsed(|| Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| err(CKR_KEY_TYPE_INCONSISTENT)))?;
        let private = match variant {
            Variant::Pure => None,
            Variant::WithContext(..) => {
                let mut p = Zeroizing::new([0u8; 64]);
                p[..32].copy_from_slice(seed);
                p[32..].copy_from_slice(kp.public_key().as_ref());
                Some(p)
            }
        };
        Ok(Box::new(EddsaSign { key: kp, private, variant, msg: Vec::new() }))
    }

    fn verify(&self, param: &Param, key: &Object) -> Result<Box<dyn VerifyOperation>> {
        let variant = ed25519_key(param, key, CKO_PUBLIC_KEY)?;
        let point = Curve::Ed25519.point(key.get(CKA_EC_POINT).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?)?;
        let point: [u8; 32] = point.try_into().map_err(|_| err(CKR_KEY_TYPE_INCONSISTENT))?;
        Ok(Box::new(EddsaVerify { point, variant, msg: Vec::new() }))
    }

    fn meets(&self, condition: Condition, param: &Param) -> bool {
        // FIPS 186-5 approves pure Ed25519 and HashEdDSA (Ed25519ph), not Ed25519ctx.
        condition == Condition::EddsaFips186
            && match param {
                Param::None => true,
                Param::Eddsa { prehash: true, context } => context.len() <= 255,
                _ => false,
            }
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_EC_EDWARDS_KEY_PAIR_GEN, Box::new(KeyPairGen(Curve::Ed25519)));
    r.add(CKM_EC_MONTGOMERY_KEY_PAIR_GEN, Box::new(KeyPairGen(Curve::X25519)));
    r.add(CKM_EDDSA, Box::new(Eddsa));
}
