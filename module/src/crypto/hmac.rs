//! HMAC with SHA-1 and SHA-2 (aws-lc, through aws-lc-rs). HMAC over SHA-3 is `sha3.rs`'s.

pub use aws_lc_rs::hmac::{
    sign, Algorithm, Context, Key, Tag, HMAC_SHA1_FOR_LEGACY_USE_ONLY, HMAC_SHA224, HMAC_SHA256, HMAC_SHA384,
    HMAC_SHA512,
};
