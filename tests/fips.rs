//! The FIPS machinery through the real library: power-on self-tests and the error state (every
//! known-answer test and the integrity test failed on purpose through the test-only
//! `fault-injection` build), the integrity test against a modified library, approved-mode
//! refusals and indicators, and fork safety with a session busy in another thread.

use cryptoki_sys::*;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use tessera_tests::*;

/// The library built with the `fault-injection` feature (tests/run-all.sh builds it).
fn fault_module() -> Option<PathBuf> {
    let p = std::env::var_os("TESSERA_FAULT_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/libtessera_pkcs11.so"));
    if p.exists() {
        Some(p)
    } else {
        println!(
            "SKIP: no fault-injection build at {} (cargo build -p tessera-pkcs11 --features fault-injection)",
            p.display()
        );
        None
    }
}

/// The library at `path` on `env`'s store. These tests choose the mode through the
/// configuration file: `TESSERA_MODE` is removed now and (with `TESSERA_FAIL_SELFTEST`) when the
/// library is dropped.
fn open(path: &Path, env: Env) -> RawLib {
    let guard = lock();
    std::env::remove_var("TESSERA_MODE");
    let mut lib = RawLib::locked(guard, path, env);
    lib.unset_on_drop = &["TESSERA_FAIL_SELFTEST", "TESSERA_MODE"];
    lib
}

/// The flags of the first slot's token.
fn token_flags(lib: &RawLib) -> CK_FLAGS {
    let mut n: CK_ULONG = 8;
    let mut slots = [0; 8];
    assert_eq!(
        unsafe { lib.f.C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n) },
        CKR_OK,
        "C_GetSlotList works in any state"
    );
    lib.token_info(slots[0]).flags
}

/// Initialises a token through the library; returns the token's own, stable slot ID (the free
/// slot's ID works only in this process).
fn token(lib: &RawLib) -> CK_SLOT_ID {
    lib.token("");
    initialised_slot(&lib.f)
}

/// Every self-test the fault-injection build can fail, by the name it knows it by.
fn self_test_names() -> Vec<String> {
    let mut names = vec!["integrity".to_string(), "aws-lc".to_string()];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kat-vectors");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files.iter().filter(|p| p.extension().is_some_and(|x| x == "json")) {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        for t in v["vectors"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_string());
        }
    }
    names
}

fn integrity_value(lib: &Path) -> PathBuf {
    PathBuf::from(format!("{}.hmac", lib.display()))
}

#[test]
fn each_self_test_failure_reaches_the_error_state_and_reinitialisation_recovers() {
    let Some(path) = fault_module() else { return };
    seal(&path);
    let names = self_test_names();
    assert!(names.len() >= 21, "{names:?}");
    let lib = open(&path, Env::new(""));
    unsafe {
        assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK);
        let slot = token(&lib);
        assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
        for name in &names {
            std::env::set_var("TESSERA_FAIL_SELFTEST", name);
            assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK, "{name}: C_Initialize itself succeeds");
            let mut info = CK_INFO::default();
            assert_eq!(lib.f.C_GetInfo(&mut info), CKR_OK, "{name}: C_GetInfo works in the error state");
            assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "{name}: CKF_ERROR_STATE");
            let mut h = 0;
            assert_eq!(
                lib.f.C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h),
                CKR_GENERAL_ERROR,
                "{name}"
            );
            let mut buf = [0u8; 4];
            assert_eq!(lib.f.C_GenerateRandom(1, buf.as_mut_ptr(), 4), CKR_GENERAL_ERROR, "{name}");
            assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK, "{name}: C_Finalize works in the error state");
            std::env::remove_var("TESSERA_FAIL_SELFTEST");
            assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK);
            assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0, "{name}: a new C_Initialize re-runs the self-tests");
            assert_eq!(lib.f.C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);
            assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
        }
    }
}

#[test]
fn a_modified_library_fails_its_integrity_test() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libtessera_pkcs11.so");
    std::fs::copy(module_path(), &copy).unwrap();
    // Sealed and intact: operational, in both modes.
    seal(&copy);
    {
        let lib = open(&copy, Env::new("tessera.mode = approved"));
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
        assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0);
    }
    // One byte changed in a string the module never reads (in a new file: the first copy stays
    // mapped in this process).
    let mut bytes = std::fs::read(&copy).unwrap();
    let at = bytes.windows(26).position(|w| w == b"Tessera HSM, approved mode").expect("marker string");
    bytes[at] = b't';
    let modified = dir.path().join("modified").join("libtessera_pkcs11.so");
    std::fs::create_dir_all(modified.parent().unwrap()).unwrap();
    std::fs::write(&modified, &bytes).unwrap();
    std::fs::copy(crate::integrity_value(&copy), crate::integrity_value(&modified)).unwrap();
    let lib = open(&modified, Env::new(""));
    assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
    assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "a modified library must enter the error state");
    let mut h = 0;
    assert_eq!(unsafe { lib.f.C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut h) }, CKR_GENERAL_ERROR);
}

#[test]
fn approved_mode_needs_a_sealed_library() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libtessera_pkcs11.so");
    std::fs::copy(module_path(), &copy).unwrap();
    {
        let lib = open(&copy, Env::new(""));
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
        assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0, "non-approved mode runs unsealed");
    }
    let lib = open(&copy, Env::new("tessera.mode = approved"));
    assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
    assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "approved mode refuses an unsealed library");
}

#[test]
fn power_on_self_tests_are_fast() {
    let lib = open(&module_path(), Env::new(""));
    let mut best = std::time::Duration::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
        best = best.min(t.elapsed());
        assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
    }
    println!("C_Initialize with power-on self-tests: best of 5 = {} µs", best.as_micros());
    assert!(best < std::time::Duration::from_millis(500), "POST took {best:?}");
}

#[test]
fn mode_is_visible_and_indicators_follow_the_policy() {
    for (mode, approved) in [("approved", true), ("non-approved", false)] {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("libtessera_pkcs11.so");
        std::fs::copy(module_path(), &copy).unwrap();
        seal(&copy);
        let lib = open(&copy, Env::new(&format!("tessera.mode = {mode}")));
        unsafe {
            assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK);
            let mut info = CK_INFO::default();
            assert_eq!(lib.f.C_GetInfo(&mut info), CKR_OK);
            let desc = String::from_utf8_lossy(&info.libraryDescription).to_string();
            assert!(desc.contains(if approved { "approved mode" } else { "non-approved mode" }), "{desc}");
            let slot = token(&lib);
            let mut ti = CK_TOKEN_INFO::default();
            assert_eq!(lib.f.C_GetTokenInfo(slot, &mut ti), CKR_OK);
            assert_eq!(String::from_utf8_lossy(&ti.model).contains("approved"), approved);
            let mut h = 0;
            assert_eq!(
                lib.f.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, &mut h),
                CKR_OK
            );
            let mut flags: CK_FLAGS = 99;
            assert_eq!(lib.f.C_GetSessionValidationFlags(h, CKS_LAST_VALIDATION_OK, &mut flags), CKR_OK);
            assert_eq!(flags, 0, "no operation yet");
            assert_eq!(lib.f.C_GetSessionValidationFlags(h, 77, &mut flags), CKR_ARGUMENTS_BAD);
            let mut m = CK_MECHANISM { mechanism: CKM_SHA256, pParameter: null_mut(), ulParameterLen: 0 };
            assert_eq!(lib.f.C_DigestInit(h, &mut m), CKR_OK);
            assert_eq!(lib.f.C_GetSessionValidationFlags(h, CKS_LAST_VALIDATION_OK, &mut flags), CKR_OK);
            assert_eq!(flags, 1, "SHA-256 is approved");
            // A key created from approved material carries both key indicators.
            assert_eq!(lib.f.C_Login(h, CKU_USER, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as CK_ULONG), CKR_OK);
            let (class, kt, value) = (CKO_SECRET_KEY, CKK_AES, [5u8; 32]);
            let mut t = [
                CK_ATTRIBUTE { type_: CKA_CLASS, pValue: &class as *const _ as *mut _, ulValueLen: 8 },
                CK_ATTRIBUTE { type_: CKA_KEY_TYPE, pValue: &kt as *const _ as *mut _, ulValueLen: 8 },
                CK_ATTRIBUTE { type_: CKA_VALUE, pValue: value.as_ptr() as *mut _, ulValueLen: 32 },
            ];
            let mut o = 0;
            assert_eq!(lib.f.C_CreateObject(h, t.as_mut_ptr(), 3, &mut o), CKR_OK);
            let (mut fips, mut vflags): (CK_BBOOL, CK_ULONG) = (9, 9);
            let mut q = [
                CK_ATTRIBUTE { type_: CKA_VENDOR_DEFINED | 1, pValue: &mut fips as *mut _ as *mut _, ulValueLen: 1 },
                CK_ATTRIBUTE {
                    type_: CKA_OBJECT_VALIDATION_FLAGS,
                    pValue: &mut vflags as *mut _ as *mut _,
                    ulValueLen: 8,
                },
            ];
            assert_eq!(lib.f.C_GetAttributeValue(h, o, q.as_mut_ptr(), 2), CKR_OK);
            assert_eq!((fips, vflags), (CK_TRUE, 1));
            let short = [5u8; 16];
            let mut t2 = [
                CK_ATTRIBUTE { type_: CKA_CLASS, pValue: &class as *const _ as *mut _, ulValueLen: 8 },
                CK_ATTRIBUTE { type_: CKA_KEY_TYPE, pValue: &CKK_GENERIC_SECRET as *const _ as *mut _, ulValueLen: 8 },
                CK_ATTRIBUTE { type_: CKA_VALUE, pValue: short.as_ptr() as *mut _, ulValueLen: 8 },
            ];
            assert_eq!(lib.f.C_CreateObject(h, t2.as_mut_ptr(), 3, &mut o), CKR_OK);
            assert_eq!(lib.f.C_GetAttributeValue(h, o, q.as_mut_ptr(), 2), CKR_OK);
            assert_eq!((fips, vflags), (CK_FALSE, 0), "a 64-bit secret is not approved");
        }
    }
}

/// A child forked while another thread of the parent is in the middle of a multi-part operation
/// starts from nothing: not initialised, then a fresh module with no parent session, and the
/// parent's operation goes on undisturbed.
#[test]
fn fork_while_another_thread_is_mid_operation() {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let lib = open(&module_path(), Env::new(""));
    let f = &lib.f;
    unsafe {
        assert_eq!(f.C_Initialize(null_mut()), CKR_OK);
        let slot = token(&lib);
        let mut h = 0;
        assert_eq!(f.C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);
        let mut m = CK_MECHANISM { mechanism: CKM_SHA256, pParameter: null_mut(), ulParameterLen: 0 };
        assert_eq!(f.C_DigestInit(h, &mut m), CKR_OK);
        let stop = Arc::new(AtomicBool::new(false));
        let updates = std::thread::scope(|scope| {
            let stop2 = stop.clone();
            let worker = scope.spawn(move || {
                let mut n = 0u64;
                let mut data = [7u8; 4096];
                while !stop2.load(Ordering::Relaxed) {
                    assert_eq!(f.C_DigestUpdate(h, data.as_mut_ptr(), 4096), CKR_OK);
                    n += 1;
                }
                n
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            for _ in 0..5 {
                match fork().expect("fork") {
                    ForkResult::Child => {
                        let mut info = CK_INFO::default();
                        let mut si = CK_SESSION_INFO::default();
                        let ok = f.C_GetInfo(&mut info) == CKR_CRYPTOKI_NOT_INITIALIZED
                            && f.C_DigestUpdate(h, null_mut(), 0) == CKR_CRYPTOKI_NOT_INITIALIZED
                            && f.C_Initialize(null_mut()) == CKR_OK
                            && f.C_GetSessionInfo(h, &mut si) == CKR_SESSION_HANDLE_INVALID
                            && f.C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut si.slotID) == CKR_OK
                            && f.C_Finalize(null_mut()) == CKR_OK;
                        libc_exit(if ok { 0 } else { 1 });
                    }
                    ForkResult::Parent { child } => {
                        assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0), "child checks");
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            worker.join().unwrap()
        });
        assert!(updates > 0);
        let mut out = [0u8; 32];
        let mut len: CK_ULONG = 32;
        assert_eq!(f.C_DigestFinal(h, out.as_mut_ptr(), &mut len), CKR_OK, "the parent's operation completes");
    }
}

extern "C" {
    #[link_name = "_exit"]
    fn libc_exit(code: i32) -> !;
}

/// The 3.2 validation object describes the module; its flag is the one the indicators report.
#[test]
fn validation_object_describes_the_module() {
    let lib = open(&module_path(), Env::new(""));
    unsafe {
        assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK);
        let slot = token(&lib);
        let mut h = 0;
        assert_eq!(lib.f.C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);
        let class = CKO_VALIDATION;
        let mut t = [CK_ATTRIBUTE { type_: CKA_CLASS, pValue: &class as *const _ as *mut _, ulValueLen: 8 }];
        assert_eq!(lib.f.C_FindObjectsInit(h, t.as_mut_ptr(), 1), CKR_OK);
        let mut o = [0; 4];
        let mut n = 0;
        assert_eq!(lib.f.C_FindObjects(h, o.as_mut_ptr(), 4, &mut n), CKR_OK);
        assert_eq!(lib.f.C_FindObjectsFinal(h), CKR_OK);
        assert_eq!(n, 1, "one validation object");
        let (mut flag, mut authority, mut vtype): (CK_ULONG, CK_ULONG, CK_ULONG) = (0, 0, 0);
        let mut q = [
            CK_ATTRIBUTE { type_: CKA_VALIDATION_FLAG, pValue: &mut flag as *mut _ as *mut _, ulValueLen: 8 },
            CK_ATTRIBUTE {
                type_: CKA_VALIDATION_AUTHORITY_TYPE,
                pValue: &mut authority as *mut _ as *mut _,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE { type_: CKA_VALIDATION_TYPE, pValue: &mut vtype as *mut _ as *mut _, ulValueLen: 8 },
        ];
        assert_eq!(lib.f.C_GetAttributeValue(h, o[0], q.as_mut_ptr(), 3), CKR_OK);
        assert_eq!((flag, authority, vtype), (1, CKV_AUTHORITY_TYPE_NIST_CMVP, CKV_TYPE_SOFTWARE));
        assert_eq!(lib.f.C_DestroyObject(h, o[0]), CKR_SESSION_READ_ONLY);
        let mut label = [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: b"x".as_ptr() as *mut _, ulValueLen: 1 }];
        assert_ne!(lib.f.C_SetAttributeValue(h, o[0], label.as_mut_ptr(), 1), CKR_OK);
        // An unfiltered search lists the application's objects only.
        assert_eq!(lib.f.C_FindObjectsInit(h, null_mut(), 0), CKR_OK);
        assert_eq!(lib.f.C_FindObjects(h, o.as_mut_ptr(), 4, &mut n), CKR_OK);
        assert_eq!(n, 0);
        assert_eq!(lib.f.C_FindObjectsFinal(h), CKR_OK);
    }
}

/// A pairwise-consistency failure on key-pair generation (made to fail through the test-only
/// build) puts the module in the error state; a new C_Initialize recovers. Both forms of the test
/// are covered: sign and verify (a P-256 pair that may sign), and the public key the private key
/// implies (a P-256 pair for key agreement only, and an X25519 pair).
#[test]
fn pairwise_consistency_failure_reaches_the_error_state() {
    let Some(path) = fault_module() else { return };
    seal(&path);
    let lib = open(&path, Env::new(""));
    let no: CK_BBOOL = 0;
    let cases: [(&str, CK_MECHANISM_TYPE, &[u8], bool); 3] = [
        ("P-256, signing", CKM_EC_KEY_PAIR_GEN, P256, false),
        ("P-256, key agreement only", CKM_EC_KEY_PAIR_GEN, P256, true),
        ("X25519", CKM_EC_MONTGOMERY_KEY_PAIR_GEN, X25519, true),
    ];
    for (what, mech, params, agreement_only) in cases {
        unsafe {
            std::env::set_var("TESSERA_FAIL_SELFTEST", "pct");
            assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK, "the power-on self-tests do not include the PCT");
            let slot = token(&lib);
            assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0);
            let mut h = 0;
            let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
            assert_eq!(lib.f.C_OpenSession(slot, flags, null_mut(), None, &mut h), CKR_OK);
            assert_eq!(lib.f.C_Login(h, CKU_USER, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as CK_ULONG), CKR_OK);
            let len = params.len() as CK_ULONG;
            let mut pubt = [CK_ATTRIBUTE { type_: CKA_EC_PARAMS, pValue: params.as_ptr() as *mut _, ulValueLen: len }];
            let mut privt = [CK_ATTRIBUTE { type_: CKA_SIGN, pValue: &no as *const _ as *mut _, ulValueLen: 1 }];
            let n_priv = if agreement_only { 1 } else { 0 };
            let mut m = CK_MECHANISM { mechanism: mech, pParameter: null_mut(), ulParameterLen: 0 };
            let (mut p, mut v) = (0, 0);
            let rv =
                lib.f.C_GenerateKeyPair(h, &mut m, pubt.as_mut_ptr(), 1, privt.as_mut_ptr(), n_priv, &mut p, &mut v);
            assert_eq!(rv, CKR_GENERAL_ERROR, "{what}: a failed pairwise-consistency test");
            assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "{what}: the module is in the error state");
            let mut buf = [0u8; 4];
            assert_eq!(lib.f.C_GenerateRandom(h, buf.as_mut_ptr(), 4), CKR_GENERAL_ERROR);
            assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
            std::env::remove_var("TESSERA_FAIL_SELFTEST");
            assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK);
            assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0, "{what}: re-initialisation recovers");
            // Healthy, the same generation succeeds.
            let mut h = 0;
            assert_eq!(lib.f.C_OpenSession(slot, flags, null_mut(), None, &mut h), CKR_OK);
            assert_eq!(lib.f.C_Login(h, CKU_USER, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as CK_ULONG), CKR_OK);
            let rv =
                lib.f.C_GenerateKeyPair(h, &mut m, pubt.as_mut_ptr(), 1, privt.as_mut_ptr(), n_priv, &mut p, &mut v);
            assert_eq!(rv, CKR_OK, "{what}: generation with a healthy module");
            assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
        }
    }
}
