//! The attribute model: which attributes each object class and key type has, how each is encoded,
//! and the rules the specification attaches to it. Data, looked up by `object::template`. The
//! rows of each key type's material are in its file in `keys`.

use cryptoki_sys::*;

/// How an attribute's value is encoded (inside the core the bytes are the C ABI's own encoding on
/// this platform: `CK_BBOOL` one byte, `CK_ULONG` native-endian, dates 8 ASCII digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Ulong,
    Bytes,
    Date,
    /// An attribute template (`CKA_WRAP_TEMPLATE` …), kept as an encoded attribute list.
    Template,
    /// A `CK_MECHANISM_TYPE` array (`CKA_ALLOWED_MECHANISMS`).
    Mechanisms,
}

/// Supplied when the object is created (or generated) — `CKR_TEMPLATE_INCOMPLETE` without it.
pub const REQ: u8 = 1;
/// May be given at creation, never changed afterwards (`CKR_ATTRIBUTE_READ_ONLY`).
pub const FIXED: u8 = 2;
/// Set by the token only; an application may not supply it (`CKR_ATTRIBUTE_READ_ONLY`).
pub const TOKEN_SET: u8 = 4;
/// Key material: returned only from a non-sensitive, extractable key; sealed at rest.
pub const SECRET: u8 = 8;
/// Required for `C_CreateObject` but computed on generation (key material of generated keys).
pub const REQ_CREATE: u8 = 16;

/// One attribute's rules.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub ty: CK_ATTRIBUTE_TYPE,
    pub kind: Kind,
    pub flags: u8,
}

/// One row of a table.
pub const fn s(ty: CK_ATTRIBUTE_TYPE, kind: Kind, flags: u8) -> Spec {
    Spec { ty, kind, flags }
}

use Kind::*;

/// Common to every storage object.
pub const STORAGE: &[Spec] = &[
    s(CKA_CLASS, Ulong, REQ | FIXED),
    s(CKA_TOKEN, Bool, FIXED),
    s(CKA_PRIVATE, Bool, FIXED),
    s(CKA_MODIFIABLE, Bool, FIXED),
    s(CKA_COPYABLE, Bool, 0),
    s(CKA_DESTROYABLE, Bool, FIXED),
    s(CKA_LABEL, Bytes, 0),
    s(CKA_UNIQUE_ID, Bytes, TOKEN_SET),
];

/// Data objects: none of their attributes is marked modifiable in the specification's table, so
/// they are fixed once the object exists (a copy cannot change them either).
pub const DATA: &[Spec] =
    &[s(CKA_APPLICATION, Bytes, FIXED), s(CKA_OBJECT_ID, Bytes, FIXED), s(CKA_VALUE, Bytes, FIXED)];

/// Certificates: of an X.509 certificate "only CKA_ID, CKA_ISSUER and CKA_SERIAL_NUMBER may be
/// modified" once it exists; everything else is fixed then.
pub const CERTIFICATE: &[Spec] = &[
    s(CKA_CERTIFICATE_TYPE, Ulong, REQ | FIXED),
    s(CKA_TRUSTED, Bool, FIXED),
    s(CKA_CERTIFICATE_CATEGORY, Ulong, FIXED),
    s(CKA_CHECK_VALUE, Bytes, FIXED),
    s(CKA_START_DATE, Date, FIXED),
    s(CKA_END_DATE, Date, FIXED),
    s(CKA_PUBLIC_KEY_INFO, Bytes, FIXED),
];

pub const X509: &[Spec] = &[
    s(CKA_SUBJECT, Bytes, REQ | FIXED),
    s(CKA_ID, Bytes, 0),
    s(CKA_ISSUER, Bytes, 0),
    s(CKA_SERIAL_NUMBER, Bytes, 0),
    s(CKA_VALUE, Bytes, REQ | FIXED),
    s(CKA_URL, Bytes, FIXED),
    s(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Bytes, FIXED),
    s(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Bytes, FIXED),
    s(CKA_JAVA_MIDP_SECURITY_DOMAIN, Ulong, FIXED),
    s(CKA_NAME_HASH_ALGORITHM, Ulong, FIXED),
];

pub const KEY: &[Spec] = &[
    s(CKA_KEY_TYPE, Ulong, REQ | FIXED),
    s(CKA_ID, Bytes, 0),
    s(CKA_START_DATE, Date, 0),
    s(CKA_END_DATE, Date, 0),
    s(CKA_DERIVE, Bool, 0),
    s(CKA_LOCAL, Bool, TOKEN_SET),
    s(CKA_KEY_GEN_MECHANISM, Ulong, TOKEN_SET),
    // Restrictions on a key's use are fixed once it exists: removing one would lift it.
    s(CKA_ALLOWED_MECHANISMS, Mechanisms, FIXED),
    s(CKA_DERIVE_TEMPLATE, Template, FIXED),
    s(CKA_OBJECT_VALIDATION_FLAGS, Ulong, TOKEN_SET),
    s(CKA_VENDOR_FIPS_APPROVED, Bool, TOKEN_SET),
];

/// Tessera's vendor attribute: the key was generated or imported under approved conditions.
pub const CKA_VENDOR_FIPS_APPROVED: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 1;

/// Tessera's vendor attribute on a public key: generated on the token together with a private key
/// that was sensitive from the start and unwraps (so it never decrypts: a key's kind is fixed), so
/// no one, inside the token or outside, can decrypt what this key wraps.
/// Such a key may wrap sensitive keys without being `CKA_TRUSTED` (`services::keys`).
pub const CKA_VENDOR_PAIR_CONTAINED: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 2;

/// The `CKA_VALIDATION_FLAG` of the module's validation object (FIPS 140-3); a key's
/// `CKA_OBJECT_VALIDATION_FLAGS` and a session's validation flags carry it when approved.
pub const VALIDATION_FLAG_FIPS: CK_FLAGS = 1;

pub const PUBLIC_KEY: &[Spec] = &[
    s(CKA_SUBJECT, Bytes, 0),
    s(CKA_ENCRYPT, Bool, 0),
    s(CKA_VERIFY, Bool, 0),
    s(CKA_VERIFY_RECOVER, Bool, 0),
    s(CKA_WRAP, Bool, 0),
    s(CKA_TRUSTED, Bool, 0),
    s(CKA_WRAP_TEMPLATE, Template, FIXED),
    s(CKA_PUBLIC_KEY_INFO, Bytes, 0),
    s(CKA_VENDOR_PAIR_CONTAINED, Bool, TOKEN_SET),
    // PKCS #11 3.2: may the key encapsulate (`C_EncapsulateKey`), and what the keys it makes
    // must carry (as `CKA_UNWRAP_TEMPLATE`; fixed, as every restriction on a key's use).
    s(CKA_ENCAPSULATE, Bool, 0),
    s(CKA_ENCAPSULATE_TEMPLATE, Template, FIXED),
];

pub const PRIVATE_KEY: &[Spec] = &[
    s(CKA_SUBJECT, Bytes, 0),
    s(CKA_SENSITIVE, Bool, 0),
    s(CKA_DECRYPT, Bool, 0),
    s(CKA_SIGN, Bool, 0),
    s(CKA_SIGN_RECOVER, Bool, 0),
    s(CKA_UNWRAP, Bool, 0),
    s(CKA_EXTRACTABLE, Bool, 0),
    s(CKA_ALWAYS_SENSITIVE, Bool, TOKEN_SET),
    s(CKA_NEVER_EXTRACTABLE, Bool, TOKEN_SET),
    s(CKA_WRAP_WITH_TRUSTED, Bool, 0),
    s(CKA_UNWRAP_TEMPLATE, Template, FIXED),
    s(CKA_ALWAYS_AUTHENTICATE, Bool, FIXED),
    s(CKA_PUBLIC_KEY_INFO, Bytes, 0),
    // PKCS #11 3.2: may the key decapsulate (`C_DecapsulateKey`), and the template of what it makes.
    s(CKA_DECAPSULATE, Bool, 0),
    s(CKA_DECAPSULATE_TEMPLATE, Template, FIXED),
];

pub const SECRET_KEY: &[Spec] = &[
    s(CKA_SENSITIVE, Bool, 0),
    s(CKA_ENCRYPT, Bool, 0),
    s(CKA_DECRYPT, Bool, 0),
    s(CKA_SIGN, Bool, 0),
    s(CKA_VERIFY, Bool, 0),
    s(CKA_WRAP, Bool, 0),
    s(CKA_UNWRAP, Bool, 0),
    s(CKA_EXTRACTABLE, Bool, 0),
    s(CKA_ALWAYS_SENSITIVE, Bool, TOKEN_SET),
    s(CKA_NEVER_EXTRACTABLE, Bool, TOKEN_SET),
    s(CKA_CHECK_VALUE, Bytes, FIXED),
    s(CKA_WRAP_WITH_TRUSTED, Bool, 0),
    s(CKA_TRUSTED, Bool, 0),
    s(CKA_WRAP_TEMPLATE, Template, FIXED),
    s(CKA_UNWRAP_TEMPLATE, Template, FIXED),
    s(CKA_VENDOR_SHARED_SECRET, Bool, TOKEN_SET),
    s(CKA_VENDOR_DECAPSULATED, Bool, TOKEN_SET),
];

/// Tessera's vendor attribute on a secret key: its value is an ECDH shared secret Z as it came
/// (`CKD_NULL`). Such a key goes only through HKDF's extraction step in the approved mode (SP
/// 800-56C Rev. 2 §5: Z is extracted before it is expanded), never as a salt key or as the
/// pseudorandom key of an expansion alone (`services::keys`). Copies keep it.
pub const CKA_VENDOR_SHARED_SECRET: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 3;

/// Tessera's vendor attribute on a secret key: its value is a KEM shared secret this token
/// decapsulated (`C_DecapsulateKey`), or was derived from one. The same ciphertext gives the same
/// secret to every user of the private key, so such a key is sensitive, and so is every key derived
/// from it: no derivation makes its value, or a value computed from it, readable (outside the
/// legacy rules; `services::keys`). Copies keep it.
pub const CKA_VENDOR_DECAPSULATED: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 4;

/// The validation object (PKCS#11 3.2 `CKO_VALIDATION`): made by the token, read-only.
pub const VALIDATION: &[Spec] = &[
    s(CKA_VALIDATION_TYPE, Ulong, TOKEN_SET),
    s(CKA_VALIDATION_VERSION, Bytes, TOKEN_SET),
    s(CKA_VALIDATION_LEVEL, Ulong, TOKEN_SET),
    s(CKA_VALIDATION_MODULE_ID, Bytes, TOKEN_SET),
    s(CKA_VALIDATION_FLAG, Ulong, TOKEN_SET),
    s(CKA_VALIDATION_AUTHORITY_TYPE, Ulong, TOKEN_SET),
    s(CKA_VALIDATION_COUNTRY, Bytes, TOKEN_SET),
    s(CKA_VALIDATION_CERTIFICATE_IDENTIFIER, Bytes, TOKEN_SET),
    s(CKA_VALIDATION_CERTIFICATE_URI, Bytes, TOKEN_SET),
    s(CKA_VALIDATION_VENDOR_URI, Bytes, TOKEN_SET),
    s(CKA_VALIDATION_PROFILE, Bytes, TOKEN_SET),
];

/// Key types whose attribute model Tessera knows, with their material for each class (`keys`).
#[inline]
pub fn key_material(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE) -> Option<&'static [Spec]> {
    crate::keys::by_type(key_type)?.material(class)
}

/// The attribute tables that make up an object of `class` with subtype `sub` (key or certificate
/// type); `None` when Tessera does not hold objects of that kind.
pub fn tables(class: CK_OBJECT_CLASS, sub: Option<CK_ULONG>) -> Option<Tables> {
    Some(match class {
        CKO_DATA => [STORAGE, DATA, &[], &[]],
        CKO_VALIDATION => [STORAGE, VALIDATION, &[], &[]],
        CKO_CERTIFICATE => match sub? {
            CKC_X_509 => [STORAGE, CERTIFICATE, X509, &[]],
            _ => return None,
        },
        CKO_PUBLIC_KEY => [STORAGE, KEY, PUBLIC_KEY, key_material(class, sub?)?],
        CKO_PRIVATE_KEY => [STORAGE, KEY, PRIVATE_KEY, key_material(class, sub?)?],
        CKO_SECRET_KEY => [STORAGE, KEY, SECRET_KEY, key_material(class, sub?)?],
        _ => return None,
    })
}

/// The attribute tables of one kind of object, most general first (unused places empty).
pub type Tables = [&'static [Spec]; 4];

/// Looks an attribute up in a set of tables. The last table wins, so that a key type's own rule
/// for `CKA_VALUE` overrides nothing accidentally and class rules stay in one place.
pub fn find(tables: &[&'static [Spec]], ty: CK_ATTRIBUTE_TYPE) -> Option<Spec> {
    tables.iter().rev().flat_map(|t| t.iter()).find(|s| s.ty == ty).copied()
}

/// The encoding of an attribute wherever it appears (templates given to `C_FindObjects`, nested
/// templates), independent of the object that holds it.
pub fn kind_of(ty: CK_ATTRIBUTE_TYPE) -> Kind {
    match canonical(ty) {
        CKA_VALUE => Bytes,
        // A key-material attribute has the same encoding in every table that has it (a test in
        // `keys` checks it), so the order of the search does not matter.
        ty => find(COMMON, ty).or_else(|| crate::keys::row(ty)).map(|s| s.kind).unwrap_or(Bytes),
    }
}

/// The one type Tessera keeps an attribute under when it has two numbers: `CKA_ENCAPSULATE_TEMPLATE`
/// and `CKA_DECAPSULATE_TEMPLATE` are 0x62a and 0x62b in the published 3.2 header, and the same with
/// `CKF_ARRAY_ATTRIBUTE` in later headers (and some applications); both are read and answered, as
/// the first.
#[inline]
pub const fn canonical(ty: CK_ATTRIBUTE_TYPE) -> CK_ATTRIBUTE_TYPE {
    match ty {
        t if t == CKF_ARRAY_ATTRIBUTE | CKA_ENCAPSULATE_TEMPLATE => CKA_ENCAPSULATE_TEMPLATE,
        t if t == CKF_ARRAY_ATTRIBUTE | CKA_DECAPSULATE_TEMPLATE => CKA_DECAPSULATE_TEMPLATE,
        t => t,
    }
}

/// The tables every object kind draws from, beside its key type's material (`keys`).
pub const COMMON: &[&[Spec]] = &[STORAGE, DATA, CERTIFICATE, X509, KEY, PUBLIC_KEY, PRIVATE_KEY, SECRET_KEY];
