//! The audit hook: every entry point reports its name and result here, once, after it ran.
//! Today it feeds the diagnostic log; the hash-chained audit log attaches to this same hook.

use cryptoki_sys::*;

/// Called by `abi::guard` for every entry point.
pub fn call(name: &'static str, rv: CK_RV) {
    if rv == CKR_OK {
        tracing::debug!(call = name, "ok");
    } else {
        tracing::debug!(call = name, rv = format_args!("0x{rv:08x}"), "failed");
    }
}
