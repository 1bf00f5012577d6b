//! Encryption and decryption entry points (spec §5.10, §5.11).

use super::*;
use crate::operation::Op;

fn kind(encrypt: bool) -> Op {
    if encrypt {
        Op::Encrypt
    } else {
        Op::Decrypt
    }
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
        let s = m.session(h)?;
        if mech.is_null() {
            return m.cancel_operation(h, kind(encrypt));
        }
        let (mt, param) = mechanism(mech, kind(encrypt))?;
        m.operation_init(&s, kind(encrypt), mt, &param, key)
    })
}

/// Which call of an encryption or decryption.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `C_Encrypt`/`C_Decrypt`: the whole input.
    Whole,
    /// `C_EncryptUpdate`/`C_DecryptUpdate`: a part.
    Part,
    /// `C_EncryptFinal`/`C_DecryptFinal`: no input.
    Last,
}

/// An encryption or decryption call: input in (none for the last), output under the two-call
/// convention.
#[allow(clippy::too_many_arguments)]
unsafe fn step(
    name: &'static str,
    encrypt: bool,
    step: Step,
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out_p: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(name, || {
        let m = module()?;
        let s = m.session(h)?;
        ending(&m, h, kind(encrypt), || {
            let cap = capacity(out_p, out_len)?;
            let out = match step {
                Step::Last => m.cipher_final(&s, encrypt, cap)?,
                Step::Part => m.cipher_update(&s, encrypt, &input(data, len, &outputs(out_p, cap, out_len))?, cap)?,
                Step::Whole => m.cipher(&s, encrypt, &input(data, len, &outputs(out_p, cap, out_len))?, cap)?,
            };
            write_output(out, out_p, out_len)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    init("C_EncryptInit", true, hSession, pMechanism, hKey)
}

#[no_mangle]
pub unsafe extern "C" fn C_Encrypt(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pEncryptedData: *mut CK_BYTE,
    pulEncryptedDataLen: *mut CK_ULONG,
) -> CK_RV {
    step("C_Encrypt", true, Step::Whole, hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
    pEncryptedPart: *mut CK_BYTE,
    pulEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    step("C_EncryptUpdate", true, Step::Part, hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastEncryptedPart: *mut CK_BYTE,
    pulLastEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    step(
        "C_EncryptFinal",
        true,
        Step::Last,
        hSession,
        std::ptr::null_mut(),
        0,
        pLastEncryptedPart,
        pulLastEncryptedPartLen,
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    init("C_DecryptInit", false, hSession, pMechanism, hKey)
}

#[no_mangle]
pub unsafe extern "C" fn C_Decrypt(
    hSession: CK_SESSION_HANDLE,
    pEncryptedData: *mut CK_BYTE,
    ulEncryptedDataLen: CK_ULONG,
    pData: *mut CK_BYTE,
    pulDataLen: *mut CK_ULONG,
) -> CK_RV {
    step("C_Decrypt", false, Step::Whole, hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: *mut CK_BYTE,
    ulEncryptedPartLen: CK_ULONG,
    pPart: *mut CK_BYTE,
    pulPartLen: *mut CK_ULONG,
) -> CK_RV {
    step("C_DecryptUpdate", false, Step::Part, hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastPart: *mut CK_BYTE,
    pulLastPartLen: *mut CK_ULONG,
) -> CK_RV {
    step("C_DecryptFinal", false, Step::Last, hSession, std::ptr::null_mut(), 0, pLastPart, pulLastPartLen)
}
