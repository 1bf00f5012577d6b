//! Random number generation (spec §5.15), from aws-lc-rs's DRBG.

use crate::error::{err, Result};
use crate::module::Module;
use cryptoki_sys::*;

impl Module {
    /// `C_GenerateRandom`.
    pub fn generate_random(&self, h: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
        self.session(h)?;
        crate::crypto::random::fill(out).map_err(|_| err(CKR_FUNCTION_FAILED))
    }

    /// `C_SeedRandom`: the DRBG seeds itself from the operating system's entropy source and takes
    /// no application seed, as a validated module's DRBG does.
    pub fn seed_random(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.session(h)?;
        Err(err(CKR_RANDOM_SEED_NOT_SUPPORTED))
    }
}
