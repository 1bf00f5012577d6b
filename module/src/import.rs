//! Key import: PKCS#8 private keys (RSA, EC P-256/P-384/P-521, Ed25519: the key types of `keys`
//! with a PKCS#8 encoding) and raw AES keys turned into PKCS#11 templates. Used by
//! `tessera-util --import`; DER parsing is the RustCrypto `pkcs8`/`pkcs1`/`sec1` crates', nothing
//! here parses ASN.1 by hand.

use crate::object::{bool_, ulong, Template};
use cryptoki_sys::*;
use pkcs8::der::{Decode, Encode};
use pkcs8::PrivateKeyInfo;

pub use crate::keys::KeyPair;

/// Reads a PKCS#8 private key (PEM, or DER), decrypting it with `password` if it is encrypted.
pub fn read_pkcs8(data: &[u8], password: Option<&str>) -> Result<KeyPair, String> {
    let der: Vec<u8> = if let Ok(text) = std::str::from_utf8(data) {
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            let (_, doc) = pkcs8::SecretDocument::from_pem(text).map_err(|e| format!("PEM: {e}"))?;
            let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes()).map_err(|e| e.to_string())?;
            let pw = password.ok_or("the file is encrypted: give --file-pin")?;
            enc.decrypt(pw).map_err(|e| format!("cannot decrypt: {e}"))?.as_bytes().to_vec()
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            let (_, doc) = pkcs8::SecretDocument::from_pem(text).map_err(|e| format!("PEM: {e}"))?;
            doc.as_bytes().to_vec()
        } else if text.contains("-----BEGIN") {
            return Err("not a PKCS#8 private key (convert it with `openssl pkcs8 -topk8 -nocrypt`)".into());
        } else {
            data.to_vec()
        }
    } else {
        data.to_vec()
    };
    let pki = PrivateKeyInfo::from_der(&der).map_err(|e| format!("PKCS#8: {e}"))?;
    let alg = pki.algorithm.oid;
    match crate::keys::by_pkcs8_oid(alg) {
        Some(p) => (p.read)(&pki.algorithm, pki.private_key),
        None => Err(format!("unsupported key algorithm {alg}")),
    }
}

/// The template of an imported token key: class, type, label, id and usage as `tessera-util`
/// sets them (sensitive, not extractable, private).
pub fn key_template(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE, label: &str, id: &[u8]) -> Template {
    let mut t = vec![
        (CKA_CLASS, ulong(class)),
        (CKA_KEY_TYPE, ulong(key_type)),
        (CKA_TOKEN, bool_(true)),
        (CKA_LABEL, label.as_bytes().to_vec().into()),
        (CKA_ID, id.to_vec().into()),
    ];
    match class {
        CKO_PUBLIC_KEY => t.push((CKA_PRIVATE, bool_(false))),
        _ => {
            t.push((CKA_PRIVATE, bool_(true)));
            t.push((CKA_SENSITIVE, bool_(true)));
            t.push((CKA_EXTRACTABLE, bool_(false)));
        }
    }
    t
}

/// Encodes a private key object as PKCS#8 (what `C_WrapKey` wraps).
pub fn encode_pkcs8(obj: &crate::object::Object) -> Result<Vec<u8>, String> {
    use pkcs8::der::asn1::AnyRef;
    use pkcs8::spki::AlgorithmIdentifierRef;
    let e = |e: pkcs8::der::Error| e.to_string();
    let pkcs8 = obj.ulong(CKA_KEY_TYPE).and_then(crate::keys::by_type).and_then(|k| k.pkcs8.as_ref());
    let Some(p) = pkcs8 else { return Err("key type not wrappable as PKCS#8".into()) };
    let (oid, params, key) = (p.encode)(obj)?;
    let parameters = match &params {
        Some(p) => Some(AnyRef::from_der(p).map_err(e)?),
        None => None,
    };
    let pki =
        PrivateKeyInfo { algorithm: AlgorithmIdentifierRef { oid, parameters }, private_key: &key, public_key: None };
    pki.to_der().map_err(e)
}
