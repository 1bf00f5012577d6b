//! Measures `Writer::append` alone, and `verify` of the log it wrote:
//! `cargo run --release -p tessera-audit --example append_cost [N [CHECKPOINT_EVERY [DIR]]]`
//! (DIR: where the chain is made and kept, with its seed in DIR/../seed; a temporary directory
//! otherwise).
use std::borrow::Cow;
use tessera_audit::{writer, Record, Writer};

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let tmp = tempfile::tempdir().unwrap();
    let d = std::env::args().nth(3).map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().into());
    std::fs::create_dir_all(&d).unwrap();
    let d = &d;
    writer::init(&d.join("log"), &d.join("seed")).unwrap();
    let mut w = Writer::open(&d.join("log")).unwrap();
    let every = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(writer::CHECKPOINT_EVERY);
    w.set_checkpoint_every(every);
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
    println!("{n} appends (a checkpoint every {every}): {per:.2} us each");
    let seed = tessera_audit::verify::read_seed(&d.join("seed")).unwrap();
    let t = std::time::Instant::now();
    let s = tessera_audit::verify::verify_path(&d.join("log"), &seed, 2).unwrap();
    assert!(s.failure.is_none());
    println!("verify of {} records: {:?}", s.records, t.elapsed());
}
