//! Verification in software, without a token: RustCrypto `ml-dsa` (ML-DSA, from a μ computed
//! as the file is read, and HashML-DSA),
//! `slh-dsa` (SLH-DSA and HashSLH-DSA), aws-lc-rs (ECDSA P-256, the hashes).
//!
//! Neither `ml-dsa` 0.1 nor `slh-dsa` 0.2 offers the pre-hashed variants, so this module builds
//! their message representative M' = 1 || len(ctx) || ctx || OID(PH) || PH(M) itself (FIPS 204
//! Algorithm 5, FIPS 205 Algorithm 25) and hands it to the crates' internal verification, which
//! is what those algorithms are defined as; and it builds the composite draft's M' the same way.

use super::data::{for_each_part, hash_file, read_all};
use super::format::*;
use std::path::Path;

type Res<T> = Result<T, String>;

/// What the signature primitive is asked to check.
#[derive(Clone, Copy)]
enum Msg<'a> {
    /// FIPS 204 `ML-DSA.Verify` / FIPS 205 `slh_verify`: the message and a context.
    Pure { m: &'a [u8], ctx: &'a [u8] },
    /// `Verify_internal` on a message representative built here.
    Internal(&'a [u8]),
}

fn mldsa_p<P: ml_dsa::MlDsaParams>(pk: &[u8], sig: &[u8], msg: Msg) -> bool {
    let Ok(enc) = ml_dsa::EncodedVerifyingKey::<P>::try_from(pk) else { return false };
    let vk = ml_dsa::VerifyingKey::<P>::decode(&enc);
    let Ok(s) = ml_dsa::Signature::<P>::try_from(sig) else { return false };
    match msg {
        Msg::Pure { m, ctx } => vk.verify_with_context(m, ctx, &s),
        Msg::Internal(mp) => vk.verify_internal(mp, &s),
    }
}

fn mldsa(p: MlDsa, pk: &[u8], sig: &[u8], msg: Msg) -> bool {
    match p {
        MlDsa::P44 => mldsa_p::<ml_dsa::MlDsa44>(pk, sig, msg),
        MlDsa::P65 => mldsa_p::<ml_dsa::MlDsa65>(pk, sig, msg),
        MlDsa::P87 => mldsa_p::<ml_dsa::MlDsa87>(pk, sig, msg),
    }
}

fn slh_p<P: slh_dsa::ParameterSet>(pk: &[u8], sig: &[u8], msg: Msg) -> bool {
    let Ok(vk) = slh_dsa::VerifyingKey::<P>::try_from(pk) else { return false };
    let Ok(s) = slh_dsa::Signature::<P>::try_from(sig) else { return false };
    match msg {
        Msg::Pure { m, ctx } => vk.try_verify_with_context(m, ctx, &s).is_ok(),
        Msg::Internal(mp) => vk.slh_verify_internal(&[mp], &s).is_ok(),
    }
}

fn slh(p: SlhDsa, pk: &[u8], sig: &[u8], msg: Msg) -> bool {
    use slh_dsa::*;
    match (p.shake, p.level, p.fast) {
        (false, 0, false) => slh_p::<Sha2_128s>(pk, sig, msg),
        (false, 0, true) => slh_p::<Sha2_128f>(pk, sig, msg),
        (false, 1, false) => slh_p::<Sha2_192s>(pk, sig, msg),
        (false, 1, true) => slh_p::<Sha2_192f>(pk, sig, msg),
        (false, _, false) => slh_p::<Sha2_256s>(pk, sig, msg),
        (false, _, true) => slh_p::<Sha2_256f>(pk, sig, msg),
        (true, 0, false) => slh_p::<Shake128s>(pk, sig, msg),
        (true, 0, true) => slh_p::<Shake128f>(pk, sig, msg),
        (true, 1, false) => slh_p::<Shake192s>(pk, sig, msg),
        (true, 1, true) => slh_p::<Shake192f>(pk, sig, msg),
        (true, _, false) => slh_p::<Shake256s>(pk, sig, msg),
        (true, _, true) => slh_p::<Shake256f>(pk, sig, msg),
    }
}

/// Pure ML-DSA over the file at `path` without reading it whole: μ = SHAKE256(tr ‖ 0 ‖ |ctx| ‖
/// ctx ‖ M, 64) computed part by part (FIPS 204 Algorithm 3 lines 6-7, with Tessera's SHAKE256),
/// then RustCrypto `ml-dsa`'s verification from μ (the rest of Algorithm 3), so a file of any
/// size verifies in constant memory. The same result as `ML-DSA.Verify` over the whole file.
fn mldsa_streamed(p: MlDsa, pk: &[u8], sig: &[u8], ctx: &[u8], path: &Path) -> Res<bool> {
    use tessera_pkcs11::crypto::mldsa::{MlDsa as Set, Mu};
    let set = match p {
        MlDsa::P44 => Set::P44,
        MlDsa::P65 => Set::P65,
        MlDsa::P87 => Set::P87,
    };
    // A context longer than 255 bytes has no M′ (its length is one byte): no signature verifies.
    let Ok(ctx_len) = u8::try_from(ctx.len()) else { return Ok(false) };
    let Some(tr) = set.tr_of_public(pk) else { return Ok(false) };
    let mut header = vec![0u8, ctx_len];
    header.extend_from_slice(ctx);
    let mut mu = Mu::start(&tr, &header).ok_or("SHAKE256 failed")?;
    for_each_part(path, "verifying", |part| if mu.update(part) { Ok(()) } else { Err("SHAKE256 failed".into()) })?;
    let mu = mu.finish().ok_or("SHAKE256 failed")?;
    Ok(set.verify_mu_internal(pk, &mu, sig))
}

/// M' of HashML-DSA and HashSLH-DSA: 1 || len(ctx) || ctx || OID(PH) || PH(M).
pub fn pre_hashed_message(ctx: &[u8], h: PreHash, ph: &[u8]) -> Vec<u8> {
    let mut m = vec![1u8, ctx.len() as u8];
    m.extend_from_slice(ctx);
    m.extend_from_slice(&hash_oid_der(h));
    m.extend_from_slice(ph);
    m
}

/// M' of the composite draft: Prefix || Label || len(ctx) || ctx || PH(M).
pub fn composite_message(ctx: &[u8], ph: &[u8]) -> Vec<u8> {
    let mut m = COMPOSITE_PREFIX.to_vec();
    m.extend_from_slice(COMPOSITE_LABEL);
    m.push(ctx.len() as u8);
    m.extend_from_slice(ctx);
    m.extend_from_slice(ph);
    m
}

fn ecdsa_point(key: &[u8]) -> aws_lc_rs::signature::UnparsedPublicKey<&[u8]> {
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, key)
}

/// Checks the signature of the file at `path`; `Ok` only when it verifies under `key`.
pub fn verify(path: &Path, f: &SignatureFile, alg: SigAlg, key: &PublicKey) -> Res<()> {
    if alg.key() != key.alg {
        return Err(format!(
            "the signature is {} but the public key is {}: it does not verify",
            alg.describe(),
            key.alg.name()
        ));
    }
    let ctx = f.context.as_bytes();
    let sig = f.signature.as_bytes();
    let pk = &key.raw[..];
    let ok = match alg {
        SigAlg::MlDsa(p) => mldsa_streamed(p, pk, sig, ctx, path)?,
        SigAlg::SlhDsa(p) => slh(p, pk, sig, Msg::Pure { m: &read_all(path)?, ctx }),
        SigAlg::HashMlDsa(p) => {
            let ph = hash_file(path, PreHash::Sha512, "hashing")?;
            mldsa(p, pk, sig, Msg::Internal(&pre_hashed_message(ctx, PreHash::Sha512, &ph.bytes)))
        }
        SigAlg::HashSlhDsa(p) => {
            let ph = hash_file(path, p.pre_hash(), "hashing")?;
            slh(p, pk, sig, Msg::Internal(&pre_hashed_message(ctx, p.pre_hash(), &ph.bytes)))
        }
        SigAlg::EcdsaSha256 => {
            if !ctx.is_empty() {
                return Err("an ECDSA signature with a context: ECDSA takes none".into());
            }
            let ph = hash_file(path, PreHash::Sha256, "hashing")?;
            let digest = ph.digest.ok_or("no SHA-256 digest")?;
            ecdsa_point(pk).verify_digest(&digest, sig).is_ok()
        }
        SigAlg::Composite => {
            if sig.len() <= MLDSA65_SIG_LEN {
                return Err("the composite signature is too short: it does not verify".into());
            }
            let (ml, ec) = sig.split_at(MLDSA65_SIG_LEN);
            let ph = hash_file(path, PreHash::Sha512, "hashing")?;
            let mp = composite_message(ctx, &ph.bytes);
            // Both halves are checked, whatever the first gives (the result is the same: any
            // failure fails the whole).
            let ml_ok = mldsa(MlDsa::P65, &pk[..MLDSA65_PK_LEN], ml, Msg::Pure { m: &mp, ctx: COMPOSITE_LABEL });
            let ec_ok = ecdsa_point(&pk[MLDSA65_PK_LEN..]).verify(&mp, ec).is_ok();
            match (ml_ok, ec_ok) {
                (true, true) => true,
                (false, true) => return Err("the ML-DSA-65 half of the composite signature does not verify".into()),
                (true, false) => return Err("the ECDSA P-256 half of the composite signature does not verify".into()),
                (false, false) => false,
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err("the signature does not verify".into())
    }
}

#[cfg(test)]
mod tests {
    //! NIST's ACVP signature-verification vectors (`../shared/vectors/acvp/`, the internal
    //! interface: the message given is M') through this module's choice of parameter set and its
    //! internal verification, for every ML-DSA and SLH-DSA set; skipped with a message when the
    //! shared directory is absent.
    use super::*;
    use serde_json::Value;

    fn load(rel: &str) -> Option<Value> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/acvp").join(rel);
        match std::fs::read(&p) {
            Ok(b) => Some(serde_json::from_slice(&b).expect("JSON")),
            Err(e) => {
                println!("SKIP: {}: {e}", p.display());
                None
            }
        }
    }

    fn hex(v: &Value) -> Vec<u8> {
        let s = v.as_str().expect("hex string");
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn acvp_ml_dsa_sigver() {
        let Some(v) = load("ML-DSA-sigVer-FIPS204/internalProjection.json") else { return };
        let mut n = 0;
        for g in v["testGroups"].as_array().unwrap() {
            let set = [MlDsa::P44, MlDsa::P65, MlDsa::P87]
                .into_iter()
                .find(|p| p.name() == g["parameterSet"].as_str().unwrap())
                .expect("a known set");
            let pk = hex(&g["pk"]);
            for t in g["tests"].as_array().unwrap() {
                let ok = mldsa(set, &pk, &hex(&t["signature"]), Msg::Internal(&hex(&t["message"])));
                assert_eq!(ok, t["testPassed"].as_bool().unwrap(), "{} tcId {}", set.name(), t["tcId"]);
                n += 1;
            }
        }
        assert!(n >= 18, "{n} cases");
    }

    #[test]
    fn acvp_slh_dsa_sigver() {
        let (Some(prompt), Some(expected)) =
            (load("SLH-DSA-sigVer-FIPS205/prompt.json"), load("SLH-DSA-sigVer-FIPS205/expectedResults.json"))
        else {
            return;
        };
        let mut results = std::collections::HashMap::new();
        for g in expected["testGroups"].as_array().unwrap() {
            for t in g["tests"].as_array().unwrap() {
                results.insert(t["tcId"].as_u64().unwrap(), t["testPassed"].as_bool().unwrap());
            }
        }
        let mut sets = std::collections::HashSet::new();
        for g in prompt["testGroups"].as_array().unwrap() {
            let name = g["parameterSet"].as_str().unwrap().to_lowercase();
            let set = SlhDsa::all().find(|p| p.cli_name() == name).expect("a known set");
            sets.insert(set.ckp());
            for t in g["tests"].as_array().unwrap() {
                let id = t["tcId"].as_u64().unwrap();
                let ok = slh(set, &hex(&t["pk"]), &hex(&t["signature"]), Msg::Internal(&hex(&t["message"])));
                assert_eq!(ok, results[&id], "{name} tcId {id}");
            }
        }
        assert_eq!(sets.len(), 12, "every SLH-DSA set");
    }

    /// The message representatives, by their definitions.
    #[test]
    fn message_representatives() {
        let ph = [0xabu8; 64];
        let m = pre_hashed_message(b"ctx", PreHash::Sha512, &ph);
        assert_eq!(&m[..5], &[1, 3, b'c', b't', b'x']);
        assert_eq!(&m[5..16], &[6, 9, 0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 3]);
        assert_eq!(&m[16..], &ph);
        let c = composite_message(b"", &ph);
        assert_eq!(c.len(), 32 + 33 + 1 + 64);
        assert!(c.starts_with(b"CompositeAlgorithmSignatures2025COMPSIG-MLDSA65-ECDSA-P256-SHA512\0"));
    }
}
