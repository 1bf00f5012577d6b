//! Direct aws-lc bindings for the few primitives aws-lc-rs does not expose (raw RSA with a
//! caller-supplied DigestInfo, PSS with any salt length, ECDSA over a caller-computed digest, Ed25519ctx and Ed25519ph).
//! With `abi/`, the only place in the crate with `unsafe` code; each function here is a small safe
//! wrapper around one aws-lc call.

#[cfg(not(any(feature = "fips", feature = "non-fips")))]
compile_error!("tessera-pkcs11 needs an aws-lc backend: the `non-fips` (default) or `fips` feature");

/// The aws-lc C API this crate calls: the FIPS module's when built with `fips`.
#[cfg(feature = "fips")]
pub(crate) use aws_lc_fips_sys as sys;
#[cfg(not(feature = "fips"))]
pub(crate) use aws_lc_sys as sys;

pub mod aes;
pub mod des;
pub mod ecdsa;
pub mod ed25519;
pub mod rsa;
pub mod selftest;
