//! `C_GetFunctionList`, `C_GetInterfaceList` and `C_GetInterface`: the module offers the interface
//! "PKCS 11" in versions 3.2 (the default), 3.0 and 2.40, and after them its vendor interface
//! "Vendor Tessera" 1.3 (`vendor.rs`), which only a request naming it gets. All three functions
//! work before `C_Initialize`.

use super::interface_tables::{FUNCTION_LIST, FUNCTION_LIST_3_0, FUNCTION_LIST_3_2};
use super::vendor::{CK_TESSERA_FUNCTION_LIST, VENDOR_FUNCTION_LIST, VENDOR_INTERFACE_NAME, VENDOR_INTERFACE_VERSION};
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
    name: &'static CStr,
    version: CK_VERSION,
}

// SAFETY: the module itself never writes the interfaces; a caller that writes its own function
// pointer there does so through the pointer it was given, as with any module's static interface.
unsafe impl Sync for Interface {}

const NAME: &CStr = c"PKCS 11";

const fn interface(name: &'static CStr, list: *const c_void, version: CK_VERSION) -> Interface {
    Interface {
        iface: UnsafeCell::new(CK_INTERFACE {
            pInterfaceName: name.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: list as *mut c_void,
            flags: 0,
        }),
        name,
        version,
    }
}

const fn pkcs11(list: *const c_void, major: u8, minor: u8) -> Interface {
    interface(NAME, list, CK_VERSION { major, minor })
}

/// In `C_GetInterfaceList` order: the default first, the vendor interface last.
static INTERFACES: [Interface; 4] = [
    pkcs11(&FUNCTION_LIST_3_2 as *const CK_FUNCTION_LIST_3_2 as *const c_void, 3, 2),
    pkcs11(&FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *const c_void, 3, 0),
    pkcs11(&FUNCTION_LIST as *const CK_FUNCTION_LIST as *const c_void, 2, 40),
    interface(
        VENDOR_INTERFACE_NAME,
        &VENDOR_FUNCTION_LIST as *const CK_TESSERA_FUNCTION_LIST as *const c_void,
        VENDOR_INTERFACE_VERSION,
    ),
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
        // No name asks for "PKCS 11" (its default version unless one is given): a caller gets the
        // vendor interface only by naming it.
        let name = if pInterfaceName.is_null() { NAME } else { CStr::from_ptr(pInterfaceName as *const _) };
        let want = pVersion.as_ref();
        let found = INTERFACES.iter().filter(|i| i.name == name).find(|i| {
            let v = i.version;
            // The vendor list only grows at its end: 1.3 serves a caller that asks for 1.0 to 1.2.
            let vendor = i.name == VENDOR_INTERFACE_NAME;
            let version_ok =
                want.is_none_or(|w| w.major == v.major && (w.minor == v.minor || (vendor && w.minor < v.minor)));
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
