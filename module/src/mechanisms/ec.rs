//! Elliptic curves over prime fields (P-256, P-384, P-521; outside the approved mode also P-224,
//! secp256k1 and the Brainpool curves of RFC 5639): key pair generation, ECDSA (raw and with
//! SHA-1/SHA-2) and ECDH (`CKM_ECDH1_DERIVE`, also for X25519 keys, with the ANSI X9.63 KDFs).
//! The curve encodings shared with the Edwards and Montgomery family (`eddsa.rs`) live here too:
//! `CKA_EC_PARAMS` as a DER named-curve OID (or the PrintableString curve name some applications
//! write) and `CKA_EC_POINT` as a DER OCTET STRING (a raw point is accepted as well).

use super::{GeneratedPair, Mechanism, MechanismInfo, Param, Registry, SignOperation, VerifyOperation};
use crate::crypto_ffi::ecdsa::{self as ffi, SigningKey, VerifyingKey};
use crate::error::{err, Result};
use crate::object::{AttrMap, Kept, Object};
use aws_lc_rs::agreement;
use aws_lc_rs::digest::{self, Context};
use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
use cryptoki_sys::*;
use pkcs8::der::asn1::{OctetStringRef, PrintableStringRef};
use pkcs8::der::{Decode, Encode};
use pkcs8::ObjectIdentifier;
use zeroize::Zeroizing;

const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_P224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.33");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const OID_BRAINPOOL_P256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");
const OID_BRAINPOOL_P384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.11");
const OID_BRAINPOOL_P512R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.13");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The curves Tessera implements. Anything else (Ed448, X448, explicit parameters …) is
/// `CKR_CURVE_NOT_SUPPORTED`; no curve is ever substituted for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    P224,
    Secp256k1,
    BrainpoolP256r1,
    BrainpoolP384r1,
    BrainpoolP512r1,
    Ed25519,
    X25519,
}

impl Curve {
    /// Reads `CKA_EC_PARAMS`: a DER OBJECT IDENTIFIER naming the curve, or a DER PrintableString
    /// with its name. Undecodable bytes are `CKR_DOMAIN_PARAMS_INVALID`; a well-formed encoding of
    /// a curve Tessera does not implement is `CKR_CURVE_NOT_SUPPORTED`.
    pub fn from_params(params: &[u8]) -> Result<Curve> {
        if let Ok(oid) = ObjectIdentifier::from_der(params) {
            return match oid {
                o if o == OID_P256 => Ok(Curve::P256),
                o if o == OID_P384 => Ok(Curve::P384),
                o if o == OID_P521 => Ok(Curve::P521),
                o if o == OID_P224 => Ok(Curve::P224),
                o if o == OID_SECP256K1 => Ok(Curve::Secp256k1),
                o if o == OID_BRAINPOOL_P256R1 => Ok(Curve::BrainpoolP256r1),
                o if o == OID_BRAINPOOL_P384R1 => Ok(Curve::BrainpoolP384r1),
                o if o == OID_BRAINPOOL_P512R1 => Ok(Curve::BrainpoolP512r1),
                o if o == OID_ED25519 => Ok(Curve::Ed25519),
                o if o == OID_X25519 => Ok(Curve::X25519),
                _ => Err(err(CKR_CURVE_NOT_SUPPORTED)),
            };
        }
        if let Ok(name) = PrintableStringRef::from_der(params) {
            return match name.as_str() {
                "prime256v1" | "secp256r1" => Ok(Curve::P256),
                "secp384r1" => Ok(Curve::P384),
                "secp521r1" => Ok(Curve::P521),
                "secp224r1" => Ok(Curve::P224),
                "secp256k1" => Ok(Curve::Secp256k1),
                "brainpoolP256r1" => Ok(Curve::BrainpoolP256r1),
                "brainpoolP384r1" => Ok(Curve::BrainpoolP384r1),
                "brainpoolP512r1" => Ok(Curve::BrainpoolP512r1),
                "edwards25519" => Ok(Curve::Ed25519),
                "curve25519" => Ok(Curve::X25519),
                _ => Err(err(CKR_CURVE_NOT_SUPPORTED)),
            };
        }
        // A SEQUENCE is explicit curve parameters: well-formed, but not a named curve we offer.
        if params.first() == Some(&0x30) {
            return Err(err(CKR_CURVE_NOT_SUPPORTED));
        }
        Err(err(CKR_DOMAIN_PARAMS_INVALID))
    }

    /// The curve of a key object, checked against its key type.
    pub fn of_key(key: &Object) -> Result<Curve> {
        let params = key.get(CKA_EC_PARAMS).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
        let curve = Curve::from_params(params)?;
        if key.ulong(CKA_KEY_TYPE) != Some(curve.key_type()) {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        Ok(curve)
    }

    /// The curve's usual name (as `policy/*.toml` writes it), whatever form `CKA_EC_PARAMS` took.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "secp256r1",
            Curve::P384 => "secp384r1",
            Curve::P521 => "secp521r1",
            Curve::P224 => "secp224r1",
            Curve::Secp256k1 => "secp256k1",
            Curve::BrainpoolP256r1 => "brainpoolP256r1",
            Curve::BrainpoolP384r1 => "brainpoolP384r1",
            Curve::BrainpoolP512r1 => "brainpoolP512r1",
            Curve::Ed25519 => "ed25519",
            Curve::X25519 => "x25519",
        }
    }

    /// The PKCS#11 key type of keys on this curve.
    pub fn key_type(self) -> CK_KEY_TYPE {
        match self {
            Curve::Ed25519 => CKK_EC_EDWARDS,
            Curve::X25519 => CKK_EC_MONTGOMERY,
            _ => CKK_EC,
        }
    }

    /// Field size in bytes: the length of a private scalar, of one point coordinate and of each
    /// half of an ECDSA signature.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P224 => 28,
            Curve::P256 | Curve::Secp256k1 | Curve::BrainpoolP256r1 => 32,
            Curve::P384 | Curve::BrainpoolP384r1 => 48,
            Curve::BrainpoolP512r1 => 64,
            Curve::P521 => 66,
            Curve::Ed25519 | Curve::X25519 => 32,
        }
    }

    fn nid(self) -> Result<i32> {
        match self {
            Curve::P256 => Ok(ffi::NID_P256),
            Curve::P384 => Ok(ffi::NID_P384),
            Curve::P521 => Ok(ffi::NID_P521),
            Curve::P224 => Ok(ffi::NID_P224),
            Curve::Secp256k1 => Ok(ffi::NID_SECP256K1),
            Curve::BrainpoolP256r1 => Ok(ffi::NID_BRAINPOOL_P256R1),
            Curve::BrainpoolP384r1 => Ok(ffi::NID_BRAINPOOL_P384R1),
            Curve::BrainpoolP512r1 => Ok(ffi::NID_BRAINPOOL_P512R1),
            Curve::Ed25519 | Curve::X25519 => Err(err(CKR_CURVE_NOT_SUPPORTED)),
        }
    }

    /// The aws-lc-rs algorithm of the curve, where aws-lc-rs has one (the NIST curves of the
    /// approved mode and X25519); the other prime curves go through `crypto_ffi::ecdsa`.
    fn agreement(self) -> Option<&'static agreement::Algorithm> {
        match self {
            Curve::P256 => Some(&agreement::ECDH_P256),
            Curve::P384 => Some(&agreement::ECDH_P384),
            Curve::P521 => Some(&agreement::ECDH_P521),
            Curve::Ed25519 | Curve::X25519 => Some(&agreement::X25519),
            _ => None,
        }
    }

    fn is_prime(self) -> bool {
        !matches!(self, Curve::Ed25519 | Curve::X25519)
    }

    /// Whether `p` has the shape of a public point on this curve: SEC 1 uncompressed (`04‖X‖Y`)
    /// or compressed (`02|03‖X`) for the prime curves, 32 raw bytes for the 25519 curves.
    fn point_shape(self, p: &[u8]) -> bool {
        let n = self.field_len();
        match self {
            Curve::Ed25519 | Curve::X25519 => p.len() == 32,
            _ => (p.len() == 1 + 2 * n && p[0] == 4) || (p.len() == 1 + n && matches!(p[0], 2 | 3)),
        }
    }

    /// A public point given either as a DER OCTET STRING (`CKA_EC_POINT`'s encoding) or raw.
    pub fn point(self, bytes: &[u8]) -> Result<&[u8]> {
        if let Ok(os) = OctetStringRef::from_der(bytes) {
            if self.point_shape(os.as_bytes()) {
                return Ok(os.as_bytes());
            }
        }
        if self.point_shape(bytes) {
            return Ok(bytes);
        }
        Err(err(CKR_KEY_TYPE_INCONSISTENT))
    }
}

/// Encodes a public point as `CKA_EC_POINT`: a DER OCTET STRING.
pub fn ec_point(raw: &[u8]) -> Result<Vec<u8>> {
    OctetStringRef::new(raw).and_then(|o| o.to_der()).map_err(|_| err(CKR_GENERAL_ERROR))
}

/// The `CKA_EC_PARAMS` of a key pair generation: from the public template (required), and equal
/// in the private template if given there too.
pub fn keygen_params(public: &AttrMap, private: &AttrMap) -> Result<(Curve, Vec<u8>)> {
    let params = public.get(&CKA_EC_PARAMS).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
    if private.get(&CKA_EC_PARAMS).is_some_and(|p| p != params) {
        return Err(err(CKR_TEMPLATE_INCONSISTENT));
    }
    Ok((Curve::from_params(params)?, params.to_vec()))
}

/// The private scalar (`CKA_VALUE`) as exactly `field_len` big-endian bytes. Shorter values (an
/// importer that dropped leading zeros) are padded; longer ones only lose leading zeros.
pub fn scalar(key: &Object, curve: Curve) -> Result<Zeroizing<Vec<u8>>> {
    let v = key.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
    let n = curve.field_len();
    let mut out = Zeroizing::new(vec![0u8; n]);
    if v.len() <= n {
        out[n - v.len()..].copy_from_slice(v);
    } else {
        let (extra, rest) = v.split_at(v.len() - n);
        if extra.iter().any(|b| *b != 0) {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        out.copy_from_slice(rest);
    }
    Ok(out)
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

/// ANSI X9.63 KDF: `Hash(Z ‖ counter ‖ SharedInfo)` for counter = 1, 2, …, truncated to `len`.
fn x963_kdf(alg: &'static digest::Algorithm, z: &[u8], shared: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + alg.output_len());
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut c = Context::new(alg);
        c.update(z);
        c.update(&counter.to_be_bytes());
        c.update(shared);
        out.extend_from_slice(c.finish().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

fn kdf_hash(kdf: CK_EC_KDF_TYPE) -> Result<Option<&'static digest::Algorithm>> {
    Ok(Some(match kdf {
        CKD_NULL => return Ok(None),
        CKD_SHA1_KDF => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        CKD_SHA224_KDF => &digest::SHA224,
        CKD_SHA256_KDF => &digest::SHA256,
        CKD_SHA384_KDF => &digest::SHA384,
        CKD_SHA512_KDF => &digest::SHA512,
        _ => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
    }))
}

/// The raw shared secret of an ECDH agreement between a private key object and a peer's public
/// key (raw point or DER OCTET STRING). An invalid peer key is `CKR_MECHANISM_PARAM_INVALID`.
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

/// The public point a private key object implies (raw: SEC 1 uncompressed for the prime curves,
/// 32 bytes for X25519), for the key-agreement pairwise-consistency test (SP 800-56A rev. 3,
/// §5.6.2.1.4).
pub fn implied_public(private: &Object) -> Result<Vec<u8>> {
    let curve = Curve::of_key(private)?;
    if curve == Curve::Ed25519 {
        return Err(err(CKR_CURVE_NOT_SUPPORTED));
    }
    let d = match curve {
        Curve::X25519 => Zeroizing::new(private.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?.to_vec()),
        _ => scalar(private, curve)?,
    };
    public_point(curve, &d)
}

/// The public point of private scalar `d` on an ECDH-capable curve (raw, as [`implied_public`]).
pub fn public_point(curve: Curve, d: &[u8]) -> Result<Vec<u8>> {
    let Some(alg) = curve.agreement() else {
        let k = SigningKey::new(curve.nid()?, curve.field_len(), d).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
        return k.public_point().ok_or(err(CKR_KEY_TYPE_INCONSISTENT));
    };
    let k = agreement::PrivateKey::from_private_key(alg, d).map_err(|_| err(CKR_KEY_TYPE_INCONSISTENT))?;
    Ok(k.compute_public_key().map_err(|_| err(CKR_KEY_TYPE_INCONSISTENT))?.as_ref().to_vec())
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
            Some(alg) => {
                let n = len.unwrap_or(alg.output_len());
                if n > MAX_DERIVED {
                    return Err(err(CKR_KEY_SIZE_RANGE));
                }
                Ok(x963_kdf(alg, &z, shared_data, n))
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
    fn params_forms() {
        let oid = OID_P384.to_der().expect("der");
        assert_eq!(Curve::from_params(&oid), Ok(Curve::P384));
        let name = PrintableStringRef::new("prime256v1").and_then(|s| s.to_der()).expect("der");
        assert_eq!(Curve::from_params(&name), Ok(Curve::P256));
        let ed448 = ObjectIdentifier::new_unwrap("1.3.101.113").to_der().expect("der");
        assert_eq!(Curve::from_params(&ed448), Err(err(CKR_CURVE_NOT_SUPPORTED)));
        assert_eq!(Curve::from_params(&[0xff, 0x00]), Err(err(CKR_DOMAIN_PARAMS_INVALID)));
        assert_eq!(Curve::from_params(&[]), Err(err(CKR_DOMAIN_PARAMS_INVALID)));
    }

    #[test]
    fn point_forms() {
        let mut raw = vec![4u8; 65];
        raw[1] = 0x41;
        let der = ec_point(&raw).expect("der");
        assert_eq!(Curve::P256.point(&der), Ok(&raw[..]));
        assert_eq!(Curve::P256.point(&raw), Ok(&raw[..]));
        assert!(Curve::P384.point(&raw).is_err());
        // A raw Ed25519 key that happens to look like an OCTET STRING header stays raw.
        let mut ed = vec![7u8; 32];
        ed[0] = 4;
        ed[1] = 30;
        assert_eq!(Curve::Ed25519.point(&ed), Ok(&ed[..]));
    }

    #[test]
    fn x963_kdf_counter_blocks() {
        // Two SHA-256 blocks: counters 1 and 2, then truncation.
        let out = x963_kdf(&digest::SHA256, b"z", b"info", 40);
        let mut c = Context::new(&digest::SHA256);
        c.update(b"z");
        c.update(&1u32.to_be_bytes());
        c.update(b"info");
        assert_eq!(&out[..32], c.finish().as_ref());
        assert_eq!(out.len(), 40);
    }
}
