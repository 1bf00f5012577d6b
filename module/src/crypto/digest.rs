//! Message digests: SHA-1, SHA-2 and SHA3-256/384/512 (aws-lc, through aws-lc-rs). SHA3-224 is
//! `sha3.rs`'s.

pub use aws_lc_rs::digest::{
    digest, Algorithm, Context, Digest, SHA1_FOR_LEGACY_USE_ONLY, SHA224, SHA256, SHA384, SHA3_256, SHA3_384, SHA3_512,
    SHA512,
};
