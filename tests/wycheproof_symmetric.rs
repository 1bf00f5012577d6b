//! Project Wycheproof vectors for AES (GCM, CBC-PKCS5, KW, KWP, CMAC), HMAC (SHA-2, SHA-3), HKDF
//! and PBKDF2, run through the module's ABI: every key is imported with `C_CreateObject` and every
//! operation goes through the `.so`.
//!
//! Under `TESSERA_MODE=approved` a case whose use the approved-mode policy refuses is checked to be
//! refused with the policy's return value and tallied as skipped, "refused by the approved-mode
//! policy", with the reason. The policy as these tests expect it (`policy/approved.toml`): AES
//! CBC-PAD, KW, KWP and CMAC (full and truncated) with 128/192/256-bit keys, HMAC with SHA-2 and
//! SHA3-256/384/512 with keys of at least 112 bits, HKDF from keys of at least 112 bits, GCM
//! decryption, and PBKDF2 within SP 800-132 are approved; GCM encryption with an IV chosen by the
//! application (approved only with an IV the module generates, through the message API) and
//! truncated HMAC (`_GENERAL`) are not.

use cryptoki_sys::*;
use serde_json::Value;
use tessera_tests::wycheproof::{self, hex, Tally};
use tessera_tests::*;

/// Each test of a file, with its group.
fn cases(v: &Value) -> Vec<(&Value, &Value)> {
    v["testGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["tests"].as_array().into_iter().flatten().map(move |t| (g, t)))
        .collect()
}

fn id(t: &Value) -> u64 {
    t["tcId"].as_u64().unwrap_or(0)
}

fn result(t: &Value) -> &str {
    t["result"].as_str().unwrap_or("")
}

/// Why the approved mode refuses a use, as the tally reports it, and the return value it gives.
struct Refusal {
    rv: CK_RV,
    why: &'static str,
}

/// The tally's text for a case the approved-mode policy refuses.
fn refused_text(r: &Refusal) -> String {
    format!("refused by the approved-mode policy with {:#x}: {}", r.rv, r.why)
}

/// GCM encryption with an IV the application chooses: the approved encryption rule's condition
/// (an IV generated inside the module, FIPS 140-3 IG C.H) is unmet.
const GCM_ENCRYPT: Refusal = Refusal {
    rv: CKR_MECHANISM_PARAM_INVALID,
    why: "AES-GCM encryption with an IV the application chooses (FIPS 140-3 IG C.H)",
};

/// Imports an AES key; `None` (and the case counted as rejected) when the module refuses it.
fn aes_key(t: &Token, key: &[u8]) -> Option<CK_OBJECT_HANDLE> {
    t.key(CKK_AES, key).ok()
}

#[test]
fn aes_gcm() {
    let Some(v) = wycheproof::load("aes_gcm_test") else { return };
    let t = Token::new("wp-gcm");
    let mut tally = Tally::new("aes_gcm_test");
    // In the approved mode the cases are judged on decryption alone; each case's encryption is
    // checked to be refused and tallied here.
    let mut encryption = Tally::new("aes_gcm_test, encryption (the cases are judged on decryption)");
    for (g, c) in cases(&v) {
        let (key, iv, aad, msg, ct, tag) =
            (hex(&c["key"]), hex(&c["iv"]), hex(&c["aad"]), hex(&c["msg"]), hex(&c["ct"]), hex(&c["tag"]));
        let tag_bits = g["tagSize"].as_u64().unwrap_or(128) as CK_ULONG;
        if tag.len() * 8 != tag_bits as usize {
            tally.skip(id(c), "tag length differs from the group's tagSize");
            continue;
        }
        let Some(k) = aes_key(&t, &key) else {
            tally.case(id(c), result(c), false, false);
            continue;
        };
        let m = gcm(&iv, &aad, tag_bits);
        let sealed = [ct.clone(), tag.clone()].concat();
        let enc = t.encrypt(&m, k, &msg);
        let dec = t.decrypt(&m, k, &sealed);
        if approved_mode() {
            assert_eq!(enc, Err(GCM_ENCRYPT.rv), "aes_gcm_test tcId {}: encryption in the approved mode", id(c));
            encryption.skip(id(c), &refused_text(&GCM_ENCRYPT));
            tally.case(id(c), result(c), dec.is_ok(), dec.as_ref().is_ok_and(|p| *p == msg));
            t.destroy(k);
            continue;
        }
        let accepted = dec.is_ok() && (result(c) != "valid" || enc.is_ok());
        let matched = dec.as_ref().is_ok_and(|p| *p == msg) && enc.as_ref().map_or(true, |e| *e == sealed);
        tally.case(id(c), result(c), accepted, matched);
        t.destroy(k);
    }
    tally.finish();
    if approved_mode() {
        encryption.finish();
    }
}

#[test]
fn aes_cbc_pkcs5() {
    let Some(v) = wycheproof::load("aes_cbc_pkcs5_test") else { return };
    let t = Token::new("wp-cbc");
    let mut tally = Tally::new("aes_cbc_pkcs5_test");
    for (_, c) in cases(&v) {
        let (key, iv, msg, ct) = (hex(&c["key"]), hex(&c["iv"]), hex(&c["msg"]), hex(&c["ct"]));
        let Some(k) = aes_key(&t, &key) else {
            tally.case(id(c), result(c), false, false);
            continue;
        };
        let m = Mech::with(CKM_AES_CBC_PAD, &iv);
        let dec = t.decrypt(&m, k, &ct);
        let accepted = dec.is_ok();
        let mut matched = dec.as_ref().is_ok_and(|p| *p == msg);
        if result(c) == "valid" {
            matched &= t.encrypt(&m, k, &msg).is_ok_and(|e| e == ct);
            // Multi-part decryption in 7-byte parts gives the same.
            let parts: Vec<&[u8]> = ct.chunks(7).collect();
            matched &= t.cipher_parts(false, &m, k, &parts).is_ok_and(|o| o.concat() == msg);
        }
        tally.case(id(c), result(c), accepted, matched);
        t.destroy(k);
    }
    tally.finish();
}

/// KW and KWP: `C_Encrypt`/`C_Decrypt`, and `C_WrapKey`/`C_UnwrapKey` of the message as a
/// generic secret.
fn key_wrap(file: &str, mech: CK_MECHANISM_TYPE) {
    let Some(v) = wycheproof::load(file) else { return };
    let t = Token::new(&format!("wp-{mech:x}"));
    let mut tally = Tally::new(file);
    let m = Mech::new(mech);
    for (_, c) in cases(&v) {
        let (key, msg, ct) = (hex(&c["key"]), hex(&c["msg"]), hex(&c["ct"]));
        // The same value as a data key (C_Encrypt/C_Decrypt) and as a key-encryption key
        // (C_WrapKey/C_UnwrapKey): a key is never both.
        let (Some(k), Ok(kek)) = (aes_key(&t, &key), t.kek(CKK_AES, &key)) else {
            tally.case(id(c), result(c), false, false);
            continue;
        };
        let dec = t.decrypt(&m, k, &ct);
        let unwrapped = t.unwrap(&m, kek, &ct, &unwrapped(CKK_GENERIC_SECRET, None));
        // Unwrapping and decrypting agree on what they accept.
        let accepted = dec.is_ok() && unwrapped.is_ok();
        assert_eq!(dec.is_ok(), unwrapped.is_ok(), "{file} tcId {}: decrypt and unwrap disagree", id(c));
        let mut matched = dec.as_ref().is_ok_and(|p| *p == msg);
        if let Ok(u) = unwrapped {
            // Unwrapped keys are sensitive: compared by length and check value.
            matched &= t.same_value(u, &msg);
            t.destroy(u);
        }
        if result(c) == "valid" {
            matched &= t.encrypt(&m, k, &msg).is_ok_and(|e| e == ct);
            let inner = t.key(CKK_GENERIC_SECRET, &msg).expect("import the key to wrap");
            matched &= t.wrap(&m, kek, inner).is_ok_and(|w| w == ct);
            t.destroy(inner);
        }
        tally.case(id(c), result(c), accepted, matched);
        t.destroy(k);
        t.destroy(kek);
    }
    tally.finish();
}

#[test]
fn aes_wrap() {
    key_wrap("aes_wrap_test", CKM_AES_KEY_WRAP);
}

#[test]
fn aes_kwp() {
    key_wrap("aes_kwp_test", CKM_AES_KEY_WRAP_KWP);
}

/// Truncated HMAC: `CKM_*_HMAC_GENERAL` has no approved use.
const HMAC_TRUNCATED: Refusal =
    Refusal { rv: CKR_MECHANISM_INVALID, why: "truncated HMAC (CKM_*_HMAC_GENERAL) has no approved use" };
/// HMAC keys shorter than 112 bits (SP 800-131A Rev. 2 §10).
const HMAC_SHORT_KEY: Refusal = Refusal { rv: CKR_KEY_SIZE_RANGE, why: "HMAC key shorter than 112 bits" };

/// What the approved mode refuses of a MAC case (AES keys of other sizes are refused at import,
/// in both modes; CMAC, full or truncated, is approved).
fn mac_refusal(key_type: CK_KEY_TYPE, truncated: bool, key: &[u8]) -> Option<Refusal> {
    if key_type != CKK_GENERIC_SECRET {
        None
    } else if truncated {
        Some(HMAC_TRUNCATED)
    } else if key.len() * 8 < 112 {
        Some(HMAC_SHORT_KEY)
    } else {
        None
    }
}

/// MAC files: sign and compare, verify. Full-length tags through the plain mechanism, truncated
/// ones through the `_GENERAL` mechanism.
fn mac(file: &str, key_type: CK_KEY_TYPE, plain: CK_MECHANISM_TYPE, general: CK_MECHANISM_TYPE, full: usize) {
    let Some(v) = wycheproof::load(file) else { return };
    let t = Token::new("wp-mac");
    let mut tally = Tally::new(file);
    for (g, c) in cases(&v) {
        let (key, msg, tag) = (hex(&c["key"]), hex(&c["msg"]), hex(&c["tag"]));
        let tag_bytes = g["tagSize"].as_u64().unwrap_or(0) as usize / 8;
        // A key the module refuses to import (e.g. AES keys of other sizes) is a rejection.
        let Ok(k) = t.key(key_type, &key) else {
            tally.case(id(c), result(c), false, false);
            continue;
        };
        if tag.len() != tag_bytes {
            tally.skip(id(c), "tag length differs from the group's tagSize");
            t.destroy(k);
            continue;
        }
        let m = if tag_bytes == full { Mech::new(plain) } else { Mech::with_ulong(general, tag_bytes as CK_ULONG) };
        if let Some(r) = mac_refusal(key_type, tag_bytes != full, &key).filter(|_| approved_mode()) {
            assert_eq!(t.verify(&m, k, &msg, &tag), Err(r.rv), "{file} tcId {}: verify in the approved mode", id(c));
            assert_eq!(t.sign(&m, k, &msg), Err(r.rv), "{file} tcId {}: sign in the approved mode", id(c));
            tally.skip(id(c), &refused_text(&r));
            t.destroy(k);
            continue;
        }
        let verified = t.verify(&m, k, &msg, &tag);
        let signed = t.sign(&m, k, &msg);
        let accepted = verified.is_ok();
        let matched = signed.as_ref().is_ok_and(|s| *s == tag);
        if result(c) == "valid" {
            let half = msg.len() / 2;
            let parts = t.sign_parts(&m, k, &[&msg[..half], &msg[half..]]);
            assert_eq!(parts.as_ref().ok(), signed.as_ref().ok(), "{file} tcId {}: multi-part differs", id(c));
        }
        tally.case(id(c), result(c), accepted, matched || result(c) != "valid");
        t.destroy(k);
    }
    tally.finish();
}

#[test]
fn aes_cmac() {
    mac("aes_cmac_test", CKK_AES, CKM_AES_CMAC, CKM_AES_CMAC_GENERAL, 16);
}

#[test]
fn hmac_sha2() {
    mac("hmac_sha256_test", CKK_GENERIC_SECRET, CKM_SHA256_HMAC, CKM_SHA256_HMAC_GENERAL, 32);
    mac("hmac_sha384_test", CKK_GENERIC_SECRET, CKM_SHA384_HMAC, CKM_SHA384_HMAC_GENERAL, 48);
    mac("hmac_sha512_test", CKK_GENERIC_SECRET, CKM_SHA512_HMAC, CKM_SHA512_HMAC_GENERAL, 64);
}

#[test]
fn hmac_sha3() {
    mac("hmac_sha3_256_test", CKK_GENERIC_SECRET, CKM_SHA3_256_HMAC, CKM_SHA3_256_HMAC_GENERAL, 32);
    mac("hmac_sha3_384_test", CKK_GENERIC_SECRET, CKM_SHA3_384_HMAC, CKM_SHA3_384_HMAC_GENERAL, 48);
    mac("hmac_sha3_512_test", CKK_GENERIC_SECRET, CKM_SHA3_512_HMAC, CKM_SHA3_512_HMAC_GENERAL, 64);
}

/// HKDF from a key shorter than 112 bits.
const HKDF_SHORT_KEY: Refusal = Refusal { rv: CKR_KEY_SIZE_RANGE, why: "HKDF input key shorter than 112 bits" };

fn hkdf_file(file: &str, prf: CK_MECHANISM_TYPE) {
    let Some(v) = wycheproof::load(file) else { return };
    let t = Token::new("wp-hkdf");
    let mut tally = Tally::new(file);
    for (_, c) in cases(&v) {
        let (ikm, salt, info, okm) = (hex(&c["ikm"]), hex(&c["salt"]), hex(&c["info"]), hex(&c["okm"]));
        let size = c["size"].as_u64().unwrap_or(0) as usize;
        let base = t.key(CKK_GENERIC_SECRET, &ikm).expect("import IKM");
        // An empty salt is HKDF's default salt: CKF_HKDF_SALT_NULL.
        let m = hkdf(CKM_HKDF_DERIVE, true, true, prf, (!salt.is_empty()).then_some(&salt[..]), &info);
        let derived = t.derive(&m, base, &made(CKK_GENERIC_SECRET, Some(size)));
        if approved_mode() && ikm.len() * 8 < 112 {
            assert_eq!(derived, Err(HKDF_SHORT_KEY.rv), "{file} tcId {}: derive in the approved mode", id(c));
            tally.skip(id(c), &refused_text(&HKDF_SHORT_KEY));
            t.destroy(base);
            continue;
        }
        let value = derived.and_then(|k| {
            let v = t.value(k);
            t.destroy(k);
            v
        });
        tally.case(id(c), result(c), value.is_ok(), value.as_ref().is_ok_and(|v| *v == okm));
        t.destroy(base);
    }
    tally.finish();
}

#[test]
fn hkdf_sha2() {
    hkdf_file("hkdf_sha256_test", CKM_SHA256);
    hkdf_file("hkdf_sha384_test", CKM_SHA384);
    hkdf_file("hkdf_sha512_test", CKM_SHA512);
}

/// PBKDF2 parameters below SP 800-132's minimums: the approved rule's condition is unmet.
fn pbkdf2_refusal(salt: &[u8], iterations: CK_ULONG, dk_len: usize) -> Option<Refusal> {
    let why = if salt.len() < 16 {
        "PBKDF2 salt shorter than 128 bits (SP 800-132)"
    } else if iterations < 1000 {
        "PBKDF2 with fewer than 1,000 iterations (SP 800-132)"
    } else if dk_len * 8 < 112 {
        "PBKDF2 output shorter than 112 bits (SP 800-132)"
    } else {
        return None;
    };
    Some(Refusal { rv: CKR_MECHANISM_PARAM_INVALID, why })
}

#[test]
fn pbkdf2_hmac_sha256() {
    let Some(v) = wycheproof::load("pbkdf2_hmacsha256_test") else { return };
    let t = Token::new("wp-pbkdf2");
    let mut tally = Tally::new("pbkdf2_hmacsha256_test");
    for (_, c) in cases(&v) {
        let (pw, salt, dk) = (hex(&c["password"]), hex(&c["salt"]), hex(&c["dk"]));
        let iterations = c["iterationCount"].as_u64().unwrap_or(0) as CK_ULONG;
        let len = c["dkLen"].as_u64().unwrap_or(0) as usize;
        let m = pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA256, &pw, &salt, iterations);
        if let Some(r) = pbkdf2_refusal(&salt, iterations, len).filter(|_| approved_mode()) {
            let refused = t.generate(&m, &made(CKK_GENERIC_SECRET, Some(len)));
            assert_eq!(refused, Err(r.rv), "pbkdf2_hmacsha256_test tcId {}: the approved mode", id(c));
            tally.skip(id(c), &refused_text(&r));
            continue;
        }
        let value = t.generate(&m, &made(CKK_GENERIC_SECRET, Some(len))).and_then(|k| {
            let v = t.value(k);
            t.destroy(k);
            v
        });
        tally.case(id(c), result(c), value.is_ok(), value.as_ref().is_ok_and(|v| *v == dk));
    }
    tally.finish();
}
