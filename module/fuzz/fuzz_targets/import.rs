//! Key import (`import::read_pkcs8`): PKCS#8 as DER or PEM, plain or encrypted, with the RSA
//! (PKCS#1), EC (SEC1) and Ed25519 keys inside. The first byte chooses whether a password is given.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let password = if sel & 1 == 1 { Some("fuzz") } else { None };
    if let Ok(kp) = tessera_pkcs11::import::read_pkcs8(rest, password) {
        assert!(!kp.private.is_empty() && !kp.public.is_empty());
    }
});
