//! Mechanism parameters as the core takes them: one [`Param`] for each `CK_MECHANISM`.
//!
//! The ABI layer (`abi/params.rs`, `params_rsa.rs`, `params_ec.rs`) reads the application's
//! parameter once, while the call lasts, and decodes it into the variant of the mechanism's
//! parameter structure, with every pointer followed and every buffer copied: nothing here refers
//! to application memory. Structures the ABI layer must check before anything else (sizes,
//! pointers: `CK_GCM_PARAMS`, `CK_RSA_PKCS_OAEP_PARAMS`, `CK_ECDH1_DERIVE_PARAMS`,
//! `CK_EDDSA_PARAMS`, `CK_HKDF_PARAMS`, `CK_PKCS5_PBKD2_PARAMS(2)`) are refused there; the others
//! (`CK_AES_CTR_PARAMS`, `CK_RSA_PKCS_PSS_PARAMS`, `CK_MAC_GENERAL_PARAMS`) take their variant
//! when the bytes have the structure's size and stay [`Param::Bytes`] otherwise, for the
//! mechanism to refuse when it starts. A mechanism given a variant it does not take answers
//! `CKR_MECHANISM_PARAM_INVALID`.
//!
//! ML-DSA's and SLH-DSA's `CK_SIGN_ADDITIONAL_CONTEXT` and `CK_HASH_SIGN_ADDITIONAL_CONTEXT`
//! (hedging, context, and the pre-hash of the bare `CKM_HASH_*` mechanisms) are
//! [`Param::SignContext`].

use cryptoki_sys::*;
use zeroize::Zeroizing;

/// The parameter of one mechanism.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// No parameter (`ulParameterLen` 0): ECB, digests, key generation, ECDSA, PKCS #1 v1.5, raw
    /// RSA, plain HMAC and CMAC, pure EdDSA, AES key wrap without an IV.
    None,
    /// Plain bytes: the IV of CBC and CBC_PAD, the IV of AES key wrap, and the bytes of any
    /// parameter that does not have the size of its mechanism's structure.
    Bytes(Vec<u8>),
    /// `CK_MAC_GENERAL_PARAMS`: the tag length of a `_GENERAL` HMAC or CMAC.
    Ulong(CK_ULONG),
    /// `CK_GCM_PARAMS` (either layout; `ulIvBits` is informational).
    Gcm(GcmParams),
    /// `CK_AES_CTR_PARAMS`.
    Ctr { counter_bits: CK_ULONG, block: [u8; 16] },
    /// `CK_RSA_PKCS_PSS_PARAMS`, as given (the mechanism checks the values).
    Pss { hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, salt_len: CK_ULONG },
    /// `CK_RSA_PKCS_OAEP_PARAMS`, with the label behind `pSourceData`.
    Oaep { hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, source: CK_ULONG, label: Vec<u8> },
    /// `CK_ECDH1_DERIVE_PARAMS`: the KDF, its shared data and the other party's public key.
    Ecdh1 { kdf: CK_EC_KDF_TYPE, shared_data: Vec<u8>, public_data: Vec<u8> },
    /// `CK_HKDF_PARAMS`.
    Hkdf(HkdfParams),
    /// `CK_PKCS5_PBKD2_PARAMS2` or the older `CK_PKCS5_PBKD2_PARAMS`.
    Pbkdf2(Pbkdf2Params),
    /// `CK_EDDSA_PARAMS`: Ed25519ph (`prehash`) or Ed25519ctx, with the context.
    Eddsa { prehash: bool, context: Vec<u8> },
    /// `CK_SIGN_ADDITIONAL_CONTEXT` (`hash` `None`) or `CK_HASH_SIGN_ADDITIONAL_CONTEXT` (`hash`
    /// the digest mechanism that hashed the input): ML-DSA's and SLH-DSA's hedging and context.
    /// The values are as given; the mechanism checks them.
    SignContext { hedge: CK_ULONG, context: Vec<u8>, hash: Option<CK_MECHANISM_TYPE> },
}

impl Param {
    /// The bytes of a plain parameter (none is empty); `None` for a structured one.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Param::None => Some(&[]),
            Param::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Whether there is no parameter.
    pub fn is_none(&self) -> bool {
        matches!(self, Param::None)
    }

    /// `CKR_MECHANISM_PARAM_INVALID` unless there is no parameter (for mechanisms that take none).
    pub fn require_none(&self) -> crate::error::Result<()> {
        if self.is_none() {
            Ok(())
        } else {
            Err(crate::error::err(CKR_MECHANISM_PARAM_INVALID))
        }
    }
}

/// `CK_GCM_PARAMS`: the IV, the additional data and the tag length in bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcmParams {
    pub iv: Vec<u8>,
    pub aad: Vec<u8>,
    pub tag_bits: CK_ULONG,
}

/// `CK_HKDF_PARAMS`. The salt is copied only for `CKF_HKDF_SALT_DATA` with extraction, the info
/// only with expansion.
#[derive(Clone, PartialEq, Eq)]
pub struct HkdfParams {
    pub extract: bool,
    pub expand: bool,
    /// The digest mechanism of the PRF (`CKM_SHA256` …).
    pub prf: CK_MECHANISM_TYPE,
    /// `CKF_HKDF_SALT_NULL`, `_DATA` or `_KEY`.
    pub salt_type: CK_ULONG,
    /// Wiped when dropped: the key service puts a salt key's value here (`services::keys`).
    pub salt: Zeroizing<Vec<u8>>,
    /// `hSaltKey`, for `CKF_HKDF_SALT_KEY`.
    pub salt_key: CK_OBJECT_HANDLE,
    pub info: Vec<u8>,
}

impl std::fmt::Debug for HkdfParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HkdfParams")
            .field("extract", &self.extract)
            .field("expand", &self.expand)
            .field("prf", &self.prf)
            .field("salt_type", &self.salt_type)
            .field("salt_len", &self.salt.len())
            .field("salt_key", &self.salt_key)
            .field("info", &self.info)
            .finish()
    }
}

/// `CK_PKCS5_PBKD2_PARAMS2` (or the older `CK_PKCS5_PBKD2_PARAMS`).
#[derive(Clone, PartialEq, Eq)]
pub struct Pbkdf2Params {
    pub salt_source: CK_ULONG,
    pub salt: Vec<u8>,
    pub iterations: CK_ULONG,
    pub prf: CK_ULONG,
    pub prf_data: Vec<u8>,
    /// Wiped when dropped.
    /// SSP: PBKDF2 password
    pub password: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Pbkdf2Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbkdf2Params")
            .field("salt_source", &self.salt_source)
            .field("salt", &self.salt)
            .field("iterations", &self.iterations)
            .field("prf", &self.prf)
            .field("prf_data", &self.prf_data)
            .field("password_len", &self.password.len())
            .finish()
    }
}
