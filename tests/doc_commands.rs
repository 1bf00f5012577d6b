//! The documentation cannot drift from the program: every shell command shown in `README.md` and
//! `docs/*.md` is run here, and the reference tables that restate code are compared with it.
//!
//! A fenced block whose language is a shell (`sh`, `bash`, `shell`, `console`) carries one of two
//! markers in its info string:
//!
//! - ```` ```sh tested ```` — run here, with `bash -euo pipefail`, against a throwaway store.
//!   `requires=A,B` after it names what the block needs: a command on the `PATH`, `py:MODULE` (a
//!   module `python3` imports), `file:PATH` (a file that exists) or `nonroot` (a user other than
//!   root). A block whose requirement is missing is skipped with a message, not failed.
//! - ```` ```sh not-run: REASON ```` — shown, not run (it installs system packages, needs root,
//!   builds for minutes…); the reason is required.
//!
//! A shell block with neither marker fails [`every_shell_block_is_marked`], and so does a fenced
//! block with no language at all, so a new command cannot go untested by omission.
//!
//! How the blocks run ([`run_file`]): the blocks of one file run in order, in one throwaway
//! environment, so a later block may use what an earlier one made (a token, a file): `HOME` is a
//! new temporary directory (no `XDG_*`), `TESSERA_CONF` names `$HOME/.config/tessera/tessera.conf`,
//! whose only line puts the token store in `$HOME/.local/share/tessera/tokens` (the default place
//! for that `HOME`), the working directory is a new empty directory, `PATH` starts with the
//! directory of the `tessera-util` under test (so `tessera-util`, `tessera-sign`,
//! `tessera-migrate` and `tessera-audit` are the built ones, and `tessera-util` finds the library
//! beside it), `TESSERA_MODULE` is the library under test, `TESSERA_SRC` the source checkout, and
//! standard input is empty (a command that would prompt fails instead of waiting). The mode is
//! the suite's (`TESSERA_MODE`): a block that needs the non-approved mode says so itself
//! (`export TESSERA_MODE=non-approved`), as a reader would have to.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tessera_tests::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("source root")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// README.md and every docs/*.md, sorted.
fn doc_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    v.sort();
    v.insert(0, root().join("README.md"));
    v
}

/// One fenced block: where it starts, its info string and its text.
#[derive(Debug)]
struct Block {
    line: usize,
    info: String,
    body: String,
}

/// The fenced blocks of a Markdown text (``` or ~~~ fences, at least three; indented up to three
/// spaces).
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(String, Block)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let fence: String = trimmed.chars().take_while(|&c| c == '`' || c == '~').collect();
        match &mut open {
            None if indent <= 3 && fence.len() >= 3 && fence.chars().all(|c| c == fence.chars().next().unwrap()) => {
                let info = trimmed[fence.len()..].trim().to_string();
                open = Some((fence, Block { line: n + 1, info, body: String::new() }));
            }
            None => {}
            Some((f, _))
                if trimmed.starts_with(f.as_str()) && trimmed.trim_end().chars().all(|c| c == '`' || c == '~') =>
            {
                out.push(open.take().unwrap().1);
            }
            Some((_, b)) => {
                b.body.push_str(line);
                b.body.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unclosed fenced block: {:?}", open.map(|(_, b)| b.line));
    out
}

const SHELLS: [&str; 4] = ["sh", "bash", "shell", "console"];

/// What a block's info string asks.
#[derive(Debug, PartialEq)]
enum Marker {
    /// Not a shell block.
    Other,
    /// A shell block to run, with its requirements.
    Tested(Vec<String>),
    /// A shell block shown only, with the reason.
    NotRun(String),
    /// A shell block without a marker, or a block without a language: an error.
    Unmarked,
}

fn marker(info: &str) -> Marker {
    let mut words = info.split_whitespace();
    let Some(lang) = words.next() else { return Marker::Unmarked };
    if !SHELLS.contains(&lang) {
        return Marker::Other;
    }
    let rest: Vec<&str> = words.collect();
    match rest.first() {
        Some(&"tested") => {
            let mut needs = Vec::new();
            for w in &rest[1..] {
                match w.strip_prefix("requires=") {
                    Some(list) => needs.extend(list.split(',').filter(|s| !s.is_empty()).map(String::from)),
                    None => return Marker::Unmarked,
                }
            }
            Marker::Tested(needs)
        }
        Some(&"not-run:") => {
            let reason = rest[1..].join(" ");
            if reason.split_whitespace().count() < 3 {
                Marker::Unmarked
            } else {
                Marker::NotRun(reason)
            }
        }
        _ => Marker::Unmarked,
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// Every shell block is marked `tested` or `not-run: REASON`, and every fenced block names its
/// language; the README has at least one tested block, and every file with commands too.
#[test]
fn every_shell_block_is_marked() {
    let mut bad = Vec::new();
    let mut tested = 0;
    for f in doc_files() {
        for b in blocks(&read(&f)) {
            match marker(&b.info) {
                Marker::Unmarked => bad.push(format!(
                    "{}:{}: ```{} — a shell block needs `tested [requires=…]` or `not-run: REASON` (three words \
                     at least) after its language; any other block needs a language (text, ini, c …)",
                    rel(&f),
                    b.line,
                    b.info
                )),
                Marker::Tested(_) => tested += 1,
                _ => {}
            }
        }
    }
    assert!(bad.is_empty(), "unmarked blocks:\n{}", bad.join("\n"));
    assert!(tested >= 10, "only {tested} tested blocks: the markers are not being read");
}

/// The marker rules themselves, so that a change to them cannot silently pass everything.
#[test]
fn markers_are_read_as_documented() {
    assert_eq!(marker("sh tested"), Marker::Tested(vec![]));
    assert_eq!(
        marker("bash tested requires=java,py:PyKCS11"),
        Marker::Tested(vec!["java".into(), "py:PyKCS11".into()])
    );
    assert_eq!(marker("sh not-run: needs root and apt"), Marker::NotRun("needs root and apt".into()));
    assert_eq!(marker("sh not-run: root"), Marker::Unmarked, "a reason of one word");
    assert_eq!(marker("sh"), Marker::Unmarked);
    assert_eq!(marker("console tsted"), Marker::Unmarked);
    assert_eq!(marker("sh tested java"), Marker::Unmarked);
    assert_eq!(marker(""), Marker::Unmarked);
    assert_eq!(marker("text"), Marker::Other);
    let b = blocks("a\n```sh tested\necho 1\n```\n\n````text\n```\n````\n");
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].line, b[0].info.as_str(), b[0].body.as_str()), (2, "sh tested", "echo 1\n"));
    assert_eq!(b[1].body, "```\n");
}

/// Whether a block's requirement is met; `Err` says what is missing.
fn requirement(need: &str, env: &[(String, String)]) -> Result<(), String> {
    if need == "nonroot" {
        let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        return match uid.as_deref() {
            Ok("0") => Err("it must run as a user other than root".into()),
            _ => Ok(()),
        };
    }
    if let Some(path) = need.strip_prefix("file:") {
        return if Path::new(path).exists() { Ok(()) } else { Err(format!("{path} is absent")) };
    }
    let check = match need.strip_prefix("py:") {
        Some(m) => format!("python3 -c 'import {m}' 2>/dev/null"),
        None => format!("command -v {need} >/dev/null"),
    };
    let ok = Command::new("bash")
        .arg("-c")
        .arg(&check)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!("{need} is not installed"))
    }
}

/// Runs the tested blocks of `file` in order in one throwaway environment (see the module
/// documentation). Gives the failures; prints what it skips.
fn run_file(file: &Path) -> Vec<String> {
    let text = read(file);
    let tested: Vec<(Block, Vec<String>)> = blocks(&text)
        .into_iter()
        .filter_map(|b| match marker(&b.info) {
            Marker::Tested(needs) => Some((b, needs)),
            _ => None,
        })
        .collect();
    if tested.is_empty() {
        return Vec::new();
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let work = tmp.path().join("work");
    let conf = home.join(".config/tessera/tessera.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(&conf, format!("directories.tokendir = {}/.local/share/tessera/tokens\n", home.display())).unwrap();
    let util = util_path().canonicalize().expect("tessera-util");
    let bin = util.parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut env: Vec<(String, String)> = vec![
        ("HOME".into(), home.display().to_string()),
        ("PATH".into(), path),
        ("TESSERA_CONF".into(), conf.display().to_string()),
        ("TESSERA_MODULE".into(), module_path().canonicalize().expect("module").display().to_string()),
        ("TESSERA_SRC".into(), root().display().to_string()),
        ("NO_COLOR".into(), "1".into()),
    ];
    if let Ok(m) = std::env::var("TESSERA_MODE") {
        env.push(("TESSERA_MODE".into(), m));
    }
    let mut failures = Vec::new();
    for (n, (b, needs)) in tested.iter().enumerate() {
        let here = format!("{}:{}", rel(file), b.line);
        if let Some(why) = needs.iter().find_map(|need| requirement(need, &env).err()) {
            println!("SKIP {here}: {why}");
            continue;
        }
        let script = tmp.path().join(format!("block-{n}.sh"));
        std::fs::write(&script, &b.body).unwrap();
        let started = std::time::Instant::now();
        let mut c = Command::new("timeout");
        c.args(["--kill-after=10", "600", "bash", "-euo", "pipefail"]).arg(&script);
        c.env_clear().envs(env.iter().map(|(k, v)| (k, v))).current_dir(&work).stdin(Stdio::null());
        // What a caller's environment may hold that would point a block elsewhere is not passed:
        // env_clear() above, with only these kept.
        for keep in ["LANG", "TERM", "USER", "LOGNAME", "TMPDIR", "CARGO_TARGET_DIR"] {
            if let Ok(v) = std::env::var(keep) {
                c.env(keep, v);
            }
        }
        let out = c.output().unwrap_or_else(|e| panic!("{here}: cannot run bash: {e}"));
        println!("ran {here} in {:.1} s", started.elapsed().as_secs_f64());
        if !out.status.success() {
            failures.push(format!("{here}: ```{}\n{}\n{}", b.info, b.body, show(&out)));
            // Later blocks of the file may build on this one: stop here.
            break;
        }
    }
    failures
}

/// Every `tested` block of README.md and docs/*.md runs and exits 0.
#[test]
fn every_tested_block_runs() {
    let mut failures = Vec::new();
    for f in doc_files() {
        failures.extend(run_file(&f));
    }
    assert!(failures.is_empty(), "{} file(s) with a failing block:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// The README stays a five-minute read: under 1,500 words, code included (as `wc -w` counts).
#[test]
fn readme_is_under_1500_words() {
    let words = read(&root().join("README.md")).split_whitespace().count();
    assert!(words < 1500, "README.md has {words} words; the limit is 1,499: move the detail into docs/");
}

/// CI runs exactly the README's test command, and the README's two commands are the scripts.
#[test]
fn ci_runs_the_readme_command() {
    let readme = read(&root().join("README.md"));
    let ci = read(&root().join(".ci/run"));
    assert!(ci.contains("exec bash tests/run-all.sh"), ".ci/run no longer runs tests/run-all.sh:\n{ci}");
    for cmd in ["bash tests/demo.sh", "bash tests/run-all.sh"] {
        assert!(readme.contains(cmd), "README.md does not show `{cmd}`");
        let script = cmd.trim_start_matches("bash ");
        assert!(root().join(script).is_file(), "README.md shows `{cmd}`, but {script} is absent");
    }
}

/// Files that another change adds; a link to them is allowed before they exist.
const WRITTEN_ELSEWHERE: [&str; 2] = ["docs/backup.md", "docs/drop-in.md"];

/// Every relative link of README.md and docs/*.md names a file of the checkout.
#[test]
fn relative_links_resolve() {
    let mut bad = Vec::new();
    for f in doc_files() {
        let text = read(&f);
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let path = f.parent().unwrap().join(target);
            let shown = rel(&path.canonicalize().unwrap_or_else(|_| normalise(&path)));
            if !path.exists() && !WRITTEN_ELSEWHERE.contains(&shown.as_str()) {
                bad.push(format!("{}: link to {target}, which does not exist", rel(&f)));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The keys `module/src/config.rs` accepts: the string patterns of its `match key` arms.
fn config_keys() -> Vec<String> {
    let code = read(&root().join("module/src/config.rs"));
    let mut keys = Vec::new();
    for line in code.lines() {
        let l = line.trim();
        let Some(rest) = l.strip_prefix('"') else { continue };
        let Some((key, after)) = rest.split_once('"') else { continue };
        if after.trim_start().starts_with("=>")
            && key.contains('.')
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
        {
            keys.push(key.to_string());
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// docs/configuration.md has a row for every key the configuration parser accepts, and no row
/// for a key it does not.
#[test]
fn configuration_reference_lists_every_key() {
    let keys = config_keys();
    assert!(keys.len() >= 25 && keys.contains(&"slots.mechanisms".to_string()), "keys read from config.rs: {keys:?}");
    let doc = read(&root().join("docs/configuration.md"));
    let mut documented: Vec<String> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l[3..].split('`').next().map(String::from))
        .filter(|k| k.contains('.') && !k.contains(' '))
        .collect();
    documented.sort();
    documented.dedup();
    assert_eq!(documented, keys, "docs/configuration.md's key rows differ from the keys module/src/config.rs accepts");
}

/// One `[[rule]]` of a policy file, the fields the approved-mode guide shows.
#[derive(Debug, Default, Clone)]
struct Rule {
    mechanism: String,
    functions: Vec<String>,
    key_bits: Option<Vec<u64>>,
    min_key_bits: Option<u64>,
    curves: Option<Vec<String>>,
    condition: Option<String>,
    rationale: String,
}

fn policy(file: &str) -> Vec<Rule> {
    let text = read(&root().join("policy").join(file));
    let mut out = Vec::new();
    for block in text.split("[[rule]]").skip(1) {
        let mut r = Rule::default();
        for line in block.lines() {
            let Some((k, v)) = line.split_once(" = ") else { continue };
            let json = |what: &str| -> serde_json::Value {
                serde_json::from_str(v.trim()).unwrap_or_else(|e| panic!("policy/{file}: {what} = {v}: {e}"))
            };
            match k.trim() {
                "mechanism" => r.mechanism = json(k).as_str().unwrap().to_string(),
                "functions" => r.functions = serde_json::from_value(json(k)).unwrap(),
                "key_bits" => r.key_bits = Some(serde_json::from_value(json(k)).unwrap()),
                "min_key_bits" => r.min_key_bits = Some(json(k).as_u64().unwrap()),
                "curves" => r.curves = Some(serde_json::from_value(json(k)).unwrap()),
                "condition" => r.condition = Some(json(k).as_str().unwrap().to_string()),
                "rationale" => r.rationale = json(k).as_str().unwrap().to_string(),
                other => panic!("policy/{file}: unknown field {other}"),
            }
        }
        out.push(r);
    }
    out
}

/// The two generated tables of docs/approved-mode.md, from `policy/`.
fn approved_mode_tables() -> (String, String) {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut refused = String::from("| mechanism | functions | why the approved mode refuses it |\n|---|---|---|\n");
    for r in policy("non-approved.toml") {
        refused.push_str(&format!("| `{}` | {} | {} |\n", r.mechanism, r.functions.join(", "), cell(&r.rationale)));
    }
    let mut limited =
        String::from("| mechanism | functions | approved only with | condition | standard |\n|---|---|---|---|---|\n");
    for r in policy("approved.toml") {
        let mut limits = Vec::new();
        if let Some(b) = &r.key_bits {
            limits.push(format!("keys of {} bits", b.iter().map(u64::to_string).collect::<Vec<_>>().join("/")));
        }
        if let Some(b) = r.min_key_bits {
            limits.push(format!("keys of {b} bits or more"));
        }
        if let Some(c) = &r.curves {
            limits.push(c.join(", "));
        }
        if limits.is_empty() && r.condition.is_none() {
            continue;
        }
        let limits = if limits.is_empty() { "—".to_string() } else { limits.join("; ") };
        let condition = r.condition.as_ref().map(|c| format!("`{c}`")).unwrap_or_else(|| "—".into());
        limited.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            r.mechanism,
            r.functions.join(", "),
            limits,
            condition,
            cell(&r.rationale)
        ));
    }
    (refused, limited)
}

const REFUSED_BEGIN: &str = "<!-- generated from policy/non-approved.toml: begin -->\n";
const REFUSED_END: &str = "<!-- generated from policy/non-approved.toml: end -->";
const LIMITED_BEGIN: &str = "<!-- generated from policy/approved.toml: begin -->\n";
const LIMITED_END: &str = "<!-- generated from policy/approved.toml: end -->";

fn between<'a>(doc: &'a str, begin: &str, end: &str) -> &'a str {
    let s = doc.find(begin).unwrap_or_else(|| panic!("docs/approved-mode.md lacks {begin:?}")) + begin.len();
    let e = doc[s..].find(end).unwrap_or_else(|| panic!("docs/approved-mode.md lacks {end:?}")) + s;
    &doc[s..e]
}

/// docs/approved-mode.md's tables of what the approved mode refuses and what it approves only
/// within limits are exactly `policy/`'s rules. `TESSERA_WRITE_DOCS=1` rewrites them from the
/// policy instead of comparing (then review and commit the change).
#[test]
fn approved_mode_guide_matches_policy() {
    let path = root().join("docs/approved-mode.md");
    let doc = read(&path);
    let (refused, limited) = approved_mode_tables();
    if std::env::var_os("TESSERA_WRITE_DOCS").is_some() {
        let mut new = doc.clone();
        for (begin, end, table) in [(REFUSED_BEGIN, REFUSED_END, &refused), (LIMITED_BEGIN, LIMITED_END, &limited)] {
            let old = between(&new, begin, end).to_string();
            new = new.replacen(&format!("{begin}{old}{end}"), &format!("{begin}{table}{end}"), 1);
        }
        std::fs::write(&path, new).unwrap();
        println!("rewrote {}", path.display());
        return;
    }
    assert_eq!(
        between(&doc, REFUSED_BEGIN, REFUSED_END),
        refused,
        "docs/approved-mode.md's refusals differ from policy/non-approved.toml; regenerate them with \
         TESSERA_WRITE_DOCS=1 cargo test --release -p tessera-tests --test doc_commands approved_mode_guide"
    );
    assert_eq!(
        between(&doc, LIMITED_BEGIN, LIMITED_END),
        limited,
        "docs/approved-mode.md's limits differ from policy/approved.toml; regenerate them with \
         TESSERA_WRITE_DOCS=1 cargo test --release -p tessera-tests --test doc_commands approved_mode_guide"
    );
}

/// The `cryptoki` recipe of docs/clients.md, as it is shown there (between the markers; the test
/// below compares the two).
fn cryptoki_recipe() -> Result<(), Box<dyn std::error::Error>> {
    // recipe: begin
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let pkcs11 = Pkcs11::new(std::env::var("TESSERA_MODULE")?)?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = pkcs11
        .get_slots_with_token()?
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).is_ok_and(|t| t.label() == "mytoken"))
        .ok_or("no token mytoken")?;
    let session = pkcs11.open_rw_session(slot)?;
    session.login(UserType::User, Some(&AuthPin::new("123456".into())))?;
    let p256 = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (public, private) = session.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[Attribute::Token(true), Attribute::EcParams(p256), Attribute::Verify(true)],
        &[Attribute::Token(true), Attribute::Sign(true), Attribute::Sensitive(true)],
    )?;
    let signature = session.sign(&Mechanism::EcdsaSha256, private, b"hello")?;
    session.verify(&Mechanism::EcdsaSha256, public, b"hello", &signature)?;
    // recipe: end
    Ok(())
}

/// docs/clients.md's Rust recipe is [`cryptoki_recipe`] word for word, and it runs: on a token
/// `mytoken` made by `tessera-util`, in this process.
#[test]
fn the_cryptoki_recipe_runs() {
    let own = include_str!("doc_commands.rs");
    let begin = "    // recipe: begin\n";
    let s = own.find(begin).unwrap() + begin.len();
    let e = own[s..].find("    // recipe: end").unwrap() + s;
    let code: String = own[s..e].lines().map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l))).collect();
    let doc = read(&root().join("docs/clients.md"));
    let shown = blocks(&doc).into_iter().find(|b| b.info == "rust").expect("a rust block in docs/clients.md").body;
    assert_eq!(shown, code, "docs/clients.md's Rust recipe differs from cryptoki_recipe() in tests/doc_commands.rs");

    let _guard = lock();
    let env = Env::new("");
    let out = env
        .command(util_path())
        .args(["--init-token", "--free", "--label", "mytoken", "--so-pin", SO_PIN, "--pin", USER_PIN])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    env.activate();
    std::env::set_var("TESSERA_MODULE", module_path());
    cryptoki_recipe().expect("the recipe");
}

/// The messages of `tessera-util`'s source (`module/src/bin/tessera-util.rs` and `run.rs`): each
/// string literal of an `Err(…)` or `format!(…)` that reads as an error, cut at its first
/// placeholder.
fn util_messages() -> Vec<String> {
    let mut out = Vec::new();
    for file in ["module/src/bin/tessera-util.rs", "module/src/bin/tessera-util/run.rs"] {
        let code = read(&root().join(file));
        for (i, _) in code.match_indices('"') {
            let before = code[..i].trim_end();
            if !(before.ends_with("format!(") || before.ends_with("Err(") || before.ends_with("ok_or(")) {
                continue;
            }
            let Some(end) = code[i + 1..].find('"') else { continue };
            let literal = &code[i + 1..i + 1 + end];
            let text = literal.split('{').next().unwrap_or_default().trim();
            let error_like =
                ["could not", "cannot", "no ", "the ", "a slot", "a token"].iter().any(|p| text.starts_with(p));
            if error_like && text.len() >= 12 {
                out.push(text.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// docs/troubleshooting.md names every error message of `tessera-util` (the text before its first
/// placeholder), so a new message cannot go undocumented.
#[test]
fn troubleshooting_names_every_tessera_util_message() {
    let messages = util_messages();
    assert!(messages.len() >= 20, "messages read from tessera-util's source: {messages:?}");
    let doc = read(&root().join("docs/troubleshooting.md"));
    let missing: Vec<&String> = messages.iter().filter(|m| !doc.contains(m.as_str())).collect();
    assert!(missing.is_empty(), "docs/troubleshooting.md does not name these tessera-util messages: {missing:#?}");
}
