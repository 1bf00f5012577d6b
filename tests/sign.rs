//! `tessera-sign` end to end: keys generated in a token through the library under test, files
//! signed there, public keys exported, signatures checked by `tessera-sign verify` (software, no
//! token) and by independent implementations (OpenSSL for ECDSA, OpenSSL's ML-DSA through Python's
//! `cryptography`, PQClean's ML-DSA through `pqcrypto-mldsa`, the Wycheproof ML-DSA verification
//! vectors, the IETF composite-signature draft's test vector). Every failure the tool must notice is tried: a tampered file, a wrong
//! key, a wrong context, a truncated signature, a composite signature with one half replaced.
//!
//! The tool runs in child processes on a private token store, in the mode of the suite
//! (`TESSERA_MODE` is passed on). An algorithm the token does not offer (the mechanism is not in
//! its list) is skipped with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tessera_tests::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `tessera-sign`: `$TESSERA_SIGN`, else the newest build beside the library under test or in
/// `target/`.
fn sign_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TESSERA_SIGN") {
        return PathBuf::from(p);
    }
    let beside = module_path().with_file_name("tessera-sign");
    if beside.exists() {
        return beside;
    }
    ["release", "debug"]
        .iter()
        .map(|p| target_dir().join(p).join("tessera-sign"))
        .filter(|p| p.exists())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("tessera-sign is not built: run `cargo build --release -p tessera-pkcs11` first")
}

/// A private store with one token, "signer", whose user PIN is [`USER_PIN`].
struct Fx {
    env: Env,
}

impl Fx {
    fn new() -> Fx {
        let env = Env::new("");
        let mut c = env.command(util_path());
        c.arg("--module").arg(module_path());
        c.args(["--init-token", "--free", "--label", "signer", "--so-pin", SO_PIN, "--pin", USER_PIN]);
        ok(c);
        Fx { env }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.env.dir.path().join(name)
    }

    /// `tessera-sign` on this store and the library under test, the PIN in `TESSERA_PIN`.
    fn ts(&self) -> Command {
        let mut c = self.env.command(sign_bin());
        c.arg("--module").arg(module_path()).env("TESSERA_PIN", USER_PIN);
        c
    }

    fn ts_args(&self, args: &[&str]) -> Command {
        let mut c = self.ts();
        c.args(args);
        c
    }

    /// Generates a key pair; `false` (after saying so) when the token does not offer the algorithm.
    fn keygen(&self, label: &str, alg: &str) -> bool {
        let (out, what) = run(self.ts_args(&["keygen", "--token", "signer", "--label", label, "--alg", alg]));
        if !out.status.success() && stderr(&out).contains("the token does not offer") {
            println!("SKIP {alg}: {}", stderr(&out).trim());
            return false;
        }
        assert!(out.status.success(), "`{what}` failed\n{}", show(&out));
        true
    }

    /// Writes `data` to a file of the store's directory.
    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).expect("write file");
        p
    }

    fn sign(&self, file: &Path, out: &Path, extra: &[&str]) -> String {
        let mut c = self.ts();
        c.arg("sign").arg(file).arg("-o").arg(out).args(["--token", "signer"]).args(extra);
        let (o, what) = run(c);
        assert!(o.status.success(), "`{what}` failed\n{}", show(&o));
        stderr(&o)
    }

    fn export(&self, name: &str, out: &Path, extra: &[&str]) {
        let mut c = self.ts();
        c.args(["export-key", name, "--token", "signer"]).arg("-o").arg(out).args(extra);
        ok(c);
    }
}

fn run(mut c: Command) -> (Output, String) {
    let what = describe(&c);
    let out = c.output().unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    (out, what)
}

fn ok(c: Command) -> String {
    let (out, what) = run(c);
    assert!(out.status.success(), "`{what}` failed\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tessera-sign verify` with no token store and no library, expecting the context `ctx`:
/// `Ok(stdout)` or `Err(stderr)`.
fn verify_ctx(file: &Path, sig: &Path, key: &Path, ctx: &[u8]) -> Result<String, String> {
    let mut c = Command::new(sign_bin());
    c.arg("verify").arg(file).arg(sig).arg("--pubkey").arg(key);
    if !ctx.is_empty() {
        c.arg("--context-hex").arg(hex(ctx));
    }
    c.env_remove("TESSERA_CONF").env("TESSERA_MODULE", "/nonexistent/libtessera_pkcs11.so");
    let (out, _) = run(c);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        assert_eq!(out.status.code(), Some(1), "verify must exit with 1 on a mismatch\n{}", show(&out));
        Err(stderr(&out))
    }
}

/// [`verify_ctx`] expecting the context the signature file itself carries (so that what is
/// checked is the signature, not the context's match).
fn verify(file: &Path, sig: &Path, key: &Path) -> Result<String, String> {
    let ctx = std::fs::read(sig).ok().and_then(|b| parse_sig(&b)).map(|f| f.ctx).unwrap_or_default();
    verify_ctx(file, sig, key, &ctx)
}

fn verifies(file: &Path, sig: &Path, key: &Path) -> String {
    verify(file, sig, key).unwrap_or_else(|e| {
        panic!("{} with {} must verify under {}: {e}", file.display(), sig.display(), key.display())
    })
}

fn rejects(file: &Path, sig: &Path, key: &Path, why: &str) -> String {
    match verify(file, sig, key) {
        Ok(out) => panic!("{why}: verify accepted it: {out}"),
        Err(e) => e,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// The signature file, read and written here from its documented DER (docs/post-quantum.md, "tessera-sign"),
// independently of the tool's own code.

/// One DER element: its tag, the whole element, its content.
type Element<'a> = (u8, &'a [u8], &'a [u8]);

/// The first DER element of `b`, and what follows it.
fn tlv(b: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let tag = *b.first()?;
    let (len, hdr) = match *b.get(1)? {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let k = (n & 0x7f) as usize;
            (b.get(2..2 + k)?.iter().fold(0usize, |a, x| a << 8 | *x as usize), 2 + k)
        }
    };
    Some(((tag, b.get(..hdr + len)?, b.get(hdr..hdr + len)?), &b[hdr + len..]))
}

#[derive(Clone, Debug)]
struct SigFile {
    /// The whole AlgorithmIdentifier element.
    alg: Vec<u8>,
    /// The whole [0] element, if present.
    pre_hash: Option<Vec<u8>>,
    ctx: Vec<u8>,
    sig: Vec<u8>,
}

fn base64(s: &str) -> Vec<u8> {
    use base64ct::Encoding;
    base64ct::Base64::decode_vec(s).expect("base64")
}

/// A signature file (PEM or DER) as documented, `None` if it is not one.
fn parse_sig(bytes: &[u8]) -> Option<SigFile> {
    use base64ct::Encoding;
    let owned;
    let der: &[u8] = if bytes.first() == Some(&0x30) {
        bytes
    } else {
        let text = std::str::from_utf8(bytes).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() < 3
            || lines[0] != "-----BEGIN TESSERA SIGNATURE-----"
            || lines[lines.len() - 1] != "-----END TESSERA SIGNATURE-----"
        {
            return None;
        }
        owned = base64ct::Base64::decode_vec(&lines[1..lines.len() - 1].concat()).ok()?;
        &owned
    };
    let ((tag, _, body), rest) = tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let ((t, _, v), body) = tlv(body)?;
    if (t, v) != (0x02, &[1u8][..]) {
        return None;
    }
    let ((t, alg, _), mut body) = tlv(body)?;
    if t != 0x30 {
        return None;
    }
    let mut pre_hash = None;
    if body.first() == Some(&0xa0) {
        let ((_, whole, _), b) = tlv(body)?;
        pre_hash = Some(whole.to_vec());
        body = b;
    }
    let ((t, _, ctx), body) = tlv(body)?;
    let ((t2, _, sig), body) = tlv(body)?;
    if t != 0x04 || t2 != 0x04 || !body.is_empty() {
        return None;
    }
    Some(SigFile { alg: alg.to_vec(), pre_hash, ctx: ctx.to_vec(), sig: sig.to_vec() })
}

/// The signature file `sign` wrote: PEM, and the content documented.
fn read_sig(p: &Path) -> SigFile {
    let text = std::fs::read_to_string(p).expect("read signature file");
    assert!(text.starts_with("-----BEGIN TESSERA SIGNATURE-----\n"), "{text}");
    parse_sig(text.as_bytes()).unwrap_or_else(|| panic!("not a signature file as documented:\n{text}"))
}

/// Writes the signature file as DER (which `verify` takes as well as PEM).
fn write_sig(p: &Path, f: &SigFile) {
    let mut body = der(0x02, &[1]);
    body.extend_from_slice(&f.alg);
    if let Some(h) = &f.pre_hash {
        body.extend_from_slice(h);
    }
    body.extend(der(0x04, &f.ctx));
    body.extend(der(0x04, &f.sig));
    std::fs::write(p, der(0x30, &body)).expect("write signature file");
}

/// DER of an object identifier given in dotted form.
fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut bytes = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            bytes.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        bytes.reverse();
        body.extend(bytes);
    }
    der(0x06, &body)
}

fn alg_id(dotted: &str) -> Vec<u8> {
    der(0x30, &oid(dotted))
}

/// A SubjectPublicKeyInfo (DER) of a key algorithm without parameters.
fn spki(dotted: &str, key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    let mut body = alg_id(dotted);
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// Data of `len` bytes that is not all alike.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn flip_last(p: &Path) {
    let mut d = std::fs::read(p).unwrap();
    *d.last_mut().unwrap() ^= 1;
    std::fs::write(p, d).unwrap();
}

const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA512: &str = "2.16.840.1.101.3.4.2.3";
const SHAKE128: &str = "2.16.840.1.101.3.4.2.11";
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const COMPOSITE: &str = "1.3.6.1.5.5.7.6.45";

fn nist(arc: u32) -> String {
    format!("2.16.840.1.101.3.4.3.{arc}")
}

fn pre_hash(dotted: &str) -> Option<Vec<u8>> {
    Some(der(0xa0, &alg_id(dotted)))
}

/// The raw key of a PEM SubjectPublicKeyInfo, with its algorithm element.
fn spki_key(pem: &Path) -> (Vec<u8>, Vec<u8>) {
    let text = std::fs::read_to_string(pem).expect("read public key");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"-----BEGIN PUBLIC KEY-----"), "{text}");
    let der = base64(&lines[1..lines.len() - 1].concat());
    let ((_, _, body), _) = tlv(&der).unwrap();
    let ((_, alg, _), body) = tlv(body).unwrap();
    let ((t, _, bits), _) = tlv(body).unwrap();
    assert!(t == 0x03 && bits[0] == 0);
    (alg.to_vec(), bits[1..].to_vec())
}

// ---------------------------------------------------------------------------------------------
// ECDSA P-256 (offered by every build, in both modes)
// ---------------------------------------------------------------------------------------------

#[test]
fn ecdsa_p256_round_trip_and_every_mismatch() {
    let fx = Fx::new();
    assert!(fx.keygen("ec", "ecdsa-p256"), "ECDSA P-256 must be offered");
    assert!(fx.keygen("ec2", "ecdsa-p256"));
    let msg = pattern(100_000);
    let data = fx.file("data", &msg);
    let sig = fx.path("data.sig");
    let said = fx.sign(&data, &sig, &["--key", "ec"]);
    assert!(said.contains("ECDSA P-256 with SHA-256 (streamed)"), "{said}");
    let (pem, pem2) = (fx.path("ec.pem"), fx.path("ec2.pem"));
    fx.export("ec", &pem, &[]);
    fx.export("ec2", &pem2, &[]);
    assert!(verifies(&data, &sig, &pem).contains("Signature OK: ECDSA P-256"));

    // The file as documented: ecdsa-with-SHA256, SHA-256 named as the pre-hash, no context, a DER
    // ECDSA-Sig-Value; and the SPKI an id-ecPublicKey on prime256v1 with an uncompressed point.
    let f = read_sig(&sig);
    assert_eq!(f.alg, alg_id(ECDSA_WITH_SHA256));
    assert_eq!(f.pre_hash, pre_hash(SHA256));
    assert!(f.ctx.is_empty());
    assert_eq!(f.sig[0], 0x30);
    let (alg, point) = spki_key(&pem);
    assert_eq!(alg, der(0x30, &[oid("1.2.840.10045.2.1"), oid("1.2.840.10045.3.1.7")].concat()));
    assert_eq!((point.len(), point[0]), (65, 4));
    // The same content as DER verifies too (a check of this test's writer).
    let same = fx.path("same.sig");
    write_sig(&same, &f);
    verifies(&data, &same, &pem);

    // A tampered file, a wrong key.
    let mut bad = msg.clone();
    bad[5000] ^= 0x10;
    let tampered = fx.file("tampered", &bad);
    rejects(&tampered, &sig, &pem, "a tampered file");
    rejects(&data, &sig, &pem2, "another key's signature");
    // A truncated signature, a truncated signature file, a signature with a bit flipped.
    let cut = fx.path("cut.sig");
    let mut t = f.clone();
    t.sig.truncate(t.sig.len() - 1);
    write_sig(&cut, &t);
    rejects(&data, &cut, &pem, "a truncated signature");
    let text = std::fs::read_to_string(&sig).unwrap();
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let e = rejects(&data, &cut, &pem, "half a signature file");
    assert!(e.contains("not a Tessera signature file"), "{e}");
    let mut t = f.clone();
    t.sig[10] ^= 1;
    write_sig(&cut, &t);
    rejects(&data, &cut, &pem, "a flipped bit");
    // A context added, the pre-hash field changed or dropped, another algorithm named.
    let mut t = f.clone();
    t.ctx = b"x".to_vec();
    write_sig(&cut, &t);
    rejects(&data, &cut, &pem, "an ECDSA signature with a context");
    let mut t = f.clone();
    t.pre_hash = pre_hash(SHA512);
    write_sig(&cut, &t);
    rejects(&data, &cut, &pem, "a pre-hash field that does not match");
    t.pre_hash = None;
    write_sig(&cut, &t);
    rejects(&data, &cut, &pem, "no pre-hash field");
    let mut t = f.clone();
    t.alg = alg_id(&nist(18));
    t.pre_hash = None;
    write_sig(&cut, &t);
    let e = rejects(&data, &cut, &pem, "an ML-DSA algorithm with an EC key");
    assert!(e.contains("the public key is ECDSA P-256"), "{e}");

    // ECDSA takes no context, and no --pure.
    for extra in [&["--context", "x"][..], &["--pure"][..]] {
        let mut c = fx.ts_args(&["sign", "--token", "signer", "--key", "ec", "-o"]);
        c.arg(fx.path("no.sig")).arg(&data).args(extra);
        let (o, what) = run(c);
        assert!(!o.status.success(), "`{what}` must fail\n{}", show(&o));
    }

    // OpenSSL, an independent implementation, verifies the signature with the exported key.
    if have_or_skip("openssl", "the OpenSSL cross-check of ECDSA") {
        let raw = fx.file("data.sig.der", &f.sig);
        let o = openssl_dgst_verify(&["-sha256"], &pem, &raw, &data);
        assert!(o.status.success(), "openssl dgst -verify\n{}", show(&o));
    }
}

// ---------------------------------------------------------------------------------------------
// ML-DSA through the token
// ---------------------------------------------------------------------------------------------

fn pqclean_verify(set: &str, pk: &[u8], msg: &[u8], ctx: &[u8], sig: &[u8]) -> bool {
    use pqcrypto_traits::sign::{DetachedSignature, PublicKey};
    macro_rules! with {
        ($m:ident) => {{
            let (Ok(pk), Ok(sig)) =
                (pqcrypto_mldsa::$m::PublicKey::from_bytes(pk), pqcrypto_mldsa::$m::DetachedSignature::from_bytes(sig))
            else {
                return false;
            };
            pqcrypto_mldsa::$m::verify_detached_signature_ctx(&sig, msg, ctx, &pk).is_ok()
        }};
    }
    match set {
        "ml-dsa-44" => with!(mldsa44),
        "ml-dsa-65" => with!(mldsa65),
        _ => with!(mldsa87),
    }
}

#[test]
fn ml_dsa_round_trips_and_every_mismatch() {
    let fx = Fx::new();
    let mut previous: Option<PathBuf> = None;
    for (i, set) in ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"].into_iter().enumerate() {
        if !fx.keygen(set, set) {
            continue;
        }
        let msg = pattern(10_000 + i);
        let data = fx.file(&format!("{set}.dat"), &msg);
        let (sig, pem) = (fx.path(&format!("{set}.sig")), fx.path(&format!("{set}.pem")));
        // With a context; a token whose policy takes none (the approved mode serves contexts
        // outside aws-lc's module) refuses it, and the tool says why. Then without one.
        let mut c = fx.ts_args(&["sign", "--token", "signer", "--key", set, "--context", "release-2026", "-o"]);
        c.arg(&sig).arg(&data);
        let (o, what) = run(c);
        let ctx: &[u8] = if o.status.success() {
            b"release-2026"
        } else {
            assert!(approved_mode(), "`{what}` failed outside the approved mode\n{}", show(&o));
            assert!(stderr(&o).contains("refuses") && stderr(&o).contains("context"), "{}", show(&o));
            println!("approved mode: {set} with a context refused, as the policy says; signing without one");
            let said = fx.sign(&data, &sig, &["--key", set]);
            assert!(said.contains("(pure), the whole file in one part"), "a small file is signed pure: {said}");
            b""
        };
        fx.export(set, &pem, &[]);
        let out = verifies(&data, &sig, &pem);
        assert!(out.contains("pure"), "{out}");
        let other_ctx: &[u8] = if ctx.is_empty() { b"x" } else { b"release-2027" };
        for expected in [other_ctx, b""] {
            if expected != ctx {
                let e = verify_ctx(&data, &sig, &pem, expected).unwrap_err();
                assert!(e.contains("was made with the context"), "{e}");
            }
        }
        let f = read_sig(&sig);
        assert_eq!(
            (f.alg.clone(), f.pre_hash.clone(), f.ctx.clone()),
            (alg_id(&nist(17 + i as u32)), None, ctx.to_vec())
        );
        let (alg, pk) = spki_key(&pem);
        assert_eq!(alg, alg_id(&nist(17 + i as u32)), "the SPKI names id-{set}");
        assert_eq!(pk.len(), [1312, 1952, 2592][i]);
        // PQClean's ML-DSA, an independent implementation, verifies it with the exported key.
        assert!(pqclean_verify(set, &pk, &msg, ctx, &f.sig), "PQClean rejects the {set} signature");
        assert!(!pqclean_verify(set, &pk, &msg, other_ctx, &f.sig));

        let bad = fx.file("tampered", &[&msg[..msg.len() - 1], &[msg[msg.len() - 1] ^ 0x80]].concat());
        rejects(&bad, &sig, &pem, "a tampered file");
        let alt = fx.path("alt.sig");
        let other = other_ctx.to_vec();
        for (what, change) in [
            ("a wrong context", Box::new(move |t: &mut SigFile| t.ctx = other.clone()) as Box<dyn Fn(&mut SigFile)>),
            ("a truncated signature", Box::new(|t: &mut SigFile| t.sig.truncate(t.sig.len() - 1))),
            ("a flipped bit", Box::new(|t: &mut SigFile| t.sig[40] ^= 4)),
            (
                "a pure signature named pre-hashed",
                Box::new(move |t: &mut SigFile| {
                    t.alg = alg_id(&nist(32 + i as u32));
                    t.pre_hash = pre_hash(SHA512);
                }),
            ),
        ] {
            let mut t = f.clone();
            change(&mut t);
            write_sig(&alt, &t);
            rejects(&data, &alt, &pem, what);
        }
        if let Some(other) = &previous {
            let e = rejects(&data, &sig, other, "another parameter set's key");
            assert!(e.contains("the public key is"), "{e}");
        }
        previous = Some(pem.clone());

        // The pre-hashed variant, chosen by hand (a large file takes it by itself: see below).
        let mut c = fx.ts_args(&["sign", "--token", "signer", "--key", set, "--prehash", "-o"]);
        c.arg(&alt).arg(&data);
        let (o, what) = run(c);
        if !o.status.success() {
            assert!(approved_mode(), "`{what}` failed outside the approved mode\n{}", show(&o));
            assert!(stderr(&o).contains("does not offer CKM_HASH_ML_DSA_SHA512"), "{}", show(&o));
            println!("approved mode: HashML-DSA not offered, as the policy says");
            continue;
        }
        assert!(stderr(&o).contains("with SHA-512 (streamed)"), "{}", show(&o));
        let h = read_sig(&alt);
        assert_eq!((h.alg.clone(), h.pre_hash.clone()), (alg_id(&nist(32 + i as u32)), pre_hash(SHA512)));
        verifies(&data, &alt, &pem);
        rejects(&bad, &alt, &pem, "a tampered file (pre-hashed)");
        let mut t = h.clone();
        t.alg = alg_id(&nist(17 + i as u32));
        t.pre_hash = None;
        write_sig(&alt, &t);
        rejects(&data, &alt, &pem, "a pre-hashed signature named pure");
    }
    if previous.is_some() {
        // Another key of the same set.
        assert!(fx.keygen("other", "ml-dsa-65"));
        let other = fx.path("other.pem");
        fx.export("other", &other, &[]);
        rejects(&fx.path("ml-dsa-65.dat"), &fx.path("ml-dsa-65.sig"), &other, "another ML-DSA-65 key");
    }
}

/// Signatures made by PQClean's ML-DSA (an independent implementation) verify in `tessera-sign
/// verify`, with and without a context; a changed byte does not. Needs no token.
#[test]
fn verify_takes_pqclean_ml_dsa_signatures() {
    use pqcrypto_traits::sign::{DetachedSignature, PublicKey};
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let msg = pattern(3000);
    std::fs::write(p("msg"), &msg).unwrap();
    macro_rules! case {
        ($m:ident, $arc:expr) => {{
            let (pk, sk) = pqcrypto_mldsa::$m::keypair();
            std::fs::write(p("key.der"), spki(&nist($arc), pk.as_bytes())).unwrap();
            for ctx in [&b""[..], b"ctx", &[7u8; 255][..]] {
                let sig = pqcrypto_mldsa::$m::detached_sign_ctx(&msg, ctx, &sk);
                let f = SigFile {
                    alg: alg_id(&nist($arc)),
                    pre_hash: None,
                    ctx: ctx.to_vec(),
                    sig: sig.as_bytes().to_vec(),
                };
                write_sig(&p("sig"), &f);
                verifies(&p("msg"), &p("sig"), &p("key.der"));
                // The verifier names the context it expects: another one is refused.
                for other in [&b""[..], b"other"] {
                    if other != ctx {
                        let e = verify_ctx(&p("msg"), &p("sig"), &p("key.der"), other).unwrap_err();
                        assert!(e.contains("was made with the context"), "{e}");
                    }
                }
                let mut bad = f.clone();
                bad.sig[7] ^= 1;
                write_sig(&p("sig"), &bad);
                rejects(&p("msg"), &p("sig"), &p("key.der"), "a changed signature");
                let mut bad = f.clone();
                bad.ctx.push(0);
                write_sig(&p("sig"), &bad);
                rejects(&p("msg"), &p("sig"), &p("key.der"), "a changed context");
            }
        }};
    }
    case!(mldsa44, 17);
    case!(mldsa65, 18);
    case!(mldsa87, 19);
}

/// The Wycheproof ML-DSA verification vectors (pure ML-DSA with and without a context, bad keys,
/// bad encodings, boundary cases), each through `tessera-sign verify` with the vector's
/// SubjectPublicKeyInfo.
#[test]
fn wycheproof_ml_dsa_verify_through_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    for (name, arc) in [("mldsa_44_verify_test", 17), ("mldsa_65_verify_test", 18), ("mldsa_87_verify_test", 19)] {
        let Some(v) = wycheproof::load(name) else { continue };
        let mut tally = wycheproof::Tally::new(name);
        for g in v["testGroups"].as_array().unwrap() {
            let key = match g.get("publicKeyDer") {
                Some(d) => wycheproof::hex(d),
                None => spki(&nist(arc), &wycheproof::hex(&g["publicKey"])),
            };
            std::fs::write(p("key.der"), key).unwrap();
            for t in g["tests"].as_array().unwrap() {
                let id = t["tcId"].as_u64().unwrap();
                let f = SigFile {
                    alg: alg_id(&nist(arc)),
                    pre_hash: None,
                    ctx: t.get("ctx").map(wycheproof::hex).unwrap_or_default(),
                    sig: wycheproof::hex(&t["sig"]),
                };
                std::fs::write(p("msg"), wycheproof::hex(&t["msg"])).unwrap();
                write_sig(&p("sig"), &f);
                let accepted = verify(&p("msg"), &p("sig"), &p("key.der")).is_ok();
                tally.case(id, t["result"].as_str().unwrap(), accepted, true);
            }
        }
        tally.finish();
    }
}

/// Python's `cryptography` (its wheel carries OpenSSL 3.5 or later) imports the module's
/// ML-DSA support, or `None` after saying why not.
fn python_mldsa() -> Option<()> {
    let ok = Command::new("python3")
        .args(["-c", "from cryptography.hazmat.primitives.asymmetric import mldsa"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIPPED: python3 with cryptography's ML-DSA (OpenSSL 3.5+) is not installed");
    }
    ok.then_some(())
}

/// OpenSSL's ML-DSA (through Python's `cryptography`) reads the SubjectPublicKeyInfo that
/// `export-key` writes and verifies the token's signatures with it; and a key and signatures
/// OpenSSL makes verify in `tessera-sign verify`.
#[test]
fn openssl_ml_dsa_reads_the_exported_key_and_both_verify_each_other() {
    if python_mldsa().is_none() {
        return;
    }
    const VERIFY: &str = "import sys\n\
        from cryptography.hazmat.primitives.serialization import load_pem_public_key\n\
        key = load_pem_public_key(open(sys.argv[1], 'rb').read())\n\
        sig, data = open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read()\n\
        key.verify(sig, data, bytes.fromhex(sys.argv[4]) if len(sys.argv) > 4 else None)\n";
    const SIGN: &str = "import sys\n\
        from cryptography.hazmat.primitives.asymmetric import mldsa\n\
        from cryptography.hazmat.primitives import serialization as s\n\
        key = getattr(mldsa, 'MLDSA%sPrivateKey' % sys.argv[1]).generate()\n\
        open(sys.argv[2], 'wb').write(key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))\n\
        open(sys.argv[3], 'wb').write(key.sign(open(sys.argv[4], 'rb').read(), bytes.fromhex(sys.argv[5])))\n";
    let fx = Fx::new();
    let msg = pattern(20_000);
    let data = fx.file("data", &msg);
    let bad = fx.file("bad", &pattern(20_001));
    let (sig, raw, pem) = (fx.path("s.sig"), fx.path("s.raw"), fx.path("k.pem"));
    let python_verifies = |file: &Path, ctx: &[u8]| {
        let mut c = Command::new("python3");
        c.args(["-c", VERIFY]).arg(&pem).arg(&raw).arg(file);
        if !ctx.is_empty() {
            c.arg(hex(ctx));
        }
        run(c).0.status.success()
    };
    for (i, set) in ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"].into_iter().enumerate() {
        if !fx.keygen(set, set) {
            continue;
        }
        fx.export(set, &pem, &[]);
        fx.sign(&data, &sig, &["--key", set]);
        std::fs::write(&raw, read_sig(&sig).sig).unwrap();
        assert!(python_verifies(&data, b""), "OpenSSL rejects the token's {set} signature");
        assert!(!python_verifies(&bad, b""), "OpenSSL accepts the {set} signature on another file");
        assert!(!python_verifies(&data, b"c"), "OpenSSL accepts the {set} signature with a context");

        // OpenSSL signs, with a context; tessera-sign verifies with OpenSSL's public key file.
        let level = ["44", "65", "87"][i];
        let mut c = Command::new("python3");
        c.args(["-c", SIGN, level]).arg(&pem).arg(&raw).arg(&data).arg(hex(b"from openssl"));
        ok(c);
        let f = SigFile {
            alg: alg_id(&nist(17 + i as u32)),
            pre_hash: None,
            ctx: b"from openssl".to_vec(),
            sig: std::fs::read(&raw).unwrap(),
        };
        write_sig(&sig, &f);
        verifies(&data, &sig, &pem);
        rejects(&bad, &sig, &pem, "OpenSSL's signature on another file");
    }
}

// ---------------------------------------------------------------------------------------------
// SLH-DSA through the token
// ---------------------------------------------------------------------------------------------

#[test]
fn slh_dsa_round_trips() {
    let fx = Fx::new();
    // The fast sets of both families, pure and pre-hashed (SHA-256 and SHAKE128).
    for (set, arc, hash_arc, hash) in [("slh-dsa-sha2-128f", 21, 36, SHA256), ("slh-dsa-shake-128f", 27, 42, SHAKE128)]
    {
        if !fx.keygen(set, set) {
            continue;
        }
        let msg = pattern(5000);
        let data = fx.file("data", &msg);
        let bad = fx.file("bad", &[&msg[..4999], &[msg[4999] ^ 1]].concat());
        let (sig, pem, alt) = (fx.path("s.sig"), fx.path(&format!("{set}.pem")), fx.path("alt.sig"));
        fx.export(set, &pem, &[]);
        assert_eq!(spki_key(&pem).0, alg_id(&nist(arc)));
        fx.sign(&data, &sig, &["--key", set, "--context", "fw"]);
        let f = read_sig(&sig);
        assert_eq!((f.alg.clone(), f.pre_hash.clone()), (alg_id(&nist(arc)), None));
        verifies(&data, &sig, &pem);
        rejects(&bad, &sig, &pem, "a tampered file");
        let mut t = f.clone();
        t.ctx = b"fx".to_vec();
        write_sig(&alt, &t);
        rejects(&data, &alt, &pem, "a wrong context");
        let mut t = f.clone();
        t.sig.truncate(t.sig.len() - 16);
        write_sig(&alt, &t);
        rejects(&data, &alt, &pem, "a truncated signature");

        let said = fx.sign(&data, &sig, &["--key", set, "--prehash", "--context", "fw"]);
        assert!(said.contains("(streamed)"), "{said}");
        let f = read_sig(&sig);
        assert_eq!((f.alg.clone(), f.pre_hash.clone()), (alg_id(&nist(hash_arc)), pre_hash(hash)));
        verifies(&data, &sig, &pem);
        rejects(&bad, &sig, &pem, "a tampered file (pre-hashed)");
    }
}

// ---------------------------------------------------------------------------------------------
// Composite ML-DSA-65 + ECDSA P-256
// ---------------------------------------------------------------------------------------------

#[test]
fn hybrid_signature_and_each_half_replaced() {
    let fx = Fx::new();
    if !fx.keygen("alice", "ml-dsa-65") {
        return;
    }
    for (label, alg) in [("alice", "ecdsa-p256"), ("bob", "ml-dsa-65"), ("bob", "ecdsa-p256")] {
        assert!(fx.keygen(label, alg));
    }
    let msg = pattern(70_000);
    let data = fx.file("data", &msg);
    let (a, b, alt) = (fx.path("a.sig"), fx.path("b.sig"), fx.path("alt.sig"));
    let mut c = fx.ts_args(&["sign", "--token", "signer", "--hybrid", "--key", "alice", "--context", "ctx-1", "-o"]);
    c.arg(&a).arg(&data);
    let (o, what) = run(c);
    if !o.status.success() {
        // The composite passes its label to ML-DSA as the context: a policy without contexts
        // (the approved mode) cannot make it, and the tool says so.
        assert!(approved_mode(), "`{what}` failed outside the approved mode\n{}", show(&o));
        assert!(stderr(&o).contains("the token refuses contexts"), "{}", show(&o));
        println!("approved mode: the composite needs an ML-DSA context, which the policy refuses");
        return;
    }
    assert!(stderr(&o).contains("composite"), "{}", show(&o));
    fx.sign(&data, &b, &["--hybrid", "--key", "bob", "--context", "ctx-1"]);
    let (apem, bpem) = (fx.path("alice.pem"), fx.path("bob.pem"));
    fx.export("alice", &apem, &["--hybrid"]);
    fx.export("bob", &bpem, &["--hybrid"]);
    assert!(verifies(&data, &a, &apem).contains("composite"));
    assert!(verify_ctx(&data, &a, &apem, b"").is_err(), "the context is expected by the verifier");
    verifies(&data, &b, &bpem);
    let (alg, pk) = spki_key(&apem);
    assert_eq!((alg, pk.len(), pk[1952]), (alg_id(COMPOSITE), 1952 + 65, 4));

    let (fa, fb) = (read_sig(&a), read_sig(&b));
    assert_eq!(
        (fa.alg.clone(), fa.pre_hash.clone(), fa.ctx.clone()),
        (alg_id(COMPOSITE), pre_hash(SHA512), b"ctx-1".to_vec())
    );
    // mldsaSig (3309 bytes) || ECDSA-Sig-Value.
    assert_eq!(fa.sig[3309], 0x30);
    let mut t = fa.clone();
    t.sig = [&fb.sig[..3309], &fa.sig[3309..]].concat();
    write_sig(&alt, &t);
    let e = rejects(&data, &alt, &apem, "the ML-DSA half replaced by another key's");
    assert!(e.contains("ML-DSA-65 half"), "{e}");
    let mut t = fa.clone();
    t.sig = [&fa.sig[..3309], &fb.sig[3309..]].concat();
    write_sig(&alt, &t);
    let e = rejects(&data, &alt, &apem, "the ECDSA half replaced by another key's");
    assert!(e.contains("ECDSA P-256 half"), "{e}");
    rejects(&data, &a, &bpem, "another composite key");
    let mut t = fa.clone();
    t.ctx = b"ctx-2".to_vec();
    write_sig(&alt, &t);
    rejects(&data, &alt, &apem, "a wrong context");
    let mut t = fa.clone();
    t.sig.truncate(3309);
    write_sig(&alt, &t);
    rejects(&data, &alt, &apem, "the ECDSA half cut off");
    let bad = fx.file("bad", &pattern(70_001));
    rejects(&bad, &a, &apem, "another file");

    // One name, two keys: signing or exporting without --hybrid asks which.
    let (o, _) = run(fx.ts_args(&["export-key", "alice", "--token", "signer", "-o", "/dev/null"]));
    assert!(!o.status.success() && stderr(&o).contains("--hybrid"), "{}", show(&o));
}

/// The composite-signature draft's own test vector for id-MLDSA65-ECDSA-P256-SHA512 (with and
/// without a context) verifies in `tessera-sign verify`. Needs no token.
#[test]
fn composite_draft_test_vector_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("msg"), base64(VECTOR_MSG)).unwrap();
    std::fs::write(p("key.der"), spki(COMPOSITE, &base64(VECTOR_PK))).unwrap();
    let ctx = base64(VECTOR_CTX);
    for (sig, ctx) in [(VECTOR_SIG, &[][..]), (VECTOR_SIG_CTX, &ctx[..])] {
        let f = SigFile { alg: alg_id(COMPOSITE), pre_hash: pre_hash(SHA512), ctx: ctx.to_vec(), sig: base64(sig) };
        write_sig(&p("sig"), &f);
        verifies(&p("msg"), &p("sig"), &p("key.der"));
        if !ctx.is_empty() {
            assert!(verify_ctx(&p("msg"), &p("sig"), &p("key.der"), b"").is_err());
        }
        let mut t = f.clone();
        t.ctx = b"other".to_vec();
        write_sig(&p("sig"), &t);
        rejects(&p("msg"), &p("sig"), &p("key.der"), "the vector with another context");
    }
    std::fs::write(p("msg"), b"The quick brown fox jumps over the lazy cat.").unwrap();
    let f = SigFile { alg: alg_id(COMPOSITE), pre_hash: pre_hash(SHA512), ctx: vec![], sig: base64(VECTOR_SIG) };
    write_sig(&p("sig"), &f);
    rejects(&p("msg"), &p("sig"), &p("key.der"), "the vector's signature on another message");
}

// ---------------------------------------------------------------------------------------------
// A large file streams
// ---------------------------------------------------------------------------------------------

#[test]
fn a_50_mb_file_streams() {
    let fx = Fx::new();
    assert!(fx.keygen("ec", "ecdsa-p256"));
    let big = fx.file("big", &pattern(50 << 20));
    let (sig, pem) = (fx.path("big.sig"), fx.path("ec.pem"));
    fx.export("ec", &pem, &[]);
    let t = std::time::Instant::now();
    fx.sign(&big, &sig, &["--key", "ec"]);
    println!("ECDSA P-256, 50 MiB: signed in {:.2} s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    verifies(&big, &sig, &pem);
    println!("ECDSA P-256, 50 MiB: verified in {:.2} s", t.elapsed().as_secs_f64());
    let ml = fx.keygen("ml", "ml-dsa-65");
    let (msig, mpem) = (fx.path("big.ml.sig"), fx.path("ml.pem"));
    if ml {
        fx.export("ml", &mpem, &[]);
        let t = std::time::Instant::now();
        let said = fx.sign(&big, &msig, &["--key", "ml"]);
        println!("ML-DSA-65, 50 MiB: signed in {:.2} s", t.elapsed().as_secs_f64());
        // Pure ML-DSA in both modes, streamed through C_SignUpdate (the token computes μ as
        // the parts come): no pre-hash, and no note about reading the file whole.
        let f = read_sig(&msig);
        assert!(said.contains("ML-DSA-65 (pure), streamed in parts of 1 MiB"), "{said}");
        assert!(!said.contains("NOTE"), "{said}");
        assert_eq!((f.alg, f.pre_hash), (alg_id(&nist(18)), None));
        let t = std::time::Instant::now();
        verifies(&big, &msig, &mpem);
        println!("ML-DSA-65, 50 MiB: verified in {:.2} s", t.elapsed().as_secs_f64());
    }
    flip_last(&big);
    rejects(&big, &sig, &pem, "the large file with its last byte changed");
    if ml {
        rejects(&big, &msig, &mpem, "the large file with its last byte changed (ML-DSA)");
    }
}

// ---------------------------------------------------------------------------------------------
// PIN, URI, key choice
// ---------------------------------------------------------------------------------------------

#[test]
fn pin_sources_uri_and_key_choice() {
    let fx = Fx::new();
    assert!(fx.keygen("ec", "ecdsa-p256"));
    let data = fx.file("data", b"hello");
    let (sig, pem) = (fx.path("s.sig"), fx.path("ec.pem"));
    fx.export("ec", &pem, &[]);
    let pin_file = fx.file("pin", format!("{USER_PIN}\n").as_bytes());

    // --pin-file.
    let mut c = fx.ts();
    c.env_remove("TESSERA_PIN").args(["sign", "--token", "signer", "--key", "ec", "--pin-file"]).arg(&pin_file);
    c.arg("-o").arg(&sig).arg(&data);
    ok(c);
    verifies(&data, &sig, &pem);
    // --pin works, with a warning.
    let mut c = fx.ts();
    c.env_remove("TESSERA_PIN").args(["sign", "--token", "signer", "--key", "ec", "--pin", USER_PIN, "-o"]);
    c.arg(&sig).arg(&data);
    let (o, _) = run(c);
    assert!(o.status.success() && stderr(&o).contains("WARNING"), "{}", show(&o));
    // A wrong PIN.
    let mut c = fx.ts();
    c.env("TESSERA_PIN", "000000").args(["sign", "--token", "signer", "--key", "ec", "-o"]).arg(&sig).arg(&data);
    let (o, _) = run(c);
    assert!(!o.status.success() && stderr(&o).contains("could not log in"), "{}", show(&o));

    // A PKCS#11 URI names the token, the key and where the PIN is.
    let uri = format!("pkcs11:token=signer;object=ec?pin-source=file:{}", pin_file.display());
    let mut c = fx.ts();
    c.env_remove("TESSERA_PIN").args(["sign", "--uri", &uri, "-o"]).arg(&sig).arg(&data);
    ok(c);
    verifies(&data, &sig, &pem);
    let mut c = fx.ts();
    c.args(["keygen", "--alg", "ecdsa-p256", "--uri", "pkcs11:token=signer;object=ec3"]);
    ok(c);
    // An attribute the tool does not know selects nothing.
    let mut c = fx.ts();
    c.args(["sign", "--uri", "pkcs11:token=signer;object=ec;library-version=9", "-o"]).arg(&sig).arg(&data);
    let (o, _) = run(c);
    assert!(!o.status.success() && stderr(&o).contains("not supported"), "{}", show(&o));
    // A token that does not exist.
    let mut c = fx.ts();
    c.args(["sign", "--token", "nobody", "--key", "ec", "-o"]).arg(&sig).arg(&data);
    assert!(!run(c).0.status.success());

    // The same name twice for one kind is refused; two keys and no --key is a question.
    let (o, _) = run(fx.ts_args(&["keygen", "--token", "signer", "--label", "ec", "--alg", "ecdsa-p256"]));
    assert!(!o.status.success() && stderr(&o).contains("already has"), "{}", show(&o));
    let mut c = fx.ts();
    c.args(["sign", "--token", "signer", "-o"]).arg(&sig).arg(&data);
    let (o, _) = run(c);
    assert!(!o.status.success() && stderr(&o).contains("--key"), "{}", show(&o));
    // The signature never overwrites the file it signs.
    let mut c = fx.ts();
    c.args(["sign", "--token", "signer", "--key", "ec", "-o"]).arg(&data).arg(&data);
    let (o, _) = run(c);
    assert!(!o.status.success() && std::fs::read(&data).unwrap() == b"hello", "{}", show(&o));
    // A key that is not there.
    let mut c = fx.ts();
    c.args(["sign", "--token", "signer", "--key", "nokey", "-o"]).arg(&sig).arg(&data);
    let (o, _) = run(c);
    assert!(!o.status.success() && stderr(&o).contains("no"), "{}", show(&o));
}

/// A private key without its public key object signs; the tool says it could not check the
/// signature (the key exported before still verifies it).
#[test]
fn a_key_without_its_public_key_object_signs_unchecked() {
    let fx = Fx::new();
    assert!(fx.keygen("lone", "ecdsa-p256"));
    let pem = fx.path("lone.pem");
    fx.export("lone", &pem, &[]);
    {
        // The public key object destroyed through the library, in this process.
        let _guard = lock();
        fx.env.activate();
        let p = cryptoki::context::Pkcs11::new(module_path()).expect("load module");
        p.initialize(init_args()).expect("C_Initialize");
        let slot = p.get_slots_with_initialized_token().unwrap()[0];
        let s = user_session(&p, slot);
        let public = s
            .find_objects(&[
                cryptoki::object::Attribute::Class(cryptoki::object::ObjectClass::PUBLIC_KEY),
                cryptoki::object::Attribute::Label(b"lone".to_vec()),
            ])
            .unwrap();
        assert_eq!(public.len(), 1);
        s.destroy_object(public[0]).unwrap();
        drop(s);
        p.finalize().unwrap();
    }
    let data = fx.file("data", b"unchecked");
    let sig = fx.path("s.sig");
    let said = fx.sign(&data, &sig, &["--key", "lone"]);
    assert!(said.contains("NOTE: no public key of that name"), "{said}");
    verifies(&data, &sig, &pem);
    let (o, _) = run(fx.ts_args(&["export-key", "lone", "--token", "signer", "-o", "/dev/null"]));
    assert!(!o.status.success() && stderr(&o).contains("no public key"), "{}", show(&o));
}

/// `verify` loads no library: it works with none installed and no token store.
#[test]
fn verify_needs_no_token() {
    let fx = Fx::new();
    assert!(fx.keygen("ec", "ecdsa-p256"));
    let data = fx.file("data", b"no token needed");
    let (sig, pem) = (fx.path("s.sig"), fx.path("ec.pem"));
    fx.sign(&data, &sig, &["--key", "ec"]);
    fx.export("ec", &pem, &[]);
    drop(std::fs::remove_dir_all(fx.env.tokendir()));
    // `verify` itself removes TESSERA_CONF and names a library that does not exist.
    verifies(&data, &sig, &pem);
}

// The composite-signature draft's test vector (draft-ietf-lamps-pq-composite-sigs, test
// vectors file, id-MLDSA65-ECDSA-P256-SHA512), base64 as published.
const VECTOR_PK: &str = concat!(
    "rZTyCYFJUpLF11m+9/qkC78DAVczaSbhDdEglXcvFBYGJ9RUVIZyf6xy1Yw9Q62dIMwjYn2wD4p+HeonB88cBEmBd/sFZPW6",
    "LbK/YRap4s5MlItEvcQ5k2OSEknjKVwGykFDaTgrS5gs5i5CSyfdCrgn5a8zYcVvTP+R4KeDpuEd1m4s5iQiLa3AtzB2guU2",
    "E8KMREWpj+xWx104pZKCBomGepF13Me2Rq5qN7N+bhOf6SQS8WNIdvnTotEYBkxspBKRS8zZSIWBcDH8cvEpQizrR0mdk8tj",
    "rKRQFJ5d3sAdfuWxUTEKa6MEeJ1lj1IzqE5TObOewpotVCY5E9gxMULfTUSualR6PgSr6YNT8ifKPKHqPWK0tDhaEnnCcdiA",
    "z0ZA0heurOemye7RzjywPBgq0VBINW2MQ2JozKGIy98NlBktlLTwAj06Psu45oghbU5pDEwWfO89lnSDfZkYJfagorGCde54",
    "kSpmUm5SSTJYPQknYV9VAvDmALfYjmCxfpTI/h8beVWIixnLHYcmDownSp/KjhCTZqmkwXHrHFspbJCh6P3Cg+OTngFQu+zy",
    "P3K3gThi/VruxZt6eEbGlYQeGEI6WYAsSz1e+SSZwOEXnrQhkLdR419nZZrGV4XVmOW65Aap0C8aOwV3evnxaIzmHQ0Nzjcg",
    "P62XAgkR3Sv22ZKCURuBVF+QvAYjNNISlW2x0ykqlQe37fONAZA1CX/m0JP8AHJCJwjzfo1q174q/+KwOppIgVAgJJto93rU",
    "OkYS3DYkTEyqDNxRmXdwSY7Qy4CDqRebfToirQC2JUXtCpwd2U3T6SiOVjNHN7tAX5Haj8dsdQOaBd/Y68OoH3MzMqusrw+F",
    "Q21SqYqxRUL0uhkE2gS7N9pL3MEyzyHLdrMyrWUbfaCh/RUTtqWhXmJyZ9Ti+ETqZ3761QFMip73iAW64CCkuqFM50sjrTS8",
    "08pm4DpVp7OLMPCSJBC0NYGXX3ZmDqDeOzyqs2+la3h+nDW/BFXIoc4nX8K1ca6B7J7/O73AY7bZ5ZXvvra6ikRqpF4r0yVW",
    "BMXUwCO3sbp9bl0fM4NcGnNtdKYETaeIxlOH7UTDYzAsTPmLKLHwa7gqeD/IW9+/poc9L1LZAiMqAFimogoZ7+HJixDVeQgD",
    "mMDNvetHynDyoplm812nhNGguJtxDXWS5j89IcdPsfYnFtfVXoNSA0P9b2tPfe9Grddk4X1ABwuO/rnJUc0Fmm56g9uoI5nt",
    "8s3s1fJBTx66VdXL6KDlApIF1Y17Gdk6I95Gs2UX7iQ/xP/3SSKoTsUfeq/h/mHmZcc1NflxlaF6KN9StQGP+UKCRfcwWx9j",
    "ZTCN4Yqpdr0iKeNH8YghJsU26KRUpVjpt2jRanfG11UiR+6SjnqSK8D2wnR+/SknWeosv4GcxlYYWGhntmgM1fVC0CeMeUth",
    "zgb5tFVubq5OsO15rLV0KuggRLDl5XWPRxLjN4t198t1Tl66TJkDjqd8qJHtHHa1cZN0l9nc3KP8MrRIgf/x/hSkxi+pz5HH",
    "LYv7LsJ+Q7yBgLOnz81EDXR/t9tVP/R6oR6UKXtDajKwRTdwFke3o8MmKK++qmB7AejeWrc+vEB5BOjdDDRc+/4FTIeLCRrh",
    "O4PrhSBOk0EJoFF7cKzliQ6Re/yL9V+C03SJ+48Q/m75urYFPUof5HLIInrCjfuAhHRIMJOkhfkBi/l7MXXIeV8lmm7Rtn9Z",
    "CtjaP+sFxGt5O5sbVhpZUrg1rWX3oXMUhCDRNQoy/pH5K8JmK2vllFKiIjCnUMxEmH5jvxI6V1oRx+QUaXyFu5c+IOuDspP3",
    "5ehFl050WAV2nYuJ5oPERbf7Q67XFQariXYmBV4JYOFrh4unRIvg17t8FeSibQ1MObjjqbVoZB+sJprwyTx6o1cftASIHlQW",
    "ArzD6cxQaNmnTFDkZmMKvpxmon2j0SGXEXRSumn3Wpkkb9PPUigaynjnvb643BxVy/THN96ip4hWRHGOdQBIGsSbc/5hp2BK",
    "CT7hEtLlQZNMIzR0HsQayarlprx+0XzuouPqQ6RudpKnXLqa+rT9I4khP5A1DxWDejH82Xi/ejANdi9loJv/rTPRq7Rr+iu/",
    "wo+jf+OicFZ8bZVr99igvsBjYDxaiHqcW3P3cYiaLLFTwAnzlZIduQklmRNw4G2WdxR58U2afqeJTiODr7j253d/NSsL+TaF",
    "Sb7iWJPtlrGakN9u04sDEORA+9TdRPMZDuvP32g6wJpEmGHGtiszuwGdRyhLXG13COkkoaufX+l8ET67ITopR2WRcC4+wf5U",
    "lU+yZ33Neh/PbmiOhmgkZfOg+sb2VNmqjAFTvO2D//OD19U86I0d+ild46oAV0fxwqnuB90plk9MJvHsd1/uojfL6mZIlF6K",
    "nsRV6qoN7rH5NAu+3cTX5Kjj7TaTN/H3W3oqefsM4fbKnXNOuQSDBlDNTla7Z2qorNSalD23R2bMTBEkOe7N6ig/HjtBTi2f",
    "v5TQWIlU6pLAPswAY5yWJta1RdVl9XcysDjlkEVMGjFvBhpDHj4aFrxqHsUdOlq5rGhT81s+StMlVNJbTtLQ1zQIeCSjxM+3",
    "ys18UbZuaeQEmIJEOfPaAiUJav4Eno5ttyc8e+E8+h37Ha77fa2EPuNa7lv54n76FIgh8iBELLSaZlMmpGWouAarWMb61Ua0",
    "lg==",
);
const VECTOR_SIG: &str = concat!(
    "Z2cXSmyeY+LB6sYY3fPKYRjhisbdrjPXpdWnbLpB9vCyqNnHDvOa2/gL+FpGcj6U/jCmj+SfINkARM9q19ob/AO9/zwt4tGX",
    "0roK1Na4f7tVSSXF0Zax5OssBIQizCrJSilaw4YDPdBEv1fVBwhZbg6nAbnnXko9RJb6KAlY43AGS6nd0LeMTjiH2Y+UMO+X",
    "d2YDzHk5PdAlDhxag5i9YY/oO+mxPrYEc1Khf/ARDJJivRgZqS/DsdKB+n6a4FihpZLaWNirrIQhAojM2Iv7YLm+DirQ4obh",
    "Ibwo9xt775nYGVlwsK+L2+h4uXidYQChVA8uF3SVEnZDl2xu2hJRk24guJsE3Y74gIKQvIJThPbwBcPcFdAlWjGgvt0M3lTp",
    "iNb2BlEUT+CgiZZG8eCxwDhhDPXo7vBQ6M605cfSJpzc5lVmbXed9shIGYh4xr/qFeZrpxq01HS6HICMY4TgDARLIhKj2IsJ",
    "wsvIhtDkPx64CGiRwh1DNMccgER4UVZl18De8VDldxc5QycBe/ZG9J6IvBusOqS8aFT/n+6xYzPe68XK+2Rk3ppwC33ydDkN",
    "6rTkJNfcCdMo/lUHmptpynkSWo30Qz1vjElCZeS2tn6HQOi681VB1/IAxiv+UiQBBSPmqlcxsW1pw16C7VzpLZMuL6nfsgtJ",
    "rjvwmdibBvvqPRjH027yOPSiD17po3WkBJEM0ql7vAic5Z2IcUoo/S/wOlYutb6soEhpWEmP66Y/irdgCwbT1AdvjTjRxNQV",
    "6hFWj5nJMkfhWCbdACqRpPYpQQUn9n6FVbcTydwr/RbeDyymTu2uVcy8RRq3WMz1VUPjLhEBsoPBKnxVWmzeE2bo9G8EqsU6",
    "56gFpCUkm+qqGCJAFcCDJTl3ILJsgB5mP6b6eAvnXeuZ1X51E+US7cRPbJtTETsGK7gUByAzyrKyuGyX/eXMnjI0okbSBUQ0",
    "B7J25u42sFs0uVsUloPPSQQ+jMoPO4FYiON1eTKoik1t4U48JjP3OiTEDuPCYGwNaimzn0EjlCJ0KaVymkhhW963OJh1odWx",
    "eTXY33pI6zCdsL28sJfHBx2E+F9hvhGrq2NG0jVnVxQnjbePaHiXsKTT1ulZZGtDik4zRTNQcgQwBvy/GYarslDvhKgz64TG",
    "osk5AhxXnUgHy+C7tpKEfKz7G/zWj2C489ODOdFib1xFJie73J+DCmIZnM428KKeAmHZTfqgSs7w02gX7+/UmrZUPL2uIsqC",
    "al4Iovmz39Oc73bG0T67gPBAryTdl/k159SCYTyvgp67OLUpKTjZ+me6p/g1k8Cacp8pVxhBjRpvX3D+1eJswOpxm5UKXSG+",
    "xd/KdNP0c/2HpTMIw9Z5fPxDdOwWtcrrkSTRcS5v8Ds7XWF0qcgUKrois8Sq3cqmRUMdBoI3XNx2v5BUtesgj8V29bRJybpL",
    "0JkAmKjeUPoM9HmBBYnerIURSj7qMi94PK+Lsln48hjwCG/JFOy7/cdSc0R9tAD+DSIrQcQeCAvk40h0wefXFD3IGk8DyRpI",
    "P6+WCVLlutU99KXkEZeargz24pPKPK4IDEVkP/FqIqNph1vTsmZpef4xKDCWh7fgMmzPPrE51k/U6UhHKC/PaTmCh58+X7oG",
    "Oyc2c4+i2Li5gWqqOuL4UPasOZiF7plsu3+WDL2oUY5ukX1c8gbf8zYIWYul1ovBKM9cAcGTV2CC6YilteS8NFNR63O3MbUX",
    "Rb87VL4dWsXm+rMY9DNKj5rEeUKIOVsgPIBYzijr9Wlv2L+zCxRfVi3hFky2RGfylzs7XfT4EPSRVuruP9qBg8ZP2BtfQjLq",
    "mOukN8BkPrp23Eba8BHPwHcmNie0Nb0/oUHAPgwPZauFw8EAob3wqoG07zLF/5V16Th5cNhKa8eJzrcdUdEEC9wWrwcZHN/s",
    "d9qEaqCD6zZEscgV9La02koHjGZlhbe355MzEfTpvWdgGPYA1YgkSeYjWbMc0rmxyXYvTq5arGphkf1YyT5s8xBNU/V1WiPj",
    "MF2RfW/ofh2AdsrPFoqqy4SIZWvdKLUyWLRm5KqKyivc4LCZ+TjeWfviI4QYwNd7izW0wZJqNH/C9eTL2H4UsbkNfodeJDgA",
    "PoYKrOW5JYbW+cl5rAG6Q/76u1BQMePJureHrjOhgFD1OFILuxmNeL2IMm3eNqRdga/k3dENqAEQ2HLruB1CfpWjSF7/LnvO",
    "poOqHjTdVEWE+7j6PgBnYMwxbFudGMOnQt27mqFror8UuPb+uZJSJQCFXkJ+ihPCXTG1I27++zqCZVSObeHKpAC5qrbrQnWL",
    "nCuJKqjjSXP/wHWGfOraCw6YpK7shE+AhASwnw19YxcvvQVdpZSmvYdgEewWJPYRMVy8yqv/Md3oisl5/azb5Ufgd5K1k3Jy",
    "W24qoHepBai+ak7rPcAS2ah9m/2axh07XIncet9qsELSlNbAUn4BKjx5Jwz2pj75vxOmdPVVklRUBV/xaixKFJlTM3YUe4Ba",
    "ZR7lrmumoZSOTzKaksK/byYPWMu3vt1EVuJe9JNXvJTzo0YO/nmpbOLrLmBFJGu7tDNmm0y9llnfV8CbrcF//sLkzvkh6V8n",
    "fusXQCdkWgz7oc6UlD56yam6TX94dFdhT7uGs/cDK56BsmmwmP+7fvy7Xfh1J2bVNPirjl+pvDjiLVPI/1mhGWjST/wbpllb",
    "ccn0EjSxuM6z9rUp4qhXiKYb/mUdH63NPaQlYmQ6VjxVaLl4LJ2RBdi3drvJ5zgUXUiQ1orLD/8H75reYTCetvUUe01bjwph",
    "krlpk+ETjLO7lCbsUKlDbWCc7T7TytxIM/VMD/Y8H0nfDhMX8CHwyFy1rzHwwinO+GYEGDAqdqe4x3ahXWFwQOB2U2PCISSE",
    "CvlnPS5PzrnEnwjDxxogIa+HK/WCD+UoRklD8DQoYIi+JmpX+OGSYjPSctrANXzwGifpfGR5WKNOmGa6VEgvZxEMP4huAWAF",
    "fWtHlm4lgLhE+0nLBQRqkuab2fxQcRM7V8QxG3oTsls9MpkqtP0bQYnEqUMpUsPd1FI2j2mdHQoEbn0b/zkFziM/BimEawnN",
    "eKCtYt20/mFSmCQayZeywXnnXFUgfuGW6EqbcloC8UEvJhJhupmkSeR0yn9mYCRCJRMBYjSOoVyW2iBC7aN4Q5eWgL08Ic+N",
    "wXwleDgs3agggmtbPmECxOHbQvkre8DKQ52jDBNSEHpoFzJRzCGzZR9+1YyDhL6jQlxxC9DJF+6UHprci1wpSpD8WweGpzwf",
    "Zz0t2Hfbdo3Da0nKrMX7c4mihZ62+nv1tnOX0ttmAVGfGq7gzzIo6cXEVlYMABmFWwHlBPx4NufR69gjmKWRUYoEoL8ld3t5",
    "iiiIBXepNXdwX2sl0gp4Hh78HcEoCZVaZEBLvxab6roSJuK5u/eP8KaTjZH4SZGCkDYXww6T4uDgie3lF+RBruzDab83ZYDh",
    "CeYGr3wmLYrGxf+wO+RwTQrEeLyq/ZOoPgpEGlgCfLTbPyK0o/TbCY7YwDhNEtTPXO92jTNWmokZwiQ8k6trZthFqt/EUJkO",
    "CMMObOM3yOyQeNu7xvxzGY7AfmW7kyCGi+1HjfmHDOcDRV4K8/Owp2GbpDANAn3Oge5mFPS6qZYIshzt+V5fc5wK5SVPYO+U",
    "6Q1ghY9PEKO0fN9nU6BvzBtNpbA+kytlhBr0NpIOiWz6E+kTqGsglAo8PdOlzlHj1UMq9dIH/n6G+96qfBoCBH4M97UOfr38",
    "0yRxgip2Nk3557c8H2lqi+hjBIKgPxUGLse4LAdgxk9RLnyU7pDLk0UvIgfZZopB1Qa6sZzt2nbuAYAEZMkDbolMpE234rru",
    "5MgE2uhDCQdClD3cCJgwzSr3bt2+IYCl3dwwfDKp+OrfQLQs6wqEL4YRV1EFan9GrIyvkwpr+uFS9Tahszjk0m2bw9S6+VSv",
    "btCXCz4Wo1wB30jl80HWbgltYZRQ24eA2Vu4UVfN4jKvYm7WD215At6sK8k0U899+u92aYLlFQR41kxqG4Y9AZ7wqv0wu0gq",
    "FlImaL7jpqeU5uMO2Ty1+TJ1YKJg7xPXJ6SJObIgr3xB0gqfXcAABmVOKBLIl4Pi7c9cuGoWke8Xza7YJTmSTYY3MyvQTpro",
    "sS62fIcQ09dv1p4u15mjimDYycKo1HcN7UQdRdfZiDAWLogKdvCXSX+3/3Qk8sG4KKg88d2fGYwPKXfUkMvjweI9kjENkah6",
    "ZCCnhit+f56zs9O8bH4CvTRix4wx50IR+D42n5VOy6EUJ2cQzwilHHMOeheWUD4gt/fSl2OT+JBQI24KhF6cI4lIyWUUHcYU",
    "Oij2ucsZt3EqxuzyMz9erbDK7BAXIEFegbG0tdbj5u4hKCqprskNJkhecn/tHyksL4SV4gAAAAAAAAAAAAAABAsYHiUsMEUC",
    "IQDjDGCQCsAckjqaKf1W6a3d6b+cVZPGB9DWGJ526JHVlAIgbk6WbcRlk71g9ay0cjnnV57SD9jlFuGe1Ll0N/g6oSA=",
);
const VECTOR_SIG_CTX: &str = concat!(
    "oHXylglVknUKV5ZzGdY29ZcVAruptT8vnoOzTl7F0ryNbDC8Rxy1i9Sz8HZsmGOQIhaOGAyKv3d4Ju+pqA25n7BLARU/NRuC",
    "hTaM99vDnEAAF0T1VYxxWyGYECrx/YuBV04mPczJ4V5YDEn8V7F3WYdzjAnpxZ3BBmxc6LncnRt0p8jUgbSlYtqdzSZw0C6q",
    "/73K2fC1wyP8C+ogZhNh2aq/UWD/k/bzFqAmusEw02mbUBE3f0IH2vQaSwUkIUrscux3ai52H+W0Ub93cVKA4pk9inPM/Tdo",
    "igJ4OLkDgop6Vs7hFR60ANNnhNIZeKYpCFfdXC2JRvanGJ3a2b35oFEj6koFui4esJtE8mnRVLgBkKnzAMkcvo5P+qPlvQUg",
    "kuyZvImpbxxfxrZV0QXOw0z792ScpbQZ/uWAVGbxejtolS3wbArNv7tqK4Db6rOwy4eab5KarT6/IIb8tHYQ5pvb0OU+dOgP",
    "JqNO0KXwS/O0Y3ZottjsWg5/Zgg2kXEM6ryiEMngG5PEp298Dn+OOwzKrU3QjzcTq9h+NfUwFUo22f+wJu1ZC2RC1KDMxHSj",
    "fuqmhd5YFJkxlPocGIVdeMHaQN0K6iw+Lbg5Yrffv5yGKMyq0lwt2wCWHz8XKXD7kVNLCXipu0oyD+eL2cjLc+SmkUfb9GNP",
    "dc/TwHOPieSruyAybCmCvkIRfyRW3KH+FqerympoUfSyVxaZupgmgeeGH9tltGySypaRV4HI06J2zPZnPjhYHBdpzNauiXUG",
    "Q2evX5f9fqV+fgSfp98+5/R3B9P6qvWjvdPFJT6gWN8mIMKBe9AeJpjpX22ubWS4wMU/l4GZjnHTct49nwczRttT8oQfXmoG",
    "8WLT7+W91KiTYPPeplsgT87DFbpw6d8QXRRbE5+mu7826K3cTjTFsHiN7OuConZa5eFwZzGVDWHQS/ao6gbFwf1ssV+Kg2XF",
    "jGu+XFMe8Loxj+zze6+6qZ06JaiT5L8FtEkS/ZHCmxNNTeXna/NrfkV3goWlPCbZLZhHy9T2ZKAhzT1tWmMaUnUePOGUr6x1",
    "SMWpjEo6qKx1IkEGNNjetVkQqyX24JD1XA5c78Ou0bqLvBghxIOLiUU23pAs0iLULOpby+phDbnG4qnK2MneAhbI01/0yvVW",
    "X8UEmwAMM4bVUnHuKXAfcnACrb5t6CXK1IWj4B607eXgJqKhrgTQS0caP98+7sn82etkUUiytmPQxhNLB7iZD+rnbaUpHjYc",
    "l42/KoyyXbui8uPvkUKSfPpGwzfcNBM3DIaFhrJGzLu6qZS56AizEkLa793/Wv2rV5ZZeB0an9X269MC6QXfAxBFYvNwtUH+",
    "S2sEYsYfjhOnUuoczKBOAnv3i1iVyJjBsNtBrSaq81GUUdYMcSxoaSR5HS6tCzP91OXfrVZNRTdMOHRL8vzUc+ZOgMMAioKG",
    "Y2FbqcCnCG13uqv+ERD3Q7BSj4rPpqbuiSSEU9ZM2fQAOGuIRqxFKne0+ToG1rcxP9NgnS2UqRrW6L44PxhDuDLSPflSTl3i",
    "Bg59phqFcYC1ZSqe4/m1JClUZVuTIoFNnSMoQAsst97yfc7QU36SBqbhE9sM82HZvuprM6j0LWBgOkb/FO0HuLz3140rFBqM",
    "8cLfVuVW5ND2hc0H7Eqqjd7njyk8VhyVV1YCBTqDYhF6hUEO0e3PrxEtiRbBFCdeFHTvo8nFy9k2kZHkjwq01gBr6ByFi4bD",
    "NTsCUkgW507mKV2oubehb/g5LrlcxU4lCstskaru1fn4Jd0lIbXD1UGNKZiRo24/Mcrwvv1Ez18w0+GbYSFBNGdBEstAB0M6",
    "kcDAT4YF5LOY+r505V7x+S2n4Ay/EreIW6+oOwYLVoxFppxxyqu+Siq+GL/ycnypHO8+DCBdwV5/bckDavYC9Q8l+74uEpJ0",
    "ZEknB48R1uJiY78UnN20dU9/3hbW0sObai369Vl4I/k/5+y2dda8P3UyUVG0oxJ7/hg+X3LpFJSAWrhy/wovgFlfN1dkfQa/",
    "v4VovVBupQi546QfwhRoiq3MRKRBt46qirO9I2Zsov4mOQf+DfH0k3P3GnlhegeYRyhcHHPjpD39Fsamf4oA3rKd2eo3iXpQ",
    "T1S8Jdxe0E7TimdBJ/+VHuwCF54zFI7r+WduEuNv2aICEMwzXRYIjY4HCFULwXPHvPiUlJQD1IeZy87Wq8u62K6CFbvpeO7S",
    "K0qpbA4W3LugX+DLuD67eybwd+Qcv+RJLWySdBxENT3tgKUVeG31AObqQkBHXl7WqQ8jKTZl5lYtijIZMbYzDWjojlT2v2GH",
    "QHJWGvgprugaCNCzhsqDiKZKRuYY5WsFoUOqWPYh72xQENRauwQ5mHy6/kiICefAdcQMxuV0gfAG744ll6M3Hl9ODeB6YAgB",
    "FPf8xuDctN8LrB2fxpJnk+nNwIVEpfe6vmIUYzT6RbgNbrqG7wzfxj582dfdxFgWZs2nNV4HcEMVAGA8H/FHbFm22Qtk33Pa",
    "9e6FyORK8XAdgWx7bb7AkVwsDq5IUCvJra4Wy0Xxw3eZIBV5t1DBNTsQOaePS7AutMxFnsUuc625jBBNVlupSibOpUbDLfDg",
    "fMb8bzRXP3537cJCZDe8bzY/nwzDFlODAuNkYbQ7C8Qace7A7atn+5/3CokBqmaqnikoso3J+fLd3tcx928y7ru59IHg8LMR",
    "dTNwjsT3Ui9nzlhdGP4HKlY89ipogUl2ELKtm7x5UmV3vFU7WtzdyMeqOf+n6OluQ4v0OS1Q8ljGdO8BibGsUpVpGR7riMct",
    "IpbtlaWqtitD7LzinwngZeihyzF1mIJQmsRngfvnkNeg4xAmwlqIpLJeF17TJd2q8kt3QCWhG3jsSpW+Pcm7o7/SRvQ1t6XL",
    "5oH9MqWag0td4vzdzL4aZ83L70OyU/K9EtyKdldRsHwvg72u8PdnR7JjpkUnyD/avU5JOUslCGB3bMYMLgW77kxM1GnR8oDG",
    "mm+9qEABC64IkPDISziKK69IfSWByweFljYZ4kAHZEp6sL0saW9rNv4egIeUUT1nvgTQ2r7p2pgyGXSdK//FqCaLPVZjdDEc",
    "Xyvp1hBiZT8UeuhU2keQNMonwGRma/ctYflwHepAyk+E+E1/+p4tp9N3jRl1/n/+4+qoBfCP9LUiwAYD+/7/ZsdbcaUQqCyH",
    "pUxIShXqJScly53dtAhagAXWgA9/mPuulyyqIyuF7cMcZ4J15lXhOVv6WIPecDsMBssCvBepCakTh09H8fFp1tA+5NjzGgCY",
    "1ChQT54duj/pmNyG5Ejdn+kBVK5QNFQ++f4NUFKnelucXbWhXY5vbmLgMRu4J6a6njpM54mpklHrEy63r0C0hcs8fcU2jXMh",
    "83su6cQHVOIUue2Pst8Jz+CVtrlyfZS8r5mUSZaEzWv3jeIgrYVZ/RJL1LCsVQvFAMThUlsa+PEe+ulZsE5OCznLSsHpegFB",
    "Dlki2/3SgMMc4ml1pRiwT3jAuRD/9eo3EDISWCwM114SGN+G0XuEegYhaGfG0jTzJKejUiKiNyo71G+CTnnN+maIxwD4orgy",
    "/v0vbIODxhnsU9bYD5+6AtopKSv2G1qpCpakAO9mu6BSoJ7nJFU+cpQeIWPNHw1zFQE1f+0AYXc14naYfGl5UemklLKYpIVe",
    "6m015YzBFU2xP8OKNNNLRiFl3wV0WQ4raCvK23W98AEyy/9sLbt7aA+gKKz4+kqEdzktNulil2h0Dy33K/Tu4wAS/hAouRoe",
    "5JfJeyvz6jvG/lUyvOo+2N6iWEulnrFga64QQBArG3Kq51ZmLcX+kcB4Cmm6O1nM/U1Ktll5e74H24Yv6ol+cf11fq9HD0nz",
    "ilRoDLlWXzZR3PxbGdQChPzNw8EbO2KacZ2AJS76TOpFUOa/i/h5eRiwqg7SF4aO5pUZ5Tlr1ZSCTkvaKGWzG6ocZqSgeS/I",
    "0fFygDv15lYd+LhnNDH/QUDAgoC5EuKWDRLtRsyGk1YfQUhzUTGAk1mxL47TgeCx4wH7mADWTILpZ6AU1Uo75ILBeT8wq5FQ",
    "xuOqPyyptIRwhgVgnYjOPBO8NXXAaYnw6vMVoezjppdsaGtsixFtv4F34f7366tGwupdzTTWczsVkO5GOOULxnnv2/XWIDVE",
    "NTw6mVLu1Du3dAxhbh4ceUt55PI1febwcAvQ/U8THoVPmFOSasPYniUbKjmD6h8abBvLyQfPVy/yM4OH5kb+17Y3KiIUQlwL",
    "syHbHPVpnz+wKPETWUWIo9pDR6kJldZGbuRyb52YxaN7zO92QOC4/ABAwLW1TmjoAjdlTfTbe1DRJ2D46KZNzunld1U0y6TO",
    "GUX3Nk31ztQpMU2As7wLFCZydJyxx8nSMU+xv8QWZKe2xPIqSpOy4wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABg8QFRsgMEYC",
    "IQCKd41AR0Z5FXRGKEZfSOHK9xQ049tQDyANKa8R3FLTugIhAMCtBmz6z38ZZfLNEuXI6m3Ul6X8l+mK8L+Aowzbxl/n",
);
const VECTOR_MSG: &str = "VGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcyBvdmVyIHRoZSBsYXp5IGRvZy4=";
const VECTOR_CTX: &str =
    "VGhlIGxldGhhcmdpYywgY29sb3JsZXNzIGRvZyBzYXQgYmVuZWF0aCB0aGUgZW5lcmdldGljLCBzdGF0aW9uYXJ5IGZveC4=";
