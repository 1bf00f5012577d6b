//! The login cache (`pin.cache = keyring`): the key a right PIN derived, kept in the kernel's
//! session keyring for `pin.cache_seconds`, found again by a later initialisation of the module
//! (as by another process of the session) only with the same PIN; a wrong PIN, `C_SetPIN`,
//! `C_InitPIN` and `tessera-util --logout-all` end it, the kernel expires it, and the approved
//! mode refuses the setting. Skips when the kernel gives no keyring.

use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use tessera_tests::*;

// (Also the test tokens of short-lived pipelines: `test_tokens` below.)

/// The live (not expired) Tessera entries `/proc/keys` lists for this process.
fn entries() -> Vec<String> {
    std::fs::read_to_string("/proc/keys")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().nth(8).is_some_and(|d| d.starts_with("tessera:")))
        // Neither expired nor invalidated (the kernel lists both until it collects them).
        .filter(|l| l.split_whitespace().nth(3) != Some("expd"))
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|f| !f.contains('i') && !f.contains('R')))
        .map(str::to_string)
        .collect()
}

/// The tests of this file share the session keyring: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn keyrings_work() -> bool {
    if approved_mode() {
        eprintln!("skipped: the approved mode refuses the login cache (see the_approved_mode_refuses_the_cache)");
        return false;
    }
    if std::fs::read_to_string("/proc/keys").is_err() {
        eprintln!("skipped: this kernel lists no keys (/proc/keys)");
        return false;
    }
    true
}

/// The configuration of the cached store.
const CACHE: &str = "pin.cache = keyring\npin.cache_seconds = 60";

/// Logs in as the user on a fresh initialisation of the module (the in-process cache gone).
fn login_again(env: &Env, label: &str, pin: &str) -> Result<(), RvError> {
    let l = load_env(Env::at(&env.tokendir(), CACHE));
    let s = l.p.open_rw_session(l.slot_of(label)).unwrap();
    let r = s.login(UserType::User, Some(&AuthPin::new(pin.into())));
    r.map_err(|e| rv_of::<()>(Err(e)))
}

#[test]
fn the_cache_keeps_a_right_pin_s_key_and_loses_it_when_it_should() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !keyrings_work() {
        return;
    }
    let _ = std::process::Command::new(util_path()).arg("--logout-all").output();
    let env = Env::new(CACHE);
    let label = "cached";
    {
        let l = load_env(Env::at(&env.tokendir(), CACHE));
        l.new_token(label);
        let s = user_session(&l.p, l.slot_of(label));
        s.logout().unwrap();
    }
    // The SO's login (C_InitPIN) and the user's each leave an entry.
    assert_eq!(entries().len(), 2, "one entry per role whose PIN logged in:\n{:?}", entries());
    // A later initialisation logs in with it; a wrong PIN misses it, is counted, and ends it.
    login_again(&env, label, USER_PIN).expect("the right PIN");
    assert_eq!(entries().len(), 2, "the entry found again, none added");
    assert_eq!(login_again(&env, label, "654321"), Err(RvError::PinIncorrect));
    assert_eq!(entries().len(), 1, "a wrong PIN ends the user's entry");
    {
        let l = load_env(Env::at(&env.tokendir(), "pin.cache = keyring"));
        let info = l.p.get_token_info(l.slot_of(label)).unwrap();
        assert!(info.user_pin_count_low(), "the wrong PIN was counted");
    }
    login_again(&env, label, USER_PIN).expect("derived again");
    assert_eq!(entries().len(), 2);
    // C_SetPIN ends it (and the new PIN's login makes a new one).
    {
        let l = load_env(Env::at(&env.tokendir(), "pin.cache = keyring"));
        let s = user_session(&l.p, l.slot_of(label));
        s.set_pin(&AuthPin::new(USER_PIN.into()), &AuthPin::new("1234567".into())).unwrap();
        assert_eq!(entries().len(), 1, "C_SetPIN ends the user's entry");
        s.set_pin(&AuthPin::new("1234567".into()), &AuthPin::new(USER_PIN.into())).unwrap();
    }
    login_again(&env, label, USER_PIN).expect("the PIN set back");
    assert_eq!(entries().len(), 2);
    // tessera-util --logout-all ends every entry.
    let out = std::process::Command::new(util_path()).arg("--logout-all").output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(entries().is_empty(), "--logout-all");
}

#[test]
fn entries_expire() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !keyrings_work() {
        return;
    }
    let _ = std::process::Command::new(util_path()).arg("--logout-all").output();
    let env = Env::new("pin.cache = keyring\npin.cache_seconds = 1");
    let label = "expiring";
    {
        let l = load_env(Env::at(&env.tokendir(), "pin.cache = keyring\npin.cache_seconds = 1"));
        l.new_token(label);
        drop(user_session(&l.p, l.slot_of(label)));
    }
    assert!(!entries().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(entries().is_empty(), "the kernel expired the entries: {:?}", entries());
    let l = load_env(Env::at(&env.tokendir(), "pin.cache = keyring\npin.cache_seconds = 1"));
    drop(user_session(&l.p, l.slot_of(label)));
}

#[test]
fn the_approved_mode_refuses_the_cache() {
    let _g = lock();
    let env = Env::new("tessera.mode = approved\npin.cache = keyring");
    let out = env.command(util_path()).arg("--show-slots").env_remove("TESSERA_MODE").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pin.cache = keyring"), "{}", show(&out));
}

/// The (SO, user) PBKDF2 iteration counts stored for the token with this serial.
fn stored_iterations(env: &Env, serial: &str) -> (i64, i64) {
    let db = rusqlite::Connection::open(env.tokendir().join(serial).join("tessera.db")).unwrap();
    db.query_row("SELECT so_iterations, user_iterations FROM token", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
}

/// Test tokens (`tessera-util --init-token --test-token`, `T_InitTestToken`): PINs derived with
/// 1,000 iterations, the model "Tessera test", refused in the approved mode; `C_InitToken` makes
/// such a token an ordinary one again, with the 600,000 floor.
#[test]
fn test_tokens() {
    let _g = lock();
    let env = Env::new("");
    let init = |mode: &str| {
        env.command(util_path())
            .env("TESSERA_MODE", mode)
            .args([
                "--init-token",
                "--free",
                "--test-token",
                "--label",
                "throwaway",
                "--so-pin",
                SO_PIN,
                "--pin",
                USER_PIN,
            ])
            .output()
            .unwrap()
    };
    let refused = init("approved");
    assert!(!refused.status.success(), "the approved mode makes no test token");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("the approved mode makes no test tokens"),
        "{}",
        show(&refused)
    );
    let out = init("non-approved");
    assert!(out.status.success(), "{}", show(&out));
    drop(_g);
    let serial = {
        let l = load_in_mode_with("non-approved", &format!("directories.tokendir = {}", env.tokendir().display()));
        let slot = l.slot_of("throwaway");
        let info = l.p.get_token_info(slot).unwrap();
        assert_eq!(info.model(), "Tessera test");
        drop(user_session(&l.p, slot));
        info.serial_number().to_string()
    };
    assert_eq!(stored_iterations(&env, &serial), (1_000, 1_000), "both PINs derive with 1,000 iterations");
    {
        let l = load_in_mode_with("approved", &format!("directories.tokendir = {}", env.tokendir().display()));
        let slot = l.slot_of("throwaway");
        assert_eq!(l.p.get_token_info(slot).unwrap().model(), "Tessera test");
        assert_eq!(
            rv_of(l.p.open_rw_session(slot)),
            RvError::TokenNotRecognized,
            "the approved mode uses no test token"
        );
        // C_InitToken makes it an ordinary token, which the approved mode uses.
        l.p.init_token(slot, &AuthPin::new(SO_PIN.into()), "ordinary").unwrap();
        let slot = l.slot_of("ordinary");
        assert_eq!(l.p.get_token_info(slot).unwrap().model(), "Tessera approved");
        let s = l.p.open_rw_session(slot).unwrap();
        s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into()))).unwrap();
        s.init_pin(&AuthPin::new(USER_PIN.into())).unwrap();
    }
    assert_eq!(stored_iterations(&env, &serial), (600_000, 600_000));
}

/// Whoever can write the store cannot make a real token a test token to get its next PIN wrap at
/// 1,000 iterations: the wraps are bound to the token's test-ness, so after the edit none opens and
/// no new one is made (the non-approved mode); the approved mode opens no session on what now
/// reads as a test token. Each mode is chosen explicitly (the suite's `TESSERA_MODE` is not).
#[test]
fn a_lowered_iteration_column_downgrades_nothing() {
    let env = Env::new("");
    let serial = {
        let l = load_env(Env::at(&env.tokendir(), ""));
        let slot = l.new_token("real");
        l.p.get_token_info(slot).unwrap().serial_number().to_string()
    };
    assert_eq!(stored_iterations(&env, &serial), (600_000, 600_000));
    let db = rusqlite::Connection::open(env.tokendir().join(&serial).join("tessera.db")).unwrap();
    db.execute("UPDATE token SET so_iterations = 1000", []).unwrap();
    drop(db);
    {
        let l = load_at_in_mode(&env.tokendir(), "approved");
        let slot = l.slot_of("real");
        assert_eq!(
            rv_of(l.p.open_rw_session(slot)),
            RvError::TokenNotRecognized,
            "the approved mode uses no test token"
        );
    }
    let l = load_at_in_mode(&env.tokendir(), "non-approved");
    let slot = l.slot_of("real");
    let s = l.p.open_rw_session(slot).unwrap();
    assert_eq!(
        rv_of(s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))),
        RvError::PinIncorrect,
        "the user's wrap does not open as a test token's"
    );
    assert!(s.set_pin(&AuthPin::new(USER_PIN.into()), &AuthPin::new("7654321".into())).is_err());
    drop(s);
    drop(l);
    assert_eq!(stored_iterations(&env, &serial).1, 600_000, "no user wrap at the test count");
}
