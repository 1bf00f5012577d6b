//! `tessera-migrate`: SoftHSMv2 tokens into Tessera, checked through Tessera's ABI (the `cryptoki`
//! crate on the built library) against what SoftHSMv2 itself says and computed.
//!
//! * The fixtures of `../shared/fixtures/softhsm2/` (SoftHSMv2 2.6.1, file and db backends): every
//!   object with the same attribute values as SoftHSMv2's own library shows them (file backend;
//!   Debian's library has no db backend, so the db token is checked against its object list and
//!   cross-check files), SoftHSMv2's signatures verify with the migrated public keys, its
//!   ciphertexts decrypt with the migrated AES keys, new signatures by the migrated private keys
//!   verify under the public keys SoftHSMv2 exported; both PINs log in; the source is unchanged
//!   (hashed before and after); a wrong PIN creates nothing; a re-run finds the work done; a token
//!   of the same serial is replaced only with `--force`, and kept as a backup.
//! * A token made now by Debian's SoftHSMv2 (`softhsm2-util`, `pkcs11-tool`, its library): RSA
//!   2048/3072/4096, EC P-256/P-384/P-521, Ed25519, AES, generic secret (and 3DES outside the
//!   approved mode), extractable and not, sensitive and not, private and public; the inventories of
//!   both modules match (`tessera-migrate inventory` and `diff`), and each migrated key works
//!   against SoftHSMv2's own copy.
//! * A large migration killed (SIGKILL) at ≥ 50 random points: each time the store holds no token
//!   or the complete one, and a run afterwards completes.
//!
//! In the approved mode the migration runs with `--drop-wrap-usages` (keys SoftHSMv2 made both
//! wrap and process data, which Tessera's approved mode uses for neither); in the other, the
//! store allows `keys.legacy_wrapping` and every attribute stays as it was.
//!
//! Skips with a message when `../shared` or SoftHSMv2 is absent.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use cryptoki_sys::*;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tessera_tests::*;

const SO: &str = "87654321";
const USER: &str = "123456";
const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn migrate_bin() -> PathBuf {
    std::env::var_os("TESSERA_MIGRATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| module_path().with_file_name("tessera-migrate"))
}

fn softhsm_or_skip(what: &str) -> bool {
    let ok = Path::new(SOFTHSM).exists();
    if !ok {
        println!("SKIP {what}: {SOFTHSM} is not installed (apt-get install softhsm2)");
    }
    ok
}

fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// SHA-256 of every file under `dir` (relative name and contents), sorted.
fn hash_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.push((rel, sha2::Sha256::digest(std::fs::read(&p).unwrap()).to_vec()));
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// A copy of a fixture backend: (its directory, the token directory, a softhsm2.conf naming it,
/// the cross-check files).
struct Fixture {
    dir: tempfile::TempDir,
    tokens: PathBuf,
    conf: PathBuf,
    checks: PathBuf,
}

fn fixture(backend: &str) -> Option<Fixture> {
    let Some(shared) = shared_dir() else {
        println!("SKIP the {backend} fixture: ../shared is absent");
        return None;
    };
    let src = shared.join("fixtures/softhsm2").join(backend);
    if !src.is_dir() {
        println!("SKIP the {backend} fixture: {} is absent", src.display());
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&src, dir.path());
    let tokens = dir.path().join("tokens");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = {backend}\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    let checks = dir.path().join("checks");
    Some(Fixture { dir, tokens, conf, checks })
}

/// A Tessera store for migrated tokens, in the suite's mode; outside the approved mode it allows
/// the legacy key-management rules, under which SoftHSMv2's keys keep all their usages.
fn tessera_store() -> Env {
    Env::new(if approved_mode() { "" } else { "keys.legacy_wrapping = allow" })
}

fn run(env: &Env, args: &[&str], pin: Option<&str>, so_pin: Option<&str>) -> Output {
    let mut c = env.command(migrate_bin());
    c.args(args).env_remove("TESSERA_MIGRATE_PIN").env_remove("TESSERA_MIGRATE_SO_PIN").stdin(Stdio::null());
    if let Some(p) = pin {
        c.env("TESSERA_MIGRATE_PIN", p);
    }
    if let Some(p) = so_pin {
        c.env("TESSERA_MIGRATE_SO_PIN", p);
    }
    c.output().expect("run tessera-migrate")
}

fn from_softhsm2_args(tokens: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["from-softhsm2", "--all", "--json", "--tokendir"].iter().map(|s| s.to_string()).collect();
    a.push(tokens.display().to_string());
    if approved_mode() {
        a.push("--drop-wrap-usages".into());
    }
    a
}

fn migrate(env: &Env, tokens: &Path) -> serde_json::Value {
    let args = from_softhsm2_args(tokens);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(env, &args, Some(USER), Some(SO));
    assert!(o.status.success(), "migration failed: {}", show(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("report: {e}: {}", show(&o)))
}

/// A library (SoftHSMv2's or Tessera's) initialised in this process, finalised when dropped
/// (also when a test fails), so that the next test can initialise it again.
struct Lib(Pkcs11);

impl std::ops::Deref for Lib {
    type Target = Pkcs11;
    fn deref(&self) -> &Pkcs11 {
        &self.0
    }
}

impl Drop for Lib {
    fn drop(&mut self) {
        let _ = self.0.clone().finalize();
    }
}

fn init(path: &Path) -> Lib {
    let p = Pkcs11::new(path).unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).expect("C_Initialize");
    Lib(p)
}

fn session(p: &Pkcs11, label: &str, who: UserType, pin: &str) -> Session {
    let slot = p
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| p.get_token_info(*s).is_ok_and(|t| t.label() == label))
        .unwrap_or_else(|| panic!("no token {label:?}"));
    let s = p.open_rw_session(slot).unwrap();
    s.login(who, Some(&AuthPin::new(pin.into()))).unwrap_or_else(|e| panic!("login {who:?} on {label}: {e}"));
    s
}

fn find(s: &Session, class: ObjectClass, label: &str) -> ObjectHandle {
    let v = s.find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())]).unwrap();
    assert_eq!(v.len(), 1, "{class} {label:?}: {} objects", v.len());
    v[0]
}

/// The attributes compared between SoftHSMv2's view and Tessera's.
const COMPARED: &[AttributeType] = &[
    AttributeType::Class,
    AttributeType::KeyType,
    AttributeType::CertificateType,
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Modifiable,
    AttributeType::Copyable,
    AttributeType::Destroyable,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::AlwaysSensitive,
    AttributeType::NeverExtractable,
    AttributeType::Local,
    AttributeType::KeyGenMechanism,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Sign,
    AttributeType::Verify,
    AttributeType::SignRecover,
    AttributeType::VerifyRecover,
    AttributeType::Wrap,
    AttributeType::Unwrap,
    AttributeType::Derive,
    AttributeType::Trusted,
    AttributeType::WrapWithTrusted,
    AttributeType::AlwaysAuthenticate,
    AttributeType::Modulus,
    AttributeType::ModulusBits,
    AttributeType::PublicExponent,
    AttributeType::EcParams,
    AttributeType::EcPoint,
    AttributeType::Value,
    AttributeType::ValueLen,
    AttributeType::CheckValue,
    AttributeType::Application,
    AttributeType::ObjectId,
    AttributeType::Subject,
    AttributeType::Issuer,
    AttributeType::SerialNumber,
    AttributeType::StartDate,
    AttributeType::EndDate,
    AttributeType::AllowedMechanisms,
];

fn one(s: &Session, h: ObjectHandle, t: AttributeType) -> Option<Attribute> {
    s.get_attributes(h, &[t]).ok().and_then(|v| v.into_iter().next())
}

/// Every object of SoftHSMv2's token has its counterpart in Tessera's (same class, label, ID and
/// key type) with the same value of every attribute SoftHSMv2 shows; the two tokens hold as many
/// objects. Keys whose wrapping usages the approved mode's migration dropped show them false.
fn compare_tokens(soft: &Session, tess: &Session) -> usize {
    let theirs = soft.find_objects(&[]).unwrap();
    assert_eq!(theirs.len(), tess.find_objects(&[]).unwrap().len(), "object counts");
    let mut compared = 0;
    for h in theirs {
        let mut key = vec![];
        for t in [AttributeType::Class, AttributeType::Label, AttributeType::Id, AttributeType::KeyType] {
            if let Some(a) = one(soft, h, t) {
                key.push(a);
            }
        }
        let ours = tess.find_objects(&key).unwrap();
        assert_eq!(ours.len(), 1, "{key:?} in Tessera");
        // The flags only a token sets, and CKA_TRUSTED, are carried over for private objects only:
        // SoftHSMv2 keeps the others in clear, where anyone who can write its files could set them.
        let in_clear = one(soft, h, AttributeType::Private) == Some(Attribute::Private(false));
        let public = one(soft, h, AttributeType::Class) == Some(Attribute::Class(ObjectClass::PUBLIC_KEY));
        for t in COMPARED {
            let Some(want) = one(soft, h, *t) else { continue };
            let got = one(tess, ours[0], *t);
            if in_clear && (*t == AttributeType::Trusted || (!public && TOKEN_CLAIMS.contains(t))) {
                assert!(!matches!(got, Some(Attribute::Local(true) | Attribute::Trusted(true))), "{key:?}: {t}");
                continue;
            }
            // `--drop-wrap-usages` (the approved mode's run) clears the wrapping usages of the
            // keys that also process data.
            let cleared = matches!(
                (&want, &got),
                (Attribute::Wrap(true), Some(Attribute::Wrap(false)))
                    | (Attribute::Unwrap(true), Some(Attribute::Unwrap(false)))
            );
            if approved_mode() && cleared {
                continue;
            }
            assert_eq!(got.as_ref(), Some(&want), "{key:?}: {t}");
            compared += 1;
        }
    }
    compared
}

/// The nested template of `label`'s `CKA_WRAP_TEMPLATE`, through the raw C ABI of the library at
/// `path` (the `cryptoki` crate has no nested templates).
fn raw_wrap_template(
    path: &Path,
    env: Env,
    softhsm_conf: Option<&Path>,
    token: &str,
    label: &str,
) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    let guard = lock();
    if let Some(c) = softhsm_conf {
        std::env::set_var("SOFTHSM2_CONF", c);
    }
    let lib = RawLib::locked(guard, path, env);
    lib.init();
    let slot = lib
        .slots()
        .into_iter()
        .find(|s| {
            let l = lib.token_info(*s).label;
            String::from_utf8_lossy(&l).trim_end() == token
        })
        .expect("token");
    let h = lib.open(slot, false);
    lib.login(h, CKU_USER, USER).unwrap();
    let l = label.as_bytes();
    let mut t = [bytes(CKA_LABEL, l)];
    let mut o = 0;
    let mut n = 0;
    unsafe {
        assert_eq!(lib.f.C_FindObjectsInit(h, t.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(lib.f.C_FindObjects(h, &mut o, 1, &mut n), CKR_OK);
        assert_eq!(lib.f.C_FindObjectsFinal(h), CKR_OK);
    }
    assert_eq!(n, 1, "{label}");
    let mut a = CK_ATTRIBUTE { type_: CKA_WRAP_TEMPLATE, pValue: std::ptr::null_mut(), ulValueLen: 0 };
    assert_eq!(unsafe { lib.f.C_GetAttributeValue(h, o, &mut a, 1) }, CKR_OK);
    let count = a.ulValueLen as usize / std::mem::size_of::<CK_ATTRIBUTE>();
    let mut bufs = vec![[0u8; 256]; count];
    let mut inner: Vec<CK_ATTRIBUTE> =
        bufs.iter_mut().map(|b| CK_ATTRIBUTE { type_: 0, pValue: b.as_mut_ptr() as *mut _, ulValueLen: 256 }).collect();
    a.pValue = inner.as_mut_ptr() as *mut _;
    assert_eq!(unsafe { lib.f.C_GetAttributeValue(h, o, &mut a, 1) }, CKR_OK);
    let mut v: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> =
        inner.iter().zip(&bufs).map(|(i, b)| (i.type_, b[..i.ulValueLen as usize].to_vec())).collect();
    v.sort();
    v
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The key bytes of a SubjectPublicKeyInfo (PKCS#1 RSAPublicKey, or an EC point).
fn spki_key(der: &[u8]) -> Vec<u8> {
    use spki::der::Decode;
    let s = spki::SubjectPublicKeyInfoRef::from_der(der).expect("SubjectPublicKeyInfo");
    s.subject_public_key.raw_bytes().to_vec()
}

/// What SoftHSMv2 computed with the fixture's keys, checked with the migrated keys; and new
/// signatures by the migrated private keys, verified under the public keys SoftHSMv2 exported.
fn cross_checks(s: &Session, checks: &Path) {
    let plain = read(&checks.join("plain.bin"));
    let digest = read(&checks.join("plain.sha256"));
    let rsa_pub = find(s, ObjectClass::PUBLIC_KEY, "rsa-2048");
    s.verify(&Mechanism::Sha256RsaPkcs, rsa_pub, &plain, &read(&checks.join("rsa-sha256-id01.sig")))
        .expect("SoftHSMv2's RSA signature verifies with the migrated public key");
    let ec_pub = find(s, ObjectClass::PUBLIC_KEY, "ec-p256");
    s.verify(&Mechanism::Ecdsa, ec_pub, &digest, &read(&checks.join("ecdsa-p1363-id02.sig")))
        .expect("SoftHSMv2's ECDSA signature verifies with the migrated public key");
    let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
    for (label, file) in [("aes-public-sensitive", "aes-cbc-id03.bin"), ("aes-private", "aes-cbc-id04.bin")] {
        let k = find(s, ObjectClass::SECRET_KEY, label);
        let p = s.decrypt(&Mechanism::AesCbc(iv), k, &read(&checks.join(file))).expect(label);
        assert_eq!(p, plain, "{label} decrypts SoftHSMv2's ciphertext");
    }
    let hk = find(s, ObjectClass::SECRET_KEY, "hmac-secret");
    let mac = s.sign(&Mechanism::Sha256Hmac, hk, &plain).expect("HMAC with the migrated generic secret");
    assert_eq!(mac, read(&checks.join("hmac-sha256-id08.bin")), "the same HMAC as SoftHSMv2's");
    // New signatures, verified under SoftHSMv2's exported public keys.
    let rsa_priv = find(s, ObjectClass::PRIVATE_KEY, "rsa-2048");
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, rsa_priv, &plain).expect("RSA signature");
    let rsa = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        spki_key(&read(&checks.join("rsa-2048.pub.der"))),
    );
    rsa.verify(&plain, &sig).expect("the migrated RSA key's signature verifies under SoftHSMv2's public key");
    let ec_priv = find(s, ObjectClass::PRIVATE_KEY, "ec-p256");
    let sig = s.sign(&Mechanism::Ecdsa, ec_priv, &digest).expect("ECDSA signature");
    let ec = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        spki_key(&read(&checks.join("ec-p256.pub.der"))),
    );
    ec.verify(&plain, &sig).expect("the migrated EC key's signature verifies under SoftHSMv2's public key");
}

/// The fixture token's objects as its README and `objects.txt` list them: (class, label, ID).
fn expected_fixture_objects() -> Vec<(ObjectClass, &'static str, &'static str)> {
    use ObjectClass as C;
    vec![
        (C::PUBLIC_KEY, "rsa-2048", "01"),
        (C::PRIVATE_KEY, "rsa-2048", "01"),
        (C::PUBLIC_KEY, "ec-p256", "02"),
        (C::PRIVATE_KEY, "ec-p256", "02"),
        (C::CERTIFICATE, "ec-p256-cert", "02"),
        (C::SECRET_KEY, "aes-public-sensitive", "03"),
        (C::SECRET_KEY, "aes-private", "04"),
        (C::SECRET_KEY, "aes-wrap-tmpl", "05"),
        (C::PUBLIC_KEY, "ec-p384", "06"),
        (C::PRIVATE_KEY, "ec-p384", "06"),
        (C::PUBLIC_KEY, "ed25519", "07"),
        (C::PRIVATE_KEY, "ed25519", "07"),
        (C::SECRET_KEY, "hmac-secret", "08"),
        (C::SECRET_KEY, "aes-extractable", "0a"),
        (C::DATA, "data-private", ""),
        (C::DATA, "data-public", ""),
    ]
}

/// What a migration believes of a private object only (see `tessera_pkcs11::migrate::CARRIED`).
const TOKEN_CLAIMS: &[AttributeType] = &[
    AttributeType::Local,
    AttributeType::KeyGenMechanism,
    AttributeType::AlwaysSensitive,
    AttributeType::NeverExtractable,
    AttributeType::Trusted,
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check_fixture_token(s: &Session) {
    let all = s.find_objects(&[]).unwrap();
    assert_eq!(all.len(), expected_fixture_objects().len(), "objects of the fixture token");
    for (class, label, id) in expected_fixture_objects() {
        let h = find(s, class, label);
        let got = one(s, h, AttributeType::Id).map(|a| if let Attribute::Id(v) = a { hex(&v) } else { String::new() });
        assert_eq!(got.unwrap_or_default(), id, "{label}");
        if matches!(class, ObjectClass::PRIVATE_KEY | ObjectClass::SECRET_KEY) {
            // Generated by SoftHSMv2: local, with the flags it recorded, for the objects it kept
            // private; one it kept in clear carries none of these claims.
            let private = one(s, h, AttributeType::Private) == Some(Attribute::Private(true));
            assert_eq!(one(s, h, AttributeType::Local), Some(Attribute::Local(private)), "{label}");
            let extractable = label == "aes-extractable";
            let (never, always) = if private { (!extractable, !extractable) } else { (false, false) };
            assert_eq!(one(s, h, AttributeType::NeverExtractable), Some(Attribute::NeverExtractable(never)), "{label}");
            assert_eq!(one(s, h, AttributeType::AlwaysSensitive), Some(Attribute::AlwaysSensitive(always)), "{label}");
            assert_eq!(one(s, h, AttributeType::Sensitive), Some(Attribute::Sensitive(!extractable)));
            assert_eq!(one(s, h, AttributeType::Extractable), Some(Attribute::Extractable(extractable)));
        }
    }
    let public_aes = find(s, ObjectClass::SECRET_KEY, "aes-public-sensitive");
    assert_eq!(one(s, public_aes, AttributeType::Private), Some(Attribute::Private(false)));
    let app = find(s, ObjectClass::DATA, "data-private");
    assert_eq!(one(s, app, AttributeType::Application), Some(Attribute::Application(b"tessera-app".to_vec())));
    assert_eq!(one(s, app, AttributeType::Private), Some(Attribute::Private(true)));
    let tmpl = find(s, ObjectClass::SECRET_KEY, "aes-wrap-tmpl");
    assert!(
        matches!(one(s, tmpl, AttributeType::AllowedMechanisms), Some(Attribute::AllowedMechanisms(m)) if !m.is_empty()),
        "CKA_ALLOWED_MECHANISMS carried over"
    );
}

/// The 32-byte `CKA_VALUE`s SoftHSMv2 stores in clear (objects with `CKA_PRIVATE` false) in a
/// file-backend token directory: the attribute as the file encodes it (type 0x11, kind 3, length
/// 32, big-endian), then the value.
fn clear_values(tokens: &Path) -> Vec<Vec<u8>> {
    let mut head = Vec::new();
    for v in [CKA_VALUE, 3, 32] {
        head.extend_from_slice(&v.to_be_bytes());
    }
    let mut out = Vec::new();
    for (name, _) in hash_tree(tokens) {
        if !name.ends_with(".object") {
            continue;
        }
        let b = read(&tokens.join(&name));
        if let Some(i) = b.windows(head.len()).position(|w| w == &head[..]) {
            out.push(b[i + head.len()..i + head.len() + 32].to_vec());
        }
    }
    out
}

/// The report of one token in `--json` output, by label.
fn token_report<'a>(r: &'a serde_json::Value, label: &str) -> &'a serde_json::Value {
    r["tokens"].as_array().unwrap().iter().find(|t| t["label"] == label).unwrap_or_else(|| panic!("{label} in {r}"))
}

fn fixture_case(backend: &str) {
    let Some(fx) = fixture(backend) else { return };
    let before = hash_tree(&fx.tokens);
    let store = tessera_store();
    let report = migrate(&store, &fx.tokens);
    assert!(hash_tree(&fx.tokens) == before, "the SoftHSMv2 token directory is unchanged");
    // The keys SoftHSMv2 kept in clear (CKA_PRIVATE false) are sealed in Tessera's store: the
    // value of `aes-public-sensitive`, read from SoftHSMv2's file, is in none of the token's files.
    if backend == "file" {
        let clear = clear_values(&fx.tokens);
        assert!(!clear.is_empty(), "SoftHSMv2 keeps a public key's value in clear");
        let files = hash_tree(&store.tokendir());
        assert!(files.len() > 2);
        for (name, _) in files {
            let b = read(&store.tokendir().join(&name));
            for v in &clear {
                assert!(!b.windows(v.len()).any(|w| w == &v[..]), "a key value in clear in {name}");
            }
        }
    }
    // A second run finds the work done.
    let again = migrate(&store, &fx.tokens);
    assert_eq!(token_report(&again, &format!("fixture-{backend}"))["status"], "already migrated");
    assert!(hash_tree(&fx.tokens) == before, "the SoftHSMv2 token directory is unchanged");
    let main = token_report(&report, &format!("fixture-{backend}"));
    assert_eq!(main["status"], "migrated", "{main}");
    assert!(main["unsupported"].as_array().unwrap().is_empty(), "{main}");
    let serial = main["serial"].as_str().unwrap().to_string();
    assert!(store.tokendir().join(&serial).join("tessera.db").is_file());
    // Nothing left behind by the build.
    let hidden: Vec<_> = std::fs::read_dir(store.tokendir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tessera-migrate-"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // Through Tessera's ABI: same label and serial, both PINs, every object.
    {
        let _g = lock();
        store.activate();
        let p = init(&module_path());
        let label = format!("fixture-{backend}");
        let slot = p
            .get_slots_with_initialized_token()
            .unwrap()
            .into_iter()
            .find(|s| p.get_token_info(*s).is_ok_and(|t| t.label() == label))
            .expect("the migrated token");
        assert_eq!(p.get_token_info(slot).unwrap().serial_number(), serial);
        let so = session(&p, &label, UserType::So, SO);
        so.logout().unwrap();
        drop(so);
        let s = session(&p, &label, UserType::User, USER);
        check_fixture_token(&s);
        cross_checks(&s, &fx.checks);
        let second = session(&p, &format!("second-{backend}"), UserType::User, USER);
        assert_eq!(second.find_objects(&[]).unwrap().len(), 2);
        drop((s, second));
    }
    // The nested template, through the raw ABI of both libraries (SoftHSMv2's only for the file
    // backend: Debian's library has no db backend).
    let ours = raw_wrap_template(
        &module_path(),
        Env::at(&store.tokendir(), ""),
        None,
        &format!("fixture-{backend}"),
        "aes-wrap-tmpl",
    );
    // The template the fixture script gave (SoftHSMv2 stores it in clear, in both backends).
    let ulong = |v: CK_ULONG| v.to_ne_bytes().to_vec();
    let want = vec![
        (CKA_CLASS, ulong(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ulong(CKK_AES)),
        (CKA_ID, vec![7, 8]),
        (CKA_EXTRACTABLE, vec![1]),
    ];
    assert_eq!(ours, want, "CKA_WRAP_TEMPLATE carried over");
    if backend == "file" && Path::new(SOFTHSM).exists() {
        let theirs =
            raw_wrap_template(Path::new(SOFTHSM), Env::new(""), Some(&fx.conf), "fixture-file", "aes-wrap-tmpl");
        // SoftHSMv2 2.6.1 answers with as many entries, but each a copy of the first (its own
        // retrieval of nested templates): only the count is compared.
        assert_eq!(ours.len(), theirs.len(), "CKA_WRAP_TEMPLATE entries");
        // Every attribute, as SoftHSMv2's own library shows it.
        let _g = lock();
        std::env::set_var("SOFTHSM2_CONF", &fx.conf);
        let soft = init(Path::new(SOFTHSM));
        store.activate();
        let tess = init(&module_path());
        let mut n = 0;
        for label in ["fixture-file", "second-file"] {
            let a = session(&soft, label, UserType::User, USER);
            let b = session(&tess, label, UserType::User, USER);
            n += compare_tokens(&a, &b);
        }
        assert!(n > 300, "{n} attribute values compared");
        println!("{n} attribute values compared with SoftHSMv2's");
        // The inventories of both modules agree.
        let inv = |module: &Path, out: &Path| {
            let mut c = store.command(migrate_bin());
            c.env("SOFTHSM2_CONF", &fx.conf).args(["inventory", "--module"]).arg(module);
            c.args(["--token", "fixture-file", "--pin", USER, "--out"]).arg(out);
            let o = c.output().unwrap();
            assert!(o.status.success(), "inventory: {}", show(&o));
        };
        let (b, a) = (fx.dir.path().join("before.csv"), fx.dir.path().join("after.csv"));
        inv(Path::new(SOFTHSM), &b);
        inv(&module_path(), &a);
        let o = store.command(migrate_bin()).arg("diff").arg(&b).arg(&a).output().unwrap();
        check_diff(&o);
    } else if backend == "file" {
        softhsm_or_skip("the comparison with SoftHSMv2's library");
    }
    // Still recognised after SoftHSMv2 used the token (it rewrites its flags when it does).
    let again = migrate(&store, &fx.tokens);
    assert_eq!(token_report(&again, &format!("fixture-{backend}"))["status"], "already migrated");
}

/// A `diff` of SoftHSMv2's inventory and Tessera's: none but what Tessera does not believe of a
/// secret or private key SoftHSMv2 kept in clear (the flags only a token sets: now false), and in
/// the approved mode the wrapping usages `--drop-wrap-usages` cleared.
fn check_diff(o: &Output) {
    let text = String::from_utf8_lossy(&o.stdout);
    // The fixtures' and the test tokens' secret keys SoftHSMv2 kept in clear.
    const IN_CLEAR: [&str; 2] = ["label=\"aes-public-sensitive\"", "label=\"aes-public\""];
    for line in text.lines().filter(|l| !l.starts_with("no difference")) {
        assert!(line.starts_with("changed: "), "{}", show(o));
        let in_clear = IN_CLEAR.iter().any(|l| line.contains(l));
        let cols = line.split(": ").skip(2).collect::<Vec<_>>().join(": ");
        for c in cols.split("; ") {
            let wrap = approved_mode() && (c.starts_with("wrap: 1 -> 0") || c.starts_with("unwrap: 1 -> 0"));
            let claim = in_clear
                && ["always_sensitive: 1 -> 0", "never_extractable: 1 -> 0", "local: 1 -> 0", "key_gen_mechanism: "]
                    .iter()
                    .any(|p| c.starts_with(p));
            assert!(wrap || claim, "{line}");
        }
    }
}

#[test]
fn file_fixture_migrates_whole() {
    fixture_case("file");
}

#[test]
fn db_fixture_migrates_whole() {
    fixture_case("db");
}

#[test]
fn wrong_pin_is_refused_and_creates_nothing() {
    let Some(fx) = fixture("file") else { return };
    let before = hash_tree(&fx.tokens);
    let store = tessera_store();
    let args = from_softhsm2_args(&fx.tokens);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (pin, so) in [(Some("654321"), Some(SO)), (Some(USER), Some("12345678")), (None, Some("00000000"))] {
        let o = run(&store, &args, pin, so);
        assert!(!o.status.success(), "{}", show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("incorrect"), "{}", show(&o));
        let made: Vec<_> = std::fs::read_dir(store.tokendir()).map(|d| d.flatten().count()).into_iter().collect();
        assert!(made.iter().all(|n| *n == 0), "nothing is created: {made:?}");
    }
    // A dry run changes nothing either, and lists what would move.
    let mut dry = args.clone();
    dry.push("--dry-run");
    let o = run(&store, &dry, Some(USER), None);
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("would migrate"));
    assert!(!store.tokendir().exists() || std::fs::read_dir(store.tokendir()).unwrap().count() == 0);
    assert!(hash_tree(&fx.tokens) == before, "the SoftHSMv2 token directory is unchanged");
}

#[test]
fn same_serial_is_replaced_only_with_force_and_kept() {
    let Some(fx) = fixture("file") else { return };
    let store = tessera_store();
    let report = migrate(&store, &fx.tokens);
    let serial = token_report(&report, "fixture-file")["serial"].as_str().unwrap().to_string();
    // Another token of that serial (here: the marker of another source).
    let marker = store.tokendir().join(&serial).join("migrated-from.json");
    let mut m: serde_json::Value = serde_json::from_slice(&read(&marker)).unwrap();
    m["digest"] = "another".into();
    std::fs::write(&marker, serde_json::to_vec(&m).unwrap()).unwrap();
    let mut args = from_softhsm2_args(&fx.tokens);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&store, &a, Some(USER), Some(SO));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--force"), "{}", show(&o));
    args.push("--force".into());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&store, &a, Some(USER), Some(SO));
    assert!(o.status.success(), "{}", show(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let backup = token_report(&r, "fixture-file")["backup"].as_str().expect("a backup").to_string();
    let kept: serde_json::Value =
        serde_json::from_slice(&read(&Path::new(&backup).join("migrated-from.json"))).unwrap();
    assert_eq!(kept["digest"], "another", "the replaced token is the backup");
    assert!(Path::new(&backup).join("tessera.db").is_file());
}

// ---- tokens made now by Debian's SoftHSMv2 ----

fn tool(c: &mut Command) {
    let o = c.output().unwrap_or_else(|e| panic!("{}: {e}", describe(c)));
    assert!(o.status.success(), "{}: {}", describe(c), show(&o));
}

/// A SoftHSMv2 token store with one token `label` (SO PIN [`SO`], user PIN [`USER`]).
fn softhsm_store(label: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let tokens = d.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = d.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )
    .unwrap();
    tool(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &conf).args([
        "--init-token",
        "--free",
        "--label",
        label,
        "--so-pin",
        SO,
        "--pin",
        USER,
    ]));
    (d, tokens, conf)
}

fn ec_params(curve: &str) -> Vec<u8> {
    match curve {
        "p256" => vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        "p384" => vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        "p521" => vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
        _ => [&[0x13, 0x0c][..], b"edwards25519"].concat(),
    }
}

#[test]
fn tokens_made_by_softhsm2_migrate_and_work() {
    if !softhsm_or_skip("tokens made by SoftHSMv2")
        || !have_or_skip("softhsm2-util", "tokens made by SoftHSMv2")
        || !have_or_skip("pkcs11-tool", "tokens made by SoftHSMv2")
    {
        return;
    }
    let (_d, tokens, conf) = softhsm_store("made");
    // Key pairs by pkcs11-tool, as a SoftHSMv2 user makes them.
    for (kt, id, label) in [("rsa:2048", "01", "rsa2048"), ("EC:prime256v1", "03", "p256")] {
        tool(Command::new("pkcs11-tool").env("SOFTHSM2_CONF", &conf).args([
            "--module",
            SOFTHSM,
            "--token-label",
            "made",
            "--login",
            "--pin",
            USER,
            "--keypairgen",
            "--key-type",
            kt,
            "--id",
            id,
            "--label",
            label,
        ]));
    }
    // The rest through SoftHSMv2's library, with every combination of the flags.
    let approved = approved_mode();
    {
        let _g = lock();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let p = init(Path::new(SOFTHSM));
        let s = session(&p, "made", UserType::User, USER);
        let pair = |mech: Mechanism, pubt: Vec<Attribute>, label: &str, id: u8, extractable: bool| {
            let common = vec![Attribute::Token(true), Attribute::Label(label.into()), Attribute::Id(vec![id])];
            let mut pubt = [common.clone(), pubt].concat();
            pubt.push(Attribute::Verify(true));
            let privt = [
                common,
                vec![
                    Attribute::Private(true),
                    Attribute::Sensitive(!extractable),
                    Attribute::Extractable(extractable),
                    Attribute::Sign(true),
                ],
            ]
            .concat();
            s.generate_key_pair(&mech, &pubt, &privt).unwrap_or_else(|e| panic!("{label}: {e}"));
        };
        let rsa = |bits: u64| vec![Attribute::ModulusBits(bits.into()), Attribute::PublicExponent(vec![1, 0, 1])];
        pair(Mechanism::RsaPkcsKeyPairGen, rsa(3072), "rsa3072", 2, false);
        pair(Mechanism::RsaPkcsKeyPairGen, rsa(4096), "rsa4096", 9, true);
        pair(Mechanism::EccKeyPairGen, vec![Attribute::EcParams(ec_params("p384"))], "p384", 4, true);
        pair(Mechanism::EccKeyPairGen, vec![Attribute::EcParams(ec_params("p521"))], "p521", 5, false);
        pair(Mechanism::EccEdwardsKeyPairGen, vec![Attribute::EcParams(ec_params("ed25519"))], "ed25519", 6, false);
        let secret = |mech: Mechanism,
                      extra: Vec<Attribute>,
                      label: &str,
                      id: u8,
                      private: bool,
                      sensitive: bool,
                      extractable: bool| {
            let t = [
                vec![
                    Attribute::Token(true),
                    Attribute::Label(label.into()),
                    Attribute::Id(vec![id]),
                    Attribute::Private(private),
                    Attribute::Sensitive(sensitive),
                    Attribute::Extractable(extractable),
                ],
                extra,
            ]
            .concat();
            s.generate_key(&mech, &t).unwrap_or_else(|e| panic!("{label}: {e}"));
        };
        let aes = |len: u64| vec![Attribute::ValueLen(len.into()), Attribute::Encrypt(true), Attribute::Decrypt(true)];
        secret(Mechanism::AesKeyGen, aes(32), "aes-private", 0x10, true, true, false);
        secret(Mechanism::AesKeyGen, aes(16), "aes-extractable", 0x11, true, false, true);
        secret(Mechanism::AesKeyGen, aes(32), "aes-public", 0x12, false, true, false);
        let mac = vec![Attribute::ValueLen(32.into()), Attribute::Sign(true), Attribute::Verify(true)];
        secret(Mechanism::GenericSecretKeyGen, mac, "generic", 0x13, true, true, false);
        if !approved {
            secret(
                Mechanism::Des3KeyGen,
                vec![Attribute::Encrypt(true), Attribute::Decrypt(true)],
                "des3",
                0x14,
                true,
                true,
                false,
            );
        }
        drop(s);
    }
    let before = hash_tree(&tokens);
    let store = tessera_store();
    let report = migrate(&store, &tokens);
    assert_eq!(token_report(&report, "made")["status"], "migrated", "{report}");
    assert!(hash_tree(&tokens) == before, "the SoftHSMv2 token directory is unchanged");

    let _g = lock();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let soft = init(Path::new(SOFTHSM));
    store.activate();
    let tess = init(&module_path());
    let a = session(&soft, "made", UserType::User, USER);
    let b = session(&tess, "made", UserType::User, USER);
    let n = compare_tokens(&a, &b);
    println!("{n} attribute values compared with SoftHSMv2's");
    // Each migrated private key signs; SoftHSMv2 verifies with its own public key.
    let msg = b"migrated keys sign as before".to_vec();
    let digest = sha2::Sha256::digest(&msg).to_vec();
    for (label, mech, data) in [
        ("rsa2048", Mechanism::Sha256RsaPkcs, &msg),
        ("rsa3072", Mechanism::Sha256RsaPkcs, &msg),
        ("rsa4096", Mechanism::Sha256RsaPkcs, &msg),
        ("p256", Mechanism::Ecdsa, &digest),
        ("p384", Mechanism::Ecdsa, &digest),
        ("p521", Mechanism::Ecdsa, &digest),
        ("ed25519", Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), &msg),
    ] {
        let sig =
            b.sign(&mech, find(&b, ObjectClass::PRIVATE_KEY, label), data).unwrap_or_else(|e| panic!("{label}: {e}"));
        a.verify(&mech, find(&a, ObjectClass::PUBLIC_KEY, label), data, &sig)
            .unwrap_or_else(|e| panic!("{label}: SoftHSMv2 refuses the migrated key's signature: {e}"));
    }
    // Secret keys: SoftHSMv2 encrypts (or MACs), Tessera decrypts (or MACs the same).
    let iv = [7u8; 16];
    let plain = [0x41u8; 32];
    for label in ["aes-private", "aes-extractable", "aes-public"] {
        let ct = a.encrypt(&Mechanism::AesCbc(iv), find(&a, ObjectClass::SECRET_KEY, label), &plain).unwrap();
        let pt = b.decrypt(&Mechanism::AesCbc(iv), find(&b, ObjectClass::SECRET_KEY, label), &ct).unwrap();
        assert_eq!(pt, plain, "{label}");
    }
    let their_mac = a.sign(&Mechanism::Sha256Hmac, find(&a, ObjectClass::SECRET_KEY, "generic"), &plain).unwrap();
    let ours = b.sign(&Mechanism::Sha256Hmac, find(&b, ObjectClass::SECRET_KEY, "generic"), &plain).expect("HMAC");
    assert_eq!(ours, their_mac, "the same HMAC as SoftHSMv2's");
    if !approved {
        let ct = a.encrypt(&Mechanism::Des3Cbc([3; 8]), find(&a, ObjectClass::SECRET_KEY, "des3"), &plain).unwrap();
        let pt = b.decrypt(&Mechanism::Des3Cbc([3; 8]), find(&b, ObjectClass::SECRET_KEY, "des3"), &ct).unwrap();
        assert_eq!(pt, plain, "3DES");
    }
    // Key types as SoftHSMv2 gave them.
    assert_eq!(
        one(&b, find(&b, ObjectClass::PRIVATE_KEY, "ed25519"), AttributeType::KeyType),
        Some(Attribute::KeyType(KeyType::EC_EDWARDS))
    );
    drop((a, b));
    // The inventories of both modules agree.
    let inv = |module: &Path, out: &Path| {
        let mut c = store.command(migrate_bin());
        c.env("SOFTHSM2_CONF", &conf).args(["inventory", "--module"]).arg(module);
        c.args(["--token", "made", "--pin", USER, "--out"]).arg(out);
        let o = c.output().unwrap();
        assert!(o.status.success(), "inventory: {}", show(&o));
    };
    let (before_csv, after_csv) = (_d.path().join("before.csv"), _d.path().join("after.csv"));
    inv(Path::new(SOFTHSM), &before_csv);
    inv(&module_path(), &after_csv);
    let rows = std::fs::read_to_string(&before_csv).unwrap().lines().count() - 1;
    assert_eq!(rows, if approved { 18 } else { 19 }, "objects in the inventory");
    let o = store.command(migrate_bin()).arg("diff").arg(&before_csv).arg(&after_csv).output().unwrap();
    check_diff(&o);
    // And a diff finds a difference: an object missing.
    let text = std::fs::read_to_string(&after_csv).unwrap();
    let fewer: Vec<&str> = text.lines().filter(|l| !l.contains(",p521,")).collect();
    std::fs::write(&after_csv, fewer.join("\n") + "\n").unwrap();
    let o = store.command(migrate_bin()).arg("diff").arg(&before_csv).arg(&after_csv).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("missing: CKO_PRIVATE_KEY"), "{}", show(&o));
}

// ---- crash safety ----

/// A random number below `n` (the system's generator).
fn below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u64::from_le_bytes(b) % n.max(1)
}

/// A SoftHSMv2 token `big` of `n` objects: RSA and EC pairs generated and AES keys and data
/// objects created by SoftHSMv2 (18 objects), then their object files copied under new names up to
/// `n` (SoftHSMv2 itself takes minutes to create a thousand objects: it reads its whole directory
/// on each one). Each copy is a valid SoftHSMv2 object, encrypted under the same token key.
fn big_softhsm_token(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (d, tokens, conf) = softhsm_store("big");
    {
        let _g = lock();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let p = init(Path::new(SOFTHSM));
        let s = session(&p, "big", UserType::User, USER);
        for i in 0..2u8 {
            s.generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[Attribute::Token(true), Attribute::ModulusBits(2048.into()), Attribute::Id(vec![i])],
                &[Attribute::Token(true), Attribute::Private(true), Attribute::Sensitive(true), Attribute::Id(vec![i])],
            )
            .unwrap();
        }
        for i in 0..4u8 {
            let id = vec![0x40, i];
            s.generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[Attribute::Token(true), Attribute::EcParams(ec_params("p256")), Attribute::Id(id.clone())],
                &[Attribute::Token(true), Attribute::Private(true), Attribute::Sensitive(true), Attribute::Id(id)],
            )
            .unwrap();
        }
        for i in 0..6 {
            let label = format!("obj-{i}").into_bytes();
            if i < 4 {
                s.create_object(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Token(true),
                    Attribute::Private(i % 2 == 0),
                    Attribute::Sensitive(true),
                    Attribute::Value(sha2::Sha256::digest(&label).to_vec()),
                    Attribute::Label(label),
                ])
                .unwrap();
            } else {
                s.create_object(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Private(i == 4),
                    Attribute::Value(label.clone()),
                    Attribute::Label(label),
                ])
                .unwrap();
            }
        }
        assert_eq!(s.find_objects(&[]).unwrap().len(), 18);
    }
    let dir = softhsm2_token_dirs(&tokens).pop().expect("the token's directory");
    let mut base: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "object") && !p.ends_with("token.object"))
        .collect();
    base.sort();
    for i in base.len()..n {
        let name = format!("{:08x}-0000-0000-0000-{:012x}", 0x7e570000 + i, i);
        std::fs::copy(&base[i % base.len()], dir.join(format!("{name}.object"))).unwrap();
        std::fs::write(dir.join(format!("{name}.lock")), b"").unwrap();
    }
    (d, tokens, conf)
}

fn softhsm2_token_dirs(tokens: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(tokens).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

/// The cost of a 10,000-object migration (RSA, EC and AES keys and data objects), which must
/// stay under 30 s; printed beside the time SoftHSMv2 takes to list the same token
/// (`pkcs11-tool -O`).
#[test]
fn ten_thousand_objects_migrate_in_under_30_s() {
    if !softhsm_or_skip("the cost test") || !have_or_skip("softhsm2-util", "the cost test") {
        return;
    }
    const OBJECTS: usize = 10_000;
    let (_d, tokens, conf) = big_softhsm_token(OBJECTS);
    let store = tessera_store();
    let t0 = std::time::Instant::now();
    let r = migrate(&store, &tokens);
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(token_report(&r, "big")["status"], "migrated");
    let listed = if have("pkcs11-tool") {
        let t0 = std::time::Instant::now();
        let o = Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--module", SOFTHSM, "--token-label", "big", "--login", "--pin", USER, "-O"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        format!("; SoftHSMv2 lists it (pkcs11-tool -O) in {:.1} s", t0.elapsed().as_secs_f64())
    } else {
        String::new()
    };
    println!("a migration of {OBJECTS} objects took {took:.1} s{listed}");
    assert!(took < 30.0, "{OBJECTS} objects in {took:.1} s");
    let db = rusqlite::Connection::open_with_flags(
        store.tokendir().join(token_report(&r, "big")["serial"].as_str().unwrap()).join("tessera.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let n: i64 = db.query_row("SELECT count(*) FROM object", [], |r| r.get(0)).unwrap();
    assert_eq!(n as usize, OBJECTS);
}

#[test]
fn killed_at_random_points_leaves_no_token_or_a_whole_one() {
    if !softhsm_or_skip("the kill test") || !have_or_skip("softhsm2-util", "the kill test") {
        return;
    }
    const OBJECTS: usize = 1000;
    let started = std::time::Instant::now();
    let (_d, tokens, _conf) = big_softhsm_token(OBJECTS);
    println!("SoftHSMv2 made the token in {:.1} s", started.elapsed().as_secs_f64());
    let source = hash_tree(&tokens);
    let args = from_softhsm2_args(&tokens);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let store = tessera_store();
    // One whole run, timed: the range the kills are spread over.
    let t0 = std::time::Instant::now();
    let r = migrate(&store, &tokens);
    let whole = t0.elapsed();
    println!("a migration of {OBJECTS} objects took {:.2} s", whole.as_secs_f64());
    let serial = token_report(&r, "big")["serial"].as_str().unwrap().to_string();
    let dir = store.tokendir().join(&serial);
    let whole_token = |dir: &Path| {
        let db =
            rusqlite::Connection::open_with_flags(dir.join("tessera.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("the token's database opens");
        let n: i64 = db.query_row("SELECT count(*) FROM object", [], |r| r.get(0)).unwrap();
        assert_eq!(n as usize, OBJECTS, "a token in place is whole");
        assert!(dir.join("migrated-from.json").is_file());
    };
    whole_token(&dir);
    let (mut none, mut whole_found, mut mid_build) = (0, 0, 0);
    let kills = 50;
    // A third more than a whole run took: the kills fall all along it, and some after it ended.
    let span = whole.as_millis() as u64 * 4 / 3 + 50;
    let building = |tokendir: &Path| {
        std::fs::read_dir(tokendir)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".tessera-migrate-")))
            .unwrap_or(false)
    };
    for _ in 0..kills {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let mut c = store.command(migrate_bin());
        c.args(&args).env("TESSERA_MIGRATE_PIN", USER).env("TESSERA_MIGRATE_SO_PIN", SO);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(below(span)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if building(&store.tokendir()) {
            mid_build += 1;
        }
        if dir.exists() {
            whole_token(&dir);
            whole_found += 1;
        } else {
            none += 1;
        }
    }
    println!("kills done at {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "{kills} kills: {none} left no token, {whole_found} a whole one; {mid_build} fell while the build's temporary \
         directory existed"
    );
    assert!(mid_build > 0, "some kills fell in the middle of the build");
    // A run afterwards completes, and cleans what the killed runs left.
    let r = migrate(&store, &tokens);
    assert!(["migrated", "already migrated"].contains(&token_report(&r, "big")["status"].as_str().unwrap()));
    whole_token(&dir);
    let left: Vec<_> = std::fs::read_dir(store.tokendir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tessera-migrate-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(hash_tree(&tokens) == source, "the SoftHSMv2 token directory is unchanged");
    // Through the ABI: every object there.
    let _g = lock();
    store.activate();
    let tess = init(&module_path());
    let s = session(&tess, "big", UserType::User, USER);
    assert_eq!(s.find_objects(&[]).unwrap().len(), OBJECTS);
    drop(s);
}

// ---- through another PKCS#11 module ----

#[test]
fn via_pkcs11_copies_what_softhsm2_lets_out_and_lists_the_rest() {
    if !softhsm_or_skip("via-pkcs11") || !have_or_skip("softhsm2-util", "via-pkcs11") {
        return;
    }
    let (_d, _tokens, conf) = softhsm_store("via");
    {
        let _g = lock();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let p = init(Path::new(SOFTHSM));
        let s = session(&p, "via", UserType::User, USER);
        let key = |label: &str, id: u8, extractable: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(extractable),
                Attribute::Label(label.into()),
                Attribute::Id(vec![id]),
            ]
        };
        let public =
            |label: &str, id: u8| vec![Attribute::Token(true), Attribute::Label(label.into()), Attribute::Id(vec![id])];
        let mut rsa_pub = public("rsa", 1);
        rsa_pub.extend([Attribute::ModulusBits(2048.into()), Attribute::PublicExponent(vec![1, 0, 1])]);
        s.generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &rsa_pub,
            &[key("rsa", 1, true), vec![Attribute::Sign(true)]].concat(),
        )
        .unwrap();
        let mut ec_pub = public("ec", 2);
        ec_pub.push(Attribute::EcParams(ec_params("p256")));
        s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &ec_pub,
            &[key("ec", 2, false), vec![Attribute::Sign(true)]].concat(),
        )
        .unwrap();
        let aes = |label: &str, id: u8, extractable: bool| {
            [
                key(label, id, extractable),
                vec![Attribute::ValueLen(32.into()), Attribute::Decrypt(true), Attribute::Encrypt(true)],
            ]
            .concat()
        };
        s.generate_key(&Mechanism::AesKeyGen, &aes("aes-out", 3, true)).unwrap();
        s.generate_key(&Mechanism::AesKeyGen, &aes("aes-stuck", 4, false)).unwrap();
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"notes".to_vec()),
            Attribute::Application(b"app".to_vec()),
            Attribute::Value(b"data value".to_vec()),
        ])
        .unwrap();
    }
    let store = tessera_store();
    let mut args: Vec<String> = ["via-pkcs11", "--from-module", SOFTHSM, "--from-token", "via", "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if approved_mode() {
        args.push("--drop-wrap-usages".into());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let run_via = |a: &[&str]| {
        let mut c = store.command(migrate_bin());
        c.args(a).env("SOFTHSM2_CONF", &conf).env("TESSERA_MIGRATE_PIN", USER).env("TESSERA_MIGRATE_SO_PIN", SO);
        c.stdin(Stdio::null()).output().unwrap()
    };
    // Keys that cannot leave: listed by label and ID, and nothing is written without
    // --skip-unsupported.
    let o = run_via(&a);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stuck: Vec<(String, String)> = token_report(&r, "via")["unsupported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["label"].as_str().unwrap().to_string(), u["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(stuck.len(), 2, "{stuck:?}");
    assert!(
        stuck.contains(&("ec".into(), "02".into())) && stuck.contains(&("aes-stuck".into(), "04".into())),
        "{stuck:?}"
    );
    assert!(
        !store.tokendir().exists()
            || std::fs::read_dir(store.tokendir())
                .unwrap()
                .flatten()
                .all(|e| e.file_name().to_string_lossy().starts_with('.'))
    );
    let mut all = a.clone();
    all.push("--skip-unsupported");
    let o = run_via(&all);
    assert!(o.status.success(), "{}", show(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(token_report(&r, "via")["status"], "migrated");

    let _g = lock();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let soft = init(Path::new(SOFTHSM));
    store.activate();
    let tess = init(&module_path());
    let a = session(&soft, "via", UserType::User, USER);
    let b = session(&tess, "via", UserType::User, USER);
    // The two public keys, the RSA private key, one AES key, the data object.
    assert_eq!(b.find_objects(&[]).unwrap().len(), 5);
    assert!(b.find_objects(&[Attribute::Label(b"aes-stuck".to_vec())]).unwrap().is_empty());
    assert!(b
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(b"ec".to_vec())])
        .unwrap()
        .is_empty());
    let msg = b"through another module".to_vec();
    let sig = b.sign(&Mechanism::Sha256RsaPkcs, find(&b, ObjectClass::PRIVATE_KEY, "rsa"), &msg).unwrap();
    a.verify(&Mechanism::Sha256RsaPkcs, find(&a, ObjectClass::PUBLIC_KEY, "rsa"), &msg, &sig)
        .expect("SoftHSMv2 verifies the copied key's signature");
    let iv = [9u8; 16];
    let ct = a.encrypt(&Mechanism::AesCbc(iv), find(&a, ObjectClass::SECRET_KEY, "aes-out"), &[0x42; 32]).unwrap();
    assert_eq!(
        b.decrypt(&Mechanism::AesCbc(iv), find(&b, ObjectClass::SECRET_KEY, "aes-out"), &ct).unwrap(),
        [0x42; 32]
    );
    let ec = find(&b, ObjectClass::PUBLIC_KEY, "ec");
    assert_eq!(
        one(&b, ec, AttributeType::EcPoint),
        one(&a, find(&a, ObjectClass::PUBLIC_KEY, "ec"), AttributeType::EcPoint)
    );
    let data = find(&b, ObjectClass::DATA, "notes");
    assert_eq!(one(&b, data, AttributeType::Value), Some(Attribute::Value(b"data value".to_vec())));
    assert_eq!(one(&b, data, AttributeType::Application), Some(Attribute::Application(b"app".to_vec())));
    // The copied key keeps its flags as the source showed them.
    let k = find(&b, ObjectClass::SECRET_KEY, "aes-out");
    assert_eq!(one(&b, k, AttributeType::Sensitive), Some(Attribute::Sensitive(true)));
    assert_eq!(one(&b, k, AttributeType::Extractable), Some(Attribute::Extractable(true)));
    assert_eq!(
        one(&b, k, AttributeType::Local),
        one(&a, find(&a, ObjectClass::SECRET_KEY, "aes-out"), AttributeType::Local)
    );
}

// ---- SoftHSM v1 ----

/// A Tessera store (in `env`) with a new token `label` and the test PINs.
fn tessera_token(env: &Env, label: &str) {
    let _g = lock();
    env.activate();
    let p = init(&module_path());
    let free = p
        .get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| !p.get_token_info(*s).map(|t| t.token_initialized()).unwrap_or(true))
        .expect("a free slot");
    p.init_token(free, &AuthPin::new(SO.into()), label).expect("C_InitToken");
    let s = p.open_rw_session(free).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(SO.into()))).unwrap();
    s.init_pin(&AuthPin::new(USER.into())).unwrap();
}

fn inventory_of(env: &Env, module: &Path, softhsm_conf: &Path, token: &str, out: &Path) {
    let mut c = env.command(migrate_bin());
    c.env("SOFTHSM2_CONF", softhsm_conf).args(["inventory", "--module"]).arg(module);
    c.args(["--token", token, "--pin", USER, "--out"]).arg(out);
    let o = c.output().unwrap();
    assert!(o.status.success(), "inventory: {}", show(&o));
}

#[test]
fn softhsm_v1_database_migrates_with_softhsm2_migrate_and_natively() {
    let Some(shared) = shared_dir() else {
        println!("SKIP SoftHSM v1: ../shared is absent");
        return;
    };
    if !softhsm_or_skip("SoftHSM v1")
        || !have_or_skip("softhsm2-migrate", "SoftHSM v1")
        || !have_or_skip("softhsm2-util", "SoftHSM v1")
    {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("softhsm-v1.db");
    std::fs::copy(shared.join("fixtures/softhsm2/softhsm-v1.db"), &db).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let before = hash_tree(d.path());
    let v1 = |module: &Path, env: Option<&Env>, conf: &Path| {
        let mut c = match env {
            Some(e) => e.command("softhsm2-migrate"),
            None => Command::new("softhsm2-migrate"),
        };
        c.env("SOFTHSM2_CONF", conf)
            .arg("--db")
            .arg(&db)
            .args(["--token", "v1", "--pin", USER, "--module"])
            .arg(module);
        tool(&mut c);
    };
    // Debian's softhsm2-migrate into SoftHSMv2, and into Tessera.
    let (_s, _tokens, conf) = softhsm_store("v1");
    v1(Path::new(SOFTHSM), None, &conf);
    let store = tessera_store();
    tessera_token(&store, "v1");
    v1(&module_path(), Some(&store), &conf);
    let (theirs, ours) = (d.path().join("softhsm.csv"), d.path().join("tessera.csv"));
    inventory_of(&store, Path::new(SOFTHSM), &conf, "v1", &theirs);
    inventory_of(&store, &module_path(), &conf, "v1", &ours);
    assert_eq!(std::fs::read_to_string(&ours).unwrap().lines().count(), 3, "two objects");
    let o = store.command(migrate_bin()).arg("diff").arg(&theirs).arg(&ours).output().unwrap();
    check_diff(&o);
    // The key without CRT values signs in Tessera; SoftHSMv2 verifies with its copy of the public key.
    {
        let _g = lock();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let soft = init(Path::new(SOFTHSM));
        store.activate();
        let tess = init(&module_path());
        let a = session(&soft, "v1", UserType::User, USER);
        let b = session(&tess, "v1", UserType::User, USER);
        let msg = b"a SoftHSM v1 key".to_vec();
        let sig = b.sign(&Mechanism::Sha256RsaPkcs, find(&b, ObjectClass::PRIVATE_KEY, "v1-rsa"), &msg).unwrap();
        a.verify(&Mechanism::Sha256RsaPkcs, find(&a, ObjectClass::PUBLIC_KEY, "v1-rsa"), &msg, &sig)
            .expect("SoftHSMv2 verifies the signature of the key Tessera took from softhsm2-migrate");
        // The CRT values Tessera computed: the same key made readable (values from the v1
        // database, where they are in clear) shows them, and they are the key's.
        let v1db = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let part = |t: CK_ATTRIBUTE_TYPE| -> Vec<u8> {
            v1db.query_row("SELECT value FROM Attributes WHERE objectID = 2 AND type = ?1", [t as i64], |r| r.get(0))
                .unwrap()
        };
        let h = b
            .create_object(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Sign(true),
                Attribute::Modulus(part(CKA_MODULUS)),
                Attribute::PublicExponent(part(CKA_PUBLIC_EXPONENT)),
                Attribute::PrivateExponent(part(CKA_PRIVATE_EXPONENT)),
                Attribute::Prime1(part(CKA_PRIME_1)),
                Attribute::Prime2(part(CKA_PRIME_2)),
            ])
            .expect("an RSA key without CRT values");
        for t in [AttributeType::Exponent1, AttributeType::Exponent2, AttributeType::Coefficient] {
            assert!(
                matches!(one(&b, h, t), Some(Attribute::Exponent1(v) | Attribute::Exponent2(v) | Attribute::Coefficient(v)) if !v.is_empty()),
                "{t}"
            );
        }
        let sig = b.sign(&Mechanism::Sha256RsaPkcs, h, &msg).unwrap();
        a.verify(&Mechanism::Sha256RsaPkcs, find(&a, ObjectClass::PUBLIC_KEY, "v1-rsa"), &msg, &sig)
            .expect("the computed CRT values are the key's");
    }
    // Natively: the same objects, and a re-run adds nothing.
    let native = tessera_store();
    tessera_token(&native, "v1");
    let run_v1 = || {
        let mut c = native.command(migrate_bin());
        c.args(["from-softhsm1", "--token", "v1", "--pin", USER, "--json", "--db"]).arg(&db);
        let o = c.stdin(Stdio::null()).output().unwrap();
        assert!(o.status.success(), "{}", show(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    assert_eq!(token_report(&run_v1(), "v1")["status"], "migrated");
    assert_eq!(token_report(&run_v1(), "v1")["status"], "already migrated");
    let natively = d.path().join("native.csv");
    inventory_of(&native, &module_path(), &conf, "v1", &natively);
    let o = native.command(migrate_bin()).arg("diff").arg(&theirs).arg(&natively).output().unwrap();
    check_diff(&o);
    assert!(
        hash_tree(d.path())
            .iter()
            .filter(|(n, _)| n == "softhsm-v1.db")
            .eq(before.iter().filter(|(n, _)| n == "softhsm-v1.db")),
        "the v1 database is unchanged"
    );
}

#[test]
fn objects_tessera_cannot_hold_stop_the_token_unless_skipped() {
    if !softhsm_or_skip("unsupported objects") || !have_or_skip("softhsm2-util", "unsupported objects") {
        return;
    }
    let (_d, tokens, conf) = softhsm_store("dsa");
    {
        let _g = lock();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let p = init(Path::new(SOFTHSM));
        let s = session(&p, "dsa", UserType::User, USER);
        // A Diffie-Hellman public key (SoftHSMv2 holds DH keys; Tessera does not).
        s.create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::DH),
            Attribute::Token(true),
            Attribute::Label(b"dh-key".to_vec()),
            Attribute::Id(vec![0x33]),
            Attribute::Prime(vec![0xc3; 128]),
            Attribute::Base(vec![0x05; 128]),
            Attribute::Value(vec![0x07; 128]),
        ])
        .expect("SoftHSMv2 stores a DH public key");
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::Token(true), Attribute::ValueLen(16.into()), Attribute::Label(b"aes".to_vec())],
        )
        .unwrap();
    }
    let store = tessera_store();
    let args = from_softhsm2_args(&tokens);
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&store, &a, Some(USER), Some(SO));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let u = &token_report(&r, "dsa")["unsupported"][0];
    assert_eq!((u["label"].as_str(), u["id"].as_str()), (Some("dh-key"), Some("33")), "{r}");
    assert!(u["reason"].as_str().unwrap().contains("CKK_DH"), "{u}");
    assert!(!store.tokendir().join(token_report(&r, "dsa")["serial"].as_str().unwrap()).exists(), "nothing written");
    a.push("--skip-unsupported");
    let o = run(&store, &a, Some(USER), Some(SO));
    assert!(o.status.success(), "{}", show(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(token_report(&r, "dsa")["status"], "migrated");
    assert_eq!(token_report(&r, "dsa")["moved"]["secret key CKK_AES"], 1);
}

// ---- store upgrades ----

/// A copy of the one token of a store fixture (`tests/fixtures/<name>`) in a new token
/// directory: the directory and the token's own.
fn fixture_store(name: &str) -> (tempfile::TempDir, PathBuf) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    let src = std::fs::read_dir(&fixture).unwrap().flatten().next().expect("a token").path();
    let tokens = tempfile::tempdir().unwrap();
    let dir = tokens.path().join(src.file_name().unwrap());
    copy_tree(&src, &dir);
    (tokens, dir)
}

/// The schema version of the store in `dir`.
fn schema_version(dir: &Path) -> i64 {
    rusqlite::Connection::open(dir.join("tessera.db"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// The copies an upgrade keeps while it runs (`*.bak`) still in `dir`.
fn upgrade_copies_left(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bak"))
        .collect()
}

/// A store written by an older schema (the fixture of schema 3 in `tests/fixtures/store-v3`)
/// upgrades when the library first opens it; the copy kept during the upgrade is gone once the
/// upgraded store passed its check.
#[test]
fn an_older_store_upgrades_in_place() {
    let (tokens, dir) = fixture_store("store-v3");
    let version = || schema_version(&dir);
    assert_eq!(version(), 3);
    {
        let _g = lock();
        let env = Env::at(tokens.path(), "");
        env.activate();
        let p = init(&module_path());
        let slot = p
            .get_slots_with_initialized_token()
            .unwrap()
            .into_iter()
            .find(|s| p.get_token_info(*s).is_ok_and(|t| t.label() == "old-store"))
            .expect("the old token");
        let s = p.open_ro_session(slot).unwrap();
        assert_eq!(s.find_objects(&[Attribute::Label(b"old-data".to_vec())]).unwrap().len(), 1);
    }
    assert!(version() > 3, "upgraded");
    let left = upgrade_copies_left(&dir);
    assert!(left.is_empty(), "{left:?}");
}

/// A store written by the previous schema (7, before the drop-in's columns; the fixture in
/// `tests/fixtures/store-v7`: a token `prev-store`, user PIN 123456, SO PIN 12345678, an EC P-256
/// key pair `prev-key` generated on the token and a private data object `prev-data`, made with
/// that release's `tessera-util` and `pkcs11-tool`) upgrades in place with its rollback record
/// and counters, and everything in it works afterwards: both PINs, the sensitive private key
/// (its signature verifies under the stored public key) and the private data object.
#[test]
fn the_previous_schema_upgrades_with_its_keys() {
    let (tokens, dir) = fixture_store("store-v7");
    let version = || schema_version(&dir);
    assert_eq!(version(), 7);
    {
        let _g = lock();
        let env = Env::at(tokens.path(), "");
        env.activate();
        let p = init(&module_path());
        let s = session(&p.0, "prev-store", UserType::User, "123456");
        let private = find(&s, ObjectClass::PRIVATE_KEY, "prev-key");
        let public = find(&s, ObjectClass::PUBLIC_KEY, "prev-key");
        let attrs = s.get_attributes(private, &[AttributeType::Sensitive, AttributeType::Extractable]).unwrap();
        assert!(attrs.contains(&Attribute::Sensitive(true)) && attrs.contains(&Attribute::Extractable(false)));
        let sig = s.sign(&Mechanism::EcdsaSha256, private, b"after the upgrade").unwrap();
        s.verify(&Mechanism::EcdsaSha256, public, b"after the upgrade", &sig).expect("the signature verifies");
        let data = find(&s, ObjectClass::DATA, "prev-data");
        let v = s.get_attributes(data, &[AttributeType::Value]).unwrap();
        assert_eq!(v, vec![Attribute::Value(b"hello\n".to_vec())]);
        s.logout().unwrap();
        s.login(UserType::So, Some(&AuthPin::new("12345678".into()))).expect("the SO PIN");
    }
    assert_eq!(version(), 8, "upgraded to the current schema");
    let left = upgrade_copies_left(&dir);
    assert!(left.is_empty(), "{left:?}");
}
