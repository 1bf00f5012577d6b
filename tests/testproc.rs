//! `tessera-testproc`: a small PKCS#11 client that the multi-process tests (`tests/stress.rs`) run
//! as child processes, each loading the module on its own, as independent applications do.
//!
//! ```text
//! tessera-testproc [--module PATH] create TOKEN PREFIX N [--public]
//! tessera-testproc [--module PATH] count  TOKEN PREFIX [--app APP]
//! tessera-testproc [--module PATH] verify TOKEN PREFIX [--app APP]  < expected labels, one a line
//! tessera-testproc [--module PATH] destroy TOKEN PREFIX
//! tessera-testproc [--module PATH] setpin TOKEN NEW_PIN
//! tessera-testproc [--module PATH] status [--chdir DIR]
//! tessera-testproc [--module PATH] login  TOKEN PIN
//! ```
//!
//! The module is `--module PATH`, else `$TESSERA_MODULE`; the token store is the one named by
//! `$TESSERA_CONF`, as for any application. Every command logs in as the user (PIN `123456`, the
//! tests' `USER_PIN`, or `$TESSERA_TESTPROC_PIN`) on the token with label TOKEN.
//!
//! * `create` makes N token CKO_DATA objects (private unless `--public`) labelled `PREFIX-0` ..
//!   `PREFIX-{N-1}`, each with the value [`value_of`] its label and CKA_APPLICATION = PREFIX. It
//!   prints `ready` once logged in, then each label, flushing stdout only after `C_CreateObject`
//!   returned `CKR_OK`: a printed label is a committed object. With `$TESSERA_TESTPROC_GATE` set
//!   it waits, after `ready`, for a line on stdin before creating anything (so that several
//!   creators start together).
//! * `count` prints the number of data objects whose label starts with PREFIX. With `--app APP`,
//!   `count` and `verify` look only at the objects the module finds with CKA_APPLICATION = APP
//!   (cheaper on a big token than reading every object's label).
//! * `verify` checks that every data object whose label starts with PREFIX has the value of its
//!   label and that every label read from stdin exists exactly once; it prints `ok N` (N objects
//!   with the prefix) or the problems on stderr and exits with status 1.
//! * `destroy` destroys the objects (data objects and keys) whose label starts with PREFIX and prints how many.
//! * `setpin` changes the user PIN (C_SetPIN) from the one it logged in with to NEW_PIN.
//! * `status` loads the module, changes to DIR first with `--chdir` (after loading, before
//!   `C_Initialize`), initialises it and prints `library: DESCRIPTION` and `error-state: yes|no`
//!   (of the first slot's token). It needs no token, and logs in nowhere.
//! * `login` does not log in first: it opens a session, prints `ready`, waits for the go line
//!   when `$TESSERA_TESTPROC_GATE` is set, tries `C_Login` as the user with PIN and prints the
//!   outcome (`ok`, or the cryptoki error name, e.g. `PinIncorrect`); its exit status is 0
//!   either way.
//!
//! Exit status: 0 success, 1 verification failure, 2 usage, 3 a PKCS#11 call failed (the message
//! on stderr names the function and the return value, e.g. `C_Login: Pkcs11(PinIncorrect, Login)`).

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// The value stored under a label: 256 bytes, `SHA-256(label || i)` for i = 0..8, so that a torn or
/// mixed-up value cannot pass for a right one. `tests/stress.rs` has the same function.
pub fn value_of(label: &str) -> Vec<u8> {
    (0u8..8).flat_map(|i| Sha256::new().chain_update(label.as_bytes()).chain_update([i]).finalize()).collect()
}

const USAGE: &str = "usage: tessera-testproc [--module PATH] create TOKEN PREFIX N [--public]
       tessera-testproc [--module PATH] count TOKEN PREFIX [--app APP]
       tessera-testproc [--module PATH] verify TOKEN PREFIX [--app APP]  (expected labels on stdin)
       tessera-testproc [--module PATH] destroy TOKEN PREFIX
       tessera-testproc [--module PATH] setpin TOKEN NEW_PIN
       tessera-testproc [--module PATH] status [--chdir DIR]
       tessera-testproc [--module PATH] login TOKEN PIN";

enum Fail {
    Usage(String),
    Pkcs11(String),
    Verify(String),
}

fn ck<T>(what: &str, r: cryptoki::error::Result<T>) -> Result<T, Fail> {
    r.map_err(|e| Fail::Pkcs11(format!("{what}: {e:?}: {e}")))
}

/// The user PIN to log in with.
fn pin() -> String {
    std::env::var("TESSERA_TESTPROC_PIN").unwrap_or_else(|_| tessera_tests::USER_PIN.into())
}

/// Loads and initialises the module and opens a logged-in R/W user session on the token `label`.
fn open(module: &str, label: &str) -> Result<(Pkcs11, Session), Fail> {
    let (p, session) = open_session(module, label)?;
    ck("C_Login", session.login(UserType::User, Some(&AuthPin::new(pin().into()))))?;
    Ok((p, session))
}

/// Prints `ready` and, when the test gates its children (`TESSERA_TESTPROC_GATE`), waits for
/// the test's go line; then stdout, locked, for the rest of the output.
fn ready() -> Result<std::io::StdoutLock<'static>, Fail> {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    if std::env::var_os("TESSERA_TESTPROC_GATE").is_some() {
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).map_err(|e| Fail::Usage(format!("reading the go line: {e}")))?;
    }
    Ok(out)
}

/// `login`: one user login attempt, started on the test's go; prints its outcome.
fn try_login(module: &str, label: &str, pin: &str) -> Result<(), Fail> {
    let (p, session) = open_session(module, label)?;
    let mut out = ready()?;
    match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
        Ok(()) => {
            let _ = writeln!(out, "ok");
            ck("C_Logout", session.logout())?;
        }
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => {
            let _ = writeln!(out, "{rv:?}");
        }
        Err(e) => return Err(Fail::Pkcs11(format!("C_Login: {e:?}"))),
    }
    let _ = out.flush();
    ck("C_CloseSession", session.close())?;
    ck("C_Finalize", p.finalize())
}

/// Loads and initialises the module and opens a R/W session on the token `label`.
fn open_session(module: &str, label: &str) -> Result<(Pkcs11, Session), Fail> {
    let p = ck("loading the module", Pkcs11::new(module))?;
    ck("C_Initialize", p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)))?;
    let slots = ck("C_GetSlotList", p.get_slots_with_initialized_token())?;
    let mut found = None;
    for s in slots {
        if ck("C_GetTokenInfo", p.get_token_info(s))?.label() == label {
            found = Some(s);
            break;
        }
    }
    let slot = found.ok_or_else(|| Fail::Pkcs11(format!("no token labelled {label:?}")))?;
    let session = ck("C_OpenSession", p.open_rw_session(slot))?;
    Ok((p, session))
}

/// Handle, label and value of every data object whose label starts with `prefix`.
/// With `app`, only among the objects whose CKA_APPLICATION is `app` (found by the module).
fn objects(s: &Session, prefix: &str, app: Option<&str>) -> Result<Vec<(ObjectHandle, String, Vec<u8>)>, Fail> {
    let mut template = vec![Attribute::Class(ObjectClass::DATA)];
    if let Some(app) = app {
        template.push(Attribute::Application(app.as_bytes().to_vec()));
    }
    let handles = ck("C_FindObjects", s.find_objects(&template))?;
    let mut out = Vec::new();
    for h in handles {
        let attrs = ck("C_GetAttributeValue", s.get_attributes(h, &[AttributeType::Label, AttributeType::Value]))?;
        let mut label = None;
        let mut value = None;
        for a in attrs {
            match a {
                Attribute::Label(l) => label = Some(String::from_utf8_lossy(&l).into_owned()),
                Attribute::Value(v) => value = Some(v),
                _ => {}
            }
        }
        let label = label.ok_or_else(|| Fail::Verify(format!("object {h} has no CKA_LABEL")))?;
        if label.starts_with(prefix) {
            let value = value.ok_or_else(|| Fail::Verify(format!("object {label:?} has no CKA_VALUE")))?;
            out.push((h, label, value));
        }
    }
    Ok(out)
}

fn create(s: &Session, prefix: &str, n: usize, private: bool) -> Result<(), Fail> {
    // Start together with the other creators.
    let mut out = ready()?;
    for i in 0..n {
        let label = format!("{prefix}-{i}");
        let template = [
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(label.clone().into_bytes()),
            Attribute::Application(prefix.as_bytes().to_vec()),
            Attribute::Value(value_of(&label)),
        ];
        ck(&format!("C_CreateObject {label}"), s.create_object(&template))?;
        // Only now is the object committed: then, and only then, it is announced.
        if writeln!(out, "{label}").and_then(|_| out.flush()).is_err() {
            // The reader is gone (the test stopped listening): stop quietly.
            return Ok(());
        }
    }
    Ok(())
}

fn verify(s: &Session, prefix: &str, app: Option<&str>) -> Result<(), Fail> {
    let mut expected = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Fail::Usage(format!("reading stdin: {e}")))?;
        let line = line.trim();
        if !line.is_empty() {
            expected.push(line.to_string());
        }
    }
    let objs = objects(s, prefix, app)?;
    let mut problems = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, label, value) in &objs {
        *seen.entry(label.as_str()).or_default() += 1;
        if *value != value_of(label) {
            problems.push(format!("{label}: wrong CKA_VALUE ({} bytes, expected 256)", value.len()));
        }
    }
    for (label, n) in &seen {
        if *n > 1 {
            problems.push(format!("{label}: {n} objects carry this label"));
        }
    }
    for label in &expected {
        if !label.starts_with(prefix) {
            problems.push(format!("{label}: expected label does not start with {prefix:?}"));
        } else if !seen.contains_key(label.as_str()) {
            problems.push(format!("{label}: committed (printed) but missing"));
        }
    }
    if problems.is_empty() {
        println!("ok {}", objs.len());
        Ok(())
    } else {
        Err(Fail::Verify(format!(
            "{} problem(s) among {} objects with prefix {prefix:?} ({} expected):\n{}",
            problems.len(),
            objs.len(),
            expected.len(),
            problems.join("\n")
        )))
    }
}

/// Destroys every object (of any class: keys too) whose label starts with `prefix`.
fn destroy(s: &Session, prefix: &str) -> Result<(), Fail> {
    let mut n = 0;
    for h in ck("C_FindObjects", s.find_objects(&[]))? {
        let attrs = ck("C_GetAttributeValue", s.get_attributes(h, &[AttributeType::Label]))?;
        let label = attrs.into_iter().find_map(|a| match a {
            Attribute::Label(l) => Some(String::from_utf8_lossy(&l).into_owned()),
            _ => None,
        });
        if let Some(label) = label.filter(|l| l.starts_with(prefix)) {
            ck(&format!("C_DestroyObject {label}"), s.destroy_object(h))?;
            n += 1;
        }
    }
    println!("{n}");
    Ok(())
}

/// The `status` command: see the top of this file.
fn status(module: &str, chdir: Option<&str>) -> Result<(), Fail> {
    let p = ck("loading the module", Pkcs11::new(module))?;
    if let Some(dir) = chdir {
        std::env::set_current_dir(dir).map_err(|e| Fail::Usage(format!("--chdir {dir}: {e}")))?;
    }
    ck("C_Initialize", p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)))?;
    let info = ck("C_GetInfo", p.get_library_info())?;
    println!("library: {}", info.library_description());
    let slots = ck("C_GetSlotList", p.get_all_slots())?;
    let slot = slots.first().ok_or_else(|| Fail::Pkcs11("no slot".into()))?;
    let flags = ck("C_GetTokenInfo", p.get_token_info(*slot))?;
    println!("error-state: {}", if flags.error_state() { "yes" } else { "no" });
    ck("C_Finalize", p.finalize())
}

fn run(args: &[String]) -> Result<(), Fail> {
    let mut args = args.to_vec();
    let mut module = std::env::var("TESSERA_MODULE").ok();
    if let Some(i) = args.iter().position(|a| a == "--module") {
        if i + 1 >= args.len() {
            return Err(Fail::Usage("--module needs a path".into()));
        }
        module = Some(args.remove(i + 1));
        args.remove(i);
    }
    let mut app = None;
    if let Some(i) = args.iter().position(|a| a == "--app") {
        if i + 1 >= args.len() {
            return Err(Fail::Usage("--app needs a value".into()));
        }
        app = Some(args.remove(i + 1));
        args.remove(i);
    }
    let app = app.as_deref();
    let public = if let Some(i) = args.iter().position(|a| a == "--public") {
        args.remove(i);
        true
    } else {
        false
    };
    let module = module.ok_or_else(|| Fail::Usage("no module: give --module PATH or set TESSERA_MODULE".into()))?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["status"] => return status(&module, None),
        ["status", "--chdir", dir] => return status(&module, Some(dir)),
        _ => {}
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    if let ["login", token, pin] = a.as_slice() {
        return try_login(&module, token, pin);
    }
    let (p, s) = match a.as_slice() {
        [cmd, token, ..] if ["create", "count", "verify", "destroy", "setpin"].contains(cmd) => open(&module, token)?,
        _ => return Err(Fail::Usage(format!("bad arguments {a:?}"))),
    };
    let r = match a.as_slice() {
        ["create", _, prefix, n] => {
            let n = n.parse().map_err(|_| Fail::Usage(format!("N must be a number, not {n:?}")))?;
            create(&s, prefix, n, !public)
        }
        ["count", _, prefix] => objects(&s, prefix, app).map(|o| println!("{}", o.len())),
        ["verify", _, prefix] => verify(&s, prefix, app),
        ["destroy", _, prefix] => destroy(&s, prefix),
        ["setpin", _, new] => ck("C_SetPIN", s.set_pin(&AuthPin::new(pin().into()), &AuthPin::new((*new).into()))),
        _ => Err(Fail::Usage(format!("bad arguments {a:?}"))),
    };
    r?;
    ck("C_Logout", s.logout())?;
    ck("C_CloseSession", s.close())?;
    ck("C_Finalize", p.finalize())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(m)) => {
            eprintln!("tessera-testproc: {m}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Verify(m)) => {
            eprintln!("tessera-testproc: verification failed: {m}");
            ExitCode::from(1)
        }
        Err(Fail::Pkcs11(m)) => {
            eprintln!("tessera-testproc: {m}");
            ExitCode::from(3)
        }
    }
}
