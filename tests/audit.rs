//! The audit log through the real library: a run of operations is recorded and verifies with
//! the seed, each record has the right `fips_approved`, and no PIN, key value, data or signature
//! reaches the log; the library fails closed when it cannot write; four processes append to one
//! log; a process killed with `-9` at random points loses no call that returned.
//!
//! Children are this test binary run again with `TESSERA_AUDIT_CHILD` set (see [`child`]).

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tessera_audit::verify::{self, End};
use tessera_tests::*;

// PINs of this suite, distinct enough to be looked for in the log.
const SO_PIN_A: &str = "Audit-SO-PIN-93kd";
const USER_PIN_A: &str = "Audit-User-PIN-x7Qm";
const USER_PIN_B: &str = "Audit-New-PIN-p4Lz";
const WRONG_PIN: &str = "Wrong-PIN-zz81";
const KEY_VALUE: &[u8; 32] = b"audit-hmac-key-value-0123456789!";
const KEY_LABEL: &str = "secret-label-Zk3q";
const KEY_ID: &[u8] = b"id-7741";
const DATA: &[u8] = b"audit plaintext that must never be in the log";
const CHILD: &str = "TESSERA_AUDIT_CHILD";

/// A chain made with `tessera_audit::writer::init`: its directory and the seed file.
struct Chain {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    seed: PathBuf,
}

fn chain() -> Chain {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, seed) = (tmp.path().join("log"), tmp.path().join("seed"));
    tessera_audit::writer::init(&dir, &seed).expect("tessera_audit::writer::init");
    Chain { _tmp: tmp, dir, seed }
}

impl Chain {
    fn verify(&self) -> verify::Summary {
        let seed = verify::read_seed(&self.seed).unwrap();
        verify::verify_path(&self.dir, &seed, 2).unwrap()
    }

    /// The records of every file of the log, oldest first.
    fn records(&self) -> Vec<Value> {
        let (files, _) = verify::log_files(&self.dir, None).unwrap();
        let text: String = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn public(&self, keys: &tessera_audit::checkpoint::PublicKeys) -> verify::Summary {
        let st = std::fs::read(self.dir.join("audit.state")).unwrap();
        let (files, missing) = verify::log_files(&self.dir, Some(&st)).unwrap();
        assert!(missing.is_none(), "{missing:?}");
        tessera_audit::public::verify_files(&files, Some(&st), keys, None).unwrap()
    }

    fn conf_line(&self) -> String {
        format!("audit.dir = {}", self.dir.display())
    }
}

fn mode() -> &'static str {
    if approved_mode() {
        "approved"
    } else {
        "non-approved"
    }
}

/// SHA-256 over each of `CKA_ID` and `CKA_LABEL` preceded by its length (8 bytes, big-endian),
/// as a record's `key_id_label_sha256`.
fn id_label_hash(id: &[u8], label: &[u8]) -> String {
    let mut h = Sha256::new();
    for v in [id, label] {
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn find<'a>(recs: &'a [Value], function: &str) -> Vec<&'a Value> {
    recs.iter().filter(|r| r["function"] == function).collect()
}

/// The `tessera-audit` binary: `$TESSERA_AUDIT_BIN`, else `target/release/tessera-audit`.
fn audit_bin() -> Option<PathBuf> {
    let p = std::env::var_os("TESSERA_AUDIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release/tessera-audit"));
    p.exists().then_some(p)
}

#[test]
fn a_run_is_recorded_verifies_and_keeps_no_secret() {
    // Read before the test takes TESSERA_MODE out of the environment (the configuration says it).
    let approved = approved_mode();
    let mode_name = mode();
    let c = chain();
    let _g = lock();
    let env = Env::new(&format!("{}\ntessera.mode = {}", c.conf_line(), mode_name));
    std::env::remove_var("TESSERA_MODE");
    env.activate();
    let p = Pkcs11::new(module_path()).unwrap();
    p.initialize(init_args()).unwrap();
    let slot =
        p.get_all_slots().unwrap().into_iter().find(|s| !p.get_token_info(*s).unwrap().token_initialized()).unwrap();
    p.init_token(slot, &AuthPin::from(SO_PIN_A), "audit").unwrap();
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::from(SO_PIN_A))).unwrap();
    s.init_pin(&AuthPin::from(USER_PIN_A)).unwrap();
    s.logout().unwrap();
    assert!(s.login(UserType::User, Some(&AuthPin::from(WRONG_PIN))).is_err());
    s.login(UserType::User, Some(&AuthPin::from(USER_PIN_A))).unwrap();
    s.set_pin(&AuthPin::from(USER_PIN_A), &AuthPin::from(USER_PIN_B)).unwrap();
    let key = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Value(KEY_VALUE.to_vec()),
            Attribute::Label(KEY_LABEL.as_bytes().to_vec()),
            Attribute::Id(KEY_ID.to_vec()),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Token(false),
        ])
        .unwrap();
    let sig = s.sign(&Mechanism::Sha256Hmac, key, DATA).unwrap();
    s.verify(&Mechanism::Sha256Hmac, key, DATA, &sig).unwrap();
    let aes =
        s.generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(32.into()), Attribute::Token(false)]).unwrap();
    // A DES key: not approved (refused in the approved mode).
    let des = s.generate_key(&Mechanism::DesKeyGen, &[Attribute::Token(false)]);
    assert_eq!(des.is_err(), approved, "{des:?}");
    s.destroy_object(aes).unwrap();
    s.logout().unwrap();
    drop(s);
    p.finalize().unwrap();

    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    assert_eq!(sum.end, End::Anchored);
    let recs = c.records();
    assert_eq!(recs.len() as u64, sum.records);
    let init = &recs[0];
    assert_eq!(init["function"], "C_Initialize");
    assert_eq!(init["mode"], mode_name);
    assert!(init["detail"].as_str().unwrap().contains("self-tests passed"), "{init}");
    // C_Finalize, then the signed checkpoint that seals the run.
    assert_eq!(recs[recs.len() - 2]["function"], "C_Finalize");
    let last = recs.last().unwrap();
    assert_eq!((last["function"].as_str(), last["mode"].as_str()), (Some("checkpoint"), Some(mode_name)));
    let keys = tessera_audit::checkpoint::PublicKeys::read(&c.dir.join("audit.pub")).unwrap();
    let note = tessera_audit::checkpoint::Note::verify(last["checkpoint"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(note.size, recs.len() as u64 - 1);
    let public = c.public(&keys);
    assert!(public.failure.is_none(), "{:?}", public.failure);
    assert_eq!((public.checkpoints, public.sealed, public.unsealed_tail), (1, Some(note.size), Some(0)));
    for f in ["C_InitToken", "C_InitPIN", "C_SetPIN", "C_CreateObject", "C_DestroyObject"] {
        assert_eq!(find(&recs, f).len(), 1, "{f}");
    }
    assert_eq!(find(&recs, "C_Logout").len(), 2, "the SO's and the user's");
    let logins = find(&recs, "C_Login");
    assert_eq!(logins.len(), 3);
    assert_eq!(logins[1]["rv"], "CKR_PIN_INCORRECT");
    assert_eq!(logins[2]["rv"], "CKR_OK");
    let sign = find(&recs, "C_Sign");
    assert_eq!(sign.len(), 1, "one record per completed operation (not C_SignInit, not the length query)");
    let sign = sign[0];
    assert_eq!(sign["fips_approved"], true, "{sign}");
    assert_eq!((sign["mechanism"].as_str(), sign["mechanism_id"].as_u64()), (Some("CKM_SHA256_HMAC"), Some(0x251)));
    assert_eq!(sign["op"], "sign");
    assert_eq!(sign["user"], "CKU_USER");
    assert_eq!(sign["key_id_label_sha256"], id_label_hash(KEY_ID, KEY_LABEL.as_bytes()));
    assert!(sign["key_unique_id"].as_str().is_some_and(|u| !u.is_empty()), "{sign}");
    assert!(sign["pid"].as_u64() == Some(std::process::id() as u64));
    assert_eq!(find(&recs, "C_Verify")[0]["fips_approved"], true);
    let gen = find(&recs, "C_GenerateKey");
    assert_eq!(gen.len(), 2);
    assert_eq!(
        (gen[0]["mechanism"].as_str(), gen[0]["fips_approved"].as_bool()),
        (Some("CKM_AES_KEY_GEN"), Some(true))
    );
    let des = gen[1];
    assert_eq!((des["mechanism"].as_str(), des["fips_approved"].as_bool()), (Some("CKM_DES_KEY_GEN"), Some(false)));
    if approved {
        assert_eq!(des["verdict"], "refused", "the refusal is recorded: {des}");
        assert_ne!(des["rv"], "CKR_OK");
    } else {
        assert_eq!((des["verdict"].as_str(), des["rv"].as_str()), (Some("non-approved"), Some("CKR_OK")));
    }
    assert_eq!(sum.approved, recs.iter().filter(|r| r["fips_approved"] == true).count() as u64);
    // Nothing secret, nothing the application chose to keep private.
    let raw = std::fs::read(c.dir.join("audit.log")).unwrap();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    for secret in [SO_PIN_A, USER_PIN_A, USER_PIN_B, WRONG_PIN, KEY_LABEL] {
        assert!(!contains(secret.as_bytes()), "{secret} is in the log");
    }
    for secret in [&KEY_VALUE[..], DATA, &sig] {
        assert!(!contains(secret), "a secret value is in the log");
        assert!(!contains(hex(secret).as_bytes()), "a secret value (hex) is in the log");
    }
    assert!(!contains(KEY_ID), "the key's CKA_ID is in the log");

    // The command-line verifier agrees.
    let Some(bin) = audit_bin() else {
        println!("SKIP tessera-audit verify: build it with `cargo build --release -p tessera-audit`");
        return;
    };
    let out = Command::new(&bin).arg("verify").arg(&c.dir).arg("--seed").arg(&c.seed).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("records verified: {}", recs.len())) && text.contains("intact"), "{text}");
    let out = Command::new(&bin).arg("verify").arg(&c.dir).arg("--seed").arg(&c.seed).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["records"].as_u64(), json["end"].as_str()), (Some(recs.len() as u64), Some("anchored")));
    assert_eq!(json["approved"].as_u64(), Some(sum.approved));
    assert!(json["failure"].is_null());
    // With the public key alone, and one operation proved to someone who sees no other record.
    let pubkey = c.dir.join("audit.pub");
    let out = Command::new(&bin).arg("verify").arg(&c.dir).arg("--pubkey").arg(&pubkey).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signed checkpoints: 1"), "{}", show(&out));
    let sign_seq = sign["seq"].as_u64().unwrap();
    let out = Command::new(&bin).arg("prove").arg(&c.dir).arg("--seq").arg(sign_seq.to_string()).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let proof = c.dir.parent().unwrap().join("sign.proof");
    std::fs::write(&proof, &out.stdout).unwrap();
    let out = Command::new(&bin).arg("verify-proof").arg(&proof).arg("--pubkey").arg(&pubkey).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("record {sign_seq} is in the log")) && text.contains("\"function\":\"C_Sign\""),
        "{text}"
    );
    // The auditor's report of the run.
    let out = Command::new(&bin).arg("report").arg(&c.dir).arg("--format").arg("json").output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["records"].as_u64(), Some(recs.len() as u64));
    assert_eq!(rep["by_mechanism"]["CKM_SHA256_HMAC"]["C_Sign"]["approved"], 1, "{rep}");
    assert_eq!(rep["by_mechanism"]["CKM_SHA256_HMAC"]["C_Verify"]["approved"], 1, "{rep}");
    assert_eq!(rep["failed_logins"]["CKR_PIN_INCORRECT"], 1, "{rep}");
    assert_eq!(rep["logins"], 3);
    for f in ["C_CreateObject", "C_DestroyObject"] {
        assert_eq!(rep["key_lifecycle"][f], 1, "{f}: {rep}");
    }
    assert_eq!(rep["key_lifecycle"]["C_GenerateKey"], if approved { 1 } else { 2 }, "{rep}");
    assert_eq!(rep["checkpoints"], 1);
    if approved {
        assert_eq!(rep["refusals"]["C_GenerateKey CKM_DES_KEY_GEN"], 1, "{rep}");
    }
    let out = Command::new(&bin).arg("export").arg(&c.dir).arg("--non-approved").output().unwrap();
    let non_approved: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(non_approved.iter().all(|r| r["fips_approved"] == false), "{non_approved:?}");
    assert!(non_approved.iter().any(|r| r["mechanism"] == "CKM_DES_KEY_GEN"), "{non_approved:?}");
    // One changed byte: a distinct exit status and the place.
    let log = c.dir.join("audit.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let out = Command::new(&bin).arg("verify").arg(&c.dir).arg("--seed").arg(&c.seed).output().unwrap();
    assert!(out.status.code().is_some_and(|c| c >= 10), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit.log:"), "{}", show(&out));
}

/// One HMAC-SHA-256 signature of `DATA` with `key`, in a single `C_Sign` (no length query): one
/// `C_SignInit` and one `C_Sign` record.
fn hmac_sign(t: &Token, key: CK_OBJECT_HANDLE) {
    let mut m = mech(CKM_SHA256_HMAC);
    assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut m, key) }, CKR_OK);
    let mut out = [0u8; 32];
    let mut n = out.len() as CK_ULONG;
    let rv = unsafe { t.f.C_Sign(t.h, DATA.as_ptr() as *mut _, DATA.len() as _, out.as_mut_ptr(), &mut n) };
    assert_eq!(rv, CKR_OK);
}

#[test]
fn audit_events_chooses_the_categories() {
    let c = chain();
    let t =
        Token::with_conf("events", &format!("{}\naudit.events = auth, refusal\naudit.sync = always", c.conf_line()));
    let key = t.key(CKK_GENERIC_SECRET, KEY_VALUE).unwrap();
    hmac_sign(&t, key);
    drop(t);
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    let recs = c.records();
    let functions: Vec<&str> = recs.iter().map(|r| r["function"].as_str().unwrap()).collect();
    assert!(functions.contains(&"C_Login"), "{functions:?}");
    // The checkpoint at C_Finalize seals what was recorded, whatever the categories.
    assert_eq!(functions.last(), Some(&"checkpoint"), "{functions:?}");
    let functions = &functions[..functions.len() - 1];
    assert!(functions.iter().all(|f| ["C_Login", "C_Logout"].contains(f)), "only authentication: {functions:?}");
    assert!(recs[..recs.len() - 1].iter().all(|r| r["category"] == "auth"));
}

/// A key's identity in its records follows its `CKA_ID` and `CKA_LABEL` when they change: the
/// identity an object keeps for its records (made at its first record) is never one of the object
/// as it was before a `C_SetAttributeValue`.
#[test]
fn a_changed_label_and_id_are_in_the_next_record() {
    let c = chain();
    let t = Token::with_conf("relabel", &c.conf_line());
    let key = t.key(CKK_GENERIC_SECRET, KEY_VALUE).unwrap();
    let sign = || hmac_sign(&t, key);
    let names = [(b"id-1".as_slice(), "first label"), (b"id-22", "second label"), (b"id-1", "first label")];
    for (id, label) in names {
        t.set(key, &vec![(CKA_ID, V::Bytes(id.to_vec())), (CKA_LABEL, V::Bytes(label.as_bytes().to_vec()))]).unwrap();
        // Twice each: the second record takes the identity the first one made.
        sign();
        sign();
    }
    drop(t);
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    let recs = c.records();
    let signs = find(&recs, "C_Sign");
    assert_eq!(signs.len(), 6);
    for (i, r) in signs.iter().enumerate() {
        let (id, label) = names[i / 2];
        assert_eq!(r["key_id_label_sha256"], id_label_hash(id, label.as_bytes()), "record {i}: {r}");
        assert_eq!(r["key_unique_id"], signs[0]["key_unique_id"], "the same key");
    }
}

/// The library rotating its log every 16 KiB and keeping two rotated files: the older ones go,
/// each after a signed checkpoint covers it, and what is left verifies from where its history
/// starts, with the seed and with the public key.
#[test]
fn retention_through_the_library() {
    let c = chain();
    let t = Token::with_conf(
        "retain",
        &format!("{}\naudit.rotate_bytes = 16384\naudit.keep_files = 2\naudit.checkpoint_every = 100", c.conf_line()),
    );
    let key = t.key(CKK_GENERIC_SECRET, KEY_VALUE).unwrap();
    for _ in 0..300 {
        hmac_sign(&t, key);
    }
    drop(t);
    let (files, missing) = verify::log_files(&c.dir, None).unwrap();
    assert!(missing.is_none());
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(!c.dir.join("audit.log.000001").exists());
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    assert!(sum.history_from.is_some_and(|h| h > 0), "{:?}", sum.history_from);
    assert_eq!(sum.end, End::Anchored);
    let keys = tessera_audit::checkpoint::PublicKeys::read(&c.dir.join("audit.pub")).unwrap();
    let public = c.public(&keys);
    assert!(public.failure.is_none(), "{:?}", public.failure);
    assert_eq!(public.history_from, sum.history_from);
    assert_eq!(public.unsealed_tail, Some(0), "sealed at C_Finalize");
}

/// Raw C_Initialize of the library with the configuration `extra` (a store of its own).
fn initialize_with(extra: &str) -> (Env, cryptoki_sys::Pkcs11, CK_RV) {
    let env = Env::new(extra);
    env.activate();
    // SAFETY (test): loading the library under test.
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.unwrap();
    let rv = unsafe { f.C_Initialize(std::ptr::null_mut()) };
    (env, f, rv)
}

fn not_initialized(f: &cryptoki_sys::Pkcs11) -> bool {
    let mut n: CK_ULONG = 0;
    unsafe { f.C_GetSlotList(CK_FALSE, std::ptr::null_mut(), &mut n) == CKR_CRYPTOKI_NOT_INITIALIZED }
}

#[test]
fn a_log_that_cannot_be_opened_keeps_the_module_from_starting() {
    let _g = lock();
    std::env::remove_var("TESSERA_MODE");
    let m = mode();
    // audit.dir names a directory without a chain.
    let tmp = tempfile::tempdir().unwrap();
    let (_e, f, rv) =
        initialize_with(&format!("audit.dir = {}\ntessera.mode = {m}", tmp.path().join("none").display()));
    assert_eq!(rv, CKR_FUNCTION_FAILED);
    assert!(not_initialized(&f), "a refused C_Initialize leaves the module uninitialised");
    // A full disk: the log is /dev/full, so C_Initialize's own record cannot be written.
    let c = chain();
    std::fs::remove_file(c.dir.join("audit.log")).unwrap();
    std::os::unix::fs::symlink("/dev/full", c.dir.join("audit.log")).unwrap();
    let (_e, f, rv) = initialize_with(&format!("{}\ntessera.mode = {m}", c.conf_line()));
    assert_eq!(rv, CKR_FUNCTION_FAILED);
    assert!(not_initialized(&f));
    // audit.on_failure = continue: runs unrecorded in the non-approved mode only.
    let (_e, f, rv) = initialize_with(&format!("{}\ntessera.mode = {m}\naudit.on_failure = continue", c.conf_line()));
    if approved_mode() {
        assert_eq!(rv, CKR_FUNCTION_FAILED, "the approved mode never runs unrecorded");
    } else {
        assert_eq!(rv, CKR_OK);
        assert_eq!(unsafe { f.C_Finalize(std::ptr::null_mut()) }, CKR_OK);
    }
    // A read-only directory (a read-only mount when run as root, whom permissions do not stop).
    let c = chain();
    let ro = if nix::unistd::geteuid().is_root() {
        let bind = |args: &[&str]| Command::new("mount").args(args).arg(&c.dir).arg(&c.dir).status();
        let ok = bind(&["--bind"]).is_ok_and(|s| s.success())
            && Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&c.dir).status().is_ok_and(|s| s.success());
        ok.then_some(true)
    } else {
        use std::os::unix::fs::PermissionsExt;
        for name in ["audit.log", "audit.state"] {
            std::fs::set_permissions(c.dir.join(name), std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        std::fs::set_permissions(&c.dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        Some(false)
    };
    match ro {
        None => println!("SKIP read-only directory: cannot mount read-only here"),
        Some(mounted) => {
            let (_e, f, rv) = initialize_with(&format!("{}\ntessera.mode = {m}", c.conf_line()));
            if mounted {
                let _ = Command::new("umount").arg(&c.dir).status();
            }
            assert_eq!(rv, CKR_FUNCTION_FAILED);
            assert!(not_initialized(&f));
        }
    }
}

#[test]
fn a_record_that_cannot_be_written_fails_its_call() {
    let c = chain();
    let t = Token::with_conf("failclosed", &c.conf_line());
    let key = t.key(CKK_GENERIC_SECRET, KEY_VALUE).unwrap();
    let sign = |t: &Token| -> CK_RV {
        let mut m = mech(CKM_SHA256_HMAC);
        let rv = unsafe { t.f.C_SignInit(t.h, &mut m, key) };
        if rv != CKR_OK {
            return rv;
        }
        let mut out = [0u8; 32];
        let mut n = out.len() as CK_ULONG;
        unsafe { t.f.C_Sign(t.h, DATA.as_ptr() as *mut _, DATA.len() as _, out.as_mut_ptr(), &mut n) }
    };
    assert_eq!(sign(&t), CKR_OK);
    // The state file damaged under the running module: no record can be chained.
    let state = c.dir.join("audit.state");
    let good = std::fs::read(&state).unwrap();
    std::fs::write(&state, vec![0u8; good.len()]).unwrap();
    assert_eq!(sign(&t), CKR_DEVICE_ERROR);
    let mut info = CK_TOKEN_INFO::default();
    assert_eq!(unsafe { t.f.C_GetTokenInfo(t.slot, &mut info) }, CKR_OK, "calls the log does not record go on");
    std::fs::write(&state, &good).unwrap();
    assert_eq!(sign(&t), CKR_OK);
    // A writer that keeps the log's lock (a process stopped while holding it) holds up an
    // audited call for a bounded time only: it fails, and the next one, the lock free, works.
    let held = nix::fcntl::Flock::lock(std::fs::File::open(&state).unwrap(), nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(sign(&t), CKR_DEVICE_ERROR, "a lock held by another writer");
    let waited = started.elapsed();
    assert!(waited >= tessera_audit::writer::LOCK_WAIT && waited < tessera_audit::writer::LOCK_WAIT * 3, "{waited:?}");
    drop(held);
    assert_eq!(sign(&t), CKR_OK);
    drop(t);
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    let recs = c.records();
    assert_eq!(find(&recs, "C_Sign").len(), 3, "the refused calls left no record");

    // A full file system under the running module (a small tmpfs; root only).
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP full file system: mounting a tmpfs needs root");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"]).arg(mnt.path()).status();
    if !mounted.is_ok_and(|s| s.success()) {
        println!("SKIP full file system: cannot mount a tmpfs here");
        return;
    }
    let dir = mnt.path().join("log");
    let r = std::panic::catch_unwind(|| {
        tessera_audit::writer::init(&dir, &mnt.path().join("seed")).unwrap();
        let t = Token::with_conf("diskfull", &format!("audit.dir = {}", dir.display()));
        let key = t.key(CKK_GENERIC_SECRET, KEY_VALUE).unwrap();
        // (C_SignInit, C_Sign) of one signature (C_Sign is called whatever C_SignInit returned).
        let sign = |t: &Token| -> (CK_RV, CK_RV) {
            let mut m = mech(CKM_SHA256_HMAC);
            let init = unsafe { t.f.C_SignInit(t.h, &mut m, key) };
            let mut out = [0u8; 32];
            let mut n = out.len() as CK_ULONG;
            (init, unsafe { t.f.C_Sign(t.h, DATA.as_ptr() as *mut _, DATA.len() as _, out.as_mut_ptr(), &mut n) })
        };
        assert_eq!(sign(&t), (CKR_OK, CKR_OK));
        // Fill the file system: the log's reserve is still its own.
        let filler = mnt.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        drop(f);
        // Signatures go on, recorded in the reserve, until the log finds it cannot renew the
        // reserve; then no operation starts (and none ran unrecorded).
        let mut signed = 1;
        let refused = loop {
            match sign(&t) {
                (CKR_OK, CKR_OK) => signed += 1,
                (CKR_DEVICE_ERROR, after) => break after,
                other => panic!("after {signed} signatures: {other:x?}"),
            }
            assert!(signed < 1000, "the log never noticed the full file system");
        };
        assert_eq!(refused, CKR_OPERATION_NOT_INITIALIZED, "a refused start leaves no operation to run");
        assert_eq!(sign(&t).0, CKR_DEVICE_ERROR, "refused while the file system is full");
        std::fs::remove_file(&filler).unwrap();
        assert_eq!(sign(&t), (CKR_OK, CKR_OK), "room again: operations start");
        signed += 1;
        drop(t);
        let seed = verify::read_seed(&mnt.path().join("seed")).unwrap();
        let sum = verify::verify_path(&dir, &seed, 1).unwrap();
        assert!(sum.failure.is_none() && sum.torn_tail.is_none(), "{sum:?}");
        let text = std::fs::read_to_string(dir.join("audit.log")).unwrap();
        let recs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let signs = recs.iter().filter(|r| r["function"] == "C_Sign" && r["rv"] == "CKR_OK").count();
        assert_eq!(signs, signed, "every signature that was made is recorded");
        let refusals = recs.iter().filter(|r| r["function"] == "C_SignInit" && r["rv"] == "CKR_DEVICE_ERROR").count();
        assert!(refusals >= 2, "the refusals are recorded in the reserve: {refusals}");
        println!("full file system: {signed} signatures recorded, {refusals} starts refused");
    });
    let _ = Command::new("umount").arg(mnt.path()).status();
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

// ---- a refused record hands out nothing --------------------------------------------------------

/// What a caller's output places hold before a call: every byte of a buffer, and a handle.
const SENTINEL: u8 = 0xA5;
const NO_HANDLE: CK_OBJECT_HANDLE = 0x5A5A_5A5A;

/// What one call left its caller: its `CK_RV`; whether it wrote into any output place (each
/// filled with [`SENTINEL`] or [`NO_HANDLE`] first, lengths set to the buffer's size); and, for
/// a call that continues a multi-part operation, whether the operation is still active after it.
struct Left {
    rv: CK_RV,
    wrote: bool,
    active: Option<bool>,
}

/// The keys and inputs the calls of [`refusal_cases`] use, made while the log works.
struct Keys {
    hmac: CK_OBJECT_HANDLE,
    aes: CK_OBJECT_HANDLE,
    kek: CK_OBJECT_HANDLE,
    wrapped: Vec<u8>,
    kem_public: CK_OBJECT_HANDLE,
    kem_private: CK_OBJECT_HANDLE,
    kem_ciphertext: Vec<u8>,
}

fn refusal_keys(t: &Token) -> Keys {
    let hmac = t.key(CKK_GENERIC_SECRET, KEY_VALUE).unwrap();
    let aes = t.key(CKK_AES, &[7u8; 32]).unwrap();
    let kek = t.kek(CKK_AES, &[9u8; 32]).unwrap();
    let mut m = mech(CKM_AES_KEY_WRAP);
    let mut wrapped = vec![0u8; 40];
    let mut n = 40;
    assert_eq!(unsafe { t.f.C_WrapKey(t.h, &mut m, kek, aes, wrapped.as_mut_ptr(), &mut n) }, CKR_OK);
    let set = CKP_ML_KEM_768;
    let (tk, f) = (CK_FALSE, CK_FALSE);
    let mut pt = [attr(CKA_TOKEN, &tk), attr(CKA_PARAMETER_SET, &set)];
    let mut vt = [attr(CKA_TOKEN, &f)];
    let (mut kem_public, mut kem_private) = (0, 0);
    let mut m = mech(CKM_ML_KEM_KEY_PAIR_GEN);
    let rv = unsafe {
        t.f.C_GenerateKeyPair(t.h, &mut m, pt.as_mut_ptr(), 2, vt.as_mut_ptr(), 1, &mut kem_public, &mut kem_private)
    };
    assert_eq!(rv, CKR_OK);
    let mut kem_ciphertext = vec![0u8; 1088];
    let (class, kt, len) = (CKO_SECRET_KEY, CKK_AES, 32 as CK_ULONG);
    let mut st = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &f)];
    let (mut n, mut k) = (1088, 0);
    let mut m = mech(CKM_ML_KEM);
    let rv = unsafe {
        t.f.C_EncapsulateKey(t.h, &mut m, kem_public, st.as_mut_ptr(), 4, kem_ciphertext.as_mut_ptr(), &mut n, &mut k)
    };
    assert_eq!(rv, CKR_OK);
    Keys { hmac, aes, kek, wrapped, kem_public, kem_private, kem_ciphertext }
}

/// A call writing into a buffer of `cap` bytes and its length: what it left.
fn into_buffer(cap: usize, call: impl FnOnce(*mut u8, &mut CK_ULONG) -> CK_RV) -> Left {
    let mut out = vec![SENTINEL; cap];
    let mut n = cap as CK_ULONG;
    let rv = call(out.as_mut_ptr(), &mut n);
    Left { rv, wrote: n != cap as CK_ULONG || out.iter().any(|b| *b != SENTINEL), active: None }
}

/// A call handing out object handles (`count` of them).
fn into_handles(count: usize, call: impl FnOnce(&mut [CK_OBJECT_HANDLE]) -> CK_RV) -> Left {
    let mut h = vec![NO_HANDLE; count];
    let rv = call(&mut h);
    Left { rv, wrote: h.iter().any(|h| *h != NO_HANDLE), active: None }
}

const CBC_IV: [u8; 16] = [3u8; 16];
const TOKEN_KEY_LABEL: &str = "audit-refused-token-key";

/// How many objects the session `t.h` sees (every one, page by page).
fn count_objects(t: &Token) -> usize {
    assert_eq!(unsafe { t.f.C_FindObjectsInit(t.h, std::ptr::null_mut(), 0) }, CKR_OK);
    let mut total = 0;
    loop {
        let mut page = [0 as CK_OBJECT_HANDLE; 64];
        let mut n: CK_ULONG = 0;
        assert_eq!(unsafe { t.f.C_FindObjects(t.h, page.as_mut_ptr(), 64, &mut n) }, CKR_OK);
        if n == 0 {
            break;
        }
        total += n as usize;
    }
    assert_eq!(unsafe { t.f.C_FindObjectsFinal(t.h) }, CKR_OK);
    total
}

/// The audited calls that hand out output or make objects, each started from scratch.
#[allow(clippy::type_complexity)]
fn refusal_cases() -> Vec<(&'static str, Box<dyn Fn(&Token, &Keys) -> Left>)> {
    fn sign_init(t: &Token, k: &Keys) {
        let mut m = mech(CKM_SHA256_HMAC);
        assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut m, k.hmac) }, CKR_OK);
    }
    fn cbc(t: &Token, k: &Keys, encrypt: bool) {
        let mut m = mech_with(CKM_AES_CBC, CBC_IV.as_ptr() as *const _, 16);
        let rv = unsafe {
            if encrypt {
                t.f.C_EncryptInit(t.h, &mut m, k.aes)
            } else {
                t.f.C_DecryptInit(t.h, &mut m, k.aes)
            }
        };
        assert_eq!(rv, CKR_OK);
    }
    fn aes_template(token: bool) -> (Vec<u8>, CK_ULONG, CK_ULONG, CK_ULONG, CK_BBOOL, CK_BBOOL) {
        let label = if token { TOKEN_KEY_LABEL.as_bytes().to_vec() } else { b"audit-refused-key".to_vec() };
        (label, CKO_SECRET_KEY, CKK_AES, 32, if token { CK_TRUE } else { CK_FALSE }, CK_TRUE)
    }
    fn generate(t: &Token, token: bool) -> Left {
        let (label, class, kt, len, tok, yes) = aes_template(token);
        let mut a = [
            attr(CKA_CLASS, &class),
            attr(CKA_KEY_TYPE, &kt),
            attr(CKA_VALUE_LEN, &len),
            attr(CKA_TOKEN, &tok),
            attr(CKA_ENCRYPT, &yes),
            bytes(CKA_LABEL, &label),
        ];
        let mut m = mech(CKM_AES_KEY_GEN);
        into_handles(1, |h| unsafe { t.f.C_GenerateKey(t.h, &mut m, a.as_mut_ptr(), 6, &mut h[0]) })
    }
    let data = [0x42u8; 32];
    vec![
        (
            "C_Sign",
            Box::new(move |t, k| {
                sign_init(t, k);
                let mut left = into_buffer(32, |p, n| unsafe { t.f.C_Sign(t.h, data.as_ptr() as *mut _, 32, p, n) });
                left.active = Some(unsafe { t.f.C_SignInit(t.h, std::ptr::null_mut(), 0) } == CKR_OK);
                left
            }),
        ),
        (
            "C_Sign after a length query and a short buffer",
            Box::new(move |t, k| {
                sign_init(t, k);
                // Neither records a completed operation: both answer whether the log works.
                let mut n: CK_ULONG = 0;
                let rv = unsafe { t.f.C_Sign(t.h, data.as_ptr() as *mut _, 32, std::ptr::null_mut(), &mut n) };
                assert_eq!((rv, n), (CKR_OK, 32), "the length query");
                let mut short = [SENTINEL; 8];
                let mut n: CK_ULONG = 8;
                let rv = unsafe { t.f.C_Sign(t.h, data.as_ptr() as *mut _, 32, short.as_mut_ptr(), &mut n) };
                assert_eq!((rv, n), (CKR_BUFFER_TOO_SMALL, 32), "a short buffer");
                assert_eq!(short, [SENTINEL; 8]);
                into_buffer(32, |p, n| unsafe { t.f.C_Sign(t.h, data.as_ptr() as *mut _, 32, p, n) })
            }),
        ),
        (
            "C_SignFinal",
            Box::new(move |t, k| {
                sign_init(t, k);
                assert_eq!(unsafe { t.f.C_SignUpdate(t.h, data.as_ptr() as *mut _, 32) }, CKR_OK);
                let mut left = into_buffer(32, |p, n| unsafe { t.f.C_SignFinal(t.h, p, n) });
                left.active = Some(unsafe { t.f.C_SignInit(t.h, std::ptr::null_mut(), 0) } == CKR_OK);
                left
            }),
        ),
        (
            "C_Encrypt",
            Box::new(move |t, k| {
                cbc(t, k, true);
                into_buffer(32, |p, n| unsafe { t.f.C_Encrypt(t.h, data.as_ptr() as *mut _, 32, p, n) })
            }),
        ),
        (
            "C_Decrypt",
            Box::new(move |t, k| {
                cbc(t, k, false);
                into_buffer(32, |p, n| unsafe { t.f.C_Decrypt(t.h, data.as_ptr() as *mut _, 32, p, n) })
            }),
        ),
        (
            "C_DecryptUpdate",
            Box::new(move |t, k| {
                cbc(t, k, false);
                let mut left =
                    into_buffer(32, |p, n| unsafe { t.f.C_DecryptUpdate(t.h, data.as_ptr() as *mut _, 32, p, n) });
                // A refused part ends the operation; a recorded one leaves it going (cancelled here).
                left.active = Some(unsafe { t.f.C_DecryptInit(t.h, std::ptr::null_mut(), 0) } == CKR_OK);
                left
            }),
        ),
        (
            "C_Digest",
            Box::new(move |t, _| {
                let mut m = mech(CKM_SHA256);
                assert_eq!(unsafe { t.f.C_DigestInit(t.h, &mut m) }, CKR_OK);
                into_buffer(32, |p, n| unsafe { t.f.C_Digest(t.h, data.as_ptr() as *mut _, 32, p, n) })
            }),
        ),
        (
            "C_WrapKey",
            Box::new(|t, k| {
                let mut m = mech(CKM_AES_KEY_WRAP);
                into_buffer(40, |p, n| unsafe { t.f.C_WrapKey(t.h, &mut m, k.kek, k.aes, p, n) })
            }),
        ),
        ("C_GenerateKey", Box::new(|t, _| generate(t, false))),
        ("C_GenerateKey of a token object", Box::new(|t, _| generate(t, true))),
        (
            "C_GenerateKeyPair",
            Box::new(|t, _| {
                let (f, yes) = (CK_FALSE, CK_TRUE);
                let mut pt = [attr(CKA_TOKEN, &f), bytes(CKA_EC_PARAMS, P256), attr(CKA_VERIFY, &yes)];
                let mut vt = [attr(CKA_TOKEN, &f), attr(CKA_SIGN, &yes)];
                let mut m = mech(CKM_EC_KEY_PAIR_GEN);
                into_handles(2, |h| {
                    let (a, b) = h.split_at_mut(1);
                    unsafe {
                        t.f.C_GenerateKeyPair(t.h, &mut m, pt.as_mut_ptr(), 3, vt.as_mut_ptr(), 2, &mut a[0], &mut b[0])
                    }
                })
            }),
        ),
        (
            "C_CreateObject",
            Box::new(|t, _| {
                let (class, kt, f) = (CKO_SECRET_KEY, CKK_GENERIC_SECRET, CK_FALSE);
                let mut a = [
                    attr(CKA_CLASS, &class),
                    attr(CKA_KEY_TYPE, &kt),
                    attr(CKA_TOKEN, &f),
                    bytes(CKA_VALUE, &[1u8; 32]),
                ];
                into_handles(1, |h| unsafe { t.f.C_CreateObject(t.h, a.as_mut_ptr(), 4, &mut h[0]) })
            }),
        ),
        (
            "C_CopyObject",
            Box::new(|t, k| {
                into_handles(1, |h| unsafe { t.f.C_CopyObject(t.h, k.hmac, std::ptr::null_mut(), 0, &mut h[0]) })
            }),
        ),
        (
            "C_UnwrapKey",
            Box::new(|t, k| {
                let (class, kt, f) = (CKO_SECRET_KEY, CKK_AES, CK_FALSE);
                let mut a = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_TOKEN, &f)];
                let mut m = mech(CKM_AES_KEY_WRAP);
                into_handles(1, |h| unsafe {
                    t.f.C_UnwrapKey(t.h, &mut m, k.kek, k.wrapped.as_ptr() as *mut _, 40, a.as_mut_ptr(), 3, &mut h[0])
                })
            }),
        ),
        (
            "C_DeriveKey",
            Box::new(|t, k| {
                let info = b"audit";
                let p = CK_HKDF_PARAMS {
                    bExtract: CK_TRUE,
                    bExpand: CK_TRUE,
                    prfHashMechanism: CKM_SHA256,
                    ulSaltType: CKF_HKDF_SALT_DATA,
                    pSalt: b"salt".as_ptr() as *mut _,
                    ulSaltLen: 4,
                    hSaltKey: 0,
                    pInfo: info.as_ptr() as *mut _,
                    ulInfoLen: info.len() as _,
                };
                let mut m = mech_with(CKM_HKDF_DERIVE, &p as *const _ as *const _, std::mem::size_of_val(&p));
                let (class, kt, len, f) = (CKO_SECRET_KEY, CKK_GENERIC_SECRET, 32 as CK_ULONG, CK_FALSE);
                let mut a =
                    [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &f)];
                into_handles(1, |h| unsafe { t.f.C_DeriveKey(t.h, &mut m, k.hmac, a.as_mut_ptr(), 4, &mut h[0]) })
            }),
        ),
        (
            "C_EncapsulateKey",
            Box::new(|t, k| {
                let (class, kt, len, f) = (CKO_SECRET_KEY, CKK_AES, 32 as CK_ULONG, CK_FALSE);
                let mut a =
                    [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &f)];
                let mut m = mech(CKM_ML_KEM);
                let mut handle = NO_HANDLE;
                let mut left = into_buffer(1088, |p, n| unsafe {
                    t.f.C_EncapsulateKey(t.h, &mut m, k.kem_public, a.as_mut_ptr(), 4, p, n, &mut handle)
                });
                left.wrote |= handle != NO_HANDLE;
                left
            }),
        ),
        (
            "C_DecapsulateKey",
            Box::new(|t, k| {
                let (class, kt, len, f) = (CKO_SECRET_KEY, CKK_AES, 32 as CK_ULONG, CK_FALSE);
                let mut a =
                    [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &f)];
                let mut m = mech(CKM_ML_KEM);
                into_handles(1, |h| unsafe {
                    t.f.C_DecapsulateKey(
                        t.h,
                        &mut m,
                        k.kem_private,
                        a.as_mut_ptr(),
                        4,
                        k.kem_ciphertext.as_ptr() as *mut _,
                        1088,
                        &mut h[0],
                    )
                })
            }),
        ),
    ]
}

/// Every case of [`refusal_cases`] once with the log working (it hands out its output), then
/// once with the log's state damaged under the running module, so that no record can be
/// chained: fail-closed, the call returns `CKR_DEVICE_ERROR`, writes nothing into the caller's
/// output places, leaves no new object and ends the operation it continued; with `unrecorded`
/// (`audit.on_failure = continue`, outside the approved mode) it runs and hands out its output.
fn refused_records_leave_nothing(label: &str, extra: &str, unrecorded: bool) {
    let c = chain();
    let mut t = Token::with_conf(label, &format!("{}\n{extra}", c.conf_line()));
    let k = refusal_keys(&t);
    let state = c.dir.join("audit.state");
    let objects = count_objects;
    for (name, case) in refusal_cases() {
        let good = case(&t, &k);
        assert_eq!(good.rv, CKR_OK, "{name} with the log working");
        assert!(good.wrote, "{name} with the log working hands out its output");
        let before = objects(&t);
        let saved = std::fs::read(&state).unwrap();
        std::fs::write(&state, vec![0u8; saved.len()]).unwrap();
        let bad = case(&t, &k);
        std::fs::write(&state, &saved).unwrap();
        let made = objects(&t) - before;
        if unrecorded {
            assert_eq!(bad.rv, CKR_OK, "{name}: audit.on_failure = continue runs it unrecorded");
            assert!(bad.wrote, "{name}: run unrecorded, it hands out its output");
        } else {
            assert_eq!(bad.rv, CKR_DEVICE_ERROR, "{name}: its record cannot be written");
            assert!(!bad.wrote, "{name}: refused, it wrote into the caller's output");
            assert_eq!(made, 0, "{name}: refused, it left an object");
            assert_ne!(bad.active, Some(true), "{name}: refused, its operation goes on");
        }
    }
    // Length queries complete nothing and write no record: answered while the log cannot be
    // written, and leaving no record while it can.
    let queries = |t: &Token| -> [(CK_RV, CK_ULONG); 2] {
        let mut m = mech(CKM_AES_KEY_WRAP);
        let mut wrap_len: CK_ULONG = 0;
        let wrap = unsafe { t.f.C_WrapKey(t.h, &mut m, k.kek, k.aes, std::ptr::null_mut(), &mut wrap_len) };
        let (class, kt, len, f) = (CKO_SECRET_KEY, CKK_AES, 32 as CK_ULONG, CK_FALSE);
        let mut a = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &f)];
        let mut m = mech(CKM_ML_KEM);
        let (mut ct_len, mut handle): (CK_ULONG, CK_OBJECT_HANDLE) = (0, NO_HANDLE);
        let encap = unsafe {
            t.f.C_EncapsulateKey(
                t.h,
                &mut m,
                k.kem_public,
                a.as_mut_ptr(),
                4,
                std::ptr::null_mut(),
                &mut ct_len,
                &mut handle,
            )
        };
        assert_eq!(handle, NO_HANDLE, "a length query makes no key");
        [(wrap, wrap_len), (encap, ct_len)]
    };
    let records = || std::fs::read_to_string(c.dir.join("audit.log")).unwrap().lines().count();
    let before = records();
    assert_eq!(queries(&t), [(CKR_OK, 40), (CKR_OK, 1088)]);
    assert_eq!(records(), before, "a length query is no record");
    let saved = std::fs::read(&state).unwrap();
    std::fs::write(&state, vec![0u8; saved.len()]).unwrap();
    let answered = queries(&t);
    std::fs::write(&state, &saved).unwrap();
    assert_eq!(answered, [(CKR_OK, 40), (CKR_OK, 1088)], "length queries while the log cannot be written");
    // The token object of the refused generation is not in the store either.
    t.restart();
    let label = TOKEN_KEY_LABEL.as_bytes().to_vec();
    let stored = t.find(&vec![(CKA_LABEL, V::Bytes(label))]).unwrap().len();
    assert_eq!(stored, if unrecorded { 2 } else { 1 }, "token objects of the generations");
    drop(t);
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
}

#[test]
fn a_refused_record_hands_out_nothing() {
    refused_records_leave_nothing("nothingout", "", false);
}

#[test]
fn on_failure_continue_hands_out_unrecorded_output_outside_the_approved_mode() {
    refused_records_leave_nothing("unrecorded", "audit.on_failure = continue", !approved_mode());
}

/// The log's file system fills up under the running module (a small tmpfs; root only): once the
/// writer's reserve is used up, a key generation returns `CKR_DEVICE_ERROR` without a handle or
/// an object, and a signature whose operation started before the disk filled is withheld.
#[test]
fn a_full_file_system_withholds_output_and_objects() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP full file system: mounting a tmpfs needs root");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"]).arg(mnt.path()).status();
    if !mounted.is_ok_and(|s| s.success()) {
        println!("SKIP full file system: cannot mount a tmpfs here");
        return;
    }
    let dir = mnt.path().join("log");
    let r = std::panic::catch_unwind(|| {
        tessera_audit::writer::init(&dir, &mnt.path().join("seed")).unwrap();
        let t = Token::with_conf("fullfs", &format!("audit.dir = {}", dir.display()));
        let key = t.key(CKK_GENERIC_SECRET, KEY_VALUE).unwrap();
        // A signature started while the file system has room.
        let mut m = mech(CKM_SHA256_HMAC);
        assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut m, key) }, CKR_OK);
        let filler = mnt.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        drop(f);
        let objects = count_objects;
        let (class, kt, len, no) = (CKO_SECRET_KEY, CKK_AES, 32 as CK_ULONG, CK_FALSE);
        let mut a = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &no)];
        let mut made = 0;
        let refused = loop {
            let before = objects(&t);
            let mut h = NO_HANDLE;
            let mut g = mech(CKM_AES_KEY_GEN);
            let rv = unsafe { t.f.C_GenerateKey(t.h, &mut g, a.as_mut_ptr(), 4, &mut h) };
            if rv != CKR_OK {
                assert_eq!(objects(&t), before, "a refused generation left an object");
                break (rv, h);
            }
            made += 1;
            assert!(made < 2000, "the reserve never ran out");
        };
        assert_eq!(refused, (CKR_DEVICE_ERROR, NO_HANDLE), "after {made} keys recorded in the reserve");
        let mut out = [SENTINEL; 32];
        let mut n: CK_ULONG = 32;
        let rv = unsafe { t.f.C_Sign(t.h, DATA.as_ptr() as *mut _, DATA.len() as _, out.as_mut_ptr(), &mut n) };
        assert_eq!((rv, n), (CKR_DEVICE_ERROR, 32));
        assert_eq!(out, [SENTINEL; 32], "a signature handed out unrecorded");
        std::fs::remove_file(&filler).unwrap();
        drop(t);
        let seed = verify::read_seed(&mnt.path().join("seed")).unwrap();
        let sum = verify::verify_path(&dir, &seed, 1).unwrap();
        assert!(sum.failure.is_none(), "{sum:?}");
        let text = std::fs::read_to_string(dir.join("audit.log")).unwrap();
        let keys = text.lines().filter(|l| l.contains("\"C_GenerateKey\"") && l.contains("\"CKR_OK\"")).count();
        assert_eq!(keys, made, "every key handed out is recorded, and no other");
        println!("full file system: {made} keys recorded in the reserve, then refused");
    });
    let _ = Command::new("umount").arg(mnt.path()).status();
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

// ---- child processes -----------------------------------------------------------------------

/// The child's side: loads the module (`TESSERA_CONF` from the parent), logs in on the token
/// `TESSERA_AUDIT_TOKEN` with `TESSERA_AUDIT_PIN`, makes an HMAC key and signs 1 KB
/// `TESSERA_AUDIT_OPS` times, printing `op I` after each signature returned (with
/// `TESSERA_AUDIT_REPORT`), then `done N`.
#[test]
fn child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let var = |n: &str| std::env::var(n).unwrap();
    let ops: usize = var("TESSERA_AUDIT_OPS").parse().unwrap();
    let report = std::env::var_os("TESSERA_AUDIT_REPORT").is_some();
    let p = Pkcs11::new(module_path()).unwrap();
    p.initialize(init_args()).unwrap();
    let label = var("TESSERA_AUDIT_TOKEN");
    let slot =
        p.get_slots_with_token().unwrap().into_iter().find(|s| p.get_token_info(*s).unwrap().label() == label).unwrap();
    let s = p.open_rw_session(slot).unwrap();
    // Without TESSERA_AUDIT_PIN, a public session key in a session nobody logged in to (a
    // login's PBKDF2 would make each kill trial slow).
    let pin = std::env::var("TESSERA_AUDIT_PIN").ok();
    if let Some(pin) = &pin {
        s.login(UserType::User, Some(&AuthPin::from(pin.as_str()))).unwrap();
    }
    let key = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Value(KEY_VALUE.to_vec()),
            Attribute::Sign(true),
            Attribute::Token(false),
            Attribute::Private(pin.is_some()),
        ])
        .unwrap();
    let data = [0x5au8; 1024];
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for i in 0..ops {
        s.sign(&Mechanism::Sha256Hmac, key, &data).unwrap();
        if report {
            writeln!(out, "op {i}").unwrap();
            out.flush().unwrap();
        }
    }
    writeln!(out, "done {ops}").unwrap();
    out.flush().unwrap();
    drop(s);
    p.finalize().unwrap();
    std::process::exit(0);
}

/// A token for the children, in a store of its own. The module stays loaded here (the store is
/// the returned fixture's) while the children use the token from their own processes.
fn children_token(label: &str) -> Loaded {
    let l = load_env(Env::new(&format!("tessera.mode = {}", mode())));
    let slot = l.free_slot();
    l.p.init_token(slot, &AuthPin::from(SO_PIN_A), label).unwrap();
    let s = l.p.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::from(SO_PIN_A))).unwrap();
    s.init_pin(&AuthPin::from(USER_PIN_A)).unwrap();
    drop(s);
    l
}

fn spawn_child(conf: &Path, label: &str, ops: usize, report: bool) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("TESSERA_CONF", conf)
        .env_remove("TESSERA_MODE")
        .env("TESSERA_AUDIT_TOKEN", label)
        .env("TESSERA_AUDIT_OPS", ops.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if report {
        c.env("TESSERA_AUDIT_REPORT", "1");
    } else {
        c.env("TESSERA_AUDIT_PIN", USER_PIN_A);
    }
    c.spawn().unwrap()
}

/// A configuration for the children: the store of `env`, the audit log of `c`.
fn children_conf(env: &Env, c: &Chain) -> Env {
    children_conf_with(env, c, "")
}

fn children_conf_with(env: &Env, c: &Chain, extra: &str) -> Env {
    Env::at(&env.tokendir(), &format!("{}\ntessera.mode = {}\n{extra}", c.conf_line(), mode()))
}

/// Four processes append to a log that rotates every 64 KiB (and seals every 300 records): the
/// files verify as one chain and one tree, with the seed and with the public key, and every
/// signature each process saw return is in one of them.
#[test]
fn four_processes_rotate_one_log() {
    const OPS: usize = 500;
    let l = children_token("rotate");
    let c = chain();
    let conf = children_conf_with(&l.env, &c, "audit.rotate_bytes = 65536\naudit.checkpoint_every = 300");
    let kids: Vec<_> = (0..4).map(|_| spawn_child(&conf.conf, "rotate", OPS, false)).collect();
    let mut pids = Vec::new();
    for k in kids {
        let pid = k.id() as u64;
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
        pids.push(pid);
    }
    let (files, missing) = verify::log_files(&c.dir, None).unwrap();
    assert!(missing.is_none() && files.len() > 5, "{} files", files.len());
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    assert_eq!(sum.end, End::Anchored);
    let recs = c.records();
    assert_eq!(sum.records, recs.len() as u64);
    for pid in pids {
        let signs = recs.iter().filter(|r| r["pid"] == pid && r["function"] == "C_Sign" && r["rv"] == "CKR_OK").count();
        assert_eq!(signs, OPS, "process {pid}");
    }
    assert_eq!(recs.iter().filter(|r| r["function"] == "rotation").count(), files.len() - 1);
    let keys = tessera_audit::checkpoint::PublicKeys::read(&c.dir.join("audit.pub")).unwrap();
    let public = c.public(&keys);
    assert!(public.failure.is_none(), "{:?}", public.failure);
    assert!(public.checkpoints >= 6, "{}", public.checkpoints);
    // One file taken away: named.
    std::fs::remove_file(&files[2]).unwrap();
    let f = c.verify().failure.unwrap();
    assert_eq!(f.class, verify::Class::MissingFile, "{f}");
}

#[test]
fn four_processes_append_to_one_log() {
    const OPS: usize = 2000;
    let l = children_token("four");
    let c = chain();
    let conf = children_conf(&l.env, &c);
    let t0 = std::time::Instant::now();
    let kids: Vec<_> = (0..4).map(|_| spawn_child(&conf.conf, "four", OPS, false)).collect();
    let mut pids = Vec::new();
    for k in kids {
        let pid = k.id() as u64;
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("done {OPS}")));
        pids.push(pid);
    }
    let took = t0.elapsed();
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    assert_eq!(sum.end, End::Anchored);
    let recs = c.records();
    for pid in pids {
        let signs = recs.iter().filter(|r| r["pid"] == pid && r["function"] == "C_Sign" && r["rv"] == "CKR_OK").count();
        assert_eq!(signs, OPS, "process {pid}: every signature it saw return is in the log");
        let fin = recs.iter().filter(|r| r["pid"] == pid && r["function"] == "C_Finalize").count();
        assert_eq!(fin, 1);
    }
    // A signed checkpoint every 1,000 records and one at each C_Finalize (four, or fewer where a
    // process's C_Finalize came right after another's checkpoint), written by whichever process
    // held the lock: one tree, verified with the public key alone.
    let keys = tessera_audit::checkpoint::PublicKeys::read(&c.dir.join("audit.pub")).unwrap();
    let public = c.public(&keys);
    assert!(public.failure.is_none(), "{:?}", public.failure);
    let checkpoints = recs.iter().filter(|r| r["function"] == "checkpoint").count() as u64;
    assert_eq!(public.checkpoints, checkpoints);
    assert!(checkpoints >= recs.len() as u64 / 1000, "{checkpoints} checkpoints for {} records", recs.len());
    assert_eq!(recs.last().unwrap()["function"], "checkpoint");
    println!("4 processes x {OPS} audited C_Sign: {} records in {took:?}", recs.len());
}

#[test]
fn threads_of_one_process_append_to_one_log() {
    const THREADS: usize = 4;
    const OPS: usize = 500;
    let c = chain();
    let t = Token::with_conf("threads", &c.conf_line());
    let key = t
        .s()
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Value(KEY_VALUE.to_vec()),
            Attribute::Sign(true),
            Attribute::Token(false),
        ])
        .unwrap();
    let (p, slot) = (t.l.p.clone(), t.cslot());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let p = p.clone();
            scope.spawn(move || {
                let s = p.open_rw_session(slot).unwrap();
                for _ in 0..OPS {
                    s.sign(&Mechanism::Sha256Hmac, key, &[0x5a; 1024]).unwrap();
                }
            });
        }
    });
    drop(t);
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    let recs = c.records();
    let signs = recs.iter().filter(|r| r["function"] == "C_Sign" && r["rv"] == "CKR_OK").count();
    assert_eq!(signs, THREADS * OPS);
    let sessions: std::collections::HashSet<u64> =
        recs.iter().filter(|r| r["function"] == "C_Sign").filter_map(|r| r["session"].as_u64()).collect();
    assert_eq!(sessions.len(), THREADS, "each thread's session");
}

/// A small xorshift for the kill points (no seed is needed to reproduce: each trial reports).
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn kill_9_at_random_points_loses_no_returned_call() {
    let trials: usize = std::env::var("TESSERA_AUDIT_KILL_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let l = children_token("kill");
    let mut rng = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let t0 = std::time::Instant::now();
    let (mut torn, mut behind, mut total_ops) = (0, 0, 0);
    for trial in 0..trials {
        let c = chain();
        let conf = children_conf(&l.env, &c);
        let mut kid = spawn_child(&conf.conf, "kill", 1_000_000, true);
        let stdout = kid.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut ops = 0usize;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("op ") {
                    ops += 1;
                }
            }
            ops
        });
        // Anywhere from loading and the self-tests (the first 8 ms or so) to a few thousand
        // signatures in. A signature and its record take about 13 µs, so a kill in the loop
        // falls at an evenly random moment of one append (before its write, between the write
        // and the state's rewrite, after) whatever the window's length; 60 ms puts nearly nine
        // kills in ten there. A longer window only makes longer logs to verify (0-150 ms: 5,000
        // records a trial and 23 s for the 200).
        let delay = std::time::Duration::from_micros(next(&mut rng) % 60_000);
        std::thread::sleep(delay);
        let pid = kid.id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
        let _ = kid.wait();
        let reported = reader.join().unwrap();
        total_ops += reported;
        let sum = c.verify();
        assert!(sum.failure.is_none(), "trial {trial} (killed after {delay:?}): {:?}", sum.failure);
        torn += usize::from(sum.torn_tail.is_some());
        behind += usize::from(sum.end == End::AnchoredOneBehind);
        let signs =
            c.records().iter().filter(|r| r["pid"] == pid && r["function"] == "C_Sign" && r["rv"] == "CKR_OK").count();
        assert!(
            signs == reported || signs == reported + 1,
            "trial {trial} (killed after {delay:?}): {reported} signatures returned, {signs} recorded"
        );
    }
    println!(
        "{trials} kill -9 trials in {:?}: {total_ops} returned signatures, all recorded; {torn} torn tails, {behind} states one behind",
        t0.elapsed()
    );
}

#[test]
fn a_fork_child_is_recorded() {
    let c = chain();
    let lib = RawLib::with(Env::new(&format!("{}\ntessera.mode = {}", c.conf_line(), mode())));
    std::env::remove_var("TESSERA_MODE");
    lib.init();
    // SAFETY (test): the child only calls the library and leaves with _exit.
    let child = match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let mut n: CK_ULONG = 0;
            let before = unsafe { lib.f.C_GetSlotList(CK_FALSE, std::ptr::null_mut(), &mut n) };
            let init = unsafe { lib.f.C_Initialize(std::ptr::null_mut()) };
            let fin = unsafe { lib.f.C_Finalize(std::ptr::null_mut()) };
            let ok = before == CKR_CRYPTOKI_NOT_INITIALIZED && init == CKR_OK && fin == CKR_OK;
            unsafe { nix::libc::_exit(if ok { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    let status = nix::sys::wait::waitpid(child, None).unwrap();
    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0), "the child's calls");
    drop(lib);
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    let recs = c.records();
    let pid = child.as_raw() as u64;
    let of_child: Vec<&Value> = recs.iter().filter(|r| r["pid"] == pid).collect();
    let functions: Vec<&str> = of_child.iter().map(|r| r["function"].as_str().unwrap()).collect();
    assert_eq!(functions, ["C_GetSlotList", "C_Initialize", "C_Finalize", "checkpoint"], "{of_child:?}");
    let detail = |i: usize| of_child[i]["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail(0).starts_with("fork detected"), "{}", detail(0));
    assert_eq!(of_child[0]["rv"], "CKR_CRYPTOKI_NOT_INITIALIZED");
    let parent = std::process::id();
    assert!(detail(1).contains(&format!("in a child of process {parent} (fork)")), "{}", detail(1));
}

/// A conditional self-test that fails (the pairwise-consistency test of a new key pair, failed
/// on purpose by the fault-injection build) puts the module in the error state: one record says
/// so, with the reason, before the call's own.
#[test]
fn entering_the_error_state_is_recorded() {
    let Some(path) = fault_module() else { return };
    seal(&path);
    let c = chain();
    let guard = lock();
    std::env::remove_var("TESSERA_MODE");
    let mut lib = RawLib::locked(guard, &path, Env::new(&c.conf_line()));
    lib.unset_on_drop = &["TESSERA_FAIL_SELFTEST"];
    std::env::set_var("TESSERA_FAIL_SELFTEST", "pct");
    lib.init();
    let slot = lib.token("errorstate");
    let h = lib.open(slot, true);
    lib.login(h, CKU_USER, USER_PIN).unwrap();
    let len = P256.len() as CK_ULONG;
    let mut pubt = [CK_ATTRIBUTE { type_: CKA_EC_PARAMS, pValue: P256.as_ptr() as *mut _, ulValueLen: len }];
    let mut m = mech(CKM_EC_KEY_PAIR_GEN);
    let (mut p, mut v) = (0, 0);
    let rv =
        unsafe { lib.f.C_GenerateKeyPair(h, &mut m, pubt.as_mut_ptr(), 1, std::ptr::null_mut(), 0, &mut p, &mut v) };
    assert_eq!(rv, CKR_GENERAL_ERROR);
    let mut buf = [0u8; 4];
    assert_eq!(unsafe { lib.f.C_GenerateRandom(h, buf.as_mut_ptr(), 4) }, CKR_GENERAL_ERROR);
    drop(lib);
    let sum = c.verify();
    assert!(sum.failure.is_none(), "{:?}", sum.failure);
    let recs = c.records();
    let entered: Vec<&Value> =
        recs.iter().filter(|r| r["detail"].as_str().is_some_and(|d| d.starts_with("error state entered"))).collect();
    assert_eq!(entered.len(), 1, "once: {entered:?}");
    assert_eq!(
        (entered[0]["function"].as_str(), entered[0]["category"].as_str()),
        (Some("C_GenerateKeyPair"), Some("module"))
    );
    let i = recs.iter().position(|r| std::ptr::eq(r, entered[0])).unwrap();
    assert_eq!(recs[i + 1]["function"], "C_GenerateKeyPair");
    assert_eq!(recs[i + 1]["rv"], "CKR_GENERAL_ERROR");
}

/// The raw function list, shared between two threads of one test (the module is thread-safe;
/// the test makes both threads use one session on purpose).
struct SharedList<'a>(&'a cryptoki_sys::Pkcs11);
unsafe impl Sync for SharedList<'_> {}

/// A `C_Sign` that hands out a signature is recorded even when another thread starts a new
/// signing operation on the same session before the record is written: whether a call was a
/// length query is what the call itself noted, not what the session's operation slot holds
/// afterwards (before, 1–3 of 20,000 signatures went unrecorded).
#[test]
fn a_signature_is_recorded_whatever_another_thread_starts_on_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, seed) = (tmp.path().join("log"), tmp.path().join("seed"));
    tessera_audit::writer::init(&dir, &seed).unwrap();
    let t = Token::with_conf("race", &format!("audit.dir = {}", dir.display()));
    let key = t.key(CKK_GENERIC_SECRET, b"audit-hmac-key-value-0123456789!").unwrap();
    let f = SharedList(&t.f);
    let h = t.h;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mechanism = || CK_MECHANISM { mechanism: CKM_SHA256_HMAC, pParameter: std::ptr::null_mut(), ulParameterLen: 0 };
    let (signed, other_inits) = std::thread::scope(|sc| {
        let other = sc.spawn(|| {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut m = mechanism();
                if unsafe { f.0.C_SignInit(h, &mut m, key) } == CKR_OK {
                    n += 1;
                }
            }
            n
        });
        let mut ok = 0u64;
        for _ in 0..20_000 {
            let mut m = mechanism();
            let _ = unsafe { f.0.C_SignInit(h, &mut m, key) };
            let mut out = [0u8; 32];
            let mut n = out.len() as CK_ULONG;
            let rv = unsafe { f.0.C_Sign(h, b"data".as_ptr() as *mut _, 4, out.as_mut_ptr(), &mut n) };
            if rv == CKR_OK && n == 32 && out != [0u8; 32] {
                ok += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (ok, other.join().unwrap())
    });
    drop(t);
    let (files, _) = tessera_audit::verify::log_files(&dir, None).unwrap();
    let text: String = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    let recorded = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["function"] == "C_Sign" && r["rv"] == "CKR_OK")
        .count() as u64;
    assert!(signed > 0 && other_inits > 0, "both threads ran: {signed} signatures, {other_inits} other inits");
    assert_eq!(signed, recorded, "signatures handed out ({signed}) against C_Sign records ({recorded})");
}

/// Forward-secure checkpoint keys through the library: four processes append to one log that
/// seals every 37 records (each checkpoint certifying the next signing pair, which replaces the
/// old one under the log's lock), rotates every 64 KiB and keeps two rotated files. `tessera-audit
/// verify --pubkey` with only the anchor key `export-key` gave before the run follows the chain
/// (through the key chain file for the deleted files); a record's proof verifies with it too.
/// Whoever then takes the host and its current key cannot sign anything earlier: an old
/// checkpoint re-signed with it is named, and so is a proof put together with it.
#[test]
fn forward_secure_checkpoints_through_processes() {
    const OPS: usize = 300;
    let bin = audit_bin().expect("tessera-audit: build it with `cargo build --release -p tessera-audit`");
    let l = children_token("fscp");
    let c = chain();
    let off_host = tempfile::tempdir().unwrap();
    let anchor = off_host.path().join("anchor.pub");
    let out = Command::new(&bin).args(["export-key", c.dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    std::fs::write(&anchor, &out.stdout).unwrap();
    let conf = children_conf_with(
        &l.env,
        &c,
        "audit.rotate_bytes = 65536\naudit.keep_files = 2\naudit.checkpoint_every = 37\naudit.checkpoint_seconds = 0",
    );
    let kids: Vec<_> = (0..4).map(|_| spawn_child(&conf.conf, "fscp", OPS, false)).collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
    }
    let verify = |extra: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.args(["verify", c.dir.to_str().unwrap(), "--pubkey", anchor.to_str().unwrap()]).args(extra);
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, said) = verify(&[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("checkpoint keys: forward-secure"), "{said}");
    assert!(said.contains("history starts at seq"), "{said}");
    let keys = tessera_audit::checkpoint::PublicKeys::read(&anchor).unwrap();
    let public = c.public(&keys);
    assert!(public.failure.is_none(), "{:?}", public.failure);
    let kc = public.key_chain.clone().unwrap();
    // Every checkpoint any process wrote certified one generation; the host holds the last.
    let held = tessera_audit::checkpoint::SigningKeys::load(&c.dir).unwrap().unwrap();
    assert_eq!(kc.key_file_entries, Some(kc.generations));
    assert_eq!(held.generation(), kc.generations);
    assert!(kc.generations as usize >= 4 * OPS / 37, "{kc:?}");
    assert!(kc.from_key_file > 0, "{kc:?}");
    assert!(!c.dir.join(tessera_audit::checkpoint::SIGN_NEXT).exists());
    assert!(c.verify().failure.is_none());
    // A sealed C_Sign of the retained history, proved with the anchor key alone.
    let recs = c.records();
    let sealed = public.sealed.unwrap();
    let seq = recs
        .iter()
        .filter(|r| r["function"] == "C_Sign" && r["seq"].as_u64().unwrap() < sealed)
        .map(|r| r["seq"].as_u64().unwrap())
        .next_back()
        .unwrap();
    let out = Command::new(&bin).args(["prove", c.dir.to_str().unwrap(), "--seq", &seq.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let proof_file = off_host.path().join("proof.json");
    std::fs::write(&proof_file, &out.stdout).unwrap();
    let check = |p: &Path| {
        let o = Command::new(&bin)
            .args(["verify-proof", p.to_str().unwrap(), "--pubkey", anchor.to_str().unwrap()])
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    assert_eq!(check(&proof_file).0, Some(0));
    // The host taken now: its current key signs the proof's checkpoint again, the whole key
    // chain (the key chain file's) put in the proof; or a checkpoint of its own generation,
    // certifying a fresh pair, over the same tree.
    let proof: tessera_audit::proof::Proof = serde_json::from_slice(&out.stdout).unwrap();
    let chain = tessera_audit::keychain::read(&c.dir).unwrap().unwrap();
    let fresh = held.generate_next().unwrap();
    let original = tessera_audit::checkpoint::Note::parse(&proof.checkpoint).unwrap();
    let own = held.sign(original.size, &original.root, &original.head, Some(fresh.public())).unwrap();
    let mut resigned = original.clone();
    held.resign(&mut resigned).unwrap();
    for (i, note) in [resigned, own].into_iter().enumerate() {
        let p = tessera_audit::proof::Proof { checkpoint: note.encode(), keys: chain.clone(), ..proof.clone() };
        let forged = off_host.path().join(format!("forged-{i}.json"));
        std::fs::write(&forged, serde_json::to_vec(&p).unwrap()).unwrap();
        let (code, said) = check(&forged);
        assert_eq!(code, Some(i32::from(verify::Class::SignedByLaterKey.exit_code())), "{i}: {said}");
    }
    let (files, _) = verify::log_files(&c.dir, None).unwrap();
    let victim =
        files.iter().find(|p| std::fs::read_to_string(p).unwrap().contains("\"function\":\"checkpoint\"")).unwrap();
    let text = std::fs::read_to_string(victim).unwrap();
    let line = text.lines().find(|x| x.contains("\"function\":\"checkpoint\"")).unwrap();
    let old: String = serde_json::from_str::<Value>(line).unwrap()["checkpoint"].as_str().unwrap().into();
    let mut note = tessera_audit::checkpoint::Note::parse(&old).unwrap();
    held.resign(&mut note).unwrap();
    let escaped = |t: &str| serde_json::to_string(t).unwrap();
    std::fs::write(victim, text.replacen(&escaped(&old), &escaped(&note.encode()), 1)).unwrap();
    let (code, said) = verify(&[]);
    assert_eq!(code, Some(i32::from(verify::Class::SignedByLaterKey.exit_code())), "{said}");
    assert!(said.contains("checkpoint-signed-by-a-later-key"), "{said}");
}
