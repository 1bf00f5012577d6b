//! Using a key for an operation: the checks on the key (handle, class, type, usage attribute,
//! `CKA_ALLOWED_MECHANISMS`, material loaded), the session's key cache, and the policy's decision,
//! which is noted in the call's record (`record`).

use crate::error::{err, Error, Result};
use crate::mechanisms::{Mechanism, Param};
use crate::module::Module;
use crate::object::Object;
use crate::operation::Op;
use crate::policy::{policy, Condition, KeyInfo};
use crate::record::{self, Decided, Verdict};
use crate::services::objects::Target;
use crate::session::{CachedKey, KeyCache, Session};
use cryptoki_sys::*;
use std::sync::Arc;

/// `CKR_MECHANISM_INVALID` when the mechanism does not offer this use at all.
fn mechanism_does(mech: &dyn Mechanism, op: Op) -> Result<()> {
    if mech.info().flags & op.flag() == 0 {
        return Err(err(CKR_MECHANISM_INVALID));
    }
    Ok(())
}

/// An object handle that does not resolve is, where a key is expected, a key handle that does not.
fn as_key_handle(e: crate::error::Error) -> crate::error::Error {
    match e.rv() {
        CKR_OBJECT_HANDLE_INVALID => err(CKR_KEY_HANDLE_INVALID),
        _ => e,
    }
}

/// The checks on a resolved key for one use: a key at all, of a type the mechanism takes, with
/// the usage attribute set and the mechanism among `CKA_ALLOWED_MECHANISMS`.
fn check_key(obj: &Object, mech_type: CK_MECHANISM_TYPE, mech: &dyn Mechanism, usage: Op) -> Result<()> {
    if !matches!(obj.class(), CKO_SECRET_KEY | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) {
        return Err(err(CKR_KEY_HANDLE_INVALID));
    }
    let kt = obj.ulong(CKA_KEY_TYPE).unwrap_or(CK_UNAVAILABLE_INFORMATION);
    let types = mech.key_types();
    if !types.is_empty() && !types.contains(&kt) {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    if !usage.usage_attribute().is_some_and(|a| obj.flag(a)) {
        return Err(err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    }
    if !obj.allows_mechanism(mech_type) {
        return Err(err(CKR_MECHANISM_INVALID));
    }
    Ok(())
}

/// [`check_key`] on a key just resolved, and for a token object that its material is loaded
/// (`CKR_USER_NOT_LOGGED_IN` while the token is locked).
fn check_resolved(
    target: &Target,
    obj: &Object,
    mech_type: CK_MECHANISM_TYPE,
    mech: &dyn Mechanism,
    usage: Op,
    legacy: bool,
) -> Result<()> {
    check_key(obj, mech_type, mech, usage)?;
    // A guarding key that both wraps and processes data (made by a build before these rules, or
    // under the legacy rules) is used for neither, outside the legacy rules. Checked when the key
    // is resolved: a cached key was resolved after its last change.
    use crate::object::template::{guarding, usages_conflict};
    if !legacy && usages_conflict(obj) && guarding(obj) {
        return Err(err(CKR_KEY_FUNCTION_NOT_PERMITTED));
    }
    if let Target::Token { token, id, .. } = target {
        if !token.is_complete(*id) {
            return Err(err(CKR_USER_NOT_LOGGED_IN));
        }
    }
    Ok(())
}

impl Module {
    /// The policy decision on one use of a mechanism, in the configured mode: refused uses give
    /// the error the approved mode names; allowed ones carry the approved indicator. The one place
    /// an operation's decision is made; noted in the call's record either way.
    pub fn decide(
        &self,
        op: Op,
        mech: CK_MECHANISM_TYPE,
        m: &dyn Mechanism,
        key: Option<CK_OBJECT_HANDLE>,
        info: &KeyInfo,
        param: &Param,
    ) -> Result<Decided> {
        self.decide_with(op, mech, key, info, &|c| m.meets(c, param))
    }

    /// [`Module::decide`] with the policy's named conditions answered by `meets`.
    pub fn decide_with(
        &self,
        op: Op,
        mech: CK_MECHANISM_TYPE,
        key: Option<CK_OBJECT_HANDLE>,
        info: &KeyInfo,
        meets: &dyn Fn(Condition) -> bool,
    ) -> Result<Decided> {
        let d = policy()?.decide(self.cfg.mode, mech, op, info, meets);
        let (verdict, on_data) = match &d {
            Ok(d) if d.approved => (Verdict::Approved, d.on_data),
            Ok(_) => (Verdict::NonApproved, Default::default()),
            Err(_) => (Verdict::Refused, Default::default()),
        };
        let decided = Decided { op, mechanism: mech, key, verdict, on_data };
        record::decided(decided);
        d.map(|_| decided)
    }

    /// Settles a decision that waits on the operation's data ([`Decided::on_data`]) when the data
    /// comes: data that meets a condition keeps the use approved; other data is refused in the
    /// approved mode (`CKR_DATA_INVALID`, which ends the operation) and makes the use non-approved
    /// in the other mode, noted as this call's decision (the indicator follows it).
    pub(super) fn data_decision(&self, d: &mut Decided, data: &[u8]) -> Result<()> {
        if d.on_data.is_empty() {
            return Ok(());
        }
        let m = crate::mechanisms::registry().get(d.mechanism)?;
        if d.on_data.any(|c| m.meets_data(c, d.op, data)) {
            return Ok(());
        }
        d.on_data = Default::default();
        if self.cfg.mode == crate::policy::Mode::Approved {
            d.verdict = Verdict::Refused;
            record::decided(*d);
            return Err(Error::because(
                CKR_DATA_INVALID,
                "the approved mode signs and verifies with this mechanism only a DigestInfo of an approved hash",
            ));
        }
        d.verdict = Verdict::NonApproved;
        record::decided(*d);
        Ok(())
    }

    /// Resolves a key handle for a use with a mechanism and checks everything the specification
    /// attaches to that: the handle (`CKR_KEY_HANDLE_INVALID`), the usage attribute
    /// (`CKR_KEY_FUNCTION_NOT_PERMITTED`), the key type (`CKR_KEY_TYPE_INCONSISTENT`),
    /// `CKA_ALLOWED_MECHANISMS` (`CKR_MECHANISM_INVALID`) and that its material is loaded.
    pub fn usable_key(
        &self,
        s: &Session,
        key: CK_OBJECT_HANDLE,
        mech_type: CK_MECHANISM_TYPE,
        mech: &dyn Mechanism,
        usage: Op,
    ) -> Result<Arc<Object>> {
        mechanism_does(mech, usage)?;
        let (target, obj) = self.resolve(s, key).map_err(as_key_handle)?;
        check_resolved(&target, &obj, mech_type, mech, usage, self.legacy_wrapping())?;
        Ok(obj)
    }

    /// [`Module::usable_key`] through the session's key cache: a key resolved before is taken from
    /// the cache while neither the handle table nor (for a token object) the token's view has
    /// changed since, and the session's own copy is lent, so that no lock or reference count other
    /// sessions use is written. After a change the handle is looked up again; the session's copy
    /// stays if the object is the same one.
    pub(super) fn usable_key_cached<'a>(
        &self,
        s: &Session,
        cache: &'a mut KeyCache,
        key: CK_OBJECT_HANDLE,
        mech_type: CK_MECHANISM_TYPE,
        mech: &dyn Mechanism,
        usage: Op,
    ) -> Result<&'a Arc<Object>> {
        mechanism_does(mech, usage)?;
        let epoch = self.handles.epoch();
        let found = cache.entries.iter().position(|e| e.handle == key);
        if let Some(i) = found {
            let e = &cache.entries[i];
            let current = e.epoch == epoch
                && match e.token_view {
                    None => true,
                    Some(generation) => {
                        // Another process may have changed the token's objects.
                        s.token.fresh()?;
                        s.token.view_generation() == generation
                    }
                };
            if current {
                // Login state is part of neither: visibility is checked on every use.
                if e.local.is_private() && !s.user() {
                    return Err(err(CKR_KEY_HANDLE_INVALID));
                }
                check_key(&e.local, mech_type, mech, usage)?;
                return Ok(&cache.entries[i].local);
            }
        }
        // The token view generation as of before the lookup: a change after it shows next time.
        s.token.fresh()?;
        let generation = s.token.view_generation();
        let (target, obj) = match self.resolve(s, key).map_err(as_key_handle) {
            Ok(r) => r,
            Err(e) => {
                if let Some(i) = found {
                    cache.entries.remove(i);
                }
                return Err(e);
            }
        };
        check_resolved(&target, &obj, mech_type, mech, usage, self.legacy_wrapping())?;
        let token_view = matches!(target, Target::Token { .. }).then_some(generation);
        if let Some(i) = found {
            if Arc::ptr_eq(&cache.entries[i].shared, &obj) {
                let e = &mut cache.entries[i];
                e.epoch = epoch;
                e.token_view = token_view;
                return Ok(&cache.entries[i].local);
            }
            cache.entries.remove(i);
        }
        if cache.entries.len() >= KeyCache::CAPACITY {
            cache.entries.remove(0);
        }
        let local = Arc::new(obj.session_copy());
        cache.entries.push(CachedKey { handle: key, local, shared: obj, epoch, token_view });
        Ok(&cache.entries[cache.entries.len() - 1].local)
    }
}
