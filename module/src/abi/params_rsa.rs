//! Mechanism parameters of the RSA family: `CK_RSA_PKCS_OAEP_PARAMS` (whose label is behind
//! `pSourceData`) and `CK_RSA_PKCS_PSS_PARAMS` (plain values), decoded into [`Param::Oaep`] and
//! [`Param::Pss`].

use super::params::{param_copy, read, sized};
use crate::error::Result;
use crate::mechanisms::Param;
use cryptoki_sys::*;
use std::ffi::c_void;

/// Decodes the parameter of `mech` if it is one of this family's; `None` for other mechanisms.
pub unsafe fn decode(mech: CK_MECHANISM_TYPE, p: *const c_void, len: CK_ULONG) -> Option<Result<Param>> {
    match mech {
        CKM_RSA_PKCS_OAEP => Some(oaep(p, len)),
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => Some(sized(p, len, |s: CK_RSA_PKCS_PSS_PARAMS| Param::Pss {
            hash: s.hashAlg,
            mgf: s.mgf,
            salt_len: s.sLen,
        })),
        _ => None,
    }
}

unsafe fn oaep(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    let s: CK_RSA_PKCS_OAEP_PARAMS = read(p, len)?;
    let label = param_copy(s.pSourceData as *const u8, s.ulSourceDataLen)?;
    Ok(Param::Oaep { hash: s.hashAlg, mgf: s.mgf, source: s.source, label })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::params::as_param;
    use crate::error::err;

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
        let (p, size) = as_param(&s);
        let v = unsafe { decode(CKM_RSA_PKCS_OAEP, p, size) }.unwrap().unwrap();
        let want =
            Param::Oaep { hash: CKM_SHA256, mgf: CKG_MGF1_SHA1, source: CKZ_DATA_SPECIFIED, label: label.to_vec() };
        assert_eq!(v, want);
        let invalid = Some(Err(err(CKR_MECHANISM_PARAM_INVALID)));
        // An inner NULL pointer with a length, a wrong size, no structure at all.
        let bad = CK_RSA_PKCS_OAEP_PARAMS { pSourceData: std::ptr::null_mut(), ..s };
        let (p, _) = as_param(&bad);
        assert_eq!(unsafe { decode(CKM_RSA_PKCS_OAEP, p, size) }, invalid);
        assert_eq!(unsafe { decode(CKM_RSA_PKCS_OAEP, p, size - 1) }, invalid);
        assert_eq!(unsafe { decode(CKM_RSA_PKCS_OAEP, std::ptr::null(), size) }, invalid);
        assert_eq!(unsafe { decode(CKM_RSA_PKCS_OAEP, std::ptr::null(), 0) }, invalid);
        // No label: a NULL pointer with length 0.
        let none = CK_RSA_PKCS_OAEP_PARAMS { pSourceData: std::ptr::null_mut(), ulSourceDataLen: 0, ..s };
        let (p, _) = as_param(&none);
        let v = unsafe { decode(CKM_RSA_PKCS_OAEP, p, size) }.unwrap();
        assert_eq!(
            v,
            Ok(Param::Oaep { hash: CKM_SHA256, mgf: CKG_MGF1_SHA1, source: CKZ_DATA_SPECIFIED, label: vec![] })
        );
        // Not this family's.
        assert!(unsafe { decode(CKM_RSA_PKCS, p, size) }.is_none());
    }

    #[test]
    fn pss_parameters_are_read_when_they_have_the_structure_size() {
        let s = CK_RSA_PKCS_PSS_PARAMS { hashAlg: CKM_SHA384, mgf: CKG_MGF1_SHA384, sLen: 48 };
        let (p, size) = as_param(&s);
        let want = Ok(Param::Pss { hash: CKM_SHA384, mgf: CKG_MGF1_SHA384, salt_len: 48 });
        for m in [CKM_RSA_PKCS_PSS, CKM_SHA1_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS] {
            assert_eq!(unsafe { decode(m, p, size) }.unwrap(), want, "{m:#x}");
        }
        // Another size stays bytes, for the mechanism to refuse when it starts; none is none.
        let short = unsafe { decode(CKM_RSA_PKCS_PSS, p, size - 1) }.unwrap().unwrap();
        assert!(matches!(short, Param::Bytes(ref b) if b.len() == size as usize - 1));
        assert_eq!(unsafe { decode(CKM_RSA_PKCS_PSS, std::ptr::null(), 0) }.unwrap(), Ok(Param::None));
        // A NULL pointer with a length is refused at once.
        let invalid = Some(Err(err(CKR_MECHANISM_PARAM_INVALID)));
        assert_eq!(unsafe { decode(CKM_RSA_PKCS_PSS, std::ptr::null(), size) }, invalid);
    }
}
