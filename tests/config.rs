//! SoftHSMv2's configuration keys and the diagnostic log, through the built module: a stock
//! `softhsm2.conf` loads; `slots.mechanisms` restricts the mechanisms as SoftHSMv2 does (an
//! enabled list, a disabled list, unknown names ignored) and outranks a key's
//! `CKA_ALLOWED_MECHANISMS`; an error is printed once, without colour when stderr is not a
//! terminal; `log.file` writes the log to a file rotated daily.

use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::Attribute;
use tessera_tests::*;

/// Debian's stock `/etc/softhsm/softhsm2.conf` (softhsm2 2.6.1), with its token directory
/// pointed at a fresh store.
const DEBIAN_SOFTHSM2_CONF: &str = "# SoftHSM v2 configuration file

directories.tokendir = TOKENS
objectstore.backend = file

# ERROR, WARNING, INFO, DEBUG
log.level = ERROR

# If CKF_REMOVABLE_DEVICE flag should be set
slots.removable = false

# Enable and disable PKCS#11 mechanisms using slots.mechanisms.
slots.mechanisms = ALL

# If the library should reset the state on fork
library.reset_on_fork = false
";

#[test]
fn debian_stock_softhsm2_conf_loads() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("softhsm2.conf");
    let text = DEBIAN_SOFTHSM2_CONF.replace("TOKENS", &dir.path().join("tokens").display().to_string())
        + "objectstore.umask = 0077\nlog.level = INFO # a comment after the value\n";
    std::fs::write(&conf, text).unwrap();
    std::env::set_var("TESSERA_CONF", &conf);
    let p = cryptoki::context::Pkcs11::new(module_path()).unwrap();
    p.initialize(init_args()).expect("a stock softhsm2.conf loads");
    let slot = p.get_all_slots().unwrap()[0];
    assert!(p.get_mechanism_list(slot).unwrap().len() > 40, "ALL: every mechanism");
    p.finalize().unwrap();
}

/// The mechanisms offered under `slots.mechanisms = value`.
fn offered(value: &str) -> (Vec<MechanismType>, Token) {
    let t = Token::with_conf("mechs", &format!("slots.mechanisms = {value}"));
    let list = t.l.p.get_mechanism_list(t.cslot()).unwrap();
    (list, t)
}

#[test]
fn slots_mechanisms_enables_a_list() {
    let (list, t) = offered("CKM_SHA256, CKM_AES_KEY_GEN,CKM_AES_GCM, CKM_NO_SUCH_THING");
    let mut want = vec![MechanismType::SHA256, MechanismType::AES_KEY_GEN, MechanismType::AES_GCM];
    want.sort_by_key(|m| CK_ULONG_of(*m));
    let mut got = list.clone();
    got.sort_by_key(|m| CK_ULONG_of(*m));
    assert_eq!(got, want, "only the listed mechanisms; the unknown name ignored");
    let s = t.s();
    assert_eq!(rv_of(s.digest(&Mechanism::Sha1, b"x")), RvError::MechanismInvalid);
    assert_eq!(s.digest(&Mechanism::Sha256, b"x").unwrap().len(), 32);
    assert_eq!(rv_of(t.l.p.get_mechanism_info(t.cslot(), MechanismType::SHA1)), RvError::MechanismInvalid);
    // Stronger than a key's CKA_ALLOWED_MECHANISMS: a key that allows a disabled mechanism still
    // cannot use it.
    let key = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::AllowedMechanisms(vec![MechanismType::AES_CBC_PAD, MechanismType::AES_GCM]),
            ],
        )
        .unwrap();
    assert_eq!(rv_of(s.encrypt(&Mechanism::AesCbcPad([0; 16]), key, b"x")), RvError::MechanismInvalid);
}

#[test]
fn slots_mechanisms_disables_a_list() {
    let (all, _t) = offered("ALL");
    drop(_t);
    let (list, t) = offered("-CKM_SHA_1,CKM_DES3_ECB, SHA224");
    for gone in [MechanismType::SHA1, MechanismType::SHA224] {
        assert!(!list.contains(&gone), "{gone} disabled");
    }
    assert!(!list.iter().any(|m| CK_ULONG_of(*m) == cryptoki_sys::CKM_DES3_ECB));
    assert!(list.contains(&MechanismType::SHA256));
    let disabled_present = all.iter().filter(|m| !list.contains(m)).count();
    assert!((1..=3).contains(&disabled_present), "only the named ones are gone ({disabled_present})");
    assert_eq!(rv_of(t.s().digest(&Mechanism::Sha1, b"x")), RvError::MechanismInvalid);
}

#[allow(non_snake_case)]
fn CK_ULONG_of(m: MechanismType) -> cryptoki_sys::CK_ULONG {
    *m
}

/// A configuration error is printed once on stderr, with no terminal escapes (stderr is a pipe
/// here), whoever loads the library.
#[test]
fn a_configuration_error_is_printed_once_without_colour() {
    let env = Env::new("no.such.key = 1");
    let out = env.command(util_path()).arg("--show-slots").env_remove("NO_COLOR").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("unknown key `no.such.key`").count(), 1, "printed once:\n{err}");
    assert!(!err.contains('\u{1b}'), "no terminal escapes on a pipe:\n{err}");
}

/// `log.file`: the log goes to the file (a new one each day, the date appended), not stderr.
#[test]
fn log_file_receives_the_log() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs").join("tessera.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let env = Env::new(&format!("log.level = INFO\nlog.file = {}", log.display()));
    let out = env.command(util_path()).arg("--show-slots").output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let written: Vec<_> = std::fs::read_dir(log.parent().unwrap()).unwrap().flatten().collect();
    assert_eq!(written.len(), 1, "one log file");
    let name = written[0].file_name().to_string_lossy().into_owned();
    assert!(name.starts_with("tessera.log."), "{name}");
    let text = std::fs::read_to_string(written[0].path()).unwrap();
    assert!(text.contains("self-tests passed"), "the INFO line is in the file:\n{text}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("self-tests passed"), "and not on stderr");
}

/// The message API is held to `slots.mechanisms` too.
#[test]
fn slots_mechanisms_covers_the_message_api() {
    let t = Token::with_conf("msg", "slots.mechanisms = -CKM_AES_GCM");
    let key = t
        .s()
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let mut m = Mech::new(cryptoki_sys::CKM_AES_GCM).raw();
    for encrypt in [true, false] {
        let rv = unsafe {
            if encrypt {
                t.f.C_MessageEncryptInit(t.h, &mut m, key.handle())
            } else {
                t.f.C_MessageDecryptInit(t.h, &mut m, key.handle())
            }
        };
        assert_eq!(rv, cryptoki_sys::CKR_MECHANISM_INVALID, "encrypt: {encrypt}");
    }
}
