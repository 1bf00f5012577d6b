//! The verifier against tampering: the committed corpus (one crafted log per attack class) and a
//! property test over a 10,000-record log (any single-byte change, line deletion, swap or
//! duplication is detected).
//!
//! `TESSERA_AUDIT_REGENERATE=1 cargo test -p tessera-audit --test tamper regenerate -- --ignored`
//! writes the corpus again (under `audit/tests/corpus/`, with the seed in `corpus/seed` and the
//! checkpoint signing keys' public half in `corpus/pubkey`; the private half is not kept).
//! The `cp-*` cases are logs of the first checkpoint format (one signing pair for life, no
//! `key`/`next` lines), written by an earlier version and kept as they were: the verifier still
//! reads that format. The `fs-*` cases (forward-secure checkpoint keys, anchor public keys in
//! `corpus/fs-pubkey`) are written by `regenerate_forward_secure`.

use proptest::prelude::*;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tessera_audit::chain::{Chain, Key};
use tessera_audit::format::{self, Record};
use tessera_audit::verify::{self, Class, End};
use tessera_audit::writer::{self, Writer, LOG, STATE};

const CORPUS_SEED: Key = [0x5a; 32];

fn record(i: u64) -> Record<'static> {
    Record {
        time_us: 1_760_000_000_000_000 + i * 1000,
        pid: 4242,
        uid: 1000,
        function: Cow::Borrowed(if i.is_multiple_of(3) { "C_Sign" } else { "C_Login" }),
        category: Cow::Borrowed(if i.is_multiple_of(3) { "crypto" } else { "auth" }),
        slot: Some(1),
        token: Some(Cow::Borrowed("0123456789abcdef")),
        session: Some(i % 7 + 1),
        user: Some(Cow::Borrowed("CKU_USER")),
        mechanism: i.is_multiple_of(3).then_some(Cow::Borrowed("CKM_SHA256_HMAC")),
        mechanism_id: i.is_multiple_of(3).then_some(0x251),
        op: i.is_multiple_of(3).then_some(Cow::Borrowed("sign")),
        verdict: i.is_multiple_of(3).then_some(Cow::Borrowed("approved")),
        rv: Cow::Borrowed("CKR_OK"),
        rv_id: 0,
        fips_approved: i.is_multiple_of(3),
        mode: Cow::Borrowed("approved"),
        ..Default::default()
    }
}

/// A log of `n` records in `dir`, made with `seed`.
fn make(dir: &Path, seed: &Key, n: u64) {
    writer::create_with_seed(dir, seed).unwrap();
    let mut w = Writer::open(dir).unwrap();
    for i in 0..n {
        w.append(&mut record(i), false).unwrap();
    }
}

fn lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

/// The MAC suffix of a line replaced by one under `key`, over the line's covered bytes.
fn reseal(line: &[u8], key: &Key) -> Vec<u8> {
    let body = &line[..line.len() - 1];
    let covered = &body[..body.len() - format::SUFFIX_LEN];
    let mac = tessera_audit::chain::mac(key, covered);
    let mut out = covered.to_vec();
    out.extend_from_slice(format!(",\"mac\":\"{}\"}}\n", format::hex(&mac)).as_bytes());
    out
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The corpus: (name, the class the verifier must report, or None for intact logs).
const CASES: &[(&str, Option<Class>)] = &[
    ("intact", None),
    ("torn-tail", None),
    ("modified", Some(Class::Modified)),
    ("deleted", Some(Class::Deleted)),
    ("inserted", Some(Class::Inserted)),
    ("reordered", Some(Class::Reordered)),
    ("duplicated", Some(Class::Duplicated)),
    ("truncated", Some(Class::Truncated)),
    ("truncated-to-empty", Some(Class::Truncated)),
    ("key-epoch-mismatch", Some(Class::KeyEpochMismatch)),
    ("resealed-current-key", Some(Class::Resealed)),
    ("resealed-claimed-later-key", Some(Class::Resealed)),
    ("rolled-back-state", Some(Class::RolledBack)),
];

#[test]
#[ignore = "writes the corpus; run with TESSERA_AUDIT_REGENERATE=1"]
fn regenerate() {
    assert!(std::env::var_os("TESSERA_AUDIT_REGENERATE").is_some());
    let root = corpus();
    // This part of the corpus only (`regenerate_checkpoints` writes the rest).
    for (name, _) in CASES {
        let _ = std::fs::remove_dir_all(root.join(name));
    }
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("seed"), format!("{}\n", format::hex(&CORPUS_SEED))).unwrap();
    let base = tempfile::tempdir().unwrap();
    make(base.path(), &CORPUS_SEED, 12);
    let log = std::fs::read(base.path().join(LOG)).unwrap();
    let state = std::fs::read(base.path().join(STATE)).unwrap();
    let l = lines(&log);
    let join = |ls: &[Vec<u8>]| ls.concat();
    let write = |name: &str, log: &[u8], st: &[u8]| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(LOG), log).unwrap();
        std::fs::write(d.join(STATE), st).unwrap();
    };
    write("intact", &log, &state);
    // A torn tail: the next record's write cut short (the state does not count it).
    let mut torn = log.clone();
    torn.extend_from_slice(&l[11][..40]);
    write("torn-tail", &torn, &state);
    // Modified: record 5's rv changed.
    let mut m = l.clone();
    m[5] = String::from_utf8(m[5].clone()).unwrap().replace("\"rv\":\"CKR_OK\"", "\"rv\":\"CKR_NO\"").into_bytes();
    assert_ne!(m[5], l[5]);
    write("modified", &join(&m), &state);
    // Deleted: record 6 removed.
    let mut d = l.clone();
    d.remove(6);
    write("deleted", &join(&d), &state);
    // Inserted: a forged line (record 4 with another pid, MACed with a made-up key) before record 4.
    let mut ins = l.clone();
    let forged = String::from_utf8(l[4].clone()).unwrap().replace("\"pid\":4242", "\"pid\":1");
    ins.insert(4, reseal(forged.as_bytes(), &[9; 32]));
    write("inserted", &join(&ins), &state);
    // Reordered: records 7 and 8 swapped.
    let mut r = l.clone();
    r.swap(7, 8);
    write("reordered", &join(&r), &state);
    // Duplicated: record 3 again after itself.
    let mut dup = l.clone();
    dup.insert(4, l[3].clone());
    write("duplicated", &join(&dup), &state);
    // Truncated: the last three records cut off, the state left as it was.
    write("truncated", &join(&l[..9]), &state);
    // Truncated across an empty stretch: every record gone, the state left.
    write("truncated-to-empty", b"", &state);
    // Key-epoch mismatch: record 2 claims key index 7 (and is MACed with nothing valid).
    let mut k = l.clone();
    k[2] = String::from_utf8(k[2].clone()).unwrap().replace("\"key_index\":2", "\"key_index\":7").into_bytes();
    write("key-epoch-mismatch", &join(&k), &state);
    // Re-sealed with the host's current key (the key of record 12, the next one): record 5
    // altered and MACed again with the key an attacker who took the host now holds.
    let current = Chain::seek(&CORPUS_SEED, 12);
    let mut rs = l.clone();
    let altered = String::from_utf8(l[5].clone()).unwrap().replace("\"uid\":1000", "\"uid\":0");
    rs[5] = reseal(altered.as_bytes(), current.record_key());
    write("resealed-current-key", &join(&rs), &state);
    // Re-sealed, naming the later key's position in the record.
    let mut rc = l.clone();
    let named = String::from_utf8(l[5].clone()).unwrap().replace("\"key_index\":5", "\"key_index\":12");
    rc[5] = reseal(named.as_bytes(), current.record_key());
    write("resealed-claimed-later-key", &join(&rc), &state);
    // A state from record 6 put back over a log of 12.
    let early = tempfile::tempdir().unwrap();
    make(early.path(), &CORPUS_SEED, 6);
    let old_state = std::fs::read(early.path().join(STATE)).unwrap();
    write("rolled-back-state", &log, &old_state);
}

/// The checkpoint part of the corpus: (name, the class with the public key, the class with the
/// seed). A `trusted` file in the case's directory is the checkpoint the auditor kept.
const CHECKPOINT_CASES: &[(&str, Option<Class>, Option<Class>)] = &[
    ("cp-intact", None, None),
    ("cp-modified-sealed", Some(Class::MerkleMismatch), Some(Class::Modified)),
    ("cp-bad-signature", Some(Class::BadCheckpointSignature), None),
    ("cp-false-root", Some(Class::MerkleMismatch), None),
    ("cp-rolled-back", Some(Class::RolledBack), None),
    ("cp-rewritten", Some(Class::MerkleMismatch), Some(Class::Modified)),
];

/// A line whose MAC is made again with the key of its own position (`seq`) under `seed`.
fn remac(line: &str, seq: u64, seed: &Key) -> String {
    String::from_utf8(reseal(line.as_bytes(), Chain::seek(seed, seq).record_key())).unwrap()
}

/// Lines `from..` MACed again in a chain (each `prev` the MAC of the line before, each MAC under
/// its own key), as someone who held the chain's key at record `from` can; the state to match.
fn rechain(l: &mut [String], from: usize, seed: &Key) -> Vec<u8> {
    for i in from..l.len() {
        let prev = if i == 0 { [0; 32] } else { format::split(l[i - 1].trim_end().as_bytes()).unwrap().1 };
        let at = l[i].find("\"prev\":\"").unwrap() + 8;
        l[i].replace_range(at..at + 64, &format::hex(&prev));
        l[i] = remac(&l[i], i as u64, seed);
    }
    let st = tessera_audit::state::State {
        chain: Chain::seek(seed, l.len() as u64),
        log_len: l.iter().map(|x| x.len() as u64).sum(),
        last_mac: format::split(l[l.len() - 1].trim_end().as_bytes()).unwrap().1,
        file: 1,
    };
    st.encode().to_vec()
}

/// A checkpoint record's note replaced by `note` (a JSON string's contents).
fn with_note(line: &str, note: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let old = serde_json::to_string(v["checkpoint"].as_str().unwrap()).unwrap();
    line.replace(&old, &serde_json::to_string(note).unwrap())
}

/// The forward-secure part of the corpus: (name, the class with the anchor public key, the class
/// with the seed). The attacker of each case is given the chain's keys as well (every record
/// after the change MACed again under its own key), so the seed shows nothing: only the
/// checkpoint keys' chain can tell.
const FS_CASES: &[(&str, Option<Class>, Option<Class>)] = &[
    ("fs-intact", None, None),
    ("fs-resigned-later-key", Some(Class::SignedByLaterKey), None),
    ("fs-replaced-key", Some(Class::SignedByReplacedKey), None),
    ("fs-certification-skipped", Some(Class::CertificationSkipped), None),
    ("fs-certification-forked", Some(Class::CertificationForked), None),
    ("fs-key-chain-file-broken", Some(Class::BadCheckpointSignature), None),
];

#[test]
#[ignore = "writes the forward-secure checkpoint corpus; run with TESSERA_AUDIT_REGENERATE=1"]
fn regenerate_forward_secure() {
    use tessera_audit::checkpoint::{Note, SigningKeys, PUB, SIGN};
    use tessera_audit::keychain::KEYS;
    assert!(std::env::var_os("TESSERA_AUDIT_REGENERATE").is_some());
    let root = corpus();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path();
    writer::create_with_seed(dir, &CORPUS_SEED).unwrap();
    SigningKeys::create(dir).unwrap();
    std::fs::copy(dir.join(PUB), root.join("fs-pubkey")).unwrap();
    let mut w = Writer::open(dir).unwrap();
    w.set_checkpoint_every(0);
    // Records 0..9, checkpoint 10 (key generation 0), 11..19, 20 (generation 1), 21..29, 30
    // (2), 31..39, 40 (3), 41..44; the host holds generation 4. Each generation's private key is
    // kept here (as a thief of the host at that time would have it), to craft the cases.
    let mut stolen = Vec::new();
    let mut i = 0;
    for cp in [10, 20, 30, 40] {
        while i < cp {
            w.append(&mut record(i), false).unwrap();
            i += 1;
        }
        stolen.push(SigningKeys::load(dir).unwrap().unwrap());
        w.checkpoint(&record(i)).unwrap();
        i += 1;
    }
    for _ in 0..4 {
        w.append(&mut record(i), false).unwrap();
        i += 1;
    }
    stolen.push(SigningKeys::load(dir).unwrap().unwrap());
    assert_eq!(stolen.iter().map(|k| k.generation()).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    let log = String::from_utf8(std::fs::read(dir.join(LOG)).unwrap()).unwrap();
    let state = std::fs::read(dir.join(STATE)).unwrap();
    let keys_file = std::fs::read_to_string(dir.join(KEYS)).unwrap();
    let l: Vec<String> = log.lines().map(|x| format!("{x}\n")).collect();
    let note_at = |lines: &[String], k: usize| -> String {
        serde_json::from_str::<serde_json::Value>(&lines[k]).unwrap()["checkpoint"].as_str().unwrap().into()
    };
    for k in [10, 20, 30, 40] {
        assert!(l[k].contains("\"checkpoint\":"), "{k}");
    }
    let write = |name: &str, lines: &[String], st: &[u8], keys: &str, trusted: Option<&str>| {
        let d = root.join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(LOG), lines.concat()).unwrap();
        std::fs::write(d.join(STATE), st).unwrap();
        std::fs::write(d.join(KEYS), keys).unwrap();
        if let Some(t) = trusted {
            std::fs::write(d.join("trusted"), t).unwrap();
        }
    };
    let _ = SIGN;
    write("fs-intact", &l, &state, &keys_file, Some(&note_at(&l, 20)));
    // The root of records 0..k of `lines`.
    let root_of = |lines: &[String], k: usize| {
        let r: Vec<&[u8]> = lines[..k].iter().map(|x| x.trim_end_matches('\n').as_bytes()).collect();
        tessera_audit::tree::root_of(&r)
    };
    let head_of = |lines: &[String], k: usize| format::split(lines[k - 1].trim_end().as_bytes()).unwrap().1;
    // CVE-2023-31439: whoever took the host at the end (the current key, generation 4) changes
    // record 13 and signs the checkpoint of 20 again over the changed history, with the key it
    // holds; the note otherwise as it was (it names generation 1 and certifies generation 2).
    let mut r = l.clone();
    r[13] = r[13].replace("\"pid\":4242", "\"pid\":4243");
    let st = rechain(&mut r, 13, &CORPUS_SEED);
    let mut n = Note::parse(&note_at(&l, 20)).unwrap();
    (n.root, n.head) = (root_of(&r, 20), head_of(&r, 20));
    stolen[4].resign(&mut n).unwrap();
    r[20] = with_note(&r[20], &n.encode());
    let st2 = rechain(&mut r, 20, &CORPUS_SEED);
    assert_eq!(st.len(), st2.len());
    write("fs-resigned-later-key", &r, &st2, &keys_file, None);
    // The checkpoint of 30 (generation 2's) signed by generation 1, which the checkpoint of 20
    // replaced: a key used again after it was replaced.
    let mut r = l.clone();
    let mut n = Note::parse(&note_at(&l, 30)).unwrap();
    stolen[1].resign(&mut n).unwrap();
    r[30] = with_note(&r[30], &n.encode());
    let st = rechain(&mut r, 30, &CORPUS_SEED);
    write("fs-replaced-key", &r, &st, &keys_file, None);
    // The checkpoint of 30 signed by generation 2, as it must be, but certifying generation 4
    // (a generation skipped); the later checkpoints signed along the skipped numbering.
    let mut r = l.clone();
    let mut n = Note::parse(&note_at(&l, 30)).unwrap();
    n.next = n.next.map(|(_, k)| (4, k));
    stolen[2].resign(&mut n).unwrap();
    r[30] = with_note(&r[30], &n.encode());
    let st = rechain(&mut r, 30, &CORPUS_SEED);
    write("fs-certification-skipped", &r, &st, &keys_file, None);
    // Generation 2 certified two successors: the log's checkpoint of 30, and another note in the
    // key chain file (signed by generation 2 too, certifying another key), which ends there.
    let mut n = Note::parse(&note_at(&l, 30)).unwrap();
    let other = SigningKeys::generate().unwrap();
    n.next = Some((3, other.public().clone()));
    stolen[2].resign(&mut n).unwrap();
    let mut side: Vec<String> = keys_file.lines().take(2).map(|x| format!("{x}\n")).collect();
    side.push(format!("{}\n", serde_json::to_string(&n.encode()).unwrap()));
    write("fs-certification-forked", &l, &state, &side.concat(), None);
    // The key chain file's second certification with a byte of its signature changed.
    let mut side: Vec<String> = keys_file.lines().map(|x| x.to_string()).collect();
    let t: String = serde_json::from_str(&side[1]).unwrap();
    let at = t.find("\u{2014} ").unwrap() + 60;
    let mut bad = t.clone();
    bad.replace_range(at..at + 1, if &t[at..at + 1] == "A" { "B" } else { "A" });
    side[1] = serde_json::to_string(&bad).unwrap();
    write("fs-key-chain-file-broken", &l, &state, &(side.join("\n") + "\n"), None);
}

#[test]
fn the_forward_secure_corpus_is_classified() {
    use tessera_audit::checkpoint::PublicKeys;
    let root = corpus();
    let keys = PublicKeys::read(&root.join("fs-pubkey")).expect("the corpus anchor key (audit/tests/corpus/fs-pubkey)");
    for (name, public, keyed) in FS_CASES {
        let d = root.join(name);
        let trusted = std::fs::read_to_string(d.join("trusted"))
            .ok()
            .map(|_| tessera_audit::public::read_trusted(&d.join("trusted"), &keys).expect("the trusted checkpoint"));
        let st = std::fs::read(d.join(STATE)).unwrap();
        let p = tessera_audit::public::verify(&d.join(LOG), Some(&st), &keys, trusted.as_ref()).unwrap();
        assert_eq!(p.failure.as_ref().map(|f| f.class), *public, "{name} (public key): {:?}", p.failure);
        let k = verify::verify_path(&d, &CORPUS_SEED, 2).unwrap();
        assert_eq!(k.failure.as_ref().map(|f| f.class), *keyed, "{name} (seed): {:?}", k.failure);
        if name == &"fs-intact" {
            assert_eq!(p.extends_trusted, Some(20));
            let kc = p.key_chain.unwrap();
            assert_eq!((kc.generations, kc.legacy_checkpoints, kc.key_file_entries), (4, 0, Some(4)));
        }
    }
    // The command line: the exit status of each class, the trusted checkpoint where there is one.
    for (name, public, _) in FS_CASES {
        let d = root.join(name);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera-audit"));
        cmd.args(["verify", d.to_str().unwrap(), "--pubkey", root.join("fs-pubkey").to_str().unwrap()]);
        if d.join("trusted").exists() {
            cmd.args(["--trusted-checkpoint", d.join("trusted").to_str().unwrap()]);
        }
        let out = cmd.output().unwrap();
        let want = public.map_or(0, |c| i32::from(c.exit_code()));
        assert_eq!(out.status.code(), Some(want), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The failure is named at the checkpoint that does not hold.
    let at = |name: &str| {
        let d = root.join(name);
        let st = std::fs::read(d.join(STATE)).unwrap();
        tessera_audit::public::verify(&d.join(LOG), Some(&st), &keys, None).unwrap().failure.unwrap().seq
    };
    assert_eq!(
        [
            at("fs-resigned-later-key"),
            at("fs-replaced-key"),
            at("fs-certification-skipped"),
            at("fs-certification-forked")
        ],
        [20, 30, 30, 30]
    );
}

#[test]
fn the_checkpoint_corpus_is_classified() {
    use tessera_audit::checkpoint::PublicKeys;
    let root = corpus();
    let keys = PublicKeys::read(&root.join("pubkey")).expect("the corpus public key (audit/tests/corpus/pubkey)");
    for (name, public, keyed) in CHECKPOINT_CASES {
        let d = root.join(name);
        let trusted = std::fs::read_to_string(d.join("trusted"))
            .ok()
            .map(|t| tessera_audit::checkpoint::Note::verify(&t, &keys).expect("the trusted checkpoint verifies"));
        let st = std::fs::read(d.join(STATE)).unwrap();
        let p = tessera_audit::public::verify(&d.join(LOG), Some(&st), &keys, trusted.as_ref()).unwrap();
        assert_eq!(p.failure.as_ref().map(|f| f.class), *public, "{name} (public key): {:?}", p.failure);
        let k = verify::verify_path(&d, &CORPUS_SEED, 2).unwrap();
        assert_eq!(k.failure.as_ref().map(|f| f.class), *keyed, "{name} (seed): {:?}", k.failure);
    }
    let intact = tessera_audit::public::verify(&root.join("cp-intact").join(LOG), None, &keys, None).unwrap();
    assert_eq!((intact.checkpoints, intact.sealed, intact.unsealed_tail), (2, Some(20), Some(6)));
}

#[test]
fn the_corpus_is_classified() {
    let root = corpus();
    let seed = verify::read_seed(&root.join("seed")).expect("the corpus seed (audit/tests/corpus/seed)");
    for (name, want) in CASES {
        let s = verify::verify_path(&root.join(name), &seed, 2).unwrap();
        let got = s.failure.as_ref().map(|f| f.class);
        assert_eq!(got, *want, "{name}: {:?}", s.failure);
        if let Some(f) = &s.failure {
            assert!(f.line >= 1, "{name}: {f}");
        }
    }
    let torn = verify::verify_path(&root.join("torn-tail"), &seed, 2).unwrap();
    assert_eq!(torn.torn_tail, Some((13, 40)));
    assert_eq!(torn.records, 12);
    assert_eq!(torn.end, End::Anchored);
    let intact = verify::verify_path(&root.join("intact"), &seed, 1).unwrap();
    assert_eq!((intact.records, intact.approved, intact.non_approved), (12, 4, 0));
    // Where the failures are.
    let at = |name: &str| verify::verify_path(&root.join(name), &seed, 1).unwrap().failure.unwrap();
    assert_eq!((at("modified").line, at("modified").seq), (6, 5));
    assert_eq!((at("deleted").line, at("deleted").seq), (7, 7));
    assert_eq!((at("reordered").line, at("reordered").seq), (8, 8));
    assert_eq!((at("duplicated").line, at("duplicated").seq), (5, 3));
    assert_eq!((at("inserted").line, at("inserted").seq), (5, 4));
    assert_eq!((at("truncated").line, at("truncated").seq), (10, 9));
    // Without the state file, a log cut back cannot be told from a short log: not anchored.
    let file = verify::verify_path(&root.join("truncated").join(LOG), &seed, 1).unwrap();
    assert!(file.failure.is_none() && file.end == End::NotAnchored);
    // Another seed: nothing verifies.
    let other = verify::verify_path(&root.join("intact"), &[1; 32], 1).unwrap();
    assert_eq!(other.failure.unwrap().class, Class::Modified);
}

/// One 10,000-record log, made once.
fn big() -> &'static (Vec<u8>, Vec<u8>) {
    static BIG: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    BIG.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        make(d.path(), &CORPUS_SEED, 10_000);
        (std::fs::read(d.path().join(LOG)).unwrap(), std::fs::read(d.path().join(STATE)).unwrap())
    })
}

fn detected(log: &[u8]) -> bool {
    let (_, state) = big();
    let s = verify::verify(log, Path::new("audit.log"), Some(state), &CORPUS_SEED, 2);
    s.failure.is_some()
}

#[test]
fn the_big_log_is_intact() {
    let (log, state) = big();
    let s = verify::verify(log, Path::new("audit.log"), Some(state), &CORPUS_SEED, 2);
    assert!(s.failure.is_none(), "{:?}", s.failure);
    assert_eq!(s.records, 10_000);
    assert_eq!(s.end, End::Anchored);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_single_byte_change_is_detected(pos in 0usize..usize::MAX, delta in 1u8..=255) {
        let (log, _) = big();
        let mut t = log.clone();
        let p = pos % t.len();
        t[p] = t[p].wrapping_add(delta);
        prop_assert!(detected(&t), "byte {p} changed by {delta}");
    }

    #[test]
    fn any_line_deletion_is_detected(k in 0usize..10_000) {
        let mut l = lines(&big().0);
        l.remove(k);
        prop_assert!(detected(&l.concat()), "line {k} deleted");
    }

    #[test]
    fn any_line_swap_is_detected(j in 0usize..10_000, k in 0usize..10_000) {
        prop_assume!(j != k);
        let mut l = lines(&big().0);
        l.swap(j, k);
        prop_assert!(detected(&l.concat()), "lines {j} and {k} swapped");
    }

    #[test]
    fn any_line_duplication_is_detected(k in 0usize..10_000, at in 0usize..=10_000) {
        let mut l = lines(&big().0);
        let copy = l[k].clone();
        l.insert(at, copy);
        prop_assert!(detected(&l.concat()), "line {k} copied to {at}");
    }
}

#[test]
fn a_writer_killed_before_its_state_update_is_taken_in() {
    let d = tempfile::tempdir().unwrap();
    make(d.path(), &CORPUS_SEED, 5);
    // The state as it was before record 4: as if the writer of record 4 died after its write.
    let before = tempfile::tempdir().unwrap();
    make(before.path(), &CORPUS_SEED, 4);
    std::fs::copy(before.path().join(STATE), d.path().join(STATE)).unwrap();
    let s = verify::verify_path(d.path(), &CORPUS_SEED, 1).unwrap();
    assert_eq!((s.failure.is_none(), s.end), (true, End::AnchoredOneBehind));
    // The next writer takes record 4 in and goes on with record 5.
    let mut w = Writer::open(d.path()).unwrap();
    assert_eq!(w.append(&mut record(5), false).unwrap(), 5);
    let s = verify::verify_path(d.path(), &CORPUS_SEED, 1).unwrap();
    assert_eq!((s.failure.is_none(), s.records, s.end), (true, 6, End::Anchored));
    // A torn line (a short write) is cut off before the next record.
    let mut f = std::fs::OpenOptions::new().append(true).open(d.path().join(LOG)).unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":6,\"time").unwrap();
    let s = verify::verify_path(d.path(), &CORPUS_SEED, 1).unwrap();
    assert!(s.failure.is_none() && s.torn_tail.is_some());
    assert_eq!(w.append(&mut record(6), false).unwrap(), 6);
    let s = verify::verify_path(d.path(), &CORPUS_SEED, 1).unwrap();
    assert_eq!((s.failure.is_none(), s.records, s.torn_tail), (true, 7, None));
    // A log cut back: the writer refuses.
    let len = std::fs::metadata(d.path().join(LOG)).unwrap().len();
    f.set_len(len - 10).unwrap();
    assert!(matches!(w.append(&mut record(7), false), Err(writer::Error::Truncated(..))));
}

#[test]
fn init_writes_a_private_seed_and_refuses_a_second_chain() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("audit");
    let seed = d.path().join("seed");
    writer::init(&dir, &seed).unwrap();
    assert_eq!(std::fs::metadata(&seed).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(dir.join(STATE)).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(matches!(writer::init(&dir, &d.path().join("seed2")), Err(writer::Error::Exists(_))));
    let mut w = Writer::open(&dir).unwrap();
    w.append(&mut record(0), true).unwrap();
    let s = verify::verify_path(&dir, &verify::read_seed(&seed).unwrap(), 2).unwrap();
    assert!(s.failure.is_none() && s.records == 1);
    // A directory others can write to is refused.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(Writer::open(&dir), Err(writer::Error::Unsafe(..))));
}

#[test]
fn a_long_log_verifies_on_two_threads_across_epochs() {
    let d = tempfile::tempdir().unwrap();
    let n = 3 * tessera_audit::chain::RECORDS_PER_EPOCH + 10;
    make(d.path(), &CORPUS_SEED, n);
    let t0 = std::time::Instant::now();
    let s = verify::verify_path(d.path(), &CORPUS_SEED, 2).unwrap();
    let took = t0.elapsed();
    assert!(s.failure.is_none(), "{:?}", s.failure);
    assert_eq!(s.records, n);
    eprintln!("verified {n} records in {took:?} ({:.2} us/record)", took.as_secs_f64() * 1e6 / n as f64);
    // A change in the second thread's half is found there.
    let mut log = std::fs::read(d.path().join(LOG)).unwrap();
    let at = log.len() - 300;
    log[at] ^= 1;
    let st = std::fs::read(d.path().join(STATE)).unwrap();
    let s = verify::verify(&log, Path::new("audit.log"), Some(&st), &CORPUS_SEED, 2);
    assert!(s.failure.is_some());
}

#[test]
fn crafted_numbers_do_not_stall_the_verifier() {
    let root = corpus();
    let log = std::fs::read(root.join("intact").join(LOG)).unwrap();
    let state = std::fs::read(root.join("intact").join(STATE)).unwrap();
    let text = String::from_utf8(log).unwrap();
    let t0 = std::time::Instant::now();
    // Record 5 claims a far seq, a far key position, and both.
    for (from, to) in [
        ("\"seq\":5,", "\"seq\":4611686018427387904,"),
        ("\"epoch\":0,\"key_index\":5,", "\"epoch\":281474976710655,\"key_index\":5,"),
        ("\"seq\":5,", "\"seq\":18446744073709551615,"),
    ] {
        let mut lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
        lines[5] = lines[5].replacen(from, to, 1);
        let s = verify::verify(lines.concat().as_bytes(), Path::new("audit.log"), Some(&state), &CORPUS_SEED, 1);
        assert!(s.failure.is_some(), "{from} -> {to}");
    }
    // A state naming a far record: the log is cut back as far as it can tell.
    let d = tempfile::tempdir().unwrap();
    make(d.path(), &CORPUS_SEED, 3);
    let good = std::fs::read(d.path().join(STATE)).unwrap();
    let far = tessera_audit::state::State {
        chain: Chain::from_parts(u64::MAX - 1, &[1; 32], &[2; 32]),
        log_len: u64::MAX,
        last_mac: [0; 32],
        file: 1,
    };
    std::fs::write(d.path().join(STATE), &far.encode()[..]).unwrap();
    let s = verify::verify_path(d.path(), &CORPUS_SEED, 1).unwrap();
    assert_eq!(s.failure.map(|f| f.class), Some(Class::Truncated));
    std::fs::write(d.path().join(STATE), good).unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(10), "{:?}", t0.elapsed());
}

/// The streaming verifier (`verify_path`: the log read in pieces, two threads from its middle)
/// gives the summary the in-memory one gives, intact or not, wherever the damage is: at the
/// start, at the line where the second thread starts, in either half, in the torn tail, in the
/// state.
#[test]
fn the_streaming_verifier_agrees_with_the_in_memory_one() {
    let d = tempfile::tempdir().unwrap();
    make(d.path(), &CORPUS_SEED, 15_000);
    let log = std::fs::read(d.path().join(LOG)).unwrap();
    let state = std::fs::read(d.path().join(STATE)).unwrap();
    assert!(log.len() > 4 << 20, "the log must be long enough for two threads: {}", log.len());
    let l = lines(&log);
    // The line the second thread starts at: the first after the middle byte.
    let mut at = 0;
    let mut split = 0;
    for (i, x) in l.iter().enumerate() {
        if at > log.len() / 2 {
            split = i;
            break;
        }
        at += x.len();
    }
    let mut cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![("intact", log.clone(), state.clone())];
    let mut torn = log.clone();
    torn.extend_from_slice(b"{\"seq\":15000,\"ti");
    cases.push(("torn tail", torn, state.clone()));
    for (name, k) in
        [("first line", 0), ("split - 1", split - 1), ("split", split), ("split + 1", split + 1), ("last", 14_999)]
    {
        let mut del = l.clone();
        del.remove(k);
        cases.push((Box::leak(format!("{name} deleted").into_boxed_str()), del.concat(), state.clone()));
        let mut m = l.clone();
        m[k][30] ^= 1;
        cases.push((Box::leak(format!("{name} modified").into_boxed_str()), m.concat(), state.clone()));
    }
    let mut swap = l.clone();
    swap.swap(split - 1, split);
    cases.push(("swapped across the split", swap.concat(), state.clone()));
    let mut dup = l.clone();
    dup.insert(split, l[split - 1].clone());
    cases.push(("duplicated across the split", dup.concat(), state.clone()));
    let behind = tempfile::tempdir().unwrap();
    make(behind.path(), &CORPUS_SEED, 14_999);
    cases.push(("state one behind", log.clone(), std::fs::read(behind.path().join(STATE)).unwrap()));
    cases.push(("state rolled back", log.clone(), std::fs::read(big_state_at(5)).unwrap()));
    cases.push(("cut back", l[..14_000].concat(), state.clone()));
    for (name, data, st) in cases {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(LOG), &data).unwrap();
        std::fs::write(t.path().join(STATE), &st).unwrap();
        let streamed = verify::verify_path(t.path(), &CORPUS_SEED, 2).unwrap();
        let whole = verify::verify(&data, &t.path().join(LOG), Some(&st), &CORPUS_SEED, 2);
        let key = |s: &verify::Summary| {
            (
                s.records,
                s.approved,
                s.non_approved,
                s.first_time_us,
                s.last_time_us,
                s.torn_tail,
                s.end,
                s.failure.as_ref().map(|f| (f.class, f.line, f.seq)),
            )
        };
        assert_eq!(key(&streamed), key(&whole), "{name}");
        assert_eq!(streamed.failure.is_none(), ["intact", "torn tail", "state one behind"].contains(&name), "{name}");
    }
}

/// The state file of a 5-record log of the corpus seed (kept in a directory that lives on).
fn big_state_at(n: u64) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let d = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        make(d.path(), &CORPUS_SEED, n);
        d
    });
    d.path().join(STATE)
}

/// The forward-secure corpus log and its key chain file, and the byte ranges of the checkpoint
/// notes in the log (the `checkpoint` member's value).
type FsCase = (Vec<u8>, Vec<u8>, Vec<(usize, usize)>);

fn fs_intact() -> &'static FsCase {
    static FS: OnceLock<FsCase> = OnceLock::new();
    FS.get_or_init(|| {
        let d = corpus().join("fs-intact");
        let log = std::fs::read(d.join(LOG)).unwrap();
        let keys = std::fs::read(d.join(tessera_audit::keychain::KEYS)).unwrap();
        let text = String::from_utf8(log.clone()).unwrap();
        let mut spans = Vec::new();
        let mut from = 0;
        while let Some(i) = text[from..].find("\"checkpoint\":\"") {
            let start = from + i + "\"checkpoint\":\"".len();
            let end = start + text[start..].find("\",\"").unwrap();
            spans.push((start, end));
            from = end;
        }
        assert_eq!(spans.len(), 4);
        (log, keys, spans)
    })
}

/// What the anchor public key alone says of the corpus log with `log` and `keys` in place of
/// its files.
fn fs_public(log: &[u8], keys: &[u8]) -> Option<Class> {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(LOG), log).unwrap();
    std::fs::write(d.path().join(tessera_audit::keychain::KEYS), keys).unwrap();
    let anchor = tessera_audit::checkpoint::PublicKeys::read(&corpus().join("fs-pubkey")).unwrap();
    tessera_audit::public::verify(&d.path().join(LOG), None, &anchor, None).unwrap().failure.map(|f| f.class)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any single-byte change in any checkpoint note of the log (its body, which certifies the
    /// next key, or its signatures) is found with the anchor public key alone.
    #[test]
    fn any_byte_of_a_checkpoint_note_changed_is_detected(which in 0usize..4, pos in 0usize..usize::MAX, delta in 1u8..=255) {
        let (log, keys, spans) = fs_intact();
        let (a, b) = spans[which];
        let mut t = log.clone();
        let p = a + pos % (b - a);
        t[p] = t[p].wrapping_add(delta);
        prop_assert!(fs_public(&t, keys).is_some(), "byte {} of note {}", p - a, which);
    }

    /// Any single-byte change in the key chain file is found too (but its last `\n`, whose loss
    /// reads as a note cut short by a writer stopped midway: the log holds that note as well).
    #[test]
    fn any_byte_of_the_key_chain_file_changed_is_detected(pos in 0usize..usize::MAX, delta in 1u8..=255) {
        let (log, keys, _) = fs_intact();
        let mut k = keys.clone();
        let p = pos % (k.len() - 1);
        k[p] = k[p].wrapping_add(delta);
        prop_assert!(fs_public(log, &k).is_some(), "byte {p} of the key chain file");
    }
}

#[test]
fn the_forward_secure_corpus_log_verifies_as_the_properties_take_it() {
    let (log, keys, _) = fs_intact();
    assert_eq!(fs_public(log, keys), None);
}
