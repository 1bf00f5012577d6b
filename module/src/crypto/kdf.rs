//! Key derivation: PBKDF2 with HMAC-SHA-1 and SHA-2 (aws-lc, through aws-lc-rs). HKDF and the
//! ANSI X9.63 KDF are built on `hmac.rs` and `digest.rs` by their mechanisms.

pub use aws_lc_rs::pbkdf2::{derive, PBKDF2_HMAC_SHA1, PBKDF2_HMAC_SHA256, PBKDF2_HMAC_SHA384, PBKDF2_HMAC_SHA512};
