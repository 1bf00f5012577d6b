//! The state of a session's operations apart from their data: cancelling them
//! (`C_SessionCancel`, `C_*Init` with no mechanism), ending one after a failed call, and the
//! context-specific login (`C_Login(CKU_CONTEXT_SPECIFIC)`) a key with `CKA_ALWAYS_AUTHENTICATE`
//! asks for.

use crate::error::{err, Result};
use crate::module::{lock, Module};
use crate::operation::Op;
use crate::session::Session;
use cryptoki_sys::*;

impl Module {
    /// `C_Login(CKU_CONTEXT_SPECIFIC)`: authorises the pending operations of the session whose key
    /// asks for it.
    pub fn context_login(&self, s: &Session, pin: &[u8]) -> Result<()> {
        let mut ops = lock(&s.ops);
        let sign = ops.sign.as_ref().is_some_and(|o| o.reauth);
        let decrypt = ops.decrypt.as_ref().is_some_and(|o| o.reauth);
        if !sign && !decrypt {
            return Err(err(CKR_OPERATION_NOT_INITIALIZED));
        }
        s.token.verify_pin(crate::store::Role::User, pin)?;
        if let Some(o) = ops.sign.as_mut() {
            o.reauth = false;
        }
        if let Some(o) = ops.decrypt.as_mut() {
            o.reauth = false;
        }
        Ok(())
    }

    /// `C_SessionCancel`: ends the operations named by `flags`.
    pub fn session_cancel(&self, h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
        self.with_ops(&self.session(h)?, |ops| {
            for op in [Op::Encrypt, Op::Decrypt, Op::Digest, Op::Sign, Op::Verify] {
                if flags & op.flag() != 0 {
                    ops.end(op);
                }
            }
            if flags & CKF_FIND_OBJECTS != 0 {
                ops.find = None;
            }
            if flags & CKF_MESSAGE_ENCRYPT != 0 {
                ops.message_encrypt = None;
            }
            if flags & CKF_MESSAGE_DECRYPT != 0 {
                ops.message_decrypt = None;
            }
            Ok(())
        })
    }

    /// Ends an operation after a failed call: the specification ends an operation on any error
    /// but `CKR_BUFFER_TOO_SMALL` (and errors that never reached the session).
    pub fn end_after_error(&self, h: CK_SESSION_HANDLE, op: Op, rv: CK_RV) {
        if matches!(
            rv,
            CKR_BUFFER_TOO_SMALL
                | CKR_SESSION_HANDLE_INVALID
                | CKR_CRYPTOKI_NOT_INITIALIZED
                | CKR_OPERATION_NOT_INITIALIZED
        ) {
            return;
        }
        if let Ok(s) = self.session(h) {
            lock(&s.ops).end(op);
        }
    }

    /// `C_*Init` with a NULL mechanism (PKCS#11 3.0): cancels the active operation of that kind.
    pub fn cancel_operation(&self, h: CK_SESSION_HANDLE, op: Op) -> Result<()> {
        let s = self.session(h)?;
        if lock(&s.ops).end(op) {
            Ok(())
        } else {
            Err(err(CKR_ARGUMENTS_BAD))
        }
    }
}
