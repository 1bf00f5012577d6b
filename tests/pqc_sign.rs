//! ML-DSA (FIPS 204) and SLH-DSA (FIPS 205) through the built module, as PKCS #11 3.2 clients
//! use them with the `cryptoki` crate: key pairs of every ML-DSA set and of the fast SLH-DSA sets,
//! pure signatures with and without a context, hedged and deterministic, HashML-DSA and
//! HashSLH-DSA over a caller's digest and with the token hashing (single- and multi-part), keys
//! made from a seed or an expanded key, the sensitivity of both, SubjectPublicKeyInfo, PKCS #8
//! wrapping, and signatures checked by an independent implementation (RustCrypto's `ml-dsa`
//! verifying what aws-lc signed).
//!
//! In the approved mode (`TESSERA_MODE=approved`) pure ML-DSA with an empty context, hedged, is
//! approved (aws-lc's module serves it); contexts, deterministic signing, HashML-DSA and all of
//! SLH-DSA are refused (served outside the module), each asserted with the code the policy gives.

use cryptoki::error::RvError;
use cryptoki::mechanism::dsa::{HashSignAdditionalContext, HedgeType, SignAdditionalContext};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, KeyType, MlDsaParameterSetType, ObjectClass, ObjectHandle, SlhDsaParameterSetType,
};
use cryptoki::session::Session;
use cryptoki_sys::*;
use sha2::Digest;
use std::ptr::null_mut;
use tessera_tests::*;

const SETS: [(MlDsaParameterSetType, usize, usize); 3] = [
    (MlDsaParameterSetType::ML_DSA_44, 1312, 2420),
    (MlDsaParameterSetType::ML_DSA_65, 1952, 3309),
    (MlDsaParameterSetType::ML_DSA_87, 2592, 4627),
];

fn ml_dsa_pair(s: &Session, set: MlDsaParameterSetType) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::MlDsaKeyPairGen,
        &[Attribute::Token(false), Attribute::ParameterSet(set.into()), Attribute::Verify(true)],
        &[Attribute::Token(false), Attribute::Sign(true), Attribute::Sensitive(true)],
    )
    .expect("ML-DSA key pair")
}

/// An attribute's bytes through the raw ABI (the `cryptoki` crate leaves out a sensitive
/// attribute instead of answering its code).
fn value(t: &Token, o: ObjectHandle, ty: CK_ATTRIBUTE_TYPE) -> Result<Vec<u8>, CK_RV> {
    t.attr(o.handle(), ty)
}

fn ctx(h: HedgeType, c: &[u8]) -> SignAdditionalContext<'_> {
    SignAdditionalContext::new(h, Some(c))
}

/// A use the approved mode refuses: `Some(result)` in the other mode, `None` after checking the
/// refusal.
fn unless_approved<T: std::fmt::Debug>(r: cryptoki::error::Result<T>, what: &str) -> Option<T> {
    if approved_mode() {
        let rv = rv_of(r);
        assert!(
            matches!(rv, RvError::MechanismInvalid | RvError::MechanismParamInvalid),
            "{what}: the approved mode refuses it, not {rv:?}"
        );
        None
    } else {
        Some(r.unwrap_or_else(|e| panic!("{what}: {e}")))
    }
}

#[test]
fn ml_dsa_pure_sign_verify_every_set() {
    let t = Token::new("mldsa");
    let s = t.s();
    for (set, pk_len, sig_len) in SETS {
        let (public, private) = ml_dsa_pair(s, set);
        let pk = value(&t, public, CKA_VALUE).unwrap();
        assert_eq!(pk.len(), pk_len);
        let msg = b"Tessera signs with ML-DSA";
        let mech = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
        let sig = s.sign(&mech, private, msg).expect("sign");
        assert_eq!(sig.len(), sig_len);
        assert!(t.approved(t.h), "pure hedged ML-DSA is approved");
        s.verify(&mech, public, msg, &sig).expect("verify");
        // Hedged: two signatures of the same message differ.
        assert_ne!(sig, s.sign(&mech, private, msg).unwrap());
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert_eq!(rv_of(s.verify(&mech, public, msg, &bad)), RvError::SignatureInvalid);
        assert_eq!(rv_of(s.verify(&mech, public, b"other", &sig)), RvError::SignatureInvalid);
        assert_eq!(rv_of(s.verify(&mech, public, msg, &sig[1..])), RvError::SignatureLenRange);
        // An independent implementation verifies aws-lc's signature with the raw public key.
        assert!(independent_verify(set, &pk, msg, b"", &sig), "RustCrypto ml-dsa verifies");
    }
}

fn independent_verify(set: MlDsaParameterSetType, pk: &[u8], msg: &[u8], context: &[u8], sig: &[u8]) -> bool {
    use ml_dsa::{EncodedSignature, EncodedVerifyingKey, MlDsa44, MlDsa65, MlDsa87, Signature, VerifyingKey};
    macro_rules! check {
        ($p:ty) => {{
            let k = VerifyingKey::<$p>::decode(&EncodedVerifyingKey::<$p>::try_from(pk).unwrap());
            let s = Signature::<$p>::decode(&EncodedSignature::<$p>::try_from(sig).unwrap()).unwrap();
            k.verify_with_context(msg, context, &s)
        }};
    }
    match set {
        MlDsaParameterSetType::ML_DSA_44 => check!(MlDsa44),
        MlDsaParameterSetType::ML_DSA_65 => check!(MlDsa65),
        _ => check!(MlDsa87),
    }
}

#[test]
fn ml_dsa_contexts_and_deterministic_signing() {
    let t = Token::new("mldsa-ctx");
    let s = t.s();
    let (set, _, _) = SETS[1];
    let (public, private) = ml_dsa_pair(s, set);
    let pk = value(&t, public, CKA_VALUE).unwrap();
    let msg = b"with a context";
    let with = Mechanism::MlDsa(ctx(HedgeType::Required, b"tessera"));
    let Some(sig) = unless_approved(s.sign(&with, private, msg), "ML-DSA with a context") else { return };
    assert!(!t.approved(t.h), "a context is served outside aws-lc's module");
    s.verify(&with, public, msg, &sig).expect("verify with the same context");
    assert!(independent_verify(set, &pk, msg, b"tessera", &sig));
    let other = Mechanism::MlDsa(ctx(HedgeType::Preferred, b"tesserb"));
    assert_eq!(rv_of(s.verify(&other, public, msg, &sig)), RvError::SignatureInvalid, "another context");
    let none = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    assert_eq!(rv_of(s.verify(&none, public, msg, &sig)), RvError::SignatureInvalid, "no context");
    // Deterministic: the same signature twice.
    let det = Mechanism::MlDsa(ctx(HedgeType::DeterministicRequired, b""));
    let a = s.sign(&det, private, msg).unwrap();
    assert_eq!(a, s.sign(&det, private, msg).unwrap());
    s.verify(&none, public, msg, &a).expect("a deterministic signature verifies as any other");
    assert!(independent_verify(set, &pk, msg, b"", &a));
    // A context of 256 bytes is refused before anything is read behind it.
    let long = [7u8; 256];
    assert_eq!(
        rv_of(s.sign(&Mechanism::MlDsa(ctx(HedgeType::Preferred, &long)), private, msg)),
        RvError::MechanismParamInvalid
    );
}

#[test]
fn hash_ml_dsa_and_multipart() {
    let t = Token::new("hashmldsa");
    let s = t.s();
    let (public, private) = ml_dsa_pair(s, SETS[0].0);
    let msg: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let none = || SignAdditionalContext::new(HedgeType::Preferred, None);
    let mech = Mechanism::HashMlDsaSha512(none());
    // Multi-part signing with the token hashing; verifying single-part.
    let r = s.sign_init(&mech, private).and_then(|_| {
        for chunk in msg.chunks(7000) {
            s.sign_update(chunk)?;
        }
        s.sign_final()
    });
    let Some(sig) = unless_approved(r, "HashML-DSA-SHA512") else { return };
    s.verify(&mech, public, &msg, &sig).expect("verify");
    // The bare mechanism over the caller's digest gives a signature the hashing one verifies.
    let digest = sha2::Sha512::digest(&msg).to_vec();
    let bare = Mechanism::HashMlDsa(HashSignAdditionalContext::new(HedgeType::Preferred, None, MechanismType::SHA512));
    let sig2 = s.sign(&bare, private, &digest).expect("HashML-DSA over a digest");
    s.verify(&mech, public, &msg, &sig2).expect("the same scheme");
    s.verify(&bare, public, &digest, &sig).expect("and back");
    // A digest of the wrong length, and the pure mechanism on a HashML-DSA signature.
    assert_eq!(rv_of(s.sign(&bare, private, &digest[1..])), RvError::DataLenRange);
    let pure = Mechanism::MlDsa(none());
    assert_eq!(rv_of(s.verify(&pure, public, &msg, &sig)), RvError::SignatureInvalid);
    // Every hash, single-part, deterministic: sign and verify.
    for m in [
        Mechanism::HashMlDsaSha224(none()),
        Mechanism::HashMlDsaSha256(none()),
        Mechanism::HashMlDsaSha384(none()),
        Mechanism::HashMlDsaSha3_224(none()),
        Mechanism::HashMlDsaSha3_256(none()),
        Mechanism::HashMlDsaSha3_384(none()),
        Mechanism::HashMlDsaSha3_512(none()),
        Mechanism::HashMlDsaShake128(none()),
        Mechanism::HashMlDsaShake256(none()),
    ] {
        let sig = s.sign(&m, private, b"short").unwrap_or_else(|e| panic!("{m:?}: {e}"));
        s.verify(&m, public, b"short", &sig).unwrap_or_else(|e| panic!("{m:?}: {e}"));
        assert_eq!(rv_of(s.verify(&m, public, b"shorT", &sig)), RvError::SignatureInvalid);
    }
    // The bare mechanism is single-part (PKCS #11 3.2 §6.x: single-part operations only).
    s.sign_init(&bare, private).unwrap();
    assert_ne!(outcome(s.sign_update(&digest)), None, "C_SignUpdate is refused for CKM_HASH_ML_DSA");
}

#[test]
fn ml_dsa_keys_from_seed_and_expanded_key() {
    let t = Token::new("mldsa-import");
    let s = t.s();
    let set = SETS[1].0;
    let extractable = |s: &Session| {
        s.generate_key_pair(
            &Mechanism::MlDsaKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(set.into())],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
    };
    let Some((public, private)) = unless_approved_ok(extractable(s)) else { return };
    let seed = value(&t, private, CKA_SEED).expect("seed of a non-sensitive key");
    let sk = value(&t, private, CKA_VALUE).expect("expanded key");
    let pk = value(&t, public, CKA_VALUE).unwrap();
    assert_eq!((seed.len(), sk.len()), (32, 4032));
    let base = |extra: Vec<Attribute>| {
        let mut a = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::ML_DSA),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::ParameterSet(set.into()),
        ];
        a.extend(extra);
        a
    };
    let msg = b"imported";
    let pure = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    for (what, extra) in [
        ("seed", vec![Attribute::Seed(seed.clone())]),
        ("expanded key", vec![Attribute::Value(sk.clone())]),
        ("both", vec![Attribute::Seed(seed.clone()), Attribute::Value(sk.clone())]),
    ] {
        let k = s.create_object(&base(extra)).unwrap_or_else(|e| panic!("from the {what}: {e}"));
        let sig = s.sign(&pure, k, msg).unwrap();
        s.verify(&pure, public, msg, &sig).unwrap_or_else(|e| panic!("from the {what}: {e}"));
        if what == "seed" {
            assert_eq!(value(&t, k, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE), "sensitive by default");
        }
    }
    let mut other = seed.clone();
    other[0] ^= 1;
    assert_eq!(
        rv_of(s.create_object(&base(vec![Attribute::Seed(other), Attribute::Value(sk.clone())]))),
        RvError::TemplateInconsistent,
        "a seed and an expanded key that disagree"
    );
    assert_eq!(rv_of(s.create_object(&base(vec![]))), RvError::TemplateIncomplete, "neither");
    assert_eq!(
        rv_of(s.create_object(&base(vec![Attribute::Seed(seed[1..].to_vec())]))),
        RvError::AttributeValueInvalid,
        "a short seed"
    );
    let mut bad_set = base(vec![Attribute::Seed(seed.clone())]);
    bad_set[4] = Attribute::ParameterSet(SlhDsaParameterSetType::SHAKE_256F.into());
    assert_eq!(rv_of(s.create_object(&bad_set)), RvError::UnknownErrorCode(CKR_PARAMETER_SET_NOT_SUPPORTED));
    // A public key from its raw value, with the wrong length refused.
    let pub_tpl = |v: Vec<u8>| {
        vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::ML_DSA),
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::ParameterSet(set.into()),
            Attribute::Value(v),
        ]
    };
    let p2 = s.create_object(&pub_tpl(pk.clone())).unwrap();
    let sig = s.sign(&pure, private, msg).unwrap();
    s.verify(&pure, p2, msg, &sig).unwrap();
    assert_eq!(rv_of(s.create_object(&pub_tpl(pk[1..].to_vec()))), RvError::AttributeValueInvalid);
}

/// Extractable, non-sensitive private keys are fine in both modes; `Some` unless refused.
fn unless_approved_ok<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> Option<T> {
    Some(r.expect("key pair"))
}

#[test]
fn sensitive_ml_dsa_keys_stay_inside_and_spki_is_exported() {
    let t = Token::new("mldsa-sens");
    let s = t.s();
    let (public, private) = ml_dsa_pair(s, SETS[2].0);
    for a in [CKA_SEED, CKA_VALUE] {
        assert_eq!(value(&t, private, a), Err(CKR_ATTRIBUTE_SENSITIVE), "{a:#x}");
    }
    // Neither can be loosened afterwards.
    assert_ne!(outcome(s.update_attributes(private, &[Attribute::Sensitive(false)])), None);
    assert_ne!(outcome(s.update_attributes(private, &[Attribute::Extractable(true)])), None);
    // The public key's SubjectPublicKeyInfo: id-ml-dsa-87, no parameters, the raw key.
    let pk = value(&t, public, CKA_VALUE).unwrap();
    let spki = value(&t, public, CKA_PUBLIC_KEY_INFO).unwrap();
    let oid_87 = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x13];
    let alg = der(0x30, &oid_87);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&pk);
    assert_eq!(spki, der(0x30, &[alg, der(0x03, &bits)].concat()));
    // The private key's own SubjectPublicKeyInfo is the same.
    assert_eq!(value(&t, private, CKA_PUBLIC_KEY_INFO).unwrap(), spki);
}

#[test]
fn ml_dsa_private_keys_wrap_as_pkcs8() {
    let t = Token::new("mldsa-wrap");
    let s = t.s();
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::Token(false), Attribute::ValueLen(32.into()), Attribute::Wrap(true), Attribute::Unwrap(true)],
        )
        .unwrap();
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::MlDsaKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(SETS[0].0.into())],
            &[Attribute::Token(false), Attribute::Sign(true), Attribute::Extractable(true)],
        )
        .unwrap();
    // AES key wrap with padding (RFC 5649), which the `cryptoki` crate does not name.
    let kwp = Mech::new(CKM_AES_KEY_WRAP_KWP);
    let wrapped = t.wrap(&kwp, kek.handle(), private.handle()).expect("wrap an ML-DSA private key");
    let tpl: Tpl = vec![
        (CKA_CLASS, V::U(CKO_PRIVATE_KEY)),
        (CKA_KEY_TYPE, V::U(CKK_ML_DSA)),
        (CKA_TOKEN, V::B(false)),
        (CKA_SIGN, V::B(true)),
    ];
    // SAFETY (test): a handle the module just returned.
    let k = unsafe { ObjectHandle::new_from_raw(t.unwrap(&kwp, kek.handle(), &wrapped, &tpl).expect("unwrap it")) };
    let pure = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let sig = s.sign(&pure, k, b"wrapped").unwrap();
    s.verify(&pure, public, b"wrapped", &sig).unwrap();
    let set = s.get_attributes(k, &[AttributeType::ParameterSet]).unwrap();
    assert_eq!(set, vec![Attribute::ParameterSet(SETS[0].0.into())]);
}

#[test]
fn slh_dsa_fast_sets() {
    let t = Token::new("slhdsa");
    let s = t.s();
    for (set, sig_len) in [(SlhDsaParameterSetType::SHA2_128F, 17088), (SlhDsaParameterSetType::SHAKE_128F, 17088)] {
        let r = s.generate_key_pair(
            &Mechanism::SlhDsaKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(set.into()), Attribute::Verify(true)],
            &[Attribute::Token(false), Attribute::Sign(true)],
        );
        let Some((public, private)) = unless_approved(r, "SLH-DSA key generation") else { return };
        assert_eq!(value(&t, public, CKA_VALUE).unwrap().len(), 32);
        let none = SignAdditionalContext::new(HedgeType::Preferred, None);
        let sig = s.sign(&Mechanism::SlhDsa(none), private, b"slh").unwrap();
        assert_eq!(sig.len(), sig_len);
        assert!(!t.approved(t.h));
        s.verify(&Mechanism::SlhDsa(none), public, b"slh", &sig).unwrap();
        assert_eq!(rv_of(s.verify(&Mechanism::SlhDsa(none), public, b"slH", &sig)), RvError::SignatureInvalid);
        // Deterministic with a context: the same signature twice; the context matters.
        let det = Mechanism::SlhDsa(ctx(HedgeType::DeterministicRequired, b"c"));
        let a = s.sign(&det, private, b"m").unwrap();
        assert_eq!(a, s.sign(&det, private, b"m").unwrap());
        s.verify(&det, public, b"m", &a).unwrap();
        assert_eq!(rv_of(s.verify(&Mechanism::SlhDsa(none), public, b"m", &a)), RvError::SignatureInvalid);
        // HashSLH-DSA, multi-part with SHAKE256.
        let h = Mechanism::HashSlhDsaShake256(none);
        s.sign_init(&h, private).unwrap();
        s.sign_update(b"part one, ").unwrap();
        s.sign_update(b"part two").unwrap();
        let hs = s.sign_final().unwrap();
        s.verify(&h, public, b"part one, part two", &hs).unwrap();
    }
}

/// Pure SLH-DSA gathers the message whole (it hashes it twice and cannot stream): at most 64 MiB,
/// `CKR_DATA_LEN_RANGE` past that, in parts or in one, and the operation ends.
#[test]
fn slh_dsa_pure_message_is_bounded() {
    const MAX: usize = 64 << 20;
    let t = Token::new("slhbound");
    let s = t.s();
    let r = s.generate_key_pair(
        &Mechanism::SlhDsaKeyPairGen,
        &[Attribute::Token(false), Attribute::ParameterSet(SlhDsaParameterSetType::SHA2_128F.into())],
        &[Attribute::Token(false), Attribute::Sign(true)],
    );
    let Some((public, private)) = unless_approved(r, "SLH-DSA key generation") else { return };
    let none = SignAdditionalContext::new(HedgeType::Preferred, None);
    let chunk = vec![0x5a; 1 << 20];
    s.sign_init(&Mechanism::SlhDsa(none), private).unwrap();
    for _ in 0..MAX / chunk.len() {
        s.sign_update(&chunk).unwrap();
    }
    // Exactly the bound is taken; one byte more is not, and ends the operation.
    assert_eq!(rv_of(s.sign_update(b"!")), RvError::DataLenRange);
    assert_eq!(rv_of(s.sign_final()), RvError::OperationNotInitialized);
    // In one part, signing and verifying alike.
    let big = vec![0u8; MAX + 1];
    assert_eq!(rv_of(s.sign(&Mechanism::SlhDsa(none), private, &big)), RvError::DataLenRange);
    let sig = s.sign(&Mechanism::SlhDsa(none), private, b"short").unwrap();
    assert_eq!(rv_of(s.verify(&Mechanism::SlhDsa(none), public, &big, &sig)), RvError::DataLenRange);
    // HashSLH-DSA streams: no bound.
    let h = Mechanism::HashSlhDsaSha256(none);
    s.sign_init(&h, private).unwrap();
    s.sign_update(&big).unwrap();
    s.sign_final().unwrap();
}

/// `C_VerifySignatureInit` … (PKCS #11 3.2): the signature first, then the data in one part or
/// several; for ML-DSA, SLH-DSA and the classical signature mechanisms alike. Each kind of
/// verification is continued only by its own functions.
#[test]
fn verify_signature_with_the_signature_first() {
    let t = Token::new("verifysig");
    let s = t.s();
    let (public, private) = ml_dsa_pair(s, SETS[0].0);
    let pure = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let msg = b"the signature comes first";
    let sig = s.sign(&pure, private, msg).unwrap();
    s.verify_signature_init(&pure, public, &sig).unwrap();
    s.verify_signature(msg).expect("single part");
    // Pure ML-DSA in parts: allowed with the signature first (not with C_VerifyUpdate).
    s.verify_signature_init(&pure, public, &sig).unwrap();
    s.verify_signature_update(&msg[..5]).unwrap();
    s.verify_signature_update(&msg[5..]).unwrap();
    s.verify_signature_final().expect("multi-part");
    s.verify_init(&pure, public).unwrap();
    assert_ne!(outcome(s.verify_update(msg)), None, "C_VerifyUpdate with pure ML-DSA");
    // A wrong message, a short signature.
    s.verify_signature_init(&pure, public, &sig).unwrap();
    assert_eq!(rv_of(s.verify_signature(b"another message")), RvError::SignatureInvalid);
    s.verify_signature_init(&pure, public, &sig[..100]).unwrap();
    assert_eq!(rv_of(s.verify_signature(msg)), RvError::SignatureLenRange);
    // The operation is over after a result: a second call finds none.
    assert_eq!(rv_of(s.verify_signature(msg)), RvError::OperationNotInitialized);
    // The two kinds do not continue each other, and one slot holds either.
    s.verify_signature_init(&pure, public, &sig).unwrap();
    assert_eq!(rv_of(s.verify(&pure, public, msg, &sig)), RvError::OperationActive, "C_VerifyInit while one is active");
    s.verify_signature(msg).expect("the first operation is intact");
    // Classical mechanisms: ECDSA P-256 with SHA-256, single and multi-part.
    let (ecpub, ecpriv) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::Token(false), Attribute::EcParams(P256.to_vec()), Attribute::Verify(true)],
            &[Attribute::Token(false), Attribute::Sign(true)],
        )
        .unwrap();
    let ecsig = s.sign(&Mechanism::EcdsaSha256, ecpriv, msg).unwrap();
    s.verify_signature_init(&Mechanism::EcdsaSha256, ecpub, &ecsig).unwrap();
    s.verify_signature_update(&msg[..3]).unwrap();
    s.verify_signature_update(&msg[3..]).unwrap();
    s.verify_signature_final().expect("ECDSA with the signature first");
    s.verify_signature_init(&Mechanism::EcdsaSha256, ecpub, &ecsig).unwrap();
    assert_eq!(rv_of(s.verify_signature(b"changed")), RvError::SignatureInvalid);
    assert!(t.approved(t.h), "an approved mechanism stays approved this way");
    // A NULL signature pointer with a length, through the raw ABI.
    let mut m = Mech::new(CKM_ECDSA_SHA256).raw();
    let rv = unsafe { t.f.C_VerifySignatureInit(t.h, &mut m, ecpub.handle(), std::ptr::null_mut(), 64) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
}

/// What an attacker with a user login could try on post-quantum keys: choosing the material of a
/// "generated" key, giving key material on unwrap, loosening a copy, wrapping a non-extractable
/// key, or using a key with the wrong mechanism, class or usage.
#[test]
fn post_quantum_key_attacks() {
    let t = Token::new("pqc-attacks");
    let s = t.s();
    let set = SETS[0].0;
    // A key pair "generated" with the attacker's seed or expanded key in the template: refused,
    // never a key whose value someone outside knows marked CKA_LOCAL / never-extractable.
    for extra in [Attribute::Seed(vec![1; 32]), Attribute::Value(vec![1; 2560])] {
        let r = s.generate_key_pair(
            &Mechanism::MlDsaKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(set.into())],
            &[Attribute::Token(false), Attribute::Sign(true), extra.clone()],
        );
        assert!(r.is_err(), "key generation with {extra:?} in the private template must be refused");
    }
    let r = s.generate_key_pair(
        &Mechanism::MlDsaKeyPairGen,
        &[Attribute::Token(false), Attribute::ParameterSet(set.into()), Attribute::Value(vec![0; 1312])],
        &[Attribute::Token(false), Attribute::Sign(true)],
    );
    assert!(r.is_err(), "key generation with a public value in the template must be refused");
    // Sets that disagree between the templates.
    let r = s.generate_key_pair(
        &Mechanism::MlDsaKeyPairGen,
        &[Attribute::Token(false), Attribute::ParameterSet(set.into())],
        &[Attribute::Token(false), Attribute::ParameterSet(SETS[2].0.into())],
    );
    assert_eq!(rv_of(r), RvError::TemplateInconsistent);
    let (public, private) = ml_dsa_pair(s, set);
    // Loosening: neither the key nor a copy of it becomes readable.
    for a in [Attribute::Sensitive(false), Attribute::Extractable(true)] {
        assert!(s.update_attributes(private, std::slice::from_ref(&a)).is_err(), "{a:?}");
        assert!(s.copy_object(private, std::slice::from_ref(&a)).is_err(), "copy with {a:?}");
    }
    assert!(s.update_attributes(private, &[Attribute::Seed(vec![0; 32])]).is_err(), "CKA_SEED is fixed");
    assert!(s.update_attributes(public, &[Attribute::ParameterSet(SETS[1].0.into())]).is_err(), "the set is fixed");
    // Wrapping a non-extractable key.
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::Token(false), Attribute::ValueLen(32.into()), Attribute::Wrap(true), Attribute::Unwrap(true)],
        )
        .unwrap();
    assert_eq!(t.wrap(&Mech::new(CKM_AES_KEY_WRAP_KWP), kek.handle(), private.handle()), Err(CKR_KEY_UNEXTRACTABLE));
    // Unwrapping with key material in the template.
    let (_, extractable) = s
        .generate_key_pair(
            &Mechanism::MlDsaKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(set.into())],
            &[Attribute::Token(false), Attribute::Sign(true), Attribute::Extractable(true)],
        )
        .unwrap();
    let wrapped = t.wrap(&Mech::new(CKM_AES_KEY_WRAP_KWP), kek.handle(), extractable.handle()).unwrap();
    for (a, v) in [(CKA_SEED, V::Bytes(vec![1; 32])), (CKA_VALUE, V::Bytes(vec![1; 2560]))] {
        let tpl: Tpl = vec![
            (CKA_CLASS, V::U(CKO_PRIVATE_KEY)),
            (CKA_KEY_TYPE, V::U(CKK_ML_DSA)),
            (CKA_TOKEN, V::B(false)),
            (a, v),
        ];
        assert!(t.unwrap(&Mech::new(CKM_AES_KEY_WRAP_KWP), kek.handle(), &wrapped, &tpl).is_err(), "{a:#x} on unwrap");
    }
    // Wrong class, key type, usage.
    let pure = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    assert!(s.sign(&pure, public, b"x").is_err(), "signing with the public key");
    let slh = Mechanism::SlhDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    assert_eq!(rv_of(s.sign(&slh, private, b"x")), RvError::KeyTypeInconsistent);
    let (_, no_sign) = s
        .generate_key_pair(
            &Mechanism::MlDsaKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(set.into())],
            &[Attribute::Token(false), Attribute::Sign(false)],
        )
        .unwrap();
    assert_eq!(rv_of(s.sign(&pure, no_sign, b"x")), RvError::KeyFunctionNotPermitted);
}

/// Crafted post-quantum PKCS #8 that an application wraps under a key it knows and unwraps into
/// the token: each refused with an error code, none crashes the process, none leaves an object.
/// An ML-DSA expanded key with coefficients out of range (RustCrypto's decoder panics on one), a
/// seed and an expanded key that disagree, a seed of the wrong length, a truncated expanded key,
/// an SLH-DSA key whose root is not its seeds', and an unknown choice tag.
#[test]
fn crafted_post_quantum_pkcs8_unwraps_are_refused() {
    use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrapPadded, AES_256};
    use ml_dsa::{MlDsa44, SigningKey};
    let t = Token::new("pqc-crafted");
    let kek_value = [0x42u8; 32];
    let kek = t.kek(CKK_AES, &kek_value).expect("a key-encryption key the application knows");
    let pkcs8 = |oid_last: u8, private_key: Vec<u8>| {
        let oid = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, oid_last];
        der(0x30, &[vec![0x02, 0x01, 0x00], der(0x30, &oid), der(0x04, &private_key)].concat())
    };
    // A real ML-DSA-44 expanded key (of the seed [2; 32]) to pair with another seed.
    #[allow(deprecated)]
    let expanded = SigningKey::<MlDsa44>::from_seed(&[2u8; 32].into()).expanded_key().to_expanded().to_vec();
    let both = |seed: &[u8], sk: &[u8]| der(0x30, &[der(0x04, seed), der(0x04, sk)].concat());
    let cases: Vec<(&str, CK_KEY_TYPE, Vec<u8>)> = vec![
        ("ML-DSA expanded key out of range", CKK_ML_DSA, pkcs8(0x11, der(0x04, &[0xff; 2560]))),
        ("ML-DSA seed and expanded key disagree", CKK_ML_DSA, pkcs8(0x11, both(&[1; 32], &expanded))),
        ("ML-DSA seed of 31 bytes", CKK_ML_DSA, pkcs8(0x11, der(0x80, &[1; 31]))),
        ("ML-DSA truncated expanded key", CKK_ML_DSA, pkcs8(0x11, der(0x04, &expanded[..100]))),
        ("ML-DSA unknown choice tag", CKK_ML_DSA, pkcs8(0x11, der(0x81, &[1; 32]))),
        ("SLH-DSA-SHA2-128f root not its seeds'", CKK_SLH_DSA, pkcs8(0x15, vec![7; 64])),
        ("SLH-DSA-SHA2-128f short key", CKK_SLH_DSA, pkcs8(0x15, vec![7; 63])),
    ];
    let before = t.find(&vec![]).unwrap().len();
    for (what, key_type, p) in cases {
        let mut out = vec![0u8; p.len() + 16];
        let wrapped =
            KeyEncryptionKey::new(&AES_256, &kek_value).unwrap().wrap_with_padding(&p, &mut out).unwrap().to_vec();
        let tpl: Tpl = vec![
            (CKA_CLASS, V::U(CKO_PRIVATE_KEY)),
            (CKA_KEY_TYPE, V::U(key_type)),
            (CKA_TOKEN, V::B(false)),
            (CKA_SIGN, V::B(true)),
        ];
        let r = t.unwrap(&Mech::new(CKM_AES_KEY_WRAP_KWP), kek, &wrapped, &tpl);
        assert!(r.is_err(), "{what}: unwrapped");
        assert_ne!(r, Err(CKR_GENERAL_ERROR), "{what}: a panic caught at the boundary, not a refusal");
    }
    assert_eq!(t.find(&vec![]).unwrap().len(), before, "no object left behind");
    // The process is whole: the token still signs.
    let (public, private) = ml_dsa_pair(t.s(), SETS[0].0);
    let pure = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let sig = t.s().sign(&pure, private, b"alive").unwrap();
    t.s().verify(&pure, public, b"alive", &sig).unwrap();
}

/// Malformed `CK_SIGN_ADDITIONAL_CONTEXT` / `CK_HASH_SIGN_ADDITIONAL_CONTEXT` through the raw ABI:
/// a NULL context pointer with a length, a structure of the wrong size, a hedge value out of range,
/// a hash the mechanism does not know: `CKR_MECHANISM_PARAM_INVALID`, nothing read behind them.
#[test]
fn malformed_sign_contexts_are_refused() {
    let t = Token::new("pqc-params");
    let (_, private) = ml_dsa_pair(t.s(), SETS[0].0);
    let sign_init = |m: &Mech| unsafe { t.f.C_SignInit(t.h, &mut m.raw(), private.handle()) };
    let null_ctx =
        CK_SIGN_ADDITIONAL_CONTEXT { hedgeVariant: CKH_HEDGE_PREFERRED, pContext: null_mut(), ulContextLen: 16 };
    assert_eq!(sign_init(&Mech::with_struct(CKM_ML_DSA, &null_ctx)), CKR_MECHANISM_PARAM_INVALID);
    assert_eq!(sign_init(&Mech::with(CKM_ML_DSA, &[0u8; 3])), CKR_MECHANISM_PARAM_INVALID);
    let bad_hedge = CK_SIGN_ADDITIONAL_CONTEXT { hedgeVariant: 7, pContext: null_mut(), ulContextLen: 0 };
    assert_eq!(sign_init(&Mech::with_struct(CKM_ML_DSA, &bad_hedge)), CKR_MECHANISM_PARAM_INVALID);
    let huge = CK_SIGN_ADDITIONAL_CONTEXT {
        hedgeVariant: CKH_HEDGE_PREFERRED,
        pContext: std::ptr::dangling_mut::<u8>(),
        ulContextLen: CK_ULONG::MAX,
    };
    assert_eq!(sign_init(&Mech::with_struct(CKM_ML_DSA, &huge)), CKR_MECHANISM_PARAM_INVALID);
    for hash in [CKM_MD5, CKM_SHA_1, CKM_ML_DSA] {
        let p = CK_HASH_SIGN_ADDITIONAL_CONTEXT {
            hedgeVariant: CKH_HEDGE_PREFERRED,
            pContext: null_mut(),
            ulContextLen: 0,
            hash,
        };
        let rv = sign_init(&Mech::with_struct(CKM_HASH_ML_DSA, &p));
        assert!(
            rv == CKR_MECHANISM_PARAM_INVALID || (approved_mode() && rv == CKR_MECHANISM_INVALID),
            "{hash:#x}: {rv:#x}"
        );
    }
    // The token still works after all of them.
    assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut Mech::new(CKM_ML_DSA).raw(), private.handle()) }, CKR_OK);
}
