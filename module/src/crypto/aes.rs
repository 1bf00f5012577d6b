//! AES primitives aws-lc-rs does not expose in the shape PKCS#11 needs: raw block modes without
//! padding (ECB, CBC) over caller-chosen chunks, CTR with a caller-kept stream position, key wrap
//! (RFC 3394 / RFC 5649) with 192-bit keys, and GCM with any IV length and any tag length.
//!
//! Every function is a small safe wrapper; lengths are checked in Rust before aws-lc sees a
//! pointer.

use super::sys::{
    AES_cbc_encrypt, AES_ctr128_encrypt, AES_decrypt, AES_encrypt, AES_set_decrypt_key, AES_set_encrypt_key,
    AES_unwrap_key, AES_unwrap_key_padded, AES_wrap_key, AES_wrap_key_padded, EVP_CIPHER_CTX_ctrl, EVP_CIPHER_CTX_free,
    EVP_CIPHER_CTX_new, EVP_DecryptFinal_ex, EVP_DecryptInit_ex, EVP_DecryptUpdate, EVP_EncryptFinal_ex,
    EVP_EncryptInit_ex, EVP_EncryptUpdate, EVP_aes_128_gcm, EVP_aes_192_gcm, EVP_aes_256_gcm, AES_KEY, EVP_CIPHER,
    EVP_CIPHER_CTX, EVP_CTRL_GCM_GET_TAG, EVP_CTRL_GCM_SET_IVLEN, EVP_CTRL_GCM_SET_TAG,
};
use std::os::raw::{c_int, c_uint};
use std::ptr::{null, null_mut};

/// AES-GCM with a 96-bit nonce and a full tag, whole messages at a time (aws-lc, through
/// aws-lc-rs): the fast path of `CKM_AES_GCM`.
pub mod aead {
    pub use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM};
}

/// AES-CMAC (aws-lc, through aws-lc-rs).
pub mod cmac {
    pub use aws_lc_rs::cmac::{Context, Key, AES_128, AES_192, AES_256};
}

/// The AES block size.
pub const BLOCK: usize = 16;

/// Largest chunk handed to one EVP call (its lengths are `int`).
const CHUNK: usize = 1 << 30;

/// An expanded AES key, for one direction. Wiped on drop.
pub struct AesKey {
    /// On the heap, expanded there: moving the key (into an operation, out of `new`) moves a
    /// pointer and leaves no copy of the schedule, whose first rounds are the key itself, in a
    /// stack frame that nothing wipes.
    key: Box<AES_KEY>,
    encrypt: bool,
}

impl Drop for AesKey {
    fn drop(&mut self) {
        self.key.rd_key.iter_mut().for_each(|w| *w = 0);
        // Keep the wipe from being optimised away.
        std::hint::black_box(&*self.key);
    }
}

impl AesKey {
    /// Expands a 16-, 24- or 32-byte key for encryption (`encrypt`) or decryption; `None` for
    /// other lengths.
    pub fn new(key: &[u8], encrypt: bool) -> Option<AesKey> {
        if ![16, 24, 32].contains(&key.len()) {
            return None;
        }
        let mut k = AesKey { key: Box::new(AES_KEY { rd_key: [0; 60], rounds: 0 }), encrypt };
        let bits = (key.len() * 8) as c_uint;
        // SAFETY: `key` holds `bits / 8` readable bytes (checked above); `k.key` is a valid,
        // writable AES_KEY.
        let rc = unsafe {
            if encrypt {
                AES_set_encrypt_key(key.as_ptr(), bits, &mut *k.key)
            } else {
                AES_set_decrypt_key(key.as_ptr(), bits, &mut *k.key)
            }
        };
        (rc == 0).then_some(k)
    }

    /// ECB over whole blocks: `data.len()` must be a multiple of 16 (`None` otherwise).
    pub fn ecb(&self, data: &[u8]) -> Option<Vec<u8>> {
        if !data.len().is_multiple_of(BLOCK) {
            return None;
        }
        let mut out = vec![0u8; data.len()];
        for (i, o) in data.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK)) {
            // SAFETY: `i` and `o` are 16-byte blocks; the key schedule is initialised.
            unsafe {
                if self.encrypt {
                    AES_encrypt(i.as_ptr(), o.as_mut_ptr(), &*self.key)
                } else {
                    AES_decrypt(i.as_ptr(), o.as_mut_ptr(), &*self.key)
                }
            }
        }
        Some(out)
    }

    /// CBC over whole blocks, chaining through `iv` (updated for the next call), into `out`, which
    /// holds at least `data.len()` bytes. `None` unless `data.len()` is a multiple of 16.
    pub fn cbc_into(&self, iv: &mut [u8; BLOCK], data: &[u8], out: &mut [u8]) -> Option<()> {
        if !data.len().is_multiple_of(BLOCK) || out.len() < data.len() {
            return None;
        }
        if data.is_empty() {
            return Some(());
        }
        // SAFETY: `data` and `out` both hold `data.len()` bytes, a multiple of the block size;
        // `iv` is 16 writable bytes; the key schedule matches the direction.
        unsafe {
            AES_cbc_encrypt(
                data.as_ptr(),
                out.as_mut_ptr(),
                data.len(),
                &*self.key,
                iv.as_mut_ptr(),
                self.encrypt as c_int,
            )
        };
        Some(())
    }

    /// CTR keystream applied to `data`, continuing the stream kept in `state` (the 128-bit counter
    /// block is incremented as a whole; callers bound it to their counter width).
    pub fn ctr(&self, state: &mut CtrState, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; data.len()];
        if data.is_empty() {
            return out;
        }
        // SAFETY: `data` and `out` hold `data.len()` bytes; the counter, keystream buffer and
        // position are the 16-, 16-byte and integer fields of `state`; an encryption schedule
        // is used for both directions (CTR only encrypts).
        unsafe {
            AES_ctr128_encrypt(
                data.as_ptr(),
                out.as_mut_ptr(),
                data.len(),
                &*self.key,
                state.counter.as_mut_ptr(),
                state.keystream.as_mut_ptr(),
                &mut state.used,
            )
        };
        out
    }

    /// RFC 3394 key wrap with the default IV (encryption key). `None` unless the input is a
    /// multiple of 8 bytes and at least 16.
    pub fn wrap(&self, data: &[u8]) -> Option<Vec<u8>> {
        if !self.encrypt || data.len() < 16 || !data.len().is_multiple_of(8) || data.len() > CHUNK {
            return None;
        }
        let mut out = vec![0u8; data.len() + 8];
        // SAFETY: `out` holds `data.len() + 8` bytes as AES_wrap_key writes; a NULL IV selects
        // the default.
        let n = unsafe { AES_wrap_key(&*self.key, null(), out.as_mut_ptr(), data.as_ptr(), data.len()) };
        (n >= 0 && n as usize == out.len()).then_some(out)
    }

    /// RFC 3394 key unwrap with the default IV (decryption key); `None` on a bad length or a
    /// failed integrity check.
    pub fn unwrap(&self, data: &[u8]) -> Option<Vec<u8>> {
        if self.encrypt || data.len() < 24 || !data.len().is_multiple_of(8) || data.len() > CHUNK {
            return None;
        }
        let mut out = vec![0u8; data.len() - 8];
        // SAFETY: `out` holds `data.len() - 8` bytes as AES_unwrap_key writes; NULL IV = default.
        let n = unsafe { AES_unwrap_key(&*self.key, null(), out.as_mut_ptr(), data.as_ptr(), data.len()) };
        (n >= 0 && n as usize == out.len()).then_some(out)
    }

    /// RFC 5649 key wrap with padding (encryption key); any non-empty input.
    pub fn wrap_padded(&self, data: &[u8]) -> Option<Vec<u8>> {
        if !self.encrypt || data.is_empty() || data.len() > CHUNK {
            return None;
        }
        let max = data.len().div_ceil(8) * 8 + 8;
        let mut out = vec![0u8; max];
        let mut n = 0usize;
        // SAFETY: `out` holds `max` bytes, the most RFC 5649 produces for this input; `n` is
        // written with the length produced.
        let ok = unsafe { AES_wrap_key_padded(&*self.key, out.as_mut_ptr(), &mut n, max, data.as_ptr(), data.len()) };
        if ok != 1 || n > max {
            return None;
        }
        out.truncate(n);
        Some(out)
    }

    /// RFC 5649 key unwrap (decryption key); `None` on a bad length, padding or integrity check.
    pub fn unwrap_padded(&self, data: &[u8]) -> Option<Vec<u8>> {
        if self.encrypt || data.len() < 16 || !data.len().is_multiple_of(8) || data.len() > CHUNK {
            return None;
        }
        let max = data.len();
        let mut out = vec![0u8; max];
        let mut n = 0usize;
        // SAFETY: `out` holds `max` bytes (more than the unwrapped key can be); `n` receives the
        // length produced.
        let ok = unsafe { AES_unwrap_key_padded(&*self.key, out.as_mut_ptr(), &mut n, max, data.as_ptr(), data.len()) };
        if ok != 1 || n > max {
            return None;
        }
        out.truncate(n);
        Some(out)
    }
}

/// Position in a CTR key stream.
pub struct CtrState {
    counter: [u8; BLOCK],
    keystream: [u8; BLOCK],
    used: c_uint,
}

impl CtrState {
    /// A stream starting at counter block `cb`.
    pub fn new(cb: [u8; BLOCK]) -> CtrState {
        CtrState { counter: cb, keystream: [0; BLOCK], used: 0 }
    }
}

impl Drop for CtrState {
    fn drop(&mut self) {
        self.keystream = [0; BLOCK];
        std::hint::black_box(&self.keystream);
    }
}

/// An AES-GCM computation in progress (aws-lc's EVP interface, which takes any IV length and
/// yields or checks tags of 1 to 16 bytes).
pub struct Gcm {
    ctx: *mut EVP_CIPHER_CTX,
    encrypt: bool,
}

// SAFETY: the context is owned exclusively by this value and used only through `&mut self`;
// aws-lc cipher contexts carry no thread affinity.
unsafe impl Send for Gcm {}

impl Drop for Gcm {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from EVP_CIPHER_CTX_new and is freed once, here (it wipes the key).
        unsafe { EVP_CIPHER_CTX_free(self.ctx) }
    }
}

fn gcm_cipher(key_len: usize) -> Option<*const EVP_CIPHER> {
    // SAFETY: these return pointers to static cipher tables.
    unsafe {
        match key_len {
            16 => Some(EVP_aes_128_gcm()),
            24 => Some(EVP_aes_192_gcm()),
            32 => Some(EVP_aes_256_gcm()),
            _ => None,
        }
    }
}

impl Gcm {
    /// Starts GCM with `key` (16/24/32 bytes), a non-empty `iv` and `aad`. `None` on bad input.
    pub fn new(key: &[u8], iv: &[u8], aad: &[u8], encrypt: bool) -> Option<Gcm> {
        let cipher = gcm_cipher(key.len())?;
        if iv.is_empty() || iv.len() > CHUNK || aad.len() > isize::MAX as usize {
            return None;
        }
        // SAFETY: allocation of a fresh context, checked for NULL below.
        let ctx = unsafe { EVP_CIPHER_CTX_new() };
        if ctx.is_null() {
            return None;
        }
        let mut g = Gcm { ctx, encrypt };
        // SAFETY: `ctx` is a live context; the cipher pointer is static; key and IV buffers hold
        // the lengths the cipher and the preceding SET_IVLEN announce.
        let ok = unsafe {
            let init = if encrypt { EVP_EncryptInit_ex } else { EVP_DecryptInit_ex };
            init(ctx, cipher, null_mut(), null(), null()) == 1
                && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, iv.len() as c_int, null_mut()) == 1
                && init(ctx, null(), null_mut(), key.as_ptr(), iv.as_ptr()) == 1
        };
        if !ok {
            return None;
        }
        for part in aad.chunks(CHUNK) {
            g.feed(part, true)?;
        }
        Some(g)
    }

    /// Feeds AAD (`aad`) or text; returns the output text.
    fn feed(&mut self, data: &[u8], aad: bool) -> Option<Vec<u8>> {
        // Room for a tag after the text, so that appending it does not move the whole output.
        let len = if aad { 0 } else { data.len() };
        let mut out = Vec::with_capacity(len + BLOCK);
        out.resize(len, 0u8);
        self.feed_into(data, aad, &mut out)?;
        Some(out)
    }

    /// Feeds AAD (`aad`, `out` unused) or text, writing the output text into `out`, which holds
    /// at least `data.len()` bytes.
    fn feed_into(&mut self, data: &[u8], aad: bool, out: &mut [u8]) -> Option<()> {
        if !aad && out.len() < data.len() {
            return None;
        }
        let mut done = 0usize;
        for part in data.chunks(CHUNK) {
            let mut n: c_int = 0;
            let dst = if aad { null_mut() } else { out[done..].as_mut_ptr() };
            // SAFETY: `part` is at most CHUNK bytes (fits an int); GCM writes exactly as many
            // bytes as it reads, and `out[done..]` has at least `part.len()` left; a NULL output
            // makes the call take AAD.
            let ok = unsafe {
                if self.encrypt {
                    EVP_EncryptUpdate(self.ctx, dst, &mut n, part.as_ptr(), part.len() as c_int)
                } else {
                    EVP_DecryptUpdate(self.ctx, dst, &mut n, part.as_ptr(), part.len() as c_int)
                }
            };
            if ok != 1 || n < 0 || (!aad && n as usize != part.len()) {
                return None;
            }
            if !aad {
                done += part.len();
            }
        }
        Some(())
    }

    /// Feeds further additional authenticated data, before any text (GCM takes it in parts).
    pub fn aad(&mut self, aad: &[u8]) -> Option<()> {
        self.feed_into(aad, true, &mut [])
    }

    /// Encrypts or decrypts a part into `out` (at least `data.len()` bytes).
    pub fn update_into(&mut self, data: &[u8], out: &mut [u8]) -> Option<()> {
        self.feed_into(data, false, out)
    }

    /// Encrypts or decrypts a part.
    pub fn update(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        self.feed(data, false)
    }

    /// Ends an encryption: the tag, `tag_len` (1..=16) bytes.
    pub fn tag(self, tag_len: usize) -> Option<Vec<u8>> {
        if !self.encrypt || !(1..=16).contains(&tag_len) {
            return None;
        }
        let mut tag = vec![0u8; tag_len];
        let mut n: c_int = 0;
        let mut end = [0u8; BLOCK];
        // SAFETY: GCM's final writes no text (the buffer is a spare block anyway); the tag
        // buffer holds `tag_len` bytes.
        let ok = unsafe {
            EVP_EncryptFinal_ex(self.ctx, end.as_mut_ptr(), &mut n) == 1
                && EVP_CIPHER_CTX_ctrl(self.ctx, EVP_CTRL_GCM_GET_TAG, tag_len as c_int, tag.as_mut_ptr().cast()) == 1
        };
        ok.then_some(tag)
    }

    /// Ends a decryption: whether `tag` (1..=16 bytes) authenticates everything fed.
    pub fn check(self, tag: &[u8]) -> bool {
        if self.encrypt || !(1..=16).contains(&tag.len()) {
            return false;
        }
        let mut t = tag.to_vec();
        let mut n: c_int = 0;
        let mut end = [0u8; BLOCK];
        // SAFETY: SET_TAG copies `t.len()` (≤ 16) bytes from `t`; final writes no text.
        unsafe {
            EVP_CIPHER_CTX_ctrl(self.ctx, EVP_CTRL_GCM_SET_TAG, t.len() as c_int, t.as_mut_ptr().cast()) == 1
                && EVP_DecryptFinal_ex(self.ctx, end.as_mut_ptr(), &mut n) == 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips197_block_and_rfc3394_wrap() {
        let key: Vec<u8> = (0u8..16).collect();
        let pt: Vec<u8> = (0u8..16).map(|i| i * 0x11).collect();
        let ct = AesKey::new(&key, true).unwrap().ecb(&pt).unwrap();
        assert_eq!(
            ct,
            [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a]
        );
        assert_eq!(AesKey::new(&key, false).unwrap().ecb(&ct).unwrap(), pt);
        let w = AesKey::new(&key, true).unwrap().wrap(&pt).unwrap();
        assert_eq!(w[..8], [0x1f, 0xa6, 0x8b, 0x0a, 0x81, 0x12, 0xb4, 0x47]);
        assert_eq!(AesKey::new(&key, false).unwrap().unwrap(&w).unwrap(), pt);
        assert!(AesKey::new(&key[..15], true).is_none());
    }

    #[test]
    fn gcm_round_trip_any_iv() {
        let key = [7u8; 24];
        for iv_len in [1usize, 12, 60] {
            let iv = vec![3u8; iv_len];
            let mut e = Gcm::new(&key, &iv, b"aad", true).unwrap();
            let ct = e.update(b"hello world").unwrap();
            let tag = e.tag(12).unwrap();
            let mut d = Gcm::new(&key, &iv, b"aad", false).unwrap();
            assert_eq!(d.update(&ct).unwrap(), b"hello world");
            assert!(d.check(&tag));
            let mut d = Gcm::new(&key, &iv, b"aaD", false).unwrap();
            d.update(&ct).unwrap();
            assert!(!d.check(&tag));
        }
    }
}
