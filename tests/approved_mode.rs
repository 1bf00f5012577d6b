//! The approved-mode matrix through the library: what the approved mode must refuse, what it
//! must allow, and how the non-approved mode flags the same operations (session indicator and key
//! indicators). Each test picks its mode in the configuration file, whatever `TESSERA_MODE` the
//! suite runs under.

use cryptoki_sys::*;
use std::ffi::c_void;
use std::ptr::null_mut;
use tessera_tests::*;

/// The module in one mode with an initialised token and a logged-in R/W user session `h`.
struct T {
    raw: RawToken,
    h: CK_SESSION_HANDLE,
}

impl std::ops::Deref for T {
    type Target = RawToken;
    fn deref(&self) -> &RawToken {
        &self.raw
    }
}

fn attr<V>(t: CK_ATTRIBUTE_TYPE, v: &V) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_: t, pValue: v as *const V as *mut c_void, ulValueLen: std::mem::size_of::<V>() as CK_ULONG }
}

fn bytes(t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_: t, pValue: v.as_ptr() as *mut c_void, ulValueLen: v.len() as CK_ULONG }
}

fn mech(m: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM { mechanism: m, pParameter: null_mut(), ulParameterLen: 0 }
}

const TRUE: CK_BBOOL = CK_TRUE;

/// The library in `mode`, with a token, a logged-in R/W session.
fn start(mode: &str) -> T {
    let raw = raw_token(mode, "");
    let mut h = 0;
    unsafe {
        let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
        assert_eq!(raw.f.C_OpenSession(raw.slot, flags, null_mut(), None, &mut h), CKR_OK);
        assert_eq!(raw.f.C_Login(h, CKU_USER, USER_PIN.as_ptr() as *mut _, 4), CKR_OK);
    }
    T { raw, h }
}

impl T {
    fn mechanisms(&self) -> Vec<CK_MECHANISM_TYPE> {
        let mut n: CK_ULONG = 0;
        unsafe {
            assert_eq!(self.f.C_GetMechanismList(self.slot, null_mut(), &mut n), CKR_OK);
            let mut v = vec![0; n as usize];
            assert_eq!(self.f.C_GetMechanismList(self.slot, v.as_mut_ptr(), &mut n), CKR_OK);
            v
        }
    }

    /// The approved indicator of the last operation.
    fn approved(&self) -> bool {
        let mut flags: CK_FLAGS = 9;
        assert_eq!(unsafe { self.f.C_GetSessionValidationFlags(self.h, CKS_LAST_VALIDATION_OK, &mut flags) }, CKR_OK);
        flags & 1 == 1
    }

    fn key_approved(&self, o: CK_OBJECT_HANDLE) -> bool {
        let mut v: CK_BBOOL = 9;
        let mut a =
            [CK_ATTRIBUTE { type_: CKA_VENDOR_DEFINED | 1, pValue: &mut v as *mut _ as *mut c_void, ulValueLen: 1 }];
        assert_eq!(unsafe { self.f.C_GetAttributeValue(self.h, o, a.as_mut_ptr(), 1) }, CKR_OK);
        v == CK_TRUE
    }

    fn rsa_pair(&self) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
        let bits: CK_ULONG = 2048;
        let mut pubt = [attr(CKA_MODULUS_BITS, &bits), attr(CKA_VERIFY, &TRUE), attr(CKA_ENCRYPT, &TRUE)];
        let mut privt = [attr(CKA_SIGN, &TRUE), attr(CKA_DECRYPT, &TRUE)];
        let (mut p, mut v) = (0, 0);
        let mut m = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
        let rv = unsafe {
            self.f.C_GenerateKeyPair(self.h, &mut m, pubt.as_mut_ptr(), 3, privt.as_mut_ptr(), 2, &mut p, &mut v)
        };
        assert_eq!(rv, CKR_OK);
        (p, v)
    }

    fn secret(&self, kt: CK_KEY_TYPE, value: &[u8]) -> CK_OBJECT_HANDLE {
        let class = CKO_SECRET_KEY;
        let mut t = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), bytes(CKA_VALUE, value)];
        let mut o = 0;
        assert_eq!(unsafe { self.f.C_CreateObject(self.h, t.as_mut_ptr(), 3, &mut o) }, CKR_OK);
        o
    }

    fn sign_init(&self, m: CK_MECHANISM_TYPE, key: CK_OBJECT_HANDLE) -> CK_RV {
        let mut m = mech(m);
        let rv = unsafe { self.f.C_SignInit(self.h, &mut m, key) };
        if rv == CKR_OK {
            let mut data = *b"approved?";
            let mut out = [0u8; 1024];
            let mut len: CK_ULONG = 1024;
            assert_eq!(unsafe { self.f.C_Sign(self.h, data.as_mut_ptr(), 9, out.as_mut_ptr(), &mut len) }, CKR_OK);
        }
        rv
    }

    fn gcm_init(&self, encrypt: bool, key: CK_OBJECT_HANDLE) -> CK_RV {
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
                self.f.C_EncryptInit(self.h, &mut m, key)
            } else {
                self.f.C_DecryptInit(self.h, &mut m, key)
            }
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

    let (public, private) = t.rsa_pair();
    assert!(t.approved(), "RSA-2048 generation is approved");
    assert!(t.key_approved(private) && t.key_approved(public));
    assert_eq!(t.sign_init(CKM_SHA256_RSA_PKCS, private), CKR_OK);
    assert!(t.approved());
    assert_eq!(t.sign_init(CKM_SHA1_RSA_PKCS, private), CKR_MECHANISM_INVALID, "SHA-1 signature generation");
    let mut m = mech(CKM_SHA1_RSA_PKCS);
    assert_eq!(unsafe { t.f.C_VerifyInit(t.h, &mut m, public) }, CKR_OK, "SHA-1 signature verification stays");
    assert!(t.approved());
    assert_eq!(t.sign_init(CKM_RSA_X_509, private), CKR_MECHANISM_INVALID, "raw RSA");

    let aes = t.secret(CKK_AES, &[3u8; 32]);
    assert_eq!(t.gcm_init(true, aes), CKR_MECHANISM_PARAM_INVALID, "GCM encryption with an application IV");
    assert_eq!(t.gcm_init(false, aes), CKR_OK, "GCM decryption");
    assert!(t.approved());

    let short = t.secret(CKK_GENERIC_SECRET, &[9u8; 8]);
    assert!(!t.key_approved(short));
    let mut m = mech(CKM_SHA256_HMAC);
    assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut m, short) }, CKR_KEY_SIZE_RANGE, "64-bit HMAC key");

    let mut m = mech(CKM_EC_MONTGOMERY_KEY_PAIR_GEN);
    let params: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x6e];
    let mut pubt = [bytes(CKA_EC_PARAMS, &params)];
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
    let (_, private) = t.rsa_pair();
    assert_eq!(t.sign_init(CKM_SHA256_RSA_PKCS, private), CKR_OK);
    assert!(t.approved(), "an approved use stays approved in the non-approved mode");
    assert_eq!(t.sign_init(CKM_SHA1_RSA_PKCS, private), CKR_OK);
    assert!(!t.approved(), "SHA-1 signature generation is flagged");
    assert_eq!(t.sign_init(CKM_RSA_X_509, private), CKR_OK);
    assert!(!t.approved(), "raw RSA is flagged");

    let aes = t.secret(CKK_AES, &[3u8; 32]);
    assert!(t.key_approved(aes));
    assert_eq!(t.gcm_init(true, aes), CKR_OK);
    assert!(!t.approved(), "GCM encryption with an application IV is flagged");

    let short = t.secret(CKK_GENERIC_SECRET, &[9u8; 8]);
    assert_eq!(t.sign_init(CKM_SHA256_HMAC, short), CKR_OK);
    assert!(!t.approved(), "a 64-bit HMAC key is flagged");

    let mut m = mech(CKM_EC_MONTGOMERY_KEY_PAIR_GEN);
    let params: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x6e];
    let mut pubt = [bytes(CKA_EC_PARAMS, &params)];
    let mut privt = [attr(CKA_DERIVE, &TRUE)];
    let (mut p, mut v) = (0, 0);
    let rv = unsafe { t.f.C_GenerateKeyPair(t.h, &mut m, pubt.as_mut_ptr(), 1, privt.as_mut_ptr(), 1, &mut p, &mut v) };
    assert_eq!(rv, CKR_OK);
    assert!(!t.approved());
    assert!(!t.key_approved(v), "an X25519 key is not an approved key");
}
