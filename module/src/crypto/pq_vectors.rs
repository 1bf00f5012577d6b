//! Known answers for ML-DSA (FIPS 204) and SLH-DSA (FIPS 205) at the level of `crypto::mldsa` and
//! `crypto::slhdsa`: every case of the NIST ACVP files and of the Wycheproof ML-DSA files in
//! `../shared/vectors/` whose inputs PKCS #11 cannot carry — signing with a given `rnd`, the
//! internal interface over `M'` directly, and external μ. `tests/wycheproof_pqc.rs` runs what the
//! interface can express through the built library.
//!
//! Each file prints `passed/failed/skipped` with the reason of every skip; any failure fails the
//! test. Without `../shared` the tests say so and pass (the vectors are not part of the project).

use super::mldsa::MlDsa;
use super::slhdsa::SlhDsa;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn vectors() -> Option<PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIP PQC vectors: {} is absent", p.display());
        None
    }
}

fn load(rel: &str) -> Option<Value> {
    let path = vectors()?.join(rel);
    match std::fs::read(&path) {
        Ok(b) => Some(serde_json::from_slice(&b).expect("valid JSON")),
        Err(e) => {
            eprintln!("SKIP {rel}: {e}");
            None
        }
    }
}

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap_or("");
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn id(t: &Value) -> u64 {
    t["tcId"].as_u64().unwrap_or(0)
}

/// One file's outcome, per test case: a case passes when every check made of it passed.
struct Tally {
    name: String,
    cases: std::collections::BTreeSet<u64>,
    failed: Vec<(u64, String)>,
    skipped: Vec<String>,
}

impl Tally {
    fn new(name: &str) -> Tally {
        Tally { name: name.to_string(), cases: Default::default(), failed: vec![], skipped: vec![] }
    }

    fn check(&mut self, tc: u64, ok: bool, what: &str) {
        self.cases.insert(tc);
        if !ok {
            self.failed.push((tc, what.to_string()));
        }
    }

    fn skip(&mut self, tc: u64, why: &str) {
        self.skipped.push(format!("tcId {tc}: {why}"));
    }

    fn finish(self) {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &self.skipped {
            *reasons.entry(s.split_once(": ").map_or(s.as_str(), |x| x.1)).or_default() += 1;
        }
        let failed: std::collections::BTreeSet<u64> = self.failed.iter().map(|f| f.0).collect();
        eprintln!(
            "core {}: {} passed, {} failed, {} skipped",
            self.name,
            self.cases.len() - failed.len(),
            failed.len(),
            self.skipped.len()
        );
        for (r, n) in reasons {
            eprintln!("  skipped {n}: {r}");
        }
        let list: Vec<String> = self.failed.iter().map(|(tc, w)| format!("tcId {tc}: {w}")).collect();
        assert!(failed.is_empty(), "{}: failures:\n{}", self.name, list.join("\n"));
    }
}

fn ml_dsa_set(name: &str) -> MlDsa {
    match name {
        "ML-DSA-44" => MlDsa::P44,
        "ML-DSA-65" => MlDsa::P65,
        "ML-DSA-87" => MlDsa::P87,
        _ => panic!("unknown set {name}"),
    }
}

fn slh_dsa_set(name: &str) -> SlhDsa {
    SlhDsa::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(name)).unwrap_or_else(|| panic!("{name}"))
}

/// ACVP keeps inputs and outputs in two files joined by `tcId`, or together.
fn acvp(dir: &str) -> Option<(Value, BTreeMap<u64, Value>)> {
    if let Some(v) = load(&format!("acvp/{dir}/internalProjection.json")) {
        return Some((v, BTreeMap::new()));
    }
    let prompt = load(&format!("acvp/{dir}/prompt.json"))?;
    let expected = load(&format!("acvp/{dir}/expectedResults.json"))?;
    let mut out = BTreeMap::new();
    for g in list(&expected["testGroups"]) {
        for t in list(&g["tests"]) {
            out.insert(id(t), t.clone());
        }
    }
    Some((prompt, out))
}

/// A field of a test case: in the case itself, else in its expected results.
fn field<'a>(t: &'a Value, expected: &'a BTreeMap<u64, Value>, name: &str) -> &'a Value {
    if t.get(name).is_some() {
        &t[name]
    } else {
        expected.get(&id(t)).map_or(&Value::Null, |e| &e[name])
    }
}

#[test]
fn acvp_ml_dsa_key_gen() {
    let Some((v, _)) = acvp("ML-DSA-keyGen-FIPS204") else { return };
    let mut tally = Tally::new("ACVP ML-DSA-keyGen-FIPS204");
    for g in list(&v["testGroups"]) {
        let set = ml_dsa_set(g["parameterSet"].as_str().unwrap_or(""));
        for t in list(&g["tests"]) {
            let got = set.from_seed(&hex(&t["seed"]));
            let ok = got.as_ref().is_some_and(|(sk, pk)| sk[..] == hex(&t["sk"])[..] && *pk == hex(&t["pk"]));
            tally.check(id(t), ok, "aws-lc's key pair of the seed differs");
            // The public key RustCrypto computes from the expanded key (as the module does for an
            // imported expanded key) is the same.
            tally.check(id(t), set.public_of(&hex(&t["sk"])) == Some(hex(&t["pk"])), "public key of sk");
        }
    }
    tally.finish();
}

#[test]
fn acvp_ml_dsa_sig_gen() {
    let Some((v, _)) = acvp("ML-DSA-sigGen-FIPS204") else { return };
    let mut tally = Tally::new("ACVP ML-DSA-sigGen-FIPS204");
    for g in list(&v["testGroups"]) {
        let set = ml_dsa_set(g["parameterSet"].as_str().unwrap_or(""));
        for t in list(&g["tests"]) {
            let mut rnd = [0u8; 32];
            if g["deterministic"] != Value::Bool(true) {
                rnd.copy_from_slice(&hex(&t["rnd"]));
            }
            let sig = set.sign_internal(&hex(&t["sk"]), &[&hex(&t["message"])], &rnd);
            tally.check(id(t), sig == Some(hex(&t["signature"])), "Sign_internal differs");
        }
    }
    tally.finish();
}

#[test]
fn acvp_ml_dsa_sig_ver() {
    let Some((v, _)) = acvp("ML-DSA-sigVer-FIPS204") else { return };
    let mut tally = Tally::new("ACVP ML-DSA-sigVer-FIPS204");
    for g in list(&v["testGroups"]) {
        let set = ml_dsa_set(g["parameterSet"].as_str().unwrap_or(""));
        let pk = hex(&g["pk"]);
        for t in list(&g["tests"]) {
            let ok = set.verify_internal(&pk, &hex(&t["message"]), &hex(&t["signature"]));
            let want = t["testPassed"].as_bool();
            tally.check(id(t), Some(ok) == want, &format!("Verify_internal gave {ok} ({})", t["reason"]));
        }
    }
    tally.finish();
}

/// Wycheproof's `mldsa_*_sign_{seed,noseed}` files: every case over `M'` (the message with its
/// context, FIPS 204 §5.2) by `Sign_internal` with the case's `rnd` (all zero when deterministic),
/// and the external-μ cases by the same library's `sign_mu_deterministic`.
fn wycheproof_ml_dsa_sign(set: MlDsa, file: &str) {
    let Some(v) = load(&format!("wycheproof/{file}.json")) else { return };
    let mut tally = Tally::new(&format!("wycheproof {file}"));
    for g in list(&v["testGroups"]) {
        // The key: from the seed (the seed files) or the expanded key (the others).
        let (sk, pk) = match g.get("privateSeed") {
            Some(seed) => match set.from_seed(&hex(seed)) {
                Some((sk, pk)) => (Some(sk.to_vec()), Some(pk)),
                None => (None, None),
            },
            None => {
                let sk = hex(&g["privateKey"]);
                let pk = set.public_of(&sk);
                (pk.is_some().then_some(sk), pk)
            }
        };
        for t in list(&g["tests"]) {
            let tc = id(t);
            let valid = t["result"] == "valid";
            let Some(sk) = sk.as_ref() else {
                tally.check(tc, !valid, "the private key (or seed) was refused");
                continue;
            };
            if pk.as_ref() != Some(&hex(&g["publicKey"])) {
                tally.check(tc, !valid, "the public key of the private key differs");
                continue;
            }
            let want = hex(&t["sig"]);
            let mut rnd = [0u8; 32];
            if let Some(r) = t.get("rnd") {
                rnd.copy_from_slice(&hex(r));
            }
            let sig = if t.get("msg").is_some() {
                let ctx = t.get("ctx").map(hex).unwrap_or_default();
                if ctx.len() > 255 {
                    // FIPS 204 Algorithm 2 step 1: an error; no M' exists.
                    tally.check(tc, !valid, "a context over 255 bytes");
                    continue;
                }
                let header = [0u8, ctx.len() as u8];
                set.sign_internal(sk, &[&header, &ctx, &hex(&t["msg"])], &rnd)
            } else if t.get("mu").is_some() && t.get("rnd").is_none() {
                external_mu(set, sk, &hex(&t["mu"]))
            } else {
                tally.skip(tc, "external μ with hedging: no interface takes both");
                continue;
            };
            let matched = sig.as_deref() == Some(&want[..]);
            tally.check(tc, matched == valid, &format!("signature matched={matched}, result {}", t["result"]));
            if valid && t.get("msg").is_some() {
                // And the signature verifies over the same M' (Verify_internal).
                let ctx = t.get("ctx").map(hex).unwrap_or_default();
                let m = [&[0u8, ctx.len() as u8][..], &ctx, &hex(&t["msg"])].concat();
                tally.check(tc, set.verify_internal(pk.as_ref().unwrap(), &m, &want), "Verify_internal");
            }
        }
    }
    tally.finish();
}

/// External μ (FIPS 204 Algorithm 7 from step 7, μ given): the module has no interface for it, so
/// the library it links (RustCrypto `ml-dsa`, the one behind `MlDsa::sign_internal`) signs it.
fn external_mu(set: MlDsa, sk: &[u8], mu: &[u8]) -> Option<Vec<u8>> {
    use ml_dsa::{ExpandedSigningKey, ExpandedSigningKeyBytes, MlDsa44, MlDsa65, MlDsa87};
    macro_rules! go {
        ($p:ty) => {{
            // The module decodes expanded keys only after this check (crypto::mldsa).
            set.public_of(sk)?;
            let enc = ExpandedSigningKeyBytes::<$p>::try_from(sk).ok()?;
            #[allow(deprecated)]
            let key = ExpandedSigningKey::<$p>::from_expanded(&enc);
            Some(key.sign_mu_deterministic(&mu.try_into().ok()?).encode().to_vec())
        }};
    }
    match set {
        MlDsa::P44 => go!(MlDsa44),
        MlDsa::P65 => go!(MlDsa65),
        MlDsa::P87 => go!(MlDsa87),
    }
}

#[test]
fn wycheproof_ml_dsa_sign_seed() {
    for (set, n) in [(MlDsa::P44, 44), (MlDsa::P65, 65), (MlDsa::P87, 87)] {
        wycheproof_ml_dsa_sign(set, &format!("mldsa_{n}_sign_seed_test"));
    }
}

#[test]
fn wycheproof_ml_dsa_sign_noseed() {
    for (set, n) in [(MlDsa::P44, 44), (MlDsa::P65, 65), (MlDsa::P87, 87)] {
        wycheproof_ml_dsa_sign(set, &format!("mldsa_{n}_sign_noseed_test"));
    }
}

#[test]
fn wycheproof_ml_dsa_verify() {
    for (set, n) in [(MlDsa::P44, 44), (MlDsa::P65, 65), (MlDsa::P87, 87)] {
        let file = format!("mldsa_{n}_verify_test");
        let Some(v) = load(&format!("wycheproof/{file}.json")) else { return };
        let mut tally = Tally::new(&format!("wycheproof {file}"));
        for g in list(&v["testGroups"]) {
            let pk = hex(&g["publicKey"]);
            for t in list(&g["tests"]) {
                let ctx = t.get("ctx").map(hex).unwrap_or_default();
                let (msg, sig) = (hex(&t["msg"]), hex(&t["sig"]));
                let ok = ctx.len() <= 255 && pk.len() == set.public_len() && {
                    let m = [&[0u8, ctx.len() as u8][..], &ctx, &msg].concat();
                    set.verify_internal(&pk, &m, &sig)
                };
                let valid = t["result"] == "valid";
                tally.check(id(t), ok == valid, &format!("Verify_internal gave {ok}"));
                // aws-lc's pure verification (what the module uses with an empty context) agrees.
                if ctx.is_empty() && pk.len() == set.public_len() {
                    tally.check(id(t), set.verify_pure(&pk, &msg, &sig) == valid, "aws-lc verify");
                }
            }
        }
        tally.finish();
    }
}

#[test]
fn acvp_slh_dsa_key_gen() {
    let Some((v, expected)) = acvp("SLH-DSA-keyGen-FIPS205") else { return };
    let mut tally = Tally::new("ACVP SLH-DSA-keyGen-FIPS205");
    for g in list(&v["testGroups"]) {
        let set = slh_dsa_set(g["parameterSet"].as_str().unwrap_or(""));
        for t in list(&g["tests"]) {
            let sk = set.keygen_internal(&hex(&t["skSeed"]), &hex(&t["skPrf"]), &hex(&t["pkSeed"]));
            let want_sk = hex(field(t, &expected, "sk"));
            let want_pk = hex(field(t, &expected, "pk"));
            let ok = sk.as_ref().is_some_and(|k| k[..] == want_sk[..] && k[k.len() - want_pk.len()..] == want_pk[..]);
            tally.check(id(t), ok, "slh_keygen_internal differs");
            tally.check(id(t), set.private_key_consistent(&want_sk), "the expected key is consistent");
            let mut bad = want_sk.clone();
            *bad.last_mut().unwrap() ^= 1;
            tally.check(id(t), !set.private_key_consistent(&bad), "a wrong PK.root is seen");
        }
    }
    tally.finish();
}

#[test]
fn acvp_slh_dsa_sig_gen() {
    let Some((v, expected)) = acvp("SLH-DSA-sigGen-FIPS205") else { return };
    let mut tally = Tally::new("ACVP SLH-DSA-sigGen-FIPS205");
    for g in list(&v["testGroups"]) {
        let set = slh_dsa_set(g["parameterSet"].as_str().unwrap_or(""));
        let deterministic = g["deterministic"] == Value::Bool(true);
        for t in list(&g["tests"]) {
            let sk = hex(&t["sk"]);
            let msg = hex(&t["message"]);
            let want = hex(field(t, &expected, "signature"));
            if deterministic {
                let sig = set.sign_internal(&sk, &[&msg], None);
                tally.check(id(t), sig.as_deref() == Some(&want[..]), "slh_sign_internal differs");
            } else {
                // The randomness is not published: the expected signature must verify.
                let pk = &sk[sk.len() - set.public_len()..];
                tally.check(id(t), set.verify_internal(pk, &[&msg], &want), "slh_verify_internal");
            }
        }
    }
    tally.finish();
}

#[test]
fn acvp_slh_dsa_sig_ver() {
    let Some((v, expected)) = acvp("SLH-DSA-sigVer-FIPS205") else { return };
    let mut tally = Tally::new("ACVP SLH-DSA-sigVer-FIPS205");
    for g in list(&v["testGroups"]) {
        let set = slh_dsa_set(g["parameterSet"].as_str().unwrap_or(""));
        for t in list(&g["tests"]) {
            let ok = set.verify_internal(&hex(&t["pk"]), &[&hex(&t["message"])], &hex(&t["signature"]));
            let want = field(t, &expected, "testPassed").as_bool();
            tally.check(id(t), Some(ok) == want, &format!("slh_verify_internal gave {ok}"));
        }
    }
    tally.finish();
}
