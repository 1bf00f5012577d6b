//! Tested operational environments (security policy §2.7): the library started with the CPU's
//! cryptographic extensions hidden from aws-lc must pass its power-on self-tests and give the
//! same known answers as on the whole CPU.
//!
//! aws-lc picks its AES, GHASH and SHA code by the CPU features it finds at start-up, and reads
//! the `OPENSSL_ia32cap` environment variable to mask them (`~` clears bits of what the CPU
//! reports; it cannot add any). Each configuration below starts the library in a child process
//! (this test binary again) with its mask, and the child:
//! - initialises the module and checks that the power-on self-tests left it out of the error
//!   state (the integrity GMAC, Tessera's known-answer tests and aws-lc's own run with the mask);
//! - decrypts (and, outside the approved mode, encrypts) test case 16 of the GCM specification
//!   (AES-256) and a 1 MiB message sealed by this process with aws-lc-rs on the whole CPU;
//! - digests "abc" and one million "a" with SHA-1, SHA-256, SHA-384 and SHA-512 (FIPS 180 examples);
//! - reports the time of a 1 MiB AES-GCM decryption and a 1 MiB SHA-256, so that the test can see
//!   that the mask reached aws-lc (without AES-NI the decryption is several times slower, without
//!   the SHA extensions SHA-256 is).
//!
//! A child whose self-tests failed reports it and fails: [`a_failing_self_test_fails_the_probe`]
//! proves that with the test-only fault-injection build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tessera_tests::*;

/// Set in the child: what it is to do.
const CHILD: &str = "TESSERA_ENV_PROBE";
/// The 1 MiB message's ciphertext for the child, written by the parent.
const SEALED: &str = "TESSERA_ENV_SEALED";

/// One environment: its name, and the `OPENSSL_ia32cap` value that makes it (`None`: the CPU as
/// it is). The first value masks CPUID leaf 1 (EDX in the low 32 bits, ECX in the high 32 bits),
/// the second leaf 7 (EBX low, ECX high); the bits are those aws-lc tests
/// (`crypto/fipsmodule/cpucap/internal.h`).
struct Config {
    name: &'static str,
    cap: Option<&'static str>,
    /// Whether AES-NI is hidden (the decryption must then be measurably slower).
    no_aesni: bool,
    /// Whether the SHA extensions are hidden (SHA-256 must then be measurably slower).
    no_sha: bool,
}

const CONFIGS: &[Config] = &[
    Config { name: "whole CPU", cap: None, no_aesni: false, no_sha: false },
    // Leaf 1 ECX: AES-NI (25), PCLMULQDQ (1); leaf 7 ECX: VAES (9), VPCLMULQDQ (10).
    Config {
        name: "no AES-NI, PCLMULQDQ, VAES, VPCLMULQDQ",
        cap: Some("~0x0200000200000000:~0x0000060000000000"),
        no_aesni: true,
        no_sha: false,
    },
    // Leaf 1 ECX: AVX (28), FMA (12); leaf 7 EBX: AVX2 (5), AVX-512 F (16), DQ (17), IFMA (21),
    // BW (30), VL (31); leaf 7 ECX: VBMI2 (6), VAES (9), VPCLMULQDQ (10).
    Config {
        name: "no AVX, AVX2, AVX-512",
        cap: Some("~0x1000100000000000:~0x00000640C0230020"),
        no_aesni: false,
        no_sha: false,
    },
    // Leaf 7 EBX: SHA (29).
    Config { name: "no SHA extensions", cap: Some("~0:~0x0000000020000000"), no_aesni: false, no_sha: true },
    // All of the above, and SSSE3 (leaf 1 ECX 9), SSE4.1 (19), MOVBE (22), BMI1 (leaf 7 EBX 3),
    // BMI2 (8), ADX (19): aws-lc's portable C code for AES, GHASH and SHA.
    Config {
        name: "none of them (baseline x86-64)",
        cap: Some("~0x1248120200000000:~0x00000640E02B0128"),
        no_aesni: true,
        no_sha: true,
    },
];

/// The GCM specification's test case 16 (McGrew and Viega, "The Galois/Counter Mode of
/// Operation", AES-256, 96-bit IV, 20 bytes of AAD, 60 bytes of text).
const GCM16_KEY: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
const GCM16_IV: &str = "cafebabefacedbaddecaf888";
const GCM16_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM16_PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const GCM16_CT: &str = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
const GCM16_TAG: &str = "76fc6ece0f4e1768cddf8853bb2d551b";

/// FIPS 180 examples: "abc" and one million "a".
const SHA_ABC: [(&str, &str); 4] = [
    ("SHA-1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("SHA-256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("SHA-384", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
    ("SHA-512", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
];
const SHA_MILLION_A: [(&str, &str); 3] = [
    ("SHA-1", "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
    ("SHA-256", "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ("SHA-512", "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"),
];

/// The key and IV the 1 MiB message is sealed with.
const BULK_KEY: [u8; 32] = [0x5a; 32];
const BULK_IV: [u8; 12] = [0x0c; 12];

/// The 1 MiB message: a pattern no block of which repeats.
fn bulk_message() -> Vec<u8> {
    (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha_mechanism(name: &str) -> cryptoki::mechanism::Mechanism<'static> {
    use cryptoki::mechanism::Mechanism;
    match name {
        "SHA-1" => Mechanism::Sha1,
        "SHA-256" => Mechanism::Sha256,
        "SHA-384" => Mechanism::Sha384,
        "SHA-512" => Mechanism::Sha512,
        _ => panic!("{name}"),
    }
}

/// The child: everything it checks, it asserts; what it measures, it prints as `PROBE key=value`.
fn probe() {
    use cryptoki_sys::*;
    // The self-tests first, on a module with no token yet: the error state shows in every
    // token's flags.
    {
        let l = load_env(Env::new(""));
        let info = l.p.get_token_info(l.free_slot()).expect("C_GetTokenInfo");
        if info.error_state() {
            println!("PROBE error-state");
            panic!("the power-on self-tests failed: the module is in the error state");
        }
        println!("PROBE self-tests=passed");
    }
    let t = Token::new("environments");
    // AES-256-GCM, the GCM specification's test case 16.
    let k = t.key(CKK_AES, &unhex(GCM16_KEY)).expect("AES key");
    let (iv, aad) = (unhex(GCM16_IV), unhex(GCM16_AAD));
    let sealed = [unhex(GCM16_CT), unhex(GCM16_TAG)].concat();
    assert_eq!(t.decrypt(&gcm(&iv, &aad, 128), k, &sealed).expect("GCM decryption"), unhex(GCM16_PT));
    if !approved_mode() {
        // The approved mode encrypts only with IVs it generates itself (security policy §2.3).
        assert_eq!(t.encrypt(&gcm(&iv, &aad, 128), k, &unhex(GCM16_PT)).expect("GCM encryption"), sealed);
    }
    println!("PROBE gcm-tc16=ok");
    // The 1 MiB message the parent sealed on the whole CPU: bulk code paths (stitched AES-GCM,
    // wide GHASH) differ from the short ones.
    let bulk = std::fs::read(std::env::var_os(SEALED).expect("sealed message path")).expect("sealed message");
    let kb = t.key(CKK_AES, &BULK_KEY).expect("AES key");
    let m = gcm(&BULK_IV, b"", 128);
    let msg = bulk_message();
    assert_eq!(t.decrypt(&m, kb, &bulk).expect("1 MiB GCM decryption"), msg);
    if !approved_mode() {
        assert_eq!(t.encrypt(&m, kb, &msg).expect("1 MiB GCM encryption"), bulk);
    }
    println!("PROBE gcm-1mib=ok");
    // SHA.
    let million = vec![b'a'; 1_000_000];
    for (name, want) in SHA_ABC {
        assert_eq!(hex(&t.s().digest(&sha_mechanism(name), b"abc").expect("digest")), want, "{name}(\"abc\")");
    }
    for (name, want) in SHA_MILLION_A {
        assert_eq!(hex(&t.s().digest(&sha_mechanism(name), &million).expect("digest")), want, "{name}(a × 10^6)");
    }
    println!("PROBE sha=ok");
    // Timings: best of 5.
    let best = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let s = std::time::Instant::now();
                f();
                s.elapsed()
            })
            .min()
            .expect("runs")
    };
    let gcm_time = best(&|| {
        t.decrypt(&m, kb, &bulk).expect("GCM");
    });
    let sha_time = best(&|| {
        t.s().digest(&sha_mechanism("SHA-256"), &msg).expect("SHA-256");
    });
    println!("PROBE gcm-us={}", gcm_time.as_micros());
    println!("PROBE sha256-us={}", sha_time.as_micros());
}

/// In the child, runs the probe; otherwise nothing (the parent tests start it).
#[test]
fn probe_in_child() {
    if std::env::var_os(CHILD).is_some() {
        probe();
    }
}

/// Starts the probe with `cap` as `OPENSSL_ia32cap` (removed when `None`) and `module` as the
/// library; the child's output.
fn run_probe(cap: Option<&str>, module: &Path, sealed: &Path, extra_env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.args(["--exact", "probe_in_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env(SEALED, sealed)
        .env("TESSERA_MODULE", module);
    match cap {
        Some(v) => c.env("OPENSSL_ia32cap", v),
        None => c.env_remove("OPENSSL_ia32cap"),
    };
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().expect("run the probe")
}

/// The probe's `PROBE key=value` reports (the first shares its line with the test harness's own
/// "test probe_in_child ... ").
fn reports(out: &std::process::Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("PROBE ").map(|(_, r)| r))
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// The 1 MiB message sealed with AES-256-GCM by aws-lc-rs in this process (the whole CPU), in a
/// file for the children.
fn sealed_bulk(dir: &Path) -> PathBuf {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &BULK_KEY).expect("key"));
    let mut buf = bulk_message();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(BULK_IV), Aad::empty(), &mut buf).expect("seal");
    let p = dir.join("bulk.sealed");
    std::fs::write(&p, buf).expect("write");
    p
}

/// Whether the CPU has the features the masks hide (otherwise a mask changes nothing and the
/// timing check says nothing).
fn cpu_has(flag: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("flags")).any(|l| l.split_whitespace().any(|f| f == flag)))
        .unwrap_or(false)
}

#[test]
fn self_tests_and_known_answers_with_cpu_features_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sealed = sealed_bulk(dir.path());
    let module = module_path();
    let mut native = None;
    let mut rows = Vec::new();
    for c in CONFIGS {
        let out = run_probe(c.cap, &module, &sealed, &[]);
        let r = reports(&out);
        assert!(
            out.status.success() && r.contains_key("sha"),
            "{} (OPENSSL_ia32cap={:?}): the probe failed\n{}",
            c.name,
            c.cap,
            show(&out)
        );
        assert_eq!(r.get("self-tests").map(String::as_str), Some("passed"), "{}", c.name);
        let us = |k: &str| r.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{}: {k}", c.name));
        let (gcm, sha) = (us("gcm-us"), us("sha256-us"));
        if c.cap.is_none() {
            native = Some((gcm, sha));
        }
        let (native_gcm, native_sha) = native.expect("the whole CPU runs first");
        rows.push(format!("| {} | `{}` | passed | ok | {gcm} µs | {sha} µs |", c.name, c.cap.unwrap_or("(unset)")));
        // The mask reached aws-lc: what it hides is missed (several times slower here).
        if c.no_aesni && cpu_has("aes") {
            assert!(
                gcm >= 2 * native_gcm,
                "{}: 1 MiB AES-GCM took {gcm} µs against {native_gcm} µs on the whole CPU: the mask did not reach aws-lc",
                c.name
            );
        }
        if c.no_sha && cpu_has("sha_ni") {
            assert!(
                2 * sha >= 3 * native_sha,
                "{}: 1 MiB SHA-256 took {sha} µs against {native_sha} µs on the whole CPU: the mask did not reach aws-lc",
                c.name
            );
        }
    }
    println!("| environment | OPENSSL_ia32cap | power-on self-tests | GCM and SHA known answers | AES-256-GCM 1 MiB decrypt | SHA-256 1 MiB |");
    println!("|---|---|---|---|---:|---:|");
    for r in rows {
        println!("{r}");
    }
}

/// The probe fails when a self-test fails: the fault-injection build (test builds only) fails
/// the AES-256-GCM known-answer test on request, under a mask.
#[test]
fn a_failing_self_test_fails_the_probe() {
    let Some(p) = fault_module() else { return };
    seal(&p);
    let dir = tempfile::tempdir().expect("tempdir");
    let sealed = sealed_bulk(dir.path());
    let cap = CONFIGS[1].cap;
    let out = run_probe(cap, &p, &sealed, &[("TESSERA_FAIL_SELFTEST", "AES-256-GCM")]);
    assert!(!out.status.success(), "a failed self-test must fail the probe\n{}", show(&out));
    assert!(reports(&out).contains_key("error-state"), "the probe must see the error state\n{}", show(&out));
    // The same build, unharmed, passes under the same mask.
    let out = run_probe(cap, &p, &sealed, &[]);
    assert!(out.status.success(), "the fault-injection build without a fault\n{}", show(&out));
}
