//! Backups of a token (`T_BackupToken`, `T_RestoreToken`; `tessera-util --backup`, `--restore`).
//!
//! A backup is one consistent snapshot of a token's database, taken with SQLite's online backup
//! API while other processes go on writing: committed transactions still in the write-ahead log
//! are part of it, a transaction not yet committed is not. The GCM invocation counters reserved
//! in `iv-reserved/` (which run ahead of the database) are folded into the copy's `iv_space`
//! rows, so the copy holds the highest value reserved when it was taken.
//!
//! The file is an envelope around the database image, so that another file, a truncated copy, a
//! damaged one or a changed one is refused before anything is written. Written by hand: a few
//! fields, for which no archive crate is worth its weight.
//!
//! ```text
//! "TESSERA-BACKUP\0\x02"   16 bytes: what the file is, and its format (2)
//! iterations               4 bytes, little-endian: PBKDF2 iterations of the MAC key
//! salt                     32 bytes, random for each backup
//! length                   8 bytes, little-endian: the length of the image
//! image                    the SQLite database (journal mode DELETE: one file)
//! HMAC-SHA-256             32 bytes, of everything before it, under the MAC key
//! SHA-256                  32 bytes, of everything before it
//! ```
//!
//! The MAC key is PBKDF2-HMAC-SHA-256 of the SO PIN (with the salt, after a fixed context
//! string), at the iteration count of the token's SO PIN wrap: only the SO can make it. The
//! token key, which authenticates the objects, is no such key: the user PIN unwraps it too, so a
//! user could otherwise rewrite a backup's SO wrap and its objects and have the SO restore them.
//! A restore checks the MAC with the SO PIN it is given before it unpacks anything. The SHA-256
//! finds damage without a PIN (`tessera-util` names a damaged file before asking one); it proves
//! nothing about who wrote the file.

use super::{configure, open_token_file, tighten, PinState, DB_FILE, DIR_MODE, FILE_MODE, IV_RESERVED_DIR, MIGRATIONS};
use crate::error::{Error, Result};
use cryptoki_sys::*;
use rusqlite::{params, Connection, OpenFlags};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"TESSERA-BACKUP\0\x02";
const SALT: usize = 32;
const HEADER: usize = 16 + 4 + SALT + 8;
const MAC: usize = 32;
const DIGEST: usize = 32;
/// Put before the salt in the MAC key's derivation: the key differs from every PIN wrap's key
/// even where a salt repeats.
const MAC_CONTEXT: &[u8] = b"Tessera backup MAC key\0";
/// The iteration counts a backup's header may name: a test token's (1,000) to 100 million (more
/// is damage or a file made to stall a restore).
const MAC_ITERATIONS: std::ops::RangeInclusive<u32> = crate::config::TEST_KDF_ITERATIONS..=100_000_000;

/// How far a restore moves every GCM invocation counter when the token it restores is not in
/// the store (so the values used since the backup are unknown): 2^40. A process reserves 2^16
/// values at a time after a random distance below 2^32, so this covers some 250 process starts
/// that used a key since the backup. A counter with fewer bits than that (a caller's fixed field
/// above 32 bits) is exhausted by the move: counter IVs of that key are then refused, never
/// repeated.
pub const UNKNOWN_USE_MARGIN: u64 = 1 << 40;

fn failed(what: impl std::fmt::Display) -> Error {
    Error::because(CKR_FUNCTION_FAILED, what)
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut c = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        c.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// The key that authenticates a backup: PBKDF2-HMAC-SHA-256 of the SO PIN, salted with the
/// context string and `salt`.
///
/// SSP: SO PIN
/// SSP: PIN-derived key
fn mac_key(so_pin: &[u8], salt: &[u8], iterations: u32) -> Result<aws_lc_rs::hmac::Key> {
    let it = std::num::NonZeroU32::new(iterations).ok_or_else(|| failed("an iteration count of 0"))?;
    let mut s = MAC_CONTEXT.to_vec();
    s.extend_from_slice(salt);
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    aws_lc_rs::pbkdf2::derive(aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256, it, &s, so_pin, &mut k[..]);
    Ok(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &k[..]))
}

/// What a backup holds, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub serial: String,
    pub label: String,
    pub objects: i64,
    /// GCM invocation counters (one per key material that generated counter IVs).
    pub iv_spaces: i64,
}

fn summary(conn: &Connection) -> Result<Summary> {
    let (serial, label): (String, Vec<u8>) =
        conn.query_row("SELECT serial, label FROM token WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let objects = conn.query_row("SELECT count(*) FROM object", [], |r| r.get(0))?;
    let iv_spaces = conn.query_row("SELECT count(*) FROM iv_space", [], |r| r.get(0))?;
    Ok(Summary { serial, label: String::from_utf8_lossy(&label).trim_end().to_string(), objects, iv_spaces })
}

/// The values of the `iv-reserved/` files of a token directory, by IV space name. A file that
/// cannot be read is an error: its value must not be lost.
fn reserved_files(dir: &Path) -> Result<BTreeMap<Vec<u8>, u64>> {
    let mut out = BTreeMap::new();
    let rd = match std::fs::read_dir(dir.join(IV_RESERVED_DIR)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kid) = unhex(&name) else { continue };
        let b = std::fs::read(e.path())?;
        let v = match b.get(..8) {
            Some(b) => u64::from_le_bytes(b.try_into().unwrap_or_default()),
            // A file made but never written (a crash between the two): nothing reserved.
            None => 0,
        };
        out.insert(kid, v);
    }
    Ok(out)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every IV space's highest value, of the database and the files, in `conn`'s database (or a
/// snapshot of it) and the directory `dir`. The legacy `iv_counter` rows count for every space.
fn counters(conn: &Connection, dir: &Path) -> Result<(BTreeMap<Vec<u8>, u64>, u64)> {
    let mut m = reserved_files(dir)?;
    let mut st = conn.prepare("SELECT kid, next FROM iv_space")?;
    for r in st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))? {
        let (k, v) = r?;
        let e = m.entry(k).or_insert(0);
        *e = (*e).max(v.max(0) as u64);
    }
    let legacy: i64 = conn.query_row("SELECT COALESCE(MAX(next), 0) FROM iv_counter", [], |r| r.get(0))?;
    Ok((m, legacy.max(0) as u64))
}

/// Raises `conn`'s IV spaces to at least the values given (adding the spaces it lacks).
fn raise_counters(conn: &Connection, m: &BTreeMap<Vec<u8>, u64>, legacy: u64) -> Result<()> {
    let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
    for (k, v) in m {
        conn.execute(
            "INSERT INTO iv_space (kid, next) VALUES (?1, ?2) ON CONFLICT (kid) DO UPDATE SET next = max(next, ?2)",
            params![k, clamp(*v)],
        )?;
    }
    if legacy > 0 {
        conn.execute("UPDATE iv_counter SET next = max(next, ?1)", [clamp(legacy)])?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a new owner-only file beside it, flushed, renamed over
/// `path`, and the directory flushed.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes, true).map_err(|e| failed(format_args!("cannot write {}: {e}", path.display())))
}

/// Writes `bytes` to `path` as [`write_atomic`] does, or, unless `replace`, fails with
/// `AlreadyExists` where a file has the name (the new file is linked to it, never renamed over).
fn write_file(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| std::io::Error::other("not a file name"))?;
    let tmp = parent.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let r = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if replace {
            std::fs::rename(&tmp, path)?;
        } else {
            std::fs::hard_link(&tmp, path)?;
            std::fs::remove_file(&tmp)?;
        }
        std::fs::File::open(parent)?.sync_all()
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// A consistent image of the database of `conn` (read through its own snapshot: one backup step
/// copies every page under one read transaction), with the counters of `dir` folded in.
///
/// The image is made in a scratch file inside `dir`, the token's own directory (owner-only,
/// never a shared one where another user could plant a link at its name), created new and not
/// through a link; a scratch file that cannot be removed afterwards is an error, as it holds a
/// copy of the token.
fn image(conn: &Connection, dir: &Path) -> Result<(Vec<u8>, Summary)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = dir.join(format!(".backup.{}.{n}.db", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(FILE_MODE)
        .open(&scratch)
        .map_err(|e| failed(format_args!("cannot create the scratch file {}: {e}", scratch.display())))?;
    let r = (|| {
        let mut dst =
            Connection::open_with_flags(&scratch, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NOFOLLOW)?;
        {
            let b = rusqlite::backup::Backup::new(conn, &mut dst)?;
            // All pages in one step: one read transaction of the source, so one snapshot.
            match b.step(-1)? {
                rusqlite::backup::StepResult::Done => {}
                other => return Err(failed(format_args!("the online backup did not complete ({other:?})"))),
            }
        }
        // The files after the snapshot: they only ever grow, and a higher value is safe.
        let (m, legacy) = counters(&dst, dir)?;
        raise_counters(&dst, &m, legacy)?;
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        let check: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(failed(format_args!("the copy fails SQLite's integrity check: {check}")));
        }
        let s = summary(&dst)?;
        drop(dst);
        Ok((std::fs::read(&scratch)?, s))
    })();
    let removed = match std::fs::remove_file(&scratch) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(failed(format_args!("cannot remove the scratch file {}: {e}", scratch.display())))
        }
        _ => Ok(()),
    };
    let r = r?;
    removed?;
    Ok(r)
}

/// The backup file of `image`, authenticated under the SO PIN `so_pin` with `iterations`.
fn envelope(image: &[u8], so_pin: &[u8], iterations: u32) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| failed("no random salt"))?;
    let key = mac_key(so_pin, &salt, iterations)?;
    let mut out = Vec::with_capacity(HEADER + image.len() + MAC + DIGEST);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&iterations.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&(image.len() as u64).to_le_bytes());
    out.extend_from_slice(image);
    let tag = aws_lc_rs::hmac::sign(&key, &out);
    out.extend_from_slice(tag.as_ref());
    let d = sha256(&[&out]);
    out.extend_from_slice(&d);
    Ok(out)
}

/// Writes a backup of the token in `dir` to `out` (replacing a file there, atomically; the new
/// file is owner-only and flushed before it takes the name), authenticated under `so_pin` (which
/// the caller has checked against the token) with `iterations`. Other processes go on reading
/// and writing meanwhile.
pub fn backup(dir: &Path, out: &Path, so_pin: &[u8], iterations: u32) -> Result<Summary> {
    let conn = Connection::open_with_flags(dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    configure(&conn)?;
    tighten(dir);
    let (img, s) = image(&conn, dir)?;
    write_atomic(out, &envelope(&img, so_pin, iterations)?)?;
    Ok(s)
}

/// A backup file whose envelope is whole (see [`open`]); its image is reached through
/// [`Envelope::authenticate`] only.
pub struct Envelope {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope").field("len", &self.bytes.len()).finish()
    }
}

impl Envelope {
    /// The database image, once the MAC proves that the file was made with the key of `so_pin`:
    /// `CKR_PIN_INCORRECT` otherwise (a wrong PIN and a changed file look the same).
    pub fn authenticate(&self, so_pin: &[u8]) -> Result<&[u8]> {
        let b = &self.bytes;
        let iterations = u32::from_le_bytes(b[16..20].try_into().unwrap_or_default());
        let key = mac_key(so_pin, &b[20..20 + SALT], iterations)?;
        let (signed, rest) = b.split_at(b.len() - MAC - DIGEST);
        aws_lc_rs::hmac::verify(&key, signed, &rest[..MAC]).map_err(|_| {
            Error::because(
                CKR_PIN_INCORRECT,
                "the backup's authentication fails: the SO PIN is not the one the backup was made with, \
                 or the file has been changed since",
            )
        })?;
        Ok(&signed[HEADER..])
    }
}

/// The backup file `file`, its envelope checked (see [`open`]).
pub fn read(file: &Path) -> Result<Envelope> {
    open(file).map_err(failed)
}

/// A backup file, its envelope checked: a plain reason for a file that is not a backup (a copy of
/// `tessera.db` is named as one), a truncated one, a damaged one, and one of the first format
/// (which nothing authenticated). Needs no PIN and touches nothing but the file (`tessera-util`
/// checks a file with it before it asks the SO PIN).
pub fn open(file: &Path) -> std::result::Result<Envelope, String> {
    let shown = file.display();
    let b = std::fs::read(file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !b.starts_with(&MAGIC[..15]) {
        if b.starts_with(b"SQLite format 3\0") {
            return Err(format!(
                "{shown} is an SQLite database, not a Tessera backup: a copy of a token's database file \
                 misses what its write-ahead log holds and may be torn while the token is in use; \
                 make backups with tessera-util --backup"
            ));
        }
        return Err(format!("{shown} is not a Tessera backup"));
    }
    if b.len() < 16 {
        return Err(format!("{shown} is truncated ({} bytes)", b.len()));
    }
    if b[15] == 1 {
        return Err(format!(
            "{shown} is a backup of the first format, which nothing but an unkeyed digest protects: \
             this version restores only backups authenticated with the SO PIN; make a new backup \
             with tessera-util --backup"
        ));
    }
    if b[15] != MAGIC[15] {
        return Err(format!("{shown}: a Tessera backup of a format this version does not know"));
    }
    if b.len() < HEADER {
        return Err(format!("{shown} is truncated ({} bytes)", b.len()));
    }
    let len = u64::from_le_bytes(b[HEADER - 8..HEADER].try_into().unwrap_or_default());
    let want = (HEADER as u64).checked_add(len).and_then(|n| n.checked_add((MAC + DIGEST) as u64));
    match want {
        Some(n) if n == b.len() as u64 => {}
        Some(n) if n > b.len() as u64 => return Err(format!("{shown} is truncated ({} of {n} bytes)", b.len())),
        _ => return Err(format!("{shown} fails its integrity check (its length is wrong)")),
    }
    let (body, digest) = b.split_at(b.len() - DIGEST);
    if sha256(&[body]) != digest {
        return Err(format!("{shown} fails its integrity check (SHA-256): it is damaged"));
    }
    let iterations = u32::from_le_bytes(b[16..20].try_into().unwrap_or_default());
    if !MAC_ITERATIONS.contains(&iterations) {
        return Err(format!("{shown} fails its integrity check (an iteration count of {iterations})"));
    }
    Ok(Envelope { bytes: b })
}

/// A backup's token, put in a hidden directory of the token directory (which no slot lists), its
/// image checked: SQLite's integrity check, a schema this version knows, the token row.
pub struct Staged {
    pub dir: PathBuf,
    pub uid: Vec<u8>,
    pub serial: String,
    pub label: String,
}

impl Staged {
    pub fn new(tokendir: &Path, image: &[u8]) -> Result<Staged> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        std::fs::create_dir_all(tokendir)?;
        remove_stale(tokendir);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tokendir.join(format!(".restore.{}.{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(DIR_MODE).create(&dir)?;
        let s = Staged { dir: dir.clone(), uid: Vec::new(), serial: String::new(), label: String::new() };
        let r = s.fill(image);
        if r.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        r
    }

    fn fill(self, image: &[u8]) -> Result<Staged> {
        let s = self;
        let mut f = open_token_file(&s.dir.join(DB_FILE))?;
        f.write_all(image)?;
        f.sync_all()?;
        let mut conn = Connection::open_with_flags(s.dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let bad = |why: String| failed(format_args!("the backup's database {why}"));
        let check: String =
            conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| bad(e.to_string()))?;
        if check != "ok" {
            return Err(bad(format!("fails SQLite's integrity check: {check}")));
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version < 3 || version > MIGRATIONS.len() as i64 {
            return Err(bad(format!("has schema {version}; this version reads 3 to {}", MIGRATIONS.len())));
        }
        // The token row, read before the upgrade (its columns are schema 1's): a database without
        // one is no token's, whatever schema it claims, and is refused as such.
        let row = conn
            .query_row("SELECT uid, serial, label FROM token WHERE id = 1", [], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
            })
            .ok()
            .ok_or_else(|| bad("has no token".into()))?;
        // A backup of an older schema is brought up to date here, in the copy (one transaction).
        super::migrate(&mut conn, MIGRATIONS)?;
        let serial_ok = !row.1.is_empty() && row.1.len() <= 32 && row.1.bytes().all(|b| b.is_ascii_alphanumeric());
        if !serial_ok {
            return Err(bad("names no valid serial number".into()));
        }
        configure(&conn)?;
        Ok(Staged { uid: row.0, serial: row.1, label: String::from_utf8_lossy(&row.2).trim_end().to_string(), ..s })
    }

    fn conn(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(self.dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        configure(&conn)?;
        Ok(conn)
    }

    /// Records the PIN state the staged database holds in its `pin-state` file, so that opening
    /// it does not take it for a rolled-back store.
    pub fn record_pin_state(&self) -> Result<()> {
        let conn = self.conn()?;
        let s = pin_state_of(&conn)?;
        drop(conn);
        s.record(&self.dir)
    }

    /// Gives the restored token its label.
    pub fn relabel(&mut self, label: &str) -> Result<()> {
        self.conn()?.execute("UPDATE token SET label = ?1 WHERE id = 1", [label.as_bytes()])?;
        self.label = label.to_string();
        Ok(())
    }

    /// Brings the counters of the restored token ahead of every value used since the backup, and
    /// starts its rollback record afresh from the restored database.
    ///
    /// `before`: the token this backup is of, as it is in the store now (its database and
    /// `iv-reserved` files): every counter is raised to at least its values and the PIN state's
    /// sequence number continues from its. Without it, the values used since the backup are
    /// unknown: every counter moves on by [`UNKNOWN_USE_MARGIN`]. Then the `iv-reserved` files
    /// are written from the result, and the `pin-state` file from the restored row, the SO's
    /// failures cleared (the SO PIN was just proven). So the restored database, older than the
    /// record it replaces, is accepted on purpose, not taken for a rollback.
    pub fn advance(&self, before: Option<(&Connection, &Path)>) -> Result<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut seq: i64 = tx.query_row("SELECT pin_seq FROM token WHERE id = 1", [], |r| r.get(0))?;
        match before {
            Some((old, dir)) => {
                let (m, legacy) = counters(old, dir)?;
                raise_counters(&tx, &m, legacy)?;
                let old_seq: i64 = old.query_row("SELECT pin_seq FROM token WHERE id = 1", [], |r| r.get(0))?;
                let file_seq = PinState::read(dir)?.map_or(0, |s| s.seq.min(i64::MAX as u64 / 2) as i64);
                seq = seq.max(old_seq).max(file_seq);
            }
            None => {
                let m = UNKNOWN_USE_MARGIN as i64;
                tx.execute(
                    "UPDATE iv_space SET next = CASE WHEN next > ?1 THEN ?2 ELSE next + ?3 END",
                    params![i64::MAX - m, i64::MAX, m],
                )?;
                tx.execute(
                    "UPDATE iv_counter SET next = CASE WHEN next > ?1 THEN ?2 ELSE next + ?3 END",
                    params![i64::MAX - m, i64::MAX, m],
                )?;
            }
        }
        tx.execute(
            "UPDATE token SET pin_seq = ?1, so_failures = 0, so_recent = NULL WHERE id = 1",
            [seq.saturating_add(1)],
        )?;
        tx.commit()?;
        let (m, legacy) = counters(&conn, &self.dir)?;
        let reserved = self.dir.join(IV_RESERVED_DIR);
        std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(&reserved)?;
        for (k, v) in &m {
            let mut f = open_token_file(&reserved.join(hex(k)))?;
            f.write_all(&(*v).max(legacy).to_le_bytes())?;
            f.sync_all()?;
        }
        std::fs::File::open(&reserved)?.sync_all()?;
        // One file: the database closed, its log checkpointed into it.
        conn.pragma_update(None, "journal_mode", "DELETE")?;
        let s = pin_state_of(&conn)?;
        drop(conn);
        let _ = std::fs::remove_file(self.dir.join(super::PIN_STATE_FILE));
        s.record(&self.dir)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Removes the staged directory (a refused restore).
    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes what a restore killed midway left in the token directory (`.restore.<pid>.<n>`, its
/// staged token, and `.replaced.<pid>.<serial>`, a replaced token whose kept backup was written
/// before it was moved): they hold PIN wraps and sealed objects that must not stay behind. Those
/// of a process that still runs (a restore going on) are left alone.
fn remove_stale(tokendir: &Path) {
    let Ok(entries) = std::fs::read_dir(tokendir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".restore.").or_else(|| name.strip_prefix(".replaced.")) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()) {
            tracing::warn!("token directory {}: removing {name}, left by an interrupted restore", tokendir.display());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn pin_state_of(conn: &Connection) -> Result<PinState> {
    Ok(conn.query_row("SELECT pin_seq, so_failures, user_failures, user_blocked FROM token WHERE id = 1", [], |r| {
        Ok(PinState {
            seq: r.get::<_, i64>(0)?.max(0) as u64,
            so_failures: r.get::<_, i64>(1)?.max(0) as u64,
            user_failures: r.get::<_, i64>(2)?.max(0) as u64,
            user_blocked: r.get(3)?,
        })
    })?)
}

/// A token of the store, as a restore sees it.
pub struct Present {
    pub dir: PathBuf,
    pub uid: Vec<u8>,
    pub serial: String,
    pub label: String,
}

/// The tokens of a token directory (each one's row read, not opened as a token).
pub fn present(tokendir: &Path) -> Result<Vec<Present>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(tokendir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for e in rd.flatten() {
        let dir = e.path();
        if e.file_name().to_string_lossy().starts_with('.') || !dir.join(DB_FILE).is_file() {
            continue;
        }
        let row = Connection::open_with_flags(dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(Error::from)
            .and_then(|c| {
                // Configured as every connection: closing it checkpoints nothing.
                configure(&c)?;
                Ok(c.query_row("SELECT uid, serial, label FROM token WHERE id = 1", [], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
                })?)
            });
        match row {
            Ok((uid, serial, label)) => {
                out.push(Present { dir, uid, serial, label: String::from_utf8_lossy(&label).trim_end().to_string() })
            }
            Err(err) => tracing::warn!("token store {}: not readable ({err:?}); left out", dir.display()),
        }
    }
    Ok(out)
}

/// A token being replaced by a restore: other processes' writes held off (its write lock taken
/// through `lock`) while it is kept as a backup and its counters are read (through `read`).
pub struct Replaced {
    pub dir: PathBuf,
    lock: Connection,
    pub read: Connection,
}

impl Replaced {
    /// Takes the token's write lock: every other writer waits (up to its busy timeout) and then
    /// finds the token gone.
    pub fn lock(dir: &Path) -> Result<Replaced> {
        let lock = Connection::open_with_flags(dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        configure(&lock)?;
        lock.execute_batch("BEGIN IMMEDIATE")?;
        let read = Connection::open_with_flags(dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        configure(&read)?;
        Ok(Replaced { dir: dir.to_path_buf(), lock, read })
    }

    /// Writes the token as it is now, as a new backup file named `<name>.tessera-backup` (or
    /// `<name>-<n>.tessera-backup` where that one exists: an earlier one is never replaced) in
    /// `dir`; returns its path.
    ///
    /// Authenticated under `so_pin`, which the caller has checked against this token's SO wrap,
    /// with `iterations`.
    pub fn keep(&self, dir: &Path, name: &str, so_pin: &[u8], iterations: u32) -> Result<PathBuf> {
        let (img, _) = image(&self.read, &self.dir)?;
        let bytes = envelope(&img, so_pin, iterations)?;
        for n in 0..1000 {
            let out = match n {
                0 => dir.join(format!("{name}.tessera-backup")),
                n => dir.join(format!("{name}-{n}.tessera-backup")),
            };
            match write_file(&out, &bytes, false) {
                Ok(()) => return Ok(out),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(failed(format_args!("cannot write {}: {e}", out.display()))),
            }
        }
        Err(failed(format_args!("cannot name a backup of {} in {}", name, dir.display())))
    }

    /// Lets the lock go (the directory is gone by then).
    pub fn release(self) {
        let _ = self.lock.execute_batch("ROLLBACK");
    }
}

/// Puts the staged token in place as `<tokendir>/<serial>`, in one rename; `aside` (the token
/// replaced, already locked and kept) is moved out of the way first and removed after.
pub fn install(tokendir: &Path, staged: &Staged, aside: Option<&Replaced>) -> Result<PathBuf> {
    let target = tokendir.join(&staged.serial);
    let mut moved = None;
    if let Some(r) = aside {
        let to = tokendir.join(format!(
            ".replaced.{}.{}",
            std::process::id(),
            r.dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::rename(&r.dir, &to)?;
        moved = Some(to);
    }
    if target.exists() {
        if let (Some(to), Some(r)) = (&moved, aside) {
            let _ = std::fs::rename(to, &r.dir);
        }
        return Err(failed(format_args!("{} exists already", target.display())));
    }
    if let Err(e) = std::fs::rename(&staged.dir, &target) {
        if let (Some(to), Some(r)) = (&moved, aside) {
            let _ = std::fs::rename(to, &r.dir);
        }
        return Err(e.into());
    }
    std::fs::File::open(tokendir)?.sync_all()?;
    if let Some(to) = moved {
        super::super::services::vendor::overwrite_files(&to);
        if let Err(e) = std::fs::remove_dir_all(&to) {
            tracing::error!("cannot remove {} ({e}): the replaced token's files stay there", to.display());
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::seal::PinWrap;
    use crate::store::{Db, TokenRow};

    fn token(d: &Path) -> Db {
        let so = PinWrap { salt: vec![1], iterations: 600000, wrapped: vec![2] };
        Db::create(d, &TokenRow::initialised(vec![1; 16], "0123456789abcdef".into(), "t".into(), 7, so)).unwrap()
    }

    const PIN: &[u8] = b"so-pin";

    fn iv_next(conn: &Connection, kid: &[u8]) -> u64 {
        conn.query_row("SELECT next FROM iv_space WHERE kid = ?1", [kid], |r| r.get::<_, i64>(0)).unwrap() as u64
    }

    /// The envelope: read back whole; a truncated, a damaged and a foreign file refused, each
    /// with its reason. A reservation in `iv-reserved/` ahead of the database is in the copy.
    #[test]
    fn envelope_and_counters_in_the_copy() {
        let d = tempfile::tempdir().unwrap();
        let mut db = token(d.path());
        let start = db.reserve_iv_block(b"kid", 100, 0).unwrap();
        assert_eq!(start, 0);
        // A reservation written to the file whose transaction never committed.
        std::fs::write(db.dir.join(IV_RESERVED_DIR).join(hex(b"kid")), 5000u64.to_le_bytes()).unwrap();
        let out = d.path().join("b");
        let s = backup(&db.dir, &out, PIN, 1000).unwrap();
        assert_eq!((s.serial.as_str(), s.iv_spaces), ("0123456789abcdef", 1));
        let image = read(&out).unwrap().authenticate(PIN).unwrap().to_vec();
        let staged = Staged::new(&d.path().join("other"), &image).unwrap();
        assert_eq!(iv_next(&staged.conn().unwrap(), b"kid"), 5000);

        let b = std::fs::read(&out).unwrap();
        let at = |name: &str, bytes: &[u8]| {
            let p = d.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            open(&p).unwrap_err()
        };
        assert!(at("short", &b[..b.len() - 1]).contains("truncated"));
        assert!(at("tiny", &b[..10]).contains("not a Tessera backup") || at("tiny", &b[..10]).contains("truncated"));
        let mut damaged = b.clone();
        damaged[HEADER + 100] ^= 1;
        assert!(at("damaged", &damaged).contains("integrity check"));
        let mut longer = b.clone();
        longer.push(0);
        assert!(at("longer", &longer).contains("integrity check"));
        assert!(at("db", &std::fs::read(db.dir.join(DB_FILE)).unwrap()).contains("SQLite database"));
        let mut v1 = b.clone();
        v1[15] = 1;
        assert!(at("v1", &v1).contains("first format"));

        // Another PIN, or a change with the unkeyed digest made again: refused alike; no scratch
        // file left in the token directory.
        let e = read(&out).unwrap();
        assert_eq!(e.authenticate(b"other").unwrap_err().rv(), CKR_PIN_INCORRECT);
        let mut changed = b.clone();
        changed[HEADER + 100] ^= 1;
        let n = changed.len() - DIGEST;
        let digest = sha256(&[&changed[..n]]);
        changed[n..].copy_from_slice(&digest);
        let p = d.path().join("changed");
        std::fs::write(&p, &changed).unwrap();
        assert_eq!(read(&p).unwrap().authenticate(PIN).unwrap_err().rv(), CKR_PIN_INCORRECT);
        let left: Vec<_> = std::fs::read_dir(&db.dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().starts_with(".backup.")), "{left:?}");
    }

    /// A restore's counters: above the replaced token's (database and files) when it is known,
    /// 2^40 ahead of the backup's otherwise; the `iv-reserved` files written to match.
    #[test]
    fn advance_moves_counters_ahead() {
        let d = tempfile::tempdir().unwrap();
        let mut db = token(d.path());
        db.reserve_iv_block(b"kid", 100, 0).unwrap();
        let image = {
            let out = d.path().join("b");
            backup(&db.dir, &out, PIN, 1000).unwrap();
            read(&out).unwrap().authenticate(PIN).unwrap().to_vec()
        };
        db.reserve_iv_block(b"kid", 100, 0).unwrap();
        std::fs::write(db.dir.join(IV_RESERVED_DIR).join(hex(b"new")), 777u64.to_le_bytes()).unwrap();

        // What an interrupted restore left (no process has pid 4194305 on Linux) goes; a running
        // one's stays.
        let a = d.path().join("a");
        let (stale, live) = (a.join(".restore.4194305.0"), a.join(format!(".replaced.{}.x", std::process::id())));
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        let known = Staged::new(&a, &image).unwrap();
        assert!(!stale.exists() && live.exists());
        let old = Connection::open(db.dir.join(DB_FILE)).unwrap();
        known.advance(Some((&old, &db.dir))).unwrap();
        let c = known.conn().unwrap();
        assert_eq!((iv_next(&c, b"kid"), iv_next(&c, b"new")), (200, 777));
        assert_eq!(reserved_files(&known.dir).unwrap().get(&b"kid"[..]), Some(&200));
        assert!(PinState::read(&known.dir).unwrap().is_some());

        let unknown = Staged::new(&d.path().join("b2"), &image).unwrap();
        unknown.advance(None).unwrap();
        let c = unknown.conn().unwrap();
        assert_eq!(iv_next(&c, b"kid"), 100 + UNKNOWN_USE_MARGIN);
        assert_eq!(reserved_files(&unknown.dir).unwrap().get(&b"kid"[..]), Some(&(100 + UNKNOWN_USE_MARGIN)));
    }

    /// A backup of an older schema (3: before the PIN state and the IV spaces) is brought up to
    /// date in the staged copy, and the restore's steps run on it.
    #[test]
    fn an_older_schema_is_upgraded_when_staged() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("old.db");
        let mut conn = Connection::open(&db).unwrap();
        super::super::migrate(&mut conn, &MIGRATIONS[..3]).unwrap();
        conn.execute(
            "INSERT INTO token (id, uid, serial, label, slot_id, so_salt, so_iterations, so_wrapped)
             VALUES (1, x'01', '0123456789abcdef', x'74', 7, x'01', 600000, x'02')",
            [],
        )
        .unwrap();
        drop(conn);
        let staged = Staged::new(&d.path().join("t"), &std::fs::read(&db).unwrap()).unwrap();
        staged.record_pin_state().unwrap();
        staged.advance(None).unwrap();
        let v: i64 = staged.conn().unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}
