//! `tessera-util --backup` and `--restore` through the real library: a backup taken while another
//! process writes is one consistent state; a restored token's keys are the same keys, with their
//! attributes, non-extractable ones included; a restore over a token keeps that token as a backup
//! first; GCM counter IVs never go back to a value used before; a wrong SO PIN, a truncated or a
//! damaged file, and a plain copy of the database are refused with nothing lost. In the mode the
//! suite runs under (`TESSERA_MODE`).

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use cryptoki_sys::*;
use std::ffi::c_void;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::ptr::null_mut;
use tessera_tests::*;

fn util(env: &Env, args: &[&str]) -> Output {
    env.command(util_path()).args(args).output().expect("run tessera-util")
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn backup(env: &Env, label: &str, out: &Path) -> String {
    ok(util(env, &["--backup", "--token", label, "--so-pin", SO_PIN, "--out", out.to_str().unwrap()]))
}

/// A backup file's parts, as docs/backup.md describes the format: the MAC key's iteration count
/// and salt, the database image, and the MAC.
const HEADER: usize = 16 + 4 + 32 + 8;

fn parts(b: &[u8]) -> (u32, Vec<u8>, Vec<u8>, Vec<u8>) {
    assert_eq!(&b[..16], b"TESSERA-BACKUP\0\x02");
    let it = u32::from_le_bytes(b[16..20].try_into().unwrap());
    let len = u64::from_le_bytes(b[52..60].try_into().unwrap()) as usize;
    (it, b[20..52].to_vec(), b[HEADER..HEADER + len].to_vec(), b[HEADER + len..HEADER + len + 32].to_vec())
}

/// A backup file of `image`: authenticated under `pin` (the MAC key derived as docs/backup.md
/// says), or carrying `mac` as it is where no PIN is known; the unkeyed parts (the length and the
/// SHA-256) made right, as anyone can.
fn forge(it: u32, salt: &[u8], image: &[u8], pin: Option<&str>, mac: &[u8]) -> Vec<u8> {
    use aws_lc_rs::{hmac, pbkdf2};
    use sha2::{Digest, Sha256};
    let mut b = b"TESSERA-BACKUP\0\x02".to_vec();
    b.extend_from_slice(&it.to_le_bytes());
    b.extend_from_slice(salt);
    b.extend_from_slice(&(image.len() as u64).to_le_bytes());
    b.extend_from_slice(image);
    match pin {
        Some(pin) => {
            let mut s = b"Tessera backup MAC key\0".to_vec();
            s.extend_from_slice(salt);
            let mut k = [0u8; 32];
            let n = std::num::NonZeroU32::new(it).unwrap();
            pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, n, &s, pin.as_bytes(), &mut k);
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &k), &b);
            b.extend_from_slice(tag.as_ref());
        }
        None => b.extend_from_slice(mac),
    }
    let d = Sha256::digest(&b);
    b.extend_from_slice(&d);
    b
}

/// `image` with `sql` run on it (in a scratch database file).
fn edit(image: &[u8], sql: &str) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.db");
    std::fs::write(&p, image).unwrap();
    rusqlite::Connection::open(&p).unwrap().execute_batch(sql).unwrap();
    std::fs::read(&p).unwrap()
}

fn restore(env: &Env, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--restore", file.to_str().unwrap(), "--so-pin", SO_PIN];
    args.extend_from_slice(extra);
    util(env, &args)
}

fn testproc(env: &Env, args: &[&str]) -> Command {
    let mut c = env.command(testproc_path!());
    c.arg("--module").arg(module_path()).args(args);
    c
}

/// The entries of a token directory (names), hidden ones included.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The token directory's files and their contents, for "nothing changed".
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().ends_with("-shm") {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn find(s: &Session, label: &str, class: ObjectClass) -> ObjectHandle {
    let v = s.find_objects(&[Attribute::Label(label.into()), Attribute::Class(class)]).unwrap();
    assert_eq!(v.len(), 1, "one {class:?} labelled {label}");
    v[0]
}

/// Attributes compared before the backup and after the restore.
const COMPARED: [AttributeType; 12] = [
    AttributeType::Class,
    AttributeType::KeyType,
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::NeverExtractable,
    AttributeType::AlwaysSensitive,
    AttributeType::Local,
    AttributeType::UniqueId,
];

fn attrs(s: &Session, o: ObjectHandle) -> Vec<String> {
    s.get_attributes(o, &COMPARED).unwrap().iter().map(|a| format!("{a:?}")).collect()
}

fn oaep() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ))
}

/// What was made before the backup, to be found again after the restore.
struct Before {
    attrs: Vec<(String, ObjectClass, Vec<String>)>,
    ec_point: Vec<u8>,
    rsa_ct: Vec<u8>,
    gcm: Vec<([u8; 12], Vec<u8>, [u8; 16])>,
}

const SECRET: &[u8] = b"the plaintext of before";

/// Makes the keys: an AES-256 key, a P-256 pair and an RSA-2048 pair, every private or secret
/// part sensitive and not extractable; uses them.
fn make_keys(t: &Token) -> Before {
    let s = t.s();
    let no = [Attribute::Token(true), Attribute::Sensitive(true), Attribute::Extractable(false)];
    let mut aes = vec![Attribute::Label("aes".into()), Attribute::Id(vec![1]), Attribute::ValueLen(32.into())];
    aes.extend(no.clone());
    aes.extend([Attribute::Encrypt(true), Attribute::Decrypt(true)]);
    s.generate_key(&Mechanism::AesKeyGen, &aes).unwrap();
    let pub_common =
        |label: &str, id: u8| vec![Attribute::Token(true), Attribute::Label(label.into()), Attribute::Id(vec![id])];
    let mut ec_pub = pub_common("ec", 2);
    ec_pub.extend([Attribute::EcParams(P256.to_vec()), Attribute::Verify(true)]);
    let mut ec_priv = pub_common("ec", 2);
    ec_priv.extend(no.clone());
    ec_priv.push(Attribute::Sign(true));
    let (ec_public, _) = s.generate_key_pair(&Mechanism::EccKeyPairGen, &ec_pub, &ec_priv).unwrap();
    let mut rsa_pub = pub_common("rsa", 3);
    rsa_pub.extend([Attribute::ModulusBits(2048.into()), Attribute::Encrypt(true)]);
    let mut rsa_priv = pub_common("rsa", 3);
    rsa_priv.extend(no);
    rsa_priv.push(Attribute::Decrypt(true));
    let (rsa_public, _) = s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &rsa_pub, &rsa_priv).unwrap();
    let ec_point = match &s.get_attributes(ec_public, &[AttributeType::EcPoint]).unwrap()[0] {
        Attribute::EcPoint(p) => p.clone(),
        a => panic!("{a:?}"),
    };
    let rsa_ct = s.encrypt(&oaep(), rsa_public, SECRET).unwrap();
    let key = find(s, "aes", ObjectClass::SECRET_KEY).handle();
    let gcm = (0..3).map(|_| encrypt_message(t, t.h, key, SECRET)).collect();
    let mut listed = Vec::new();
    for (label, class) in [
        ("aes", ObjectClass::SECRET_KEY),
        ("ec", ObjectClass::PUBLIC_KEY),
        ("ec", ObjectClass::PRIVATE_KEY),
        ("rsa", ObjectClass::PUBLIC_KEY),
        ("rsa", ObjectClass::PRIVATE_KEY),
    ] {
        listed.push((label.to_string(), class, attrs(s, find(s, label, class))));
    }
    Before { attrs: listed, ec_point, rsa_ct, gcm }
}

/// Every key of [`make_keys`] is there with its attributes, and works: the AES key decrypts what
/// it encrypted before, the RSA key decrypts, the EC private key signs what its public key (of
/// the same point as before) verifies; the secret parts are still not readable.
fn check_keys(t: &Token, s: &Session, before: &Before) {
    for (label, class, want) in &before.attrs {
        let got = attrs(s, find(s, label, *class));
        assert_eq!(&got, want, "{label} {class:?}: the attributes as they were");
    }
    let aes = find(s, "aes", ObjectClass::SECRET_KEY);
    for (iv, ct, tag) in &before.gcm {
        assert_eq!(decrypt_message(t, s.handle(), aes.handle(), *iv, ct, *tag), SECRET, "AES-GCM decrypts");
    }
    let rsa = find(s, "rsa", ObjectClass::PRIVATE_KEY);
    assert_eq!(s.decrypt(&oaep(), rsa, &before.rsa_ct).unwrap(), SECRET, "RSA-OAEP decrypts");
    let ec = find(s, "ec", ObjectClass::PRIVATE_KEY);
    let ec_pub = find(s, "ec", ObjectClass::PUBLIC_KEY);
    match &s.get_attributes(ec_pub, &[AttributeType::EcPoint]).unwrap()[0] {
        Attribute::EcPoint(p) => assert_eq!(p, &before.ec_point),
        a => panic!("{a:?}"),
    }
    let sig = s.sign(&Mechanism::EcdsaSha256, ec, b"signed after the restore").unwrap();
    s.verify(&Mechanism::EcdsaSha256, ec_pub, b"signed after the restore", &sig).unwrap();
    for k in [aes, rsa, ec] {
        let r = s.get_attributes(k, &[AttributeType::Value, AttributeType::PrivateExponent]);
        let readable = r.map(|v| v.iter().any(|a| matches!(a, Attribute::Value(_) | Attribute::PrivateExponent(_))));
        assert!(!readable.unwrap_or(false), "a sensitive key's value stays unreadable");
    }
    let _ = KeyType::AES;
}

// --- the message API (C_EncryptMessage with a token-generated counter IV) ---------------------

fn gcm_params(
    iv: &mut [u8; 12],
    tag: &mut [u8; 16],
    fixed_bits: CK_ULONG,
    generator: CK_ULONG,
) -> CK_GCM_MESSAGE_PARAMS {
    CK_GCM_MESSAGE_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: 12,
        ulIvFixedBits: fixed_bits,
        ivGenerator: generator,
        pTag: tag.as_mut_ptr(),
        ulTagBits: 128,
    }
}

/// One message under a counter IV (fixed field `a1a2a3a4`, 64-bit counter): (iv, ct, tag).
fn encrypt_message(
    t: &Token,
    h: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    msg: &[u8],
) -> ([u8; 12], Vec<u8>, [u8; 16]) {
    let mut m = CK_MECHANISM { mechanism: CKM_AES_GCM, pParameter: null_mut(), ulParameterLen: 0 };
    let mut iv = [0u8; 12];
    iv[..4].copy_from_slice(b"\xa1\xa2\xa3\xa4");
    let mut tag = [0u8; 16];
    let mut p = gcm_params(&mut iv, &mut tag, 32, CKG_GENERATE_COUNTER);
    let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
    let mut aad = *b"header";
    let mut pt = msg.to_vec();
    let mut ct = vec![0u8; msg.len()];
    let mut len = ct.len() as CK_ULONG;
    unsafe {
        assert_eq!(t.f.C_MessageEncryptInit(h, &mut m, key), CKR_OK);
        let rv = t.f.C_EncryptMessage(
            h,
            &mut p as *mut _ as *mut c_void,
            size,
            aad.as_mut_ptr(),
            6,
            pt.as_mut_ptr(),
            pt.len() as _,
            ct.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_OK, "C_EncryptMessage");
        assert_eq!(t.f.C_MessageEncryptFinal(h), CKR_OK);
    }
    (iv, ct, tag)
}

fn decrypt_message(
    t: &Token,
    h: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    iv: [u8; 12],
    ct: &[u8],
    tag: [u8; 16],
) -> Vec<u8> {
    let mut m = CK_MECHANISM { mechanism: CKM_AES_GCM, pParameter: null_mut(), ulParameterLen: 0 };
    let (mut iv, mut tag) = (iv, tag);
    let mut p = gcm_params(&mut iv, &mut tag, 0, CKG_NO_GENERATE);
    let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
    let mut aad = *b"header";
    let mut c = ct.to_vec();
    let mut out = vec![0u8; ct.len()];
    let mut len = out.len() as CK_ULONG;
    unsafe {
        assert_eq!(t.f.C_MessageDecryptInit(h, &mut m, key), CKR_OK);
        let rv = t.f.C_DecryptMessage(
            h,
            &mut p as *mut _ as *mut c_void,
            size,
            aad.as_mut_ptr(),
            6,
            c.as_mut_ptr(),
            c.len() as _,
            out.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_OK, "C_DecryptMessage");
        assert_eq!(t.f.C_MessageDecryptFinal(h), CKR_OK);
    }
    out.truncate(len as usize);
    out
}

fn counter(iv: &[u8; 12]) -> u64 {
    u64::from_be_bytes(iv[4..].try_into().unwrap())
}

/// Moves the module of this process onto `env`'s store (`C_Finalize`, `C_Initialize`) and logs
/// in on its first token; a cryptoki session on it.
fn move_to(t: &mut Token, env: &Env) -> Session {
    env.activate();
    t.restart();
    let slot = cryptoki::slot::Slot::try_from(t.slot).unwrap();
    let s = t.l.p.open_rw_session(slot).unwrap();
    match s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    s
}

// ---------------------------------------------------------------------------------------------

/// A backup taken while another process creates objects holds one committed state: every object
/// committed before the backup began, then a run of the later ones without a gap, each whole. The
/// backup restored as a new token (in another store, as after the loss of a machine) has every
/// key, intact and usable.
#[test]
fn backup_during_a_writer_then_restore_as_a_new_token() {
    let t = Token::new("bk");
    let before = make_keys(&t);
    let env = &t.l.env;
    let file = env.dir.path().join("bk.tessera-backup");

    let mut writer =
        testproc(env, &["create", "bk", "w", "20000"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(writer.stdout.take().unwrap());
    let mut committed = Vec::new();
    let mut line = String::new();
    while committed.len() < 25 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the writer ended early");
        if line.trim().starts_with("w-") {
            committed.push(line.trim().to_string());
        }
    }
    let said = backup(env, "bk", &file);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let w = writer.wait_with_output().unwrap();
    assert!(w.status.success(), "{}", show(&w));
    assert!(said.contains("has been backed up to"), "{said}");

    // Owner-only, no temporary file left beside it.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let beside = entries(env.dir.path());
    assert!(beside.iter().all(|n| !n.contains(".tmp") && !n.ends_with(".db")), "{beside:?}");

    let env2 = Env::new("");
    let said = ok(restore(&env2, &file, &[]));
    assert!(said.contains("has been restored"), "{said}");
    assert!(said.contains("rollback counter has been reset on purpose"), "{said}");

    // The writer's objects in the copy: every one committed before the backup, then a prefix of
    // the later ones, each with its value.
    let o = testproc(&env2, &["count", "bk", "w"]).output().unwrap();
    let n: usize = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or_else(|_| panic!("{}", show(&o)));
    assert!(
        n >= committed.len() && n < 20000,
        "{n} objects in the backup (the writer still running), {} committed before it",
        committed.len()
    );
    println!("{n} of the writer's 20000 objects in the backup, {} committed before it began", committed.len());
    let expected: String = (0..n).map(|i| format!("w-{i}\n")).collect();
    let mut v = testproc(&env2, &["verify", "bk", "w"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut v.stdin.take().unwrap(), expected.as_bytes()).unwrap();
    let vo = v.wait_with_output().unwrap();
    assert!(vo.status.success(), "the backup's objects are w-0..w-{}: {}", n - 1, show(&vo));

    let mut t = t;
    let s = move_to(&mut t, &env2);
    check_keys(&t, &s, &before);
}

/// `--force` over the token itself: the token as it was is kept as a backup file first (with
/// what was written after the backup), the restored one takes its place, its user PIN works
/// (the rollback record starts again from the restored database, on purpose), and its GCM
/// counters continue above every value used, after the backup too. Restored where the token is
/// not (a new store), its counters are moved past the margin.
#[test]
fn restore_over_the_token_keeps_it_and_counters_never_go_back() {
    let mut t = Token::new("gcm");
    let before = make_keys(&t);
    let env = t.l.env.dir.path().to_path_buf();
    let file = env.join("gcm.tessera-backup");
    backup(&t.l.env, "gcm", &file);
    let key = find(t.s(), "aes", ObjectClass::SECRET_KEY).handle();
    let mut used: Vec<[u8; 12]> = before.gcm.iter().map(|(iv, _, _)| *iv).collect();
    // After the backup: more counter IVs, from this process and from a restart (a new block at a
    // random distance), an object, and a failed login (the PIN state moves on).
    used.extend((0..3).map(|_| encrypt_message(&t, t.h, key, b"after").0));
    t.s()
        .create_object(&[Attribute::Class(ObjectClass::DATA), Attribute::Token(true), Attribute::Label("after".into())])
        .unwrap();
    t.restart();
    let s = t.l.p.open_rw_session(t.cslot()).unwrap();
    let key = find(&s, "aes", ObjectClass::SECRET_KEY).handle();
    used.extend((0..3).map(|_| encrypt_message(&t, s.handle(), key, b"after restart").0));
    s.logout().ok();
    let wrong = s.login(UserType::User, Some(&AuthPin::new("999999".into())));
    assert!(wrong.is_err());
    drop(s);
    let top = used.iter().map(counter).max().unwrap();

    // Without --force: refused, nothing changed.
    let tokens = t.l.env.tokendir();
    let listed = entries(&tokens);
    let o = restore(&t.l.env, &file, &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"), "{}", show(&o));
    assert_eq!(entries(&tokens), listed);

    // A session of this process, open on the token while another process restores over it.
    let live = t.l.p.open_rw_session(t.cslot()).unwrap();
    let public = |label: &str| {
        [
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(label.into()),
        ]
    };
    live.create_object(&public("before the restore")).unwrap();
    let said = ok(restore(&t.l.env, &file, &["--force"]));
    // Its files zeroed: its writes fail, none reaches the restored token or is lost silently.
    assert!(live.create_object(&public("to the replaced token")).is_err(), "a write to the replaced token");
    drop(live);
    assert!(said.contains("continue from the token it replaced"), "{said}");
    let kept = said
        .lines()
        .find_map(|l| l.strip_prefix("The token it replaces has been kept as a backup: "))
        .unwrap_or_else(|| panic!("{said}"));
    let kept = PathBuf::from(kept);
    assert!(kept.starts_with(&tokens) && kept.is_file(), "{said}");

    // The restored token: the backup's objects, not the later one; the user PIN not blocked.
    let envc = Env::at(&tokens, "");
    let s = move_to(&mut t, &envc);
    check_keys(&t, &s, &before);
    for label in ["after", "before the restore", "to the replaced token"] {
        assert!(s.find_objects(&[Attribute::Label(label.into())]).unwrap().is_empty(), "{label}");
    }
    let key = find(&s, "aes", ObjectClass::SECRET_KEY).handle();
    let h = s.handle();
    let now: Vec<[u8; 12]> = (0..3).map(|_| encrypt_message(&t, h, key, b"restored").0).collect();
    for iv in &now {
        assert!(counter(iv) > top, "a counter IV after the restore ({}) above every one used ({top})", counter(iv));
        assert!(!used.contains(iv));
    }
    drop(s);

    // The kept backup holds the token as it was replaced: the later object too.
    let env3 = Env::new("");
    ok(restore(&env3, &kept, &[]));
    let s = move_to(&mut t, &env3);
    for label in ["after", "before the restore"] {
        assert_eq!(s.find_objects(&[Attribute::Label(label.into())]).unwrap().len(), 1, "the kept token: {label}");
    }
    let key = find(&s, "aes", ObjectClass::SECRET_KEY).handle();
    let c = counter(&encrypt_message(&t, s.handle(), key, b"kept").0);
    assert!(c > top, "{c} > {top}");
    drop(s);

    // The backup restored where its token is not: the counters move on by the margin (2^40).
    let env4 = Env::new("");
    let said = ok(restore(&env4, &file, &[]));
    assert!(said.contains("1099511627776 values ahead"), "{said}");
    let s = move_to(&mut t, &env4);
    let key = find(&s, "aes", ObjectClass::SECRET_KEY).handle();
    let low = before.gcm.iter().map(|(iv, _, _)| counter(iv)).max().unwrap();
    let c = counter(&encrypt_message(&t, s.handle(), key, b"elsewhere").0);
    assert!(c >= low + (1 << 40), "{c} >= {low} + 2^40");
}

/// A wrong SO PIN, a truncated file, a damaged one and a file that is no backup are refused with
/// a message and a non-zero status; the store is left exactly as it was, the token replaced by
/// `--force` included.
#[test]
fn refused_restores_change_nothing() {
    let t = Token::new("keep");
    t.s()
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label("precious".into()),
        ])
        .unwrap();
    let env = &t.l.env;
    let dir = env.dir.path();
    let file = dir.join("keep.tessera-backup");
    backup(env, "keep", &file);
    t.s()
        .create_object(&[Attribute::Class(ObjectClass::DATA), Attribute::Token(true), Attribute::Label("later".into())])
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let truncated = dir.join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let damaged = dir.join("damaged");
    let mut d = bytes.clone();
    let mid = d.len() / 2;
    d[mid] ^= 0x40;
    std::fs::write(&damaged, &d).unwrap();
    let other = dir.join("other");
    std::fs::write(&other, b"hello, not a backup").unwrap();
    // Whole envelopes around what is no token: bytes that are no database, and an empty one.
    // (Authenticated under the SO PIN: what only the SO can make.)
    let envelope = |image: &[u8]| forge(1000, &[7; 32], image, Some(SO_PIN), &[]);
    // The first format: an unkeyed digest only.
    let v1 = dir.join("v1");
    std::fs::write(&v1, {
        use sha2::{Digest, Sha256};
        let image = parts(&bytes).2;
        let mut b = b"TESSERA-BACKUP\0\x01".to_vec();
        b.extend_from_slice(&(image.len() as u64).to_le_bytes());
        b.extend_from_slice(&image);
        let d = Sha256::digest(&b);
        b.extend_from_slice(&d);
        b
    })
    .unwrap();
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, envelope(&[0x5a; 8192])).unwrap();
    let empty_db = dir.join("empty.db");
    rusqlite::Connection::open(&empty_db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); PRAGMA user_version = 7;")
        .unwrap();
    let no_token = dir.join("no-token");
    std::fs::write(&no_token, envelope(&std::fs::read(&empty_db).unwrap())).unwrap();
    let tokens = env.tokendir();
    let state = snapshot(&tokens);
    let names = entries(&tokens);

    let so = |pin: &str, f: &Path, force: bool| {
        let mut a = vec!["--restore", f.to_str().unwrap(), "--so-pin", pin];
        if force {
            a.push("--force");
        }
        util(env, &a)
    };
    let cases: [(Output, &str); 9] = [
        (so(SO_PIN, &garbage, true), "the backup's database"),
        (so(SO_PIN, &no_token, true), "has no token"),
        (so("87654321", &file, true), "authentication fails"),
        (so(SO_PIN, &v1, true), "first format"),
        (so(SO_PIN, &truncated, true), "is truncated"),
        (so(SO_PIN, &damaged, true), "fails its integrity check"),
        (so(SO_PIN, &other, true), "is not a Tessera backup"),
        (so(SO_PIN, &truncated, false), "is truncated"),
        (so("87654321", &file, false), "authentication fails"),
    ];
    for (o, why) in cases {
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why) && err.contains("Nothing was changed"), "{why}: {}", show(&o));
        assert_eq!(err.matches("ERROR").count(), 1, "the error printed once: {}", show(&o));
        assert_eq!(entries(&tokens), names, "no file left or moved");
    }
    assert!(snapshot(&tokens) == state, "the token's files are as they were");
    let s = t.s();
    for label in ["precious", "later"] {
        assert_eq!(s.find_objects(&[Attribute::Label(label.into())]).unwrap().len(), 1, "{label}");
    }
}

/// A plain `cp` of `tessera.db` while a writer runs: the file alone misses the transactions its
/// write-ahead log holds (the store checkpoints on its own schedule, not at each commit), and
/// `--restore` refuses it, naming the reason and `--backup`.
#[test]
fn a_plain_copy_of_the_database_is_refused_and_incomplete() {
    let t = Token::new("cp");
    let env = &t.l.env;
    let serial = t.l.p.get_token_info(t.cslot()).unwrap().serial_number().to_string();
    let db = env.tokendir().join(&serial).join("tessera.db");
    let mut writer =
        testproc(env, &["create", "cp", "w", "120"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(writer.stdout.take().unwrap());
    let mut committed = 0;
    let mut line = String::new();
    while committed < 40 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the writer ended early");
        committed += line.starts_with("w-") as usize;
    }
    let copy = env.dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(writer.wait().unwrap().success());

    let in_copy: i64 = rusqlite::Connection::open(&copy)
        .and_then(|c| c.query_row("SELECT count(*) FROM object", [], |r| r.get(0)))
        .unwrap_or(0);
    assert!(in_copy < committed as i64, "the copy has {in_copy} objects of {committed} committed before it");

    let o = restore(&Env::new(""), &copy, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a Tessera backup") && err.contains("--backup"), "{}", show(&o));
}

/// With the audit log on, the backup and the restore are recorded, the restore saying that it
/// reset the token's rollback counter on purpose, and a refused restore its reason.
#[test]
fn backup_and_restore_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, seed) = (tmp.path().join("log"), tmp.path().join("seed"));
    tessera_audit::writer::init(&log, &seed).unwrap();
    let env = Env::new(&format!("audit.dir = {}", log.display()));
    ok(util(&env, &["--init-token", "--free", "--label", "audited", "--so-pin", SO_PIN, "--pin", USER_PIN]));
    let file = tmp.path().join("audited.tessera-backup");
    backup(&env, "audited", &file);
    let o = util(&env, &["--restore", file.to_str().unwrap(), "--so-pin", "87654321", "--force"]);
    assert!(!o.status.success(), "{}", show(&o));
    ok(restore(&env, &file, &["--force"]));

    let (files, _) = tessera_audit::verify::log_files(&log, None).unwrap();
    let text: String = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    let records: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let of = |f: &str| records.iter().filter(|r| r["function"] == f).cloned().collect::<Vec<_>>();
    assert_eq!(of("T_BackupToken").len(), 1, "{text}");
    let restores = of("T_RestoreToken");
    assert_eq!(restores.len(), 2, "{text}");
    assert!(restores[0]["detail"].as_str().unwrap_or("").contains("SO PIN"), "{}", restores[0]);
    let done = restores[1]["detail"].as_str().unwrap_or("");
    assert!(done.contains("rollback counter reset on purpose"), "{}", restores[1]);
}

/// Restores over one token in quick succession each keep the token they replaced: a kept backup
/// is never overwritten by the next one.
#[test]
fn each_replaced_token_is_kept() {
    let env = Env::new("");
    ok(util(&env, &["--init-token", "--free", "--label", "twice", "--so-pin", SO_PIN, "--pin", USER_PIN]));
    let file = env.dir.path().join("twice.tessera-backup");
    backup(&env, "twice", &file);
    let kept: Vec<String> = (0..2)
        .map(|_| {
            let said = ok(restore(&env, &file, &["--force"]));
            said.lines()
                .find_map(|l| l.strip_prefix("The token it replaces has been kept as a backup: "))
                .unwrap_or_else(|| panic!("{said}"))
                .to_string()
        })
        .collect();
    assert_ne!(kept[0], kept[1]);
    for k in &kept {
        assert!(Path::new(k).is_file(), "{k}");
    }
    let names = entries(&env.tokendir());
    assert_eq!(names.iter().filter(|n| n.ends_with(".tessera-backup")).count(), 2, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "nothing hidden left: {names:?}");
}

/// A backup changed by someone without the SO PIN is refused, and nothing changes: the SO wrap
/// row replaced by one whose PIN the changer knows (the unkeyed parts made right, the MAC kept or
/// made again under that PIN), and an object row removed. A user PIN holder can rewrite a
/// backup's objects and SO wrap (the user PIN unwraps the token key, which seals them), but not
/// the MAC, whose key derives from the SO PIN.
#[test]
fn a_changed_backup_is_refused_and_changes_nothing() {
    let t = Token::new("victim");
    t.s()
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label("precious".into()),
        ])
        .unwrap();
    let env = &t.l.env;
    let dir = env.dir.path();
    let file = dir.join("victim.tessera-backup");
    backup(env, "victim", &file);
    let (it, salt, image, mac) = parts(&std::fs::read(&file).unwrap());

    // An SO wrap whose PIN the changer knows: another token's, made with that PIN.
    let other = Env::new("");
    ok(util(&other, &["--init-token", "--free", "--label", "mine", "--so-pin", "87654321", "--pin", USER_PIN]));
    let mine = other.dir.path().join("mine.tessera-backup");
    ok(util(&other, &["--backup", "--token", "mine", "--so-pin", "87654321", "--out", mine.to_str().unwrap()]));
    let (_, _, mine_image, _) = parts(&std::fs::read(&mine).unwrap());
    let p = tempfile::tempdir().unwrap();
    let mine_db = p.path().join("mine.db");
    std::fs::write(&mine_db, &mine_image).unwrap();
    let sql = format!(
        "ATTACH '{}' AS m; UPDATE token SET so_salt = (SELECT so_salt FROM m.token), \
         so_iterations = (SELECT so_iterations FROM m.token), so_wrapped = (SELECT so_wrapped FROM m.token);",
        mine_db.display()
    );
    let new_wrap = edit(&image, &sql);
    let one_less = edit(&image, "DELETE FROM object WHERE id = (SELECT max(id) FROM object);");
    let write = |name: &str, b: Vec<u8>| {
        let f = dir.join(name);
        std::fs::write(&f, b).unwrap();
        f
    };
    let wrap_old_mac = write("wrap-old-mac", forge(it, &salt, &new_wrap, None, &mac));
    let wrap_new_mac = write("wrap-new-mac", forge(it, &salt, &new_wrap, Some("87654321"), &[]));
    let object_old_mac = write("object-old-mac", forge(it, &salt, &one_less, None, &mac));
    let object_new_salt = write("object-new-salt", forge(it, &[9; 32], &one_less, None, &mac));
    // (The forging is right: unchanged, it gives back the file itself.)
    assert_eq!(forge(it, &salt, &image, Some(SO_PIN), &[]), std::fs::read(&file).unwrap());

    let tokens = env.tokendir();
    let state = snapshot(&tokens);
    let names = entries(&tokens);
    for f in [&wrap_old_mac, &wrap_new_mac, &object_old_mac, &object_new_salt] {
        for force in [true, false] {
            let o = restore(env, f, if force { &["--force"] } else { &[] });
            assert_eq!(o.status.code(), Some(1), "{}", show(&o));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("authentication fails") && err.contains("Nothing was changed"), "{}", show(&o));
            assert_eq!(entries(&tokens), names, "no file left or moved");
        }
    }
    // Restored with the PIN the changer chose, over the token: that PIN is not the token's.
    let o = util(env, &["--restore", wrap_new_mac.to_str().unwrap(), "--so-pin", "87654321", "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SO PIN"), "{}", show(&o));
    assert_eq!(entries(&tokens), names, "no file left or moved");
    assert!(snapshot(&tokens) == state, "the token's files are as they were");
    assert_eq!(t.s().find_objects(&[Attribute::Label("precious".into())]).unwrap().len(), 1);
    // The file as it was made is restored.
    ok(restore(env, &file, &["--force"]));
}

/// `--backup` takes the SO PIN and checks it as `C_Login(CKU_SO)` does: a wrong one is refused
/// and counted; and a restore over a token whose SO PIN is no longer the backup's is refused (the
/// token's kept backup is made under its own SO PIN).
#[test]
fn backup_asks_the_so_pin() {
    let t = Token::new("asks");
    let env = &t.l.env;
    let file = env.dir.path().join("asks.tessera-backup");
    let o = util(env, &["--backup", "--token", "asks", "--so-pin", "87654321", "--out", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the SO PIN is wrong"), "{}", show(&o));
    assert!(!file.exists());
    // The failure counted: a right PIN now, then a restore over the token after the SO changed
    // its PIN.
    backup(env, "asks", &file);
    t.s().logout().unwrap();
    let s = t.l.p.open_rw_session(t.cslot()).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into()))).unwrap();
    s.set_pin(&AuthPin::new(SO_PIN.into()), &AuthPin::new("11223344".into())).unwrap();
    s.logout().unwrap();
    drop(s);
    let tokens = env.tokendir();
    let names = entries(&tokens);
    let o = restore(env, &file, &["--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not the SO PIN of the token it replaces"), "{}", show(&o));
    assert_eq!(entries(&tokens), names);
}

/// The image is made in a scratch file created new in the token's own directory, never through
/// a link: links planted at the names the scratch file had in the output directory (by the
/// process ID) and has in the token directory leave their target untouched, and the backup
/// fails, saying why, rather than write through one.
#[test]
fn a_planted_link_at_the_scratch_name_is_not_followed() {
    let t = Token::new("links");
    let env = &t.l.env;
    let serial = t.l.p.get_token_info(t.cslot()).unwrap().serial_number().to_string();
    let tokdir = env.tokendir().join(&serial);
    let outdir = env.dir.path().join("shared");
    std::fs::create_dir(&outdir).unwrap();
    let victim = env.dir.path().join("victim-file");
    std::fs::write(&victim, b"the victim's data").unwrap();
    let out = outdir.join("b.tessera-backup");
    let mut c = env.command(util_path());
    c.args(["--backup", "--token", "links", "--so-pin", SO_PIN, "--out", out.to_str().unwrap()]);
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    // Planted before the tool gets past loading the library and checking the PIN.
    for l in [outdir.join(format!(".b.tessera-backup.{pid}.db")), tokdir.join(format!(".backup.{pid}.0.db"))] {
        std::os::unix::fs::symlink(&victim, &l).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"the victim's data", "{}", show(&o));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot create the scratch file"), "{}", show(&o));
    assert!(!out.exists());
    // Without the link the backup is made, and no scratch file stays.
    std::fs::remove_file(tokdir.join(format!(".backup.{pid}.0.db"))).unwrap();
    backup(env, "links", &out);
    assert!(entries(&tokdir).iter().all(|n| !n.starts_with(".backup.")), "{:?}", entries(&tokdir));
}
