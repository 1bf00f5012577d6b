//! The approved-mode matrix through the library: what the approved mode must refuse, what it
//! must allow, and how the non-approved mode flags the same operations (session indicator and key
//! indicators). Each test picks its mode in the configuration file, whatever `TESSERA_MODE` the
//! suite runs under.

use cryptoki_sys::*;
use std::ffi::c_void;
use std::ptr::null_mut;
use tessera_tests::*;

/// The library in `mode`, with a token, a logged-in R/W session.
fn start(mode: &str) -> Token {
    Token::open(mode, "matrix")
}

fn rsa_pair(t: &Token) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let bits: CK_ULONG = 2048;
    let mut pubt = [attr(CKA_MODULUS_BITS, &bits), attr(CKA_VERIFY, &TRUE), attr(CKA_ENCRYPT, &TRUE)];
    let mut privt = [attr(CKA_SIGN, &TRUE), attr(CKA_DECRYPT, &TRUE)];
    let (mut p, mut v) = (0, 0);
    let mut m = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
    let rv = unsafe { t.f.C_GenerateKeyPair(t.h, &mut m, pubt.as_mut_ptr(), 3, privt.as_mut_ptr(), 2, &mut p, &mut v) };
    assert_eq!(rv, CKR_OK);
    (p, v)
}

fn secret_key(t: &Token, kt: CK_KEY_TYPE, value: &[u8]) -> CK_OBJECT_HANDLE {
    let class = CKO_SECRET_KEY;
    let mut tpl = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), bytes(CKA_VALUE, value)];
    let mut o = 0;
    assert_eq!(unsafe { t.f.C_CreateObject(t.h, tpl.as_mut_ptr(), 3, &mut o) }, CKR_OK);
    o
}

fn sign_init(t: &Token, m: CK_MECHANISM_TYPE, key: CK_OBJECT_HANDLE) -> CK_RV {
    let mut m = mech(m);
    let rv = unsafe { t.f.C_SignInit(t.h, &mut m, key) };
    if rv == CKR_OK {
        let mut data = *b"approved?";
        let mut out = [0u8; 1024];
        let mut len: CK_ULONG = 1024;
        assert_eq!(unsafe { t.f.C_Sign(t.h, data.as_mut_ptr(), 9, out.as_mut_ptr(), &mut len) }, CKR_OK);
    }
    rv
}

fn gcm_init(t: &Token, encrypt: bool, key: CK_OBJECT_HANDLE) -> CK_RV {
    let mut iv = [0u8; 12];
    let mut p = CK_GCM_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: 12,
        ulIvBits: 96,
        pAAD: null_mut(),
        ulAADLen: 0,
        ulTagBits: 128,
    };
    let mut m = CK_MECHANISM {
        mechanism: CKM_AES_GCM,
        pParameter: &mut p as *mut _ as *mut c_void,
        ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG,
    };
    unsafe {
        if encrypt {
            t.f.C_EncryptInit(t.h, &mut m, key)
        } else {
            t.f.C_DecryptInit(t.h, &mut m, key)
        }
    }
}

#[test]
fn approved_mode_refuses_what_is_not_approved() {
    let t = start("approved");
    let list = t.mechanisms();
    for absent in [CKM_RSA_X_509, CKM_EC_MONTGOMERY_KEY_PAIR_GEN, CKM_SHA3_224_HMAC_GENERAL, CKM_HKDF_DATA] {
        assert!(!list.contains(&absent), "{absent:#x} must not be listed in the approved mode");
    }
    for present in [
        CKM_SHA256,
        CKM_RSA_PKCS,
        CKM_SHA256_RSA_PKCS,
        CKM_RSA_PKCS_OAEP,
        CKM_ECDSA_SHA256,
        CKM_EDDSA,
        CKM_AES_GCM,
        CKM_AES_KEY_WRAP,
        CKM_SHA256_HMAC,
        CKM_HKDF_DERIVE,
    ] {
        assert!(list.contains(&present), "{present:#x} must be listed in the approved mode");
    }
    let mut info = CK_MECHANISM_INFO::default();
    assert_eq!(unsafe { t.f.C_GetMechanismInfo(t.slot, CKM_RSA_X_509, &mut info) }, CKR_MECHANISM_INVALID);
    // PKCS#1 v1.5 signs and verifies (over a DigestInfo); it neither encrypts nor wraps.
    assert_eq!(unsafe { t.f.C_GetMechanismInfo(t.slot, CKM_RSA_PKCS, &mut info) }, CKR_OK);
    assert_eq!(info.flags & (CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP), CKF_SIGN | CKF_VERIFY);

    let (public, private) = rsa_pair(&t);
    assert!(t.approved(t.h), "RSA-2048 generation is approved");
    assert!(t.key_approved(private) && t.key_approved(public));
    assert_eq!(sign_init(&t, CKM_SHA256_RSA_PKCS, private), CKR_OK);
    assert!(t.approved(t.h));
    assert_eq!(sign_init(&t, CKM_SHA1_RSA_PKCS, private), CKR_MECHANISM_INVALID, "SHA-1 signature generation");
    let mut m = mech(CKM_SHA1_RSA_PKCS);
    assert_eq!(unsafe { t.f.C_VerifyInit(t.h, &mut m, public) }, CKR_OK, "SHA-1 signature verification stays");
    assert!(t.approved(t.h));
    assert_eq!(sign_init(&t, CKM_RSA_X_509, private), CKR_MECHANISM_INVALID, "raw RSA");

    let aes = secret_key(&t, CKK_AES, &[3u8; 32]);
    assert_eq!(gcm_init(&t, true, aes), CKR_MECHANISM_PARAM_INVALID, "GCM encryption with an application IV");
    assert_eq!(gcm_init(&t, false, aes), CKR_OK, "GCM decryption");
    assert!(t.approved(t.h));

    let short = secret_key(&t, CKK_GENERIC_SECRET, &[9u8; 8]);
    assert!(!t.key_approved(short));
    let mut m = mech(CKM_SHA256_HMAC);
    assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut m, short) }, CKR_KEY_SIZE_RANGE, "64-bit HMAC key");

    let mut m = mech(CKM_EC_MONTGOMERY_KEY_PAIR_GEN);
    let mut pubt = [bytes(CKA_EC_PARAMS, X25519)];
    let (mut p, mut v) = (0, 0);
    let rv = unsafe { t.f.C_GenerateKeyPair(t.h, &mut m, pubt.as_mut_ptr(), 1, null_mut(), 0, &mut p, &mut v) };
    assert_eq!(rv, CKR_MECHANISM_INVALID, "X25519 is not approved");
}

#[test]
fn non_approved_mode_allows_and_flags() {
    let t = start("non-approved");
    let list = t.mechanisms();
    for present in [CKM_RSA_X_509, CKM_RSA_PKCS, CKM_EC_MONTGOMERY_KEY_PAIR_GEN, CKM_SHA256_RSA_PKCS] {
        assert!(list.contains(&present), "{present:#x} is offered in the non-approved mode");
    }
    let (_, private) = rsa_pair(&t);
    assert_eq!(sign_init(&t, CKM_SHA256_RSA_PKCS, private), CKR_OK);
    assert!(t.approved(t.h), "an approved use stays approved in the non-approved mode");
    assert_eq!(sign_init(&t, CKM_SHA1_RSA_PKCS, private), CKR_OK);
    assert!(!t.approved(t.h), "SHA-1 signature generation is flagged");
    assert_eq!(sign_init(&t, CKM_RSA_X_509, private), CKR_OK);
    assert!(!t.approved(t.h), "raw RSA is flagged");

    let aes = secret_key(&t, CKK_AES, &[3u8; 32]);
    assert!(t.key_approved(aes));
    assert_eq!(gcm_init(&t, true, aes), CKR_OK);
    assert!(!t.approved(t.h), "GCM encryption with an application IV is flagged");

    let short = secret_key(&t, CKK_GENERIC_SECRET, &[9u8; 8]);
    assert_eq!(sign_init(&t, CKM_SHA256_HMAC, short), CKR_OK);
    assert!(!t.approved(t.h), "a 64-bit HMAC key is flagged");

    let mut m = mech(CKM_EC_MONTGOMERY_KEY_PAIR_GEN);
    let mut pubt = [bytes(CKA_EC_PARAMS, X25519)];
    let mut privt = [attr(CKA_DERIVE, &TRUE)];
    let (mut p, mut v) = (0, 0);
    let rv = unsafe { t.f.C_GenerateKeyPair(t.h, &mut m, pubt.as_mut_ptr(), 1, privt.as_mut_ptr(), 1, &mut p, &mut v) };
    assert_eq!(rv, CKR_OK);
    assert!(!t.approved(t.h));
    assert!(!t.key_approved(v), "an X25519 key is not an approved key");
}

/// The DER DigestInfo of `digest` under the hash whose OID ends `…2.n` (2.16.840.1.101.3.4.2.n,
/// RFC 8017 §9.2 note 1: parameters NULL), or of SHA-1 for `n` = 0.
fn digest_info(n: u8, digest: &[u8]) -> Vec<u8> {
    let len = digest.len() as u8;
    let mut v = if n == 0 {
        vec![0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14]
    } else {
        vec![
            0x30,
            0x11 + len,
            0x30,
            0x0d,
            0x06,
            0x09,
            0x60,
            0x86,
            0x48,
            0x01,
            0x65,
            0x03,
            0x04,
            0x02,
            n,
            0x05,
            0x00,
            0x04,
            len,
        ]
    };
    v.extend_from_slice(digest);
    v
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// `C_SignInit` + `C_Sign`, and whether the operation is still there afterwards.
fn sign_once(t: &Token, m: CK_MECHANISM_TYPE, key: CK_OBJECT_HANDLE, data: &[u8]) -> (R<Vec<u8>>, bool) {
    let r = t.sign(&Mech::new(m), key, data);
    let mut out = [0u8; 512];
    let mut len: CK_ULONG = 512;
    let mut d = data.to_vec();
    let left = unsafe { t.f.C_Sign(t.h, d.as_mut_ptr(), d.len() as _, out.as_mut_ptr(), &mut len) };
    (r, left != CKR_OPERATION_NOT_INITIALIZED)
}

/// `CKM_RSA_PKCS` in the approved mode signs a DigestInfo of an approved hash (what libp11 and
/// SunPKCS11 hand it), byte for byte, and nothing else; SHA-1 only to verify.
#[test]
fn rsa_pkcs_signs_only_digest_infos_in_the_approved_mode() {
    let t = start("approved");
    let (public, private) = rsa_pair(&t);
    let msg = b"a certificate signing request";
    let di = digest_info(1, &sha256(msg));
    let (sig, _) = sign_once(&t, CKM_RSA_PKCS, private, &di);
    let sig = sig.expect("CKM_RSA_PKCS over a SHA-256 DigestInfo");
    assert!(t.approved(t.h));
    // The same signature as CKM_SHA256_RSA_PKCS over the message makes.
    assert_eq!(t.verify(&Mech::new(CKM_SHA256_RSA_PKCS), public, msg, &sig), Ok(()));
    assert_eq!(t.verify(&Mech::new(CKM_RSA_PKCS), public, &di, &sig), Ok(()));
    assert!(t.approved(t.h));
    // SHA3-256 and SHA-512/256 DigestInfos are approved too.
    for n in [6, 8] {
        assert!(sign_once(&t, CKM_RSA_PKCS, private, &digest_info(n, &[7; 32])).0.is_ok(), "hash …2.{n}");
    }
    // A bare digest, a SHA-1 DigestInfo, a DigestInfo with a byte more or its parameters left
    // out: CKR_DATA_INVALID, and the operation is over.
    let mut absent = vec![0x30, 0x2f, 0x30, 0x0b];
    absent.extend_from_slice(&di[4..15]);
    absent.extend_from_slice(&di[17..]);
    absent[4 + 1] = 0x09;
    for (what, data) in [
        ("a bare digest", sha256(msg)),
        ("a SHA-1 DigestInfo", digest_info(0, &[1; 20])),
        ("a trailing byte", [di.as_slice(), &[0]].concat()),
        ("absent parameters", absent),
        ("a wrong digest length", digest_info(1, &[1; 31])),
    ] {
        let (r, left) = sign_once(&t, CKM_RSA_PKCS, private, &data);
        assert_eq!(r, Err(CKR_DATA_INVALID), "{what}");
        assert!(!left, "{what}: a refused C_Sign ends the operation");
    }
    // Verification: a SHA-1 DigestInfo is checked (legacy verification), other data refused.
    assert_eq!(t.verify(&Mech::new(CKM_RSA_PKCS), public, &digest_info(0, &[1; 20]), &sig), Err(CKR_SIGNATURE_INVALID));
    assert!(t.approved(t.h));
    assert_eq!(t.verify(&Mech::new(CKM_RSA_PKCS), public, &sha256(msg), &sig), Err(CKR_DATA_INVALID));
    // v1.5 encryption stays refused.
    assert_eq!(t.encrypt(&Mech::new(CKM_RSA_PKCS), public, b"secret"), Err(CKR_MECHANISM_INVALID));
}

#[test]
fn rsa_pkcs_indicator_follows_the_data_in_the_non_approved_mode() {
    let t = start("non-approved");
    let (public, private) = rsa_pair(&t);
    let di = digest_info(1, &sha256(b"m"));
    let sig = sign_once(&t, CKM_RSA_PKCS, private, &di).0.expect("DigestInfo");
    assert!(t.approved(t.h), "a SHA-256 DigestInfo is an approved signature");
    let raw = sign_once(&t, CKM_RSA_PKCS, private, b"any bytes at all").0.expect("raw data");
    assert!(!t.approved(t.h), "other data is signed, flagged non-approved");
    assert_eq!(t.verify(&Mech::new(CKM_RSA_PKCS), public, b"any bytes at all", &raw), Ok(()));
    assert!(!t.approved(t.h));
    assert_eq!(t.verify(&Mech::new(CKM_RSA_PKCS), public, &di, &sig), Ok(()));
    assert!(t.approved(t.h));
    assert!(t.encrypt(&Mech::new(CKM_RSA_PKCS), public, b"secret").is_ok());
    assert!(!t.approved(t.h));
}

/// Two P-256 key pairs that derive, and each one's public point (DER OCTET STRING).
fn ecdh_pairs(t: &Token) -> [(CK_OBJECT_HANDLE, Vec<u8>); 2] {
    let pair = || {
        let public = vec![(CKA_EC_PARAMS, V::Bytes(P256.to_vec())), (CKA_TOKEN, V::B(false))];
        let private = vec![(CKA_DERIVE, V::B(true)), (CKA_TOKEN, V::B(false))];
        let (p, v) = t.generate_pair(&Mech::new(CKM_EC_KEY_PAIR_GEN), &public, &private).expect("P-256 pair");
        (v, t.attr(p, CKA_EC_POINT).expect("CKA_EC_POINT"))
    };
    [pair(), pair()]
}

fn ecdh(kdf: CK_EC_KDF_TYPE, shared: &[u8], peer: &[u8]) -> Mech {
    let p = CK_ECDH1_DERIVE_PARAMS {
        kdf,
        ulSharedDataLen: shared.len() as _,
        pSharedData: if shared.is_empty() { null_mut() } else { shared.as_ptr() as *mut _ },
        ulPublicDataLen: peer.len() as _,
        pPublicData: peer.as_ptr() as *mut _,
    };
    Mech::with_struct(CKM_ECDH1_DERIVE, &p)
}

fn hkdf_sha256(info: &[u8]) -> Mech {
    hkdf(true, true, None, info)
}

/// `CKM_HKDF_DERIVE` with SHA-256: extraction and expansion as asked, the salt a key (`salt_key`)
/// or the bytes "salt".
fn hkdf(extract: bool, expand: bool, salt_key: Option<CK_OBJECT_HANDLE>, info: &[u8]) -> Mech {
    let p = CK_HKDF_PARAMS {
        bExtract: extract as CK_BBOOL,
        bExpand: expand as CK_BBOOL,
        prfHashMechanism: CKM_SHA256,
        ulSaltType: if salt_key.is_some() { CKF_HKDF_SALT_KEY } else { CKF_HKDF_SALT_DATA },
        pSalt: if salt_key.is_some() { null_mut() } else { b"salt".as_ptr() as *mut _ },
        ulSaltLen: if salt_key.is_some() { 0 } else { 4 },
        hSaltKey: salt_key.unwrap_or(0),
        pInfo: info.as_ptr() as *mut _,
        ulInfoLen: info.len() as _,
    };
    Mech::with_struct(CKM_HKDF_DERIVE, &p)
}

/// Tessera's vendor attribute on a key whose value is an ECDH shared secret.
const CKA_VENDOR_SHARED_SECRET: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 3;

/// What `pkcs11-tool --derive` asks for: a readable, extractable shared secret.
fn readable_secret() -> Tpl {
    vec![
        (CKA_CLASS, V::U(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, V::U(CKK_GENERIC_SECRET)),
        (CKA_TOKEN, V::B(false)),
        (CKA_SENSITIVE, V::B(false)),
        (CKA_EXTRACTABLE, V::B(true)),
    ]
}

fn flag(t: &Token, o: CK_OBJECT_HANDLE, a: CK_ATTRIBUTE_TYPE) -> bool {
    t.attr(o, a).expect("attribute") == [1]
}

/// SP 800-56A Rev. 3 §5.8: the shared secret Z never leaves the module in the approved mode.
/// Without a KDF it becomes a sensitive, non-extractable, unmodifiable generic secret whose one
/// use is to derive (HKDF, SP 800-56C two-step); with one, only the approved KDFs and hashes.
#[test]
fn ecdh_shared_secret_stays_inside_in_the_approved_mode() {
    let t = start("approved");
    let [(a, a_point), (b, b_point)] = ecdh_pairs(&t);
    let null = ecdh(CKD_NULL, &[], &b_point);
    assert_eq!(t.derive(&null, a, &readable_secret()), Err(CKR_TEMPLATE_INCONSISTENT), "Z as a readable key");
    let base = vec![(CKA_CLASS, V::U(CKO_SECRET_KEY)), (CKA_TOKEN, V::B(false))];
    let with = |extra: Vec<(CK_ATTRIBUTE_TYPE, V)>| [base.clone(), extra].concat();
    for (what, extra) in [
        ("extractable", vec![(CKA_EXTRACTABLE, V::B(true))]),
        ("not sensitive", vec![(CKA_SENSITIVE, V::B(false))]),
        ("modifiable", vec![(CKA_MODIFIABLE, V::B(true))]),
        ("an HMAC key", vec![(CKA_SIGN, V::B(true))]),
        ("an AES key", vec![(CKA_KEY_TYPE, V::U(CKK_AES)), (CKA_ENCRYPT, V::B(true))]),
        ("a wrapping key", vec![(CKA_WRAP, V::B(true))]),
    ] {
        assert_eq!(t.derive(&null, a, &with(extra)), Err(CKR_TEMPLATE_INCONSISTENT), "Z as {what}");
    }
    // What the template leaves out keeps Z inside.
    let za = t.derive(&null, a, &base).expect("Z kept inside");
    assert!(flag(&t, za, CKA_DERIVE) && !flag(&t, za, CKA_SIGN) && !flag(&t, za, CKA_ENCRYPT));
    assert!(t.approved(t.h));
    assert!(flag(&t, za, CKA_SENSITIVE) && !flag(&t, za, CKA_EXTRACTABLE) && !flag(&t, za, CKA_MODIFIABLE));
    assert_eq!(t.value(za), Err(CKR_ATTRIBUTE_SENSITIVE));
    assert!(t.set(za, &vec![(CKA_SIGN, V::B(true))]).is_err(), "no use can be added later");
    assert!(t.copy(za, &vec![(CKA_SIGN, V::B(true))]).is_err(), "nor by a copy");
    assert!(t.copy(za, &vec![(CKA_EXTRACTABLE, V::B(true))]).is_err());
    // Z through HKDF: both parties derive the same key, approved.
    let zb = t.derive(&ecdh(CKD_NULL, &[], &a_point), b, &with(vec![(CKA_DERIVE, V::B(true))])).unwrap();
    let ka = t.derive(&hkdf_sha256(b"ctx"), za, &made(CKK_AES, Some(32))).expect("HKDF from Z");
    assert!(t.approved(t.h));
    let kb = t.derive(&hkdf_sha256(b"ctx"), zb, &made(CKK_AES, Some(32))).unwrap();
    assert_eq!(t.value(ka).unwrap(), t.value(kb).unwrap());
    // Z is marked, and goes through HKDF's extraction (SP 800-56C Rev. 2 §5): as the input of an
    // expansion alone, or as the salt of another key's extraction, it is refused.
    assert!(flag(&t, za, CKA_VENDOR_SHARED_SECRET) && !flag(&t, ka, CKA_VENDOR_SHARED_SECRET));
    let expand_only = t.derive(&hkdf(false, true, None, b"ctx"), za, &made(CKK_AES, Some(32)));
    assert_eq!(expand_only, Err(CKR_MECHANISM_PARAM_INVALID), "Z as the key of an expansion");
    let other = t.create(&secret(CKK_GENERIC_SECRET, &[0x33; 32])).unwrap();
    let salted = t.derive(&hkdf(true, true, Some(za), b"ctx"), other, &made(CKK_AES, Some(32)));
    assert_eq!(salted, Err(CKR_MECHANISM_PARAM_INVALID), "Z as the salt key");
    // The whole two-step derivation: its pseudorandom key alone (extraction without expansion)
    // is not output either.
    let extract_only = t.derive(&hkdf(true, false, None, b""), za, &made(CKK_GENERIC_SECRET, Some(32)));
    assert_eq!(extract_only, Err(CKR_MECHANISM_PARAM_INVALID), "Z's pseudorandom key");
    // Nor its output as a data object, through a CKA_DERIVE_TEMPLATE that asks for one.
    let class_data = CKO_DATA.to_ne_bytes();
    let inner = [CK_ATTRIBUTE { type_: CKA_CLASS, pValue: class_data.as_ptr() as *mut _, ulValueLen: 8 }];
    // SAFETY (test): `inner` is a live array of one plain C struct, read as its bytes.
    let inner_bytes =
        unsafe { std::slice::from_raw_parts(inner.as_ptr() as *const u8, std::mem::size_of_val(&inner)) }.to_vec();
    let base_with_data = [base.clone(), vec![(CKA_DERIVE_TEMPLATE, V::Bytes(inner_bytes))]].concat();
    let zd = t.derive(&null, a, &base_with_data).expect("Z restricted to deriving data");
    let data = vec![(CKA_CLASS, V::U(CKO_DATA)), (CKA_TOKEN, V::B(false))];
    assert_eq!(t.derive(&hkdf_sha256(b"ctx"), zd, &data), Err(CKR_TEMPLATE_INCONSISTENT), "HKDF output as data");
    // The X9.63 and SP 800-56C one-step KDFs with SHA-2: approved, and the two sides agree.
    for kdf in [CKD_SHA256_KDF, CKD_SHA384_KDF, CKD_SHA256_KDF_SP800, CKD_SHA512_KDF_SP800] {
        let x = t.derive(&ecdh(kdf, b"info", &b_point), a, &made(CKK_AES, Some(32))).expect("KDF");
        assert!(t.approved(t.h), "kdf {kdf:#x}");
        let y = t.derive(&ecdh(kdf, b"info", &a_point), b, &made(CKK_AES, Some(32))).unwrap();
        assert_eq!(t.value(x).unwrap(), t.value(y).unwrap(), "kdf {kdf:#x}");
    }
    // SHA-1 in either KDF is not approved.
    for kdf in [CKD_SHA1_KDF, CKD_SHA1_KDF_SP800] {
        let r = t.derive(&ecdh(kdf, b"info", &b_point), a, &made(CKK_AES, Some(16)));
        assert_eq!(r, Err(CKR_MECHANISM_PARAM_INVALID), "kdf {kdf:#x}");
    }
}

/// The non-approved mode derives what the application asks for, SoftHSMv2's way, and flags a Z
/// that can leave; its KDF outputs are the standards' (checked against Z read back).
#[test]
fn ecdh_outside_the_approved_mode_flags_a_readable_secret() {
    let t = start("non-approved");
    let [(a, _), (b, b_point)] = ecdh_pairs(&t);
    let z = t.derive(&ecdh(CKD_NULL, &[], &b_point), a, &readable_secret()).expect("readable Z");
    assert!(!t.approved(t.h), "a readable shared secret is not approved");
    assert!(!t.key_approved(z));
    let z = t.value(z).unwrap();
    assert_eq!(z.len(), 32);
    let mut inside = vec![
        (CKA_CLASS, V::U(CKO_SECRET_KEY)),
        (CKA_DERIVE, V::B(true)),
        (CKA_SENSITIVE, V::B(true)),
        (CKA_EXTRACTABLE, V::B(false)),
        (CKA_MODIFIABLE, V::B(false)),
    ];
    inside.extend([CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY].map(|a| (a, V::B(false))));
    let z_key = t.derive(&ecdh(CKD_NULL, &[], &b_point), a, &inside).expect("Z kept inside");
    assert!(t.approved(t.h));
    // An expansion alone over Z runs, not approved.
    assert!(t.derive(&hkdf(false, true, None, b"ctx"), z_key, &made(CKK_AES, Some(32))).is_ok());
    assert!(!t.approved(t.h), "HKDF expansion alone over Z is flagged");
    let kdf = |kdf| t.value(t.derive(&ecdh(kdf, b"info", &b_point), a, &made(CKK_GENERIC_SECRET, Some(40))).unwrap());
    let block = |first: &[u8], second: &[u8]| sha256(&[first, second, b"info"].concat());
    let x963 = [block(&z, &1u32.to_be_bytes()), block(&z, &2u32.to_be_bytes())].concat();
    assert_eq!(kdf(CKD_SHA256_KDF).unwrap(), x963[..40]);
    let one_step = [block(&1u32.to_be_bytes(), &z), block(&2u32.to_be_bytes(), &z)].concat();
    assert_eq!(kdf(CKD_SHA256_KDF_SP800).unwrap(), one_step[..40]);
    assert!(kdf(CKD_SHA1_KDF).is_ok());
    assert!(!t.approved(t.h), "SHA-1 in a KDF is flagged");
    let _ = b;
}

// Strength of authentication: PIN length and lockout
// ---------------------------------------------------------------------------------------------

/// `tessera-testproc status` on a fresh store with the configuration `conf` and the environment
/// `vars` (no `TESSERA_MODE` unless given): its exit status is 3 when `C_Initialize` fails.
fn status(conf: &str, vars: &[(&str, &str)]) -> std::process::Output {
    let env = Env::new(conf);
    let mut c = env.command(testproc_path!());
    c.env_remove("TESSERA_MODE").args(["--module", &module_path().to_string_lossy(), "status"]);
    c.envs(vars.iter().copied());
    c.output().expect("run tessera-testproc")
}

/// The approved mode refuses to start, with the reason on stderr naming the key to change, when
/// a random guess at a PIN could succeed with probability above 1/1,000,000 in one attempt
/// (`pin.min_length` below 6) or above 1/100,000 before the PIN locks (no lockout, or more than
/// 10^(min_length-5) failures allowed); the non-approved mode starts with each of them.
#[test]
fn the_approved_mode_refuses_to_start_with_a_weak_pin_policy() {
    let refused = [
        ("pin.min_length = 4", &["pin.min_length = 4", "1/1,000,000", "pin.min_length = 6 or more"][..]),
        ("pin.min_length = 5\npin.max_failures = 1", &["pin.min_length = 5"][..]),
        ("pin.max_failures = 0", &["pin.max_failures = 0", "from 1 to 10"][..]),
        ("pin.min_length = 6\npin.max_failures = 11", &["pin.max_failures = 11", "11/10^6", "10 or fewer"][..]),
        ("pin.min_length = 8\npin.max_failures = 1001", &["pin.max_failures = 1001", "1000 or fewer"][..]),
    ];
    for (conf, says) in refused {
        let o = status(&format!("tessera.mode = approved\n{conf}"), &[]);
        assert_eq!(o.status.code(), Some(3), "{conf}: C_Initialize must fail in the approved mode\n{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("tessera: the approved mode refuses this PIN policy"), "{conf}:\n{}", show(&o));
        assert!(err.contains("the module does not start"), "{conf}:\n{}", show(&o));
        for s in says {
            assert!(err.contains(s), "{conf}: the reason should say {s:?}\n{}", show(&o));
        }
        // The same configuration made approved by the environment, not the file: refused too.
        let o = status(conf, &[("TESSERA_MODE", "approved")]);
        assert_eq!(o.status.code(), Some(3), "{conf} with TESSERA_MODE=approved\n{}", show(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains(says[0]), "{conf}:\n{}", show(&o));
        // The non-approved mode takes what it took before.
        let o = status(&format!("tessera.mode = non-approved\n{conf}"), &[]);
        assert!(o.status.success(), "{conf}: the non-approved mode starts\n{}", show(&o));
    }
    for conf in ["", "pin.min_length = 8\npin.max_failures = 1000", "pin.min_length = 7\npin.max_failures = 100"] {
        let o = status(&format!("tessera.mode = approved\n{conf}"), &[]);
        assert!(o.status.success(), "{conf:?}: within the bounds, the approved mode starts\n{}", show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("library: Tessera, approved mode, sealed"), "{}", show(&o));
    }
    // A key out of its range is a configuration error in either mode.
    for (mode, conf) in [("approved", "pin.min_length = 3"), ("non-approved", "pin.min_length = 256")] {
        let o = status(&format!("tessera.mode = {mode}\n{conf}"), &[]);
        assert_eq!(o.status.code(), Some(3), "{mode}, {conf}\n{}", show(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("from 4 to 255"), "{mode}, {conf}\n{}", show(&o));
    }
    // In this process: C_Initialize's return code is the one a malformed configuration gives.
    let r = RawLib::in_mode("approved", "pin.max_failures = 0");
    assert_eq!(unsafe { r.f.C_Initialize(null_mut()) }, CKR_GENERAL_ERROR);
    let mut info = CK_INFO::default();
    assert_eq!(unsafe { r.f.C_GetInfo(&mut info) }, CKR_CRYPTOKI_NOT_INITIALIZED, "the module did not start");
}

/// `ulMinPinLen` is the minimum in force: 6 in the approved mode and 4 in the non-approved one
/// when `pin.min_length` is absent, the key's value otherwise.
#[test]
fn ul_min_pin_len_is_the_minimum_in_force() {
    for (mode, conf, min) in [
        ("approved", "", 6),
        ("non-approved", "", 4),
        ("approved", "pin.min_length = 8", 8),
        ("non-approved", "pin.min_length = 5", 5),
        ("non-approved", "pin.min_length = 255\npin.max_failures = 0", 255),
    ] {
        let r = RawLib::in_mode(mode, conf);
        r.init();
        let free = *r.slots().last().unwrap();
        let ti = r.token_info(free);
        assert_eq!((ti.ulMinPinLen, ti.ulMaxPinLen), (min, 255), "{mode}, {conf:?}");
        if conf.is_empty() {
            let slot = r.token("minimum");
            assert_eq!(r.token_info(slot).ulMinPinLen, min, "{mode}: an initialised token");
        }
    }
}

/// A PIN shorter than the minimum is refused wherever a PIN is set (`C_InitToken`, `C_InitPIN`,
/// `C_SetPIN` of the user and of the SO) with `CKR_PIN_LEN_RANGE` in the approved mode, and
/// taken in the non-approved one (down to 4 bytes).
#[test]
fn a_pin_of_five_bytes_is_set_only_in_the_non_approved_mode() {
    let five = "13579";
    let set = |r: &RawLib, h, old: &str, new: &str| unsafe {
        r.f.C_SetPIN(h, old.as_ptr() as *mut _, old.len() as _, new.as_ptr() as *mut _, new.len() as _)
    };
    let init_pin = |r: &RawLib, h, pin: &str| unsafe { r.f.C_InitPIN(h, pin.as_ptr() as *mut _, pin.len() as _) };
    let init_token = |r: &RawLib, slot, so: &str, label: &str| unsafe {
        let mut l = pad32(label);
        r.f.C_InitToken(slot, so.as_ptr() as *mut _, so.len() as _, l.as_mut_ptr())
    };

    // Approved: every way of setting a PIN refuses five bytes, and the PINs in place still work.
    let r = RawLib::in_mode("approved", "");
    r.init();
    let free = *r.slots().last().unwrap();
    assert_eq!(
        init_token(&r, free, five, "short"),
        CKR_PIN_INCORRECT,
        "C_InitToken of a new token (its list of return values has no CKR_PIN_LEN_RANGE)"
    );
    assert!(r.slots().iter().all(|s| r.token_info(*s).label != pad32("short")), "no token was made");
    let slot = r.token("approved");
    let h = r.open(slot, true);
    r.login(h, CKU_SO, SO_PIN).unwrap();
    assert_eq!(init_pin(&r, h, five), CKR_PIN_LEN_RANGE, "C_InitPIN");
    assert_eq!(init_pin(&r, h, "1234"), CKR_PIN_LEN_RANGE, "C_InitPIN with 4 bytes");
    assert_eq!(set(&r, h, SO_PIN, five), CKR_PIN_LEN_RANGE, "C_SetPIN of the SO");
    assert_eq!(unsafe { r.f.C_Logout(h) }, CKR_OK);
    assert_eq!(r.login(h, CKU_SO, SO_PIN), Ok(()), "the SO PIN is unchanged");
    assert_eq!(unsafe { r.f.C_Logout(h) }, CKR_OK);
    assert_eq!(set(&r, h, USER_PIN, five), CKR_PIN_LEN_RANGE, "C_SetPIN of the user, public session");
    r.login(h, CKU_USER, USER_PIN).unwrap();
    assert_eq!(set(&r, h, USER_PIN, five), CKR_PIN_LEN_RANGE, "C_SetPIN of the user, user session");
    assert_eq!(set(&r, h, USER_PIN, "654321"), CKR_OK, "six bytes are enough");
    let flags = r.token_info(slot).flags;
    assert_eq!(flags & (CKF_USER_PIN_COUNT_LOW | CKF_SO_PIN_COUNT_LOW), 0, "no refusal counted a failure");
    assert_eq!(unsafe { r.f.C_CloseAllSessions(slot) }, CKR_OK);
    assert_eq!(init_token(&r, slot, five, "again"), CKR_PIN_INCORRECT, "C_InitToken of an initialised token");
    assert_eq!(r.token_info(slot).label, pad32("approved"), "the token was not re-initialised");
    drop(r);

    // Non-approved: the same five bytes are taken everywhere, and so are four.
    let r = RawLib::in_mode("non-approved", "");
    r.init();
    let free = *r.slots().last().unwrap();
    assert_eq!(init_token(&r, free, five, "short"), CKR_OK, "C_InitToken of a new token");
    let slot = *r.slots().iter().find(|s| r.token_info(**s).label == pad32("short")).expect("the new token");
    let h = r.open(slot, true);
    r.login(h, CKU_SO, five).unwrap();
    assert_eq!(init_pin(&r, h, "123"), CKR_PIN_LEN_RANGE, "three bytes are too short in either mode");
    assert_eq!(init_pin(&r, h, "1234"), CKR_OK, "C_InitPIN with 4 bytes");
    assert_eq!(init_pin(&r, h, five), CKR_OK, "C_InitPIN");
    assert_eq!(set(&r, h, five, "24680"), CKR_OK, "C_SetPIN of the SO");
    assert_eq!(unsafe { r.f.C_Logout(h) }, CKR_OK);
    r.login(h, CKU_USER, five).unwrap();
    assert_eq!(set(&r, h, five, "97531"), CKR_OK, "C_SetPIN of the user");
    assert_eq!(unsafe { r.f.C_CloseAllSessions(slot) }, CKR_OK);
    assert_eq!(init_token(&r, slot, "24680", "again"), CKR_OK, "C_InitToken of an initialised token");
}

/// `C_Login` with a PIN shorter than the minimum (or longer than 255 bytes), as the user, the SO
/// or for a key that asks for a login each time: `CKR_PIN_INCORRECT` (the code `C_Login` has;
/// `CKR_PIN_LEN_RANGE` is for functions that set a PIN), without the PIN being tried or the
/// failure counted: the right PIN logs in afterwards, and with `pin.max_failures = 3`, many short
/// PINs then two wrong ones still leave the PIN unlocked.
#[test]
fn a_short_pin_at_login_is_refused_without_being_tried_or_counted() {
    let t = Token::open_with("approved", "short-login", "pin.max_failures = 3");
    let login = |h, user, pin: &[u8]| unsafe { t.f.C_Login(h, user, pin.as_ptr() as *mut _, pin.len() as _) };
    let flags = || {
        let mut ti = CK_TOKEN_INFO::default();
        assert_eq!(unsafe { t.f.C_GetTokenInfo(t.slot, &mut ti) }, CKR_OK);
        ti.flags
    };
    let counted = CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED;
    let long = [b'7'; 256];

    // A key that asks for the PIN at each use: the context-specific login.
    let mut m = mech(CKM_EC_KEY_PAIR_GEN);
    let mut pubt = [bytes(CKA_EC_PARAMS, P256), attr(CKA_VERIFY, &TRUE)];
    let mut privt = [attr(CKA_SIGN, &TRUE), attr(CKA_ALWAYS_AUTHENTICATE, &TRUE)];
    let (mut p, mut v) = (0, 0);
    let rv = unsafe { t.f.C_GenerateKeyPair(t.h, &mut m, pubt.as_mut_ptr(), 2, privt.as_mut_ptr(), 2, &mut p, &mut v) };
    assert_eq!(rv, CKR_OK);
    let mut m = mech(CKM_ECDSA_SHA256);
    assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut m, v) }, CKR_OK);
    for pin in [&b"12345"[..], b"", &long] {
        assert_eq!(login(t.h, CKU_CONTEXT_SPECIFIC, pin), CKR_PIN_INCORRECT, "context-specific, {} bytes", pin.len());
    }
    assert_eq!(flags() & counted, 0, "a context-specific login with a short PIN counted a failure");
    let (mut sig, mut n) = ([0u8; 64], 64 as CK_ULONG);
    let sign = |sig: &mut [u8; 64], n: &mut CK_ULONG| unsafe {
        t.f.C_Sign(t.h, b"data".as_ptr() as *mut _, 4, sig.as_mut_ptr(), n)
    };
    assert_eq!(sign(&mut sig, &mut n), CKR_USER_NOT_LOGGED_IN, "no short PIN authorised the signature");
    assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut m, v) }, CKR_OK);
    assert_eq!(login(t.h, CKU_CONTEXT_SPECIFIC, USER_PIN.as_bytes()), CKR_OK);
    assert_eq!(sign(&mut sig, &mut n), CKR_OK);

    // The user: five short or long attempts, more than pin.max_failures, count nothing.
    assert_eq!(unsafe { t.f.C_Logout(t.h) }, CKR_OK);
    for pin in [&b"12345"[..], b"1", b"", &long, &USER_PIN.as_bytes()[..5]] {
        assert_eq!(login(t.h, CKU_USER, pin), CKR_PIN_INCORRECT, "user, {} bytes", pin.len());
        assert_eq!(flags() & counted, 0, "a user login with {} bytes counted a failure", pin.len());
    }
    assert_eq!(login(t.h, CKU_USER, USER_PIN.as_bytes()), CKR_OK, "the right PIN after short ones");
    assert_eq!(unsafe { t.f.C_Logout(t.h) }, CKR_OK);
    // N-1 wrong PINs of a length a PIN may have count; short ones around them still do not.
    assert_eq!(login(t.h, CKU_USER, b"000000"), CKR_PIN_INCORRECT);
    assert_eq!(login(t.h, CKU_USER, b"12345"), CKR_PIN_INCORRECT);
    assert_eq!(login(t.h, CKU_USER, b"000001"), CKR_PIN_INCORRECT);
    assert_ne!(flags() & CKF_USER_PIN_FINAL_TRY, 0, "two failures counted (pin.max_failures = 3)");
    for _ in 0..3 {
        assert_eq!(login(t.h, CKU_USER, b"12345"), CKR_PIN_INCORRECT);
    }
    assert_eq!(flags() & CKF_USER_PIN_LOCKED, 0, "short PINs locked the PIN");
    assert_eq!(login(t.h, CKU_USER, USER_PIN.as_bytes()), CKR_OK, "not locked: the right PIN logs in");
    assert_eq!(flags() & counted, 0, "the right PIN clears the count");
    assert_eq!(unsafe { t.f.C_Logout(t.h) }, CKR_OK);

    // The SO likewise.
    let so_counted = CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY | CKF_SO_PIN_LOCKED;
    for pin in [&b"12345"[..], &long] {
        assert_eq!(login(t.h, CKU_SO, pin), CKR_PIN_INCORRECT, "SO, {} bytes", pin.len());
    }
    assert_eq!(flags() & so_counted, 0, "an SO login with a short PIN counted a failure");
    assert_eq!(login(t.h, CKU_SO, SO_PIN.as_bytes()), CKR_OK);
}

/// A user PIN of 4 bytes set in the non-approved mode proves nothing once the store is used in
/// the approved mode: `C_Login` and `C_SetPIN` (whose old PIN lets one set a PIN and log in) refuse
/// it untried and uncounted. The SO replaces it there (`C_InitPIN`), or the user does in the
/// non-approved mode, where `C_SetPIN` takes an old PIN below `pin.min_length`.
#[test]
fn a_short_pin_set_before_proves_nothing_in_the_approved_mode_and_is_replaced() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let open = |conf: &str| {
        std::env::remove_var("TESSERA_MODE");
        let r = RawLib::with(Env::at(tokens.path(), conf));
        r.init();
        let slot = initialised_slot(&r.f);
        let h = r.open(slot, true);
        (r, slot, h)
    };
    let set = |r: &RawLib, h, old: &str, new: &str| unsafe {
        r.f.C_SetPIN(h, old.as_ptr() as *mut _, old.len() as _, new.as_ptr() as *mut _, new.len() as _)
    };
    let short = "1234";
    {
        std::env::remove_var("TESSERA_MODE");
        let r = RawLib::with(Env::at(tokens.path(), "tessera.mode = non-approved"));
        r.init();
        let slot = r.token("legacy");
        let h = r.open(slot, true);
        assert_eq!(set(&r, h, USER_PIN, short), CKR_OK, "a 4-byte PIN in the non-approved mode");
    }

    // Approved: neither a login nor a PIN change with the short PIN; the SO sets a new one.
    let (r, slot, h) = open("tessera.mode = approved");
    assert_eq!(r.login(h, CKU_USER, short), Err(CKR_PIN_INCORRECT), "C_Login with the 4-byte PIN");
    assert_eq!(set(&r, h, short, "246813"), CKR_PIN_INCORRECT, "C_SetPIN with the 4-byte PIN as the old one");
    assert_eq!(r.token_info(slot).flags & CKF_USER_PIN_COUNT_LOW, 0, "nothing was counted");
    assert_eq!(r.login(h, CKU_SO, SO_PIN), Ok(()));
    let new = "246813";
    assert_eq!(unsafe { r.f.C_InitPIN(h, new.as_ptr() as *mut _, new.len() as _) }, CKR_OK);
    assert_eq!(unsafe { r.f.C_Logout(h) }, CKR_OK);
    assert_eq!(r.login(h, CKU_USER, new), Ok(()), "the PIN the SO set");
    assert_eq!(set(&r, h, new, short), CKR_PIN_LEN_RANGE, "and not back to 4 bytes");
    drop(r);

    // Non-approved, back to the short PIN; then with pin.min_length = 6 the user replaces it.
    let (r, _, h) = open("tessera.mode = non-approved");
    assert_eq!(set(&r, h, new, short), CKR_OK);
    drop(r);
    let (r, _, h) = open("tessera.mode = non-approved\npin.min_length = 6");
    assert_eq!(r.login(h, CKU_USER, short), Err(CKR_PIN_INCORRECT), "below pin.min_length");
    assert_eq!(set(&r, h, short, "13579"), CKR_PIN_LEN_RANGE);
    assert_eq!(set(&r, h, short, "135790"), CKR_OK, "C_SetPIN takes the old 4-byte PIN in the non-approved mode");
    drop(r);
    let (r, _, h) = open("tessera.mode = approved");
    assert_eq!(r.login(h, CKU_USER, "135790"), Ok(()));
}
