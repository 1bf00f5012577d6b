//! What an operation is: the one vocabulary the policy (`policy/*.toml`, field `functions`), the
//! key-usage check, the mechanism flags, the session's operation slots and the decision record
//! share.

use cryptoki_sys::*;
use serde::Deserialize;

/// One kind of operation on a mechanism (and, for most, a key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Digest,
    Sign,
    Verify,
    Encrypt,
    Decrypt,
    /// `C_GenerateKey`.
    Generate,
    /// `C_GenerateKeyPair`.
    GeneratePair,
    Wrap,
    Unwrap,
    Derive,
    /// `C_EncapsulateKey` (PKCS #11 3.2).
    Encapsulate,
    /// `C_DecapsulateKey` (PKCS #11 3.2).
    Decapsulate,
}

impl Op {
    /// The attribute of a key that must allow this use of it (`CKR_KEY_FUNCTION_NOT_PERMITTED`
    /// without it); `None` for operations that use no key.
    pub fn usage_attribute(self) -> Option<CK_ATTRIBUTE_TYPE> {
        Some(match self {
            Op::Encrypt => CKA_ENCRYPT,
            Op::Decrypt => CKA_DECRYPT,
            Op::Sign => CKA_SIGN,
            Op::Verify => CKA_VERIFY,
            Op::Wrap => CKA_WRAP,
            Op::Unwrap => CKA_UNWRAP,
            Op::Derive => CKA_DERIVE,
            Op::Encapsulate => CKA_ENCAPSULATE,
            Op::Decapsulate => CKA_DECAPSULATE,
            Op::Digest | Op::Generate | Op::GeneratePair => return None,
        })
    }

    /// The `CK_MECHANISM_INFO` flag of a mechanism that offers this operation.
    pub fn flag(self) -> CK_FLAGS {
        match self {
            Op::Digest => CKF_DIGEST,
            Op::Sign => CKF_SIGN,
            Op::Verify => CKF_VERIFY,
            Op::Encrypt => CKF_ENCRYPT,
            Op::Decrypt => CKF_DECRYPT,
            Op::Generate => CKF_GENERATE,
            Op::GeneratePair => CKF_GENERATE_KEY_PAIR,
            Op::Wrap => CKF_WRAP,
            Op::Unwrap => CKF_UNWRAP,
            Op::Derive => CKF_DERIVE,
            Op::Encapsulate => CKF_ENCAPSULATE,
            Op::Decapsulate => CKF_DECAPSULATE,
        }
    }

    /// The name the policy tables and the records use.
    pub fn name(self) -> &'static str {
        match self {
            Op::Digest => "digest",
            Op::Sign => "sign",
            Op::Verify => "verify",
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::Generate => "generate",
            Op::GeneratePair => "generate_pair",
            Op::Wrap => "wrap",
            Op::Unwrap => "unwrap",
            Op::Derive => "derive",
            Op::Encapsulate => "encapsulate",
            Op::Decapsulate => "decapsulate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_policy_tables_names() {
        #[derive(Deserialize)]
        struct W {
            f: Op,
        }
        for op in [
            Op::Digest,
            Op::Sign,
            Op::Verify,
            Op::Encrypt,
            Op::Decrypt,
            Op::Generate,
            Op::GeneratePair,
            Op::Wrap,
            Op::Unwrap,
            Op::Derive,
            Op::Encapsulate,
            Op::Decapsulate,
        ] {
            let w: W = toml::from_str(&format!("f = \"{}\"", op.name())).unwrap();
            assert_eq!(w.f, op);
            assert_ne!(op.flag(), 0);
        }
    }
}
