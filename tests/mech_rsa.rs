//! RSA mechanisms through the built module: key-pair generation, PKCS#1 v1.5, PSS, OAEP and raw
//! RSA signatures, encryption and key wrapping, the two-call length convention, the errors the
//! specification names, and interoperability with OpenSSL.
//!
//! The suite runs in both modes of the module (`TESSERA_MODE`). In the approved mode the uses that
//! `policy/approved.toml` does not list are asserted to be refused with the code the policy gives
//! (`CKM_RSA_X_509` entirely, `CKM_RSA_PKCS` encryption and signatures over anything but a
//! DigestInfo of an approved hash, SHA-1 signature generation, PSS parameters
//! outside FIPS 186-5, public exponents at or below 2^16 and key sizes other than 2048/3072/4096
//! bits at generation); everything else is asserted as in the non-approved mode.

use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use sha2::Digest;
use std::ffi::c_void;
use std::ptr::null_mut;
use tessera_tests::*;

const E65537: [u8; 3] = [1, 0, 1];

/// The components of an RSA private key, modulus first.
const COMPONENTS: [AttributeType; 8] = [
    AttributeType::Modulus,
    AttributeType::PublicExponent,
    AttributeType::PrivateExponent,
    AttributeType::Prime1,
    AttributeType::Prime2,
    AttributeType::Exponent1,
    AttributeType::Exponent2,
    AttributeType::Coefficient,
];

/// A key pair made by `C_GenerateKeyPair`; the private half readable (not sensitive) so the
/// tests can look at its components.
fn keygen(s: &Session, bits: u64, extra_pub: &[Attribute]) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    let mut public = vec![
        Attribute::Token(false),
        Attribute::ModulusBits(bits.into()),
        Attribute::PublicExponent(E65537.to_vec()),
        Attribute::Verify(true),
        Attribute::Encrypt(true),
    ];
    public.retain(|a| !extra_pub.iter().any(|x| x.attribute_type() == a.attribute_type()));
    public.extend_from_slice(extra_pub);
    let private = [
        Attribute::Token(false),
        Attribute::Sign(true),
        Attribute::Decrypt(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
}

/// A key pair for key transport: the public key wraps, the private key unwraps, neither does
/// anything else (a key that unwraps and decrypts would decrypt what was wrapped).
fn keygen_wrapping(s: &Session, bits: u64) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    let public = [
        Attribute::Token(false),
        Attribute::ModulusBits(bits.into()),
        Attribute::PublicExponent(E65537.to_vec()),
        Attribute::Wrap(true),
    ];
    let private = [Attribute::Token(false), Attribute::Unwrap(true)];
    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
}

fn pss(hash: MechanismType, mgf: PkcsMgfType, s_len: u64) -> PkcsPssParams {
    PkcsPssParams { hash_alg: hash, mgf, s_len: s_len.into() }
}

fn digest_info_sha256(data: &[u8]) -> Vec<u8> {
    let mut t = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
        0x20,
    ];
    t.extend_from_slice(&sha2::Sha256::digest(data));
    t
}

/// The token's raw function list, for what `cryptoki` cannot express (NULL and short output
/// buffers, arbitrary mechanism parameters).
struct Raw<'a>(&'a cryptoki_sys::Pkcs11);

fn ulong_bytes(v: &[CK_ULONG]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// A PKCS#1 v1.5 SHA-1 signature made outside the module, by OpenSSL from the components of the
/// (non-sensitive) private key: the approved mode makes no SHA-1 signature but verifies them.
/// `None`, after saying so, when OpenSSL is not installed.
fn openssl_sha1_signature(s: &Session, private: ObjectHandle, msg: &[u8]) -> Option<Vec<u8>> {
    use pkcs1::der::Encode;
    if !have_or_skip("openssl", "the SHA-1 verification with an OpenSSL signature") {
        return None;
    }
    let c: Vec<Vec<u8>> = COMPONENTS.into_iter().map(|t| bytes_attr(s, private, t)).collect();
    let u = |i: usize| pkcs1::UintRef::new(&c[i]).unwrap();
    let key = pkcs1::RsaPrivateKey {
        modulus: u(0),
        public_exponent: u(1),
        private_exponent: u(2),
        prime1: u(3),
        prime2: u(4),
        exponent1: u(5),
        exponent2: u(6),
        coefficient: u(7),
        other_prime_infos: None,
    };
    let pem = spki::der::pem::encode_string("RSA PRIVATE KEY", spki::der::pem::LineEnding::LF, &key.to_der().unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key_path, msg_path, sig_path) = (dir.path().join("key.pem"), dir.path().join("msg"), dir.path().join("sig"));
    std::fs::write(&key_path, pem).unwrap();
    std::fs::write(&msg_path, msg).unwrap();
    let out = openssl_dgst_sign(&["-sha1"], &key_path, &sig_path, &msg_path);
    assert!(out.status.success(), "openssl dgst -sha1 -sign: {}", String::from_utf8_lossy(&out.stderr));
    Some(std::fs::read(&sig_path).unwrap())
}

impl Raw<'_> {
    fn sign_init(&self, h: CK_SESSION_HANDLE, ty: CK_MECHANISM_TYPE, param: &[u8], key: ObjectHandle) -> CK_RV {
        let mut m = mech_with(ty, param.as_ptr().cast(), param.len());
        unsafe { self.0.C_SignInit(h, &mut m, key.handle()) }
    }

    fn verify_init(&self, h: CK_SESSION_HANDLE, ty: CK_MECHANISM_TYPE, param: &[u8], key: ObjectHandle) -> CK_RV {
        let mut m = mech_with(ty, param.as_ptr().cast(), param.len());
        unsafe { self.0.C_VerifyInit(h, &mut m, key.handle()) }
    }

    /// `C_Sign` through the two-call convention: NULL, then one byte short, then exact.
    fn sign_two_call(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Vec<u8> {
        let mut len: CK_ULONG = 0;
        let d = data.as_ptr() as *mut u8;
        let n = data.len() as CK_ULONG;
        assert_eq!(unsafe { self.0.C_Sign(h, d, n, null_mut(), &mut len) }, CKR_OK);
        let mut out = vec![0u8; len as usize];
        let mut short = len - 1;
        assert_eq!(unsafe { self.0.C_Sign(h, d, n, out.as_mut_ptr(), &mut short) }, CKR_BUFFER_TOO_SMALL);
        assert_eq!(short, len);
        assert_eq!(unsafe { self.0.C_Sign(h, d, n, out.as_mut_ptr(), &mut len) }, CKR_OK);
        out.truncate(len as usize);
        out
    }

    fn verify(&self, h: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> CK_RV {
        unsafe {
            self.0.C_Verify(h, data.as_ptr() as *mut u8, data.len() as _, sig.as_ptr() as *mut u8, sig.len() as _)
        }
    }

    /// `C_Encrypt`/`C_Decrypt` through the two-call convention.
    fn crypt_two_call(&self, h: CK_SESSION_HANDLE, encrypt: bool, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let call = |out: *mut u8, len: &mut CK_ULONG| unsafe {
            let (d, n) = (data.as_ptr() as *mut u8, data.len() as CK_ULONG);
            if encrypt {
                self.0.C_Encrypt(h, d, n, out, len)
            } else {
                self.0.C_Decrypt(h, d, n, out, len)
            }
        };
        let mut len: CK_ULONG = 0;
        match call(null_mut(), &mut len) {
            CKR_OK => {}
            rv => return Err(rv),
        }
        let mut out = vec![0u8; len as usize];
        if len > 0 {
            let mut short = len - 1;
            assert_eq!(call(out.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL);
            assert_eq!(short, len);
        }
        assert_eq!(call(out.as_mut_ptr(), &mut len), CKR_OK);
        out.truncate(len as usize);
        Ok(out)
    }

    fn crypt_init(&self, h: CK_SESSION_HANDLE, encrypt: bool, m: &mut CK_MECHANISM, key: ObjectHandle) -> CK_RV {
        unsafe {
            if encrypt {
                self.0.C_EncryptInit(h, m, key.handle())
            } else {
                self.0.C_DecryptInit(h, m, key.handle())
            }
        }
    }
}

#[test]
fn mechanisms_are_listed_with_their_flags() {
    let t = Token::new("rsa-info");
    let (l, slot) = (&t.l, t.cslot());
    let approved = approved_mode();
    let info = |m: MechanismType| l.p.get_mechanism_info(slot, m).expect("C_GetMechanismInfo");
    let g = info(MechanismType::RSA_PKCS_KEY_PAIR_GEN);
    assert!(g.generate_key_pair() && !g.sign());
    if approved {
        // The range the policy allows (2048, 3072 and 4096 bits; checked in
        // `key_generation_parameters`).
        assert_eq!((g.min_key_size(), g.max_key_size()), (2048, 4096));
    } else {
        assert_eq!((g.min_key_size(), g.max_key_size()), (1024, 8192));
    }
    let o = info(MechanismType::RSA_PKCS_OAEP);
    assert!(o.encrypt() && o.decrypt() && o.wrap() && o.unwrap() && !o.sign());
    for m in [
        MechanismType::RSA_PKCS_PSS,
        MechanismType::SHA256_RSA_PKCS,
        MechanismType::SHA384_RSA_PKCS,
        MechanismType::SHA512_RSA_PKCS,
        MechanismType::SHA256_RSA_PKCS_PSS,
        MechanismType::SHA384_RSA_PKCS_PSS,
        MechanismType::SHA512_RSA_PKCS_PSS,
    ] {
        let i = info(m);
        assert!(i.sign() && i.verify() && !i.encrypt(), "{m}");
    }
    // SHA-1 PKCS#1 v1.5: listed in both modes; the approved mode verifies, and only verifies, and
    // says so.
    let i = info(MechanismType::SHA1_RSA_PKCS);
    assert!(i.verify() && !i.encrypt());
    assert_eq!(i.sign(), !approved, "CKF_SIGN of CKM_SHA1_RSA_PKCS");
    // Mechanisms with no approved use: offered with their flags, or absent in the approved mode.
    let absent = |m: MechanismType| {
        assert_eq!(rv_of(l.p.get_mechanism_info(slot, m)), RvError::MechanismInvalid, "{m} in the approved mode")
    };
    // SHA-1 PSS: verification only in the approved mode (legacy use), as SHA-1 PKCS#1 v1.5.
    let i = info(MechanismType::SHA1_RSA_PKCS_PSS);
    assert!(i.verify() && !i.encrypt());
    assert_eq!(i.sign(), !approved, "CKF_SIGN of CKM_SHA1_RSA_PKCS_PSS");
    // PKCS#1 v1.5 signs and verifies in both modes (a DigestInfo, in the approved one), encrypts
    // only outside it, and neither wraps nor unwraps (its unwrapping is a padding oracle).
    let p = info(MechanismType::RSA_PKCS);
    assert!(p.sign() && p.verify() && !p.wrap() && !p.unwrap());
    assert_eq!((p.encrypt(), p.decrypt()), (!approved, !approved), "v1.5 encryption");
    if approved {
        absent(MechanismType::RSA_X_509);
    } else {
        let x = info(MechanismType::RSA_X_509);
        assert!(x.sign() && x.verify() && x.encrypt() && x.decrypt());
    }
    // SHA-224 variants, by their raw types.
    let r = Raw(&t.f);
    for m in [CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS] {
        let mut i = CK_MECHANISM_INFO::default();
        assert_eq!(unsafe { r.0.C_GetMechanismInfo(slot.id(), m, &mut i) }, CKR_OK);
        assert_eq!(i.flags, CKF_SIGN | CKF_VERIFY);
    }
    // C_GetMechanismList agrees: every RSA mechanism in the non-approved mode, only those with an
    // approved use in the approved mode.
    let mut n: CK_ULONG = 0;
    assert_eq!(unsafe { r.0.C_GetMechanismList(slot.id(), null_mut(), &mut n) }, CKR_OK);
    let mut list = vec![0; n as usize];
    assert_eq!(unsafe { r.0.C_GetMechanismList(slot.id(), list.as_mut_ptr(), &mut n) }, CKR_OK);
    list.truncate(n as usize);
    for m in [
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        CKM_RSA_PKCS_OAEP,
        CKM_RSA_PKCS_PSS,
        CKM_SHA1_RSA_PKCS,
        CKM_SHA224_RSA_PKCS,
        CKM_SHA256_RSA_PKCS,
        CKM_SHA384_RSA_PKCS,
        CKM_SHA512_RSA_PKCS,
        CKM_SHA224_RSA_PKCS_PSS,
        CKM_SHA256_RSA_PKCS_PSS,
        CKM_SHA384_RSA_PKCS_PSS,
        CKM_SHA512_RSA_PKCS_PSS,
    ] {
        assert!(list.contains(&m), "{m:#x} is listed");
    }
    assert!(list.contains(&CKM_SHA1_RSA_PKCS_PSS), "SHA-1 PSS is listed (verification)");
    assert!(list.contains(&CKM_RSA_PKCS), "CKM_RSA_PKCS is listed (signatures)");
    assert_eq!(list.contains(&CKM_RSA_X_509), !approved, "raw RSA is listed only in the non-approved mode");
}

#[test]
fn generated_2048_key_pair_signs_verifies_encrypts_and_decrypts() {
    let t = Token::new("rsa-2048");
    let s = t.s();
    let (public, private) = keygen(s, 2048, &[]).expect("C_GenerateKeyPair");

    // Attributes of the pair.
    let n = bytes_attr(s, public, AttributeType::Modulus);
    assert_eq!(n.len(), 256);
    assert!(n[0] & 0x80 != 0);
    assert_eq!(bytes_attr(s, public, AttributeType::PublicExponent), E65537);
    let bits = s.get_attributes(public, &[AttributeType::ModulusBits]).unwrap();
    assert!(matches!(bits.as_slice(), [Attribute::ModulusBits(b)] if u64::from(*b) == 2048));
    assert_eq!(bytes_attr(s, private, AttributeType::Modulus), n);
    for t in [AttributeType::Prime1, AttributeType::Prime2, AttributeType::Exponent1, AttributeType::Exponent2] {
        let v = bytes_attr(s, private, t);
        assert!((127..=128).contains(&v.len()), "{t}: {} bytes", v.len());
    }
    assert!(bytes_attr(s, private, AttributeType::PrivateExponent).len() > 200);
    let local = s.get_attributes(private, &[AttributeType::Local, AttributeType::KeyGenMechanism]).unwrap();
    assert!(matches!(local[0], Attribute::Local(true)));
    assert!(matches!(local[1], Attribute::KeyGenMechanism(m) if m == MechanismType::RSA_PKCS_KEY_PAIR_GEN));

    let approved = approved_mode();
    let msg = b"Tessera signs this message".as_slice();
    // Hash-and-sign, single and multi-part, every hash. The approved mode makes no SHA-1
    // signature (SP 800-131A Rev. 2 §3) but verifies one made elsewhere.
    for m in [
        Mechanism::Sha1RsaPkcs,
        Mechanism::Sha224RsaPkcs,
        Mechanism::Sha256RsaPkcs,
        Mechanism::Sha384RsaPkcs,
        Mechanism::Sha512RsaPkcs,
    ] {
        let sig = if approved && m.mechanism_type() == MechanismType::SHA1_RSA_PKCS {
            assert_eq!(rv_of(s.sign(&m, private, msg)), RvError::MechanismInvalid, "SHA-1 signature generation");
            assert_eq!(rv_of(s.sign_init(&m, private)), RvError::MechanismInvalid, "SHA-1 signature generation");
            let Some(sig) = openssl_sha1_signature(s, private, msg) else {
                let mut junk = vec![0x5a; 256];
                junk[0] = 0;
                assert_eq!(rv_of(s.verify(&m, public, msg, &junk)), RvError::SignatureInvalid);
                continue;
            };
            sig
        } else {
            let sig = s.sign(&m, private, msg).expect("C_Sign");
            s.sign_init(&m, private).unwrap();
            s.sign_update(&msg[..5]).unwrap();
            s.sign_update(&msg[5..]).unwrap();
            let sig2 = s.sign_final().unwrap();
            assert_eq!(sig, sig2, "PKCS#1 v1.5 is deterministic");
            sig
        };
        assert_eq!(sig.len(), 256);
        s.verify(&m, public, msg, &sig).expect("C_Verify");
        s.verify_init(&m, public).unwrap();
        s.verify_update(&msg[..7]).unwrap();
        s.verify_update(&msg[7..]).unwrap();
        s.verify_final(&sig).unwrap();
        let mut bad = sig.clone();
        bad[100] ^= 1;
        assert_eq!(rv_of(s.verify(&m, public, msg, &bad)), RvError::SignatureInvalid);
        assert_eq!(rv_of(s.verify(&m, public, b"other", &sig)), RvError::SignatureInvalid);
        assert_eq!(rv_of(s.verify(&m, public, msg, &sig[1..])), RvError::SignatureLenRange);
    }

    // CKM_RSA_PKCS over a DigestInfo agrees with CKM_SHA256_RSA_PKCS, in both modes; other data
    // is signed only outside the approved mode (which checks the DigestInfo byte for byte).
    let t = digest_info_sha256(msg);
    let sig = s.sign(&Mechanism::RsaPkcs, private, &t).unwrap();
    assert_eq!(sig, s.sign(&Mechanism::Sha256RsaPkcs, private, msg).unwrap());
    s.verify(&Mechanism::RsaPkcs, public, &t, &sig).unwrap();
    s.verify(&Mechanism::Sha256RsaPkcs, public, msg, &sig).unwrap();
    if approved {
        assert_eq!(rv_of(s.sign(&Mechanism::RsaPkcs, private, &[7u8; 245])), RvError::DataInvalid);
        assert_eq!(rv_of(s.verify(&Mechanism::RsaPkcs, public, &[7u8; 245], &sig)), RvError::DataInvalid);
    } else {
        assert_eq!(rv_of(s.sign(&Mechanism::RsaPkcs, private, &[0u8; 246])), RvError::DataLenRange);
        assert_eq!(s.sign(&Mechanism::RsaPkcs, private, &[7u8; 245]).unwrap().len(), 256);
    }

    // PSS: raw (caller hashes) and hash-and-sign, with several salts and MGF hashes.
    let digest = sha2::Sha256::digest(msg).to_vec();
    for (salt, mgf) in [(32, PkcsMgfType::MGF1_SHA256), (0, PkcsMgfType::MGF1_SHA1), (222, PkcsMgfType::MGF1_SHA512)] {
        let p = pss(MechanismType::SHA256, mgf, salt);
        if approved_mode() && (salt > 32 || mgf == PkcsMgfType::MGF1_SHA1) {
            // FIPS 186-5 §5.4: MGF1 with an approved hash other than SHA-1, salt no longer than
            // the hash — otherwise signing is refused in the approved mode.
            assert_eq!(rv_of(s.sign(&Mechanism::RsaPkcsPss(p), private, &digest)), RvError::MechanismParamInvalid);
            assert_eq!(rv_of(s.sign(&Mechanism::Sha256RsaPkcsPss(p), private, msg)), RvError::MechanismParamInvalid);
            continue;
        }
        let sig = s.sign(&Mechanism::RsaPkcsPss(p), private, &digest).unwrap();
        s.verify(&Mechanism::RsaPkcsPss(p), public, &digest, &sig).unwrap();
        s.verify(&Mechanism::Sha256RsaPkcsPss(p), public, msg, &sig).unwrap();
        let sig2 = s.sign(&Mechanism::Sha256RsaPkcsPss(p), private, msg).unwrap();
        s.verify(&Mechanism::RsaPkcsPss(p), public, &digest, &sig2).unwrap();
        let other_salt = pss(MechanismType::SHA256, mgf, if salt == 0 { 20 } else { salt - 1 });
        assert_eq!(
            rv_of(s.verify(&Mechanism::RsaPkcsPss(other_salt), public, &digest, &sig)),
            RvError::SignatureInvalid
        );
    }
    for (m, h) in [
        (Mechanism::Sha1RsaPkcsPss(pss(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, 20)), 0),
        (Mechanism::Sha384RsaPkcsPss(pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48)), 1),
        (Mechanism::Sha512RsaPkcsPss(pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA256, 64)), 2),
    ] {
        if approved && h == 0 {
            // SHA-1 PSS: signing refused, verification allowed for legacy use (a wrong signature
            // is then simply invalid).
            assert_eq!(rv_of(s.sign(&m, private, msg)), RvError::MechanismInvalid, "SHA-1 PSS signing");
            assert_eq!(
                rv_of(s.verify(&m, public, msg, &[0u8; 256])),
                RvError::SignatureInvalid,
                "SHA-1 PSS verification"
            );
            continue;
        }
        let sig = s.sign(&m, private, msg).unwrap();
        s.verify(&m, public, msg, &sig).unwrap_or_else(|e| panic!("PSS {h}: {e}"));
        s.sign_init(&m, private).unwrap();
        s.sign_update(msg).unwrap();
        let sig2 = s.sign_final().unwrap();
        assert_ne!(sig, sig2, "PSS is randomised");
        s.verify(&m, public, msg, &sig2).unwrap();
    }
    assert_eq!(
        rv_of(s.sign(&Mechanism::RsaPkcsPss(pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32)), private, msg)),
        RvError::DataLenRange,
        "raw PSS input must be a digest of hashAlg's length"
    );

    // Raw RSA: sign = decrypt, verify = encrypt, left-padded to k. Not an approved scheme: the
    // approved mode refuses all four uses.
    let block = [0x42u8; 100];
    let mut padded = vec![0u8; 156];
    padded.extend_from_slice(&block);
    if approved {
        let x = Mechanism::RsaX509;
        let sig = vec![0x42u8; 256];
        assert_eq!(rv_of(s.sign(&x, private, &block)), RvError::MechanismInvalid, "raw RSA signing");
        assert_eq!(rv_of(s.verify(&x, public, &block, &sig)), RvError::MechanismInvalid, "raw RSA verification");
        assert_eq!(rv_of(s.encrypt(&x, public, &block)), RvError::MechanismInvalid, "raw RSA encryption");
        assert_eq!(rv_of(s.decrypt(&x, private, &sig)), RvError::MechanismInvalid, "raw RSA decryption");
    } else {
        let sig = s.sign(&Mechanism::RsaX509, private, &block).unwrap();
        assert_eq!(sig.len(), 256);
        s.verify(&Mechanism::RsaX509, public, &block, &sig).unwrap();
        s.verify(&Mechanism::RsaX509, public, &padded, &sig).unwrap();
        let ct = s.encrypt(&Mechanism::RsaX509, public, &block).unwrap();
        assert_eq!(ct.len(), 256);
        assert_eq!(s.decrypt(&Mechanism::RsaX509, private, &ct).unwrap(), padded);
        assert_eq!(rv_of(s.encrypt(&Mechanism::RsaX509, public, &[0xff; 256])), RvError::DataInvalid, "input ≥ n");
        assert_eq!(rv_of(s.encrypt(&Mechanism::RsaX509, public, &[1; 257])), RvError::DataLenRange);
    }

    // PKCS#1 v1.5 encryption (not approved for key transport: refused in the approved mode).
    let secret = b"sixteen byte key";
    if approved {
        assert_eq!(rv_of(s.encrypt(&Mechanism::RsaPkcs, public, secret)), RvError::MechanismInvalid);
        assert_eq!(rv_of(s.decrypt(&Mechanism::RsaPkcs, private, &[0x42; 256])), RvError::MechanismInvalid);
    } else {
        let ct = s.encrypt(&Mechanism::RsaPkcs, public, secret).unwrap();
        assert_eq!(ct.len(), 256);
        assert_ne!(ct, s.encrypt(&Mechanism::RsaPkcs, public, secret).unwrap(), "randomised padding");
        assert_eq!(s.decrypt(&Mechanism::RsaPkcs, private, &ct).unwrap(), secret);
        assert_eq!(s.encrypt(&Mechanism::RsaPkcs, public, &[9; 245]).unwrap().len(), 256);
        assert_eq!(rv_of(s.encrypt(&Mechanism::RsaPkcs, public, &[9; 246])), RvError::DataLenRange);
        let mut bad = ct.clone();
        bad[255] ^= 0x80;
        assert_eq!(rv_of(s.decrypt(&Mechanism::RsaPkcs, private, &bad)), RvError::EncryptedDataInvalid);
        assert_eq!(rv_of(s.decrypt(&Mechanism::RsaPkcs, private, &ct[1..])), RvError::EncryptedDataLenRange);
        assert_eq!(rv_of(s.decrypt(&Mechanism::RsaPkcs, private, &[0xff; 256])), RvError::EncryptedDataInvalid);
    }

    // OAEP, with and without a label, several hashes.
    for (h, mgf, label) in [
        (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, &b""[..]),
        (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, &b"context label"[..]),
        (MechanismType::SHA512, PkcsMgfType::MGF1_SHA1, &b"x"[..]),
    ] {
        let p = PkcsOaepParams::new(h, mgf, PkcsOaepSource::data_specified(label));
        let ct = s.encrypt(&Mechanism::RsaPkcsOaep(p), public, secret).unwrap();
        assert_eq!(s.decrypt(&Mechanism::RsaPkcsOaep(p), private, &ct).unwrap(), secret);
        let other = PkcsOaepParams::new(h, mgf, PkcsOaepSource::data_specified(b"another label"));
        assert_eq!(rv_of(s.decrypt(&Mechanism::RsaPkcsOaep(other), private, &ct)), RvError::EncryptedDataInvalid);
    }
    let p = PkcsOaepParams::new(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, PkcsOaepSource::empty());
    assert_eq!(s.encrypt(&Mechanism::RsaPkcsOaep(p), public, &[1; 190]).unwrap().len(), 256);
    assert_eq!(rv_of(s.encrypt(&Mechanism::RsaPkcsOaep(p), public, &[1; 191])), RvError::DataLenRange);
    assert_eq!(rv_of(s.decrypt(&Mechanism::RsaPkcsOaep(p), private, &[3; 256])), RvError::EncryptedDataInvalid);

    // The components of the generated private key are consistent: an imported copy signs what
    // the generated public key verifies.
    let mut t = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Sign(true),
    ];
    for a in COMPONENTS {
        t.extend(s.get_attributes(private, &[a]).unwrap());
    }
    let copy = s.create_object(&t).expect("import the private key");
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, copy, msg).unwrap();
    s.verify(&Mechanism::Sha256RsaPkcs, public, msg, &sig).unwrap();
    // CKA_PUBLIC_KEY_INFO given with it must be its own public key (rsaEncryption, n and e).
    use pkcs1::der::Encode;
    let n = bytes_attr(s, public, AttributeType::Modulus);
    let e = bytes_attr(s, public, AttributeType::PublicExponent);
    let spki_of = |n: &[u8]| {
        let k = pkcs1::RsaPublicKey {
            modulus: pkcs1::UintRef::new(n).unwrap(),
            public_exponent: pkcs1::UintRef::new(&e).unwrap(),
        };
        let alg = spki::AlgorithmIdentifierRef {
            oid: spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
            parameters: Some(spki::der::asn1::AnyRef::NULL),
        };
        let key = k.to_der().unwrap();
        let info = spki::SubjectPublicKeyInfoRef {
            algorithm: alg,
            subject_public_key: spki::der::asn1::BitStringRef::from_bytes(&key).unwrap(),
        };
        info.to_der().unwrap()
    };
    let with_info = |info: Vec<u8>| {
        let mut t = t.clone();
        t.push(Attribute::PublicKeyInfo(info));
        s.create_object(&t)
    };
    with_info(spki_of(&n)).expect("its own public key");
    let mut other = n.clone();
    other[10] ^= 1;
    assert_eq!(rv_of(with_info(spki_of(&other))), RvError::AttributeValueInvalid, "another modulus");
    // Without CRT components (n, e, d only) the key still works.
    let t: Vec<Attribute> = t.into_iter().take(7).collect();
    let no_crt = s.create_object(&t).expect("import n, e, d");
    let sig = s.sign(&Mechanism::Sha384RsaPkcs, no_crt, msg).unwrap();
    s.verify(&Mechanism::Sha384RsaPkcs, public, msg, &sig).unwrap();
}

#[test]
fn two_call_lengths_for_signatures_and_ciphers() {
    let t = Token::new("rsa-len");
    let s = t.s();
    let (public, private) = keygen(s, 2048, &[]).unwrap();
    let r = Raw(&t.f);
    let h = s.handle();
    let msg = b"length please";

    assert_eq!(r.sign_init(h, CKM_SHA256_RSA_PKCS, &[], private), CKR_OK);
    let sig = r.sign_two_call(h, msg);
    assert_eq!(sig.len(), 256);
    assert_eq!(r.verify_init(h, CKM_SHA256_RSA_PKCS, &[], public), CKR_OK);
    assert_eq!(r.verify(h, msg, &sig), CKR_OK);

    // SHA-224 PSS exists only as a raw type for `cryptoki`.
    let param = ulong_bytes(&[CKM_SHA224, CKG_MGF1_SHA224, 28]);
    assert_eq!(r.sign_init(h, CKM_SHA224_RSA_PKCS_PSS, &param, private), CKR_OK);
    let sig = r.sign_two_call(h, msg);
    assert_eq!(r.verify_init(h, CKM_SHA224_RSA_PKCS_PSS, &param, public), CKR_OK);
    assert_eq!(r.verify(h, msg, &sig), CKR_OK);
    assert_eq!(r.verify_init(h, CKM_SHA224_RSA_PKCS_PSS, &param, public), CKR_OK);
    assert_eq!(r.verify(h, b"something else", &sig), CKR_SIGNATURE_INVALID);

    // Encryption and decryption: the length query answers the exact length (k, then the
    // plaintext's length), and a short buffer keeps the result for the next call. (PKCS#1 v1.5
    // encryption is refused in the approved mode; OAEP below runs in both.)
    let mut m = mech_with(CKM_RSA_PKCS, std::ptr::null(), 0);
    if allowed_unless_approved(r.crypt_init(h, true, &mut m, public), CKR_MECHANISM_INVALID, "CKM_RSA_PKCS encrypt") {
        let ct = r.crypt_two_call(h, true, msg).unwrap();
        assert_eq!(ct.len(), 256);
        assert_eq!(r.crypt_init(h, false, &mut m, private), CKR_OK);
        assert_eq!(r.crypt_two_call(h, false, &ct).unwrap(), msg);
    } else {
        assert_eq!(r.crypt_init(h, false, &mut m, private), CKR_MECHANISM_INVALID, "CKM_RSA_PKCS decrypt");
    }

    let label = b"raw label";
    let oaep = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA384,
        mgf: CKG_MGF1_SHA384,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: label.as_ptr() as *mut c_void,
        ulSourceDataLen: label.len() as CK_ULONG,
    };
    let mut m = mech_with(CKM_RSA_PKCS_OAEP, (&oaep as *const CK_RSA_PKCS_OAEP_PARAMS).cast(), size_of_val(&oaep));
    assert_eq!(r.crypt_init(h, true, &mut m, public), CKR_OK);
    let ct = r.crypt_two_call(h, true, msg).unwrap();
    assert_eq!(r.crypt_init(h, false, &mut m, private), CKR_OK);
    assert_eq!(r.crypt_two_call(h, false, &ct).unwrap(), msg);
    // A failed decryption ends the operation.
    assert_eq!(r.crypt_init(h, false, &mut m, private), CKR_OK);
    assert_eq!(r.crypt_two_call(h, false, &[5; 256]), Err(CKR_ENCRYPTED_DATA_INVALID));
    assert_eq!(r.crypt_two_call(h, false, &ct), Err(CKR_OPERATION_NOT_INITIALIZED));
    // Single-part mechanisms refuse the multi-part calls.
    assert_eq!(r.crypt_init(h, true, &mut m, public), CKR_OK);
    let mut out = [0u8; 512];
    let mut len = out.len() as CK_ULONG;
    let rv = unsafe { r.0.C_EncryptUpdate(h, msg.as_ptr() as *mut u8, msg.len() as _, out.as_mut_ptr(), &mut len) };
    assert_eq!(rv, CKR_FUNCTION_NOT_SUPPORTED);
    assert_eq!(r.sign_init(h, CKM_RSA_PKCS, &[], private), CKR_OK);
    assert_eq!(unsafe { r.0.C_SignUpdate(h, msg.as_ptr() as *mut u8, msg.len() as _) }, CKR_FUNCTION_NOT_SUPPORTED);
    // Raw PSS (over a digest the caller computed) is single-part too, in both modes.
    let param = ulong_bytes(&[CKM_SHA256, CKG_MGF1_SHA256, 32]);
    assert_eq!(r.sign_init(h, CKM_RSA_PKCS_PSS, &param, private), CKR_OK);
    assert_eq!(unsafe { r.0.C_SignUpdate(h, msg.as_ptr() as *mut u8, msg.len() as _) }, CKR_FUNCTION_NOT_SUPPORTED);
}

/// The key's own checks (usage attributes, key type, `CKA_ALLOWED_MECHANISMS`) come before the
/// approved-mode policy, so these refusals are the same in both modes.
#[test]
fn keys_refuse_what_they_are_not_for() {
    let t = Token::new("rsa-refuse");
    let s = t.s();
    let public_t = [
        Attribute::Token(false),
        Attribute::ModulusBits(2048.into()),
        Attribute::Verify(false),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
    ];
    let private_t = [Attribute::Token(false), Attribute::Sign(false), Attribute::Decrypt(false)];
    let (public, private) = s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public_t, &private_t).unwrap();
    assert_eq!(bytes_attr(s, public, AttributeType::PublicExponent), E65537, "default exponent");
    let m = Mechanism::Sha256RsaPkcs;
    assert_eq!(rv_of(s.sign_init(&m, private)), RvError::KeyFunctionNotPermitted);
    assert_eq!(rv_of(s.verify_init(&m, public)), RvError::KeyFunctionNotPermitted);
    assert_eq!(rv_of(s.encrypt_init(&Mechanism::RsaPkcs, public)), RvError::KeyFunctionNotPermitted);
    assert_eq!(rv_of(s.decrypt_init(&Mechanism::RsaPkcs, private)), RvError::KeyFunctionNotPermitted);
    // A public key cannot sign, a private key cannot verify (they carry no such attribute).
    let (public, private) = keygen(s, 2048, &[]).unwrap();
    assert_eq!(rv_of(s.sign_init(&m, public)), RvError::KeyFunctionNotPermitted);
    assert_eq!(rv_of(s.verify_init(&m, private)), RvError::KeyFunctionNotPermitted);
    // Wrong key type: a generic secret key.
    let secret = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Value(vec![1; 32]),
            Attribute::Sign(true),
            Attribute::Encrypt(true),
        ])
        .unwrap();
    assert_eq!(rv_of(s.sign_init(&m, secret)), RvError::KeyTypeInconsistent);
    assert_eq!(rv_of(s.encrypt_init(&Mechanism::RsaPkcs, secret)), RvError::KeyTypeInconsistent);
    // CKA_ALLOWED_MECHANISMS.
    let restricted = keygen(s, 2048, &[Attribute::AllowedMechanisms(vec![MechanismType::RSA_PKCS_OAEP])]).unwrap().0;
    assert_eq!(rv_of(s.encrypt_init(&Mechanism::RsaPkcs, restricted)), RvError::MechanismInvalid);
    assert_eq!(rv_of(s.verify_init(&Mechanism::Sha256RsaPkcs, restricted)), RvError::MechanismInvalid);
    let p = PkcsOaepParams::new(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, PkcsOaepSource::empty());
    s.encrypt_init(&Mechanism::RsaPkcsOaep(p), restricted).unwrap();
}

#[test]
fn bad_mechanism_parameters_are_refused() {
    let t = Token::new("rsa-params");
    let s = t.s();
    let (public, private) = keygen(s, 2048, &[]).unwrap();
    let bad = RvError::MechanismParamInvalid;
    let sha256_pss = |p| Mechanism::Sha256RsaPkcsPss(p);
    // PSS: the hash must be the mechanism's, the MGF known, the salt must fit the key.
    assert_eq!(rv_of(s.sign_init(&sha256_pss(pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA256, 32)), private)), bad);
    assert_eq!(rv_of(s.verify_init(&sha256_pss(pss(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, 20)), public)), bad);
    assert_eq!(
        rv_of(s.sign_init(&sha256_pss(pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 223)), private)),
        bad
    );
    let longest_salt = s.sign_init(&sha256_pss(pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 222)), private);
    if approved_mode() {
        // A salt longer than the hash is outside FIPS 186-5 §5.4.
        assert_eq!(rv_of(longest_salt), bad);
    } else {
        longest_salt.unwrap();
        let _ = s.sign_final();
    }
    assert_eq!(
        rv_of(s.sign_init(&Mechanism::RsaPkcsPss(pss(MechanismType::AES_ECB, PkcsMgfType::MGF1_SHA1, 16)), private)),
        bad
    );
    let r = Raw(&t.f);
    let h = s.handle();
    assert_eq!(
        r.sign_init(h, CKM_RSA_PKCS_PSS, &ulong_bytes(&[CKM_SHA256, 0x77, 32]), private),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        r.sign_init(h, CKM_RSA_PKCS_PSS, &ulong_bytes(&[CKM_SHA256, CKG_MGF1_SHA256]), private),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(r.sign_init(h, CKM_RSA_PKCS_PSS, &[], private), CKR_MECHANISM_PARAM_INVALID);
    // Mechanisms without parameters refuse one.
    assert_eq!(r.sign_init(h, CKM_RSA_PKCS, &[0; 8], private), CKR_MECHANISM_PARAM_INVALID);
    assert_eq!(r.sign_init(h, CKM_SHA256_RSA_PKCS, &[0; 8], private), CKR_MECHANISM_PARAM_INVALID);
    // OAEP: known hash and MGF, source CKZ_DATA_SPECIFIED, exact structure size.
    let oaep = |hash, mgf, source| CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: hash,
        mgf,
        source,
        pSourceData: null_mut(),
        ulSourceDataLen: 0,
    };
    for p in [
        oaep(CKM_MD5, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED),
        oaep(CKM_SHA256, 0x99, CKZ_DATA_SPECIFIED),
        oaep(CKM_SHA256, CKG_MGF1_SHA256, 7),
        CK_RSA_PKCS_OAEP_PARAMS { ulSourceDataLen: 4, ..oaep(CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED) },
    ] {
        let mut m = mech_with(CKM_RSA_PKCS_OAEP, (&p as *const CK_RSA_PKCS_OAEP_PARAMS).cast(), size_of_val(&p));
        assert_eq!(r.crypt_init(h, true, &mut m, public), CKR_MECHANISM_PARAM_INVALID);
        assert_eq!(r.crypt_init(h, false, &mut m, private), CKR_MECHANISM_PARAM_INVALID);
    }
    let good = oaep(CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED);
    let mut m = mech_with(CKM_RSA_PKCS_OAEP, (&good as *const CK_RSA_PKCS_OAEP_PARAMS).cast(), size_of_val(&good) - 1);
    assert_eq!(r.crypt_init(h, true, &mut m, public), CKR_MECHANISM_PARAM_INVALID);
    let mut m = mech_with(CKM_RSA_PKCS_OAEP, std::ptr::null(), 0);
    assert_eq!(r.crypt_init(h, true, &mut m, public), CKR_MECHANISM_PARAM_INVALID);
    // The same through `cryptoki`'s vendor-defined escape hatch: a PSS structure for OAEP.
    let pss_struct = pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32);
    let wrong = VendorDefinedMechanism::new(MechanismType::RSA_PKCS_OAEP, Some(&pss_struct));
    assert_eq!(rv_of(s.encrypt_init(&Mechanism::VendorDefined(wrong), public)), bad);
}

#[test]
fn key_generation_parameters() {
    // The module without the fixture's own session: this test closes its session to log in anew.
    let l = load();
    let slot = l.new_token("rsa-gen");
    let s = user_session(&l.p, slot);
    let approved = approved_mode();
    // Sizes the module does not generate (the approved mode refuses them by its policy first, with
    // the same code).
    for bits in [896u64, 1023, 2047, 2049, 2100, 8320] {
        assert_eq!(rv_of(keygen(&s, bits, &[])), RvError::KeySizeRange, "{bits} bits");
    }
    // 1024 and 1536 bits: generated only in the non-approved mode (flagged non-approved there).
    for bits in [1024u64, 1536] {
        let r = keygen(&s, bits, &[]);
        if approved {
            assert_eq!(rv_of(r), RvError::KeySizeRange, "{bits} bits in the approved mode");
        } else {
            let (public, private) = r.unwrap_or_else(|e| panic!("{bits} bits: {e}"));
            assert_eq!(bytes_attr(&s, public, AttributeType::Modulus).len() * 8, bits as usize);
            let sig = s.sign(&Mechanism::Sha256RsaPkcs, private, b"short").unwrap();
            s.verify(&Mechanism::Sha256RsaPkcs, public, b"short", &sig).unwrap();
        }
    }
    if approved {
        // Sizes the module generates but the approved mode does not allow (FIPS 186-5 §5.1 and
        // policy/approved.toml: 2048, 3072, 4096). The policy refuses before any generation.
        for bits in [5120u64, 6144, 8192] {
            assert_eq!(rv_of(keygen(&s, bits, &[])), RvError::KeySizeRange, "{bits} bits in the approved mode");
        }
    }
    // Without CKA_MODULUS_BITS the template is incomplete (in the approved mode too: a template
    // that names no size leaves the answer to the mechanism).
    let no_bits = [Attribute::Token(false), Attribute::Verify(true)];
    assert_eq!(
        rv_of(s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &no_bits, &[Attribute::Token(false)])),
        RvError::TemplateIncomplete
    );
    for e in [vec![4u8], vec![1], vec![1, 0, 0, 0, 0, 1]] {
        assert_eq!(
            rv_of(keygen(&s, 2048, &[Attribute::PublicExponent(e.clone())])),
            RvError::AttributeValueInvalid,
            "{e:?}"
        );
    }
    assert_eq!(
        rv_of(keygen(&s, 2048, &[Attribute::ModulusBits(2048.into()), Attribute::Modulus(vec![1; 256])])),
        RvError::AttributeReadOnly,
        "the modulus is the token's to choose"
    );
    // Another exponent: 3 (any odd exponent from 3 to 2^32 - 1 in the non-approved mode; the
    // approved mode needs e > 2^16, FIPS 186-5 §5.1).
    if approved {
        assert_eq!(
            rv_of(keygen(&s, 2048, &[Attribute::PublicExponent(vec![3])])),
            RvError::MechanismParamInvalid,
            "e = 3 in the approved mode"
        );
    } else {
        let (public, private) = keygen(&s, 2048, &[Attribute::PublicExponent(vec![3])]).unwrap();
        assert_eq!(bytes_attr(&s, public, AttributeType::PublicExponent), [3]);
        let sig = s.sign(&Mechanism::Sha256RsaPkcs, private, b"e = 3").unwrap();
        s.verify(&Mechanism::Sha256RsaPkcs, public, b"e = 3", &sig).unwrap();
    }
    // An exponent with leading zero bytes is the same number: 65537 written in four bytes.
    let (public, _) = keygen(&s, 2048, &[Attribute::PublicExponent(vec![0, 1, 0, 1])]).expect("e = 00 01 00 01");
    assert_eq!(bytes_attr(&s, public, AttributeType::PublicExponent), E65537);
    // One larger size.
    let (public, private) = keygen(&s, 3072, &[]).unwrap();
    assert_eq!(bytes_attr(&s, public, AttributeType::Modulus).len(), 384);
    let p = pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48);
    let sig = s.sign(&Mechanism::Sha384RsaPkcsPss(p), private, b"3072").unwrap();
    assert_eq!(sig.len(), 384);
    s.verify(&Mechanism::Sha384RsaPkcsPss(p), public, b"3072", &sig).unwrap();
    // Token key pair: survives in the store and works after a new login.
    let public_t = [Attribute::Token(true), Attribute::ModulusBits(2048.into()), Attribute::Label(b"tok".to_vec())];
    let private_t = [Attribute::Token(true), Attribute::Label(b"tok".to_vec())];
    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public_t, &private_t).unwrap();
    drop(s);
    let s = user_session(&l.p, slot);
    let found = |c| s.find_objects(&[Attribute::Label(b"tok".to_vec()), Attribute::Class(c)]).unwrap()[0];
    let (public, private) = (found(ObjectClass::PUBLIC_KEY), found(ObjectClass::PRIVATE_KEY));
    let sig = s.sign(&Mechanism::Sha512RsaPkcs, private, b"stored").unwrap();
    s.verify(&Mechanism::Sha512RsaPkcs, public, b"stored", &sig).unwrap();
}

#[test]
fn wrap_and_unwrap_secret_keys() {
    let t = Token::new("rsa-wrap");
    let s = t.s();
    let (public, private) = keygen_wrapping(s, 2048).unwrap();
    let value: Vec<u8> = (0..32).collect();
    let key = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Value(value.clone()),
            Attribute::Extractable(true),
        ])
        .unwrap();
    let check_value = |h| match s.get_attributes(h, &[AttributeType::CheckValue]).unwrap().pop() {
        Some(Attribute::CheckValue(v)) => v,
        other => panic!("{other:?}"),
    };
    let label = b"wrapping label";
    let oaep =
        PkcsOaepParams::new(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, PkcsOaepSource::data_specified(label));
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Extractable(true),
    ];
    // PKCS#1 v1.5 unwrapping answers as a padding oracle (Bleichenbacher): it neither wraps nor
    // unwraps, in either mode (outside the legacy rules).
    assert_eq!(rv_of(s.wrap_key(&Mechanism::RsaPkcs, public, key)), RvError::MechanismInvalid, "PKCS#1 v1.5 wrap");
    let wrapped = s.wrap_key(&Mechanism::RsaPkcsOaep(oaep), public, key).expect("C_WrapKey");
    assert_eq!(wrapped.len(), 256);
    assert_eq!(rv_of(s.unwrap_key(&Mechanism::RsaPkcs, private, &wrapped, &template)), RvError::MechanismInvalid);
    let m = Mechanism::RsaPkcsOaep(oaep);
    let back = s.unwrap_key(&m, private, &wrapped, &template).expect("C_UnwrapKey");
    // The unwrapped key is sensitive; it is the same key.
    assert!(s.get_attributes(back, &[AttributeType::Value]).unwrap().is_empty(), "the value is not given");
    assert_eq!(s.get_attributes(back, &[AttributeType::Sensitive]).unwrap(), [Attribute::Sensitive(true)]);
    assert_eq!(check_value(back), check_value(key));
    let readable = [template.as_slice(), &[Attribute::Sensitive(false)]].concat();
    assert_eq!(rv_of(s.unwrap_key(&m, private, &wrapped, &readable)), RvError::TemplateInconsistent);
    let mut bad = wrapped.clone();
    bad[10] ^= 1;
    assert_eq!(rv_of(s.unwrap_key(&m, private, &bad, &template)), RvError::WrappedKeyInvalid);
    assert_eq!(rv_of(s.unwrap_key(&m, private, &wrapped[1..], &template)), RvError::WrappedKeyLenRange);
    // The wrapped key is an OAEP ciphertext of the key value, but the unwrapping key does not
    // decrypt, and may not be made to.
    assert_eq!(rv_of(s.decrypt(&m, private, &wrapped)), RvError::KeyFunctionNotPermitted);
    assert_eq!(
        rv_of(s.update_attributes(private, &[Attribute::Decrypt(true)])),
        RvError::TemplateInconsistent,
        "a key that unwraps does not decrypt"
    );
    // Wrapping with a private key, or unwrapping with a public one, is not allowed (the key's own
    // attributes are checked before the policy: the same code in both modes).
    assert_eq!(rv_of(s.wrap_key(&m, private, key)), RvError::KeyFunctionNotPermitted);
}

#[test]
fn openssl_verifies_a_tessera_signature() {
    if !have_or_skip("openssl", "OpenSSL's verification of a Tessera RSA signature") {
        return;
    }
    use pkcs1::der::{Decode, Encode};
    let t = Token::new("rsa-openssl");
    let s = t.s();
    let (public, private) = keygen(s, 2048, &[]).unwrap();
    let n = bytes_attr(s, public, AttributeType::Modulus);
    let e = bytes_attr(s, public, AttributeType::PublicExponent);
    let pk = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(&n).unwrap(),
        public_exponent: pkcs1::UintRef::new(&e).unwrap(),
    };
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
            parameters: Some(spki::der::Any::from_der(&[0x05, 0x00]).unwrap()),
        },
        subject_public_key: spki::der::asn1::BitString::from_bytes(&pk.to_der().unwrap()).unwrap(),
    };
    let pem =
        spki::der::pem::encode_string("PUBLIC KEY", spki::der::pem::LineEnding::LF, &spki.to_der().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pem_path, msg_path, sig_path) = (dir.path().join("pub.pem"), dir.path().join("msg"), dir.path().join("sig"));
    let msg = b"verified by OpenSSL".repeat(100);
    std::fs::write(&pem_path, pem).unwrap();
    std::fs::write(&msg_path, &msg).unwrap();
    for (m, pss_opts) in [
        (Mechanism::Sha256RsaPkcs, false),
        (Mechanism::Sha256RsaPkcsPss(pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32)), true),
    ] {
        std::fs::write(&sig_path, s.sign(&m, private, &msg).unwrap()).unwrap();
        let opts: &[&str] = if pss_opts {
            &["-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]
        } else {
            &["-sha256"]
        };
        let out = openssl_dgst_verify(opts, &pem_path, &sig_path, &msg_path);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Verified OK"),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And a wrong message fails there too.
    std::fs::write(&msg_path, b"something else").unwrap();
    let out = openssl_dgst_verify(&["-sha256"], &pem_path, &sig_path, &msg_path);
    assert!(!out.status.success());
}
