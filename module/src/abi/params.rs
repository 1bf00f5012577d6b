//! Mechanism parameters, from the application's memory to the core's [`Param`].
//!
//! [`decode`] is the one path every `CK_MECHANISM` parameter takes. The parameter is read here,
//! once, while the call lasts: its pointers are followed and its buffers copied, so that nothing
//! the core keeps refers to application memory. This file handles AES-GCM, AES-CTR, the MAC
//! lengths, HKDF and PBKDF2 (`CK_GCM_PARAMS` in both layouts, `CK_AES_CTR_PARAMS`,
//! `CK_MAC_GENERAL_PARAMS`, `CK_HKDF_PARAMS`, `CK_PKCS5_PBKD2_PARAMS(2)`), `params_rsa.rs` and
//! `params_ec.rs` their families'. Every other parameter is plain bytes ([`Param::Bytes`], or
//! [`Param::None`] when empty).

use crate::error::{err, Result};
use crate::mechanisms::param::{GcmParams, HkdfParams, Pbkdf2Params};
use crate::mechanisms::Param;
use cryptoki_sys::*;
use std::ffi::c_void;
use zeroize::Zeroizing;

/// The parameter of `mech` at `p` (`len` bytes).
pub unsafe fn decode(mech: CK_MECHANISM_TYPE, p: *const c_void, len: CK_ULONG) -> Result<Param> {
    if let Some(r) = super::params_rsa::decode(mech, p, len) {
        return r;
    }
    if let Some(r) = super::params_ec::decode(mech, p, len) {
        return r;
    }
    match mech {
        CKM_AES_GCM => gcm(p, len),
        CKM_AES_CTR => sized(p, len, |s: CK_AES_CTR_PARAMS| Param::Ctr { counter_bits: s.ulCounterBits, block: s.cb }),
        CKM_HKDF_DERIVE | CKM_HKDF_DATA => hkdf(p, len),
        CKM_PKCS5_PBKD2 => pbkd2(p, len),
        m if MAC_GENERAL.contains(&m) => sized(p, len, |n: CK_MAC_GENERAL_PARAMS| Param::Ulong(n)),
        CKM_HASH_ML_DSA | CKM_HASH_SLH_DSA => hash_sign_context(p, len),
        m if crate::mechanisms::pq_sign::takes_sign_context(m) => sign_context(p, len),
        _ => plain(p, len),
    }
}

/// The mechanisms whose parameter is `CK_MAC_GENERAL_PARAMS`.
const MAC_GENERAL: [CK_MECHANISM_TYPE; 10] = [
    CKM_SHA_1_HMAC_GENERAL,
    CKM_SHA224_HMAC_GENERAL,
    CKM_SHA256_HMAC_GENERAL,
    CKM_SHA384_HMAC_GENERAL,
    CKM_SHA512_HMAC_GENERAL,
    CKM_SHA3_224_HMAC_GENERAL,
    CKM_SHA3_256_HMAC_GENERAL,
    CKM_SHA3_384_HMAC_GENERAL,
    CKM_SHA3_512_HMAC_GENERAL,
    CKM_AES_CMAC_GENERAL,
];

/// A parameter of plain bytes ([`Param::None`] when empty), checked as [`param_bytes`] checks
/// them.
unsafe fn plain(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    as_plain(param_bytes(p as *const u8, len)?)
}

fn as_plain(b: &[u8]) -> Result<Param> {
    Ok(if b.is_empty() { Param::None } else { Param::Bytes(super::copy(b)?) })
}

/// A parameter that is a C structure of plain values (`T`) when its bytes have the structure's
/// size, and [`plain`] bytes otherwise, for the mechanism to refuse when it starts.
pub(super) unsafe fn sized<T: Copy>(p: *const c_void, len: CK_ULONG, f: impl FnOnce(T) -> Param) -> Result<Param> {
    let b = param_bytes(p as *const u8, len)?;
    if b.len() == std::mem::size_of::<T>() {
        return Ok(f(std::ptr::read_unaligned(b.as_ptr() as *const T)));
    }
    as_plain(b)
}

/// Application bytes of a parameter field; NULL only with length 0. A field no buffer can have
/// is `CKR_MECHANISM_PARAM_INVALID`; one the process has no memory for, `CKR_HOST_MEMORY`.
pub(super) unsafe fn param_bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    super::bytes(p, len).map_err(|e| match e.rv() {
        CKR_HOST_MEMORY => e,
        _ => err(CKR_MECHANISM_PARAM_INVALID),
    })
}

/// A copy of a parameter field ([`param_bytes`]), allocated fallibly.
pub(super) unsafe fn param_copy(p: *const u8, len: CK_ULONG) -> Result<Vec<u8>> {
    super::copy(param_bytes(p, len)?)
}

/// Copies a C parameter struct of exactly its size.
pub(super) unsafe fn read<T: Copy>(p: *const c_void, len: CK_ULONG) -> Result<T> {
    if p.is_null() || len as usize != std::mem::size_of::<T>() {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(std::ptr::read_unaligned(p as *const T))
}

/// `CK_SIGN_ADDITIONAL_CONTEXT` of ML-DSA and SLH-DSA; optional (no parameter: hedged, empty
/// context). A parameter of another size is `CKR_MECHANISM_PARAM_INVALID`.
unsafe fn sign_context(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    if len == 0 {
        return Ok(Param::None);
    }
    let s: CK_SIGN_ADDITIONAL_CONTEXT = read(p, len)?;
    context_len(s.ulContextLen)?;
    Ok(Param::SignContext { hedge: s.hedgeVariant, context: param_copy(s.pContext, s.ulContextLen)?, hash: None })
}

/// A context is at most 255 bytes (FIPS 204 §5.2, FIPS 205 §10.2): a longer length is refused
/// before the bytes behind it are read.
fn context_len(len: CK_ULONG) -> Result<()> {
    if len > 255 {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(())
}

/// `CK_HASH_SIGN_ADDITIONAL_CONTEXT` of the bare `CKM_HASH_ML_DSA` and `CKM_HASH_SLH_DSA`
/// (required: it names the hash of the input).
unsafe fn hash_sign_context(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    let s: CK_HASH_SIGN_ADDITIONAL_CONTEXT = read(p, len)?;
    context_len(s.ulContextLen)?;
    Ok(Param::SignContext {
        hedge: s.hedgeVariant,
        context: param_copy(s.pContext, s.ulContextLen)?,
        hash: Some(s.hash),
    })
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

unsafe fn gcm(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    let (iv, iv_len, aad, aad_len, tag_bits) = if len as usize == std::mem::size_of::<GcmParamsV240>() {
        let s: GcmParamsV240 = read(p, len)?;
        (s.p_iv, s.iv_len, s.p_aad, s.aad_len, s.tag_bits)
    } else {
        // ulIvBits is informational; the IV is ulIvLen bytes.
        let s: CK_GCM_PARAMS = read(p, len)?;
        (s.pIv, s.ulIvLen, s.pAAD, s.ulAADLen, s.ulTagBits)
    };
    Ok(Param::Gcm(GcmParams { iv: param_copy(iv, iv_len)?, aad: param_copy(aad, aad_len)?, tag_bits }))
}

unsafe fn hkdf(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    let s: CK_HKDF_PARAMS = read(p, len)?;
    let salt = if s.bExtract != 0 && s.ulSaltType == CKF_HKDF_SALT_DATA {
        param_copy(s.pSalt, s.ulSaltLen)?
    } else {
        Vec::new()
    };
    let info = if s.bExpand != 0 { param_copy(s.pInfo, s.ulInfoLen)? } else { Vec::new() };
    Ok(Param::Hkdf(HkdfParams {
        extract: s.bExtract != 0,
        expand: s.bExpand != 0,
        prf: s.prfHashMechanism,
        salt_type: s.ulSaltType,
        salt: Zeroizing::new(salt),
        salt_key: s.hSaltKey,
        info,
    }))
}

/// Below this, `ulPasswordLen` is a length (`CK_PKCS5_PBKD2_PARAMS2`); from it on, it may be a
/// pointer to one (`CK_PKCS5_PBKD2_PARAMS`, the older structure of the same size). No password is
/// 64 KiB long, and Linux maps nothing below 64 KiB by default (`vm.mmap_min_addr`).
const PASSWORD_LEN_LIMIT: CK_ULONG = 0x1_0000;

/// The password length of a PBKDF2 parameter: `ulPasswordLen` itself when it is a length, the
/// `CK_ULONG` it points at when it is a pointer. A value from [`PASSWORD_LEN_LIMIT`] on is taken
/// as a pointer only if it is an aligned address the process can read; otherwise it is a length of
/// 64 KiB or more, which no password has (`CKR_MECHANISM_PARAM_INVALID`). A length read through
/// the pointer must be short too.
unsafe fn password_len(field: CK_ULONG) -> Result<CK_ULONG> {
    if field < PASSWORD_LEN_LIMIT {
        return Ok(field);
    }
    let lp = field as usize as *const CK_ULONG;
    if !(lp as usize).is_multiple_of(std::mem::align_of::<CK_ULONG>()) || !super::possible(lp, 1) {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    let len = read_if_mapped(lp).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
    if len >= PASSWORD_LEN_LIMIT {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(len)
}

/// The `CK_ULONG` at `p` if the process can read it, `None` if not.
///
/// Written by hand because no crate asks this of an address: the kernel copies the value for us
/// and answers `EFAULT` for an address that is not readable, where dereferencing it would kill the
/// process. `process_vm_readv` on our own process does it in one call; where a sandbox refuses
/// that call, a write of the value into a pipe does the same check.
fn read_if_mapped(p: *const CK_ULONG) -> Option<CK_ULONG> {
    let mut v: CK_ULONG = 0;
    let size = std::mem::size_of::<CK_ULONG>();
    let local = libc::iovec { iov_base: &mut v as *mut CK_ULONG as *mut c_void, iov_len: size };
    let remote = libc::iovec { iov_base: p as *mut c_void, iov_len: size };
    // SAFETY: both iovecs describe one CK_ULONG; the kernel writes only `v`, and reads `p` on our
    // behalf, failing instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == size as isize {
        return Some(v);
    }
    if std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT) {
        return None;
    }
    let mut fds = [0; 2];
    // SAFETY: plain system calls on a pipe of our own; `write` reads `size` bytes at `p` in the
    // kernel (EFAULT if it cannot), `read` fills `v`.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return None;
        }
        let ok = libc::write(fds[1], p as *const c_void, size) == size as isize
            && libc::read(fds[0], &mut v as *mut CK_ULONG as *mut c_void, size) == size as isize;
        libc::close(fds[0]);
        libc::close(fds[1]);
        ok.then_some(v)
    }
}

unsafe fn pbkd2(p: *const c_void, len: CK_ULONG) -> Result<Param> {
    let s: CK_PKCS5_PBKD2_PARAMS2 = read(p, len)?;
    let password_len = password_len(s.ulPasswordLen)?;
    Ok(Param::Pbkdf2(Pbkdf2Params {
        salt_source: s.saltSource,
        salt: param_copy(s.pSaltSourceData as *const u8, s.ulSaltSourceDataLen)?,
        iterations: s.iterations,
        prf: s.prf,
        prf_data: param_copy(s.pPrfData as *const u8, s.ulPrfDataLen)?,
        password: Zeroizing::new(param_copy(s.pPassword, password_len)?),
    }))
}

/// A parameter structure as an application passes it: its address and size (unit tests of the
/// decoders here and in `params_rsa.rs`, `params_ec.rs`).
#[cfg(test)]
pub(super) fn as_param<T>(s: &T) -> (*const c_void, CK_ULONG) {
    (s as *const T as *const c_void, std::mem::size_of::<T>() as CK_ULONG)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid() -> Result<Param> {
        Err(err(CKR_MECHANISM_PARAM_INVALID))
    }

    #[test]
    fn plain_parameters_are_none_or_bytes() {
        let iv = [7u8; 16];
        let p = iv.as_ptr() as *const c_void;
        for m in [CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_DES3_CBC, CKM_AES_KEY_WRAP] {
            assert_eq!(unsafe { decode(m, p, 16) }, Ok(Param::Bytes(iv.to_vec())), "{m:#x}");
        }
        // No parameter, with or without a pointer.
        assert_eq!(unsafe { decode(CKM_AES_ECB, std::ptr::null(), 0) }, Ok(Param::None));
        assert_eq!(unsafe { decode(CKM_SHA256, p, 0) }, Ok(Param::None));
        // NULL only with length 0; a length no buffer can have.
        assert_eq!(unsafe { decode(CKM_AES_CBC, std::ptr::null(), 16) }, invalid());
        assert_eq!(unsafe { decode(CKM_AES_CBC, 16 as *const c_void, 16) }, invalid());
    }

    #[test]
    fn mac_lengths_and_ctr_parameters() {
        let n: CK_MAC_GENERAL_PARAMS = 12;
        let (p, size) = as_param(&n);
        for m in [CKM_SHA256_HMAC_GENERAL, CKM_SHA3_512_HMAC_GENERAL, CKM_AES_CMAC_GENERAL] {
            assert_eq!(unsafe { decode(m, p, size) }, Ok(Param::Ulong(12)), "{m:#x}");
        }
        // Another size stays bytes, for the mechanism to refuse; NULL with a length is refused now.
        assert_eq!(unsafe { decode(CKM_SHA256_HMAC_GENERAL, p, 4) }, Ok(Param::Bytes(12u32.to_ne_bytes().to_vec())));
        assert_eq!(unsafe { decode(CKM_SHA256_HMAC_GENERAL, std::ptr::null(), size) }, invalid());
        // The plain HMAC takes no CK_MAC_GENERAL_PARAMS: its bytes stay bytes.
        assert_eq!(unsafe { decode(CKM_SHA256_HMAC, p, size) }, Ok(Param::Bytes(12u64.to_ne_bytes().to_vec())));

        let mut cb = [0u8; 16];
        cb[15] = 1;
        let s = CK_AES_CTR_PARAMS { ulCounterBits: 32, cb };
        let (p, size) = as_param(&s);
        assert_eq!(unsafe { decode(CKM_AES_CTR, p, size) }, Ok(Param::Ctr { counter_bits: 32, block: cb }));
        assert!(matches!(unsafe { decode(CKM_AES_CTR, p, size - 1) }, Ok(Param::Bytes(b)) if b.len() == 23));
        assert_eq!(unsafe { decode(CKM_AES_CTR, std::ptr::null(), size) }, invalid());
    }

    #[test]
    fn gcm_parameters_in_both_layouts() {
        let (iv, aad) = ([1u8; 12], b"header".to_vec());
        let s = CK_GCM_PARAMS {
            pIv: iv.as_ptr() as *mut u8,
            ulIvLen: 12,
            ulIvBits: 0,
            pAAD: aad.as_ptr() as *mut u8,
            ulAADLen: aad.len() as CK_ULONG,
            ulTagBits: 96,
        };
        let want = Param::Gcm(GcmParams { iv: iv.to_vec(), aad: aad.clone(), tag_bits: 96 });
        let (p, size) = as_param(&s);
        assert_eq!(unsafe { decode(CKM_AES_GCM, p, size) }, Ok(want.clone()));
        // The 2.40 layout, without ulIvBits.
        let old =
            GcmParamsV240 { p_iv: s.pIv, iv_len: s.ulIvLen, p_aad: s.pAAD, aad_len: s.ulAADLen, tag_bits: s.ulTagBits };
        let (po, size_old) = as_param(&old);
        assert_eq!(unsafe { decode(CKM_AES_GCM, po, size_old) }, Ok(want));
        // Wrong sizes, no structure, NULL with a size.
        for len in [0, size_old - 1, size + 1] {
            assert_eq!(unsafe { decode(CKM_AES_GCM, p, len) }, invalid(), "{len}");
        }
        assert_eq!(unsafe { decode(CKM_AES_GCM, std::ptr::null(), size) }, invalid());
        // An inner NULL pointer with a length; without one it is empty.
        let no_aad = CK_GCM_PARAMS { pAAD: std::ptr::null_mut(), ..s };
        assert_eq!(unsafe { decode(CKM_AES_GCM, as_param(&no_aad).0, size) }, invalid());
        let empty = CK_GCM_PARAMS { pAAD: std::ptr::null_mut(), ulAADLen: 0, ..s };
        let got = unsafe { decode(CKM_AES_GCM, as_param(&empty).0, size) };
        assert_eq!(got, Ok(Param::Gcm(GcmParams { iv: iv.to_vec(), aad: vec![], tag_bits: 96 })));
        // A CK_GCM_MESSAGE_PARAMS (the same size): ivGenerator read as pAAD is no pointer.
        let tag = [0u8; 16];
        let message = CK_GCM_MESSAGE_PARAMS {
            pIv: iv.as_ptr() as *mut u8,
            ulIvLen: 12,
            ulIvFixedBits: 0,
            ivGenerator: CKG_GENERATE_COUNTER,
            pTag: tag.as_ptr() as *mut u8,
            ulTagBits: 128,
        };
        assert_eq!(unsafe { decode(CKM_AES_GCM, as_param(&message).0, size) }, invalid());
        // A length the process cannot hold is CKR_HOST_MEMORY, not an invalid parameter.
        let huge = CK_GCM_PARAMS { ulAADLen: 1 << 44, ..s };
        assert_eq!(unsafe { decode(CKM_AES_GCM, as_param(&huge).0, size) }, Err(err(CKR_HOST_MEMORY)));
    }

    #[test]
    fn hkdf_parameters() {
        let (salt, info) = (b"salt".to_vec(), b"info".to_vec());
        let s = CK_HKDF_PARAMS {
            bExtract: 1,
            bExpand: 1,
            prfHashMechanism: CKM_SHA256,
            ulSaltType: CKF_HKDF_SALT_DATA,
            pSalt: salt.as_ptr() as *mut u8,
            ulSaltLen: 4,
            hSaltKey: 0,
            pInfo: info.as_ptr() as *mut u8,
            ulInfoLen: 4,
        };
        let (p, size) = as_param(&s);
        let want = HkdfParams {
            extract: true,
            expand: true,
            prf: CKM_SHA256,
            salt_type: CKF_HKDF_SALT_DATA,
            salt: Zeroizing::new(salt.clone()),
            salt_key: 0,
            info: info.clone(),
        };
        assert_eq!(unsafe { decode(CKM_HKDF_DERIVE, p, size) }, Ok(Param::Hkdf(want.clone())));
        assert_eq!(unsafe { decode(CKM_HKDF_DATA, p, size) }, Ok(Param::Hkdf(want.clone())));
        // The salt is read only for CKF_HKDF_SALT_DATA with extraction, the info only with
        // expansion: pointers of the other cases are not followed.
        let key = CK_HKDF_PARAMS {
            ulSaltType: CKF_HKDF_SALT_KEY,
            hSaltKey: 9,
            pSalt: 16 as *mut u8,
            bExpand: 0,
            pInfo: std::ptr::null_mut(),
            ..s
        };
        let got = unsafe { decode(CKM_HKDF_DERIVE, as_param(&key).0, size) };
        let want_key = HkdfParams {
            expand: false,
            salt_type: CKF_HKDF_SALT_KEY,
            salt_key: 9,
            salt: Zeroizing::new(vec![]),
            info: vec![],
            ..want
        };
        assert_eq!(got, Ok(Param::Hkdf(want_key)));
        // Malformed: inner NULL with a length, wrong size, no structure.
        let bad = CK_HKDF_PARAMS { pInfo: std::ptr::null_mut(), ..s };
        assert_eq!(unsafe { decode(CKM_HKDF_DERIVE, as_param(&bad).0, size) }, invalid());
        assert_eq!(unsafe { decode(CKM_HKDF_DERIVE, p, size - 8) }, invalid());
        assert_eq!(unsafe { decode(CKM_HKDF_DERIVE, std::ptr::null(), 0) }, invalid());
    }

    #[test]
    fn pbkdf2_parameters_in_both_structures() {
        let (salt, password) = ([5u8; 16], b"secret".to_vec());
        let s = CK_PKCS5_PBKD2_PARAMS2 {
            saltSource: CKZ_SALT_SPECIFIED,
            pSaltSourceData: salt.as_ptr() as *mut c_void,
            ulSaltSourceDataLen: 16,
            iterations: 1000,
            prf: CKP_PKCS5_PBKD2_HMAC_SHA256,
            pPrfData: std::ptr::null_mut(),
            ulPrfDataLen: 0,
            pPassword: password.as_ptr() as *mut u8,
            ulPasswordLen: 6,
        };
        let want = Param::Pbkdf2(Pbkdf2Params {
            salt_source: CKZ_SALT_SPECIFIED,
            salt: salt.to_vec(),
            iterations: 1000,
            prf: CKP_PKCS5_PBKD2_HMAC_SHA256,
            prf_data: vec![],
            password: Zeroizing::new(password.clone()),
        });
        let (p, size) = as_param(&s);
        assert_eq!(unsafe { decode(CKM_PKCS5_PBKD2, p, size) }, Ok(want.clone()));
        // The older structure: ulPasswordLen points at the length.
        let len: CK_ULONG = 6;
        let old = CK_PKCS5_PBKD2_PARAMS2 { ulPasswordLen: &len as *const CK_ULONG as CK_ULONG, ..s };
        assert_eq!(unsafe { decode(CKM_PKCS5_PBKD2, as_param(&old).0, size) }, Ok(want));
        let bad = CK_PKCS5_PBKD2_PARAMS2 { pPassword: std::ptr::null_mut(), ..s };
        assert_eq!(unsafe { decode(CKM_PKCS5_PBKD2, as_param(&bad).0, size) }, invalid());
        assert_eq!(unsafe { decode(CKM_PKCS5_PBKD2, p, size + 8) }, invalid());
        assert_eq!(unsafe { decode(CKM_PKCS5_PBKD2, std::ptr::null(), size) }, invalid());
    }

    #[test]
    fn password_length_read_through_a_pointer_only_when_it_is_one() {
        let len: CK_ULONG = 8;
        assert_eq!(unsafe { password_len(5) }, Ok(5));
        assert_eq!(unsafe { password_len(&len as *const CK_ULONG as CK_ULONG) }, Ok(8));
        // A length of 64 KiB or more that is no readable address.
        for v in [0x1_0000, 0x2_0003, 1 << 62] {
            assert_eq!(unsafe { password_len(v) }, Err(err(CKR_MECHANISM_PARAM_INVALID)), "{v:#x}");
        }
        // A readable address whose value is no password length.
        let long: CK_ULONG = 0x1_0000;
        assert_eq!(
            unsafe { password_len(&long as *const CK_ULONG as CK_ULONG) },
            Err(err(CKR_MECHANISM_PARAM_INVALID))
        );
        assert_eq!(read_if_mapped(&len), Some(8));
        assert_eq!(read_if_mapped(0x1_0000 as *const CK_ULONG), None);
    }
}
