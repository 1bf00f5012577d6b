//! Random call sequences through the real `C_*` entry points, in process, against a token in a
//! temporary directory the harness creates once (initialised, user PIN set, the user logged in on
//! an anchor session that stays open, a few keys made). Each input is a list of calls with handles
//! (known ones or any number), flags, mechanisms and their parameters, and data; every pointer is a
//! buffer the harness owns and every length at most its size (huge lengths are tested in
//! `tests/crashes.rs`). A panic inside the module becomes `CKR_GENERAL_ERROR` at the boundary:
//! the harness treats that answer as a failure, so a panic is found, not hidden.
//!
//! Login, PIN changes, token initialisation, `C_Initialize` and `C_Finalize` are not in the
//! sequences: each PIN check runs the PIN key derivation (600,000 PBKDF2 iterations), which would
//! leave a few calls a second.
#![no_main]
use arbitrary::Arbitrary;
use cryptoki_sys::*;
use libfuzzer_sys::fuzz_target;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::OnceLock;
use tessera_pkcs11::abi as c;

struct Setup {
    _dir: tempfile::TempDir,
    anchor: CK_SESSION_HANDLE,
    slot: CK_SLOT_ID,
    keys: Vec<CK_OBJECT_HANDLE>,
}

// The handles are plain numbers; the directory is only kept alive.
unsafe impl Sync for Setup {}
unsafe impl Send for Setup {}

fn attr<T>(type_: CK_ATTRIBUTE_TYPE, v: &T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_, pValue: v as *const T as *mut c_void, ulValueLen: std::mem::size_of::<T>() as CK_ULONG }
}

fn ok(rv: CK_RV, what: &str) {
    assert_eq!(rv, CKR_OK, "setup: {what}");
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| unsafe {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("tessera.conf");
        std::fs::write(&conf, format!("directories.tokendir = {}\nlog.level = ERROR\n", dir.path().display())).unwrap();
        std::env::set_var("TESSERA_CONF", &conf);
        std::env::remove_var("TESSERA_MODE");
        ok(c::C_Initialize(null_mut()), "C_Initialize");
        let mut slots = [0; 4];
        let mut n: CK_ULONG = 4;
        ok(c::C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n), "slots");
        let slot = slots[0];
        let (so, pin) = (b"12345678", b"1234");
        let mut label = [b' '; 32];
        ok(c::C_InitToken(slot, so.as_ptr() as *mut _, 8, label.as_mut_ptr()), "C_InitToken");
        let mut h = 0;
        ok(c::C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, &mut h), "open");
        ok(c::C_Login(h, CKU_SO, so.as_ptr() as *mut _, 8), "SO login");
        ok(c::C_InitPIN(h, pin.as_ptr() as *mut _, 4), "C_InitPIN");
        ok(c::C_Logout(h), "logout");
        ok(c::C_Login(h, CKU_USER, pin.as_ptr() as *mut _, 4), "user login");
        let (tru, fal) = (CK_TRUE, CK_FALSE);
        let mut keys = Vec::new();
        for (mech, len) in [(CKM_AES_KEY_GEN, 32 as CK_ULONG), (CKM_GENERIC_SECRET_KEY_GEN, 32)] {
            let mut t = [
                attr(CKA_VALUE_LEN, &len),
                attr(CKA_ENCRYPT, &tru),
                attr(CKA_DECRYPT, &tru),
                attr(CKA_SIGN, &tru),
                attr(CKA_VERIFY, &tru),
                attr(CKA_WRAP, &tru),
                attr(CKA_UNWRAP, &tru),
                attr(CKA_DERIVE, &tru),
                attr(CKA_EXTRACTABLE, &tru),
                attr(CKA_SENSITIVE, &fal),
            ];
            let mut m = CK_MECHANISM { mechanism: mech, pParameter: null_mut(), ulParameterLen: 0 };
            let mut k = 0;
            ok(c::C_GenerateKey(h, &mut m, t.as_mut_ptr(), t.len() as _, &mut k), "key");
            keys.push(k);
        }
        let bits: CK_ULONG = 2048;
        let p256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let ed25519: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
        for (mech, pa) in [
            (CKM_RSA_PKCS_KEY_PAIR_GEN, attr(CKA_MODULUS_BITS, &bits)),
            (
                CKM_EC_KEY_PAIR_GEN,
                CK_ATTRIBUTE { type_: CKA_EC_PARAMS, pValue: p256.as_ptr() as *mut _, ulValueLen: 10 },
            ),
            (
                CKM_EC_EDWARDS_KEY_PAIR_GEN,
                CK_ATTRIBUTE { type_: CKA_EC_PARAMS, pValue: ed25519.as_ptr() as *mut _, ulValueLen: 5 },
            ),
        ] {
            let mut public = [pa, attr(CKA_ENCRYPT, &tru), attr(CKA_VERIFY, &tru), attr(CKA_WRAP, &tru)];
            let mut private = [
                attr(CKA_DECRYPT, &tru),
                attr(CKA_SIGN, &tru),
                attr(CKA_UNWRAP, &tru),
                attr(CKA_DERIVE, &tru),
                attr(CKA_EXTRACTABLE, &tru),
            ];
            let mut m = CK_MECHANISM { mechanism: mech, pParameter: null_mut(), ulParameterLen: 0 };
            let (mut a, mut b) = (0, 0);
            // Ed25519 keys take no CKA_ENCRYPT/CKA_DECRYPT: fewer attributes for them.
            let (np, nv) = if mech == CKM_EC_EDWARDS_KEY_PAIR_GEN { (1, 1) } else { (public.len(), private.len()) };
            let rv = c::C_GenerateKeyPair(
                h,
                &mut m,
                public.as_mut_ptr(),
                np as _,
                private.as_mut_ptr(),
                nv as _,
                &mut a,
                &mut b,
            );
            if rv == CKR_OK {
                keys.extend([a, b]);
            }
        }
        Setup { _dir: dir, anchor: h, slot, keys }
    })
}

const MECHS: [CK_MECHANISM_TYPE; 24] = [
    CKM_AES_ECB,
    CKM_AES_CBC,
    CKM_AES_CBC_PAD,
    CKM_AES_CTR,
    CKM_AES_GCM,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_KWP,
    CKM_AES_CMAC,
    CKM_AES_CMAC_GENERAL,
    CKM_SHA256_HMAC,
    CKM_SHA256_HMAC_GENERAL,
    CKM_SHA256,
    CKM_SHA3_256,
    CKM_RSA_PKCS,
    CKM_RSA_X_509,
    CKM_RSA_PKCS_OAEP,
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_ECDSA,
    CKM_ECDSA_SHA256,
    CKM_EDDSA,
    CKM_ECDH1_DERIVE,
    CKM_HKDF_DERIVE,
    CKM_GENERIC_SECRET_KEY_GEN,
];

#[derive(Arbitrary, Debug)]
enum Param {
    None,
    Bytes(Vec<u8>),
    Gcm { iv: Vec<u8>, aad: Vec<u8>, tag_bits: u8 },
    Oaep { hash: u8, mgf: u8, label: Vec<u8> },
    Pss { hash: u8, mgf: u8, salt: u16 },
    Ctr { bits: u8, cb: [u8; 16] },
    Ecdh { kdf: u8, public: Vec<u8> },
    Hkdf { extract: bool, expand: bool, salt_type: u8, salt: Vec<u8>, info: Vec<u8> },
    Eddsa { ph: bool, context: Vec<u8> },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Handle {
    Known(u8),
    Any(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Out {
    /// A NULL buffer: a length query.
    Query,
    /// A separate buffer of this capacity.
    Separate(u16),
    /// The input's own buffer, the output at this offset from the input (capacity: what remains).
    Overlap(i8),
}

#[derive(Arbitrary, Debug)]
enum Call {
    OpenSession(bool),
    CloseSession(Handle),
    Init { what: u8, session: Handle, mech: u8, param: Param, key: Handle },
    Single { what: u8, session: Handle, data: Vec<u8>, out: Out },
    Update { what: u8, session: Handle, data: Vec<u8>, out: Out },
    Final { what: u8, session: Handle, out: Out },
    Verify { session: Handle, data: Vec<u8>, sig: Vec<u8>, single: bool },
    FindInit { session: Handle, attrs: Vec<(u8, Vec<u8>)> },
    Find { session: Handle, max: u8 },
    FindFinal(Handle),
    GetAttributes { session: Handle, object: Handle, types: Vec<(u8, u16)> },
    CreateData { session: Handle, token: bool, value: Vec<u8> },
    Destroy { session: Handle, object: Handle },
    GenerateKey { session: Handle, mech: u8, len: u8, token: bool },
    Wrap { session: Handle, mech: u8, param: Param, wrapping: Handle, key: Handle, out: Out },
    Unwrap { session: Handle, mech: u8, param: Param, unwrapping: Handle, data: Vec<u8> },
    Derive { session: Handle, mech: u8, param: Param, base: Handle },
    Random { session: Handle, len: u8 },
    MessageInit { encrypt: bool, session: Handle, key: Handle },
    EncryptMessage { session: Handle, iv_len: u8, generator: u8, tag_bits: u8, aad: Vec<u8>, data: Vec<u8>, out: Out },
    MessageFinal { encrypt: bool, session: Handle },
    SessionInfo(Handle),
    Cancel { session: Handle, flags: u64 },
}

struct State {
    sessions: Vec<CK_SESSION_HANDLE>,
    objects: Vec<CK_OBJECT_HANDLE>,
}

impl State {
    fn session(&self, h: Handle) -> CK_SESSION_HANDLE {
        match h {
            Handle::Known(i) => self.sessions[i as usize % self.sessions.len()],
            Handle::Any(v) => v,
        }
    }
    fn object(&self, h: Handle) -> CK_OBJECT_HANDLE {
        match h {
            Handle::Known(i) if !self.objects.is_empty() => self.objects[i as usize % self.objects.len()],
            Handle::Known(i) => i as CK_OBJECT_HANDLE,
            Handle::Any(v) => v,
        }
    }
}

/// A parameter's buffers, kept alive for the call.
struct Built {
    bytes: Vec<u8>,
    _keep: Vec<Vec<u8>>,
}

fn build(p: &Param) -> Built {
    fn raw<S>(s: &S) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts(s as *const S as *const u8, std::mem::size_of::<S>()).to_vec() }
    }
    let hashes = [CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512, 0x1234];
    let mgfs = [CKG_MGF1_SHA1, CKG_MGF1_SHA256, CKG_MGF1_SHA384, 0];
    let mut keep = Vec::new();
    let mut hold = |v: &Vec<u8>| -> (*mut u8, CK_ULONG) {
        let mut v = v.clone();
        let r = (if v.is_empty() { null_mut() } else { v.as_mut_ptr() }, v.len() as CK_ULONG);
        keep.push(v);
        r
    };
    let bytes = match p {
        Param::None => Vec::new(),
        Param::Bytes(b) => b.clone(),
        Param::Gcm { iv, aad, tag_bits } => {
            let ((pi, li), (pa, la)) = (hold(iv), hold(aad));
            raw(&CK_GCM_PARAMS {
                pIv: pi,
                ulIvLen: li,
                ulIvBits: li * 8,
                pAAD: pa,
                ulAADLen: la,
                ulTagBits: *tag_bits as _,
            })
        }
        Param::Oaep { hash, mgf, label } => {
            let (pl, ll) = hold(label);
            raw(&CK_RSA_PKCS_OAEP_PARAMS {
                hashAlg: hashes[*hash as usize % hashes.len()],
                mgf: mgfs[*mgf as usize % mgfs.len()],
                source: if ll > 0 { CKZ_DATA_SPECIFIED } else { 0 },
                pSourceData: pl as *mut c_void,
                ulSourceDataLen: ll,
            })
        }
        Param::Pss { hash, mgf, salt } => raw(&CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: hashes[*hash as usize % hashes.len()],
            mgf: mgfs[*mgf as usize % mgfs.len()],
            sLen: *salt as _,
        }),
        Param::Ctr { bits, cb } => raw(&CK_AES_CTR_PARAMS { ulCounterBits: *bits as _, cb: *cb }),
        Param::Ecdh { kdf, public } => {
            let (pp, lp) = hold(public);
            raw(&CK_ECDH1_DERIVE_PARAMS {
                kdf: (*kdf % 12) as _,
                ulSharedDataLen: 0,
                pSharedData: null_mut(),
                ulPublicDataLen: lp,
                pPublicData: pp,
            })
        }
        Param::Hkdf { extract, expand, salt_type, salt, info } => {
            let ((ps, ls), (pi, li)) = (hold(salt), hold(info));
            raw(&CK_HKDF_PARAMS {
                bExtract: *extract as u8,
                bExpand: *expand as u8,
                prfHashMechanism: CKM_SHA256,
                ulSaltType: (*salt_type % 5) as _,
                pSalt: ps,
                ulSaltLen: ls,
                hSaltKey: 0,
                pInfo: pi,
                ulInfoLen: li,
            })
        }
        Param::Eddsa { ph, context } => {
            let (pc, lc) = hold(context);
            raw(&CK_EDDSA_PARAMS { phFlag: *ph as u8, ulContextDataLen: lc, pContextData: pc })
        }
    };
    Built { bytes, _keep: keep }
}

/// Mechanisms whose parameter structure holds pointers.
const POINTER_PARAMS: [CK_MECHANISM_TYPE; 6] =
    [CKM_AES_GCM, CKM_RSA_PKCS_OAEP, CKM_ECDH1_DERIVE, CKM_HKDF_DERIVE, CKM_EDDSA, CKM_PKCS5_PBKD2];

/// The mechanism for a parameter: a structure with pointers goes to its own mechanism only (read
/// as another structure of its size, its fields would be pointers and lengths the harness did not
/// make, which no caller's contract allows); plain bytes and pointer-free structures given to a
/// mechanism that expects pointers never have the size of such a structure.
fn mech(i: u8, param: &Param, b: &mut Built) -> CK_MECHANISM {
    let mechanism = match param {
        Param::Gcm { .. } => CKM_AES_GCM,
        Param::Oaep { .. } => CKM_RSA_PKCS_OAEP,
        Param::Ecdh { .. } => CKM_ECDH1_DERIVE,
        Param::Hkdf { .. } => CKM_HKDF_DERIVE,
        Param::Eddsa { .. } => CKM_EDDSA,
        _ => MECHS[i as usize % MECHS.len()],
    };
    let own = matches!(
        param,
        Param::Gcm { .. } | Param::Oaep { .. } | Param::Ecdh { .. } | Param::Hkdf { .. } | Param::Eddsa { .. }
    );
    if !own && POINTER_PARAMS.contains(&mechanism) && [24, 40, 48, 72].contains(&b.bytes.len()) {
        b.bytes.pop();
    }
    CK_MECHANISM {
        mechanism,
        pParameter: if b.bytes.is_empty() { null_mut() } else { b.bytes.as_mut_ptr() as *mut c_void },
        ulParameterLen: b.bytes.len() as _,
    }
}

/// An input buffer and the output for it: (buffer, input offset, output pointer, capacity).
fn buffers(data: &[u8], out: Out) -> (Vec<u8>, *mut u8, *mut u8, CK_ULONG, Vec<u8>) {
    let mut buf = vec![0u8; data.len() + 600];
    buf[64..64 + data.len()].copy_from_slice(data);
    let ip = unsafe { buf.as_mut_ptr().add(64) };
    let mut sep = Vec::new();
    let (op, cap) = match out {
        Out::Query => (null_mut(), 0),
        Out::Separate(n) => {
            sep = vec![0u8; n as usize % 1024];
            (sep.as_mut_ptr(), sep.len() as CK_ULONG)
        }
        Out::Overlap(o) => {
            let start = (64 + o as isize / 2) as usize;
            (unsafe { buf.as_mut_ptr().add(start) }, (buf.len() - start) as CK_ULONG)
        }
    };
    (buf, ip, op, cap, sep)
}

fn checked(rv: CK_RV, what: &str) {
    assert_ne!(rv, CKR_GENERAL_ERROR, "{what}: CKR_GENERAL_ERROR (a panic in the module?)");
}

unsafe fn run(s: &Setup, st: &mut State, call: &Call) {
    match call {
        Call::OpenSession(rw) => {
            let mut h = 0;
            let flags = CKF_SERIAL_SESSION | if *rw { CKF_RW_SESSION } else { 0 };
            if c::C_OpenSession(s.slot, flags, null_mut(), None, &mut h) == CKR_OK && st.sessions.len() < 16 {
                st.sessions.push(h);
            }
        }
        Call::CloseSession(h) => {
            let h = st.session(*h);
            if h != s.anchor {
                checked(c::C_CloseSession(h), "C_CloseSession");
                st.sessions.retain(|x| *x != h);
            }
        }
        Call::Init { what, session, mech: m, param, key } => {
            let mut b = build(param);
            let mut m = mech(*m, param, &mut b);
            let (h, k) = (st.session(*session), st.object(*key));
            let rv = match what % 5 {
                0 => c::C_EncryptInit(h, &mut m, k),
                1 => c::C_DecryptInit(h, &mut m, k),
                2 => c::C_SignInit(h, &mut m, k),
                3 => c::C_VerifyInit(h, &mut m, k),
                _ => c::C_DigestInit(h, &mut m),
            };
            checked(rv, "init");
        }
        Call::Single { what, session, data, out } => {
            let (_buf, ip, op, mut cap, _sep) = buffers(data, *out);
            let h = st.session(*session);
            let n = data.len() as CK_ULONG;
            let rv = match what % 4 {
                0 => c::C_Encrypt(h, ip, n, op, &mut cap),
                1 => c::C_Decrypt(h, ip, n, op, &mut cap),
                2 => c::C_Sign(h, ip, n, op, &mut cap),
                _ => c::C_Digest(h, ip, n, op, &mut cap),
            };
            checked(rv, "single");
        }
        Call::Update { what, session, data, out } => {
            let (_buf, ip, op, mut cap, _sep) = buffers(data, *out);
            let h = st.session(*session);
            let n = data.len() as CK_ULONG;
            let rv = match what % 5 {
                0 => c::C_EncryptUpdate(h, ip, n, op, &mut cap),
                1 => c::C_DecryptUpdate(h, ip, n, op, &mut cap),
                2 => c::C_SignUpdate(h, ip, n),
                3 => c::C_VerifyUpdate(h, ip, n),
                _ => c::C_DigestUpdate(h, ip, n),
            };
            checked(rv, "update");
        }
        Call::Final { what, session, out } => {
            let (_buf, _ip, op, mut cap, _sep) = buffers(&[], *out);
            let h = st.session(*session);
            let rv = match what % 4 {
                0 => c::C_EncryptFinal(h, op, &mut cap),
                1 => c::C_DecryptFinal(h, op, &mut cap),
                2 => c::C_SignFinal(h, op, &mut cap),
                _ => c::C_DigestFinal(h, op, &mut cap),
            };
            checked(rv, "final");
        }
        Call::Verify { session, data, sig, single } => {
            let (mut d, mut g) = (data.clone(), sig.clone());
            let h = st.session(*session);
            let rv = if *single {
                c::C_Verify(h, d.as_mut_ptr(), d.len() as _, g.as_mut_ptr(), g.len() as _)
            } else {
                c::C_VerifyFinal(h, g.as_mut_ptr(), g.len() as _)
            };
            checked(rv, "verify");
        }
        Call::FindInit { session, attrs } => {
            let types =
                [CKA_CLASS, CKA_LABEL, CKA_TOKEN, CKA_KEY_TYPE, CKA_ID, CKA_PRIVATE, CKA_VALUE_LEN, CKA_ENCRYPT];
            let mut vals: Vec<Vec<u8>> = attrs.iter().map(|(_, v)| v.clone()).collect();
            let mut t: Vec<CK_ATTRIBUTE> = attrs
                .iter()
                .zip(vals.iter_mut())
                .map(|((ty, _), v)| CK_ATTRIBUTE {
                    type_: types[*ty as usize % types.len()],
                    pValue: if v.is_empty() { null_mut() } else { v.as_mut_ptr() as *mut c_void },
                    ulValueLen: v.len() as _,
                })
                .collect();
            checked(c::C_FindObjectsInit(st.session(*session), t.as_mut_ptr(), t.len() as _), "C_FindObjectsInit");
        }
        Call::Find { session, max } => {
            let mut found = vec![0; *max as usize];
            let mut n = 0;
            let p = if found.is_empty() { null_mut() } else { found.as_mut_ptr() };
            checked(c::C_FindObjects(st.session(*session), p, found.len() as _, &mut n), "C_FindObjects");
            assert!(n as usize <= found.len());
        }
        Call::FindFinal(h) => checked(c::C_FindObjectsFinal(st.session(*h)), "C_FindObjectsFinal"),
        Call::GetAttributes { session, object, types } => {
            let all = [
                CKA_CLASS,
                CKA_VALUE,
                CKA_LABEL,
                CKA_MODULUS,
                CKA_EC_POINT,
                CKA_WRAP_TEMPLATE,
                CKA_KEY_TYPE,
                CKA_VALUE_LEN,
                CKA_ALLOWED_MECHANISMS,
                CKA_UNIQUE_ID,
            ];
            let mut bufs: Vec<Vec<u8>> = types.iter().map(|(_, n)| vec![0u8; *n as usize % 600]).collect();
            let mut t: Vec<CK_ATTRIBUTE> = types
                .iter()
                .zip(bufs.iter_mut())
                .map(|((ty, n), b)| CK_ATTRIBUTE {
                    type_: all[*ty as usize % all.len()],
                    pValue: if n & 1 == 1 { null_mut() } else { b.as_mut_ptr() as *mut c_void },
                    ulValueLen: b.len() as _,
                })
                .collect();
            let rv = c::C_GetAttributeValue(st.session(*session), st.object(*object), t.as_mut_ptr(), t.len() as _);
            checked(rv, "C_GetAttributeValue");
        }
        Call::CreateData { session, token, value } => {
            let (class, tok) = (CKO_DATA, if *token { CK_TRUE } else { CK_FALSE });
            let mut v = value.clone();
            let mut t = [
                attr(CKA_CLASS, &class),
                attr(CKA_TOKEN, &tok),
                CK_ATTRIBUTE { type_: CKA_VALUE, pValue: v.as_mut_ptr() as *mut c_void, ulValueLen: v.len() as _ },
            ];
            let mut o = 0;
            if c::C_CreateObject(st.session(*session), t.as_mut_ptr(), 3, &mut o) == CKR_OK {
                st.objects.push(o);
            }
        }
        Call::Destroy { session, object } => {
            let o = st.object(*object);
            if !s.keys.contains(&o) {
                checked(c::C_DestroyObject(st.session(*session), o), "C_DestroyObject");
            }
        }
        Call::GenerateKey { session, mech: m, len, token } => {
            let (l, tok, tru) = (*len as CK_ULONG, if *token { CK_TRUE } else { CK_FALSE }, CK_TRUE);
            let mut t = [attr(CKA_VALUE_LEN, &l), attr(CKA_TOKEN, &tok), attr(CKA_ENCRYPT, &tru)];
            let mut b = build(&Param::None);
            let mut m = mech(*m, &Param::None, &mut b);
            let mut k = 0;
            let rv = c::C_GenerateKey(st.session(*session), &mut m, t.as_mut_ptr(), 3, &mut k);
            checked(rv, "C_GenerateKey");
            if rv == CKR_OK {
                st.objects.push(k);
            }
        }
        Call::Wrap { session, mech: m, param, wrapping, key, out } => {
            let mut b = build(param);
            let mut m = mech(*m, param, &mut b);
            let (_buf, _ip, op, mut cap, _sep) = buffers(&[], *out);
            let rv = c::C_WrapKey(st.session(*session), &mut m, st.object(*wrapping), st.object(*key), op, &mut cap);
            checked(rv, "C_WrapKey");
        }
        Call::Unwrap { session, mech: m, param, unwrapping, data } => {
            let mut b = build(param);
            let mut m = mech(*m, param, &mut b);
            let (class, kt, fal) = (CKO_SECRET_KEY, CKK_AES, CK_FALSE);
            let mut t = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_TOKEN, &fal)];
            let mut d = data.clone();
            let mut k = 0;
            let rv = c::C_UnwrapKey(
                st.session(*session),
                &mut m,
                st.object(*unwrapping),
                d.as_mut_ptr(),
                d.len() as _,
                t.as_mut_ptr(),
                3,
                &mut k,
            );
            checked(rv, "C_UnwrapKey");
            if rv == CKR_OK {
                st.objects.push(k);
            }
        }
        Call::Derive { session, mech: m, param, base } => {
            let mut b = build(param);
            let mut m = mech(*m, param, &mut b);
            let (class, kt, len, fal) = (CKO_SECRET_KEY, CKK_GENERIC_SECRET, 32 as CK_ULONG, CK_FALSE);
            let mut t =
                [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &fal)];
            let mut k = 0;
            let rv = c::C_DeriveKey(st.session(*session), &mut m, st.object(*base), t.as_mut_ptr(), 4, &mut k);
            checked(rv, "C_DeriveKey");
            if rv == CKR_OK {
                st.objects.push(k);
            }
        }
        Call::Random { session, len } => {
            let mut b = vec![0u8; *len as usize];
            checked(c::C_GenerateRandom(st.session(*session), b.as_mut_ptr(), b.len() as _), "C_GenerateRandom");
        }
        Call::MessageInit { encrypt, session, key } => {
            let mut m = CK_MECHANISM { mechanism: CKM_AES_GCM, pParameter: null_mut(), ulParameterLen: 0 };
            let (h, k) = (st.session(*session), st.object(*key));
            let rv =
                if *encrypt { c::C_MessageEncryptInit(h, &mut m, k) } else { c::C_MessageDecryptInit(h, &mut m, k) };
            checked(rv, "message init");
        }
        Call::EncryptMessage { session, iv_len, generator, tag_bits, aad, data, out } => {
            let (_buf, ip, op, mut cap, _sep) = buffers(data, *out);
            let mut iv = vec![0u8; (*iv_len % 32) as usize];
            let mut tag = [0u8; 16];
            let mut a = aad.clone();
            let mut p = CK_GCM_MESSAGE_PARAMS {
                pIv: iv.as_mut_ptr(),
                ulIvLen: iv.len() as _,
                ulIvFixedBits: 0,
                ivGenerator: (*generator % 5) as _,
                pTag: tag.as_mut_ptr(),
                ulTagBits: (*tag_bits as CK_ULONG % 17) * 8,
            };
            let rv = c::C_EncryptMessage(
                st.session(*session),
                &mut p as *mut _ as *mut c_void,
                std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as _,
                a.as_mut_ptr(),
                a.len() as _,
                ip,
                data.len() as _,
                op,
                &mut cap,
            );
            checked(rv, "C_EncryptMessage");
        }
        Call::MessageFinal { encrypt, session } => {
            let h = st.session(*session);
            checked(if *encrypt { c::C_MessageEncryptFinal(h) } else { c::C_MessageDecryptFinal(h) }, "message final");
        }
        Call::SessionInfo(h) => {
            let mut i = CK_SESSION_INFO::default();
            checked(c::C_GetSessionInfo(st.session(*h), &mut i), "C_GetSessionInfo");
        }
        Call::Cancel { session, flags } => checked(c::C_SessionCancel(st.session(*session), *flags), "C_SessionCancel"),
    }
}

fuzz_target!(|calls: Vec<Call>| {
    let s = setup();
    let mut st = State { sessions: vec![s.anchor], objects: s.keys.clone() };
    for call in calls.iter().take(64) {
        unsafe { run(s, &mut st, call) };
    }
    // What this input made goes: objects, sessions, and the anchor session's operations.
    unsafe {
        for o in &st.objects {
            if !s.keys.contains(o) {
                c::C_DestroyObject(s.anchor, *o);
            }
        }
        for h in &st.sessions {
            if *h != s.anchor {
                c::C_CloseSession(*h);
            }
        }
        c::C_SessionCancel(s.anchor, !0);
        c::C_FindObjectsFinal(s.anchor);
        c::C_MessageEncryptFinal(s.anchor);
        c::C_MessageDecryptFinal(s.anchor);
    }
});
