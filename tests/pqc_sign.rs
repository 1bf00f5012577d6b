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
    // Pure SLH-DSA needs the signature's randomizer before the message: verification in parts only
    // with the signature first (PKCS #11 3.2), unlike pure ML-DSA, which streams.
    s.verify_init(&Mechanism::SlhDsa(none), public).unwrap();
    assert_eq!(rv_of(s.verify_update(b"part")), RvError::FunctionNotSupported);
    assert_eq!(rv_of(s.verify_final(&[0u8; 17088])), RvError::OperationNotInitialized, "the refusal ended it");
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
    // Pure ML-DSA in parts: with the signature first, and with C_VerifyUpdate (it streams).
    s.verify_signature_init(&pure, public, &sig).unwrap();
    s.verify_signature_update(&msg[..5]).unwrap();
    s.verify_signature_update(&msg[5..]).unwrap();
    s.verify_signature_final().expect("multi-part");
    s.verify_init(&pure, public).unwrap();
    s.verify_update(&msg[..5]).unwrap();
    s.verify_update(&msg[5..]).unwrap();
    s.verify_final(&sig).expect("C_VerifyUpdate with pure ML-DSA");
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

/// The parts a message is given in by the multi-part tests: one `C_*Update` with all of it, two
/// parts split at the edges and the middle, and fixed chunk sizes around the 64 KiB a single part
/// is kept whole up to (`ML_DSA_ONE_PART`).
fn splits(msg: &[u8]) -> Vec<Vec<&[u8]>> {
    let n = msg.len();
    let mut out: Vec<Vec<&[u8]>> = vec![vec![msg]];
    for k in [0, 1, n / 2, n.saturating_sub(1), n] {
        let k = k.min(n);
        out.push(vec![&msg[..k], &msg[k..]]);
    }
    for c in [1, 7, 4096, 65536, 65537] {
        if c == 1 && n > 3000 {
            continue;
        }
        out.push(msg.chunks(c).collect());
    }
    out
}

fn sign_parts(s: &Session, m: &Mechanism, key: ObjectHandle, parts: &[&[u8]]) -> cryptoki::error::Result<Vec<u8>> {
    s.sign_init(m, key)?;
    for p in parts {
        s.sign_update(p)?;
    }
    s.sign_final()
}

fn verify_parts(
    s: &Session,
    m: &Mechanism,
    key: ObjectHandle,
    parts: &[&[u8]],
    sig: &[u8],
) -> cryptoki::error::Result<()> {
    s.verify_init(m, key)?;
    for p in parts {
        s.verify_update(p)?;
    }
    s.verify_final(sig)
}

fn verify_signature_parts(
    s: &Session,
    m: &Mechanism,
    key: ObjectHandle,
    parts: &[&[u8]],
    sig: &[u8],
) -> cryptoki::error::Result<()> {
    s.verify_signature_init(m, key, sig)?;
    for p in parts {
        s.verify_signature_update(p)?;
    }
    s.verify_signature_final()
}

/// Message lengths around the single-part bound (64 KiB) and well past it.
const LENGTHS: [usize; 7] = [0, 1, 1000, 65535, 65536, 65537, 200_003];

fn message(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ salt).collect()
}

/// RustCrypto's deterministic ML-DSA signature of `msg` with `context` under the key of `seed`:
/// the reference a streamed deterministic signature must equal byte for byte.
fn reference_deterministic(set: MlDsaParameterSetType, seed: &[u8; 32], msg: &[u8], context: &[u8]) -> Vec<u8> {
    use ml_dsa::{MlDsa44, MlDsa65, MlDsa87, SigningKey};
    macro_rules! sign {
        ($p:ty) => {{
            let key = SigningKey::<$p>::from_seed(&(*seed).into());
            key.expanded_key().sign_deterministic(msg, context).unwrap().encode().to_vec()
        }};
    }
    match set {
        MlDsaParameterSetType::ML_DSA_44 => sign!(MlDsa44),
        MlDsaParameterSetType::ML_DSA_65 => sign!(MlDsa65),
        _ => sign!(MlDsa87),
    }
}

/// A key pair of `set` made from `seed`: the private key by `C_CreateObject` with `CKA_SEED`, the
/// public key from RustCrypto's encoding of the seed's key.
fn pair_from_seed(s: &Session, set: MlDsaParameterSetType, seed: &[u8; 32]) -> (ObjectHandle, ObjectHandle) {
    use ml_dsa::{MlDsa44, MlDsa65, MlDsa87, SigningKey};
    macro_rules! pk {
        ($p:ty) => {{
            SigningKey::<$p>::from_seed(&(*seed).into()).expanded_key().verifying_key().encode().to_vec()
        }};
    }
    let pk = match set {
        MlDsaParameterSetType::ML_DSA_44 => pk!(MlDsa44),
        MlDsaParameterSetType::ML_DSA_65 => pk!(MlDsa65),
        _ => pk!(MlDsa87),
    };
    let common = |class| {
        vec![
            Attribute::Class(class),
            Attribute::KeyType(KeyType::ML_DSA),
            Attribute::Token(false),
            Attribute::ParameterSet(set.into()),
        ]
    };
    let mut public = common(ObjectClass::PUBLIC_KEY);
    public.extend([Attribute::Verify(true), Attribute::Value(pk)]);
    let mut private = common(ObjectClass::PRIVATE_KEY);
    private.extend([Attribute::Sign(true), Attribute::Seed(seed.to_vec())]);
    (s.create_object(&public).expect("public key"), s.create_object(&private).expect("private key from a seed"))
}

/// Multi-part pure ML-DSA streams into μ; its deterministic signatures equal the single-part ones
/// and FIPS 204's (RustCrypto's `sign_deterministic`) byte for byte, whatever the parts, for every
/// set, message lengths on both sides of the single-part bound, and contexts of 0 to 255 bytes.
#[test]
fn ml_dsa_multipart_deterministic_signatures_match_single_part() {
    let t = Token::new("mldsa-stream-det");
    let s = t.s();
    let det = |c| Mechanism::MlDsa(ctx(HedgeType::DeterministicRequired, c));
    if approved_mode() {
        let (_, private) = ml_dsa_pair(s, SETS[0].0);
        let r = sign_parts(s, &det(b""), private, &[b"a", b"b"]);
        assert_eq!(unless_approved(r, "deterministic ML-DSA in parts"), None);
        return;
    }
    let contexts: Vec<Vec<u8>> = vec![Vec::new(), vec![0x5a], (0..=254u8).collect()];
    for (n, (set, _, sig_len)) in SETS.into_iter().enumerate() {
        let seed = [n as u8 + 1; 32];
        let (public, private) = pair_from_seed(s, set, &seed);
        for (i, len) in LENGTHS.into_iter().enumerate() {
            let msg = message(len, i as u8);
            let context = &contexts[i % contexts.len()];
            let m = det(context);
            let want = reference_deterministic(set, &seed, &msg, context);
            assert_eq!(want.len(), sig_len);
            let single = s.sign(&m, private, &msg).expect("single part");
            assert_eq!(single, want, "{set:?} {len} bytes, single part");
            for parts in splits(&msg) {
                let got = sign_parts(s, &m, private, &parts).expect("multi-part");
                assert_eq!(got, want, "{set:?} {len} bytes in {} parts", parts.len());
            }
            // Verified in parts, both ways of giving the signature.
            for parts in [vec![&msg[..]], msg.chunks(65537).collect(), msg.chunks(4096).collect()] {
                verify_parts(s, &m, public, &parts, &want).expect("C_VerifyUpdate");
                verify_signature_parts(s, &m, public, &parts, &want).expect("C_VerifySignatureUpdate");
            }
        }
    }
    // Every context length, 0 to 255 bytes, on a streamed message.
    let (set, seed) = (SETS[0].0, [9u8; 32]);
    let (public, private) = pair_from_seed(s, set, &seed);
    let msg = message(70_000, 3);
    let all: Vec<u8> = (0..=255u8).map(|b| b ^ 0xa5).collect();
    for n in 0..=255usize {
        let context = &all[..n];
        let m = det(context);
        let parts: Vec<&[u8]> = vec![&msg[..n * 37], &msg[n * 37..]];
        let got = sign_parts(s, &m, private, &parts).unwrap();
        assert_eq!(got, reference_deterministic(set, &seed, &msg, context), "context of {n} bytes");
        verify_parts(s, &m, public, &[&msg[..]], &got).unwrap();
        if n > 0 {
            let other = det(&all[..n - 1]);
            assert_eq!(rv_of(verify_parts(s, &other, public, &parts, &got)), RvError::SignatureInvalid);
        }
    }
}

/// Hedged signatures, the approved path: one made in a single part verifies in parts (both
/// `C_VerifyUpdate` and `C_VerifySignatureUpdate`), one made in parts verifies in a single part and
/// with an independent implementation; a changed byte anywhere, a wrong or short signature fail
/// with the codes PKCS #11 gives, and the operation is over after each result.
#[test]
fn ml_dsa_multipart_hedged_signatures_verify_across_paths() {
    let t = Token::new("mldsa-stream-hedged");
    let s = t.s();
    let pure = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    for (set, _, sig_len) in SETS {
        let (public, private) = ml_dsa_pair(s, set);
        let pk = value(&t, public, CKA_VALUE).unwrap();
        for (i, len) in LENGTHS.into_iter().enumerate() {
            let msg = message(len, 0x40 | i as u8);
            let chunked: Vec<&[u8]> = msg.chunks(4099).collect();
            let one = s.sign(&pure, private, &msg).expect("single part");
            assert!(t.approved(t.h), "hedged pure ML-DSA stays approved");
            let parts = sign_parts(s, &pure, private, &chunked).expect("multi-part");
            assert!(t.approved(t.h), "hedged pure ML-DSA in parts is approved");
            assert_eq!(parts.len(), sig_len);
            assert_ne!(one, parts, "hedged");
            for sig in [&one, &parts] {
                s.verify(&pure, public, &msg, sig).expect("single-part verification");
                verify_parts(s, &pure, public, &chunked, sig).expect("C_VerifyUpdate");
                verify_signature_parts(s, &pure, public, &chunked, sig).expect("C_VerifySignatureUpdate");
                assert!(independent_verify(set, &pk, &msg, b"", sig), "RustCrypto ml-dsa verifies");
            }
            // A changed byte of the message, in parts.
            if len > 0 {
                let mut other = msg.clone();
                other[len / 2] ^= 1;
                let changed: Vec<&[u8]> = other.chunks(4099).collect();
                assert_eq!(rv_of(verify_parts(s, &pure, public, &changed, &parts)), RvError::SignatureInvalid);
                assert_eq!(rv_of(s.verify_final(&parts)), RvError::OperationNotInitialized, "the operation ended");
            }
            // A changed signature, a short one, a long one.
            let mut bad = parts.clone();
            bad[sig_len / 2] ^= 0x10;
            assert_eq!(rv_of(verify_parts(s, &pure, public, &chunked, &bad)), RvError::SignatureInvalid);
            assert_eq!(rv_of(verify_parts(s, &pure, public, &chunked, &parts[1..])), RvError::SignatureLenRange);
            assert_eq!(rv_of(s.verify_final(&parts)), RvError::OperationNotInitialized, "the operation ended");
            let long = [&parts[..], &[0]].concat();
            assert_eq!(rv_of(verify_signature_parts(s, &pure, public, &chunked, &long)), RvError::SignatureLenRange);
            assert_eq!(rv_of(s.verify_signature_final()), RvError::OperationNotInitialized);
        }
    }
    // With a context, hedged (served outside aws-lc's module: refused in the approved mode).
    let (public, private) = ml_dsa_pair(s, SETS[1].0);
    let pk = value(&t, public, CKA_VALUE).unwrap();
    let with = Mechanism::MlDsa(ctx(HedgeType::Required, b"streamed"));
    let msg = message(150_000, 7);
    let chunked: Vec<&[u8]> = msg.chunks(50_001).collect();
    let Some(sig) = unless_approved(sign_parts(s, &with, private, &chunked), "ML-DSA in parts with a context") else {
        return;
    };
    assert!(independent_verify(SETS[1].0, &pk, &msg, b"streamed", &sig));
    s.verify(&with, public, &msg, &sig).unwrap();
    assert_eq!(rv_of(verify_parts(s, &pure, public, &chunked, &sig)), RvError::SignatureInvalid, "no context");
}

/// A streamed signature's length query (`C_SignFinal` with no buffer) and a buffer too small
/// leave the operation running with the signature kept; the next call with room ends it.
#[test]
fn ml_dsa_multipart_sign_final_follows_the_two_call_convention() {
    let t = Token::new("mldsa-stream-final");
    let s = t.s();
    let (public, private) = ml_dsa_pair(s, SETS[0].0);
    let pure = Mech::new(CKM_ML_DSA).raw();
    let msg = message(100_000, 1);
    let mut m = pure;
    unsafe {
        assert_eq!(t.f.C_SignInit(t.h, &mut m, private.handle()), CKR_OK);
        for c in msg.chunks(30_000) {
            assert_eq!(t.f.C_SignUpdate(t.h, c.as_ptr() as *mut u8, c.len() as CK_ULONG), CKR_OK);
        }
        let mut len: CK_ULONG = 0;
        assert_eq!(t.f.C_SignFinal(t.h, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 2420);
        let mut small = vec![0u8; 100];
        let mut n: CK_ULONG = 100;
        assert_eq!(t.f.C_SignFinal(t.h, small.as_mut_ptr(), &mut n), CKR_BUFFER_TOO_SMALL);
        assert_eq!(n, 2420);
        let mut sig = vec![0u8; 2420];
        let mut n: CK_ULONG = 2420;
        assert_eq!(t.f.C_SignFinal(t.h, sig.as_mut_ptr(), &mut n), CKR_OK);
        assert_eq!(t.f.C_SignFinal(t.h, sig.as_mut_ptr(), &mut n), CKR_OPERATION_NOT_INITIALIZED);
        let none = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
        t.s().verify(&none, public, &msg, &sig).expect("the signature the two calls gave");
    }
}
