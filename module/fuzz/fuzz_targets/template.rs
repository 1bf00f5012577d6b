//! Templates from caller memory (`abi::read_template`): `CK_ATTRIBUTE` arrays the harness builds
//! from the fuzz input, with nested templates (`CKA_WRAP_TEMPLATE` …), templates that contain
//! themselves or an ancestor, NULL values, and truncated lengths. Every pointer is a buffer the
//! harness owns and every length is at most that buffer's size, as the caller's contract says.
//! What reads must have at most one level of nesting.
#![no_main]
use arbitrary::Arbitrary;
use cryptoki_sys::*;
use libfuzzer_sys::fuzz_target;
use std::ffi::c_void;

const TYPES: [CK_ATTRIBUTE_TYPE; 14] = [
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_DERIVE_TEMPLATE,
    CKA_CLASS,
    CKA_TOKEN,
    CKA_LABEL,
    CKA_VALUE,
    CKA_START_DATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_KEY_TYPE,
    CKA_VALUE_LEN,
    CKA_ENCRYPT,
    CKA_ID,
    CKA_VENDOR_DEFINED | 1,
];

#[derive(Arbitrary, Debug)]
enum Val {
    Bytes(Vec<u8>),
    Nested(Vec<Attr>),
    /// The array holding this attribute, `up` levels up (0: its own array).
    Ancestor(u8),
    /// NULL with this length.
    Null(u16),
}

#[derive(Arbitrary, Debug)]
struct Attr {
    ty: u8,
    raw_ty: Option<u32>,
    val: Val,
    /// Shortens the length by this much (never lengthens it).
    cut: u8,
}

/// Buffers that must outlive the call.
#[derive(Default)]
struct Arena {
    arrays: Vec<Vec<CK_ATTRIBUTE>>,
    bytes: Vec<Vec<u8>>,
}

/// Builds the array for `attrs`; `ancestors` are the arrays above (pointer, length), innermost last.
fn build(
    arena: &mut Arena,
    attrs: &[Attr],
    ancestors: &mut Vec<(*mut CK_ATTRIBUTE, usize)>,
    depth: usize,
) -> (*mut CK_ATTRIBUTE, usize) {
    // Capacity fixed up front: the array's address is known before its elements, so an element
    // can point at it.
    let mut v: Vec<CK_ATTRIBUTE> = Vec::with_capacity(attrs.len().max(1));
    let me = (v.as_mut_ptr(), attrs.len());
    ancestors.push(me);
    let size = std::mem::size_of::<CK_ATTRIBUTE>();
    for a in attrs {
        let type_ = a.raw_ty.map(|t| t as CK_ATTRIBUTE_TYPE).unwrap_or(TYPES[a.ty as usize % TYPES.len()]);
        let (p, len): (*mut c_void, usize) = match &a.val {
            Val::Bytes(b) => {
                let mut b = b.clone();
                let p = b.as_mut_ptr() as *mut c_void;
                let len = b.len().saturating_sub(a.cut as usize);
                arena.bytes.push(b);
                (if len == 0 && a.cut & 1 == 1 { std::ptr::null_mut() } else { p }, len)
            }
            Val::Nested(inner) if depth < 6 => {
                let (p, n) = build(arena, inner, ancestors, depth + 1);
                (p as *mut c_void, (n * size).saturating_sub(a.cut as usize))
            }
            Val::Nested(_) => (std::ptr::null_mut(), 0),
            Val::Ancestor(up) => {
                let i = ancestors.len() - 1 - (*up as usize % ancestors.len());
                let (p, n) = ancestors[i];
                (p as *mut c_void, (n * size).saturating_sub(a.cut as usize))
            }
            Val::Null(n) => (std::ptr::null_mut(), *n as usize),
        };
        v.push(CK_ATTRIBUTE { type_, pValue: p, ulValueLen: len as CK_ULONG });
    }
    debug_assert_eq!(v.as_mut_ptr(), me.0);
    ancestors.pop();
    arena.arrays.push(v);
    me
}

fuzz_target!(|attrs: Vec<Attr>| {
    let mut arena = Arena::default();
    let (p, n) = build(&mut arena, &attrs, &mut Vec::new(), 0);
    let t = unsafe { tessera_pkcs11::abi::read_template(p, n as CK_ULONG) };
    if let Ok(t) = t {
        assert_eq!(t.len(), n);
        for (ty, v) in &t {
            if tessera_pkcs11::object::attrs::kind_of(*ty) == tessera_pkcs11::object::attrs::Kind::Template {
                // One level of nesting at most: a nested template holds no template.
                let inner = tessera_pkcs11::object::decode_template(v).expect("nested template decodes");
                for (ity, _) in &inner {
                    assert!(
                        tessera_pkcs11::object::attrs::kind_of(*ity) != tessera_pkcs11::object::attrs::Kind::Template
                    );
                }
            }
        }
    }
});
