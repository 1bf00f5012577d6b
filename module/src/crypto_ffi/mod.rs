//! Direct aws-lc bindings for the few primitives aws-lc-rs does not expose (raw RSA with a
//! caller-supplied DigestInfo, PSS with any salt length, ECDSA over a caller-computed digest).
//! With `abi/`, the only place in the crate with `unsafe` code; each function here is a small safe
//! wrapper around one aws-lc call.

pub mod aes;
pub mod ecdsa;
pub mod rsa;
pub mod selftest;
