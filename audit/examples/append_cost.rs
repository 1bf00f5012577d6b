//! Measures `Writer::append` alone: `cargo run --release -p tessera-audit --example append_cost [N]`.
use std::borrow::Cow;
use tessera_audit::{writer, Record, Writer};

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let d = tempfile::tempdir().unwrap();
    writer::init(&d.path().join("log"), &d.path().join("seed")).unwrap();
    let mut w = Writer::open(&d.path().join("log")).unwrap();
    let t = std::time::Instant::now();
    for i in 0..n {
        let mut r = Record {
            time_us: i,
            function: Cow::Borrowed("C_Sign"),
            category: Cow::Borrowed("crypto"),
            mechanism: Some(Cow::Borrowed("CKM_SHA256_HMAC")),
            rv: Cow::Borrowed("CKR_OK"),
            mode: Cow::Borrowed("non-approved"),
            ..Default::default()
        };
        w.append(&mut r, false).unwrap();
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{n} appends: {per:.2} us each");
    let seed = tessera_audit::verify::read_seed(&d.path().join("seed")).unwrap();
    let t = std::time::Instant::now();
    let s = tessera_audit::verify::verify_path(&d.path().join("log"), &seed, 2).unwrap();
    assert!(s.failure.is_none());
    println!("verify of {} records: {:?}", s.records, t.elapsed());
}
