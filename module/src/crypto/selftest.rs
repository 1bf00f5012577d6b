//! aws-lc's own power-on self-tests.

/// Runs aws-lc's built-in known-answer tests (its `BORINGSSL_self_test`: among them the
/// CTR-DRBG KAT, which Tessera cannot run through aws-lc-rs). True when all pass.
pub fn aws_lc_self_test() -> bool {
    // SAFETY: BORINGSSL_self_test takes no arguments, touches only aws-lc's own state and
    // returns 1 on success.
    unsafe { super::sys::BORINGSSL_self_test() == 1 }
}

/// Whether aws-lc runs as its FIPS module (`FIPS_mode()`): true only in a `fips` build, whose
/// aws-lc has then already passed its own integrity check and self-tests at load.
pub fn aws_lc_fips_mode() -> bool {
    // SAFETY: FIPS_mode takes no arguments and only reads aws-lc's build configuration.
    unsafe { super::sys::FIPS_mode() == 1 }
}
