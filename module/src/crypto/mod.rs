//! The cryptographic primitives: every mechanism, key type and object rule gets its algorithms
//! from here, one file per algorithm family. Most are aws-lc's, through aws-lc-rs (re-exported
//! here under the family's name) or, for what aws-lc-rs does not expose (raw RSA with a
//! caller-supplied DigestInfo, PSS with any salt length, ECDSA over a caller-computed digest,
//! Ed25519ctx and Ed25519ph, AES modes over caller-chosen chunks), through small safe wrappers
//! around one aws-lc call each. With `abi/`, the only place in the crate with `unsafe` code.
//!
//! A second implementation of a family is a second file here, in the same style: safe types and
//! functions (or re-exports) that the mechanisms name as `crate::crypto::<family>::…`. `sha3.rs`
//! is one already: RustCrypto's SHA-3 for what aws-lc lacks (SHA3-224, HMAC over SHA-3). Wrappers
//! are re-exports or `#[inline]`, so the seam costs nothing.
//!
//! Two parts of the module are bound to aws-lc itself, on purpose: `fips/integrity.rs` (the
//! integrity GMAC is aws-lc's AES-256-GCM, through `aes::Gcm` here, which takes additional data in
//! parts; its known-answer test runs that very function) and `store/` (the at-rest sealing and
//! the PIN wraps, which call aws-lc-rs directly: an on-disk format bound to AES-256-GCM,
//! HMAC-SHA-256 and PBKDF2 of aws-lc, which must not follow a change of a mechanism's
//! implementation).

#[cfg(not(any(feature = "fips", feature = "non-fips")))]
compile_error!("tessera-pkcs11 needs an aws-lc backend: the `non-fips` (default) or `fips` feature");

/// The aws-lc C API this crate calls: the FIPS module's when built with `fips`.
#[cfg(feature = "fips")]
pub(crate) use aws_lc_fips_sys as sys;
#[cfg(not(feature = "fips"))]
pub(crate) use aws_lc_sys as sys;

pub mod aes;
pub mod des;
pub mod digest;
pub mod ecdh;
pub mod ecdsa;
pub mod ed25519;
mod evp;
pub mod hmac;
pub mod kdf;
pub mod library_file;
pub mod mldsa;
pub mod mlkem;
#[cfg(test)]
mod pq_vectors;
pub mod random;
pub mod rsa;
pub mod selftest;
pub mod sha3;
pub mod slhdsa;
pub mod xwing;

/// Comparison in constant time (tags, encoded signature blocks).
pub use aws_lc_rs::constant_time;

/// Zeroes the 4 KiB of stack below its caller's frame: where a key set-up that just returned
/// left values derived from a key in its own frames, which no destructor wipes (the `hmac`
/// crate's blocks of the key XORed with the pads, an aws-lc-rs `Tag` a key is derived as). Called
/// right after such a set-up, which runs in an `#[inline(never)]` function of its own.
#[inline(never)]
pub fn scrub_stack() {
    let mut buf = [0u8; 4096];
    for b in buf.iter_mut() {
        // SAFETY: a write to a byte of this frame's own array.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::hint::black_box(&buf);
}

/// Empties this thread's aws-lc error queue, after a call into aws-lc that failed: the failure is
/// answered by the module's own return value, and a stale entry must not be read as the cause of
/// a later failure.
pub(crate) fn clear_errors() {
    // SAFETY: clearing the calling thread's error queue has no preconditions.
    unsafe { sys::ERR_clear_error() }
}
