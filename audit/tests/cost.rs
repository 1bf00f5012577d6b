//! What one record costs, from the floor up: the ignored test `record_floor` times, per record,
//! (a) only the cryptography the log's design requires before a call returns — the JSON line of a
//! typical record, its HMAC-SHA-256 and one step of the key chain, in memory; (b) the same and one
//! `write(2)` of the line to a file opened `O_APPEND`; (c) `Writer::append` as the module calls
//! it (lock, state, length check, write, state rewritten, lock released), without checkpoints;
//! (d) the same with a signed checkpoint every 1,000 records, the default. It compares each with
//! the cost targets (docs/audit-operations.md):
//!
//! ```text
//! cargo test --release -p tessera-audit --test cost -- --ignored record_floor --nocapture
//! ```
//!
//! Figures are this thread's time on a CPU (`CLOCK_THREAD_CPUTIME_ID`), which other
//! programs on a shared machine do not inflate as they do the wall clock; the four ways are
//! timed in rounds taken in turn, and the median over rounds is printed.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use tessera_audit::chain::{self, Chain};
use tessera_audit::format::{self, Record};
use tessera_audit::writer::{self, Writer};

/// A record as the module writes it for a `C_Sign` with an HMAC key in a logged-in session:
/// every member that such a record has is filled, at its usual length.
fn typical(i: u64) -> Record<'static> {
    Record {
        time_us: 1_760_000_000_000_000 + i,
        pid: 48_213,
        uid: 1000,
        function: Cow::Borrowed("C_Sign"),
        category: Cow::Borrowed("crypto"),
        slot: Some(1_234_567_890),
        token: Some(Cow::Borrowed("5f3c9a0b7e21d4c6")),
        session: Some(17),
        user: Some(Cow::Borrowed("CKU_USER")),
        mechanism: Some(Cow::Borrowed("CKM_SHA256_HMAC")),
        mechanism_id: Some(0x251),
        // `CKA_UNIQUE_ID` (32 hexadecimal digits), in hex; a SHA-256 in hex.
        key_unique_id: Some(Cow::Owned(format::hex(b"8c1f0e4d2b7a9c3e5f6a1b2c3d4e5f60"))),
        key_id_label_sha256: Some(Cow::Owned(format::hex(&[0x5a; 32]))),
        op: Some(Cow::Borrowed("sign")),
        verdict: Some(Cow::Borrowed("approved")),
        rv: Cow::Borrowed("CKR_OK"),
        rv_id: 0,
        fips_approved: true,
        mode: Cow::Borrowed("non-approved"),
        ..Default::default()
    }
}

/// This thread's time on a CPU, in nanoseconds.
fn cpu_ns() -> f64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    t.tv_sec() as f64 * 1e9 + t.tv_nsec() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore]
fn record_floor() {
    const PER_ROUND: u64 = 5_000;
    const ROUNDS: usize = 11;
    let tmp = tempfile::tempdir().unwrap();
    let seed = [9u8; 32];

    // (a) The record in memory: the line, its MAC, the next key (the old one overwritten).
    let mut chain = Chain::start(&seed);
    let mut buf = Vec::with_capacity(1024);
    let mut a = |n: u64| {
        for i in 0..n {
            let mut r = typical(i);
            let (epoch, index) = chain::position(chain.seq());
            (r.seq, r.epoch, r.key_index) = (chain.seq(), epoch, index);
            r.prev = format::hex(&[0x11; 32]).into();
            std::hint::black_box(format::encode(&mut buf, &r, chain.record_key()));
            chain.advance();
        }
    };

    // (b) The same, and one write(2) of the line.
    let raw = tmp.path().join("raw.log");
    let mut file = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(&raw).unwrap();
    let mut chain_b = Chain::start(&seed);
    let mut buf_b = Vec::with_capacity(1024);
    let mut b = |n: u64| {
        for i in 0..n {
            let mut r = typical(i);
            let (epoch, index) = chain::position(chain_b.seq());
            (r.seq, r.epoch, r.key_index) = (chain_b.seq(), epoch, index);
            r.prev = format::hex(&[0x11; 32]).into();
            format::encode(&mut buf_b, &r, chain_b.record_key());
            chain_b.advance();
            assert_eq!(file.write(&buf_b).unwrap(), buf_b.len());
        }
    };

    // (c) The writer's append, no checkpoints; (d) with one every 1,000 records.
    let open = |name: &str, every: u64| {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        writer::init(&dir, &tmp.path().join(format!("{name}.seed"))).unwrap();
        let mut w = Writer::open(&dir).unwrap();
        w.set_checkpoint_every(every);
        w
    };
    let (mut wc, mut wd) = (open("c", 0), open("d", writer::CHECKPOINT_EVERY));
    let append = |w: &mut Writer, n: u64| {
        for i in 0..n {
            w.append(&mut typical(i), false).unwrap();
        }
    };

    let mut line = Vec::new();
    format::encode(&mut line, &typical(0), &[0; 32]);
    let mut times: [Vec<f64>; 4] = Default::default();
    for round in 0..ROUNDS {
        for k in 0..4 {
            // The order turns every round, so that no way always runs first.
            let way = (k + round) % 4;
            let c0 = cpu_ns();
            match way {
                0 => a(PER_ROUND),
                1 => b(PER_ROUND),
                2 => append(&mut wc, PER_ROUND),
                _ => append(&mut wd, PER_ROUND),
            }
            times[way].push((cpu_ns() - c0) / 1e3 / PER_ROUND as f64);
        }
    }
    let [a, b, c, d] = times.map(median);
    // Its parts, in memory, each on its own.
    let mut parts = Vec::new();
    let mut chain_p = Chain::start(&seed);
    let mut each = |name: &str, f: &mut dyn FnMut()| {
        let c0 = cpu_ns();
        for _ in 0..PER_ROUND * 4 {
            f();
        }
        parts.push(format!("{name} {:.3} µs", (cpu_ns() - c0) / 1e3 / (PER_ROUND * 4) as f64));
    };
    let r = typical(0);
    let mut json = Vec::with_capacity(1024);
    each("JSON", &mut || {
        json.clear();
        serde_json::to_writer(&mut json, &r).unwrap();
    });
    each("HMAC", &mut || {
        std::hint::black_box(chain::mac(&[3; 32], &line));
    });
    each("key step", &mut || chain_p.advance());
    // What a checkpoint does besides appending its record: the two signatures, and the Merkle
    // leaves of the 1,000 records it covers (their hashes and the frontier's).
    let keys = tessera_audit::checkpoint::SigningKeys::generate().unwrap();
    let c0 = cpu_ns();
    for _ in 0..20 {
        std::hint::black_box(keys.sign(1000, &[1; 32], &[2; 32]).unwrap());
    }
    let sign = (cpu_ns() - c0) / 1e3 / 20.0;
    let c0 = cpu_ns();
    for _ in 0..20 {
        let mut f = tessera_audit::merkle::Frontier::new();
        for _ in 0..1000 {
            f.push(tessera_audit::merkle::leaf(&line[..line.len() - 1]));
        }
        std::hint::black_box(f.root());
    }
    let merkle = (cpu_ns() - c0) / 1e3 / 20.0;

    println!("a typical record is {} bytes; {ROUNDS} rounds of {PER_ROUND} records, CPU time per record:", line.len());
    println!("  (a) JSON line + HMAC-SHA-256 + one key step, in memory: {a:.2} µs ({})", parts.join(", "));
    println!("  (b) (a) and one write(2):                              {b:.2} µs");
    println!("  (c) Writer::append, no checkpoints:                     {c:.2} µs");
    println!("  (d) Writer::append, a checkpoint every 1,000 records:  {d:.2} µs");
    println!(
        "      one checkpoint about {:.0} µs: signatures (ECDSA P-256 and ML-DSA-65) {sign:.0} µs, the Merkle \
         tree over 1,000 records {merkle:.0} µs, the rest (reading the records back, fdatasync, the frontier's file)",
        (d - c) * 1000.0
    );
    println!("  targets: 1 µs per record; 5% of a P-256 signature (11.5 µs of CPU here): 0.58 µs");
}
