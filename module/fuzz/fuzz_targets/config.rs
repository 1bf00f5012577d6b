//! The configuration file parser (`config::Config::parse`): any text gives a configuration or an
//! error naming the line, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tessera_pkcs11::config::Config::parse(text);
    }
});
