//! The table of open sessions. Every call looks a session up, from any thread, while sessions
//! open and close rarely: lookups read an immutable snapshot (one atomic load, no shared counter
//! written), and opening or closing a session publishes a new snapshot (read-copy-update).

use crate::module::SessionRef;
use arc_swap::ArcSwap;
use cryptoki_sys::CK_SESSION_HANDLE;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Map = HashMap<CK_SESSION_HANDLE, SessionRef>;

#[derive(Default)]
pub struct SessionTable {
    map: ArcSwap<Map>,
    writer: Mutex<()>,
}

impl SessionTable {
    pub fn get(&self, h: CK_SESSION_HANDLE) -> Option<SessionRef> {
        self.map.load().get(&h).cloned()
    }

    /// Every open session, as of now.
    pub fn snapshot(&self) -> Arc<Map> {
        self.map.load_full()
    }

    /// Changes the table under the writer lock and publishes the result; returns `f`'s value.
    pub fn update<T>(&self, f: impl FnOnce(&mut Map) -> T) -> T {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Map::clone(&self.map.load());
        let out = f(&mut next);
        self.map.store(Arc::new(next));
        out
    }
}
