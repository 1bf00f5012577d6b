//! The drop-in: a process that finds its configuration through `SOFTHSM2_CONF` (see `config.rs`)
//! shows the SoftHSMv2 tokens of SoftHSMv2's `directories.tokendir` as its own, and migrates each
//! at the first login whose PIN opens it, as `tessera-migrate from-softhsm2` does: the same reader
//! ([`super::softhsm2`]), the same conversion and its refusals ([`super::plan`]: what a
//! SoftHSMv2 file can claim but only a token may set is believed only of objects SoftHSMv2 kept
//! private). Nothing in SoftHSMv2's directory is ever written.
//!
//! Tessera's copy lives in Tessera's store, `<tokendir>/.tessera/<serial>/`. It is made in two
//! steps, each atomic:
//! 1. when the token is first used (its token information read, a session opened): a token that
//!    waits for its first login ([`ensure_pending`]), with SoftHSMv2's label, serial and PIN
//!    blobs, no token key, and SoftHSMv2's public objects (those with no key material), as any
//!    application sees them without a login. It is made under a temporary name and renamed into
//!    place (`Db::create_with`), under the store's migration lock.
//! 2. at the first login whose PIN opens SoftHSMv2's wrap of its role ([`prepare`] here, then
//!    `Token::verify_counted`): every object, read again and sealed under a new token key (the
//!    public objects shown until then give way to them), and the role's Tessera wrap, in one
//!    store transaction, checked within it before it commits.
//!
//! The other role's PIN is not known then. SoftHSMv2's wrap of its token key under that PIN is
//! kept, with Tessera's token key sealed under SoftHSMv2's token key; that role's first login
//! opens them and replaces them with a Tessera wrap (`Db::convert_legacy`). Until then the token
//! key is as well protected as SoftHSMv2 protected its own (1,500 to 1,755 rounds of SHA-256 over
//! that PIN): the non-approved mode's only; the approved mode refuses such tokens.

use crate::error::{err, Error, Result};
use crate::object::Object;
use crate::store::{Role, TokenRow};
use cryptoki_sys::*;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

use super::softhsm2::{self, PinRole};

/// A SoftHSMv2 token found in SoftHSMv2's token directory.
#[derive(Clone, Debug)]
pub struct Found {
    pub dir: PathBuf,
    pub serial: String,
    pub label: String,
}

/// The SoftHSMv2 tokens in `tokendir` whose identity reads (a damaged one is logged and left out).
pub fn scan(tokendir: &Path) -> Vec<Found> {
    let dirs = match softhsm2::token_dirs(tokendir) {
        Ok(d) => d,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("SoftHSMv2 token directory {}: {e}", tokendir.display());
            }
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for d in dirs {
        match softhsm2::Token::read_identity(&d) {
            Ok(t) if valid_serial(&t.serial) => found.push(Found { dir: d, serial: t.serial, label: t.label }),
            Ok(t) => {
                tracing::warn!("SoftHSMv2 token {}: serial {:?} is not 16 hex digits; left out", d.display(), t.serial)
            }
            Err(e) => tracing::warn!("SoftHSMv2 token {}: {e}; left out", d.display()),
        }
    }
    found
}

/// A serial a token directory may be named after: SoftHSMv2's are 16 hexadecimal digits (and a
/// name with a separator or a leading dot would escape or hide in the store).
fn valid_serial(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Makes, unless it exists, the Tessera token of the SoftHSMv2 token in `source` that waits for
/// its first login, in Tessera's store `store` (under the store's migration lock, so two processes
/// make it once). Returns its directory.
pub fn ensure_pending(store: &Path, source: &Path, serial: &str) -> Result<PathBuf> {
    let dir = store.join(serial);
    if dir.join(crate::store::DB_FILE).is_file() {
        return Ok(dir);
    }
    let failed = |e: String| Error::because(CKR_DEVICE_ERROR, e);
    let _lock = super::build::lock_store(store).map_err(failed)?;
    if dir.join(crate::store::DB_FILE).is_file() {
        return Ok(dir);
    }
    let src = softhsm2::Token::read(source).map_err(|e| failed(e.to_string()))?;
    if src.serial != serial {
        return Err(failed(format!("SoftHSMv2 token {}: its serial changed", source.display())));
    }
    // The public objects (what SoftHSMv2 shows without a login): converted as the migration
    // converts them, and shown while the token waits. Only what needs no token key: no key
    // material, nothing private, nothing trusted.
    let public: Vec<(String, std::collections::BTreeMap<CK_ATTRIBUTE_TYPE, softhsm2::Val>)> =
        src.objects.iter().filter(|o| !o.flag(CKA_PRIVATE)).map(|o| (o.name.clone(), o.attrs.clone())).collect();
    let (planned, _) = super::plan(&public, super::Options::default());
    let mut rows = Vec::new();
    for p in &planned {
        let (plain, secret) = p.object.split();
        if !secret.is_empty() || p.object.is_private() || p.object.flag(CKA_TRUSTED) {
            continue;
        }
        let uid = p.object.get(CKA_UNIQUE_ID).unwrap_or(&[]).to_vec();
        rows.push((uid, crate::object::encode(&plain)?));
    }
    let uid = crate::store::seal::random_bytes(16)?;
    let row = TokenRow::pending(
        uid,
        serial.to_string(),
        src.label.clone(),
        crate::slots::slot_id_for(Path::new(serial)),
        src.blob(PinRole::So).map(<[u8]>::to_vec),
        src.blob(PinRole::User).map(<[u8]>::to_vec),
        source.display().to_string(),
    );
    let new_rows: Vec<(Vec<u8>, crate::store::NewRow<'_>)> = rows
        .iter()
        .map(|(u, a)| (u.clone(), crate::store::NewRow { private: false, attrs: a, secret: None, tag: None }))
        .collect();
    crate::store::Db::create_with(store, &row, &new_rows)?;
    tracing::info!(
        "SoftHSMv2 token {serial} ({}) appears as a Tessera token; its first login migrates it into {}",
        source.display(),
        dir.display()
    );
    Ok(dir)
}

/// What the first login of a SoftHSMv2 token brings in: the objects, converted; SoftHSMv2's
/// token key; and SoftHSMv2's wrap of it under the other role's PIN (if that PIN was set).
pub struct Prepared {
    pub objects: Vec<Object>,
    /// SSP: SoftHSMv2 token key
    pub softhsm_key: Zeroizing<[u8; 32]>,
    pub other_blob: Option<Vec<u8>>,
    pub backend: String,
}

fn pin_role(role: Role) -> PinRole {
    match role {
        Role::So => PinRole::So,
        Role::User => PinRole::User,
    }
}

/// Reads the SoftHSMv2 token in `source` (read-only) and opens it with `pin` as `role`'s PIN:
/// `Ok(None)` when the PIN is wrong. `drop_wrap_usages` as `tessera-migrate --drop-wrap-usages`:
/// SoftHSMv2 gives the keys it generates every usage, and Tessera uses a key that both wraps and
/// processes data for neither, so a pipeline's signing key would stop working otherwise. Refused (`CKR_FUNCTION_FAILED`, the reason logged) when
/// the token holds objects Tessera cannot hold (`tessera-migrate from-softhsm2
/// --skip-unsupported` migrates the rest), or changed while it was read.
pub fn prepare(
    source: &Path,
    serial: &str,
    role: Role,
    pin: &[u8],
    drop_wrap_usages: bool,
) -> Result<Option<Prepared>> {
    let failed = |e: String| Error::because(CKR_FUNCTION_FAILED, format_args!("SoftHSMv2 token {serial}: {e}"));
    let before = super::build::digest_dir(source).map_err(|e| failed(format!("{}: {e}", source.display())))?;
    let src = softhsm2::Token::read(source).map_err(|e| failed(e.to_string()))?;
    if src.serial != serial {
        return Err(failed(format!("{}: its serial changed", source.display())));
    }
    let Some(blob) = src.blob(pin_role(role)) else {
        return Err(err(match role {
            Role::User => CKR_USER_PIN_NOT_INITIALIZED,
            Role::So => CKR_GENERAL_ERROR,
        }));
    };
    let Some(key) = softhsm2::unwrap_pin_blob(blob, pin) else { return Ok(None) };
    let objects = super::clear_objects(&src, &key).map_err(failed)?;
    let (planned, unsupported) = super::plan(&objects, super::Options { drop_wrap_usages, as_user: false });
    if !unsupported.is_empty() {
        let list: Vec<String> =
            unsupported.iter().map(|u| format!("{} {:?} (id {}): {}", u.class, u.label, u.id, u.reason)).collect();
        return Err(failed(format!(
            "not migrated: it holds objects Tessera cannot hold ({}); `tessera-migrate from-softhsm2 \
             --skip-unsupported` migrates the rest",
            list.join("; ")
        )));
    }
    for p in &planned {
        for u in &p.summary.unknown {
            tracing::warn!(
                "SoftHSMv2 token {serial}: {} {:?} (id {}): attribute {} ({}) has no place in Tessera's object and is \
                 not carried over",
                p.summary.class,
                p.summary.label,
                p.summary.id,
                u.name,
                u.number
            );
        }
        for n in &p.summary.notes {
            tracing::warn!(
                "SoftHSMv2 token {serial}: {} {:?} (id {}): {n}",
                p.summary.class,
                p.summary.label,
                p.summary.id
            );
        }
    }
    let after = super::build::digest_dir(source).map_err(|e| failed(format!("{}: {e}", source.display())))?;
    if after != before {
        return Err(failed("it changed while it was read: log in again".into()));
    }
    let other = match role {
        Role::So => PinRole::User,
        Role::User => PinRole::So,
    };
    Ok(Some(Prepared {
        objects: planned.into_iter().map(|p| p.object).collect(),
        softhsm_key: key,
        other_blob: src.blob(other).map(<[u8]>::to_vec),
        backend: format!("{:?}", src.backend).to_lowercase(),
    }))
}

/// What Tessera's token key sealed under SoftHSMv2's authenticates: the token and the purpose.
pub fn bridge_aad(token_uid: &[u8]) -> Vec<u8> {
    [token_uid, b"softhsm2-legacy-key"].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_serials_name_a_directory() {
        assert!(valid_serial("0123456789abcdef"));
        for bad in ["", "../../etc/passwd", ".hidden012345678", "0123456789abcde/", "0123456789abcdefa"] {
            assert!(!valid_serial(bad), "{bad}");
        }
    }
}
