//! Template processing with the specification's rules: building a new object (`C_CreateObject`,
//! and the key-generation services), changing one (`C_SetAttributeValue`) and copying one
//! (`C_CopyObject`).

use super::attrs::{self, Kind, Spec, FIXED, REQ, REQ_CREATE, TOKEN_SET};
use super::{as_ulong, bool_, ulong, AttrMap, Object, Template, Value};
use crate::error::{err, Result};
use cryptoki_sys::*;

/// How an object came to be; decides `CKA_LOCAL`, `CKA_KEY_GEN_MECHANISM`, `CKA_ALWAYS_SENSITIVE`
/// and `CKA_NEVER_EXTRACTABLE`, and whether key material must come from the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `C_CreateObject` (an import): the template carries the key material.
    Created,
    /// Generated on the token by the given mechanism; the mechanism supplies the material.
    Generated(CK_MECHANISM_TYPE),
    /// Unwrapped: the material comes from outside, through the token.
    Imported,
    /// Derived from a base key: (base was always sensitive, base was never extractable).
    Derived(bool, bool),
}

/// Who asks, and under which rules: some attributes (`CKA_TRUSTED`) only the Security Officer may
/// set; `legacy` is the configuration's `keys.legacy_wrapping = allow` (never in the approved
/// mode), under which keys may both wrap and process data, as in modules without Tessera's
/// key-management rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct Actor {
    pub so: bool,
    pub legacy: bool,
}

/// The usages that move keys in and out of the token.
pub const WRAPPING_USAGES: [CK_ATTRIBUTE_TYPE; 2] = [CKA_WRAP, CKA_UNWRAP];

/// The usages that process data. A key that guards other keys' secrets (see [`guarding`]) and has
/// one of these never has a wrapping usage: a key that wraps and decrypts decrypts what it wrapped,
/// and an RSA key that unwraps and signs raw (`CKM_RSA_X_509`) decrypts.
pub const DATA_USAGES: [CK_ATTRIBUTE_TYPE; 6] =
    [CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_SIGN_RECOVER, CKA_VERIFY_RECOVER];

/// Whether a key combines a wrapping usage with a data usage (see [`DATA_USAGES`]).
pub fn usages_conflict(obj: &Object) -> bool {
    WRAPPING_USAGES.iter().any(|t| obj.flag(*t)) && DATA_USAGES.iter().any(|t| obj.flag(*t))
}

/// Whether what a key wraps, or unwraps, may be sensitive keys: a secret key nobody outside the
/// token knows (generated here and never extractable) or that the Security Officer trusts, and the
/// private key of a pair generated here that unwraps and was sensitive from the start (its public
/// key may wrap sensitive keys, `services::keys`). Only such keys may wrap sensitive keys, so the
/// key-management rules (no data usage beside a wrapping one, a kind that does not change,
/// sensitive unwrapped keys) bind them; any other key's wrapped keys are readable anyway, and a key
/// whose value the caller may know gains nothing from the rules.
pub fn guarding(obj: &Object) -> bool {
    match obj.class() {
        CKO_SECRET_KEY => obj.flag(CKA_TRUSTED) || (obj.flag(CKA_LOCAL) && obj.flag(CKA_NEVER_EXTRACTABLE)),
        CKO_PRIVATE_KEY => obj.flag(CKA_LOCAL) && obj.flag(CKA_ALWAYS_SENSITIVE) && obj.flag(CKA_UNWRAP),
        _ => false,
    }
}

/// A guarding key's kind — key-encryption key or data key — is fixed when it is made: `CKA_WRAP`
/// and `CKA_UNWRAP` do not change afterwards (outside the legacy rules; the specification lets a
/// token refuse a change with `CKR_ATTRIBUTE_READ_ONLY`). Were they changeable, a data key could be
/// turned into a key-encryption key while a decryption it began is still in progress, or a
/// key-encryption key back into a data key once it has wrapped, and the half of a key pair that
/// unwraps could be given `CKA_DECRYPT` after its public key wrapped.
fn kind_fixed(obj: &Object, ty: CK_ATTRIBUTE_TYPE, new: &[u8], actor: Actor) -> Result<()> {
    let changes = WRAPPING_USAGES.contains(&ty) && obj.get(ty).unwrap_or(&[0]) != new;
    if !actor.legacy && changes && guarding(obj) {
        return Err(err(CKR_ATTRIBUTE_READ_ONLY));
    }
    Ok(())
}

/// [`usages_conflict`] of a guarding key as an error, outside the legacy rules.
fn check_usages(obj: &Object, actor: Actor) -> Result<()> {
    // The conflict first: most keys have no wrapping usage, which ends the test at two lookups.
    if !actor.legacy && usages_conflict(obj) && guarding(obj) {
        return Err(err(CKR_TEMPLATE_INCONSISTENT));
    }
    Ok(())
}

/// Folds a template into a map; the same attribute twice with different values is inconsistent.
pub fn collect(template: &Template) -> Result<AttrMap> {
    collect_into(AttrMap::with_capacity(template.len()), template)
}

fn collect_into(mut map: AttrMap, template: &Template) -> Result<AttrMap> {
    for (t, v) in template {
        if let Some(prev) = map.insert(*t, v.clone()) {
            if &prev != v {
                return Err(err(CKR_TEMPLATE_INCONSISTENT));
            }
        }
    }
    Ok(map)
}

/// Checks a value against its attribute's encoding.
pub fn check_value(kind: Kind, v: &[u8]) -> Result<()> {
    let ok = match kind {
        Kind::Bool => v.len() == 1 && v[0] <= 1,
        Kind::Ulong => v.len() == std::mem::size_of::<CK_ULONG>(),
        Kind::Date => v.is_empty() || (v.len() == 8 && v.iter().all(u8::is_ascii_digit)),
        // An allowed-mechanisms list names at least one mechanism: an empty list would claim a
        // restriction that allows nothing.
        Kind::Mechanisms => !v.is_empty() && v.len().is_multiple_of(std::mem::size_of::<CK_ULONG>()),
        Kind::Bytes | Kind::Template => true,
    };
    if ok {
        Ok(())
    } else {
        Err(err(CKR_ATTRIBUTE_VALUE_INVALID))
    }
}

/// The rules that make some attributes one-way (spec 4.4–4.9): sensitive stays sensitive,
/// unextractable stays unextractable, uncopyable stays uncopyable, and only the SO sets trust.
fn one_way(old: &Object, ty: CK_ATTRIBUTE_TYPE, new: &[u8], actor: Actor) -> Result<()> {
    let was = |t| old.get(t);
    let bad = match ty {
        CKA_SENSITIVE => was(CKA_SENSITIVE) == Some(&[1]) && new == [0],
        CKA_EXTRACTABLE => was(CKA_EXTRACTABLE) == Some(&[0]) && new == [1],
        CKA_COPYABLE => was(CKA_COPYABLE) == Some(&[0]) && new == [1],
        CKA_WRAP_WITH_TRUSTED => was(CKA_WRAP_WITH_TRUSTED) == Some(&[1]) && new == [0],
        // What a copy may change of its storage attributes, only ever towards more protection.
        CKA_MODIFIABLE => was(CKA_MODIFIABLE) == Some(&[0]) && new == [1],
        CKA_DESTROYABLE => was(CKA_DESTROYABLE) == Some(&[0]) && new == [1],
        CKA_PRIVATE => was(CKA_PRIVATE) == Some(&[1]) && new == [0],
        CKA_TRUSTED => new == [1] && !actor.so,
        _ => false,
    };
    if bad {
        Err(err(CKR_ATTRIBUTE_READ_ONLY))
    } else {
        Ok(())
    }
}

fn class_and_subtype(map: &AttrMap) -> Result<(CK_OBJECT_CLASS, Option<CK_ULONG>)> {
    let class = map.get(&CKA_CLASS).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
    let class = as_ulong(class).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))?;
    let sub_attr = match class {
        CKO_DATA => None,
        CKO_CERTIFICATE => Some(CKA_CERTIFICATE_TYPE),
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY => Some(CKA_KEY_TYPE),
        _ => return Err(err(CKR_ATTRIBUTE_VALUE_INVALID)),
    };
    let sub = match sub_attr {
        None => None,
        Some(a) => {
            let v = map.get(&a).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
            Some(as_ulong(v).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))?)
        }
    };
    Ok((class, sub))
}

/// Builds a new object from an application template (plus, for generated keys, the material the
/// mechanism made, passed in `material`).
pub fn build(template: &Template, material: Template, origin: Origin, actor: Actor) -> Result<Object> {
    if !prototype::eligible(&material, origin) {
        return build_anew(template, material, origin, actor);
    }
    let material = match prototype::made(template, material, origin, actor) {
        Ok(made) => return made,
        Err(material) => material,
    };
    let types: Vec<CK_ATTRIBUTE_TYPE> = material.iter().map(|(t, _)| *t).collect();
    let (obj, class, sub) = settled(template, material, origin, actor)?;
    prototype::keep(template, &types, origin, actor, &obj, class, sub);
    finished(obj, class, sub, origin)
}

/// Keys the token makes from material (generated, derived, unwrapped, encapsulated,
/// decapsulated) made again from the same template. Building an object has two parts:
/// [`settled`] applies the rules that depend on the template, the origin, the actor and which
/// material attributes the mechanism gives (not their values): the template's checks, the
/// defaults, what the token sets; [`finished`] computes what follows from the material itself
/// (lengths, check values, `CKA_PUBLIC_KEY_INFO`, each key type's computed attributes and
/// checks). The first key of a template is built in full; its settled attributes, with the
/// material and `CKA_UNIQUE_ID` left empty, are kept as that template's prototype, and the next
/// keys start from the prototype's copy with their own material and a new unique identifier, then
/// are finished as a full build finishes them. So a key made from a prototype has exactly the
/// attributes a full build gives it (the unit tests compare the two for secret keys and for
/// generated key pairs). Settling the template was about two thirds of building an object, and
/// building the secret key half of what `C_EncapsulateKey` spent outside the cryptography.
///
/// Prototypes hold no key material, and are kept per thread (a few each, most recent first), so
/// that threads never share or wait for them.
mod prototype {
    use super::{unique_id, Actor, Origin, EMPTY};
    use crate::error::Result;
    use crate::object::{AttrMap, Object, Template};
    use cryptoki_sys::*;

    /// How many prototypes a thread keeps (a key pair takes two).
    const KEPT: usize = 6;
    /// Templates larger than this (their values' bytes) are not kept.
    const MAX_TEMPLATE_BYTES: usize = 1024;

    struct Prototype {
        template: Template,
        /// The material attributes the mechanism gave, in its order.
        material: Vec<CK_ATTRIBUTE_TYPE>,
        /// The values of those the template names too (a parameter set, a curve, a public
        /// exponent; key material it may not name): a rule compares them with the template's, so
        /// the prototype serves only material that has the same.
        named: Vec<(CK_ATTRIBUTE_TYPE, crate::object::Value)>,
        origin: Origin,
        so: bool,
        legacy: bool,
        class: CK_OBJECT_CLASS,
        sub: Option<CK_ULONG>,
        /// The settled attributes, with [`EMPTY`] for the material and the unique id.
        attrs: AttrMap,
    }

    thread_local! {
        static KEPT_HERE: std::cell::RefCell<Vec<Prototype>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Whether a prototype may serve: material from the token, each of its attributes once.
    pub(super) fn eligible(material: &Template, origin: Origin) -> bool {
        origin != Origin::Created
            && !material.is_empty()
            && material.iter().enumerate().all(|(i, (t, _))| material[..i].iter().all(|(u, _)| u != t))
    }

    /// The key made from this template's prototype (finished, so possibly refused as a full
    /// build would refuse it), or the material back when no prototype serves.
    pub(super) fn made(
        template: &Template,
        mut material: Template,
        origin: Origin,
        actor: Actor,
    ) -> std::result::Result<Result<Object>, Template> {
        let found = KEPT_HERE.with(|k| {
            let kept = k.borrow();
            let p = kept.iter().find(|p| {
                p.origin == origin
                    && p.so == actor.so
                    && p.legacy == actor.legacy
                    && p.material.len() == material.len()
                    && p.material.iter().zip(&material).all(|(a, (b, _))| a == b)
                    && p.template == *template
                    && p.named.iter().all(|(t, v)| material.iter().any(|(u, w)| u == t && w == v))
            })?;
            // Room for what finishing and the services add (lengths, check value, stamps), as a
            // full build leaves.
            let mut copy = Vec::with_capacity(p.attrs.len() + 8);
            copy.extend(p.attrs.iter().map(|(t, v)| (*t, v.clone())));
            Some((AttrMap::from_sorted_store_unchecked(copy), p.class, p.sub))
        });
        let Some((mut attrs, class, sub)) = found else { return Err(material) };
        for (t, v) in material.iter_mut() {
            if let Some(slot) = attrs.get_mut(t) {
                // Moved, not copied: the object owns the material from here, and wipes it.
                *slot = std::mem::replace(v, EMPTY);
            }
        }
        if let Some(v) = attrs.get_mut(&CKA_UNIQUE_ID) {
            *v = unique_id();
        }
        Ok(super::finished(Object::new(attrs), class, sub, origin))
    }

    /// Keeps `obj`, just settled from `template` and material of these types, as that template's
    /// prototype.
    pub(super) fn keep(
        template: &Template,
        material: &[CK_ATTRIBUTE_TYPE],
        origin: Origin,
        actor: Actor,
        obj: &Object,
        class: CK_OBJECT_CLASS,
        sub: Option<CK_ULONG>,
    ) {
        if template.iter().map(|(_, v)| v.len()).sum::<usize>() > MAX_TEMPLATE_BYTES {
            return;
        }
        // Only material the template names too, which the build let through: never key material.
        let named = material
            .iter()
            .filter(|t| template.iter().any(|(u, _)| u == *t))
            .filter_map(|t| Some((*t, crate::object::Value::Owned(obj.get(*t)?.to_vec()))))
            .collect();
        let attrs: AttrMap = obj
            .attrs
            .iter()
            .map(|(t, v)| if *t == CKA_UNIQUE_ID || material.contains(t) { (*t, EMPTY) } else { (*t, v.clone()) })
            .collect();
        let p = Prototype {
            template: template.clone(),
            material: material.to_vec(),
            named,
            origin,
            so: actor.so,
            legacy: actor.legacy,
            class,
            sub,
            attrs,
        };
        KEPT_HERE.with(|k| {
            let mut kept = k.borrow_mut();
            kept.insert(0, p);
            kept.truncate(KEPT);
        });
    }

    /// A full build, for the tests that compare it with a prototype's copy.
    #[cfg(test)]
    pub(super) fn anew(template: &Template, material: Template, origin: Origin, actor: Actor) -> Result<Object> {
        super::build_anew(template, material, origin, actor)
    }

    /// Forgets this thread's prototypes (tests).
    #[cfg(test)]
    pub(super) fn forget() {
        KEPT_HERE.with(|k| k.borrow_mut().clear());
    }
}

/// [`build`] in full, every rule applied to this template.
fn build_anew(template: &Template, material: Template, origin: Origin, actor: Actor) -> Result<Object> {
    let (obj, class, sub) = settled(template, material, origin, actor)?;
    finished(obj, class, sub, origin)
}

/// The first part of a build (see [`prototype`]): the rules that depend on the template, the
/// origin, the actor and the types of the material; the object's class and subtype with it.
fn settled(
    template: &Template,
    material: Template,
    origin: Origin,
    actor: Actor,
) -> Result<(Object, CK_OBJECT_CLASS, Option<CK_ULONG>)> {
    // Room for the material and the defaults: the map is allocated once.
    let mut map = collect_into(AttrMap::with_capacity(template.len() + material.len() + 32), template)?;
    let (class, sub) = class_and_subtype(&map)?;
    let tables = attrs::tables(class, sub).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID))?;
    for (t, v) in &map {
        let spec: Spec = attrs::find(&tables, *t).ok_or(err(CKR_ATTRIBUTE_TYPE_INVALID))?;
        if spec.flags & TOKEN_SET != 0 {
            return Err(err(CKR_ATTRIBUTE_READ_ONLY));
        }
        // Key material of generated, unwrapped or derived keys comes from the token only.
        if origin != Origin::Created && spec.flags & attrs::SECRET != 0 {
            return Err(err(CKR_ATTRIBUTE_READ_ONLY));
        }
        // The length of a secret key follows from its value (spec §4.7.2 note 6).
        if origin == Origin::Created && *t == CKA_VALUE_LEN && class == CKO_SECRET_KEY {
            return Err(err(CKR_ATTRIBUTE_READ_ONLY));
        }
        check_value(spec.kind, v)?;
    }
    if let Some(v) = map.get(&CKA_TRUSTED) {
        // Only the SO sets trust; there is no earlier value to compare with.
        one_way(&Object::default(), CKA_TRUSTED, v, actor)?;
    }
    for (t, v) in material {
        // The template may name what the mechanism also makes only with the same value
        // (CKA_EC_PARAMS, CKA_PUBLIC_EXPONENT); key material it may not name at all. A big
        // integer is the same value with or without leading zero bytes (`00 01 00 01`).
        if let Some(given) = map.get(&t) {
            let same = match t {
                CKA_PUBLIC_EXPONENT => without_leading_zeros(given) == without_leading_zeros(&v),
                _ => **given == *v,
            };
            if !same {
                return Err(err(CKR_ATTRIBUTE_READ_ONLY));
            }
        }
        map.insert(t, v);
    }
    for spec in tables.iter().flat_map(|t| t.iter()) {
        let needed = spec.flags & REQ != 0 || (origin == Origin::Created && spec.flags & REQ_CREATE != 0);
        if needed && !map.contains_key(&spec.ty) {
            return Err(err(CKR_TEMPLATE_INCOMPLETE));
        }
    }
    let obj = Object::new(apply_defaults(map, class, origin, actor));
    check_usages(&obj, actor)?;
    Ok((obj, class, sub))
}

/// The second part of a build (see [`prototype`]): what follows from the material itself.
fn finished(mut obj: Object, class: CK_OBJECT_CLASS, sub: Option<CK_ULONG>, origin: Origin) -> Result<Object> {
    derive_computed(&mut obj, sub)?;
    check_public_key_info(&obj)?;
    // A generated private key takes its public key's (`services::keys`): computing it again would
    // cost a scalar multiplication per generated pair.
    match (class, origin) {
        (CKO_PRIVATE_KEY, Origin::Generated(_)) => {}
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, _) => fill_public_key_info(&mut obj),
        _ => {}
    }
    Ok(obj)
}

pub(crate) fn without_leading_zeros(v: &[u8]) -> &[u8] {
    &v[v.iter().position(|b| *b != 0).unwrap_or(v.len())..]
}

/// The defaults of a class that a template may override, for the usages' defaults `data` and
/// `wrap`, in type order: made once per (class, data, wrap) and kept, so that a new object only
/// merges them with its template. Applying some forty defaults one by one (looking for each among
/// the template's and those already added, then sorting) cost as much as half the cryptography of
/// a short operation that makes a key (an ML-KEM encapsulation).
fn class_defaults(class: CK_OBJECT_CLASS, data: bool, wrap: bool) -> &'static [(CK_ATTRIBUTE_TYPE, Value)] {
    type Kept = std::sync::OnceLock<Vec<(CK_ATTRIBUTE_TYPE, Value)>>;
    static KEPT: [[Kept; 4]; 6] = [const { [const { Kept::new() }; 4] }; 6];
    let c = match class {
        CKO_DATA => 0,
        CKO_CERTIFICATE => 1,
        CKO_PUBLIC_KEY => 2,
        CKO_PRIVATE_KEY => 3,
        CKO_SECRET_KEY => 4,
        _ => 5,
    };
    KEPT[c][usize::from(data) * 2 + usize::from(wrap)].get_or_init(|| {
        let mut v = defaults_of(class, data, wrap);
        v.sort_unstable_by_key(|e| e.0);
        debug_assert!(v.windows(2).all(|w| w[0].0 < w[1].0), "an attribute defaulted twice");
        v
    })
}

/// The defaults of a class that a template may override (see [`class_defaults`]), unsorted.
fn defaults_of(class: CK_OBJECT_CLASS, data_default: bool, wrap_default: bool) -> Vec<(CK_ATTRIBUTE_TYPE, Value)> {
    let mut d = Vec::with_capacity(48);
    let is_key_secret = matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY);
    d.push((CKA_PRIVATE, bool_(is_key_secret)));
    d.push((CKA_TOKEN, bool_(false)));
    d.push((CKA_MODIFIABLE, bool_(true)));
    d.push((CKA_COPYABLE, bool_(true)));
    d.push((CKA_DESTROYABLE, bool_(true)));
    d.push((CKA_LABEL, EMPTY));
    match class {
        CKO_DATA => {
            d.push((CKA_APPLICATION, EMPTY));
            d.push((CKA_OBJECT_ID, EMPTY));
            d.push((CKA_VALUE, EMPTY));
        }
        CKO_CERTIFICATE => {
            d.push((CKA_TRUSTED, bool_(false)));
            d.push((CKA_CERTIFICATE_CATEGORY, ulong(CK_CERTIFICATE_CATEGORY_UNSPECIFIED)));
            d.push((CKA_START_DATE, EMPTY));
            d.push((CKA_END_DATE, EMPTY));
            d.push((CKA_PUBLIC_KEY_INFO, EMPTY));
            for t in [
                CKA_ID,
                CKA_ISSUER,
                CKA_SERIAL_NUMBER,
                CKA_URL,
                CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
                CKA_HASH_OF_ISSUER_PUBLIC_KEY,
            ] {
                d.push((t, EMPTY));
            }
            d.push((CKA_JAVA_MIDP_SECURITY_DOMAIN, ulong(CK_SECURITY_DOMAIN_UNSPECIFIED)));
            d.push((CKA_NAME_HASH_ALGORITHM, ulong(CKM_SHA_1)));
        }
        _ => {
            d.push((CKA_ID, EMPTY));
            d.push((CKA_START_DATE, EMPTY));
            d.push((CKA_END_DATE, EMPTY));
            d.push((CKA_DERIVE, bool_(false)));
            d.push((CKA_ALLOWED_MECHANISMS, EMPTY));
            d.push((CKA_DERIVE_TEMPLATE, EMPTY));
        }
    }
    match class {
        CKO_PUBLIC_KEY => {
            d.push((CKA_SUBJECT, EMPTY));
            for t in [CKA_ENCRYPT, CKA_VERIFY, CKA_VERIFY_RECOVER] {
                d.push((t, bool_(data_default)));
            }
            d.push((CKA_WRAP, bool_(wrap_default)));
            d.push((CKA_TRUSTED, bool_(false)));
            d.push((CKA_WRAP_TEMPLATE, EMPTY));
            d.push((CKA_PUBLIC_KEY_INFO, EMPTY));
            // A data usage, defaulting as CKA_VERIFY does.
            d.push((CKA_ENCAPSULATE, bool_(data_default)));
            d.push((CKA_ENCAPSULATE_TEMPLATE, EMPTY));
        }
        CKO_PRIVATE_KEY | CKO_SECRET_KEY => {
            // Keys stay inside unless the application asks otherwise: not extractable (a default
            // the specification leaves to the token). A private key is sensitive too (also the
            // token's choice); for a secret key the specification gives CKA_SENSITIVE the default
            // false, which reveals nothing while the key is not extractable.
            d.push((CKA_SENSITIVE, bool_(class == CKO_PRIVATE_KEY)));
            d.push((CKA_EXTRACTABLE, bool_(false)));
            for t in [CKA_DECRYPT, CKA_SIGN] {
                d.push((t, bool_(data_default)));
            }
            d.push((CKA_UNWRAP, bool_(wrap_default)));
            d.push((CKA_WRAP_WITH_TRUSTED, bool_(false)));
            d.push((CKA_UNWRAP_TEMPLATE, EMPTY));
            if class == CKO_PRIVATE_KEY {
                d.push((CKA_SUBJECT, EMPTY));
                d.push((CKA_SIGN_RECOVER, bool_(data_default)));
                d.push((CKA_ALWAYS_AUTHENTICATE, bool_(false)));
                d.push((CKA_PUBLIC_KEY_INFO, EMPTY));
                // A data usage, defaulting as CKA_SIGN does.
                d.push((CKA_DECAPSULATE, bool_(data_default)));
                d.push((CKA_DECAPSULATE_TEMPLATE, EMPTY));
            } else {
                for t in [CKA_ENCRYPT, CKA_VERIFY] {
                    d.push((t, bool_(data_default)));
                }
                d.push((CKA_WRAP, bool_(wrap_default)));
                d.push((CKA_TRUSTED, bool_(false)));
                d.push((CKA_WRAP_TEMPLATE, EMPTY));
            }
        }
        _ => {}
    }
    d
}

/// The object's attributes: the template's, the class's defaults for what it leaves out
/// ([`class_defaults`]), and what the token sets whatever the template says.
fn apply_defaults(map: AttrMap, class: CK_OBJECT_CLASS, origin: Origin, actor: Actor) -> AttrMap {
    // A key is either a wrapping key or a data key (see `DATA_USAGES`): the usages the template
    // leaves out follow the kind the template asks for, a data key when it names no wrapping
    // usage. Under the legacy rules every usage defaults to true, as it did.
    let wrapping = WRAPPING_USAGES.iter().any(|t| map.get(t).is_some_and(|v| **v == [1]));
    let (data_default, wrap_default) = if actor.legacy { (true, true) } else { (!wrapping, false) };
    let defaults = class_defaults(class, data_default, wrap_default);
    let value = |t: CK_ATTRIBUTE_TYPE| {
        map.get(&t).or_else(|| defaults.binary_search_by_key(&t, |e| e.0).ok().map(|i| &defaults[i].1))
    };
    // What the token sets (at most seven attributes).
    let mut set: Vec<(CK_ATTRIBUTE_TYPE, Value)> = Vec::with_capacity(8);
    if matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        let (local, mech) = match origin {
            Origin::Generated(m) => (true, m),
            _ => (false, CK_UNAVAILABLE_INFORMATION),
        };
        set.push((CKA_LOCAL, bool_(local)));
        set.push((CKA_KEY_GEN_MECHANISM, ulong(mech)));
    }
    if class == CKO_SECRET_KEY {
        // Set true by `C_DeriveKey` alone, for an ECDH shared secret.
        set.push((attrs::CKA_VENDOR_SHARED_SECRET, bool_(false)));
        // Set true by `C_DecapsulateKey`, and `C_DeriveKey` from such a key, alone.
        set.push((attrs::CKA_VENDOR_DECAPSULATED, bool_(false)));
    }
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        let (always_sensitive, never_extractable) = match origin {
            Origin::Generated(_) => (true, true),
            Origin::Derived(s, e) => (s, e),
            _ => (false, false),
        };
        let sensitive = value(CKA_SENSITIVE).is_some_and(|v| **v == [1]);
        let extractable = value(CKA_EXTRACTABLE).is_some_and(|v| **v == [1]);
        set.push((CKA_ALWAYS_SENSITIVE, bool_(always_sensitive && sensitive)));
        set.push((CKA_NEVER_EXTRACTABLE, bool_(never_extractable && !extractable)));
    }
    set.push((CKA_UNIQUE_ID, unique_id()));
    set.sort_unstable_by_key(|e| e.0);
    merged(map, defaults, set)
}

/// One map of three sorted lists, each holding a type once: for each attribute, the token's value
/// (`set`), else the template's (`given`), else the default. Room is left for the attributes that follow (computed
/// lengths and check values, the approval stamp).
fn merged(
    given: AttrMap,
    defaults: &'static [(CK_ATTRIBUTE_TYPE, Value)],
    set: Vec<(CK_ATTRIBUTE_TYPE, Value)>,
) -> AttrMap {
    // The template's and the token's first (a few attributes; the token's value wins), then the
    // defaults walked once, each taken unless the first list has its type.
    let mut first: Vec<(CK_ATTRIBUTE_TYPE, Value)> = Vec::with_capacity(given.len() + set.len());
    let mut set = set.into_iter().peekable();
    for (t, v) in given.into_tuple_vec() {
        while let Some(e) = set.next_if(|e| e.0 < t) {
            first.push(e);
        }
        first.push(set.next_if(|e| e.0 == t).unwrap_or((t, v)));
    }
    first.extend(set);
    let mut out = Vec::with_capacity(first.len() + defaults.len() + 4);
    let mut first = first.into_iter().peekable();
    for (t, v) in defaults {
        while let Some(e) = first.next_if(|e| e.0 < *t) {
            out.push(e);
        }
        out.push(first.next_if(|e| e.0 == *t).unwrap_or_else(|| (*t, v.clone())));
    }
    out.extend(first);
    AttrMap::from_sorted_store_unchecked(out)
}

/// Lower-case hexadecimal.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * b.len());
    for x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// A new `CKA_UNIQUE_ID`: 32 hexadecimal digits, a random 64-bit prefix drawn once per process
/// (and again in a fork child, whose counter would otherwise repeat its parent's) followed by a
/// counter. Unique on every token the process writes to, without a random draw per object.
fn unique_id() -> Value {
    struct Source {
        generation: u64,
        prefix: [u8; 8],
        next: u64,
    }
    static SOURCE: std::sync::Mutex<Option<Source>> = std::sync::Mutex::new(None);
    let generation = crate::state::generation();
    let mut g = SOURCE.lock().unwrap_or_else(|p| p.into_inner());
    let src = match &mut *g {
        Some(s) if s.generation == generation => s,
        slot => {
            let mut prefix = [0u8; 8];
            // A failing system random generator leaves the prefix from the clock and process id:
            // still distinct between processes, which is all uniqueness needs.
            if crate::crypto::random::fill(&mut prefix).is_err() {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                prefix = (t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 40)).to_be_bytes();
            }
            slot.insert(Source { generation, prefix, next: 0 })
        }
    };
    src.next += 1;
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&src.prefix);
    raw[8..].copy_from_slice(&src.next.to_be_bytes());
    drop(g);
    // The digits written straight into the value's bytes (as [`hex`] would give them): a
    // `String` built a character at a time cost as much as the rest of the identifier.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, x) in raw.iter().enumerate() {
        out[2 * i] = DIGITS[(x >> 4) as usize];
        out[2 * i + 1] = DIGITS[(x & 15) as usize];
    }
    Value::Owned(out.to_vec())
}

/// The empty value of an attribute that has none.
const EMPTY: Value = Value::Borrowed(&[]);

/// Attributes that follow from others: lengths, modulus size, certificate check value.
fn derive_computed(obj: &mut Object, sub: Option<CK_ULONG>) -> Result<()> {
    match (obj.class(), sub) {
        (CKO_SECRET_KEY, Some(kt)) => {
            let len = obj.get(CKA_VALUE).map(|v| v.len()).unwrap_or(0) as CK_ULONG;
            if let Some(given) = obj.ulong(CKA_VALUE_LEN) {
                if given != len {
                    return Err(err(CKR_TEMPLATE_INCONSISTENT));
                }
            }
            if crate::keys::by_type(kt).is_some_and(|k| !(k.value_len_ok)(kt, len as usize)) {
                return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
            }
            obj.attrs.insert(CKA_VALUE_LEN, ulong(len));
            // A check value given empty asks for none (the specification's way to prevent it).
            let none_wanted = obj.get(CKA_CHECK_VALUE).is_some_and(|v| v.is_empty());
            if let Some(cv) = crate::keys::check_value(kt, obj.get(CKA_VALUE).unwrap_or(&[])).filter(|_| !none_wanted) {
                if obj.get(CKA_CHECK_VALUE).is_some_and(|given| given != cv.as_slice()) {
                    return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
                }
                obj.attrs.insert(CKA_CHECK_VALUE, cv.into());
            }
        }
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, Some(kt)) => {
            if let Some(k) = crate::keys::by_type(kt) {
                (k.computed)(obj, kt)?;
            }
        }
        (CKO_CERTIFICATE, _) if obj.get(CKA_CHECK_VALUE).is_none_or(|v| v.is_empty()) => {
            let value = obj.get(CKA_VALUE).unwrap_or(&[]);
            let d = crate::crypto::digest::digest(&crate::crypto::digest::SHA1_FOR_LEGACY_USE_ONLY, value);
            obj.attrs.insert(CKA_CHECK_VALUE, d.as_ref()[..3].to_vec().into());
        }
        _ => {}
    }
    Ok(())
}

/// A private key's `CKA_PUBLIC_KEY_INFO`, when not empty, must be the key's own public key: the
/// specification has the token verify it wherever it is given (`C_CreateObject`,
/// `C_CopyObject`, `C_SetAttributeValue`), `CKR_ATTRIBUTE_VALUE_INVALID` on a mismatch. The
/// SubjectPublicKeyInfo is compared by algorithm, curve and key, whatever its exact encoding.
pub fn check_public_key_info(obj: &Object) -> Result<()> {
    use pkcs8::der::Decode;
    use pkcs8::spki::SubjectPublicKeyInfoRef;
    let info = match obj.get(CKA_PUBLIC_KEY_INFO) {
        Some(v) if !v.is_empty() && obj.class() == CKO_PRIVATE_KEY => v,
        _ => return Ok(()),
    };
    let bad = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    let spki = SubjectPublicKeyInfoRef::from_der(info).map_err(|_| bad())?;
    let key = spki.subject_public_key.as_bytes().ok_or(bad())?;
    let same = match obj.ulong(CKA_KEY_TYPE).and_then(crate::keys::by_type) {
        Some(k) => (k.public_key_info_matches)(obj, &spki, key)?,
        None => false,
    };
    if same {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Gives a key with a public half its `CKA_PUBLIC_KEY_INFO` when the application left it empty
/// (the specification's default is the key's own SubjectPublicKeyInfo). Key material that does
/// not yield a public key leaves it empty: the mechanisms refuse such a key when it is used.
pub fn fill_public_key_info(obj: &mut Object) {
    if obj.get(CKA_PUBLIC_KEY_INFO).is_some_and(|v| v.is_empty()) {
        if let Ok(Some(info)) = super::spki::public_key_info(obj) {
            obj.attrs.insert(CKA_PUBLIC_KEY_INFO, info.into());
        }
    }
}

/// `C_SetAttributeValue`: the object with the template applied.
pub fn apply_set(obj: &Object, template: &Template, actor: Actor) -> Result<Object> {
    if !obj.flag(CKA_MODIFIABLE) {
        return Err(err(CKR_ACTION_PROHIBITED));
    }
    let map = collect(template)?;
    let tables = obj.tables();
    let mut new = obj.clone();
    for (t, v) in &map {
        let spec = attrs::find(&tables, *t).ok_or(err(CKR_ATTRIBUTE_TYPE_INVALID))?;
        // A secret key's check value may be removed (set to no value), never set.
        let removes_check_value = *t == CKA_CHECK_VALUE && v.is_empty() && obj.class() == CKO_SECRET_KEY;
        if spec.flags & (REQ | FIXED | TOKEN_SET) != 0 && !removes_check_value {
            return Err(err(CKR_ATTRIBUTE_READ_ONLY));
        }
        // Once set one way these attributes are read-only (spec footnotes 11 and 12): setting
        // them again, even to the value they have, is refused.
        let was = |t| obj.get(t);
        let locked = match *t {
            CKA_SENSITIVE | CKA_WRAP_WITH_TRUSTED => was(*t) == Some(&[1]),
            CKA_EXTRACTABLE | CKA_COPYABLE => was(*t) == Some(&[0]),
            _ => false,
        };
        if locked {
            return Err(err(CKR_ATTRIBUTE_READ_ONLY));
        }
        check_value(spec.kind, v)?;
        one_way(obj, *t, v, actor)?;
        kind_fixed(obj, *t, v, actor)?;
        new.attrs.insert(*t, v.clone());
    }
    check_usages(&new, actor)?;
    check_public_key_info(&new)?;
    Ok(new)
}

/// `C_CopyObject`: a copy with the template applied and a new unique id.
pub fn apply_copy(obj: &Object, template: &Template, actor: Actor) -> Result<Object> {
    if !obj.flag(CKA_COPYABLE) {
        return Err(err(CKR_ACTION_PROHIBITED));
    }
    let map = collect(template)?;
    let tables = obj.tables();
    let mut new = obj.clone();
    let modifiable = obj.flag(CKA_MODIFIABLE);
    for (t, v) in &map {
        let spec = attrs::find(&tables, *t).ok_or(err(CKR_ATTRIBUTE_TYPE_INVALID))?;
        check_value(spec.kind, v)?;
        // A copy of an object that cannot be modified is that object again: a template may
        // repeat its values, never change one (not even its storage attributes, which would let
        // a copy lift the protection the original has).
        if !modifiable {
            if obj.get(*t) != Some(&**v) {
                return Err(err(CKR_ATTRIBUTE_READ_ONLY));
            }
            continue;
        }
        let storage = matches!(*t, CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE | CKA_DESTROYABLE);
        let settable = spec.flags & (REQ | FIXED | TOKEN_SET) == 0;
        if !storage && !settable {
            return Err(err(CKR_ATTRIBUTE_READ_ONLY));
        }
        // The one-way attributes may be given again with the value they have (sticky: spec
        // §4.4 footnotes 11 and 12), and may only move towards more protection.
        one_way(obj, *t, v, actor)?;
        kind_fixed(obj, *t, v, actor)?;
        new.attrs.insert(*t, v.clone());
    }
    // Trust is the Security Officer's to give: a copy the user makes of a trusted key is an
    // ordinary key, which cannot wrap keys that ask for a trusted wrapping key.
    if !actor.so && new.flag(CKA_TRUSTED) {
        new.attrs.insert(CKA_TRUSTED, bool_(false));
    }
    check_usages(&new, actor)?;
    check_public_key_info(&new)?;
    new.attrs.insert(CKA_UNIQUE_ID, unique_id());
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[(CK_ATTRIBUTE_TYPE, Value)]) -> Template {
        v.to_vec()
    }

    #[test]
    fn data_object_defaults_and_errors() {
        let o = build(
            &t(&[(CKA_CLASS, ulong(CKO_DATA)), (CKA_LABEL, b"x".to_vec().into())]),
            vec![],
            Origin::Created,
            Actor::default(),
        )
        .unwrap();
        assert!(!o.is_token() && !o.is_private() && o.flag(CKA_MODIFIABLE));
        assert_eq!(
            build(&t(&[(CKA_LABEL, b"x".to_vec().into())]), vec![], Origin::Created, Actor::default()),
            Err(err(CKR_TEMPLATE_INCOMPLETE))
        );
        assert_eq!(
            build(
                &t(&[(CKA_CLASS, ulong(CKO_DATA)), (CKA_MODULUS, vec![1].into())]),
                vec![],
                Origin::Created,
                Actor::default()
            ),
            Err(err(CKR_ATTRIBUTE_TYPE_INVALID))
        );
        assert_eq!(
            build(
                &t(&[(CKA_CLASS, ulong(CKO_DATA)), (CKA_TOKEN, vec![1].into()), (CKA_TOKEN, vec![0].into())]),
                vec![],
                Origin::Created,
                Actor::default()
            ),
            Err(err(CKR_TEMPLATE_INCONSISTENT))
        );
        assert_eq!(
            build(
                &t(&[(CKA_CLASS, ulong(CKO_DATA)), (CKA_TOKEN, vec![1, 2].into())]),
                vec![],
                Origin::Created,
                Actor::default()
            ),
            Err(err(CKR_ATTRIBUTE_VALUE_INVALID))
        );
    }

    #[test]
    fn class_defaults_name_each_attribute_once() {
        for class in [CKO_DATA, CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_SECRET_KEY] {
            for (data, wrap) in [(false, false), (true, false), (false, true), (true, true)] {
                let kept = class_defaults(class, data, wrap);
                assert!(kept.windows(2).all(|w| w[0].0 < w[1].0), "class {class:#x}");
                assert_eq!(kept.len(), defaults_of(class, data, wrap).len(), "class {class:#x}");
            }
        }
    }

    #[test]
    fn template_defaults_and_token_values_merge() {
        let k = build(
            &t(&[
                (CKA_CLASS, ulong(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ulong(CKK_GENERIC_SECRET)),
                (CKA_SENSITIVE, bool_(true)),
                (CKA_ENCRYPT, bool_(false)),
                (CKA_LABEL, b"k".to_vec().into()),
            ]),
            vec![(CKA_VALUE, vec![7; 32].into())],
            Origin::Generated(CKM_GENERIC_SECRET_KEY_GEN),
            Actor::default(),
        )
        .unwrap();
        // One value per type, in type order, as the map's lookups assume.
        assert!(k.attrs.iter().zip(k.attrs.iter().skip(1)).all(|(a, b)| a.0 < b.0));
        // The template's values, the defaults for what it left out, the token's own.
        assert_eq!(k.get(CKA_LABEL), Some(&b"k"[..]));
        assert!(!k.flag(CKA_ENCRYPT) && k.flag(CKA_DECRYPT) && !k.flag(CKA_EXTRACTABLE) && !k.flag(CKA_DERIVE));
        assert!(k.flag(CKA_LOCAL) && k.flag(CKA_ALWAYS_SENSITIVE) && k.flag(CKA_NEVER_EXTRACTABLE));
        assert_eq!(k.ulong(CKA_KEY_GEN_MECHANISM), Some(CKM_GENERIC_SECRET_KEY_GEN));
        assert_eq!(k.get(CKA_UNIQUE_ID).map(<[u8]>::len), Some(32));
        assert_eq!(k.get(attrs::CKA_VENDOR_DECAPSULATED), Some(&[0][..]));
        // A wrapping key: the data usages default to false.
        let w = build(
            &t(&[(CKA_CLASS, ulong(CKO_SECRET_KEY)), (CKA_KEY_TYPE, ulong(CKK_AES)), (CKA_WRAP, bool_(true))]),
            vec![(CKA_VALUE, vec![7; 16].into())],
            Origin::Generated(CKM_AES_KEY_GEN),
            Actor::default(),
        )
        .unwrap();
        assert!(w.flag(CKA_WRAP) && !w.flag(CKA_ENCRYPT) && !w.flag(CKA_DECRYPT) && !w.flag(CKA_UNWRAP));
        assert!(!w.flag(CKA_ALWAYS_SENSITIVE), "not sensitive, so never always sensitive");
    }

    /// A secret key made from a kept prototype has exactly the attributes a full build gives
    /// it: for generated, derived, unwrapped and decapsulated keys, each key type's check value
    /// (or none), given lengths, wrapping keys, the legacy rules, an SO's trusted key; and the
    /// prototype holds none of a key's value.
    #[test]
    fn prototypes_give_the_attributes_a_full_build_gives() {
        let secret = |kt: CK_KEY_TYPE, extra: &[(CK_ATTRIBUTE_TYPE, Value)]| {
            let mut v = vec![(CKA_CLASS, ulong(CKO_SECRET_KEY)), (CKA_KEY_TYPE, ulong(kt))];
            v.extend_from_slice(extra);
            v
        };
        let templates = [
            secret(
                CKK_GENERIC_SECRET,
                &[(CKA_TOKEN, bool_(false)), (CKA_SENSITIVE, bool_(true)), (CKA_DERIVE, bool_(true))],
            ),
            secret(CKK_GENERIC_SECRET, &[(CKA_VALUE_LEN, ulong(32)), (CKA_LABEL, b"kem".to_vec().into())]),
            secret(CKK_AES, &[(CKA_EXTRACTABLE, bool_(true)), (CKA_ID, vec![1, 2, 3].into())]),
            secret(CKK_AES, &[(CKA_WRAP, bool_(true)), (CKA_UNWRAP, bool_(true)), (CKA_SENSITIVE, bool_(true))]),
            secret(CKK_AES, &[(CKA_TRUSTED, bool_(true)), (CKA_WRAP, bool_(true))]),
            secret(CKK_SHA256_HMAC, &[(CKA_SIGN, bool_(true)), (CKA_VERIFY, bool_(true))]),
            secret(CKK_DES3, &[(CKA_ENCRYPT, bool_(true))]),
        ];
        let origins = [
            Origin::Generated(CKM_AES_KEY_GEN),
            Origin::Derived(false, false),
            Origin::Derived(true, true),
            Origin::Imported,
        ];
        let actors = [Actor::default(), Actor { so: true, legacy: false }, Actor { so: false, legacy: true }];
        let mut compared = 0;
        for template in &templates {
            for origin in origins {
                for actor in actors {
                    for len in [16usize, 24, 32] {
                        prototype::forget();
                        let value = |seed: u8| -> Template {
                            vec![(CKA_VALUE, (0..len as u8).map(|i| i ^ seed).collect::<Vec<_>>().into())]
                        };
                        let full = prototype::anew(template, value(1), origin, actor);
                        let first = build(template, value(1), origin, actor);
                        assert_eq!(first.is_ok(), full.is_ok());
                        let Ok(full) = full else { continue };
                        // The second and third keys come from the prototype the first left.
                        for seed in [2u8, 3] {
                            let made = build(template, value(seed), origin, actor).unwrap();
                            let anew = prototype::anew(template, value(seed), origin, actor).unwrap();
                            let strip = |o: &Object| -> Vec<(CK_ATTRIBUTE_TYPE, Value)> {
                                o.attrs
                                    .iter()
                                    .filter(|(t, _)| **t != CKA_UNIQUE_ID)
                                    .map(|(t, v)| (*t, v.clone()))
                                    .collect()
                            };
                            assert_eq!(strip(&made), strip(&anew), "{template:?} {origin:?} {actor:?} {len}");
                            assert_ne!(made.get(CKA_UNIQUE_ID), anew.get(CKA_UNIQUE_ID));
                            assert_eq!(made.get(CKA_UNIQUE_ID).map(<[u8]>::len), Some(32));
                            assert_eq!(made.get(CKA_VALUE), value(seed)[0].1.as_ref().into());
                            compared += 1;
                        }
                        assert_eq!(
                            full.get(CKA_CHECK_VALUE).is_some(),
                            build(template, value(4), origin, actor).unwrap().get(CKA_CHECK_VALUE).is_some()
                        );
                    }
                }
            }
        }
        assert!(compared > 200, "{compared}");
        // A key whose value length the type refuses is refused from a prototype as in full.
        prototype::forget();
        let t = secret(CKK_AES, &[]);
        let v = |len: usize| -> Template { vec![(CKA_VALUE, vec![5; len].into())] };
        assert!(build(&t, v(16), Origin::Imported, Actor::default()).is_ok());
        assert_eq!(build(&t, v(15), Origin::Imported, Actor::default()), Err(err(CKR_ATTRIBUTE_VALUE_INVALID)));
        // A template the rules refuse is refused each time (no prototype is kept of it).
        let bad = secret(CKK_AES, &[(CKA_TRUSTED, bool_(true))]);
        for _ in 0..2 {
            assert_eq!(build(&bad, v(16), Origin::Imported, Actor::default()), Err(err(CKR_ATTRIBUTE_READ_ONLY)));
        }
        // A check value given that is not the value's is refused from a prototype as in full.
        let named = secret(CKK_AES, &[(CKA_CHECK_VALUE, vec![1, 2, 3].into())]);
        for _ in 0..2 {
            assert_eq!(
                build(&named, v(16), Origin::Imported, Actor::default()),
                prototype::anew(&named, v(16), Origin::Imported, Actor::default())
            );
        }
    }

    /// Generated key pairs made from prototypes have exactly the attributes full builds give
    /// them: ML-KEM, ML-DSA, P-256 and Ed25519 pairs, from the mechanisms themselves, with
    /// templates that name a parameter set or curve the mechanism also gives; and a pair whose
    /// named parameter differs from the prototype's is built in full.
    #[test]
    fn generated_pairs_from_prototypes_match_full_builds() {
        use crate::mechanisms::{param::Param, registry};
        let p256: Value = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07].into();
        let ed25519: Value = vec![0x06, 0x03, 0x2b, 0x65, 0x70].into();
        let cases: [(CK_MECHANISM_TYPE, CK_KEY_TYPE, CK_ATTRIBUTE_TYPE, CK_ATTRIBUTE_TYPE, Value); 5] = [
            (CKM_ML_KEM_KEY_PAIR_GEN, CKK_ML_KEM, CKA_ENCAPSULATE, CKA_DECAPSULATE, ulong(CKP_ML_KEM_768)),
            (CKM_ML_KEM_KEY_PAIR_GEN, CKK_ML_KEM, CKA_ENCAPSULATE, CKA_DECAPSULATE, ulong(CKP_ML_KEM_512)),
            (CKM_ML_DSA_KEY_PAIR_GEN, CKK_ML_DSA, CKA_VERIFY, CKA_SIGN, ulong(CKP_ML_DSA_65)),
            (CKM_EC_KEY_PAIR_GEN, CKK_EC, CKA_VERIFY, CKA_SIGN, p256),
            (CKM_EC_EDWARDS_KEY_PAIR_GEN, CKK_EC_EDWARDS, CKA_VERIFY, CKA_SIGN, ed25519),
        ];
        let strip = |o: &Object| -> Vec<(CK_ATTRIBUTE_TYPE, Value)> {
            o.attrs.iter().filter(|(t, _)| **t != CKA_UNIQUE_ID).map(|(t, v)| (*t, v.clone())).collect()
        };
        prototype::forget();
        let mut compared = 0;
        for (mech, kt, pub_use, priv_use, param) in cases {
            let param_attr = if matches!(kt, CKK_EC | CKK_EC_EDWARDS) { CKA_EC_PARAMS } else { CKA_PARAMETER_SET };
            let public = t(&[
                (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ulong(kt)),
                (CKA_TOKEN, bool_(false)),
                (pub_use, bool_(true)),
                (param_attr, param.clone()),
            ]);
            let private = t(&[
                (CKA_CLASS, ulong(CKO_PRIVATE_KEY)),
                (CKA_KEY_TYPE, ulong(kt)),
                (CKA_SENSITIVE, bool_(true)),
                (priv_use, bool_(true)),
                (CKA_LABEL, b"pair".to_vec().into()),
            ]);
            let (pub_map, priv_map) = (collect(&public).unwrap(), collect(&private).unwrap());
            let origin = Origin::Generated(mech);
            for _ in 0..3 {
                let g = registry().get(mech).unwrap().generate_key_pair(&Param::None, &pub_map, &priv_map).unwrap();
                for (template, material) in [(&public, g.public), (&private, g.private)] {
                    let anew = prototype::anew(template, material.clone(), origin, Actor::default()).unwrap();
                    let made = build(template, material, origin, Actor::default()).unwrap();
                    assert_eq!(strip(&made), strip(&anew), "{mech:#x} {template:?}");
                    assert_eq!(made.get(CKA_UNIQUE_ID).map(<[u8]>::len), Some(32));
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 30);
        // The ML-KEM-512 template's prototype with ML-KEM-768 material: the parameter set the
        // template names is not the material's, refused as a full build refuses it.
        let public = t(&[
            (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
            (CKA_KEY_TYPE, ulong(CKK_ML_KEM)),
            (CKA_PARAMETER_SET, ulong(CKP_ML_KEM_512)),
        ]);
        let material = |set| -> Template {
            let pub_map = collect(&t(&[(CKA_PARAMETER_SET, ulong(set))])).unwrap();
            registry()
                .get(CKM_ML_KEM_KEY_PAIR_GEN)
                .unwrap()
                .generate_key_pair(&Param::None, &pub_map, &AttrMap::new())
                .unwrap()
                .public
        };
        let origin = Origin::Generated(CKM_ML_KEM_KEY_PAIR_GEN);
        assert!(build(&public, material(CKP_ML_KEM_512), origin, Actor::default()).is_ok());
        assert!(build(&public, material(CKP_ML_KEM_512), origin, Actor::default()).is_ok());
        assert_eq!(
            build(&public, material(CKP_ML_KEM_768), origin, Actor::default()),
            Err(err(CKR_ATTRIBUTE_READ_ONLY))
        );
    }

    #[test]
    fn secret_key_rules() {
        let k = build(
            &t(&[(CKA_CLASS, ulong(CKO_SECRET_KEY)), (CKA_KEY_TYPE, ulong(CKK_AES)), (CKA_VALUE, vec![7; 16].into())]),
            vec![],
            Origin::Created,
            Actor::default(),
        )
        .unwrap();
        // Not sensitive by default (the specification's default), but not extractable: its value
        // stays inside all the same.
        assert!(!k.flag(CKA_SENSITIVE) && !k.flag(CKA_EXTRACTABLE) && !k.flag(CKA_LOCAL));
        assert!(!k.material_readable());
        assert_eq!(k.ulong(CKA_VALUE_LEN), Some(16));
        let (plain, secret) = k.split();
        assert!(secret.contains_key(&CKA_VALUE) && !plain.contains_key(&CKA_VALUE));
        let k = apply_set(&k, &t(&[(CKA_SENSITIVE, vec![1].into())]), Actor::default()).unwrap();
        assert_eq!(
            apply_set(&k, &t(&[(CKA_SENSITIVE, vec![0].into())]), Actor::default()),
            Err(err(CKR_ATTRIBUTE_READ_ONLY))
        );
        assert_eq!(
            apply_set(&k, &t(&[(CKA_VALUE, vec![1; 16].into())]), Actor::default()),
            Err(err(CKR_ATTRIBUTE_READ_ONLY))
        );
        assert_eq!(
            apply_set(&k, &t(&[(CKA_TRUSTED, vec![1].into())]), Actor::default()),
            Err(err(CKR_ATTRIBUTE_READ_ONLY))
        );
        assert!(apply_set(&k, &t(&[(CKA_TRUSTED, vec![1].into())]), Actor { so: true, ..Default::default() }).is_ok());
        let fixed = apply_set(&k, &t(&[(CKA_COPYABLE, vec![0].into())]), Actor::default()).unwrap();
        assert_eq!(apply_copy(&fixed, &vec![], Actor::default()), Err(err(CKR_ACTION_PROHIBITED)));
        assert_eq!(
            build(
                &t(&[
                    (CKA_CLASS, ulong(CKO_SECRET_KEY)),
                    (CKA_KEY_TYPE, ulong(CKK_AES)),
                    (CKA_VALUE, vec![7; 15].into())
                ]),
                vec![],
                Origin::Created,
                Actor::default()
            ),
            Err(err(CKR_ATTRIBUTE_VALUE_INVALID))
        );
    }
}
