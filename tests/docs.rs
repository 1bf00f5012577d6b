//! The security policy cannot drift from the code: its approved-algorithm table must list exactly
//! the rules of `policy/approved.toml`, with their conditions (and its non-approved table those of
//! `policy/non-approved.toml`), its self-test table exactly the vectors of `kat-vectors/`, its
//! mapping of approved mechanisms to self-tests every mechanism of `policy/approved.toml` (naming
//! only known-answer tests that exist), and its SSP table exactly the SSPs the code names with an
//! `SSP:` tag.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(p: &str) -> String {
    std::fs::read_to_string(root().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// `(mechanism, functions, condition)` of each rule in a policy file (`—` for no condition).
fn rules(file: &str) -> Vec<(String, String, String)> {
    let text = read(file);
    let mut out: Vec<(String, String, String)> = Vec::new();
    for block in text.split("[[rule]]").skip(1) {
        let (mut mech, mut functions, mut condition) = (None, None, "—".to_string());
        for line in block.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("mechanism = ") {
                mech = Some(v.trim_matches('"').to_string());
            }
            if let Some(v) = line.strip_prefix("functions = ") {
                let f: Vec<String> = serde_json::from_str(v).expect("functions list");
                functions = Some(f.join(", "));
            }
            if let Some(v) = line.strip_prefix("condition = ") {
                condition = v.trim_matches('"').to_string();
            }
        }
        out.push((mech.expect("a rule's mechanism"), functions.expect("a rule's functions"), condition));
    }
    out
}

/// The rows of the Markdown table that follows `heading` in the security policy.
fn table(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("security-policy.md lacks {heading}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().trim_matches('`').to_string()).collect())
        .collect()
}

#[test]
fn approved_table_matches_policy() {
    let doc = read("security-policy.md");
    let want = rules("policy/approved.toml");
    let got: Vec<(String, String, String)> =
        table(&doc, "### 2.3").into_iter().map(|r| (r[0].clone(), r[1].clone(), r[3].clone())).collect();
    assert_eq!(
        got, want,
        "security-policy.md §2.3 (mechanism, functions, condition) differs from policy/approved.toml"
    );
}

#[test]
fn non_approved_table_matches_policy() {
    let doc = read("security-policy.md");
    let want: Vec<(String, String)> = rules("policy/non-approved.toml").into_iter().map(|(m, f, _)| (m, f)).collect();
    let got: Vec<(String, String)> = table(&doc, "### 2.4").into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(got, want, "security-policy.md §2.4 differs from policy/non-approved.toml");
}

/// The names of the known-answer tests of `kat-vectors/`, in file and vector order.
fn kat_names() -> Vec<String> {
    let mut want = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root().join("kat-vectors"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for t in v["vectors"].as_array().expect("vectors") {
            let prov = t["provenance"].as_str().unwrap_or("");
            assert!(!prov.is_empty(), "{}: {} has no provenance", f.display(), t["name"]);
            want.push(t["name"].as_str().expect("name").to_string());
        }
    }
    want
}

#[test]
fn self_test_table_matches_kat_vectors() {
    let doc = read("security-policy.md");
    let got: Vec<String> = table(&doc, "### 10.1").into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(got, kat_names(), "security-policy.md §10.1 differs from kat-vectors/");
}

/// The known-answer tests a cell names: each `KAT "name"`.
fn kats_named(cell: &str) -> Vec<String> {
    cell.split("KAT \"").skip(1).map(|rest| rest.split('"').next().unwrap_or("").to_string()).collect()
}

#[test]
fn every_approved_mechanism_is_mapped_to_its_self_tests() {
    let doc = read("security-policy.md");
    let rows = table(&doc, "### 10.5");
    let mapped: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    for (i, m) in mapped.iter().enumerate() {
        assert!(!mapped[..i].contains(m), "§10.5 maps {m} twice");
    }
    for (m, _, _) in rules("policy/approved.toml") {
        assert!(mapped.contains(&m), "{m} is approved (policy/approved.toml) but §10.5 does not map it to a self-test");
    }
    let kats = kat_names();
    for r in &rows {
        let tests = r.get(2).unwrap_or_else(|| panic!("§10.5 {}: no self-test column", r[0]));
        let named = kats_named(tests);
        assert!(
            !named.is_empty() || tests.contains("aws-lc") || tests.contains("PCT"),
            "§10.5 {}: names no self-test (a KAT \"name\", an aws-lc self-test or a PCT)",
            r[0]
        );
        for k in named {
            assert!(kats.contains(&k), "§10.5 {} names KAT \"{k}\", which kat-vectors/ does not have", r[0]);
        }
    }
}

/// Rows of the §9 SSP table for SSPs the code does not hold yet end with this; they have no tag.
const NOT_YET: &str = " (not yet in the code)";

/// Every `SSP: name` tag (a one-line doc comment at the definition of an SSP) in `module/src`,
/// with the file that holds it.
fn ssp_tags() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                for line in std::fs::read_to_string(&p).unwrap().lines() {
                    let l = line.trim_start();
                    if let Some(name) = l.strip_prefix("/// SSP: ").or_else(|| l.strip_prefix("//! SSP: ")) {
                        out.push((name.trim().to_string(), p.display().to_string()));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("module/src"), &mut out);
    walk(&root().join("audit/src"), &mut out);
    out
}

#[test]
fn ssp_table_matches_the_tags_in_the_code() {
    let doc = read("security-policy.md");
    let rows: Vec<String> = table(&doc, "### 9.4").into_iter().map(|r| r[0].clone()).collect();
    assert!(rows.len() >= 10, "§9.4 lists too few SSPs: {rows:?}");
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        assert!(seen.insert(r.clone()), "§9.4 lists {r} twice");
    }
    let tags = ssp_tags();
    for (name, file) in &tags {
        assert!(rows.contains(name), "{file} tags the SSP \"{name}\", which §9.4 of security-policy.md does not list");
    }
    for r in &rows {
        let tagged = tags.iter().any(|(n, _)| n == r);
        match r.strip_suffix(NOT_YET) {
            Some(name) => assert!(
                !tagged && !tags.iter().any(|(n, _)| n == name),
                "§9.4 says {name} is not yet in the code, but the code tags it: drop \"{NOT_YET}\" from its row"
            ),
            None => assert!(tagged, "§9.4 lists the SSP \"{r}\", but no `/// SSP: {r}` tag in module/src names it"),
        }
    }
}

/// §9.5 names exactly the approved mechanisms that make keys (a rule of `policy/approved.toml` with
/// generate, generate_pair, derive, unwrap, encapsulate or decapsulate), each once, and every SSP it
/// names is a row of §9.4.
#[test]
fn every_approved_key_making_mechanism_has_its_ssps() {
    let doc = read("security-policy.md");
    let mut want: Vec<String> = Vec::new();
    for (m, functions, _) in rules("policy/approved.toml") {
        let makes = functions
            .split(", ")
            .any(|f| matches!(f, "generate" | "generate_pair" | "derive" | "unwrap" | "encapsulate" | "decapsulate"));
        if makes && !want.contains(&m) {
            want.push(m);
        }
    }
    let rows = table(&doc, "### 9.5");
    let got: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(got, want, "security-policy.md §9.5 differs from the key-making rules of policy/approved.toml");
    let ssps: Vec<String> = table(&doc, "### 9.4").into_iter().map(|r| r[0].clone()).collect();
    for r in &rows {
        for ssp in r[1].split(", ") {
            assert!(ssps.iter().any(|s| s == ssp), "§9.5: {} makes \"{ssp}\", which §9.4 does not list", r[0]);
        }
    }
}
