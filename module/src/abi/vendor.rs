//! Tessera's vendor interface: what PKCS#11 has no function for, offered through `C_GetInterface`
//! under the name "Vendor Tessera", version 1.0 (`interface.rs` lists it after the three "PKCS 11"
//! interfaces). Its function list, as C declares it (docs/vendor-interface.md):
//!
//! ```c
//! typedef struct CK_TESSERA_FUNCTION_LIST {
//!     CK_VERSION version;                                    /* 1.0 */
//!     CK_RV (*T_GetStatus)(CK_UTF8CHAR_PTR pStatus, CK_ULONG_PTR pulStatusLen);
//!     CK_RV (*T_SelfTest)(void);
//!     CK_RV (*T_DeleteToken)(CK_SLOT_ID slotID);
//!     /* 1.1 */
//!     CK_RV (*T_InitTestToken)(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
//!                              CK_UTF8CHAR_PTR pLabel);
//! } CK_TESSERA_FUNCTION_LIST;
//! ```
//!
//! The functions are reached through that list only: they are not exported symbols (`#[no_mangle]`
//! here would make them look like PKCS#11 functions to `module/tools/gen-abi-tables.py`). Like
//! every entry point they run inside [`guard`], answer `CKR_CRYPTOKI_NOT_INITIALIZED` before
//! `C_Initialize`, check their pointers here and call a safe service (`services/vendor.rs`).

use super::*;
use crate::services::{length_only, Output};

/// The vendor interface's function list (see the C declaration above).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CK_TESSERA_FUNCTION_LIST {
    pub version: CK_VERSION,
    pub T_GetStatus: Option<unsafe extern "C" fn(pStatus: *mut CK_UTF8CHAR, pulStatusLen: *mut CK_ULONG) -> CK_RV>,
    pub T_SelfTest: Option<unsafe extern "C" fn() -> CK_RV>,
    pub T_DeleteToken: Option<unsafe extern "C" fn(slotID: CK_SLOT_ID) -> CK_RV>,
    pub T_InitTestToken: Option<
        unsafe extern "C" fn(
            slotID: CK_SLOT_ID,
            pPin: *mut CK_UTF8CHAR,
            ulPinLen: CK_ULONG,
            pLabel: *mut CK_UTF8CHAR,
        ) -> CK_RV,
    >,
}

/// The name `C_GetInterface` knows the vendor interface by.
pub const VENDOR_INTERFACE_NAME: &std::ffi::CStr = c"Vendor Tessera";

/// The vendor interface's version.
pub const VENDOR_INTERFACE_VERSION: CK_VERSION = CK_VERSION { major: 1, minor: 1 };

pub static VENDOR_FUNCTION_LIST: CK_TESSERA_FUNCTION_LIST = CK_TESSERA_FUNCTION_LIST {
    version: VENDOR_INTERFACE_VERSION,
    T_GetStatus: Some(T_GetStatus),
    T_SelfTest: Some(T_SelfTest),
    T_DeleteToken: Some(T_DeleteToken),
    T_InitTestToken: Some(T_InitTestToken),
};

/// `T_GetStatus`: the module's status as UTF-8 JSON text (not NUL-terminated), under the
/// two-call length convention: a NULL `pStatus` asks for the length, a buffer too small gets
/// `CKR_BUFFER_TOO_SMALL` and the length. Answers in the error state too.
pub unsafe extern "C" fn T_GetStatus(pStatus: *mut CK_UTF8CHAR, pulStatusLen: *mut CK_ULONG) -> CK_RV {
    guard("T_GetStatus", || {
        let m = module_any()?;
        let cap = capacity(pStatus, pulStatusLen)?;
        let text = m.status().into_bytes();
        let o = length_only(text.len(), cap).unwrap_or(Output::Done(text));
        write_output(o, pStatus, pulStatusLen)
    })
}

/// `T_SelfTest`: the power-on self-tests again, now (`Module::self_test`). `CKR_OK` when they pass
/// and the module is operational, `CKR_GENERAL_ERROR` when the module is in the error state
/// afterwards (a failure now puts it there).
pub unsafe extern "C" fn T_SelfTest() -> CK_RV {
    guard("T_SelfTest", || module_any()?.self_test())
}

/// `T_DeleteToken`: removes the token in `slotID` and its store (`Module::delete_token`).
/// Allowed in the error state: it removes stored, encrypted data and runs no cryptography.
pub unsafe extern "C" fn T_DeleteToken(slotID: CK_SLOT_ID) -> CK_RV {
    guard("T_DeleteToken", || module_any()?.delete_token(slotID))
}

/// `T_InitTestToken` (1.1): `C_InitToken` on the free slot making a test token, whose PINs derive
/// with 1,000 PBKDF2 iterations (`Module::init_test_token`): for a pipeline's throwaway tokens.
/// `CKR_ACTION_PROHIBITED` in the approved mode and on a slot with a token.
pub unsafe extern "C" fn T_InitTestToken(
    slotID: CK_SLOT_ID,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
    pLabel: *mut CK_UTF8CHAR,
) -> CK_RV {
    guard("T_InitTestToken", || {
        let m = module()?;
        let pin = bytes(pPin, ulPinLen)?;
        if pPin.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let label = label(pLabel)?;
        m.init_test_token(slotID, pin, &label)
    })
}
