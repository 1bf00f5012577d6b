//! DES and Triple-DES keys (`CKK_DES`, `CKK_DES2`, `CKK_DES3`): 8, 16 or 24 bytes; the check
//! value is the first three bytes of the encryption of a zero block. Never approved. The modes
//! are `mechanisms::des`'s.

use super::{KeyType, BASE};
use crate::crypto::des::{Des3Key, BLOCK};
use cryptoki_sys::*;

pub const DES: KeyType = KeyType {
    name: "DES",
    secret: Some(super::generic::VALUE),
    value_len_ok: |kt, n| key_len(kt).is_none_or(|k| k == n),
    check_value: |_, value| check_value(value),
    approved: |_, _| false,
    ..BASE
};

/// The length of a key of `key_type` (bytes).
pub fn key_len(key_type: CK_KEY_TYPE) -> Option<usize> {
    match key_type {
        CKK_DES => Some(8),
        CKK_DES2 => Some(16),
        CKK_DES3 => Some(24),
        _ => None,
    }
}

/// The key check value of a Triple-DES key: the first 3 bytes of the encryption of a zero block.
pub fn check_value(value: &[u8]) -> Option<Vec<u8>> {
    Des3Key::new(value, true)?.ecb(&[0u8; BLOCK]).map(|b| b[..3].to_vec())
}
