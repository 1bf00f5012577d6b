//! A token: its store, an in-memory view of its objects kept fresh across processes, and its login
//! state (application-wide: shared by every session of this process).

use crate::error::{err, Result};
use crate::object::{self, Object};
use crate::store::seal::{self, KekCache, Key256};
use crate::store::{Attempt, Db, NewRow, Role, TokenRow};
use cryptoki_sys::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use zeroize::Zeroizing;

/// The longest PIN accepted (bytes); the shortest is the configuration's (`pin.min_length`, see
/// [`PinPolicy::min_length`]).
pub const MAX_PIN: usize = 255;

/// PIN policy, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct PinPolicy {
    pub max_failures: u32,
    pub iterations: u32,
    /// The shortest PIN accepted, set or offered at login (`Config::pin_min_length`).
    pub min_length: usize,
    /// The approved mode: a PIN shorter than `min_length` proves nothing, also as `C_SetPIN`'s
    /// old PIN (see [`Token::change_pin`]).
    pub approved: bool,
    /// How the drop-in converts a SoftHSMv2 key that both wraps and processes data (see
    /// `migrate::dropin::prepare`): kept as it is under `keys.legacy_wrapping = allow` (which lets
    /// it do both), else made a data key (Tessera would use it for neither), as `tessera-migrate
    /// --drop-wrap-usages` does.
    pub keep_wrap_usages: bool,
}

impl PinPolicy {
    /// Whether a PIN's length is one a PIN may have: `min_length` to [`MAX_PIN`] bytes.
    pub fn length_allowed(&self, pin: &[u8]) -> bool {
        (self.min_length..=MAX_PIN).contains(&pin.len())
    }

    /// Checks the length of a PIN a service is about to set (`C_InitToken`, `C_InitPIN`,
    /// `C_SetPIN`): `CKR_PIN_LEN_RANGE`, the code the specification gives a function that sets a
    /// PIN "too long or too short".
    pub fn check_new_pin(&self, pin: &[u8]) -> Result<()> {
        if self.length_allowed(pin) {
            Ok(())
        } else {
            Err(err(CKR_PIN_LEN_RANGE))
        }
    }
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
    /// Whether the row was checked with the token key (see [`Token::decode_row`]); an object read
    /// without it is read again once someone logs in.
    pub verified: bool,
}

/// An object's stored parts, sealed and authenticated for one revision (see [`Token::seal_parts`]).
struct Sealed {
    private: bool,
    attrs: Vec<u8>,
    secret: Option<Vec<u8>>,
    tag: Option<Vec<u8>>,
}

impl Sealed {
    fn row(&self) -> NewRow<'_> {
        NewRow { private: self.private, attrs: &self.attrs, secret: self.secret.as_deref(), tag: self.tag.as_deref() }
    }
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
    key: Option<Arc<Keys>>,
}

/// The token key, with the key of object tags derived from it at its first use in a login.
pub struct Keys {
    /// SSP: token key
    key: Key256,
    /// SSP: object tag key
    tag: std::sync::OnceLock<crate::crypto::hmac::Key>,
}

impl Keys {
    fn new(key: Key256) -> Keys {
        Keys { key, tag: std::sync::OnceLock::new() }
    }

    /// The tag of an object with no sealed part: HMAC-SHA-256 under a key derived from the token
    /// key.
    fn tag(&self, aad: &[u8]) -> Vec<u8> {
        use crate::crypto::hmac;
        /// The tag key, derived in a frame of its own that the caller then wipes (the derived
        /// value is a `Tag` on the stack).
        #[inline(never)]
        fn derive(token_key: &[u8]) -> hmac::Key {
            let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, token_key), b"tessera object tag key");
            hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
        }
        let key = self.tag.get_or_init(|| {
            let k = derive(&self.key[..]);
            crate::crypto::scrub_stack();
            k
        });
        hmac::sign(key, aad).as_ref().to_vec()
    }
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
    /// A login of this process found nothing to re-seal, and this process has written no
    /// untagged row since: later logins skip the check (see [`Token::reseal`]).
    sealed: std::sync::atomic::AtomicBool,
}

/// GCM invocation counter values of one key material reserved by this process: the next one and
/// the end of the block, and the random bytes that fill an IV's room above a 64-bit counter,
/// chosen when this process first used the key material.
/// SSP: GCM invocation counter
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
            sealed: std::sync::atomic::AtomicBool::new(false),
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
        test: bool,
    ) -> Result<Arc<Token>> {
        policy.check_new_pin(so_pin).map_err(|_| err(CKR_PIN_INCORRECT))?; // C_InitToken has no CKR_PIN_LEN_RANGE
        let iterations = if test { crate::config::TEST_KDF_ITERATIONS } else { policy.iterations };
        let uid = seal::random_bytes(16)?;
        let serial = serial.to_string();
        let slot_id = crate::slots::slot_id_for(Path::new(&serial));
        let token_key = seal::random_key()?;
        let so = seal::wrap_with_pin(&kek, &token_key, so_pin, iterations, &wrap_aad(&uid, Role::So, test))?;
        let row = TokenRow::initialised(uid, serial, label.to_string(), slot_id, so);
        let db = Db::create(tokendir, &row)?;
        Token::open(&db.dir, kek, policy)
    }

    /// Whether this is a test token ([`is_test_row`]), as the token is now: another process may
    /// have re-initialised it.
    pub fn is_test(&self) -> bool {
        self.row().is_ok_and(|r| is_test_row(&r))
    }

    /// The PBKDF2 iterations of new PIN wraps: a test token's (`test`), or the configured count.
    fn iterations(&self, test: bool) -> u32 {
        if test {
            crate::config::TEST_KDF_ITERATIONS
        } else {
            self.policy.iterations
        }
    }

    /// Associated data of a sealed part written before objects were authenticated (format 0).
    fn aad_v0(&self, obj_uid: &[u8], part: &[u8]) -> Vec<u8> {
        [&self.uid[..], obj_uid, part].concat()
    }

    /// What an object's sealed parts and tag authenticate (format 1): the token, the object, the
    /// part, the row's revision and private flag, and `bound` (the SHA-256 of the stored
    /// attribute blob, for the parts beside it). So no attribute can be changed, and no part moved
    /// to another object, row or revision, without the token key.
    fn aad(&self, obj_uid: &[u8], part: &[u8], rev: i64, private: bool, bound: &[u8]) -> Vec<u8> {
        let mut a = Vec::with_capacity(64 + obj_uid.len() + bound.len());
        a.extend_from_slice(b"tessera-object-1");
        for x in [&self.uid[..], obj_uid, part] {
            a.extend_from_slice(&(x.len() as u64).to_be_bytes());
            a.extend_from_slice(x);
        }
        a.extend_from_slice(&rev.to_be_bytes());
        a.push(private as u8);
        a.extend_from_slice(bound);
        a
    }

    fn digest(b: &[u8]) -> Vec<u8> {
        crate::crypto::digest::digest(&crate::crypto::digest::SHA256, b).as_ref().to_vec()
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
                Some(c) if c.rev == rev && (c.verified || key.is_none()) => {
                    objects.insert(id, c);
                }
                _ => {
                    if let Some(r) = db.object(id)? {
                        // An object that fails its integrity check is left out (and logged);
                        // the rest of the token stays usable.
                        if let Ok(c) = self.decode_row(&r, key.as_deref(), row.objects_authenticated) {
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

    /// Decodes and checks a stored object. With the token key, every row is authenticated whole
    /// (format 1: its sealed parts, or its tag when it has none); without it, only what is private
    /// stays unread. A row that fails is refused (`CKR_DEVICE_ERROR`, logged), never used as
    /// found. Rows of format 0 are accepted, the old way, only until the token's rows have been
    /// re-sealed (`authenticated`).
    fn decode_row(&self, r: &crate::store::ObjectRow, key: Option<&Keys>, authenticated: bool) -> Result<Cached> {
        let bad = |why: &str| {
            tracing::error!("token {}: object {} fails its integrity check ({why}); it is not used", self.serial, r.id);
            err(CKR_DEVICE_ERROR)
        };
        let v0 = match r.format {
            0 if authenticated => return Err(bad("unauthenticated row in an authenticated store")),
            0 => true,
            1 => false,
            _ => return Err(bad("unknown format")),
        };
        let mut attrs = if r.private {
            match key {
                None => return Ok(Cached { rev: r.rev, private: true, obj: None, complete: false, verified: false }),
                Some(k) => {
                    let aad =
                        if v0 { self.aad_v0(&r.uid, b"attrs") } else { self.aad(&r.uid, b"attrs", r.rev, true, &[]) };
                    object::decode(&seal::open(&k.key, &aad, &r.attrs).ok_or_else(|| bad("attributes"))?)?
                }
            }
        } else {
            object::decode(&r.attrs)?
        };
        let mut complete = true;
        if let Some(sealed) = &r.secret {
            match key {
                Some(k) => {
                    let aad = if v0 {
                        self.aad_v0(&r.uid, b"secret")
                    } else {
                        self.aad(&r.uid, b"secret", r.rev, r.private, &Self::digest(&r.attrs))
                    };
                    let secret = object::decode(&seal::open(&k.key, &aad, sealed).ok_or_else(|| bad("key material"))?)?;
                    attrs.extend(secret);
                }
                None => complete = false,
            }
        } else if !r.private && !v0 {
            match (&r.tag, key) {
                (Some(tag), Some(k)) => {
                    let want = k.tag(&self.aad(&r.uid, b"tag", r.rev, false, &Self::digest(&r.attrs)));
                    if crate::crypto::constant_time::verify_slices_are_equal(&want, tag).is_err() {
                        return Err(bad("tag"));
                    }
                }
                // Written in a public session, without the token key (tagged at the next login):
                // only what a public session can make. CKA_TRUSTED needs the SO.
                (None, _) if attrs.get(&CKA_TRUSTED).is_some_and(|v| v.first().is_some_and(|b| *b != 0)) => {
                    return Err(bad("trusted without a tag"));
                }
                _ => {}
            }
        }
        let obj = Some(Arc::new(Object::new(attrs)));
        Ok(Cached { rev: r.rev, private: r.private, obj, complete, verified: key.is_some() })
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
    fn key(&self) -> Option<Arc<Keys>> {
        self.login.read().unwrap_or_else(|p| p.into_inner()).key.clone()
    }

    /// Who is logged in, if anyone.
    pub fn logged_in(&self) -> Option<CK_USER_TYPE> {
        match self.who.load(std::sync::atomic::Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// Checks a PIN offered to log in (`C_Login` as the SO or the user, and the context-specific
    /// login), counting failures; gives the token key.
    ///
    /// A PIN of a length no PIN may have now (shorter than `pin.min_length`, longer than
    /// [`MAX_PIN`]) is refused without being tried or counted: `CKR_PIN_INCORRECT`, the code
    /// `C_Login` has for it (`CKR_PIN_LEN_RANGE` is for functions that set a PIN), or what the
    /// PIN's state says first (not set, locked), as for any PIN. Nothing is lost by not counting
    /// it: it is never tried. A PIN set under a lower minimum no longer logs in; see
    /// [`Token::change_pin`] for how it is replaced.
    pub fn verify_pin(&self, role: Role, pin: &[u8]) -> Result<Key256> {
        self.refuse_legacy_if_approved()?;
        if !self.policy.length_allowed(pin) {
            let row = self.row()?;
            let (wrap, failures) = match role {
                Role::So => (&row.so, row.so_failures),
                Role::User => (&row.user, row.user_failures),
            };
            let locked = (role == Role::User && row.user_blocked)
                || (self.policy.max_failures > 0 && failures >= self.policy.max_failures);
            tracing::warn!(
                "token {}: a {:?} PIN outside {}..={} bytes refused without being tried",
                self.serial,
                role,
                self.policy.min_length,
                MAX_PIN
            );
            return Err(err(match (wrap, locked) {
                (None, _) => no_pin(role),
                (Some(_), true) => CKR_PIN_LOCKED,
                (Some(_), false) => CKR_PIN_INCORRECT,
            }));
        }
        self.verify_counted(role, pin)
    }

    /// Checks a PIN of any length against its stored wrap, counting failures; gives the token key.
    ///
    /// The attempt is counted as a failure, durably and under the store's write lock, before the
    /// PIN is derived, and taken back if the PIN was right: however many threads and processes
    /// try at once, at most `max_failures` derivations run for wrong PINs. A stored iteration
    /// count below 600,000 is damage or tampering (`CKR_DEVICE_ERROR`); one below the configured
    /// `pin.kdf_iterations` is raised to it when the PIN proves right.
    fn verify_counted(&self, role: Role, pin: &[u8]) -> Result<Key256> {
        self.refuse_legacy_if_approved()?;
        if let Some(k) = self.verify_cached(role, pin)? {
            return Ok(k);
        }
        let test = self.is_test();
        let floor = if test { crate::config::TEST_KDF_ITERATIONS } else { crate::config::MIN_KDF_ITERATIONS };
        let attempt = lock(&self.db).begin_attempt(role, self.policy.max_failures, floor);
        self.touch();
        let (wrap, count) = match attempt? {
            Attempt::NoPin => return Err(err(no_pin(role))),
            Attempt::Locked => return Err(err(CKR_PIN_LOCKED)),
            // "Depending on the token, the specified PIN may or may not remain locked
            // indefinitely" (the specification's CKR_PIN_LOCKED): this lock lifts with the window.
            Attempt::Throttled => {
                return Err(crate::error::Error::because(
                    CKR_PIN_LOCKED,
                    format_args!(
                        "token {}: {} failed {:?} PIN attempts within {} s: locked until that minute is over",
                        self.serial,
                        self.policy.max_failures,
                        role,
                        crate::store::FAILURE_WINDOW_SECS
                    ),
                ))
            }
            Attempt::BadIterations(n) => {
                tracing::error!(
                    "token {}: the {:?} PIN's stored iteration count ({n}) is below {}: the store is damaged",
                    self.serial,
                    role,
                    crate::config::MIN_KDF_ITERATIONS
                );
                return Err(err(CKR_DEVICE_ERROR));
            }
            Attempt::Counted { wrap, count } => (wrap, count),
            Attempt::Legacy { blob, bridge, pending, source, count } => {
                return self.verify_legacy(role, pin, Legacy { blob, bridge, pending, source, count })
            }
        };
        let aad = wrap_aad(&self.uid, role, test);
        let key = if pin.len() > MAX_PIN { None } else { seal::unwrap_with_pin(&self.kek, &wrap, pin, &aad)? };
        let Some(key) = key else {
            tracing::warn!("token {}: wrong {:?} PIN ({count} consecutive)", self.serial, role);
            // A wrong PIN ends the login cache's entry for this PIN (`pin.cache = keyring`): the
            // next right one derives again. A lockout needs no more.
            crate::store::keyring::revoke(&aad);
            return Err(err(CKR_PIN_INCORRECT));
        };
        lock(&self.db).attempt_succeeded(role, count)?;
        if wrap.iterations < self.iterations(test) {
            let w = seal::wrap_with_pin(&self.kek, &key, pin, self.iterations(test), &aad)?;
            lock(&self.db).set_pin_wrap(role, Some(&w))?;
        }
        self.touch();
        Ok(key)
    }

    /// In the approved mode, a token taken over from SoftHSMv2 whose token key a SoftHSMv2 wrap
    /// still opens (it waits for its first login, or a role has not logged in since) cannot be
    /// logged in to: SoftHSMv2's PIN derivation (1,500 rounds of SHA-256) is not the approved
    /// mode's. `CKR_PIN_LOCKED` (the token information shows both PINs locked), no attempt counted,
    /// and the log says what to do.
    fn refuse_legacy_if_approved(&self) -> Result<()> {
        if !self.policy.approved {
            return Ok(());
        }
        let row = self.row()?;
        if !row.has_legacy() {
            return Ok(());
        }
        let e = crate::error::Error::because(
            CKR_PIN_LOCKED,
            format_args!(
                "token {}: taken over from SoftHSMv2 ({}), and {}: SoftHSMv2's PIN derivation is not the approved \
                 mode's, so the approved mode logs in to it with neither PIN. Migrate the SoftHSMv2 token with \
                 `tessera-migrate from-softhsm2` (both PINs), or log in once with each PIN in the non-approved mode",
                self.serial,
                row.legacy_source.as_deref().unwrap_or("?"),
                if row.legacy_state == crate::store::LEGACY_PENDING {
                    "not migrated yet"
                } else {
                    "one of its PINs has not logged in since its migration"
                }
            ),
        );
        tracing::warn!(
            "token {}: login refused in the approved mode (SoftHSMv2 token): see the call's cause",
            self.serial
        );
        Err(e)
    }

    /// A PIN attempt counted on a role that has only SoftHSMv2's wrap of SoftHSMv2's token key
    /// (see `migrate::dropin`). A wrong PIN stays counted, as any. A right one either migrates
    /// the token (its first login: `pending`) or replaces the role's SoftHSMv2 wrap with a Tessera
    /// wrap of Tessera's token key (which `bridge` seals under SoftHSMv2's); gives the token key.
    fn verify_legacy(&self, role: Role, pin: &[u8], l: Legacy) -> Result<Key256> {
        let wrong = || {
            tracing::warn!("token {}: wrong {:?} PIN ({} consecutive; SoftHSMv2 token)", self.serial, role, l.count);
            err(CKR_PIN_INCORRECT)
        };
        // A right PIN whose login cannot go on (or that another process's result answers): its
        // attempt is not a failure.
        let taken_back = || {
            if let Err(e) = lock(&self.db).attempt_succeeded(role, l.count) {
                tracing::error!(
                    "token {}: {:?} PIN attempt not taken back: {}",
                    self.serial,
                    role,
                    crate::record::described(e)
                );
            }
            self.touch();
        };
        let take_back = |e: crate::error::Error| {
            taken_back();
            e
        };
        let aad = wrap_aad(&self.uid, role, false);
        if !l.pending {
            let Some(softhsm_key) = crate::migrate::softhsm2::unwrap_pin_blob(&l.blob, pin) else {
                return Err(wrong());
            };
            let opened = l
                .bridge
                .as_deref()
                .and_then(|b| seal::open(&softhsm_key, &crate::migrate::dropin::bridge_aad(&self.uid), b));
            let Some(key) = opened.and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok()).map(Zeroizing::new) else {
                tracing::error!(
                    "token {}: the token key sealed for SoftHSMv2's {:?} PIN does not open",
                    self.serial,
                    role
                );
                return Err(take_back(err(CKR_DEVICE_ERROR)));
            };
            let w = seal::wrap_with_pin(&self.kek, &key, pin, self.policy.iterations, &aad).map_err(take_back)?;
            let converted = lock(&self.db).convert_legacy(role, l.count, &l.blob, &w);
            if !converted.map_err(take_back)? {
                // Another process (or C_InitPIN) replaced the wrap meanwhile: the PIN is checked
                // again against what is there now.
                taken_back();
                return self.verify_counted(role, pin);
            }
            tracing::info!(
                "token {}: the {:?} PIN logged in for the first time since the migration from SoftHSMv2; it now has \
                 Tessera's wrap",
                self.serial,
                role
            );
            self.touch();
            return Ok(key);
        }
        let source = l.source.ok_or_else(|| take_back(err(CKR_DEVICE_ERROR)))?;
        let prepared = match crate::migrate::dropin::prepare(
            Path::new(&source),
            &self.serial,
            role,
            pin,
            !self.policy.keep_wrap_usages,
        ) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(wrong()),
            Err(e) => return Err(take_back(e)),
        };
        let key = seal::random_key()?;
        let keys = Keys::new(key.clone());
        let mut sealed = Vec::with_capacity(prepared.objects.len());
        for o in &prepared.objects {
            let uid = Self::obj_uid(o);
            let s = self.seal_parts(o, &uid, 1, Some(&keys)).map_err(take_back)?;
            sealed.push((uid, s));
        }
        let rows: Vec<(Vec<u8>, NewRow<'_>)> = sealed.iter().map(|(u, s)| (u.clone(), s.row())).collect();
        let w = seal::wrap_with_pin(&self.kek, &key, pin, self.policy.iterations, &aad).map_err(take_back)?;
        let bridge = match &prepared.other_blob {
            Some(_) => Some(
                seal::seal(&prepared.softhsm_key, &crate::migrate::dropin::bridge_aad(&self.uid), &key[..])
                    .map_err(take_back)?,
            ),
            None => None,
        };
        let check = |tx: &crate::store::Tx<'_>, ids: &[i64]| -> Result<()> {
            for (id, want) in ids.iter().zip(&prepared.objects) {
                let r = tx.object(*id)?.ok_or(err(CKR_DEVICE_ERROR))?;
                match self.decode_row(&r, Some(&keys), true)? {
                    Cached { obj: Some(o), complete: true, .. } if o.attrs == want.attrs => {}
                    _ => {
                        return Err(crate::error::Error::because(
                            CKR_DEVICE_ERROR,
                            format_args!("token {}: a migrated object reads back different; nothing kept", self.serial),
                        ))
                    }
                }
            }
            Ok(())
        };
        let done = lock(&self.db)
            .complete_legacy_migration(
                role,
                l.count,
                &w,
                prepared.other_blob.as_deref(),
                bridge.as_deref(),
                &rows,
                check,
            )
            .map_err(take_back)?;
        if done.is_none() {
            // Another process migrated it first: the PIN is checked against its result.
            taken_back();
            return self.verify_counted(role, pin);
        }
        tracing::info!(
            "token {}: migrated from SoftHSMv2 ({}, {} backend, {} objects) at its first login ({:?} PIN); Tessera uses \
                 its own copy from now on, and the SoftHSMv2 copy is no longer updated",
            self.serial,
            source,
            prepared.backend,
            prepared.objects.len(),
            role
        );
        self.touch();
        Ok(key)
    }

    /// The right PIN whose key this process derived before (`KekCache`), on a PIN neither locked
    /// nor failed since: no derivation runs, so nothing needs counting, and nothing is written
    /// (as many logins per second as before attempts were counted). `None` sends the attempt the
    /// counted way: a PIN not seen before, a wrong one, or a PIN with failures to take back.
    fn verify_cached(&self, role: Role, pin: &[u8]) -> Result<Option<Key256>> {
        let row = self.row()?;
        let test = is_test_row(&row);
        let (wrap, failures) = match role {
            Role::So => (row.so, row.so_failures),
            Role::User => (row.user, row.user_failures),
        };
        let Some(wrap) = wrap else { return Ok(None) };
        if failures > 0 || (role == Role::User && row.user_blocked) || wrap.iterations < self.iterations(test) {
            return Ok(None);
        }
        Ok(seal::unwrap_cached(&self.kek, &wrap, pin, &wrap_aad(&self.uid, role, test)))
    }

    /// Records a login (the PIN already verified).
    pub fn set_login(&self, user: CK_USER_TYPE, key: Key256) {
        {
            let mut l = self.login.write().unwrap_or_else(|p| p.into_inner());
            l.user = Some(user);
            self.who.store(user + 1, std::sync::atomic::Ordering::Release);
            l.key = Some(Arc::new(Keys::new(key)));
        }
        // Complete objects stay cached; the next access opens the sealed ones.
        self.touch();
        if let Err(e) = self.reseal() {
            tracing::error!("token {}: re-sealing objects failed: {}", self.serial, crate::record::described(e));
        }
    }

    /// With the token key in hand (after a login): re-seals, each at its next revision, the rows
    /// written before objects were authenticated and the public rows written without the key, so
    /// that from now on every change to them is noticed. Rows that fail their check are left as
    /// they are (and stay refused). Once no row of the old format is left, the token records that
    /// every row is authenticated, and rows of the old format are refused from then on.
    fn reseal(&self) -> Result<()> {
        use std::sync::atomic::Ordering::{Acquire, Release};
        if self.sealed.load(Acquire) {
            return Ok(());
        }
        let mut db = lock(&self.db);
        if !db.needs_reseal()? {
            self.sealed.store(true, Release);
            return Ok(());
        }
        // After the refresh, which logs this process out if another re-initialised the token.
        self.refresh(&db)?;
        let Some(key) = self.key() else { return Ok(()) };
        let (authenticated, epoch) = {
            let v = self.view.read().unwrap_or_else(|p| p.into_inner());
            (v.row.objects_authenticated, v.row.epoch)
        };
        let n = db.transact(|tx| {
            if tx.epoch()? != epoch {
                // Re-initialised since: the key is void. The next access logs this process out.
                return Ok(0);
            }
            let mut n = 0;
            let mut failed = false;
            for id in tx.unsealed_objects()? {
                let Some(r) = tx.object(id)? else { continue };
                let Ok(Cached { obj: Some(obj), complete: true, .. }) = self.decode_row(&r, Some(&key), authenticated)
                else {
                    failed |= r.format == 0;
                    continue;
                };
                let sealed = self.seal_parts(&obj, &r.uid, r.rev + 1, Some(&key))?;
                tx.update_object(id, r.rev + 1, &sealed.row())?;
                n += 1;
            }
            if !authenticated && !failed {
                tx.set_objects_authenticated()?;
            }
            Ok(n)
        })?;
        if n > 0 {
            tracing::info!("token {}: {n} objects re-sealed", self.serial);
        }
        drop(db);
        self.touch();
        Ok(())
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
        self.policy.check_new_pin(pin)?;
        let key = self.key().ok_or(err(CKR_USER_NOT_LOGGED_IN))?;
        // The keys derived from PINs that no longer open a wrap go (this process's cache, and the
        // login cache's entry).
        self.kek.clear();
        let test = self.is_test();
        let aad = wrap_aad(&self.uid, Role::User, test);
        crate::store::keyring::revoke(&aad);
        let w = seal::wrap_with_pin(&self.kek, &key.key, pin, self.iterations(test), &aad)?;
        lock(&self.db).set_pin_wrap(Role::User, Some(&w))?;
        self.touch();
        Ok(())
    }

    /// `C_SetPIN`: checks the new PIN's length (before the old PIN is tried: a call that cannot
    /// succeed spends no attempt), then the old PIN, then rewraps the token key under the new one.
    /// Objects are untouched: only the wrap changes.
    ///
    /// In the non-approved mode the old PIN may have any length, so that a PIN set under a lower
    /// `pin.min_length` can be replaced. In the approved mode the old PIN obeys the rules of a
    /// login ([`Token::verify_pin`]): knowing it lets one set a PIN and then log in, so a PIN of
    /// 4 digits accepted here would be guessed with probability 1/10^4 in one attempt, not the
    /// approved mode's 1/10^6. There a short PIN is replaced by the SO (`C_InitPIN`, for the
    /// user's) or in the non-approved mode.
    pub fn change_pin(&self, role: Role, old: &[u8], new: &[u8]) -> Result<()> {
        self.policy.check_new_pin(new)?;
        let key = if self.policy.approved { self.verify_pin(role, old)? } else { self.verify_counted(role, old)? };
        self.kek.clear();
        let test = self.is_test();
        let aad = wrap_aad(&self.uid, role, test);
        crate::store::keyring::revoke(&aad);
        let w = seal::wrap_with_pin(&self.kek, &key, new, self.iterations(test), &aad)?;
        lock(&self.db).set_pin_wrap(role, Some(&w))?;
        self.touch();
        // A token taken over from SoftHSMv2 whose other role has not logged in yet keeps
        // SoftHSMv2's wrap for it, and Tessera's token key sealed under SoftHSMv2's token key,
        // which SoftHSMv2's own files (never written) still give to the old PIN: until that
        // role's first login, the old PIN still opens the token to whoever reads the store and
        // SoftHSMv2's files. No PIN change can close this without the other role's PIN; the log
        // says so (docs/drop-in.md).
        if let Ok(row) = self.row() {
            let other = match role {
                Role::So => row.user_legacy.is_some(),
                _ => row.so_legacy.is_some(),
            };
            if other && row.legacy_key.is_some() {
                tracing::warn!(
                    token = %self.serial,
                    "PIN changed, but the other role still opens this token through SoftHSMv2's PIN wrap: \
                     until it logs in once, the old PIN still opens the token offline with SoftHSMv2's files \
                     (docs/drop-in.md)"
                );
            }
        }
        Ok(())
    }

    /// `C_InitToken` on an initialised token: the SO PIN must match, and is set again, so it must
    /// also have a length a new PIN may have (checked first, spending no attempt); then every
    /// object goes, with the user PIN, and a new token key replaces the old.
    pub fn reinit(&self, so_pin: &[u8], label: &str) -> Result<()> {
        self.policy.check_new_pin(so_pin).map_err(|_| err(CKR_PIN_INCORRECT))?; // C_InitToken has no CKR_PIN_LEN_RANGE
        self.verify_counted(Role::So, so_pin)?;
        self.kek.clear();
        let test = self.is_test();
        for role in [Role::So, Role::User] {
            crate::store::keyring::revoke(&wrap_aad(&self.uid, role, test));
        }
        let key = seal::random_key()?;
        // C_InitToken makes a token like any other: a test token re-initialised so is one no more.
        let so = seal::wrap_with_pin(
            &self.kek,
            &key,
            so_pin,
            self.policy.iterations,
            &wrap_aad(&self.uid, Role::So, false),
        )?;
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

    /// Seals an object for revision `rev` of its row (see [`Token::aad`]): private attributes and
    /// key material under the token key, and a tag on a row with neither when the key is at hand.
    fn seal_parts(&self, obj: &Object, uid: &[u8], rev: i64, key: Option<&Keys>) -> Result<Sealed> {
        let private = obj.is_private();
        let (plain, secret) = obj.split();
        // A trusted object (only the SO makes one) is written with its tag or not at all: a row
        // without one is refused as trusted (see `decode_row`).
        if (private || !secret.is_empty() || obj.flag(CKA_TRUSTED)) && key.is_none() {
            return Err(err(CKR_USER_NOT_LOGGED_IN));
        }
        let attrs = object::encode(&plain)?;
        let attrs = match (key, private) {
            (Some(k), true) => seal::seal(&k.key, &self.aad(uid, b"attrs", rev, true, &[]), &attrs)?,
            _ => attrs.to_vec(),
        };
        let (secret, tag) = match key {
            Some(k) if !secret.is_empty() => {
                let aad = self.aad(uid, b"secret", rev, private, &Self::digest(&attrs));
                (Some(seal::seal(&k.key, &aad, &object::encode(&secret)?)?), None)
            }
            Some(k) if !private => (None, Some(k.tag(&self.aad(uid, b"tag", rev, false, &Self::digest(&attrs))))),
            _ => (None, None),
        };
        Ok(Sealed { private, attrs, secret, tag })
    }

    fn obj_uid(obj: &Object) -> Vec<u8> {
        obj.get(CKA_UNIQUE_ID).unwrap_or(&[]).to_vec()
    }

    /// The name of a key material's GCM IV space on this token: HMAC-SHA-256 keyed with the key
    /// value over a fixed label, the kind of counter (`wide`: 64 bits) and the token's unique ID.
    /// Every copy of the key (copied, unwrapped again, imported again, a session key with the same
    /// value) has the same; the name shows nothing of the value.
    pub fn iv_space(&self, key_value: &[u8], wide: bool) -> Vec<u8> {
        use crate::crypto::hmac;
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
    /// `kid` is the key material's counter name, [`Token::iv_space`] of its value.
    pub fn next_iv_counter(&self, kid: &[u8], wide: bool) -> Result<(u64, [u8; 4])> {
        let mut c = lock(&self.counters);
        if !c.contains_key(kid) {
            let mut high = [0u8; 4];
            high.copy_from_slice(&seal::random_bytes(4)?);
            c.insert(kid.to_vec(), IvBlock { next: 0, end: 0, high, blocks: 0 });
        }
        let entry = c.get_mut(kid).ok_or(err(CKR_GENERAL_ERROR))?;
        if entry.next == entry.end {
            let distance = match entry.blocks == 0 && wide {
                true => u32::from_be_bytes(seal::random_bytes(4)?.try_into().map_err(|_| err(CKR_GENERAL_ERROR))?),
                false => 0,
            };
            let block: u64 = if wide { 1 << 16 } else { 256 << entry.blocks.min(6) };
            let start = lock(&self.db).reserve_iv_block(kid, block, distance.into())?;
            (entry.next, entry.end) = (start, start + block);
            entry.blocks = entry.blocks.saturating_add(1);
        }
        let v = entry.next;
        entry.next += 1;
        Ok((v, entry.high))
    }

    /// A row written without the token key (public, no key material, no tag): the next login
    /// of this process tags it.
    fn note_untagged(&self, sealed: &Sealed) {
        if sealed.tag.is_none() && sealed.secret.is_none() && !sealed.private {
            self.sealed.store(false, std::sync::atomic::Ordering::Release);
        }
    }

    /// Stores a new token object in one transaction; returns its id.
    pub fn insert(&self, obj: Object) -> Result<i64> {
        let uid = Self::obj_uid(&obj);
        let mut db = lock(&self.db);
        self.refresh(&db)?;
        // Taken after the refresh, which logs this process out if another re-initialised the token.
        let key = self.key();
        let sealed = self.seal_parts(&obj, &uid, 1, key.as_deref())?;
        let id = db.insert_object(&uid, &sealed.row())?;
        self.note_untagged(&sealed);
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        let c = Cached {
            rev: 1,
            private: sealed.private,
            obj: Some(Arc::new(obj)),
            complete: true,
            verified: key.is_some(),
        };
        v.objects.insert(id, c);
        drop(v);
        self.changed();
        Ok(id)
    }

    /// Changes a token object: reads it as stored, gives it to `change`, and writes the result,
    /// all in one store transaction, so that no concurrent change (of this or another process) is
    /// lost or undone.
    pub fn modify(&self, id: i64, change: impl FnOnce(&Object) -> Result<Object>) -> Result<()> {
        let mut db = lock(&self.db);
        self.refresh(&db)?;
        let key = self.key();
        let authenticated = self.view.read().unwrap_or_else(|p| p.into_inner()).row.objects_authenticated;
        let (rev, private, obj) = db.transact(|tx| {
            let r = tx.object(id)?.ok_or(err(CKR_OBJECT_HANDLE_INVALID))?;
            let current = self.decode_row(&r, key.as_deref(), authenticated)?;
            let current = match current.obj {
                Some(o) if current.complete => o,
                _ => return Err(err(CKR_USER_NOT_LOGGED_IN)),
            };
            let new = change(&current)?;
            let rev = r.rev + 1;
            let sealed = self.seal_parts(&new, &r.uid, rev, key.as_deref())?;
            if !tx.update_object(id, rev, &sealed.row())? {
                return Err(err(CKR_OBJECT_HANDLE_INVALID));
            }
            self.note_untagged(&sealed);
            Ok((rev, sealed.private, new))
        })?;
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        let c = Cached { rev, private, obj: Some(Arc::new(obj)), complete: true, verified: key.is_some() };
        v.objects.insert(id, c);
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

/// A PIN attempt on a role with only SoftHSMv2's wrap (see [`Attempt::Legacy`]).
struct Legacy {
    blob: Vec<u8>,
    bridge: Option<Vec<u8>>,
    pending: bool,
    source: Option<String>,
    count: u32,
}

/// What logging in with a PIN that was never set gives.
fn no_pin(role: Role) -> CK_RV {
    match role {
        Role::So => CKR_GENERAL_ERROR,
        Role::User => CKR_USER_PIN_NOT_INITIALIZED,
    }
}

/// Binds a PIN wrap to its token and role, so a wrap cannot be moved to another token or role.
/// Whether a token row is a test token's: its SO PIN wrap derives with
/// `config::TEST_KDF_ITERATIONS` (every wrap of a test token is bound to that by [`wrap_aad`]).
fn is_test_row(row: &TokenRow) -> bool {
    row.so.as_ref().is_some_and(|w| w.iterations == crate::config::TEST_KDF_ITERATIONS)
}

/// What a PIN wrap of the token key authenticates: the token, the role, and whether the token
/// is a test token (its wraps derive with 1,000 iterations). The last binds the test-ness read from
/// the store's iteration column to the wraps: a real token whose column is lowered to the test
/// count opens none of its wraps (made without the mark), so no new wrap is ever made at the test
/// count for it.
fn wrap_aad(token_uid: &[u8], role: Role, test: bool) -> Vec<u8> {
    let tag: &[u8] = match role {
        Role::So => b"so-pin",
        Role::User => b"user-pin",
    };
    let mark: &[u8] = if test { b"-test" } else { b"" };
    [token_uid, tag, mark].concat()
}
