//! At-rest protection: AES-256-GCM sealing under the per-token key, and PIN-derived wrapping keys
//! (PBKDF2-HMAC-SHA-256, salted, at least 600,000 iterations).

use crate::error::{err, Result};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{hmac, pbkdf2, rand};
use cryptoki_sys::*;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// A 256-bit key that is wiped when dropped.
pub type Key256 = Zeroizing<[u8; 32]>;

/// A fresh random 256-bit key.
pub fn random_key() -> Result<Key256> {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::fill(&mut k[..]).map_err(|_| err(CKR_FUNCTION_FAILED))?;
    Ok(k)
}

/// Random bytes from the module's DRBG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    rand::fill(&mut v).map_err(|_| err(CKR_FUNCTION_FAILED))?;
    Ok(v)
}

fn aead_key(key: &[u8; 32]) -> Result<LessSafeKey> {
    let k = UnboundKey::new(&AES_256_GCM, key).map_err(|_| err(CKR_GENERAL_ERROR))?;
    Ok(LessSafeKey::new(k))
}

/// Seals `plain` under `key`; `aad` binds the ciphertext to its place (token and object identity).
/// Output: nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let k = aead_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).map_err(|_| err(CKR_FUNCTION_FAILED))?;
    // The plaintext is copied once, into a buffer with room for the tag (no growth leaves a copy
    // in freed memory), encrypted there, and wiped when dropped.
    let mut body = Zeroizing::new(Vec::with_capacity(plain.len() + 16));
    body.extend_from_slice(plain);
    k.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut *body)
        .map_err(|_| err(CKR_GENERAL_ERROR))?;
    let mut out = Vec::with_capacity(NONCE_LEN + body.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens what [`seal`] produced. Any tampering or a wrong key gives `None`.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let k = aead_key(key).ok()?;
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let len = k.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?.len();
    buf.truncate(len);
    Some(buf)
}

/// Stored parameters of one PIN wrap of the token key.
#[derive(Clone, Debug)]
pub struct PinWrap {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub wrapped: Vec<u8>,
}

/// SSP: SO PIN
/// SSP: user PIN
/// SSP: PIN-derived key
fn derive_kek(pin: &[u8], salt: &[u8], iterations: u32) -> Result<Key256> {
    let it = NonZeroU32::new(iterations).ok_or(err(CKR_GENERAL_ERROR))?;
    let mut kek = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, it, salt, pin, &mut kek[..]);
    Ok(kek)
}

/// Wraps `token_key` under a key derived from `pin` with a fresh salt.
pub fn wrap_with_pin(
    cache: &KekCache,
    token_key: &[u8; 32],
    pin: &[u8],
    iterations: u32,
    aad: &[u8],
) -> Result<PinWrap> {
    let salt = random_bytes(16)?;
    let kek = cache.derive(pin, &salt, iterations)?;
    let wrapped = seal(&kek, aad, &token_key[..])?;
    Ok(PinWrap { salt, iterations, wrapped })
}

/// Unwraps the token key with `pin`; `None` means the PIN is wrong (the AEAD tag does not verify).
/// The key derived from a wrong PIN is not kept (such a PIN is often a near miss of the right one).
///
/// With the login cache on (`pin.cache = keyring`, `super::keyring`), a key the same PIN derived
/// for this wrap in another process of the session is taken from the kernel's keyring instead of
/// derived again; a key derived here is put there.
pub fn unwrap_with_pin(cache: &KekCache, w: &PinWrap, pin: &[u8], aad: &[u8]) -> Result<Option<Key256>> {
    if let Some(kek) = cache.cached(pin, &w.salt, w.iterations) {
        let key = open_key(&kek, aad, &w.wrapped);
        if key.is_some() {
            keep_in_keyring(cache, w, pin, aad, &kek);
        }
        return Ok(key);
    }
    if let Some(kek) = cache.keyring.and_then(|k| k.lookup(aad, w, pin)) {
        if let Some(key) = open_key(&kek, aad, &w.wrapped) {
            cache.remember(pin, &w.salt, w.iterations, kek);
            return Ok(Some(key));
        }
    }
    let kek = derive_kek(pin, &w.salt, w.iterations)?;
    let key = open_key(&kek, aad, &w.wrapped);
    if key.is_some() {
        if let Some(k) = cache.keyring {
            k.store(aad, w, pin, &kek);
        }
        cache.remember(pin, &w.salt, w.iterations, kek);
    }
    Ok(key)
}

fn open_key(kek: &Key256, aad: &[u8], wrapped: &[u8]) -> Option<Key256> {
    let p = open(kek, aad, wrapped)?;
    let arr: [u8; 32] = p.as_slice().try_into().ok()?;
    Some(Zeroizing::new(arr))
}

/// Unwraps the token key with `pin` only if this process has derived the PIN's key for this wrap
/// before (no derivation runs): `Some` only for the right PIN.
pub fn unwrap_cached(cache: &KekCache, w: &PinWrap, pin: &[u8], aad: &[u8]) -> Option<Key256> {
    let kek = cache.cached(pin, &w.salt, w.iterations)?;
    let key = open_key(&kek, aad, &w.wrapped)?;
    keep_in_keyring(cache, w, pin, aad, &kek);
    Some(key)
}

/// Puts a key that opened its wrap into the login cache's keyring entry, if the cache is on and
/// the entry is missing (a key this process derived, or made when the PIN was set).
fn keep_in_keyring(cache: &KekCache, w: &PinWrap, pin: &[u8], aad: &[u8], kek: &Key256) {
    if let Some(k) = cache.keyring {
        if k.lookup(aad, w, pin).is_none() {
            k.store(aad, w, pin, kek);
        }
    }
}

/// Per-process cache of PIN-derived keys, so that the 600,000-iteration derivation is paid once per
/// (PIN, salt) in a process rather than on every login. The cache is keyed by an HMAC of the PIN under
/// a random per-process key, so it holds no PIN; a wrong PIN misses the cache, pays the full derivation
/// and still fails to open the wrap (its derived key is not kept). The at-rest protection against
/// offline guessing is unchanged. It lives and dies with the initialised module (`C_Finalize` drops
/// it).
pub struct KekCache {
    /// SSP: PIN-cache key
    mac_key: hmac::Key,
    map: Mutex<HashMap<Vec<u8>, Key256>>,
    /// The login cache across processes, when configured.
    keyring: Option<super::keyring::Keyring>,
}

impl KekCache {
    pub fn new() -> Result<KekCache> {
        KekCache::with_keyring(None)
    }

    /// A cache that also keeps keys in the kernel's keyring (`pin.cache = keyring`).
    pub fn with_keyring(keyring: Option<super::keyring::Keyring>) -> Result<KekCache> {
        let k = random_key()?;
        Ok(KekCache { mac_key: hmac::Key::new(hmac::HMAC_SHA256, &k[..]), map: Mutex::new(HashMap::new()), keyring })
    }

    fn id(&self, pin: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.mac_key);
        ctx.update(&(salt.len() as u64).to_be_bytes());
        ctx.update(salt);
        ctx.update(&iterations.to_be_bytes());
        ctx.update(pin);
        ctx.sign().as_ref().to_vec()
    }

    /// The key derived from (PIN, salt, iterations) if this process has derived it already; no
    /// derivation runs.
    fn cached(&self, pin: &[u8], salt: &[u8], iterations: u32) -> Option<Key256> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&self.id(pin, salt, iterations)).cloned()
    }

    fn derive(&self, pin: &[u8], salt: &[u8], iterations: u32) -> Result<Key256> {
        let id = self.id(pin, salt, iterations);
        if let Some(k) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(k.clone());
        }
        let kek = derive_kek(pin, salt, iterations)?;
        self.insert(id, kek.clone());
        Ok(kek)
    }

    /// Keeps a key derived from a PIN that proved right.
    fn remember(&self, pin: &[u8], salt: &[u8], iterations: u32, kek: Key256) {
        self.insert(self.id(pin, salt, iterations), kek);
    }

    fn insert(&self, id: Vec<u8>, kek: Key256) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 64 {
            map.clear();
        }
        map.insert(id, kek);
    }

    /// Forgets every cached key (`C_Finalize`; a PIN set, changed or re-initialised, whose old
    /// derived keys open nothing any more).
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let k = random_key().unwrap();
        let s = seal(&k, b"aad", b"secret").unwrap();
        assert_eq!(&open(&k, b"aad", &s).unwrap()[..], b"secret");
        assert!(open(&k, b"other", &s).is_none());
        let mut t = s.clone();
        t[14] ^= 1;
        assert!(open(&k, b"aad", &t).is_none());
    }

    #[test]
    fn wrong_pin_never_unwraps() {
        let cache = KekCache::new().unwrap();
        let tk = random_key().unwrap();
        let w = wrap_with_pin(&cache, &tk, b"1234", 600_000, b"t").unwrap();
        assert_eq!(&unwrap_with_pin(&cache, &w, b"1234", b"t").unwrap().unwrap()[..], &tk[..]);
        assert!(unwrap_with_pin(&cache, &w, b"1235", b"t").unwrap().is_none());
        let fresh = KekCache::new().unwrap();
        assert_eq!(&unwrap_with_pin(&fresh, &w, b"1234", b"t").unwrap().unwrap()[..], &tk[..]);
    }
}
