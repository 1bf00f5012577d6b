//! The drop-in: a pipeline that sets `SOFTHSM2_CONF` and switches only the module path from
//! SoftHSMv2's library to Tessera's keeps its tokens. Driven through the built library, by
//! `pkcs11-tool` (another process) and by the `cryptoki` crate in this process:
//!
//! * a SoftHSMv2 user's flow (`softhsm2-util --init-token`, `pkcs11-tool --keypairgen` with
//!   SoftHSMv2), then the same script with Tessera's library: it lists the token (label and
//!   serial SoftHSMv2's), logs in, signs with the existing EC and RSA keys, and the signatures
//!   verify under the public keys SoftHSMv2 exported; SoftHSMv2's files are unchanged; this
//!   process, which had the token open before, sees the migrated token;
//! * SO login after user login and the reverse, across processes; SoftHSMv2's wrap of the other
//!   role's PIN stays in Tessera's store only until that role's first login;
//! * wrong PINs against a token not migrated yet are counted and lock it;
//! * `kill -9` during the first login's migration leaves the token waiting or migrated whole;
//! * the approved mode lists SoftHSMv2's tokens and logs in to none of them (`CKR_PIN_LOCKED`),
//!   counting nothing, and says why;
//! * the `db` backend fixture (SoftHSMv2 2.6.1 built with it): SoftHSMv2's own RSA signature is
//!   made again byte for byte, and an object SoftHSMv2 kept in clear loses the claims only a
//!   token makes.
//!
//! Skips with a message when SoftHSMv2, its tools or `../shared` are absent.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tessera_tests::*;

const SO: &str = "87654321";
const USER: &str = "123456";
const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn have_softhsm(what: &str) -> bool {
    if !Path::new(SOFTHSM).exists() {
        println!("SKIP {what}: {SOFTHSM} is not installed (tests/setup.sh installs softhsm2)");
        return false;
    }
    have_or_skip("softhsm2-util", what) && have_or_skip("pkcs11-tool", what)
}

fn tool(c: &mut Command) -> std::process::Output {
    let o = c.output().unwrap_or_else(|e| panic!("{}: {e}", describe(c)));
    assert!(o.status.success(), "{}: {}", describe(c), show(&o));
    o
}

/// A SoftHSMv2 store (`tokens/` and its `softhsm2.conf`, `extra` lines appended) with one token
/// per label (SO PIN [`SO`], user PIN [`USER`]), made by `softhsm2-util`.
struct Store {
    dir: tempfile::TempDir,
    tokens: PathBuf,
    conf: PathBuf,
}

fn store(labels: &[&str], extra: &str) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = INFO\n{extra}\n", tokens.display()),
    )
    .unwrap();
    for l in labels {
        tool(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &conf).args([
            "--init-token",
            "--free",
            "--label",
            l,
            "--so-pin",
            SO,
            "--pin",
            USER,
        ]));
    }
    Store { dir, tokens, conf }
}

impl Store {
    /// A command run as a pipeline with SoftHSMv2's configuration and no Tessera one.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_remove("TESSERA_CONF").env("SOFTHSM2_CONF", &self.conf).stdin(Stdio::null());
        // The suite's mode, whatever a test of this process has set for a while.
        c.env("TESSERA_MODE", if suite_approved() { "approved" } else { "non-approved" });
        c
    }

    /// The SoftHSMv2 token directory of `label`.
    fn token_dir(&self, label: &str) -> PathBuf {
        for e in std::fs::read_dir(&self.tokens).unwrap().flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let b = std::fs::read(p.join("token.object")).unwrap_or_default();
            if b.windows(label.len() + 1).any(|w| w[..label.len()] == *label.as_bytes() && w[label.len()] == b' ') {
                return p;
            }
        }
        panic!("no SoftHSMv2 token {label}")
    }
}

/// Whether the suite runs in the approved mode, as `TESSERA_MODE` said when first asked (a test
/// below sets it for a while, under the lock).
fn suite_approved() -> bool {
    static MODE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MODE.get_or_init(approved_mode)
}

/// This process's module, initialised as a pipeline's would be with `SOFTHSM2_CONF` (`conf`) and
/// no Tessera configuration, in the suite's mode or `mode` (`TESSERA_MODE`, put back when
/// dropped); finalised when dropped.
struct Lib(Pkcs11, Option<Option<std::ffi::OsString>>, #[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl std::ops::Deref for Lib {
    type Target = Pkcs11;
    fn deref(&self) -> &Pkcs11 {
        &self.0
    }
}

impl Drop for Lib {
    fn drop(&mut self) {
        let _ = self.0.clone().finalize();
        match self.1.take() {
            Some(Some(v)) => std::env::set_var("TESSERA_MODE", v),
            Some(None) => std::env::remove_var("TESSERA_MODE"),
            None => {}
        }
    }
}

fn tessera_in(conf: &Path, mode: Option<&str>) -> Lib {
    suite_approved();
    let g = lock();
    std::env::remove_var("TESSERA_CONF");
    std::env::set_var("SOFTHSM2_CONF", conf);
    let before = mode.map(|m| {
        let b = std::env::var_os("TESSERA_MODE");
        std::env::set_var("TESSERA_MODE", m);
        b
    });
    let p = Pkcs11::new(module_path()).expect("load module");
    let lib = Lib(p, before, g);
    lib.0.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).expect("C_Initialize");
    lib
}

fn tessera(s: &Store) -> Lib {
    tessera_in(&s.conf, None)
}

fn slot_of(p: &Pkcs11, label: &str) -> Slot {
    p.get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p.get_token_info(*s).is_ok_and(|t| t.label() == label))
        .unwrap_or_else(|| panic!("no token {label:?}"))
}

fn description(p: &Pkcs11, slot: Slot) -> String {
    p.get_slot_info(slot).unwrap().slot_description().trim_end().to_string()
}

fn login(s: &Session, who: UserType, pin: &str) -> Option<RvError> {
    outcome(s.login(who, Some(&AuthPin::new(pin.into()))))
}

fn pending(p: &Pkcs11, slot: Slot) -> bool {
    let d = description(p, slot);
    assert!(d.contains("SoftHSMv2"), "{d}");
    d.starts_with("SoftHSMv2 token ")
}

/// The 72-byte PIN blobs of a SoftHSMv2 token (file backend): (SO, user).
fn softhsm_blobs(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let b = std::fs::read(dir.join("token.object")).unwrap();
    let u = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let (mut at, mut so, mut user) = (8, Vec::new(), Vec::new());
    while at + 16 <= b.len() {
        let (t, kind) = (u(at), u(at + 8));
        at += 16;
        let len = match kind {
            1 => 1,
            2 => 8,
            3 => {
                let n = u(at);
                let v = b[at + 8..at + 8 + n].to_vec();
                match t {
                    0x8000_534C => so = v,
                    0x8000_534D => user = v,
                    _ => {}
                }
                8 + n
            }
            _ => panic!("unexpected kind {kind} in token.object"),
        };
        at += len;
    }
    assert_eq!((so.len(), user.len()), (72, 72));
    (so, user)
}

/// Whether `needle` is anywhere in the files of Tessera's copy of a token.
fn in_tessera_store(s: &Store, needle: &[u8]) -> bool {
    let store = s.tokens.join(".tessera");
    let mut found = false;
    for e in std::fs::read_dir(&store).unwrap().flatten() {
        if !e.file_type().unwrap().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(e.path()).unwrap().flatten() {
            if f.file_type().unwrap().is_file() {
                let b = std::fs::read(f.path()).unwrap();
                found |= b.windows(needle.len()).any(|w| w == needle);
            }
        }
    }
    found
}

/// SHA-256 of every file of a directory (name and contents), but SoftHSMv2's empty lock files.
fn hash_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    use sha2::Digest;
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                sha2::Sha256::digest(std::fs::read(e.path()).unwrap()).to_vec(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The same pipeline script, run with SoftHSMv2's library first and then with Tessera's.
const SCRIPT: &str = r#"set -e
pkcs11-tool --module "$MODULE" --list-token-slots
openssl dgst -sha256 -binary msg > msg.sha256
pkcs11-tool --module "$MODULE" --token-label ci --login --pin "$PIN" \
    --sign --id 01 -m ECDSA --signature-format openssl -i msg.sha256 -o "ec-$OUT.sig"
pkcs11-tool --module "$MODULE" --token-label ci --login --pin "$PIN" \
    --sign --id 02 -m SHA256-RSA-PKCS -i msg -o "rsa-$OUT.sig"
"#;

#[test]
fn a_softhsm2_pipeline_keeps_working_with_only_the_module_path_switched() {
    if !have_softhsm("the drop-in pipeline") || !have_or_skip("openssl", "the drop-in pipeline") {
        return;
    }
    let s = store(&["ci"], "");
    let work = s.dir.path();
    std::fs::write(work.join("msg"), b"release 1.2.3\n").unwrap();
    for (kt, id) in [("EC:prime256v1", "01"), ("rsa:2048", "02")] {
        tool(
            s.command("pkcs11-tool")
                .args(["--module", SOFTHSM, "--token-label", "ci", "--login", "--pin", USER])
                .args(["--keypairgen", "--key-type", kt, "--id", id, "--label", &format!("key{id}")]),
        );
        tool(
            s.command("pkcs11-tool")
                .current_dir(work)
                .args(["--module", SOFTHSM, "--read-object", "--type", "pubkey"])
                .args(["--id", id, "-o", &format!("pub{id}.der")]),
        );
        tool(Command::new("openssl").current_dir(work).args(["pkey", "-pubin", "-inform", "DER", "-in"]).args([
            format!("pub{id}.der"),
            "-out".into(),
            format!("pub{id}.pem"),
        ]));
    }
    let run = |module: &Path, out: &str| {
        let o = s
            .command("bash")
            .current_dir(work)
            .args(["-c", SCRIPT])
            .env("MODULE", module)
            .env("PIN", USER)
            .env("OUT", out)
            .output()
            .unwrap();
        (o.status.success(), show(&o))
    };
    let (ok, text) = run(Path::new(SOFTHSM), "softhsm");
    assert!(ok, "the script with SoftHSMv2: {text}");
    let source = s.token_dir("ci");
    let before = hash_dir(&source);
    let serial = {
        let b = std::fs::read(source.join("token.object")).unwrap();
        let name = source.file_name().unwrap().to_string_lossy().into_owned();
        assert!(b.len() > 16);
        name[19..23].to_string() + &name[24..]
    };

    // This process opens the token before the pipeline's first login: it waits for it.
    let p = tessera(&s);
    let slot = slot_of(&p, "ci");
    let info = p.get_token_info(slot).unwrap();
    assert_eq!(info.serial_number(), serial, "SoftHSMv2's serial");
    assert!(info.token_initialized() && info.login_required() && info.user_pin_initialized(), "{info:?}");
    assert!(pending(&p, slot));
    // What SoftHSMv2 shows without a login: the public keys, and nothing else.
    let early = p.open_ro_session(slot).unwrap();
    let shown = early.find_objects(&[]).unwrap();
    assert_eq!(shown.len(), 2, "the public keys before a login");
    let kinds = early.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)]).unwrap();
    assert_eq!(kinds.len(), 2);
    let ec_public = [Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::KeyType(cryptoki::object::KeyType::EC)];
    let ec = early.find_objects(&ec_public).unwrap();
    assert_eq!(ec.len(), 1);
    let ec_point_before = bytes_attr(&early, ec[0], AttributeType::EcPoint);

    let module = module_path();
    let (ok, text) = run(&module, "tessera");
    if suite_approved() {
        assert!(!ok, "the approved mode logs in to no SoftHSMv2 token: {text}");
        assert!(text.contains("CKR_PIN_LOCKED") && text.contains("tessera-migrate"), "{text}");
        assert!(pending(&p, slot));
        assert_eq!(hash_dir(&source), before);
        println!("approved mode: the SoftHSMv2 token is listed, and its login refused with the reason");
        return;
    }
    assert!(ok, "the same script with Tessera's library: {text}");
    assert!(text.contains("ci") && text.contains(&serial), "the token as SoftHSMv2 listed it: {text}");
    assert!(text.contains("migrated from SoftHSMv2") && text.contains("no longer updated"), "the log says so: {text}");
    for (alg, id) in [("ec", "01"), ("rsa", "02")] {
        let o = Command::new("openssl")
            .current_dir(work)
            .args([
                "dgst",
                "-sha256",
                "-verify",
                &format!("pub{id}.pem"),
                "-signature",
                &format!("{alg}-tessera.sig"),
                "msg",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{alg} signature by the migrated key under SoftHSMv2's public key: {}", show(&o));
    }
    // RSA PKCS#1 v1.5 is deterministic: the same signature SoftHSMv2 made.
    assert_eq!(
        std::fs::read(work.join("rsa-tessera.sig")).unwrap(),
        std::fs::read(work.join("rsa-softhsm.sig")).unwrap()
    );
    assert_eq!(hash_dir(&source), before, "SoftHSMv2's files are untouched");
    assert!(s.tokens.join(".tessera").join(&serial).join("tessera.db").is_file());

    // The process that had it open sees the migrated token, its objects and the user's login.
    assert!(!pending(&p, slot), "{}", description(&p, slot));
    let public = early.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)]).unwrap();
    assert_eq!(public.len(), 2, "the public keys once, the migration's");
    let ec = early.find_objects(&ec_public).unwrap();
    assert_eq!(bytes_attr(&early, ec[0], AttributeType::EcPoint), ec_point_before, "the same public key");
    let rw = p.open_rw_session(slot).unwrap();
    assert_eq!(login(&rw, UserType::User, USER), None);
    let keys = rw.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap();
    assert_eq!(keys.len(), 2);
    let sig = rw
        .sign(
            &Mechanism::Sha256RsaPkcs,
            rw.find_objects(&[Attribute::Id(vec![2]), Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap()[0],
            b"release 1.2.3\n",
        )
        .unwrap();
    assert_eq!(sig, std::fs::read(work.join("rsa-softhsm.sig")).unwrap());

    // tessera-util follows the same configuration and says what happened.
    drop(rw);
    drop(early);
    let o = tool(s.command(util_path().to_str().unwrap()).arg("--show-slots"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&serial) && text.contains("SoftHSMv2 copy is no longer updated"), "{text}");
}

#[test]
fn both_pins_log_in_in_either_order_and_softhsm2_wraps_leave_the_store() {
    if !have_softhsm("the drop-in's two PINs") {
        return;
    }
    if suite_approved() {
        println!("SKIP the drop-in's two PINs: the approved mode logs in to no SoftHSMv2 token (tested below)");
        return;
    }
    let s = store(&["user-first", "so-first"], "");
    let (so_a, user_a) = softhsm_blobs(&s.token_dir("user-first"));
    let (so_b, user_b) = softhsm_blobs(&s.token_dir("so-first"));
    let module = module_path();
    let pkcs11_tool = |label: &str, args: &[&str]| {
        let mut c = s.command("pkcs11-tool");
        c.args(["--module", module.to_str().unwrap(), "--token-label", label]).args(args);
        tool(&mut c)
    };
    // User first, in another process: the SO keeps SoftHSMv2's wrap until its own first login.
    pkcs11_tool("user-first", &["--login", "--pin", USER, "--list-objects"]);
    assert!(!in_tessera_store(&s, &user_a), "the user's SoftHSMv2 wrap is not kept");
    assert!(in_tessera_store(&s, &so_a), "the SO's SoftHSMv2 wrap waits for the SO");
    {
        let p = tessera(&s);
        let a = slot_of(&p, "user-first");
        assert!(!pending(&p, a));
        let sa = p.open_rw_session(a).unwrap();
        assert_eq!(login(&sa, UserType::So, "99999999"), Some(RvError::PinIncorrect), "a wrong SO PIN");
        assert!(p.get_token_info(a).unwrap().so_pin_count_low(), "counted");
        assert_eq!(login(&sa, UserType::So, SO), None, "SO after user");
        assert!(!p.get_token_info(a).unwrap().so_pin_count_low(), "the failure taken back");
        sa.logout().unwrap();
        assert!(!in_tessera_store(&s, &so_a), "the SO's SoftHSMv2 wrap is gone after its login");
        // SO first, in this process.
        let b = slot_of(&p, "so-first");
        let sb = p.open_rw_session(b).unwrap();
        assert_eq!(login(&sb, UserType::So, SO), None);
        sb.logout().unwrap();
        assert!(!pending(&p, b));
        assert!(in_tessera_store(&s, &user_b) && !in_tessera_store(&s, &so_b));
    }
    // The user after the SO, in another process: it sees the keys.
    pkcs11_tool("so-first", &["--login", "--pin", USER, "--list-objects"]);
    assert!(!in_tessera_store(&s, &user_b), "the user's SoftHSMv2 wrap is gone after its login");
    // Each role again, with its Tessera wrap now; wrong PINs stay wrong.
    let p = tessera(&s);
    for label in ["user-first", "so-first"] {
        let sess = p.open_rw_session(slot_of(&p, label)).unwrap();
        for (who, pin) in [(UserType::User, USER), (UserType::So, SO)] {
            assert_eq!(login(&sess, who, "00000000"), Some(RvError::PinIncorrect), "{label}: {who:?}");
            assert_eq!(login(&sess, who, pin), None, "{label}: {who:?} again");
            sess.logout().unwrap();
        }
    }
    for blob in [&so_a, &user_a, &so_b, &user_b] {
        assert!(!in_tessera_store(&s, blob), "no SoftHSMv2 wrap is left in Tessera's store");
    }
}

#[test]
fn wrong_pins_against_a_token_not_migrated_are_counted() {
    if !have_softhsm("wrong PINs in the drop-in") {
        return;
    }
    if suite_approved() {
        println!("SKIP wrong PINs in the drop-in: the approved mode logs in to no SoftHSMv2 token");
        return;
    }
    let s = store(&["locked", "other"], "pin.max_failures = 3");
    let p = tessera(&s);
    let slot = slot_of(&p, "locked");
    let sess = p.open_rw_session(slot).unwrap();
    assert_eq!(login(&sess, UserType::User, "000000"), Some(RvError::PinIncorrect));
    assert!(p.get_token_info(slot).unwrap().user_pin_count_low());
    assert!(pending(&p, slot), "a wrong PIN migrates nothing");
    // Another process's wrong PIN counts on the same counter.
    let o = s
        .command("pkcs11-tool")
        .args([
            "--module",
            module_path().to_str().unwrap(),
            "--token-label",
            "locked",
            "--login",
            "--pin",
            "111111",
            "-O",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success() && show(&o).contains("CKR_PIN_INCORRECT"), "{}", show(&o));
    assert!(p.get_token_info(slot).unwrap().user_pin_final_try());
    assert_eq!(login(&sess, UserType::User, "222222"), Some(RvError::PinIncorrect));
    assert_eq!(login(&sess, UserType::User, USER), Some(RvError::PinLocked), "locked: the right PIN too");
    assert!(p.get_token_info(slot).unwrap().user_pin_locked());
    assert!(pending(&p, slot));
    // The SO's PIN is counted apart, and its login migrates the token.
    assert_eq!(login(&sess, UserType::So, SO), None);
    assert!(!pending(&p, slot));
    sess.logout().unwrap();
    // On the migrated token, the user's SoftHSMv2 wrap still counts (and the lock holds).
    assert_eq!(login(&sess, UserType::User, USER), Some(RvError::PinLocked));
    // A wrong SO PIN on another token migrated by its user: counted too.
    let other = slot_of(&p, "other");
    let o = p.open_rw_session(other).unwrap();
    assert_eq!(login(&o, UserType::User, USER), None);
    o.logout().unwrap();
    assert_eq!(login(&o, UserType::So, "00000000"), Some(RvError::PinIncorrect));
    assert!(p.get_token_info(other).unwrap().so_pin_count_low());
    assert_eq!(login(&o, UserType::So, SO), None);
    assert!(!p.get_token_info(other).unwrap().so_pin_count_low());
}

#[test]
fn the_approved_mode_lists_softhsm2_tokens_and_logs_in_to_none() {
    if !have_softhsm("the drop-in in the approved mode") {
        return;
    }
    let s = store(&["strict"], "");
    // The approved mode in this process, the non-approved one in others (pkcs11-tool).
    let in_approved = |label: &str, who: UserType, pin: &str| {
        let p = tessera_in(&s.conf, Some("approved"));
        let slot = slot_of(&p, label);
        let info = p.get_token_info(slot).unwrap();
        let sess = p.open_rw_session(slot).unwrap();
        (info, login(&sess, who, pin), description(&p, slot).starts_with("SoftHSMv2 token "))
    };
    let (info, user, waiting) = in_approved("strict", UserType::User, USER);
    assert!(info.token_initialized() && info.user_pin_locked() && info.so_pin_locked(), "{info:?}");
    assert_eq!(user, Some(RvError::PinLocked));
    assert!(waiting);
    assert_eq!(in_approved("strict", UserType::So, SO).1, Some(RvError::PinLocked));
    // Another process says why.
    let module = module_path();
    let o = Command::new("pkcs11-tool")
        .env_remove("TESSERA_CONF")
        .env("SOFTHSM2_CONF", &s.conf)
        .env("TESSERA_MODE", "approved")
        .args(["--module", module.to_str().unwrap(), "--token-label", "strict", "--login", "--pin", USER, "-O"])
        .output()
        .unwrap();
    let text = show(&o);
    assert!(!o.status.success() && text.contains("CKR_PIN_LOCKED"), "{text}");
    assert!(text.contains("tessera-migrate from-softhsm2"), "the log names the way out: {text}");
    // Nothing was counted: in the non-approved mode the token shows no failure, and its first
    // login migrates it. (Another token of the store is migrated the way the log says.)
    let non_approved = |args: &[&str]| {
        let mut c = s.command("pkcs11-tool");
        c.env("TESSERA_MODE", "non-approved").args(["--module", module.to_str().unwrap()]).args(args);
        tool(&mut c)
    };
    let listed = String::from_utf8_lossy(&non_approved(&["--list-token-slots"]).stdout).into_owned();
    assert!(listed.contains("strict") && !listed.contains("count low") && !listed.contains("locked"), "{listed}");
    non_approved(&["--token-label", "strict", "--login", "--pin", USER, "-O"]);
    // Migrated, but the SO's SoftHSMv2 wrap still opens the token key: still refused.
    let (_, user, waiting) = in_approved("strict", UserType::User, USER);
    assert_eq!((user, waiting), (Some(RvError::PinLocked), false));
    // Once the SO has logged in too (changing its PIN to itself), the approved mode uses it.
    non_approved(&[
        "--token-label",
        "strict",
        "--login",
        "--login-type",
        "so",
        "--so-pin",
        SO,
        "--change-pin",
        "--new-pin",
        SO,
    ]);
    let (info, user, _) = in_approved("strict", UserType::User, USER);
    assert_eq!(user, None, "{info:?}");
    assert!(!info.user_pin_locked() && !info.so_pin_locked());

    // The way the log names: `tessera-migrate from-softhsm2` with both PINs, in the same
    // environment, puts the token where the drop-in looks, in place of the waiting one.
    tool(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &s.conf).args([
        "--init-token",
        "--free",
        "--label",
        "tool",
        "--so-pin",
        SO,
        "--pin",
        USER,
    ]));
    let (_, user, waiting) = in_approved("tool", UserType::User, USER);
    assert_eq!((user, waiting), (Some(RvError::PinLocked), true));
    let migrate = module.with_file_name("tessera-migrate");
    tool(
        s.command(migrate.to_str().unwrap())
            .env("TESSERA_MODE", "approved")
            .env("TESSERA_MIGRATE_PIN", USER)
            .env("TESSERA_MIGRATE_SO_PIN", SO)
            .args(["from-softhsm2", "--token", "tool"]),
    );
    let (info, user, _) = in_approved("tool", UserType::User, USER);
    assert_eq!(user, None, "{info:?}");
    assert!(!info.user_pin_locked() && !info.so_pin_locked());
}

/// Many objects, made with SoftHSMv2's library in this process.
fn fill(s: &Store, label: &str, n: usize) {
    let _g = lock();
    std::env::set_var("SOFTHSM2_CONF", &s.conf);
    let p = Pkcs11::new(SOFTHSM).unwrap();
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    {
        let sess = p.open_rw_session(slot_of(&p, label)).unwrap();
        sess.login(UserType::User, Some(&AuthPin::new(USER.into()))).unwrap();
        for i in 0..n {
            let id = (i as u32).to_be_bytes().to_vec();
            sess.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(cryptoki::object::KeyType::AES),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Id(id.clone()),
                Attribute::Value([&id[..], &[7u8; 28][..]].concat()),
            ])
            .unwrap();
            sess.create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Label(format!("data {i}").into_bytes()),
                Attribute::Value(id),
            ])
            .unwrap();
        }
    }
    p.finalize().unwrap();
}

#[test]
fn killed_during_the_first_login_the_token_is_waiting_or_migrated_whole() {
    if !have_softhsm("kill -9 during the drop-in's migration") {
        return;
    }
    if suite_approved() {
        println!("SKIP kill -9 during the drop-in's migration: the approved mode migrates nothing at a login");
        return;
    }
    const PAIRS: usize = 300;
    let s = store(&["big"], "log.level = ERROR");
    fill(&s, "big", PAIRS);
    let source = s.token_dir("big");
    let before = hash_dir(&source);
    let store = s.tokens.join(".tessera");
    let migrate = || {
        s.command("pkcs11-tool")
            .args(["--module", module_path().to_str().unwrap(), "--token-label", "big", "--login", "--pin", USER, "-O"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a whole first login takes here.
    let t0 = std::time::Instant::now();
    assert!(migrate().wait().unwrap().success());
    let whole = t0.elapsed();
    println!("a first login with its migration of {} objects: {whole:?}", 2 * PAIRS);
    let (mut waiting, mut migrated) = (0, 0);
    for round in 0..20u64 {
        let _ = std::fs::remove_dir_all(&store);
        let mut child = migrate();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
        let delay = whole.mul_f64(((nanos ^ (round * 2654435761)) % 1000) as f64 / 1000.0 * 1.2);
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let p = tessera(&s);
        let slot = slot_of(&p, "big");
        let sess = p.open_rw_session(slot).unwrap();
        if pending(&p, slot) {
            // Its public objects (SoftHSMv2 shows them without a login), and nothing else.
            let n = sess.find_objects(&[]).unwrap().len();
            assert_eq!(n, PAIRS, "round {round}: a waiting token shows its public objects only");
            waiting += 1;
        } else {
            assert_eq!(sess.find_objects(&[]).unwrap().len(), PAIRS, "round {round}: the public objects, whole");
            assert_eq!(login(&sess, UserType::User, USER), None, "round {round}");
            assert_eq!(sess.find_objects(&[]).unwrap().len(), 2 * PAIRS, "round {round}: every object");
            migrated += 1;
        }
        // And a login afterwards finishes (or finds) the migration.
        let _ = sess.logout();
        assert_eq!(login(&sess, UserType::User, USER), None, "round {round}: a login after the kill");
        assert_eq!(sess.find_objects(&[]).unwrap().len(), 2 * PAIRS, "round {round}");
    }
    println!("killed at random points: {waiting} left the token waiting, {migrated} migrated whole");
    assert_eq!(hash_dir(&source), before, "SoftHSMv2's files are untouched");
}

#[test]
fn the_db_backend_fixture_migrates_at_its_first_login() {
    if suite_approved() {
        println!("SKIP the db fixture's drop-in: the approved mode logs in to no SoftHSMv2 token");
        return;
    }
    let Some(shared) = shared_dir() else {
        println!("SKIP the db fixture's drop-in: ../shared is absent");
        return;
    };
    let src = shared.join("fixtures/softhsm2/db");
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        let o = Command::new("cp").arg("-r").arg(from).arg(to).output().unwrap();
        assert!(o.status.success(), "{}", show(&o));
        Command::new("chmod").args(["-R", "u+w"]).arg(to).output().unwrap();
    };
    copy(&src, &dir.path().join("db"));
    let root = dir.path().join("db");
    let tokens = root.join("tokens");
    let conf = root.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = db\nlog.level = ERROR\n", tokens.display()),
    )
    .unwrap();
    let s = Store { dir, tokens: tokens.clone(), conf };
    let sources: Vec<PathBuf> = std::fs::read_dir(&tokens).unwrap().flatten().map(|e| e.path()).collect();
    let before: Vec<_> = sources.iter().map(|d| hash_dir(d)).collect();
    let p = tessera(&s);
    let slot = slot_of(&p, "fixture-db");
    assert!(pending(&p, slot));
    let sess = p.open_rw_session(slot).unwrap();
    // Before the login: SoftHSMv2's public data object is shown; an application adds one of its own.
    let label = |l: &str| vec![Attribute::Class(ObjectClass::DATA), Attribute::Label(l.as_bytes().to_vec())];
    assert_eq!(sess.find_objects(&label("data-public")).unwrap().len(), 1);
    assert_eq!(sess.find_objects(&label("data-private")).unwrap().len(), 0);
    let mut mine = label("made-before-login");
    mine.extend([Attribute::Token(true), Attribute::Private(false), Attribute::Value(b"x".to_vec())]);
    sess.create_object(&mine).unwrap();
    assert_eq!(login(&sess, UserType::User, USER), None);
    assert!(!pending(&p, slot));
    // Each once: the migration's copy replaced the one shown, and the application's stays.
    for l in ["data-public", "data-private", "made-before-login"] {
        assert_eq!(sess.find_objects(&label(l)).unwrap().len(), 1, "{l}");
    }
    // SoftHSMv2's own signature (PKCS#1 v1.5: deterministic), made again by the migrated key.
    let checks = root.join("checks");
    let key = sess.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Id(vec![1])]).unwrap();
    assert_eq!(key.len(), 1);
    let sig = sess.sign(&Mechanism::Sha256RsaPkcs, key[0], &std::fs::read(checks.join("plain.bin")).unwrap()).unwrap();
    assert_eq!(sig, std::fs::read(checks.join("rsa-sha256-id01.sig")).unwrap());
    // The AES key SoftHSMv2 kept in clear: its value is Tessera's to protect now, and what only a
    // token may claim of a key (made here, never extractable) is not believed of a file anyone
    // who can write SoftHSMv2's store could have planted.
    let clear = sess.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(vec![3])]).unwrap();
    assert_eq!(clear.len(), 1);
    let a = sess
        .get_attributes(clear[0], &[AttributeType::Local, AttributeType::NeverExtractable, AttributeType::Trusted])
        .unwrap();
    assert!(
        a.iter().all(|x| matches!(
            x,
            Attribute::Local(false) | Attribute::NeverExtractable(false) | Attribute::Trusted(false)
        )),
        "{a:?}"
    );
    let private = sess.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(vec![4])]).unwrap();
    let a = sess.get_attributes(private[0], &[AttributeType::Local, AttributeType::NeverExtractable]).unwrap();
    assert!(a.iter().all(|x| matches!(x, Attribute::Local(true) | Attribute::NeverExtractable(true))), "{a:?}");
    // The second token still waits; SoftHSMv2's files are unchanged.
    assert!(pending(&p, slot_of(&p, "second-db")));
    for (d, b) in sources.iter().zip(&before) {
        assert_eq!(&hash_dir(d), b, "{}", d.display());
    }
}

#[test]
fn c_inittoken_on_the_free_slot_makes_a_tessera_token_beside_them() {
    if !have_softhsm("C_InitToken in the drop-in") {
        return;
    }
    let s = store(&["old"], "");
    let p = tessera(&s);
    let free = p.get_all_slots().unwrap().into_iter().find(|x| !p.get_token_info(*x).unwrap().token_initialized());
    let free = free.expect("a free slot");
    p.init_token(free, &AuthPin::new("12345678".into()), "new").unwrap();
    let slot = slot_of(&p, "new");
    assert!(description(&p, slot).starts_with("Tessera slot"), "{}", description(&p, slot));
    let serial = p.get_token_info(slot).unwrap().serial_number().to_string();
    assert!(s.tokens.join(".tessera").join(&serial).join("tessera.db").is_file());
    assert!(pending(&p, slot_of(&p, "old")));
    // SoftHSMv2 itself still lists its token, and is not confused by Tessera's store.
    let o = tool(s.command("softhsm2-util").arg("--show-slots"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("old"), "{text}");
}

/// A SoftHSMv2 token directory copied (or planted) beside the original has its serial: neither is
/// shown, since the serial's PINs could open either; the others are.
#[test]
fn two_softhsm2_tokens_with_one_serial_are_neither_shown() {
    if !have_softhsm("SoftHSMv2 tokens with one serial") {
        return;
    }
    let s = store(&["orig", "kept"], "");
    let orig = s.token_dir("orig");
    let copy = s.tokens.join("00000000-0000-0000-0000-000000000000");
    let o = Command::new("cp").arg("-r").arg(&orig).arg(&copy).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let p = tessera(&s);
    let labels: Vec<String> = p
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .filter_map(|x| p.get_token_info(x).ok())
        .map(|t| t.label().to_string())
        .collect();
    assert!(labels.contains(&"kept".to_string()) && !labels.contains(&"orig".to_string()), "{labels:?}");
}

/// Processes that log in for the first time at once: each logs in, and the token is migrated once
/// (the later ones find it done and check their PIN against it).
#[test]
fn first_logins_at_once_migrate_once() {
    if !have_softhsm("first logins at once") {
        return;
    }
    if suite_approved() {
        println!("SKIP first logins at once: the approved mode migrates nothing at a login");
        return;
    }
    const PAIRS: usize = 100;
    let s = store(&["race"], "");
    fill(&s, "race", PAIRS);
    let module = module_path();
    for round in 0..3 {
        let _ = std::fs::remove_dir_all(s.tokens.join(".tessera"));
        let children: Vec<_> = (0..3)
            .map(|i| {
                let (who, pin) = if i == 2 { ("so", SO) } else { ("user", USER) };
                let mut c = s.command("pkcs11-tool");
                c.args(["--module", module.to_str().unwrap(), "--token-label", "race", "--login", "--login-type", who]);
                if who == "so" {
                    c.args(["--so-pin", pin, "--change-pin", "--new-pin", pin]);
                } else {
                    c.args(["--pin", pin, "-O"]);
                }
                c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        let mut migrations = 0;
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", show(&o));
            migrations += String::from_utf8_lossy(&o.stderr).matches("migrated from SoftHSMv2").count();
        }
        assert_eq!(migrations, 1, "round {round}: one process migrates");
        let p = tessera(&s);
        let slot = slot_of(&p, "race");
        assert!(!pending(&p, slot));
        let sess = p.open_rw_session(slot).unwrap();
        assert_eq!(login(&sess, UserType::User, USER), None);
        assert_eq!(sess.find_objects(&[]).unwrap().len(), 2 * PAIRS, "round {round}: migrated once");
        let info = p.get_token_info(slot).unwrap();
        assert!(!info.user_pin_count_low() && !info.so_pin_count_low(), "round {round}: no failure left: {info:?}");
    }
}
