//! Ed25519ctx and Ed25519ph (RFC 8032 §5.1), the EdDSA variants `CK_EDDSA_PARAMS` selects
//! (`phFlag` and a context), which aws-lc implements but aws-lc-rs does not expose. Pure Ed25519
//! stays with aws-lc-rs, re-exported here.

use super::clear_errors;
use super::sys;

/// Pure Ed25519 key pairs, signatures and verification (aws-lc, through aws-lc-rs).
pub use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
pub use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

/// Signs `msg` with Ed25519ph (`prehash`, the message hashed with SHA-512 inside) or Ed25519ctx.
/// `private` is aws-lc's 64-byte private key: the seed followed by the public key. `None` when aws-lc
/// refuses, e.g. an Ed25519ctx context that is empty or longer than 255 bytes.
pub fn sign(prehash: bool, private: &[u8; 64], msg: &[u8], context: &[u8]) -> Option<[u8; 64]> {
    let mut sig = [0u8; 64];
    // SAFETY: `sig` and `private` have the fixed lengths aws-lc requires (64 bytes each); `msg`
    // and `context` are valid slices whose lengths are passed with them.
    let ok = unsafe {
        let f = if prehash { sys::ED25519ph_sign } else { sys::ED25519ctx_sign };
        f(sig.as_mut_ptr(), msg.as_ptr(), msg.len(), private.as_ptr(), context.as_ptr(), context.len())
    };
    if ok != 1 {
        clear_errors();
        return None;
    }
    Some(sig)
}

/// Whether `sig` is a valid Ed25519ph (`prehash`) or Ed25519ctx signature of `msg` by `public`
/// with `context`.
pub fn verify(prehash: bool, public: &[u8; 32], msg: &[u8], sig: &[u8; 64], context: &[u8]) -> bool {
    // SAFETY: `sig` (64 bytes) and `public` (32 bytes) have the lengths aws-lc requires; `msg` and
    // `context` are valid slices whose lengths are passed with them.
    let ok = unsafe {
        let f = if prehash { sys::ED25519ph_verify } else { sys::ED25519ctx_verify };
        f(msg.as_ptr(), msg.len(), sig.as_ptr(), public.as_ptr(), context.as_ptr(), context.len())
    };
    if ok != 1 {
        clear_errors();
    }
    ok == 1
}
