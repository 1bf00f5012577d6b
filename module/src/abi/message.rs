//! Message-based encryption entry points (spec §5.11, PKCS#11 3.0): AES-GCM with
//! `CK_GCM_MESSAGE_PARAMS`. The per-message parameter carries output buffers (the generated IV,
//! the tag), which this layer fills after the core has worked.

use super::*;
use crate::mechanisms::Param;
use crate::services::message::GcmMessage;
use std::ffi::c_void;

/// The caller's IV and tag buffers of a `CK_GCM_MESSAGE_PARAMS`, written (through the pointer,
/// at the end of the call) with the IV the token made and the tag of an encrypted message.
#[doc(hidden)]
pub struct GcmBuffers {
    pub iv: (*mut u8, usize),
    pub tag: (*mut u8, usize),
}

impl GcmBuffers {
    /// The buffers as outputs for [`input`].
    fn outputs(&self) -> [(*const u8, usize); 2] {
        [(self.iv.0, self.iv.1), (self.tag.0, self.tag.1)]
    }
}

/// Writes `v` into one of the caller's parameter buffers; it must fit.
unsafe fn write_back(v: &[u8], (p, n): (*mut u8, usize)) -> Result<()> {
    deliver_bytes(v, p, n)
}

/// Reads `CK_GCM_MESSAGE_PARAMS`; returns the parameters, a copy of the tag buffer's contents
/// (the tag, for decryption) and the caller's IV and tag buffers. Nothing keeps a reference to
/// caller memory: the buffers may share bytes with each other or with the call's data.
#[doc(hidden)]
pub unsafe fn gcm_message(p: *mut c_void, len: CK_ULONG) -> Result<(GcmMessage, Vec<u8>, GcmBuffers)> {
    if p.is_null() || len as usize != std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    let m = std::ptr::read_unaligned(p as *const CK_GCM_MESSAGE_PARAMS);
    if m.pIv.is_null() || m.ulIvLen == 0 || m.pTag.is_null() || !m.ulTagBits.is_multiple_of(8) || m.ulTagBits > 128 {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    let iv = super::params::param_copy(m.pIv, m.ulIvLen)?;
    let tag = super::params::param_copy(m.pTag, m.ulTagBits / 8)?;
    let params = GcmMessage { iv, iv_fixed_bits: m.ulIvFixedBits, generator: m.ivGenerator, tag_bits: m.ulTagBits };
    let buffers = GcmBuffers { iv: (m.pIv, m.ulIvLen as usize), tag: (m.pTag, (m.ulTagBits / 8) as usize) };
    Ok((params, tag, buffers))
}

unsafe fn init(
    name: &'static str,
    encrypt: bool,
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(name, || {
        let m = module()?;
        m.session(h)?;
        let mech = mech.as_ref().ok_or(err(CKR_ARGUMENTS_BAD))?;
        // Each message brings its own parameters. At the start an application may pass none, or
        // (as some do) a CK_GCM_MESSAGE_PARAMS, which the messages' own parameters then govern.
        let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
        let param = if mech.ulParameterLen == size && !mech.pParameter.is_null() {
            Param::None
        } else {
            let b = bytes(mech.pParameter as *const u8, mech.ulParameterLen)
                .and_then(copy)
                .map_err(|_| err(CKR_MECHANISM_PARAM_INVALID))?;
            if b.is_empty() {
                Param::None
            } else {
                Param::Bytes(b)
            }
        };
        m.message_init(h, encrypt, mech.mechanism, &param, key)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageEncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    init("C_MessageEncryptInit", true, hSession, pMechanism, hKey)
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageDecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    init("C_MessageDecryptInit", false, hSession, pMechanism, hKey)
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessage(
    hSession: CK_SESSION_HANDLE,
    pParameter: *mut c_void,
    ulParameterLen: CK_ULONG,
    pAssociatedData: *mut CK_BYTE,
    ulAssociatedDataLen: CK_ULONG,
    pPlaintext: *mut CK_BYTE,
    ulPlaintextLen: CK_ULONG,
    pCiphertext: *mut CK_BYTE,
    pulCiphertextLen: *mut CK_ULONG,
) -> CK_RV {
    guard("C_EncryptMessage", || {
        let m = module()?;
        m.message_active(hSession, true)?;
        let (params, _, buffers) = gcm_message(pParameter, ulParameterLen)?;
        let cap = capacity(pCiphertext, pulCiphertextLen)?;
        let written = [outputs(pCiphertext, cap, pulCiphertextLen), buffers.outputs()].concat();
        let aad = input(pAssociatedData, ulAssociatedDataLen, &written)?;
        let plain = input(pPlaintext, ulPlaintextLen, &written)?;
        let (o, made) = m.encrypt_message(hSession, &params, &aad, &plain, cap)?;
        write_output(o, pCiphertext, pulCiphertextLen)?;
        if let Some(sealed) = made {
            write_back(&sealed.iv, buffers.iv)?;
            write_back(&sealed.tag, buffers.tag)?;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessage(
    hSession: CK_SESSION_HANDLE,
    pParameter: *mut c_void,
    ulParameterLen: CK_ULONG,
    pAssociatedData: *mut CK_BYTE,
    ulAssociatedDataLen: CK_ULONG,
    pCiphertext: *mut CK_BYTE,
    ulCiphertextLen: CK_ULONG,
    pPlaintext: *mut CK_BYTE,
    pulPlaintextLen: *mut CK_ULONG,
) -> CK_RV {
    guard("C_DecryptMessage", || {
        let m = module()?;
        m.message_active(hSession, false)?;
        let (params, tag, _) = gcm_message(pParameter, ulParameterLen)?;
        let cap = capacity(pPlaintext, pulPlaintextLen)?;
        let written = outputs(pPlaintext, cap, pulPlaintextLen);
        let aad = input(pAssociatedData, ulAssociatedDataLen, &written)?;
        let ct = input(pCiphertext, ulCiphertextLen, &written)?;
        let o = m.decrypt_message(hSession, &params, &tag, &aad, &ct, cap)?;
        write_output(o, pPlaintext, pulPlaintextLen)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageEncryptFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_MessageEncryptFinal", || module()?.message_final(hSession, true))
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageDecryptFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_MessageDecryptFinal", || module()?.message_final(hSession, false))
}

/// The flags a `C_*MessageNext` call may carry: `CKF_END_OF_MESSAGE` or nothing.
fn end_of_message(flags: CK_FLAGS) -> Result<bool> {
    match flags {
        0 => Ok(false),
        CKF_END_OF_MESSAGE => Ok(true),
        _ => Err(err(CKR_ARGUMENTS_BAD)),
    }
}

unsafe fn begin(
    name: &'static str,
    encrypt: bool,
    h: CK_SESSION_HANDLE,
    p: *mut c_void,
    len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
) -> CK_RV {
    guard(name, || {
        let m = module()?;
        m.message_active(h, encrypt)?;
        let (params, _, buffers) = gcm_message(p, len)?;
        let aad = input(aad, aad_len, &buffers.outputs())?;
        let iv = m.message_begin(h, encrypt, &params, &aad)?;
        if encrypt {
            // The IV the token made goes back into the caller's parameters.
            write_back(&iv, buffers.iv)?;
        }
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
unsafe fn next(
    name: &'static str,
    encrypt: bool,
    h: CK_SESSION_HANDLE,
    p: *mut c_void,
    len: CK_ULONG,
    input: *mut CK_BYTE,
    input_len: CK_ULONG,
    output: *mut CK_BYTE,
    output_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> CK_RV {
    guard(name, || {
        let m = module()?;
        m.message_active(h, encrypt)?;
        let end = end_of_message(flags)?;
        let (_, tag, buffers) = gcm_message(p, len)?;
        let cap = capacity(output, output_len)?;
        let written = [outputs(output, cap, output_len), buffers.outputs()].concat();
        let data = super::input(input, input_len, &written)?;
        let (o, made) = m.message_next(h, encrypt, &data, cap, end, &tag)?;
        write_output(o, output, output_len)?;
        if let Some(t) = made {
            // The tag of an encrypted message goes into the caller's parameters.
            write_back(&t, buffers.tag)?;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessageBegin(
    hSession: CK_SESSION_HANDLE,
    pParameter: *mut c_void,
    ulParameterLen: CK_ULONG,
    pAssociatedData: *mut CK_BYTE,
    ulAssociatedDataLen: CK_ULONG,
) -> CK_RV {
    begin("C_EncryptMessageBegin", true, hSession, pParameter, ulParameterLen, pAssociatedData, ulAssociatedDataLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessageBegin(
    hSession: CK_SESSION_HANDLE,
    pParameter: *mut c_void,
    ulParameterLen: CK_ULONG,
    pAssociatedData: *mut CK_BYTE,
    ulAssociatedDataLen: CK_ULONG,
) -> CK_RV {
    begin("C_DecryptMessageBegin", false, hSession, pParameter, ulParameterLen, pAssociatedData, ulAssociatedDataLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessageNext(
    hSession: CK_SESSION_HANDLE,
    pParameter: *mut c_void,
    ulParameterLen: CK_ULONG,
    pPlaintextPart: *mut CK_BYTE,
    ulPlaintextPartLen: CK_ULONG,
    pCiphertextPart: *mut CK_BYTE,
    pulCiphertextPartLen: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> CK_RV {
    next(
        "C_EncryptMessageNext",
        true,
        hSession,
        pParameter,
        ulParameterLen,
        pPlaintextPart,
        ulPlaintextPartLen,
        pCiphertextPart,
        pulCiphertextPartLen,
        flags,
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessageNext(
    hSession: CK_SESSION_HANDLE,
    pParameter: *mut c_void,
    ulParameterLen: CK_ULONG,
    pCiphertextPart: *mut CK_BYTE,
    ulCiphertextPartLen: CK_ULONG,
    pPlaintextPart: *mut CK_BYTE,
    pulPlaintextPartLen: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> CK_RV {
    next(
        "C_DecryptMessageNext",
        false,
        hSession,
        pParameter,
        ulParameterLen,
        pCiphertextPart,
        ulCiphertextPartLen,
        pPlaintextPart,
        pulPlaintextPartLen,
        flags,
    )
}
