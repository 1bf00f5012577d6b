//! The token store's record decoders: an object's attribute map (`object::decode`) and a nested
//! template value (`object::decode_template`), as read back from a store a bit flip or another
//! program may have damaged. What decodes must encode again and decode to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tessera_pkcs11::object;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = object::decode(data) {
        let again = object::encode(&map).expect("a decoded map encodes");
        assert!(object::decode(&again).expect("re-decodes") == map);
    }
    if let Ok(t) = object::decode_template(data) {
        let again = object::encode_template(&t).expect("a decoded template encodes");
        assert!(object::decode_template(&again).expect("re-decodes") == t);
    }
});
