//! Known-answer tests for every approved algorithm implementation, with the vectors of
//! `kat-vectors/` embedded at build time. Each test runs through the code the mechanisms run: the
//! registered mechanism itself (`mechanisms::registry()`, given a key object made from the
//! vector) or, where a mechanism's computation starts from a value no vector can reach through
//! the mechanism (the ECDH KDFs after Z, the PBKDF2 loop of the PRFs aws-lc-rs lacks), the
//! mechanism's own function for it. Each compares byte for byte; the signature KATs also verify.
//!
//! aws-lc's own self-tests (`crypto::selftest`) cover what aws-lc computes below these paths; the
//! KATs here cover what Tessera adds (paddings, encodings, KDF loops, the HMAC and SHA-3 of the
//! RustCrypto crates) and the aws-lc entry points Tessera calls.

use crate::mechanisms::param::{GcmParams, HkdfParams, Pbkdf2Params};
use crate::mechanisms::{registry, Param};
use crate::object::{ulong, AttrMap, Object, Value};
use cryptoki_sys::*;
use serde_json::Value as Json;
use std::num::NonZeroU32;
use zeroize::Zeroizing;

static SHA: &str = include_str!("../../../kat-vectors/sha.json");
static AES: &str = include_str!("../../../kat-vectors/aes.json");
static HMAC: &str = include_str!("../../../kat-vectors/hmac.json");
static KDF: &str = include_str!("../../../kat-vectors/kdf.json");
static RSA: &str = include_str!("../../../kat-vectors/rsa.json");
static ECC: &str = include_str!("../../../kat-vectors/ecc.json");
static MLDSA: &str = include_str!("../../../kat-vectors/mldsa.json");
static SLHDSA: &str = include_str!("../../../kat-vectors/slhdsa.json");
static EDDSA: &str = include_str!("../../../kat-vectors/eddsa.json");
static DRBG: &str = include_str!("../../../kat-vectors/drbg.json");

/// The vector files, parsed once per process (the first self-test parses them; later ones, at
/// each `C_Initialize` or `T_SelfTest`, reuse them).
static FILES: [&str; 10] = [SHA, AES, HMAC, KDF, RSA, ECC, MLDSA, SLHDSA, EDDSA, DRBG];

/// Whether a test runs unharmed. Builds with the `fault-injection` feature (test builds only)
/// fail the test named in `TESSERA_FAIL_SELFTEST`, so the test suite can prove that each failure
/// reaches the error state.
pub fn healthy(name: &str) -> bool {
    #[cfg(feature = "fault-injection")]
    {
        if std::env::var("TESSERA_FAIL_SELFTEST").is_ok_and(|v| v == name) {
            return false;
        }
    }
    let _ = name;
    true
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn hex(v: &Json, field: &str) -> Option<Vec<u8>> {
    unhex(v.get(field)?.as_str()?)
}

/// The parsed file `text` (one of [`FILES`], told apart by address).
fn parse(text: &'static str) -> &'static Json {
    static PARSED: std::sync::OnceLock<Vec<Json>> = std::sync::OnceLock::new();
    let all = PARSED.get_or_init(|| FILES.iter().map(|t| serde_json::from_str(t).unwrap_or(Json::Null)).collect());
    let i = FILES.iter().position(|t| std::ptr::eq(t.as_ptr(), text.as_ptr()));
    i.and_then(|i| all.get(i)).unwrap_or(&Json::Null)
}

fn vectors(text: &'static str) -> &'static [Json] {
    parse(text).get("vectors").and_then(|v| v.as_array()).map(|v| v.as_slice()).unwrap_or_default()
}

fn find(text: &'static str, name: &str) -> Option<&'static Json> {
    vectors(text).iter().find(|v| v.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// Compares a computed value with the expected one, unless a fault is injected for `name`.
fn same(name: &str, got: Option<Vec<u8>>, want: Option<Vec<u8>>) -> bool {
    healthy(name) && got.is_some() && got == want
}

/// A key object of the vector's key: class, key type and the given attributes, as the object
/// store hands them to a mechanism.
fn object(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE, attrs: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>) -> Object {
    let mut m = AttrMap::new();
    m.insert(CKA_CLASS, ulong(class));
    m.insert(CKA_KEY_TYPE, ulong(key_type));
    for (t, v) in attrs {
        m.insert(t, Value::Owned(v));
    }
    Object::new(m)
}

fn secret(key_type: CK_KEY_TYPE, value: Vec<u8>) -> Object {
    object(CKO_SECRET_KEY, key_type, vec![(CKA_VALUE, value)])
}

/// `C_Sign` through the registered mechanism.
fn sign(mech: CK_MECHANISM_TYPE, param: &Param, key: &Object, msg: &[u8]) -> Option<Vec<u8>> {
    let mut op = registry().get(mech).ok()?.sign(param, key).ok()?;
    op.update(msg).ok()?;
    op.finish().ok()
}

/// `C_Verify` through the registered mechanism.
fn verify(mech: CK_MECHANISM_TYPE, param: &Param, key: &Object, msg: &[u8], sig: &[u8]) -> bool {
    let Ok(m) = registry().get(mech) else { return false };
    let Ok(mut op) = m.verify(param, key) else { return false };
    op.update(msg).is_ok() && op.finish(sig).is_ok()
}

/// Single-part `C_Encrypt` (`encrypt`) or `C_Decrypt` through the registered mechanism.
fn cipher(mech: CK_MECHANISM_TYPE, encrypt: bool, param: &Param, key: &Object, data: &[u8]) -> Option<Vec<u8>> {
    let m = registry().get(mech).ok()?;
    let op = if encrypt { m.encrypt(param, key) } else { m.decrypt(param, key) }.ok()?;
    op.one_shot(data).ok()
}

/// Multi-part (`C_EncryptUpdate`, `C_EncryptFinal`) through the registered mechanism.
fn cipher_parts(mech: CK_MECHANISM_TYPE, encrypt: bool, param: &Param, key: &Object, data: &[u8]) -> Option<Vec<u8>> {
    let m = registry().get(mech).ok()?;
    let mut op = if encrypt { m.encrypt(param, key) } else { m.decrypt(param, key) }.ok()?;
    let (a, b) = data.split_at(data.len() / 2);
    let mut out = op.update(a).ok()?;
    out.extend(op.update(b).ok()?);
    out.extend(op.finish().ok()?);
    Some(out)
}

/// Encrypts `msg` and decrypts `ct` in one call each; whether both give the vector's values.
fn round_trip(name: &str, mech: CK_MECHANISM_TYPE, param: &Param, key: &Object, msg: &[u8], ct: &[u8]) -> bool {
    same(name, cipher(mech, true, param, key, msg), Some(ct.to_vec()))
        && cipher(mech, false, param, key, ct).as_deref() == Some(msg)
}

fn sha(name: &str) -> bool {
    let Some(v) = find(SHA, name) else { return false };
    let mech = match name {
        "SHA-1" => CKM_SHA_1,
        "SHA-224" => CKM_SHA224,
        "SHA-256" => CKM_SHA256,
        "SHA-384" => CKM_SHA384,
        "SHA-512" => CKM_SHA512,
        "SHA3-224" => CKM_SHA3_224,
        "SHA3-256" => CKM_SHA3_256,
        "SHA3-384" => CKM_SHA3_384,
        "SHA3-512" => CKM_SHA3_512,
        _ => return false,
    };
    let run = || -> Option<Vec<u8>> {
        let mut op = registry().get(mech).ok()?.digest(&Param::None).ok()?;
        op.update(&hex(v, "msg")?);
        Some(op.finish())
    };
    same(name, run(), hex(v, "md"))
}

/// `CKM_AES_GCM`: the one-shot path (aws-lc's AEAD with the key schedule kept with the key) and
/// the streaming path (aws-lc's EVP GCM) both seal to the vector; both open it again.
fn aes_gcm() -> bool {
    let name = "AES-256-GCM";
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<bool> {
        let key = secret(CKK_AES, hex(v, "key")?);
        let param = Param::Gcm(GcmParams { iv: hex(v, "iv")?, aad: hex(v, "aad")?, tag_bits: 128 });
        let (msg, want) = (hex(v, "msg")?, [hex(v, "ct")?, hex(v, "tag")?].concat());
        Some(
            same(name, cipher(CKM_AES_GCM, true, &param, &key, &msg), Some(want.clone()))
                && cipher_parts(CKM_AES_GCM, true, &param, &key, &msg) == Some(want.clone())
                && cipher(CKM_AES_GCM, false, &param, &key, &want) == Some(msg.clone())
                && cipher_parts(CKM_AES_GCM, false, &param, &key, &want) == Some(msg),
        )
    };
    run() == Some(true)
}

/// `CKM_AES_CBC_PAD` (Tessera's PKCS #7 padding over aws-lc's CBC) on the padded vector, and
/// `CKM_AES_CBC` on its first block (CBC's first ciphertext block depends on the first plaintext
/// block alone).
fn aes_cbc() -> bool {
    let name = "AES-256-CBC";
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<bool> {
        let key = secret(CKK_AES, hex(v, "key")?);
        let param = Param::Bytes(hex(v, "iv")?);
        let (msg, ct) = (hex(v, "msg")?, hex(v, "ct")?);
        let (m1, c1) = (msg.get(..16)?, ct.get(..16)?);
        Some(
            round_trip(name, CKM_AES_CBC_PAD, &param, &key, &msg, &ct)
                && round_trip(name, CKM_AES_CBC, &param, &key, m1, c1),
        )
    };
    run() == Some(true)
}

fn aes_ecb() -> bool {
    let name = "AES-256-ECB";
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<bool> {
        let key = secret(CKK_AES, hex(v, "key")?);
        Some(round_trip(name, CKM_AES_ECB, &Param::None, &key, &hex(v, "msg")?, &hex(v, "ct")?))
    };
    run() == Some(true)
}

/// `CKM_AES_CTR` with a 128-bit counter from the vector's initial counter block.
fn aes_ctr() -> bool {
    let name = "AES-256-CTR";
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<bool> {
        let key = secret(CKK_AES, hex(v, "key")?);
        let param = Param::Ctr { counter_bits: 128, block: hex(v, "counter")?.try_into().ok()? };
        let (msg, ct) = (hex(v, "msg")?, hex(v, "ct")?);
        Some(
            round_trip(name, CKM_AES_CTR, &param, &key, &msg, &ct)
                && cipher_parts(CKM_AES_CTR, true, &param, &key, &msg) == Some(ct),
        )
    };
    run() == Some(true)
}

/// `CKM_AES_KEY_WRAP` (RFC 3394) and `CKM_AES_KEY_WRAP_KWP` (RFC 5649): `C_WrapKey` and
/// `C_UnwrapKey` of the vector's key bytes.
fn aes_wrap(name: &str, mech: CK_MECHANISM_TYPE) -> bool {
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<bool> {
        let key = secret(CKK_AES, hex(v, "key")?);
        let m = registry().get(mech).ok()?;
        let (msg, ct) = (hex(v, "msg")?, hex(v, "ct")?);
        Some(
            same(name, m.wrap(&Param::None, &key, &msg).ok(), Some(ct.clone()))
                && m.unwrap(&Param::None, &key, &ct).ok() == Some(msg),
        )
    };
    run() == Some(true)
}

fn aes_kw() -> bool {
    aes_wrap("AES-256-KW", CKM_AES_KEY_WRAP)
}

fn aes_kwp() -> bool {
    aes_wrap("AES-256-KWP", CKM_AES_KEY_WRAP_KWP)
}

/// `CKM_AES_CMAC` (sign and verify) and `CKM_AES_CMAC_GENERAL` with an 8-byte tag.
fn aes_cmac() -> bool {
    let name = "AES-256-CMAC";
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<bool> {
        let key = secret(CKK_AES, hex(v, "key")?);
        let (msg, tag) = (hex(v, "msg")?, hex(v, "tag")?);
        let short = Param::Ulong(8);
        Some(
            same(name, sign(CKM_AES_CMAC, &Param::None, &key, &msg), Some(tag.clone()))
                && verify(CKM_AES_CMAC, &Param::None, &key, &msg, &tag)
                && sign(CKM_AES_CMAC_GENERAL, &short, &key, &msg).as_deref() == tag.get(..8)
                && verify(CKM_AES_CMAC_GENERAL, &short, &key, &msg, tag.get(..8)?),
        )
    };
    run() == Some(true)
}

/// HMAC through its mechanism: aws-lc's for SHA-256, the RustCrypto `hmac` and `sha3` crates'
/// for the SHA-3 family (and with them RustCrypto's SHA3-256/384/512, which only HMAC uses).
fn hmac(name: &str) -> bool {
    let Some(v) = find(HMAC, name) else { return false };
    let mech = match name {
        "HMAC-SHA-256" => CKM_SHA256_HMAC,
        "HMAC-SHA3-224" => CKM_SHA3_224_HMAC,
        "HMAC-SHA3-256" => CKM_SHA3_256_HMAC,
        "HMAC-SHA3-384" => CKM_SHA3_384_HMAC,
        "HMAC-SHA3-512" => CKM_SHA3_512_HMAC,
        _ => return false,
    };
    let run = || -> Option<bool> {
        let key = secret(CKK_GENERIC_SECRET, hex(v, "key")?);
        let (msg, tag) = (hex(v, "msg")?, hex(v, "tag")?);
        Some(
            same(name, sign(mech, &Param::None, &key, &msg), Some(tag.clone()))
                && verify(mech, &Param::None, &key, &msg, &tag),
        )
    };
    run() == Some(true)
}

/// The known-answer test of the integrity test's algorithm, through the very function the test
/// computes its value with (`integrity::gcm`, aws-lc's AES-256-GCM taking its additional data in
/// parts), run right before every integrity test (FIPS 140-3 IG 10.3.A: the algorithm of the
/// integrity test is tested before the test relies on it). Two vectors of `kat-vectors/aes.json`,
/// their additional data fed in parts (cut where the numbers say) as the test feeds the library
/// file: a GMAC (no plaintext), and 513 bytes of data, enough for the many-block GHASH code that
/// authenticates the file's bulk. One result per vector, named after it.
pub fn integrity_algorithm() -> Vec<(String, bool)> {
    const VECTORS: [(&str, &[usize]); 2] =
        [("GMAC-AES-256", &[2]), ("AES-256-GCM, 513 bytes of additional data", &[1, 257])];
    let run = |name: &str, cuts: &[usize]| -> Option<bool> {
        let v = find(AES, name)?;
        let (key, iv, aad, msg) = (hex(v, "key")?, hex(v, "iv")?, hex(v, "aad")?, hex(v, "msg")?);
        let mut parts = Vec::new();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.clamp(at, aad.len());
            parts.push(&aad[at..cut]);
            at = cut;
        }
        parts.push(&aad[at..]);
        let (ct, tag) = super::integrity::gcm(&key, &iv, &parts, &msg)?;
        Some(same(name, Some(ct), hex(v, "ct")) && same(name, Some(tag.to_vec()), hex(v, "tag")))
    };
    VECTORS
        .iter()
        .map(|(name, cuts)| (format!("{name} (the integrity test's algorithm, aws-lc)"), run(name, cuts) == Some(true)))
        .collect()
}

/// `CKM_HKDF_DERIVE`: Tessera's HKDF-Extract and HKDF-Expand over the HMAC of `mechanisms::hmac`.
fn hkdf_sha256() -> bool {
    let name = "HKDF-SHA-256";
    let Some(v) = find(KDF, name) else { return false };
    let run = || -> Option<Vec<u8>> {
        let want = hex(v, "okm")?;
        let param = Param::Hkdf(HkdfParams {
            extract: true,
            expand: true,
            prf: CKM_SHA256,
            salt_type: CKF_HKDF_SALT_DATA,
            salt: Zeroizing::new(hex(v, "salt")?),
            salt_key: 0,
            info: hex(v, "info")?,
        });
        let base = secret(CKK_GENERIC_SECRET, hex(v, "ikm")?);
        registry().get(CKM_HKDF_DERIVE).ok()?.derive(&param, &base, Some(want.len())).ok()
    };
    same(name, run(), hex(v, "okm"))
}

/// `CKM_PKCS5_PBKD2` with HMAC-SHA-256 (aws-lc's PBKDF2), as `C_GenerateKey` runs it.
fn pbkdf2_sha256() -> bool {
    let name = "PBKDF2-HMAC-SHA-256";
    let Some(v) = find(KDF, name) else { return false };
    let run = || -> Option<Vec<u8>> {
        let want = hex(v, "dk")?;
        let param = Param::Pbkdf2(Pbkdf2Params {
            salt_source: CKZ_SALT_SPECIFIED,
            salt: hex(v, "salt")?,
            iterations: v.get("iterations")?.as_u64()? as CK_ULONG,
            prf: CKP_PKCS5_PBKD2_HMAC_SHA256,
            prf_data: Vec::new(),
            password: Zeroizing::new(hex(v, "password")?),
        });
        let mut template = AttrMap::new();
        template.insert(CKA_VALUE_LEN, ulong(want.len() as CK_ULONG));
        let key = registry().get(CKM_PKCS5_PBKD2).ok()?.generate_key(&param, &template).ok()?;
        key.material.iter().find(|(t, _)| *t == CKA_VALUE).map(|(_, v)| v.to_vec())
    };
    same(name, run(), hex(v, "dk"))
}

/// Tessera's PBKDF2 loop (`mechanisms::kdf::pbkdf2_loop`), which `CKM_PKCS5_PBKD2` runs for
/// HMAC-SHA-224 (aws-lc-rs has no PBKDF2 with it), on a two-iteration vector.
fn pbkdf2_loop() -> bool {
    let name = "PBKDF2 iteration loop (HMAC-SHA-1)";
    let Some(v) = find(KDF, name) else { return false };
    let run = || -> Option<Vec<u8>> {
        let mut out = vec![0u8; hex(v, "dk")?.len()];
        let it = NonZeroU32::new(u32::try_from(v.get("iterations")?.as_u64()?).ok()?)?;
        let (pw, salt) = (hex(v, "password")?, hex(v, "salt")?);
        crate::mechanisms::kdf::pbkdf2_loop(crate::mechanisms::hmac::Hash::Sha1, &pw, &salt, it, &mut out).ok()?;
        Some(out)
    };
    same(name, run(), hex(v, "dk"))
}

/// The hash KDFs of `CKM_ECDH1_DERIVE` after the shared secret Z: `kdf` names the KDF as
/// `CK_ECDH1_DERIVE_PARAMS` does, and the mechanism's own KDF function runs.
fn ecdh_kdf(name: &str, kdf: CK_EC_KDF_TYPE) -> bool {
    let Some(v) = find(KDF, name) else { return false };
    let run = || -> Option<Vec<u8>> {
        let (alg, order) = crate::mechanisms::ec::kdf_hash(kdf).ok()??;
        let len = hex(v, "okm")?.len();
        Some(crate::mechanisms::ec::hash_kdf(alg, order, &hex(v, "z")?, &hex(v, "shared")?, len))
    };
    same(name, run(), hex(v, "okm"))
}

fn x963_kdf() -> bool {
    ecdh_kdf("ANS X9.63 KDF SHA-256", CKD_SHA256_KDF)
}

fn sp800_56c_kdf() -> bool {
    ecdh_kdf("SP 800-56C one-step KDF SHA-256", CKD_SHA256_KDF_SP800)
}

/// The RSA keys of `rsa.json`'s `keys` entry `id`: the private key object (when the entry has the
/// private components) and the public one.
fn rsa_pair(id: &str) -> Option<RsaPair> {
    let k = parse(RSA).get("keys")?.get(id)?;
    let n = hex(k, "modulus")?;
    let e = hex(k, "publicExponent")?;
    let private = || -> Option<Object> {
        Some(object(
            CKO_PRIVATE_KEY,
            CKK_RSA,
            vec![
                (CKA_MODULUS, n.clone()),
                (CKA_PUBLIC_EXPONENT, e.clone()),
                (CKA_PRIVATE_EXPONENT, hex(k, "privateExponent")?),
                (CKA_PRIME_1, hex(k, "prime1")?),
                (CKA_PRIME_2, hex(k, "prime2")?),
                (CKA_EXPONENT_1, hex(k, "exponent1")?),
                (CKA_EXPONENT_2, hex(k, "exponent2")?),
                (CKA_COEFFICIENT, hex(k, "coefficient")?),
            ],
        ))
    };
    let private = private();
    let public = object(CKO_PUBLIC_KEY, CKK_RSA, vec![(CKA_MODULUS, n), (CKA_PUBLIC_EXPONENT, e)]);
    Some((private, public))
}

/// A private key (if the vectors give it) and its public key.
type RsaPair = (Option<Object>, Object);

/// The RSA keys made so far in a run, by their `keys` entry.
type RsaKeys = Vec<(String, Option<RsaPair>)>;

/// The RSA vector `name` with its key pair (parsed once per pair: the RSA KATs share one key, so
/// its aws-lc form is made once, kept with the object as for any key).
fn rsa_vector<'a>(name: &str, keys: &'a mut RsaKeys) -> Option<(&'static Json, &'a RsaPair)> {
    let v = find(RSA, name)?;
    let id = v.get("key")?.as_str()?.to_string();
    let i = match keys.iter().position(|(k, _)| *k == id) {
        Some(i) => i,
        None => {
            keys.push((id.clone(), rsa_pair(&id)));
            keys.len() - 1
        }
    };
    Some((v, keys[i].1.as_ref()?))
}

/// `CKM_SHA256_RSA_PKCS`: Tessera's DigestInfo and aws-lc's PKCS #1 v1.5 padding and RSA
/// (deterministic: byte-exact), and the verification by re-encoding.
fn rsa_pkcs1(keys: &mut RsaKeys) -> bool {
    let name = "RSASSA-PKCS1-v1_5 SHA-256, 2048-bit";
    let mut run = || -> Option<bool> {
        let (v, (private, public)) = rsa_vector(name, keys)?;
        let (msg, sig) = (hex(v, "msg")?, hex(v, "sig")?);
        Some(
            same(name, sign(CKM_SHA256_RSA_PKCS, &Param::None, private.as_ref()?, &msg), Some(sig.clone()))
                && verify(CKM_SHA256_RSA_PKCS, &Param::None, public, &msg, &sig),
        )
    };
    run() == Some(true)
}

/// `CKM_SHA256_RSA_PKCS_PSS` (aws-lc's PSS encoding and RSA): with an empty salt the signature is
/// deterministic, so signing is checked byte for byte; verification with the salt length of
/// each vector.
fn rsa_pss(keys: &mut RsaKeys) -> bool {
    let name = "RSASSA-PSS SHA-256, 2048-bit";
    let mut run = || -> Option<bool> {
        let (v, (private, public)) = rsa_vector(name, keys)?;
        let pss = |salt_len| Param::Pss { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, salt_len };
        let (msg, sig, salted) = (hex(v, "msg")?, hex(v, "sig")?, hex(v, "sig_salted")?);
        Some(
            same(name, sign(CKM_SHA256_RSA_PKCS_PSS, &pss(0), private.as_ref()?, &msg), Some(sig.clone()))
                && verify(CKM_SHA256_RSA_PKCS_PSS, &pss(0), public, &msg, &sig)
                && verify(CKM_SHA256_RSA_PKCS_PSS, &pss(32), public, &msg, &salted),
        )
    };
    run() == Some(true)
}

/// `CKM_RSA_PKCS_OAEP` decryption (aws-lc's OAEP decoding and RSA) of a fixed ciphertext.
fn rsa_oaep(keys: &mut RsaKeys) -> bool {
    let name = "RSAES-OAEP SHA-256, 2048-bit";
    let mut run = || -> Option<Vec<u8>> {
        let (v, (private, _)) = rsa_vector(name, keys)?;
        let param =
            Param::Oaep { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, source: CKZ_DATA_SPECIFIED, label: hex(v, "label")? };
        cipher(CKM_RSA_PKCS_OAEP, false, &param, private.as_ref()?, &hex(v, "ct")?)
    };
    same(name, run(), find(RSA, name).and_then(|v| hex(v, "msg")))
}

/// `CKM_SHA*_RSA_PKCS` verification, which rebuilds the signed block with Tessera's DigestInfo of
/// the hash and compares it whole: the DigestInfo encodings that the SHA-256 KAT does not run
/// (signing uses the same ones).
fn rsa_digest_info(name: &str, mech: CK_MECHANISM_TYPE, keys: &mut RsaKeys) -> bool {
    let mut run = || -> Option<bool> {
        let (v, (_, public)) = rsa_vector(name, keys)?;
        Some(verify(mech, &Param::None, public, &hex(v, "msg")?, &hex(v, "sig")?))
    };
    healthy(name) && run() == Some(true)
}

/// DER of the P-256 OID, as `CKA_EC_PARAMS` holds it.
const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A P-256 public key object of an uncompressed point (as a DER OCTET STRING, as `CKA_EC_POINT`
/// holds it).
fn p256_public(point: &[u8]) -> Option<Object> {
    let len = u8::try_from(point.len()).ok().filter(|l| *l < 0x80)?;
    let der = [&[0x04, len][..], point].concat();
    Some(object(CKO_PUBLIC_KEY, CKK_EC, vec![(CKA_EC_PARAMS, P256.to_vec()), (CKA_EC_POINT, der)]))
}

/// `CKM_ECDSA_SHA256` verification of a vector's signature.
fn ecdsa_verify() -> bool {
    let name = "ECDSA P-256 SHA-256 verify";
    let Some(v) = find(ECC, name) else { return false };
    let run = || -> Option<bool> {
        let key = p256_public(&hex(v, "public")?)?;
        Some(verify(CKM_ECDSA_SHA256, &Param::None, &key, &hex(v, "msg")?, &hex(v, "sig")?))
    };
    healthy(name) && run() == Some(true)
}

/// `CKM_ECDSA_SHA256` signing (randomised): a signature that verifies, with the key pair read from
/// the vector's PKCS #8 as `tessera-util --import` reads it.
fn ecdsa_sign() -> bool {
    let name = "ECDSA P-256 SHA-256 sign";
    let Some(v) = find(ECC, name) else { return false };
    let run = || -> Option<bool> {
        let pair = crate::import::read_pkcs8(&hex(v, "pkcs8")?, None).ok()?;
        let material = |t: &crate::object::Template| t.iter().map(|(a, v)| (*a, v.to_vec())).collect::<Vec<_>>();
        let private = object(CKO_PRIVATE_KEY, pair.key_type, material(&pair.private));
        let public = object(CKO_PUBLIC_KEY, pair.key_type, material(&pair.public));
        let msg = hex(v, "msg")?;
        let sig = sign(CKM_ECDSA_SHA256, &Param::None, &private, &msg)?;
        Some(verify(CKM_ECDSA_SHA256, &Param::None, &public, &msg, &sig))
    };
    healthy(name) && run() == Some(true)
}

/// `CKM_ECDH1_DERIVE` without a KDF: the shared secret Z as the mechanism computes it.
fn ecdh_p256() -> bool {
    let name = "ECDH P-256 (ECC CDH primitive)";
    let Some(v) = find(ECC, name) else { return false };
    let run = || -> Option<Vec<u8>> {
        let base =
            object(CKO_PRIVATE_KEY, CKK_EC, vec![(CKA_EC_PARAMS, P256.to_vec()), (CKA_VALUE, hex(v, "private")?)]);
        let param = Param::Ecdh1 { kdf: CKD_NULL, shared_data: Vec::new(), public_data: hex(v, "public")? };
        registry().get(CKM_ECDH1_DERIVE).ok()?.derive(&param, &base, None).ok()
    };
    same(name, run(), hex(v, "shared"))
}

/// `CKM_EDDSA` signs the vector's message with its private key (Ed25519 signatures are
/// deterministic: the signature must be the vector's) and verifies that signature with its
/// public key; `prehash` selects Ed25519ph (`CK_EDDSA_PARAMS` with `phFlag` true, no context).
fn eddsa(name: &str, prehash: bool) -> bool {
    const ED25519: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
    let Some(v) = find(EDDSA, name) else { return false };
    let param = if prehash { Param::Eddsa { prehash: true, context: Vec::new() } } else { Param::None };
    let run = || -> Option<(Vec<u8>, bool)> {
        let private = object(
            CKO_PRIVATE_KEY,
            CKK_EC_EDWARDS,
            vec![(CKA_EC_PARAMS, ED25519.to_vec()), (CKA_VALUE, hex(v, "seed")?)],
        );
        let point = crate::keys::ec::ec_point(&hex(v, "public")?).ok()?;
        let public =
            object(CKO_PUBLIC_KEY, CKK_EC_EDWARDS, vec![(CKA_EC_PARAMS, ED25519.to_vec()), (CKA_EC_POINT, point)]);
        let msg = hex(v, "msg")?;
        let sig = sign(CKM_EDDSA, &param, &private, &msg)?;
        let verified = verify(CKM_EDDSA, &param, &public, &msg, &sig);
        Some((sig, verified))
    };
    let got = run();
    got.as_ref().is_some_and(|(_, verified)| *verified) && same(name, got.map(|(sig, _)| sig), hex(v, "sig"))
}

fn ed25519() -> bool {
    eddsa("Ed25519 sign and verify", false)
}

fn ed25519ph() -> bool {
    eddsa("Ed25519ph sign and verify", true)
}

/// aws-lc's CTR_DRBG, the DRBG behind every random byte of the module, on the vector's entropy:
/// instantiate and generate, and (second vector) reseed (SP 800-90A Rev. 1 §11.3's health tests
/// of the instantiate, generate and reseed functions).
fn ctr_drbg(name: &str) -> bool {
    let Some(v) = find(DRBG, name) else { return false };
    let Some(want) = hex(v, "returned") else { return false };
    let reseed = v.get("reseed").map(|_| hex(v, "reseed"));
    if reseed.as_ref().is_some_and(|r| r.is_none()) {
        return false;
    }
    let got = hex(v, "entropy").and_then(|e| {
        crate::crypto::random::ctr_drbg_known_answer(&e, reseed.as_ref().and_then(|r| r.as_deref()), want.len())
    });
    same(name, got, Some(want))
}

fn ctr_drbg_generate() -> bool {
    ctr_drbg("CTR_DRBG AES-256 instantiate and generate")
}

fn ctr_drbg_reseed() -> bool {
    ctr_drbg("CTR_DRBG AES-256 reseed")
}

/// ML-DSA-44 key generation from a seed ξ: the function `CKM_ML_DSA_KEY_PAIR_GEN` (and a key made
/// from `CKA_SEED`) runs after drawing the seed (aws-lc's `ML-DSA.KeyGen_internal`).
fn ml_dsa_keygen() -> bool {
    let name = "ML-DSA-44 key generation";
    let Some(v) = find(MLDSA, name) else { return false };
    let got = hex(v, "seed").and_then(|s| crate::crypto::mldsa::MlDsa::P44.from_seed(&s));
    let want = (hex(v, "private"), hex(v, "public"));
    healthy(name) && got.is_some_and(|(sk, pk)| Some(sk.to_vec()) == want.0 && Some(pk) == want.1)
}

/// An ML-DSA-44 key object of the key-generation vector's material.
fn ml_dsa_key(class: CK_OBJECT_CLASS, field: &str) -> Option<Object> {
    let v = find(MLDSA, "ML-DSA-44 key generation")?;
    Some(object(
        class,
        CKK_ML_DSA,
        vec![(CKA_PARAMETER_SET, ulong(CKP_ML_DSA_44).to_vec()), (CKA_VALUE, hex(v, field)?)],
    ))
}

/// `CKM_ML_DSA` verification (aws-lc's, pure, empty context) of a vector's signature; a changed
/// signature must fail.
fn ml_dsa_verify() -> bool {
    let name = "ML-DSA-44 verify";
    let Some(v) = find(MLDSA, name) else { return false };
    let run = || -> Option<bool> {
        let key = object(
            CKO_PUBLIC_KEY,
            CKK_ML_DSA,
            vec![(CKA_PARAMETER_SET, ulong(CKP_ML_DSA_44).to_vec()), (CKA_VALUE, hex(v, "public")?)],
        );
        let (msg, mut sig) = (hex(v, "msg")?, hex(v, "sig")?);
        let good = verify(CKM_ML_DSA, &Param::None, &key, &msg, &sig);
        sig[0] ^= 1;
        Some(good && !verify(CKM_ML_DSA, &Param::None, &key, &msg, &sig))
    };
    healthy(name) && run() == Some(true)
}

/// `CKM_ML_DSA` signing (hedged, aws-lc's): a signature that verifies.
fn ml_dsa_sign() -> bool {
    let name = "ML-DSA-44 sign";
    let Some(v) = find(MLDSA, name) else { return false };
    let run = || -> Option<bool> {
        let (private, public) = (ml_dsa_key(CKO_PRIVATE_KEY, "private")?, ml_dsa_key(CKO_PUBLIC_KEY, "public")?);
        let msg = hex(v, "msg")?;
        let sig = sign(CKM_ML_DSA, &Param::None, &private, &msg)?;
        Some(verify(CKM_ML_DSA, &Param::None, &public, &msg, &sig))
    };
    healthy(name) && run() == Some(true)
}

/// μ = SHAKE256(tr ‖ M′, 64) as the streaming path of `CKM_ML_DSA` computes it (aws-lc's
/// SHAKE256, `crypto::mldsa::Mu`), `M′` given whole.
fn ml_dsa_mu(tr: &[u8; 64], m_prime: &[u8]) -> Option<[u8; 64]> {
    let mut mu = crate::crypto::mldsa::Mu::start(tr, &[])?;
    mu.update(m_prime).then_some(())?;
    mu.finish()
}

/// External-μ verification (aws-lc's `EVP_PKEY_verify` on an ML-DSA key, what a streamed
/// `CKM_ML_DSA` verification ends in), μ computed from the vector's `M′`: a valid signature
/// passes, an invalid one (z out of range) fails.
fn ml_dsa_mu_verify() -> bool {
    let name = "ML-DSA-44 external mu verify";
    let Some(v) = find(MLDSA, name) else { return false };
    let set = crate::crypto::mldsa::MlDsa::P44;
    let run = || -> Option<bool> {
        let pk = hex(v, "public")?;
        let tr = set.tr_of_public(&pk)?;
        let good = set.verify_mu(&pk, &ml_dsa_mu(&tr, &hex(v, "msg")?)?, &hex(v, "sig")?);
        let bad = set.verify_mu(&pk, &ml_dsa_mu(&tr, &hex(v, "bad_msg")?)?, &hex(v, "bad_sig")?);
        Some(good && !bad)
    };
    healthy(name) && run() == Some(true)
}

/// Deterministic external-μ signing (RustCrypto's `sign_mu_randomized` with `rnd` = 0³², what a
/// streamed deterministic `CKM_ML_DSA` signature runs), μ computed from the vector's `M′`: the vector's
/// signature, byte for byte.
fn ml_dsa_mu_sign_deterministic() -> bool {
    let name = "ML-DSA-44 external mu deterministic sign";
    let Some(v) = find(MLDSA, name) else { return false };
    let set = crate::crypto::mldsa::MlDsa::P44;
    let run = || -> Option<Vec<u8>> {
        let sk = hex(v, "private")?;
        let mu = ml_dsa_mu(&set.tr_of_private(&sk)?, &hex(v, "msg")?)?;
        // The streaming path's μ is the vector's (Wycheproof gives it), then signed from μ.
        (hex(v, "mu")? == mu).then_some(())?;
        set.sign_mu_internal(&sk, &mu, &[0; 32])
    };
    same(name, run(), hex(v, "sig"))
}

/// Hedged external-μ signing (aws-lc's `EVP_PKEY_sign` on an ML-DSA key, what a streamed
/// `CKM_ML_DSA` signature runs) of the μ of a pure message with an empty context: the signature
/// verifies against μ, and not against another μ.
fn ml_dsa_mu_sign() -> bool {
    let name = "ML-DSA-44 external mu sign";
    let Some(v) = find(MLDSA, name) else { return false };
    let set = crate::crypto::mldsa::MlDsa::P44;
    let run = || -> Option<bool> {
        let keys = find(MLDSA, "ML-DSA-44 key generation")?;
        let (sk, pk) = (hex(keys, "private")?, hex(keys, "public")?);
        // M′ = 0 ‖ 0 ‖ msg: a pure message, no context.
        let mut mu = ml_dsa_mu(&set.tr_of_private(&sk)?, &[&[0u8, 0][..], &hex(v, "msg")?].concat())?;
        let sig = set.sign_mu(&set.mu_key(&sk)?, &mu)?;
        let good = set.verify_mu(&pk, &mu, &sig);
        mu[0] ^= 1;
        Some(good && !set.verify_mu(&pk, &mu, &sig))
    };
    healthy(name) && run() == Some(true)
}

/// SLH-DSA verification (FIPS 205 `slh_verify_internal`, the function `CKM_SLH_DSA` and the
/// HashSLH-DSA mechanisms end in) of a vector's signature; a changed signature must fail. SLH-DSA is
/// not approved; its implementation is tested all the same.
fn slh_dsa_verify() -> bool {
    let name = "SLH-DSA-SHA2-128s verify";
    let Some(v) = find(SLHDSA, name) else { return false };
    let set = crate::crypto::slhdsa::SlhDsa::Sha2_128s;
    let run = || -> Option<bool> {
        let (pk, msg, mut sig) = (hex(v, "public")?, hex(v, "msg")?, hex(v, "sig")?);
        let good = set.verify_internal(&pk, &[&msg], &sig);
        sig[100] ^= 1;
        Some(good && !set.verify_internal(&pk, &[&msg], &sig))
    };
    healthy(name) && run() == Some(true)
}

static MLKEM: &str = include_str!("../../../kat-vectors/mlkem.json");

/// `kat-vectors/mlkem.json`, parsed once per process.
fn mlkem_vectors() -> &'static [Json] {
    static PARSED: std::sync::OnceLock<Json> = std::sync::OnceLock::new();
    let v = PARSED.get_or_init(|| serde_json::from_str(MLKEM).unwrap_or(Json::Null));
    v.get("vectors").and_then(|v| v.as_array()).map(|v| v.as_slice()).unwrap_or_default()
}

/// ML-KEM-768: encapsulation with the vector's m (`crypto::mlkem`, the aws-lc call the
/// mechanism's encapsulation makes, given m: `C_EncapsulateKey` draws its own) gives c and K, and
/// `CKM_ML_KEM`'s decapsulation of c under dk gives K.
fn ml_kem() -> bool {
    let name = "ML-KEM-768 encapsulate and decapsulate";
    let Some(v) = mlkem_vectors().iter().find(|v| v.get("name").and_then(|n| n.as_str()) == Some(name)) else {
        return false;
    };
    let p = crate::crypto::mlkem::Params::MlKem768;
    let run = || -> Option<(Vec<u8>, Vec<u8>)> {
        let m: [u8; crate::crypto::mlkem::M_LEN] = hex(v, "m")?.try_into().ok()?;
        let (c, k) = crate::crypto::mlkem::encapsulate_deterministic(p, &hex(v, "ek")?, &m)?;
        let key = object(
            CKO_PRIVATE_KEY,
            CKK_ML_KEM,
            vec![(CKA_PARAMETER_SET, ulong(CKP_ML_KEM_768).to_vec()), (CKA_VALUE, hex(v, "dk")?)],
        );
        let k2 = registry().get(CKM_ML_KEM).ok()?.decapsulate(&Param::None, &key, &c).ok()?;
        (k.as_slice() == k2.as_slice()).then(|| (c, k.to_vec()))
    };
    let got = run().map(|(c, k)| [c, k].concat());
    let want = hex(v, "c").zip(hex(v, "k")).map(|(c, k)| [c, k].concat());
    same(name, got, want)
}

/// Runs every known-answer test: (name, passed).
pub fn run_all() -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for name in ["SHA-1", "SHA-224", "SHA-256", "SHA-384", "SHA-512", "SHA3-224", "SHA3-256", "SHA3-384", "SHA3-512"] {
        out.push((name.to_string(), sha(name)));
    }
    for name in ["HMAC-SHA-256", "HMAC-SHA3-224", "HMAC-SHA3-256", "HMAC-SHA3-384", "HMAC-SHA3-512"] {
        out.push((name.to_string(), hmac(name)));
    }
    type Kat = (&'static str, fn() -> bool);
    let tests: [Kat; 26] = [
        ("AES-256-GCM", aes_gcm),
        ("AES-256-CBC", aes_cbc),
        ("AES-256-ECB", aes_ecb),
        ("AES-256-CTR", aes_ctr),
        ("AES-256-KW", aes_kw),
        ("AES-256-KWP", aes_kwp),
        ("AES-256-CMAC", aes_cmac),
        ("HKDF-SHA-256", hkdf_sha256),
        ("PBKDF2-HMAC-SHA-256", pbkdf2_sha256),
        ("PBKDF2 iteration loop (HMAC-SHA-1)", pbkdf2_loop),
        ("ANS X9.63 KDF SHA-256", x963_kdf),
        ("SP 800-56C one-step KDF SHA-256", sp800_56c_kdf),
        ("ECDSA P-256 SHA-256 verify", ecdsa_verify),
        ("ECDSA P-256 SHA-256 sign", ecdsa_sign),
        ("ECDH P-256 (ECC CDH primitive)", ecdh_p256),
        ("Ed25519 sign and verify", ed25519),
        ("Ed25519ph sign and verify", ed25519ph),
        ("CTR_DRBG AES-256 instantiate and generate", ctr_drbg_generate),
        ("CTR_DRBG AES-256 reseed", ctr_drbg_reseed),
        ("ML-DSA-44 key generation", ml_dsa_keygen),
        ("ML-DSA-44 verify", ml_dsa_verify),
        ("ML-DSA-44 sign", ml_dsa_sign),
        ("ML-DSA-44 external mu verify", ml_dsa_mu_verify),
        ("ML-DSA-44 external mu deterministic sign", ml_dsa_mu_sign_deterministic),
        ("ML-DSA-44 external mu sign", ml_dsa_mu_sign),
        ("SLH-DSA-SHA2-128s verify", slh_dsa_verify),
    ];
    for (name, f) in tests {
        out.push((name.to_string(), f()));
    }
    let mut keys = Vec::new();
    type RsaKat = (&'static str, fn(&mut RsaKeys) -> bool);
    let rsa: [RsaKat; 3] = [
        ("RSASSA-PKCS1-v1_5 SHA-256, 2048-bit", rsa_pkcs1),
        ("RSASSA-PSS SHA-256, 2048-bit", rsa_pss),
        ("RSAES-OAEP SHA-256, 2048-bit", rsa_oaep),
    ];
    for (name, f) in rsa {
        out.push((name.to_string(), f(&mut keys)));
    }
    for (name, mech) in [
        ("RSASSA-PKCS1-v1_5 SHA-1 DigestInfo, verify", CKM_SHA1_RSA_PKCS),
        ("RSASSA-PKCS1-v1_5 SHA-224 DigestInfo, verify", CKM_SHA224_RSA_PKCS),
        ("RSASSA-PKCS1-v1_5 SHA-384 DigestInfo, verify", CKM_SHA384_RSA_PKCS),
        ("RSASSA-PKCS1-v1_5 SHA-512 DigestInfo, verify", CKM_SHA512_RSA_PKCS),
    ] {
        out.push((name.to_string(), rsa_digest_info(name, mech, &mut keys)));
    }
    out.push(("ML-KEM-768 encapsulate and decapsulate".to_string(), ml_kem()));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kat_passes() {
        for (name, ok) in super::run_all() {
            assert!(ok, "{name}");
        }
    }

    /// Every vector of `kat-vectors/` runs, and nothing else does: a vector added without its
    /// test (or a test whose vector went) fails here. The integrity test's own vectors run with it
    /// (`integrity_algorithm`), the others in `run_all`.
    #[test]
    fn every_vector_has_its_test() {
        let mut want: Vec<String> = super::FILES
            .iter()
            .flat_map(|t| super::vectors(t))
            .chain(super::mlkem_vectors())
            .filter_map(|v| Some(v.get("name")?.as_str()?.to_string()))
            .collect();
        let integrity = super::integrity_algorithm();
        assert!(integrity.iter().all(|(_, ok)| *ok), "{integrity:?}");
        let suffix = " (the integrity test's algorithm, aws-lc)";
        let mut got: Vec<String> = super::run_all().into_iter().map(|(n, _)| n).collect();
        got.extend(integrity.into_iter().map(|(n, _)| n.strip_suffix(suffix).expect(suffix).to_string()));
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }
}
