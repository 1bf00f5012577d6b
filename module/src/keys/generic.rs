//! Generic secret keys (`CKK_GENERIC_SECRET`) and the HMAC key types (`CKK_SHA*_HMAC`): a value
//! of any length, its check value the first bytes of its SHA-1. The value rows here are every
//! secret key type's.

use super::{KeyType, BASE};
use crate::object::attrs::{s, Kind::*, Spec, FIXED, REQ_CREATE, SECRET};
use cryptoki_sys::*;

/// Generic secret, AES, HKDF, HMAC and DES keys.
pub const VALUE: &[Spec] = &[s(CKA_VALUE, Bytes, REQ_CREATE | FIXED | SECRET), s(CKA_VALUE_LEN, Ulong, FIXED)];

pub const GENERIC_SECRET: KeyType = KeyType { name: "generic secret", secret: Some(VALUE), ..BASE };

pub const HMAC: KeyType = KeyType { name: "HMAC", secret: Some(VALUE), ..BASE };
