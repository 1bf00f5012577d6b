//! [`Token`], the fixture most suites start from: the module initialised on a private store, a
//! fresh token and a logged-in R/W user session on it, reachable both through the `cryptoki`
//! crate ([`Token::s`]) and through raw `cryptoki-sys` calls, for what the `cryptoki` crate has
//! no mechanism for (CTR, `_GENERAL` MACs, SHA-3 HMAC, PBKDF2) or hides (the two-call
//! convention, NULL and short buffers); templates as data ([`Tpl`]); and what the approved mode
//! (`TESSERA_MODE=approved`) expects of a use it refuses.

use crate::raw::{ck, initialised_slot, R};
use crate::{
    approved_mode, load, load_env, load_in_mode, load_in_mode_with, module_path, user_session, Env, Loaded, SO_PIN,
    USER_PIN,
};
use cryptoki_sys::*;
use std::ffi::c_void;
use std::ptr::null_mut;

/// A mechanism with its parameter bytes (a C struct copied byte for byte; pointers inside it
/// must outlive the call).
pub struct Mech {
    pub ty: CK_MECHANISM_TYPE,
    pub param: Vec<u8>,
}

impl Mech {
    pub fn new(ty: CK_MECHANISM_TYPE) -> Mech {
        Mech { ty, param: Vec::new() }
    }

    pub fn with(ty: CK_MECHANISM_TYPE, param: &[u8]) -> Mech {
        Mech { ty, param: param.to_vec() }
    }

    /// A mechanism whose parameter is the C struct `s`.
    pub fn with_struct<T>(ty: CK_MECHANISM_TYPE, s: &T) -> Mech {
        // SAFETY (test): reads the struct's own bytes.
        let b = unsafe { std::slice::from_raw_parts(s as *const T as *const u8, std::mem::size_of::<T>()) };
        Mech::with(ty, b)
    }

    /// A `CK_ULONG` parameter (`CK_MAC_GENERAL_PARAMS`).
    pub fn with_ulong(ty: CK_MECHANISM_TYPE, v: CK_ULONG) -> Mech {
        Mech::with(ty, &v.to_ne_bytes())
    }

    pub fn raw(&self) -> CK_MECHANISM {
        CK_MECHANISM {
            mechanism: self.ty,
            pParameter: if self.param.is_empty() { null_mut() } else { self.param.as_ptr() as *mut c_void },
            ulParameterLen: self.param.len() as CK_ULONG,
        }
    }
}

/// An attribute value for a template.
#[derive(Clone, Debug)]
pub enum V {
    U(CK_ULONG),
    B(bool),
    Bytes(Vec<u8>),
}

impl V {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            V::U(u) => u.to_ne_bytes().to_vec(),
            V::B(b) => vec![*b as u8],
            V::Bytes(b) => b.clone(),
        }
    }
}

pub type Tpl = Vec<(CK_ATTRIBUTE_TYPE, V)>;

/// A secret-key template: the type and value, usable for every data use (encryption, MACs,
/// derivation), readable. A key that processes data never wraps (see [`kek`]).
pub fn secret(key_type: CK_KEY_TYPE, value: &[u8]) -> Tpl {
    readable(key_type, value, &[CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_DERIVE])
}

/// A key-encryption key's template: wraps and unwraps, nothing else; readable.
pub fn kek(key_type: CK_KEY_TYPE, value: &[u8]) -> Tpl {
    readable(key_type, value, &[CKA_WRAP, CKA_UNWRAP])
}

/// A session secret key with this value, the `uses` set, extractable and not sensitive.
fn readable(key_type: CK_KEY_TYPE, value: &[u8], uses: &[CK_ATTRIBUTE_TYPE]) -> Tpl {
    let mut t = vec![
        (CKA_CLASS, V::U(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, V::U(key_type)),
        (CKA_VALUE, V::Bytes(value.to_vec())),
        (CKA_TOKEN, V::B(false)),
    ];
    t.extend(uses.iter().map(|a| (*a, V::B(true))));
    t.extend([(CKA_EXTRACTABLE, V::B(true)), (CKA_SENSITIVE, V::B(false))]);
    t
}

/// A template for a key made by `C_UnwrapKey`: usable for data, extractable (an unwrapped key
/// is always sensitive, so its value is compared through [`Token::same_value`]).
pub fn unwrapped(key_type: CK_KEY_TYPE, len: Option<usize>) -> Tpl {
    let mut t: Tpl = made(key_type, len).into_iter().filter(|(a, _)| *a != CKA_SENSITIVE).collect();
    t.push((CKA_DERIVE, V::B(true)));
    t
}

/// A template for a key the token makes (generated, derived, unwrapped): readable afterwards.
pub fn made(key_type: CK_KEY_TYPE, len: Option<usize>) -> Tpl {
    let mut t = vec![
        (CKA_CLASS, V::U(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, V::U(key_type)),
        (CKA_TOKEN, V::B(false)),
        (CKA_EXTRACTABLE, V::B(true)),
        (CKA_SENSITIVE, V::B(false)),
        (CKA_ENCRYPT, V::B(true)),
        (CKA_DECRYPT, V::B(true)),
        (CKA_SIGN, V::B(true)),
        (CKA_VERIFY, V::B(true)),
    ];
    if let Some(l) = len {
        t.push((CKA_VALUE_LEN, V::U(l as CK_ULONG)));
    }
    t
}

/// The loaded module, a logged-in R/W user session `h` on a fresh token in `slot` (SO PIN
/// [`SO_PIN`], user PIN [`USER_PIN`]) and the raw function table `f`. Finalised when dropped
/// (also after a failure), so the next test of the process initialises afresh.
pub struct Token {
    pub f: cryptoki_sys::Pkcs11,
    pub slot: CK_SLOT_ID,
    pub h: CK_SESSION_HANDLE,
    s: Option<cryptoki::session::Session>,
    pub l: Loaded,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.s = None;
        let _ = self.l.p.clone().finalize();
    }
}

/// The outcome expected of a use the approved mode refuses: `want` in the non-approved mode,
/// `Err(refusal)` (the policy's answer) in the approved mode.
pub fn or_refused<X>(want: R<X>, refusal: CK_RV) -> R<X> {
    if approved_mode() {
        Err(refusal)
    } else {
        want
    }
}

/// A use the approved mode refuses: in the approved mode asserts that `r` is `Err(refusal)` and
/// gives `None`; in the non-approved mode asserts that it succeeded and gives its value.
pub fn allowed<X: std::fmt::Debug>(r: R<X>, refusal: CK_RV, what: &str) -> Option<X> {
    if approved_mode() {
        assert_eq!(r.err(), Some(refusal), "{what}: the approved mode must refuse it with {refusal:#x}");
        None
    } else {
        Some(r.unwrap_or_else(|e| panic!("{what}: {e:#x}")))
    }
}

impl Token {
    /// A token labelled `label`, in the mode the suite runs under (`TESSERA_MODE`).
    pub fn new(label: &str) -> Token {
        Token::on(label, load())
    }

    /// A token labelled `label` in `mode` (`approved` or `non-approved`), chosen in the
    /// configuration whatever `TESSERA_MODE` the suite runs under (see [`load_in_mode`]).
    pub fn open(mode: &str, label: &str) -> Token {
        Token::on(label, load_in_mode(mode))
    }

    /// [`Token::open`] with `extra` lines in the configuration.
    pub fn open_with(mode: &str, label: &str, extra: &str) -> Token {
        Token::on(label, load_in_mode_with(mode, extra))
    }

    /// [`Token::new`] under the legacy key-management rules (`keys.legacy_wrapping = allow`, which
    /// the approved mode ignores): for the known answers of wrapping mechanisms that do not
    /// authenticate (ECB, CBC, CBC_PAD, GCM with the application's IV, PKCS #1 v1.5).
    pub fn legacy(label: &str) -> Token {
        Token::with_conf(label, "keys.legacy_wrapping = allow")
    }

    /// [`Token::new`] with `extra` lines in the configuration.
    pub fn with_conf(label: &str, extra: &str) -> Token {
        Token::on(label, load_env(Env::new(extra)))
    }

    /// A user session on the existing token `label` of the store the configuration lines
    /// `extra` name.
    pub fn reopen(label: &str, extra: &str) -> Token {
        Token::existing(Env::new(extra), label)
    }

    /// A user session on the existing token `label` of `env`'s store (made by another process,
    /// another load of the module, or `tessera-util`).
    pub fn existing(env: Env, label: &str) -> Token {
        let l = load_env(env);
        let slot = l.slot_of(label);
        Token::with_session(l, slot)
    }

    fn on(label: &str, l: Loaded) -> Token {
        let slot = l.new_token(label);
        let t = Token::with_session(l, slot);
        let mut ti = CK_TOKEN_INFO::default();
        assert_eq!(unsafe { t.f.C_GetTokenInfo(t.slot, &mut ti) }, CKR_OK);
        assert_eq!(ti.flags & CKF_ERROR_STATE, 0, "the library under test must be sealed (tessera-util --seal)");
        t
    }

    fn with_session(l: Loaded, slot: cryptoki::slot::Slot) -> Token {
        // SAFETY (test): the same library the `cryptoki` context loaded; dlopen shares its state.
        let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load module raw");
        let s = user_session(&l.p, slot);
        Token { f, slot: slot.id(), h: s.handle(), s: Some(s), l }
    }

    /// The user session `h` as a `cryptoki` session.
    pub fn s(&self) -> &cryptoki::session::Session {
        self.s.as_ref().expect("session")
    }

    /// The token's slot as a `cryptoki` slot.
    pub fn cslot(&self) -> cryptoki::slot::Slot {
        cryptoki::slot::Slot::try_from(self.slot).expect("slot")
    }

    /// Another R/W session on the token, logged in as the user (the login is shared with `h`).
    pub fn session(&self) -> CK_SESSION_HANDLE {
        let mut h = 0;
        unsafe {
            assert_eq!(
                self.f.C_OpenSession(self.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, &mut h),
                CKR_OK
            );
            let rv = self.f.C_Login(h, CKU_USER, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as _);
            assert!(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN, "login {rv:#x}");
        }
        h
    }

    /// `C_Finalize` and `C_Initialize` through the raw table, as a restarted application does;
    /// then the token's slot as the slot list shows it now and a new logged-in session `h`.
    pub fn restart(&mut self) {
        unsafe {
            assert_eq!(self.f.C_Finalize(null_mut()), CKR_OK);
            assert_eq!(self.f.C_Initialize(null_mut()), CKR_OK);
        }
        self.reopen_session();
    }

    /// After a `C_Initialize` (here or by [`Token::restart`]): the token's slot and a new
    /// logged-in session `h` (no other session is logged in).
    pub fn reopen_session(&mut self) {
        self.slot = initialised_slot(&self.f);
        let mut h = 0;
        unsafe {
            assert_eq!(
                self.f.C_OpenSession(self.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, &mut h),
                CKR_OK
            );
            assert_eq!(self.f.C_Login(h, CKU_USER, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as _), CKR_OK);
        }
        self.h = h;
    }

    /// The approved indicator of session `h`'s last operation (`C_GetSessionValidationFlags`).
    pub fn approved(&self, h: CK_SESSION_HANDLE) -> bool {
        let mut flags: CK_FLAGS = 9;
        assert_eq!(unsafe { self.f.C_GetSessionValidationFlags(h, CKS_LAST_VALIDATION_OK, &mut flags) }, CKR_OK);
        flags & 1 == 1
    }

    /// The approved indicator of a key (the vendor attribute `CKA_VENDOR_DEFINED | 1`).
    pub fn key_approved(&self, o: CK_OBJECT_HANDLE) -> bool {
        let mut v: CK_BBOOL = 9;
        let mut a =
            [CK_ATTRIBUTE { type_: CKA_VENDOR_DEFINED | 1, pValue: &mut v as *mut _ as *mut c_void, ulValueLen: 1 }];
        assert_eq!(unsafe { self.f.C_GetAttributeValue(self.h, o, a.as_mut_ptr(), 1) }, CKR_OK);
        v == CK_TRUE
    }

    /// `C_GetMechanismList` of the token's slot.
    pub fn mechanisms(&self) -> Vec<CK_MECHANISM_TYPE> {
        let slot = self.slot;
        let mut n: CK_ULONG = 0;
        assert_eq!(unsafe { self.f.C_GetMechanismList(slot, null_mut(), &mut n) }, CKR_OK);
        let mut v = vec![0; n as usize];
        assert_eq!(unsafe { self.f.C_GetMechanismList(slot, v.as_mut_ptr(), &mut n) }, CKR_OK);
        v.truncate(n as usize);
        v
    }

    pub fn create(&self, tpl: &Tpl) -> R<CK_OBJECT_HANDLE> {
        let (_v, mut a) = Token::tpl(tpl);
        let mut h = 0;
        ck(unsafe { self.f.C_CreateObject(self.h, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h) })?;
        Ok(h)
    }

    pub fn key(&self, key_type: CK_KEY_TYPE, value: &[u8]) -> R<CK_OBJECT_HANDLE> {
        self.create(&secret(key_type, value))
    }

    /// A key-encryption key (see [`kek`]).
    pub fn kek(&self, key_type: CK_KEY_TYPE, value: &[u8]) -> R<CK_OBJECT_HANDLE> {
        self.create(&kek(key_type, value))
    }

    /// Whether a key's value is `value`, for keys whose value cannot be read (unwrapped keys are
    /// sensitive): its length and check value (`CKA_CHECK_VALUE`) against those of a readable key
    /// of the same type made from `value`.
    pub fn same_value(&self, key: CK_OBJECT_HANDLE, value: &[u8]) -> bool {
        let ty = CK_ULONG::from_ne_bytes(self.attr(key, CKA_KEY_TYPE).unwrap().try_into().unwrap());
        let Ok(twin) = self.key(ty, value) else { return false };
        let same = [CKA_VALUE_LEN, CKA_CHECK_VALUE].iter().all(|a| self.attr(key, *a) == self.attr(twin, *a));
        self.destroy(twin);
        same
    }

    /// `C_SetAttributeValue`.
    pub fn set(&self, obj: CK_OBJECT_HANDLE, tpl: &Tpl) -> R<()> {
        let (_v, mut a) = Token::tpl(tpl);
        ck(unsafe { self.f.C_SetAttributeValue(self.h, obj, a.as_mut_ptr(), a.len() as CK_ULONG) })
    }

    /// `C_CopyObject`.
    pub fn copy(&self, obj: CK_OBJECT_HANDLE, tpl: &Tpl) -> R<CK_OBJECT_HANDLE> {
        let (_v, mut a) = Token::tpl(tpl);
        let mut h = 0;
        ck(unsafe { self.f.C_CopyObject(self.h, obj, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h) })?;
        Ok(h)
    }

    /// Every object a `C_FindObjects*` search with `tpl` finds.
    pub fn find(&self, tpl: &Tpl) -> R<Vec<CK_OBJECT_HANDLE>> {
        let (_v, mut a) = Token::tpl(tpl);
        ck(unsafe { self.f.C_FindObjectsInit(self.h, a.as_mut_ptr(), a.len() as CK_ULONG) })?;
        let mut out = vec![0; 64];
        let mut n = 0;
        let r = ck(unsafe { self.f.C_FindObjects(self.h, out.as_mut_ptr(), 64, &mut n) });
        ck(unsafe { self.f.C_FindObjectsFinal(self.h) })?;
        r?;
        out.truncate(n as usize);
        Ok(out)
    }

    /// `C_GenerateKeyPair`: (public, private).
    pub fn generate_pair(&self, m: &Mech, public: &Tpl, private: &Tpl) -> R<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let mut mm = m.raw();
        let (_v1, mut a) = Token::tpl(public);
        let (_v2, mut b) = Token::tpl(private);
        let (mut hp, mut hv) = (0, 0);
        ck(unsafe {
            self.f.C_GenerateKeyPair(
                self.h,
                &mut mm,
                a.as_mut_ptr(),
                a.len() as CK_ULONG,
                b.as_mut_ptr(),
                b.len() as CK_ULONG,
                &mut hp,
                &mut hv,
            )
        })?;
        Ok((hp, hv))
    }

    /// Logs the session's application out and in again as `user` (`CKU_SO` or `CKU_USER`).
    pub fn relogin(&self, user: CK_USER_TYPE) -> R<()> {
        unsafe { self.f.C_Logout(self.h) };
        let pin = if user == CKU_SO { SO_PIN } else { USER_PIN };
        ck(unsafe { self.f.C_Login(self.h, user, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG) })
    }

    /// `C_DigestInit(SHA-256)` then `C_DigestKey`; the digest is ended either way.
    pub fn digest_key(&self, key: CK_OBJECT_HANDLE) -> R<()> {
        let mut m = Mech::new(CKM_SHA256).raw();
        ck(unsafe { self.f.C_DigestInit(self.h, &mut m) })?;
        let r = ck(unsafe { self.f.C_DigestKey(self.h, key) });
        let mut out = [0u8; 32];
        let mut n: CK_ULONG = 32;
        unsafe { self.f.C_DigestFinal(self.h, out.as_mut_ptr(), &mut n) };
        r
    }

    pub fn destroy(&self, h: CK_OBJECT_HANDLE) {
        unsafe { self.f.C_DestroyObject(self.h, h) };
    }

    /// An attribute's value.
    pub fn attr(&self, obj: CK_OBJECT_HANDLE, ty: CK_ATTRIBUTE_TYPE) -> R<Vec<u8>> {
        let mut a = CK_ATTRIBUTE { type_: ty, pValue: null_mut(), ulValueLen: 0 };
        ck(unsafe { self.f.C_GetAttributeValue(self.h, obj, &mut a, 1) })?;
        let mut buf = vec![0u8; a.ulValueLen as usize];
        a.pValue = buf.as_mut_ptr() as *mut c_void;
        ck(unsafe { self.f.C_GetAttributeValue(self.h, obj, &mut a, 1) })?;
        buf.truncate(a.ulValueLen as usize);
        Ok(buf)
    }

    pub fn value(&self, obj: CK_OBJECT_HANDLE) -> R<Vec<u8>> {
        self.attr(obj, CKA_VALUE)
    }

    fn tpl(tpl: &Tpl) -> (Vec<Vec<u8>>, Vec<CK_ATTRIBUTE>) {
        let vals: Vec<Vec<u8>> = tpl.iter().map(|(_, v)| v.bytes()).collect();
        let attrs = tpl
            .iter()
            .zip(vals.iter())
            .map(|((t, _), v)| CK_ATTRIBUTE {
                type_: *t,
                pValue: v.as_ptr() as *mut c_void,
                ulValueLen: v.len() as CK_ULONG,
            })
            .collect();
        (vals, attrs)
    }

    pub fn encrypt_init(&self, m: &Mech, key: CK_OBJECT_HANDLE) -> R<()> {
        let mut mm = m.raw();
        ck(unsafe { self.f.C_EncryptInit(self.h, &mut mm, key) })
    }

    pub fn decrypt_init(&self, m: &Mech, key: CK_OBJECT_HANDLE) -> R<()> {
        let mut mm = m.raw();
        ck(unsafe { self.f.C_DecryptInit(self.h, &mut mm, key) })
    }

    /// A single-part call with the two-call convention: a length query, then the output.
    fn two_call(&self, mut call: impl FnMut(*mut u8, *mut CK_ULONG) -> CK_RV) -> R<Vec<u8>> {
        let mut n: CK_ULONG = 0;
        ck(call(null_mut(), &mut n))?;
        let mut out = vec![0u8; n as usize];
        ck(call(out.as_mut_ptr(), &mut n))?;
        out.truncate(n as usize);
        Ok(out)
    }

    /// `C_EncryptInit` + `C_Encrypt` (length query first).
    pub fn encrypt(&self, m: &Mech, key: CK_OBJECT_HANDLE, data: &[u8]) -> R<Vec<u8>> {
        self.encrypt_init(m, key)?;
        let mut d = data.to_vec();
        self.two_call(|p, n| unsafe { self.f.C_Encrypt(self.h, d.as_mut_ptr(), d.len() as CK_ULONG, p, n) })
    }

    pub fn decrypt(&self, m: &Mech, key: CK_OBJECT_HANDLE, data: &[u8]) -> R<Vec<u8>> {
        self.decrypt_init(m, key)?;
        let mut d = data.to_vec();
        self.two_call(|p, n| unsafe { self.f.C_Decrypt(self.h, d.as_mut_ptr(), d.len() as CK_ULONG, p, n) })
    }

    /// Multi-part encryption or decryption over `parts`; each update's output and the final's.
    pub fn cipher_parts(&self, encrypt: bool, m: &Mech, key: CK_OBJECT_HANDLE, parts: &[&[u8]]) -> R<Vec<Vec<u8>>> {
        if encrypt {
            self.encrypt_init(m, key)?;
        } else {
            self.decrypt_init(m, key)?;
        }
        let mut outs = Vec::new();
        for part in parts {
            let mut d = part.to_vec();
            let o = self.two_call(|p, n| unsafe {
                if encrypt {
                    self.f.C_EncryptUpdate(self.h, d.as_mut_ptr(), d.len() as CK_ULONG, p, n)
                } else {
                    self.f.C_DecryptUpdate(self.h, d.as_mut_ptr(), d.len() as CK_ULONG, p, n)
                }
            })?;
            outs.push(o);
        }
        let o = self.two_call(|p, n| unsafe {
            if encrypt {
                self.f.C_EncryptFinal(self.h, p, n)
            } else {
                self.f.C_DecryptFinal(self.h, p, n)
            }
        })?;
        outs.push(o);
        Ok(outs)
    }

    pub fn sign(&self, m: &Mech, key: CK_OBJECT_HANDLE, data: &[u8]) -> R<Vec<u8>> {
        let mut mm = m.raw();
        ck(unsafe { self.f.C_SignInit(self.h, &mut mm, key) })?;
        let mut d = data.to_vec();
        self.two_call(|p, n| unsafe { self.f.C_Sign(self.h, d.as_mut_ptr(), d.len() as CK_ULONG, p, n) })
    }

    /// Multi-part signing.
    pub fn sign_parts(&self, m: &Mech, key: CK_OBJECT_HANDLE, parts: &[&[u8]]) -> R<Vec<u8>> {
        let mut mm = m.raw();
        ck(unsafe { self.f.C_SignInit(self.h, &mut mm, key) })?;
        for part in parts {
            let mut d = part.to_vec();
            ck(unsafe { self.f.C_SignUpdate(self.h, d.as_mut_ptr(), d.len() as CK_ULONG) })?;
        }
        self.two_call(|p, n| unsafe { self.f.C_SignFinal(self.h, p, n) })
    }

    pub fn verify(&self, m: &Mech, key: CK_OBJECT_HANDLE, data: &[u8], sig: &[u8]) -> R<()> {
        let mut mm = m.raw();
        ck(unsafe { self.f.C_VerifyInit(self.h, &mut mm, key) })?;
        let (mut d, mut s) = (data.to_vec(), sig.to_vec());
        ck(unsafe { self.f.C_Verify(self.h, d.as_mut_ptr(), d.len() as CK_ULONG, s.as_mut_ptr(), s.len() as CK_ULONG) })
    }

    /// Multi-part verification.
    pub fn verify_parts(&self, m: &Mech, key: CK_OBJECT_HANDLE, parts: &[&[u8]], sig: &[u8]) -> R<()> {
        let mut mm = m.raw();
        ck(unsafe { self.f.C_VerifyInit(self.h, &mut mm, key) })?;
        for part in parts {
            let mut d = part.to_vec();
            ck(unsafe { self.f.C_VerifyUpdate(self.h, d.as_mut_ptr(), d.len() as CK_ULONG) })?;
        }
        let mut s = sig.to_vec();
        ck(unsafe { self.f.C_VerifyFinal(self.h, s.as_mut_ptr(), s.len() as CK_ULONG) })
    }

    pub fn generate(&self, m: &Mech, tpl: &Tpl) -> R<CK_OBJECT_HANDLE> {
        let mut mm = m.raw();
        let (_v, mut a) = Token::tpl(tpl);
        let mut h = 0;
        ck(unsafe { self.f.C_GenerateKey(self.h, &mut mm, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h) })?;
        Ok(h)
    }

    pub fn derive(&self, m: &Mech, base: CK_OBJECT_HANDLE, tpl: &Tpl) -> R<CK_OBJECT_HANDLE> {
        let mut mm = m.raw();
        let (_v, mut a) = Token::tpl(tpl);
        let mut h = 0;
        ck(unsafe { self.f.C_DeriveKey(self.h, &mut mm, base, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h) })?;
        Ok(h)
    }

    pub fn wrap(&self, m: &Mech, wrapping: CK_OBJECT_HANDLE, key: CK_OBJECT_HANDLE) -> R<Vec<u8>> {
        let mut mm = m.raw();
        self.two_call(|p, n| unsafe { self.f.C_WrapKey(self.h, &mut mm, wrapping, key, p, n) })
    }

    pub fn unwrap(&self, m: &Mech, unwrapping: CK_OBJECT_HANDLE, wrapped: &[u8], tpl: &Tpl) -> R<CK_OBJECT_HANDLE> {
        let mut mm = m.raw();
        let (_v, mut a) = Token::tpl(tpl);
        let mut w = wrapped.to_vec();
        let mut h = 0;
        ck(unsafe {
            self.f.C_UnwrapKey(
                self.h,
                &mut mm,
                unwrapping,
                w.as_mut_ptr(),
                w.len() as CK_ULONG,
                a.as_mut_ptr(),
                a.len() as CK_ULONG,
                &mut h,
            )
        })?;
        Ok(h)
    }
}

/// `CK_GCM_PARAMS` over `iv` and `aad` (which must outlive the mechanism's use).
pub fn gcm(iv: &[u8], aad: &[u8], tag_bits: CK_ULONG) -> Mech {
    let p = CK_GCM_PARAMS {
        pIv: if iv.is_empty() { null_mut() } else { iv.as_ptr() as *mut u8 },
        ulIvLen: iv.len() as CK_ULONG,
        ulIvBits: (iv.len() * 8) as CK_ULONG,
        pAAD: if aad.is_empty() { null_mut() } else { aad.as_ptr() as *mut u8 },
        ulAADLen: aad.len() as CK_ULONG,
        ulTagBits: tag_bits,
    };
    Mech::with_struct(CKM_AES_GCM, &p)
}

/// `CK_HKDF_PARAMS` (extract and/or expand; salt bytes, or NULL salt when `salt` is `None`).
pub fn hkdf(
    mech: CK_MECHANISM_TYPE,
    extract: bool,
    expand: bool,
    prf: CK_MECHANISM_TYPE,
    salt: Option<&[u8]>,
    info: &[u8],
) -> Mech {
    let (salt_type, p_salt, salt_len) = match salt {
        None => (CKF_HKDF_SALT_NULL, null_mut(), 0),
        Some(s) => (CKF_HKDF_SALT_DATA, if s.is_empty() { null_mut() } else { s.as_ptr() as *mut u8 }, s.len()),
    };
    let p = CK_HKDF_PARAMS {
        bExtract: extract as CK_BBOOL,
        bExpand: expand as CK_BBOOL,
        prfHashMechanism: prf,
        ulSaltType: salt_type,
        pSalt: p_salt,
        ulSaltLen: salt_len as CK_ULONG,
        hSaltKey: CK_INVALID_HANDLE,
        pInfo: if info.is_empty() { null_mut() } else { info.as_ptr() as *mut u8 },
        ulInfoLen: info.len() as CK_ULONG,
    };
    Mech::with_struct(mech, &p)
}

/// `CKM_PKCS5_PBKD2` with [`pbkd2_params`].
pub fn pbkd2(prf: CK_ULONG, password: &[u8], salt: &[u8], iterations: CK_ULONG) -> Mech {
    Mech::with_struct(CKM_PKCS5_PBKD2, &pbkd2_params(prf, password, salt, iterations))
}

/// `CK_PKCS5_PBKD2_PARAMS2` for `password` and a specified `salt` (no PRF data); the buffers must
/// outlive the structure.
pub fn pbkd2_params(prf: CK_ULONG, password: &[u8], salt: &[u8], iterations: CK_ULONG) -> CK_PKCS5_PBKD2_PARAMS2 {
    CK_PKCS5_PBKD2_PARAMS2 {
        saltSource: CKZ_SALT_SPECIFIED,
        pSaltSourceData: salt.as_ptr() as *mut c_void,
        ulSaltSourceDataLen: salt.len() as CK_ULONG,
        iterations,
        prf,
        pPrfData: null_mut(),
        ulPrfDataLen: 0,
        pPassword: password.as_ptr() as *mut u8,
        ulPasswordLen: password.len() as CK_ULONG,
    }
}

/// The older `CK_PKCS5_PBKD2_PARAMS` with the values of `p`, whose password length is behind a
/// pointer: `password_len` is set to `p`'s and pointed at.
pub fn pbkd2_params_v1(p: &CK_PKCS5_PBKD2_PARAMS2, password_len: &mut CK_ULONG) -> CK_PKCS5_PBKD2_PARAMS {
    *password_len = p.ulPasswordLen;
    CK_PKCS5_PBKD2_PARAMS {
        saltSource: p.saltSource,
        pSaltSourceData: p.pSaltSourceData,
        ulSaltSourceDataLen: p.ulSaltSourceDataLen,
        iterations: p.iterations,
        prf: p.prf,
        pPrfData: p.pPrfData,
        ulPrfDataLen: p.ulPrfDataLen,
        pPassword: p.pPassword,
        ulPasswordLen: password_len,
    }
}

/// Lower-case hex decoding of a literal.
pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}
