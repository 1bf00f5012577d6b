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

#[cfg(test)]
mod tests {
    use super::*;

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
