//! The services of Tessera's vendor interface ("Vendor Tessera" 1.0, `abi/vendor.rs`): what
//! PKCS#11 has no function for. `tessera-util` reaches them through the library like any
//! application: the module's status as text, the self-tests on demand, deleting a token, and
//! backing a token up and restoring it (`store/backup.rs`).

use crate::error::{err, Error, Result};
use crate::fips::PostReport;
use crate::module::{lock, Module};
use crate::policy::Mode;
use cryptoki_sys::*;
use serde_json::{json, Value};

/// One self-test run as the status report shows it.
fn report(r: &PostReport) -> Value {
    let us = |d: std::time::Duration| d.as_micros() as u64;
    json!({
        "passed": r.failure.is_none(),
        "failure": r.failure,
        "elapsed_us": us(r.elapsed),
        // The algorithm self-tests' phases of a run that reused them are those of the earlier run
        // in this process in which they passed: marked so, and not counted in this run's time.
        "phases": r.phases.iter().map(|(n, d)| {
            let reused = r.algorithm_tests_reused && *n != "integrity";
            json!({ "name": n, "elapsed_us": us(*d), "reused": reused })
        }).collect::<Vec<_>>(),
        "algorithm_tests": if r.algorithm_tests_reused { "passed earlier in this process" } else { "run" },
        "tests": r.results.iter().map(|(n, ok)| json!({ "name": n, "passed": ok })).collect::<Vec<_>>(),
    })
}

/// What an integrity status is called in the report.
fn integrity_result(s: &crate::fips::integrity::Status) -> &'static str {
    use crate::fips::integrity::Status;
    match s {
        Status::Verified => "verified",
        Status::Unsealed => "unsealed",
        Status::Mismatch => "mismatch",
        Status::Unreadable(_) => "unreadable",
        Status::NotApplicable => "not-applicable",
    }
}

impl Module {
    /// `T_GetStatus`: the module's state as a JSON object (docs/vendor-interface.md): the
    /// library file and version, the mode, operational or in the error state and why, the
    /// integrity test's values (of the latest run), aws-lc's `FIPS_mode`, and the power-on and
    /// the latest on-demand self-tests with their phases. Available in the error state, where it
    /// matters most.
    pub fn status(&self) -> String {
        let on_demand = lock(&self.on_demand).clone();
        let latest = on_demand.as_ref().map(|(r, _)| r).unwrap_or(&self.post);
        let (major, minor) = super::general::library_version();
        let library = self.library.as_ref();
        let error = self.error_reason();
        let status = json!({
            "library": {
                "path": library.and_then(|l| l.path()).map(|p| p.display().to_string()),
                "version": format!("{major}.{minor}"),
                "cryptoki": "3.2",
                "description": super::general::description(self.cfg.mode, self.post.recorded_value.is_some()),
            },
            "mode": self.cfg.mode.name(),
            "state": if self.in_error() { "error" } else { "operational" },
            "error": error,
            "integrity": {
                "result": integrity_result(&latest.integrity),
                "text": latest.integrity.to_string(),
                "sealed": latest.recorded_value.is_some(),
                "value": latest.integrity_value,
                "recorded": latest.recorded_value,
            },
            "aws_lc": { "fips_mode": crate::crypto::selftest::aws_lc_fips_mode() },
            "self_tests": {
                "power_on": report(&self.post),
                "on_demand": on_demand.as_ref().map(|(r, runs)| {
                    let mut v = report(r);
                    v["runs"] = json!(runs);
                    v
                }),
            },
        });
        status.to_string()
    }

    /// `T_SelfTest`: runs the power-on self-tests again (the integrity of the library file as it
    /// was loaded, Tessera's known-answer tests, aws-lc's self-tests) without unloading, while
    /// other threads go on with their sessions (the tests touch no session, key or token).
    ///
    /// A failure puts the module in the error state with its reason, as at power-on. Passing
    /// leaves an operational module operational; it does not take a module out of the error
    /// state: like a validated module, Tessera leaves it only through `C_Finalize` and
    /// `C_Initialize`, whose power-on self-tests must pass again. `CKR_GENERAL_ERROR` whenever the
    /// module is in the error state after the run: the code every service of a module in the
    /// error state answers, and the specification's for a failure the caller cannot recover from
    /// by calling again (`CKR_FUNCTION_FAILED` would say that a retry might succeed).
    pub fn self_test(&self) -> Result<()> {
        let _one_at_a_time = lock(&self.self_test_running);
        let r = crate::fips::self_tests(self.library.as_ref(), self.cfg.mode == Mode::Approved, "on-demand");
        let failure = r.failure.clone();
        {
            let mut last = lock(&self.on_demand);
            let runs = last.as_ref().map_or(0, |(_, n)| *n) + 1;
            *last = Some((r, runs));
        }
        if let Some(f) = failure {
            // The first reason stays when the module already is in the error state.
            if !self.in_error() {
                self.enter_error_state(format!("on-demand self-tests: {f}"));
            }
            // (`fips::self_tests` has logged the failure.)
            return Err(err(CKR_GENERAL_ERROR));
        }
        if self.in_error() {
            return Err(Error::because(
                CKR_GENERAL_ERROR,
                "the self-tests passed, but the module stays in the error state until C_Finalize and C_Initialize",
            ));
        }
        Ok(())
    }

    /// `T_DeleteToken`: removes the store of the token in `slot` (its directory in the token
    /// directory) and its slot. `CKR_SESSION_EXISTS` while this process has a session on it, as
    /// `C_InitToken` answers; `CKR_TOKEN_NOT_RECOGNIZED` for the free slot's uninitialised token.
    ///
    /// No PIN is asked, as `softhsm2-util --delete-token` asks none: the store is readable and
    /// writable by its owner only, and any process that can load the library as that owner can
    /// remove the directory itself; a PIN would protect nothing. Another process with sessions on
    /// the token is not stopped, but the files it has open are zeroed first, so its calls on the
    /// token fail; its slot list drops the token at its next `C_GetSlotList`.
    pub fn delete_token(&self, slot: CK_SLOT_ID) -> Result<()> {
        let t = self.token(slot)?;
        if self.sessions_on(&t).0 > 0 {
            return Err(err(CKR_SESSION_EXISTS));
        }
        let dir = t.dir.clone();
        // Only a directory directly inside the token directory is ever removed.
        if dir.parent() != Some(self.cfg.tokendir.as_path()) || dir.file_name().is_none() {
            return Err(Error::because(
                CKR_FUNCTION_FAILED,
                format_args!("refusing to delete {}: not inside the token directory", dir.display()),
            ));
        }
        overwrite_files(&dir);
        std::fs::remove_dir_all(&dir).map_err(|e| {
            Error::because(
                CKR_DEVICE_ERROR,
                format_args!("could not delete the token directory {}: {e}", dir.display()),
            )
        })?;
        tracing::info!("token {} deleted ({})", t.serial, dir.display());
        self.forget_token_handles(&t);
        self.slots.write().unwrap_or_else(|p| p.into_inner()).forget(&dir);
        drop(t);
        self.rescan()
    }
}

impl Module {
    /// `T_BackupToken`: a consistent copy of the token in `slot`, written to `out` while other
    /// processes go on using it (`store::backup::backup`), authenticated with a key derived from
    /// the SO PIN `so_pin` (so that a restore can tell it from a file a user PIN holder rewrote).
    /// The PIN is checked against the token's SO wrap as `C_Login(CKU_SO)` checks it: a failure
    /// counts, and a locked SO PIN answers `CKR_PIN_LOCKED`.
    pub fn backup_token(&self, slot: CK_SLOT_ID, so_pin: &[u8], out: &std::path::Path) -> Result<String> {
        let t = self.token(slot)?;
        let iterations = so_check(&t, so_pin, "the SO PIN is not the token's SO PIN")?;
        let s = crate::store::backup::backup(&t.dir, out, so_pin, iterations)?;
        tracing::info!("token {} backed up to {} ({} objects)", s.serial, out.display(), s.objects);
        Ok(json!({ "backup": out.display().to_string(), "token": s }).to_string())
    }

    /// `T_RestoreToken`: the backup in `file` put back as a token (see `docs/backup.md`).
    ///
    /// The file's envelope is checked, and its MAC with the SO PIN (the SO PIN of the backup's
    /// token when it was made) before anything is unpacked; then its database, and the SO PIN
    /// tried against the backup's own wrap of its token key, in a hidden directory that no slot lists, before anything of the
    /// store is touched; a refusal removes that directory and leaves the store as it was. Then:
    /// the token of the resulting label (or the backup's own token, by its unique ID) is replaced
    /// only with `replace`, and only when the SO PIN is its SO PIN too (its kept backup is
    /// authenticated under it), its writers held off while it is written to a backup file beside the
    /// tokens (`<serial>.<time>.replaced.tessera-backup`) and its counters read; the restored
    /// token's GCM counters are moved ahead of every value used since the backup (see
    /// `Staged::advance`), and its rollback record starts again from the restored database. The
    /// restored token takes its place in one rename. A backup of a token that is present under
    /// another label than the one restored is refused: two tokens with one unique ID would share
    /// key material and GCM invocation counters.
    pub fn restore_token(
        &self,
        file: &std::path::Path,
        so_pin: &[u8],
        label: Option<&str>,
        replace: bool,
    ) -> Result<String> {
        use crate::store::backup;
        let envelope = backup::read(file)?;
        let image = envelope.authenticate(so_pin)?;
        let mut staged = backup::Staged::new(&self.cfg.tokendir, image)?;
        let r = self.restore_staged(&mut staged, file, so_pin, label, replace);
        if r.is_err() {
            staged.discard();
        }
        r
    }

    fn restore_staged(
        &self,
        staged: &mut crate::store::backup::Staged,
        file: &std::path::Path,
        so_pin: &[u8],
        label: Option<&str>,
        replace: bool,
    ) -> Result<String> {
        use crate::store::backup::{self, Replaced};
        let refused = |why: std::fmt::Arguments<'_>| Error::because(CKR_ACTION_PROHIBITED, why);
        if label.is_some_and(|l| l.is_empty() || l.len() > 32) {
            return Err(Error::because(CKR_ARGUMENTS_BAD, "a token label has 1 to 32 bytes"));
        }
        staged.record_pin_state()?;
        {
            let t = crate::token::Token::open(&staged.dir, self.kek.clone(), self.pin_policy())?;
            t.verify_pin(crate::store::Role::So, so_pin).map_err(|e| match e.rv() {
                CKR_PIN_INCORRECT => Error::because(CKR_PIN_INCORRECT, "the SO PIN is not the backup's SO PIN"),
                _ => e,
            })?;
        }
        if let Some(l) = label {
            staged.relabel(l)?;
        }
        let present = backup::present(&self.cfg.tokendir)?;
        let same_uid = present.iter().find(|p| p.uid == staged.uid);
        let same_label = present.iter().find(|p| p.label == staged.label);
        let target = match (same_uid, same_label) {
            (Some(u), l) if l.is_none_or(|l| l.dir != u.dir) => {
                return Err(refused(format_args!(
                    "this backup's token is in the store as \"{}\" (serial {}): restore over it with --token \"{}\" --force, \
                     or delete it first; two tokens with one unique ID would share keys and GCM counters",
                    u.label, u.serial, u.label
                )))
            }
            (u, l) => u.or(l),
        };
        if let Some(t) = target {
            if !replace {
                return Err(refused(format_args!(
                    "a token labelled \"{}\" is in the store (serial {}): --force replaces it, keeping it as a backup first",
                    t.label, t.serial
                )));
            }
        }
        let taken = present.iter().find(|p| p.dir == self.cfg.tokendir.join(&staged.serial));
        if taken.is_some_and(|p| target.is_none_or(|t| t.dir != p.dir)) {
            return Err(refused(format_args!(
                "a token with the backup's serial number {} is in the store",
                staged.serial
            )));
        }
        if let Some(t) = target {
            let open = self.slots.read().unwrap_or_else(|p| p.into_inner()).opened_at(&t.dir);
            if open.is_some_and(|tok| self.sessions_on(&tok).0 > 0) {
                return Err(err(CKR_SESSION_EXISTS));
            }
        }
        // The token replaced is kept as a backup authenticated under its SO PIN: the SO PIN given
        // must be that token's too (checked as C_Login checks it, before its writers are held off).
        let kept_iterations = match target {
            Some(t) => {
                let open = self.slots.read().unwrap_or_else(|p| p.into_inner()).opened_at(&t.dir);
                let tok = match open {
                    Some(tok) => tok,
                    None => crate::token::Token::open(&t.dir, self.kek.clone(), self.pin_policy())?,
                };
                let why = format!(
                    "the SO PIN is not the SO PIN of the token it replaces (\"{}\", serial {}), under which that \
                     token's kept backup is made: back that token up with its own SO PIN and delete it first",
                    t.label, t.serial
                );
                Some(so_check(&tok, so_pin, &why)?)
            }
            None => None,
        };
        let replaced = target.map(|t| Replaced::lock(&t.dir)).transpose()?;
        let mut kept = None;
        if let (Some(r), Some(t), Some(it)) = (&replaced, target, kept_iterations) {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            kept = Some(r.keep(&self.cfg.tokendir, &format!("{}.{now}.replaced", t.serial), so_pin, it)?);
        }
        // The token's own counters when it is the one replaced; otherwise nothing knows them.
        let before = match (&replaced, same_uid) {
            (Some(r), Some(_)) => Some((&r.read, r.dir.as_path())),
            _ => None,
        };
        let counters_known = before.is_some();
        staged.advance(before)?;
        let dir = backup::install(&self.cfg.tokendir, staged, replaced.as_ref())?;
        if let Some(r) = replaced {
            let old = r.dir.clone();
            r.release();
            if let Some(tok) = self.slots.read().unwrap_or_else(|p| p.into_inner()).opened_at(&old) {
                self.forget_token_handles(&tok);
            }
            self.slots.write().unwrap_or_else(|p| p.into_inner()).forget(&old);
        }
        self.rescan()?;
        tracing::warn!(
            "token {} restored from {}: its rollback record starts again from the restored database",
            staged.serial,
            file.display()
        );
        crate::record::note(format!(
            "token {} restored from a backup: rollback counter reset on purpose; GCM counters {}",
            staged.serial,
            if counters_known { "carried from the token replaced" } else { "moved 2^40 ahead" }
        ));
        Ok(json!({
            "restored": file.display().to_string(),
            "serial": staged.serial,
            "label": staged.label,
            "slot": crate::slots::slot_id_for(&dir),
            "kept": kept.map(|p| p.display().to_string()),
            "counters": if counters_known { "carried" } else { "margin" },
            "margin": backup::UNKNOWN_USE_MARGIN,
        })
        .to_string())
    }
}

/// Checks `so_pin` against the SO wrap of `t` as `C_Login(CKU_SO)` does (a failure counted, a
/// locked PIN refused; `why` names a wrong one); gives the wrap's PBKDF2 iteration count, which
/// the backup's MAC key is derived with.
fn so_check(t: &crate::token::Token, so_pin: &[u8], why: &str) -> Result<u32> {
    t.verify_pin(crate::store::Role::So, so_pin).map_err(|e| match e.rv() {
        CKR_PIN_INCORRECT => Error::because(CKR_PIN_INCORRECT, why),
        _ => e,
    })?;
    t.row()?.so.map(|w| w.iterations).ok_or_else(|| err(CKR_USER_PIN_NOT_INITIALIZED))
}

/// Overwrites every file of a token's directory with zeros, synced, before it is removed: the
/// sealed objects and the PIN wraps of the token key do not stay readable in the freed blocks of
/// a file system that writes in place. (A copy-on-write or flash file system may keep old blocks
/// all the same: `security-policy.md` §11 says so.) Best effort: removal follows either way.
pub(crate) fn overwrite_files(dir: &std::path::Path) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if !meta.is_file() {
            continue;
        }
        // Not through a link that replaced the file since it was looked at.
        let opened = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(&p);
        if let Ok(mut f) = opened {
            let zeros = vec![0u8; 64 * 1024];
            let mut left = meta.len();
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                if f.write_all(&zeros[..n]).is_err() {
                    break;
                }
                left -= n as u64;
            }
            let _ = f.sync_data();
        }
    }
}
