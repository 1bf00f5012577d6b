//! Rotation: the log goes on in numbered files (`audit.log.000001` …, then `audit.log`), one
//! chain and one Merkle tree across them; `verify DIR` walks them all and names a missing file.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;
use tessera_audit::checkpoint::{PublicKeys, PUB};
use tessera_audit::verify::{self, Class, End};
use tessera_audit::writer::{self, rotated_name, Writer, LOG, STATE};
use tessera_audit::{proof, public, Record};

fn record(i: u64) -> Record<'static> {
    Record {
        time_us: 1_760_000_000_000_000 + i,
        pid: 5,
        function: Cow::Borrowed("C_Sign"),
        category: Cow::Borrowed("crypto"),
        mechanism: Some(Cow::Borrowed("CKM_ECDSA")),
        op: Some(Cow::Borrowed("sign")),
        rv: Cow::Borrowed("CKR_OK"),
        fips_approved: true,
        mode: Cow::Borrowed("approved"),
        detail: Some(Cow::Owned(format!("operation {i}"))),
        ..Default::default()
    }
}

struct Log {
    _t: tempfile::TempDir,
    dir: PathBuf,
    seed: PathBuf,
}

fn writer(dir: &Path) -> Writer {
    let mut w = Writer::open(dir).unwrap();
    w.set_rotate_bytes(8192);
    w.set_checkpoint_every(40);
    w
}

/// `n` records through two writers taking turns (each with its own descriptors, as two
/// processes have), rotating at 8 KiB, a checkpoint every 40 records.
fn log(n: u64) -> Log {
    let t = tempfile::tempdir().unwrap();
    let (dir, seed) = (t.path().join("log"), t.path().join("seed"));
    writer::init(&dir, &seed).unwrap();
    let mut ws = [writer(&dir), writer(&dir)];
    for i in 0..n {
        ws[(i % 2) as usize].append(&mut record(i), false).unwrap();
    }
    Log { _t: t, dir, seed }
}

impl Log {
    fn keyed(&self) -> verify::Summary {
        verify::verify_path(&self.dir, &verify::read_seed(&self.seed).unwrap(), 2).unwrap()
    }
    fn public(&self) -> verify::Summary {
        let st = std::fs::read(self.dir.join(STATE)).unwrap();
        let (files, missing) = verify::log_files(&self.dir, Some(&st)).unwrap();
        assert!(missing.is_none(), "{missing:?}");
        public::verify_files(&files, Some(&st), &self.keys(), None).unwrap()
    }
    fn keys(&self) -> PublicKeys {
        PublicKeys::read(&self.dir.join(PUB)).unwrap()
    }
    fn files(&self) -> Vec<PathBuf> {
        verify::log_files(&self.dir, None).unwrap().0
    }
    fn lines(&self) -> Vec<String> {
        self.files()
            .iter()
            .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(String::from).collect::<Vec<_>>())
            .collect()
    }
}

#[test]
fn a_rotated_log_verifies_as_one() {
    let l = log(300);
    let files = l.files();
    assert!(files.len() > 10, "{} files", files.len());
    for (i, p) in files.iter().enumerate() {
        let text = std::fs::read_to_string(p).unwrap();
        if i > 0 {
            let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(first["function"], "rotation", "{}", p.display());
            assert!(first["continues"].as_str().unwrap().starts_with(&rotated_name(i as u64)), "{first}");
        }
        if i + 1 < files.len() {
            assert!(text.ends_with('\n'));
        }
    }
    let lines = l.lines();
    let k = l.keyed();
    assert!(k.failure.is_none(), "{:?}", k.failure);
    assert_eq!((k.records, k.end), (lines.len() as u64, End::Anchored));
    let p = l.public();
    assert!(p.failure.is_none(), "{:?}", p.failure);
    assert!(p.checkpoints >= 7, "{}", p.checkpoints);
    // A record of the first file, proved under a checkpoint in a later one.
    let pr = proof::prove_inclusion(&files, 3).unwrap();
    assert!(proof::check(&pr, &l.keys()).is_ok());
    // The Merkle cache lost: the next checkpoint starts from the current file's rotation record.
    std::fs::remove_file(l.dir.join("audit.tree")).unwrap();
    let mut w = writer(&l.dir);
    w.checkpoint(&record(0)).unwrap();
    let p = l.public();
    assert!(p.failure.is_none(), "{:?}", p.failure);
    assert_eq!(p.unsealed_tail, Some(0));
    // The command line reads every file.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera-audit")).arg("export").arg(&l.dir).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), l.lines().len());
    let out = Command::new(env!("CARGO_BIN_EXE_tessera-audit"))
        .arg("verify")
        .arg(&l.dir)
        .arg("--seed")
        .arg(&l.seed)
        .arg("--pubkey")
        .arg(l.dir.join(PUB))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_missing_or_moved_file_is_named() {
    let l = log(200);
    let files = l.files();
    let n = files.len();
    assert!(n > 6);
    let seed = verify::read_seed(&l.seed).unwrap();
    let check = |dir: &Path| verify::verify_path(dir, &seed, 2).unwrap().failure.map(|f| (f.class, f.file));
    // A middle file gone.
    let t = tempfile::tempdir().unwrap();
    let copy = |skip: &[usize]| {
        let d = t.path().join(format!("c{}", skip.first().copied().unwrap_or(99)));
        std::fs::create_dir(&d).unwrap();
        for e in std::fs::read_dir(&l.dir).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
        }
        for &i in skip {
            std::fs::remove_file(d.join(files[i].file_name().unwrap())).unwrap();
        }
        d
    };
    let d = copy(&[3]);
    assert_eq!(check(&d).map(|c| c.0), Some(Class::MissingFile));
    // The last rotated file gone: the state counts it.
    let d = copy(&[n - 2]);
    assert_eq!(check(&d), Some((Class::MissingFile, d.join(rotated_name(n as u64 - 1)))));
    // The first.
    let d = copy(&[0]);
    assert_eq!(check(&d).map(|c| c.0), Some(Class::MissingFile));
    // Two files' contents swapped: the chain breaks, in the file where it does.
    let d = copy(&[]);
    std::fs::copy(&files[2], d.join("x")).unwrap();
    std::fs::copy(&files[3], d.join(files[2].file_name().unwrap())).unwrap();
    std::fs::rename(d.join("x"), d.join(files[3].file_name().unwrap())).unwrap();
    let f = check(&d).unwrap();
    assert_ne!(f.0, Class::MissingFile);
    assert_eq!(f.1, d.join(files[2].file_name().unwrap()), "{f:?}");
    // Without the seed: the missing file too, and the swap as a broken sequence or tree.
    let st = std::fs::read(d.join(STATE)).unwrap();
    let (fs, _) = verify::log_files(&d, Some(&st)).unwrap();
    let p = public::verify_files(&fs, Some(&st), &l.keys(), None).unwrap();
    assert!(p.failure.is_some());
    let d3 = t.path().join("c3");
    let st = std::fs::read(d3.join(STATE)).unwrap();
    assert_eq!(verify::log_files(&d3, Some(&st)).unwrap().1.map(|f| f.class), Some(Class::MissingFile));
    // The command line's exit status for a missing file.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera-audit"))
        .arg("verify")
        .arg(&d3)
        .arg("--seed")
        .arg(&l.seed)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(i32::from(Class::MissingFile.exit_code())),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_rotation_stopped_midway_is_finished_by_the_next_writer() {
    let l = log(50);
    let mut w = writer(&l.dir);
    // Where a writer may stop in a rotation: 0 after writing the state, 1 after the rename,
    // 2 after making the new file (before its rotation record).
    for stop in 0..3 {
        let sp = l.dir.join(STATE);
        let mut st = tessera_audit::state::State::decode(&std::fs::read(&sp).unwrap()).unwrap();
        let n = st.file;
        st.file += 1;
        st.log_len = 0;
        std::fs::write(&sp, &st.encode()[..]).unwrap();
        if stop >= 1 {
            std::fs::rename(l.dir.join(LOG), l.dir.join(rotated_name(n))).unwrap();
        }
        if stop >= 2 {
            std::fs::write(l.dir.join(LOG), b"").unwrap();
        }
        w.append(&mut record(1000 + stop), false).unwrap();
        let k = l.keyed();
        assert!(k.failure.is_none(), "stop {stop}: {:?}", k.failure);
        let p = l.public();
        assert!(p.failure.is_none(), "stop {stop}: {:?}", p.failure);
        let first: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(l.dir.join(LOG)).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["function"], "rotation", "stop {stop}");
    }
    // A current file emptied with no rotation under way: cut back, refused.
    std::fs::write(l.dir.join(LOG), b"").unwrap();
    assert!(matches!(w.append(&mut record(1003), false), Err(writer::Error::Truncated(..))));
}

/// Retention: only the newest `keep_files` rotated files stay; each deleted file was covered by
/// the signed checkpoint that follows the rotation record of the file after it. The log then
/// verifies from where its history starts, with the seed and with the public key; records kept
/// are still proved; files missing where no retention was are still named.
#[test]
fn retention_keeps_the_newest_files_and_the_rest_verifies() {
    let t = tempfile::tempdir().unwrap();
    let (dir, seed) = (t.path().join("log"), t.path().join("seed"));
    writer::init(&dir, &seed).unwrap();
    let mut w = writer(&dir);
    w.set_keep_files(3);
    for i in 0..300 {
        w.append(&mut record(i), false).unwrap();
    }
    let l = Log { _t: t, dir, seed };
    let files = l.files();
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(!l.dir.join(rotated_name(1)).exists());
    let k = l.keyed();
    assert!(k.failure.is_none(), "{:?}", k.failure);
    let start = k.history_from.expect("the history starts later");
    assert_eq!(k.first_seq, Some(start));
    assert_eq!(k.end, End::Anchored);
    let p = l.public();
    assert!(p.failure.is_none(), "{:?}", p.failure);
    assert_eq!((p.history_from, p.records), (Some(start), k.records));
    assert!(p.checkpoints >= 3);
    // The first kept record and a later one, proved.
    for seq in [start, start + 7] {
        let pr = proof::prove_inclusion(&files, seq).unwrap();
        assert!(proof::check(&pr, &l.keys()).is_ok(), "{seq}");
    }
    assert!(proof::prove_inclusion(&files, start - 1).is_err());
    // The checkpoint keys: the first kept checkpoint is signed by a later generation, reached
    // from the anchor through the key chain file, which retention keeps.
    let kc = p.key_chain.clone().unwrap();
    assert!(kc.from_key_file > 0 && kc.generations > kc.from_key_file, "{kc:?}");
    assert_eq!(kc.key_file_entries, Some(kc.generations));
    let out = Command::new(env!("CARGO_BIN_EXE_tessera-audit"))
        .args(["verify", l.dir.to_str().unwrap(), "--pubkey", l.dir.join(PUB).to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("history starts at seq {start}: generations 1..={}", kc.from_key_file)), "{said}");
    // A consistency proof from the first kept checkpoint to the last.
    let first_note = l
        .lines()
        .iter()
        .find_map(|x| serde_json::from_str::<serde_json::Value>(x).unwrap()["checkpoint"].as_str().map(String::from));
    let pr = proof::prove_consistency(&files, &first_note.unwrap(), &l.keys()).unwrap();
    assert!(matches!(proof::check(&pr, &l.keys()), Ok(proof::Shown::Consistent { .. })));
    // Without the key chain file, or with it cut back, the kept history cannot reach the anchor.
    let kp = l.dir.join(tessera_audit::keychain::KEYS);
    let keys_file = std::fs::read_to_string(&kp).unwrap();
    std::fs::remove_file(&kp).unwrap();
    assert_eq!(l.public().failure.map(|f| f.class), Some(Class::MissingFile));
    let first: String = keys_file.lines().take(1).map(|x| format!("{x}\n")).collect();
    std::fs::write(&kp, first).unwrap();
    assert_eq!(l.public().failure.map(|f| f.class), Some(Class::CertificationSkipped));
    std::fs::write(&kp, &keys_file).unwrap();
    assert!(l.public().failure.is_none());
    // A kept record changed: named, with and without the seed.
    let victim = &files[1];
    let text = std::fs::read_to_string(victim).unwrap();
    let at = text.find("operation ").unwrap();
    let mut bytes = text.into_bytes();
    bytes[at + 10] ^= 1;
    std::fs::write(victim, &bytes).unwrap();
    let f = l.keyed().failure.unwrap();
    assert_eq!((f.class, &f.file), (Class::Modified, victim), "{f}");
    let st = std::fs::read(l.dir.join(STATE)).unwrap();
    let pf = public::verify_files(&files, Some(&st), &l.keys(), None).unwrap().failure.unwrap();
    assert_eq!(pf.class, Class::MerkleMismatch, "{pf}");
    // Without retention, the oldest files gone is a missing file.
    let plain = log(120);
    std::fs::remove_file(plain.dir.join(rotated_name(1))).unwrap();
    std::fs::remove_file(plain.dir.join(rotated_name(2))).unwrap();
    let seed = verify::read_seed(&plain.seed).unwrap();
    assert_eq!(verify::verify_path(&plain.dir, &seed, 2).unwrap().failure.map(|f| f.class), Some(Class::MissingFile));
}
