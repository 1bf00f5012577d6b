//! Verification with the public keys only (no seed): what anyone the log's owner hands the
//! public keys to can check.
//!
//! Line by line, streaming (the log is never held in memory): every line is a record line; the
//! `seq` numbers run 0, 1, 2 …; each record's key position is that of its `seq`; each record's
//! `prev` is the MAC the record before it carries. The Merkle tree over the lines is kept as its
//! frontier; at each checkpoint record the note's signatures (ECDSA P-256 and ML-DSA-65) must
//! verify, its tree size must be the record's `seq`, its root the root over the records before
//! it, and its chain head the MAC of the record before it. Records after the last checkpoint are
//! the unsealed tail: reported, not verified.
//!
//! Without the seed a record's own MAC cannot be checked, so a record whose bytes changed shows
//! as a Merkle mismatch at the next checkpoint (not as "modified"), and the classes of a broken
//! sequence are named from the sequence numbers alone; run with the seed as well for the exact
//! class.
//!
//! Checkpoint signatures are checked along the key chain (`keychain`): the first checkpoint
//! under the anchor keys, each later one under the key the one before it certified. A log whose
//! older files retention deleted starts its chain from the key chain file (`audit.keys`, beside
//! the log), itself checked from the anchor; where both hold a certification they must agree.
//!
//! With a trusted checkpoint (one the auditor kept from an earlier look at the log), the root
//! over the log's first `size` records must be the trusted root: a log shorter than that is
//! "rolled back", one whose first records differ is "Merkle mismatch" (history rewritten). This
//! is the consistency of RFC 9162 checked on the records themselves; `prove --consistency`
//! gives the proof (`merkle::consistency_proof`) for an auditor who holds only two checkpoints.

use crate::chain;
use crate::checkpoint::{Note, PublicKeys};
use crate::format;
use crate::keychain::{self, KeyChain};
use crate::merkle::{self, Frontier};
use crate::verify::{Class, End, Failure, KeyChainReport, Summary};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Verifies the log file `file` with `keys`; `state` the state file's bytes if the directory was
/// given (its checksum is not keyed: it shows a log cut back under its state, nothing more);
/// `trusted` a checkpoint kept by the auditor (parsed by [`read_trusted`]; its signature is
/// checked against the log's key chain).
pub fn verify(
    file: &Path,
    state: Option<&[u8]>,
    keys: &PublicKeys,
    trusted: Option<&Note>,
) -> std::io::Result<Summary> {
    verify_files(&[file.to_path_buf()], state, keys, trusted)
}

/// [`verify`] over the files of a rotated log, oldest first (`verify::log_files`): each file
/// after the first must begin with the rotation record whose Merkle frontier is the tree over
/// every record before it, and every file but the last must end with a whole line.
pub fn verify_files(
    files: &[PathBuf],
    state: Option<&[u8]>,
    keys: &PublicKeys,
    trusted: Option<&Note>,
) -> std::io::Result<Summary> {
    // The key chain file beside the log: each of its notes must be the log's checkpoint of the
    // same generation (checked as the walk takes it), and the part before a retained history is
    // followed from the anchor on its own.
    let dir = files.first().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_default();
    let side = keychain::read(&dir)?;
    let side_len = side.as_ref().map(|n| n.len() as u64);
    let mut v = Walk {
        keys,
        chain: KeyChain::new(keys),
        side,
        files,
        from_key_file: 0,
        trusted,
        n: 0,
        prev: [0; 32],
        tree: Frontier::new(),
        approved: 0,
        non_approved: 0,
        first_time: None,
        last_time: None,
        checkpoints: 0,
        sealed: None,
        last_checkpoint_seq: None,
        extends: None,
        failure: None,
        file_start: false,
        history_from: None,
    };
    let (mut end, mut len, mut base) = (0, 0, 0);
    let mut failed_in = files.len() - 1;
    // A log whose older files retention deleted starts at its first rotation record, from the
    // tree that record carries (signed checkpoints after it anchor it).
    let mut history_from = None;
    if let Some(first) = files.first().and_then(|p| crate::tree::first_line(p)) {
        if let (Some(tree), Some((_, h))) =
            (crate::tree::continuation(&first), format::split(&first).and_then(|(c, _)| Some((c, format::head(c)?))))
        {
            v.n = tree.size();
            v.tree = tree;
            v.prev = h.prev;
            history_from = Some(v.n);
        }
    }
    v.history_from = history_from;
    let start_n = v.n;
    for (i, p) in files.iter().enumerate() {
        let f = File::open(p)?;
        len = f.metadata()?.len();
        base = v.n;
        v.file_start = i > 0;
        end = crate::tree::scan_lines(&f, 0, len, |line| v.line(line))?;
        if v.failure.is_none() && i + 1 < files.len() && end != len {
            let n = v.n;
            v.fail(Class::Modified, n, format!("{} ends inside a line", p.display()));
        }
        if v.failure.is_some() {
            failed_in = i;
            break;
        }
    }
    let file = files[failed_in].as_path();
    let count = v.n;
    if v.failure.is_none() {
        v.at_end();
    }
    // Line numbers within the file; `at` is a line's index over all files.
    let fail = |class, at: u64, seq, detail| {
        Some(Failure { class, file: file.into(), line: (at.saturating_sub(base)) as usize + 1, seq, detail })
    };
    let mut bad_at = None;
    let mut failure = v.failure.take().map(|(class, at, seq, detail)| {
        bad_at = Some(at);
        fail(class, at, seq, detail).expect("some")
    });
    if failure.is_none() {
        if let Some(st) = state {
            let (class, at, detail) = match crate::state::State::decode(st) {
                None => (Some(Class::StateDamaged), count, "the state file is not a whole state".to_string()),
                Some(s) if s.chain.seq() > count => {
                    let at = s.chain.seq();
                    (
                        Some(Class::Truncated),
                        count,
                        format!(
                            "the state counts {at} records, the log ends after {count}: records {count}..{} are gone",
                            at - 1
                        ),
                    )
                }
                Some(s) if s.chain.seq().saturating_add(1) < count => {
                    let at = s.chain.seq();
                    (
                        Some(Class::RolledBack),
                        at,
                        format!("the state is at record {at}, the log holds {count}: an older state was put back"),
                    )
                }
                Some(_) => (None, 0, String::new()),
            };
            if let Some(class) = class {
                bad_at = Some(at);
                failure = fail(class, at, at, detail);
            }
        }
    }
    // The key chain file's notes after the log's last certification: the writer appends one
    // only once its checkpoint is in the log.
    let beyond = v.side.as_deref().and_then(|n| n.get(v.chain.generation() as usize..)).unwrap_or_default();
    if let (None, Some((i, t))) = (&failure, beyond.iter().enumerate().next()) {
        let g = v.chain.generation() + i as u64;
        let (class, detail) = match Note::parse(t) {
            Ok(n) if n.size >= count => (
                Class::Truncated,
                format!(
                    "the key chain file holds the checkpoint of {} records; the log ends after {count}: records were cut off its end",
                    n.size
                ),
            ),
            _ => (
                Class::CertificationSkipped,
                format!(
                    "the key chain file ({}), line {}, certifies key generation {} in a checkpoint the log does not have",
                    keychain::KEYS,
                    g + 1,
                    g + 1
                ),
            ),
        };
        bad_at = Some(count);
        failure = fail(class, count, count, detail);
    }
    let verified = bad_at.unwrap_or(count);
    let tail = if failed_in + 1 == files.len() { len - end } else { 0 };
    Ok(Summary {
        file: file.into(),
        records: verified - start_n,
        first_seq: (verified > start_n).then_some(start_n),
        last_seq: (verified > start_n).then(|| verified - 1),
        first_time_us: v.first_time,
        last_time_us: v.last_time,
        approved: v.approved,
        non_approved: v.non_approved,
        torn_tail: (tail > 0).then_some(((count - base) as usize + 1, tail as usize)),
        end: End::NotAnchored,
        checkpoints: v.checkpoints,
        sealed: v.sealed,
        unsealed_tail: Some(match v.last_checkpoint_seq {
            Some(s) => count.saturating_sub(s + 1),
            None => count,
        }),
        extends_trusted: v.extends,
        history_from,
        key_chain: Some(KeyChainReport {
            legacy_checkpoints: v.chain.legacy,
            generations: v.chain.generation(),
            from_key_file: v.from_key_file,
            key_file_entries: side_len,
        }),
        failure,
    })
}

/// The walk's state between lines.
struct Walk<'a> {
    /// The anchor keys.
    keys: &'a PublicKeys,
    /// The checkpoint keys' chain as far as the walk has followed it.
    chain: KeyChain,
    /// The key chain file's notes, if there is one.
    side: Option<Vec<String>>,
    files: &'a [PathBuf],
    /// Certifications the chain took from the key chain file (retained history).
    from_key_file: u64,
    /// The `seq` the retained history starts at.
    history_from: Option<u64>,
    trusted: Option<&'a Note>,
    /// The next record's expected `seq` (= lines seen).
    n: u64,
    prev: [u8; 32],
    tree: Frontier,
    approved: u64,
    non_approved: u64,
    first_time: Option<u64>,
    last_time: Option<u64>,
    checkpoints: u64,
    sealed: Option<u64>,
    last_checkpoint_seq: Option<u64>,
    extends: Option<u64>,
    /// The first failure: class, 0-based line (over all files), seq, detail.
    failure: Option<(Class, u64, u64, String)>,
    /// The next line is the first of a file after the first: a rotation record.
    file_start: bool,
}

impl Walk<'_> {
    fn fail(&mut self, class: Class, seq: u64, detail: String) {
        self.failure = Some((class, self.n, seq, detail));
    }

    /// Whether the trusted checkpoint is signed by the key of its generation in the chain
    /// (`None`: the chain has not reached that generation).
    fn trusted_signed(&self, t: &Note) -> Option<bool> {
        match t.key_gen {
            None => Some(t.signed_by(self.keys)),
            Some(g) => self.chain.key(g).map(|k| t.signed_by(k)),
        }
    }

    /// The trusted checkpoint, when the walk is at its size.
    fn check_trusted(&mut self) {
        let Some(t) = self.trusted else { return };
        if t.size != self.n {
            return;
        }
        if self.trusted_signed(t) != Some(true) {
            let n = self.n;
            return self.fail(
                Class::BadCheckpointSignature,
                n,
                format!(
                    "the trusted checkpoint of {n} records is not signed by the key of generation {} of this log's key chain",
                    t.key_gen.unwrap_or(0)
                ),
            );
        }
        if self.tree.root() != t.root || !chain::same_mac(&self.prev, &t.head) {
            let n = self.n;
            self.fail(
                Class::MerkleMismatch,
                n,
                format!("the log's first {n} records are not those the trusted checkpoint signed: history rewritten"),
            );
        } else {
            self.extends = Some(t.size);
        }
    }

    fn at_end(&mut self) {
        self.check_trusted();
        if let Some(t) = self.trusted {
            if self.failure.is_none() && t.size > self.n {
                let n = self.n;
                if self.trusted_signed(t) == Some(false) {
                    return self.fail(
                        Class::BadCheckpointSignature,
                        n,
                        format!(
                            "the trusted checkpoint of {} records is not signed by its key of this log's key chain",
                            t.size
                        ),
                    );
                }
                self.fail(
                    Class::RolledBack,
                    n,
                    format!(
                        "the log holds {n} records, fewer than the {} of the trusted checkpoint: rolled back",
                        t.size
                    ),
                );
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        self.check_trusted();
        if self.failure.is_some() {
            return;
        }
        let n = self.n;
        if std::mem::take(&mut self.file_start) && crate::tree::continuation(line).as_ref() != Some(&self.tree) {
            return self.fail(
                Class::MerkleMismatch,
                n,
                format!("record {n} does not begin the file as the rotation from the file before (its tree)"),
            );
        }
        let Some((covered, mac)) = format::split(line) else {
            return self.fail(Class::Modified, n, "not a record line".into());
        };
        let Some(h) = format::head(covered) else {
            return self.fail(Class::Modified, n, "not a record line (its JSON is broken)".into());
        };
        if h.seq > n {
            let gone =
                if h.seq == n + 1 { format!("record {n} is") } else { format!("records {n}..{} are", h.seq - 1) };
            return self.fail(Class::Deleted, h.seq, format!("{gone} missing (by sequence number)"));
        }
        if h.seq < n {
            return self.fail(
                Class::Duplicated,
                h.seq,
                format!("record {} appears again where record {n} belongs", h.seq),
            );
        }
        if (h.epoch, h.key_index) != chain::position(n) {
            return self.fail(
                Class::KeyEpochMismatch,
                n,
                format!("record {n} names key epoch {} index {}, not its own", h.epoch, h.key_index),
            );
        }
        if !chain::same_mac(&h.prev, &self.prev) {
            return self.fail(Class::Modified, n, format!("record {n} does not follow the record before it (prev)"));
        }
        if h.is_checkpoint {
            let Some(text) = format::checkpoint_note(covered) else {
                return self.fail(Class::Modified, n, format!("record {n}: its checkpoint is not a string"));
            };
            let note = match Note::parse(&text) {
                Ok(n) => n,
                Err(e) => {
                    return self.fail(
                        Class::BadCheckpointSignature,
                        n,
                        format!("record {n}: not a checkpoint note: {e}"),
                    )
                }
            };
            if note.origin != self.keys.origin() {
                return self.fail(
                    Class::BadCheckpointSignature,
                    n,
                    format!("record {n}: a checkpoint of another log ({})", note.origin),
                );
            }
            // A retained history: the chain up to this checkpoint's generation comes from the
            // key chain file (the notes of the deleted files).
            let fresh = self.chain.generation() == 0 && self.chain.legacy == 0;
            if let (true, Some(h), Some(g)) = (fresh, self.history_from, note.key_gen.filter(|&g| g > 0)) {
                let Some(side) = self.side.as_deref() else {
                    return self.fail(
                        Class::MissingFile,
                        n,
                        format!(
                            "history starts at seq {h}: the key chain file ({}), which leads from the anchor key to generation {g}, is missing",
                            keychain::KEYS
                        ),
                    );
                };
                let Some(prefix) = side.get(..g as usize) else {
                    let reach = side.len();
                    return self.fail(
                        Class::CertificationSkipped,
                        n,
                        format!(
                            "history starts at seq {h} with a checkpoint of key generation {g}; the key chain file reaches generation {reach} only"
                        ),
                    );
                };
                match keychain::follow(self.keys, prefix) {
                    (_, Some((line, b))) => {
                        return self.fail(
                            b.class,
                            n,
                            format!("the key chain file ({}), line {line}: {}", keychain::KEYS, b.detail),
                        )
                    }
                    (c, None) => {
                        self.chain = c;
                        self.from_key_file = g;
                    }
                }
            }
            let files = self.files;
            if let Err(b) = self.chain.accept(&note, &text, self.side.as_deref(), &mut || keychain::certified_in(files))
            {
                return self.fail(b.class, n, format!("record {n}: {}", b.detail));
            }
            if note.size != n {
                return self.fail(
                    Class::MerkleMismatch,
                    n,
                    format!("the checkpoint at record {n} is signed for a tree of {} records", note.size),
                );
            }
            if note.root != self.tree.root() || !chain::same_mac(&note.head, &self.prev) {
                return self.fail(
                    Class::MerkleMismatch,
                    n,
                    format!("the checkpoint at record {n} signed another history of records 0..{n}"),
                );
            }
            self.checkpoints += 1;
            self.sealed = Some(n);
            self.last_checkpoint_seq = Some(n);
        }
        self.first_time.get_or_insert(h.time_us);
        self.last_time = Some(h.time_us);
        if h.fips_approved {
            self.approved += 1;
        } else if h.has_op {
            self.non_approved += 1;
        }
        self.tree.push(merkle::leaf(line));
        self.prev = mac;
        self.n += 1;
    }
}

/// Reads a trusted checkpoint file: a note of the log of `keys` (the anchor keys). A note of
/// the first format is verified here; a later one names its key generation, and its signature
/// is checked against the log's key chain by [`verify_files`].
pub fn read_trusted(path: &Path, keys: &PublicKeys) -> Result<Note, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |e: String| format!("{}: the trusted checkpoint: {e}", path.display());
    let n = Note::parse(&text).map_err(|e| bad(e.to_string()))?;
    if n.origin != keys.origin() {
        return Err(bad(format!("a checkpoint of another log ({})", n.origin)));
    }
    match n.key_gen {
        None if !n.signed_by(keys) => Err(bad("its signatures do not verify under the log's public keys".into())),
        Some(0) if !n.signed_by(keys) => Err(bad("its signatures do not verify under the anchor keys".into())),
        _ => Ok(n),
    }
}
