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
        m.session(h)?;
        if mech.is_null() {
            return m.cancel_operation(h, kind(encrypt));
        }
        let (mt, param) = mechanism(mech, if encrypt { Op::Encrypt } else { Op::Decrypt })?;
        m.cipher_init(h, encrypt, mt, &param, key)
    })
}

unsafe fn single(
    name: &'static str,
    encrypt: bool,
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out_p: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(name, || {
        let m = module()?;
        m.session(h)?;
        ending(&m, h, kind(encrypt), || {
            let cap = capacity(out_p, out_len)?;
            let d = input(data, len, &outputs(out_p, cap, out_len))?;
            // The caller's buffer, for mechanisms that write their result straight into it.
            let dest = cap.map(|c| std::slice::from_raw_parts_mut(out_p, c));
            write_output(m.cipher(h, encrypt, &d, cap, dest)?, out_p, out_len)
        })
    })
}

unsafe fn update(
    name: &'static str,
    encrypt: bool,
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out_p: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(name, || {
        let m = module()?;
        m.session(h)?;
        ending(&m, h, kind(encrypt), || {
            let cap = capacity(out_p, out_len)?;
            let d = input(data, len, &outputs(out_p, cap, out_len))?;
            write_output(m.cipher_update(h, encrypt, &d, cap)?, out_p, out_len)
        })
    })
}

unsafe fn last(
    name: &'static str,
    encrypt: bool,
    h: CK_SESSION_HANDLE,
    out_p: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(name, || {
        let m = module()?;
        m.session(h)?;
        ending(&m, h, kind(encrypt), || {
            let cap = capacity(out_p, out_len)?;
            write_output(m.cipher_final(h, encrypt, cap)?, out_p, out_len)
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
    single("C_Encrypt", true, hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
    pEncryptedPart: *mut CK_BYTE,
    pulEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    update("C_EncryptUpdate", true, hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastEncryptedPart: *mut CK_BYTE,
    pulLastEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    last("C_EncryptFinal", true, hSession, pLastEncryptedPart, pulLastEncryptedPartLen)
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
    single("C_Decrypt", false, hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: *mut CK_BYTE,
    ulEncryptedPartLen: CK_ULONG,
    pPart: *mut CK_BYTE,
    pulPartLen: *mut CK_ULONG,
) -> CK_RV {
    update("C_DecryptUpdate", false, hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen)
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastPart: *mut CK_BYTE,
    pulLastPartLen: *mut CK_ULONG,
) -> CK_RV {
    last("C_DecryptFinal", false, hSession, pLastPart, pulLastPartLen)
}
