//! Session management and login entry points (spec §5.6, §5.7).

use super::*;
use std::ffi::c_void;

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slotID: CK_SLOT_ID,
    flags: CK_FLAGS,
    _pApplication: *mut c_void,
    _Notify: CK_NOTIFY,
    phSession: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard("C_OpenSession", || {
        let m = module()?;
        let dest = out(phSession)?;
        *dest = m.open_session(slotID, flags)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_CloseSession", || module_any()?.close_session(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slotID: CK_SLOT_ID) -> CK_RV {
    guard("C_CloseAllSessions", || module_any()?.close_all_sessions(slotID))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(hSession: CK_SESSION_HANDLE, pInfo: *mut CK_SESSION_INFO) -> CK_RV {
    guard("C_GetSessionInfo", || {
        let m = module_any()?;
        let i = m.session_info(hSession)?;
        *out(pInfo)? = CK_SESSION_INFO { slotID: i.slot, state: i.state, flags: i.flags, ulDeviceError: 0 };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    guard("C_Login", || {
        let m = module()?;
        m.session(hSession)?;
        // No protected authentication path: the PIN must come through the call.
        if pPin.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        m.login(hSession, userType, bytes(pPin, ulPinLen)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_LoginUser(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
    pUsername: *mut CK_UTF8CHAR,
    ulUsernameLen: CK_ULONG,
) -> CK_RV {
    guard("C_LoginUser", || {
        let m = module()?;
        m.session(hSession)?;
        if pPin.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        // Tessera tokens have one user per role; a user name is not part of its authentication.
        bytes(pUsername, ulUsernameLen)?;
        m.login(hSession, userType, bytes(pPin, ulPinLen)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_Logout", || module_any()?.logout(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    guard("C_SessionCancel", || module()?.session_cancel(hSession, flags))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionValidationFlags(
    hSession: CK_SESSION_HANDLE,
    type_: CK_SESSION_VALIDATION_FLAGS_TYPE,
    pFlags: *mut CK_FLAGS,
) -> CK_RV {
    guard("C_GetSessionValidationFlags", || {
        let m = module()?;
        m.session(hSession)?;
        let dest = out(pFlags)?;
        *dest = m.session_validation_flags(hSession, type_)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_GetFunctionStatus", || {
        module()?.session(hSession)?;
        // Legacy function: no function runs in parallel with the application.
        Err(err(CKR_FUNCTION_NOT_PARALLEL))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CancelFunction(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_CancelFunction", || {
        module()?.session(hSession)?;
        Err(err(CKR_FUNCTION_NOT_PARALLEL))
    })
}
