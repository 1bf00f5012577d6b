//! Mechanism parameters, from the application's memory to bytes the core can keep.
//!
//! [`convert`] is the one path every `CK_MECHANISM` parameter takes. Parameter structs that hold
//! pointers into application memory are read here, while the call lasts, and re-encoded
//! self-contained: this file handles AES-GCM, HKDF and PBKDF2 (`CK_GCM_PARAMS`, `CK_HKDF_PARAMS`,
//! `CK_PKCS5_PBKD2_PARAMS(2)`), `params_rsa.rs` and `params_ec.rs` their families'. Every other
//! parameter is copied as it is.

use crate::error::{err, Result};
use crate::mechanisms::aes::GcmParams;
use crate::mechanisms::kdf::{HkdfParams, Pbkdf2Params};
use cryptoki_sys::*;
use std::ffi::c_void;

/// The parameter of `mech` at `p` (`len` bytes), self-contained.
pub unsafe fn convert(mech: CK_MECHANISM_TYPE, p: *const c_void, len: CK_ULONG) -> Result<Vec<u8>> {
    if let Some(r) = super::params_rsa::convert(mech, p, len) {
        return r;
    }
    if let Some(r) = super::params_ec::convert(mech, p, len) {
        return r;
    }
    match mech {
        CKM_AES_GCM => gcm(p, len),
        CKM_HKDF_DERIVE | CKM_HKDF_DATA => hkdf(p, len),
        CKM_PKCS5_PBKD2 => pbkd2(p, len),
        _ => Ok(param_bytes(p as *const u8, len)?.to_vec()),
    }
}

/// Application bytes of a parameter field; NULL only with length 0.
unsafe fn param_bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    super::bytes(p, len).map_err(|_| err(CKR_MECHANISM_PARAM_INVALID))
}

/// Copies a C parameter struct of exactly its size.
unsafe fn read<T: Copy>(p: *const c_void, len: CK_ULONG) -> Result<T> {
    if p.is_null() || len as usize != std::mem::size_of::<T>() {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(std::ptr::read_unaligned(p as *const T))
}

/// `CK_GCM_PARAMS` as version 2.40 of the header first shipped it, without `ulIvBits`; some
/// applications still pass this shape.
#[repr(C)]
#[derive(Clone, Copy)]
struct GcmParamsV240 {
    p_iv: *mut CK_BYTE,
    iv_len: CK_ULONG,
    p_aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
    tag_bits: CK_ULONG,
}

unsafe fn gcm(p: *const c_void, len: CK_ULONG) -> Result<Vec<u8>> {
    let (iv, iv_len, aad, aad_len, tag_bits) = if len as usize == std::mem::size_of::<GcmParamsV240>() {
        let s: GcmParamsV240 = read(p, len)?;
        (s.p_iv, s.iv_len, s.p_aad, s.aad_len, s.tag_bits)
    } else {
        // ulIvBits is informational; the IV is ulIvLen bytes.
        let s: CK_GCM_PARAMS = read(p, len)?;
        (s.pIv, s.ulIvLen, s.pAAD, s.ulAADLen, s.ulTagBits)
    };
    GcmParams { iv: param_bytes(iv, iv_len)?.to_vec(), aad: param_bytes(aad, aad_len)?.to_vec(), tag_bits }.encode()
}

unsafe fn hkdf(p: *const c_void, len: CK_ULONG) -> Result<Vec<u8>> {
    let s: CK_HKDF_PARAMS = read(p, len)?;
    let salt = if s.bExtract != 0 && s.ulSaltType == CKF_HKDF_SALT_DATA {
        param_bytes(s.pSalt, s.ulSaltLen)?.to_vec()
    } else {
        Vec::new()
    };
    let info = if s.bExpand != 0 { param_bytes(s.pInfo, s.ulInfoLen)?.to_vec() } else { Vec::new() };
    HkdfParams {
        extract: s.bExtract != 0,
        expand: s.bExpand != 0,
        prf: s.prfHashMechanism,
        salt_type: s.ulSaltType,
        salt,
        salt_key: s.hSaltKey,
        info,
    }
    .encode()
}

/// Below this, `ulPasswordLen` is a length (`CK_PKCS5_PBKD2_PARAMS2`); from it on, a pointer to
/// one (`CK_PKCS5_PBKD2_PARAMS`, the older struct of the same size). No password is 64 KiB long,
/// and Linux maps nothing below 64 KiB (`vm.mmap_min_addr`).
const PASSWORD_LEN_LIMIT: CK_ULONG = 0x1_0000;

unsafe fn pbkd2(p: *const c_void, len: CK_ULONG) -> Result<Vec<u8>> {
    let s: CK_PKCS5_PBKD2_PARAMS2 = read(p, len)?;
    let password_len = if s.ulPasswordLen < PASSWORD_LEN_LIMIT {
        s.ulPasswordLen
    } else {
        let lp = s.ulPasswordLen as usize as *const CK_ULONG;
        // Nothing else can be told of a pointer than its alignment and that it points into the
        // user address space.
        if !(lp as usize).is_multiple_of(std::mem::align_of::<CK_ULONG>()) || !super::possible(lp, 1) {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        std::ptr::read(lp)
    };
    Pbkdf2Params {
        salt_source: s.saltSource,
        salt: param_bytes(s.pSaltSourceData as *const u8, s.ulSaltSourceDataLen)?.to_vec(),
        iterations: s.iterations,
        prf: s.prf,
        prf_data: param_bytes(s.pPrfData as *const u8, s.ulPrfDataLen)?.to_vec(),
        password: param_bytes(s.pPassword, password_len)?.to_vec(),
    }
    .encode()
}
