//! Mechanism parameters of the RSA family that carry pointers into application memory
//! (`CK_RSA_PKCS_OAEP_PARAMS`, whose label is behind `pSourceData`), turned into the
//! self-contained encoding the core reads (`mechanisms::rsa::encode_oaep`). PSS parameters hold no
//! pointer and pass through unchanged.

use crate::error::{err, Result};
use cryptoki_sys::*;
use std::ffi::c_void;

/// Converts the parameter of `mech` if it is one of this family's; `None` for other mechanisms.
pub unsafe fn convert(mech: CK_MECHANISM_TYPE, p: *const c_void, len: CK_ULONG) -> Option<Result<Vec<u8>>> {
    match mech {
        CKM_RSA_PKCS_OAEP => Some(oaep(p, len)),
        _ => None,
    }
}

unsafe fn oaep(p: *const c_void, len: CK_ULONG) -> Result<Vec<u8>> {
    if p.is_null() || len as usize != std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    let s = std::ptr::read_unaligned(p as *const CK_RSA_PKCS_OAEP_PARAMS);
    let label = super::params::param_bytes(s.pSourceData as *const u8, s.ulSourceDataLen)?;
    Ok(crate::mechanisms::rsa::encode_oaep(s.hashAlg, s.mgf, s.source, label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oaep_label_is_copied_out_of_the_structure() {
        let label = b"a label";
        let s = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA1,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: label.as_ptr() as *mut c_void,
            ulSourceDataLen: label.len() as CK_ULONG,
        };
        let size = std::mem::size_of_val(&s) as CK_ULONG;
        let p = &s as *const CK_RSA_PKCS_OAEP_PARAMS as *const c_void;
        let v = unsafe { convert(CKM_RSA_PKCS_OAEP, p, size) }.unwrap().unwrap();
        assert_eq!(v, crate::mechanisms::rsa::encode_oaep(CKM_SHA256, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, label));
        let bad = CK_RSA_PKCS_OAEP_PARAMS { pSourceData: std::ptr::null_mut(), ..s };
        let p = &bad as *const CK_RSA_PKCS_OAEP_PARAMS as *const c_void;
        assert_eq!(unsafe { convert(CKM_RSA_PKCS_OAEP, p, size) }, Some(Err(err(CKR_MECHANISM_PARAM_INVALID))));
        assert_eq!(unsafe { convert(CKM_RSA_PKCS_OAEP, p, size - 1) }, Some(Err(err(CKR_MECHANISM_PARAM_INVALID))));
        assert!(unsafe { convert(CKM_RSA_PKCS_PSS, p, size) }.is_none());
    }
}
