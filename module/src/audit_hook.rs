//! The audit hook: every entry point's [`Event`] arrives here once, after the call ran (through
//! `record::finish`, called by `abi::guard`). Today it feeds the diagnostic log; the
//! hash-chained audit log attaches here. The hook may refuse an event (it could not keep it):
//! a call that had succeeded then fails with `CKR_GENERAL_ERROR`, so nothing the module did goes
//! unrecorded.

use crate::error::Result;
use crate::record::Event;
use cryptoki_sys::*;

/// Receives one call's event.
pub fn record(e: &Event) -> Result<()> {
    #[cfg(test)]
    {
        tests::SEEN.with(|v| v.borrow_mut().push((e.function, e.op(), e.mechanism(), e.verdict(), e.fresh, e.rv)));
        if tests::REFUSE.get() {
            return Err(crate::error::err(CKR_DEVICE_ERROR));
        }
    }
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return Ok(());
    }
    let mechanism =
        e.mechanism().and_then(|m| crate::mechanisms::names::MECHANISMS.iter().find(|(_, v)| *v == m).map(|(n, _)| *n));
    let op = e.op().map(|o| o.name());
    let approved = e.fips_approved();
    if e.rv == CKR_OK {
        tracing::debug!(call = e.function, session = e.session_handle(), op, mechanism, approved, "ok");
    } else {
        tracing::debug!(
            call = e.function,
            session = e.session_handle(),
            op,
            mechanism,
            rv = format_args!("0x{:08x}", e.rv),
            "failed"
        );
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::operation::Op;
    use crate::record::Verdict;
    use cryptoki_sys::*;
    use std::cell::RefCell;

    type Seen = (&'static str, Option<Op>, Option<CK_MECHANISM_TYPE>, Option<Verdict>, bool, CK_RV);

    thread_local! {
        /// What the hook received on this thread (unit tests only).
        pub(crate) static SEEN: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
        /// Makes the hook refuse every event (unit tests only).
        pub(crate) static REFUSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
}
