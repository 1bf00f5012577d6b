//! Key management entry points (spec §5.16).

use super::*;
use crate::operation::Op;

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_GenerateKey", || {
        let m = module()?;
        m.session(hSession)?;
        let dest = out_ptr(phKey)?;
        let t = read_template(pTemplate, ulCount)?;
        let (mt, param) = mechanism_of(&m, pMechanism, Op::Generate)?;
        deliver_handle(dest, m.generate_key(hSession, mt, &param, &t)?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pPublicKeyTemplate: *mut CK_ATTRIBUTE,
    ulPublicKeyAttributeCount: CK_ULONG,
    pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
    ulPrivateKeyAttributeCount: CK_ULONG,
    phPublicKey: *mut CK_OBJECT_HANDLE,
    phPrivateKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_GenerateKeyPair", || {
        let m = module()?;
        m.session(hSession)?;
        // Written at the end, in this order: the two may even be one location.
        let (pubh, privh) = (out_ptr(phPublicKey)?, out_ptr(phPrivateKey)?);
        let pt = read_template(pPublicKeyTemplate, ulPublicKeyAttributeCount)?;
        let vt = read_template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)?;
        let (mt, param) = mechanism_of(&m, pMechanism, Op::GeneratePair)?;
        let (a, b) = m.generate_key_pair(hSession, mt, &param, &pt, &vt)?;
        deliver_handle(pubh, a);
        deliver_handle(privh, b);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hWrappingKey: CK_OBJECT_HANDLE,
    hKey: CK_OBJECT_HANDLE,
    pWrappedKey: *mut CK_BYTE,
    pulWrappedKeyLen: *mut CK_ULONG,
) -> CK_RV {
    guard("C_WrapKey", || {
        let m = module()?;
        m.session(hSession)?;
        let cap = capacity(pWrappedKey, pulWrappedKeyLen)?;
        let (mt, param) = mechanism_of(&m, pMechanism, Op::Wrap)?;
        let wrapped = m.wrap_key(hSession, mt, &param, hWrappingKey, hKey)?;
        write_output(crate::services::deliver(&mut Some(wrapped), cap), pWrappedKey, pulWrappedKeyLen)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hUnwrappingKey: CK_OBJECT_HANDLE,
    pWrappedKey: *mut CK_BYTE,
    ulWrappedKeyLen: CK_ULONG,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_UnwrapKey", || {
        let m = module()?;
        m.session(hSession)?;
        let dest = out_ptr(phKey)?;
        let wrapped =
            input(pWrappedKey, ulWrappedKeyLen, &[(dest as *const u8, std::mem::size_of::<CK_OBJECT_HANDLE>())])?;
        let t = read_template(pTemplate, ulAttributeCount)?;
        let (mt, param) = mechanism_of(&m, pMechanism, Op::Unwrap)?;
        let key = m.unwrap_key(hSession, mt, &param, hUnwrappingKey, &wrapped, &t)?;
        deliver_handle(dest, key);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hBaseKey: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_DeriveKey", || {
        let m = module()?;
        m.session(hSession)?;
        let dest = out_ptr(phKey)?;
        let t = read_template(pTemplate, ulAttributeCount)?;
        let (mt, param) = mechanism_of(&m, pMechanism, Op::Derive)?;
        deliver_handle(dest, m.derive_key(hSession, mt, &param, hBaseKey, &t)?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncapsulateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hPublicKey: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    pCiphertext: *mut CK_BYTE,
    pulCiphertextLen: *mut CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_EncapsulateKey", || {
        let m = module()?;
        m.session(hSession)?;
        // A NULL buffer asks for the ciphertext's length only: no key is made then, so no handle
        // is written either.
        let cap = capacity(pCiphertext, pulCiphertextLen)?;
        let dest = if cap.is_some() { Some(out_ptr(phKey)?) } else { None };
        // The template shapes only the key the call makes: a length query (which makes none)
        // leaves it to the call that does, which reads and checks it in full.
        let t = if cap.is_some() { read_template(pTemplate, ulAttributeCount)? } else { Vec::new() };
        let (mt, param) = mechanism_of(&m, pMechanism, Op::Encapsulate)?;
        match m.encapsulate_key(hSession, mt, &param, hPublicKey, &t, cap)? {
            crate::services::keys::Encapsulation::Length(o) => write_output(o, pCiphertext, pulCiphertextLen),
            crate::services::keys::Encapsulation::Made { ciphertext, key } => {
                // A ciphertext is public (it travels to the peer in the clear): not wiped.
                write_public_output(ciphertext, pCiphertext, pulCiphertextLen)?;
                match dest {
                    Some(dest) => deliver_handle(dest, key),
                    None => crate::record::created(key),
                }
                Ok(())
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecapsulateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hPrivateKey: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    pCiphertext: *mut CK_BYTE,
    ulCiphertextLen: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_DecapsulateKey", || {
        let m = module()?;
        m.session(hSession)?;
        let dest = out_ptr(phKey)?;
        let ciphertext =
            input(pCiphertext, ulCiphertextLen, &[(dest as *const u8, std::mem::size_of::<CK_OBJECT_HANDLE>())])?;
        let t = read_template(pTemplate, ulAttributeCount)?;
        let (mt, param) = mechanism_of(&m, pMechanism, Op::Decapsulate)?;
        deliver_handle(dest, m.decapsulate_key(hSession, mt, &param, hPrivateKey, &t, &ciphertext)?);
        Ok(())
    })
}
