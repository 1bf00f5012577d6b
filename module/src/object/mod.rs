//! Objects: an attribute map with the accessors the rest of the core needs, their encoding for the
//! store, and template matching for `C_FindObjects`.

pub mod attrs;
pub mod spki;
pub mod template;

use crate::error::{err, Result};
use cryptoki_sys::*;

/// An attribute value in the ABI's byte encoding (see `attrs::Kind`). Flags and small numbers,
/// most of an object's attributes, borrow constant encodings ([`bool_`], [`ulong`]), so building
/// an object allocates only for the values that are its own; those are owned and, in key
/// objects, wiped when the object is dropped.
pub type Value = std::borrow::Cow<'static, [u8]>;

/// Attribute type → value, in attribute-type order. A sorted vector rather than a tree: an object
/// has a few dozen attributes, built once and then only read, so one allocation and a binary
/// search beat a node per handful of entries. Stored with postcard as a map, as a `BTreeMap` is.
pub type AttrMap = litemap::LiteMap<CK_ATTRIBUTE_TYPE, Value>;

/// An attribute template as the application gave it: order and duplicates kept.
pub type Template = Vec<(CK_ATTRIBUTE_TYPE, Value)>;

/// A PKCS#11 object. Immutable once built; changes produce a new `Object`.
/// SSP: secret key
/// SSP: private key
/// SSP: public key
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Object {
    pub attrs: AttrMap,
    /// Key material as mechanisms parsed it (see [`Object::parsed`]).
    pub parsed: Parsed,
}

/// Forms of an object's key material that mechanisms built from its attributes (an aws-lc RSA
/// key, an Ed25519 key pair …), kept with the object so that each use does not parse it again.
/// Objects never change, so a parsed form never goes stale; it is dropped, and its memory wiped by
/// its own destructor, with the object. A copy or a changed object starts with none; a session's
/// copy ([`Object::session_copy`]) shares the forms that are costly to make and makes its own of
/// the cheap ones. The object's identity in audit records ([`Object::identity`]) is kept here too.
#[derive(Default)]
pub struct Parsed([std::sync::OnceLock<Form>; 2], std::sync::OnceLock<std::sync::Arc<crate::record::KeyIdentity>>);

/// One parsed form, and whether a session's copy of the object shares it.
struct Form {
    value: std::sync::Arc<dyn std::any::Any + Send + Sync>,
    shared: bool,
}

/// A parsed form made before its object exists, for the object to keep ([`Object::keep`]): a
/// generated key's, made from the key the generation has in hand, so that the first use of the
/// new object (its pairwise-consistency test among them) does not parse the material again.
pub struct Prepared(Form);

impl Prepared {
    /// A form shared with sessions' copies of the object, as [`Object::parsed`] makes.
    pub fn shared<T: std::any::Any + Send + Sync>(t: T) -> Prepared {
        Prepared(Form { value: std::sync::Arc::new(Kept(t)), shared: true })
    }
}

/// A parsed form as an object keeps it: aligned to cache lines of its own, apart from the
/// reference counts in front of it, so that threads reading a shared key do not lose it from
/// their caches each time another thread takes or drops a reference.
#[repr(align(128))]
pub struct Kept<T>(T);

impl<T> std::ops::Deref for Kept<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl Clone for Parsed {
    fn clone(&self) -> Self {
        Parsed::default()
    }
}

impl PartialEq for Parsed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Parsed {}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parsed")
    }
}

/// Key objects wipe their attribute values when dropped: the key material among them must not
/// linger in freed memory.
impl Drop for Object {
    fn drop(&mut self) {
        if matches!(self.class(), CKO_SECRET_KEY | CKO_PRIVATE_KEY) {
            wipe(self.attrs.iter_mut().map(|(_, v)| v));
        }
    }
}

/// Encodes a `CK_ULONG` attribute value: a constant for the small numbers that classes, key
/// types, lengths and flags mostly are, and `CK_UNAVAILABLE_INFORMATION`.
pub fn ulong(v: CK_ULONG) -> Value {
    const fn table() -> [[u8; std::mem::size_of::<CK_ULONG>()]; 65] {
        let mut t = [[0; std::mem::size_of::<CK_ULONG>()]; 65];
        let mut i = 0;
        while i < 64 {
            t[i] = (i as CK_ULONG).to_ne_bytes();
            i += 1;
        }
        t[64] = CK_UNAVAILABLE_INFORMATION.to_ne_bytes();
        t
    }
    static SMALL: [[u8; std::mem::size_of::<CK_ULONG>()]; 65] = table();
    match v {
        0..64 => Value::Borrowed(&SMALL[v as usize]),
        CK_UNAVAILABLE_INFORMATION => Value::Borrowed(&SMALL[64]),
        _ => Value::Owned(v.to_ne_bytes().to_vec()),
    }
}

/// Encodes a `CK_BBOOL` attribute value.
pub fn bool_(v: bool) -> Value {
    Value::Borrowed(if v { &[1] } else { &[0] })
}

/// Decodes a `CK_ULONG` attribute value.
pub fn as_ulong(v: &[u8]) -> Option<CK_ULONG> {
    Some(CK_ULONG::from_ne_bytes(v.try_into().ok()?))
}

impl Object {
    /// An object with these attributes.
    pub fn new(attrs: AttrMap) -> Object {
        Object { attrs, parsed: Parsed::default() }
    }

    /// The parsed form `T` of this object's key material, built by `build` the first time, and
    /// shared with sessions' copies of the object: for forms that cost much to make (RSA keys).
    pub fn parsed<T: std::any::Any + Send + Sync>(
        &self,
        build: impl FnOnce() -> Result<T>,
    ) -> Result<std::sync::Arc<Kept<T>>> {
        self.form(build, true)
    }

    /// [`Object::parsed`] for forms that are cheap to make and used by short operations (a GCM
    /// key): a session's copy makes its own, so that threads each working in their own session
    /// never take and drop references to the same one.
    pub fn parsed_per_session<T: std::any::Any + Send + Sync>(
        &self,
        build: impl FnOnce() -> Result<T>,
    ) -> Result<std::sync::Arc<Kept<T>>> {
        self.form(build, false)
    }

    fn form<T: std::any::Any + Send + Sync>(
        &self,
        build: impl FnOnce() -> Result<T>,
        shared: bool,
    ) -> Result<std::sync::Arc<Kept<T>>> {
        for slot in &self.parsed.0 {
            if let Some(f) = slot.get() {
                // Only the right type is cloned: a clone writes the reference count.
                if f.value.is::<Kept<T>>() {
                    if let Ok(t) = f.value.clone().downcast::<Kept<T>>() {
                        return Ok(t);
                    }
                }
            }
        }
        let t = std::sync::Arc::new(Kept(build()?));
        for slot in &self.parsed.0 {
            if slot.set(Form { value: t.clone(), shared }).is_ok() {
                break;
            }
        }
        Ok(t)
    }

    /// Keeps a form made beforehand (see [`Prepared`]); an object holding two forms already keeps
    /// none more (the form is made again when it is used).
    pub fn keep(&self, form: Prepared) {
        let mut form = Some(form.0);
        for slot in &self.parsed.0 {
            match form.take() {
                Some(f) => form = slot.set(f).err(),
                None => break,
            }
        }
    }

    /// Runs `f` on the parsed form `T` (built by `build` the first time) without taking a
    /// reference to it: for uses that end within the call, so no shared count is written.
    pub fn with_parsed<T: std::any::Any + Send + Sync, R>(
        &self,
        build: impl FnOnce() -> Result<T>,
        f: impl FnOnce(&T) -> R,
    ) -> Result<R> {
        for slot in &self.parsed.0 {
            if let Some(t) = slot.get().and_then(|v| v.value.downcast_ref::<Kept<T>>()) {
                return Ok(f(t));
            }
        }
        Ok(f(&self.parsed(build)?.0))
    }

    /// The object's identity as audit records give it, made at its first record: objects never
    /// change, so each record of a key's use does not hash its `CKA_ID` and `CKA_LABEL` again.
    pub fn identity(&self) -> std::sync::Arc<crate::record::KeyIdentity> {
        self.parsed.1.get_or_init(|| std::sync::Arc::new(crate::record::KeyIdentity::of(self))).clone()
    }

    /// A session's own copy of this object (see `session::KeyCache`): the same attributes, the
    /// shared parsed forms, none of the per-session ones.
    pub fn session_copy(&self) -> Object {
        let parsed = Parsed::default();
        let mut to = parsed.0.iter();
        for f in self.parsed.0.iter().filter_map(|s| s.get()).filter(|f| f.shared) {
            if let Some(slot) = to.next() {
                let _ = slot.set(Form { value: f.value.clone(), shared: true });
            }
        }
        Object { attrs: self.attrs.clone(), parsed }
    }

    pub fn get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        // The common attributes of all objects (class, token, private, label, value …) have
        // the lowest type numbers, so they sit in the first cache line or two of the map: a scan
        // from the front finds them there, where a binary search would first read the middle of
        // the map (which matters when a search reads each of thousands of objects once).
        if ty < 0x100 {
            return self.attrs.iter().take_while(|(t, _)| **t <= ty).find(|(t, _)| **t == ty).map(|(_, v)| &**v);
        }
        self.attrs.get(&ty).map(|v| &**v)
    }

    /// A boolean attribute; absent counts as false.
    pub fn flag(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.get(ty), Some([1]))
    }

    pub fn ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
        as_ulong(self.get(ty)?)
    }

    pub fn class(&self) -> CK_OBJECT_CLASS {
        self.ulong(CKA_CLASS).unwrap_or(CK_UNAVAILABLE_INFORMATION)
    }

    /// Key type for keys, certificate type for certificates.
    pub fn subtype(&self) -> Option<CK_ULONG> {
        match self.class() {
            CKO_CERTIFICATE => self.ulong(CKA_CERTIFICATE_TYPE),
            CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY => self.ulong(CKA_KEY_TYPE),
            _ => None,
        }
    }

    pub fn is_token(&self) -> bool {
        self.flag(CKA_TOKEN)
    }

    pub fn is_private(&self) -> bool {
        self.flag(CKA_PRIVATE)
    }

    /// The attribute tables of this object's kind.
    pub fn tables(&self) -> attrs::Tables {
        attrs::tables(self.class(), self.subtype()).unwrap_or_default()
    }

    /// Whether key material of this object may leave the token in the clear.
    pub fn material_readable(&self) -> bool {
        match self.class() {
            CKO_PRIVATE_KEY | CKO_SECRET_KEY => !self.flag(CKA_SENSITIVE) && self.flag(CKA_EXTRACTABLE),
            _ => true,
        }
    }

    /// Splits into (ordinary attributes, key material) — the material is sealed at rest even for
    /// public objects. The material is a copy, wiped when it is dropped ([`Material`]).
    pub fn split(&self) -> (AttrMap, Material) {
        let t = self.tables();
        let (plain, secret) = self
            .attrs
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .partition(|(k, _)| !attrs::find(&t, *k).map(|s| s.flags & attrs::SECRET != 0).unwrap_or(false));
        (plain, Material(secret))
    }

    /// Whether every attribute of `template` is present here with exactly that value.
    pub fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Value)]) -> bool {
        template.iter().all(|(t, v)| self.get(*t).is_some_and(|have| have == &**v))
    }

    /// [`Object::matches`] for a search: an attribute whose value the caller may not read (key
    /// material of a sensitive or unextractable key) never matches, so that a search cannot tell
    /// whether a guess of it is right.
    pub fn matches_readable(&self, template: &[(CK_ATTRIBUTE_TYPE, Value)]) -> bool {
        template.iter().all(|(t, v)| {
            // Compared first, the value decides nothing unless it matches: the table lookup is
            // paid only then.
            self.get(*t).is_some_and(|have| have == &**v)
                && (self.material_readable()
                    || attrs::find(&self.tables(), *t).is_none_or(|s| s.flags & attrs::SECRET == 0))
        })
    }

    /// Whether `CKA_ALLOWED_MECHANISMS` lets this key be used with `mech` (no list, or an empty
    /// one, restricts nothing).
    pub fn allows_mechanism(&self, mech: CK_MECHANISM_TYPE) -> bool {
        let Some(allowed) = self.get(CKA_ALLOWED_MECHANISMS) else { return true };
        let mut list = allowed.chunks(std::mem::size_of::<CK_ULONG>()).filter_map(as_ulong).peekable();
        list.peek().is_none() || list.any(|m| m == mech)
    }

    /// Approximate size in bytes (`C_GetObjectSize`).
    pub fn size(&self) -> usize {
        self.attrs.values().map(|v| v.len() + 16).sum()
    }
}

/// Key-material attributes apart from their object ([`Object::split`]): their values are wiped
/// when this is dropped, as an [`Object`] of a key wipes its own.
#[derive(Debug, Default)]
pub struct Material(pub AttrMap);

impl std::ops::Deref for Material {
    type Target = AttrMap;
    fn deref(&self) -> &AttrMap {
        &self.0
    }
}

impl Drop for Material {
    fn drop(&mut self) {
        wipe(self.0.iter_mut().map(|(_, v)| v));
    }
}

/// Overwrites the owned values among `values` (borrowed ones are the shared constant encodings,
/// never key material).
fn wipe<'a>(values: impl Iterator<Item = &'a mut Value>) {
    use zeroize::Zeroize;
    for v in values {
        if let Value::Owned(v) = v {
            v.zeroize();
        }
    }
}

/// A template that may carry key material (`C_CreateObject`'s): its values are wiped when it is
/// dropped, once the object made from it (which wipes its own) exists or was refused.
pub struct WipedTemplate(pub Template);

impl std::ops::Deref for WipedTemplate {
    type Target = Template;
    fn deref(&self) -> &Template {
        &self.0
    }
}

impl Drop for WipedTemplate {
    fn drop(&mut self) {
        wipe(self.0.iter_mut().map(|(_, v)| v));
    }
}

/// Encodes an attribute map for the store (postcard: compact, versioned by the schema). The
/// encoding is written into one buffer sized for it beforehand, so no growth leaves a partial
/// copy behind in freed memory, and the buffer is wiped when dropped: it holds key material when
/// the map is a [`Material`].
pub fn encode(map: &AttrMap) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    // Each entry: the attribute type and the value's length as varints (at most 10 bytes each)
    // and the value; the map's length first.
    let bound = 10 + map.iter().map(|(_, v)| 20 + v.len()).sum::<usize>();
    let mut buf = zeroize::Zeroizing::new(vec![0u8; bound]);
    let used = postcard::to_slice(map, &mut buf).map_err(|_| err(CKR_GENERAL_ERROR))?.len();
    buf.truncate(used);
    Ok(buf)
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<AttrMap> {
    // Read as the list of pairs a map is encoded as: serde reserves room for a list cautiously,
    // where the map would reserve whatever count a damaged record claims (gigabytes from 4 bytes).
    postcard::from_bytes::<Vec<(CK_ATTRIBUTE_TYPE, Value)>>(bytes).map(AttrMap::from_iter).map_err(|e| {
        crate::error::Error::because(CKR_DEVICE_ERROR, format_args!("token store: undecodable object: {e}"))
    })
}

/// Encodes a nested template (`CKA_WRAP_TEMPLATE` …) as an attribute value.
pub fn encode_template(t: &Template) -> Result<Vec<u8>> {
    postcard::to_allocvec(t).map_err(|_| err(CKR_GENERAL_ERROR))
}

/// Decodes a nested template value.
pub fn decode_template(bytes: &[u8]) -> Result<Template> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    postcard::from_bytes(bytes).map_err(|_| err(CKR_GENERAL_ERROR))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens written while attribute maps were `BTreeMap`s decode unchanged: both are a
    /// postcard map in key order.
    #[test]
    fn stored_maps_keep_their_encoding() {
        let entries = [(CKA_LABEL, b"label".to_vec()), (CKA_CLASS, ulong(CKO_DATA).to_vec()), (CKA_TOKEN, vec![1])];
        let tree: std::collections::BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>> = entries.iter().cloned().collect();
        let old = postcard::to_allocvec(&tree).expect("encode");
        let map = decode(&old).expect("decode");
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&CKA_LABEL).map(|v| &**v), Some(&b"label"[..]));
        assert_eq!(*encode(&map).expect("encode"), old);
    }

    /// The buffer [`encode`] sizes beforehand holds the largest encodings: attribute types and
    /// lengths of every varint size, an empty map.
    #[test]
    fn encoding_fits_the_buffer_sized_for_it() {
        let mut map = AttrMap::new();
        for (i, len) in [0usize, 1, 127, 128, 16_383, 16_384, 70_000].into_iter().enumerate() {
            map.insert(CKA_VENDOR_DEFINED | i as CK_ULONG, Value::Owned(vec![7; len]));
        }
        map.insert(CK_ULONG::MAX, Value::Owned(vec![1]));
        assert_eq!(*encode(&map).unwrap(), postcard::to_allocvec(&map).unwrap());
        assert_eq!(*encode(&AttrMap::new()).unwrap(), postcard::to_allocvec(&AttrMap::new()).unwrap());
        let secret = Material(map);
        assert_eq!(secret.len(), 8);
    }
}
