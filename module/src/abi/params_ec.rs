//! Mechanism parameters of the elliptic-curve family that carry pointers into application memory
//! (`CK_ECDH1_DERIVE_PARAMS`, `CK_EDDSA_PARAMS`), turned into self-contained encodings the core
//! reads (`mechanisms::ec::Ecdh1Params`, `mechanisms::eddsa::EddsaParams`).

use crate::error::{err, Result};
use crate::mechanisms::ec::Ecdh1Params;
use crate::mechanisms::eddsa::EddsaParams;
use cryptoki_sys::*;
use std::ffi::c_void;

/// Converts the parameter of `mech` if it is one of this family's; `None` for other mechanisms.
pub unsafe fn convert(mech: CK_MECHANISM_TYPE, p: *const c_void, len: CK_ULONG) -> Option<Result<Vec<u8>>> {
    match mech {
        CKM_ECDH1_DERIVE => Some(ecdh1(p, len)),
        CKM_EDDSA => Some(eddsa(p, len)),
        _ => None,
    }
}

/// Copies a C parameter struct of exactly the expected size.
unsafe fn read<T: Copy>(p: *const c_void, len: CK_ULONG) -> Result<T> {
    if p.is_null() || len as usize != std::mem::size_of::<T>() {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(std::ptr::read_unaligned(p as *const T))
}

unsafe fn ecdh1(p: *const c_void, len: CK_ULONG) -> Result<Vec<u8>> {
    let s: CK_ECDH1_DERIVE_PARAMS = read(p, len)?;
    let shared_data = super::params::param_bytes(s.pSharedData, s.ulSharedDataLen)?;
    let public_data = super::params::param_bytes(s.pPublicData, s.ulPublicDataLen)?;
    Ecdh1Params::encode_from(s.kdf, shared_data, public_data)
}

/// No parameter at all is pure EdDSA: the empty encoding.
unsafe fn eddsa(p: *const c_void, len: CK_ULONG) -> Result<Vec<u8>> {
    if p.is_null() && len == 0 {
        return Ok(Vec::new());
    }
    let s: CK_EDDSA_PARAMS = read(p, len)?;
    let context = super::params::param_bytes(s.pContextData, s.ulContextDataLen)?;
    EddsaParams { prehash: s.phFlag != 0, context: super::copy(context)? }.encode()
}
