//! ECB and CBC, with or without PKCS#7 padding, over a block cipher: AES (`aes.rs`) and
//! Triple-DES (`des.rs`). Whole blocks go through as they arrive; a partial block (and, when
//! decrypting with padding, the last whole block) waits for more input or the end.

use super::CipherOperation;
use crate::error::{err, Result};
use cryptoki_sys::*;
use zeroize::Zeroizing;

/// A keyed block cipher for one direction, over whole blocks.
pub trait BlockCipher: Send + 'static {
    /// The block size in bytes (at most 16).
    const BLOCK: usize;
    /// ECB over whole blocks; `None` unless `data.len()` is a multiple of the block size.
    fn ecb(&self, data: &[u8]) -> Option<Vec<u8>>;
    /// CBC into `out` (at least `data.len()` bytes), chaining through `iv` (`BLOCK` bytes,
    /// updated for the next call); `None` unless `data.len()` is a multiple of the block size.
    fn cbc_into(&self, iv: &mut [u8], data: &[u8], out: &mut [u8]) -> Option<()>;
}

/// The input of a wrap with ECB or CBC: the key padded on its trailing end with up to a block
/// minus one zero bytes, as PKCS#11 has it for the block cipher modes; unwrapping truncates the
/// result according to the template (`services::keys`).
pub fn zero_padded(key_bytes: &[u8], block: usize) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(key_bytes.to_vec());
    v.resize(key_bytes.len().next_multiple_of(block), 0);
    v
}

/// A decryption error as the unwrapping of a key reports it (`CKR_WRAPPED_KEY_*`).
pub fn as_unwrap_error(e: crate::error::Error) -> crate::error::Error {
    match e.rv() {
        CKR_ENCRYPTED_DATA_INVALID => err(CKR_WRAPPED_KEY_INVALID),
        CKR_ENCRYPTED_DATA_LEN_RANGE => err(CKR_WRAPPED_KEY_LEN_RANGE),
        _ => e,
    }
}

/// The length errors of each direction.
pub fn len_range(encrypt: bool) -> crate::error::Error {
    err(if encrypt { CKR_DATA_LEN_RANGE } else { CKR_ENCRYPTED_DATA_LEN_RANGE })
}

/// An ECB (no IV) or CBC operation.
pub struct BlockOp<K: BlockCipher> {
    key: K,
    /// The chaining value of CBC (its first `K::BLOCK` bytes); `None` for ECB.
    iv: Option<[u8; 16]>,
    pad: bool,
    encrypt: bool,
    buf: Zeroizing<Vec<u8>>,
}

impl<K: BlockCipher> BlockOp<K> {
    /// `iv` must hold `K::BLOCK` bytes (`CKR_MECHANISM_PARAM_INVALID` otherwise).
    pub fn new(key: K, iv: Option<&[u8]>, pad: bool, encrypt: bool) -> Result<BlockOp<K>> {
        let iv = match iv {
            None => None,
            Some(v) if v.len() == K::BLOCK => {
                let mut b = [0u8; 16];
                b[..K::BLOCK].copy_from_slice(v);
                Some(b)
            }
            Some(_) => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
        };
        Ok(BlockOp { key, iv, pad, encrypt, buf: Zeroizing::new(Vec::new()) })
    }

    fn run(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let out = match self.iv.as_mut() {
            Some(iv) => {
                let mut out = vec![0u8; data.len()];
                self.key.cbc_into(&mut iv[..K::BLOCK], data, &mut out).map(|_| out)
            }
            None => self.key.ecb(data),
        };
        out.ok_or(err(CKR_GENERAL_ERROR))
    }
}

impl<K: BlockCipher> CipherOperation for BlockOp<K> {
    /// Encryption of a whole message straight into the caller's buffer (the common bulk case).
    fn one_shot_into(mut self: Box<Self>, data: &[u8], out: &mut [u8]) -> Result<usize> {
        if !self.encrypt || !self.buf.is_empty() || self.iv.is_none() {
            return super::write_into(&self.one_shot(data)?, out);
        }
        let block = K::BLOCK;
        let full = data.len() / block * block;
        if !self.pad && full != data.len() {
            return Err(len_range(true));
        }
        let total = if self.pad { full + block } else { full };
        let out = out.get_mut(..total).ok_or(err(CKR_BUFFER_TOO_SMALL))?;
        let key = &self.key;
        let iv = &mut self.iv.as_mut().ok_or(err(CKR_GENERAL_ERROR))?[..block];
        key.cbc_into(iv, &data[..full], &mut out[..full]).ok_or(err(CKR_GENERAL_ERROR))?;
        if self.pad {
            let rest = &data[full..];
            let mut last = Zeroizing::new([(block - rest.len()) as u8; 16]);
            last[..rest.len()].copy_from_slice(rest);
            key.cbc_into(iv, &last[..block], &mut out[full..]).ok_or(err(CKR_GENERAL_ERROR))?;
        }
        Ok(total)
    }

    fn output_len(&self, input: usize) -> Option<(usize, bool)> {
        if !self.buf.is_empty() {
            return None;
        }
        match (self.pad, self.encrypt) {
            (true, true) => Some(((input / K::BLOCK + 1) * K::BLOCK, true)),
            (false, _) if input.is_multiple_of(K::BLOCK) => Some((input, true)),
            (true, false) => Some((input, false)),
            _ => None,
        }
    }

    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut n = self.buf.len() / K::BLOCK * K::BLOCK;
        if self.pad && !self.encrypt && n == self.buf.len() {
            n = n.saturating_sub(K::BLOCK);
        }
        let ready: Zeroizing<Vec<u8>> = Zeroizing::new(self.buf.drain(..n).collect());
        self.run(&ready)
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>> {
        let rest: Zeroizing<Vec<u8>> = Zeroizing::new(std::mem::take(&mut *self.buf));
        match (self.pad, self.encrypt) {
            (false, _) if rest.is_empty() => Ok(Vec::new()),
            (false, enc) => Err(len_range(enc)),
            (true, true) => {
                let p = K::BLOCK - rest.len();
                let mut last = Zeroizing::new(rest.to_vec());
                last.resize(K::BLOCK, p as u8);
                self.run(&last)
            }
            (true, false) => {
                if rest.len() != K::BLOCK {
                    return Err(err(CKR_ENCRYPTED_DATA_LEN_RANGE));
                }
                let mut last = Zeroizing::new(self.run(&rest)?);
                let n = unpad_len(&last).ok_or(err(CKR_ENCRYPTED_DATA_INVALID))?;
                last.truncate(K::BLOCK - n);
                Ok(last.to_vec())
            }
        }
    }
}

/// The PKCS#7 pad length of a final block, checked without data-dependent branches.
fn unpad_len(block: &[u8]) -> Option<usize> {
    let p = *block.last()?;
    let mut bad = (p == 0) as u8 | ((p as usize > block.len()) as u8);
    for (i, b) in block.iter().rev().enumerate() {
        // Only the last `p` bytes must equal `p`.
        let inside = ((i as u8) < p) as u8;
        bad |= inside & ((*b != p) as u8);
    }
    (bad == 0).then_some(p as usize)
}

#[cfg(test)]
mod tests {
    use super::unpad_len;

    #[test]
    fn padding_check() {
        let mut b = [0u8; 16];
        b[15] = 1;
        assert_eq!(unpad_len(&b), Some(1));
        b[15] = 0;
        assert_eq!(unpad_len(&b), None);
        b[15] = 17;
        assert_eq!(unpad_len(&b), None);
        let b = [16u8; 16];
        assert_eq!(unpad_len(&b), Some(16));
        let mut b = [3u8; 16];
        b[13] = 2;
        assert_eq!(unpad_len(&b), None);
        // An 8-byte block (Triple-DES) pads with at most 8.
        assert_eq!(unpad_len(&[8u8; 8]), Some(8));
        assert_eq!(unpad_len(&[9u8; 8]), None);
    }
}
