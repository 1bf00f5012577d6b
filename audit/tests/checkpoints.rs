//! Signed checkpoints, public verification, inclusion and consistency proofs, through the
//! library and the `tessera-audit` command line.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;
use tessera_audit::checkpoint::{Note, PublicKeys, PUB, SIGN};
use tessera_audit::proof::{self, ProofError, Shown};
use tessera_audit::verify::{self, Class};
use tessera_audit::writer::{self, Writer, LOG, STATE};
use tessera_audit::{public, Record};

fn record(i: u64) -> Record<'static> {
    Record {
        time_us: 1_760_000_000_000_000 + i * 1000,
        pid: 77,
        uid: 1000,
        function: Cow::Borrowed("C_Sign"),
        category: Cow::Borrowed("crypto"),
        mechanism: Some(Cow::Borrowed("CKM_ECDSA_SHA256")),
        mechanism_id: Some(0x1044),
        op: Some(Cow::Borrowed("sign")),
        verdict: Some(Cow::Borrowed("approved")),
        rv: Cow::Borrowed("CKR_OK"),
        fips_approved: true,
        mode: Cow::Borrowed("approved"),
        detail: Some(Cow::Owned(format!("operation {i}"))),
        ..Default::default()
    }
}

struct Log {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    seed: PathBuf,
}

impl Log {
    fn keys(&self) -> PublicKeys {
        PublicKeys::read(&self.dir.join(PUB)).unwrap()
    }
    fn public(&self, trusted: Option<&Note>) -> verify::Summary {
        let st = std::fs::read(self.dir.join(STATE)).unwrap();
        public::verify(&self.dir.join(LOG), Some(&st), &self.keys(), trusted).unwrap()
    }
    fn keyed(&self) -> verify::Summary {
        verify::verify_path(&self.dir, &verify::read_seed(&self.seed).unwrap(), 2).unwrap()
    }
}

/// A chain made by `init` (with signing keys), `n` records appended, a checkpoint every `every`.
fn log(n: u64, every: u64) -> Log {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, seed) = (tmp.path().join("log"), tmp.path().join("seed"));
    writer::init(&dir, &seed).unwrap();
    let mut w = Writer::open(&dir).unwrap();
    w.set_checkpoint_every(every);
    for i in 0..n {
        w.append(&mut record(i), false).unwrap();
    }
    Log { _tmp: tmp, dir, seed }
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| format!("{l}\n")).collect()
}

#[test]
fn periodic_and_on_demand_checkpoints_verify_with_the_public_keys() {
    let l = log(35, 10);
    // Records 0..9, checkpoint 10, 11..19, checkpoint 20, 21..29, checkpoint 30, 31..37.
    let recs = lines(&l.dir.join(LOG));
    assert_eq!(recs.len(), 38);
    for cp in [10, 20, 30] {
        assert!(recs[cp].contains("\"function\":\"checkpoint\""), "{}", recs[cp]);
    }
    let s = l.public(None);
    assert!(s.failure.is_none(), "{:?}", s.failure);
    assert_eq!((s.records, s.checkpoints, s.sealed, s.unsealed_tail), (38, 3, Some(30), Some(7)));
    let k = l.keyed();
    assert!(k.failure.is_none(), "{:?}", k.failure);
    // On demand: everything sealed; a second one right after adds nothing.
    let mut w = Writer::open(&l.dir).unwrap();
    assert_eq!(w.checkpoint(&record(0)).unwrap(), 38);
    assert_eq!(w.checkpoint(&record(0)).unwrap(), 38);
    let note = Note::parse(w.last_checkpoint().unwrap()).unwrap();
    assert_eq!((note.size, note.key_gen), (38, Some(3)));
    // Each checkpoint certified the next one's key; the host now holds generation 4 only.
    let kc = l.public(None).key_chain.unwrap();
    assert_eq!((kc.generations, kc.legacy_checkpoints, kc.key_file_entries), (4, 0, Some(4)));
    let held = tessera_audit::checkpoint::SigningKeys::load(&l.dir).unwrap().unwrap();
    assert_eq!(held.generation(), 4);
    assert_eq!(note.next.as_ref().map(|(g, k)| (*g, k)), Some((4, held.public())));
    assert!(!l.dir.join(tessera_audit::checkpoint::SIGN_NEXT).exists());
    let s = l.public(Some(&note));
    assert!(s.failure.is_none(), "{:?}", s.failure);
    assert_eq!((s.checkpoints, s.sealed, s.unsealed_tail, s.extends_trusted), (4, Some(38), Some(0), Some(38)));
    // A chain without signing keys writes no checkpoints, and an explicit one is an error.
    let bare = tempfile::tempdir().unwrap();
    writer::create_with_seed(bare.path(), &[1; 32]).unwrap();
    let mut w = Writer::open(bare.path()).unwrap();
    w.set_checkpoint_every(2);
    for i in 0..5 {
        w.append(&mut record(i), false).unwrap();
    }
    assert!(!w.signs_checkpoints() && w.checkpoint(&record(0)).is_err());
}

#[test]
fn a_lost_or_damaged_tree_file_is_built_again() {
    let l = log(25, 10);
    std::fs::remove_file(l.dir.join("audit.tree")).unwrap();
    let mut w = Writer::open(&l.dir).unwrap();
    w.set_checkpoint_every(10);
    for i in 0..5 {
        w.append(&mut record(i), false).unwrap();
    }
    std::fs::write(l.dir.join("audit.tree"), b"TSAUDTR1 garbage garbage garbage garbage garbage garbage").unwrap();
    for i in 0..10 {
        w.append(&mut record(i), false).unwrap();
    }
    let s = l.public(None);
    assert!(s.failure.is_none(), "{:?}", s.failure);
    assert_eq!(s.checkpoints, 4);
}

#[test]
fn tampering_is_named_without_the_seed() {
    let l = log(35, 10);
    let keys = l.keys();
    let st = std::fs::read(l.dir.join(STATE)).unwrap();
    let orig = lines(&l.dir.join(LOG));
    let check = |ls: &[String]| {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOG);
        std::fs::write(&p, ls.concat()).unwrap();
        public::verify(&p, Some(&st), &keys, None).unwrap().failure.map(|f| (f.class, f.line))
    };
    // A changed record under a checkpoint: its MAC is not checked here, the tree is.
    let mut m = orig.clone();
    m[13] = m[13].replace("operation 12", "operation 99");
    assert_eq!(check(&m), Some((Class::MerkleMismatch, 21)));
    // A changed signature.
    let mut b = orig.clone();
    let at = b[20].find("\u{2014} ").unwrap() + 60;
    let c = if &b[20][at..at + 1] == "A" { "B" } else { "A" };
    b[20].replace_range(at..at + 1, c);
    assert_eq!(check(&b), Some((Class::BadCheckpointSignature, 21)));
    // A record deleted, one duplicated: by the sequence numbers.
    let mut d = orig.clone();
    d.remove(5);
    assert_eq!(check(&d).map(|c| c.0), Some(Class::Deleted));
    let mut dup = orig.clone();
    dup.insert(6, orig[5].clone());
    assert_eq!(check(&dup).map(|c| c.0), Some(Class::Duplicated));
    // The last records cut off under the state.
    assert_eq!(check(&orig[..33]).map(|c| c.0), Some(Class::Truncated));
}

#[test]
fn a_trusted_checkpoint_catches_a_rollback_and_a_rewritten_history() {
    let l = log(25, 10);
    let keys = l.keys();
    let cps: Vec<Note> = lines(&l.dir.join(LOG))
        .iter()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["checkpoint"].as_str().map(|t| Note::parse(t).unwrap())
        })
        .collect();
    assert_eq!(cps.iter().map(|n| n.size).collect::<Vec<_>>(), [10, 20]);
    let trusted = &cps[1];
    assert_eq!(l.public(Some(&cps[0])).extends_trusted, Some(10));
    // An older copy of the log put back (with its state): every signature verifies, but the
    // log is shorter than the checkpoint the auditor kept.
    let old = log(0, 10);
    let recs = lines(&l.dir.join(LOG));
    std::fs::write(old.dir.join(LOG), recs[..15].concat()).unwrap();
    let p = public::verify(&old.dir.join(LOG), None, &keys, Some(trusted)).unwrap();
    assert_eq!(p.failure.map(|f| f.class), Some(Class::RolledBack));
    // The whole history rewritten by whoever took the host: a new chain with other records,
    // signed with the signing key the host holds (generation 2, for the checkpoint after 20),
    // the key chain file kept. The forward-secure keys give it away on its own: its first
    // checkpoint is signed by a later key than the anchor that must sign it.
    let forged = tempfile::tempdir().unwrap();
    let fdir = forged.path().join("log");
    writer::init(&fdir, &forged.path().join("seed")).unwrap();
    for f in [SIGN, PUB, tessera_audit::keychain::KEYS] {
        std::fs::copy(l.dir.join(f), fdir.join(f)).unwrap();
    }
    let mut w = Writer::open(&fdir).unwrap();
    w.set_checkpoint_every(10);
    for i in 0..30 {
        let mut r = record(i);
        r.fips_approved = false;
        w.append(&mut r, false).unwrap();
    }
    let alone = public::verify(&fdir.join(LOG), None, &keys, None).unwrap();
    let f = alone.failure.unwrap();
    assert_eq!((f.class, f.seq), (Class::SignedByLaterKey, 10), "{f}");
    let against = public::verify(&fdir.join(LOG), None, &keys, Some(trusted)).unwrap();
    assert_eq!(against.failure.unwrap().class, Class::SignedByLaterKey);
    // Its proofs do not hold either: the stolen key's first checkpoint is not after the
    // checkpoint of 20 records that certified that key.
    let text = trusted_text(&l, 20);
    let p = proof::prove_consistency(&[fdir.join(LOG)], &text, &keys).unwrap();
    assert!(
        matches!(proof::check(&p, &keys), Err(ProofError::Chain(Class::SignedByLaterKey, _))),
        "{:?}",
        proof::check(&p, &keys)
    );
    let p = proof::prove_inclusion(&[fdir.join(LOG)], 5).unwrap();
    assert!(proof::check(&p, &keys).is_err());
    let p = proof::prove_consistency(&[l.dir.join(LOG)], &trusted_text(&l, 10), &keys).unwrap();
    assert!(matches!(proof::check(&p, &keys), Ok(Shown::Consistent { .. })));
}

/// The note of the checkpoint of `size` records in `l`.
fn trusted_text(l: &Log, size: u64) -> String {
    lines(&l.dir.join(LOG))
        .iter()
        .filter_map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["checkpoint"].as_str().map(String::from)
        })
        .find(|t| Note::parse(t).unwrap().size == size)
        .unwrap()
}

#[test]
fn inclusion_proofs_for_every_sealed_record() {
    let l = log(35, 10);
    let keys = l.keys();
    let log = l.dir.join(LOG);
    let recs = lines(&log);
    for seq in 0..30u64 {
        let p = proof::prove_inclusion(std::slice::from_ref(&log), seq).unwrap();
        let want = match seq {
            0..=9 => 10,
            10..=19 => 20,
            _ => 30,
        };
        assert_eq!(p.tree_size, want, "{seq}");
        match proof::check(&p, &keys) {
            Ok(Shown::Included { seq: s, record, .. }) => {
                assert_eq!(s, seq);
                assert_eq!(format!("{record}\n"), recs[seq as usize]);
            }
            other => panic!("{seq}: {other:?}"),
        }
        // The record altered, or presented as another seq: no longer proved.
        let mut bad = p.clone();
        bad.record = Some(bad.record.unwrap().replace("\"pid\":77", "\"pid\":78"));
        assert!(matches!(proof::check(&bad, &keys), Err(ProofError::Mismatch(_))), "{seq}");
        let mut other = p.clone();
        other.seq = Some(seq ^ 1);
        assert!(proof::check(&other, &keys).is_err());
    }
    // Records after the last checkpoint have no proof yet.
    assert!(proof::prove_inclusion(std::slice::from_ref(&log), 32).unwrap_err().contains("unsealed tail"));
    assert!(proof::prove_inclusion(std::slice::from_ref(&log), 99).is_err());
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera-audit"))
}

fn run(c: &mut Command) -> (i32, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn the_command_line() {
    let t = tempfile::tempdir().unwrap();
    let (dir, seed, pk) = (t.path().join("log"), t.path().join("seed"), t.path().join("auditor.pub"));
    let (code, out, err) = run(bin().arg("init").arg(&dir).arg("--seed-out").arg(&seed).arg("--pubkey-out").arg(&pk));
    assert_eq!(code, 0, "{out}{err}");
    let (code, exported, _) = run(bin().arg("export-key").arg(&dir));
    assert_eq!((code, exported.as_str()), (0, std::fs::read_to_string(&pk).unwrap().as_str()));
    let mut w = Writer::open(&dir).unwrap();
    w.set_checkpoint_every(0);
    for i in 0..12 {
        w.append(&mut record(i), false).unwrap();
    }
    let cp = t.path().join("cp12");
    let (code, note, err) = run(bin().arg("checkpoint").arg(&dir).arg("--out").arg(&cp));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("record 12") && note.contains("\n12\n"), "{note}{err}");
    assert_eq!(std::fs::read_to_string(&cp).unwrap(), note);
    for i in 12..20 {
        w.append(&mut record(i), false).unwrap();
    }
    let verify = |extra: &[&str]| {
        let mut c = bin();
        c.arg("verify").arg(&dir).arg("--pubkey").arg(&pk).args(extra);
        run(&mut c)
    };
    let (code, out, err) = verify(&["--trusted-checkpoint", cp.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "records verified: 21",
        "signed checkpoints: 1",
        "unsealed tail: 8 records",
        "extends the trusted checkpoint of 12",
        "intact",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let (code, out, _) =
        run(bin().arg("verify").arg(&dir).arg("--pubkey").arg(&pk).arg("--seed").arg(&seed).arg("--json"));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (code, j["records"].as_u64(), j["checkpoints"].as_u64(), j["end"].as_str()),
        (0, Some(21), Some(1), Some("anchored"))
    );
    // Inclusion proof of record 3, checked with the public key alone.
    let (code, proof_text, err) = run(bin().arg("prove").arg(&dir).arg("--seq").arg("3"));
    assert_eq!(code, 0, "{err}");
    let pf = t.path().join("proof3");
    std::fs::write(&pf, &proof_text).unwrap();
    let (code, out, err) = run(bin().arg("verify-proof").arg(&pf).arg("--pubkey").arg(&pk));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("record 3 is in the log under the signed checkpoint of 12 records"), "{out}");
    std::fs::write(&pf, proof_text.replace("operation 3", "operation 4")).unwrap();
    let (code, _, err) = run(bin().arg("verify-proof").arg(&pf).arg("--pubkey").arg(&pk));
    assert_eq!(code, i32::from(Class::MerkleMismatch.exit_code()), "{err}");
    // Another log's key: a bad signature.
    let other = tempfile::tempdir().unwrap();
    run(bin().arg("init").arg(other.path().join("l")).arg("--seed-out").arg(other.path().join("s")));
    let opk = other.path().join("l").join(PUB);
    std::fs::write(&pf, &proof_text).unwrap();
    let (code, _, _) = run(bin().arg("verify-proof").arg(&pf).arg("--pubkey").arg(&opk));
    assert_eq!(code, i32::from(Class::BadCheckpointSignature.exit_code()));
    let (code, _, _) = verify(&[]);
    assert_eq!(code, 0);
    let (code, _, err) = run(bin().arg("verify").arg(&dir).arg("--pubkey").arg(&opk));
    assert_eq!(code, i32::from(Class::BadCheckpointSignature.exit_code()), "{err}");
    // Consistency from the saved checkpoint to a later one.
    run(bin().arg("checkpoint").arg(&dir));
    let (code, proof_text, err) =
        run(bin().arg("prove").arg(&dir).arg("--consistency-from").arg(&cp).arg("--pubkey").arg(&pk));
    assert_eq!(code, 0, "{err}");
    std::fs::write(&pf, &proof_text).unwrap();
    let (code, out, err) = run(bin().arg("verify-proof").arg(&pf).arg("--pubkey").arg(&pk));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("of 21 records extends the signed checkpoint of 12 records"), "{out}");
    // The log cut back to before the saved checkpoint (the state with it): rolled back.
    let recs = lines(&dir.join(LOG));
    std::fs::write(dir.join(LOG), recs[..10].concat()).unwrap();
    let (code, _, err) =
        run(bin().arg("verify").arg(dir.join(LOG)).arg("--pubkey").arg(&pk).arg("--trusted-checkpoint").arg(&cp));
    assert_eq!(code, i32::from(Class::RolledBack.exit_code()), "{err}");
    assert!(err.contains("rolled-back"), "{err}");
    // Neither key given: refused.
    let (code, _, _) = run(bin().arg("verify").arg(&dir));
    assert_eq!(code, 1);
}

#[test]
fn checkpoints_by_time_and_a_sink_for_the_pipeline() {
    let l = log(0, 0);
    let sink = l.dir.parent().unwrap().join("checkpoints.txt");
    let mut w = Writer::open(&l.dir).unwrap();
    w.set_checkpoint_every(0);
    w.set_checkpoint_interval(Some(std::time::Duration::from_millis(200)));
    w.set_checkpoint_sink(Some(tessera_audit::writer::Sink::File(sink.clone())));
    w.append(&mut record(0), false).unwrap();
    w.append(&mut record(1), false).unwrap();
    assert!(w.last_checkpoint().is_none(), "not yet");
    std::thread::sleep(std::time::Duration::from_millis(250));
    w.append(&mut record(2), false).unwrap();
    assert_eq!(Note::parse(w.last_checkpoint().unwrap()).unwrap().size, 3);
    w.append(&mut record(3), false).unwrap();
    w.checkpoint(&record(4)).unwrap();
    // The sink holds both notes, in order, each verifying.
    let text = std::fs::read_to_string(&sink).unwrap();
    let notes: Vec<&str> = text.split("\n\n\u{2014}").collect();
    assert_eq!(notes.len(), 3, "{text}");
    let sizes: Vec<u64> = text
        .split_inclusive('\n')
        .collect::<String>()
        .split("\n\n")
        .filter(|b| b.starts_with("tessera-audit/"))
        .map(|b| b.lines().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes, [3, 5]);
    let s = l.public(None);
    assert!(s.failure.is_none(), "{:?}", s.failure);
    assert_eq!(s.checkpoints, 2);
}

#[test]
fn a_note_through_a_syslog_line_verifies() {
    let l = log(3, 0);
    let mut w = Writer::open(&l.dir).unwrap();
    w.checkpoint(&record(3)).unwrap();
    let note = w.last_checkpoint().unwrap().to_string();
    let msg = writer::syslog_message(&note);
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.starts_with("tessera-audit checkpoint size=3 note="), "{msg}");
    // As a logger writes it out: time, host, program and pid before the message.
    let line = format!("2026-12-06T14:00:00+00:00 host app[42]: {msg}");
    let back = writer::note_from_syslog(&line).unwrap();
    assert_eq!(back, note);
    assert_eq!(Note::parse(&back).unwrap().size, 3);
    assert!(writer::note_from_syslog("host app[42]: something else").is_none());
    assert_eq!(writer::Sink::parse("syslog"), Some(writer::Sink::Syslog));
    assert_eq!(writer::Sink::parse("./syslog"), Some(writer::Sink::File("./syslog".into())));
}

/// `audit.checkpoint_sink = syslog` through the system's logger socket: a socket bound at
/// `/dev/log` (only where none exists and this test may make one: as root) receives each
/// checkpoint's message from `syslog(3)`, and the note in it verifies.
#[test]
fn checkpoints_reach_the_system_log() {
    let dev_log = Path::new("/dev/log");
    if dev_log.exists() || !nix::unistd::geteuid().is_root() {
        println!("SKIP: /dev/log exists (a logger runs) or cannot be made here");
        return;
    }
    let Ok(sock) = std::os::unix::net::UnixDatagram::bind(dev_log) else {
        println!("SKIP: cannot bind /dev/log");
        return;
    };
    let r = std::panic::catch_unwind(|| {
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let l = log(2, 0);
        let mut w = Writer::open(&l.dir).unwrap();
        w.set_checkpoint_sink(Some(writer::Sink::Syslog));
        w.checkpoint(&record(2)).unwrap();
        let sent = w.last_checkpoint().unwrap().to_string();
        // Other programs on this machine may log meanwhile: the checkpoint's message is found
        // among what arrives.
        let mut buf = vec![0u8; 65536];
        let datagram = loop {
            let n = sock.recv(&mut buf).expect("a message on /dev/log");
            let d = String::from_utf8_lossy(&buf[..n]).into_owned();
            if d.contains("tessera-audit checkpoint") {
                break d;
            }
        };
        // RFC 3164 as glibc sends it: <PRI> with LOG_AUTH (4) and LOG_NOTICE (5): 4 * 8 + 5.
        assert!(datagram.starts_with("<37>"), "{datagram}");
        let note = writer::note_from_syslog(&datagram).unwrap();
        assert_eq!(note, sent);
        assert_eq!(Note::parse(&note).unwrap().size, 2);
    });
    let _ = std::fs::remove_file(dev_log);
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

/// What one append costs, and how much of it is the record itself (JSON, HMAC, the key's
/// evolution, the state's encoding) rather than the file system: `cargo test --release -p
/// tessera-audit --test checkpoints -- --ignored append_cost --nocapture`. Measures only.
#[test]
#[ignore]
fn append_cost() {
    const N: u64 = 20_000;
    let l = log(0, 0);
    let mut w = Writer::open(&l.dir).unwrap();
    w.set_checkpoint_every(0);
    // This thread's time on a CPU (ns), which a loaded machine does not inflate as it does the
    // wall clock.
    let cpu = || -> f64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let mut recs: Vec<Record> = (0..N).map(record).collect();
    let (t, c) = (std::time::Instant::now(), cpu());
    for r in &mut recs {
        w.append(r, false).unwrap();
    }
    let append = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    let append_cpu = (cpu() - c) / 1e3 / N as f64;
    // The same records made in memory only, with the state's encoding and decoding as each
    // append does.
    let seed = [5u8; 32];
    let mut chain = tessera_audit::chain::Chain::start(&seed);
    let mut buf = Vec::with_capacity(1024);
    let mut st = tessera_audit::state::State::decode(&std::fs::read(l.dir.join(STATE)).unwrap()).unwrap();
    let (t, c) = (std::time::Instant::now(), cpu());
    for r in &mut recs {
        let (epoch, index) = tessera_audit::chain::position(chain.seq());
        r.epoch = epoch;
        r.key_index = index;
        let mac = tessera_audit::format::encode(&mut buf, r, chain.record_key());
        chain.advance();
        st.last_mac = mac;
        let enc = st.encode();
        std::hint::black_box(tessera_audit::state::State::decode(&enc[..]));
    }
    let memory = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    let memory_cpu = (cpu() - c) / 1e3 / N as f64;
    println!(
        "CPU time: append {append_cpu:.2} µs; the record in memory {memory_cpu:.2} µs; the file system {:.2} µs",
        append_cpu - memory_cpu
    );
    println!(
        "append: {append:.2} µs; the record in memory: {memory:.2} µs; the file system: {:.2} µs",
        append - memory
    );
}

/// Whoever takes the host and its current checkpoint key (generation 2, after the checkpoints of
/// 10 and 20 records) signs a checkpoint over a history of their own, record 5 changed: neither
/// an inclusion proof of the changed record nor a consistency proof from a kept checkpoint
/// holds with only the anchor key, however the proof is put together.
#[test]
fn a_stolen_current_key_cannot_forge_an_earlier_checkpoint() {
    use tessera_audit::checkpoint::SigningKeys;
    use tessera_audit::merkle;
    let l = log(25, 10);
    let keys = l.keys();
    let stolen = SigningKeys::load(&l.dir).unwrap().unwrap();
    assert_eq!(stolen.generation(), 2);
    let real = lines(&l.dir.join(LOG));
    let (note10, note20) = (trusted_text(&l, 10), trusted_text(&l, 20));
    // The forged history: the real lines with record 5 changed, 30 records.
    let mut fake: Vec<String> = real.iter().map(|x| x.trim_end().to_string()).collect();
    fake[5] = fake[5].replace("operation 5", "operation 5, approved by nobody");
    while fake.len() < 30 {
        fake.push(fake[1].clone());
    }
    let leaves: Vec<merkle::Hash> = fake.iter().map(|x| merkle::leaf(x.as_bytes())).collect();
    let fresh = stolen.generate_next().unwrap();
    let forged = stolen.sign(30, &merkle::root(&leaves), &[0; 32], Some(fresh.public())).unwrap().encode();
    let hex = |v: Vec<merkle::Hash>| v.iter().map(|h| tessera_audit::format::hex(h)).collect::<Vec<_>>();
    // Inclusion of the changed record under the forged checkpoint, with the real key chain.
    let inclusion = proof::Proof {
        kind: "inclusion".into(),
        seq: Some(5),
        record: Some(fake[5].clone()),
        from: None,
        tree_size: 30,
        path: hex(merkle::inclusion_proof(&leaves[..30], 5)),
        checkpoint: forged.clone(),
        keys: vec![note10.clone(), note20.clone()],
        links: Vec::new(),
    };
    let e = proof::check(&inclusion, &keys).unwrap_err();
    assert!(matches!(e, ProofError::Chain(Class::SignedByLaterKey, _)), "{e:?}");
    // Without the chain, or with only part of it: the forged checkpoint's key is not reached.
    for chain in [vec![], vec![note10.clone()]] {
        let p = proof::Proof { keys: chain, ..inclusion.clone() };
        assert!(proof::check(&p, &keys).is_err());
    }
    // Consistency from the kept checkpoint of 10 to the forged one (the forged tree keeps records
    // 0..9): the link through the checkpoint of 20, which the stolen key did not sign, breaks.
    let consistency = proof::Proof {
        kind: "consistency".into(),
        seq: None,
        record: None,
        from: Some(note10.clone()),
        tree_size: 30,
        path: hex(merkle::consistency_proof(&leaves, 10)),
        checkpoint: forged.clone(),
        keys: vec![note10.clone(), note20.clone()],
        links: vec![hex(merkle::consistency_proof(&leaves[..20], 10)), hex(merkle::consistency_proof(&leaves, 20))],
    };
    let e = proof::check(&consistency, &keys).unwrap_err();
    assert!(matches!(e, ProofError::Mismatch(_)), "{e:?}");
    // Leaving the checkpoint of 20 out of the links is refused too.
    let p = proof::Proof { links: vec![hex(merkle::consistency_proof(&leaves, 10))], ..consistency.clone() };
    assert!(matches!(proof::check(&p, &keys), Err(ProofError::Mismatch(_))));
    // The honest proofs of the same log hold.
    let p = proof::prove_consistency(&[l.dir.join(LOG)], &note10, &keys).unwrap();
    assert_eq!(p.links.len(), 1);
    assert!(matches!(proof::check(&p, &keys), Ok(Shown::Consistent { .. })));
    let p = proof::prove_inclusion(&[l.dir.join(LOG)], 15).unwrap();
    assert_eq!(p.keys, [note10]);
    assert!(matches!(proof::check(&p, &keys), Ok(Shown::Included { seq: 15, .. })));
    // A proof whose key chain was tampered with names how.
    let mut bad = p.clone();
    bad.keys.push(bad.keys[0].clone());
    assert!(matches!(proof::check(&bad, &keys), Err(ProofError::Chain(Class::SignedByReplacedKey, _))));
    bad.keys = vec![note20];
    assert!(matches!(proof::check(&bad, &keys), Err(ProofError::Chain(Class::BadCheckpointSignature, _))));
}

/// A writer stopped between making the next pair and committing it: a pending pair whose
/// checkpoint never reached the log is discarded (never used); one whose checkpoint is in the log
/// is committed by the next checkpoint, and the key chain file completed.
#[test]
fn a_key_change_stopped_midway_is_settled_by_the_next_checkpoint() {
    use tessera_audit::checkpoint::{SigningKeys, SIGN_NEXT};
    use tessera_audit::keychain::KEYS;
    let l = log(5, 0);
    let mut w = Writer::open(&l.dir).unwrap();
    let cur = SigningKeys::load(&l.dir).unwrap().unwrap();
    let mut orphan = cur.generate_next().unwrap();
    // Its checkpoint would have begun at offset 0 of file 1, where record 0 is.
    orphan.store_pending(&l.dir, (1, 0)).unwrap();
    assert_eq!(w.checkpoint(&record(0)).unwrap(), 5);
    let n = Note::parse(w.last_checkpoint().unwrap()).unwrap();
    assert_eq!(n.key_gen, Some(0));
    assert_ne!(n.next.as_ref().map(|x| &x.1), Some(orphan.public()));
    assert!(!l.dir.join(SIGN_NEXT).exists());
    let held = SigningKeys::load(&l.dir).unwrap().unwrap();
    assert_eq!((held.generation(), Some(held.public())), (1, n.next.as_ref().map(|x| &x.1)));
    // Stopped after its checkpoint went into the log, before the commit and the key chain file.
    let (sign_before, keys_before) =
        (std::fs::read(l.dir.join(SIGN)).unwrap(), std::fs::read(l.dir.join(KEYS)).unwrap());
    w.append(&mut record(6), false).unwrap();
    assert_eq!(w.checkpoint(&record(0)).unwrap(), 7);
    std::fs::rename(l.dir.join(SIGN), l.dir.join(SIGN_NEXT)).unwrap();
    std::fs::write(l.dir.join(SIGN), sign_before).unwrap();
    std::fs::write(l.dir.join(KEYS), keys_before).unwrap();
    // Another writer's next checkpoint finishes the change: signed by generation 2.
    let mut w2 = Writer::open(&l.dir).unwrap();
    w2.append(&mut record(8), false).unwrap();
    assert_eq!(w2.checkpoint(&record(0)).unwrap(), 9);
    assert_eq!(Note::parse(w2.last_checkpoint().unwrap()).unwrap().key_gen, Some(2));
    assert!(!l.dir.join(SIGN_NEXT).exists());
    let s = l.public(None);
    assert!(s.failure.is_none(), "{:?}", s.failure);
    let kc = s.key_chain.unwrap();
    assert_eq!((kc.generations, kc.key_file_entries), (3, Some(3)));
    assert!(l.keyed().failure.is_none());
    // The log cut back to before its last checkpoint (no state file to tell): the key chain file
    // still holds that checkpoint.
    let recs = lines(&l.dir.join(LOG));
    std::fs::write(l.dir.join(LOG), recs[..8].concat()).unwrap();
    let f = public::verify(&l.dir.join(LOG), None, &l.keys(), None).unwrap().failure.unwrap();
    assert_eq!((f.class, f.seq), (Class::Truncated, 8), "{f}");
}

/// A log of the first format (one signing pair for life, `TSAUDSK1`, notes without `key` and
/// `next`) goes on with forward-secure checkpoints once the writer is upgraded: the first new
/// checkpoint is signed by the old pair (the anchor) and certifies a fresh one; the verifier
/// takes the old notes under the anchor key and follows the chain from there.
#[test]
fn a_log_of_the_first_format_goes_on_forward_secure() {
    use aws_lc_rs::signature::{
        EcdsaKeyPair, KeyPair, PqdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ML_DSA_65_SIGNING,
    };
    use tessera_audit::checkpoint::SigningKeys;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    let seed = [7u8; 32];
    writer::create_with_seed(&dir, &seed).unwrap();
    // The key file of the first format.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let ml = PqdsaKeyPair::generate(&ML_DSA_65_SIGNING).unwrap();
    let ml8 = ml.to_pkcs8v1().unwrap();
    let mut b = b"TSAUDSK1".to_vec();
    for k in [ec.as_ref(), ml8.as_ref()] {
        b.extend_from_slice(&(k.len() as u32).to_be_bytes());
        b.extend_from_slice(k);
    }
    let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &b);
    b.extend_from_slice(sum.as_ref());
    std::fs::write(dir.join(SIGN), &b).unwrap();
    let ecp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, ec.as_ref()).unwrap();
    let public = PublicKeys { ecdsa: ecp.public_key().as_ref().to_vec(), mldsa: ml.public_key().as_ref().to_vec() };
    std::fs::write(dir.join(PUB), public.encode()).unwrap();
    let old = SigningKeys::load(&dir).unwrap().unwrap();
    assert!(old.is_legacy() && old.generation() == 0);
    // Ten records and a checkpoint of the first format, as the earlier writer made them.
    let mut w = Writer::open(&dir).unwrap();
    w.set_checkpoint_every(0);
    for i in 0..10 {
        w.append(&mut record(i), false).unwrap();
    }
    let recs = lines(&dir.join(LOG));
    let covered: Vec<&[u8]> = recs.iter().map(|x| x.trim_end().as_bytes()).collect();
    let head = tessera_audit::format::split(covered[9]).unwrap().1;
    let legacy = old.sign(10, &tessera_audit::tree::root_of(&covered), &head, None).unwrap();
    assert!(legacy.key_gen.is_none() && !legacy.encode().contains("\nnext "));
    let mut r = record(10);
    r.function = Cow::Borrowed("checkpoint");
    r.category = Cow::Borrowed("checkpoint");
    r.checkpoint = Some(Cow::Owned(legacy.encode()));
    w.append(&mut r, true).unwrap();
    drop(old);
    // The upgraded writer: forward-secure from here.
    for i in 11..15 {
        w.append(&mut record(i), false).unwrap();
    }
    w.checkpoint(&record(0)).unwrap();
    let n = Note::verify(w.last_checkpoint().unwrap(), &public).unwrap();
    assert_eq!((n.size, n.key_gen), (15, Some(0)));
    assert!(!SigningKeys::load(&dir).unwrap().unwrap().is_legacy());
    w.append(&mut record(16), false).unwrap();
    w.checkpoint(&record(0)).unwrap();
    let st = std::fs::read(dir.join(STATE)).unwrap();
    let s = public::verify(&dir.join(LOG), Some(&st), &public, None).unwrap();
    assert!(s.failure.is_none(), "{:?}", s.failure);
    let kc = s.key_chain.unwrap();
    assert_eq!((s.checkpoints, kc.legacy_checkpoints, kc.generations), (3, 1, 2));
    // A note of the first format the auditor kept still serves as a trusted checkpoint.
    let legacy_text = legacy.encode();
    let trusted = public::read_trusted(
        &{
            let p = t.path().join("legacy-note");
            std::fs::write(&p, &legacy_text).unwrap();
            p
        },
        &public,
    )
    .unwrap();
    assert_eq!(public::verify(&dir.join(LOG), Some(&st), &public, Some(&trusted)).unwrap().extends_trusted, Some(10));
}
