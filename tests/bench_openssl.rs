//! The OpenSSL column of `tessera-bench --openssl` (cargo feature `openssl-bench`): the
//! post-quantum rows timed in OpenSSL 3.5's default provider, built from source by openssl-src
//! and linked statically, through the EVP interface an application uses.
//!
//! Raw FFI, and kept to this module: the `openssl` crate (0.10.82) has no safe interface for key
//! generation by algorithm name (`EVP_PKEY_CTX_new_from_name`), for KEM encapsulation
//! (`EVP_PKEY_encapsulate`/`EVP_PKEY_decapsulate`) or for SLH-DSA, and only part of ML-DSA; so
//! every row calls OpenSSL the same way, through `openssl-sys`'s declarations (the one function it
//! lacks is declared below). Each pointer is owned by a guard that frees it when dropped, and
//! every return value is checked.
//!
//! Each timed iteration does what an application does for one operation, with the parameters of
//! Tessera's rows: key generation is `EVP_PKEY_CTX_new_from_name` + `EVP_PKEY_keygen_init` +
//! `EVP_PKEY_keygen`; a signature is `EVP_PKEY_CTX_new_from_pkey` + `EVP_PKEY_sign_message_init`
//! (the `EVP_SIGNATURE` fetched once, as OpenSSL advises) + `EVP_PKEY_sign` of the same 64-byte
//! message: pure signing (OpenSSL's default message encoding, M' = 0 ‖ 0 ‖ M), empty context,
//! hedged (OpenSSL's default: fresh randomness from its DRBG for every signature, like Tessera's
//! `CKM_ML_DSA`/`CKM_SLH_DSA` without a parameter); verification the same with
//! `EVP_PKEY_verify_message_init` + `EVP_PKEY_verify`; ML-KEM-768 is `EVP_PKEY_encapsulate_init` +
//! `EVP_PKEY_encapsulate`, `EVP_PKEY_decapsulate_init` + `EVP_PKEY_decapsulate`.
//!
//! The default provider runs no pairwise test on the pairs it generates (only OpenSSL's FIPS
//! provider does), so the key-pair rows "with the pairwise test" add one here, as the aws-lc-rs
//! column does: a signature and its verification, or an encapsulation and its decapsulation.

use std::error::Error;
use std::ffi::{c_char, c_int, c_ulong, CStr};
use std::hint::black_box;
use std::ptr;

use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, KeyType, MlDsaParameterSetType, MlKemParameterSetType, ObjectClass, ParameterSetType,
    SlhDsaParameterSetType,
};
use cryptoki::session::Session;
use openssl_sys as ffi;

use super::{bench, Bench, Module, OpenSslRow, Res, MESSAGE, ML_DSA_65_SIG};

extern "C" {
    // Not declared by openssl-sys 0.9.118.
    fn EVP_PKEY_CTX_new_from_pkey(
        libctx: *mut ffi::OSSL_LIB_CTX,
        pkey: *mut ffi::EVP_PKEY,
        propq: *const c_char,
    ) -> *mut ffi::EVP_PKEY_CTX;
    fn ERR_error_string_n(e: c_ulong, buf: *mut c_char, len: usize);
}

/// Bytes of an SLH-DSA-SHA2-128f signature (FIPS 205, Table 2).
const SLH_DSA_128F_SIG: usize = 17_088;
/// ML-KEM-768 (FIPS 203): ciphertext, encapsulation key, shared secret.
const ML_KEM_768_CT: usize = 1_088;
const ML_KEM_768_EK: usize = 1_184;
const ML_KEM_SS: usize = 32;
/// Public keys: ML-DSA-65 (FIPS 204, Table 2), SLH-DSA-SHA2-128f.
const ML_DSA_65_PK: usize = 1_952;
const SLH_DSA_128F_PK: usize = 32;

/// The version of the OpenSSL linked in, as `OpenSSL_version(OPENSSL_VERSION)` gives it.
pub fn version() -> String {
    // SAFETY: OpenSSL_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::OpenSSL_version(ffi::OPENSSL_VERSION)) }.to_string_lossy().into_owned()
}

/// OpenSSL's error queue, emptied into a message.
fn failed(what: &str) -> Box<dyn Error> {
    let mut reasons = Vec::new();
    loop {
        // SAFETY: ERR_get_error takes no argument; ERR_error_string_n writes at most `len` bytes,
        // NUL included, into the buffer.
        let e = unsafe { ffi::ERR_get_error() };
        if e == 0 {
            break;
        }
        let mut buf = [0 as c_char; 256];
        let s = unsafe {
            ERR_error_string_n(e, buf.as_mut_ptr(), buf.len());
            CStr::from_ptr(buf.as_ptr())
        };
        reasons.push(s.to_string_lossy().into_owned());
    }
    if reasons.is_empty() {
        format!("OpenSSL {what} failed").into()
    } else {
        format!("OpenSSL {what} failed: {}", reasons.join("; ")).into()
    }
}

fn check(rc: c_int, what: &str) -> Res<()> {
    if rc == 1 {
        Ok(())
    } else {
        Err(failed(what))
    }
}

/// An `EVP_PKEY`, freed when dropped.
struct Pkey(*mut ffi::EVP_PKEY);

// SAFETY: an EVP_PKEY is reference-counted and the operations here do not change it; OpenSSL lets
// a key be used from any thread. The benchmarks only move it to the thread that runs them.
unsafe impl Send for Pkey {}

impl Drop for Pkey {
    fn drop(&mut self) {
        // SAFETY: the pointer came from OpenSSL, is non-null and is owned by this guard alone.
        unsafe { ffi::EVP_PKEY_free(self.0) }
    }
}

/// An `EVP_PKEY_CTX`, freed when dropped.
struct Ctx(*mut ffi::EVP_PKEY_CTX);

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: as for Pkey.
        unsafe { ffi::EVP_PKEY_CTX_free(self.0) }
    }
}

/// A fetched `EVP_SIGNATURE` algorithm, freed when dropped.
struct Signature(*mut ffi::EVP_SIGNATURE);

// SAFETY: a fetched algorithm is immutable and reference-counted; OpenSSL shares them between
// threads.
unsafe impl Send for Signature {}

impl Drop for Signature {
    fn drop(&mut self) {
        // SAFETY: as for Pkey.
        unsafe { ffi::EVP_SIGNATURE_free(self.0) }
    }
}

/// The algorithms of the post-quantum rows, by their OpenSSL names.
#[derive(Clone, Copy)]
enum Alg {
    MlDsa65,
    SlhDsaSha2_128f,
    MlKem768,
}

impl Alg {
    fn name(self) -> &'static CStr {
        match self {
            Alg::MlDsa65 => c"ML-DSA-65",
            Alg::SlhDsaSha2_128f => c"SLH-DSA-SHA2-128f",
            Alg::MlKem768 => c"ML-KEM-768",
        }
    }

    fn signature_len(self) -> usize {
        match self {
            Alg::MlDsa65 => ML_DSA_65_SIG,
            Alg::SlhDsaSha2_128f => SLH_DSA_128F_SIG,
            Alg::MlKem768 => 0,
        }
    }

    fn public_len(self) -> usize {
        match self {
            Alg::MlDsa65 => ML_DSA_65_PK,
            Alg::SlhDsaSha2_128f => SLH_DSA_128F_PK,
            Alg::MlKem768 => ML_KEM_768_EK,
        }
    }
}

/// A new key pair: `EVP_PKEY_CTX_new_from_name` + `EVP_PKEY_keygen_init` + `EVP_PKEY_keygen`.
fn generate(alg: Alg) -> Res<Pkey> {
    // SAFETY: a null library context and property query select the defaults; the name is a
    // NUL-terminated static string.
    let ctx = unsafe { ffi::EVP_PKEY_CTX_new_from_name(ptr::null_mut(), alg.name().as_ptr(), ptr::null()) };
    if ctx.is_null() {
        return Err(failed("EVP_PKEY_CTX_new_from_name"));
    }
    let ctx = Ctx(ctx);
    // SAFETY: ctx is a live context; keygen writes a new key into `key` on success.
    check(unsafe { ffi::EVP_PKEY_keygen_init(ctx.0) }, "EVP_PKEY_keygen_init")?;
    let mut key = ptr::null_mut();
    let rc = unsafe { ffi::EVP_PKEY_keygen(ctx.0, &mut key) };
    if key.is_null() {
        return Err(failed("EVP_PKEY_keygen"));
    }
    let key = Pkey(key);
    check(rc, "EVP_PKEY_keygen")?;
    Ok(key)
}

/// The raw public key (FIPS encoding).
fn public_key(key: &Pkey, alg: Alg) -> Res<Vec<u8>> {
    let mut out = vec![0u8; alg.public_len()];
    let mut len = out.len();
    // SAFETY: `out` has room for `len` bytes; OpenSSL sets `len` to the bytes written.
    check(
        unsafe { ffi::EVP_PKEY_get_raw_public_key(key.0, out.as_mut_ptr(), &mut len) },
        "EVP_PKEY_get_raw_public_key",
    )?;
    if len != out.len() {
        return Err(format!("OpenSSL's {:?} public key has {len} bytes, expected {}", alg.name(), out.len()).into());
    }
    Ok(out)
}

/// A public-key-only `EVP_PKEY` parsed from the raw encoding.
fn from_public(alg: Alg, public: &[u8]) -> Res<Pkey> {
    // SAFETY: the key bytes are read, `public.len()` of them.
    let key = unsafe {
        ffi::EVP_PKEY_new_raw_public_key_ex(
            ptr::null_mut(),
            alg.name().as_ptr(),
            ptr::null(),
            public.as_ptr(),
            public.len(),
        )
    };
    if key.is_null() {
        return Err(failed("EVP_PKEY_new_raw_public_key_ex"));
    }
    Ok(Pkey(key))
}

/// A context for one operation on `key`.
fn ctx_for(key: &Pkey) -> Res<Ctx> {
    // SAFETY: key is a live EVP_PKEY (the context takes its own reference).
    let ctx = unsafe { EVP_PKEY_CTX_new_from_pkey(ptr::null_mut(), key.0, ptr::null()) };
    if ctx.is_null() {
        return Err(failed("EVP_PKEY_CTX_new_from_pkey"));
    }
    Ok(Ctx(ctx))
}

fn fetch(alg: Alg) -> Res<Signature> {
    // SAFETY: as for EVP_PKEY_CTX_new_from_name.
    let s = unsafe { ffi::EVP_SIGNATURE_fetch(ptr::null_mut(), alg.name().as_ptr(), ptr::null()) };
    if s.is_null() {
        return Err(failed("EVP_SIGNATURE_fetch"));
    }
    Ok(Signature(s))
}

/// Signs `msg` into `out` (pure, empty context, hedged: OpenSSL's defaults); returns the length.
fn sign(key: &Pkey, alg: &Signature, msg: &[u8], out: &mut [u8]) -> Res<usize> {
    let ctx = ctx_for(key)?;
    let mut len = out.len();
    // SAFETY: live context and algorithm; no parameters (null); `out` has room for `len` bytes
    // and OpenSSL sets `len` to the bytes written; `msg` is read.
    unsafe {
        check(ffi::EVP_PKEY_sign_message_init(ctx.0, alg.0, ptr::null()), "EVP_PKEY_sign_message_init")?;
        check(ffi::EVP_PKEY_sign(ctx.0, out.as_mut_ptr(), &mut len, msg.as_ptr(), msg.len()), "EVP_PKEY_sign")?;
    }
    Ok(len)
}

/// Whether `sig` is a valid signature of `msg` (pure, empty context).
fn verify(key: &Pkey, alg: &Signature, msg: &[u8], sig: &[u8]) -> Res<bool> {
    let ctx = ctx_for(key)?;
    // SAFETY: as for `sign`; the signature and the message are read.
    unsafe {
        check(ffi::EVP_PKEY_verify_message_init(ctx.0, alg.0, ptr::null()), "EVP_PKEY_verify_message_init")?;
        match ffi::EVP_PKEY_verify(ctx.0, sig.as_ptr(), sig.len(), msg.as_ptr(), msg.len()) {
            1 => Ok(true),
            0 => {
                // A signature that does not verify leaves a reason on the queue.
                ffi::ERR_clear_error();
                Ok(false)
            }
            _ => Err(failed("EVP_PKEY_verify")),
        }
    }
}

/// Encapsulates to `key` into `ct` and `ss`; returns their lengths.
fn encapsulate(key: &Pkey, ct: &mut [u8], ss: &mut [u8]) -> Res<(usize, usize)> {
    let ctx = ctx_for(key)?;
    let (mut ct_len, mut ss_len) = (ct.len(), ss.len());
    // SAFETY: live context; the output buffers have room for the lengths given, which OpenSSL
    // sets to the bytes written.
    unsafe {
        check(ffi::EVP_PKEY_encapsulate_init(ctx.0, ptr::null()), "EVP_PKEY_encapsulate_init")?;
        check(
            ffi::EVP_PKEY_encapsulate(ctx.0, ct.as_mut_ptr(), &mut ct_len, ss.as_mut_ptr(), &mut ss_len),
            "EVP_PKEY_encapsulate",
        )?;
    }
    Ok((ct_len, ss_len))
}

/// Decapsulates `ct` with `key` into `ss`; returns its length.
fn decapsulate(key: &Pkey, ct: &[u8], ss: &mut [u8]) -> Res<usize> {
    let ctx = ctx_for(key)?;
    let mut ss_len = ss.len();
    // SAFETY: as for `encapsulate`; the ciphertext is read.
    unsafe {
        check(ffi::EVP_PKEY_decapsulate_init(ctx.0, ptr::null()), "EVP_PKEY_decapsulate_init")?;
        check(
            ffi::EVP_PKEY_decapsulate(ctx.0, ss.as_mut_ptr(), &mut ss_len, ct.as_ptr(), ct.len()),
            "EVP_PKEY_decapsulate",
        )?;
    }
    Ok(ss_len)
}

fn expect_len(what: &str, got: usize, want: usize) -> Res<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("OpenSSL's {what} has {got} bytes, expected {want}").into())
    }
}

/// One signature, checked for its size.
fn sign_checked(key: &Pkey, s: &Signature, alg: Alg, out: &mut [u8]) -> Res<()> {
    let n = sign(key, s, MESSAGE, out)?;
    expect_len("signature", n, alg.signature_len())
}

/// The timed part of one row.
pub fn setup(row: OpenSslRow) -> Res<Box<dyn Bench>> {
    match row {
        OpenSslRow::KeyPair(alg) => {
            let alg = alg_of(alg);
            bench(move || {
                black_box(generate(alg)?);
                Ok(())
            })
        }
        OpenSslRow::KeyPairTested(kind) => {
            let alg = alg_of(kind);
            match alg {
                Alg::MlKem768 => bench(move || {
                    let k = generate(alg)?;
                    let (mut ct, mut ss, mut ss2) = ([0u8; ML_KEM_768_CT], [0u8; ML_KEM_SS], [0u8; ML_KEM_SS]);
                    encapsulate(&k, &mut ct, &mut ss)?;
                    decapsulate(&k, &ct, &mut ss2)?;
                    if ss != ss2 {
                        return Err("OpenSSL ML-KEM pairwise test: the shared secrets differ".into());
                    }
                    black_box(k);
                    Ok(())
                }),
                _ => {
                    let s = fetch(alg)?;
                    let mut sig = vec![0u8; alg.signature_len()];
                    bench(move || {
                        let k = generate(alg)?;
                        sign_checked(&k, &s, alg, &mut sig)?;
                        if !verify(&k, &s, MESSAGE, &sig)? {
                            return Err("OpenSSL pairwise test: the signature does not verify".into());
                        }
                        black_box(k);
                        Ok(())
                    })
                }
            }
        }
        OpenSslRow::Sign(kind) => {
            let alg = alg_of(kind);
            let (k, s) = (generate(alg)?, fetch(alg)?);
            let mut sig = vec![0u8; alg.signature_len()];
            bench(move || {
                sign_checked(&k, &s, alg, &mut sig)?;
                black_box(&sig);
                Ok(())
            })
        }
        OpenSslRow::Verify(kind) => {
            let alg = alg_of(kind);
            let (k, s) = (generate(alg)?, fetch(alg)?);
            let mut sig = vec![0u8; alg.signature_len()];
            sign_checked(&k, &s, alg, &mut sig)?;
            let public = public_key(&k, alg)?;
            // As the floor of each row: ML-DSA's public key parsed for every verification (as the
            // module parses its object's), SLH-DSA's parsed once.
            let parsed = match alg {
                Alg::MlDsa65 => None,
                _ => Some(from_public(alg, &public)?),
            };
            bench(move || {
                let fresh;
                let key = match &parsed {
                    Some(k) => k,
                    None => {
                        fresh = from_public(alg, &public)?;
                        &fresh
                    }
                };
                if !verify(key, &s, MESSAGE, &sig)? {
                    return Err("OpenSSL: the signature does not verify".into());
                }
                Ok(())
            })
        }
        OpenSslRow::Encapsulate => {
            let k = generate(Alg::MlKem768)?;
            let ek = from_public(Alg::MlKem768, &public_key(&k, Alg::MlKem768)?)?;
            bench(move || {
                let (mut ct, mut ss) = ([0u8; ML_KEM_768_CT], [0u8; ML_KEM_SS]);
                let (c, s) = encapsulate(&ek, &mut ct, &mut ss)?;
                expect_len("ciphertext", c, ML_KEM_768_CT)?;
                expect_len("shared secret", s, ML_KEM_SS)?;
                black_box((&ct, &ss));
                Ok(())
            })
        }
        OpenSslRow::Decapsulate => {
            let k = generate(Alg::MlKem768)?;
            let (mut ct, mut ss) = ([0u8; ML_KEM_768_CT], [0u8; ML_KEM_SS]);
            encapsulate(&k, &mut ct, &mut ss)?;
            bench(move || {
                let mut out = [0u8; ML_KEM_SS];
                expect_len("shared secret", decapsulate(&k, &ct, &mut out)?, ML_KEM_SS)?;
                black_box(&out);
                Ok(())
            })
        }
    }
}

fn alg_of(kind: super::PqAlg) -> Alg {
    match kind {
        super::PqAlg::MlDsa65 => Alg::MlDsa65,
        super::PqAlg::SlhDsaSha2_128f => Alg::SlhDsaSha2_128f,
        super::PqAlg::MlKem768 => Alg::MlKem768,
    }
}

// ---------------------------------------------------------------------------
// Interoperation with Tessera
// ---------------------------------------------------------------------------

/// Checks, before anything is timed, that OpenSSL and Tessera do the same cryptography: for
/// ML-DSA-65 and SLH-DSA-SHA2-128f a signature by each verifies with the other's import of the
/// signer's public key (and a signature with one bit flipped does not); for ML-KEM-768 each
/// encapsulates to the other's public key and both hold the same shared secret (read from
/// Tessera's key when it encapsulates; when it decapsulates, its key is sensitive and both
/// secrets key an HMAC of the message instead). Returns one line
/// per check.
pub fn interop(m: &Module) -> Res<Vec<String>> {
    let session = m.user_session(true)?;
    let mut lines = Vec::new();
    for (alg, key_type, set) in [
        (Alg::MlDsa65, KeyType::ML_DSA, ParameterSetType::from(MlDsaParameterSetType::ML_DSA_65)),
        (Alg::SlhDsaSha2_128f, KeyType::SLH_DSA, ParameterSetType::from(SlhDsaParameterSetType::SHA2_128F)),
    ] {
        lines.push(signatures(&session, alg, key_type, set)?);
    }
    lines.push(kem(&session)?);
    Ok(lines)
}

fn signature_mechanism(alg: Alg) -> Mechanism<'static> {
    let params = SignAdditionalContext::new(HedgeType::Preferred, None);
    match alg {
        Alg::MlDsa65 => Mechanism::MlDsa(params),
        _ => Mechanism::SlhDsa(params),
    }
}

fn signatures(session: &Session, alg: Alg, key_type: KeyType, set: ParameterSetType) -> Res<String> {
    let name = alg.name().to_string_lossy();
    let s = fetch(alg)?;
    // OpenSSL signs; Tessera verifies with the public key imported.
    let k = generate(alg)?;
    let mut sig = vec![0u8; alg.signature_len()];
    sign_checked(&k, &s, alg, &mut sig)?;
    let imported = session.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(key_type),
        Attribute::ParameterSet(set),
        Attribute::Value(public_key(&k, alg)?),
        Attribute::Token(false),
        Attribute::Verify(true),
    ])?;
    session
        .verify(&signature_mechanism(alg), imported, MESSAGE, &sig)
        .map_err(|e| format!("Tessera rejects OpenSSL's {name} signature: {e}"))?;
    let mut bad = sig.clone();
    bad[sig.len() / 2] ^= 1;
    if session.verify(&signature_mechanism(alg), imported, MESSAGE, &bad).is_ok() {
        return Err(format!("Tessera accepts an altered OpenSSL {name} signature").into());
    }
    session.destroy_object(imported)?;

    // Tessera signs; OpenSSL verifies with the public key exported.
    let public = vec![Attribute::Token(false), Attribute::Verify(true), Attribute::ParameterSet(set)];
    let private =
        vec![Attribute::Token(false), Attribute::Private(true), Attribute::Sensitive(true), Attribute::Sign(true)];
    let mech = match alg {
        Alg::MlDsa65 => Mechanism::MlDsaKeyPairGen,
        _ => Mechanism::SlhDsaKeyPairGen,
    };
    let (pub_h, priv_h) = session.generate_key_pair(&mech, &public, &private)?;
    let tsig = session.sign(&signature_mechanism(alg), priv_h, MESSAGE)?;
    expect_len("Tessera signature (against OpenSSL's size)", tsig.len(), alg.signature_len())?;
    let value = session.get_attributes(pub_h, &[AttributeType::Value])?;
    let Some(Attribute::Value(tpub)) = value.into_iter().next() else {
        return Err("Tessera's public key has no CKA_VALUE".into());
    };
    let tkey = from_public(alg, &tpub)?;
    if !verify(&tkey, &s, MESSAGE, &tsig)? {
        return Err(format!("OpenSSL rejects Tessera's {name} signature").into());
    }
    let mut bad = tsig.clone();
    bad[tsig.len() / 2] ^= 1;
    if verify(&tkey, &s, MESSAGE, &bad)? {
        return Err(format!("OpenSSL accepts an altered Tessera {name} signature").into());
    }
    session.destroy_object(pub_h)?;
    session.destroy_object(priv_h)?;
    Ok(format!(
        "{name}: an OpenSSL signature verifies in Tessera and a Tessera signature in OpenSSL \
         ({} bytes each; one flipped bit is refused by both)",
        alg.signature_len()
    ))
}

/// A 32-byte extractable secret, so that the two shared secrets can be compared.
fn readable_secret() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ]
}

/// A 32-byte secret for HMAC.
fn hmac_secret() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sign(true),
    ]
}

fn secret_value(session: &Session, h: cryptoki::object::ObjectHandle) -> Res<Vec<u8>> {
    let value = session.get_attributes(h, &[AttributeType::Value])?;
    session.destroy_object(h)?;
    match value.into_iter().next() {
        Some(Attribute::Value(v)) => Ok(v),
        _ => Err("Tessera's shared secret has no CKA_VALUE".into()),
    }
}

fn kem(session: &Session) -> Res<String> {
    let alg = Alg::MlKem768;
    // Tessera encapsulates to OpenSSL's public key; OpenSSL decapsulates.
    let k = generate(alg)?;
    let imported = session.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::ML_KEM),
        Attribute::ParameterSet(MlKemParameterSetType::ML_KEM_768.into()),
        Attribute::Value(public_key(&k, alg)?),
        Attribute::Token(false),
        Attribute::Encapsulate(true),
    ])?;
    let (ct, h) = session.encapsulate_key(&Mechanism::MlKem, imported, &readable_secret())?;
    expect_len("ciphertext (Tessera's, against OpenSSL's size)", ct.len(), ML_KEM_768_CT)?;
    let tessera_ss = secret_value(session, h)?;
    let mut ss = [0u8; ML_KEM_SS];
    expect_len("shared secret", decapsulate(&k, &ct, &mut ss)?, ML_KEM_SS)?;
    if tessera_ss != ss {
        return Err("ML-KEM-768: OpenSSL decapsulates another secret than Tessera encapsulated".into());
    }
    session.destroy_object(imported)?;

    // OpenSSL encapsulates to Tessera's public key; Tessera decapsulates.
    let public = vec![
        Attribute::Token(false),
        Attribute::Encapsulate(true),
        Attribute::ParameterSet(MlKemParameterSetType::ML_KEM_768.into()),
    ];
    let private = vec![Attribute::Token(false), Attribute::Private(true), Attribute::Decapsulate(true)];
    let (pub_h, priv_h) = session.generate_key_pair(&Mechanism::MlKemKeyPairGen, &public, &private)?;
    let value = session.get_attributes(pub_h, &[AttributeType::Value])?;
    let Some(Attribute::Value(tpub)) = value.into_iter().next() else {
        return Err("Tessera's ML-KEM public key has no CKA_VALUE".into());
    };
    let ek = from_public(alg, &tpub)?;
    let (mut ct, mut ss) = ([0u8; ML_KEM_768_CT], [0u8; ML_KEM_SS]);
    let (c, s) = encapsulate(&ek, &mut ct, &mut ss)?;
    expect_len("ciphertext", c, ML_KEM_768_CT)?;
    expect_len("shared secret", s, ML_KEM_SS)?;
    // A key Tessera makes by decapsulation is always sensitive: the two secrets are compared
    // through an HMAC-SHA-256 of the message keyed with each.
    let h = session.decapsulate_key(&Mechanism::MlKem, priv_h, &hmac_secret(), &ct)?;
    let tessera_mac = session.sign(&Mechanism::Sha256Hmac, h, MESSAGE)?;
    session.destroy_object(h)?;
    let openssl_mac = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &ss), MESSAGE);
    if tessera_mac != openssl_mac.as_ref() {
        return Err("ML-KEM-768: Tessera decapsulates another secret than OpenSSL encapsulated".into());
    }
    session.destroy_object(pub_h)?;
    session.destroy_object(priv_h)?;
    Ok(format!(
        "ML-KEM-768: each side decapsulates the secret the other encapsulated to its public key \
         ({ML_KEM_768_EK}-byte keys, {ML_KEM_768_CT}-byte ciphertexts)"
    ))
}
