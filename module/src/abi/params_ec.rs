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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::params::as_param;
    use crate::error::err;

    #[test]
    fn ecdh1_parameters() {
        let (shared, public) = (b"shared info".to_vec(), vec![4u8; 65]);
        let s = CK_ECDH1_DERIVE_PARAMS {
            kdf: CKD_SHA256_KDF,
            ulSharedDataLen: shared.len() as CK_ULONG,
            pSharedData: shared.as_ptr() as *mut u8,
            ulPublicDataLen: public.len() as CK_ULONG,
            pPublicData: public.as_ptr() as *mut u8,
        };
        let (p, size) = as_param(&s);
        let got = unsafe { decode(CKM_ECDH1_DERIVE, p, size) }.unwrap();
        assert_eq!(got, Ok(Param::Ecdh1 { kdf: CKD_SHA256_KDF, shared_data: shared.clone(), public_data: public }));
        let invalid = Some(Err(err(CKR_MECHANISM_PARAM_INVALID)));
        assert_eq!(unsafe { decode(CKM_ECDH1_DERIVE, p, size + 1) }, invalid);
        assert_eq!(unsafe { decode(CKM_ECDH1_DERIVE, std::ptr::null(), size) }, invalid);
        assert_eq!(unsafe { decode(CKM_ECDH1_DERIVE, std::ptr::null(), 0) }, invalid);
        let no_point = CK_ECDH1_DERIVE_PARAMS { pPublicData: std::ptr::null_mut(), ..s };
        let (p, _) = as_param(&no_point);
        assert_eq!(unsafe { decode(CKM_ECDH1_DERIVE, p, size) }, invalid);
        // No shared data: NULL with length 0.
        let plain =
            CK_ECDH1_DERIVE_PARAMS { kdf: CKD_NULL, pSharedData: std::ptr::null_mut(), ulSharedDataLen: 0, ..s };
        let (p, _) = as_param(&plain);
        let got = unsafe { decode(CKM_ECDH1_DERIVE, p, size) }.unwrap().unwrap();
        assert!(matches!(got, Param::Ecdh1 { kdf: CKD_NULL, ref shared_data, .. } if shared_data.is_empty()));
    }

    #[test]
    fn eddsa_parameters() {
        let context = b"ctx";
        let s = CK_EDDSA_PARAMS { phFlag: 1, ulContextDataLen: 3, pContextData: context.as_ptr() as *mut u8 };
        let (p, size) = as_param(&s);
        let got = unsafe { decode(CKM_EDDSA, p, size) }.unwrap();
        assert_eq!(got, Ok(Param::Eddsa { prehash: true, context: context.to_vec() }));
        // No parameter is pure EdDSA; a pointer without a length, a wrong size or an inner NULL
        // pointer with a length is refused.
        assert_eq!(unsafe { decode(CKM_EDDSA, std::ptr::null(), 0) }.unwrap(), Ok(Param::None));
        let invalid = Some(Err(err(CKR_MECHANISM_PARAM_INVALID)));
        assert_eq!(unsafe { decode(CKM_EDDSA, p, 0) }, invalid);
        assert_eq!(unsafe { decode(CKM_EDDSA, p, size - 1) }, invalid);
        assert_eq!(unsafe { decode(CKM_EDDSA, std::ptr::null(), size) }, invalid);
        let bad = CK_EDDSA_PARAMS { pContextData: std::ptr::null_mut(), ..s };
        let (p, _) = as_param(&bad);
        assert_eq!(unsafe { decode(CKM_EDDSA, p, size) }, invalid);
        assert!(unsafe { decode(CKM_ECDSA, p, size) }.is_none());
    }
}
