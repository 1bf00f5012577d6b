//! Interoperability: the module loaded by the programs and libraries that load PKCS#11 modules in
//! practice — OpenSC's `pkcs11-tool`, OpenSSL through libp11's `pkcs11` engine, Java's SunPKCS11
//! provider, PyKCS11, p11-kit (module registration, `p11-kit server` and its client module) and
//! GnuTLS's `p11tool` — with their outputs cross-checked by `openssl`.
//!
//! Every test makes its own token store and token and runs the tools as child processes, so the
//! tests run in parallel. A test whose tool is not installed prints `SKIP <test>: <reason>` and
//! passes; `tests/setup.sh` installs them all. Helper sources live in `tests/interop/`.
//!
//! The store's configuration file is in `softhsm2.conf`'s format and is also handed over as
//! `SOFTHSM2_CONF` when the module under test is SoftHSMv2, so with
//! `TESSERA_MODULE=/usr/lib/softhsm/libsofthsm2.so TESSERA_UTIL=softhsm2-util` these tests check
//! their own tool invocations against the reference implementation. SoftHSMv2 2.6 has no ECDSA
//! with hashing and no RSA-OAEP with SHA-2 or a label; there (only) the tests use the nearest
//! mechanism it has — see [`reference`].
//!
//! Known faults of the Debian 12 tools, worked around where they would make a test depend on
//! luck rather than on the module: OpenSC 0.23's `--read-object` of EC public keys reads freed
//! memory (so EC public keys are rebuilt from `--list-objects`, [`Token::ec_public_pem`]), its
//! `--unwrap` may set a garbage CKA_ID (the unwrapped key is found by label), and its
//! `--encrypt` takes secret keys only (`openssl` encrypts to the RSA keys); p11-kit 0.24's RPC
//! does not carry `CKM_ECDSA_SHA*` (ECDSA through `p11-kit server` signs a digest); libp11 0.4.12
//! cannot enumerate a token holding Edwards keys (its tokens hold RSA and EC keys only).

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tessera_tests::*;

// ---------------------------------------------------------------------------------------------
// Running tools
// ---------------------------------------------------------------------------------------------

/// The value of a prerequisite, or return from the test after printing why it is skipped.
macro_rules! need {
    ($test:expr, $check:expr) => {
        match $check {
            Ok(v) => v,
            Err(why) => {
                println!("SKIP {}: {}", $test, why);
                eprintln!("SKIP {}: {}", $test, why);
                return;
            }
        }
    };
}

/// A command-line tool from a Debian package.
fn tool(name: &str, package: &str) -> Result<(), String> {
    if have(name) {
        Ok(())
    } else {
        Err(format!("`{name}` is not installed (Debian package {package}, which tests/setup.sh installs)"))
    }
}

/// Runs a command; gives its output and its description for messages.
fn run(mut c: Command) -> (Output, String) {
    let what = describe(&c);
    let out = c.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    (out, what)
}

/// Runs a command that must succeed; gives its stdout and stderr together.
fn ok(c: Command) -> String {
    let (out, what) = run(c);
    assert!(out.status.success(), "`{what}` failed\n{}", show(&out));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs a command that must succeed and print `expected` (on stdout or stderr).
fn ok_saying(c: Command, expected: &str) -> String {
    let (out, what) = run(c);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains(expected), "`{what}` did not say {expected:?}\n{}", show(&out));
    text
}

/// Whether the module under test is SoftHSMv2 rather than Tessera. The tests then stand in for
/// what SoftHSMv2 2.6 lacks: ECDSA over a SHA-2 digest (`CKM_ECDSA`) for `CKM_ECDSA_SHA*`, and
/// RSA-OAEP with SHA-1 for RSA-OAEP with SHA-256.
fn reference() -> bool {
    module_path().file_name().map(|n| n.to_string_lossy().contains("softhsm")).unwrap_or(false)
}

/// `openssl`, which most tests use to check the other tools' results.
fn openssl_tool() -> Result<(), String> {
    tool("openssl", "openssl")
}

/// libp11's OpenSSL engine, `<ENGINESDIR>/pkcs11.so`.
fn libp11_engine() -> Result<PathBuf, String> {
    openssl_tool()?;
    let out = Command::new("openssl").args(["version", "-e"]).output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let dir =
        text.split('"').nth(1).ok_or_else(|| format!("cannot read ENGINESDIR from `openssl version -e`: {text}"))?;
    let engine = Path::new(dir).join("pkcs11.so");
    if engine.exists() {
        Ok(engine)
    } else {
        Err(format!(
            "{} is absent (Debian package libengine-pkcs11-openssl, which tests/setup.sh installs)",
            engine.display()
        ))
    }
}

/// A Python 3 that imports PyKCS11 (Debian's python3-pykcs11 is for the system interpreter).
fn pykcs11_python() -> Result<String, String> {
    for python in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(python).args(["-c", "import PyKCS11"]).output().map(|o| o.status.success());
        if ok.unwrap_or(false) {
            return Ok(python.to_string());
        }
    }
    Err("no python3 imports PyKCS11 (Debian package python3-pykcs11, which tests/setup.sh installs)".into())
}

/// p11-kit's client module, `p11-kit-client.so`.
fn p11kit_client() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = vec!["/usr/lib/pkcs11".into(), "/usr/lib64/pkcs11".into()];
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|e| e.path().join("pkcs11")));
    }
    dirs.sort();
    dirs.into_iter()
        .map(|d| d.join("p11-kit-client.so"))
        .find(|p| p.exists())
        .ok_or_else(|| "p11-kit-client.so is absent (Debian package p11-kit-modules, pulled in by p11-kit)".into())
}

// ---------------------------------------------------------------------------------------------
// A token on a private store
// ---------------------------------------------------------------------------------------------

/// Bytes to sign: a little over two SHA-256 blocks' worth of varied bytes.
fn message() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect()
}

/// A token, initialised by `tessera-util` with the user PIN set, on a store of its own.
struct Token {
    env: Env,
    label: String,
    /// The library's mode is set by its configuration (`TESSERA_MODE` given to match it).
    mode: Option<&'static str>,
}

impl Token {
    fn new(label: &str) -> Token {
        Token::configured(label, None)
    }

    /// A token of a library configured for the approved mode (whatever `TESSERA_MODE` the suite
    /// runs under: the configuration's mode is not lowered by it).
    fn approved(label: &str) -> Token {
        Token::configured(label, Some("approved"))
    }

    fn configured(label: &str, mode: Option<&'static str>) -> Token {
        let extra = mode.map(|m| format!("\ntessera.mode = {m}")).unwrap_or_default();
        let env = Env::new(&format!("objectstore.backend = file{extra}"));
        fs::create_dir_all(env.tokendir()).expect("token directory");
        let t = Token { env, label: label.to_string(), mode };
        let mut c = t.cmd(util_path());
        c.args(["--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN]);
        ok(c);
        t
    }

    /// A command with this store in its environment.
    fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = self.env.command(program);
        if let Some(m) = self.mode {
            c.env("TESSERA_MODE", m);
        }
        if reference() {
            c.env("SOFTHSM2_CONF", &self.env.conf);
        }
        c
    }

    fn file(&self, name: &str) -> PathBuf {
        self.env.dir.path().join(name)
    }

    /// Writes a file in the store's directory; gives its path.
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.file(name);
        fs::write(&p, bytes).expect("write file");
        p
    }

    /// `pkcs11-tool` on this token, through `module`.
    fn p11_via(&self, module: &Path) -> Command {
        let mut c = self.cmd("pkcs11-tool");
        c.arg("--module").arg(module).args(["--token-label", &self.label]);
        c
    }

    /// `pkcs11-tool` on this token.
    fn p11(&self) -> Command {
        self.p11_via(&module_path())
    }

    /// `pkcs11-tool` on this token, logged in as the user.
    fn user(&self) -> Command {
        let mut c = self.p11();
        c.args(["--login", "--pin", USER_PIN]);
        c
    }

    fn openssl(&self) -> Command {
        self.cmd("openssl")
    }

    /// `pkcs11-tool --keypairgen` of a token key pair; gives the tool's report.
    fn keypair(&self, key_type: &str, id: &str, label: &str) -> String {
        let mut c = self.user();
        c.args(["--keypairgen", "--key-type", key_type, "--id", id, "--label", label]);
        ok(c)
    }

    /// The slot ID of this token, from `pkcs11-tool --list-slots`.
    fn slot_id(&self) -> u64 {
        let mut c = self.cmd("pkcs11-tool");
        c.arg("--module").arg(module_path()).arg("--list-slots");
        let text = ok(c);
        let mut current = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("Slot ") {
                current = rest
                    .split("(0x")
                    .nth(1)
                    .and_then(|h| h.split(')').next())
                    .and_then(|h| u64::from_str_radix(h, 16).ok());
            }
            if line.trim_start().starts_with("token label")
                && line.split(':').nth(1).map(str::trim) == Some(&self.label)
            {
                return current.expect("slot ID before the token label");
            }
        }
        panic!("token {} not in `pkcs11-tool --list-slots`:\n{text}", self.label)
    }

    /// The RSA or Edwards public key with this CKA_ID as a PEM file for `openssl`, read with
    /// `pkcs11-tool --read-object --type pubkey` (DER, or PEM for Edwards keys) and converted.
    /// EC keys: [`Token::ec_public_pem`].
    fn public_pem(&self, id: &str) -> PathBuf {
        let raw = self.file(&format!("pub-{id}.der"));
        let mut c = self.p11();
        c.args(["--read-object", "--type", "pubkey", "--id", id, "-o"]).arg(&raw);
        ok(c);
        self.pem_of(&raw, id)
    }

    /// The EC public key with this CKA_ID as a PEM file for `openssl`, built from the
    /// `CKA_EC_PARAMS` and `CKA_EC_POINT` that `pkcs11-tool --list-objects` shows. OpenSC 0.23's
    /// `--read-object` cannot be trusted with EC public keys: it frees the point before handing
    /// it to OpenSSL (fixed in 0.24 by "Avoid dereferencing freed members when reading public
    /// keys"), and fails with "cannot create EVP_PKEY" depending on the heap — with any module.
    fn ec_public_pem(&self, id: &str) -> PathBuf {
        let mut c = self.p11();
        c.args(["--list-objects", "--type", "pubkey", "--id", id]);
        let text = ok(c);
        // pkcs11-tool 0.23 lists every public key whatever --id says: take the one with this ID.
        let block = text
            .split("Public Key Object")
            .find(|b| b.lines().any(|l| l.trim() == format!("ID:         {id}")))
            .unwrap_or_else(|| panic!("no public key {id} in `pkcs11-tool --list-objects`:\n{text}"));
        let field = |name: &str| -> Vec<u8> {
            let line = block
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in `pkcs11-tool --list-objects`:\n{text}"));
            let hex = line.split(':').nth(1).unwrap().split_whitespace().next().unwrap();
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
        };
        let params = field("EC_PARAMS:");
        let ec_point = field("EC_POINT:");
        let point = der_octet_string_content(&ec_point);
        let mut bits = vec![0u8];
        bits.extend_from_slice(point);
        let algorithm = [der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]), params].concat();
        let spki = der(0x30, &[der(0x30, &algorithm), der(0x03, &bits)].concat());
        let raw = self.write(&format!("pub-{id}.der"), &spki);
        self.pem_of(&raw, id)
    }

    fn pem_of(&self, raw: &Path, id: &str) -> PathBuf {
        let pem = self.file(&format!("pub-{id}.pem"));
        let mut c = self.openssl();
        c.args(["pkey", "-pubin", "-in"]).arg(raw).arg("-out").arg(&pem);
        ok(c);
        pem
    }
}

/// The content of a DER OCTET STRING (`CKA_EC_POINT`).
fn der_octet_string_content(v: &[u8]) -> &[u8] {
    assert_eq!(v.first(), Some(&0x04), "CKA_EC_POINT is not a DER OCTET STRING: {v:02x?}");
    match v[1] {
        n if n < 0x80 => &v[2..2 + n as usize],
        0x81 => &v[3..3 + v[2] as usize],
        _ => panic!("CKA_EC_POINT length form: {v:02x?}"),
    }
}

/// Checks a `pkcs11-tool --verify` run: it exits 0 either way and says which.
fn p11_verify(t: &Token, mut args: Vec<String>, data: &Path, sig: &Path, valid: bool) {
    let mut c = t.user();
    args.insert(0, "--verify".into());
    c.args(&args).arg("-i").arg(data).arg("--signature-file").arg(sig);
    ok_saying(c, if valid { "Signature is valid" } else { "Invalid signature" });
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A copy of the message with one byte changed.
fn altered(t: &Token) -> PathBuf {
    let mut m = message();
    m[100] ^= 0x20;
    t.write("altered.bin", &m)
}

// ---------------------------------------------------------------------------------------------
// 1. OpenSC pkcs11-tool
// ---------------------------------------------------------------------------------------------

/// `--keypairgen` of every key type pkcs11-tool knows for the classical mechanisms; the public
/// keys read back are what `openssl` expects.
#[test]
fn pkcs11_tool_keypairgen() {
    need!("pkcs11_tool_keypairgen", tool("pkcs11-tool", "opensc"));
    need!("pkcs11_tool_keypairgen", openssl_tool());
    let t = Token::new("interop-gen");
    let cases = [
        ("rsa:2048", "01", "Private Key Object; RSA", "Public-Key: (2048 bit)"),
        ("EC:prime256v1", "02", "Private Key Object; EC", "NIST CURVE: P-256"),
        ("EC:secp384r1", "03", "Private Key Object; EC", "NIST CURVE: P-384"),
        ("EC:secp521r1", "04", "Private Key Object; EC", "NIST CURVE: P-521"),
        ("EC:edwards25519", "05", "Private Key Object; EC_EDWARDS", "ED25519 Public-Key"),
    ];
    for (key_type, id, listed, text) in cases {
        let report = t.keypair(key_type, id, &format!("gen-{id}"));
        assert!(report.contains(listed), "--keypairgen {key_type}: no {listed:?} in\n{report}");
        let pem = if key_type.starts_with("EC:") && key_type != "EC:edwards25519" {
            t.ec_public_pem(id)
        } else {
            t.public_pem(id)
        };
        let mut c = t.openssl();
        c.args(["pkey", "-pubin", "-noout", "-text", "-in"]).arg(&pem);
        ok_saying(c, text);
    }
    let mut c = t.user();
    c.arg("--list-objects");
    let listing = ok(c);
    for id in ["01", "02", "03", "04", "05"] {
        assert_eq!(listing.matches(&format!("label:      gen-{id}\n")).count(), 2, "key pair {id} in\n{listing}");
    }
    // The private keys stay inside: sensitive, never extractable, generated on the token.
    assert_eq!(
        listing.matches("Access:     sensitive, always sensitive, never extractable, local").count(),
        5,
        "{listing}"
    );
}

/// RSA PKCS#1 v1.5 and PSS signatures with SHA-256: made and checked by pkcs11-tool, checked by
/// `openssl`; an altered message is rejected.
#[test]
fn pkcs11_tool_rsa_sign_verify() {
    need!("pkcs11_tool_rsa_sign_verify", tool("pkcs11-tool", "opensc"));
    need!("pkcs11_tool_rsa_sign_verify", openssl_tool());
    let t = Token::new("interop-rsa");
    t.keypair("rsa:2048", "01", "rsa");
    let pem = t.public_pem("01");
    let data = t.write("data.bin", &message());
    for (mech, sigopts) in [
        ("SHA256-RSA-PKCS", vec![]),
        ("SHA256-RSA-PKCS-PSS", vec!["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]),
    ] {
        let sig = t.file(&format!("{mech}.sig"));
        let mut c = t.user();
        c.args(["--sign", "--id", "01", "-m", mech, "-i"]).arg(&data).arg("-o").arg(&sig);
        ok(c);
        assert_eq!(fs::metadata(&sig).unwrap().len(), 256, "{mech} signature length");
        p11_verify(&t, owned(&["--id", "01", "-m", mech]), &data, &sig, true);
        p11_verify(&t, owned(&["--id", "01", "-m", mech]), &altered(&t), &sig, false);
        let mut c = t.openssl();
        c.args(["dgst", "-sha256"]).args(&sigopts).arg("-verify").arg(&pem).arg("-signature").arg(&sig).arg(&data);
        ok_saying(c, "Verified OK");
    }
}

/// ECDSA on P-256, P-384 and P-521: with hashing (`ECDSA-SHA256/384/512`) and over a digest
/// (`ECDSA`), signatures in `openssl`'s DER form checked by pkcs11-tool and `openssl`.
#[test]
fn pkcs11_tool_ecdsa_sign_verify() {
    need!("pkcs11_tool_ecdsa_sign_verify", tool("pkcs11-tool", "opensc"));
    need!("pkcs11_tool_ecdsa_sign_verify", openssl_tool());
    let t = Token::new("interop-ecdsa");
    let data = t.write("data.bin", &message());
    for (curve, id, mech, digest) in [
        ("EC:prime256v1", "01", "ECDSA-SHA256", "sha256"),
        ("EC:secp384r1", "02", "ECDSA-SHA384", "sha384"),
        ("EC:secp521r1", "03", "ECDSA-SHA512", "sha512"),
    ] {
        t.keypair(curve, id, &format!("ec-{id}"));
        let pem = t.ec_public_pem(id);
        let fmt = ["--signature-format", "openssl"];
        if !reference() {
            let sig = t.file(&format!("{mech}.sig"));
            let mut c = t.user();
            c.args(["--sign", "--id", id, "-m", mech]).args(fmt).arg("-i").arg(&data).arg("-o").arg(&sig);
            ok(c);
            p11_verify(&t, owned(&["--id", id, "-m", mech, fmt[0], fmt[1]]), &data, &sig, true);
            p11_verify(&t, owned(&["--id", id, "-m", mech, fmt[0], fmt[1]]), &altered(&t), &sig, false);
            let mut c = t.openssl();
            c.args(["dgst", &format!("-{digest}"), "-verify"]).arg(&pem).arg("-signature").arg(&sig).arg(&data);
            ok_saying(c, "Verified OK");
        }
        // CKM_ECDSA over the digest computed by openssl.
        let hash = t.file(&format!("data.{digest}"));
        let mut c = t.openssl();
        c.args(["dgst", &format!("-{digest}"), "-binary", "-out"]).arg(&hash).arg(&data);
        ok(c);
        let sig = t.file(&format!("ECDSA-{id}.sig"));
        let mut c = t.user();
        c.args(["--sign", "--id", id, "-m", "ECDSA"]).args(fmt).arg("-i").arg(&hash).arg("-o").arg(&sig);
        ok(c);
        p11_verify(&t, owned(&["--id", id, "-m", "ECDSA", fmt[0], fmt[1]]), &hash, &sig, true);
        let mut c = t.openssl();
        c.args(["pkeyutl", "-verify", "-pubin", "-inkey"]).arg(&pem).arg("-in").arg(&hash).arg("-sigfile").arg(&sig);
        ok_saying(c, "Signature Verified Successfully");
    }
}

/// Ed25519 (`EDDSA`): pkcs11-tool signs and verifies, `openssl` verifies.
#[test]
fn pkcs11_tool_eddsa_sign_verify() {
    need!("pkcs11_tool_eddsa_sign_verify", tool("pkcs11-tool", "opensc"));
    need!("pkcs11_tool_eddsa_sign_verify", openssl_tool());
    let t = Token::new("interop-eddsa");
    t.keypair("EC:edwards25519", "01", "ed");
    let pem = t.public_pem("01");
    let data = t.write("data.bin", &message());
    let sig = t.file("ed.sig");
    let mut c = t.user();
    c.args(["--sign", "--id", "01", "-m", "EDDSA", "-i"]).arg(&data).arg("-o").arg(&sig);
    ok(c);
    assert_eq!(fs::metadata(&sig).unwrap().len(), 64, "Ed25519 signature length");
    p11_verify(&t, owned(&["--id", "01", "-m", "EDDSA"]), &data, &sig, true);
    p11_verify(&t, owned(&["--id", "01", "-m", "EDDSA"]), &altered(&t), &sig, false);
    let mut c = t.openssl();
    c.args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(&pem)
        .arg("-in")
        .arg(&data)
        .arg("-sigfile")
        .arg(&sig);
    ok_saying(c, "Signature Verified Successfully");
}

/// RSA-OAEP (SHA-256, MGF1-SHA-256) and PKCS#1 v1.5: `openssl` encrypts with the exported
/// public key (pkcs11-tool 0.23 encrypts with secret keys only), pkcs11-tool decrypts.
#[test]
fn pkcs11_tool_rsa_decrypt() {
    need!("pkcs11_tool_rsa_decrypt", tool("pkcs11-tool", "opensc"));
    need!("pkcs11_tool_rsa_decrypt", openssl_tool());
    let t = Token::new("interop-oaep");
    t.keypair("rsa:2048", "01", "rsa");
    let pem = t.public_pem("01");
    let secret = t.write("secret.txt", b"Tessera keeps this under RSA-OAEP");
    let (hash, mgf, md) =
        if reference() { ("SHA-1", "MGF1-SHA1", "sha1") } else { ("SHA256", "MGF1-SHA256", "sha256") };
    let cases: [(&str, Vec<String>, Vec<String>); 2] = [
        (
            "RSA-PKCS-OAEP",
            owned(&["--hash-algorithm", hash, "--mgf", mgf]),
            vec![
                "-pkeyopt".into(),
                "rsa_padding_mode:oaep".into(),
                "-pkeyopt".into(),
                format!("rsa_oaep_md:{md}"),
                "-pkeyopt".into(),
                format!("rsa_mgf1_md:{md}"),
            ],
        ),
        ("RSA-PKCS", vec![], owned(&["-pkeyopt", "rsa_padding_mode:pkcs1"])),
    ];
    for (mech, p11args, opts) in cases {
        let enc = t.file(&format!("{mech}.enc"));
        let mut c = t.openssl();
        c.args(["pkeyutl", "-encrypt", "-pubin", "-inkey"])
            .arg(&pem)
            .args(&opts)
            .arg("-in")
            .arg(&secret)
            .arg("-out")
            .arg(&enc);
        ok(c);
        let dec = t.file(&format!("{mech}.dec"));
        let mut c = t.user();
        c.args(["--decrypt", "--id", "01", "-m", mech]).args(&p11args).arg("-i").arg(&enc).arg("-o").arg(&dec);
        ok(c);
        assert_eq!(fs::read(&dec).unwrap(), fs::read(&secret).unwrap(), "{mech}: decryption differs");
    }
}

/// ECDH (`ECDH1-DERIVE`) with a peer key made by `openssl`, on P-256 and P-384: pkcs11-tool's
/// derived secret equals `openssl pkeyutl -derive`'s.
#[test]
fn pkcs11_tool_ecdh_derive() {
    need!("pkcs11_tool_ecdh_derive", tool("pkcs11-tool", "opensc"));
    need!("pkcs11_tool_ecdh_derive", openssl_tool());
    let t = Token::new("interop-ecdh");
    for (curve, openssl_curve, id) in [("EC:prime256v1", "P-256", "01"), ("EC:secp384r1", "P-384", "02")] {
        t.keypair(curve, id, &format!("ecdh-{id}"));
        let token_pem = t.ec_public_pem(id);
        let peer = t.file(&format!("peer-{id}.pem"));
        let mut c = t.openssl();
        c.args(["genpkey", "-algorithm", "EC", "-pkeyopt", &format!("ec_paramgen_curve:{openssl_curve}"), "-out"])
            .arg(&peer);
        ok(c);
        let peer_der = t.file(&format!("peer-{id}.pub.der"));
        let mut c = t.openssl();
        c.args(["pkey", "-pubout", "-outform", "DER", "-in"]).arg(&peer).arg("-out").arg(&peer_der);
        ok(c);
        let ours = t.file(&format!("z-token-{id}.bin"));
        let mut c = t.user();
        c.args(["--derive", "-m", "ECDH1-DERIVE", "--id", id, "-i"]).arg(&peer_der).arg("-o").arg(&ours);
        ok(c);
        let theirs = t.file(&format!("z-openssl-{id}.bin"));
        let mut c = t.openssl();
        c.args(["pkeyutl", "-derive", "-inkey"]).arg(&peer).arg("-peerkey").arg(&token_pem).arg("-out").arg(&theirs);
        ok(c);
        let (a, b) = (fs::read(&ours).unwrap(), fs::read(&theirs).unwrap());
        assert!(!a.is_empty() && a == b, "{curve}: ECDH secrets differ\ntoken:   {a:02x?}\nopenssl: {b:02x?}");
    }
}

/// `pkcs11-tool --derive` writes the ECDH shared secret to a file; an approved-mode library
/// refuses to make that secret readable (SP 800-56A Rev. 3 §5.8), and the tool fails without
/// writing it.
#[test]
fn pkcs11_tool_derive_is_refused_in_the_approved_mode() {
    need!("pkcs11_tool_derive_is_refused_in_the_approved_mode", tool("pkcs11-tool", "opensc"));
    need!("pkcs11_tool_derive_is_refused_in_the_approved_mode", openssl_tool());
    if reference() {
        return;
    }
    let t = Token::approved("interop-ecdh-approved");
    t.keypair("EC:prime256v1", "01", "ecdh-01");
    let peer = t.file("peer.pem");
    let mut c = t.openssl();
    c.args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"]).arg(&peer);
    ok(c);
    let peer_der = t.file("peer.pub.der");
    let mut c = t.openssl();
    c.args(["pkey", "-pubout", "-outform", "DER", "-in"]).arg(&peer).arg("-out").arg(&peer_der);
    ok(c);
    let z = t.file("z.bin");
    let mut c = t.user();
    c.args(["--derive", "-m", "ECDH1-DERIVE", "--id", "01", "-i"]).arg(&peer_der).arg("-o").arg(&z);
    let (out, what) = run(c);
    let text = show(&out);
    assert!(!out.status.success(), "`{what}` succeeded in the approved mode:\n{text}");
    assert!(text.contains("CKR_TEMPLATE_INCONSISTENT"), "{text}");
    assert!(fs::read(&z).map(|v| v.is_empty()).unwrap_or(true), "the shared secret was written");
}

/// AES key wrap (RFC 3394, `AES-KEY-WRAP`): an AES-256 KEK of known value written to the token
/// wraps a generated, extractable AES-128 key; the result equals `openssl enc -id-aes256-wrap`'s,
/// and unwrapping it makes a key with the same value.
#[test]
fn pkcs11_tool_aes_key_wrap() {
    need!("pkcs11_tool_aes_key_wrap", tool("pkcs11-tool", "opensc"));
    need!("pkcs11_tool_aes_key_wrap", openssl_tool());
    let t = Token::new("interop-wrap");
    let kek: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    let kek_file = t.write("kek.bin", &kek);
    let mut c = t.user();
    c.args(["--write-object"]).arg(&kek_file);
    c.args(["--type", "secrkey", "--key-type", "AES:32", "--id", "10", "--label", "kek", "--usage-wrap"]);
    ok(c);
    let mut c = t.user();
    c.args(["--keygen", "--key-type", "AES:16", "--id", "11", "--label", "payload", "--extractable"]);
    ok(c);
    let payload = t.file("payload.bin");
    let mut c = t.user();
    c.args(["--read-object", "--type", "secrkey", "--id", "11", "-o"]).arg(&payload);
    ok(c);
    assert_eq!(fs::read(&payload).unwrap().len(), 16, "generated AES-128 key value");

    let wrapped = t.file("wrapped.bin");
    let mut c = t.user();
    c.args(["--wrap", "-m", "AES-KEY-WRAP", "--id", "10", "--application-id", "11", "-o"]).arg(&wrapped);
    ok(c);
    let expected = t.file("wrapped-openssl.bin");
    let kek_hex: String = kek.iter().map(|b| format!("{b:02x}")).collect();
    let mut c = t.openssl();
    c.args(["enc", "-id-aes256-wrap", "-K", &kek_hex, "-iv", "A6A6A6A6A6A6A6A6", "-in"])
        .arg(&payload)
        .arg("-out")
        .arg(&expected);
    ok(c);
    assert_eq!(
        fs::read(&wrapped).unwrap(),
        fs::read(&expected).unwrap(),
        "AES-KEY-WRAP differs from RFC 3394 (openssl)"
    );

    let mut c = t.user();
    c.args(["--unwrap", "-m", "AES-KEY-WRAP", "--id", "10", "-i"]).arg(&wrapped);
    c.args(["--key-type", "AES:16", "--application-id", "12", "--application-label", "unwrapped", "--extractable"]);
    ok(c);
    let unwrapped = t.file("unwrapped.bin");
    let mut c = t.user();
    // By label: OpenSC 0.23 may give the unwrapped key a garbage CKA_ID (fixed in 0.24 by "Fix
    // pkcs11-tool unwrap / incorrect CKA_ID").
    c.args(["--read-object", "--type", "secrkey", "--label", "unwrapped", "-o"]).arg(&unwrapped);
    ok(c);
    assert_eq!(fs::read(&unwrapped).unwrap(), fs::read(&payload).unwrap(), "unwrapped key value differs");
}

/// Whether a line of `pkcs11-tool --test` reports a problem: a failure, an error, or a mechanism
/// "not supported" — which pkcs11-tool prints, without counting an error, when `C_*Init` of a
/// mechanism the module lists answers `CKR_MECHANISM_INVALID` or `CKR_MECHANISM_PARAM_INVALID`.
/// Not problems: the closing "No errors", `C_SeedRandom` "not supported" (by design: the
/// module's DRBG takes no application seed), and the warning pkcs11-tool prints when its
/// multi-part probe of the first signature mechanism (`CKM_RSA_PKCS`, single-part only by the
/// specification) answers `CKR_FUNCTION_NOT_SUPPORTED`, which pkcs11-tool expects and accepts.
fn self_test_complaint(line: &str) -> bool {
    let l = line.to_lowercase();
    if line.trim() == "No errors"
        || line.contains("seeding (C_SeedRandom) not supported")
        || line.contains("C_SignUpdate failed: rv = CKR_FUNCTION_NOT_SUPPORTED")
    {
        return false;
    }
    l.contains("fail") || l.contains("error") || line.contains("ERR") || l.contains("not supported")
}

/// `pkcs11-tool --test` on a token with an RSA key pair, as is and with `--allow-sw` (which also
/// runs the signature tests on mechanisms without `CKF_HW`): exit status 0 and no line reporting
/// a problem ([`self_test_complaint`]).
#[test]
fn pkcs11_tool_self_test() {
    need!("pkcs11_tool_self_test", tool("pkcs11-tool", "opensc"));
    let t = Token::new("interop-test");
    t.keypair("rsa:2048", "01", "rsa");
    for extra in [&[][..], &["--allow-sw"][..]] {
        let mut c = t.user();
        c.arg("--test").args(extra);
        let text = ok(c);
        let bad: Vec<&str> = text.lines().filter(|l| self_test_complaint(l)).collect();
        assert!(
            bad.is_empty(),
            "pkcs11-tool --test {extra:?} reports:\n{}\n--- whole output ---\n{text}",
            bad.join("\n")
        );
        assert!(text.contains("RSA-PKCS: OK"), "pkcs11-tool --test {extra:?} did not test RSA-PKCS:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. OpenSSL through libp11
// ---------------------------------------------------------------------------------------------

/// Writes `tests/interop/openssl.cnf.in` with libp11's engine and the module under test.
fn openssl_conf(t: &Token, engine: &Path) -> PathBuf {
    let template =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/openssl.cnf.in")).expect("template");
    let text =
        template.replace("@ENGINE@", &engine.to_string_lossy()).replace("@MODULE@", &module_path().to_string_lossy());
    t.write("openssl.cnf", text.as_bytes())
}

/// `openssl req` signing with the token's private key `label` through libp11; `x509` makes a
/// self-signed certificate, else a CSR. Gives the PEM file.
fn engine_req(t: &Token, conf: &Path, label: &str, x509: bool) -> PathBuf {
    let out = t.file(&format!("{label}.{}", if x509 { "crt" } else { "csr" }));
    let uri = format!("pkcs11:token={};object={label};type=private?pin-value={USER_PIN}", t.label);
    let mut c = t.openssl();
    c.env("OPENSSL_CONF", conf).args(["req", "-new"]);
    if x509 {
        c.args(["-x509", "-days", "2"]);
    }
    c.args([
        "-sha256",
        "-engine",
        "pkcs11",
        "-keyform",
        "engine",
        "-key",
        &uri,
        "-subj",
        &format!("/CN=Tessera {label}"),
    ]);
    c.arg("-out").arg(&out);
    ok(c);
    out
}

/// The tokens a test that must pass in both modes runs on: one in the suite's mode, and (against
/// Tessera) one of an approved-mode library.
fn both_modes(label: &str) -> Vec<Token> {
    let mut v = vec![Token::new(label)];
    if !reference() {
        v.push(Token::approved(&format!("{label}-approved")));
    }
    v
}

/// A CSR and a self-signed certificate made by `openssl req` with a token RSA key and a token EC
/// key (addressed by `pkcs11:` URIs with `pin-value`) through libp11, and `openssl dgst -sign`
/// with each; `openssl` accepts all of them, and their public keys are the token's. In both
/// modes: libp11 signs with RSA through `CKM_RSA_PKCS` over a DigestInfo it builds, which the
/// approved mode allows for an approved hash.
#[test]
fn openssl_libp11_csr_and_certificate() {
    need!("openssl_libp11_csr_and_certificate", tool("pkcs11-tool", "opensc"));
    let engine = need!("openssl_libp11_csr_and_certificate", libp11_engine());
    for t in both_modes("interop-openssl") {
        libp11_signs(&t, &engine);
    }
}

fn libp11_signs(t: &Token, engine: &Path) {
    t.keypair("rsa:2048", "01", "ossl-rsa");
    t.keypair("EC:prime256v1", "02", "ossl-ec");
    let conf = openssl_conf(t, engine);
    for (label, id) in [("ossl-rsa", "01"), ("ossl-ec", "02")] {
        let pem = if label == "ossl-ec" { t.ec_public_pem(id) } else { t.public_pem(id) };
        let token_pem = fs::read_to_string(pem).unwrap();

        let csr = engine_req(t, &conf, label, false);
        let mut c = t.openssl();
        c.args(["req", "-verify", "-noout", "-in"]).arg(&csr);
        ok_saying(c, "verify OK");
        let mut c = t.openssl();
        c.args(["req", "-pubkey", "-noout", "-in"]).arg(&csr);
        assert_eq!(ok(c), token_pem, "{label}: the CSR's public key is not the token's");

        let cert = engine_req(t, &conf, label, true);
        let mut c = t.openssl();
        c.arg("verify").arg("-CAfile").arg(&cert).arg(&cert);
        ok_saying(c, ": OK");
        let mut c = t.openssl();
        c.args(["x509", "-pubkey", "-noout", "-in"]).arg(&cert);
        assert_eq!(ok(c), token_pem, "{label}: the certificate's public key is not the token's");

        // openssl dgst -sign through the engine; verified by openssl with the token's public key.
        let data = t.write("dgst.bin", &message());
        let sig = t.file(&format!("{label}.sig"));
        let uri = format!("pkcs11:token={};object={label};type=private?pin-value={USER_PIN}", t.label);
        let mut c = t.openssl();
        c.env("OPENSSL_CONF", &conf).args(["dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine", "-sign"]);
        c.arg(&uri).arg("-out").arg(&sig).arg(&data);
        ok(c);
        let pem = t.write(&format!("{label}.pub.pem"), token_pem.as_bytes());
        let mut c = t.openssl();
        c.args(["dgst", "-sha256", "-verify"]).arg(&pem).arg("-signature").arg(&sig).arg(&data);
        ok_saying(c, "Verified OK");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Java SunPKCS11
// ---------------------------------------------------------------------------------------------

/// Java's SunPKCS11 provider on a token holding an RSA and an EC key pair, each with a
/// self-signed certificate of the same CKA_ID (made through libp11, written with pkcs11-tool):
/// `keytool -list` shows two private key entries, and `tests/interop/TesseraSign.java` signs and
/// verifies with them and with key pairs it generates through the provider.
#[test]
fn java_sunpkcs11() {
    need!("java_sunpkcs11", tool("pkcs11-tool", "opensc"));
    for t in ["java", "javac", "keytool"] {
        need!("java_sunpkcs11", tool(t, "openjdk-17-jdk-headless"));
    }
    let engine = need!("java_sunpkcs11", libp11_engine());
    // In both modes: SHA256withRSA and SHA256withECDSA are approved signatures.
    for t in both_modes("interop-java") {
        sunpkcs11_signs(&t, &engine);
    }
}

fn sunpkcs11_signs(t: &Token, engine: &Path) {
    t.keypair("rsa:2048", "01", "jrsa");
    t.keypair("EC:prime256v1", "02", "jec");
    let conf = openssl_conf(t, engine);
    for (label, id) in [("jrsa", "01"), ("jec", "02")] {
        let pem = engine_req(t, &conf, label, true);
        let der = t.file(&format!("{label}.der"));
        let mut c = t.openssl();
        c.args(["x509", "-outform", "DER", "-in"]).arg(&pem).arg("-out").arg(&der);
        ok(c);
        let mut c = t.user();
        c.arg("--write-object").arg(&der).args(["--type", "cert", "--id", id, "--label", label]);
        ok(c);
    }
    let cfg = t.write(
        "sunpkcs11.cfg",
        format!("name = Tessera\nlibrary = {}\nslot = {}\n", module_path().display(), t.slot_id()).as_bytes(),
    );

    let mut c = t.cmd("keytool");
    c.args(["-list", "-storetype", "PKCS11", "-providerClass", "sun.security.pkcs11.SunPKCS11", "-providerArg"]);
    c.arg(&cfg).args(["-storepass", USER_PIN]);
    let listing = ok(c);
    for label in ["jrsa", "jec"] {
        assert!(listing.contains(&format!("{label}, PrivateKeyEntry")), "keytool -list: no entry {label}\n{listing}");
    }

    let classes = t.file("classes");
    let mut c = t.cmd("javac");
    c.arg("-d").arg(&classes).arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/TesseraSign.java"));
    ok(c);
    let mut c = t.cmd("java");
    c.arg("-cp").arg(&classes).arg("TesseraSign").arg(&cfg).arg(USER_PIN);
    let text = ok_saying(c, "PASS");
    assert!(text.contains("OK 2 private key entries"), "TesseraSign:\n{text}");
}

// ---------------------------------------------------------------------------------------------
// 4. PyKCS11
// ---------------------------------------------------------------------------------------------

/// `tests/interop/pykcs11_check.py`: RSA-OAEP encryption and decryption (SHA-256, with and without
/// a label) and ECDSA signatures, with key pairs it generates through PyKCS11.
#[test]
fn pykcs11_oaep_and_ecdsa() {
    let python = need!("pykcs11_oaep_and_ecdsa", pykcs11_python());
    let t = Token::new("interop-python");
    let mut c = t.cmd(&python);
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/pykcs11_check.py"));
    c.arg(module_path()).args([&t.label, USER_PIN]);
    if reference() {
        c.arg("--reference");
    }
    ok_saying(c, "PASS");
}

// ---------------------------------------------------------------------------------------------
// 5. p11-kit and GnuTLS
// ---------------------------------------------------------------------------------------------

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// p11-kit reads user module configuration only for non-root users; when the tests run as root,
/// the p11-kit commands run as `nobody`, with the token store handed over to it.
fn as_p11kit_user(t: &Token, home: &Path, program: &str, args: &[&str]) -> Command {
    let mut c;
    if running_as_root() {
        let mut chown = Command::new("chown");
        chown.args(["-R", "65534:65534"]).arg(t.env.dir.path());
        ok(chown);
        c = t.cmd("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", program]);
    } else {
        c = t.cmd(program);
    }
    c.args(args).env("HOME", home).env_remove("XDG_CONFIG_HOME").env("GNUTLS_PIN", USER_PIN);
    c
}

/// The module registered with p11-kit by a `tessera.module` file in the user's configuration:
/// `p11-kit list-modules` shows it and its token, and GnuTLS's `p11tool` — through p11-kit and with
/// `--provider` — lists the token's objects and tests signing with its key.
#[test]
fn p11kit_registration_and_p11tool() {
    need!("p11kit_registration_and_p11tool", tool("pkcs11-tool", "opensc"));
    need!("p11kit_registration_and_p11tool", tool("p11-kit", "p11-kit"));
    need!("p11kit_registration_and_p11tool", tool("p11tool", "gnutls-bin"));
    need!("p11kit_registration_and_p11tool", openssl_tool());
    if running_as_root() {
        need!("p11kit_registration_and_p11tool", tool("setpriv", "util-linux"));
    }
    let t = Token::new("interop-p11kit");
    // Objects that need no mechanism: a data object and a certificate.
    let data = t.write("note.txt", b"registered through p11-kit");
    let mut c = t.user();
    c.arg("--write-object").arg(&data).args(["--type", "data", "--label", "p11kit-data"]);
    ok(c);
    let (key, cert) = (t.file("sw.key"), t.file("sw.crt"));
    let mut c = t.openssl();
    c.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"]);
    c.args(["-subj", "/CN=p11-kit", "-outform", "DER", "-keyout"]).arg(&key).arg("-out").arg(&cert);
    ok(c);
    let mut c = t.user();
    c.arg("--write-object").arg(&cert).args(["--type", "cert", "--id", "03", "--label", "p11kit-cert"]);
    ok(c);

    let home = t.file("home");
    fs::create_dir_all(home.join(".config/pkcs11/modules")).unwrap();
    fs::write(home.join(".config/pkcs11/modules/tessera.module"), format!("module: {}\n", module_path().display()))
        .unwrap();

    let listing = ok(as_p11kit_user(&t, &home, "p11-kit", &["list-modules"]));
    let ours = format!("tessera: {}", module_path().display());
    assert!(listing.contains(&ours), "p11-kit list-modules does not show {ours:?}\n{listing}");
    assert!(
        listing.contains(&format!("token: {}\n", t.label)),
        "p11-kit list-modules: no token {}\n{listing}",
        t.label
    );

    let uri = format!("pkcs11:token={}", t.label);
    ok_saying(as_p11kit_user(&t, &home, "p11tool", &["--list-tokens"]), &format!("Label: {}", t.label));
    let text = ok(as_p11kit_user(&t, &home, "p11tool", &["--login", "--list-all", &uri]));
    for label in ["p11kit-data", "p11kit-cert"] {
        assert!(text.contains(&format!("Label: {label}")), "p11tool via p11-kit: no {label}\n{text}");
    }

    // Keys: generated with pkcs11-tool, listed and used by p11tool --provider.
    t.keypair("EC:prime256v1", "01", "p11kit-ec");
    t.keypair("rsa:2048", "02", "p11kit-rsa");
    let p11tool = |args: &[&str]| {
        let mut c = t.cmd("p11tool");
        c.arg("--provider").arg(module_path()).args(args).env("GNUTLS_PIN", USER_PIN);
        c
    };
    let text = ok(p11tool(&["--login", "--list-all", &uri]));
    for needle in
        ["Label: p11kit-data", "Label: p11kit-cert", "Private key (EC/ECDSA-SECP256R1)", "Private key (RSA-2048)"]
    {
        assert!(text.contains(needle), "p11tool --provider --list-all: no {needle:?}\n{text}");
    }
    for (label, alg) in [("p11kit-ec", "ECDSA-SHA256"), ("p11kit-rsa", "RSA-SHA256")] {
        let key = format!("{uri};object={label};type=private");
        let text = ok_saying(p11tool(&["--login", "--test-sign", &key]), &format!("Signing using {alg}... ok"));
        assert!(
            text.contains("Verifying against public key in the token... ok"),
            "p11tool --test-sign {label}:\n{text}"
        );
        assert!(!text.contains("failed"), "p11tool --test-sign {label}:\n{text}");
    }
}

/// A running `p11-kit server`, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The token exported by `p11-kit server` and used through p11-kit's client module: pkcs11-tool
/// sees the token, and RSA and ECDSA signatures made through the client verify directly and with
/// `openssl`; the server stops on SIGTERM.
#[test]
fn p11kit_server_remoting() {
    need!("p11kit_server_remoting", tool("pkcs11-tool", "opensc"));
    need!("p11kit_server_remoting", tool("p11-kit", "p11-kit"));
    need!("p11kit_server_remoting", openssl_tool());
    let client = need!("p11kit_server_remoting", p11kit_client());
    let t = Token::new("interop-remote");
    t.keypair("rsa:2048", "01", "remote-rsa");
    t.keypair("EC:prime256v1", "02", "remote-ec");
    let runtime = t.file("run");
    fs::create_dir_all(&runtime).unwrap();

    let stderr = fs::File::create(t.file("server.err")).unwrap();
    let mut c = t.cmd("p11-kit");
    c.args(["server", "--foreground", "--sh", "--provider"])
        .arg(module_path())
        .arg(format!("pkcs11:token={}", t.label));
    c.env("XDG_RUNTIME_DIR", &runtime).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
    let what = describe(&c);
    let mut server = Server { child: c.spawn().unwrap_or_else(|e| panic!("cannot run `{what}`: {e}")) };
    let mut address = None;
    let mut said = String::new();
    for line in BufReader::new(server.child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        said.push_str(&line);
        said.push('\n');
        if let Some(rest) = line.strip_prefix("P11_KIT_SERVER_ADDRESS=") {
            address = Some(rest.split(';').next().unwrap().to_string());
            break;
        }
    }
    let Some(address) = address else {
        server.stop();
        panic!(
            "`{what}` gave no address\n{said}\n--- stderr ---\n{}",
            fs::read_to_string(t.file("server.err")).unwrap()
        );
    };

    let remote = |args: &[&str]| {
        let mut c = t.p11_via(&client);
        c.args(["--login", "--pin", USER_PIN]).args(args).env("P11_KIT_SERVER_ADDRESS", &address);
        c
    };
    let mut c = t.cmd("pkcs11-tool");
    c.arg("--module").arg(&client).arg("--list-slots").env("P11_KIT_SERVER_ADDRESS", &address);
    ok_saying(c, &format!("token label        : {}", t.label));

    let data = t.write("data.bin", &message());
    let rsa_sig = t.file("remote-rsa.sig");
    let mut c = remote(&["--sign", "--id", "01", "-m", "SHA256-RSA-PKCS"]);
    c.arg("-i").arg(&data).arg("-o").arg(&rsa_sig);
    ok(c);
    let mut c = remote(&["--verify", "--id", "01", "-m", "SHA256-RSA-PKCS"]);
    c.arg("-i").arg(&data).arg("--signature-file").arg(&rsa_sig);
    ok_saying(c, "Signature is valid");
    p11_verify(&t, owned(&["--id", "01", "-m", "SHA256-RSA-PKCS"]), &data, &rsa_sig, true);
    let mut c = t.openssl();
    c.args(["dgst", "-sha256", "-verify"]).arg(t.public_pem("01")).arg("-signature").arg(&rsa_sig).arg(&data);
    ok_saying(c, "Verified OK");

    // p11-kit 0.24 forwards only the mechanisms its RPC knows: no CKM_ECDSA_SHA* (the client's
    // C_GetMechanismList leaves them out). ECDSA-SHA256 is used when the client lists it.
    let mut c = t.p11_via(&client);
    c.arg("--list-mechanisms").env("P11_KIT_SERVER_ADDRESS", &address);
    let hashed = ok(c).contains("ECDSA-SHA256");
    let (mech, input) = if !hashed {
        let hash = t.file("data.sha256");
        let mut c = t.openssl();
        c.args(["dgst", "-sha256", "-binary", "-out"]).arg(&hash).arg(&data);
        ok(c);
        ("ECDSA", hash)
    } else {
        ("ECDSA-SHA256", data.clone())
    };
    let ec_sig = t.file("remote-ec.sig");
    let mut c = remote(&["--sign", "--id", "02", "-m", mech, "--signature-format", "openssl"]);
    c.arg("-i").arg(&input).arg("-o").arg(&ec_sig);
    ok(c);
    p11_verify(&t, owned(&["--id", "02", "-m", mech, "--signature-format", "openssl"]), &input, &ec_sig, true);
    let mut c = t.openssl();
    c.args(["pkeyutl", "-verify", "-pubin", "-inkey"]).arg(t.ec_public_pem("02"));
    if hashed {
        c.args(["-rawin", "-digest", "sha256"]);
    }
    c.arg("-in").arg(&input).arg("-sigfile").arg(&ec_sig);
    ok_saying(c, "Signature Verified Successfully");

    let status = server.stop();
    assert!(status.is_some(), "p11-kit server did not stop on SIGTERM");
}
