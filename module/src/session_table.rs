//! The table of open sessions. Every call looks a session up, from any thread: the table is split
//! into shards by handle, each behind its own read-write lock, so threads working in different
//! sessions touch different locks and do not contend, and opening or closing a session locks one
//! shard only. Handles are hashed with FxHash: they are numbers the module assigns, so a fast hash
//! is safe, and SipHash was a measurable share of a short call.

use crate::module::SessionRef;
use cryptoki_sys::CK_SESSION_HANDLE;
use rustc_hash::FxHashMap as HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const SHARDS: usize = 16;

/// A lock on a cache line of its own, so neighbouring shards do not share one.
#[repr(align(128))]
#[derive(Default)]
struct Shard(RwLock<HashMap<CK_SESSION_HANDLE, SessionRef>>);

#[derive(Default)]
pub struct SessionTable {
    shards: [Shard; SHARDS],
}

impl SessionTable {
    fn shard(&self, h: CK_SESSION_HANDLE) -> &Shard {
        &self.shards[(h as usize) % SHARDS]
    }

    fn read(s: &Shard) -> RwLockReadGuard<'_, HashMap<CK_SESSION_HANDLE, SessionRef>> {
        s.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(s: &Shard) -> RwLockWriteGuard<'_, HashMap<CK_SESSION_HANDLE, SessionRef>> {
        s.0.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, h: CK_SESSION_HANDLE) -> Option<SessionRef> {
        Self::read(self.shard(h)).get(&h).cloned()
    }

    pub fn insert(&self, h: CK_SESSION_HANDLE, s: SessionRef) {
        Self::write(self.shard(h)).insert(h, s);
    }

    pub fn remove(&self, h: CK_SESSION_HANDLE) -> Option<SessionRef> {
        Self::write(self.shard(h)).remove(&h)
    }

    /// Every open session, as of now.
    pub fn all(&self) -> Vec<SessionRef> {
        let mut all = Vec::new();
        for s in &self.shards {
            all.extend(Self::read(s).values().cloned());
        }
        all
    }

    /// Removes and returns the sessions `pick` selects.
    pub fn take(&self, mut pick: impl FnMut(&SessionRef) -> bool) -> Vec<SessionRef> {
        let mut out = Vec::new();
        for s in &self.shards {
            let mut m = Self::write(s);
            let hs: Vec<_> = m.iter().filter(|(_, v)| pick(v)).map(|(h, _)| *h).collect();
            out.extend(hs.into_iter().filter_map(|h| m.remove(&h)));
        }
        out
    }
}
