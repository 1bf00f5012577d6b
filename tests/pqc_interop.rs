//! ML-DSA with other implementations and real clients:
//!
//! - PQClean (`pqcrypto-mldsa`, FIPS 204 final: `0 ‖ |ctx| ‖ ctx ‖ M`, contexts up to 255 bytes),
//!   an independent second implementation, for every set: Tessera's signatures verify there (with
//!   and without a context), PQClean's verify in Tessera, and a PQClean key pair imported by
//!   `CKA_VALUE` (expanded private key, raw public key) signs and gives the same public key;
//! - PyKCS11 (`tests/interop/pykcs11_pqc.py`) generates key pairs, signs and verifies, and
//!   exports `CKA_PUBLIC_KEY_INFO`, which is decoded here and verified with PQClean; where the
//!   interpreter's `cryptography` has ML-DSA (its wheels bundle OpenSSL 3.5 or later) OpenSSL
//!   verifies from the SubjectPublicKeyInfo too, and an OpenSSL key imported by its seed signs
//!   both ways;
//! - OpenSC `pkcs11-tool`, where a version that knows ML-DSA is installed (Debian 12's 0.23 does
//!   not: the test then says so and skips).
//!
//! In the approved mode pure ML-DSA with an empty context is approved and runs; contexts are
//! refused with the policy's code (asserted).

use cryptoki::error::RvError;
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, MlDsaParameterSetType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use pqcrypto_traits::sign::{DetachedSignature as _, PublicKey as _, SecretKey as _};
use spki::der::Decode;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tessera_tests::*;

/// `sign(msg, ctx, sk)`.
type SignFn = fn(&[u8], &[u8], &[u8]) -> Vec<u8>;
/// `verify(msg, ctx, sig, pk)`.
type VerifyFn = fn(&[u8], &[u8], &[u8], &[u8]) -> bool;

/// PQClean's functions for one set, as plain byte-slice functions.
struct Pqclean {
    name: &'static str,
    set: MlDsaParameterSetType,
    keypair: fn() -> (Vec<u8>, Vec<u8>),
    sign: SignFn,
    verify: VerifyFn,
}

macro_rules! pqclean {
    ($m:ident, $name:expr, $set:expr) => {
        Pqclean {
            name: $name,
            set: $set,
            keypair: || {
                let (pk, sk) = pqcrypto_mldsa::$m::keypair();
                (pk.as_bytes().to_vec(), sk.as_bytes().to_vec())
            },
            sign: |msg, ctx, sk| {
                let sk = pqcrypto_mldsa::$m::SecretKey::from_bytes(sk).expect("PQClean secret key");
                pqcrypto_mldsa::$m::detached_sign_ctx(msg, ctx, &sk).as_bytes().to_vec()
            },
            verify: |msg, ctx, sig, pk| {
                let (Ok(pk), Ok(sig)) = (
                    pqcrypto_mldsa::$m::PublicKey::from_bytes(pk),
                    pqcrypto_mldsa::$m::DetachedSignature::from_bytes(sig),
                ) else {
                    return false;
                };
                pqcrypto_mldsa::$m::verify_detached_signature_ctx(&sig, msg, ctx, &pk).is_ok()
            },
        }
    };
}

fn pqclean() -> [Pqclean; 3] {
    [
        pqclean!(mldsa44, "ML-DSA-44", MlDsaParameterSetType::ML_DSA_44),
        pqclean!(mldsa65, "ML-DSA-65", MlDsaParameterSetType::ML_DSA_65),
        pqclean!(mldsa87, "ML-DSA-87", MlDsaParameterSetType::ML_DSA_87),
    ]
}

fn pure(ctx: Option<&[u8]>) -> Mechanism<'_> {
    Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, ctx))
}

fn import(s: &Session, class: ObjectClass, set: MlDsaParameterSetType, value: &[u8]) -> ObjectHandle {
    let usage = if class == ObjectClass::PRIVATE_KEY { Attribute::Sign(true) } else { Attribute::Verify(true) };
    s.create_object(&[
        Attribute::Class(class),
        Attribute::KeyType(KeyType::ML_DSA),
        Attribute::Token(false),
        usage,
        Attribute::ParameterSet(set.into()),
        Attribute::Value(value.to_vec()),
    ])
    .expect("import an ML-DSA key by CKA_VALUE")
}

/// The raw key of an ML-DSA SubjectPublicKeyInfo, after checking its algorithm (id-ml-dsa-*, no
/// parameters, RFC 9881).
fn spki_raw(der: &[u8], name: &str) -> Vec<u8> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der).expect("a DER SubjectPublicKeyInfo");
    let arc = match name {
        "ML-DSA-44" => "17",
        "ML-DSA-65" => "18",
        _ => "19",
    };
    assert_eq!(spki.algorithm.oid.to_string(), format!("2.16.840.1.101.3.4.3.{arc}"), "{name}'s OID");
    assert!(spki.algorithm.parameters.is_none(), "no parameters (RFC 9881)");
    spki.subject_public_key.as_bytes().expect("whole bytes").to_vec()
}

#[test]
fn pqclean_cross_check_every_set() {
    let t = Token::new("pqclean");
    let s = t.s();
    let msg = b"one message, two implementations";
    for p in pqclean() {
        // Tessera's key pair and signatures, verified by PQClean with the exported SPKI's key.
        let (public, private) = s
            .generate_key_pair(
                &Mechanism::MlDsaKeyPairGen,
                &[Attribute::Token(false), Attribute::ParameterSet(p.set.into()), Attribute::Verify(true)],
                &[Attribute::Token(false), Attribute::Sign(true)],
            )
            .expect("key pair");
        let pk = spki_raw(&t.attr(public.handle(), CKA_PUBLIC_KEY_INFO).unwrap(), p.name);
        assert_eq!(pk, t.attr(public.handle(), CKA_VALUE).unwrap());
        let sig = s.sign(&pure(None), private, msg).expect("sign");
        assert!((p.verify)(msg, b"", &sig, &pk), "{}: PQClean verifies Tessera's signature", p.name);
        assert!(!(p.verify)(b"another message", b"", &sig, &pk), "{}: and not on another message", p.name);
        let with_ctx = pure(Some(b"tessera context"));
        match s.sign(&with_ctx, private, msg) {
            Ok(sig) => {
                assert!(!approved_mode(), "a context is refused in the approved mode");
                assert!((p.verify)(msg, b"tessera context", &sig, &pk), "{}: with a context", p.name);
                assert!(!(p.verify)(msg, b"", &sig, &pk), "{}: the context counts", p.name);
            }
            Err(e) => {
                assert!(approved_mode(), "{}: signing with a context: {e}", p.name);
                assert_eq!(rv(e), RvError::MechanismParamInvalid);
            }
        }

        // PQClean's key pair, imported by CKA_VALUE: the same public key, signatures both ways.
        let (pk, sk) = (p.keypair)();
        let their_public = import(s, ObjectClass::PUBLIC_KEY, p.set, &pk);
        let their_private = import(s, ObjectClass::PRIVATE_KEY, p.set, &sk);
        let derived = spki_raw(&t.attr(their_private.handle(), CKA_PUBLIC_KEY_INFO).unwrap(), p.name);
        assert_eq!(derived, pk, "{}: Tessera computes PQClean's public key from its private key", p.name);
        let theirs = (p.sign)(msg, b"", &sk);
        s.verify(&pure(None), their_public, msg, &theirs)
            .unwrap_or_else(|e| panic!("{}: Tessera verifies PQClean's signature: {e}", p.name));
        assert_eq!(rv_of(s.verify(&pure(None), their_public, b"other", &theirs)), RvError::SignatureInvalid);
        let ours = s.sign(&pure(None), their_private, msg).expect("sign with PQClean's key");
        assert!((p.verify)(msg, b"", &ours, &pk), "{}: PQClean verifies a signature by its imported key", p.name);
        let theirs_ctx = (p.sign)(msg, b"ctx", &sk);
        let r = s.verify(&pure(Some(b"ctx")), their_public, msg, &theirs_ctx);
        if approved_mode() {
            assert_eq!(rv_of(r), RvError::MechanismParamInvalid, "a context is refused in the approved mode");
        } else {
            r.unwrap_or_else(|e| panic!("{}: PQClean's signature with a context: {e}", p.name));
            assert_eq!(rv_of(s.verify(&pure(None), their_public, msg, &theirs_ctx)), RvError::SignatureInvalid);
        }
        println!("{}: Tessera and PQClean verify each other's signatures and keys", p.name);
    }
}

// ---------------------------------------------------------------------------------------------
// External clients
// ---------------------------------------------------------------------------------------------

/// A token initialised by `tessera-util` on a store of its own, for other processes.
struct Store {
    env: Env,
    label: String,
}

impl Store {
    fn new(label: &str) -> Store {
        let env = Env::new("objectstore.backend = file");
        std::fs::create_dir_all(env.tokendir()).expect("token directory");
        let st = Store { env, label: label.to_string() };
        let mut c = st.env.command(util_path());
        c.args(["--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN]);
        let out = c.stdin(Stdio::null()).output().expect("run tessera-util");
        assert!(out.status.success(), "tessera-util --init-token\n{}", show(&out));
        st
    }

    fn dir(&self) -> &Path {
        self.env.dir.path()
    }
}

/// Runs a command; its success and its stdout and stderr together.
fn run(mut c: Command) -> (bool, String) {
    let what = describe(&c);
    let out = c.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), format!("`{what}`:\n{text}"))
}

/// A Python 3 that imports PyKCS11: `TESSERA_PQC_PYTHON`, then `target/pqc-venv` (which
/// `tests/run-all.sh` makes with PyKCS11 and `cryptography` from PyPI), then the system's
/// (Debian's python3-pykcs11). One whose `cryptography` has ML-DSA is preferred.
fn pykcs11_python() -> Result<String, String> {
    let mut candidates: Vec<String> = std::env::var("TESSERA_PQC_PYTHON").into_iter().collect();
    candidates.push(target_dir().join("pqc-venv/bin/python").to_string_lossy().into_owned());
    candidates.extend(["/usr/bin/python3".to_string(), "python3".to_string()]);
    let imports = |py: &str, code: &str| {
        Command::new(py).args(["-c", code]).output().map(|o| o.status.success()).unwrap_or(false)
    };
    let with_pykcs11: Vec<&String> = candidates.iter().filter(|p| imports(p, "import PyKCS11")).collect();
    with_pykcs11
        .iter()
        .find(|p| imports(p, "from cryptography.hazmat.primitives.asymmetric import mldsa"))
        .or(with_pykcs11.first())
        .map(|p| p.to_string())
        .ok_or_else(|| {
            "no python3 imports PyKCS11 (Debian's python3-pykcs11, or `python3 -m venv target/pqc-venv && \
             target/pqc-venv/bin/pip install PyKCS11 cryptography`)"
                .into()
        })
}

/// PyKCS11 generates, signs and verifies; the SubjectPublicKeyInfo it read is decoded here and
/// its signature verified by PQClean; OpenSSL verifies too where the interpreter has it.
#[test]
fn pykcs11_ml_dsa_and_spki_verification() {
    let python = match pykcs11_python() {
        Ok(p) => p,
        Err(why) => {
            println!("SKIP pykcs11_ml_dsa_and_spki_verification: {why}");
            eprintln!("SKIP pykcs11_ml_dsa_and_spki_verification: {why}");
            return;
        }
    };
    let st = Store::new("pqc-python");
    let out: PathBuf = st.dir().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut c = st.env.command(&python);
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/pykcs11_pqc.py"));
    c.arg(module_path()).args([&st.label, USER_PIN]).arg(&out);
    let (ok, text) = run(c);
    assert!(ok && text.contains("PASS"), "{text}");
    eprintln!("{text}");
    for p in pqclean() {
        let n = &p.name[7..];
        let read = |ext: &str| std::fs::read(out.join(format!("mldsa-{n}.{ext}"))).expect("the script's output");
        let pk = spki_raw(&read("spki"), p.name);
        assert!((p.verify)(&read("msg"), b"", &read("sig"), &pk), "{}: PQClean verifies PyKCS11's signature", p.name);
    }
    if let Some(line) = text.lines().find(|l| l.starts_with("NO-OPENSSL-ML-DSA")) {
        println!("no OpenSSL with ML-DSA for this interpreter ({line}): the SPKI was checked with PQClean only");
    }
}

/// OpenSC's `pkcs11-tool`: an ML-DSA key pair and a signature where the installed version knows
/// ML-DSA; otherwise (Debian 12's 0.23 names CKM_ML_DSA_KEY_PAIR_GEN only `mechtype-0x1C`) a skip
/// that says so.
#[test]
fn pkcs11_tool_ml_dsa() {
    if !have("pkcs11-tool") {
        println!("SKIP pkcs11_tool_ml_dsa: pkcs11-tool is not installed (Debian package opensc)");
        return;
    }
    let st = Store::new("pqc-opensc");
    let p11 = || {
        let mut c = st.env.command("pkcs11-tool");
        c.arg("--module").arg(module_path()).args(["--token-label", &st.label]);
        c
    };
    let mut c = p11();
    c.arg("-M");
    let (ok, text) = run(c);
    assert!(ok, "{text}");
    assert!(text.contains("0x1C") || text.to_ascii_uppercase().contains("ML-DSA"), "ML-DSA is listed: {text}");
    if !text.to_ascii_uppercase().contains("ML-DSA") {
        let why = "this pkcs11-tool knows no ML-DSA (it lists CKM_ML_DSA_KEY_PAIR_GEN as mechtype-0x1C; \
                   OpenSC 0.23 of Debian 12)";
        println!("SKIP pkcs11_tool_ml_dsa: {why}");
        eprintln!("SKIP pkcs11_tool_ml_dsa: {why}");
        return;
    }
    let mut c = p11();
    c.args(["--login", "--pin", USER_PIN, "--keypairgen", "--key-type", "ML-DSA-65", "--id", "51", "--label", "mldsa"]);
    let (ok, text) = run(c);
    assert!(ok, "{text}");
    let data = st.dir().join("data");
    let sig = st.dir().join("data.sig");
    std::fs::write(&data, b"signed by pkcs11-tool").unwrap();
    let mut c = p11();
    c.args(["--login", "--pin", USER_PIN, "--sign", "--mechanism", "ML-DSA", "--id", "51", "--input-file"]);
    c.arg(&data).arg("--output-file").arg(&sig);
    let (ok, text) = run(c);
    assert!(ok, "{text}");
    let mut c = p11();
    c.args(["--login", "--pin", USER_PIN, "--verify", "--mechanism", "ML-DSA", "--id", "51", "--input-file"]);
    c.arg(&data).arg("--signature-file").arg(&sig);
    let (ok, text) = run(c);
    assert!(ok, "{text}");
}
