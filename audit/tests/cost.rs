//! What one record costs, from the floor up. The ignored test `record_floor` times, per record:
//!
//! - (a) only the cryptography the log's design requires before a call returns: the JSON line of
//!   a typical record, its HMAC-SHA-256 and one step of the key chain (the old key overwritten),
//!   in memory, as the writer does them;
//! - (b) the same and one `write(2)` of the line to a file opened `O_APPEND`;
//! - (c) `Writer::append` as the module calls it (lock, state read and checked, log length,
//!   write, state rewritten, lock released), without checkpoints;
//! - (d) the same with a signed checkpoint every 1,000 records, the default;
//!
//! and what a checkpoint spends, part by part. It prints them beside the cost targets
//! (docs/audit-operations.md):
//!
//! ```text
//! cargo test --release -p tessera-audit --test cost -- --ignored record_floor --nocapture
//! ```
//!
//! Figures are this thread's time on a CPU (`CLOCK_THREAD_CPUTIME_ID`), which other programs on a
//! shared machine do not inflate as they do the wall clock. The four ways are timed in rounds
//! taken in turn (the order turning every round), and the median over rounds is printed.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use tessera_audit::chain::{self, Chain};
use tessera_audit::format::{self, Record};
use tessera_audit::merkle::{self, Frontier};
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
        // `CKA_UNIQUE_ID` (32 hexadecimal digits), in hex; a SHA-256 in hex. The module keeps
        // both with the key's object and borrows them for each record.
        key_unique_id: Some(Cow::Borrowed("3863316630653464326237613963336535663661316232633364346535663630")),
        key_id_label_sha256: Some(Cow::Borrowed("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a")),
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

/// The CPU time of `n` runs of `f`, per run, in µs.
fn per_run(n: u64, mut f: impl FnMut()) -> f64 {
    let c0 = cpu_ns();
    for _ in 0..n {
        f();
    }
    (cpu_ns() - c0) / 1e3 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The record's line as the writer makes it: its members from the chain's position, its MAC and
/// the chain's next key from one set-up of the record's key.
fn make_line(buf: &mut Vec<u8>, chain: &mut Chain, i: u64) -> [u8; 32] {
    let mut r = typical(i);
    let (epoch, index) = chain::position(chain.seq());
    (r.seq, r.epoch, r.key_index) = (chain.seq(), epoch, index);
    r.prev = format::hex(&[0x11; 32]).into();
    format::encode_with(buf, &r, |covered| chain.mac_and_advance(covered))
}

#[test]
#[ignore]
fn record_floor() {
    const PER_ROUND: u64 = 5_000;
    const ROUNDS: usize = 11;
    let tmp = tempfile::tempdir().unwrap();
    let seed = [9u8; 32];

    // (a) In memory.
    let (mut chain_a, mut buf_a) = (Chain::start(&seed), Vec::with_capacity(1024));
    let mut a = |n: u64| {
        for i in 0..n {
            std::hint::black_box(make_line(&mut buf_a, &mut chain_a, i));
        }
    };
    // (b) And one write(2).
    let raw = tmp.path().join("raw.log");
    let mut file = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(&raw).unwrap();
    let (mut chain_b, mut buf_b) = (Chain::start(&seed), Vec::with_capacity(1024));
    let mut b = |n: u64| {
        for i in 0..n {
            make_line(&mut buf_b, &mut chain_b, i);
            assert_eq!(file.write(&buf_b).unwrap(), buf_b.len());
        }
    };
    // (c) The writer's append, no checkpoints; (d) one every 1,000 records.
    let open = |name: &str, every: u64| {
        let dir = tmp.path().join(name);
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
    let mut times: [Vec<f64>; 4] = Default::default();
    for round in 0..ROUNDS {
        for k in 0..4 {
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

    // (a) part by part.
    let mut line = Vec::new();
    make_line(&mut line, &mut Chain::start(&seed), 0);
    let covered = &line[..line.len() - 1 - format::SUFFIX_LEN];
    let r = typical(0);
    let mut json = Vec::with_capacity(1024);
    let json_us = per_run(100_000, || {
        json.clear();
        serde_json::to_writer(&mut json, &r).unwrap();
    });
    let mut c1 = Chain::start(&seed);
    let mac_step_us = per_run(100_000, || {
        std::hint::black_box(c1.mac_and_advance(covered));
    });
    let mut c2 = Chain::start(&seed);
    let step_us = per_run(100_000, || c2.advance());
    let mac_us = per_run(100_000, || {
        std::hint::black_box(chain::mac(&[3; 32], covered));
    });

    // A checkpoint, part by part: the two signatures (over a note that certifies the next pair,
    // as every checkpoint's does; making that pair is `examples/checkpoint_cost.rs`'s to time);
    // the Merkle leaves and nodes over 1,000
    // records; reading 1,000 records back and hashing them as the writer's frontier does; and
    // the fdatasync of 1,000 records written since the last one.
    let keys = tessera_audit::checkpoint::SigningKeys::generate().unwrap();
    let next = tessera_audit::checkpoint::SigningKeys::generate().unwrap();
    let sign_us = per_run(50, || {
        std::hint::black_box(keys.sign(1000, &[1; 32], &[2; 32], Some(next.public())).unwrap());
    });
    let leaf = &line[..line.len() - 1];
    let merkle_us = per_run(50, || {
        let mut f = Frontier::new();
        for _ in 0..1000 {
            f.push(merkle::leaf(leaf));
        }
        std::hint::black_box(f.root());
    });
    let thousand = tmp.path().join("thousand.log");
    std::fs::write(&thousand, line.repeat(1000)).unwrap();
    let th = std::fs::File::open(&thousand).unwrap();
    let len = th.metadata().unwrap().len();
    let read_back_us = per_run(50, || {
        let mut f = Frontier::new();
        tessera_audit::tree::scan_lines(&th, 0, len, |l| f.push(merkle::leaf(l))).unwrap();
        std::hint::black_box(f.root());
    });
    let mut synced = std::fs::OpenOptions::new().append(true).create(true).open(tmp.path().join("s.log")).unwrap();
    let mut sync_us = 0.0;
    for _ in 0..20 {
        for _ in 0..1000 {
            synced.write_all(&line).unwrap();
        }
        sync_us += per_run(1, || synced.sync_data().unwrap()) / 20.0;
    }

    println!("A typical record: {} bytes. CPU time per record, median of {ROUNDS} rounds of {PER_ROUND}:", line.len());
    println!("  (a) JSON line + HMAC-SHA-256 + one key step, in memory   {a:6.2} µs");
    println!(
        "        JSON {json_us:.2} µs; HMAC and key step from one key set-up {mac_step_us:.2} µs \
         (HMAC alone {mac_us:.2} µs, key step alone {step_us:.2} µs)"
    );
    println!("  (b) (a) and one write(2)                                 {b:6.2} µs");
    println!("  (c) Writer::append, no checkpoints                       {c:6.2} µs");
    println!("  (d) Writer::append, a checkpoint every 1,000 records     {d:6.2} µs");
    println!(
        "        one checkpoint {:.0} µs: signatures (ECDSA P-256, ML-DSA-65) {sign_us:.0} µs; the Merkle tree \
         over 1,000 records {merkle_us:.0} µs, {read_back_us:.0} µs read back from the file; fdatasync of \
         1,000 records {sync_us:.0} µs",
        (d - c) * 1000.0
    );
    println!("  targets: 1 µs per record; 5% of a P-256 signature (11.5 µs of CPU here) 0.58 µs");
}
