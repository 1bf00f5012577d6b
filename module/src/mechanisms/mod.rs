//! Mechanisms. Each family lives in its own file and registers its mechanisms in the one
//! [`Registry`]; `C_GetMechanismList`, `C_GetMechanismInfo` and every `C_*Init` look them up there.

pub mod aes;
pub mod block;
pub mod des;
pub mod digest;
pub mod ec;
pub mod eddsa;
pub mod hmac;
pub mod kdf;
pub mod ml_kem;
pub mod names;
pub mod param;
pub mod pq_sign;
pub mod rsa;
pub mod xwing;

pub use param::Param;

use crate::error::{err, Result};
use crate::object::{AttrMap, Object, Template};
use crate::policy::Condition;
use cryptoki_sys::*;
// Looked up at every operation's start: mechanism numbers need no ordered search.
use rustc_hash::FxHashMap;
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// What `C_GetMechanismInfo` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MechanismInfo {
    pub min_key: CK_ULONG,
    pub max_key: CK_ULONG,
    pub flags: CK_FLAGS,
}

/// A running multi-part digest.
pub trait DigestOperation: Send {
    fn update(&mut self, data: &[u8]);
    /// Output length in bytes.
    fn output_len(&self) -> usize;
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// A running signature or MAC (`C_SignInit` … `C_SignFinal`).
pub trait SignOperation: Send {
    /// Adds data. Single-part-only mechanisms are told so by [`SignOperation::multipart`].
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Produces the signature; the operation is over.
    fn finish(self: Box<Self>) -> Result<Vec<u8>>;
    /// Whether `C_SignUpdate` is allowed (false for raw mechanisms such as `CKM_ECDSA`).
    fn multipart(&self) -> bool {
        true
    }
}

/// A running verification (`C_VerifyInit` … `C_VerifyFinal`).
pub trait VerifyOperation: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Checks the signature: `CKR_SIGNATURE_INVALID` or `CKR_SIGNATURE_LEN_RANGE` when it fails.
    fn finish(self: Box<Self>, signature: &[u8]) -> Result<()>;
    fn multipart(&self) -> bool {
        true
    }
    /// Whether `C_VerifySignatureUpdate` is allowed, the signature having come first (PKCS #11
    /// 3.2 allows it for pure ML-DSA and SLH-DSA, whose `C_VerifyUpdate` it does not).
    fn multipart_with_signature_first(&self) -> bool {
        self.multipart()
    }
}

/// A running encryption or decryption.
pub trait CipherOperation: Send {
    /// Processes a part; returns what output is ready.
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>>;
    /// Ends the operation; returns the remaining output.
    fn finish(self: Box<Self>) -> Result<Vec<u8>>;
    /// The output a single-part call on `input` bytes gives, known before any work: `(length,
    /// exact)`, where an inexact length is an upper bound. `None` when it cannot be told in advance.
    /// Lets a length query on a large input answer at once, without encrypting it.
    fn output_len(&self, _input: usize) -> Option<(usize, bool)> {
        None
    }
    /// Single-part `C_Encrypt`/`C_Decrypt`: the whole input at once (a mechanism may take a faster
    /// path than its streaming one).
    fn one_shot(mut self: Box<Self>, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = self.update(data)?;
        out.extend(self.finish()?);
        Ok(out)
    }
    /// [`CipherOperation::one_shot`] into the caller's buffer, which holds at least the exact
    /// [`CipherOperation::output_len`]; returns the length written. Mechanisms that can write in
    /// place avoid allocating and copying the output.
    fn one_shot_into(self: Box<Self>, data: &[u8], out: &mut [u8]) -> Result<usize> {
        write_into(&self.one_shot(data)?, out)
    }
    /// Whether `C_EncryptUpdate`/`C_DecryptUpdate` are allowed.
    fn multipart(&self) -> bool {
        true
    }
}

/// Copies a computed result into the caller's buffer; its length.
pub fn write_into(v: &[u8], out: &mut [u8]) -> Result<usize> {
    out.get_mut(..v.len()).ok_or(err(CKR_BUFFER_TOO_SMALL))?.copy_from_slice(v);
    Ok(v.len())
}

/// The key material a generation mechanism made, as attributes, with the key type.
pub struct GeneratedKey {
    pub key_type: CK_KEY_TYPE,
    pub material: Template,
}

/// The `CKA_PARAMETER_SET` of a key pair to generate (ML-KEM, ML-DSA, SLH-DSA): named in the
/// public template (`CKR_TEMPLATE_INCOMPLETE` otherwise); the private template need not name it,
/// and if it does the two must agree (`CKR_TEMPLATE_INCONSISTENT`).
pub fn keygen_parameter_set(public: &AttrMap, private: &AttrMap) -> Result<CK_ULONG> {
    let given = |m: &AttrMap| m.get(&CKA_PARAMETER_SET).map(|v| crate::object::as_ulong(v));
    let set = match given(public) {
        Some(Some(s)) => s,
        Some(None) => return Err(err(CKR_ATTRIBUTE_VALUE_INVALID)),
        None => return Err(err(CKR_TEMPLATE_INCOMPLETE)),
    };
    if given(private).is_some_and(|p| p != Some(set)) {
        return Err(err(CKR_TEMPLATE_INCONSISTENT));
    }
    Ok(set)
}

/// The two halves of a generated key pair.
pub struct GeneratedPair {
    pub key_type: CK_KEY_TYPE,
    pub public: Template,
    pub private: Template,
    /// Parsed forms of (public, private) made from the generated key itself, kept by the new
    /// objects (`Object::keep`): their pairwise-consistency test and first use parse nothing.
    pub forms: (Option<crate::object::Prepared>, Option<crate::object::Prepared>),
}

/// One mechanism. A family implements the services it offers; the rest default to
/// `CKR_MECHANISM_INVALID` ("this mechanism does not do that"). Keys reach a mechanism only after
/// the services checked the key's class, usage attribute, type ([`Mechanism::key_types`]) and
/// `CKA_ALLOWED_MECHANISMS`; `key` is the whole object, key material included.
pub trait Mechanism: Send + Sync {
    fn info(&self) -> MechanismInfo;

    /// Whether the parameter meets a condition of the approved-mode policy
    /// (`policy/approved.toml`, field `condition`). Conditions a mechanism does not know are not
    /// met.
    fn meets(&self, _condition: Condition, _param: &Param) -> bool {
        false
    }

    /// Whether the data of a single-part operation `op` meets a data condition of the policy
    /// ([`Condition::on_data`]). Conditions a mechanism does not know are not met.
    fn meets_data(&self, _condition: Condition, _op: crate::operation::Op, _data: &[u8]) -> bool {
        false
    }

    /// Key types this mechanism works with (`CKR_KEY_TYPE_INCONSISTENT` for others).
    fn key_types(&self) -> &'static [CK_KEY_TYPE] {
        &[]
    }

    /// Starts a digest (`C_DigestInit`).
    fn digest(&self, _param: &Param) -> Result<Box<dyn DigestOperation>> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    fn sign(&self, _param: &Param, _key: &Object) -> Result<Box<dyn SignOperation>> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    fn verify(&self, _param: &Param, _key: &Object) -> Result<Box<dyn VerifyOperation>> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    fn encrypt(&self, _param: &Param, _key: &Object) -> Result<Box<dyn CipherOperation>> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    fn decrypt(&self, _param: &Param, _key: &Object) -> Result<Box<dyn CipherOperation>> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    /// `C_GenerateKey`: the material (`CKA_VALUE` …) for a key whose template is `template`.
    fn generate_key(&self, _param: &Param, _template: &AttrMap) -> Result<GeneratedKey> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    /// `C_GenerateKeyPair`.
    fn generate_key_pair(&self, _param: &Param, _public: &AttrMap, _private: &AttrMap) -> Result<GeneratedPair> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    /// `C_WrapKey`: encrypts `key_bytes` (the encoding of the key to wrap) under `wrapping_key`.
    fn wrap(&self, _param: &Param, _wrapping_key: &Object, _key_bytes: &[u8]) -> Result<Vec<u8>> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    /// Whether `C_WrapKey` pads the key with zero bytes to fit (ECB, CBC, RFC 3394 key wrap), so
    /// that `C_UnwrapKey` must take them off again (`services::keys`).
    fn wraps_zero_padded(&self) -> bool {
        false
    }

    /// Whether the mechanism's wrapping authenticates what it wraps, so that a wrapped key can be
    /// neither altered, cut nor used as a decryption oracle (RFC 3394/5649 key wrap, RSA-OAEP).
    /// Only these wrap and unwrap outside the legacy rules: ECB and CBC let blocks of a wrapped key
    /// be unwrapped on their own, CBC_PAD and PKCS #1 v1.5 unwrapping answer as padding oracles, and
    /// GCM with an IV the application chose can be made to repeat it.
    fn wraps_authenticated(&self) -> bool {
        false
    }

    /// Whether the mechanism's unwrapping authenticates what it is given, so that no altered or
    /// made-up wrapped key is unwrapped: what [`Mechanism::wraps_authenticated`] says, and GCM,
    /// whose tag is checked before any key is made (its wrapping stays refused: a repeated IV
    /// would give the XOR of two wrapped keys).
    fn unwraps_authenticated(&self) -> bool {
        self.wraps_authenticated()
    }

    /// `C_UnwrapKey`: recovers key bytes from `wrapped`.
    fn unwrap(&self, _param: &Param, _unwrapping_key: &Object, _wrapped: &[u8]) -> Result<Vec<u8>> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    /// `C_DeriveKey`: the new key's value (`CKA_VALUE`), of `len` bytes when the template asks a length.
    fn derive(&self, _param: &Param, _base: &Object, _len: Option<usize>) -> Result<Vec<u8>> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    /// The length of the ciphertext `C_EncapsulateKey` makes with `public_key`: answers a length
    /// query (`pCiphertext` NULL) without making a key.
    fn ciphertext_len(&self, _param: &Param, _public_key: &Object) -> Result<usize> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    /// `C_EncapsulateKey`: a fresh shared secret and its ciphertext under `public_key`.
    fn encapsulate(&self, _param: &Param, _public_key: &Object) -> Result<Encapsulated> {
        Err(err(CKR_MECHANISM_INVALID))
    }

    /// `C_DecapsulateKey`: the shared secret `ciphertext` carries for `private_key`.
    fn decapsulate(&self, _param: &Param, _private_key: &Object, _ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Err(err(CKR_MECHANISM_INVALID))
    }
}

/// What a key-encapsulation mechanism makes: the ciphertext for the holder of the private key,
/// and the shared secret that becomes the new key's `CKA_VALUE`.
pub struct Encapsulated {
    pub ciphertext: Vec<u8>,
    pub secret: Zeroizing<Vec<u8>>,
}

/// Every mechanism the module implements, by type.
pub struct Registry {
    map: FxHashMap<CK_MECHANISM_TYPE, Box<dyn Mechanism>>,
}

impl Registry {
    /// Adds one mechanism; each family's `register` calls this.
    pub fn add(&mut self, ty: CK_MECHANISM_TYPE, m: Box<dyn Mechanism>) {
        self.map.insert(ty, m);
    }

    pub fn get(&self, ty: CK_MECHANISM_TYPE) -> Result<&dyn Mechanism> {
        self.map.get(&ty).map(|b| b.as_ref()).ok_or(err(CKR_MECHANISM_INVALID))
    }

    /// `CKR_MECHANISM_INVALID` unless the mechanism exists and offers `op` (the `CKF_` flag of
    /// its `CK_MECHANISM_INFO`).
    pub fn can(&self, ty: CK_MECHANISM_TYPE, op: crate::operation::Op) -> Result<()> {
        match self.get(ty)?.info().flags & op.flag() {
            0 => Err(err(CKR_MECHANISM_INVALID)),
            _ => Ok(()),
        }
    }

    /// Mechanism types in ascending order.
    pub fn types(&self) -> Vec<CK_MECHANISM_TYPE> {
        let mut t: Vec<CK_MECHANISM_TYPE> = self.map.keys().copied().collect();
        t.sort_unstable();
        t
    }

    fn build() -> Registry {
        let mut r = Registry { map: FxHashMap::default() };
        digest::register(&mut r);
        aes::register(&mut r);
        des::register(&mut r);
        hmac::register(&mut r);
        kdf::register(&mut r);
        rsa::register(&mut r);
        ec::register(&mut r);
        eddsa::register(&mut r);
        pq_sign::register(&mut r);
        ml_kem::register(&mut r);
        xwing::register(&mut r);
        r
    }
}

/// The registry, built once.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::build)
}
