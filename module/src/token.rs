//! A token: its store, an in-memory view of its objects kept fresh across processes, and its login
//! state (application-wide: shared by every session of this process).

use crate::error::{err, Result};
use crate::object::{self, Object};
use crate::store::seal::{self, KekCache, Key256};
use crate::store::{Db, Role, TokenRow};
use cryptoki_sys::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Shortest and longest PIN accepted.
pub const MIN_PIN: usize = 4;
pub const MAX_PIN: usize = 255;

/// PIN policy, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct PinPolicy {
    pub max_failures: u32,
    pub iterations: u32,
}

/// One object as this process sees it.
#[derive(Clone)]
pub struct Cached {
    pub rev: i64,
    pub private: bool,
    /// `None` while the object is private and the token is locked.
    pub obj: Option<Arc<Object>>,
    /// Whether the key material is in `obj` (it needs the token key).
    pub complete: bool,
}

struct View {
    data_version: i64,
    row: TokenRow,
    objects: HashMap<i64, Cached>,
}

/// Who is logged in to this token in this process, and the token key they unlocked.
#[derive(Default)]
struct Login {
    user: Option<CK_USER_TYPE>,
    key: Option<Key256>,
}

/// An initialised token.
pub struct Token {
    pub dir: PathBuf,
    pub uid: Vec<u8>,
    pub serial: String,
    db: Mutex<Db>,
    view: RwLock<View>,
    login: RwLock<Login>,
    /// Who is logged in, readable without the lock (every object access asks): 0 for nobody,
    /// else the `CK_USER_TYPE` plus one.
    who: std::sync::atomic::AtomicU64,
    kek: Arc<KekCache>,
    policy: PinPolicy,
    /// Sessions of this process open on the token: (all, read-write).
    pub open_sessions: (std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize),
    /// GCM invocation counter values reserved by this process, per key material.
    counters: Mutex<HashMap<Vec<u8>, IvBlock>>,
    /// The store's change counter, read without any lock (see `store::Changes`).
    changes: Option<crate::store::Changes>,
    /// The counter value the view was last brought up to date at; `u64::MAX` when the view must
    /// be checked against the store on its next use. Written only under the `db` lock.
    seen: std::sync::atomic::AtomicU64,
    /// Moves on whenever the view's objects change: sessions keep token keys they resolved while
    /// it stays (`session::KeyCache`).
    view_gen: std::sync::atomic::AtomicU64,
}

/// GCM invocation counter values of one key material reserved by this process: the next one and
/// the end of the block, and the random bytes that fill an IV's room above a 64-bit counter,
/// chosen when this process first used the key material.
struct IvBlock {
    next: u64,
    end: u64,
    high: [u8; 4],
    /// Blocks reserved so far.
    blocks: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks a PIN's length for services that set a PIN.
pub fn check_new_pin(pin: &[u8]) -> Result<()> {
    if (MIN_PIN..=MAX_PIN).contains(&pin.len()) {
        Ok(())
    } else {
        Err(err(CKR_PIN_LEN_RANGE))
    }
}

impl Token {
    /// Opens the token stored in `dir`.
    pub fn open(dir: &Path, kek: Arc<KekCache>, policy: PinPolicy) -> Result<Arc<Token>> {
        let db = Db::open(dir)?;
        let row = db.token()?;
        Ok(Arc::new(Token {
            dir: dir.to_path_buf(),
            uid: row.uid.clone(),
            serial: row.serial.clone(),
            db: Mutex::new(db),
            view: RwLock::new(View { data_version: i64::MIN, row, objects: HashMap::new() }),
            login: RwLock::new(Login::default()),
            who: std::sync::atomic::AtomicU64::new(0),
            kek,
            policy,
            counters: Mutex::new(HashMap::new()),
            open_sessions: Default::default(),
            changes: crate::store::Changes::open(dir),
            seen: std::sync::atomic::AtomicU64::new(u64::MAX),
            view_gen: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Creates a new token in `tokendir` with its SO PIN.
    pub fn create(
        tokendir: &Path,
        serial: &str,
        label: &str,
        so_pin: &[u8],
        kek: Arc<KekCache>,
        policy: PinPolicy,
    ) -> Result<Arc<Token>> {
        check_new_pin(so_pin).map_err(|_| err(CKR_PIN_INCORRECT))?;
        let uid = seal::random_bytes(16)?;
        let serial = serial.to_string();
        let slot_id = crate::slots::slot_id_for(Path::new(&serial));
        let token_key = seal::random_key()?;
        let so = seal::wrap_with_pin(&kek, &token_key, so_pin, policy.iterations, &wrap_aad(&uid, Role::So))?;
        let row = TokenRow {
            uid,
            serial,
            label: label.to_string(),
            slot_id,
            so: Some(so),
            user: None,
            so_failures: 0,
            user_failures: 0,
            epoch: 0,
        };
        let db = Db::create(tokendir, &row)?;
        Token::open(&db.dir, kek, policy)
    }

    fn aad(&self, obj_uid: &[u8], part: &[u8]) -> Vec<u8> {
        [&self.uid[..], obj_uid, part].concat()
    }

    /// Whether no transaction of any process can have committed since the view was last brought
    /// up to date: the change counter is even and where it was then. No lock is taken.
    fn quiet(&self) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        let seen = self.seen.load(Acquire);
        seen != u64::MAX && self.changes.as_ref().and_then(|c| c.read()).is_some_and(|(b, e)| b == e && b == seen)
    }

    /// Brings the view up to date (the caller holds the `db` lock) and records the change counter
    /// as it was before, when it was even: a write that began after that read moves it again.
    fn refresh(&self, db: &Db) -> Result<()> {
        use std::sync::atomic::Ordering::Release;
        let before = self.changes.as_ref().and_then(|c| c.read());
        self.seen.store(u64::MAX, Release);
        self.sync(db)?;
        if let Some((b, e)) = before {
            if b == e && b != u64::MAX {
                self.seen.store(b, Release);
            }
        }
        Ok(())
    }

    /// The generation of the view's objects (see `view_gen`).
    pub fn view_generation(&self) -> u64 {
        self.view_gen.load(std::sync::atomic::Ordering::Acquire)
    }

    fn changed(&self) {
        self.view_gen.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Brings the view up to date unless the change counter shows it already is.
    pub fn fresh(&self) -> Result<()> {
        if self.quiet() {
            return Ok(());
        }
        let db = lock(&self.db);
        self.refresh(&db)
    }

    /// Brings the view up to date with what other processes committed.
    fn sync(&self, db: &Db) -> Result<()> {
        let dv = db.data_version()?;
        if self.view.read().unwrap_or_else(|p| p.into_inner()).data_version == dv {
            return Ok(());
        }
        let row = db.token()?;
        let known_epoch = self.view.read().unwrap_or_else(|p| p.into_inner()).row.epoch;
        if row.epoch != known_epoch {
            // Another process re-initialised the token: the token key this process holds is
            // void, and so is its login.
            tracing::warn!("token {} was re-initialised by another process; logging out", self.serial);
            let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
            l.user = None;
            self.who.store(0, std::sync::atomic::Ordering::Release);
            l.key = None;
            self.view.write().unwrap_or_else(|p| p.into_inner()).objects.clear();
        }
        let key = self.key();
        let revs = db.object_revs()?;
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        let mut objects = HashMap::with_capacity(revs.len());
        for (id, rev) in revs {
            match view.objects.remove(&id) {
                Some(c) if c.rev == rev && (c.complete || key.is_none()) => {
                    objects.insert(id, c);
                }
                _ => {
                    if let Some(r) = db.object(id)? {
                        // An object that fails its integrity check is left out (and logged);
                        // the rest of the token stays usable.
                        if let Ok(c) = self.decode_row(&r, key.as_ref()) {
                            objects.insert(id, c);
                        }
                    }
                }
            }
        }
        *view = View { data_version: dv, row, objects };
        drop(view);
        self.changed();
        Ok(())
    }

    fn decode_row(&self, r: &crate::store::ObjectRow, key: Option<&Key256>) -> Result<Cached> {
        let bad = || {
            tracing::error!("token {}: object {} fails its integrity check", self.serial, r.id);
            err(CKR_DEVICE_ERROR)
        };
        let mut attrs = if r.private {
            match key {
                None => return Ok(Cached { rev: r.rev, private: true, obj: None, complete: false }),
                Some(k) => object::decode(&seal::open(k, &self.aad(&r.uid, b"attrs"), &r.attrs).ok_or_else(bad)?)?,
            }
        } else {
            object::decode(&r.attrs)?
        };
        let mut complete = true;
        if let Some(sealed) = &r.secret {
            match key {
                Some(k) => {
                    let secret = object::decode(&seal::open(k, &self.aad(&r.uid, b"secret"), sealed).ok_or_else(bad)?)?;
                    attrs.extend(secret);
                }
                None => complete = false,
            }
        }
        Ok(Cached { rev: r.rev, private: r.private, obj: Some(Arc::new(Object::new(attrs))), complete })
    }

    /// Makes the next access re-read the token row (after this process changed it: its own
    /// commits do not move `data_version`). Cached objects whose revision is unchanged are kept.
    /// Taken under the `db` lock, so that no refresh in progress records the view as current.
    fn touch(&self) {
        let _db = lock(&self.db);
        self.seen.store(u64::MAX, std::sync::atomic::Ordering::Release);
        self.view.write().unwrap_or_else(|p| p.into_inner()).data_version = i64::MIN;
    }

    /// Forces the next access to reload every object (after login or logout).
    fn invalidate(&self) {
        let _db = lock(&self.db);
        self.seen.store(u64::MAX, std::sync::atomic::Ordering::Release);
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        v.data_version = i64::MIN;
        v.objects.clear();
        drop(v);
        self.changed();
    }

    /// The token row as of now.
    pub fn row(&self) -> Result<TokenRow> {
        self.fresh()?;
        Ok(self.view.read().unwrap_or_else(|p| p.into_inner()).row.clone())
    }

    /// The token key, when someone is logged in.
    fn key(&self) -> Option<Key256> {
        self.login.read().unwrap_or_else(|p| p.into_inner()).key.clone()
    }

    /// Who is logged in, if anyone.
    pub fn logged_in(&self) -> Option<CK_USER_TYPE> {
        match self.who.load(std::sync::atomic::Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// Checks a PIN against its stored wrap, counting failures; gives the token key.
    pub fn verify_pin(&self, role: Role, pin: &[u8]) -> Result<Key256> {
        let row = self.row()?;
        let (wrap, failures) = match role {
            Role::So => (row.so, row.so_failures),
            Role::User => (row.user, row.user_failures),
        };
        let wrap = wrap.ok_or(err(match role {
            Role::So => CKR_GENERAL_ERROR,
            Role::User => CKR_USER_PIN_NOT_INITIALIZED,
        }))?;
        if self.policy.max_failures > 0 && failures >= self.policy.max_failures {
            return Err(err(CKR_PIN_LOCKED));
        }
        if pin.len() > MAX_PIN {
            return Err(err(CKR_PIN_INCORRECT));
        }
        match seal::unwrap_with_pin(&self.kek, &wrap, pin, &wrap_aad(&self.uid, role))? {
            Some(k) => {
                if failures > 0 {
                    lock(&self.db).set_failures(role, 0)?;
                    self.touch();
                }
                Ok(k)
            }
            None => {
                let n = lock(&self.db).add_failure(role)?;
                self.touch();
                tracing::warn!("token {}: wrong {:?} PIN ({n} consecutive)", self.serial, role);
                Err(err(CKR_PIN_INCORRECT))
            }
        }
    }

    /// Records a login (the PIN already verified).
    pub fn set_login(&self, user: CK_USER_TYPE, key: Key256) {
        {
            let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
            l.user = Some(user);
            self.who.store(user + 1, std::sync::atomic::Ordering::Release);
            l.key = Some(key);
        }
        // Complete objects stay cached; the next access opens the sealed ones.
        self.touch();
    }

    /// Forgets the login and the token key.
    pub fn logout(&self) {
        {
            let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
            l.user = None;
            self.who.store(0, std::sync::atomic::Ordering::Release);
            l.key = None;
        }
        self.invalidate();
    }

    /// `C_InitPIN`: the SO (logged in) sets the user PIN.
    pub fn init_user_pin(&self, pin: &[u8]) -> Result<()> {
        check_new_pin(pin)?;
        let key = self.key().ok_or(err(CKR_USER_NOT_LOGGED_IN))?;
        let w = seal::wrap_with_pin(&self.kek, &key, pin, self.policy.iterations, &wrap_aad(&self.uid, Role::User))?;
        lock(&self.db).set_pin_wrap(Role::User, Some(&w))?;
        self.touch();
        Ok(())
    }

    /// `C_SetPIN`: checks the old PIN, then rewraps the token key under the new one. Objects are
    /// untouched: only the wrap changes.
    pub fn change_pin(&self, role: Role, old: &[u8], new: &[u8]) -> Result<()> {
        let key = self.verify_pin(role, old)?;
        check_new_pin(new)?;
        let w = seal::wrap_with_pin(&self.kek, &key, new, self.policy.iterations, &wrap_aad(&self.uid, role))?;
        lock(&self.db).set_pin_wrap(role, Some(&w))?;
        self.touch();
        Ok(())
    }

    /// `C_InitToken` on an initialised token: the SO PIN must match; then every object goes, with
    /// the user PIN, and a new token key replaces the old.
    pub fn reinit(&self, so_pin: &[u8], label: &str) -> Result<()> {
        self.verify_pin(Role::So, so_pin)?;
        let key = seal::random_key()?;
        let so = seal::wrap_with_pin(&self.kek, &key, so_pin, self.policy.iterations, &wrap_aad(&self.uid, Role::So))?;
        lock(&self.db).reinit(label, &so)?;
        self.logout();
        Ok(())
    }

    /// Runs `f` over the visible objects without copying the list (the hot path of `C_FindObjectsInit`).
    pub fn scan(&self, mut f: impl FnMut(i64, &Arc<Object>)) -> Result<()> {
        self.fresh()?;
        let v = self.view.read().unwrap_or_else(|p| p.into_inner());
        for (id, c) in &v.objects {
            if let Some(o) = &c.obj {
                f(*id, o);
            }
        }
        Ok(())
    }

    /// One object by store id, if it still exists and is readable.
    pub fn object(&self, id: i64) -> Result<Option<Arc<Object>>> {
        let get = || self.view.read().unwrap_or_else(|p| p.into_inner()).objects.get(&id).and_then(|c| c.obj.clone());
        if self.quiet() {
            if let Some(o) = get() {
                return Ok(Some(o));
            }
        }
        // Not current, or not found: settled under the lock, which a concurrent logout's
        // invalidation also takes, so a miss here is real.
        let db = lock(&self.db);
        self.refresh(&db)?;
        Ok(get())
    }

    /// Whether the object's key material is loaded (false while the token is locked).
    pub fn is_complete(&self, id: i64) -> bool {
        self.view.read().unwrap_or_else(|p| p.into_inner()).objects.get(&id).is_some_and(|c| c.complete)
    }

    fn seal_parts(&self, obj: &Object, uid: &[u8]) -> Result<(bool, Vec<u8>, Option<Vec<u8>>)> {
        let private = obj.is_private();
        let (plain, secret) = obj.split();
        let key = self.key();
        let need_key = private || !secret.is_empty();
        let key = match (need_key, key) {
            (true, None) => return Err(err(CKR_USER_NOT_LOGGED_IN)),
            (_, k) => k,
        };
        let attrs = object::encode(&plain)?;
        let attrs = match (&key, private) {
            (Some(k), true) => seal::seal(k, &self.aad(uid, b"attrs"), &attrs)?,
            _ => attrs,
        };
        let secret = match (&key, secret.is_empty()) {
            (Some(k), false) => Some(seal::seal(k, &self.aad(uid, b"secret"), &object::encode(&secret)?)?),
            _ => None,
        };
        Ok((private, attrs, secret))
    }

    fn obj_uid(obj: &Object) -> Vec<u8> {
        obj.get(CKA_UNIQUE_ID).unwrap_or(&[]).to_vec()
    }

    /// The name of a key material's GCM IV space on this token: HMAC-SHA-256 keyed with the key
    /// value over a fixed label, the kind of counter (`wide`: 64 bits) and the token's unique ID.
    /// Every copy of the key (copied, unwrapped again, imported again, a session key with the same
    /// value) has the same; the name shows nothing of the value.
    fn iv_space(&self, key_value: &[u8], wide: bool) -> Vec<u8> {
        use aws_lc_rs::hmac;
        let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key_value));
        ctx.update(b"Tessera GCM invocation counter, v1");
        ctx.update(if wide { b"64" } else { b"32" });
        ctx.update(&self.uid);
        ctx.sign().as_ref().to_vec()
    }

    /// The next value of the GCM invocation counter of a key material (token or session key with
    /// this value), unique on this token across copies of the key, sessions, processes, restarts
    /// and a restored older database (see `Db::reserve_iv_block`), with the random bytes this
    /// process puts above a 64-bit counter. Values are reserved in blocks, each written to disk
    /// before its first value is used.
    ///
    /// A `wide` (64-bit) counter and a narrower one (32 to 56 bits, the caller's fixed field
    /// taking the rest) are two counters: a wide one reserves 2^16 values at a time, and the
    /// first block this process reserves starts a random distance (below 2^32) past the last
    /// value reserved, so two processes that start from the same state (the token directory
    /// restored whole, the same key on two tokens) stay apart unless their distances fall within
    /// each other's blocks. A narrow one has few values to spare: 256 at first, twice as many
    /// with each further block of the process up to 2^14 (a short-lived process leaves few
    /// unused, a busy one writes to disk seldom), no distance.
    pub fn next_iv_counter(&self, key_value: &[u8], wide: bool) -> Result<(u64, [u8; 4])> {
        let kid = self.iv_space(key_value, wide);
        let mut c = lock(&self.counters);
        if !c.contains_key(&kid) {
            let mut high = [0u8; 4];
            high.copy_from_slice(&seal::random_bytes(4)?);
            c.insert(kid.clone(), IvBlock { next: 0, end: 0, high, blocks: 0 });
        }
        let entry = c.get_mut(&kid).ok_or(err(CKR_GENERAL_ERROR))?;
        if entry.next == entry.end {
            let distance = match entry.blocks == 0 && wide {
                true => u32::from_be_bytes(seal::random_bytes(4)?.try_into().map_err(|_| err(CKR_GENERAL_ERROR))?),
                false => 0,
            };
            let block: u64 = if wide { 1 << 16 } else { 256 << entry.blocks.min(6) };
            let start = lock(&self.db).reserve_iv_block(&kid, block, distance.into())?;
            (entry.next, entry.end) = (start, start + block);
            entry.blocks = entry.blocks.saturating_add(1);
        }
        let v = entry.next;
        entry.next += 1;
        Ok((v, entry.high))
    }

    /// Stores a new token object in one transaction; returns its id.
    pub fn insert(&self, obj: Object) -> Result<i64> {
        let uid = Self::obj_uid(&obj);
        let mut db = lock(&self.db);
        self.refresh(&db)?;
        let (private, attrs, secret) = self.seal_parts(&obj, &uid)?;
        let id = db.insert_object(&uid, private, &attrs, secret.as_deref())?;
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        v.objects.insert(id, Cached { rev: 1, private, obj: Some(Arc::new(obj)), complete: true });
        drop(v);
        self.changed();
        Ok(id)
    }

    /// Rewrites a token object.
    pub fn update(&self, id: i64, obj: Object) -> Result<()> {
        let uid = Self::obj_uid(&obj);
        let mut db = lock(&self.db);
        self.refresh(&db)?;
        let (private, attrs, secret) = self.seal_parts(&obj, &uid)?;
        let rev = db.update_object(id, private, &attrs, secret.as_deref())?.ok_or(err(CKR_OBJECT_HANDLE_INVALID))?;
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        v.objects.insert(id, Cached { rev, private, obj: Some(Arc::new(obj)), complete: true });
        drop(v);
        self.changed();
        Ok(())
    }

    /// Deletes a token object.
    pub fn delete(&self, id: i64) -> Result<()> {
        let mut db = lock(&self.db);
        self.refresh(&db)?;
        let gone = db.delete_object(id)?;
        self.view.write().unwrap_or_else(|p| p.into_inner()).objects.remove(&id);
        self.changed();
        if gone {
            Ok(())
        } else {
            Err(err(CKR_OBJECT_HANDLE_INVALID))
        }
    }
}

/// Binds a PIN wrap to its token and role, so a wrap cannot be moved to another token or role.
fn wrap_aad(token_uid: &[u8], role: Role) -> Vec<u8> {
    let tag: &[u8] = match role {
        Role::So => b"so-pin",
        Role::User => b"user-pin",
    };
    [token_uid, tag].concat()
}
