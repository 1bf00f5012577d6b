//! Key agreement and key-pair generation for ECDH on the NIST curves and for X25519 (aws-lc,
//! through aws-lc-rs), with the big-endian encodings of their private keys. The other prime
//! curves (P-224, secp256k1, Brainpool) agree through `ecdsa.rs`'s `SigningKey`.

pub use aws_lc_rs::agreement::{
    agree, Algorithm, PrivateKey, UnparsedPublicKey, ECDH_P256, ECDH_P384, ECDH_P521, X25519,
};
pub use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin, EcPrivateKeyBin};
