//! Object management (spec §5.8): handles, create/copy/destroy, attributes and search.

use crate::error::{err, Result};
use crate::module::{lock, Module};
use crate::object::template::{self, Actor, Origin};
use crate::object::{attrs, Object, Template};
use crate::session::{FindOp, Session};
use crate::token::Token;
use cryptoki_sys::*;
use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// What a handle points at.
#[derive(Clone)]
pub enum Target {
    /// A token object, by store id.
    Token { token: Arc<Token>, id: i64, private: bool },
    /// A session object, living in this table only.
    Session { owner: CK_SESSION_HANDLE, token: Arc<Token>, obj: Arc<Object> },
}

impl Target {
    fn token(&self) -> &Arc<Token> {
        match self {
            Target::Token { token, .. } | Target::Session { token, .. } => token,
        }
    }
}

/// Object handles of this process. Token objects keep their handle for as long as they stay
/// visible; handles are never reused.
#[derive(Default)]
pub struct Handles {
    next: CK_OBJECT_HANDLE,
    map: HashMap<CK_OBJECT_HANDLE, Target>,
    by_token: HashMap<(usize, i64), CK_OBJECT_HANDLE>,
    /// Session objects by owning session, so closing a session touches only its own objects. A
    /// set, so that destroying one of a session's many objects does not search them all (an
    /// application that makes a key per operation and destroys it later, as with KEM keys).
    by_session: HashMap<CK_SESSION_HANDLE, rustc_hash::FxHashSet<CK_OBJECT_HANDLE>>,
}

impl Handles {
    fn alloc(&mut self, t: Target) -> CK_OBJECT_HANDLE {
        self.next += 1;
        let h = self.next;
        match &t {
            Target::Token { token, id, .. } => {
                self.by_token.insert((Arc::as_ptr(token) as usize, *id), h);
            }
            Target::Session { owner, .. } => {
                self.by_session.entry(*owner).or_default().insert(h);
            }
        }
        self.map.insert(h, t);
        h
    }

    fn token_handle(&mut self, token: &Arc<Token>, id: i64, private: bool) -> CK_OBJECT_HANDLE {
        match self.by_token.get(&(Arc::as_ptr(token) as usize, id)) {
            Some(h) => *h,
            None => self.alloc(Target::Token { token: token.clone(), id, private }),
        }
    }

    fn remove(&mut self, h: CK_OBJECT_HANDLE) {
        match self.map.remove(&h) {
            Some(Target::Token { token, id, .. }) => {
                self.by_token.remove(&(Arc::as_ptr(&token) as usize, id));
            }
            Some(Target::Session { owner, .. }) => {
                if let Some(v) = self.by_session.get_mut(&owner) {
                    v.remove(&h);
                }
            }
            None => {}
        }
    }

    /// Removes the handles `keep` rejects; whether there were any.
    fn retain(&mut self, mut keep: impl FnMut(&Target) -> bool) -> bool {
        let gone: Vec<_> = self.map.iter().filter(|(_, t)| !keep(t)).map(|(h, _)| *h).collect();
        let any = !gone.is_empty();
        for h in gone {
            self.remove(h);
        }
        any
    }
}

/// The handle table behind its lock, with an epoch that moves on at every change to it. Sessions
/// keep the keys they resolved (`session::KeyCache`) and trust them while the epoch stays, so starting an operation with a key writes to no lock or counter that other threads'
/// sessions write too: on two cores that sharing, not the work, set the pace of short operations.
#[derive(Default)]
pub struct HandleTable {
    map: RwLock<Handles>,
    epoch: Padded<AtomicU64>,
}

/// A value alone on its cache lines, so that reading it does not share a line with anything
/// written.
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl HandleTable {
    pub fn read(&self) -> RwLockReadGuard<'_, Handles> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The table for a change. The epoch moves on while the lock is held: a reader that saw the
    /// old epoch resolves again on its next use.
    pub fn write(&self) -> RwLockWriteGuard<'_, Handles> {
        let g = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.0.fetch_add(1, Ordering::AcqRel);
        g
    }

    /// The current epoch: read it before resolving what is to be kept.
    pub fn epoch(&self) -> u64 {
        self.epoch.0.load(Ordering::Acquire)
    }
}

/// The owner of the validation objects: no session has handle 0, so none closes them.
const VALIDATION_OWNER: CK_SESSION_HANDLE = 0;

/// One attribute asked for with `C_GetAttributeValue`.
pub enum AttrAnswer {
    Value(Vec<u8>),
    Sensitive,
    Invalid,
}

impl Module {
    /// Session objects die with their session.
    pub fn forget_session_objects(&self, s: CK_SESSION_HANDLE) {
        let gone = {
            let mut handles = self.handles.write();
            let gone = handles.by_session.remove(&s).unwrap_or_default();
            for h in &gone {
                handles.map.remove(h);
            }
            !gone.is_empty()
        };
        if gone {
            self.evict_stale_keys();
        }
    }

    /// After logout: private session objects are destroyed, private token object handles die.
    pub fn forget_private_handles(&self, token: &Arc<Token>) {
        let gone = self.handles.write().retain(|t| match t {
            Target::Token { token: tk, private, .. } => !(Arc::ptr_eq(tk, token) && *private),
            Target::Session { token: tk, obj, .. } => !(Arc::ptr_eq(tk, token) && obj.is_private()),
        });
        if gone {
            self.evict_stale_keys();
        }
    }

    /// After re-initialisation every handle into the token is void.
    pub fn forget_token_handles(&self, token: &Arc<Token>) {
        if self.handles.write().retain(|t| !Arc::ptr_eq(t.token(), token)) {
            self.evict_stale_keys();
        }
    }

    /// Drops the keys sessions keep (`session::KeyCache`) from before the handle table last
    /// changed, so that a destroyed key leaves memory now rather than at those sessions' next use
    /// (its material is wiped as its last reference goes). Called after a key may have gone, never
    /// with a session's operation lock held.
    pub fn evict_stale_keys(&self) {
        let epoch = self.handles.epoch();
        for s in self.sessions.all() {
            lock(&s.ops).keys.entries.retain(|e| e.epoch == epoch);
        }
    }

    /// Resolves a handle for a session: same token, and private objects only with the user logged in.
    pub fn resolve(&self, s: &Session, h: CK_OBJECT_HANDLE) -> Result<(Target, Arc<Object>)> {
        let target = {
            let handles = self.handles.read();
            let t = handles.map.get(&h).ok_or(err(CKR_OBJECT_HANDLE_INVALID))?;
            // Compared before anything is cloned: a handle of another token is simply invalid.
            if !Arc::ptr_eq(t.token(), &s.token) {
                return Err(err(CKR_OBJECT_HANDLE_INVALID));
            }
            t.clone()
        };
        let obj = match &target {
            Target::Session { obj, .. } => obj.clone(),
            Target::Token { token, id, .. } => match token.object(*id)? {
                Some(o) => o,
                None => {
                    self.handles.write().remove(h);
                    return Err(err(CKR_OBJECT_HANDLE_INVALID));
                }
            },
        };
        if obj.is_private() && !s.user() {
            return Err(err(CKR_OBJECT_HANDLE_INVALID));
        }
        Ok((target, obj))
    }

    /// Checks that a session may make or change an object with these storage attributes.
    fn check_write(&self, s: &Session, obj: &Object) -> Result<()> {
        if obj.is_token() && !s.rw {
            return Err(err(CKR_SESSION_READ_ONLY));
        }
        if obj.is_private() && !s.user() {
            return Err(err(CKR_USER_NOT_LOGGED_IN));
        }
        Ok(())
    }

    /// Stores a new object for a session and gives its handle.
    pub fn store_object(&self, s: &Session, obj: Object) -> Result<CK_OBJECT_HANDLE> {
        self.check_write(s, &obj)?;
        if obj.is_token() {
            let private = obj.is_private();
            let id = s.token.insert(obj)?;
            Ok(self.handles.write().token_handle(&s.token, id, private))
        } else {
            let t = Target::Session { owner: s.handle, token: s.token.clone(), obj: Arc::new(obj) };
            s.made_objects.store(true, std::sync::atomic::Ordering::Release);
            Ok(self.handles.write().alloc(t))
        }
    }

    /// Who acts in a session, and under which key-management rules (`keys.legacy_wrapping`
    /// has no effect in the approved mode).
    pub fn actor(&self, s: &Session) -> Actor {
        Actor { so: s.so(), legacy: self.legacy_wrapping() }
    }

    /// Whether the legacy key-management rules apply (see `Config::legacy_wrapping`).
    pub fn legacy_wrapping(&self) -> bool {
        self.cfg.legacy_wrapping && self.cfg.mode != crate::policy::Mode::Approved
    }

    /// `C_CreateObject`. An imported key is marked approved when its type and size are
    /// (`services::keys::stamp`).
    pub fn create_object(&self, h: CK_SESSION_HANDLE, template: &Template) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let mut obj = template::build(template, Vec::new(), Origin::Created, self.actor(&s))?;
        crate::services::keys::stamp(&mut obj, true);
        self.store_object(&s, obj)
    }

    /// `C_CopyObject`.
    pub fn copy_object(
        &self,
        h: CK_SESSION_HANDLE,
        src: CK_OBJECT_HANDLE,
        template: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let (target, obj) = self.resolve(&s, src)?;
        if let Target::Token { token, id, .. } = &target {
            if !token.is_complete(*id) && obj.class() != CKO_DATA && obj.class() != CKO_CERTIFICATE {
                return Err(err(CKR_USER_NOT_LOGGED_IN));
            }
        }
        let copy = template::apply_copy(&obj, template, self.actor(&s))?;
        self.store_object(&s, copy)
    }

    /// `C_DestroyObject`.
    pub fn destroy_object(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<()> {
        let s = self.session(h)?;
        let (target, obj) = self.resolve(&s, oh)?;
        if obj.is_token() && !s.rw {
            return Err(err(CKR_SESSION_READ_ONLY));
        }
        if !obj.flag(CKA_DESTROYABLE) {
            return Err(err(CKR_ACTION_PROHIBITED));
        }
        self.remove(oh, target, obj)
    }

    /// Takes back an object this call made for session `s` and whose record could not be kept
    /// (`record::finish`): it goes whatever its `CKA_DESTROYABLE` says, as if it had never been
    /// made, and its handle is never handed out.
    pub fn withdraw(&self, s: &crate::module::SessionRef, oh: CK_OBJECT_HANDLE) -> Result<()> {
        let (target, obj) = self.resolve(s, oh)?;
        self.remove(oh, target, obj)
    }

    /// Removes the object behind handle `oh`, resolved to `target` and `obj`: from the store for
    /// a token object, then the handle, then the keys sessions cached from it
    /// (`C_DestroyObject`, [`Self::withdraw`]).
    fn remove(&self, oh: CK_OBJECT_HANDLE, target: Target, obj: Arc<Object>) -> Result<()> {
        if let Target::Token { token, id, .. } = &target {
            token.delete(*id)?;
        }
        self.handles.write().remove(oh);
        drop(target);
        // The handle is gone, so no session can cache the object from now on; one that did holds
        // a reference to it. With none held but this one, the object leaves memory (and its
        // material is wiped) right here, and the sessions' caches have nothing of it to drop.
        let cached = Arc::strong_count(&obj) > 1;
        drop(obj);
        if cached {
            self.evict_stale_keys();
        }
        Ok(())
    }

    /// `C_GetObjectSize`.
    pub fn object_size(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<usize> {
        let s = self.session(h)?;
        Ok(self.resolve(&s, oh)?.1.size())
    }

    /// `C_GetAttributeValue`: one answer per asked attribute, in order.
    pub fn get_attributes(
        &self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrAnswer>> {
        let s = self.session(h)?;
        let (_, obj) = self.resolve(&s, oh)?;
        let tables = obj.tables();
        // Keys stored by builds that left `CKA_PUBLIC_KEY_INFO` empty show it computed.
        let computed_info =
            if types.contains(&CKA_PUBLIC_KEY_INFO) && obj.get(CKA_PUBLIC_KEY_INFO).is_some_and(|v| v.is_empty()) {
                crate::object::spki::public_key_info(&obj).ok().flatten()
            } else {
                None
            };
        Ok(types
            .iter()
            .map(|t| {
                let t = &attrs::canonical(*t);
                let spec = attrs::find(&tables, *t);
                match (spec, obj.get(*t)) {
                    (Some(sp), _) if sp.flags & attrs::SECRET != 0 && !obj.material_readable() => AttrAnswer::Sensitive,
                    (Some(_), Some(_)) if *t == CKA_PUBLIC_KEY_INFO && computed_info.is_some() => {
                        AttrAnswer::Value(computed_info.clone().unwrap_or_default())
                    }
                    (Some(_), Some(v)) => AttrAnswer::Value(v.to_vec()),
                    // Key material that the locked token cannot open now.
                    (Some(sp), None) if sp.flags & attrs::SECRET != 0 => AttrAnswer::Sensitive,
                    _ => AttrAnswer::Invalid,
                }
            })
            .collect())
    }

    /// `C_SetAttributeValue`.
    pub fn set_attributes(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE, template: &Template) -> Result<()> {
        let s = self.session(h)?;
        let (target, obj) = self.resolve(&s, oh)?;
        if obj.is_token() && !s.rw {
            return Err(err(CKR_SESSION_READ_ONLY));
        }
        let new = template::apply_set(&obj, template, self.actor(&s))?;
        match target {
            Target::Token { token, id, .. } => {
                if !token.is_complete(id) {
                    return Err(err(CKR_USER_NOT_LOGGED_IN));
                }
                // Applied again to the object as stored, inside the store's transaction: a
                // concurrent change made since it was read is kept, never overwritten.
                token.modify(id, |current| template::apply_set(current, template, self.actor(&s)))
            }
            Target::Session { owner, token, .. } => {
                {
                    // Applied again to the object as the table holds it now, under the table's
                    // lock: a concurrent change by another thread is kept, never overwritten.
                    let mut handles = self.handles.write();
                    let current = match handles.map.get(&oh) {
                        Some(Target::Session { obj, .. }) => obj.clone(),
                        _ => return Err(err(CKR_OBJECT_HANDLE_INVALID)),
                    };
                    let new = if Arc::ptr_eq(&current, &obj) {
                        new
                    } else {
                        template::apply_set(&current, template, self.actor(&s))?
                    };
                    handles.map.insert(oh, Target::Session { owner, token, obj: Arc::new(new) });
                }
                self.evict_stale_keys();
                Ok(())
            }
        }
    }

    /// The module's validation object on a token (PKCS#11 3.2 `CKO_VALIDATION`), made the first
    /// time an application searches the token. It describes the FIPS 140-3 validation the module
    /// is built for; its flag is what `C_GetSessionValidationFlags` and
    /// `CKA_OBJECT_VALIDATION_FLAGS` report for approved operations and keys.
    fn ensure_validation_object(&self, token: &Arc<Token>) {
        use crate::object::{bool_, ulong};
        let mut handles = self.handles.write();
        let present = handles
            .map
            .values()
            .any(|t| matches!(t, Target::Session { owner: VALIDATION_OWNER, token: tk, .. } if Arc::ptr_eq(tk, token)));
        if present {
            return;
        }
        let (major, minor) = crate::services::general::library_version();
        let attrs: crate::object::AttrMap = [
            (CKA_CLASS, ulong(CKO_VALIDATION)),
            (CKA_TOKEN, bool_(true)),
            (CKA_PRIVATE, bool_(false)),
            (CKA_MODIFIABLE, bool_(false)),
            (CKA_COPYABLE, bool_(false)),
            (CKA_DESTROYABLE, bool_(false)),
            (CKA_LABEL, b"Tessera FIPS 140-3 validation".to_vec().into()),
            (CKA_UNIQUE_ID, b"tessera-validation-fips-140-3".to_vec().into()),
            (CKA_VALIDATION_TYPE, ulong(CKV_TYPE_SOFTWARE)),
            (CKA_VALIDATION_VERSION, vec![3, 0].into()),
            (CKA_VALIDATION_LEVEL, ulong(1)),
            (CKA_VALIDATION_MODULE_ID, format!("Tessera {major}.{minor}").into_bytes().into()),
            (CKA_VALIDATION_FLAG, ulong(crate::object::attrs::VALIDATION_FLAG_FIPS)),
            (CKA_VALIDATION_AUTHORITY_TYPE, ulong(CKV_AUTHORITY_TYPE_NIST_CMVP)),
            (CKA_VALIDATION_COUNTRY, b"US".to_vec().into()),
            // Not submitted for validation: no certificate number.
            (CKA_VALIDATION_CERTIFICATE_IDENTIFIER, Vec::new().into()),
            (CKA_VALIDATION_CERTIFICATE_URI, Vec::new().into()),
            (CKA_VALIDATION_VENDOR_URI, Vec::new().into()),
            (CKA_VALIDATION_PROFILE, Vec::new().into()),
        ]
        .into_iter()
        .collect();
        let obj = Arc::new(Object::new(attrs));
        handles.alloc(Target::Session { owner: VALIDATION_OWNER, token: token.clone(), obj });
    }

    /// `C_FindObjectsInit`: the search runs now; `C_FindObjects` hands the results out.
    pub fn find_init(&self, h: CK_SESSION_HANDLE, template: &Template) -> Result<()> {
        let s = self.session(h)?;
        let asks_validation =
            template.iter().any(|(t, v)| *t == CKA_CLASS && *v == crate::object::ulong(CKO_VALIDATION));
        if asks_validation {
            self.ensure_validation_object(&s.token);
        }
        let mut ops = lock(&s.ops);
        if ops.find.is_some() {
            return Err(err(CKR_OPERATION_ACTIVE));
        }
        let user = s.user();
        let mut hits: Vec<(i64, bool)> = Vec::new();
        s.token.scan(|id, o| {
            if (user || !o.is_private()) && o.matches_readable(template) {
                hits.push((id, o.is_private()));
            }
        })?;
        hits.sort_unstable();
        let mut handles = self.handles.write();
        let mut results: Vec<CK_OBJECT_HANDLE> =
            hits.into_iter().map(|(id, private)| handles.token_handle(&s.token, id, private)).collect();
        let mut session_hits: Vec<CK_OBJECT_HANDLE> = handles
            .map
            .iter()
            .filter(|(_, t)| match t {
                // The validation object is found only by a search for its class, so that listing
                // "all objects" of a token shows the application's objects, as before 3.2.
                Target::Session { owner: VALIDATION_OWNER, obj, .. } => {
                    asks_validation && Arc::ptr_eq(t.token(), &s.token) && obj.matches_readable(template)
                }
                Target::Session { token, obj, .. } => {
                    Arc::ptr_eq(token, &s.token) && (user || !obj.is_private()) && obj.matches_readable(template)
                }
                _ => false,
            })
            .map(|(h, _)| *h)
            .collect();
        session_hits.sort_unstable();
        results.extend(session_hits);
        ops.find = Some(FindOp { results, pos: 0 });
        Ok(())
    }

    /// `C_FindObjects`.
    pub fn find_next(&self, h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let s = self.session(h)?;
        let mut ops = lock(&s.ops);
        let f = ops.find.as_mut().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        let end = (f.pos + max).min(f.results.len());
        let out = f.results[f.pos..end].to_vec();
        f.pos = end;
        Ok(out)
    }

    /// `C_FindObjectsFinal`.
    pub fn find_final(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = lock(&s.ops);
        ops.find.take().map(|_| ()).ok_or(err(CKR_OPERATION_NOT_INITIALIZED))
    }
}
