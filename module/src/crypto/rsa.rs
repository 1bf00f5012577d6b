//! RSA through aws-lc directly: keys built from their PKCS#11 components, raw RSA, PKCS#1 v1.5
//! over a caller-supplied DigestInfo, PSS with any salt length and MGF1 hash, OAEP with any hash,
//! MGF1 hash and label, and key generation with any public exponent — none of which aws-lc-rs
//! exposes. Every function is a small safe wrapper; failures come back as `None`/`false` (the
//! mechanism chooses the `CK_RV`) and leave aws-lc's per-thread error queue empty.

use super::clear_errors;
use super::sys;
use std::ptr::{self, NonNull};
use zeroize::Zeroizing;

/// A hash function of the PSS and OAEP encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn md(self) -> *const sys::EVP_MD {
        // SAFETY: these return pointers to static, immutable method tables.
        unsafe {
            match self {
                Hash::Sha1 => sys::EVP_sha1(),
                Hash::Sha224 => sys::EVP_sha224(),
                Hash::Sha256 => sys::EVP_sha256(),
                Hash::Sha384 => sys::EVP_sha384(),
                Hash::Sha512 => sys::EVP_sha512(),
            }
        }
    }
}

/// An owned BIGNUM, cleared when dropped (it may hold a private component).
struct Bn(NonNull<sys::BIGNUM>);

impl Bn {
    /// The big-endian unsigned integer `b` (leading zeros allowed).
    fn from_be(b: &[u8]) -> Option<Bn> {
        // SAFETY: `b` is a valid slice for its length; a NULL `ret` asks for a new BIGNUM, which
        // we own from here on.
        NonNull::new(unsafe { sys::BN_bin2bn(b.as_ptr(), b.len(), ptr::null_mut()) }).map(Bn)
    }

    fn word(w: u64) -> Option<Bn> {
        // SAFETY: BN_new returns a fresh BIGNUM or NULL.
        let bn = Bn(NonNull::new(unsafe { sys::BN_new() })?);
        // SAFETY: `bn` is a valid BIGNUM we own.
        (unsafe { sys::BN_set_word(bn.0.as_ptr(), w as sys::BN_ULONG) } == 1).then_some(bn)
    }

    fn ptr(&self) -> *const sys::BIGNUM {
        self.0.as_ptr()
    }
}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: we own the BIGNUM and drop it once.
        unsafe { sys::BN_clear_free(self.0.as_ptr()) }
    }
}

/// The CRT values of an RSA private key from its primes `p`, `q` and private exponent `d`
/// (big-endian): d mod (p − 1), d mod (q − 1) and q⁻¹ mod p, minimal big-endian; `None` when they
/// do not exist (a prime below 2, or q not invertible modulo p). For keys given without them
/// (SoftHSM v1's), so that they are used with the CRT as keys made here are.
pub fn crt_values(p: &[u8], q: &[u8], d: &[u8]) -> Option<[Zeroizing<Vec<u8>>; 3]> {
    struct Ctx(NonNull<sys::BN_CTX>);
    impl Drop for Ctx {
        fn drop(&mut self) {
            // SAFETY: we own the context and free it once.
            unsafe { sys::BN_CTX_free(self.0.as_ptr()) }
        }
    }
    let (p, q, d) = (Bn::from_be(p)?, Bn::from_be(q)?, Bn::from_be(d)?);
    // SAFETY: BN_CTX_new returns a fresh context or NULL.
    let ctx = Ctx(NonNull::new(unsafe { sys::BN_CTX_new() })?);
    let (p1, q1, dp, dq, qinv) = (Bn::word(0)?, Bn::word(0)?, Bn::word(0)?, Bn::word(0)?, Bn::word(0)?);
    let mut_ptr = |b: &Bn| b.0.as_ptr();
    // SAFETY: every BIGNUM is valid and owned here; the results are distinct from the inputs;
    // BN_value_one is a static constant.
    let ok = unsafe {
        sys::BN_sub(mut_ptr(&p1), p.ptr(), sys::BN_value_one()) == 1
            && sys::BN_sub(mut_ptr(&q1), q.ptr(), sys::BN_value_one()) == 1
            && sys::BN_is_zero(p1.ptr()) == 0
            && sys::BN_is_zero(q1.ptr()) == 0
            && sys::BN_nnmod(mut_ptr(&dp), d.ptr(), p1.ptr(), ctx.0.as_ptr()) == 1
            && sys::BN_nnmod(mut_ptr(&dq), d.ptr(), q1.ptr(), ctx.0.as_ptr()) == 1
            && !sys::BN_mod_inverse(mut_ptr(&qinv), q.ptr(), p.ptr(), ctx.0.as_ptr()).is_null()
    };
    if !ok {
        clear_errors();
        return None;
    }
    Some([be_bytes(dp.ptr()), be_bytes(dq.ptr()), be_bytes(qinv.ptr())])
}

/// Minimal big-endian bytes of a BIGNUM that the RSA object owns.
fn be_bytes(bn: *const sys::BIGNUM) -> Zeroizing<Vec<u8>> {
    if bn.is_null() {
        return Zeroizing::new(Vec::new());
    }
    // SAFETY: `bn` is a valid BIGNUM owned by a live RSA object; BN_bn2bin writes exactly
    // BN_num_bytes bytes.
    unsafe {
        let mut out = Zeroizing::new(vec![0u8; sys::BN_num_bytes(bn) as usize]);
        let n = sys::BN_bn2bin(bn, out.as_mut_ptr());
        out.truncate(n);
        out
    }
}

/// The components of a private key, minimal big-endian.
pub struct Components {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Zeroizing<Vec<u8>>,
    pub p: Zeroizing<Vec<u8>>,
    pub q: Zeroizing<Vec<u8>>,
    pub dp: Zeroizing<Vec<u8>>,
    pub dq: Zeroizing<Vec<u8>>,
    pub qinv: Zeroizing<Vec<u8>>,
}

/// The private components a key object may carry beyond the modulus.
pub struct PrivateParts<'a> {
    pub e: Option<&'a [u8]>,
    pub d: &'a [u8],
    /// p, q, d mod (p-1), d mod (q-1), q^-1 mod p — all or nothing.
    pub crt: Option<[&'a [u8]; 5]>,
}

/// An aws-lc RSA key (public, or private with or without CRT components).
pub struct Rsa(NonNull<sys::RSA>);

// SAFETY: the RSA object is owned exclusively by this value; aws-lc's RSA is safe to use from any
// thread, and every operation below is documented as non-mutating (internal caches are locked).
unsafe impl Send for Rsa {}

// SAFETY: the operations below take `&self` and are safe to call concurrently on one aws-lc RSA
// (aws-lc locks the lazily built Montgomery and blinding caches internally), so a key parsed once
// may be shared by threads.
unsafe impl Sync for Rsa {}

impl Drop for Rsa {
    fn drop(&mut self) {
        // SAFETY: we own one reference and release it once.
        unsafe { sys::RSA_free(self.0.as_ptr()) }
    }
}

impl Rsa {
    /// A public key (n, e); `None` when aws-lc rejects them (even modulus, bad exponent …).
    pub fn public(n: &[u8], e: &[u8]) -> Option<Rsa> {
        let (n, e) = (Bn::from_be(n)?, Bn::from_be(e)?);
        // SAFETY: both BIGNUMs are valid; aws-lc copies them.
        let r = NonNull::new(unsafe { sys::RSA_new_public_key(n.ptr(), e.ptr()) }).map(Rsa);
        if r.is_none() {
            clear_errors();
        }
        r
    }

    /// A private key; aws-lc checks the components' consistency.
    pub fn private(n: &[u8], parts: &PrivateParts<'_>) -> Option<Rsa> {
        let n = Bn::from_be(n)?;
        let d = Bn::from_be(parts.d)?;
        let e = match parts.e {
            Some(e) => Some(Bn::from_be(e)?),
            None => None,
        };
        let raw = match (&e, parts.crt) {
            (Some(e), Some([p, q, dp, dq, qinv])) => {
                let (p, q, dp, dq, qinv) =
                    (Bn::from_be(p)?, Bn::from_be(q)?, Bn::from_be(dp)?, Bn::from_be(dq)?, Bn::from_be(qinv)?);
                // SAFETY: all eight BIGNUMs are valid for the call; aws-lc copies them.
                unsafe {
                    sys::RSA_new_private_key(
                        n.ptr(),
                        e.ptr(),
                        d.ptr(),
                        p.ptr(),
                        q.ptr(),
                        dp.ptr(),
                        dq.ptr(),
                        qinv.ptr(),
                    )
                }
            }
            // SAFETY: valid BIGNUMs, copied by aws-lc.
            (Some(e), None) => unsafe { sys::RSA_new_private_key_no_crt(n.ptr(), e.ptr(), d.ptr()) },
            // SAFETY: valid BIGNUMs, copied by aws-lc.
            (None, _) => unsafe { sys::RSA_new_private_key_no_e(n.ptr(), d.ptr()) },
        };
        let r = NonNull::new(raw).map(Rsa);
        if r.is_none() {
            clear_errors();
        }
        r
    }

    /// Generates a key of `bits` bits (a multiple of 128) with public exponent `e`.
    pub fn generate(bits: u32, e: u32) -> Option<Rsa> {
        let e = Bn::word(e as u64)?;
        // SAFETY: RSA_new returns a fresh object or NULL; we own it from here on.
        let r = Rsa(NonNull::new(unsafe { sys::RSA_new() })?);
        let bits = std::os::raw::c_int::try_from(bits).ok()?;
        // SAFETY: `r` and `e` are valid; no callback.
        let ok = unsafe { sys::RSA_generate_key_ex(r.0.as_ptr(), bits, e.ptr(), ptr::null_mut()) } == 1;
        if !ok {
            clear_errors();
            return None;
        }
        Some(r)
    }

    /// The components of a private key.
    pub fn components(&self) -> Components {
        let mut p = [ptr::null(); 8];
        // SAFETY: the out-pointers are valid; the returned BIGNUMs stay owned by `self`, which
        // outlives their use below.
        unsafe {
            sys::RSA_get0_key(self.0.as_ptr(), &mut p[0], &mut p[1], &mut p[2]);
            sys::RSA_get0_factors(self.0.as_ptr(), &mut p[3], &mut p[4]);
            sys::RSA_get0_crt_params(self.0.as_ptr(), &mut p[5], &mut p[6], &mut p[7]);
        }
        Components {
            n: be_bytes(p[0]).to_vec(),
            e: be_bytes(p[1]).to_vec(),
            d: be_bytes(p[2]),
            p: be_bytes(p[3]),
            q: be_bytes(p[4]),
            dp: be_bytes(p[5]),
            dq: be_bytes(p[6]),
            qinv: be_bytes(p[7]),
        }
    }

    /// Modulus length in bytes (k).
    pub fn size(&self) -> usize {
        // SAFETY: `self` holds a valid key.
        unsafe { sys::RSA_size(self.0.as_ptr()) as usize }
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        // SAFETY: `self` holds a valid key.
        unsafe { sys::RSA_bits(self.0.as_ptr()) as usize }
    }

    /// Runs one aws-lc call that writes at most k bytes to an output buffer.
    fn with_out(
        &self,
        f: impl FnOnce(*mut sys::RSA, *mut usize, *mut u8, usize) -> std::os::raw::c_int,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; self.size()]);
        let mut len = 0usize;
        let ok = f(self.0.as_ptr(), &mut len, out.as_mut_ptr(), out.len()) == 1;
        if !ok || len > out.len() {
            clear_errors();
            return None;
        }
        out.truncate(len);
        Some(out)
    }

    /// The public operation s^e mod n on exactly k bytes (`None` if the input is not below n).
    pub fn public_raw(&self, input: &[u8]) -> Option<Vec<u8>> {
        // SAFETY: `out` has `max` bytes of room, `input` is a valid slice; aws-lc checks lengths.
        self.with_out(|r, len, out, max| unsafe {
            sys::RSA_verify_raw(r, len, out, max, input.as_ptr(), input.len(), sys::RSA_NO_PADDING)
        })
        .map(|v| v.to_vec())
    }

    /// The private operation c^d mod n on exactly k bytes (`None` if the input is not below n).
    pub fn private_raw(&self, input: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        // SAFETY: as in `public_raw`.
        self.with_out(|r, len, out, max| unsafe {
            sys::RSA_decrypt(r, len, out, max, input.as_ptr(), input.len(), sys::RSA_NO_PADDING)
        })
    }

    /// RSASSA-PKCS1-v1_5 over an already encoded DigestInfo `t` (at most k - 11 bytes).
    pub fn sign_pkcs1(&self, t: &[u8]) -> Option<Vec<u8>> {
        // SAFETY: as in `public_raw`.
        self.with_out(|r, len, out, max| unsafe {
            sys::RSA_sign_raw(r, len, out, max, t.as_ptr(), t.len(), sys::RSA_PKCS1_PADDING)
        })
        .map(|v| v.to_vec())
    }

    /// RSAES-PKCS1-v1_5 encryption of at most k - 11 bytes.
    pub fn encrypt_pkcs1(&self, m: &[u8]) -> Option<Vec<u8>> {
        // SAFETY: as in `public_raw`.
        self.with_out(|r, len, out, max| unsafe {
            sys::RSA_encrypt(r, len, out, max, m.as_ptr(), m.len(), sys::RSA_PKCS1_PADDING)
        })
        .map(|v| v.to_vec())
    }

    /// RSAES-PKCS1-v1_5 decryption; the padding is checked in constant time and every failure
    /// looks the same (`None`).
    pub fn decrypt_pkcs1(&self, c: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        // SAFETY: as in `public_raw`.
        self.with_out(|r, len, out, max| unsafe {
            sys::RSA_decrypt(r, len, out, max, c.as_ptr(), c.len(), sys::RSA_PKCS1_PADDING)
        })
    }

    /// RSASSA-PSS over `digest` (the output of `hash`), MGF1 with `mgf`, `salt` bytes of salt.
    pub fn sign_pss(&self, digest: &[u8], hash: Hash, mgf: Hash, salt: usize) -> Option<Vec<u8>> {
        let salt = std::os::raw::c_int::try_from(salt).ok()?;
        // SAFETY: as in `public_raw`; the EVP_MDs are static.
        self.with_out(|r, len, out, max| unsafe {
            sys::RSA_sign_pss_mgf1(r, len, out, max, digest.as_ptr(), digest.len(), hash.md(), mgf.md(), salt)
        })
        .map(|v| v.to_vec())
    }

    /// Checks an RSASSA-PSS signature with exactly `salt` bytes of salt.
    pub fn verify_pss(&self, digest: &[u8], hash: Hash, mgf: Hash, salt: usize, sig: &[u8]) -> bool {
        let Ok(salt) = std::os::raw::c_int::try_from(salt) else {
            return false;
        };
        // SAFETY: all slices are valid for their lengths; the EVP_MDs are static.
        let ok = unsafe {
            sys::RSA_verify_pss_mgf1(
                self.0.as_ptr(),
                digest.as_ptr(),
                digest.len(),
                hash.md(),
                mgf.md(),
                salt,
                sig.as_ptr(),
                sig.len(),
            )
        } == 1;
        if !ok {
            clear_errors();
        }
        ok
    }

    /// RSAES-OAEP encryption.
    pub fn encrypt_oaep(&self, m: &[u8], hash: Hash, mgf: Hash, label: &[u8]) -> Option<Vec<u8>> {
        self.oaep(true, m, hash, mgf, label).map(|v| v.to_vec())
    }

    /// RSAES-OAEP decryption; every failure looks the same (`None`).
    pub fn decrypt_oaep(&self, c: &[u8], hash: Hash, mgf: Hash, label: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.oaep(false, c, hash, mgf, label)
    }

    fn oaep(&self, encrypt: bool, input: &[u8], hash: Hash, mgf: Hash, label: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let r = Pkey::new(self).and_then(|pk| pk.oaep(encrypt, input, hash, mgf, label, self.size()));
        if r.is_none() {
            clear_errors();
        }
        r
    }
}

/// An EVP_PKEY holding a reference to an [`Rsa`] key, for the OAEP operations.
struct Pkey(NonNull<sys::EVP_PKEY>);

impl Drop for Pkey {
    fn drop(&mut self) {
        // SAFETY: we own the EVP_PKEY and free it once (this drops its RSA reference).
        unsafe { sys::EVP_PKEY_free(self.0.as_ptr()) }
    }
}

/// An EVP_PKEY_CTX, freed when dropped.
struct PkeyCtx(NonNull<sys::EVP_PKEY_CTX>);

impl Drop for PkeyCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context and free it once.
        unsafe { sys::EVP_PKEY_CTX_free(self.0.as_ptr()) }
    }
}

impl Pkey {
    fn new(rsa: &Rsa) -> Option<Pkey> {
        // SAFETY: EVP_PKEY_new returns a fresh object or NULL.
        let pk = Pkey(NonNull::new(unsafe { sys::EVP_PKEY_new() })?);
        // SAFETY: both objects are valid; set1 takes its own reference to the RSA key.
        (unsafe { sys::EVP_PKEY_set1_RSA(pk.0.as_ptr(), rsa.0.as_ptr()) } == 1).then_some(pk)
    }

    fn oaep(
        &self,
        encrypt: bool,
        input: &[u8],
        hash: Hash,
        mgf: Hash,
        label: &[u8],
        k: usize,
    ) -> Option<Zeroizing<Vec<u8>>> {
        // SAFETY: `self` is a valid EVP_PKEY; no engine.
        let ctx = PkeyCtx(NonNull::new(unsafe { sys::EVP_PKEY_CTX_new(self.0.as_ptr(), ptr::null_mut()) })?);
        let c = ctx.0.as_ptr();
        // SAFETY: `c` is a valid context; the EVP_MDs are static.
        let set = unsafe {
            let init = if encrypt { sys::EVP_PKEY_encrypt_init(c) } else { sys::EVP_PKEY_decrypt_init(c) };
            init == 1
                && sys::EVP_PKEY_CTX_set_rsa_padding(c, sys::RSA_PKCS1_OAEP_PADDING) == 1
                && sys::EVP_PKEY_CTX_set_rsa_oaep_md(c, hash.md()) == 1
                && sys::EVP_PKEY_CTX_set_rsa_mgf1_md(c, mgf.md()) == 1
        };
        if !set {
            return None;
        }
        if !label.is_empty() {
            // SAFETY: OPENSSL_memdup copies `label` into memory from OPENSSL_malloc, which
            // set0_rsa_oaep_label takes over on success; on failure we free it ourselves.
            unsafe {
                let copy = sys::OPENSSL_memdup(label.as_ptr().cast(), label.len()) as *mut u8;
                if copy.is_null() {
                    return None;
                }
                if sys::EVP_PKEY_CTX_set0_rsa_oaep_label(c, copy, label.len()) != 1 {
                    sys::OPENSSL_free(copy.cast());
                    return None;
                }
            }
        }
        let mut out = Zeroizing::new(vec![0u8; k]);
        let mut len = out.len();
        // SAFETY: `out` has `len` bytes of room; `input` is valid for its length.
        let ok = unsafe {
            if encrypt {
                sys::EVP_PKEY_encrypt(c, out.as_mut_ptr(), &mut len, input.as_ptr(), input.len())
            } else {
                sys::EVP_PKEY_decrypt(c, out.as_mut_ptr(), &mut len, input.as_ptr(), input.len())
            }
        } == 1;
        if !ok || len > out.len() {
            return None;
        }
        out.truncate(len);
        Some(out)
    }
}
