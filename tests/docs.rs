//! The security policy cannot drift from the code: its approved-algorithm table must list exactly
//! the rules of `policy/approved.toml` (and its non-approved table those of
//! `policy/non-approved.toml`), and its self-test table exactly the vectors of `kat-vectors/`.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(p: &str) -> String {
    std::fs::read_to_string(root().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// `(mechanism, functions)` of each rule in a policy file.
fn rules(file: &str) -> Vec<(String, String)> {
    let text = read(file);
    let mut out = Vec::new();
    let mut mech = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("mechanism = ") {
            mech = Some(v.trim_matches('"').to_string());
        }
        if let Some(v) = line.strip_prefix("functions = ") {
            let f: Vec<String> = serde_json::from_str(v).expect("functions list");
            out.push((mech.take().expect("mechanism before functions"), f.join(", ")));
        }
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
    let got: Vec<(String, String)> = table(&doc, "### 2.3").into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(got, want, "security-policy.md §2.3 differs from policy/approved.toml");
}

#[test]
fn non_approved_table_matches_policy() {
    let doc = read("security-policy.md");
    let want = rules("policy/non-approved.toml");
    let got: Vec<(String, String)> = table(&doc, "### 2.4").into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(got, want, "security-policy.md §2.4 differs from policy/non-approved.toml");
}

#[test]
fn self_test_table_matches_kat_vectors() {
    let doc = read("security-policy.md");
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
    let got: Vec<String> = table(&doc, "### 10.1").into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(got, want, "security-policy.md §10.1 differs from kat-vectors/");
}
