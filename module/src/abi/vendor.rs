//! Tessera's vendor interface: what PKCS#11 has no function for, offered through `C_GetInterface`
//! under the name "Vendor Tessera", version 1.3 (`interface.rs` lists it after the three "PKCS 11"
//! interfaces). Its function list, as C declares it (docs/vendor-interface.md):
//!
//! ```c
//! typedef struct CK_TESSERA_FUNCTION_LIST {
//!     CK_VERSION version;                                    /* 1.3 */
//!     CK_RV (*T_GetStatus)(CK_UTF8CHAR_PTR pStatus, CK_ULONG_PTR pulStatusLen);
//!     CK_RV (*T_SelfTest)(void);
//!     CK_RV (*T_DeleteToken)(CK_SLOT_ID slotID);
//!     /* 1.1 */
//!     CK_RV (*T_InitTestToken)(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
//!                              CK_UTF8CHAR_PTR pLabel);
//!     /* 1.2 */
//!     CK_RV (*T_BackupToken_1_2)(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPath, CK_ULONG ulPathLen,
//!                                CK_UTF8CHAR_PTR pReport, CK_ULONG_PTR pulReportLen); /* retired */
//!     CK_RV (*T_RestoreToken)(CK_UTF8CHAR_PTR pPath, CK_ULONG ulPathLen, CK_UTF8CHAR_PTR pSoPin,
//!                             CK_ULONG ulSoPinLen, CK_UTF8CHAR_PTR pLabel, CK_FLAGS flags,
//!                             CK_UTF8CHAR_PTR pReport, CK_ULONG_PTR pulReportLen);
//!     /* 1.3 */
//!     CK_RV (*T_BackupToken)(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pSoPin, CK_ULONG ulSoPinLen,
//!                            CK_UTF8CHAR_PTR pPath, CK_ULONG ulPathLen,
//!                            CK_UTF8CHAR_PTR pReport, CK_ULONG_PTR pulReportLen);
//! } CK_TESSERA_FUNCTION_LIST;
//! ```
//!
//! 1.2's backup function took no PIN; its slot stays where it was (the list only grows at its
//! end, so a caller built for 1.2 still finds its functions where it expects them) and answers
//! `CKR_FUNCTION_NOT_SUPPORTED`, its report saying why: a backup is now authenticated with a key
//! derived from the SO PIN, which 1.3's `T_BackupToken` takes.
//!
//! ```text
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
    pub T_BackupToken_1_2: Option<
        unsafe extern "C" fn(
            slotID: CK_SLOT_ID,
            pPath: *mut CK_UTF8CHAR,
            ulPathLen: CK_ULONG,
            pReport: *mut CK_UTF8CHAR,
            pulReportLen: *mut CK_ULONG,
        ) -> CK_RV,
    >,
    #[allow(clippy::type_complexity)]
    pub T_RestoreToken: Option<
        unsafe extern "C" fn(
            pPath: *mut CK_UTF8CHAR,
            ulPathLen: CK_ULONG,
            pSoPin: *mut CK_UTF8CHAR,
            ulSoPinLen: CK_ULONG,
            pLabel: *mut CK_UTF8CHAR,
            flags: CK_FLAGS,
            pReport: *mut CK_UTF8CHAR,
            pulReportLen: *mut CK_ULONG,
        ) -> CK_RV,
    >,
    pub T_BackupToken: Option<
        unsafe extern "C" fn(
            slotID: CK_SLOT_ID,
            pSoPin: *mut CK_UTF8CHAR,
            ulSoPinLen: CK_ULONG,
            pPath: *mut CK_UTF8CHAR,
            ulPathLen: CK_ULONG,
            pReport: *mut CK_UTF8CHAR,
            pulReportLen: *mut CK_ULONG,
        ) -> CK_RV,
    >,
}

/// `T_RestoreToken`'s flag: replace the token of the same label (or of the backup's unique ID),
/// keeping it as a backup file first.
pub const T_RESTORE_REPLACE: CK_FLAGS = 1;

/// The name `C_GetInterface` knows the vendor interface by.
pub const VENDOR_INTERFACE_NAME: &std::ffi::CStr = c"Vendor Tessera";

/// The vendor interface's version.
pub const VENDOR_INTERFACE_VERSION: CK_VERSION = CK_VERSION { major: 1, minor: 3 };

pub static VENDOR_FUNCTION_LIST: CK_TESSERA_FUNCTION_LIST = CK_TESSERA_FUNCTION_LIST {
    version: VENDOR_INTERFACE_VERSION,
    T_GetStatus: Some(T_GetStatus),
    T_SelfTest: Some(T_SelfTest),
    T_DeleteToken: Some(T_DeleteToken),
    T_InitTestToken: Some(T_InitTestToken),
    T_BackupToken_1_2: Some(T_BackupToken_1_2),
    T_RestoreToken: Some(T_RestoreToken),
    T_BackupToken: Some(T_BackupToken),
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

/// The room of the caller's report buffer, checked before the work is done (a bad pointer must
/// not fail a backup or restore that has happened): `None` when `pReport` is NULL, which takes no
/// report (`pulReportLen` may then be NULL too).
unsafe fn report_room(pReport: *mut CK_UTF8CHAR, pulReportLen: *mut CK_ULONG) -> Result<Option<usize>> {
    if pReport.is_null() {
        return Ok(None);
    }
    capacity(pReport, pulReportLen)
}

/// Writes a report (JSON text) into the caller's buffer of `room` bytes ([`report_room`]): as
/// much as fits, `*pulReportLen` set to the bytes written. Backups and restores are not repeated
/// to learn a length, so the caller gives room enough (the tool gives 64 KiB).
unsafe fn put_report(
    text: &str,
    room: Option<usize>,
    pReport: *mut CK_UTF8CHAR,
    pulReportLen: *mut CK_ULONG,
) -> Result<()> {
    let Some(cap) = room else { return Ok(()) };
    if text.len() <= cap {
        // A failure's reason reaches the caller whole, in the report.
        crate::record::reported();
    }
    let mut n = text.len().min(cap);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // Written now, not held until the call's record is kept as a call's output is (`guard`): the
    // report says why a call failed, and holds nothing secret.
    let l = out_ptr(pulReportLen)?;
    std::ptr::copy_nonoverlapping(text.as_ptr(), pReport, n);
    put(l, n as CK_ULONG);
    Ok(())
}

/// The report of a backup or restore that failed: its reason, as the diagnostic log has it.
fn failure_report(e: crate::error::Error) -> String {
    let reason = crate::record::cause_text(e.rv())
        .unwrap_or_else(|| tessera_audit::names::rv_name(e.rv()).unwrap_or("error").to_string());
    serde_json::json!({ "error": reason, "rv": e.rv() }).to_string()
}

/// `T_BackupToken_1_2`, 1.2's backup function, which took no PIN: retired, it answers
/// `CKR_FUNCTION_NOT_SUPPORTED` with a report saying why (see the declaration above).
pub unsafe extern "C" fn T_BackupToken_1_2(
    _slotID: CK_SLOT_ID,
    _pPath: *mut CK_UTF8CHAR,
    _ulPathLen: CK_ULONG,
    pReport: *mut CK_UTF8CHAR,
    pulReportLen: *mut CK_ULONG,
) -> CK_RV {
    guard("T_BackupToken", || {
        module()?;
        let room = report_room(pReport, pulReportLen)?;
        let e = crate::error::Error::because(
            CKR_FUNCTION_NOT_SUPPORTED,
            "a backup takes the SO PIN since version 1.3 of the vendor interface: call its T_BackupToken",
        );
        put_report(&failure_report(e), room, pReport, pulReportLen)?;
        Err(e)
    })
}

/// `T_BackupToken` (1.3): writes a consistent copy of the token in `slotID` to the file `pPath`
/// (UTF-8, not NUL-terminated) while other processes go on using the token, authenticated with
/// a key derived from the SO PIN `pSoPin`, which is checked as `C_Login(CKU_SO)` checks it
/// (`Module::backup_token`); the report says what the backup holds, or why it failed.
pub unsafe extern "C" fn T_BackupToken(
    slotID: CK_SLOT_ID,
    pSoPin: *mut CK_UTF8CHAR,
    ulSoPinLen: CK_ULONG,
    pPath: *mut CK_UTF8CHAR,
    ulPathLen: CK_ULONG,
    pReport: *mut CK_UTF8CHAR,
    pulReportLen: *mut CK_ULONG,
) -> CK_RV {
    guard("T_BackupToken", || {
        let m = module()?;
        if pSoPin.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let pin = bytes(pSoPin, ulSoPinLen)?;
        let path = path(pPath, ulPathLen)?;
        let room = report_room(pReport, pulReportLen)?;
        let r = m.backup_token(slotID, pin, &path);
        let text = match &r {
            Ok(t) => t.clone(),
            Err(e) => failure_report(*e),
        };
        put_report(&text, room, pReport, pulReportLen)?;
        r.map(|_| ())
    })
}

/// `T_RestoreToken` (1.2): puts the backup in the file `pPath` back as a token, authorised by the
/// backup's SO PIN (`Module::restore_token`). `pLabel` (32 bytes, blank-padded) renames it; NULL
/// keeps the backup's label. With [`T_RESTORE_REPLACE`] a token of that label (or the backup's
/// own token) is replaced, kept as a backup file first; without it, `CKR_ACTION_PROHIBITED`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn T_RestoreToken(
    pPath: *mut CK_UTF8CHAR,
    ulPathLen: CK_ULONG,
    pSoPin: *mut CK_UTF8CHAR,
    ulSoPinLen: CK_ULONG,
    pLabel: *mut CK_UTF8CHAR,
    flags: CK_FLAGS,
    pReport: *mut CK_UTF8CHAR,
    pulReportLen: *mut CK_ULONG,
) -> CK_RV {
    guard("T_RestoreToken", || {
        let m = module()?;
        let path = path(pPath, ulPathLen)?;
        if pSoPin.is_null() || flags & !T_RESTORE_REPLACE != 0 {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let pin = bytes(pSoPin, ulSoPinLen)?;
        let new_label = if pLabel.is_null() { None } else { Some(label(pLabel)?) };
        let room = report_room(pReport, pulReportLen)?;
        let r = m.restore_token(&path, pin, new_label.as_deref(), flags & T_RESTORE_REPLACE != 0);
        let text = match &r {
            Ok(t) => t.clone(),
            Err(e) => failure_report(*e),
        };
        put_report(&text, room, pReport, pulReportLen)?;
        r.map(|_| ())
    })
}

/// A file path given as UTF-8 bytes.
unsafe fn path(p: *mut CK_UTF8CHAR, len: CK_ULONG) -> Result<std::path::PathBuf> {
    let b = bytes(p, len)?;
    if b.is_empty() || b.contains(&0) {
        return Err(err(CKR_ARGUMENTS_BAD));
    }
    let s = std::str::from_utf8(b).map_err(|_| err(CKR_ARGUMENTS_BAD))?;
    Ok(std::path::PathBuf::from(s))
}
