//! Arguments that once killed the calling process, and buffers that overlap.
//!
//! Each malformed call runs in a child process (this test binary run again with
//! `TESSERA_CRASH_CHILD` naming the test): the child must exit normally and report the `CK_RV` the
//! module answered; a signal (a segmentation fault, a stack overflow) or an abort (an allocation
//! failure) fails the test. The overlap tests run in-process: an encryption or decryption whose
//! output buffer is the input's, or starts 8 bytes before or after it, gives what separate buffers
//! give.

use cryptoki_sys::*;
use std::ffi::c_void;
use std::ptr::{null, null_mut};
use tessera_tests::*;

const ENV: &str = "TESSERA_CRASH_CHILD";

/// Runs `body` in a child process and returns the `CK_RV` it reported; fails unless the child
/// exited normally.
fn in_child(name: &str, body: impl FnOnce() -> CK_RV) -> CK_RV {
    if std::env::var(ENV).as_deref() == Ok(name) {
        let rv = body();
        println!("\nrv={rv:#x}");
        std::process::exit(0);
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ENV, name)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name}: the call killed the process ({}); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line =
        stdout.lines().find_map(|l| l.strip_prefix("rv=")).unwrap_or_else(|| panic!("{name}: no rv in {stdout}"));
    CK_RV::from_str_radix(line.trim_start_matches("0x"), 16).expect("rv")
}

/// A token in the non-approved mode (these tests are about the ABI, not the policy) with a
/// logged-in user session.
fn token() -> Token {
    Token::open("non-approved", "crashes")
}

/// A session AES key of `len` bytes that can encrypt and decrypt.
fn aes(t: &Token, len: CK_ULONG) -> CK_OBJECT_HANDLE {
    let mut tpl =
        [attr(CKA_VALUE_LEN, &len), attr(CKA_ENCRYPT, &TRUE), attr(CKA_DECRYPT, &TRUE), attr(CKA_TOKEN, &FALSE)];
    let mut m = mech(CKM_AES_KEY_GEN);
    let mut k = 0;
    assert_eq!(unsafe { t.f.C_GenerateKey(t.h, &mut m, tpl.as_mut_ptr(), tpl.len() as _, &mut k) }, CKR_OK);
    k
}

/// A session RSA-2048 key pair (public, private).
fn rsa(t: &Token) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let public = vec![(CKA_MODULUS_BITS, V::U(2048)), (CKA_ENCRYPT, V::B(true)), (CKA_TOKEN, V::B(false))];
    let private = vec![(CKA_DECRYPT, V::B(true)), (CKA_TOKEN, V::B(false))];
    let pair = t.generate_pair(&Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN), &public, &private);
    assert_eq!(pair.map(|_| ()), Ok(()));
    pair.unwrap()
}

// ---- 1. nested templates ----------------------------------------------------------------------

/// A `CKA_WRAP_TEMPLATE` whose value is the array that holds it: once unbounded recursion (a
/// stack overflow) in reading the template, now `CKR_ATTRIBUTE_VALUE_INVALID`. No login needed.
#[test]
fn wrap_template_containing_itself() {
    assert_eq!(self_referencing("wrap_template_containing_itself", CKA_WRAP_TEMPLATE), CKR_ATTRIBUTE_VALUE_INVALID);
}

/// The same with `CKA_DERIVE_TEMPLATE`, the nested template the key-management rules added: read
/// under the same one-level rule.
#[test]
fn derive_template_containing_itself() {
    assert_eq!(self_referencing("derive_template_containing_itself", CKA_DERIVE_TEMPLATE), CKR_ATTRIBUTE_VALUE_INVALID);
}

/// `C_FindObjectsInit`, in a child process, with a template whose one attribute `ty` holds the
/// template itself.
fn self_referencing(test: &str, ty: CK_ATTRIBUTE_TYPE) -> CK_RV {
    in_child(test, || {
        let t = token();
        let mut h = 0;
        unsafe {
            // No login: the application has only a public session.
            assert_eq!(t.f.C_Logout(t.h), CKR_OK);
            assert_eq!(t.f.C_OpenSession(t.slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);
            let mut a = [CK_ATTRIBUTE { type_: ty, pValue: null_mut(), ulValueLen: 0 }];
            a[0].pValue = a.as_mut_ptr() as *mut c_void;
            a[0].ulValueLen = std::mem::size_of::<CK_ATTRIBUTE>() as CK_ULONG;
            t.f.C_FindObjectsInit(h, a.as_mut_ptr(), 1)
        }
    })
}

/// Templates nested three deep, each a separate array: the second level holds a template, which
/// no attribute may (`CKR_ATTRIBUTE_VALUE_INVALID`); one level of nesting is read as before.
#[test]
fn templates_nested_more_than_one_level() {
    let rv = in_child("templates_nested_more_than_one_level", || {
        let t = token();
        let mut h = 0;
        unsafe {
            // No login: the application has only a public session.
            assert_eq!(t.f.C_Logout(t.h), CKR_OK);
            assert_eq!(t.f.C_OpenSession(t.slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);
            let class = CKO_SECRET_KEY;
            let size = std::mem::size_of::<CK_ATTRIBUTE>() as CK_ULONG;
            let mut inner = [attr(CKA_CLASS, &class)];
            let mut one =
                [CK_ATTRIBUTE { type_: CKA_WRAP_TEMPLATE, pValue: inner.as_mut_ptr() as *mut _, ulValueLen: size }];
            assert_eq!(t.f.C_FindObjectsInit(h, one.as_mut_ptr(), 1), CKR_OK, "one level of nesting");
            assert_eq!(t.f.C_FindObjectsFinal(h), CKR_OK);
            let mut middle =
                [CK_ATTRIBUTE { type_: CKA_UNWRAP_TEMPLATE, pValue: inner.as_mut_ptr() as *mut _, ulValueLen: size }];
            let mut outer =
                [CK_ATTRIBUTE { type_: CKA_WRAP_TEMPLATE, pValue: middle.as_mut_ptr() as *mut _, ulValueLen: size }];
            t.f.C_FindObjectsInit(h, outer.as_mut_ptr(), 1)
        }
    });
    assert_eq!(rv, CKR_ATTRIBUTE_VALUE_INVALID);
}

/// A template whose nested templates all point at one big value array: the attributes read,
/// nested ones included, count against the template limit (`CKR_ATTRIBUTE_VALUE_INVALID` at the
/// nested template that goes over it) instead of being copied thousands of times over.
#[test]
fn nested_templates_count_against_the_limit() {
    let rv = in_child("nested_templates_count_against_the_limit", || {
        let t = token();
        let mut h = 0;
        unsafe {
            // No login: the application has only a public session.
            assert_eq!(t.f.C_Logout(t.h), CKR_OK);
            assert_eq!(t.f.C_OpenSession(t.slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);
            let label = vec![b'x'; 1 << 20];
            let one = CK_ATTRIBUTE { type_: CKA_LABEL, pValue: label.as_ptr() as *mut _, ulValueLen: label.len() as _ };
            let mut inner = vec![one; 4000];
            let size = (inner.len() * std::mem::size_of::<CK_ATTRIBUTE>()) as CK_ULONG;
            let nested =
                CK_ATTRIBUTE { type_: CKA_WRAP_TEMPLATE, pValue: inner.as_mut_ptr() as *mut _, ulValueLen: size };
            let mut outer = vec![nested; 3];
            t.f.C_FindObjectsInit(h, outer.as_mut_ptr(), outer.len() as _)
        }
    });
    assert_eq!(rv, CKR_ATTRIBUTE_VALUE_INVALID);
}

// ---- 2. PBKDF2 password length ------------------------------------------------------------------

/// PBKDF2-HMAC-SHA256 parameters (1,000 iterations) whose `ulPasswordLen` is `password_len`.
fn pbkd2_params_len(password: &[u8], salt: &[u8], password_len: CK_ULONG) -> CK_PKCS5_PBKD2_PARAMS2 {
    CK_PKCS5_PBKD2_PARAMS2 {
        ulPasswordLen: password_len,
        ..pbkd2_params(CKP_PKCS5_PBKD2_HMAC_SHA256, password, salt, 1000)
    }
}

unsafe fn pbkd2(t: &Token, p: &mut CK_PKCS5_PBKD2_PARAMS2) -> CK_RV {
    let (len, class, kt, fal) = (32 as CK_ULONG, CKO_SECRET_KEY, CKK_GENERIC_SECRET, CK_FALSE);
    let mut tpl = [attr(CKA_CLASS, &class), attr(CKA_KEY_TYPE, &kt), attr(CKA_VALUE_LEN, &len), attr(CKA_TOKEN, &fal)];
    let mut m = CK_MECHANISM {
        mechanism: CKM_PKCS5_PBKD2,
        pParameter: p as *mut _ as *mut c_void,
        ulParameterLen: std::mem::size_of::<CK_PKCS5_PBKD2_PARAMS2>() as _,
    };
    let mut k = 0;
    t.f.C_GenerateKey(t.h, &mut m, tpl.as_mut_ptr(), tpl.len() as _, &mut k)
}

/// `CK_PKCS5_PBKD2_PARAMS2` with a password of 64 KiB (`ulPasswordLen` 0x10000, a real buffer):
/// once taken for the older structure's pointer to a length and dereferenced, now
/// `CKR_MECHANISM_PARAM_INVALID` (no password is that long). Both structures with a short password
/// still derive a key.
#[test]
fn pbkd2_params2_password_length_from_64k() {
    let rv = in_child("pbkd2_params2_password_length_from_64k", || {
        let t = token();
        let salt = b"saltsaltsaltsalt";
        unsafe {
            let short = b"password";
            assert_eq!(pbkd2(&t, &mut pbkd2_params_len(short, salt, short.len() as _)), CKR_OK, "PARAMS2");
            let mut len_cell = short.len() as CK_ULONG;
            let mut old = pbkd2_params_len(short, salt, &mut len_cell as *mut CK_ULONG as CK_ULONG);
            assert_eq!(pbkd2(&t, &mut old), CKR_OK, "the older PARAMS, ulPasswordLen a pointer");
            for len in [0x1_0000, 0x1_0008, 0x2_0000 + 3] {
                let long = vec![b'p'; len];
                let rv = pbkd2(&t, &mut pbkd2_params_len(&long, salt, len as CK_ULONG));
                assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID, "password length {len:#x}");
            }
            pbkd2(&t, &mut pbkd2_params_len(short, salt, 0x1_0000))
        }
    });
    assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID);
}

// ---- 3. CK_GCM_MESSAGE_PARAMS where CK_GCM_PARAMS is expected --------------------------------

/// `CK_GCM_MESSAGE_PARAMS` given to `C_EncryptInit` with `CKM_AES_GCM`: the same size as
/// `CK_GCM_PARAMS`, so `ivGenerator` was read as `pAAD` and `pTag` as `ulAADLen`, and followed.
/// Now `CKR_MECHANISM_PARAM_INVALID`, for every IV generator.
#[test]
fn gcm_message_params_given_to_encrypt_init() {
    let rv = in_child("gcm_message_params_given_to_encrypt_init", || {
        let t = token();
        let k = aes(&t, 32);
        let mut iv = [0u8; 12];
        let mut tag = [0u8; 16];
        let mut last = CKR_OK;
        for generator in [CKG_GENERATE, CKG_GENERATE_COUNTER, CKG_GENERATE_RANDOM, CKG_GENERATE_COUNTER_XOR] {
            let mut p = CK_GCM_MESSAGE_PARAMS {
                pIv: iv.as_mut_ptr(),
                ulIvLen: 12,
                ulIvFixedBits: 0,
                ivGenerator: generator,
                pTag: tag.as_mut_ptr(),
                ulTagBits: 128,
            };
            let mut m = CK_MECHANISM {
                mechanism: CKM_AES_GCM,
                pParameter: &mut p as *mut _ as *mut c_void,
                ulParameterLen: std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as _,
            };
            last = unsafe { t.f.C_EncryptInit(t.h, &mut m, k) };
            assert_eq!(last, CKR_MECHANISM_PARAM_INVALID, "generator {generator}");
        }
        last
    });
    assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID);
}

// ---- 4. lengths no allocation can hold ---------------------------------------------------------

/// A readable mapping of `len` bytes that takes no memory (every page reads as zero), so that a
/// huge length is a real buffer; `None` where the address space has no room for it.
fn huge_buffer(len: usize) -> Option<*mut u8> {
    use nix::libc;
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as *mut u8)
}

fn gcm_params(iv: &[u8], aad: *const u8, aad_len: CK_ULONG) -> CK_GCM_PARAMS {
    CK_GCM_PARAMS {
        pIv: iv.as_ptr() as *mut _,
        ulIvLen: iv.len() as _,
        ulIvBits: (iv.len() * 8) as _,
        pAAD: aad as *mut _,
        ulAADLen: aad_len,
        ulTagBits: 128,
    }
}

/// `ulAADLen` of 2^44 on a real (mapped, empty) buffer: the copy the module makes cannot be
/// allocated, which aborted the process; now `CKR_HOST_MEMORY`. A length no buffer can have
/// (2^62) is `CKR_MECHANISM_PARAM_INVALID` before anything is read.
#[test]
fn gcm_aad_of_2_pow_44() {
    let rv = in_child("gcm_aad_of_2_pow_44", || {
        let t = token();
        let k = aes(&t, 32);
        let iv = [7u8; 12];
        let small = [0u8; 16];
        let mut p = gcm_params(&iv, small.as_ptr(), 1 << 62);
        let mut m = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: &mut p as *mut _ as *mut c_void,
            ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as _,
        };
        assert_eq!(unsafe { t.f.C_EncryptInit(t.h, &mut m, k) }, CKR_MECHANISM_PARAM_INVALID);
        let len = 1usize << 44;
        // Without room for the mapping, the length still names no allocation the module can make,
        // and nothing is read before the allocation.
        let aad = huge_buffer(len).unwrap_or(small.as_ptr() as *mut u8);
        let mut huge = gcm_params(&iv, aad, len as CK_ULONG);
        m.pParameter = &mut huge as *mut _ as *mut c_void;
        unsafe { t.f.C_EncryptInit(t.h, &mut m, k) }
    });
    assert_eq!(rv, CKR_HOST_MEMORY);
}

/// A 2^44-byte input to a multi-part AES-GCM encryption, which gathers its input: the module
/// cannot hold it (`CKR_HOST_MEMORY`) and says so instead of aborting. A length past the top of
/// the address space is `CKR_ARGUMENTS_BAD`.
#[test]
fn data_length_of_2_pow_44() {
    let rv = in_child("data_length_of_2_pow_44", || {
        let t = token();
        let k = aes(&t, 32);
        let iv = [7u8; 12];
        let mut p = gcm_params(&iv, null(), 0);
        let mut m = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: &mut p as *mut _ as *mut c_void,
            ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as _,
        };
        let mut out = [0u8; 64];
        let mut out_len: CK_ULONG = 64;
        unsafe {
            assert_eq!(t.f.C_EncryptInit(t.h, &mut m, k), CKR_OK);
            let rv = t.f.C_EncryptUpdate(t.h, out.as_mut_ptr(), 1 << 62, out.as_mut_ptr(), &mut out_len);
            assert_eq!(rv, CKR_ARGUMENTS_BAD);
            assert_eq!(t.f.C_EncryptInit(t.h, &mut m, k), CKR_OK);
            let Some(data) = huge_buffer(1 << 44) else {
                println!("no address space for a 2^44-byte mapping: the allocation path is not reached");
                return CKR_HOST_MEMORY;
            };
            out_len = 64;
            t.f.C_EncryptUpdate(t.h, data, 1 << 44, out.as_mut_ptr(), &mut out_len)
        }
    });
    assert_eq!(rv, CKR_HOST_MEMORY);
}

// ---- overlapping input and output --------------------------------------------------------------

const DATA_LEN: usize = 256;

/// Runs one single-part call (`encrypt` or decrypt, already initialised by `init`) on `input`,
/// with the output at the given offset from the input inside one buffer (`None`: separate
/// buffers); returns the output.
unsafe fn single(t: &Token, init: &dyn Fn(&Token), encrypt: bool, input: &[u8], offset: Option<isize>) -> Vec<u8> {
    init(t);
    let call = |i: *mut u8, n: usize, o: *mut u8, ol: &mut CK_ULONG| {
        if encrypt {
            t.f.C_Encrypt(t.h, i, n as _, o, ol)
        } else {
            t.f.C_Decrypt(t.h, i, n as _, o, ol)
        }
    };
    let room = input.len().max(256) + 64;
    match offset {
        None => {
            let mut i = input.to_vec();
            let mut o = vec![0u8; room];
            let mut ol = room as CK_ULONG;
            assert_eq!(
                call(i.as_mut_ptr(), i.len(), o.as_mut_ptr(), &mut ol),
                CKR_OK,
                "encrypt {encrypt}, {} bytes",
                i.len()
            );
            o.truncate(ol as usize);
            o
        }
        Some(off) => {
            let mut buf = vec![0u8; room + 32];
            let base = 16isize;
            buf[base as usize..base as usize + input.len()].copy_from_slice(input);
            let ip = buf.as_mut_ptr().offset(base);
            let op = buf.as_mut_ptr().offset(base + off);
            let mut ol = room as CK_ULONG;
            assert_eq!(call(ip, input.len(), op, &mut ol), CKR_OK, "offset {off}");
            let start = (base + off) as usize;
            buf[start..start + ol as usize].to_vec()
        }
    }
}

/// Encrypts and decrypts with the output at the input's address and 8 bytes before and after it;
/// every result must be the one separate buffers give. `deterministic`: the ciphertexts can be
/// compared (else each ciphertext is decrypted and compared with the plaintext).
fn overlap_case(t: &Token, enc: &dyn Fn(&Token), dec: &dyn Fn(&Token), plain: &[u8], deterministic: bool) {
    unsafe {
        let ct = single(t, enc, true, plain, None);
        assert_eq!(single(t, dec, false, &ct, None), plain);
        for off in [0isize, 8, -8] {
            let c = single(t, enc, true, plain, Some(off));
            if deterministic {
                assert_eq!(c, ct, "ciphertext with the output at offset {off}");
            }
            assert_eq!(single(t, dec, false, &c, None), plain, "decrypting what was encrypted at offset {off}");
            assert_eq!(single(t, dec, false, &ct, Some(off)), plain, "plaintext with the output at offset {off}");
        }
    }
}

fn init_with(mech: CK_MECHANISM_TYPE, param: Vec<u8>, key: CK_OBJECT_HANDLE, encrypt: bool) -> impl Fn(&Token) {
    move |t: &Token| {
        let mut p = param.clone();
        let mut m = CK_MECHANISM {
            mechanism: mech,
            pParameter: if p.is_empty() { null_mut() } else { p.as_mut_ptr() as *mut c_void },
            ulParameterLen: p.len() as _,
        };
        let rv = unsafe {
            if encrypt {
                t.f.C_EncryptInit(t.h, &mut m, key)
            } else {
                t.f.C_DecryptInit(t.h, &mut m, key)
            }
        };
        assert_eq!(rv, CKR_OK, "init {mech:#x}");
    }
}

fn plaintext() -> Vec<u8> {
    (0..DATA_LEN).map(|i| (i * 7 + 3) as u8).collect()
}

fn as_bytes<S>(s: &S) -> Vec<u8> {
    unsafe { std::slice::from_raw_parts(s as *const S as *const u8, std::mem::size_of::<S>()).to_vec() }
}

#[test]
fn overlapping_buffers_aes_cbc() {
    let t = token();
    let k = aes(&t, 32);
    let iv = vec![0x42u8; 16];
    let plain = plaintext();
    overlap_case(
        &t,
        &init_with(CKM_AES_CBC, iv.clone(), k, true),
        &init_with(CKM_AES_CBC, iv.clone(), k, false),
        &plain,
        true,
    );
    let padded = &plain[..DATA_LEN - 5];
    let (e, d) = (init_with(CKM_AES_CBC_PAD, iv.clone(), k, true), init_with(CKM_AES_CBC_PAD, iv, k, false));
    overlap_case(&t, &e, &d, padded, true);
}

#[test]
fn overlapping_buffers_aes_ctr() {
    let t = token();
    let k = aes(&t, 16);
    let p = CK_AES_CTR_PARAMS { ulCounterBits: 32, cb: [9u8; 16] };
    let plain = plaintext();
    let (e, d) = (init_with(CKM_AES_CTR, as_bytes(&p), k, true), init_with(CKM_AES_CTR, as_bytes(&p), k, false));
    overlap_case(&t, &e, &d, &plain[..DATA_LEN - 3], true);
}

#[test]
fn overlapping_buffers_aes_gcm() {
    let t = token();
    let k = aes(&t, 32);
    let iv = [5u8; 12];
    let aad = *b"associated data";
    let plain = plaintext();
    // The parameter holds pointers: it is rebuilt for every call from buffers that outlive them.
    let gcm = move |encrypt: bool| {
        move |t: &Token| {
            let mut p = gcm_params(&iv, aad.as_ptr(), aad.len() as _);
            let mut m = CK_MECHANISM {
                mechanism: CKM_AES_GCM,
                pParameter: &mut p as *mut _ as *mut c_void,
                ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as _,
            };
            let rv = unsafe {
                if encrypt {
                    t.f.C_EncryptInit(t.h, &mut m, k)
                } else {
                    t.f.C_DecryptInit(t.h, &mut m, k)
                }
            };
            assert_eq!(rv, CKR_OK);
        }
    };
    overlap_case(&t, &gcm(true), &gcm(false), &plain, true);
}

#[test]
fn overlapping_buffers_rsa() {
    let t = token();
    let (public, private) = rsa(&t);
    // Raw RSA is deterministic: the ciphertexts compare.
    let plain: Vec<u8> = std::iter::once(0u8).chain((1..256).map(|i| i as u8)).collect();
    let (e, d) = (init_with(CKM_RSA_X_509, vec![], public, true), init_with(CKM_RSA_X_509, vec![], private, false));
    overlap_case(&t, &e, &d, &plain, true);
    // OAEP is randomised: each ciphertext decrypts to the plaintext.
    let oaep = |t: &Token, key, encrypt: bool| {
        let mut p = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: null_mut(),
            ulSourceDataLen: 0,
        };
        let mut m = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_OAEP,
            pParameter: &mut p as *mut _ as *mut c_void,
            ulParameterLen: std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() as _,
        };
        let rv = unsafe {
            if encrypt {
                t.f.C_EncryptInit(t.h, &mut m, key)
            } else {
                t.f.C_DecryptInit(t.h, &mut m, key)
            }
        };
        assert_eq!(rv, CKR_OK);
    };
    let short = &plaintext()[..100];
    overlap_case(&t, &|t: &Token| oaep(t, public, true), &|t: &Token| oaep(t, private, false), short, false);
}

/// Multi-part: `C_EncryptUpdate` and `C_DecryptUpdate` in place and at ±8 bytes give the bytes
/// separate buffers give (AES-CBC, whose parts come out as they go in).
#[test]
fn overlapping_buffers_in_updates() {
    let t = token();
    let k = aes(&t, 32);
    let iv = vec![1u8; 16];
    let plain = plaintext();
    let run = |encrypt: bool, input: &[u8], off: Option<isize>| -> Vec<u8> {
        init_with(CKM_AES_CBC, iv.clone(), k, encrypt)(&t);
        let mut outv = Vec::new();
        for part in input.chunks(64) {
            let mut buf = vec![0u8; 160];
            buf[16..16 + part.len()].copy_from_slice(part);
            let (ip, op) = unsafe {
                match off {
                    None => (buf.as_mut_ptr().add(16), buf.as_mut_ptr().add(96)),
                    Some(o) => (buf.as_mut_ptr().add(16), buf.as_mut_ptr().offset(16 + o)),
                }
            };
            let mut ol: CK_ULONG = 64;
            let rv = unsafe {
                if encrypt {
                    t.f.C_EncryptUpdate(t.h, ip, part.len() as _, op, &mut ol)
                } else {
                    t.f.C_DecryptUpdate(t.h, ip, part.len() as _, op, &mut ol)
                }
            };
            assert_eq!(rv, CKR_OK);
            outv.extend_from_slice(unsafe { std::slice::from_raw_parts(op, ol as usize) });
        }
        let mut last = [0u8; 16];
        let mut ll: CK_ULONG = 16;
        let rv = unsafe {
            if encrypt {
                t.f.C_EncryptFinal(t.h, last.as_mut_ptr(), &mut ll)
            } else {
                t.f.C_DecryptFinal(t.h, last.as_mut_ptr(), &mut ll)
            }
        };
        assert_eq!(rv, CKR_OK);
        outv.extend_from_slice(&last[..ll as usize]);
        outv
    };
    let ct = run(true, &plain, None);
    for off in [0isize, 8, -8] {
        assert_eq!(run(true, &plain, Some(off)), ct, "encrypt update at offset {off}");
        assert_eq!(run(false, &ct, Some(off)), plain, "decrypt update at offset {off}");
    }
}

// ---- damaged store records (found by fuzzing object::decode) -----------------------------------

/// A public object's record in the token store replaced by 9 bytes that claim 2^40 attributes:
/// reading it reserved room for all of them (32 TiB) and aborted the process. Now the record is
/// refused as undecodable when the object is loaded (the token logs it), the object is not
/// listed, and the process lives.
#[test]
fn store_record_claiming_2_pow_40_attributes() {
    let rv = in_child("store_record_claiming_2_pow_40_attributes", || {
        let env = Env::new("tessera.mode = non-approved");
        env.activate();
        std::env::remove_var("TESSERA_MODE");
        let f = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load");
        unsafe {
            assert_eq!(f.C_Initialize(null_mut()), CKR_OK);
            let mut slots = [0; 4];
            let mut n: CK_ULONG = 4;
            assert_eq!(f.C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n), CKR_OK);
            let mut label = [b' '; 32];
            assert_eq!(f.C_InitToken(slots[0], SO_PIN.as_ptr() as *mut _, 8, label.as_mut_ptr()), CKR_OK);
            let mut h = 0;
            let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
            assert_eq!(f.C_OpenSession(slots[0], flags, null_mut(), None, &mut h), CKR_OK);
            let (class, tru, fal) = (CKO_DATA, CK_TRUE, CK_FALSE);
            let mut t = [attr(CKA_CLASS, &class), attr(CKA_TOKEN, &tru), attr(CKA_PRIVATE, &fal)];
            let mut o = 0;
            assert_eq!(f.C_CreateObject(h, t.as_mut_ptr(), t.len() as _, &mut o), CKR_OK);
            assert_eq!(f.C_Finalize(null_mut()), CKR_OK);
        }
        let db = std::fs::read_dir(env.tokendir())
            .expect("token directory")
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "db" || x == "sqlite"))
            .expect("token database");
        let c = rusqlite::Connection::open(&db).expect("open store");
        // A postcard length of 2^40 (varint), and nothing after it.
        let claim: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        assert_eq!(c.execute("UPDATE object SET attrs = ?1 WHERE private = 0", [claim]).expect("update"), 1);
        drop(c);
        unsafe {
            assert_eq!(f.C_Initialize(null_mut()), CKR_OK);
            let mut slots = [0; 4];
            let mut n: CK_ULONG = 4;
            assert_eq!(f.C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n), CKR_OK);
            let mut h = 0;
            let rv = f.C_OpenSession(slots[0], CKF_SERIAL_SESSION, null_mut(), None, &mut h);
            if rv != CKR_OK {
                return rv;
            }
            let rv = f.C_FindObjectsInit(h, null_mut(), 0);
            if rv != CKR_OK {
                return rv;
            }
            let mut found = [0; 4];
            let mut n = 0;
            let rv = f.C_FindObjects(h, found.as_mut_ptr(), 4, &mut n);
            assert_eq!(n, 0, "the damaged object is not listed");
            rv
        }
    });
    assert_eq!(rv, CKR_OK);
}

// ---- pointers into the first page ----------------------------------------------------------------

/// An output buffer at address 0x10 (a small number where a pointer belongs): once written to
/// (a segmentation fault), now `CKR_ARGUMENTS_BAD` before anything is computed.
#[test]
fn output_pointer_in_the_first_page() {
    let rv = in_child("output_pointer_in_the_first_page", || {
        let t = token();
        let k = aes(&t, 16);
        let mut m = CK_MECHANISM { mechanism: CKM_AES_ECB, pParameter: null_mut(), ulParameterLen: 0 };
        let mut data = [0u8; 16];
        let mut len: CK_ULONG = 16;
        unsafe {
            assert_eq!(t.f.C_EncryptInit(t.h, &mut m, k), CKR_OK);
            t.f.C_Encrypt(t.h, data.as_mut_ptr(), 16, 0x10 as *mut u8, &mut len)
        }
    });
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
}

// ---- overlapping buffers in the message API -------------------------------------------------------

/// `C_EncryptMessage` / `C_DecryptMessage` (AES-GCM, an IV the application gives: deterministic)
/// with the output at the input's address and 8 bytes before and after it give the bytes separate
/// buffers give, and the tag written into the parameters is the same.
#[test]
fn overlapping_buffers_message_api() {
    let t = token();
    let k = aes(&t, 32);
    let plain = plaintext();
    let aad = *b"header";
    // (output, tag) for one call; `off`: the output's offset from the input in one buffer.
    let call = |encrypt: bool, input: &[u8], tag_in: [u8; 16], off: Option<isize>| -> (Vec<u8>, [u8; 16]) {
        let mut iv = [3u8; 12];
        let mut tag = tag_in;
        let mut p = CK_GCM_MESSAGE_PARAMS {
            pIv: iv.as_mut_ptr(),
            ulIvLen: 12,
            ulIvFixedBits: 0,
            ivGenerator: CKG_NO_GENERATE,
            pTag: tag.as_mut_ptr(),
            ulTagBits: 128,
        };
        let pp = &mut p as *mut _ as *mut c_void;
        let pl = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
        let mut m = CK_MECHANISM { mechanism: CKM_AES_GCM, pParameter: null_mut(), ulParameterLen: 0 };
        let mut buf = vec![0u8; input.len() + 64];
        let mut sep = vec![0u8; input.len() + 64];
        buf[16..16 + input.len()].copy_from_slice(input);
        let ip = unsafe { buf.as_mut_ptr().add(16) };
        let op = match off {
            None => sep.as_mut_ptr(),
            Some(o) => unsafe { buf.as_mut_ptr().offset(16 + o) },
        };
        let mut ol = input.len() as CK_ULONG;
        let n = input.len() as CK_ULONG;
        let a = aad.as_ptr() as *mut u8;
        unsafe {
            if encrypt {
                assert_eq!(t.f.C_MessageEncryptInit(t.h, &mut m, k), CKR_OK);
                assert_eq!(t.f.C_EncryptMessage(t.h, pp, pl, a, aad.len() as _, ip, n, op, &mut ol), CKR_OK);
                assert_eq!(t.f.C_MessageEncryptFinal(t.h), CKR_OK);
            } else {
                assert_eq!(t.f.C_MessageDecryptInit(t.h, &mut m, k), CKR_OK);
                assert_eq!(t.f.C_DecryptMessage(t.h, pp, pl, a, aad.len() as _, ip, n, op, &mut ol), CKR_OK);
                assert_eq!(t.f.C_MessageDecryptFinal(t.h), CKR_OK);
            }
            (std::slice::from_raw_parts(op, ol as usize).to_vec(), tag)
        }
    };
    let (ct, tag) = call(true, &plain, [0; 16], None);
    assert_eq!(call(false, &ct, tag, None).0, plain);
    for off in [0isize, 8, -8] {
        assert_eq!(call(true, &plain, [0; 16], Some(off)), (ct.clone(), tag), "encrypt at offset {off}");
        assert_eq!(call(false, &ct, tag, Some(off)).0, plain, "decrypt at offset {off}");
    }
}

/// `C_Digest` and `C_Sign` (AES-CMAC) with the output at the input's address and 8 bytes before
/// and after it give what separate buffers give.
#[test]
fn overlapping_buffers_digest_and_sign() {
    let t = token();
    let k = aes(&t, 32);
    let plain = plaintext();
    let run = |sign: bool, off: Option<isize>| -> Vec<u8> {
        let mut m = CK_MECHANISM {
            mechanism: if sign { CKM_AES_CMAC } else { CKM_SHA256 },
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        let mut buf = vec![0u8; plain.len() + 64];
        let mut sep = vec![0u8; 64];
        buf[16..16 + plain.len()].copy_from_slice(&plain);
        let ip = unsafe { buf.as_mut_ptr().add(16) };
        let op = match off {
            None => sep.as_mut_ptr(),
            Some(o) => unsafe { buf.as_mut_ptr().offset(16 + o) },
        };
        let mut ol: CK_ULONG = 64;
        unsafe {
            if sign {
                assert_eq!(t.f.C_SignInit(t.h, &mut m, k), CKR_OK);
                assert_eq!(t.f.C_Sign(t.h, ip, plain.len() as _, op, &mut ol), CKR_OK);
            } else {
                assert_eq!(t.f.C_DigestInit(t.h, &mut m), CKR_OK);
                assert_eq!(t.f.C_Digest(t.h, ip, plain.len() as _, op, &mut ol), CKR_OK);
            }
            std::slice::from_raw_parts(op, ol as usize).to_vec()
        }
    };
    for sign in [false, true] {
        let whole = run(sign, None);
        for off in [0isize, 8, -8] {
            assert_eq!(run(sign, Some(off)), whole, "sign {sign}, offset {off}");
        }
    }
}

/// `C_GenerateKeyPair` with both handle outputs at one location: the handles are written at the
/// end, public then private, so the location holds the private key's handle.
#[test]
fn key_pair_handles_at_one_location() {
    let t = token();
    let (tru, fal) = (CK_TRUE, CK_FALSE);
    let mut public = [bytes(CKA_EC_PARAMS, P256), attr(CKA_VERIFY, &tru), attr(CKA_TOKEN, &fal)];
    let mut private = [attr(CKA_SIGN, &tru), attr(CKA_TOKEN, &fal)];
    let mut m = CK_MECHANISM { mechanism: CKM_EC_KEY_PAIR_GEN, pParameter: null_mut(), ulParameterLen: 0 };
    let mut both: CK_OBJECT_HANDLE = 0;
    let p = &mut both as *mut CK_OBJECT_HANDLE;
    unsafe {
        let rv = t.f.C_GenerateKeyPair(t.h, &mut m, public.as_mut_ptr(), 3, private.as_mut_ptr(), 2, p, p);
        assert_eq!(rv, CKR_OK);
        let mut class: CK_OBJECT_CLASS = 0;
        let mut a = [CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: &mut class as *mut CK_OBJECT_CLASS as *mut c_void,
            ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as _,
        }];
        assert_eq!(t.f.C_GetAttributeValue(t.h, both, a.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(class, CKO_PRIVATE_KEY);
    }
}
