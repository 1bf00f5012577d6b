//! Key import: PKCS#8 private keys (RSA, EC P-256/P-384/P-521, Ed25519) and raw AES keys turned
//! into PKCS#11 templates. Used by `tessera-util --import`; DER parsing is the RustCrypto
//! `pkcs8`/`pkcs1`/`sec1` crates', nothing here parses ASN.1 by hand.

use crate::object::{bool_, ulong, Template};
use cryptoki_sys::*;
use pkcs8::der::{Decode, Encode};
use pkcs8::{ObjectIdentifier, PrivateKeyInfo};

const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The two halves of an imported key pair: the private key's material and the public key's.
pub struct KeyPair {
    pub key_type: CK_KEY_TYPE,
    pub private: Template,
    pub public: Template,
}

fn octet_string(v: &[u8]) -> Result<Vec<u8>, String> {
    pkcs8::der::asn1::OctetStringRef::new(v).and_then(|o| o.to_der()).map_err(|e| e.to_string())
}

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
    if alg == RSA {
        rsa(pki.private_key)
    } else if alg == EC {
        let curve = pki.algorithm.parameters_oid().map_err(|_| "EC key without a named curve")?;
        ec(curve, pki.private_key)
    } else if alg == ED25519 {
        ed25519(pki.private_key)
    } else {
        Err(format!("unsupported key algorithm {alg}"))
    }
}

fn rsa(der: &[u8]) -> Result<KeyPair, String> {
    let k = pkcs1::RsaPrivateKey::from_der(der).map_err(|e| format!("RSA key: {e}"))?;
    let b = |u: pkcs1::UintRef<'_>| -> crate::object::Value { u.as_bytes().to_vec().into() };
    let public = vec![(CKA_MODULUS, b(k.modulus)), (CKA_PUBLIC_EXPONENT, b(k.public_exponent))];
    let private = vec![
        (CKA_MODULUS, b(k.modulus)),
        (CKA_PUBLIC_EXPONENT, b(k.public_exponent)),
        (CKA_PRIVATE_EXPONENT, b(k.private_exponent)),
        (CKA_PRIME_1, b(k.prime1)),
        (CKA_PRIME_2, b(k.prime2)),
        (CKA_EXPONENT_1, b(k.exponent1)),
        (CKA_EXPONENT_2, b(k.exponent2)),
        (CKA_COEFFICIENT, b(k.coefficient)),
    ];
    Ok(KeyPair { key_type: CKK_RSA, private, public })
}

fn ec(curve: ObjectIdentifier, der: &[u8]) -> Result<KeyPair, String> {
    use crate::mechanisms::ec::{public_point, Curve};
    let params = curve.to_der().map_err(|e| e.to_string())?;
    let c = Curve::from_params(&params).ok().filter(|c| c.key_type() == CKK_EC);
    let c = c.ok_or_else(|| format!("unsupported curve {curve}"))?;
    let k = sec1::EcPrivateKey::from_der(der).map_err(|e| format!("EC key: {e}"))?;
    let point = match k.public_key {
        Some(p) => p.to_vec(),
        None => public_point(c, k.private_key).map_err(|_| "invalid EC private key")?,
    };
    let public = vec![(CKA_EC_PARAMS, params.clone().into()), (CKA_EC_POINT, octet_string(&point)?.into())];
    let private = vec![(CKA_EC_PARAMS, params.into()), (CKA_VALUE, k.private_key.to_vec().into())];
    Ok(KeyPair { key_type: CKK_EC, private, public })
}

fn ed25519(der: &[u8]) -> Result<KeyPair, String> {
    let seed = pkcs8::der::asn1::OctetStringRef::from_der(der).map_err(|e| format!("Ed25519 key: {e}"))?;
    let kp = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_bytes())
        .map_err(|_| "invalid Ed25519 private key")?;
    let point = aws_lc_rs::signature::KeyPair::public_key(&kp).as_ref().to_vec();
    let params = ED25519.to_der().map_err(|e| e.to_string())?;
    let public = vec![(CKA_EC_PARAMS, params.clone().into()), (CKA_EC_POINT, octet_string(&point)?.into())];
    let private = vec![(CKA_EC_PARAMS, params.into()), (CKA_VALUE, seed.as_bytes().to_vec().into())];
    Ok(KeyPair { key_type: CKK_EC_EDWARDS, private, public })
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
    use pkcs8::der::asn1::{AnyRef, OctetStringRef};
    use pkcs8::spki::AlgorithmIdentifierRef;
    let get = |t| obj.get(t).ok_or_else(|| format!("attribute {t:#x} missing"));
    let e = |e: pkcs8::der::Error| e.to_string();
    let (oid, params, key): (ObjectIdentifier, Option<Vec<u8>>, Vec<u8>) = match obj.ulong(CKA_KEY_TYPE) {
        Some(CKK_RSA) => {
            let u = |t| get(t).and_then(|v| pkcs1::UintRef::new(v).map_err(e));
            let k = pkcs1::RsaPrivateKey {
                modulus: u(CKA_MODULUS)?,
                public_exponent: u(CKA_PUBLIC_EXPONENT)?,
                private_exponent: u(CKA_PRIVATE_EXPONENT)?,
                prime1: u(CKA_PRIME_1)?,
                prime2: u(CKA_PRIME_2)?,
                exponent1: u(CKA_EXPONENT_1)?,
                exponent2: u(CKA_EXPONENT_2)?,
                coefficient: u(CKA_COEFFICIENT)?,
                other_prime_infos: None,
            };
            (RSA, Some(vec![0x05, 0x00]), k.to_der().map_err(e)?)
        }
        Some(CKK_EC) => {
            let k = sec1::EcPrivateKey { private_key: get(CKA_VALUE)?, parameters: None, public_key: None };
            (EC, Some(get(CKA_EC_PARAMS)?.to_vec()), k.to_der().map_err(e)?)
        }
        Some(CKK_EC_EDWARDS) => (ED25519, None, OctetStringRef::new(get(CKA_VALUE)?).map_err(e)?.to_der().map_err(e)?),
        _ => return Err("key type not wrappable as PKCS#8".into()),
    };
    let parameters = match &params {
        Some(p) => Some(AnyRef::from_der(p).map_err(e)?),
        None => None,
    };
    let pki =
        PrivateKeyInfo { algorithm: AlgorithmIdentifierRef { oid, parameters }, private_key: &key, public_key: None };
    pki.to_der().map_err(e)
}
