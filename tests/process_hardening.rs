//! The module's boundary with the process that loads it: the integrity test checks the file that
//! was loaded (not one a relative path names after a `chdir`); a secure-execution (setuid) process
//! ignores the environment's configuration; `TESSERA_MODE` lowers an approved configuration only
//! when it allows it; `tessera-util` reads PINs without echo and asks twice for a PIN it sets; and
//! GCM counter IVs belong to the key material, so no copy, twin, restart, other process or
//! restored database repeats one.

use cryptoki_sys::*;
use std::collections::HashSet;
use std::ffi::c_void;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::ptr::null_mut;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_tests::*;

/// `tessera-testproc status` with `env`'s configuration and no `TESSERA_MODE` unless `vars` set it.
fn status(env: &Env, module: &str, cwd: &Path, extra: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut c = env.command(testproc_path!());
    c.env_remove("TESSERA_MODE").current_dir(cwd).args(["--module", module, "status"]).args(extra);
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().expect("run tessera-testproc")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// 1. The integrity test checks the file that was loaded
// ---------------------------------------------------------------------------------------------

/// One byte of machine code changed: a byte of the padding between two functions of `.text`
/// (never executed, so the library still loads and runs).
fn tamper_code(lib: &[u8]) -> Vec<u8> {
    let u16_at = |o: usize| u16::from_le_bytes(lib[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(lib[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&lib[..5], b"\x7fELF\x02", "a 64-bit ELF library");
    let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let section = |i: usize| shoff + i * shentsize;
    let names = u64_at(section(shstrndx) + 0x18);
    let text = (0..shnum)
        .find(|i| {
            let name = names + u32::from_le_bytes(lib[section(*i)..section(*i) + 4].try_into().unwrap()) as usize;
            lib[name..].starts_with(b".text\0")
        })
        .expect("a .text section");
    let (off, size) = (u64_at(section(text) + 0x18), u64_at(section(text) + 0x20));
    let at = lib[off..off + size]
        .windows(4)
        .position(|w| w == [0xcc; 4])
        .map(|p| off + p + 1)
        .expect("int3 padding between functions in .text");
    let mut out = lib.to_vec();
    out[at] = 0x90;
    out
}

#[test]
fn the_integrity_test_checks_the_file_that_was_loaded_after_a_chdir() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("sealed"), dir.path().join("tampered"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    const NAME: &str = "libtessera_pkcs11.so";
    std::fs::copy(module_path(), a.join(NAME)).unwrap();
    seal(&a.join(NAME));
    std::fs::write(b.join(NAME), tamper_code(&std::fs::read(a.join(NAME)).unwrap())).unwrap();
    let env = Env::new("tessera.mode = approved");
    let relative = format!("./{NAME}");

    // The sealed library, loaded by a relative path, then the process moves to the tampered
    // copy's directory: the library loaded is intact, the module comes up.
    let o = status(&env, &relative, &a, &["--chdir", b.to_str().unwrap()], &[]);
    assert!(o.status.success() && stdout(&o).contains("error-state: no"), "{}", show(&o));
    assert!(stdout(&o).contains("library: Tessera, approved mode, sealed"), "{}", show(&o));

    // The tampered copy loaded by a relative path, then the process moves to the sealed
    // library's directory before C_Initialize: the module must check what it runs.
    let o = status(&env, &relative, &b, &["--chdir", a.to_str().unwrap()], &[]);
    let out = stdout(&o);
    let refused = !o.status.success() || out.contains("error-state: yes");
    assert!(refused, "a tampered library passed its integrity test after a chdir:\n{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("integrity test failed"),
        "the reason is on stderr:\n{}",
        show(&o)
    );
}

#[test]
fn the_integrity_test_follows_a_renamed_library_and_fails_a_replaced_one() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (dir.path().join("before"), dir.path().join("after"));
    std::fs::create_dir_all(&before).unwrap();
    let lib = before.join("libtessera_pkcs11.so");
    std::fs::copy(module_path(), &lib).unwrap();
    seal(&lib);
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    std::env::remove_var("TESSERA_MODE");
    let env = Env::new("tessera.mode = approved");
    env.activate();
    let f = unsafe { cryptoki_sys::Pkcs11::new(&lib) }.expect("load");
    let in_error = || unsafe {
        assert_eq!(f.C_Initialize(null_mut()), CKR_OK);
        let (mut slots, mut n) = ([0; 8], 8 as CK_ULONG);
        assert_eq!(f.C_GetSlotList(CK_FALSE, slots.as_mut_ptr(), &mut n), CKR_OK);
        let mut ti = CK_TOKEN_INFO::default();
        assert_eq!(f.C_GetTokenInfo(slots[0], &mut ti), CKR_OK);
        assert_eq!(f.C_Finalize(null_mut()), CKR_OK);
        ti.flags & CKF_ERROR_STATE != 0
    };
    // Renamed (with its integrity value) between loading and C_Initialize: still the loaded file.
    std::fs::rename(&before, &after).unwrap();
    assert!(!in_error(), "the renamed library failed its integrity test");
    // Replaced by another file (here with the same contents) while loaded: what runs can no
    // longer be read from disk, and the test fails rather than check a file that is not running.
    let lib = after.join("libtessera_pkcs11.so");
    std::fs::copy(&lib, dir.path().join("new.so")).unwrap();
    std::fs::rename(dir.path().join("new.so"), &lib).unwrap();
    assert!(in_error(), "a library replaced since it was loaded passed its integrity test");
}

// 2. The environment of privileged processes; TESSERA_MODE against the configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn tessera_mode_lowers_an_approved_configuration_only_when_it_allows_it() {
    let module = module_path().to_string_lossy().into_owned();
    let here = std::env::temp_dir();
    let mode = |conf: &str, var: Option<&str>| {
        let env = Env::new(conf);
        let vars: Vec<(&str, &str)> = var.map(|v| ("TESSERA_MODE", v)).into_iter().collect();
        status(&env, &module, &here, &[], &vars)
    };
    // Refused: C_Initialize fails, and says why.
    let o = mode("tessera.mode = approved", Some("non-approved"));
    assert_eq!(o.status.code(), Some(3), "C_Initialize must fail:\n{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("TESSERA_MODE=non-approved refused") && err.contains("tessera.mode_override = allow"),
        "{}",
        show(&o)
    );
    let o = mode("tessera.mode = approved\ntessera.mode_override = deny", Some("non-approved"));
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    // Allowed by the configuration.
    let o = mode("tessera.mode = approved\ntessera.mode_override = allow", Some("non-approved"));
    assert!(o.status.success() && stdout(&o).contains("library: Tessera, non-approved, sealed"), "{}", show(&o));
    // Stricter: always.
    let o = mode("tessera.mode = non-approved", Some("approved"));
    assert!(o.status.success() && stdout(&o).contains("library: Tessera, approved mode, sealed"), "{}", show(&o));
    let o = mode("", Some("approved"));
    assert!(o.status.success() && stdout(&o).contains("library: Tessera, approved mode, sealed"), "{}", show(&o));
    let o = mode("tessera.mode = approved", None);
    assert!(o.status.success() && stdout(&o).contains("library: Tessera, approved mode, sealed"), "{}", show(&o));
}

/// A setuid-root copy of `tessera-testproc` run by `nobody` runs in secure-execution mode
/// (`AT_SECURE`): the module must read neither `TESSERA_CONF` nor `TESSERA_MODE` nor `HOME`/`XDG_*`.
#[test]
fn a_setuid_process_ignores_the_configuration_its_environment_names() {
    let root = Command::new("id").arg("-u").output().map(|o| stdout(&o).trim() == "0").unwrap_or(false);
    if !root || !have("setpriv") {
        println!("SKIP: a setuid program needs root and setpriv (the decision is unit-tested in config.rs)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let prog = dir.path().join("tessera-testproc");
    std::fs::copy(testproc_path!(), &prog).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).unwrap();
    // A configuration no ordinary process gets past, and per-user directories.
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "this is not a configuration line\n").unwrap();
    let (home, xdg) = (dir.path().join("home"), dir.path().join("xdg"));
    let module = module_path();
    let system_tokens = Path::new("/var/lib/tessera");
    let had_system_tokens = system_tokens.exists();
    let run = |setuid: bool| {
        let mut c = if setuid {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&prog);
            c
        } else {
            Command::new(&prog)
        };
        c.arg("--module").arg(&module).arg("status");
        c.env("TESSERA_CONF", &conf).env("TESSERA_MODE", "lax").env("HOME", &home);
        c.env("XDG_DATA_HOME", &xdg).env("XDG_CONFIG_HOME", &xdg).current_dir(dir.path());
        c.output().unwrap()
    };
    // Started by root itself (no setuid transition): the environment counts, and is refused.
    let o = run(false);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.conf: line 1"), "{}", show(&o));
    // Setuid: the system configuration (or the defaults) instead.
    let o = run(true);
    if !had_system_tokens && system_tokens.exists() {
        let _ = std::fs::remove_dir_all(system_tokens);
    }
    assert!(o.status.success(), "a setuid process must not read TESSERA_CONF or TESSERA_MODE:\n{}", show(&o));
    assert!(stdout(&o).contains("error-state: no"), "{}", show(&o));
    assert!(!xdg.exists() && !home.exists(), "a setuid process must not use XDG_DATA_HOME or HOME");
}

// 3. tessera-util: PINs without echo, asked twice when set; exit status of a bad command line
// ---------------------------------------------------------------------------------------------

/// A program on a pseudo-terminal (util-linux `script`), its output collected as it comes.
struct Pty {
    child: std::process::Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn spawn(env: &Env, line: &str) -> Pty {
        let mut c = env.command("script");
        c.args(["-qfec", line, "/dev/null"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("script");
        let out = Arc::new(Mutex::new(Vec::new()));
        let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let o = out.clone();
        std::thread::spawn(move || {
            let mut b = [0u8; 256];
            while let Ok(n) = so.read(&mut b) {
                if n == 0 {
                    break;
                }
                o.lock().unwrap().extend_from_slice(&b[..n]);
            }
        });
        let o = out.clone();
        std::thread::spawn(move || {
            let mut b = [0u8; 256];
            while let Ok(n) = se.read(&mut b) {
                if n == 0 {
                    break;
                }
                o.lock().unwrap().extend_from_slice(&b[..n]);
            }
        });
        Pty { child, out }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits until the output has shown `what` `n` times in all.
    fn expect(&self, what: &str, n: usize) {
        let start = Instant::now();
        while self.text().matches(what).count() < n {
            assert!(start.elapsed() < Duration::from_secs(20), "no {what:?} (#{n}) on the terminal:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types a line, once the program is waiting for it.
    fn send(&mut self, line: &str) {
        // The terminal echoes a line typed before the program turns echo off; give it the time
        // to do so after its prompt.
        std::thread::sleep(Duration::from_millis(300));
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\r").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) -> (Option<i32>, String) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status.code(), self.text())
    }
}

fn pty_available() -> bool {
    if !have("script") {
        println!("SKIP: no `script` (util-linux) to give tessera-util a terminal");
        return false;
    }
    let o = Command::new("script").args(["-qfec", "tty", "/dev/null"]).stdin(Stdio::piped()).output();
    match o {
        Ok(o) if o.status.success() && stdout(&o).contains("/dev/pts/") => true,
        _ => {
            println!("SKIP: no pseudo-terminal can be opened here");
            false
        }
    }
}

fn init_token_line(label: &str) -> String {
    format!("'{}' --init-token --free --label {label}", util_path().display())
}

#[test]
fn tessera_util_reads_pins_without_echo_and_asks_twice_for_a_pin_it_sets() {
    if !pty_available() {
        return;
    }
    let env = Env::new("");
    let (so, user) = ("so-secret-8642", "user-secret-9753");
    let mut p = Pty::spawn(&env, &init_token_line("typed"));
    p.expect("Please enter SO PIN: ", 1);
    p.send(so);
    p.expect("Please reenter SO PIN: ", 1);
    p.send(so);
    p.expect("Please enter user PIN: ", 1);
    p.send(user);
    p.expect("Please reenter user PIN: ", 1);
    p.send(user);
    let (code, text) = p.finish();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("The token has been initialized"), "{text}");
    assert!(!text.contains(so) && !text.contains(user), "a PIN typed was echoed:\n{text}");

    // The PINs typed are the token's: the user PIN logs in.
    let o = env
        .command(testproc_path!())
        .env("TESSERA_TESTPROC_PIN", user)
        .args(["--module", module_path().to_str().unwrap(), "count", "typed", "x"])
        .output()
        .unwrap();
    assert!(o.status.success() && stdout(&o).trim() == "0", "{}", show(&o));
}

#[test]
fn tessera_util_refuses_two_different_pins() {
    if !pty_available() {
        return;
    }
    let env = Env::new("");
    for (which, typed) in
        [("SO PIN", &["12345678", "12345679"][..]), ("user PIN", &["12345678", "12345678", "123456", "654321"][..])]
    {
        let mut p = Pty::spawn(&env, &init_token_line("mismatch"));
        let prompts = [
            "Please enter SO PIN: ",
            "Please reenter SO PIN: ",
            "Please enter user PIN: ",
            "Please reenter user PIN: ",
        ];
        for (prompt, pin) in prompts.iter().zip(typed) {
            p.expect(prompt, 1);
            p.send(pin);
        }
        let (code, text) = p.finish();
        assert_eq!(code, Some(1), "{which}: two different PINs must be refused:\n{text}");
        assert!(text.contains(&format!("ERROR: the entered {which}s are not equal")), "{which}:\n{text}");
        assert!(!text.contains("has been initialized"), "{which}:\n{text}");
    }
    // Nothing was initialised.
    let o = env.command(util_path()).arg("--show-slots").output().unwrap();
    assert!(!stdout(&o).contains("mismatch"), "{}", show(&o));
}

#[test]
fn tessera_util_exits_1_on_a_bad_command_line_as_on_any_failure() {
    let env = Env::new("");
    let o = env.command(util_path()).arg("--no-such-flag").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--no-such-flag"), "{}", show(&o));
    let o = env.command(util_path()).args(["--show-slots", "--slot", "not-a-number"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let o = env.command(util_path()).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "no action: {}", show(&o));
    let o = env.command(util_path()).arg("--help").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

// 4. GCM counter IVs belong to the key material
// ---------------------------------------------------------------------------------------------

/// A token with helpers for counter IVs (a thin layer over the one fixture).
struct Gcm {
    t: Token,
}

const KEY_VALUE: [u8; 32] = *b"the same AES-256 key in 7 copies";

/// An AES key that encrypts and decrypts, labelled `label`, on the token or not.
fn aes_template(label: &str, token: bool) -> Tpl {
    vec![
        (CKA_CLASS, V::U(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, V::U(CKK_AES)),
        (CKA_TOKEN, V::B(token)),
        (CKA_ENCRYPT, V::B(true)),
        (CKA_DECRYPT, V::B(true)),
        (CKA_LABEL, V::Bytes(label.into())),
    ]
}

impl Gcm {
    /// The SO sets the user PIN again (`C_InitPIN`), after checking that the user's login is
    /// refused as locked.
    fn reset_user_pin_as_so(&mut self) {
        let slot = initialised_slot(&self.t.f);
        unsafe {
            let f = &self.t.f;
            let mut h = 0;
            assert_eq!(f.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, &mut h), CKR_OK);
            assert_eq!(f.C_Login(h, CKU_USER, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as CK_ULONG), CKR_PIN_LOCKED);
            assert_eq!(f.C_Login(h, CKU_SO, SO_PIN.as_ptr() as *mut _, SO_PIN.len() as CK_ULONG), CKR_OK);
            assert_eq!(f.C_InitPIN(h, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as CK_ULONG), CKR_OK);
            assert_eq!(f.C_Logout(h), CKR_OK);
            assert_eq!(f.C_CloseSession(h), CKR_OK);
        }
    }

    /// An AES key with the shared value, usable for encryption (and extractable, to be wrapped).
    fn import(&self, label: &str, token: bool) -> CK_OBJECT_HANDLE {
        let mut tpl = aes_template(label, token);
        tpl.extend([(CKA_EXTRACTABLE, V::B(true)), (CKA_VALUE, V::Bytes(KEY_VALUE.to_vec()))]);
        self.t.create(&tpl).unwrap_or_else(|rv| panic!("import {label}: {rv:#x}"))
    }

    /// The first object labelled `label`.
    fn find(&self, label: &str) -> CK_OBJECT_HANDLE {
        let found = self.t.find(&vec![(CKA_LABEL, V::Bytes(label.into()))]).expect("C_FindObjects");
        *found.first().unwrap_or_else(|| panic!("{label}"))
    }

    fn copy(&self, key: CK_OBJECT_HANDLE, label: &str, token: bool) -> CK_OBJECT_HANDLE {
        let tpl = vec![(CKA_TOKEN, V::B(token)), (CKA_LABEL, V::Bytes(label.into()))];
        self.t.copy(key, &tpl).unwrap_or_else(|rv| panic!("copy to {label}: {rv:#x}"))
    }

    /// A session key that only wraps and unwraps.
    fn wrapping_key(&self) -> CK_OBJECT_HANDLE {
        let tpl = vec![
            (CKA_VALUE_LEN, V::U(32)),
            (CKA_WRAP, V::B(true)),
            (CKA_UNWRAP, V::B(true)),
            (CKA_ENCRYPT, V::B(false)),
            (CKA_DECRYPT, V::B(false)),
        ];
        self.t.generate(&Mech::new(CKM_AES_KEY_GEN), &tpl).expect("C_GenerateKey")
    }

    fn wrap(&self, wrapping: CK_OBJECT_HANDLE, key: CK_OBJECT_HANDLE) -> Vec<u8> {
        self.t.wrap(&Mech::new(CKM_AES_KEY_WRAP_KWP), wrapping, key).expect("C_WrapKey")
    }

    fn unwrap(&self, wrapping: CK_OBJECT_HANDLE, blob: &[u8], label: &str, token: bool) -> CK_OBJECT_HANDLE {
        let m = Mech::new(CKM_AES_KEY_WRAP_KWP);
        self.t
            .unwrap(&m, wrapping, blob, &aes_template(label, token))
            .unwrap_or_else(|rv| panic!("unwrap {label}: {rv:#x}"))
    }

    /// `n` messages under `key` with counter IVs (`fixed` the caller's fixed field); their IVs
    /// and the ciphertexts of the same plaintext.
    fn ivs(&self, key: CK_OBJECT_HANDLE, fixed: &[u8], n: usize) -> Vec<([u8; 12], Vec<u8>)> {
        let f = &self.t.f;
        let mut m = mech(CKM_AES_GCM);
        assert_eq!(unsafe { f.C_MessageEncryptInit(self.t.h, &mut m, key) }, CKR_OK);
        let mut out = Vec::new();
        for _ in 0..n {
            let mut iv = [0u8; 12];
            iv[..fixed.len()].copy_from_slice(fixed);
            let mut tag = [0u8; 16];
            let mut p = CK_GCM_MESSAGE_PARAMS {
                pIv: iv.as_mut_ptr(),
                ulIvLen: 12,
                ulIvFixedBits: (fixed.len() * 8) as _,
                ivGenerator: CKG_GENERATE_COUNTER,
                pTag: tag.as_mut_ptr(),
                ulTagBits: 128,
            };
            let mut pt = *b"the same message";
            let mut ct = [0u8; 16];
            let mut len: CK_ULONG = 16;
            let rv = unsafe {
                f.C_EncryptMessage(
                    self.t.h,
                    &mut p as *mut _ as *mut c_void,
                    std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as _,
                    null_mut(),
                    0,
                    pt.as_mut_ptr(),
                    16,
                    ct.as_mut_ptr(),
                    &mut len,
                )
            };
            assert_eq!(rv, CKR_OK);
            assert_eq!(&iv[..fixed.len()], fixed, "the caller's fixed field is kept");
            out.push((iv, ct.to_vec()));
        }
        assert_eq!(unsafe { f.C_MessageEncryptFinal(self.t.h) }, CKR_OK);
        out
    }
}

/// Adds IVs to the set, failing on the first one seen before.
fn all_new(seen: &mut HashSet<[u8; 12]>, what: &str, ivs: Vec<([u8; 12], Vec<u8>)>) {
    for (iv, _) in ivs {
        assert!(seen.insert(iv), "{what}: IV {iv:02x?} was used before under the same key value");
    }
}

/// The token's directory in the store `Token::open` made (its configuration is `TESSERA_CONF`).
fn token_dir() -> PathBuf {
    let conf = PathBuf::from(std::env::var_os("TESSERA_CONF").unwrap());
    let tokens = conf.parent().unwrap().join("tokens");
    let mut dirs: Vec<_> = std::fs::read_dir(&tokens).unwrap().flatten().map(|e| e.path()).collect();
    dirs.retain(|d| d.join("tessera.db").exists());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// The database files of a token (the database, its WAL and shared memory).
fn db_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("tessera.db"))
        .collect()
}

extern "C" {
    #[link_name = "_exit"]
    fn libc_exit(code: i32) -> !;
}

#[test]
fn counter_ivs_never_repeat_for_a_key_value_across_copies_twins_processes_and_a_restored_database() {
    const N: usize = 20;
    let mut g = Gcm { t: Token::open("approved", "ivspace") };
    let mut seen = HashSet::new();
    let fixed = b"\xa1\xa2\xa3\xa4";
    // A 64-bit fixed field leaves a 32-bit counter, which the token does not spread out at random.
    let fixed8 = b"\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8";

    let key = g.import("key", true);
    // The first message under a key and under its copy: not the same IV, not the same ciphertext.
    let copy = g.copy(key, "copy", true);
    let first = g.ivs(key, fixed, 1);
    let first_copy = g.ivs(copy, fixed, 1);
    assert_ne!(first[0], first_copy[0], "a key and its copy gave the same IV and ciphertext");
    all_new(&mut seen, "key", first);
    all_new(&mut seen, "copy", first_copy);
    all_new(&mut seen, "key", g.ivs(key, fixed, N));
    all_new(&mut seen, "copy", g.ivs(copy, fixed, N));
    all_new(&mut seen, "session copy", g.ivs(g.copy(key, "session copy", false), fixed, N));
    // Unwrapped twins, by a key that only wraps.
    let wrapping = g.wrapping_key();
    let blob = g.wrap(wrapping, key);
    all_new(&mut seen, "unwrapped", g.ivs(g.unwrap(wrapping, &blob, "unwrapped", true), fixed, N));
    all_new(&mut seen, "unwrapped again", g.ivs(g.unwrap(wrapping, &blob, "unwrapped again", false), fixed, N));
    // Imported again, on the token and as a session key.
    all_new(&mut seen, "imported", g.ivs(g.import("imported", true), fixed, N));
    all_new(&mut seen, "imported session key", g.ivs(g.import("session", false), fixed, N));
    // Other lengths of the caller's fixed field: the token's part is wider or narrower.
    all_new(&mut seen, "no fixed field", g.ivs(key, b"", N));
    all_new(&mut seen, "8-byte fixed field", g.ivs(copy, fixed8, N));

    // After C_Finalize and C_Initialize; an older copy of the database kept aside meanwhile.
    g.t.restart();
    let dir = token_dir();
    unsafe { assert_eq!(g.t.f.C_Finalize(null_mut()), CKR_OK) };
    let old = tempfile::tempdir().unwrap();
    for f in db_files(&dir) {
        std::fs::copy(&f, old.path().join(f.file_name().unwrap())).unwrap();
    }
    unsafe { assert_eq!(g.t.f.C_Initialize(null_mut()), CKR_OK) };
    g.t.reopen_session();
    for label in ["key", "copy", "unwrapped", "imported"] {
        all_new(&mut seen, &format!("{label} after a restart"), g.ivs(g.find(label), fixed, N));
    }
    all_new(&mut seen, "session key after a restart", g.ivs(g.import("session", false), fixed, N));
    all_new(&mut seen, "8-byte fixed field after a restart", g.ivs(g.find("unwrapped"), fixed8, N));

    // Another process, from the same key value.
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, pipe, read, write, ForkResult};
    let (rx, tx) = pipe().unwrap();
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assert_eq!(unsafe { g.t.f.C_Initialize(null_mut()) }, CKR_OK);
                g.t.reopen_session();
                let mut ivs = g.ivs(g.find("copy"), fixed, N);
                ivs.extend(g.ivs(g.import("child's", false), fixed, N));
                for (iv, _) in ivs {
                    let _ = write(&tx, &iv);
                }
            }));
            unsafe { libc_exit(if r.is_ok() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(tx);
            let mut got = Vec::new();
            let mut buf = [0u8; 12];
            while let Ok(12) = read(&rx, &mut buf) {
                got.push((buf, Vec::new()));
            }
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
            assert_eq!(got.len(), 2 * N);
            all_new(&mut seen, "another process", got);
            all_new(&mut seen, "this process again", g.ivs(g.find("key"), fixed, N));
        }
    }

    // The older database restored (this process and every other gone from it first).
    unsafe { assert_eq!(g.t.f.C_Finalize(null_mut()), CKR_OK) };
    for f in db_files(&dir) {
        std::fs::remove_file(f).unwrap();
    }
    for f in db_files(old.path()) {
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    unsafe { assert_eq!(g.t.f.C_Initialize(null_mut()), CKR_OK) };
    // The restored database is behind the token's PIN-state record: the user PIN is blocked until
    // the SO sets it again (tests/store_hardening.rs), as an operator restoring a backup does.
    g.reset_user_pin_as_so();
    g.t.reopen_session();
    for label in ["key", "copy", "unwrapped", "imported"] {
        all_new(&mut seen, &format!("{label} after restoring the database"), g.ivs(g.find(label), fixed, N));
    }
    all_new(&mut seen, "session key after restoring the database", g.ivs(g.import("session", false), fixed, N));
    all_new(&mut seen, "no fixed field after restoring", g.ivs(g.find("key"), b"", N));
    all_new(&mut seen, "8-byte fixed field after restoring", g.ivs(g.find("imported"), fixed8, N));
    println!("{} distinct IVs under one key value", seen.len());
}
