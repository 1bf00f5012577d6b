//! Project Wycheproof vectors for ECDSA, ECDH, Ed25519 and X25519, run through the built module:
//! each key is imported with `C_CreateObject`, signatures are checked with `C_Verify`, shared
//! secrets are derived with `CKM_ECDH1_DERIVE` (`CKD_NULL`) into extractable generic secrets whose
//! `CKA_VALUE` is compared. Every `valid` case must pass and every `invalid` one be rejected.
//!
//! In the approved mode (`TESSERA_MODE=approved`) a case whose use `policy/approved.toml` does not
//! allow (Ed448 signatures, X25519 agreement) is still sent to the module, checked to be refused
//! with the code the policy gives, and counted as skipped, "refused by the approved-mode policy",
//! with the reason.

use cryptoki::error::RvError;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use serde_json::Value;
use spki::der::asn1::{ObjectIdentifier, UintRef};
use spki::der::{Decode, Reader, SliceReader};
use std::collections::BTreeMap;
use tessera_tests::wycheproof::{self, hex, Tally};
use tessera_tests::*;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// `CKA_EC_PARAMS` and field size of a Wycheproof curve name.
fn curve(name: &str) -> Option<(&'static [u8], usize)> {
    match name {
        "secp256r1" => Some((P256, 32)),
        "secp384r1" => Some((P384, 48)),
        "secp521r1" => Some((P521, 66)),
        _ => None,
    }
}

fn tests(g: &Value) -> &[Value] {
    g["tests"].as_array().map(|v| v.as_slice()).unwrap_or(&[])
}

fn groups(v: &Value) -> &[Value] {
    v["testGroups"].as_array().map(|v| v.as_slice()).unwrap_or(&[])
}

fn id(t: &Value) -> u64 {
    t["tcId"].as_u64().unwrap_or(0)
}

fn result(t: &Value) -> &str {
    t["result"].as_str().unwrap_or("")
}

/// What the approved mode answers for `mech` used for `function` on a key of `curve` (the policy's
/// curve name): `None` when the use is approved, or in the non-approved mode; else the code and
/// the reason for the tally. The table is `policy/approved.toml`, written out here so that the
/// test checks the module against the policy rather than against itself.
fn approved_refusal(mech: &str, function: &str, curve: &str) -> Option<(RvError, String)> {
    if !approved_mode() {
        return None;
    }
    let prime = ["secp256r1", "secp384r1", "secp521r1"];
    let curves: &[&str] = match (mech, function) {
        ("CKM_ECDSA_SHA224" | "CKM_ECDSA_SHA256" | "CKM_ECDSA_SHA384" | "CKM_ECDSA_SHA512", _) => &prime,
        ("CKM_ECDSA_SHA1", "verify") => &prime,
        ("CKM_ECDH1_DERIVE", "derive") => &prime,
        ("CKM_EDDSA", _) => &["ed25519"],
        _ => {
            let why = format!("{mech} {function} has no approved use, CKR_MECHANISM_INVALID");
            return Some((RvError::MechanismInvalid, format!("refused by the approved-mode policy: {why}")));
        }
    };
    (!curves.contains(&curve)).then(|| {
        let why = format!("{mech} {function} is approved on {} only, CKR_KEY_SIZE_RANGE", curves.join(", "));
        (RvError::KeySizeRange, format!("refused by the approved-mode policy: {curve}: {why}"))
    })
}

/// In the approved mode, a case whose use the policy refuses: the module must have refused it with
/// the policy's code; the case is counted as skipped with the reason.
fn record_refused<T: std::fmt::Debug>(
    tally: &mut Tally,
    t: &Value,
    r: cryptoki::error::Result<T>,
    (code, why): &(RvError, String),
) {
    match r {
        Err(e) if pkcs11_rv(&e) == Some(*code) => tally.skip(id(t), why),
        other => {
            tally.failed.push(format!("tcId {}: the approved mode must refuse it with {code:?}, got {other:?}", id(t)))
        }
    }
}

/// A big-endian integer as exactly `n` bytes, if it fits.
fn fixed(v: &[u8], n: usize) -> Option<Vec<u8>> {
    let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
    if v.len() > n {
        return None;
    }
    let mut out = vec![0u8; n - v.len()];
    out.extend(v);
    Some(out)
}

/// Strict DER `ECDSA-Sig-Value` → PKCS#11 `r ‖ s`; `None` when the encoding is not valid DER
/// (BER, negative or non-minimal integers, trailing bytes) or an integer exceeds the field size.
fn der_to_raw(sig: &[u8], n: usize) -> Option<Vec<u8>> {
    let mut r = SliceReader::new(sig).ok()?;
    let (a, b) = r
        .sequence(|inner| {
            let a = UintRef::decode(inner)?;
            let b = UintRef::decode(inner)?;
            Ok((a.as_bytes().to_vec(), b.as_bytes().to_vec()))
        })
        .ok()?;
    r.finish(()).ok()?;
    let mut out = fixed(&a, n)?;
    out.extend(fixed(&b, n)?);
    Some(out)
}

fn public_key(s: &Session, kt: KeyType, params: &[u8], point: &[u8]) -> cryptoki::error::Result<ObjectHandle> {
    s.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(kt),
        Attribute::Token(false),
        Attribute::Verify(true),
        Attribute::EcParams(params.to_vec()),
        Attribute::EcPoint(octet(point)),
    ])
}

fn private_key(s: &Session, kt: KeyType, params: &[u8], value: &[u8]) -> ObjectHandle {
    s.create_object(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(kt),
        Attribute::Token(false),
        Attribute::Derive(true),
        Attribute::Sensitive(true),
        Attribute::EcParams(params.to_vec()),
        Attribute::Value(value.to_vec()),
    ])
    .expect("import private key")
}

/// Counts rejections the test itself made before reaching the module, by reason.
#[derive(Default)]
struct Notes(BTreeMap<&'static str, usize>);

impl Notes {
    fn add(&mut self, why: &'static str) {
        *self.0.entry(why).or_default() += 1;
    }

    fn print(&self, name: &str) {
        for (why, n) in &self.0 {
            println!("  {name}: {n} rejected before the module: {why}");
        }
    }
}

/// Verification outcome: accepted, or the error, which must be a signature error.
fn verify(s: &Session, m: &Mechanism, key: ObjectHandle, msg: &[u8], sig: &[u8], odd: &mut Vec<String>) -> bool {
    match s.verify(m, key, msg, sig) {
        Ok(()) => true,
        Err(e) => {
            if !matches!(pkcs11_rv(&e), Some(RvError::SignatureInvalid | RvError::SignatureLenRange)) {
                odd.push(format!("unexpected error {e}"));
            }
            false
        }
    }
}

fn ecdsa_file(c: &Token, name: &str, p1363: bool) {
    let Some(v) = wycheproof::load(name) else { return };
    let mut tally = Tally::new(name);
    let mut notes = Notes::default();
    let mut odd = Vec::new();
    for g in groups(&v) {
        let pk = &g["publicKey"];
        let Some((params, n)) = pk["curve"].as_str().and_then(curve) else {
            for t in tests(g) {
                tally.skip(id(t), "curve not implemented");
            }
            continue;
        };
        let (mech, mech_name) = match g["sha"].as_str() {
            Some("SHA-1") => (Mechanism::EcdsaSha1, "CKM_ECDSA_SHA1"),
            Some("SHA-224") => (Mechanism::EcdsaSha224, "CKM_ECDSA_SHA224"),
            Some("SHA-256") => (Mechanism::EcdsaSha256, "CKM_ECDSA_SHA256"),
            Some("SHA-384") => (Mechanism::EcdsaSha384, "CKM_ECDSA_SHA384"),
            Some("SHA-512") => (Mechanism::EcdsaSha512, "CKM_ECDSA_SHA512"),
            other => {
                for t in tests(g) {
                    tally.skip(id(t), &format!("hash {other:?} has no CKM_ECDSA_* mechanism"));
                }
                continue;
            }
        };
        let key = public_key(c.s(), KeyType::EC, params, &hex(&pk["uncompressed"])).expect("import public key");
        let refusal = approved_refusal(mech_name, "verify", pk["curve"].as_str().unwrap_or(""));
        for t in tests(g) {
            let msg = hex(&t["msg"]);
            let sig = hex(&t["sig"]);
            if let Some(refusal) = &refusal {
                let raw = if p1363 { sig } else { der_to_raw(&sig, n).unwrap_or(vec![0; 2 * n]) };
                record_refused(&mut tally, t, c.s().verify(&mech, key, &msg, &raw), refusal);
                continue;
            }
            let raw = if p1363 { Some(sig) } else { der_to_raw(&sig, n) };
            let accepted = match raw {
                Some(raw) => verify(c.s(), &mech, key, &msg, &raw, &mut odd),
                None => {
                    notes.add("signature is not valid DER or an integer exceeds the field size");
                    false
                }
            };
            tally.case(id(t), result(t), accepted, true);
        }
        c.s().destroy_object(key).expect("destroy");
    }
    notes.print(name);
    assert!(odd.is_empty(), "{name}: {odd:?}");
    tally.finish();
}

#[test]
fn ecdsa_p1363() {
    let c = Token::new("wp-ecdsa-p1363");
    for f in
        ["ecdsa_secp256r1_sha256_p1363_test", "ecdsa_secp384r1_sha384_p1363_test", "ecdsa_secp521r1_sha512_p1363_test"]
    {
        ecdsa_file(&c, f, true);
    }
}

#[test]
fn ecdsa_der() {
    let c = Token::new("wp-ecdsa-der");
    for f in ["ecdsa_secp256r1_sha256_test", "ecdsa_secp384r1_sha384_test", "ecdsa_secp521r1_sha512_test"] {
        ecdsa_file(&c, f, false);
    }
}

/// Derives with `CKD_NULL` from an imported private key and a peer's public data; `None` when
/// the module refuses (which must be for the peer key).
fn ecdh(s: &Session, base: ObjectHandle, peer: &[u8], odd: &mut Vec<String>) -> Option<Vec<u8>> {
    match ecdh_result(s, base, peer) {
        Ok(v) => Some(v),
        Err(e) => {
            if pkcs11_rv(&e) != Some(RvError::MechanismParamInvalid) {
                odd.push(format!("unexpected error {e}"));
            }
            None
        }
    }
}

/// Derives with `CKD_NULL` and reads the secret back; the module's error as it is. The approved
/// mode never lets the secret out (SP 800-56A Rev. 3 §5.8): there the ANS X9.63 KDF with SHA-256
/// and no shared info derives 32 bytes from it, which [`seen`] computes from the vector's secret.
fn ecdh_result(s: &Session, base: ObjectHandle, peer: &[u8]) -> cryptoki::error::Result<Vec<u8>> {
    let kdf = if approved_mode() { EcKdf::sha256(&[]) } else { EcKdf::null() };
    let m = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(kdf, peer));
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    if approved_mode() {
        template.push(Attribute::ValueLen(32.into()));
    }
    let k = s.derive_key(&m, base, &template)?;
    let v = match s.get_attributes(k, &[AttributeType::Value]).expect("value").pop() {
        Some(Attribute::Value(v)) => v,
        other => panic!("unexpected {other:?}"),
    };
    s.destroy_object(k).expect("destroy");
    Ok(v)
}

/// What [`ecdh_result`] reads for a shared secret `z`: `z`, or in the approved mode
/// SHA-256(z ‖ 00000001), the X9.63 KDF's first block.
fn seen(z: &[u8]) -> Vec<u8> {
    if !approved_mode() {
        return z.to_vec();
    }
    use sha2::Digest;
    sha2::Sha256::new().chain_update(z).chain_update(1u32.to_be_bytes()).finalize().to_vec()
}

/// The point inside an SPKI, if the SPKI is DER, id-ecPublicKey, and names `params`' curve.
enum Spki {
    Point(Vec<u8>),
    /// Another curve's OID (or a mangled one).
    OtherCurve(Vec<u8>),
    Rejected(&'static str),
}

fn spki_point(der: &[u8], params: &[u8]) -> Spki {
    let Ok(info) = spki::SubjectPublicKeyInfoRef::from_der(der) else {
        return Spki::Rejected("public key is not a DER SubjectPublicKeyInfo");
    };
    if info.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Spki::Rejected("SPKI algorithm is not id-ecPublicKey");
    }
    let Some(point) = info.subject_public_key.as_bytes().map(|b| b.to_vec()) else {
        return Spki::Rejected("SPKI key bit string has unused bits");
    };
    let named = info.algorithm.parameters.and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let want = ObjectIdentifier::from_der(params).expect("curve OID");
    match named {
        Some(oid) if oid == want => Spki::Point(point),
        Some(_) => Spki::OtherCurve(point),
        None => Spki::Rejected("SPKI has explicit curve parameters, not a named curve"),
    }
}

fn ecdh_file(c: &Token, name: &str, spki: bool) {
    let Some(v) = wycheproof::load(name) else { return };
    let mut tally = Tally::new(name);
    let mut notes = Notes::default();
    let mut odd = Vec::new();
    let mut other_curve = (0usize, 0usize);
    for g in groups(&v) {
        let Some((params, n)) = g["curve"].as_str().and_then(curve) else {
            for t in tests(g) {
                tally.skip(id(t), "curve not implemented");
            }
            continue;
        };
        let refusal = approved_refusal("CKM_ECDH1_DERIVE", "derive", g["curve"].as_str().unwrap_or(""));
        for t in tests(g) {
            if let Some(refusal) = &refusal {
                let base =
                    private_key(c.s(), KeyType::EC, params, &fixed(&hex(&t["private"]), n).unwrap_or(vec![1; n]));
                record_refused(&mut tally, t, ecdh_result(c.s(), base, &hex(&t["public"])), refusal);
                c.s().destroy_object(base).expect("destroy");
                continue;
            }
            let Some(d) = fixed(&hex(&t["private"]), n) else {
                tally.skip(id(t), "private scalar longer than the field");
                continue;
            };
            let public = hex(&t["public"]);
            let peer = if spki {
                match spki_point(&public, params) {
                    Spki::Point(p) => Some((p, false)),
                    Spki::OtherCurve(p) => Some((p, true)),
                    Spki::Rejected(why) => {
                        notes.add(why);
                        None
                    }
                }
            } else {
                Some((public, false))
            };
            let base = private_key(c.s(), KeyType::EC, params, &d);
            let shared = seen(&hex(&t["shared"]));
            let (accepted, matched) = match peer {
                None => (false, false),
                // The SPKI names another curve (or a mangled OID): a PKCS#11 application sees
                // that before it calls the module, and refuses. The module, given only the raw
                // point, is still asked: how often it refuses on its own is reported.
                Some((p, true)) => {
                    notes.add("SPKI names another curve than the private key's");
                    other_curve.0 += 1;
                    other_curve.1 += ecdh(c.s(), base, &p, &mut odd).is_none() as usize;
                    (false, false)
                }
                Some((p, false)) => match ecdh(c.s(), base, &p, &mut odd) {
                    Some(z) => (true, z == shared),
                    None => (false, false),
                },
            };
            tally.case(id(t), result(t), accepted, matched);
            c.s().destroy_object(base).expect("destroy");
        }
    }
    notes.print(name);
    if other_curve.0 > 0 {
        println!(
            "  {name}: of the {} points under another curve's OID, the module alone refused {}",
            other_curve.0, other_curve.1
        );
    }
    assert!(odd.is_empty(), "{name}: {odd:?}");
    tally.finish();
}

#[test]
fn ecdh_ecpoint() {
    let c = Token::new("wp-ecdh-point");
    for f in ["ecdh_secp256r1_ecpoint_test", "ecdh_secp384r1_ecpoint_test", "ecdh_secp521r1_ecpoint_test"] {
        ecdh_file(&c, f, false);
    }
}

#[test]
fn ecdh_spki() {
    let c = Token::new("wp-ecdh-spki");
    for f in ["ecdh_secp256r1_test", "ecdh_secp384r1_test", "ecdh_secp521r1_test"] {
        ecdh_file(&c, f, true);
    }
}

#[test]
fn ed25519() {
    let c = Token::new("wp-ed25519");
    let name = "ed25519_test";
    let Some(v) = wycheproof::load(name) else { return };
    let mut tally = Tally::new(name);
    let mut odd = Vec::new();
    let m = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    let refusal = approved_refusal("CKM_EDDSA", "verify", "ed25519");
    for g in groups(&v) {
        let pk = hex(&g["publicKey"]["pk"]);
        let key = public_key(c.s(), KeyType::EC_EDWARDS, ED25519, &pk).expect("import");
        for t in tests(g) {
            if let Some(refusal) = &refusal {
                record_refused(&mut tally, t, c.s().verify(&m, key, &hex(&t["msg"]), &hex(&t["sig"])), refusal);
                continue;
            }
            let accepted = verify(c.s(), &m, key, &hex(&t["msg"]), &hex(&t["sig"]), &mut odd);
            tally.case(id(t), result(t), accepted, true);
        }
        c.s().destroy_object(key).expect("destroy");
    }
    assert!(odd.is_empty(), "{name}: {odd:?}");
    tally.finish();
}

#[test]
fn ed448_is_not_supported() {
    let c = Token::new("wp-ed448");
    let name = "ed448_test";
    let Some(v) = wycheproof::load(name) else { return };
    let mut tally = Tally::new(name);
    let m = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    // In the approved mode the policy refuses the curve first (CKM_EDDSA is approved on Ed25519
    // only): every case is sent and checked to be refused with its code.
    let refusal = approved_refusal("CKM_EDDSA", "verify", "ed448");
    for g in groups(&v) {
        let pk = hex(&g["publicKey"]["pk"]);
        // The module may refuse the curve when the key is created (CKR_CURVE_NOT_SUPPORTED in
        // either mode: object creation is not a policy decision); then no case reaches a use.
        let key = match public_key(c.s(), KeyType::EC_EDWARDS, ED448, &pk) {
            Ok(key) => key,
            Err(e) => {
                assert_eq!(pkcs11_rv(&e), Some(RvError::CurveNotSupported), "import of an Ed448 public key");
                for t in tests(g) {
                    tally.skip(id(t), "Ed448 not implemented (C_CreateObject: CKR_CURVE_NOT_SUPPORTED, checked)");
                }
                continue;
            }
        };
        if let Some(refusal) = &refusal {
            for t in tests(g) {
                record_refused(&mut tally, t, c.s().verify(&m, key, &hex(&t["msg"]), &hex(&t["sig"])), refusal);
            }
            continue;
        }
        // The module refuses the curve rather than misusing the key.
        let e = c.s().verify_init(&m, key).expect_err("Ed448 is not implemented");
        assert_eq!(pkcs11_rv(&e), Some(RvError::CurveNotSupported));
        for t in tests(g) {
            tally.skip(id(t), "Ed448 not implemented (CKR_CURVE_NOT_SUPPORTED, checked)");
        }
    }
    tally.finish();
}

#[test]
fn x25519() {
    let c = Token::new("wp-x25519");
    let name = "x25519_test";
    let Some(v) = wycheproof::load(name) else { return };
    let mut tally = Tally::new(name);
    let mut odd = Vec::new();
    for g in groups(&v) {
        if g["curve"].as_str() != Some("curve25519") {
            for t in tests(g) {
                tally.skip(id(t), "curve not implemented");
            }
            continue;
        }
        // X25519 is not an approved key-agreement curve: in the approved mode every case is sent
        // and checked to be refused with the policy's code.
        let refusal = approved_refusal("CKM_ECDH1_DERIVE", "derive", "x25519");
        for t in tests(g) {
            let base = private_key(c.s(), KeyType::EC_MONTGOMERY, X25519, &hex(&t["private"]));
            if let Some(refusal) = &refusal {
                record_refused(&mut tally, t, ecdh_result(c.s(), base, &hex(&t["public"])), refusal);
                c.s().destroy_object(base).expect("destroy");
                continue;
            }
            let (accepted, matched) = match ecdh(c.s(), base, &hex(&t["public"]), &mut odd) {
                Some(z) => (true, z == hex(&t["shared"])),
                None => (false, false),
            };
            tally.case(id(t), result(t), accepted, matched);
            c.s().destroy_object(base).expect("destroy");
        }
    }
    assert!(odd.is_empty(), "{name}: {odd:?}");
    tally.finish();
}
