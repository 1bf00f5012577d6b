//! HKDF keys (`CKK_HKDF`): a value of any length for `CKM_HKDF_DERIVE` and `CKM_HKDF_DATA`
//! (`mechanisms::kdf`).

use super::{KeyType, BASE};

pub const HKDF: KeyType = KeyType { name: "HKDF", secret: Some(super::generic::VALUE), ..BASE };
