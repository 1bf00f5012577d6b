//! Project Wycheproof vector files from `../shared/vectors/wycheproof/` (see `../shared/README.md`).

/// Loads one vector file by name (without `.json`); `None`, after printing why, when the
/// shared directory or the file is absent — the caller then skips.
pub fn load(name: &str) -> Option<serde_json::Value> {
    let Some(dir) = super::shared_dir() else {
        println!("SKIP {name}: ../shared is absent");
        return None;
    };
    let path = dir.join("vectors/wycheproof").join(format!("{name}.json"));
    match std::fs::read(&path) {
        Ok(b) => Some(serde_json::from_slice(&b).expect("valid Wycheproof JSON")),
        Err(e) => {
            println!("SKIP {name}: {}: {e}", path.display());
            None
        }
    }
}

/// Decodes a hex string field.
pub fn hex(v: &serde_json::Value) -> Vec<u8> {
    let s = v.as_str().unwrap_or("");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Per-file outcome: every `valid` case must pass, every `invalid` case must be rejected,
/// `acceptable` either way; a skip needs a reason.
#[derive(Default)]
pub struct Tally {
    pub name: String,
    pub passed: usize,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
}

impl Tally {
    pub fn new(name: &str) -> Tally {
        Tally { name: name.to_string(), ..Default::default() }
    }

    /// Records one case: `ok` is whether the module accepted/produced the expected result.
    /// `result` is the vector's "result" field.
    pub fn case(&mut self, tc_id: u64, result: &str, accepted: bool, matched: bool) {
        let good = match result {
            "valid" => accepted && matched,
            "invalid" => !accepted || !matched,
            _ => true,
        };
        if good {
            self.passed += 1;
        } else {
            self.failed.push(format!("tcId {tc_id} ({result}): accepted={accepted} matched={matched}"));
        }
    }

    pub fn skip(&mut self, tc_id: u64, why: &str) {
        self.skipped.push(format!("tcId {tc_id}: {why}"));
    }

    /// Prints `file: passed/failed/skipped` (and the skip reasons, grouped) and asserts no failure.
    pub fn finish(self) {
        let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
        for s in &self.skipped {
            let r = s.split_once(": ").map(|x| x.1).unwrap_or(s).to_string();
            *reasons.entry(r).or_default() += 1;
        }
        println!(
            "wycheproof {}: {} passed, {} failed, {} skipped",
            self.name,
            self.passed,
            self.failed.len(),
            self.skipped.len()
        );
        for (r, n) in reasons {
            println!("  skipped {n}: {r}");
        }
        assert!(self.failed.is_empty(), "{}: failures:\n{}", self.name, self.failed.join("\n"));
    }
}
