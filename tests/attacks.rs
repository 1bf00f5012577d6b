//! Key-management attacks, as an application with a user login (and, where a family needs it,
//! the Security Officer) would try them through the built module. Each test names the family it
//! belongs to (the Tookan/Clulow catalogue: Bortolozzo, Centenaro, Focardi and Steel, CCS 2010;
//! Clulow, CHES 2003) and runs the attack step by step, asserting that it is refused at the step
//! Tessera's design refuses it (`security-policy.md`, "Key-management attacks").
//!
//! Runs in both modes: the rules are the same in each (the legacy rules that lift them,
//! `keys.legacy_wrapping = allow`, have no effect in the approved mode).

use cryptoki_sys::*;
use tessera_tests::*;

fn kw() -> Mech {
    Mech::new(CKM_AES_KEY_WRAP)
}

/// A sensitive, extractable AES key made with a value the test knows: the target whose value no
/// sequence of calls may reveal.
fn target(t: &Token, value: &[u8]) -> CK_OBJECT_HANDLE {
    let mut tpl = secret(CKK_AES, value);
    tpl.retain(|(a, _)| *a != CKA_SENSITIVE);
    tpl.push((CKA_SENSITIVE, V::B(true)));
    t.create(&tpl).unwrap()
}

/// A key-encryption key generated on the token: never extractable, wraps and unwraps.
fn generated_kek(t: &Token) -> CK_OBJECT_HANDLE {
    t.generate(
        &Mech::new(CKM_AES_KEY_GEN),
        &vec![(CKA_VALUE_LEN, V::U(32)), (CKA_TOKEN, V::B(false)), (CKA_WRAP, V::B(true)), (CKA_UNWRAP, V::B(true))],
    )
    .unwrap()
}

fn flag(t: &Token, h: CK_OBJECT_HANDLE, a: CK_ATTRIBUTE_TYPE) -> bool {
    t.attr(h, a).unwrap() == [1]
}

/// Family: wrap then decrypt (Clulow). A key that wraps never decrypts, a key that unwraps never
/// encrypts, and no key is made to; the defaults make data keys.
#[test]
fn a_key_never_both_wraps_and_decrypts() {
    let t = Token::new("atk-clulow");
    let value = [0x42; 16];
    let s = target(&t, &value);
    // A default AES key encrypts and decrypts and does not wrap: the wrap of step 1 fails.
    let k = t.generate(&Mech::new(CKM_AES_KEY_GEN), &vec![(CKA_VALUE_LEN, V::U(16))]).unwrap();
    assert!(flag(&t, k, CKA_ENCRYPT) && flag(&t, k, CKA_DECRYPT));
    assert!(!flag(&t, k, CKA_WRAP) && !flag(&t, k, CKA_UNWRAP));
    assert_eq!(t.wrap(&kw(), k, s), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    // Neither can it be given the other usage, nor made with both: a key's kind is fixed when it
    // is made, even with its data usages cleared first, and even while a decryption it began is
    // still in progress (which would decrypt what it wrapped next).
    assert_eq!(t.set(k, &vec![(CKA_WRAP, V::B(true))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    t.decrypt_init(&Mech::new(CKM_AES_ECB), k).unwrap();
    let cleared: Tpl = [CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY].iter().map(|a| (*a, V::B(false))).collect();
    t.set(k, &cleared).unwrap();
    assert_eq!(t.set(k, &vec![(CKA_WRAP, V::B(true))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    assert_eq!(t.wrap(&kw(), k, s), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    // The decryption begun before goes on as begun (with the data it is given) and ends.
    let (mut block, mut out, mut n) = ([0u8; 16], [0u8; 16], 16 as CK_ULONG);
    let r = unsafe { t.f.C_Decrypt(t.h, block.as_mut_ptr(), 16, out.as_mut_ptr(), &mut n) };
    assert_eq!(r, CKR_OK);
    let both = vec![(CKA_VALUE_LEN, V::U(16)), (CKA_WRAP, V::B(true)), (CKA_DECRYPT, V::B(true))];
    assert_eq!(t.generate(&Mech::new(CKM_AES_KEY_GEN), &both), Err(CKR_TEMPLATE_INCONSISTENT));
    let unwrap_encrypt = vec![(CKA_VALUE_LEN, V::U(16)), (CKA_UNWRAP, V::B(true)), (CKA_ENCRYPT, V::B(true))];
    assert_eq!(t.generate(&Mech::new(CKM_AES_KEY_GEN), &unwrap_encrypt), Err(CKR_TEMPLATE_INCONSISTENT));
    // A key-encryption key wraps, and then neither decrypts the blob nor can be made to.
    let w = generated_kek(&t);
    assert!(!flag(&t, w, CKA_ENCRYPT) && !flag(&t, w, CKA_DECRYPT) && !flag(&t, w, CKA_SIGN));
    let blob = t.wrap(&kw(), w, s).unwrap();
    assert_eq!(t.decrypt(&kw(), w, &blob), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    assert_eq!(t.decrypt(&Mech::new(CKM_AES_ECB), w, &blob[..16]), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    assert_eq!(t.set(w, &vec![(CKA_DECRYPT, V::B(true))]), Err(CKR_TEMPLATE_INCONSISTENT));
    assert_eq!(t.set(w, &vec![(CKA_SIGN, V::B(true))]), Err(CKR_TEMPLATE_INCONSISTENT));
    // Nor can it stop being a key-encryption key so as to decrypt.
    assert_eq!(t.set(w, &vec![(CKA_WRAP, V::B(false)), (CKA_UNWRAP, V::B(false))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    assert_eq!(t.copy(w, &vec![(CKA_WRAP, V::B(false)), (CKA_UNWRAP, V::B(false))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    // A copy cannot add it either.
    assert_eq!(t.copy(w, &vec![(CKA_DECRYPT, V::B(true))]), Err(CKR_TEMPLATE_INCONSISTENT));
    // Wrapping a key with itself: a key that can leave the token is not one nobody outside
    // knows, so it wraps no sensitive key, itself included.
    let selfwrap = t
        .generate(
            &Mech::new(CKM_AES_KEY_GEN),
            &vec![
                (CKA_VALUE_LEN, V::U(16)),
                (CKA_WRAP, V::B(true)),
                (CKA_UNWRAP, V::B(true)),
                (CKA_EXTRACTABLE, V::B(true)),
                (CKA_SENSITIVE, V::B(true)),
            ],
        )
        .unwrap();
    assert_eq!(t.wrap(&kw(), selfwrap, selfwrap), Err(CKR_KEY_NOT_WRAPPABLE));
    // Unwrapping the blob into a readable key is unwrapping as decryption: refused, and what
    // is unwrapped is sensitive.
    let blob = t.wrap(&kw(), w, s).unwrap();
    let readable = made(CKK_AES, None);
    assert_eq!(t.unwrap(&kw(), w, &blob, &readable), Err(CKR_TEMPLATE_INCONSISTENT));
    let back = t.unwrap(&kw(), w, &blob, &unwrapped(CKK_AES, None)).unwrap();
    assert!(flag(&t, back, CKA_SENSITIVE));
    assert!(!flag(&t, back, CKA_ALWAYS_SENSITIVE) && !flag(&t, back, CKA_LOCAL));
    assert_eq!(t.value(back), Err(CKR_ATTRIBUTE_SENSITIVE));
    // ... and it cannot be made readable afterwards.
    assert_eq!(t.set(back, &vec![(CKA_SENSITIVE, V::B(false))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    assert!(t.same_value(back, &value), "the unwrapped key is the wrapped one");
}

/// Family: wrap with a key whose value the attacker knows, then decrypt the blob outside the
/// token. Only keys nobody outside knows (generated here, never extractable; or trusted by the
/// Security Officer) wrap sensitive keys.
#[test]
fn sensitive_keys_are_wrapped_only_by_keys_that_keep_them() {
    let t = Token::new("atk-known-kek");
    let s = target(&t, &[0x17; 32]);
    let known = t.kek(CKK_AES, &[0x99; 16]).unwrap();
    assert_eq!(t.wrap(&kw(), known, s), Err(CKR_KEY_NOT_WRAPPABLE));
    // A key the attacker unwrapped from a blob it made is known to it as well (not local).
    let mine = t.key(CKK_AES, &[0x77; 16]).unwrap();
    let known_blob = t.wrap(&kw(), known, mine).unwrap();
    let w = generated_kek(&t);
    let ukek = t
        .unwrap(
            &kw(),
            known,
            &known_blob,
            &vec![
                (CKA_CLASS, V::U(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, V::U(CKK_AES)),
                (CKA_TOKEN, V::B(false)),
                (CKA_WRAP, V::B(true)),
            ],
        )
        .unwrap();
    assert_eq!(t.wrap(&kw(), ukek, s), Err(CKR_KEY_NOT_WRAPPABLE));
    // A non-sensitive, extractable key is readable anyway: any key-encryption key wraps it.
    assert!(t.wrap(&kw(), known, mine).is_ok());
    // A generated key-encryption key wraps the sensitive key.
    assert!(t.wrap(&kw(), w, s).is_ok());
    // A key generated extractable is not one nobody outside knows.
    let leaky = t
        .generate(
            &Mech::new(CKM_AES_KEY_GEN),
            &vec![(CKA_VALUE_LEN, V::U(16)), (CKA_WRAP, V::B(true)), (CKA_EXTRACTABLE, V::B(true))],
        )
        .unwrap();
    assert_eq!(t.wrap(&kw(), leaky, s), Err(CKR_KEY_NOT_WRAPPABLE));
    // An RSA public key the attacker imports (its private key is the attacker's) does not wrap
    // it; the public key of a pair generated here does.
    let (public, _private) = rsa_wrapping_pair(&t);
    let modulus = t.attr(public, CKA_MODULUS).unwrap();
    let imported = t
        .create(&vec![
            (CKA_CLASS, V::U(CKO_PUBLIC_KEY)),
            (CKA_KEY_TYPE, V::U(CKK_RSA)),
            (CKA_TOKEN, V::B(false)),
            (CKA_MODULUS, V::Bytes(modulus)),
            (CKA_PUBLIC_EXPONENT, V::Bytes(vec![1, 0, 1])),
            (CKA_WRAP, V::B(true)),
        ])
        .unwrap();
    let oaep = oaep_sha256();
    assert_eq!(t.wrap(&oaep, imported, s), Err(CKR_KEY_NOT_WRAPPABLE));
    assert!(t.wrap(&oaep, public, s).is_ok());
    // A pair whose private key decrypts (or signs, or could be made to) does not count: the
    // private key would decrypt what its public key wrapped.
    let (data_public, data_private) = t
        .generate_pair(
            &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &vec![(CKA_TOKEN, V::B(false)), (CKA_MODULUS_BITS, V::U(2048)), (CKA_WRAP, V::B(true))],
            &vec![(CKA_TOKEN, V::B(false)), (CKA_SIGN, V::B(true))],
        )
        .unwrap();
    assert_eq!(t.wrap(&oaep, data_public, s), Err(CKR_KEY_NOT_WRAPPABLE));
    assert!(t.wrap(&oaep, data_public, mine).is_ok(), "a readable key may be wrapped by it");
    assert_eq!(t.set(data_private, &vec![(CKA_UNWRAP, V::B(true))]), Err(CKR_TEMPLATE_INCONSISTENT));
    let (_, private) = rsa_wrapping_pair(&t);
    assert_eq!(t.set(private, &vec![(CKA_UNWRAP, V::B(false))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    // A pair whose private key was not sensitive from the start does not count either.
    let (open_public, _) = t
        .generate_pair(
            &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &vec![(CKA_TOKEN, V::B(false)), (CKA_MODULUS_BITS, V::U(2048)), (CKA_WRAP, V::B(true))],
            &vec![(CKA_TOKEN, V::B(false)), (CKA_UNWRAP, V::B(true)), (CKA_SENSITIVE, V::B(false))],
        )
        .unwrap();
    assert_eq!(t.wrap(&oaep, open_public, s), Err(CKR_KEY_NOT_WRAPPABLE));
}

fn rsa_wrapping_pair(t: &Token) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    t.generate_pair(
        &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &vec![(CKA_TOKEN, V::B(false)), (CKA_MODULUS_BITS, V::U(2048)), (CKA_WRAP, V::B(true))],
        &vec![(CKA_TOKEN, V::B(false)), (CKA_UNWRAP, V::B(true))],
    )
    .unwrap()
}

fn oaep_sha256() -> Mech {
    let p = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: std::ptr::null_mut(),
        ulSourceDataLen: 0,
    };
    Mech::with_struct(CKM_RSA_PKCS_OAEP, &p)
}

/// Family: RSA unwrap as decryption, and raw RSA signing as decryption. An RSA private key that
/// unwraps neither decrypts nor signs; PKCS #1 v1.5 (a padding oracle) does not unwrap.
#[test]
fn rsa_unwrapping_keys_do_not_decrypt() {
    let t = Token::new("atk-rsa");
    let s = target(&t, &[0x31; 16]);
    let (public, private) = rsa_wrapping_pair(&t);
    assert!(!flag(&t, private, CKA_DECRYPT) && !flag(&t, private, CKA_SIGN));
    let blob = t.wrap(&oaep_sha256(), public, s).unwrap();
    assert_eq!(t.decrypt(&oaep_sha256(), private, &blob), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    if !approved_mode() {
        // Raw RSA (m^d) is decryption under another name.
        assert_eq!(t.sign(&Mech::new(CKM_RSA_X_509), private, &blob), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    }
    assert_eq!(t.set(private, &vec![(CKA_SIGN, V::B(true))]), Err(CKR_TEMPLATE_INCONSISTENT));
    assert_eq!(t.set(private, &vec![(CKA_DECRYPT, V::B(true))]), Err(CKR_TEMPLATE_INCONSISTENT));
    // Unwrapped into a generic secret, the value stays inside.
    let generic =
        vec![(CKA_CLASS, V::U(CKO_SECRET_KEY)), (CKA_KEY_TYPE, V::U(CKK_GENERIC_SECRET)), (CKA_TOKEN, V::B(false))];
    let k = t.unwrap(&oaep_sha256(), private, &blob, &generic).unwrap();
    assert_eq!(t.value(k), Err(CKR_ATTRIBUTE_SENSITIVE));
    let mut readable = generic.clone();
    readable.extend([(CKA_SENSITIVE, V::B(false)), (CKA_EXTRACTABLE, V::B(true))]);
    assert_eq!(t.unwrap(&oaep_sha256(), private, &blob, &readable), Err(CKR_TEMPLATE_INCONSISTENT));
    // PKCS #1 v1.5 wrapping and unwrapping (Bleichenbacher's oracle) are refused.
    assert_eq!(t.wrap(&Mech::new(CKM_RSA_PKCS), public, s), Err(CKR_MECHANISM_INVALID));
    assert_eq!(t.unwrap(&Mech::new(CKM_RSA_PKCS), private, &blob, &generic), Err(CKR_MECHANISM_INVALID));
}

/// Family: unwrap as decryption through a key's own unwrap template. A key-encryption key made
/// with a `CKA_UNWRAP_TEMPLATE` asking for readable keys unwraps none: the template is imposed on
/// what the key unwraps, and what a guarding key unwraps is sensitive.
#[test]
fn an_unwrap_template_cannot_make_unwrapped_keys_readable() {
    let t = Token::new("atk-unwrap-template");
    let s = target(&t, &[0x3a; 16]);
    let w = generated_kek(&t);
    let blob = t.wrap(&kw(), w, s).unwrap();
    let open = encode_template(&vec![(CKA_SENSITIVE, V::B(false)), (CKA_EXTRACTABLE, V::B(true))]);
    let leaky = t
        .generate(
            &Mech::new(CKM_AES_KEY_GEN),
            &vec![
                (CKA_VALUE_LEN, V::U(32)),
                (CKA_WRAP, V::B(true)),
                (CKA_UNWRAP, V::B(true)),
                (CKA_UNWRAP_TEMPLATE, V::Bytes(open.bytes.clone())),
            ],
        )
        .unwrap();
    let blob2 = t.wrap(&kw(), leaky, s).unwrap();
    let plain = vec![(CKA_CLASS, V::U(CKO_SECRET_KEY)), (CKA_KEY_TYPE, V::U(CKK_AES)), (CKA_TOKEN, V::B(false))];
    assert_eq!(t.unwrap(&kw(), leaky, &blob2, &plain), Err(CKR_TEMPLATE_INCONSISTENT));
    // Nor can the template be added to the first key afterwards.
    assert_eq!(t.set(w, &vec![(CKA_UNWRAP_TEMPLATE, V::Bytes(open.bytes.clone()))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    assert_eq!(t.value(t.unwrap(&kw(), w, &blob, &plain).unwrap()), Err(CKR_ATTRIBUTE_SENSITIVE));
}

/// Family: unauthenticated wrapping formats. ECB and CBC let a block of a wrapped key be unwrapped
/// as a key of its own (a 2^56 search for a DES-sized piece), CBC_PAD unwrapping answers as a
/// padding oracle that decrypts anything under the key, GCM with a repeated IV gives away the
/// key stream. Only RFC 3394/5649 key wrap and RSA-OAEP wrap and unwrap; GCM unwraps, but only
/// what its tag authenticates (and a wrap-only key makes no GCM text to forge one from).
#[test]
fn only_authenticated_mechanisms_wrap_and_unwrap() {
    let t = Token::new("atk-formats");
    let s = target(&t, &[0x55; 32]);
    let w = generated_kek(&t);
    let iv = [0u8; 16];
    for m in [
        Mech::new(CKM_AES_ECB),
        Mech::with(CKM_AES_CBC, &iv),
        Mech::with(CKM_AES_CBC_PAD, &iv),
        gcm(&[1; 12], b"", 128),
    ] {
        assert_eq!(t.wrap(&m, w, s), Err(CKR_MECHANISM_INVALID));
        let refusal = if m.ty == CKM_AES_GCM { CKR_WRAPPED_KEY_INVALID } else { CKR_MECHANISM_INVALID };
        assert_eq!(t.unwrap(&m, w, &[0x11; 48], &unwrapped(CKK_GENERIC_SECRET, None)), Err(refusal));
    }
    // A key-wrap blob cut in pieces does not unwrap: RFC 3394 checks its integrity value.
    let blob = t.wrap(&kw(), w, s).unwrap();
    assert_eq!(t.unwrap(&kw(), w, &blob[..24], &unwrapped(CKK_AES, None)), Err(CKR_WRAPPED_KEY_INVALID));
    let kwp = Mech::new(CKM_AES_KEY_WRAP_KWP);
    assert!(t.wrap(&kwp, w, s).is_ok());
}

/// Family: key-type confusion on unwrap. A wrapped AES key unwrapped as a key of another type
/// stays as sensitive as it was, cannot be cut to a shorter key, and cannot wrap sensitive keys
/// (it was not generated here).
#[test]
fn unwrapping_as_another_type_gains_nothing() {
    let t = Token::new("atk-confusion");
    let s = target(&t, &[0x66; 32]);
    let w = generated_kek(&t);
    let blob = t.wrap(&kw(), w, s).unwrap();
    if !approved_mode() {
        let as_des = vec![(CKA_CLASS, V::U(CKO_SECRET_KEY)), (CKA_KEY_TYPE, V::U(CKK_DES)), (CKA_TOKEN, V::B(false))];
        assert_eq!(t.unwrap(&kw(), w, &blob, &as_des), Err(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    let short = unwrapped(CKK_GENERIC_SECRET, Some(8));
    assert_eq!(t.unwrap(&kw(), w, &blob, &short), Err(CKR_TEMPLATE_INCONSISTENT));
    // As a generic secret (an HMAC key) it is still sensitive.
    let g = t.unwrap(&kw(), w, &blob, &unwrapped(CKK_GENERIC_SECRET, None)).unwrap();
    assert_eq!(t.value(g), Err(CKR_ATTRIBUTE_SENSITIVE));
    // As a wrapping key it cannot wrap a sensitive key out: it was not generated here.
    let as_kek = vec![
        (CKA_CLASS, V::U(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, V::U(CKK_AES)),
        (CKA_TOKEN, V::B(false)),
        (CKA_WRAP, V::B(true)),
        (CKA_UNWRAP, V::B(true)),
    ];
    let k2 = t.unwrap(&kw(), w, &blob, &as_kek).unwrap();
    let other = target(&t, &[0x67; 16]);
    assert_eq!(t.wrap(&kw(), k2, other), Err(CKR_KEY_NOT_WRAPPABLE));
    // Unwrapping with no template at all is refused (the class is not known), not a key with
    // every usage.
    assert_eq!(t.unwrap(&kw(), w, &blob, &vec![]), Err(CKR_TEMPLATE_INCOMPLETE));
}

/// Family: sticky attributes lifted by a copy, and trust escalated by the user. A copy may make
/// nothing more permissive than its original; a copy of an object that cannot be modified takes
/// no template that changes it; a user's copy of a trusted key is not trusted.
#[test]
fn copies_never_loosen_protection() {
    let t = Token::new("atk-copy");
    // The Security Officer makes a trusted, non-modifiable key-encryption key on the token.
    t.relogin(CKU_SO).unwrap();
    let trusted = t
        .generate(
            &Mech::new(CKM_AES_KEY_GEN),
            &vec![
                (CKA_VALUE_LEN, V::U(32)),
                (CKA_TOKEN, V::B(true)),
                (CKA_PRIVATE, V::B(false)),
                (CKA_MODIFIABLE, V::B(false)),
                (CKA_TRUSTED, V::B(true)),
                (CKA_WRAP, V::B(true)),
                (CKA_LABEL, V::Bytes(b"trusted kek".to_vec())),
            ],
        )
        .unwrap();
    t.relogin(CKU_USER).unwrap();
    let found = t.find(&vec![(CKA_LABEL, V::Bytes(b"trusted kek".to_vec()))]).unwrap();
    assert_eq!(found, [trusted]);
    // The copy of step 1, and every other change to the non-modifiable key's copy.
    for change in [
        (CKA_MODIFIABLE, V::B(true)),
        (CKA_DECRYPT, V::B(true)),
        (CKA_TOKEN, V::B(false)),
        (CKA_PRIVATE, V::B(true)),
        (CKA_DESTROYABLE, V::B(false)),
        (CKA_LABEL, V::Bytes(b"mine".to_vec())),
    ] {
        assert_eq!(t.copy(trusted, &vec![change.clone()]), Err(CKR_ATTRIBUTE_READ_ONLY), "copy with {:#x}", change.0);
    }
    // The same values again are no change.
    let copy = t.copy(trusted, &vec![(CKA_MODIFIABLE, V::B(false))]).unwrap();
    assert!(!flag(&t, copy, CKA_TRUSTED), "the user's copy of a trusted key is not trusted");
    assert_eq!(t.set(copy, &vec![(CKA_DECRYPT, V::B(true))]), Err(CKR_ACTION_PROHIBITED));
    // Keys that ask for a trusted wrapping key: the trusted key wraps them, its copy does not.
    let mut tpl = secret(CKK_AES, &[0x21; 16]);
    tpl.extend([(CKA_WRAP_WITH_TRUSTED, V::B(true))]);
    let guarded = t.create(&tpl).unwrap();
    assert!(t.wrap(&kw(), trusted, guarded).is_ok());
    assert_eq!(t.wrap(&kw(), copy, guarded), Err(CKR_KEY_NOT_WRAPPABLE));
    // The user can neither make nor mark a trusted key.
    let mut mine = kek(CKK_AES, &[0x22; 16]);
    mine.push((CKA_TRUSTED, V::B(true)));
    assert_eq!(t.create(&mine), Err(CKR_ATTRIBUTE_READ_ONLY));
    let mine = t.kek(CKK_AES, &[0x22; 16]).unwrap();
    assert_eq!(t.set(mine, &vec![(CKA_TRUSTED, V::B(true))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    // Sticky attributes on a modifiable key's copy: only towards more protection.
    let s = target(&t, &[0x23; 16]);
    assert_eq!(t.copy(s, &vec![(CKA_SENSITIVE, V::B(false))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    let fixed = t.copy(s, &vec![(CKA_EXTRACTABLE, V::B(false))]).unwrap();
    assert_eq!(t.copy(fixed, &vec![(CKA_EXTRACTABLE, V::B(true))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    let private = t.copy(s, &vec![(CKA_PRIVATE, V::B(true))]).unwrap();
    assert_eq!(t.copy(private, &vec![(CKA_PRIVATE, V::B(false))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    let undeletable = t.copy(s, &vec![(CKA_DESTROYABLE, V::B(false))]).unwrap();
    assert_eq!(t.copy(undeletable, &vec![(CKA_DESTROYABLE, V::B(true))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    let frozen = t.copy(s, &vec![(CKA_MODIFIABLE, V::B(false))]).unwrap();
    assert_eq!(t.copy(frozen, &vec![(CKA_MODIFIABLE, V::B(true))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    let wwt = t.copy(guarded, &vec![]).unwrap();
    assert_eq!(t.copy(wwt, &vec![(CKA_WRAP_WITH_TRUSTED, V::B(false))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    // A trusted key the user can read (the SO made it extractable and not sensitive) wraps no
    // sensitive key: its value would decrypt the wrapped key outside.
    t.relogin(CKU_SO).unwrap();
    let mut readable_kek = kek(CKK_AES, &[0x24; 16]);
    readable_kek.extend([(CKA_TRUSTED, V::B(true)), (CKA_PRIVATE, V::B(false))]);
    let readable_trusted = t.create(&readable_kek).unwrap();
    t.relogin(CKU_USER).unwrap();
    assert_eq!(t.value(readable_trusted).unwrap(), [0x24; 16]);
    assert_eq!(t.wrap(&kw(), readable_trusted, target(&t, &[0x25; 16])), Err(CKR_KEY_NOT_WRAPPABLE));
    // Clean up the token key (it is not destroyable by a template of the user's, but is by a call).
    t.relogin(CKU_SO).unwrap();
    t.destroy(trusted);
}

/// Family: restrictions removed after creation. `CKA_ALLOWED_MECHANISMS`, the wrap, unwrap and
/// derive templates and `CKA_ALWAYS_AUTHENTICATE` are fixed once the key exists.
#[test]
fn restrictions_cannot_be_removed() {
    let t = Token::new("atk-restrict");
    let mut tpl = secret(CKK_AES, &[0x44; 16]);
    tpl.push((CKA_ALLOWED_MECHANISMS, V::Bytes(CKM_AES_CBC_PAD.to_ne_bytes().to_vec())));
    let k = t.create(&tpl).unwrap();
    let ecb = CKM_AES_ECB.to_ne_bytes().to_vec();
    assert_eq!(t.set(k, &vec![(CKA_ALLOWED_MECHANISMS, V::Bytes(ecb.clone()))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    assert_eq!(t.encrypt(&Mech::new(CKM_AES_ECB), k, &[0; 16]), Err(CKR_MECHANISM_INVALID));
    let w = generated_kek(&t);
    for a in [CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE] {
        assert_eq!(t.set(w, &vec![(a, V::Bytes(vec![]))]), Err(CKR_ATTRIBUTE_READ_ONLY), "{a:#x}");
    }
    // A key that asks for a login at each use keeps asking.
    let (_, private) = t
        .generate_pair(
            &Mech::with(CKM_EC_KEY_PAIR_GEN, &[]),
            &vec![(CKA_TOKEN, V::B(false)), (CKA_EC_PARAMS, V::Bytes(P256.to_vec()))],
            &vec![(CKA_TOKEN, V::B(false)), (CKA_ALWAYS_AUTHENTICATE, V::B(true))],
        )
        .unwrap();
    assert_eq!(t.set(private, &vec![(CKA_ALWAYS_AUTHENTICATE, V::B(false))]), Err(CKR_ATTRIBUTE_READ_ONLY));
    let ecdsa = Mech::new(CKM_ECDSA);
    assert_eq!(t.sign(&ecdsa, private, &[7; 32]), Err(CKR_USER_NOT_LOGGED_IN));
}

/// Family: search as an oracle. A search never matches on a value the caller may not read, so a
/// right guess of a sensitive key's value finds as much as a wrong one; the same holds for the
/// wrap template of a key-encryption key.
#[test]
fn search_and_wrap_templates_are_no_oracle() {
    let t = Token::new("atk-oracle");
    let value = vec![0x5c; 16];
    let s = target(&t, &value);
    let right = vec![(CKA_CLASS, V::U(CKO_SECRET_KEY)), (CKA_VALUE, V::Bytes(value.clone()))];
    let wrong = vec![(CKA_CLASS, V::U(CKO_SECRET_KEY)), (CKA_VALUE, V::Bytes(vec![0x5d; 16]))];
    assert_eq!(t.find(&right).unwrap(), Vec::<CK_OBJECT_HANDLE>::new());
    assert_eq!(t.find(&wrong).unwrap(), Vec::<CK_OBJECT_HANDLE>::new());
    // Unextractable but not sensitive: not readable either.
    let mut tpl = secret(CKK_AES, &[0x5e; 16]);
    tpl.retain(|(a, _)| *a != CKA_EXTRACTABLE);
    tpl.push((CKA_EXTRACTABLE, V::B(false)));
    t.create(&tpl).unwrap();
    assert_eq!(t.find(&vec![(CKA_VALUE, V::Bytes(vec![0x5e; 16]))]).unwrap(), Vec::<CK_OBJECT_HANDLE>::new());
    // A readable key is found by its value, as the specification has it.
    let open = t.key(CKK_AES, &[0x5f; 16]).unwrap();
    assert_eq!(t.find(&vec![(CKA_VALUE, V::Bytes(vec![0x5f; 16]))]).unwrap(), [open]);
    // RSA private components: found while readable, not once the key is sensitive.
    let (_, private) = t
        .generate_pair(
            &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &vec![(CKA_TOKEN, V::B(false)), (CKA_MODULUS_BITS, V::U(2048))],
            &vec![(CKA_TOKEN, V::B(false)), (CKA_SENSITIVE, V::B(false)), (CKA_EXTRACTABLE, V::B(true))],
        )
        .unwrap();
    let d = t.attr(private, CKA_PRIVATE_EXPONENT).unwrap();
    let by_d = vec![(CKA_PRIVATE_EXPONENT, V::Bytes(d))];
    assert_eq!(t.find(&by_d).unwrap(), [private]);
    t.set(private, &vec![(CKA_SENSITIVE, V::B(true))]).unwrap();
    assert_eq!(t.find(&by_d).unwrap(), Vec::<CK_OBJECT_HANDLE>::new());
    // A wrap template naming the value: wrapping is refused whether the guess is right or not.
    let guess = |v: &[u8]| {
        let inner = vec![(CKA_VALUE, V::Bytes(v.to_vec()))];
        let encoded = encode_template(&inner);
        let w = t
            .generate(
                &Mech::new(CKM_AES_KEY_GEN),
                &vec![
                    (CKA_VALUE_LEN, V::U(16)),
                    (CKA_WRAP, V::B(true)),
                    (CKA_WRAP_TEMPLATE, V::Bytes(encoded.bytes.clone())),
                ],
            )
            .unwrap();
        drop(encoded);
        t.wrap(&kw(), w, s)
    };
    assert_eq!(guess(&value), Err(CKR_KEY_NOT_WRAPPABLE));
    assert_eq!(guess(&[0; 16]), Err(CKR_KEY_NOT_WRAPPABLE));
}

/// A nested template as `CK_ATTRIBUTE` array bytes, with the values it points at kept alive.
struct Encoded {
    bytes: Vec<u8>,
    _values: Vec<Vec<u8>>,
}

fn encode_template(tpl: &Tpl) -> Encoded {
    let values: Vec<Vec<u8>> = tpl.iter().map(|(_, v)| v.bytes()).collect();
    let attrs: Vec<CK_ATTRIBUTE> = tpl
        .iter()
        .zip(values.iter())
        .map(|((t, _), v)| CK_ATTRIBUTE { type_: *t, pValue: v.as_ptr() as *mut _, ulValueLen: v.len() as CK_ULONG })
        .collect();
    let n = std::mem::size_of_val(attrs.as_slice());
    // SAFETY (test): `attrs` is a live array of plain C structs of `n` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(attrs.as_ptr() as *const u8, n) }.to_vec();
    Encoded { bytes, _values: values }
}

/// Family: derivation. Data derived from a key equals a key derived from it with the same
/// parameters, so only a key restricted to deriving data derives data; a key's derive template
/// binds what is derived from it.
#[test]
fn derivation_reveals_no_derived_key() {
    let t = Token::new("atk-derive");
    let base = t.key(CKK_GENERIC_SECRET, &[0x61; 32]).unwrap();
    let params = hkdf(CKM_HKDF_DATA, true, true, CKM_SHA256, None, b"info");
    let data = vec![(CKA_CLASS, V::U(CKO_DATA)), (CKA_TOKEN, V::B(false)), (CKA_VALUE_LEN, V::U(32))];
    // (The approved mode has no CKM_HKDF_DATA at all.)
    let refusal = if approved_mode() { CKR_MECHANISM_INVALID } else { CKR_KEY_FUNCTION_NOT_PERMITTED };
    assert_eq!(t.derive(&params, base, &data), Err(refusal));
    // The key derived with the same parameters is sensitive; no data object shows its value.
    let key_params = hkdf(CKM_HKDF_DERIVE, true, true, CKM_SHA256, None, b"info");
    let mut sensitive = made(CKK_GENERIC_SECRET, Some(32));
    sensitive.retain(|(a, _)| *a != CKA_SENSITIVE);
    sensitive.push((CKA_SENSITIVE, V::B(true)));
    let derived = t.derive(&key_params, base, &sensitive).unwrap();
    assert_eq!(t.value(derived), Err(CKR_ATTRIBUTE_SENSITIVE));
    // A key restricted to data (its derive template fixes the class) derives data, and no key.
    let only_data = encode_template(&vec![(CKA_CLASS, V::U(CKO_DATA))]);
    let mut tpl = secret(CKK_GENERIC_SECRET, &[0x62; 32]);
    tpl.push((CKA_DERIVE_TEMPLATE, V::Bytes(only_data.bytes.clone())));
    let data_base = t.create(&tpl).unwrap();
    if let Some(h) = allowed(t.derive(&params, data_base, &data), CKR_MECHANISM_INVALID, "HKDF_DATA") {
        assert_eq!(t.value(h).unwrap().len(), 32);
    }
    assert_eq!(t.derive(&key_params, data_base, &sensitive), Err(CKR_TEMPLATE_INCONSISTENT));
    // A derive template binds the derived key's attributes.
    let keep = encode_template(&vec![(CKA_SENSITIVE, V::B(true)), (CKA_EXTRACTABLE, V::B(false))]);
    let mut tpl = secret(CKK_GENERIC_SECRET, &[0x63; 32]);
    tpl.push((CKA_DERIVE_TEMPLATE, V::Bytes(keep.bytes.clone())));
    let bound = t.create(&tpl).unwrap();
    assert_eq!(t.derive(&key_params, bound, &made(CKK_GENERIC_SECRET, Some(32))), Err(CKR_TEMPLATE_INCONSISTENT));
    let d = t
        .derive(
            &key_params,
            bound,
            &vec![
                (CKA_CLASS, V::U(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, V::U(CKK_GENERIC_SECRET)),
                (CKA_TOKEN, V::B(false)),
                (CKA_VALUE_LEN, V::U(32)),
            ],
        )
        .unwrap();
    assert!(flag(&t, d, CKA_SENSITIVE) && !flag(&t, d, CKA_EXTRACTABLE));
    // A derived key is not generated here: even derived from a key nobody knows, it cannot wrap
    // sensitive keys (ECDH with a peer key the caller chose gives a value the caller knows).
    let dk = t
        .derive(
            &key_params,
            base,
            &vec![
                (CKA_CLASS, V::U(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, V::U(CKK_AES)),
                (CKA_TOKEN, V::B(false)),
                (CKA_VALUE_LEN, V::U(32)),
                (CKA_WRAP, V::B(true)),
            ],
        )
        .unwrap();
    assert_eq!(t.wrap(&kw(), dk, target(&t, &[0x64; 16])), Err(CKR_KEY_NOT_WRAPPABLE));
    // The salt key of HKDF keeps its own restriction to some mechanisms.
    let mut tpl = secret(CKK_GENERIC_SECRET, &[0x65; 32]);
    tpl.push((CKA_ALLOWED_MECHANISMS, V::Bytes(CKM_SHA256_HMAC.to_ne_bytes().to_vec())));
    let salt_key = t.create(&tpl).unwrap();
    let p = CK_HKDF_PARAMS {
        bExtract: 1,
        bExpand: 1,
        prfHashMechanism: CKM_SHA256,
        ulSaltType: CKF_HKDF_SALT_KEY,
        pSalt: std::ptr::null_mut(),
        ulSaltLen: 0,
        hSaltKey: salt_key,
        pInfo: std::ptr::null_mut(),
        ulInfoLen: 0,
    };
    let salted = Mech::with_struct(CKM_HKDF_DERIVE, &p);
    assert_eq!(t.derive(&salted, base, &made(CKK_GENERIC_SECRET, Some(32))), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
}

/// Family: digest of a key as a test of guesses. `C_DigestKey` of a key whose value the caller
/// may not read is refused in the approved mode, and in either mode for keys under 112 bits.
#[test]
fn digest_key_is_no_oracle() {
    let t = Token::new("atk-digest");
    let mut tpl = secret(CKK_GENERIC_SECRET, &[0x71; 8]);
    tpl.retain(|(a, _)| *a != CKA_SENSITIVE);
    tpl.push((CKA_SENSITIVE, V::B(true)));
    let short = t.create(&tpl).unwrap();
    assert_eq!(t.digest_key(short), Err(CKR_KEY_INDIGESTIBLE));
    let long = target(&t, &[0x72; 32]);
    let r = t.digest_key(long);
    if approved_mode() {
        assert_eq!(r, Err(CKR_KEY_INDIGESTIBLE));
    } else {
        assert_eq!(r, Ok(()));
    }
    // A readable key's value is no secret: digested in either mode.
    let open = t.key(CKK_GENERIC_SECRET, &[0x73; 8]).unwrap();
    assert_eq!(t.digest_key(open), Ok(()));
}

/// Keys generated under the legacy rules with both kinds of usage (or stored so by earlier builds)
/// are used for neither once the legacy rules are off.
#[test]
fn legacy_keys_with_both_usages_are_refused_without_the_legacy_rules() {
    let store = tempfile::tempdir().unwrap();
    let at = format!("directories.tokendir = {}", store.path().display());
    let t = Token::with_conf("atk-legacy", &format!("{at}\nkeys.legacy_wrapping = allow"));
    let both = vec![
        (CKA_VALUE_LEN, V::U(16)),
        (CKA_TOKEN, V::B(true)),
        (CKA_ENCRYPT, V::B(true)),
        (CKA_WRAP, V::B(true)),
        (CKA_LABEL, V::Bytes(b"both".to_vec())),
    ];
    let r = t.generate(&Mech::new(CKM_AES_KEY_GEN), &both);
    if approved_mode() {
        assert_eq!(r, Err(CKR_TEMPLATE_INCONSISTENT), "the approved mode ignores the legacy rules");
        return;
    }
    let both = r.unwrap();
    assert!(t.encrypt(&Mech::new(CKM_AES_ECB), both, &[0; 16]).is_ok());
    drop(t);
    // The same store opened without the legacy rules.
    let t = Token::reopen("atk-legacy", &at);
    let found = t.find(&vec![(CKA_LABEL, V::Bytes(b"both".to_vec()))]).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(t.encrypt(&Mech::new(CKM_AES_ECB), found[0], &[0; 16]), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    let other = t.key(CKK_AES, &[1; 16]).unwrap();
    assert_eq!(t.wrap(&kw(), found[0], other), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
}

/// Keys whose value is known outside the token (made from a value, unwrapped by a key the caller
/// knows, derived) keep the specification's freedom: they may wrap and decrypt, unwrap readable
/// keys and change their usages, because they never wrap a sensitive key and what they wrap is
/// readable anyway. This is what applications that share a key-encryption key expect
/// (`pkcs11-tool --write-object --usage-wrap`, `softhsm2-util --import --aes`).
#[test]
fn keys_whose_value_is_known_keep_their_freedom() {
    let t = Token::new("atk-known");
    let mut both = secret(CKK_AES, &[0xa1; 16]);
    both.extend([(CKA_WRAP, V::B(true)), (CKA_UNWRAP, V::B(true))]);
    let k = t.create(&both).unwrap();
    let open = t.key(CKK_AES, &[0xa2; 16]).unwrap();
    let blob = t.wrap(&kw(), k, open).unwrap();
    let readable = t.unwrap(&kw(), k, &blob, &made(CKK_AES, None)).unwrap();
    assert_eq!(t.value(readable).unwrap(), [0xa2; 16]);
    assert!(t.set(k, &vec![(CKA_WRAP, V::B(false))]).is_ok());
    assert_eq!(t.wrap(&kw(), t.create(&both).unwrap(), target(&t, &[0xa3; 16])), Err(CKR_KEY_NOT_WRAPPABLE));
}

/// Family: wrap/unwrap round trips that change attributes. A key taken out and back in comes back
/// sensitive and no longer counted as generated here: it is no more readable, and no easier to
/// take out, than before; a key that asked for a trusted wrapping key still goes out only under
/// keys nobody outside knows.
#[test]
fn round_trips_do_not_loosen_a_key() {
    let t = Token::new("atk-roundtrip");
    let w = generated_kek(&t);
    // A generated, sensitive, extractable key that may only be wrapped by a trusted key.
    let s = t
        .generate(
            &Mech::new(CKM_AES_KEY_GEN),
            &vec![
                (CKA_VALUE_LEN, V::U(32)),
                (CKA_SENSITIVE, V::B(true)),
                (CKA_EXTRACTABLE, V::B(true)),
                (CKA_WRAP_WITH_TRUSTED, V::B(true)),
            ],
        )
        .unwrap();
    assert_eq!(t.wrap(&kw(), w, s), Err(CKR_KEY_NOT_WRAPPABLE), "w is not trusted");
    // A plain sensitive key goes out under w and comes back asking to be extractable and open.
    let plain = target(&t, &[0x91; 32]);
    let blob = t.wrap(&kw(), w, plain).unwrap();
    let mut open = unwrapped(CKK_AES, None);
    open.push((CKA_WRAP_WITH_TRUSTED, V::B(false)));
    let back = t.unwrap(&kw(), w, &blob, &open).unwrap();
    assert!(flag(&t, back, CKA_SENSITIVE) && !flag(&t, back, CKA_ALWAYS_SENSITIVE) && !flag(&t, back, CKA_LOCAL));
    assert_eq!(t.value(back), Err(CKR_ATTRIBUTE_SENSITIVE));
    // Out again only under a key nobody outside knows.
    let known = t.kek(CKK_AES, &[0x92; 16]).unwrap();
    assert_eq!(t.wrap(&kw(), known, back), Err(CKR_KEY_NOT_WRAPPABLE));
    assert!(t.wrap(&kw(), w, back).is_ok());
}

/// Family: keys that outlive their session. A user who makes a sensitive key as a session object
/// (whatever the route: created, copied, generated, a generated pair, derived, unwrapped) cannot
/// keep using it from another session once its own session is closed: every session object dies
/// with its session (PKCS #11 §4.4), and the store forgets none of them.
#[test]
fn session_keys_die_with_their_session() {
    let mut t = Token::new("atk-session-life");
    let main = t.h;
    let kek = generated_kek(&t);
    let blob = t.wrap(&kw(), kek, target(&t, &[0x71; 16])).unwrap();
    // Everything below is made in a second session of the same application.
    t.h = t.session();
    let created = target(&t, &[0x72; 16]);
    let copied = t.copy(created, &vec![]).unwrap();
    let generated = t.generate(&Mech::new(CKM_AES_KEY_GEN), &vec![(CKA_VALUE_LEN, V::U(16))]).unwrap();
    let (public, private) = rsa_wrapping_pair(&t);
    let base = t.key(CKK_GENERIC_SECRET, &[0x73; 32]).unwrap();
    let derived = t.derive(&hkdf(CKM_HKDF_DERIVE, true, true, CKM_SHA256, None, b"x"), base, &made(CKK_AES, Some(16)));
    let unwrapped = t.unwrap(&kw(), kek, &blob, &unwrapped(CKK_AES, None)).unwrap();
    let made_there = [created, copied, generated, public, private, base, derived.unwrap(), unwrapped];
    let second = std::mem::replace(&mut t.h, main);
    for h in made_there {
        assert!(t.attr(h, CKA_CLASS).is_ok(), "object {h} is usable from the first session while its own is open");
    }
    assert_eq!(unsafe { t.f.C_CloseSession(second) }, CKR_OK);
    for h in made_there {
        assert_eq!(t.attr(h, CKA_CLASS), Err(CKR_OBJECT_HANDLE_INVALID), "object {h} outlived its session");
    }
    assert_eq!(t.encrypt(&Mech::new(CKM_AES_ECB), generated, &[0; 16]), Err(CKR_KEY_HANDLE_INVALID));
    // The first session's own key is untouched.
    assert!(t.wrap(&kw(), kek, target(&t, &[0x74; 16])).is_ok());
}

/// Family: the ECDH shared secret Z (`CKD_NULL`). A user tries every route by which Z, or a
/// value computed from it that is not an approved KDF's output, could reach them: a readable
/// template, attributes loosened afterwards or on a copy, wrapping, digesting, use as a MAC key,
/// HKDF's pseudorandom key alone (extraction without expansion), expansion alone, Z as a salt
/// key, and HKDF output as a data object through a `CKA_DERIVE_TEMPLATE`. The approved mode
/// refuses each; the other mode allows what PKCS #11 allows there and flags it non-approved.
#[test]
fn the_ecdh_shared_secret_leaves_by_no_route() {
    let t = Token::new("atk-ecdh");
    let approved = approved_mode();
    let pair = || {
        let public = vec![(CKA_EC_PARAMS, V::Bytes(P256.to_vec())), (CKA_TOKEN, V::B(false))];
        let private = vec![(CKA_DERIVE, V::B(true)), (CKA_TOKEN, V::B(false))];
        let (p, v) = t.generate_pair(&Mech::new(CKM_EC_KEY_PAIR_GEN), &public, &private).unwrap();
        (v, t.attr(p, CKA_EC_POINT).unwrap())
    };
    let ((a, _), (_, b_point)) = (pair(), pair());
    let params = CK_ECDH1_DERIVE_PARAMS {
        kdf: CKD_NULL,
        ulSharedDataLen: 0,
        pSharedData: std::ptr::null_mut(),
        ulPublicDataLen: b_point.len() as _,
        pPublicData: b_point.as_ptr() as *mut _,
    };
    let ecdh = Mech::with_struct(CKM_ECDH1_DERIVE, &params);
    // Where the approved mode refuses with `refusal`, the other mode runs it, not approved.
    let refused_or_flagged = |r: R<CK_OBJECT_HANDLE>, refusal: CK_RV, what: &str| {
        if approved {
            assert_eq!(r, Err(refusal), "{what}: the approved mode must refuse it");
        } else {
            assert!(r.is_ok(), "{what}: {r:?}");
            assert!(!t.approved(t.h), "{what}: must be flagged non-approved");
        }
    };
    let readable = vec![
        (CKA_CLASS, V::U(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, V::U(CKK_GENERIC_SECRET)),
        (CKA_TOKEN, V::B(false)),
        (CKA_SENSITIVE, V::B(false)),
        (CKA_EXTRACTABLE, V::B(true)),
    ];
    refused_or_flagged(t.derive(&ecdh, a, &readable), CKR_TEMPLATE_INCONSISTENT, "Z in a readable key");

    // Z kept inside: sensitive, not extractable, derive only (what the approved mode makes of a
    // template that leaves these out; asked for explicitly so both modes make the same key).
    let mut inside = vec![
        (CKA_CLASS, V::U(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, V::U(CKK_GENERIC_SECRET)),
        (CKA_TOKEN, V::B(false)),
        (CKA_SENSITIVE, V::B(true)),
        (CKA_EXTRACTABLE, V::B(false)),
        (CKA_MODIFIABLE, V::B(false)),
        (CKA_DERIVE, V::B(true)),
    ];
    inside.extend([CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP].map(|a| (a, V::B(false))));
    let z = t.derive(&ecdh, a, &inside).expect("Z kept inside");
    assert!(t.approved(t.h));
    assert_eq!(t.value(z), Err(CKR_ATTRIBUTE_SENSITIVE));
    for (a, v) in [(CKA_SENSITIVE, false), (CKA_EXTRACTABLE, true), (CKA_SIGN, true)] {
        assert!(t.set(z, &vec![(a, V::B(v))]).is_err(), "C_SetAttributeValue {a:#x} on Z");
        assert!(t.copy(z, &vec![(a, V::B(v))]).is_err(), "C_CopyObject {a:#x} of Z");
    }
    let kek = generated_kek(&t);
    assert_eq!(t.wrap(&kw(), kek, z), Err(CKR_KEY_UNEXTRACTABLE), "wrapping Z");
    // C_DigestKey of a sensitive key: refused in the approved mode; the other mode digests long
    // keys (`digest_key_is_no_oracle`), and a digest of Z is flagged.
    if approved {
        assert_eq!(t.digest_key(z), Err(CKR_KEY_INDIGESTIBLE), "digesting Z");
    } else {
        assert_eq!(t.digest_key(z), Ok(()));
        assert!(!t.approved(t.h), "a digest of Z must be flagged non-approved");
    }
    assert_eq!(t.sign(&Mech::new(CKM_SHA256_HMAC), z, b"m"), Err(CKR_KEY_FUNCTION_NOT_PERMITTED), "Z as a MAC key");

    // HKDF over Z: the whole two-step derivation only, Z as its input.
    let out = || made(CKK_GENERIC_SECRET, Some(32));
    let extract_only = hkdf(CKM_HKDF_DERIVE, true, false, CKM_SHA256, Some(b"salt"), b"");
    refused_or_flagged(t.derive(&extract_only, z, &out()), CKR_MECHANISM_PARAM_INVALID, "HKDF's PRK of Z");
    let expand_only = hkdf(CKM_HKDF_DERIVE, false, true, CKM_SHA256, None, b"info");
    refused_or_flagged(t.derive(&expand_only, z, &out()), CKR_MECHANISM_PARAM_INVALID, "HKDF expansion of Z");
    let other = t.key(CKK_GENERIC_SECRET, &[0x44; 32]).unwrap();
    let p = CK_HKDF_PARAMS {
        bExtract: 1,
        bExpand: 1,
        prfHashMechanism: CKM_SHA256,
        ulSaltType: CKF_HKDF_SALT_KEY,
        pSalt: std::ptr::null_mut(),
        ulSaltLen: 0,
        hSaltKey: z,
        pInfo: std::ptr::null_mut(),
        ulInfoLen: 0,
    };
    let z_as_salt = Mech::with_struct(CKM_HKDF_DERIVE, &p);
    refused_or_flagged(t.derive(&z_as_salt, other, &out()), CKR_MECHANISM_PARAM_INVALID, "Z as a salt key");
    let whole = hkdf(CKM_HKDF_DERIVE, true, true, CKM_SHA256, Some(b"salt"), b"info");
    assert!(t.derive(&whole, z, &out()).is_ok(), "HKDF extract-and-expand over Z");
    assert!(t.approved(t.h), "HKDF extract-and-expand over Z is the approved route");

    // HKDF output over Z as a data object, through a Z restricted to deriving data.
    let only_data = encode_template(&vec![(CKA_CLASS, V::U(CKO_DATA))]);
    let mut data_only = inside.clone();
    data_only.push((CKA_DERIVE_TEMPLATE, V::Bytes(only_data.bytes.clone())));
    let zd = t.derive(&ecdh, a, &data_only).expect("Z restricted to deriving data");
    let data = vec![(CKA_CLASS, V::U(CKO_DATA)), (CKA_TOKEN, V::B(false)), (CKA_VALUE_LEN, V::U(32))];
    refused_or_flagged(t.derive(&whole, zd, &data), CKR_TEMPLATE_INCONSISTENT, "HKDF output over Z as data");
}

/// Family: one template's rules lent to another. Keys the token makes start from a per-thread
/// prototype of their template (the attributes a template settles, kept without the material):
/// an application that alternates a readable template with a sensitive one, on the same thread
/// and in every order, through key generation and KEM encapsulation (decapsulation makes sensitive
/// keys only), gets each
/// key with its own template's rules: a sensitive key never reads or wraps out, whatever the key
/// made before it; a readable one is not marked sensitive; no two keys share a value.
#[test]
fn a_prototype_lends_no_template_s_rules_to_another() {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, KeyType, MlKemParameterSetType, ObjectClass};
    let t = Token::new("attack-prototype");
    let kek = generated_kek(&t);
    let rules = |token: bool, sensitive: bool| {
        vec![
            (CKA_VALUE_LEN, V::U(32)),
            (CKA_TOKEN, V::B(token)),
            (CKA_ENCRYPT, V::B(true)),
            (CKA_SENSITIVE, V::B(sensitive)),
            (CKA_EXTRACTABLE, V::B(!sensitive)),
        ]
    };
    let s = t.s();
    let (ek, dk) = s
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(MlKemParameterSetType::ML_KEM_768.into())],
            &[Attribute::Token(false)],
        )
        .expect("ML-KEM-768 key pair");
    let kem = |sensitive: bool| {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(false),
            Attribute::Encrypt(true),
            Attribute::Sensitive(sensitive),
            Attribute::Extractable(!sensitive),
        ]
    };
    let mut made: Vec<(String, CK_OBJECT_HANDLE, bool)> = Vec::new();
    for round in 0..3 {
        for (token, sensitive) in
            [(false, false), (false, true), (false, false), (true, true), (true, false), (false, true)]
        {
            let what = format!("round {round}: generated, token {token}, sensitive {sensitive}");
            let k = t.generate(&Mech::new(CKM_AES_KEY_GEN), &rules(token, sensitive)).unwrap();
            made.push((what, k, sensitive));
            // The same rules through the KEM, both directions, between generations.
            let (ct, enc) = s.encapsulate_key(&Mechanism::MlKem, ek, &kem(sensitive)).expect("encapsulate");
            made.push((format!("round {round}: encapsulated, sensitive {sensitive}"), enc.handle(), sensitive));
            // A decapsulated secret is always sensitive: a readable template is refused, before
            // and after a sensitive one made its prototype.
            let refused = s.decapsulate_key(&Mechanism::MlKem, dk, &kem(false), &ct);
            assert!(
                matches!(
                    refused,
                    Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::TemplateInconsistent, _))
                ),
                "round {round}: a readable decapsulated key: {refused:?}"
            );
            let dec = s.decapsulate_key(&Mechanism::MlKem, dk, &kem(true), &ct).expect("decapsulate");
            made.push((format!("round {round}: decapsulated"), dec.handle(), true));
        }
    }
    let mut values = Vec::new();
    for (what, k, sensitive) in &made {
        assert_eq!(flag(&t, *k, CKA_SENSITIVE), *sensitive, "{what}: CKA_SENSITIVE");
        assert_eq!(flag(&t, *k, CKA_EXTRACTABLE), !*sensitive, "{what}: CKA_EXTRACTABLE");
        // A generated key's history is its own: always sensitive and never extractable exactly
        // when made so (a KEM key's also follows the key pair's, checked in tests/pqc_kem.rs).
        if what.contains("generated") {
            assert_eq!(flag(&t, *k, CKA_ALWAYS_SENSITIVE), *sensitive, "{what}: CKA_ALWAYS_SENSITIVE");
            assert_eq!(flag(&t, *k, CKA_NEVER_EXTRACTABLE), *sensitive, "{what}: CKA_NEVER_EXTRACTABLE");
        }
        if *sensitive {
            assert_eq!(t.value(*k).unwrap_err(), CKR_ATTRIBUTE_SENSITIVE, "{what}: its value");
            assert_eq!(t.wrap(&kw(), kek, *k).unwrap_err(), CKR_KEY_UNEXTRACTABLE, "{what}: wrapped");
            assert_eq!(t.set(*k, &vec![(CKA_SENSITIVE, V::B(false))]).unwrap_err(), CKR_ATTRIBUTE_READ_ONLY, "{what}");
        } else {
            let v = t.value(*k).unwrap_or_else(|rv| panic!("{what}: its value: {rv:#x}"));
            assert_eq!(v.len(), 32, "{what}");
            values.push(v);
        }
    }
    let n = values.len();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), n, "every readable key has a value of its own");
}

/// Family: a KEM key reached through another object or another session. ML-KEM objects keep
/// aws-lc's parsed keys (a generated pair's private object keeps the key its generation made, the
/// public one a key parsed from ek alone), and a length query of `C_EncapsulateKey` reads no
/// template. An application with a user login tries the routes those open: the public object
/// yields ek and nothing of dk, and copying it cannot make it a private key; a key destroyed in
/// one session, while another session has just decapsulated with it, is gone for that session
/// too (no decapsulation, no attribute, its handle never handed out again); a length query with
/// a destroyed key answers nothing.
#[test]
fn a_kem_key_is_reached_through_no_other_object_or_session() {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, MlKemParameterSetType};
    let t = Token::new("attack-kem-key");
    let s = t.s();
    let (ek, dk) = s
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[Attribute::Token(false), Attribute::ParameterSet(MlKemParameterSetType::ML_KEM_768.into())],
            &[Attribute::Token(false), Attribute::Sensitive(true), Attribute::Extractable(false)],
        )
        .expect("ML-KEM-768 key pair");
    let (ek, dk) = (ek.handle(), dk.handle());
    // The public object: ek (1,184 bytes), no seed, and no way to become a private key.
    assert_eq!(t.value(ek).unwrap().len(), 1184, "the public key's value is ek");
    assert_eq!(t.attr(ek, CKA_SEED).unwrap_err(), CKR_ATTRIBUTE_TYPE_INVALID, "a public key has no seed");
    for (a, v) in [(CKA_CLASS, V::U(CKO_PRIVATE_KEY)), (CKA_DECAPSULATE, V::B(true))] {
        let copied = t.copy(ek, &vec![(a, v)]);
        assert!(copied.is_err(), "a copy of the public key with {a:#x} changed: {copied:?}");
    }
    // The private object: neither dk nor its seed reads, wraps or turns readable.
    for a in [CKA_VALUE, CKA_SEED] {
        assert_eq!(t.attr(dk, a).unwrap_err(), CKR_ATTRIBUTE_SENSITIVE, "dk's {a:#x}");
    }
    assert_eq!(t.wrap(&kw(), generated_kek(&t), dk).unwrap_err(), CKR_KEY_UNEXTRACTABLE);
    // Another session of the same user decapsulates with dk; this one then destroys it.
    let other = t.session();
    use tessera_tests::raw::{attr, mech};
    let mut m = mech(CKM_ML_KEM);
    let (class, kt, len, no) = (CKO_SECRET_KEY, CKK_GENERIC_SECRET, 32 as CK_ULONG, CK_FALSE);
    let tpl = || [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &no)];
    let mut ct = vec![0u8; 1088];
    let mut ct_len = ct.len() as CK_ULONG;
    let mut made = 0;
    let rv = unsafe {
        t.f.C_EncapsulateKey(t.h, &mut m, ek, tpl().as_mut_ptr(), 4, ct.as_mut_ptr(), &mut ct_len, &mut made)
    };
    assert_eq!(rv, CKR_OK, "encapsulate");
    let decapsulate = |h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE| {
        let mut m = mech(CKM_ML_KEM);
        let mut out: CK_OBJECT_HANDLE = 0;
        let rv = unsafe {
            t.f.C_DecapsulateKey(h, &mut m, key, tpl().as_mut_ptr(), 4, ct.as_ptr() as *mut _, ct.len() as _, &mut out)
        };
        (rv, out)
    };
    let (rv, secret) = decapsulate(other, dk);
    assert_eq!(rv, CKR_OK, "decapsulate in the other session");
    assert_ne!(secret, 0);
    t.destroy(dk);
    let (rv, out) = decapsulate(other, dk);
    assert!(rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID, "a destroyed dk decapsulates: {rv:#x}");
    assert_eq!(out, 0, "no handle written");
    let (rv, _) = decapsulate(t.h, dk);
    assert!(rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID, "{rv:#x}");
    assert_eq!(t.attr(dk, CKA_CLASS).unwrap_err(), CKR_OBJECT_HANDLE_INVALID, "a destroyed dk has attributes");
    // Its handle is never handed out again, to a key of the user's making or the token's.
    for _ in 0..16 {
        let k = t.generate(&Mech::new(CKM_AES_KEY_GEN), &vec![(CKA_VALUE_LEN, V::U(32)), (CKA_TOKEN, V::B(false))]);
        assert_ne!(k.unwrap(), dk, "a new key took the destroyed key's handle");
        let (mut made, mut out, mut out_len) = (0, [0u8; 1088], 1088 as CK_ULONG);
        let rv = unsafe {
            t.f.C_EncapsulateKey(other, &mut m, ek, tpl().as_mut_ptr(), 4, out.as_mut_ptr(), &mut out_len, &mut made)
        };
        let k = made;
        assert_eq!(rv, CKR_OK);
        assert_ne!(k, dk, "an encapsulated key took the destroyed key's handle");
    }
    // A destroyed ek: the length query (no template read) still refuses it, and writes no length.
    t.destroy(ek);
    let mut qlen: CK_ULONG = 7;
    let mut made = 0;
    let rv = unsafe {
        t.f.C_EncapsulateKey(other, &mut m, ek, std::ptr::null_mut(), 0, std::ptr::null_mut(), &mut qlen, &mut made)
    };
    assert!(rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID, "a destroyed ek answers: {rv:#x}");
    assert_eq!((qlen, made), (7, 0), "nothing written");
}
