//! AES keys (`CKK_AES`): 16, 24 or 32 bytes; the check value is the first three bytes of the ECB
//! encryption of a zero block. The modes are `mechanisms::aes`'s.

use super::{KeyType, BASE};
use crate::crypto::aes::AesKey;

pub const AES: KeyType = KeyType {
    name: "AES",
    secret: Some(super::generic::VALUE),
    value_len_ok: |_, n| [16, 24, 32].contains(&n),
    check_value: |_, value| AesKey::new(value, true)?.ecb(&[0u8; 16]).map(|b| b[..3].to_vec()),
    approved: |_, k| matches!(k.bits, Some(128 | 192 | 256)),
    ..BASE
};
