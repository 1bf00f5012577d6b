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
pub mod vendor;

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
/// happens, where a failure's cause goes to the diagnostic log), catches panics, and ends the
/// call's decision record (`record::finish`: the approved indicator and the audit hook).
pub fn guard(name: &'static str, f: impl FnOnce() -> Result<()>) -> CK_RV {
    let rv = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => e.rv(),
        Err(_) => {
            tracing::error!("{name}: internal error (panic caught at the ABI boundary)");
            CKR_GENERAL_ERROR
        }
    };
    // The record (the indicator, the audit hook's file I/O) is caught as well: no panic crosses
    // the boundary.
    let rv = catch_unwind(|| crate::record::finish(name, rv)).unwrap_or_else(|_| {
        tracing::error!("{name}: internal error (panic caught while recording the call)");
        CKR_GENERAL_ERROR
    });
    // The call's output reaches the caller only now that its record is kept: a call the log
    // refused hands out nothing (the output is wiped as it is dropped).
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if rv == CKR_OK {
            for d in p.drain(..) {
                // SAFETY: each delivery's pointers were checked when it was made, in this call.
                unsafe { d.deliver() };
            }
        } else {
            p.clear();
        }
    });
    rv
}

/// Output a call hands back to its caller once the call's record is kept ([`guard`]).
enum Delivery {
    /// Bytes into a caller's buffer, and their count into `len` (unless NULL).
    Bytes { data: zeroize::Zeroizing<Vec<u8>>, p: *mut u8, len: *mut CK_ULONG },
    /// [`Delivery::Bytes`] of an output that is public by its nature (a KEM ciphertext): not
    /// wiped when dropped, which for a 1,568-byte ciphertext cost more than the rest of the
    /// delivery.
    Public { data: Vec<u8>, p: *mut u8, len: *mut CK_ULONG },
    /// An object handle.
    Handle { p: *mut CK_OBJECT_HANDLE, h: CK_OBJECT_HANDLE },
}

impl Delivery {
    /// Writes the output, in the order it was made (output and length may share bytes).
    unsafe fn deliver(self) {
        match self {
            Delivery::Bytes { data, p, len } => write_bytes(&data, p, len),
            Delivery::Public { data, p, len } => write_bytes(&data, p, len),
            Delivery::Handle { p, h } => put(p, h),
        }
    }
}

/// Writes `data` to `p` and its length to `len` (unless NULL), in that order.
unsafe fn write_bytes(data: &[u8], p: *mut u8, len: *mut CK_ULONG) {
    if !data.is_empty() {
        std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
    }
    if !len.is_null() {
        put(len, data.len() as CK_ULONG);
    }
}

thread_local! {
    /// The running call's output, held until its record is kept.
    static PENDING: std::cell::RefCell<Vec<Delivery>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn defer(d: Delivery) {
    PENDING.with(|p| p.borrow_mut().push(d));
}

/// Hands the caller the handle of an object the call made, through a pointer checked by
/// [`out_ptr`], once the call's record is kept; if it cannot be, the object is withdrawn.
pub unsafe fn deliver_handle(p: *mut CK_OBJECT_HANDLE, h: CK_OBJECT_HANDLE) {
    crate::record::created(h);
    defer(Delivery::Handle { p, h });
}

/// Hands the caller `v` in its buffer `p` (`n` bytes, checked by the caller's reader), without
/// a length, once the call's record is kept.
pub unsafe fn deliver_bytes(v: &[u8], p: *mut u8, n: usize) -> Result<()> {
    if v.len() > n {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    defer(Delivery::Bytes { data: zeroize::Zeroizing::new(copy(v)?), p, len: std::ptr::null_mut() });
    Ok(())
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
    op: crate::operation::Op,
    f: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let r = f();
    if let Err(e) = &r {
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
    room_for(len as usize)?;
    Ok(std::slice::from_raw_parts(p, len as usize))
}

/// Inputs from this size on are checked against the memory the process can still allocate.
const LARGE_INPUT: usize = 64 << 20;

/// How many copies of an input the core may make while it works on it (the input, a parameter
/// encoding and its decoding, or the input and its output).
const COPIES: usize = 4;

/// `CKR_HOST_MEMORY` unless the process could allocate a few copies of a `len`-byte input now.
///
/// An allocation that fails aborts a Rust process (there is no stable way to make it an error),
/// so a caller's input so large that the work on it cannot be allocated would take the whole
/// application down. Inputs of ordinary size are not checked; for a large one the memory is
/// reserved (address space only: no page is touched) and given back at once.
///
/// The reservation alone does not decide where the kernel overcommits memory without limit
/// (`vm.overcommit_memory = 1`): there, copies larger than the machine's memory and swap are
/// refused first, as the copying would end in the out-of-memory killer.
pub fn room_for(len: usize) -> Result<()> {
    if len < LARGE_INPUT {
        return Ok(());
    }
    let need = len.saturating_mul(COPIES);
    if need as u128 > machine_memory() {
        return Err(err(CKR_HOST_MEMORY));
    }
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(need).map_err(|_| err(CKR_HOST_MEMORY))
}

/// The machine's memory and swap in bytes (`sysinfo(2)`); unbounded if the call fails.
fn machine_memory() -> u128 {
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: sysinfo fills the structure it is given.
    if unsafe { libc::sysinfo(&mut si) } != 0 {
        return u128::MAX;
    }
    (si.totalram as u128 + si.totalswap as u128) * si.mem_unit.max(1) as u128
}

/// A copy of a caller's buffer, `CKR_HOST_MEMORY` when it cannot be allocated.
pub fn copy(b: &[u8]) -> Result<Vec<u8>> {
    crate::error::try_copy(b)
}

/// Whether `n` items of `T` from `p` can be a buffer at all: no buffer can be longer than
/// `isize::MAX` bytes (a slice that claims to be is undefined), start in the first page (never
/// mapped: Linux's `vm.mmap_min_addr` is at least one page; a small number where a pointer is
/// expected is a field of another structure, such as `CK_GCM_MESSAGE_PARAMS.ivGenerator` read as
/// `CK_GCM_PARAMS.pAAD`), nor reach past the top of the user address space: no 64-bit Linux maps
/// anything above 2^57 (x86-64 with 5-level paging stops at 2^56, arm64 at 2^52).
pub fn possible<T>(p: *const T, n: CK_ULONG) -> bool {
    let size = (n as u128) * std::mem::size_of::<T>() as u128;
    (p as usize) >= LOWEST_ADDRESS
        && size <= isize::MAX as u128
        && (p as u64 as u128) + size <= ADDRESS_SPACE_END as u128
}

/// The lowest address a buffer can have (see [`possible`]).
pub const LOWEST_ADDRESS: usize = 4096;

/// Whether the byte ranges `[a, a + a_len)` and `[b, b + b_len)` share a byte.
pub fn overlap(a: *const u8, a_len: usize, b: *const u8, b_len: usize) -> bool {
    let (a, b) = (a as usize, b as usize);
    a_len != 0 && b_len != 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

/// An input of a call that also writes into caller memory: borrowed when it shares no byte with
/// any of the outputs, else copied first, so the core never reads the caller's input while the
/// same bytes are written (in-place calls, with the output at the input's address, and partly
/// overlapping buffers both give what separate buffers give). Copies are wiped when dropped: an
/// input may be a plaintext or key material.
pub enum Input<'a> {
    Borrowed(&'a [u8]),
    Copied(zeroize::Zeroizing<Vec<u8>>),
}

impl std::ops::Deref for Input<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Borrowed(b) => b,
            Input::Copied(v) => v,
        }
    }
}

/// Reads an input buffer as [`bytes`] does, copying it when it overlaps one of `outputs`
/// (pointer, capacity; NULL ones write nothing).
pub unsafe fn input<'a>(p: *const u8, len: CK_ULONG, outputs: &[(*const u8, usize)]) -> Result<Input<'a>> {
    let b = bytes(p, len)?;
    if outputs.iter().any(|&(o, n)| !o.is_null() && overlap(b.as_ptr(), b.len(), o, n)) {
        Ok(Input::Copied(zeroize::Zeroizing::new(copy(b)?)))
    } else {
        Ok(Input::Borrowed(b))
    }
}

/// The caller memory a call with an output buffer writes: the buffer (`cap` bytes, none for a
/// length query) and its length.
pub fn outputs(p: *mut u8, cap: Option<usize>, len: *mut CK_ULONG) -> [(*const u8, usize); 2] {
    [(p, cap.unwrap_or(0)), (len as *const u8, std::mem::size_of::<CK_ULONG>())]
}

/// A required output pointer, checked now and written only at the end of the call ([`put`]), so
/// no reference to it is alive while the call reads inputs that may share its bytes.
pub fn out_ptr<T>(p: *mut T) -> Result<*mut T> {
    if p.is_null() {
        return Err(err(CKR_ARGUMENTS_BAD));
    }
    Ok(p)
}

/// Writes a value through an output pointer checked by [`out_ptr`].
pub unsafe fn put<T>(p: *mut T, v: T) {
    std::ptr::write_unaligned(p, v)
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

/// Writes a list under the two-call length convention: a NULL `p` asks for the count only. The
/// count is read and written through its pointer (no reference is held while the list is copied:
/// the two may share bytes).
pub unsafe fn write_list<T: Copy>(items: &[T], p: *mut T, count: *mut CK_ULONG) -> Result<()> {
    let count = out_ptr(count)?;
    let n = items.len() as CK_ULONG;
    if p.is_null() {
        put(count, n);
        return Ok(());
    }
    if std::ptr::read_unaligned(count) < n {
        put(count, n);
        return Err(err(CKR_BUFFER_TOO_SMALL));
    }
    if n != 0 && !possible(p, n) {
        return Err(err(CKR_ARGUMENTS_BAD));
    }
    std::ptr::copy_nonoverlapping(items.as_ptr(), p, items.len());
    put(count, n);
    Ok(())
}

/// The capacity of a caller's output buffer: `None` for a NULL buffer (a length query).
pub unsafe fn capacity(p: *const u8, len: *mut CK_ULONG) -> Result<Option<usize>> {
    let len = std::ptr::read_unaligned(out_ptr(len)?);
    if p.is_null() {
        return Ok(None);
    }
    // A buffer of no bytes is never written, wherever it points (an empty buffer's pointer may
    // be any non-NULL value).
    if len != 0 && (p as usize) < LOWEST_ADDRESS {
        return Err(err(CKR_ARGUMENTS_BAD));
    }
    // A claimed size no buffer can have is taken as the most that could be there: no output
    // comes near it, and the buffer is never addressed beyond what is written.
    let most = (ADDRESS_SPACE_END.saturating_sub(p as u64)).min(isize::MAX as u64);
    Ok(Some(len.min(most) as usize))
}

/// Delivers a finishing call's output under the two-call convention. The output and its length
/// are written through their pointers (they may share bytes), the output only once the call's
/// record is kept ([`guard`]); a length alone (a query, a buffer too small) at once.
pub unsafe fn write_output(o: crate::services::digest::Output, p: *mut u8, len: *mut CK_ULONG) -> Result<()> {
    use crate::services::digest::Output;
    let l = out_ptr(len)?;
    match o {
        Output::Length { len, too_small } => {
            if !too_small {
                crate::record::length_only();
            }
            put(l, len as CK_ULONG);
            if too_small {
                Err(err(CKR_BUFFER_TOO_SMALL))
            } else {
                Ok(())
            }
        }
        // Held until the call's record is kept ([`guard`]); wiped if it never is (it may be a
        // plaintext).
        Output::Done(v) => {
            defer(Delivery::Bytes { data: zeroize::Zeroizing::new(v), p, len: l });
            Ok(())
        }
    }
}

/// [`write_output`] of an output that is public by its nature (a KEM ciphertext), so not wiped.
/// Only for outputs that never depend on a secret an attacker lacks.
pub unsafe fn write_public_output(v: Vec<u8>, p: *mut u8, len: *mut CK_ULONG) -> Result<()> {
    let l = out_ptr(len)?;
    defer(Delivery::Public { data: v, p, len: l });
    Ok(())
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

/// Most bytes of attribute values one template may hold, its nested templates' included (64 MiB).
pub const MAX_TEMPLATE_BYTES: usize = 64 << 20;

/// Reads an application template, converting nested templates (`CKF_ARRAY_ATTRIBUTE`) into the
/// core's encoding.
///
/// A template may hold nested templates (`CKA_WRAP_TEMPLATE`, `CKA_UNWRAP_TEMPLATE`,
/// `CKA_DERIVE_TEMPLATE`), one level deep: an attribute of a nested template that is itself a
/// template is `CKR_ATTRIBUTE_VALUE_INVALID` (no key has a template-valued attribute that could
/// be given there), which also refuses a template that contains itself. All the attributes read,
/// nested ones included, count against [`MAX_TEMPLATE`], and all their values against
/// [`MAX_TEMPLATE_BYTES`].
pub unsafe fn read_template(p: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Template> {
    let mut budget = Budget { attributes: MAX_TEMPLATE as usize, bytes: MAX_TEMPLATE_BYTES };
    read_level(p, n, false, &mut budget)
}

/// What is left of a template's limits while it is read.
struct Budget {
    attributes: usize,
    bytes: usize,
}

unsafe fn read_level(p: *const CK_ATTRIBUTE, n: CK_ULONG, nested: bool, budget: &mut Budget) -> Result<Template> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() || !possible(p, n) {
        return Err(err(if nested { CKR_ATTRIBUTE_VALUE_INVALID } else { CKR_ARGUMENTS_BAD }));
    }
    if n > budget.attributes as CK_ULONG {
        return Err(err(if nested { CKR_ATTRIBUTE_VALUE_INVALID } else { CKR_ARGUMENTS_BAD }));
    }
    budget.attributes -= n as usize;
    // Copied, not borrowed: an attribute array may share bytes with the values it points at.
    // A template of a few attributes, the usual one, is copied to the stack (no allocation).
    const ON_STACK: usize = 16;
    let given = std::slice::from_raw_parts(p, n as usize);
    let mut small = [CK_ATTRIBUTE { type_: 0, pValue: std::ptr::null_mut(), ulValueLen: 0 }; ON_STACK];
    let large: Vec<CK_ATTRIBUTE>;
    let list: &[CK_ATTRIBUTE] = if given.len() <= ON_STACK {
        small[..given.len()].copy_from_slice(given);
        &small[..given.len()]
    } else {
        large = given.to_vec();
        &large
    };
    let mut t = Vec::with_capacity(list.len());
    for a in list {
        // A length that cannot be right for the attribute is refused before anything is read,
        // so a wild length never makes the module read past the caller's buffer.
        let kind = attrs::kind_of(a.type_);
        let len_ok = match kind {
            attrs::Kind::Bool => a.ulValueLen == 1,
            attrs::Kind::Ulong => a.ulValueLen == std::mem::size_of::<CK_ULONG>() as CK_ULONG,
            attrs::Kind::Date => a.ulValueLen == 0 || a.ulValueLen == 8,
            // One level of nesting (see above).
            attrs::Kind::Template => {
                !nested && a.ulValueLen <= MAX_TEMPLATE * std::mem::size_of::<CK_ATTRIBUTE>() as CK_ULONG
            }
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
            let inner = read_level(a.pValue as *const CK_ATTRIBUTE, a.ulValueLen / size, true, budget)?;
            crate::object::encode_template(&inner)?.into()
        } else {
            let len = a.ulValueLen as usize;
            if len > budget.bytes {
                return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
            }
            budget.bytes -= len;
            let v = bytes(a.pValue as *const u8, a.ulValueLen).map_err(|e| match e.rv() {
                CKR_HOST_MEMORY => e,
                _ => err(CKR_ATTRIBUTE_VALUE_INVALID),
            })?;
            // Flags and numbers take the shared constant encodings where there is one; a flag
            // byte other than 0 or 1 stays as given, for the template checks to refuse.
            match (kind, v, crate::object::as_ulong(v)) {
                (attrs::Kind::Bool, [b @ (0 | 1)], _) => crate::object::bool_(*b == 1),
                (attrs::Kind::Ulong, _, Some(n)) => crate::object::ulong(n),
                _ => copy(v)?.into(),
            }
        };
        // One number for an attribute that has two (`attrs::canonical`).
        t.push((attrs::canonical(a.type_), v));
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
        let inner = a.pValue as *mut CK_ATTRIBUTE;
        if !nested.is_empty() && !possible(inner, nested.len() as CK_ULONG) {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        // Entry by entry through the pointer, without a reference: the nested array may share
        // bytes with its parent or with the values written.
        let mut ok = true;
        for (i, (t, val)) in nested.iter().enumerate() {
            let mut slot = std::ptr::read_unaligned(inner.add(i));
            slot.type_ = *t;
            ok &= fill_attribute(&mut slot, val)?;
            std::ptr::write_unaligned(inner.add(i), slot);
        }
        a.ulValueLen = need;
        return Ok(ok);
    }
    if a.pValue.is_null() {
        a.ulValueLen = v.len() as CK_ULONG;
        Ok(true)
    } else if (a.ulValueLen as usize) >= v.len() {
        if !v.is_empty() && !possible(a.pValue as *const u8, v.len() as CK_ULONG) {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len());
        a.ulValueLen = v.len() as CK_ULONG;
        Ok(true)
    } else {
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        Ok(false)
    }
}

/// A mechanism from the caller: its type and its parameter, decoded (`params.rs`: parameter
/// structs are read, their pointers followed, here).
pub unsafe fn mechanism(
    p: *const CK_MECHANISM,
    op: crate::operation::Op,
) -> Result<(CK_MECHANISM_TYPE, crate::mechanisms::Param)> {
    mechanism_of(&*module()?, p, op)
}

/// [`mechanism`] for a call that holds the module already.
pub unsafe fn mechanism_of(
    module: &crate::module::Module,
    p: *const CK_MECHANISM,
    op: crate::operation::Op,
) -> Result<(CK_MECHANISM_TYPE, crate::mechanisms::Param)> {
    let m = p.as_ref().ok_or(err(CKR_ARGUMENTS_BAD))?;
    // A mechanism that cannot perform the operation is invalid for it, whatever its parameter.
    crate::mechanisms::registry().can(m.mechanism, op)?;
    // `slots.mechanisms` may have disabled it.
    if !module.cfg.mechanisms.allows(m.mechanism) {
        return Err(err(CKR_MECHANISM_INVALID));
    }
    if m.ulParameterLen > MAX_PARAMETER_LEN {
        return Err(err(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok((m.mechanism, params::decode(m.mechanism, m.pParameter as *const std::ffi::c_void, m.ulParameterLen)?))
}

/// Whether this process runs in secure-execution mode: the kernel's `AT_SECURE` auxiliary value,
/// set for setuid and setgid programs and programs with file capabilities, whose environment
/// the configuration then must not trust (see `config`).
pub fn secure_execution() -> bool {
    // SAFETY: getauxval reads the process's auxiliary vector; it has no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}
