//! The FIPS 140-3 style machinery: power-on self-tests run by `C_Initialize` (known-answer tests
//! from `kat-vectors/`, aws-lc's own self-tests, and the module integrity test), the same tests
//! on demand (`T_SelfTest` of the vendor interface, `abi/vendor.rs`), and the error state any
//! failure puts the module in.

pub mod integrity;
pub mod kat;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Whether the self-tests may run on a thread of their own: false after a `C_Initialize` whose
/// application set `CKF_LIBRARY_CANT_CREATE_OS_THREADS` (PKCS#11 §5.4: the library then creates
/// none), until the next one.
static THREADS_ALLOWED: AtomicBool = AtomicBool::new(true);

/// Records whether the application lets the library create threads (`C_Initialize`'s flags).
pub fn allow_threads(allowed: bool) {
    THREADS_ALLOWED.store(allowed, std::sync::atomic::Ordering::Relaxed);
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
    /// The HMAC-SHA-256 the integrity test computed over the library file, and the value recorded
    /// beside it (hex), when there were such.
    pub integrity_value: Option<String>,
    pub recorded_value: Option<String>,
    pub elapsed: Duration,
    /// Time of each phase: integrity, Tessera's KATs, aws-lc's self-tests.
    pub phases: Vec<(&'static str, Duration)>,
}

/// The integrity test over a library file (or the not-applicable result without one), and how
/// long it took.
fn integrity_test(module_file: Option<&integrity::Library>) -> (integrity::Checked, Duration) {
    let t = Instant::now();
    let checked = match module_file {
        Some(p) => integrity::check_values(p),
        None => integrity::Checked { status: integrity::Status::NotApplicable, computed: None, recorded: None },
    };
    (checked, t.elapsed())
}

/// The integrity test started ahead of the other self-tests, on a thread of its own: the HMAC over
/// the whole library file (a few milliseconds) is independent of everything `C_Initialize` does
/// before and beside it (reading the configuration, seeding the random generator, the
/// known-answer tests and aws-lc's self-tests), so `C_Initialize` takes the longer of the two
/// instead of their sum. Started as early as `C_Initialize` can, because a new thread may take a
/// while to be scheduled. Without a thread (the application forbade them with
/// `CKF_LIBRARY_CANT_CREATE_OS_THREADS`, or none could be made) the test runs when it is joined.
/// A test started and never joined (`C_Initialize` failed before the self-tests) is joined when
/// dropped: no thread of the library outlives the call that started it.
pub struct IntegrityTest {
    library: Option<integrity::Library>,
    thread: Option<std::thread::JoinHandle<(integrity::Checked, Duration)>>,
}

impl IntegrityTest {
    pub fn start(module_file: Option<&integrity::Library>) -> IntegrityTest {
        let library = module_file.cloned();
        let thread = THREADS_ALLOWED
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| {
                let l = library.clone();
                std::thread::Builder::new()
                    .name("tessera-integrity".into())
                    .spawn(move || integrity_test(l.as_ref()))
                    .ok()
            })
            .flatten();
        IntegrityTest { library, thread }
    }

    /// The test's result: the thread's, or, without a thread (or if it panicked), the test run
    /// here (a panic again is the module's usual panic, caught at the C boundary).
    fn join(mut self) -> (integrity::Checked, Duration) {
        match self.thread.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => integrity_test(self.library.as_ref()),
        }
    }
}

impl Drop for IntegrityTest {
    fn drop(&mut self) {
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// Runs every power-on self-test. `module_file` is the installed library (absent only when the
/// core is driven without the library, as in unit tests); `require_seal` makes a missing
/// integrity value a failure; `started` is its integrity test, started early (`C_Initialize`).
pub fn power_on_self_tests(
    module_file: Option<&integrity::Library>,
    require_seal: bool,
    started: IntegrityTest,
) -> PostReport {
    run(module_file, require_seal, "power-on", started)
}

/// Runs the self-tests: the power-on set, at `C_Initialize` or on demand (`trigger` names which,
/// for the log). The tests use their own keys and contexts only, so they may run while other
/// threads use the module.
pub fn self_tests(module_file: Option<&integrity::Library>, require_seal: bool, trigger: &str) -> PostReport {
    run(module_file, require_seal, trigger, IntegrityTest::start(module_file))
}

fn run(
    module_file: Option<&integrity::Library>,
    require_seal: bool,
    trigger: &str,
    started: IntegrityTest,
) -> PostReport {
    let start = Instant::now();
    let mut results = Vec::new();
    let mut phases = Vec::new();
    let mut failure = None;
    // The known-answer tests and aws-lc's self-tests here, while the integrity test runs on its
    // own thread. Nothing is concluded before both end; a failed integrity test fails the run
    // whatever the others found, as when it ran first.
    let t = Instant::now();
    let kats = kat::run_all();
    let kat_time = t.elapsed();
    let t = Instant::now();
    let aws_lc_ok = kat::healthy("aws-lc") && crate::crypto::selftest::aws_lc_self_test();
    let aws_lc_time = t.elapsed();
    let (checked, integrity_time) = started.join();
    let integrity = checked.status;
    let integrity_ok = match &integrity {
        integrity::Status::Verified | integrity::Status::NotApplicable => true,
        integrity::Status::Unsealed => !require_seal,
        integrity::Status::Mismatch | integrity::Status::Unreadable(_) => false,
    };
    results.push(("module integrity (HMAC-SHA-256)".to_string(), integrity_ok));
    phases.push(("integrity", integrity_time));
    if !integrity_ok {
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
    // After a failed integrity test the library's results count for nothing: they are not
    // reported, as if they had not run.
    if failure.is_none() {
        for (name, ok) in kats {
            if !ok && failure.is_none() {
                failure = Some(format!("known-answer test failed: {name}"));
            }
            results.push((name, ok));
        }
        phases.push(("known-answer tests", kat_time));
    }
    if failure.is_none() {
        phases.push(("aws-lc self-tests", aws_lc_time));
        results.push(("aws-lc self-tests (incl. CTR-DRBG KAT)".to_string(), aws_lc_ok));
        if !aws_lc_ok {
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
