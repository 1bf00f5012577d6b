//! The forward-secure key chain.
//!
//! Every record is authenticated with its own key, and each key is derived from the one before
//! through a one-way step, after which the writer overwrites the old key: whoever takes the host
//! at record `t` holds keys from `t` on and can compute none before it, so records before `t`
//! can be neither altered nor forged.
//!
//! The step is the SP 800-108 KDF in counter mode with HMAC-SHA-256 as its PRF, one block of
//! output (L = 256 bits): `KDF(K, Label) = HMAC-SHA-256(K, [1]_32 || Label || 0x00 || [256]_32)`.
//!
//! Keys form a two-level chain, so that a verifier holding the seed reaches any record quickly:
//!
//! ```text
//! E_0     = KDF(seed, "tessera-audit v1 epoch 0")
//! E_j+1   = KDF(E_j,  "tessera-audit v1 epoch next")
//! R_j,0   = KDF(E_j,  "tessera-audit v1 record 0")
//! R_j,i+1 = KDF(R_j,i, "tessera-audit v1 record next")
//! ```
//!
//! Record `seq` belongs to epoch `j = seq >> 16`, index `i = seq & 0xffff`, and its MAC is
//! `HMAC-SHA-256(R_j,i, covered bytes)` (see `format`). The MAC's input is a record line, which
//! begins with `{`; a KDF input begins with the counter `00 00 00 01`: the two uses of a key
//! never take the same input. The writer keeps `R_j,i` for the next record and `E_j+1` for the
//! next epoch, nothing else: neither gives an earlier key.

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

/// A 256-bit key of the chain.
pub type Key = [u8; 32];

/// Records per epoch: 2^16.
pub const EPOCH_BITS: u32 = 16;
pub const RECORDS_PER_EPOCH: u64 = 1 << EPOCH_BITS;

const EPOCH_0: &[u8] = b"tessera-audit v1 epoch 0";
const EPOCH_NEXT: &[u8] = b"tessera-audit v1 epoch next";
const RECORD_0: &[u8] = b"tessera-audit v1 record 0";
const RECORD_NEXT: &[u8] = b"tessera-audit v1 record next";

/// One KDF step (SP 800-108 counter mode, HMAC-SHA-256, one 256-bit block).
pub fn kdf(key: &Key, label: &[u8]) -> Zeroizing<Key> {
    kdf_with(&hmac::Key::new(hmac::HMAC_SHA256, key), label)
}

/// [`kdf`] with the key already set up as an HMAC key.
fn kdf_with(k: &hmac::Key, label: &[u8]) -> Zeroizing<Key> {
    let mut ctx = hmac::Context::with_key(k);
    ctx.update(&1u32.to_be_bytes());
    ctx.update(label);
    ctx.update(&[0]);
    ctx.update(&256u32.to_be_bytes());
    let tag = ctx.sign();
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(tag.as_ref());
    out
}

/// HMAC-SHA-256 of `bytes` under `key`.
pub fn mac(key: &Key, bytes: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Compares two MACs in constant time.
pub fn same_mac(a: &[u8; 32], b: &[u8; 32]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// The epoch and the index in it of record `seq`.
pub fn position(seq: u64) -> (u64, u64) {
    (seq >> EPOCH_BITS, seq & (RECORDS_PER_EPOCH - 1))
}

/// The chain at one record: the key of record `seq` and the key of the next epoch. Both are
/// wiped when dropped and overwritten in place when the chain moves on.
pub struct Chain {
    seq: u64,
    /// SSP: audit record key
    record: Zeroizing<Key>,
    /// SSP: audit epoch key
    epoch_next: Zeroizing<Key>,
}

impl Chain {
    /// The chain at record 0 of the log created with `seed`.
    pub fn start(seed: &Key) -> Chain {
        Chain::at_epoch(&kdf(seed, EPOCH_0), 0)
    }

    fn at_epoch(epoch_key: &Key, epoch: u64) -> Chain {
        Chain { seq: epoch << EPOCH_BITS, record: kdf(epoch_key, RECORD_0), epoch_next: kdf(epoch_key, EPOCH_NEXT) }
    }

    /// The chain at record `seq` (a verifier's: it holds the seed). Walks `seq >> 16` epoch
    /// steps and `seq & 0xffff` record steps.
    pub fn seek(seed: &Key, seq: u64) -> Chain {
        let (epoch, index) = position(seq);
        let mut e = kdf(seed, EPOCH_0);
        for _ in 0..epoch {
            e = kdf(&e, EPOCH_NEXT);
        }
        let mut c = Chain::at_epoch(&e, epoch);
        for _ in 0..index {
            c.advance();
        }
        c
    }

    /// A chain as the writer's state file keeps it.
    pub fn from_parts(seq: u64, record: &Key, epoch_next: &Key) -> Chain {
        Chain { seq, record: Zeroizing::new(*record), epoch_next: Zeroizing::new(*epoch_next) }
    }

    /// The record this chain's key is for.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The key of record `seq()`.
    pub fn record_key(&self) -> &Key {
        &self.record
    }

    /// The key of the next epoch.
    pub fn epoch_next_key(&self) -> &Key {
        &self.epoch_next
    }

    /// The MAC of `bytes` under record `seq()`'s key.
    pub fn mac(&self, bytes: &[u8]) -> [u8; 32] {
        mac(&self.record, bytes)
    }

    /// The MAC of `bytes` under record `seq()`'s key, then moves on to the next record (the
    /// verifier's step: the record key is set up as an HMAC key once for both).
    pub fn mac_and_advance(&mut self, bytes: &[u8]) -> [u8; 32] {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.record[..]);
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&k, bytes).as_ref());
        self.seq += 1;
        if self.seq.is_multiple_of(RECORDS_PER_EPOCH) {
            let e = Zeroizing::new(*self.epoch_next);
            self.record = kdf(&e, RECORD_0);
            self.epoch_next = kdf(&e, EPOCH_NEXT);
        } else {
            self.record = kdf_with(&k, RECORD_NEXT);
        }
        out
    }

    /// Moves on to the next record; the keys it held are overwritten.
    pub fn advance(&mut self) {
        self.seq += 1;
        if self.seq.is_multiple_of(RECORDS_PER_EPOCH) {
            let e = Zeroizing::new(*self.epoch_next);
            self.record = kdf(&e, RECORD_0);
            self.epoch_next = kdf(&e, EPOCH_NEXT);
        } else {
            self.record = kdf(&self.record, RECORD_NEXT);
        }
    }

    /// Whether two chains are at the same record with the same keys.
    pub fn same(&self, other: &Chain) -> bool {
        self.seq == other.seq && same_mac(&self.record, &other.record) && same_mac(&self.epoch_next, &other.epoch_next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeking_reaches_the_key_that_advancing_reaches() {
        let seed = [7u8; 32];
        let mut c = Chain::start(&seed);
        for _ in 0..(RECORDS_PER_EPOCH + 5) {
            c.advance();
        }
        assert!(c.same(&Chain::seek(&seed, RECORDS_PER_EPOCH + 5)));
        assert_eq!(position(RECORDS_PER_EPOCH + 5), (1, 5));
        assert!(!c.same(&Chain::seek(&seed, RECORDS_PER_EPOCH + 4)));
        // The verifier's step gives the same MACs and keys.
        let (mut a, mut b) = (Chain::seek(&seed, RECORDS_PER_EPOCH - 2), Chain::seek(&seed, RECORDS_PER_EPOCH - 2));
        for _ in 0..4 {
            let m = a.mac(b"line");
            a.advance();
            assert_eq!(b.mac_and_advance(b"line"), m);
            assert!(a.same(&b));
        }
    }

    #[test]
    fn every_record_has_its_own_key() {
        let seed = [1u8; 32];
        let mut c = Chain::start(&seed);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(*c.record_key()));
            c.advance();
        }
    }

    #[test]
    fn the_kdf_is_sp800_108_counter_mode_hmac_sha256() {
        // The same construction computed from its definition with the HMAC alone.
        let key = [0x42u8; 32];
        let mut input = vec![0, 0, 0, 1];
        input.extend_from_slice(b"label");
        input.push(0);
        input.extend_from_slice(&256u32.to_be_bytes());
        assert_eq!(*kdf(&key, b"label"), mac(&key, &input));
    }
}
