//! The token store: one SQLite database per token directory (`<tokendir>/<serial>/tessera.db`).
//!
//! Several processes share a token at once: the database runs in WAL mode with a busy timeout, every
//! write is one `BEGIN IMMEDIATE` transaction, and readers notice other processes' commits through
//! `PRAGMA data_version` (see `token.rs`). A process killed mid-write leaves the last committed state.
//!
//! Asking SQLite for `data_version` takes the connection's lock, so on every object access it
//! would serialise all threads on one mutex. Beside the database, each token has a change counter
//! file (`changes`, see [`Changes`]) that every write moves before and after its transaction;
//! a reader that finds it where it was at its last sync knows nothing was committed since, without
//! the lock.

pub mod backup;
pub mod keyring;
pub mod seal;

use crate::error::Result;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use seal::PinWrap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File name of a token's database inside its directory.
pub const DB_FILE: &str = "tessera.db";

/// Schema migrations, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: the token row and its objects.
    "CREATE TABLE token (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        uid BLOB NOT NULL,
        serial TEXT NOT NULL,
        label BLOB NOT NULL,
        slot_id INTEGER NOT NULL,
        so_salt BLOB, so_iterations INTEGER, so_wrapped BLOB,
        user_salt BLOB, user_iterations INTEGER, user_wrapped BLOB,
        so_failures INTEGER NOT NULL DEFAULT 0,
        user_failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE object (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uid BLOB NOT NULL UNIQUE,
        private INTEGER NOT NULL,
        rev INTEGER NOT NULL,
        attrs BLOB NOT NULL,
        secret BLOB
    );",
    // 2: the epoch counts re-initialisations, so a process holding the old token key notices.
    "ALTER TABLE token ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;",
    // 3: invocation counters of keys whose GCM IVs the token generates (never reused).
    "CREATE TABLE iv_counter (uid BLOB PRIMARY KEY, next INTEGER NOT NULL);",
    // 4: the same, per key material (see `Db::reserve_iv_block`); iv_counter stays for the
    // values handed out before.
    "CREATE TABLE iv_space (kid BLOB PRIMARY KEY, next INTEGER NOT NULL);",
    // 5: the PIN state's sequence number, mirrored in the `pin-state` file (see [`PinState`]);
    // the user PIN blocked until the SO sets it again; objects' authentication format and the tag
    // of objects that have no sealed part (see `token.rs`). Rows of format 0 were written before
    // objects were authenticated and are re-sealed at the next login.
    "ALTER TABLE token ADD COLUMN pin_seq INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE token ADD COLUMN user_blocked INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE token ADD COLUMN object_format INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE object ADD COLUMN format INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE object ADD COLUMN tag BLOB;
     CREATE INDEX object_unsealed ON object (id) WHERE format = 0 OR (NOT private AND secret IS NULL AND tag IS NULL);",
    // 6: failed PIN attempts per minute (see [`FAILURE_WINDOW_SECS`]): the start of the current
    // window (Unix seconds) and the failures counted in it, per role.
    "ALTER TABLE token ADD COLUMN so_window INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE token ADD COLUMN so_window_failures INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE token ADD COLUMN user_window INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE token ADD COLUMN user_window_failures INTEGER NOT NULL DEFAULT 0;",
    // 7: the times of the failed PIN attempts of the last minute, per role (a list of Unix
    // seconds, 8 bytes each, little-endian): a sliding minute, where 6's fixed windows let twice
    // the allowed failures fall within one minute across a window's end. 6's columns are unused.
    "ALTER TABLE token ADD COLUMN so_recent BLOB;
     ALTER TABLE token ADD COLUMN user_recent BLOB;",
    // 8: a token taken over from SoftHSMv2 (the drop-in, see `migrate::dropin`): its state
    // (`legacy_state`: 0 none, 1 waiting for its first login, 2 migrated), the SoftHSMv2 token
    // directory it comes from, and, per role whose PIN has not logged in since the migration,
    // SoftHSMv2's own wrap of SoftHSMv2's token key (`{role}_legacy`), with Tessera's token key
    // sealed under SoftHSMv2's (`legacy_key`). A role's first login replaces its legacy wrap with
    // a Tessera wrap; the last one removes `legacy_key`. `legacy_public`: the highest object id
    // of the public objects shown while the token waits (replaced by the migration's).
    "ALTER TABLE token ADD COLUMN so_legacy BLOB;
     ALTER TABLE token ADD COLUMN user_legacy BLOB;
     ALTER TABLE token ADD COLUMN legacy_key BLOB;
     ALTER TABLE token ADD COLUMN legacy_source TEXT;
     ALTER TABLE token ADD COLUMN legacy_state INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE token ADD COLUMN legacy_public INTEGER NOT NULL DEFAULT 0;",
];

/// `legacy_state` of a token taken over from SoftHSMv2 that waits for its first login.
pub const LEGACY_PENDING: i64 = 1;
/// `legacy_state` of a token migrated from SoftHSMv2 at a login.
pub const LEGACY_MIGRATED: i64 = 2;

/// The window over which failed PIN attempts are also limited (to `pin.max_failures`, as the
/// consecutive ones are): a successful login takes back the consecutive count, which would let
/// an attacker who guesses between the real user's logins try without end; the failures of any
/// 60 seconds (a sliding window: the time of each is kept) are bounded all the same (the
/// security policy's one-minute probability).
pub const FAILURE_WINDOW_SECS: i64 = 60;

/// The failure times of the last [`FAILURE_WINDOW_SECS`] in a `{role}_recent` value, oldest first
/// (a time ahead of the clock, set back since, still counts).
fn recent_failures(v: Option<Vec<u8>>, now: i64) -> Vec<i64> {
    v.unwrap_or_default()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
        .filter(|t| *t > now - FAILURE_WINDOW_SECS)
        .collect()
}

fn encode_failures(times: &[i64]) -> Vec<u8> {
    times.iter().flat_map(|t| t.to_le_bytes()).collect()
}

/// Checkpoints the write-ahead log into the database and truncates it, so that what a delete or
/// an update freed (zeroed by `secure_delete`) leaves the log too. A reader in another process
/// holding an older snapshot makes SQLite answer "busy" and keep the log: tried again for up to
/// about 100 ms, then left to the next checkpoint with a warning (the call itself succeeded).
fn checkpoint_truncate(conn: &Connection) -> Result<()> {
    for _ in 0..20 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    tracing::warn!("another process's read keeps old pages in the write-ahead log until its next checkpoint");
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Directory, inside a token's directory, of the end of the last block of GCM counter values
/// reserved for each key material: one file per IV space, named by its name in hexadecimal,
/// holding 8 bytes, little-endian (see [`Db::reserve_iv_block`]).
pub const IV_RESERVED_DIR: &str = "iv-reserved";

/// The token's own row.
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub uid: Vec<u8>,
    pub serial: String,
    pub label: String,
    pub slot_id: u64,
    pub so: Option<PinWrap>,
    pub user: Option<PinWrap>,
    pub so_failures: u32,
    /// `u32::MAX` while the user PIN is blocked (see [`TokenRow::user_blocked`]), so that the token
    /// information shows it locked.
    pub user_failures: u32,
    /// Re-initialisations so far.
    pub epoch: i64,
    /// The user PIN is blocked until the SO sets it again (`C_InitPIN`): set when the store was
    /// found rolled back (see [`PinState`]).
    pub user_blocked: bool,
    /// Every object of the token is authenticated (format 1): a row of format 0 is then refused.
    /// Set on new tokens, and on older ones once their rows were re-sealed at a login.
    pub objects_authenticated: bool,
    /// SoftHSMv2's wraps of its token key, per role not yet converted (see migration 8).
    pub so_legacy: Option<Vec<u8>>,
    pub user_legacy: Option<Vec<u8>>,
    /// Tessera's token key sealed under SoftHSMv2's, while a legacy wrap is left.
    pub legacy_key: Option<Vec<u8>>,
    /// The SoftHSMv2 token directory the token comes from.
    pub legacy_source: Option<String>,
    /// 0, [`LEGACY_PENDING`] or [`LEGACY_MIGRATED`].
    pub legacy_state: i64,
}

impl TokenRow {
    /// The row of a token just initialised: only the SO PIN set, no failures, every object (of
    /// none yet) authenticated.
    pub fn initialised(uid: Vec<u8>, serial: String, label: String, slot_id: u64, so: PinWrap) -> TokenRow {
        TokenRow {
            uid,
            serial,
            label,
            slot_id,
            so: Some(so),
            user: None,
            so_failures: 0,
            user_failures: 0,
            epoch: 0,
            user_blocked: false,
            objects_authenticated: true,
            so_legacy: None,
            user_legacy: None,
            legacy_key: None,
            legacy_source: None,
            legacy_state: 0,
        }
    }

    /// The row of a SoftHSMv2 token waiting for its first login: no Tessera PIN wrap yet,
    /// SoftHSMv2's PIN blobs, and where it comes from.
    pub fn pending(
        uid: Vec<u8>,
        serial: String,
        label: String,
        slot_id: u64,
        so_blob: Option<Vec<u8>>,
        user_blob: Option<Vec<u8>>,
        source: String,
    ) -> TokenRow {
        TokenRow {
            uid,
            serial,
            label,
            slot_id,
            so: None,
            user: None,
            so_failures: 0,
            user_failures: 0,
            epoch: 0,
            user_blocked: false,
            objects_authenticated: true,
            so_legacy: so_blob,
            user_legacy: user_blob,
            legacy_key: None,
            legacy_source: Some(source),
            legacy_state: LEGACY_PENDING,
        }
    }

    /// Whether a role has a PIN: a Tessera wrap or a SoftHSMv2 one.
    pub fn has_pin(&self, role: Role) -> bool {
        match role {
            Role::So => self.so.is_some() || self.so_legacy.is_some(),
            Role::User => self.user.is_some() || self.user_legacy.is_some(),
        }
    }

    /// Whether the token key is still reachable through a SoftHSMv2 wrap (a token taken over
    /// from SoftHSMv2 whose PINs have not all logged in since): the non-approved mode's only.
    pub fn has_legacy(&self) -> bool {
        self.legacy_state == LEGACY_PENDING
            || self.so_legacy.is_some()
            || self.user_legacy.is_some()
            || self.legacy_key.is_some()
    }
}

/// One stored object: `attrs` is plain for public objects and sealed for private ones; `secret`
/// (key material) is always sealed under the token key.
#[derive(Clone, Debug)]
pub struct ObjectRow {
    pub id: i64,
    pub uid: Vec<u8>,
    pub private: bool,
    pub rev: i64,
    pub attrs: Vec<u8>,
    pub secret: Option<Vec<u8>>,
    /// 0: written before objects were authenticated; 1: sealed parts bound to the whole row, and
    /// `tag` set on rows with no sealed part when written with the token key (see `token.rs`).
    pub format: i64,
    pub tag: Option<Vec<u8>>,
}

/// An object row as the token writes it.
pub struct NewRow<'a> {
    pub private: bool,
    pub attrs: &'a [u8],
    pub secret: Option<&'a [u8]>,
    pub tag: Option<&'a [u8]>,
}

/// Which PIN a row field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    So,
    User,
}

impl Role {
    fn col(self) -> &'static str {
        match self {
            Role::So => "so",
            Role::User => "user",
        }
    }

    /// The other PIN's role.
    fn other(self) -> Role {
        match self {
            Role::So => Role::User,
            Role::User => Role::So,
        }
    }
}

/// File name of a token's change counter inside its directory.
pub const CHANGES_FILE: &str = "changes";

/// File name of a token's PIN state inside its directory (see [`PinState`]).
pub const PIN_STATE_FILE: &str = "pin-state";

/// Mode of a token directory: its owner alone may list or enter it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in a token directory: its owner alone may read or write it.
pub const FILE_MODE: u32 = 0o600;

/// The files a token directory holds (SQLite makes the `-wal` and `-shm` files itself, with the
/// mode of the database file).
fn token_files(dir: &Path) -> [PathBuf; 5] {
    [
        dir.join(DB_FILE),
        dir.join(format!("{DB_FILE}-wal")),
        dir.join(format!("{DB_FILE}-shm")),
        dir.join(CHANGES_FILE),
        dir.join(PIN_STATE_FILE),
    ]
}

/// Gives `path` exactly `mode` (whatever the process's umask made of it), unless it is missing or
/// a symbolic link, which is left alone. A failure (a store owned by another user) is logged: the
/// store stays usable as it is.
fn set_mode(path: &Path, mode: u32) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            tracing::warn!("token store: {} is a symbolic link; its mode is left alone", path.display())
        }
        Ok(m) if m.permissions().mode() & 0o7777 != mode => {
            if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
                tracing::warn!("token store: cannot set the mode of {} to {mode:o}: {e}", path.display());
            }
        }
        _ => {}
    }
}

/// Brings a token directory and its files to the owner-only modes ([`DIR_MODE`], [`FILE_MODE`]):
/// a store made by an older build (0755 and 0644) is tightened when it is opened.
pub fn tighten(dir: &Path) {
    set_mode(dir, DIR_MODE);
    for f in token_files(dir) {
        set_mode(&f, FILE_MODE);
    }
    // The GCM counter reservations (see [`Db::reserve_iv_block`]).
    let reserved = dir.join(IV_RESERVED_DIR);
    if reserved.is_dir() {
        set_mode(&reserved, DIR_MODE);
        for e in std::fs::read_dir(&reserved).into_iter().flatten().flatten() {
            set_mode(&e.path(), FILE_MODE);
        }
    }
}

/// Opens (creating when missing, with [`FILE_MODE`]) a file of a token directory for reading and
/// writing.
fn open_token_file(path: &Path) -> std::io::Result<std::fs::File> {
    let f =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(FILE_MODE).open(path)?;
    if f.metadata()?.permissions().mode() & 0o7777 != FILE_MODE {
        // A file of another user's store (shared through its group) keeps its mode.
        if let Err(e) = f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE)) {
            tracing::warn!("token store: cannot set the mode of {} to {FILE_MODE:o}: {e}", path.display());
        }
    }
    Ok(f)
}

/// A token's PIN failure counters as of its last PIN transaction, with that transaction's
/// sequence number, kept in a file beside the database (`pin-state`) as well as in it.
///
/// Every transaction that counts a PIN attempt, resets a counter or replaces a PIN wrap moves the
/// sequence number in the token row and, once committed, in this file: under an exclusive
/// `flock`, and only ever forwards, so that processes finishing in any order leave the highest.
/// A database whose sequence number is behind the file's, or that has one but no readable file,
/// has been restored from an older copy: the counters become the higher of both and the user PIN
/// is blocked until the SO sets it again (`C_InitPIN`). A database ahead of the file is a process
/// that died between its commit and the file, and is accepted: the attempt it counted ran no
/// derivation (that comes after the file). Whoever replaces the file as well (every file of the
/// token directory at once) is not detected: nothing in the directory can tell.
///
/// 48 bytes: sequence number, SO failures, user failures, user blocked (little-endian u64 each),
/// then the first 16 bytes of SHA-256 of those 32, so that a damaged file reads as absent.
/// Written by hand: no crate keeps a monotonic counter file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinState {
    pub seq: u64,
    pub so_failures: u64,
    pub user_failures: u64,
    pub user_blocked: bool,
}

impl PinState {
    const LEN: usize = 48;

    fn encode(&self) -> [u8; PinState::LEN] {
        let mut b = [0u8; PinState::LEN];
        for (i, v) in [self.seq, self.so_failures, self.user_failures, self.user_blocked as u64].iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &b[..32]);
        b[32..].copy_from_slice(&d.as_ref()[..16]);
        b
    }

    fn decode(f: &std::fs::File) -> Option<PinState> {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; PinState::LEN];
        f.read_exact_at(&mut b, 0).ok()?;
        let u = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let s = PinState { seq: u(0), so_failures: u(1), user_failures: u(2), user_blocked: u(3) != 0 };
        (s.encode() == b).then_some(s)
    }

    /// The state recorded in `dir`: `Ok(None)` if the file is missing, short or damaged.
    pub fn read(dir: &Path) -> Result<Option<PinState>> {
        use nix::fcntl::{Flock, FlockArg};
        let f = match std::fs::File::open(dir.join(PIN_STATE_FILE)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let f = Flock::lock(f, FlockArg::LockShared).map_err(|(_, e)| std::io::Error::from(e))?;
        Ok(PinState::decode(&f))
    }

    /// Records this state unless the file already holds a later one.
    fn record(&self, dir: &Path) -> Result<()> {
        use nix::fcntl::{Flock, FlockArg};
        use std::os::unix::fs::FileExt;
        let f = open_token_file(&dir.join(PIN_STATE_FILE))?;
        let f = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))?;
        if PinState::decode(&f).is_none_or(|now| now.seq < self.seq) {
            f.write_all_at(&self.encode(), 0)?;
        }
        Ok(())
    }
}

/// What a PIN transaction records in the `pin-state` file once it has committed.
type PinRecord = std::cell::Cell<Option<PinState>>;

/// Moves a token's PIN state on (the caller's transaction has changed it): the row's sequence
/// number now, the file after the commit (`rec`).
/// Takes the latest of the failures the role column `c` keeps for the last minute back: the
/// attempt counted last had the right PIN (the earlier failures stay).
fn take_back_recent_failure(tx: &rusqlite::Transaction<'_>, c: &str) -> Result<()> {
    let read = format!("SELECT {c}_recent FROM token WHERE id = 1");
    let mut recent = recent_failures(tx.query_row(&read, [], |r| r.get(0))?, unix_now());
    recent.pop();
    tx.execute(&format!("UPDATE token SET {c}_recent = ?1 WHERE id = 1"), params![encode_failures(&recent)])?;
    Ok(())
}

fn bump_pin_state(tx: &rusqlite::Transaction<'_>, rec: &PinRecord) -> Result<()> {
    let s = tx.query_row(
        "UPDATE token SET pin_seq = pin_seq + 1 WHERE id = 1
         RETURNING pin_seq, so_failures, user_failures, user_blocked",
        [],
        |r| {
            Ok(PinState {
                seq: r.get::<_, i64>(0)?.max(0) as u64,
                so_failures: r.get::<_, i64>(1)?.max(0) as u64,
                user_failures: r.get::<_, i64>(2)?.max(0) as u64,
                user_blocked: r.get(3)?,
            })
        },
    )?;
    rec.set(Some(s));
    Ok(())
}

/// Compares the token row's PIN state with the file's (see [`PinState`]); a database found
/// rolled back takes the file's higher counters and blocks the user PIN. Inside the caller's
/// transaction.
fn reconcile_pin_state(tx: &rusqlite::Transaction<'_>, dir: &Path, rec: &PinRecord) -> Result<()> {
    let seq: i64 = tx.query_row("SELECT pin_seq FROM token WHERE id = 1", [], |r| r.get(0))?;
    let rolled_back = match PinState::read(dir)? {
        Some(f) if f.seq > seq.max(0) as u64 => Some(f),
        Some(_) => None,
        // A store from before the file existed (it is made when such a store is opened).
        None if seq == 0 => None,
        None => Some(PinState::default()),
    };
    if let Some(f) = rolled_back {
        tracing::error!(
            "token store {}: the database's PIN state ({seq}) is behind its record ({}): it was restored \
             from an older copy. The user PIN is blocked until the SO sets it (C_InitPIN)",
            dir.display(),
            if f.seq == 0 { "missing or damaged".to_string() } else { f.seq.to_string() }
        );
        let clamp = |v: u64| v.min(u32::MAX as u64) as i64;
        tx.execute(
            "UPDATE token SET so_failures = max(so_failures, ?1), user_failures = max(user_failures, ?2),
                    user_blocked = 1, pin_seq = max(pin_seq, ?3) WHERE id = 1",
            params![clamp(f.so_failures), clamp(f.user_failures), f.seq.min(i64::MAX as u64 - 1) as i64],
        )?;
        bump_pin_state(tx, rec)?;
    }
    Ok(())
}

/// How a PIN attempt starts (see [`Db::begin_attempt`]).
#[derive(Debug)]
pub enum Attempt {
    /// The PIN is not set.
    NoPin,
    /// Too many consecutive failures, or the user PIN is blocked: no derivation may run.
    Locked,
    /// `pin.max_failures` failures within the last [`FAILURE_WINDOW_SECS`]: no derivation may run
    /// until the window is over (a lock that lifts by itself).
    Throttled,
    /// The stored PBKDF2 iteration count is below the minimum: the store is damaged or tampered with.
    BadIterations(u32),
    /// The attempt is counted as a failure until [`Db::attempt_succeeded`] takes it back; `count`
    /// is the counter with it.
    Counted { wrap: PinWrap, count: u32 },
    /// The same, for a role that has only SoftHSMv2's wrap (a token taken over from SoftHSMv2):
    /// `blob` that wrap, `bridge` Tessera's token key sealed under SoftHSMv2's (`None` while the
    /// token waits for its first login), `source` the SoftHSMv2 token directory.
    Legacy { blob: Vec<u8>, bridge: Option<Vec<u8>>, pending: bool, source: Option<String>, count: u32 },
}

/// A token's change counter file: two little-endian u64, the number of the last write that began
/// and of the last write that ended. Every write of every process moves them (see [`Db::write`]):
/// `begun` to one past both while it holds SQLite's write lock and before it commits, `ended` to
/// the same value after. So while `begun == ended` equals what a reader saw before its last sync,
/// no transaction can have committed since. A process that dies in between leaves them unequal,
/// which only sends readers to SQLite until the next write evens them; a torn or unreadable file
/// does the same. The file is an accelerator, never the record: the database is.
///
/// Written by hand with positioned reads and writes (`pread`/`pwrite`): no crate offers a
/// cross-process counter without `unsafe` shared memory, and these calls take no lock.
pub struct Changes {
    file: std::fs::File,
    path: PathBuf,
    /// Tells threads' own descriptors of this file (see [`Changes::read`]) from those of a
    /// counter that has since been closed.
    alive: Arc<()>,
}

thread_local! {
    /// Each thread's own descriptors of the change counters it reads. Threads that share one
    /// descriptor share its kernel reference count, and every `pread` moves it: with two threads
    /// reading at once that cache line bounces between cores on each read.
    static OWN_FILES: std::cell::RefCell<Vec<(std::sync::Weak<()>, std::fs::File)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Changes {
    /// Opens (creating when missing) the counter of the token in `dir`; `None` when the file cannot
    /// be opened, e.g. in a read-only directory: readers then always ask SQLite.
    pub fn open(dir: &Path) -> Option<Changes> {
        let file = open_token_file(&dir.join(CHANGES_FILE));
        match file {
            Ok(file) => Some(Changes { file, path: dir.join(CHANGES_FILE), alive: Arc::new(()) }),
            Err(e) => {
                tracing::warn!("token store {}: no change counter ({e}); every access asks SQLite", dir.display());
                None
            }
        }
    }

    /// (begun, ended); `None` if the file cannot be read whole (new, or damaged).
    pub fn read(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let mut b = [0u8; 16];
        let own = OWN_FILES.try_with(|own| {
            let mut own = own.try_borrow_mut().ok()?;
            // Compared by address: taking a weak reference would write the shared count.
            let me = Arc::as_ptr(&self.alive);
            if let Some((_, f)) = own.iter().find(|(a, _)| std::ptr::eq(a.as_ptr(), me)) {
                return Some(f.read_exact_at(&mut b, 0).is_ok());
            }
            // Descriptors of counters closed since are dropped here, so a thread keeps at most
            // one per open token.
            own.retain(|(a, _)| a.strong_count() > 0);
            let f = std::fs::File::open(&self.path).ok()?;
            // Only the very file this counter has open (the directory may have been replaced).
            let same = |m: std::fs::Metadata, n: std::fs::Metadata| m.dev() == n.dev() && m.ino() == n.ino();
            if !same(f.metadata().ok()?, self.file.metadata().ok()?) {
                return None;
            }
            let ok = f.read_exact_at(&mut b, 0).is_ok();
            own.push((Arc::downgrade(&self.alive), f));
            Some(ok)
        });
        match own {
            Ok(Some(ok)) => ok.then_some(())?,
            // No thread-local storage (thread exiting) or the file cannot be opened again.
            _ => self.file.read_exact_at(&mut b, 0).ok()?,
        }
        let (x, y) = b.split_at(8);
        Some((u64::from_le_bytes(x.try_into().ok()?), u64::from_le_bytes(y.try_into().ok()?)))
    }

    /// A write begins (the caller holds SQLite's write lock): `begun` moves past both values.
    fn begin(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let (b, e) = self.read().unwrap_or((0, 0));
        let n = b.max(e) + 1;
        // Both values, so that a new (empty) file becomes whole.
        let mut both = [0u8; 16];
        both[..8].copy_from_slice(&n.to_le_bytes());
        both[8..].copy_from_slice(&e.to_le_bytes());
        self.file.write_all_at(&both, 0).ok()?;
        Some(n)
    }

    /// Write `n` ended (committed or rolled back). Left alone if a later write has begun since:
    /// its own end will even the counter.
    fn end(&self, n: u64) {
        use std::os::unix::fs::FileExt;
        if self.read().is_some_and(|(b, _)| b == n) {
            let _ = self.file.write_all_at(&n.to_le_bytes(), 8);
        }
    }
}

/// An open token database.
pub struct Db {
    conn: Connection,
    changes: Option<Changes>,
    pub dir: PathBuf,
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a committed transaction survives the death of the process; only a power
    // loss can roll back the newest commits, and never corrupts the database.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // What a delete or an update frees is overwritten with zeros, so that a destroyed key's
    // sealed parts do not stay in free pages of the database.
    conn.pragma_update(None, "secure_delete", "ON")?;
    // Closing the last connection would otherwise checkpoint the WAL into the database on every
    // C_Finalize; SQLite's automatic checkpoints during writes keep the WAL bounded instead.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(())
}

/// Brings the schema up to date (`migrations`: [`MIGRATIONS`], or a test's); true if it changed
/// anything. One transaction: a migration that fails leaves the schema as it was.
fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<bool> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == migrations.len() as i64 {
        return Ok(false);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > migrations.len() {
        return Err(crate::error::Error::because(
            cryptoki_sys::CKR_DEVICE_ERROR,
            format_args!("token store schema {version} is newer than this module knows ({})", migrations.len()),
        ));
    }
    for m in &migrations[version..] {
        tx.execute_batch(m)?;
    }
    tx.pragma_update(None, "user_version", migrations.len() as i64)?;
    tx.commit()?;
    Ok(true)
}

/// Upgrades the store in `dir`, opened as `conn`, to the schema of `migrations`, keeping a copy
/// of the database as it was (`tessera.db.schema-<N>.<pid>.bak`, owner-only) while it does: a
/// migration that fails is rolled back by its transaction; one that commits but leaves a store
/// that fails its check (SQLite's `quick_check`, the token row) is undone by putting the copy
/// back. The copy is removed once the upgraded store passes: it holds the PIN wraps of its time,
/// which a later `C_SetPIN` must not leave behind. A store of schema 0 (being created) has
/// nothing to keep.
fn upgrade(mut conn: Connection, dir: &Path, migrations: &[&str]) -> Result<(Connection, bool)> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == migrations.len() as i64 || version == 0 {
        let changed = migrate(&mut conn, migrations)?;
        return Ok((conn, changed));
    }
    checkpoint_truncate(&conn)?;
    let backup = dir.join(format!("{DB_FILE}.schema-{version}.{}.bak", std::process::id()));
    let _ = std::fs::remove_file(&backup);
    // Made owner-only and empty here: SQLite writes the copy into it.
    open_token_file(&backup)?;
    conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])?;
    std::fs::File::open(&backup).and_then(|f| f.sync_all())?;
    let changed = match migrate(&mut conn, migrations) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&backup);
            return Err(e);
        }
    };
    let passes = || -> Result<bool> {
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        let token: i64 = conn.query_row("SELECT count(*) FROM token WHERE id = 1", [], |r| r.get(0))?;
        let now: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        Ok(check == "ok" && token == 1 && now == migrations.len() as i64)
    };
    if passes().unwrap_or(false) {
        let _ = std::fs::remove_file(&backup);
        return Ok((conn, changed));
    }
    // Undone in place: the copy is written back into the database through SQLite's backup API,
    // as one write transaction of this connection (it holds the write lock from its first page to
    // its last). Other processes that have the store open (one of an older library, one waiting
    // to upgrade it too) see the store go back as they see any commit. Renaming the copy over
    // the database and deleting the write-ahead log, as this once did, left them on the unlinked
    // upgraded file, writing commits into a log no later process reads.
    if let Err(e) = restore(&mut conn, &backup) {
        tracing::error!(
            "token store {}: the upgrade from schema {version} failed its check, and putting back the copy {} failed              too ({}); the copy is kept",
            dir.display(),
            backup.display(),
            crate::record::described(e)
        );
        return Err(crate::error::Error(cryptoki_sys::CKR_DEVICE_ERROR));
    }
    let _ = std::fs::remove_file(&backup);
    // The upgraded pages leave the write-ahead log.
    checkpoint_truncate(&conn)?;
    Err(crate::error::Error::because(
        cryptoki_sys::CKR_DEVICE_ERROR,
        format_args!(
            "token store {}: the upgrade from schema {version} failed its check; the store is back at schema {version}",
            dir.display()
        ),
    ))
}

/// Writes the database copy `from` back into `conn`'s database, whole, in one step of SQLite's
/// backup API (the destination's busy timeout waits for other writers).
fn restore(conn: &mut Connection, from: &Path) -> Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let src = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let b = Backup::new(&src, conn)?;
    for _ in 0..100 {
        match b.step(-1)? {
            StepResult::Done => return Ok(()),
            // Busy past the busy timeout, or a page the source changed: tried again.
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    Err(crate::error::Error::because(
        cryptoki_sys::CKR_DEVICE_ERROR,
        format_args!("the store stayed busy while its copy was put back"),
    ))
}

/// Removes the copies an upgrade keeps while it runs (`tessera.db.schema-<N>.<pid>.bak`, see
/// [`upgrade`]) that a process killed during an upgrade left behind: they hold the PIN wraps of
/// their time, which a later `C_SetPIN` must not leave readable. A copy whose process still runs
/// (an upgrade going on now) is left alone.
fn remove_stale_upgrade_copies(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!("{DB_FILE}.schema-");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".bak")) else { continue };
        let pid = rest.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
        let running = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !running {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::warn!("token store {}: removed {name}, left by an interrupted upgrade", dir.display())
                }
                Err(err) => tracing::error!("token store {}: cannot remove {name} ({err})", dir.display()),
            }
        }
    }
}

/// A stored PIN wrap; an iteration count out of range reads as 0 (and is refused as too low).
fn wrap_from(salt: Option<Vec<u8>>, it: Option<i64>, wrapped: Option<Vec<u8>>) -> Option<PinWrap> {
    Some(PinWrap { salt: salt?, iterations: u32::try_from(it?).unwrap_or(0), wrapped: wrapped? })
}

impl Db {
    /// Opens an existing token database.
    pub fn open(dir: &Path) -> Result<Db> {
        let path = dir.join(DB_FILE);
        tighten(dir);
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        configure(&conn)?;
        // The WAL and shared-memory files SQLite may just have made take the database file's mode.
        tighten(dir);
        let (conn, migrated) = upgrade(conn, dir, MIGRATIONS)?;
        remove_stale_upgrade_copies(dir);
        let changes = Changes::open(dir);
        let mut db = Db { conn, changes, dir: dir.to_path_buf() };
        // A store from before the PIN state was recorded gets its record now, before any PIN
        // transaction: from here on, a missing record means a tampered directory.
        if !dir.join(PIN_STATE_FILE).exists() {
            let seq: i64 = db.conn.query_row("SELECT pin_seq FROM token WHERE id = 1", [], |r| r.get(0))?;
            if seq == 0 {
                PinState::default().record(dir)?;
            }
        }
        // A migration is a write like any other, and a new counter file starts even.
        if migrated || db.changes.as_ref().is_some_and(|c| c.read().is_none()) {
            db.write(|_| Ok::<_, rusqlite::Error>(()))?;
        }
        Ok(db)
    }

    /// Runs `f` as one `BEGIN IMMEDIATE` transaction, the only way this store writes: the change
    /// counter moves around it, so every other process's readers see that something changed.
    fn write<T, E>(&mut self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> std::result::Result<T, E>) -> Result<T>
    where
        E: From<rusqlite::Error>,
        crate::error::Error: From<E>,
    {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = self.changes.as_ref().and_then(Changes::begin);
        let r = f(&tx).and_then(|v| tx.commit().map(|_| v).map_err(E::from));
        if let (Some(c), Some(n)) = (&self.changes, n) {
            c.end(n);
        }
        Ok(r?)
    }

    /// [`Db::write`] for the PIN state: the commit reaches the disk before it returns (synchronous
    /// FULL), so that a power loss does not leave the database behind its `pin-state` file, which
    /// is written then (see [`PinState`]).
    fn write_pin<T>(&mut self, f: impl FnOnce(&rusqlite::Transaction<'_>, &PinRecord) -> Result<T>) -> Result<T> {
        let rec = PinRecord::new(None);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let r = self.write(|tx| f(tx, &rec));
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let v = r?;
        if let Some(s) = rec.get() {
            s.record(&self.dir)?;
        }
        Ok(v)
    }

    /// Runs `f` as one `BEGIN IMMEDIATE` transaction of the store (other processes' writes wait
    /// for it): for read-modify-write changes of objects.
    pub fn transact<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.write(|tx| f(&Tx { tx }))
    }

    /// Creates a token database in a new directory, with its token row, in one transaction.
    /// The directory is written under a temporary name and renamed into place, so a crash
    /// never leaves a half-made token that other processes would try to open.
    pub fn create(tokendir: &Path, row: &TokenRow) -> Result<Db> {
        Db::create_with(tokendir, row, &[])
    }

    /// [`Db::create`] with objects in it from the start (`(uid, row)`), in the same transaction.
    pub fn create_with(tokendir: &Path, row: &TokenRow, objects: &[(Vec<u8>, NewRow<'_>)]) -> Result<Db> {
        std::fs::create_dir_all(tokendir)?;
        let tmp = tokendir.join(format!(".{}.new", row.serial));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::DirBuilder::new().mode(DIR_MODE).create(&tmp)?;
        set_mode(&tmp, DIR_MODE);
        // Made here with the owner-only mode, before SQLite opens it: SQLite gives its WAL and
        // shared-memory files the database file's mode.
        open_token_file(&tmp.join(DB_FILE))?;
        {
            let mut conn = Connection::open(tmp.join(DB_FILE))?;
            configure(&conn)?;
            migrate(&mut conn, MIGRATIONS)?;
            let so = row.so.as_ref();
            conn.execute(
                "INSERT INTO token (id, uid, serial, label, slot_id, so_salt, so_iterations, so_wrapped, object_format,
                                    so_legacy, user_legacy, legacy_source, legacy_state)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?10, ?11)",
                params![
                    row.uid,
                    row.serial,
                    row.label.as_bytes(),
                    row.slot_id as i64,
                    so.map(|w| w.salt.clone()),
                    so.map(|w| w.iterations as i64),
                    so.map(|w| w.wrapped.clone()),
                    row.so_legacy,
                    row.user_legacy,
                    row.legacy_source,
                    row.legacy_state
                ],
            )?;
            if !objects.is_empty() {
                let tx = conn.transaction()?;
                {
                    let mut st = tx.prepare(
                        "INSERT INTO object (uid, private, rev, attrs, secret, format, tag) VALUES (?1, ?2, 1, ?3, ?4, 1, ?5)",
                    )?;
                    for (uid, r) in objects {
                        st.execute(params![uid, r.private, r.attrs, r.secret, r.tag])?;
                    }
                }
                tx.execute(
                    "UPDATE token SET legacy_public = (SELECT COALESCE(MAX(id), 0) FROM object) WHERE id = 1",
                    [],
                )?;
                tx.commit()?;
            }
            checkpoint_truncate(&conn)?;
        }
        PinState::default().record(&tmp)?;
        let dir = tokendir.join(&row.serial);
        std::fs::rename(&tmp, &dir)?;
        Db::open(&dir)
    }

    /// Changes when another connection (another process) commits; not for this connection's own writes.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Reads the token row.
    pub fn token(&self) -> Result<TokenRow> {
        Ok(self.conn.query_row(
            "SELECT uid, serial, label, slot_id, so_salt, so_iterations, so_wrapped,
                    user_salt, user_iterations, user_wrapped, so_failures, user_failures, epoch, user_blocked,
                    object_format, so_legacy, user_legacy, legacy_key, legacy_source, legacy_state
             FROM token WHERE id = 1",
            [],
            |r| {
                Ok(TokenRow {
                    uid: r.get(0)?,
                    serial: r.get(1)?,
                    label: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(2)?).into_owned(),
                    slot_id: r.get::<_, i64>(3)? as u64,
                    so: wrap_from(r.get(4)?, r.get(5)?, r.get(6)?),
                    user: wrap_from(r.get(7)?, r.get(8)?, r.get(9)?),
                    so_failures: r.get::<_, i64>(10)?.clamp(0, u32::MAX as i64) as u32,
                    user_failures: if r.get(13)? {
                        u32::MAX
                    } else {
                        r.get::<_, i64>(11)?.clamp(0, u32::MAX as i64) as u32
                    },
                    epoch: r.get(12)?,
                    user_blocked: r.get(13)?,
                    objects_authenticated: r.get::<_, i64>(14)? >= 1,
                    so_legacy: r.get(15)?,
                    user_legacy: r.get(16)?,
                    legacy_key: r.get(17)?,
                    legacy_source: r.get(18)?,
                    legacy_state: r.get(19)?,
                })
            },
        )?)
    }

    /// Starts a PIN attempt, in one durable transaction under the store's write lock (so across
    /// threads and processes): checks the PIN state against its file ([`PinState`]), then, unless
    /// the PIN is locked, counts the attempt as a failure before any derivation runs. So at most
    /// `max_failures` derivations ever run for wrong PINs. `min_iterations` is the lowest PBKDF2
    /// iteration count accepted from the store.
    pub fn begin_attempt(&mut self, role: Role, max_failures: u32, min_iterations: u32) -> Result<Attempt> {
        let dir = self.dir.clone();
        let c = role.col();
        let read = format!(
            "SELECT {c}_salt, {c}_iterations, {c}_wrapped, {c}_failures, user_blocked, {c}_recent, {c}_legacy,
                    legacy_key, legacy_state, legacy_source FROM token WHERE id = 1"
        );
        let count = format!("UPDATE token SET {c}_failures = {c}_failures + 1, {c}_recent = ?1 WHERE id = 1");
        self.write_pin(|tx, rec| {
            reconcile_pin_state(tx, &dir, rec)?;
            let now = unix_now();
            #[allow(clippy::type_complexity)]
            let (wrap, failures, blocked, mut recent, legacy): (
                _,
                _,
                _,
                _,
                Option<(Vec<u8>, _, i64, Option<String>)>,
            ) = tx.query_row(&read, [], |r| {
                Ok((
                    wrap_from(r.get(0)?, r.get(1)?, r.get(2)?),
                    r.get::<_, i64>(3)?.max(0),
                    r.get::<_, bool>(4)?,
                    recent_failures(r.get(5)?, now),
                    r.get::<_, Option<Vec<u8>>>(6)?
                        .map(|b| (b, r.get(7), r.get(8), r.get(9)))
                        .map(|(b, k, s, src)| -> rusqlite::Result<_> { Ok((b, k?, s?, src?)) })
                        .transpose()?,
                ))
            })?;
            // A role with a Tessera wrap uses it; one with only SoftHSMv2's (a token taken over
            // from SoftHSMv2) is counted the same way.
            let legacy = if wrap.is_none() { legacy } else { None };
            if wrap.is_none() && legacy.is_none() {
                return Ok(Attempt::NoPin);
            }
            if (role == Role::User && blocked) || (max_failures > 0 && failures >= max_failures as i64) {
                return Ok(Attempt::Locked);
            }
            if max_failures > 0 && recent.len() >= max_failures as usize {
                return Ok(Attempt::Throttled);
            }
            if let Some(w) = wrap.as_ref().filter(|w| w.iterations < min_iterations) {
                return Ok(Attempt::BadIterations(w.iterations));
            }
            recent.push(now);
            tx.execute(&count, params![encode_failures(&recent)])?;
            bump_pin_state(tx, rec)?;
            let count = (failures + 1).min(u32::MAX as i64) as u32;
            Ok(match (wrap, legacy) {
                (Some(wrap), _) => Attempt::Counted { wrap, count },
                (None, Some((blob, bridge, state, source))) => {
                    Attempt::Legacy { blob, bridge, pending: state == LEGACY_PENDING, source, count }
                }
                (None, None) => Attempt::NoPin,
            })
        })
    }

    /// The attempt [`Db::begin_attempt`] counted with `count` had the right PIN: takes back that
    /// failure and those before it, leaving the ones counted since (attempts still running).
    pub fn attempt_succeeded(&mut self, role: Role, count: u32) -> Result<()> {
        // This attempt's time is taken back from the last minute's too (the latest one: the
        // earlier failures stay).
        let c = role.col();
        let sql = format!("UPDATE token SET {c}_failures = max(0, {c}_failures - ?1) WHERE id = 1");
        self.write_pin(|tx, rec| {
            tx.execute(&sql, params![count as i64])?;
            take_back_recent_failure(tx, c)?;
            bump_pin_state(tx, rec)
        })
    }

    /// The first login of a token taken over from SoftHSMv2 (see `migrate::dropin`), in one
    /// durable transaction: unless another process did it first (then `Ok(None)`, nothing
    /// written), the public objects shown while it waited are removed, its objects are inserted (rows sealed under the new token key), `check` reads
    /// them back within the transaction (an error rolls everything back), the role that logged in
    /// gets its Tessera wrap, the other keeps SoftHSMv2's (`other_legacy`, with `bridge`: the
    /// token key sealed under SoftHSMv2's), and the attempt `count`ed is taken back. A process
    /// killed at any point leaves the token waiting for its first login, or migrated whole.
    #[allow(clippy::too_many_arguments)]
    pub fn complete_legacy_migration(
        &mut self,
        role: Role,
        count: u32,
        wrap: &PinWrap,
        other_legacy: Option<&[u8]>,
        bridge: Option<&[u8]>,
        objects: &[(Vec<u8>, NewRow<'_>)],
        check: impl FnOnce(&Tx<'_>, &[i64]) -> Result<()>,
    ) -> Result<Option<Vec<i64>>> {
        let c = role.col();
        let o = role.other().col();
        let sql = format!(
            "UPDATE token SET {c}_salt = ?1, {c}_iterations = ?2, {c}_wrapped = ?3,
                    {c}_failures = max(0, {c}_failures - ?4), {c}_legacy = NULL, {o}_legacy = ?5,
                    legacy_key = ?6, legacy_state = {LEGACY_MIGRATED} WHERE id = 1"
        );
        let r = self.write_pin(|tx, rec| {
            let state: i64 = tx.query_row("SELECT legacy_state FROM token WHERE id = 1", [], |r| r.get(0))?;
            if state != LEGACY_PENDING {
                return Ok(None);
            }
            // The public objects shown while the token waited give way to the migration's (the
            // same objects, read again now); objects an application made since stay.
            tx.execute("DELETE FROM object WHERE id <= (SELECT legacy_public FROM token WHERE id = 1)", [])?;
            let mut ids = Vec::with_capacity(objects.len());
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO object (uid, private, rev, attrs, secret, format, tag) VALUES (?1, ?2, 1, ?3, ?4, 1, ?5)",
                )?;
                for (uid, row) in objects {
                    st.execute(params![uid, row.private, row.attrs, row.secret, row.tag])?;
                    ids.push(tx.last_insert_rowid());
                }
            }
            check(&Tx { tx }, &ids)?;
            tx.execute(
                &sql,
                params![wrap.salt, wrap.iterations as i64, wrap.wrapped, count as i64, other_legacy, bridge],
            )?;
            take_back_recent_failure(tx, c)?;
            bump_pin_state(tx, rec)?;
            Ok(Some(ids))
        })?;
        checkpoint_truncate(&self.conn)?;
        Ok(r)
    }

    /// The first login of a role that had only SoftHSMv2's wrap since the migration: its Tessera
    /// wrap replaces it, the attempt `count`ed is taken back, and Tessera's token key sealed under
    /// SoftHSMv2's goes with the last SoftHSMv2 wrap. False (nothing written) if the role's wrap
    /// was replaced meanwhile (another process's login, `C_InitPIN`).
    pub fn convert_legacy(&mut self, role: Role, count: u32, blob: &[u8], wrap: &PinWrap) -> Result<bool> {
        let c = role.col();
        let o = role.other().col();
        let sql = format!(
            "UPDATE token SET {c}_salt = ?1, {c}_iterations = ?2, {c}_wrapped = ?3,
                    {c}_failures = max(0, {c}_failures - ?4), {c}_legacy = NULL,
                    legacy_key = CASE WHEN {o}_legacy IS NULL THEN NULL ELSE legacy_key END
             WHERE id = 1 AND {c}_wrapped IS NULL AND {c}_legacy = ?5"
        );
        let done = self.write_pin(|tx, rec| {
            let n = tx.execute(&sql, params![wrap.salt, wrap.iterations as i64, wrap.wrapped, count as i64, blob])?;
            if n == 0 {
                return Ok(false);
            }
            take_back_recent_failure(tx, c)?;
            bump_pin_state(tx, rec)?;
            Ok(true)
        })?;
        // SoftHSMv2's wrap and the sealed key leave the write-ahead log too.
        checkpoint_truncate(&self.conn)?;
        Ok(done)
    }

    /// Replaces a PIN's wrap of the token key (or removes it) and resets its failure counter;
    /// a new user PIN lifts the block a rollback put on it.
    pub fn set_pin_wrap(&mut self, role: Role, w: Option<&PinWrap>) -> Result<()> {
        let c = role.col();
        let unblock = if role == Role::User { ", user_blocked = 0" } else { "" };
        let other = role.other().col();
        // A PIN set replaces the role's SoftHSMv2 wrap too, and Tessera's token key sealed under
        // SoftHSMv2's goes with the last of them.
        let sql = format!(
            "UPDATE token SET {c}_salt = ?1, {c}_iterations = ?2, {c}_wrapped = ?3, {c}_failures = 0,
                              {c}_recent = NULL{unblock}, {c}_legacy = NULL,
                              legacy_key = CASE WHEN {other}_legacy IS NULL THEN NULL ELSE legacy_key END
             WHERE id = 1 AND legacy_state != {LEGACY_PENDING}"
        );
        let p = params![w.map(|w| w.salt.clone()), w.map(|w| w.iterations as i64), w.map(|w| w.wrapped.clone())];
        self.write_pin(|tx, rec| {
            tx.execute(&sql, p)?;
            bump_pin_state(tx, rec)
        })?;
        // The old wrap (the token key under the old PIN) leaves the write-ahead log too.
        checkpoint_truncate(&self.conn)?;
        Ok(())
    }

    /// Re-initialises the token: new label, a new SO wrap of a new token key, no user PIN, no objects.
    pub fn reinit(&mut self, label: &str, so: &PinWrap) -> Result<()> {
        self.write_pin(|tx, rec| {
            tx.execute("DELETE FROM object", [])?;
            tx.execute(
                "UPDATE token SET label = ?1, so_salt = ?2, so_iterations = ?3, so_wrapped = ?4, so_failures = 0,
                        user_salt = NULL, user_iterations = NULL, user_wrapped = NULL, user_failures = 0,
                        user_blocked = 0, so_recent = NULL, user_recent = NULL, epoch = epoch + 1,
                        so_legacy = NULL, user_legacy = NULL, legacy_key = NULL,
                        legacy_state = 0 WHERE id = 1",
                params![label.as_bytes(), so.salt, so.iterations as i64, so.wrapped],
            )?;
            bump_pin_state(tx, rec)
        })?;
        // The old objects and the old token key's wraps leave the write-ahead log too
        // (`secure_delete` zeroed them in the database).
        checkpoint_truncate(&self.conn)?;
        Ok(())
    }

    /// Every object's id and revision: what a reader compares with its cache.
    pub fn object_revs(&self) -> Result<Vec<(i64, i64)>> {
        let mut st = self.conn.prepare_cached("SELECT id, rev FROM object")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Whether a login has objects to re-seal (see [`Tx::unsealed_objects`]), or the token has
    /// yet to record that every row is authenticated. Answered from an index: a login pays no scan.
    pub fn needs_reseal(&self) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT object_format < 1 OR EXISTS (SELECT 1 FROM object
                 WHERE format = 0 OR (NOT private AND secret IS NULL AND tag IS NULL))
             FROM token WHERE id = 1",
            [],
            |r| r.get(0),
        )?)
    }

    /// Reads one object.
    pub fn object(&self, id: i64) -> Result<Option<ObjectRow>> {
        read_object(&self.conn, id)
    }

    /// Inserts an object; returns its id. The revision of a new object is 1.
    pub fn insert_object(&mut self, uid: &[u8], row: &NewRow<'_>) -> Result<i64> {
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO object (uid, private, rev, attrs, secret, format, tag) VALUES (?1, ?2, 1, ?3, ?4, 1, ?5)",
            )?;
            st.execute(params![uid, row.private, row.attrs, row.secret, row.tag])?;
            Ok::<_, rusqlite::Error>(tx.last_insert_rowid())
        })
    }

    /// Reserves `n` consecutive values of a GCM invocation counter for this process and returns
    /// the first; `kid` names the key material's IV space (see `Token::next_iv_counter`), `skip`
    /// values are left unused before the block.
    ///
    /// The block starts above every value the key material's row, the rows of the unique IDs
    /// counted before (`iv_counter`) and the key material's file in `iv-reserved/` beside the
    /// database have seen, so no value is handed out twice for this token: not to a copy of the
    /// key, nor after the database is restored from an older copy (the file stays ahead of it).
    /// Both are written before the values are used, the file flushed to disk within the
    /// transaction; a crash at any point leaves values unused, never used twice.
    pub fn reserve_iv_block(&mut self, kid: &[u8], n: u64, skip: u64) -> Result<u64> {
        use std::os::unix::fs::FileExt;
        let token_dir = self.dir.clone();
        let dir = token_dir.join(IV_RESERVED_DIR);
        let path = dir.join(kid.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let failed = |e: std::io::Error| {
            tracing::error!("token store {}: {e}", path.display());
            rusqlite::Error::ToSqlConversionFailure(Box::new(e))
        };
        let start = self.write(|tx| {
            let own: i64 =
                tx.query_row("SELECT next FROM iv_space WHERE kid = ?1", [kid], |r| r.get(0)).optional()?.unwrap_or(0);
            let before: i64 = tx.query_row("SELECT COALESCE(MAX(next), 0) FROM iv_counter", [], |r| r.get(0))?;
            let open = || std::fs::OpenOptions::new().read(true).write(true).open(&path);
            let file = match open() {
                Ok(f) => f,
                // The first block of this key material: the new file's name is flushed too.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Owner-only, as every file of the token directory (see [`tighten`]).
                    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(&dir).map_err(failed)?;
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .mode(FILE_MODE)
                        .open(&path);
                    let f = f.map_err(failed)?;
                    std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(failed)?;
                    std::fs::File::open(&token_dir).and_then(|d| d.sync_all()).map_err(failed)?;
                    f
                }
                Err(e) => return Err(failed(e)),
            };
            let mut b = [0u8; 8];
            let reserved = match file.read_exact_at(&mut b, 0) {
                Ok(()) => u64::from_le_bytes(b),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(failed(e)),
            };
            let start = [own.max(0) as u64, before.max(0) as u64, reserved]
                .into_iter()
                .max()
                .unwrap_or(0)
                .checked_add(skip)
                .filter(|s| s.checked_add(n).is_some_and(|e| e <= i64::MAX as u64));
            let Some(start) = start else {
                return Err(failed(std::io::Error::other("the GCM invocation counter is exhausted")));
            };
            let end = start + n;
            tx.execute(
                "INSERT INTO iv_space (kid, next) VALUES (?1, ?2) ON CONFLICT (kid) DO UPDATE SET next = ?2",
                params![kid, end as i64],
            )?;
            file.write_all_at(&end.to_le_bytes(), 0).and_then(|_| file.sync_data()).map_err(failed)?;
            Ok(start)
        })?;
        Ok(start)
    }

    /// Deletes an object; false if it was already gone. A key (a row with sealed key material)
    /// leaves no copy in the token's files: the delete zeroes what it frees (`secure_delete`),
    /// and the write-ahead log, which still holds the pages as they were before, is checkpointed
    /// into the database and truncated. A reader of an older snapshot in another process is
    /// waited for (up to the busy timeout); reads are short transactions. Other objects are
    /// deleted without the checkpoint, which costs a sync of the database.
    pub fn delete_object(&mut self, id: i64) -> Result<bool> {
        let deleted: Option<bool> = self.write(|tx| {
            tx.prepare_cached("DELETE FROM object WHERE id = ?1 RETURNING secret IS NOT NULL")?
                .query_row([id], |r| r.get(0))
                .optional()
        })?;
        if deleted == Some(true) {
            checkpoint_truncate(&self.conn)?;
        }
        Ok(deleted.is_some())
    }
}

/// Objects of format 0, and public ones with neither a sealed part nor a tag.
fn unsealed_objects(conn: &Connection) -> Result<Vec<i64>> {
    let mut st = conn
        .prepare_cached("SELECT id FROM object WHERE format = 0 OR (NOT private AND secret IS NULL AND tag IS NULL)")?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

fn read_object(conn: &Connection, id: i64) -> Result<Option<ObjectRow>> {
    let mut st =
        conn.prepare_cached("SELECT id, uid, private, rev, attrs, secret, format, tag FROM object WHERE id = ?1")?;
    Ok(st
        .query_row([id], |r| {
            Ok(ObjectRow {
                id: r.get(0)?,
                uid: r.get(1)?,
                private: r.get(2)?,
                rev: r.get(3)?,
                attrs: r.get(4)?,
                secret: r.get(5)?,
                format: r.get(6)?,
                tag: r.get(7)?,
            })
        })
        .optional()?)
}

/// A store transaction in progress (see [`Db::transact`]).
pub struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl Tx<'_> {
    /// Reads one object as the transaction sees it.
    pub fn object(&self, id: i64) -> Result<Option<ObjectRow>> {
        read_object(self.tx, id)
    }

    /// The objects a login re-seals: those written before objects were authenticated (format 0)
    /// and public ones written without the token key (no sealed part and no tag).
    pub fn unsealed_objects(&self) -> Result<Vec<i64>> {
        unsealed_objects(self.tx)
    }

    /// The token's re-initialisation count as the transaction sees it.
    pub fn epoch(&self) -> Result<i64> {
        Ok(self.tx.query_row("SELECT epoch FROM token WHERE id = 1", [], |r| r.get(0))?)
    }

    /// Records that every object of the token is authenticated (see [`TokenRow::objects_authenticated`]).
    pub fn set_objects_authenticated(&self) -> Result<()> {
        self.tx.execute("UPDATE token SET object_format = 1 WHERE id = 1", [])?;
        Ok(())
    }

    /// Rewrites an object at revision `rev` (its current one plus one, which the caller sealed
    /// it with); false if it is gone.
    pub fn update_object(&self, id: i64, rev: i64, row: &NewRow<'_>) -> Result<bool> {
        let mut st = self.tx.prepare_cached(
            "UPDATE object SET private = ?2, attrs = ?3, secret = ?4, tag = ?5, format = 1, rev = ?6 WHERE id = ?1",
        )?;
        Ok(st.execute(params![id, row.private, row.attrs, row.secret, row.tag, rev])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TokenRow {
        let so = PinWrap { salt: vec![1], iterations: 600000, wrapped: vec![2] };
        TokenRow::initialised(vec![1; 16], "0123456789abcdef".into(), "t".into(), 7, so)
    }

    fn plain(attrs: &[u8]) -> NewRow<'_> {
        NewRow { private: false, attrs, secret: None, tag: None }
    }

    #[test]
    fn change_counter_read_through_each_threads_own_descriptor() {
        let d = tempfile::tempdir().unwrap();
        let writer = Changes::open(d.path()).unwrap();
        let reader = Changes::open(d.path()).unwrap();
        let n = writer.begin().unwrap();
        writer.end(n);
        // A thread sees each write at once through its own descriptor.
        let m = std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(reader.read(), Some((n, n)));
                let m = writer.begin().unwrap();
                assert_eq!(reader.read(), Some((m, n)));
                writer.end(m);
                assert_eq!(reader.read(), Some((m, m)));
                // One descriptor per counter this thread read: the writer reads before it writes.
                assert_eq!(OWN_FILES.with(|o| o.borrow().len()), 2);
                m
            })
            .join()
            .unwrap()
        });
        // This thread has read only through the writer so far.
        assert_eq!(OWN_FILES.with(|o| o.borrow().len()), 1);
        assert_eq!(reader.read(), Some((m, m)));
        assert_eq!(OWN_FILES.with(|o| o.borrow().len()), 2);
        // A counter closed and its directory replaced: the thread's descriptor of the old file
        // is never used for the new one, and is let go.
        drop(reader);
        std::fs::remove_file(d.path().join(CHANGES_FILE)).unwrap();
        let again = Changes::open(d.path()).unwrap();
        assert_eq!(again.read(), None, "a new, empty counter file");
        let k = again.begin().unwrap();
        again.end(k);
        assert_eq!(again.read(), Some((k, k)));
        // The writer's and the new counter's; the closed reader's is gone.
        assert_eq!(OWN_FILES.with(|o| o.borrow().len()), 2);
        // The writer's file is no longer the one its path names: a new thread reads it through
        // the writer's own descriptor, never through the new file.
        let old = writer.read();
        assert_ne!(old, Some((k, k)));
        std::thread::scope(|s| s.spawn(|| assert_eq!(writer.read(), old)).join().unwrap());
    }

    #[test]
    fn create_open_and_objects() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::create(d.path(), &row()).unwrap();
        let id = db.insert_object(b"u1", &plain(b"a")).unwrap();
        let row = NewRow { private: true, attrs: b"b", secret: Some(b"s"), tag: None };
        assert!(db.transact(|tx| tx.update_object(id, 2, &row)).unwrap());
        let other = Db::open(&d.path().join("0123456789abcdef")).unwrap();
        let v0 = other.data_version().unwrap();
        assert_eq!(other.object(id).unwrap().unwrap().attrs, b"b");
        db.insert_object(b"u2", &plain(b"c")).unwrap();
        assert_ne!(other.data_version().unwrap(), v0);
        assert_eq!(other.object_revs().unwrap().len(), 2);
        assert!(matches!(db.begin_attempt(Role::So, 3, 1).unwrap(), Attempt::Counted { count: 1, .. }));
        assert_eq!(other.token().unwrap().so_failures, 1);
        assert!(db.delete_object(id).unwrap());
        assert!(!db.delete_object(id).unwrap());
    }

    /// An upgrade copy left by a process that died is removed when the store is next opened; one
    /// whose process runs (an upgrade going on) is kept.
    #[test]
    fn stale_upgrade_copies_go_live_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let dir = schema_3_store(d.path());
        drop(Db::open(&dir).unwrap());
        // No process has pid 4194304 and above on Linux (PID_MAX_LIMIT).
        let stale = dir.join(format!("{DB_FILE}.schema-3.4194305.bak"));
        let live = dir.join(format!("{DB_FILE}.schema-3.{}.bak", std::process::id()));
        std::fs::write(&stale, b"old wraps").unwrap();
        std::fs::write(&live, b"in use").unwrap();
        drop(Db::open(&dir).unwrap());
        assert!(!stale.exists(), "the copy of a process that died is removed");
        assert!(live.exists(), "the copy of a running process is kept");
    }

    /// A store of schema 3 (the token row and objects of that time), written by hand.
    fn schema_3_store(d: &Path) -> PathBuf {
        let dir = d.join("0123456789abcdef");
        std::fs::create_dir(&dir).unwrap();
        let mut conn = Connection::open(dir.join(DB_FILE)).unwrap();
        migrate(&mut conn, &MIGRATIONS[..3]).unwrap();
        conn.execute(
            "INSERT INTO token (id, uid, serial, label, slot_id, so_salt, so_iterations, so_wrapped)
             VALUES (1, x'01', '0123456789abcdef', x'74', 7, x'01', 600000, x'02')",
            [],
        )
        .unwrap();
        conn.execute("INSERT INTO object (uid, private, rev, attrs) VALUES (x'75', 0, 1, x'00')", []).unwrap();
        dir
    }

    fn backups(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".bak"))
            .collect()
    }

    /// An older store upgrades on open, its objects kept; the copy made for the upgrade is gone
    /// once it passed.
    #[test]
    fn an_older_store_upgrades_and_drops_its_copy() {
        let d = tempfile::tempdir().unwrap();
        let dir = schema_3_store(d.path());
        let db = Db::open(&dir).unwrap();
        let v: i64 = db.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        assert_eq!(db.token().unwrap().serial, "0123456789abcdef");
        assert_eq!(db.object_revs().unwrap().len(), 1);
        assert!(backups(&dir).is_empty(), "{:?}", backups(&dir));
    }

    /// An upgrade that fails leaves the store as it was (its transaction), and one that commits a
    /// store failing its check is undone from the copy: schema, rows and no copy left.
    #[test]
    fn a_failed_upgrade_leaves_the_store_as_it_was() {
        let d = tempfile::tempdir().unwrap();
        let dir = schema_3_store(d.path());
        let version = |dir: &Path| -> i64 {
            Connection::open(dir.join(DB_FILE)).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
        };
        for broken in ["ALTER TABLE nothing ADD COLUMN x INTEGER", "DROP TABLE token"] {
            let steps = [MIGRATIONS[0], MIGRATIONS[1], MIGRATIONS[2], MIGRATIONS[3], broken];
            // Another process's connection, open on the store before, during and after the undo.
            let other = Connection::open(dir.join(DB_FILE)).unwrap();
            configure(&other).unwrap();
            let before: i64 = other.query_row("SELECT count(*) FROM object", [], |r| r.get(0)).unwrap();
            let conn = Connection::open(dir.join(DB_FILE)).unwrap();
            configure(&conn).unwrap();
            assert!(upgrade(conn, &dir, &steps).is_err(), "{broken}");
            assert_eq!(version(&dir), 3, "{broken}");
            // It sees the store as it was, writes to it, and its write is what the next opener reads.
            let v: i64 = other.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
            assert_eq!(v, 3, "{broken}: the other connection sees the store put back");
            let mode: String = other.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
            assert_eq!(mode, "wal", "{broken}");
            other.execute("UPDATE token SET label = ?1 WHERE id = 1", [b"after".to_vec()]).unwrap();
            drop(other);
            let label: Vec<u8> = Connection::open(dir.join(DB_FILE))
                .unwrap()
                .query_row("SELECT label FROM token WHERE id = 1", [], |r| r.get(0))
                .unwrap();
            assert_eq!(label, b"after", "{broken}: the other connection's write is in the store");
            let after: i64 = Connection::open(dir.join(DB_FILE))
                .unwrap()
                .query_row("SELECT count(*) FROM object", [], |r| r.get(0))
                .unwrap();
            assert_eq!(after, before, "{broken}");
            let conn = Connection::open(dir.join(DB_FILE)).unwrap();
            let n: i64 = conn.query_row("SELECT count(*) FROM token", [], |r| r.get(0)).unwrap();
            assert_eq!(n, 1, "{broken}");
            assert!(backups(&dir).is_empty(), "{broken}: {:?}", backups(&dir));
        }
        // And the store still upgrades with the real migrations.
        assert!(Db::open(&dir).is_ok());
    }

    #[test]
    fn pin_state_record_only_moves_forwards() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(PinState::read(d.path()).unwrap(), None);
        let at = |seq| PinState { seq, so_failures: 1, user_failures: seq, user_blocked: false };
        at(5).record(d.path()).unwrap();
        // A process that committed 4 but records after the one that committed 5.
        at(4).record(d.path()).unwrap();
        assert_eq!(PinState::read(d.path()).unwrap(), Some(at(5)));
        at(6).record(d.path()).unwrap();
        assert_eq!(PinState::read(d.path()).unwrap(), Some(at(6)));
        // Damaged: reads as absent.
        let mut b = std::fs::read(d.path().join(PIN_STATE_FILE)).unwrap();
        b[3] ^= 1;
        std::fs::write(d.path().join(PIN_STATE_FILE), &b).unwrap();
        assert_eq!(PinState::read(d.path()).unwrap(), None);
    }

    #[test]
    fn modes_owner_only_and_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let db = Db::create(d.path(), &row()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&db.dir), DIR_MODE);
        let present: Vec<_> = token_files(&db.dir).into_iter().filter(|f| f.exists()).collect();
        assert!(present.len() >= 2);
        for f in &present {
            assert_eq!(mode(f), FILE_MODE, "{}", f.display());
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(&db.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let again = Db::open(&db.dir).unwrap();
        assert_eq!(mode(&again.dir), DIR_MODE);
        for f in &present {
            assert_eq!(mode(f), FILE_MODE, "{}", f.display());
        }
    }

    #[test]
    fn pin_attempts_counted_first_and_rollback_detected() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::create(d.path(), &row()).unwrap();
        let dir = db.dir.clone();
        let w = PinWrap { salt: vec![1], iterations: 600000, wrapped: vec![3] };
        db.set_pin_wrap(Role::User, Some(&w)).unwrap();
        let _ = db.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
        let before_db = std::fs::read(dir.join(DB_FILE)).unwrap();
        for n in 1..=3 {
            assert!(
                matches!(db.begin_attempt(Role::User, 3, 1).unwrap(), Attempt::Counted { count, .. } if count == n)
            );
        }
        assert!(matches!(db.begin_attempt(Role::User, 3, 1).unwrap(), Attempt::Locked));
        assert!(matches!(db.begin_attempt(Role::So, 3, 700_000).unwrap(), Attempt::BadIterations(600000)));
        drop(db);
        // The database from before the failures, put back: the counters come from the file and
        // the user PIN is blocked.
        let _ = std::fs::remove_file(dir.join(format!("{DB_FILE}-wal")));
        let _ = std::fs::remove_file(dir.join(format!("{DB_FILE}-shm")));
        std::fs::write(dir.join(DB_FILE), &before_db).unwrap();
        let mut db = Db::open(&dir).unwrap();
        assert_eq!(db.token().unwrap().user_failures, 0);
        assert!(matches!(db.begin_attempt(Role::User, 0, 1).unwrap(), Attempt::Locked));
        let t = db.token().unwrap();
        assert!(t.user_blocked);
        assert_eq!(t.user_failures, u32::MAX);
        // A new user PIN lifts the block.
        db.set_pin_wrap(Role::User, Some(&w)).unwrap();
        assert!(matches!(db.begin_attempt(Role::User, 3, 1).unwrap(), Attempt::Counted { count: 1, .. }));
        db.attempt_succeeded(Role::User, 1).unwrap();
        assert_eq!(db.token().unwrap().user_failures, 0);
        // A missing record, once the database has one, is a rollback too.
        std::fs::remove_file(dir.join(PIN_STATE_FILE)).unwrap();
        assert!(matches!(db.begin_attempt(Role::User, 3, 1).unwrap(), Attempt::Locked));
    }
}
