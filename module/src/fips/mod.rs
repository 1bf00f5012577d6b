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
    /// The HMAC-SHA-256 the integrity test computed over the library file, and the value recorded
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

/// One integrity test: the known-answer test of its algorithms first, then, when that passed,
/// the test over a library file (or the not-applicable result without one), and the time its
/// work took (the pieces' hashing, summed, whichever threads ran them).
struct IntegrityRun {
    algorithm_ok: bool,
    checked: integrity::Checked,
    elapsed: Duration,
}

/// The pieces of a library file to hash (`integrity::Prepared`, 256 KiB each), claimed one at a
/// time by whichever thread comes first: the integrity test's own thread from the moment it is
/// scheduled, the calling thread once it has run the other self-tests (or at once, at a
/// `C_Initialize` that reuses them). The work thus spreads over both cores whatever the other
/// self-tests cost and however late the second thread starts (an idle virtual processor may take
/// milliseconds to be given it: with two halves, a thread that started late found its half taken
/// and the calling thread hashed the whole file), and the value is the same however it spread.
struct Pieces {
    file: integrity::Prepared,
    next: std::sync::atomic::AtomicUsize,
    digests: Vec<std::sync::OnceLock<[u8; 32]>>,
    /// Microseconds spent hashing, summed over the threads.
    micros: std::sync::atomic::AtomicU64,
}

impl Pieces {
    /// Hashes the pieces no thread has claimed yet, one at a time.
    fn work(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let t = Instant::now();
        loop {
            let i = self.next.fetch_add(1, Relaxed);
            let Some(slot) = self.digests.get(i) else { break };
            let _ = slot.set(self.file.piece(i));
        }
        self.micros.fetch_add(t.elapsed().as_micros() as u64, Relaxed);
    }
}

/// The integrity test started ahead of the other self-tests: its known-answer test and the
/// reading of the library's seal region on the calling thread (tens of microseconds), then the
/// SHA-256 of the file's pieces (a few milliseconds in all) on a thread of its own and on the
/// calling thread ([`Pieces`]). The hashing is independent of everything `C_Initialize` does
/// before and beside it (reading the configuration, seeding the random generator, the
/// known-answer tests and aws-lc's self-tests), so `C_Initialize` takes about the larger of half
/// of the whole work and the other self-tests' share, instead of their sum. Started as early as
/// `C_Initialize` can, because a new thread may take a while to be scheduled. Without a thread
/// (the application forbade them with `CKF_LIBRARY_CANT_CREATE_OS_THREADS`, or none could be
/// made) the calling thread hashes every piece when the test is joined. A test started and never
/// joined (`C_Initialize` failed before the self-tests) is joined when dropped: no thread of the
/// library outlives the call that started it.
pub struct IntegrityTest {
    /// The library to check, until the test begins (at once with a thread, else when joined).
    library: Option<integrity::Library>,
    begun: Option<Begun>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The integrity test's first steps done: its known-answer test's result, and the pieces to hash
/// (or, with nothing to hash, the test's conclusion), and how long those steps took.
struct Begun {
    algorithm_ok: bool,
    work: Result<std::sync::Arc<Pieces>, integrity::Checked>,
    elapsed: Duration,
}

fn begin(module_file: Option<&integrity::Library>) -> Begun {
    let t = Instant::now();
    let algorithm_ok = kat::integrity_algorithm();
    let work = match module_file {
        _ if !algorithm_ok => Err(integrity::Checked {
            status: integrity::Status::Unreadable("not run: its algorithms failed their known-answer test".into()),
            computed: None,
            recorded: None,
        }),
        Some(p) => integrity::prepare(p).map(|file| {
            let digests = (0..file.pieces()).map(|_| std::sync::OnceLock::new()).collect();
            std::sync::Arc::new(Pieces { file, next: Default::default(), digests, micros: Default::default() })
        }),
        None => Err(integrity::Checked { status: integrity::Status::NotApplicable, computed: None, recorded: None }),
    };
    Begun { algorithm_ok, work, elapsed: t.elapsed() }
}

impl IntegrityTest {
    pub fn start(module_file: Option<&integrity::Library>) -> IntegrityTest {
        if !THREADS_ALLOWED.load(std::sync::atomic::Ordering::Relaxed) {
            return IntegrityTest { library: module_file.cloned(), begun: None, thread: None };
        }
        let begun = begin(module_file);
        let thread = match &begun.work {
            Ok(h) => {
                let h = h.clone();
                std::thread::Builder::new().name("tessera-integrity".into()).spawn(move || h.work()).ok()
            }
            Err(_) => None,
        };
        IntegrityTest { library: None, begun: Some(begun), thread }
    }

    /// The test's result: the calling thread hashes the pieces the test's thread has not claimed
    /// (all of them without a thread), waits for that thread, and hashes here any piece it left
    /// undone (it panicked: a panic again is the module's usual panic, caught at the C boundary).
    fn join(mut self) -> IntegrityRun {
        let Begun { algorithm_ok, work, elapsed } = match self.begun.take() {
            Some(b) => b,
            None => begin(self.library.as_ref()),
        };
        let (checked, hashing) = match work {
            Err(c) => (c, Duration::ZERO),
            Ok(h) => {
                h.work();
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                let digests: Vec<[u8; 32]> =
                    h.digests.iter().enumerate().map(|(i, d)| *d.get_or_init(|| h.file.piece(i))).collect();
                let micros = h.micros.load(std::sync::atomic::Ordering::Relaxed);
                (h.file.conclude(&digests), Duration::from_micros(micros))
            }
        };
        IntegrityRun { algorithm_ok, checked, elapsed: elapsed + hashing }
    }
}

impl Drop for IntegrityTest {
    fn drop(&mut self) {
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// The result line of aws-lc's own self-tests (run on demand, `T_SelfTest`).
const AWS_LC: &str = "aws-lc self-tests (incl. its CTR-DRBG KAT)";

/// Runs the power-on self-tests of a `C_Initialize`. `module_file` is the installed library
/// (absent only when the core is driven without the library, as in unit tests); `require_seal`
/// makes a missing integrity value a failure; `started` is its integrity test, started early.
/// The integrity test runs every time; the algorithm self-tests run when none has passed yet in
/// this process (see [`Passed`]).
pub fn power_on_self_tests(
    module_file: Option<&integrity::Library>,
    require_seal: bool,
    started: IntegrityTest,
) -> PostReport {
    run(module_file, require_seal, "power-on", started, true)
}

/// Runs every self-test now, whatever ran before: on demand (`T_SelfTest`; `trigger` names the
/// run, for the log). The tests use their own keys and contexts only, so they may run while
/// other threads use the module.
pub fn self_tests(module_file: Option<&integrity::Library>, require_seal: bool, trigger: &str) -> PostReport {
    run(module_file, require_seal, trigger, IntegrityTest::start(module_file), false)
}

fn run(
    module_file: Option<&integrity::Library>,
    require_seal: bool,
    trigger: &str,
    started: IntegrityTest,
    reuse: bool,
) -> PostReport {
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
    // aws-lc's own known-answer tests (`BORINGSSL_self_test`) run on demand only: at power-on,
    // Tessera's KATs test every approved algorithm, the DRBG included, through the module's own
    // code (and a `fips` build's aws-lc tests itself when it loads). On demand they add a second
    // opinion at a cost of about 2.5 ms (a run that may reuse earlier results is a power-on's).
    // The known-answer tests (and on demand aws-lc's self-tests) here, while the integrity test
    // runs on its own thread. Nothing is concluded before both end; a failed integrity test fails
    // the run whatever the others found, as when it ran first.
    let (kats, aws_lc_ok, algorithm_phases) = match earlier {
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
    let IntegrityRun { algorithm_ok, checked, elapsed: integrity_time } = started.join();
    results.push((format!("{} (aws-lc)", kat::INTEGRITY_ALGORITHM), algorithm_ok));
    if !algorithm_ok {
        failure = Some(format!("known-answer test failed: {}", kat::INTEGRITY_ALGORITHM));
    }
    let integrity = checked.status;
    let integrity_ok = match &integrity {
        integrity::Status::Verified | integrity::Status::NotApplicable => true,
        integrity::Status::Unsealed => !require_seal,
        integrity::Status::Mismatch | integrity::Status::Unreadable(_) => false,
    };
    if algorithm_ok {
        results.push(("module integrity (HMAC-SHA-256)".to_string(), integrity_ok));
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
    // After a failed integrity test the library's results count for nothing: they are not
    // reported, as if they had not run.
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
