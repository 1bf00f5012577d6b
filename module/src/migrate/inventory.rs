//! The inventory of a token in any PKCS#11 module (through `cryptoki`, as any application), as
//! CSV rows: one per object, with what identifies it and its flags, and a fingerprint of what is
//! public about it — never a secret value. [`diff`] compares two inventories.
//!
//! Fingerprints: public keys, the SHA-256 of their SubjectPublicKeyInfo (made from the key's
//! attributes, the same way whatever module holds it); private keys, the same of their public
//! half (`CKA_PUBLIC_KEY_INFO` when the module gives one, the RSA modulus and exponent, or else the
//! public key object of the same type and `CKA_ID`); secret keys, `CKA_CHECK_VALUE` when the
//! module computes one; certificates, the SHA-256 of their DER.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The flags an inventory records, in column order.
pub const FLAGS: &[(&str, CK_ATTRIBUTE_TYPE)] = &[
    ("token", CKA_TOKEN),
    ("private", CKA_PRIVATE),
    ("modifiable", CKA_MODIFIABLE),
    ("copyable", CKA_COPYABLE),
    ("destroyable", CKA_DESTROYABLE),
    ("sensitive", CKA_SENSITIVE),
    ("extractable", CKA_EXTRACTABLE),
    ("always_sensitive", CKA_ALWAYS_SENSITIVE),
    ("never_extractable", CKA_NEVER_EXTRACTABLE),
    ("local", CKA_LOCAL),
    ("encrypt", CKA_ENCRYPT),
    ("decrypt", CKA_DECRYPT),
    ("sign", CKA_SIGN),
    ("verify", CKA_VERIFY),
    ("sign_recover", CKA_SIGN_RECOVER),
    ("verify_recover", CKA_VERIFY_RECOVER),
    ("wrap", CKA_WRAP),
    ("unwrap", CKA_UNWRAP),
    ("derive", CKA_DERIVE),
    ("trusted", CKA_TRUSTED),
    ("wrap_with_trusted", CKA_WRAP_WITH_TRUSTED),
    ("always_authenticate", CKA_ALWAYS_AUTHENTICATE),
];

/// The columns before the flags, and after.
pub const HEAD: &[&str] = &["class", "key_type", "size", "label", "id", "application"];
pub const TAIL: &[&str] = &["key_gen_mechanism", "fingerprint"];

/// Every column, in order.
pub fn columns() -> Vec<&'static str> {
    HEAD.iter().copied().chain(FLAGS.iter().map(|f| f.0)).chain(TAIL.iter().copied()).collect()
}

/// One inventory row: column → value.
pub type Row = BTreeMap<String, String>;

/// Which token of the module, and how to log in.
pub struct Select<'a> {
    pub slot: Option<u64>,
    pub token: Option<&'a str>,
    pub pin: Option<&'a [u8]>,
    pub so: bool,
}

fn hex(b: &[u8]) -> String {
    crate::object::template::hex(b)
}

fn sha256(b: &[u8]) -> String {
    hex(crate::crypto::digest::digest(&crate::crypto::digest::SHA256, b).as_ref())
}

/// The curve a `CKA_EC_PARAMS` names, as a short name (its DER in hexadecimal otherwise).
fn curve_name(params: &[u8]) -> String {
    match crate::keys::ec::Curve::from_params(params) {
        Ok(c) => format!("{c:?}").to_lowercase(),
        Err(_) => format!("params:{}", hex(params)),
    }
}

/// The SubjectPublicKeyInfo of a public key (or of the public half given in a private key's
/// attributes), made by Tessera's own encoder from the key's attributes.
fn spki_of(class: CK_OBJECT_CLASS, kt: CK_KEY_TYPE, a: &BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>) -> Option<Vec<u8>> {
    let mut m = crate::object::AttrMap::new();
    m.insert(CKA_CLASS, crate::object::ulong(class));
    m.insert(CKA_KEY_TYPE, crate::object::ulong(kt));
    for t in [CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKA_EC_POINT] {
        if let Some(v) = a.get(&t) {
            m.insert(t, v.clone().into());
        }
    }
    crate::object::spki::public_key_info(&crate::object::Object::new(m)).ok().flatten()
}

/// Reads the inventory of one token.
pub fn inventory(module: &Path, sel: &Select<'_>) -> Result<Vec<Row>, String> {
    let p = Pkcs11::new(module).map_err(|e| format!("loading {}: {e}", module.display()))?;
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| format!("C_Initialize of {}: {e}", module.display()))?;
    let r = inventory_in(&p, sel);
    let _ = p.finalize();
    r
}

fn inventory_in(p: &Pkcs11, sel: &Select<'_>) -> Result<Vec<Row>, String> {
    let slots = p.get_slots_with_initialized_token().map_err(|e| format!("C_GetSlotList: {e}"))?;
    let slot = slots
        .into_iter()
        .find(|s| match (sel.slot, sel.token) {
            (Some(id), _) => s.id() == id,
            (None, Some(label)) => p.get_token_info(*s).is_ok_and(|t| t.label() == label),
            (None, None) => true,
        })
        .ok_or("no such token")?;
    let s = p.open_ro_session(slot).map_err(|e| format!("C_OpenSession: {e}"))?;
    if let Some(pin) = sel.pin {
        let pin = AuthPin::new(String::from_utf8_lossy(pin).into_owned().into());
        let who = if sel.so { UserType::So } else { UserType::User };
        s.login(who, Some(&pin)).map_err(|e| format!("C_Login: {e}"))?;
    }
    let handles = s.find_objects(&[]).map_err(|e| format!("C_FindObjects: {e}"))?;
    let mut objects = Vec::with_capacity(handles.len());
    for h in handles {
        objects.push(read(&s, h)?);
    }
    // The public halves, by (key type, ID), for private keys that do not show theirs.
    let mut publics: BTreeMap<(CK_KEY_TYPE, Vec<u8>), Vec<String>> = BTreeMap::new();
    for a in &objects {
        if ulong(a, CKA_CLASS) == Some(CKO_PUBLIC_KEY) {
            let kt = ulong(a, CKA_KEY_TYPE).unwrap_or(CK_UNAVAILABLE_INFORMATION);
            if let Some(spki) = spki_of(CKO_PUBLIC_KEY, kt, a) {
                publics.entry((kt, a.get(&CKA_ID).cloned().unwrap_or_default())).or_default().push(sha256(&spki));
            }
        }
    }
    let mut rows: Vec<Row> = objects.iter().map(|a| row(a, &publics)).collect();
    rows.sort_by_key(key_of);
    Ok(rows)
}

fn ulong(a: &BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>, t: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
    a.get(&t).and_then(|v| crate::object::as_ulong(v))
}

/// The attributes an inventory reads of one object (those the module gives; a sensitive or absent
/// one is simply missing). Key material is never asked for.
fn read(s: &Session, h: ObjectHandle) -> Result<BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>, String> {
    let mut types: Vec<CK_ATTRIBUTE_TYPE> = vec![
        CKA_CLASS,
        CKA_KEY_TYPE,
        CKA_CERTIFICATE_TYPE,
        CKA_LABEL,
        CKA_ID,
        CKA_APPLICATION,
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_EC_PARAMS,
        CKA_EC_POINT,
        CKA_VALUE_LEN,
        CKA_CHECK_VALUE,
        CKA_PUBLIC_KEY_INFO,
        CKA_KEY_GEN_MECHANISM,
    ];
    types.extend(FLAGS.iter().map(|f| f.1));
    let mut out = BTreeMap::new();
    for t in types {
        // One at a time: a module may refuse a whole list for one attribute it does not know.
        let Ok(ty) = AttributeType::try_from(t) else { continue };
        let Ok(v) = s.get_attributes(h, &[ty]) else { continue };
        if let Some(a) = v.into_iter().next() {
            out.insert(t, raw_value(&a));
        }
    }
    // A certificate's DER, only for certificates (it is their public content).
    if ulong(&out, CKA_CLASS) == Some(CKO_CERTIFICATE) {
        if let Ok(v) = s.get_attributes(h, &[AttributeType::Value]) {
            if let Some(a) = v.into_iter().next() {
                out.insert(CKA_VALUE, raw_value(&a));
            }
        }
    }
    Ok(out)
}

/// An attribute's value in the ABI's encoding (empty for kinds the migration does not carry).
fn raw_value(a: &Attribute) -> Vec<u8> {
    super::val_of(a).and_then(|(_, v)| super::abi_value(&v).ok()).map(|v| v.into_owned()).unwrap_or_default()
}

fn row(a: &BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>, publics: &BTreeMap<(CK_KEY_TYPE, Vec<u8>), Vec<String>>) -> Row {
    let class = ulong(a, CKA_CLASS).unwrap_or(CK_UNAVAILABLE_INFORMATION);
    let kt = ulong(a, CKA_KEY_TYPE);
    let is_key = matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY);
    let mut r = Row::new();
    let mut put = |k: &str, v: String| {
        r.insert(k.to_string(), v);
    };
    put("class", ObjectClass::try_from(class).map(|c| c.to_string()).unwrap_or_else(|_| format!("0x{class:x}")));
    put("key_type", if is_key { kt.map(super::key_type_name).unwrap_or_default() } else { String::new() });
    let size = match (class, kt) {
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, Some(CKK_RSA)) => {
            a.get(&CKA_MODULUS).map(|m| (crate::object::template::without_leading_zeros(m).len() * 8).to_string())
        }
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, Some(_)) => a.get(&CKA_EC_PARAMS).map(|p| curve_name(p)),
        // DES keys have a fixed length, which not every module reports as CKA_VALUE_LEN.
        (CKO_SECRET_KEY, Some(CKK_DES)) => Some("64".into()),
        (CKO_SECRET_KEY, Some(CKK_DES2)) => Some("128".into()),
        (CKO_SECRET_KEY, Some(CKK_DES3)) => Some("192".into()),
        (CKO_SECRET_KEY, _) => ulong(a, CKA_VALUE_LEN).map(|l| (l * 8).to_string()),
        _ => None,
    };
    put("size", size.unwrap_or_default());
    put("label", String::from_utf8_lossy(a.get(&CKA_LABEL).map(|v| &v[..]).unwrap_or(&[])).into_owned());
    put("id", hex(a.get(&CKA_ID).map(|v| &v[..]).unwrap_or(&[])));
    put("application", String::from_utf8_lossy(a.get(&CKA_APPLICATION).map(|v| &v[..]).unwrap_or(&[])).into_owned());
    for (name, t) in FLAGS {
        put(name, a.get(t).map(|v| if v.first().is_some_and(|b| *b != 0) { "1" } else { "0" }).unwrap_or("").into());
    }
    put(
        "key_gen_mechanism",
        match ulong(a, CKA_KEY_GEN_MECHANISM) {
            Some(CK_UNAVAILABLE_INFORMATION) | None => String::new(),
            Some(m) => format!("0x{m:x}"),
        },
    );
    let fp = match (class, kt) {
        (CKO_CERTIFICATE, _) => a.get(&CKA_VALUE).map(|v| format!("sha256:{}", sha256(v))),
        (CKO_PUBLIC_KEY, Some(kt)) => spki_of(class, kt, a).map(|s| format!("spki:{}", sha256(&s))),
        (CKO_PRIVATE_KEY, Some(kt)) => a
            .get(&CKA_PUBLIC_KEY_INFO)
            .filter(|v| !v.is_empty())
            .map(|v| sha256(v))
            .or_else(|| (kt == CKK_RSA).then(|| spki_of(CKO_PUBLIC_KEY, kt, a)).flatten().map(|s| sha256(&s)))
            .or_else(|| match publics.get(&(kt, a.get(&CKA_ID).cloned().unwrap_or_default())) {
                Some(v) if v.len() == 1 => Some(v[0].clone()),
                _ => None,
            })
            .map(|f| format!("spki:{f}")),
        (CKO_SECRET_KEY, _) => a.get(&CKA_CHECK_VALUE).filter(|v| !v.is_empty()).map(|v| format!("kcv:{}", hex(v))),
        _ => None,
    };
    put("fingerprint", fp.unwrap_or_default());
    r
}

/// What identifies an object across modules: class, key type, label and ID.
fn key_of(r: &Row) -> (String, String, String, String) {
    let g = |k: &str| r.get(k).cloned().unwrap_or_default();
    (g("class"), g("key_type"), g("label"), g("id"))
}

/// Writes rows as CSV with a header.
pub fn write_csv(rows: &[Row], out: impl std::io::Write) -> Result<(), String> {
    let cols = columns();
    let mut w = csv::Writer::from_writer(out);
    w.write_record(&cols).map_err(|e| e.to_string())?;
    for r in rows {
        w.write_record(cols.iter().map(|c| r.get(*c).map(String::as_str).unwrap_or(""))).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// Reads what [`write_csv`] wrote.
pub fn read_csv(path: &Path) -> Result<Vec<Row>, String> {
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = r.headers().map_err(|e| format!("{}: {e}", path.display()))?.clone();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        rows.push(headers.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect());
    }
    Ok(rows)
}

/// The difference between two inventories.
#[derive(Debug, Default, serde::Serialize)]
pub struct Diff {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub changed: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

fn describe(k: &(String, String, String, String), n: usize) -> String {
    let mut s = format!(
        "{} {}label={:?} id={}",
        k.0,
        if k.1.is_empty() { String::new() } else { format!("{} ", k.1) },
        k.2,
        k.3
    );
    if n > 0 {
        s.push_str(&format!(" (#{})", n + 1));
    }
    s
}

/// Compares two inventories: objects matched by class, key type, label and ID (the n-th of the
/// same identity with the n-th), then every column compared.
pub fn diff(before: &[Row], after: &[Row]) -> Diff {
    let group = |rows: &[Row]| {
        let mut m: BTreeMap<(String, String, String, String), Vec<Row>> = BTreeMap::new();
        for r in rows {
            m.entry(key_of(r)).or_default().push(r.clone());
        }
        m
    };
    let (b, a) = (group(before), group(after));
    let mut d = Diff::default();
    for (k, rows) in &b {
        let other = a.get(k).map(Vec::as_slice).unwrap_or(&[]);
        for (i, r) in rows.iter().enumerate() {
            match other.get(i) {
                None => d.missing.push(describe(k, i)),
                Some(o) => {
                    let cols: Vec<String> = r
                        .keys()
                        .chain(o.keys())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .filter(|c| r.get(*c) != o.get(*c))
                        .map(|c| {
                            format!(
                                "{c}: {} -> {}",
                                r.get(c).map(String::as_str).unwrap_or("-"),
                                o.get(c).map(String::as_str).unwrap_or("-")
                            )
                        })
                        .collect();
                    if !cols.is_empty() {
                        d.changed.push(format!("{}: {}", describe(k, i), cols.join("; ")));
                    }
                }
            }
        }
    }
    for (k, rows) in &a {
        let n = b.get(k).map(Vec::len).unwrap_or(0);
        for i in n..rows.len() {
            d.extra.push(describe(k, i));
        }
    }
    d
}
