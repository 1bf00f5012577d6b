//! `tessera-util`: token administration with the flags of `softhsm2-util`, so that scripts change
//! only the binary name.
//!
//! It is a client of the Tessera library, as `softhsm2-util` is of its library: it loads
//! `libtessera_pkcs11.so` with `dlopen` (`--module PATH`, else the library installed beside this
//! program; without one it fails, it never reports a status of its own) and does everything through
//! the library's interfaces, as any application would: the standard PKCS#11 calls through the
//! `cryptoki` crate, and what PKCS#11 cannot express (the module's status, its self-tests on demand,
//! deleting, backing up and restoring a token) through the library's documented vendor interface "Vendor Tessera"
//! ([`binding`], the tool's only `unsafe` code). The library reads the same configuration as for any
//! application (`TESSERA_CONF`), runs its own power-on self-tests at `C_Initialize` and reports them.
//!
//! The tool never builds the module's core (`Module`) and runs no self-test itself. From the core
//! crate it uses only what touches no module state: `import::read_pkcs8` and `import::key_template`
//! (a PKCS#8 file or a raw AES key as attribute templates), `store::backup::open` (`--restore`
//! checks the file's envelope first, for a plain message), `fips::integrity::seal` (`--seal`:
//! writes the integrity value into a library file, which needs no loaded library), and the C layout
//! of the vendor interface's function list (`abi::vendor`), a type only.

#![deny(unsafe_code)]

use clap::{ArgGroup, Parser};
use cryptoki::object::Attribute;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera_pkcs11::import;
use tessera_pkcs11::object::bool_;

/// `println!` for the tool's output. A reader that goes away (`tessera-util --show-slots | head`)
/// ends the tool quietly with the status a SIGPIPE death gives (128 + 13), as `softhsm2-util`
/// ends, instead of `println!`'s panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*).and_then(|_| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(141);
            }
        }
    }};
}

// In a directory of its own: a file of src/bin/ would be a program of its own to cargo.
#[path = "tessera-util/run.rs"]
mod run;

#[derive(Parser, Debug, Clone)]
#[command(name = "tessera-util", about = "Support tool for Tessera PKCS#11 tokens", disable_version_flag = true)]
#[command(group(ArgGroup::new("action").required(true).args(["init_token", "show_slots", "delete_token", "import", "version", "seal", "status", "self_test", "logout_all", "backup", "restore"])))]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Initialize the token at a given slot (use with --slot, --token, --serial or --free, --label, --so-pin and --pin). WARNING: any content in the token will be erased.
    #[arg(long)]
    init_token: bool,
    /// Display all the available slots.
    #[arg(long)]
    show_slots: bool,
    /// Delete the token given by --token or --serial. WARNING: any content in the token will be erased.
    #[arg(long)]
    delete_token: bool,
    /// Write a consistent copy of the token given by --token, --serial or --slot to the file given
    /// by --out, while other processes go on using it (use with --so-pin, the token's SO PIN,
    /// which authenticates the backup).
    #[arg(long)]
    backup: bool,
    /// Put the backup in this file back as a token (use with --so-pin, the backup's SO PIN;
    /// --token to give it another label; --force to replace a token of that label, which is kept
    /// as a backup first). Resets the token's rollback record on purpose.
    #[arg(long, value_name = "PATH")]
    restore: Option<PathBuf>,
    /// The file --backup writes (owner-only, replaced atomically).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// With --show-slots: the library's status (mode, self-tests, integrity) after the slots.
    #[arg(long)]
    verbose: bool,
    /// Import a key pair from a PKCS#8 file (use with --slot, --token or --serial, --file-pin, --label, --id, --no-public-key and --pin), or an AES key with --aes.
    #[arg(long, value_name = "PATH")]
    import: Option<PathBuf>,
    /// Show version info (this program's, and the library's when one loads).
    #[arg(short = 'v', long)]
    version: bool,
    /// Seal a Tessera library (default: the --module library, else the one beside this program):
    /// record its integrity value inside the file, which the power-on self-tests check wherever the
    /// file is copied or linked to; required in the approved mode, after every build.
    #[arg(long, value_name = "LIBRARY", num_args = 0..=1)]
    seal: Option<Option<PathBuf>>,
    /// Initialise the library and print its status: mode, the results of its power-on self-tests,
    /// integrity and state. Exit status 1 when the library is in the error state.
    #[arg(long)]
    status: bool,
    /// Have the library run its self-tests again now, and print the result. Exit status 1 when they
    /// fail (the library is then in the error state).
    #[arg(long)]
    self_test: bool,
    /// Import the file as it is, as an AES key.
    #[arg(long)]
    aes: bool,
    /// PIN of an encrypted PKCS#8 file.
    #[arg(long, value_name = "PIN")]
    file_pin: Option<String>,
    /// Override a warning (an ID already in use; with --restore, a token of the same label).
    #[arg(long)]
    force: bool,
    /// Use the first free, uninitialised token.
    #[arg(long)]
    free: bool,
    /// Object ID, in hexadecimal.
    #[arg(long, value_name = "hex")]
    id: Option<String>,
    /// Label of the object or the token.
    #[arg(long, value_name = "text")]
    label: Option<String>,
    /// The Tessera library to load (default: libtessera_pkcs11.so beside this program).
    #[arg(long, value_name = "path")]
    module: Option<PathBuf>,
    /// Do not import the public key.
    #[arg(long)]
    no_public_key: bool,
    /// The PIN for the normal user.
    #[arg(long, value_name = "PIN")]
    pin: Option<String>,
    /// The token with this serial number.
    #[arg(long, value_name = "number")]
    serial: Option<String>,
    /// The slot where the token is located.
    #[arg(long, value_name = "number")]
    slot: Option<CK_SLOT_ID>,
    /// The PIN for the Security Officer (SO).
    #[arg(long, value_name = "PIN")]
    so_pin: Option<String>,
    /// The token with this label.
    #[arg(long, value_name = "label")]
    token: Option<String>,
    /// With --init-token: make a test token, whose PINs derive with 1,000 iterations instead of
    /// 600,000 (for a pipeline's throwaway tokens; the approved mode refuses them).
    #[arg(long)]
    test_token: bool,
    /// End every login the login cache keeps (`pin.cache = keyring`) in this session: the next
    /// login of every process derives its key from the PIN again.
    #[arg(long)]
    logout_all: bool,
}

#[derive(clap::Subcommand, Debug, Clone)]
enum Cmd {
    /// Run COMMAND against a throwaway token, in the approved mode, the non-approved mode or both.
    ///
    /// For each mode: a new token store and token, the command run with TESSERA_CONF, TESSERA_MODE,
    /// PKCS11_MODULE (the library), TESSERA_TOKEN_LABEL, TESSERA_SO_PIN and TESSERA_USER_PIN set,
    /// then the store removed. Exits with the command's status (with --mode both, the first failing
    /// run's), and with --mode both prints a table on standard error: mode, exit status, time,
    /// then the operations of the non-approved run that the approved mode does not approve, with
    /// counts (from an audit log the run gets).
    Run(run::RunArgs),
    /// Write the man page and the shell completions (bash, zsh, fish) into DIR: for packaging.
    #[command(hide = true)]
    GenerateDocs {
        /// The directory to write into (`man/`, `completions/` beneath it).
        dir: PathBuf,
    },
}

type Res<T> = Result<T, String>;

/// The tool's one binding to the library, and the only place of the tool with `unsafe` code.
///
/// The library is loaded twice by path, and the dynamic loader hands back the same loaded library
/// both times (it recognises the file): once by the `cryptoki` crate, through which every standard
/// PKCS#11 call goes, and once by `cryptoki-sys`'s loader, whose `C_GetInterface` finds the vendor
/// interface, which `cryptoki` does not reach. The vendor function list is the library's static
/// data; the `cryptoki-sys` handle kept here keeps the library loaded while its functions are
/// called (the library is also linked `-z nodelete`).
#[allow(unsafe_code)]
mod binding {
    use super::Res;
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::Attribute;
    use cryptoki_sys::*;
    use std::cell::Cell;
    use std::path::{Path, PathBuf};
    use std::ptr::null_mut;
    use tessera_pkcs11::abi::vendor::{CK_TESSERA_FUNCTION_LIST, VENDOR_INTERFACE_NAME, VENDOR_INTERFACE_VERSION};

    /// Room for a backup's or a restore's report.
    const REPORT: usize = 64 * 1024;

    /// A loaded Tessera library: its PKCS#11 interface and its vendor interface.
    pub struct Library {
        pub p: Pkcs11,
        pub path: PathBuf,
        vendor: CK_TESSERA_FUNCTION_LIST,
        _raw: cryptoki_sys::Pkcs11,
        initialized: Cell<bool>,
    }

    impl Library {
        /// Loads the library at `path`; refuses one without Tessera's vendor interface.
        pub fn load(path: &Path) -> Res<Library> {
            let shown = path.display();
            // SAFETY: loading a library runs its initialisers. The library is the one the user
            // named with --module or installed beside this program: trusted as softhsm2-util trusts
            // its --module.
            let raw = unsafe { cryptoki_sys::Pkcs11::new(path) }
                .map_err(|e| format!("could not load the library {shown}: {e}"))?;
            let not_tessera =
                || format!("{shown} is not a Tessera library (it offers no \"Vendor Tessera\" interface)");
            if raw.C_GetInterface.is_err() {
                return Err(not_tessera());
            }
            let mut iface: *mut CK_INTERFACE = null_mut();
            let mut version = VENDOR_INTERFACE_VERSION;
            // SAFETY: the symbol exists (checked above); the name is NUL-terminated, and the
            // version and the output pointer are valid for the call.
            let rv = unsafe {
                raw.C_GetInterface(VENDOR_INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR, &mut version, &mut iface, 0)
            };
            if rv != CKR_OK || iface.is_null() {
                return Err(not_tessera());
            }
            // SAFETY: a CK_INTERFACE the library returned points at its static data; the
            // interface's function list begins with its version, as every PKCS#11 function list.
            let list = unsafe { (*iface).pFunctionList } as *const CK_TESSERA_FUNCTION_LIST;
            if list.is_null() {
                return Err(not_tessera());
            }
            // SAFETY: the function list asked for by name and version 1.0 has the layout of
            // CK_TESSERA_FUNCTION_LIST (docs/vendor-interface.md); copied out whole.
            let vendor = unsafe { std::ptr::read(list) };
            if vendor.version.major != VENDOR_INTERFACE_VERSION.major {
                return Err(not_tessera());
            }
            let p = Pkcs11::new(path).map_err(|e| format!("could not load the library {shown}: {e}"))?;
            Ok(Library { p, path: path.to_path_buf(), vendor, _raw: raw, initialized: Cell::new(false) })
        }

        /// `C_Initialize` (OS locking); `C_Finalize` follows when the library is dropped.
        pub fn initialize(&self) -> Result<(), cryptoki::error::Error> {
            self.p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
            self.initialized.set(true);
            Ok(())
        }

        /// `T_GetStatus`: the status text, asked for with the two-call convention (its figures may
        /// grow between the two calls, so a short buffer is asked for again).
        pub fn status(&self) -> Result<String, CK_RV> {
            let f = self.vendor.T_GetStatus.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
            for _ in 0..4 {
                let mut len: CK_ULONG = 0;
                // SAFETY: a length query: no buffer, and a valid length pointer.
                let rv = unsafe { f(null_mut(), &mut len) };
                if rv != CKR_OK {
                    return Err(rv);
                }
                let mut buf = vec![0u8; len as usize + 64];
                let mut n = buf.len() as CK_ULONG;
                // SAFETY: `buf` has `n` writable bytes; `n` is a valid length pointer.
                match unsafe { f(buf.as_mut_ptr(), &mut n) } {
                    CKR_OK => {
                        buf.truncate(n as usize);
                        return String::from_utf8(buf).map_err(|_| CKR_GENERAL_ERROR);
                    }
                    CKR_BUFFER_TOO_SMALL => continue,
                    rv => return Err(rv),
                }
            }
            Err(CKR_BUFFER_TOO_SMALL)
        }

        /// `T_SelfTest`.
        pub fn self_test(&self) -> CK_RV {
            match self.vendor.T_SelfTest {
                // SAFETY: a function of the library's vendor interface, which takes no argument.
                Some(f) => unsafe { f() },
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        }

        /// `T_InitTestToken`.
        pub fn init_test_token(&self, slot: CK_SLOT_ID, so_pin: &[u8], label: &str) -> CK_RV {
            let mut padded = [b' '; 32];
            let n = label.len().min(32);
            padded[..n].copy_from_slice(&label.as_bytes()[..n]);
            let mut pin = so_pin.to_vec();
            match self.vendor.T_InitTestToken {
                // SAFETY: a function of the library's vendor interface; the PIN buffer holds its
                // length's bytes and the label buffer the 32 bytes `C_InitToken`'s label has.
                Some(f) => unsafe { f(slot, pin.as_mut_ptr(), pin.len() as CK_ULONG, padded.as_mut_ptr()) },
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        }

        /// The vendor interface's functions of version 1.2 and later are there.
        fn has_1_2(&self) -> bool {
            self.vendor.version.minor >= 2
        }

        /// The vendor interface's functions of version 1.3 and later are there.
        fn has_1_3(&self) -> bool {
            self.vendor.version.minor >= 3
        }

        /// `T_BackupToken`: the status and the report (JSON text).
        pub fn backup_token(&self, slot: CK_SLOT_ID, so_pin: &[u8], out: &str) -> (CK_RV, String) {
            let mut path = out.as_bytes().to_vec();
            let mut pin = zeroize::Zeroizing::new(so_pin.to_vec());
            let mut report = vec![0u8; REPORT];
            let mut len = report.len() as CK_ULONG;
            let rv = match self.vendor.T_BackupToken.filter(|_| self.has_1_3()) {
                // SAFETY: a function of the library's vendor interface (1.3); the PIN and path
                // buffers hold their lengths' bytes and the report buffer `len` writable bytes.
                Some(f) => unsafe {
                    f(
                        slot,
                        pin.as_mut_ptr(),
                        pin.len() as CK_ULONG,
                        path.as_mut_ptr(),
                        path.len() as CK_ULONG,
                        report.as_mut_ptr(),
                        &mut len,
                    )
                },
                None => return (CKR_FUNCTION_NOT_SUPPORTED, String::new()),
            };
            report.truncate((len as usize).min(REPORT));
            (rv, String::from_utf8_lossy(&report).into_owned())
        }

        /// `T_RestoreToken`: the status and the report (JSON text).
        pub fn restore_token(&self, file: &str, so_pin: &[u8], label: Option<&str>, replace: bool) -> (CK_RV, String) {
            let mut path = file.as_bytes().to_vec();
            let mut pin = zeroize::Zeroizing::new(so_pin.to_vec());
            let mut padded = [b' '; 32];
            if let Some(l) = label {
                let n = l.len().min(32);
                padded[..n].copy_from_slice(&l.as_bytes()[..n]);
            }
            let label_ptr = if label.is_some() { padded.as_mut_ptr() } else { null_mut() };
            let flags = if replace { tessera_pkcs11::abi::vendor::T_RESTORE_REPLACE } else { 0 };
            let mut report = vec![0u8; REPORT];
            let mut len = report.len() as CK_ULONG;
            let rv = match self.vendor.T_RestoreToken.filter(|_| self.has_1_2()) {
                // SAFETY: a function of the library's vendor interface (1.2); each buffer holds the
                // length passed with it, the label buffer 32 bytes or NULL, the report buffer
                // `len` writable bytes.
                Some(f) => unsafe {
                    f(
                        path.as_mut_ptr(),
                        path.len() as CK_ULONG,
                        pin.as_mut_ptr(),
                        pin.len() as CK_ULONG,
                        label_ptr,
                        flags,
                        report.as_mut_ptr(),
                        &mut len,
                    )
                },
                None => return (CKR_FUNCTION_NOT_SUPPORTED, String::new()),
            };
            report.truncate((len as usize).min(REPORT));
            (rv, String::from_utf8_lossy(&report).into_owned())
        }

        /// `T_DeleteToken`.
        pub fn delete_token(&self, slot: CK_SLOT_ID) -> CK_RV {
            match self.vendor.T_DeleteToken {
                // SAFETY: a function of the library's vendor interface, given a slot ID by value.
                Some(f) => unsafe { f(slot) },
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        }
    }

    impl Drop for Library {
        fn drop(&mut self) {
            if self.initialized.get() {
                let _ = self.p.clone().finalize();
            }
        }
    }

    /// A template of the core's encoding (type, value bytes) as `cryptoki` attributes. `cryptoki`
    /// decodes a `CK_ATTRIBUTE` by its type; each one here points into its own value, which
    /// outlives the conversion, for exactly the value's length.
    pub fn attributes(t: &tessera_pkcs11::object::Template) -> Res<Vec<Attribute>> {
        t.iter()
            .map(|(ty, v)| {
                let a = CK_ATTRIBUTE { type_: *ty, pValue: v.as_ptr() as *mut _, ulValueLen: v.len() as CK_ULONG };
                Attribute::try_from(a).map_err(|e| format!("attribute {ty:#x}: {e}"))
            })
            .collect()
    }
}

use binding::Library;

/// The names of the return values the tool's messages may show.
macro_rules! rv_names {
    ($($name:ident),* $(,)?) => { [$(($name, stringify!($name))),*] };
}

const RV_NAMES: [(CK_RV, &str); 33] = rv_names![
    CKR_GENERAL_ERROR,
    CKR_FUNCTION_FAILED,
    CKR_ARGUMENTS_BAD,
    CKR_HOST_MEMORY,
    CKR_SLOT_ID_INVALID,
    CKR_ATTRIBUTE_TYPE_INVALID,
    CKR_ATTRIBUTE_VALUE_INVALID,
    CKR_ATTRIBUTE_READ_ONLY,
    CKR_DEVICE_ERROR,
    CKR_DEVICE_MEMORY,
    CKR_FUNCTION_NOT_SUPPORTED,
    CKR_KEY_SIZE_RANGE,
    CKR_CURVE_NOT_SUPPORTED,
    CKR_PIN_INCORRECT,
    CKR_PIN_INVALID,
    CKR_PIN_LEN_RANGE,
    CKR_PIN_EXPIRED,
    CKR_PIN_LOCKED,
    CKR_SESSION_EXISTS,
    CKR_SESSION_READ_ONLY,
    CKR_SESSION_READ_WRITE_SO_EXISTS,
    CKR_TEMPLATE_INCOMPLETE,
    CKR_TEMPLATE_INCONSISTENT,
    CKR_TOKEN_NOT_PRESENT,
    CKR_TOKEN_NOT_RECOGNIZED,
    CKR_TOKEN_WRITE_PROTECTED,
    CKR_USER_ALREADY_LOGGED_IN,
    CKR_USER_NOT_LOGGED_IN,
    CKR_USER_PIN_NOT_INITIALIZED,
    CKR_USER_TYPE_INVALID,
    CKR_CRYPTOKI_NOT_INITIALIZED,
    CKR_CRYPTOKI_ALREADY_INITIALIZED,
    CKR_BUFFER_TOO_SMALL,
];

/// A return value as the messages show it: `rv=0xa0 CKR_PIN_INCORRECT`.
fn rv_text(rv: CK_RV) -> String {
    let name = RV_NAMES.iter().find(|(v, _)| *v == rv).map_or("", |(_, n)| n);
    format!("rv={rv:#x} {name}").trim_end().to_string()
}

/// A `cryptoki` error as the messages show it.
fn rv(e: cryptoki::error::Error) -> String {
    use cryptoki::error::{Error, Rv, RvError};
    match e {
        Error::Pkcs11(RvError::UnknownErrorCode(code), _) => rv_text(code),
        Error::Pkcs11(r, _) => match RV_NAMES.iter().find(|(v, _)| Rv::from(*v) == Rv::Error(r)) {
            Some((v, _)) => rv_text(*v),
            None => format!("{r:?}"),
        },
        e => e.to_string(),
    }
}

/// Reads one PIN: from the terminal without echo when standard input is one, else a line of
/// standard input (a script's pipe).
fn read_pin(prompt: &str) -> Res<String> {
    use std::io::IsTerminal;
    let s = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the PIN from the terminal: {e}"))?
    } else {
        print!("{prompt}");
        std::io::stdout().flush().ok();
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map_err(|e| e.to_string())?;
        println!();
        s
    };
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// The PIN lengths the token in `slot` takes (`CK_TOKEN_INFO`'s `ulMinPinLen`, `ulMaxPinLen`).
fn pin_range(lib: &Library, slot: Slot) -> Res<(usize, usize)> {
    let ti = lib.p.get_token_info(slot).map_err(rv)?;
    Ok((ti.min_pin_length(), ti.max_pin_length()))
}

/// Asks for a PIN not given on the command line, saying which lengths the token takes. A PIN
/// being set (`confirm`) is asked twice, and two different answers are refused, as
/// `softhsm2-util` asks.
fn prompt(what: &str, (min, max): (usize, usize), confirm: bool) -> Res<String> {
    say!("=== {what} ({min}-{max} characters) ===");
    let pin = zeroize::Zeroizing::new(read_pin(&format!("Please enter {what}: "))?);
    if pin.is_empty() {
        return Err(format!("no {what} given"));
    }
    if confirm {
        let again = zeroize::Zeroizing::new(read_pin(&format!("Please reenter {what}: "))?);
        if *again != *pin {
            return Err(format!("the entered {what}s are not equal"));
        }
    }
    Ok(pin.to_string())
}

fn auth(pin: &str) -> AuthPin {
    AuthPin::new(pin.into())
}

/// Finds the slot of the token named by --slot, --token or --serial (or the free slot with --free).
fn find_slot(lib: &Library, a: &Args) -> Res<Slot> {
    let slots = lib.p.get_all_slots().map_err(rv)?;
    let initialised = |s: &Slot| lib.p.get_token_info(*s).map(|t| t.token_initialized()).ok();
    if a.free {
        return slots
            .into_iter()
            .find(|s| initialised(s) == Some(false))
            .ok_or_else(|| "no slot with an uninitialised token".to_string());
    }
    if let Some(id) = a.slot {
        return slots.into_iter().find(|s| s.id() == id).ok_or(format!("the given slot ({id}) does not exist"));
    }
    for s in slots {
        if let Ok(info) = lib.p.get_token_info(s) {
            if !info.token_initialized() {
                continue;
            }
            if a.token.as_deref() == Some(info.label()) || a.serial.as_deref() == Some(info.serial_number()) {
                return Ok(s);
            }
        }
    }
    match (&a.token, &a.serial) {
        (None, None) => Err("a slot/token must be given: use --slot, --token, --serial or --free".into()),
        _ => Err("could not find a token using --token or --serial".into()),
    }
}

/// The slots as `softhsm2-util --show-slots` prints them, line for line (its fields without their
/// blank padding): scripts that parse its output parse this one.
fn show_slots(lib: &Library) -> Res<()> {
    say!("Available slots:");
    let version = |v: cryptoki::types::Version| format!("{}.{}", v.major(), v.minor());
    for s in lib.p.get_all_slots().map_err(rv)? {
        let si = lib.p.get_slot_info(s).map_err(rv)?;
        let yn = |b: bool| if b { "yes" } else { "no" };
        say!("Slot {}", s.id());
        say!("    Slot info:");
        say!("        Description:      {}", si.slot_description());
        say!("        Manufacturer ID:  {}", si.manufacturer_id());
        say!("        Hardware version: {}", version(si.hardware_version()));
        say!("        Firmware version: {}", version(si.firmware_version()));
        say!("        Token present:    {}", yn(si.token_present()));
        if !si.token_present() {
            continue;
        }
        let ti = lib.p.get_token_info(s).map_err(rv)?;
        say!("    Token info:");
        say!("        Manufacturer ID:  {}", ti.manufacturer_id());
        say!("        Model:            {}", ti.model());
        say!("        Hardware version: {}", version(ti.hardware_version()));
        say!("        Firmware version: {}", version(ti.firmware_version()));
        say!("        Serial number:    {}", ti.serial_number());
        say!("        Initialized:      {}", yn(ti.token_initialized()));
        say!("        User PIN init.:   {}", yn(ti.user_pin_initialized()));
        say!("        Label:            {}", ti.label());
        // The drop-in (SoftHSMv2's configuration): what became of a SoftHSMv2 token.
        let d = si.slot_description();
        if d.starts_with("SoftHSMv2 token ") {
            say!("        SoftHSMv2:        not migrated yet; the first login migrates it into Tessera's store");
        } else if d.ends_with("migrated from SoftHSMv2") {
            say!("        SoftHSMv2:        migrated; Tessera uses its own copy, the SoftHSMv2 copy is no longer updated");
        }
    }
    Ok(())
}

/// A report of the library's (`T_BackupToken`, `T_RestoreToken`), parsed; `{}` if it is not JSON.
fn report(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn backup(lib: &Library, a: &Args) -> Res<()> {
    let out = a.out.as_ref().ok_or("the file to write must be given: use --out")?;
    if a.token.is_none() && a.serial.is_none() && a.slot.is_none() {
        return Err("a token must be given: use --token, --serial or --slot".into());
    }
    let out_s = out.to_str().ok_or("the --out path must be UTF-8")?;
    let slot = find_slot(lib, &Args { free: false, ..a.clone() })?;
    let so_pin = zeroize::Zeroizing::new(match &a.so_pin {
        Some(p) => p.clone(),
        None => prompt("SO PIN of the token", (1, 255), false)?,
    });
    let (r, text) = lib.backup_token(slot.id(), so_pin.as_bytes(), out_s);
    let v = report(&text);
    if r != CKR_OK {
        let why = v["error"].as_str().map(str::to_string).unwrap_or_else(|| rv_text(r));
        let why = match r {
            CKR_PIN_INCORRECT => format!("the SO PIN is wrong ({})", rv_text(r)),
            CKR_PIN_LOCKED => format!("the token's SO PIN is locked ({})", rv_text(r)),
            _ => why,
        };
        return Err(format!("could not back up the token: {why}"));
    }
    let t = &v["token"];
    say!(
        "The token ({}, \"{}\") has been backed up to {}: {} objects, {} GCM invocation counters.",
        t["serial"].as_str().unwrap_or("?"),
        t["label"].as_str().unwrap_or("?"),
        out.display(),
        t["objects"].as_i64().unwrap_or(0),
        t["iv_spaces"].as_i64().unwrap_or(0)
    );
    Ok(())
}

fn restore(lib: &Library, a: &Args, file: &Path) -> Res<()> {
    // The file is checked here first, for a plain message: the library checks it again.
    tessera_pkcs11::store::backup::open(file).map_err(|why| format!("cannot restore: {why}. Nothing was changed."))?;
    if let Some(l) = &a.token {
        if l.is_empty() || l.len() > 32 {
            return Err("the token label must have 1 to 32 characters".into());
        }
    }
    let file_s = file.to_str().ok_or("the backup's path must be UTF-8")?;
    let so_pin = zeroize::Zeroizing::new(match &a.so_pin {
        Some(p) => p.clone(),
        None => prompt("SO PIN of the backup", (1, 255), false)?,
    });
    let (r, text) = lib.restore_token(file_s, so_pin.as_bytes(), a.token.as_deref(), a.force);
    let v = report(&text);
    if r == CKR_DEVICE_ERROR && v["serial"].is_string() {
        // The restore was made and reported, but its audit record could not be written: a
        // restore cannot be withdrawn like an object, so it stands, and the message says so.
        return Err(format!(
            "the token ({}, \"{}\") was restored from {}, but the audit log could not record it ({}): \
             the restore stands; check the audit log's directory and the diagnostic log",
            v["serial"].as_str().unwrap_or("?"),
            v["label"].as_str().unwrap_or("?"),
            file.display(),
            rv_text(r)
        ));
    }
    if r != CKR_OK {
        let why = v["error"].as_str().map(str::to_string).unwrap_or_else(|| rv_text(r));
        let why = match r {
            CKR_PIN_INCORRECT => format!("{why} ({})", rv_text(r)),
            CKR_PIN_LOCKED => format!("the SO PIN is locked ({})", rv_text(r)),
            _ => why,
        };
        return Err(format!("could not restore {}: {why}. Nothing was changed.", file.display()));
    }
    if let Some(kept) = v["kept"].as_str() {
        say!("The token it replaces has been kept as a backup: {kept}");
    }
    say!(
        "The token ({}, \"{}\") has been restored from {} in slot {}.",
        v["serial"].as_str().unwrap_or("?"),
        v["label"].as_str().unwrap_or("?"),
        file.display(),
        v["slot"].as_u64().unwrap_or(0)
    );
    say!("Its rollback counter has been reset on purpose: the restored database is now the reference.");
    match v["counters"].as_str() {
        Some("carried") => {
            say!("Its GCM invocation counters continue from the token it replaced: no counter IV repeats.")
        }
        _ => say!(
            "Its GCM invocation counters have been moved {} values ahead of the backup's, as the values \
             used since the backup are unknown (see docs/backup.md).",
            v["margin"].as_u64().unwrap_or(0)
        ),
    }
    Ok(())
}

fn init_token(lib: &Library, a: &Args) -> Res<()> {
    let label = a.label.clone().ok_or("a token label must be given: use --label")?;
    if label.len() > 32 {
        return Err("the token label must not be longer than 32 characters".into());
    }
    let slot = find_slot(lib, a)?;
    let range = pin_range(lib, slot)?;
    let so_pin = zeroize::Zeroizing::new(match &a.so_pin {
        Some(p) => p.clone(),
        None => prompt("SO PIN", range, true)?,
    });
    let pin = zeroize::Zeroizing::new(match &a.pin {
        Some(p) => p.clone(),
        None => prompt("user PIN", range, true)?,
    });
    for p in [&so_pin, &pin] {
        if !(range.0..=range.1).contains(&p.len()) {
            return Err(format!("the PIN must have a length between {} and {} characters", range.0, range.1));
        }
    }
    if a.test_token {
        match lib.init_test_token(slot.id(), so_pin.as_bytes(), &label) {
            CKR_OK => {}
            r => return Err(format!("could not initialize the test token ({})", rv_text(r))),
        }
    } else {
        lib.p
            .init_token(slot, &auth(&so_pin), &label)
            .map_err(|e| format!("could not initialize the token ({})", rv(e)))?;
    }
    // The token keeps the slot it was initialised in for this process (its own slot ID appears in
    // the slot list), so the session, and its serial number, are found there.
    let serial = lib.p.get_token_info(slot).map_err(rv)?.serial_number().to_string();
    let s = lib.p.open_rw_session(slot).map_err(rv)?;
    s.login(UserType::So, Some(&auth(&so_pin)))
        .and_then(|_| s.init_pin(&auth(&pin)))
        .map_err(|e| format!("could not initialize the user PIN ({})", rv(e)))?;
    drop(s);
    let new_slot = lib.p.get_all_slots().map_err(rv)?.into_iter().find(|id| {
        lib.p.get_token_info(*id).map(|t| t.token_initialized() && t.serial_number() == serial).unwrap_or(false)
    });
    match new_slot {
        Some(id) if id != slot => say!("The token has been initialized and is reassigned to slot {}", id.id()),
        _ => say!("The token has been initialized."),
    }
    Ok(())
}

fn delete_token(lib: &Library, a: &Args) -> Res<()> {
    if a.token.is_none() && a.serial.is_none() {
        return Err("a token must be given: use --token or --serial".into());
    }
    let slot = find_slot(lib, &Args { slot: None, free: false, ..a.clone() })?;
    let serial = lib.p.get_token_info(slot).map_err(rv)?.serial_number().to_string();
    say!("Found token ({serial}) with matching token label.");
    match lib.delete_token(slot.id()) {
        CKR_OK => {
            say!("The token ({serial}) has been deleted.");
            Ok(())
        }
        r => Err(format!("could not delete the token ({})", rv_text(r))),
    }
}

fn parse_hex(s: &str) -> Res<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the ID must be given in hexadecimal, an even number of digits".into());
    }
    Ok((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect())
}

/// `C_CreateObject` of a template in the core's encoding.
fn create(s: &Session, t: &tessera_pkcs11::object::Template) -> Res<()> {
    s.create_object(&binding::attributes(t)?).map(|_| ()).map_err(rv)
}

fn import(lib: &Library, a: &Args, path: &Path) -> Res<()> {
    let label = a.label.clone().ok_or("a label for the object must be given: use --label")?;
    let id = parse_hex(a.id.as_deref().ok_or("an ID for the object must be given: use --id")?)?;
    let slot = find_slot(lib, a)?;
    let pin = zeroize::Zeroizing::new(match &a.pin {
        Some(p) => p.clone(),
        None => prompt("user PIN", pin_range(lib, slot)?, false)?,
    });
    let data =
        zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| format!("could not read {}: {e}", path.display()))?);
    let s = lib.p.open_rw_session(slot).map_err(rv)?;
    s.login(UserType::User, Some(&auth(&pin))).map_err(|e| format!("could not log in on the token ({})", rv(e)))?;
    if !a.force && !s.find_objects(&[Attribute::Id(id.clone())]).map_err(rv)?.is_empty() {
        return Err("the ID is already assigned to another object. Use --force to override this message.".into());
    }
    if a.aes {
        let mut t = import::key_template(CKO_SECRET_KEY, CKK_AES, &label, &id);
        t.push((CKA_VALUE, data.to_vec().into()));
        // As softhsm2-util's: the key's value is known outside the token, so it may both wrap
        // and decrypt (it never wraps a sensitive key, `services::keys`).
        for attr in [CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP] {
            t.push((attr, bool_(true)));
        }
        create(&s, &t).map_err(|e| format!("could not save the secret key in the token ({e})"))?;
        say!("The key has been imported.");
        return Ok(());
    }
    let kp = import::read_pkcs8(&data, a.file_pin.as_deref())?;
    let mut private = import::key_template(CKO_PRIVATE_KEY, kp.key_type, &label, &id);
    private.extend(kp.private);
    create(&s, &private).map_err(|e| format!("could not save the private key in the token ({e})"))?;
    if !a.no_public_key {
        let mut public = import::key_template(CKO_PUBLIC_KEY, kp.key_type, &label, &id);
        public.extend(kp.public);
        create(&s, &public).map_err(|e| format!("could not save the public key in the token ({e})"))?;
    }
    say!("The key pair has been imported.");
    Ok(())
}

/// Debian's multiarch name for the architecture this program was built for (the directory the
/// package installs the library in; `dpkg-architecture -qDEB_HOST_MULTIARCH`). Most are the
/// architecture's own name; 32-bit x86 and ARM are not.
fn debian_multiarch() -> String {
    let arch = std::env::consts::ARCH;
    match arch {
        "x86" => "i386-linux-gnu".into(),
        "arm" if cfg!(target_abi = "eabihf") => "arm-linux-gnueabihf".into(),
        "arm" => "arm-linux-gnueabi".into(),
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le-linux-gnu".into(),
        "mips64" if cfg!(target_endian = "little") => "mips64el-linux-gnuabi64".into(),
        _ => format!("{arch}-linux-gnu"),
    }
}

/// The Tessera library installed with this program: beside it (a build tree, a tarball), else
/// where the system package installs it for this program (`/usr/bin/tessera-util` and
/// `/usr/lib/<multiarch>/pkcs11/libtessera_pkcs11.so`).
fn library_beside() -> Res<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's own path: {e}"))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let beside = dir.join("libtessera_pkcs11.so");
    let system = dir.join("../lib").join(debian_multiarch()).join("pkcs11/libtessera_pkcs11.so");
    if beside.exists() {
        return Ok(beside);
    }
    match system.exists() {
        true => Ok(system),
        false => Err(format!(
            "no Tessera library: neither {} nor {} exists; name the library with --module PATH",
            beside.display(),
            system.display()
        )),
    }
}

/// `generate-docs`: the man page (`clap_mangen`, from these very definitions) and the completions
/// (`clap_complete`), for the package.
fn generate_docs(dir: &Path) -> Res<()> {
    use clap::CommandFactory;
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    let (man, completions) = (dir.join("man"), dir.join("completions"));
    std::fs::create_dir_all(&man).map_err(io)?;
    std::fs::create_dir_all(&completions).map_err(io)?;
    let cmd = Args::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page).map_err(io)?;
    std::fs::write(man.join("tessera-util.1"), page).map_err(io)?;
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "tessera-util", &completions).map_err(io)?;
    }
    say!("man page and completions written in {}", dir.display());
    Ok(())
}

/// The library to load: `--module`, else the one beside this program.
fn library_path(a: &Args) -> Res<PathBuf> {
    match &a.module {
        Some(p) => Ok(p.clone()),
        None => library_beside(),
    }
}

/// Loads and initialises the library.
fn open(a: &Args) -> Res<Library> {
    let lib = Library::load(&library_path(a)?)?;
    lib.initialize().map_err(|e| format!("could not initialize the library {} ({})", lib.path.display(), rv(e)))?;
    Ok(lib)
}

/// The library's status (`T_GetStatus`), parsed.
fn status_of(lib: &Library) -> Res<Value> {
    let text = lib.status().map_err(|r| format!("could not get the library's status ({})", rv_text(r)))?;
    serde_json::from_str(&text).map_err(|e| format!("the library's status is not JSON: {e}"))
}

/// One self-test run of the status: "passed in N µs" or "FAILED in N µs (why)", and its phases.
fn run_lines(r: &Value) -> (String, String) {
    let us = r["elapsed_us"].as_u64().unwrap_or(0);
    let result = match r["failure"].as_str() {
        None => format!("passed in {us} µs"),
        Some(f) => format!("FAILED in {us} µs ({f})"),
    };
    let phases: Vec<String> = r["phases"]
        .as_array()
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let (name, us) = (p["name"].as_str().unwrap_or("?"), p["elapsed_us"].as_u64().unwrap_or(0));
            if p["reused"] == true {
                format!("{name} passed earlier in this process ({us} µs then)")
            } else {
                format!("{name} {us} µs")
            }
        })
        .collect();
    (result, phases.join(", "))
}

fn state_line(st: &Value) -> String {
    match st["state"].as_str() {
        Some("operational") => "operational".to_string(),
        _ => format!("ERROR STATE: {}", st["error"].as_str().unwrap_or("reason unknown")),
    }
}

fn in_error(st: &Value) -> bool {
    st["state"].as_str() != Some("operational")
}

/// Prints the library's status as it reports it.
fn print_status(st: &Value) {
    let lib = &st["library"];
    say!(
        "Library:            {} (Tessera {}, cryptoki {})",
        lib["path"].as_str().unwrap_or("(file unknown)"),
        lib["version"].as_str().unwrap_or("?"),
        lib["cryptoki"].as_str().unwrap_or("?")
    );
    say!("Mode:               {}", st["mode"].as_str().unwrap_or("?"));
    let (result, phases) = run_lines(&st["self_tests"]["power_on"]);
    say!("Self-tests:         {result}");
    say!("Self-test phases:   {phases}");
    let on_demand = &st["self_tests"]["on_demand"];
    if !on_demand.is_null() {
        let (result, _) = run_lines(on_demand);
        say!("On-demand tests:    {result} (last of {})", on_demand["runs"].as_u64().unwrap_or(0));
    }
    let integrity = &st["integrity"];
    let sealed = if integrity["sealed"].as_bool() == Some(true) { "yes" } else { "no" };
    say!("Sealed:             {sealed}");
    say!("Integrity:          {}", integrity["text"].as_str().unwrap_or("?"));
    match (integrity["value"].as_str(), integrity["sealed"].as_bool()) {
        (Some(v), Some(true)) => say!("Integrity value:    {v} (sealed)"),
        (Some(v), _) => say!("Integrity value:    {v} (not sealed)"),
        (None, Some(true)) => say!("Integrity value:    recorded {}", integrity["recorded"].as_str().unwrap_or("?")),
        (None, _) => say!("Integrity value:    none recorded (not sealed)"),
    }
    let backend = if st["aws_lc"]["fips_mode"].as_bool() == Some(true) {
        "FIPS module (FIPS_mode = 1)"
    } else {
        "non-FIPS build (FIPS_mode = 0)"
    };
    say!("aws-lc:             {backend}");
    say!("State:              {}", state_line(st));
}

fn self_test(lib: &Library) -> Res<()> {
    let r = lib.self_test();
    let st = status_of(lib)?;
    let run = &st["self_tests"]["on_demand"];
    let (result, phases) = run_lines(run);
    say!("Self-tests:         {result}");
    say!("Self-test phases:   {phases}");
    say!("State:              {}", state_line(&st));
    match r {
        CKR_OK => Ok(()),
        r if in_error(&st) => Err(format!("the self-tests left the library in the error state ({})", rv_text(r))),
        r => Err(format!("the self-tests could not run ({})", rv_text(r))),
    }
}

fn version(a: &Args) {
    say!("{}", env!("CARGO_PKG_VERSION"));
    // The library's too, when one loads (its C_GetInfo needs C_Initialize).
    let Ok(lib) = library_path(a).and_then(|p| Library::load(&p)) else { return };
    if lib.initialize().is_err() {
        return;
    }
    if let Ok(info) = lib.p.get_library_info() {
        let (v, c) = (info.library_version(), info.cryptoki_version());
        say!(
            "library {}: {} {}.{} ({}), cryptoki {}.{}",
            lib.path.display(),
            info.manufacturer_id(),
            v.major(),
            v.minor(),
            info.library_description(),
            c.major(),
            c.minor()
        );
    }
}

fn run(a: &Args) -> Res<()> {
    match &a.cmd {
        Some(Cmd::Run(r)) => {
            let library = match &r.module {
                Some(p) => p.clone(),
                None => library_beside()?,
            };
            let status = run::run(r, &library)?;
            std::process::exit(status);
        }
        Some(Cmd::GenerateDocs { dir }) => return generate_docs(dir),
        None => {}
    }
    if a.version {
        version(a);
        return Ok(());
    }
    if a.logout_all {
        // No library is needed: the entries are the kernel's.
        let n = tessera_pkcs11::store::keyring::revoke_all();
        say!("{n} cached login(s) ended.");
        return Ok(());
    }
    if let Some(p) = &a.seal {
        let lib = match p {
            Some(p) => p.clone(),
            None => library_path(a)?,
        };
        let s = tessera_pkcs11::fips::integrity::seal(&lib)
            .map_err(|e| format!("could not seal {}: {e}", lib.display()))?;
        if s.unchanged {
            say!("{} is already sealed (integrity value {}).", s.path.display(), s.value);
        } else {
            say!("{} is sealed: its integrity value {} is recorded in the library itself.", s.path.display(), s.value);
        }
        return Ok(());
    }
    let lib = open(a)?;
    if a.status {
        let st = status_of(&lib)?;
        print_status(&st);
        return if in_error(&st) { Err("the module is in the error state".into()) } else { Ok(()) };
    }
    if a.self_test {
        self_test(&lib)
    } else if a.show_slots {
        show_slots(&lib)?;
        if a.verbose {
            print_status(&status_of(&lib)?);
        }
        Ok(())
    } else if a.backup {
        backup(&lib, a)
    } else if let Some(f) = &a.restore {
        restore(&lib, a, f)
    } else if a.init_token {
        init_token(&lib, a)
    } else if a.delete_token {
        delete_token(&lib, a)
    } else if let Some(p) = &a.import {
        import(&lib, a, p)
    } else {
        Err("no action given".into())
    }
}

fn main() -> ExitCode {
    // A bad command line exits with 1, as every other failure does (clap's own status is 2).
    let a = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}
