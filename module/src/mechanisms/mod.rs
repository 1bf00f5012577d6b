//! Mechanisms. Each family lives in its own file and registers its mechanisms in the one
//! [`Registry`]; `C_GetMechanismList`, `C_GetMechanismInfo` and every `C_*Init` look them up there.

pub mod digest;

use crate::error::{err, Result};
use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What `C_GetMechanismInfo` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MechanismInfo {
    pub min_key: CK_ULONG,
    pub max_key: CK_ULONG,
    pub flags: CK_FLAGS,
}

/// A running multi-part digest.
pub trait DigestOperation: Send {
    fn update(&mut self, data: &[u8]);
    /// Output length in bytes.
    fn len(&self) -> usize;
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// One mechanism. A family implements the services it offers; the rest default to
/// `CKR_MECHANISM_INVALID` ("this mechanism does not do that").
pub trait Mechanism: Send + Sync {
    fn info(&self) -> MechanismInfo;

    /// Starts a digest (`C_DigestInit`).
    fn digest(&self, _param: &[u8]) -> Result<Box<dyn DigestOperation>> {
        Err(err(CKR_MECHANISM_INVALID))
    }
}

/// Every mechanism the module implements, by type.
pub struct Registry {
    map: BTreeMap<CK_MECHANISM_TYPE, Box<dyn Mechanism>>,
}

impl Registry {
    /// Adds one mechanism; each family's `register` calls this.
    pub fn add(&mut self, ty: CK_MECHANISM_TYPE, m: Box<dyn Mechanism>) {
        self.map.insert(ty, m);
    }

    pub fn get(&self, ty: CK_MECHANISM_TYPE) -> Result<&dyn Mechanism> {
        self.map.get(&ty).map(|b| b.as_ref()).ok_or(err(CKR_MECHANISM_INVALID))
    }

    /// Mechanism types in ascending order.
    pub fn types(&self) -> Vec<CK_MECHANISM_TYPE> {
        self.map.keys().copied().collect()
    }

    fn build() -> Registry {
        let mut r = Registry { map: BTreeMap::new() };
        digest::register(&mut r);
        r
    }
}

/// The registry, built once.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::build)
}
