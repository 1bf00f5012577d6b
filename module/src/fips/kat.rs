//! Known-answer tests for every approved algorithm, with the vectors of `kat-vectors/` embedded at
//! build time. Each test computes through aws-lc-rs (or, for SHA3-224, the `sha3` crate) exactly
//! what the mechanisms use, and compares byte for byte.

use aws_lc_rs::{aead, agreement, cipher, digest, hkdf, hmac, key_wrap, pbkdf2, rand, signature};
use serde_json::Value;
use std::num::NonZeroU32;

const SHA: &str = include_str!("../../../kat-vectors/sha.json");
const AES: &str = include_str!("../../../kat-vectors/aes.json");
const HMAC: &str = include_str!("../../../kat-vectors/hmac.json");
const KDF: &str = include_str!("../../../kat-vectors/kdf.json");
const RSA: &str = include_str!("../../../kat-vectors/rsa.json");
const ECC: &str = include_str!("../../../kat-vectors/ecc.json");

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

fn hex(v: &Value, field: &str) -> Option<Vec<u8>> {
    let s = v.get(field)?.as_str()?;
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn vectors(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text).ok().and_then(|v| v.get("vectors")?.as_array().cloned()).unwrap_or_default()
}

fn find(text: &str, name: &str) -> Option<Value> {
    vectors(text).into_iter().find(|v| v.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// Compares a computed value with the expected one, unless a fault is injected for `name`.
fn same(name: &str, got: Option<Vec<u8>>, want: Option<Vec<u8>>) -> bool {
    healthy(name) && got.is_some() && got == want
}

fn sha(name: &str) -> bool {
    let Some(v) = find(SHA, name) else { return false };
    let msg = hex(&v, "msg").unwrap_or_default();
    let alg = match name {
        "SHA-1" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        "SHA-224" => &digest::SHA224,
        "SHA-256" => &digest::SHA256,
        "SHA-384" => &digest::SHA384,
        "SHA-512" => &digest::SHA512,
        "SHA3-256" => &digest::SHA3_256,
        "SHA3-384" => &digest::SHA3_384,
        "SHA3-512" => &digest::SHA3_512,
        "SHA3-224" => {
            let got = <sha3::Sha3_224 as sha3::Digest>::digest(&msg).to_vec();
            return same(name, Some(got), hex(&v, "md"));
        }
        _ => return false,
    };
    same(name, Some(digest::digest(alg, &msg).as_ref().to_vec()), hex(&v, "md"))
}

fn aes_gcm() -> bool {
    let name = "AES-256-GCM";
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<(Vec<u8>, Vec<u8>)> {
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &hex(&v, "key")?).ok()?);
        let nonce = || aead::Nonce::try_assume_unique_for_key(&hex(&v, "iv")?).ok();
        let aad = hex(&v, "aad")?;
        let mut buf = hex(&v, "msg")?;
        key.seal_in_place_append_tag(nonce()?, aead::Aad::from(&aad), &mut buf).ok()?;
        let mut back = buf.clone();
        let plain = key.open_in_place(nonce()?, aead::Aad::from(&aad), &mut back).ok()?.to_vec();
        Some((buf, plain))
    };
    let want = hex(&v, "ct").zip(hex(&v, "tag")).map(|(c, t)| [c, t].concat());
    match run() {
        Some((sealed, plain)) => same(name, Some(sealed), want) && Some(plain) == hex(&v, "msg"),
        None => false,
    }
}

fn aes_cbc() -> bool {
    let name = "AES-256-CBC";
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<(Vec<u8>, Vec<u8>)> {
        let key = || cipher::UnboundCipherKey::new(&cipher::AES_256, &hex(&v, "key")?).ok();
        let iv: [u8; 16] = hex(&v, "iv")?.try_into().ok()?;
        let enc = cipher::PaddedBlockEncryptingKey::cbc_pkcs7(key()?).ok()?;
        let mut buf = hex(&v, "msg")?;
        enc.less_safe_encrypt(&mut buf, cipher::EncryptionContext::Iv128(iv.into())).ok()?;
        let dec = cipher::PaddedBlockDecryptingKey::cbc_pkcs7(key()?).ok()?;
        let mut back = buf.clone();
        let plain = dec.decrypt(&mut back, cipher::DecryptionContext::Iv128(iv.into())).ok()?.to_vec();
        Some((buf, plain))
    };
    match run() {
        Some((ct, plain)) => same(name, Some(ct), hex(&v, "ct")) && Some(plain) == hex(&v, "msg"),
        None => false,
    }
}

fn aes_kw() -> bool {
    let name = "AES-256-KW";
    let Some(v) = find(AES, name) else { return false };
    let run = || -> Option<(Vec<u8>, Vec<u8>)> {
        use key_wrap::KeyWrap;
        let key = hex(&v, "key")?;
        let msg = hex(&v, "msg")?;
        let mut out = vec![0u8; msg.len() + 8];
        let wrapped =
            key_wrap::KeyEncryptionKey::new(&key_wrap::AES_256, &key).ok()?.wrap(&msg, &mut out).ok()?.to_vec();
        let mut back = vec![0u8; wrapped.len()];
        let plain =
            key_wrap::KeyEncryptionKey::new(&key_wrap::AES_256, &key).ok()?.unwrap(&wrapped, &mut back).ok()?.to_vec();
        Some((wrapped, plain))
    };
    match run() {
        Some((ct, plain)) => same(name, Some(ct), hex(&v, "ct")) && Some(plain) == hex(&v, "msg"),
        None => false,
    }
}

fn hmac_sha256() -> bool {
    let name = "HMAC-SHA-256";
    let Some(v) = find(HMAC, name) else { return false };
    let got = hex(&v, "key")
        .zip(hex(&v, "msg"))
        .map(|(k, m)| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &k), &m).as_ref().to_vec());
    same(name, got, hex(&v, "tag"))
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_sha256() -> bool {
    let name = "HKDF-SHA-256";
    let Some(v) = find(KDF, name) else { return false };
    let run = || -> Option<Vec<u8>> {
        let want = hex(&v, "okm")?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &hex(&v, "salt")?).extract(&hex(&v, "ikm")?);
        let info = hex(&v, "info")?;
        let info_parts = [info.as_slice()];
        let okm = prk.expand(&info_parts, Len(want.len())).ok()?;
        let mut out = vec![0u8; want.len()];
        okm.fill(&mut out).ok()?;
        Some(out)
    };
    same(name, run(), hex(&v, "okm"))
}

fn pbkdf2_sha256() -> bool {
    let name = "PBKDF2-HMAC-SHA-256";
    let Some(v) = find(KDF, name) else { return false };
    let run = || -> Option<Vec<u8>> {
        let want = hex(&v, "dk")?;
        let it = NonZeroU32::new(v.get("iterations")?.as_u64()? as u32)?;
        let mut out = vec![0u8; want.len()];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, it, &hex(&v, "salt")?, &hex(&v, "password")?, &mut out);
        Some(out)
    };
    same(name, run(), hex(&v, "dk"))
}

fn rsa_sign_verify() -> bool {
    let name = "RSASSA-PKCS1-v1_5 SHA-256, 2048-bit";
    let Some(v) = find(RSA, name) else { return false };
    let run = || -> Option<(Vec<u8>, bool)> {
        let kp = signature::RsaKeyPair::from_pkcs8(&hex(&v, "pkcs8")?).ok()?;
        let msg = hex(&v, "msg")?;
        let mut sig = vec![0u8; kp.public_modulus_len()];
        kp.sign(&signature::RSA_PKCS1_SHA256, &rand::SystemRandom::new(), &msg, &mut sig).ok()?;
        let public = signature::KeyPair::public_key(&kp).as_ref().to_vec();
        let want = hex(&v, "sig")?;
        let pk = signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public);
        Some((sig, pk.verify(&msg, &want).is_ok()))
    };
    match run() {
        Some((sig, verified)) => same(name, Some(sig), hex(&v, "sig")) && verified,
        None => false,
    }
}

fn ecdsa_verify() -> bool {
    let name = "ECDSA P-256 SHA-256 verify";
    let Some(v) = find(ECC, name) else { return false };
    let run = || -> Option<bool> {
        let pk = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, hex(&v, "public")?);
        Some(pk.verify(&hex(&v, "msg")?, &hex(&v, "sig")?).is_ok())
    };
    healthy(name) && run() == Some(true)
}

fn ecdsa_sign() -> bool {
    let name = "ECDSA P-256 SHA-256 sign";
    let Some(v) = find(ECC, name) else { return false };
    let run = || -> Option<bool> {
        let kp = signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &hex(&v, "pkcs8")?)
            .ok()?;
        let msg = hex(&v, "msg")?;
        let sig = kp.sign(&rand::SystemRandom::new(), &msg).ok()?;
        let public = signature::KeyPair::public_key(&kp).as_ref().to_vec();
        let pk = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public);
        Some(pk.verify(&msg, sig.as_ref()).is_ok())
    };
    healthy(name) && run() == Some(true)
}

fn ecdh_p256() -> bool {
    let name = "ECDH P-256 (ECC CDH primitive)";
    let Some(v) = find(ECC, name) else { return false };
    let run = || -> Option<Vec<u8>> {
        let sk = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &hex(&v, "private")?).ok()?;
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, hex(&v, "public")?);
        agreement::agree(&sk, peer, (), |s| Ok(s.to_vec())).ok()
    };
    same(name, run(), hex(&v, "shared"))
}

/// Runs every known-answer test: (name, passed).
pub fn run_all() -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for name in ["SHA-1", "SHA-224", "SHA-256", "SHA-384", "SHA-512", "SHA3-224", "SHA3-256", "SHA3-384", "SHA3-512"] {
        out.push((name.to_string(), sha(name)));
    }
    type Kat = (&'static str, fn() -> bool);
    let tests: [Kat; 10] = [
        ("AES-256-GCM", aes_gcm),
        ("AES-256-CBC", aes_cbc),
        ("AES-256-KW", aes_kw),
        ("HMAC-SHA-256", hmac_sha256),
        ("HKDF-SHA-256", hkdf_sha256),
        ("PBKDF2-HMAC-SHA-256", pbkdf2_sha256),
        ("RSASSA-PKCS1-v1_5 SHA-256, 2048-bit", rsa_sign_verify),
        ("ECDSA P-256 SHA-256 verify", ecdsa_verify),
        ("ECDSA P-256 SHA-256 sign", ecdsa_sign),
        ("ECDH P-256 (ECC CDH primitive)", ecdh_p256),
    ];
    for (name, f) in tests {
        out.push((name.to_string(), f()));
    }
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
}
