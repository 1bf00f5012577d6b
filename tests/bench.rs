//! `tessera-bench`: side-by-side throughput benchmark of Tessera and SoftHSMv2.
//!
//! Both PKCS#11 modules are loaded into the same process through the `cryptoki`
//! crate, each with its own freshly initialised token in a temporary directory,
//! and every operation is timed against both. The result is printed on stdout
//! as a Markdown table (ops/s per module and the Tessera/SoftHSMv2 ratio) ready
//! to be pasted into the README; progress and per-round details go to stderr.
//!
//! # Running
//!
//! ```text
//! cargo build --release -p tessera-pkcs11          # builds target/release/libtessera_pkcs11.so
//! cargo run --release -p tessera-tests --bin tessera-bench -- [--quick] [--filter X] [--tessera PATH]
//! ```
//!
//! Options:
//!
//! * `--quick`           short smoke-test run (3 rounds of 50 ms, 1,000 objects for the find test)
//! * `--filter SUBSTR`   only run operations whose name contains SUBSTR (case-insensitive)
//! * `--tessera PATH`    Tessera module (default: `<workspace>/target/release/libtessera_pkcs11.so`)
//! * `--softhsm PATH`    SoftHSMv2 module (default: `/usr/lib/softhsm/libsofthsm2.so`)
//! * `--rounds N`        timed rounds per operation and module (default 7; the median is reported)
//! * `--slice-ms MS`     length of one timed round in milliseconds (default 400)
//! * `--objects N`       token objects populated for the C_FindObjects test (default 10,000)
//!
//! If the Tessera library does not exist or cannot be initialised, the SoftHSMv2
//! column is still measured and the Tessera column reads `n/a`.
//!
//! # Method
//!
//! Machines are noisy, so the modules are interleaved: for every operation each
//! module runs one round of a fixed time slice (not a fixed count), in
//! alternating order (A/B, B/A, A/B, ...), and the median rate over all rounds
//! is reported. Each module gets an untimed warm-up first (this also pays for
//! Tessera's one-off PBKDF2 on the first login of the process).
//!
//! # Operations
//!
//! One timed iteration of each row is:
//!
//! * `C_Initialize + C_Finalize`: C_Finalize then C_Initialize of the loaded
//!   library (runs first, while the tokens hold no objects);
//! * `open/close session`: C_OpenSession (read-only) + C_CloseSession;
//! * `login/logout (user)`: C_Login(CKU_USER) + C_Logout on an open session;
//! * `SHA-256`: C_DigestInit + C_Digest (length query) + C_Digest, single part;
//! * `random`: C_GenerateRandom of 32 bytes;
//! * `create token data object`: C_CreateObject of a CKO_DATA object with
//!   CKA_TOKEN=TRUE, CKA_PRIVATE=FALSE, a label and a 32-byte value, in a
//!   logged-in R/W session; the objects of each round are destroyed untimed;
//! * `find 1 of N token objects`: after populating N such objects (untimed),
//!   C_FindObjectsInit (template: CKA_LABEL matching exactly one object) +
//!   C_FindObjects + C_FindObjectsFinal, cycling through the labels.
//!
//! # Adding operations or columns
//!
//! An operation is an [`Op`]: a name plus a setup closure that, given a loaded
//! [`Module`], does the untimed preparation (sessions, login, keys, objects) and
//! returns a [`Bench`] whose `run` is one timed iteration. New operations (RSA/EC
//! signing, ...) are new entries in [`ops`]. A column that is not a PKCS#11
//! module (e.g. "direct aws-lc-rs") would be a new [`Backend`] variant plus an
//! optional second setup closure in [`Op`]; operations that lack it print `n/a`.

use std::error::Error;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

type Res<T> = Result<T, Box<dyn Error>>;

const SO_PIN: &str = "12345678";
const USER_PIN: &str = "1234";
const TOKEN_LABEL: &str = "bench";
const DEFAULT_SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// CKA_PRIVATE of the data objects created by the object tests. Set explicitly
/// so that both modules store the same kind of object (module defaults differ).
const DATA_OBJECTS_PRIVATE: bool = false;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

struct Config {
    quick: bool,
    filter: Option<String>,
    tessera: PathBuf,
    softhsm: PathBuf,
    rounds: usize,
    slice: Duration,
    warmup: Duration,
    objects: usize,
}

const USAGE: &str = "usage: tessera-bench [--quick] [--filter SUBSTR] [--tessera PATH] \
[--softhsm PATH] [--rounds N] [--slice-ms MS] [--objects N]";

impl Config {
    fn from_args() -> Res<Config> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let workspace = workspace.canonicalize().unwrap_or(workspace);
        let mut quick = false;
        let mut filter = None;
        let mut tessera = workspace.join("target/release/libtessera_pkcs11.so");
        let mut softhsm = PathBuf::from(DEFAULT_SOFTHSM);
        let mut rounds = None;
        let mut slice_ms = None;
        let mut objects = None;

        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
            match arg.as_str() {
                "--quick" => quick = true,
                "--filter" => filter = Some(value("--filter")?.to_lowercase()),
                "--tessera" => tessera = PathBuf::from(value("--tessera")?),
                "--softhsm" => softhsm = PathBuf::from(value("--softhsm")?),
                "--rounds" => rounds = Some(value("--rounds")?.parse::<usize>()?),
                "--slice-ms" => slice_ms = Some(value("--slice-ms")?.parse::<u64>()?),
                "--objects" => objects = Some(value("--objects")?.parse::<usize>()?),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
            }
        }
        let rounds = rounds.unwrap_or(if quick { 3 } else { 7 }).max(1);
        let slice = Duration::from_millis(slice_ms.unwrap_or(if quick { 50 } else { 400 }).max(1));
        Ok(Config {
            quick,
            filter,
            tessera,
            softhsm,
            rounds,
            slice,
            warmup: slice / 4,
            objects: objects.unwrap_or(if quick { 1_000 } else { 10_000 }).max(1),
        })
    }
}

// ---------------------------------------------------------------------------
// PKCS#11 modules
// ---------------------------------------------------------------------------

fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

fn pin(p: &str) -> AuthPin {
    AuthPin::from(p)
}

/// A PKCS#11 module loaded and initialised, with a token labelled "bench"
/// (SO PIN 12345678, user PIN 1234) in its own temporary directory.
struct Module {
    pkcs11: Pkcs11,
    /// "manufacturer / description / library version / cryptoki version".
    info: String,
}

impl Module {
    fn open(path: &Path) -> Res<Module> {
        let pkcs11 = Pkcs11::new(path)?;
        pkcs11.initialize(init_args())?;
        let li = pkcs11.get_library_info()?;
        let info = format!(
            "{} / {} / library {} / cryptoki {}",
            li.manufacturer_id().trim(),
            li.library_description().trim(),
            li.library_version(),
            li.cryptoki_version()
        );
        let module = Module { pkcs11, info };

        // Initialise the free (uninitialised) token.
        let mut free = None;
        for slot in module.pkcs11.get_slots_with_token()? {
            if !module.pkcs11.get_token_info(slot)?.token_initialized() {
                free = Some(slot);
                break;
            }
        }
        let slot = free.ok_or("no slot with an uninitialised token")?;
        module.pkcs11.init_token(slot, &pin(SO_PIN), TOKEN_LABEL)?;
        {
            let session = module.pkcs11.open_rw_session(slot)?;
            session.login(UserType::So, Some(&pin(SO_PIN)))?;
            session.init_pin(&pin(USER_PIN))?;
            session.logout()?;
            session.close()?;
        }
        // Warm the user login (Tessera derives the PIN key once per process).
        let slot = module.slot()?;
        let session = module.pkcs11.open_ro_session(slot)?;
        session.login(UserType::User, Some(&pin(USER_PIN)))?;
        session.logout()?;
        session.close()?;
        Ok(module)
    }

    /// The slot holding the bench token. Looked up by label every time because
    /// a module may renumber slots after C_InitToken or C_Finalize/C_Initialize.
    fn slot(&self) -> Res<Slot> {
        for slot in self.pkcs11.get_slots_with_token()? {
            let ti = self.pkcs11.get_token_info(slot)?;
            if ti.token_initialized() && ti.label().trim_end() == TOKEN_LABEL {
                return Ok(slot);
            }
        }
        Err(format!("no initialised token labelled {TOKEN_LABEL:?}").into())
    }

    fn user_session(&self, rw: bool) -> Res<Session> {
        let slot = self.slot()?;
        let session = if rw { self.pkcs11.open_rw_session(slot)? } else { self.pkcs11.open_ro_session(slot)? };
        session.login(UserType::User, Some(&pin(USER_PIN)))?;
        Ok(session)
    }
}

/// One column of the table.
enum Backend {
    Pkcs11(Module),
    /// The module could not be loaded or set up; the column reads `n/a`.
    Unavailable,
}

struct Column {
    name: &'static str,
    path: PathBuf,
    /// Module info, or why it is unavailable.
    detail: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

/// Creates `<tmp>/tokens` and a config file in the SoftHSMv2 format, and points
/// `env_var` at it. Must run before the module is loaded.
fn prepare_token_dir(env_var: &str, extra: &str) -> Res<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("tessera-bench-").tempdir()?;
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens)?;
    let conf = dir.path().join("module.conf");
    std::fs::write(&conf, format!("directories.tokendir = {}\n{extra}", tokens.display()))?;
    std::env::set_var(env_var, &conf);
    Ok(dir)
}

fn open_column(name: &'static str, path: &Path, dir: Res<tempfile::TempDir>) -> Column {
    let unavailable = |detail: String, dir| Column {
        name,
        path: path.to_path_buf(),
        detail,
        backend: Backend::Unavailable,
        _dir: dir,
    };
    let dir = match dir {
        Ok(d) => d,
        Err(e) => return unavailable(format!("n/a: cannot create token dir: {e}"), None),
    };
    if !path.exists() {
        let detail = format!("n/a: {} does not exist", path.display());
        eprintln!("*** {name}: module not found at {}", path.display());
        if name == "Tessera" {
            eprintln!("*** build it with `cargo build --release -p tessera-pkcs11` or pass --tessera PATH;");
        }
        eprintln!("*** continuing without the {name} column");
        return unavailable(detail, Some(dir));
    }
    eprintln!("loading {name}: {}", path.display());
    let t = Instant::now();
    match Module::open(path) {
        Ok(m) => {
            eprintln!("  {name}: token ready in {:.2} s ({})", t.elapsed().as_secs_f64(), m.info);
            Column {
                name,
                path: path.to_path_buf(),
                detail: m.info.clone(),
                backend: Backend::Pkcs11(m),
                _dir: Some(dir),
            }
        }
        Err(e) => {
            eprintln!("*** {name}: setup failed: {e}; continuing without the {name} column");
            unavailable(format!("n/a: setup failed: {e}"), Some(dir))
        }
    }
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// A prepared benchmark: `run` is one timed iteration.
trait Bench {
    fn run(&mut self) -> Res<()>;
    /// Untimed clean-up after each round (and after the warm-up).
    fn after_round(&mut self) -> Res<()> {
        Ok(())
    }
}

/// A [`Bench`] made of a single closure that owns its state.
struct FnBench<F>(F);

impl<F: FnMut() -> Res<()>> Bench for FnBench<F> {
    fn run(&mut self) -> Res<()> {
        (self.0)()
    }
}

fn bench(f: impl FnMut() -> Res<()> + 'static) -> Res<Box<dyn Bench>> {
    Ok(Box::new(FnBench(f)))
}

type Pkcs11Setup = Box<dyn Fn(&Module) -> Res<Box<dyn Bench>>>;

/// A named operation. `pkcs11` performs the untimed setup against a module
/// and returns the timed part.
struct Op {
    name: String,
    pkcs11: Pkcs11Setup,
    // A future "direct aws-lc-rs" column adds e.g.
    // `direct: Option<Box<dyn Fn() -> Res<Box<dyn Bench>>>>` here.
}

fn op(name: impl Into<String>, setup: impl Fn(&Module) -> Res<Box<dyn Bench>> + 'static) -> Op {
    Op { name: name.into(), pkcs11: Box::new(setup) }
}

fn data_object_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(DATA_OBJECTS_PRIVATE),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(vec![0x5a; 32]),
    ]
}

/// C_CreateObject of a token data object; the objects created in a round are
/// destroyed (untimed) after it, so the token does not grow across rounds.
struct CreateObjects {
    session: Session,
    template: Vec<Attribute>,
    created: Vec<ObjectHandle>,
}

impl Bench for CreateObjects {
    fn run(&mut self) -> Res<()> {
        let h = self.session.create_object(&self.template)?;
        self.created.push(h);
        Ok(())
    }
    fn after_round(&mut self) -> Res<()> {
        for h in self.created.drain(..) {
            self.session.destroy_object(h)?;
        }
        Ok(())
    }
}

fn find_label(i: usize) -> String {
    format!("find-{i:06}")
}

/// The table of operations, in run order. C_Initialize + C_Finalize runs
/// first, while the tokens are still empty.
fn ops(cfg: &Config) -> Vec<Op> {
    let objects = cfg.objects;
    vec![
        op("C_Initialize + C_Finalize", |m| {
            let p = m.pkcs11.clone();
            bench(move || {
                p.clone().finalize()?;
                p.initialize(init_args())?;
                Ok(())
            })
        }),
        op("open/close session", |m| {
            let p = m.pkcs11.clone();
            let slot = m.slot()?;
            bench(move || {
                p.open_ro_session(slot)?.close()?;
                Ok(())
            })
        }),
        op("login/logout (user)", |m| {
            let session = m.pkcs11.open_ro_session(m.slot()?)?;
            let user_pin = pin(USER_PIN);
            bench(move || {
                session.login(UserType::User, Some(&user_pin))?;
                session.logout()?;
                Ok(())
            })
        }),
        op("SHA-256, 1 KB (C_Digest)", |m| digest_bench(m, 1024)),
        op("SHA-256, 1 MB (C_Digest)", |m| digest_bench(m, 1024 * 1024)),
        op("random, 32 bytes (C_GenerateRandom)", |m| {
            let session = m.pkcs11.open_ro_session(m.slot()?)?;
            let mut buf = [0u8; 32];
            bench(move || {
                session.generate_random_slice(&mut buf)?;
                black_box(&buf);
                Ok(())
            })
        }),
        op("create token data object (C_CreateObject)", |m| {
            Ok(Box::new(CreateObjects {
                session: m.user_session(true)?,
                template: data_object_template("bench-create"),
                created: Vec::new(),
            }))
        }),
        op(format!("find 1 of {} token objects (C_FindObjects*)", thousands(objects as f64)), move |m| {
            find_bench(m, objects)
        }),
    ]
}

fn digest_bench(m: &Module, len: usize) -> Res<Box<dyn Bench>> {
    let session = m.pkcs11.open_ro_session(m.slot()?)?;
    let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
    bench(move || {
        black_box(session.digest(&Mechanism::Sha256, &data)?);
        Ok(())
    })
}

/// Populates `n` token data objects labelled find-000000.. (untimed), then
/// times C_FindObjectsInit(CKA_LABEL) + C_FindObjects + C_FindObjectsFinal,
/// cycling through the labels so every search hits a different object.
fn find_bench(m: &Module, n: usize) -> Res<Box<dyn Bench>> {
    let session = m.user_session(true)?;
    let t = Instant::now();
    for i in 0..n {
        session.create_object(&data_object_template(&find_label(i)))?;
    }
    eprintln!(
        "    populated {n} token objects in {:.2} s ({:.0} objects/s)",
        t.elapsed().as_secs_f64(),
        n as f64 / t.elapsed().as_secs_f64()
    );
    let templates: Vec<[Attribute; 1]> = (0..n).map(|i| [Attribute::Label(find_label(i).into_bytes())]).collect();
    // A stride coprime with n visits every label in a scattered order.
    let stride = (7919..).find(|s| gcd(*s, n) == 1).unwrap_or(1);
    let mut i = 0usize;
    bench(move || {
        i = (i + stride) % n;
        let found = session.find_objects(&templates[i])?;
        if found.len() != 1 {
            return Err(format!("expected 1 object for {}, found {}", find_label(i), found.len()).into());
        }
        Ok(())
    })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

// ---------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------

/// Runs `b` for at least `slice` (and at least once); returns ops/s.
///
/// The clock is read after batches of iterations; the batch doubles while a
/// batch takes under 50 µs, so sub-microsecond operations do not pay for a
/// clock read each, and the slice is overshot by well under a millisecond.
fn time_slice(b: &mut dyn Bench, slice: Duration) -> Res<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    let mut batch = 1u64;
    let mut last = Duration::ZERO;
    let elapsed = loop {
        for _ in 0..batch {
            b.run()?;
        }
        n += batch;
        let e = start.elapsed();
        if e >= slice {
            break e;
        }
        if e - last < Duration::from_micros(50) {
            batch *= 2;
        }
        last = e;
    };
    b.after_round()?;
    Ok(n as f64 / elapsed.as_secs_f64())
}

enum Outcome {
    NotRun,
    Failed(String),
    Rates(Vec<f64>),
}

impl Outcome {
    fn median(&self) -> Option<f64> {
        match self {
            Outcome::Rates(r) if !r.is_empty() => {
                let mut v = r.clone();
                v.sort_by(|a, b| a.total_cmp(b));
                let mid = v.len() / 2;
                Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
            }
            _ => None,
        }
    }

    fn cell(&self) -> String {
        match self {
            Outcome::NotRun => "n/a".into(),
            Outcome::Failed(_) => "error".into(),
            Outcome::Rates(_) => thousands(self.median().unwrap_or(0.0)),
        }
    }

    fn summary(&self) -> String {
        match self {
            Outcome::NotRun => "n/a".into(),
            Outcome::Failed(e) => format!("FAILED: {e}"),
            Outcome::Rates(r) => {
                let med = self.median().unwrap_or(0.0);
                let lo = r.iter().cloned().fold(f64::INFINITY, f64::min);
                let hi = r.iter().cloned().fold(0.0, f64::max);
                format!(
                    "median {} ops/s (min {}, max {}, spread {:.0}%)",
                    thousands(med),
                    thousands(lo),
                    thousands(hi),
                    if med > 0.0 { (hi - lo) / med * 100.0 } else { 0.0 }
                )
            }
        }
    }
}

/// Runs one operation on all columns, interleaved: round r visits the columns
/// in an order rotated by r (A/B, B/A, ... for two columns).
fn run_op(op: &Op, columns: &[Column], cfg: &Config) -> Vec<Outcome> {
    eprintln!("{}", op.name);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut benches: Vec<Option<Box<dyn Bench>>> = Vec::new();
    for col in columns {
        let prepared = match &col.backend {
            Backend::Unavailable => Ok(None),
            Backend::Pkcs11(m) => (op.pkcs11)(m).map(Some),
        };
        // Warm-up (untimed).
        let prepared = prepared.and_then(|b| match b {
            Some(mut b) => time_slice(b.as_mut(), cfg.warmup).map(|_| Some(b)),
            None => Ok(None),
        });
        match prepared {
            Ok(Some(b)) => {
                outcomes.push(Outcome::Rates(Vec::new()));
                benches.push(Some(b));
            }
            Ok(None) => {
                outcomes.push(Outcome::NotRun);
                benches.push(None);
            }
            Err(e) => {
                eprintln!("  {}: setup/warm-up failed: {e}", col.name);
                outcomes.push(Outcome::Failed(e.to_string()));
                benches.push(None);
            }
        }
    }
    let k = columns.len();
    for round in 0..cfg.rounds {
        for j in 0..k {
            let c = (round + j) % k;
            let Some(b) = benches[c].as_mut() else {
                continue;
            };
            match time_slice(b.as_mut(), cfg.slice) {
                Ok(rate) => {
                    if let Outcome::Rates(r) = &mut outcomes[c] {
                        r.push(rate);
                    }
                }
                Err(e) => {
                    eprintln!("  {}: round {round} failed: {e}", columns[c].name);
                    outcomes[c] = Outcome::Failed(e.to_string());
                    benches[c] = None;
                }
            }
        }
    }
    // Drop the prepared state (closes sessions) before the next operation.
    drop(benches);
    for (col, o) in columns.iter().zip(&outcomes) {
        eprintln!("  {:<10} {}", col.name, o.summary());
    }
    outcomes
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// 1234567.8 -> "1,234,568"; small rates keep three significant digits.
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x < 100.0 {
        return if x < 10.0 { format!("{x:.2}") } else { format!("{x:.1}") };
    }
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, (rem % 3600) / 60)
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn print_report(cfg: &Config, columns: &[Column], results: &[(String, Vec<Outcome>)]) {
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tessera-bench {}, nproc {}{}{}",
        utc_now(),
        nproc,
        cpu_model().map(|c| format!(", {c}")).unwrap_or_default(),
        if cfg.quick { "; --quick run" } else { "" }
    );
    let _ = writeln!(out);
    for col in columns {
        let _ = writeln!(out, "- {}: `{}` ({})", col.name, col.path.display(), col.detail);
    }
    let _ = writeln!(
        out,
        "- median of {} interleaved rounds of {} ms per module and operation",
        cfg.rounds,
        cfg.slice.as_millis()
    );
    let _ = writeln!(out);
    // One column per backend, then the ratio of the first two (Tessera/SoftHSMv2).
    let mut header = String::from("| operation |");
    let mut rule = String::from("|---|");
    for col in columns {
        let _ = write!(header, " {} ops/s |", col.name);
        rule.push_str("---:|");
    }
    let _ = write!(header, " {}/{} |", columns[0].name, columns[1].name);
    rule.push_str("---:|");
    let _ = writeln!(out, "{header}\n{rule}");
    for (name, outcomes) in results {
        let ratio = match (outcomes[0].median(), outcomes[1].median()) {
            (Some(t), Some(s)) if s > 0.0 => format!("{:.2}x", t / s),
            _ => "n/a".into(),
        };
        let mut row = format!("| {name} |");
        for o in outcomes {
            let _ = write!(row, " {} |", o.cell());
        }
        let _ = writeln!(out, "{row} {ratio} |");
    }
    print!("{out}");
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("tessera-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let cfg = Config::from_args()?;
    let selected: Vec<Op> = ops(&cfg)
        .into_iter()
        .filter(|op| cfg.filter.as_ref().is_none_or(|f| op.name.to_lowercase().contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        return Err("--filter matched no operation".into());
    }

    // Both configuration files exist and both variables are set before either
    // module is loaded.
    let tessera_dir = prepare_token_dir("TESSERA_CONF", "");
    let softhsm_dir = prepare_token_dir("SOFTHSM2_CONF", "objectstore.backend = file\nlog.level = ERROR\n");

    // Column order matches the table: Tessera, SoftHSMv2.
    let columns =
        vec![open_column("Tessera", &cfg.tessera, tessera_dir), open_column("SoftHSMv2", &cfg.softhsm, softhsm_dir)];
    if columns.iter().all(|c| matches!(c.backend, Backend::Unavailable)) {
        return Err("neither module could be loaded".into());
    }

    let started = Instant::now();
    let mut results = Vec::new();
    for op in selected {
        let outcomes = run_op(&op, &columns, &cfg);
        results.push((op.name, outcomes));
    }
    eprintln!("done in {:.1} s\n", started.elapsed().as_secs_f64());

    print_report(&cfg, &columns, &results);

    for col in columns {
        if let Backend::Pkcs11(m) = col.backend {
            if let Err(e) = m.pkcs11.finalize() {
                eprintln!("{}: C_Finalize failed: {e}", col.name);
            }
        }
    }
    Ok(())
}
