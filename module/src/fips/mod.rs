//! The FIPS 140-3 style machinery: power-on self-tests run by `C_Initialize` (known-answer tests
//! from `kat-vectors/`, aws-lc's own self-tests, and the module integrity test), the same tests
//! on demand (`T_SelfTest` of the vendor interface, `abi/vendor.rs`), and the error state any
//! failure puts the module in.

pub mod integrity;
pub mod kat;

use std::time::{Duration, Instant};

/// The cryptographic algorithm self-tests (CASTs: Tessera's known-answer tests and aws-lc's
/// self-tests) that passed in this process, with their results and times, and the fork
/// generation they passed in. FIPS 140-3 IG 10.3.A makes a CAST a conditional test, due once
/// before the first use of its algorithm after the module powers on; for a library the power-on
/// is its loading into a process, which `C_Finalize` and `C_Initialize` do not repeat
/// (security-policy.md §10.1). A later `C_Initialize` of the same process therefore reuses these
/// results, after running its own integrity test; any self-test failure forgets them
/// ([`forget_algorithm_tests`]), so the next `C_Initialize` runs every test again; a process made
/// by `fork()` runs them again too.
struct Passed {
    generation: u64,
    results: Vec<(String, bool)>,
    phases: Vec<(&'static str, Duration)>,
}

static PASSED: std::sync::Mutex<Option<Passed>> = std::sync::Mutex::new(None);

fn passed() -> std::sync::MutexGuard<'static, Option<Passed>> {
    PASSED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Forgets the algorithm self-tests that passed: the module entered the error state (a
/// conditional test failed), and leaving it takes every self-test again.
pub fn forget_algorithm_tests() {
    *passed() = None;
}

/// The outcome of the power-on self-tests.
#[derive(Clone, Debug)]
pub struct PostReport {
    /// `None` when every test passed; otherwise the reason for the error state.
    pub failure: Option<String>,
    /// Each test that ran, in order, with its result.
    pub results: Vec<(String, bool)>,
    /// What the integrity test concluded.
    pub integrity: integrity::Status,
    /// The GMAC the integrity test computed over the library file, and the value recorded
    /// beside it (hex), when there were such.
    pub integrity_value: Option<String>,
    pub recorded_value: Option<String>,
    pub elapsed: Duration,
    /// Time of each phase: integrity, Tessera's KATs, aws-lc's self-tests.
    pub phases: Vec<(&'static str, Duration)>,
    /// The algorithm self-tests' results (and their phases' times) are those of an earlier run in
    /// this process, which passed: this run ran the integrity test only.
    pub algorithm_tests_reused: bool,
}

/// One integrity test: the known-answer test of its algorithm first, then, when that passed, the
/// test over a library file (or the not-applicable result without one), and the time both took.
struct IntegrityRun {
    /// The known-answer test of its algorithm, a result per vector.
    algorithm: Vec<(String, bool)>,
    checked: integrity::Checked,
    elapsed: Duration,
}

/// The integrity test, on the calling thread: a GMAC over the library file, about 0.3 ms for the
/// 9 MB library (`integrity`), so it runs first and whole, before the algorithm self-tests.
fn integrity_test(module_file: Option<&integrity::Library>) -> IntegrityRun {
    let t = Instant::now();
    let algorithm = kat::integrity_algorithm();
    let algorithm_ok = algorithm.iter().all(|(_, ok)| *ok);
    let checked = match module_file {
        _ if !algorithm_ok => integrity::Checked {
            status: integrity::Status::Unreadable("not run: its algorithm failed its known-answer test".into()),
            computed: None,
            recorded: None,
        },
        Some(library) => integrity::check_values(library),
        None => integrity::Checked { status: integrity::Status::NotApplicable, computed: None, recorded: None },
    };
    IntegrityRun { algorithm, checked, elapsed: t.elapsed() }
}

/// The result line of aws-lc's own self-tests (run on demand, `T_SelfTest`).
const AWS_LC: &str = "aws-lc self-tests (incl. its CTR-DRBG KAT)";

/// Runs the power-on self-tests of a `C_Initialize`. `module_file` is the installed library
/// (absent only when the core is driven without the library, as in unit tests); `require_seal`
/// makes a missing integrity value a failure. The integrity test runs every time; the algorithm
/// self-tests run when none has passed yet in this process (see [`Passed`]).
pub fn power_on_self_tests(module_file: Option<&integrity::Library>, require_seal: bool) -> PostReport {
    run(module_file, require_seal, "power-on", true)
}

/// Runs every self-test now, whatever ran before: on demand (`T_SelfTest`; `trigger` names the
/// run, for the log). The tests use their own keys and contexts only, so they may run while
/// other threads use the module.
pub fn self_tests(module_file: Option<&integrity::Library>, require_seal: bool, trigger: &str) -> PostReport {
    run(module_file, require_seal, trigger, false)
}

fn run(module_file: Option<&integrity::Library>, require_seal: bool, trigger: &str, reuse: bool) -> PostReport {
    let start = Instant::now();
    let mut results = Vec::new();
    let mut phases = Vec::new();
    let mut failure = None;
    let generation = crate::state::generation();
    let earlier = if reuse {
        passed().as_ref().filter(|p| p.generation == generation).map(|p| (p.results.clone(), p.phases.clone()))
    } else {
        None
    };
    let algorithm_tests_reused = earlier.is_some();
    // First the integrity test (FIPS 140-3 §7.10.2: the pre-operational integrity test passes
    // before the module does anything else), preceded by its own algorithm's known-answer test.
    let IntegrityRun { algorithm, checked, elapsed: integrity_time } = integrity_test(module_file);
    let algorithm_ok = algorithm.iter().all(|(_, ok)| *ok);
    if let Some((name, _)) = algorithm.iter().find(|(_, ok)| !ok) {
        failure = Some(format!("known-answer test failed: {name}"));
    }
    results.extend(algorithm);
    let integrity = checked.status;
    let integrity_ok = match &integrity {
        integrity::Status::Verified | integrity::Status::NotApplicable => true,
        integrity::Status::Unsealed => !require_seal,
        integrity::Status::Mismatch | integrity::Status::Unreadable(_) => false,
    };
    if algorithm_ok {
        results.push(("module integrity (GMAC-AES-256)".to_string(), integrity_ok));
    }
    phases.push(("integrity", integrity_time));
    if !integrity_ok && failure.is_none() {
        // What to run, with the library's own path: a build is sealed once, after it is made.
        let path = module_file.and_then(|l| l.path()).map_or("LIBRARY".into(), |p| p.display().to_string());
        failure = Some(match &integrity {
            integrity::Status::Unsealed => {
                format!("integrity test failed: {integrity}; seal it with: tessera-util --seal {path}")
            }
            integrity::Status::Mismatch => {
                format!("integrity test failed: {integrity}; a new build is sealed with: tessera-util --seal {path}")
            }
            _ => format!("integrity test failed: {integrity}"),
        });
    }
    // aws-lc's own known-answer tests (`BORINGSSL_self_test`) run on demand only: at power-on,
    // Tessera's KATs test every approved algorithm, the DRBG included, through the module's own
    // code (and a `fips` build's aws-lc tests itself when it loads). On demand they add a second
    // opinion at a cost of about 2.5 ms (a run that may reuse earlier results is a power-on's).
    // After a failed integrity test none runs: the library's results would count for nothing.
    let (kats, aws_lc_ok, algorithm_phases) = match earlier {
        _ if failure.is_some() => (Vec::new(), None, Vec::new()),
        Some((results, phases)) => (results, None, phases),
        None => {
            let t = Instant::now();
            let kats = kat::run_all();
            let mut phases = vec![("known-answer tests", t.elapsed())];
            let aws_lc_ok = (!reuse).then(|| {
                let t = Instant::now();
                let ok = kat::healthy("aws-lc") && crate::crypto::selftest::aws_lc_self_test();
                phases.push(("aws-lc self-tests", t.elapsed()));
                ok
            });
            (kats, aws_lc_ok, phases)
        }
    };
    let mut algorithm_results = Vec::new();
    if failure.is_none() {
        for (name, ok) in kats {
            if !ok && failure.is_none() {
                failure = Some(format!("known-answer test failed: {name}"));
            }
            algorithm_results.push((name, ok));
        }
        phases.extend(algorithm_phases.iter().copied().take(1));
    }
    if let (None, Some(ok)) = (&failure, aws_lc_ok) {
        phases.extend(algorithm_phases.iter().copied().skip(1));
        algorithm_results.push((AWS_LC.to_string(), ok));
        if !ok {
            failure = Some("aws-lc self-tests failed".to_string());
        }
    }
    let elapsed = start.elapsed();
    // A failure is reported once, by whoever puts the module in the error state.
    if failure.is_none() {
        if !algorithm_tests_reused {
            // What a later `C_Initialize` reuses: Tessera's KATs, which every power-on runs.
            let kats = algorithm_results.iter().filter(|(n, _)| n != AWS_LC).cloned().collect();
            *passed() = Some(Passed { generation, results: kats, phases: algorithm_phases[..1].to_vec() });
        }
        let reused = if algorithm_tests_reused { "; algorithm self-tests passed earlier in this process" } else { "" };
        tracing::info!("{trigger} self-tests passed in {} µs ({integrity}{reused})", elapsed.as_micros());
    } else {
        forget_algorithm_tests();
    }
    results.extend(algorithm_results);
    PostReport {
        failure,
        results,
        integrity,
        integrity_value: checked.computed,
        recorded_value: checked.recorded,
        elapsed,
        phases,
        algorithm_tests_reused,
    }
}
