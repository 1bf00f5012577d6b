//! `tessera-bench`'s second table: short-lived processes, Tessera beside SoftHSMv2, each figure
//! the median over many whole processes started in turn (Tessera, SoftHSMv2, Tessera, …), so that
//! a machine whose speed drifts affects both columns alike.
//!
//! Rows:
//!
//! * `C_Initialize, first call of a process`: a child process (this program again, with
//!   `--child-initialize PATH N`) loads the module and times its first `C_Initialize`, inside the
//!   process (the library already loaded: `dlopen` is not counted);
//! * `C_Initialize, repeated`: the same child then calls `C_Finalize` and `C_Initialize` N times;
//!   the median of every such call of every child;
//! * `process: load the module, C_Initialize once`: the same child with no repeat, timed from its
//!   start to its exit (loading the program and the module included);
//! * `process: log in and list objects`, three rows: `pkcs11-tool --module M --token-label L
//!   --login --pin P -O` (OpenSC) on an empty token, timed from its start to its exit: for
//!   Tessera on an ordinary token (the PIN derived with 600,000 PBKDF2 iterations), on an ordinary
//!   token with the login cache in the kernel keyring warm (`pin.cache = keyring`), and on a test
//!   token (`--test-token`: 1,000 iterations); SoftHSMv2 on its own token in each row.
//!
//! Each Tessera row has a store and configuration of its own, made with `tessera-util` (beside
//! this program); SoftHSMv2's token is made with `softhsm2-util`. Without `pkcs11-tool` or
//! `softhsm2-util` the rows that need them read `n/a`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const LABEL: &str = "procbench";
const SO_PIN: &str = "12345678";
const PIN: &str = "123456";
/// `C_Finalize` + `C_Initialize` pairs timed in each child.
const REPEATS: usize = 10;

/// The child's side: loads `path`, times the first `C_Initialize` and `repeats` later ones, and
/// prints the times in nanoseconds on one line (the first first).
pub fn child_initialize(path: &str, repeats: usize) -> Res<()> {
    let p = Pkcs11::new(path)?;
    let mut times = Vec::with_capacity(repeats + 1);
    let t = Instant::now();
    p.initialize(super::init_args())?;
    times.push(t.elapsed());
    for _ in 0..repeats {
        p.clone().finalize()?;
        let t = Instant::now();
        p.initialize(super::init_args())?;
        times.push(t.elapsed());
    }
    let line: Vec<String> = times.iter().map(|d| d.as_nanos().to_string()).collect();
    println!("{}", line.join(" "));
    Ok(())
}

/// One column of a row: how to start one process, and the figure it gives.
struct Proc {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, PathBuf)>,
}

impl Proc {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).stdin(Stdio::null()).stderr(Stdio::piped()).stdout(Stdio::piped());
        // Neither module sees the other's configuration, nor a mode or store from the caller.
        for v in ["TESSERA_CONF", "TESSERA_MODE", "SOFTHSM2_CONF"] {
            c.env_remove(v);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs the process once: its wall time, and its standard output. A failed process is an
    /// error (its standard error in the message).
    fn run(&self) -> Res<(Duration, String)> {
        let t = Instant::now();
        let out = self.command().output()?;
        let took = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "{} {}: {} ({})",
                self.program.display(),
                self.args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        Ok((took, String::from_utf8_lossy(&out.stdout).into_owned()))
    }
}

fn median(v: &mut [Duration]) -> Option<Duration> {
    v.sort();
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// A row's figure per column: a median in milliseconds, or why there is none.
pub type Cell = Result<Duration, String>;

pub struct Row {
    pub name: String,
    pub cells: [Cell; 2],
}

/// A store with a configuration file of its own in a new directory.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new(conf_lines: &str, softhsm: bool) -> Res<Store> {
        let dir = tempfile::Builder::new().prefix("tessera-bench-proc-").tempdir()?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens)?;
        let extra = if softhsm { "objectstore.backend = file\nlog.level = ERROR\n" } else { conf_lines };
        std::fs::write(
            dir.path().join("module.conf"),
            format!("directories.tokendir = {}\n{extra}", tokens.display()),
        )?;
        Ok(Store { dir })
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("module.conf")
    }
}

fn run_tool(mut c: Command) -> Res<()> {
    let out = c.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{c:?}: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim()).into())
    }
}

fn have(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Runs `columns` in turn `runs` times each (after one untimed run of each) and returns each
/// column's median wall time; `figure` turns one run into the figures it gives (several for a
/// child that times several calls).
fn interleave(columns: [&Option<Proc>; 2], runs: usize, figure: &dyn Fn(Duration, &str) -> Vec<Duration>) -> [Cell; 2] {
    let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut errors: [Option<String>; 2] = [None, None];
    for round in 0..=runs {
        // Alternate which column starts each round.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (Some(p), None) = (columns[i], &errors[i]) else { continue };
            match p.run() {
                Ok((took, out)) if round > 0 => samples[i].extend(figure(took, &out)),
                Ok(_) => {}
                Err(e) => errors[i] = Some(e.to_string()),
            }
        }
    }
    let cell = |i: usize, samples: &mut Vec<Duration>| -> Cell {
        if let Some(e) = &errors[i] {
            return Err(e.clone());
        }
        if columns[i].is_none() {
            return Err("not available".into());
        }
        median(samples).ok_or_else(|| "no sample".to_string())
    };
    let [a, b] = &mut samples;
    [cell(0, a), cell(1, b)]
}

/// Every row of the table.
pub fn measure(tessera: &Path, softhsm: &Path, runs: usize) -> Vec<Row> {
    let me = std::env::current_exe().ok();
    let util = me.as_ref().and_then(|e| e.parent()).map(|d| d.join("tessera-util")).filter(|p| p.is_file());
    let pkcs11_tool = have("pkcs11-tool");
    let softhsm_util = have("softhsm2-util");
    let mut rows = Vec::new();

    // C_Initialize, first and repeated: the child is this program.
    let tessera_store = Store::new("", false);
    let softhsm_store = Store::new("", true);
    let child = |lib: &Path, store: &Res<Store>, var: &str, repeats: usize| -> Option<Proc> {
        Some(Proc {
            program: me.clone()?,
            args: vec!["--child-initialize".into(), lib.display().to_string(), repeats.to_string()],
            env: vec![(var.to_string(), store.as_ref().ok()?.conf())],
        })
    };
    let init_columns = [
        child(tessera, &tessera_store, "TESSERA_CONF", REPEATS),
        child(softhsm, &softhsm_store, "SOFTHSM2_CONF", REPEATS),
    ];
    let parse = |out: &str| -> Vec<Duration> {
        out.split_whitespace().filter_map(|n| n.parse::<u64>().ok()).map(Duration::from_nanos).collect()
    };
    eprintln!("processes: C_Initialize, {runs} processes per module");
    let first =
        interleave([&init_columns[0], &init_columns[1]], runs, &|_, out| parse(out).into_iter().take(1).collect());
    rows.push(Row { name: "C_Initialize, first call of a process".into(), cells: first });
    let repeated =
        interleave([&init_columns[0], &init_columns[1]], runs, &|_, out| parse(out).into_iter().skip(1).collect());
    rows.push(Row { name: format!("C_Initialize, repeated ({REPEATS} per process)"), cells: repeated });
    // The whole process that loads the module and initialises it once (start to exit).
    let once = [child(tessera, &tessera_store, "TESSERA_CONF", 0), child(softhsm, &softhsm_store, "SOFTHSM2_CONF", 0)];
    let whole = interleave([&once[0], &once[1]], runs, &|took, _| vec![took]);
    rows.push(Row { name: "process: load the module, C_Initialize once".into(), cells: whole });

    // Log in and list objects with pkcs11-tool.
    let Some(tool) = pkcs11_tool else {
        for what in ["ordinary token", "ordinary token, login cache warm", "test token"] {
            let na = || Err("pkcs11-tool not found".to_string());
            rows.push(Row { name: format!("process: log in and list objects, {what}"), cells: [na(), na()] });
        }
        return rows;
    };
    let listing = |lib: &Path, var: &str, conf: PathBuf| Proc {
        program: tool.clone(),
        args: ["--module", &lib.display().to_string(), "--token-label", LABEL, "--login", "--pin", PIN, "-O"]
            .map(String::from)
            .to_vec(),
        env: vec![(var.to_string(), conf)],
    };
    let softhsm_proc: Option<Proc> = (|| {
        let store = softhsm_store.as_ref().ok()?;
        let util = softhsm_util.as_ref()?;
        let mut c = Command::new(util);
        c.args(["--init-token", "--free", "--label", LABEL, "--so-pin", SO_PIN, "--pin", PIN])
            .env("SOFTHSM2_CONF", store.conf());
        run_tool(c).map_err(|e| eprintln!("processes: SoftHSMv2 token: {e}")).ok()?;
        Some(listing(softhsm, "SOFTHSM2_CONF", store.conf()))
    })();
    for (what, conf, test_token) in [
        ("ordinary token", "", false),
        ("ordinary token, login cache warm", "pin.cache = keyring\npin.cache_seconds = 600\n", false),
        ("test token", "", true),
    ] {
        let store = Store::new(conf, false);
        let tessera_proc: Result<Proc, String> = (|| {
            let store = store.as_ref().map_err(|e| e.to_string())?;
            let util = util.as_ref().ok_or("tessera-util not found beside tessera-bench")?;
            let mut c = Command::new(util);
            c.args(["--init-token", "--free", "--label", LABEL, "--so-pin", SO_PIN, "--pin", PIN])
                .env("TESSERA_CONF", store.conf())
                .env_remove("TESSERA_MODE");
            if test_token {
                c.arg("--test-token");
            }
            run_tool(c).map_err(|e| e.to_string())?;
            Ok(listing(tessera, "TESSERA_CONF", store.conf()))
        })();
        eprintln!("processes: {what}, {runs} processes per module");
        let tessera_proc = tessera_proc.map_err(|e| eprintln!("processes: {what}: {e}")).ok();
        let cells = interleave([&tessera_proc, &softhsm_proc], runs, &|took, _| vec![took]);
        rows.push(Row { name: format!("process: log in and list objects, {what}"), cells });
        // The cache's entries go with the store (the kernel would expire them anyway).
        if let (Some(util), Ok(store)) = (&util, &store) {
            let mut c = Command::new(util);
            c.arg("--logout-all").env("TESSERA_CONF", store.conf());
            let _ = c.stdout(Stdio::null()).output();
        }
    }
    rows
}

fn ms(d: &Cell) -> String {
    match d {
        Ok(d) => format!("{:.2}", d.as_secs_f64() * 1e3),
        Err(_) => "n/a".into(),
    }
}

/// The table, in Markdown, with its notes.
pub fn report(rows: &[Row], runs: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Short-lived processes: median over {runs} processes per module, started in turn \
         (milliseconds; lower is better; ratio = Tessera/SoftHSMv2)\n\n"
    ));
    out.push_str("| process | Tessera ms | SoftHSMv2 ms | Tessera/SoftHSMv2 |\n|---|---:|---:|---:|\n");
    let mut notes = Vec::new();
    for r in rows {
        let ratio = match (&r.cells[0], &r.cells[1]) {
            (Ok(a), Ok(b)) if !b.is_zero() => format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64()),
            _ => "n/a".into(),
        };
        out.push_str(&format!("| {} | {} | {} | {ratio} |\n", r.name, ms(&r.cells[0]), ms(&r.cells[1])));
        for (col, c) in ["Tessera", "SoftHSMv2"].iter().zip(&r.cells) {
            if let Err(e) = c {
                notes.push(format!("- {col} on {}: n/a ({e})", r.name));
            }
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}
