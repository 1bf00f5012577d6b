//! ML-KEM through the built module and the PKCS #11 3.2 key-encapsulation functions: key pairs of
//! the three parameter sets, `C_EncapsulateKey`/`C_DecapsulateKey` through the `cryptoki` crate and
//! through raw calls (NULL pointers, the length query that makes no key, a short buffer, a
//! ciphertext of the wrong length, implicit rejection), the usage attributes and their templates
//! (both numbers of `CKA_ENCAPSULATE_TEMPLATE`), `CKA_VALUE_LEN` on the new key, imports from the
//! seed, from dk, from both and from a pair that disagrees, and an attack test on the sensitivity
//! of private keys and decapsulated secrets. Then the NIST ACVP and Wycheproof ML-KEM vectors:
//! every case the interface can express goes through it (keys from a seed or a dk, decapsulation,
//! key checks); encapsulation with a given randomness m cannot be asked through PKCS #11 and is
//! checked at the core level by the module's unit tests (`crypto::mlkem`).
//!
//! Secrets the module keeps sensitive (every decapsulated key) are compared through what they
//! do: each is made an AES key and encrypts a zero block (`fingerprint`).
//!
//! The suite runs in both modes: ML-KEM is approved (policy/approved.toml), so every case runs in
//! each.

use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, MlKemParameterSetType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use serde_json::Value;
use std::ptr::null_mut;
use tessera_tests::raw::{attr, bytes, mech, TRUE};
use tessera_tests::wycheproof::{self, hex, Tally};
use tessera_tests::*;

/// (parameter set, |ek|, |dk|, |c|).
const SETS: [(CK_ULONG, usize, usize, usize); 3] =
    [(CKP_ML_KEM_512, 800, 1632, 768), (CKP_ML_KEM_768, 1184, 2400, 1088), (CKP_ML_KEM_1024, 1568, 3168, 1568)];

fn set_type(set: CK_ULONG) -> MlKemParameterSetType {
    MlKemParameterSetType::try_from(set).expect("a parameter set")
}

fn pair(s: &Session, set: CK_ULONG) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::MlKemKeyPairGen,
        &[Attribute::Token(false), Attribute::ParameterSet(set_type(set).into())],
        &[Attribute::Token(false)],
    )
    .expect("ML-KEM key pair")
}

/// A template for an AES key of `len` bytes that encrypts (to be fingerprinted).
fn aes(len: u64) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(len.into()),
        Attribute::Token(false),
        Attribute::Encrypt(true),
    ]
}

/// What a secret does: the AES-ECB encryption of a zero block under it.
fn fingerprint(s: &Session, key: ObjectHandle) -> Vec<u8> {
    s.encrypt(&Mechanism::AesEcb, key, &[0u8; 16]).expect("AES-ECB with the key")
}

/// The fingerprint of a key of value `v`, made on the token.
fn fingerprint_of(s: &Session, v: &[u8]) -> Vec<u8> {
    let k = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Encrypt(true),
            Attribute::Value(v.to_vec()),
        ])
        .expect("AES key");
    let f = fingerprint(s, k);
    s.destroy_object(k).expect("destroy");
    f
}

/// A byte-string attribute of an object (`CKA_VALUE`, `CKA_SEED`, `CKA_PUBLIC_KEY_INFO`).
fn bytes_attr(s: &Session, o: ObjectHandle, t: AttributeType) -> Vec<u8> {
    match s.get_attributes(o, &[t]).expect("C_GetAttributeValue").pop() {
        Some(Attribute::Value(v) | Attribute::Seed(v) | Attribute::PublicKeyInfo(v)) => v,
        other => panic!("unexpected attribute {other:?}"),
    }
}

/// What `C_GetAttributeValue` answers for one attribute with a buffer (the `cryptoki` crate drops
/// unavailable attributes from its answer).
fn read_rv(s: &Session, o: ObjectHandle, t: CK_ATTRIBUTE_TYPE) -> CK_RV {
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let mut buf = vec![0u8; 8192];
    let mut a = CK_ATTRIBUTE { type_: t, pValue: buf.as_mut_ptr() as *mut _, ulValueLen: buf.len() as CK_ULONG };
    unsafe { f.C_GetAttributeValue(s.handle(), o.handle(), &mut a, 1) }
}

fn setup(l: &Loaded) -> Session {
    let slot = l.new_token("kem");
    user_session(&l.p, slot)
}

fn bool_attr(s: &Session, o: ObjectHandle, t: AttributeType) -> bool {
    match s.get_attributes(o, &[t]).expect("attribute").first() {
        Some(Attribute::Sensitive(b))
        | Some(Attribute::Extractable(b))
        | Some(Attribute::Local(b))
        | Some(Attribute::AlwaysSensitive(b))
        | Some(Attribute::NeverExtractable(b))
        | Some(Attribute::Encapsulate(b))
        | Some(Attribute::Decapsulate(b)) => *b,
        other => panic!("{t}: {other:?}"),
    }
}

#[test]
fn every_parameter_set_encapsulates_and_decapsulates() {
    let l = load();
    let s = setup(&l);
    for (set, ek_len, _, ct_len) in SETS {
        let (public, private) = pair(&s, set);
        assert_eq!(bytes_attr(&s, public, AttributeType::Value).len(), ek_len);
        // The usages default on, as CKA_VERIFY and CKA_SIGN do.
        assert!(bool_attr(&s, public, AttributeType::Encapsulate));
        assert!(bool_attr(&s, private, AttributeType::Decapsulate));
        for t in [CKA_VALUE, CKA_SEED] {
            assert_eq!(read_rv(&s, private, t), CKR_ATTRIBUTE_SENSITIVE, "{t:#x} of a generated ML-KEM private key");
        }
        // The SubjectPublicKeyInfo names id-ml-kem-* and holds ek.
        let spki = bytes_attr(&s, public, AttributeType::PublicKeyInfo);
        let ek = bytes_attr(&s, public, AttributeType::Value);
        assert!(spki.ends_with(&ek), "SPKI holds ek");
        let oid_last = 1 + SETS.iter().position(|x| x.0 == set).unwrap() as u8;
        let oid = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, oid_last];
        assert!(spki.windows(oid.len()).any(|w| w == oid), "id-ml-kem OID in {spki:02x?}");
        assert_eq!(bytes_attr(&s, private, AttributeType::PublicKeyInfo), spki);

        let (ct, k1) = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("encapsulate");
        assert_eq!(ct.len(), ct_len);
        let k2 = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct).expect("decapsulate");
        assert_eq!(fingerprint(&s, k1), fingerprint(&s, k2), "the two sides share the secret");
        for k in [k1, k2] {
            for t in [AttributeType::Local, AttributeType::AlwaysSensitive, AttributeType::NeverExtractable] {
                assert!(!bool_attr(&s, k, t), "{t} of a key made by encapsulation");
            }
        }
        // A decapsulated key is sensitive; an encapsulated one as the template says.
        assert!(bool_attr(&s, k2, AttributeType::Sensitive));
        assert!(!bool_attr(&s, k1, AttributeType::Sensitive));
    }
}

#[test]
fn mechanism_info() {
    let l = load();
    let slot = l.new_token("kem");
    let info = l.p.get_mechanism_info(slot, MechanismType::ML_KEM).expect("CKM_ML_KEM");
    assert_eq!((info.min_key_size(), info.max_key_size()), (800, 1568));
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let mut raw = CK_MECHANISM_INFO::default();
    assert_eq!(unsafe { f.C_GetMechanismInfo(slot.id(), CKM_ML_KEM, &mut raw) }, CKR_OK);
    assert_eq!(raw.flags & (CKF_ENCAPSULATE | CKF_DECAPSULATE), CKF_ENCAPSULATE | CKF_DECAPSULATE);
    assert_eq!(raw.flags & !(CKF_ENCAPSULATE | CKF_DECAPSULATE), 0, "no other function");
    assert_eq!(unsafe { f.C_GetMechanismInfo(slot.id(), CKM_ML_KEM_KEY_PAIR_GEN, &mut raw) }, CKR_OK);
    assert_eq!(raw.flags, CKF_GENERATE_KEY_PAIR);
}

/// The one object with this label (objects made through raw calls).
fn labelled(s: &Session, label: &[u8]) -> ObjectHandle {
    let found = s.find_objects(&[Attribute::Label(label.to_vec())]).expect("find");
    assert_eq!(found.len(), 1, "one object labelled {label:?}");
    found[0]
}

/// Number of objects the session sees.
fn objects(s: &Session) -> usize {
    s.find_objects(&[]).expect("find").len()
}

#[test]
fn raw_calls_follow_the_conventions() {
    let l = load();
    let s = setup(&l);
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let h = s.handle();
    let (public, private) = pair(&s, CKP_ML_KEM_768);
    let (public, private) = (public.handle(), private.handle());
    let class = CKO_SECRET_KEY;
    let kt = CKK_GENERIC_SECRET;
    let f_ = CK_FALSE;
    let mut t = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_TOKEN, &f_)];
    let mut m = mech(CKM_ML_KEM);
    let before = objects(&s);

    // The length query: the length, and no key (nor a handle written).
    let mut len: CK_ULONG = 0;
    let mut key: CK_OBJECT_HANDLE = 0xdead;
    let r = unsafe { f.C_EncapsulateKey(h, &mut m, public, t.as_mut_ptr(), 3, null_mut(), &mut len, &mut key) };
    assert_eq!((r, len, key), (CKR_OK, 1088, 0xdead));
    // ... even without a place for the handle.
    let r = unsafe { f.C_EncapsulateKey(h, &mut m, public, t.as_mut_ptr(), 3, null_mut(), &mut len, null_mut()) };
    assert_eq!(r, CKR_OK);
    assert_eq!(objects(&s), before, "a length query makes no key");
    // A buffer too small: the length, CKR_BUFFER_TOO_SMALL, no key.
    let mut ct = vec![0u8; 2000];
    len = 1087;
    let r = unsafe { f.C_EncapsulateKey(h, &mut m, public, t.as_mut_ptr(), 3, ct.as_mut_ptr(), &mut len, &mut key) };
    assert_eq!((r, len, key), (CKR_BUFFER_TOO_SMALL, 1088, 0xdead));
    assert_eq!(objects(&s), before, "a short buffer makes no key");
    // No length pointer; no handle pointer with a buffer.
    let r = unsafe { f.C_EncapsulateKey(h, &mut m, public, t.as_mut_ptr(), 3, ct.as_mut_ptr(), null_mut(), &mut key) };
    assert_eq!(r, CKR_ARGUMENTS_BAD);
    len = 2000;
    let r = unsafe { f.C_EncapsulateKey(h, &mut m, public, t.as_mut_ptr(), 3, ct.as_mut_ptr(), &mut len, null_mut()) };
    assert_eq!(r, CKR_ARGUMENTS_BAD);
    let r =
        unsafe { f.C_EncapsulateKey(h, null_mut(), public, t.as_mut_ptr(), 3, ct.as_mut_ptr(), &mut len, &mut key) };
    assert_eq!(r, CKR_ARGUMENTS_BAD);
    assert_eq!(objects(&s), before);
    // A buffer larger than needed: the ciphertext and its length.
    let r = unsafe { f.C_EncapsulateKey(h, &mut m, public, t.as_mut_ptr(), 3, ct.as_mut_ptr(), &mut len, &mut key) };
    assert_eq!((r, len), (CKR_OK, 1088));
    assert_ne!(key, 0xdead);
    assert_eq!(objects(&s), before + 1);

    // Decapsulation: NULL handle pointer, NULL ciphertext, wrong lengths.
    let mut out: CK_OBJECT_HANDLE = 0;
    let r = unsafe { f.C_DecapsulateKey(h, &mut m, private, t.as_mut_ptr(), 3, ct.as_mut_ptr(), 1088, null_mut()) };
    assert_eq!(r, CKR_ARGUMENTS_BAD);
    let r = unsafe { f.C_DecapsulateKey(h, &mut m, private, t.as_mut_ptr(), 3, null_mut(), 1088, &mut out) };
    assert_eq!(r, CKR_ARGUMENTS_BAD);
    for n in [0, 1, 1087, 1089, 1568] {
        let r = unsafe { f.C_DecapsulateKey(h, &mut m, private, t.as_mut_ptr(), 3, ct.as_mut_ptr(), n, &mut out) };
        assert_eq!(r, CKR_ENCRYPTED_DATA_LEN_RANGE, "a ciphertext of {n} bytes");
    }
    assert_eq!(objects(&s), before + 1);
    let r = unsafe { f.C_DecapsulateKey(h, &mut m, private, t.as_mut_ptr(), 3, ct.as_mut_ptr(), 1088, &mut out) };
    assert_eq!(r, CKR_OK);
    // The wrong half of the pair, and a mechanism parameter ML-KEM does not have.
    let r = unsafe { f.C_EncapsulateKey(h, &mut m, private, t.as_mut_ptr(), 3, ct.as_mut_ptr(), &mut len, &mut key) };
    assert_eq!(r, CKR_KEY_FUNCTION_NOT_PERMITTED);
    let r = unsafe { f.C_DecapsulateKey(h, &mut m, public, t.as_mut_ptr(), 3, ct.as_mut_ptr(), 1088, &mut out) };
    assert_eq!(r, CKR_KEY_FUNCTION_NOT_PERMITTED);
    let p = [0u8; 8];
    let mut mp = tessera_tests::raw::mech_with(CKM_ML_KEM, p.as_ptr() as *const _, 8);
    let r = unsafe { f.C_EncapsulateKey(h, &mut mp, public, t.as_mut_ptr(), 3, ct.as_mut_ptr(), &mut len, &mut key) };
    assert_eq!(r, CKR_MECHANISM_PARAM_INVALID);
    // A mechanism that does not encapsulate.
    let mut aes_m = mech(CKM_AES_ECB);
    let r =
        unsafe { f.C_EncapsulateKey(h, &mut aes_m, public, t.as_mut_ptr(), 3, ct.as_mut_ptr(), &mut len, &mut key) };
    assert_eq!(r, CKR_MECHANISM_INVALID);
}

/// The length query answers from the key alone; the call that follows checks everything again,
/// since the key may have changed, or gone, in between (another session of the same user, or
/// the same application, may act between the two calls).
#[test]
fn the_call_after_a_length_query_checks_again() {
    let l = load();
    let s = setup(&l);
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let h = s.handle();
    let class = CKO_SECRET_KEY;
    let kt = CKK_GENERIC_SECRET;
    let f_ = CK_FALSE;
    let mut t = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_TOKEN, &f_)];
    let mut ct = vec![0u8; 1088];
    let secret_keys = || s.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)]).expect("find").len();
    // One length query, then the call, on `public`: the call's result. A refused call writes no
    // handle and (but where the session logs out in between, which hides the keys) makes no key.
    let mut query_then_call = |public: CK_OBJECT_HANDLE, t: *mut CK_ATTRIBUTE, between: &dyn Fn(), logs_out: bool| {
        let mut m = mech(CKM_ML_KEM);
        let before = secret_keys();
        let mut len: CK_ULONG = 0;
        let mut key: CK_OBJECT_HANDLE = 0xdead;
        let r = unsafe { f.C_EncapsulateKey(h, &mut m, public, t, 3, null_mut(), &mut len, &mut key) };
        assert_eq!((r, len, key), (CKR_OK, 1088, 0xdead), "the length query");
        between();
        let r = unsafe { f.C_EncapsulateKey(h, &mut m, public, t, 3, ct.as_mut_ptr(), &mut len, &mut key) };
        if r == CKR_OK {
            assert_ne!(key, 0xdead);
            assert_eq!(secret_keys(), before + 1, "the call makes its key");
        } else {
            assert_eq!(key, 0xdead, "a refused call writes no handle");
            if !logs_out {
                assert_eq!(secret_keys(), before, "a refused call makes no key");
            }
        }
        r
    };

    // Nothing changed: the call makes its key.
    let (public, _) = pair(&s, CKP_ML_KEM_768);
    assert_eq!(query_then_call(public.handle(), t.as_mut_ptr(), &|| {}, false), CKR_OK);

    // The template is the call's alone: a length query does not read it, the call does.
    assert_eq!(query_then_call(public.handle(), null_mut(), &|| {}, false), CKR_ARGUMENTS_BAD);
    let mut bad = t;
    bad[2].ulValueLen = 2;
    assert_eq!(query_then_call(public.handle(), bad.as_mut_ptr(), &|| {}, false), CKR_ATTRIBUTE_VALUE_INVALID);

    // The key no longer encapsulates.
    let (public, _) = pair(&s, CKP_ML_KEM_768);
    let off = || s.update_attributes(public, &[Attribute::Encapsulate(false)]).expect("CKA_ENCAPSULATE off");
    assert_eq!(query_then_call(public.handle(), t.as_mut_ptr(), &off, false), CKR_KEY_FUNCTION_NOT_PERMITTED);

    // The key is destroyed; and a length query for a key that is gone is refused as well.
    let (public, _) = pair(&s, CKP_ML_KEM_768);
    let gone = || s.destroy_object(public).expect("destroy");
    assert_eq!(query_then_call(public.handle(), t.as_mut_ptr(), &gone, false), CKR_KEY_HANDLE_INVALID);
    let (mut len, mut m): (CK_ULONG, _) = (0, mech(CKM_ML_KEM));
    let r =
        unsafe { f.C_EncapsulateKey(h, &mut m, public.handle(), t.as_mut_ptr(), 3, null_mut(), &mut len, null_mut()) };
    assert_eq!(r, CKR_KEY_HANDLE_INVALID);

    // A private public key, and the user logs out in between.
    let (public, _) = s
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::ParameterSet(set_type(CKP_ML_KEM_768).into()),
            ],
            &[Attribute::Token(false)],
        )
        .expect("ML-KEM key pair");
    let out = || s.logout().expect("logout");
    assert_eq!(query_then_call(public.handle(), t.as_mut_ptr(), &out, true), CKR_KEY_HANDLE_INVALID);
}

#[test]
fn implicit_rejection_gives_a_key_of_its_own() {
    let l = load();
    let s = setup(&l);
    for (set, ..) in SETS {
        let (public, private) = pair(&s, set);
        let (mut ct, k1) = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("encapsulate");
        ct[5] ^= 0x40;
        let k2 = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct).expect("a wrong ciphertext decapsulates");
        let k3 = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct).expect("again");
        assert_ne!(fingerprint(&s, k1), fingerprint(&s, k2), "implicit rejection is not the secret");
        assert_eq!(fingerprint(&s, k2), fingerprint(&s, k3), "implicit rejection is deterministic");
    }
}

#[test]
fn usage_attributes_and_other_keys() {
    let l = load();
    let s = setup(&l);
    let p = set_type(CKP_ML_KEM_512);
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(p.into()), Attribute::Encapsulate(false)],
            &[Attribute::Token(false), Attribute::Decapsulate(false)],
        )
        .expect("pair");
    assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, public, &aes(32))), RvError::KeyFunctionNotPermitted);
    let (public2, _) = pair(&s, CKP_ML_KEM_512);
    let (ct, _) = s.encapsulate_key(&Mechanism::MlKem, public2, &aes(32)).expect("encapsulate");
    assert_eq!(rv_of(s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct)), RvError::KeyFunctionNotPermitted);
    // The usage may be turned on later (it is no restriction lifted: the key decapsulates only).
    s.update_attributes(private, &[Attribute::Decapsulate(true)]).expect("set CKA_DECAPSULATE");
    s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct).expect("decapsulate now");
    // CKA_ALLOWED_MECHANISMS restricts encapsulation too.
    let (public3, _) = s
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ParameterSet(p.into()),
                Attribute::AllowedMechanisms(vec![MechanismType::ML_DSA]),
            ],
            &[Attribute::Token(false)],
        )
        .expect("pair");
    assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, public3, &aes(32))), RvError::MechanismInvalid);
    // A key of another type.
    let ec = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(P256.to_vec()), Attribute::Token(false), Attribute::Encapsulate(true)],
            &[Attribute::Token(false)],
        )
        .expect("EC pair");
    assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, ec.0, &aes(32))), RvError::KeyTypeInconsistent);
}

#[test]
fn value_len_takes_the_leading_bytes() {
    let l = load();
    let s = setup(&l);
    let (public, private) = pair(&s, CKP_ML_KEM_768);
    // A readable generic secret: the whole K.
    let readable = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let (ct, k) = s.encapsulate_key(&Mechanism::MlKem, public, &readable).expect("encapsulate");
    let secret = bytes_attr(&s, k, AttributeType::Value);
    assert_eq!(secret.len(), 32);
    for len in [16u64, 24, 32] {
        if approved_mode() && len < 32 {
            // SP 800-227 names K, or a KDF over it: a part of K is refused in the approved mode.
            let r = s.decapsulate_key(&Mechanism::MlKem, private, &aes(len), &ct);
            assert_eq!(rv_of(r), RvError::TemplateInconsistent, "CKA_VALUE_LEN {len}");
            let r = s.encapsulate_key(&Mechanism::MlKem, public, &aes(len));
            assert_eq!(rv_of(r), RvError::TemplateInconsistent, "CKA_VALUE_LEN {len}");
            continue;
        }
        let d = s.decapsulate_key(&Mechanism::MlKem, private, &aes(len), &ct).expect("decapsulate");
        assert_eq!(fingerprint(&s, d), fingerprint_of(&s, &secret[..len as usize]), "CKA_VALUE_LEN {len}");
        let e = s.encapsulate_key(&Mechanism::MlKem, public, &aes(len)).expect("encapsulate").1;
        let got = s.get_attributes(e, &[AttributeType::ValueLen]).expect("length");
        assert_eq!(got, [Attribute::ValueLen(len.into())]);
    }
    for len in [0u64, 33, 64] {
        let mut t = readable.to_vec();
        t.push(Attribute::ValueLen(len.into()));
        assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, public, &t)), RvError::AttributeValueInvalid, "{len}");
        assert_eq!(
            rv_of(s.decapsulate_key(&Mechanism::MlKem, private, &t, &ct)),
            RvError::AttributeValueInvalid,
            "{len}"
        );
    }
    // A length the key type does not take.
    let want = if approved_mode() { RvError::TemplateInconsistent } else { RvError::AttributeValueInvalid };
    assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, public, &aes(20))), want);
    // Only secret keys are made; the value comes from the mechanism.
    let t = [Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Token(false)];
    assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, public, &t)), RvError::TemplateInconsistent);
    let mut t = readable.to_vec();
    t.push(Attribute::Value(vec![0; 32]));
    assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, public, &t)), RvError::AttributeReadOnly);
}

/// A public key with an encapsulation template in each of the two numbers the attribute has.
#[test]
fn encapsulate_templates_bind_what_is_made() {
    let l = load();
    let s = setup(&l);
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let h = s.handle();
    let (public, private) = pair(&s, CKP_ML_KEM_512);
    let ek = bytes_attr(&s, public, AttributeType::Value);
    for ty in [CKA_ENCAPSULATE_TEMPLATE, CKA_ENCAPSULATE_TEMPLATE | CKF_ARRAY_ATTRIBUTE] {
        let (class, kt, set) = (CKO_PUBLIC_KEY, CKK_ML_KEM, CKP_ML_KEM_512);
        let inner = [attr(CKA_SENSITIVE, &TRUE)];
        let nested = CK_ATTRIBUTE {
            type_: ty,
            pValue: inner.as_ptr() as *mut _,
            ulValueLen: std::mem::size_of_val(&inner) as CK_ULONG,
        };
        let label = format!("{ty:#x}");
        let mut t = [
            attr(CKA_CLASS, &class),
            attr(CKA_KEY_TYPE, &kt),
            attr(CKA_PARAMETER_SET, &set),
            bytes(CKA_VALUE, &ek),
            bytes(CKA_LABEL, label.as_bytes()),
            nested,
        ];
        let mut o = 0;
        assert_eq!(unsafe { f.C_CreateObject(h, t.as_mut_ptr(), t.len() as _, &mut o) }, CKR_OK);
        let o = labelled(&s, label.as_bytes());
        // Read back under either number.
        for read in [CKA_ENCAPSULATE_TEMPLATE, CKA_ENCAPSULATE_TEMPLATE | CKF_ARRAY_ATTRIBUTE] {
            let mut a = CK_ATTRIBUTE { type_: read, pValue: null_mut(), ulValueLen: 0 };
            assert_eq!(unsafe { f.C_GetAttributeValue(h, o.handle(), &mut a, 1) }, CKR_OK);
            assert_eq!(a.ulValueLen as usize, std::mem::size_of::<CK_ATTRIBUTE>(), "{read:#x}");
        }
        let (ct, k) = s.encapsulate_key(&Mechanism::MlKem, o, &aes(32)).expect("encapsulate");
        assert!(bool_attr(&s, k, AttributeType::Sensitive), "the template made the key sensitive");
        let mut t = aes(32);
        t.push(Attribute::Sensitive(false));
        assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, o, &t)), RvError::TemplateInconsistent);
        s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct).expect("decapsulate");
        // Fixed once the key exists.
        s.update_attributes(o, &[Attribute::Label(b"x".to_vec())]).expect("a label may change");
        let mut a = CK_ATTRIBUTE { type_: ty, pValue: null_mut(), ulValueLen: 0 };
        assert_eq!(unsafe { f.C_SetAttributeValue(h, o.handle(), &mut a, 1) }, CKR_ATTRIBUTE_READ_ONLY);
    }
    // A decapsulation template that asks for a key that may not encrypt.
    let (public, _) = pair(&s, CKP_ML_KEM_512);
    let (class, kt, set) = (CKO_PRIVATE_KEY, CKK_ML_KEM, CKP_ML_KEM_512);
    let seed = [3u8; 64];
    let f_ = CK_FALSE;
    let inner = [attr(CKA_ENCRYPT, &f_)];
    let nested = CK_ATTRIBUTE {
        type_: CKA_DECAPSULATE_TEMPLATE | CKF_ARRAY_ATTRIBUTE,
        pValue: inner.as_ptr() as *mut _,
        ulValueLen: std::mem::size_of_val(&inner) as CK_ULONG,
    };
    let mut t = [
        attr(CKA_CLASS, &class),
        attr(CKA_KEY_TYPE, &kt),
        attr(CKA_PARAMETER_SET, &set),
        bytes(CKA_SEED, &seed),
        bytes(CKA_LABEL, b"restricted"),
        nested,
    ];
    let mut o = 0;
    assert_eq!(unsafe { f.C_CreateObject(h, t.as_mut_ptr(), t.len() as _, &mut o) }, CKR_OK);
    let (ct, _) = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("encapsulate");
    let r = s.decapsulate_key(&Mechanism::MlKem, labelled(&s, b"restricted"), &aes(32), &ct);
    assert_eq!(rv_of(r), RvError::TemplateInconsistent, "the template asks CKA_ENCRYPT, the key's template forbids it");
}

fn private_template(set: CK_ULONG, seed: Option<&[u8]>, dk: Option<&[u8]>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::ML_KEM),
        Attribute::Token(false),
        Attribute::ParameterSet(set_type(set).into()),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    if let Some(seed) = seed {
        t.push(Attribute::Seed(seed.to_vec()));
    }
    if let Some(dk) = dk {
        t.push(Attribute::Value(dk.to_vec()));
    }
    t
}

fn public_template(set: CK_ULONG, ek: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::ML_KEM),
        Attribute::Token(false),
        Attribute::ParameterSet(set_type(set).into()),
        Attribute::Value(ek.to_vec()),
    ]
}

/// The ek of a private key object, from its SubjectPublicKeyInfo (its last |ek| bytes).
fn ek_of(s: &Session, private: ObjectHandle, ek_len: usize) -> Vec<u8> {
    let spki = bytes_attr(s, private, AttributeType::PublicKeyInfo);
    spki[spki.len() - ek_len..].to_vec()
}

#[test]
fn import_from_seed_dk_or_both() {
    let l = load();
    let s = setup(&l);
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    for (set, ek_len, dk_len, _) in SETS {
        let seed: Vec<u8> = (0..64u8).collect();
        let from_seed = s.create_object(&private_template(set, Some(&seed), None)).expect("from the seed");
        let dk = bytes_attr(&s, from_seed, AttributeType::Value);
        assert_eq!(dk.len(), dk_len);
        assert_eq!(bytes_attr(&s, from_seed, AttributeType::Seed), seed);
        let ek = ek_of(&s, from_seed, ek_len);
        let from_dk = s.create_object(&private_template(set, None, Some(&dk))).expect("from dk");
        // No seed can be recovered from dk: the key has none, and the module answers for key
        // material it does not show as it does for any (`CKR_ATTRIBUTE_SENSITIVE`).
        assert_eq!(read_rv(&s, from_dk, CKA_SEED), CKR_ATTRIBUTE_SENSITIVE);
        s.create_object(&private_template(set, Some(&seed), Some(&dk))).expect("from both");
        let public = s.create_object(&public_template(set, &ek)).expect("public key");
        let (ct, k1) = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("encapsulate");
        for private in [from_seed, from_dk] {
            let k2 = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct).expect("decapsulate");
            assert_eq!(fingerprint(&s, k1), fingerprint(&s, k2));
        }
        // A seed and a dk of two different keys.
        let mut other = seed.clone();
        other[0] ^= 1;
        assert_eq!(
            rv_of(s.create_object(&private_template(set, Some(&other), Some(&dk)))),
            RvError::TemplateInconsistent
        );
        // Wrong lengths, a corrupted dk, nothing at all.
        assert_eq!(
            rv_of(s.create_object(&private_template(set, Some(&seed[..32]), None))),
            RvError::AttributeValueInvalid
        );
        assert_eq!(
            rv_of(s.create_object(&private_template(set, None, Some(&dk[1..])))),
            RvError::AttributeValueInvalid
        );
        let mut bad = dk.clone();
        bad[dk_len - 40] ^= 1; // inside H(ek)
        assert_eq!(rv_of(s.create_object(&private_template(set, None, Some(&bad)))), RvError::AttributeValueInvalid);
        assert_eq!(rv_of(s.create_object(&private_template(set, None, None))), RvError::TemplateIncomplete);
        assert_eq!(rv_of(s.create_object(&public_template(set, &ek[1..]))), RvError::AttributeValueInvalid);
        // A key of one parameter set given the material of another.
        let wrong = if set == CKP_ML_KEM_512 { CKP_ML_KEM_768 } else { CKP_ML_KEM_512 };
        assert_eq!(rv_of(s.create_object(&private_template(wrong, None, Some(&dk)))), RvError::AttributeValueInvalid);
        assert_eq!(rv_of(s.create_object(&public_template(wrong, &ek))), RvError::AttributeValueInvalid);
    }
    // An unknown parameter set, and none.
    let h = s.handle();
    let (class, kt, bad_set) = (CKO_PRIVATE_KEY, CKK_ML_KEM, 4 as CK_ULONG);
    let seed = [1u8; 64];
    let mut t =
        [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_PARAMETER_SET, &bad_set), bytes(CKA_SEED, &seed)];
    let mut o = 0;
    assert_eq!(unsafe { f.C_CreateObject(h, t.as_mut_ptr(), 4, &mut o) }, CKR_PARAMETER_SET_NOT_SUPPORTED);
    assert_eq!(unsafe { f.C_CreateObject(h, [t[0], t[1], t[3]].as_mut_ptr(), 3, &mut o) }, CKR_TEMPLATE_INCOMPLETE);
    // Key generation: the public template names the set.
    let mut m = mech(CKM_ML_KEM_KEY_PAIR_GEN);
    let (mut pubh, mut privh) = (0, 0);
    let mut pt = [attr(CKA_PARAMETER_SET, &bad_set)];
    let r = unsafe { f.C_GenerateKeyPair(h, &mut m, pt.as_mut_ptr(), 1, null_mut(), 0, &mut pubh, &mut privh) };
    assert_eq!(r, CKR_PARAMETER_SET_NOT_SUPPORTED);
    let r = unsafe { f.C_GenerateKeyPair(h, &mut m, null_mut(), 0, null_mut(), 0, &mut pubh, &mut privh) };
    assert_eq!(r, CKR_TEMPLATE_INCOMPLETE);
    // A private template that names another set than the public one.
    let (good, other) = (CKP_ML_KEM_768, CKP_ML_KEM_1024);
    let mut pt = [attr(CKA_PARAMETER_SET, &good)];
    let mut vt = [attr(CKA_PARAMETER_SET, &other)];
    let r = unsafe { f.C_GenerateKeyPair(h, &mut m, pt.as_mut_ptr(), 1, vt.as_mut_ptr(), 1, &mut pubh, &mut privh) };
    assert_eq!(r, CKR_TEMPLATE_INCONSISTENT);
}

/// An attacker with the user's login tries every route to a sensitive ML-KEM private key's seed
/// or dk, and to the value of a key decapsulation made.
#[test]
fn no_call_reveals_a_sensitive_private_key_or_decapsulated_secret() {
    let l = load();
    let s = setup(&l);
    let (public, private) = pair(&s, CKP_ML_KEM_768);
    for t in [CKA_VALUE, CKA_SEED] {
        assert_eq!(read_rv(&s, private, t), CKR_ATTRIBUTE_SENSITIVE);
    }
    // Lifting the protection.
    for a in [Attribute::Sensitive(false), Attribute::Extractable(true)] {
        assert_eq!(rv_of(s.update_attributes(private, std::slice::from_ref(&a))), RvError::AttributeReadOnly, "{a:?}");
        assert_eq!(
            rv_of(s.copy_object(private, std::slice::from_ref(&a))),
            RvError::AttributeReadOnly,
            "copy with {a:?}"
        );
    }
    // Wrapping it out.
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::ValueLen(32.into()), Attribute::Token(false), Attribute::Wrap(true), Attribute::Unwrap(true)],
        )
        .expect("KEK");
    let r = outcome(s.wrap_key(&Mechanism::AesKeyWrap, kek, private));
    assert!(matches!(r, Some(RvError::KeyUnextractable | RvError::KeyNotWrappable)), "wrap: {r:?}");
    // A sensitive, extractable copy cannot be read either.
    let (ct, _) = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("encapsulate");
    // The decapsulated secret: sensitive, and no template makes it otherwise.
    let secret = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct).expect("decapsulate");
    assert_eq!(read_rv(&s, secret, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    let mut readable = aes(32);
    readable.extend([Attribute::Sensitive(false), Attribute::Extractable(true)]);
    assert_eq!(
        rv_of(s.decapsulate_key(&Mechanism::MlKem, private, &readable, &ct)),
        RvError::TemplateInconsistent,
        "decapsulating the same ciphertext again into a readable key"
    );
    let generic = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
    ];
    assert_eq!(rv_of(s.decapsulate_key(&Mechanism::MlKem, private, &generic, &ct)), RvError::TemplateInconsistent);
    assert_eq!(rv_of(s.update_attributes(secret, &[Attribute::Sensitive(false)])), RvError::AttributeReadOnly);
    assert_eq!(rv_of(s.copy_object(secret, &[Attribute::Sensitive(false)])), RvError::AttributeReadOnly);
    // A key made sensitive by encapsulation stays out of reach through decapsulation.
    let mut sensitive = aes(32);
    sensitive.push(Attribute::Sensitive(true));
    let (ct2, k) = s.encapsulate_key(&Mechanism::MlKem, public, &sensitive).expect("encapsulate");
    assert_eq!(read_rv(&s, k, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!(rv_of(s.decapsulate_key(&Mechanism::MlKem, private, &readable, &ct2)), RvError::TemplateInconsistent);
    // Key material may not be given in a template of a made key.
    let mut t = aes(32);
    t.push(Attribute::Value(vec![0; 32]));
    assert_eq!(rv_of(s.decapsulate_key(&Mechanism::MlKem, private, &t, &ct)), RvError::AttributeReadOnly);
}

/// An extractable ML-KEM private key wraps as PKCS#8 (the seed form when it has its seed, else the
/// expanded key) and unwraps to the same key, with or without its seed.
#[test]
fn private_keys_wrap_and_unwrap_as_pkcs8() {
    let l = load();
    let s = setup(&l);
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::ValueLen(32.into()), Attribute::Token(false), Attribute::Wrap(true), Attribute::Unwrap(true)],
        )
        .expect("KEK");
    for (set, ek_len, ..) in SETS {
        let seed: Vec<u8> = (100..164u8).collect();
        let with_seed = s.create_object(&private_template(set, Some(&seed), None)).expect("from the seed");
        let dk = bytes_attr(&s, with_seed, AttributeType::Value);
        let without_seed = s.create_object(&private_template(set, None, Some(&dk))).expect("from dk");
        let public = s.create_object(&public_template(set, &ek_of(&s, with_seed, ek_len))).expect("public key");
        let (ct, k) = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("encapsulate");
        for key in [with_seed, without_seed] {
            let wrapped = s.wrap_key(&Mechanism::AesKeyWrap, kek, key).expect("wrap");
            let template = [
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::ML_KEM),
                Attribute::Token(false),
                Attribute::Decapsulate(true),
            ];
            let back = s.unwrap_key(&Mechanism::AesKeyWrap, kek, &wrapped, &template).expect("unwrap");
            let d = s.decapsulate_key(&Mechanism::MlKem, back, &aes(32), &ct).expect("decapsulate");
            assert_eq!(fingerprint(&s, d), fingerprint(&s, k), "the unwrapped key is the key");
            // The seed travels when the key has one; the unwrapped key is sensitive then too.
            assert_eq!(read_rv(&s, back, CKA_SEED), CKR_ATTRIBUTE_SENSITIVE);
            // Key material may not come from the template of an unwrap.
            let mut t = template.to_vec();
            t.push(Attribute::Seed(seed.clone()));
            assert_eq!(rv_of(s.unwrap_key(&Mechanism::AesKeyWrap, kek, &wrapped, &t)), RvError::AttributeReadOnly);
        }
    }
}

/// `tessera-util --import` reads an ML-KEM PKCS#8 file (here ML-KEM-768 in the seed form, as
/// OpenSSL 3.5 writes it by default) into a token key pair that encapsulates and decapsulates.
#[test]
fn tessera_util_imports_ml_kem_pkcs8() {
    let l = load();
    let slot = l.new_token("kem-import");
    let seed: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7)).collect();
    // PrivateKeyInfo { 0, { id-ml-kem-768 }, OCTET STRING { [0] seed } }
    let mut der = vec![0x30, 0x54, 0x02, 0x01, 0x00, 0x30, 0x0b, 0x06, 0x09];
    der.extend([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, 0x02, 0x04, 0x42, 0x80, 0x40]);
    der.extend(&seed);
    let file = l.env.dir.path().join("mlkem768.der");
    std::fs::write(&file, &der).expect("write");
    let out = l
        .env
        .command(util_path())
        .arg("--import")
        .arg(&file)
        .args(["--token", "kem-import", "--label", "mlkem", "--id", "01", "--pin", USER_PIN])
        .output()
        .expect("run tessera-util");
    assert!(out.status.success() && show(&out).contains("The key pair has been imported."), "{}", show(&out));
    let s = user_session(&l.p, slot);
    let found =
        |class| s.find_objects(&[Attribute::Class(class), Attribute::Label(b"mlkem".to_vec())]).expect("find")[0];
    let (public, private) = (found(ObjectClass::PUBLIC_KEY), found(ObjectClass::PRIVATE_KEY));
    let (ct, k1) = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("encapsulate");
    let k2 = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct).expect("decapsulate");
    assert_eq!(fingerprint(&s, k1), fingerprint(&s, k2));
    assert_eq!(read_rv(&s, private, CKA_SEED), CKR_ATTRIBUTE_SENSITIVE);
    // The same seed imported here gives the same ek.
    let here = s.create_object(&private_template(CKP_ML_KEM_768, Some(&seed), None)).expect("from the seed");
    assert_eq!(ek_of(&s, here, 1184), bytes_attr(&s, public, AttributeType::Value));
}

/// PQClean's ML-KEM (`pqcrypto-mlkem`), an implementation independent of aws-lc, against
/// Tessera's, for each parameter set: what Tessera encapsulates PQClean decapsulates with the
/// Tessera key's dk, what PQClean encapsulates Tessera decapsulates with PQClean's key imported,
/// and Tessera encapsulates under PQClean's ek.
#[test]
fn pqclean_ml_kem_agrees() {
    use pqcrypto_traits::kem::{Ciphertext as _, PublicKey as _, SecretKey as _, SharedSecret as _};
    let l = load();
    let s = setup(&l);
    let readable = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    macro_rules! check {
        ($set:expr, $m:ident) => {{
            use pqcrypto_mlkem::$m as pq;
            // A Tessera pair whose dk may be read.
            let (public, private) = s
                .generate_key_pair(
                    &Mechanism::MlKemKeyPairGen,
                    &[Attribute::Token(false), Attribute::ParameterSet(set_type($set).into())],
                    &[Attribute::Token(false), Attribute::Sensitive(false), Attribute::Extractable(true)],
                )
                .expect("pair");
            let dk = pq::SecretKey::from_bytes(&bytes_attr(&s, private, AttributeType::Value)).expect("dk");
            let (ct, k) = s.encapsulate_key(&Mechanism::MlKem, public, &readable).expect("encapsulate");
            let ct = pq::Ciphertext::from_bytes(&ct).expect("ciphertext");
            assert_eq!(pq::decapsulate(&ct, &dk).as_bytes(), bytes_attr(&s, k, AttributeType::Value), "{}", $set);
            // A PQClean pair in Tessera.
            let (pk, sk) = pq::keypair();
            let private = s.create_object(&private_template($set, None, Some(sk.as_bytes()))).expect("PQClean dk");
            let public = s.create_object(&public_template($set, pk.as_bytes())).expect("PQClean ek");
            let (ss, ct) = pq::encapsulate(&pk);
            let d = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), ct.as_bytes()).expect("decapsulate");
            assert_eq!(fingerprint(&s, d), fingerprint_of(&s, ss.as_bytes()), "{}", $set);
            let (ct, k) = s.encapsulate_key(&Mechanism::MlKem, public, &readable).expect("encapsulate");
            let ct = pq::Ciphertext::from_bytes(&ct).expect("ciphertext");
            assert_eq!(pq::decapsulate(&ct, &sk).as_bytes(), bytes_attr(&s, k, AttributeType::Value), "{}", $set);
        }};
    }
    check!(CKP_ML_KEM_512, mlkem512);
    check!(CKP_ML_KEM_768, mlkem768);
    check!(CKP_ML_KEM_1024, mlkem1024);
}

/// Token objects: a read-only session makes none, and a private key of the token is used only
/// while the user is logged in.
#[test]
fn token_objects_follow_the_session_rules() {
    let l = load();
    let slot = l.new_token("kem");
    let s = user_session(&l.p, slot);
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[Attribute::Token(true), Attribute::ParameterSet(set_type(CKP_ML_KEM_768).into())],
            &[Attribute::Token(true)],
        )
        .expect("token pair");
    let ro = l.p.open_ro_session(slot).expect("R/O session");
    let mut token_key = aes(32);
    token_key.retain(|a| !matches!(a, Attribute::Token(_)));
    token_key.push(Attribute::Token(true));
    assert_eq!(rv_of(ro.encapsulate_key(&Mechanism::MlKem, public, &token_key)), RvError::SessionReadOnly);
    let (ct, _) = ro.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("a session key in a R/O session");
    s.logout().expect("logout");
    let r = outcome(ro.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &ct));
    assert!(matches!(r, Some(RvError::KeyHandleInvalid | RvError::UserNotLoggedIn)), "{r:?}");
}

// ---- vectors ------------------------------------------------------------------------------------

/// (parameter set, |ek|) of a vector file's parameter set name.
fn set_of(name: &str) -> Option<(CK_ULONG, usize)> {
    let i = ["ML-KEM-512", "ML-KEM-768", "ML-KEM-1024"].iter().position(|n| *n == name)?;
    Some((SETS[i].0, SETS[i].1))
}

/// Decapsulates `c` with the private key `private` into an AES-256 key; compares with `k`.
fn decapsulates_to(s: &Session, private: ObjectHandle, c: &[u8], k: &[u8]) -> Result<bool, RvError> {
    let d = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), c).map_err(rv)?;
    Ok(fingerprint(s, d) == fingerprint_of(s, k))
}

fn acvp(name: &str) -> Option<Value> {
    let Some(dir) = shared_dir() else {
        println!("SKIP ACVP {name}: ../shared is absent");
        return None;
    };
    let p = dir.join("vectors/acvp").join(name).join("internalProjection.json");
    match std::fs::read(&p) {
        Ok(b) => Some(serde_json::from_slice(&b).expect("ACVP JSON")),
        Err(e) => {
            println!("SKIP ACVP {name}: {}: {e}", p.display());
            None
        }
    }
}

fn each(v: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    v["testGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["tests"].as_array().into_iter().flatten().map(move |t| (g, t)))
}

fn id(t: &Value) -> u64 {
    t["tcId"].as_u64().unwrap_or(0)
}

#[test]
fn acvp_key_generation_from_the_seed() {
    let Some(v) = acvp("ML-KEM-keyGen-FIPS203") else { return };
    let l = load();
    let s = setup(&l);
    let mut tally = Tally::new("ACVP ML-KEM-keyGen-FIPS203 (keys from d‖z via C_CreateObject)");
    for (g, t) in each(&v) {
        let (set, ek_len) = set_of(g["parameterSet"].as_str().unwrap()).expect("parameter set");
        let mut seed = hex(&t["d"]);
        seed.extend(hex(&t["z"]));
        match s.create_object(&private_template(set, Some(&seed), None)) {
            Ok(k) => {
                let ok =
                    bytes_attr(&s, k, AttributeType::Value) == hex(&t["dk"]) && ek_of(&s, k, ek_len) == hex(&t["ek"]);
                tally.case(id(t), "valid", true, ok);
            }
            Err(_) => tally.case(id(t), "valid", false, false),
        }
    }
    tally.finish();
}

#[test]
fn acvp_encapsulation_and_decapsulation() {
    let Some(v) = acvp("ML-KEM-encapDecap-FIPS203") else { return };
    let l = load();
    let s = setup(&l);
    let mut tally = Tally::new("ACVP ML-KEM-encapDecap-FIPS203");
    for (g, t) in each(&v) {
        let (set, _) = set_of(g["parameterSet"].as_str().unwrap()).expect("parameter set");
        match g["function"].as_str().unwrap_or("") {
            "encapsulation" => {
                // The ABI's part: ek imports and encapsulates to a ciphertext dk decapsulates.
                let public = s.create_object(&public_template(set, &hex(&t["ek"]))).expect("ek");
                let private = s.create_object(&private_template(set, None, Some(&hex(&t["dk"])))).expect("dk");
                let (c, k) = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32)).expect("encapsulate");
                let d = s.decapsulate_key(&Mechanism::MlKem, private, &aes(32), &c).expect("decapsulate");
                assert_eq!(fingerprint(&s, k), fingerprint(&s, d), "tcId {}", id(t));
                // Its c and k for the given m: at the core level (C_EncapsulateKey takes no m).
                tally.skip(id(t), "encapsulation with a given m: checked by the module's unit test crypto::mlkem::tests (C_EncapsulateKey draws m itself)");
            }
            "decapsulation" => {
                let private = s.create_object(&private_template(set, None, Some(&hex(&t["dk"])))).expect("dk");
                let r = decapsulates_to(&s, private, &hex(&t["c"]), &hex(&t["k"]));
                tally.case(id(t), "valid", r.is_ok(), r.unwrap_or(false));
            }
            "decapsulationKeyCheck" => {
                let want = if t["testPassed"].as_bool() == Some(true) { "valid" } else { "invalid" };
                let r = outcome(s.create_object(&private_template(set, None, Some(&hex(&t["dk"])))));
                assert!(matches!(r, None | Some(RvError::AttributeValueInvalid)), "tcId {}: {r:?}", id(t));
                tally.case(id(t), want, r.is_none(), true);
            }
            "encapsulationKeyCheck" => {
                let want = if t["testPassed"].as_bool() == Some(true) { "valid" } else { "invalid" };
                let r = outcome(s.create_object(&public_template(set, &hex(&t["ek"]))));
                assert!(matches!(r, None | Some(RvError::AttributeValueInvalid)), "tcId {}: {r:?}", id(t));
                tally.case(id(t), want, r.is_none(), true);
            }
            other => tally.skip(id(t), &format!("unknown function {other}")),
        }
    }
    tally.finish();
}

#[test]
fn wycheproof_key_generation_from_the_seed() {
    for set in [512, 768, 1024] {
        let name = format!("mlkem_{set}_keygen_seed_test");
        let Some(v) = wycheproof::load(&name) else { continue };
        let l = load();
        let s = setup(&l);
        let mut tally = Tally::new(&name);
        for (g, t) in each(&v) {
            let (set, ek_len) = set_of(g["parameterSet"].as_str().unwrap()).expect("parameter set");
            let r = s.create_object(&private_template(set, Some(&hex(&t["seed"])), None));
            let ok = r.as_ref().is_ok_and(|k| {
                bytes_attr(&s, *k, AttributeType::Value) == hex(&t["dk"]) && ek_of(&s, *k, ek_len) == hex(&t["ek"])
            });
            tally.case(id(t), t["result"].as_str().unwrap_or(""), r.is_ok(), ok);
        }
        tally.finish();
    }
}

#[test]
fn wycheproof_decapsulation_of_keys_from_the_seed() {
    for set in [512, 768, 1024] {
        let name = format!("mlkem_{set}_test");
        let Some(v) = wycheproof::load(&name) else { continue };
        let l = load();
        let s = setup(&l);
        let mut tally = Tally::new(&name);
        for (g, t) in each(&v) {
            let (set, ek_len) = set_of(g["parameterSet"].as_str().unwrap()).expect("parameter set");
            let result = t["result"].as_str().unwrap_or("");
            let key = match s.create_object(&private_template(set, Some(&hex(&t["seed"])), None)) {
                Ok(k) => k,
                Err(e) => {
                    assert_eq!(rv(e), RvError::AttributeValueInvalid, "tcId {}: a seed of the wrong length", id(t));
                    tally.case(id(t), result, false, false);
                    continue;
                }
            };
            if t.get("ek").is_some_and(|e| !e.as_str().unwrap_or("").is_empty()) {
                assert_eq!(ek_of(&s, key, ek_len), hex(&t["ek"]), "tcId {}: ek", id(t));
            }
            match decapsulates_to(&s, key, &hex(&t["c"]), &hex(&t["K"])) {
                Ok(m) => tally.case(id(t), result, true, m),
                Err(e) => {
                    assert_eq!(e, RvError::EncryptedDataLenRange, "tcId {}", id(t));
                    tally.case(id(t), result, false, false);
                }
            }
        }
        tally.finish();
    }
}

#[test]
fn wycheproof_decapsulation_of_expanded_keys() {
    for set in [512, 768, 1024] {
        let name = format!("mlkem_{set}_semi_expanded_decaps_test");
        let Some(v) = wycheproof::load(&name) else { continue };
        let l = load();
        let s = setup(&l);
        let mut tally = Tally::new(&name);
        for (g, t) in each(&v) {
            let (set, _) = set_of(g["parameterSet"].as_str().unwrap()).expect("parameter set");
            let result = t["result"].as_str().unwrap_or("");
            let key = match s.create_object(&private_template(set, None, Some(&hex(&t["dk"])))) {
                Ok(k) => k,
                Err(e) => {
                    assert_eq!(rv(e), RvError::AttributeValueInvalid, "tcId {}", id(t));
                    tally.case(id(t), result, false, false);
                    continue;
                }
            };
            match decapsulates_to(&s, key, &hex(&t["c"]), &hex(&t["K"])) {
                Ok(m) => tally.case(id(t), result, true, m),
                Err(e) => {
                    assert_eq!(e, RvError::EncryptedDataLenRange, "tcId {}", id(t));
                    tally.case(id(t), result, false, false);
                }
            }
        }
        tally.finish();
    }
}

#[test]
fn wycheproof_encapsulation_keys() {
    for set in [512, 768, 1024] {
        let name = format!("mlkem_{set}_encaps_test");
        let Some(v) = wycheproof::load(&name) else { continue };
        let l = load();
        let s = setup(&l);
        let mut tally = Tally::new(&format!("{name} (ek checks via C_CreateObject)"));
        for (g, t) in each(&v) {
            let (set, _) = set_of(g["parameterSet"].as_str().unwrap()).expect("parameter set");
            let result = t["result"].as_str().unwrap_or("");
            match s.create_object(&public_template(set, &hex(&t["ek"]))) {
                Ok(public) => {
                    // The ABI's part of a valid case: ek encapsulates. (c and K for the given m:
                    // crypto::mlkem's unit test.)
                    let r = s.encapsulate_key(&Mechanism::MlKem, public, &aes(32));
                    tally.case(id(t), result, r.is_ok(), true);
                }
                Err(e) => {
                    assert_eq!(rv(e), RvError::AttributeValueInvalid, "tcId {}", id(t));
                    tally.case(id(t), result, false, false);
                }
            }
        }
        tally.finish();
    }
}

// ---- X-Wing (Tessera vendor key type and mechanisms) --------------------------------------------

const CKK_TESSERA_XWING: CK_KEY_TYPE = CKK_VENDOR_DEFINED | 0x5457_0001;
const CKM_TESSERA_XWING_KEY_PAIR_GEN: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x5457_0001;
const CKM_TESSERA_XWING: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x5457_0002;

fn vendor(m: CK_MECHANISM_TYPE) -> Mechanism<'static> {
    let t = MechanismType::new_vendor_defined(m).expect("vendor mechanism");
    Mechanism::VendorDefined(cryptoki::mechanism::vendor_defined::VendorDefinedMechanism::new::<()>(t, None))
}

fn xwing_key(class: ObjectClass, value: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(class),
        Attribute::KeyType(KeyType::new_vendor_defined(CKK_TESSERA_XWING).unwrap()),
        Attribute::Token(false),
        Attribute::Value(value.to_vec()),
    ]
}

/// X-Wing is never approved (policy/non-approved.toml): the approved mode offers neither mechanism
/// and refuses them; the other mode runs them, flagged non-approved.
#[test]
fn xwing_encapsulates_and_decapsulates_outside_the_approved_mode() {
    let l = load();
    let s = setup(&l);
    let gen = s.generate_key_pair(
        &vendor(CKM_TESSERA_XWING_KEY_PAIR_GEN),
        &[Attribute::Token(false)],
        &[Attribute::Token(false)],
    );
    if approved_mode() {
        assert_eq!(rv_of(gen), RvError::MechanismInvalid, "X-Wing in the approved mode");
        return;
    }
    let (public, private) = gen.expect("X-Wing pair");
    assert_eq!(bytes_attr(&s, public, AttributeType::Value).len(), 1216);
    assert_eq!(read_rv(&s, private, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    let m = vendor(CKM_TESSERA_XWING);
    let (ct, k1) = s.encapsulate_key(&m, public, &aes(32)).expect("encapsulate");
    assert_eq!(ct.len(), 1120);
    let k2 = s.decapsulate_key(&m, private, &aes(32), &ct).expect("decapsulate");
    assert_eq!(fingerprint(&s, k1), fingerprint(&s, k2));
    // Implicit rejection, the wrong length, the wrong key type.
    let mut bad = ct.clone();
    bad[7] ^= 1;
    let k3 = s.decapsulate_key(&m, private, &aes(32), &bad).expect("a wrong ciphertext decapsulates");
    assert_ne!(fingerprint(&s, k1), fingerprint(&s, k3));
    assert_eq!(rv_of(s.decapsulate_key(&m, private, &aes(32), &ct[1..])), RvError::EncryptedDataLenRange);
    let (ml_pub, _) = pair(&s, CKP_ML_KEM_768);
    assert_eq!(rv_of(s.encapsulate_key(&m, ml_pub, &aes(32))), RvError::KeyTypeInconsistent);
    assert_eq!(rv_of(s.encapsulate_key(&Mechanism::MlKem, public, &aes(32))), RvError::KeyTypeInconsistent);
    // Key checks on import.
    let pk = bytes_attr(&s, public, AttributeType::Value);
    assert_eq!(rv_of(s.create_object(&xwing_key(ObjectClass::PUBLIC_KEY, &pk[1..]))), RvError::AttributeValueInvalid);
    let mut unreduced = pk.clone();
    unreduced[0] = 0xff;
    unreduced[1] |= 0x0f;
    assert_eq!(rv_of(s.create_object(&xwing_key(ObjectClass::PUBLIC_KEY, &unreduced))), RvError::AttributeValueInvalid);
    assert_eq!(rv_of(s.create_object(&xwing_key(ObjectClass::PRIVATE_KEY, &[1; 31]))), RvError::AttributeValueInvalid);
    // Mechanism information.
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let slot = l.slot_of("kem");
    let mut info = CK_MECHANISM_INFO::default();
    assert_eq!(unsafe { f.C_GetMechanismInfo(slot.id(), CKM_TESSERA_XWING, &mut info) }, CKR_OK);
    assert_eq!((info.ulMinKeySize, info.ulMaxKeySize, info.flags), (1216, 1216, CKF_ENCAPSULATE | CKF_DECAPSULATE));
}

/// The X-Wing draft's test vectors through the ABI: each private key sk (imported with
/// `C_CreateObject`) decapsulates the vector's ciphertext to its shared secret, and the public key
/// imports. (Key generation from the seed and encapsulation with the given randomness are at the
/// core: `crypto::xwing::tests`.)
#[test]
fn xwing_draft_vectors_decapsulate() {
    let l = load();
    let s = setup(&l);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../module/testdata/xwing-draft-06.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).expect("vectors")).expect("JSON");
    let mut tally = Tally::new("X-Wing draft-06 test vectors (decapsulation via C_CreateObject + C_DecapsulateKey)");
    for (i, t) in v.as_array().expect("array").iter().enumerate() {
        let private = s.create_object(&xwing_key(ObjectClass::PRIVATE_KEY, &hex(&t["sk"])));
        let public = s.create_object(&xwing_key(ObjectClass::PUBLIC_KEY, &hex(&t["pk"])));
        if approved_mode() {
            // The keys import (a key type is no use); the mechanism is refused.
            let d = s.decapsulate_key(&vendor(CKM_TESSERA_XWING), private.expect("sk"), &aes(32), &hex(&t["ct"]));
            assert_eq!(rv_of(d), RvError::MechanismInvalid);
            tally.skip(i as u64, "refused by the approved-mode policy: X-Wing is not approved");
            continue;
        }
        let (Ok(private), Ok(_)) = (private, public) else {
            tally.case(i as u64, "valid", false, false);
            continue;
        };
        let d = s.decapsulate_key(&vendor(CKM_TESSERA_XWING), private, &aes(32), &hex(&t["ct"]));
        let ok = d.as_ref().is_ok_and(|k| fingerprint(&s, *k) == fingerprint_of(&s, &hex(&t["ss"])));
        tally.case(i as u64, "valid", d.is_ok(), ok);
    }
    tally.finish();
}

/// A pairwise-consistency failure (forced in the fault-injection build) on an ML-KEM or X-Wing
/// pair puts the module in the error state, and no key is made.
#[test]
fn pairwise_consistency_failure_reaches_the_error_state() {
    let Some(path) = fault_module() else { return };
    seal(&path);
    // In the mode the suite runs in (TESSERA_MODE): X-Wing only outside the approved mode.
    let mut lib = tessera_tests::raw::RawLib::locked(lock(), &path, Env::new(""));
    lib.unset_on_drop = &["TESSERA_FAIL_SELFTEST"];
    let set = CKP_ML_KEM_768;
    let mut made = false;
    for (what, mt, template) in [
        ("ML-KEM-768", CKM_ML_KEM_KEY_PAIR_GEN, vec![attr(CKA_PARAMETER_SET, &set)]),
        ("X-Wing", CKM_TESSERA_XWING_KEY_PAIR_GEN, vec![]),
    ] {
        if approved_mode() && mt == CKM_TESSERA_XWING_KEY_PAIR_GEN {
            continue;
        }
        std::env::set_var("TESSERA_FAIL_SELFTEST", "pct");
        lib.init();
        let slot = if made { initialised_slot(&lib.f) } else { lib.token("pct") };
        made = true;
        let h = lib.open(slot, true);
        lib.login(h, CKU_USER, USER_PIN).expect("login");
        let mut m = mech(mt);
        let mut t = template.clone();
        let (mut p, mut v) = (0, 0);
        let rv =
            unsafe { lib.f.C_GenerateKeyPair(h, &mut m, t.as_mut_ptr(), t.len() as _, null_mut(), 0, &mut p, &mut v) };
        assert_eq!(rv, CKR_GENERAL_ERROR, "{what}: a failed pairwise-consistency test");
        let mut buf = [0u8; 4];
        assert_eq!(unsafe { lib.f.C_GenerateRandom(h, buf.as_mut_ptr(), 4) }, CKR_GENERAL_ERROR, "{what}: error state");
        assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
        std::env::remove_var("TESSERA_FAIL_SELFTEST");
        lib.init();
        let h = lib.open(initialised_slot(&lib.f), true);
        lib.login(h, CKU_USER, USER_PIN).expect("login");
        let rv =
            unsafe { lib.f.C_GenerateKeyPair(h, &mut m, t.as_mut_ptr(), t.len() as _, null_mut(), 0, &mut p, &mut v) };
        assert_eq!(rv, CKR_OK, "{what}: healthy again after a new C_Initialize");
        assert_eq!(unsafe { lib.f.C_Finalize(null_mut()) }, CKR_OK);
    }
}

/// A decapsulated secret stays inside through derivation too: the same ciphertext gives the same
/// secret to every user of the private key, so a key derived from it (HKDF) is sensitive, may not
/// be made otherwise, and no data object shows a value derived from it.
#[test]
fn keys_derived_from_a_decapsulated_secret_stay_sensitive() {
    let l = load();
    let s = setup(&l);
    let (public, private) = pair(&s, CKP_ML_KEM_768);
    let secret = |derive: bool| {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Derive(derive),
        ]
    };
    let (ct, _) = s.encapsulate_key(&Mechanism::MlKem, public, &secret(true)).expect("encapsulate");
    let k = s.decapsulate_key(&Mechanism::MlKem, private, &secret(true), &ct).expect("decapsulate");
    let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
    let (salt, info) = (b"salt".to_vec(), b"session key".to_vec());
    let hkdf = |data: bool| {
        let p = CK_HKDF_PARAMS {
            bExtract: 1,
            bExpand: 1,
            prfHashMechanism: CKM_SHA256,
            ulSaltType: CKF_HKDF_SALT_DATA,
            pSalt: salt.as_ptr() as *mut u8,
            ulSaltLen: salt.len() as CK_ULONG,
            hSaltKey: CK_INVALID_HANDLE,
            pInfo: info.as_ptr() as *mut u8,
            ulInfoLen: info.len() as CK_ULONG,
        };
        Mech::with_struct(if data { CKM_HKDF_DATA } else { CKM_HKDF_DERIVE }, &p)
    };
    let derive = |m: &Mech, tpl: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]| -> Result<CK_OBJECT_HANDLE, CK_RV> {
        let mut raw = m.raw();
        let mut attrs: Vec<CK_ATTRIBUTE> = tpl
            .iter()
            .map(|(t, v)| CK_ATTRIBUTE { type_: *t, pValue: v.as_ptr() as *mut _, ulValueLen: v.len() as CK_ULONG })
            .collect();
        let mut h = 0;
        match unsafe {
            f.C_DeriveKey(s.handle(), &mut raw, k.handle(), attrs.as_mut_ptr(), attrs.len() as CK_ULONG, &mut h)
        } {
            CKR_OK => Ok(h),
            rv => Err(rv),
        }
    };
    let base = |extra: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>| {
        let mut t = vec![
            (CKA_CLASS, CKO_SECRET_KEY.to_ne_bytes().to_vec()),
            (CKA_KEY_TYPE, CKK_GENERIC_SECRET.to_ne_bytes().to_vec()),
            (CKA_VALUE_LEN, (32 as CK_ULONG).to_ne_bytes().to_vec()),
            (CKA_TOKEN, vec![0]),
        ];
        t.extend(extra);
        t
    };
    assert_eq!(
        derive(&hkdf(false), &base(vec![(CKA_SENSITIVE, vec![0]), (CKA_EXTRACTABLE, vec![1])])),
        Err(CKR_TEMPLATE_INCONSISTENT),
        "a readable key derived from the decapsulated secret"
    );
    let d = derive(&hkdf(false), &base(vec![])).expect("a key derived from it");
    let d = unsafe { ObjectHandle::new_from_raw(d) };
    assert!(bool_attr(&s, d, AttributeType::Sensitive), "sensitive by default");
    assert_eq!(read_rv(&s, d, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    let data = vec![(CKA_CLASS, CKO_DATA.to_ne_bytes().to_vec()), (CKA_TOKEN, vec![0])];
    assert!(derive(&hkdf(true), &data).is_err(), "no data object of a value derived from it");
}
