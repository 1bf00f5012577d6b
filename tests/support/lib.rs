//! Shared helpers of Tessera's integration tests. Every test drives the built
//! `libtessera_pkcs11.so` through its C ABI, as applications do: through the `cryptoki` crate, the
//! raw function lists of `cryptoki-sys`, or the external tools.
//!
//! The module is one library per process, so tests that load it in-process take [`LOCK`] for
//! their whole run (under `cargo nextest` each test has its own process anyway).
//!
//! A suite starts from one of three fixtures: [`Token`] (a fresh token with a logged-in user
//! session, reachable both through raw calls and the `cryptoki` crate; most suites), [`Loaded`]
//! (the module initialised through `cryptoki`, no token yet) or [`RawLib`] (the library loaded,
//! nothing called yet: for tests of `C_Initialize` itself and of the slot and token functions).
//! [`raw`] has the `CK_ATTRIBUTE`/`CK_MECHANISM` builders for hand-made calls, [`ck`] the
//! helpers for `cryptoki` sessions, [`oid`] the curve parameters.

pub mod ck;
pub mod oid;
pub mod raw;
pub mod token;
pub mod wycheproof;

pub use ck::*;
pub use oid::*;
pub use raw::*;
pub use token::*;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub const SO_PIN: &str = "12345678";
pub const USER_PIN: &str = "123456";

/// Serialises in-process use of the module.
pub static LOCK: Mutex<()> = Mutex::new(());

/// Takes [`LOCK`] (also after a test that held it failed).
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

fn built(name: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = ["release", "debug"].iter().map(|p| target_dir().join(p).join(name)).collect();
    candidates
        .iter()
        .filter(|p| p.exists())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not built: run `cargo build --release -p tessera-pkcs11` first"))
}

/// The module under test: `$TESSERA_MODULE`, else the newest build in `target/`.
pub fn module_path() -> PathBuf {
    std::env::var_os("TESSERA_MODULE").map(PathBuf::from).unwrap_or_else(|| built("libtessera_pkcs11.so"))
}

/// `tessera-util`: `$TESSERA_UTIL`, else the newest build in `target/`.
pub fn util_path() -> PathBuf {
    std::env::var_os("TESSERA_UTIL").map(PathBuf::from).unwrap_or_else(|| built("tessera-util"))
}

/// `../shared` beside the project (or `$TESSERA_SHARED`, for a checkout elsewhere), if present.
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_SHARED").map(PathBuf::from).filter(|p| p.is_dir()) {
        return Some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    p.is_dir().then_some(p)
}

/// A private token directory with its configuration file.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
}

impl Env {
    /// A fresh, empty token store; `extra` lines are appended to the configuration.
    pub fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        Env::configure(dir, &tokens, extra)
    }

    /// A configuration of its own for the token store `tokens` (another `Env`'s, a copy of one).
    pub fn at(tokens: &Path, extra: &str) -> Env {
        Env::configure(tempfile::tempdir().expect("tempdir"), tokens, extra)
    }

    fn configure(dir: tempfile::TempDir, tokens: &Path, extra: &str) -> Env {
        let conf = dir.path().join("tessera.conf");
        let text = format!("directories.tokendir = {}\nlog.level = ERROR\n{extra}\n", tokens.display());
        std::fs::write(&conf, text).expect("write conf");
        Env { dir, conf }
    }

    pub fn tokendir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// Points this process's next `C_Initialize` at this store.
    pub fn activate(&self) {
        std::env::set_var("TESSERA_CONF", &self.conf);
    }

    /// A command with this store in its environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        c.env("TESSERA_CONF", &self.conf);
        c
    }
}

/// A finished command's status and output, for assertion messages.
pub fn show(o: &std::process::Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A command as a shell line, for messages.
pub fn describe(c: &std::process::Command) -> String {
    let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("{} {}", c.get_program().to_string_lossy(), args.join(" "))
}

/// The module loaded and initialised on a private store, for one test.
pub struct Loaded {
    pub p: Pkcs11,
    pub env: Env,
    /// `TESSERA_MODE` as it was before a load that chose its mode in the configuration, put back
    /// when this is dropped (the rest of the process runs in the suite's mode again).
    mode_before: Option<Option<std::ffi::OsString>>,
    _guard: MutexGuard<'static, ()>,
}

/// The flags every test initialises with.
pub fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

/// Loads and initialises the module on a fresh store.
pub fn load() -> Loaded {
    load_env(Env::new(""))
}

/// Loads and initialises the module on the given store.
pub fn load_env(env: Env) -> Loaded {
    load_locked(lock(), env)
}

/// Loads and initialises the module on a fresh store in `mode` (`approved` or `non-approved`),
/// chosen in the configuration whatever `TESSERA_MODE` the suite runs under (the variable is
/// removed from this process).
pub fn load_in_mode(mode: &str) -> Loaded {
    load_in_mode_with(mode, "")
}

/// [`load_in_mode`] with `extra` lines in the configuration.
pub fn load_in_mode_with(mode: &str, extra: &str) -> Loaded {
    let guard = lock();
    let before = std::env::var_os("TESSERA_MODE");
    std::env::remove_var("TESSERA_MODE");
    let mut l = load_locked(guard, Env::new(&format!("tessera.mode = {mode}\n{extra}")));
    l.mode_before = Some(before);
    l
}

/// [`load_in_mode`] on the token directory `tokens`.
pub fn load_at_in_mode(tokens: &Path, mode: &str) -> Loaded {
    let guard = lock();
    let before = std::env::var_os("TESSERA_MODE");
    std::env::remove_var("TESSERA_MODE");
    let mut l = load_locked(guard, Env::at(tokens, &format!("tessera.mode = {mode}")));
    l.mode_before = Some(before);
    l
}

fn load_locked(guard: MutexGuard<'static, ()>, env: Env) -> Loaded {
    env.activate();
    let p = Pkcs11::new(module_path()).expect("load module");
    p.initialize(init_args()).expect("C_Initialize");
    Loaded { p, env, mode_before: None, _guard: guard }
}

impl Drop for Loaded {
    /// Finalises the module, so the next test of the process can initialise it again.
    fn drop(&mut self) {
        let _ = self.p.clone().finalize();
        match self.mode_before.take() {
            Some(Some(v)) => std::env::set_var("TESSERA_MODE", v),
            Some(None) => std::env::remove_var("TESSERA_MODE"),
            None => {}
        }
    }
}

impl Loaded {
    /// Initialises a new token on the free slot, sets the user PIN, and returns its slot (as the
    /// slot list shows it after initialisation).
    pub fn new_token(&self, label: &str) -> Slot {
        let free = self.free_slot();
        self.p.init_token(free, &AuthPin::new(SO_PIN.into()), label).expect("C_InitToken");
        let s = self.p.open_rw_session(free).expect("open session");
        s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into()))).expect("SO login");
        s.init_pin(&AuthPin::new(USER_PIN.into())).expect("C_InitPIN");
        drop(s);
        self.slot_of(label)
    }

    /// The slot of the uninitialised token.
    pub fn free_slot(&self) -> Slot {
        self.p
            .get_all_slots()
            .expect("slots")
            .into_iter()
            .find(|s| !self.p.get_token_info(*s).map(|t| t.token_initialized()).unwrap_or(true))
            .expect("a free slot")
    }

    /// The slot of the token with this label.
    pub fn slot_of(&self, label: &str) -> Slot {
        self.p
            .get_all_slots()
            .expect("slots")
            .into_iter()
            .find(|s| self.p.get_token_info(*s).map(|t| t.label() == label).unwrap_or(false))
            .expect("token by label")
    }
}

/// A user session on a token, logged in.
pub fn user_session(p: &Pkcs11, slot: Slot) -> cryptoki::session::Session {
    let s = p.open_rw_session(slot).expect("open session");
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))).expect("user login");
    s
}

/// Whether an external tool is on the PATH.
pub fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether `tool` is on the PATH; if not, says `SKIP {what}: {tool} is not installed` (the caller
/// then skips what needs it).
pub fn have_or_skip(tool: &str, what: &str) -> bool {
    let found = have(tool);
    if !found {
        println!("SKIP {what}: {tool} is not installed");
    }
    found
}

/// `openssl dgst OPTS… -sign KEY -out SIG MSG`: OpenSSL signs the file `msg` with the private key
/// in the file `key` and writes the signature to the file `sig`.
pub fn openssl_dgst_sign(opts: &[&str], key: &Path, sig: &Path, msg: &Path) -> std::process::Output {
    openssl_dgst(opts, ("-sign", key), ("-out", sig), msg)
}

/// `openssl dgst OPTS… -verify KEY -signature SIG MSG`: OpenSSL checks the signature in the file
/// `sig` of the file `msg` under the public key in the file `key`.
pub fn openssl_dgst_verify(opts: &[&str], key: &Path, sig: &Path, msg: &Path) -> std::process::Output {
    openssl_dgst(opts, ("-verify", key), ("-signature", sig), msg)
}

fn openssl_dgst(opts: &[&str], key: (&str, &Path), sig: (&str, &Path), msg: &Path) -> std::process::Output {
    std::process::Command::new("openssl")
        .arg("dgst")
        .args(opts)
        .arg(key.0)
        .arg(key.1)
        .arg(sig.0)
        .arg(sig.1)
        .arg(msg)
        .output()
        .expect("run openssl")
}

/// Whether the suite runs in the approved mode (`TESSERA_MODE=approved`, as `tests/run-all.sh`'s
/// second pass sets it). Tests of non-approved uses then assert the refusal instead of the result.
pub fn approved_mode() -> bool {
    std::env::var("TESSERA_MODE").is_ok_and(|m| m.eq_ignore_ascii_case("approved"))
}

/// Checks a return value against the mode: in the approved mode a non-approved use must be
/// refused with `refusal`; otherwise it must succeed. Returns whether the operation went ahead.
pub fn allowed_unless_approved(rv: cryptoki_sys::CK_RV, refusal: cryptoki_sys::CK_RV, what: &str) -> bool {
    if approved_mode() {
        assert_eq!(rv, refusal, "{what}: the approved mode must refuse it with {refusal:#x}");
        false
    } else {
        assert_eq!(rv, cryptoki_sys::CKR_OK, "{what}");
        true
    }
}

/// DER: `tag`, the length (short or long form, up to 64 KiB), `body`.
pub fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match body.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(body);
    out
}

/// `tessera-testproc` for the multi-process tests: `$TESSERA_TESTPROC`, else the newest of the one
/// beside the module (same profile directory) and `own`, the one cargo built for the calling test
/// (its `CARGO_BIN_EXE_tessera-testproc`, which only integration tests see).
pub fn testproc(own: Option<&str>) -> PathBuf {
    if let Some(p) = std::env::var_os("TESSERA_TESTPROC") {
        return PathBuf::from(p);
    }
    let beside = module_path().parent().map(|d| d.join("tessera-testproc"));
    [beside, own.map(PathBuf::from)]
        .into_iter()
        .flatten()
        .filter(|p| p.exists())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("tessera-testproc is not built: run `cargo build -p tessera-tests --bins`")
}

/// [`testproc`] for the calling integration test: expands to the call with the test crate's own
/// `CARGO_BIN_EXE_tessera-testproc` (which only the test crate sees).
#[macro_export]
macro_rules! testproc_path {
    () => {
        $crate::testproc(option_env!("CARGO_BIN_EXE_tessera-testproc"))
    };
}

/// Seals the library at `lib` (`tessera-util --seal`): its integrity value written into it.
pub fn seal(lib: &Path) {
    let out = std::process::Command::new(util_path()).arg("--seal").arg(lib).output().expect("tessera-util --seal");
    assert!(out.status.success(), "seal: {}", show(&out));
}

/// Where a library file's seal region lies (the `.tessera_seal` section, 64 bytes), read with the
/// `object` crate as any ELF tool reads it, independently of the module's own code.
pub fn seal_region(data: &[u8]) -> std::ops::Range<usize> {
    use object::{Object, ObjectSection};
    let f = object::File::parse(data).expect("an ELF library");
    let (off, len) = f.section_by_name(".tessera_seal").expect("a .tessera_seal section").file_range().unwrap();
    assert!(len >= 64, "the seal region's length: {len}");
    assert_eq!(&data[off as usize..off as usize + 16], b"Tessera seal v1\0", "the seal region's marker");
    off as usize..off as usize + 64
}

/// Writes to `dst` the library at `src` with its seal region cleared, as a fresh build has it.
pub fn write_unsealed(src: &Path, dst: &Path) {
    let mut bytes = std::fs::read(src).expect("the library file");
    let region = seal_region(&bytes);
    bytes[region.start + 16..region.end].fill(0);
    std::fs::write(dst, &bytes).expect("the unsealed copy");
}

/// The integrity value sealed into the library at `lib` (hex), if it is sealed.
pub fn sealed_value(lib: &Path) -> Option<String> {
    let data = std::fs::read(lib).expect("the library file");
    let r = &data[seal_region(&data)];
    // Flag 4: this format's seal (a GMAC over the file, its IV at bytes 20..32 and its 16-byte
    // value at 32..48 of the region, security-policy.md §2.6).
    (r[16] == 4).then(|| r[32..48].iter().map(|b| format!("{b:02x}")).collect())
}

/// The library built with the `fault-injection` feature (`TESSERA_FAULT_MODULE`, else
/// `target/fault-injection/libtessera_pkcs11.so`; tests/build-fault-injection.sh builds it, and
/// tests/run-all.sh runs that), if present; a test without it says so and skips.
pub fn fault_module() -> Option<std::path::PathBuf> {
    let p = std::env::var_os("TESSERA_FAULT_MODULE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| target_dir().join("fault-injection/libtessera_pkcs11.so"));
    if p.exists() {
        Some(p)
    } else {
        println!(
            "SKIP: no fault-injection build at {} (bash tests/build-fault-injection.sh, then the release build again)",
            p.display()
        );
        None
    }
}
