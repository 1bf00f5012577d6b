//! Tessera installed as a system PKCS#11 module, and used from a project's CI:
//!
//! - `tessera-util run`: the throwaway token and store, the variables the command gets, its exit
//!   status (a signal's too), `--mode both` and its table, an unsealed library refused in the
//!   approved mode;
//! - `examples/ci/`: both files parse as YAML, and their shell steps run here with a small script as
//!   the project's tests (passing in both modes, then one that uses RSA-1024 keys and so fails in the
//!   approved mode only);
//! - the Debian package (`module/packaging/build-deb.sh`, dpkg-deb from a staged tree; needs root
//!   and dpkg-dev, skips with a message otherwise): built from the sealed release build, its
//!   control fields and files checked (the multiarch library path, a real maintainer, conffiles,
//!   the SHA-256 of the sealed library it records), installed with `dpkg -i`, then
//!   with no Tessera variable set: `pkcs11-tool --show-info` on the packaged path, `p11-kit
//!   list-modules`, the approved mode through the packaged path, `man tessera-util`, a member of
//!   the `tessera` group who is not root initialising a token; `dpkg -r` leaves the tokens and a
//!   new `dpkg -i` finds them; then the CI examples' own install steps install it (from a `file:`
//!   URL) and their test step runs a project's tests through the installed `tessera-util`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tessera_tests::*;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tessera-util run ARGS -- sh -c SCRIPT`, from the build under test.
fn run(args: &[&str], script: &str) -> Output {
    let mut c = Command::new(util_path());
    c.arg("run").args(args).args(["--module"]).arg(module_path()).args(["--", "sh", "-c", script]);
    c.output().expect("tessera-util run")
}

#[test]
fn run_gives_the_command_a_throwaway_token_and_passes_its_status_on() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let util = util_path();
    // The command records what it got, lists the token through the library it was given, and
    // ends with a status of its own.
    let script = format!(
        "env | grep -E '^(TESSERA_|PKCS11_MODULE)' | sort > {seen}; \
         {util} --show-slots --verbose --module \"$PKCS11_MODULE\" >> {seen} || exit 99; exit 7",
        seen = seen.display(),
        util = util.display()
    );
    let o = run(&["--label", "ci-token", "--pin", "654321", "--so-pin", "87654321"], &script);
    assert_eq!(o.status.code(), Some(7), "the command's status: {}", show(&o));
    let got = std::fs::read_to_string(&seen).unwrap();
    let var = |name: &str| {
        got.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name}: {got}"))
            .to_string()
    };
    assert_eq!(var("TESSERA_MODE"), "approved", "the default mode");
    assert_eq!(var("PKCS11_MODULE"), std::fs::canonicalize(module_path()).unwrap().to_str().unwrap());
    assert_eq!(var("TESSERA_TOKEN_LABEL"), "ci-token");
    assert_eq!(var("TESSERA_USER_PIN"), "654321");
    assert_eq!(var("TESSERA_SO_PIN"), "87654321");
    assert!(got.contains("Label:            ci-token"), "the token is made: {got}");
    assert!(got.contains("Mode:               approved") && got.contains("State:              operational"), "{got}");
    let conf = PathBuf::from(var("TESSERA_CONF"));
    assert!(conf.starts_with(std::env::temp_dir()), "{}", conf.display());
    assert!(!conf.parent().unwrap().exists(), "the throwaway store is removed: {}", conf.display());

    // A command killed by a signal: 128 + its number, as a shell reports it.
    let o = run(&["--mode", "non-approved"], "kill -TERM $$");
    assert_eq!(o.status.code(), Some(128 + 15), "{}", show(&o));
    // A command that does not exist: the tool says so and fails.
    let o = Command::new(util_path())
        .args(["run", "--", "/nonexistent/tests"])
        .env("PATH", util_path().parent().unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("cannot run /nonexistent/tests"), "{}", show(&o));
}

/// `--mode both`: the command in each mode, its own token each time, a table, and the first
/// failing status.
#[test]
fn run_in_both_modes_prints_the_table_and_fails_with_the_failing_mode() {
    let o = run(
        &["--mode", "both"],
        "echo \"ran in $TESSERA_MODE with $TESSERA_CONF\"; test \"$TESSERA_MODE\" = non-approved || exit 3",
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let (out, err) = (stdout(&o), stderr(&o));
    let confs: Vec<&str> = out.lines().filter_map(|l| l.split(" with ").nth(1)).collect();
    assert!(out.starts_with("ran in approved") && out.contains("ran in non-approved"), "{}", show(&o));
    assert!(confs.len() == 2 && confs[0] != confs[1], "a store of its own for each mode: {out}");
    assert!(err.contains("| mode | exit status | time |"), "{}", show(&o));
    assert!(err.contains("| approved | 3 | ") && err.contains("| non-approved | 0 | "), "{}", show(&o));
    assert!(err.contains("passes in the non-approved mode only"), "{}", show(&o));

    let o = run(&["--mode", "both"], "true");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stderr(&o).contains("audit log records no operation outside the approved mode"), "{}", show(&o));
    assert!(stderr(&o).contains("| approved | 0 | ") && stderr(&o).contains("| non-approved | 0 | "), "{}", show(&o));
}

/// `--mode both` audits the non-approved run and lists, with counts, what it did that the approved
/// mode does not approve: here RSA-1024 key generation, and SHA-1 signatures made twice; the
/// approved SHA-256 digest is not listed.
#[test]
fn run_in_both_modes_counts_the_non_approved_operations() {
    if !have_or_skip("pkcs11-tool", "counting a command's non-approved operations") {
        return;
    }
    let script = "cd \"$(dirname \"$TESSERA_CONF\")\"; echo data > m; \
        p11() { pkcs11-tool --module \"$PKCS11_MODULE\" --login --pin \"$TESSERA_USER_PIN\" \"$@\" >/dev/null 2>&1; }; \
        p11 --keypairgen --key-type rsa:1024 --id 01 || exit 5; \
        p11 --sign -m SHA1-RSA-PKCS --id 01 -i m -o s1 && p11 --sign -m SHA1-RSA-PKCS --id 01 -i m -o s2 && \
        p11 -m SHA256 --hash -i m -o h";
    let o = run(&["--mode", "both"], script);
    assert_eq!(o.status.code(), Some(5), "the approved mode refuses RSA-1024: {}", show(&o));
    let e = stderr(&o);
    assert!(e.contains("| approved | 5 | ") && e.contains("| non-approved | 0 | "), "{}", show(&o));
    assert!(e.contains("| mechanism | operation | count |"), "{}", show(&o));
    assert!(e.contains("| CKM_SHA1_RSA_PKCS | sign | 2 |"), "{}", show(&o));
    assert!(e.contains("| CKM_RSA_PKCS_KEY_PAIR_GEN | generate_pair | 1 |"), "{}", show(&o));
    assert!(!e.contains("CKM_SHA256 "), "an approved digest is not listed: {}", show(&o));
}

/// An unsealed library: `run` in the approved mode cannot make its token and says why and what
/// to run; the command does not run.
#[test]
fn run_refuses_an_unsealed_library_in_the_approved_mode() {
    let dir = tempfile::tempdir().unwrap();
    let lib = std::fs::canonicalize(dir.path()).unwrap().join("libtessera_pkcs11.so");
    write_unsealed(&module_path(), &lib);
    let marker = dir.path().join("ran");
    let o = Command::new(util_path())
        .args(["run", "--module"])
        .arg(&lib)
        .args(["--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let e = stderr(&o);
    assert!(e.contains("the approved mode's token could not be made"), "{}", show(&o));
    assert!(e.contains(&format!("tessera-util --seal {}", lib.display())), "{}", show(&o));
    assert!(!marker.exists(), "the command did not run");
}

/// A YAML file of `examples/ci/`, parsed.
fn yaml(name: &str) -> yaml_rust2::Yaml {
    let text = std::fs::read_to_string(root().join("examples/ci").join(name)).unwrap();
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 1, "{name}: one document");
    docs.remove(0)
}

/// The shell lines of the examples that run the project's tests (the install steps are run by
/// the package test, which installs the package they download).
fn example_test_steps() -> Vec<(String, String)> {
    let gh = yaml("github-actions.yml");
    let steps = gh["jobs"]["tessera"]["steps"].as_vec().expect("jobs.tessera.steps");
    assert!(gh["on"].as_vec().is_some(), "the workflow's triggers");
    let named = |n: &str| steps.iter().find(|s| s["name"].as_str() == Some(n)).unwrap_or_else(|| panic!("step {n}"));
    assert!(named("Install Tessera")["run"].as_str().unwrap().contains("$TESSERA_DEB_URL"));
    assert!(gh["jobs"]["tessera"]["env"]["TESSERA_DEB_URL"].as_str().is_some());
    let mut lines =
        vec![("GitHub Actions".to_string(), named("Run the tests in both modes")["run"].as_str().unwrap().to_string())];
    let gl = yaml("gitlab-ci.yml");
    let job = &gl["pkcs11-tests"];
    assert!(job["image"].as_str().is_some() && job["variables"]["TESSERA_DEB_URL"].as_str().is_some(), "{job:?}");
    let before: Vec<&str> = job["before_script"].as_vec().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(before.iter().any(|l| l.contains("/tmp/tessera.deb")), "{before:?}");
    for l in job["script"].as_vec().expect("script") {
        lines.push(("GitLab CI".to_string(), l.as_str().unwrap().to_string()));
    }
    for (_, l) in &lines {
        assert!(l.contains("tessera-util run --mode both -- ./ci/pkcs11-tests.sh"), "{l}");
    }
    lines
}

/// The examples' install steps, which download the package from `TESSERA_DEB_URL` and install it
/// (GitHub: the step "Install Tessera"; GitLab: the `before_script` lines that name the package,
/// the others install the image's curl).
fn example_install_steps() -> Vec<(String, String)> {
    let gh = yaml("github-actions.yml");
    let steps = gh["jobs"]["tessera"]["steps"].as_vec().expect("jobs.tessera.steps");
    let install = steps.iter().find(|s| s["name"].as_str() == Some("Install Tessera")).expect("the install step");
    let gl = yaml("gitlab-ci.yml");
    let before: Vec<&str> =
        gl["pkcs11-tests"]["before_script"].as_vec().unwrap().iter().filter_map(|l| l.as_str()).collect();
    let named: Vec<&str> = before.into_iter().filter(|l| l.contains("tessera")).collect();
    assert_eq!(named.len(), 2, "{named:?}");
    vec![
        ("GitHub Actions".to_string(), install["run"].as_str().unwrap().to_string()),
        ("GitLab CI".to_string(), named.join("\n")),
    ]
}

/// A project whose `ci/pkcs11-tests.sh` signs with a key pair of `key_type` through pkcs11-tool,
/// on the token `tessera-util run` made.
fn project(key_type: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ci")).unwrap();
    let script = dir.path().join("ci/pkcs11-tests.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\n\
             p11() {{ pkcs11-tool --module \"$PKCS11_MODULE\" --token-label \"$TESSERA_TOKEN_LABEL\" --login --pin \"$TESSERA_USER_PIN\" \"$@\"; }}\n\
             echo 'the project signs' > msg\n\
             p11 --keypairgen --key-type {key_type} --id 01 --label ci-key >/dev/null\n\
             p11 --sign --id 01 -m {mech} -i msg -o sig\n\
             test -s sig\n",
            mech = if key_type.starts_with("rsa") { "SHA256-RSA-PKCS" } else { "ECDSA-SHA256" }
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

/// Runs one shell step of an example in `dir`, with the build under test's `tessera-util` first
/// on the PATH (the library beside it).
fn step(line: &str, dir: &Path) -> Output {
    let path = format!("{}:{}", util_path().parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    Command::new("bash").args(["-euo", "pipefail", "-c", line]).current_dir(dir).env("PATH", path).output().unwrap()
}

#[test]
fn ci_examples_parse_and_their_steps_run() {
    let steps = example_test_steps();
    assert_eq!(steps.len(), 2, "{steps:?}");
    if !have_or_skip("pkcs11-tool", "running the CI examples' steps") {
        return;
    }
    let beside = util_path().parent().unwrap().join("libtessera_pkcs11.so");
    if !beside.exists() {
        println!("SKIP running the CI examples' steps: no library beside {}", util_path().display());
        return;
    }
    for (ci, line) in &steps {
        // Tests that pass in both modes (P-256).
        let p = project("EC:prime256v1");
        let o = step(line, p.path());
        assert_eq!(o.status.code(), Some(0), "{ci}: {line}: {}", show(&o));
        let e = stderr(&o);
        assert!(e.contains("| approved | 0 | ") && e.contains("| non-approved | 0 | "), "{ci}: {}", show(&o));
        // Tests that use RSA-1024 keys: they fail in the approved mode only, and the job fails.
        let p = project("rsa:1024");
        let o = step(line, p.path());
        assert_ne!(o.status.code(), Some(0), "{ci}: {}", show(&o));
        let e = stderr(&o);
        assert!(e.contains("| approved | 1 | ") && e.contains("| non-approved | 0 | "), "{ci}: {}", show(&o));
        assert!(e.contains("CKR_KEY_SIZE_RANGE"), "{ci}: the refusal is in the log: {}", show(&o));
    }
}

// ---- The Debian package ----

/// The packaged library's path: the system's PKCS#11 directory for its multiarch triplet.
fn packaged() -> String {
    let mut c = Command::new("dpkg-architecture");
    c.arg("-qDEB_HOST_MULTIARCH");
    format!("/usr/lib/{}/pkcs11/libtessera_pkcs11.so", ok(c).trim())
}
const USER: &str = "tessera-pkgtest";

/// A command as an installed system runs it: no Tessera variable, a home without a Tessera
/// configuration (so the system's, `/etc/tessera/tessera.conf`, is read), the system PATH.
fn system(program: &str, args: &[&str], home: &Path) -> Command {
    let mut c = Command::new(program);
    c.args(args).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("HOME", home);
    c
}

fn ok(mut c: Command) -> String {
    let o = c.output().unwrap_or_else(|e| panic!("{}: {e}", describe(&c)));
    assert!(o.status.success(), "{}: {}", describe(&c), show(&o));
    stdout(&o)
}

/// Runs `c` as the unprivileged member of the `tessera` group.
fn as_member(args: &[&str], home: &Path) -> Command {
    let mut all = vec!["-u", USER, "--", "env", "-i", "PATH=/usr/bin:/bin"];
    let h = format!("HOME={}", home.display());
    all.push(&h);
    all.extend_from_slice(args);
    let mut c = Command::new("runuser");
    c.args(&all);
    c
}

fn dpkg(args: &[&str]) {
    let mut c = Command::new("dpkg");
    c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    ok(c);
}

#[test]
fn debian_package_installs_a_system_module() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP the Debian package test: it installs a package and needs root");
        return;
    }
    for tool in ["dpkg", "dpkg-architecture", "runuser", "useradd", "p11-kit", "pkcs11-tool", "man"] {
        if !have_or_skip(tool, "the Debian package test") {
            return;
        }
    }
    let release = target_dir().join("release");
    for built in ["libtessera_pkcs11.so", "tessera-util", "tessera-audit"] {
        if !release.join(built).exists() {
            println!(
                "SKIP the Debian package test: {} is not built (tests/run-all.sh builds it)",
                release.join(built).display()
            );
            return;
        }
    }
    // Build: the release build as it is (sealed already by the suite, sealed here otherwise).
    let packaged = packaged();
    let packaged = packaged.as_str();
    let t = std::time::Instant::now();
    let mut c = Command::new("bash");
    c.arg(root().join("module/packaging/build-deb.sh")).env("TESSERA_PREBUILT", "1");
    let out = ok(c);
    let deb =
        PathBuf::from(out.lines().rev().find(|l| l.trim_end().ends_with(".deb")).expect("the package's path").trim());
    println!("package built in {:.1} s: {}", t.elapsed().as_secs_f64(), deb.display());
    let contents = ok({
        let mut c = Command::new("dpkg-deb");
        c.arg("--contents").arg(&deb);
        c
    });
    let library_entry = format!(".{packaged}");
    for f in [
        library_entry.as_str(),
        "./usr/bin/tessera-util",
        "./usr/bin/tessera-audit",
        "./usr/share/p11-kit/modules/tessera.module",
        "./etc/tessera/tessera.conf",
        "./usr/share/man/man1/tessera-util.1.gz",
        "./usr/share/doc/tessera/copyright",
        "./usr/share/doc/tessera/integrity.txt",
        "./usr/share/bash-completion/completions/tessera-util",
    ] {
        assert!(contents.contains(f), "{f} in the package: {contents}");
    }
    let conffiles = ok({
        let mut c = Command::new("dpkg-deb");
        c.args(["--info"]).arg(&deb).arg("conffiles");
        c
    });
    assert_eq!(conffiles.trim(), "/etc/tessera/tessera.conf");
    let field = |name: &str| {
        let mut c = Command::new("dpkg-deb");
        c.arg("--field").arg(&deb).arg(name);
        ok(c).trim().to_string()
    };
    assert_eq!(field("Maintainer"), "Tessera developers <tessera@localhost>");
    let mut arch = Command::new("dpkg-architecture");
    arch.arg("-qDEB_HOST_ARCH");
    assert_eq!(field("Architecture"), ok(arch).trim());
    assert!(field("Depends").contains("libc6"), "dpkg-shlibdeps's dependencies: {}", field("Depends"));

    let t = std::time::Instant::now();
    // man-db rebuilds its index at the end of every dpkg run that touches /usr/share/man (1.6 s
    // of CPU each, measured; this test runs dpkg seven times) unless its auto-update flag file is
    // absent. The index is the system's cache, not the package's: `man tessera-util` below finds
    // the page without it. The flag is put back when the test ends, however it ends (declared
    // before the purge guard, so it is put back after the purge).
    struct ManDbIndexPaused(Option<PathBuf>);
    impl Drop for ManDbIndexPaused {
        fn drop(&mut self) {
            if let Some(aside) = &self.0 {
                let _ = std::fs::rename(aside, MAN_DB_AUTO_UPDATE);
            }
        }
    }
    const MAN_DB_AUTO_UPDATE: &str = "/var/lib/man-db/auto-update";
    let aside = PathBuf::from(format!("{MAN_DB_AUTO_UPDATE}.tessera-test"));
    if aside.exists() && !Path::new(MAN_DB_AUTO_UPDATE).exists() {
        // Left aside by a run of this test that was killed: put back first.
        let _ = std::fs::rename(&aside, MAN_DB_AUTO_UPDATE);
    }
    let _man_db = ManDbIndexPaused(std::fs::rename(MAN_DB_AUTO_UPDATE, &aside).ok().map(|_| aside));
    dpkg(&["-i", deb.to_str().unwrap()]);
    // Whatever happens next, the package is purged at the end: its /etc/tessera/tessera.conf and
    // its p11-kit registration would change what every other test and program on this machine
    // loads. The tokens stay (purging leaves them), the test's own token is deleted below.
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = Command::new("dpkg").args(["-P", "tessera"]).output();
        }
    }
    let _purge = Purge;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::set_permissions(h, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The packaged library is the sealed build, byte for byte.
    assert_eq!(std::fs::read(packaged).unwrap(), std::fs::read(release.join("libtessera_pkcs11.so")).unwrap());
    let sealed = sealed_value(Path::new(packaged)).expect("the packaged library is sealed");
    // The package records the installed library's SHA-256 and its integrity value, which match it.
    let recorded = std::fs::read_to_string("/usr/share/doc/tessera/integrity.txt").unwrap();
    let sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(packaged).unwrap()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(recorded.contains(&format!("sha256 {sha256}  {}", &packaged[1..])), "{recorded}");
    assert!(recorded.contains(&format!("integrity-value {sealed}\n")), "{recorded}");
    let check = ok(system("sha256sum", &[packaged], h));
    assert!(check.starts_with(&sha256), "{check}");

    let info = ok(system("pkcs11-tool", &["--module", packaged, "--show-info"], h));
    assert!(info.contains("Tessera, non-approved, sealed"), "{info}");
    let modules = ok(system("p11-kit", &["list-modules"], h));
    assert!(
        modules.contains("\ntessera: libtessera_pkcs11.so") && modules.contains("Tessera, non-approved, sealed"),
        "{modules}"
    );
    let mut approved = system("pkcs11-tool", &["--module", packaged, "--show-info"], h);
    approved.env("TESSERA_MODE", "approved");
    assert!(ok(approved).contains("Tessera, approved mode, sealed"));
    let mut status = system("tessera-util", &["--status"], h);
    status.env("TESSERA_MODE", "approved");
    let st = ok(status);
    assert!(st.contains(&format!("Library:            {packaged} ")), "tessera-util finds the packaged library: {st}");
    assert!(st.contains("Mode:               approved") && st.contains("State:              operational"), "{st}");
    assert!(st.contains("Sealed:             yes"), "{st}");
    let mut man = system("man", &["tessera-util"], h);
    man.env("MANPAGER", "cat").env("MANWIDTH", "100");
    let page = ok(man);
    assert!(page.contains("tessera-util") && page.contains("--init-token") && page.contains("run"), "{page}");

    // A member of the tessera group, not root, initialises a token in the system store.
    let member = Command::new("id").arg(USER).output().unwrap();
    if !member.status.success() {
        let mut c = Command::new("useradd");
        c.args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", "tessera", USER]);
        ok(c);
    } else {
        let mut c = Command::new("usermod");
        c.args(["-a", "-G", "tessera", USER]);
        ok(c);
    }
    let label = format!("pkgtest-{}", std::process::id());
    let init = as_member(
        &["tessera-util", "--init-token", "--free", "--label", &label, "--so-pin", "12345678", "--pin", "123456"],
        h,
    );
    let o = ok(init);
    assert!(o.contains("The token has been initialized"), "{o}");
    let token_dirs = |label: &str| -> Vec<PathBuf> {
        let slots = ok(as_member(&["tessera-util", "--show-slots"], h));
        assert!(slots.contains(&format!("Label:            {label}")), "{slots}");
        std::fs::read_dir("/var/lib/tessera/tokens").unwrap().flatten().map(|e| e.path()).collect()
    };
    let before = token_dirs(&label);
    use std::os::unix::fs::MetadataExt;
    let tokens_meta = std::fs::metadata("/var/lib/tessera/tokens").unwrap();
    assert_eq!(tokens_meta.mode() & 0o7777, 0o2770, "the shared store's mode");
    let mine: Vec<_> = before.iter().filter(|p| std::fs::metadata(p).map(|m| m.uid() != 0).unwrap_or(false)).collect();
    assert!(!mine.is_empty(), "the member's token is the member's: {before:?}");

    // dpkg -r leaves the tokens; installing again finds them.
    dpkg(&["-r", "tessera"]);
    assert!(!Path::new(packaged).exists() && !Path::new("/usr/bin/tessera-util").exists());
    for p in &before {
        assert!(p.exists(), "{} survives the package's removal", p.display());
    }
    dpkg(&["-i", deb.to_str().unwrap()]);
    assert_eq!(token_dirs(&label), before, "the reinstalled package finds the same tokens");
    // The CI examples as they are: their install steps download and install the package (from a
    // file: URL here, `sudo` being this root shell), then their test step runs a project's tests
    // through the installed tessera-util, in both modes.
    let shim = tempfile::tempdir().unwrap();
    let sudo = shim.path().join("sudo");
    std::fs::write(&sudo, "#!/bin/sh\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&sudo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let tests = example_test_steps();
    for ((ci, install), (_, test)) in example_install_steps().iter().zip(&tests) {
        dpkg(&["-r", "tessera"]);
        let mut c = system("bash", &["-euo", "pipefail", "-c", install], h);
        c.env("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", shim.path().display()))
            .env("TESSERA_DEB_URL", format!("file://{}", deb.display()))
            .env("RUNNER_TEMP", shim.path())
            .env("DEBIAN_FRONTEND", "noninteractive");
        ok(c);
        assert!(Path::new(packaged).exists(), "{ci}: the install step installs the package");
        let p = project("EC:prime256v1");
        let mut c = system("bash", &["-euo", "pipefail", "-c", test], h);
        c.current_dir(p.path());
        let o = c.output().unwrap();
        assert!(o.status.success(), "{ci}: {test}: {}", show(&o));
        let e = stderr(&o);
        assert!(e.contains("| approved | 0 | ") && e.contains("| non-approved | 0 | "), "{ci}: {}", show(&o));
        assert!(e.contains("approved mode, token 'tessera-run'"), "{}", show(&o));
    }

    let o = ok(as_member(&["tessera-util", "--delete-token", "--token", &label], h));
    assert!(o.contains("has been deleted"), "{o}");
    println!("install, checks, removal, reinstall and the CI examples' installs in {:.1} s", t.elapsed().as_secs_f64());
}
