//! Mechanism parameters of the elliptic-curve family that carry pointers into application memory
//! (`CK_ECDH1_DERIVE_PARAMS`, `CK_EDDSA_PARAMS`), decoded into [`Param::Ecdh1`] and
//! [`Param::Eddsa`].

use super::params::{param_copy, read};
use crate::error::Result;
use crate::mechanisms::Param;
use cryptoki_sys::*;
use std::ffi::c_void;

/// Decodes the parameter of `mech` if it is one of this family's; `None` for other mechanisms.
pub unsafe fn decode(mech: CK_MECHANISM_TYPE, p: *const c_void, len: CK_ULONG) -> Option<Result<Param>> {
    match mech {
        CKM_ECDH1_DERIVE => Some(ecdh1(p, len)),
        CKM_EDDSA => Some(eddsa(p, len)),
        _ => None,
    }
}

unsafe fn ecdh1(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    let s: CK_ECDH1_DERIVE_PARAMS = read(p, len)?;
    let shared_data = param_copy(s.pSharedData, s.ulSharedDataLen)?;
    let public_data = param_copy(s.pPublicData, s.ulPublicDataLen)?;
    Ok(Param::Ecdh1 { kdf: s.kdf, shared_data, public_data })
}

/// No parameter at all is pure EdDSA: [`Param::None`].
unsafe fn eddsa(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    if p.is_null() && len == 0 {
        return Ok(Param::None);
    }
    let s: CK_EDDSA_PARAMS = read(p, len)?;
    let context = param_copy(s.pContextData, s.ulContextDataLen)?;
    Ok(Param::Eddsa { prehash: s.phFlag != 0, context })
}
