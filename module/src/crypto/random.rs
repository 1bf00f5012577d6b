//! Random bytes: aws-lc's DRBG, seeded from the system (through aws-lc-rs).

/// SSP: DRBG entropy input, seed and state
pub use aws_lc_rs::rand::fill;

/// aws-lc's CTR_DRBG (AES-256, no derivation function, SP 800-90A Rev. 1 §10.2.1) run on the
/// entropy a known-answer test gives it: instantiate with `entropy` (48 bytes, no personalisation
/// string), reseed with `reseed` when given (48 bytes, no additional input), then generate
/// `out_len` bytes twice and return the second output, as the CAVP DRBG test flow does. The DRBG
/// behind [`fill`] is this same CTR_DRBG, fed by the system's entropy; aws-lc-rs offers no way to
/// run it on chosen input, hence aws-lc's `CTR_DRBG_*` functions here. `None` if aws-lc refuses.
pub fn ctr_drbg_known_answer(entropy: &[u8], reseed: Option<&[u8]>, out_len: usize) -> Option<Vec<u8>> {
    use super::sys;
    const ENTROPY_LEN: usize = 48;
    if entropy.len() != ENTROPY_LEN || reseed.is_some_and(|r| r.len() != ENTROPY_LEN) {
        return None;
    }
    /// Frees the state (which `CTR_DRBG_free` wipes) however the test ends.
    struct State(*mut sys::CTR_DRBG_STATE);
    impl Drop for State {
        fn drop(&mut self) {
            // SAFETY: the pointer came from CTR_DRBG_new and is freed once, here.
            unsafe { sys::CTR_DRBG_free(self.0) }
        }
    }
    // SAFETY: `entropy` holds the 48 bytes CTR_DRBG_new reads; no personalisation string.
    let state = unsafe { sys::CTR_DRBG_new(entropy.as_ptr(), std::ptr::null(), 0) };
    if state.is_null() {
        return None;
    }
    let state = State(state);
    if let Some(r) = reseed {
        // SAFETY: a live state; `r` holds the 48 bytes CTR_DRBG_reseed reads; no additional input.
        if unsafe { sys::CTR_DRBG_reseed(state.0, r.as_ptr(), std::ptr::null(), 0) } != 1 {
            return None;
        }
    }
    let mut out = vec![0u8; out_len];
    for _ in 0..2 {
        // SAFETY: a live state; `out` has `out_len` writable bytes; no additional input.
        if unsafe { sys::CTR_DRBG_generate(state.0, out.as_mut_ptr(), out.len(), std::ptr::null(), 0) } != 1 {
            return None;
        }
    }
    Some(out)
}
