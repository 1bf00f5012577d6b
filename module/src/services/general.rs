//! General-purpose, slot and token services (spec §5.4, §5.5).

use crate::error::{err, Result};
use crate::mechanisms::{registry, MechanismInfo};
use crate::module::Module;
use crate::slots::SlotContent;
use cryptoki_sys::*;

/// Manufacturer string of the library, its slots and tokens.
pub const MANUFACTURER: &str = "Tessera";
/// Model string of every token (16 characters at most), naming the mode.
pub fn model(mode: crate::policy::Mode) -> &'static str {
    match mode {
        crate::policy::Mode::Approved => "Tessera approved",
        crate::policy::Mode::NonApproved => "Tessera",
    }
}

/// Model string of a test token (`config::TEST_KDF_ITERATIONS`), in either mode.
pub const TEST_MODEL: &str = "Tessera test";

/// The library description (32 characters at most), what `pkcs11-tool --show-info` and every
/// `C_GetInfo` caller shows: the mode, and whether the loaded library is sealed (its integrity
/// value recorded in it, `tessera-util --seal`).
pub fn description(mode: crate::policy::Mode, sealed: bool) -> &'static str {
    match (mode, sealed) {
        (crate::policy::Mode::Approved, true) => "Tessera, approved mode, sealed",
        (crate::policy::Mode::Approved, false) => "Tessera, approved mode, unsealed",
        (crate::policy::Mode::NonApproved, true) => "Tessera, non-approved, sealed",
        (crate::policy::Mode::NonApproved, false) => "Tessera, non-approved, unsealed",
    }
}

/// The library version, from the crate version (major.minor).
pub fn library_version() -> (u8, u8) {
    let major = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0);
    let minor = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0);
    (major, minor)
}

pub struct SlotInfo {
    pub description: String,
    pub flags: CK_FLAGS,
}

pub struct TokenInfo {
    pub label: String,
    pub serial: String,
    /// A test token (`config::TEST_KDF_ITERATIONS`).
    pub test: bool,
    pub flags: CK_FLAGS,
    pub sessions: usize,
    pub rw_sessions: usize,
}

impl Module {
    /// `C_GetSessionValidationFlags(CKS_LAST_VALIDATION_OK)`: the validation flags met by the
    /// last operation of the session.
    pub fn session_validation_flags(&self, h: CK_SESSION_HANDLE, which: CK_ULONG) -> Result<CK_FLAGS> {
        let s = self.session(h)?;
        if which != CKS_LAST_VALIDATION_OK {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let approved = s.last_approved() == Some(true);
        Ok(if approved { crate::object::attrs::VALIDATION_FLAG_FIPS } else { 0 })
    }

    /// `C_GetSlotList`. Every slot holds a token (the free slot an uninitialised one), so
    /// `tokenPresent` does not change the list.
    pub fn slot_list(&self) -> Result<Vec<CK_SLOT_ID>> {
        self.rescan()?;
        Ok(self.slots.read().unwrap_or_else(|p| p.into_inner()).ids())
    }

    /// `C_GetSlotInfo`.
    pub fn slot_info(&self, slot: CK_SLOT_ID) -> Result<SlotInfo> {
        let content = self.slots.read().unwrap_or_else(|p| p.into_inner()).get(slot)?;
        let mut flags = CKF_TOKEN_PRESENT;
        if self.cfg.removable {
            flags |= CKF_REMOVABLE_DEVICE;
        }
        let description = match content {
            SlotContent::Free => "Tessera slot, uninitialised token".to_string(),
            _ => {
                let t = self.token(slot)?;
                match t.row()?.legacy_state {
                    crate::store::LEGACY_PENDING => format!("SoftHSMv2 token {}, migrated at first login", t.serial),
                    crate::store::LEGACY_MIGRATED => format!("Tessera token {}, migrated from SoftHSMv2", t.serial),
                    _ => format!("Tessera slot, token {}", t.serial),
                }
            }
        };
        Ok(SlotInfo { description, flags })
    }

    /// `C_GetTokenInfo`.
    pub fn token_info(&self, slot: CK_SLOT_ID) -> Result<TokenInfo> {
        let content = self.slots.read().unwrap_or_else(|p| p.into_inner()).get(slot)?;
        let t = match content {
            SlotContent::Free => {
                return Ok(TokenInfo {
                    label: String::new(),
                    serial: String::new(),
                    test: false,
                    flags: CKF_RNG | CKF_LOGIN_REQUIRED,
                    sessions: 0,
                    rw_sessions: 0,
                })
            }
            _ => self.token(slot)?,
        };
        let row = t.row()?;
        let max = self.cfg.pin_max_failures;
        let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_RESTORE_KEY_NOT_NEEDED | CKF_TOKEN_INITIALIZED;
        if row.has_pin(crate::store::Role::User) {
            flags |= CKF_USER_PIN_INITIALIZED;
        }
        let pin_flags = |failures: u32, low, last, locked| -> CK_FLAGS {
            match failures {
                0 => 0,
                n if max > 0 && n >= max => locked,
                n if max > 0 && n + 1 == max => last | low,
                _ => low,
            }
        };
        flags |= pin_flags(row.user_failures, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
        flags |= pin_flags(row.so_failures, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
        // A token taken over from SoftHSMv2 that a SoftHSMv2 wrap still opens: the approved mode
        // logs in to it with neither PIN (see `Token::verify_pin`).
        if self.cfg.mode == crate::policy::Mode::Approved && row.has_legacy() {
            flags |= CKF_USER_PIN_LOCKED | CKF_SO_PIN_LOCKED;
        }
        let (sessions, rw_sessions) = self.sessions_on(&t);
        Ok(TokenInfo { label: row.label, serial: row.serial, test: t.is_test(), flags, sessions, rw_sessions })
    }

    /// `C_GetMechanismList`.
    pub fn mechanism_list(&self, slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).get(slot)?;
        let p = crate::policy::policy()?;
        Ok(registry()
            .types()
            .into_iter()
            .filter(|m| self.cfg.mode == crate::policy::Mode::NonApproved || p.has_approved_use(*m))
            .filter(|m| self.cfg.mechanisms.allows(*m))
            .collect())
    }

    /// `C_GetMechanismInfo`.
    pub fn mechanism_info(&self, slot: CK_SLOT_ID, mech: CK_MECHANISM_TYPE) -> Result<MechanismInfo> {
        if !self.mechanism_list(slot)?.contains(&mech) {
            return Err(err(CKR_MECHANISM_INVALID));
        }
        let m = registry().get(mech).map_err(|_| err(CKR_MECHANISM_INVALID))?;
        let mut info = m.info();
        // Only authenticated wrapping wraps and unwraps outside the legacy rules.
        if !self.legacy_wrapping() {
            if !m.wraps_authenticated() {
                info.flags &= !CKF_WRAP;
            }
            if !m.unwraps_authenticated() {
                info.flags &= !CKF_UNWRAP;
            }
        }
        if self.cfg.mode == crate::policy::Mode::Approved {
            // Only the functions the approved mode offers; other flags (EC capabilities) stay.
            const FUNCTIONS: CK_FLAGS = CKF_DIGEST
                | CKF_SIGN
                | CKF_VERIFY
                | CKF_ENCRYPT
                | CKF_DECRYPT
                | CKF_GENERATE
                | CKF_GENERATE_KEY_PAIR
                | CKF_WRAP
                | CKF_UNWRAP
                | CKF_DERIVE
                | CKF_MESSAGE_ENCRYPT
                | CKF_MESSAGE_DECRYPT;
            let policy = crate::policy::policy()?;
            info.flags = (info.flags & !FUNCTIONS) | (info.flags & FUNCTIONS & policy.approved_flags(mech));
            // Key-pair generation reports the sizes the approved mode generates, EC mechanisms
            // the sizes of its curves (both in bits, the unit of those mechanisms' ranges).
            let sizes =
                if info.flags & CKF_GENERATE_KEY_PAIR != 0 { policy.approved_generation_bits(mech) } else { None };
            if let Some((min, max)) = sizes.or_else(|| policy.approved_curve_bits(mech)) {
                info.min_key = info.min_key.max(min as CK_ULONG);
                info.max_key = info.max_key.min(max as CK_ULONG);
            }
        }
        Ok(info)
    }
}
