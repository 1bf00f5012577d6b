//! `tessera-audit`: creates a log's chain, verifies logs, appends and proves checkpoints.
//!
//! ```text
//! tessera-audit init DIR [--seed-out FILE] [--pubkey-out FILE]
//! tessera-audit verify DIR|FILE [--seed FILE] [--pubkey FILE] [--trusted-checkpoint FILE] [--json] [--threads N]
//! tessera-audit checkpoint DIR [--out FILE]
//! tessera-audit export-key DIR
//! tessera-audit prove DIR|FILE --seq N | --consistency-from FILE --pubkey FILE
//! tessera-audit verify-proof FILE --pubkey FILE
//! ```
//!
//! `verify` exits 0 when the log is intact (a torn last line, a write cut short, is reported and
//! is not a failure), 1 when it could not run (a file unreadable, a bad seed), and 10 + the class
//! of the first failure otherwise (see `tessera_audit::verify::Class::exit_code`);
//! `verify-proof` exits 0 when the proof holds, 1 when it could not run, and the exit status of
//! the class (bad checkpoint signature, Merkle mismatch) otherwise.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera_audit::checkpoint::{PublicKeys, PUB};
use tessera_audit::proof::{self, ProofError, Shown};
use tessera_audit::verify::{self, Class, End, Summary};
use tessera_audit::writer::{LOG, STATE};

#[derive(Parser)]
#[command(name = "tessera-audit", version, about = "Tessera's audit log: create a chain, verify a log, prove records")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates the chain in DIR (made with mode 0700 if missing), writes the verification seed,
    /// mode 0600, for the auditor to move off the host, and makes the checkpoint signing keys
    /// (DIR/audit.sign, mode 0600; the public keys in DIR/audit.pub).
    Init {
        dir: PathBuf,
        /// Where the seed goes (default DIR/audit.seed); the file must not exist.
        #[arg(long)]
        seed_out: Option<PathBuf>,
        /// A copy of the public keys for the auditor (they are also in DIR/audit.pub).
        #[arg(long)]
        pubkey_out: Option<PathBuf>,
    },
    /// Verifies a log directory (anchored by its state file) or a log file: with the seed (every
    /// record's MAC), with the public keys (structure, sequence, the Merkle tree and the
    /// signatures of every checkpoint), or both.
    Verify {
        path: PathBuf,
        /// The verification seed `init` wrote.
        #[arg(long)]
        seed: Option<PathBuf>,
        /// The log's public keys (`export-key`).
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// A checkpoint kept from an earlier look at the log: the log must extend it (needs
        /// --pubkey).
        #[arg(long, requires = "pubkey")]
        trusted_checkpoint: Option<PathBuf>,
        /// The summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// Threads (1 or 2).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Appends a signed checkpoint to the log in DIR now and prints its note (keep a copy: it is
    /// a trusted checkpoint for `verify --trusted-checkpoint`).
    Checkpoint {
        dir: PathBuf,
        /// Also write the note to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Prints the public keys of the log in DIR.
    ExportKey { dir: PathBuf },
    /// Prints a proof: that record SEQ is in the log under the first signed checkpoint after it,
    /// or (--consistency-from) that the log's last checkpoint extends an older one.
    Prove {
        path: PathBuf,
        #[arg(long, conflicts_with = "consistency_from", required_unless_present = "consistency_from")]
        seq: Option<u64>,
        /// An older checkpoint's note (needs --pubkey).
        #[arg(long, requires = "pubkey")]
        consistency_from: Option<PathBuf>,
        #[arg(long)]
        pubkey: Option<PathBuf>,
    },
    /// Checks a proof `prove` printed, with only the public keys.
    VerifyProof {
        proof: PathBuf,
        #[arg(long)]
        pubkey: PathBuf,
    },
}

fn time(us: Option<u64>) -> String {
    us.map(|us| {
        humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us)).to_string()
    })
    .unwrap_or_else(|| "-".into())
}

fn print(s: &Summary, keyed: bool, public: bool) {
    let range = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => "-".into(),
    };
    println!("log: {}", s.file.display());
    let by = match (keyed, public) {
        (true, true) => "seed and public keys",
        (true, false) => "seed",
        _ => "public keys",
    };
    println!("records verified: {} (with the {by})", s.records);
    println!("seq: {}", range(s.first_seq, s.last_seq));
    println!("time: {} .. {}", time(s.first_time_us), time(s.last_time_us));
    println!("approved: {}  non-approved operations: {}", s.approved, s.non_approved);
    if public {
        println!("signed checkpoints: {}", s.checkpoints);
        match s.sealed {
            Some(n) => println!(
                "sealed: records 0..{} are under the last signed checkpoint (tree size {n})",
                n.saturating_sub(1)
            ),
            None => println!("sealed: no signed checkpoint"),
        }
        if let Some(t) = s.unsealed_tail {
            println!("unsealed tail: {t} records after the last checkpoint (no signature covers them yet)");
        }
        if let Some(t) = s.extends_trusted {
            println!("extends the trusted checkpoint of {t} records");
        }
    }
    println!(
        "end: {}",
        match s.end {
            End::Anchored => "anchored by the state file",
            End::AnchoredOneBehind =>
                "anchored by the state file (one record behind: a writer stopped before updating it)",
            End::NotAnchored if public && !keyed =>
                "not anchored by the state file (its keys are checked with the seed only)",
            End::NotAnchored => "not anchored (no state file: records cut off the end would not show)",
        }
    );
    if let Some((line, len)) = s.torn_tail {
        println!("torn tail: line {line}, {len} bytes without a newline (a write cut short; not verified)");
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tessera-audit: {msg}");
    ExitCode::from(1)
}

fn read_keys(p: &Path) -> Result<PublicKeys, ExitCode> {
    PublicKeys::read(p).map_err(|e| fail(format!("{}: {e}", p.display())))
}

fn verify_cmd(
    path: &Path,
    seed: Option<PathBuf>,
    pubkey: Option<PathBuf>,
    trusted: Option<PathBuf>,
    json: bool,
    threads: usize,
) -> ExitCode {
    if seed.is_none() && pubkey.is_none() {
        return fail("verify needs --seed FILE, --pubkey FILE, or both");
    }
    let keyed = match &seed {
        None => None,
        Some(seed) => {
            let s = match verify::read_seed(seed) {
                Ok(s) => s,
                Err(e) => return fail(format!("{}: {e}", seed.display())),
            };
            match verify::verify_path(path, &s, threads.clamp(1, 2)) {
                Ok(s) => Some(s),
                Err(e) => return fail(format!("{}: {e}", path.display())),
            }
        }
    };
    let public = match &pubkey {
        None => None,
        Some(pk) => {
            let keys = match read_keys(pk) {
                Ok(k) => k,
                Err(c) => return c,
            };
            let trusted = match &trusted {
                None => None,
                Some(t) => match tessera_audit::public::read_trusted(t, &keys) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        eprintln!("FAILED: {e}");
                        return ExitCode::from(Class::BadCheckpointSignature.exit_code());
                    }
                },
            };
            let (log, state) = if path.is_dir() {
                match std::fs::read(path.join(STATE)) {
                    Ok(st) => (path.join(LOG), Some(st)),
                    Err(e) => return fail(format!("{}: {e}", path.join(STATE).display())),
                }
            } else {
                (path.to_path_buf(), None)
            };
            match tessera_audit::public::verify(&log, state.as_deref(), &keys, trusted.as_ref()) {
                Ok(s) => Some(s),
                Err(e) => return fail(format!("{}: {e}", log.display())),
            }
        }
    };
    // The keyed result first (its classes are exact); the public one adds the checkpoints.
    let s = match (keyed, public) {
        (Some(mut k), Some(p)) => {
            k.checkpoints = p.checkpoints;
            k.sealed = p.sealed;
            k.unsealed_tail = p.unsealed_tail;
            k.extends_trusted = p.extends_trusted;
            if k.failure.is_none() {
                k.failure = p.failure;
            }
            k
        }
        (Some(k), None) => k,
        (None, Some(p)) => p,
        (None, None) => unreachable!("checked above"),
    };
    if json {
        println!("{}", serde_json::to_string(&s).expect("a summary serialises"));
    } else {
        print(&s, seed.is_some(), pubkey.is_some());
    }
    match &s.failure {
        None => {
            if !json {
                println!("intact");
            }
            ExitCode::SUCCESS
        }
        Some(f) => {
            eprintln!("FAILED: {f}");
            ExitCode::from(f.class.exit_code())
        }
    }
}

fn log_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(LOG)
    } else {
        path.to_path_buf()
    }
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Init { dir, seed_out, pubkey_out } => {
            let seed_out = seed_out.unwrap_or_else(|| dir.join(tessera_audit::writer::SEED));
            if let Err(e) = tessera_audit::writer::init(&dir, &seed_out) {
                return fail(e);
            }
            println!("audit chain created in {}", dir.display());
            println!(
                "verification seed: {} (mode 0600): move it off this host; whoever holds it can forge records",
                seed_out.display()
            );
            println!("public keys (for verify --pubkey): {}", dir.join(PUB).display());
            if let Some(out) = pubkey_out {
                if let Err(e) = std::fs::copy(dir.join(PUB), &out) {
                    return fail(format!("{}: {e}", out.display()));
                }
                println!("public keys copied to {}", out.display());
            }
            ExitCode::SUCCESS
        }
        Cmd::Verify { path, seed, pubkey, trusted_checkpoint, json, threads } => {
            verify_cmd(&path, seed, pubkey, trusted_checkpoint, json, threads)
        }
        Cmd::Checkpoint { dir, out } => {
            let mut w = match tessera_audit::Writer::open(&dir) {
                Ok(w) => w,
                Err(e) => return fail(e),
            };
            let like = tessera_audit::Record {
                time_us: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(0),
                pid: std::process::id(),
                uid: nix::unistd::getuid().as_raw(),
                mode: "tessera-audit".into(),
                ..Default::default()
            };
            let seq = match w.checkpoint(&like) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let note = w.last_checkpoint().unwrap_or_default().to_string();
            if let Some(out) = out {
                if let Err(e) = std::fs::write(&out, &note) {
                    return fail(format!("{}: {e}", out.display()));
                }
            }
            eprintln!("checkpoint appended as record {seq}");
            print!("{note}");
            ExitCode::SUCCESS
        }
        Cmd::ExportKey { dir } => match std::fs::read_to_string(dir.join(PUB)) {
            Ok(t) => match PublicKeys::decode(&t) {
                Ok(k) => {
                    print!("{}", k.encode());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("{}: {e}", dir.join(PUB).display())),
            },
            Err(e) => fail(format!("{}: {e}", dir.join(PUB).display())),
        },
        Cmd::Prove { path, seq, consistency_from, pubkey } => {
            let log = log_file(&path);
            let p = match (seq, consistency_from) {
                (Some(seq), _) => proof::prove_inclusion(&log, seq),
                (None, Some(from)) => {
                    let keys = match read_keys(&pubkey.expect("clap requires it")) {
                        Ok(k) => k,
                        Err(c) => return c,
                    };
                    match std::fs::read_to_string(&from) {
                        Ok(t) => proof::prove_consistency(&log, &t, &keys),
                        Err(e) => Err(format!("{}: {e}", from.display())),
                    }
                }
                (None, None) => unreachable!("clap requires one"),
            };
            match p {
                Ok(p) => {
                    println!("{}", serde_json::to_string_pretty(&p).expect("a proof serialises"));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::VerifyProof { proof: file, pubkey } => {
            let keys = match read_keys(&pubkey) {
                Ok(k) => k,
                Err(c) => return c,
            };
            let p: proof::Proof = match std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("not a proof: {e}")))
            {
                Ok(p) => p,
                Err(e) => return fail(format!("{}: {e}", file.display())),
            };
            match proof::check(&p, &keys) {
                Ok(Shown::Included { seq, record, checkpoint }) => {
                    println!("record {seq} is in the log under the signed checkpoint of {} records", checkpoint.size);
                    println!("{record}");
                    ExitCode::SUCCESS
                }
                Ok(Shown::Consistent { from, to }) => {
                    println!(
                        "the signed checkpoint of {} records extends the signed checkpoint of {} records",
                        to.size, from.size
                    );
                    ExitCode::SUCCESS
                }
                Err(ProofError::Signature(e)) => {
                    eprintln!("FAILED: {}: {e}", Class::BadCheckpointSignature.name());
                    ExitCode::from(Class::BadCheckpointSignature.exit_code())
                }
                Err(ProofError::Mismatch(e)) => {
                    eprintln!("FAILED: {}: {e}", Class::MerkleMismatch.name());
                    ExitCode::from(Class::MerkleMismatch.exit_code())
                }
                Err(ProofError::Form(e)) => fail(format!("{}: {e}", file.display())),
            }
        }
    }
}
