//! `tessera-audit`: creates a log's chain, verifies logs, appends and proves checkpoints.
//!
//! ```text
//! tessera-audit init DIR [--seed-out FILE] [--pubkey-out FILE]
//! tessera-audit verify DIR|FILE [--seed FILE] [--pubkey FILE] [--trusted-checkpoint FILE] [--json] [--threads N]
//! tessera-audit checkpoint DIR [--out FILE]
//! tessera-audit export-key DIR
//! tessera-audit prove DIR|FILE --seq N | --consistency-from FILE --pubkey FILE
//! tessera-audit verify-proof FILE --pubkey FILE
//! tessera-audit show DIR|FILE [FILTERS]
//! tessera-audit export DIR|FILE [FILTERS] [--format jsonl|csv] [--out FILE]
//! tessera-audit report DIR|FILE [FILTERS] [--format text|json|html] [--out FILE]
//! ```
//!
//! FILTERS: `--since TIME --until TIME` (RFC 3339, UTC), `--function F` and `--mechanism M`
//! (repeatable), `--token SERIAL`, `--key HEX` (a prefix of the key's unique id or of its
//! id-and-label hash), `--non-approved`, `--failures`. A progress bar goes to standard error
//! when it is a terminal and the log is large.
//!
//! `verify` exits 0 when the log is intact (a torn last line, a write cut short, is reported and
//! is not a failure), 1 when it could not run (a file unreadable, a bad seed), and 10 + the class
//! of the first failure otherwise (see `tessera_audit::verify::Class::exit_code`);
//! `verify-proof` exits 0 when the proof holds, 1 when it could not run, and the exit status of
//! the class (bad checkpoint signature, Merkle mismatch, or how its key chain breaks: a
//! certification skipped, a checkpoint signed by a later or a replaced key) otherwise. Both need
//! only the anchor public keys (`export-key`): checkpoint keys change at every checkpoint, each
//! certified by the one before (`tessera_audit::keychain`).

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera_audit::checkpoint::{PublicKeys, PUB};
use tessera_audit::proof::{self, ProofError, Shown};
use tessera_audit::query;
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
    /// Prints the anchor public keys of the log in DIR: those of the first checkpoint pair,
    /// from which every later pair is certified (all `verify --pubkey` and `verify-proof` need).
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
    /// Prints the records the filters keep, one line each (it does not verify them: `verify`).
    Show {
        path: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Writes the records the filters keep as JSON lines (as they are in the log) or CSV.
    Export {
        path: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// The output file (standard output by default).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Operations per mechanism and function, approved and not, refusals, failed logins, key
    /// lifecycle, and a chart over time: as text, JSON, or one self-contained HTML page.
    Report {
        path: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct FilterArgs {
    /// Records at or after this time (RFC 3339, UTC: 2026-12-06T10:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Records before this time.
    #[arg(long)]
    until: Option<String>,
    /// Records of this function (C_Sign …); repeatable.
    #[arg(long)]
    function: Vec<String>,
    /// Records of this mechanism (CKM_ECDSA, ECDSA, or its number); repeatable.
    #[arg(long)]
    mechanism: Vec<String>,
    /// Records of the token with this serial number.
    #[arg(long)]
    token: Option<String>,
    /// Records of the key whose unique id or id-and-label hash begins with this hex.
    #[arg(long)]
    key: Option<String>,
    /// Only operations and refusals that were not approved.
    #[arg(long)]
    non_approved: bool,
    /// Only calls that failed (rv not CKR_OK).
    #[arg(long)]
    failures: bool,
}

impl FilterArgs {
    fn filter(self) -> Result<query::Filter, String> {
        let t = |s: Option<String>| -> Result<Option<u64>, String> {
            s.map(|s| {
                humantime::parse_rfc3339_weak(&s)
                    .map_err(|e| format!("{s}: {e} (RFC 3339: 2026-12-06T10:00:00Z)"))
                    .map(|t| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0))
            })
            .transpose()
        };
        Ok(query::Filter {
            since_us: t(self.since)?,
            until_us: t(self.until)?,
            functions: self.function,
            mechanisms: self.mechanism,
            token: self.token,
            key: self.key,
            non_approved: self.non_approved,
            failures: self.failures,
        })
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ReportFormat {
    Text,
    Json,
    Html,
}

/// A progress bar on standard error over `passes` reads of `path`'s log, when standard error is
/// a terminal and the log is over 64 MiB.
fn progress(path: &Path, passes: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    let len: u64 = log_files(path).iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    if !std::io::stderr().is_terminal() || len < 64 << 20 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len * passes);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta}") {
        bar.set_style(style);
    }
    let b = bar.clone();
    let _ = tessera_audit::tree::PROGRESS.set(Box::new(move |n| b.inc(n)));
    Some(bar)
}

fn out_file(out: &Option<PathBuf>) -> Result<Box<dyn std::io::Write>, String> {
    match out {
        None => Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock()))),
        Some(p) => std::fs::File::create(p)
            .map(|f| Box::new(std::io::BufWriter::new(f)) as Box<dyn std::io::Write>)
            .map_err(|e| format!("{}: {e}", p.display())),
    }
}

fn query_cmd(cmd: Cmd) -> ExitCode {
    let note = "records read, not verified (run `tessera-audit verify` for that)";
    match cmd {
        Cmd::Show { path, filter } => {
            let f = match filter.filter() {
                Ok(f) => f,
                Err(e) => return fail(e),
            };
            let bar = progress(&path, 1);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut n = 0u64;
            let r = query::scan(&log_files(&path), |_, r| {
                if f.matches(r) {
                    n += 1;
                    let _ = writeln!(out, "{}", query::show_line(r));
                }
            });
            let _ = out.flush();
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            match r {
                Ok(skipped) => {
                    eprintln!("{n} records shown; {skipped} lines that are no records skipped; {note}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("{}: {e}", path.display())),
            }
        }
        Cmd::Export { path, filter, format, out } => {
            let f = match filter.filter() {
                Ok(f) => f,
                Err(e) => return fail(e),
            };
            let mut w = match out_file(&out) {
                Ok(w) => w,
                Err(e) => return fail(e),
            };
            let bar = progress(&path, 1);
            let fmt = match format {
                ExportFormat::Jsonl => query::ExportFormat::JsonLines,
                ExportFormat::Csv => query::ExportFormat::Csv,
            };
            let r = query::export(&log_files(&path), &f, fmt, &mut w).and_then(|r| w.flush().map(|()| r));
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            match r {
                Ok((n, skipped)) => {
                    eprintln!("{n} records exported; {skipped} lines that are no records skipped; {note}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Report { path, filter, format, out } => {
            let f = match filter.filter() {
                Ok(f) => f,
                Err(e) => return fail(e),
            };
            let bar = progress(&path, 2);
            let r = query::report(&log_files(&path), &f);
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let r = match r {
                Ok(r) => r,
                Err(e) => return fail(format!("{}: {e}", path.display())),
            };
            let text = match format {
                ReportFormat::Text => query::report_text(&r),
                ReportFormat::Json => serde_json::to_string_pretty(&r).expect("a report serialises") + "\n",
                ReportFormat::Html => query::report_html(&r),
            };
            let mut w = match out_file(&out) {
                Ok(w) => w,
                Err(e) => return fail(e),
            };
            if let Err(e) = w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
                return fail(e);
            }
            eprintln!("{note}");
            ExitCode::SUCCESS
        }
        _ => unreachable!("query commands only"),
    }
}

fn time(us: Option<u64>) -> String {
    us.map(|us| {
        humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us)).to_string()
    })
    .unwrap_or_else(|| "-".into())
}

fn print(s: &Summary, keyed: bool, public: bool, trusted: bool) {
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
    if let Some(h) = s.history_from {
        println!(
            "history starts at seq {h} (older files deleted by retention; the rotation record there carries the tree, anchored by the signed checkpoints after it)"
        );
    }
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
        if let Some(k) = &s.key_chain {
            println!("checkpoint keys: {}", anchoring(k, s.history_from));
        }
        if let Some(t) = s.extends_trusted {
            println!("extends the trusted checkpoint of {t} records");
        } else if let (Some(h), true) = (s.history_from, trusted) {
            println!("the trusted checkpoint is older than the retained history (seq {h}): not checked");
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

/// How the checkpoints' keys lead back to the anchor public keys, in words.
fn anchoring(k: &tessera_audit::verify::KeyChainReport, history_from: Option<u64>) -> String {
    let mut parts = Vec::new();
    if k.legacy_checkpoints > 0 {
        parts.push(format!(
            "{} checkpoint(s) of the first format, all signed by the anchor key (no forward security)",
            k.legacy_checkpoints
        ));
    }
    if k.generations > 0 {
        let mut p = format!(
            "forward-secure: {} key generation(s) certified one by one from the anchor key; the next checkpoint must be signed by generation {}",
            k.generations, k.generations
        );
        if k.from_key_file > 0 {
            p.push_str(&format!(
                "; history starts at seq {}: generations 1..={} were reached through the key chain file (audit.keys), checked from the anchor",
                history_from.unwrap_or(0),
                k.from_key_file
            ));
        }
        parts.push(p);
    }
    if parts.is_empty() {
        parts.push("no checkpoint yet: the first must be signed by the anchor key".into());
    }
    if let Some(n) = k.key_file_entries {
        parts.push(format!("key chain file (audit.keys): {n} certification(s)"));
    }
    parts.join("; ")
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
    let bar = progress(path, u64::from(seed.is_some()) + u64::from(pubkey.is_some()));
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
            let (files, state, missing) = if path.is_dir() {
                let st = match std::fs::read(path.join(STATE)) {
                    Ok(st) => st,
                    Err(e) => return fail(format!("{}: {e}", path.join(STATE).display())),
                };
                match verify::log_files(path, Some(&st)) {
                    Ok((files, missing)) => (files, Some(st), missing),
                    Err(e) => return fail(format!("{}: {e}", path.display())),
                }
            } else {
                (vec![path.to_path_buf()], None, None)
            };
            match tessera_audit::public::verify_files(&files, state.as_deref(), &keys, trusted.as_ref()) {
                Ok(mut s) => {
                    if missing.is_some() {
                        s.failure = missing;
                    }
                    Some(s)
                }
                Err(e) => return fail(format!("{}: {e}", path.display())),
            }
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // The keyed result first (its classes are exact); the public one adds the checkpoints.
    let s = match (keyed, public) {
        (Some(mut k), Some(p)) => {
            k.checkpoints = p.checkpoints;
            k.sealed = p.sealed;
            k.unsealed_tail = p.unsealed_tail;
            k.extends_trusted = p.extends_trusted;
            k.history_from = k.history_from.or(p.history_from);
            k.key_chain = p.key_chain;
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
        print(&s, seed.is_some(), pubkey.is_some(), trusted.is_some());
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

/// The log's files, oldest first: a directory's rotated files and `audit.log`, or the one file.
fn log_files(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        verify::log_files(path, None).map(|(f, _)| f).unwrap_or_else(|_| vec![path.join(LOG)])
    } else {
        vec![path.to_path_buf()]
    }
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        cmd @ (Cmd::Show { .. } | Cmd::Export { .. } | Cmd::Report { .. }) => query_cmd(cmd),
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
            println!("anchor public keys (for verify --pubkey, verify-proof): {}", dir.join(PUB).display());
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
            let like = tessera_audit::Record::now("tessera-audit".into());
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
            let log = log_files(&path);
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
                Err(ProofError::Chain(class, e)) => {
                    eprintln!("FAILED: {}: {e}", class.name());
                    ExitCode::from(class.exit_code())
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
