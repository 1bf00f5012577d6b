//! Owned handles of aws-lc's `EVP_PKEY` and `EVP_PKEY_CTX`, for the families that call aws-lc's
//! EVP interface directly where aws-lc-rs does not reach (`mlkem`: keys from a seed, KEM calls
//! into the module's own buffers; `mldsa`: signing and verifying a caller-computed μ). Each handle
//! is released once, when dropped.

use super::sys;
use std::ptr::NonNull;

/// An owned `EVP_PKEY` (aws-lc cleanses a private key when it frees it).
pub(crate) struct Pkey(NonNull<sys::EVP_PKEY>);

// SAFETY: an aws-lc EVP_PKEY is reference-counted with atomic counts, and a key that is no longer
// changed may be used from several threads at once, each operation through a context of its own
// (as aws-lc-rs's keys, which are `Send` and `Sync`, use it). A `Pkey` is never changed after it
// is made: every use makes a context on it (`context`) or reads it.
unsafe impl Send for Pkey {}
// SAFETY: see `Send` above.
unsafe impl Sync for Pkey {}

impl Pkey {
    /// Takes the key an aws-lc constructor returned; `None` for NULL (the constructor failed).
    pub(crate) fn new(key: *mut sys::EVP_PKEY) -> Option<Pkey> {
        NonNull::new(key).map(Pkey)
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::EVP_PKEY {
        self.0.as_ptr()
    }

    /// A fresh operation context on this key.
    pub(crate) fn context(&self) -> Option<PkeyCtx> {
        // SAFETY: `self` is a live key; the context takes its own reference. NULL is checked.
        PkeyCtx::new(unsafe { sys::EVP_PKEY_CTX_new(self.as_ptr(), std::ptr::null_mut()) })
    }
}

impl Drop for Pkey {
    fn drop(&mut self) {
        // SAFETY: the key came from an aws-lc constructor; this value owns one reference to it
        // and releases it once.
        unsafe { sys::EVP_PKEY_free(self.0.as_ptr()) }
    }
}

/// An owned `EVP_PKEY_CTX`.
pub(crate) struct PkeyCtx(NonNull<sys::EVP_PKEY_CTX>);

impl PkeyCtx {
    /// Takes the context an aws-lc constructor returned; `None` for NULL.
    pub(crate) fn new(ctx: *mut sys::EVP_PKEY_CTX) -> Option<PkeyCtx> {
        NonNull::new(ctx).map(PkeyCtx)
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::EVP_PKEY_CTX {
        self.0.as_ptr()
    }
}

impl Drop for PkeyCtx {
    fn drop(&mut self) {
        // SAFETY: the context came from an aws-lc constructor and is freed once, here.
        unsafe { sys::EVP_PKEY_CTX_free(self.0.as_ptr()) }
    }
}
