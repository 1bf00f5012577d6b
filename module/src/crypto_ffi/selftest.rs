//! aws-lc's own power-on self-tests.

/// Runs aws-lc's built-in known-answer tests (its `BORINGSSL_self_test`: among them the
/// CTR-DRBG KAT, which Tessera cannot run through aws-lc-rs). True when all pass.
pub fn aws_lc_self_test() -> bool {
    // SAFETY: BORINGSSL_self_test takes no arguments, touches only aws-lc's own state and
    // returns 1 on success.
    unsafe { aws_lc_sys::BORINGSSL_self_test() == 1 }
}
