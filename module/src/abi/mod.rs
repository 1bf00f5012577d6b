//! The C ABI: one thin shim per entry point. Each checks pointers and lengths, converts C types to
//! Rust ones, calls the safe core, and converts the result back. Every entry point runs inside
//! [`guard`], so a panic never crosses into the host: it becomes `CKR_GENERAL_ERROR`.
//!
//! This module and its children are the only place in the crate with `unsafe` code.

#![allow(non_snake_case, clippy::missing_safety_doc)]

pub mod crypt;
pub mod digest;
pub mod general;
pub mod interface;
mod interface_tables;
pub mod keys;
pub mod message;
pub mod objects;
pub mod params;
pub mod params_ec;
pub mod params_rsa;
pub mod sessions;
pub mod sign;
pub mod unsupported;

pub use crypt::*;
pub use digest::*;
pub use general::*;
pub use interface::*;
pub use keys::*;
pub use message::*;
pub use objects::*;
pub use sessions::*;
pub use sign::*;
pub use unsupported::*;

use crate::error::{err, Result};
use crate::module::Module;
use crate::object::{attrs, Template};
use cryptoki_sys::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs an entry point's body: converts the core's `Error` to its `CK_RV` (the one place this
/// happens) and catches panics.
pub fn guard(name: &'static str, f: impl FnOnce() -> Result<()>) -> CK_RV {
    let rv = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => e.rv(),
        Err(_) => {
            tracing::error!("{name}: internal error (panic caught at the ABI boundary)");
            CKR_GENERAL_ERROR
        }
    };
    crate::audit_hook::call(name, rv);
    rv
}

/// Body of every entry point this release does not implement.
pub fn not_supported(name: &'static str) -> CK_RV {
    guard(name, || {
        module()?;
        Err(err(CKR_FUNCTION_NOT_SUPPORTED))
    })
}

/// Runs the body of a call that continues or finishes an operation: on failure (other than a
/// short buffer) the operation ends, as the specification requires.
pub fn ending(
    m: &Module,
    h: CK_SESSION_HANDLE,
    op: crate::services::crypto::OpKind,
    f: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let r = f();
    if let Err(e) = r {
        m.end_after_error(h, op, e.rv());
    }
    r
}

/// The initialised module for a cryptographic or object service: `CKR_CRYPTOKI_NOT_INITIALIZED`
/// before `C_Initialize`, `CKR_GENERAL_ERROR` in the error state.
pub fn module() -> Result<crate::state::ModuleRef> {
    let m = crate::state::get()?;
    if m.in_error() {
        return Err(err(CKR_GENERAL_ERROR));
    }
    Ok(m)
}

/// The initialised module for the services that stay available in the error state (information,
/// slot and session bookkeeping, `C_Finalize`).
pub fn module_any() -> Result<crate::state::ModuleRef> {
    crate::state::get()
}

/// A required output pointer.
pub unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T> {
    p.as_mut().ok_or(err(CKR_ARGUMENTS_BAD))
}

/// An input buffer; NULL is allowed only with length 0.
pub unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    // A length no buffer can have ([`possible`]) is the caller's error, answered before anything
    // is read or allocated for it.
    if p.is_null() || !possible(p, len) {
        return Err(err(CKR_ARGUMENTS_BAD));
    }
    Ok(std::slice::from_raw_parts(p, len as usize))
}

/// Whether `n` items of `T` from `p` can be a buffer at all: no buffer can be longer than
/// `isize::MAX` bytes (a slice that claims to be is undefined), nor reach past the top of the user
/// address space: no 64-bit Linux maps anything above 2^57 (x86-64 with 5-level paging stops at
/// 2^56, arm64 at 2^52).
pub fn possible<T>(p: *const T, n: CK_ULONG) -> bool {
    let size = (n as u128) * std::mem::size_of::<T>() as u128;
    size <= isize::MAX as u128 && (p as u64 as u128) + size <= ADDRESS_SPACE_END as u128
}

/// A caller's writable buffer of `n` items; `CKR_ARGUMENTS_BAD` for a NULL one or one that
/// cannot exist ([`possible`]).
pub unsafe fn slice_mut<'a, T>(p: *mut T, n: CK_ULONG) -> Result<&'a mut [T]> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() || !possible(p, n) {
        return Err(err(CKR_ARGUMENTS_BAD));
    }
    Ok(std::slice::from_raw_parts_mut(p, n as usize))
}

/// The end of the largest user address space of the platforms Tessera runs on (see [`possible`]).
const ADDRESS_SPACE_END: u64 = if usize::BITS == 64 { 1 << 57 } else { u32::MAX as u64 + 1 };

/// Writes a list under the two-call length convention: a NULL `p` asks for the count only.
pub unsafe fn write_list<T: Copy>(items: &[T], p: *mut T, count: *mut CK_ULONG) -> Result<()> {
    let count = out(count)?;
    let n = items.len() as CK_ULONG;
    if p.is_null() {
        *count = n;
        return Ok(());
    }
    if *count < n {
        *count = n;
        return Err(err(CKR_BUFFER_TOO_SMALL));
    }
    std::ptr::copy_nonoverlapping(items.as_ptr(), p, items.len());
    *count = n;
    Ok(())
}

/// The capacity of a caller's output buffer: `None` for a NULL buffer (a length query).
pub unsafe fn capacity(p: *const u8, len: *mut CK_ULONG) -> Result<Option<usize>> {
    let len = out(len)?;
    if p.is_null() {
        return Ok(None);
    }
    // A claimed size no buffer can have is taken as the most that could be there: no output
    // comes near it, and the buffer is never addressed beyond what is written.
    let most = (ADDRESS_SPACE_END.saturating_sub(p as u64)).min(isize::MAX as u64);
    Ok(Some((*len).min(most) as usize))
}

/// Delivers a finishing call's output under the two-call convention.
pub unsafe fn write_output(o: crate::services::digest::Output, p: *mut u8, len: *mut CK_ULONG) -> Result<()> {
    use crate::services::digest::Output;
    let l = out(len)?;
    match o {
        Output::Length { len, too_small } => {
            *l = len as CK_ULONG;
            if too_small {
                Err(err(CKR_BUFFER_TOO_SMALL))
            } else {
                Ok(())
            }
        }
        Output::Done(v) => {
            std::ptr::copy_nonoverlapping(v.as_ptr(), p, v.len());
            *l = v.len() as CK_ULONG;
            Ok(())
        }
        Output::Written(n) => {
            *l = n as CK_ULONG;
            Ok(())
        }
    }
}

/// A blank-padded fixed-size string field, as every `CK_*_INFO` has.
pub fn pad<const N: usize>(s: &str) -> [CK_UTF8CHAR; N] {
    let mut a = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    a[..end].copy_from_slice(&s.as_bytes()[..end]);
    a
}

/// A blank-padded label from the caller (32 bytes), trimmed.
pub unsafe fn label(p: *const CK_UTF8CHAR) -> Result<String> {
    let raw = std::slice::from_raw_parts(p.as_ref().ok_or(err(CKR_ARGUMENTS_BAD))?, 32);
    let s = String::from_utf8_lossy(raw);
    Ok(s.trim_end_matches([' ', '\0']).to_string())
}

/// Most attributes a template may hold.
pub const MAX_TEMPLATE: CK_ULONG = 4096;
/// Longest attribute value accepted (16 MiB).
pub const MAX_ATTRIBUTE_LEN: CK_ULONG = 16 << 20;
/// Longest mechanism parameter accepted (1 MiB).
pub const MAX_PARAMETER_LEN: CK_ULONG = 1 << 20;

/// Reads an application template, converting nested templates (`CKF_ARRAY_ATTRIBUTE`) into the
/// core's encoding.
pub unsafe fn read_template(p: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Template> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() || n > MAX_TEMPLATE {
        return Err(err(CKR_ARGUMENTS_BAD));
    }
    let list = std::slice::from_raw_parts(p, n as usize);
    let mut t = Vec::with_capacity(list.len());
    for a in list {
        // A length that cannot be right for the attribute is refused before anything is read,
        // so a wild length never makes the module read past the caller's buffer.
        let kind = attrs::kind_of(a.type_);
        let len_ok = match kind {
            attrs::Kind::Bool => a.ulValueLen == 1,
            attrs::Kind::Ulong => a.ulValueLen == std::mem::size_of::<CK_ULONG>() as CK_ULONG,
            attrs::Kind::Date => a.ulValueLen == 0 || a.ulValueLen == 8,
            attrs::Kind::Template => a.ulValueLen <= MAX_TEMPLATE * std::mem::size_of::<CK_ATTRIBUTE>() as CK_ULONG,
            attrs::Kind::Bytes | attrs::Kind::Mechanisms => a.ulValueLen <= MAX_ATTRIBUTE_LEN,
        };
        if !len_ok {
            return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
        }
        let v = if kind == attrs::Kind::Template {
            let size = std::mem::size_of::<CK_ATTRIBUTE>() as CK_ULONG;
            if a.ulValueLen % size != 0 {
                return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
            }
            let nested = read_template(a.pValue as *const CK_ATTRIBUTE, a.ulValueLen / size)?;
            crate::object::encode_template(&nested)?.into()
        } else {
            let v = bytes(a.pValue as *const u8, a.ulValueLen).map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
            // Flags and numbers take the shared constant encodings where there is one; a flag
            // byte other than 0 or 1 stays as given, for the template checks to refuse.
            match (kind, v, crate::object::as_ulong(v)) {
                (attrs::Kind::Bool, [b @ (0 | 1)], _) => crate::object::bool_(*b == 1),
                (attrs::Kind::Ulong, _, Some(n)) => crate::object::ulong(n),
                _ => v.to_vec().into(),
            }
        };
        t.push((a.type_, v));
    }
    Ok(t)
}

/// Writes one attribute value into a caller's `CK_ATTRIBUTE` (spec §5.8 `C_GetAttributeValue`
/// rules 3–5); `false` when the buffer is too small.
pub unsafe fn fill_attribute(a: &mut CK_ATTRIBUTE, v: &[u8]) -> Result<bool> {
    if attrs::kind_of(a.type_) == attrs::Kind::Template {
        let nested = crate::object::decode_template(v)?;
        let need = (nested.len() * std::mem::size_of::<CK_ATTRIBUTE>()) as CK_ULONG;
        if a.pValue.is_null() {
            a.ulValueLen = need;
            return Ok(true);
        }
        if a.ulValueLen < need {
            a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
            return Ok(false);
        }
        let inner = std::slice::from_raw_parts_mut(a.pValue as *mut CK_ATTRIBUTE, nested.len());
        let mut ok = true;
        for (slot, (t, val)) in inner.iter_mut().zip(nested.iter()) {
            slot.type_ = *t;
            ok &= fill_attribute(slot, val)?;
        }
        a.ulValueLen = need;
        return Ok(ok);
    }
    if a.pValue.is_null() {
        a.ulValueLen = v.len() as CK_ULONG;
        Ok(true)
    } else if (a.ulValueLen as usize) >= v.len() {
        std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len());
        a.ulValueLen = v.len() as CK_ULONG;
        Ok(true)
    } else {
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        Ok(false)
    }
}

/// A mechanism from the caller: its type and parameter bytes, made self-contained
/// (`params.rs`: parameter structs with pointers are read and re-encoded here).
pub unsafe fn mechanism(p: *const CK_MECHANISM, function: CK_FLAGS) -> Result<(CK_MECHANISM_TYPE, Vec<u8>)> {
    let m = p.as_ref().ok_or(err(CKR_ARGUMENTS_BAD))?;
    // A mechanism that cannot perform the function is invalid for it, whatever its parameter.
    crate::mechanisms::registry().can(m.mechanism, function)?;
    if m.ulParameterLen > MAX_PARAMETER_LEN {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok((m.mechanism, params::convert(m.mechanism, m.pParameter as *const std::ffi::c_void, m.ulParameterLen)?))
}

/// Whether this process runs in secure-execution mode: the kernel's `AT_SECURE` auxiliary value,
/// set for setuid and setgid programs and programs with file capabilities, whose environment
/// the configuration then must not trust (see `config`).
pub fn secure_execution() -> bool {
    // SAFETY: getauxval reads the process's auxiliary vector; it has no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}
