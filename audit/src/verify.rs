//! Verifying a log with the seed.
//!
//! Every complete line must be the record its position calls for: line `i` (from 0) has
//! `seq = i`, `epoch`/`key_index` = the position of `i` in the chain, `prev` = the MAC of line
//! `i - 1`, and a MAC that the key of record `i` gives over its covered bytes. The first line
//! that is not is the first failure, classified by looking at what is around it (see
//! [`Class`]). A last line without its `\n` is a torn tail (a write cut short): reported, not
//! verified, and not tampering when the state does not count it.
//!
//! With the log's directory, the state file anchors the end: the state's next `seq`, last MAC,
//! length and keys must be those of the log's last record. A state that counts records the log
//! no longer has means the log was cut back (`truncated`); an attacker who took the host cannot
//! rewrite the state to an earlier point, because that needs an earlier key, which the writer
//! wiped. The state may be one record behind (a writer killed between its write and the state's
//! update).
//!
//! [`verify_file`] (what `verify_path` and `tessera-audit verify` run) streams the log: two
//! threads, the second from the first line after the middle byte (its key reached with
//! `Chain::seek`), joined where they meet; a log that fails there is read whole by [`verify`],
//! which names the failure (its two threads each start from an epoch boundary).

use crate::chain::{self, Chain, Key};
use crate::format;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What is wrong with a log, at its first failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// A record's bytes changed (its MAC fails, or it is no record line).
    Modified,
    /// Records are missing from the middle of the log.
    Deleted,
    /// A line that is no record of the chain sits between two records that follow each other.
    Inserted,
    /// Records of the log are out of order.
    Reordered,
    /// A record of the log appears twice.
    Duplicated,
    /// Records the state counts are missing from the end of the log.
    Truncated,
    /// A record's key position does not match its `seq`, or the state's keys are not the chain's.
    KeyEpochMismatch,
    /// A record is MACed with a later key than its own (re-sealed by whoever held a later key).
    Resealed,
    /// The state is older than the log (an earlier copy put back).
    RolledBack,
    /// The state file is not a whole state.
    StateDamaged,
    /// A signed checkpoint's tree size, root or chain head is not the log's, or the log's first
    /// records are not those a trusted checkpoint signed (history rewritten).
    MerkleMismatch,
    /// A checkpoint's signatures do not verify under the log's public keys (or it is no note).
    BadCheckpointSignature,
    /// A rotated file of the log is missing (or the key chain file, when the retained history
    /// needs it).
    MissingFile,
    /// The checkpoint keys' certification chain skips a generation (`keychain`).
    CertificationSkipped,
    /// One checkpoint key certified two different successors (`keychain`).
    CertificationForked,
    /// A checkpoint is signed by a key certified later than the one that must sign it: old
    /// history re-signed with a later (or the host's current) key (`keychain`).
    SignedByLaterKey,
    /// A checkpoint is signed by a key an earlier checkpoint already replaced (`keychain`).
    SignedByReplacedKey,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Modified => "modified",
            Class::Deleted => "deleted",
            Class::Inserted => "inserted",
            Class::Reordered => "reordered",
            Class::Duplicated => "duplicated",
            Class::Truncated => "truncated",
            Class::KeyEpochMismatch => "key-epoch-mismatch",
            Class::Resealed => "resealed-with-a-later-key",
            Class::RolledBack => "rolled-back",
            Class::StateDamaged => "state-damaged",
            Class::MerkleMismatch => "merkle-mismatch",
            Class::BadCheckpointSignature => "bad-checkpoint-signature",
            Class::MissingFile => "missing-file",
            Class::CertificationSkipped => "certification-skipped",
            Class::CertificationForked => "certification-forked",
            Class::SignedByLaterKey => "checkpoint-signed-by-a-later-key",
            Class::SignedByReplacedKey => "checkpoint-signed-by-a-replaced-key",
        }
    }

    /// The exit status of `tessera-audit verify` for this failure (0 intact, 1 could not run).
    pub fn exit_code(self) -> u8 {
        10 + self as u8
    }
}

/// The first failure: where, and what.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub class: Class,
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    pub seq: u64,
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file.display(), self.line, self.seq, self.class.name(), self.detail)
    }
}

/// What the state file says about the end of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    /// No state file was given: records cut off the end cannot be seen.
    NotAnchored,
    /// The state matches the last record.
    Anchored,
    /// The state is one record behind (a writer stopped between its write and the update).
    AnchoredOneBehind,
}

/// The result of a verification.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub file: PathBuf,
    /// Records verified (before the first failure, if any).
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub first_time_us: Option<u64>,
    pub last_time_us: Option<u64>,
    /// Records with `fips_approved: true`.
    pub approved: u64,
    /// Records of an operation (`op` set) with `fips_approved: false`.
    pub non_approved: u64,
    /// A last line without `\n`: its 1-based line number and length.
    pub torn_tail: Option<(usize, usize)>,
    pub end: End,
    /// Signed checkpoints verified (with the public keys).
    pub checkpoints: u64,
    /// Records `0..sealed` are under the last signed checkpoint that verified.
    pub sealed: Option<u64>,
    /// Records after the last checkpoint record, which no signature covers yet (public
    /// verification: these are not verified).
    pub unsealed_tail: Option<u64>,
    /// The size of the trusted checkpoint the log was shown to extend.
    pub extends_trusted: Option<u64>,
    /// The log's history starts at this `seq` (retention deleted the files before it; the
    /// rotation record there carries the Merkle tree so far, and signed checkpoints anchor it).
    pub history_from: Option<u64>,
    /// How the checkpoints' keys are anchored (public verification).
    pub key_chain: Option<KeyChainReport>,
    pub failure: Option<Failure>,
}

/// How the checkpoints' signing keys lead back to the anchor public keys.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct KeyChainReport {
    /// Checkpoints of the first format, all signed by the anchor keys (no forward security).
    pub legacy_checkpoints: u64,
    /// Key generations certified from the anchor: the next checkpoint's key is of this
    /// generation.
    pub generations: u64,
    /// Of these, certifications taken from the key chain file (`audit.keys`) because retention
    /// deleted the log files that held them.
    pub from_key_file: u64,
    /// Certifications in the key chain file (all checked from the anchor), if it was read.
    pub key_file_entries: Option<u64>,
}

/// A complete line, split.
struct Line<'a> {
    covered: &'a [u8],
    mac: [u8; 32],
    head: format::Head,
}

fn parse(line: &[u8]) -> Option<Line<'_>> {
    let (covered, mac) = format::split(line)?;
    Some(Line { covered, mac, head: format::head(covered)? })
}

/// Counts of a verified stretch.
#[derive(Default)]
struct Stats {
    first_time: Option<u64>,
    last_time: Option<u64>,
    approved: u64,
    non_approved: u64,
}

/// The `seq` a log's first line begins at: 0, or, for a log whose older files retention deleted,
/// the `seq` of the rotation record it begins with (its `prev` is then taken as given).
pub fn base_seq(first_line: Option<&[u8]>) -> u64 {
    first_line.and_then(crate::tree::continuation).map(|f| f.size()).filter(|&s| s <= MAX_SEQ).unwrap_or(0)
}

/// Verifies lines `from..to` as records `base + from..base + to`; the index of the first that is
/// not, and the stretch's counts.
fn check_range(seed: &Key, lines: &[&[u8]], from: usize, to: usize, base: u64) -> (Option<usize>, Stats) {
    let mut st = Stats::default();
    let mut c = Chain::seek(seed, base + from as u64);
    let mut prev = match from {
        0 if base == 0 => Some([0u8; 32]),
        0 => lines.first().and_then(|l| parse(l)).map(|l| l.head.prev),
        _ => format::split(lines[from - 1]).map(|(_, m)| m),
    };
    for (i, raw) in lines.iter().enumerate().take(to).skip(from) {
        let ok = parse(raw).filter(|l| {
            let n = base + i as u64;
            l.head.seq == n
                && (l.head.epoch, l.head.key_index) == chain::position(n)
                && prev.is_some_and(|p| chain::same_mac(&p, &l.head.prev))
                && chain::same_mac(&c.mac(l.covered), &l.mac)
        });
        let Some(l) = ok else { return (Some(i), st) };
        st.first_time.get_or_insert(l.head.time_us);
        st.last_time = Some(l.head.time_us);
        if l.head.fips_approved {
            st.approved += 1;
        } else if l.head.has_op {
            st.non_approved += 1;
        }
        prev = Some(l.mac);
        c.advance();
    }
    (None, st)
}

/// The highest `seq` whose key the verifier derives (2^36 records; reaching it takes 2^20 epoch
/// steps): a line or a state naming a later one is not of this chain, and deriving its key would
/// let a crafted number keep the verifier busy for years.
pub const MAX_SEQ: u64 = 1 << 36;

/// Whether `mac` is the MAC of `covered` under the key of record `seq`.
fn mac_at(seed: &Key, seq: u64, covered: &[u8], mac: &[u8; 32]) -> bool {
    seq <= MAX_SEQ && chain::same_mac(&Chain::seek(seed, seq).mac(covered), mac)
}

/// Whether `l` carries a valid MAC under the key of the position it claims.
fn own_mac_ok(seed: &Key, l: &Line) -> bool {
    (l.head.epoch, l.head.key_index) == chain::position(l.head.seq) && mac_at(seed, l.head.seq, l.covered, &l.mac)
}

/// Classifies the failure at line `i`, where record `n = i` with `prev = p` was expected.
/// `end_seq`: the seq of the key the host held last (the next record's).
fn classify(seed: &Key, lines: &[&[u8]], i: usize, p: [u8; 32], end_seq: u64, base: u64) -> (Class, u64, String) {
    let n = base + i as u64;
    let expected_at = |j: usize| {
        lines.get(j).and_then(|r| parse(r)).is_some_and(|l| {
            l.head.seq == n
                && (l.head.epoch, l.head.key_index) == chain::position(n)
                && chain::same_mac(&l.head.prev, &p)
                && chain::same_mac(&Chain::seek(seed, n).mac(l.covered), &l.mac)
        })
    };
    let cur = parse(lines[i]);
    if expected_at(i + 1) {
        return match &cur {
            Some(l) if own_mac_ok(seed, l) && l.head.seq < n => {
                (Class::Duplicated, l.head.seq, format!("record {} appears again before record {n}", l.head.seq))
            }
            Some(l) if own_mac_ok(seed, l) => {
                (Class::Reordered, l.head.seq, format!("record {} appears before record {n}", l.head.seq))
            }
            _ => (Class::Inserted, n, format!("a line that is no record of this chain before record {n}")),
        };
    }
    let Some(l) = cur else {
        return (Class::Modified, n, "not a record line (its form or its JSON is broken)".into());
    };
    let h = l.head;
    if h.seq == n {
        let claimed = h.epoch.checked_mul(chain::RECORDS_PER_EPOCH).and_then(|e| e.checked_add(h.key_index));
        if h.key_index >= chain::RECORDS_PER_EPOCH || claimed != Some(n) {
            let claimed = claimed.unwrap_or(u64::MAX);
            if h.key_index < chain::RECORDS_PER_EPOCH && claimed > n && mac_at(seed, claimed, l.covered, &l.mac) {
                return (Class::Resealed, n, format!("record {n} is MACed with the key of record {claimed}"));
            }
            return (
                Class::KeyEpochMismatch,
                n,
                format!("record {n} names key epoch {} index {}, not its own", h.epoch, h.key_index),
            );
        }
        let mac = Chain::seek(seed, n).mac(l.covered);
        if !chain::same_mac(&mac, &l.mac) {
            if end_seq > n && mac_at(seed, end_seq, l.covered, &l.mac) {
                return (Class::Resealed, n, format!("record {n} is MACed with the key of record {end_seq}"));
            }
            return (Class::Modified, n, format!("record {n}'s MAC does not match its bytes"));
        }
        return (Class::Modified, n, format!("record {n} does not follow the record before it (prev)"));
    }
    if h.seq > n {
        let later = lines[i + 1..].iter().any(|r| parse(r).is_some_and(|x| x.head.seq == n));
        if later {
            return (Class::Reordered, h.seq, format!("record {} appears before record {n}", h.seq));
        }
        if own_mac_ok(seed, &l) {
            let gone =
                if h.seq == n + 1 { format!("record {n} is") } else { format!("records {n}..{} are", h.seq - 1) };
            return (Class::Deleted, h.seq, format!("{gone} missing"));
        }
        return (Class::Modified, n, format!("record {n}'s bytes changed (it names seq {})", h.seq));
    }
    if own_mac_ok(seed, &l) {
        return (Class::Duplicated, h.seq, format!("record {} appears again where record {n} belongs", h.seq));
    }
    (Class::Modified, n, format!("record {n}'s bytes changed (it names seq {})", h.seq))
}

/// Verifies a log's bytes (`data`, from the file `file`) with `seed`; `state` is the state
/// file's bytes, if the directory was given. `threads`: 1 or 2.
pub fn verify(data: &[u8], file: &Path, state: Option<&[u8]>, seed: &Key, threads: usize) -> Summary {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    // `split` yields what follows the last `\n`: empty for a whole log, a torn tail otherwise.
    let tail = lines.pop().filter(|t| !t.is_empty());
    let count = lines.len();
    let base = base_seq(lines.first().copied());
    // Two threads from an epoch boundary near the middle, for logs of more than two epochs.
    let mid = ((count / 2) as u64 / chain::RECORDS_PER_EPOCH * chain::RECORDS_PER_EPOCH) as usize;
    let (bad, stats) = if threads > 1 && mid > 0 && base == 0 {
        let (a, b) = std::thread::scope(|s| {
            let second = s.spawn(|| check_range(seed, &lines, mid, count, 0));
            let first = check_range(seed, &lines, 0, mid, 0);
            (first, second.join().expect("the verifier thread does not panic"))
        });
        match (a, b) {
            ((Some(i), s), _) => (Some(i), s),
            ((None, s1), (bad, s2)) => (
                bad,
                Stats {
                    first_time: s1.first_time.or(s2.first_time),
                    last_time: s2.last_time.or(s1.last_time),
                    approved: s1.approved + s2.approved,
                    non_approved: s1.non_approved + s2.non_approved,
                },
            ),
        }
    } else {
        check_range(seed, &lines, 0, count, base)
    };
    let verified = bad.unwrap_or(count);
    let Stats { approved, non_approved, first_time, last_time } = stats;
    let mut sum = Summary {
        file: file.into(),
        records: verified as u64,
        first_seq: (verified > 0).then_some(base),
        last_seq: verified.checked_sub(1).map(|s| base + s as u64),
        first_time_us: first_time,
        last_time_us: last_time,
        approved,
        non_approved,
        torn_tail: tail.map(|t| (count + 1, t.len())),
        end: End::NotAnchored,
        checkpoints: 0,
        sealed: None,
        unsealed_tail: None,
        extends_trusted: None,
        history_from: (base > 0).then_some(base),
        key_chain: None,
        failure: None,
    };
    // The MAC before line `k` (an index).
    let last_mac = |k: usize| match k {
        0 if base == 0 => [0u8; 32],
        0 => lines.first().and_then(|l| parse(l)).map(|l| l.head.prev).unwrap_or([0; 32]),
        _ => format::split(lines[k - 1]).map(|(_, m)| m).unwrap_or([0; 32]),
    };
    let fail = |class, line, seq, detail| Some(Failure { class, file: file.into(), line, seq, detail });
    let decoded = state.map(crate::state::State::decode);
    if let Some(i) = bad {
        let end_seq = match &decoded {
            Some(Some(s)) => s.chain.seq(),
            _ => base + count as u64,
        };
        let (class, seq, detail) = classify(seed, &lines, i, last_mac(i), end_seq, base);
        sum.failure = fail(class, i + 1, seq, detail);
        return sum;
    }
    let Some(decoded) = decoded else { return sum };
    let n = base + count as u64;
    let log_len: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let last_len = lines.last().map_or(0, |l| l.len() as u64 + 1);
    check_state(&mut sum, decoded, n, log_len, last_len, |k| last_mac(k.saturating_sub(base) as usize), seed);
    sum
}

/// Checks the state against a log of `n` whole records, `log_len` bytes, the last `last_len`
/// bytes long; `mac_before(k)` is the MAC of record `k - 1` (zeros for 0), asked for `k` = `n`
/// or `n - 1` only.
fn check_state(
    sum: &mut Summary,
    decoded: Option<crate::state::State>,
    n: u64,
    log_len: u64,
    last_len: u64,
    mac_before: impl Fn(u64) -> [u8; 32],
    seed: &Key,
) {
    let file = sum.file.clone();
    let fail =
        |class, line: u64, seq, detail| Some(Failure { class, file: file.clone(), line: line as usize, seq, detail });
    let Some(st) = decoded else {
        sum.failure = fail(Class::StateDamaged, n + 1, n, "the state file is not a whole state".into());
        return;
    };
    let at = st.chain.seq();
    if at > n {
        sum.failure = fail(
            Class::Truncated,
            n + 1,
            n,
            format!("the state counts {at} records, the log ends after {n}: records {n}..{} are gone", at - 1),
        );
        return;
    }
    if at.saturating_add(1) < n {
        sum.failure = fail(
            Class::RolledBack,
            at + 1,
            at,
            format!("the state is at record {at}, the log holds {n}: an older state was put back"),
        );
        return;
    }
    let (behind, want_len) = if at == n { (false, log_len) } else { (true, log_len - last_len) };
    if !chain::same_mac(&st.last_mac, &mac_before(at)) || st.log_len != want_len {
        sum.failure = fail(Class::Modified, at + 1, at, "the state's last MAC or length is not the log's".into());
        return;
    }
    if !st.chain.same(&Chain::seek(seed, at)) {
        sum.failure = fail(Class::KeyEpochMismatch, at + 1, at, "the state's keys are not the chain's".into());
        return;
    }
    sum.end = if behind { End::AnchoredOneBehind } else { End::Anchored };
}

/// Where a stretch of the log goes on from: the chain at its next record and the `prev` that
/// record must carry.
type Position = (Chain, [u8; 32]);

/// What one thread of the streaming verifier saw of its stretch of the log.
#[derive(Default)]
struct Stretch {
    /// Whole lines verified.
    count: u64,
    /// The `seq` and `prev` its first line claims (a later stretch starts where a line says).
    first_seq: u64,
    first_prev: [u8; 32],
    /// The MACs of its last two lines.
    last_mac: [u8; 32],
    before_last_mac: [u8; 32],
    last_len: u64,
    /// A line did not verify (the verifier starts again in memory to name the failure).
    bad: bool,
    /// The offset after its last whole line.
    end: u64,
    stats: Stats,
}

/// Verifies the lines of `file` between `from` (a line's start) and `to`: from record 0 with
/// `prev` zeros when `from` is 0, else from the `seq` and `prev` its first line claims.
fn check_stretch(seed: &Key, file: &std::fs::File, from: u64, to: u64) -> std::io::Result<Stretch> {
    let start = (from == 0).then(|| (Chain::start(seed), [0u8; 32]));
    check_lines(seed, file, from, to, start, Stretch::default()).map(|(s, _)| s)
}

/// [`check_stretch`] going on from `start` (the chain and the `prev` the next line must have; `None`:
/// what the first line claims), adding to `s`; the chain after the last line.
fn check_lines(
    seed: &Key,
    file: &std::fs::File,
    from: u64,
    to: u64,
    start: Option<Position>,
    mut s: Stretch,
) -> std::io::Result<(Stretch, Option<Position>)> {
    let (mut chain, mut prev) = match start {
        Some((c, p)) => (Some(c), p),
        None => (None, [0u8; 32]),
    };
    s.end = crate::tree::scan_lines(file, from, to, |raw| {
        if s.bad {
            return;
        }
        let ok = format::split(raw).and_then(|(covered, mac)| Some((covered, mac, format::head_of_line(raw)?)));
        let Some((covered, mac, h)) = ok else {
            s.bad = true;
            return;
        };
        let c = match &mut chain {
            Some(c) => c,
            None => {
                // The first line of a later stretch: its claims are checked when the stretches
                // are joined.
                if h.seq > MAX_SEQ {
                    s.bad = true;
                    return;
                }
                s.first_seq = h.seq;
                s.first_prev = h.prev;
                s.last_mac = h.prev;
                prev = h.prev;
                chain.insert(Chain::seek(seed, h.seq))
            }
        };
        let n = c.seq();
        if h.seq != n || (h.epoch, h.key_index) != chain::position(n) || !chain::same_mac(&prev, &h.prev) {
            s.bad = true;
            return;
        }
        if !chain::same_mac(&c.mac_and_advance(covered), &mac) {
            s.bad = true;
            return;
        }
        s.stats.first_time.get_or_insert(h.time_us);
        s.stats.last_time = Some(h.time_us);
        if h.fips_approved {
            s.stats.approved += 1;
        } else if h.has_op {
            s.stats.non_approved += 1;
        }
        s.before_last_mac = s.last_mac;
        s.last_mac = mac;
        s.last_len = raw.len() as u64 + 1;
        prev = mac;
        s.count += 1;
    })?;
    Ok((s, chain.map(|c| (c, prev))))
}

/// Verifies a log of several files (the rotated ones in order, then the current one) as one
/// chain: with two threads, the second from the first line of the middle file. A rotated file
/// must end with a whole line. A log that does not verify is read whole (every file, in memory)
/// by [`verify`] to name the failure, placed in its file.
pub fn verify_files(files: &[PathBuf], state: Option<&[u8]>, seed: &Key, threads: usize) -> std::io::Result<Summary> {
    let first = files.first().and_then(|p| crate::tree::first_line(p));
    let base = base_seq(first.as_deref());
    if files.len() == 1 && base == 0 {
        return verify_file(&files[0], state, seed, threads);
    }
    // A log whose history starts later (retention) starts from its first line's claims.
    let start = || (base == 0).then(|| (Chain::start(seed), [0u8; 32]));
    let run = |part: &[PathBuf], start: Option<Position>| -> std::io::Result<(Stretch, bool)> {
        let mut s = Stretch::default();
        let mut at = start;
        let mut whole = true;
        for (i, p) in part.iter().enumerate() {
            let f = std::fs::File::open(p)?;
            let len = f.metadata()?.len();
            // Without a start, the part's first line sets `first_seq` and `first_prev`.
            let (mut next, c) = check_lines(seed, &f, 0, len, at.take(), std::mem::take(&mut s))?;
            whole &= i + 1 == part.len() || next.end == len;
            next.end = if i + 1 == part.len() { next.end } else { 0 };
            s = next;
            at = c;
            if s.bad || !whole {
                break;
            }
        }
        Ok((s, whole))
    };
    let k = if threads > 1 { files.len() / 2 } else { files.len() };
    let ((a, a_whole), (b, b_whole)) = if k > 0 && k < files.len() {
        let (a, b) = std::thread::scope(|sc| {
            let second = sc.spawn(|| run(&files[k..], None));
            let first = run(&files[..k], start());
            (first, second.join().expect("the verifier thread does not panic"))
        });
        (a?, b?)
    } else {
        (run(files, start())?, (Stretch::default(), true))
    };
    let joined = b.count == 0 || (b.first_seq == base + a.count && chain::same_mac(&b.first_prev, &a.last_mac));
    let a_starts = base == 0 || (a.count > 0 && a.first_seq == base);
    let split = k > 0 && k < files.len();
    if a.bad || b.bad || !a_whole || !b_whole || !joined || !a_starts || (split && b.count == 0) {
        return in_memory(files, state, seed, threads);
    }
    let count = a.count + b.count;
    let last_file_len = std::fs::metadata(&files[files.len() - 1])?.len();
    let end = if split { b.end } else { a.end };
    let (last_mac, before_last, last_len) = match b.count {
        0 => (a.last_mac, a.before_last_mac, a.last_len),
        1 => (b.last_mac, a.last_mac, b.last_len),
        _ => (b.last_mac, b.before_last_mac, b.last_len),
    };
    let mut sum = Summary {
        file: files[files.len() - 1].clone(),
        records: count,
        first_seq: (count > 0).then_some(base),
        last_seq: count.checked_sub(1).map(|c| base + c),
        first_time_us: a.stats.first_time.or(b.stats.first_time),
        last_time_us: b.stats.last_time.or(a.stats.last_time),
        approved: a.stats.approved + b.stats.approved,
        non_approved: a.stats.non_approved + b.stats.non_approved,
        torn_tail: (end < last_file_len)
            .then_some((lines_in(&files[files.len() - 1])? + 1, (last_file_len - end) as usize)),
        end: End::NotAnchored,
        checkpoints: 0,
        sealed: None,
        unsealed_tail: None,
        extends_trusted: None,
        history_from: (base > 0).then_some(base),
        key_chain: None,
        failure: None,
    };
    if let Some(st) = state {
        let n = base + count;
        let mac_before = |k: u64| match n - k {
            _ if k == 0 => [0; 32],
            0 => last_mac,
            _ => before_last,
        };
        check_state(&mut sum, crate::state::State::decode(st), n, end, last_len, mac_before, seed);
    }
    Ok(sum)
}

/// Whole lines in a file.
fn lines_in(p: &Path) -> std::io::Result<usize> {
    let f = std::fs::File::open(p)?;
    let len = f.metadata()?.len();
    let mut n = 0;
    crate::tree::scan_lines(&f, 0, len, |_| n += 1)?;
    Ok(n)
}

/// The in-memory verifier over every file, its failure placed in its file.
fn in_memory(files: &[PathBuf], state: Option<&[u8]>, seed: &Key, threads: usize) -> std::io::Result<Summary> {
    let mut data = Vec::new();
    let mut starts = Vec::new();
    for p in files {
        let b = std::fs::read(p)?;
        starts.push(data.iter().filter(|&&c| c == b'\n').count());
        data.extend_from_slice(&b);
    }
    let last = files.len() - 1;
    let mut sum = verify(&data, &files[last], state, seed, threads);
    // `verify` numbers lines over the whole: each back into its file.
    let place = |line: usize| -> (PathBuf, usize) {
        let i = starts.iter().rposition(|&s| s < line).unwrap_or(0);
        (files[i].clone(), line - starts[i])
    };
    if let Some(f) = &mut sum.failure {
        let (file, line) = place(f.line);
        f.file = file;
        f.line = line;
    }
    if let Some((line, len)) = sum.torn_tail {
        sum.torn_tail = Some((place(line).1, len));
    }
    Ok(sum)
}

/// Logs smaller than this are verified by one thread.
const SPLIT_AT: u64 = 4 << 20;

/// Verifies the log file `log` with `seed`, reading it in pieces (it is never held in memory
/// whole): with two threads, the second from the first line after the middle, the two joined
/// where they meet. A log that does not verify is read again whole by [`verify`], which names
/// the first failure and its class.
pub fn verify_file(log: &Path, state: Option<&[u8]>, seed: &Key, threads: usize) -> std::io::Result<Summary> {
    let f = std::fs::File::open(log)?;
    let len = f.metadata()?.len();
    let mid = if threads > 1 && len >= SPLIT_AT { line_start_after(&f, len / 2, len)? } else { len };
    let (a, b) = if mid < len {
        std::thread::scope(|sc| {
            let second = sc.spawn(|| check_stretch(seed, &f, mid, len));
            let first = check_stretch(seed, &f, 0, mid);
            (first, second.join().expect("the verifier thread does not panic"))
        })
    } else {
        (check_stretch(seed, &f, 0, len), Ok(Stretch { end: len, ..Stretch::default() }))
    };
    let (a, b) = (a?, b?);
    let joined = b.count == 0 || (b.first_seq == a.count && chain::same_mac(&b.first_prev, &a.last_mac));
    if a.bad || b.bad || !joined || (a.end != mid && b.count > 0) {
        let data = std::fs::read(log)?;
        return Ok(verify(&data, log, state, seed, threads));
    }
    let count = a.count + b.count;
    let end = if b.count > 0 || mid < len { b.end.max(a.end) } else { a.end };
    let (last_mac, before_last, last_len) = match b.count {
        0 => (a.last_mac, a.before_last_mac, a.last_len),
        1 => (b.last_mac, a.last_mac, b.last_len),
        _ => (b.last_mac, b.before_last_mac, b.last_len),
    };
    let mut sum = Summary {
        file: log.into(),
        records: count,
        first_seq: (count > 0).then_some(0),
        last_seq: count.checked_sub(1),
        first_time_us: a.stats.first_time.or(b.stats.first_time),
        last_time_us: b.stats.last_time.or(a.stats.last_time),
        approved: a.stats.approved + b.stats.approved,
        non_approved: a.stats.non_approved + b.stats.non_approved,
        torn_tail: (end < len).then_some((count as usize + 1, (len - end) as usize)),
        end: End::NotAnchored,
        checkpoints: 0,
        sealed: None,
        unsealed_tail: None,
        extends_trusted: None,
        history_from: None,
        key_chain: None,
        failure: None,
    };
    if let Some(st) = state {
        let mac_before = |k: u64| match count - k {
            _ if k == 0 => [0; 32],
            0 => last_mac,
            _ => before_last,
        };
        check_state(&mut sum, crate::state::State::decode(st), count, end, last_len, mac_before, seed);
    }
    Ok(sum)
}

/// The offset of the first line that starts after `at` (`len` if none does).
fn line_start_after(f: &std::fs::File, at: u64, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = at;
    while pos < len {
        let n = ((len - pos) as usize).min(buf.len());
        f.read_exact_at(&mut buf[..n], pos)?;
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            return Ok(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Ok(len)
}

/// Reads a seed file (64 hex digits, a newline allowed).
pub fn read_seed(path: &Path) -> std::io::Result<zeroize::Zeroizing<Key>> {
    let text = zeroize::Zeroizing::new(std::fs::read(path)?);
    let t = text.strip_suffix(b"\n").unwrap_or(&text);
    format::unhex32(t)
        .map(zeroize::Zeroizing::new)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "a seed file holds 64 hex digits"))
}

/// The log files of a directory, oldest first: the rotated files `audit.log.NNNNNN` by number,
/// then `audit.log`; and the first failure of the set, if a file is missing: a gap in the
/// numbers, or (given the state) rotated files fewer or more than the state's file number says.
pub fn log_files(dir: &Path, state: Option<&[u8]>) -> std::io::Result<(Vec<PathBuf>, Option<Failure>)> {
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    let prefix = format!("{}.", crate::writer::LOG);
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        if n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()) {
            rotated.push((n.parse().expect("digits"), e.path()));
        }
    }
    rotated.sort();
    let fail = |class, file: &Path, detail: String| Some(Failure { class, file: file.into(), line: 0, seq: 0, detail });
    let mut failure = None;
    let first_no = rotated.first().map(|(n, _)| *n);
    for (i, (n, p)) in rotated.iter().enumerate() {
        let want = first_no.unwrap_or(1) + i as u64;
        if *n != want {
            failure =
                fail(Class::MissingFile, p, format!("{} is missing before it", crate::writer::rotated_name(want)));
            break;
        }
    }
    let decoded = state.and_then(crate::state::State::decode);
    // The current file's number: after the last rotated one, or the state's.
    let current_no = match (rotated.last(), &decoded) {
        (Some((n, _)), _) => n + 1,
        (None, Some(st)) => st.file,
        (None, None) => 1,
    };
    let first_no = first_no.unwrap_or(current_no);
    if failure.is_none() && first_no > 1 {
        // Files before the first are gone: only retention may have deleted them, which the
        // first file's rotation record (authenticated by the chain and the tree) says it had.
        let first_path = rotated.first().map(|(_, p)| p.clone()).unwrap_or_else(|| dir.join(crate::writer::LOG));
        let keep = crate::tree::first_line(&first_path).and_then(|l| crate::tree::retention_of(&l)).unwrap_or(0);
        if keep == 0 {
            failure = fail(
                Class::MissingFile,
                &dir.join(crate::writer::rotated_name(first_no - 1)),
                format!(
                    "{} and the files before it are missing, and no retention deleted them",
                    crate::writer::rotated_name(first_no - 1)
                ),
            );
        }
    }
    if let (None, Some(st)) = (&failure, &decoded) {
        if st.file > current_no {
            failure = fail(
                Class::MissingFile,
                &dir.join(crate::writer::rotated_name(current_no)),
                format!("the state's current file is number {}, the last here is {}", st.file, current_no - 1),
            );
        } else if st.file < current_no {
            failure = fail(
                Class::RolledBack,
                &dir.join(crate::writer::STATE),
                format!(
                    "the state's current file is number {}, the log has rotated to {current_no}: an older state was put back",
                    st.file
                ),
            );
        }
    }
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    files.push(dir.join(crate::writer::LOG));
    Ok((files, failure))
}

/// Verifies `path`: a log directory (its files, anchored by its `audit.state`) or a log file.
pub fn verify_path(path: &Path, seed: &Key, threads: usize) -> std::io::Result<Summary> {
    if !path.is_dir() {
        return verify_file(path, None, seed, threads);
    }
    let st = std::fs::read(path.join(crate::writer::STATE))?;
    let (files, missing) = log_files(path, Some(&st))?;
    let mut sum = verify_files(&files, Some(&st), seed, threads)?;
    if let Some(m) = missing {
        sum.failure = Some(m);
    }
    Ok(sum)
}
