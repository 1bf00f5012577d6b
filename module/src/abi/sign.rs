//! Signing, MACing and verification entry points (spec §5.13, §5.14), and the verification with
//! the signature first of PKCS #11 3.2 (`C_VerifySignature*`, §5.15).

use super::*;
use crate::operation::Op;

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_SignInit", || {
        let m = module()?;
        let s = m.session(hSession)?;
        if pMechanism.is_null() {
            return m.cancel_operation(hSession, Op::Sign);
        }
        let (mt, param) = mechanism(pMechanism, Op::Sign)?;
        m.operation_init(&s, Op::Sign, mt, &param, hKey)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    guard("C_Sign", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Sign, || {
            let cap = capacity(pSignature, pulSignatureLen)?;
            let d = input(pData, ulDataLen, &outputs(pSignature, cap, pulSignatureLen))?;
            write_output(m.sign(&s, &d, cap)?, pSignature, pulSignatureLen)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) -> CK_RV {
    guard("C_SignUpdate", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Sign, || m.sign_update(&s, bytes(pPart, ulPartLen)?))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    guard("C_SignFinal", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Sign, || {
            let cap = capacity(pSignature, pulSignatureLen)?;
            write_output(m.sign_final(&s, cap)?, pSignature, pulSignatureLen)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_VerifyInit", || {
        let m = module()?;
        let s = m.session(hSession)?;
        if pMechanism.is_null() {
            return m.cancel_operation(hSession, Op::Verify);
        }
        let (mt, param) = mechanism(pMechanism, Op::Verify)?;
        m.operation_init(&s, Op::Verify, mt, &param, hKey)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    guard("C_Verify", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Verify, || m.verify(&s, bytes(pData, ulDataLen)?, bytes(pSignature, ulSignatureLen)?))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard("C_VerifyUpdate", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Verify, || m.verify_update(&s, bytes(pPart, ulPartLen)?))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    guard("C_VerifyFinal", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Verify, || m.verify_final(&s, bytes(pSignature, ulSignatureLen)?))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifySignatureInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    guard("C_VerifySignatureInit", || {
        let m = module()?;
        let s = m.session(hSession)?;
        if pMechanism.is_null() {
            return m.cancel_operation(hSession, Op::Verify);
        }
        let (mt, param) = mechanism(pMechanism, Op::Verify)?;
        m.verify_signature_init(&s, mt, &param, hKey, bytes(pSignature, ulSignatureLen)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifySignature(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
) -> CK_RV {
    guard("C_VerifySignature", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Verify, || m.verify_signature(&s, bytes(pData, ulDataLen)?))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifySignatureUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard("C_VerifySignatureUpdate", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Verify, || m.verify_signature_update(&s, bytes(pPart, ulPartLen)?))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifySignatureFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_VerifySignatureFinal", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Verify, || m.verify_signature_final(&s))
    })
}
