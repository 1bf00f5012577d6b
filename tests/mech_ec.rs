//! The elliptic-curve mechanisms through the built module: P-256/P-384/P-521 key pairs, ECDSA
//! (raw and hashed, single- and multi-part), ECDH with and without the X9.63 KDFs, Ed25519 and
//! X25519; attribute encodings, imports with raw points, the two-call convention, refusals, and
//! OpenSSL checking a Tessera ECDSA signature.
//!
//! The suite runs in both modes of the module (`TESSERA_MODE`). In the approved mode the uses that
//! `policy/approved.toml` does not list are asserted to be refused with the code the policy gives:
//! ECDSA-with-SHA-1 signature generation (verification stays), X25519 (no key generation, no
//! ECDH on its keys), and curves outside a mechanism's rule, which the policy judges (as
//! `CKR_KEY_SIZE_RANGE`) before the mechanism would answer `CKR_CURVE_NOT_SUPPORTED`.

use cryptoki::error::RvError;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use sha2::Digest;
use std::ptr::null_mut;
use tessera_tests::*;

/// `(CKA_EC_PARAMS, field size)` of each prime curve.
const CURVES: [(&[u8], usize); 3] = [(P256, 32), (P384, 48), (P521, 66)];

fn pair_with(
    s: &Session,
    mech: Mechanism,
    params: &[u8],
    extra_pub: &[Attribute],
    extra_priv: &[Attribute],
) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    let mut public = vec![Attribute::EcParams(params.to_vec()), Attribute::Token(false)];
    public.extend_from_slice(extra_pub);
    let mut private = vec![Attribute::Token(false), Attribute::Sensitive(true), Attribute::Derive(true)];
    private.extend_from_slice(extra_priv);
    s.generate_key_pair(&mech, &public, &private)
}

fn ec_pair(s: &Session, params: &[u8]) -> (ObjectHandle, ObjectHandle) {
    pair_with(s, Mechanism::EccKeyPairGen, params, &[], &[]).expect("EC key pair")
}

/// The raw point inside a `CKA_EC_POINT` value (checked to be a DER OCTET STRING).
fn unwrap_point(der: &[u8]) -> Vec<u8> {
    let (hdr, len) = match der[1] {
        0x81 => (3, der[2] as usize),
        n if n < 0x80 => (2, n as usize),
        _ => panic!("unexpected length form"),
    };
    assert_eq!(der[0], 0x04, "CKA_EC_POINT is an OCTET STRING");
    assert_eq!(der.len(), hdr + len, "CKA_EC_POINT length");
    der[hdr..].to_vec()
}

fn derived_template(len: Option<u64>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    if let Some(l) = len {
        t.push(Attribute::ValueLen(l.into()));
    }
    t
}

fn derive(
    s: &Session,
    base: ObjectHandle,
    kdf: EcKdf,
    peer: &[u8],
    len: Option<u64>,
) -> cryptoki::error::Result<Vec<u8>> {
    let m = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(kdf, peer));
    let k = s.derive_key(&m, base, &derived_template(len))?;
    Ok(bytes_attr(s, k, AttributeType::Value))
}

/// An ECDSA-with-SHA-1 signature (`r ‖ s`) made outside the module: OpenSSL signs with the scalar of
/// a new non-sensitive key pair on `params`. The approved mode makes no SHA-1 signature but
/// verifies them. Returns the pair's public key and the signature; `None`, after saying so, when
/// OpenSSL is not installed.
fn openssl_sha1_signature(s: &Session, params: &[u8], n: usize, msg: &[u8]) -> Option<(ObjectHandle, Vec<u8>)> {
    if !have_or_skip("openssl", "the ECDSA-SHA-1 verification with an OpenSSL signature") {
        return None;
    }
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(params.to_vec()), Attribute::Token(false), Attribute::Verify(true)],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .expect("EC key pair with a readable scalar");
    let d = bytes_attr(s, private, AttributeType::Value);
    let mut scalar = vec![0u8; n.saturating_sub(d.len())];
    scalar.extend(d);
    // RFC 5915 ECPrivateKey: SEQUENCE { version 1, privateKey OCTET STRING, [0] named curve }.
    let mut body = vec![0x02, 0x01, 0x01];
    body.extend(octet(&scalar));
    body.extend([0xa0, params.len() as u8]);
    body.extend_from_slice(params);
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    let dir = tempfile::tempdir().expect("tempdir");
    let (key_path, msg_path, sig_path) = (dir.path().join("key.der"), dir.path().join("msg"), dir.path().join("sig"));
    std::fs::write(&key_path, &der).expect("write");
    std::fs::write(&msg_path, msg).expect("write");
    let out = openssl_dgst_sign(&["-sha1", "-keyform", "DER"], &key_path, &sig_path, &msg_path);
    assert!(out.status.success(), "openssl dgst -sha1 -sign: {}", String::from_utf8_lossy(&out.stderr));
    // ECDSA-Sig-Value: SEQUENCE { INTEGER r, INTEGER s } → r ‖ s, each of the field size.
    let sig = std::fs::read(&sig_path).expect("read");
    assert_eq!(sig[0], 0x30);
    let mut i = if sig[1] == 0x81 { 3 } else { 2 };
    let mut raw = Vec::new();
    for _ in 0..2 {
        assert_eq!(sig[i], 0x02, "INTEGER");
        let len = sig[i + 1] as usize;
        let v: Vec<u8> = sig[i + 2..i + 2 + len].iter().copied().skip_while(|b| *b == 0).collect();
        raw.extend(vec![0u8; n - v.len()]);
        raw.extend(v);
        i += 2 + len;
    }
    Some((public, raw))
}

/// ANSI X9.63 KDF, computed here independently of the module.
fn x963(z: &[u8], shared: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut counter = 1u32;
    while out.len() < len {
        let mut h = sha2::Sha256::new();
        h.update(z);
        h.update(counter.to_be_bytes());
        h.update(shared);
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn mechanisms_are_listed_with_ec_flags() {
    let c = Token::new("ec-list");
    let l = &c.l;
    let slot = l.slot_of("ec-list");
    let approved = approved_mode();
    // (C_GetMechanismInfo per type: cryptoki's list conversion drops types it does not know,
    // among them CKM_ECDSA_SHA224.)
    for m in [
        MechanismType::ECC_KEY_PAIR_GEN,
        MechanismType::ECDSA,
        MechanismType::ECDSA_SHA1,
        MechanismType::ECDSA_SHA224,
        MechanismType::ECDSA_SHA256,
        MechanismType::ECDSA_SHA384,
        MechanismType::ECDSA_SHA512,
        MechanismType::ECDH1_DERIVE,
        MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
        MechanismType::EDDSA,
    ] {
        l.p.get_mechanism_info(slot, m).unwrap_or_else(|e| panic!("{m} offered: {e}"));
    }
    // X25519 key pairs have no approved use: absent from the approved mode.
    let montgomery = l.p.get_mechanism_info(slot, MechanismType::ECC_MONTGOMERY_KEY_PAIR_GEN);
    if approved {
        assert_eq!(rv(montgomery.unwrap_err()), RvError::MechanismInvalid, "X25519 in the approved mode");
    } else {
        montgomery.unwrap_or_else(|e| panic!("CKM_EC_MONTGOMERY_KEY_PAIR_GEN offered: {e}"));
    }
    // C_GetMechanismList agrees (raw: every type, known to `cryptoki` or not).
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let mut n: CK_ULONG = 0;
    assert_eq!(unsafe { f.C_GetMechanismList(slot.id(), null_mut(), &mut n) }, CKR_OK);
    let mut list = vec![0; n as usize];
    assert_eq!(unsafe { f.C_GetMechanismList(slot.id(), list.as_mut_ptr(), &mut n) }, CKR_OK);
    list.truncate(n as usize);
    for m in [
        CKM_EC_KEY_PAIR_GEN,
        CKM_ECDSA,
        CKM_ECDSA_SHA1,
        CKM_ECDSA_SHA224,
        CKM_ECDSA_SHA256,
        CKM_ECDSA_SHA384,
        CKM_ECDSA_SHA512,
        CKM_ECDH1_DERIVE,
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        CKM_EDDSA,
    ] {
        assert!(list.contains(&m), "{m:#x} is listed");
    }
    assert_eq!(list.contains(&CKM_EC_MONTGOMERY_KEY_PAIR_GEN), !approved, "X25519 listed only when non-approved");
    // ECDSA with SHA-1: the approved mode verifies, and only verifies, and says so.
    let info = l.p.get_mechanism_info(slot, MechanismType::ECDSA_SHA1).expect("info");
    assert!(info.verify());
    assert_eq!(info.sign(), !approved, "CKF_SIGN of CKM_ECDSA_SHA1");
    let info = l.p.get_mechanism_info(slot, MechanismType::ECDSA_SHA256).expect("info");
    assert!(info.sign() && info.verify() && info.ec_f_p() && info.ec_from_oid() && info.ec_uncompressed());
    // The approved mode reports its curves' sizes (P-256 to P-521); outside it P-224 is the least.
    let range = if approved { (256, 521) } else { (224, 521) };
    assert_eq!((info.min_key_size(), info.max_key_size()), range);
    let info = l.p.get_mechanism_info(slot, MechanismType::ECC_KEY_PAIR_GEN).expect("info");
    assert!(info.generate_key_pair());
    assert_eq!((info.min_key_size(), info.max_key_size()), range);
    let info = l.p.get_mechanism_info(slot, MechanismType::ECDH1_DERIVE).expect("info");
    assert!(info.derive());
    assert_eq!((info.min_key_size(), info.max_key_size()), if approved { (256, 521) } else { (224, 521) });
}

#[test]
fn keygen_attributes_and_ecdsa_round_trip_on_every_curve() {
    let c = Token::new("ec-sign");
    let s = c.s();
    let approved = approved_mode();
    let msg = b"Tessera signs with elliptic curves";
    for (params, n) in CURVES {
        let (public, private) = ec_pair(s, params);
        // The approved mode makes no SHA-1 signature (SP 800-131A Rev. 2 §3): one from OpenSSL.
        let sha1_signed = if approved { openssl_sha1_signature(s, params, n, msg) } else { None };
        // Public: named-curve OID and the uncompressed point in an OCTET STRING.
        assert_eq!(bytes_attr(s, public, AttributeType::EcParams), params);
        let point = unwrap_point(&bytes_attr(s, public, AttributeType::EcPoint));
        assert_eq!(point.len(), 1 + 2 * n);
        assert_eq!(point[0], 4);
        // Private: the same parameters; the scalar is sensitive.
        assert_eq!(bytes_attr(s, private, AttributeType::EcParams), params);
        let attrs = s.get_attributes(private, &[AttributeType::KeyType, AttributeType::Local]).expect("attrs");
        assert!(attrs.contains(&Attribute::KeyType(KeyType::EC)));
        assert!(attrs.contains(&Attribute::Local(true)));

        for m in [
            Mechanism::EcdsaSha1,
            Mechanism::EcdsaSha224,
            Mechanism::EcdsaSha256,
            Mechanism::EcdsaSha384,
            Mechanism::EcdsaSha512,
        ] {
            let (sig, sig2, public) = if approved && m.mechanism_type() == MechanismType::ECDSA_SHA1 {
                let refused = RvError::MechanismInvalid;
                assert_eq!(rv(s.sign(&m, private, msg).unwrap_err()), refused, "SHA-1 signature generation");
                assert_eq!(rv(s.sign_init(&m, private).unwrap_err()), refused, "SHA-1 signature generation");
                match &sha1_signed {
                    Some((key, sig)) => (sig.clone(), sig.clone(), *key),
                    None => {
                        let junk = vec![0x5a; 2 * n];
                        assert_eq!(rv(s.verify(&m, public, msg, &junk).unwrap_err()), RvError::SignatureInvalid);
                        continue;
                    }
                }
            } else {
                let sig = s.sign(&m, private, msg).expect("sign");
                // Multi-part produces a signature over the same message.
                s.sign_init(&m, private).expect("sign init");
                s.sign_update(&msg[..7]).expect("update");
                s.sign_update(&msg[7..]).expect("update");
                let sig2 = s.sign_final().expect("final");
                (sig, sig2, public)
            };
            assert_eq!(sig.len(), 2 * n, "{m:?}: r‖s of twice the field size");
            s.verify(&m, public, msg, &sig).expect("verify");
            s.verify_init(&m, public).expect("verify init");
            s.verify_update(&msg[..3]).expect("update");
            s.verify_update(&msg[3..]).expect("update");
            s.verify_final(&sig2).expect("verify final");
            // A changed message or signature is invalid; a wrong length is a length error.
            assert_eq!(rv(s.verify(&m, public, b"other", &sig).unwrap_err()), RvError::SignatureInvalid);
            let mut bad = sig.clone();
            bad[n + 3] ^= 1;
            assert_eq!(rv(s.verify(&m, public, msg, &bad).unwrap_err()), RvError::SignatureInvalid);
            assert_eq!(rv(s.verify(&m, public, msg, &sig[1..]).unwrap_err()), RvError::SignatureLenRange);
            let mut long = sig.clone();
            long.push(0);
            assert_eq!(rv(s.verify(&m, public, msg, &long).unwrap_err()), RvError::SignatureLenRange);
        }

        // CKM_ECDSA signs what the caller hashed: it equals CKM_ECDSA_SHA256 over the message.
        let digest = sha2::Sha256::digest(msg);
        let sig = s.sign(&Mechanism::Ecdsa, private, &digest).expect("raw sign");
        s.verify(&Mechanism::EcdsaSha256, public, msg, &sig).expect("hashed verify of a raw signature");
        // Inputs longer than the order are truncated to the leftmost bits (FIPS 186).
        let long = sha2::Sha512::digest(msg);
        let sig = s.sign(&Mechanism::Ecdsa, private, &long).expect("raw sign of a long input");
        s.verify(&Mechanism::Ecdsa, public, &long, &sig).expect("raw verify");
        if n < 64 {
            s.verify(&Mechanism::EcdsaSha512, public, msg, &sig).expect("SHA-512 verify of the raw signature");
        }
        // CKM_ECDSA is single-part.
        s.sign_init(&Mechanism::Ecdsa, private).expect("init");
        assert_eq!(rv(s.sign_update(&digest).unwrap_err()), RvError::FunctionNotSupported);
    }
}

/// A private key's `CKA_PUBLIC_KEY_INFO` must be its own public key wherever it is given
/// (`C_CreateObject`, `C_SetAttributeValue`): compared by algorithm, curve and point (compressed or
/// not); anything else is `CKR_ATTRIBUTE_VALUE_INVALID`.
#[test]
fn public_key_info_of_a_private_key_is_checked() {
    let c = Token::new("ec-pki");
    let s = c.s();
    let ec_alg =
        |params: &[u8]| der(0x30, &[&[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01][..], params].concat());
    let spki = |alg: Vec<u8>, point: &[u8]| der(0x30, &[alg, der(0x03, &[&[0u8][..], point].concat())].concat());
    // A pair whose private scalar can be read, to import it again.
    let readable = |m: Mechanism, params: &[u8]| {
        let public = [Attribute::EcParams(params.to_vec()), Attribute::Token(false)];
        let private = [Attribute::Token(false), Attribute::Sensitive(false), Attribute::Extractable(true)];
        s.generate_key_pair(&m, &public, &private).expect("pair")
    };
    let (public, private) = readable(Mechanism::EccKeyPairGen, P256);
    let point = unwrap_point(&bytes_attr(s, public, AttributeType::EcPoint));
    let d = bytes_attr(s, private, AttributeType::Value);
    let (other_pub, _) = ec_pair(s, P256);
    let other = unwrap_point(&bytes_attr(s, other_pub, AttributeType::EcPoint));
    let mut compressed = vec![2 + (point[64] & 1)];
    compressed.extend_from_slice(&point[1..33]);
    let create = |info: Vec<u8>| {
        s.create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(false),
            Attribute::EcParams(P256.to_vec()),
            Attribute::Value(d.clone()),
            Attribute::PublicKeyInfo(info),
        ])
    };
    create(spki(ec_alg(P256), &point)).expect("its own public key");
    create(spki(ec_alg(P256), &compressed)).expect("its own public key, compressed");
    let k = create(Vec::new()).expect("no public key info");
    for (what, wrong) in [
        ("another key", spki(ec_alg(P256), &other)),
        ("another curve", spki(ec_alg(P384), &point)),
        ("not DER", vec![0x30, 0x03, 1, 2]),
    ] {
        assert_eq!(rv(create(wrong.clone()).unwrap_err()), RvError::AttributeValueInvalid, "{what}");
        let e = s.update_attributes(k, &[Attribute::PublicKeyInfo(wrong)]).unwrap_err();
        assert_eq!(rv(e), RvError::AttributeValueInvalid, "C_SetAttributeValue, {what}");
    }
    s.update_attributes(k, &[Attribute::PublicKeyInfo(spki(ec_alg(P256), &point))]).expect("set its own");
    // Ed25519: the algorithm is id-Ed25519 and the key its 32 bytes.
    let (ed_pub, ed_priv) = readable(Mechanism::EccEdwardsKeyPairGen, ED25519);
    let ed_point = unwrap_point(&bytes_attr(s, ed_pub, AttributeType::EcPoint));
    let seed = bytes_attr(s, ed_priv, AttributeType::Value);
    let ed_alg = der(0x30, &[0x06, 0x03, 0x2b, 0x65, 0x70]);
    let ed = |info: Vec<u8>| {
        s.create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(false),
            Attribute::EcParams(ED25519.to_vec()),
            Attribute::Value(seed.clone()),
            Attribute::PublicKeyInfo(info),
        ])
    };
    ed(spki(ed_alg.clone(), &ed_point)).expect("its own Ed25519 key");
    let mut flipped = ed_point.clone();
    flipped[0] ^= 1;
    assert_eq!(rv(ed(spki(ed_alg, &flipped)).unwrap_err()), RvError::AttributeValueInvalid);
}

/// Private keys of every curve go through `CKM_AES_KEY_WRAP` (RFC 3394), their PKCS#8 encoding
/// zero padded to a multiple of 8 bytes as PKCS#11 has it for that mechanism; the unwrapped key
/// signs what the original public key verifies.
#[test]
fn private_keys_wrap_with_aes_key_wrap() {
    let c = Token::new("ec-wrap");
    let s = c.s();
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::ValueLen(32.into()), Attribute::Token(false), Attribute::Wrap(true), Attribute::Unwrap(true)],
        )
        .expect("KEK");
    let msg = b"Tessera unwraps what it wrapped";
    for (params, _) in CURVES {
        let (public, private) = pair_with(s, Mechanism::EccKeyPairGen, params, &[], &[Attribute::Extractable(true)])
            .expect("extractable EC key pair");
        {
            let (wrap, name) = (Mechanism::AesKeyWrap, "KW");
            let wrapped = s.wrap_key(&wrap, kek, private).unwrap_or_else(|e| panic!("{name} wrap: {e}"));
            assert_eq!(wrapped.len() % 8, 0);
            let template = [
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Token(false),
                Attribute::Sign(true),
            ];
            let back = s.unwrap_key(&wrap, kek, &wrapped, &template).unwrap_or_else(|e| panic!("{name} unwrap: {e}"));
            assert_eq!(bytes_attr(s, back, AttributeType::EcParams), params, "{name}");
            let sig = s.sign(&Mechanism::EcdsaSha256, back, msg).expect("sign with the unwrapped key");
            s.verify(&Mechanism::EcdsaSha256, public, msg, &sig).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn curve_names_given_as_printable_strings_are_accepted() {
    let c = Token::new("ec-names");
    let s = c.s();
    for (name, n) in [("prime256v1", 32), ("secp384r1", 48), ("secp521r1", 66)] {
        let mut der = vec![0x13, name.len() as u8];
        der.extend_from_slice(name.as_bytes());
        let (public, private) = ec_pair(s, &der);
        let sig = s.sign(&Mechanism::EcdsaSha256, private, b"m").expect("sign");
        assert_eq!(sig.len(), 2 * n);
        s.verify(&Mechanism::EcdsaSha256, public, b"m", &sig).expect("verify");
    }
}

#[test]
fn unknown_curves_are_not_supported_and_never_substituted() {
    let c = Token::new("ec-curves");
    let s = c.s();
    // In the approved mode the policy judges the curve (CKA_EC_PARAMS) before the mechanism does: a
    // curve the module knows but the mechanism's rule does not list is CKR_KEY_SIZE_RANGE; a curve
    // it does not know names no size, which leaves the answer to the mechanism
    // (CKR_CURVE_NOT_SUPPORTED); a mechanism with no approved use (X25519 key pairs) is
    // CKR_MECHANISM_INVALID.
    let approved = approved_mode();
    let outside_rule = if approved { RvError::KeySizeRange } else { RvError::CurveNotSupported };
    let x448: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6f];
    // P-192 (prime192v1), by OID and by name, is a curve Tessera does not implement.
    let p192: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x01];
    let mut p192_name = vec![0x13, 10];
    p192_name.extend_from_slice(b"prime192v1");
    for (m, params, refusal) in [
        (Mechanism::EccKeyPairGen, p192, RvError::CurveNotSupported),
        (Mechanism::EccKeyPairGen, &p192_name[..], RvError::CurveNotSupported),
        (Mechanism::EccKeyPairGen, ED448, RvError::CurveNotSupported),
        (Mechanism::EccKeyPairGen, ED25519, outside_rule),
        (Mechanism::EccKeyPairGen, X25519, outside_rule),
        (Mechanism::EccEdwardsKeyPairGen, ED448, RvError::CurveNotSupported),
        (Mechanism::EccEdwardsKeyPairGen, P256, outside_rule),
        (Mechanism::EccEdwardsKeyPairGen, X25519, outside_rule),
    ] {
        let what = format!("{m:?} on {params:02x?}");
        let e = pair_with(s, m, params, &[], &[]).unwrap_err();
        assert_eq!(rv(e), refusal, "{what}");
    }
    for params in [ED25519, P256, x448] {
        let e = pair_with(s, Mechanism::EccMontgomeryKeyPairGen, params, &[], &[]).unwrap_err();
        assert_eq!(rv(e), if approved { RvError::MechanismInvalid } else { RvError::CurveNotSupported });
    }
    // Without parameters the template is incomplete (in both modes: no curve named leaves the
    // answer to the mechanism); differing parameters are inconsistent.
    let e = s
        .generate_key_pair(&Mechanism::EccKeyPairGen, &[Attribute::Token(false)], &[Attribute::Token(false)])
        .unwrap_err();
    assert_eq!(rv(e), RvError::TemplateIncomplete);
    let e = pair_with(s, Mechanism::EccKeyPairGen, P256, &[], &[Attribute::EcParams(P384.to_vec())]).unwrap_err();
    assert_eq!(rv(e), RvError::TemplateInconsistent);

    // An Ed448 key is refused: at C_CreateObject (CKR_CURVE_NOT_SUPPORTED, whatever the mode: object
    // creation is not a policy decision), or, if the module takes it in, when it is used.
    let imported = s.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::Token(false),
        Attribute::EcParams(ED448.to_vec()),
        Attribute::EcPoint(octet(&[1u8; 57])),
    ]);
    match imported {
        Err(e) => assert_eq!(rv(e), RvError::CurveNotSupported, "import of an Ed448 public key"),
        Ok(pk) => {
            let e = s.verify(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), pk, b"m", &[0; 114]);
            assert_eq!(rv(e.unwrap_err()), outside_rule);
        }
    }
}

#[test]
fn imported_keys_accept_raw_and_wrapped_points() {
    let c = Token::new("ec-import");
    let s = c.s();
    for (params, _) in CURVES {
        let (public, private) = ec_pair(s, params);
        let point = unwrap_point(&bytes_attr(s, public, AttributeType::EcPoint));
        let sig = s.sign(&Mechanism::EcdsaSha384, private, b"imported").expect("sign");
        for form in [point.clone(), octet(&point)] {
            let imported = s
                .create_object(&[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::KeyType(KeyType::EC),
                    Attribute::Token(false),
                    Attribute::Verify(true),
                    Attribute::EcParams(params.to_vec()),
                    Attribute::EcPoint(form),
                ])
                .expect("import public key");
            s.verify(&Mechanism::EcdsaSha384, imported, b"imported", &sig).expect("verify with imported key");
        }
        // A point not on the curve is refused when the key is used.
        let mut off = point.clone();
        let last = off.len() - 1;
        off[last] ^= 1;
        let bad = s
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Token(false),
                Attribute::EcParams(params.to_vec()),
                Attribute::EcPoint(octet(&off)),
            ])
            .expect("import");
        assert_eq!(rv(s.verify_init(&Mechanism::EcdsaSha384, bad).unwrap_err()), RvError::KeyTypeInconsistent);
    }
}

/// The key's own checks come before the approved-mode policy, and the parameters after it; every
/// use here is an approved one (P-256, Ed25519), so the codes are the same in both modes.
#[test]
fn usage_key_type_and_parameter_refusals() {
    let c = Token::new("ec-refuse");
    let s = c.s();
    let (public, private) =
        pair_with(s, Mechanism::EccKeyPairGen, P256, &[Attribute::Verify(false)], &[Attribute::Sign(false)])
            .expect("pair");
    assert_eq!(rv(s.sign_init(&Mechanism::EcdsaSha256, private).unwrap_err()), RvError::KeyFunctionNotPermitted);
    assert_eq!(rv(s.verify_init(&Mechanism::EcdsaSha256, public).unwrap_err()), RvError::KeyFunctionNotPermitted);

    let (_, ec_priv) = ec_pair(s, P256);
    let (ed_pub, ed_priv) = pair_with(s, Mechanism::EccEdwardsKeyPairGen, ED25519, &[], &[]).expect("ed pair");
    let pure = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    assert_eq!(rv(s.sign_init(&pure, ec_priv).unwrap_err()), RvError::KeyTypeInconsistent);
    assert_eq!(rv(s.sign_init(&Mechanism::EcdsaSha256, ed_priv).unwrap_err()), RvError::KeyTypeInconsistent);
    assert_eq!(rv(s.verify_init(&Mechanism::Ecdsa, ed_pub).unwrap_err()), RvError::KeyTypeInconsistent);
    // ECDH with an Edwards key, or on a key without CKA_DERIVE.
    let m = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &[4u8; 65]));
    assert_eq!(rv(s.derive_key(&m, ed_priv, &derived_template(None)).unwrap_err()), RvError::KeyTypeInconsistent);
    let (_, no_derive) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(P256.to_vec()), Attribute::Token(false)],
            &[Attribute::Token(false), Attribute::Derive(false)],
        )
        .expect("pair");
    assert_eq!(rv(s.derive_key(&m, no_derive, &derived_template(None)).unwrap_err()), RvError::KeyFunctionNotPermitted);

    // EdDSA contexts are at most 255 bytes.
    let long = [7u8; 256];
    let ph = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ph(&long)));
    assert_eq!(rv(s.sign_init(&ph, ed_priv).unwrap_err()), RvError::MechanismParamInvalid);

    // Raw calls: a parameter where none belongs, and a truncated CK_ECDH1_DERIVE_PARAMS.
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let h = s.handle();
    let junk = [0u8; 8];
    let mut mech = CK_MECHANISM { mechanism: CKM_ECDSA_SHA256, pParameter: junk.as_ptr() as *mut _, ulParameterLen: 8 };
    assert_eq!(unsafe { f.C_SignInit(h, &mut mech, ec_priv.handle()) }, CKR_MECHANISM_PARAM_INVALID);
    let mut mech =
        CK_MECHANISM { mechanism: CKM_EC_KEY_PAIR_GEN, pParameter: junk.as_ptr() as *mut _, ulParameterLen: 8 };
    let params = P256.to_vec();
    let mut pub_t =
        [CK_ATTRIBUTE { type_: CKA_EC_PARAMS, pValue: params.as_ptr() as *mut _, ulValueLen: params.len() as _ }];
    let (mut a, mut b) = (0, 0);
    let rv_gen = unsafe { f.C_GenerateKeyPair(h, &mut mech, pub_t.as_mut_ptr(), 1, null_mut(), 0, &mut a, &mut b) };
    assert_eq!(rv_gen, CKR_MECHANISM_PARAM_INVALID);
    let mut mech = CK_MECHANISM { mechanism: CKM_ECDH1_DERIVE, pParameter: junk.as_ptr() as *mut _, ulParameterLen: 8 };
    let mut out = 0;
    assert_eq!(
        unsafe { f.C_DeriveKey(h, &mut mech, ec_priv.handle(), null_mut(), 0, &mut out) },
        CKR_MECHANISM_PARAM_INVALID
    );
    // Unknown KDF, and shared data with CKD_NULL.
    let (peer_pub, _) = ec_pair(s, P256);
    let peer = bytes_attr(s, peer_pub, AttributeType::EcPoint);
    for (kdf, shared) in [(0x7777u64, &[][..]), (CKD_NULL, &b"x"[..])] {
        let p = CK_ECDH1_DERIVE_PARAMS {
            kdf: kdf as _,
            ulSharedDataLen: shared.len() as _,
            pSharedData: shared.as_ptr() as *mut _,
            ulPublicDataLen: peer.len() as _,
            pPublicData: peer.as_ptr() as *mut _,
        };
        let mut mech = CK_MECHANISM {
            mechanism: CKM_ECDH1_DERIVE,
            pParameter: &p as *const _ as *mut _,
            ulParameterLen: std::mem::size_of::<CK_ECDH1_DERIVE_PARAMS>() as _,
        };
        assert_eq!(
            unsafe { f.C_DeriveKey(h, &mut mech, ec_priv.handle(), null_mut(), 0, &mut out) },
            CKR_MECHANISM_PARAM_INVALID
        );
    }
    // A peer point that is not on the curve.
    let mut off = unwrap_point(&peer);
    off[64] ^= 1;
    let e = derive(s, ec_priv, EcKdf::null(), &off, None).unwrap_err();
    assert_eq!(rv(e), RvError::MechanismParamInvalid);
}

#[test]
fn signatures_follow_the_two_call_convention() {
    let c = Token::new("ec-twocall");
    let s = c.s();
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let h = s.handle();
    let (_, p521) = ec_pair(s, P521);
    let (_, ed) = pair_with(s, Mechanism::EccEdwardsKeyPairGen, ED25519, &[], &[]).expect("ed pair");
    for (mech_type, key, len) in [(CKM_ECDSA_SHA512, p521, 132usize), (CKM_EDDSA, ed, 64)] {
        let mut mech = CK_MECHANISM { mechanism: mech_type, pParameter: null_mut(), ulParameterLen: 0 };
        assert_eq!(unsafe { f.C_SignInit(h, &mut mech, key.handle()) }, CKR_OK);
        let data = b"two calls";
        let mut n: CK_ULONG = 0;
        assert_eq!(unsafe { f.C_Sign(h, data.as_ptr() as *mut _, data.len() as _, null_mut(), &mut n) }, CKR_OK);
        assert_eq!(n as usize, len);
        let mut buf = vec![0u8; len];
        let mut small: CK_ULONG = (len - 1) as _;
        assert_eq!(
            unsafe { f.C_Sign(h, data.as_ptr() as *mut _, data.len() as _, buf.as_mut_ptr(), &mut small) },
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(small as usize, len);
        let mut n: CK_ULONG = len as _;
        assert_eq!(unsafe { f.C_Sign(h, data.as_ptr() as *mut _, data.len() as _, buf.as_mut_ptr(), &mut n) }, CKR_OK);
        assert_eq!(n as usize, len);
        // The operation is over.
        assert_eq!(
            unsafe { f.C_Sign(h, data.as_ptr() as *mut _, data.len() as _, buf.as_mut_ptr(), &mut n) },
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
}

#[test]
fn ecdh_between_generated_pairs_with_and_without_kdf() {
    let c = Token::new("ec-ecdh");
    let s = c.s();
    for (params, n) in CURVES {
        let (a_pub, a_priv) = ec_pair(s, params);
        let (b_pub, b_priv) = ec_pair(s, params);
        let a_point = bytes_attr(s, a_pub, AttributeType::EcPoint);
        let b_point = bytes_attr(s, b_pub, AttributeType::EcPoint);
        let info = b"Tessera ECDH shared info";
        if approved_mode() {
            // The shared secret never leaves the approved mode (SP 800-56A Rev. 3 §5.8;
            // `approved_mode.rs` has the rest): a readable CKD_NULL key is refused, the approved
            // KDFs agree, and SHA-1 in a KDF is refused.
            let readable = derive(s, a_priv, EcKdf::null(), &b_point, None);
            assert_eq!(rv(readable.unwrap_err()), RvError::TemplateInconsistent);
            let k1 = derive(s, a_priv, EcKdf::sha256(info), &unwrap_point(&b_point), Some(80)).expect("kdf");
            assert_eq!(k1, derive(s, b_priv, EcKdf::sha256(info), &a_point, Some(80)).expect("kdf"));
            let sha1 = derive(s, a_priv, EcKdf::sha1(&[]), &b_point, Some(24));
            assert_eq!(rv(sha1.unwrap_err()), RvError::MechanismParamInvalid);
            continue;
        }
        // The peer point raw or as the DER OCTET STRING; both parties agree.
        let z_ab = derive(s, a_priv, EcKdf::null(), &unwrap_point(&b_point), None).expect("derive");
        let z_ba = derive(s, b_priv, EcKdf::null(), &a_point, None).expect("derive");
        assert_eq!(z_ab.len(), n, "CKD_NULL without a length gives the whole field-size secret");
        assert_eq!(z_ab, z_ba);
        // A shorter key keeps the trailing bytes of the secret.
        let short = derive(s, a_priv, EcKdf::null(), &b_point, Some(16)).expect("derive 16");
        assert_eq!(short, z_ab[n - 16..]);
        assert_eq!(
            rv(derive(s, a_priv, EcKdf::null(), &b_point, Some(n as u64 + 1)).unwrap_err()),
            RvError::KeySizeRange
        );
        // X9.63 KDF with shared data, checked against an independent computation.
        let k1 = derive(s, a_priv, EcKdf::sha256(info), &b_point, Some(80)).expect("kdf");
        let k2 = derive(s, b_priv, EcKdf::sha256(info), &a_point, Some(80)).expect("kdf");
        assert_eq!(k1, k2);
        assert_eq!(k1, x963(&z_ab, info, 80));
        for kdf in [EcKdf::sha1(&[]), EcKdf::sha224(info), EcKdf::sha384(info), EcKdf::sha512(&[])] {
            let k1 = derive(s, a_priv, kdf, &b_point, Some(24)).expect("kdf");
            let k2 = derive(s, b_priv, kdf, &a_point, Some(24)).expect("kdf");
            assert_eq!(k1, k2);
            assert_ne!(k1, z_ab[..24]);
        }
        // Without a length a KDF gives its hash's output.
        assert_eq!(derive(s, a_priv, EcKdf::sha384(&[]), &b_point, None).expect("kdf").len(), 48);
        // A point of another curve is refused.
        let other = if n == 32 { P384 } else { P256 };
        let (o_pub, _) = ec_pair(s, other);
        let o_point = bytes_attr(s, o_pub, AttributeType::EcPoint);
        assert_eq!(rv(derive(s, a_priv, EcKdf::null(), &o_point, None).unwrap_err()), RvError::MechanismParamInvalid);
    }
}

#[test]
fn ed25519_and_x25519() {
    let c = Token::new("ec-25519");
    let s = c.s();
    let (public, private) = pair_with(s, Mechanism::EccEdwardsKeyPairGen, ED25519, &[], &[]).expect("ed pair");
    assert_eq!(bytes_attr(s, public, AttributeType::EcParams), ED25519);
    let point = unwrap_point(&bytes_attr(s, public, AttributeType::EcPoint));
    assert_eq!(point.len(), 32);
    let attrs = s.get_attributes(private, &[AttributeType::KeyType]).expect("attrs");
    assert_eq!(attrs, vec![Attribute::KeyType(KeyType::EC_EDWARDS)]);
    let msg = b"Ed25519 through Tessera";
    for scheme in [EddsaSignatureScheme::Pure, EddsaSignatureScheme::Ed25519] {
        let m = Mechanism::Eddsa(EddsaParams::new(scheme));
        let sig = s.sign(&m, private, msg).expect("sign");
        assert_eq!(sig.len(), 64);
        s.verify(&m, public, msg, &sig).expect("verify");
        let mut bad = sig.clone();
        bad[5] ^= 0x20;
        assert_eq!(rv(s.verify(&m, public, msg, &bad).unwrap_err()), RvError::SignatureInvalid);
        assert_eq!(rv(s.verify(&m, public, msg, &sig[..63]).unwrap_err()), RvError::SignatureLenRange);
    }
    // A CK_EDDSA_PARAMS parameter never means pure Ed25519: phFlag false is Ed25519ctx, which
    // needs a context (RFC 8032 §5.1), so an empty one is refused rather than taken as pure.
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let p = CK_EDDSA_PARAMS { phFlag: CK_FALSE, ulContextDataLen: 0, pContextData: null_mut() };
    let mut mech = CK_MECHANISM {
        mechanism: CKM_EDDSA,
        pParameter: &p as *const _ as *mut _,
        ulParameterLen: std::mem::size_of::<CK_EDDSA_PARAMS>() as _,
    };
    let h = s.handle();
    assert_eq!(unsafe { f.C_SignInit(h, &mut mech, private.handle()) }, CKR_MECHANISM_PARAM_INVALID);
    assert_eq!(unsafe { f.C_VerifyInit(h, &mut mech, public.handle()) }, CKR_MECHANISM_PARAM_INVALID);
    let sig = s.sign(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), private, msg).expect("sign");
    // A key imported with the RFC 8410 encodings and the PrintableString curve name.
    let mut name = vec![0x13, 12];
    name.extend_from_slice(b"edwards25519");
    let imported = s
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(false),
            Attribute::EcParams(name),
            Attribute::EcPoint(point.clone()),
        ])
        .expect("import");
    s.verify(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), imported, msg, &sig).expect("verify");

    // X25519, RFC 7748 §6.1: Alice's imported private key and Bob's public key. Not an approved
    // key-agreement curve: the approved mode refuses the derivation (the curve is outside
    // CKM_ECDH1_DERIVE's rule) and the key-pair generation (no approved use).
    let scalar = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let bob = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let shared = unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    let alice = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_MONTGOMERY),
            Attribute::Token(false),
            Attribute::Derive(true),
            Attribute::EcParams(X25519.to_vec()),
            Attribute::Value(scalar),
        ])
        .expect("import an X25519 private key");
    if approved_mode() {
        let e = derive(s, alice, EcKdf::null(), &bob, None).unwrap_err();
        assert_eq!(rv(e), RvError::KeySizeRange, "X25519 ECDH in the approved mode");
        let e = derive(s, alice, EcKdf::sha256(b"i"), &bob, Some(32)).unwrap_err();
        assert_eq!(rv(e), RvError::KeySizeRange, "X25519 ECDH with a KDF in the approved mode");
        let e = pair_with(s, Mechanism::EccMontgomeryKeyPairGen, X25519, &[], &[]).unwrap_err();
        assert_eq!(rv(e), RvError::MechanismInvalid, "X25519 key pairs in the approved mode");
        return;
    }
    assert_eq!(derive(s, alice, EcKdf::null(), &bob, None).expect("derive"), shared);

    // X25519 between two generated pairs.
    let (a_pub, a_priv) = pair_with(s, Mechanism::EccMontgomeryKeyPairGen, X25519, &[], &[]).expect("x pair");
    let (b_pub, b_priv) = pair_with(s, Mechanism::EccMontgomeryKeyPairGen, X25519, &[], &[]).expect("x pair");
    let attrs = s.get_attributes(a_priv, &[AttributeType::KeyType]).expect("attrs");
    assert_eq!(attrs, vec![Attribute::KeyType(KeyType::EC_MONTGOMERY)]);
    let a_point = bytes_attr(s, a_pub, AttributeType::EcPoint);
    let b_point = bytes_attr(s, b_pub, AttributeType::EcPoint);
    assert_eq!(a_point.len(), 34);
    let z1 = derive(s, a_priv, EcKdf::null(), &unwrap_point(&b_point), None).expect("derive");
    let z2 = derive(s, b_priv, EcKdf::null(), &a_point, None).expect("derive");
    assert_eq!(z1.len(), 32);
    assert_eq!(z1, z2);
    let k1 = derive(s, a_priv, EcKdf::sha256(b"i"), &b_point, Some(32)).expect("kdf");
    assert_eq!(k1, x963(&z1, b"i", 32));
    // The all-zero (low-order) point gives no secret.
    assert_eq!(rv(derive(s, a_priv, EcKdf::null(), &[0u8; 32], None).unwrap_err()), RvError::MechanismParamInvalid);
}

#[test]
fn openssl_verifies_a_tessera_p256_signature() {
    if !have_or_skip("openssl", "OpenSSL's verification of a Tessera P-256 signature") {
        return;
    }
    let c = Token::new("ec-openssl");
    let s = c.s();
    let (public, private) = ec_pair(s, P256);
    let point = unwrap_point(&bytes_attr(s, public, AttributeType::EcPoint));
    let msg = b"checked by OpenSSL";
    let sig = s.sign(&Mechanism::EcdsaSha256, private, msg).expect("sign");
    openssl_verifies(P256, &point, msg, &sig);
}

/// Asserts that `openssl dgst -sha256 -verify` accepts the PKCS#11 signature `sig` (`r ‖ s`) of
/// `msg` under the public `point` on the curve of `params`, given as a DER and as a PEM key.
fn openssl_verifies(params: &[u8], point: &[u8], msg: &[u8], sig: &[u8]) {
    // SubjectPublicKeyInfo: id-ecPublicKey with the curve OID, and the point as a BIT STRING.
    let alg = der(0x30, &[&[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01][..], params].concat());
    let spki = der(0x30, &[alg, der(0x03, &[&[0u8][..], point].concat())].concat());
    // ECDSA-Sig-Value: SEQUENCE of two positive INTEGERs.
    let int = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let pad = v.first().is_none_or(|b| b & 0x80 != 0);
        der(0x02, &[if pad { &[0u8][..] } else { &[][..] }, &v].concat())
    };
    let (r, s) = sig.split_at(sig.len() / 2);
    let der_sig = der(0x30, &[int(r), int(s)].concat());

    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("pub.der");
    let sig_path = dir.path().join("sig.der");
    let msg_path = dir.path().join("msg");
    std::fs::write(&key_path, &spki).expect("write");
    std::fs::write(&sig_path, &der_sig).expect("write");
    std::fs::write(&msg_path, msg).expect("write");
    let out = openssl_dgst_verify(&["-sha256", "-keyform", "DER"], &key_path, &sig_path, &msg_path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Verified OK"),
        "openssl: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same key as PEM.
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", base64(&spki));
    let pem_path = dir.path().join("pub.pem");
    std::fs::write(&pem_path, pem).expect("write");
    let out = openssl_dgst_verify(&["-sha256"], &pem_path, &sig_path, &msg_path);
    assert!(out.status.success(), "openssl (PEM): {}", String::from_utf8_lossy(&out.stderr));
}

/// The curves outside the approved table (P-224, secp256k1, Brainpool P-256/384/512), which
/// SoftHSMv2 users have keys on: generated, signing what OpenSSL verifies, agreeing by ECDH, and
/// wrapped and unwrapped; the approved mode refuses to generate them.
#[test]
fn more_curves_outside_the_approved_mode() {
    let c = Token::new("ec-more");
    let s = c.s();
    let approved = approved_mode();
    let curves: [(&str, &[u8], usize); 5] = [
        ("secp224r1", &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21], 28),
        ("secp256k1", &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a], 32),
        ("brainpoolP256r1", &[0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07], 32),
        ("brainpoolP384r1", &[0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0b], 48),
        ("brainpoolP512r1", &[0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0d], 64),
    ];
    let msg = b"a curve SoftHSMv2 users have keys on";
    for (name, params, n) in curves {
        let r = pair_with(s, Mechanism::EccKeyPairGen, params, &[], &[Attribute::Extractable(true)]);
        if approved {
            let e = rv(r.expect_err(name));
            assert!(
                matches!(e, RvError::KeySizeRange | RvError::CurveNotSupported),
                "{name} in the approved mode: {e:?}"
            );
            continue;
        }
        let (public, private) = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        let point = unwrap_point(&bytes_attr(s, public, AttributeType::EcPoint));
        assert_eq!((point.len(), point[0]), (1 + 2 * n, 4), "{name} point");
        let sig = s.sign(&Mechanism::EcdsaSha256, private, msg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sig.len(), 2 * n);
        s.verify(&Mechanism::EcdsaSha256, public, msg, &sig).unwrap_or_else(|e| panic!("{name}: {e}"));
        if have("openssl") {
            openssl_verifies(params, &point, msg, &sig);
        }
        // ECDH both ways gives one secret of the field's size.
        let (peer_pub, peer_priv) = ec_pair(s, params);
        let peer_point = unwrap_point(&bytes_attr(s, peer_pub, AttributeType::EcPoint));
        let a = derive(s, private, EcKdf::null(), &peer_point, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = derive(s, peer_priv, EcKdf::null(), &point, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.len(), n, "{name} shared secret");
        assert_eq!(a, b, "{name}: both parties derive the same secret");
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Ed25519ph and Ed25519ctx (`CK_EDDSA_PARAMS`) against RFC 8032 §7.3 "abc" and §7.2 "foo":
/// byte-exact signatures, single- and multi-part, and each variant's signature refused under the
/// others. FIPS 186-5 approves Ed25519ph but not Ed25519ctx, which the approved mode refuses.
#[test]
fn ed25519ph_and_ed25519ctx_follow_rfc_8032() {
    let c = Token::new("ec-eddsa-variants");
    let s = c.s();
    let import = |seed: &str, point: &str| {
        let private = s
            .create_object(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::EcParams(ED25519.to_vec()),
                Attribute::Value(unhex(seed)),
            ])
            .expect("import the private key");
        let public = s
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::EcParams(ED25519.to_vec()),
                Attribute::EcPoint(octet(&unhex(point))),
            ])
            .expect("import the public key");
        (public, private)
    };
    let pure = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));

    // Ed25519ph, RFC 8032 §7.3 TEST abc (empty context).
    let (public, private) = import(
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
    );
    let want = unhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
         31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
    );
    let ph = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ph(&[])));
    assert_eq!(s.sign(&ph, private, b"abc").expect("Ed25519ph sign"), want);
    s.sign_init(&ph, private).expect("C_SignInit");
    s.sign_update(b"a").expect("C_SignUpdate");
    s.sign_update(b"bc").expect("C_SignUpdate");
    assert_eq!(s.sign_final().expect("C_SignFinal"), want, "multi-part Ed25519ph");
    s.verify(&ph, public, b"abc", &want).expect("Ed25519ph verify");
    let other = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ph(b"x")));
    assert_eq!(rv(s.verify(&other, public, b"abc", &want).unwrap_err()), RvError::SignatureInvalid);
    assert_eq!(rv(s.verify(&pure, public, b"abc", &want).unwrap_err()), RvError::SignatureInvalid);

    // Ed25519ctx, RFC 8032 §7.2 TEST foo: not approved.
    let (public, private) = import(
        "0305334e381af78f141cb666f6199f57bc3495335a256a95bd2a55bf546663f6",
        "dfc9425e4f968f7f0c29f0259cf5f9aed6851c2bb4ad8bfb860cfee0ab248292",
    );
    let msg = unhex("f726936d19c800494e3fdaff20b276a8");
    let want = unhex(
        "55a4cc2f70a54e04288c5f4cd1e45a7bb520b36292911876cada7323198dd87a\
         8b36950b95130022907a7fb7c4e9b2d5f6cca685a587b4b21f4b888e4e7edb0d",
    );
    let ctx = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ctx(b"foo")));
    let started = s.sign_init(&ctx, private);
    if approved_mode() {
        assert_eq!(rv(started.unwrap_err()), RvError::MechanismParamInvalid, "the approved mode refuses Ed25519ctx");
        assert_eq!(rv(s.verify_init(&ctx, public).unwrap_err()), RvError::MechanismParamInvalid);
    } else {
        started.expect("Ed25519ctx C_SignInit");
        s.sign_update(&msg).expect("C_SignUpdate");
        assert_eq!(s.sign_final().expect("C_SignFinal"), want, "Ed25519ctx");
        s.verify(&ctx, public, &msg, &want).expect("Ed25519ctx verify");
        let bar = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ctx(b"bar")));
        assert_eq!(rv(s.verify(&bar, public, &msg, &want).unwrap_err()), RvError::SignatureInvalid);
        assert_eq!(rv(s.verify(&pure, public, &msg, &want).unwrap_err()), RvError::SignatureInvalid);
        let ph_foo = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ph(b"foo")));
        assert_eq!(rv(s.verify(&ph_foo, public, &msg, &want).unwrap_err()), RvError::SignatureInvalid);
    }
}
