//! The FIPS 140-3 style machinery: power-on self-tests run by `C_Initialize` (known-answer tests
//! from `kat-vectors/`, aws-lc's own self-tests, and the module integrity test), the same tests
//! on demand (`T_SelfTest` of the vendor interface, `abi/vendor.rs`), and the error state any
//! failure puts the module in.

pub mod integrity;
pub mod kat;

use std::time::{Duration, Instant};

/// The outcome of the power-on self-tests.
#[derive(Clone, Debug)]
pub struct PostReport {
    /// `None` when every test passed; otherwise the reason for the error state.
    pub failure: Option<String>,
    /// Each test that ran, in order, with its result.
    pub results: Vec<(String, bool)>,
    /// What the integrity test concluded.
    pub integrity: integrity::Status,
    /// The HMAC-SHA-256 the integrity test computed over the library file, and the value recorded
    /// beside it (hex), when there were such.
    pub integrity_value: Option<String>,
    pub recorded_value: Option<String>,
    pub elapsed: Duration,
    /// Time of each phase: integrity, Tessera's KATs, aws-lc's self-tests.
    pub phases: Vec<(&'static str, Duration)>,
}

/// Runs every power-on self-test. `module_file` is the installed library (absent only when the
/// core is driven without the library, as in unit tests); `require_seal` makes a missing
/// integrity value a failure.
pub fn power_on_self_tests(module_file: Option<&integrity::Library>, require_seal: bool) -> PostReport {
    self_tests(module_file, require_seal, "power-on")
}

/// Runs the self-tests: the power-on set, at `C_Initialize` or on demand (`trigger` names which,
/// for the log). The tests use their own keys and contexts only, so they may run while other
/// threads use the module.
pub fn self_tests(module_file: Option<&integrity::Library>, require_seal: bool, trigger: &str) -> PostReport {
    let start = Instant::now();
    let mut results = Vec::new();
    let mut phases = Vec::new();
    let mut failure = None;
    let t = Instant::now();
    let checked = match module_file {
        Some(p) => integrity::check_values(p),
        None => integrity::Checked { status: integrity::Status::NotApplicable, computed: None, recorded: None },
    };
    let integrity = checked.status;
    let integrity_ok = match &integrity {
        integrity::Status::Verified | integrity::Status::NotApplicable => true,
        integrity::Status::Unsealed => !require_seal,
        integrity::Status::Mismatch | integrity::Status::Unreadable(_) => false,
    };
    results.push(("module integrity (HMAC-SHA-256)".to_string(), integrity_ok));
    phases.push(("integrity", t.elapsed()));
    if !integrity_ok {
        failure = Some(format!("integrity test failed: {integrity}"));
    }
    if failure.is_none() {
        let t = Instant::now();
        for (name, ok) in kat::run_all() {
            if !ok && failure.is_none() {
                failure = Some(format!("known-answer test failed: {name}"));
            }
            results.push((name, ok));
        }
        phases.push(("known-answer tests", t.elapsed()));
    }
    if failure.is_none() {
        let t = Instant::now();
        let ok = kat::healthy("aws-lc") && crate::crypto::selftest::aws_lc_self_test();
        phases.push(("aws-lc self-tests", t.elapsed()));
        results.push(("aws-lc self-tests (incl. CTR-DRBG KAT)".to_string(), ok));
        if !ok {
            failure = Some("aws-lc self-tests failed".to_string());
        }
    }
    let elapsed = start.elapsed();
    // A failure is reported once, by whoever puts the module in the error state.
    if failure.is_none() {
        tracing::info!("{trigger} self-tests passed in {} µs ({integrity})", elapsed.as_micros());
    }
    PostReport {
        failure,
        results,
        integrity,
        integrity_value: checked.computed,
        recorded_value: checked.recorded,
        elapsed,
        phases,
    }
}
