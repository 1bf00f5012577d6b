//! The 3.0 message API for AES-GCM with token-generated IVs: counter IVs never repeat for a key —
//! across messages, sessions, a restart of the module and another process — random IVs keep the
//! fixed field, decryption checks the tag, and the approved mode takes only generated IVs.

use cryptoki_sys::*;
use std::ffi::c_void;
use std::ptr::null_mut;
use tessera_tests::*;

/// The module in `mode` with an initialised token and a logged-in user session.
fn start(mode: &str) -> Token {
    Token::open(mode, "msg")
}

/// A token AES-256 key labelled `label` (created once; found again after a restart).
fn token_key(t: &Token, h: CK_SESSION_HANDLE, label: &str) -> CK_OBJECT_HANDLE {
    unsafe {
        let mut find =
            [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: label.as_ptr() as *mut c_void, ulValueLen: label.len() as _ }];
        assert_eq!(t.f.C_FindObjectsInit(h, find.as_mut_ptr(), 1), CKR_OK);
        let mut o = 0;
        let mut n = 0;
        assert_eq!(t.f.C_FindObjects(h, &mut o, 1, &mut n), CKR_OK);
        assert_eq!(t.f.C_FindObjectsFinal(h), CKR_OK);
        if n == 1 {
            return o;
        }
        let (class, kt, len, yes) = (CKO_SECRET_KEY, CKK_AES, 32 as CK_ULONG, CK_TRUE);
        let mut tpl = [
            CK_ATTRIBUTE { type_: CKA_CLASS, pValue: &class as *const _ as *mut c_void, ulValueLen: 8 },
            CK_ATTRIBUTE { type_: CKA_KEY_TYPE, pValue: &kt as *const _ as *mut c_void, ulValueLen: 8 },
            CK_ATTRIBUTE { type_: CKA_VALUE_LEN, pValue: &len as *const _ as *mut c_void, ulValueLen: 8 },
            CK_ATTRIBUTE { type_: CKA_TOKEN, pValue: &yes as *const _ as *mut c_void, ulValueLen: 1 },
            CK_ATTRIBUTE { type_: CKA_LABEL, pValue: label.as_ptr() as *mut c_void, ulValueLen: label.len() as _ },
        ];
        let mut m = CK_MECHANISM { mechanism: CKM_AES_KEY_GEN, pParameter: null_mut(), ulParameterLen: 0 };
        assert_eq!(t.f.C_GenerateKey(h, &mut m, tpl.as_mut_ptr(), 5, &mut o), CKR_OK);
        o
    }
}

fn message_init(t: &Token, h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE, encrypt: bool) {
    let mut m = CK_MECHANISM { mechanism: CKM_AES_GCM, pParameter: null_mut(), ulParameterLen: 0 };
    let rv = unsafe {
        if encrypt {
            t.f.C_MessageEncryptInit(h, &mut m, key)
        } else {
            t.f.C_MessageDecryptInit(h, &mut m, key)
        }
    };
    assert_eq!(rv, CKR_OK);
}

/// Encrypts one message; returns (rv, iv, ciphertext, tag).
fn encrypt_message(
    t: &Token,
    h: CK_SESSION_HANDLE,
    generator: CK_GENERATOR_FUNCTION,
    fixed: &[u8],
    msg: &[u8],
) -> (CK_RV, [u8; 12], Vec<u8>, [u8; 16]) {
    let mut iv = [0u8; 12];
    iv[..fixed.len()].copy_from_slice(fixed);
    let mut tag = [0u8; 16];
    let mut p = gcm_params(&mut iv, &mut tag, (fixed.len() * 8) as CK_ULONG, generator);
    let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
    let mut aad = *b"header";
    let mut pt = msg.to_vec();
    let mut ct = vec![0u8; msg.len()];
    let mut len: CK_ULONG = 0;
    let pp = &mut p as *mut _ as *mut c_void;
    let mut call = |out: *mut u8, len: &mut CK_ULONG| unsafe {
        t.f.C_EncryptMessage(h, pp, size, aad.as_mut_ptr(), 6, pt.as_mut_ptr(), pt.len() as _, out, len)
    };
    // Length query first: it must not consume an IV.
    let rv = call(null_mut(), &mut len);
    if rv != CKR_OK {
        return (rv, iv, Vec::new(), tag);
    }
    assert_eq!(len as usize, msg.len());
    let rv = call(ct.as_mut_ptr(), &mut len);
    (rv, iv, ct, tag)
}

fn decrypt_message(t: &Token, h: CK_SESSION_HANDLE, iv: [u8; 12], ct: &[u8], tag: [u8; 16]) -> (CK_RV, Vec<u8>) {
    let (mut iv, mut tag) = (iv, tag);
    let mut p = gcm_params(&mut iv, &mut tag, 0, CKG_NO_GENERATE);
    let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
    let mut aad = *b"header";
    let mut c = ct.to_vec();
    let mut out = vec![0u8; ct.len()];
    let mut len = out.len() as CK_ULONG;
    let rv = unsafe {
        t.f.C_DecryptMessage(
            h,
            &mut p as *mut _ as *mut c_void,
            size,
            aad.as_mut_ptr(),
            6,
            c.as_mut_ptr(),
            c.len() as _,
            out.as_mut_ptr(),
            &mut len,
        )
    };
    out.truncate(len as usize);
    (rv, out)
}

/// `CK_GCM_MESSAGE_PARAMS` over a 12-byte IV buffer and a 16-byte tag buffer.
fn gcm_params(
    iv: &mut [u8; 12],
    tag: &mut [u8; 16],
    fixed_bits: CK_ULONG,
    generator: CK_GENERATOR_FUNCTION,
) -> CK_GCM_MESSAGE_PARAMS {
    CK_GCM_MESSAGE_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: 12,
        ulIvFixedBits: fixed_bits,
        ivGenerator: generator,
        pTag: tag.as_mut_ptr(),
        ulTagBits: 128,
    }
}

/// `C_EncryptMessageNext` (or `C_DecryptMessageNext`) of one part into `out` (`None`: a length
/// query with a NULL buffer): the return value and the length the module gave.
unsafe fn message_next(
    t: &Token,
    h: CK_SESSION_HANDLE,
    encrypt: bool,
    pp: *mut c_void,
    part: &mut [u8],
    out: Option<&mut [u8]>,
    flags: CK_FLAGS,
) -> (CK_RV, CK_ULONG) {
    let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
    let (out, mut n) = match out {
        Some(b) => (b.as_mut_ptr(), b.len() as CK_ULONG),
        None => (null_mut(), 0),
    };
    let rv = if encrypt {
        t.f.C_EncryptMessageNext(h, pp, size, part.as_mut_ptr(), part.len() as _, out, &mut n, flags)
    } else {
        t.f.C_DecryptMessageNext(h, pp, size, part.as_mut_ptr(), part.len() as _, out, &mut n, flags)
    };
    (rv, n)
}

fn counter(iv: &[u8; 12]) -> u64 {
    u64::from_be_bytes(iv[4..].try_into().unwrap())
}

#[test]
fn counter_ivs_never_repeat_across_messages_sessions_restarts_and_processes() {
    let mut t = start("approved");
    let mut seen = std::collections::HashSet::new();
    let h = t.session();
    let key = token_key(&t, h, "gcm-counter");
    message_init(&t, h, key, true);
    let h2 = t.session();
    message_init(&t, h2, key, true);
    for i in 0..10 {
        let s = if i % 2 == 0 { h } else { h2 };
        let (rv, iv, ct, tag) = encrypt_message(&t, s, CKG_GENERATE_COUNTER, b"\xa1\xa2\xa3\xa4", b"message text");
        assert_eq!(rv, CKR_OK);
        assert!(t.approved(s), "GCM with a counter IV generated by the token is approved");
        assert_eq!(&iv[..4], b"\xa1\xa2\xa3\xa4", "the fixed field is kept");
        assert!(seen.insert(iv), "IV repeated: {iv:02x?}");
        message_init(&t, s, key, false);
        let (rv, pt) = decrypt_message(&t, s, iv, &ct, tag);
        assert_eq!((rv, pt.as_slice()), (CKR_OK, &b"message text"[..]));
        let mut bad = tag;
        bad[0] ^= 1;
        assert_eq!(decrypt_message(&t, s, iv, &ct, bad).0, CKR_ENCRYPTED_DATA_INVALID);
        assert_eq!(unsafe { t.f.C_MessageDecryptFinal(s) }, CKR_OK);
    }
    let before_restart = seen.iter().map(counter).max().unwrap();
    t.restart();
    let h = t.session();
    let key = token_key(&t, h, "gcm-counter");
    message_init(&t, h, key, true);
    let (rv, iv, _, _) = encrypt_message(&t, h, CKG_GENERATE_COUNTER, b"\xa1\xa2\xa3\xa4", b"after restart");
    assert_eq!(rv, CKR_OK);
    assert!(counter(&iv) > before_restart, "the counter continues after a restart");
    assert!(seen.insert(iv));

    // Another process, using the same key at the same time.
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, pipe, read, write, ForkResult};
    let (rx, tx) = pipe().unwrap();
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            // The child starts the module afresh and uses the same token key.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assert_eq!(unsafe { t.f.C_Initialize(null_mut()) }, CKR_OK);
                t.slot = initialised_slot(&t.f);
                let h = t.session();
                let key = token_key(&t, h, "gcm-counter");
                message_init(&t, h, key, true);
                let (rv, iv, _, _) = encrypt_message(&t, h, CKG_GENERATE_COUNTER, b"\xa1\xa2\xa3\xa4", b"from a child");
                assert_eq!(rv, CKR_OK);
                let _ = write(&tx, &iv);
            }));
            unsafe { libc_exit(if r.is_ok() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(tx);
            let mut buf = [0u8; 12];
            assert_eq!(read(&rx, &mut buf).unwrap(), 12);
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
            assert!(seen.insert(buf), "the other process got an IV this one used: {buf:02x?}");
            let (rv, iv, _, _) = encrypt_message(&t, h, CKG_GENERATE_COUNTER, b"\xa1\xa2\xa3\xa4", b"parent again");
            assert_eq!(rv, CKR_OK);
            assert!(seen.insert(iv), "IV repeated after the other process: {iv:02x?}");
        }
    }
}

#[test]
fn random_ivs_keep_the_fixed_field_and_application_ivs_follow_the_mode() {
    for (mode, approved) in [("approved", true), ("non-approved", false)] {
        let t = start(mode);
        let h = t.session();
        let key = token_key(&t, h, "gcm-random");
        message_init(&t, h, key, true);
        let (rv, iv1, _, _) = encrypt_message(&t, h, CKG_GENERATE_RANDOM, b"\x01\x02", b"x");
        let (rv2, iv2, _, _) = encrypt_message(&t, h, CKG_GENERATE_RANDOM, b"\x01\x02", b"y");
        assert_eq!((rv, rv2), (CKR_OK, CKR_OK));
        assert_eq!((&iv1[..2], &iv2[..2]), (&b"\x01\x02"[..], &b"\x01\x02"[..]));
        assert_ne!(iv1, iv2);
        assert!(t.approved(h));
        // An IV the application chooses: refused in the approved mode, flagged otherwise.
        let (rv, _, _, _) =
            encrypt_message(&t, h, CKG_NO_GENERATE, b"\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05\x05", b"z");
        if approved {
            assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID);
        } else {
            assert_eq!(rv, CKR_OK);
            assert!(!t.approved(h));
        }
        assert_eq!(encrypt_message(&t, h, CKG_GENERATE_COUNTER_XOR, b"", b"z").0, CKR_MECHANISM_PARAM_INVALID);
        assert_eq!(unsafe { t.f.C_MessageEncryptFinal(h) }, CKR_OK);
        assert_eq!(unsafe { t.f.C_MessageEncryptFinal(h) }, CKR_OPERATION_NOT_INITIALIZED);
    }
}

extern "C" {
    #[link_name = "_exit"]
    fn libc_exit(code: i32) -> !;
}

/// A message in parts (`C_EncryptMessageBegin`, `C_EncryptMessageNext` … `CKF_END_OF_MESSAGE`):
/// the token's counter IV at the beginning, each part's ciphertext at once, the tag with the last
/// part; the result decrypts in one call and in parts, and a wrong tag fails the last part.
#[test]
fn messages_in_parts() {
    for mode in ["approved", "non-approved"] {
        let t = start(mode);
        let h = t.session();
        let key = token_key(&t, h, "gcm-parts");
        let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
        let msg: Vec<u8> = (0..100u8).collect();
        let (mut iv, mut tag) = ([0u8; 12], [0u8; 16]);
        let mut p = gcm_params(&mut iv, &mut tag, 32, CKG_GENERATE_COUNTER);
        let pp = &mut p as *mut _ as *mut c_void;
        let mut aad = *b"header";
        unsafe {
            // Not before an init, and not without a begin.
            assert_eq!(t.f.C_EncryptMessageBegin(h, pp, size, aad.as_mut_ptr(), 6), CKR_OPERATION_NOT_INITIALIZED);
            message_init(&t, h, key, true);
            let mut out = [0u8; 64];
            let mut n: CK_ULONG = 64;
            let mut part = msg[..10].to_vec();
            assert_eq!(
                t.f.C_EncryptMessageNext(h, pp, size, part.as_mut_ptr(), 10, out.as_mut_ptr(), &mut n, 0),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(t.f.C_EncryptMessageBegin(h, pp, size, aad.as_mut_ptr(), 6), CKR_OK);
            assert_ne!(counter(&iv), 0u64.wrapping_sub(1), "an IV was generated");
            let first_iv = iv;
            // One message at a time.
            assert_eq!(t.f.C_EncryptMessageBegin(h, pp, size, aad.as_mut_ptr(), 6), CKR_OPERATION_ACTIVE);
            let (rv, ..) = encrypt_message(&t, h, CKG_GENERATE_COUNTER, &[0; 4], b"single");
            assert_eq!(rv, CKR_OPERATION_ACTIVE, "a single-part message while one is in parts");
            assert_eq!(iv, first_iv, "a refused call leaves the IV alone");
            let mut ct = Vec::new();
            for (i, chunk) in msg.chunks(30).enumerate() {
                let last = (i + 1) * 30 >= msg.len();
                let flags = if last { CKF_END_OF_MESSAGE } else { 0 };
                let mut part = chunk.to_vec();
                // A length query consumes nothing.
                let (rv, n) = message_next(&t, h, true, pp, &mut part, None, flags);
                assert_eq!((rv, n as usize), (CKR_OK, chunk.len()));
                let (rv, n) = message_next(&t, h, true, pp, &mut part, Some(&mut out), flags);
                assert_eq!((rv, n as usize), (CKR_OK, chunk.len()), "part {i}");
                ct.extend_from_slice(&out[..n as usize]);
            }
            assert_eq!(ct.len(), msg.len());
            // The message ended: another part is out of place; the operation itself goes on.
            let mut n: CK_ULONG = 64;
            let mut part = msg[..10].to_vec();
            assert_eq!(
                t.f.C_EncryptMessageNext(h, pp, size, part.as_mut_ptr(), 10, out.as_mut_ptr(), &mut n, 0),
                CKR_OPERATION_NOT_INITIALIZED
            );
            let (rv, iv2, ..) = encrypt_message(&t, h, CKG_GENERATE_COUNTER, &first_iv[..4], b"next");
            assert_eq!(rv, CKR_OK);
            assert_eq!(counter(&iv2), counter(&first_iv) + 1, "the counter moved on once for the message in parts");
            assert_eq!(t.f.C_MessageEncryptFinal(h), CKR_OK);

            // One-call decryption of the message made in parts.
            message_init(&t, h, key, false);
            let (rv, pt) = decrypt_message(&t, h, first_iv, &ct, tag);
            assert_eq!((rv, &pt[..]), (CKR_OK, &msg[..]));
            // Decryption in parts: the plaintext waits for the tag.
            assert_eq!(iv, first_iv, "the IV buffer still holds the message's IV");
            let mut dp = gcm_params(&mut iv, &mut tag, 0, CKG_NO_GENERATE);
            let dpp = &mut dp as *mut _ as *mut c_void;
            for bad in [false, true] {
                if bad {
                    tag[0] ^= 1;
                }
                assert_eq!(t.f.C_DecryptMessageBegin(h, dpp, size, aad.as_mut_ptr(), 6), CKR_OK);
                let mut got = Vec::new();
                let mut last_rv = CKR_OK;
                for (i, chunk) in ct.chunks(40).enumerate() {
                    let last = (i + 1) * 40 >= ct.len();
                    let flags = if last { CKF_END_OF_MESSAGE } else { 0 };
                    let mut part = chunk.to_vec();
                    let (rv, n) = message_next(&t, h, false, dpp, &mut part, None, flags);
                    assert_eq!(rv, CKR_OK);
                    let expected = if last { ct.len() } else { 0 };
                    assert_eq!(n as usize, expected, "length of part {i}");
                    let mut buf = vec![0u8; 128];
                    let n;
                    (last_rv, n) = message_next(&t, h, false, dpp, &mut part, Some(&mut buf), flags);
                    if last_rv == CKR_OK {
                        got.extend_from_slice(&buf[..n as usize]);
                    }
                }
                if bad {
                    assert_eq!(last_rv, CKR_ENCRYPTED_DATA_INVALID, "a wrong tag fails the last part");
                    assert!(got.is_empty(), "no plaintext of an unauthenticated message");
                } else {
                    assert_eq!((last_rv, &got[..]), (CKR_OK, &msg[..]));
                }
            }
            let mut n: CK_ULONG = 0;
            let mut part = [0u8; 4];
            assert_eq!(
                t.f.C_DecryptMessageNext(h, dpp, size, part.as_mut_ptr(), 4, null_mut(), &mut n, 0x8000),
                CKR_ARGUMENTS_BAD,
                "unknown flags"
            );
            // C_SessionCancel ends a message-based operation, and a message in parts with it.
            assert_eq!(t.f.C_DecryptMessageBegin(h, dpp, size, aad.as_mut_ptr(), 6), CKR_OK);
            assert_eq!(t.f.C_SessionCancel(h, CKF_MESSAGE_DECRYPT), CKR_OK);
            let mut n: CK_ULONG = 0;
            assert_eq!(
                t.f.C_DecryptMessageNext(h, dpp, size, part.as_mut_ptr(), 4, null_mut(), &mut n, 0),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(t.f.C_MessageDecryptFinal(h), CKR_OPERATION_NOT_INITIALIZED);
        }
    }
}

/// What the message functions take at their start and refuse on the way: a CK_GCM_MESSAGE_PARAMS
/// at init (as some applications pass) or none, a malformed parameter refused; CKG_GENERATE
/// leaves the IV to the token (random, fixed field kept); an associated-data length no buffer can
/// have is refused with an error, never by ending the application's process.
#[test]
fn message_parameters_and_impossible_lengths() {
    let t = start("non-approved");
    let h = t.session();
    let key = token_key(&t, h, "gcm-params");
    let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;
    let (mut iv, mut tag) = ([0u8; 12], [0u8; 16]);
    let mut p = gcm_params(&mut iv, &mut tag, 0, CKG_NO_GENERATE);
    unsafe {
        let mut m =
            CK_MECHANISM { mechanism: CKM_AES_GCM, pParameter: &mut p as *mut _ as *mut c_void, ulParameterLen: size };
        assert_eq!(t.f.C_MessageEncryptInit(h, &mut m, key), CKR_OK, "a CK_GCM_MESSAGE_PARAMS at init");
        assert_eq!(t.f.C_MessageEncryptFinal(h), CKR_OK);
        let mut one = [0u8; 1];
        let mut m =
            CK_MECHANISM { mechanism: CKM_AES_GCM, pParameter: one.as_mut_ptr() as *mut c_void, ulParameterLen: 1 };
        assert_eq!(t.f.C_MessageEncryptInit(h, &mut m, key), CKR_MECHANISM_PARAM_INVALID, "a malformed parameter");
    }
    message_init(&t, h, key, true);
    let (rv, iv1, ..) = encrypt_message(&t, h, CKG_GENERATE, b"\xaa\xbb", b"one");
    let (rv2, iv2, ..) = encrypt_message(&t, h, CKG_GENERATE, b"\xaa\xbb", b"two");
    assert_eq!((rv, rv2), (CKR_OK, CKR_OK));
    assert_eq!((&iv1[..2], &iv2[..2]), (&b"\xaa\xbb"[..], &b"\xaa\xbb"[..]), "the fixed field is kept");
    assert_ne!(iv1, iv2);
    assert!(iv1[2..].iter().any(|b| *b != 0) && iv2[2..].iter().any(|b| *b != 0), "the token made the IVs");
    unsafe {
        p.ivGenerator = CKG_GENERATE_RANDOM;
        let pp = &mut p as *mut _ as *mut c_void;
        let mut aad = [0u8; 8];
        let mut pt = [1u8; 16];
        let mut ct = [0u8; 16];
        // Beyond any address space: refused outright. Within it but beyond any memory: the copy
        // fails and says so.
        let lengths =
            [(isize::MAX as CK_ULONG, CKR_ARGUMENTS_BAD), (1 << 63, CKR_ARGUMENTS_BAD), (1 << 50, CKR_HOST_MEMORY)];
        for (len, want) in lengths {
            let mut n: CK_ULONG = 16;
            let rv =
                t.f.C_EncryptMessage(h, pp, size, aad.as_mut_ptr(), len, pt.as_mut_ptr(), 16, ct.as_mut_ptr(), &mut n);
            assert_eq!(rv, want, "C_EncryptMessage with an associated-data length of {len:#x}");
            let rv = t.f.C_EncryptMessageBegin(h, pp, size, aad.as_mut_ptr(), len);
            assert_eq!(rv, want, "C_EncryptMessageBegin with an associated-data length of {len:#x}");
        }
        // The operation is still there for a sound message.
        let mut n: CK_ULONG = 16;
        let rv = t.f.C_EncryptMessage(h, pp, size, aad.as_mut_ptr(), 8, pt.as_mut_ptr(), 16, ct.as_mut_ptr(), &mut n);
        assert_eq!((rv, n), (CKR_OK, 16));
    }
}
