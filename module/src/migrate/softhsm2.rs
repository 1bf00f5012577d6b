//! Reading a SoftHSMv2 token directory directly, read-only: the `file` backend (`token.object`
//! and one `<uuid>.object` per object) and the `db` backend (`sqlite3.db`), the token key
//! unwrapped with the user or SO PIN, and the attributes of private objects decrypted.
//!
//! Written by hand: no crate reads SoftHSMv2's store. The encodings (SoftHSMv2 2.6.1, the
//! version Debian ships; later versions keep them):
//! * file backend: an object file is a u64 (big-endian) generation, then `{ u64 type, u64 kind,
//!   value }` until the end; kind 1 bool (1 byte), 2 ulong (u64), 3 bytes (u64 length + bytes),
//!   4 attribute map (u64 total length, then entries of kinds 1, 2, 3, 5), 5 mechanism set (u64
//!   count, count u64).
//! * db backend: `object(id)` (id 1 the token), `attribute_{boolean,integer,binary,array}(value,
//!   type, object_id, id)`; mechanism sets as binary (native u64s, no count), maps as arrays
//!   (native `{ u64 type, u32 kind, value }`). An attribute stored twice (a SoftHSMv2 quirk) is
//!   read from its newest row.
//! * the token key: each PIN blob is salt (8) ‖ IV (16) ‖ AES-256-CBC(PKCS#7) of "RJR" ‖ key
//!   (32), under SHA-256 iterated 1500 + salt[7] times over salt ‖ PIN.
//! * the byte-string attributes of an object whose `CKA_PRIVATE` is true are IV (16) ‖
//!   AES-256-CBC(PKCS#7) under the token key; empty ones stay empty; map contents are clear.

use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// SoftHSMv2's vendor attributes of the token object.
pub const CKA_OS_TOKENLABEL: CK_ATTRIBUTE_TYPE = 0x8000_5349;
pub const CKA_OS_TOKENSERIAL: CK_ATTRIBUTE_TYPE = 0x8000_534A;
pub const CKA_OS_TOKENFLAGS: CK_ATTRIBUTE_TYPE = 0x8000_534B;
pub const CKA_OS_SOPIN: CK_ATTRIBUTE_TYPE = 0x8000_534C;
pub const CKA_OS_USERPIN: CK_ATTRIBUTE_TYPE = 0x8000_534D;

/// An attribute value as SoftHSMv2 stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Bool(bool),
    Ulong(u64),
    Bytes(Zeroizing<Vec<u8>>),
    Map(Vec<(CK_ATTRIBUTE_TYPE, Val)>),
    Mechs(Vec<u64>),
}

/// One stored object: where it came from and its attributes (byte strings still encrypted when
/// the object is private; see [`Token::decrypt`]).
#[derive(Clone, Debug)]
pub struct RawObject {
    /// The object's file name (file backend) or row id (db backend), for messages.
    pub name: String,
    pub attrs: BTreeMap<CK_ATTRIBUTE_TYPE, Val>,
}

impl RawObject {
    pub fn flag(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.attrs.get(&t), Some(Val::Bool(true)))
    }
    pub fn ulong(&self, t: CK_ATTRIBUTE_TYPE) -> Option<u64> {
        match self.attrs.get(&t) {
            Some(Val::Ulong(v)) => Some(*v),
            _ => None,
        }
    }
}

/// Which store a token directory uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    File,
    Db,
}

/// A SoftHSMv2 token as read from its directory.
pub struct Token {
    pub dir: PathBuf,
    pub backend: Backend,
    pub label: String,
    pub serial: String,
    pub flags: u64,
    so_blob: Option<Vec<u8>>,
    user_blob: Option<Vec<u8>>,
    pub objects: Vec<RawObject>,
}

/// Why a token directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}: not a SoftHSMv2 token directory (no token.object or sqlite3.db)")]
    NotAToken(PathBuf),
    #[error("{path}: {why}")]
    Damaged { path: PathBuf, why: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{path}: {e}")]
    Sqlite { path: PathBuf, e: rusqlite::Error },
}

fn damaged(path: &Path, why: impl Into<String>) -> ReadError {
    ReadError::Damaged { path: path.to_path_buf(), why: why.into() }
}

/// A big-endian reader over an object file.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn u64(&mut self) -> Option<u64> {
        let v = self.b.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(u64::from_be_bytes(v.try_into().ok()?))
    }
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(v)
    }
    fn done(&self) -> bool {
        self.at >= self.b.len()
    }
}

/// One value of kind `kind` from a file-backend object (`nested`: inside a map, where maps do not
/// nest).
fn file_value(c: &mut Cursor<'_>, kind: u64, nested: bool) -> Option<Val> {
    Some(match kind {
        1 => Val::Bool(c.take(1)?[0] != 0),
        2 => Val::Ulong(c.u64()?),
        3 => {
            let n = c.u64()?;
            Val::Bytes(Zeroizing::new(c.take(n)?.to_vec()))
        }
        4 if !nested => {
            let n = c.u64()?;
            let mut inner = Cursor { b: c.take(n)?, at: 0 };
            let mut entries = Vec::new();
            while !inner.done() {
                let t = inner.u64()?;
                let k = inner.u64()?;
                entries.push((t as CK_ATTRIBUTE_TYPE, file_value(&mut inner, k, true)?));
            }
            Val::Map(entries)
        }
        5 => {
            let n = c.u64()?;
            let mut v = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                v.push(c.u64()?);
            }
            Val::Mechs(v)
        }
        _ => return None,
    })
}

/// Decodes a file-backend object file (generation first).
pub fn parse_object_file(b: &[u8]) -> Option<BTreeMap<CK_ATTRIBUTE_TYPE, Val>> {
    let mut c = Cursor { b, at: 0 };
    c.u64()?;
    let mut attrs = BTreeMap::new();
    while !c.done() {
        let t = c.u64()?;
        let k = c.u64()?;
        attrs.insert(t as CK_ATTRIBUTE_TYPE, file_value(&mut c, k, false)?);
    }
    Some(attrs)
}

/// A native-endian (SoftHSMv2's db backend stores its arrays as the machine has them) reader.
struct Native<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Native<'a> {
    fn u64(&mut self) -> Option<u64> {
        let v = self.b.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(u64::from_ne_bytes(v.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        let v = self.b.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_ne_bytes(v.try_into().ok()?))
    }
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(v)
    }
}

fn mechs_native(b: &[u8]) -> Option<Vec<u64>> {
    if !b.len().is_multiple_of(8) {
        return None;
    }
    Some(b.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default())).collect())
}

/// Decodes a db-backend attribute map (`attribute_array`).
fn parse_db_array(b: &[u8]) -> Option<Vec<(CK_ATTRIBUTE_TYPE, Val)>> {
    let mut c = Native { b, at: 0 };
    let mut entries = Vec::new();
    while c.at < b.len() {
        let t = c.u64()? as CK_ATTRIBUTE_TYPE;
        let v = match c.u32()? {
            1 => Val::Bool(c.take(1)?[0] != 0),
            2 => Val::Ulong(c.u64()?),
            3 => {
                let n = c.u64()?;
                Val::Bytes(Zeroizing::new(c.take(n)?.to_vec()))
            }
            5 => {
                let n = c.u64()?;
                Val::Mechs(mechs_native(c.take(n)?)?)
            }
            _ => return None,
        };
        entries.push((t, v));
    }
    Some(entries)
}

/// Whether `dir` holds a SoftHSMv2 token, and which backend.
pub fn backend_of(dir: &Path) -> Option<Backend> {
    if dir.join("token.object").is_file() {
        Some(Backend::File)
    } else if dir.join("sqlite3.db").is_file() {
        Some(Backend::Db)
    } else {
        None
    }
}

/// The token directories under a SoftHSMv2 `tokendir`, in name order.
pub fn token_dirs(tokendir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(tokendir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && backend_of(p).is_some())
        .collect();
    v.sort();
    Ok(v)
}

fn bytes_of(v: Option<&Val>) -> Option<&[u8]> {
    match v {
        Some(Val::Bytes(b)) => Some(b),
        _ => None,
    }
}

/// Opens a file for reading only, never following a symbolic link at its last component.
fn read_file(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(p)?;
    let mut b = Vec::new();
    f.read_to_end(&mut b)?;
    Ok(b)
}

impl Token {
    /// Reads the token in `dir` (nothing is written: files are opened read-only, the database
    /// with SQLite's read-only flag).
    pub fn read(dir: &Path) -> Result<Token, ReadError> {
        Token::read_as(dir, false)
    }

    /// The token's identity and PIN blobs only (no object is read): what a slot list needs.
    pub fn read_identity(dir: &Path) -> Result<Token, ReadError> {
        Token::read_as(dir, true)
    }

    fn read_as(dir: &Path, identity_only: bool) -> Result<Token, ReadError> {
        let backend = backend_of(dir).ok_or_else(|| ReadError::NotAToken(dir.to_path_buf()))?;
        let (token_attrs, objects) = match backend {
            Backend::File => read_file_backend(dir, identity_only)?,
            Backend::Db => read_db_backend(dir, identity_only)?,
        };
        let label = bytes_of(token_attrs.get(&CKA_OS_TOKENLABEL))
            .map(|b| String::from_utf8_lossy(b).trim_end_matches([' ', '\0']).to_string())
            .ok_or_else(|| damaged(dir, "the token has no label"))?;
        let serial = bytes_of(token_attrs.get(&CKA_OS_TOKENSERIAL))
            .map(|b| String::from_utf8_lossy(b).trim_end_matches([' ', '\0']).to_string())
            .ok_or_else(|| damaged(dir, "the token has no serial number"))?;
        let flags = match token_attrs.get(&CKA_OS_TOKENFLAGS) {
            Some(Val::Ulong(f)) => *f,
            _ => 0,
        };
        let blob = |t| bytes_of(token_attrs.get(&t)).filter(|b| !b.is_empty()).map(|b| b.to_vec());
        Ok(Token {
            dir: dir.to_path_buf(),
            backend,
            label,
            serial,
            flags,
            so_blob: blob(CKA_OS_SOPIN),
            user_blob: blob(CKA_OS_USERPIN),
            objects,
        })
    }

    /// SHA-256 of what the token holds: label, serial, both PIN blobs and every object's stored
    /// attributes (as stored: private values still encrypted). Not the token flags or the
    /// generation counters, which SoftHSMv2 rewrites when it is merely used: a migrated token stays
    /// recognised as this token's migration until an object or a PIN changes.
    pub fn content_digest(&self) -> String {
        use crate::crypto::digest::{Context, SHA256};
        fn put(ctx: &mut Context, b: &[u8]) {
            ctx.update(&(b.len() as u64).to_be_bytes());
            ctx.update(b);
        }
        fn value(ctx: &mut Context, v: &Val) {
            match v {
                Val::Bool(b) => put(ctx, &[1, *b as u8]),
                Val::Ulong(u) => put(ctx, &[&[2u8][..], &u.to_be_bytes()].concat()),
                Val::Bytes(b) => {
                    ctx.update(&[3]);
                    put(ctx, b);
                }
                Val::Map(m) => {
                    ctx.update(&[4]);
                    ctx.update(&(m.len() as u64).to_be_bytes());
                    for (t, v) in m {
                        ctx.update(&t.to_be_bytes());
                        value(ctx, v);
                    }
                }
                Val::Mechs(m) => {
                    ctx.update(&[5]);
                    put(ctx, &m.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>());
                }
            }
        }
        let mut ctx = Context::new(&SHA256);
        put(&mut ctx, self.label.as_bytes());
        put(&mut ctx, self.serial.as_bytes());
        put(&mut ctx, self.so_blob.as_deref().unwrap_or(&[]));
        put(&mut ctx, self.user_blob.as_deref().unwrap_or(&[]));
        let mut objects: Vec<&RawObject> = self.objects.iter().collect();
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        for o in objects {
            put(&mut ctx, o.name.as_bytes());
            ctx.update(&(o.attrs.len() as u64).to_be_bytes());
            for (t, v) in &o.attrs {
                ctx.update(&t.to_be_bytes());
                value(&mut ctx, v);
            }
        }
        crate::object::template::hex(ctx.finish().as_ref())
    }

    /// Whether the user PIN was ever set.
    pub fn has_user_pin(&self) -> bool {
        self.user_blob.is_some()
    }

    /// The token key, unwrapped with `pin` as the user's PIN or, failing that, as the SO's;
    /// `None` when it opens neither. Also says which one it opened.
    pub fn unlock(&self, pin: &[u8]) -> Option<(Zeroizing<[u8; 32]>, PinRole)> {
        if let Some(k) = self.user_blob.as_deref().and_then(|b| unwrap_pin_blob(b, pin)) {
            return Some((k, PinRole::User));
        }
        self.so_blob.as_deref().and_then(|b| unwrap_pin_blob(b, pin)).map(|k| (k, PinRole::So))
    }

    /// SoftHSMv2's wrap of its token key under this role's PIN, if the PIN was ever set.
    pub fn blob(&self, role: PinRole) -> Option<&[u8]> {
        match role {
            PinRole::User => self.user_blob.as_deref(),
            PinRole::So => self.so_blob.as_deref(),
        }
    }

    /// Whether `pin` is this role's PIN.
    pub fn pin_matches(&self, role: PinRole, pin: &[u8]) -> bool {
        let blob = match role {
            PinRole::User => self.user_blob.as_deref(),
            PinRole::So => self.so_blob.as_deref(),
        };
        blob.and_then(|b| unwrap_pin_blob(b, pin)).is_some()
    }

    /// The object's attributes in clear: the byte strings of a private object decrypted.
    pub fn decrypt(&self, key: &[u8; 32], o: &RawObject) -> Result<BTreeMap<CK_ATTRIBUTE_TYPE, Val>, String> {
        if !o.flag(CKA_PRIVATE) {
            return Ok(o.attrs.clone());
        }
        let mut out = BTreeMap::new();
        for (t, v) in &o.attrs {
            let v = match v {
                Val::Bytes(b) if !b.is_empty() => Val::Bytes(
                    cbc_decrypt(key, b)
                        .ok_or_else(|| format!("attribute 0x{t:x} does not decrypt with the token key"))?,
                ),
                other => other.clone(),
            };
            out.insert(*t, v);
        }
        Ok(out)
    }
}

/// Which PIN opened the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinRole {
    User,
    So,
}

type Read = (BTreeMap<CK_ATTRIBUTE_TYPE, Val>, Vec<RawObject>);

fn read_file_backend(dir: &Path, identity_only: bool) -> Result<Read, ReadError> {
    let tp = dir.join("token.object");
    let token = parse_object_file(&read_file(&tp)?).ok_or_else(|| damaged(&tp, "undecodable token object"))?;
    if identity_only {
        return Ok((token, Vec::new()));
    }
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".object") && n != "token.object")
        .collect();
    names.sort();
    let mut objects = Vec::with_capacity(names.len());
    for n in names {
        let p = dir.join(&n);
        let b = read_file(&p)?;
        // SoftHSMv2 treats an empty object file as no object (one it was still writing).
        if b.is_empty() {
            continue;
        }
        let attrs = parse_object_file(&b).ok_or_else(|| damaged(&p, "undecodable object file"))?;
        objects.push(RawObject { name: n, attrs });
    }
    Ok((token, objects))
}

fn read_db_backend(dir: &Path, identity_only: bool) -> Result<Read, ReadError> {
    use rusqlite::{Connection, OpenFlags};
    let path = dir.join("sqlite3.db");
    let sq = |e| ReadError::Sqlite { path: path.clone(), e };
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sq)?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(sq)?;
    // One read transaction: a consistent view while SoftHSMv2 may be writing.
    conn.execute_batch("BEGIN").map_err(sq)?;
    let ids: Vec<i64> = {
        let limit = if identity_only { " LIMIT 1" } else { "" };
        let mut st = conn.prepare(&format!("SELECT id FROM object ORDER BY id{limit}")).map_err(sq)?;
        let rows = st.query_map([], |r| r.get(0)).map_err(sq)?;
        rows.collect::<Result<_, _>>().map_err(sq)?
    };
    let mut by_object: BTreeMap<i64, BTreeMap<CK_ATTRIBUTE_TYPE, (i64, Val)>> = BTreeMap::new();
    let mut put = |oid: i64, t: i64, rid: i64, v: Val| {
        let e = by_object.entry(oid).or_default();
        // An attribute stored twice: the newest row is SoftHSMv2's last write.
        if e.get(&(t as CK_ATTRIBUTE_TYPE)).is_none_or(|(old, _)| *old < rid) {
            e.insert(t as CK_ATTRIBUTE_TYPE, (rid, v));
        }
    };
    for table in ["attribute_boolean", "attribute_integer", "attribute_binary", "attribute_array"] {
        // The token's own object only, or every one.
        let only = ids.first().copied().filter(|_| identity_only).unwrap_or(-1);
        let mut st = conn
            .prepare(&format!("SELECT object_id, type, id, value FROM {table} WHERE ?1 = -1 OR object_id = ?1"))
            .map_err(sq)?;
        let mut rows = st.query([only]).map_err(sq)?;
        while let Some(r) = rows.next().map_err(sq)? {
            let (oid, t, rid): (i64, i64, i64) = (r.get(0).map_err(sq)?, r.get(1).map_err(sq)?, r.get(2).map_err(sq)?);
            let v = match table {
                "attribute_boolean" => Val::Bool(r.get::<_, bool>(3).map_err(sq)?),
                "attribute_integer" => Val::Ulong(r.get::<_, i64>(3).map_err(sq)? as u64),
                "attribute_binary" => {
                    let b: Vec<u8> = r.get::<_, Option<Vec<u8>>>(3).map_err(sq)?.unwrap_or_default();
                    if t as CK_ATTRIBUTE_TYPE == CKA_ALLOWED_MECHANISMS {
                        Val::Mechs(mechs_native(&b).ok_or_else(|| damaged(&path, "undecodable mechanism set"))?)
                    } else {
                        Val::Bytes(Zeroizing::new(b))
                    }
                }
                _ => {
                    let b: Vec<u8> = r.get::<_, Option<Vec<u8>>>(3).map_err(sq)?.unwrap_or_default();
                    Val::Map(parse_db_array(&b).ok_or_else(|| damaged(&path, "undecodable attribute map"))?)
                }
            };
            put(oid, t, rid, v);
        }
    }
    conn.execute_batch("COMMIT").map_err(sq)?;
    let mut objects = Vec::new();
    let mut token = None;
    for (i, id) in ids.iter().enumerate() {
        let attrs: BTreeMap<_, _> =
            by_object.remove(id).unwrap_or_default().into_iter().map(|(t, (_, v))| (t, v)).collect();
        // The first object is the token's own.
        if i == 0 {
            token = Some(attrs);
        } else if !attrs.is_empty() {
            objects.push(RawObject { name: format!("object {id}"), attrs });
        }
    }
    Ok((token.ok_or_else(|| damaged(&path, "no token object"))?, objects))
}

/// SoftHSMv2's PIN-to-key derivation (its RFC 4880-style iterated SHA-256).
fn pbe_key(salt: &[u8], pin: &[u8]) -> Zeroizing<[u8; 32]> {
    use crate::crypto::digest::{digest, SHA256};
    let iterations = 1500 + *salt.last().unwrap_or(&0) as usize;
    let mut h = Zeroizing::new([0u8; 32]);
    let first = Zeroizing::new([salt, pin].concat());
    h.copy_from_slice(digest(&SHA256, &first).as_ref());
    for _ in 1..iterations {
        let next = digest(&SHA256, &h[..]);
        h.copy_from_slice(next.as_ref());
    }
    h
}

/// AES-256-CBC decryption of IV ‖ ciphertext with PKCS#7 padding checked; `None` if it fails.
fn cbc_decrypt(key: &[u8; 32], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use crate::crypto::aes::{AesKey, BLOCK};
    if data.len() < 2 * BLOCK || !data.len().is_multiple_of(BLOCK) {
        return None;
    }
    let (iv, ct) = data.split_at(BLOCK);
    let mut iv: [u8; BLOCK] = iv.try_into().ok()?;
    let k = AesKey::new(key, false)?;
    let mut out = Zeroizing::new(vec![0u8; ct.len()]);
    k.cbc_into(&mut iv, ct, &mut out)?;
    let pad = *out.last()? as usize;
    if pad == 0 || pad > BLOCK || out[out.len() - pad..].iter().any(|b| *b as usize != pad) {
        return None;
    }
    let n = out.len() - pad;
    out.truncate(n);
    Some(out)
}

/// The token key from a PIN blob (salt ‖ IV ‖ encrypted "RJR" ‖ key); `None` for a wrong PIN.
pub fn unwrap_pin_blob(blob: &[u8], pin: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    if blob.len() < 8 + 32 {
        return None;
    }
    let (salt, rest) = blob.split_at(8);
    let kek = pbe_key(salt, pin);
    let plain = cbc_decrypt(&kek, rest)?;
    if plain.len() != 35 || &plain[..3] != b"RJR" {
        return None;
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&plain[3..]);
    Some(k)
}

/// The `directories.tokendir` of a SoftHSMv2 configuration file (relative paths taken from the
/// file's own directory, as the fixtures write them; SoftHSMv2 itself takes them from the
/// working directory, which is the same for a configuration beside its tokens).
pub fn tokendir_from_conf(conf: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(conf).map_err(|e| format!("{}: {e}", conf.display()))?;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "directories.tokendir" {
                let p = PathBuf::from(v.trim());
                return Ok(if p.is_relative() { conf.parent().unwrap_or(Path::new(".")).join(p) } else { p });
            }
        }
    }
    Err(format!("{}: no directories.tokendir", conf.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_object_round_trip_of_every_kind() {
        let mut b = 7u64.to_be_bytes().to_vec();
        let mut put = |t: u64, k: u64, v: &[u8]| {
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&k.to_be_bytes());
            b.extend_from_slice(v);
        };
        put(CKA_TOKEN, 1, &[0xff]);
        put(CKA_CLASS, 2, &3u64.to_be_bytes());
        put(CKA_LABEL, 3, &[&2u64.to_be_bytes()[..], b"ab"].concat());
        let mut map = Vec::new();
        map.extend_from_slice(&CKA_EXTRACTABLE.to_be_bytes());
        map.extend_from_slice(&1u64.to_be_bytes());
        map.push(0);
        put(CKA_WRAP_TEMPLATE, 4, &[&(map.len() as u64).to_be_bytes()[..], &map].concat());
        put(CKA_ALLOWED_MECHANISMS, 5, &[&1u64.to_be_bytes()[..], &0x1082u64.to_be_bytes()].concat());
        let a = parse_object_file(&b).unwrap();
        assert_eq!(a[&CKA_TOKEN], Val::Bool(true));
        assert_eq!(a[&CKA_CLASS], Val::Ulong(3));
        assert_eq!(a[&CKA_LABEL], Val::Bytes(Zeroizing::new(b"ab".to_vec())));
        assert_eq!(a[&CKA_WRAP_TEMPLATE], Val::Map(vec![(CKA_EXTRACTABLE, Val::Bool(false))]));
        assert_eq!(a[&CKA_ALLOWED_MECHANISMS], Val::Mechs(vec![0x1082]));
        // Truncated inside a value: refused, never read past the end.
        assert!(parse_object_file(&b[..b.len() - 3]).is_none());
        for n in 0..b.len() {
            let _ = parse_object_file(&b[..n]);
        }
    }
}
