//! `tessera-migrate`: moves tokens into Tessera.
//!
//! * `from-softhsm2`: reads SoftHSMv2 token directories directly (both backends), read-only, and
//!   builds the same tokens in Tessera's store — label, serial, both PINs, every object with its
//!   attributes, non-extractable keys included (see `tessera_pkcs11::migrate`).
//! * `inventory`: one CSV row per object of a token in any PKCS#11 module (never a secret value).
//! * `diff`: compares two inventories; exits 1 on any difference.
//!
//! Exit status: 0 done; 1 failure (or, for `diff`, a difference); 2 objects Tessera cannot hold
//! were found and `--skip-unsupported` was not given (that token is not migrated).

#![deny(unsafe_code)]

use clap::{ArgGroup, Args, Parser, Subcommand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera_pkcs11::config::Config;
use tessera_pkcs11::migrate::build::{self, Marker, Pin, Target};
use tessera_pkcs11::migrate::softhsm1;
use tessera_pkcs11::migrate::softhsm2::{self, PinRole};
use tessera_pkcs11::migrate::via;
use tessera_pkcs11::migrate::{inventory, Options, Summary, Unsupported};
use tessera_pkcs11::token::PinPolicy;
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(name = "tessera-migrate", version, about = "Move tokens into Tessera, and compare tokens")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Migrate SoftHSMv2 tokens (read directly from their directory) into Tessera's store.
    FromSofthsm2(FromSofthsm2),
    /// Copy a token through another PKCS#11 module: what it lets out (public objects,
    /// certificates, data objects, extractable keys wrapped with AES-KWP); lists what it does not.
    ViaPkcs11(ViaPkcs11),
    /// Add the objects of a SoftHSM v1 database to an existing Tessera token (a re-run adds
    /// nothing).
    FromSofthsm1(FromSofthsm1),
    /// Write the inventory of a token (any PKCS#11 module) as CSV.
    Inventory(Inventory),
    /// Compare two inventories: missing, extra and changed objects; exit 1 on any difference.
    Diff(DiffArgs),
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").args(["token", "serial", "all"])))]
struct FromSofthsm2 {
    /// SoftHSMv2's token directory (default: `directories.tokendir` of $SOFTHSM2_CONF, else of
    /// /etc/softhsm/softhsm2.conf).
    #[arg(long)]
    tokendir: Option<PathBuf>,
    /// The token with this label.
    #[arg(long)]
    token: Option<String>,
    /// The token with this serial number.
    #[arg(long)]
    serial: Option<String>,
    /// Every token of the directory (the same PINs for all).
    #[arg(long)]
    all: bool,
    /// File holding the user PIN (first line). Else $TESSERA_MIGRATE_PIN, else a prompt.
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// File holding the SO PIN (first line). Else $TESSERA_MIGRATE_SO_PIN, else a prompt.
    #[arg(long)]
    so_pin_file: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// What every migration does with the objects read.
#[derive(Args, Clone)]
struct Common {
    /// Tessera's token directory (default: the one Tessera's configuration names).
    #[arg(long)]
    to: Option<PathBuf>,
    /// List what would move and what cannot; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Migrate the tokens without the objects Tessera cannot hold (listed in the report).
    #[arg(long)]
    skip_unsupported: bool,
    /// Replace a Tessera token with the same serial (kept as a backup first).
    #[arg(long)]
    force: bool,
    /// Keys made on the token that both wrap and process data (Tessera uses them for neither
    /// outside keys.legacy_wrapping) lose CKA_WRAP and CKA_UNWRAP: data keys.
    #[arg(long)]
    drop_wrap_usages: bool,
    /// The report as JSON on standard output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").args(["from_slot", "from_token"]).required(true)))]
struct ViaPkcs11 {
    /// The source PKCS#11 library.
    #[arg(long)]
    from_module: PathBuf,
    /// The source slot ID.
    #[arg(long)]
    from_slot: Option<u64>,
    /// The source token's label.
    #[arg(long)]
    from_token: Option<String>,
    /// The user PIN (also --pin-file, $TESSERA_MIGRATE_PIN, or a prompt).
    #[arg(long)]
    pin: Option<String>,
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// File holding the SO PIN (first line). Else $TESSERA_MIGRATE_SO_PIN, else a prompt.
    #[arg(long)]
    so_pin_file: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct FromSofthsm1 {
    /// The SoftHSM v1 database.
    #[arg(long)]
    db: PathBuf,
    /// The label of the Tessera token that receives the objects (made beforehand, e.g. with
    /// `tessera-util --init-token`).
    #[arg(long)]
    token: String,
    /// The token's user PIN (also --pin-file, $TESSERA_MIGRATE_PIN, or a prompt).
    #[arg(long)]
    pin: Option<String>,
    #[arg(long)]
    pin_file: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").args(["slot", "token"]).required(true)))]
struct Inventory {
    /// The PKCS#11 library.
    #[arg(long)]
    module: PathBuf,
    /// The slot ID.
    #[arg(long)]
    slot: Option<u64>,
    /// The token label.
    #[arg(long)]
    token: Option<String>,
    /// The PIN (also $TESSERA_MIGRATE_PIN or --pin-file); without one only public objects are listed.
    #[arg(long)]
    pin: Option<String>,
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// Log in as the SO instead of the user.
    #[arg(long)]
    so: bool,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct DiffArgs {
    before: PathBuf,
    after: PathBuf,
    #[arg(long)]
    json: bool,
}

type Res<T> = Result<T, String>;

/// A PIN from a file (first line), an environment variable, or the terminal; `None` if none.
fn pin_from(file: Option<&Path>, var: &str, prompt: &str) -> Res<Option<Pin>> {
    if let Some(f) = file {
        let text = Zeroizing::new(std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?);
        let line = text.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return Ok(Some(Zeroizing::new(line.to_vec())));
    }
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        return Ok(Some(Zeroizing::new(v.as_bytes().to_vec())));
    }
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(prompt).map_err(|e| format!("reading the PIN: {e}"))?;
        return Ok(Some(Zeroizing::new(p.into_bytes())));
    }
    Ok(None)
}

/// SoftHSMv2's token directory, as SoftHSMv2 finds it.
fn softhsm_tokendir(given: Option<&Path>) -> Res<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_path_buf());
    }
    let conf = std::env::var_os("SOFTHSM2_CONF")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/softhsm/softhsm2.conf"));
    softhsm2::tokendir_from_conf(&conf)
}

/// The report of one token.
#[derive(Serialize, Default)]
struct TokenReport {
    label: String,
    serial: String,
    backend: String,
    source: String,
    destination: Option<String>,
    /// "migrated", "already migrated", "would migrate" (dry run), "not migrated".
    status: String,
    error: Option<String>,
    moved: BTreeMap<String, usize>,
    objects: Vec<Summary>,
    unsupported: Vec<Unsupported>,
    warnings: Vec<String>,
    backup: Option<String>,
}

#[derive(Serialize, Default)]
struct Report {
    tokens: Vec<TokenReport>,
}

fn kind_key(s: &Summary) -> String {
    match &s.key_type {
        Some(k) => format!("{} {}", s.class, k),
        None => s.class.clone(),
    }
}

fn failed(mut rep: TokenReport, e: String) -> (TokenReport, u8) {
    rep.status = "not migrated".into();
    rep.error = Some(e);
    (rep, 1u8)
}

/// Converts the objects read (`rep` has the token's identity) and, unless `--dry-run`, builds the
/// Tessera token; `after` runs once the token is written (the source's check that it did not
/// change meanwhile).
#[allow(clippy::too_many_arguments)]
fn finish(
    mut rep: TokenReport,
    objects: &[(String, BTreeMap<cryptoki_sys::CK_ATTRIBUTE_TYPE, softhsm2::Val>)],
    common: &Common,
    user: Option<&Pin>,
    so: Option<&Pin>,
    user_pin_needed: bool,
    marker: Marker,
    target: &Target,
    after: &mut dyn FnMut(&mut TokenReport),
) -> (TokenReport, u8) {
    let opts = Options { drop_wrap_usages: common.drop_wrap_usages, as_user: false };
    let (planned, unsupported) = tessera_pkcs11::migrate::plan(objects, opts);
    rep.unsupported.extend(unsupported);
    for p in &planned {
        *rep.moved.entry(kind_key(&p.summary)).or_default() += 1;
        for u in &p.summary.unknown {
            rep.warnings.push(format!(
                "{} {:?} (id {}): attribute {} ({}) has no place in Tessera's object and is not carried over",
                p.summary.class, p.summary.label, p.summary.id, u.name, u.number
            ));
        }
        for n in &p.summary.notes {
            rep.warnings.push(format!("{} {:?} (id {}): {n}", p.summary.class, p.summary.label, p.summary.id));
        }
    }
    let unsupported = !rep.unsupported.is_empty() && !common.skip_unsupported;
    if common.dry_run {
        rep.status = if unsupported { "would not migrate (unsupported objects)" } else { "would migrate" }.into();
        rep.objects = planned.into_iter().map(|p| p.summary).collect();
        return (rep, if unsupported { 2 } else { 0 });
    }
    if unsupported {
        rep.status = "not migrated".into();
        rep.error = Some("objects Tessera cannot hold (listed); --skip-unsupported migrates the rest".into());
        rep.objects = planned.into_iter().map(|p| p.summary).collect();
        return (rep, 2);
    }
    let Some(so) = so else {
        return failed(
            rep,
            "the SO PIN is needed too (--so-pin-file or $TESSERA_MIGRATE_SO_PIN): Tessera wraps the token key under \
             each PIN with its own derivation, which needs the PIN itself"
                .into(),
        );
    };
    if user_pin_needed && user.is_none() {
        return failed(rep, "the user PIN is needed too (--pin-file or $TESSERA_MIGRATE_PIN)".into());
    }
    let _lock = match build::lock_store(&target.tokendir) {
        Ok(l) => l,
        Err(e) => return failed(rep, e),
    };
    let built: Vec<_> = planned.iter().map(|p| p.object.clone()).collect();
    let total = built.len();
    // A progress bar on a terminal only (indicatif draws nothing on a pipe or a file, and
    // --json output stays clean).
    let bar = if std::io::stderr().is_terminal() && !common.json {
        let style = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} objects ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        indicatif::ProgressBar::with_draw_target(Some(total as u64), indicatif::ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(rep.label.clone())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut progress = |n: usize| bar.set_position(n as u64);
    let r = build::install(
        target,
        &rep.serial.clone(),
        &rep.label.clone(),
        user.map(|p| &p[..]),
        so,
        &built,
        &marker,
        &mut progress,
    );
    bar.finish_and_clear();
    after(&mut rep);
    rep.objects = planned.into_iter().map(|p| p.summary).collect();
    match r {
        Ok(i) => {
            rep.destination = Some(i.dir.display().to_string());
            rep.backup = i.backup.map(|b| b.display().to_string());
            rep.status = if i.already { "already migrated" } else { "migrated" }.into();
            (rep, 0)
        }
        Err(e) => failed(rep, e),
    }
}

fn migrate_one(
    dir: &Path,
    common: &Common,
    user_pin: Option<&Pin>,
    so_pin: Option<&Pin>,
    target: &Target,
) -> (TokenReport, u8) {
    let mut rep = TokenReport { source: dir.display().to_string(), ..Default::default() };
    // The source's digest before and after: a token SoftHSMv2 changed while it was read is not
    // migrated from a mixed state.
    let before = match build::digest_dir(dir) {
        Ok(d) => d,
        Err(e) => return failed(rep, format!("{}: {e}", dir.display())),
    };
    let src = match softhsm2::Token::read(dir) {
        Ok(t) => t,
        Err(e) => return failed(rep, e.to_string()),
    };
    rep.label = src.label.clone();
    rep.serial = src.serial.clone();
    rep.backend = format!("{:?}", src.backend).to_lowercase();
    // Each PIN given must be that role's; one of them unlocks the token key.
    if let Some(p) = user_pin {
        if !src.pin_matches(PinRole::User, p) {
            return failed(rep, "the user PIN is incorrect (nothing was written)".into());
        }
    }
    if let Some(p) = so_pin {
        if !src.pin_matches(PinRole::So, p) {
            return failed(rep, "the SO PIN is incorrect (nothing was written)".into());
        }
    }
    let Some((key, _)) = user_pin.or(so_pin).and_then(|p| src.unlock(p)) else {
        return failed(rep, "a PIN is needed: the user PIN (--pin-file or $TESSERA_MIGRATE_PIN) or the SO PIN".into());
    };
    let objects = match tessera_pkcs11::migrate::clear_objects(&src, &key) {
        Ok(o) => o,
        Err(e) => return failed(rep, e),
    };
    drop(key);
    let marker = tessera_pkcs11::migrate::softhsm2_marker("tessera-migrate from-softhsm2", dir, &src, objects.len());
    let mut after = |rep: &mut TokenReport| match build::digest_dir(dir) {
        Ok(after) if after == before => {}
        _ => rep.warnings.push("the SoftHSMv2 token changed while it was read: run the migration again".into()),
    };
    finish(rep, &objects, common, user_pin, so_pin, src.has_user_pin(), marker, target, &mut after)
}

fn print_text(r: &Report) {
    for t in &r.tokens {
        println!("token {:?} serial {} ({} backend, {}): {}", t.label, t.serial, t.backend, t.source, t.status);
        if let Some(d) = &t.destination {
            println!("  into {d}");
        }
        if let Some(b) = &t.backup {
            println!("  the Tessera token it replaces is kept at {b}");
        }
        for (k, n) in &t.moved {
            println!("  {n:>5} {k}");
        }
        for o in &t.objects {
            println!(
                "        {} {}label={:?} id={}",
                o.class,
                o.key_type.as_ref().map(|k| format!("{k} ")).unwrap_or_default(),
                o.label,
                o.id
            );
        }
        for u in &t.unsupported {
            println!("  cannot move: {} label={:?} id={} ({}): {}", u.class, u.label, u.id, u.source, u.reason);
        }
        for w in &t.warnings {
            println!("  warning: {w}");
        }
        if let Some(e) = &t.error {
            println!("  error: {e}");
        }
    }
}

fn from_softhsm2(args: &FromSofthsm2) -> Res<u8> {
    let tokendir = softhsm_tokendir(args.tokendir.as_deref())?;
    let dirs = softhsm2::token_dirs(&tokendir).map_err(|e| format!("{}: {e}", tokendir.display()))?;
    let mut chosen = Vec::new();
    for d in dirs {
        let keep = if args.all {
            true
        } else if let Some(l) = &args.token {
            softhsm2::Token::read(&d).is_ok_and(|t| &t.label == l)
        } else if let Some(s) = &args.serial {
            softhsm2::Token::read(&d).is_ok_and(|t| &t.serial == s)
        } else {
            return Err("choose --token LABEL, --serial S or --all".into());
        };
        if keep {
            chosen.push(d);
        }
    }
    if chosen.is_empty() {
        return Err(format!("no such SoftHSMv2 token in {}", tokendir.display()));
    }
    let user_pin = pin_from(args.pin_file.as_deref(), "TESSERA_MIGRATE_PIN", "User PIN: ")?;
    let so_pin = if args.common.dry_run && user_pin.is_some() {
        None
    } else {
        pin_from(args.so_pin_file.as_deref(), "TESSERA_MIGRATE_SO_PIN", "SO PIN: ")?
    };
    let target = target(&args.common)?;
    let mut report = Report::default();
    let mut status = 0u8;
    for d in chosen {
        let (r, s) = migrate_one(&d, &args.common, user_pin.as_ref(), so_pin.as_ref(), &target);
        status = status.max(s);
        report.tokens.push(r);
    }
    print_report(&report, args.common.json)?;
    Ok(status)
}

fn print_report(report: &Report, json: bool) -> Res<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report).map_err(|e| e.to_string())?);
    } else {
        print_text(report);
    }
    Ok(())
}

/// Tessera's store and PIN rules, from Tessera's configuration (`--to` overrides the directory).
/// The library's known-answer tests and aws-lc's self-tests run first: this program seals keys
/// with the same code, and writes nothing if they fail.
fn target(common: &Common) -> Res<Target> {
    let post = tessera_pkcs11::fips::self_tests(None, false, "tessera-migrate");
    if let Some(f) = post.failure {
        return Err(format!("self-tests failed ({f}): nothing is written"));
    }
    let cfg = Config::load()?;
    let policy = PinPolicy {
        max_failures: cfg.pin_max_failures,
        iterations: cfg.kdf_iterations,
        min_length: cfg.pin_min_length(),
        approved: cfg.mode == tessera_pkcs11::policy::Mode::Approved,
        keep_wrap_usages: cfg.legacy_wrapping,
    };
    Ok(Target { tokendir: common.to.clone().unwrap_or(cfg.tokendir.clone()), policy, force: common.force })
}

fn from_softhsm1(a: &FromSofthsm1) -> Res<u8> {
    let target = target(&a.common)?;
    let objects = softhsm1::read(&a.db)?;
    let mut rep = TokenReport {
        label: a.token.clone(),
        source: a.db.display().to_string(),
        backend: "softhsm-v1".into(),
        ..Default::default()
    };
    let opts = Options { drop_wrap_usages: a.common.drop_wrap_usages, as_user: true };
    let mut planned = Vec::new();
    for (name, attrs) in &objects {
        match tessera_pkcs11::migrate::convert(name, attrs, opts) {
            Ok(p) => planned.push(p),
            Err(u) => rep.unsupported.push(*u),
        }
    }
    for p in &planned {
        *rep.moved.entry(kind_key(&p.summary)).or_default() += 1;
        for u in &p.summary.unknown {
            rep.warnings.push(format!(
                "{} {:?} (id {}): attribute {} ({}) has no place in Tessera's object and is not carried over",
                p.summary.class, p.summary.label, p.summary.id, u.name, u.number
            ));
        }
    }
    let unsupported = !rep.unsupported.is_empty() && !a.common.skip_unsupported;
    let status = if a.common.dry_run {
        rep.status = if unsupported { "would not migrate (unsupported objects)" } else { "would migrate" }.into();
        if unsupported {
            2
        } else {
            0
        }
    } else if unsupported {
        rep.status = "not migrated".into();
        rep.error = Some("objects Tessera cannot hold (listed); --skip-unsupported migrates the rest".into());
        2
    } else {
        let pin = match &a.pin {
            Some(p) => Some(Zeroizing::new(p.clone().into_bytes())),
            None => pin_from(a.pin_file.as_deref(), "TESSERA_MIGRATE_PIN", "User PIN: ")?,
        };
        let pin = pin.ok_or("the token's user PIN is needed (--pin, --pin-file or $TESSERA_MIGRATE_PIN)")?;
        let built: Vec<_> = planned.iter().map(|p| p.object.clone()).collect();
        match build::add_to_existing(&target.tokendir, target.policy, &a.token, &pin, &built) {
            Ok(r) => {
                rep.destination = Some(r.dir.display().to_string());
                rep.status = if r.added == 0 { "already migrated" } else { "migrated" }.into();
                if r.present > 0 {
                    rep.warnings.push(format!("{} objects were there already and were not added again", r.present));
                }
                0
            }
            Err(e) => {
                rep.status = "not migrated".into();
                rep.error = Some(e);
                1
            }
        }
    };
    rep.objects = planned.into_iter().map(|p| p.summary).collect();
    print_report(&Report { tokens: vec![rep] }, a.common.json)?;
    Ok(status)
}

fn via_pkcs11(a: &ViaPkcs11) -> Res<u8> {
    let user_pin = match &a.pin {
        Some(p) => Some(Zeroizing::new(p.clone().into_bytes())),
        None => pin_from(a.pin_file.as_deref(), "TESSERA_MIGRATE_PIN", "User PIN: ")?,
    };
    let user_pin = user_pin.ok_or("the user PIN is needed (--pin, --pin-file or $TESSERA_MIGRATE_PIN)")?;
    let so_pin =
        if a.common.dry_run { None } else { pin_from(a.so_pin_file.as_deref(), "TESSERA_MIGRATE_SO_PIN", "SO PIN: ")? };
    let target = target(&a.common)?;
    let from = via::From {
        slot: a.from_slot,
        token: a.from_token.as_deref(),
        pin: &user_pin,
        so_pin: so_pin.as_deref().map(|p| &p[..]),
    };
    let mut rep =
        TokenReport { source: a.from_module.display().to_string(), backend: "pkcs11".into(), ..Default::default() };
    let src = match via::read(&a.from_module, &from) {
        Ok(s) => s,
        Err(e) => {
            let (r, s) = failed(rep, e);
            print_report(&Report { tokens: vec![r] }, a.common.json)?;
            return Ok(s);
        }
    };
    rep.label = src.label.clone();
    rep.serial = src.serial.clone();
    // The keys the module does not let out: listed, and the token is not migrated without
    // --skip-unsupported (they must be issued again).
    rep.unsupported = src.stuck;
    let marker = Marker {
        tool: "tessera-migrate via-pkcs11".into(),
        source: a.from_module.display().to_string(),
        backend: "pkcs11".into(),
        serial: src.serial.clone(),
        digest: tessera_pkcs11::migrate::digest_maps(&src.label, &src.serial, &src.objects),
        objects: src.objects.len(),
    };
    let (r, s) =
        finish(rep, &src.objects, &a.common, Some(&user_pin), so_pin.as_ref(), true, marker, &target, &mut |_| {});
    print_report(&Report { tokens: vec![r] }, a.common.json)?;
    Ok(s)
}

fn inventory_cmd(a: &Inventory) -> Res<u8> {
    let pin = match &a.pin {
        Some(p) => Some(Zeroizing::new(p.clone().into_bytes())),
        None => pin_from(a.pin_file.as_deref(), "TESSERA_MIGRATE_PIN", "PIN: ")?,
    };
    let sel =
        inventory::Select { slot: a.slot, token: a.token.as_deref(), pin: pin.as_deref().map(|p| &p[..]), so: a.so };
    let rows = inventory::inventory(&a.module, &sel)?;
    match &a.out {
        Some(f) => inventory::write_csv(&rows, std::fs::File::create(f).map_err(|e| format!("{}: {e}", f.display()))?)?,
        None => inventory::write_csv(&rows, std::io::stdout().lock())?,
    }
    Ok(0)
}

fn diff_cmd(a: &DiffArgs) -> Res<u8> {
    let d = inventory::diff(&inventory::read_csv(&a.before)?, &inventory::read_csv(&a.after)?);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d).map_err(|e| e.to_string())?);
    } else {
        for m in &d.missing {
            println!("missing: {m}");
        }
        for x in &d.extra {
            println!("extra: {x}");
        }
        for c in &d.changed {
            println!("changed: {c}");
        }
        if d.is_empty() {
            println!("no difference");
        }
    }
    Ok(if d.is_empty() { 0 } else { 1 })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::FromSofthsm2(a) => from_softhsm2(a),
        Cmd::ViaPkcs11(a) => via_pkcs11(a),
        Cmd::FromSofthsm1(a) => from_softhsm1(a),
        Cmd::Inventory(a) => inventory_cmd(a),
        Cmd::Diff(a) => diff_cmd(a),
    };
    match r {
        Ok(s) => ExitCode::from(s),
        Err(e) => {
            eprintln!("tessera-migrate: {e}");
            ExitCode::from(1)
        }
    }
}
