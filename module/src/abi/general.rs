//! General-purpose, slot and token management entry points (spec §5.4, §5.5).

use super::*;
use crate::services::general::{description, library_version, model, MANUFACTURER};
use std::ffi::c_void;

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(pInitArgs: *mut c_void) -> CK_RV {
    guard("C_Initialize", || {
        if let Some(args) = (pInitArgs as *const CK_C_INITIALIZE_ARGS).as_ref() {
            if !args.pReserved.is_null() {
                return Err(err(CKR_ARGUMENTS_BAD));
            }
            let given = [
                args.CreateMutex.is_some(),
                args.DestroyMutex.is_some(),
                args.LockMutex.is_some(),
                args.UnlockMutex.is_some(),
            ];
            if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
                return Err(err(CKR_ARGUMENTS_BAD));
            }
            // Tessera locks with the operating system's primitives. Callbacks offered together
            // with CKF_OS_LOCKING_OK leave the choice to the library; callbacks alone would
            // require using them, which Tessera does not do (spec §5.4, case 3).
            if given[0] && args.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(err(CKR_CANT_LOCK));
            }
        }
        install_fork_handler()?;
        crate::state::initialize(Some(&loaded_library()))
    })
}

/// The file this library was loaded from, for the integrity test: the kernel's record of the
/// mapping that holds this code (absolute, right after a `chdir` or a rename). Without `/proc`,
/// the loader's name for the library, if it is absolute (a relative one depends on the directory
/// the process was in when it loaded the library, which may have changed since).
fn loaded_library() -> crate::fips::integrity::Library {
    use crate::fips::integrity::Library;
    let addr = C_Initialize as *const c_void;
    let mapped = crate::fips::integrity::locate(addr as usize);
    if !matches!(&mapped, Library::Unknown(_)) || std::path::Path::new("/proc/self").exists() {
        return mapped;
    }
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return mapped;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = std::path::PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.to_bytes()));
    if path.is_absolute() {
        Library::File(path)
    } else {
        Library::Unknown(format!("{}: the library's path is relative and /proc is not mounted", path.display()))
    }
}

extern "C" fn after_fork_in_child() {
    crate::state::forked();
}

/// Registers the fork handler once per process. glibc removes handlers of a library that is
/// unloaded with `dlclose`, so the handler never outlives the code it points at.
fn install_fork_handler() -> Result<()> {
    static RESULT: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    let rc = *RESULT.get_or_init(|| unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) });
    if rc == 0 {
        Ok(())
    } else {
        Err(err(CKR_GENERAL_ERROR))
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(pReserved: *mut c_void) -> CK_RV {
    guard("C_Finalize", || {
        if !pReserved.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        crate::state::finalize()
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(pInfo: *mut CK_INFO) -> CK_RV {
    guard("C_GetInfo", || {
        let m = module_any()?;
        let info = out(pInfo)?;
        let (major, minor) = library_version();
        *info = CK_INFO {
            cryptokiVersion: CK_VERSION { major: 3, minor: 2 },
            manufacturerID: pad(MANUFACTURER),
            flags: 0,
            libraryDescription: pad(description(m.cfg.mode, m.post.recorded_value.is_some())),
            libraryVersion: CK_VERSION { major, minor },
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    _tokenPresent: CK_BBOOL,
    pSlotList: *mut CK_SLOT_ID,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetSlotList", || {
        let m = module_any()?;
        if pulCount.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let ids = m.slot_list()?;
        write_list(&ids, pSlotList, pulCount)
    })
}

fn versions() -> (CK_VERSION, CK_VERSION) {
    let (major, minor) = library_version();
    (CK_VERSION { major, minor }, CK_VERSION { major, minor })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) -> CK_RV {
    guard("C_GetSlotInfo", || {
        let m = module_any()?;
        let info = out(pInfo)?;
        let s = m.slot_info(slotID)?;
        let (hw, fw) = versions();
        *info = CK_SLOT_INFO {
            slotDescription: pad(&s.description),
            manufacturerID: pad(MANUFACTURER),
            flags: s.flags,
            hardwareVersion: hw,
            firmwareVersion: fw,
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) -> CK_RV {
    guard("C_GetTokenInfo", || {
        let m = module_any()?;
        let info = out(pInfo)?;
        let t = m.token_info(slotID)?;
        let (hw, fw) = versions();
        *info = CK_TOKEN_INFO {
            label: pad(&t.label),
            manufacturerID: pad(MANUFACTURER),
            model: pad(if t.test { crate::services::general::TEST_MODEL } else { model(m.cfg.mode) }),
            serialNumber: pad(&t.serial),
            flags: t.flags | if m.in_error() { CKF_ERROR_STATE } else { 0 },
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: t.sessions as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: t.rw_sessions as CK_ULONG,
            ulMaxPinLen: crate::token::MAX_PIN as CK_ULONG,
            ulMinPinLen: m.cfg.pin_min_length() as CK_ULONG,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: hw,
            firmwareVersion: fw,
            utcTime: [b' '; 16],
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slotID: CK_SLOT_ID,
    pMechanismList: *mut CK_MECHANISM_TYPE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetMechanismList", || {
        let m = module()?;
        if pulCount.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let list = m.mechanism_list(slotID)?;
        write_list(&list, pMechanismList, pulCount)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slotID: CK_SLOT_ID,
    type_: CK_MECHANISM_TYPE,
    pInfo: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard("C_GetMechanismInfo", || {
        let m = module()?;
        let info = out(pInfo)?;
        let i = m.mechanism_info(slotID, type_)?;
        *info = CK_MECHANISM_INFO { ulMinKeySize: i.min_key, ulMaxKeySize: i.max_key, flags: i.flags };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    slotID: CK_SLOT_ID,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
    pLabel: *mut CK_UTF8CHAR,
) -> CK_RV {
    guard("C_InitToken", || {
        let m = module()?;
        let pin = bytes(pPin, ulPinLen)?;
        if pPin.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let label = label(pLabel)?;
        m.init_token(slotID, pin, &label)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(hSession: CK_SESSION_HANDLE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG) -> CK_RV {
    guard("C_InitPIN", || {
        let m = module()?;
        m.session(hSession)?;
        if pPin.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        m.init_pin(hSession, bytes(pPin, ulPinLen)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    hSession: CK_SESSION_HANDLE,
    pOldPin: *mut CK_UTF8CHAR,
    ulOldLen: CK_ULONG,
    pNewPin: *mut CK_UTF8CHAR,
    ulNewLen: CK_ULONG,
) -> CK_RV {
    guard("C_SetPIN", || {
        let m = module()?;
        m.session(hSession)?;
        if pOldPin.is_null() || pNewPin.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        m.set_pin(hSession, bytes(pOldPin, ulOldLen)?, bytes(pNewPin, ulNewLen)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(flags: CK_FLAGS, pSlot: *mut CK_SLOT_ID, _pReserved: *mut c_void) -> CK_RV {
    guard("C_WaitForSlotEvent", || {
        module_any()?;
        out(pSlot)?;
        if flags & CKF_DONT_BLOCK != 0 {
            // Tokens appear only through C_InitToken in some process; no slot event is ever pending.
            Err(err(CKR_NO_EVENT))
        } else {
            Err(err(CKR_FUNCTION_NOT_SUPPORTED))
        }
    })
}
