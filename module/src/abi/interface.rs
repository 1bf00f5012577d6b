//! `C_GetFunctionList`, `C_GetInterfaceList` and `C_GetInterface`: the module offers the interface
//! "PKCS 11" in versions 3.2 (the default), 3.0 and 2.40. All three work before `C_Initialize`.

use super::interface_tables::{FUNCTION_LIST, FUNCTION_LIST_3_0, FUNCTION_LIST_3_2};
use super::*;
use std::cell::UnsafeCell;
use std::ffi::{c_void, CStr};

/// A `CK_INTERFACE` in static, writable storage, with the version it offers. Writable because
/// wrappers between an application and the module (OpenSC's pkcs11-spy, for one) write their own
/// function list into the interface a `C_GetInterface` returned, as other modules allow: in
/// read-only memory that write crashed the process. The version is kept beside it, so a replaced
/// function list never changes which interface a version request finds.
#[repr(C)]
struct Interface {
    iface: UnsafeCell<CK_INTERFACE>,
    version: CK_VERSION,
}

// SAFETY: the module itself never writes the interfaces; a caller that writes its own function
// pointer there does so through the pointer it was given, as with any module's static interface.
unsafe impl Sync for Interface {}

const NAME: &CStr = c"PKCS 11";

const fn interface(list: *const c_void, major: u8, minor: u8) -> Interface {
    Interface {
        iface: UnsafeCell::new(CK_INTERFACE {
            pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: list as *mut c_void,
            flags: 0,
        }),
        version: CK_VERSION { major, minor },
    }
}

static INTERFACES: [Interface; 3] = [
    interface(&FUNCTION_LIST_3_2 as *const CK_FUNCTION_LIST_3_2 as *const c_void, 3, 2),
    interface(&FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *const c_void, 3, 0),
    interface(&FUNCTION_LIST as *const CK_FUNCTION_LIST as *const c_void, 2, 40),
];

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard("C_GetFunctionList", || {
        *out(ppFunctionList)? = &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(pInterfacesList: *mut CK_INTERFACE, pulCount: *mut CK_ULONG) -> CK_RV {
    guard("C_GetInterfaceList", || {
        // SAFETY: reads of the static interfaces (see `Interface`).
        let list: Vec<CK_INTERFACE> = INTERFACES.iter().map(|i| unsafe { *i.iface.get() }).collect();
        write_list(&list, pInterfacesList, pulCount)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    pInterfaceName: *mut CK_UTF8CHAR,
    pVersion: *mut CK_VERSION,
    ppInterface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    guard("C_GetInterface", || {
        let dest = out(ppInterface)?;
        if !pInterfaceName.is_null() && CStr::from_ptr(pInterfaceName as *const _) != NAME {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let want = pVersion.as_ref();
        let found = INTERFACES.iter().find(|i| {
            let v = i.version;
            let version_ok = want.is_none_or(|w| w.major == v.major && w.minor == v.minor);
            // SAFETY: a read of a static interface (see `Interface`).
            version_ok && unsafe { (*i.iface.get()).flags } & flags == flags
        });
        match found {
            Some(i) => {
                *dest = i.iface.get();
                Ok(())
            }
            None => Err(err(CKR_ARGUMENTS_BAD)),
        }
    })
}
