//! `tessera-bench`: side-by-side throughput benchmark of Tessera, SoftHSMv2 and
//! aws-lc-rs called directly.
//!
//! Both PKCS#11 modules are loaded into the same process through the `cryptoki`
//! crate, each with its own freshly initialised token in a temporary directory,
//! and every operation is timed against both. A third column runs the same
//! cryptographic operation through `aws-lc-rs` directly, in this process and
//! without PKCS#11: the floor, since Tessera's cryptography is aws-lc. The
//! result is printed on stdout as Markdown tables (ops/s per column and the
//! ratios Tessera/SoftHSMv2 and Tessera/aws-lc-rs; then Tessera's 2-thread
//! scaling, with aws-lc-rs as the control) ready to be pasted into docs/benchmark.md; progress and per-round details
//! go to stderr.
//!
//! # Running
//!
//! ```text
//! cargo build --release -p tessera-pkcs11 && target/release/tessera-util --seal
//! cargo run --release -p tessera-tests --bin tessera-bench -- [--quick] [--filter X] [--tessera PATH]
//! ```
//!
//! (Tessera checks the integrity value of its library at `C_Initialize`; an
//! unsealed rebuild puts it in its error state and its column reads `error`.)
//!
//! Options:
//!
//! * `--quick`           short smoke-test run (3 rounds of 50 ms, 1,000 objects for the find test)
//! * `--filter SUBSTR`   only run operations whose name contains SUBSTR (case-insensitive; several
//!   substrings separated by `|`: any of them)
//! * `--tessera PATH`    Tessera module (default: `<workspace>/target/release/libtessera_pkcs11.so`)
//! * `--softhsm PATH`    SoftHSMv2 module (default: `/usr/lib/softhsm/libsofthsm2.so`)
//! * `--baseline PATH`   an earlier Tessera build (its sealed `.so`) in
//!   SoftHSMv2's place, with a token store of its own: old and new side by side in one run
//! * `--audit`           the same Tessera library with its audit log on (a chain made with
//!   `tessera_audit::writer::init` beside a token store of its own; the library copied (its seal
//!   is inside it), so that it loads a second time) in SoftHSMv2's place: the cost of the log per call,
//!   in a further table of the time each call adds and the slowdown, rounds paired as they ran
//! * `--rounds N`        timed rounds per operation and column (default 5; the median is reported)
//! * `--slice-ms MS`     length of one timed round in milliseconds (default 300)
//! * `--objects N`       token objects populated for the C_FindObjects test (default 10,000)
//! * `--no-threads`      skip the 2-thread scaling table
//! * `--cpu-time`        time each round in the CPU time of the benchmark's thread instead of wall
//!   time: on a machine shared with other work, time spent preempted is not counted (work the
//!   module does on other threads would not be either; it does none in these rows). Implies
//!   `--no-threads` (the scaling table is a matter of wall time)
//! * `--openssl`         a further column: the post-quantum rows in OpenSSL 3.5 (its default
//!   provider, built from source and linked in), with the ratios Tessera/OpenSSL; needs the binary
//!   built with `--features openssl-bench` (`bench_openssl.rs`; docs/post-quantum-performance.md).
//!   Before timing, it checks that Tessera and OpenSSL interoperate on each algorithm
//! * `--processes N`     whole processes per module and row of the short-lived-process table
//!   (default 21, `--quick` 5; 0 skips it). That table comes first: `C_Initialize` (first call of
//!   a process, and repeated) and `pkcs11-tool --login -O` processes on an ordinary token, with
//!   the login cache warm and on a test token, Tessera beside SoftHSMv2 (`bench_processes.rs`)
//!
//! If the Tessera library does not exist or cannot be initialised, the other
//! columns are still measured and the Tessera column reads `n/a`.
//!
//! # Method
//!
//! Machines are noisy, so the columns are interleaved: for every operation each
//! column runs one round of a fixed time slice (not a fixed count), in an order
//! rotated every round (A/B/C, B/C/A, C/A/B, ...), and the median rate over all
//! rounds is reported. Each column gets an untimed warm-up first (this also pays
//! for Tessera's one-off PBKDF2 on the first login of the process). Key
//! generation of RSA-2048 is slow and its time per key varies widely, so that
//! row runs rounds four times as long (at most 3 of them).
//!
//! Objects an operation creates (data objects, generated or derived keys) are
//! destroyed untimed: at the end of each round and whenever 1,000 have piled up
//! (the clock is stopped meanwhile).
//!
//! The keys of the cryptographic rows are generated once per module, on the
//! first row that needs them: session objects (CKA_TOKEN=FALSE, private keys
//! CKA_PRIVATE and CKA_SENSITIVE) in a logged-in R/W session that stays open
//! until the end. Each row then opens its own session on the token (logged in
//! through the application-wide login). The aws-lc-rs column generates its own
//! keys of the same kinds once.
//!
//! # Operations
//!
//! One timed iteration of each row is, for the PKCS#11 columns (the `cryptoki`
//! crate makes the length query of the two-call convention before every
//! single-part C_Encrypt/C_Decrypt/C_Sign/C_Digest, as most applications do):
//!
//! * `C_Initialize + C_Finalize`: C_Finalize then C_Initialize of the loaded
//!   library (runs first, while the tokens hold no objects);
//! * `open/close session`: C_OpenSession (read-only) + C_CloseSession;
//! * `login/logout (user)`: C_Login(CKU_USER) + C_Logout on an open session;
//! * `SHA-256`: C_DigestInit + C_Digest (length query) + C_Digest, single part;
//! * `random`: C_GenerateRandom of 32 bytes;
//! * `RSA-2048 sign`: C_SignInit(CKM_SHA256_RSA_PKCS) + C_Sign of a 64-byte
//!   message; `verify`: C_VerifyInit + C_Verify of that message's signature;
//! * `RSA-2048 OAEP decrypt`: C_DecryptInit(CKM_RSA_PKCS_OAEP: SHA-1, MGF1-SHA-1,
//!   no label, the only OAEP SoftHSMv2 2.6 offers) + C_Decrypt of a 32-byte
//!   plaintext's ciphertext;
//! * `P-256 / P-384 ECDSA sign`: C_SignInit(CKM_ECDSA) + C_Sign of a 32 / 48-byte
//!   digest (SoftHSMv2 has no CKM_ECDSA_SHA*); `verify`: C_VerifyInit + C_Verify;
//! * `Ed25519 sign`: C_SignInit(CKM_EDDSA, no parameters) + C_Sign of a 64-byte message;
//! * `ECDH P-256 derive`: C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL, the peer's
//!   uncompressed point) into a 32-byte CKK_GENERIC_SECRET session key;
//! * `AES-256-GCM encrypt`: C_EncryptInit(CKM_AES_GCM, a fresh 12-byte IV, no AAD,
//!   128-bit tag) + C_Encrypt of 4 KB or 1 MB;
//! * `AES-256-CBC encrypt`: C_EncryptInit(CKM_AES_CBC_PAD, a fresh IV) + C_Encrypt
//!   of 4 KB or 1 MB (16 bytes of padding added);
//! * `HMAC-SHA-256`: C_SignInit(CKM_SHA256_HMAC, a 32-byte CKK_GENERIC_SECRET key)
//!   + C_Sign of 1 KB;
//! * `generate RSA-2048 key pair` (public exponent 65537), `generate P-256 key
//!   pair`, `generate AES-256 key`: C_GenerateKeyPair / C_GenerateKey of session
//!   objects. Tessera runs a pairwise-consistency test (a signature and its
//!   verification; for RSA also an OAEP round trip) on every key pair it
//!   generates; SoftHSMv2 does not. The P-256 row runs twice: against bare
//!   generation in the aws-lc-rs column, then against generation plus the same
//!   pairwise test (`EcdsaKeyPair::generate`, `sign`, `verify`), the floor for a
//!   module that must test every pair it makes;
//! * `ML-DSA-65 generate key pair`: C_GenerateKeyPair(CKM_ML_DSA_KEY_PAIR_GEN) of session objects
//!   (Tessera tests each pair: a CKM_ML_DSA signature and its verification); like P-256, the row
//!   runs twice, against aws-lc-rs's bare `PqdsaKeyPair::generate` and then generation plus the
//!   same pairwise test;
//! * `ML-DSA-65 sign` / `verify`: C_SignInit(CKM_ML_DSA, no parameter: pure, hedged, empty
//!   context) + C_Sign of the 64-byte message, C_VerifyInit + C_Verify of its signature; aws-lc-rs
//!   column: `PqdsaKeyPair::sign`, `UnparsedPublicKey::verify` (the public key parsed each time, as
//!   the module does);
//! * `SLH-DSA-SHA2-128f sign` / `verify`: the same with CKM_SLH_DSA; the floor there is RustCrypto's
//!   `slh-dsa` (aws-lc-rs has no SLH-DSA; the module's SLH-DSA is that library):
//!   `slh_sign_internal` of `0 ‖ 0 ‖ M` with a fresh 16-byte `opt_rand`, `slh_verify_internal`.
//!   SoftHSMv2 2.6 has neither family: `n/a`;
//! * `generate ML-KEM-768 key pair`: C_GenerateKeyPair(CKM_ML_KEM_KEY_PAIR_GEN) of session
//!   objects, with Tessera's pairwise test (an encapsulation and a decapsulation); `ML-KEM-768
//!   encapsulate`: C_EncapsulateKey(CKM_ML_KEM) into a 32-byte CKK_GENERIC_SECRET session key
//!   (the `cryptoki` crate makes the length query first); `decapsulate`: C_DecapsulateKey of one
//!   fixed ciphertext into such a key. The aws-lc-rs column: `kem::DecapsulationKey::generate` and
//!   `encapsulation_key`, `EncapsulationKey::encapsulate`, `DecapsulationKey::decapsulate`; the
//!   key-pair row runs a second time against generation plus the same pairwise test there;
//! * `create token data object`: C_CreateObject of a CKO_DATA object with
//!   CKA_TOKEN=TRUE, CKA_PRIVATE=FALSE, a label and a 32-byte value, in a
//!   logged-in R/W session;
//! * `find 1 of N token objects`: after populating N such objects (untimed),
//!   C_FindObjectsInit (template: CKA_LABEL matching exactly one object) +
//!   C_FindObjects + C_FindObjectsFinal, cycling through the labels. The object
//!   rows run last, so the token holds no data objects during the others.
//!
//! The aws-lc-rs column does the same cryptography with keys already parsed:
//! `digest::digest`, `rand::fill`, `rsa::KeyPair::sign(RSA_PKCS1_SHA256)`,
//! `signature::ParsedPublicKey::verify_sig`, `OaepPrivateDecryptingKey::decrypt
//! (OAEP_SHA1_MGF1SHA1)`, `EcdsaKeyPair::sign` and `Ed25519KeyPair::sign`,
//! `agreement::agree` (the peer's point parsed every time, as PKCS#11 must),
//! `aead::LessSafeKey::seal_in_place_append_tag` and
//! `cipher::PaddedBlockEncryptingKey::less_safe_encrypt` (each over a fresh copy
//! of the input, which stands in for the PKCS#11 output buffer), `hmac::sign`,
//! and `rsa::KeyPair::generate`, `EcdsaKeyPair::generate`, 32 random bytes made
//! into an AES-256-GCM key. One difference: aws-lc-rs's ECDSA signs a *message*
//! (ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING) and so
//! hashes 64 bytes more than the PKCS#11 columns, which sign a digest (about
//! 0.2 µs, around 1% of a P-256 signature, less for P-384); verification likewise. Rows without
//! a direct equivalent (sessions, login, objects) read `n/a` there.
//!
//! # Thread scaling
//!
//! A second table measures Tessera alone (no SoftHSMv2) on RSA-2048 sign,
//! P-256 sign, AES-256-GCM 4 KB and HMAC-SHA-256 1 KB: rounds with one thread
//! alternate with rounds of two threads, each thread with its own session (and
//! the same key), started together; the table gives the median total
//! throughput of each and their ratio (target ≥ 1.8×). The same two-thread
//! measurement of the aws-lc-rs column is the control: it shows what the
//! machine itself gives (two idle cores give about 2×; a busy machine less), so
//! a Tessera ratio well below the control points at contention inside the
//! module.
//!
//! # Adding operations or columns
//!
//! An operation is an [`Op`]: a name plus a setup closure that, given a loaded
//! [`Module`], does the untimed preparation (sessions, keys, objects) and
//! returns a [`Bench`] whose `run` is one timed iteration, and optionally a
//! second setup closure for the aws-lc-rs column ([`Direct`]). New operations
//! are new entries in [`ops`]. A setup that finds the module lacking a
//! mechanism or curve returns [`NotSupported`], and its cell reads `n/a`.

use std::cell::OnceCell;
use std::error::Error;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::{aead, agreement, cipher, digest, hmac, kem, rand, rsa, signature};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, KeyType, MlDsaParameterSetType, ObjectClass, ObjectHandle, ParameterSetType, SlhDsaParameterSetType,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, Ulong};
use tessera_tests::oid::{ED25519 as OID_ED25519, P256 as OID_P256, P384 as OID_P384};

type Res<T> = Result<T, Box<dyn Error>>;

const SO_PIN: &str = "12345678";
const USER_PIN: &str = "123456";
const TOKEN_LABEL: &str = "bench";
const DEFAULT_SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// CKA_PRIVATE of the data objects created by the object tests. Set explicitly
/// so that both modules store the same kind of object (module defaults differ).
const DATA_OBJECTS_PRIVATE: bool = false;
/// Objects a benchmark may pile up before they are destroyed (untimed) mid-round.
const CLEANUP_EVERY: usize = 1_000;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

struct Config {
    quick: bool,
    filter: Option<String>,
    tessera: PathBuf,
    softhsm: PathBuf,
    /// An earlier Tessera build, measured in SoftHSMv2's place (`--baseline`).
    baseline: Option<PathBuf>,
    /// The Tessera library again, with the audit log on, in SoftHSMv2's place (`--audit`).
    audit: bool,
    rounds: usize,
    slice: Duration,
    warmup: Duration,
    objects: usize,
    threads: bool,
    /// Processes per module and row of the short-lived-process table (`--processes`; 0: none).
    processes: usize,
    /// The OpenSSL 3.5 column of the post-quantum rows (`--openssl`).
    #[cfg_attr(not(feature = "openssl-bench"), allow(dead_code))]
    openssl: bool,
}

const USAGE: &str = "usage: tessera-bench [--quick] [--filter SUBSTR] [--tessera PATH] \
[--softhsm PATH | --baseline PATH | --audit] [--rounds N] [--slice-ms MS] [--objects N] [--no-threads] [--cpu-time] \
[--processes N] [--openssl]";

impl Config {
    fn from_args() -> Res<Config> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let workspace = workspace.canonicalize().unwrap_or(workspace);
        let mut quick = false;
        let mut filter = None;
        let mut tessera = workspace.join("target/release/libtessera_pkcs11.so");
        let mut softhsm = PathBuf::from(DEFAULT_SOFTHSM);
        let mut baseline = None;
        let mut rounds = None;
        let mut slice_ms = None;
        let mut objects = None;
        let mut threads = true;
        let mut audit = false;
        let mut processes = None;
        let mut openssl = false;

        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
            match arg.as_str() {
                "--quick" => quick = true,
                "--filter" => filter = Some(value("--filter")?.to_lowercase()),
                "--tessera" => tessera = PathBuf::from(value("--tessera")?),
                "--softhsm" => softhsm = PathBuf::from(value("--softhsm")?),
                "--baseline" => baseline = Some(PathBuf::from(value("--baseline")?)),
                "--rounds" => rounds = Some(value("--rounds")?.parse::<usize>()?),
                "--slice-ms" => slice_ms = Some(value("--slice-ms")?.parse::<u64>()?),
                "--objects" => objects = Some(value("--objects")?.parse::<usize>()?),
                "--no-threads" => threads = false,
                "--cpu-time" => {
                    CPU_TIME.store(true, std::sync::atomic::Ordering::Relaxed);
                    // Two threads' rates are a matter of wall time.
                    threads = false;
                }
                "--audit" => audit = true,
                "--processes" => processes = Some(value("--processes")?.parse::<usize>()?),
                "--openssl" if cfg!(feature = "openssl-bench") => openssl = true,
                "--openssl" => {
                    return Err("--openssl: this tessera-bench was built without OpenSSL; build it with \
                                `cargo build --release -p tessera-tests --bin tessera-bench --features openssl-bench`"
                        .into())
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
            }
        }
        let rounds = rounds.unwrap_or(if quick { 3 } else { 5 }).max(1);
        let slice = Duration::from_millis(slice_ms.unwrap_or(if quick { 50 } else { 300 }).max(1));
        Ok(Config {
            quick,
            filter,
            tessera,
            softhsm,
            baseline,
            audit,
            rounds,
            slice,
            warmup: slice / 4,
            objects: objects.unwrap_or(if quick { 1_000 } else { 10_000 }).max(1),
            threads,
            processes: processes.unwrap_or(if quick { 5 } else { 21 }),
            openssl,
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

/// A setup found the module without a mechanism or curve: the cell reads `n/a`.
#[derive(Debug)]
struct NotSupported(String);

impl std::fmt::Display for NotSupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for NotSupported {}

/// A PKCS#11 module loaded and initialised, with a token labelled "bench"
/// (SO PIN 12345678, user PIN 123456) in its own temporary directory.
struct Module {
    /// The keys of the cryptographic rows, made on first use. Declared first so
    /// that its session closes before the library goes.
    keys: OnceCell<Result<Keys, String>>,
    pkcs11: Pkcs11,
    /// "manufacturer / description / library version / cryptoki version".
    info: String,
    /// For a Tessera column: its configuration file, which `TESSERA_CONF` must name whenever
    /// the module initialises (two Tessera builds in one process each keep their own store).
    conf: Option<PathBuf>,
}

impl Module {
    fn open(path: &Path, conf: Option<PathBuf>) -> Res<Module> {
        let pkcs11 = Pkcs11::new(path)?;
        point_at(&conf);
        pkcs11.initialize(init_args())?;
        let li = pkcs11.get_library_info()?;
        let info = format!(
            "{} / {} / library {} / cryptoki {}",
            li.manufacturer_id().trim(),
            li.library_description().trim(),
            li.library_version(),
            li.cryptoki_version()
        );
        let module = Module { keys: OnceCell::new(), pkcs11, info, conf };

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

    /// A session logged in as the user. The login belongs to the application,
    /// so once the key session holds it, a new session is already logged in.
    fn user_session(&self, rw: bool) -> Res<Session> {
        let slot = self.slot()?;
        let session = if rw { self.pkcs11.open_rw_session(slot)? } else { self.pkcs11.open_ro_session(slot)? };
        match session.login(UserType::User, Some(&pin(USER_PIN))) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e.into()),
        }
    }

    /// The keys of the cryptographic rows, generated on the first call.
    fn keys(&self) -> Res<&Keys> {
        let keys = self.keys.get_or_init(|| {
            let t = Instant::now();
            let k = Keys::generate(self).map_err(|e| e.to_string());
            if k.is_ok() {
                eprintln!("    generated the session keys in {:.2} s", t.elapsed().as_secs_f64());
            }
            k
        });
        keys.as_ref().map_err(|e| format!("key generation failed: {e}").into())
    }
}

/// Why a key of [`Keys`] is missing.
enum Missing {
    NotSupported(String),
    Failed(String),
}

type KeyPairHandles = (ObjectHandle, ObjectHandle);

/// A module's keys for the cryptographic rows: session objects owned by a
/// logged-in R/W session that lives as long as the [`Module`].
struct Keys {
    _session: Session,
    mechanisms: Vec<MechanismType>,
    /// (public, private).
    rsa: Result<KeyPairHandles, Missing>,
    p256: Result<KeyPairHandles, Missing>,
    p384: Result<KeyPairHandles, Missing>,
    ed25519: Result<KeyPairHandles, Missing>,
    aes: Result<ObjectHandle, Missing>,
    hmac: Result<ObjectHandle, Missing>,
    /// The same kind of HMAC key as a token object (CKA_TOKEN=TRUE), as applications mostly keep
    /// their keys.
    hmac_token: Result<ObjectHandle, Missing>,
}

fn rsa_templates() -> (Vec<Attribute>, Vec<Attribute>) {
    let public = vec![
        Attribute::Token(false),
        Attribute::Verify(true),
        Attribute::Encrypt(true),
        Attribute::ModulusBits(Ulong::from(2048)),
        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
    ];
    let private = vec![
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Decrypt(true),
    ];
    (public, private)
}

fn ec_templates(params: &[u8]) -> (Vec<Attribute>, Vec<Attribute>) {
    let public = vec![Attribute::Token(false), Attribute::Verify(true), Attribute::EcParams(params.to_vec())];
    let private = vec![
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Derive(true),
    ];
    (public, private)
}

fn secret_template(key_type: KeyType, len: u64, usage: [Attribute; 2]) -> Vec<Attribute> {
    let [a, b] = usage;
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::ValueLen(Ulong::from(len)),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        a,
        b,
    ]
}

fn aes_template() -> Vec<Attribute> {
    secret_template(KeyType::AES, 32, [Attribute::Encrypt(true), Attribute::Decrypt(true)])
}

fn hmac_template() -> Vec<Attribute> {
    secret_template(KeyType::GENERIC_SECRET, 32, [Attribute::Sign(true), Attribute::Verify(true)])
}

/// Errors that mean "this module does not do that" rather than a failure.
fn unsupported_rv(e: &P11Error) -> bool {
    matches!(
        e,
        P11Error::Pkcs11(
            RvError::MechanismInvalid
                | RvError::CurveNotSupported
                | RvError::DomainParamsInvalid
                | RvError::KeySizeRange
                | RvError::AttributeValueInvalid,
            _
        )
    )
}

fn missing(e: P11Error) -> Missing {
    if unsupported_rv(&e) {
        Missing::NotSupported(e.to_string())
    } else {
        Missing::Failed(e.to_string())
    }
}

impl Keys {
    fn generate(m: &Module) -> Res<Keys> {
        let session = m.user_session(true)?;
        let mechanisms = m.pkcs11.get_mechanism_list(m.slot()?)?;
        let listed = |mech: &Mechanism| {
            let t = mech.mechanism_type();
            if mechanisms.contains(&t) {
                Ok(())
            } else {
                Err(Missing::NotSupported(format!("{t} is not in C_GetMechanismList")))
            }
        };
        let pair = |mech: Mechanism, (public, private): (Vec<Attribute>, Vec<Attribute>)| {
            listed(&mech)?;
            session.generate_key_pair(&mech, &public, &private).map_err(missing)
        };
        let secret = |mech: Mechanism, template: Vec<Attribute>| {
            listed(&mech)?;
            session.generate_key(&mech, &template).map_err(missing)
        };
        let rsa = pair(Mechanism::RsaPkcsKeyPairGen, rsa_templates());
        let p256 = pair(Mechanism::EccKeyPairGen, ec_templates(OID_P256));
        let p384 = pair(Mechanism::EccKeyPairGen, ec_templates(OID_P384));
        let ed25519 = pair(Mechanism::EccEdwardsKeyPairGen, ec_templates(OID_ED25519));
        let aes = secret(Mechanism::AesKeyGen, aes_template());
        let hmac = secret(Mechanism::GenericSecretKeyGen, hmac_template());
        let token_template =
            hmac_template().into_iter().map(|a| if let Attribute::Token(_) = a { Attribute::Token(true) } else { a });
        let hmac_token = secret(Mechanism::GenericSecretKeyGen, token_template.collect());
        Ok(Keys { _session: session, mechanisms, rsa, p256, p384, ed25519, aes, hmac, hmac_token })
    }

    /// `Err(NotSupported)` unless the module lists `mech`.
    fn require(&self, mech: MechanismType) -> Res<()> {
        if self.mechanisms.contains(&mech) {
            Ok(())
        } else {
            Err(Box::new(NotSupported(format!("{mech} is not in C_GetMechanismList"))))
        }
    }
}

fn key<T: Copy>(k: &Result<T, Missing>, what: &str) -> Res<T> {
    match k {
        Ok(h) => Ok(*h),
        Err(Missing::NotSupported(e)) => Err(Box::new(NotSupported(format!("no {what} key: {e}")))),
        Err(Missing::Failed(e)) => Err(format!("{what} key generation failed: {e}").into()),
    }
}

/// aws-lc-rs, called directly: the keys of the cryptographic rows, made on first use.
struct Direct {
    keys: OnceCell<Result<Arc<DirectKeys>, String>>,
}

struct DirectKeys {
    rng: rand::SystemRandom,
    rsa: rsa::KeyPair,
    rsa_public: signature::ParsedPublicKey,
    rsa_signature: Vec<u8>,
    oaep: rsa::OaepPrivateDecryptingKey,
    oaep_ciphertext: Vec<u8>,
    p256: signature::EcdsaKeyPair,
    p256_public: signature::ParsedPublicKey,
    p256_signature: Vec<u8>,
    p384: signature::EcdsaKeyPair,
    p384_public: signature::ParsedPublicKey,
    p384_signature: Vec<u8>,
    ed25519: signature::Ed25519KeyPair,
    ecdh: agreement::PrivateKey,
    aes_gcm: aead::LessSafeKey,
    aes_cbc: cipher::PaddedBlockEncryptingKey,
    hmac: hmac::Key,
}

/// aws-lc-rs's `Unspecified`/`KeyRejected` carry no detail worth keeping.
fn lc<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> Box<dyn Error> {
    move |e| format!("aws-lc-rs {what}: {e:?}").into()
}

impl DirectKeys {
    fn generate() -> Res<DirectKeys> {
        let rng = rand::SystemRandom::new();
        let rsa = rsa::KeyPair::generate(rsa::KeySize::Rsa2048).map_err(lc("RSA keygen"))?;
        let rsa_public = signature::ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, rsa.public_key())
            .map_err(lc("RSA public key"))?;
        let mut rsa_signature = vec![0; rsa.public_modulus_len()];
        rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, MESSAGE, &mut rsa_signature).map_err(lc("RSA sign"))?;

        let dk = rsa::PrivateDecryptingKey::generate(rsa::KeySize::Rsa2048).map_err(lc("RSA keygen"))?;
        let ek = rsa::OaepPublicEncryptingKey::new(dk.public_key()).map_err(lc("OAEP key"))?;
        let mut oaep_ciphertext = vec![0; ek.ciphertext_size()];
        let n = ek
            .encrypt(&rsa::OAEP_SHA1_MGF1SHA1, &MESSAGE[..32], &mut oaep_ciphertext, None)
            .map_err(lc("OAEP encrypt"))?
            .len();
        oaep_ciphertext.truncate(n);
        let oaep = rsa::OaepPrivateDecryptingKey::new(dk).map_err(lc("OAEP key"))?;

        let ecdsa = |sign: &'static signature::EcdsaSigningAlgorithm,
                     verify: &'static signature::EcdsaVerificationAlgorithm|
         -> Res<(signature::EcdsaKeyPair, signature::ParsedPublicKey, Vec<u8>)> {
            let k = signature::EcdsaKeyPair::generate(sign).map_err(lc("ECDSA keygen"))?;
            let p = signature::ParsedPublicKey::new(verify, k.public_key()).map_err(lc("EC public key"))?;
            let s = k.sign(&rng, MESSAGE).map_err(lc("ECDSA sign"))?.as_ref().to_vec();
            Ok((k, p, s))
        };
        let (p256, p256_public, p256_signature) =
            ecdsa(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &signature::ECDSA_P256_SHA256_FIXED)?;
        let (p384, p384_public, p384_signature) =
            ecdsa(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &signature::ECDSA_P384_SHA384_FIXED)?;
        let ed25519 = signature::Ed25519KeyPair::generate().map_err(lc("Ed25519 keygen"))?;
        let ecdh = agreement::PrivateKey::generate(&agreement::ECDH_P256).map_err(lc("ECDH keygen"))?;

        let mut k = [0u8; 32];
        rand::fill(&mut k).map_err(lc("random"))?;
        let aes_gcm = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &k).map_err(lc("AES"))?);
        let aes_cbc = cipher::PaddedBlockEncryptingKey::cbc_pkcs7(
            cipher::UnboundCipherKey::new(&cipher::AES_256, &k).map_err(lc("AES"))?,
        )
        .map_err(lc("AES-CBC"))?;
        rand::fill(&mut k).map_err(lc("random"))?;
        let hmac = hmac::Key::new(hmac::HMAC_SHA256, &k);
        Ok(DirectKeys {
            rng,
            rsa,
            rsa_public,
            rsa_signature,
            oaep,
            oaep_ciphertext,
            p256,
            p256_public,
            p256_signature,
            p384,
            p384_public,
            p384_signature,
            ed25519,
            ecdh,
            aes_gcm,
            aes_cbc,
            hmac,
        })
    }
}

impl Direct {
    fn keys(&self) -> Res<Arc<DirectKeys>> {
        let keys = self.keys.get_or_init(|| {
            let t = Instant::now();
            let k = DirectKeys::generate().map(Arc::new).map_err(|e| e.to_string());
            if k.is_ok() {
                eprintln!("    generated the aws-lc-rs keys in {:.2} s", t.elapsed().as_secs_f64());
            }
            k
        });
        keys.clone().map_err(|e| format!("key generation failed: {e}").into())
    }
}

/// The aws-lc-rs version this binary links (from the workspace's Cargo.lock).
fn aws_lc_rs_version() -> &'static str {
    let lock = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"));
    lock.split("[[package]]")
        .find(|p| p.contains("name = \"aws-lc-rs\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or("?")
}

/// One column of the table.
enum Backend {
    Pkcs11(Box<Module>),
    Direct(Direct),
    /// OpenSSL 3.5 called directly (`--openssl`): the post-quantum rows only.
    #[cfg_attr(not(feature = "openssl-bench"), allow(dead_code))]
    OpenSsl,
    /// The module could not be loaded or set up; the column reads `n/a`.
    Unavailable,
}

struct Column {
    name: &'static str,
    /// The library, or what the column is.
    path: String,
    /// Module info, or why it is unavailable.
    detail: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

/// Points `TESSERA_CONF` at a Tessera column's configuration before its module initialises.
fn point_at(conf: &Option<PathBuf>) {
    if let Some(c) = conf {
        std::env::set_var("TESSERA_CONF", c);
    }
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

/// For `--audit`: an audit chain in `audit` beside the store `dir` (where the module looks for
/// one when `audit.dir` is unset), and a copy of the Tessera library (its integrity value sealed
/// in it) in `dir`, loaded as a second library.
fn audited_copy(tessera: &Path, dir: &Path) -> Result<PathBuf, String> {
    tessera_audit::writer::init(&dir.join("audit"), &dir.join("audit.seed")).map_err(|e| e.to_string())?;
    let copy = dir.join("libtessera_pkcs11_audit.so");
    std::fs::copy(tessera, &copy).map_err(|e| format!("{}: {e}", tessera.display()))?;
    eprintln!("audit log: {}", dir.join("audit").display());
    Ok(copy)
}

fn open_column(name: &'static str, path: &Path, dir: Res<tempfile::TempDir>, tessera: bool) -> Column {
    let unavailable = |detail: String, dir| Column {
        name,
        path: format!("`{}`", path.display()),
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
    let conf = tessera.then(|| dir.path().join("module.conf"));
    match Module::open(path, conf) {
        Ok(m) => {
            eprintln!("  {name}: token ready in {:.2} s ({})", t.elapsed().as_secs_f64(), m.info);
            Column {
                name,
                path: format!("`{}`", path.display()),
                detail: m.info.clone(),
                backend: Backend::Pkcs11(Box::new(m)),
                _dir: Some(dir),
            }
        }
        Err(e) => {
            eprintln!("*** {name}: setup failed: {e}; continuing without the {name} column");
            unavailable(format!("n/a: setup failed: {e}"), Some(dir))
        }
    }
}

#[cfg(feature = "openssl-bench")]
#[path = "bench_openssl.rs"]
mod openssl_column;

/// The algorithms of the post-quantum rows, as the OpenSSL column names them.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "openssl-bench"), allow(dead_code))]
enum PqAlg {
    MlDsa65,
    SlhDsaSha2_128f,
    MlKem768,
}

/// What a post-quantum row times in the OpenSSL column (`bench_openssl.rs`).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "openssl-bench"), allow(dead_code))]
enum OpenSslRow {
    /// Key generation alone.
    KeyPair(PqAlg),
    /// Key generation and a pairwise test (sign and verify, or encapsulate and decapsulate).
    KeyPairTested(PqAlg),
    Sign(PqAlg),
    Verify(PqAlg),
    Encapsulate,
    Decapsulate,
}

#[cfg(feature = "openssl-bench")]
fn openssl_setup(row: OpenSslRow) -> Res<Box<dyn Bench>> {
    openssl_column::setup(row)
}

#[cfg(not(feature = "openssl-bench"))]
fn openssl_setup(_: OpenSslRow) -> Res<Box<dyn Bench>> {
    Err("built without the openssl-bench feature".into())
}

#[cfg(feature = "openssl-bench")]
fn openssl_column() -> Column {
    Column {
        name: "OpenSSL",
        path: format!("{} (default provider), linked in", openssl_column::version()),
        detail: "EVP calls in this process, no PKCS#11: post-quantum rows only".into(),
        backend: Backend::OpenSsl,
        _dir: None,
    }
}

fn direct_column() -> Column {
    Column {
        name: "aws-lc-rs",
        path: format!("aws-lc-rs {} in this process", aws_lc_rs_version()),
        detail: "direct calls, no PKCS#11: the floor".into(),
        backend: Backend::Direct(Direct { keys: OnceCell::new() }),
        _dir: None,
    }
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// A prepared benchmark: `run` is one timed iteration. `Send` so that the
/// thread-scaling rounds can run it on another thread.
trait Bench: Send {
    fn run(&mut self) -> Res<()>;
    /// Objects created and not yet cleaned up.
    fn pending(&self) -> usize {
        0
    }
    /// Untimed clean-up: after each round (and the warm-up), and whenever
    /// [`CLEANUP_EVERY`] objects are pending.
    fn clean_up(&mut self) -> Res<()> {
        Ok(())
    }
}

/// A [`Bench`] made of a single closure that owns its state.
struct FnBench<F>(F);

impl<F: FnMut() -> Res<()> + Send> Bench for FnBench<F> {
    fn run(&mut self) -> Res<()> {
        (self.0)()
    }
}

fn bench(f: impl FnMut() -> Res<()> + Send + 'static) -> Res<Box<dyn Bench>> {
    Ok(Box::new(FnBench(f)))
}

/// A [`Bench`] whose iterations create objects (data objects, generated or
/// derived keys) in its session; they are destroyed untimed.
struct Creates<F> {
    session: Session,
    make: F,
    created: Vec<ObjectHandle>,
}

impl<F: FnMut(&Session, &mut Vec<ObjectHandle>) -> Res<()> + Send> Bench for Creates<F> {
    fn run(&mut self) -> Res<()> {
        (self.make)(&self.session, &mut self.created)
    }
    fn pending(&self) -> usize {
        self.created.len()
    }
    fn clean_up(&mut self) -> Res<()> {
        for h in self.created.drain(..) {
            self.session.destroy_object(h)?;
        }
        Ok(())
    }
}

fn creates(
    session: Session,
    make: impl FnMut(&Session, &mut Vec<ObjectHandle>) -> Res<()> + Send + 'static,
) -> Res<Box<dyn Bench>> {
    Ok(Box::new(Creates { session, make, created: Vec::new() }))
}

type Pkcs11Setup = Box<dyn Fn(&Module) -> Res<Box<dyn Bench>>>;
type DirectSetup = Box<dyn Fn(&Direct) -> Res<Box<dyn Bench>>>;

/// A named operation. `pkcs11` performs the untimed setup against a module
/// and returns the timed part; `direct` does the same for the aws-lc-rs column
/// (`None`: `n/a` there).
struct Op {
    name: String,
    pkcs11: Pkcs11Setup,
    direct: Option<DirectSetup>,
    /// What the OpenSSL column times (`None`: `n/a` there).
    openssl: Option<OpenSslRow>,
    /// Rounds run `slice_factor` times the configured slice (at most 3 of them).
    slice_factor: u32,
    /// Also measured in the thread-scaling table (Tessera only).
    scaling: bool,
}

fn op(name: impl Into<String>, setup: impl Fn(&Module) -> Res<Box<dyn Bench>> + 'static) -> Op {
    Op { name: name.into(), pkcs11: Box::new(setup), direct: None, openssl: None, slice_factor: 1, scaling: false }
}

impl Op {
    fn direct(mut self, setup: impl Fn(&Direct) -> Res<Box<dyn Bench>> + 'static) -> Op {
        self.direct = Some(Box::new(setup));
        self
    }

    fn openssl(mut self, row: OpenSslRow) -> Op {
        self.openssl = Some(row);
        self
    }

    fn slow(mut self, factor: u32) -> Op {
        self.slice_factor = factor;
        self
    }

    fn scaling(mut self) -> Op {
        self.scaling = true;
        self
    }
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

fn find_label(i: usize) -> String {
    format!("find-{i:06}")
}

/// The message signed by the signature rows.
const MESSAGE: &[u8; 64] = b"Tessera benchmark message: every signature row signs these bytes";

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// The other party's P-256 public key for ECDH: an uncompressed point.
fn peer_point() -> &'static [u8] {
    static POINT: OnceLock<Vec<u8>> = OnceLock::new();
    POINT.get_or_init(|| {
        let k = agreement::PrivateKey::generate(&agreement::ECDH_P256).expect("P-256 key");
        k.compute_public_key().expect("P-256 public key").as_ref().to_vec()
    })
}

/// A fresh IV for every encryption: a counter in the last 8 bytes.
fn next_iv<const N: usize>(counter: &mut u64) -> [u8; N] {
    *counter += 1;
    let mut iv = [0u8; N];
    iv[N - 8..].copy_from_slice(&counter.to_be_bytes());
    iv
}

/// A session of the bench token for one row; the application's user login
/// (held by the key session) covers it.
fn row_session(m: &Module) -> Res<(Session, &Keys)> {
    let keys = m.keys()?;
    Ok((m.user_session(true)?, keys))
}

/// The table of operations, in run order. C_Initialize + C_Finalize runs
/// first, while the tokens are still empty; the object rows run last.
fn ops(cfg: &Config) -> Vec<Op> {
    let objects = cfg.objects;
    vec![
        op("C_Initialize + C_Finalize", |m| {
            let p = m.pkcs11.clone();
            let conf = m.conf.clone();
            bench(move || {
                p.clone().finalize()?;
                point_at(&conf);
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
        op("SHA-256, 1 KB (C_Digest)", |m| digest_bench(m, 1024)).direct(|_| direct_digest(1024)),
        op("SHA-256, 1 MB (C_Digest)", |m| digest_bench(m, 1024 * 1024)).direct(|_| direct_digest(1024 * 1024)),
        op("random, 32 bytes (C_GenerateRandom)", |m| {
            let session = m.pkcs11.open_ro_session(m.slot()?)?;
            let mut buf = [0u8; 32];
            bench(move || {
                session.generate_random_slice(&mut buf)?;
                black_box(&buf);
                Ok(())
            })
        })
        .direct(|_| {
            let mut buf = [0u8; 32];
            bench(move || {
                rand::fill(&mut buf).map_err(lc("random"))?;
                black_box(&buf);
                Ok(())
            })
        }),
        // --- RSA ---
        op("RSA-2048 sign (CKM_SHA256_RSA_PKCS)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::SHA256_RSA_PKCS)?;
            let (_, private) = key(&keys.rsa, "RSA-2048")?;
            bench(move || {
                black_box(session.sign(&Mechanism::Sha256RsaPkcs, private, MESSAGE)?);
                Ok(())
            })
        })
        .direct(|d| {
            let k = d.keys()?;
            let mut sig = vec![0; k.rsa.public_modulus_len()];
            bench(move || {
                k.rsa.sign(&signature::RSA_PKCS1_SHA256, &k.rng, MESSAGE, &mut sig).map_err(lc("sign"))?;
                black_box(&sig);
                Ok(())
            })
        })
        .scaling(),
        op("RSA-2048 verify (CKM_SHA256_RSA_PKCS)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::SHA256_RSA_PKCS)?;
            let (public, private) = key(&keys.rsa, "RSA-2048")?;
            let sig = session.sign(&Mechanism::Sha256RsaPkcs, private, MESSAGE)?;
            bench(move || {
                session.verify(&Mechanism::Sha256RsaPkcs, public, MESSAGE, &sig)?;
                Ok(())
            })
        })
        .direct(|d| {
            let k = d.keys()?;
            bench(move || {
                k.rsa_public.verify_sig(MESSAGE, &k.rsa_signature).map_err(lc("verify"))?;
                Ok(())
            })
        }),
        op("RSA-2048 decrypt (CKM_RSA_PKCS_OAEP, SHA-1)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::RSA_PKCS_OAEP)?;
            let (public, private) = key(&keys.rsa, "RSA-2048")?;
            let oaep = || {
                Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
                    MechanismType::SHA1,
                    PkcsMgfType::MGF1_SHA1,
                    PkcsOaepSource::empty(),
                ))
            };
            let ct = session.encrypt(&oaep(), public, &MESSAGE[..32])?;
            bench(move || {
                let pt = session.decrypt(&oaep(), private, &ct)?;
                if pt.len() != 32 {
                    return Err(format!("OAEP decryption gave {} bytes, expected 32", pt.len()).into());
                }
                black_box(pt);
                Ok(())
            })
        })
        .direct(|d| {
            let k = d.keys()?;
            let mut out = vec![0; k.oaep.min_output_size()];
            bench(move || {
                let pt = k
                    .oaep
                    .decrypt(&rsa::OAEP_SHA1_MGF1SHA1, &k.oaep_ciphertext, &mut out, None)
                    .map_err(lc("decrypt"))?;
                black_box(pt);
                Ok(())
            })
        }),
        // --- EC ---
        op("P-256 sign (CKM_ECDSA, SHA-256 digest)", |m| ecdsa_sign(m, Curve::P256))
            .direct(|d| direct_ecdsa_sign(d, Curve::P256))
            .scaling(),
        op("P-256 verify (CKM_ECDSA)", |m| ecdsa_verify(m, Curve::P256))
            .direct(|d| direct_ecdsa_verify(d, Curve::P256)),
        op("P-384 sign (CKM_ECDSA, SHA-384 digest)", |m| ecdsa_sign(m, Curve::P384))
            .direct(|d| direct_ecdsa_sign(d, Curve::P384)),
        op("P-384 verify (CKM_ECDSA)", |m| ecdsa_verify(m, Curve::P384))
            .direct(|d| direct_ecdsa_verify(d, Curve::P384)),
        op("Ed25519 sign (CKM_EDDSA)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::EDDSA)?;
            let (_, private) = key(&keys.ed25519, "Ed25519")?;
            bench(move || {
                let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                black_box(session.sign(&mech, private, MESSAGE)?);
                Ok(())
            })
        })
        .direct(|d| {
            let k = d.keys()?;
            bench(move || {
                black_box(k.ed25519.sign(MESSAGE));
                Ok(())
            })
        }),
        op("ECDH P-256 derive (CKM_ECDH1_DERIVE, CKD_NULL)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::ECDH1_DERIVE)?;
            let (_, private) = key(&keys.p256, "P-256")?;
            let template = vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen(Ulong::from(32)),
                Attribute::Token(false),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ];
            creates(session, move |s, created| {
                let mech = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), peer_point()));
                created.push(s.derive_key(&mech, private, &template)?);
                Ok(())
            })
        })
        .direct(|d| {
            let k = d.keys()?;
            bench(move || {
                let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer_point());
                agreement::agree(&k.ecdh, peer, "ECDH failed", |z| {
                    black_box(z);
                    Ok(())
                })?;
                Ok(())
            })
        }),
        // --- AES and HMAC ---
        op("AES-256-GCM encrypt, 4 KB (CKM_AES_GCM)", |m| aes_gcm(m, 4096))
            .direct(|d| direct_aes_gcm(d, 4096))
            .scaling(),
        op("AES-256-GCM encrypt, 1 MB (CKM_AES_GCM)", |m| aes_gcm(m, 1 << 20)).direct(|d| direct_aes_gcm(d, 1 << 20)),
        op("AES-256-CBC encrypt, 4 KB (CKM_AES_CBC_PAD)", |m| aes_cbc(m, 4096)).direct(|d| direct_aes_cbc(d, 4096)),
        op("AES-256-CBC encrypt, 1 MB (CKM_AES_CBC_PAD)", |m| aes_cbc(m, 1 << 20))
            .direct(|d| direct_aes_cbc(d, 1 << 20)),
        op("HMAC-SHA-256, 1 KB (CKM_SHA256_HMAC)", |m| hmac_bench(m, |k| &k.hmac)).direct(direct_hmac).scaling(),
        op("HMAC-SHA-256, 1 KB, token key (CKM_SHA256_HMAC)", |m| hmac_bench(m, |k| &k.hmac_token))
            .direct(direct_hmac)
            .scaling(),
        // --- key generation ---
        op("generate RSA-2048 key pair (C_GenerateKeyPair)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::RSA_PKCS_KEY_PAIR_GEN)?;
            let (public, private) = rsa_templates();
            creates(session, move |s, created| {
                let (a, b) = s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)?;
                created.extend([a, b]);
                Ok(())
            })
        })
        .direct(|_| {
            bench(|| {
                black_box(rsa::KeyPair::generate(rsa::KeySize::Rsa2048).map_err(lc("RSA keygen"))?);
                Ok(())
            })
        })
        .slow(4),
        op("generate P-256 key pair (C_GenerateKeyPair)", p256_keygen).direct(|_| {
            bench(|| {
                let k = signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(lc("P-256 keygen"))?;
                black_box(k);
                Ok(())
            })
        }),
        op("generate P-256 key pair, aws-lc-rs with the pairwise test", p256_keygen).direct(|_| {
            bench(|| {
                let k = signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(lc("P-256 keygen"))?;
                let sig = k.sign(&rand::SystemRandom::new(), MESSAGE).map_err(lc("P-256 sign"))?;
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k.public_key().as_ref())
                    .verify(MESSAGE, sig.as_ref())
                    .map_err(lc("P-256 verify"))?;
                black_box(k);
                Ok(())
            })
        }),
        op("generate AES-256 key (C_GenerateKey)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::AES_KEY_GEN)?;
            let template = aes_template();
            creates(session, move |s, created| {
                created.push(s.generate_key(&Mechanism::AesKeyGen, &template)?);
                Ok(())
            })
        })
        .direct(|_| {
            bench(|| {
                let mut k = [0u8; 32];
                rand::fill(&mut k).map_err(lc("random"))?;
                let key = aead::UnboundKey::new(&aead::AES_256_GCM, &k).map_err(lc("AES"))?;
                black_box(aead::LessSafeKey::new(key));
                Ok(())
            })
        }),
        // --- post-quantum signatures (SoftHSMv2 2.6 has neither: n/a there) ---
        op("ML-DSA-65 generate key pair (C_GenerateKeyPair)", ml_dsa_keygen)
            .direct(|_| {
                bench(|| {
                    black_box(
                        signature::PqdsaKeyPair::generate(&signature::ML_DSA_65_SIGNING)
                            .map_err(lc("ML-DSA keygen"))?,
                    );
                    Ok(())
                })
            })
            .openssl(OpenSslRow::KeyPair(PqAlg::MlDsa65)),
        op("ML-DSA-65 generate key pair, aws-lc-rs and OpenSSL with the pairwise test", ml_dsa_keygen)
            .direct(|_| {
                bench(|| {
                    let k = signature::PqdsaKeyPair::generate(&signature::ML_DSA_65_SIGNING)
                        .map_err(lc("ML-DSA keygen"))?;
                    let mut sig = vec![0u8; ML_DSA_65_SIG];
                    k.sign(MESSAGE, &mut sig).map_err(lc("ML-DSA sign"))?;
                    signature::UnparsedPublicKey::new(&signature::ML_DSA_65, k.public_key().as_ref())
                        .verify(MESSAGE, &sig)
                        .map_err(lc("ML-DSA verify"))?;
                    black_box(k);
                    Ok(())
                })
            })
            .openssl(OpenSslRow::KeyPairTested(PqAlg::MlDsa65)),
        op("ML-DSA-65 sign (CKM_ML_DSA, hedged, no context)", |m| ml_dsa_bench(m, false))
            .direct(|_| {
                let k =
                    signature::PqdsaKeyPair::generate(&signature::ML_DSA_65_SIGNING).map_err(lc("ML-DSA keygen"))?;
                let mut sig = vec![0u8; ML_DSA_65_SIG];
                bench(move || {
                    black_box(k.sign(MESSAGE, &mut sig).map_err(lc("ML-DSA sign"))?);
                    Ok(())
                })
            })
            .openssl(OpenSslRow::Sign(PqAlg::MlDsa65)),
        op("ML-DSA-65 verify (CKM_ML_DSA)", |m| ml_dsa_bench(m, true))
            .direct(|_| {
                let k =
                    signature::PqdsaKeyPair::generate(&signature::ML_DSA_65_SIGNING).map_err(lc("ML-DSA keygen"))?;
                let mut sig = vec![0u8; ML_DSA_65_SIG];
                k.sign(MESSAGE, &mut sig).map_err(lc("ML-DSA sign"))?;
                let public = k.public_key().as_ref().to_vec();
                bench(move || {
                    signature::UnparsedPublicKey::new(&signature::ML_DSA_65, &public)
                        .verify(MESSAGE, &sig)
                        .map_err(lc("ML-DSA verify"))?;
                    Ok(())
                })
            })
            .openssl(OpenSslRow::Verify(PqAlg::MlDsa65)),
        op("SLH-DSA-SHA2-128f sign (CKM_SLH_DSA, hedged; floor: RustCrypto slh-dsa)", |m| slh_dsa_bench(m, false))
            .direct(|_| {
                let k = slh_dsa_direct_key()?;
                bench(move || {
                    // Fresh opt_rand for each signature, as the module's hedged signing; M' = 0 ‖ 0 ‖ M.
                    let mut addrnd = [0u8; 16];
                    rand::fill(&mut addrnd).map_err(lc("random"))?;
                    black_box(k.slh_sign_internal(&[&[0, 0], MESSAGE], Some(&addrnd)));
                    Ok(())
                })
            })
            .openssl(OpenSslRow::Sign(PqAlg::SlhDsaSha2_128f)),
        op("SLH-DSA-SHA2-128f verify (CKM_SLH_DSA; floor: RustCrypto slh-dsa)", |m| slh_dsa_bench(m, true))
            .direct(|_| {
                let k = slh_dsa_direct_key()?;
                let sig = k.slh_sign_internal(&[&[0, 0], MESSAGE], None);
                let public: &slh_dsa::VerifyingKey<slh_dsa::Sha2_128f> = k.as_ref();
                let public = public.clone();
                bench(move || {
                    public.slh_verify_internal(&[&[0, 0], MESSAGE], &sig).map_err(|e| format!("{e:?}"))?;
                    Ok(())
                })
            })
            .openssl(OpenSslRow::Verify(PqAlg::SlhDsaSha2_128f)),
        // --- ML-KEM-768 (FIPS 203) ---
        op("generate ML-KEM-768 key pair (C_GenerateKeyPair)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::ML_KEM_KEY_PAIR_GEN)?;
            let (public, private) = ml_kem_templates();
            creates(session, move |s, created| {
                let (a, b) = s.generate_key_pair(&Mechanism::MlKemKeyPairGen, &public, &private)?;
                created.extend([a, b]);
                Ok(())
            })
        })
        .direct(|_| {
            bench(|| {
                let k = kem::DecapsulationKey::generate(&kem::ML_KEM_768).map_err(lc("ML-KEM keygen"))?;
                black_box(k.encapsulation_key().map_err(lc("ML-KEM ek"))?);
                Ok(())
            })
        })
        .openssl(OpenSslRow::KeyPair(PqAlg::MlKem768)),
        op("generate ML-KEM-768 key pair, aws-lc-rs and OpenSSL with the pairwise test", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::ML_KEM_KEY_PAIR_GEN)?;
            let (public, private) = ml_kem_templates();
            creates(session, move |s, created| {
                let (a, b) = s.generate_key_pair(&Mechanism::MlKemKeyPairGen, &public, &private)?;
                created.extend([a, b]);
                Ok(())
            })
        })
        .direct(|_| {
            bench(|| {
                let k = kem::DecapsulationKey::generate(&kem::ML_KEM_768).map_err(lc("ML-KEM keygen"))?;
                let (ct, k1) = k.encapsulation_key().and_then(|ek| ek.encapsulate()).map_err(lc("ML-KEM encaps"))?;
                let k2 = k.decapsulate(ct).map_err(lc("ML-KEM decaps"))?;
                if k1.as_ref() != k2.as_ref() {
                    return Err("ML-KEM pairwise test".into());
                }
                black_box(k);
                Ok(())
            })
        })
        .openssl(OpenSslRow::KeyPairTested(PqAlg::MlKem768)),
        op("ML-KEM-768 encapsulate (C_EncapsulateKey)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::ML_KEM)?;
            let (public, private) = ml_kem_templates();
            let (ek, _) = session.generate_key_pair(&Mechanism::MlKemKeyPairGen, &public, &private)?;
            let template = kem_secret_template();
            creates(session, move |s, created| {
                let (ct, k) = s.encapsulate_key(&Mechanism::MlKem, ek, &template)?;
                black_box(ct);
                created.push(k);
                Ok(())
            })
        })
        .direct(|_| {
            let dk = kem::DecapsulationKey::generate(&kem::ML_KEM_768).map_err(lc("ML-KEM keygen"))?;
            let ek = dk.encapsulation_key().map_err(lc("ML-KEM ek"))?;
            bench(move || {
                black_box(ek.encapsulate().map_err(lc("ML-KEM encapsulate"))?);
                Ok(())
            })
        })
        .openssl(OpenSslRow::Encapsulate),
        op("ML-KEM-768 decapsulate (C_DecapsulateKey)", |m| {
            let (session, keys) = row_session(m)?;
            keys.require(MechanismType::ML_KEM)?;
            let (public, private) = ml_kem_templates();
            let (ek, dk) = session.generate_key_pair(&Mechanism::MlKemKeyPairGen, &public, &private)?;
            let template = kem_secret_template();
            let (ct, k) = session.encapsulate_key(&Mechanism::MlKem, ek, &template)?;
            session.destroy_object(k)?;
            creates(session, move |s, created| {
                created.push(s.decapsulate_key(&Mechanism::MlKem, dk, &template, &ct)?);
                Ok(())
            })
        })
        .direct(|_| {
            let dk = kem::DecapsulationKey::generate(&kem::ML_KEM_768).map_err(lc("ML-KEM keygen"))?;
            let (ct, _) = dk.encapsulation_key().and_then(|ek| ek.encapsulate()).map_err(lc("ML-KEM encapsulate"))?;
            let ct = ct.as_ref().to_vec();
            bench(move || {
                black_box(dk.decapsulate(kem::Ciphertext::from(&ct[..])).map_err(lc("ML-KEM decapsulate"))?);
                Ok(())
            })
        })
        .openssl(OpenSslRow::Decapsulate),
        // --- objects (last: the find row leaves its objects on the token) ---
        op("create token data object (C_CreateObject)", |m| {
            let template = data_object_template("bench-create");
            creates(m.user_session(true)?, move |s, created| {
                created.push(s.create_object(&template)?);
                Ok(())
            })
        }),
        op(format!("find 1 of {} token objects (C_FindObjects*)", thousands(objects as f64)), move |m| {
            find_bench(m, objects)
        }),
    ]
}

/// An ML-KEM-768 pair of session objects, the private key sensitive.
fn ml_kem_templates() -> (Vec<Attribute>, Vec<Attribute>) {
    let set = cryptoki::object::MlKemParameterSetType::ML_KEM_768;
    let public = vec![Attribute::Token(false), Attribute::Encapsulate(true), Attribute::ParameterSet(set.into())];
    let private = vec![
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Decapsulate(true),
    ];
    (public, private)
}

/// The 32-byte generic secret a KEM row makes of the shared secret.
fn kem_secret_template() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(true),
        Attribute::Derive(true),
    ]
}

/// C_GenerateKeyPair of a P-256 session key pair (destroyed untimed).
fn p256_keygen(m: &Module) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::ECC_KEY_PAIR_GEN)?;
    let (public, private) = ec_templates(OID_P256);
    creates(session, move |s, created| {
        let (a, b) = s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)?;
        created.extend([a, b]);
        Ok(())
    })
}

/// HMAC-SHA-256 over 1 KB with the key `pick` chooses (session or token object).
fn hmac_bench(m: &Module, pick: fn(&Keys) -> &Result<ObjectHandle, Missing>) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::SHA256_HMAC)?;
    let k = key(pick(keys), "generic secret")?;
    let input = data(1024);
    bench(move || {
        black_box(session.sign(&Mechanism::Sha256Hmac, k, &input)?);
        Ok(())
    })
}

fn direct_hmac(d: &Direct) -> Res<Box<dyn Bench>> {
    let k = d.keys()?;
    let input = data(1024);
    bench(move || {
        black_box(hmac::sign(&k.hmac, &input));
        Ok(())
    })
}

fn digest_bench(m: &Module, len: usize) -> Res<Box<dyn Bench>> {
    let session = m.pkcs11.open_ro_session(m.slot()?)?;
    let data = data(len);
    bench(move || {
        black_box(session.digest(&Mechanism::Sha256, &data)?);
        Ok(())
    })
}

fn direct_digest(len: usize) -> Res<Box<dyn Bench>> {
    let data = data(len);
    bench(move || {
        black_box(digest::digest(&digest::SHA256, &data));
        Ok(())
    })
}

#[derive(Clone, Copy)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    /// The digest `CKM_ECDSA` signs: SHA-256 / SHA-384 of [`MESSAGE`].
    fn digest(self) -> Vec<u8> {
        let alg = match self {
            Curve::P256 => &digest::SHA256,
            Curve::P384 => &digest::SHA384,
        };
        digest::digest(alg, MESSAGE).as_ref().to_vec()
    }

    fn keys(self, keys: &Keys) -> Res<KeyPairHandles> {
        match self {
            Curve::P256 => key(&keys.p256, self.name()),
            Curve::P384 => key(&keys.p384, self.name()),
        }
    }

    fn direct(self, k: &DirectKeys) -> (&signature::EcdsaKeyPair, &signature::ParsedPublicKey, &[u8]) {
        match self {
            Curve::P256 => (&k.p256, &k.p256_public, &k.p256_signature),
            Curve::P384 => (&k.p384, &k.p384_public, &k.p384_signature),
        }
    }
}

fn ecdsa_sign(m: &Module, curve: Curve) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::ECDSA)?;
    let (_, private) = curve.keys(keys)?;
    let digest = curve.digest();
    bench(move || {
        black_box(session.sign(&Mechanism::Ecdsa, private, &digest)?);
        Ok(())
    })
}

fn ecdsa_verify(m: &Module, curve: Curve) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::ECDSA)?;
    let (public, private) = curve.keys(keys)?;
    let digest = curve.digest();
    let sig = session.sign(&Mechanism::Ecdsa, private, &digest)?;
    bench(move || {
        session.verify(&Mechanism::Ecdsa, public, &digest, &sig)?;
        Ok(())
    })
}

fn direct_ecdsa_sign(d: &Direct, curve: Curve) -> Res<Box<dyn Bench>> {
    let k = d.keys()?;
    bench(move || {
        let (key, _, _) = curve.direct(&k);
        black_box(key.sign(&k.rng, MESSAGE).map_err(lc("ECDSA sign"))?);
        Ok(())
    })
}

fn direct_ecdsa_verify(d: &Direct, curve: Curve) -> Res<Box<dyn Bench>> {
    let k = d.keys()?;
    bench(move || {
        let (_, public, sig) = curve.direct(&k);
        public.verify_sig(MESSAGE, sig).map_err(lc("ECDSA verify"))?;
        Ok(())
    })
}

fn aes_gcm(m: &Module, len: usize) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::AES_GCM)?;
    let k = key(&keys.aes, "AES-256")?;
    let input = data(len);
    let mut counter = 0u64;
    bench(move || {
        let mut iv = next_iv::<12>(&mut counter);
        let mech = Mechanism::AesGcm(GcmParams::new(&mut iv, &[], Ulong::from(128))?);
        let out = session.encrypt(&mech, k, &input)?;
        if out.len() != input.len() + 16 {
            return Err(format!("AES-GCM gave {} bytes for {}", out.len(), input.len()).into());
        }
        black_box(out);
        Ok(())
    })
}

fn direct_aes_gcm(d: &Direct, len: usize) -> Res<Box<dyn Bench>> {
    let k = d.keys()?;
    let input = data(len);
    let mut counter = 0u64;
    bench(move || {
        let nonce = aead::Nonce::assume_unique_for_key(next_iv::<12>(&mut counter));
        let mut buf = Vec::with_capacity(input.len() + 16);
        buf.extend_from_slice(&input);
        k.aes_gcm.seal_in_place_append_tag(nonce, aead::Aad::empty(), &mut buf).map_err(lc("AES-GCM"))?;
        black_box(buf);
        Ok(())
    })
}

fn aes_cbc(m: &Module, len: usize) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::AES_CBC_PAD)?;
    let k = key(&keys.aes, "AES-256")?;
    let input = data(len);
    let mut counter = 0u64;
    bench(move || {
        let mech = Mechanism::AesCbcPad(next_iv::<16>(&mut counter));
        let out = session.encrypt(&mech, k, &input)?;
        if out.len() != input.len() + 16 {
            return Err(format!("AES-CBC-PAD gave {} bytes for {}", out.len(), input.len()).into());
        }
        black_box(out);
        Ok(())
    })
}

fn direct_aes_cbc(d: &Direct, len: usize) -> Res<Box<dyn Bench>> {
    let k = d.keys()?;
    let input = data(len);
    let mut counter = 0u64;
    bench(move || {
        let iv = cipher::EncryptionContext::Iv128(next_iv::<16>(&mut counter).into());
        let mut buf = Vec::with_capacity(input.len() + 16);
        buf.extend_from_slice(&input);
        k.aes_cbc.less_safe_encrypt(&mut buf, iv).map_err(lc("AES-CBC"))?;
        black_box(buf);
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
/// Clean-ups of piled-up objects are not counted.
/// This thread's time on a CPU so far (user and system; `/proc/thread-self/schedstat`, Linux),
/// without the time it waited for one: on a loaded machine the wall clock counts other programs'
/// turns too, most of all after system calls (where the scheduler may switch).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(s.split_whitespace().next()?.parse().ok()?))
}

thread_local! {
    /// The iterations per second of CPU time of this thread's last [`time_slice`].
    static LAST_CPU_RATE: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
}

/// The CPU-time rates of each (operation, column), round by round (for `--audit`'s table).
static CPU_RATES: std::sync::Mutex<Vec<(String, usize, f64)>> = std::sync::Mutex::new(Vec::new());

/// Whether rounds are timed in this thread's CPU time (`--cpu-time`) rather than wall time.
static CPU_TIME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The clock rounds are timed with: wall time, or with `--cpu-time` the CPU time of the calling
/// thread (`CLOCK_THREAD_CPUTIME_ID`), which time the thread spends preempted by other processes
/// does not count (on a shared machine a wall-time round measures the neighbours as much as the
/// operation).
fn clock() -> Duration {
    if CPU_TIME.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(t) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) {
            return Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32);
        }
    }
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

fn time_slice(b: &mut dyn Bench, slice: Duration) -> Res<f64> {
    let cpu_start = thread_cpu();
    let start = clock();
    let mut excluded = Duration::ZERO;
    let mut n = 0u64;
    let mut batch = 1u64;
    let mut last = Duration::ZERO;
    let elapsed = loop {
        for _ in 0..batch {
            b.run()?;
        }
        n += batch;
        if b.pending() >= CLEANUP_EVERY {
            let t = clock();
            b.clean_up()?;
            excluded += clock().saturating_sub(t);
        }
        let e = clock().saturating_sub(start).saturating_sub(excluded);
        if e >= slice {
            break e;
        }
        if e.saturating_sub(last) < Duration::from_micros(50) {
            batch *= 2;
        }
        last = e;
    };
    // The clean-up's CPU time is counted here (it was excluded from the wall clock): the
    // objects it destroys are few, and the columns compared clean up the same.
    let cpu = cpu_start.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a)).filter(|d| !d.is_zero());
    LAST_CPU_RATE.set(cpu.map(|d| n as f64 / d.as_secs_f64()));
    b.clean_up()?;
    Ok(n as f64 / elapsed.as_secs_f64())
}

#[derive(Clone)]
enum Outcome {
    /// `n/a`, with the reason when there is one worth a note.
    NotRun(Option<String>),
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
            Outcome::NotRun(_) => "n/a".into(),
            Outcome::Failed(_) => "error".into(),
            Outcome::Rates(_) => thousands(self.median().unwrap_or(0.0)),
        }
    }

    fn summary(&self) -> String {
        match self {
            Outcome::NotRun(None) => "n/a".into(),
            Outcome::NotRun(Some(why)) => format!("n/a: {why}"),
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

fn setup_failed(e: Box<dyn Error>) -> Outcome {
    match e.downcast::<NotSupported>() {
        Ok(ns) => Outcome::NotRun(Some(ns.0)),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Rounds and slice of one operation.
fn plan(op: &Op, cfg: &Config) -> (usize, Duration) {
    if op.slice_factor > 1 {
        (cfg.rounds.min(3), cfg.slice * op.slice_factor)
    } else {
        (cfg.rounds, cfg.slice)
    }
}

/// Runs one operation on all columns, interleaved: round r visits the columns
/// in an order rotated by r (A/B/C, B/C/A, C/A/B, ...).
fn run_op(op: &Op, columns: &[Column], cfg: &Config) -> Vec<Outcome> {
    eprintln!("{}", op.name);
    let (rounds, slice) = plan(op, cfg);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut benches: Vec<Option<Box<dyn Bench>>> = Vec::new();
    for col in columns {
        let prepared = match &col.backend {
            Backend::Unavailable => Ok(None),
            Backend::Pkcs11(m) => (op.pkcs11)(m).map(Some),
            Backend::Direct(d) => match &op.direct {
                Some(setup) => setup(d).map(Some),
                None => Ok(None),
            },
            Backend::OpenSsl => op.openssl.map(openssl_setup).transpose(),
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
                outcomes.push(Outcome::NotRun(None));
                benches.push(None);
            }
            Err(e) => {
                let o = setup_failed(e);
                if let Outcome::Failed(e) = &o {
                    eprintln!("  {}: setup/warm-up failed: {e}", col.name);
                }
                outcomes.push(o);
                benches.push(None);
            }
        }
    }
    let k = columns.len();
    for round in 0..rounds {
        for j in 0..k {
            let c = (round + j) % k;
            let Some(b) = benches[c].as_mut() else {
                continue;
            };
            match time_slice(b.as_mut(), slice) {
                Ok(rate) => {
                    if let Outcome::Rates(r) = &mut outcomes[c] {
                        r.push(rate);
                    }
                    if let Some(cpu) = LAST_CPU_RATE.get() {
                        CPU_RATES.lock().unwrap_or_else(|p| p.into_inner()).push((op.name.clone(), c, cpu));
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

/// One thread against two, on one operation: for each column (Tessera, then
/// the aws-lc-rs control) two benches, each with its own session. Rounds of one
/// thread alternate with rounds of two (started together), and the columns
/// take turns; returns per column the outcomes of one thread and of two (total
/// rate).
fn run_scaling(op: &Op, columns: &[&Column], cfg: &Config) -> Vec<(Outcome, Outcome)> {
    eprintln!("{} (1 vs 2 threads)", op.name);
    let prepare = |col: &Column| -> Res<Option<Box<dyn Bench>>> {
        let b = match (&col.backend, &op.direct) {
            (Backend::Pkcs11(m), _) => (op.pkcs11)(m)?,
            (Backend::Direct(d), Some(setup)) => setup(d)?,
            _ => return Ok(None),
        };
        let mut b = b;
        time_slice(b.as_mut(), cfg.warmup)?;
        Ok(Some(b))
    };
    let mut pairs = Vec::new();
    let mut outcomes = Vec::new();
    for col in columns {
        match prepare(col).and_then(|a| Ok(a.zip(prepare(col)?))) {
            Ok(Some(ab)) => {
                pairs.push(Some(ab));
                outcomes.push((Outcome::Rates(Vec::new()), Outcome::Rates(Vec::new())));
            }
            Ok(None) => {
                pairs.push(None);
                outcomes.push((Outcome::NotRun(None), Outcome::NotRun(None)));
            }
            Err(e) => {
                let o = setup_failed(e);
                eprintln!("  {}: {}", col.name, o.summary());
                pairs.push(None);
                outcomes.push((o.clone(), o));
            }
        }
    }
    let k = columns.len();
    for round in 0..cfg.rounds {
        for j in 0..k {
            let c = (round + j) % k;
            let Some((a, b)) = pairs[c].as_mut() else {
                continue;
            };
            let order = if round % 2 == 0 { [1, 2] } else { [2, 1] };
            for threads in order {
                let r = if threads == 1 {
                    time_slice(a.as_mut(), cfg.slice).map_err(|e| e.to_string())
                } else {
                    two_threads(a.as_mut(), b.as_mut(), cfg.slice)
                };
                let (one, two) = &mut outcomes[c];
                match (r, if threads == 1 { one } else { two }) {
                    (Ok(rate), Outcome::Rates(v)) => v.push(rate),
                    (Ok(_), _) => {}
                    (Err(e), _) => {
                        eprintln!("  {}: {threads} thread(s), round {round} failed: {e}", columns[c].name);
                        outcomes[c] = (Outcome::Failed(e.clone()), Outcome::Failed(e));
                        pairs[c] = None;
                        break;
                    }
                }
            }
        }
    }
    drop(pairs);
    for (col, (one, two)) in columns.iter().zip(&outcomes) {
        eprintln!("  {:<10} 1 thread   {}", col.name, one.summary());
        eprintln!("  {:<10} 2 threads  {}", col.name, two.summary());
    }
    outcomes
}

/// Runs `a` and `b` on two threads started together; returns their total rate.
fn two_threads(a: &mut dyn Bench, b: &mut dyn Bench, slice: Duration) -> Result<f64, String> {
    let barrier = Barrier::new(2);
    let barrier = &barrier;
    std::thread::scope(|s| {
        let ha = s.spawn(move || {
            barrier.wait();
            time_slice(a, slice).map_err(|e| e.to_string())
        });
        let hb = s.spawn(move || {
            barrier.wait();
            time_slice(b, slice).map_err(|e| e.to_string())
        });
        let ra = ha.join().map_err(|_| "thread panicked".to_string())??;
        let rb = hb.join().map_err(|_| "thread panicked".to_string())??;
        Ok(ra + rb)
    })
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

fn ratio(a: &Outcome, b: &Outcome) -> String {
    match (a.median(), b.median()) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
        _ => "n/a".into(),
    }
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

/// Results of the thread-scaling table: per operation, per column (Tessera,
/// aws-lc-rs) the outcomes of 1 thread and of 2.
type Scaling = Vec<(String, Vec<(Outcome, Outcome)>)>;

fn print_report(
    cfg: &Config,
    columns: &[Column],
    notes: &[String],
    results: &[(String, Vec<Outcome>)],
    scaling: &Scaling,
) {
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
        let _ = writeln!(out, "- {}: {} ({})", col.name, col.path, col.detail);
    }
    for n in notes {
        let _ = writeln!(out, "- {n}");
    }
    let _ = writeln!(
        out,
        "- median of {} interleaved rounds of {} ms per column and operation (RSA key generation: {} of {} ms)",
        cfg.rounds,
        cfg.slice.as_millis(),
        cfg.rounds.min(3),
        cfg.slice.as_millis() * 4
    );
    let _ = writeln!(out);
    // One column per backend, then the ratios of the first to each other one
    // (Tessera/SoftHSMv2, Tessera/aws-lc-rs).
    let mut header = String::from("| operation |");
    let mut rule = String::from("|---|");
    for col in columns {
        let _ = write!(header, " {} ops/s |", col.name);
        rule.push_str("---:|");
    }
    for col in &columns[1..] {
        let _ = write!(header, " {}/{} |", columns[0].name, col.name);
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let mut notes = Vec::new();
    for (name, outcomes) in results {
        let mut row = format!("| {name} |");
        for (col, o) in columns.iter().zip(outcomes) {
            let _ = write!(row, " {} |", o.cell());
            match o {
                Outcome::NotRun(Some(why)) => notes.push(format!("{} on {name}: n/a ({why})", col.name)),
                Outcome::Failed(e) => notes.push(format!("{} on {name}: error ({e})", col.name)),
                _ => {}
            }
        }
        for o in &outcomes[1..] {
            let _ = write!(row, " {} |", ratio(&outcomes[0], o));
        }
        let _ = writeln!(out, "{row}");
    }
    if !notes.is_empty() {
        let _ = writeln!(out);
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    if !scaling.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "2 threads (each with its own session) against 1, median of {} alternating rounds of {} ms; \
             target for Tessera ≥ 1.80x; aws-lc-rs called directly by the same threads is the control \
             (what this machine gives){}:",
            cfg.rounds,
            cfg.slice.as_millis(),
            if nproc < 2 { " (this machine has one CPU: not meaningful)" } else { "" }
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| operation | Tessera 1 thread ops/s | Tessera 2 threads ops/s | Tessera 2/1 | aws-lc-rs 2/1 (control) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for (name, cols) in scaling {
            let (one, two) = &cols[0];
            let control = cols.get(1).map(|(one, two)| ratio(two, one)).unwrap_or_else(|| "n/a".into());
            let _ = writeln!(out, "| {name} | {} | {} | {} | {control} |", one.cell(), two.cell(), ratio(two, one));
        }
    }
    if cfg.audit {
        audit_cost(&mut out, cfg, columns, results);
    }
    print!("{out}");
}

/// With `--audit`: what the log costs each call, from the rounds of the two Tessera columns paired
/// as they ran (round i of one beside round i of the other, adjacent in time): the median over
/// rounds of the time added per iteration (one audited record each: a single-part call after the
/// length query, which writes none) and of the slowdown.
fn audit_cost(out: &mut String, cfg: &Config, columns: &[Column], results: &[(String, Vec<Outcome>)]) {
    let median = |mut v: Vec<f64>| -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let mid = v.len() / 2;
        Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
    };
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Audit log cost per call ({} against {}, audit.sync default), median over {} rounds paired as they ran; \
         targets: P-256 and RSA-2048 signatures at most 5% slower, AES-GCM 4 KB and HMAC 1 KB at most 1 µs:",
        columns[1].name, columns[0].name, cfg.rounds
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| operation | µs/call off | µs/call on | added µs/call | slower | CPU µs/call off | CPU µs/call on | added CPU µs/call | slower (CPU) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cpu = CPU_RATES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Median time per call of each column, and of the added time and the slowdown over pairs.
    let figures = |off: &[f64], on: &[f64]| -> Option<[f64; 4]> {
        let pairs: Vec<(f64, f64)> =
            off.iter().zip(on).filter(|(a, b)| **a > 0.0 && **b > 0.0).map(|(a, b)| (*a, *b)).collect();
        Some([
            median(off.iter().map(|r| 1e6 / r).collect())?,
            median(on.iter().map(|r| 1e6 / r).collect())?,
            median(pairs.iter().map(|(a, b)| 1e6 / b - 1e6 / a).collect())?,
            median(pairs.iter().map(|(a, b)| a / b - 1.0).collect())? * 100.0,
        ])
    };
    for (name, outcomes) in results {
        let (Outcome::Rates(off), Outcome::Rates(on)) = (&outcomes[0], &outcomes[1]) else { continue };
        let Some([a, b, c, d]) = figures(off, on) else { continue };
        let of =
            |col: usize| -> Vec<f64> { cpu.iter().filter(|(n, c, _)| n == name && *c == col).map(|x| x.2).collect() };
        let cpu_cells = match figures(&of(0), &of(1)) {
            Some([e, f, g, h]) => format!("{e:.2} | {f:.2} | {g:.2} | {h:.1}%"),
            None => "n/a | n/a | n/a | n/a".into(),
        };
        let _ = writeln!(out, "| {name} | {a:.2} | {b:.2} | {c:.2} | {d:.1}% | {cpu_cells} |");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "(Wall clock, and this thread's time on a CPU (`/proc/thread-self/schedstat`): on a loaded machine the \
         wall clock also counts other programs' turns, which come most often after system calls.)"
    );
}
#[path = "bench_processes.rs"]
mod processes;

fn main() {
    // A child of the short-lived-process table: `--child-initialize PATH N`.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child-initialize") {
        let repeats = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(0);
        if let Err(e) = processes::child_initialize(args.get(2).map_or("", String::as_str), repeats) {
            eprintln!("tessera-bench --child-initialize: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = real_main() {
        eprintln!("tessera-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let cfg = Config::from_args()?;
    let selected: Vec<Op> = ops(&cfg)
        .into_iter()
        .filter(|op| {
            cfg.filter.as_ref().is_none_or(|f| f.split('|').any(|f| op.name.to_lowercase().contains(f.trim())))
        })
        .collect();
    // The short-lived-process table runs unless --processes 0, or a --filter that names neither
    // it ("process") nor C_Initialize.
    let processes =
        cfg.processes > 0 && cfg.filter.as_ref().is_none_or(|f| "processes c_initialize".contains(f.as_str()));
    if processes && cfg.baseline.is_none() && !cfg.audit {
        eprintln!("short-lived processes: {} per module and row", cfg.processes);
        let rows = processes::measure(&cfg.tessera, &cfg.softhsm, cfg.processes);
        println!("{}", processes::report(&rows, cfg.processes));
    }
    if selected.is_empty() {
        if processes {
            return Ok(());
        }
        return Err("--filter matched no operation".into());
    }

    // Both configuration files exist and both variables are set before either
    // module is loaded.
    // With --baseline, an earlier Tessera build takes SoftHSMv2's column, with a store of its own
    // (each Tessera column points TESSERA_CONF at its own configuration when it initialises).
    let tessera_dir = prepare_token_dir("TESSERA_CONF", "");
    let second = match &cfg.baseline {
        Some(path) => ("Baseline", path.clone(), prepare_token_dir("TESSERA_CONF", ""), true),
        None if cfg.audit => {
            let dir = prepare_token_dir("TESSERA_CONF", "");
            let copy = dir.as_ref().map_err(|e| e.to_string()).and_then(|d| audited_copy(&cfg.tessera, d.path()));
            match copy {
                Ok(path) => ("Tessera+audit", path, dir, true),
                Err(e) => return Err(format!("--audit: {e}").into()),
            }
        }
        None => {
            let dir = prepare_token_dir("SOFTHSM2_CONF", "objectstore.backend = file\nlog.level = ERROR\n");
            ("SoftHSMv2", cfg.softhsm.clone(), dir, false)
        }
    };

    // Column order matches the table: Tessera, SoftHSMv2 (or the baseline), aws-lc-rs, and with
    // --openssl OpenSSL.
    #[allow(unused_mut)]
    let mut columns = vec![
        open_column("Tessera", &cfg.tessera, tessera_dir, true),
        open_column(second.0, &second.1, second.2, second.3),
        direct_column(),
    ];
    if columns[..2].iter().all(|c| matches!(c.backend, Backend::Unavailable)) {
        return Err("neither module could be loaded".into());
    }
    #[allow(unused_mut)]
    let mut notes = Vec::new();
    #[cfg(feature = "openssl-bench")]
    if cfg.openssl {
        let column = openssl_column();
        eprintln!("OpenSSL column: {}", column.path);
        // What is timed must be the same cryptography: Tessera and OpenSSL check each other's work
        // first, and a disagreement stops the run.
        match &columns[0].backend {
            Backend::Pkcs11(m) => {
                let lines = openssl_column::interop(m).map_err(|e| format!("Tessera and OpenSSL disagree: {e}"))?;
                for l in lines {
                    eprintln!("  interop: {l}");
                    notes.push(format!("Tessera and OpenSSL interoperate: {l}"));
                }
            }
            _ => notes.push("Tessera and OpenSSL: no interoperation check (no Tessera column)".into()),
        }
        columns.push(column);
    }

    let started = Instant::now();
    let mut results = Vec::new();
    for op in &selected {
        let outcomes = run_op(op, &columns, &cfg);
        results.push((op.name.clone(), outcomes));
    }
    // Thread scaling: Tessera, with aws-lc-rs as the control (not SoftHSMv2).
    let mut scaling = Vec::new();
    if cfg.threads && matches!(columns[0].backend, Backend::Pkcs11(_)) {
        let scaled = [&columns[0], &columns[2]];
        for op in selected.iter().filter(|op| op.scaling) {
            scaling.push((op.name.clone(), run_scaling(op, &scaled, &cfg)));
        }
    }
    eprintln!("done in {:.1} s\n", started.elapsed().as_secs_f64());

    print_report(&cfg, &columns, &notes, &results, &scaling);

    for col in columns {
        if let Backend::Pkcs11(m) = col.backend {
            let Module { keys, pkcs11, .. } = *m;
            drop(keys);
            if let Err(e) = pkcs11.finalize() {
                eprintln!("{}: C_Finalize failed: {e}", col.name);
            }
        }
    }
    Ok(())
}

/// Bytes of an ML-DSA-65 signature.
const ML_DSA_65_SIG: usize = 3309;

/// C_GenerateKeyPair of an ML-DSA-65 session key pair (destroyed untimed). Tessera tests every
/// pair it generates (a signature and its verification).
fn ml_dsa_keygen(m: &Module) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::ML_DSA_KEY_PAIR_GEN)?;
    let (public, private) = pq_templates(MlDsaParameterSetType::ML_DSA_65.into());
    creates(session, move |s, created| {
        let (a, b) = s.generate_key_pair(&Mechanism::MlDsaKeyPairGen, &public, &private)?;
        created.extend([a, b]);
        Ok(())
    })
}

fn pq_templates(set: ParameterSetType) -> (Vec<Attribute>, Vec<Attribute>) {
    let public = vec![Attribute::Token(false), Attribute::Verify(true), Attribute::ParameterSet(set)];
    let private =
        vec![Attribute::Token(false), Attribute::Private(true), Attribute::Sensitive(true), Attribute::Sign(true)];
    (public, private)
}

/// ML-DSA-65, pure, hedged, empty context (`CKM_ML_DSA` without a parameter): signing, or the
/// verification of one signature. The key pair is the row's own (made untimed).
fn ml_dsa_bench(m: &Module, verify: bool) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::ML_DSA)?;
    let (public, private) = pq_templates(MlDsaParameterSetType::ML_DSA_65.into());
    let (public, private) = session.generate_key_pair(&Mechanism::MlDsaKeyPairGen, &public, &private)?;
    let mech = || Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let sig = session.sign(&mech(), private, MESSAGE)?;
    bench(move || {
        // The mechanism (its parameter is a raw pointer, not Send) is made in the timed loop: a
        // value on the stack, as an application holds it.
        let mech = mech();
        if verify {
            session.verify(&mech, public, MESSAGE, &sig)?;
        } else {
            black_box(session.sign(&mech, private, MESSAGE)?);
        }
        Ok(())
    })
}

/// SLH-DSA-SHA2-128f, pure, hedged, empty context (`CKM_SLH_DSA` without a parameter).
fn slh_dsa_bench(m: &Module, verify: bool) -> Res<Box<dyn Bench>> {
    let (session, keys) = row_session(m)?;
    keys.require(MechanismType::SLH_DSA)?;
    let (public, private) = pq_templates(SlhDsaParameterSetType::SHA2_128F.into());
    let (public, private) = session.generate_key_pair(&Mechanism::SlhDsaKeyPairGen, &public, &private)?;
    let mech = || Mechanism::SlhDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let sig = session.sign(&mech(), private, MESSAGE)?;
    bench(move || {
        // The mechanism (its parameter is a raw pointer, not Send) is made in the timed loop: a
        // value on the stack, as an application holds it.
        let mech = mech();
        if verify {
            session.verify(&mech, public, MESSAGE, &sig)?;
        } else {
            black_box(session.sign(&mech, private, MESSAGE)?);
        }
        Ok(())
    })
}

/// RustCrypto's SLH-DSA-SHA2-128f key from random seeds (the library Tessera's SLH-DSA uses).
fn slh_dsa_direct_key() -> Res<slh_dsa::SigningKey<slh_dsa::Sha2_128f>> {
    let mut seeds = [0u8; 48];
    rand::fill(&mut seeds).map_err(lc("random"))?;
    Ok(slh_dsa::SigningKey::slh_keygen_internal(&seeds[..16], &seeds[16..32], &seeds[32..]))
}
