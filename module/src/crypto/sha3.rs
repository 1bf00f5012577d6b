//! SHA-3 where aws-lc has none: the SHA3-224 digest and HMAC over every SHA-3 (RustCrypto's
//! `sha3` and `hmac` crates). A second implementation of the digest and HMAC families, beside
//! `digest.rs` and `hmac.rs`.

pub use hmac::digest::KeyInit;
pub use hmac::{Hmac, Mac};
pub use sha3::{Digest, Sha3_224, Sha3_256, Sha3_384, Sha3_512};
