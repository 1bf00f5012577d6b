//! Mechanism parameters from caller memory: every parameter structure the module decodes
//! (`abi::params::decode`: `CK_GCM_PARAMS` in both layouts, `CK_HKDF_PARAMS`,
//! `CK_PKCS5_PBKD2_PARAMS2` and the older `CK_PKCS5_PBKD2_PARAMS`, `CK_RSA_PKCS_OAEP_PARAMS`,
//! `CK_ECDH1_DERIVE_PARAMS`, `CK_EDDSA_PARAMS`; `abi::message::gcm_message` for
//! `CK_GCM_MESSAGE_PARAMS`, which is also given to `CKM_AES_GCM`, whose structure has its size),
//! and the parameters of the other mechanisms (plain bytes, or `CK_AES_CTR_PARAMS`,
//! `CK_RSA_PKCS_PSS_PARAMS` and `CK_MAC_GENERAL_PARAMS` when they have their size); then the
//! variant each mechanism's parameter decodes to. Pointers are buffers the harness owns, lengths
//! at most their size.
#![no_main]
use arbitrary::Arbitrary;
use cryptoki_sys::*;
use libfuzzer_sys::fuzz_target;
use std::ffi::c_void;
use tessera_pkcs11::abi::params::decode;
use tessera_pkcs11::mechanisms::Param as P;

#[derive(Arbitrary, Debug)]
struct Buf {
    data: Vec<u8>,
    cut: u8,
    null: bool,
}

impl Buf {
    /// Pointer and honest length (NULL only if asked; then the length is kept, to be refused).
    fn raw(&mut self) -> (*mut u8, CK_ULONG) {
        let len = self.data.len().saturating_sub(self.cut as usize) as CK_ULONG;
        if self.null {
            (std::ptr::null_mut(), len)
        } else {
            (self.data.as_mut_ptr(), len)
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Param {
    Gcm {
        iv: Buf,
        aad: Buf,
        iv_bits: u64,
        tag_bits: u64,
    },
    Gcm240 {
        iv: Buf,
        aad: Buf,
        tag_bits: u64,
    },
    GcmMessage {
        iv: Buf,
        fixed_bits: u64,
        generator: u64,
        tag: Buf,
        tag_bits: u64,
    },
    Hkdf {
        extract: u8,
        expand: u8,
        prf: u64,
        salt_type: u64,
        salt: Buf,
        salt_key: u64,
        info: Buf,
    },
    Pbkd2 {
        source: u64,
        salt: Buf,
        iterations: u64,
        prf: u64,
        prf_data: Buf,
        password: Buf,
        old: bool,
        len_override: Option<u64>,
    },
    Oaep {
        hash: u64,
        mgf: u64,
        source: u64,
        label: Buf,
    },
    Ecdh1 {
        kdf: u64,
        shared: Buf,
        public: Buf,
    },
    Eddsa {
        ph: u8,
        context: Buf,
    },
    /// A byte parameter for a mechanism whose parameter holds no pointer.
    Bytes {
        mech: u8,
        data: Buf,
    },
}

/// Mechanisms whose parameter holds no pointer.
const PLAIN: [CK_MECHANISM_TYPE; 10] = [
    CKM_AES_CBC,
    CKM_AES_CBC_PAD,
    CKM_AES_CTR,
    CKM_AES_ECB,
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA256_HMAC_GENERAL,
    CKM_AES_CMAC_GENERAL,
    CKM_DES3_CBC,
    CKM_AES_KEY_WRAP,
];

fn as_param<T>(s: &T) -> (*const c_void, CK_ULONG) {
    (s as *const T as *const c_void, std::mem::size_of::<T>() as CK_ULONG)
}

fn check(mech: CK_MECHANISM_TYPE, p: *const c_void, len: CK_ULONG) {
    let Ok(v) = (unsafe { decode(mech, p, len) }) else { return };
    // A structure decodes to its own variant (EdDSA: or none).
    let ok = match mech {
        CKM_AES_GCM => matches!(v, P::Gcm(_)),
        CKM_HKDF_DERIVE | CKM_HKDF_DATA => matches!(v, P::Hkdf(_)),
        CKM_PKCS5_PBKD2 => matches!(v, P::Pbkdf2(_)),
        CKM_RSA_PKCS_OAEP => matches!(v, P::Oaep { .. }),
        CKM_ECDH1_DERIVE => matches!(v, P::Ecdh1 { .. }),
        CKM_EDDSA => matches!(v, P::Eddsa { .. } | P::None),
        _ => true,
    };
    assert!(ok, "{mech:#x} decoded to {v:?}");
}

fuzz_target!(|param: Param| {
    let mut param = param;
    match &mut param {
        Param::Gcm { iv, aad, iv_bits, tag_bits } => {
            let ((pi, li), (pa, la)) = (iv.raw(), aad.raw());
            let s = CK_GCM_PARAMS {
                pIv: pi,
                ulIvLen: li,
                ulIvBits: *iv_bits,
                pAAD: pa,
                ulAADLen: la,
                ulTagBits: *tag_bits,
            };
            let (p, l) = as_param(&s);
            check(CKM_AES_GCM, p, l);
            if let Ok(P::Gcm(g)) = unsafe { decode(CKM_AES_GCM, p, l) } {
                assert_eq!(g.iv.len() as CK_ULONG, li);
                assert_eq!(g.aad.len() as CK_ULONG, la);
            }
        }
        Param::Gcm240 { iv, aad, tag_bits } => {
            #[repr(C)]
            struct V240 {
                iv: *mut u8,
                iv_len: CK_ULONG,
                aad: *mut u8,
                aad_len: CK_ULONG,
                tag_bits: CK_ULONG,
            }
            let ((pi, li), (pa, la)) = (iv.raw(), aad.raw());
            let s = V240 { iv: pi, iv_len: li, aad: pa, aad_len: la, tag_bits: *tag_bits };
            let (p, l) = as_param(&s);
            check(CKM_AES_GCM, p, l);
        }
        Param::GcmMessage { iv, fixed_bits, generator, tag, tag_bits } => {
            let ((pi, li), (pt, _)) = (iv.raw(), tag.raw());
            // ivGenerator is one of the CKG_ values.
            let generator = *generator % 5;
            // The tag buffer holds the tag: its size is ulTagBits / 8, as the caller promises.
            let tag_bits = (*tag_bits % 136).min(tag.data.len() as u64 * 8);
            let mut s = CK_GCM_MESSAGE_PARAMS {
                pIv: pi,
                ulIvLen: li,
                ulIvFixedBits: *fixed_bits,
                ivGenerator: generator,
                pTag: pt,
                ulTagBits: tag_bits,
            };
            let (p, l) = as_param(&s);
            // The same size as CK_GCM_PARAMS: given to CKM_AES_GCM by mistake, it must be refused
            // or read without following a field that is no pointer.
            check(CKM_AES_GCM, p, l);
            let _ = unsafe { tessera_pkcs11::abi::message::gcm_message(&mut s as *mut _ as *mut c_void, l) };
        }
        Param::Hkdf { extract, expand, prf, salt_type, salt, salt_key, info } => {
            let ((ps, ls), (pi, li)) = (salt.raw(), info.raw());
            let s = CK_HKDF_PARAMS {
                bExtract: *extract,
                bExpand: *expand,
                prfHashMechanism: *prf,
                ulSaltType: *salt_type,
                pSalt: ps,
                ulSaltLen: ls,
                hSaltKey: *salt_key,
                pInfo: pi,
                ulInfoLen: li,
            };
            let (p, l) = as_param(&s);
            check(CKM_HKDF_DERIVE, p, l);
        }
        Param::Pbkd2 { source, salt, iterations, prf, prf_data, password, old, len_override } => {
            let ((ps, ls), (pp, lp), (pw, lw)) = (salt.raw(), prf_data.raw(), password.raw());
            // The older structure's ulPasswordLen points at the length.
            let mut len_cell: CK_ULONG = lw;
            let plen = if *old {
                &mut len_cell as *mut CK_ULONG as CK_ULONG
            } else {
                // A length is honest when it is at most the buffer; larger ones the decoder
                // must refuse without reading (a password is shorter than 64 KiB).
                len_override
                    .map(|o| {
                        if o <= lw {
                            o
                        } else if o & 1 == 0 {
                            0x1_0000 + (o & 0xffff)
                        } else {
                            o | 1 << 62
                        }
                    })
                    .unwrap_or(lw)
            };
            let s = CK_PKCS5_PBKD2_PARAMS2 {
                saltSource: *source,
                pSaltSourceData: ps as *mut c_void,
                ulSaltSourceDataLen: ls,
                iterations: *iterations,
                prf: *prf,
                pPrfData: pp as *mut c_void,
                ulPrfDataLen: lp,
                pPassword: pw,
                ulPasswordLen: plen,
            };
            let (p, l) = as_param(&s);
            check(CKM_PKCS5_PBKD2, p, l);
        }
        Param::Oaep { hash, mgf, source, label } => {
            let (pl, ll) = label.raw();
            let s = CK_RSA_PKCS_OAEP_PARAMS {
                hashAlg: *hash,
                mgf: *mgf,
                source: *source,
                pSourceData: pl as *mut c_void,
                ulSourceDataLen: ll,
            };
            let (p, l) = as_param(&s);
            check(CKM_RSA_PKCS_OAEP, p, l);
        }
        Param::Ecdh1 { kdf, shared, public } => {
            let ((ps, ls), (pp, lp)) = (shared.raw(), public.raw());
            let s = CK_ECDH1_DERIVE_PARAMS {
                kdf: *kdf,
                ulSharedDataLen: ls,
                pSharedData: ps,
                ulPublicDataLen: lp,
                pPublicData: pp,
            };
            let (p, l) = as_param(&s);
            check(CKM_ECDH1_DERIVE, p, l);
        }
        Param::Eddsa { ph, context } => {
            let (pc, lc) = context.raw();
            let s = CK_EDDSA_PARAMS { phFlag: *ph, ulContextDataLen: lc, pContextData: pc };
            let (p, l) = as_param(&s);
            check(CKM_EDDSA, p, l);
        }
        Param::Bytes { mech, data } => {
            let (p, l) = data.raw();
            let mech = PLAIN[*mech as usize % PLAIN.len()];
            if let Ok(v) = unsafe { decode(mech, p as *const c_void, l) } {
                // The bytes as given, or the structure they have the size of.
                match v {
                    P::None => assert_eq!(l, 0),
                    P::Bytes(b) => assert_eq!(b.len() as CK_ULONG, l),
                    P::Ctr { .. } => assert_eq!(l as usize, std::mem::size_of::<CK_AES_CTR_PARAMS>()),
                    P::Pss { .. } => assert_eq!(l as usize, std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>()),
                    P::Ulong(_) => assert_eq!(l as usize, std::mem::size_of::<CK_ULONG>()),
                    other => panic!("{mech:#x} decoded to {other:?}"),
                }
            }
        }
    }
});
