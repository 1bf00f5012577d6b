//! Hand-made C calls: `CK_ATTRIBUTE` and `CK_MECHANISM` builders, `CK_RV` as a `Result`, and
//! [`RawLib`], the library loaded but not initialised, for tests of `C_Initialize`, the slot and
//! token functions and of libraries other than the one under test (copies, fault-injection builds).

use crate::{lock, module_path, Env, SO_PIN, USER_PIN};
use cryptoki_sys::*;
use std::ffi::c_void;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::MutexGuard;

pub const TRUE: CK_BBOOL = CK_TRUE;
pub const FALSE: CK_BBOOL = CK_FALSE;

/// An attribute whose value is `v`'s own bytes (a `CK_ULONG`, a `CK_BBOOL`, a struct).
pub fn attr<T>(ty: CK_ATTRIBUTE_TYPE, v: &T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_: ty, pValue: v as *const T as *mut c_void, ulValueLen: std::mem::size_of::<T>() as _ }
}

/// An attribute the module writes into `v` (`C_GetAttributeValue`).
pub fn attr_mut<T>(ty: CK_ATTRIBUTE_TYPE, v: &mut T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_: ty, pValue: v as *mut T as *mut c_void, ulValueLen: std::mem::size_of::<T>() as _ }
}

/// An attribute whose value is the bytes `v`.
pub fn bytes(ty: CK_ATTRIBUTE_TYPE, v: &[u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_: ty, pValue: v.as_ptr() as *mut c_void, ulValueLen: v.len() as _ }
}

/// A mechanism without a parameter.
pub fn mech(ty: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM { mechanism: ty, pParameter: null_mut(), ulParameterLen: 0 }
}

/// A mechanism whose parameter is `len` bytes at `p`.
pub fn mech_with(ty: CK_MECHANISM_TYPE, p: *const c_void, len: usize) -> CK_MECHANISM {
    CK_MECHANISM { mechanism: ty, pParameter: p as *mut c_void, ulParameterLen: len as CK_ULONG }
}

/// A token label: `s` padded with blanks to 32 bytes.
pub fn pad32(s: &str) -> [u8; 32] {
    let mut a = [b' '; 32];
    a[..s.len()].copy_from_slice(s.as_bytes());
    a
}

/// A raw call's outcome.
pub type R<X> = Result<X, CK_RV>;

/// `CKR_OK` as `Ok(())`, any other value as `Err`.
pub fn ck(r: CK_RV) -> R<()> {
    if r == CKR_OK {
        Ok(())
    } else {
        Err(r)
    }
}

/// The slot of the (one) initialised token, as the slot list shows it now (after a
/// `C_Initialize` the slot IDs may have changed).
pub fn initialised_slot(f: &cryptoki_sys::Pkcs11) -> CK_SLOT_ID {
    let mut n: CK_ULONG = 8;
    let mut slots = [0; 8];
    unsafe {
        assert_eq!(f.C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n), CKR_OK);
        slots[..n as usize]
            .iter()
            .copied()
            .find(|s| {
                let mut ti = CK_TOKEN_INFO::default();
                f.C_GetTokenInfo(*s, &mut ti) == CKR_OK && ti.flags & CKF_TOKEN_INITIALIZED != 0
            })
            .expect("an initialised token")
    }
}

/// A library loaded raw (symbols resolved one by one) on a private store, not initialised;
/// finalised when dropped, which also removes the variables named in `unset_on_drop`.
pub struct RawLib {
    pub f: cryptoki_sys::Pkcs11,
    pub env: Env,
    pub unset_on_drop: &'static [&'static str],
    _guard: MutexGuard<'static, ()>,
}

impl Drop for RawLib {
    fn drop(&mut self) {
        unsafe { self.f.C_Finalize(null_mut()) };
        for v in self.unset_on_drop {
            std::env::remove_var(v);
        }
    }
}

impl RawLib {
    /// The module under test on a fresh store.
    pub fn new() -> RawLib {
        RawLib::with(Env::new(""))
    }

    /// The module under test on `env`'s store.
    pub fn with(env: Env) -> RawLib {
        RawLib::locked(lock(), &module_path(), env)
    }

    /// The module under test on a fresh store in `mode` (`approved` or `non-approved`) with
    /// `extra` lines in the configuration, whatever `TESSERA_MODE` the suite runs under (the
    /// variable is removed from this process, as [`crate::load_in_mode`] does).
    pub fn in_mode(mode: &str, extra: &str) -> RawLib {
        let guard = lock();
        std::env::remove_var("TESSERA_MODE");
        RawLib::locked(guard, &module_path(), Env::new(&format!("tessera.mode = {mode}\n{extra}")))
    }

    /// The library at `path` on `env`'s store, under the caller's [`lock`].
    pub fn locked(guard: MutexGuard<'static, ()>, path: &Path, env: Env) -> RawLib {
        env.activate();
        let f = unsafe { cryptoki_sys::Pkcs11::new(path) }.expect("load library");
        RawLib { f, env, unset_on_drop: &[], _guard: guard }
    }

    pub fn init(&self) {
        assert_eq!(unsafe { self.f.C_Initialize(null_mut()) }, CKR_OK);
    }

    /// `C_GetSlotList(CK_TRUE)`, with the length query first.
    pub fn slots(&self) -> Vec<CK_SLOT_ID> {
        let mut n: CK_ULONG = 0;
        assert_eq!(unsafe { self.f.C_GetSlotList(CK_TRUE, null_mut(), &mut n) }, CKR_OK);
        let mut v = vec![0; n as usize];
        assert_eq!(unsafe { self.f.C_GetSlotList(CK_TRUE, v.as_mut_ptr(), &mut n) }, CKR_OK);
        v.truncate(n as usize);
        v
    }

    pub fn token_info(&self, slot: CK_SLOT_ID) -> CK_TOKEN_INFO {
        let mut ti = CK_TOKEN_INFO::default();
        assert_eq!(unsafe { self.f.C_GetTokenInfo(slot, &mut ti) }, CKR_OK);
        ti
    }

    /// Initialises a token on the free slot (the last) with SO and user PINs; returns the free
    /// slot's ID (valid until the next `C_Initialize`, see [`initialised_slot`]).
    pub fn token(&self, label: &str) -> CK_SLOT_ID {
        let free = *self.slots().last().unwrap();
        let mut l = pad32(label);
        let so = SO_PIN.as_bytes();
        assert_eq!(unsafe { self.f.C_InitToken(free, so.as_ptr() as *mut _, so.len() as _, l.as_mut_ptr()) }, CKR_OK);
        let h = self.open(free, true);
        self.login(h, CKU_SO, SO_PIN).unwrap();
        let pin = USER_PIN.as_bytes();
        assert_eq!(unsafe { self.f.C_InitPIN(h, pin.as_ptr() as *mut _, pin.len() as _) }, CKR_OK);
        assert_eq!(unsafe { self.f.C_CloseSession(h) }, CKR_OK);
        free
    }

    pub fn open(&self, slot: CK_SLOT_ID, rw: bool) -> CK_SESSION_HANDLE {
        let mut h = 0;
        let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
        assert_eq!(unsafe { self.f.C_OpenSession(slot, flags, null_mut(), None, &mut h) }, CKR_OK);
        h
    }

    pub fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> R<()> {
        ck(unsafe { self.f.C_Login(h, user, pin.as_ptr() as *mut _, pin.len() as _) })
    }

    pub fn create(&self, h: CK_SESSION_HANDLE, t: &mut [CK_ATTRIBUTE]) -> R<CK_OBJECT_HANDLE> {
        let mut o = 0;
        ck(unsafe { self.f.C_CreateObject(h, t.as_mut_ptr(), t.len() as _, &mut o) })?;
        Ok(o)
    }
}

impl Default for RawLib {
    fn default() -> RawLib {
        RawLib::new()
    }
}
