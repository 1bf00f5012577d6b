//! AES, generic secrets, HMAC and the KDFs through the built module: published known answers,
//! multi-part and two-call behaviour, parameter checks and the errors the specification names.
//!
//! The suite runs in both modes of the module: under `TESSERA_MODE=approved` every use that
//! `policy/approved.toml` does not approve is asserted to be refused with the policy's error
//! (`CKR_MECHANISM_INVALID`, `CKR_KEY_SIZE_RANGE` or `CKR_MECHANISM_PARAM_INVALID`), and the
//! approved uses are exercised with inputs the policy accepts.

use cryptoki_sys::*;
use std::ptr::null_mut;
use tessera_tests::*;

const K128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
/// SP 800-38A F.1–F.5 plaintext, two blocks.
const PT: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51";

fn ctr(bits: CK_ULONG, cb: &[u8]) -> Mech {
    let p = CK_AES_CTR_PARAMS { ulCounterBits: bits, cb: cb.try_into().expect("16-byte block") };
    Mech::with_struct(CKM_AES_CTR, &p)
}

/// The symmetric mechanisms with an approved use (`policy/approved.toml`): listed in both modes.
const APPROVED: [CK_MECHANISM_TYPE; 22] = [
    CKM_AES_KEY_GEN,
    CKM_AES_ECB,
    CKM_AES_CBC,
    CKM_AES_CBC_PAD,
    CKM_AES_CTR,
    CKM_AES_GCM,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_KWP,
    CKM_AES_CMAC,
    CKM_AES_CMAC_GENERAL,
    CKM_GENERIC_SECRET_KEY_GEN,
    CKM_SHA_1_HMAC,
    CKM_SHA224_HMAC,
    CKM_SHA256_HMAC,
    CKM_SHA384_HMAC,
    CKM_SHA512_HMAC,
    CKM_SHA3_224_HMAC,
    CKM_SHA3_256_HMAC,
    CKM_SHA3_384_HMAC,
    CKM_SHA3_512_HMAC,
    CKM_HKDF_DERIVE,
    CKM_PKCS5_PBKD2,
];

/// The symmetric mechanisms with no approved use: offered only in the non-approved mode.
const NOT_APPROVED: [CK_MECHANISM_TYPE; 10] = [
    CKM_SHA_1_HMAC_GENERAL,
    CKM_SHA224_HMAC_GENERAL,
    CKM_SHA256_HMAC_GENERAL,
    CKM_SHA384_HMAC_GENERAL,
    CKM_SHA512_HMAC_GENERAL,
    CKM_SHA3_224_HMAC_GENERAL,
    CKM_SHA3_256_HMAC_GENERAL,
    CKM_SHA3_384_HMAC_GENERAL,
    CKM_SHA3_512_HMAC_GENERAL,
    CKM_HKDF_DATA,
];

/// What the approved mode refuses `C_EncryptInit` with AES-GCM with: the approved encryption rule
/// requires an IV generated inside the module (condition `token_generated_iv`, met only through
/// the message API; FIPS 140-3 IG C.H), so with the IV the application gives in `CK_GCM_PARAMS`
/// the condition is unmet. GCM decryption stays approved.
const GCM_ENCRYPT_REFUSED: CK_RV = CKR_MECHANISM_PARAM_INVALID;

#[test]
fn mechanism_list_and_info() {
    let t = Token::new("mechs");
    let slot = t.slot;
    let list = t.mechanisms();
    for m in APPROVED {
        assert!(list.contains(&m), "mechanism {m:#x} is listed in both modes");
    }
    for m in NOT_APPROVED {
        if approved_mode() {
            assert!(!list.contains(&m), "mechanism {m:#x} has no approved use: not listed in the approved mode");
            let mut info = CK_MECHANISM_INFO::default();
            let rv = unsafe { t.f.C_GetMechanismInfo(slot, m, &mut info) };
            assert_eq!(rv, CKR_MECHANISM_INVALID, "C_GetMechanismInfo of {m:#x} in the approved mode");
        } else {
            assert!(list.contains(&m), "mechanism {m:#x} is listed in the non-approved mode");
        }
    }
    let want: [(CK_MECHANISM_TYPE, CK_FLAGS); 14] = [
        (CKM_AES_KEY_GEN, CKF_GENERATE),
        (CKM_AES_ECB, CKF_ENCRYPT | CKF_DECRYPT),
        (CKM_AES_CBC, CKF_ENCRYPT | CKF_DECRYPT),
        (CKM_AES_CBC_PAD, CKF_ENCRYPT | CKF_DECRYPT),
        (CKM_AES_CTR, CKF_ENCRYPT | CKF_DECRYPT),
        (CKM_AES_GCM, CKF_ENCRYPT | CKF_DECRYPT),
        (CKM_AES_KEY_WRAP, CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP),
        (CKM_AES_KEY_WRAP_KWP, CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP),
        (CKM_AES_CMAC, CKF_SIGN | CKF_VERIFY),
        (CKM_SHA3_512_HMAC_GENERAL, CKF_SIGN | CKF_VERIFY),
        (CKM_SHA_1_HMAC, CKF_SIGN | CKF_VERIFY),
        (CKM_GENERIC_SECRET_KEY_GEN, CKF_GENERATE),
        (CKM_HKDF_DERIVE, CKF_DERIVE),
        (CKM_PKCS5_PBKD2, CKF_GENERATE),
    ];
    for (m, flags) in want {
        let mut info = CK_MECHANISM_INFO::default();
        let rv = unsafe { t.f.C_GetMechanismInfo(slot, m, &mut info) };
        if approved_mode() && NOT_APPROVED.contains(&m) {
            assert_eq!(rv, CKR_MECHANISM_INVALID, "mechanism {m:#x} in the approved mode");
            continue;
        }
        assert_eq!(rv, CKR_OK, "mechanism {m:#x}");
        // In the approved mode only the functions with an approved use are asserted: CBC_PAD and
        // GCM do not wrap there (neither is an SP 800-38F key wrap), and GCM encrypts only
        // through the message API, with an IV the token generates.
        let flags = match m {
            CKM_AES_CBC_PAD if approved_mode() => CKF_ENCRYPT | CKF_DECRYPT,
            CKM_AES_GCM if approved_mode() => CKF_MESSAGE_ENCRYPT | CKF_DECRYPT | CKF_MESSAGE_DECRYPT,
            CKM_AES_GCM => flags | CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT,
            _ => flags,
        };
        assert_eq!(info.flags & flags, flags, "flags of {m:#x}");
        // Only the authenticated key wraps wrap and unwrap (outside the legacy rules); GCM
        // unwraps (its tag is checked) but does not wrap (an application's IV could repeat).
        let wraps = matches!(m, CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_KWP);
        assert_eq!(info.flags & CKF_WRAP != 0, wraps, "CKF_WRAP of {m:#x}");
        assert_eq!(info.flags & CKF_UNWRAP != 0, wraps || m == CKM_AES_GCM, "CKF_UNWRAP of {m:#x}");
        if m == CKM_AES_GCM && approved_mode() {
            assert_eq!(info.flags & (CKF_ENCRYPT | CKF_WRAP), 0, "C_EncryptInit takes the application's IV");
        }
    }
    let mut info = CK_MECHANISM_INFO::default();
    assert_eq!(unsafe { t.f.C_GetMechanismInfo(slot, CKM_AES_GCM, &mut info) }, CKR_OK);
    assert_eq!((info.ulMinKeySize, info.ulMaxKeySize), (16, 32));
}

#[test]
fn aes_key_generation() {
    let t = Token::new("aesgen");
    let g = Mech::new(CKM_AES_KEY_GEN);
    // Without CKA_VALUE_LEN the template is incomplete in both modes (the policy leaves an
    // unsized generation to the mechanism); a size outside 16/24/32 bytes is outside the rule.
    assert_eq!(t.generate(&g, &made(CKK_AES, None)), Err(CKR_TEMPLATE_INCOMPLETE));
    assert_eq!(
        t.generate(&g, &made(CKK_AES, Some(20))),
        or_refused(Err(CKR_ATTRIBUTE_VALUE_INVALID), CKR_KEY_SIZE_RANGE)
    );
    assert_eq!(
        t.generate(&Mech::with(CKM_AES_KEY_GEN, &[1]), &made(CKK_AES, Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(t.generate(&g, &made(CKK_GENERIC_SECRET, Some(16))), Err(CKR_TEMPLATE_INCONSISTENT));
    for len in [16usize, 24, 32] {
        let k = t.generate(&g, &made(CKK_AES, Some(len))).expect("generate");
        assert_eq!(t.value(k).unwrap().len(), len);
        assert_eq!(t.attr(k, CKA_LOCAL).unwrap(), [1]);
        assert_eq!(t.attr(k, CKA_KEY_GEN_MECHANISM).unwrap(), CKM_AES_KEY_GEN.to_ne_bytes());
        let c = t.encrypt(&Mech::new(CKM_AES_ECB), k, &[0; 16]).unwrap();
        assert_eq!(t.decrypt(&Mech::new(CKM_AES_ECB), k, &c).unwrap(), [0; 16]);
    }
    // Two generated keys differ.
    let a = t.generate(&g, &made(CKK_AES, Some(16))).unwrap();
    let b = t.generate(&g, &made(CKK_AES, Some(16))).unwrap();
    assert_ne!(t.value(a).unwrap(), t.value(b).unwrap());
    // Without the overrides the key is sensitive.
    let k = t.generate(&g, &vec![(CKA_VALUE_LEN, V::U(32))]).unwrap();
    assert_eq!(t.value(k), Err(CKR_ATTRIBUTE_SENSITIVE));
}

#[test]
fn aes_block_modes_known_answers() {
    let t = Token::new("aesmodes");
    let k = t.key(CKK_AES, &unhex(K128)).unwrap();
    let pt = unhex(PT);
    let iv = unhex("000102030405060708090a0b0c0d0e0f");
    let ecb = unhex("3ad77bb40d7a3660a89ecaf32466ef97 f5d3d58503b9699de785895a96fdbaaf");
    let cbc = unhex("7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2");
    let ctr_ct = unhex("874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff");
    let cb = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    assert_eq!(t.encrypt(&Mech::new(CKM_AES_ECB), k, &pt).unwrap(), ecb);
    assert_eq!(t.decrypt(&Mech::new(CKM_AES_ECB), k, &ecb).unwrap(), pt);
    assert_eq!(t.encrypt(&Mech::with(CKM_AES_CBC, &iv), k, &pt).unwrap(), cbc);
    assert_eq!(t.decrypt(&Mech::with(CKM_AES_CBC, &iv), k, &cbc).unwrap(), pt);
    assert_eq!(t.encrypt(&ctr(128, &cb), k, &pt).unwrap(), ctr_ct);
    assert_eq!(t.decrypt(&ctr(64, &cb), k, &ctr_ct).unwrap(), pt);
    // CBC_PAD adds a whole block to block-aligned input; the first blocks are plain CBC's.
    let padded = t.encrypt(&Mech::with(CKM_AES_CBC_PAD, &iv), k, &pt).unwrap();
    assert_eq!((padded.len(), &padded[..32]), (48, &cbc[..]));
    assert_eq!(t.decrypt(&Mech::with(CKM_AES_CBC_PAD, &iv), k, &padded).unwrap(), pt);
    // CTR with a partial block.
    assert_eq!(t.encrypt(&ctr(128, &cb), k, &pt[..20]).unwrap(), ctr_ct[..20]);
}

#[test]
fn aes_block_mode_errors() {
    let t = Token::new("aeserrs");
    let k = t.key(CKK_AES, &unhex(K128)).unwrap();
    let iv = [7u8; 16];
    assert_eq!(t.encrypt(&Mech::new(CKM_AES_ECB), k, &[0; 17]), Err(CKR_DATA_LEN_RANGE));
    assert_eq!(t.decrypt(&Mech::new(CKM_AES_ECB), k, &[0; 15]), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
    assert_eq!(t.encrypt(&Mech::with(CKM_AES_CBC, &iv), k, &[0; 20]), Err(CKR_DATA_LEN_RANGE));
    assert_eq!(t.decrypt(&Mech::with(CKM_AES_CBC_PAD, &iv), k, &[0; 20]), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
    assert_eq!(t.decrypt(&Mech::with(CKM_AES_CBC_PAD, &iv), k, &[]), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
    // A final block whose padding is wrong.
    for last in [[0u8; 16], [17u8; 16], *b"0123456789\x05\x04\x05\x05\x05\x05"] {
        let c = t.encrypt(&Mech::with(CKM_AES_CBC, &iv), k, &[[1u8; 16], last].concat()).unwrap();
        assert_eq!(t.decrypt(&Mech::with(CKM_AES_CBC_PAD, &iv), k, &c), Err(CKR_ENCRYPTED_DATA_INVALID));
    }
    // Parameters.
    assert_eq!(t.encrypt_init(&Mech::with(CKM_AES_CBC, &[0; 15]), k), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(t.encrypt_init(&Mech::new(CKM_AES_CBC_PAD), k), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(t.encrypt_init(&Mech::with(CKM_AES_ECB, &[0; 16]), k), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(t.encrypt_init(&ctr(0, &[0; 16]), k), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(t.encrypt_init(&ctr(129, &[0; 16]), k), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(t.encrypt_init(&Mech::with(CKM_AES_CTR, &[0; 16]), k), Err(CKR_MECHANISM_PARAM_INVALID));
    // A parameter pointer of NULL with a length.
    let mut m = CK_MECHANISM { mechanism: CKM_AES_CBC, pParameter: null_mut(), ulParameterLen: 16 };
    assert_eq!(unsafe { t.f.C_EncryptInit(t.h, &mut m, k) }, CKR_MECHANISM_PARAM_INVALID);
    // Key checks: usage, type, size.
    let mut tpl = secret(CKK_AES, &unhex(K128));
    tpl.retain(|(a, _)| *a != CKA_ENCRYPT);
    tpl.push((CKA_ENCRYPT, V::B(false)));
    let no_enc = t.create(&tpl).unwrap();
    assert_eq!(t.encrypt_init(&Mech::new(CKM_AES_ECB), no_enc), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    assert!(t.decrypt(&Mech::new(CKM_AES_ECB), no_enc, &[0; 16]).is_ok());
    let generic = t.key(CKK_GENERIC_SECRET, &[1; 16]).unwrap();
    assert_eq!(t.encrypt_init(&Mech::new(CKM_AES_ECB), generic), Err(CKR_KEY_TYPE_INCONSISTENT));
    assert_eq!(t.key(CKK_AES, &[1; 20]), Err(CKR_ATTRIBUTE_VALUE_INVALID));
}

#[test]
fn aes_multipart_and_two_call() {
    let t = Token::new("aesparts");
    let k = t.key(CKK_AES, &[9; 32]).unwrap();
    let iv = [3u8; 16];
    let data: Vec<u8> = (0..100u8).collect();
    let chunks: [&[u8]; 5] = [&data[..1], &data[1..17], &data[17..40], &data[40..40], &data[40..]];
    for m in [Mech::with(CKM_AES_CBC_PAD, &iv), ctr(32, &[0xff; 16].map(|b| b & 0x0f))] {
        let whole = t.encrypt(&m, k, &data).unwrap();
        let parts = t.cipher_parts(true, &m, k, &chunks).unwrap();
        assert_eq!(parts.concat(), whole);
        // Decrypt in other chunks.
        let ct_chunks: Vec<&[u8]> = whole.chunks(7).collect();
        let back = t.cipher_parts(false, &m, k, &ct_chunks).unwrap();
        assert_eq!(back.concat(), data);
    }
    // ECB multi-part: whole blocks out as soon as they are complete; a leftover is an error.
    let e = Mech::new(CKM_AES_ECB);
    let parts = t.cipher_parts(true, &e, k, &[&data[..10], &data[10..32]]).unwrap();
    assert_eq!((parts[0].len(), parts[1].len(), parts[2].len()), (0, 32, 0));
    assert_eq!(t.cipher_parts(true, &e, k, &[&data[..10]]), Err(CKR_DATA_LEN_RANGE));
    // Two-call: a too-small buffer gets CKR_BUFFER_TOO_SMALL and the length; the operation stays.
    t.encrypt_init(&Mech::with(CKM_AES_CBC_PAD, &iv), k).unwrap();
    let mut d = data.clone();
    let mut out = vec![0u8; 200];
    let mut n: CK_ULONG = 10;
    let r = unsafe { t.f.C_Encrypt(t.h, d.as_mut_ptr(), d.len() as CK_ULONG, out.as_mut_ptr(), &mut n) };
    assert_eq!((r, n), (CKR_BUFFER_TOO_SMALL, 112));
    let r = unsafe { t.f.C_Encrypt(t.h, d.as_mut_ptr(), d.len() as CK_ULONG, out.as_mut_ptr(), &mut n) };
    assert_eq!((r, n), (CKR_OK, 112));
    assert_eq!(out[..112], t.encrypt(&Mech::with(CKM_AES_CBC_PAD, &iv), k, &data).unwrap()[..]);
}

#[test]
fn aes_ctr_counter_bits() {
    let t = Token::new("aesctr");
    let k = t.key(CKK_AES, &[5; 16]).unwrap();
    // Two counter bits starting at 0: four blocks, not one byte more.
    let cb = [0u8; 16];
    assert_eq!(t.encrypt(&ctr(2, &cb), k, &[0; 64]).map(|v| v.len()), Ok(64));
    assert_eq!(t.encrypt(&ctr(2, &cb), k, &[0; 65]), Err(CKR_DATA_LEN_RANGE));
    assert_eq!(t.decrypt(&ctr(2, &cb), k, &[0; 65]), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
    // Starting at the last value: one block.
    let mut last = [0xaau8; 16];
    last[15] = 0x03;
    assert!(t.encrypt(&ctr(2, &last), k, &[0; 16]).is_ok());
    assert_eq!(t.encrypt(&ctr(2, &last), k, &[0; 17]), Err(CKR_DATA_LEN_RANGE));
    // Multi-part: the limit counts across parts.
    assert_eq!(t.cipher_parts(true, &ctr(2, &cb), k, &[&[0; 40], &[0; 24], &[0; 1]]), Err(CKR_DATA_LEN_RANGE));
    // Within its range a narrow counter gives the same stream as a 128-bit one.
    let mut mid = [0x11u8; 16];
    mid[12..].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(t.encrypt(&ctr(32, &mid), k, &[0; 100]).unwrap(), t.encrypt(&ctr(128, &mid), k, &[0; 100]).unwrap());
}

#[test]
fn aes_gcm() {
    let t = Token::new("aesgcm");
    // Every encryption below is refused in the approved mode (GCM_ENCRYPT_REFUSED: the policy
    // decides before the mechanism reads its parameters); the decryptions run in both modes.
    let refused = GCM_ENCRYPT_REFUSED;
    // The GCM specification's test case 4 (AES-128, 96-bit IV, AAD).
    let k = t.key(CKK_AES, &unhex("feffe9928665731c6d6a8f9467308308")).unwrap();
    let iv = unhex("cafebabefacedbaddecaf888");
    let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let pt = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
    let ct = unhex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091");
    let tag = unhex("5bc94fbc3221a5db94fae95ae7121a47");
    let m = gcm(&iv, &aad, 128);
    assert_eq!(t.encrypt(&m, k, &pt), or_refused(Ok([ct.clone(), tag.clone()].concat()), refused));
    assert_eq!(t.decrypt(&m, k, &[ct.clone(), tag.clone()].concat()).unwrap(), pt);
    // Shorter tags are prefixes of the full one.
    let m96 = gcm(&iv, &aad, 96);
    assert_eq!(t.encrypt(&m96, k, &pt), or_refused(Ok([ct.clone(), tag[..12].to_vec()].concat()), refused));
    assert_eq!(t.decrypt(&m96, k, &[ct.clone(), tag[..12].to_vec()].concat()).unwrap(), pt);
    let m32 = gcm(&iv, &aad, 32);
    assert_eq!(t.encrypt(&m32, k, &pt).map(|v| v.len()), or_refused(Ok(pt.len() + 4), refused));
    assert_eq!(t.decrypt(&m32, k, &[ct.clone(), tag[..4].to_vec()].concat()).unwrap(), pt);
    // Tampering.
    let mut bad = [ct.clone(), tag.clone()].concat();
    bad[3] ^= 0x40;
    assert_eq!(t.decrypt(&m, k, &bad), Err(CKR_ENCRYPTED_DATA_INVALID));
    assert_eq!(
        t.decrypt(&gcm(&iv, &aad[1..], 128), k, &[ct.clone(), tag.clone()].concat()),
        Err(CKR_ENCRYPTED_DATA_INVALID)
    );
    assert_eq!(t.decrypt(&m, k, &tag[..10]), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
    // Multi-part: encryption streams, decryption holds everything until the tag is checked.
    let parts = t.cipher_parts(true, &m, k, &[&pt[..5], &pt[5..33], &pt[33..]]);
    if let Some(parts) = allowed(parts, refused, "multi-part GCM encryption") {
        assert_eq!((parts[0].len(), parts[1].len(), parts[3].len()), (5, 28, 16));
        assert_eq!(parts.concat(), [ct.clone(), tag.clone()].concat());
    }
    let whole = [ct.clone(), tag.clone()].concat();
    let back = t.cipher_parts(false, &m, k, &[&whole[..30], &whole[30..]]).unwrap();
    assert_eq!((back[0].len(), back[1].len()), (0, 0));
    assert_eq!(back.concat(), pt);
    // IVs of other lengths (the GCM specification's test case 6: a 60-byte IV).
    let iv60 = unhex("9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b");
    let ct6 = unhex("8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca701e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5");
    let tag6 = unhex("619cc5aefffe0bfa462af43c1699d050");
    let c6 = t.encrypt(&gcm(&iv60, &aad, 128), k, &pt);
    assert_eq!(c6.map(|c| c[pt.len()..].to_vec()), or_refused(Ok(tag6.clone()), refused));
    assert_eq!(t.decrypt(&gcm(&iv60, &aad, 128), k, &[ct6, tag6].concat()).unwrap(), pt);
    assert_eq!(t.encrypt(&gcm(&[1], &[], 128), k, b"x").map(|v| v.len()), or_refused(Ok(17), refused));
    // Parameter checks (on decryption too, which the approved mode leaves to them).
    for bits in [0, 8, 100, 136] {
        assert_eq!(
            t.encrypt_init(&gcm(&iv, &aad, bits), k),
            or_refused(Err(CKR_MECHANISM_PARAM_INVALID), refused),
            "tag bits {bits}"
        );
        assert_eq!(t.decrypt_init(&gcm(&iv, &aad, bits), k), Err(CKR_MECHANISM_PARAM_INVALID), "tag bits {bits}");
    }
    let bad_params = [gcm(&[], &aad, 128), Mech::with(CKM_AES_GCM, &[0; 12]), Mech::new(CKM_AES_GCM)];
    for p in &bad_params {
        assert_eq!(t.encrypt_init(p, k), or_refused(Err(CKR_MECHANISM_PARAM_INVALID), refused));
        assert_eq!(t.decrypt_init(p, k), Err(CKR_MECHANISM_PARAM_INVALID));
    }
    // The 2.40 layout without ulIvBits.
    #[repr(C)]
    struct Old {
        iv: *const u8,
        iv_len: CK_ULONG,
        aad: *const u8,
        aad_len: CK_ULONG,
        tag_bits: CK_ULONG,
    }
    let old = Old { iv: iv.as_ptr(), iv_len: 12, aad: aad.as_ptr(), aad_len: aad.len() as CK_ULONG, tag_bits: 128 };
    let old = Mech::with_struct(CKM_AES_GCM, &old);
    assert_eq!(t.encrypt(&old, k, &pt), or_refused(Ok([ct.clone(), tag.clone()].concat()), refused));
    assert_eq!(t.decrypt(&old, k, &[ct, tag].concat()).unwrap(), pt);
}

/// GCM unwraps (its tag authenticates the wrapped key; SP 800-38D, a key transport FIPS 140-3
/// IG D.G allows) in both modes, and never wraps outside the legacy rules: an IV the application
/// chose could repeat, and two keys wrapped under one IV give their XOR.
#[test]
fn aes_gcm_unwraps_but_does_not_wrap() {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let t = Token::new("aesgcm-unwrap");
    let kek_value = [0x42u8; 32];
    let kek = t.kek(CKK_AES, &kek_value).unwrap();
    let key = [0x17u8; 16];
    let iv = [9u8; 12];
    let sealer = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &kek_value).unwrap());
    let mut wrapped = key.to_vec();
    sealer.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut wrapped).unwrap();
    let m = gcm(&iv, &[], 128);
    let k = t.unwrap(&m, kek, &wrapped, &unwrapped(CKK_AES, None)).expect("GCM unwrap");
    assert!(t.same_value(k, &key));
    let mut altered = wrapped.clone();
    altered[3] ^= 1;
    assert_eq!(t.unwrap(&m, kek, &altered, &unwrapped(CKK_AES, None)), Err(CKR_WRAPPED_KEY_INVALID));
    assert_eq!(t.wrap(&m, kek, k), Err(CKR_MECHANISM_INVALID), "GCM wrapping");
    // Short tags do not authenticate a wrapped key enough: refused for unwrapping.
    let short = gcm(&iv, &[], 64);
    let cut = [&wrapped[..16], &wrapped[16..24]].concat();
    assert_eq!(t.unwrap(&short, kek, &cut, &unwrapped(CKK_AES, None)), Err(CKR_MECHANISM_PARAM_INVALID));
}

#[test]
fn aes_key_wrap() {
    let t = Token::new("aeskw");
    // RFC 3394 §4.1 and §4.6. The same value as a data key (KW as encryption) and as a
    // key-encryption key (C_WrapKey/C_UnwrapKey): a key is never both.
    let kek_value = unhex("000102030405060708090A0B0C0D0E0F");
    let enc = t.key(CKK_AES, &kek_value).unwrap();
    let kek = t.kek(CKK_AES, &kek_value).unwrap();
    let kw = Mech::new(CKM_AES_KEY_WRAP);
    let data = unhex("00112233445566778899AABBCCDDEEFF");
    let wrapped = unhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
    assert_eq!(t.encrypt(&kw, enc, &data).unwrap(), wrapped);
    assert_eq!(t.decrypt(&kw, enc, &wrapped).unwrap(), data);
    assert_eq!(t.encrypt(&Mech::with(CKM_AES_KEY_WRAP, &[0xa6; 8]), enc, &data).unwrap(), wrapped);
    assert_eq!(t.encrypt_init(&Mech::with(CKM_AES_KEY_WRAP, &[0xa5; 8]), enc), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(t.encrypt(&kw, enc, &data[..12]), Err(CKR_DATA_LEN_RANGE));
    assert_eq!(t.decrypt(&kw, enc, &wrapped[..16]), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
    let mut bad = wrapped.clone();
    bad[0] ^= 1;
    assert_eq!(t.decrypt(&kw, enc, &bad), Err(CKR_ENCRYPTED_DATA_INVALID));
    // The key-encryption key neither encrypts nor decrypts.
    assert_eq!(t.decrypt(&kw, kek, &wrapped), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    // Single-part only.
    t.encrypt_init(&kw, enc).unwrap();
    let mut d = data.clone();
    let mut n: CK_ULONG = 64;
    let mut out = [0u8; 64];
    let r = unsafe { t.f.C_EncryptUpdate(t.h, d.as_mut_ptr(), 16, out.as_mut_ptr(), &mut n) };
    assert_eq!(r, CKR_FUNCTION_NOT_SUPPORTED);
    let kek256 = t.key(CKK_AES, &unhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")).unwrap();
    let data256 = unhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
    let w = t.encrypt(&kw, kek256, &data256).unwrap();
    assert_eq!(w, unhex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"));
    // C_WrapKey / C_UnwrapKey of an AES key, and of a generic secret KW cannot take. (Values are
    // compared through check values: a key unwrapped by a key generated on the token is
    // sensitive, tests/attacks.rs.)
    let inner = t.key(CKK_AES, &data).unwrap();
    assert_eq!(t.wrap(&kw, kek, inner).unwrap(), wrapped);
    let back = t.unwrap(&kw, kek, &wrapped, &unwrapped(CKK_AES, None)).unwrap();
    assert!(t.same_value(back, &data));
    assert_eq!(t.unwrap(&kw, kek, &bad, &unwrapped(CKK_AES, None)), Err(CKR_WRAPPED_KEY_INVALID));
    assert_eq!(t.unwrap(&kw, kek, &bad[..20], &unwrapped(CKK_AES, None)), Err(CKR_WRAPPED_KEY_LEN_RANGE));
    // A key whose length is not a multiple of 8 bytes is zero padded to fit (PKCS#11 on
    // CKM_AES_KEY_WRAP), a short one to the two blocks RFC 3394 needs; unwrapping truncates to the
    // template's CKA_VALUE_LEN.
    for len in [20usize, 8, 1] {
        let odd = t.key(CKK_GENERIC_SECRET, &vec![1; len]).unwrap();
        let w = t.wrap(&kw, kek, odd).unwrap();
        let mut padded = vec![1; len];
        padded.resize(len.next_multiple_of(8).max(16), 0);
        assert_eq!(w, t.encrypt(&kw, enc, &padded).unwrap(), "{len}-byte key");
        let back = t.unwrap(&kw, kek, &w, &unwrapped(CKK_GENERIC_SECRET, Some(len))).unwrap();
        assert!(t.same_value(back, &vec![1; len]));
        // Without a length the padding stays: the application must convey the length (spec).
        let whole = t.unwrap(&kw, kek, &w, &unwrapped(CKK_GENERIC_SECRET, None)).unwrap();
        assert!(t.same_value(whole, &padded));
    }
    // Only zero bytes are taken off: a length that cuts into the value is refused.
    let w = t.wrap(&kw, kek, t.key(CKK_GENERIC_SECRET, &[1; 20]).unwrap()).unwrap();
    assert_eq!(t.unwrap(&kw, kek, &w, &unwrapped(CKK_GENERIC_SECRET, Some(19))), Err(CKR_TEMPLATE_INCONSISTENT));
    // Encryption with KW stays strict: the data is the caller's, not a key.
    assert_eq!(t.encrypt(&kw, enc, &[1; 20]), Err(CKR_DATA_LEN_RANGE));
    // KWP takes it: RFC 5649 §6.
    let kek2_value = unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
    let enc2 = t.key(CKK_AES, &kek2_value).unwrap();
    let kek2 = t.kek(CKK_AES, &kek2_value).unwrap();
    let kwp = Mech::new(CKM_AES_KEY_WRAP_KWP);
    let k20 = unhex("c37b7e6492584340bed12207808941155068f738");
    let w20 = unhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
    assert_eq!(t.encrypt(&kwp, enc2, &k20).unwrap(), w20);
    assert_eq!(t.encrypt(&kwp, enc2, &unhex("466f7250617369")).unwrap(), unhex("afbeb0f07dfbf5419200f2ccb50bb24f"));
    assert_eq!(t.decrypt(&kwp, enc2, &w20).unwrap(), k20);
    assert_eq!(t.encrypt(&Mech::with(CKM_AES_KEY_WRAP_KWP, &[0xa6, 0x59, 0x59, 0xa6]), enc2, &k20).unwrap(), w20);
    assert_eq!(t.encrypt_init(&Mech::with(CKM_AES_KEY_WRAP_KWP, &[0xa6; 8]), enc2), Err(CKR_MECHANISM_PARAM_INVALID));
    let g20 = t.key(CKK_GENERIC_SECRET, &k20).unwrap();
    assert_eq!(t.wrap(&kwp, kek2, g20).unwrap(), w20);
    let back = t.unwrap(&kwp, kek2, &w20, &unwrapped(CKK_GENERIC_SECRET, None)).unwrap();
    assert!(t.same_value(back, &k20));
    // Unextractable keys are not wrapped; non-AES wrapping keys are refused.
    let mut tpl = secret(CKK_AES, &[4; 16]);
    tpl.retain(|(a, _)| *a != CKA_EXTRACTABLE);
    tpl.push((CKA_EXTRACTABLE, V::B(false)));
    let fixed = t.create(&tpl).unwrap();
    assert_eq!(t.wrap(&kw, kek, fixed), Err(CKR_KEY_UNEXTRACTABLE));
    let g20kek = t.kek(CKK_GENERIC_SECRET, &k20).unwrap();
    assert_eq!(t.wrap(&kw, g20kek, inner), Err(CKR_WRAPPING_KEY_TYPE_INCONSISTENT));
    // CBC_PAD, ECB and GCM do not wrap outside the legacy rules (see
    // `unauthenticated_wrapping_only_under_the_legacy_rules`), in either mode; CBC_PAD and ECB do
    // not unwrap either, and GCM unwraps only what its tag authenticates
    // (`aes_gcm_unwraps_but_does_not_wrap`).
    let iv = [0u8; 16];
    for m in [Mech::with(CKM_AES_CBC_PAD, &iv), Mech::new(CKM_AES_ECB), gcm(&[1; 12], b"label", 128)] {
        assert_eq!(t.wrap(&m, kek, g20), Err(CKR_MECHANISM_INVALID));
        let refusal = if m.ty == CKM_AES_GCM { CKR_WRAPPED_KEY_INVALID } else { CKR_MECHANISM_INVALID };
        assert_eq!(t.unwrap(&m, kek, &[0x5a; 48], &unwrapped(CKK_GENERIC_SECRET, None)), Err(refusal));
    }
}

/// The wrapping mechanisms that do not authenticate what they wrap (ECB and CBC let a block be
/// unwrapped on its own, CBC_PAD answers as a padding oracle, GCM takes the application's IV) wrap
/// and unwrap only under `keys.legacy_wrapping = allow`, which the approved mode ignores.
#[test]
fn unauthenticated_wrapping_only_under_the_legacy_rules() {
    let t = Token::legacy("aeslegacy");
    let kek_value = unhex("000102030405060708090A0B0C0D0E0F");
    let k20 = unhex("c37b7e6492584340bed12207808941155068f738");
    let g20 = t.key(CKK_GENERIC_SECRET, &k20).unwrap();
    let readable = |len| made(CKK_GENERIC_SECRET, len);
    // A key made from a known value may both encrypt and wrap (it never wraps a sensitive key).
    let mut both = secret(CKK_AES, &kek_value);
    both.extend([(CKA_WRAP, V::B(true)), (CKA_UNWRAP, V::B(true))]);
    let kek = t.create(&both).unwrap();
    let iv = [0u8; 16];
    let cbc = Mech::with(CKM_AES_CBC_PAD, &iv);
    if let Some(w) = allowed(t.wrap(&cbc, kek, g20), CKR_MECHANISM_INVALID, "wrapping with CBC_PAD") {
        let back = t.unwrap(&cbc, kek, &w, &readable(None)).unwrap();
        assert_eq!(t.value(back).unwrap(), k20);
    }
    // ECB and CBC wrap the key zero padded (not approved either).
    if let Some(w) = allowed(t.wrap(&Mech::new(CKM_AES_ECB), kek, g20), CKR_MECHANISM_INVALID, "wrapping with ECB") {
        assert_eq!(w.len(), 32);
        let back = t.unwrap(&Mech::new(CKM_AES_ECB), kek, &w, &readable(Some(20))).unwrap();
        assert_eq!(t.value(back).unwrap(), k20);
    }
    let g = gcm(&[1; 12], b"label", 128);
    if let Some(w) = allowed(t.wrap(&g, kek, g20), CKR_MECHANISM_INVALID, "wrapping with GCM") {
        let back = t.unwrap(&g, kek, &w, &readable(None)).unwrap();
        assert_eq!(t.value(back).unwrap(), k20);
    }
}

#[test]
fn aes_cmac() {
    let t = Token::new("aescmac");
    let k = t.key(CKK_AES, &unhex(K128)).unwrap();
    // RFC 4493 examples 1 and 2.
    let full = Mech::new(CKM_AES_CMAC);
    assert_eq!(t.sign(&full, k, &[]).unwrap(), unhex("bb1d6929e95937287fa37d129b756746"));
    let msg = unhex("6bc1bee22e409f96e93d7e117393172a");
    let tag = unhex("070a16b46b4d4144f79bdd9dd04a287c");
    assert_eq!(t.sign(&full, k, &msg).unwrap(), tag);
    assert_eq!(t.sign_parts(&full, k, &[&msg[..3], &msg[3..]]).unwrap(), tag);
    assert_eq!(t.verify(&full, k, &msg, &tag), Ok(()));
    assert_eq!(t.verify_parts(&full, k, &[&msg[..9], &msg[9..]], &tag), Ok(()));
    assert_eq!(t.verify(&full, k, &msg[1..], &tag), Err(CKR_SIGNATURE_INVALID));
    assert_eq!(t.verify(&full, k, &msg, &tag[..8]), Err(CKR_SIGNATURE_LEN_RANGE));
    let g8 = Mech::with_ulong(CKM_AES_CMAC_GENERAL, 8);
    assert_eq!(t.sign(&g8, k, &msg).unwrap(), tag[..8]);
    assert_eq!(t.verify(&g8, k, &msg, &tag[..8]), Ok(()));
    assert_eq!(t.verify(&g8, k, &msg, &tag), Err(CKR_SIGNATURE_LEN_RANGE));
    let mut m = CK_MECHANISM { mechanism: CKM_AES_CMAC_GENERAL, pParameter: null_mut(), ulParameterLen: 0 };
    assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut m, k) }, CKR_MECHANISM_PARAM_INVALID);
    assert_eq!(t.sign(&Mech::with_ulong(CKM_AES_CMAC_GENERAL, 17), k, &msg), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(t.sign(&Mech::with_ulong(CKM_AES_CMAC_GENERAL, 0), k, &msg), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(t.sign(&Mech::with_ulong(CKM_AES_CMAC, 16), k, &msg), Err(CKR_MECHANISM_PARAM_INVALID));
}

/// HMAC computed in the test from the hash (RFC 2104), for SHA-3.
fn reference_hmac<D: sha3::Digest>(block: usize, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > block { D::digest(key).to_vec() } else { key.to_vec() };
    k.resize(block, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = D::digest([ipad, msg.to_vec()].concat());
    D::digest([opad, inner.to_vec()].concat()).to_vec()
}

/// The approved mode's answers for HMAC: a key shorter than 112 bits (SP 800-131A Rev. 2 §10)
/// is outside the rule; truncated HMAC (`_GENERAL`) and HMAC-SHA3-224 have no approved use.
const SHORT_HMAC_KEY: CK_RV = CKR_KEY_SIZE_RANGE;
const NO_APPROVED_USE: CK_RV = CKR_MECHANISM_INVALID;

/// RFC 2202 and RFC 4231, cases 1 and 2: each HMAC mechanism with its tag of "Hi There" under
/// twenty 0x0b bytes (case 1) and of "what do ya want for nothing?" under "Jefe" (case 2).
const HMAC_CASES: [(CK_MECHANISM_TYPE, &str, &str); 5] = [
    (CKM_SHA_1_HMAC, "b617318655057264e28bc0b6fb378c8ef146be00", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    (
        CKM_SHA224_HMAC,
        "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
        "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
    ),
    (
        CKM_SHA256_HMAC,
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        CKM_SHA384_HMAC,
        "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
    ),
    (
        CKM_SHA512_HMAC,
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    ),
];

#[test]
fn hmac_known_answers_and_checks() {
    let t = Token::new("hmac");
    // "Jefe" is a 32-bit key: every use of it is refused in the approved mode.
    let jefe = t.key(CKK_GENERIC_SECRET, b"Jefe").unwrap();
    let msg = b"what do ya want for nothing?";
    // RFC 2202 case 2 and RFC 4231 case 2.
    for (m, _, want) in HMAC_CASES {
        let want = unhex(want);
        assert_eq!(t.sign(&Mech::new(m), jefe, msg), or_refused(Ok(want.clone()), SHORT_HMAC_KEY), "mechanism {m:#x}");
        assert_eq!(
            t.sign_parts(&Mech::new(m), jefe, &[&msg[..4], &[], &msg[4..]]),
            or_refused(Ok(want.clone()), SHORT_HMAC_KEY)
        );
        assert_eq!(t.verify(&Mech::new(m), jefe, msg, &want), or_refused(Ok(()), SHORT_HMAC_KEY));
        let general = Mech::with_ulong(m + 1, 10);
        assert_eq!(t.sign(&general, jefe, msg), or_refused(Ok(want[..10].to_vec()), NO_APPROVED_USE));
        assert_eq!(t.verify(&general, jefe, msg, &want[..10]), or_refused(Ok(()), NO_APPROVED_USE));
        assert_eq!(
            t.verify(&Mech::new(m), jefe, msg, &want[..10]),
            or_refused(Err(CKR_SIGNATURE_LEN_RANGE), SHORT_HMAC_KEY)
        );
        let mut bad = want.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(t.verify(&Mech::new(m), jefe, msg, &bad), or_refused(Err(CKR_SIGNATURE_INVALID), SHORT_HMAC_KEY));
    }
    // RFC 2202 case 1 and RFC 4231 case 1: a 160-bit key, approved in both modes.
    let k20 = t.key(CKK_GENERIC_SECRET, &[0x0b; 20]).unwrap();
    let hi = b"Hi There";
    for (m, want, _) in HMAC_CASES {
        let want = unhex(want);
        assert_eq!(t.sign(&Mech::new(m), k20, hi).unwrap(), want, "mechanism {m:#x}");
        assert_eq!(t.sign_parts(&Mech::new(m), k20, &[&hi[..3], &hi[3..]]).unwrap(), want);
        assert_eq!(t.verify(&Mech::new(m), k20, hi, &want), Ok(()));
        assert_eq!(t.verify_parts(&Mech::new(m), k20, &[&hi[..5], &[], &hi[5..]], &want), Ok(()));
        assert_eq!(t.verify(&Mech::new(m), k20, hi, &want[..10]), Err(CKR_SIGNATURE_LEN_RANGE));
        let mut bad = want.clone();
        bad[0] ^= 0x80;
        assert_eq!(t.verify(&Mech::new(m), k20, hi, &bad), Err(CKR_SIGNATURE_INVALID));
        let general = Mech::with_ulong(m + 1, 16);
        assert_eq!(t.sign(&general, k20, hi), or_refused(Ok(want[..16].to_vec()), NO_APPROVED_USE));
        assert_eq!(t.verify(&general, k20, hi, &want[..16]), or_refused(Ok(()), NO_APPROVED_USE));
    }
    // SHA-3, against HMAC computed here; keys shorter and longer than the block.
    let long_key = [0xa5u8; 200];
    let lk = t.key(CKK_GENERIC_SECRET, &long_key).unwrap();
    type Sha3Case = (CK_MECHANISM_TYPE, fn(&[u8], &[u8]) -> Vec<u8>);
    let sha3: [Sha3Case; 4] = [
        (CKM_SHA3_224_HMAC, |k, m| reference_hmac::<sha3::Sha3_224>(144, k, m)),
        (CKM_SHA3_256_HMAC, |k, m| reference_hmac::<sha3::Sha3_256>(136, k, m)),
        (CKM_SHA3_384_HMAC, |k, m| reference_hmac::<sha3::Sha3_384>(104, k, m)),
        (CKM_SHA3_512_HMAC, |k, m| reference_hmac::<sha3::Sha3_512>(72, k, m)),
    ];
    for (m, f) in sha3 {
        // HMAC with a FIPS 202 hash is approved with keys of at least 112 bits.
        assert_eq!(
            t.sign(&Mech::new(m), jefe, msg),
            or_refused(Ok(f(b"Jefe", msg)), SHORT_HMAC_KEY),
            "mechanism {m:#x}"
        );
        let want = f(&long_key, msg);
        let signed = t.sign_parts(&Mech::new(m), lk, &[&msg[..20], &msg[20..]]);
        assert_eq!(signed, Ok(want.clone()), "mechanism {m:#x}");
        assert_eq!(t.verify(&Mech::with_ulong(m + 1, 16), lk, msg, &want[..16]), or_refused(Ok(()), NO_APPROVED_USE));
    }
    // Key types: the matching HMAC type or generic; others refused. Usage flags honoured (the key
    // type and usage are checked before the policy, so the approved mode gives the same errors).
    let typed = t.key(CKK_SHA256_HMAC, b"Jefe").unwrap();
    allowed(t.sign(&Mech::new(CKM_SHA256_HMAC), typed, msg), SHORT_HMAC_KEY, "HMAC with a 32-bit CKK_SHA256_HMAC key");
    let typed20 = t.key(CKK_SHA256_HMAC, &[0x0b; 20]).unwrap();
    assert_eq!(t.sign(&Mech::new(CKM_SHA256_HMAC), typed20, hi).unwrap(), unhex(HMAC_CASES[2].1));
    assert_eq!(t.sign(&Mech::new(CKM_SHA384_HMAC), typed, msg), Err(CKR_KEY_TYPE_INCONSISTENT));
    let aes = t.key(CKK_AES, &[0; 16]).unwrap();
    assert_eq!(t.sign(&Mech::new(CKM_SHA256_HMAC), aes, msg), Err(CKR_KEY_TYPE_INCONSISTENT));
    let mut tpl = secret(CKK_GENERIC_SECRET, b"Jefe");
    tpl.retain(|(a, _)| *a != CKA_SIGN);
    tpl.push((CKA_SIGN, V::B(false)));
    let verify_only = t.create(&tpl).unwrap();
    assert_eq!(t.sign(&Mech::new(CKM_SHA256_HMAC), verify_only, msg), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    assert_eq!(
        t.verify(&Mech::new(CKM_SHA256_HMAC), verify_only, msg, &unhex(HMAC_CASES[2].2)),
        or_refused(Ok(()), SHORT_HMAC_KEY)
    );
    // Parameters (the policy decides first: with the 32-bit key the approved mode answers that).
    assert_eq!(
        t.sign(&Mech::with_ulong(CKM_SHA256_HMAC_GENERAL, 33), jefe, msg),
        or_refused(Err(CKR_MECHANISM_PARAM_INVALID), NO_APPROVED_USE)
    );
    assert_eq!(
        t.sign(&Mech::with(CKM_SHA256_HMAC_GENERAL, &[1, 2]), jefe, msg),
        or_refused(Err(CKR_MECHANISM_PARAM_INVALID), NO_APPROVED_USE)
    );
    assert_eq!(
        t.sign(&Mech::with(CKM_SHA256_HMAC, &[1]), jefe, msg),
        or_refused(Err(CKR_MECHANISM_PARAM_INVALID), SHORT_HMAC_KEY)
    );
    assert_eq!(t.sign(&Mech::with(CKM_SHA256_HMAC, &[1]), k20, msg), Err(CKR_MECHANISM_PARAM_INVALID));
    // Two-call length query on C_Sign (with the 160-bit key in the approved mode, which refuses
    // the 32-bit one).
    let mut mm = CK_MECHANISM { mechanism: CKM_SHA512_HMAC, pParameter: null_mut(), ulParameterLen: 0 };
    let (key, data, want) = if approved_mode() {
        assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut mm, jefe) }, SHORT_HMAC_KEY);
        (k20, hi.to_vec(), unhex(HMAC_CASES[4].1))
    } else {
        (jefe, msg.to_vec(), unhex(HMAC_CASES[4].2))
    };
    assert_eq!(unsafe { t.f.C_SignInit(t.h, &mut mm, key) }, CKR_OK);
    let mut d = data;
    let mut n: CK_ULONG = 0;
    let r = unsafe { t.f.C_Sign(t.h, d.as_mut_ptr(), d.len() as CK_ULONG, null_mut(), &mut n) };
    assert_eq!((r, n), (CKR_OK, 64));
    let mut out = [0u8; 64];
    n = 63;
    let r = unsafe { t.f.C_Sign(t.h, d.as_mut_ptr(), d.len() as CK_ULONG, out.as_mut_ptr(), &mut n) };
    assert_eq!((r, n), (CKR_BUFFER_TOO_SMALL, 64));
    n = 64;
    let r = unsafe { t.f.C_Sign(t.h, d.as_mut_ptr(), d.len() as CK_ULONG, out.as_mut_ptr(), &mut n) };
    assert_eq!(r, CKR_OK);
    assert_eq!(out.to_vec(), want);
}

#[test]
fn generic_secret_generation() {
    let t = Token::new("generic");
    let g = Mech::new(CKM_GENERIC_SECRET_KEY_GEN);
    // Without CKA_VALUE_LEN the template is incomplete in both modes; below 112 bits the size is
    // outside the approved rule.
    assert_eq!(t.generate(&g, &made(CKK_GENERIC_SECRET, None)), Err(CKR_TEMPLATE_INCOMPLETE));
    assert_eq!(
        t.generate(&g, &made(CKK_GENERIC_SECRET, Some(0))),
        or_refused(Err(CKR_ATTRIBUTE_VALUE_INVALID), CKR_KEY_SIZE_RANGE)
    );
    let short = t.generate(&g, &made(CKK_GENERIC_SECRET, Some(13)));
    if let Some(k) = allowed(short, CKR_KEY_SIZE_RANGE, "a 104-bit generic secret") {
        assert_eq!(t.value(k).unwrap().len(), 13);
    }
    assert_eq!(t.value(t.generate(&g, &made(CKK_GENERIC_SECRET, Some(14))).unwrap()).unwrap().len(), 14);
    let k = t.generate(&g, &made(CKK_GENERIC_SECRET, Some(20))).unwrap();
    assert_eq!(t.value(k).unwrap().len(), 20);
    assert_eq!(t.attr(k, CKA_VALUE_LEN).unwrap(), (20 as CK_ULONG).to_ne_bytes());
    assert_eq!(t.sign(&Mech::new(CKM_SHA256_HMAC), k, b"x").unwrap().len(), 32);
}

#[test]
fn hkdf_derive() {
    let t = Token::new("hkdf");
    // RFC 5869 case 1.
    let ikm = t.key(CKK_GENERIC_SECRET, &[0x0b; 22]).unwrap();
    let salt = unhex("000102030405060708090a0b0c");
    let info = unhex("f0f1f2f3f4f5f6f7f8f9");
    let prk = unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    let okm = unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    let both = hkdf(CKM_HKDF_DERIVE, true, true, CKM_SHA256, Some(&salt), &info);
    let k = t.derive(&both, ikm, &made(CKK_GENERIC_SECRET, Some(42))).unwrap();
    assert_eq!(t.value(k).unwrap(), okm);
    let extract = hkdf(CKM_HKDF_DERIVE, true, false, CKM_SHA256, Some(&salt), &[]);
    let p = t.derive(&extract, ikm, &made(CKK_GENERIC_SECRET, None)).unwrap();
    assert_eq!(t.value(p).unwrap(), prk);
    assert_eq!(t.derive(&extract, ikm, &made(CKK_GENERIC_SECRET, Some(16))), Err(CKR_TEMPLATE_INCONSISTENT));
    let prk_key = t.key(CKK_GENERIC_SECRET, &prk).unwrap();
    let expand = hkdf(CKM_HKDF_DERIVE, false, true, CKM_SHA256, None, &info);
    let k = t.derive(&expand, prk_key, &made(CKK_GENERIC_SECRET, Some(42))).unwrap();
    assert_eq!(t.value(k).unwrap(), okm);
    // RFC 5869 case 3: no salt, no info (SALT_NULL).
    let k = t
        .derive(&hkdf(CKM_HKDF_DERIVE, true, true, CKM_SHA256, None, &[]), ikm, &made(CKK_GENERIC_SECRET, Some(42)))
        .unwrap();
    assert_eq!(
        t.value(k).unwrap(),
        unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    );
    // Into an AES key, usable at once.
    let a = t.derive(&both, ikm, &made(CKK_AES, Some(32))).unwrap();
    assert_eq!(t.value(a).unwrap(), okm[..32]);
    assert!(t.encrypt(&Mech::new(CKM_AES_ECB), a, &[0; 16]).is_ok());
    assert_eq!(t.derive(&both, ikm, &made(CKK_AES, Some(20))), Err(CKR_ATTRIBUTE_VALUE_INVALID));
    // SHA-3 and SHA-224 PRFs derive (lengths checked; values by the unit tests and Wycheproof).
    for prf in [CKM_SHA3_256, CKM_SHA224, CKM_SHA_1, CKM_SHA3_512] {
        let k = t.derive(
            &hkdf(CKM_HKDF_DERIVE, true, true, prf, Some(&salt), &info),
            ikm,
            &made(CKK_GENERIC_SECRET, Some(70)),
        );
        assert_eq!(t.value(k.unwrap()).unwrap().len(), 70);
    }
    // Errors.
    // Without CKA_VALUE_LEN ("should be set") the output is one SHA-256 block: the first 32 bytes
    // of the 42 (HKDF-Expand's first block does not depend on the length); a DES3 key takes the
    // length its type fixes.
    let k = t.derive(&both, ikm, &made(CKK_GENERIC_SECRET, None)).unwrap();
    assert_eq!(t.value(k).unwrap(), okm[..32]);
    let k = t.derive(&both, ikm, &made(CKK_DES3, None)).unwrap();
    assert_eq!(t.value(k).unwrap(), okm[..24]);
    assert_eq!(t.derive(&both, ikm, &made(CKK_GENERIC_SECRET, Some(255 * 32 + 1))), Err(CKR_ATTRIBUTE_VALUE_INVALID));
    let neither = hkdf(CKM_HKDF_DERIVE, false, false, CKM_SHA256, None, &[]);
    assert_eq!(t.derive(&neither, ikm, &made(CKK_GENERIC_SECRET, Some(16))), Err(CKR_MECHANISM_PARAM_INVALID));
    let md5 = hkdf(CKM_HKDF_DERIVE, true, true, CKM_MD5, None, &[]);
    assert_eq!(t.derive(&md5, ikm, &made(CKK_GENERIC_SECRET, Some(16))), Err(CKR_MECHANISM_PARAM_INVALID));
    let mut p = CK_HKDF_PARAMS {
        bExtract: 1,
        bExpand: 1,
        prfHashMechanism: CKM_SHA256,
        ulSaltType: CKF_HKDF_SALT_KEY,
        pSalt: null_mut(),
        ulSaltLen: 0,
        hSaltKey: ikm,
        pInfo: null_mut(),
        ulInfoLen: 0,
    };
    // The salt as a key (CKF_HKDF_SALT_KEY): RFC 5869 case 1 again, its salt in a generic secret.
    let salt_obj = t.key(CKK_GENERIC_SECRET, &salt).unwrap();
    p.hSaltKey = salt_obj;
    p.pInfo = info.as_ptr() as *mut u8;
    p.ulInfoLen = info.len() as CK_ULONG;
    let k = t.derive(&Mech::with_struct(CKM_HKDF_DERIVE, &p), ikm, &made(CKK_GENERIC_SECRET, Some(42)));
    assert_eq!(t.value(k.unwrap()).unwrap(), okm);
    // CKM_HKDF_KEY_GEN makes CKK_HKDF keys: a base key and a salt key for HKDF.
    let gen = Mech::new(CKM_HKDF_KEY_GEN);
    assert_eq!(t.generate(&gen, &made(CKK_HKDF, None)), Err(CKR_TEMPLATE_INCOMPLETE));
    let mut hkdf_tpl = made(CKK_HKDF, Some(32));
    hkdf_tpl.push((CKA_DERIVE, V::B(true)));
    let hk = t.generate(&gen, &hkdf_tpl).unwrap();
    assert_eq!(t.attr(hk, CKA_KEY_TYPE).unwrap(), CKK_HKDF.to_ne_bytes());
    let hv = t.value(hk).unwrap();
    assert_eq!(hv.len(), 32);
    p.hSaltKey = hk;
    let k = t.derive(&Mech::with_struct(CKM_HKDF_DERIVE, &p), hk, &made(CKK_GENERIC_SECRET, Some(42))).unwrap();
    let again = t.derive(
        &hkdf(CKM_HKDF_DERIVE, true, true, CKM_SHA256, Some(&hv), &info),
        hk,
        &made(CKK_GENERIC_SECRET, Some(42)),
    );
    assert_eq!(t.value(k).unwrap(), t.value(again.unwrap()).unwrap(), "salt as key = salt as data");
    // Only a secret key meant for derivation, that the session can see, is a salt key.
    let aes_salt = t.key(CKK_AES, &[7; 16]).unwrap();
    let mut no_derive_salt = secret(CKK_GENERIC_SECRET, &salt);
    no_derive_salt.retain(|(a, _)| *a != CKA_DERIVE);
    no_derive_salt.push((CKA_DERIVE, V::B(false)));
    let no_derive_salt = t.create(&no_derive_salt).unwrap();
    for (handle, want) in [
        (aes_salt, CKR_KEY_TYPE_INCONSISTENT),
        (no_derive_salt, CKR_KEY_FUNCTION_NOT_PERMITTED),
        (CK_INVALID_HANDLE, CKR_KEY_HANDLE_INVALID),
        (0x7fff_fff0, CKR_KEY_HANDLE_INVALID),
    ] {
        p.hSaltKey = handle;
        let r = t.derive(&Mech::with_struct(CKM_HKDF_DERIVE, &p), ikm, &made(CKK_GENERIC_SECRET, Some(16)));
        assert_eq!(r, Err(want), "salt key {handle:#x}");
    }
    p.hSaltKey = ikm;
    p.pInfo = null_mut();
    p.ulInfoLen = 0;
    p.ulSaltType = CKF_HKDF_SALT_DATA;
    p.ulSaltLen = 4;
    let null_salt = Mech::with_struct(CKM_HKDF_DERIVE, &p);
    assert_eq!(t.derive(&null_salt, ikm, &made(CKK_GENERIC_SECRET, Some(16))), Err(CKR_MECHANISM_PARAM_INVALID));
    assert_eq!(
        t.derive(&Mech::with(CKM_HKDF_DERIVE, &[0; 8]), ikm, &made(CKK_GENERIC_SECRET, Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut tpl = secret(CKK_GENERIC_SECRET, &[1; 32]);
    tpl.retain(|(a, _)| *a != CKA_DERIVE);
    tpl.push((CKA_DERIVE, V::B(false)));
    let no_derive = t.create(&tpl).unwrap();
    assert_eq!(t.derive(&both, no_derive, &made(CKK_GENERIC_SECRET, Some(16))), Err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    let aes = t.key(CKK_AES, &[1; 32]).unwrap();
    assert_eq!(t.derive(&both, aes, &made(CKK_GENERIC_SECRET, Some(16))), Err(CKR_KEY_TYPE_INCONSISTENT));
    // A base key shorter than 112 bits is outside the approved rule.
    let short = t.key(CKK_GENERIC_SECRET, &[0x0b; 13]).unwrap();
    let k = t.derive(&both, short, &made(CKK_GENERIC_SECRET, Some(16)));
    if let Some(k) = allowed(k, CKR_KEY_SIZE_RANGE, "HKDF from a 104-bit key") {
        assert_eq!(t.value(k).unwrap().len(), 16);
    }
    let k = t.derive(&both, t.key(CKK_GENERIC_SECRET, &[0x0b; 14]).unwrap(), &made(CKK_GENERIC_SECRET, Some(16)));
    assert_eq!(t.value(k.unwrap()).unwrap().len(), 16);
}

/// What the approved mode answers PBKDF2 parameters below SP 800-132 with (salt of fewer than 128
/// bits, fewer than 1,000 iterations): the rule's condition is unmet.
const BELOW_SP800_132: CK_RV = CKR_MECHANISM_PARAM_INVALID;

#[test]
fn pbkdf2_generate() {
    let t = Token::new("pbkdf2");
    // RFC 6070 case 2 (SHA-1) and the SHA-256 analogue: a 4-byte salt and 1 or 2 iterations.
    let k = t.generate(&pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA1, b"password", b"salt", 2), &made(CKK_GENERIC_SECRET, Some(20)));
    if let Some(k) = allowed(k, BELOW_SP800_132, "PBKDF2, RFC 6070 case 2") {
        assert_eq!(t.value(k).unwrap(), unhex("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"));
        assert_eq!(t.attr(k, CKA_KEY_GEN_MECHANISM).unwrap(), CKM_PKCS5_PBKD2.to_ne_bytes());
    }
    let want256 = unhex("120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
    let k = t.generate(&pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA256, b"password", b"salt", 1), &made(CKK_AES, Some(32)));
    if let Some(k) = allowed(k, BELOW_SP800_132, "PBKDF2-HMAC-SHA256, 1 iteration") {
        assert_eq!(t.value(k).unwrap(), want256);
        assert!(t.encrypt(&Mech::new(CKM_AES_ECB), k, &[0; 16]).is_ok());
    }
    // The older CK_PKCS5_PBKD2_PARAMS, whose password length is behind a pointer.
    let (pw, salt) = (b"password".to_vec(), b"salt".to_vec());
    let mut pw_len: CK_ULONG = 0;
    let old = pbkd2_params_v1(&pbkd2_params(CKP_PKCS5_PBKD2_HMAC_SHA256, &pw, &salt, 1), &mut pw_len);
    let k = t.generate(&Mech::with_struct(CKM_PKCS5_PBKD2, &old), &made(CKK_GENERIC_SECRET, Some(32)));
    if let Some(k) = allowed(k, BELOW_SP800_132, "PBKDF2 (CK_PKCS5_PBKD2_PARAMS), 1 iteration") {
        assert_eq!(t.value(k).unwrap(), want256);
    }
    // SHA-224/384/512 PRFs (3 iterations).
    for (prf, len) in
        [(CKP_PKCS5_PBKD2_HMAC_SHA224, 40), (CKP_PKCS5_PBKD2_HMAC_SHA384, 50), (CKP_PKCS5_PBKD2_HMAC_SHA512, 70)]
    {
        let k = t.generate(&pbkd2(prf, b"pw", b"0123456789abcdef", 3), &made(CKK_GENERIC_SECRET, Some(len)));
        if let Some(k) = allowed(k, BELOW_SP800_132, "PBKDF2, 3 iterations") {
            assert_eq!(t.value(k).unwrap().len(), len);
        }
    }
    let k =
        t.generate(&pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA512, b"password", b"salt", 1), &made(CKK_GENERIC_SECRET, Some(64)));
    if let Some(k) = allowed(k, BELOW_SP800_132, "PBKDF2-HMAC-SHA512, 1 iteration") {
        assert_eq!(
            t.value(k).unwrap(),
            unhex("867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce")
        );
    }
    // RFC 6070 case 5 (a 36-byte salt, 4,096 iterations) and its SHA-256 analogue, in both layouts:
    // within SP 800-132, so approved in both modes.
    let (pw5, salt5) = (b"passwordPASSWORDpassword".to_vec(), b"saltSALTsaltSALTsaltSALTsaltSALTsalt".to_vec());
    let k =
        t.generate(&pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA1, &pw5, &salt5, 4096), &made(CKK_GENERIC_SECRET, Some(25))).unwrap();
    assert_eq!(t.value(k).unwrap(), unhex("3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"));
    assert_eq!(t.attr(k, CKA_KEY_GEN_MECHANISM).unwrap(), CKM_PKCS5_PBKD2.to_ne_bytes());
    let want5 = unhex("348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9");
    let k = t.generate(&pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA256, &pw5, &salt5, 4096), &made(CKK_GENERIC_SECRET, Some(40)));
    assert_eq!(t.value(k.unwrap()).unwrap(), want5);
    let mut pw5_len: CK_ULONG = 0;
    let old5 = pbkd2_params_v1(&pbkd2_params(CKP_PKCS5_PBKD2_HMAC_SHA256, &pw5, &salt5, 4096), &mut pw5_len);
    let k = t.generate(&Mech::with_struct(CKM_PKCS5_PBKD2, &old5), &made(CKK_GENERIC_SECRET, Some(40)));
    assert_eq!(t.value(k.unwrap()).unwrap(), want5);
    // SP 800-132's edges: a 16-byte salt and 1,000 iterations are approved; one byte or one
    // iteration less is not.
    let edge = |salt_len: usize, iterations: CK_ULONG| {
        let salt = vec![0x5a; salt_len];
        t.generate(&pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA256, b"pw", &salt, iterations), &made(CKK_GENERIC_SECRET, Some(16)))
    };
    assert!(edge(16, 1000).is_ok());
    allowed(edge(15, 1000), BELOW_SP800_132, "PBKDF2 with a 15-byte salt");
    allowed(edge(16, 999), BELOW_SP800_132, "PBKDF2 with 999 iterations");
    // Errors.
    let good = pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA256, b"pw", b"salt", 1);
    assert_eq!(
        t.generate(&good, &made(CKK_GENERIC_SECRET, None)),
        or_refused(Err(CKR_TEMPLATE_INCOMPLETE), BELOW_SP800_132)
    );
    assert_eq!(
        t.generate(&good, &made(CKK_AES, Some(17))),
        or_refused(Err(CKR_ATTRIBUTE_VALUE_INVALID), BELOW_SP800_132)
    );
    // The same template errors with parameters the approved mode accepts.
    let approvable = pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA256, b"pw", &[0x5a; 16], 1000);
    assert_eq!(t.generate(&approvable, &made(CKK_GENERIC_SECRET, None)), Err(CKR_TEMPLATE_INCOMPLETE));
    assert_eq!(t.generate(&approvable, &made(CKK_AES, Some(17))), Err(CKR_ATTRIBUTE_VALUE_INVALID));
    // Invalid parameters: the same answer in both modes (the approved mode's condition is unmet).
    assert_eq!(
        t.generate(&pbkd2(CKP_PKCS5_PBKD2_HMAC_SHA256, b"pw", b"salt", 0), &made(CKK_GENERIC_SECRET, Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        t.generate(&pbkd2(CKP_PKCS5_PBKD2_HMAC_GOSTR3411, b"pw", b"salt", 1), &made(CKK_GENERIC_SECRET, Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        t.generate(&Mech::new(CKM_PKCS5_PBKD2), &made(CKK_GENERIC_SECRET, Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut p = pbkd2_params(CKP_PKCS5_PBKD2_HMAC_SHA256, &pw, &salt, 1);
    p.saltSource = 2;
    assert_eq!(
        t.generate(&Mech::with_struct(CKM_PKCS5_PBKD2, &p), &made(CKK_GENERIC_SECRET, Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    p.saltSource = CKZ_SALT_SPECIFIED;
    p.pPassword = null_mut();
    assert_eq!(
        t.generate(&Mech::with_struct(CKM_PKCS5_PBKD2, &p), &made(CKK_GENERIC_SECRET, Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}

/// Triple-DES and single DES, for legacy data and suites written for SoftHSMv2 and other HSMs:
/// keying options 1 and 2, ECB, CBC and CBC_PAD, single- and multi-part, key generation with odd
/// parity, the check value, and wrapping with CBC_PAD. The approved mode offers none of it.
#[test]
fn triple_des() {
    // Triple-DES wraps with ECB, CBC and CBC_PAD, none of which authenticates: the legacy rules.
    let t = Token::legacy("tdea");
    let key3 = unhex("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123");
    let k = t.key(CKK_DES3, &key3).unwrap();
    // The check value: the first 3 bytes of the encryption of a zero block (openssl enc -des-ede3).
    assert_eq!(t.attr(k, CKA_CHECK_VALUE).unwrap(), unhex("4eba73"));
    assert_eq!(t.key(CKK_DES3, &key3[..16]), Err(CKR_ATTRIBUTE_VALUE_INVALID), "a DES3 key is 24 bytes");
    assert_eq!(t.key(CKK_DES2, &key3), Err(CKR_ATTRIBUTE_VALUE_INVALID), "a DES2 key is 16 bytes");
    let ecb = Mech::new(CKM_DES3_ECB);
    let gen3 = Mech::new(CKM_DES3_KEY_GEN);
    if approved_mode() {
        assert_eq!(t.encrypt_init(&ecb, k), Err(CKR_MECHANISM_INVALID));
        assert_eq!(t.generate(&gen3, &made(CKK_DES3, None)), Err(CKR_MECHANISM_INVALID));
        let all = [CKM_DES_KEY_GEN, CKM_DES_ECB, CKM_DES_CBC, CKM_DES_CBC_PAD, CKM_DES2_KEY_GEN, CKM_DES3_KEY_GEN];
        for m in all.into_iter().chain([CKM_DES3_ECB, CKM_DES3_CBC, CKM_DES3_CBC_PAD]) {
            let mut info = CK_MECHANISM_INFO::default();
            assert_eq!(unsafe { t.f.C_GetMechanismInfo(t.slot, m, &mut info) }, CKR_MECHANISM_INVALID);
        }
        return;
    }
    // SP 800-67 Rev. 2 Appendix B ("The qufck brown fox jump"), and the same key through CBC and
    // CBC_PAD (values from openssl enc -des-ede3-cbc).
    let pt = b"The qufck brown fox jump";
    let ct = unhex("A826FD8CE53B855F CCE21C8112256FE6 68D5C05DD9B6B900");
    assert_eq!(t.encrypt(&ecb, k, pt).unwrap(), ct);
    assert_eq!(t.decrypt(&ecb, k, &ct).unwrap(), pt);
    assert_eq!(t.encrypt(&ecb, k, &pt[..20]), Err(CKR_DATA_LEN_RANGE));
    let iv = unhex("0001020304050607");
    let cbc = Mech::with(CKM_DES3_CBC, &iv);
    let quick = b"The quick brown fox jump";
    let cbc_ct = unhex("29b01b011b9ebb6f10308a42938279068782e8bec97fe03f");
    assert_eq!(t.encrypt(&cbc, k, quick).unwrap(), cbc_ct);
    assert_eq!(t.decrypt(&cbc, k, &cbc_ct).unwrap(), quick);
    assert_eq!(t.encrypt_init(&Mech::with(CKM_DES3_CBC, &[0; 16]), k), Err(CKR_MECHANISM_PARAM_INVALID));
    let pad = Mech::with(CKM_DES3_CBC_PAD, &iv);
    let jumps = b"The quick brown fox jumps";
    let pad_ct = unhex("29b01b011b9ebb6f10308a42938279068782e8bec97fe03fb143422b360e22fd");
    assert_eq!(t.encrypt(&pad, k, jumps).unwrap(), pad_ct);
    assert_eq!(t.decrypt(&pad, k, &pad_ct).unwrap(), jumps);
    // Multi-part, in uneven pieces.
    let enc = t.cipher_parts(true, &pad, k, &[&jumps[..3], &jumps[3..17], &jumps[17..]]).unwrap();
    assert_eq!(enc.concat(), pad_ct);
    let dec = t.cipher_parts(false, &pad, k, &[&pad_ct[..5], &pad_ct[5..24], &pad_ct[24..]]).unwrap();
    assert_eq!(dec.concat(), jumps);
    let mut bad = pad_ct.clone();
    bad[31] ^= 1;
    assert_eq!(t.decrypt(&pad, k, &bad), Err(CKR_ENCRYPTED_DATA_INVALID));
    // Keying option 2 is option 1 with K3 = K1.
    let key2 = &key3[..16];
    let k2 = t.key(CKK_DES2, key2).unwrap();
    let k3 = t.key(CKK_DES3, &[key2, &key2[..8]].concat()).unwrap();
    assert_eq!(t.encrypt(&cbc, k2, quick).unwrap(), t.encrypt(&cbc, k3, quick).unwrap());
    // Single DES (FIPS 46-3's validation set; DES is Triple-DES with three equal keys).
    let des = t.key(CKK_DES, &unhex("8000000000000000")).unwrap();
    assert_eq!(t.encrypt(&Mech::new(CKM_DES_ECB), des, &[0; 8]).unwrap(), unhex("95A8D72813DAA94D"));
    assert_eq!(t.encrypt_init(&ecb, des), Err(CKR_KEY_TYPE_INCONSISTENT), "DES3 mechanisms take DES2/DES3 keys");
    assert_eq!(t.encrypt_init(&Mech::new(CKM_DES_ECB), k), Err(CKR_KEY_TYPE_INCONSISTENT));
    let des_cbc = Mech::with(CKM_DES_CBC, &iv);
    let k111 = t.key(CKK_DES3, &unhex("8000000000000000 8000000000000000 8000000000000000")).unwrap();
    assert_eq!(t.encrypt(&des_cbc, des, quick).unwrap(), t.encrypt(&cbc, k111, quick).unwrap());
    let des_pad = Mech::with(CKM_DES_CBC_PAD, &iv);
    assert_eq!(t.decrypt(&des_pad, des, &t.encrypt(&des_pad, des, jumps).unwrap()).unwrap(), jumps);
    // Generation: 24, 16 and 8 bytes with odd parity; usable at once.
    for (m, kt, n, c) in [
        (CKM_DES3_KEY_GEN, CKK_DES3, 24usize, &cbc),
        (CKM_DES2_KEY_GEN, CKK_DES2, 16, &cbc),
        (CKM_DES_KEY_GEN, CKK_DES, 8, &des_cbc),
    ] {
        let g = t.generate(&Mech::new(m), &made(kt, None)).unwrap();
        let v = t.value(g).unwrap();
        assert_eq!(v.len(), n);
        assert!(v.iter().all(|b| b.count_ones() % 2 == 1), "odd parity: {v:02x?}");
        assert_eq!(t.attr(g, CKA_VALUE_LEN).unwrap(), (n as CK_ULONG).to_ne_bytes());
        assert_eq!(t.decrypt(c, g, &t.encrypt(c, g, quick).unwrap()).unwrap(), quick);
        assert_eq!(t.generate(&Mech::new(m), &made(kt, Some(n + 8))), Err(CKR_TEMPLATE_INCONSISTENT));
    }
    // Wrapping an AES key with CBC_PAD and unwrapping it; ECB and CBC do not wrap.
    let aes = t.key(CKK_AES, &unhex(K128)).unwrap();
    let w = t.wrap(&pad, k, aes).unwrap();
    assert_eq!(w.len(), 24);
    let back = t.unwrap(&pad, k, &w, &made(CKK_AES, None)).unwrap();
    assert_eq!(t.value(back).unwrap(), unhex(K128));
    // ECB and CBC wrap too, the key zero padded to whole blocks; unwrapping truncates by the
    // template's CKA_VALUE_LEN, or by the key type where it fixes the length (PKCS#11).
    let g20 = t.key(CKK_GENERIC_SECRET, &[5; 20]).unwrap();
    for m in [&ecb, &cbc] {
        let w = t.wrap(m, k, g20).unwrap();
        assert_eq!(w.len(), 24);
        let back = t.unwrap(m, k, &w, &made(CKK_GENERIC_SECRET, Some(20))).unwrap();
        assert_eq!(t.value(back).unwrap(), [5; 20]);
    }
    let aes_ecb = Mech::new(CKM_AES_ECB);
    let w = t.wrap(&aes_ecb, aes, k).unwrap();
    assert_eq!(w.len(), 32, "24 bytes padded to two AES blocks");
    let back = t.unwrap(&aes_ecb, aes, &w, &made(CKK_DES3, None)).unwrap();
    assert_eq!(t.value(back).unwrap(), key3);
    // A Triple-DES key is flagged non-approved.
    assert_eq!(t.attr(k, CKA_OBJECT_VALIDATION_FLAGS).unwrap(), (0 as CK_ULONG).to_ne_bytes());
}
