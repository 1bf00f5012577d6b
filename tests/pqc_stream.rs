//! Multi-part pure ML-DSA in constant memory: 1 GiB signed and verified in 1 MiB parts through
//! the built module, while the process's peak resident memory (`VmHWM`) grows by far less than
//! the message. A module that gathered the message would hold the whole GiB. Alone in its test
//! binary, so that no other test's memory counts in the peak.

use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, MlDsaParameterSetType, ObjectHandle};
use cryptoki::session::Session;
use tessera_tests::*;

/// Peak resident memory of this process, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM in kB")
}

#[test]
fn one_gib_streams_through_pure_ml_dsa_in_constant_memory() {
    const PART: usize = 1 << 20;
    const PARTS: usize = 1024;
    let t = Token::new("mldsa-gib");
    let s = t.s();
    let (public, private) = ml_dsa_65_pair(s);
    let pure = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    // Each part differs (its index in its first bytes), so that the signature covers the order.
    let mut part = vec![0x3cu8; PART];
    let before = peak_kib();
    let started = std::time::Instant::now();
    s.sign_init(&pure, private).unwrap();
    for i in 0..PARTS {
        part[..8].copy_from_slice(&(i as u64).to_le_bytes());
        s.sign_update(&part).unwrap();
    }
    let sig = s.sign_final().expect("1 GiB signed");
    let signed = started.elapsed();
    let grown = peak_kib().saturating_sub(before);
    println!(
        "1 GiB signed in 1 MiB parts in {signed:?} ({:.0} MiB/s); peak resident memory grew by {grown} KiB",
        1024.0 / signed.as_secs_f64()
    );
    assert!(grown < 64 * 1024, "peak resident memory grew by {grown} KiB while 1 GiB was signed");
    assert!(t.approved(t.h), "hedged pure ML-DSA in parts is approved");
    s.verify_init(&pure, public).unwrap();
    for i in 0..PARTS {
        part[..8].copy_from_slice(&(i as u64).to_le_bytes());
        s.verify_update(&part).unwrap();
    }
    s.verify_final(&sig).expect("1 GiB verified");
    // The same parts in another order: another message.
    s.verify_init(&pure, public).unwrap();
    for i in (0..PARTS).rev() {
        part[..8].copy_from_slice(&(i as u64).to_le_bytes());
        s.verify_update(&part).unwrap();
    }
    assert_eq!(rv_of(s.verify_final(&sig)), cryptoki::error::RvError::SignatureInvalid);
    let grown = peak_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "peak resident memory grew by {grown} KiB while 1 GiB was verified");
}

/// Throughput of multi-part pure ML-DSA-65 (not run by default: `--ignored`): `TESSERA_STREAM_MIB`
/// MiB (256 by default) signed in 1 MiB `C_SignUpdate` parts, then verified in 1 MiB
/// `C_VerifySignatureUpdate` parts (which every version of the module accepts); prints MiB/s of
/// each. For paired comparisons of two builds (`TESSERA_MODULE`), timed as whole processes.
#[test]
#[ignore]
fn multipart_ml_dsa_throughput() {
    let mib: usize = std::env::var("TESSERA_STREAM_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let t = Token::new("mldsa-rate");
    let s = t.s();
    let (public, private) = ml_dsa_65_pair(s);
    let pure = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let part = vec![0xa7u8; 1 << 20];
    let started = std::time::Instant::now();
    s.sign_init(&pure, private).unwrap();
    for _ in 0..mib {
        s.sign_update(&part).unwrap();
    }
    let sig = s.sign_final().unwrap();
    let signed = started.elapsed();
    let started = std::time::Instant::now();
    s.verify_signature_init(&pure, public, &sig).unwrap();
    for _ in 0..mib {
        s.verify_signature_update(&part).unwrap();
    }
    s.verify_signature_final().unwrap();
    let verified = started.elapsed();
    let rate = |d: std::time::Duration| mib as f64 / d.as_secs_f64();
    println!("{mib} MiB: sign {:.0} MiB/s, verify {:.0} MiB/s", rate(signed), rate(verified));
}

/// A session ML-DSA-65 key pair (public, private).
fn ml_dsa_65_pair(s: &Session) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::MlDsaKeyPairGen,
        &[Attribute::Token(false), Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_65.into())],
        &[Attribute::Token(false), Attribute::Sign(true)],
    )
    .expect("ML-DSA-65 key pair")
}
