//! The login cache (`pin.cache = keyring`, off by default): the key a PIN derives (PBKDF2 with
//! 600,000 iterations, about 100 ms) kept in the Linux kernel's session keyring for
//! `pin.cache_seconds`, so that the next process of the same user and session that logs in with
//! the same PIN skips the derivation. Offline guessing against a stolen store costs what it did:
//! the cache is in the kernel, not in the store.
//!
//! One entry per token and role, named `tessera:` and a digest of the wrap's associated data (the
//! token's unique ID and the role), holding the derived key and a check value, an HMAC under that
//! key of the wrap's salt, its iteration count and the PIN. A PIN finds the key only if the check
//! matches: a wrong PIN misses, pays the full derivation and is counted as today. Whoever can read
//! the entry has the derived key anyway (which the check adds nothing to): the kernel gives it to
//! processes that possess the session keyring, and lets other processes of the user see that it
//! exists, not read it. `C_SetPIN`, `C_InitPIN`, `C_InitToken`, a wrong PIN and a lockout remove the
//! entry ([`revoke`]); `tessera-util --logout-all` removes every Tessera entry ([`revoke_all`]).
//!
//! The kernel's key calls go through `linux-keyutils` (a maintained binding of `keyctl(2)` and
//! `add_key(2)`); a kernel or sandbox without keyrings makes every call fail quietly, and logins
//! derive as without the cache.

use super::seal::{Key256, PinWrap};
use aws_lc_rs::{digest, hmac};
use linux_keyutils::{KeyRing, KeyRingIdentifier};
use zeroize::Zeroizing;

/// The cache as configured: entries live `seconds`.
#[derive(Clone, Copy, Debug)]
pub struct Keyring {
    pub seconds: usize,
}

const PREFIX: &str = "tessera:";

/// The entry's name: `tessera:` and the first 20 bytes of SHA-256 of the wrap's associated data.
fn description(aad: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, aad);
    let hex: String = d.as_ref()[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}")
}

/// The check value of (key, wrap, PIN).
fn check(kek: &Key256, w: &PinWrap, pin: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &kek[..]));
    ctx.update(b"Tessera login cache, v1");
    ctx.update(&(w.salt.len() as u64).to_be_bytes());
    ctx.update(&w.salt);
    ctx.update(&w.iterations.to_be_bytes());
    ctx.update(pin);
    ctx.sign()
}

fn session() -> Option<KeyRing> {
    // Not created: a process without a session keyring of its own (no login session joined one)
    // works in its user's default session keyring, which every such process of the user shares;
    // a new anonymous session keyring would die with this process.
    KeyRing::from_special_id(KeyRingIdentifier::Session, false).ok()
}

impl Keyring {
    /// The key `pin` derived for `w` before, if the entry exists and its check matches.
    pub fn lookup(&self, aad: &[u8], w: &PinWrap, pin: &[u8]) -> Option<Key256> {
        let key = session()?.search(&description(aad)).ok()?;
        let mut buf = Zeroizing::new([0u8; 64]);
        let n = key.read(&mut *buf).ok()?;
        if n != 64 {
            return None;
        }
        let mut kek = Zeroizing::new([0u8; 32]);
        kek.copy_from_slice(&buf[..32]);
        let want = check(&kek, w, pin);
        aws_lc_rs::constant_time::verify_slices_are_equal(want.as_ref(), &buf[32..]).ok()?;
        Some(kek)
    }

    /// Keeps the key a right PIN derived, for `seconds`.
    pub fn store(&self, aad: &[u8], w: &PinWrap, pin: &[u8], kek: &Key256) {
        let Some(ring) = session() else { return };
        let mut value = Zeroizing::new([0u8; 64]);
        value[..32].copy_from_slice(&kek[..]);
        value[32..].copy_from_slice(check(kek, w, pin).as_ref());
        match ring.add_key(&description(aad), &value[..]) {
            Ok(key) => {
                if key.set_timeout(self.seconds).is_err() {
                    // An entry without its expiry is not kept.
                    let _ = key.invalidate();
                }
            }
            Err(e) => tracing::debug!("login cache: the session keyring takes no entry ({e})"),
        }
    }
}

/// Removes the entry of (token, role) the associated data names, whether or not this process
/// uses the cache (another process of the session may).
pub fn revoke(aad: &[u8]) {
    if let Some(key) = session().and_then(|r| r.search(&description(aad)).ok()) {
        let _ = key.invalidate();
    }
}

/// Removes every Tessera entry this process can see (its session keyring's and the user's), as
/// `/proc/keys` lists them (`linux-keyutils` does not list a keyring's contents); how many.
pub fn revoke_all() -> usize {
    let Ok(list) = std::fs::read_to_string("/proc/keys") else { return 0 };
    let mut n = 0;
    for line in list.lines() {
        // "<id in hex> <flags> <usage> <timeout> <perm> <uid> <gid> <type> <description>: …"
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(id), Some(kind), Some(desc)) = (fields.first(), fields.get(7), fields.get(8)) else { continue };
        if *kind != "user" || !desc.starts_with(PREFIX) {
            continue;
        }
        let Ok(id) = u32::from_str_radix(id, 16) else { continue };
        if linux_keyutils::Key::from_id(linux_keyutils::KeySerialId(id as i32)).invalidate().is_ok() {
            n += 1;
        }
    }
    n
}
