//! The checkpoint keys' certification chain: how a verifier holding only the anchor public keys
//! (`audit.pub`, generation 0) reaches the key that signed any checkpoint.
//!
//! Checkpoint `g` of the chain (the `g`-th note that certifies a key) is signed by the pair of
//! generation `g` and names the public keys of generation `g + 1` (`checkpoint` module). The
//! verifier starts from the anchor and takes each note in turn: it must be signed by exactly the
//! key the note before it certified, name its own generation, and certify a fresh pair of the
//! next. Anything else is named:
//!
//! - signed by a key certified *later* in the chain (an old checkpoint re-signed with a later
//!   or the current key, as journald's CVE-2023-31439 allowed; a note naming an earlier
//!   generation than the key that signed it; a checkpoint that covers nothing beyond the one
//!   that certified its key): [`Class::SignedByLaterKey`];
//! - signed by a key that an earlier note already replaced (a key used again after it was
//!   replaced, or a note certifying a key already used): [`Class::SignedByReplacedKey`];
//! - a generation skipped (a note that names a later generation than the chain has reached, or
//!   certifies a generation other than its own plus one; the key chain file without the notes
//!   that lead to the retained history):
//!   [`Class::CertificationSkipped`];
//! - two different certifications by the same key (the log's note and the key chain file's
//!   disagree, both signed by that generation's key): [`Class::CertificationForked`];
//! - a signature that verifies under no key of the chain: [`Class::BadCheckpointSignature`].
//!
//! **The key chain file** (`audit.keys`, beside the log): every note that certifies a key, in
//! order, one line each (the note's exact text as a JSON string). The writer appends it under the
//! log's lock after the checkpoint record; retention never deletes it. It is what lets a
//! verifier that starts at a retained later file (retention deleted the files before) reach the
//! anchor: the notes of the deleted files are there ([`follow`]). Where the log holds the note of
//! the same generation, the two must be the same text. About 7.5 KB per checkpoint (the next
//! pair's public keys and the two signatures, ML-DSA-65's being most of it).

use crate::checkpoint::{Note, PublicKeys};
use crate::verify::Class;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The key chain file's name in the log directory.
pub const KEYS: &str = "audit.keys";

/// Why a note does not continue the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub class: Class,
    pub detail: String,
}

fn broken<T>(class: Class, detail: String) -> Result<T, Broken> {
    Err(Broken { class, detail })
}

/// The chain as far as it has been followed.
#[derive(Clone, Debug)]
pub struct KeyChain {
    /// `keys[g]`: the public keys of generation `g` (`keys[0]` the anchor).
    keys: Vec<PublicKeys>,
    /// `certs[g]`: the note (its text) signed by generation `g` that certified `g + 1`.
    certs: Vec<String>,
    /// The tree size of each of `certs`.
    sizes: Vec<u64>,
    /// Notes of the first format (the anchor keys for life) taken before the chain began.
    pub legacy: u64,
}

impl KeyChain {
    /// The chain at its anchor.
    pub fn new(anchor: &PublicKeys) -> KeyChain {
        KeyChain { keys: vec![anchor.clone()], certs: Vec::new(), sizes: Vec::new(), legacy: 0 }
    }

    /// The generation of the key the next checkpoint must be signed by.
    pub fn generation(&self) -> u64 {
        self.certs.len() as u64
    }

    /// The public keys of generation `g`, if the chain has reached it.
    pub fn key(&self, g: u64) -> Option<&PublicKeys> {
        self.keys.get(usize::try_from(g).ok()?)
    }

    /// The anchor keys.
    pub fn anchor(&self) -> &PublicKeys {
        &self.keys[0]
    }

    /// The notes that certified generations 1..=`g` (signed by generations 0..`g`).
    pub fn certs(&self) -> &[String] {
        &self.certs
    }

    /// Whether `note` (of this log: its origin is checked by the caller) is signed by the key of
    /// generation `g` of this chain.
    pub fn signed_at(&self, note: &Note, g: u64) -> bool {
        self.key(g).is_some_and(|k| note.signed_by(k))
    }

    /// Takes `note` (whose text is `text`) as the next checkpoint. `side`: the key chain file's
    /// notes, whose certification of the same generation must be this one; `later`: public keys
    /// certified anywhere (the log's other notes, the key chain file) with their generations,
    /// asked for only to name a failure.
    pub fn accept(
        &mut self,
        note: &Note,
        text: &str,
        side: Option<&[String]>,
        later: &mut dyn FnMut() -> Vec<(u64, PublicKeys)>,
    ) -> Result<(), Broken> {
        let g = self.generation();
        let cur = &self.keys[g as usize];
        match (&note.key_gen, &note.next) {
            (None, None) if self.certs.is_empty() && note.signed_by(cur) => {
                self.legacy += 1;
                return Ok(());
            }
            (Some(kg), Some((ng, nk))) if note.signed_by(cur) => {
                if *kg < g {
                    return broken(
                        Class::SignedByLaterKey,
                        format!(
                            "the checkpoint of {} records names key generation {kg} but is signed by generation {g}, a later key: re-signed by whoever held it",
                            note.size
                        ),
                    );
                }
                if *kg != g || *ng != g + 1 {
                    return broken(
                        Class::CertificationSkipped,
                        format!(
                            "the checkpoint of {} records is signed by the key of generation {g} but names generation {kg} and certifies generation {ng}",
                            note.size
                        ),
                    );
                }
                if let Some(j) = self.keys.iter().position(|k| k == nk) {
                    return broken(
                        Class::SignedByReplacedKey,
                        format!(
                            "the checkpoint of {} records certifies as generation {ng} the key of generation {j}, already used",
                            note.size
                        ),
                    );
                }
                if let Some(&before) = self.sizes.last() {
                    if note.size <= before {
                        return broken(
                            Class::SignedByLaterKey,
                            format!(
                                "the checkpoint of {} records, signed by generation {g}, covers nothing beyond the checkpoint of {before} records that certified that key: history already covered, signed again with a later key",
                                note.size
                            ),
                        );
                    }
                }
                if let Some(other) = side.and_then(|s| s.get(g as usize)) {
                    if other != text && !Note::parse(other).is_ok_and(|o| o.signed_by(cur)) {
                        return broken(
                            Class::BadCheckpointSignature,
                            format!(
                                "the key chain file ({KEYS}), line {}: its certification of generation {} is not the log's and is not signed by the key of generation {g}",
                                g + 1,
                                g + 1
                            ),
                        );
                    }
                    if other != text {
                        return broken(
                            Class::CertificationForked,
                            format!(
                                "the key of generation {g} signed two different certifications: the checkpoint of {} records in the log and another in the key chain file ({KEYS})",
                                note.size
                            ),
                        );
                    }
                }
                self.keys.push(nk.clone());
                self.certs.push(text.to_string());
                self.sizes.push(note.size);
                return Ok(());
            }
            _ => {}
        }
        // Not signed by the key it must be: by which, then?
        if let Some(j) = self.keys[..g as usize].iter().position(|k| note.signed_by(k)) {
            return broken(
                Class::SignedByReplacedKey,
                format!(
                    "the checkpoint of {} records is signed by the key of generation {j}, which the checkpoint of {} records replaced (it must be signed by generation {g})",
                    note.size, self.sizes[j]
                ),
            );
        }
        let mut cands = later();
        if let Some(s) = side {
            cands.extend(certified_by(s));
        }
        if let Some((j, _)) = cands.iter().find(|(j, k)| *j > g && note.signed_by(k)) {
            return broken(
                Class::SignedByLaterKey,
                format!(
                    "the checkpoint of {} records is signed by the key of generation {j}, certified later than generation {g}, which must sign it: re-signed by whoever held a later key",
                    note.size
                ),
            );
        }
        broken(
            Class::BadCheckpointSignature,
            format!(
                "the checkpoint of {} records: its signatures do not verify under the key of generation {g}, nor under any key of the chain",
                note.size
            ),
        )
    }
}

/// The notes in the key chain file of `dir` (a last line without its `\n`, cut short by a
/// writer stopped midway, is left out); `None` if there is no such file.
pub fn read(dir: &Path) -> std::io::Result<Option<Vec<String>>> {
    let b = match std::fs::read(dir.join(KEYS)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let whole = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    for line in b[..whole].split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let text = serde_json::from_slice::<String>(line).unwrap_or_default();
        out.push(text);
    }
    Ok(Some(out))
}

/// The chain the key chain file's notes make from `anchor`, and where it breaks (the 1-based
/// line and why), if it does.
pub fn follow(anchor: &PublicKeys, notes: &[String]) -> (KeyChain, Option<(usize, Broken)>) {
    let mut c = KeyChain::new(anchor);
    for (i, text) in notes.iter().enumerate() {
        let r = match Note::parse(text) {
            Err(e) => broken(Class::BadCheckpointSignature, format!("not a checkpoint note: {e}")),
            Ok(n) if n.origin != anchor.origin() => {
                broken(Class::BadCheckpointSignature, format!("a checkpoint of another log ({})", n.origin))
            }
            Ok(n) if n.key_gen.is_none() => {
                broken(Class::CertificationSkipped, "a note that certifies no key".to_string())
            }
            Ok(n) => c.accept(&n, text, None, &mut Vec::new),
        };
        if let Err(b) = r {
            return (c, Some((i + 1, b)));
        }
    }
    (c, None)
}

/// The last whole note of the key chain file (its tail only is read).
fn last(dir: &Path) -> Option<String> {
    let f = std::fs::File::open(dir.join(KEYS)).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(64 << 10);
    let mut buf = vec![0u8; (len - from) as usize];
    f.read_exact_at(&mut buf, from).ok()?;
    let end = buf.iter().rposition(|&c| c == b'\n')?;
    let start = buf[..end].iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    if start == 0 && from > 0 {
        return None;
    }
    serde_json::from_slice::<String>(&buf[start..end]).ok()
}

/// Appends `note` to the key chain file of `dir` (created 0644: it holds public keys only),
/// synced; nothing if it is the file's last note already. A last line cut short is cut off
/// first.
pub fn append(dir: &Path, note: &str) -> std::io::Result<()> {
    if last(dir).as_deref() == Some(note) {
        return Ok(());
    }
    let p = dir.join(KEYS);
    let mut f = OpenOptions::new().read(true).append(true).create(true).mode(0o644).open(&p)?;
    let len = f.metadata()?.len();
    if len > 0 {
        let mut c = [0u8; 1];
        f.read_exact_at(&mut c, len - 1)?;
        if c[0] != b'\n' {
            let from = len.saturating_sub(64 << 10);
            let mut tail = vec![0u8; (len - from) as usize];
            f.read_exact_at(&mut tail, from)?;
            let keep = tail.iter().rposition(|&c| c == b'\n').map_or(from, |i| from + i as u64 + 1);
            f.set_len(keep)?;
        }
    }
    f.write_all(format!("{}\n", serde_json::to_string(note).expect("a string serialises")).as_bytes())?;
    f.sync_data()
}

/// The public keys `notes` certify, with their generations (not verified).
pub fn certified_by(notes: &[String]) -> Vec<(u64, PublicKeys)> {
    notes.iter().filter_map(|t| Note::parse(t).ok()?.next).collect()
}

/// The public keys every checkpoint note in `files` certifies, with their generations (not
/// verified: what a failure is compared with).
pub fn certified_in(files: &[std::path::PathBuf]) -> Vec<(u64, PublicKeys)> {
    let mut out = Vec::new();
    let _ = crate::tree::scan_files(files, |line| {
        if let Some(t) = crate::format::split(line).and_then(|(c, _)| crate::format::checkpoint_note(c)) {
            if let Ok(Note { next: Some(n), .. }) = Note::parse(&t) {
                out.push(n);
            }
        }
    });
    out
}
