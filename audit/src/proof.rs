//! Inclusion and consistency proofs (`tessera-audit prove`, `verify-proof`): an auditor shows
//! one record, or that the log grew from one checkpoint to another without changing, with only
//! the public keys and no other record.
//!
//! An inclusion proof is a JSON object: `kind: "inclusion"`, the record's `seq` and its line
//! (`record`, without the `\n`), the RFC 9162 audit path (`path`, hex) in the tree of the first
//! signed checkpoint after the record (`tree_size`), and that checkpoint's note (`checkpoint`).
//! A consistency proof: `kind: "consistency"`, the older checkpoint's note (`from`), the newer
//! one's (`checkpoint`), and the RFC 9162 consistency path between them.

use crate::checkpoint::{Note, PublicKeys};
use crate::format;
use crate::merkle::{self, Hash};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub tree_size: u64,
    pub path: Vec<String>,
    pub checkpoint: String,
}

/// What [`leaves`] reads from a log.
struct Read {
    /// The tree before the first record read (empty unless retention deleted files).
    prefix: merkle::Frontier,
    /// The leaf hashes from there on.
    hashes: Vec<Hash>,
    /// Each checkpoint record's seq and note.
    checkpoints: Vec<(u64, String)>,
    /// The line of record `until`, if asked for and present.
    line: Option<String>,
}

/// The leaf hashes of a log file's lines and its checkpoints, read up to the first checkpoint
/// after record `until` (all of the log if `until` is `None`).
fn leaves(log: &[PathBuf], until: Option<u64>) -> Result<Read, String> {
    let (mut hashes, mut cps, mut found) = (Vec::new(), Vec::new(), None);
    let mut done = false;
    // A log whose older files retention deleted: the tree before its first record is the
    // frontier that record carries.
    let prefix = log
        .first()
        .and_then(|p| crate::tree::first_line(p))
        .and_then(|l| crate::tree::continuation(&l))
        .unwrap_or_default();
    let m = prefix.size();
    crate::tree::scan_files(log, |line| {
        if done {
            return;
        }
        let n = m + hashes.len() as u64;
        if let Some(note) = format::split(line).and_then(|(c, _)| format::checkpoint_note(c)) {
            cps.push((n, note));
            done = until.is_some_and(|u| n > u);
        }
        if until == Some(n) {
            found = Some(String::from_utf8_lossy(line).into_owned());
        }
        hashes.push(merkle::leaf(line));
    })
    .map_err(|e| format!("{}: {e}", log.first().map(|p| p.display().to_string()).unwrap_or_default()))?;
    Ok(Read { prefix, hashes, checkpoints: cps, line: found })
}

/// The inclusion proof of record `seq` of the log (its files, oldest first), under the first
/// checkpoint after it.
pub fn prove_inclusion(log: &[PathBuf], seq: u64) -> Result<Proof, String> {
    let Read { prefix, hashes, checkpoints: cps, line } = leaves(log, Some(seq))?;
    let Some(record) = line else {
        return Err(format!("the log has no record {seq}"));
    };
    let Some((size, note)) = cps.into_iter().find(|(s, _)| *s > seq) else {
        return Err(format!(
            "record {seq} is in the unsealed tail: no checkpoint after it yet (`tessera-audit checkpoint DIR`)"
        ));
    };
    let tree = merkle::Partial { prefix: &prefix, leaves: &hashes };
    let path = tree
        .inclusion(seq as usize, size as usize)
        .ok_or_else(|| format!("record {seq} is before the log's retained history"))?;
    Ok(Proof {
        kind: "inclusion".into(),
        seq: Some(seq),
        record: Some(record),
        from: None,
        tree_size: size,
        path: path.iter().map(|h| format::hex(h)).collect(),
        checkpoint: note,
    })
}

/// The consistency proof from the checkpoint `from` (a note, verified with `keys`) to the log's
/// last checkpoint.
pub fn prove_consistency(log: &[PathBuf], from: &str, keys: &PublicKeys) -> Result<Proof, String> {
    let old = Note::verify(from, keys).map_err(|e| format!("the older checkpoint: {e}"))?;
    let Read { prefix, hashes, checkpoints: cps, .. } = leaves(log, None)?;
    let Some((size, note)) = cps.into_iter().last() else { return Err("the log has no checkpoint".into()) };
    if old.size > size {
        return Err(format!("the older checkpoint ({} records) is ahead of the log's last ({size})", old.size));
    }
    let tree = merkle::Partial { prefix: &prefix, leaves: &hashes };
    let path = tree
        .consistency(old.size as usize, size as usize)
        .ok_or_else(|| format!("the older checkpoint ({} records) is before the log's retained history", old.size))?;
    Ok(Proof {
        kind: "consistency".into(),
        seq: None,
        record: None,
        from: Some(from.to_string()),
        tree_size: size,
        path: path.iter().map(|h| format::hex(h)).collect(),
        checkpoint: note,
    })
}

/// What a proof shows, once checked.
#[derive(Debug)]
pub enum Shown {
    /// The record line is in the log under the checkpoint.
    Included { seq: u64, record: String, checkpoint: Note },
    /// The newer checkpoint's log extends the older's.
    Consistent { from: Note, to: Note },
}

/// Why a proof does not hold.
#[derive(Debug)]
pub enum ProofError {
    /// A checkpoint's signatures do not verify, or it is not this log's.
    Signature(String),
    /// The path does not lead to the signed root.
    Mismatch(String),
    /// Not a proof.
    Form(String),
}

/// Checks a proof with only the public keys.
pub fn check(p: &Proof, keys: &PublicKeys) -> Result<Shown, ProofError> {
    let note = Note::verify(&p.checkpoint, keys).map_err(|e| ProofError::Signature(e.to_string()))?;
    if note.size != p.tree_size {
        return Err(ProofError::Mismatch(format!(
            "the proof's tree size {} is not the checkpoint's {}",
            p.tree_size, note.size
        )));
    }
    let path: Vec<Hash> = p
        .path
        .iter()
        .map(|h| format::unhex32(h.as_bytes()))
        .collect::<Option<_>>()
        .ok_or_else(|| ProofError::Form("a path hash that is not 64 hex digits".into()))?;
    match p.kind.as_str() {
        "inclusion" => {
            let (Some(seq), Some(record)) = (p.seq, &p.record) else {
                return Err(ProofError::Form("an inclusion proof names a seq and a record".into()));
            };
            let head = format::split(record.as_bytes())
                .and_then(|(c, _)| format::head(c))
                .ok_or_else(|| ProofError::Form("the record is not a record line".into()))?;
            if head.seq != seq {
                return Err(ProofError::Mismatch(format!("the record is record {}, not {seq}", head.seq)));
            }
            if !merkle::verify_inclusion(&merkle::leaf(record.as_bytes()), seq, note.size, &path, &note.root) {
                return Err(ProofError::Mismatch(format!(
                    "the record is not record {seq} of the tree the checkpoint signed"
                )));
            }
            Ok(Shown::Included { seq, record: record.clone(), checkpoint: note })
        }
        "consistency" => {
            let from = p.from.as_deref().ok_or_else(|| ProofError::Form("a consistency proof names `from`".into()))?;
            let old =
                Note::verify(from, keys).map_err(|e| ProofError::Signature(format!("the older checkpoint: {e}")))?;
            if !merkle::verify_consistency(old.size, note.size, &path, &old.root, &note.root) {
                return Err(ProofError::Mismatch(format!(
                    "the tree of {} records does not extend the tree of {}: history rewritten or rolled back",
                    note.size, old.size
                )));
            }
            Ok(Shown::Consistent { from: old, to: note })
        }
        k => Err(ProofError::Form(format!("unknown kind of proof `{k}`"))),
    }
}
