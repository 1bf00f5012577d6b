//! `tessera-util run`: a command run against a throwaway token, in one mode or in both, for a
//! project's CI to learn whether its tests pass against the approved mode.
//!
//! For each mode asked for: a token store in a new private temporary directory with its own
//! configuration file, a token initialised there through the library (this program run again as
//! `--init-token`, so the token is made exactly as `tessera-util --init-token` makes it; outside the
//! approved mode with `--test-token`, whose PINs derive with 1,000 iterations), then the
//! command with `PKCS11_MODULE`, `TESSERA_MODE`, `TESSERA_CONF`, `TESSERA_TOKEN_LABEL`,
//! `TESSERA_USER_PIN` and `TESSERA_SO_PIN` set, then the store removed. The exit status is the
//! command's (with `both`, the first failing run's, else 0); a command killed by a signal gives
//! 128 + its number, as a shell reports it. With `both`, the non-approved run's store also gets an
//! audit log (`tessera_audit::writer::init`, beside the token directory, where the module finds
//! it), and what it records as completed but not approved is counted by mechanism and operation.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The mode to run the command in; `both` runs it twice (approved first) and prints a table.
    #[arg(long, value_enum, default_value_t = Mode::Approved)]
    pub mode: Mode,
    /// Label of the throwaway token.
    #[arg(long, value_name = "text", default_value = "tessera-run")]
    pub label: String,
    /// The token's SO PIN.
    #[arg(long, value_name = "PIN", default_value = "12345678")]
    pub so_pin: String,
    /// The token's user PIN (6 characters at least: the approved mode's shortest).
    #[arg(long, value_name = "PIN", default_value = "123456")]
    pub pin: String,
    /// The Tessera library (default: the one beside this program, else the system's).
    #[arg(long, value_name = "path")]
    pub module: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Approved,
    NonApproved,
    Both,
}

/// One run of the command: its mode, exit status and time, and, when it ran with an audit log,
/// the operations its log records as not approved: (mechanism, operation, count).
struct Outcome {
    mode: &'static str,
    status: i32,
    elapsed: Duration,
    non_approved: Option<Vec<(String, String, u64)>>,
}

/// The operations an audit log records as completed (`CKR_OK`) but not approved, counted by
/// mechanism and operation, most used first.
fn non_approved_uses(log: &Path) -> Result<Vec<(String, String, u64)>, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut counts = std::collections::BTreeMap::<(String, String), u64>::new();
    for line in text.lines() {
        let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(op), Some(mech)) = (r["op"].as_str(), r["mechanism"].as_str()) else { continue };
        if r["fips_approved"] == false && r["rv"] == "CKR_OK" {
            *counts.entry((mech.to_string(), op.to_string())).or_default() += 1;
        }
    }
    let mut v: Vec<_> = counts.into_iter().map(|((m, o), n)| (m, o, n)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    Ok(v)
}

/// An exit status as a shell gives it.
fn code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// Makes the throwaway store and token for `mode`, runs the command, removes the store.
/// With `audit`, the store gets an audit log (a chain beside the token directory, where the module
/// finds it), read after the command for its non-approved operations.
fn run_in(a: &RunArgs, library: &Path, mode: &'static str, audit: bool) -> Result<Outcome, String> {
    let dir = tempfile::Builder::new()
        .prefix("tessera-run-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary token store: {e}"))?;
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).map_err(|e| format!("cannot make {}: {e}", tokens.display()))?;
    let conf = dir.path().join("tessera.conf");
    std::fs::write(
        &conf,
        format!("# tessera-util run: a throwaway token store\ndirectories.tokendir = {}\n", tokens.display()),
    )
    .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let env = [
        ("TESSERA_CONF", conf.as_os_str()),
        ("TESSERA_MODE", mode.as_ref()),
        ("PKCS11_MODULE", library.as_os_str()),
        ("TESSERA_TOKEN_LABEL", a.label.as_ref()),
        ("TESSERA_SO_PIN", a.so_pin.as_ref()),
        ("TESSERA_USER_PIN", a.pin.as_ref()),
    ];
    let log_dir = dir.path().join("audit");
    let audited = audit
        && match tessera_audit::writer::init(&log_dir, &dir.path().join("audit.seed")) {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "tessera-util run: no audit log for the {mode} run ({e}); its non-approved uses are not counted"
                );
                false
            }
        };
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program's own path: {e}"))?;
    // A throwaway token outside the approved mode is a test token (PINs derived with 1,000
    // iterations, not 600,000 in every process of the command); the approved mode makes none.
    let test_token: &[&str] = if mode == "approved" { &[] } else { &["--test-token"] };
    let init = Command::new(me)
        .args(["--init-token", "--free", "--label", &a.label, "--so-pin", &a.so_pin, "--pin", &a.pin])
        .args(test_token)
        .arg("--module")
        .arg(library)
        .envs(env)
        .output()
        .map_err(|e| format!("cannot run tessera-util --init-token: {e}"))?;
    if !init.status.success() {
        return Err(format!(
            "the {mode} mode's token could not be made: {}{}",
            String::from_utf8_lossy(&init.stdout).trim(),
            String::from_utf8_lossy(&init.stderr).trim()
        ));
    }
    eprintln!("tessera-util run: {mode} mode, token '{}' in {}: {}", a.label, tokens.display(), a.command.join(" "));
    let t = Instant::now();
    let status = Command::new(&a.command[0])
        .args(&a.command[1..])
        .envs(env)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", a.command[0]))?;
    let elapsed = t.elapsed();
    let non_approved = match audited.then(|| non_approved_uses(&log_dir.join("audit.log"))) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            eprintln!("tessera-util run: the {mode} run's audit log cannot be read ({e})");
            None
        }
        None => None,
    };
    dir.close().map_err(|e| format!("cannot remove the throwaway token store: {e}"))?;
    Ok(Outcome { mode, status: code(status), elapsed, non_approved })
}

/// `tessera-util run`: the exit status to end with.
pub fn run(a: &RunArgs, library: &Path) -> Result<i32, String> {
    let library = std::fs::canonicalize(library).map_err(|e| format!("{}: {e}", library.display()))?;
    let modes: &[&'static str] = match a.mode {
        Mode::Approved => &["approved"],
        Mode::NonApproved => &["non-approved"],
        Mode::Both => &["approved", "non-approved"],
    };
    let mut outcomes = Vec::new();
    for mode in modes {
        // With both, the non-approved run is audited: what it used that the approved mode refuses.
        let audit = a.mode == Mode::Both && *mode == "non-approved";
        outcomes.push(run_in(a, &library, mode, audit)?);
    }
    if a.mode == Mode::Both {
        eprintln!();
        eprintln!("| mode | exit status | time |");
        eprintln!("|---|---:|---:|");
        for o in &outcomes {
            eprintln!("| {} | {} | {:.2} s |", o.mode, o.status, o.elapsed.as_secs_f64());
        }
        if let [approved, other] = &outcomes[..] {
            if approved.status != 0 && other.status == 0 {
                eprintln!(
                    "The command passes in the non-approved mode only: it uses something the approved mode refuses."
                );
            }
            match &other.non_approved {
                Some(uses) if uses.is_empty() => {
                    eprintln!("The non-approved run's audit log records no operation outside the approved mode.")
                }
                Some(uses) => {
                    eprintln!();
                    eprintln!(
                        "Operations of the non-approved run that the approved mode does not approve (its audit log):"
                    );
                    eprintln!();
                    eprintln!("| mechanism | operation | count |");
                    eprintln!("|---|---|---:|");
                    for (mech, op, n) in uses {
                        eprintln!("| {mech} | {op} | {n} |");
                    }
                }
                None => {}
            }
        }
    }
    Ok(outcomes.iter().map(|o| o.status).find(|s| *s != 0).unwrap_or(0))
}
