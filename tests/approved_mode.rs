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
    for absent in
        [CKM_RSA_X_509, CKM_RSA_PKCS, CKM_EC_MONTGOMERY_KEY_PAIR_GEN, CKM_SHA3_224_HMAC_GENERAL, CKM_HKDF_DATA]
    {
        assert!(!list.contains(&absent), "{absent:#x} must not be listed in the approved mode");
    }
    for present in [
        CKM_SHA256,
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
