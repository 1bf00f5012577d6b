//! Triple-DES (TDEA, SP 800-67) block operations from aws-lc's DES functions: aws-lc-rs has no
//! Triple-DES. Keying options 1 (three keys, 24 bytes) and 2 (two keys, 16 bytes: K1 K2 K1), and
//! single DES (8 bytes) as keying option 3 (K1 K1 K1, which equals DES under K1).
//!
//! Every function is a small safe wrapper; lengths are checked in Rust before aws-lc sees a
//! pointer.

use super::sys::{DES_cblock, DES_ecb3_encrypt, DES_ede3_cbc_encrypt, DES_key_schedule, DES_set_key_unchecked};
use std::os::raw::c_int;

/// The DES block size.
pub const BLOCK: usize = 8;

/// A Triple-DES key schedule for one direction. Wiped on drop.
pub struct Des3Key {
    ks: [DES_key_schedule; 3],
    encrypt: bool,
}

impl Drop for Des3Key {
    fn drop(&mut self) {
        for k in self.ks.iter_mut() {
            k.subkeys.iter_mut().flatten().for_each(|w| *w = 0);
        }
        // Keep the wipe from being optimised away.
        std::hint::black_box(&self.ks);
    }
}

impl Des3Key {
    /// Schedules an 8-, 16- or 24-byte key; `None` for other lengths. Parity bits are ignored, as
    /// SP 800-67 allows.
    pub fn new(key: &[u8], encrypt: bool) -> Option<Des3Key> {
        let parts: [&[u8]; 3] = match key.len() {
            8 => [key, key, key],
            16 => [&key[..8], &key[8..16], &key[..8]],
            24 => [&key[..8], &key[8..16], &key[16..24]],
            _ => return None,
        };
        let mut k = Des3Key { ks: [DES_key_schedule::default(); 3], encrypt };
        for (ks, part) in k.ks.iter_mut().zip(parts) {
            let block = DES_cblock { bytes: part.try_into().ok()? };
            // SAFETY: `block` is an 8-byte key and `ks` a valid, writable schedule.
            unsafe { DES_set_key_unchecked(&block, ks) };
        }
        Some(k)
    }

    fn enc(&self) -> c_int {
        self.encrypt as c_int
    }

    /// ECB over whole blocks: `data.len()` must be a multiple of 8 (`None` otherwise).
    pub fn ecb(&self, data: &[u8]) -> Option<Vec<u8>> {
        if !data.len().is_multiple_of(BLOCK) {
            return None;
        }
        let mut out = vec![0u8; data.len()];
        for (i, o) in data.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK)) {
            let input = DES_cblock { bytes: i.try_into().ok()? };
            let mut output = DES_cblock::default();
            // SAFETY: both blocks are 8 bytes; the schedules are initialised.
            unsafe { DES_ecb3_encrypt(&input, &mut output, &self.ks[0], &self.ks[1], &self.ks[2], self.enc()) };
            o.copy_from_slice(&output.bytes);
        }
        Some(out)
    }

    /// CBC over whole blocks into `out` (at least `data.len()` bytes), chaining through `iv`
    /// (updated for the next call). `None` unless `data.len()` is a multiple of 8.
    pub fn cbc_into(&self, iv: &mut [u8; BLOCK], data: &[u8], out: &mut [u8]) -> Option<()> {
        if !data.len().is_multiple_of(BLOCK) || out.len() < data.len() {
            return None;
        }
        if data.is_empty() {
            return Some(());
        }
        let mut ivec = DES_cblock { bytes: *iv };
        // SAFETY: `data` and `out` both hold `data.len()` bytes, a multiple of the block size;
        // `ivec` is a writable block; the schedules match the direction.
        unsafe {
            DES_ede3_cbc_encrypt(
                data.as_ptr(),
                out.as_mut_ptr(),
                data.len(),
                &self.ks[0],
                &self.ks[1],
                &self.ks[2],
                &mut ivec,
                self.enc(),
            )
        };
        *iv = ivec.bytes;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// SP 800-67 Rev. 2 Appendix B: the TDEA ECB example (keying option 1).
    #[test]
    fn sp800_67_example() {
        let key = h("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123");
        let pt = h("5468652071756663");
        let ct = h("A826FD8CE53B855F");
        let e = Des3Key::new(&key, true).unwrap();
        assert_eq!(e.ecb(&pt).unwrap(), ct);
        let d = Des3Key::new(&key, false).unwrap();
        assert_eq!(d.ecb(&ct).unwrap(), pt);
        // CBC of one block with a zero IV is ECB of that block.
        let mut iv = [0u8; 8];
        let mut out = [0u8; 8];
        e.cbc_into(&mut iv, &pt, &mut out).unwrap();
        assert_eq!(out.to_vec(), ct);
        assert_eq!(iv.to_vec(), ct);
        assert!(Des3Key::new(&key[..20], true).is_none());
        // Single DES (FIPS 46-3 validation set: key 8000000000000000, zero block).
        let single = Des3Key::new(&h("8000000000000000"), true).unwrap();
        assert_eq!(single.ecb(&[0; 8]).unwrap(), h("95A8D72813DAA94D"));
        assert!(e.ecb(&pt[..7]).is_none());
    }
}
