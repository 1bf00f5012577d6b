//! One record, one line.
//!
//! A record is one line of JSON (an object) ended by `\n`. Its last member is `"mac"`, 64
//! lowercase hex digits, and the line ends `,"mac":"<64 hex>"}`: that suffix is exactly
//! [`SUFFIX_LEN`] bytes. The MAC covers the line's bytes before the suffix (from the opening `{`
//! up to, not including, the `,` before `"mac"`), as they are in the file; a verifier in any
//! language cuts the last 74 bytes off the line (without its `\n`) and computes
//! HMAC-SHA-256 over what is left with the record's key (`chain`), without parsing or
//! canonicalising the JSON.
//!
//! Members, in this order (absent values are `null`): `seq`, `time_us` (UTC, microseconds since
//! the Unix epoch), `pid`, `uid`, `function` (`C_Sign` …), `category`, `slot`, `token` (the
//! token's serial number), `session`, `user` (`CKU_USER`, `CKU_SO`, or `null` when nobody is
//! logged in), `mechanism` and `mechanism_id` (name and number), `key_unique_id` (the key's
//! `CKA_UNIQUE_ID`, hex), `key_id_label_sha256` (SHA-256 over the key's `CKA_ID` and
//! `CKA_LABEL`, each preceded by its length as 8 bytes big-endian, hex: never a label
//! verbatim), `op`, `verdict` (`approved`, `non-approved`, `refused`), `rv` and `rv_id` (the
//! `CK_RV` returned, name and number), `fips_approved`, `mode`, `detail`, `checkpoint` (only in
//! a checkpoint record: the signed note, see `checkpoint`; absent, not `null`, elsewhere),
//! `continues` (only in the rotation record that begins each file after the first), `epoch` and
//! `key_index` (the position of the record's key in the chain: `seq >> 16` and `seq & 0xffff`),
//! `prev` (the previous record's MAC, 64 zeros for record 0), `mac`.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// `,"mac":"` + 64 hex digits + `"}`.
pub const SUFFIX_LEN: usize = 8 + 64 + 2;

/// One record's members. The writer fills `seq`, `epoch`, `key_index` and `prev`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub time_us: u64,
    pub pid: u32,
    pub uid: u32,
    #[serde(borrow)]
    pub function: Cow<'a, str>,
    #[serde(borrow)]
    pub category: Cow<'a, str>,
    pub slot: Option<u64>,
    #[serde(borrow)]
    pub token: Option<Cow<'a, str>>,
    pub session: Option<u64>,
    #[serde(borrow)]
    pub user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub mechanism: Option<Cow<'a, str>>,
    pub mechanism_id: Option<u64>,
    #[serde(borrow)]
    pub key_unique_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub key_id_label_sha256: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub op: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub verdict: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub rv: Cow<'a, str>,
    pub rv_id: u64,
    pub fips_approved: bool,
    #[serde(borrow)]
    pub mode: Cow<'a, str>,
    #[serde(borrow)]
    pub detail: Option<Cow<'a, str>>,
    /// A checkpoint record's signed note (`checkpoint`); absent from every other record.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Cow<'a, str>>,
    /// A rotation record's link to the file before (`rotation`): that file's name, the tree
    /// size (this record's `seq`) and the Merkle frontier over the records before, hex hashes
    /// joined by `,`; absent from every other record.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<Cow<'a, str>>,
    pub epoch: u64,
    pub key_index: u64,
    #[serde(borrow)]
    pub prev: Cow<'a, str>,
}

/// Microseconds since the Unix epoch, now (a record's `time_us`; 0 if the clock is before it).
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

impl<'a> Record<'a> {
    /// A record of this process, now: its time, pid, uid and `mode`, the rest default (what a
    /// checkpoint made outside any call is written like).
    pub fn now(mode: Cow<'a, str>) -> Record<'a> {
        Record {
            time_us: now_us(),
            pid: std::process::id(),
            uid: nix::unistd::getuid().as_raw(),
            mode,
            ..Default::default()
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Lowercase hex of exactly 32 bytes.
pub fn unhex32(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(s[2 * i])? << 4) | digit(s[2 * i + 1])?;
    }
    Some(out)
}

/// Writes `rec` as a line into `buf` (emptied first), MACed with `key`; returns the MAC.
pub fn encode(buf: &mut Vec<u8>, rec: &Record, key: &crate::chain::Key) -> [u8; 32] {
    encode_with(buf, rec, |covered| crate::chain::mac(key, covered))
}

/// [`encode`] with the MAC computed by `mac` over the covered bytes (the writer's
/// `Chain::mac_and_advance`, which sets up the record's key once for the MAC and the next key).
pub fn encode_with(buf: &mut Vec<u8>, rec: &Record, mac: impl FnOnce(&[u8]) -> [u8; 32]) -> [u8; 32] {
    buf.clear();
    serde_json::to_writer(&mut *buf, rec).expect("a record always serialises");
    // serde_json writes an object: the last byte is its closing brace.
    debug_assert_eq!(buf.last(), Some(&b'}'));
    buf.pop();
    let mac = mac(buf);
    buf.extend_from_slice(b",\"mac\":\"");
    // In hex, written in place.
    for b in mac {
        let digit = |d: u8| b"0123456789abcdef"[usize::from(d)];
        buf.extend_from_slice(&[digit(b >> 4), digit(b & 15)]);
    }
    buf.extend_from_slice(b"\"}\n");
    mac
}

/// A line (without its `\n`) split into the bytes its MAC covers and the MAC it carries, if it
/// has the form of a record line.
pub fn split(line: &[u8]) -> Option<(&[u8], [u8; 32])> {
    if line.len() < SUFFIX_LEN + 2 || line[0] != b'{' {
        return None;
    }
    let (covered, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    if !suffix.starts_with(b",\"mac\":\"") || !suffix.ends_with(b"\"}") {
        return None;
    }
    Some((covered, unhex32(&suffix[8..72])?))
}

/// The members a verifier reads from every line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub time_us: u64,
    pub fips_approved: bool,
    pub epoch: u64,
    pub key_index: u64,
    pub prev: [u8; 32],
    /// The record is of an operation (it has an `op`).
    pub has_op: bool,
    /// The record is a checkpoint (it has a `checkpoint`).
    pub is_checkpoint: bool,
}

#[derive(Deserialize)]
struct RawHead<'a> {
    seq: u64,
    time_us: u64,
    fips_approved: bool,
    epoch: u64,
    key_index: u64,
    #[serde(borrow)]
    prev: &'a str,
    op: Option<serde::de::IgnoredAny>,
    checkpoint: Option<serde::de::IgnoredAny>,
}

/// Parses the members a verifier reads from a line's covered bytes (the object closed again
/// with `}`; the members it does not read are skipped, not copied).
pub fn head(covered: &[u8]) -> Option<Head> {
    let mut obj = Vec::with_capacity(covered.len() + 1);
    obj.extend_from_slice(covered);
    obj.push(b'}');
    let h: RawHead = serde_json::from_slice(&obj).ok()?;
    Some(Head {
        seq: h.seq,
        time_us: h.time_us,
        fips_approved: h.fips_approved,
        epoch: h.epoch,
        key_index: h.key_index,
        prev: unhex32(h.prev.as_bytes())?,
        has_op: h.op.is_some(),
        is_checkpoint: h.checkpoint.is_some(),
    })
}

/// [`head`] from a whole record line (without its `\n`): the line is itself one JSON object, its
/// last member the MAC (which the parse skips), so no copy is made. The caller has checked the
/// line's form with [`split`].
pub fn head_of_line(line: &[u8]) -> Option<Head> {
    let h: RawHead = serde_json::from_slice(line).ok()?;
    Some(Head {
        seq: h.seq,
        time_us: h.time_us,
        fips_approved: h.fips_approved,
        epoch: h.epoch,
        key_index: h.key_index,
        prev: unhex32(h.prev.as_bytes())?,
        has_op: h.op.is_some(),
        is_checkpoint: h.checkpoint.is_some(),
    })
}

/// A checkpoint record's note, from its covered bytes.
pub fn checkpoint_note(covered: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Cp<'a> {
        #[serde(borrow)]
        checkpoint: Option<Cow<'a, str>>,
    }
    let mut obj = Vec::with_capacity(covered.len() + 1);
    obj.extend_from_slice(covered);
    obj.push(b'}');
    let c: Cp = serde_json::from_slice(&obj).ok()?;
    c.checkpoint.map(Cow::into_owned)
}
