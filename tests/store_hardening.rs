//! The token store against someone with a local account or a user login: file modes, the PIN
//! failure counter under parallel guesses (threads and processes) and against a restored
//! database, the authentication of stored objects, the stored PBKDF2 iteration count, and
//! `C_SetAttributeValue` under concurrent changes. Everything goes through the built `.so`;
//! the store is changed behind the module's back with SQLite, as an attacker would.

use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use tessera_tests::*;

/// The directory of the only token in `tokens`.
fn token_dir(tokens: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(tokens)
        .expect("token directory")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one token expected in {}: {dirs:?}", tokens.display());
    dirs[0].clone()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

/// Every file of a token directory.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).expect("token dir").flatten().map(|e| e.path()).filter(|p| p.is_file()).collect()
}

fn login(p: &cryptoki::context::Pkcs11, slot: cryptoki::slot::Slot, user: UserType, pin: &str) -> Option<RvError> {
    let s = p.open_rw_session(slot).expect("C_OpenSession");
    outcome(s.login(user, Some(&AuthPin::new(pin.into()))))
}

fn store(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("tessera.db")).expect("open the token database")
}

/// A token AES key, modifiable, with the given label and flags.
fn aes_key(s: &Session, label: &str, private: bool, sensitive: bool) -> ObjectHandle {
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(private),
        Attribute::Sensitive(sensitive),
        Attribute::Extractable(true),
        Attribute::Modifiable(true),
        Attribute::Encrypt(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(vec![0x5a; 32]),
    ])
    .expect("C_CreateObject of a token AES key")
}

/// Creates a public token data object `label` holding `value`.
fn public_data(s: &Session, label: &[u8], value: &[u8]) -> cryptoki::error::Result<ObjectHandle> {
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(label.to_vec()),
        Attribute::Value(value.to_vec()),
    ])
}

fn find(s: &Session, label: &str) -> Vec<ObjectHandle> {
    s.find_objects(&[Attribute::Label(label.as_bytes().to_vec())]).expect("C_FindObjects")
}

/// The object's CKA_VALUE if the module hands it out.
fn value(s: &Session, h: ObjectHandle) -> Option<Vec<u8>> {
    match s.get_attributes(h, &[AttributeType::Value]) {
        Ok(a) => a.into_iter().find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        }),
        Err(_) => None,
    }
}

fn flag(s: &Session, h: ObjectHandle, t: AttributeType) -> bool {
    match s.get_attributes(h, &[t]).expect("C_GetAttributeValue").into_iter().next() {
        Some(Attribute::Sensitive(b)) | Some(Attribute::Extractable(b)) => b,
        other => panic!("{t:?}: {other:?}"),
    }
}

/// The store id of the object row whose (plain) attribute blob contains `needle`.
fn row_with(db: &rusqlite::Connection, needle: &[u8]) -> i64 {
    let mut st = db.prepare("SELECT id, attrs FROM object").unwrap();
    let rows: Vec<(i64, Vec<u8>)> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap();
    let hits: Vec<i64> =
        rows.iter().filter(|(_, a)| a.windows(needle.len()).any(|w| w == needle)).map(|r| r.0).collect();
    assert_eq!(hits.len(), 1, "exactly one row holds {needle:?}");
    hits[0]
}

/// A boolean attribute as the store encodes it (postcard: the type as a varint, the value's
/// length, the value).
fn encoded_flag(t: u64, v: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut t = t;
    loop {
        let b = (t & 0x7f) as u8;
        t >>= 7;
        if t == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend([1, v as u8]);
    out
}

/// Files 0600 in a directory 0700, whatever the umask of the process that made them.
#[test]
fn a_new_token_is_readable_by_its_owner_only() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let l = load_env(Env::at(tokens.path(), ""));
    // The most permissive umask: the modes must not come from it.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let slot = l.new_token("modes");
    let s = user_session(&l.p, slot);
    aes_key(&s, "k", true, true);
    drop(s);
    nix::sys::stat::umask(old);
    let dir = token_dir(tokens.path());
    assert_eq!(mode(&dir), 0o700, "token directory {}", dir.display());
    let files = files_in(&dir);
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for n in ["tessera.db", "tessera.db-wal", "tessera.db-shm", "changes", "pin-state"] {
        assert!(names.iter().any(|x| x == n), "{n} missing among {names:?}");
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}

/// A store made by an older build (0755 and 0644) is tightened when a process opens it.
#[test]
fn a_loosened_store_is_tightened_when_opened() {
    let tokens = tempfile::tempdir().expect("tempdir");
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let slot = l.new_token("loose");
        aes_key(&user_session(&l.p, slot), "k", true, true);
    }
    let dir = token_dir(tokens.path());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let files = files_in(&dir);
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let l = load_env(Env::at(tokens.path(), ""));
    let slot = l.slot_of("loose");
    // Opening a session opens the token's store.
    let s = l.p.open_ro_session(slot).expect("C_OpenSession");
    assert_eq!(find(&s, "k").len(), 0, "the private key is not visible without login");
    assert_eq!(mode(&dir), 0o700, "token directory");
    for f in files_in(&dir) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

/// Tallies login outcomes: (incorrect, locked).
fn tally(outcomes: &[Option<RvError>]) -> (usize, usize) {
    let incorrect = outcomes.iter().filter(|o| **o == Some(RvError::PinIncorrect)).count();
    let locked = outcomes.iter().filter(|o| **o == Some(RvError::PinLocked)).count();
    assert_eq!(incorrect + locked, outcomes.len(), "only CKR_PIN_INCORRECT or CKR_PIN_LOCKED expected: {outcomes:?}");
    (incorrect, locked)
}

/// Makes the token `label` in the store `tokens` (configuration lines `conf`) with a module that
/// is finalised again before the return, so that other processes may use the store.
fn new_token_in(tokens: &Path, conf: &str, label: &str) {
    let l = load_env(Env::at(tokens, conf));
    l.new_token(label);
}

/// Starts `tessera-testproc login <label> 0000` on `env`, gated: returns once it has its session
/// open and has printed `ready`, with the reader of the rest of its output. [`go`] lets it try.
fn gated_wrong_login(env: &Env, label: &str) -> (Child, BufReader<ChildStdout>) {
    let mut c = env.command(testproc_path!());
    c.env("TESSERA_MODULE", module_path())
        .env("TESSERA_TESTPROC_GATE", "1")
        .args(["login", label, "000000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn tessera-testproc");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let line = next_line(&mut out);
    assert_eq!(line.trim(), "ready", "{}", describe(&c));
    (child, out)
}

/// Lets a child started by [`gated_wrong_login`] go on to its `C_Login`.
fn go(child: &mut Child) {
    child.stdin.as_mut().expect("stdin").write_all(b"go\n").expect("go");
}

/// The next line of a child's output.
fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    line
}

/// The real user's logins take back the consecutive failures, but not the failures of the last
/// minute: with pin.max_failures = 3, a guesser who tries between the user's logins gets 3 wrong
/// PINs in any 60 seconds, then the PIN is locked (`CKR_PIN_LOCKED`, the right PIN too) until the
/// oldest of them is a minute old. The lock is not the lasting one (`CKF_USER_PIN_LOCKED` stays
/// clear). The minute slides: failures 50 s old still count, 65 s old no longer do (their times
/// moved back in the store, once per token).
#[test]
fn wrong_pins_between_good_logins_are_limited_per_minute() {
    for (aged, locked) in [(50, true), (65, false)] {
        let tokens = tempfile::tempdir().expect("tempdir");
        let l = load_env(Env::at(tokens.path(), "pin.max_failures = 3"));
        let slot = l.new_token("window");
        let wrong = "999999";
        assert_eq!(login(&l.p, slot, UserType::User, wrong), Some(RvError::PinIncorrect));
        assert_eq!(login(&l.p, slot, UserType::User, wrong), Some(RvError::PinIncorrect));
        assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), None, "the consecutive count is taken back");
        assert_eq!(login(&l.p, slot, UserType::User, wrong), Some(RvError::PinIncorrect));
        assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), Some(RvError::PinLocked), "3 failures this minute");
        assert_eq!(login(&l.p, slot, UserType::User, wrong), Some(RvError::PinLocked));
        assert!(!l.p.get_token_info(slot).unwrap().user_pin_locked(), "not the lasting lock");
        let db = store(&token_dir(tokens.path()));
        let v: Vec<u8> = db.query_row("SELECT user_recent FROM token", [], |r| r.get(0)).unwrap();
        assert_eq!(v.len(), 24, "the times of the 3 failures are kept");
        let older: Vec<u8> =
            v.chunks_exact(8).flat_map(|c| (i64::from_le_bytes(c.try_into().unwrap()) - aged).to_le_bytes()).collect();
        db.execute("UPDATE token SET user_recent = ?1", [older]).unwrap();
        drop(db);
        let want = if locked { Some(RvError::PinLocked) } else { None };
        assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), want, "failures {aged} s old");
    }
}

/// 16 wrong user PINs at once from 16 threads, against pin.max_failures = 3: no more than 3
/// are ever checked; then the right PIN is locked out too.
#[test]
fn parallel_wrong_pins_from_threads_never_exceed_max_failures() {
    let l = load_env(Env::new("pin.max_failures = 3"));
    let slot = l.new_token("threads");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
    let outcomes: Vec<Option<RvError>> = (0..16)
        .map(|_| {
            let p = l.p.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                let s = p.open_ro_session(slot).expect("C_OpenSession");
                b.wait();
                outcome(s.login(UserType::User, Some(&AuthPin::new("000000".into()))))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let (incorrect, locked) = tally(&outcomes);
    assert_eq!((incorrect, locked), (3, 13), "{outcomes:?}");
    assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), Some(RvError::PinLocked), "the right PIN, once locked");
    let info = l.p.get_token_info(slot).expect("C_GetTokenInfo");
    assert!(info.user_pin_locked(), "CKF_USER_PIN_LOCKED");
}

/// The same from 16 processes, each its own application.
#[test]
fn parallel_wrong_pins_from_processes_never_exceed_max_failures() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let conf = "pin.max_failures = 3";
    new_token_in(tokens.path(), conf, "procs");
    let env = Env::at(tokens.path(), conf);
    let mut children: Vec<_> = (0..16).map(|_| gated_wrong_login(&env, "procs")).collect();
    // Every process has its session open: all go at once.
    for (child, _) in &mut children {
        go(child);
    }
    let outcomes: Vec<Option<RvError>> = children
        .into_iter()
        .map(|(mut child, mut out)| {
            let line = next_line(&mut out);
            let status = child.wait().expect("wait");
            assert!(status.success(), "tessera-testproc login: {status:?}");
            match line.trim() {
                "PinIncorrect" => Some(RvError::PinIncorrect),
                "PinLocked" => Some(RvError::PinLocked),
                other => panic!("unexpected outcome {other:?}"),
            }
        })
        .collect();
    let (incorrect, locked) = tally(&outcomes);
    assert_eq!((incorrect, locked), (3, 13), "{outcomes:?}");
    let l = load_env(Env::at(tokens.path(), conf));
    let slot = l.slot_of("procs");
    assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), Some(RvError::PinLocked), "the right PIN, once locked");
}

/// Copies of the database files of a token directory, to put back later.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    ["tessera.db", "tessera.db-wal"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.exists())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn restore(dir: &Path, snap: &[(PathBuf, Vec<u8>)]) {
    let _ = std::fs::remove_file(dir.join("tessera.db-wal"));
    let _ = std::fs::remove_file(dir.join("tessera.db-shm"));
    for (p, b) in snap {
        std::fs::write(p, b).unwrap();
    }
}

/// A user PIN locked by wrong guesses stays locked when the database is put back as it was
/// before the guesses; the SO's C_InitPIN lifts it.
#[test]
fn a_restored_database_does_not_unlock_the_pin() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let conf = "pin.max_failures = 3";
    {
        let l = load_env(Env::at(tokens.path(), conf));
        let slot = l.new_token("rollback");
        assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), None);
    }
    let dir = token_dir(tokens.path());
    let before = snapshot(&dir);
    {
        let l = load_env(Env::at(tokens.path(), conf));
        let slot = l.slot_of("rollback");
        for _ in 0..3 {
            assert_eq!(login(&l.p, slot, UserType::User, "000000"), Some(RvError::PinIncorrect));
        }
        assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), Some(RvError::PinLocked));
    }
    restore(&dir, &before);
    let l = load_env(Env::at(tokens.path(), conf));
    let slot = l.slot_of("rollback");
    assert_eq!(
        login(&l.p, slot, UserType::User, USER_PIN),
        Some(RvError::PinLocked),
        "the right user PIN after the database was restored from before the failures"
    );
    assert!(l.p.get_token_info(slot).expect("C_GetTokenInfo").user_pin_locked(), "CKF_USER_PIN_LOCKED");
    // The SO is not blocked: it sets a new user PIN, which works.
    let so = l.p.open_rw_session(slot).expect("C_OpenSession");
    so.login(UserType::So, Some(&AuthPin::new(SO_PIN.into()))).expect("SO login");
    so.init_pin(&AuthPin::new("654321".into())).expect("C_InitPIN");
    so.logout().expect("C_Logout");
    drop(so);
    assert_eq!(login(&l.p, slot, UserType::User, "654321"), None, "the user PIN the SO set");
}

/// An attribute of a public key object changed in the database (CKA_SENSITIVE true → false) is
/// noticed: the object is refused, and its value is never handed out. The same for a byte of a
/// public data object written by a logged-in user.
#[test]
fn a_flipped_attribute_is_refused() {
    let tokens = tempfile::tempdir().expect("tempdir");
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let slot = l.new_token("flip");
        let s = user_session(&l.p, slot);
        let k = aes_key(&s, "public-sensitive", false, true);
        assert_eq!(value(&s, k), None, "a sensitive key's value");
        public_data(&s, b"public-data", b"the value as written").expect("C_CreateObject");
    }
    let dir = token_dir(tokens.path());
    {
        let db = store(&dir);
        let id = row_with(&db, b"public-sensitive");
        let attrs: Vec<u8> = db.query_row("SELECT attrs FROM object WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        let on = encoded_flag(cryptoki_sys::CKA_SENSITIVE, true);
        let at = attrs.windows(on.len()).position(|w| w == on).expect("CKA_SENSITIVE = true in the row");
        let mut flipped = attrs.clone();
        flipped[at + on.len() - 1] = 0;
        db.execute("UPDATE object SET attrs = ?2 WHERE id = ?1", rusqlite::params![id, flipped]).unwrap();
        let id = row_with(&db, b"the value as written");
        let attrs: Vec<u8> = db.query_row("SELECT attrs FROM object WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        let at = attrs.windows(10).position(|w| w == b"as written").expect("the value in the row");
        let mut changed = attrs.clone();
        changed[at..at + 10].copy_from_slice(b"as changed");
        db.execute("UPDATE object SET attrs = ?2 WHERE id = ?1", rusqlite::params![id, changed]).unwrap();
    }
    let l = load_env(Env::at(tokens.path(), ""));
    let s = user_session(&l.p, l.slot_of("flip"));
    for h in find(&s, "public-sensitive") {
        assert!(flag(&s, h, AttributeType::Sensitive), "the key was found with CKA_SENSITIVE false");
        assert_eq!(value(&s, h), None, "the value of a sensitive key was handed out");
    }
    assert!(find(&s, "public-sensitive").is_empty(), "the altered key must be refused");
    assert!(find(&s, "public-data").is_empty(), "the altered data object must be refused");
}

/// Parts of two revisions of one row put together (the attributes of revision 1 with the key
/// material of revision 2, or the other way round) are refused: a key made sensitive does not
/// become readable again.
#[test]
fn revisions_of_a_row_cannot_be_mixed() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let mut rows = Vec::new();
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let slot = l.new_token("revs");
        let s = user_session(&l.p, slot);
        for (label, private) in [("public-key", false), ("private-key", true)] {
            let k = aes_key(&s, label, private, false);
            assert!(value(&s, k).is_some(), "a non-sensitive, extractable key's value");
            rows.push(k);
        }
    }
    let dir = token_dir(tokens.path());
    let read = |id: i64| -> (Vec<u8>, Option<Vec<u8>>) {
        store(&dir)
            .query_row("SELECT attrs, secret FROM object WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    };
    let ids: Vec<i64> = {
        let db = store(&dir);
        let mut st = db.prepare("SELECT id FROM object ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(ids.len(), 2);
    let rev1: Vec<_> = ids.iter().map(|id| read(*id)).collect();
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let s = user_session(&l.p, l.slot_of("revs"));
        for label in ["public-key", "private-key"] {
            let h = find(&s, label)[0];
            s.update_attributes(h, &[Attribute::Sensitive(true)]).expect("C_SetAttributeValue CKA_SENSITIVE");
            assert_eq!(value(&s, h), None);
        }
    }
    let rev2: Vec<_> = ids.iter().map(|id| read(*id)).collect();
    // The public key: revision 1's attributes with revision 2's key material.
    // The private key: revision 2's attributes with revision 1's key material.
    store(&dir).execute("UPDATE object SET attrs = ?2 WHERE id = ?1", rusqlite::params![ids[0], rev1[0].0]).unwrap();
    store(&dir).execute("UPDATE object SET secret = ?2 WHERE id = ?1", rusqlite::params![ids[1], rev1[1].1]).unwrap();
    assert_ne!(rev2[1].1, rev1[1].1);
    let l = load_env(Env::at(tokens.path(), ""));
    let s = user_session(&l.p, l.slot_of("revs"));
    for label in ["public-key", "private-key"] {
        for h in find(&s, label) {
            assert_eq!(value(&s, h), None, "{label}: the value of a key made sensitive was handed out");
        }
        assert!(find(&s, label).is_empty(), "{label}: a row of mixed revisions must be refused");
    }
}

/// A PBKDF2 iteration count below 600,000 in the database is refused as damage, without
/// counting a failure; one below the configured count is raised to it at the next right login.
#[test]
fn stored_iteration_counts_below_the_minimum_are_refused() {
    let tokens = tempfile::tempdir().expect("tempdir");
    {
        let l = load_env(Env::at(tokens.path(), ""));
        l.new_token("kdf");
    }
    let dir = token_dir(tokens.path());
    let its =
        |col: &str| -> i64 { store(&dir).query_row(&format!("SELECT {col} FROM token"), [], |r| r.get(0)).unwrap() };
    assert_eq!(its("user_iterations"), 600_000);
    store(&dir).execute("UPDATE token SET user_iterations = 1000", []).unwrap();
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let slot = l.slot_of("kdf");
        assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), Some(RvError::DeviceError));
        assert_eq!(login(&l.p, slot, UserType::User, "000000"), Some(RvError::DeviceError));
        assert_eq!(its("user_failures"), 0, "no attempt is counted against a damaged wrap");
    }
    store(&dir).execute("UPDATE token SET user_iterations = 600000", []).unwrap();
    let l = load_env(Env::at(tokens.path(), "pin.kdf_iterations = 650000"));
    let slot = l.slot_of("kdf");
    assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), None);
    assert_eq!(its("user_iterations"), 650_000, "the wrap is raised to the configured count");
    assert_eq!(login(&l.p, slot, UserType::User, USER_PIN), None, "and opens with it");
}

/// Two threads change one token key at once, many rounds: one its label, the other its
/// CKA_ID and, once, CKA_SENSITIVE to true. No change is lost, and the key never becomes
/// non-sensitive again.
#[test]
fn concurrent_attribute_changes_are_never_lost() {
    let l = load_env(Env::new(""));
    let slot = l.new_token("setters");
    let s = user_session(&l.p, slot);
    const ROUNDS: usize = 12;
    const SETS: usize = 25;
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let k = aes_key(&s, &format!("r{round}"), true, false);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let spawn = |labels: bool| {
            let p = l.p.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                let s = p.open_rw_session(slot).expect("C_OpenSession");
                b.wait();
                for i in 0..SETS {
                    if labels {
                        s.update_attributes(k, &[Attribute::Label(format!("a{i}").into_bytes())]).expect("label");
                    } else {
                        if i == SETS / 2 {
                            s.update_attributes(k, &[Attribute::Sensitive(true)]).expect("sensitive");
                        }
                        s.update_attributes(k, &[Attribute::Id(format!("b{i}").into_bytes())]).expect("id");
                        if i >= SETS / 2 {
                            assert!(flag(&s, k, AttributeType::Sensitive), "CKA_SENSITIVE went back to false");
                        }
                    }
                }
            })
        };
        let (a, b) = (spawn(true), spawn(false));
        a.join().expect("label setter");
        b.join().expect("id setter");
        let got = s
            .get_attributes(k, &[AttributeType::Label, AttributeType::Id, AttributeType::Sensitive])
            .expect("C_GetAttributeValue");
        let want = vec![
            Attribute::Label(format!("a{}", SETS - 1).into_bytes()),
            Attribute::Id(format!("b{}", SETS - 1).into_bytes()),
            Attribute::Sensitive(true),
        ];
        if got != want {
            lost.push(format!("round {round}: {got:?}"));
        }
    }
    assert!(lost.is_empty(), "updates lost:\n{}", lost.join("\n"));
}

/// Where the store written by the build before objects were authenticated lives (schema 3).
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-v3")
}

/// Writes the fixture of [`a_store_of_the_previous_format_opens_and_is_resealed`] with the module
/// `TESSERA_MODULE` points at (the build before objects were authenticated) into
/// `$TESSERA_FIXTURE_OUT`. Run by hand: `cargo test --test store_hardening -- --ignored`.
#[test]
#[ignore]
fn make_previous_format_fixture() {
    let Some(out) = std::env::var_os("TESSERA_FIXTURE_OUT").map(PathBuf::from) else {
        println!("SKIP: TESSERA_FIXTURE_OUT is not set");
        return;
    };
    let tokens = tempfile::tempdir().expect("tempdir");
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let slot = l.new_token("old-store");
        let s = user_session(&l.p, slot);
        aes_key(&s, "old-private", true, true);
        aes_key(&s, "old-public", false, true);
        public_data(&s, b"old-data", b"old data value").expect("C_CreateObject");
    }
    let dir = token_dir(tokens.path());
    store(&dir).pragma_update(None, "wal_checkpoint", "TRUNCATE").expect("checkpoint");
    let dest = out.join(dir.file_name().unwrap());
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(dir.join("tessera.db"), dest.join("tessera.db")).unwrap();
    println!("written {}", dest.display());
}

/// The user PIN of the fixture's token (its SO PIN is `SO_PIN`).
const FIXTURE_USER_PIN: &str = "1234";

/// A store written by the build before objects were authenticated (schema 3; SO PIN
/// `12345678`, user PIN `1234`) opens: its public objects before login, all of them after; the
/// login re-seals every row, and from then on a changed or downgraded row is refused. Its user
/// PIN, shorter than the approved mode's minimum, proves nothing there: the SO sets `USER_PIN`
/// (`C_InitPIN`), and it is the SO's login that re-seals. The non-approved mode logs in with it
/// and moves it to `USER_PIN` (`C_SetPIN`) for the second half.
#[test]
fn a_store_of_the_previous_format_opens_and_is_resealed() {
    let fixture = std::fs::read_dir(fixture_dir()).expect("fixture").flatten().next().expect("a token").path();
    let tokens = tempfile::tempdir().expect("tempdir");
    let dir = tokens.path().join(fixture.file_name().unwrap());
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fixture.join("tessera.db"), dir.join("tessera.db")).unwrap();
    let version: i64 = store(&dir).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 3, "the fixture is a store of schema 3");
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let slot = l.slot_of("old-store");
        let s = l.p.open_ro_session(slot).expect("C_OpenSession");
        assert!(find(&s, "old-private").is_empty());
        assert_eq!(find(&s, "old-public").len(), 1);
        let d = find(&s, "old-data");
        assert_eq!(value(&s, d[0]).as_deref(), Some(&b"old data value"[..]));
        drop(s);
        let s = l.p.open_rw_session(slot).expect("C_OpenSession");
        let old = AuthPin::new(FIXTURE_USER_PIN.into());
        if approved_mode() {
            let r = outcome(s.login(UserType::User, Some(&old)));
            assert_eq!(r, Some(RvError::PinIncorrect), "C_Login with a PIN below the approved mode's minimum");
            s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into()))).expect("SO login");
            s.init_pin(&AuthPin::new(USER_PIN.into())).expect("C_InitPIN");
            s.logout().expect("C_Logout");
            s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))).expect("user login");
        } else {
            s.login(UserType::User, Some(&old)).expect("user login with the fixture's PIN");
            s.set_pin(&old, &AuthPin::new(USER_PIN.into())).expect("C_SetPIN");
        }
        for label in ["old-private", "old-public"] {
            let k = find(&s, label);
            assert_eq!(k.len(), 1, "{label}");
            assert!(flag(&s, k[0], AttributeType::Sensitive), "{label}");
            assert_eq!(value(&s, k[0]), None, "{label}");
            s.encrypt(&cryptoki::mechanism::Mechanism::AesCbcPad([0; 16]), k[0], b"x").expect("C_Encrypt");
        }
        assert_eq!(find(&s, "old-data").len(), 1);
    }
    {
        let db = store(&dir);
        let old: i64 = db.query_row("SELECT count(*) FROM object WHERE format = 0", [], |r| r.get(0)).unwrap();
        assert_eq!(old, 0, "every row re-sealed at the login");
        let untagged: i64 = db
            .query_row("SELECT count(*) FROM object WHERE NOT private AND secret IS NULL AND tag IS NULL", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(untagged, 0);
        let id = row_with(&db, b"old data value");
        let attrs: Vec<u8> = db.query_row("SELECT attrs FROM object WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        let at = attrs.windows(14).position(|w| w == b"old data value").unwrap();
        let mut changed = attrs.clone();
        changed[at] = b'O';
        db.execute("UPDATE object SET attrs = ?2 WHERE id = ?1", rusqlite::params![id, changed]).unwrap();
        let id = row_with(&db, b"old-public");
        db.execute("UPDATE object SET format = 0 WHERE id = ?1", [id]).unwrap();
    }
    let l = load_env(Env::at(tokens.path(), ""));
    let s = user_session(&l.p, l.slot_of("old-store"));
    assert!(find(&s, "old-data").is_empty(), "a changed row after the re-sealing");
    assert!(find(&s, "old-public").is_empty(), "a row put back to the old format");
    assert_eq!(find(&s, "old-private").len(), 1, "the untouched row");
}

/// Public objects made in a public session carry no tag (there is no token key to make one);
/// the next login tags them. A trusted certificate (only the SO can make one, so it is always
/// tagged) whose tag is removed is refused, even before any login.
#[test]
fn untagged_public_objects_are_tagged_at_login_and_trust_needs_a_tag() {
    let tokens = tempfile::tempdir().expect("tempdir");
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let slot = l.new_token("tags");
        let so = l.p.open_rw_session(slot).expect("C_OpenSession");
        so.login(UserType::So, Some(&AuthPin::new(SO_PIN.into()))).expect("SO login");
        so.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Subject(b"subject".to_vec()),
            Attribute::Value(b"certificate".to_vec()),
            Attribute::Label(b"trusted-cert".to_vec()),
            Attribute::Trusted(true),
        ])
        .expect("C_CreateObject of a trusted certificate");
        so.logout().expect("C_Logout");
        drop(so);
        let s = l.p.open_rw_session(slot).expect("C_OpenSession");
        // Without the token key a trusted certificate cannot be written (its tag needs the key).
        let cert = find(&s, "trusted-cert")[0];
        let r = s.update_attributes(cert, &[Attribute::Label(b"trusted-cert-2".to_vec())]);
        assert_eq!(outcome(r), Some(RvError::UserNotLoggedIn), "C_SetAttributeValue of a trusted certificate");
        // A user's copy of a trusted object is not trusted (tests/attacks.rs), so it needs no tag.
        let copy = s.copy_object(cert, &[Attribute::Label(b"copy".to_vec())]).expect("C_CopyObject");
        assert_eq!(s.get_attributes(copy, &[AttributeType::Trusted]).unwrap(), [Attribute::Trusted(false)]);
        public_data(&s, b"made-in-public", b"public value").expect("C_CreateObject in a public session");
    }
    let dir = token_dir(tokens.path());
    let tagged = |needle: &[u8]| -> bool {
        let db = store(&dir);
        let id = row_with(&db, needle);
        db.query_row("SELECT tag IS NOT NULL FROM object WHERE id = ?1", [id], |r| r.get(0)).unwrap()
    };
    assert!(tagged(b"trusted-cert"));
    assert!(!tagged(b"made-in-public"));
    {
        let l = load_env(Env::at(tokens.path(), ""));
        let s = user_session(&l.p, l.slot_of("tags"));
        assert_eq!(find(&s, "made-in-public").len(), 1);
    }
    assert!(tagged(b"made-in-public"), "tagged at the login");
    {
        let db = store(&dir);
        let id = row_with(&db, b"trusted-cert");
        db.execute("UPDATE object SET tag = NULL WHERE id = ?1", [id]).unwrap();
    }
    let l = load_env(Env::at(tokens.path(), ""));
    let s = l.p.open_ro_session(l.slot_of("tags")).expect("C_OpenSession");
    assert!(find(&s, "trusted-cert").is_empty(), "a trusted certificate without its tag");
    assert_eq!(find(&s, "made-in-public").len(), 1);
}

/// A store failure keeps its cause: `C_Login` on a token whose `pin-state` file became a
/// directory behind the module's back returns `CKR_DEVICE_ERROR`, and the diagnostic log names
/// the call, the return value and what the system said.
#[test]
fn a_store_failure_reaches_the_log_with_its_cause() {
    let tokens = tempfile::tempdir().expect("tempdir");
    new_token_in(tokens.path(), "", "broken");
    let env = Env::at(tokens.path(), "");
    let (mut child, mut out) = gated_wrong_login(&env, "broken");
    // The session is open; now the PIN failure counter cannot be written.
    let state = token_dir(tokens.path()).join("pin-state");
    std::fs::remove_file(&state).expect("remove pin-state");
    std::fs::create_dir(&state).expect("a directory in its place");
    go(&mut child);
    let line = next_line(&mut out);
    let output = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tessera-testproc login: {:?}; log: {log}", output.status);
    assert_eq!(line.trim(), "DeviceError", "C_Login with a wrong PIN that cannot be counted; log: {log}");
    let cause = log.lines().find(|l| l.contains("C_Login") && l.contains("0x00000030"));
    let cause = cause.unwrap_or_else(|| panic!("no log line for C_Login's CKR_DEVICE_ERROR in: {log}"));
    assert!(cause.contains("token directory:"), "the line says where: {cause}");
    assert!(cause.contains("Is a directory"), "and what the system said: {cause}");
}

/// Destroying a key leaves no copy of its sealed material in the token's files: neither the row
/// in the database nor an older page image in its write-ahead log (an attacker who later learns
/// the token key, or the user PIN, must not recover a destroyed key from them).
#[test]
fn a_destroyed_key_leaves_no_sealed_copy_in_the_store() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let l = load_env(Env::at(tokens.path(), ""));
    let slot = l.new_token("destroy");
    let s = user_session(&l.p, slot);
    let k = aes_key(&s, "doomed", true, true);
    let dir = token_dir(tokens.path());
    let sealed: Vec<Vec<u8>> = {
        let db = store(&dir);
        let mut st = db.prepare("SELECT attrs, secret FROM object").unwrap();
        let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap();
        rows.into_iter().flat_map(|(a, s)| [Some(a), s]).flatten().filter(|v| v.len() >= 32).collect()
    };
    assert!(!sealed.is_empty(), "the key's sealed parts are in the store");
    s.destroy_object(k).expect("C_DestroyObject");
    for f in files_in(&dir) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for part in &sealed {
            // A 32-byte window of each sealed part is enough to recognise it.
            let probe = &part[part.len() - 32..];
            assert!(
                !bytes.windows(probe.len()).any(|w| w == probe),
                "{} still holds sealed material of the destroyed key",
                f.display()
            );
        }
    }
}

/// Whether any of `parts` (by a 32-byte window of each) is still in one of `dir`'s files.
fn left_in_files(dir: &Path, parts: &[Vec<u8>]) -> Option<String> {
    for f in files_in(dir) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for part in parts.iter().filter(|p| p.len() >= 32) {
            let probe = &part[part.len() - 32..];
            if bytes.windows(probe.len()).any(|w| w == probe) {
                return Some(f.display().to_string());
            }
        }
    }
    None
}

/// A PIN change leaves no copy of the token key's wrap under the old PIN in the token's files
/// (who later learns the old PIN must not unwrap the token key from an old page), and
/// re-initialising the token leaves none of its old objects nor the old token key's wraps.
#[test]
fn a_pin_change_and_a_reinitialisation_leave_no_old_wraps_in_the_store() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let l = load_env(Env::at(tokens.path(), ""));
    let slot = l.new_token("rekey");
    let s = user_session(&l.p, slot);
    aes_key(&s, "kept", true, true);
    let dir = token_dir(tokens.path());
    let column = |sql: &str| -> Vec<Vec<u8>> {
        let db = store(&dir);
        let mut st = db.prepare(sql).unwrap();
        let rows: Vec<Option<Vec<u8>>> = st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        rows.into_iter().flatten().collect()
    };
    let old_user_wrap = column("SELECT user_wrapped FROM token");
    assert!(!old_user_wrap.is_empty());
    let new_pin = format!("{USER_PIN}-new");
    s.set_pin(&AuthPin::new(USER_PIN.into()), &AuthPin::new(new_pin.clone().into())).expect("C_SetPIN");
    assert_eq!(left_in_files(&dir, &old_user_wrap), None, "the old user PIN's wrap of the token key");
    let old = [
        column("SELECT attrs FROM object"),
        column("SELECT secret FROM object"),
        column("SELECT so_wrapped FROM token"),
        column("SELECT user_wrapped FROM token"),
    ]
    .concat();
    assert!(old.len() >= 4);
    s.logout().ok();
    drop(s);
    l.p.init_token(slot, &AuthPin::new(SO_PIN.into()), "rekey").expect("C_InitToken again");
    assert_eq!(left_in_files(&dir, &old), None, "old objects or wraps after re-initialisation");
}

/// Where the 16 bytes `masked` ^ `xor` occur in this process's writable memory (its heap, anonymous
/// mappings and thread stacks), read through /proc/self/mem. The probe is kept masked so that the
/// search itself holds no copy of it.
fn copies_in_memory(masked: &[u8; 16], xor: u8) -> Vec<String> {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let mem = std::fs::File::open("/proc/self/mem").expect("/proc/self/mem");
    let mut found = Vec::new();
    let mut buf = Vec::new();
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(range), Some(perms)) = (f.first(), f.get(1)) else { continue };
        let path = f.get(5).copied().unwrap_or("");
        if !perms.starts_with("rw") || path.starts_with("[v") || (!path.is_empty() && !path.starts_with('[')) {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else { continue };
        let (a, b) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap());
        buf.resize((b - a) as usize, 0);
        // A mapping another thread unmaps meanwhile is skipped.
        let Ok(n) = mem.read_at(&mut buf, a) else { continue };
        let hits = buf[..n].windows(16).filter(|w| w.iter().zip(masked).all(|(x, m)| *x == m ^ xor)).count();
        if hits > 0 {
            let at = buf[..n].windows(16).position(|w| w.iter().zip(masked).all(|(x, m)| *x == m ^ xor));
            let local = 0u8;
            found.push(format!(
                "{hits} in {line}, first at {:#x} (this frame: {:p})",
                a + at.unwrap_or(0) as u64,
                &local
            ));
        }
        buf.iter_mut().for_each(|x| unsafe { std::ptr::write_volatile(x, 0) });
    }
    found
}

/// Key material the module was given leaves no copy in its memory once the key is destroyed: the
/// template's copy, the object's, the copy split off to be sealed, its encoding and the buffer it
/// is sealed in are all wiped (a later heap disclosure, a core dump or swap shows none of them).
/// Each of those copies left unwiped makes this fail (the tail of a freed copy survives the
/// allocator's reuse of its head).
#[test]
fn a_destroyed_key_leaves_no_copy_in_memory() {
    use cryptoki_sys::*;
    let t = Token::new("wiped");
    // A value of this run's own (not a constant another test could also hold), kept masked.
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut x = seed | 1;
    let masked: Vec<u8> = (0..32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let tail: [u8; 16] = masked[16..].try_into().unwrap();
    // Creates a secret key of this value through the raw ABI, from a buffer wiped right after.
    let create = |kt: CK_KEY_TYPE, token: CK_BBOOL, usage: CK_ATTRIBUTE_TYPE| {
        let mut value: Vec<u8> = masked.iter().map(|m| m ^ 0xa5).collect();
        let class = CKO_SECRET_KEY;
        let mut tpl = [
            attr(CKA_CLASS, &class),
            attr(CKA_KEY_TYPE, &kt),
            attr(CKA_TOKEN, &token),
            attr(CKA_SENSITIVE, &TRUE),
            attr(usage, &TRUE),
            bytes(CKA_VALUE, &value),
        ];
        let mut h = 0;
        let rv = unsafe { t.f.C_CreateObject(t.h, tpl.as_mut_ptr(), tpl.len() as _, &mut h) };
        value.iter_mut().for_each(|b| unsafe { std::ptr::write_volatile(b, 0) });
        assert_eq!(rv, CKR_OK);
        h
    };
    for token in [CK_FALSE, CK_TRUE] {
        let h = create(CKK_AES, token, CKA_ENCRYPT);
        assert_eq!(unsafe { t.f.C_DestroyObject(t.h, h) }, CKR_OK);
        let found = copies_in_memory(&tail, 0xa5);
        assert!(found.is_empty(), "copies of a destroyed key (token = {token}) in memory:\n{}", found.join("\n"));
    }
    // An HMAC-SHA3-256 key, used once: its keyed state (the key XORed with the inner and outer
    // pads, in the block buffer of the RustCrypto state) goes too.
    let h = create(CKK_GENERIC_SECRET, CK_FALSE, CKA_SIGN);
    assert!(t.sign(&Mech::new(CKM_SHA3_256_HMAC), h, b"data").is_ok());
    assert_eq!(unsafe { t.f.C_DestroyObject(t.h, h) }, CKR_OK);
    for xor in [0xa5 ^ 0x36, 0xa5 ^ 0x5c, 0xa5] {
        let found = copies_in_memory(&tail, xor);
        assert!(found.is_empty(), "copies of a destroyed HMAC key (xor {xor:#x}) in memory:\n{}", found.join("\n"));
    }
}
