//! Project Wycheproof's RSA vectors through the built module: PKCS#1 v1.5 and PSS verification with
//! imported public keys, OAEP and PKCS#1 v1.5 decryption with imported private keys (all their
//! components), every key brought in with `C_CreateObject`.
//!
//! In the approved mode (`TESSERA_MODE=approved`) a case whose use `policy/approved.toml` does not
//! allow is still sent to the module, checked to be refused with the code the policy gives, and
//! counted as skipped, "refused by the approved-mode policy", with the reason.

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use serde_json::Value;
use tessera_tests::wycheproof::{hex, load as load_vectors, Tally};
use tessera_tests::*;

fn hash_of(name: &str) -> Option<(MechanismType, PkcsMgfType)> {
    Some(match name {
        "SHA-1" => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        "SHA-224" => (MechanismType::SHA224, PkcsMgfType::MGF1_SHA224),
        "SHA-256" => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        "SHA-384" => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        "SHA-512" => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
        _ => return None,
    })
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// The size of a modulus in bits, as the policy measures it.
fn modulus_bits(key: &Value) -> usize {
    let n = hex(&key["modulus"]);
    let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
    n.first().map_or(0, |b| (n.len() - 1) * 8 + 8 - b.leading_zeros() as usize)
}

/// The approved-mode refusal of a use: the code, and why (for the tally).
struct Refusal {
    rv: RvError,
    why: String,
}

/// What the approved mode answers for `mech` (used to verify signatures or decrypt, as in these
/// files) with a key of `bits`: `None` when the use is approved, or in the non-approved mode. The
/// table is `policy/approved.toml`, written out here so that the test checks the module against
/// the policy rather than against itself.
fn approved_refusal(mech: MechanismType, bits: usize) -> Option<Refusal> {
    if !approved_mode() {
        return None;
    }
    let refuse = |rv, why: &str| Some(Refusal { rv, why: format!("refused by the approved-mode policy: {why}") });
    let min = if mech == MechanismType::RSA_PKCS {
        return refuse(
            RvError::MechanismInvalid,
            "PKCS #1 v1.5 decryption is not approved (SP 800-131A Rev. 2 §6), CKR_MECHANISM_INVALID",
        );
    } else if mech == MechanismType::SHA1_RSA_PKCS_PSS {
        return refuse(RvError::MechanismInvalid, "CKM_SHA1_RSA_PKCS_PSS has no approved use, CKR_MECHANISM_INVALID");
    } else if mech == MechanismType::SHA1_RSA_PKCS {
        1024
    } else {
        2048
    };
    if bits < min {
        return refuse(RvError::KeySizeRange, &format!("{bits}-bit key, below {min} bits, CKR_KEY_SIZE_RANGE"));
    }
    None
}

/// In the approved mode, a case whose use the policy refuses: the module must have refused it
/// with the policy's code; the case is counted as skipped with the reason.
fn record_refused<T: std::fmt::Debug>(t: &mut Tally, tc: &Value, r: cryptoki::error::Result<T>, refusal: &Refusal) {
    let id = tc["tcId"].as_u64().unwrap_or(0);
    match r {
        Err(Error::Pkcs11(rv, _)) if rv == refusal.rv => t.skip(id, &refusal.why),
        other => {
            t.failed.push(format!("tcId {id}: the approved mode must refuse it with {:?}, got {other:?}", refusal.rv))
        }
    }
}

fn public_key(s: &Session, key: &Value) -> cryptoki::error::Result<ObjectHandle> {
    s.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Verify(true),
        Attribute::Modulus(hex(&key["modulus"])),
        Attribute::PublicExponent(hex(&key["publicExponent"])),
    ])
}

fn private_key(s: &Session, key: &Value) -> cryptoki::error::Result<ObjectHandle> {
    s.create_object(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Decrypt(true),
        Attribute::Modulus(hex(&key["modulus"])),
        Attribute::PublicExponent(hex(&key["publicExponent"])),
        Attribute::PrivateExponent(hex(&key["privateExponent"])),
        Attribute::Prime1(hex(&key["prime1"])),
        Attribute::Prime2(hex(&key["prime2"])),
        Attribute::Exponent1(hex(&key["exponent1"])),
        Attribute::Exponent2(hex(&key["exponent2"])),
        Attribute::Coefficient(hex(&key["coefficient"])),
    ])
}

/// Records one case, and also fails it when the module rejected it with another code than the
/// operation's own (`allowed`): a rejection must be a clean one.
fn record(t: &mut Tally, tc: &Value, r: cryptoki::error::Result<bool>, allowed: &[RvError]) {
    let id = tc["tcId"].as_u64().unwrap_or(0);
    let result = str_of(tc, "result");
    match r {
        Ok(matched) => t.case(id, result, true, matched),
        Err(Error::Pkcs11(rv, _)) if allowed.contains(&rv) => t.case(id, result, false, false),
        Err(e) => t.failed.push(format!("tcId {id} ({result}): unexpected error {e}")),
    }
}

/// Records a case: against the approved mode's refusal when there is one, else as [`record`].
fn record_case(
    t: &mut Tally,
    tc: &Value,
    r: cryptoki::error::Result<bool>,
    refusal: &Option<Refusal>,
    allowed: &[RvError],
) {
    match refusal {
        Some(refusal) => record_refused(t, tc, r, refusal),
        None => record(t, tc, r, allowed),
    }
}

/// Skips every case of a test group, for `why`.
fn skip_group(t: &mut Tally, g: &Value, why: &str) {
    for tc in g["tests"].as_array().into_iter().flatten() {
        t.skip(tc["tcId"].as_u64().unwrap_or(0), why);
    }
}

/// Signature verification over the vector files `names` on a token labelled `label`: `mech`
/// gives a test group's mechanism, or why the group is skipped.
fn signature_files(label: &str, names: &[&str], mech: impl Fn(&Value) -> Result<Mechanism<'static>, String>) {
    let token = Token::new(label);
    let s = token.s();
    for name in names {
        let Some(v) = load_vectors(name) else { continue };
        let mut t = Tally::new(name);
        for g in v["testGroups"].as_array().into_iter().flatten() {
            let mech = match mech(g) {
                Ok(m) => m,
                Err(why) => {
                    skip_group(&mut t, g, &why);
                    continue;
                }
            };
            let key = public_key(s, &g["publicKey"]).expect("import the public key");
            let refusal = approved_refusal(mech.mechanism_type(), modulus_bits(&g["publicKey"]));
            for tc in g["tests"].as_array().into_iter().flatten() {
                let r = s.verify(&mech, key, &hex(&tc["msg"]), &hex(&tc["sig"])).map(|_| true);
                record_case(&mut t, tc, r, &refusal, &[RvError::SignatureInvalid, RvError::SignatureLenRange]);
            }
        }
        t.finish();
    }
}

#[test]
fn pkcs1_v1_5_signatures() {
    let names = [
        "rsa_signature_2048_sha256_test",
        "rsa_signature_2048_sha384_test",
        "rsa_signature_2048_sha512_test",
        "rsa_signature_3072_sha384_test",
        "rsa_signature_4096_sha512_test",
    ];
    signature_files("wp-rsa-sig", &names, |g| match str_of(g, "sha") {
        "SHA-1" => Ok(Mechanism::Sha1RsaPkcs),
        "SHA-224" => Ok(Mechanism::Sha224RsaPkcs),
        "SHA-256" => Ok(Mechanism::Sha256RsaPkcs),
        "SHA-384" => Ok(Mechanism::Sha384RsaPkcs),
        "SHA-512" => Ok(Mechanism::Sha512RsaPkcs),
        other => Err(format!("hash {other}")),
    });
}

#[test]
fn pss_signatures() {
    let names = [
        "rsa_pss_2048_sha256_mgf1_32_test",
        "rsa_pss_2048_sha384_mgf1_48_test",
        "rsa_pss_3072_sha256_mgf1_32_test",
        "rsa_pss_4096_sha512_mgf1_64_test",
    ];
    signature_files("wp-rsa-pss", &names, |g| {
        let (Some((hash, _)), Some((_, mgf)), Some(salt)) =
            (hash_of(str_of(g, "sha")), hash_of(str_of(g, "mgfSha")), g["sLen"].as_u64())
        else {
            return Err("unsupported hash, MGF or salt".to_string());
        };
        let p = PkcsPssParams { hash_alg: hash, mgf, s_len: salt.into() };
        Ok(match str_of(g, "sha") {
            "SHA-1" => Mechanism::Sha1RsaPkcsPss(p),
            "SHA-256" => Mechanism::Sha256RsaPkcsPss(p),
            "SHA-384" => Mechanism::Sha384RsaPkcsPss(p),
            _ => Mechanism::Sha512RsaPkcsPss(p),
        })
    });
}

#[test]
fn oaep_decryption() {
    let t = Token::new("wp-rsa-oaep");
    let s = t.s();
    for name in [
        "rsa_oaep_2048_sha256_mgf1sha256_test",
        "rsa_oaep_2048_sha384_mgf1sha384_test",
        "rsa_oaep_2048_sha512_mgf1sha512_test",
        "rsa_oaep_3072_sha256_mgf1sha256_test",
        "rsa_oaep_4096_sha256_mgf1sha256_test",
    ] {
        let Some(v) = load_vectors(name) else { continue };
        let mut t = Tally::new(name);
        for g in v["testGroups"].as_array().into_iter().flatten() {
            let (Some((hash, _)), Some((_, mgf))) = (hash_of(str_of(g, "sha")), hash_of(str_of(g, "mgfSha"))) else {
                skip_group(&mut t, g, "unsupported hash or MGF");
                continue;
            };
            let key = private_key(s, &g["privateKey"]).expect("import the private key");
            let refusal = approved_refusal(MechanismType::RSA_PKCS_OAEP, modulus_bits(&g["privateKey"]));
            for tc in g["tests"].as_array().into_iter().flatten() {
                let label = hex(&tc["label"]);
                let p = PkcsOaepParams::new(hash, mgf, PkcsOaepSource::data_specified(&label));
                let r = s.decrypt(&Mechanism::RsaPkcsOaep(p), key, &hex(&tc["ct"])).map(|m| m == hex(&tc["msg"]));
                record_case(&mut t, tc, r, &refusal, &[RvError::EncryptedDataInvalid, RvError::EncryptedDataLenRange]);
            }
        }
        t.finish();
    }
}

#[test]
fn pkcs1_v1_5_decryption() {
    let t = Token::new("wp-rsa-pkcs1");
    let s = t.s();
    for name in ["rsa_pkcs1_2048_test", "rsa_pkcs1_3072_test", "rsa_pkcs1_4096_test"] {
        let Some(v) = load_vectors(name) else { continue };
        let mut t = Tally::new(name);
        // Every bad padding must fail the same way (no oracle): the one code is checked by
        // `record`, which accepts only CKR_ENCRYPTED_DATA_INVALID, or the length error for
        // ciphertexts that are not k bytes long.
        for g in v["testGroups"].as_array().into_iter().flatten() {
            let key = private_key(s, &g["privateKey"]).expect("import the private key");
            let k = hex(&g["privateKey"]["modulus"]).iter().skip_while(|b| **b == 0).count();
            // In the approved mode every case is refused (CKM_RSA_PKCS has no approved use).
            let refusal = approved_refusal(MechanismType::RSA_PKCS, modulus_bits(&g["privateKey"]));
            for tc in g["tests"].as_array().into_iter().flatten() {
                let ct = hex(&tc["ct"]);
                let allowed: &[RvError] =
                    if ct.len() == k { &[RvError::EncryptedDataInvalid] } else { &[RvError::EncryptedDataLenRange] };
                let r = s.decrypt(&Mechanism::RsaPkcs, key, &ct).map(|m| m == hex(&tc["msg"]));
                record_case(&mut t, tc, r, &refusal, allowed);
            }
        }
        t.finish();
    }
}
