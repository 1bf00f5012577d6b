//! Measures signed checkpoints: `cargo run --release -p tessera-audit --example checkpoint_cost
//! [N [DIR]]` makes a chain in DIR (a temporary directory under it; the current directory by
//! default, so that the file system is the log's), then N times appends one record and a
//! checkpoint, and prints the wall time per checkpoint and the log's size (time the whole
//! process, e.g. with `/usr/bin/time -v`, for its CPU).
use std::borrow::Cow;
use tessera_audit::{writer, Record, Writer};

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let base = std::env::args().nth(2).unwrap_or_else(|| ".".into());
    let tmp = tempfile::tempdir_in(base).unwrap();
    let d = tmp.path().join("log");
    writer::init(&d, &tmp.path().join("seed")).unwrap();
    let mut w = Writer::open(&d).unwrap();
    w.set_checkpoint_every(0);
    let rec = |i: u64| Record {
        time_us: i,
        function: Cow::Borrowed("C_Sign"),
        category: Cow::Borrowed("crypto"),
        mechanism: Some(Cow::Borrowed("CKM_SHA256_HMAC")),
        rv: Cow::Borrowed("CKR_OK"),
        mode: Cow::Borrowed("non-approved"),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    for i in 0..n {
        w.append(&mut rec(i), false).unwrap();
        w.checkpoint(&rec(i)).unwrap();
    }
    let wall = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let size = std::fs::metadata(d.join("audit.log")).unwrap().len();
    println!("{n} checkpoints (each after one record): {wall:.2} ms each; log {size} bytes");
}
