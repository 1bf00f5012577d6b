//! `C_GetFunctionList`, `C_GetInterfaceList` and `C_GetInterface`: the module offers the interface
//! "PKCS 11" in versions 3.2 (the default), 3.0 and 2.40. All three work before `C_Initialize`.

use super::interface_tables::{FUNCTION_LIST, FUNCTION_LIST_3_0, FUNCTION_LIST_3_2};
use super::*;
use std::ffi::{c_void, CStr};

/// A `CK_INTERFACE` in static storage. Its pointers point at immutable statics.
#[repr(transparent)]
struct Interface(CK_INTERFACE);

// SAFETY: the pointers inside point at immutable `'static` data and are never written through.
unsafe impl Sync for Interface {}

const NAME: &CStr = c"PKCS 11";

static INTERFACES: [Interface; 3] = [
    Interface(CK_INTERFACE {
        pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_3_2 as *const CK_FUNCTION_LIST_3_2 as *mut c_void,
        flags: 0,
    }),
    Interface(CK_INTERFACE {
        pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
        flags: 0,
    }),
    Interface(CK_INTERFACE {
        pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut c_void,
        flags: 0,
    }),
];

fn version_of(i: &Interface) -> CK_VERSION {
    // SAFETY: every pFunctionList above starts with its CK_VERSION.
    unsafe { *(i.0.pFunctionList as *const CK_VERSION) }
}

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
        let list: Vec<CK_INTERFACE> = INTERFACES.iter().map(|i| i.0).collect();
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
            let v = version_of(i);
            let version_ok = want.is_none_or(|w| w.major == v.major && w.minor == v.minor);
            version_ok && i.0.flags & flags == flags
        });
        match found {
            Some(i) => {
                *dest = &i.0 as *const CK_INTERFACE as *mut CK_INTERFACE;
                Ok(())
            }
            None => Err(err(CKR_ARGUMENTS_BAD)),
        }
    })
}
