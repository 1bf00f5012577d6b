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

pub mod seal;

use crate::error::Result;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use seal::PinWrap;
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
];

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
    pub user_failures: u32,
    /// Re-initialisations so far.
    pub epoch: i64,
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
}

/// File name of a token's change counter inside its directory.
pub const CHANGES_FILE: &str = "changes";

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
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(CHANGES_FILE));
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
    // Closing the last connection would otherwise checkpoint the WAL into the database on every
    // C_Finalize; SQLite's automatic checkpoints during writes keep the WAL bounded instead.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(())
}

/// Brings the schema up to date; true if it changed anything.
fn migrate(conn: &mut Connection) -> Result<bool> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == MIGRATIONS.len() as i64 {
        return Ok(false);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        tracing::error!("token store schema {version} is newer than this module knows ({})", MIGRATIONS.len());
        return Err(crate::error::err(cryptoki_sys::CKR_DEVICE_ERROR));
    }
    for m in &MIGRATIONS[version..] {
        tx.execute_batch(m)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(true)
}

fn wrap_from(salt: Option<Vec<u8>>, it: Option<i64>, wrapped: Option<Vec<u8>>) -> Option<PinWrap> {
    Some(PinWrap { salt: salt?, iterations: it? as u32, wrapped: wrapped? })
}

impl Db {
    /// Opens an existing token database.
    pub fn open(dir: &Path) -> Result<Db> {
        let path = dir.join(DB_FILE);
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        configure(&conn)?;
        let changes = Changes::open(dir);
        let mut db = Db { conn, changes, dir: dir.to_path_buf() };
        let migrated = migrate(&mut db.conn)?;
        // A migration is a write like any other, and a new counter file starts even.
        if migrated || db.changes.as_ref().is_some_and(|c| c.read().is_none()) {
            db.write(|_| Ok(()))?;
        }
        Ok(db)
    }

    /// Runs `f` as one `BEGIN IMMEDIATE` transaction, the only way this store writes: the change
    /// counter moves around it, so every other process's readers see that something changed.
    fn write<T>(&mut self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = self.changes.as_ref().and_then(Changes::begin);
        let r = f(&tx).and_then(|v| tx.commit().map(|_| v));
        if let (Some(c), Some(n)) = (&self.changes, n) {
            c.end(n);
        }
        Ok(r?)
    }

    /// Creates a token database in a new directory, with its token row, in one transaction.
    /// The directory is written under a temporary name and renamed into place, so a crash
    /// never leaves a half-made token that other processes would try to open.
    pub fn create(tokendir: &Path, row: &TokenRow) -> Result<Db> {
        std::fs::create_dir_all(tokendir)?;
        let tmp = tokendir.join(format!(".{}.new", row.serial));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp)?;
        {
            let mut conn = Connection::open(tmp.join(DB_FILE))?;
            configure(&conn)?;
            migrate(&mut conn)?;
            let so = row.so.as_ref();
            conn.execute(
                "INSERT INTO token (id, uid, serial, label, slot_id, so_salt, so_iterations, so_wrapped)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.uid,
                    row.serial,
                    row.label.as_bytes(),
                    row.slot_id as i64,
                    so.map(|w| w.salt.clone()),
                    so.map(|w| w.iterations as i64),
                    so.map(|w| w.wrapped.clone())
                ],
            )?;
            conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
        }
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
                    user_salt, user_iterations, user_wrapped, so_failures, user_failures, epoch FROM token WHERE id = 1",
            [],
            |r| {
                Ok(TokenRow {
                    uid: r.get(0)?,
                    serial: r.get(1)?,
                    label: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(2)?).into_owned(),
                    slot_id: r.get::<_, i64>(3)? as u64,
                    so: wrap_from(r.get(4)?, r.get(5)?, r.get(6)?),
                    user: wrap_from(r.get(7)?, r.get(8)?, r.get(9)?),
                    so_failures: r.get::<_, i64>(10)? as u32,
                    user_failures: r.get::<_, i64>(11)? as u32,
                    epoch: r.get(12)?,
                })
            },
        )?)
    }

    /// Records the consecutive-failure counter of a PIN.
    pub fn set_failures(&mut self, role: Role, n: u32) -> Result<()> {
        let sql = format!("UPDATE token SET {}_failures = ?1 WHERE id = 1", role.col());
        self.write(|tx| tx.execute(&sql, params![n as i64]).map(|_| ()))
    }

    /// Adds one to a PIN's failure counter atomically (several processes may fail at once) and
    /// returns the new count.
    pub fn add_failure(&mut self, role: Role) -> Result<u32> {
        let sql = format!("UPDATE token SET {0}_failures = {0}_failures + 1 WHERE id = 1", role.col());
        let read = format!("SELECT {}_failures FROM token", role.col());
        let n: i64 = self.write(|tx| {
            tx.execute(&sql, [])?;
            tx.query_row(&read, [], |r| r.get(0))
        })?;
        Ok(n as u32)
    }

    /// Replaces a PIN's wrap of the token key (or removes it) and resets its failure counter.
    pub fn set_pin_wrap(&mut self, role: Role, w: Option<&PinWrap>) -> Result<()> {
        let c = role.col();
        let sql = format!(
            "UPDATE token SET {c}_salt = ?1, {c}_iterations = ?2, {c}_wrapped = ?3, {c}_failures = 0 WHERE id = 1"
        );
        let p = params![w.map(|w| w.salt.clone()), w.map(|w| w.iterations as i64), w.map(|w| w.wrapped.clone())];
        self.write(|tx| tx.execute(&sql, p).map(|_| ()))
    }

    /// Re-initialises the token: new label, a new SO wrap of a new token key, no user PIN, no objects.
    pub fn reinit(&mut self, label: &str, so: &PinWrap) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM object", [])?;
            tx.execute(
                "UPDATE token SET label = ?1, so_salt = ?2, so_iterations = ?3, so_wrapped = ?4, so_failures = 0,
                        user_salt = NULL, user_iterations = NULL, user_wrapped = NULL, user_failures = 0,
                        epoch = epoch + 1 WHERE id = 1",
                params![label.as_bytes(), so.salt, so.iterations as i64, so.wrapped],
            )
            .map(|_| ())
        })
    }

    /// Every object's id and revision: what a reader compares with its cache.
    pub fn object_revs(&self) -> Result<Vec<(i64, i64)>> {
        let mut st = self.conn.prepare_cached("SELECT id, rev FROM object")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Reads one object.
    pub fn object(&self, id: i64) -> Result<Option<ObjectRow>> {
        let mut st =
            self.conn.prepare_cached("SELECT id, uid, private, rev, attrs, secret FROM object WHERE id = ?1")?;
        Ok(st
            .query_row([id], |r| {
                Ok(ObjectRow {
                    id: r.get(0)?,
                    uid: r.get(1)?,
                    private: r.get(2)?,
                    rev: r.get(3)?,
                    attrs: r.get(4)?,
                    secret: r.get(5)?,
                })
            })
            .optional()?)
    }

    /// Inserts an object; returns its id. The revision of a new object is 1.
    pub fn insert_object(&mut self, uid: &[u8], private: bool, attrs: &[u8], secret: Option<&[u8]>) -> Result<i64> {
        self.write(|tx| {
            let mut st =
                tx.prepare_cached("INSERT INTO object (uid, private, rev, attrs, secret) VALUES (?1, ?2, 1, ?3, ?4)")?;
            st.execute(params![uid, private, attrs, secret])?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Rewrites an object's attributes; returns the new revision, or `None` if it is gone.
    pub fn update_object(
        &mut self,
        id: i64,
        private: bool,
        attrs: &[u8],
        secret: Option<&[u8]>,
    ) -> Result<Option<i64>> {
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "UPDATE object SET private = ?2, attrs = ?3, secret = ?4, rev = rev + 1 WHERE id = ?1 RETURNING rev",
            )?;
            st.query_row(params![id, private, attrs, secret], |r| r.get(0)).optional()
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
                    std::fs::create_dir_all(&dir).map_err(failed)?;
                    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path);
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

    /// Deletes an object; false if it was already gone.
    pub fn delete_object(&mut self, id: i64) -> Result<bool> {
        self.write(|tx| Ok(tx.prepare_cached("DELETE FROM object WHERE id = ?1")?.execute([id])? > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TokenRow {
        TokenRow {
            uid: vec![1; 16],
            serial: "0123456789abcdef".into(),
            label: "t".into(),
            slot_id: 7,
            so: Some(PinWrap { salt: vec![1], iterations: 600000, wrapped: vec![2] }),
            user: None,
            so_failures: 0,
            user_failures: 0,
            epoch: 0,
        }
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
        let id = db.insert_object(b"u1", false, b"a", None).unwrap();
        assert_eq!(db.update_object(id, true, b"b", Some(b"s")).unwrap(), Some(2));
        let other = Db::open(&d.path().join("0123456789abcdef")).unwrap();
        let v0 = other.data_version().unwrap();
        assert_eq!(other.object(id).unwrap().unwrap().attrs, b"b");
        db.insert_object(b"u2", false, b"c", None).unwrap();
        assert_ne!(other.data_version().unwrap(), v0);
        assert_eq!(other.object_revs().unwrap().len(), 2);
        assert_eq!(db.add_failure(Role::User).unwrap(), 1);
        assert_eq!(other.token().unwrap().user_failures, 1);
        assert!(db.delete_object(id).unwrap());
        assert!(!db.delete_object(id).unwrap());
    }
}
