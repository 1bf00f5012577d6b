//! The C ABI as a conformance suite sees it: raw calls into the exported symbols and the function
//! lists, with NULL pointers, bad lengths, invalid handles and wrong states, and the exact `CK_RV`
//! the specification names for each.

use cryptoki_sys::*;
use std::ffi::c_void;
use std::ptr::{null, null_mut};
use tessera_tests::*;

/// Stands in for another library's function list (only its address is used).
static FUNCTION_LIST_2_40_MARKER: [u8; 8] = [0; 8];

#[test]
fn interfaces_are_offered_in_three_versions() {
    let r = RawLib::new();
    let mut n: CK_ULONG = 0;
    unsafe {
        assert_eq!(r.f.C_GetInterfaceList(null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_GetInterfaceList(null_mut(), &mut n), CKR_OK);
        // The three "PKCS 11" versions, then the vendor interface (tests/fips.rs tests it).
        assert_eq!(n, 4);
        let mut small = [CK_INTERFACE { pInterfaceName: null_mut(), pFunctionList: null_mut(), flags: 0 }; 4];
        let mut one: CK_ULONG = 1;
        assert_eq!(r.f.C_GetInterfaceList(small.as_mut_ptr(), &mut one), CKR_BUFFER_TOO_SMALL);
        assert_eq!(one, 4);
        assert_eq!(r.f.C_GetInterfaceList(small.as_mut_ptr(), &mut n), CKR_OK);
        let mut versions = Vec::new();
        for i in &small {
            let name = std::ffi::CStr::from_ptr(i.pInterfaceName as *const _).to_str().unwrap();
            let v = *(i.pFunctionList as *const CK_VERSION);
            versions.push((name, v.major, v.minor));
        }
        assert_eq!(versions, vec![("PKCS 11", 3, 2), ("PKCS 11", 3, 0), ("PKCS 11", 2, 40), ("Vendor Tessera", 1, 3)]);

        let mut iface: *mut CK_INTERFACE = null_mut();
        assert_eq!(r.f.C_GetInterface(null_mut(), null_mut(), &mut iface, 0), CKR_OK);
        let list = &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_2);
        assert_eq!((list.version.major, list.version.minor), (3, 2));
        assert!(list.C_UnwrapKeyAuthenticated.is_some() && list.C_EncapsulateKey.is_some());
        for (maj, min) in [(3u8, 0u8), (2, 40)] {
            let mut v = CK_VERSION { major: maj, minor: min };
            let mut name = *b"PKCS 11\0";
            assert_eq!(r.f.C_GetInterface(name.as_mut_ptr(), &mut v, &mut iface, 0), CKR_OK);
            let got = *((*iface).pFunctionList as *const CK_VERSION);
            assert_eq!((got.major, got.minor), (maj, min));
        }
        // A wrapper (OpenSC's pkcs11-spy) writes its own function list into the interface it was
        // given: the write must not fault, and the interface stays found by its version.
        let mut v30 = CK_VERSION { major: 3, minor: 0 };
        assert_eq!(r.f.C_GetInterface(null_mut(), &mut v30, &mut iface, 0), CKR_OK);
        let theirs = FUNCTION_LIST_2_40_MARKER.as_ptr() as *mut c_void;
        let ours = std::mem::replace(&mut (*iface).pFunctionList, theirs);
        let mut again: *mut CK_INTERFACE = null_mut();
        assert_eq!(r.f.C_GetInterface(null_mut(), &mut v30, &mut again, 0), CKR_OK);
        assert_eq!((again, (*again).pFunctionList), (iface, theirs));
        (*iface).pFunctionList = ours;
        let mut bad = *b"PKCS 12\0";
        assert_eq!(r.f.C_GetInterface(bad.as_mut_ptr(), null_mut(), &mut iface, 0), CKR_ARGUMENTS_BAD);
        let mut v9 = CK_VERSION { major: 9, minor: 9 };
        assert_eq!(r.f.C_GetInterface(null_mut(), &mut v9, &mut iface, 0), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_GetInterface(null_mut(), null_mut(), null_mut(), 0), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_GetInterface(null_mut(), null_mut(), &mut iface, CKF_INTERFACE_FORK_SAFE), CKR_ARGUMENTS_BAD);

        let mut fl: *mut CK_FUNCTION_LIST = null_mut();
        assert_eq!(r.f.C_GetFunctionList(null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_GetFunctionList(&mut fl), CKR_OK);
        assert_eq!(((*fl).version.major, (*fl).version.minor), (2, 40));
    }
}

/// Every function of the 3.2 list, called through the list with every argument zero (NULL
/// pointers, handle 0, slot 0). Each is called as a function of ten word-sized integer
/// arguments: on the x86-64 System V ABI the callee ignores the extra ones, and every PKCS#11
/// parameter is a pointer or an integer passed like one.
fn call_all_zero(list: &CK_FUNCTION_LIST_3_2, skip: &[&str]) -> Vec<(&'static str, CK_RV)> {
    type Any = unsafe extern "C" fn(usize, usize, usize, usize, usize, usize, usize, usize, usize, usize) -> CK_RV;
    let names = FUNCTION_NAMES;
    let base = list as *const CK_FUNCTION_LIST_3_2 as *const Option<Any>;
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if skip.contains(name) {
            continue;
        }
        // SAFETY: the list is a CK_VERSION (8 bytes with padding) followed by function pointers.
        let f = unsafe { *base.add(i + 1) }.unwrap_or_else(|| panic!("{name} missing from the list"));
        out.push((*name, unsafe { f(0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }));
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[test]
fn every_function_refuses_before_initialize_and_survives_null_arguments() {
    let r = RawLib::new();
    let mut iface: *mut CK_INTERFACE = null_mut();
    unsafe { assert_eq!(r.f.C_GetInterface(null_mut(), null_mut(), &mut iface, 0), CKR_OK) };
    let list = unsafe { &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_2) };
    assert_eq!(FUNCTION_NAMES.len(), std::mem::size_of::<CK_FUNCTION_LIST_3_2>() / 8 - 1);

    let always = ["C_Initialize", "C_GetFunctionList", "C_GetInterfaceList", "C_GetInterface"];
    for (name, rv) in call_all_zero(list, &always) {
        assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED, "{name} before C_Initialize");
    }
    r.init();
    r.token("abi");
    // After initialisation nothing may crash or succeed on NULL arguments and handle 0, except the
    // few calls for which all-zero arguments are valid.
    let ok_with_zeros = ["C_CloseAllSessions"];
    for (name, rv) in call_all_zero(list, &["C_Finalize", "C_Initialize"]) {
        if ok_with_zeros.contains(&name) {
            assert_eq!(rv, CKR_OK, "{name}");
        } else {
            assert_ne!(rv, CKR_OK, "{name} with NULL arguments");
            assert_ne!(rv, CKR_GENERAL_ERROR, "{name} with NULL arguments");
            assert_ne!(rv, CKR_CRYPTOKI_NOT_INITIALIZED, "{name} after C_Initialize");
        }
    }
}

/// Names of the CK_FUNCTION_LIST_3_2 members, in order.
const FUNCTION_NAMES: &[&str] = &[
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_WrapKey",
    "C_UnwrapKey",
    "C_DeriveKey",
    "C_SeedRandom",
    "C_GenerateRandom",
    "C_GetFunctionStatus",
    "C_CancelFunction",
    "C_WaitForSlotEvent",
    "C_GetInterfaceList",
    "C_GetInterface",
    "C_LoginUser",
    "C_SessionCancel",
    "C_MessageEncryptInit",
    "C_EncryptMessage",
    "C_EncryptMessageBegin",
    "C_EncryptMessageNext",
    "C_MessageEncryptFinal",
    "C_MessageDecryptInit",
    "C_DecryptMessage",
    "C_DecryptMessageBegin",
    "C_DecryptMessageNext",
    "C_MessageDecryptFinal",
    "C_MessageSignInit",
    "C_SignMessage",
    "C_SignMessageBegin",
    "C_SignMessageNext",
    "C_MessageSignFinal",
    "C_MessageVerifyInit",
    "C_VerifyMessage",
    "C_VerifyMessageBegin",
    "C_VerifyMessageNext",
    "C_MessageVerifyFinal",
    "C_EncapsulateKey",
    "C_DecapsulateKey",
    "C_VerifySignatureInit",
    "C_VerifySignature",
    "C_VerifySignatureUpdate",
    "C_VerifySignatureFinal",
    "C_GetSessionValidationFlags",
    "C_AsyncComplete",
    "C_AsyncGetID",
    "C_AsyncJoin",
    "C_WrapKeyAuthenticated",
    "C_UnwrapKeyAuthenticated",
];

#[test]
fn initialize_arguments_and_finalize() {
    let r = RawLib::new();
    unsafe {
        let mut args = CK_C_INITIALIZE_ARGS {
            flags: CKF_OS_LOCKING_OK,
            pReserved: std::ptr::dangling_mut::<c_void>(),
            ..Default::default()
        };
        assert_eq!(r.f.C_Initialize(&mut args as *mut _ as *mut c_void), CKR_ARGUMENTS_BAD);
        unsafe extern "C" fn create(_: *mut *mut c_void) -> CK_RV {
            CKR_OK
        }
        let mut partial = CK_C_INITIALIZE_ARGS { CreateMutex: Some(create), ..Default::default() };
        assert_eq!(r.f.C_Initialize(&mut partial as *mut _ as *mut c_void), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut ok = CK_C_INITIALIZE_ARGS { flags: CKF_OS_LOCKING_OK, ..Default::default() };
        assert_eq!(r.f.C_Initialize(&mut ok as *mut _ as *mut c_void), CKR_OK);
        assert_eq!(r.f.C_Initialize(null_mut()), CKR_CRYPTOKI_ALREADY_INITIALIZED);
        assert_eq!(r.f.C_Finalize(std::ptr::dangling_mut::<c_void>()), CKR_ARGUMENTS_BAD);
        let mut info = CK_INFO::default();
        assert_eq!(r.f.C_GetInfo(null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_GetInfo(&mut info), CKR_OK);
        assert_eq!((info.cryptokiVersion.major, info.cryptokiVersion.minor), (3, 2));
        assert!(info.manufacturerID.starts_with(b"Tessera"));
        assert_eq!(r.f.C_Finalize(null_mut()), CKR_OK);
        assert_eq!(r.f.C_GetInfo(&mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
        assert_eq!(r.f.C_Initialize(null_mut()), CKR_OK);
    }
}

#[test]
fn broken_or_missing_configuration_fails_initialize_cleanly() {
    let env = Env::new("");
    std::fs::write(&env.conf, "directories.tokendir = /tmp/x\nthis line is broken\n").unwrap();
    let r = RawLib::with(env);
    assert_eq!(unsafe { r.f.C_Initialize(null_mut()) }, CKR_GENERAL_ERROR);
    std::env::set_var("TESSERA_CONF", r.env.dir.path().join("missing.conf"));
    assert_eq!(unsafe { r.f.C_Initialize(null_mut()) }, CKR_GENERAL_ERROR);
    r.env.activate();
    std::fs::write(&r.env.conf, format!("directories.tokendir = {}\n", r.env.tokendir().display())).unwrap();
    assert_eq!(unsafe { r.f.C_Initialize(null_mut()) }, CKR_OK);
}

#[test]
fn slot_list_two_call_convention_and_free_slot() {
    let r = RawLib::new();
    r.init();
    unsafe {
        assert_eq!(r.f.C_GetSlotList(CK_FALSE, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(r.slots().len(), 1);
        let free = r.slots()[0];
        let ti = r.token_info(free);
        assert_eq!(ti.flags & CKF_TOKEN_INITIALIZED, 0);
        let mut si = CK_SLOT_INFO::default();
        assert_eq!(r.f.C_GetSlotInfo(free, &mut si), CKR_OK);
        assert_ne!(si.flags & CKF_TOKEN_PRESENT, 0);
        assert_eq!(r.f.C_GetSlotInfo(9999, &mut si), CKR_SLOT_ID_INVALID);
        assert_eq!(r.f.C_GetSlotInfo(free, null_mut()), CKR_ARGUMENTS_BAD);
        let mut h = 0;
        assert_eq!(r.f.C_OpenSession(free, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_TOKEN_NOT_RECOGNIZED);

        let slot = r.token("first");
        let slots = r.slots();
        assert_eq!(slots.len(), 2, "one token plus one free slot");
        let mut one: CK_ULONG = 1;
        let mut buf = [0 as CK_SLOT_ID; 1];
        assert_eq!(r.f.C_GetSlotList(CK_TRUE, buf.as_mut_ptr(), &mut one), CKR_BUFFER_TOO_SMALL);
        assert_eq!(one, 2);
        // The slot the token was initialised in keeps working in this process.
        let ti = r.token_info(slot);
        assert_ne!(ti.flags & CKF_TOKEN_INITIALIZED, 0);
        assert_ne!(ti.flags & CKF_USER_PIN_INITIALIZED, 0);
        assert_ne!(ti.flags & CKF_LOGIN_REQUIRED, 0);
        assert_ne!(ti.flags & CKF_RNG, 0);
        assert_eq!(&ti.label, &pad32("first"));
        let min = if approved_mode() { 6 } else { 4 };
        assert_eq!((ti.ulMinPinLen, ti.ulMaxPinLen), (min, 255));
        let stable = *slots.iter().find(|s| r.token_info(**s).label == pad32("first")).unwrap();
        // Slot IDs are stable across restarts.
        assert_eq!(r.f.C_Finalize(null_mut()), CKR_OK);
        r.init();
        assert!(r.slots().contains(&stable));
        assert_eq!(r.token_info(stable).label, pad32("first"));

        let mut ev = 0;
        assert_eq!(r.f.C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut ev, null_mut()), CKR_NO_EVENT);
    }
}

#[test]
fn mechanism_list_and_info() {
    let r = RawLib::new();
    r.init();
    let slot = r.slots()[0];
    unsafe {
        let mut n: CK_ULONG = 0;
        assert_eq!(r.f.C_GetMechanismList(slot, null_mut(), &mut n), CKR_OK);
        assert!(n >= 9);
        let mut v = vec![0; n as usize];
        let mut small: CK_ULONG = 1;
        assert_eq!(r.f.C_GetMechanismList(slot, v.as_mut_ptr(), &mut small), CKR_BUFFER_TOO_SMALL);
        assert_eq!(small, n);
        assert_eq!(r.f.C_GetMechanismList(slot, v.as_mut_ptr(), &mut n), CKR_OK);
        assert!(v.contains(&CKM_SHA256) && v.contains(&CKM_SHA3_224));
        let mut info = CK_MECHANISM_INFO::default();
        assert_eq!(r.f.C_GetMechanismInfo(slot, CKM_SHA256, &mut info), CKR_OK);
        assert_ne!(info.flags & CKF_DIGEST, 0);
        assert_eq!(r.f.C_GetMechanismInfo(slot, 0x7fff_0000, &mut info), CKR_MECHANISM_INVALID);
        assert_eq!(r.f.C_GetMechanismInfo(4242, CKM_SHA256, &mut info), CKR_SLOT_ID_INVALID);
        assert_eq!(r.f.C_GetMechanismList(4242, null_mut(), &mut n), CKR_SLOT_ID_INVALID);
    }
}

#[test]
fn session_state_machine() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("states");
    unsafe {
        let mut h = 0;
        assert_eq!(r.f.C_OpenSession(slot, 0, null_mut(), None, &mut h), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        assert_eq!(r.f.C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_OpenSession(77777, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_SLOT_ID_INVALID);
        let ro = r.open(slot, false);
        let rw = r.open(slot, true);
        let state = |h| {
            let mut si = CK_SESSION_INFO::default();
            assert_eq!(r.f.C_GetSessionInfo(h, &mut si), CKR_OK);
            si.state
        };
        assert_eq!(state(ro), CKS_RO_PUBLIC_SESSION);
        assert_eq!(state(rw), CKS_RW_PUBLIC_SESSION);
        assert_eq!(r.login(rw, CKU_SO, SO_PIN), Err(CKR_SESSION_READ_ONLY_EXISTS));
        assert_eq!(r.login(rw, 99, USER_PIN), Err(CKR_USER_TYPE_INVALID));
        assert_eq!(r.login(rw, CKU_CONTEXT_SPECIFIC, USER_PIN), Err(CKR_USER_NOT_LOGGED_IN));
        assert_eq!(r.f.C_Login(rw, CKU_USER, null_mut(), 4), CKR_ARGUMENTS_BAD);
        assert_eq!(r.login(ro, CKU_USER, USER_PIN), Ok(()));
        assert_eq!(state(ro), CKS_RO_USER_FUNCTIONS);
        assert_eq!(state(rw), CKS_RW_USER_FUNCTIONS, "login is shared by every session of the application");
        assert_eq!(r.login(rw, CKU_USER, USER_PIN), Err(CKR_USER_ALREADY_LOGGED_IN));
        assert_eq!(r.login(rw, CKU_SO, SO_PIN), Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN));
        assert_eq!(r.login(rw, CKU_CONTEXT_SPECIFIC, USER_PIN), Err(CKR_OPERATION_NOT_INITIALIZED));
        assert_eq!(r.f.C_Logout(ro), CKR_OK);
        assert_eq!(r.f.C_Logout(ro), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(r.f.C_CloseSession(ro), CKR_OK);
        assert_eq!(r.f.C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(r.login(rw, CKU_SO, SO_PIN), Ok(()));
        assert_eq!(state(rw), CKS_RW_SO_FUNCTIONS);
        assert_eq!(
            r.f.C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h),
            CKR_SESSION_READ_WRITE_SO_EXISTS
        );
        let ti = r.token_info(slot);
        assert_eq!((ti.ulSessionCount, ti.ulRwSessionCount), (1, 1));
        // Closing the last session logs the application out.
        assert_eq!(r.f.C_CloseSession(rw), CKR_OK);
        let s = r.open(slot, false);
        assert_eq!(state(s), CKS_RO_PUBLIC_SESSION);
        let s2 = r.open(slot, true);
        assert_eq!(r.f.C_CloseAllSessions(slot), CKR_OK);
        let mut si = CK_SESSION_INFO::default();
        assert_eq!(r.f.C_GetSessionInfo(s, &mut si), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(r.f.C_GetSessionInfo(s2, &mut si), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(r.f.C_CloseAllSessions(123456), CKR_SLOT_ID_INVALID);
    }
}

#[test]
fn pins_lockout_and_persisted_counters() {
    let r = RawLib::with(Env::new("pin.max_failures = 3"));
    r.init();
    let slot = r.token("pins");
    let len = |p: &[u8]| p.len() as CK_ULONG;
    unsafe {
        let h = r.open(slot, true);
        assert_eq!(r.login(h, CKU_USER, "000000"), Err(CKR_PIN_INCORRECT));
        assert_ne!(r.token_info(slot).flags & CKF_USER_PIN_COUNT_LOW, 0);
        assert_eq!(r.login(h, CKU_USER, "000001"), Err(CKR_PIN_INCORRECT));
        assert_ne!(r.token_info(slot).flags & CKF_USER_PIN_FINAL_TRY, 0);
        // A restart does not reset the counter.
        assert_eq!(r.f.C_Finalize(null_mut()), CKR_OK);
        r.init();
        let slot = *r.slots().iter().find(|s| r.token_info(**s).label == pad32("pins")).unwrap();
        let h = r.open(slot, true);
        assert_ne!(r.token_info(slot).flags & CKF_USER_PIN_FINAL_TRY, 0);
        assert_eq!(r.login(h, CKU_USER, "000002"), Err(CKR_PIN_INCORRECT));
        assert_ne!(r.token_info(slot).flags & CKF_USER_PIN_LOCKED, 0);
        assert_eq!(r.login(h, CKU_USER, USER_PIN), Err(CKR_PIN_LOCKED), "locked even with the right PIN");
        // The SO resets the user PIN, which unlocks it.
        r.login(h, CKU_SO, SO_PIN).unwrap();
        let newpin = b"567890";
        assert_eq!(r.f.C_InitPIN(h, b"12".as_ptr() as *mut _, 2), CKR_PIN_LEN_RANGE);
        assert_eq!(r.f.C_InitPIN(h, newpin.as_ptr() as *mut _, len(newpin)), CKR_OK);
        assert_eq!(r.f.C_Logout(h), CKR_OK);
        assert_eq!(r.f.C_InitPIN(h, newpin.as_ptr() as *mut _, len(newpin)), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(r.token_info(slot).flags & (CKF_USER_PIN_LOCKED | CKF_USER_PIN_COUNT_LOW), 0);
        r.login(h, CKU_USER, "567890").unwrap();
        // C_SetPIN: wrong old PIN, bad new length, then a real change.
        let (old, new, wrong) = (b"567890", b"87654321", b"999999");
        let set = |h, old: &[u8], new: &[u8]| {
            r.f.C_SetPIN(h, old.as_ptr() as *mut _, len(old), new.as_ptr() as *mut _, len(new))
        };
        assert_eq!(set(h, wrong, new), CKR_PIN_INCORRECT);
        assert_eq!(set(h, old, &new[..2]), CKR_PIN_LEN_RANGE);
        assert_eq!(set(h, old, new), CKR_OK);
        let ro = r.open(slot, false);
        assert_eq!(set(ro, new, old), CKR_SESSION_READ_ONLY);
        assert_eq!(r.f.C_CloseAllSessions(slot), CKR_OK);
        let h = r.open(slot, true);
        assert_eq!(r.login(h, CKU_USER, "567890"), Err(CKR_PIN_INCORRECT));
        assert_eq!(r.login(h, CKU_USER, "87654321"), Ok(()));
        // The SO changes the SO PIN.
        assert_eq!(r.f.C_Logout(h), CKR_OK);
        r.login(h, CKU_SO, SO_PIN).unwrap();
        assert_eq!(set(h, SO_PIN.as_bytes(), b"so-pin-2"), CKR_OK);
        assert_eq!(r.f.C_Logout(h), CKR_OK);
        assert_eq!(r.login(h, CKU_SO, SO_PIN), Err(CKR_PIN_INCORRECT));
        assert_eq!(r.login(h, CKU_SO, "so-pin-2"), Ok(()));
    }
}

/// The shortest PIN in the mode the suite runs under (4 bytes, 6 in the approved mode):
/// `ulMinPinLen`; a PIN of 5 bytes set with `C_InitPIN` (refused with `CKR_PIN_LEN_RANGE` in the
/// approved mode, taken in the other); and at `C_Login`, a PIN one byte short of the minimum or
/// longer than 255 bytes is `CKR_PIN_INCORRECT` without a failure counted, in both modes.
#[test]
fn pin_lengths_follow_the_mode() {
    let r = RawLib::with(Env::new("pin.max_failures = 2"));
    r.init();
    let slot = r.token("lengths");
    let min = if approved_mode() { 6 } else { 4 };
    let ti = r.token_info(slot);
    assert_eq!((ti.ulMinPinLen, ti.ulMaxPinLen), (min, 255));
    let h = r.open(slot, true);
    let short = &"1234567"[..min as usize - 1];
    let long = "7".repeat(256);
    let counted = CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED;
    for _ in 0..3 {
        assert_eq!(r.login(h, CKU_USER, short), Err(CKR_PIN_INCORRECT), "{} bytes", short.len());
        assert_eq!(r.login(h, CKU_USER, &long), Err(CKR_PIN_INCORRECT), "256 bytes");
    }
    assert_eq!(r.token_info(slot).flags & counted, 0, "a PIN of a length no PIN has was counted");
    assert_eq!(r.login(h, CKU_USER, "000000"), Err(CKR_PIN_INCORRECT));
    assert_ne!(r.token_info(slot).flags & CKF_USER_PIN_FINAL_TRY, 0, "a wrong PIN is counted");
    r.login(h, CKU_SO, SO_PIN).unwrap();
    let init_pin = |pin: &str| unsafe { r.f.C_InitPIN(h, pin.as_ptr() as *mut _, pin.len() as _) };
    assert_eq!(init_pin(short), CKR_PIN_LEN_RANGE);
    assert_eq!(init_pin(&long), CKR_PIN_LEN_RANGE);
    let five = if approved_mode() { CKR_PIN_LEN_RANGE } else { CKR_OK };
    assert_eq!(init_pin("13579"), five, "C_InitPIN with 5 bytes");
}

#[test]
fn reinitialising_a_token_needs_the_so_pin_and_wipes_it() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("wipe");
    unsafe {
        let h = r.open(slot, true);
        r.login(h, CKU_USER, USER_PIN).unwrap();
        let class = CKO_DATA;
        let mut t = [attr(CKA_CLASS, &class), attr(CKA_TOKEN, &TRUE), bytes(CKA_LABEL, b"keep?")];
        r.create(h, &mut t).unwrap();
        let mut label = pad32("wiped");
        let so = SO_PIN.as_bytes();
        assert_eq!(r.f.C_InitToken(slot, so.as_ptr() as *mut _, 8, label.as_mut_ptr()), CKR_SESSION_EXISTS);
        assert_eq!(r.f.C_CloseSession(h), CKR_OK);
        assert_eq!(r.f.C_InitToken(slot, b"wrongpin".as_ptr() as *mut _, 8, label.as_mut_ptr()), CKR_PIN_INCORRECT);
        assert_eq!(r.f.C_InitToken(slot, so.as_ptr() as *mut _, 8, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_InitToken(slot, so.as_ptr() as *mut _, 8, label.as_mut_ptr()), CKR_OK);
        let ti = r.token_info(slot);
        assert_eq!(ti.label, pad32("wiped"));
        assert_eq!(ti.flags & CKF_USER_PIN_INITIALIZED, 0);
        let h = r.open(slot, true);
        assert_eq!(r.login(h, CKU_USER, USER_PIN), Err(CKR_USER_PIN_NOT_INITIALIZED));
        assert_eq!(r.f.C_FindObjectsInit(h, null_mut(), 0), CKR_OK);
        let mut found = [0; 4];
        let mut n = 0;
        assert_eq!(r.f.C_FindObjects(h, found.as_mut_ptr(), 4, &mut n), CKR_OK);
        assert_eq!(n, 0, "re-initialisation destroys every object");
    }
}

#[test]
fn get_attribute_value_follows_the_specification() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("attrs");
    unsafe {
        let h = r.open(slot, true);
        r.login(h, CKU_USER, USER_PIN).unwrap();
        let (class, kt) = (CKO_SECRET_KEY, CKK_AES);
        let key = [7u8; 32];
        let mut t = [
            attr(CKA_CLASS, &class),
            attr(CKA_KEY_TYPE, &kt),
            attr(CKA_TOKEN, &TRUE),
            bytes(CKA_LABEL, b"aes-key"),
            bytes(CKA_VALUE, &key),
        ];
        let o = r.create(h, &mut t).unwrap();
        // Length query, then values; sensitive and invalid attributes marked, all processed.
        let mut q = [
            CK_ATTRIBUTE { type_: CKA_LABEL, pValue: null_mut(), ulValueLen: 0 },
            CK_ATTRIBUTE { type_: CKA_VALUE, pValue: null_mut(), ulValueLen: 0 },
            CK_ATTRIBUTE { type_: CKA_MODULUS, pValue: null_mut(), ulValueLen: 0 },
            CK_ATTRIBUTE { type_: CKA_VALUE_LEN, pValue: null_mut(), ulValueLen: 0 },
        ];
        let rv = r.f.C_GetAttributeValue(h, o, q.as_mut_ptr(), 4);
        assert!(rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID, "rv {rv:#x}");
        assert_eq!(q[0].ulValueLen, 7);
        assert_eq!(q[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(q[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(q[3].ulValueLen, 8);
        let mut small = [0u8; 3];
        let mut b = [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: small.as_mut_ptr() as *mut c_void, ulValueLen: 3 }];
        assert_eq!(r.f.C_GetAttributeValue(h, o, b.as_mut_ptr(), 1), CKR_BUFFER_TOO_SMALL);
        assert_eq!(b[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        let mut buf = [0u8; 16];
        let mut len: CK_ULONG = 0;
        let mut g = [
            CK_ATTRIBUTE { type_: CKA_LABEL, pValue: buf.as_mut_ptr() as *mut c_void, ulValueLen: 16 },
            attr_mut(CKA_VALUE_LEN, &mut len),
        ];
        assert_eq!(r.f.C_GetAttributeValue(h, o, g.as_mut_ptr(), 2), CKR_OK);
        assert_eq!(&buf[..7], b"aes-key");
        assert_eq!(g[0].ulValueLen, 7);
        assert_eq!(len, 32);
        assert_eq!(r.f.C_GetAttributeValue(h, o, null_mut(), 1), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_GetAttributeValue(h, 0xdead, g.as_mut_ptr(), 2), CKR_OBJECT_HANDLE_INVALID);
        assert_eq!(r.f.C_GetAttributeValue(0xdead, o, g.as_mut_ptr(), 2), CKR_SESSION_HANDLE_INVALID);
        let mut size = 0;
        assert_eq!(r.f.C_GetObjectSize(h, o, &mut size), CKR_OK);
        assert!(size > 0);
        assert_eq!(r.f.C_GetObjectSize(h, o, null_mut()), CKR_ARGUMENTS_BAD);

        // An extractable, non-sensitive key shows its value.
        let mut t2 = [
            attr(CKA_CLASS, &class),
            attr(CKA_KEY_TYPE, &kt),
            attr(CKA_SENSITIVE, &FALSE),
            attr(CKA_EXTRACTABLE, &TRUE),
            bytes(CKA_VALUE, &key),
        ];
        let o2 = r.create(h, &mut t2).unwrap();
        let mut v = [0u8; 32];
        let mut g2 = [CK_ATTRIBUTE { type_: CKA_VALUE, pValue: v.as_mut_ptr() as *mut c_void, ulValueLen: 32 }];
        assert_eq!(r.f.C_GetAttributeValue(h, o2, g2.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(v, key);
        // ... until it is made sensitive, which is one-way.
        let mut s = [attr(CKA_SENSITIVE, &TRUE)];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, s.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(r.f.C_GetAttributeValue(h, o2, g2.as_mut_ptr(), 1), CKR_ATTRIBUTE_SENSITIVE);
        let mut back = [attr(CKA_SENSITIVE, &FALSE)];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, back.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY);
        let mut ext = [attr(CKA_EXTRACTABLE, &FALSE)];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, ext.as_mut_ptr(), 1), CKR_OK);
        let mut ext_back = [attr(CKA_EXTRACTABLE, &TRUE)];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, ext_back.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY);
        let mut ro = [attr(CKA_LOCAL, &TRUE)];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, ro.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY);
        let mut kt_change = [attr(CKA_KEY_TYPE, &CKK_GENERIC_SECRET)];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, kt_change.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY);
        let mut unknown = [bytes(CKA_MODULUS, b"x")];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, unknown.as_mut_ptr(), 1), CKR_ATTRIBUTE_TYPE_INVALID);
        let mut bad_bool = [bytes(CKA_ENCRYPT, &[1, 2])];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, bad_bool.as_mut_ptr(), 1), CKR_ATTRIBUTE_VALUE_INVALID);
        // Once locked, these are read-only even to the value they have (spec footnotes 11, 12).
        assert_eq!(r.f.C_SetAttributeValue(h, o2, s.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY);
        assert_eq!(r.f.C_SetAttributeValue(h, o2, ext.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY);

        // The check value: computed unless the template gives it empty; it can be removed (set
        // to no value) but not set.
        let check = |o| {
            let mut g = [CK_ATTRIBUTE { type_: CKA_CHECK_VALUE, pValue: null_mut(), ulValueLen: 0 }];
            assert_eq!(r.f.C_GetAttributeValue(h, o, g.as_mut_ptr(), 1), CKR_OK);
            g[0].ulValueLen
        };
        assert_eq!(check(o2), 3);
        let mut none =
            [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), bytes(CKA_VALUE, &key), bytes(CKA_CHECK_VALUE, &[])];
        let o3 = r.create(h, &mut none).unwrap();
        assert_eq!(check(o3), 0, "no check value asked for");
        let mut set_cv = [bytes(CKA_CHECK_VALUE, &[1, 2, 3])];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, set_cv.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY);
        let mut drop_cv = [bytes(CKA_CHECK_VALUE, &[])];
        assert_eq!(r.f.C_SetAttributeValue(h, o2, drop_cv.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(check(o2), 0, "check value removed");

        // A data object's attributes are fixed once it exists, in a copy too; a certificate's but
        // its CKA_ID, CKA_ISSUER and CKA_SERIAL_NUMBER as well.
        let data_class = CKO_DATA;
        let mut d = [attr(CKA_CLASS, &data_class), bytes(CKA_VALUE, b"v"), bytes(CKA_OBJECT_ID, &[6, 1, 0])];
        let data = r.create(h, &mut d).unwrap();
        for (t, v) in [(CKA_VALUE, &b"w"[..]), (CKA_OBJECT_ID, &[6, 1, 1][..]), (CKA_APPLICATION, &b"app"[..])] {
            let mut set = [bytes(t, v)];
            assert_eq!(r.f.C_SetAttributeValue(h, data, set.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY, "{t:#x}");
            let mut copy = 0;
            assert_eq!(r.f.C_CopyObject(h, data, set.as_mut_ptr(), 1, &mut copy), CKR_ATTRIBUTE_READ_ONLY, "{t:#x}");
        }
        let mut label = [bytes(CKA_LABEL, b"still a label")];
        assert_eq!(r.f.C_SetAttributeValue(h, data, label.as_mut_ptr(), 1), CKR_OK);
        let (cert_class, x509) = (CKO_CERTIFICATE, CKC_X_509);
        let mut c = [
            attr(CKA_CLASS, &cert_class),
            attr(CKA_CERTIFICATE_TYPE, &x509),
            bytes(CKA_SUBJECT, b"subject"),
            bytes(CKA_VALUE, b"not really DER"),
        ];
        let cert = r.create(h, &mut c).unwrap();
        let mut id = [bytes(CKA_ID, b"1"), bytes(CKA_SERIAL_NUMBER, b"2"), bytes(CKA_ISSUER, b"3")];
        assert_eq!(r.f.C_SetAttributeValue(h, cert, id.as_mut_ptr(), 3), CKR_OK);
        for t in [CKA_CHECK_VALUE, CKA_START_DATE, CKA_CERTIFICATE_CATEGORY] {
            let mut set = [bytes(t, if t == CKA_START_DATE { b"20260101" } else { b"12345678" })];
            assert_eq!(r.f.C_SetAttributeValue(h, cert, set.as_mut_ptr(), 1), CKR_ATTRIBUTE_READ_ONLY, "{t:#x}");
        }
    }
}

#[test]
fn nested_template_attributes_round_trip() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("nested");
    unsafe {
        let h = r.open(slot, true);
        r.login(h, CKU_USER, USER_PIN).unwrap();
        let (class, kt) = (CKO_SECRET_KEY, CKK_AES);
        let key = [1u8; 16];
        let inner_class = CKO_SECRET_KEY;
        let inner = [attr(CKA_CLASS, &inner_class), attr(CKA_EXTRACTABLE, &FALSE)];
        let mut t = [
            attr(CKA_CLASS, &class),
            attr(CKA_KEY_TYPE, &kt),
            bytes(CKA_VALUE, &key),
            CK_ATTRIBUTE {
                type_: CKA_UNWRAP_TEMPLATE,
                pValue: inner.as_ptr() as *mut c_void,
                ulValueLen: std::mem::size_of_val(&inner) as _,
            },
        ];
        let o = r.create(h, &mut t).unwrap();
        let mut q = [CK_ATTRIBUTE { type_: CKA_UNWRAP_TEMPLATE, pValue: null_mut(), ulValueLen: 0 }];
        assert_eq!(r.f.C_GetAttributeValue(h, o, q.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(q[0].ulValueLen as usize, 2 * std::mem::size_of::<CK_ATTRIBUTE>());
        let mut got = [CK_ATTRIBUTE::default(); 2];
        let (mut c, mut e): (CK_ULONG, CK_BBOOL) = (0, 9);
        got[0].pValue = &mut c as *mut _ as *mut c_void;
        got[0].ulValueLen = 8;
        got[1].pValue = &mut e as *mut _ as *mut c_void;
        got[1].ulValueLen = 1;
        q[0].pValue = got.as_mut_ptr() as *mut c_void;
        assert_eq!(r.f.C_GetAttributeValue(h, o, q.as_mut_ptr(), 1), CKR_OK);
        assert_eq!((got[0].type_, c), (CKA_CLASS, CKO_SECRET_KEY));
        assert_eq!((got[1].type_, e), (CKA_EXTRACTABLE, CK_FALSE));
    }
}

#[test]
fn create_object_checks_templates_and_sessions() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("create");
    unsafe {
        let ro = r.open(slot, false);
        let class = CKO_DATA;
        let mut token_obj = [attr(CKA_CLASS, &class), attr(CKA_TOKEN, &TRUE)];
        assert_eq!(r.create(ro, &mut token_obj), Err(CKR_SESSION_READ_ONLY));
        let mut private_obj = [attr(CKA_CLASS, &class), attr(CKA_PRIVATE, &TRUE)];
        assert_eq!(r.create(ro, &mut private_obj), Err(CKR_USER_NOT_LOGGED_IN));
        let mut no_class = [bytes(CKA_LABEL, b"x")];
        assert_eq!(r.create(ro, &mut no_class), Err(CKR_TEMPLATE_INCOMPLETE));
        let mut twice = [attr(CKA_CLASS, &class), attr(CKA_TOKEN, &TRUE), attr(CKA_TOKEN, &FALSE)];
        assert_eq!(r.create(ro, &mut twice), Err(CKR_TEMPLATE_INCONSISTENT));
        let mut wrong_attr = [attr(CKA_CLASS, &class), bytes(CKA_MODULUS, b"1")];
        assert_eq!(r.create(ro, &mut wrong_attr), Err(CKR_ATTRIBUTE_TYPE_INVALID));
        let mut readonly = [attr(CKA_CLASS, &CKO_SECRET_KEY), attr(CKA_KEY_TYPE, &CKK_AES), attr(CKA_LOCAL, &TRUE)];
        assert_eq!(r.create(ro, &mut readonly), Err(CKR_ATTRIBUTE_READ_ONLY));
        let mut no_value = [attr(CKA_CLASS, &CKO_SECRET_KEY), attr(CKA_KEY_TYPE, &CKK_AES)];
        assert_eq!(r.create(ro, &mut no_value), Err(CKR_TEMPLATE_INCOMPLETE));
        let mut bad_len = [attr(CKA_CLASS, &CKO_SECRET_KEY), attr(CKA_KEY_TYPE, &CKK_AES), bytes(CKA_VALUE, &[1; 5])];
        assert_eq!(r.create(ro, &mut bad_len), Err(CKR_ATTRIBUTE_VALUE_INVALID));
        let mut bad_class = [attr(CKA_CLASS, &CKO_HW_FEATURE)];
        assert_eq!(r.create(ro, &mut bad_class), Err(CKR_ATTRIBUTE_VALUE_INVALID));
        let mut null_value =
            [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: null_mut(), ulValueLen: 4 }, attr(CKA_CLASS, &class)];
        assert_ne!(r.create(ro, &mut null_value), Ok(0));
        let mut o = 0;
        assert_eq!(r.f.C_CreateObject(ro, null_mut(), 1, &mut o), CKR_ARGUMENTS_BAD);
        let mut ok = [attr(CKA_CLASS, &class)];
        assert_eq!(r.f.C_CreateObject(ro, ok.as_mut_ptr(), 1, null_mut()), CKR_ARGUMENTS_BAD);
        // A session object in a read-only public session is fine.
        let o = r.create(ro, &mut ok).unwrap();
        assert_eq!(r.f.C_DestroyObject(ro, o), CKR_OK);
        assert_eq!(r.f.C_DestroyObject(ro, o), CKR_OBJECT_HANDLE_INVALID);
        // Certificates need their subject and value.
        let ct = CKC_X_509;
        let mut cert = [attr(CKA_CLASS, &CKO_CERTIFICATE), attr(CKA_CERTIFICATE_TYPE, &ct), bytes(CKA_SUBJECT, b"s")];
        assert_eq!(r.create(ro, &mut cert), Err(CKR_TEMPLATE_INCOMPLETE));
    }
}

#[test]
fn copy_destroy_and_protection_attributes() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("copy");
    unsafe {
        let h = r.open(slot, true);
        r.login(h, CKU_USER, USER_PIN).unwrap();
        let class = CKO_DATA;
        let mut t = [attr(CKA_CLASS, &class), bytes(CKA_LABEL, b"orig"), bytes(CKA_VALUE, b"payload")];
        let o = r.create(h, &mut t).unwrap();
        let mut ct = [attr(CKA_TOKEN, &TRUE), bytes(CKA_LABEL, b"copy")];
        let mut c = 0;
        assert_eq!(r.f.C_CopyObject(h, o, ct.as_mut_ptr(), 2, &mut c), CKR_OK);
        let mut v = [0u8; 7];
        let mut g = [CK_ATTRIBUTE { type_: CKA_VALUE, pValue: v.as_mut_ptr() as *mut c_void, ulValueLen: 7 }];
        assert_eq!(r.f.C_GetAttributeValue(h, c, g.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(&v, b"payload");
        let mut bad = [attr(CKA_CLASS, &CKO_SECRET_KEY)];
        assert_eq!(r.f.C_CopyObject(h, o, bad.as_mut_ptr(), 1, &mut c), CKR_ATTRIBUTE_READ_ONLY);
        // Not copyable, not destroyable, not modifiable.
        let mut locked = [
            attr(CKA_CLASS, &class),
            attr(CKA_COPYABLE, &FALSE),
            attr(CKA_DESTROYABLE, &FALSE),
            attr(CKA_MODIFIABLE, &FALSE),
        ];
        let l = r.create(h, &mut locked).unwrap();
        assert_eq!(r.f.C_CopyObject(h, l, null_mut(), 0, &mut c), CKR_ACTION_PROHIBITED);
        assert_eq!(r.f.C_DestroyObject(h, l), CKR_ACTION_PROHIBITED);
        let mut label = [bytes(CKA_LABEL, b"new")];
        assert_eq!(r.f.C_SetAttributeValue(h, l, label.as_mut_ptr(), 1), CKR_ACTION_PROHIBITED);
        assert_eq!(r.f.C_SetAttributeValue(h, o, label.as_mut_ptr(), 1), CKR_OK);
        // Token objects cannot be destroyed from a read-only session.
        let ro = r.open(slot, false);
        assert_eq!(r.f.C_DestroyObject(ro, c), CKR_SESSION_READ_ONLY);
        assert_eq!(r.f.C_SetAttributeValue(ro, c, label.as_mut_ptr(), 1), CKR_SESSION_READ_ONLY);
        assert_eq!(r.f.C_DestroyObject(h, c), CKR_OK);
    }
}

fn find(r: &RawLib, h: CK_SESSION_HANDLE, t: &mut [CK_ATTRIBUTE]) -> Vec<CK_OBJECT_HANDLE> {
    unsafe {
        assert_eq!(r.f.C_FindObjectsInit(h, t.as_mut_ptr(), t.len() as _), CKR_OK);
        let mut out = Vec::new();
        loop {
            let mut buf = [0; 2];
            let mut n = 0;
            assert_eq!(r.f.C_FindObjects(h, buf.as_mut_ptr(), 2, &mut n), CKR_OK);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        assert_eq!(r.f.C_FindObjectsFinal(h), CKR_OK);
        out
    }
}

#[test]
fn find_private_visibility_and_session_lifetimes() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("find");
    unsafe {
        let h = r.open(slot, true);
        r.login(h, CKU_USER, USER_PIN).unwrap();
        let class = CKO_DATA;
        for (label, private, token) in
            [("pub-tok", FALSE, TRUE), ("priv-tok", TRUE, TRUE), ("pub-sess", FALSE, FALSE), ("priv-sess", TRUE, FALSE)]
        {
            let mut t = [
                attr(CKA_CLASS, &class),
                attr(CKA_PRIVATE, &private),
                attr(CKA_TOKEN, &token),
                bytes(CKA_LABEL, label.as_bytes()),
            ];
            r.create(h, &mut t).unwrap();
        }
        let mut all = [attr(CKA_CLASS, &class)];
        assert_eq!(find(&r, h, &mut all).len(), 4);
        let mut one = [bytes(CKA_LABEL, b"priv-tok")];
        let found = find(&r, h, &mut one);
        assert_eq!(found.len(), 1);
        let priv_handle = found[0];
        assert_eq!(r.f.C_FindObjectsInit(h, all.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(r.f.C_FindObjectsInit(h, all.as_mut_ptr(), 1), CKR_OPERATION_ACTIVE);
        let mut n = 0;
        assert_eq!(r.f.C_FindObjects(h, null_mut(), 1, &mut n), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_FindObjectsFinal(h), CKR_OK);
        assert_eq!(r.f.C_FindObjectsFinal(h), CKR_OPERATION_NOT_INITIALIZED);
        let mut buf = [0; 1];
        assert_eq!(r.f.C_FindObjects(h, buf.as_mut_ptr(), 1, &mut n), CKR_OPERATION_NOT_INITIALIZED);

        // After logout: private session objects are destroyed, private token objects invisible
        // and their handles invalid.
        assert_eq!(r.f.C_Logout(h), CKR_OK);
        let mut labels = Vec::new();
        for o in find(&r, h, &mut all) {
            let mut b = [0u8; 16];
            let mut g = [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: b.as_mut_ptr() as *mut c_void, ulValueLen: 16 }];
            assert_eq!(r.f.C_GetAttributeValue(h, o, g.as_mut_ptr(), 1), CKR_OK);
            labels.push(String::from_utf8_lossy(&b[..g[0].ulValueLen as usize]).into_owned());
        }
        labels.sort();
        assert_eq!(labels, vec!["pub-sess", "pub-tok"]);
        let mut g = [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: null_mut(), ulValueLen: 0 }];
        assert_eq!(r.f.C_GetAttributeValue(h, priv_handle, g.as_mut_ptr(), 1), CKR_OBJECT_HANDLE_INVALID);
        r.login(h, CKU_USER, USER_PIN).unwrap();
        assert_eq!(find(&r, h, &mut all).len(), 3, "the private session object is gone for good");
        // Session objects die with their session; token objects outlive the module.
        assert_eq!(r.f.C_CloseSession(h), CKR_OK);
        let h = r.open(slot, true);
        assert_eq!(find(&r, h, &mut all).len(), 1, "public token object only");
        assert_eq!(r.f.C_Finalize(null_mut()), CKR_OK);
        r.init();
        let slot = *r.slots().iter().find(|s| r.token_info(**s).label == pad32("find")).unwrap();
        let h = r.open(slot, true);
        r.login(h, CKU_USER, USER_PIN).unwrap();
        assert_eq!(find(&r, h, &mut all).len(), 2);
    }
}

#[test]
fn key_material_is_encrypted_at_rest() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("rest");
    let marker = *b"KEYMATERIAL-0123456789abcdefXYZ!";
    let private_label = b"PRIVATE-LABEL-MARKER";
    unsafe {
        let h = r.open(slot, true);
        r.login(h, CKU_USER, USER_PIN).unwrap();
        let mut key = [
            attr(CKA_CLASS, &CKO_SECRET_KEY),
            attr(CKA_KEY_TYPE, &CKK_GENERIC_SECRET),
            attr(CKA_TOKEN, &TRUE),
            attr(CKA_PRIVATE, &FALSE),
            bytes(CKA_VALUE, &marker),
        ];
        r.create(h, &mut key).unwrap();
        let mut data = [
            attr(CKA_CLASS, &CKO_DATA),
            attr(CKA_TOKEN, &TRUE),
            attr(CKA_PRIVATE, &TRUE),
            bytes(CKA_LABEL, private_label),
        ];
        r.create(h, &mut data).unwrap();
        assert_eq!(r.f.C_Finalize(null_mut()), CKR_OK);
    }
    let mut seen = 0;
    for e in walk(&r.env.tokendir()) {
        let bytes = std::fs::read(&e).unwrap();
        seen += bytes.len();
        assert!(!contains(&bytes, &marker), "key value in clear in {}", e.display());
        assert!(!contains(&bytes, private_label), "private object in clear in {}", e.display());
    }
    assert!(seen > 0);
    r.init();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn digests_single_and_multi_part_with_two_call_lengths() {
    let r = RawLib::new();
    r.init();
    let slot = r.slots()[0];
    let _ = slot;
    let slot = r.token("digest");
    // FIPS 180-4 / FIPS 202 examples for "abc".
    let cases: [(CK_MECHANISM_TYPE, &str); 9] = [
        (CKM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (CKM_SHA224, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
        (CKM_SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (CKM_SHA384, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
        (CKM_SHA512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
        (CKM_SHA3_224, "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf"),
        (CKM_SHA3_256, "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"),
        (CKM_SHA3_384, "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b298d88cea927ac7f539f1edf228376d25"),
        (CKM_SHA3_512, "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0"),
    ];
    unsafe {
        let h = r.open(slot, false);
        for (mech, hex) in cases {
            let expect: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            let mut m = CK_MECHANISM { mechanism: mech, pParameter: null_mut(), ulParameterLen: 0 };
            assert_eq!(r.f.C_DigestInit(h, &mut m), CKR_OK);
            assert_eq!(r.f.C_DigestInit(h, &mut m), CKR_OPERATION_ACTIVE);
            let mut len: CK_ULONG = 0;
            let data = *b"abc";
            assert_eq!(r.f.C_Digest(h, data.as_ptr() as *mut _, 3, null_mut(), &mut len), CKR_OK);
            assert_eq!(len as usize, expect.len());
            let mut out = vec![0u8; 64];
            let mut short: CK_ULONG = 4;
            assert_eq!(r.f.C_Digest(h, data.as_ptr() as *mut _, 3, out.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL);
            assert_eq!(short, len);
            len = 64;
            assert_eq!(r.f.C_Digest(h, data.as_ptr() as *mut _, 3, out.as_mut_ptr(), &mut len), CKR_OK);
            assert_eq!(&out[..len as usize], &expect[..], "mechanism {mech:#x}");
            assert_eq!(
                r.f.C_Digest(h, data.as_ptr() as *mut _, 3, out.as_mut_ptr(), &mut len),
                CKR_OPERATION_NOT_INITIALIZED
            );
            // Multi-part.
            assert_eq!(r.f.C_DigestInit(h, &mut m), CKR_OK);
            for b in data {
                let mut one = [b];
                assert_eq!(r.f.C_DigestUpdate(h, one.as_mut_ptr(), 1), CKR_OK);
            }
            let mut n: CK_ULONG = 0;
            assert_eq!(r.f.C_DigestFinal(h, null_mut(), &mut n), CKR_OK);
            n = 64;
            assert_eq!(r.f.C_DigestFinal(h, out.as_mut_ptr(), &mut n), CKR_OK);
            assert_eq!(&out[..n as usize], &expect[..]);
        }
        let mut bad = CK_MECHANISM { mechanism: CKM_AES_ECB, pParameter: null_mut(), ulParameterLen: 0 };
        assert_eq!(r.f.C_DigestInit(h, &mut bad), CKR_MECHANISM_INVALID);
        let mut p = [0u8; 4];
        let mut withparam =
            CK_MECHANISM { mechanism: CKM_SHA256, pParameter: p.as_mut_ptr() as *mut c_void, ulParameterLen: 4 };
        assert_eq!(r.f.C_DigestInit(h, &mut withparam), CKR_MECHANISM_PARAM_INVALID);
        assert_eq!(r.f.C_DigestInit(h, null_mut()), CKR_ARGUMENTS_BAD);
        let mut n: CK_ULONG = 64;
        let mut out = [0u8; 64];
        assert_eq!(r.f.C_DigestFinal(h, out.as_mut_ptr(), &mut n), CKR_OPERATION_NOT_INITIALIZED);
        // C_Digest cannot finish a multi-part digest.
        let mut m = CK_MECHANISM { mechanism: CKM_SHA256, pParameter: null_mut(), ulParameterLen: 0 };
        assert_eq!(r.f.C_DigestInit(h, &mut m), CKR_OK);
        assert_eq!(r.f.C_DigestUpdate(h, out.as_mut_ptr(), 3), CKR_OK);
        assert_ne!(r.f.C_Digest(h, out.as_mut_ptr(), 3, out.as_mut_ptr(), &mut n), CKR_OK);
    }
}

#[test]
fn random_generation() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("rng");
    unsafe {
        let h = r.open(slot, false);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        assert_eq!(r.f.C_GenerateRandom(h, a.as_mut_ptr(), 32), CKR_OK);
        assert_eq!(r.f.C_GenerateRandom(h, b.as_mut_ptr(), 32), CKR_OK);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        assert_eq!(r.f.C_GenerateRandom(h, null_mut(), 32), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_GenerateRandom(0xbad, a.as_mut_ptr(), 32), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(r.f.C_SeedRandom(h, a.as_mut_ptr(), 32), CKR_RANDOM_SEED_NOT_SUPPORTED);
    }
}

#[test]
fn unimplemented_functions_say_so() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("unsupported");
    unsafe {
        let h = r.open(slot, false);
        let mut n: CK_ULONG = 0;
        assert_eq!(r.f.C_GetOperationState(h, null_mut(), &mut n), CKR_FUNCTION_NOT_SUPPORTED);
        assert_eq!(r.f.C_SignRecoverInit(h, null_mut(), 0), CKR_FUNCTION_NOT_SUPPORTED);
    }
    let _ = null::<u8>();
}

#[test]
fn fork_child_is_not_initialised_until_it_initialises() {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    let r = RawLib::new();
    r.init();
    let slot = r.token("fork");
    let h = r.open(slot, true);
    r.login(h, CKU_USER, USER_PIN).unwrap();
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = unsafe {
                let mut info = CK_INFO::default();
                let mut si = CK_SESSION_INFO::default();
                let checks = [
                    r.f.C_GetInfo(&mut info) == CKR_CRYPTOKI_NOT_INITIALIZED,
                    r.f.C_GetSessionInfo(h, &mut si) == CKR_CRYPTOKI_NOT_INITIALIZED,
                    r.f.C_Initialize(null_mut()) == CKR_OK,
                    r.f.C_GetSessionInfo(h, &mut si) == CKR_SESSION_HANDLE_INVALID,
                    r.f.C_Finalize(null_mut()) == CKR_OK,
                ];
                checks.iter().position(|ok| !ok).map(|i| i as i32 + 10).unwrap_or(0)
            };
            unsafe { libc_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("waitpid");
            assert_eq!(status, WaitStatus::Exited(child, 0), "child check failed (code = 10 + index)");
            let mut si = CK_SESSION_INFO::default();
            assert_eq!(unsafe { r.f.C_GetSessionInfo(h, &mut si) }, CKR_OK, "the parent goes on");
            assert_eq!(si.state, CKS_RW_USER_FUNCTIONS);
        }
    }
}

extern "C" {
    #[link_name = "_exit"]
    fn libc_exit(code: i32) -> !;
}

/// A logged-in R/W session on a new token with an AES-256 session key: (session, key).
unsafe fn aes_key_session(r: &RawLib, label: &str) -> (CK_SESSION_HANDLE, CK_OBJECT_HANDLE) {
    let slot = r.token(label);
    let h = r.open(slot, true);
    r.login(h, CKU_USER, USER_PIN).unwrap();
    let key = [9u8; 32];
    let mut t = [attr(CKA_CLASS, &CKO_SECRET_KEY), attr(CKA_KEY_TYPE, &CKK_AES), bytes(CKA_VALUE, &key)];
    (h, r.create(h, &mut t).unwrap())
}

/// A single-part call and the multi-part calls of one operation exclude each other once one has
/// begun: `C_Encrypt` cannot end a multi-part encryption, nor `C_EncryptUpdate` continue one that
/// a `C_Encrypt` length query started. The other kind answers `CKR_OPERATION_ACTIVE` and ends the
/// operation (a failed call ends it), for digests, ciphers, MACs and verification alike.
#[test]
fn single_and_multi_part_calls_do_not_mix() {
    let r = RawLib::new();
    r.init();
    unsafe {
        let (h, k) = aes_key_session(&r, "phases");
        let mut data = [7u8; 32];
        let mut iv = [0u8; 16];
        let mut cbc =
            CK_MECHANISM { mechanism: CKM_AES_CBC, pParameter: iv.as_mut_ptr() as *mut c_void, ulParameterLen: 16 };
        let mut cmac = CK_MECHANISM { mechanism: CKM_AES_CMAC, pParameter: null_mut(), ulParameterLen: 0 };
        let mut sha = CK_MECHANISM { mechanism: CKM_SHA256, pParameter: null_mut(), ulParameterLen: 0 };
        let d = data.as_mut_ptr();
        let mut out = [0u8; 64];
        let o = out.as_mut_ptr();
        let mut n: CK_ULONG;
        // Encryption and decryption.
        for enc in [true, false] {
            let init = |m: &mut CK_MECHANISM| if enc { r.f.C_EncryptInit(h, m, k) } else { r.f.C_DecryptInit(h, m, k) };
            let one = |o: *mut u8, n: &mut CK_ULONG| {
                if enc {
                    r.f.C_Encrypt(h, d, 32, o, n)
                } else {
                    r.f.C_Decrypt(h, d, 32, o, n)
                }
            };
            let update = |n: &mut CK_ULONG| {
                if enc {
                    r.f.C_EncryptUpdate(h, d, 32, o, n)
                } else {
                    r.f.C_DecryptUpdate(h, d, 32, o, n)
                }
            };
            let fin = |n: &mut CK_ULONG| if enc { r.f.C_EncryptFinal(h, o, n) } else { r.f.C_DecryptFinal(h, o, n) };
            assert_eq!(init(&mut cbc), CKR_OK);
            n = 64;
            assert_eq!(update(&mut n), CKR_OK);
            n = 64;
            assert_eq!(one(o, &mut n), CKR_OPERATION_ACTIVE, "single part after an update (encrypt: {enc})");
            n = 64;
            assert_eq!(fin(&mut n), CKR_OPERATION_NOT_INITIALIZED, "the failed call ended the operation");
            assert_eq!(init(&mut cbc), CKR_OK);
            n = 0;
            assert_eq!(one(null_mut(), &mut n), CKR_OK);
            assert_eq!(n, 32);
            n = 64;
            assert_eq!(update(&mut n), CKR_OPERATION_ACTIVE, "an update after a single-part length query");
            n = 64;
            assert_eq!(one(o, &mut n), CKR_OPERATION_NOT_INITIALIZED);
            // Each kind on its own still works, with its length queries.
            assert_eq!(init(&mut cbc), CKR_OK);
            n = 0;
            assert_eq!(one(null_mut(), &mut n), CKR_OK);
            n = 64;
            assert_eq!((one(o, &mut n), n), (CKR_OK, 32));
            assert_eq!(init(&mut cbc), CKR_OK);
            n = 64;
            assert_eq!(update(&mut n), CKR_OK);
            n = 64;
            assert_eq!((fin(&mut n), n), (CKR_OK, 0));
        }
        // MAC and verification.
        assert_eq!(r.f.C_SignInit(h, &mut cmac, k), CKR_OK);
        assert_eq!(r.f.C_SignUpdate(h, d, 32), CKR_OK);
        n = 64;
        assert_eq!(r.f.C_Sign(h, d, 32, o, &mut n), CKR_OPERATION_ACTIVE);
        assert_eq!(r.f.C_SignFinal(h, o, &mut n), CKR_OPERATION_NOT_INITIALIZED);
        assert_eq!(r.f.C_SignInit(h, &mut cmac, k), CKR_OK);
        n = 0;
        assert_eq!(r.f.C_Sign(h, d, 32, null_mut(), &mut n), CKR_OK);
        assert_eq!(r.f.C_SignUpdate(h, d, 32), CKR_OPERATION_ACTIVE);
        assert_eq!(r.f.C_SignInit(h, &mut cmac, k), CKR_OK);
        n = 64;
        assert_eq!(r.f.C_Sign(h, d, 32, o, &mut n), CKR_OK);
        let mac = out[..n as usize].to_vec();
        assert_eq!(r.f.C_VerifyInit(h, &mut cmac, k), CKR_OK);
        assert_eq!(r.f.C_VerifyUpdate(h, d, 32), CKR_OK);
        let mut m2 = mac.clone();
        assert_eq!(r.f.C_Verify(h, d, 32, m2.as_mut_ptr(), m2.len() as CK_ULONG), CKR_OPERATION_ACTIVE);
        assert_eq!(r.f.C_VerifyFinal(h, m2.as_mut_ptr(), m2.len() as CK_ULONG), CKR_OPERATION_NOT_INITIALIZED);
        // Digests: a length query of C_Digest, then C_DigestFinal.
        assert_eq!(r.f.C_DigestInit(h, &mut sha), CKR_OK);
        n = 0;
        assert_eq!(r.f.C_Digest(h, d, 32, null_mut(), &mut n), CKR_OK);
        n = 64;
        assert_eq!(r.f.C_DigestFinal(h, o, &mut n), CKR_OPERATION_ACTIVE);
        assert_eq!(r.f.C_DigestFinal(h, o, &mut n), CKR_OPERATION_NOT_INITIALIZED);
        assert_eq!(r.f.C_DigestInit(h, &mut sha), CKR_OK);
        assert_eq!(r.f.C_DigestUpdate(h, d, 32), CKR_OK);
        n = 64;
        assert_eq!(r.f.C_Digest(h, d, 32, o, &mut n), CKR_OPERATION_ACTIVE);
        assert_eq!(r.f.C_DigestUpdate(h, d, 32), CKR_OPERATION_NOT_INITIALIZED);
    }
}

/// A mechanism that cannot perform a function is `CKR_MECHANISM_INVALID` for it before its
/// parameter is looked at (a parameter the mechanism would refuse anyway does not change that).
#[test]
fn mechanisms_that_cannot_do_a_function_are_invalid_whatever_their_parameter() {
    let r = RawLib::new();
    r.init();
    unsafe {
        let (h, k) = aes_key_session(&r, "mechinvalid");
        let mut junk = [0xffu8; 3];
        for mech in [CKM_RSA_PKCS_OAEP, CKM_SHA256_RSA_PKCS_PSS, CKM_AES_GCM, CKM_HKDF_DERIVE, 0x7fff_0000] {
            for (p, len) in [(null_mut(), 0), (junk.as_mut_ptr() as *mut c_void, 3)] {
                let mut m = CK_MECHANISM { mechanism: mech, pParameter: p, ulParameterLen: len };
                let what = format!("mechanism {mech:#x}, parameter length {len}");
                if mech != CKM_RSA_PKCS_OAEP && mech != CKM_AES_GCM {
                    assert_eq!(r.f.C_EncryptInit(h, &mut m, k), CKR_MECHANISM_INVALID, "encrypt, {what}");
                }
                if mech != CKM_SHA256_RSA_PKCS_PSS {
                    assert_eq!(r.f.C_SignInit(h, &mut m, k), CKR_MECHANISM_INVALID, "sign, {what}");
                    assert_eq!(r.f.C_VerifyInit(h, &mut m, k), CKR_MECHANISM_INVALID, "verify, {what}");
                }
                assert_eq!(r.f.C_DigestInit(h, &mut m), CKR_MECHANISM_INVALID, "digest, {what}");
                let mut out: CK_OBJECT_HANDLE = 0;
                if mech != CKM_HKDF_DERIVE {
                    let r2 = r.f.C_DeriveKey(h, &mut m, k, null_mut(), 0, &mut out);
                    assert_eq!(r2, CKR_MECHANISM_INVALID, "derive, {what}");
                }
                assert_eq!(r.f.C_GenerateKey(h, &mut m, null_mut(), 0, &mut out), CKR_MECHANISM_INVALID, "{what}");
            }
        }
        // Missing arguments come first, whatever the mechanism.
        let mut m = CK_MECHANISM { mechanism: 0x7fff_0000, pParameter: null_mut(), ulParameterLen: 0 };
        let mut out: CK_OBJECT_HANDLE = 0;
        assert_eq!(r.f.C_GenerateKey(h, &mut m, null_mut(), 3, &mut out), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_GenerateKey(h, &mut m, null_mut(), 0, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(r.f.C_DeriveKey(h, &mut m, k, null_mut(), 2, &mut out), CKR_ARGUMENTS_BAD);
        // A mechanism that can, with a parameter it cannot take, is a parameter error as before.
        let mut m =
            CK_MECHANISM { mechanism: CKM_AES_GCM, pParameter: junk.as_mut_ptr() as *mut c_void, ulParameterLen: 3 };
        assert_eq!(r.f.C_EncryptInit(h, &mut m, k), CKR_MECHANISM_PARAM_INVALID);
    }
}

#[test]
fn single_part_lengths_are_answered_before_the_work() {
    let r = RawLib::new();
    r.init();
    unsafe {
        let (h, k) = aes_key_session(&r, "lengths");
        let mut iv = [0u8; 16];
        let mut m =
            CK_MECHANISM { mechanism: CKM_AES_CBC_PAD, pParameter: iv.as_mut_ptr() as *mut c_void, ulParameterLen: 16 };
        assert_eq!(r.f.C_EncryptInit(h, &mut m, k), CKR_OK);
        let mut data = vec![0x42u8; 16 << 20];
        let n = data.len() as CK_ULONG;
        let mut len: CK_ULONG = 0;
        assert_eq!(r.f.C_Encrypt(h, data.as_mut_ptr(), n, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, n + 16, "padding adds a whole block");
        let mut small = [0u8; 10];
        let mut short: CK_ULONG = 10;
        assert_eq!(r.f.C_Encrypt(h, data.as_mut_ptr(), n, small.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL);
        assert_eq!(short, n + 16);
        let mut out = vec![0u8; len as usize];
        assert_eq!(r.f.C_Encrypt(h, data.as_mut_ptr(), n, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, n + 16);
        // Decryption: the length query gives an upper bound; the result is exact.
        assert_eq!(r.f.C_DecryptInit(h, &mut m, k), CKR_OK);
        let mut plen: CK_ULONG = 0;
        assert_eq!(r.f.C_Decrypt(h, out.as_mut_ptr(), len, null_mut(), &mut plen), CKR_OK);
        assert!(plen >= n);
        let mut back = vec![0u8; plen as usize];
        assert_eq!(r.f.C_Decrypt(h, out.as_mut_ptr(), len, back.as_mut_ptr(), &mut plen), CKR_OK);
        assert_eq!(plen, n);
        assert!(back[..n as usize] == data[..]);
    }
}

/// A session keeps the session keys it used (so that starting an operation takes no lock other
/// threads share); every change to such a key must still be seen at once: a changed usage
/// attribute, a destroyed key, a key whose owning session closed, a private key after logout.
#[test]
fn keys_a_session_used_follow_every_change() {
    let r = RawLib::new();
    r.init();
    let slot = r.token("key cache");
    unsafe {
        let (a, b) = (r.open(slot, true), r.open(slot, true));
        r.login(a, CKU_USER, USER_PIN).unwrap();
        let value = [7u8; 32];
        let (yes, no): (CK_BBOOL, CK_BBOOL) = (1, 0);
        let key = |private: &CK_BBOOL, owner| {
            let mut t = [
                attr(CKA_CLASS, &CKO_SECRET_KEY),
                attr(CKA_KEY_TYPE, &CKK_AES),
                bytes(CKA_VALUE, &value),
                attr(CKA_PRIVATE, private),
                attr(CKA_ENCRYPT, &yes),
            ];
            r.create(owner, &mut t).unwrap()
        };
        let mut iv = [0u8; 16];
        let mut m =
            CK_MECHANISM { mechanism: CKM_AES_CBC, pParameter: iv.as_mut_ptr() as *mut c_void, ulParameterLen: 16 };
        let mut encrypt = |h, k| {
            let rv = r.f.C_EncryptInit(h, &mut m, k);
            if rv == CKR_OK {
                let mut data = [1u8; 16];
                let mut out = [0u8; 16];
                let mut n: CK_ULONG = 16;
                assert_eq!(r.f.C_Encrypt(h, data.as_mut_ptr(), 16, out.as_mut_ptr(), &mut n), CKR_OK);
            }
            rv
        };

        // A changed usage attribute.
        let k = key(&no, a);
        assert_eq!(encrypt(b, k), CKR_OK);
        assert_eq!(encrypt(b, k), CKR_OK);
        let mut off = [attr(CKA_ENCRYPT, &no)];
        assert_eq!(r.f.C_SetAttributeValue(a, k, off.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(
            encrypt(b, k),
            CKR_KEY_FUNCTION_NOT_PERMITTED,
            "the change is seen by the session that used the key"
        );
        let mut on = [attr(CKA_ENCRYPT, &yes)];
        assert_eq!(r.f.C_SetAttributeValue(a, k, on.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(encrypt(b, k), CKR_OK);

        // Destroyed by another session.
        assert_eq!(r.f.C_DestroyObject(a, k), CKR_OK);
        assert_eq!(encrypt(b, k), CKR_KEY_HANDLE_INVALID, "a destroyed key");

        // Its owning session closed: session objects die with it.
        let c = r.open(slot, true);
        let k = key(&no, c);
        assert_eq!(encrypt(b, k), CKR_OK);
        assert_eq!(r.f.C_CloseSession(c), CKR_OK);
        assert_eq!(encrypt(b, k), CKR_KEY_HANDLE_INVALID, "a key whose session closed");

        // A private key after logout, and a public one still usable.
        let private = key(&yes, a);
        let public = key(&no, a);
        assert_eq!(encrypt(b, private), CKR_OK);
        assert_eq!(encrypt(b, public), CKR_OK);
        assert_eq!(r.f.C_Logout(a), CKR_OK);
        assert_eq!(encrypt(b, private), CKR_KEY_HANDLE_INVALID, "a private key after logout");
        assert_eq!(encrypt(b, public), CKR_OK, "a public session key stays usable");
        r.login(a, CKU_USER, USER_PIN).unwrap();
        assert_eq!(encrypt(b, private), CKR_KEY_HANDLE_INVALID, "private session objects were destroyed at logout");

        // More keys than the cache holds, used in turn.
        let keys: Vec<_> = (0..6).map(|_| key(&no, a)).collect();
        for _ in 0..2 {
            for k in &keys {
                assert_eq!(encrypt(b, *k), CKR_OK);
            }
        }
        assert_eq!(r.f.C_DestroyObject(a, keys[5]), CKR_OK);
        assert_eq!(encrypt(b, keys[5]), CKR_KEY_HANDLE_INVALID);
        assert_eq!(encrypt(b, keys[4]), CKR_OK);
    }
}

/// Lengths no buffer can have (past isize::MAX or the top of the address space) are the caller's
/// error: refused before anything is read or allocated, never by ending the process.
#[test]
fn impossible_lengths_are_refused() {
    let r = RawLib::new();
    r.init();
    unsafe {
        let (h, k) = aes_key_session(&r, "lengths2");
        let mut small = [0u8; 16];
        let gcm_init = |aad_len: CK_ULONG, iv_len: CK_ULONG| {
            let mut iv = [0u8; 12];
            let mut aad = [0u8; 16];
            let mut p = CK_GCM_PARAMS {
                pIv: iv.as_mut_ptr(),
                ulIvLen: iv_len,
                ulIvBits: 96,
                pAAD: aad.as_mut_ptr(),
                ulAADLen: aad_len,
                ulTagBits: 128,
            };
            let size = std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG;
            let mut m = CK_MECHANISM {
                mechanism: CKM_AES_GCM,
                pParameter: &mut p as *mut _ as *mut c_void,
                ulParameterLen: size,
            };
            r.f.C_EncryptInit(h, &mut m, k)
        };
        for len in [isize::MAX as CK_ULONG, 1 << 63, CK_ULONG::MAX] {
            // Inside a mechanism parameter: GCM's AAD and IV lengths.
            assert_eq!(gcm_init(len, 12), CKR_MECHANISM_PARAM_INVALID, "AAD length {len:#x}");
            assert_eq!(gcm_init(0, len), CKR_MECHANISM_PARAM_INVALID, "IV length {len:#x}");
            // As the data of a call (CBC: approved in both modes, unlike GCM with an application IV).
            let mut cbc_iv = [0u8; 16];
            let mut m = CK_MECHANISM {
                mechanism: CKM_AES_CBC_PAD,
                pParameter: cbc_iv.as_mut_ptr() as *mut c_void,
                ulParameterLen: 16,
            };
            assert_eq!(r.f.C_EncryptInit(h, &mut m, k), CKR_OK);
            let mut out = [0u8; 64];
            let mut n: CK_ULONG = 64;
            assert_eq!(
                r.f.C_Encrypt(h, small.as_mut_ptr(), len, out.as_mut_ptr(), &mut n),
                CKR_ARGUMENTS_BAD,
                "data length {len:#x}"
            );
            // Counts and lengths of the caller's own arrays and buffers.
            let mut a = CK_ATTRIBUTE { type_: CKA_LABEL, pValue: null_mut(), ulValueLen: 0 };
            assert_eq!(r.f.C_GetAttributeValue(h, k, &mut a, len), CKR_ARGUMENTS_BAD, "count {len:#x}");
            assert_eq!(r.f.C_GenerateRandom(h, small.as_mut_ptr(), len), CKR_ARGUMENTS_BAD, "random {len:#x}");
            // An output length no buffer can have is taken as "large enough".
            assert_eq!(r.f.C_EncryptInit(h, &mut m, k), CKR_OK);
            let mut n = len;
            assert_eq!(r.f.C_Encrypt(h, small.as_mut_ptr(), 16, out.as_mut_ptr(), &mut n), CKR_OK);
            assert_eq!(n, 32, "output length {len:#x}");
            // PBKDF2 with the older parameter struct, whose password length is a pointer: one that
            // cannot point into the address space is refused before it is read.
            let salt = [1u8; 16];
            let pw = *b"password";
            let mut p = CK_PKCS5_PBKD2_PARAMS2 {
                ulPasswordLen: len & !7,
                ..pbkd2_params(CKP_PKCS5_PBKD2_HMAC_SHA256, &pw, &salt, 1000)
            };
            let mut pm = CK_MECHANISM {
                mechanism: CKM_PKCS5_PBKD2,
                pParameter: &mut p as *mut _ as *mut c_void,
                ulParameterLen: std::mem::size_of::<CK_PKCS5_PBKD2_PARAMS2>() as CK_ULONG,
            };
            let mut tpl = [attr(CKA_CLASS, &CKO_SECRET_KEY), attr(CKA_KEY_TYPE, &CKK_GENERIC_SECRET)];
            let mut out_key: CK_OBJECT_HANDLE = 0;
            let rv = r.f.C_GenerateKey(h, &mut pm, tpl.as_mut_ptr(), 2, &mut out_key);
            assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID, "password length {len:#x}");
        }
        let mut a = CK_ATTRIBUTE { type_: CKA_LABEL, pValue: null_mut(), ulValueLen: 0 };
        assert_eq!(
            r.f.C_GetAttributeValue(h, k, &mut a, 1 << 40),
            CKR_ARGUMENTS_BAD,
            "more attributes than a template holds"
        );
    }
}
