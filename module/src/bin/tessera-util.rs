//! `tessera-util`: token administration with the flags of `softhsm2-util`, so that scripts change
//! only the binary name. It works on the token store named by the same configuration as the module
//! (`TESSERA_CONF`), through the module's own services.

use clap::{ArgGroup, Parser};
use cryptoki_sys::*;
use std::io::Write;
use std::process::ExitCode;
use tessera_pkcs11::import;
use tessera_pkcs11::module::Module;
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

#[derive(Parser, Debug, Clone)]
#[command(name = "tessera-util", about = "Support tool for Tessera PKCS#11 tokens", disable_version_flag = true)]
#[command(group(ArgGroup::new("action").required(true).args(["init_token", "show_slots", "delete_token", "import", "version", "seal", "status"])))]
struct Args {
    /// Initialize the token at a given slot (use with --slot, --token, --serial or --free, --label, --so-pin and --pin). WARNING: any content in the token will be erased.
    #[arg(long)]
    init_token: bool,
    /// Display all the available slots.
    #[arg(long)]
    show_slots: bool,
    /// Delete the token given by --token or --serial. WARNING: any content in the token will be erased.
    #[arg(long)]
    delete_token: bool,
    /// Import a key pair from a PKCS#8 file (use with --slot, --token or --serial, --file-pin, --label, --id, --no-public-key and --pin), or an AES key with --aes.
    #[arg(long, value_name = "PATH")]
    import: Option<std::path::PathBuf>,
    /// Show version info.
    #[arg(short = 'v', long)]
    version: bool,
    /// Record the integrity value of a Tessera library (default: the one beside this program), which
    /// the power-on self-tests check; required in the approved mode.
    #[arg(long, value_name = "LIBRARY", num_args = 0..=1)]
    seal: Option<Option<std::path::PathBuf>>,
    /// Run the power-on self-tests of the library beside this program and print the module status.
    #[arg(long)]
    status: bool,
    /// Import the file as it is, as an AES key.
    #[arg(long)]
    aes: bool,
    /// PIN of an encrypted PKCS#8 file.
    #[arg(long, value_name = "PIN")]
    file_pin: Option<String>,
    /// Override a warning (an ID already in use).
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
    /// Accepted for compatibility; tessera-util manages Tessera tokens only.
    #[arg(long, value_name = "path")]
    module: Option<std::path::PathBuf>,
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
}

type Res<T> = Result<T, String>;

fn rv(e: tessera_pkcs11::error::Error) -> String {
    let name = match e.rv() {
        CKR_PIN_INCORRECT => "CKR_PIN_INCORRECT",
        CKR_PIN_LOCKED => "CKR_PIN_LOCKED",
        CKR_PIN_LEN_RANGE => "CKR_PIN_LEN_RANGE",
        CKR_SESSION_EXISTS => "CKR_SESSION_EXISTS",
        CKR_SLOT_ID_INVALID => "CKR_SLOT_ID_INVALID",
        CKR_TEMPLATE_INCONSISTENT => "CKR_TEMPLATE_INCONSISTENT",
        CKR_ATTRIBUTE_VALUE_INVALID => "CKR_ATTRIBUTE_VALUE_INVALID",
        CKR_USER_PIN_NOT_INITIALIZED => "CKR_USER_PIN_NOT_INITIALIZED",
        CKR_TOKEN_NOT_RECOGNIZED => "CKR_TOKEN_NOT_RECOGNIZED",
        _ => "",
    };
    format!("rv={:#x} {name}", e.rv())
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

/// Asks for a PIN not given on the command line. A PIN being set (`confirm`) is asked twice, and
/// two different answers are refused, as `softhsm2-util` asks.
fn prompt(what: &str, confirm: bool) -> Res<String> {
    say!("=== {what} (4-255 characters) ===");
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

/// Finds the slot of the token named by --slot, --token or --serial (or the free slot with --free).
fn find_slot(m: &Module, a: &Args) -> Res<CK_SLOT_ID> {
    let slots = m.slot_list().map_err(rv)?;
    if a.free {
        return Ok(m.slots.read().map_err(|_| "lock")?.free);
    }
    if let Some(s) = a.slot {
        return if slots.contains(&s) { Ok(s) } else { Err(format!("the given slot ({s}) does not exist")) };
    }
    for s in slots {
        if let Ok(info) = m.token_info(s) {
            if info.flags & CKF_TOKEN_INITIALIZED == 0 {
                continue;
            }
            if a.token.as_deref() == Some(info.label.as_str()) || a.serial.as_deref() == Some(info.serial.as_str()) {
                return Ok(s);
            }
        }
    }
    match (&a.token, &a.serial) {
        (None, None) => Err("a slot/token must be given: use --slot, --token, --serial or --free".into()),
        _ => Err("could not find a token using --token or --serial".into()),
    }
}

fn show_slots(m: &Module) -> Res<()> {
    say!("Available slots:");
    for s in m.slot_list().map_err(rv)? {
        let si = m.slot_info(s).map_err(rv)?;
        let ti = m.token_info(s).map_err(rv)?;
        let init = ti.flags & CKF_TOKEN_INITIALIZED != 0;
        let yn = |b: bool| if b { "yes" } else { "no" };
        say!("Slot {s}");
        say!("    Slot info:");
        say!("        Description:      {}", si.description);
        say!("        Manufacturer ID:  Tessera");
        say!("        Token present:    yes");
        if !init {
            say!("    The token has not been initialized.");
            continue;
        }
        say!("    Token info:");
        say!("        Manufacturer ID:  Tessera");
        say!("        Model:            {}", tessera_pkcs11::services::general::model(m.cfg.mode));
        say!("        Serial number:    {}", ti.serial);
        say!("        Initialized:      {}", yn(init));
        say!("        User PIN init.:   {}", yn(ti.flags & CKF_USER_PIN_INITIALIZED != 0));
        say!("        User PIN locked:  {}", yn(ti.flags & CKF_USER_PIN_LOCKED != 0));
        say!("        Label:            {}", ti.label);
    }
    Ok(())
}

fn init_token(m: &Module, a: &Args) -> Res<()> {
    let label = a.label.clone().ok_or("a token label must be given: use --label")?;
    if label.len() > 32 {
        return Err("the token label must not be longer than 32 characters".into());
    }
    let slot = find_slot(m, a)?;
    let so_pin = match &a.so_pin {
        Some(p) => p.clone(),
        None => prompt("SO PIN", true)?,
    };
    let pin = match &a.pin {
        Some(p) => p.clone(),
        None => prompt("user PIN", true)?,
    };
    for p in [&so_pin, &pin] {
        if !(4..=255).contains(&p.len()) {
            return Err("the PIN must have a length between 4 and 255 characters".into());
        }
    }
    m.init_token(slot, so_pin.as_bytes(), &label).map_err(|e| format!("could not initialize the token ({})", rv(e)))?;
    let s = m.open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION).map_err(rv)?;
    let r = m
        .login(s, CKU_SO, so_pin.as_bytes())
        .and_then(|_| m.init_pin(s, pin.as_bytes()))
        .map_err(|e| format!("could not initialize the user PIN ({})", rv(e)));
    let _ = m.close_session(s);
    r?;
    m.rescan().map_err(rv)?;
    let new_slot = m.slot_list().map_err(rv)?.into_iter().find(|id| {
        m.token_info(*id).map(|t| t.label == label && t.flags & CKF_TOKEN_INITIALIZED != 0).unwrap_or(false)
    });
    match new_slot {
        Some(id) if id != slot => say!("The token has been initialized and is reassigned to slot {id}"),
        _ => say!("The token has been initialized."),
    }
    Ok(())
}

fn delete_token(m: &Module, a: &Args) -> Res<()> {
    if a.token.is_none() && a.serial.is_none() {
        return Err("a token must be given: use --token or --serial".into());
    }
    let slot = find_slot(m, &Args { slot: None, free: false, ..a.clone() })?;
    let token = m.token(slot).map_err(rv)?;
    let info = m.token_info(slot).map_err(rv)?;
    say!("Found token ({}) with matching token label.", info.serial);
    let dir = token.dir.clone();
    if !dir.starts_with(&m.cfg.tokendir) {
        return Err(format!("refusing to delete {}: not inside the token directory", dir.display()));
    }
    drop(token);
    std::fs::remove_dir_all(&dir)
        .map_err(|e| format!("could not delete the token directory {}: {e}", dir.display()))?;
    say!("The token ({}) has been deleted.", dir.display());
    Ok(())
}

fn parse_hex(s: &str) -> Res<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the ID must be given in hexadecimal, an even number of digits".into());
    }
    Ok((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect())
}

fn import(m: &Module, a: &Args, path: &std::path::Path) -> Res<()> {
    let label = a.label.clone().ok_or("a label for the object must be given: use --label")?;
    let id = parse_hex(a.id.as_deref().ok_or("an ID for the object must be given: use --id")?)?;
    let slot = find_slot(m, a)?;
    let pin = match &a.pin {
        Some(p) => p.clone(),
        None => prompt("user PIN", false)?,
    };
    let data = std::fs::read(path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
    let s = m.open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION).map_err(rv)?;
    let result = (|| -> Res<()> {
        m.login(s, CKU_USER, pin.as_bytes()).map_err(|e| format!("could not log in on the token ({})", rv(e)))?;
        if !a.force {
            m.find_init(s, &vec![(CKA_ID, id.clone().into())]).map_err(rv)?;
            let found = m.find_next(s, 1).map_err(rv)?;
            m.find_final(s).map_err(rv)?;
            if !found.is_empty() {
                return Err(
                    "the ID is already assigned to another object. Use --force to override this message.".into()
                );
            }
        }
        if a.aes {
            let mut t = import::key_template(CKO_SECRET_KEY, CKK_AES, &label, &id);
            t.push((CKA_VALUE, data.clone().into()));
            // As softhsm2-util's: the key's value is known outside the token, so it may both wrap
            // and decrypt (it never wraps a sensitive key, `services::keys`).
            for attr in [CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP] {
                t.push((attr, bool_(true)));
            }
            m.create_object(s, &t).map_err(|e| format!("could not save the secret key in the token ({})", rv(e)))?;
            say!("The key has been imported.");
            return Ok(());
        }
        let kp = import::read_pkcs8(&data, a.file_pin.as_deref())?;
        let mut private = import::key_template(CKO_PRIVATE_KEY, kp.key_type, &label, &id);
        private.extend(kp.private);
        m.create_object(s, &private).map_err(|e| format!("could not save the private key in the token ({})", rv(e)))?;
        if !a.no_public_key {
            let mut public = import::key_template(CKO_PUBLIC_KEY, kp.key_type, &label, &id);
            public.extend(kp.public);
            m.create_object(s, &public)
                .map_err(|e| format!("could not save the public key in the token ({})", rv(e)))?;
        }
        say!("The key pair has been imported.");
        Ok(())
    })();
    let _ = m.close_session(s);
    result
}

/// The Tessera library installed beside this program.
fn library_beside() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("libtessera_pkcs11.so");
    p.exists().then_some(p)
}

fn status(m: &Module) {
    let post = &m.post;
    say!("Mode:               {}", m.cfg.mode.name());
    say!(
        "Self-tests:         {} in {} µs",
        if post.failure.is_none() { "passed" } else { "FAILED" },
        post.elapsed.as_micros()
    );
    let phases: Vec<String> = post.phases.iter().map(|(n, d)| format!("{n} {} µs", d.as_micros())).collect();
    say!("Self-test phases:   {}", phases.join(", "));
    say!("Integrity:          {}", post.integrity);
    let backend = if tessera_pkcs11::crypto::selftest::aws_lc_fips_mode() {
        "FIPS module (FIPS_mode = 1)"
    } else {
        "non-FIPS build (FIPS_mode = 0)"
    };
    say!("aws-lc:             {backend}");
    match m.error_reason() {
        None => say!("State:              operational"),
        Some(r) => say!("State:              ERROR STATE: {r}"),
    }
}

fn run(a: &Args) -> Res<()> {
    if a.version {
        say!("{}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    if let Some(p) = &a.seal {
        let lib = match p {
            Some(p) => p.clone(),
            None => library_beside().ok_or("no libtessera_pkcs11.so beside tessera-util: name the library")?,
        };
        let out = tessera_pkcs11::fips::integrity::seal(&lib)
            .map_err(|e| format!("could not seal {}: {e}", lib.display()))?;
        say!("The integrity value of {} is recorded in {}.", lib.display(), out.display());
        return Ok(());
    }
    if let Some(mp) = &a.module {
        let name = mp.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !name.contains("tessera") {
            return Err(format!("--module {}: tessera-util manages Tessera tokens only", mp.display()));
        }
    }
    let m = Module::new(library_beside().map(tessera_pkcs11::fips::integrity::Library::File).as_ref())
        .map_err(|e| format!("could not initialize the library ({})", rv(e)))?;
    if a.status {
        status(&m);
        return if m.in_error() { Err("the module is in the error state".into()) } else { Ok(()) };
    }
    if a.show_slots {
        status(&m);
        show_slots(&m)
    } else if a.init_token {
        init_token(&m, a)
    } else if a.delete_token {
        delete_token(&m, a)
    } else if let Some(p) = &a.import {
        import(&m, a, p)
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
