//! Inclusion and consistency proofs (`tessera-audit prove`, `verify-proof`): an auditor shows
//! one record, or that the log grew from one checkpoint to another without changing, with only
//! the public keys and no other record.
//!
//! An inclusion proof is a JSON object: `kind: "inclusion"`, the record's `seq` and its line
//! (`record`, without the `\n`), the RFC 9162 audit path (`path`, hex) in the tree of the first
//! signed checkpoint after the record (`tree_size`), and that checkpoint's note (`checkpoint`).
//! A consistency proof: `kind: "consistency"`, the older checkpoint's note (`from`), the newer
//! one's (`checkpoint`), and the RFC 9162 consistency path between them.
//!
//! Checkpoint keys change at every checkpoint (`keychain`), so a proof also carries the key
//! chain up to its checkpoint (`keys`: the notes that certified generations 1..=G, for a
//! checkpoint signed by generation G), which `check` follows from the anchor public keys. An
//! inclusion proof's checkpoint must be the first that covers the record (the note before it in
//! the chain is not after the record): a checkpoint signed later, by whoever took the host and
//! its current key, cannot prove a record an earlier checkpoint covered. A consistency proof
//! also carries `links`: the consistency path from the older checkpoint to the first note of
//! the key chain after it, from that one to the next, and so on to the checkpoint; so the
//! checkpoint is shown to extend every checkpoint since the older one, those signed by keys
//! since erased included.

use crate::checkpoint::{Note, PublicKeys};
use crate::format;
use crate::keychain::KeyChain;
use crate::merkle::{self, Hash};
use crate::verify::Class;
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
    /// The notes that certified the checkpoint keys from the anchor up to the checkpoint's
    /// (none for a checkpoint of the first format or of generation 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// A consistency proof's paths: from `from` to the first note of `keys` after it, from that
    /// one to the next …, from the last to `checkpoint`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Vec<String>>,
}

/// The notes that certified generations 1..=`g`, from the log's checkpoints (`cps`) and the key
/// chain file beside `log` (for retained histories).
fn key_chain(log: &[PathBuf], cps: &[(u64, String)], g: u64) -> Result<Vec<String>, String> {
    let mut by_gen: std::collections::BTreeMap<u64, String> = std::collections::BTreeMap::new();
    if let Some(dir) = log.first().and_then(|p| p.parent()) {
        let side = crate::keychain::read(dir).map_err(|e| format!("{}: {e}", dir.display()))?.unwrap_or_default();
        for t in side {
            if let Ok(Note { key_gen: Some(k), .. }) = Note::parse(&t) {
                by_gen.entry(k).or_insert(t);
            }
        }
    }
    for (_, t) in cps {
        if let Ok(Note { key_gen: Some(k), .. }) = Note::parse(t) {
            by_gen.insert(k, t.clone());
        }
    }
    (0..g)
        .map(|k| {
            by_gen.remove(&k).ok_or_else(|| {
                format!("the certification of key generation {} is in neither the log nor its key chain file", k + 1)
            })
        })
        .collect()
}

/// The generation of the key that signed a note (0 for the first format).
fn generation(note: &str) -> Result<u64, String> {
    Note::parse(note).map(|n| n.key_gen.unwrap_or(0)).map_err(|e| format!("a checkpoint in the log: {e}"))
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
    let Some((size, note)) = cps.iter().find(|(s, _)| *s > seq).cloned() else {
        return Err(format!(
            "record {seq} is in the unsealed tail: no checkpoint after it yet (`tessera-audit checkpoint DIR`)"
        ));
    };
    let tree = merkle::Partial { prefix: &prefix, leaves: &hashes };
    let path = tree
        .inclusion(seq as usize, size as usize)
        .ok_or_else(|| format!("record {seq} is before the log's retained history"))?;
    let keys = key_chain(log, &cps, generation(&note)?)?;
    Ok(Proof {
        kind: "inclusion".into(),
        seq: Some(seq),
        record: Some(record),
        from: None,
        tree_size: size,
        path: path.iter().map(|h| format::hex(h)).collect(),
        checkpoint: note,
        keys,
        links: Vec::new(),
    })
}

/// The consistency proof from the checkpoint `from` (a note of the log of `keys`, the anchor
/// keys; its signature is checked by [`check`]) to the log's last checkpoint.
pub fn prove_consistency(log: &[PathBuf], from: &str, keys: &PublicKeys) -> Result<Proof, String> {
    let old = Note::parse(from).map_err(|e| format!("the older checkpoint: {e}"))?;
    if old.origin != keys.origin() {
        return Err(format!("the older checkpoint is of another log ({})", old.origin));
    }
    let Read { prefix, hashes, checkpoints: cps, .. } = leaves(log, None)?;
    let Some((size, note)) = cps.last().cloned() else { return Err("the log has no checkpoint".into()) };
    if old.size > size {
        return Err(format!("the older checkpoint ({} records) is ahead of the log's last ({size})", old.size));
    }
    let tree = merkle::Partial { prefix: &prefix, leaves: &hashes };
    let path = tree
        .consistency(old.size as usize, size as usize)
        .ok_or_else(|| format!("the older checkpoint ({} records) is before the log's retained history", old.size))?;
    let keys = key_chain(log, &cps, generation(&note)?)?;
    // The sizes from the older checkpoint through each later note of the chain to the last.
    let mut sizes = vec![old.size];
    for t in &keys {
        let n = Note::parse(t).map_err(|e| format!("a checkpoint in the log: {e}"))?.size;
        if n > old.size {
            sizes.push(n);
        }
    }
    sizes.push(size);
    let links = sizes
        .windows(2)
        .map(|w| {
            tree.consistency(w[0] as usize, w[1] as usize)
                .map(|l| l.iter().map(|h| format::hex(h)).collect())
                .ok_or_else(|| format!("the checkpoint of {} records is before the log's retained history", w[0]))
        })
        .collect::<Result<Vec<Vec<String>>, String>>()?;
    Ok(Proof {
        kind: "consistency".into(),
        seq: None,
        record: None,
        from: Some(from.to_string()),
        tree_size: size,
        path: path.iter().map(|h| format::hex(h)).collect(),
        checkpoint: note,
        keys,
        links,
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
    /// The checkpoint's key does not lead back to the anchor keys (the class says how).
    Chain(Class, String),
    /// A checkpoint's signatures do not verify, or it is not this log's.
    Signature(String),
    /// The path does not lead to the signed root.
    Mismatch(String),
    /// Not a proof.
    Form(String),
}

fn hashes(h: &[String]) -> Result<Vec<Hash>, ProofError> {
    h.iter()
        .map(|h| format::unhex32(h.as_bytes()))
        .collect::<Option<_>>()
        .ok_or_else(|| ProofError::Form("a path hash that is not 64 hex digits".into()))
}

/// Parses a note of the log of `keys` (the anchor keys).
fn note_of(text: &str, keys: &PublicKeys, what: &str) -> Result<Note, ProofError> {
    let n = Note::parse(text).map_err(|e| ProofError::Signature(format!("{what}: {e}")))?;
    if n.origin != keys.origin() {
        return Err(ProofError::Signature(format!("{what}: a checkpoint of another log ({})", n.origin)));
    }
    Ok(n)
}

/// Follows the proof's key chain from the anchor `keys` and checks that its checkpoint is signed
/// by the key the chain leads to; the chain (for the older checkpoint of a consistency proof)
/// and the checkpoint.
fn follow(p: &Proof, keys: &PublicKeys) -> Result<(KeyChain, Note), ProofError> {
    let mut chain = KeyChain::new(keys);
    let chain_err = |b: crate::keychain::Broken| ProofError::Chain(b.class, b.detail);
    let mut candidates = Vec::new();
    for t in &p.keys {
        if let Ok(Note { next: Some(n), .. }) = Note::parse(t) {
            candidates.push(n);
        }
    }
    for (i, t) in p.keys.iter().enumerate() {
        let n = note_of(t, keys, &format!("the key chain's note {}", i + 1))?;
        if n.key_gen.is_none() {
            return Err(ProofError::Chain(
                Class::CertificationSkipped,
                format!("the key chain's note {} certifies no key", i + 1),
            ));
        }
        chain.accept(&n, t, None, &mut || candidates.clone()).map_err(chain_err)?;
    }
    let note = note_of(&p.checkpoint, keys, "the checkpoint")?;
    let mut probe = chain.clone();
    probe.accept(&note, &p.checkpoint, None, &mut || candidates.clone()).map_err(chain_err)?;
    Ok((chain, note))
}

/// Checks a proof with only the public keys (the anchor keys, `export-key`).
pub fn check(p: &Proof, keys: &PublicKeys) -> Result<Shown, ProofError> {
    let (chain, note) = follow(p, keys)?;
    // The note that certified the checkpoint's key: the checkpoint before it.
    let before = chain.certs().last().map(|t| Note::parse(t).expect("parsed when followed"));
    if note.size != p.tree_size {
        return Err(ProofError::Mismatch(format!(
            "the proof's tree size {} is not the checkpoint's {}",
            p.tree_size, note.size
        )));
    }
    let path = hashes(&p.path)?;
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
            if let Some(b) = before.as_ref().filter(|b| b.size > seq) {
                return Err(ProofError::Chain(
                    Class::SignedByLaterKey,
                    format!(
                        "record {seq} was covered by the checkpoint of {} records; a proof under a checkpoint signed by a later key does not show it",
                        b.size
                    ),
                ));
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
            let old = note_of(from, keys, "the older checkpoint")?;
            let g = old.key_gen.unwrap_or(0);
            if !chain.signed_at(&old, g) {
                return Err(ProofError::Signature(format!(
                    "the older checkpoint is not signed by the key of generation {g} of the proof's key chain"
                )));
            }
            // Each checkpoint of the chain since the older one, then the checkpoint, extends
            // the one before.
            let mut steps = vec![old.clone()];
            steps.extend(
                chain
                    .certs()
                    .iter()
                    .map(|t| Note::parse(t).expect("parsed when followed"))
                    .filter(|n| n.size > old.size),
            );
            steps.push(note.clone());
            if p.links.len() + 1 != steps.len() {
                return Err(ProofError::Mismatch(format!(
                    "the proof links {} checkpoints, the key chain since the older checkpoint has {}",
                    p.links.len() + 1,
                    steps.len()
                )));
            }
            for (w, link) in steps.windows(2).zip(&p.links) {
                if !merkle::verify_consistency(w[0].size, w[1].size, &hashes(link)?, &w[0].root, &w[1].root) {
                    return Err(ProofError::Mismatch(format!(
                        "the checkpoint of {} records does not extend the checkpoint of {} records: history rewritten",
                        w[1].size, w[0].size
                    )));
                }
            }
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
