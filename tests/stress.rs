//! Stress tests: several processes on one token, eight threads in one process, and processes
//! killed with SIGKILL in the middle of writing.
//!
//! The multi-process tests run `tessera-testproc` (tests/testproc.rs) as independent applications;
//! it is looked up beside the module under test (same profile directory), else taken from this
//! package's own build. `$TESSERA_TESTPROC` overrides both. The kill test draws its delays from a
//! PRNG whose seed it prints; `$TESSERA_STRESS_SEED` replays a seed.

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tessera_tests::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The value `tessera-testproc create` stores under a label (the same function as there).
fn value_of(label: &str) -> Vec<u8> {
    (0u8..8).flat_map(|i| Sha256::new().chain_update(label.as_bytes()).chain_update([i]).finalize()).collect()
}

/// A `tessera-testproc` command on this store, with the module under test.
fn testproc(env: &Env, args: &[&str]) -> Command {
    let mut c = env.command(testproc_path!());
    c.env("TESSERA_MODULE", module_path()).args(args);
    c
}

/// Runs `tessera-testproc`, feeding `stdin`; panics unless it succeeds.
fn run_testproc(env: &Env, args: &[&str], stdin: &str) -> String {
    let mut child = testproc(env, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera-testproc");
    // A child that fails early closes its stdin: its output tells why, not this write.
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait tessera-testproc");
    assert!(out.status.success(), "tessera-testproc {args:?} failed\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tessera-testproc count` in a fresh process.
fn count_in_child(env: &Env, token: &str, prefix: &str) -> usize {
    let out = run_testproc(env, &["count", token, prefix], "");
    out.trim().parse().unwrap_or_else(|_| panic!("count {prefix}: unexpected output {out:?}"))
}

/// `tessera-testproc verify` in a fresh process; returns how many objects carry the prefix.
fn verify_in_child(env: &Env, token: &str, prefix: &str, committed: &[String]) -> usize {
    verify_in_child_app(env, token, prefix, None, committed)
}

/// The same, among the objects with CKA_APPLICATION = `app` (what `create` sets: its prefix).
fn verify_in_child_app(env: &Env, token: &str, prefix: &str, app: Option<&str>, committed: &[String]) -> usize {
    let mut stdin = committed.join("\n");
    stdin.push('\n');
    let mut args = vec!["verify", token, prefix];
    if let Some(app) = app {
        args.extend(["--app", app]);
    }
    let out = run_testproc(env, &args, &stdin);
    out.trim()
        .strip_prefix("ok ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("verify {prefix}: unexpected output {out:?}"))
}

/// Initialises a token with `tessera-util` (SO PIN and user PIN of lib.rs).
fn init_token_with_util(env: &Env, label: &str) {
    let out = env
        .command(util_path())
        .args(["--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN])
        .output()
        .expect("run tessera-util");
    assert!(out.status.success(), "tessera-util --init-token failed\n{}", show(&out));
}

/// Label and value of the data objects visible in `s` whose label starts with `prefix`.
fn objects_with_prefix(s: &Session, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let handles = s.find_objects(&[Attribute::Class(ObjectClass::DATA)]).expect("C_FindObjects");
    let mut out = Vec::new();
    for h in handles {
        let attrs = s.get_attributes(h, &[AttributeType::Label, AttributeType::Value]).expect("C_GetAttributeValue");
        let (mut label, mut value) = (String::new(), Vec::new());
        for a in attrs {
            match a {
                Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
                Attribute::Value(v) => value = v,
                _ => {}
            }
        }
        if label.starts_with(prefix) {
            out.push((label, value));
        }
    }
    out
}

/// In-process `tessera-testproc verify --app APP`: the data objects with CKA_APPLICATION = `app`
/// whose label starts with `prefix` all have the value of their label, each label once, and every
/// label in `committed` is among them. Gives their number.
fn verify_here(s: &Session, prefix: &str, app: &str, committed: &[String]) -> Result<usize, String> {
    let template = [Attribute::Class(ObjectClass::DATA), Attribute::Application(app.as_bytes().to_vec())];
    let handles = s.find_objects(&template).map_err(|e| format!("C_FindObjects: {e:?}"))?;
    let mut labels = std::collections::HashSet::new();
    for h in handles {
        let attrs = s
            .get_attributes(h, &[AttributeType::Label, AttributeType::Value])
            .map_err(|e| format!("C_GetAttributeValue: {e:?}"))?;
        let (mut label, mut value) = (None, None);
        for a in attrs {
            match a {
                Attribute::Label(l) => label = Some(String::from_utf8_lossy(&l).into_owned()),
                Attribute::Value(v) => value = Some(v),
                _ => {}
            }
        }
        let label = label.ok_or(format!("object {h} has no CKA_LABEL"))?;
        if !label.starts_with(prefix) {
            continue;
        }
        if value.as_deref() != Some(&value_of(&label)[..]) {
            return Err(format!("{label}: wrong CKA_VALUE ({:?} bytes)", value.map(|v| v.len())));
        }
        if !labels.insert(label.clone()) {
            return Err(format!("{label}: more than one object carries this label"));
        }
    }
    for l in committed {
        if !labels.contains(l) {
            return Err(format!("{l}: committed (printed) but missing ({} objects found)", labels.len()));
        }
    }
    Ok(labels.len())
}

/// Checks that the objects with `prefix` are exactly `prefix-0` .. `prefix-{n-1}`, each with its
/// value.
fn assert_exactly(objs: &[(String, Vec<u8>)], prefix: &str, n: usize, who: &str) {
    let mut labels: Vec<&str> = objs.iter().map(|(l, _)| l.as_str()).collect();
    labels.sort_unstable();
    let mut want: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    want.sort_unstable();
    assert_eq!(
        labels,
        want,
        "{who}: the objects with prefix {prefix:?} are not exactly {prefix}-0..{prefix}-{}",
        n - 1
    );
    for (l, v) in objs {
        assert!(*v == value_of(l), "{who}: object {l} has a wrong CKA_VALUE ({} bytes)", v.len());
    }
}

/// Small deterministic PRNG (xorshift64*), so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

// ---------------------------------------------------------------------------------------------
// Two processes on one token
// ---------------------------------------------------------------------------------------------

const PER_PROCESS: usize = 150;

/// Starts a gated creator: it logs in, prints `ready`, and waits for a line on stdin.
fn spawn_creator(env: &Env, token: &str, prefix: &str, n: usize) -> Child {
    let mut c = testproc(env, &["create", token, prefix, &n.to_string()])
        .env("TESSERA_TESTPROC_GATE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera-testproc create");
    let mut ready = String::new();
    BufReader::new(c.stdout.as_mut().expect("stdout")).read_line(&mut ready).expect("read ready");
    if ready.trim() != "ready" {
        let _ = c.kill();
        let out = c.wait_with_output().expect("wait");
        panic!("creator {prefix} did not become ready: {ready:?}\n{}", show(&out));
    }
    c
}

/// Lets a gated creator go.
fn go(c: &mut Child) {
    let mut stdin = c.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("write go");
}

fn printed_labels(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| *l != "ready").map(str::to_string).collect()
}

#[test]
fn two_processes_create_on_one_token_concurrently() {
    let token = "shared";
    let env = Env::new("");
    init_token_with_util(&env, token);

    // This process watches the token while two children write to it.
    let l = load_env(env);
    let slot = l.slot_of(token);
    let s = user_session(&l.p, slot);
    assert_eq!(objects_with_prefix(&s, "A-").len(), 0, "a fresh token holds objects");

    // Both log in first, then are let go at the same moment.
    let mut a = spawn_creator(&l.env, token, "A", PER_PROCESS);
    let mut b = spawn_creator(&l.env, token, "B", PER_PROCESS);
    let started = Instant::now();
    go(&mut a);
    go(&mut b);

    // While they run, what this process sees only grows.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let r = (a.wait_with_output().expect("wait A"), b.wait_with_output().expect("wait B"));
        tx.send(()).ok();
        r
    });
    let mut last = (0, 0);
    let mut polls = 0;
    while rx.recv_timeout(Duration::from_millis(2)).is_err() {
        let now = (objects_with_prefix(&s, "A-").len(), objects_with_prefix(&s, "B-").len());
        assert!(now.0 >= last.0 && now.1 >= last.1, "the object count went down while creating: {last:?} -> {now:?}");
        last = now;
        polls += 1;
        assert!(started.elapsed() < Duration::from_secs(120), "the two creators did not finish in 120 s");
    }
    let (out_a, out_b) = waiter.join().expect("waiter thread");
    eprintln!("two creators: {:?}, {polls} polls while running, last seen {last:?}", started.elapsed());
    assert!(out_a.status.success(), "creator A failed\n{}", show(&out_a));
    assert!(out_b.status.success(), "creator B failed\n{}", show(&out_b));
    let (labels_a, labels_b) = (printed_labels(&out_a), printed_labels(&out_b));
    assert_eq!(labels_a.len(), PER_PROCESS, "creator A printed {} labels\n{}", labels_a.len(), show(&out_a));
    assert_eq!(labels_b.len(), PER_PROCESS, "creator B printed {} labels\n{}", labels_b.len(), show(&out_b));

    // A third process, started after both finished, sees all of both.
    assert_eq!(count_in_child(&l.env, token, "A-"), PER_PROCESS, "a later process counts A's objects");
    assert_eq!(count_in_child(&l.env, token, "B-"), PER_PROCESS, "a later process counts B's objects");
    assert_eq!(verify_in_child(&l.env, token, "A-", &labels_a), PER_PROCESS);
    assert_eq!(verify_in_child(&l.env, token, "B-", &labels_b), PER_PROCESS);

    // And so does this process, which had the token open all along (and a fresh session too).
    assert_exactly(&objects_with_prefix(&s, "A-"), "A", PER_PROCESS, "the watching process");
    assert_exactly(&objects_with_prefix(&s, "B-"), "B", PER_PROCESS, "the watching process");
    let s2 = l.p.open_ro_session(slot).expect("open second session");
    assert_eq!(objects_with_prefix(&s2, "").len(), 2 * PER_PROCESS, "a new session of the watching process");
    drop(s2);
    drop(s);
}

/// A child that starts after another finished sees the other's objects, and the first one, still
/// running, sees the second one's.
#[test]
fn processes_see_each_others_objects() {
    let token = "mutual";
    let env = Env::new("");
    init_token_with_util(&env, token);
    let out = testproc(&env, &["create", token, "first", "20"]).output().expect("run creator");
    assert!(out.status.success(), "creator of 'first' failed\n{}", show(&out));
    assert_eq!(count_in_child(&env, token, "first-"), 20, "a later process counts the first one's objects");
    let out = testproc(&env, &["create", token, "second", "5", "--public"]).output().expect("run creator");
    assert!(out.status.success(), "creator of 'second' failed\n{}", show(&out));
    assert_eq!(count_in_child(&env, token, "second-"), 5);
    assert_eq!(count_in_child(&env, token, ""), 25);
}

/// Runs `tessera-testproc` expecting a PKCS#11 failure (status 3); gives its stderr.
fn testproc_fails(env: &Env, args: &[&str], pin: &str) -> String {
    let out = testproc(env, args).env("TESSERA_TESTPROC_PIN", pin).output().expect("run tessera-testproc");
    assert_eq!(
        out.status.code(),
        Some(3),
        "tessera-testproc {args:?} with PIN {pin} should fail in PKCS#11\n{}",
        show(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What other processes change on a token (objects destroyed, the PIN changed, the failure count)
/// reaches a process that has the token open all along.
#[test]
fn a_long_running_process_sees_other_processes_changes() {
    let token = "changes";
    let env = Env::new("pin.max_failures = 3");
    init_token_with_util(&env, token);
    let l = load_env(env);
    let slot = l.slot_of(token);
    let s = user_session(&l.p, slot);
    let mine: Vec<ObjectHandle> = (0..5)
        .map(|i| {
            let label = format!("mine-{i}");
            s.create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(i % 2 == 0),
                Attribute::Label(label.clone().into_bytes()),
                Attribute::Value(value_of(&label)),
            ])
            .expect("C_CreateObject")
        })
        .collect();

    // Another process's objects appear; this process's are there for the other.
    run_testproc(&l.env, &["create", token, "theirs", "5"], "");
    assert_exactly(&objects_with_prefix(&s, "theirs-"), "theirs", 5, "after another process created");
    assert_eq!(count_in_child(&l.env, token, "mine-"), 5, "another process counts this one's objects");
    let theirs = s.find_objects(&[Attribute::Label(b"theirs-0".to_vec())]).expect("C_FindObjects");
    assert_eq!(theirs.len(), 1);

    // Objects destroyed by another process disappear, and their handles go invalid.
    assert_eq!(run_testproc(&l.env, &["destroy", token, "theirs-"], "").trim(), "5");
    assert_eq!(run_testproc(&l.env, &["destroy", token, "mine-"], "").trim(), "5");
    let left = objects_with_prefix(&s, "");
    assert!(
        left.is_empty(),
        "objects destroyed by another process are still found: {:?}",
        left.iter().map(|(l, _)| l).collect::<Vec<_>>()
    );
    for h in theirs.iter().chain(&mine) {
        let r = s.get_attributes(*h, &[AttributeType::Label]);
        assert!(
            matches!(r, Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::ObjectHandleInvalid, _))),
            "C_GetAttributeValue on handle {h} of an object another process destroyed: {r:?} \
             (CKR_OBJECT_HANDLE_INVALID expected)"
        );
    }

    // A token key this process used (and so keeps resolved in its session) is gone for it as
    // soon as another process destroys it; before that, a change to it elsewhere shows too.
    let key = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(cryptoki::object::KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"key-0".to_vec()),
            Attribute::Value(vec![7; 32]),
            Attribute::Encrypt(true),
        ])
        .expect("C_CreateObject of a token AES key");
    let cbc = Mechanism::AesCbcPad([0; 16]);
    for _ in 0..3 {
        s.encrypt(&cbc, key, &[0; 16]).expect("C_Encrypt with the token key");
    }
    assert_eq!(run_testproc(&l.env, &["destroy", token, "key-"], "").trim(), "1");
    let r = s.encrypt(&cbc, key, &[0; 16]);
    assert!(
        matches!(r, Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::KeyHandleInvalid, _))),
        "C_EncryptInit with a token key another process destroyed: {r:?} (CKR_KEY_HANDLE_INVALID expected)"
    );

    // A PIN changed by another process is the PIN here too.
    run_testproc(&l.env, &["setpin", token, "567890"], "");
    s.logout().expect("C_Logout");
    let old = s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())));
    assert!(
        matches!(old, Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinIncorrect, _))),
        "C_Login with the PIN another process changed away from: {old:?} (CKR_PIN_INCORRECT expected)"
    );
    s.login(UserType::User, Some(&AuthPin::new("567890".into()))).expect("C_Login with the PIN another process set");
    s.logout().expect("C_Logout");

    // Failures counted here and in other processes add up (max_failures = 3): one here, two there.
    // The wrong old PIN above was this minute's first failure: the minute is let pass in the
    // store, so that what follows meets the consecutive count alone (the per-minute limit has a
    // test of its own, `store_hardening.rs`).
    let dir = std::fs::read_dir(l.env.tokendir()).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let db = rusqlite::Connection::open(dir.join("tessera.db")).expect("the token database");
    db.execute("UPDATE token SET user_recent = NULL", []).expect("let the minute pass");
    let wrong = s.login(UserType::User, Some(&AuthPin::new("000000".into())));
    assert!(
        matches!(wrong, Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinIncorrect, _))),
        "C_Login with a wrong PIN: {wrong:?}"
    );
    for _ in 0..2 {
        let err = testproc_fails(&l.env, &["count", token, ""], "000000");
        assert!(err.contains("PinIncorrect"), "a wrong PIN in another process: {err}");
    }
    let info = l.p.get_token_info(slot).expect("C_GetTokenInfo");
    assert!(info.user_pin_locked(), "3 failures (1 here, 2 in other processes) should lock the user PIN: {info:?}");
    let locked = s.login(UserType::User, Some(&AuthPin::new("567890".into())));
    assert!(
        matches!(locked, Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinLocked, _))),
        "C_Login with the right PIN after 3 failures across processes: {locked:?} (CKR_PIN_LOCKED expected)"
    );
    let err = testproc_fails(&l.env, &["count", token, ""], "567890");
    assert!(err.contains("PinLocked"), "another process after the lock: {err}");
    drop(s);
}

/// Another process re-initialises the token (tessera-util --init-token --token) while this one is
/// logged in on it, then a third one creates 3 objects (private or public). Whatever this process
/// may still do with its old login must not leave the token unreadable for everyone else, and it
/// gets back to work by logging in again.
fn reinit_by_another_process_while_logged_in(others_private: bool) {
    let token = "victim";
    let env = Env::new("");
    init_token_with_util(&env, token);
    let l = load_env(env);
    let slot = l.slot_of(token);
    let s = user_session(&l.p, slot);
    let before = objects_with_prefix(&s, "");
    assert!(before.is_empty());

    let out = l
        .env
        .command(util_path())
        .args(["--init-token", "--token", token, "--label", "reborn", "--so-pin", SO_PIN, "--pin", USER_PIN])
        .output()
        .expect("run tessera-util");
    assert!(out.status.success(), "tessera-util --init-token --token {token} (re-init) failed\n{}", show(&out));
    let mut args = vec!["create", "reborn", "new", "3"];
    if !others_private {
        args.push("--public");
    }
    run_testproc(&l.env, &args, "");

    // The old login here: whatever C_CreateObject answers, ...
    let label = "stale-0";
    let created = s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(value_of(label)),
    ]);
    eprintln!("C_CreateObject in the session logged in before the re-init: {created:?}");

    // ... every other process can still log in and read the re-initialised token.
    let out = testproc(&l.env, &["count", "reborn", ""]).output().expect("run tessera-testproc");
    assert!(
        out.status.success(),
        "after a process still logged in from before a re-init created a private object \
         (C_CreateObject -> {created:?}), \
         the re-initialised token is unreadable for a new process\n{}",
        show(&out)
    );
    let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().expect("count");
    assert!(n == 3 || (n == 4 && created.is_ok()), "{n} objects on the re-initialised token");

    // This process gets back to work by logging in again, with the PIN set at the re-init.
    let _ = s.logout();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))).expect("C_Login after the re-init");
    let now = objects_with_prefix(&s, "");
    assert!(now.len() == n, "after logging in again this process sees {} objects, another {n}", now.len());
    drop(s);
}

#[test]
fn reinit_by_another_process_while_logged_in_then_private_objects() {
    reinit_by_another_process_while_logged_in(true);
}

#[test]
fn reinit_by_another_process_while_logged_in_then_public_objects() {
    reinit_by_another_process_while_logged_in(false);
}

// ---------------------------------------------------------------------------------------------
// Eight threads in one process
// ---------------------------------------------------------------------------------------------

const THREADS: usize = 8;
const ROUNDS: usize = 100;

fn data_for(t: usize, i: usize) -> Vec<u8> {
    let len = 1 + (t * 131 + i * 977) % 5000;
    (0..len).map(|k| ((k as u64 * 2_654_435_761) ^ (t * 31 + i) as u64) as u8).collect()
}

/// Local digest of `data` for the mechanism at `i % 3`.
fn digest_case(i: usize, data: &[u8]) -> (Mechanism<'static>, Vec<u8>) {
    match i % 3 {
        0 => (Mechanism::Sha256, Sha256::digest(data).to_vec()),
        1 => (Mechanism::Sha384, Sha384::digest(data).to_vec()),
        _ => (Mechanism::Sha512, Sha512::digest(data).to_vec()),
    }
}

fn find_one(s: &Session, template: &[Attribute], what: &str) -> Result<ObjectHandle, String> {
    let found = s.find_objects(template).map_err(|e| format!("C_FindObjects {what}: {e}"))?;
    match found.as_slice() {
        [h] => Ok(*h),
        _ => Err(format!("C_FindObjects {what}: {} objects found, expected 1", found.len())),
    }
}

fn worker(p: Pkcs11, slot: Slot, t: usize) -> Result<usize, String> {
    let s = p.open_rw_session(slot).map_err(|e| format!("C_OpenSession: {e}"))?;
    let state = s.get_session_info().map_err(|e| format!("C_GetSessionInfo: {e}"))?.session_state();
    if state != SessionState::RwUser {
        return Err(format!("a new session of the logged-in application is in state {state:?}, not RW user"));
    }
    let mut ops = 0;
    for i in 0..ROUNDS {
        let data = data_for(t, i);
        let tok_label = format!("thr{t}-tok-{i}");
        let ses_label = format!("thr{t}-ses-{i}");
        let ctx = |what: &str| format!("thread {t} round {i}: {what}");

        let tok = s
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(tok_label.clone().into_bytes()),
                Attribute::Value(data.clone()),
            ])
            .map_err(|e| ctx(&format!("C_CreateObject (token): {e}")))?;
        let rev: Vec<u8> = data.iter().rev().copied().collect();
        let ses = s
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(false),
                Attribute::Label(ses_label.clone().into_bytes()),
                Attribute::Value(rev.clone()),
            ])
            .map_err(|e| ctx(&format!("C_CreateObject (session): {e}")))?;

        // Multi-part digest in uneven pieces, then single-part; both against the local value.
        let (mech, want) = digest_case(i, &data);
        s.digest_init(&mech).map_err(|e| ctx(&format!("C_DigestInit {mech:?}: {e}")))?;
        let mut rest = &data[..];
        for piece in [1usize, 7, 64, 1000].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (a, b) = rest.split_at((*piece).min(rest.len()));
            s.digest_update(a).map_err(|e| ctx(&format!("C_DigestUpdate: {e}")))?;
            rest = b;
        }
        let multi = s.digest_final().map_err(|e| ctx(&format!("C_DigestFinal: {e}")))?;
        if multi != want {
            return Err(ctx(&format!("multi-part {mech:?} of {} bytes differs from the local digest", data.len())));
        }
        let single = s.digest(&mech, &data).map_err(|e| ctx(&format!("C_Digest {mech:?}: {e}")))?;
        if single != want {
            return Err(ctx(&format!("single-part {mech:?} of {} bytes differs from the local digest", data.len())));
        }

        let random = s.generate_random_vec(32).map_err(|e| ctx(&format!("C_GenerateRandom: {e}")))?;
        if random.len() != 32 || random.iter().all(|b| *b == 0) {
            return Err(ctx(&format!("C_GenerateRandom gave {random:02x?}")));
        }

        // Find its own objects by label, read them back.
        let found =
            find_one(&s, &[Attribute::Label(tok_label.clone().into_bytes())], &tok_label).map_err(|e| ctx(&e))?;
        if found != tok {
            return Err(ctx(&format!("{tok_label} found as handle {found}, created as {tok}")));
        }
        let found =
            find_one(&s, &[Attribute::Token(false), Attribute::Label(ses_label.clone().into_bytes())], &ses_label)
                .map_err(|e| ctx(&e))?;
        if found != ses {
            return Err(ctx(&format!("{ses_label} found as handle {found}, created as {ses}")));
        }
        for (h, label, value, token) in [(tok, &tok_label, &data, true), (ses, &ses_label, &rev, false)] {
            let attrs = s
                .get_attributes(h, &[AttributeType::Label, AttributeType::Value, AttributeType::Token])
                .map_err(|e| ctx(&format!("C_GetAttributeValue {label}: {e}")))?;
            let want = vec![
                Attribute::Label(label.clone().into_bytes()),
                Attribute::Value(value.clone()),
                Attribute::Token(token),
            ];
            if attrs != want {
                return Err(ctx(&format!("{label} reads back as {attrs:?}")));
            }
        }

        s.destroy_object(tok).map_err(|e| ctx(&format!("C_DestroyObject {tok_label}: {e}")))?;
        s.destroy_object(ses).map_err(|e| ctx(&format!("C_DestroyObject {ses_label}: {e}")))?;
        for label in [&tok_label, &ses_label] {
            let left = s
                .find_objects(&[Attribute::Label(label.clone().into_bytes())])
                .map_err(|e| ctx(&format!("C_FindObjects {label}: {e}")))?;
            if !left.is_empty() {
                return Err(ctx(&format!("{label} is still found after C_DestroyObject")));
            }
        }
        ops += 1;
    }
    s.close().map_err(|e| format!("thread {t}: C_CloseSession: {e}"))?;
    Ok(ops)
}

#[test]
fn eight_threads_on_one_token() {
    let l = load();
    let slot = l.new_token("threads");
    // The login belongs to the application: this session keeps it for all the threads' sessions.
    let holder = user_session(&l.p, slot);
    let started = Instant::now();
    let results: Vec<Result<usize, String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let p = l.p.clone();
                sc.spawn(move || worker(p, slot, t))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("the thread panicked".into()))).collect()
    });
    eprintln!("{THREADS} threads x {ROUNDS} rounds: {:?}", started.elapsed());
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {THREADS} threads failed:\n{}",
        failures.len(),
        failures.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    for r in &results {
        assert_eq!(r.as_ref().ok(), Some(&ROUNDS));
    }
    let left = objects_with_prefix(&holder, "thr");
    assert!(
        left.is_empty(),
        "objects left behind after every thread destroyed its own: {:?}",
        left.iter().map(|(l, _)| l).collect::<Vec<_>>()
    );
    holder.close().expect("C_CloseSession");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL in the middle of writing
// ---------------------------------------------------------------------------------------------

const KILLS: usize = 50;

/// Where a kill point's delay counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Startup = 0,
    Ready = 1,
    Creating = 2,
}

/// Reads a child's stdout on a thread, passing on each line.
fn lines_of(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    (rx, h)
}

#[test]
fn kill9_while_creating_loses_nothing_committed() {
    let token = "crash";
    let env = Env::new("");
    init_token_with_util(&env, token);
    // This process watches the token throughout, logged in, and checks after every kill; every
    // fifth kill a fresh process checks too (and every victim is a fresh process opening the token).
    let l = load_env(env);
    let env = &l.env;
    let watcher = user_session(&l.p, l.slot_of(token));
    let seed = std::env::var("TESSERA_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1);
    println!("kill test seed: {seed} (replay with TESSERA_STRESS_SEED={seed})");
    eprintln!("kill test seed: {seed} (replay with TESSERA_STRESS_SEED={seed})");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut total_committed = 0;
    let mut total_extra = 0;
    let mut by_phase = [0usize; 3];
    let mut companions = 0;
    for k in 0..KILLS {
        let point_started = Instant::now();
        let prefix = format!("k{k}");
        // Every tenth kill point has a companion writing to the token at the same time, which must
        // not notice the kill (no lock left behind, no lost or broken object).
        let companion = (k % 10 == 3).then(|| {
            companions += 1;
            testproc(env, &["create", token, &format!("c{k}"), "300"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn companion")
        });
        let mut child = testproc(env, &["create", token, &prefix, "1000000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera-testproc create");
        let (rx, reader) = lines_of(&mut child);
        let mut lines = Vec::new();
        // One kill in five lands anywhere in start-up (loading, C_Initialize, C_Login), one in five
        // counts its delay from `ready` (the first C_CreateObject, which reads in the token's
        // objects), the others from the first committed object (in the stream of creations).
        let phase = match k % 5 {
            0 => Phase::Startup,
            1 => Phase::Ready,
            _ => Phase::Creating,
        };
        let wait_for =
            |lines: &mut Vec<String>, what: &str, child: &mut Child| match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(l) => lines.push(l),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let mut err = String::new();
                    child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                    panic!("kill point {k} (seed {seed}): no {what} from the child in 30 s ({e:?}); stderr: {err}");
                }
            };
        let delay = match phase {
            Phase::Startup => Duration::from_millis(rng.range(1, 400)),
            Phase::Ready => {
                wait_for(&mut lines, "ready", &mut child);
                Duration::from_millis(rng.range(2, 200))
            }
            // 2-40 ms into the stream: a creation commits every 40 µs or so, so the window spans
            // hundreds of them and the kill falls at an evenly random moment of one (before,
            // inside or after its transaction) as it would with a longer one. A longer window
            // only makes the token bigger (about 25 objects a millisecond, kept to the end for
            // the final check), and every later process reads all of them in: 2-200 ms made
            // 80,000 objects and took 30 s, most of it in those reads.
            Phase::Creating => {
                wait_for(&mut lines, "ready", &mut child);
                wait_for(&mut lines, "first object", &mut child);
                Duration::from_millis(rng.range(2, 40))
            }
        };
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        reader.join().expect("reader thread");
        lines.extend(rx.try_iter());
        let mut stderr = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut stderr).ok();
        assert_eq!(
            status.signal(),
            Some(9),
            "kill point {k} (seed {seed}): the child ended on its own before SIGKILL: {status:?}\n\
             stdout: {lines:?}\nstderr: {stderr}"
        );
        if phase != Phase::Startup {
            assert_eq!(lines.first().map(String::as_str), Some("ready"), "kill point {k}: first line");
        }
        let committed: Vec<String> = lines.into_iter().filter(|l| l != "ready").collect();
        for (i, l) in committed.iter().enumerate() {
            assert_eq!(*l, format!("{prefix}-{i}"), "kill point {k} (seed {seed}): labels printed out of order");
        }

        // Every committed object is there, intact; in this process, and in a fresh one.
        let found = verify_here(&watcher, &format!("{prefix}-"), &prefix, &committed)
            .unwrap_or_else(|e| panic!("kill point {k} (seed {seed}), seen by the watching process: {e}"));
        if k % 5 == 4 {
            let fresh = verify_in_child_app(env, token, &format!("{prefix}-"), Some(&prefix), &committed);
            assert_eq!(fresh, found, "kill point {k} (seed {seed}): a fresh process and the watcher disagree");
        }
        // At most the one C_CreateObject in flight may have committed without being announced.
        assert!(
            found == committed.len() || found == committed.len() + 1,
            "kill point {k} (seed {seed}): {found} objects with prefix {prefix}, {} announced as committed",
            committed.len()
        );
        if let Some(c) = companion {
            let out = c.wait_with_output().expect("wait companion");
            assert!(out.status.success(), "kill point {k} (seed {seed}): the companion writer failed\n{}", show(&out));
            let labels = printed_labels(&out);
            assert_eq!(labels.len(), 300, "kill point {k}: the companion announced {} objects", labels.len());
            let app = format!("c{k}");
            assert_eq!(
                verify_in_child_app(env, token, &format!("c{k}-"), Some(&app), &labels),
                300,
                "kill point {k}: companion"
            );
        }
        total_committed += committed.len();
        total_extra += found - committed.len();
        by_phase[phase as usize] += usize::from(!committed.is_empty());
        eprintln!(
            "kill point {k:2}: {:>8} + {:3} ms, {:4} committed{}{}, {} ms in all",
            format!("{phase:?}"),
            delay.as_millis(),
            committed.len(),
            if found > committed.len() { " (+1 unannounced)" } else { "" },
            if k % 10 == 3 { ", with a companion" } else { "" },
            point_started.elapsed().as_millis()
        );
    }
    eprintln!(
        "{KILLS} kills ({companions} with a companion writer) in {:?}: {total_committed} committed objects, \
         {total_extra} committed but unannounced; \
         kills after some commits by phase (start-up, ready, creating): {by_phase:?}",
        started.elapsed()
    );
    // Finally all of it at once, in this process and in a fresh one.
    let all = objects_with_prefix(&watcher, "k");
    assert_eq!(all.len(), total_committed + total_extra, "objects seen in-process after all kills");
    for (label, value) in &all {
        assert!(*value == value_of(label), "{label}: wrong CKA_VALUE after the kills");
    }
    assert_eq!(count_in_child(env, token, "k"), all.len(), "objects counted by a fresh process after all kills");
    assert!(by_phase[Phase::Creating as usize] > 0, "no kill point landed after an object was committed");
    drop(watcher);
}
