//! SHA-3 where aws-lc has none: the SHA3-224 digest and HMAC over every SHA-3 (RustCrypto's
//! `sha3` and `hmac` crates). A second implementation of the digest and HMAC families, beside
//! `digest.rs` and `hmac.rs`.

pub use hmac::digest::KeyInit;
pub use hmac::{Hmac, Mac};
pub use sha3::{Digest, Sha3_224, Sha3_256, Sha3_384, Sha3_512};

/// An HMAC-SHA-3 state wiped when it is dropped. The keyed state (the key, XORed with the pads,
/// absorbed into Keccak states and block buffers) lives in plain arrays, and neither the `hmac`
/// nor the `sha3` crate offers to wipe it; this does, over the value's own bytes.
#[derive(Clone)]
pub struct Wiped<T>(pub T);

impl<T> Drop for Wiped<T> {
    fn drop(&mut self) {
        // Only for values with nothing to drop of their own (no heap memory, no handles): their
        // bytes are all there is, and nothing reads them after this.
        const { assert!(!std::mem::needs_drop::<T>()) };
        let p = &mut self.0 as *mut T as *mut u8;
        for i in 0..std::mem::size_of::<T>() {
            // SAFETY: `p + i` lies inside `self.0`, which this value owns and which is not read
            // again (its type has no destructor, asserted above).
            unsafe { std::ptr::write_volatile(p.add(i), 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl<T> std::ops::Deref for Wiped<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Wiped<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
