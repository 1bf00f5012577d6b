//! Random number generation (spec §5.15), from aws-lc-rs's DRBG.

use crate::error::{err, Result};
use crate::module::{Module, SessionRef};
use cryptoki_sys::*;

impl Module {
    /// `C_GenerateRandom`.
    pub fn generate_random(&self, _s: &SessionRef, out: &mut [u8]) -> Result<()> {
        crate::crypto::random::fill(out).map_err(|_| err(CKR_FUNCTION_FAILED))
    }

    /// `C_SeedRandom`: the DRBG seeds itself from the operating system's entropy source and takes
    /// no application seed, as a validated module's DRBG does.
    pub fn seed_random(&self, _s: &SessionRef) -> Result<()> {
        Err(err(CKR_RANDOM_SEED_NOT_SUPPORTED))
    }
}
