//! `tessera-audit show`, `export` and `report` on a log of known records.

use std::borrow::Cow;
use std::path::Path;
use std::process::Command;
use tessera_audit::writer::{self, Writer};
use tessera_audit::Record;

const T0: u64 = 1_760_000_000_000_000;

fn rec(
    i: u64,
    function: &'static str,
    mech: Option<&'static str>,
    approved: bool,
    rv: (&'static str, u64),
) -> Record<'static> {
    Record {
        time_us: T0 + i * 60_000_000,
        pid: 9,
        uid: 1000,
        function: Cow::Borrowed(function),
        category: Cow::Borrowed(if mech.is_some() { "crypto" } else { "auth" }),
        token: Some(Cow::Borrowed(if i.is_multiple_of(2) { "tok-even" } else { "tok-odd" })),
        mechanism: mech.map(Cow::Borrowed),
        mechanism_id: mech.map(|m| if m == "CKM_ECDSA" { 0x1041 } else { 0x251 }),
        key_unique_id: mech.map(|_| Cow::Owned(format!("{:032x}", i % 3))),
        op: mech.filter(|_| function != "C_GenerateKey").map(|_| Cow::Borrowed("sign")),
        verdict: mech.map(|_| {
            Cow::Borrowed(if approved {
                "approved"
            } else if rv.1 == 0 {
                "non-approved"
            } else {
                "refused"
            })
        }),
        rv: Cow::Borrowed(rv.0),
        rv_id: rv.1,
        fips_approved: approved,
        mode: Cow::Borrowed("non-approved"),
        ..Default::default()
    }
}

/// 10 records: 4 approved ECDSA signatures, 2 non-approved HMAC signatures, a refused key
/// generation, a successful one, two failed logins (incorrect, locked); then a checkpoint.
fn make(dir: &Path) {
    writer::init(dir, &dir.with_extension("seed")).unwrap();
    let mut w = Writer::open(dir).unwrap();
    let ok = ("CKR_OK", 0);
    let mut i = 0;
    let mut add = |r: Record<'static>| {
        let mut r = r;
        w.append(&mut r, false).unwrap();
    };
    for _ in 0..4 {
        add(rec(i, "C_Sign", Some("CKM_ECDSA"), true, ok));
        i += 1;
    }
    for _ in 0..2 {
        add(rec(i, "C_Sign", Some("CKM_SHA256_HMAC"), false, ok));
        i += 1;
    }
    add(rec(i, "C_GenerateKey", Some("CKM_DES_KEY_GEN"), false, ("CKR_MECHANISM_INVALID", 0x70)));
    add(rec(i + 1, "C_GenerateKey", Some("CKM_AES_KEY_GEN"), true, ok));
    add(rec(i + 2, "C_Login", None, false, ("CKR_PIN_INCORRECT", 0xa0)));
    add(rec(i + 3, "C_Login", None, false, ("CKR_PIN_LOCKED", 0xa4)));
    let mut w = Writer::open(dir).unwrap();
    w.checkpoint(&rec(20, "x", None, false, ok)).unwrap();
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tessera-audit")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn show_export_and_report() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    make(&dir);
    let d = dir.to_str().unwrap();
    // show: one line per record kept.
    let (code, out, err) = run(&["show", d, "--mechanism", "ECDSA"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().all(|l| l.contains("C_Sign CKM_ECDSA CKR_OK approved")), "{out}");
    assert!(err.contains("not verified"), "{err}");
    let count = |args: &[&str]| {
        let (code, out, err) = run(&[&["export", d][..], args].concat());
        assert_eq!(code, 0, "{err}");
        out.lines().count()
    };
    assert_eq!(count(&[]), 11);
    assert_eq!(count(&["--non-approved"]), 3, "two HMAC signatures and the refusal");
    assert_eq!(count(&["--failures"]), 3);
    assert_eq!(count(&["--function", "C_Login", "--failures"]), 2);
    assert_eq!(count(&["--function", "C_Login", "--function", "C_GenerateKey"]), 4);
    assert_eq!(count(&["--token", "tok-odd", "--mechanism", "0x1041"]), 2);
    assert_eq!(count(&["--key", &format!("{:032x}", 1)]), 3);
    // Minutes 2 and 3 (records 2 and 3), by time.
    let since = tessera_audit::query::time(T0 + 120_000_000);
    let until = tessera_audit::query::time(T0 + 240_000_000);
    assert_eq!(count(&["--since", &since, "--until", &until]), 2);
    let (code, _, err) = run(&["export", d, "--since", "yesterday"]);
    assert_eq!(code, 1, "{err}");
    // JSON lines are the log's own lines, MACs and all.
    let (_, jsonl, _) = run(&["export", d, "--function", "C_Sign"]);
    let log = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    assert!(jsonl.lines().all(|l| log.lines().any(|x| x == l)));
    // CSV, read back.
    let out = t.path().join("x.csv");
    let (code, _, err) = run(&["export", d, "--format", "csv", "--out", out.to_str().unwrap(), "--non-approved"]);
    assert_eq!(code, 0, "{err}");
    let mut r = csv::Reader::from_path(&out).unwrap();
    let headers = r.headers().unwrap().clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), tessera_audit::query::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[2][col("rv")], "CKR_MECHANISM_INVALID");
    assert_eq!(&rows[2][col("verdict")], "refused");
    assert_eq!(&rows[0][col("fips_approved")], "false");
    assert_eq!(rows[0][col("mac")].len(), 64);
    // The report, as JSON.
    let (code, out, err) = run(&["report", d, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["records"], 11);
    assert_eq!(j["operations"]["total"], 6);
    assert_eq!(j["operations"]["approved"], 4);
    assert_eq!(j["operations"]["non_approved"], 2);
    assert_eq!(j["by_mechanism"]["CKM_ECDSA"]["C_Sign"]["approved"], 4);
    assert_eq!(j["by_mechanism"]["CKM_SHA256_HMAC"]["C_Sign"]["non_approved"], 2);
    assert_eq!(j["refusals"]["C_GenerateKey CKM_DES_KEY_GEN"], 1);
    assert_eq!(j["failed_logins"]["CKR_PIN_INCORRECT"], 1);
    assert_eq!(j["failed_logins"]["CKR_PIN_LOCKED"], 1);
    assert_eq!(j["key_lifecycle"]["C_GenerateKey"], 1);
    assert_eq!(j["checkpoints"], 1);
    let buckets = j["buckets"].as_array().unwrap();
    let sum = |k: &str| buckets.iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("approved"), sum("non_approved")), (4, 2));
    // Text and HTML: the same figures; the page needs nothing from the network.
    let (_, text, _) = run(&["report", d]);
    assert!(text.contains("operations: 6  approved: 4  non-approved: 2  failed: 0"), "{text}");
    assert!(text.contains("CKR_PIN_LOCKED"), "{text}");
    let html = t.path().join("r.html");
    let (code, _, _) = run(&["report", d, "--format", "html", "--out", html.to_str().unwrap()]);
    assert_eq!(code, 0);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg") && page.contains("CKM_DES_KEY_GEN"));
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="));
    assert_eq!(
        page.matches("http").count(),
        page.matches("http://www.w3.org/2000/svg").count(),
        "only the SVG namespace"
    );
    // Only non-approved operations: the report's filter.
    let (_, out, _) = run(&["report", d, "--format", "json", "--non-approved"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((j["records"].as_u64(), j["operations"]["approved"].as_u64()), (Some(3), Some(0)));
}
