//! Session management and login (spec §5.6, §5.7): the session state machine.

use crate::error::{err, Result};
use crate::module::{lock, Module};
use crate::session::Session;
use crate::store::Role;
use crate::token::Token;
use cryptoki_sys::*;
use std::sync::Arc;

/// What `C_GetSessionInfo` reports.
pub struct SessionInfo {
    pub slot: CK_SLOT_ID,
    pub state: CK_STATE,
    pub flags: CK_FLAGS,
}

impl Module {
    /// `C_OpenSession`.
    pub fn open_session(&self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        let token = self.token(slot)?;
        // A test token's PINs derive with 1,000 iterations: the approved mode works with no such
        // token (its model says "Tessera test"; `C_InitToken` makes it a token like any other).
        if self.cfg.mode == crate::policy::Mode::Approved && token.is_test() {
            return Err(crate::error::Error::because(
                CKR_TOKEN_NOT_RECOGNIZED,
                format_args!("token {}: a test token, which the approved mode does not use", token.serial),
            ));
        }
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(err(CKR_SESSION_PARALLEL_NOT_SUPPORTED));
        }
        let rw = flags & CKF_RW_SESSION != 0;
        if !rw && token.logged_in() == Some(CKU_SO) {
            return Err(err(CKR_SESSION_READ_WRITE_SO_EXISTS));
        }
        let handle = self.new_session_handle();
        let s = Arc::new(Session::new(handle, slot, token, rw));
        self.sessions.insert(handle, s);
        Ok(handle)
    }

    /// `C_CloseSession`: its session objects go; the last session of a token logs it out.
    pub fn close_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let s = self.sessions.remove(h).ok_or(err(CKR_SESSION_HANDLE_INVALID))?;
        crate::record::closing(h);
        if s.made_objects.load(std::sync::atomic::Ordering::Acquire) {
            self.forget_session_objects(h);
        }
        let token = s.token.clone();
        drop(s);
        if token.logged_in().is_some() && self.sessions_on(&token).0 == 0 {
            self.logout_token(&token);
        }
        Ok(())
    }

    /// `C_CloseAllSessions`.
    pub fn close_all_sessions(&self, slot: CK_SLOT_ID) -> Result<()> {
        let token = match self.token(slot) {
            Ok(t) => t,
            Err(e) if e.rv() == CKR_TOKEN_NOT_RECOGNIZED => return Ok(()),
            Err(e) => return Err(e),
        };
        let closed = self.sessions.take(|s| Arc::ptr_eq(&s.token, &token));
        for s in &closed {
            self.forget_session_objects(s.handle);
        }
        self.logout_token(&token);
        Ok(())
    }

    /// `C_GetSessionInfo`.
    pub fn session_info(&self, h: CK_SESSION_HANDLE) -> Result<SessionInfo> {
        let s = self.session(h)?;
        let mut flags = CKF_SERIAL_SESSION;
        if s.rw {
            flags |= CKF_RW_SESSION;
        }
        Ok(SessionInfo { slot: s.slot, state: s.state(), flags })
    }

    /// `C_Login`.
    pub fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let t = &s.token;
        let role = match user {
            CKU_SO => Role::So,
            CKU_USER => Role::User,
            CKU_CONTEXT_SPECIFIC => {
                if !s.user() {
                    return Err(err(CKR_USER_NOT_LOGGED_IN));
                }
                return self.context_login(&s, pin);
            }
            _ => return Err(err(CKR_USER_TYPE_INVALID)),
        };
        match t.logged_in() {
            Some(u) if u == user => return Err(err(CKR_USER_ALREADY_LOGGED_IN)),
            Some(_) => return Err(err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)),
            None => {}
        }
        if role == Role::So && self.has_ro_session(t) {
            return Err(err(CKR_SESSION_READ_ONLY_EXISTS));
        }
        let key = t.verify_pin(role, pin)?;
        t.set_login(user, key);
        Ok(())
    }

    /// `C_Logout`.
    pub fn logout(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let s = self.session(h)?;
        if s.token.logged_in().is_none() {
            return Err(err(CKR_USER_NOT_LOGGED_IN));
        }
        self.logout_token(&s.token);
        Ok(())
    }

    /// `C_InitPIN` (SO session).
    pub fn init_pin(&self, h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        if !s.so() {
            return Err(err(CKR_USER_NOT_LOGGED_IN));
        }
        s.token.init_user_pin(pin)
    }

    /// `C_SetPIN`: the user's PIN in a user or public session, the SO's in an SO session.
    pub fn set_pin(&self, h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        if !s.rw {
            return Err(err(CKR_SESSION_READ_ONLY));
        }
        let role = if s.so() { Role::So } else { Role::User };
        s.token.change_pin(role, old, new)
    }

    fn has_ro_session(&self, t: &Arc<Token>) -> bool {
        let (all, rw) = self.sessions_on(t);
        all > rw
    }

    /// Logs a token out for this application: private session objects are destroyed, handles to
    /// private token objects become invalid, and searches in progress end.
    pub fn logout_token(&self, t: &Arc<Token>) {
        t.logout();
        self.forget_private_handles(t);
        let sessions: Vec<_> = self.sessions.all().into_iter().filter(|s| Arc::ptr_eq(&s.token, t)).collect();
        for s in sessions {
            lock(&s.ops).find = None;
        }
    }
}
