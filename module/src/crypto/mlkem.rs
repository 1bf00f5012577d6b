//! ML-KEM (FIPS 203), all from aws-lc, through small wrappers around one aws-lc call each:
//! encapsulation and decapsulation (keys from their raw FIPS 203 encodings, ek and dk, as
//! aws-lc-rs's `kem` makes them, but with the outputs written straight into the module's
//! buffers), and what aws-lc-rs does not expose: key generation from the seed d‖z
//! (`EVP_PKEY_keygen_deterministic`, FIPS 203 ML-KEM.KeyGen_internal) — so that a key made on the
//! token keeps its seed, and a key given as a seed can be expanded — and encapsulation with a
//! caller-chosen m (`EVP_PKEY_encapsulate_deterministic`, ML-KEM.Encaps_internal), which only the
//! known-answer test and the vector tests use. Both calls exist in `aws-lc-sys` and in
//! `aws-lc-fips-sys`: the FIPS build serves ML-KEM from inside aws-lc's FIPS module.

use super::clear_errors;
use super::evp::{Pkey, PkeyCtx};
use super::sys;
use std::ptr;
use zeroize::Zeroizing;

/// One ML-KEM parameter set, with its FIPS 203 sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Params {
    MlKem512,
    MlKem768,
    MlKem1024,
}

/// Length of the key-generation seed d‖z.
pub const SEED_LEN: usize = 64;
/// Length of the shared secret K.
pub const SECRET_LEN: usize = 32;
/// Length of the encapsulation randomness m.
pub const M_LEN: usize = 32;

impl Params {
    /// The module rank k.
    pub const fn k(self) -> usize {
        match self {
            Params::MlKem512 => 2,
            Params::MlKem768 => 3,
            Params::MlKem1024 => 4,
        }
    }

    /// |ek| = 384k + 32.
    pub const fn ek_len(self) -> usize {
        384 * self.k() + 32
    }

    /// |dk| = 768k + 96.
    pub const fn dk_len(self) -> usize {
        768 * self.k() + 96
    }

    /// |c| = 32(du·k + dv).
    pub const fn ct_len(self) -> usize {
        match self {
            Params::MlKem512 => 768,
            Params::MlKem768 => 1088,
            Params::MlKem1024 => 1568,
        }
    }

    fn nid(self) -> i32 {
        match self {
            Params::MlKem512 => sys::NID_MLKEM512,
            Params::MlKem768 => sys::NID_MLKEM768,
            Params::MlKem1024 => sys::NID_MLKEM1024,
        }
    }
}

/// A raw key of `pkey` through `get` (aws-lc's two-call length convention).
fn raw_key(
    pkey: &Pkey,
    get: unsafe extern "C" fn(*const sys::EVP_PKEY, *mut u8, *mut usize) -> std::os::raw::c_int,
    len: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    let mut n = len;
    // SAFETY: `pkey` is a live key; `out` has room for `n` bytes, and aws-lc writes at most `n`
    // and stores the length written in `n`.
    let ok = unsafe { get(pkey.as_ptr(), out.as_mut_ptr(), &mut n) } == 1;
    (ok && n == len).then_some(out)
}

/// FIPS 203 ML-KEM.KeyGen_internal(d, z) for `seed` = d‖z: (ek, dk). `None` when aws-lc fails.
pub fn keygen_from_seed(p: Params, seed: &[u8; SEED_LEN]) -> Option<(Vec<u8>, Zeroizing<Vec<u8>>)> {
    keygen_key(p, seed).map(|(ek, dk, _)| (ek, dk))
}

/// [`keygen_from_seed`], and aws-lc's key it made.
fn keygen_key(p: Params, seed: &[u8; SEED_LEN]) -> Option<(Vec<u8>, Zeroizing<Vec<u8>>, Pkey)> {
    let r = (|| {
        // SAFETY: a fresh context for the KEM key type, owned from here on.
        let ctx = PkeyCtx::new(unsafe { sys::EVP_PKEY_CTX_new_id(sys::EVP_PKEY_KEM, ptr::null_mut()) })?;
        // SAFETY: `ctx` is a live KEM context; the NID names one of aws-lc's ML-KEM sets.
        if unsafe { sys::EVP_PKEY_CTX_kem_set_params(ctx.as_ptr(), p.nid()) } != 1 {
            return None;
        }
        // SAFETY: `ctx` is live.
        if unsafe { sys::EVP_PKEY_keygen_init(ctx.as_ptr()) } != 1 {
            return None;
        }
        let mut out: *mut sys::EVP_PKEY = ptr::null_mut();
        let mut len = SEED_LEN;
        // SAFETY: `seed` holds `len` readable bytes; aws-lc stores a new key in `out`, which we
        // then own.
        let ok = unsafe { sys::EVP_PKEY_keygen_deterministic(ctx.as_ptr(), &mut out, seed.as_ptr(), &mut len) };
        let pkey = Pkey::new(out)?;
        if ok != 1 {
            return None;
        }
        let ek = raw_key(&pkey, sys::EVP_PKEY_get_raw_public_key, p.ek_len())?;
        let dk = raw_key(&pkey, sys::EVP_PKEY_get_raw_private_key, p.dk_len())?;
        Some((ek.to_vec(), dk, pkey))
    })();
    clear_errors();
    r
}

/// A generated key pair: (ek, dk, the seed d‖z).
pub type Generated = (Vec<u8>, Zeroizing<Vec<u8>>, Zeroizing<[u8; SEED_LEN]>);

/// A fresh key pair: a seed d‖z from the DRBG, expanded.
pub fn generate(p: Params) -> Option<Generated> {
    generate_parsed(p).map(|(g, ..)| g)
}

/// [`generate`], and the pair's keys parsed, as its objects keep them. The private key keeps the
/// key aws-lc's key generation made (dk is not parsed again from its encoding); the public key
/// gets its own, made from ek alone: aws-lc's generated key holds dk too, which must not outlive
/// the private key object in a public one.
pub fn generate_parsed(p: Params) -> Option<(Generated, EncapsulationKey, DecapsulationKey)> {
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    super::random::fill(&mut seed[..]).ok()?;
    let (ek, dk, key) = keygen_key(p, &seed)?;
    let public = EncapsulationKey::new(p, &ek)?;
    Some(((ek, dk, seed), public, DecapsulationKey { key, p }))
}

/// A parsed encapsulation key (what a public key object keeps, `Object::parsed`): aws-lc's key,
/// called directly rather than through aws-lc-rs's `kem`, so that the ciphertext and the secret
/// are written straight into the buffers the module hands on (aws-lc-rs's would be copied out of
/// its own, and its ciphertext wiped, about 2,500 instructions per encapsulation).
pub struct EncapsulationKey {
    key: Pkey,
    p: Params,
}

impl EncapsulationKey {
    /// ek from its FIPS 203 encoding (aws-lc's `EVP_PKEY_kem_new_raw_public_key`, as
    /// aws-lc-rs's `EncapsulationKey::new`); `None` for an encoding of the wrong length or one
    /// aws-lc refuses.
    pub fn new(p: Params, ek: &[u8]) -> Option<EncapsulationKey> {
        if ek.len() != p.ek_len() {
            return None;
        }
        // SAFETY: `ek` is a readable slice of its length; the new key is owned from here on.
        let key = Pkey::new(unsafe { sys::EVP_PKEY_kem_new_raw_public_key(p.nid(), ek.as_ptr(), ek.len()) });
        clear_errors();
        Some(EncapsulationKey { key: key?, p })
    }

    /// ML-KEM.Encaps: (ciphertext, shared secret).
    pub fn encapsulate(&self) -> Option<(Vec<u8>, Zeroizing<Vec<u8>>)> {
        let r = (|| {
            let ctx = self.key.context()?;
            let mut ct = vec![0u8; self.p.ct_len()];
            let mut ss = Zeroizing::new(vec![0u8; SECRET_LEN]);
            let (mut ct_len, mut ss_len) = (ct.len(), ss.len());
            // SAFETY: each buffer has room for the length passed with it; aws-lc writes at most
            // that many bytes and stores the length written.
            let ok = unsafe {
                sys::EVP_PKEY_encapsulate(ctx.as_ptr(), ct.as_mut_ptr(), &mut ct_len, ss.as_mut_ptr(), &mut ss_len)
            };
            (ok == 1 && ct_len == ct.len() && ss_len == SECRET_LEN).then_some((ct, ss))
        })();
        if r.is_none() {
            clear_errors();
        }
        r
    }
}

/// A parsed decapsulation key (what a private key object keeps, `Object::parsed`; aws-lc's copy
/// of dk is cleansed when the key is freed), called directly as [`EncapsulationKey`] is.
pub struct DecapsulationKey {
    key: Pkey,
    p: Params,
}

impl DecapsulationKey {
    /// dk from its FIPS 203 encoding (`EVP_PKEY_kem_new_raw_secret_key`, as aws-lc-rs's
    /// `DecapsulationKey::new`).
    pub fn new(p: Params, dk: &[u8]) -> Option<DecapsulationKey> {
        if dk.len() != p.dk_len() {
            return None;
        }
        // SAFETY: `dk` is a readable slice of its length; the new key is owned from here on.
        let key = Pkey::new(unsafe { sys::EVP_PKEY_kem_new_raw_secret_key(p.nid(), dk.as_ptr(), dk.len()) });
        clear_errors();
        Some(DecapsulationKey { key: key?, p })
    }

    /// ML-KEM.Decaps: the shared secret (implicit rejection for a ciphertext not the key's);
    /// `None` for a ciphertext of the wrong length.
    pub fn decapsulate(&self, ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if ct.len() != self.p.ct_len() {
            return None;
        }
        let r = (|| {
            let ctx = self.key.context()?;
            let mut ss = Zeroizing::new(vec![0u8; SECRET_LEN]);
            let mut ss_len = ss.len();
            // SAFETY: `ss` has room for `ss_len` bytes, `ct` holds `ct.len()` readable bytes.
            let ok =
                unsafe { sys::EVP_PKEY_decapsulate(ctx.as_ptr(), ss.as_mut_ptr(), &mut ss_len, ct.as_ptr(), ct.len()) };
            (ok == 1 && ss_len == SECRET_LEN).then_some(ss)
        })();
        if r.is_none() {
            clear_errors();
        }
        r
    }
}

/// ML-KEM.Encaps(ek): (ciphertext, shared secret). `None` for an encapsulation key aws-lc
/// refuses.
pub fn encapsulate(p: Params, ek: &[u8]) -> Option<(Vec<u8>, Zeroizing<Vec<u8>>)> {
    EncapsulationKey::new(p, ek)?.encapsulate()
}

/// ML-KEM.Decaps(dk, c): the shared secret (the implicit-rejection value for a ciphertext that is
/// not `dk`'s). The caller checks the ciphertext's length first.
pub fn decapsulate(p: Params, dk: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    DecapsulationKey::new(p, dk)?.decapsulate(ct)
}

/// ML-KEM.Encaps_internal(ek, m): encapsulation with the randomness m given (known-answer tests).
pub fn encapsulate_deterministic(p: Params, ek: &[u8], m: &[u8; M_LEN]) -> Option<(Vec<u8>, Zeroizing<Vec<u8>>)> {
    let r = (|| {
        // SAFETY: `ek` is a readable slice of its length; the new key is owned from here on.
        let pkey = Pkey::new(unsafe { sys::EVP_PKEY_kem_new_raw_public_key(p.nid(), ek.as_ptr(), ek.len()) })?;
        let ctx = pkey.context()?;
        let mut ct = vec![0u8; p.ct_len()];
        let mut ss = Zeroizing::new(vec![0u8; SECRET_LEN]);
        let (mut ct_len, mut ss_len, mut m_len) = (ct.len(), ss.len(), M_LEN);
        // SAFETY: each buffer has room for the length passed with it; `m` holds `m_len` bytes.
        let ok = unsafe {
            sys::EVP_PKEY_encapsulate_deterministic(
                ctx.as_ptr(),
                ct.as_mut_ptr(),
                &mut ct_len,
                ss.as_mut_ptr(),
                &mut ss_len,
                m.as_ptr(),
                &mut m_len,
            )
        };
        (ok == 1 && ct_len == ct.len() && ss_len == SECRET_LEN).then_some((ct, ss))
    })();
    clear_errors();
    r
}

/// Encapsulation with a given m cannot be asked through PKCS #11 (`C_EncapsulateKey` draws m
/// itself): the NIST ACVP and Wycheproof encapsulation vectors are checked here, at the core.
/// They are read from `../shared/vectors/` beside the project; absent, the test says so and
/// passes without them.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn hex(v: &Value) -> Vec<u8> {
        let s = v.as_str().unwrap_or("");
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn load(rel: &str) -> Option<Value> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors").join(rel);
        match std::fs::read(&p) {
            Ok(b) => Some(serde_json::from_slice(&b).expect("JSON")),
            Err(e) => {
                println!("SKIP {}: {e}", p.display());
                None
            }
        }
    }

    /// A generated pair's public form holds ek alone: the private form, aws-lc's generated key,
    /// holds dk too, which must go with the private key object (a public key object that kept it
    /// would keep dk in memory after the private key is destroyed).
    #[test]
    fn a_generated_public_key_holds_no_private_key() {
        for p in [Params::MlKem512, Params::MlKem768, Params::MlKem1024] {
            let ((ek, dk, _), public, private) = generate_parsed(p).expect("generate");
            let private_of = |k: &Pkey| raw_key(k, sys::EVP_PKEY_get_raw_private_key, p.dk_len());
            assert_eq!(private_of(&private.key).as_deref(), Some(&*dk), "the private form holds dk");
            assert!(private_of(&public.key).is_none(), "the public form holds no dk");
            clear_errors();
            let public_of = raw_key(&public.key, sys::EVP_PKEY_get_raw_public_key, p.ek_len());
            assert_eq!(public_of.as_deref(), Some(&ek), "the public form holds ek");
            let (ct, k1) = public.encapsulate().expect("encapsulate");
            assert_eq!(private.decapsulate(&ct).expect("decapsulate"), k1);
        }
    }

    fn params(name: &str) -> Params {
        match name {
            "ML-KEM-512" => Params::MlKem512,
            "ML-KEM-768" => Params::MlKem768,
            "ML-KEM-1024" => Params::MlKem1024,
            other => panic!("parameter set {other}"),
        }
    }

    fn cases(v: &Value) -> Vec<(&Value, &Value)> {
        let mut out = Vec::new();
        for g in v["testGroups"].as_array().into_iter().flatten() {
            for t in g["tests"].as_array().into_iter().flatten() {
                out.push((g, t));
            }
        }
        out
    }

    #[test]
    fn acvp_encapsulation_with_given_m() {
        let Some(v) = load("acvp/ML-KEM-encapDecap-FIPS203/internalProjection.json") else { return };
        let mut passed = 0;
        for (g, t) in cases(&v) {
            if g["function"] != "encapsulation" {
                continue;
            }
            let p = params(g["parameterSet"].as_str().unwrap());
            let m: [u8; M_LEN] = hex(&t["m"]).try_into().expect("m");
            let (c, k) = encapsulate_deterministic(p, &hex(&t["ek"]), &m).expect("encapsulate");
            assert_eq!((c, k.to_vec()), (hex(&t["c"]), hex(&t["k"])), "tcId {}", t["tcId"]);
            passed += 1;
        }
        println!("ACVP ML-KEM-encapDecap-FIPS203 encapsulation: {passed} passed, 0 failed, 0 skipped");
        assert_eq!(passed, 9);
    }

    #[test]
    fn wycheproof_encapsulation_with_given_m() {
        for set in [512, 768, 1024] {
            let Some(v) = load(&format!("wycheproof/mlkem_{set}_encaps_test.json")) else { continue };
            let (mut passed, mut failed) = (0, Vec::new());
            for (g, t) in cases(&v) {
                let p = params(g["parameterSet"].as_str().unwrap());
                let ek = hex(&t["ek"]);
                let m: [u8; M_LEN] = hex(&t["m"]).try_into().expect("m");
                // The module checks ek (FIPS 203 §7.2) when a public key is created, before any
                // encapsulation; the same check here.
                let valid = crate::keys::ml_kem::ek_valid(p, &ek);
                let got = if valid { encapsulate_deterministic(p, &ek, &m) } else { None };
                let ok = match t["result"].as_str() {
                    Some("valid") => got.is_some_and(|(c, k)| c == hex(&t["c"]) && k.to_vec() == hex(&t["K"])),
                    _ => got.is_none(),
                };
                if ok {
                    passed += 1;
                } else {
                    failed.push(t["tcId"].to_string());
                }
            }
            println!("wycheproof mlkem_{set}_encaps_test (core): {passed} passed, {} failed, 0 skipped", failed.len());
            assert!(failed.is_empty(), "failed: {failed:?}");
        }
    }

    #[test]
    fn keygen_is_the_expansion_of_the_seed() {
        // Generated keys are their seed expanded again (what `C_CreateObject` with CKA_SEED does).
        let (ek, dk, seed) = generate(Params::MlKem768).expect("generate");
        let (ek2, dk2) = keygen_from_seed(Params::MlKem768, &seed).expect("expand");
        assert_eq!((&ek, &dk), (&ek2, &dk2));
        let (c, k) = encapsulate(Params::MlKem768, &ek2).expect("encapsulate");
        assert_eq!(decapsulate(Params::MlKem768, &dk2, &c), Some(k));
        assert_eq!(decapsulate(Params::MlKem768, &dk2, &c[1..]), None);
    }
}
