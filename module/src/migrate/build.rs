//! Building the migrated token, crash-safe: in a temporary directory beside Tessera's store, with
//! the store's own API (`Token::create`, the SO's login, `C_InitPIN`'s `init_user_pin`, `insert`),
//! then re-opened and every object compared with what was meant, flushed to disk, and moved into
//! place with one `rename`. Killed at any point, it leaves either no token or the complete one;
//! a hidden temporary directory left behind is removed by the next run.
//!
//! A token with the same serial is never replaced without `force`, and then it is first kept as
//! a backup: the two directories are exchanged atomically (`renameat2(RENAME_EXCHANGE)`), so the
//! serial never names a missing or partial token, and the old one is then renamed to the backup.

use crate::object::Object;
use crate::store::seal::KekCache;
use crate::store::Role;
use crate::token::{PinPolicy, Token};
use cryptoki_sys::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// File, in a migrated token's directory, that records what it was migrated from.
pub const MARKER: &str = "migrated-from.json";

/// What a migrated token records of its source: a re-run with the same source finds the work done.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Marker {
    pub tool: String,
    pub source: String,
    pub backend: String,
    pub serial: String,
    /// The source token's content digest (`softhsm2::Token::content_digest`).
    pub digest: String,
    pub objects: usize,
}

/// Where and how the token is written.
pub struct Target {
    pub tokendir: PathBuf,
    pub policy: PinPolicy,
    pub force: bool,
}

/// How the installation ended.
#[derive(Debug, Serialize)]
pub struct Installed {
    pub dir: PathBuf,
    /// Where the token of the same serial that was replaced now is (`force`).
    pub backup: Option<PathBuf>,
    /// The same source was migrated before: nothing was written.
    pub already: bool,
}

/// SHA-256 over a token directory's files (name and contents, sorted by name), leaving out the
/// empty lock files SoftHSMv2 only `fcntl`-locks.
pub fn digest_dir(dir: &Path) -> std::io::Result<String> {
    use crate::crypto::digest::{Context, SHA256};
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    names.sort();
    let mut ctx = Context::new(&SHA256);
    for n in names {
        let b = std::fs::read(dir.join(&n))?;
        ctx.update(&(n.len() as u64).to_be_bytes());
        ctx.update(n.as_bytes());
        ctx.update(&(b.len() as u64).to_be_bytes());
        ctx.update(&b);
    }
    Ok(crate::object::template::hex(ctx.finish().as_ref()))
}

fn io<'a>(what: &str, p: &'a Path) -> impl FnOnce(std::io::Error) -> String + 'a {
    let what = what.to_string();
    move |e| format!("{what} {}: {e}", p.display())
}

fn fsync_dir(p: &Path) -> Result<(), String> {
    std::fs::File::open(p).and_then(|f| f.sync_all()).map_err(io("fsync", p))
}

/// Flushes every file and directory under `dir` (and `dir`) to disk.
fn fsync_tree(dir: &Path) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(io("read", dir))?.flatten() {
        let p = e.path();
        let t = e.file_type().map_err(io("stat", &p))?;
        if t.is_dir() {
            fsync_tree(&p)?;
        } else if t.is_file() {
            std::fs::OpenOptions::new().read(true).open(&p).and_then(|f| f.sync_all()).map_err(io("fsync", &p))?;
        }
    }
    fsync_dir(dir)
}

/// The prefix of this serial's temporary directories in the token store.
fn temp_prefix(serial: &str) -> String {
    format!(".tessera-migrate-{serial}.")
}

/// Holds the store's migration lock (one migration at a time per store) while alive.
pub struct StoreLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

/// Takes the store's migration lock, waiting for another migration to end.
pub fn lock_store(tokendir: &Path) -> Result<StoreLock, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::store::DIR_MODE)
        .create(tokendir)
        .map_err(io("create", tokendir))?;
    let p = tokendir.join(".tessera-migrate.lock");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(crate::store::FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
        .map_err(io("open", &p))?;
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("lock {}: {e}", p.display()))?;
    Ok(StoreLock(l))
}

/// Removes what killed runs for this serial left in the store (never a token: those have no
/// leading dot).
fn remove_leftovers(tokendir: &Path, serial: &str) -> Result<(), String> {
    let prefix = temp_prefix(serial);
    for e in std::fs::read_dir(tokendir).map_err(io("read", tokendir))?.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let p = e.path();
            std::fs::remove_dir_all(&p).map_err(io("remove", &p))?;
        }
    }
    Ok(())
}

/// The existing token of this serial and its marker, if any.
pub fn existing(tokendir: &Path, serial: &str) -> (bool, Option<Marker>) {
    let dir = tokendir.join(serial);
    if !dir.exists() {
        return (false, None);
    }
    let m = std::fs::read(dir.join(MARKER)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    (true, m)
}

/// Whether the token in `dir` is one the drop-in made for a SoftHSMv2 token that waits for its
/// first login.
fn is_waiting(dir: &Path) -> bool {
    crate::store::Db::open(dir).and_then(|db| db.token()).is_ok_and(|r| r.legacy_state == crate::store::LEGACY_PENDING)
}

/// Builds the token and moves it into place (the caller holds [`lock_store`]). `objects` are
/// inserted in order; `progress` is told how many are in.
#[allow(clippy::too_many_arguments)]
pub fn install(
    target: &Target,
    serial: &str,
    label: &str,
    user_pin: Option<&[u8]>,
    so_pin: &[u8],
    objects: &[Object],
    marker: &Marker,
    progress: &mut dyn FnMut(usize),
) -> Result<Installed, String> {
    let final_dir = target.tokendir.join(serial);
    remove_leftovers(&target.tokendir, serial)?;
    let (exists, found) = existing(&target.tokendir, serial);
    if exists && found.as_ref() == Some(marker) {
        return Ok(Installed { dir: final_dir, backup: None, already: true });
    }
    // The token the drop-in shows for this SoftHSMv2 token while it waits for its first login
    // (`dropin::ensure_pending`) holds no key and nothing private: this migration takes its place
    // (and keeps it as a backup, as `force` does).
    let waiting = exists && is_waiting(&final_dir);
    if exists && !target.force && !waiting {
        return Err(format!(
            "a Tessera token with serial {serial} exists at {} (not this migration's result); --force replaces it, \
             keeping it as a backup",
            final_dir.display()
        ));
    }
    let tmp = target.tokendir.join(format!("{}{}", temp_prefix(serial), std::process::id()));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(crate::store::DIR_MODE).create(&tmp).map_err(io("create", &tmp))?;
    }
    let built = tmp.join(serial);
    let kek = Arc::new(KekCache::new().map_err(|e| format!("PIN cache: {e}"))?);
    let failed = |what: &str, e: crate::error::Error| format!("{what}: {}", crate::record::described(e));
    {
        let t = Token::create(&tmp, serial, label, so_pin, kek.clone(), target.policy, false)
            .map_err(|e| failed("creating the token (the SO PIN must be a PIN Tessera accepts)", e))?;
        let key = t.verify_pin(Role::So, so_pin).map_err(|e| failed("SO login", e))?;
        t.set_login(CKU_SO, key);
        if let Some(pin) = user_pin {
            t.init_user_pin(pin).map_err(|e| failed("setting the user PIN (it must be a PIN Tessera accepts)", e))?;
        }
        for (i, o) in objects.iter().enumerate() {
            t.insert(o.clone()).map_err(|e| failed(&format!("storing object {}", i + 1), e))?;
            progress(i + 1);
        }
        t.logout();
    }
    verify(&built, kek, target.policy, user_pin, so_pin, objects)?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let p = built.join(MARKER);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(crate::store::FILE_MODE)
            .open(&p)
            .map_err(io("create", &p))?;
        f.write_all(&serde_json::to_vec_pretty(marker).map_err(|e| e.to_string())?).map_err(io("write", &p))?;
    }
    fsync_tree(&tmp)?;
    let mut backup = None;
    if exists {
        // The old token and the new one change places in one step; the old one then leaves the
        // token's name for a backup name.
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &built,
            nix::fcntl::AT_FDCWD,
            &final_dir,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(|e| format!("exchange {} and {}: {e}", built.display(), final_dir.display()))?;
        // Kept as a backup, a waiting token too: an application may have made public objects on it.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let b = target.tokendir.join(format!(".backup-{serial}-{now}"));
        std::fs::rename(&built, &b).map_err(io("rename", &built))?;
        backup = Some(b);
    } else {
        std::fs::rename(&built, &final_dir).map_err(io("rename", &built))?;
    }
    fsync_dir(&target.tokendir)?;
    std::fs::remove_dir_all(&tmp).map_err(io("remove", &tmp))?;
    fsync_dir(&target.tokendir)?;
    Ok(Installed { dir: final_dir, backup, already: false })
}

/// Opens the built token as any process would, logs in with each PIN, and compares every object
/// with the one meant (all attributes, key material included).
fn verify(
    dir: &Path,
    kek: Arc<KekCache>,
    policy: PinPolicy,
    user_pin: Option<&[u8]>,
    so_pin: &[u8],
    objects: &[Object],
) -> Result<(), String> {
    let failed = |what: &str, e: crate::error::Error| format!("verification, {what}: {}", crate::record::described(e));
    let t = Token::open(dir, kek, policy).map_err(|e| failed("opening the new token", e))?;
    let so_key = t.verify_pin(Role::So, so_pin).map_err(|e| failed("the SO PIN", e))?;
    match user_pin {
        Some(pin) => {
            let key = t.verify_pin(Role::User, pin).map_err(|e| failed("the user PIN", e))?;
            t.set_login(CKU_USER, key);
        }
        None => t.set_login(CKU_SO, so_key),
    }
    let mut stored: std::collections::HashMap<Vec<u8>, Arc<Object>> = std::collections::HashMap::new();
    let mut count = 0usize;
    t.scan(|_, o| {
        count += 1;
        stored.insert(o.get(CKA_UNIQUE_ID).unwrap_or(&[]).to_vec(), o.clone());
    })
    .map_err(|e| failed("reading the objects", e))?;
    if count != objects.len() || stored.len() != objects.len() {
        return Err(format!("verification: {count} objects stored, {} meant", objects.len()));
    }
    for (i, o) in objects.iter().enumerate() {
        let uid = o.get(CKA_UNIQUE_ID).unwrap_or(&[]);
        match stored.get(uid) {
            Some(s) if s.attrs == o.attrs => {}
            Some(s) => {
                let differ: Vec<String> = o
                    .attrs
                    .iter()
                    .filter(|(k, v)| s.attrs.get(k) != Some(v))
                    .map(|(k, _)| super::attribute_name(*k))
                    .collect();
                return Err(format!("verification: object {} differs from the source in {}", i + 1, differ.join(", ")));
            }
            None => return Err(format!("verification: object {} is missing", i + 1)),
        }
    }
    t.logout();
    Ok(())
}

/// A PIN read from somewhere, wiped when dropped.
pub type Pin = Zeroizing<Vec<u8>>;

/// The directory of the Tessera token with this label in `tokendir`.
pub fn find_token(tokendir: &Path, kek: &Arc<KekCache>, policy: PinPolicy, label: &str) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(tokendir).map_err(io("read", tokendir))?;
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') || !p.join(crate::store::DB_FILE).is_file() {
            continue;
        }
        if let Ok(t) = Token::open(&p, kek.clone(), policy) {
            if t.row().is_ok_and(|r| r.label.trim_end() == label) {
                return Ok(p);
            }
        }
    }
    Err(format!("no Tessera token labelled {label:?} in {}", tokendir.display()))
}

/// What [`add_to_existing`] did.
#[derive(Debug, Serialize)]
pub struct Added {
    pub dir: PathBuf,
    pub added: usize,
    /// Objects the token already held (a re-run adds nothing).
    pub present: usize,
}

/// Adds objects to an existing Tessera token (found by label, opened with the user PIN), leaving
/// out those it already holds — the same attributes, but for the unique ID — so that a re-run,
/// also after a crash halfway, adds only what is missing. Each object is one store transaction.
pub fn add_to_existing(
    tokendir: &Path,
    policy: PinPolicy,
    label: &str,
    pin: &[u8],
    objects: &[Object],
) -> Result<Added, String> {
    let kek = Arc::new(KekCache::new().map_err(|e| format!("PIN cache: {e}"))?);
    let dir = find_token(tokendir, &kek, policy, label)?;
    let failed = |what: &str, e: crate::error::Error| format!("{what}: {}", crate::record::described(e));
    let t = Token::open(&dir, kek, policy).map_err(|e| failed("opening the token", e))?;
    let key = t.verify_pin(Role::User, pin).map_err(|e| failed("the user PIN", e))?;
    t.set_login(CKU_USER, key);
    // Objects compared by a digest of their attributes (key material among them: no copy of it
    // is kept).
    let without_uid = |o: &Object| {
        let mut a = o.attrs.clone();
        a.remove(&CKA_UNIQUE_ID);
        let enc = crate::object::encode(&a).unwrap_or_default();
        crate::crypto::digest::digest(&crate::crypto::digest::SHA256, &enc).as_ref().to_vec()
    };
    let mut held: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    t.scan(|_, o| {
        held.insert(without_uid(o));
    })
    .map_err(|e| failed("reading the token's objects", e))?;
    let (mut added, mut present) = (0, 0);
    for (i, o) in objects.iter().enumerate() {
        if !held.insert(without_uid(o)) {
            present += 1;
            continue;
        }
        t.insert(o.clone()).map_err(|e| failed(&format!("storing object {}", i + 1), e))?;
        added += 1;
    }
    t.logout();
    Ok(Added { dir, added, present })
}
