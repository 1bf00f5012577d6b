//! ECDSA over a digest the caller computed, on the prime curves (NIST, secp256k1, Brainpool). aws-lc-rs signs only whole
//! messages with a fixed curve/hash pairing; PKCS#11 needs `CKM_ECDSA` (the application hashes, with
//! any digest length, FIPS 186's leftmost-bits rule applying) and every SHA-1/SHA-2 hash on every
//! curve. aws-lc's `ECDSA_do_sign`/`ECDSA_do_verify` take the digest as given and apply that rule.
//!
//! Signatures are PKCS#11's fixed-length `r ‖ s`, each half the curve's field size.
//!
//! The same private key also computes ECDH shared secrets (`ECDH_compute_key`), so that a key
//! object is made into an aws-lc key once and then serves both uses without a per-call
//! `EVP_PKEY` context.

use super::clear_errors;
use super::sys;
use std::ptr;

/// The aws-lc curve identifier of P-256.
pub const NID_P256: i32 = sys::NID_X9_62_prime256v1;
/// The aws-lc curve identifier of P-384.
pub const NID_P384: i32 = sys::NID_secp384r1;
/// The aws-lc curve identifier of P-521.
pub const NID_P521: i32 = sys::NID_secp521r1;
/// The aws-lc curve identifiers of P-224, secp256k1 and the Brainpool curves (RFC 5639); a build
/// whose aws-lc lacks one of them refuses its keys as an unsupported curve.
pub const NID_P224: i32 = sys::NID_secp224r1;
pub const NID_SECP256K1: i32 = sys::NID_secp256k1;
pub const NID_BRAINPOOL_P256R1: i32 = sys::NID_brainpoolP256r1;
pub const NID_BRAINPOOL_P384R1: i32 = sys::NID_brainpoolP384r1;
pub const NID_BRAINPOOL_P512R1: i32 = sys::NID_brainpoolP512r1;

/// An owned `EC_KEY`.
struct Key(*mut sys::EC_KEY);

impl Key {
    fn new(nid: i32) -> Option<Key> {
        // SAFETY: plain constructor; a NULL result (unknown curve, no memory) is checked.
        let k = unsafe { sys::EC_KEY_new_by_curve_name(nid) };
        if k.is_null() {
            None
        } else {
            Some(Key(k))
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: the pointer came from EC_KEY_new_by_curve_name and is freed exactly once.
        unsafe { sys::EC_KEY_free(self.0) }
    }
}

// SAFETY: the EC_KEY is owned by this wrapper alone and only read after construction; aws-lc
// objects carry no thread affinity.
unsafe impl Send for Key {}
// SAFETY: after construction the key is only passed to aws-lc functions taking `const EC_KEY *`,
// which aws-lc documents as safe for concurrent use.
unsafe impl Sync for Key {}

/// An owned `BIGNUM` made from big-endian bytes.
struct Bn(*mut sys::BIGNUM);

impl Bn {
    fn from_be(b: &[u8]) -> Option<Bn> {
        // SAFETY: `b` is a valid slice for its length; a NULL result is checked.
        let n = unsafe { sys::BN_bin2bn(b.as_ptr(), b.len(), ptr::null_mut()) };
        if n.is_null() {
            None
        } else {
            Some(Bn(n))
        }
    }

    /// Hands ownership to aws-lc.
    fn into_raw(self) -> *mut sys::BIGNUM {
        let p = self.0;
        std::mem::forget(self);
        p
    }
}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: owned pointer from BN_bin2bn, freed once; cleared because it may hold a
        // private scalar.
        unsafe { sys::BN_clear_free(self.0) }
    }
}

/// An owned `ECDSA_SIG`.
struct Sig(*mut sys::ECDSA_SIG);

impl Drop for Sig {
    fn drop(&mut self) {
        // SAFETY: owned pointer from ECDSA_do_sign / ECDSA_SIG_new, freed once.
        unsafe { sys::ECDSA_SIG_free(self.0) }
    }
}

/// A private key ready to sign digests.
pub struct SigningKey {
    key: Key,
    field: usize,
}

impl SigningKey {
    /// Loads a private scalar (big-endian, any length up to the field size). `None` when the
    /// curve is unknown or the scalar is zero or not below the group order.
    pub fn new(nid: i32, field: usize, scalar: &[u8]) -> Option<SigningKey> {
        let key = Key::new(nid)?;
        let bn = Bn::from_be(scalar)?;
        // SAFETY: both pointers are valid and owned; EC_KEY_set_private_key copies the scalar and
        // rejects zero and values not below the order.
        let ok = unsafe { sys::EC_KEY_set_private_key(key.0, bn.0) };
        if ok != 1 {
            clear_errors();
            return None;
        }
        Some(SigningKey { key, field })
    }

    /// A new key pair on curve `nid` (aws-lc's generation: a uniformly random scalar, its
    /// public point). `None` when aws-lc does not offer the curve.
    pub fn generate(nid: i32, field: usize) -> Option<SigningKey> {
        let key = Key::new(nid)?;
        // SAFETY: `key` is a valid EC_KEY with its group set.
        if unsafe { sys::EC_KEY_generate_key(key.0) } != 1 {
            clear_errors();
            return None;
        }
        Some(SigningKey { key, field })
    }

    /// The private scalar, big-endian, `field` bytes.
    pub fn scalar(&self) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let mut out = zeroize::Zeroizing::new(vec![0u8; self.field]);
        // SAFETY: the key holds a private scalar (borrowed, below the order, which fits the
        // field size); the buffer has `field` bytes, the length passed.
        let ok = unsafe {
            let d = sys::EC_KEY_get0_private_key(self.key.0);
            !d.is_null() && sys::BN_bn2bin_padded(out.as_mut_ptr(), out.len(), d) == 1
        };
        ok.then_some(out)
    }

    /// The public point of this key, SEC 1 uncompressed (`04 ‖ X ‖ Y`): the one generated with
    /// it, or computed from the scalar for a key loaded with [`SigningKey::new`].
    pub fn public_point(&self) -> Option<Vec<u8>> {
        let mut out = vec![0u8; 1 + 2 * self.field];
        // SAFETY: the key has its group and a private scalar; a point computed here is created on
        // that group and freed on every path; the output buffer has the length passed.
        let n = unsafe {
            let group = sys::EC_KEY_get0_group(self.key.0);
            let d = sys::EC_KEY_get0_private_key(self.key.0);
            if group.is_null() || d.is_null() {
                return None;
            }
            let form = sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED;
            let q = sys::EC_KEY_get0_public_key(self.key.0);
            let n = if q.is_null() {
                let p = sys::EC_POINT_new(group);
                if p.is_null() {
                    return None;
                }
                let n = if sys::EC_POINT_mul(group, p, d, ptr::null(), ptr::null(), ptr::null_mut()) == 1 {
                    sys::EC_POINT_point2oct(group, p, form, out.as_mut_ptr(), out.len(), ptr::null_mut())
                } else {
                    0
                };
                sys::EC_POINT_free(p);
                n
            } else {
                sys::EC_POINT_point2oct(group, q, form, out.as_mut_ptr(), out.len(), ptr::null_mut())
            };
            if n == 0 {
                clear_errors();
            }
            n
        };
        (n == out.len()).then_some(out)
    }

    /// Signs `digest` (used as given, leftmost bits kept per FIPS 186); returns `r ‖ s`.
    pub fn sign(&self, digest: &[u8]) -> Option<Vec<u8>> {
        // SAFETY: `digest` is a valid slice; the key is a complete private key; the result is
        // owned by `Sig` and freed on every path.
        let sig = Sig(unsafe { sys::ECDSA_do_sign(digest.as_ptr(), digest.len(), self.key.0) });
        if sig.0.is_null() {
            clear_errors();
            return None;
        }
        let mut r: *const sys::BIGNUM = ptr::null();
        let mut s: *const sys::BIGNUM = ptr::null();
        // SAFETY: `sig` is a valid signature; r and s are borrowed pointers into it.
        unsafe { sys::ECDSA_SIG_get0(sig.0, &mut r, &mut s) };
        if r.is_null() || s.is_null() {
            return None;
        }
        let mut out = vec![0u8; 2 * self.field];
        let (ro, so) = out.split_at_mut(self.field);
        // SAFETY: each output buffer has exactly `field` bytes; r and s are below the order,
        // which fits the field size, so padding succeeds.
        let ok = unsafe {
            sys::BN_bn2bin_padded(ro.as_mut_ptr(), ro.len(), r) == 1
                && sys::BN_bn2bin_padded(so.as_mut_ptr(), so.len(), s) == 1
        };
        ok.then_some(out)
    }

    /// The ECDH shared secret with a peer's public point (SEC 1, uncompressed or compressed):
    /// the x-coordinate of the product, `field` bytes. `None` when the point is not on the curve.
    pub fn agree(&self, peer: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let mut out = zeroize::Zeroizing::new(vec![0u8; self.field]);
        // SAFETY: the key has its group; the point is created on it, decoded from a valid slice
        // (EC_POINT_oct2point checks that it lies on the curve) and freed on every path; the
        // output buffer has `field` bytes, the length passed; no KDF (NULL) copies the raw
        // x-coordinate.
        let n = unsafe {
            let group = sys::EC_KEY_get0_group(self.key.0);
            if group.is_null() {
                return None;
            }
            let p = sys::EC_POINT_new(group);
            if p.is_null() {
                return None;
            }
            let n = if sys::EC_POINT_oct2point(group, p, peer.as_ptr(), peer.len(), ptr::null_mut()) == 1 {
                sys::ECDH_compute_key(out.as_mut_ptr().cast(), out.len(), p, self.key.0, None)
            } else {
                -1
            };
            sys::EC_POINT_free(p);
            if n < 0 {
                clear_errors();
            }
            n
        };
        (usize::try_from(n).ok() == Some(self.field)).then_some(out)
    }
}

/// A public key ready to verify signatures over digests.
pub struct VerifyingKey {
    key: Key,
    field: usize,
}

impl VerifyingKey {
    /// Loads a public point (SEC 1 uncompressed or compressed). `None` when the curve is unknown
    /// or the point is not on the curve.
    pub fn new(nid: i32, field: usize, point: &[u8]) -> Option<VerifyingKey> {
        let key = Key::new(nid)?;
        // SAFETY: the key has its group; the point is created on it, decoded from a valid slice
        // (EC_POINT_oct2point checks it lies on the curve), copied into the key and freed.
        let ok = unsafe {
            let group = sys::EC_KEY_get0_group(key.0);
            if group.is_null() {
                return None;
            }
            let p = sys::EC_POINT_new(group);
            if p.is_null() {
                return None;
            }
            let ok = sys::EC_POINT_oct2point(group, p, point.as_ptr(), point.len(), ptr::null_mut()) == 1
                && sys::EC_KEY_set_public_key(key.0, p) == 1
                && sys::EC_KEY_check_key(key.0) == 1;
            sys::EC_POINT_free(p);
            if !ok {
                clear_errors();
            }
            ok
        };
        ok.then_some(VerifyingKey { key, field })
    }

    /// Whether `signature` (`r ‖ s`, exactly twice the field size) is valid for `digest`.
    pub fn verify(&self, digest: &[u8], signature: &[u8]) -> bool {
        if signature.len() != 2 * self.field {
            return false;
        }
        let (r, s) = signature.split_at(self.field);
        let (Some(r), Some(s)) = (Bn::from_be(r), Bn::from_be(s)) else {
            return false;
        };
        // SAFETY: ECDSA_SIG_new's result is owned by `Sig`; ECDSA_SIG_set0 takes ownership of r
        // and s on success (on failure they are still ours and freed by `Bn`'s drop).
        let sig = Sig(unsafe { sys::ECDSA_SIG_new() });
        if sig.0.is_null() {
            return false;
        }
        let (r, s) = (r.into_raw(), s.into_raw());
        // SAFETY: see above; both BIGNUMs are valid and now owned by the signature.
        if unsafe { sys::ECDSA_SIG_set0(sig.0, r, s) } != 1 {
            // SAFETY: ownership was not taken; free what we made.
            unsafe {
                sys::BN_free(r);
                sys::BN_free(s);
            }
            return false;
        }
        // SAFETY: valid digest slice, signature and public key.
        let ok = unsafe { sys::ECDSA_do_verify(digest.as_ptr(), digest.len(), sig.0, self.key.0) } == 1;
        if !ok {
            clear_errors();
        }
        ok
    }
}
