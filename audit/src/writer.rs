//! Appending records: the writer the module holds, and `init`, which creates a chain.
//!
//! A log directory holds `audit.log` (the records) and `audit.state` (the chain's state,
//! `state`). Any number of processes append to one log: each append takes an exclusive `flock`
//! on the state file, reads the state, appends the record to the log with one `write`
//! (`O_APPEND`), rewrites the state, and lets go. The record is in the file (the kernel's page
//! cache) when `append` returns, so a process killed after that loses nothing; `sync` adds
//! `fdatasync` of the log and then of the state.
//!
//! A writer killed between its `write` and the state's rewrite leaves one record the state does
//! not count: the next append finds the log longer than the state says, checks that the extra
//! line is the record the state's key was for, and takes it in. Bytes that are not such a record
//! (a line torn by a failed or short write, whose call returned an error) are cut off, with a
//! warning in the diagnostic log. A log shorter than the state says was cut back by someone else:
//! the writer refuses to append.

use crate::chain::Chain;
use crate::checkpoint::SigningKeys;
use crate::format::{self, Record};
use crate::state::{self, State};
use crate::tree;
use nix::fcntl::{Flock, FlockArg};
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The log's file name in its directory.
pub const LOG: &str = "audit.log";
/// The state's file name.
pub const STATE: &str = "audit.state";
/// The verification seed's default file name (`init`), to be moved off the host.
pub const SEED: &str = "audit.seed";

/// The state file is read and rewritten at every record: without `O_NOATIME` each read would
/// also write its access time (the file was modified since the last read), a second inode
/// update per record. The writer owns the file, which `O_NOATIME` requires.
const NOATIME: i32 = nix::fcntl::OFlag::O_NOATIME.bits();

/// Why a record could not be appended or a log opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: no audit chain here (create one with `tessera-audit init`)")]
    NoChain(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Unsafe(PathBuf, String),
    #[error("{0}: the state file is damaged")]
    BadState(PathBuf),
    #[error("{0}: the log is {1} bytes long, shorter than the {2} the chain's state counts: it was cut back")]
    Truncated(PathBuf, u64, u64),
    #[error("{0}: already holds an audit chain")]
    Exists(PathBuf),
}

/// Reads `buf.len()` bytes from offset 0, or up to the end of the file; how many were read.
fn read_up_to(f: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Checks that `dir` is a directory only its owner, this process's user, can change.
fn check_dir(dir: &Path) -> Result<(), Error> {
    let md = std::fs::metadata(dir).map_err(|e| Error::Io(dir.into(), e))?;
    if !md.is_dir() {
        return Err(Error::Unsafe(dir.into(), "not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me {
        return Err(Error::Unsafe(dir.into(), format!("owned by uid {}, not this process's uid {me}", md.uid())));
    }
    if md.mode() & 0o022 != 0 {
        return Err(Error::Unsafe(dir.into(), format!("writable by others (mode {:o})", md.mode() & 0o777)));
    }
    Ok(())
}

/// Creates a chain in `dir` (made with mode 0700 if missing): an empty log, the state at record
/// 0, and the verification seed written to `seed_out` (mode 0600, created new). The seed is the
/// auditor's, to be moved off the host: the host keeps only the current key.
///
/// SSP: audit verification seed
pub fn init(dir: &Path, seed_out: &Path) -> Result<(), Error> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::Io(p, e)
    };
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    }
    check_dir(dir)?;
    let (log, st) = (dir.join(LOG), dir.join(STATE));
    if st.exists() || log.exists() {
        return Err(Error::Exists(dir.into()));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut seed[..]).map_err(|_| Error::Unsafe(dir.into(), "no random seed".into()))?;
    let create = |p: &Path| OpenOptions::new().write(true).create_new(true).mode(0o600).open(p).map_err(io(p));
    let mut f = create(seed_out)?;
    let mut text = Zeroizing::new(format::hex(&seed[..]));
    text.push('\n');
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(io(seed_out))?;
    let r = create_with_seed(dir, &seed);
    seed.zeroize();
    r?;
    SigningKeys::create(dir).map_err(|e| Error::Unsafe(dir.into(), format!("checkpoint signing keys: {e}")))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

/// Creates the log and the state at record 0 of the chain of `seed` in `dir` (`init` after it
/// wrote the seed; tests and the tamper corpus, which need a known seed).
pub fn create_with_seed(dir: &Path, seed: &crate::chain::Key) -> Result<(), Error> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::Io(p, e)
    };
    let (log, st) = (dir.join(LOG), dir.join(STATE));
    let create = |p: &Path| OpenOptions::new().write(true).create_new(true).mode(0o600).open(p).map_err(io(p));
    let state = State { chain: Chain::start(seed), log_len: 0, last_mac: [0; 32], file: 1 };
    create(&log)?.sync_all().map_err(io(&log))?;
    let f = create(&st)?;
    f.write_all_at(&state.encode()[..], 0).and_then(|_| f.sync_all()).map_err(io(&st))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

/// Whether `dir` holds a chain (its state file exists).
pub fn has_chain(dir: &Path) -> bool {
    dir.join(STATE).exists()
}

/// Whether `dir` belongs to this process's (effective) user.
pub fn owned_by_this_user(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw())
}

/// An open log that records are appended to.
pub struct Writer {
    dir: PathBuf,
    log: File,
    /// The state file (`None` while an append holds it locked, or after an unlock failed).
    state: Option<File>,
    buf: Vec<u8>,
    /// The log's space is allocated up to here (this process's view; see [`RESERVE`]).
    reserved_to: u64,
    /// The reserve could not be renewed: the file system is (nearly) full.
    low_space: bool,
    /// Whether the chain has checkpoint signing keys (a chain made without them signs no
    /// checkpoints). The keys themselves are read under the lock for each checkpoint and dropped
    /// right after: each checkpoint replaces them (`checkpoint`), so no writer keeps an old pair.
    signs: bool,
    checkpoint_every: u64,
    last_checkpoint: Option<String>,
    last_checkpoint_seq: Option<u64>,
    /// The number of the file `log` is (the state's `file` when it was opened).
    file_no: u64,
    rotate_bytes: u64,
    keep_files: u64,
    /// A checkpoint when this writer's last one (or its opening) is older than this.
    checkpoint_interval: Option<std::time::Duration>,
    last_checkpoint_at: std::time::Instant,
    /// Where each checkpoint's note also goes.
    checkpoint_sink: Option<Sink>,
}

/// Where each checkpoint's note also goes (`audit.checkpoint_sink`), for the pipeline to keep
/// copies off the host. The checkpoint is in the log first: a sink that fails fails nothing and
/// goes to the diagnostic log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Appended to a file, one note after another (a blank line between).
    File(PathBuf),
    /// The system log through `syslog(3)` (facility `LOG_AUTH`, severity `LOG_NOTICE`), one
    /// message per note: [`syslog_message`]. `syslog(3)` reports no failure: a system without a
    /// logger (no `/dev/log`) loses these copies silently.
    Syslog,
}

impl Sink {
    /// `syslog` is the system log; anything else a file's path (a file named `syslog` is
    /// `./syslog`).
    pub fn parse(s: &str) -> Option<Sink> {
        match s {
            "" => None,
            "syslog" => Some(Sink::Syslog),
            path => Some(Sink::File(PathBuf::from(path))),
        }
    }

    fn send(&self, note: &str) {
        match self {
            Sink::File(path) => {
                let r = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o644)
                    .open(path)
                    .and_then(|mut f| f.write_all(format!("{note}\n").as_bytes()));
                if let Err(e) = r {
                    tracing::error!("{}: the checkpoint sink: {e}", path.display());
                }
            }
            Sink::Syslog => {
                // No `openlog`: the identity and options of the application's own syslog use
                // stay as they are (glibc names the program).
                use nix::syslog::{syslog, Facility, Priority, Severity};
                let priority = Priority::new(Severity::LOG_NOTICE, Facility::LOG_AUTH);
                if let Err(e) = syslog(priority, &syslog_message(note)) {
                    tracing::error!("the checkpoint sink (syslog): {e}");
                }
            }
        }
    }
}

/// The system-log message of a checkpoint's note: `tessera-audit checkpoint size=N note=B64`,
/// the note's exact bytes in base64 (a note has several lines and the system log takes one), so
/// that the note taken back ([`note_from_syslog`]) verifies as it was signed.
pub fn syslog_message(note: &str) -> String {
    use base64ct::{Base64, Encoding};
    let size = note.lines().nth(1).unwrap_or("?");
    format!("tessera-audit checkpoint size={size} note={}", Base64::encode_string(note.as_bytes()))
}

/// The note a system-log line holds (anything before `tessera-audit checkpoint` — a time stamp,
/// a host, a program name — is skipped); `None` for a line that holds none.
pub fn note_from_syslog(line: &str) -> Option<String> {
    use base64ct::{Base64, Encoding};
    let rest = &line[line.find("tessera-audit checkpoint ")?..];
    let b64 = rest.split_whitespace().find_map(|w| w.strip_prefix("note="))?;
    String::from_utf8(Base64::decode_vec(b64).ok()?).ok()
}

/// The name of rotated file number `n`.
pub fn rotated_name(n: u64) -> String {
    format!("{LOG}.{n:06}")
}

/// Opens the current log file for appending (created, 0600, if a crash during a rotation left
/// none: the next append finds the rotated file and finishes the rotation).
fn open_log(dir: &Path) -> Result<File, Error> {
    let lp = dir.join(LOG);
    OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&lp).map_err(|e| Error::Io(lp, e))
}

/// What one locked append writes.
enum Append {
    /// A record (and the periodic checkpoint after it, when one is due).
    Record { sync: bool },
    /// A checkpoint only.
    Checkpoint,
}

/// Records between periodic checkpoints, by default.
pub const CHECKPOINT_EVERY: u64 = 1000;

/// Space the writer keeps allocated beyond the log's end (`fallocate`, the file's length
/// unchanged), renewed when less than half of it is left: records still fit in it when the file
/// system fills up, and the writer knows the file system is full ([`Writer::low_space`]) before
/// a record is lost, so that the module can refuse to start operations while records of the calls
/// under way are still kept.
pub const RESERVE: u64 = 64 * 1024;

/// How long an append waits for another writer's lock before it gives up: a writer that holds
/// it that long is stopped (a debugger, `SIGSTOP`), and every audited call of every process
/// would wait with it. The call then fails (`CKR_DEVICE_ERROR`), as for any record not written.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The exclusive lock of the state file, taken without blocking and tried again every
/// millisecond or so for up to [`LOCK_WAIT`] (a signal interrupting a try is no failure).
fn lock_bounded(mut file: File) -> Result<Flock<File>, (File, std::io::Error)> {
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((f, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR)) if start.elapsed() < LOCK_WAIT => {
                file = f;
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(2));
            }
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("another writer has held the log's lock for {} s", LOCK_WAIT.as_secs()),
                );
                return Err((f, e));
            }
            Err((f, e)) => return Err((f, e.into())),
        }
    }
}

impl Writer {
    /// Opens the chain in `dir`: [`Error::NoChain`] when it has none.
    pub fn open(dir: &Path) -> Result<Writer, Error> {
        check_dir(dir)?;
        let st = dir.join(STATE);
        let state = match OpenOptions::new().read(true).write(true).custom_flags(NOATIME).open(&st) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoChain(dir.into())),
            Err(e) => return Err(Error::Io(st, e)),
        };
        let log = open_log(dir)?;
        let signs = dir.join(crate::checkpoint::SIGN).exists();
        if dir.join(SEED).exists() {
            tracing::warn!(
                "{}: the verification seed is still on this host; whoever reads it can forge every record: move it off",
                dir.join(SEED).display()
            );
        }
        Ok(Writer {
            dir: dir.into(),
            log,
            state: Some(state),
            buf: Vec::with_capacity(1024),
            reserved_to: 0,
            low_space: false,
            signs,
            checkpoint_every: CHECKPOINT_EVERY,
            last_checkpoint: None,
            last_checkpoint_seq: None,
            // Unknown until the first append reads the state (the log is opened again then).
            file_no: 0,
            rotate_bytes: 0,
            keep_files: 0,
            checkpoint_interval: None,
            last_checkpoint_at: std::time::Instant::now(),
            checkpoint_sink: None,
        })
    }

    /// Sets the time after which the next record brings a checkpoint (`audit.checkpoint_seconds`;
    /// `None`: by count only). Each writer counts from its own last checkpoint or its opening.
    pub fn set_checkpoint_interval(&mut self, t: Option<std::time::Duration>) {
        self.checkpoint_interval = t;
    }

    /// Sets where every checkpoint's note also goes (`audit.checkpoint_sink`).
    pub fn set_checkpoint_sink(&mut self, sink: Option<Sink>) {
        self.checkpoint_sink = sink;
    }

    /// Sets the size at which the log rotates (`audit.rotate_bytes`; 0, the default: never).
    pub fn set_rotate_bytes(&mut self, n: u64) {
        self.rotate_bytes = n;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `rec` (its `seq`, `epoch`, `key_index` and `prev` are filled here); returns its
    /// sequence number. `sync`: the record and the state reach the disk before this returns.
    pub fn append(&mut self, rec: &mut Record, sync: bool) -> Result<u64, Error> {
        self.locked(rec, Append::Record { sync })
    }

    fn locked(&mut self, rec: &mut Record, what: Append) -> Result<u64, Error> {
        let st_path = || self.dir.join(STATE);
        let file = match self.state.take() {
            Some(f) => f,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(NOATIME)
                .open(st_path())
                .map_err(|e| Error::Io(st_path(), e))?,
        };
        let locked = match lock_bounded(file) {
            Ok(l) => l,
            Err((f, e)) => {
                self.state = Some(f);
                return Err(Error::Io(st_path(), e));
            }
        };
        let r = self.append_locked(&locked, rec, what);
        // Unlocking fails only for a bad descriptor; the state file is opened again then.
        self.state = locked.unlock().ok();
        r
    }

    fn append_locked(&mut self, st_file: &File, rec: &mut Record, what: Append) -> Result<u64, Error> {
        let mut raw = Zeroizing::new([0u8; state::LEN]);
        let n = read_up_to(st_file, &mut raw[..]).map_err(|e| Error::Io(self.dir.join(STATE), e))?;
        let mut st = State::decode(&raw[..n]).ok_or_else(|| Error::BadState(self.dir.join(STATE)))?;
        if st.file != self.file_no {
            // Another writer rotated the log (or this is the first append): the current file.
            self.log = open_log(&self.dir)?;
            self.file_no = st.file;
            self.reserved_to = 0;
        }
        // The log's length by `lseek` to its end, not `statx`: a file whose times were read gets
        // fine-grained times at its next write (Linux's multigrain timestamps), so the write after
        // a `statx` also updates and dirties the inode, about 1.5 µs more per record than `lseek`
        // and a write that leaves the times alone within a clock tick. The position `lseek`
        // leaves does not matter: every write appends (`O_APPEND`).
        let mut len = (&self.log).seek(SeekFrom::End(0)).map_err(|e| Error::Io(self.dir.join(LOG), e))?;
        if st.file > 1 && st.log_len == 0 && len > 0 && !self.dir.join(rotated_name(st.file - 1)).exists() {
            // A rotation stopped after the state was written, before the file was renamed.
            self.rename_current(st.file)?;
            len = 0;
        }
        if len != st.log_len {
            self.recover(&mut st, len)?;
            st_file.write_all_at(&st.encode()[..], 0).map_err(|e| Error::Io(self.dir.join(STATE), e))?;
        }
        if st.file > 1 && st.log_len == 0 {
            // A rotation stopped before the new file's first record.
            self.begin_file(st_file, &mut st, rec)?;
        }
        if self.rotate_bytes > 0 && st.log_len >= self.rotate_bytes {
            self.rotate(st_file, &mut st, rec)?;
        }
        let sync = match what {
            // The last record is this writer's checkpoint: it covers everything already.
            Append::Checkpoint if self.last_checkpoint_seq.is_some_and(|s| s + 1 == st.chain.seq()) => {
                return Ok(st.chain.seq() - 1)
            }
            Append::Checkpoint => return self.write_checkpoint(st_file, &mut st, rec),
            Append::Record { sync } => sync,
        };
        let seq = self.write_one(st_file, &mut st, rec, sync)?;
        let every = self.checkpoint_every;
        let by_count = every > 0 && st.chain.seq().is_multiple_of(every);
        // Time: this writer's last checkpoint (or its opening) is older than the interval.
        let by_time = self.checkpoint_interval.is_some_and(|t| self.last_checkpoint_at.elapsed() >= t);
        if self.signs && (by_count || by_time) {
            // The record is written: a checkpoint that fails now does not fail its call; the
            // next one (or `C_Finalize`'s) covers these records.
            if let Err(e) = self.write_checkpoint(st_file, &mut st, rec) {
                tracing::error!("{}: the checkpoint after record {seq} could not be written: {e}", self.dir.display());
            }
        }
        Ok(seq)
    }

    /// Appends `rec` at the state's position and moves the state on (in `st`, and in the state
    /// file once the record is written; on an error the caller drops `st` unwritten).
    fn write_one(&mut self, st_file: &File, st: &mut State, rec: &mut Record, sync: bool) -> Result<u64, Error> {
        let (lp, sp) = (|| self.dir.join(LOG), || self.dir.join(STATE));
        let seq = st.chain.seq();
        let (epoch, index) = crate::chain::position(seq);
        rec.seq = seq;
        rec.epoch = epoch;
        rec.key_index = index;
        rec.prev = format::hex(&st.last_mac).into();
        // The record's MAC, and the chain moved on to the next key with the same HMAC key set up
        // (the record's key is overwritten here; the state file holds it until it is rewritten).
        let mac = format::encode_with(&mut self.buf, rec, |covered| st.chain.mac_and_advance(covered));
        // One write: the whole line, or (disk full, a failed device) nothing kept.
        match self.log.write(&self.buf) {
            Ok(n) if n == self.buf.len() => {}
            other => {
                let _ = self.log.set_len(st.log_len);
                let e = match other {
                    Err(e) => e,
                    Ok(n) => std::io::Error::other(format!("short write: {n} of {} bytes", self.buf.len())),
                };
                return Err(Error::Io(lp(), e));
            }
        }
        if sync {
            self.log.sync_data().map_err(|e| Error::Io(lp(), e))?;
        }
        st.log_len += self.buf.len() as u64;
        st.last_mac = mac;
        st_file.write_all_at(&st.encode()[..], 0).map_err(|e| Error::Io(sp(), e))?;
        if sync {
            st_file.sync_data().map_err(|e| Error::Io(sp(), e))?;
        }
        if st.log_len + RESERVE / 2 > self.reserved_to {
            self.reserve(st.log_len);
        }
        Ok(seq)
    }

    /// Appends a checkpoint over every record before the state's position (its time, pid, uid
    /// and mode taken from `like`), synced; returns its `seq`.
    ///
    /// Under the log's lock: the current signing pair is read from `audit.sign` (a pair left
    /// pending by a writer stopped midway is settled first, [`Writer::settle_pending`]), a fresh
    /// pair is made and stored as pending (`audit.sign.next`, synced), the checkpoint signed by
    /// the current pair certifies the fresh one, goes into the log (synced) and into the key
    /// chain file (`audit.keys`, synced), and the fresh pair replaces the current one
    /// (`SigningKeys::commit`: renamed over it, the old file's bytes overwritten). The old pair
    /// is dropped here (aws-lc clears freed keys). Every process reads the keys under the same
    /// lock, so all agree on which pair signs the next checkpoint.
    fn write_checkpoint(&mut self, st_file: &File, st: &mut State, like: &Record) -> Result<u64, Error> {
        let unsafe_err = |e: crate::checkpoint::Error| Error::Unsafe(self.dir.clone(), format!("checkpoint: {e}"));
        self.settle_pending()?;
        let Some(keys) = SigningKeys::load(&self.dir).map_err(unsafe_err)? else {
            return Err(Error::Unsafe(self.dir.clone(), "this chain has no checkpoint signing keys".into()));
        };
        let size = st.chain.seq();
        let tree = tree::extend(&self.dir, self.file_no, &self.log, size, st.log_len)?;
        let mut next = keys.generate_next().map_err(unsafe_err)?;
        let at = st.log_len;
        next.store_pending(&self.dir, (self.file_no, at)).map_err(unsafe_err)?;
        let note = keys.sign(size, &tree.root(), &st.last_mac, Some(next.public())).map_err(unsafe_err);
        drop(keys);
        drop(next);
        let note = match note {
            Ok(n) => n,
            Err(e) => {
                SigningKeys::discard_pending(&self.dir);
                return Err(e);
            }
        };
        let text = note.encode();
        let mut rec = Record {
            time_us: like.time_us,
            pid: like.pid,
            uid: like.uid,
            function: "checkpoint".into(),
            category: "checkpoint".into(),
            rv: "CKR_OK".into(),
            mode: like.mode.clone(),
            checkpoint: Some(text.into()),
            ..Default::default()
        };
        let seq = match self.write_one(st_file, st, &mut rec, true) {
            Ok(s) => s,
            Err(e) => {
                // Not in the log: the pair it would have certified is never used.
                SigningKeys::discard_pending(&self.dir);
                return Err(e);
            }
        };
        tree::save(&self.dir, &tree, self.file_no, at);
        self.last_checkpoint = rec.checkpoint.map(Cow::into_owned);
        self.last_checkpoint_seq = Some(seq);
        self.last_checkpoint_at = std::time::Instant::now();
        if let Some(note) = &self.last_checkpoint {
            self.commit_pending(note)?;
        }
        if let (Some(sink), Some(note)) = (&self.checkpoint_sink, &self.last_checkpoint) {
            // A copy for the pipeline. The checkpoint is in the log already.
            sink.send(note);
        }
        Ok(seq)
    }

    /// The checkpoint `note` is in the log: into the key chain file, and its certified pair
    /// (pending) becomes the current one.
    fn commit_pending(&self, note: &str) -> Result<(), Error> {
        let kp = self.dir.join(crate::keychain::KEYS);
        crate::keychain::append(&self.dir, note).map_err(|e| Error::Io(kp, e))?;
        SigningKeys::commit(&self.dir).map_err(|e| Error::Io(self.dir.join(crate::checkpoint::SIGN), e))
    }

    /// Settles a pending pair (`audit.sign.next`) a writer stopped between making it and
    /// committing it left: if the checkpoint that certifies it is in the log (at the file and
    /// offset the pending file names), it is committed (and the note added to the key chain
    /// file if missing); otherwise it was never certified and is discarded.
    fn settle_pending(&self) -> Result<(), Error> {
        let pending = match SigningKeys::load_pending(&self.dir) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!("{}: a damaged pending signing key: discarded ({e})", self.dir.display());
                SigningKeys::discard_pending(&self.dir);
                return Ok(());
            }
        };
        let (file, offset) = pending.pending_at();
        let path = if file == self.file_no { self.dir.join(LOG) } else { self.dir.join(rotated_name(file)) };
        let line = File::open(&path).ok().and_then(|f| {
            let len = f.metadata().ok()?.len();
            let mut first = None;
            tree::scan_lines(&f, offset, len, |l| {
                if first.is_none() {
                    first = Some(l.to_vec());
                }
            })
            .ok()?;
            first
        });
        let note =
            line.as_deref().and_then(|l| format::split(l).and_then(|(c, _)| format::checkpoint_note(c))).filter(|t| {
                crate::checkpoint::Note::parse(t)
                    .is_ok_and(|n| n.next.as_ref().is_some_and(|(_, k)| k == pending.public()))
            });
        drop(pending);
        match note {
            Some(n) => {
                tracing::warn!("{}: a checkpoint's key change stopped midway: finished", self.dir.display());
                self.commit_pending(&n)
            }
            None => {
                tracing::warn!(
                    "{}: a checkpoint key made for a checkpoint that was never written: discarded",
                    self.dir.display()
                );
                SigningKeys::discard_pending(&self.dir);
                Ok(())
            }
        }
    }

    /// Appends a checkpoint now (`tessera-audit checkpoint`, `C_Finalize`): its time, pid, uid
    /// and mode are `like`'s. Returns its `seq`; the note is [`Writer::last_checkpoint`].
    pub fn checkpoint(&mut self, like: &Record) -> Result<u64, Error> {
        let mut rec = like.clone();
        self.locked(&mut rec, Append::Checkpoint)
    }

    /// The note of the last checkpoint this writer appended.
    pub fn last_checkpoint(&self) -> Option<&str> {
        self.last_checkpoint.as_deref()
    }

    /// Sets how many records lie between periodic checkpoints (0: none; default
    /// [`CHECKPOINT_EVERY`]). A checkpoint is appended when the next record's `seq` is a multiple.
    pub fn set_checkpoint_every(&mut self, n: u64) {
        self.checkpoint_every = n;
    }

    /// Whether this chain signs checkpoints.
    pub fn signs_checkpoints(&self) -> bool {
        self.signs
    }

    /// Rotates the log: the state moves to the next file first, then the current file becomes
    /// `audit.log.NNNNNN` and a new `audit.log` begins with a rotation record that names it and
    /// carries the Merkle tree's frontier over every record before (so the tree goes on without
    /// the older files). The chain goes on unbroken. A writer stopped anywhere in between leaves
    /// what the next append finishes: the state says the new file while the old one is not yet
    /// renamed (renamed then), or the new file has no rotation record yet (written then).
    fn rotate(&mut self, st_file: &File, st: &mut State, like: &Record) -> Result<(), Error> {
        let old = self.dir.join(rotated_name(st.file));
        if std::fs::symlink_metadata(&old).is_ok() {
            return Err(Error::Unsafe(old, "a rotated log file of this number exists already".into()));
        }
        st.file += 1;
        st.log_len = 0;
        st_file.write_all_at(&st.encode()[..], 0).map_err(|e| Error::Io(self.dir.join(STATE), e))?;
        self.rename_current(st.file)?;
        self.begin_file(st_file, st, like)
    }

    /// Renames the current file to the number before `file` and opens a new current file.
    fn rename_current(&mut self, file: u64) -> Result<(), Error> {
        let io = |p: PathBuf| move |e| Error::Io(p, e);
        let old = self.dir.join(rotated_name(file - 1));
        std::fs::rename(self.dir.join(LOG), &old).map_err(io(old.clone()))?;
        self.log = open_log(&self.dir)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(self.dir.clone()))?;
        self.file_no = file;
        self.reserved_to = 0;
        Ok(())
    }

    /// Writes the rotation record that begins a new file: the file before it, and the Merkle
    /// frontier over every record so far.
    fn begin_file(&mut self, st_file: &File, st: &mut State, like: &Record) -> Result<(), Error> {
        let size = st.chain.seq();
        let frontier = tree::extend(&self.dir, self.file_no, &self.log, size, st.log_len)?;
        tree::save(&self.dir, &frontier, self.file_no, st.log_len);
        let hashes: Vec<String> = frontier.hashes().iter().map(|h| format::hex(h)).collect();
        let mut r = Record {
            time_us: like.time_us,
            pid: like.pid,
            uid: like.uid,
            function: "rotation".into(),
            category: "module".into(),
            rv: "CKR_OK".into(),
            mode: like.mode.clone(),
            continues: Some(
                format!("{} {size} {} keep={}", rotated_name(st.file - 1), hashes.join(","), self.keep_files).into(),
            ),
            ..Default::default()
        };
        self.write_one(st_file, st, &mut r, true)?;
        if self.signs {
            // A signed checkpoint over every record of the files before: what lets retention
            // delete them and the verifier start here.
            self.write_checkpoint(st_file, st, like)?;
            self.retain(st.file);
        }
        Ok(())
    }

    /// Deletes the rotated files older than the newest `keep_files` (`audit.keep_files`), now that
    /// file `current` begins with a rotation record and a signed checkpoint over all of them.
    fn retain(&self, current: u64) {
        if self.keep_files == 0 {
            return;
        }
        let mut n = current.saturating_sub(self.keep_files + 1);
        while n >= 1 {
            let p = self.dir.join(rotated_name(n));
            match std::fs::remove_file(&p) {
                Ok(()) => tracing::info!("{}: deleted (audit.keep_files)", p.display()),
                // Deleted before.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => {
                    tracing::warn!("{}: not deleted: {e}", p.display());
                    break;
                }
            }
            n -= 1;
        }
    }

    /// Sets how many rotated files are kept (`audit.keep_files`; 0, the default: all). Only a
    /// chain that signs checkpoints deletes files.
    pub fn set_keep_files(&mut self, n: u64) {
        self.keep_files = n;
    }

    /// Allocates [`RESERVE`] bytes beyond `end`; notes whether that failed.
    fn reserve(&mut self, end: u64) {
        use nix::errno::Errno;
        use nix::fcntl::{fallocate, FallocateFlags};
        match fallocate(&self.log, FallocateFlags::FALLOC_FL_KEEP_SIZE, end as i64, RESERVE as i64) {
            Ok(()) => {
                self.reserved_to = end + RESERVE;
                self.low_space = false;
            }
            // A file system (or a device) without preallocation: no reserve is kept.
            Err(Errno::EOPNOTSUPP | Errno::ENODEV | Errno::ESPIPE | Errno::EINVAL) => self.reserved_to = u64::MAX,
            Err(_) => self.low_space = true,
        }
    }

    /// Whether the file system had no room for the reserve at the last record.
    pub fn low_space(&self) -> bool {
        self.low_space
    }

    /// Tries to renew the reserve now (the file system may have room again); whether space is
    /// still short.
    pub fn check_space(&mut self) -> bool {
        if let Ok(m) = self.log.metadata() {
            self.reserve(m.len());
        }
        self.low_space
    }

    /// Brings the state level with a log of length `len` (see the module documentation).
    fn recover(&mut self, st: &mut State, len: u64) -> Result<(), Error> {
        let lp = self.dir.join(LOG);
        if len < st.log_len {
            return Err(Error::Truncated(lp, len, st.log_len));
        }
        let mut extra = vec![0u8; (len - st.log_len).min(1 << 20) as usize];
        self.log.read_exact_at(&mut extra, st.log_len).map_err(|e| Error::Io(lp.clone(), e))?;
        let mut rest = &extra[..];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..end];
            let ok = format::split(line).and_then(|(covered, mac)| {
                let h = format::head(covered)?;
                let fits = h.seq == st.chain.seq()
                    && crate::chain::same_mac(&h.prev, &st.last_mac)
                    && crate::chain::same_mac(&st.chain.mac(covered), &mac);
                fits.then_some(mac)
            });
            let Some(mac) = ok else { break };
            st.log_len += end as u64 + 1;
            st.last_mac = mac;
            st.chain.advance();
            rest = &rest[end + 1..];
        }
        if st.log_len != len {
            tracing::warn!(
                "{}: {} bytes after the last record are not a record of this chain (a torn write); cut off",
                lp.display(),
                len - st.log_len
            );
            self.log.set_len(st.log_len).map_err(|e| Error::Io(lp, e))?;
        }
        Ok(())
    }
}
