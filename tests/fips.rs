//! The FIPS machinery through the real library: power-on self-tests and the error state (every
//! known-answer test and the integrity test failed on purpose through the test-only
//! `fault-injection` build), the integrity test against a modified library, approved-mode
//! refusals and indicators, and fork safety with a session busy in another thread; the vendor
//! interface "Vendor Tessera" through the raw C ABI (status, self-tests on demand while other
//! threads work, deleting a token) and `tessera-util --status`/`--self-test` on top of it.

use cryptoki_sys::*;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use tessera_tests::*;

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
    // The integrity test, aws-lc's self-tests, then the vectors' tests (the integrity test's own
    // known-answer test, run before every integrity test, among them: GMAC-AES-256 and a longer
    // AES-256-GCM vector).
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

/// Each self-test failed on purpose at `C_Initialize` puts the module in the error state, and the
/// next `C_Initialize` without the fault runs every test again and leaves it. Each failure is tried
/// in a process of its own (a `fork()` child): the algorithm self-tests run at the first
/// `C_Initialize` of a process and are reused by later ones (security-policy.md §10.1), and a
/// process made by `fork()` runs them again.
#[test]
fn each_self_test_failure_reaches_the_error_state_and_reinitialisation_recovers() {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    let Some(path) = fault_module() else { return };
    seal(&path);
    let names = self_test_names();
    // The integrity test, aws-lc's self-tests and the 50 vectors of `kat-vectors/`.
    assert!(names.len() >= 52, "{names:?}");
    let lib = open(&path, Env::new(""));
    let v = vendor(&lib);
    unsafe {
        assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK);
        let slot = token(&lib);
        assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
        // aws-lc's own self-tests run on demand only (`T_SelfTest`; see
        // `on_demand_self_test_failures_reach_the_error_state`): at power-on, Tessera's KATs cover
        // every approved algorithm. Their fault leaves `C_Initialize` operational.
        for name in names.iter().filter(|n| *n != "aws-lc") {
            let check = || {
                std::env::set_var("TESSERA_FAIL_SELFTEST", name);
                assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK, "{name}: C_Initialize itself succeeds");
                let mut info = CK_INFO::default();
                assert_eq!(lib.f.C_GetInfo(&mut info), CKR_OK, "{name}: C_GetInfo works in the error state");
                assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "{name}: CKF_ERROR_STATE");
                // The test that failed is the one asked for: the fault reached that test, not another.
                let st = v.status();
                let reason = st["error"].as_str().unwrap_or_default();
                assert!(reason.ends_with(name.as_str()) || reason.contains(&format!("{name} ")), "{name}: {st}");
                let listed = st["self_tests"]["power_on"]["tests"].as_array().cloned().unwrap_or_default();
                let failed: Vec<&str> =
                    listed.iter().filter(|t| t["passed"] == false).filter_map(|t| t["name"].as_str()).collect();
                assert!(failed.len() == 1 && failed[0].contains(name.as_str()), "{name}: only it fails: {failed:?}");
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
                let st = v.status();
                assert_eq!(st["self_tests"]["power_on"]["algorithm_tests"], "run", "{name}: all of them: {st}");
                assert_eq!(lib.f.C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);
                assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
            };
            match fork().expect("fork") {
                ForkResult::Child => {
                    // A failed assertion ends the child with status 1 (its message on stderr).
                    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).is_ok();
                    libc_exit(if ok { 0 } else { 1 });
                }
                ForkResult::Parent { child } => {
                    assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0), "{name}: see above");
                }
            }
        }
    }
}

/// The algorithm self-tests run at the first `C_Initialize` of a process and again only after a
/// failure (or on demand); the integrity test, and the known-answer test of its HMAC before it,
/// run at every `C_Initialize`. A fresh copy of the fault-injection library, so that this process
/// has not run its tests yet.
#[test]
fn algorithm_self_tests_run_once_per_process_and_again_after_a_failure() {
    let Some(fault) = fault_module() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libtessera_pkcs11.so");
    std::fs::copy(&fault, &path).unwrap();
    seal(&path);
    let lib = open(&path, Env::new(""));
    let v = vendor(&lib);
    let post = |what: &str| {
        let st = v.status();
        let post = st["self_tests"]["power_on"].clone();
        println!("{what}: {post}");
        (st, post)
    };
    let init_with_fault = |fault: Option<&str>| {
        match fault {
            Some(f) => std::env::set_var("TESSERA_FAIL_SELFTEST", f),
            None => std::env::remove_var("TESSERA_FAIL_SELFTEST"),
        }
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
        std::env::remove_var("TESSERA_FAIL_SELFTEST");
    };
    let finalize = || assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);

    init_with_fault(None);
    let (st, first) = post("first");
    assert_eq!(st["state"], "operational", "{st}");
    assert_eq!(first["algorithm_tests"], "run", "{st}");
    assert!(first["phases"].as_array().unwrap().iter().all(|p| p["reused"] == false), "{st}");
    finalize();

    // A later C_Initialize: the integrity test runs (its value is computed again), the algorithm
    // self-tests are those that passed; a fault in one of them now goes unseen, since it does not run.
    init_with_fault(Some("SHA-256"));
    let (st, again) = post("again");
    assert_eq!(st["state"], "operational", "{st}");
    assert_eq!(again["algorithm_tests"], "passed earlier in this process", "{st}");
    assert_eq!(st["integrity"]["result"], "verified", "{st}");
    let phases = again["phases"].as_array().unwrap();
    assert_eq!(phases[0]["name"], "integrity");
    assert_eq!(phases[0]["reused"], false, "{st}");
    assert!(phases[1..].iter().all(|p| p["reused"] == true), "{st}");
    assert_eq!(again["tests"].as_array().unwrap().len(), first["tests"].as_array().unwrap().len(), "{st}");
    finalize();

    // The integrity test and its algorithm's known-answer test still run at every C_Initialize.
    for fault in ["integrity", "GMAC-AES-256", "AES-256-GCM, 513 bytes of additional data"] {
        init_with_fault(Some(fault));
        let (st, _) = post(fault);
        assert_eq!(st["state"], "error", "{fault}: {st}");
        finalize();
        // After a failure every test runs again.
        init_with_fault(None);
        let (st, p) = post("after the failure");
        assert_eq!(st["state"], "operational", "{st}");
        assert_eq!(p["algorithm_tests"], "run", "{fault}: every test again after a failure: {st}");
        finalize();
    }

    // On demand, every test runs, whatever ran before.
    init_with_fault(None);
    std::env::set_var("TESSERA_FAIL_SELFTEST", "SHA-256");
    assert_eq!(v.self_test(), CKR_GENERAL_ERROR, "T_SelfTest runs the known-answer tests");
    std::env::remove_var("TESSERA_FAIL_SELFTEST");
    finalize();
    init_with_fault(None);
    let (st, p) = post("after the on-demand failure");
    assert_eq!(p["algorithm_tests"], "run", "{st}");
    finalize();
}

/// The first error state a library's vendor status reports, with the module's state.
fn error_of(lib: &RawLib) -> String {
    vendor(lib).status()["error"].as_str().unwrap_or_default().to_string()
}

/// Bytes changed before the library is loaded: one byte at a time, in a fresh copy each (a file
/// loaded once stays mapped in this process), at the seal region's two neighbours, in a string the
/// module never reads while it starts, and in the middle of the file. Every one is caught at
/// `C_Initialize`, in both modes (a library that does not match its value is refused whatever the
/// mode); the intact copy starts in the approved mode.
#[test]
fn a_modified_library_fails_its_integrity_test() {
    let dir = tempfile::tempdir().unwrap();
    let copy = sealed_copy(dir.path());
    {
        let lib = open(&copy, Env::new("tessera.mode = approved"));
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
        assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0, "sealed and intact: operational");
    }
    let bytes = std::fs::read(&copy).unwrap();
    let region = seal_region(&bytes);
    let marker = b"Tessera, approved mode, unsealed";
    let string = bytes.windows(marker.len()).position(|w| w == marker).expect("marker string");
    let positions = [("before the region", region.start - 1), ("after the region", region.end), ("a string", string)];
    for (n, (what, at)) in positions.into_iter().enumerate() {
        for mode in ["approved", "non-approved"] {
            let mut m = bytes.clone();
            m[at] ^= 0x20;
            let modified = dir.path().join(format!("{n}-{mode}")).join("libtessera_pkcs11.so");
            std::fs::create_dir_all(modified.parent().unwrap()).unwrap();
            std::fs::write(&modified, &m).unwrap();
            let lib = open(&modified, Env::new(&format!("tessera.mode = {mode}")));
            assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK, "{what}");
            assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "{what} (byte {at}), {mode}: the error state");
            let e = error_of(&lib);
            assert!(e.contains("does not match the integrity value sealed into it"), "{what}: {e}");
            let mut h = 0;
            let rv = unsafe { lib.f.C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut h) };
            assert_eq!(rv, CKR_GENERAL_ERROR, "{what}");
        }
    }
}

/// Bytes the loader does not use after loading (the ELF header's first byte, the section table's
/// last byte, a byte in the middle of the file's non-loaded part) changed in place in the loaded
/// library: the integrity test on demand catches each, and the library restored passes again after
/// a new `C_Initialize`.
#[test]
fn a_changed_first_or_last_byte_is_caught() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let copy = sealed_copy(dir.path());
    let bytes = std::fs::read(&copy).unwrap();
    let len = bytes.len();
    let lib = open(&copy, Env::new("tessera.mode = approved"));
    lib.init();
    let v = vendor(&lib);
    assert_eq!(v.self_test(), CKR_OK);
    let f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    for at in [0, 1, len - 2, len - 1] {
        f.write_all_at(&[bytes[at] ^ 0x01], at as u64).unwrap();
        assert_eq!(v.self_test(), CKR_GENERAL_ERROR, "byte {at} of {len} changed");
        // A header byte the ELF parser needs makes the region unfindable (unreadable); any other
        // a mismatch: a failure either way.
        let st = v.status();
        let r = st["integrity"]["result"].as_str().unwrap_or_default().to_string();
        assert!(r == "mismatch" || (at < 16 && r == "unreadable"), "byte {at}: {st}");
        assert_eq!(st["state"], "error", "byte {at}: {st}");
        f.write_all_at(&[bytes[at]], at as u64).unwrap();
        assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
        assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0, "byte {at} restored: operational again");
    }
}

/// The integrity value is inside the library: a sealed library loaded through a symbolic link
/// (as system layouts install a module: `pkcs11/libtessera_pkcs11.so` -> `libtessera_pkcs11.so.0`),
/// a copy in another directory and a renamed copy all start in the approved mode, and report the
/// file they were loaded from (the link resolved).
#[test]
fn a_sealed_library_starts_through_a_link_a_copy_and_a_rename() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    let sealed = sealed_copy(&dir_path);
    let value = sealed_value(&sealed).expect("sealed");
    let so0 = dir_path.join("libtessera_pkcs11.so.0");
    std::fs::rename(&sealed, &so0).unwrap();
    let pkcs11 = dir_path.join("pkcs11");
    std::fs::create_dir(&pkcs11).unwrap();
    let link = pkcs11.join("libtessera_pkcs11.so");
    std::os::unix::fs::symlink("../libtessera_pkcs11.so.0", &link).unwrap();
    let other = dir_path.join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let copied = other.join("libtessera_pkcs11.so");
    std::fs::copy(&so0, &copied).unwrap();
    let renamed = other.join("libp11-renamed.so");
    std::fs::copy(&so0, &renamed).unwrap();
    for (what, path, file) in
        [("a link", &link, &so0), ("a copy", &copied, &copied), ("a renamed copy", &renamed, &renamed)]
    {
        let lib = open(path, Env::new("tessera.mode = approved"));
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK, "{what}");
        let st = vendor(&lib).status();
        assert_eq!(st["state"], "operational", "{what}: {st}");
        assert_eq!(st["mode"], "approved", "{what}");
        assert_eq!(st["integrity"]["result"], "verified", "{what}: {st}");
        assert_eq!(st["integrity"]["recorded"].as_str(), Some(value.as_str()), "{what}");
        assert_eq!(st["library"]["path"].as_str(), file.to_str(), "{what}: the file loaded");
        let mut info = CK_INFO::default();
        assert_eq!(unsafe { lib.f.C_GetInfo(&mut info) }, CKR_OK);
        let desc = String::from_utf8_lossy(&info.libraryDescription).trim_end().to_string();
        assert_eq!(desc, "Tessera, approved mode, sealed", "{what}");
    }
    assert!(
        !dir_path.read_dir().unwrap().flatten().any(|e| e.file_name().to_string_lossy().contains("hmac")),
        "no side file"
    );
}

/// An unsealed build: the non-approved mode runs it (and says it is unsealed); the approved mode
/// refuses it with the error state and a message that names the command to run, with the path.
#[test]
fn approved_mode_needs_a_sealed_library() {
    let dir = tempfile::tempdir().unwrap();
    let copy = std::fs::canonicalize(dir.path()).unwrap().join("libtessera_pkcs11.so");
    write_unsealed(&module_path(), &copy);
    let desc = |lib: &RawLib| {
        let mut info = CK_INFO::default();
        assert_eq!(unsafe { lib.f.C_GetInfo(&mut info) }, CKR_OK);
        String::from_utf8_lossy(&info.libraryDescription).trim_end().to_string()
    };
    {
        let lib = open(&copy, Env::new(""));
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
        assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0, "non-approved mode runs unsealed");
        assert_eq!(desc(&lib), "Tessera, non-approved, unsealed");
        assert_eq!(vendor(&lib).status()["integrity"]["sealed"], false);
    }
    let lib = open(&copy, Env::new("tessera.mode = approved"));
    assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
    assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "approved mode refuses an unsealed library");
    assert_eq!(desc(&lib), "Tessera, approved mode, unsealed");
    let e = error_of(&lib);
    assert!(e.contains("the library is not sealed"), "{e}");
    assert!(e.ends_with(&format!("seal it with: tessera-util --seal {}", copy.display())), "{e}");
}

/// The self-tests run one after the other on the calling thread: an application that forbids the
/// library threads (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`) gets every test, the whole run lasting
/// at least as long as its phases together, and the value an application without the flag gets.
#[test]
fn self_tests_run_in_one_thread_when_the_application_forbids_threads() {
    let dir = tempfile::tempdir().unwrap();
    let copy = sealed_copy(dir.path());
    let lib = open(&copy, Env::new("tessera.mode = approved"));
    let mut args =
        CK_C_INITIALIZE_ARGS { flags: CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS, ..Default::default() };
    assert_eq!(unsafe { lib.f.C_Initialize(&mut args as *mut _ as *mut std::ffi::c_void) }, CKR_OK);
    let st = vendor(&lib).status();
    assert_eq!(st["state"], "operational", "{st}");
    assert_eq!(st["integrity"]["result"], "verified", "{st}");
    let post = &st["self_tests"]["power_on"];
    assert_eq!(post["algorithm_tests"], "run", "a fresh copy runs them all: {post}");
    let phases: u64 = post["phases"].as_array().unwrap().iter().map(|p| p["elapsed_us"].as_u64().unwrap()).sum();
    assert!(post["elapsed_us"].as_u64().unwrap() >= phases, "one after the other: {post}");
    // The value computed is the value sealed, and the value a copy computes without the flag.
    let value = sealed_value(&copy).expect("sealed");
    assert_eq!(st["integrity"]["value"].as_str(), Some(value.as_str()), "{st}");
    drop(lib);
    let threaded = dir.path().join("threaded");
    std::fs::create_dir(&threaded).unwrap();
    let other = threaded.join("libtessera_pkcs11.so");
    std::fs::copy(&copy, &other).unwrap();
    let lib2 = open(&other, Env::new("tessera.mode = approved"));
    assert_eq!(unsafe { lib2.f.C_Initialize(null_mut()) }, CKR_OK);
    let st2 = vendor(&lib2).status();
    assert_eq!(st2["integrity"]["result"], "verified", "{st2}");
    assert_eq!(st2["integrity"]["value"], st["integrity"]["value"], "{st2}");
}

/// A library sealed in an earlier integrity-value format (sealed flags 1 to 3: HMAC-SHA-256 over
/// the whole file, over its two halves' SHA-256, over its 256 KiB pieces' SHA-256) is refused in
/// both modes, with a message that says to seal it again; sealed again with `tessera-util --seal`,
/// it starts in the approved mode.
#[test]
fn a_library_sealed_in_the_earlier_format_is_refused_until_sealed_again() {
    for flag in [1u8, 2, 3] {
        earlier_format_refused(flag);
    }
}

fn earlier_format_refused(flag: u8) {
    let dir = tempfile::tempdir().unwrap();
    let copy = sealed_copy(dir.path());
    let mut bytes = std::fs::read(&copy).unwrap();
    let region = seal_region(&bytes);
    assert_eq!(bytes[region.start + 16], 4, "this format's sealed flag");
    bytes[region.start + 16] = flag;
    // An HMAC-SHA-256 value in the region's last 32 bytes, where those formats kept it.
    bytes[region.start + 20..region.start + 32].fill(0);
    bytes[region.start + 32..region.end].fill(0x77);
    for mode in ["approved", "non-approved"] {
        let old = dir.path().join(mode).join("libtessera_pkcs11.so");
        std::fs::create_dir_all(old.parent().unwrap()).unwrap();
        std::fs::write(&old, &bytes).unwrap();
        let lib = open(&old, Env::new(&format!("tessera.mode = {mode}")));
        assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
        assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "{mode}: the error state");
        let e = error_of(&lib);
        assert!(e.contains("earlier integrity-value format") && e.contains("tessera-util --seal"), "{mode}: {e}");
    }
    let resealed = dir.path().join("resealed").join("libtessera_pkcs11.so");
    std::fs::create_dir_all(resealed.parent().unwrap()).unwrap();
    std::fs::write(&resealed, &bytes).unwrap();
    seal(&resealed);
    let value = sealed_value(&resealed).expect("sealed again: this format's flag");
    assert_ne!(Some(value), sealed_value(&copy), "sealed again under a fresh IV");
    let lib = open(&resealed, Env::new("tessera.mode = approved"));
    assert_eq!(unsafe { lib.f.C_Initialize(null_mut()) }, CKR_OK);
    assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0, "sealed again: operational");
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
            let want = if approved { "Tessera, approved mode, sealed" } else { "Tessera, non-approved, sealed" };
            assert_eq!(desc.trim_end(), want);
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
            assert_eq!(lib.login(h, CKU_USER, USER_PIN), Ok(()));
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
            assert_eq!(lib.login(h, CKU_USER, USER_PIN), Ok(()));
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
            assert_eq!(lib.login(h, CKU_USER, USER_PIN), Ok(()));
            let rv =
                lib.f.C_GenerateKeyPair(h, &mut m, pubt.as_mut_ptr(), 1, privt.as_mut_ptr(), n_priv, &mut p, &mut v);
            assert_eq!(rv, CKR_OK, "{what}: generation with a healthy module");
            assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The vendor interface "Vendor Tessera" 1.0 through the raw C ABI
// ---------------------------------------------------------------------------------------------

/// The vendor interface's function list, laid out as docs/vendor-interface.md's C declaration.
#[repr(C)]
struct TesseraFunctionList {
    version: CK_VERSION,
    get_status: Option<unsafe extern "C" fn(*mut CK_UTF8CHAR, *mut CK_ULONG) -> CK_RV>,
    self_test: Option<unsafe extern "C" fn() -> CK_RV>,
    delete_token: Option<unsafe extern "C" fn(CK_SLOT_ID) -> CK_RV>,
    init_test_token: Option<unsafe extern "C" fn(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR) -> CK_RV>,
    backup_token_1_2:
        Option<unsafe extern "C" fn(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR, *mut CK_ULONG) -> CK_RV>,
    #[allow(clippy::type_complexity)]
    restore_token: Option<
        unsafe extern "C" fn(
            *mut CK_UTF8CHAR,
            CK_ULONG,
            *mut CK_UTF8CHAR,
            CK_ULONG,
            *mut CK_UTF8CHAR,
            CK_FLAGS,
            *mut CK_UTF8CHAR,
            *mut CK_ULONG,
        ) -> CK_RV,
    >,
    #[allow(clippy::type_complexity)]
    backup_token: Option<
        unsafe extern "C" fn(
            CK_SLOT_ID,
            *mut CK_UTF8CHAR,
            CK_ULONG,
            *mut CK_UTF8CHAR,
            CK_ULONG,
            *mut CK_UTF8CHAR,
            *mut CK_ULONG,
        ) -> CK_RV,
    >,
}

impl TesseraFunctionList {
    fn get_status(&self, p: *mut u8, len: *mut CK_ULONG) -> CK_RV {
        unsafe { self.get_status.expect("T_GetStatus in the list")(p, len) }
    }

    fn self_test(&self) -> CK_RV {
        unsafe { self.self_test.expect("T_SelfTest in the list")() }
    }

    fn delete_token(&self, slot: CK_SLOT_ID) -> CK_RV {
        unsafe { self.delete_token.expect("T_DeleteToken in the list")(slot) }
    }

    /// `T_GetStatus` with the length query first, parsed.
    fn status(&self) -> serde_json::Value {
        let mut n: CK_ULONG = 0;
        assert_eq!(self.get_status(null_mut(), &mut n), CKR_OK, "T_GetStatus length");
        let mut buf = vec![0u8; n as usize + 64];
        let mut n = buf.len() as CK_ULONG;
        assert_eq!(self.get_status(buf.as_mut_ptr(), &mut n), CKR_OK, "T_GetStatus");
        buf.truncate(n as usize);
        serde_json::from_slice(&buf)
            .unwrap_or_else(|e| panic!("T_GetStatus is not JSON ({e}): {}", String::from_utf8_lossy(&buf)))
    }
}

const VENDOR_NAME: &[u8] = b"Vendor Tessera\0";

/// The vendor interface of a loaded library (static data of a library that is never unloaded).
fn vendor(lib: &RawLib) -> &'static TesseraFunctionList {
    let mut iface: *mut CK_INTERFACE = null_mut();
    let mut name = VENDOR_NAME.to_vec();
    unsafe {
        assert_eq!(
            lib.f.C_GetInterface(name.as_mut_ptr(), null_mut(), &mut iface, 0),
            CKR_OK,
            "C_GetInterface(\"Vendor Tessera\")"
        );
        &*((*iface).pFunctionList as *const TesseraFunctionList)
    }
}

/// An interface's name and the version its function list starts with.
unsafe fn name_and_version(i: *const CK_INTERFACE) -> (String, (u8, u8)) {
    let name = std::ffi::CStr::from_ptr((*i).pInterfaceName as *const _).to_str().unwrap().to_string();
    let v = *((*i).pFunctionList as *const CK_VERSION);
    (name, (v.major, v.minor))
}

/// A sealed copy of the library under test in `dir`.
fn sealed_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("libtessera_pkcs11.so");
    std::fs::copy(module_path(), &copy).unwrap();
    seal(&copy);
    copy
}

/// The slot of the initialised token labelled `label`, if the slot list shows one.
fn slot_labelled(lib: &RawLib, label: &str) -> Option<CK_SLOT_ID> {
    lib.slots().into_iter().find(|s| {
        let ti = lib.token_info(*s);
        ti.flags & CKF_TOKEN_INITIALIZED != 0 && String::from_utf8_lossy(&ti.label).trim_end() == label
    })
}

#[test]
fn vendor_interface_is_listed_last_and_given_only_by_name() {
    let lib = open(&module_path(), Env::new(""));
    unsafe {
        let mut n: CK_ULONG = 0;
        assert_eq!(lib.f.C_GetInterfaceList(null_mut(), &mut n), CKR_OK);
        assert_eq!(n, 4, "three \"PKCS 11\" interfaces and the vendor interface");
        let mut list = [CK_INTERFACE { pInterfaceName: null_mut(), pFunctionList: null_mut(), flags: 0 }; 4];
        assert_eq!(lib.f.C_GetInterfaceList(list.as_mut_ptr(), &mut n), CKR_OK);
        let listed: Vec<_> = list.iter().map(|i| name_and_version(i)).collect();
        let want = [("PKCS 11", (3, 2)), ("PKCS 11", (3, 0)), ("PKCS 11", (2, 40)), ("Vendor Tessera", (1, 3))];
        assert_eq!(listed, want.map(|(n, v)| (n.to_string(), v)).to_vec());

        // No name: the default, "PKCS 11" 3.2; "PKCS 11" is never answered with the vendor list.
        let mut iface: *mut CK_INTERFACE = null_mut();
        assert_eq!(lib.f.C_GetInterface(null_mut(), null_mut(), &mut iface, 0), CKR_OK);
        assert_eq!(name_and_version(iface), ("PKCS 11".to_string(), (3, 2)));
        let mut pkcs11 = *b"PKCS 11\0";
        assert_eq!(lib.f.C_GetInterface(pkcs11.as_mut_ptr(), null_mut(), &mut iface, 0), CKR_OK);
        assert_eq!(name_and_version(iface), ("PKCS 11".to_string(), (3, 2)));
        let mut v10 = CK_VERSION { major: 1, minor: 0 };
        assert_eq!(lib.f.C_GetInterface(pkcs11.as_mut_ptr(), &mut v10, &mut iface, 0), CKR_ARGUMENTS_BAD);
        assert_eq!(lib.f.C_GetInterface(null_mut(), &mut v10, &mut iface, 0), CKR_ARGUMENTS_BAD);

        // By its name (with or without its version): the vendor list; another version: none.
        let mut name = VENDOR_NAME.to_vec();
        assert_eq!(lib.f.C_GetInterface(name.as_mut_ptr(), null_mut(), &mut iface, 0), CKR_OK);
        assert_eq!((*iface).pFunctionList, list[3].pFunctionList);
        assert_eq!(lib.f.C_GetInterface(name.as_mut_ptr(), &mut v10, &mut iface, 0), CKR_OK);
        assert_eq!((*iface).pFunctionList, list[3].pFunctionList);
        let mut v32 = CK_VERSION { major: 3, minor: 2 };
        assert_eq!(lib.f.C_GetInterface(name.as_mut_ptr(), &mut v32, &mut iface, 0), CKR_ARGUMENTS_BAD);
    }

    // Before C_Initialize (and after C_Finalize) every vendor function says so.
    let v = vendor(&lib);
    assert_eq!((v.version.major, v.version.minor), (1, 3));
    let check_uninitialised = |when: &str| {
        let mut len: CK_ULONG = 0;
        assert_eq!(v.get_status(null_mut(), &mut len), CKR_CRYPTOKI_NOT_INITIALIZED, "T_GetStatus {when}");
        assert_eq!(v.self_test(), CKR_CRYPTOKI_NOT_INITIALIZED, "T_SelfTest {when}");
        assert_eq!(v.delete_token(0), CKR_CRYPTOKI_NOT_INITIALIZED, "T_DeleteToken {when}");
        let mut path = *b"/nonexistent/backup";
        let mut pin = *b"12345678";
        unsafe {
            let old = v.backup_token_1_2.expect("1.2's T_BackupToken in the list");
            let rv = old(0, path.as_mut_ptr(), path.len() as CK_ULONG, null_mut(), null_mut());
            assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED, "1.2's T_BackupToken {when}");
            let backup = v.backup_token.expect("T_BackupToken in the list");
            let rv = backup(0, pin.as_mut_ptr(), 8, path.as_mut_ptr(), path.len() as CK_ULONG, null_mut(), null_mut());
            assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED, "T_BackupToken {when}");
            let restore = v.restore_token.expect("T_RestoreToken in the list");
            let rv =
                restore(path.as_mut_ptr(), path.len() as _, pin.as_mut_ptr(), 8, null_mut(), 0, null_mut(), null_mut());
            assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED, "T_RestoreToken {when}");
        }
    };
    check_uninitialised("before C_Initialize");
    lib.init();
    assert_eq!(v.status()["state"], "operational");
    // 1.2's backup function, which took no PIN, is retired: it says so, in its report too.
    unsafe {
        let mut path = *b"/nonexistent/backup";
        let mut report = [0u8; 512];
        let mut len = report.len() as CK_ULONG;
        let old = v.backup_token_1_2.expect("1.2's T_BackupToken in the list");
        let rv = old(0, path.as_mut_ptr(), path.len() as CK_ULONG, report.as_mut_ptr(), &mut len);
        assert_eq!(rv, CKR_FUNCTION_NOT_SUPPORTED);
        let text = String::from_utf8_lossy(&report[..len as usize]);
        assert!(text.contains("SO PIN") && text.contains("1.3"), "{text}");
    }
    assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
    check_uninitialised("after C_Finalize");
}

#[test]
fn t_get_status_follows_the_two_call_convention() {
    let lib = open(&module_path(), Env::new(""));
    let v = vendor(&lib);
    lib.init();
    let mut len: CK_ULONG = 0;
    let mut small = [0u8; 8];
    assert_eq!(v.get_status(null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
    assert_eq!(v.get_status(small.as_mut_ptr(), null_mut()), CKR_ARGUMENTS_BAD);
    assert_eq!(v.get_status(null_mut(), &mut len), CKR_OK);
    assert!(len > 100, "status of {len} bytes");
    let mut short = vec![0u8; len as usize - 1];
    let mut n = short.len() as CK_ULONG;
    assert_eq!(v.get_status(short.as_mut_ptr(), &mut n), CKR_BUFFER_TOO_SMALL);
    assert_eq!(n, len, "a short buffer is told the length needed");
    assert!(short.iter().all(|b| *b == 0), "nothing is written into a short buffer");
    let mut n: CK_ULONG = 16;
    assert_eq!(v.get_status(16 as *mut u8, &mut n), CKR_ARGUMENTS_BAD, "a buffer in the first page");
    let mut exact = vec![0u8; len as usize];
    let mut n = len;
    assert_eq!(v.get_status(exact.as_mut_ptr(), &mut n), CKR_OK);
    assert_eq!(n, len);

    let st: serde_json::Value = serde_json::from_slice(&exact).expect("JSON");
    assert_eq!(st["state"], "operational", "{st}");
    assert!(st["error"].is_null(), "{st}");
    assert_eq!(st["mode"], "non-approved", "{st}");
    let path = std::fs::canonicalize(module_path()).unwrap();
    assert_eq!(st["library"]["path"].as_str(), path.to_str(), "the file the library was loaded from: {st}");
    assert_eq!(st["library"]["cryptoki"], "3.2");
    let post = &st["self_tests"]["power_on"];
    assert_eq!(post["passed"], true, "{st}");
    let phases: Vec<&str> = post["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(phases, ["integrity", "known-answer tests"], "aws-lc's own self-tests run on demand only: {st}");
    assert!(post["phases"].as_array().unwrap().iter().all(|p| p["elapsed_us"].is_u64()), "{st}");
    let tests = post["tests"].as_array().unwrap();
    assert!(tests.len() >= self_test_names().len() - 1, "every test is listed: {st}");
    assert!(tests.iter().all(|t| t["passed"] == true), "{st}");
    assert!(st["self_tests"]["on_demand"].is_null(), "no on-demand run yet: {st}");
    assert!(st["aws_lc"]["fips_mode"].is_boolean(), "{st}");
    let integrity = &st["integrity"];
    match sealed_value(&path) {
        Some(recorded) => {
            assert_eq!(integrity["result"], "verified", "{st}");
            assert_eq!(integrity["sealed"], true);
            assert_eq!(integrity["recorded"].as_str(), Some(recorded.as_str()));
            assert_eq!(integrity["value"].as_str(), Some(recorded.as_str()), "the value computed is the one recorded");
        }
        None => {
            assert_eq!(integrity["result"], "unsealed", "{st}");
            assert_eq!(integrity["sealed"], false);
        }
    }
}

/// `T_SelfTest` runs the self-tests again while another thread signs in a loop: every run passes,
/// every signature is made and right, in both modes.
#[test]
fn on_demand_self_tests_run_while_another_thread_signs() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let copy = sealed_copy(dir.path());
    let key = [0x5au8; 32];
    let data = b"signed while the self-tests run".to_vec();
    let want = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key), &data);
    for mode in ["approved", "non-approved"] {
        let lib = open(&copy, Env::new(&format!("tessera.mode = {mode}")));
        lib.init();
        let v = vendor(&lib);
        lib.token("");
        let slot = initialised_slot(&lib.f);
        let h = lib.open(slot, false);
        lib.login(h, CKU_USER, USER_PIN).unwrap();
        let (class, kt) = (CKO_SECRET_KEY, CKK_GENERIC_SECRET);
        let k = lib
            .create(
                h,
                &mut [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), bytes(CKA_VALUE, &key), attr(CKA_SIGN, &TRUE)],
            )
            .unwrap();
        let (stop, signed) = (AtomicBool::new(false), AtomicU64::new(0));
        let (f, data, want) = (&lib.f, &data, want.as_ref());
        let failures = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut m = mech(CKM_SHA256_HMAC);
                    let mut sig = [0u8; 32];
                    let mut n: CK_ULONG = 32;
                    let rv = unsafe {
                        match f.C_SignInit(h, &mut m, k) {
                            CKR_OK => f.C_Sign(h, data.as_ptr() as *mut _, data.len() as _, sig.as_mut_ptr(), &mut n),
                            rv => rv,
                        }
                    };
                    if rv != CKR_OK || sig[..] != *want {
                        failures.push(rv);
                    }
                    signed.fetch_add(1, Ordering::Relaxed);
                }
                failures
            });
            while signed.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            let before = signed.load(Ordering::Relaxed);
            for i in 0..10 {
                assert_eq!(v.self_test(), CKR_OK, "{mode}: on-demand self-tests, run {i}");
            }
            assert!(signed.load(Ordering::Relaxed) > before, "{mode}: the signing thread went on meanwhile");
            stop.store(true, Ordering::Relaxed);
            worker.join().unwrap()
        });
        assert!(failures.is_empty(), "{mode}: signatures failed or were wrong: {failures:x?}");
        let st = v.status();
        assert_eq!(st["state"], "operational", "{mode}: {st}");
        assert_eq!(st["mode"], mode);
        assert_eq!(st["self_tests"]["on_demand"]["runs"], 10, "{mode}: {st}");
        assert_eq!(st["self_tests"]["on_demand"]["passed"], true, "{mode}: {st}");
        assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0);
    }
}

/// The on-demand integrity test checks the library file as it was loaded: modified after loading,
/// the self-tests fail and the module enters the error state; restored, they pass, but the module
/// leaves the error state only through `C_Finalize` and `C_Initialize`.
#[test]
fn on_demand_self_tests_fail_on_a_library_modified_after_loading() {
    let dir = tempfile::tempdir().unwrap();
    let copy = sealed_copy(dir.path());
    let lib = open(&copy, Env::new("tessera.mode = approved"));
    lib.init();
    let v = vendor(&lib);
    assert_eq!(v.self_test(), CKR_OK);
    // Bytes appended: the loaded code and data (mapped from the file's original length) stay as
    // they were; the file no longer matches its integrity value.
    let len = std::fs::metadata(&copy).unwrap().len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&copy).unwrap();
        f.write_all(b"modified after loading").unwrap();
    }
    assert_eq!(v.self_test(), CKR_GENERAL_ERROR, "a modified library fails its on-demand integrity test");
    assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "CKF_ERROR_STATE after the failure");
    let mut buf = [0u8; 4];
    assert_eq!(unsafe { lib.f.C_GenerateRandom(1, buf.as_mut_ptr(), 4) }, CKR_GENERAL_ERROR);
    let st = v.status();
    assert_eq!(st["state"], "error", "{st}");
    assert!(st["error"].as_str().unwrap().contains("integrity"), "{st}");
    assert_eq!(st["integrity"]["result"], "mismatch", "{st}");
    assert_ne!(st["integrity"]["value"], st["integrity"]["recorded"], "{st}");
    assert_eq!(st["self_tests"]["power_on"]["passed"], true, "{st}");
    assert_eq!(st["self_tests"]["on_demand"]["passed"], false, "{st}");
    assert_eq!(st["self_tests"]["on_demand"]["runs"], 2, "{st}");

    // Restored: the tests pass, the module stays in the error state.
    std::fs::OpenOptions::new().write(true).open(&copy).unwrap().set_len(len).unwrap();
    assert_eq!(v.self_test(), CKR_GENERAL_ERROR, "the error state is left only by re-initialisation");
    let st = v.status();
    assert_eq!(st["self_tests"]["on_demand"]["passed"], true, "{st}");
    assert_eq!(st["state"], "error", "{st}");
    assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0);
    unsafe {
        assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
        assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK);
    }
    assert_eq!(token_flags(&lib) & CKF_ERROR_STATE, 0, "re-initialised");
    assert_eq!(v.self_test(), CKR_OK);
    assert_eq!(v.status()["state"], "operational");
}

/// aws-lc's own self-tests (`BORINGSSL_self_test`) are an on-demand addition: a `C_Initialize`
/// neither runs nor lists them (Tessera's KATs cover every approved algorithm at power-on, the
/// DRBG and EdDSA included), and `T_SelfTest` runs them, so their failure is caught there.
#[test]
fn aws_lc_self_tests_run_on_demand_not_at_power_on() {
    let Some(path) = fault_module() else { return };
    seal(&path);
    let lib = open(&path, Env::new(""));
    let v = vendor(&lib);
    std::env::set_var("TESSERA_FAIL_SELFTEST", "aws-lc");
    lib.init();
    let st = v.status();
    assert_eq!(st["state"], "operational", "{st}");
    let listed = st["self_tests"]["power_on"]["tests"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = listed.iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(!names.iter().any(|n| n.contains("aws-lc self-tests")), "{names:?}");
    for kat in ["CTR_DRBG AES-256 instantiate and generate", "CTR_DRBG AES-256 reseed", "Ed25519 sign and verify"] {
        assert!(names.contains(&kat), "{kat} at power-on: {names:?}");
    }
    assert_eq!(v.self_test(), CKR_GENERAL_ERROR, "T_SelfTest runs aws-lc's self-tests");
    std::env::remove_var("TESSERA_FAIL_SELFTEST");
    let st = v.status();
    assert_eq!(st["error"].as_str(), Some("on-demand self-tests: aws-lc self-tests failed"), "{st}");
    assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
}

/// Each kind of self-test failed on purpose at an on-demand run (fault-injection build) puts an
/// operational module in the error state, with the reason in its status.
#[test]
fn on_demand_self_test_failures_reach_the_error_state() {
    let Some(path) = fault_module() else { return };
    seal(&path);
    let names = self_test_names();
    let lib = open(&path, Env::new(""));
    let v = vendor(&lib);
    for name in [&names[0], &names[1], &names[2], names.last().unwrap()] {
        lib.init();
        assert_eq!(v.self_test(), CKR_OK, "{name}: healthy first");
        std::env::set_var("TESSERA_FAIL_SELFTEST", name);
        assert_eq!(v.self_test(), CKR_GENERAL_ERROR, "{name}: the failure is reported");
        std::env::remove_var("TESSERA_FAIL_SELFTEST");
        assert_ne!(token_flags(&lib) & CKF_ERROR_STATE, 0, "{name}: CKF_ERROR_STATE");
        let st = v.status();
        assert_eq!(st["state"], "error", "{name}: {st}");
        let reason = st["error"].as_str().unwrap_or_default();
        assert!(reason.starts_with("on-demand self-tests:"), "{name}: {st}");
        assert_eq!(st["self_tests"]["on_demand"]["failure"].as_str().map(|f| reason.ends_with(f)), Some(true));
        let mut h = 0;
        assert_eq!(unsafe { lib.f.C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut h) }, CKR_GENERAL_ERROR);
        assert_eq!(v.self_test(), CKR_GENERAL_ERROR, "{name}: passing again does not leave the error state");
        assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
    }
}

/// An application cannot use `T_InitTestToken` to take over a token it does not hold the SO PIN
/// of, nor to re-initialise one whose SO PIN it has: the function makes new tokens in the free slot
/// only, so a real token keeps its label, its user PIN and its keys whatever the arguments.
#[test]
fn t_init_test_token_never_touches_an_existing_token() {
    let env = Env::new("");
    let lib = open(&module_path(), env);
    lib.init();
    let v = vendor(&lib);
    let real = lib.token("real");
    let h = lib.open(real, true);
    lib.login(h, CKU_USER, USER_PIN).unwrap();
    let mut key = 0;
    let mut m = CK_MECHANISM { mechanism: CKM_AES_KEY_GEN, pParameter: null_mut(), ulParameterLen: 0 };
    let (mut t, mut len) = (CK_TRUE, 32 as CK_ULONG);
    let mut tmpl = [
        CK_ATTRIBUTE { type_: CKA_TOKEN, pValue: &mut t as *mut _ as *mut _, ulValueLen: 1 },
        CK_ATTRIBUTE {
            type_: CKA_VALUE_LEN,
            pValue: &mut len as *mut _ as *mut _,
            ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
        },
    ];
    assert_eq!(unsafe { lib.f.C_GenerateKey(h, &mut m, tmpl.as_mut_ptr(), 2, &mut key) }, CKR_OK);
    let mut label = *b"taken over                      ";
    let so = SO_PIN.as_bytes();
    let mut wrong = *b"not the SO PIN";
    let attempt = |slot, pin: *mut u8, n: usize, label: *mut u8| unsafe {
        v.init_test_token.expect("T_InitTestToken in the list")(slot, pin, n as CK_ULONG, label)
    };
    // With a session open and logged in, without one, with the right and a wrong SO PIN.
    for open in [true, false] {
        if !open {
            assert_eq!(unsafe { lib.f.C_CloseSession(h) }, CKR_OK);
        }
        assert_eq!(attempt(real, so.as_ptr() as *mut u8, so.len(), label.as_mut_ptr()), CKR_ACTION_PROHIBITED);
        assert_eq!(attempt(real, wrong.as_mut_ptr(), wrong.len(), label.as_mut_ptr()), CKR_ACTION_PROHIBITED);
    }
    // Bad pointers are refused before anything is looked at.
    let free = *lib.slots().last().unwrap();
    assert_eq!(attempt(free, null_mut(), 8, label.as_mut_ptr()), CKR_ARGUMENTS_BAD);
    assert_eq!(attempt(free, so.as_ptr() as *mut u8, so.len(), null_mut()), CKR_ARGUMENTS_BAD);
    let unknown = if approved_mode() { CKR_ACTION_PROHIBITED } else { CKR_SLOT_ID_INVALID };
    assert_eq!(attempt(0x7fff_ffff, so.as_ptr() as *mut u8, so.len(), label.as_mut_ptr()), unknown);

    // The token is as it was: its label, its user PIN, its key.
    assert!(slot_labelled(&lib, "real").is_some(), "the token keeps its label");
    assert!(slot_labelled(&lib, "taken over").is_none());
    let h = lib.open(real, false);
    lib.login(h, CKU_USER, USER_PIN).expect("the user PIN still opens the token");
    let mut class = CKO_SECRET_KEY;
    let mut find = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: &mut class as *mut _ as *mut _,
        ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
    }];
    let (mut found, mut n) = ([0; 4], 0);
    unsafe {
        assert_eq!(lib.f.C_FindObjectsInit(h, find.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(lib.f.C_FindObjects(h, found.as_mut_ptr(), 4, &mut n), CKR_OK);
        assert_eq!(lib.f.C_FindObjectsFinal(h), CKR_OK);
    }
    assert_eq!(n, 1, "the token's key is still there");
    assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
}

/// `T_DeleteToken` refuses a token with an open session, then removes its store; the slot list no
/// longer shows it, here and after a new `C_Initialize`.
#[test]
fn t_delete_token_refuses_an_open_session_then_removes_the_store() {
    let env = Env::new("");
    let tokendir = env.tokendir();
    let lib = open(&module_path(), env);
    lib.init();
    let v = vendor(&lib);
    let first_free = lib.token("doomed");
    lib.token("kept");
    let doomed = slot_labelled(&lib, "doomed").expect("doomed listed");
    let stores = || std::fs::read_dir(&tokendir).unwrap().count();
    assert_eq!(stores(), 2);

    let h = lib.open(doomed, false);
    assert_eq!(v.delete_token(doomed), CKR_SESSION_EXISTS);
    assert_eq!(v.delete_token(first_free), CKR_SESSION_EXISTS, "also under the slot it was initialised in");
    assert_eq!(stores(), 2);
    assert!(slot_labelled(&lib, "doomed").is_some());
    assert_eq!(unsafe { lib.f.C_CloseSession(h) }, CKR_OK);

    // A second name for the token's database, outside its directory: what deleting leaves in
    // the file's blocks shows through it.
    let serial = String::from_utf8_lossy(&lib.token_info(doomed).serialNumber).trim_end().to_string();
    let db = tokendir.join(&serial).join("tessera.db");
    let witness = tokendir.parent().unwrap().join("witness.db");
    std::fs::hard_link(&db, &witness).expect("hard link to the token database");
    assert!(std::fs::read(&witness).unwrap().iter().any(|b| *b != 0));

    assert_eq!(v.delete_token(doomed), CKR_OK);
    let left = std::fs::read(&witness).unwrap();
    assert!(!left.is_empty() && left.iter().all(|b| *b == 0), "the deleted token's database is overwritten");
    assert_eq!(stores(), 1, "the token's directory is gone");
    assert_eq!(slot_labelled(&lib, "doomed"), None, "the slot list no longer shows it");
    assert!(!lib.slots().contains(&doomed));
    assert!(slot_labelled(&lib, "kept").is_some(), "the other token stays");
    assert_eq!(v.delete_token(doomed), CKR_SLOT_ID_INVALID);
    let free = *lib.slots().last().unwrap();
    assert_eq!(lib.token_info(free).flags & CKF_TOKEN_INITIALIZED, 0);
    assert_eq!(v.delete_token(free), CKR_TOKEN_NOT_RECOGNIZED, "the free slot's token is not initialised");
    let mut ti = CK_TOKEN_INFO::default();
    if unsafe { lib.f.C_GetTokenInfo(first_free, &mut ti) } == CKR_OK {
        assert_ne!(String::from_utf8_lossy(&ti.label).trim_end(), "doomed", "the slot it was initialised in is let go");
    }
    unsafe {
        assert_eq!(lib.f.C_Finalize(null_mut()), CKR_OK);
        assert_eq!(lib.f.C_Initialize(null_mut()), CKR_OK);
    }
    assert_eq!(slot_labelled(&lib, "doomed"), None);
    assert!(slot_labelled(&lib, "kept").is_some());
}

// ---------------------------------------------------------------------------------------------
// tessera-util --status and --self-test
// ---------------------------------------------------------------------------------------------

/// `tessera-util` with `args` on `env`'s store, on the library at `lib`, in the suite's mode.
fn util_on(env: &Env, lib: &Path, args: &[&str]) -> std::process::Output {
    let mut c = env.command(util_path());
    c.args(args).arg("--module").arg(lib);
    c.output().expect("run tessera-util")
}

#[test]
fn tessera_util_self_test_prints_the_library_s_own_result() {
    let env = Env::new("");
    let o = util_on(&env, &module_path(), &["--self-test"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(out.contains("Self-tests:         passed in "), "{}", show(&o));
    for phase in ["integrity", "known-answer tests", "aws-lc self-tests"] {
        assert!(out.contains(phase), "phase {phase}: {}", show(&o));
    }
    assert!(out.contains("State:              operational"), "{}", show(&o));

    // A self-test failing in the library (fault-injection build): exit status 1, the error state.
    let Some(path) = fault_module() else { return };
    seal(&path);
    let mut c = env.command(util_path());
    c.args(["--self-test", "--module"]).arg(&path).env("TESSERA_FAIL_SELFTEST", "SHA-256");
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(out.contains("Self-tests:         FAILED") && out.contains("SHA-256"), "{}", show(&o));
    assert!(out.contains("State:              ERROR STATE: ") && !out.contains("operational"), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ERROR: the self-tests left the library in the error state"));
    let mut c = env.command(util_path());
    c.args(["--status", "--module"]).arg(&path).env("TESSERA_FAIL_SELFTEST", "SHA-256");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ERROR STATE: known-answer test failed: SHA-256"),
        "{}",
        show(&o)
    );
}

/// The recipe of security-policy.md §2.6 that recomputes the integrity value with `readelf`, `dd`
/// and `openssl` gives the value `tessera-util --seal` sealed, and reads that value
/// back from the library.
#[test]
fn the_documented_recipe_recomputes_the_sealed_value() {
    let policy = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../security-policy.md")).unwrap();
    let recipe = policy
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("Tessera module integrity key, v4"))
        .expect("the recipe in security-policy.md");
    let dir = tempfile::tempdir().unwrap();
    let copy = sealed_copy(dir.path());
    let value = sealed_value(&copy).expect("sealed");
    let zeroed = dir.path().join("zeroed.so");
    let script = recipe.replace("/tmp/zeroed.so", zeroed.to_str().unwrap());
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], value, "the value computed: {text}");
    assert_eq!(lines[1], value, "the value sealed: {text}");
}

/// An application with the user PIN gets nothing from the backup functions of the vendor
/// interface: its PIN is not the SO PIN a backup needs (no file is written), bad pointers and
/// lengths are refused before anything is read, a file that is not a backup (random bytes, the
/// token's own database) restores nothing and crashes nothing, and the token keeps its key and
/// its user PIN.
#[test]
fn backup_and_restore_give_a_user_login_nothing() {
    let env = Env::new("");
    let dir = tempfile::tempdir().unwrap();
    let lib = open(&module_path(), env);
    lib.init();
    let v = vendor(&lib);
    let real = lib.token("real");
    let h = lib.open(real, true);
    lib.login(h, CKU_USER, USER_PIN).unwrap();
    let mut key = 0;
    let mut m = CK_MECHANISM { mechanism: CKM_AES_KEY_GEN, pParameter: null_mut(), ulParameterLen: 0 };
    let (mut t, mut len) = (CK_TRUE, 32 as CK_ULONG);
    let mut tmpl = [
        CK_ATTRIBUTE { type_: CKA_TOKEN, pValue: &mut t as *mut _ as *mut _, ulValueLen: 1 },
        CK_ATTRIBUTE {
            type_: CKA_VALUE_LEN,
            pValue: &mut len as *mut _ as *mut _,
            ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
        },
    ];
    assert_eq!(unsafe { lib.f.C_GenerateKey(h, &mut m, tmpl.as_mut_ptr(), 2, &mut key) }, CKR_OK);

    let backup = v.backup_token.expect("T_BackupToken in the list");
    let restore = v.restore_token.expect("T_RestoreToken in the list");
    let out = dir.path().join("stolen.backup");
    let mut path = out.to_str().unwrap().as_bytes().to_vec();
    let mut user = USER_PIN.as_bytes().to_vec();
    let (mut report, mut report_len) = ([0u8; 1024], 1024 as CK_ULONG);
    unsafe {
        // The user PIN is not the SO PIN: no backup.
        let rv = backup(
            real,
            user.as_mut_ptr(),
            user.len() as _,
            path.as_mut_ptr(),
            path.len() as _,
            report.as_mut_ptr(),
            &mut report_len,
        );
        assert_eq!(rv, CKR_PIN_INCORRECT);
        assert!(!out.exists(), "no file is written for a wrong SO PIN");
        // Bad pointers and lengths, refused before anything is read.
        let p = path.as_mut_ptr();
        let n = path.len() as CK_ULONG;
        let u = user.as_mut_ptr();
        assert_eq!(backup(real, null_mut(), 8, p, n, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(backup(real, u, 6, null_mut(), n, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(backup(real, u, 6, p, 0, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(backup(real, u, 6, p, n, report.as_mut_ptr(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(restore(null_mut(), n, u, 6, null_mut(), 0, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(restore(p, n, null_mut(), 6, null_mut(), 0, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(restore(p, n, u, 6, null_mut(), 0x8000_0000, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);

        // Files that are no backup: random bytes, a truncated header, the token's own database.
        let db = std::fs::read_dir(lib.env.tokendir())
            .unwrap()
            .flatten()
            .map(|e| e.path().join("tessera.db"))
            .find(|p| p.exists())
            .expect("the token's database");
        let junk = dir.path().join("junk");
        let bytes: Vec<u8> = (0u32..128).flat_map(|i| sha2::Sha256::digest(i.to_le_bytes())).collect();
        std::fs::write(&junk, &bytes).unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, b"TESSERA").unwrap();
        for file in [&junk, &short, &db] {
            let mut fp = file.to_str().unwrap().as_bytes().to_vec();
            for replace in [0, 1] {
                let rv = restore(
                    fp.as_mut_ptr(),
                    fp.len() as _,
                    u,
                    user.len() as _,
                    null_mut(),
                    replace,
                    null_mut(),
                    null_mut(),
                );
                assert_ne!(rv, CKR_OK, "{} restored (replace {replace})", file.display());
            }
        }
    }
    // The token is as it was: its label, its user PIN, its key; nothing else appeared.
    assert_eq!(lib.slots().len(), 2, "one token and the free slot");
    assert_eq!(unsafe { lib.f.C_CloseSession(h) }, CKR_OK);
    let h = lib.open(real, false);
    lib.login(h, CKU_USER, USER_PIN).expect("the user PIN still opens the token");
    let mut class = CKO_SECRET_KEY;
    let mut find = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: &mut class as *mut _ as *mut _,
        ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
    }];
    let (mut found, mut n) = ([0; 4], 0);
    unsafe {
        assert_eq!(lib.f.C_FindObjectsInit(h, find.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(lib.f.C_FindObjects(h, found.as_mut_ptr(), 4, &mut n), CKR_OK);
        assert_eq!(lib.f.C_FindObjectsFinal(h), CKR_OK);
    }
    assert_eq!(n, 1, "the token's key is still there");
    assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
}
