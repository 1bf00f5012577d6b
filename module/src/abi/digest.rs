//! Message digesting and random number entry points (spec §5.12, §5.15).

use super::*;
use crate::operation::Op;

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM) -> CK_RV {
    guard("C_DigestInit", || {
        let m = module()?;
        let s = m.session(hSession)?;
        if pMechanism.is_null() {
            return m.cancel_operation(hSession, Op::Digest);
        }
        let (mech, param) = mechanism(pMechanism, Op::Digest)?;
        m.digest_init(&s, mech, &param)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    guard("C_Digest", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Digest, || {
            let cap = capacity(pDigest, pulDigestLen)?;
            let data = input(pData, ulDataLen, &outputs(pDigest, cap, pulDigestLen))?;
            let o = m.digest(&s, &data, cap)?;
            write_output(o, pDigest, pulDigestLen)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard("C_DigestUpdate", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Digest, || m.digest_update(&s, bytes(pPart, ulPartLen)?))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) -> CK_RV {
    guard("C_DigestKey", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Digest, || m.digest_key(&s, hKey))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    hSession: CK_SESSION_HANDLE,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    guard("C_DigestFinal", || {
        let m = module()?;
        let s = m.session(hSession)?;
        ending(&m, hSession, Op::Digest, || {
            let cap = capacity(pDigest, pulDigestLen)?;
            let o = m.digest_final(&s, cap)?;
            write_output(o, pDigest, pulDigestLen)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    hSession: CK_SESSION_HANDLE,
    RandomData: *mut CK_BYTE,
    ulRandomLen: CK_ULONG,
) -> CK_RV {
    guard("C_GenerateRandom", || {
        let m = module()?;
        let s = m.session(hSession)?;
        if ulRandomLen == 0 {
            return Ok(());
        }
        m.generate_random(&s, slice_mut(RandomData, ulRandomLen)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(hSession: CK_SESSION_HANDLE, pSeed: *mut CK_BYTE, ulSeedLen: CK_ULONG) -> CK_RV {
    guard("C_SeedRandom", || {
        let m = module()?;
        let s = m.session(hSession)?;
        if pSeed.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        bytes(pSeed, ulSeedLen)?;
        m.seed_random(&s)
    })
}
