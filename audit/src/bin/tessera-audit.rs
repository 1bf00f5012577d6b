//! `tessera-audit`: creates a log's chain and verifies logs.
//!
//! ```text
//! tessera-audit init DIR [--seed-out FILE]
//! tessera-audit verify DIR|FILE --seed FILE [--json] [--threads N]
//! ```
//!
//! `verify` exits 0 when the log is intact (a torn last line, a write cut short, is reported and
//! is not a failure), 1 when it could not run (a file unreadable, a bad seed), and 10 + the class
//! of the first failure otherwise (see `tessera_audit::verify::Class::exit_code`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_audit::verify::{self, End, Summary};

#[derive(Parser)]
#[command(name = "tessera-audit", version, about = "Tessera's audit log: create a chain, verify a log")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates the chain in DIR (made with mode 0700 if missing) and writes the verification
    /// seed, mode 0600, for the auditor to move off the host.
    Init {
        dir: PathBuf,
        /// Where the seed goes (default DIR/audit.seed); the file must not exist.
        #[arg(long)]
        seed_out: Option<PathBuf>,
    },
    /// Verifies a log directory (anchored by its state file) or a log file.
    Verify {
        path: PathBuf,
        /// The verification seed `init` wrote.
        #[arg(long)]
        seed: PathBuf,
        /// The summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// Threads (1 or 2).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

fn time(us: Option<u64>) -> String {
    us.map(|us| {
        humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us)).to_string()
    })
    .unwrap_or_else(|| "-".into())
}

fn print(s: &Summary) {
    let range = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => "-".into(),
    };
    println!("log: {}", s.file.display());
    println!("records verified: {}", s.records);
    println!("seq: {}", range(s.first_seq, s.last_seq));
    println!("time: {} .. {}", time(s.first_time_us), time(s.last_time_us));
    println!("approved: {}  non-approved operations: {}", s.approved, s.non_approved);
    println!(
        "end: {}",
        match s.end {
            End::Anchored => "anchored by the state file",
            End::AnchoredOneBehind =>
                "anchored by the state file (one record behind: a writer stopped before updating it)",
            End::NotAnchored => "not anchored (no state file: records cut off the end would not show)",
        }
    );
    if let Some((line, len)) = s.torn_tail {
        println!("torn tail: line {line}, {len} bytes without a newline (a write cut short; not verified)");
    }
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Init { dir, seed_out } => {
            let seed_out = seed_out.unwrap_or_else(|| dir.join(tessera_audit::writer::SEED));
            match tessera_audit::writer::init(&dir, &seed_out) {
                Ok(()) => {
                    println!("audit chain created in {}", dir.display());
                    println!(
                        "verification seed: {} (mode 0600): move it off this host; whoever holds it can forge records",
                        seed_out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tessera-audit: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Verify { path, seed, json, threads } => {
            let seed = match verify::read_seed(&seed) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("tessera-audit: {}: {e}", seed.display());
                    return ExitCode::from(1);
                }
            };
            let s = match verify::verify_path(&path, &seed, threads.clamp(1, 2)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("tessera-audit: {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            };
            if json {
                println!("{}", serde_json::to_string(&s).expect("a summary serialises"));
            } else {
                print(&s);
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
    }
}
