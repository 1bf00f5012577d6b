//! Migration into Tessera (`tessera-migrate`): SoftHSMv2 tokens read directly from their store
//! ([`softhsm2`]), each object mapped to a Tessera object through the same key-type table and
//! template rules `C_CreateObject` uses ([`convert`]), and the new token built beside the store and
//! moved into place whole ([`build`]); the inventory of any PKCS#11 token and the diff of two
//! ([`inventory`]).
//!
//! A migration is the one trusted writer of `CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE`,
//! `CKA_NEVER_EXTRACTABLE` and `CKA_KEY_GEN_MECHANISM`: it carries them over as the source token
//! recorded them. Nothing of this is reachable through the C ABI; it runs in the migration tool's
//! own process, on a store no module has open yet (the token appears only when complete).

pub mod build;
pub mod dropin;
pub mod inventory;
pub mod softhsm1;
pub mod softhsm2;
pub mod via;

use crate::object::attrs::{self, Kind, TOKEN_SET};
use crate::object::template::{self, Actor, Origin};
use crate::object::{encode_template, Object, Template, Value};
use cryptoki_sys::*;
use serde::Serialize;
use softhsm2::Val;
use std::collections::BTreeMap;

/// Objects read from a source: (where, attributes in clear).
pub type Objects = Vec<(String, BTreeMap<CK_ATTRIBUTE_TYPE, Val>)>;

/// The attributes only a token sets, which a migration carries over from the source as they were.
pub const CARRIED: [CK_ATTRIBUTE_TYPE; 5] =
    [CKA_LOCAL, CKA_KEY_GEN_MECHANISM, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_UNIQUE_ID];

/// The value of a boolean attribute read through the `cryptoki` crate (`inventory`, `via`); `None`
/// for other attributes.
pub(crate) fn bool_of(a: &cryptoki::object::Attribute) -> Option<bool> {
    use cryptoki::object::Attribute as A;
    match a {
        A::Token(v)
        | A::Private(v)
        | A::Modifiable(v)
        | A::Copyable(v)
        | A::Destroyable(v)
        | A::Sensitive(v)
        | A::Extractable(v)
        | A::AlwaysSensitive(v)
        | A::NeverExtractable(v)
        | A::Local(v)
        | A::Encrypt(v)
        | A::Decrypt(v)
        | A::Sign(v)
        | A::Verify(v)
        | A::SignRecover(v)
        | A::VerifyRecover(v)
        | A::Wrap(v)
        | A::Unwrap(v)
        | A::Derive(v)
        | A::Trusted(v)
        | A::WrapWithTrusted(v)
        | A::AlwaysAuthenticate(v) => Some(*v),
        _ => None,
    }
}

/// An attribute read through the `cryptoki` crate as the migration's value (`via`, and in the
/// ABI's encoding for `inventory`); `None` for kinds it does not carry.
pub(crate) fn val_of(a: &cryptoki::object::Attribute) -> Option<(CK_ATTRIBUTE_TYPE, Val)> {
    use cryptoki::object::Attribute as A;
    use zeroize::Zeroizing;
    let t = CK_ATTRIBUTE_TYPE::from(a.attribute_type());
    let b = |v: &Vec<u8>| Val::Bytes(Zeroizing::new(v.clone()));
    let date = |d: &cryptoki::types::Date| {
        if d.is_empty() {
            Val::Bytes(Zeroizing::new(Vec::new()))
        } else {
            Val::Bytes(Zeroizing::new([&d.year[..], &d.month[..], &d.day[..]].concat()))
        }
    };
    if let Some(v) = bool_of(a) {
        return Some((t, Val::Bool(v)));
    }
    let v = match a {
        A::Class(c) => Val::Ulong(CK_OBJECT_CLASS::from(*c)),
        A::KeyType(k) => Val::Ulong(CK_KEY_TYPE::from(*k)),
        A::CertificateType(c) => Val::Ulong(CK_CERTIFICATE_TYPE::from(*c)),
        A::KeyGenMechanism(m) => Val::Ulong(CK_MECHANISM_TYPE::from(*m)),
        A::ModulusBits(n) => Val::Ulong(CK_ULONG::from(*n)),
        A::ValueLen(n) => Val::Ulong(CK_ULONG::from(*n)),
        A::AllowedMechanisms(m) => Val::Mechs(m.iter().map(|x| CK_MECHANISM_TYPE::from(*x)).collect()),
        A::StartDate(d) | A::EndDate(d) => date(d),
        A::Label(v)
        | A::Id(v)
        | A::Application(v)
        | A::ObjectId(v)
        | A::Value(v)
        | A::Subject(v)
        | A::Issuer(v)
        | A::SerialNumber(v)
        | A::Url(v)
        | A::HashOfSubjectPublicKey(v)
        | A::HashOfIssuerPublicKey(v)
        | A::Modulus(v)
        | A::PublicExponent(v)
        | A::EcParams(v)
        | A::EcPoint(v)
        | A::CheckValue(v)
        | A::PublicKeyInfo(v)
        | A::UniqueId(v) => b(v),
        _ => return None,
    };
    Some((t, v))
}

/// The name of an attribute type (`CKA_…`), or its number in hexadecimal.
pub fn attribute_name(t: CK_ATTRIBUTE_TYPE) -> String {
    match t {
        softhsm2::CKA_OS_TOKENLABEL => "CKA_OS_TOKENLABEL (SoftHSMv2)".into(),
        attrs::CKA_VENDOR_FIPS_APPROVED => "CKA_VENDOR_FIPS_APPROVED (Tessera)".into(),
        _ => match cryptoki::object::AttributeType::try_from(t) {
            Ok(a) => a.to_string(),
            Err(_) => format!("0x{t:08x}"),
        },
    }
}

/// The name of a key type.
pub fn key_type_name(kt: CK_KEY_TYPE) -> String {
    match cryptoki::object::KeyType::try_from(kt) {
        Ok(k) => k.to_string(),
        Err(_) => format!("0x{kt:x}"),
    }
}

/// The name of an object class.
pub fn class_name(c: CK_OBJECT_CLASS) -> String {
    match c {
        CKO_DATA => "data".into(),
        CKO_CERTIFICATE => "certificate".into(),
        CKO_PUBLIC_KEY => "public key".into(),
        CKO_PRIVATE_KEY => "private key".into(),
        CKO_SECRET_KEY => "secret key".into(),
        _ => format!("class 0x{c:x}"),
    }
}

/// An attribute of the source that Tessera's object of that kind does not have.
#[derive(Clone, Debug, Serialize)]
pub struct Unknown {
    pub name: String,
    pub number: String,
}

/// What the migration makes of one source object.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Where the object is in the source (file name or row).
    pub source: String,
    pub class: String,
    pub key_type: Option<String>,
    pub label: String,
    pub id: String,
    /// Attributes not carried over (Tessera's object of this kind has no such attribute).
    pub unknown: Vec<Unknown>,
    /// Notes on the object: usages changed at the user's request, values Tessera computed.
    pub notes: Vec<String>,
}

/// An object that will move, with the Tessera object made of it.
pub struct Planned {
    pub summary: Summary,
    pub object: Object,
}

/// An object Tessera cannot hold, and why.
#[derive(Debug, Serialize)]
pub struct Unsupported {
    pub source: String,
    pub class: String,
    pub label: String,
    pub id: String,
    pub reason: String,
}

/// Choices the user makes about the conversion.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Keys that Tessera uses for nothing because they both wrap and process data (a key made on
    /// the token, never extractable, with `CKA_WRAP`/`CKA_UNWRAP` and a data usage: see
    /// `object::template::guarding`) lose their wrapping usages and become data keys.
    pub drop_wrap_usages: bool,
    /// The objects go into an existing token that a user opens (`from-softhsm1`), not into a new
    /// token made with the SO PIN: they are built as that user's `C_CreateObject` would build
    /// them — the attributes only a token sets are not taken from the source (a crafted source
    /// would otherwise plant a key that claims to have been made on the token, which Tessera lets
    /// wrap sensitive keys), and `CKA_TRUSTED` is refused (only the SO sets it).
    pub as_user: bool,
}

/// The ABI encoding of a SoftHSMv2 value (CK_BBOOL one byte, CK_ULONG native, templates as
/// Tessera stores nested templates).
fn abi_value(v: &Val) -> Result<Value, String> {
    Ok(match v {
        Val::Bool(b) => crate::object::bool_(*b),
        Val::Ulong(u) => crate::object::ulong(*u as CK_ULONG),
        Val::Bytes(b) => Value::Owned(b.to_vec()),
        Val::Mechs(m) => Value::Owned(m.iter().flat_map(|x| (*x as CK_ULONG).to_ne_bytes()).collect()),
        Val::Map(entries) => {
            let mut t: Template = Vec::with_capacity(entries.len());
            for (ty, v) in entries {
                if matches!(v, Val::Map(_)) {
                    return Err("a template nested in a template".into());
                }
                t.push((*ty, abi_value(v)?));
            }
            if t.is_empty() {
                Value::Borrowed(&[])
            } else {
                Value::Owned(encode_template(&t).map_err(|_| "template not encodable".to_string())?)
            }
        }
    })
}

fn bytes_attr(a: &BTreeMap<CK_ATTRIBUTE_TYPE, Val>, t: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    match a.get(&t) {
        Some(Val::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

fn hex(b: &[u8]) -> String {
    template::hex(b)
}

/// Converts one source object (its attributes in clear) into the Tessera object that holds the
/// same: every attribute Tessera's object of that class and type has, built by the template rules
/// of `C_CreateObject` (which check the key material and compute what follows from it), then the
/// attributes only a token sets, carried over as the source recorded them.
pub fn convert(source: &str, a: &BTreeMap<CK_ATTRIBUTE_TYPE, Val>, opts: Options) -> Result<Planned, Box<Unsupported>> {
    let class = match a.get(&CKA_CLASS) {
        Some(Val::Ulong(c)) => *c as CK_OBJECT_CLASS,
        _ => CK_UNAVAILABLE_INFORMATION,
    };
    let label = String::from_utf8_lossy(&bytes_attr(a, CKA_LABEL)).into_owned();
    let id = hex(&bytes_attr(a, CKA_ID));
    let unsupported = |reason: String| {
        Box::new(Unsupported {
            source: source.into(),
            class: class_name(class),
            label: label.clone(),
            id: id.clone(),
            reason,
        })
    };
    let sub_attr = match class {
        CKO_CERTIFICATE => Some(CKA_CERTIFICATE_TYPE),
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY => Some(CKA_KEY_TYPE),
        _ => None,
    };
    let sub = sub_attr.and_then(|t| match a.get(&t) {
        Some(Val::Ulong(v)) => Some(*v as CK_ULONG),
        _ => None,
    });
    let Some(tables) = attrs::tables(class, sub).filter(|_| class != CKO_VALIDATION) else {
        let reason = match (class, sub) {
            (CKO_CERTIFICATE, Some(ct)) => format!("certificate type 0x{ct:x}: Tessera holds X.509 certificates only"),
            (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY, Some(kt)) => {
                format!("key type {}: not a key type Tessera holds", key_type_name(kt))
            }
            _ => format!("{}: not an object class Tessera holds", class_name(class)),
        };
        return Err(unsupported(reason));
    };
    let key_type = match class {
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY => sub.map(key_type_name),
        _ => None,
    };
    let mut template: Template = Vec::with_capacity(a.len());
    let mut carried: Vec<(CK_ATTRIBUTE_TYPE, Value)> = Vec::new();
    let mut unknown = Vec::new();
    let mut notes = Vec::new();
    // What only a token sets (CKA_LOCAL, CKA_NEVER_EXTRACTABLE …) and CKA_TRUSTED are believed only
    // of a private object, whose key material the source's token key protects: a secret or private
    // key the source kept in clear (CKA_PRIVATE false) could have been written by anyone who can
    // write its files, with a key value they chose, and such claims would let it wrap sensitive
    // keys here.
    let private = matches!(a.get(&CKA_PRIVATE), Some(Val::Bool(true)));
    let claims = !opts.as_user && private;
    // A public key's CKA_LOCAL and CKA_KEY_GEN_MECHANISM say where it came from and give it no
    // power (only CKA_TRUSTED would): kept as recorded.
    let carries = claims || (!opts.as_user && class == CKO_PUBLIC_KEY);
    let mut dropped = Vec::new();
    for (t, v) in a {
        let value = abi_value(v).map_err(|e| unsupported(format!("{}: {e}", attribute_name(*t))))?;
        if CARRIED.contains(t) {
            let empty_uid = *t == CKA_UNIQUE_ID && value.is_empty();
            if !opts.as_user && !empty_uid && (carries || *t == CKA_UNIQUE_ID) {
                carried.push((*t, value));
            } else if !opts.as_user && *t != CKA_UNIQUE_ID {
                dropped.push(attribute_name(*t));
            }
            continue;
        }
        if *t == CKA_TRUSTED && !claims && !opts.as_user {
            if matches!(v, Val::Bool(true)) {
                dropped.push(attribute_name(*t));
            }
            continue;
        }
        // The length of a secret key follows from its value: checked, not given.
        if class == CKO_SECRET_KEY && *t == CKA_VALUE_LEN {
            let len = bytes_attr(a, CKA_VALUE).len() as u64;
            if !matches!(v, Val::Ulong(l) if *l == len) {
                return Err(unsupported(format!("CKA_VALUE_LEN is not the length of CKA_VALUE ({len})")));
            }
            continue;
        }
        // RSA public keys: the modulus length, checked against the modulus by the template rules.
        let Some(spec) = attrs::find(&tables, *t) else {
            unknown.push(Unknown { name: attribute_name(*t), number: format!("0x{t:08x}") });
            continue;
        };
        if spec.flags & TOKEN_SET != 0 {
            unknown.push(Unknown { name: attribute_name(*t), number: format!("0x{t:08x}") });
            continue;
        }
        // An empty restriction list or nested template is the default: no restriction.
        if matches!(spec.kind, Kind::Mechanisms | Kind::Template) && value.is_empty() {
            continue;
        }
        template.push((*t, value));
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "{} not carried over: the source kept this object in clear, where anyone who can write its files could \
             have set them",
            dropped.join(", ")
        ));
    }
    let actor = Actor { so: claims, legacy: true };
    let mut obj = template::build(&template, Vec::new(), Origin::Created, actor).map_err(|e| {
        unsupported(format!("Tessera refuses the object's attributes ({})", crate::record::described(e)))
    })?;
    for (t, v) in carried {
        obj.attrs.insert(t, v);
    }
    crate::services::keys::stamp(&mut obj, true);
    if template::usages_conflict(&obj) && template::guarding(&obj) {
        if opts.drop_wrap_usages {
            for t in template::WRAPPING_USAGES {
                obj.attrs.insert(t, crate::object::bool_(false));
            }
            notes.push("CKA_WRAP and CKA_UNWRAP cleared (--drop-wrap-usages): a data key now".into());
        } else {
            notes.push(
                "both wraps and processes data: Tessera uses such a key for neither outside keys.legacy_wrapping \
                 (non-approved mode); --drop-wrap-usages makes it a data key"
                    .into(),
            );
        }
    }
    let summary = Summary { source: source.into(), class: class_name(class), key_type, label, id, unknown, notes };
    Ok(Planned { summary, object: obj })
}

/// A SoftHSMv2 token's objects in clear, decrypted with its token key.
pub fn clear_objects(src: &softhsm2::Token, key: &[u8; 32]) -> Result<Objects, String> {
    let mut objects = Vec::with_capacity(src.objects.len());
    for o in &src.objects {
        objects.push((o.name.clone(), src.decrypt(key, o).map_err(|e| format!("{}: {e}", o.name))?));
    }
    Ok(objects)
}

/// Converts every object read ([`convert`]): those that move, and those Tessera cannot hold.
pub fn plan(objects: &[(String, BTreeMap<CK_ATTRIBUTE_TYPE, Val>)], opts: Options) -> (Vec<Planned>, Vec<Unsupported>) {
    let (mut planned, mut unsupported) = (Vec::with_capacity(objects.len()), Vec::new());
    for (name, attrs) in objects {
        match convert(name, attrs, opts) {
            Ok(p) => planned.push(p),
            Err(u) => unsupported.push(*u),
        }
    }
    (planned, unsupported)
}

/// What a token migrated from the SoftHSMv2 token in `dir` records of its source.
pub fn softhsm2_marker(tool: &str, dir: &std::path::Path, src: &softhsm2::Token, objects: usize) -> build::Marker {
    build::Marker {
        tool: tool.into(),
        source: dir.display().to_string(),
        backend: format!("{:?}", src.backend).to_lowercase(),
        serial: src.serial.clone(),
        digest: src.content_digest(),
        objects,
    }
}

/// SHA-256 over a token's identity and its objects' attribute maps (name, then attributes in
/// type order): what a migrated token records of its source, to recognise it on a re-run.
pub fn digest_maps(label: &str, serial: &str, objects: &[(String, BTreeMap<CK_ATTRIBUTE_TYPE, Val>)]) -> String {
    use crate::crypto::digest::{Context, SHA256};
    let mut ctx = Context::new(&SHA256);
    let mut put = |b: &[u8]| {
        ctx.update(&(b.len() as u64).to_be_bytes());
        ctx.update(b);
    };
    put(label.as_bytes());
    put(serial.as_bytes());
    for (name, a) in objects {
        put(name.as_bytes());
        for (t, v) in a {
            put(&t.to_be_bytes());
            match abi_value(v) {
                Ok(v) => put(&v),
                Err(e) => put(e.as_bytes()),
            }
        }
    }
    template::hex(ctx.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn bytes(v: &[u8]) -> Val {
        Val::Bytes(Zeroizing::new(v.to_vec()))
    }

    fn aes_key() -> BTreeMap<CK_ATTRIBUTE_TYPE, Val> {
        [
            (CKA_CLASS, Val::Ulong(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, Val::Ulong(CKK_AES)),
            (CKA_TOKEN, Val::Bool(true)),
            (CKA_PRIVATE, Val::Bool(true)),
            (CKA_SENSITIVE, Val::Bool(true)),
            (CKA_EXTRACTABLE, Val::Bool(false)),
            (CKA_LABEL, bytes(b"k")),
            (CKA_ID, bytes(&[1])),
            (CKA_VALUE, bytes(&[7; 32])),
            (CKA_VALUE_LEN, Val::Ulong(32)),
            (CKA_LOCAL, Val::Bool(true)),
            (CKA_ALWAYS_SENSITIVE, Val::Bool(true)),
            (CKA_NEVER_EXTRACTABLE, Val::Bool(true)),
            (CKA_KEY_GEN_MECHANISM, Val::Ulong(CKM_AES_KEY_GEN)),
            (CKA_ALLOWED_MECHANISMS, Val::Mechs(vec![])),
            (CKA_WRAP_TEMPLATE, Val::Map(vec![(CKA_EXTRACTABLE, Val::Bool(false))])),
        ]
        .into_iter()
        .collect()
    }

    /// The attributes only a token sets are the source's, whatever `C_CreateObject`'s rules would
    /// make them; the key material and the nested template are there.
    #[test]
    fn carried_attributes_are_the_sources() {
        let p = convert("o", &aes_key(), Options::default()).map_err(|u| u.reason).unwrap();
        let o = &p.object;
        assert!(o.flag(CKA_LOCAL) && o.flag(CKA_ALWAYS_SENSITIVE) && o.flag(CKA_NEVER_EXTRACTABLE));
        assert_eq!(o.ulong(CKA_KEY_GEN_MECHANISM), Some(CKM_AES_KEY_GEN));
        assert_eq!(o.get(CKA_VALUE), Some(&[7u8; 32][..]));
        assert_eq!(o.ulong(CKA_VALUE_LEN), Some(32));
        assert!(!o.get(CKA_WRAP_TEMPLATE).unwrap_or(&[]).is_empty());
        assert!(!o.get(CKA_UNIQUE_ID).unwrap_or(&[]).is_empty());
        assert!(p.summary.unknown.is_empty());
    }

    /// An attribute Tessera's object has no place for is named with its number; an object Tessera
    /// cannot hold is refused with the reason; a wrong CKA_VALUE_LEN is refused.
    #[test]
    fn unknown_attributes_and_unsupported_objects_are_reported() {
        let mut a = aes_key();
        a.insert(0x8000_1234, bytes(b"vendor"));
        a.insert(CKA_MODULUS_BITS, Val::Ulong(2048));
        let p = convert("o", &a, Options::default()).map_err(|u| u.reason).unwrap();
        let names: Vec<&str> = p.summary.unknown.iter().map(|u| u.number.as_str()).collect();
        assert_eq!(names, ["0x00000121", "0x80001234"]);
        assert_eq!(p.summary.unknown[0].name, "CKA_MODULUS_BITS");
        let mut dsa = aes_key();
        dsa.insert(CKA_CLASS, Val::Ulong(CKO_PUBLIC_KEY));
        dsa.insert(CKA_KEY_TYPE, Val::Ulong(CKK_DSA));
        let u = convert("o", &dsa, Options::default()).err().unwrap();
        assert!(u.reason.contains("CKK_DSA"), "{}", u.reason);
        assert_eq!((u.label.as_str(), u.id.as_str()), ("k", "01"));
        let mut bad = aes_key();
        bad.insert(CKA_VALUE_LEN, Val::Ulong(16));
        assert!(convert("o", &bad, Options::default()).is_err());
    }

    /// An RSA private key given with its primes and private exponent only (as SoftHSM v1 kept
    /// them) gets the other CRT values, the ones its generation made.
    #[test]
    fn rsa_keys_without_crt_values_get_them() {
        let k = crate::crypto::rsa::Rsa::generate(2048, 65537).unwrap().components();
        let b = |v: &[u8]| bytes(v);
        let a: BTreeMap<CK_ATTRIBUTE_TYPE, Val> = [
            (CKA_CLASS, Val::Ulong(CKO_PRIVATE_KEY)),
            (CKA_KEY_TYPE, Val::Ulong(CKK_RSA)),
            (CKA_TOKEN, Val::Bool(true)),
            (CKA_MODULUS, b(&k.n)),
            (CKA_PUBLIC_EXPONENT, b(&k.e)),
            (CKA_PRIVATE_EXPONENT, b(&k.d)),
            (CKA_PRIME_1, b(&k.p)),
            (CKA_PRIME_2, b(&k.q)),
            (CKA_START_DATE, b(&[])),
            (CKA_SUBJECT, b(&[])),
        ]
        .into_iter()
        .collect();
        let o = convert("v1", &a, Options::default()).map_err(|u| u.reason).unwrap().object;
        assert_eq!(o.get(CKA_EXPONENT_1), Some(&k.dp[..]));
        assert_eq!(o.get(CKA_EXPONENT_2), Some(&k.dq[..]));
        assert_eq!(o.get(CKA_COEFFICIENT), Some(&k.qinv[..]));
        // Primes that are not the key's: refused.
        let mut wrong = a.clone();
        wrong.insert(CKA_PRIME_2, b(&k.p));
        assert!(convert("v1", &wrong, Options::default()).is_err());
    }

    /// Into an existing token, as its user: the source's claims that only a token makes are not
    /// taken, and trust (the SO's) is refused.
    #[test]
    fn as_user_the_token_set_attributes_are_not_taken() {
        let opts = Options { as_user: true, ..Options::default() };
        let o = convert("o", &aes_key(), opts).map_err(|u| u.reason).unwrap().object;
        assert!(!o.flag(CKA_LOCAL) && !o.flag(CKA_ALWAYS_SENSITIVE) && !o.flag(CKA_NEVER_EXTRACTABLE));
        assert_eq!(o.ulong(CKA_KEY_GEN_MECHANISM), Some(CK_UNAVAILABLE_INFORMATION));
        let mut trusted = aes_key();
        trusted.insert(CKA_TRUSTED, Val::Bool(true));
        assert!(convert("o", &trusted, opts).is_err());
        assert!(convert("o", &trusted, Options::default()).is_ok());
    }

    /// A secret key the source kept in clear, whose file anyone who can write the source could
    /// have made with a value they chose: none of the token's claims or CKA_TRUSTED is believed
    /// (they would let it wrap sensitive keys), and the report says so.
    #[test]
    fn claims_of_a_key_kept_in_clear_are_not_believed() {
        let mut a = aes_key();
        a.insert(CKA_PRIVATE, Val::Bool(false));
        a.insert(CKA_TRUSTED, Val::Bool(true));
        a.insert(CKA_WRAP, Val::Bool(true));
        let p = convert("o", &a, Options::default()).map_err(|u| u.reason).unwrap();
        let o = &p.object;
        assert!(!o.flag(CKA_LOCAL) && !o.flag(CKA_NEVER_EXTRACTABLE) && !o.flag(CKA_ALWAYS_SENSITIVE));
        assert!(!o.flag(CKA_TRUSTED));
        assert!(!crate::object::template::guarding(o), "it may not wrap sensitive keys");
        assert!(p.summary.notes.iter().any(|n| n.contains("not carried over")), "{:?}", p.summary.notes);
    }

    /// A key made on the token, never extractable, that both wraps and decrypts: kept as it was
    /// (with a note), or a data key with `drop_wrap_usages`.
    #[test]
    fn conflicting_usages_noted_or_dropped() {
        let mut a = aes_key();
        a.insert(CKA_WRAP, Val::Bool(true));
        a.insert(CKA_DECRYPT, Val::Bool(true));
        let kept = convert("o", &a, Options::default()).map_err(|u| u.reason).unwrap();
        assert!(kept.object.flag(CKA_WRAP) && kept.object.flag(CKA_DECRYPT));
        assert_eq!(kept.summary.notes.len(), 1);
        let data =
            convert("o", &a, Options { drop_wrap_usages: true, ..Options::default() }).map_err(|u| u.reason).unwrap();
        assert!(!data.object.flag(CKA_WRAP) && !data.object.flag(CKA_UNWRAP) && data.object.flag(CKA_DECRYPT));
    }
}
