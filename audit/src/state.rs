//! The chain's state file (`audit.state`, beside the log): where the next record goes and the
//! key it is to be MACed with. Owner-only (0600), rewritten in place by one `pwrite` under the
//! log's lock.
//!
//! Layout, [`LEN`] bytes: `"TSAUDST2"`, `seq` of the next record (u64 BE), the current log
//! file's length in bytes after the last record (u64 BE), the current file's number (u64 BE: the
//! name it gets when it is rotated, `audit.log.NNNNNN`; 1 until the first rotation), the last
//! record's MAC (32), the next record's key (32), the next epoch's key (32), and SHA-256 over
//! everything before it (32), so that a state torn by a crash or edited by hand is recognised.
//! A state of the first layout (`"TSAUDST1"`, 152 bytes, without the file number) is read as
//! file 1.

use crate::chain::Chain;
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"TSAUDST2";
const MAGIC_V1: &[u8; 8] = b"TSAUDST1";
/// The state file's length.
pub const LEN: usize = 8 + 8 + 8 + 8 + 32 + 32 + 32 + 32;
const LEN_V1: usize = LEN - 8;

/// The chain's state.
pub struct State {
    /// The chain at the next record.
    pub chain: Chain,
    /// The log's length after the last record.
    pub log_len: u64,
    /// The last record's MAC (zeros before the first).
    pub last_mac: [u8; 32],
    /// The current log file's number (see the module documentation).
    pub file: u64,
}

impl State {
    pub fn encode(&self) -> Zeroizing<[u8; LEN]> {
        let mut b = Zeroizing::new([0u8; LEN]);
        b[..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&self.chain.seq().to_be_bytes());
        b[16..24].copy_from_slice(&self.log_len.to_be_bytes());
        b[24..32].copy_from_slice(&self.file.to_be_bytes());
        b[32..64].copy_from_slice(&self.last_mac);
        b[64..96].copy_from_slice(self.chain.record_key());
        b[96..128].copy_from_slice(self.chain.epoch_next_key());
        let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &b[..128]);
        b[128..].copy_from_slice(sum.as_ref());
        b
    }

    /// The state in `b`, if it is a whole, unaltered state (of either layout).
    pub fn decode(b: &[u8]) -> Option<State> {
        let (file_at, body) = match (b.len(), b.get(..8)) {
            (LEN, Some(m)) if m == MAGIC => (Some(24), 128),
            (LEN_V1, Some(m)) if m == MAGIC_V1 => (None, 120),
            _ => return None,
        };
        let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &b[..body]);
        if sum.as_ref() != &b[body..] {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let key_at = |i: usize| -> Zeroizing<[u8; 32]> {
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&b[i..i + 32]);
            k
        };
        let k = body - 96;
        let mut last_mac = [0u8; 32];
        last_mac.copy_from_slice(&b[k..k + 32]);
        Some(State {
            chain: Chain::from_parts(u64_at(8), &key_at(k + 32), &key_at(k + 64)),
            log_len: u64_at(16),
            last_mac,
            file: file_at.map_or(1, u64_at),
        })
    }
}
